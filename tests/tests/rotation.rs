//! Key rotation and the compromised-signer incident on docker-made repositories, checked with
//! the real docker CLI (`docker trust inspect`, DCT pull) and notary-server.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use tufa_tests::stack::{ManifestKind, Stack};
use tufa_tests::{Agent, SoftHsm};

/// `tufa ARGS` with docker's environment (the stack's DOCKER_CONFIG, trust dir and server).
fn tufa(agent: &Agent, stack: &Stack, cwd: &Path, args: &[&str]) -> Output {
    Command::new(tufa_tests::bin("tufa"))
        .current_dir(cwd)
        .env("TUFA_AGENT_SOCK", &agent.socket)
        .env("HOME", stack.dir().join("home"))
        .env("DOCKER_CONFIG", stack.docker_config())
        .env("DOCKER_CONTENT_TRUST_SERVER", stack.notary_url())
        .env_remove("TUFA_TRUST_DIR")
        .stdin(Stdio::null())
        .args(args)
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

fn tufa_ok(agent: &Agent, stack: &Stack, cwd: &Path, args: &[&str]) -> String {
    ok(tufa(agent, stack, cwd, args), &format!("tufa {args:?}"))
}

fn tufa_fails(agent: &Agent, stack: &Stack, cwd: &Path, args: &[&str]) -> String {
    let out = tufa(agent, stack, cwd, args);
    assert!(
        !out.status.success(),
        "tufa {args:?} succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
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

/// `docker trust inspect REPO` as JSON, checked equal to `tufa inspect REPO`.
fn inspect(agent: &Agent, stack: &Stack, cwd: &Path, repo: &str) -> serde_json::Value {
    let theirs = ok(
        stack.docker(cwd, &["trust", "inspect", repo]),
        "docker trust inspect",
    );
    let ours = tufa_ok(agent, stack, cwd, &["inspect", repo]);
    assert_eq!(ours, theirs);
    serde_json::from_str(&theirs).unwrap()
}

fn key_id(agent: &Agent, cwd: &Path, name: &str) -> String {
    let list: serde_json::Value =
        serde_json::from_str(&agent.tufa_ok(cwd, &["key", "list", "--json"])).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == name)
        .unwrap_or_else(|| panic!("no key {name}: {list}"))["key_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn signed_tags(v: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    v[0]["SignedTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let signers = t["Signers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect();
            (t["SignedTag"].as_str().unwrap().to_owned(), signers)
        })
        .collect()
}

fn role_keyids(stack: &Stack, gun: &str, role: &str) -> Vec<String> {
    let root: serde_json::Value =
        serde_json::from_slice(&stack.trust_file(gun, "root").unwrap()).unwrap();
    root["signed"]["roles"][role]["keyids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

fn signed_by(stack: &Stack, gun: &str, role: &str) -> Vec<String> {
    let file: serde_json::Value =
        serde_json::from_slice(&stack.trust_file(gun, role).unwrap()).unwrap();
    file["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["keyid"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn targets_key_rotation_and_the_snapshot_key_to_the_server_and_back() {
    let stack = Stack::start();
    let hsm = SoftHsm::new("rotation", "pin-Qx7wz");
    let agent = Agent::start(&hsm);
    let cwd = tempfile::tempdir().unwrap();
    let cwd = cwd.path();
    let repo = format!("{}/rot/app", stack.registry_addr());
    let v1 = stack.push_image("rot/app", "v1", ManifestKind::DockerSchema2);
    let v2 = stack.push_image("rot/app", "v2", ManifestKind::DockerSchema2);

    agent.tufa_ok(cwd, &["key", "generate", "alice"]);
    tufa_ok(
        &agent,
        &stack,
        cwd,
        &["signer", "add", "--key", "alice.pub", "alice", &repo],
    );
    tufa_ok(&agent, &stack, cwd, &["sign", &format!("{repo}:v1")]);
    let before = inspect(&agent, &stack, cwd, &repo);
    let old_repo_key = before[0]["AdministrativeKeys"][1]["Keys"][0]["ID"].clone();

    // A new targets key in the agent; the root key is online, so this publishes at once.
    agent.tufa_ok(cwd, &["key", "generate", "repo-key-2"]);
    let new_key = key_id(&agent, cwd, "repo-key-2");
    let out = tufa_ok(
        &agent,
        &stack,
        cwd,
        &["root", "rotate", &repo, "--targets-key", "repo-key-2"],
    );
    assert!(out.contains("Published root version 2"), "{out}");
    assert_eq!(role_keyids(&stack, &repo, "targets"), vec![new_key.clone()]);
    assert_eq!(signed_by(&stack, &repo, "targets"), vec![new_key.clone()]);
    let after = inspect(&agent, &stack, cwd, &repo);
    assert_eq!(after[0]["AdministrativeKeys"][1]["Name"], "Repository");
    assert_eq!(
        after[0]["AdministrativeKeys"][1]["Keys"][0]["ID"],
        new_key.as_str()
    );
    assert_ne!(
        after[0]["AdministrativeKeys"][1]["Keys"][0]["ID"],
        old_repo_key
    );
    assert_eq!(signed_tags(&after), signed_tags(&before));
    assert_eq!(
        dct_pull(&stack, cwd, &format!("{repo}:v1")).unwrap(),
        v1.digest
    );

    // The snapshot key moves from the server to the agent: snapshots come signed by it.
    agent.tufa_ok(cwd, &["key", "generate", "snap"]);
    let snap = key_id(&agent, cwd, "snap");
    tufa_ok(
        &agent,
        &stack,
        cwd,
        &["root", "rotate", &repo, "--snapshot-key", "snap"],
    );
    assert_eq!(role_keyids(&stack, &repo, "snapshot"), vec![snap.clone()]);
    tufa_ok(&agent, &stack, cwd, &["sign", &format!("{repo}:v2")]);
    assert_eq!(signed_by(&stack, &repo, "snapshot"), vec![snap.clone()]);

    // And back: the server makes a new snapshot key and every snapshot; a new timestamp key.
    let old_timestamp = role_keyids(&stack, &repo, "timestamp");
    tufa_ok(
        &agent,
        &stack,
        cwd,
        &[
            "root",
            "rotate",
            &repo,
            "--server-managed-snapshot",
            "--new-timestamp-key",
        ],
    );
    let server_snap = role_keyids(&stack, &repo, "snapshot");
    assert_ne!(server_snap, vec![snap]);
    assert_eq!(signed_by(&stack, &repo, "snapshot"), server_snap);
    let timestamp = role_keyids(&stack, &repo, "timestamp");
    assert_ne!(timestamp, old_timestamp);
    assert_eq!(signed_by(&stack, &repo, "timestamp"), timestamp);
    agent.tufa_ok(cwd, &["key", "delete", "snap"]);
    let v3 = stack.push_image("rot/app", "v3", ManifestKind::DockerSchema2);
    tufa_ok(&agent, &stack, cwd, &["sign", &format!("{repo}:v3")]);

    // docker still reads every tag, with the new repository key.
    let last = inspect(&agent, &stack, cwd, &repo);
    assert_eq!(
        last[0]["AdministrativeKeys"][1]["Keys"][0]["ID"],
        new_key.as_str()
    );
    let tags: Vec<String> = signed_tags(&last).into_iter().map(|t| t.0).collect();
    assert_eq!(tags, ["v1", "v2", "v3"]);
    for (tag, image) in [("v1", &v1), ("v2", &v2), ("v3", &v3)] {
        assert_eq!(
            dct_pull(&stack, cwd, &format!("{repo}:{tag}")).unwrap(),
            image.digest,
            "{tag}"
        );
    }
    // Nothing to rotate is refused by name.
    let err = tufa_fails(&agent, &stack, cwd, &["root", "rotate", &repo]);
    assert!(err.contains("nothing to rotate"), "{err}");
}

#[test]
fn a_compromised_signer_is_removed_and_only_what_remains_is_trusted() {
    let stack = Stack::start();
    let admin_hsm = SoftHsm::new("admin", "pin-Qx7wz");
    let admin = Agent::start(&admin_hsm);
    let alice_hsm = SoftHsm::new("alice", "pin-Qx7wz");
    let alice = Agent::start(&alice_hsm);
    let cwd = tempfile::tempdir().unwrap();
    let cwd = cwd.path();
    let repo = format!("{}/incident/app", stack.registry_addr());
    let images: Vec<_> = ["v1", "v2", "v3", "v4"]
        .iter()
        .map(|t| stack.push_image("incident/app", t, ManifestKind::DockerSchema2))
        .collect();

    // The admin holds root, targets and bob's key; alice signs from her own agent.
    admin.tufa_ok(cwd, &["key", "generate", "bob"]);
    alice.tufa_ok(cwd, &["key", "generate", "alice"]);
    let alice_id = key_id(&alice, cwd, "alice");
    tufa_ok(
        &admin,
        &stack,
        cwd,
        &["signer", "add", "--key", "alice.pub", "alice", &repo],
    );
    tufa_ok(
        &admin,
        &stack,
        cwd,
        &["signer", "add", "--key", "bob.pub", "bob", &repo],
    );
    tufa_ok(&alice, &stack, cwd, &["sign", &format!("{repo}:v1")]);
    tufa_ok(&admin, &stack, cwd, &["sign", &format!("{repo}:v2")]);
    tufa_ok(&alice, &stack, cwd, &["sign", &format!("{repo}:v3")]);
    let before = inspect(&admin, &stack, cwd, &repo);
    assert_eq!(
        signed_tags(&before),
        [
            ("v1".to_owned(), vec!["alice".to_owned()]),
            ("v2".to_owned(), vec!["bob".to_owned()]),
            ("v3".to_owned(), vec!["alice".to_owned()]),
        ]
    );

    // alice's key leaks. Without a decision about v1 and v3, nothing is published.
    let targets_before = stack.trust_file(&repo, "targets");
    let err = tufa_fails(
        &admin,
        &stack,
        cwd,
        &["notary", "incident", &repo, "--key", &alice_id],
    );
    assert!(
        err.contains("v1, v3")
            && err.contains("--resign-with")
            && err.contains("nothing was published"),
        "{err}"
    );
    let err = tufa_fails(
        &admin,
        &stack,
        cwd,
        &[
            "notary",
            "incident",
            &repo,
            "--key",
            &alice_id,
            "--resign-with",
            "bob",
            "--drop",
            "v2",
        ],
    );
    assert!(
        err.contains("v2 is not a target only the compromised key"),
        "{err}"
    );
    let err = tufa_fails(
        &admin,
        &stack,
        cwd,
        &["notary", "incident", &repo, "--key", "0123456789"],
    );
    assert!(
        err.contains("no delegation of this repository lists key"),
        "{err}"
    );
    assert_eq!(stack.trust_file(&repo, "targets"), targets_before);

    // bob vouches for v1 again; v3 is dropped.
    let out = tufa_ok(
        &admin,
        &stack,
        cwd,
        &[
            "notary",
            "incident",
            &repo,
            "--key",
            &alice_id[..12],
            "--resign-with",
            "bob",
            "--drop",
            "v3",
        ],
    );
    assert!(out.contains("targets/alice: removed"), "{out}");
    assert!(out.contains("targets/releases: key removed"), "{out}");
    assert!(
        out.contains("v1: re-signed into") && out.contains("v3: dropped"),
        "{out}"
    );

    // docker and tufa trust only what remains; alice's key signs nothing any more.
    let after = inspect(&admin, &stack, cwd, &repo);
    assert!(!after.to_string().contains(&alice_id), "{after}");
    assert!(!after.to_string().contains("\"alice\""), "{after}");
    let tags: Vec<String> = signed_tags(&after).into_iter().map(|t| t.0).collect();
    assert_eq!(tags, ["v1", "v2"]);
    for (i, tag) in ["v1", "v2"].iter().enumerate() {
        let image = format!("{repo}:{tag}");
        assert_eq!(
            dct_pull(&stack, cwd, &image).unwrap(),
            images[i].digest,
            "{tag}"
        );
        let out = tufa_ok(&admin, &stack, cwd, &["verify", &image]);
        assert_eq!(out.trim(), format!("{repo}@{}", images[i].digest));
    }
    let err = dct_pull(&stack, cwd, &format!("{repo}:v3")).unwrap_err();
    assert!(err.contains("v3"), "{err}");
    let err = tufa_fails(&admin, &stack, cwd, &["verify", &format!("{repo}:v3")]);
    assert!(err.contains("v3"), "{err}");
    let targets_now = stack.trust_file(&repo, "targets");
    let err = tufa_fails(&alice, &stack, cwd, &["sign", &format!("{repo}:v4")]);
    assert!(err.contains("no valid signing keys"), "{err}");
    assert_eq!(stack.trust_file(&repo, "targets"), targets_now);
    let err = dct_pull(&stack, cwd, &format!("{repo}:v4")).unwrap_err();
    assert!(err.contains("No valid trust data for v4"), "{err}");
    // The admin's signer keeps signing.
    tufa_ok(&admin, &stack, cwd, &["sign", &format!("{repo}:v4")]);
    assert_eq!(
        dct_pull(&stack, cwd, &format!("{repo}:v4")).unwrap(),
        images[3].digest
    );
}

#[test]
fn status_shows_expiry_and_resign_renews_what_is_due() {
    let stack = Stack::start();
    let hsm = SoftHsm::new("status", "pin-Qx7wz");
    let agent = Agent::start(&hsm);
    let cwd = tempfile::tempdir().unwrap();
    let cwd = cwd.path();
    let repo = format!("{}/status/app", stack.registry_addr());
    let v1 = stack.push_image("status/app", "v1", ManifestKind::DockerSchema2);
    agent.tufa_ok(cwd, &["key", "generate", "alice"]);
    tufa_ok(
        &agent,
        &stack,
        cwd,
        &["signer", "add", "--key", "alice.pub", "alice", &repo],
    );
    tufa_ok(&agent, &stack, cwd, &["sign", &format!("{repo}:v1")]);

    let out = tufa_ok(&agent, &stack, cwd, &["notary", "status", &repo]);
    let row = |role: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(role))
            .unwrap_or_else(|| panic!("{role}:\n{out}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(row("root")[5], "agent", "{out}");
    assert_eq!(row("targets")[5], "agent", "{out}");
    assert_eq!(row("snapshot")[5], "server", "{out}");
    assert_eq!(row("timestamp")[5], "server", "{out}");
    assert_eq!(row("targets/releases")[5], "agent", "{out}");
    for role in [
        "root",
        "targets",
        "snapshot",
        "timestamp",
        "targets/releases",
        "targets/alice",
    ] {
        assert_eq!(row(role)[6], "no", "{role}:\n{out}");
    }
    let out_ = tufa_ok(&agent, &stack, cwd, &["notary", "resign", &repo]);
    assert!(out_.contains("Nothing in"), "{out_}");

    // Everything signed for three years is due within 1100 days; root (ten years) is not.
    let targets_v = row("targets")[1].parse::<u64>().unwrap();
    let releases_v = row("targets/releases")[1].parse::<u64>().unwrap();
    let root_before = stack.trust_file(&repo, "root");
    let out2 = tufa_ok(
        &agent,
        &stack,
        cwd,
        &["notary", "resign", &repo, "--within", "1100"],
    );
    assert!(out2.contains("Re-signed targets"), "{out2}");
    let out = tufa_ok(&agent, &stack, cwd, &["notary", "status", &repo]);
    let row = |role: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(role))
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(row("targets")[1].parse::<u64>().unwrap(), targets_v + 1);
    assert_eq!(
        row("targets/releases")[1].parse::<u64>().unwrap(),
        releases_v + 1
    );
    assert_eq!(stack.trust_file(&repo, "root"), root_before);
    assert_eq!(
        dct_pull(&stack, cwd, &format!("{repo}:v1")).unwrap(),
        v1.digest
    );
    inspect(&agent, &stack, cwd, &repo);

    // The root is renewed by hand (version + 1, ten more years), its keys unchanged.
    let out = tufa_ok(&agent, &stack, cwd, &["root", "rotate", &repo, "--renew"]);
    assert!(out.contains("Published root version 2"), "{out}");
    assert_eq!(role_keyids(&stack, &repo, "root").len(), 1);
    assert_eq!(
        dct_pull(&stack, cwd, &format!("{repo}:v1")).unwrap(),
        v1.digest
    );
    let root_before = stack.trust_file(&repo, "root");

    // A role held elsewhere is named, and nothing is published.
    let other_hsm = SoftHsm::new("other", "pin-Qx7wz");
    let other = Agent::start(&other_hsm);
    let err = tufa_fails(
        &other,
        &stack,
        cwd,
        &["notary", "resign", &repo, "--within", "1100"],
    );
    assert!(
        err.contains("root rotate") || err.contains("cannot sign them"),
        "{err}"
    );
    assert_eq!(stack.trust_file(&repo, "root"), root_before);
}
