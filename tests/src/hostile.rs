//! A hostile notary server: HTTPS on a free 127.0.0.1 port, answering metadata reads either by
//! forwarding them to a real notary-server ([`HostileServer::proxy`], a tampering proxy) or from
//! files held in memory ([`HostileServer::fake`]), and rewriting the answers a test picks with
//! [`Tamper`] rules.
//!
//! A request for `/v2/<gun>/_trust/tuf/<file>` is matched by the role its file names:
//! `timestamp.json`, `snapshot.<sha256>.json` and `2.root.json` are timestamp, snapshot and root.
//! Every answer is logged ([`HostileServer::served`]) with whether a rule changed it, so a test
//! can show that its rule was used and not bypassed by the client's cache.
//!
//! It can also misbehave at the transport: trickle an answer ([`Tamper::trickle`]), never
//! answer ([`Tamper::stall`]), or send data without end ([`Tamper::flood`]); ask for a token
//! before it answers ([`HostileServer::require_token`]), and then serve that token service
//! itself at `/token`; and answer any other path a test names (a registry's manifests), by the
//! path instead of the role. [`HostileServer::fake_plain`] is the same on plain HTTP.
//!
//! The server has its own throwaway CA ([`HostileServer::ca_file`]); GET and HEAD are answered.
//! The real notary and docker CLIs can be pointed at it ([`HostileServer::go_notary`],
//! [`HostileServer::docker`]) to see what Notary's own clients make of the same answers, and
//! [`post_metadata`] uploads crafted files to a real notary-server, to see what it stores.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tempfile::TempDir;

use tufa_client::notary::{NotaryClient, NotaryConfig};
use tufa_client::tuf::{Gun, RoleName};
use tufa_testkit::pki::{make_ca, make_leaf};

use crate::stack::Stack;
use crate::{require, Run};

/// A rewrite of the answers for one role (a metadata file by any of its names) or, for
/// anything else, one path (`/token`, `/v2/app/manifests/v1`; the query is not part of it).
pub struct Tamper {
    role: String,
    action: Action,
}

/// A rewrite of a body.
type Rewrite = Box<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

enum Action {
    /// Serve these bytes (with 200, even where the real server has nothing).
    Replace(Vec<u8>),
    /// Rewrite what the real server sent (only successful answers).
    Map(Rewrite),
    /// Send the answer, status line and headers included, one byte every interval.
    Trickle(Duration),
    /// Read the request and never answer.
    Stall,
    /// Answer 200 with no length, then this many bytes of JSON whitespace.
    Flood(u64),
}

impl Tamper {
    /// Answers every request for `role`'s file (by name, hash or version) with `body`, e.g. a
    /// recorded older version.
    pub fn replace(role: &str, body: Vec<u8>) -> Self {
        Self {
            role: role.to_owned(),
            action: Action::Replace(body),
        }
    }

    /// Rewrites every answer for `role`'s file with `f`.
    pub fn map(role: &str, f: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static) -> Self {
        Self {
            role: role.to_owned(),
            action: Action::Map(Box::new(f)),
        }
    }

    /// Sends the honest answer for `role` (or a path) one byte every `interval`, from the
    /// status line on: every read gets a byte soon, the whole takes as long as the server likes.
    pub fn trickle(role: &str, interval: Duration) -> Self {
        Self {
            role: role.to_owned(),
            action: Action::Trickle(interval),
        }
    }

    /// Reads the request for `role` (or a path) and never answers, for as long as the
    /// connection stays open (two minutes at most).
    pub fn stall(role: &str) -> Self {
        Self {
            role: role.to_owned(),
            action: Action::Stall,
        }
    }

    /// Answers `role` (or a path) with 200 and no `Content-Length`, then `total` bytes of
    /// spaces: the endless answer of a flooding server, bounded so a client without a cap
    /// ends too (with another error).
    pub fn flood(role: &str, total: u64) -> Self {
        Self {
            role: role.to_owned(),
            action: Action::Flood(total),
        }
    }
}

/// One answer the server gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// The file asked for, e.g. `snapshot.<sha256>.json`, or the path of any other request
    /// (e.g. `/token`).
    pub file: String,
    /// The HTTP status sent (or that was being sent when a rule trickled or stalled it).
    pub status: u16,
    /// Whether a [`Tamper`] rule changed the answer, or it was the token challenge.
    pub tampered: bool,
    /// The request's `Authorization` header.
    pub authorization: Option<String>,
}

/// The token [`HostileServer::require_token`] hands out at `/token` and then asks for.
pub const TOKEN: &str = "hostile-token-Zu7q";

/// The hostile server; stops when dropped.
pub struct HostileServer {
    addr: SocketAddr,
    /// TLS, or plain HTTP.
    tls: bool,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    dir: TempDir,
}

/// Where answers come from.
enum Backend {
    /// A real notary-server at `base`, reached with `http` (which trusts its CA).
    Upstream { base: String, http: ureq::Agent },
    /// Files by their name after `/_trust/tuf/`, for any GUN.
    Files(BTreeMap<String, Vec<u8>>),
}

struct Shared {
    backend: Mutex<Backend>,
    rules: Mutex<Vec<Tamper>>,
    log: Mutex<Vec<Served>>,
    /// The `Www-Authenticate` value of the 401 every request without the token gets, if set.
    challenge: Mutex<Option<String>>,
    /// Set when the server drops: stalled and trickled answers end.
    stop: AtomicBool,
}

/// An answer as it goes on the wire.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// How it is sent; `None` is at once.
    pace: Option<Pace>,
}

#[derive(Clone, Copy)]
enum Pace {
    Trickle(Duration),
    Stall,
    Flood(u64),
}

impl HostileServer {
    /// A tampering proxy in front of `stack`'s notary-server.
    pub fn proxy(stack: &Stack) -> Self {
        let ca = std::fs::read(stack.ca_file()).expect("read the stack's CA");
        let cert = ureq::tls::Certificate::from_pem(&ca).expect("the stack's CA is PEM");
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(10)))
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
                    .build(),
            )
            .build()
            .new_agent();
        Self::start(
            Backend::Upstream {
                base: stack.notary_url(),
                http,
            },
            true,
        )
    }

    /// A fake notary-server serving `files` (names after `/_trust/tuf/`, see
    /// [`tufa_testkit::served`]) for any GUN.
    pub fn fake(files: BTreeMap<String, Vec<u8>>) -> Self {
        Self::start(Backend::Files(files), true)
    }

    /// [`HostileServer::fake`] on plain HTTP; a TLS handshake is hung up on, as a plain-HTTP
    /// server fails it.
    pub fn fake_plain(files: BTreeMap<String, Vec<u8>>) -> Self {
        Self::start(Backend::Files(files), false)
    }

    fn start(backend: Backend, tls: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tufa-hostile-")
            .tempdir()
            .expect("tempdir");
        make_ca(dir.path(), "ca", "tufa hostile server CA");
        make_leaf(dir.path(), "ca", "hostile");
        let config = tls.then(|| Arc::new(server_config(&dir)));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            backend: Mutex::new(backend),
            rules: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            challenge: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let accept = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (shared, config) = (shared.clone(), config.clone());
                    // A failed connection is the client's to report; the server moves on.
                    std::thread::spawn(move || {
                        let _ = serve_connection(&shared, config, stream);
                    });
                }
            })
        };
        Self {
            addr,
            tls,
            shared,
            accept: Some(accept),
            dir,
        }
    }

    /// `https://127.0.0.1:PORT` (`http://` for [`HostileServer::fake_plain`]).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// `127.0.0.1:PORT`, as a registry is named in an image reference.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// From now on every request without `Authorization: Bearer` [`TOKEN`] is answered 401
    /// with `Bearer realm="<realm>",service="hostile"`, as notary-server's and a registry's
    /// token auth do; `/token` (here) answers `{"token": TOKEN}` to anyone.
    pub fn require_token(&self, realm: &str) {
        *self.shared.challenge.lock().expect("challenge") =
            Some(format!(r#"Bearer realm="{realm}",service="hostile""#));
    }

    /// The CA certificate (PEM) that issued this server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// Replaces the rule set; no rules is an honest server.
    pub fn tamper(&self, rules: Vec<Tamper>) {
        *self.shared.rules.lock().expect("rules") = rules;
    }

    /// A fake server serves these files from now on.
    pub fn set_files(&self, files: BTreeMap<String, Vec<u8>>) {
        let mut backend = self.shared.backend.lock().expect("backend");
        assert!(
            matches!(*backend, Backend::Files(_)),
            "set_files is for fake servers; a proxy serves what its notary-server has"
        );
        *backend = Backend::Files(files);
    }

    /// `file` of `gun` as the backend has it, untampered and unlogged (to record old versions).
    pub fn fetch(&self, gun: &str, file: &str) -> Option<Vec<u8>> {
        let path = format!("/v2/{gun}/_trust/tuf/{file}");
        let (status, body) = self.shared.backend(&path);
        (status == 200).then_some(body)
    }

    /// Every answer given since the last call, and forgets them.
    pub fn served(&self) -> Vec<Served> {
        std::mem::take(&mut *self.shared.log.lock().expect("log"))
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

impl Shared {
    /// The answer to `GET path` carrying `authorization`: the backend's, rewritten by the first
    /// rule for its role (or path), or the token challenge.
    fn answer(&self, path: &str, authorization: Option<String>) -> Answer {
        let bare = path.split('?').next().unwrap_or(path);
        let file = match path.split_once("/_trust/tuf/") {
            Some((_, f)) => f.to_owned(),
            None => bare.to_owned(),
        };
        let role = if bare.contains("/_trust/tuf/") {
            role_of(&file).to_owned()
        } else {
            bare.to_owned()
        };
        let challenge = self.challenge.lock().expect("challenge").clone();
        let bearer = format!("Bearer {TOKEN}");
        let mut answer = match challenge {
            Some(_) if bare == "/token" => Answer::ok(format!(r#"{{"token":"{TOKEN}"}}"#).into()),
            Some(value) if authorization.as_deref() != Some(bearer.as_str()) => {
                // The challenge is the server's own lie (its realm), so it counts as tampered.
                self.log.lock().expect("log").push(Served {
                    file,
                    status: 401,
                    tampered: true,
                    authorization,
                });
                return Answer {
                    status: 401,
                    headers: vec![("Www-Authenticate", value)],
                    body: br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                        .to_vec(),
                    pace: None,
                };
            }
            _ => {
                let (status, body) = self.backend(path);
                Answer {
                    status,
                    headers: Vec::new(),
                    body,
                    pace: None,
                }
            }
        };
        let mut tampered = false;
        let rules = self.rules.lock().expect("rules");
        if let Some(rule) = rules.iter().find(|r| r.role == role) {
            tampered = true;
            match &rule.action {
                Action::Replace(bytes) => {
                    (answer.status, answer.body) = (200, bytes.clone());
                }
                Action::Map(f) if answer.status == 200 => answer.body = f(&answer.body),
                Action::Map(_) => tampered = false,
                Action::Trickle(interval) => answer.pace = Some(Pace::Trickle(*interval)),
                Action::Stall => answer.pace = Some(Pace::Stall),
                Action::Flood(total) => {
                    answer.status = 200;
                    answer.pace = Some(Pace::Flood(*total));
                }
            }
        }
        self.log.lock().expect("log").push(Served {
            file,
            status: answer.status,
            tampered,
            authorization,
        });
        answer
    }

    /// What the backend has for `path`.
    fn backend(&self, path: &str) -> (u16, Vec<u8>) {
        match &*self.backend.lock().expect("backend") {
            Backend::Upstream { base, http } => match http.get(&format!("{base}{path}")).call() {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let body = resp.body_mut().read_to_vec().unwrap_or_default();
                    (status, body)
                }
                Err(e) => (
                    502,
                    format!("hostile proxy: upstream failed: {e}").into_bytes(),
                ),
            },
            Backend::Files(files) => {
                if path == "/v2/" {
                    return (200, b"{}".to_vec());
                }
                match path
                    .split_once("/_trust/tuf/")
                    .and_then(|(_, f)| files.get(f))
                {
                    Some(body) => (200, body.clone()),
                    None => (
                        404,
                        br#"{"errors":[{"code":"METADATA_NOT_FOUND"}]}"#.to_vec(),
                    ),
                }
            }
        }
    }
}

/// The role a metadata file name is for: `targets/releases.<sha256>.json` and
/// `3.targets/releases.json` are both `targets/releases`. Role names have no dots.
fn role_of(file: &str) -> &str {
    let Some(stem) = file.strip_suffix(".json") else {
        // Not metadata (e.g. `timestamp.key`): matched by its whole name.
        return file;
    };
    match stem.split_once('.') {
        // `<version>.<role>`
        Some((version, role)) if version.bytes().all(|b| b.is_ascii_digit()) => role,
        // `<role>.<hash>`
        Some((role, _)) => role,
        None => stem,
    }
}

impl Answer {
    fn ok(body: Vec<u8>) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body,
            pace: None,
        }
    }
}

/// Reads one request (over TLS, or plain HTTP), answers it and closes the connection.
fn serve_connection(
    shared: &Shared,
    tls: Option<Arc<rustls::ServerConfig>>,
    tcp: TcpStream,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    match tls {
        Some(tls) => {
            let conn = rustls::ServerConnection::new(tls).map_err(std::io::Error::other)?;
            let mut stream = serve(shared, rustls::StreamOwned::new(conn, tcp))?;
            stream.conn.send_close_notify();
            stream.flush()
        }
        None => {
            let mut first = [0u8; 1];
            if tcp.peek(&mut first)? == 1 && first[0] == 0x16 {
                // A TLS ClientHello: hang up, as a plain-HTTP server fails the handshake.
                return Ok(());
            }
            serve(shared, tcp).map(drop)
        }
    }
}

/// Reads one request from `stream` and writes the answer at its pace; returns the stream.
fn serve<S: Read + Write>(shared: &Shared, stream: S) -> std::io::Result<S> {
    let mut stream = BufReader::new(stream);
    let mut request_line = String::new();
    stream.read_line(&mut request_line)?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_owned());
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let answer = if method == "GET" || method == "HEAD" {
        shared.answer(target, authorization)
    } else {
        Answer {
            status: 405,
            headers: Vec::new(),
            body: b"the hostile server only answers GET and HEAD".to_vec(),
            pace: None,
        }
    };
    let mut stream = stream.into_inner();
    let mut head = format!("HTTP/1.1 {} {}\r\n", answer.status, reason(answer.status));
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(Pace::Flood(total)) = answer.pace {
        // No length: the body ends when the connection does.
        head.push_str("Content-Type: application/json\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes())?;
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < total && !shared.stop.load(Ordering::SeqCst) {
            let n = chunk.len().min((total - sent) as usize);
            stream.write_all(&chunk[..n])?;
            sent += n as u64;
        }
        return Ok(stream);
    }
    head.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.body.len()
    ));
    let mut bytes = head.into_bytes();
    if method != "HEAD" {
        bytes.extend_from_slice(&answer.body);
    }
    match answer.pace {
        None | Some(Pace::Flood(_)) => stream.write_all(&bytes)?,
        Some(Pace::Trickle(interval)) => {
            for byte in bytes {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(interval);
                // A client that gave up has closed the connection: the write fails, and ends this.
                stream.write_all(&[byte])?;
                stream.flush()?;
            }
        }
        Some(Pace::Stall) => {
            let until = Instant::now() + Duration::from_secs(120);
            while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    Ok(stream)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Bad Gateway",
    }
}

/// TLS with `hostile.crt` (issued by the server's own CA for 127.0.0.1).
fn server_config(dir: &TempDir) -> rustls::ServerConfig {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.path().join("hostile.crt"))
            .expect("read hostile.crt")
            .collect::<Result<_, _>>()
            .expect("hostile.crt is PEM");
    let key =
        PrivateKeyDer::from_pem_file(dir.path().join("hostile.key")).expect("hostile.key is PEM");
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("a usable certificate and key")
}

impl HostileServer {
    /// The real notary CLI (Go) against this server, `notary -s URL --tlscacert CA -d TRUST
    /// ARGS` with `HOME` at `trust`: what Notary's own client makes of the same answers.
    pub fn go_notary(&self, trust: &Path, args: &[&str]) -> Run {
        require("notary", "apt-get install notary");
        let (url, ca) = (self.url(), self.ca_file());
        let mut cmd = Command::new("notary");
        cmd.env("HOME", trust)
            .args(["-s", &url, "--tlscacert"])
            .arg(&ca)
            .arg("-d")
            .arg(trust)
            .args(args)
            .stdin(Stdio::null());
        Run::of(
            format!("notary (Go, via the hostile server) {args:?}"),
            &mut cmd,
        )
    }

    /// The docker CLI with this server as its trust server, `DOCKER_CONFIG` (trusting this
    /// server's CA) and `HOME` under `dir`, and no daemon.
    pub fn docker(&self, dir: &Path, args: &[&str]) -> Run {
        require(
            "docker",
            "apt-get install docker.io, or any docker CLI on PATH",
        );
        let config = dir.join("docker-config");
        let tls = config.join("tls").join(self.addr.to_string());
        std::fs::create_dir_all(&tls).expect("docker tls dir");
        std::fs::copy(self.ca_file(), tls.join("ca.crt")).expect("docker ca.crt");
        let mut cmd = Command::new("docker");
        cmd.env("HOME", dir)
            .env("DOCKER_CONFIG", &config)
            .env("DOCKER_CONTENT_TRUST_SERVER", self.url())
            .env(
                "DOCKER_HOST",
                format!("unix://{}", dir.join("no-daemon.sock").display()),
            )
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTENT_TRUST")
            .env_remove("DOCKER_CONTEXT")
            .args(args)
            .stdin(Stdio::null());
        Run::of(
            format!("docker (via the hostile server) {args:?}"),
            &mut cmd,
        )
    }
}

/// Uploads `files` to `stack`'s notary-server as a client publishes them (one multipart POST),
/// whatever they hold: what a delegate holding only its own key can make the server store.
/// Returns the server's refusal, if it refused.
pub fn post_metadata(
    stack: &Stack,
    gun: &str,
    files: &[(RoleName, Vec<u8>)],
) -> Result<(), String> {
    let client = NotaryClient::new(NotaryConfig {
        server: stack.notary_url().parse().expect("the stack's URL"),
        ca_file: Some(stack.ca_file()),
        client_cert: None,
        credentials: None,
    })
    .expect("a notary client for the stack");
    let gun: Gun = gun.parse().expect("a GUN");
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(client.repo(&gun).publish(files))
        .map_err(|e| e.to_string())
}

/// `bytes` with one byte of the first signature changed: same length, same JSON shape, but
/// neither the recorded hashes nor the signature match any more.
pub fn one_byte_changed(bytes: &[u8]) -> Vec<u8> {
    let marker = b"\"sig\":\"";
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("a signature to change")
        + marker.len();
    let mut out = bytes.to_vec();
    out[at] = if out[at] == b'A' { b'B' } else { b'A' };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_map_to_their_roles() {
        assert_eq!(role_of("timestamp.json"), "timestamp");
        assert_eq!(
            role_of(&format!("snapshot.{}.json", "ab".repeat(32))),
            "snapshot"
        );
        assert_eq!(
            role_of(&format!("targets/releases.{}.json", "0f".repeat(32))),
            "targets/releases"
        );
        assert_eq!(role_of("2.root.json"), "root");
        assert_eq!(role_of("3.targets/releases.json"), "targets/releases");
        assert_eq!(role_of("timestamp.key"), "timestamp.key");
    }

    #[test]
    fn one_byte_changes_and_the_length_stays() {
        let file = br#"{"signed":{},"signatures":[{"keyid":"k","method":"ecdsa","sig":"AAAA"}]}"#;
        let changed = one_byte_changed(file);
        assert_eq!(changed.len(), file.len());
        assert_eq!(changed.iter().zip(file).filter(|(a, b)| a != b).count(), 1);
    }
}
