//! `tufa notary ...` against the real notary-server, checked with the real notary CLI.

use std::path::Path;

use base64::Engine as _;
use sha2::Digest as _;
use tufa_client::notary::{NotaryClient, NotaryConfig};
use tufa_tests::stack::Stack;
use tufa_tests::{notary_args, Agent, World};

/// A story about `gun`, which `tufa notary init GUN -p` has just made.
fn world_with_repo(label: &str, gun: &str) -> World {
    let w = World::new(label);
    w.user().notary_ok(&["init", gun, "-p"]);
    w
}

/// The client `tufa notary` makes for the stack's notary-server.
fn notary_client(stack: &Stack) -> NotaryClient {
    NotaryClient::new(NotaryConfig {
        server: stack.notary_url().parse().unwrap(),
        ca_file: Some(stack.ca_file()),
        client_cert: None,
        credentials: None,
    })
    .unwrap()
}

#[test]
fn tufa_publishes_targets_and_a_delegation_that_notary_lists() {
    let gun = "example.com/tufa/app";
    let w = world_with_repo("notary-e2e", gun);
    let (me, stack) = (w.user(), &w.stack);
    let out = me.publish_target(gun, "v1", 423, &"ab".repeat(32));
    assert!(
        out.contains("Successfully published changes for repository example.com/tufa/app"),
        "{out}"
    );

    // A delegation whose key lives in the agent, then a target signed into it.
    me.generate_key("releaser");
    me.delegate(gun, "targets/releases", "releaser.pub");
    std::fs::write(w.cwd().join("artifact"), b"hello release").unwrap();
    me.notary_ok(&[
        "add",
        gun,
        "v2",
        "artifact",
        "--roles",
        "targets/releases",
        "-p",
    ]);

    // As `notary add`, a file's target records its SHA-512 besides its SHA-256.
    let releases: serde_json::Value =
        serde_json::from_slice(&stack.trust_file(gun, "targets/releases").expect("served"))
            .unwrap();
    let hashes = &releases["signed"]["targets"]["v2"]["hashes"];
    let sha512 =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(b"hello release"));
    assert_eq!(hashes["sha512"], sha512.as_str(), "{hashes}");

    // The real notary CLI trusts tufa's root on first use and prints, byte for byte, what tufa
    // prints.
    let theirs = stack.notary_ok(&["list", gun]);
    let ours = me.notary_ok(&["list", gun]);
    assert_eq!(ours, theirs, "tufa:\n{ours}\nnotary:\n{theirs}");
    assert!(theirs.contains("v1") && theirs.contains("v2"), "{theirs}");
    for role in ["targets", "targets/releases"] {
        let theirs = stack.notary_ok(&["list", gun, "--roles", role]);
        let ours = me.notary_ok(&["list", gun, "--roles", role]);
        assert_eq!(ours, theirs, "{role}: tufa:\n{ours}\nnotary:\n{theirs}");
    }
    let theirs = stack.notary_ok(&["delegation", "list", gun]);
    let ours = me.notary_ok(&["delegation", "list", gun]);
    assert_eq!(ours, theirs, "tufa:\n{ours}\nnotary:\n{theirs}");

    // Key list names each agent key's role and repository, as `notary key list` does.
    let keys = me.notary_ok(&["key", "list"]);
    let lines: Vec<&str> = keys.lines().collect();
    assert!(
        lines[1].starts_with("ROLE ") && lines[1].contains("LOCATION"),
        "{keys}"
    );
    assert!(lines[3].starts_with("root "), "{keys}");
    for (role, gun_col) in [("targets", gun), ("snapshot", gun), ("releaser", "")] {
        assert!(
            lines.iter().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.first() == Some(&role) && (gun_col.is_empty() || cols.get(1) == Some(&gun_col))
            }),
            "{role}:\n{keys}"
        );
    }
}

#[test]
fn notary_cli_repo_read_and_extended_by_tufa() {
    let w = World::new("notary-cli");
    let (me, stack) = (w.user(), &w.stack);
    let gun = "example.com/notary/made";

    // The notary CLI makes the repository, with a target in `targets`.
    stack.notary_ok(&["init", gun]);
    stack.notary_ok(&[
        "addhash",
        gun,
        "old",
        "100",
        "--sha256",
        &"cd".repeat(32),
        "-p",
    ]);
    let ours = me.notary_ok(&["list", gun]);
    assert_eq!(ours, stack.notary_ok(&["list", gun]));

    // notary keeps the snapshot key locally: a delegate cannot publish, and tufa says why.
    me.generate_key("ci-signer");
    let pub_file = w.cwd().join("ci-signer.pub");
    stack.notary_ok(&[
        "delegation",
        "add",
        gun,
        "targets/ci",
        pub_file.to_str().unwrap(),
        "--all-paths",
        "-p",
    ]);
    // A trust dir of its own, so the change this refused publish leaves staged goes no further.
    let trust = w.cwd().join("refused-trust");
    let server = stack.notary_url();
    let ca = stack.ca_file();
    let digest = "ef".repeat(32);
    let early = [
        "addhash",
        gun,
        "early",
        "7",
        "--sha256",
        &digest,
        "--roles",
        "targets/ci",
        "-p",
    ];
    let out = me
        .agent
        .tufa(w.cwd(), &notary_args(&server, &ca, &trust, &early));
    assert!(!out.success(), "published without a snapshot signer");
    let err = out.stderr();
    assert!(
        err.contains("snapshot key is neither in the agent nor on the server"),
        "{err}"
    );
    assert!(!stack.notary_ok(&["list", gun]).contains("early"));
    stack.notary_ok(&["key", "rotate", gun, "snapshot", "-r"]);

    // With the server making snapshots, tufa signs a target into the delegation holding no
    // other key of the repository.
    me.notary_ok(&[
        "addhash",
        gun,
        "built",
        "7",
        "--sha256",
        &"ef".repeat(32),
        "--roles",
        "targets/ci",
        "-p",
    ]);
    let theirs = stack.notary_ok(&["list", gun, "--roles", "targets/ci"]);
    assert!(
        theirs.contains(&"ef".repeat(32)) && theirs.contains("targets/ci"),
        "{theirs}"
    );
    assert_eq!(
        me.notary_ok(&["list", gun]),
        stack.notary_ok(&["list", gun])
    );
}

#[test]
fn server_managed_snapshot_and_concurrent_publishers() {
    let gun = "example.com/tufa/server-snapshot";
    let w = World::new("notary-srv");
    let (me, stack) = (w.user(), &w.stack);
    me.notary_ok(&["init", gun, "--server-managed-snapshot", "-p"]);

    // Three publishers at once, each with its own trust dir: the losers of each race get the
    // server's version conflict, refetch, reapply and retry.
    let server = stack.notary_url();
    let ca = stack.ca_file();
    let children: Vec<_> = (0..3)
        .map(|i| {
            let trust = w.cwd().join(format!("trust-{i}"));
            let name = format!("t{i}");
            let digest = format!("{i}").repeat(64);
            std::process::Command::new(tufa_tests::bin("tufa"))
                .current_dir(w.cwd())
                .env("TUFA_AGENT_SOCK", &me.agent.socket)
                .env("DOCKER_CONFIG", w.cwd().join("docker-config"))
                .args(notary_args(
                    &server,
                    &ca,
                    &trust,
                    &["addhash", gun, &name, "1", "--sha256", &digest, "-p"],
                ))
                .output()
                .unwrap()
        })
        .collect();
    for out in &children {
        assert!(out.status.success(), "{out:?}");
    }
    let list = stack.notary_ok(&["list", gun]);
    for i in 0..3 {
        assert!(list.contains(&format!("t{i} ")), "t{i} missing:\n{list}");
    }
    // The server signed the snapshot: the agent holds no snapshot key for this repository.
    let keys = me.agent.tufa_ok(w.cwd(), &["key", "list"]);
    assert!(!keys.contains("server-snapshot-snapshot"), "{keys}");
}

#[test]
fn bad_input_is_refused_clearly_and_publishes_nothing() {
    let w = World::new("notary-bad");
    let (agent, stack, cwd) = (&w.me.agent, &w.stack, w.cwd());
    let trust = cwd.join("trust");
    let run = |server: &str, ca: &Path, args: &[&str]| {
        let out = agent.tufa(cwd, &notary_args(server, ca, &trust, args));
        assert!(!out.success(), "{args:?} succeeded");
        out.stderr()
    };
    let ca = stack.ca_file();

    // An unreachable server names the URL.
    let err = run("https://127.0.0.1:1", &ca, &["list", "example.com/x"]);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    // A wrong CA names the CA file used.
    let wrong_ca = cwd.join("wrong-ca.pem");
    std::fs::copy(Stack::start_local_signing().ca_file(), &wrong_ca).unwrap();
    let err = run(&stack.notary_url(), &wrong_ca, &["list", "example.com/x"]);
    assert!(err.contains("wrong-ca.pem"), "{err}");
    // A malformed GUN and a role name Notary refuses.
    let err = run(&stack.notary_url(), &ca, &["list", "bad gun"]);
    assert!(err.contains("not a valid GUN"), "{err}");
    let addhash_to = |role: &str| {
        let sha256 = "a".repeat(64);
        let args = [
            "addhash",
            "example.com/x",
            "t",
            "1",
            "--sha256",
            &sha256,
            "--roles",
            role,
        ];
        run(&stack.notary_url(), &ca, &args)
    };
    let err = addhash_to("targets/Bad");
    assert!(
        err.contains("targets/Bad") && err.contains("lowercase"),
        "{err}"
    );
    let err = addhash_to("snapshot");
    assert!(err.contains("snapshot"), "{err}");
    // Publishing a repository that was never initialised says how to start.
    let err = run(&stack.notary_url(), &ca, &["publish", "example.com/never"]);
    assert!(err.contains("tufa notary init example.com/never"), "{err}");
    let out = stack.notary(&["list", "example.com/never"]);
    assert!(!out.success(), "something was published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_near_expiry_is_renewed_by_the_next_publish() {
    use tufa_client::repo::{self, Changelist};
    use tufa_client::tuf::{update, Gun, RoleName, TrustCache, UpdateOptions};

    let gun_text = "example.com/tufa/renew";
    let w = world_with_repo("notary-renew", gun_text);
    let (agent, stack, cwd) = (&w.me.agent, &w.stack, w.cwd());
    w.user().notary_ok(&[
        "addhash",
        gun_text,
        "late",
        "5",
        "--sha256",
        &"12".repeat(32),
    ]);

    // Publish the staged change with a clock 9 years and 10 months ahead: the root has less
    // than six months left, so it is re-signed (version 2, fresh expiry) along with the change.
    let gun: Gun = gun_text.parse().unwrap();
    let client = notary_client(stack);
    let remote = client.repo(&gun);
    let trust = cwd.join("tufa-trust");
    let cache = TrustCache::new(&trust);
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(9 * 365 + 300);
    let options = UpdateOptions::default();
    let agent_client = agent.client().await;
    let published = repo::publish(
        &agent_client,
        &remote,
        &gun,
        &Changelist::new(&trust, &gun),
        repo::FromServer::new(&remote, &cache, &gun, &options),
        later,
    )
    .await
    .unwrap();
    assert!(published.roles.contains(&RoleName::ROOT), "{published:?}");
    let verified = update(&remote, &cache, &gun, &UpdateOptions::default())
        .await
        .unwrap();
    assert_eq!(verified.root().signed.version, 2);
    // The real notary CLI walks to the renewed root and lists the change.
    assert!(stack.notary_ok(&["list", gun_text]).contains("late"));
}

#[test]
fn listing_and_staging_need_no_agent() {
    let gun = "example.com/tufa/no-agent";
    let mut w = world_with_repo("notary-noagent", gun);
    w.me.agent.stop();
    let me = w.user();

    // Reading and staging use no key, so they work while the agent is down.
    assert!(me.notary_ok(&["list", gun]).contains("No targets"));
    let digest = "ab".repeat(32);
    let staged = ["addhash", gun, "v1", "3", "--sha256", &digest];
    me.notary_ok(&staged);
    // Publishing needs the keys, and says where it looked for the agent.
    let out = me.notary(&["publish", gun]);
    assert!(!out.success(), "published without an agent");
    let err = out.stderr();
    assert!(err.contains(me.agent.socket.to_str().unwrap()), "{err}");

    // With the agent back, the staged change is published.
    let agent = Agent::start(&w.me.hsm);
    w.user_of(&agent).notary_ok(&["publish", gun]);
    assert!(w.stack.notary_ok(&["list", gun]).contains(&digest));
}

#[test]
fn trust_pinning_from_a_notary_client_config() {
    let gun = "example.com/tufa/pinned";
    let w = world_with_repo("notary-pin", gun);
    let (agent, stack, cwd) = (&w.me.agent, &w.stack, w.cwd());
    let root: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            cwd.join("tufa-trust/tuf")
                .join(gun)
                .join("metadata/root.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let root_cert_id = root["signed"]["roles"]["root"]["keyids"][0]
        .as_str()
        .unwrap()
        .to_owned();

    // Each config points a fresh trust dir at the server, with notary's own config format.
    let list = |name: &str, pinning: serde_json::Value| {
        let config = cwd.join(format!("{name}.json"));
        let body = serde_json::json!({
            "trust_dir": format!("trust-{name}"),
            "remote_server": {"url": stack.notary_url(), "root_ca": stack.ca_file()},
            "trust_pinning": pinning,
        });
        std::fs::write(&config, body.to_string()).unwrap();
        agent.tufa(
            cwd,
            &["notary", "-c", config.to_str().unwrap(), "list", gun],
        )
    };
    let wrong = list(
        "wrong",
        serde_json::json!({"certs": {gun: ["0".repeat(64)]}}),
    );
    assert!(!wrong.success(), "a root not matching the pin was trusted");
    let err = wrong.stderr().to_lowercase();
    assert!(err.contains("pin"), "{err}");
    let right = list("right", serde_json::json!({"certs": {gun: [root_cert_id]}}));
    assert!(right.success(), "{right:?}");
    let no_tofu = list("notofu", serde_json::json!({"disable_tofu": true}));
    assert!(!no_tofu.success(), "first use trusted with disable_tofu");
}

#[test]
fn delete_remote_removes_the_repository_everywhere() {
    // Not a prefix of any other GUN: the memory backend deletes by prefix.
    let gun = "example.com/tufa/doomed-xq7";
    let w = world_with_repo("notary-delete", gun);
    let (stack, cwd) = (&w.stack, w.cwd());
    assert!(stack.notary(&["list", gun]).success());
    let out = w.user().notary_ok(&["delete", gun, "--remote"]);
    assert!(
        out.contains("Successfully deleted local and remote trust data"),
        "{out}"
    );
    assert!(!cwd.join("tufa-trust/tuf").join(gun).exists());
    // The server no longer has it: a fresh notary client finds nothing.
    let fresh = stack
        .notary_command()
        .args(["-d", cwd.join("fresh").to_str().unwrap(), "list", gun])
        .output()
        .unwrap();
    assert!(!fresh.status.success(), "{fresh:?}");
}

#[test]
fn key_rotate_as_notary_does_and_notary_follows() {
    let gun = "example.com/tufa/rotated";
    let w = world_with_repo("key-rotate", gun);
    let (me, stack) = (w.user(), &w.stack);
    let digest = "ab".repeat(32);
    me.publish_target(gun, "v1", 3, &digest);
    // notary caches root v1 now, and must follow every rotation below.
    assert!(stack.notary_ok(&["list", gun]).contains("v1"));

    for role in ["targets", "root"] {
        let before = stack.role_keyids(gun, role);
        let out = me.notary_ok(&["key", "rotate", gun, role]);
        assert!(out.contains(&format!("-{role}-2")), "{out}");
        let after = stack.role_keyids(gun, role);
        assert_ne!(before, after, "{role}");
        assert!(stack.notary_ok(&["list", gun]).contains("v1"), "{role}");
    }
    for role in ["snapshot", "timestamp"] {
        let before = stack.role_keyids(gun, role);
        me.notary_ok(&["key", "rotate", gun, role, "-r"]);
        assert_ne!(before, stack.role_keyids(gun, role), "{role}");
    }
    // The server now makes snapshots; publishing and notary's reading go on.
    me.publish_target(gun, "v2", 3, &digest);
    let listed = stack.notary_ok(&["list", gun]);
    assert!(listed.contains("v1") && listed.contains("v2"), "{listed}");

    // What notary refuses, tufa refuses, and nothing changes.
    let root_before = stack.trust_file(gun, "root");
    for (args, want) in [
        (vec!["targets", "-r"], "the server may hold only"),
        (vec!["timestamp"], "rotate it with -r"),
        (vec!["targets/releases"], "delegation"),
    ] {
        let mut full = vec!["key", "rotate", gun];
        full.extend(args.iter());
        let out = me.notary(&full);
        let err = out.stderr();
        assert!(!out.success() && err.contains(want), "{args:?}: {err}");
    }
    assert_eq!(stack.trust_file(gun, "root"), root_before);

    // A rotation that cannot be published leaves no new key behind: the notary CLI holds this
    // repository's root key, not the agent.
    let theirs = "example.com/notary/theirs";
    stack.notary_ok(&["init", theirs, "-p"]);
    let out = me.notary(&["key", "rotate", theirs, "targets"]);
    let err = out.stderr();
    assert!(
        !out.success()
            && err.contains("holds none of the root keys")
            && err.contains("--out REQ.json"),
        "{err}"
    );
    let keys = me.agent.tufa_ok(me.cwd, &["key", "list"]);
    assert!(!keys.contains("theirs-targets"), "{keys}");
}

/// A publish computed from a state another publisher has since replaced: the real server
/// refuses it as a version conflict, and tufa reads the repository again, re-applies its change
/// and publishes, losing neither publisher's target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_race_is_read_again_and_published_without_losing_anything() {
    use tufa_client::notary::NotaryRepo;
    use tufa_client::repo::{self, AgentKeys, Change, RepoState};
    use tufa_client::tuf::{Gun, RoleName, Sha256Digest, TrustCache, UpdateOptions};

    let gun_text = "example.com/tufa/race";
    let w = world_with_repo("notary-race", gun_text);
    let (agent, stack, cwd) = (&w.me.agent, &w.stack, w.cwd());

    let gun: Gun = gun_text.parse().unwrap();
    let client = notary_client(stack);
    let remote = client.repo(&gun);
    let cache = TrustCache::new(cwd.join("tufa-trust"));
    let options = UpdateOptions::default();
    let stale = repo::load_state(&remote, &cache, &gun, &options)
        .await
        .unwrap()
        .expect("initialised");

    // The other publisher wins the race.
    let digest = "ab".repeat(32);
    w.user().publish_target(gun_text, "theirs", 3, &digest);

    // Ours was computed from the state before theirs: the first read hands back that state.
    struct StaleFirst<'a> {
        stale: Option<RepoState>,
        server: repo::FromServer<'a, NotaryRepo>,
        loads: usize,
    }
    impl repo::StateSource for StaleFirst<'_> {
        async fn current(&mut self) -> Result<Option<RepoState>, repo::RepoError> {
            self.loads += 1;
            match self.stale.take() {
                Some(stale) => Ok(Some(stale)),
                None => self.server.current().await,
            }
        }
    }
    let mut source = StaleFirst {
        stale: Some(stale),
        server: repo::FromServer::new(&remote, &cache, &gun, &options),
        loads: 0,
    };
    let agent_client = agent.client().await;
    let held = AgentKeys::load(&agent_client).await.unwrap();
    let ours = Change::AddTarget {
        role: RoleName::TARGETS,
        name: "ours".into(),
        length: 3,
        sha256: Sha256Digest::from_bytes([0xcd; 32]),
        sha512: None,
        custom: None,
    };
    repo::publish_changes(
        &agent_client,
        &held,
        &remote,
        &gun,
        &[ours],
        &mut source,
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(source.loads, 2, "the conflict made it read again");
    let listed = stack.notary_ok(&["list", gun_text]);
    assert!(
        listed.contains("theirs") && listed.contains("ours"),
        "{listed}"
    );
}
