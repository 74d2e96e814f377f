//! The per-GUN lock: an exclusive `flock` on `<gun dir>/.tufa.lock`, which holds the holder's
//! pid so a waiter can say whom it waits for.
//!
//! The holder removes the file as it lets go, so no lock file is left behind; a waiter that
//! locked a file someone removed meanwhile sees that its file is no longer the one at the path,
//! and tries again (the changelist's own lock does the same).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;

use super::{CacheError, CacheView, Files, Holder, TrustCache, LOCK_FILE};
use crate::tuf::{Gun, RoleName};

/// A GUN's cache, locked against every other tufa process until dropped.
#[derive(Debug)]
pub struct GunLock {
    cache: TrustCache,
    gun: Gun,
    path: PathBuf,
    // Closed last, after the path is removed: that lets go of the lock.
    _file: File,
}

impl TrustCache {
    /// Locks `gun`'s cache against other tufa processes (and other tasks of this one).
    ///
    /// Waits while another holds it: after [`TrustCache::LOCK_NOTICE_AFTER`] it says which
    /// process it waits for, after [`TrustCache::LOCK_GIVE_UP_AFTER`] it gives up with
    /// [`CacheError::Locked`]. A holder that dies lets go at once (the kernel drops its lock).
    pub async fn lock(&self, gun: &Gun) -> Result<GunLock, CacheError> {
        let dir = self.gun_dir(gun);
        let path = dir.join(LOCK_FILE);
        let started = Instant::now();
        let mut told = false;
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(file) = try_lock(&dir, &path)? {
                // For a waiter's message only: a failure here costs nothing else.
                let _ = file.set_len(0);
                let _ = file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0);
                return Ok(GunLock {
                    cache: self.clone(),
                    gun: gun.clone(),
                    path,
                    _file: file,
                });
            }
            let waited = started.elapsed();
            if waited >= self.wait.give_up_after {
                return Err(CacheError::Locked {
                    gun: gun.clone(),
                    holder: holder(&path),
                    path,
                    waited,
                });
            }
            if !told && waited >= self.wait.notice_after {
                told = true;
                (self.wait.notice)(&format!(
                    "waiting for the trust cache of {gun}: {} holds its lock ({}); if that \
                     process is stuck, end it",
                    holder(&path),
                    path.display()
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// The lock file at `path` opened and locked, or `None` while another holds it.
fn try_lock(dir: &Path, path: &Path) -> Result<Option<File>, CacheError> {
    let err = |source: io::Error| CacheError::Lock {
        path: path.to_owned(),
        source,
    };
    loop {
        fs::create_dir_all(dir).map_err(err)?;
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            // Not before it is ours: the holder's pid is in it.
            .truncate(false)
            .mode(0o600)
            .open(path)
        {
            Ok(file) => file,
            // The directory went meanwhile (`notary delete`): make it again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(e)),
        };
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
            Err(e) => return Err(err(e.into())),
        }
        // The previous holder removes the file as it lets go: ours may be that removed one.
        let ours = file.metadata().map_err(err)?;
        match fs::metadata(path) {
            Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => return Ok(Some(file)),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(e)),
        }
    }
}

/// Who holds the lock at `path`, as the file says.
fn holder(path: &Path) -> Holder {
    Holder(
        fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok()),
    )
}

impl GunLock {
    /// The repository locked.
    pub fn gun(&self) -> &Gun {
        &self.gun
    }

    /// Every cached file of the GUN, read at once.
    ///
    /// Other tufa processes wait for this lock, but the docker and notary CLIs do not: they
    /// remove a file and then write it anew. A read that catches a file gone, empty or cut
    /// short tries again a few times, a moment apart; a file still unreadable then is handed on
    /// as it is (the update treats it as damaged).
    pub async fn read(&self) -> Result<CacheView, CacheError> {
        const TRIES: usize = 10;
        let mut files = self.cache.read_files(&self.gun)?;
        for _ in 1..TRIES {
            if !files.unsettled() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
            files = self.cache.read_files(&self.gun)?;
        }
        Ok(CacheView { roles: files.roles })
    }

    /// Whether the cache still holds what `base` read.
    pub(super) fn unchanged_since(&self, base: &CacheView) -> Result<bool, CacheError> {
        let Files { roles, vanished } = self.cache.read_files(&self.gun)?;
        Ok(!vanished && roles == base.roles)
    }

    /// The metadata directory of the GUN.
    pub(super) fn metadata_dir(&self) -> PathBuf {
        self.cache.metadata_dir(&self.gun)
    }

    /// The file of `role`.
    pub(super) fn path(&self, role: &RoleName) -> PathBuf {
        self.cache.path(&self.gun, role)
    }
}

impl Drop for GunLock {
    fn drop(&mut self) {
        // Removed while still locked, so no waiter can hold this file's lock as the file goes;
        // one that opened it before sees it gone and opens the next one.
        let _ = fs::remove_file(&self.path);
    }
}
