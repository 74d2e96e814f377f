//! Slow retrieval, endless data and cleartext credentials (issue 11, item 7), through the hostile
//! server in `tufa_tests::hostile`, against the real `tufa` binary:
//! - a notary server, its token service or a registry that trickles or stalls is cut off at the
//!   deadline of one request (`TUFA_HTTP_TIMEOUT`, 2 s here; 300 s by default), naming the URL;
//! - a file whose recorded length is beyond all reason is cut off at tufa's ceiling for one
//!   metadata file (100 MiB, Notary's download cap), naming the file;
//! - credentials are never sent to a plain-`http://` token service, unless the server itself is
//!   plain HTTP on this machine (a local registry), which still gets its token.
//!
//! Every refusal leaves the trust cache byte for byte as it was. Each `tufa` runs under a guard:
//! one still running after [`GUARD`] fails the test (without a deadline, a trickle holds tufa
//! for minutes: the per-read timeout never fires).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tempfile::TempDir;
use tufa_client::tuf::{RoleName, UpdateOptions};
use tufa_testkit::{served, sign, tree, Files, Fixture};
use tufa_tests::hostile::{HostileServer, Served, Tamper, TOKEN};
use tufa_tests::{bin, Run};

/// How long a `tufa` may run before the test calls it hung.
const GUARD: Duration = Duration::from_secs(40);

/// The deadline these tests give one request.
const DEADLINE: &str = "2";

/// How slowly a trickle sends: every read gets a byte soon, the whole takes minutes.
const TRICKLE: Duration = Duration::from_millis(700);

/// The credentials `docker login` stored for the hostile servers.
const ALICE_BASIC: &str = "Basic YWxpY2U6czNjcmV0";

/// A machine running `tufa` against hostile servers: its own `DOCKER_CONFIG` (credentials) and
/// trust dir, and no agent.
struct Client {
    dir: TempDir,
}

impl Client {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("docker-config")).unwrap();
        Self { dir }
    }

    fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker-config")
    }

    /// The trust dir of `tufa notary` (and, under `DOCKER_CONFIG`, of the docker verbs).
    fn trust(&self) -> PathBuf {
        self.dir.path().join("trust")
    }

    /// What `docker login HOST_PORT -u alice -p s3cret` stores.
    fn login(&self, host_port: &str) {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let config = serde_json::json!({ "auths": { host_port: { "auth": auth } } });
        std::fs::write(self.docker_config().join("config.json"), config.to_string()).unwrap();
    }

    /// `tufa notary --server URL --tls-ca CA --trust-dir TRUST list GUN`.
    fn list(&self, server: &HostileServer, gun: &str) -> Run {
        let ca = server.ca_file();
        let trust = self.trust();
        let args = tufa_tests::notary_args(&server.url(), &ca, &trust, &["list", gun]);
        self.tufa(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `tufa ARGS` with the 2 s deadline, under the guard.
    fn tufa(&self, args: &[&str]) -> Run {
        let what = format!("TUFA_HTTP_TIMEOUT={DEADLINE} tufa {args:?}");
        let out = |name: &str| std::fs::File::create(self.dir.path().join(name)).unwrap();
        let mut child = Command::new(bin("tufa"))
            .args(args)
            .current_dir(self.dir.path())
            .env("TUFA_HTTP_TIMEOUT", DEADLINE)
            .env("DOCKER_CONFIG", self.docker_config())
            .env("TUFA_AGENT_SOCK", self.dir.path().join("no-agent.sock"))
            .env_remove("DOCKER_CONTENT_TRUST_SERVER")
            .env_remove("TUFA_TRUST_DIR")
            .stdin(Stdio::null())
            .stdout(out("stdout"))
            .stderr(out("stderr"))
            .spawn()
            .unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > GUARD {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{what} was still running after {} s: nothing cut the slow server off",
                    GUARD.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let read = |name: &str| std::fs::read(self.dir.path().join(name)).unwrap();
        Run::new(
            what,
            Output {
                status,
                stdout: read("stdout"),
                stderr: read("stderr"),
            },
        )
    }
}

/// Runs `run` and checks that it fails saying every one of `words`, leaves `trust` as it was,
/// and that a tampered answer was asked for; returns stderr and what the server served.
fn refused(
    scenario: &str,
    server: &HostileServer,
    trust: &Path,
    run: impl FnOnce() -> Run,
    words: &[&str],
) -> (String, Vec<Served>) {
    let before = tree(trust);
    server.served();
    let err = run().fails();
    let served = server.served();
    for w in words {
        assert!(err.contains(w), "{scenario}: {w:?} missing from:\n{err}");
    }
    assert!(
        served.iter().any(|s| s.tampered),
        "{scenario}: no tampered answer was asked for: {served:?}"
    );
    assert!(tree(trust) == before, "{scenario}: the trust cache changed");
    println!("--- {scenario}\n{err}");
    (err, served)
}

fn metadata_url(server: &HostileServer, gun: &str, file: &str) -> String {
    format!("{}/v2/{gun}/_trust/tuf/{file}", server.url())
}

#[test]
fn a_trickling_or_stalling_notary_server_is_cut_off_at_the_deadline() {
    let fx = Fixture::new();
    let gun = fx.gun.to_string();
    let server = HostileServer::fake(served(&fx.build()));
    let client = Client::new();

    // First contact, root.json never answered: nothing is cached.
    server.tamper(vec![Tamper::stall("root")]);
    let (err, _) = refused(
        "a stalled root.json on first contact",
        &server,
        &client.trust(),
        || client.list(&server, &gun),
        &[
            &format!(
                "GET {} took longer than 2 s",
                metadata_url(&server, &gun, "root.json")
            ),
            "TUFA_HTTP_TIMEOUT=SECONDS",
        ],
    );
    assert!(err.contains("root"), "{err}");

    // The reader trusts the repository on first use, through the honest server.
    server.tamper(Vec::new());
    client.list(&server, &gun).ok();

    // Then the timestamp comes one byte at a time: every read gets a byte, the whole never.
    server.tamper(vec![Tamper::trickle("timestamp", TRICKLE)]);
    let started = Instant::now();
    refused(
        "a trickled timestamp.json",
        &server,
        &client.trust(),
        || client.list(&server, &gun),
        &[&format!(
            "GET {} took longer than 2 s",
            metadata_url(&server, &gun, "timestamp.json")
        )],
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );

    // Honest again: nothing above was refused for another reason.
    server.tamper(Vec::new());
    client.list(&server, &gun).ok();
}

#[test]
fn a_flood_beyond_any_recorded_length_is_cut_off_at_the_ceiling() {
    let mut fx = Fixture::new();
    let gun = fx.gun.to_string();
    let server = HostileServer::fake(served(&fx.build()));
    let client = Client::new();
    client.list(&server, &gun).ok();

    // A timestamp-key holder records a snapshot of 1 TiB and serves spaces without end (here a
    // little over the ceiling, so a client without one ends too, with another error).
    fx.timestamp_version += 1;
    let mut files: Files = fx.build();
    let mut timestamp = fx.timestamp_body(&files[&RoleName::SNAPSHOT]);
    timestamp.snapshot.length = 1 << 40;
    files.insert(RoleName::TIMESTAMP, sign(timestamp, &[&fx.timestamp_key]));
    server.set_files(served(&files));
    let ceiling = UpdateOptions::MAX_METADATA_SIZE;
    assert_eq!(ceiling, 100 << 20, "Notary's MaxDownloadSize");
    server.tamper(vec![Tamper::flood("snapshot", ceiling + (4 << 20))]);
    refused(
        "a flooded snapshot.json recorded as 1 TiB",
        &server,
        &client.trust(),
        || client.list(&server, &gun),
        &[
            "the notary server sent more than 104857600 bytes for snapshot.json",
            "tufa's ceiling for one metadata file, Notary's download cap; timestamp.json \
             records 1099511627776 bytes",
        ],
    );
}

#[test]
fn a_trickling_token_service_is_cut_off_at_the_deadline() {
    let fx = Fixture::new();
    let gun = fx.gun.to_string();
    let server = HostileServer::fake(served(&fx.build()));
    let client = Client::new();
    client.login(&server.host_port());
    let realm = format!("{}/token", server.url());
    server.require_token(&realm);
    // The token service works: the reader trusts the repository through it.
    client.list(&server, &gun).ok();
    let asked = server.served();
    assert!(
        asked
            .iter()
            .any(|s| s.file == "/token" && s.authorization.as_deref() == Some(ALICE_BASIC)),
        "{asked:?}"
    );

    server.tamper(vec![Tamper::trickle("/token", TRICKLE)]);
    // A fresh process has no token yet: it must ask the (now trickling) token service.
    refused(
        "a trickled token service",
        &server,
        &client.trust(),
        || client.list(&server, &gun),
        &[
            &format!("the token service {realm} named by the notary server"),
            "it did not answer within 2 s",
        ],
    );
}

#[test]
fn credentials_never_go_to_a_plain_http_token_service() {
    let fx = Fixture::new();
    let gun = fx.gun.to_string();
    let server = HostileServer::fake(served(&fx.build()));
    // The realm a hostile notary server names: a plain-HTTP listener that records what it gets.
    let witness = HostileServer::fake_plain(Default::default());
    let realm = format!("{}/token", witness.url());
    witness.require_token(&realm);
    server.require_token(&realm);
    let client = Client::new();
    client.login(&server.host_port());

    let (err, _) = refused(
        "a notary server over TLS naming a plain-HTTP token service",
        &server,
        &client.trust(),
        || client.list(&server, &gun),
        &[
            &format!("sends tufa to the token service {realm}, which is plain HTTP"),
            r#"does not send user "alice" with a password over plain HTTP"#,
            "https:// realm",
        ],
    );
    assert!(!err.contains("s3cret"), "{err}");
    assert_eq!(
        witness.served(),
        Vec::new(),
        "the plain-HTTP realm was asked"
    );

    // A registry (over TLS, on loopback) naming one: the same.
    let digest = format!("sha256:{}", "ab".repeat(32));
    let image = format!("{}/app@{digest}", server.host_port());
    server.tamper(vec![Tamper::replace(
        &format!("/v2/app/manifests/{digest}"),
        Vec::new(),
    )]);
    let trust = client.docker_config().join("trust");
    let (err, _) = refused(
        "a registry over TLS naming a plain-HTTP token service",
        &server,
        &trust,
        || client.tufa(&["verify", &image]),
        &[
            &format!(
                "the registry {} sends tufa to the token service {realm}, which is plain HTTP",
                server.host_port()
            ),
            r#"does not send user "alice" with a password"#,
        ],
    );
    assert!(!err.contains("s3cret"), "{err}");
    assert_eq!(
        witness.served(),
        Vec::new(),
        "the plain-HTTP realm was asked"
    );
}

#[test]
fn a_plain_http_registry_on_this_machine_still_gets_its_token() {
    let registry = HostileServer::fake_plain(Default::default());
    let realm = format!("{}/token", registry.url());
    assert!(realm.starts_with("http://127.0.0.1:"), "{realm}");
    registry.require_token(&realm);
    let digest = format!("sha256:{}", "cd".repeat(32));
    registry.tamper(vec![Tamper::replace(
        &format!("/v2/app/manifests/{digest}"),
        Vec::new(),
    )]);
    let client = Client::new();
    client.login(&registry.host_port());

    let image = format!("{}/app@{digest}", registry.host_port());
    let out = client.tufa(&["verify", &image]).ok();
    assert_eq!(out.trim(), image);
    let served = registry.served();
    let token = served
        .iter()
        .find(|s| s.file == "/token")
        .unwrap_or_else(|| panic!("no token was asked for: {served:?}"));
    assert_eq!(token.authorization.as_deref(), Some(ALICE_BASIC));
    let bearer = format!("Bearer {TOKEN}");
    assert!(
        served
            .iter()
            .any(|s| s.file == format!("/v2/app/manifests/{digest}")
                && s.status == 200
                && s.authorization.as_deref() == Some(bearer.as_str())),
        "{served:?}"
    );
}

#[test]
fn a_trickling_registry_is_cut_off_at_the_deadline() {
    let registry = HostileServer::fake(Default::default());
    let digest = format!("sha256:{}", "ef".repeat(32));
    let path = format!("/v2/app/manifests/{digest}");
    registry.tamper(vec![Tamper::trickle(&path, TRICKLE)]);
    let client = Client::new();
    let image = format!("{}/app@{digest}", registry.host_port());
    let trust = client.docker_config().join("trust");
    refused(
        "a trickled manifest HEAD",
        &registry,
        &trust,
        || client.tufa(&["verify", &image]),
        &[
            &format!("HEAD {}{path} took longer than 2 s", registry.url()),
            "the registry or the network is too slow",
        ],
    );
}
