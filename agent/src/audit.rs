//! The audit log: one JSON line per generation, import, deletion, certificate and signature,
//! and per call the `[[client]]` rules refused.
//!
//! Lines carry who asked (peer uid and pid), which key, for which GUN and role, the SHA-256 of
//! what was signed, and the result. Never a PIN, a passphrase or key bytes: the record type has
//! no field that could hold one.
//!
//! The log fails closed: [`AuditLog::write`] reports every failure, and the server returns no
//! signature, keeps no new key and deletes nothing whose line it could not write. A line is one
//! `write` on an `O_APPEND` file, taken back (truncated) if the kernel wrote only part of it, and
//! synced to disk before the call is answered; client text is capped ([`Record`]'s `cap_*`), so
//! a line stays small whatever a client sends. The file and its directory are opened without
//! following symlinks and must belong to the agent's user; [`AuditLog::reopen`] (on SIGHUP)
//! starts a new file after a rotation.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fs::{Mode, OFlags};

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::backend::{KeyInfo, Location};
use crate::error::AgentError;
use crate::keys::{KeyName, Sha256Digest};

/// What was done.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// A key was generated.
    Generate,
    /// A key was imported.
    Import,
    /// A key was deleted.
    Delete,
    /// A certificate was stored.
    SetCertificate,
    /// A signature was made.
    Sign,
    /// A PIN was given.
    Unlock,
    /// PINs were forgotten.
    Lock,
    /// A key's attestation was read.
    Attest,
    /// The agent's status was asked for (a line only when it is refused).
    Status,
    /// Keys were listed or looked up (a line only when it is refused).
    List,
    /// A key another tool made was adopted (given tufa's marker and a name).
    Adopt,
}

/// The longest GUN and role kept in a line (Docker's own limit on a repository name); longer
/// text is cut, marked with how much was left out.
pub const CAP_GUN: usize = 255;
/// The longest key name or device name kept (names are at most 64; other tools' labels vary).
pub const CAP_NAME: usize = 128;
/// The longest result (error message) kept: it can quote what the client sent.
pub const CAP_RESULT: usize = 512;

/// One audit line.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    /// RFC 3339 time.
    pub time: String,
    /// What was done.
    pub op: Operation,
    /// Caller's uid.
    pub peer_uid: Option<u32>,
    /// Caller's pid.
    pub peer_pid: Option<i32>,
    /// Subject of the caller's TLS client certificate (the notary-signer listener's callers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_cert: Option<String>,
    /// The caller's TCP address (the notary-signer listener's callers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_addr: Option<String>,
    /// Key ID (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Key name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_name: Option<Cow<'a, str>>,
    /// Device name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<Cow<'a, str>>,
    /// Where the key lives: `yubikey:SERIAL/SLOT` or `pkcs11:token=LABEL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// GUN the signature is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gun: Option<Cow<'a, str>>,
    /// TUF role the signature is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Cow<'a, str>>,
    /// SHA-256 of what was signed (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// "ok", "started" (before an operation that cannot be undone), or the error message.
    pub result: String,
}

impl<'a> Record<'a> {
    /// A record stamped now.
    pub fn new(op: Operation, peer: Peer) -> Self {
        Record {
            time: OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default(),
            op,
            peer_uid: peer.uid,
            peer_pid: peer.pid,
            peer_cert: None,
            peer_addr: None,
            key_id: None,
            key_name: None,
            device: None,
            location: None,
            gun: None,
            role: None,
            sha256: None,
            result: String::new(),
        }
    }

    /// A record of an operation on a key, naming the key (ID, name, place) when it was found.
    pub fn for_key(op: Operation, peer: Peer, key: Option<&'a KeyInfo>) -> Self {
        let mut rec = Self::new(op, peer);
        if let Some(info) = key {
            rec.key_id = Some(info.id.to_string());
            rec.key_name = Some(cap(info.name.as_str(), CAP_NAME));
            rec.location = Some(cap(&location(&info.location), CAP_NAME * 2).into_owned());
        }
        rec
    }

    /// The name a new key was asked for, whether or not it was made.
    pub fn named(mut self, name: &'a KeyName) -> Self {
        self.key_name = Some(cap(name.as_str(), CAP_NAME));
        self
    }

    /// What a signature is for (GUN and role, when the client said) and the digest signed.
    pub fn signing(mut self, gun: &'a str, role: &'a str, digest: &Sha256Digest) -> Self {
        self.gun = Some(gun).filter(|g| !g.is_empty()).map(|g| cap(g, CAP_GUN));
        self.role = Some(role)
            .filter(|r| !r.is_empty())
            .map(|r| cap(r, CAP_GUN));
        self.sha256 = Some(digest.to_string());
        self
    }

    /// The GUN and role a key is for (a notary-server key made or deleted).
    pub fn context(mut self, gun: &'a str, role: &'a str) -> Self {
        self.gun = Some(cap(gun, CAP_GUN));
        self.role = Some(cap(role, CAP_GUN));
        self
    }

    /// A caller over TLS: its certificate's subject and its address.
    pub fn tls_peer(mut self, subject: &str, addr: Option<std::net::SocketAddr>) -> Self {
        self.peer_cert = Some(cap(subject, CAP_RESULT).into_owned());
        self.peer_addr = addr.map(|a| a.to_string());
        self
    }

    /// The device an operation was for.
    pub fn device(mut self, device: Option<&'a str>) -> Self {
        self.device = device.map(|d| cap(d, CAP_NAME));
        self
    }

    /// "ok", or the error's message.
    pub fn result<T>(mut self, r: &Result<T, AgentError>) -> Self {
        match r {
            Ok(_) => {
                self.result = "ok".into();
                self
            }
            Err(e) => self.error(e),
        }
    }

    /// The error's message (a failure, or a refusal that says why).
    pub fn error(mut self, e: &AgentError) -> Self {
        self.result = cap(&e.to_string(), CAP_RESULT).into_owned();
        self
    }

    /// Marks the line written before an operation that cannot be undone (delete, certificate):
    /// the operation runs only once this line is on disk, and a second line gives its result.
    pub fn started(mut self) -> Self {
        self.result = "started".into();
        self
    }
}

/// `text`, or its first `max` bytes (at a character boundary) and how many were left out.
fn cap(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!(
        "{}…({} more bytes)",
        &text[..end],
        text.len() - end
    ))
}

/// A key's place for the audit log (no module path: the token label names it).
fn location(l: &Location) -> String {
    match l {
        Location::Pkcs11(t) => format!("pkcs11:token={}", t.token_label),
        Location::YubiKey { serial, slot } => format!("yubikey:{serial}/{slot}"),
    }
}

/// Who called, from the socket's peer credentials.
#[derive(Clone, Copy, Debug, Default)]
pub struct Peer {
    /// The caller's uid, when the socket gives it.
    pub uid: Option<u32>,
    /// The caller's pid, when the socket gives it.
    pub pid: Option<i32>,
}

/// Why the audit log cannot be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file or its directory is unsafe or cannot be opened.
    #[error("audit log {path}: {message}")]
    Unusable {
        /// The log path.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A line could not be written or synced; nothing of it is left in the file.
    #[error("cannot write the audit log {path} ({error}): {}", write_fix(.error))]
    Write {
        /// The log path.
        path: PathBuf,
        /// The write's error.
        error: io::Error,
    },
}

fn write_fix(e: &io::Error) -> &'static str {
    if is_out_of_space(e) {
        "free space on its filesystem, or rotate the log (SIGHUP makes the agent reopen it), then retry"
    } else {
        "check the file and its filesystem, then retry"
    }
}

fn is_out_of_space(e: &io::Error) -> bool {
    use rustix::io::Errno;
    e.raw_os_error().is_some_and(|n| {
        [Errno::NOSPC, Errno::DQUOT, Errno::FBIG]
            .iter()
            .any(|x| x.raw_os_error() == n)
    })
}

impl AuditError {
    /// The gRPC answer to a call whose line could not be written: `consequence` says what the
    /// agent did about it (withheld the signature, removed the new key).
    pub fn refuse(&self, consequence: &str) -> tonic::Status {
        let code = match self {
            Self::Write { error, .. } if is_out_of_space(error) => tonic::Code::ResourceExhausted,
            _ => tonic::Code::Unavailable,
        };
        tonic::Status::new(code, format!("{consequence}: {self}"))
    }
}

/// An append-only JSON-lines file, or nowhere. Clones share the file.
#[derive(Clone)]
pub struct AuditLog {
    file: Option<Arc<LogFile>>,
}

struct LogFile {
    path: PathBuf,
    // Swapped by a reopen; writers take a handle under the lock and sync outside it.
    current: Mutex<Arc<File>>,
}

impl AuditLog {
    /// Opens (creates, mode 0600) the log for appending, after checking it and its directory.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let file = open_checked(path)?;
        Ok(Self {
            file: Some(Arc::new(LogFile {
                path: path.to_owned(),
                current: Mutex::new(Arc::new(file)),
            })),
        })
    }

    /// A log that writes nothing (no audit_log configured).
    pub fn disabled() -> Self {
        Self { file: None }
    }

    /// Where the log is written.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_deref().map(|f| f.path.as_path())
    }

    /// Opens the log's path again (after logrotate renamed it), with the same checks. If that
    /// fails the agent keeps writing to the file it has, so no line is lost.
    pub fn reopen(&self) -> Result<(), AuditError> {
        let Some(log) = &self.file else { return Ok(()) };
        let file = open_checked(&log.path)?;
        *log.current.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(file);
        Ok(())
    }

    /// Appends one line and syncs it to disk. Blocks: call it on a blocking worker. On an
    /// error the file holds no part of the line.
    pub fn write(&self, record: &Record<'_>) -> Result<(), AuditError> {
        let Some(log) = &self.file else { return Ok(()) };
        let failed = |error: io::Error| AuditError::Write {
            path: log.path.clone(),
            error,
        };
        let mut line = serde_json::to_vec(record).map_err(|e| failed(e.into()))?;
        line.push(b'\n');
        let file = {
            let current = log.current.lock().unwrap_or_else(|p| p.into_inner());
            let file = Arc::clone(&current);
            let start = file.metadata().map_err(failed)?.len();
            // One write keeps the line whole under O_APPEND; a short write (a full disk, the
            // file size limit) is taken back, so the next line does not land on a fragment.
            if let Err(e) = (&*file).write_all(&line) {
                let now = file.metadata().map(|m| m.len()).unwrap_or(start);
                // Only our own fragment: another writer's lines are never cut.
                if now > start && now < start + line.len() as u64 {
                    if let Err(t) = file.set_len(start) {
                        tracing::error!(path = %log.path.display(), error = %t, "cannot remove a cut audit line");
                    }
                }
                return Err(failed(e));
            }
            file
        };
        file.sync_data().map_err(failed)
    }
}

/// Opens the log without following a symlink, in a directory only its owner (the agent's user
/// or root) can change, as a regular file of the agent's user, mode 0600.
fn open_checked(path: &Path) -> Result<File, AuditError> {
    let unusable = |message: String| AuditError::Unusable {
        path: path.to_owned(),
        message,
    };
    let name = path
        .file_name()
        .ok_or_else(|| unusable("give the audit log a file name".into()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let link_or = |e: rustix::io::Errno, what: &Path, otherwise: &str| {
        if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
            unusable(format!(
                "{} is a symbolic link (or not a directory): give the real path",
                what.display()
            ))
        } else {
            unusable(format!("{otherwise} {}: {e}", what.display()))
        }
    };
    let dir_fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| link_or(e, dir, "cannot open directory"))?;
    let uid = rustix::process::getuid().as_raw();
    let dir_stat =
        rustix::fs::fstat(&dir_fd).map_err(|e| unusable(format!("{}: {e}", dir.display())))?;
    if dir_stat.st_uid != uid && dir_stat.st_uid != 0 {
        return Err(unusable(format!(
            "directory {} belongs to uid {}: keep the log in a directory of the agent's user (uid {uid}) or root",
            dir.display(),
            dir_stat.st_uid
        )));
    }
    if dir_stat.st_mode & 0o022 != 0 {
        return Err(unusable(format!(
            "directory {} has mode {:o}, so others can replace the log: keep it in a directory only its owner can write (`chmod go-w {}`, or `mkdir -m 700` one of its own)",
            dir.display(),
            dir_stat.st_mode & 0o7777,
            dir.display()
        )));
    }
    // O_NONBLOCK: a FIFO put there opens at once (and is refused below) instead of hanging.
    let fd = rustix::fs::openat(
        &dir_fd,
        name,
        OFlags::WRONLY
            | OFlags::APPEND
            | OFlags::CREATE
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NONBLOCK,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| {
        if e == rustix::io::Errno::LOOP {
            unusable(
                "is a symbolic link: the audit log must be a regular file (give the real path)"
                    .into(),
            )
        } else {
            unusable(format!("cannot open: {e}"))
        }
    })?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| unusable(e.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(unusable(
            "is not a regular file: remove it or choose another audit_log".into(),
        ));
    }
    if meta.uid() != uid {
        return Err(unusable(format!(
            "belongs to uid {}, not to the agent's uid {uid}: remove it or choose another audit_log",
            meta.uid()
        )));
    }
    // An existing log keeps its mode on open: make it private too.
    if meta.mode() & 0o777 != 0o600 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| unusable(format!("cannot set mode 600: {e}")))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        assert_eq!(cap("short", 10), "short");
        let text = "é".repeat(200);
        let cut = cap(&text, 255);
        assert!(cut.starts_with(&"é".repeat(127)), "{cut}");
        assert!(cut.ends_with("…(146 more bytes)"), "{cut}");
        let line = serde_json::to_string(&Record::new(Operation::Sign, Peer::default()).signing(
            &"g".repeat(1 << 20),
            &"\u{1}".repeat(1 << 20),
            &Sha256Digest::of(b"x"),
        ))
        .unwrap();
        assert!(line.len() < 4096, "{}", line.len());
    }

    #[test]
    fn a_log_in_a_shared_directory_or_behind_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.log");
        std::fs::write(&target, "").unwrap();
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = AuditLog::open(&link).err().unwrap().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = AuditLog::open(&target).err().unwrap().to_string();
        assert!(e.contains("mode 777"), "{e}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let log = AuditLog::open(&target).unwrap();
        log.write(&Record::new(Operation::Lock, Peer::default()).result(&Ok::<(), AgentError>(())))
            .unwrap();
        assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o777, 0o600);
        assert!(std::fs::read_to_string(&target)
            .unwrap()
            .ends_with("\"result\":\"ok\"}\n"));
    }
}
