use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::repo::Changelist;

fn gun() -> Gun {
    "localhost:5000/demo".parse().unwrap()
}

fn role(name: &str) -> RoleName {
    RoleName::new(name).unwrap()
}

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = fs::read_dir(&next) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                pending.push(path);
            } else {
                out.insert(path.clone(), fs::read(&path).unwrap_or_default());
            }
        }
    }
    out
}

/// The names in the GUN's directory that start with '.', other than the lock.
fn dot_files(cache: &TrustCache) -> Vec<String> {
    let mut names = Vec::new();
    for dir in [cache.gun_dir(&gun()), cache.metadata_dir(&gun())] {
        for entry in fs::read_dir(dir).into_iter().flatten() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                names.push(name);
            }
        }
    }
    names
}

async fn commit(cache: &TrustCache, files: &[(RoleName, &[u8])]) -> Result<(), CacheError> {
    let lock = cache.lock(&gun()).await.unwrap();
    let view = lock.read().await.unwrap();
    let files: Vec<(RoleName, Vec<u8>)> =
        files.iter().map(|(r, b)| (r.clone(), b.to_vec())).collect();
    lock.commit(&view, &files)
}

/// A cache holding root, timestamp and releases at "old".
async fn old_cache(dir: &Path) -> TrustCache {
    let cache = TrustCache::new(dir);
    commit(
        &cache,
        &[
            (RoleName::RELEASES, b"{\"old\":1}"),
            (RoleName::TIMESTAMP, b"{\"old\":1}"),
            (RoleName::ROOT, b"{\"old\":1}"),
        ],
    )
    .await
    .unwrap();
    cache
}

#[test]
fn notary_layout() {
    let cache = TrustCache::new("/trust");
    assert_eq!(
        cache.path(&gun(), &RoleName::RELEASES),
        Path::new("/trust/tuf/localhost:5000/demo/metadata/targets/releases.json")
    );
    assert_eq!(
        cache.path(&gun(), &RoleName::ROOT),
        Path::new("/trust/tuf/localhost:5000/demo/metadata/root.json")
    );
    // A first component may be anything: no GUN is a strict prefix of it.
    let odd: Gun = "metadata/app".parse().unwrap();
    assert_eq!(cache.gun_dir(&odd), Path::new("/trust/tuf/metadata/app"));
}

/// Issue 11 item 8: no file or directory of one GUN is, or lies inside, one of another's.
#[test]
fn paths_of_different_guns_never_meet() {
    let cache = TrustCache::new("/trust");
    let guns = [
        "r.io/x",
        "r.io/x/metadata",
        "r.io/x/metadata/targets",
        "r.io/x/metadata/targets/y",
        "r.io/x/metadata/root.json",
        "r.io/x/Metadata/targets",
        "r.io/x/changelist",
        "r.io/x/changelist.json",
        "r.io/x/tufa-changes.jsonl",
        "r.io/x/.tufa.lock",
        "r.io/x/.tufa-stage-1-0",
        "r.io/x/y",
        "r.io/x/y/metadata",
    ];
    let roles = [
        "root",
        "targets",
        "snapshot",
        "timestamp",
        "targets/metadata/root",
        "targets/metadata/targets/y/metadata/root",
        "targets/y/changelist",
        "targets/y/metadata/root",
        "targets/releases",
    ];
    // Every path a GUN owns: its role files, changelists, lock and staging, each a file or
    // a directory whose whole subtree is the GUN's.
    let owned = |g: &Gun| -> Vec<PathBuf> {
        let changelist = Changelist::new(cache.trust_dir(), g);
        let mut paths: Vec<PathBuf> = roles.iter().map(|r| cache.path(g, &role(r))).collect();
        paths.extend(changelist.paths().into_iter().map(Path::to_owned));
        paths.push(cache.gun_dir(g).join(LOCK_FILE));
        paths.push(cache.gun_dir(g).join(format!("{STAGE_PREFIX}1-0")));
        paths.push(cache.gun_dir(g).join("changelist"));
        paths.push(cache.metadata_dir(g));
        paths
    };
    let guns: Vec<Gun> = guns.iter().map(|g| g.parse().unwrap()).collect();
    for a in &guns {
        for b in guns.iter().filter(|b| *b != a) {
            for pa in owned(a) {
                for pb in owned(b) {
                    assert!(
                        !pa.starts_with(&pb) && !pb.starts_with(&pa),
                        "{a} and {b} meet: {} / {}",
                        pa.display(),
                        pb.display()
                    );
                }
            }
        }
    }
    // The colliding ones moved; the plain ones kept Notary's path.
    let moved: Gun = "r.io/x/metadata/targets".parse().unwrap();
    assert!(cache.gun_dir(&moved).starts_with("/trust/tufa/tuf"));
    let plain: Gun = "r.io/x/y".parse().unwrap();
    assert_eq!(cache.gun_dir(&plain), Path::new("/trust/tuf/r.io/x/y"));
}

#[tokio::test]
async fn commit_then_read_and_forget() {
    let dir = tempfile::tempdir().unwrap();
    let cache = old_cache(dir.path()).await;
    assert_eq!(
        cache.load(&gun(), &RoleName::RELEASES).unwrap().unwrap(),
        b"{\"old\":1}"
    );
    commit(&cache, &[(RoleName::ROOT, b"{\"new\":2}")])
        .await
        .unwrap();
    let lock = cache.lock(&gun()).await.unwrap();
    let view = lock.read().await.unwrap();
    assert_eq!(view.get(&RoleName::ROOT).unwrap(), b"{\"new\":2}");
    assert_eq!(view.get(&RoleName::TIMESTAMP).unwrap(), b"{\"old\":1}");
    assert_eq!(view.get(&RoleName::RELEASES).unwrap(), b"{\"old\":1}");
    drop(lock);
    // No staged directory, temporary file or lock file is left behind.
    assert!(dot_files(&cache).is_empty(), "{:?}", dot_files(&cache));
    cache.remove_gun(&gun()).await.unwrap();
    assert_eq!(cache.load(&gun(), &RoleName::ROOT).unwrap(), None);
    assert!(!cache.gun_dir(&gun()).exists());
}

#[tokio::test]
async fn unchanged_files_are_linked_not_copied_and_other_entries_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cache = old_cache(dir.path()).await;
    // Something the docker or notary CLI keeps there (another GUN's colliding copy, say).
    let other = cache.metadata_dir(&gun()).join("targets/other/metadata");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("root.json"), b"theirs").unwrap();
    use std::os::unix::fs::MetadataExt as _;
    let ino = |p: PathBuf| fs::metadata(p).unwrap().ino();
    let releases = ino(cache.path(&gun(), &RoleName::RELEASES));
    let meta = ino(cache.metadata_dir(&gun()));
    commit(&cache, &[(RoleName::TIMESTAMP, b"{\"new\":2}")])
        .await
        .unwrap();
    // A new directory was swapped in, holding the same releases file.
    assert_ne!(ino(cache.metadata_dir(&gun())), meta);
    assert_eq!(ino(cache.path(&gun(), &RoleName::RELEASES)), releases);
    assert_eq!(fs::read(other.join("root.json")).unwrap(), b"theirs");
}

/// The audit's case: a write fails with files already staged. The cache is byte for byte as
/// before and the error says so truthfully.
#[tokio::test]
async fn a_commit_failing_while_staged_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = old_cache(dir.path()).await;
    // A non-empty directory where the second file's must go.
    let blocker = cache.metadata_dir(&gun()).join("targets/b.json");
    fs::create_dir_all(blocker.join("x")).unwrap();
    let before = tree(dir.path());
    let err = commit(
        &cache,
        &[
            (role("targets/a"), b"{\"new\":2}"),
            (role("targets/b"), b"{\"new\":2}"),
            (RoleName::TIMESTAMP, b"{\"new\":2}"),
            (RoleName::ROOT, b"{\"new\":2}"),
        ],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CacheError::Write { .. }), "{err:?}");
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    assert!(err.to_string().contains("targets/b.json"), "{err}");
    assert_eq!(tree(dir.path()), before);
    assert!(dot_files(&cache).is_empty(), "{:?}", dot_files(&cache));
}

/// Where files are renamed one by one (here: `metadata` is a symlink, which is not swapped), a
/// rename failing part-way says which files were replaced, and not that nothing changed.
#[tokio::test]
async fn a_rename_failing_part_way_tells_what_it_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let cache = old_cache(dir.path()).await;
    let meta = cache.metadata_dir(&gun());
    let real = dir.path().join("real-metadata");
    fs::rename(&meta, &real).unwrap();
    std::os::unix::fs::symlink(&real, &meta).unwrap();
    // The second file's final path is a non-empty directory: its rename fails (EISDIR).
    fs::create_dir_all(real.join("targets/b.json/x")).unwrap();
    let err = commit(
        &cache,
        &[
            (RoleName::RELEASES, b"{\"new\":2}"),
            (role("targets/b"), b"{\"new\":2}"),
            (RoleName::ROOT, b"{\"new\":2}"),
        ],
    )
    .await
    .unwrap_err();
    let CacheError::PartlyWritten {
        replaced,
        failed,
        total,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(replaced, &[cache.path(&gun(), &RoleName::RELEASES)]);
    assert_eq!(failed, &cache.path(&gun(), &role("targets/b")));
    assert_eq!(*total, 3);
    let text = err.to_string();
    assert!(!text.contains("nothing was changed"), "{text}");
    assert!(text.contains("1 of 3 files"), "{text}");
    assert!(text.contains("targets/releases.json"), "{text}");
    // What the cache holds is what the message says: releases new, root old.
    assert_eq!(
        cache.load(&gun(), &RoleName::RELEASES).unwrap().unwrap(),
        b"{\"new\":2}"
    );
    assert_eq!(
        cache.load(&gun(), &RoleName::ROOT).unwrap().unwrap(),
        b"{\"old\":1}"
    );
    assert!(dot_files(&cache).is_empty(), "{:?}", dot_files(&cache));

    // With the obstacle gone, the next commit goes through the same way.
    fs::remove_dir_all(real.join("targets/b.json")).unwrap();
    commit(
        &cache,
        &[
            (role("targets/b"), b"{\"new\":2}"),
            (RoleName::ROOT, b"{\"new\":2}"),
        ],
    )
    .await
    .unwrap();
    for r in [RoleName::RELEASES, role("targets/b"), RoleName::ROOT] {
        assert_eq!(cache.load(&gun(), &r).unwrap().unwrap(), b"{\"new\":2}");
    }
}

/// A program that takes no lock wrote the cache after it was read: the commit writes nothing.
#[tokio::test]
async fn a_cache_changed_since_it_was_read_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let cache = old_cache(dir.path()).await;
    let lock = cache.lock(&gun()).await.unwrap();
    let view = lock.read().await.unwrap();
    // As the notary CLI writes: remove, then write anew.
    let path = cache.path(&gun(), &RoleName::TIMESTAMP);
    fs::remove_file(&path).unwrap();
    fs::write(&path, b"{\"notary\":3}").unwrap();
    let err = lock
        .commit(&view, &[(RoleName::TIMESTAMP, b"{\"new\":2}".to_vec())])
        .unwrap_err();
    assert!(matches!(err, CacheError::Changed { .. }), "{err:?}");
    assert!(err.to_string().contains("docker or notary CLI"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), b"{\"notary\":3}");
    // A delegation that appeared counts as a change too.
    let view = lock.read().await.unwrap();
    fs::write(cache.path(&gun(), &role("targets/new")), b"{}").unwrap();
    let err = lock
        .commit(&view, &[(RoleName::TIMESTAMP, b"{\"new\":2}".to_vec())])
        .unwrap_err();
    assert!(matches!(err, CacheError::Changed { .. }), "{err:?}");
}

/// A read that catches a file half-written waits for the writer to finish it.
#[tokio::test]
async fn a_read_waits_out_a_file_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let cache = old_cache(dir.path()).await;
    let path = cache.path(&gun(), &RoleName::TIMESTAMP);
    fs::write(&path, b"{\"cut").unwrap();
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(60));
            fs::write(&path, b"{\"whole\":1}").unwrap();
        })
    };
    let lock = cache.lock(&gun()).await.unwrap();
    let view = lock.read().await.unwrap();
    writer.join().unwrap();
    assert_eq!(view.get(&RoleName::TIMESTAMP).unwrap(), b"{\"whole\":1}");
}

#[tokio::test]
async fn a_waiter_says_whom_it_waits_for_then_gives_up_or_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let heard = Arc::new(Mutex::new(Vec::<String>::new()));
    let cache = {
        let heard = heard.clone();
        TrustCache::new(dir.path())
            .with_lock_wait(Duration::from_millis(50), Duration::from_millis(300))
            .with_lock_notice(move |m| heard.lock().unwrap().push(m.to_owned()))
    };
    let held = cache.lock(&gun()).await.unwrap();
    let lock_file = cache.gun_dir(&gun()).join(LOCK_FILE);
    assert_eq!(
        fs::read_to_string(&lock_file).unwrap().trim(),
        std::process::id().to_string()
    );
    let err = cache.lock(&gun()).await.unwrap_err();
    let pid = std::process::id();
    assert!(
        matches!(err, CacheError::Locked { holder: Holder(Some(p)), .. } if p == pid),
        "{err:?}"
    );
    assert!(err.to_string().contains(&format!("process {pid}")), "{err}");
    let heard_now = heard.lock().unwrap().clone();
    assert_eq!(heard_now.len(), 1, "{heard_now:?}");
    assert!(
        heard_now[0].contains(&format!("process {pid} holds its lock")),
        "{heard_now:?}"
    );

    // Let go while another waits: it goes on, and the file left is the new holder's.
    let waiter = {
        let cache = cache
            .clone()
            .with_lock_wait(Duration::from_secs(5), Duration::from_secs(5));
        tokio::spawn(async move { cache.lock(&gun()).await.map(drop) })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    drop(held);
    waiter.await.unwrap().unwrap();
    assert!(!lock_file.exists());
}

#[tokio::test]
async fn a_dead_commits_staged_directory_is_removed_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let cache = old_cache(dir.path()).await;
    let leftover = cache.gun_dir(&gun()).join(format!("{STAGE_PREFIX}99999-0"));
    fs::create_dir_all(leftover.join("targets")).unwrap();
    fs::write(leftover.join("root.json"), b"{}").unwrap();
    commit(&cache, &[(RoleName::TIMESTAMP, b"{\"new\":2}")])
        .await
        .unwrap();
    assert!(!leftover.exists());
}
