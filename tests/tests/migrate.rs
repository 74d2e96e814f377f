//! `tufa key migrate` (issue 14): the key files the real docker and notary CLIs write, moved into
//! the agent, then used: `tufa sign` on the docker-made repository, which docker accepts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use tufa_tests::stack::{ManifestKind, PASSPHRASE};
use tufa_tests::yubikey::SimYubiKey;
use tufa_tests::{require, Agent, Person, Run, User, World};

/// The `*.key` files under a trust directory's `private/`, by file name.
fn key_files(trust_dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut dirs = vec![trust_dir.join("private")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "key") {
                out.insert(path.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// The key IDs of those files (docker and notary name them `<id>.key`).
fn ids(files: &BTreeSet<String>) -> Vec<String> {
    files
        .iter()
        .map(|f| f.trim_end_matches(".key").to_owned())
        .collect()
}

/// `tufa key migrate ARGS` as `me`, with these variables set.
fn migrate(me: &User, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = me.tufa_command();
    cmd.args(["key", "migrate"]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::of(format!("tufa key migrate {args:?}"), &mut cmd)
}

/// The agent's keys: name -> key ID.
fn agent_keys(me: &User) -> Vec<(String, String)> {
    let out = me.tufa_ok(&["key", "list", "--json"]);
    let keys: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    keys.iter()
        .map(|k| {
            (
                k["name"].as_str().unwrap().to_owned(),
                k["key_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const DOCKER_PASSPHRASES: [(&str, &str); 2] = [
    ("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", PASSPHRASE),
    ("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", PASSPHRASE),
];

const NOTARY_PASSPHRASES: [(&str, &str); 3] = [
    ("NOTARY_ROOT_PASSPHRASE", PASSPHRASE),
    ("NOTARY_TARGETS_PASSPHRASE", PASSPHRASE),
    ("NOTARY_SNAPSHOT_PASSPHRASE", PASSPHRASE),
];

#[test]
fn docker_and_notary_keys_move_into_the_agent_and_sign_what_docker_accepts() {
    let w = World::new("migrate");
    let me = w.user();
    let registry = w.stack.registry_addr();
    let repo = format!("{registry}/mig/app");
    let v1 = w
        .stack
        .push_image("mig/app", "v1", ManifestKind::DockerSchema2);

    // docker makes a signer key, then the repository (root and repository keys) with it;
    // notary makes another repository with keys of its own.
    me.docker_ok(&["trust", "key", "generate", "jeff"]);
    me.docker_ok(&["trust", "signer", "add", "--key", "jeff.pub", "jeff", &repo]);
    let notary_gun = format!("{registry}/mig/notary");
    w.stack.notary_ok(&["init", &notary_gun]);
    let docker_trust = w.stack.docker_config().join("trust");
    let notary_trust = w.stack.notary_trust_dir();
    let docker_files = key_files(&docker_trust);
    let notary_files = key_files(&notary_trust);
    assert_eq!(docker_files.len(), 3, "{docker_files:?}");
    assert_eq!(notary_files.len(), 3, "{notary_files:?}");

    // docker's directory is the default; each key is named from its headers and said where it went.
    let out = migrate(&me, &[], &DOCKER_PASSPHRASES).ok();
    let targets_name = format!("{}-targets", repo.replace(['/', ':'], "_"));
    for line in [
        "root key ".to_owned(),
        "targets key ".to_owned(),
        format!(" for {repo}: moved to '{targets_name}' in pkcs11:token="),
        "jeff key ".to_owned(),
        ": moved to 'jeff' in pkcs11:token=".to_owned(),
        ": moved to 'root' in pkcs11:token=".to_owned(),
        "checked by a test signature".to_owned(),
        "3 moved, 0 already in the agent, 0 not moved".to_owned(),
        format!(
            "The key files are still in {}",
            docker_trust.join("private").display()
        ),
    ] {
        assert!(out.contains(&line), "{line:?} missing from:\n{out}");
    }
    for id in ids(&docker_files) {
        assert!(out.contains(&id), "{id} missing from:\n{out}");
    }
    assert_eq!(key_files(&docker_trust), docker_files, "the files stay");

    // notary's: its root key gets its short ID, `root` being taken.
    let notary = notary_trust.to_str().unwrap();
    let out = migrate(&me, &["--trust-dir", notary], &NOTARY_PASSPHRASES).ok();
    assert!(
        out.contains("3 moved, 0 already in the agent, 0 not moved"),
        "{out}"
    );
    assert!(out.contains(": moved to 'root-"), "{out}");
    assert!(
        out.contains("snapshot key ") && out.contains(&format!(" for {notary_gun}")),
        "{out}"
    );
    let held: BTreeSet<String> = agent_keys(&me).into_iter().map(|(_, id)| id).collect();
    for id in ids(&docker_files).into_iter().chain(ids(&notary_files)) {
        assert!(held.contains(&id), "{id} is not in the agent: {held:?}");
    }

    // The migrated signer key signs a tag of the docker-made repository; docker accepts it.
    let out = me.sign(&format!("{repo}:v1"));
    assert!(
        out.contains(&format!("Successfully signed {repo}:v1")),
        "{out}"
    );
    let pretty = me.inspect_same(&["--pretty", &repo]);
    assert!(pretty.contains("v1") && pretty.contains("jeff"), "{pretty}");
    assert_eq!(me.dct_pull(&format!("{repo}:v1")).unwrap(), v1.digest);

    // Twice changes nothing: every key is held, no import is made, the files stay.
    let keys = agent_keys(&me);
    let imports = |agent: &Agent| {
        agent
            .audit_lines()
            .iter()
            .filter(|l| l["op"] == "import")
            .count()
    };
    let before = imports(&w.me.agent);
    let out = migrate(&me, &[], &DOCKER_PASSPHRASES).ok();
    assert!(
        out.contains("0 moved, 3 already in the agent, 0 not moved"),
        "{out}"
    );
    assert!(out.contains(": already in the agent as 'jeff'"), "{out}");
    assert_eq!(agent_keys(&me), keys);
    assert_eq!(imports(&w.me.agent), before);
    assert_eq!(key_files(&docker_trust), docker_files);
}

/// `docker trust key generate NAME` in `cwd` with its trust data in `config` and `passphrase`
/// for the key: no server is needed.
fn docker_key(config: &Path, cwd: &Path, name: &str, passphrase: &str) -> PathBuf {
    require(
        "docker",
        "apt-get install docker.io, or any docker CLI on PATH",
    );
    let before = key_files(&config.join("trust"));
    Run::of(
        format!("docker trust key generate {name}"),
        Command::new("docker")
            .args(["trust", "key", "generate", name])
            .current_dir(cwd)
            .env("HOME", cwd)
            .env("DOCKER_CONFIG", config)
            .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", passphrase)
            .env("DOCKER_CLI_HINTS", "false"),
    )
    .ok();
    let new = key_files(&config.join("trust"))
        .difference(&before)
        .next()
        .cloned()
        .expect("docker wrote a key file");
    config.join("trust/private").join(new)
}

#[test]
fn a_wrong_passphrase_names_the_file_the_rest_move_and_remove_deletes_only_checked_files() {
    let me = Person::new("migrate-pass");
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("docker-config");
    let alice = docker_key(&config, work.path(), "alice", "alice-pass-1");
    let bob = docker_key(&config, work.path(), "bob", "bob-pass-2");
    let trust = config.join("trust");
    let trust_arg = trust.to_str().unwrap();
    let run = |args: &[&str], pass: &str, answer: Option<&str>| {
        let mut cmd = me.agent.tufa_command(work.path());
        cmd.args(["key", "migrate", "--trust-dir", trust_arg])
            .args(args)
            .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", pass);
        let what = format!("tufa key migrate {args:?}");
        match answer {
            Some(a) => Run::answering(what, &mut cmd, a),
            None => Run::of(what, &mut cmd),
        }
    };

    // bob's passphrase is another: bob's file is named and stays, alice's is moved and removed.
    let r = run(&["--remove", "--yes"], "alice-pass-1", None);
    let out = r.stdout();
    let err = r.fails();
    assert!(
        out.contains(&format!(
            "({}): not moved: wrong passphrase (tried DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE)",
            bob.display()
        )),
        "{out}"
    );
    assert!(out.contains(": moved to 'alice'"), "{out}");
    assert!(
        out.contains(&format!("Removed {}", alice.display())),
        "{out}"
    );
    assert!(
        err.contains("1 of 2 key files were not moved") && err.contains(&bob.display().to_string()),
        "{err}"
    );
    assert!(!alice.exists() && bob.exists());
    let names = me.agent.tufa_ok(work.path(), &["key", "list"]);
    assert!(names.contains("alice") && !names.contains("bob"), "{names}");

    // With bob's passphrase: bob moves; the file stays without --remove.
    let out = run(&[], "bob-pass-2", None).ok();
    assert!(
        out.contains(": moved to 'bob'") && out.contains("1 moved"),
        "{out}"
    );
    assert!(bob.exists());
    // --remove asks first; "n" keeps the file, "y" deletes it (its key is checked again).
    let out = run(&["--remove"], "bob-pass-2", Some("n\n")).ok();
    assert!(
        out.contains("Delete 1 key file whose key is now in the agent?"),
        "{out}"
    );
    assert!(
        out.contains("checked by a test signature") && out.contains("were kept"),
        "{out}"
    );
    assert!(bob.exists());
    let out = run(&["--remove"], "bob-pass-2", Some("y\n")).ok();
    assert!(out.contains(&format!("Removed {}", bob.display())), "{out}");
    assert!(!bob.exists());
    let out = run(&[], "", None).ok();
    assert!(out.contains("nothing to migrate"), "{out}");
}

#[test]
fn on_a_yubikey_each_key_takes_a_free_retired_slot() {
    let card = SimYubiKey::new();
    let serial = card.serial(0).to_string();
    let agent = Agent::start(&card);
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("docker-config");
    docker_key(&config, work.path(), "carol", PASSPHRASE);
    docker_key(&config, work.path(), "dave", PASSPHRASE);
    let trust = config.join("trust");
    let to = |device: &str| {
        let mut cmd = agent.tufa_command(work.path());
        cmd.args(["key", "migrate", "--trust-dir", trust.to_str().unwrap()])
            .args(["--device", device])
            .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", PASSPHRASE);
        Run::of(format!("tufa key migrate --device {device}"), &mut cmd)
    };
    let out = to(&serial).ok();
    assert!(out.contains(&format!("into YubiKey {serial}")), "{out}");
    for slot in ["82", "83"] {
        assert!(out.contains(&format!("yubikey:{serial}/{slot}")), "{out}");
    }
    assert!(out.contains("2 moved"), "{out}");
    to("nope").fails_saying(&format!(
        "the agent has no device 'nope' (it has: {serial})"
    ));
}
