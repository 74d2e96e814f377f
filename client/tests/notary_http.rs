//! `tufa_client::notary` against a real notary-server 0.7 on loopback.
//!
//! Each test starts its own notary-server (local ed25519 signing, memory storage, TLS from a
//! throwaway CA made with the `openssl` CLI) on a free 127.0.0.1 port; it is killed on drop.
//! Nothing is skipped: a missing `notary-server` or `openssl` fails with the install command.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tufa_client::http::HttpError;
use tufa_client::notary::{NotaryClient, NotaryConfig, NotaryError};
use tufa_client::tuf::{Gun, KeyType, RemoteStore, RoleName, Sha256Digest};

/// A notary-server process with its certificates, killed on drop.
struct NotaryServer {
    child: Child,
    dir: tempfile::TempDir,
    url: url::Url,
}

impl NotaryServer {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        make_ca(dir.path(), "ca");
        make_ca(dir.path(), "other-ca");
        make_leaf(dir.path(), "ca", "server");
        let port = free_port();
        let config = serde_json::json!({
            "server": {
                "http_addr": format!("127.0.0.1:{port}"),
                "tls_cert_file": dir.path().join("server.crt"),
                "tls_key_file": dir.path().join("server.key"),
            },
            "trust_service": {"type": "local"},
            "storage": {"backend": "memory"},
            "logging": {"level": "info"},
        });
        let config_path = dir.path().join("notary-server.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let log = std::fs::File::create(dir.path().join("notary-server.log")).unwrap();
        let child = Command::new("notary-server")
            .arg("-config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run notary-server ({e}): run scripts/install-deps.sh (apt-get install notary)")
            });
        let server = Self {
            child,
            dir,
            url: format!("https://127.0.0.1:{port}").parse().unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "notary-server did not listen on port {port}; log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn ca(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.crt"))
    }

    /// A client trusting `ca` (a file in the server's temp dir), without credentials.
    fn client_trusting(&self, ca: Option<PathBuf>) -> NotaryClient {
        NotaryClient::new(NotaryConfig {
            server: self.url.clone(),
            ca_file: ca,
            client_cert: None,
            credentials: None,
        })
        .unwrap()
    }

    fn client(&self) -> NotaryClient {
        self.client_trusting(Some(self.ca("ca")))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("notary-server.log")).unwrap_or_default()
    }
}

impl Drop for NotaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): apt-get install openssl"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_ca(dir: &Path, name: &str) {
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &key,
        ],
    );
    let subj = format!("/CN=tufa test {name}");
    openssl(
        dir,
        &[
            "req", "-x509", "-new", "-key", &key, "-subj", &subj, "-days", "2", "-out", &crt,
        ],
    );
}

fn make_leaf(dir: &Path, ca: &str, name: &str) {
    let ec = format!("{name}.ec");
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let crt = format!("{name}.crt");
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &ec,
        ],
    );
    openssl(
        dir,
        &["pkcs8", "-topk8", "-nocrypt", "-in", &ec, "-out", &key],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            "/CN=notary-server",
            "-out",
            &csr,
        ],
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            &crt,
        ],
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn gun(name: &str) -> Gun {
    format!("127.0.0.1:5000/tufa-test/{name}").parse().unwrap()
}

#[tokio::test]
async fn server_keys_are_ed25519_from_a_local_signing_server() {
    let server = NotaryServer::start();
    let repo = server.client().repo(&gun("keys"));
    let timestamp = repo.server_key(&RoleName::TIMESTAMP).await.unwrap();
    assert_eq!(timestamp.key_type(), &KeyType::parse("ed25519"));
    assert_eq!(timestamp.public().len(), 32);
    let snapshot = repo.server_key(&RoleName::SNAPSHOT).await.unwrap();
    assert_ne!(snapshot.id(), timestamp.id());
    let rotated = repo.rotate_server_key(&RoleName::SNAPSHOT).await.unwrap();
    assert_eq!(rotated.key_type(), &KeyType::parse("ed25519"));
    assert_ne!(rotated.id(), snapshot.id());
}

#[tokio::test]
async fn an_unknown_repository_has_no_metadata_and_deletes_cleanly() {
    let server = NotaryServer::start();
    let repo = server.client().repo(&gun("nothing-here"));
    assert_eq!(repo.role(&RoleName::ROOT, 1 << 20).await.unwrap(), None);
    assert_eq!(repo.role(&RoleName::RELEASES, 1 << 20).await.unwrap(), None);
    let digest = Sha256Digest::of(b"no such file");
    assert_eq!(
        repo.role_by_hash(&RoleName::SNAPSHOT, &digest, 1 << 20)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        repo.role_version(&RoleName::ROOT, 1, 1 << 20)
            .await
            .unwrap(),
        None
    );
    repo.delete().await.unwrap();
    assert_eq!(
        repo.role(&RoleName::TIMESTAMP, 1 << 20).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn garbage_uploads_get_typed_readable_errors() {
    let server = NotaryServer::start();
    let g = gun("garbage");
    let repo = server.client().repo(&g);

    let e = repo
        .publish(&[(RoleName::TARGETS, b"this is not json".to_vec())])
        .await
        .unwrap_err();
    match &e {
        NotaryError::MalformedUpload { gun, code, .. } => {
            assert_eq!(gun, &g);
            assert_eq!(code, "MALFORMED_JSON");
        }
        other => panic!("expected MalformedUpload, got {other:?}"),
    }
    let text = e.to_string();
    assert!(
        text.contains(g.as_str()) && text.contains("could not be parsed"),
        "{text}"
    );

    // Well-formed JSON that is no valid root: the server's validator names what is wrong.
    let e = repo
        .publish(&[(RoleName::ROOT, b"{}".to_vec())])
        .await
        .unwrap_err();
    match &e {
        NotaryError::InvalidUpdate { gun, name, msg } => {
            assert_eq!(gun, &g);
            assert_eq!(name, "ErrBadRoot");
            assert!(!msg.is_empty());
        }
        other => panic!("expected InvalidUpdate, got {other:?}"),
    }
    assert!(!e.is_version_conflict());
    assert!(e.to_string().contains("ErrBadRoot"), "{e}");
    // Nothing was stored.
    assert_eq!(repo.role(&RoleName::ROOT, 1 << 20).await.unwrap(), None);
}

#[tokio::test]
async fn oversized_answers_are_refused_naming_role_and_limit() {
    let server = NotaryServer::start();
    let repo = server.client().repo(&gun("cap"));
    let e = repo
        .server_key_capped(&RoleName::TIMESTAMP, 16)
        .await
        .unwrap_err();
    assert!(
        matches!(e, NotaryError::TooLarge { limit: 16, .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("more than 16 bytes for the timestamp key"),
        "{text}"
    );
    assert!(
        text.contains(&server.url.to_string().trim_end_matches('/').to_owned()),
        "{text}"
    );
}

#[tokio::test]
async fn tls_and_connection_failures_say_what_to_fix() {
    let server = NotaryServer::start();
    let g = gun("tls");

    // The wrong CA: the error names the CA file that was used.
    let other = server.ca("other-ca");
    let e = server
        .client_trusting(Some(other.clone()))
        .repo(&g)
        .server_key(&RoleName::TIMESTAMP)
        .await
        .unwrap_err();
    assert!(
        matches!(e, NotaryError::Http(HttpError::Tls { .. })),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains(&other.display().to_string()), "{text}");
    assert!(text.contains("tls/127.0.0.1:"), "{text}");

    // No CA at all: the system roots do not know the throwaway CA.
    let e = server
        .client_trusting(None)
        .repo(&g)
        .role(&RoleName::ROOT, 1 << 20)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("system roots"), "{e}");

    // Nothing listening: the URL and the setting to check are named.
    let url: url::Url = format!("https://127.0.0.1:{}", free_port())
        .parse()
        .unwrap();
    let client = NotaryClient::new(NotaryConfig {
        server: url.clone(),
        ca_file: Some(server.ca("ca")),
        client_cert: None,
        credentials: None,
    })
    .unwrap();
    let e = client.repo(&g).delete().await.unwrap_err();
    assert!(
        matches!(e, NotaryError::Http(HttpError::Unreachable { .. })),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains(url.as_str().trim_end_matches('/'))
            && text.contains("DOCKER_CONTENT_TRUST_SERVER"),
        "{text}"
    );
}
