//! The trust cache under the client update: a cache left holding files of two server states
//! (a commit renaming file by file that failed part-way) is mended by the next read, and
//! updates of one GUN at once leave one copy and no lock behind.

use std::fs;

use tufa_client::tuf::{update, RoleName, TrustCache, UpdateOptions};
use tufa_testkit::{now, target, tree, Fixture, MemStore};

#[tokio::test]
async fn a_cache_left_half_written_is_mended_by_the_next_read() {
    let dir = tempfile::tempdir().unwrap();
    let cache = TrustCache::new(dir.path());
    let mut fixture = Fixture::new();
    let v1 = fixture.build();
    let store = MemStore::serving(&v1);
    let options = UpdateOptions::at(now());
    update(&store, &cache, &fixture.gun, &options)
        .await
        .unwrap();

    // The server moves on: a new release, so releases, snapshot and timestamp change.
    fixture.releases.version = 2;
    fixture.releases.targets.insert("v2".into(), target(b"v2"));
    fixture.snapshot_version = 2;
    fixture.timestamp_version = 2;
    let v2 = fixture.build();
    store.serve(&v2);
    // What a commit stopped part-way leaves (delegations go first): releases of the new state,
    // the rest of the old.
    let gun = &fixture.gun;
    fs::write(
        cache.path(gun, &RoleName::RELEASES),
        &v2[&RoleName::RELEASES],
    )
    .unwrap();

    // The next read neither takes the new file for a rollback nor keeps the mix.
    let repo = update(&store, &cache, gun, &options).await.unwrap();
    assert!(repo.warnings().is_empty(), "{:?}", repo.warnings());
    assert!(repo.target("v2", None).is_some());
    let cached = tree(dir.path());
    assert_eq!(cached.len(), v2.len(), "{:?}", cached.keys());
    for (role, bytes) in &v2 {
        assert_eq!(&cached[&cache.path(gun, role)], bytes, "{role}");
    }
}

#[tokio::test]
async fn updates_of_one_gun_at_once_agree_and_leave_one_copy() {
    let dir = tempfile::tempdir().unwrap();
    let cache = TrustCache::new(dir.path());
    let fixture = Fixture::new();
    let files = fixture.build();
    let store = MemStore::serving(&files);
    let options = UpdateOptions::at(now());
    let gun = &fixture.gun;
    let (a, b, c) = tokio::join!(
        update(&store, &cache, gun, &options),
        update(&store, &cache, gun, &options),
        update(&store, &cache, gun, &options),
    );
    for repo in [a, b, c] {
        assert!(repo.unwrap().target("v1", None).is_some());
    }
    // One trust-on-first-use, one write: the others found it cached and wrote nothing, and no
    // lock file or staged directory is left.
    let cached = tree(dir.path());
    assert_eq!(cached.len(), files.len(), "{:?}", cached.keys());
    let gun_dir = cache.gun_dir(gun);
    let left: Vec<String> = fs::read_dir(&gun_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["metadata"]);
}
