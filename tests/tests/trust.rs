//! The `docker trust` verbs against the real docker CLI, notary-server and registry.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use tufa_tests::stack::{ManifestKind, Stack};
use tufa_tests::{Agent, SoftHsm};

/// `tufa ARGS` with docker's environment: the stack's DOCKER_CONFIG (and so its notary CA and
/// trust dir) and DOCKER_CONTENT_TRUST_SERVER.
fn tufa(agent: &Agent, stack: &Stack, cwd: &Path, args: &[&str]) -> Output {
    tufa_command(agent, stack, cwd)
        .args(args)
        .output()
        .expect("run tufa")
}

/// The command [`tufa`] runs, without arguments, for tests that change its environment.
fn tufa_command(agent: &Agent, stack: &Stack, cwd: &Path) -> Command {
    let mut cmd = Command::new(tufa_tests::bin("tufa"));
    cmd.current_dir(cwd)
        .env("TUFA_AGENT_SOCK", &agent.socket)
        .env("HOME", stack.dir().join("home"))
        .env("DOCKER_CONFIG", stack.docker_config())
        .env("DOCKER_CONTENT_TRUST_SERVER", stack.notary_url())
        .env_remove("TUFA_TRUST_DIR")
        .stdin(Stdio::null());
    cmd
}

/// `tufa ARGS` as [`tufa`], with `answer` on stdin: how a user answers docker's prompts.
fn tufa_answering(agent: &Agent, stack: &Stack, cwd: &Path, args: &[&str], answer: &str) -> Output {
    let mut child = tufa_command(agent, stack, cwd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tufa");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(answer.as_bytes())
        .expect("answer tufa");
    child.wait_with_output().expect("tufa output")
}

/// `docker ARGS` with `answer` on stdin.
fn docker_answering(stack: &Stack, cwd: &Path, args: &[&str], answer: &str) -> Output {
    let mut child = stack
        .docker_command(cwd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run docker");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(answer.as_bytes())
        .expect("answer docker");
    child.wait_with_output().expect("docker output")
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
    // robot's own role still lists v2, so both say "No trust data" (found, but not released).
    assert!(!out.status.success());
    let ours = String::from_utf8_lossy(&out.stderr);
    assert!(ours.contains("No trust data for v2\n"), "{ours}");
    let err = dct_pull(&stack, cwd.path(), &format!("{repo}:v2")).unwrap_err();
    assert!(err.contains("No trust data for v2\n"), "{err}");

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

/// `docker trust inspect ARGS` and `tufa inspect ARGS` print the same bytes.
fn assert_inspect_same(agent: &Agent, stack: &Stack, cwd: &Path, args: &[&str]) -> String {
    let mut a = vec!["inspect"];
    a.extend_from_slice(args);
    let ours = ok(tufa(agent, stack, cwd, &a), &format!("tufa {a:?}"));
    let mut d = vec!["trust"];
    d.extend_from_slice(&a);
    let theirs = docker_ok(stack, cwd, &d);
    assert_eq!(ours, theirs, "tufa and docker differ on {a:?}");
    ours
}

#[test]
fn two_signers_a_repo_admin_tag_and_every_manifest_kind() {
    let stack = Stack::start();
    // Two people, each with a key on their own token: alice also holds the repository's keys.
    let (hsm_a, hsm_b) = (
        SoftHsm::new("trust-alice", "pin-Qx7wz"),
        SoftHsm::new("trust-bob", "pin-Qx7wz"),
    );
    let (alice, bob) = (Agent::start(&hsm_a), Agent::start(&hsm_b));
    let cwd = tempfile::tempdir().unwrap();
    let cwd = cwd.path();
    let repo = format!("{}/multi/app", stack.registry_addr());
    let tag = |t: &str| format!("{repo}:{t}");
    // natural order: admin, both, v2, v10 (a plain sort would put v10 before v2).
    let v2 = stack.push_image("multi/app", "v2", ManifestKind::DockerSchema2);
    let v10 = stack.push_image("multi/app", "v10", ManifestKind::OciManifest);
    let both = stack.push_image("multi/app", "both", ManifestKind::OciIndex);
    let admin = stack.push_image("multi/app", "admin", ManifestKind::OciIndex);
    let hidden = stack.push_image("multi/app", "hidden", ManifestKind::DockerSchema2);

    alice.tufa_ok(cwd, &["key", "generate", "alice"]);
    bob.tufa_ok(cwd, &["key", "generate", "bob"]);
    for name in ["alice", "bob"] {
        let key = format!("{name}.pub");
        ok(
            tufa(
                &alice,
                &stack,
                cwd,
                &["signer", "add", "--key", &key, name, &repo],
            ),
            "signer add",
        );
    }

    // Each signs with what their own agent holds: v2 by alice, v10 by bob, both by both.
    ok(
        tufa(&alice, &stack, cwd, &["sign", &tag("v2")]),
        "alice signs v2",
    );
    ok(
        tufa(&bob, &stack, cwd, &["sign", &tag("v10")]),
        "bob signs v10",
    );
    ok(
        tufa(&alice, &stack, cwd, &["sign", &tag("both")]),
        "alice signs both",
    );
    let out = ok(
        tufa(&bob, &stack, cwd, &["sign", &tag("both")]),
        "bob signs both",
    );
    let hex = |d: &str| d.trim_start_matches("sha256:").to_owned();
    assert!(
        out.contains(&format!(
            "Existing signatures for tag both digest {} from:\nalice\n",
            hex(&both.digest)
        )),
        "{out}"
    );
    // The repository admin signs `admin` into targets itself, and alice puts `hidden` into her
    // own role only: docker shows and pulls neither as alice's release.
    let gun = repo.as_str();
    ok(
        tufa(
            &alice,
            &stack,
            cwd,
            &[
                "notary",
                "addhash",
                gun,
                "admin",
                &admin.size.to_string(),
                "--sha256",
                &hex(&admin.digest),
                "--roles",
                "targets",
                "-p",
            ],
        ),
        "addhash admin",
    );
    ok(
        tufa(
            &alice,
            &stack,
            cwd,
            &[
                "notary",
                "addhash",
                gun,
                "hidden",
                &hidden.size.to_string(),
                "--sha256",
                &hex(&hidden.digest),
                "--roles",
                "targets/alice",
                "-p",
            ],
        ),
        "addhash hidden",
    );

    // docker's view equals tufa's: the whole repository, each tag, and several at once.
    let json = assert_inspect_same(&alice, &stack, cwd, &[&repo]);
    assert_inspect_same(&alice, &stack, cwd, &["--pretty", &repo]);
    for t in ["v2", "v10", "both", "admin", "hidden"] {
        assert_inspect_same(&alice, &stack, cwd, &[&tag(t)]);
        assert_inspect_same(&alice, &stack, cwd, &["--pretty", &tag(t)]);
    }
    assert_inspect_same(&bob, &stack, cwd, &[&tag("v10"), &repo, &tag("admin")]);
    assert_inspect_same(&bob, &stack, cwd, &["--pretty", &tag("both"), &repo]);

    // ...and says what happened.
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows: Vec<(String, String, Vec<String>)> = json[0]["SignedTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let signers = r["Signers"].as_array().unwrap();
            (
                r["SignedTag"].as_str().unwrap().to_owned(),
                r["Digest"].as_str().unwrap().to_owned(),
                signers
                    .iter()
                    .map(|s| s.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    let row = |t: &str, d: &str, s: &[&str]| {
        (
            t.to_owned(),
            hex(d),
            s.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        rows,
        vec![
            row("admin", &admin.digest, &["Repo Admin"]),
            row("both", &both.digest, &["alice", "bob"]),
            row("v2", &v2.digest, &["alice"]),
            row("v10", &v10.digest, &["bob"]),
        ]
    );

    // verify and DCT pull resolve each released tag to the registry's digest, whatever the
    // manifest kind; the tag only alice's own role holds is trusted by neither.
    for (t, image) in [
        ("v2", &v2),
        ("v10", &v10),
        ("both", &both),
        ("admin", &admin),
    ] {
        let out = ok(tufa(&bob, &stack, cwd, &["verify", &tag(t)]), "verify");
        assert_eq!(out.trim(), format!("{repo}@{}", image.digest), "{t}");
        assert_eq!(dct_pull(&stack, cwd, &tag(t)).unwrap(), image.digest, "{t}");
    }
    // docker words it "No trust data" (found, but not released), not "No valid trust data".
    let out = tufa(&bob, &stack, cwd, &["verify", &tag("hidden")]);
    assert!(!out.status.success());
    let ours = String::from_utf8_lossy(&out.stderr);
    assert!(ours.contains("No trust data for hidden\n"), "{ours}");
    let err = dct_pull(&stack, cwd, &tag("hidden")).unwrap_err();
    assert!(err.contains("No trust data for hidden\n"), "{err}");
}

/// Runs a command expected to fail and returns its stderr.
fn fails(out: Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{what} succeeded:\nstdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// What the server holds for `repo`: its timestamp (any publish makes a new one) and docker's
/// reading of it.
fn server_state(stack: &Stack, cwd: &Path, repo: &str) -> (Option<Vec<u8>>, String) {
    (
        stack.trust_file(repo, "timestamp"),
        docker_ok(stack, cwd, &["trust", "inspect", repo]),
    )
}

/// docker's stderr for `docker trust ARGS`, which must fail.
fn docker_fails(stack: &Stack, cwd: &Path, args: &[&str]) -> String {
    let mut a = vec!["trust"];
    a.extend_from_slice(args);
    fails(stack.docker(cwd, &a), &format!("docker {a:?}"))
}

#[test]
fn bad_input_gets_a_clear_error_and_publishes_nothing() {
    let mut stack = Stack::start();
    let hsm = SoftHsm::new("trust-bad", "pin-Qx7wz");
    let agent = Agent::start(&hsm);
    let cwd = tempfile::tempdir().unwrap();
    let cwd = cwd.path();
    let reg = stack.registry_addr();
    let repo = format!("{reg}/bad/app");
    let v1 = stack.push_image("bad/app", "v1", ManifestKind::DockerSchema2);
    agent.tufa_ok(cwd, &["key", "generate", "alice"]);
    ok(
        tufa(
            &agent,
            &stack,
            cwd,
            &["signer", "add", "--key", "alice.pub", "alice", &repo],
        ),
        "signer add",
    );
    ok(
        tufa(&agent, &stack, cwd, &["sign", &format!("{repo}:v1")]),
        "sign",
    );
    let before = server_state(&stack, cwd, &repo);
    let run = |args: &[&str]| fails(tufa(&agent, &stack, cwd, args), &format!("tufa {args:?}"));

    // Malformed references: each verb names the reference and what a good one looks like.
    let upper = format!("{reg}/Bad/App:v1");
    let colons = format!("{repo}::v1");
    let short_digest = format!("{repo}@sha256:abc");
    for bad in [&upper, &colons, &short_digest] {
        for args in [
            vec!["sign", bad.as_str()],
            vec!["verify", bad],
            vec!["revoke", "--yes", bad],
            vec!["signer", "add", "--key", "alice.pub", "bob", bad],
            vec!["signer", "remove", "alice", bad],
        ] {
            let err = run(&args);
            assert!(err.contains("invalid reference format"), "{args:?}: {err}");
        }
    }
    let err = run(&["sign", &upper]);
    assert!(
        err.contains("repository name (Bad/App) must be lowercase"),
        "{err}"
    );
    let err = run(&["sign", &colons]);
    assert!(
        err.contains(&colons) && err.contains("[HOST[:PORT]/]NAME[:TAG]"),
        "{err}"
    );
    let err = run(&["sign", &repo]);
    assert!(
        err.contains(&format!("no tag specified for {repo}")),
        "{err}"
    );
    assert!(err.contains("IMAGE:TAG"), "{err}");
    // docker adds a signer to `repo:tag` as if the tag were not there; tufa says which
    // repository it would have meant instead.
    let err = run(&[
        "signer",
        "add",
        "--key",
        "alice.pub",
        "bob",
        &format!("{repo}:v1"),
    ]);
    assert!(err.contains(&format!("use {repo}")), "{err}");

    // Signer names docker refuses, refused with docker's words.
    for name in ["Alice", "a.b", "_x", "releases"] {
        let args = ["signer", "add", "--key", "alice.pub", name, &repo];
        let ours = run(&args);
        let theirs = docker_fails(&stack, cwd, &args);
        assert!(
            ours.contains(theirs.trim()),
            "{name}: tufa: {ours}docker: {theirs}"
        );
    }
    let args = ["signer", "remove", "releases", &repo];
    let ours = run(&args);
    let theirs = docker_fails(&stack, cwd, &args);
    assert!(
        ours.contains(theirs.lines().next().unwrap()),
        "tufa: {ours}docker: {theirs}"
    );
    let args = ["signer", "remove", "carol", &repo];
    let ours = run(&args);
    let theirs = docker_fails(&stack, cwd, &args);
    assert!(
        ours.contains(theirs.lines().next().unwrap()),
        "tufa: {ours}docker: {theirs}"
    );

    // The registry has no such tag, or no such repository.
    let err = run(&["sign", &format!("{repo}:nosuch")]);
    assert!(
        err.contains(&format!("tag nosuch not found in {repo}")),
        "{err}"
    );
    assert!(err.contains("push it first"), "{err}");
    let unknown = format!("{reg}/bad/nosuch");
    let err = run(&["sign", &format!("{unknown}:v1")]);
    assert!(
        err.contains("bad/nosuch") && err.contains("push the image first"),
        "{err}"
    );

    // A repository without trust data: inspect is docker's, byte for byte and exit code.
    for args in [
        vec!["inspect", unknown.as_str()],
        vec!["inspect", "--pretty", &unknown],
    ] {
        let ours = tufa(&agent, &stack, cwd, &args);
        let mut d = vec!["trust"];
        d.extend_from_slice(&args);
        let theirs = stack.docker(cwd, &d);
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&theirs.stdout),
            "{args:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&ours.stderr),
            format!("no signatures or cannot access {unknown}\n"),
            "{args:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&ours.stderr),
            String::from_utf8_lossy(&theirs.stderr),
            "{args:?}"
        );
        assert_eq!(ours.status.code(), theirs.status.code(), "{args:?}");
    }
    let no_trust = format!("does not have trust data for {unknown}");
    for args in [
        vec!["verify", &format!("{unknown}:v1")],
        vec!["revoke", "--yes", &format!("{unknown}:v1")],
        vec!["revoke", "--yes", &unknown],
        vec!["signer", "remove", "alice", &unknown],
    ] {
        let err = run(&args);
        assert!(err.contains(&no_trust), "{args:?}: {err}");
    }
    assert_eq!(stack.trust_file(&unknown, "root"), None);

    // Nothing listens where the notary server should be.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("https://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let notary_down = |args: &[&str]| {
        let out = tufa_command(&agent, &stack, cwd)
            .env("DOCKER_CONTENT_TRUST_SERVER", &dead)
            .args(args)
            .output()
            .unwrap();
        fails(out, &format!("tufa {args:?} with the notary server down"))
    };
    for args in [
        vec!["sign", &format!("{repo}:v1")],
        vec!["verify", &format!("{repo}:v1")],
        vec!["revoke", "--yes", &format!("{repo}:v1")],
        vec!["signer", "add", "--key", "alice.pub", "bob", &repo],
    ] {
        let err = notary_down(&args);
        assert!(err.contains(&dead), "{args:?}: {err}");
    }
    let err = notary_down(&["inspect", &repo]);
    assert_eq!(err, format!("no signatures or cannot access {repo}\n"));

    assert_eq!(
        server_state(&stack, cwd, &repo),
        before,
        "something was published"
    );

    // The registry is down: sign cannot learn the digest, verify of a digest cannot check it.
    stack.stop("registry");
    let run = |args: &[&str]| fails(tufa(&agent, &stack, cwd, args), &format!("tufa {args:?}"));
    let err = run(&["sign", &format!("{repo}:v1")]);
    assert!(err.contains(&reg), "{err}");
    let err = run(&["verify", &format!("{repo}@{}", v1.digest)]);
    assert!(err.contains(&reg), "{err}");
    assert_eq!(
        server_state(&stack, cwd, &repo),
        before,
        "something was published"
    );
}

#[test]
fn signer_remove_asks_as_docker_does_and_force_removes() {
    let stack = Stack::start();
    let hsm = SoftHsm::new("trust-remove", "pin-Qx7wz");
    let agent = Agent::start(&hsm);
    let cwd = tempfile::tempdir().unwrap();
    let cwd = cwd.path();
    let repo = format!("{}/rm/app", stack.registry_addr());
    stack.push_image("rm/app", "v1", ManifestKind::DockerSchema2);
    stack.push_image("rm/app", "v2", ManifestKind::OciManifest);
    agent.tufa_ok(cwd, &["key", "generate", "alice"]);
    let add_alice = || {
        ok(
            tufa(
                &agent,
                &stack,
                cwd,
                &["signer", "add", "--key", "alice.pub", "alice", &repo],
            ),
            "signer add",
        )
    };
    add_alice();
    ok(
        tufa(&agent, &stack, cwd, &["sign", &format!("{repo}:v1")]),
        "sign v1",
    );
    let before = server_state(&stack, cwd, &repo);
    let args = ["signer", "remove", "alice", repo.as_str()];

    // alice's signature is all that holds the release: both ask, and "n" changes nothing.
    let ours = tufa_answering(&agent, &stack, cwd, &args, "n\n");
    let mut d = vec!["trust"];
    d.extend_from_slice(&args);
    let theirs = docker_answering(&stack, cwd, &d, "n\n");
    let ours_out = String::from_utf8_lossy(&ours.stdout);
    assert!(
        ours_out.contains(&format!(
            "The signer \"alice\" signed the last released version of {repo}"
        )),
        "{ours_out}"
    );
    assert_eq!(ours_out, String::from_utf8_lossy(&theirs.stdout));
    assert_eq!(ours.status.code(), theirs.status.code());
    // No answer at all (stdin closed) is a no as well.
    let out = ok(tufa(&agent, &stack, cwd, &args), "signer remove, no answer");
    assert!(out.ends_with("[y/N] "), "{out}");
    assert_eq!(
        server_state(&stack, cwd, &repo),
        before,
        "a refused removal published"
    );

    // "y" removes her: docker no longer lists her, and her key left targets/releases.
    let out = ok(
        tufa_answering(&agent, &stack, cwd, &args, "y\n"),
        "signer remove, y",
    );
    assert!(
        out.contains(&format!("Successfully removed alice from {repo}")),
        "{out}"
    );
    let json = docker_ok(&stack, cwd, &["trust", "inspect", &repo]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json[0]["Signers"], serde_json::json!([]), "{json}");
    let releases = stack.trust_file(&repo, "targets").unwrap();
    let targets: serde_json::Value = serde_json::from_slice(&releases).unwrap();
    let roles = targets["signed"]["delegations"]["roles"]
        .as_array()
        .unwrap();
    assert!(
        roles.iter().all(|r| r["name"] != "targets/alice"),
        "{roles:?}"
    );
    let releases = roles
        .iter()
        .find(|r| r["name"] == "targets/releases")
        .expect("targets/releases stays");
    assert_eq!(
        releases["keyids"].as_array().map_or(0, Vec::len),
        0,
        "{releases}"
    );
    assert_inspect_same(&agent, &stack, cwd, &[&repo]);

    // alice comes back and signs v2; --force removes her without asking (docker 28's --force
    // prints the first line and changes nothing: a CLI bug tufa does not copy).
    add_alice();
    ok(
        tufa(&agent, &stack, cwd, &["sign", &format!("{repo}:v2")]),
        "sign v2",
    );
    let out = ok(
        tufa(
            &agent,
            &stack,
            cwd,
            &["signer", "remove", "--force", "alice", &repo],
        ),
        "signer remove --force",
    );
    assert!(!out.contains("Are you sure"), "{out}");
    assert!(
        out.contains(&format!("Successfully removed alice from {repo}")),
        "{out}"
    );
    let pretty = assert_inspect_same(&agent, &stack, cwd, &["--pretty", &repo]);
    assert!(!pretty.contains("alice"), "{pretty}");
}

/// The target names each role of `gun` holds on the server.
fn names_by_role(stack: &Stack, gun: &str, roles: &[&str]) -> Vec<(String, Vec<String>)> {
    roles
        .iter()
        .map(|role| {
            let names = stack
                .trust_file(gun, role)
                .map(|bytes| {
                    let file: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                    let mut names: Vec<String> = file["signed"]["targets"]
                        .as_object()
                        .map(|t| t.keys().cloned().collect())
                        .unwrap_or_default();
                    names.sort();
                    names
                })
                .unwrap_or_default();
            (role.to_string(), names)
        })
        .collect()
}

#[test]
fn revoke_without_a_tag_does_what_docker_does() {
    let stack = Stack::start();
    let hsm = SoftHsm::new("trust-revoke", "pin-Qx7wz");
    let agent = Agent::start(&hsm);
    let cwd = tempfile::tempdir().unwrap();
    let cwd = cwd.path();
    let reg = stack.registry_addr();
    // Twin repositories made by docker with the same signer: docker revokes one, tufa the other.
    let (theirs, ours) = (format!("{reg}/rv/docker"), format!("{reg}/rv/tufa"));
    docker_ok(&stack, cwd, &["trust", "key", "generate", "jeff"]);
    let jeff_key = std::fs::read_dir(stack.docker_config().join("trust/private"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.lines().any(|l| l == "role: jeff")))
        .expect("jeff's private key");
    let out = tufa_command(&agent, &stack, cwd)
        .env(
            "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
            tufa_tests::stack::PASSPHRASE,
        )
        .args(["key", "load", jeff_key.to_str().unwrap(), "--name", "jeff"])
        .output()
        .unwrap();
    ok(out, "key load jeff");
    let hex = |d: &str| d.trim_start_matches("sha256:").to_owned();
    for repo in [&theirs, &ours] {
        let path = repo.strip_prefix(&format!("{reg}/")).unwrap();
        docker_ok(
            &stack,
            cwd,
            &["trust", "signer", "add", "--key", "jeff.pub", "jeff", repo],
        );
        // v1 and v2 released by jeff (tufa signs with jeff's key, now in the agent) ...
        for (t, kind) in [
            ("v1", ManifestKind::DockerSchema2),
            ("v2", ManifestKind::OciIndex),
        ] {
            stack.push_image(path, t, kind);
            ok(
                tufa(&agent, &stack, cwd, &["sign", &format!("{repo}:{t}")]),
                "sign",
            );
        }
        // ... `admin` in targets, signed with docker's repository key by the notary CLI ...
        let admin = stack.push_image(path, "admin", ManifestKind::OciManifest);
        let out = stack
            .notary_command()
            .arg("-d")
            .arg(stack.docker_config().join("trust"))
            .args([
                "addhash",
                repo,
                "admin",
                &admin.size.to_string(),
                "--sha256",
            ])
            .args([hex(&admin.digest).as_str(), "-r", "targets", "-p"])
            .output()
            .unwrap();
        ok(out, "notary addhash admin");
        // ... and `draft` in jeff's own role only.
        let draft = stack.push_image(path, "draft", ManifestKind::OciManifest);
        let out = tufa(
            &agent,
            &stack,
            cwd,
            &[
                "notary",
                "addhash",
                repo,
                "draft",
                &draft.size.to_string(),
                "--sha256",
                &hex(&draft.digest),
                "--roles",
                "targets/jeff",
                "-p",
            ],
        );
        ok(out, "addhash draft");
    }
    let roles = ["targets", "targets/releases", "targets/jeff"];
    assert_eq!(
        names_by_role(&stack, &theirs, &roles),
        names_by_role(&stack, &ours, &roles)
    );

    // Without --yes both ask first; "n" changes nothing.
    let d = docker_answering(&stack, cwd, &["trust", "revoke", &theirs], "n\n");
    let t = tufa_answering(&agent, &stack, cwd, &["revoke", &ours], "n\n");
    assert_eq!(
        String::from_utf8_lossy(&t.stdout),
        String::from_utf8_lossy(&d.stdout).replace(&theirs, &ours)
    );
    assert_eq!(t.status.code(), d.status.code());

    // Revoking everything: the same roles lose the same names.
    let d = docker_ok(&stack, cwd, &["trust", "revoke", "--yes", &theirs]);
    let t = ok(
        tufa(&agent, &stack, cwd, &["revoke", "--yes", &ours]),
        "revoke --yes",
    );
    assert_eq!(t, d.replace(&theirs, &ours));
    let after = names_by_role(&stack, &ours, &roles);
    assert_eq!(names_by_role(&stack, &theirs, &roles), after);
    assert_eq!(after[0], ("targets".to_owned(), vec!["admin".to_owned()]));
    assert_inspect_same(&agent, &stack, cwd, &[&ours]);

    // Again: `admin` is left, in `targets`, which jeff cannot change. docker changes nothing and
    // reports success; tufa says the tag stays trusted and what would remove it.
    let before = names_by_role(&stack, &theirs, &roles);
    let d = docker_ok(&stack, cwd, &["trust", "revoke", "--yes", &theirs]);
    assert!(d.contains("Successfully deleted signature"), "{d}");
    assert_eq!(names_by_role(&stack, &theirs, &roles), before);
    assert_eq!(
        dct_pull(&stack, cwd, &format!("{theirs}:admin")).map(|_| ()),
        Ok(())
    );
    let err = fails(
        tufa(&agent, &stack, cwd, &["revoke", "--yes", &ours]),
        "revoke with nothing to revoke",
    );
    assert!(
        err.contains("stays trusted") && err.contains("--roles targets"),
        "{err}"
    );
    assert_eq!(names_by_role(&stack, &ours, &roles), before);

    // A tag no role lists: docker's words.
    let args = ["revoke", "--yes", &format!("{ours}:nosuch")];
    let err = fails(tufa(&agent, &stack, cwd, &args), "revoke nosuch");
    assert!(
        err.contains(&format!(
            "could not remove signature for {ours}:nosuch: No valid trust data for nosuch"
        )),
        "{err}"
    );
    let theirs_err = docker_fails(
        &stack,
        cwd,
        &["revoke", "--yes", &format!("{theirs}:nosuch")],
    );
    assert!(
        theirs_err.contains("No valid trust data for nosuch"),
        "{theirs_err}"
    );
}
