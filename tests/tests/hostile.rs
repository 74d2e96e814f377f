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

use std::path::{Path, PathBuf};

use serde_json::Value;
use tufa_client::tuf::{Metadata as _, RoleName, Root, Signed, Snapshot, Timestamp};
use tufa_testkit::{in_days, sign, sign_value, target, tree, Files, Fixture, SoftKey};
use tufa_tests::fake_repo::{agent_rooted, AgentRootKey};
use tufa_tests::hostile::{one_byte_changed, HostileServer, Tamper};
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

impl Reader<'_> {
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
    let reader = Reader {
        agent,
        server: &proxy,
        cwd,
        trust: cwd.join("reader-trust"),
        gun,
    };
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
    let reader = Reader {
        agent,
        server: &server,
        cwd: cwd.path(),
        trust: cwd.path().join("reader-trust"),
        gun,
    };
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
