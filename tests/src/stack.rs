//! The real Docker Content Trust stack on loopback: notary-signer, notary-server and a registry,
//! plus the real `notary` and `docker` CLIs pointed at them.
//!
//! Layout of a [`Stack`]'s temporary directory:
//! - `certs/`: a throwaway EC P-256 CA (`ca.crt`, `ca.key`) and one leaf per TLS service;
//! - `config/`: the generated configs of notary-signer, notary-server and the registry;
//! - `logs/`: each service's stdout and stderr;
//! - `registry-data/`: the registry's filesystem storage;
//! - `notary/`: the notary CLI's `client.json` and `trust/` dir;
//! - `docker-config/`: the `DOCKER_CONFIG` of the docker CLI, with the CA under `tls/`;
//! - `home/`: `HOME` for both CLIs, so nothing reads or writes the real `~/.notary` or `~/.docker`.
//!
//! Every service listens on its own free 127.0.0.1 port and is killed when the `Stack` drops. The
//! notary state lives in memory, so each `Stack` starts empty.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

use crate::require;

/// The passphrase of every key the notary and docker CLIs create in a [`Stack`].
pub const PASSPHRASE: &str = "tufa-stack-passphrase-8Kq2";

/// How long a service may take to become ready before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a stack starts on fresh ports when one was taken meanwhile.
const START_ATTEMPTS: u32 = 3;

/// A GUN whose `timestamp.key` is fetched once at start, to prove the server reaches the signer.
const PROBE_GUN: &str = "tufa-stack-readiness-probe";

/// notary-server (with or without notary-signer) and a docker registry, each on a free loopback
/// port in a private temporary directory.
///
/// notary-server's memory backend `DELETE /v2/<gun>/_trust/tuf/` (`notary delete --remote`)
/// removes every GUN that *starts with* `<gun>`, so `…/demo` also deletes `…/demo2`: give GUNs in
/// one test names that are not prefixes of one another.
pub struct Stack {
    services: Vec<Service>,
    notary_port: u16,
    registry_port: u16,
    /// Plain HTTP to the registry.
    http: ureq::Agent,
    /// Numbers each pushed image, so two pushes never make the same digest.
    pushes: AtomicU64,
    dir: TempDir,
}

/// The kind of manifest [`Stack::push_image`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ManifestKind {
    /// `application/vnd.docker.distribution.manifest.v2+json`.
    DockerSchema2,
    /// `application/vnd.oci.image.manifest.v1+json`.
    OciManifest,
    /// `application/vnd.oci.image.index.v1+json` over one linux/amd64 OCI manifest.
    OciIndex,
}

/// What the registry holds for a pushed tag: the values a DCT target records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedImage {
    /// `sha256:<hex>` of the manifest bytes, as the registry reports it.
    pub digest: String,
    /// Length of the manifest bytes.
    pub size: u64,
    /// The manifest's media type.
    pub media_type: String,
}

/// A child process with its log file.
struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// Why a stack did not start.
struct StartFailure {
    /// A service could not bind its port (another process took it after we found it free).
    port_taken: bool,
    /// What happened, with the logs.
    message: String,
}

/// Which trust service notary-server uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TrustService {
    /// notary-signer over mTLS, ECDSA server keys.
    Remote,
    /// In-process, ed25519 server keys.
    Local,
}

impl Stack {
    /// notary-signer (memory store, mTLS) + notary-server (memory storage, TLS, remote ECDSA trust
    /// service) + docker-registry (plain HTTP), each on a free 127.0.0.1 port, all ready when it
    /// returns.
    pub fn start() -> Stack {
        Self::start_with(TrustService::Remote)
    }

    /// notary-server with `trust_service: local` (ed25519 server keys), no signer; plus the
    /// registry.
    pub fn start_local_signing() -> Stack {
        Self::start_with(TrustService::Local)
    }

    fn start_with(trust: TrustService) -> Stack {
        require("openssl", "apt-get install openssl");
        require("docker-registry", "apt-get install docker-registry");
        require("notary-server", "apt-get install notary");
        if trust == TrustService::Remote {
            require("notary-signer", "apt-get install notary");
        }
        // A port found free can be taken by another test's process before our service binds it;
        // then the whole stack starts again on new ports.
        let mut attempt = 1;
        loop {
            match Self::try_start(trust) {
                Ok(stack) => return stack,
                Err(e) if e.port_taken && attempt < START_ATTEMPTS => attempt += 1,
                Err(e) => panic!("{}", e.message),
            }
        }
    }

    fn try_start(trust: TrustService) -> Result<Stack, StartFailure> {
        let dir = tempfile::Builder::new()
            .prefix("tufa-stack-")
            .tempdir()
            .expect("tempdir");
        for sub in [
            "certs",
            "config",
            "logs",
            "registry-data",
            "notary/trust",
            "home",
        ] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("stack subdir");
        }
        let [notary_port, registry_port, signer_port] = free_ports();
        let mut stack = Stack {
            services: Vec::new(),
            notary_port,
            registry_port,
            http: http_agent(None),
            pushes: AtomicU64::new(0),
            dir,
        };

        // The registry needs no certificate: start it first so it boots while openssl runs.
        let registry_conf = stack.write_registry_config();
        stack.spawn(
            "registry",
            Command::new("docker-registry")
                .arg("serve")
                .arg(registry_conf),
        );

        let certs = stack.dir().join("certs");
        make_ca(&certs);
        make_leaf(&certs, "notary-server");
        if trust == TrustService::Remote {
            make_leaf(&certs, "notary-signer");
            let conf = stack.write_signer_config(signer_port);
            stack.spawn(
                "notary-signer",
                Command::new("notary-signer").arg("-config").arg(conf),
            );
            // notary-server dials the signer once at start; if that fails, gRPC backs off and
            // requests fail with `Unavailable` for a second or more. So the signer listens first.
            stack.wait_until("notary-signer", || {
                TcpStream::connect(("127.0.0.1", signer_port)).is_ok()
            })?;
        }
        let conf = stack.write_server_config(trust, signer_port);
        stack.spawn(
            "notary-server",
            Command::new("notary-server").arg("-config").arg(conf),
        );
        stack.write_client_configs();

        let (http, ping) = (stack.http.clone(), stack.registry_url("/v2/"));
        stack.wait_until("registry", || {
            status_of(http.get(&ping).call()) == Some(200)
        })?;
        let notary_http = http_agent(Some(&stack.ca_file()));
        let health = format!("{}/_notary_server/health", stack.notary_url());
        stack.wait_until("notary-server", || {
            status_of(notary_http.get(&health).call()) == Some(200)
        })?;
        if trust == TrustService::Remote {
            // The health check says nothing about the signer until its first periodic run, so
            // make the server create a key in the signer (a GUN with no root yet gets a fresh
            // one): this proves the mTLS between them before any test relies on it.
            let url = format!(
                "{}/v2/{PROBE_GUN}/_trust/tuf/timestamp.key",
                stack.notary_url()
            );
            stack.wait_until("notary-server's link to notary-signer", || {
                status_of(notary_http.get(&url).call()) == Some(200)
            })?;
        }
        // Every service must still be running: one that lost its port to another process dies,
        // while the readiness checks may have been answered by whoever holds that port.
        stack.wait_until("all services", || true)?;
        Ok(stack)
    }

    /// The notary server's URL, `https://127.0.0.1:PORT`.
    pub fn notary_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.notary_port)
    }

    /// The throwaway CA certificate (PEM) that issued the servers' certificates.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("certs/ca.crt")
    }

    /// The CA's private key (PKCS#8 PEM), to mint more certificates in tests.
    pub fn ca_key_file(&self) -> PathBuf {
        self.dir.path().join("certs/ca.key")
    }

    /// The registry's address, `127.0.0.1:PORT` (plain HTTP).
    pub fn registry_addr(&self) -> String {
        format!("127.0.0.1:{}", self.registry_port)
    }

    /// The stack's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The real notary CLI with `-c <client config>` (trust dir under [`Stack::dir`], this
    /// server's URL and CA) and the `NOTARY_*_PASSPHRASE`s set to [`PASSPHRASE`], run in
    /// [`Stack::dir`] with `HOME` there too, so it never reads `~/.notary`.
    pub fn notary(&self, args: &[&str]) -> Output {
        self.notary_command()
            .args(args)
            .output()
            .expect("run notary")
    }

    /// Runs the notary CLI and returns stdout; panics with stdout, stderr and the server's log
    /// on failure.
    pub fn notary_ok(&self, args: &[&str]) -> String {
        let out = self.notary(args);
        assert!(
            out.status.success(),
            "notary {args:?} failed ({}):\nstdout: {}\nstderr: {}\nnotary-server log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.server_log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The notary CLI command without arguments, for tests that need stdin or more env.
    pub fn notary_command(&self) -> Command {
        require("notary", "apt-get install notary");
        let mut cmd = Command::new("notary");
        cmd.current_dir(self.dir())
            .env("HOME", self.dir().join("home"))
            .arg("-c")
            .arg(self.dir().join("notary/client.json"))
            .stdin(Stdio::null());
        for role in ["ROOT", "TARGETS", "SNAPSHOT", "DELEGATION"] {
            cmd.env(format!("NOTARY_{role}_PASSPHRASE"), PASSPHRASE);
        }
        cmd
    }

    /// The notary CLI's trust directory (private keys and cached metadata).
    pub fn notary_trust_dir(&self) -> PathBuf {
        self.dir().join("notary/trust")
    }

    /// A `DOCKER_CONFIG` dir with `tls/<host:port>/ca.crt` for the notary server under both
    /// `127.0.0.1:PORT` and `localhost:PORT`.
    pub fn docker_config(&self) -> PathBuf {
        self.dir().join("docker-config")
    }

    /// The docker CLI (client only, no daemon) pointed at this stack's notary server, run in `cwd`.
    pub fn docker(&self, cwd: &Path, args: &[&str]) -> Output {
        self.docker_command(cwd)
            .args(args)
            .output()
            .expect("run docker")
    }

    /// The docker CLI command without arguments: `DOCKER_CONFIG`, `DOCKER_CONTENT_TRUST_SERVER`
    /// and both trust passphrases set, and `DOCKER_HOST` on a socket nobody listens on, so
    /// commands that need a daemon fail the same way everywhere.
    pub fn docker_command(&self, cwd: &Path) -> Command {
        require(
            "docker",
            "apt-get install docker.io, or any docker CLI on PATH",
        );
        let mut cmd = Command::new("docker");
        cmd.current_dir(cwd)
            .env("HOME", self.dir().join("home"))
            .env("DOCKER_CONFIG", self.docker_config())
            .env("DOCKER_CONTENT_TRUST_SERVER", self.notary_url())
            .env("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", PASSPHRASE)
            .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", PASSPHRASE)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.dir().join("no-daemon.sock").display()),
            )
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTENT_TRUST")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null());
        cmd
    }

    /// Pushes a tiny image (a config blob and one small layer, new for each call so every push
    /// has its own digest) to the registry as `repo:tag`, with plain HTTP, and returns what the
    /// registry then serves for the tag.
    pub fn push_image(&self, repo: &str, tag: &str, kind: ManifestKind) -> PushedImage {
        let n = self.pushes.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let file = format!("tufa stack image {repo}:{tag}, push #{n} at {nanos} ns\n");
        let tar = tar_with_one_file("tufa-stack.txt", file.as_bytes());
        let layer = gzip(&tar);
        let oci = kind != ManifestKind::DockerSchema2;
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Labels": { "tufa.stack.push": n.to_string() } },
            "rootfs": { "type": "layers", "diff_ids": [sha256_digest(&tar)] },
            "history": [{ "created_by": "tufa-tests Stack::push_image" }],
        }))
        .expect("config JSON");
        self.upload_blob(repo, &layer);
        self.upload_blob(repo, &config);

        let (config_type, layer_type) = if oci {
            (
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        } else {
            (
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            )
        };
        let manifest_type = if oci {
            ManifestKind::OciManifest.media_type()
        } else {
            ManifestKind::DockerSchema2.media_type()
        };
        let manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": { "mediaType": config_type, "size": config.len(), "digest": sha256_digest(&config) },
            "layers": [{ "mediaType": layer_type, "size": layer.len(), "digest": sha256_digest(&layer) }],
        }))
        .expect("manifest JSON");

        let (bytes, media_type) = if kind == ManifestKind::OciIndex {
            // The registry checks that an index's manifests exist, so the child goes first.
            self.put_manifest(repo, &sha256_digest(&manifest), manifest_type, &manifest);
            let index = serde_json::to_vec_pretty(&json!({
                "schemaVersion": 2,
                "mediaType": kind.media_type(),
                "manifests": [{
                    "mediaType": manifest_type,
                    "size": manifest.len(),
                    "digest": sha256_digest(&manifest),
                    "platform": { "architecture": "amd64", "os": "linux" },
                }],
            }))
            .expect("index JSON");
            (index, kind.media_type())
        } else {
            (manifest, manifest_type)
        };
        self.put_manifest(repo, tag, media_type, &bytes);
        PushedImage {
            digest: sha256_digest(&bytes),
            size: bytes.len() as u64,
            media_type: media_type.to_owned(),
        }
    }

    /// `GET /v2/<repo>/manifests/<reference>` from the registry with `Accept: <accept>`; panics
    /// unless the answer is 200.
    pub fn fetch_manifest(&self, repo: &str, reference: &str, accept: &str) -> Vec<u8> {
        let url = self.registry_url(&format!("/v2/{repo}/manifests/{reference}"));
        let mut resp = self
            .http
            .get(&url)
            .header("Accept", accept)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let body = resp
            .body_mut()
            .read_to_vec()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(
            resp.status(),
            200,
            "GET {url} (Accept: {accept}): {}",
            String::from_utf8_lossy(&body)
        );
        body
    }

    /// The bytes notary-server serves for `<gun>`'s `<role>.json` (e.g. `timestamp`,
    /// `targets/releases`), or `None` on 404: a test compares them before and after a command to
    /// show it published nothing.
    pub fn trust_file(&self, gun: &str, role: &str) -> Option<Vec<u8>> {
        let url = format!("{}/v2/{gun}/_trust/tuf/{role}.json", self.notary_url());
        let mut resp = http_agent(Some(&self.ca_file()))
            .get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let body = resp
            .body_mut()
            .read_to_vec()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        match resp.status().as_u16() {
            200 => Some(body),
            404 => None,
            s => panic!("GET {url}: {s}: {}", String::from_utf8_lossy(&body)),
        }
    }

    /// Kills one service (`registry`, `notary-server` or `notary-signer`) and waits until it is
    /// gone, to test what clients say when it is down; its port stays unused.
    pub fn stop(&mut self, service: &str) {
        let s = self
            .services
            .iter_mut()
            .find(|s| s.name == service)
            .unwrap_or_else(|| panic!("no service {service} in this stack"));
        let _ = s.child.kill();
        let _ = s.child.wait();
    }

    /// notary-server's log, for failure messages.
    pub fn server_log(&self) -> String {
        self.log_of("notary-server")
    }

    /// The log of one service: `notary-server`, `notary-signer` or `registry`.
    pub fn log_of(&self, service: &str) -> String {
        std::fs::read_to_string(self.dir().join("logs").join(format!("{service}.log")))
            .unwrap_or_default()
    }

    fn registry_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.registry_addr())
    }

    /// Uploads a blob in two steps: `POST` for an upload URL, then a monolithic `PUT` on it.
    fn upload_blob(&self, repo: &str, blob: &[u8]) {
        let url = self.registry_url(&format!("/v2/{repo}/blobs/uploads/"));
        let resp = self
            .http
            .post(&url)
            .send_empty()
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        assert_eq!(resp.status(), 202, "POST {url}: {resp:?}");
        let location = resp
            .headers()
            .get("Location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_else(|| panic!("POST {url}: no Location"));
        let location = if location.starts_with('/') {
            self.registry_url(location)
        } else {
            location.to_owned()
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={}", sha256_digest(blob));
        let resp = self
            .http
            .put(&put)
            .header("Content-Type", "application/octet-stream")
            .send(blob)
            .unwrap_or_else(|e| panic!("PUT {put}: {e}"));
        assert_eq!(resp.status(), 201, "PUT blob to {repo}: {resp:?}");
    }

    fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
        let url = self.registry_url(&format!("/v2/{repo}/manifests/{reference}"));
        let mut resp = self
            .http
            .put(&url)
            .header("Content-Type", media_type)
            .send(bytes)
            .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
        let digest = resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|d| d.to_str().ok())
            .map(str::to_owned);
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(resp.status(), 201, "PUT {url} ({media_type}): {body}");
        assert_eq!(
            digest.as_deref(),
            Some(sha256_digest(bytes).as_str()),
            "the registry's digest of {url} is not the sha256 of the bytes sent"
        );
    }

    fn spawn(&mut self, name: &'static str, cmd: &mut Command) {
        let log = self.dir().join("logs").join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("service log");
        let child = cmd
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log fd"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        self.services.push(Service { name, child, log });
    }

    /// Polls `ready` every 10 ms; fails with the logs if a service exits or time runs out.
    fn wait_until(
        &mut self,
        what: &str,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), StartFailure> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let is_ready = ready();
            for s in &mut self.services {
                if let Ok(Some(status)) = s.child.try_wait() {
                    let log = std::fs::read_to_string(&s.log).unwrap_or_default();
                    return Err(StartFailure {
                        port_taken: log.contains("address already in use"),
                        message: format!(
                            "{} exited with {status} while the stack started:\n{log}",
                            s.name
                        ),
                    });
                }
            }
            if is_ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                let logs: String = self
                    .services
                    .iter()
                    .map(|s| {
                        format!(
                            "--- {} log:\n{}\n",
                            s.name,
                            std::fs::read_to_string(&s.log).unwrap_or_default()
                        )
                    })
                    .collect();
                return Err(StartFailure {
                    port_taken: false,
                    message: format!(
                        "{what} was not ready after {} s:\n{logs}",
                        READY_TIMEOUT.as_secs()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn cert(&self, file: &str) -> String {
        self.dir().join("certs").join(file).display().to_string()
    }

    fn write_config(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir().join("config").join(name);
        std::fs::write(&path, contents).expect("write config");
        path
    }

    fn write_registry_config(&self) -> PathBuf {
        let yaml = format!(
            "version: 0.1\n\
             log: {{level: info, fields: {{service: registry}}}}\n\
             storage:\n  \
               filesystem: {{rootdirectory: {data}}}\n  \
               delete: {{enabled: true}}\n  \
               maintenance: {{uploadpurging: {{enabled: false}}}}\n\
             http:\n  \
               addr: {addr}\n  \
               secret: tufa-stack-not-a-secret\n  \
               headers: {{X-Content-Type-Options: [nosniff]}}\n",
            data = self.dir().join("registry-data").display(),
            addr = self.registry_addr(),
        );
        self.write_config("registry.yml", &yaml)
    }

    fn write_signer_config(&self, port: u16) -> PathBuf {
        let conf = json!({
            "server": {
                "grpc_addr": format!("127.0.0.1:{port}"),
                "tls_cert_file": self.cert("notary-signer.crt"),
                "tls_key_file": self.cert("notary-signer.key"),
                "client_ca_file": self.cert("ca.crt"),
            },
            "logging": { "level": "info" },
            "storage": { "backend": "memory" },
        });
        self.write_config("notary-signer.json", &conf.to_string())
    }

    fn write_server_config(&self, trust: TrustService, signer_port: u16) -> PathBuf {
        let trust_service = match trust {
            TrustService::Remote => json!({
                "type": "remote",
                "hostname": "127.0.0.1",
                "port": signer_port.to_string(),
                "key_algorithm": "ecdsa",
                "tls_ca_file": self.cert("ca.crt"),
                "tls_client_cert": self.cert("notary-server.crt"),
                "tls_client_key": self.cert("notary-server.key"),
            }),
            TrustService::Local => json!({ "type": "local" }),
        };
        let conf = json!({
            "server": {
                "http_addr": format!("127.0.0.1:{}", self.notary_port),
                "tls_cert_file": self.cert("notary-server.crt"),
                "tls_key_file": self.cert("notary-server.key"),
            },
            "trust_service": trust_service,
            "storage": { "backend": "memory" },
            "logging": { "level": "info" },
        });
        self.write_config("notary-server.json", &conf.to_string())
    }

    /// The notary CLI's `client.json` and the docker CLI's `DOCKER_CONFIG`.
    fn write_client_configs(&self) {
        let client = json!({
            "trust_dir": self.notary_trust_dir(),
            "remote_server": { "url": self.notary_url(), "root_ca": self.ca_file() },
        });
        std::fs::write(self.dir().join("notary/client.json"), client.to_string())
            .expect("notary client.json");
        for host in ["127.0.0.1", "localhost"] {
            let tls = self
                .docker_config()
                .join("tls")
                .join(format!("{host}:{}", self.notary_port));
            std::fs::create_dir_all(&tls).expect("docker tls dir");
            std::fs::copy(self.ca_file(), tls.join("ca.crt")).expect("docker ca.crt");
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for s in &mut self.services {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }
}

impl ManifestKind {
    /// Every kind, for tests that cover them all.
    pub const ALL: [ManifestKind; 3] = [Self::DockerSchema2, Self::OciManifest, Self::OciIndex];

    /// The media type of the manifest (the `Content-Type` and `Accept` value).
    pub fn media_type(self) -> &'static str {
        match self {
            Self::DockerSchema2 => "application/vnd.docker.distribution.manifest.v2+json",
            Self::OciManifest => "application/vnd.oci.image.manifest.v1+json",
            Self::OciIndex => "application/vnd.oci.image.index.v1+json",
        }
    }
}

pub(crate) fn openssl(certs: &Path, args: &[&str]) {
    // A minimal config, so the system openssl.cnf adds no extensions of its own.
    let conf = certs.join("openssl.cnf");
    if !conf.exists() {
        std::fs::write(&conf, "[req]\ndistinguished_name = dn\n[dn]\n").expect("openssl.cnf");
    }
    let out = Command::new("openssl")
        .current_dir(certs)
        .arg(args[0])
        .arg("-config")
        .arg(&conf)
        .args(&args[1..])
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `<certs>/ca.{crt,key}`: a self-signed EC P-256 CA.
pub(crate) fn make_ca(certs: &Path) {
    openssl(
        certs,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "30",
            "-subj",
            "/CN=tufa stack test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
        ],
    );
}

/// `<certs>/<name>.{crt,key}`: a leaf for loopback, usable as TLS server and client (notary-server
/// shows its server certificate to notary-signer as its client certificate).
pub(crate) fn make_leaf(certs: &Path, name: &str) {
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    let subj = format!("/CN={name}");
    let san = format!("subjectAltName=DNS:localhost,DNS:{name},IP:127.0.0.1,IP:::1");
    openssl(
        certs,
        &[
            "req",
            "-x509",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "30",
            "-subj",
            &subj,
            "-addext",
            &san,
            "-addext",
            "extendedKeyUsage=serverAuth,clientAuth",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "keyUsage=critical,digitalSignature",
        ],
    );
}

/// Three distinct free loopback ports: all bound at once so they differ, then released.
fn free_ports() -> [u16; 3] {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    let port = |i: usize| listeners[i].local_addr().expect("local_addr").port();
    [port(0), port(1), port(2)]
}

/// A blocking HTTP client that reports every status as a response, ignores proxy variables
/// (everything here is on loopback) and, with `ca`, trusts only that CA.
fn http_agent(ca: Option<&Path>) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)));
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).expect("read CA");
        let cert = ureq::tls::Certificate::from_pem(&pem).expect("CA is PEM");
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
                .build(),
        );
    }
    config.build().new_agent()
}

fn status_of(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Option<u16> {
    resp.ok().map(|r| r.status().as_u16())
}

/// `sha256:<hex>` of `bytes`.
fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A ustar archive holding one regular file.
fn tar_with_one_file(name: &str, contents: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    let mut field = |at: usize, value: &str| {
        header[at..at + value.len()].copy_from_slice(value.as_bytes());
    };
    field(100, "0000644\0"); // mode
    field(108, "0000000\0"); // uid
    field(116, "0000000\0"); // gid
    field(124, &format!("{:011o}\0", contents.len())); // size
    field(136, "00000000000\0"); // mtime
    field(156, "0"); // regular file
    field(257, "ustar\0");
    field(263, "00");
    // The checksum is computed with its own field as spaces.
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());

    let mut tar = header.to_vec();
    tar.extend_from_slice(contents);
    tar.resize(tar.len().next_multiple_of(512), 0);
    tar.resize(tar.len() + 1024, 0); // two zero blocks end the archive
    tar
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_round_trips_through_gzip_and_has_a_valid_checksum() {
        let tar = tar_with_one_file("a.txt", b"hello\n");
        assert_eq!(tar.len(), 512 * 4);
        let mut unsum = tar[..512].to_vec();
        unsum[148..156].fill(b' ');
        let sum: u32 = unsum.iter().map(|&b| u32::from(b)).sum();
        assert_eq!(&tar[148..155], format!("{sum:06o}\0").as_bytes());
        let mut back = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&gzip(&tar)[..]),
            &mut back,
        )
        .expect("gunzip");
        assert_eq!(back, tar);
    }

    #[test]
    fn gnu_tar_reads_the_layer() {
        let layer = gzip(&tar_with_one_file("tufa-stack.txt", b"hello\n"));
        let mut tar = Command::new("tar")
            .args(["-tvzf", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run tar");
        tar.stdin
            .take()
            .expect("stdin")
            .write_all(&layer)
            .expect("write");
        let out = tar.wait_with_output().expect("tar output");
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(listing.starts_with("-rw-r--r--"), "{listing}");
        assert!(
            listing.contains(" 6 ") && listing.trim_end().ends_with("tufa-stack.txt"),
            "{listing}"
        );
    }
}
