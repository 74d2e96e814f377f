//! `tufa notary list` against a notary server that lies (issue 3, test 4, over HTTP).
//!
//! Two servers, one lie at a time, each refused with an error naming the role and the check,
//! and the trust cache left byte for byte as it was:
//! - a tampering proxy in front of the real notary-server, replaying or altering what a real
//!   repository published with `tufa notary` serves (no private key of the server needed);
//! - a fake server serving a repository signed here, for the lies that need the server's
//!   timestamp or snapshot key (an expired timestamp, a signed rollback of snapshot or targets,
//!   a correctly signed wrong `_type`, too few of two targets signatures, a delegated target
//!   outside its paths).
//!
//! Then hostile delegates (issue 11): a fake server serves what a delegate can publish (a role
//! listed twice, repeated entries over four levels, a 1 MB targets.json of 3,000 roles, odd
//! delegation files) and the lies of a server holding every key but root's (a snapshot that
//! drops a delegation, a forked root, one key under two IDs); the Go notary CLI reads the
//! same answers for comparison. Each odd file is also uploaded to the real notary-server, to
//! see what it stores and what notary, docker and tufa make of it.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use serde_json::Value;
use tufa_client::tuf::{
    Delegation, Metadata as _, PublicKey, RoleName, Root, RootRole, Sha256Digest, Signed, Snapshot,
    Targets, Timestamp,
};
use tufa_testkit::{
    in_days, served, sign, sign_value, target, tree, CertSpec, Files, Fixture, Oddity, SoftKey,
};
use tufa_tests::fake_repo::{agent_rooted, agent_rooted_keyed, AgentRootKey};
use tufa_tests::hostile::{one_byte_changed, post_metadata, HostileServer, Tamper};
use tufa_tests::{notary_args, Agent, Person, Run, World};

/// What tufa prints after every refusal of the server's trust data.
const HINT: [&str; 2] = [
    "the server may be compromised or misconfigured",
    "was left as it was",
];

/// A reader of one repository through a hostile server, with its own trust dir (the TOFU cache).
struct Reader<'a> {
    agent: &'a Agent,
    server: &'a HostileServer,
    cwd: &'a Path,
    trust: PathBuf,
    gun: &'a str,
}

impl<'a> Reader<'a> {
    /// A reader of `gun` through `server`, working in `cwd` with the trust dir
    /// `cwd/reader-trust`.
    fn new(agent: &'a Agent, server: &'a HostileServer, cwd: &'a Path, gun: &'a str) -> Self {
        Self {
            agent,
            server,
            cwd,
            trust: cwd.join("reader-trust"),
            gun,
        }
    }

    /// `tufa notary list GUN`, which must succeed; returns (stdout, stderr).
    fn list_ok(&self) -> (String, String) {
        let out = self.list();
        assert!(out.success(), "{out:?}\nserved: {:?}", self.server.served());
        (out.stdout(), out.stderr())
    }

    fn list(&self) -> Run {
        let url = self.server.url();
        let ca = self.server.ca_file();
        self.agent.tufa(
            self.cwd,
            &notary_args(&url, &ca, &self.trust, &["list", self.gun]),
        )
    }

    /// Runs `list` under `rules`: it must fail, say `expected` (and the hint), and leave the
    /// trust dir as it was; a rule, if any, must have changed an answer. Returns the error text.
    fn refused(&self, scenario: &str, rules: Vec<Tamper>, expected: &[&str]) -> String {
        let before = tree(&self.trust);
        self.server.served();
        let rules_given = rules.len();
        self.server.tamper(rules);
        let out = self.list();
        self.server.tamper(Vec::new());
        let served = self.server.served();
        let stderr = out.stderr();
        assert!(
            !out.success(),
            "{scenario}: accepted\n{}\nserved: {served:?}",
            out.stdout()
        );
        for needle in expected.iter().chain(&HINT) {
            assert!(
                stderr.contains(needle),
                "{scenario}: {needle:?} missing from:\n{stderr}"
            );
        }
        assert!(
            rules_given == 0 || served.iter().any(|s| s.tampered),
            "{scenario}: no tampered answer was asked for: {served:?}"
        );
        assert!(
            tree(&self.trust) == before,
            "{scenario}: the trust cache changed"
        );
        println!("--- {scenario}\n{stderr}");
        stderr
    }
}

/// A repository's timestamp, snapshot and targets files as the server serves them now.
struct Recorded {
    timestamp: Vec<u8>,
    snapshot: Vec<u8>,
    targets: Vec<u8>,
}

impl Recorded {
    fn now(server: &HostileServer, gun: &str) -> Self {
        let fetch = |file: String| {
            server
                .fetch(gun, &file)
                .unwrap_or_else(|| panic!("the server has no {file}"))
        };
        let timestamp = fetch("timestamp.json".into());
        let ts = Signed::<Timestamp>::from_slice(&RoleName::TIMESTAMP, &timestamp).unwrap();
        let sha = ts.signed.snapshot.hashes.sha256.expect("snapshot sha256");
        let snapshot = fetch(format!("snapshot.{sha}.json"));
        let snap = Signed::<Snapshot>::from_slice(&RoleName::SNAPSHOT, &snapshot).unwrap();
        let sha = snap.signed.meta[&RoleName::TARGETS]
            .hashes
            .sha256
            .expect("targets sha256");
        let targets = fetch(format!("targets.{sha}.json"));
        Self {
            timestamp,
            snapshot,
            targets,
        }
    }
}

/// The lies a proxy can tell with what a real notary-server serves.
#[test]
fn a_tampering_proxy_in_front_of_notary_server_is_refused() {
    let w = World::new("hostile-proxy");
    let (agent, cwd) = (&w.me.agent, w.cwd());
    let gun = "example.com/tufa/hostile";
    let proxy = HostileServer::proxy(&w.stack);
    let me = w.user();
    let publish = |args: &[&str]| {
        me.notary_ok(args);
    };
    let sha = |c: &str| c.repeat(64);

    // Published straight to notary-server: root and targets, then a delegation to an agent key.
    publish(&["init", gun, "-p"]);
    me.publish_target(gun, "v1", 10, &sha("a"));
    let first = Recorded::now(&proxy, gun);
    me.generate_key("releaser");
    me.delegate(gun, "targets/releases", "releaser.pub");
    let rel = ["--roles", "targets/releases", "-p"];
    publish(
        &[
            &["addhash", gun, "v2", "20", "--sha256", &sha("b")][..],
            &rel,
        ]
        .concat(),
    );

    // The reader trusts the repository on first use, through the (honest) proxy.
    let reader = Reader::new(agent, &proxy, cwd, gun);
    let (listed, _) = reader.list_ok();
    assert!(listed.contains("v1") && listed.contains("v2"), "{listed}");
    let root_v1 = proxy.fetch(gun, "root.json").unwrap();

    // The repository moves on, so the reader must fetch new snapshot, targets and releases.
    me.publish_target(gun, "v3", 30, &sha("c"));
    publish(
        &[
            &["addhash", gun, "v4", "40", "--sha256", &sha("d")][..],
            &rel,
        ]
        .concat(),
    );

    reader.refused(
        "rolled-back timestamp (an older timestamp.json replayed)",
        vec![Tamper::replace("timestamp", first.timestamp.clone())],
        &[
            "timestamp.json",
            "trust data version is lower than expected",
        ],
    );
    // With the real server's keys out of reach, an older snapshot or targets can only be
    // replayed under the current timestamp/snapshot, whose recorded hash catches it first.
    reader.refused(
        "rolled-back snapshot (an older snapshot.json replayed)",
        vec![Tamper::replace("snapshot", first.snapshot.clone())],
        &["snapshot.json does not match what timestamp.json records"],
    );
    reader.refused(
        "rolled-back targets (an older targets.json replayed)",
        vec![Tamper::replace("targets", first.targets.clone())],
        &["targets.json does not match what snapshot.json records"],
    );
    reader.refused(
        "snapshot.json with one byte changed",
        vec![Tamper::map("snapshot", one_byte_changed)],
        &[
            "snapshot.json does not match what timestamp.json records",
            "sha256",
        ],
    );
    reader.refused(
        "targets.json whose hash the snapshot does not record",
        vec![Tamper::map("targets", one_byte_changed)],
        &[
            "targets.json does not match what snapshot.json records",
            "sha256",
        ],
    );
    reader.refused(
        "targets/releases.json whose hash the snapshot does not record",
        vec![Tamper::map("targets/releases", one_byte_changed)],
        &["targets/releases.json does not match what snapshot.json records"],
    );
    reader.refused(
        "targets.json longer than its recorded length",
        vec![Tamper::map("targets", |b| [b, &b"    "[..]].concat())],
        &[
            "bytes for targets.json, the most allowed",
            "the length snapshot.json records",
        ],
    );
    reader.refused(
        "timestamp.json with a broken signature",
        vec![Tamper::map("timestamp", one_byte_changed)],
        &["timestamp.json has valid signatures from 0 distinct timestamp key(s) but needs 1"],
    );
    reader.refused(
        "timestamp.json signed by an unknown key",
        vec![Tamper::map("timestamp", |b| {
            let file: Value = serde_json::from_slice(b).unwrap();
            sign_value(&file["signed"], &[&SoftKey::ecdsa(99)])
        })],
        &[
            "timestamp.json has valid signatures from 0",
            "not a key of timestamp",
        ],
    );
    reader.refused(
        "timestamp.json without signatures (threshold not met)",
        vec![Tamper::map("timestamp", |b| {
            let mut file: Value = serde_json::from_slice(b).unwrap();
            file["signatures"] = Value::Array(Vec::new());
            serde_json::to_vec(&file).unwrap()
        })],
        &["timestamp.json has no signatures"],
    );
    // The signature covers `_type`, so without the timestamp key a changed type is first a
    // broken signature; the fake server below shows the type check itself.
    reader.refused(
        "timestamp.json with `_type` Snapshot",
        vec![Tamper::map("timestamp", |b| {
            String::from_utf8_lossy(b)
                .replace(r#""_type":"Timestamp""#, r#""_type":"Snapshot""#)
                .into_bytes()
        })],
        &["timestamp.json has valid signatures from 0 distinct timestamp key(s)"],
    );

    // Root v2 that hands the repository to a key the owner never had, signed by that key only.
    let root_v2 = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let client = agent.client().await;
            let intruder = AgentRootKey::generate(&client, "intruder", &gun.parse().unwrap()).await;
            let mut root = Signed::<Root>::from_slice(&RoleName::ROOT, &root_v1)
                .unwrap()
                .signed;
            root.version = 2;
            root.keys
                .insert(intruder.public().id(), intruder.public().clone());
            root.roles.root.keyids = vec![intruder.public().id()];
            intruder.sign_root(&client, root).await
        })
    };
    reader.refused(
        "root.json v2 not signed by the root key of v1",
        vec![Tamper::replace("root", root_v2)],
        &[
            "root.json version 2",
            "not signed by the root key(s) of version 1",
        ],
    );

    // Honest again: the reader catches up, so nothing above was refused for another reason.
    let before = tree(&reader.trust);
    let (listed, _) = reader.list_ok();
    assert!(listed.contains("v3") && listed.contains("v4"), "{listed}");
    assert!(
        tree(&reader.trust) != before,
        "the honest update cached nothing"
    );
}

/// The lies that need the server's keys: told by a fake server that holds them all.
#[test]
fn a_fake_server_holding_every_key_is_refused() {
    let me = Person::new("hostile-fake");
    let agent = &me.agent;
    let cwd = tempfile::tempdir().unwrap();
    let gun = "example.com/tufa/fake";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut repo = rt.block_on(async { agent_rooted(&agent.client().await, "root", gun).await });

    // The honest state the reader caches: targets v2, snapshot and timestamp v3.
    repo.targets.version = 2;
    repo.snapshot_version = 3;
    repo.timestamp_version = 3;
    let server = HostileServer::fake(tufa_testkit::served(&repo.build()));
    let reader = Reader::new(agent, &server, cwd.path(), gun);
    let (listed, stderr) = reader.list_ok();
    assert!(
        listed.contains("admin") && listed.contains("v1"),
        "{listed}"
    );
    assert!(stderr.is_empty(), "{stderr}");

    // Each lie is a whole repository served in place of the honest one.
    let lie = |scenario: &str, files: Files, expected: &[&str]| {
        server.set_files(tufa_testkit::served(&files));
        reader.refused(scenario, Vec::new(), expected)
    };
    let next = |edit: &dyn Fn(&mut Fixture)| {
        let mut r = repo.clone();
        r.snapshot_version = 4;
        r.timestamp_version = 4;
        edit(&mut r);
        r
    };

    let expired = next(&|r| r.timestamp_expires = in_days(-1));
    lie(
        "expired timestamp",
        expired.build(),
        &[
            "timestamp.json of example.com/tufa/fake expired at",
            "freeze attack",
        ],
    );

    let old_snapshot = next(&|r| r.snapshot_version = 2);
    lie(
        "rolled-back snapshot, signed",
        old_snapshot.build(),
        &["snapshot.json", "is version 2, older than version 3"],
    );

    let old_targets = next(&|r| r.targets.version = 1);
    lie(
        "rolled-back targets, signed",
        old_targets.build(),
        &["targets.json", "is version 1, older than version 2"],
    );

    let one_of_two = next(&|r| r.targets.version = 3);
    let files = one_of_two.build_replacing(
        RoleName::TARGETS,
        sign(one_of_two.targets.clone(), &[&one_of_two.targets_keys[0]]),
    );
    lie(
        "targets signed by one of its two keys (threshold 2)",
        files,
        &["targets.json has valid signatures from 1 distinct targets key(s) but needs 2"],
    );

    let wrong_type = next(&|_| {});
    let mut files = wrong_type.build();
    let mut body = wrong_type
        .timestamp_body(&files[&RoleName::SNAPSHOT])
        .to_value();
    body["_type"] = Value::String("Snapshot".into());
    files.insert(
        RoleName::TIMESTAMP,
        sign_value(&body, &[&wrong_type.timestamp_key]),
    );
    lie(
        "timestamp with `_type` Snapshot, signed by the timestamp key",
        files,
        &["timestamp.json has `_type` \"Snapshot\" where \"Timestamp\" belongs"],
    );

    // A delegated target outside the delegation's paths is not an error in Notary: the target
    // is ignored and the rest of the (validly signed) repository is used and cached.
    let outside = next(&|r| {
        r.targets.version = 3;
        r.targets.delegations.roles[0].paths = vec!["app/".into()];
        r.releases.version = 2;
        r.releases.targets.insert("app/v2".into(), target(b"v2"));
    });
    server.set_files(tufa_testkit::served(&outside.build()));
    let (listed, stderr) = reader.list_ok();
    println!("--- delegated target outside its paths\n{stderr}");
    assert!(listed.contains("app/v2"), "{listed}");
    assert!(
        !listed.contains("v1 "),
        "an out-of-paths target was listed:\n{listed}"
    );
    assert!(
        stderr.contains(
            "targets/releases lists \"v1\", outside the paths delegated to it; the target is ignored"
        ),
        "{stderr}"
    );
}

/// The role `notary list` (tufa's or Go's) shows for target `name`, if it lists it.
fn listed_role(listed: &str, name: &str) -> Option<String> {
    listed.lines().find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.first() == Some(&name)).then(|| cols.last().unwrap_or(&"").to_string())
    })
}

/// Hostile delegates, and a server that holds every key but the root key (issue 11), told by
/// a fake server. A reader trusts the honest repository, then each state below is served:
/// the delegates' tricks are read as Notary reads them, the server's lies are refused.
#[test]
fn hostile_delegates_and_a_server_forking_the_repository() {
    let me = Person::new("hostile-delegates");
    let agent = &me.agent;
    let cwd = tempfile::tempdir().unwrap();
    let gun = "example.com/tufa/delegates";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(agent.client());
    let (base, root_key) = rt.block_on(agent_rooted_keyed(&client, "root", gun));
    let server = HostileServer::fake(served(&base.build()));
    let reader = Reader::new(agent, &server, cwd.path(), gun);
    let (listed, _) = reader.list_ok();
    assert_eq!(
        listed_role(&listed, "v1").as_deref(),
        Some("targets/releases")
    );
    let go_trust = cwd.path().join("go-notary-trust");
    let go_list = |scenario: &str| {
        let out = server.go_notary(&go_trust, &["list", gun]);
        println!(
            "--- Go notary, {scenario}: {}\n{}{}",
            if out.success() { "read" } else { "refused" },
            out.stdout(),
            out.stderr()
        );
        out
    };
    assert!(go_list("the honest repository").success());

    // Each state is newer than the last one the reader accepted.
    let version = std::cell::Cell::new(1);
    let next = |edit: &dyn Fn(&mut Fixture)| {
        version.set(version.get() + 1);
        let mut r = base.clone();
        r.targets.version = version.get();
        r.releases.version = version.get();
        r.snapshot_version = version.get();
        r.timestamp_version = version.get();
        edit(&mut r);
        r
    };
    let accepted = |scenario: &str, files: &Files| {
        server.set_files(served(files));
        let start = std::time::Instant::now();
        let (listed, stderr) = reader.list_ok();
        println!("--- {scenario} ({:?})\n{stderr}", start.elapsed());
        (listed, stderr)
    };

    // A role listed twice: the first entry (paths app/) holds for lookups too, as in Notary.
    let twice = next(&|r| {
        r.targets.delegations.roles[0].paths = vec!["app/".into()];
        let mut all = r.targets.delegations.roles[0].clone();
        all.paths = vec![String::new()];
        r.targets.delegations.roles.push(all);
        r.releases.targets.insert("app/v2".into(), target(b"v2"));
    });
    let (listed, stderr) = accepted("targets/releases listed twice", &twice.build());
    assert_eq!(listed_role(&listed, "v1"), None, "{listed}");
    assert_eq!(
        listed_role(&listed, "app/v2").as_deref(),
        Some("targets/releases")
    );
    assert!(
        stderr.contains("targets/releases lists \"v1\", outside the paths delegated to it"),
        "{stderr}"
    );
    // Notary's client queues the role once per entry and then refuses to load it twice.
    let go = go_list("targets/releases listed twice");
    assert!(
        !go.success()
            && go
                .stdout()
                .contains("targets/releases has already been loaded"),
        "{go:?}"
    );

    // 100 entries for each role at each of four levels: 10^8 roles down a naive walk.
    let deep = next(&|r| {
        let key = SoftKey::ecdsa(30);
        let mut parent = RoleName::TARGETS;
        for name in [
            "targets/a",
            "targets/a/b",
            "targets/a/b/c",
            "targets/a/b/c/d",
        ] {
            let mut body = Targets::new(1, in_days(30));
            body.targets
                .insert(format!("deep-{name}"), target(name.as_bytes()));
            r.delegate(&parent, name, &[""], 100, &key, body);
            parent = name.parse().unwrap();
        }
    });
    let (listed, _) = accepted(
        "100 entries for a role at each of four levels",
        &deep.build(),
    );
    assert_eq!(
        listed_role(&listed, "deep-targets/a/b/c/d").as_deref(),
        Some("targets/a/b/c/d"),
        "{listed}"
    );
    assert_eq!(listed.matches("deep-").count(), 4, "{listed}");

    // targets.json of 1 MB delegating to 3,000 roles with a key each.
    let big = next(&|r| {
        for i in 0..3000 {
            let digest = Sha256Digest::of(format!("r{i}").as_bytes());
            let key = PublicKey::ecdsa([digest.as_bytes().as_slice(); 3].concat()[..91].to_vec());
            r.targets.delegations.keys.insert(key.id(), key.clone());
            r.targets.delegations.roles.push(Delegation {
                name: format!("targets/r{i:04}").parse().unwrap(),
                keyids: vec![key.id()],
                threshold: 1,
                paths: vec![String::new()],
            });
        }
    });
    let files = big.build();
    let size = files[&RoleName::TARGETS].len();
    assert!(size > 1_000_000, "{size}");
    let (listed, _) = accepted(
        &format!("targets.json of {size} bytes, 3,000 roles and keys"),
        &files,
    );
    assert_eq!(
        listed_role(&listed, "v1").as_deref(),
        Some("targets/releases")
    );

    // Odd delegation files: each read as Notary reads it, or that role alone skipped.
    for odd in Oddity::ALL {
        let mut r = next(&|_| {});
        let files = odd.build(&mut r);
        let (listed, stderr) = accepted(odd.describe(), &files);
        let (role, words) = odd.warning();
        assert!(
            stderr.contains(role) && stderr.contains(words),
            "{}: no warning naming {role} ({words:?}):\n{stderr}",
            odd.describe()
        );
        assert!(listed.contains("admin"), "{listed}");
        let v1 = (odd != Oddity::Damaged).then(|| "targets/releases".to_owned());
        assert_eq!(listed_role(&listed, "v1"), v1, "{listed}");
        assert_eq!(listed_role(&listed, "sub"), None, "{listed}");
        // Notary's client reads the first four and, for the key it would trust despite its
        // published private part, lists the sub-delegation's target; it refuses the whole
        // repository for the last two.
        let go = go_list(odd.describe());
        let refuses = matches!(odd, Oddity::MissingKey | Oddity::Damaged);
        assert_eq!(go.success(), !refuses, "{go:?}");
        if odd == Oddity::PrivateKey {
            assert_eq!(
                listed_role(&go.stdout(), "sub").as_deref(),
                Some(Oddity::SUB)
            );
        }
    }

    // The lies of a server holding the snapshot key and of one holding the root key.
    let lie = |scenario: &str, files: Files, expected: &[&str]| {
        server.set_files(served(&files));
        reader.refused(scenario, Vec::new(), expected)
    };
    let without = next(&|_| {});
    let mut dropped = without.build();
    dropped.remove(&RoleName::RELEASES);
    without.resnapshot(&mut dropped, |_| {});
    lie(
        "a snapshot without targets/releases, which targets still delegates to",
        dropped,
        &[
            "snapshot.json of example.com/tufa/delegates no longer lists targets/releases",
            "targets still delegates to it",
        ],
    );

    // Root v1 again, signed by the root key, handing targets to a key of the server's.
    let forked = next(&|r| {
        r.targets_keys = vec![SoftKey::ecdsa(31)];
        r.root = r.root_body(1, &[root_key.public()]);
        r.signed_root = Some(rt.block_on(root_key.sign_root(&client, r.root.clone())));
    });
    lie(
        "a different root.json under the cached root's version",
        forked.build(),
        &[
            "root.json of example.com/tufa/delegates is version 1, as the cached root is",
            "differs from the cached root.json",
        ],
    );

    // Root v2 lists the targets key twice, bare and in a certificate, and needs both.
    let twice_listed = next(&|r| {
        let key = SoftKey::ecdsa(2);
        let cert = SoftKey::with_cert(2, &CertSpec::notary("targets"));
        r.root = r.root_body(2, &[root_key.public()]);
        r.root.keys.insert(cert.id(), cert.public().clone());
        r.root.roles.targets = RootRole {
            keyids: vec![key.id(), cert.id()],
            threshold: 2,
        };
        r.signed_root = Some(rt.block_on(root_key.sign_root(&client, r.root.clone())));
        r.targets_keys = vec![key, cert];
    });
    lie(
        "targets signed by one key listed under two key IDs (threshold 2)",
        twice_listed.build(),
        &["targets.json has valid signatures from 1 distinct targets key(s) but needs 2"],
    );
}

/// What the real notary-server stores of each odd delegation file a delegate uploads with its
/// own key, and what the notary CLI, `docker trust inspect` and tufa then read (issue 11).
#[test]
fn odd_delegation_files_through_the_real_notary_server() {
    let w = World::new("hostile-odd");
    let (me, stack) = (w.user(), &w.stack);
    let mut table = Vec::new();
    for (i, odd) in Oddity::ALL.into_iter().enumerate() {
        let gun = format!("example.com/tufa/odd{i}");
        me.notary_ok(&["init", &gun, "--server-managed-snapshot", "-p"]);
        // targets/releases is a key of the test's: the delegate signs its own files.
        let mut fx = Fixture::for_gun(&gun);
        let spki = fx.releases_key.public().public().to_vec();
        std::fs::write(
            w.cwd().join("releases.pem"),
            pem::encode(&pem::Pem::new("PUBLIC KEY", spki)),
        )
        .unwrap();
        me.delegate(&gun, "targets/releases", "releases.pem");
        let files = odd.files(&mut fx);
        let posted = post_metadata(stack, &gun, &files);
        let stored = stack.trust_file(&gun, "targets/releases");
        assert!(
            posted.is_ok() == stored.is_some(),
            "{}: {posted:?} but stored {:?}",
            odd.describe(),
            stored.is_some()
        );
        if let Some(stored) = &stored {
            assert_eq!(stored, &files[0].1, "{}: stored otherwise", odd.describe());
        }
        // notary-server's snapshot records the hash of its own re-serialisation of the file,
        // which differs from the stored bytes unless they are laid out as Go writes them.
        let recorded = stack.trust_json(&gun, "snapshot").and_then(|s| {
            s["signed"]["meta"]["targets/releases"]["hashes"]["sha256"]
                .as_str()
                .map(str::to_owned)
        });
        let consistent = stored.as_ref().is_none_or(|stored| {
            let sha = base64::engine::general_purpose::STANDARD
                .encode(Sha256Digest::of(stored).as_bytes());
            recorded.as_deref() == Some(sha.as_str())
        });
        let go = stack.notary(&["list", &gun]);
        let docker = me.docker_trust(&["inspect", &gun]);
        let ours = me.notary(&["list", &gun]);
        let server = match (&posted, consistent) {
            (Err(e), _) => format!("refused ({e})"),
            (Ok(()), true) => "stored".into(),
            (Ok(()), false) => "stored, but its snapshot records the hash of other bytes".into(),
        };
        println!(
            "--- {}\nnotary-server: {server}\nnotary list: {}\n{}{}docker trust inspect: {}\n{}\
             tufa notary list: {}\n{}{}",
            odd.describe(),
            if go.success() { "read" } else { "refused" },
            go.stdout(),
            go.stderr(),
            if docker.success() { "read" } else { "refused" },
            docker.stderr(),
            if ours.success() { "read" } else { "refused" },
            ours.stdout(),
            ours.stderr()
        );
        table.push((
            odd,
            posted.is_ok(),
            consistent,
            go.success(),
            docker.success(),
        ));
        if !consistent {
            // Nobody can fetch the file the snapshot names: every client refuses alike.
            assert!(!go.success() && !docker.success(), "{}", odd.describe());
            assert!(
                ours.stderr()
                    .contains("the notary server has no targets/releases."),
                "{ours:?}"
            );
            continue;
        }
        // tufa reads every repository the server serves, and says what it passed over.
        assert!(
            ours.success(),
            "{}: tufa refused:\n{ours:?}",
            odd.describe()
        );
        if stored.is_some() {
            let (role, words) = odd.warning();
            let stderr = ours.stderr();
            assert!(
                stderr.contains(role) && stderr.contains(words),
                "{}: no warning naming {role}:\n{stderr}",
                odd.describe()
            );
            assert_eq!(
                listed_role(&ours.stdout(), "v1").as_deref(),
                Some("targets/releases")
            );
        }
    }
    println!("(oddity, stored, snapshot consistent, notary read, docker read)\n{table:#?}");
    // What notary-server 0.7 stores: what Go's decoder and its delegation checks accept.
    let stored: Vec<Oddity> = table.iter().filter(|t| t.1).map(|t| t.0).collect();
    assert_eq!(
        stored,
        [
            Oddity::ExtraSignature,
            Oddity::LoneSurrogate,
            Oddity::PrivateKey,
            Oddity::ShortHash
        ]
    );
    // Go re-serialises "\ud800" as U+FFFD, so that upload breaks the repository for everyone.
    let broken: Vec<Oddity> = table.iter().filter(|t| !t.2).map(|t| t.0).collect();
    assert_eq!(broken, [Oddity::LoneSurrogate]);
    // The notary CLI and docker read every repository the server serves consistently.
    assert!(
        table.iter().filter(|t| t.1 && t.2).all(|t| t.3 && t.4),
        "{table:#?}"
    );
}
