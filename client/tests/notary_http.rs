//! `tufa_client::notary` against a real notary-server 0.7 on loopback.
//!
//! Each test starts its own notary-server (local ed25519 signing, memory storage, TLS from a
//! throwaway CA made with the `openssl` CLI) on a free 127.0.0.1 port; it is killed on drop.
//! Nothing is skipped: a missing `notary-server` or `openssl` fails with the install step.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;

use tufa_client::http::HttpError;
use tufa_client::notary::{NotaryClient, NotaryConfig, NotaryError};
use tufa_client::tuf::{Gun, KeyType, RemoteStore, RoleName, Sha256Digest};
use tufa_testkit::pki::{make_ca, make_leaf};
use tufa_testkit::require;
use tufa_testkit::services::{self, free_ports, notary_server_config, Services, StartFailure};

/// A notary-server process with its certificates, killed on drop.
struct NotaryServer {
    _services: Services,
    dir: tempfile::TempDir,
    url: url::Url,
}

impl NotaryServer {
    fn start() -> Self {
        require("notary-server", "apt-get install notary");
        services::start(Self::try_start)
    }

    fn try_start() -> Result<Self, StartFailure> {
        let dir = tempfile::tempdir().unwrap();
        make_ca(dir.path(), "ca", "tufa test ca");
        make_ca(dir.path(), "other-ca", "tufa test other-ca");
        make_leaf(dir.path(), "ca", "server");
        let [port] = free_ports();
        let config = notary_server_config(
            port,
            &dir.path().join("server.crt"),
            &dir.path().join("server.key"),
            serde_json::json!({"type": "local"}),
        );
        let config_path = dir.path().join("notary-server.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut services = Services::new(dir.path());
        services.spawn(
            "notary-server",
            Command::new("notary-server")
                .arg("-config")
                .arg(&config_path)
                .current_dir(dir.path()),
        );
        services.wait_until("notary-server", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?;
        services.wait_until("notary-server, still running", || true)?;
        Ok(Self {
            _services: services,
            dir,
            url: format!("https://127.0.0.1:{port}").parse().unwrap(),
        })
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
    let [free] = free_ports();
    let url: url::Url = format!("https://127.0.0.1:{free}").parse().unwrap();
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
