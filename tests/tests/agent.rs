//! tufad end to end: a real SoftHSM token per test, the real agent binary on a temp socket.

use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use sha2::{Digest as _, Sha256};
use tonic::Code;
use tufa_client::agent::{AgentClientError, SignContext};
use tufa_proto::v1;
use tufa_testkit::pki::{openssl, openssl_ok};
use tufa_tests::{require, signing, verify_with_p256, Agent, AgentOptions, Device, Run, SoftHsm};

/// Runs each body, written once, against a fresh SoftHSM token (`NAME::softhsm`), a fresh
/// simulated YubiKey through pcscd (`NAME::yubikey`) and a tpm2-pkcs11 token on a fresh software
/// TPM (`NAME::tpm`): the same assertions hold for every backend. `on_devices_that_import!`
/// leaves out the TPM, whose module cannot import private keys (see
/// `tpm_refuses_import_with_a_clear_error`).
macro_rules! on_each_device {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            on_each_device!(@softhsm $name);
            on_each_device!(@yubikey $name);
            on_each_device!(@tpm $name);
        }
    )*};
    (@softhsm $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn softhsm() {
            let label = &stringify!($name)[..stringify!($name).len().min(32)];
            let dev = tufa_tests::SoftHsm::new(label, "pin-Qx7wz");
            super::$name(&dev).await;
        }
    };
    (@yubikey $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn yubikey() {
            let dev = tufa_tests::yubikey::SimYubiKey::new();
            super::$name(&dev).await;
        }
    };
    (@tpm $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn tpm() {
            // tpm2-pkcs11 keeps 31 characters of a label.
            let label = &stringify!($name)[..stringify!($name).len().min(31)];
            let dev = tufa_tests::tpm::SwTpm::new(label);
            super::$name(&dev).await;
        }
    };
}

macro_rules! on_devices_that_import {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            on_each_device!(@softhsm $name);
            on_each_device!(@yubikey $name);
        }
    )*};
}

on_each_device!(
    generate_list_sign_and_verify_with_p256_and_openssl,
    keys_survive_an_agent_restart,
    sixteen_clients_times_two_hundred_signatures_all_valid,
    bad_requests_get_clear_errors_and_change_nothing,
    pins_locked_wrong_and_right,
    a_refused_pin_file_is_not_tried_again,
    audit_log_has_a_line_per_signature_and_no_pin,
    an_unlock_pin_expires_with_its_ttl,
);

on_devices_that_import!(
    imported_keys_sign_for_their_original_public_key,
    imports_a_key_written_by_docker_trust_key_generate,
);

/// What the tests sign as: targets of `example.com/app`.
fn ctx() -> SignContext {
    signing("targets")
}

fn work_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn code_of(e: &AgentClientError) -> Option<Code> {
    e.code()
}

async fn generate_list_sign_and_verify_with_p256_and_openssl(dev: &dyn Device) {
    require("openssl", "apt-get install openssl");
    let agent = Agent::start(dev);
    let cwd = work_dir();

    let out = agent.tufa_ok(cwd.path(), &["key", "generate", "alice"]);
    assert!(out.contains("Generating key for alice..."), "{out}");
    assert!(
        out.contains(
            "Successfully generated and loaded private key. Corresponding public key available:"
        ),
        "{out}"
    );
    let pub_file = cwd.path().join("alice.pub");
    let pub_text = std::fs::read_to_string(&pub_file).unwrap();
    assert!(pub_text.starts_with("-----BEGIN PUBLIC KEY-----\nrole: alice\n\n"));
    assert_eq!(
        std::fs::metadata(&pub_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let client = agent.client().await;
    let keys = client.list_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key.name, "alice");
    assert_eq!(key.origin, v1::KeyOrigin::Generated);
    assert_eq!(
        key.id.to_string(),
        tufa_proto::KeyId::for_ecdsa_spki(key.spki()).to_string()
    );
    let list = agent.tufa_ok(cwd.path(), &["key", "list"]);
    assert!(
        list.contains("alice") && list.contains(&key.id.to_string()),
        "{list}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&agent.tufa_ok(cwd.path(), &["key", "list", "--json"])).unwrap();
    assert_eq!(json[0]["key_id"], key.id.to_string());

    // Signed through the socket, verified with p256 alone.
    let data = b"{\"signed\":{\"_type\":\"Targets\"}}";
    let sig = client.sign(key, data, &ctx()).await.unwrap();
    assert!(verify_with_p256(key.spki(), data, sig.as_bytes()));
    assert!(!verify_with_p256(key.spki(), b"other", sig.as_bytes()));

    // And with openssl, from the DER signature and the exported PEM public key.
    let msg = cwd.path().join("msg");
    std::fs::write(&msg, data).unwrap();
    agent.tufa_ok(
        cwd.path(),
        &[
            "key", "sign", "alice", "--in", "msg", "--out", "sig.der", "--format", "der",
        ],
    );
    let pem = agent.tufa_ok(cwd.path(), &["key", "public", "alice"]);
    std::fs::write(cwd.path().join("alice.pem"), pem).unwrap();
    let out = openssl(
        cwd.path(),
        &[
            "dgst",
            "-sha256",
            "-verify",
            "alice.pem",
            "-signature",
            "sig.der",
            "msg",
        ],
    );
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK"),
        "openssl: {out:?}"
    );
}

async fn keys_survive_an_agent_restart(dev: &dyn Device) {
    let cwd = work_dir();
    let (id, spki) = {
        let mut agent = Agent::start(dev);
        agent.tufa_ok(cwd.path(), &["key", "generate", "bob"]);
        let key = agent.client().await.key("bob").await.unwrap();
        assert!(agent.stop().success());
        (key.id.to_string(), key.spki().to_vec())
    };
    let agent = Agent::start(dev);
    let client = agent.client().await;
    let key = client.key(&id).await.unwrap();
    assert_eq!(key.name, "bob");
    assert_eq!(key.spki(), spki);
    let sig = client.sign(&key, b"after restart", &ctx()).await.unwrap();
    assert!(verify_with_p256(&spki, b"after restart", sig.as_bytes()));
}

async fn sixteen_clients_times_two_hundred_signatures_all_valid(dev: &dyn Device) {
    let agent = Agent::start(dev);
    agent.tufa_ok(work_dir().path(), &["key", "generate", "ci"]);
    let key = Arc::new(agent.client().await.key("ci").await.unwrap());
    let mut tasks = Vec::new();
    for c in 0..16 {
        // Each client has its own connection, as separate processes would.
        let client = agent.client().await;
        let key = Arc::clone(&key);
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                let data = format!("client {c} message {i}");
                let sig = client.sign(&key, data.as_bytes(), &ctx()).await.unwrap();
                assert!(verify_with_p256(
                    key.spki(),
                    data.as_bytes(),
                    sig.as_bytes()
                ));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let signs = agent
        .audit_lines()
        .iter()
        .filter(|l| l["op"] == "sign" && l["result"] == "ok")
        .count();
    assert_eq!(signs, 3200);
}

async fn imported_keys_sign_for_their_original_public_key(dev: &dyn Device) {
    require("openssl", "apt-get install openssl");
    let agent = Agent::start(dev);
    let cwd = work_dir();
    let client = agent.client().await;

    // Plain PKCS#8, SEC1, and openssl's encrypted PKCS#8 (PBES2, PBKDF2-HMAC-SHA1, AES-256-CBC,
    // the scheme Notary uses).
    let mut cases = Vec::new();
    for (i, kind) in ["pkcs8", "sec1", "encrypted"].iter().enumerate() {
        let secret = p256::SecretKey::from_slice(&Sha256::digest(format!("key {i}"))).unwrap();
        let plain = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        let file = cwd.path().join(format!("{kind}.pem"));
        match *kind {
            "pkcs8" => std::fs::write(&file, plain.as_bytes()).unwrap(),
            "sec1" => std::fs::write(
                &file,
                secret.to_sec1_pem(LineEnding::LF).unwrap().as_bytes(),
            )
            .unwrap(),
            _ => {
                std::fs::write(cwd.path().join("plain.pem"), plain.as_bytes()).unwrap();
                let out = file.display().to_string();
                openssl_ok(
                    cwd.path(),
                    &[
                        "pkcs8",
                        "-topk8",
                        "-in",
                        "plain.pem",
                        "-out",
                        &out,
                        "-v2",
                        "aes-256-cbc",
                        "-v2prf",
                        "hmacWithSHA1",
                        "-passout",
                        "pass:s3cret",
                    ],
                );
            }
        }
        cases.push((kind.to_string(), secret));
    }
    for (kind, secret) in &cases {
        let name = format!("imported-{kind}");
        let args = ["key", "load", &format!("{kind}.pem"), "--name", &name];
        let stdout = Run::of(
            format!("tufa {args:?}"),
            agent
                .tufa_command(cwd.path())
                .env("TUFA_KEY_PASSPHRASE", "s3cret")
                .args(args),
        )
        .ok();
        assert!(
            stdout.contains(&format!("Loading key from \"{kind}.pem\"...")),
            "{stdout}"
        );
        assert!(stdout.contains(&format!("Successfully imported key from {kind}.pem")));
        let key = client.key(&name).await.unwrap();
        assert_eq!(key.origin, v1::KeyOrigin::Imported);
        let original = secret.public_key().to_public_key_der().unwrap();
        assert_eq!(key.spki(), original.as_bytes());
        let sig = client.sign(&key, b"imported", &ctx()).await.unwrap();
        assert!(verify_with_p256(
            original.as_bytes(),
            b"imported",
            sig.as_bytes()
        ));
    }

    // The same key again is refused and nothing new appears on the token.
    agent
        .tufa(cwd.path(), &["key", "load", "pkcs8.pem", "--name", "again"])
        .fails_saying("already in the agent as 'imported-pkcs8'");
    assert_eq!(client.list_keys().await.unwrap().len(), 3);
}

async fn imports_a_key_written_by_docker_trust_key_generate(dev: &dyn Device) {
    require(
        "docker",
        "apt-get install docker.io, or any docker CLI on PATH",
    );
    let agent = Agent::start(dev);
    let cwd = work_dir();
    let docker_config = cwd.path().join("docker-config");
    let out = Command::new("docker")
        .current_dir(cwd.path())
        .env("DOCKER_CONFIG", &docker_config)
        .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "docker-pass")
        .args(["trust", "key", "generate", "carol"])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker trust key generate: {out:?}");
    let private_dir = docker_config.join("trust").join("private");
    let key_file = std::fs::read_dir(&private_dir)
        .unwrap()
        .next()
        .expect("docker wrote a private key")
        .unwrap()
        .path();
    // Docker names the file after the key's canonical ID: the agent must compute the same.
    let docker_id = key_file.file_stem().unwrap().to_string_lossy().into_owned();
    Run::of(
        "tufa key load",
        agent
            .tufa_command(cwd.path())
            .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "docker-pass")
            .args(["key", "load"])
            .arg(&key_file)
            .args(["--name", "carol"]),
    )
    .ok();
    let key = agent.client().await.key("carol").await.unwrap();
    assert_eq!(key.id.to_string(), docker_id);
    // And the public key docker wrote is the one the agent holds.
    let pub_pem = std::fs::read_to_string(cwd.path().join("carol.pub")).unwrap();
    let b64: String = pub_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.contains(':') && !l.is_empty())
        .collect();
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
        key.spki()
    );

    // Without the passphrase there is a clear error.
    let err = agent
        .tufa(
            cwd.path(),
            &["key", "load", key_file.to_str().unwrap(), "--name", "x"],
        )
        .fails();
    assert!(
        err.contains("encrypted") && err.contains("TUFA_KEY_PASSPHRASE"),
        "{err}"
    );
}

async fn bad_requests_get_clear_errors_and_change_nothing(dev: &dyn Device) {
    let agent = Agent::start(dev);
    let cwd = work_dir();
    agent.tufa_ok(cwd.path(), &["key", "generate", "dave"]);
    let client = agent.client().await;
    let key = client.key("dave").await.unwrap();
    let mut raw = tufa_proto::v1::agent_client::AgentClient::new(
        tonic::transport::Endpoint::try_from("http://[::]:50051")
            .unwrap()
            .connect_with_connector(tower_service(agent.socket.clone()))
            .await
            .unwrap(),
    );

    // Unknown key: NotFound, naming it.
    let e = raw
        .sign(sign_req(
            "nosuchkey",
            v1::sign_request::Payload::Data(b"x".to_vec()),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("nosuchkey"), "{}", e.message());

    // A digest of the wrong length, and an empty payload: InvalidArgument.
    let e = raw
        .sign(sign_req(
            &key.id.to_string(),
            v1::sign_request::Payload::Sha256Digest(vec![0; 20]),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("32 bytes"), "{}", e.message());
    let e = raw
        .sign(sign_req(
            &key.id.to_string(),
            v1::sign_request::Payload::Data(vec![]),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("empty"), "{}", e.message());

    // A malformed PEM says what was expected.
    std::fs::write(cwd.path().join("junk.pem"), "not a key").unwrap();
    let err = agent
        .tufa(cwd.path(), &["key", "load", "junk.pem", "--name", "junk"])
        .fails();
    assert!(
        err.contains("expected") && err.contains("PRIVATE KEY"),
        "{err}"
    );
    std::fs::write(
        cwd.path().join("rsa.pem"),
        "-----BEGIN RSA PRIVATE KEY-----\nMAA=\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = agent.tufa(cwd.path(), &["key", "load", "rsa.pem", "--name", "rsa"]);
    assert!(out.stderr().contains("ECDSA P-256 keys only"));

    // A taken name, an invalid name, and an existing .pub file: refused before the token is touched.
    let e = client
        .generate(v1::GenerateKeyRequest {
            name: "dave".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(Code::AlreadyExists));
    assert!(e.to_string().contains("already exists"), "{e}");
    let e = client
        .generate(v1::GenerateKeyRequest {
            name: "bad name!".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(Code::InvalidArgument));
    let out = agent.tufa(cwd.path(), &["key", "generate", "dave"]);
    assert!(out.stderr().contains("already exists"));
    assert_eq!(client.list_keys().await.unwrap().len(), 1);

    // A certificate for another key is refused.
    let e = client
        .set_certificate("dave", vec![0x30, 0x00])
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(Code::InvalidArgument));

    // Deleting an unknown key names it; deleting dave removes it.
    let e = client.delete("erin").await.unwrap_err();
    assert_eq!(code_of(&e), Some(Code::NotFound));
    agent.tufa_ok(cwd.path(), &["key", "delete", "dave"]);
    assert!(client.list_keys().await.unwrap().is_empty());
}

fn sign_req(key: &str, payload: v1::sign_request::Payload) -> v1::SignRequest {
    v1::SignRequest {
        key: key.into(),
        payload: Some(payload),
        context: None,
    }
}

fn tower_service(
    path: std::path::PathBuf,
) -> impl tower::Service<
    tonic::transport::Uri,
    Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |_| {
        let path = path.clone();
        async move {
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                tokio::net::UnixStream::connect(path).await?,
            ))
        }
    })
}

async fn pins_locked_wrong_and_right(dev: &dyn Device) {
    // No PIN file: the agent starts locked.
    let agent = Agent::start_with(dev, AgentOptions::default());
    let cwd = work_dir();
    let client = agent.client().await;
    let status = client.status().await.unwrap();
    assert!(status.devices[0].locked);

    let e = client
        .generate(v1::GenerateKeyRequest {
            name: "frank".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(Code::FailedPrecondition));
    assert!(e.to_string().contains("tufa agent unlock"), "{e}");

    // A wrong PIN: refused with a clear message, and the device stays locked.
    std::fs::write(cwd.path().join("wrong"), "0000\n").unwrap();
    agent
        .tufa(cwd.path(), &["agent", "unlock", "--pin-file", "wrong"])
        .fails_saying("wrong PIN");
    assert!(client.status().await.unwrap().devices[0].locked);

    // The right PIN unlocks; lock forgets it at once.
    std::fs::write(cwd.path().join("right"), format!("{}\n", dev.pin())).unwrap();
    let out = agent.tufa_ok(cwd.path(), &["agent", "unlock", "--pin-file", "right"]);
    assert!(
        out.contains(&format!("Unlocked {} for 900 seconds", dev.name())),
        "{out}"
    );
    agent.tufa_ok(cwd.path(), &["key", "generate", "frank"]);
    let key = client.key("frank").await.unwrap();
    client.sign(&key, b"unlocked", &ctx()).await.unwrap();
    agent.tufa_ok(cwd.path(), &["agent", "lock"]);
    let e = client.sign(&key, b"locked", &ctx()).await.unwrap_err();
    assert_eq!(code_of(&e), Some(Code::FailedPrecondition));

    // Keys stay listed while locked (public objects need no login).
    assert_eq!(client.list_keys().await.unwrap().len(), 1);

    // No PIN ever reaches the audit log.
    let audit = std::fs::read_to_string(&agent.audit_log).unwrap();
    assert!(
        !audit.contains(dev.pin()) && !audit.contains("0000\""),
        "{audit}"
    );
    assert!(!agent.log().contains(dev.pin()));
}

async fn a_refused_pin_file_is_not_tried_again(dev: &dyn Device) {
    std::fs::write(dev.pin_file(), "wrong-pin\n").unwrap();
    let agent = Agent::start(dev);
    let client = agent.client().await;
    let req = v1::GenerateKeyRequest {
        name: "gina".into(),
        ..Default::default()
    };
    let e = client.generate(req.clone()).await.unwrap_err();
    assert_eq!(code_of(&e), Some(Code::Unauthenticated));
    assert!(e.to_string().contains("wrong PIN"), "{e}");
    // The second request does not log in with the same PIN again.
    let e = client.generate(req.clone()).await.unwrap_err();
    assert_eq!(code_of(&e), Some(Code::FailedPrecondition));
    assert!(
        e.to_string().contains("was refused and has not changed"),
        "{e}"
    );
    // Fixing the file is enough.
    std::fs::write(dev.pin_file(), format!("{}\n", dev.pin())).unwrap();
    client.generate(req).await.unwrap();
}

#[test]
fn start_up_errors_name_the_module_token_and_config() {
    let hsm = SoftHsm::new("startup", "pin-Qx7wz");
    let dir = work_dir();
    let run = |args: &[&str]| {
        let out = Command::new(tufa_tests::bin("tufad"))
            .env("SOFTHSM2_CONF", hsm.conf())
            .arg("--socket")
            .arg(dir.path().join("s/agent.sock"))
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&[
        "--pkcs11-module",
        "/nonexistent/lib.so",
        "--pkcs11-token",
        "x",
    ]);
    assert!(
        err.contains("/nonexistent/lib.so") && err.contains("apt-get install softhsm2"),
        "{err}"
    );
    let err = run(&[
        "--pkcs11-module",
        tufa_tests::SOFTHSM_MODULE,
        "--pkcs11-token",
        "nosuch",
    ]);
    assert!(
        err.contains("'nosuch'") && err.contains("startup") && err.contains("init-token"),
        "{err}"
    );
    let conf = dir.path().join("bad.toml");
    std::fs::write(&conf, "socket = \"/tmp/x\"\n\n[[pkcs11]]\nmodule = 3\n").unwrap();
    let err = run(&["--config", conf.to_str().unwrap()]);
    assert!(
        err.contains("bad.toml") && err.contains("line 4") && err.contains("module"),
        "{err}"
    );
    // A PIN written where it does not belong is refused without being echoed.
    std::fs::write(
        &conf,
        "[[pkcs11]]\nmodule = \"/m.so\"\ntoken = \"t\"\npin = \"secret-pin-771\"\n",
    )
    .unwrap();
    let err = run(&["--config", conf.to_str().unwrap()]);
    assert!(
        err.contains("line 4") && err.contains("pin") && !err.contains("secret-pin-771"),
        "{err}"
    );
    let err = run(&[]);
    assert!(err.contains("no device configured"), "{err}");
}

#[tokio::test]
async fn socket_modes_stale_and_live_sockets() {
    let hsm = SoftHsm::new("sock", "pin-Qx7wz");
    let mut agent = Agent::start(&hsm);
    let dir = agent.socket.parent().unwrap().to_owned();
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(&agent.socket)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // A live socket is never replaced.
    let out = agent
        .command(
            &hsm,
            &AgentOptions {
                pin_file: true,
                ..Default::default()
            },
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already listening"));
    agent.client().await.status().await.unwrap();

    // After a crash the stale socket is replaced.
    Command::new("kill")
        .args(["-KILL", &agent.pid().to_string()])
        .status()
        .unwrap();
    agent.wait();
    assert!(std::fs::symlink_metadata(&agent.socket)
        .unwrap()
        .file_type()
        .is_socket());
    let again = Agent::start(&hsm);
    again.client().await.status().await.unwrap();
}

#[tokio::test]
async fn other_uids_are_refused_whatever_the_file_modes() {
    require("setpriv", "apt-get install util-linux");
    let hsm = SoftHsm::new("uid", "pin-Qx7wz");
    let agent = Agent::start(&hsm);
    agent.open_socket_to_all();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(tufa_tests::bin("tufa"))
        .arg("--agent")
        .arg(&agent.socket)
        .args(["agent", "status"])
        .current_dir("/")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "uid 65534 was served: {out:?}");
    assert!(err.contains("uid 65534 may not use this agent"), "{err}");

    // The same uid is served once the config allows it.
    let allowed = Agent::start_with(
        &hsm,
        AgentOptions {
            pin_file: true,
            config: Some("allowed_uids = [65534]".into()),
            ..Default::default()
        },
    );
    // Only the test's own temp directory is opened; the agent makes its socket reachable.
    std::fs::set_permissions(allowed.dir(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let run_dir = allowed.socket.parent().unwrap();
    assert_eq!(
        std::fs::metadata(run_dir).unwrap().permissions().mode() & 0o777,
        0o711
    );
    assert_eq!(
        std::fs::metadata(&allowed.socket)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o666
    );
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(tufa_tests::bin("tufa"))
        .arg("--agent")
        .arg(&allowed.socket)
        .args(["agent", "status"])
        .current_dir("/")
        .output()
        .unwrap();
    assert!(out.status.success(), "allowed uid refused: {out:?}");
}

async fn audit_log_has_a_line_per_signature_and_no_pin(dev: &dyn Device) {
    let agent = Agent::start(dev);
    agent.tufa_ok(work_dir().path(), &["key", "generate", "hank"]);
    let client = agent.client().await;
    let key = client.key("hank").await.unwrap();
    for i in 0..5 {
        client
            .sign(&key, format!("m{i}").as_bytes(), &ctx())
            .await
            .unwrap();
    }
    let lines = agent.audit_lines();
    let signs: Vec<_> = lines.iter().filter(|l| l["op"] == "sign").collect();
    assert_eq!(signs.len(), 5);
    for (i, l) in signs.iter().enumerate() {
        assert_eq!(l["key_id"], key.id.to_string());
        assert_eq!(l["key_name"], "hank");
        assert_eq!(l["gun"], "example.com/app");
        assert_eq!(l["role"], "targets");
        assert_eq!(l["result"], "ok");
        assert_eq!(l["sha256"], hex::encode(Sha256::digest(format!("m{i}"))));
        assert!(l["peer_uid"].is_u64() && l["peer_pid"].is_i64());
    }
    assert_eq!(lines.iter().filter(|l| l["op"] == "generate").count(), 1);
    let raw = std::fs::read_to_string(&agent.audit_log).unwrap();
    assert!(!raw.contains(dev.pin()));
    assert_eq!(
        std::fs::metadata(&agent.audit_log)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_a_burst_loses_no_answered_request() {
    let hsm = SoftHsm::new("term", "pin-Qx7wz");
    let mut agent = Agent::start(&hsm);
    agent.tufa_ok(work_dir().path(), &["key", "generate", "ivan"]);
    let key = Arc::new(agent.client().await.key("ivan").await.unwrap());
    let mut tasks = Vec::new();
    for c in 0..8 {
        let client = agent.client().await;
        let key = Arc::clone(&key);
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut refused) = (0, 0);
            for i in 0.. {
                let data = format!("{c}/{i}");
                match client.sign(&key, data.as_bytes(), &ctx()).await {
                    // Every answer is a valid signature; the client also checked it.
                    Ok(sig) => {
                        assert!(verify_with_p256(
                            key.spki(),
                            data.as_bytes(),
                            sig.as_bytes()
                        ));
                        ok += 1;
                    }
                    Err(AgentClientError::BadSignature { .. }) => panic!("bad signature"),
                    Err(_) => {
                        refused += 1;
                        break;
                    }
                }
            }
            (ok, refused)
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    agent.send_sigterm();
    let mut answered = 0;
    for t in tasks {
        let (ok, _) = t.await.unwrap();
        answered += ok;
    }
    let status = agent.wait();
    assert!(status.success(), "tufad exit: {status}\n{}", agent.log());
    assert!(answered > 0);
    assert!(!agent.socket.exists(), "socket left behind");
    // Every signature answered was recorded.
    let logged = agent
        .audit_lines()
        .iter()
        .filter(|l| l["op"] == "sign" && l["result"] == "ok")
        .count();
    assert!(logged >= answered, "audit {logged} < answered {answered}");
}

async fn an_unlock_pin_expires_with_its_ttl(dev: &dyn Device) {
    let agent = Agent::start_with(
        dev,
        AgentOptions {
            args: vec!["--pin-cache-ttl".into(), "1".into()],
            ..Default::default()
        },
    );
    let cwd = work_dir();
    std::fs::write(cwd.path().join("pin"), format!("{}\n", dev.pin())).unwrap();
    let out = agent.tufa_ok(cwd.path(), &["agent", "unlock", "--pin-file", "pin"]);
    assert!(out.contains("for 1 seconds"), "{out}");
    agent.tufa_ok(cwd.path(), &["key", "generate", "jill"]);
    let client = agent.client().await;
    let key = client.key("jill").await.unwrap();
    client.sign(&key, b"in time", &ctx()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The login made with the cached PIN ends with it.
    let e = client.sign(&key, b"too late", &ctx()).await.unwrap_err();
    assert_eq!(code_of(&e), Some(Code::FailedPrecondition), "{e}");
    assert!(client.status().await.unwrap().devices[0].locked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_comes_back_with_another_serial_is_refused() {
    let hsm = SoftHsm::new("swap", "pin-Qx7wz");
    let mut agent = Agent::start(&hsm);
    let client = agent.client().await;
    let key = client
        .generate(v1::GenerateKeyRequest {
            name: "before".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    client.sign(&key, b"before", &ctx()).await.unwrap();

    // Another token with the same label takes the first one's place under the running agent
    // (SoftHSM swaps it under the open sessions).
    let tokens = hsm.dir().join("tokens");
    std::fs::remove_dir_all(&tokens).unwrap();
    std::fs::create_dir(&tokens).unwrap();
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", hsm.conf())
        .args([
            "--init-token",
            "--free",
            "--label",
            "swap",
            "--pin",
            hsm.pin.as_str(),
        ])
        .args(["--so-pin", "so-pin-5678"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    // The first call finds the key gone or the token changed (SoftHSM answers either way,
    // depending on when it re-reads its directory); from then on the agent refuses the
    // newcomer by name: no signature, no login, no new key on it.
    let e = client.sign(&key, b"after", &ctx()).await.unwrap_err();
    assert!(
        matches!(code_of(&e), Some(Code::Unavailable | Code::NotFound)),
        "{e}"
    );
    for _ in 0..2 {
        let e = client.sign(&key, b"after", &ctx()).await.unwrap_err();
        assert_eq!(code_of(&e), Some(Code::Unavailable), "{e}");
        assert!(
            e.to_string().contains("'swap'") && e.to_string().contains("came back with serial"),
            "{e}"
        );
        let e = client
            .generate(v1::GenerateKeyRequest {
                name: "planted".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("came back with serial"), "{e}");
    }
    let status = client.status().await.unwrap();
    assert!(!status.devices[0].present);
    assert!(
        status.devices[0].detail.contains("came back with serial"),
        "{status:?}"
    );
    assert!(agent.log().contains("refusing it"), "{}", agent.log());
    assert!(agent.stop().success());

    // A restart is the owner's way to accept the new token: it is empty.
    let agent = Agent::start(&hsm);
    assert!(agent.client().await.list_keys().await.unwrap().is_empty());
}
