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
//! The server has its own throwaway CA ([`HostileServer::ca_file`]); only GETs are answered.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tempfile::TempDir;

use tufa_testkit::pki::{make_ca, make_leaf};

use crate::stack::Stack;

/// A rewrite of the answers for one role.
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
}

/// One answer the server gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// The file asked for, e.g. `snapshot.<sha256>.json`.
    pub file: String,
    /// The HTTP status sent.
    pub status: u16,
    /// Whether a [`Tamper`] rule changed the answer.
    pub tampered: bool,
}

/// The hostile server; stops when dropped.
pub struct HostileServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
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
        Self::start(Backend::Upstream {
            base: stack.notary_url(),
            http,
        })
    }

    /// A fake notary-server serving `files` (names after `/_trust/tuf/`, see
    /// [`tufa_testkit::served`]) for any GUN.
    pub fn fake(files: BTreeMap<String, Vec<u8>>) -> Self {
        Self::start(Backend::Files(files))
    }

    fn start(backend: Backend) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tufa-hostile-")
            .tempdir()
            .expect("tempdir");
        make_ca(dir.path(), "ca", "tufa hostile server CA");
        make_leaf(dir.path(), "ca", "hostile");
        let tls = Arc::new(server_config(&dir));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            backend: Mutex::new(backend),
            rules: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (shared, tls) = (shared.clone(), tls.clone());
                    // A failed connection is the client's to report; the server moves on.
                    std::thread::spawn(move || {
                        let _ = serve_connection(&shared, tls, stream);
                    });
                }
            })
        };
        Self {
            addr,
            shared,
            stop,
            accept: Some(accept),
            dir,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
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
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

impl Shared {
    /// The answer to `GET path`: the backend's, rewritten by the first rule for its role.
    fn answer(&self, path: &str) -> (u16, Vec<u8>) {
        let file = path.split_once("/_trust/tuf/").map(|(_, f)| f.to_owned());
        let (mut status, mut body) = self.backend(path);
        let mut tampered = false;
        if let Some(file) = &file {
            let role = role_of(file);
            let rules = self.rules.lock().expect("rules");
            if let Some(rule) = rules.iter().find(|r| r.role == role) {
                match &rule.action {
                    Action::Replace(bytes) => {
                        (status, body) = (200, bytes.clone());
                        tampered = true;
                    }
                    Action::Map(f) if status == 200 => {
                        body = f(&body);
                        tampered = true;
                    }
                    Action::Map(_) => {}
                }
            }
            self.log.lock().expect("log").push(Served {
                file: file.clone(),
                status,
                tampered,
            });
        }
        (status, body)
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

/// Reads one request over TLS, answers it and closes the connection.
fn serve_connection(
    shared: &Shared,
    tls: Arc<rustls::ServerConfig>,
    tcp: TcpStream,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ServerConnection::new(tls).map_err(std::io::Error::other)?;
    let mut stream = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    let mut request_line = String::new();
    stream.read_line(&mut request_line)?;
    // The headers are not needed: read past them.
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let (status, body) = if method == "GET" {
        shared.answer(target)
    } else {
        (405, b"the hostile server only answers GET".to_vec())
    };
    let stream = stream.get_mut();
    write!(
        stream,
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    )?;
    stream.write_all(&body)?;
    stream.conn.send_close_notify();
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
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
