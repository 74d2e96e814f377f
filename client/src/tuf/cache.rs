//! The local copy of verified metadata, laid out as Notary's trust directory.
//!
//! Files live at `<trust_dir>/tuf/<gun>/metadata/<role>.json` (a delegation `targets/x` at
//! `metadata/targets/x.json`), so a `~/.docker/trust` directory can be shared with the docker
//! and notary CLIs. Only verified bytes are written, and a whole update is committed at once:
//! every file is first written under a temporary name, and only when all of them are written
//! are they renamed into place. A failed update therefore leaves the cache as it was.
//!
//! A batch holding `root.json`, the trust anchor, is synced to disk before and after its
//! renames. Other roles are not: a copy lost or torn by a power cut is read as unreadable and
//! fetched again under the cached root (an update warns), so syncing them would buy little for
//! the milliseconds it costs on every update of a busy disk. (Notary syncs none of them.)

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::tuf::{Gun, RoleName};

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

    /// Writing or renaming a cache file failed; the cache was left as it was before.
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
}

/// Verified metadata of every repository seen, under one trust directory.
#[derive(Clone, Debug)]
pub struct TrustCache {
    trust_dir: PathBuf,
}

impl TrustCache {
    /// The cache under `trust_dir` (e.g. `~/.docker/trust`); nothing is created until a commit.
    pub fn new(trust_dir: impl Into<PathBuf>) -> Self {
        Self {
            trust_dir: trust_dir.into(),
        }
    }

    /// The trust directory.
    pub fn trust_dir(&self) -> &Path {
        &self.trust_dir
    }

    /// `<trust_dir>/tuf/<gun>/metadata`, where `gun`'s files live.
    pub fn metadata_dir(&self, gun: &Gun) -> PathBuf {
        // A `Gun` has no empty, `.` or `..` components and no leading '/', so it stays inside.
        self.trust_dir
            .join("tuf")
            .join(gun.as_str())
            .join("metadata")
    }

    /// The file holding `role` of `gun`.
    pub fn path(&self, gun: &Gun, role: &RoleName) -> PathBuf {
        self.metadata_dir(gun)
            .join(format!("{}.json", role.as_str()))
    }

    /// The cached bytes of `role`, or `None` when nothing is cached.
    pub fn load(&self, gun: &Gun, role: &RoleName) -> Result<Option<Vec<u8>>, CacheError> {
        let path = self.path(gun, role);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CacheError::Read { path, source }),
        }
    }

    /// Writes every file of `files` for `gun`, all or nothing as far as the filesystem allows.
    ///
    /// All files are written under temporary names first; if any of that fails they are removed
    /// and the cache is unchanged. Then each is renamed over its role's file, in the order given
    /// (callers put root last). With a root among them, files and directories are synced.
    pub fn commit(&self, gun: &Gun, files: &[(RoleName, Vec<u8>)]) -> Result<(), CacheError> {
        let durable = files.iter().any(|(role, _)| *role == RoleName::ROOT);
        let mut staged: Vec<(PathBuf, PathBuf)> = Vec::with_capacity(files.len());
        let written = files.iter().try_for_each(|(role, bytes)| {
            let path = self.path(gun, role);
            let temp = write_temp(&path, bytes, durable)?;
            staged.push((temp, path));
            Ok(())
        });
        if let Err(e) = written {
            for (temp, _) in &staged {
                let _ = fs::remove_file(temp);
            }
            return Err(e);
        }
        let mut dirs: Vec<PathBuf> = Vec::new();
        for (i, (temp, path)) in staged.iter().enumerate() {
            if let Err(source) = fs::rename(temp, path) {
                for (later, _) in &staged[i..] {
                    let _ = fs::remove_file(later);
                }
                return Err(CacheError::Write {
                    path: path.clone(),
                    source,
                });
            }
            if let Some(dir) = path.parent() {
                if !dirs.iter().any(|d| d == dir) {
                    dirs.push(dir.to_owned());
                }
            }
        }
        if durable {
            for dir in dirs {
                sync_dir(&dir)?;
            }
        }
        Ok(())
    }

    /// Forgets everything cached for `gun` (as `notary delete` does locally).
    pub fn remove_gun(&self, gun: &Gun) -> Result<(), CacheError> {
        let dir = self.metadata_dir(gun);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CacheError::Write { path: dir, source }),
        }
    }
}

/// Writes `bytes` to a new temporary file next to `path`, synced if `sync`; returns its name.
fn write_temp(path: &Path, bytes: &[u8], sync: bool) -> Result<PathBuf, CacheError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let werr = |path: &Path, source| CacheError::Write {
        path: path.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(|e| werr(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        if sync {
            file.sync_all()?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(temp),
        Err(source) => {
            let _ = fs::remove_file(&temp);
            Err(werr(&temp, source))
        }
    }
}

/// Makes the renames in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), CacheError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| CacheError::Write {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gun() -> Gun {
        "localhost:5000/demo".parse().unwrap()
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
    }

    #[test]
    fn commit_then_load_and_forget() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TrustCache::new(dir.path());
        assert_eq!(cache.load(&gun(), &RoleName::ROOT).unwrap(), None);
        cache
            .commit(
                &gun(),
                &[
                    (RoleName::RELEASES, b"r".to_vec()),
                    (RoleName::ROOT, b"root".to_vec()),
                ],
            )
            .unwrap();
        assert_eq!(
            cache.load(&gun(), &RoleName::RELEASES).unwrap().unwrap(),
            b"r"
        );
        cache
            .commit(&gun(), &[(RoleName::ROOT, b"root2".to_vec())])
            .unwrap();
        assert_eq!(
            cache.load(&gun(), &RoleName::ROOT).unwrap().unwrap(),
            b"root2"
        );
        // No temporary files are left behind.
        let names: Vec<String> = fs::read_dir(cache.metadata_dir(&gun()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
        cache.remove_gun(&gun()).unwrap();
        assert_eq!(cache.load(&gun(), &RoleName::ROOT).unwrap(), None);
    }

    #[test]
    fn a_failed_commit_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TrustCache::new(dir.path());
        cache
            .commit(&gun(), &[(RoleName::ROOT, b"old".to_vec())])
            .unwrap();
        // A file where the `targets/` directory must go makes the second write fail.
        fs::write(cache.metadata_dir(&gun()).join("targets"), b"x").unwrap();
        let err = cache
            .commit(
                &gun(),
                &[
                    (RoleName::ROOT, b"new".to_vec()),
                    (RoleName::RELEASES, b"r".to_vec()),
                ],
            )
            .unwrap_err();
        assert!(err.to_string().contains("nothing was changed"), "{err}");
        assert_eq!(
            cache.load(&gun(), &RoleName::ROOT).unwrap().unwrap(),
            b"old"
        );
        let names: Vec<String> = fs::read_dir(cache.metadata_dir(&gun()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }
}
