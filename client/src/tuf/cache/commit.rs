//! A commit: the GUN's new metadata directory staged beside the old one and swapped in at once.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{CacheError, CacheView, GunLock, STAGE_PREFIX};
use crate::tuf::RoleName;

impl GunLock {
    /// Writes `files` (verified bytes by role) over the cache `base` was read from.
    ///
    /// Refuses with [`CacheError::Changed`], writing nothing, if the cache no longer holds
    /// what `base` read (a notary or docker CLI wrote it meanwhile). Otherwise the new
    /// `metadata/` is staged (unchanged files hard-linked, `files` written) and exchanged with
    /// the old in one rename: on any error before that the cache is unchanged
    /// ([`CacheError::Write`]). Where the filesystem cannot exchange directories, or `metadata`
    /// is a symlink, the files are renamed into place one by one in the order given (callers
    /// put root last), and a failure part-way is a [`CacheError::PartlyWritten`] that lists
    /// what was replaced. With a root among `files`, files and directories are synced.
    pub fn commit(
        &self,
        base: &CacheView,
        files: &[(RoleName, Vec<u8>)],
    ) -> Result<(), CacheError> {
        if files.is_empty() {
            return Ok(());
        }
        if !self.unchanged_since(base)? {
            return Err(CacheError::Changed {
                gun: self.gun().clone(),
                dir: self.metadata_dir(),
            });
        }
        let durable = files.iter().any(|(role, _)| *role == RoleName::ROOT);
        let meta = self.metadata_dir();
        let parent = meta
            .parent()
            .expect("a metadata directory has a parent")
            .to_owned();
        fs::create_dir_all(&parent).map_err(|e| werr(&parent, e))?;
        remove_leftovers(&parent);

        let old = match fs::symlink_metadata(&meta) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(werr(&meta, e)),
        };
        // The whole directory is staged and swapped, unless `metadata` is not one (a symlink).
        let whole = old.as_ref().is_none_or(|m| m.is_dir());
        let stage = parent.join(format!("{STAGE_PREFIX}{}-{}", std::process::id(), next()));
        let staged = (|| {
            let mode = match &old {
                Some(m) if m.is_dir() => m.permissions().mode(),
                _ => 0o777,
            };
            fs::DirBuilder::new()
                .mode(mode)
                .create(&stage)
                .map_err(|e| werr(&stage, e))?;
            let mut written = Vec::with_capacity(files.len());
            if whole && old.is_some() {
                let replaced: HashSet<PathBuf> =
                    files.iter().map(|(role, _)| relative(role)).collect();
                mirror(&meta, &stage, Path::new(""), &replaced)?;
            }
            for (role, bytes) in files {
                let path = stage.join(relative(role));
                write_file(&path, bytes, durable)
                    .map_err(|source| werr(&self.path(role), source))?;
                written.push(path);
            }
            if durable {
                let mut dirs: Vec<&Path> = written.iter().filter_map(|p| p.parent()).collect();
                dirs.sort();
                dirs.dedup();
                for dir in dirs {
                    sync_dir(dir)?;
                }
            }
            Ok(())
        })();
        if let Err(e) = staged {
            let _ = fs::remove_dir_all(&stage);
            return Err(e);
        }

        let swapped = if !whole {
            Swap::Unsupported
        } else if old.is_some() {
            exchange(&stage, &meta)
        } else {
            // No cache yet: the staged directory becomes it.
            match fs::rename(&stage, &meta) {
                Ok(()) => Swap::Done,
                Err(e) => Swap::Failed(e),
            }
        };
        match swapped {
            Swap::Done => {
                // The old directory, now at the staged name; a leftover goes on the next commit.
                let _ = fs::remove_dir_all(&stage);
            }
            Swap::Failed(source) => {
                let _ = fs::remove_dir_all(&stage);
                return Err(werr(&meta, source));
            }
            Swap::Unsupported => {
                let renamed = self.rename_each(&stage, &meta, files, durable);
                let _ = fs::remove_dir_all(&stage);
                renamed?;
            }
        }
        if durable {
            sync_dir(&parent)?;
        }
        Ok(())
    }

    /// Renames each staged file of `files` from `stage` into `meta`, in order.
    fn rename_each(
        &self,
        stage: &Path,
        meta: &Path,
        files: &[(RoleName, Vec<u8>)],
        durable: bool,
    ) -> Result<(), CacheError> {
        let mut replaced: Vec<PathBuf> = Vec::with_capacity(files.len());
        let mut dirs: Vec<PathBuf> = Vec::new();
        for (role, _) in files {
            let to = self.path(role);
            let moved = to
                .parent()
                .map_or(Ok(()), fs::create_dir_all)
                .and_then(|()| fs::rename(stage.join(relative(role)), &to));
            if let Err(source) = moved {
                if replaced.is_empty() {
                    return Err(werr(&to, source));
                }
                return Err(CacheError::PartlyWritten {
                    gun: self.gun().clone(),
                    failed: to,
                    source,
                    replaced,
                    total: files.len(),
                });
            }
            if let Some(dir) = to.parent() {
                if !dirs.iter().any(|d| d == dir) {
                    dirs.push(dir.to_owned());
                }
            }
            replaced.push(to);
        }
        if durable {
            dirs.push(meta.to_owned());
            for dir in &dirs {
                sync_dir(dir)?;
            }
        }
        Ok(())
    }
}

/// How the staged directory went in.
enum Swap {
    Done,
    Failed(io::Error),
    /// The filesystem cannot exchange two directories.
    Unsupported,
}

/// Exchanges the directories `a` and `b` in one step.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> Swap {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use rustix::io::Errno;
    match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
        Ok(()) => Swap::Done,
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => Swap::Unsupported,
        Err(e) => Swap::Failed(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> Swap {
    Swap::Unsupported
}

/// A role's file under a metadata directory.
fn relative(role: &RoleName) -> PathBuf {
    PathBuf::from(format!("{}.json", role.as_str()))
}

/// Copies the tree `from/rel` into `to/rel`: directories made anew (same permissions), files
/// hard-linked (copied where links fail), symlinks remade; except the files in `skip`, which the
/// commit writes, and temporary files an older tufa left.
fn mirror(from: &Path, to: &Path, rel: &Path, skip: &HashSet<PathBuf>) -> Result<(), CacheError> {
    let dir = from.join(rel);
    let entries = fs::read_dir(&dir).map_err(|source| CacheError::Read {
        path: dir.clone(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| CacheError::Read {
            path: dir.clone(),
            source,
        })?;
        let name = entry.file_name();
        let rel = rel.join(&name);
        let (src, dst) = (from.join(&rel), to.join(&rel));
        // Gone since listed (a notary CLI rewriting it): the commit's check already passed, so
        // this is a write that came after it and loses to ours.
        let Ok(meta) = fs::symlink_metadata(&src) else {
            continue;
        };
        if meta.is_dir() {
            fs::DirBuilder::new()
                .mode(meta.permissions().mode())
                .create(&dst)
                .map_err(|e| werr(&dst, e))?;
            mirror(from, to, &rel, skip)?;
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&src).map_err(|source| CacheError::Read {
                path: src.clone(),
                source,
            })?;
            std::os::unix::fs::symlink(target, &dst).map_err(|e| werr(&dst, e))?;
        } else if meta.is_file()
            && !skip.contains(&rel)
            && !name.to_string_lossy().contains(".tmp-")
        {
            fs::hard_link(&src, &dst)
                .or_else(|_| fs::copy(&src, &dst).map(drop))
                .map_err(|e| werr(&dst, e))?;
        }
    }
    Ok(())
}

/// Writes `bytes` to the new file `path` (its directories made), synced if `sync`.
fn write_file(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    if sync {
        file.sync_all()?;
    }
    Ok(())
}

/// Staged directories of commits that died (the lock is held, so none is running).
fn remove_leftovers(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAGE_PREFIX)
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Makes the renames in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), CacheError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| werr(dir, source))
}

fn werr(path: &Path, source: io::Error) -> CacheError {
    CacheError::Write {
        path: path.to_owned(),
        source,
    }
}

/// Numbers the staged directories of one process.
fn next() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}
