//! The client update against repositories served from memory: the real notary-server samples,
//! and repositories signed here with software P-256 keys, honest and hostile.
//!
//! Every hostile case checks that the update is refused with an error naming the role and the
//! check, and that the trust cache is byte-for-byte what it was before.

use std::collections::HashMap;
use std::fs;

use serde_json::Value;
use tufa_client::tuf::{
    update, Delegation, Expires, Gun, KeyId, Metadata, PublicKey, RoleName, RootRole, Sha256Digest,
    Signature, Signed, Targets, TrustCache, TrustPinning, TufError, UpdateError, UpdateOptions,
    UpdateWarning, VerifiedRepo,
};
use tufa_testkit::cert::{cert_der, pem_cert};
use tufa_testkit::{
    now, sample, sample_time, sign, sign_value, target, tree, CertSpec, Files, Fixture, MemStore,
    Oddity, SoftKey, GUN,
};

/// A fresh trust directory.
fn trust_dir() -> (tempfile::TempDir, TrustCache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = TrustCache::new(dir.path());
    (dir, cache)
}

async fn run(store: &MemStore, cache: &TrustCache, gun: &Gun) -> Result<VerifiedRepo, UpdateError> {
    update(store, cache, gun, &UpdateOptions::at(now())).await
}

/// Runs an update that must fail, checks the cache did not change, and returns the error.
async fn refused(store: &MemStore, cache: &TrustCache, gun: &Gun) -> UpdateError {
    let before = tree(cache.trust_dir());
    let err = run(store, cache, gun).await.unwrap_err();
    assert_eq!(
        tree(cache.trust_dir()),
        before,
        "the cache changed on a refused update ({err})"
    );
    err
}

/// Asserts the error's text names `role` and contains `check`.
fn names(err: &UpdateError, role: &str, check: &str) {
    let text = err.to_string();
    assert!(text.contains(role), "role {role} not named: {text}");
    assert!(text.contains(check), "check {check:?} not named: {text}");
}

fn role_versions(files: &Files) -> Vec<(String, u64)> {
    files
        .iter()
        .map(|(role, bytes)| {
            let v: Value = serde_json::from_slice(bytes).unwrap();
            (role.to_string(), v["signed"]["version"].as_u64().unwrap())
        })
        .collect()
}

fn entries(repo: &VerifiedRepo, roles: Option<&[RoleName]>) -> Vec<(String, String)> {
    repo.targets(roles)
        .into_iter()
        .map(|t| (t.name, t.role.to_string()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The real notary-server samples.

#[tokio::test]
async fn real_samples_verify_and_are_cached_as_served() {
    let cases = [
        ("demo", "localhost:5000/demo"),
        ("demo2-docker-signer-add", "localhost:5000/demo2"),
        ("local-trust-ed25519", "localhost:5000/local"),
        ("reference-scenario", "127.0.0.1:5000/dct/app"),
    ];
    for (name, gun) in cases {
        let gun: Gun = gun.parse().unwrap();
        let files = sample(name);
        let store = MemStore::serving(&files);
        let (_dir, cache) = trust_dir();
        let options = UpdateOptions::at(sample_time());
        let repo = update(&store, &cache, &gun, &options)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(repo.warnings().is_empty(), "{name}: {:?}", repo.warnings());
        // Every role is cached byte for byte as served, at Notary's paths.
        for (role, bytes) in &files {
            assert_eq!(
                &fs::read(cache.path(&gun, role)).unwrap(),
                bytes,
                "{name}: {role}"
            );
        }
        // A second update reads the same, writes nothing and fetches snapshot and targets
        // from the cache (Notary's tryLoadCacheThenRemote).
        let before = tree(cache.trust_dir());
        let first_requests = store.requests().len();
        let again = update(&store, &cache, &gun, &options).await.unwrap();
        assert_eq!(tree(cache.trust_dir()), before, "{name}");
        assert_eq!(
            store.requests()[first_requests..],
            ["root.json".to_owned(), "timestamp.json".to_owned()],
            "{name}"
        );
        assert_eq!(again.targets(None), repo.targets(None), "{name}");
    }
}

#[tokio::test]
async fn reference_scenario_resolves_as_notary_and_docker() {
    let gun: Gun = "127.0.0.1:5000/dct/app".parse().unwrap();
    let store = MemStore::serving(&sample("reference-scenario"));
    let (_dir, cache) = trust_dir();
    let repo = update(&store, &cache, &gun, &UpdateOptions::at(sample_time()))
        .await
        .unwrap();
    // Downloads in Notary's order: delegations pre-order in the parent's array order.
    let fetched: Vec<String> = store
        .requests()
        .iter()
        .map(|r| r.split('.').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        fetched,
        [
            "root",
            "timestamp",
            "snapshot",
            "targets",
            "targets/alice",
            "targets/releases",
            "targets/bob"
        ]
    );
    assert_eq!(repo.root().signed.version, 1);
    assert_eq!(repo.timestamp().signed.version, 4);
    assert_eq!(repo.snapshot().signed.version, 4);
    assert_eq!(repo.targets_role().signed.version, 4);
    let names: Vec<&str> = repo.delegations().iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["targets/alice", "targets/releases", "targets/bob"]);

    // `notary list`: breadth-first over the whole tree, first role wins.
    assert_eq!(
        entries(&repo, None),
        pairs(&[
            ("admin", "targets"),
            ("v1", "targets/alice"),
            ("v2", "targets/alice")
        ])
    );
    // `notary list -r targets/releases -r targets` as docker lists.
    assert_eq!(
        entries(&repo, Some(&[RoleName::RELEASES, RoleName::TARGETS])),
        pairs(&[
            ("admin", "targets"),
            ("v1", "targets/releases"),
            ("v2", "targets/releases")
        ])
    );
    // `docker pull`: releases before targets, and only those two roles count.
    let v1 = repo.docker_target("v1").unwrap();
    assert_eq!(v1.role, RoleName::RELEASES);
    assert_eq!(v1.length, 423);
    assert!(v1.sha256.is_some());
    assert_eq!(repo.docker_target("admin").unwrap().role, RoleName::TARGETS);
    assert_eq!(repo.docker_target("nope"), None);
    assert_eq!(
        repo.target("v2", None).unwrap().role.as_str(),
        "targets/alice"
    );
    assert_eq!(repo.all_targets().len(), 7);
}

#[tokio::test]
async fn real_sample_with_an_expired_timestamp_is_refused() {
    let gun: Gun = "localhost:5000/demo".parse().unwrap();
    let store = MemStore::serving(&sample("demo"));
    let (_dir, cache) = trust_dir();
    let late = Expires::parse("2026-12-07T00:00:00Z").unwrap().time();
    let err = update(&store, &cache, &gun, &UpdateOptions::at(late))
        .await
        .unwrap_err();
    assert!(matches!(&err, UpdateError::Expired { role, .. } if *role == RoleName::TIMESTAMP));
    names(
        &err,
        "timestamp.json",
        "expired at 2026-12-06T04:01:31.595796046Z",
    );
    assert!(tree(cache.trust_dir()).is_empty());
}

#[tokio::test]
async fn real_sample_for_another_gun_is_refused() {
    // demo's root certificate is for localhost:5000/demo.
    let gun: Gun = "localhost:5000/evil".parse().unwrap();
    let store = MemStore::serving(&sample("demo"));
    let (_dir, cache) = trust_dir();
    let err = update(&store, &cache, &gun, &UpdateOptions::at(sample_time()))
        .await
        .unwrap_err();
    names(&err, "root.json", "CN \"localhost:5000/demo\"");
    assert!(tree(cache.trust_dir()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Repositories signed here: the honest path.

#[tokio::test]
async fn a_fresh_repository_verifies_and_lookups_follow_docker() {
    let fx = Fixture::new();
    let store = MemStore::serving(&fx.build());
    let (_dir, cache) = trust_dir();
    let repo = run(&store, &cache, &fx.gun).await.unwrap();
    assert_eq!(
        entries(&repo, None),
        pairs(&[("admin", "targets"), ("v1", "targets/releases")])
    );
    let v1 = repo.docker_target("v1").unwrap();
    assert_eq!(v1.sha256, Some(Sha256Digest::of(b"v1")));
    assert_eq!(v1.length, 2);
    assert!(cache.path(&fx.gun, &RoleName::RELEASES).is_file());
}

#[tokio::test]
async fn root_chain_walk_across_two_rotations() {
    let mut fx = Fixture::new();
    let store = MemStore::serving(&fx.build());
    let (_dir, cache) = trust_dir();
    run(&store, &cache, &fx.gun).await.unwrap();

    // v2: new root key B, signed by A (old) and B; v3: key C, signed by B and C.
    let a = fx.rotate_root(2, SoftKey::root(11, GUN));
    let mut v2 = Files::new();
    v2.insert(RoleName::ROOT, sign(fx.root.clone(), &[&a, &fx.root_key]));
    store.serve(&v2);
    let b = fx.rotate_root(3, SoftKey::root(12, GUN));
    // Notary keeps old root certificates in `keys` after a rotation.
    fx.root.keys.insert(a.id(), a.public().clone());
    fx.snapshot_version = 2;
    fx.timestamp_version = 2;
    let files = fx.build_rotated(&b);
    store.serve(&files);

    let repo = run(&store, &cache, &fx.gun).await.unwrap();
    assert_eq!(repo.root().signed.version, 3);
    assert!(store.requests().contains(&"2.root.json".to_owned()));
    assert_eq!(
        fs::read(cache.path(&fx.gun, &RoleName::ROOT)).unwrap(),
        files[&RoleName::ROOT]
    );
}

#[tokio::test]
async fn a_missing_intermediate_root_stops_the_walk() {
    let mut fx = Fixture::new();
    let store = MemStore::serving(&fx.build());
    let (_dir, cache) = trust_dir();
    run(&store, &cache, &fx.gun).await.unwrap();
    // Root jumps from v1 to v3 with no 2.root.json on the server.
    let a = fx.rotate_root(3, SoftKey::root(11, GUN));
    fx.snapshot_version = 2;
    fx.timestamp_version = 2;
    store.serve(&fx.build_rotated(&a));
    let err = refused(&store, &cache, &fx.gun).await;
    names(&err, "2.root.json", "no 2.root.json");
}

// ---------------------------------------------------------------------------------------------
// Hostile servers.

/// A trust directory holding the verified `files`.
async fn cached(files: &Files, gun: &Gun) -> (tempfile::TempDir, TrustCache) {
    let (dir, cache) = trust_dir();
    run(&MemStore::serving(files), &cache, gun).await.unwrap();
    (dir, cache)
}

/// A client that trusts nothing yet is served `files`: the update must be refused with
/// nothing cached; returns the error.
async fn refused_first(files: &Files, gun: &Gun) -> UpdateError {
    let (_dir, cache) = trust_dir();
    refused(&MemStore::serving(files), &cache, gun).await
}

/// A client trusts `fx`'s repository; then the server serves it changed by `lie`. The update
/// must be refused with the cache unchanged; returns the error.
async fn refused_after(mut fx: Fixture, lie: impl FnOnce(&mut Fixture)) -> UpdateError {
    let (_dir, cache) = cached(&fx.build(), &fx.gun).await;
    lie(&mut fx);
    refused(&MemStore::serving(&fx.build()), &cache, &fx.gun).await
}

#[tokio::test]
async fn rolled_back_timestamp_is_refused() {
    let mut fx = Fixture::new();
    fx.timestamp_version = 5;
    let err = refused_after(fx, |fx| fx.timestamp_version = 4).await;
    assert!(
        matches!(&err, UpdateError::Rollback { role, found: 4, trusted: 5, .. } if *role == RoleName::TIMESTAMP)
    );
    names(&err, "timestamp.json", "version is lower than expected");
}

#[tokio::test]
async fn rolled_back_snapshot_is_refused() {
    let mut fx = Fixture::new();
    fx.snapshot_version = 3;
    let err = refused_after(fx, |fx| {
        fx.snapshot_version = 2;
        fx.timestamp_version = 2;
    })
    .await;
    assert!(
        matches!(&err, UpdateError::Rollback { role, found: 2, trusted: 3, .. } if *role == RoleName::SNAPSHOT)
    );
    names(&err, "snapshot.json", "rollback");
}

#[tokio::test]
async fn rolled_back_targets_is_refused() {
    let mut fx = Fixture::new();
    fx.targets.version = 7;
    let err = refused_after(fx, |fx| {
        fx.targets.version = 6;
        fx.snapshot_version = 2;
        fx.timestamp_version = 2;
        assert!(role_versions(&fx.build()).contains(&("targets".into(), 6)));
    })
    .await;
    assert!(
        matches!(&err, UpdateError::Rollback { role, found: 6, trusted: 7, .. } if *role == RoleName::TARGETS)
    );
    names(&err, "targets.json", "older than version 7");
}

#[tokio::test]
async fn expired_timestamp_is_refused() {
    let err = refused_after(Fixture::new(), |fx| {
        fx.timestamp_version = 2;
        fx.timestamp_expires = Expires::new(now() - time::Duration::hours(1)).unwrap();
    })
    .await;
    assert!(matches!(&err, UpdateError::Expired { role, .. } if *role == RoleName::TIMESTAMP));
    names(&err, "timestamp.json", "freeze attack");
}

#[tokio::test]
async fn expired_targets_is_refused() {
    let mut fx = Fixture::new();
    fx.targets.expires = Expires::new(now() - time::Duration::hours(1)).unwrap();
    let err = refused_first(&fx.build(), &fx.gun).await;
    assert!(matches!(&err, UpdateError::Expired { role, .. } if *role == RoleName::TARGETS));
}

#[tokio::test]
async fn snapshot_with_the_wrong_targets_hash_is_refused() {
    let fx = Fixture::new();
    let mut files = fx.build();
    fx.resnapshot(&mut files, |s| {
        let meta = s.meta.get_mut(&RoleName::TARGETS).unwrap();
        meta.hashes.sha256 = Some(Sha256Digest::of(b"something else"));
    });
    // The server has a file under that hash: the genuine targets bytes.
    let store = MemStore::serving(&files);
    store.serve_by_hash(
        &RoleName::TARGETS,
        Sha256Digest::of(b"something else"),
        files[&RoleName::TARGETS].clone(),
    );
    let (_dir, cache) = trust_dir();
    let err = refused(&store, &cache, &fx.gun).await;
    assert!(matches!(
        &err,
        UpdateError::Tuf(TufError::MetaMismatch { role, recorded_in, .. })
            if *role == RoleName::TARGETS && *recorded_in == RoleName::SNAPSHOT
    ));
    names(
        &err,
        "targets.json does not match what snapshot.json records",
        "sha256",
    );
}

#[tokio::test]
async fn signature_by_an_unknown_key_only_is_refused() {
    let fx = Fixture::new();
    let files = fx.build_replacing(
        RoleName::TARGETS,
        sign(fx.targets.clone(), &[&SoftKey::ecdsa(99)]),
    );
    let err = refused_first(&files, &fx.gun).await;
    assert!(matches!(
        &err,
        UpdateError::Tuf(TufError::ThresholdNotMet { role, valid: 0, .. }) if *role == RoleName::TARGETS
    ));
    names(&err, "targets.json", "not a key of targets");
}

#[tokio::test]
async fn threshold_two_with_one_signature_is_refused() {
    let mut fx = Fixture::new();
    let second = SoftKey::ecdsa(20);
    fx.root.keys.insert(second.id(), second.public().clone());
    fx.root.roles.targets = RootRole {
        keyids: vec![fx.targets_keys[0].id(), second.id()],
        threshold: 2,
    };
    // The same key twice is still one key.
    let key = &fx.targets_keys[0];
    let files = fx.build_replacing(RoleName::TARGETS, sign(fx.targets.clone(), &[key, key]));
    let (_dir, cache) = trust_dir();
    let err = refused(&MemStore::serving(&files), &cache, &fx.gun).await;
    assert!(matches!(
        &err,
        UpdateError::Tuf(TufError::ThresholdNotMet { role, valid: 1, threshold: 2, .. })
            if *role == RoleName::TARGETS
    ));

    // Both keys: accepted.
    let files = fx.build_replacing(
        RoleName::TARGETS,
        sign(fx.targets.clone(), &[&fx.targets_keys[0], &second]),
    );
    run(&MemStore::serving(&files), &cache, &fx.gun)
        .await
        .unwrap();
}

#[tokio::test]
async fn new_root_not_signed_by_the_old_root_is_refused() {
    let err = refused_after(Fixture::new(), |fx| {
        fx.rotate_root(2, SoftKey::root(30, GUN));
        fx.snapshot_version = 2;
        fx.timestamp_version = 2;
    })
    .await;
    assert!(matches!(
        &err,
        UpdateError::RootRotation { from: 1, to: 2, .. }
    ));
    names(
        &err,
        "root.json version 2",
        "not signed by the root key(s) of version 1",
    );
}

#[tokio::test]
async fn rolled_back_root_is_refused() {
    let mut fx = Fixture::new();
    let old = fx.build();
    let a = fx.rotate_root(2, SoftKey::root(31, GUN));
    let store = MemStore::serving(&fx.build_rotated(&a));
    let (_dir, cache) = trust_dir();
    run(&store, &cache, &fx.gun).await.unwrap();
    let err = refused(&MemStore::serving(&old), &cache, &fx.gun).await;
    assert!(
        matches!(&err, UpdateError::Rollback { role, found: 1, trusted: 2, .. } if *role == RoleName::ROOT)
    );
}

#[tokio::test]
async fn file_longer_than_its_recorded_length_is_refused() {
    let fx = Fixture::new();
    let files = fx.build();
    let store = MemStore::serving(&files);
    let targets = &files[&RoleName::TARGETS];
    let mut longer = targets.clone();
    longer.extend_from_slice(b"                ");
    store.serve_by_hash(&RoleName::TARGETS, Sha256Digest::of(targets), longer);
    let (_dir, cache) = trust_dir();
    let err = refused(&store, &cache, &fx.gun).await;
    assert!(matches!(&err, UpdateError::TooLarge { role, .. } if *role == RoleName::TARGETS));
    names(&err, "targets.json", "the length snapshot.json records");
}

#[tokio::test]
async fn timestamp_over_the_size_cap_is_refused() {
    let fx = Fixture::new();
    let store = MemStore::serving(&fx.build());
    let (_dir, cache) = trust_dir();
    let options = UpdateOptions {
        max_timestamp_size: 100,
        ..UpdateOptions::at(now())
    };
    let err = update(&store, &cache, &fx.gun, &options).await.unwrap_err();
    names(&err, "timestamp.json", "the timestamp.json size limit");
    assert!(tree(cache.trust_dir()).is_empty());
}

#[tokio::test]
async fn delegated_target_outside_its_paths_is_ignored_as_notary_does() {
    let mut fx = Fixture::new();
    fx.targets.delegations.roles[0].paths = vec!["app/".into()];
    fx.releases.targets.insert("app/v2".into(), target(b"v2"));
    let store = MemStore::serving(&fx.build());
    let (_dir, cache) = trust_dir();
    let repo = run(&store, &cache, &fx.gun).await.unwrap();
    assert_eq!(
        repo.warnings(),
        [UpdateWarning::TargetOutsidePaths {
            role: RoleName::RELEASES,
            target: "v1".into()
        }]
    );
    assert!(repo.warnings()[0].to_string().contains("outside the paths"));
    assert_eq!(
        entries(&repo, None),
        pairs(&[("admin", "targets"), ("app/v2", "targets/releases")])
    );
    assert_eq!(repo.target("v1", None), None);
    assert_eq!(repo.docker_target("v1"), None);
    assert_eq!(
        repo.docker_target("app/v2").unwrap().role,
        RoleName::RELEASES
    );
    assert!(repo.all_targets().iter().all(|t| t.name != "v1"));
}

#[tokio::test]
async fn delegation_without_enough_signatures_is_skipped_as_notary_does() {
    let fx = Fixture::new();
    let files = fx.build_replacing(
        RoleName::RELEASES,
        sign(fx.releases.clone(), &[&SoftKey::ecdsa(77)]),
    );
    let store = MemStore::serving(&files);
    let (_dir, cache) = trust_dir();
    let repo = run(&store, &cache, &fx.gun).await.unwrap();
    assert!(matches!(
        repo.warnings(),
        [UpdateWarning::DelegationSkipped { role, .. }] if *role == RoleName::RELEASES
    ));
    assert!(repo.delegation(&RoleName::RELEASES).is_none());
    assert_eq!(repo.docker_target("v1"), None);
    // Only what verified is cached.
    assert!(!cache.path(&fx.gun, &RoleName::RELEASES).exists());
}

#[tokio::test]
async fn wrong_type_is_refused() {
    let fx = Fixture::new();
    let mut body = fx.targets.to_value();
    body["_type"] = Value::String("Root".into());
    let files = fx.build_replacing(RoleName::TARGETS, sign_value(&body, &[&fx.targets_keys[0]]));
    let err = refused_first(&files, &fx.gun).await;
    assert!(matches!(
        &err,
        UpdateError::Tuf(TufError::WrongType { role, .. }) if *role == RoleName::TARGETS
    ));
    names(&err, "targets.json", "`_type` \"Root\"");
}

#[tokio::test]
async fn root_certificate_for_another_gun_is_refused() {
    let fx = Fixture::new().with_root_key(SoftKey::root(40, "127.0.0.1:5000/dct/other"));
    let store = MemStore::serving(&fx.build());
    let (_dir, cache) = trust_dir();
    let err = refused(&store, &cache, &fx.gun).await;
    assert!(matches!(&err, UpdateError::NoValidRootCertificate { .. }));
    names(
        &err,
        "root.json version 1",
        "CN \"127.0.0.1:5000/dct/other\"",
    );

    // A wildcard CN covering the GUN is accepted, as in Notary.
    let fx = Fixture::new().with_root_key(SoftKey::root(41, "127.0.0.1:5000/dct/*"));
    run(&MemStore::serving(&fx.build()), &cache, &fx.gun)
        .await
        .unwrap();
}

#[tokio::test]
async fn root_certificate_problems_are_refused() {
    let cases: [(&str, CertSpec); 4] = [
        (
            "expired at",
            CertSpec {
                not_before: now() - time::Duration::days(400),
                not_after: now() - time::Duration::days(1),
                ..CertSpec::notary(GUN)
            },
        ),
        (
            "not valid before",
            CertSpec {
                not_before: now() + time::Duration::days(2),
                ..CertSpec::notary(GUN)
            },
        ),
        (
            "SHA-1",
            CertSpec {
                sig_alg: "1.2.840.10045.4.1",
                ..CertSpec::notary(GUN)
            },
        ),
        (
            "leaf (non-CA)",
            CertSpec {
                ca: true,
                ..CertSpec::notary(GUN)
            },
        ),
    ];
    for (check, spec) in cases {
        let fx = Fixture::new().with_root_key(SoftKey::with_cert(50, &spec));
        let err = refused_first(&fx.build(), &fx.gun).await;
        names(&err, "no usable root certificate", check);
    }

    // A bare ecdsa root key is not a certificate.
    let fx = Fixture::new().with_root_key(SoftKey::ecdsa(51));
    let err = refused_first(&fx.build(), &fx.gun).await;
    names(
        &err,
        "no usable root certificate",
        "must be ecdsa-x509 or rsa-x509",
    );
}

#[tokio::test]
async fn root_certificate_near_expiry_is_a_warning() {
    let fx = Fixture::new().with_root_key(SoftKey::with_cert(
        52,
        &CertSpec {
            not_after: now() + time::Duration::days(30),
            ..CertSpec::notary(GUN)
        },
    ));
    let repo = run(&MemStore::serving(&fx.build()), &trust_dir().1, &fx.gun)
        .await
        .unwrap();
    assert!(matches!(
        repo.warnings(),
        [UpdateWarning::CertificateNearExpiry { key_id, .. }] if *key_id == fx.root_key.id()
    ));
}

#[tokio::test]
async fn trust_pinning_by_cert_id_and_by_ca() {
    let fx = Fixture::new();
    let store = MemStore::serving(&fx.build());
    let with = |pinning: TrustPinning| UpdateOptions {
        pinning,
        ..UpdateOptions::at(now())
    };

    // TOFU disabled and nothing pinned: refused.
    let (_d, cache) = trust_dir();
    let options = with(TrustPinning {
        disable_tofu: true,
        ..TrustPinning::default()
    });
    let err = update(&store, &cache, &fx.gun, &options).await.unwrap_err();
    names(
        &err,
        "trusted root of 127.0.0.1:5000/dct/app",
        "TOFU is disabled",
    );

    // Pinned to another certificate: refused; to this one: accepted.
    let pin = |ids: Vec<KeyId>| {
        with(TrustPinning {
            certs: HashMap::from([(GUN.to_owned(), ids)]),
            disable_tofu: true,
            ..TrustPinning::default()
        })
    };
    let err = update(
        &store,
        &cache,
        &fx.gun,
        &pin(vec![SoftKey::root(60, GUN).id()]),
    )
    .await
    .unwrap_err();
    names(&err, "trust_pinning", "unable to match any certificates");
    update(&store, &cache, &fx.gun, &pin(vec![fx.root_key.id()]))
        .await
        .unwrap();

    // CA pinning: the root certificate must chain to the CA and allow serverAuth.
    let ca = SoftKey::ecdsa(61);
    let ca_spec = CertSpec {
        ca: true,
        code_signing_eku: false,
        ..CertSpec::notary("tufa test CA")
    };
    let ca_key = ca.signing_key();
    let ca_pem = pem_cert(&cert_der(ca_key, &ca_spec, ca_key, "tufa test CA"));
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    fs::write(&ca_path, ca_pem).unwrap();
    let ca_options = with(TrustPinning {
        ca: HashMap::from([("127.0.0.1:5000/".to_owned(), ca_path)]),
        ..TrustPinning::default()
    });
    let issued = |seed: u8, code_signing_eku: bool| {
        let spec = CertSpec {
            code_signing_eku,
            ..CertSpec::notary(GUN)
        };
        SoftKey::issued_by(seed, &spec, &ca, "tufa test CA")
    };
    for (eku, ok) in [(false, true), (true, false)] {
        let fx = Fixture::new().with_root_key(issued(62, eku));
        let store = MemStore::serving(&fx.build());
        let (_d, cache) = trust_dir();
        let result = update(&store, &cache, &fx.gun, &ca_options).await;
        assert_eq!(result.is_ok(), ok, "eku {eku}: {:?}", result.err());
    }
    // A Notary-style root (codeSigning only) fails Go's key usage check, as real-stack.md saw.
    let err = update(&store, &trust_dir().1, &fx.gun, &ca_options)
        .await
        .unwrap_err();
    names(&err, "trust_pinning", "does not allow serverAuth");
    // A self-signed root without EKU does not chain to the CA.
    let fx = Fixture::new().with_root_key(SoftKey::with_cert(
        63,
        &CertSpec {
            code_signing_eku: false,
            ..CertSpec::notary(GUN)
        },
    ));
    let err = update(
        &MemStore::serving(&fx.build()),
        &trust_dir().1,
        &fx.gun,
        &ca_options,
    )
    .await
    .unwrap_err();
    names(&err, "trust_pinning", "does not chain to the pinned CA");
}

#[tokio::test]
async fn a_damaged_cached_root_is_not_silently_replaced() {
    let fx = Fixture::new();
    let (_dir, cache) = cached(&fx.build(), &fx.gun).await;
    fs::write(cache.path(&fx.gun, &RoleName::ROOT), b"{}").unwrap();
    let err = refused(&MemStore::serving(&fx.build()), &cache, &fx.gun).await;
    assert!(matches!(err, UpdateError::CachedRootInvalid { .. }));
    names(&err, "cached root.json", "pins trust");
}

#[tokio::test]
async fn unknown_repository() {
    let store = MemStore::default();
    let (_dir, cache) = trust_dir();
    let gun: Gun = GUN.parse().unwrap();
    let err = refused(&store, &cache, &gun).await;
    assert!(matches!(err, UpdateError::RepositoryNotFound { .. }));
    names(&err, GUN, "no trust data");
}

// ---------------------------------------------------------------------------------------------
// Hostile delegates (issue 11): duplicated entries, walks that must stay linear, odd delegation
// files, a snapshot that drops a delegation, one key under two IDs, a forked root.

/// Asserts some warning names `role` and says `what`; returns its text.
fn warned(repo: &VerifiedRepo, role: &str, what: &str) -> String {
    let texts: Vec<String> = repo.warnings().iter().map(ToString::to_string).collect();
    println!("{texts:#?}");
    texts
        .iter()
        .find(|t| t.contains(role) && t.contains(what))
        .cloned()
        .unwrap_or_else(|| panic!("no warning names {role} and says {what:?}: {texts:#?}"))
}

fn role(name: &str) -> RoleName {
    name.parse().unwrap()
}

/// A targets body with one target `name`.
fn holding(name: &str) -> Targets {
    let mut body = Targets::new(1, tufa_testkit::in_days(365));
    body.targets.insert(name.into(), target(name.as_bytes()));
    body
}

#[tokio::test]
async fn a_role_listed_twice_uses_its_first_entry_for_lookups_too() {
    // The first entry allows `app/` only; the second would allow everything.
    let mut fx = Fixture::new();
    fx.targets.delegations.roles[0].paths = vec!["app/".into()];
    let mut second = fx.targets.delegations.roles[0].clone();
    second.paths = vec![String::new()];
    fx.targets.delegations.roles.push(second);
    fx.releases.targets.insert("app/v2".into(), target(b"v2"));
    let repo = run(&MemStore::serving(&fx.build()), &trust_dir().1, &fx.gun)
        .await
        .unwrap();
    warned(&repo, "targets/releases", "\"v1\", outside the paths");
    assert_eq!(repo.docker_target("v1"), None);
    assert_eq!(repo.target("v1", None), None);
    assert_eq!(
        entries(&repo, None),
        pairs(&[("admin", "targets"), ("app/v2", "targets/releases")])
    );
    assert!(repo.all_targets().iter().all(|t| t.name != "v1"));
    assert_eq!(
        repo.delegation(&RoleName::RELEASES).unwrap().paths,
        ["app/"]
    );
}

#[tokio::test]
async fn duplicate_entries_over_levels_do_not_multiply_the_walk() {
    // 30 entries for each role at each of three levels: 27,000 paths down a naive walk.
    const COPIES: usize = 30;
    let mut fx = Fixture::new();
    let key = SoftKey::ecdsa(21);
    fx.delegate(
        &RoleName::TARGETS,
        "targets/a",
        &[""],
        COPIES,
        &key,
        holding("a"),
    );
    fx.delegate(
        &role("targets/a"),
        "targets/a/b",
        &[""],
        COPIES,
        &key,
        holding("b"),
    );
    fx.delegate(
        &role("targets/a/b"),
        "targets/a/b/c",
        &[""],
        COPIES,
        &key,
        holding("c"),
    );
    let repo = run(&MemStore::serving(&fx.build()), &trust_dir().1, &fx.gun)
        .await
        .unwrap();
    assert!(repo.warnings().is_empty(), "{:?}", repo.warnings());
    // Each role's entries once: the walk visited each role once.
    let all: Vec<String> = repo.all_targets().into_iter().map(|t| t.name).collect();
    assert_eq!(all, ["admin", "v1", "a", "b", "c"]);
    assert_eq!(
        repo.target("c", None).unwrap().role.as_str(),
        "targets/a/b/c"
    );
    assert_eq!(repo.target("no-such-tag", None), None);
    assert_eq!(repo.targets(None).len(), 5);
}

/// The figure a measured child process prints: its peak resident memory.
const PEAK: &str = "peak resident memory (VmHWM) kB: ";

/// Runs test `name` of this binary alone in a child process with `TUFA_MEASURE=1`; returns what
/// it printed and its peak resident memory in bytes.
fn measured(name: &str) -> (String, u64) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("TUFA_MEASURE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kb: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix(PEAK))
        .unwrap_or_else(|| panic!("no figure in {stdout}"))
        .trim()
        .parse()
        .unwrap();
    (stdout, kb * 1024)
}

fn peak_kb() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_megabyte_of_roles_and_keys_verifies_in_linear_memory() {
    const NAME: &str = "a_megabyte_of_roles_and_keys_verifies_in_linear_memory";
    if std::env::var_os("TUFA_MEASURE").is_none() {
        // A quadratic walk used 2.35 GB (and 12 s) here; a linear one needs a few tens of MB.
        let (out, peak) = measured(NAME);
        println!("{out}");
        assert!(peak < 100 << 20, "peak memory {} MiB\n{out}", peak >> 20);
        return;
    }
    // targets.json delegates to 3,000 roles, each with a key of its own (notary-server would
    // serve this file); ten of the roles are published.
    const ROLES: usize = 3000;
    let mut fx = Fixture::new();
    for i in 0..ROLES {
        let name = format!("targets/r{i:04}");
        if i < 10 {
            let key = SoftKey::ecdsa(100 + i as u8);
            fx.delegate(&RoleName::TARGETS, &name, &[""], 1, &key, holding(&name));
            continue;
        }
        let digest = Sha256Digest::of(name.as_bytes());
        let spki = [digest.as_bytes().as_slice(); 3].concat()[..91].to_vec();
        let key = PublicKey::ecdsa(spki);
        fx.targets.delegations.keys.insert(key.id(), key.clone());
        fx.targets.delegations.roles.push(Delegation {
            name: name.parse().unwrap(),
            keyids: vec![key.id()],
            threshold: 1,
            paths: vec![String::new()],
        });
    }
    let files = fx.build();
    let size = files[&RoleName::TARGETS].len();
    assert!(size > 1_000_000, "targets.json is {size} bytes");
    let store = MemStore::serving(&files);
    let (_dir, cache) = trust_dir();
    let before = peak_kb();
    // From here the peak is the update's and the lookups' (Linux: "5" resets VmHWM).
    fs::write("/proc/self/clear_refs", "5").unwrap();
    let start = std::time::Instant::now();
    let repo = run(&store, &cache, &fx.gun).await.unwrap();
    let verified = start.elapsed();
    assert_eq!(repo.delegations().len(), 11);
    let start = std::time::Instant::now();
    assert_eq!(repo.targets(None).len(), 12);
    assert_eq!(repo.target("no-such-tag", None), None);
    assert_eq!(repo.all_targets().len(), 12);
    assert!(repo.docker_target("v1").is_some());
    let looked_up = start.elapsed();
    // What `docker trust inspect` shows lists every signer.
    let start = std::time::Instant::now();
    let shown = tufa_client::trust::inspect::inspect(&repo, GUN, None);
    assert_eq!(shown.signers.len(), ROLES);
    let inspected = start.elapsed();
    println!(
        "targets.json {size} bytes, {ROLES} roles and keys: update {verified:?}, four lookups \
         {looked_up:?}, inspect {inspected:?} (this build; not asserted); peak while building \
         the fixture {before} kB"
    );
    println!("{PEAK}{}", peak_kb());
}

/// A client reads the fixture (whose `targets` also holds a `v1`) with `odd` in its
/// delegations: the update succeeds, with the warning the oddity calls for.
async fn read_with(odd: Oddity) -> VerifiedRepo {
    let mut fx = Fixture::new();
    fx.targets
        .targets
        .insert("v1".into(), target(b"v1 from targets"));
    let files = odd.build(&mut fx);
    let repo = run(&MemStore::serving(&files), &trust_dir().1, &fx.gun)
        .await
        .unwrap_or_else(|e| panic!("{}: refused: {e}", odd.describe()));
    let (role, words) = odd.warning();
    warned(&repo, role, words);
    repo
}

#[tokio::test]
async fn an_extra_signature_with_a_key_id_that_is_no_key_id_is_ignored_as_notary_does() {
    let repo = read_with(Oddity::ExtraSignature).await;
    assert_eq!(repo.docker_target("v1").unwrap().role, RoleName::RELEASES);
    warned(&repo, "targets/releases", "not-a-key-id");
}

#[tokio::test]
async fn a_lone_surrogate_reads_as_go_reads_it() {
    // Go decodes "\ud800" as U+FFFD, and verifies the signature over that.
    let repo = read_with(Oddity::LoneSurrogate).await;
    assert_eq!(repo.docker_target("v1").unwrap().role, RoleName::RELEASES);
    assert_eq!(
        repo.docker_target("v2\u{FFFD}").unwrap().role,
        RoleName::RELEASES
    );
    warned(&repo, "targets/releases", "U+FFFD");
}

#[tokio::test]
async fn a_key_published_with_its_private_part_signs_for_nothing() {
    // targets/releases delegates to targets/releases/sub with a key whose private part it
    // publishes. Notary would use the key; anyone can sign with it, so tufa does not.
    let repo = read_with(Oddity::PrivateKey).await;
    assert_eq!(repo.docker_target("v1").unwrap().role, RoleName::RELEASES);
    assert!(repo.delegation(&role(Oddity::SUB)).is_none());
    assert_eq!(repo.target("sub", None), None);
    warned(
        &repo,
        Oddity::SUB,
        "published with their private part and do not count",
    );
}

#[tokio::test]
async fn a_child_whose_key_is_missing_is_skipped_and_its_parent_served() {
    let repo = read_with(Oddity::MissingKey).await;
    assert_eq!(repo.docker_target("v1").unwrap().role, RoleName::RELEASES);
    assert!(repo.delegation(&role(Oddity::SUB)).is_none());
    assert_eq!(repo.target("sub", None), None);
}

#[tokio::test]
async fn a_target_hash_of_the_wrong_length_makes_only_that_target_unusable() {
    // Go reads any length; docker then cannot pull that tag. The other tags resolve.
    let repo = read_with(Oddity::ShortHash).await;
    assert_eq!(repo.docker_target("v1").unwrap().role, RoleName::RELEASES);
    // Found in targets/releases, so docker's lookup stops there, without a digest.
    let v2 = repo.docker_target("v2").unwrap();
    assert_eq!((v2.role, v2.sha256), (RoleName::RELEASES, None));
    warned(&repo, "targets/releases", "\"v2\"");
}

#[tokio::test]
async fn a_damaged_delegation_file_is_skipped_and_the_rest_served() {
    let repo = read_with(Oddity::Damaged).await;
    assert!(repo.delegation(&RoleName::RELEASES).is_none());
    let v1 = repo.docker_target("v1").unwrap();
    assert_eq!(
        (v1.role, v1.sha256),
        (
            RoleName::TARGETS,
            Some(Sha256Digest::of(b"v1 from targets"))
        )
    );
    assert_eq!(repo.docker_target("admin").unwrap().role, RoleName::TARGETS);
    warned(&repo, "targets/releases", "length");
}

#[tokio::test]
async fn base_roles_stay_strict() {
    // The damage a delegation is skipped for refuses the whole update in targets.json.
    let fx = Fixture::new();
    let mut body = fx.targets.to_value();
    body["targets"]["admin"]["length"] = Value::String("five".into());
    let files = fx.build_replacing(RoleName::TARGETS, sign_value(&body, &[&fx.targets_keys[0]]));
    let err = refused_first(&files, &fx.gun).await;
    names(&err, "targets.json", "length");

    // A private key in root.json.
    let fx = Fixture::new();
    let mut root = fx.root.to_value();
    let id = fx.targets_keys[0].id().to_string();
    root["keys"][&id]["keyval"]["private"] = Value::String("c2VjcmV0".into());
    let mut files = fx.build();
    files.insert(RoleName::ROOT, sign_value(&root, &[&fx.root_key]));
    fx.resnapshot(&mut files, |_| {});
    let err = refused_first(&files, &fx.gun).await;
    names(&err, "root.json", "private");
}

#[tokio::test]
async fn a_snapshot_that_drops_a_delegation_is_refused() {
    // targets holds an older v1; releases, which the client trusted, holds the current one.
    let mut fx = Fixture::new();
    fx.targets.targets.insert("v1".into(), target(b"old v1"));
    let (_dir, cache) = cached(&fx.build(), &fx.gun).await;
    // The server's next snapshot leaves targets/releases out; targets still delegates to it.
    fx.snapshot_version = 2;
    fx.timestamp_version = 2;
    let mut files = fx.build();
    files.remove(&RoleName::RELEASES);
    fx.resnapshot(&mut files, |_| {});
    let err = refused(&MemStore::serving(&files), &cache, &fx.gun).await;
    names(&err, "targets/releases", "no longer lists");
    names(&err, "snapshot.json", "targets still delegates to it");

    // Removed by its owner (targets no longer delegates to it): accepted.
    fx.targets.version = 2;
    fx.targets.delegations.roles.clear();
    let mut files = fx.build();
    files.remove(&RoleName::RELEASES);
    fx.resnapshot(&mut files, |_| {});
    let repo = run(&MemStore::serving(&files), &cache, &fx.gun)
        .await
        .unwrap();
    assert_eq!(repo.docker_target("v1").unwrap().role, RoleName::TARGETS);
}

/// `body` signed by `signing` once per key ID in `ids`, as one key listed under several IDs.
fn signed_under(body: impl Metadata, signing: &SoftKey, ids: &[KeyId]) -> Vec<u8> {
    let mut file = Signed::new(body);
    let msg = file.signed_bytes().unwrap();
    file.signatures = ids
        .iter()
        .map(|id| Signature {
            key_id: *id,
            ..signing.signature(&msg)
        })
        .collect();
    file.to_bytes().unwrap()
}

/// The compressed-point SubjectPublicKeyInfo of a P-256 key.
fn compressed_spki(key: &SoftKey) -> Vec<u8> {
    let point = key.signing_key().verifying_key().to_sec1_point(true);
    let prefix = [
        0x30, 0x39, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x22, 0x00,
    ];
    [&prefix[..], point.as_bytes()].concat()
}

#[tokio::test]
async fn one_key_under_two_key_ids_counts_once_toward_a_threshold() {
    let signing = SoftKey::ecdsa(2);
    let x509 = SoftKey::with_cert(2, &CertSpec::notary("targets"));
    let compressed = PublicKey::ecdsa(compressed_spki(&signing));
    // The same key as ecdsa and ecdsa-x509, then as uncompressed and compressed SPKI.
    for other in [x509.public().clone(), compressed] {
        assert_ne!(other.id(), signing.id());
        let mut fx = Fixture::new();
        fx.root.keys.insert(other.id(), other.clone());
        fx.root.roles.targets = RootRole {
            keyids: vec![signing.id(), other.id()],
            threshold: 2,
        };
        let file = signed_under(fx.targets.clone(), &signing, &[signing.id(), other.id()]);
        let err = refused_first(&fx.build_replacing(RoleName::TARGETS, file), &fx.gun).await;
        names(
            &err,
            "targets.json",
            "from 1 distinct targets key(s) but needs 2",
        );
    }

    // Two certificates over one root key, threshold 2.
    let mut fx = Fixture::new();
    let first = fx.root_key.clone();
    let second = SoftKey::with_cert(
        1,
        &CertSpec {
            not_after: now() + time::Duration::days(3000),
            ..CertSpec::notary(GUN)
        },
    );
    assert_ne!(first.id(), second.id());
    fx.root = fx.root_body(1, &[first.public(), second.public()]);
    fx.root.roles.root.threshold = 2;
    fx.signed_root = Some(signed_under(
        fx.root.clone(),
        &first,
        &[first.id(), second.id()],
    ));
    let err = refused_first(&fx.build(), &fx.gun).await;
    names(&err, "root.json", "from 1 distinct root key(s) but needs 2");
}

#[tokio::test]
async fn a_different_root_with_the_same_version_is_refused() {
    let mut fx = Fixture::new();
    let (_dir, cache) = cached(&fx.build(), &fx.gun).await;
    // Root v1 again, signed by the trusted root key, but handing targets to another key.
    let intruder = SoftKey::ecdsa(24);
    fx.targets_keys = vec![intruder];
    fx.root = fx.root_body(1, &[fx.root_key.public()]);
    fx.snapshot_version = 2;
    fx.timestamp_version = 2;
    let err = refused(&MemStore::serving(&fx.build()), &cache, &fx.gun).await;
    names(&err, "root.json", "version 1");
    names(&err, "root.json", "differs from the cached root.json");

    // The same root with one more signature (by a key it does not list): the same root.
    let fx = Fixture::new();
    let mut files = fx.build();
    files.insert(
        RoleName::ROOT,
        sign(fx.root.clone(), &[&fx.root_key, &SoftKey::ecdsa(25)]),
    );
    fx.resnapshot(&mut files, |_| {});
    let repo = run(&MemStore::serving(&files), &cache, &fx.gun)
        .await
        .unwrap();
    assert_eq!(repo.root().signed.version, 1);
}
