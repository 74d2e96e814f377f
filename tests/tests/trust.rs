//! The `docker trust` verbs against the real docker CLI, notary-server and registry.

use std::path::Path;
use std::process::{Command, Output};

use tufa_tests::stack::{ManifestKind, Stack};
use tufa_tests::{Agent, SoftHsm};

/// `tufa ARGS` with docker's environment: the stack's DOCKER_CONFIG (and so its notary CA and
/// trust dir) and DOCKER_CONTENT_TRUST_SERVER.
fn tufa(agent: &Agent, stack: &Stack, cwd: &Path, args: &[&str]) -> Output {
    Command::new(tufa_tests::bin("tufa"))
        .current_dir(cwd)
        .env("TUFA_AGENT_SOCK", &agent.socket)
        .env("HOME", stack.dir().join("home"))
        .env("DOCKER_CONFIG", stack.docker_config())
        .env("DOCKER_CONTENT_TRUST_SERVER", stack.notary_url())
        .env_remove("TUFA_TRUST_DIR")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run tufa")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn docker_ok(stack: &Stack, cwd: &Path, args: &[&str]) -> String {
    ok(stack.docker(cwd, args), &format!("docker {args:?}"))
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

#[test]
fn a_repo_made_by_tufa_reads_the_same_in_docker() {
    let stack = Stack::start();
    let hsm = SoftHsm::new("trust-tufa", "pin-Qx7wz");
    let agent = Agent::start(&hsm);
    let cwd = tempfile::tempdir().unwrap();
    let repo = format!("{}/tufa/app", stack.registry_addr());
    let v1 = stack.push_image("tufa/app", "v1", ManifestKind::DockerSchema2);

    agent.tufa_ok(cwd.path(), &["key", "generate", "alice"]);
    let out = ok(
        tufa(
            &agent,
            &stack,
            cwd.path(),
            &["signer", "add", "--key", "alice.pub", "alice", &repo],
        ),
        "signer add",
    );
    assert!(
        out.contains(&format!("Initializing signed repository for {repo}...")),
        "{out}"
    );
    assert!(
        out.contains(&format!("Successfully added signer: alice to {repo}")),
        "{out}"
    );
    let out = ok(
        tufa(&agent, &stack, cwd.path(), &["sign", &format!("{repo}:v1")]),
        "sign",
    );
    assert!(
        out.contains(&format!("Successfully signed {repo}:v1")),
        "{out}"
    );

    // docker's view equals tufa's, JSON and pretty, whole repository and one tag.
    for args in [
        vec!["inspect", repo.as_str()],
        vec!["inspect", "--pretty", repo.as_str()],
    ] {
        let name = format!("{repo}:v1");
        for target in [repo.as_str(), name.as_str()] {
            let mut a = args.clone();
            *a.last_mut().unwrap() = target;
            let ours = ok(tufa(&agent, &stack, cwd.path(), &a), "tufa inspect");
            let mut d = vec!["trust"];
            d.extend_from_slice(&a);
            let theirs = docker_ok(&stack, cwd.path(), &d);
            assert_eq!(ours, theirs, "{a:?}");
        }
    }

    // verify and DCT pull agree on the digest.
    let out = ok(
        tufa(
            &agent,
            &stack,
            cwd.path(),
            &["verify", &format!("{repo}:v1")],
        ),
        "verify",
    );
    assert_eq!(out.trim(), format!("{repo}@{}", v1.digest));
    assert_eq!(
        dct_pull(&stack, cwd.path(), &format!("{repo}:v1")).unwrap(),
        v1.digest
    );
}

#[test]
fn a_repo_made_by_docker_is_read_and_extended_by_tufa() {
    let stack = Stack::start();
    let hsm = SoftHsm::new("trust-docker", "pin-Qx7wz");
    let agent = Agent::start(&hsm);
    let cwd = tempfile::tempdir().unwrap();
    let repo = format!("{}/docker/app", stack.registry_addr());
    let v1 = stack.push_image("docker/app", "v1", ManifestKind::OciManifest);
    let v2 = stack.push_image("docker/app", "v2", ManifestKind::OciIndex);

    // docker makes the repository with its signer (signing a new tag needs docker's daemon).
    docker_ok(&stack, cwd.path(), &["trust", "key", "generate", "jeff"]);
    docker_ok(
        &stack,
        cwd.path(),
        &["trust", "signer", "add", "--key", "jeff.pub", "jeff", &repo],
    );
    let theirs = docker_ok(&stack, cwd.path(), &["trust", "inspect", &repo]);
    let ours = ok(
        tufa(&agent, &stack, cwd.path(), &["inspect", &repo]),
        "inspect",
    );
    assert_eq!(ours, theirs);

    // Adding a signer re-signs targets: docker's repository key moves into the agent, the way
    // a user migrates from key files to hardware (docker's passphrase variable unlocks it).
    let private = stack.docker_config().join("trust/private");
    let targets_key = std::fs::read_dir(&private)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.lines().any(|l| l == "role: targets")))
        .expect("docker's repository key");
    let out = Command::new(tufa_tests::bin("tufa"))
        .current_dir(cwd.path())
        .env("TUFA_AGENT_SOCK", &agent.socket)
        .env(
            "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
            tufa_tests::stack::PASSPHRASE,
        )
        .args([
            "key",
            "load",
            targets_key.to_str().unwrap(),
            "--name",
            "app-targets",
        ])
        .output()
        .unwrap();
    ok(out, "key load");

    // tufa adds its own signer and signs tags; docker shows them with that signer.
    agent.tufa_ok(cwd.path(), &["key", "generate", "robot"]);
    ok(
        tufa(
            &agent,
            &stack,
            cwd.path(),
            &["signer", "add", "--key", "robot.pub", "robot", &repo],
        ),
        "signer add",
    );
    ok(
        tufa(&agent, &stack, cwd.path(), &["sign", &format!("{repo}:v1")]),
        "sign v1",
    );
    ok(
        tufa(&agent, &stack, cwd.path(), &["sign", &format!("{repo}:v2")]),
        "sign v2",
    );
    let theirs = docker_ok(&stack, cwd.path(), &["trust", "inspect", "--pretty", &repo]);
    assert!(theirs.contains("robot"), "{theirs}");
    let ours = ok(
        tufa(&agent, &stack, cwd.path(), &["inspect", "--pretty", &repo]),
        "inspect",
    );
    assert_eq!(ours, theirs);
    assert_eq!(
        dct_pull(&stack, cwd.path(), &format!("{repo}:v1")).unwrap(),
        v1.digest
    );
    assert_eq!(
        dct_pull(&stack, cwd.path(), &format!("{repo}:v2")).unwrap(),
        v2.digest
    );

    // docker revokes v2 (it holds jeff's key, which is in targets/releases): tufa no longer
    // verifies it.
    docker_ok(
        &stack,
        cwd.path(),
        &["trust", "revoke", "--yes", &format!("{repo}:v2")],
    );
    let out = tufa(
        &agent,
        &stack,
        cwd.path(),
        &["verify", &format!("{repo}:v2")],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No valid trust data for v2"));

    // tufa revokes v1: docker no longer trusts it.
    let out = ok(
        tufa(
            &agent,
            &stack,
            cwd.path(),
            &["revoke", &format!("{repo}:v1")],
        ),
        "revoke",
    );
    assert!(
        out.contains(&format!("Successfully deleted signature for {repo}:v1")),
        "{out}"
    );
    let err = dct_pull(&stack, cwd.path(), &format!("{repo}:v1")).unwrap_err();
    assert!(err.contains("No valid trust data for v1"), "{err}");
}
