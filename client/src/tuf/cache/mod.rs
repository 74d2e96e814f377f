//! The local copy of verified metadata, laid out as Notary's trust directory.
//!
//! Files live at `<trust_dir>/tuf/<gun>/metadata/<role>.json` (a delegation `targets/x` at
//! `metadata/targets/x.json`), so a `~/.docker/trust` directory is shared with the docker and
//! notary CLIs: each reads what the others wrote.
//!
//! That layout lets two GUNs meet: the files of `X/metadata/targets` lie inside the metadata of
//! `X` (its delegation `targets/metadata/root` is the other's `root.json`), and `X/changelist.json`
//! is a directory where `X`'s changelist file belongs. So a GUN with a component after the first
//! that names something a GUN's directory holds (`metadata`, `changelist`, `changelist.json`,
//! `tufa-changes.jsonl`, or `.tufa…`) lives at `<trust_dir>/tufa/tuf/<sha256 of the GUN>/`
//! instead, where nothing else can reach. The docker and notary CLIs keep their own colliding
//! copy of such a GUN; tufa neither reads nor writes it. Every other GUN, in practice all of
//! them, keeps Notary's path.
//!
//! Several processes share a trust directory (parallel CI jobs). tufa serialises its own:
//! [`TrustCache::lock`] takes a per-GUN lock file (`<gun dir>/.tufa.lock`, holding the holder's
//! pid) before it reads the cache, and keeps it through the fetch, verification and commit of an
//! update, so a verification never compares a server state with a cache another tufa advanced
//! meanwhile. The docker and notary CLIs take no lock and rewrite files in place, so a
//! [`GunLock::read`] reads every cached file of the GUN at once, waits out files caught
//! half-written, and [`GunLock::commit`] refuses ([`CacheError::Changed`]) if anything changed
//! since that read: the update starts over from the newer cache.
//!
//! A commit is atomic across files: the new metadata directory is staged beside the old one
//! (unchanged files hard-linked, new ones written) and swapped in with one
//! `renameat2(RENAME_EXCHANGE)`, so every reader sees the old state or the new one. Where the
//! filesystem cannot exchange (or `metadata` is a symlink), files are renamed one by one and a
//! failure part-way says which files were replaced ([`CacheError::PartlyWritten`]); the next
//! read checks every cached file against the server again, which mends it.
//!
//! A commit holding `root.json`, the trust anchor, is synced to disk. Other roles are not: a
//! copy lost by a power cut is fetched again under the cached root (Notary syncs none).

mod commit;
mod lock;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest as _;

use crate::tuf::{Gun, RoleName};

pub use lock::GunLock;

/// The lock file in a GUN's directory.
const LOCK_FILE: &str = ".tufa.lock";
/// The prefix of a commit's staged metadata directory, beside `metadata/`.
const STAGE_PREFIX: &str = ".tufa-stage-";

/// A cache operation that failed, with the file and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Reading a cached file failed for another reason than its absence.
    #[error(
        "cannot read cached trust data {path}: {source}; check the permissions of the trust \
         directory, or delete the file to fetch it again from the server"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },

    /// Writing a cache file failed before anything was swapped in: the cache is as it was.
    #[error(
        "cannot write trust data to {path}: {source}; nothing was changed in the cache. Check \
         that the trust directory is writable and the disk is not full, then retry"
    )]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },

    /// A commit renaming file by file failed part-way: some files hold the new state.
    #[error(
        "cannot write trust data to {failed}: {source}. {} of {total} files of {gun} were \
         replaced before that ({}) and the others still hold the previous state; every cached \
         file is checked against the server again on the next read of {gun}, which replaces \
         them. Check that the trust directory is writable and the disk is not full, then retry",
        replaced.len(),
        list(replaced)
    )]
    PartlyWritten {
        /// The repository.
        gun: Gun,
        /// The file whose rename failed.
        failed: PathBuf,
        /// The I/O error.
        source: io::Error,
        /// The files already replaced.
        replaced: Vec<PathBuf>,
        /// How many files the commit had.
        total: usize,
    },

    /// Another program wrote the GUN's cache after tufa read it: tufa's copy was not written.
    #[error(
        "the trust cache of {gun} at {dir} changed while tufa was reading it: another program \
         (the docker or notary CLI, which take no lock) wrote it meanwhile, so tufa left that \
         copy as it is; the next read checks it against the server again"
    )]
    Changed {
        /// The repository.
        gun: Gun,
        /// Its metadata directory.
        dir: PathBuf,
    },

    /// Another process held the GUN's lock for longer than tufa waits.
    #[error(
        "gave up after {}s waiting for the trust cache of {gun}: {holder} holds its lock \
         ({path}). If that process is stuck, end it, then retry",
        waited.as_secs()
    )]
    Locked {
        /// The repository.
        gun: Gun,
        /// The lock file.
        path: PathBuf,
        /// Who holds it.
        holder: Holder,
        /// How long tufa waited.
        waited: Duration,
    },

    /// The lock file could not be made or locked.
    #[error(
        "cannot lock the trust cache at {path}: {source}; check that the trust directory is \
         writable"
    )]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

fn list(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "none".into();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The process holding a GUN's lock, as its lock file names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder(pub Option<u32>);

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(pid) => write!(f, "process {pid}"),
            None => f.write_str("another process"),
        }
    }
}

/// What a waiter for a lock hears once it has waited [`LockWait::notice_after`].
type Notice = Arc<dyn Fn(&str) + Send + Sync>;

/// How long [`TrustCache::lock`] waits, and whom it tells.
#[derive(Clone)]
struct LockWait {
    notice_after: Duration,
    give_up_after: Duration,
    notice: Notice,
}

impl std::fmt::Debug for LockWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockWait")
            .field("notice_after", &self.notice_after)
            .field("give_up_after", &self.give_up_after)
            .finish_non_exhaustive()
    }
}

/// Verified metadata of every repository seen, under one trust directory.
#[derive(Clone, Debug)]
pub struct TrustCache {
    trust_dir: PathBuf,
    wait: LockWait,
}

impl TrustCache {
    /// How long a waiter for a GUN's lock waits before it says who holds it.
    pub const LOCK_NOTICE_AFTER: Duration = Duration::from_secs(3);
    /// How long a waiter waits in all: past the longest a read of a slow server takes.
    pub const LOCK_GIVE_UP_AFTER: Duration = Duration::from_secs(180);

    /// The cache under `trust_dir` (e.g. `~/.docker/trust`); nothing is created until a lock or
    /// a commit. A wait for another process's lock is said on stderr.
    pub fn new(trust_dir: impl Into<PathBuf>) -> Self {
        Self {
            trust_dir: trust_dir.into(),
            wait: LockWait {
                notice_after: Self::LOCK_NOTICE_AFTER,
                give_up_after: Self::LOCK_GIVE_UP_AFTER,
                notice: Arc::new(|message| eprintln!("{message}")),
            },
        }
    }

    /// This cache with other lock waits: the notice after `notice_after`, giving up after
    /// `give_up_after`.
    pub fn with_lock_wait(mut self, notice_after: Duration, give_up_after: Duration) -> Self {
        self.wait.notice_after = notice_after;
        self.wait.give_up_after = give_up_after;
        self
    }

    /// This cache telling `notice` (not stderr) that it waits for another process's lock.
    pub fn with_lock_notice(mut self, notice: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.wait.notice = Arc::new(notice);
        self
    }

    /// The trust directory.
    pub fn trust_dir(&self) -> &Path {
        &self.trust_dir
    }

    /// The directory of `gun`: `<trust_dir>/tuf/<gun>` (Notary's), or
    /// `<trust_dir>/tufa/tuf/<sha256 of gun>` for a GUN whose Notary path meets another's.
    pub fn gun_dir(&self, gun: &Gun) -> PathBuf {
        if shares_notary_layout(gun) {
            // A `Gun` has no empty, `.` or `..` components and no leading '/', so it stays inside.
            self.trust_dir.join("tuf").join(gun.as_str())
        } else {
            let digest = sha2::Sha256::digest(gun.as_str().as_bytes());
            self.trust_dir
                .join("tufa")
                .join("tuf")
                .join(hex::encode(digest))
        }
    }

    /// `<gun dir>/metadata`, where `gun`'s files live.
    pub fn metadata_dir(&self, gun: &Gun) -> PathBuf {
        self.gun_dir(gun).join("metadata")
    }

    /// The file holding `role` of `gun`.
    pub fn path(&self, gun: &Gun, role: &RoleName) -> PathBuf {
        self.metadata_dir(gun)
            .join(format!("{}.json", role.as_str()))
    }

    /// The cached bytes of one `role`, or `None` when nothing is cached; for a consistent set
    /// of files, [`TrustCache::lock`] and [`GunLock::read`].
    pub fn load(&self, gun: &Gun, role: &RoleName) -> Result<Option<Vec<u8>>, CacheError> {
        read_if_exists(&self.path(gun, role))
    }

    /// Forgets everything cached for `gun` (as `notary delete` does locally), under its lock;
    /// the GUN's own directory goes too when nothing else is left in it.
    pub async fn remove_gun(&self, gun: &Gun) -> Result<(), CacheError> {
        let lock = self.lock(gun).await?;
        let dir = self.metadata_dir(gun);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(CacheError::Write { path: dir, source }),
        }
        drop(lock);
        // Only an empty directory goes: another GUN may live below it (`a/b` holds `a/b/c`).
        let _ = fs::remove_dir(self.gun_dir(gun));
        Ok(())
    }

    /// Every cached file of `gun` by role (root, targets, snapshot, timestamp and every
    /// `targets/…` delegation), as they are now.
    fn read_files(&self, gun: &Gun) -> Result<Files, CacheError> {
        let dir = self.metadata_dir(gun);
        let mut files = Files::default();
        for role in [
            RoleName::ROOT,
            RoleName::TARGETS,
            RoleName::SNAPSHOT,
            RoleName::TIMESTAMP,
        ] {
            let path = self.path(gun, &role);
            if let Some(bytes) = read_if_exists(&path)? {
                files.roles.insert(role, bytes);
            }
        }
        let mut pending = vec![dir.join("targets")];
        while let Some(next) = pending.pop() {
            let entries = match fs::read_dir(&next) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                // `targets` as a file, or a directory named like a file: no delegations there.
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => continue,
                Err(source) => return Err(CacheError::Read { path: next, source }),
            };
            for entry in entries {
                let entry = entry.map_err(|source| CacheError::Read {
                    path: next.clone(),
                    source,
                })?;
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    files.vanished = true;
                    continue;
                };
                if kind.is_dir() {
                    pending.push(path);
                    continue;
                }
                let Some(role) = delegation_of(&dir, &path) else {
                    continue;
                };
                match read_if_exists(&path)? {
                    Some(bytes) => {
                        files.roles.insert(role, bytes);
                    }
                    // Listed, then gone: a notary CLI rewriting it (it removes, then writes).
                    None => files.vanished = true,
                }
            }
        }
        Ok(files)
    }
}

/// Whether `gun` keeps Notary's path: no component after the first names what a GUN's
/// directory holds (compared without case, for case-insensitive filesystems).
fn shares_notary_layout(gun: &Gun) -> bool {
    const HELD: [&str; 4] = [
        "metadata",
        "changelist",
        "changelist.json",
        "tufa-changes.jsonl",
    ];
    gun.as_str().split('/').skip(1).all(|part| {
        !HELD.iter().any(|h| part.eq_ignore_ascii_case(h))
            && !part.to_ascii_lowercase().starts_with(".tufa")
    })
}

/// The delegation whose file `path` is, under the metadata directory `dir`.
fn delegation_of(dir: &Path, path: &Path) -> Option<RoleName> {
    let relative = path.strip_prefix(dir).ok()?.to_str()?;
    let name = relative.strip_suffix(".json")?;
    RoleName::new(name).ok().filter(RoleName::is_delegation)
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, CacheError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CacheError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The files of one GUN as read at one moment.
#[derive(Debug, Default, PartialEq, Eq)]
struct Files {
    roles: BTreeMap<RoleName, Vec<u8>>,
    /// A file was listed and then gone before it could be read.
    vanished: bool,
}

impl Files {
    /// Whether a writer that takes no lock seems to be in the middle of a write: a file listed
    /// and gone, empty or not JSON, or `root.json` missing beside other roles (the notary CLI
    /// removes a file, then writes it anew).
    fn unsettled(&self) -> bool {
        self.vanished
            || (!self.roles.is_empty() && !self.roles.contains_key(&RoleName::ROOT))
            || self
                .roles
                .values()
                .any(|bytes| serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err())
    }
}

/// The cached files of one GUN, read at once under its lock ([`GunLock::read`]): what an
/// update verifies against, and what its commit checks nobody changed meanwhile.
#[derive(Clone, Debug, Default)]
pub struct CacheView {
    roles: BTreeMap<RoleName, Vec<u8>>,
}

impl CacheView {
    /// The cached bytes of `role`, if any.
    pub fn get(&self, role: &RoleName) -> Option<&[u8]> {
        self.roles.get(role).map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests;
