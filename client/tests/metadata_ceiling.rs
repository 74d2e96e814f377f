//! tufa's ceiling for one snapshot, targets or delegation file (issue 11, item 7): whatever
//! length the timestamp or snapshot records, a read stops at
//! [`UpdateOptions::MAX_METADATA_SIZE`] (Notary's 100 MiB download cap), and the cache is left
//! as it was. A repository whose files are under the ceiling reads as before.

use tufa_client::tuf::{update, RoleName, TrustCache, UpdateError, UpdateOptions};
use tufa_testkit::{now, sign, tree, Fixture, MemStore};

#[tokio::test]
async fn a_recorded_length_above_the_ceiling_is_cut_at_the_ceiling() {
    let fx = Fixture::new();
    let mut files = fx.build();
    let snapshot_len = files[&RoleName::SNAPSHOT].len() as u64;
    // A timestamp-key holder records a snapshot of 1 TiB.
    let mut timestamp = fx.timestamp_body(&files[&RoleName::SNAPSHOT]);
    timestamp.snapshot.length = 1 << 40;
    files.insert(RoleName::TIMESTAMP, sign(timestamp, &[&fx.timestamp_key]));
    let store = MemStore::serving(&files);
    let dir = tempfile::tempdir().unwrap();
    let cache = TrustCache::new(dir.path());

    // A ceiling below the real snapshot: the read is cut there, not at the recorded length.
    let options = UpdateOptions {
        max_metadata_size: snapshot_len - 1,
        ..UpdateOptions::at(now())
    };
    let err = update(&store, &cache, &fx.gun, &options).await.unwrap_err();
    assert!(
        matches!(&err, UpdateError::TooLarge { role, limit, .. }
            if *role == RoleName::SNAPSHOT && *limit == snapshot_len - 1),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "more than {} bytes for snapshot.json, the most allowed (tufa's ceiling for one \
             metadata file, Notary's download cap; timestamp.json records 1099511627776 bytes)",
            snapshot_len - 1
        )),
        "{text}"
    );
    assert!(tree(cache.trust_dir()).is_empty());

    // The default ceiling is Notary's, and honest repositories are far below it.
    assert_eq!(UpdateOptions::at(now()).max_metadata_size, 100 << 20);
    let honest = MemStore::serving(&fx.build());
    update(&honest, &cache, &fx.gun, &UpdateOptions::at(now()))
        .await
        .unwrap();
}
