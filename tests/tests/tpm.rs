//! tufad on a TPM 2.0: tpm2-pkcs11 on a software TPM (swtpm), one TPM per test on its own
//! loopback ports. The key conformance tests run on it in `agent.rs`; here is what is particular
//! to a TPM: few object slots, no import, a restart of the TPM, its dictionary-attack lockout,
//! keys made by pkcs11-tool, and Docker Content Trust signed by a delegation key in the TPM.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use tonic::Code;
use tufa_client::agent::SignContext;
use tufa_proto::v1;
use tufa_tests::stack::{ManifestKind, Stack};
use tufa_tests::tpm::SwTpm;
use tufa_tests::{verify_with_p256, Agent, AgentOptions, Device};

fn ctx() -> SignContext {
    SignContext {
        gun: "example.com/app".into(),
        role: "targets".into(),
    }
}

fn generate(name: &str) -> v1::GenerateKeyRequest {
    v1::GenerateKeyRequest {
        name: name.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn more_keys_than_the_tpm_has_object_slots_all_sign_under_concurrent_clients() {
    let tpm = SwTpm::new("slots");
    let agent = Agent::start(&tpm);
    let client = agent.client().await;
    // Each generation leaves two objects loaded and swtpm holds three: the second key already
    // needs the agent to free them (the failure a new user met: `GenerateKeyPair: ... out of
    // memory for object contexts`).
    let mut keys = Vec::new();
    for i in 0..4 {
        keys.push(client.generate(generate(&format!("key{i}"))).await.unwrap());
    }
    let keys = Arc::new(keys);
    let mut tasks = Vec::new();
    for c in 0..8 {
        let client = agent.client().await;
        let keys = Arc::clone(&keys);
        tasks.push(tokio::spawn(async move {
            for i in 0..12 {
                let key = &keys[(c + i) % keys.len()];
                let data = format!("client {c} message {i}");
                let sig = client.sign(key, data.as_bytes(), &ctx()).await.unwrap();
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
    assert!(
        agent
            .log()
            .contains("freeing the token's loaded objects and trying again"),
        "the TPM never ran out of object slots, so this test tested nothing:\n{}",
        agent.log()
    );
    let ok = agent
        .audit_lines()
        .iter()
        .filter(|l| l["op"] == "sign" && l["result"] == "ok")
        .count();
    assert_eq!(ok, 96);
}

#[tokio::test]
async fn import_onto_the_tpm_is_refused_with_a_clear_error_and_leaves_nothing() {
    let tpm = SwTpm::new("import");
    let agent = Agent::start(&tpm);
    let cwd = tempfile::tempdir().unwrap();
    let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
    use p256::pkcs8::EncodePrivateKey as _;
    let pem = secret.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap();
    std::fs::write(cwd.path().join("k.pem"), pem.as_bytes()).unwrap();
    let err = agent
        .tufa(cwd.path(), &["key", "load", "k.pem", "--name", "imported"])
        .fails();
    assert!(
        err.contains("PKCS#11 token 'import'")
            && err.contains("does not accept an EC private key")
            && err.contains("tufa key generate"),
        "{err}"
    );
    assert!(!err.contains("horrible"), "{err}");
    assert!(agent.client().await.list_keys().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_agent_finds_its_keys_again_after_the_tpm_restarts() {
    let mut tpm = SwTpm::new("restart");
    let agent = Agent::start(&tpm);
    let client = agent.client().await;
    let key = client.generate(generate("steady")).await.unwrap();
    client.sign(&key, b"before", &ctx()).await.unwrap();

    tpm.restart();
    // The first call may meet the dead connection; the agent starts the module afresh.
    let mut last = None;
    for _ in 0..3 {
        match client.sign(&key, b"after", &ctx()).await {
            Ok(sig) => {
                assert!(verify_with_p256(key.spki(), b"after", sig.as_bytes()));
                last = None;
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    assert!(
        last.is_none(),
        "no signature after the TPM restarted: {last:?}\n{}",
        agent.log()
    );
    assert!(
        agent.log().contains("re-initializing the PKCS#11 module"),
        "{}",
        agent.log()
    );
}

// Multi-threaded: the blocking stop() must not keep the runtime from closing the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_file_costs_one_tpm_try_in_total_across_restarts() {
    // swtpm locks every key (dictionary-attack lockout) after 3 wrong authorizations, and
    // tpm2-pkcs11 sets no CKF_USER_PIN_* flags: only the agent's own memory keeps it safe.
    let tpm = SwTpm::new("lockout");
    std::fs::write(tpm.pin_file(), "wrong-tpm-pin\n").unwrap();
    for run in 0..4 {
        let mut agent = Agent::start(&tpm);
        let e = agent
            .client()
            .await
            .generate(generate("never"))
            .await
            .unwrap_err();
        if run == 0 {
            assert_eq!(e.code(), Some(Code::Unauthenticated), "{e}");
            assert!(e.to_string().contains("wrong PIN"), "{e}");
        } else {
            assert_eq!(e.code(), Some(Code::FailedPrecondition), "{e}");
            assert!(
                e.to_string().contains("was refused")
                    && e.to_string().contains("before the agent's restart"),
                "{e}"
            );
        }
        assert!(agent.stop().success());
    }
    // The record is a salted fingerprint in the state directory, never the PIN.
    let state = tpm.dir().join("state").join("tufa");
    let records: Vec<_> = std::fs::read_dir(&state).unwrap().collect();
    assert_eq!(records.len(), 1);
    let text = std::fs::read_to_string(records[0].as_ref().unwrap().path()).unwrap();
    assert!(
        !text.contains("wrong-tpm-pin") && text.contains("pbkdf2"),
        "{text}"
    );

    // One wrong try in four runs: the TPM is not locked, and the right PIN works at once.
    std::fs::write(tpm.pin_file(), format!("{}\n", tpm.pin())).unwrap();
    let agent = Agent::start(&tpm);
    agent
        .client()
        .await
        .generate(generate("works"))
        .await
        .unwrap();
    assert!(std::fs::read_dir(&state).unwrap().next().is_none());
}

/// `pkcs11-tool --keypairgen` on a device whose module is `module`, with the PIN.
fn keypairgen(dev: &dyn Device, module: &str, id: &str, label: &str) -> Output {
    Command::new("pkcs11-tool")
        .envs(dev.env())
        .args(["--module", module, "--token-label"])
        .arg(dev.name())
        .args(["--login", "--pin", dev.pin()])
        .args([
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            id,
            "--label",
            label,
        ])
        .output()
        .expect("run pkcs11-tool")
}

async fn a_key_made_by_pkcs11_tool_is_listed_and_signs(dev: &dyn Device, module: &str) {
    // Made while no agent runs (swtpm serves one program at a time).
    let out = keypairgen(dev, module, "a1b2c3", "made elsewhere");
    assert!(out.status.success(), "pkcs11-tool: {out:?}");
    let agent = Agent::start(dev);
    let client = agent.client().await;
    let keys = client.list_keys().await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = &keys[0];
    assert_eq!(key.name, "made elsewhere");
    let id = key.id.to_string();
    assert_eq!(
        id,
        tufa_proto::KeyId::for_ecdsa_spki(key.spki()).to_string()
    );
    // By key ID, by prefix and by label, as tufa's own keys.
    for reference in [id.as_str(), &id[..9], "made elsewhere"] {
        let found = client.key(reference).await.unwrap();
        assert_eq!(found.id, key.id, "{reference}");
    }
    let sig = client.sign(key, b"foreign", &ctx()).await.unwrap();
    assert!(verify_with_p256(key.spki(), b"foreign", sig.as_bytes()));
    let cwd = tempfile::tempdir().unwrap();
    let list = agent.tufa_ok(cwd.path(), &["key", "list"]);
    assert!(
        list.contains("made elsewhere") && list.contains(&id),
        "{list}"
    );
}

#[tokio::test]
async fn a_key_made_by_pkcs11_tool_is_listed_and_signs_on_the_tpm() {
    let tpm = SwTpm::new("foreign");
    a_key_made_by_pkcs11_tool_is_listed_and_signs(&tpm, tufa_tests::tpm::TPM2_PKCS11_MODULE).await;
}

#[tokio::test]
async fn a_key_made_by_pkcs11_tool_is_listed_and_signs_on_softhsm() {
    let hsm = tufa_tests::SoftHsm::new("foreign", "pin-Qx7wz");
    a_key_made_by_pkcs11_tool_is_listed_and_signs(&hsm, tufa_tests::SOFTHSM_MODULE).await;
}

/// The digest `DOCKER_CONTENT_TRUST=1 docker pull` resolves (it then fails at the daemon).
fn dct_pull(stack: &Stack, cwd: &Path, image: &str) -> Result<String, String> {
    let out = stack
        .docker_command(cwd)
        .env("DOCKER_CONTENT_TRUST", "1")
        .args(["pull", image])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout
        .lines()
        .find_map(|l| l.strip_prefix("Pull (1 of 1): "))
    {
        Some(line) => Ok(line
            .split_once('@')
            .map(|(_, d)| d.to_owned())
            .unwrap_or_default()),
        None => Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr))),
    }
}

fn tufa_trust(agent: &Agent, stack: &Stack, cwd: &Path, args: &[&str]) -> String {
    let out = Command::new(tufa_tests::bin("tufa"))
        .current_dir(cwd)
        .env("TUFA_AGENT_SOCK", &agent.socket)
        .env("HOME", stack.dir().join("home"))
        .env("DOCKER_CONFIG", stack.docker_config())
        .env("DOCKER_CONTENT_TRUST_SERVER", stack.notary_url())
        .env_remove("TUFA_TRUST_DIR")
        .args(args)
        .output()
        .expect("run tufa");
    assert!(
        out.status.success(),
        "tufa {args:?}:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_delegation_key_in_the_tpm_signs_a_tag_docker_content_trust_pulls() {
    let stack = Stack::start();
    let tpm = SwTpm::new("dct");
    let agent = Agent::start_with(
        &tpm,
        AgentOptions {
            pin_file: true,
            ..Default::default()
        },
    );
    let cwd = tempfile::tempdir().unwrap();
    let repo = format!("{}/tpm/app", stack.registry_addr());
    let v1 = stack.push_image("tpm/app", "v1", ManifestKind::DockerSchema2);

    // The delegation key, then the repository's root and targets keys: all three in the TPM.
    agent.tufa_ok(cwd.path(), &["key", "generate", "alice"]);
    tufa_trust(
        &agent,
        &stack,
        cwd.path(),
        &["signer", "add", "--key", "alice.pub", "alice", &repo],
    );
    let out = tufa_trust(&agent, &stack, cwd.path(), &["sign", &format!("{repo}:v1")]);
    assert!(
        out.contains(&format!("Successfully signed {repo}:v1")),
        "{out}"
    );
    let keys = agent.tufa_ok(cwd.path(), &["key", "list"]);
    assert!(
        keys.lines().count() >= 4,
        "root, targets and alice in the TPM:\n{keys}"
    );

    // docker shows alice's signature on v1 and pulls exactly that digest.
    let inspect = stack
        .docker(cwd.path(), &["trust", "inspect", "--pretty", &repo])
        .ok();
    assert!(
        inspect.contains("v1") && inspect.contains("alice"),
        "{inspect}"
    );
    assert_eq!(
        dct_pull(&stack, cwd.path(), &format!("{repo}:v1")).unwrap(),
        v1.digest
    );
}
