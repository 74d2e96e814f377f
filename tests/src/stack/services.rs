//! The stack's servers: notary-signer, notary-server and the registry, each configured here,
//! started as a child process on a free loopback port, and waited for until it answers.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use serde_json::json;
use tufa_testkit::pki::{make_ca, make_leaf, make_self_signed};
use tufa_testkit::services::{free_ports, notary_server_config, Services, StartFailure};

use super::{ServerSigner, Stack, StackTls};

/// A GUN whose `timestamp.key` is fetched once at start, to prove the server reaches the signer.
const PROBE_GUN: &str = "tufa-stack-readiness-probe";

/// Which trust service notary-server uses.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum TrustService {
    /// notary-signer over mTLS, ECDSA server keys.
    Remote,
    /// In-process, ed25519 server keys.
    Local,
    /// tufad's notary-signer listener over mTLS, ECDSA keys on a SoftHSM token.
    Tufad,
}

impl Stack {
    /// One attempt at starting every service in a fresh directory on fresh ports.
    pub(super) fn try_start(trust: TrustService, tls: StackTls) -> Result<Stack, StartFailure> {
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
            services: Services::new(&dir.path().join("logs")),
            signer: None,
            notary_port,
            registry_port,
            signer_port,
            tls,
            http: http_agent(Trust::Nothing),
            pushes: AtomicU64::new(0),
            dir,
        };

        let certs = stack.dir().join("certs");
        if tls == StackTls::SelfSigned {
            // As most self-hosted set-ups: one certificate per server, for its address only.
            make_self_signed(&certs, "notary-self", "127.0.0.1", "IP:127.0.0.1");
            make_self_signed(&certs, "registry-self", "127.0.0.1", "IP:127.0.0.1");
        }
        // The registry needs no CA: start it first so it boots while openssl runs.
        let registry_conf = stack.write_registry_config();
        stack.spawn(
            "registry",
            Command::new("docker-registry")
                .arg("serve")
                .arg(registry_conf),
        );

        make_ca(&certs, "ca", "tufa stack test CA");
        make_leaf(&certs, "ca", "notary-server");
        if trust == TrustService::Remote {
            make_leaf(&certs, "ca", "notary-signer");
            let conf = stack.write_signer_config(signer_port);
            stack.spawn(
                "notary-signer",
                Command::new("notary-signer").arg("-config").arg(conf),
            );
            // notary-server dials the signer once at start; if that fails, gRPC backs off and
            // requests fail with `Unavailable` for a second or more. So the signer listens first.
            stack.services.wait_until("notary-signer", || {
                TcpStream::connect(("127.0.0.1", signer_port)).is_ok()
            })?;
        }
        if trust == TrustService::Tufad {
            // tufad presents the signer's certificate and requires notary-server's.
            make_leaf(&certs, "ca", "notary-signer");
            let signer = ServerSigner::try_start(certs.clone(), signer_port).map_err(|log| {
                StartFailure {
                    port_taken: log.contains("Address already in use"),
                    message: log,
                }
            })?;
            stack.signer = Some(signer);
            stack
                .services
                .wait_until("tufad's notary-signer listener", || {
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
        stack.services.wait_until("registry", || {
            status_of(http.get(&ping).call()) == Some(200)
        })?;
        let notary_http = stack.notary_agent();
        let health = format!("{}/_notary_server/health", stack.notary_url());
        stack.services.wait_until("notary-server", || {
            status_of(notary_http.get(&health).call()) == Some(200)
        })?;
        if trust != TrustService::Local {
            stack.wait_for_signer_link()?;
        }
        // Every service must still be running: one that lost its port to another process dies,
        // while the readiness checks may have been answered by whoever holds that port.
        stack.services.wait_until("all services", || true)?;
        Ok(stack)
    }

    /// The health check says nothing about the signer until its first periodic run, so make
    /// the server create a key in the signer (a GUN with no root yet gets one that never
    /// signed, the same each time): this proves the mTLS between them.
    pub(super) fn wait_for_signer_link(&mut self) -> Result<(), StartFailure> {
        let notary_http = self.notary_agent();
        let url = format!(
            "{}/v2/{PROBE_GUN}/_trust/tuf/timestamp.key",
            self.notary_url()
        );
        self.services
            .wait_until("notary-server's link to its signer", || {
                status_of(notary_http.get(&url).call()) == Some(200)
            })
    }

    fn spawn(&mut self, name: &'static str, cmd: &mut Command) {
        self.services.spawn(name, cmd.current_dir(self.dir.path()));
    }

    fn cert(&self, file: &str) -> PathBuf {
        self.dir().join("certs").join(file)
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
        let yaml = match self.tls {
            StackTls::Ca => yaml,
            StackTls::SelfSigned => format!(
                "{yaml}  tls: {{certificate: {}, key: {}}}\n",
                self.cert("registry-self.crt").display(),
                self.cert("registry-self.key").display()
            ),
        };
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

    /// The harness's own client for notary-server: trusting the stack's CA, or (self-signed)
    /// checking nothing, since rustls refuses a CA certificate as a server's own.
    pub(super) fn notary_agent(&self) -> ureq::Agent {
        match self.tls {
            StackTls::Ca => http_agent(Trust::Ca(&self.ca_file())),
            StackTls::SelfSigned => http_agent(Trust::Nothing),
        }
    }

    fn write_server_config(&self, trust: TrustService, signer_port: u16) -> PathBuf {
        let trust_service = match trust {
            TrustService::Remote | TrustService::Tufad => json!({
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
        let name = match self.tls {
            StackTls::Ca => "notary-server",
            StackTls::SelfSigned => "notary-self",
        };
        let conf = notary_server_config(
            self.notary_port,
            &self.cert(&format!("{name}.crt")),
            &self.cert(&format!("{name}.key")),
            trust_service,
        );
        self.write_config("notary-server.json", &conf.to_string())
    }
}

/// What the harness's HTTPS client checks.
pub(super) enum Trust<'a> {
    /// Certificates issued by this CA only.
    Ca(&'a Path),
    /// Nothing (plain HTTP, or a self-signed server: what is under test is tufa, not ureq).
    Nothing,
}

/// A blocking HTTP client that reports every status as a response, ignores proxy variables
/// (everything here is on loopback) and checks certificates as `trust` says.
pub(super) fn http_agent(trust: Trust<'_>) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)));
    let tls = match trust {
        Trust::Ca(ca) => {
            let pem = std::fs::read(ca).expect("read CA");
            let cert = ureq::tls::Certificate::from_pem(&pem).expect("CA is PEM");
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
        }
        Trust::Nothing => ureq::tls::TlsConfig::builder().disable_verification(true),
    };
    config.tls_config(tls.build()).build().new_agent()
}

/// Sends `request` (a GET of `url`) and reads the whole answer: its status and body.
pub(super) fn get(
    request: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    url: &str,
) -> (u16, Vec<u8>) {
    let mut resp = request.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let body = resp
        .body_mut()
        .read_to_vec()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (resp.status().as_u16(), body)
}

fn status_of(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Option<u16> {
    resp.ok().map(|r| r.status().as_u16())
}
