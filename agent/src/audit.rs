//! The audit log: one JSON line per generation, import, deletion, certificate and signature.
//!
//! Lines carry who asked (peer uid and pid), which key, for which GUN and role, the SHA-256 of
//! what was signed, and the result. Never a PIN, a passphrase or key bytes: the record type has
//! no field that could hold one.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
}

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
    /// Key ID (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Key name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_name: Option<&'a str>,
    /// Device name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<&'a str>,
    /// Where the key lives: `yubikey:SERIAL/SLOT` or `pkcs11:token=LABEL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// GUN the signature is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gun: Option<&'a str>,
    /// TUF role the signature is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'a str>,
    /// SHA-256 of what was signed (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// "ok" or the error message.
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
            rec.key_name = Some(info.name.as_str());
            rec.location = Some(location(&info.location));
        }
        rec
    }

    /// The name a new key was asked for, whether or not it was made.
    pub fn named(mut self, name: &'a KeyName) -> Self {
        self.key_name = Some(name.as_str());
        self
    }

    /// What a signature is for (GUN and role, when the client said) and the digest signed.
    pub fn signing(mut self, gun: &'a str, role: &'a str, digest: &Sha256Digest) -> Self {
        self.gun = Some(gun).filter(|g| !g.is_empty());
        self.role = Some(role).filter(|r| !r.is_empty());
        self.sha256 = Some(digest.to_string());
        self
    }

    /// The device an operation was for.
    pub fn device(mut self, device: Option<&'a str>) -> Self {
        self.device = device;
        self
    }

    /// "ok", or the error's message.
    pub fn result<T>(mut self, r: &Result<T, AgentError>) -> Self {
        self.result = match r {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string(),
        };
        self
    }
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

/// An append-only JSON-lines file, or nowhere.
pub struct AuditLog {
    file: Option<Mutex<File>>,
    path: Option<PathBuf>,
}

impl AuditLog {
    /// Opens (creates, mode 0600) the log for appending.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        // An existing log keeps its mode on open: make it private too.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok(Self {
            file: Some(Mutex::new(file)),
            path: Some(path.to_owned()),
        })
    }

    /// A log that writes nothing (no audit_log configured).
    pub fn disabled() -> Self {
        Self {
            file: None,
            path: None,
        }
    }

    /// Where the log is written.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Appends one line; a failure to write is logged, never hidden.
    pub fn write(&self, record: &Record<'_>) {
        let Some(file) = &self.file else { return };
        let mut line = match serde_json::to_vec(record) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an audit record");
                return;
            }
        };
        line.push(b'\n');
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        // One write per line keeps lines whole under O_APPEND.
        if let Err(e) = f.write_all(&line) {
            tracing::error!(error = %e, path = ?self.path, "cannot write the audit log");
        }
    }
}
