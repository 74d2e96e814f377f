//! The changelist file: the staged changes of one GUN, one JSON line each, under `flock`.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use crate::repo::change::Change;
use crate::repo::error::RepoError;
use crate::tuf::{Gun, TrustCache};

/// The staged changes of one GUN: one JSON line per change, appended to
/// `<trust_dir>/tuf/<gun>/tufa-changes.jsonl`.
///
/// Staging appends (under an exclusive `flock`, then synced), so it costs the same however many
/// changes wait, and publishing reads one file and removes one. A change is staged once its line
/// ends with a newline: a line cut short by a crash is ignored, and the next writer cuts it off.
/// notary's own `changelist/` is another path, so both CLIs can share a trust directory. A
/// `changelist.json` left by an older tufa (every change in one array) is read first.
pub struct Changelist {
    path: PathBuf,
    legacy: PathBuf,
}

impl Changelist {
    /// The changelist of `gun` under `trust_dir`, in the GUN's directory of the trust cache
    /// ([`TrustCache::gun_dir`], so two GUNs never share one).
    pub fn new(trust_dir: &Path, gun: &Gun) -> Self {
        let base = TrustCache::new(trust_dir).gun_dir(gun);
        Self {
            path: base.join("tufa-changes.jsonl"),
            legacy: base.join("changelist.json"),
        }
    }

    /// The files this changelist may use.
    #[cfg(test)]
    pub(crate) fn paths(&self) -> [&Path; 2] {
        [&self.path, &self.legacy]
    }

    /// The staged changes, oldest first.
    pub fn list(&self) -> Result<Vec<Change>, RepoError> {
        let mut all: Vec<Change> = match read_if_exists(&self.legacy)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| RepoError::Changelist {
                path: self.legacy.clone(),
                detail: format!("it does not parse ({e}): remove it to drop the staged changes"),
            })?,
            None => Vec::new(),
        };
        let bytes = read_if_exists(&self.path)?.unwrap_or_default();
        for (i, line) in complete_lines(&bytes).split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            all.push(
                serde_json::from_slice(line).map_err(|e| RepoError::Changelist {
                    path: self.path.clone(),
                    detail: format!(
                        "line {} does not parse ({e}): remove the file to drop the staged changes",
                        i + 1
                    ),
                })?,
            );
        }
        Ok(all)
    }

    /// Stages one more change.
    pub fn add(&self, change: Change) -> Result<(), RepoError> {
        self.add_all([change])
    }

    /// Stages several changes, in order, in one append.
    pub fn add_all(&self, changes: impl IntoIterator<Item = Change>) -> Result<(), RepoError> {
        let mut lines = Vec::new();
        for change in changes {
            // Compact JSON escapes newlines inside strings, so a change is exactly one line.
            serde_json::to_writer(&mut lines, &change).map_err(|e| RepoError::Changelist {
                path: self.path.clone(),
                detail: e.to_string(),
            })?;
            lines.push(b'\n');
        }
        if lines.is_empty() {
            return Ok(());
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let mut file = self.open_locked(true)?.ok_or_else(|| {
            io_err(
                &self.path,
                std::io::Error::other("the changelist vanished as it was created"),
            )
        })?;
        let io = |e| io_err(&self.path, e);
        let len = file.metadata().map_err(io)?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, len - 1).map_err(io)?;
            if last[0] != b'\n' {
                // A writer died mid-line: that change was never staged, so cut it off.
                let bytes = std::fs::read(&self.path).map_err(io)?;
                file.set_len(complete_lines(&bytes).len() as u64)
                    .map_err(io)?;
            }
        }
        // Opened for appending: this lands at the end whatever the length now is.
        file.write_all(&lines).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(())
    }

    /// Drops every staged change.
    pub fn clear(&self) -> Result<(), RepoError> {
        // Locked first, so no writer is appending to the file as it goes.
        if let Some(_locked) = self.open_locked(false)? {
            remove_if_exists(&self.path)?;
        }
        remove_if_exists(&self.legacy)
    }

    /// The changelist opened for appending and exclusively locked; `None` if it does not exist
    /// and `create` is false. Reopened if another process removed it while we waited.
    fn open_locked(&self, create: bool) -> Result<Option<File>, RepoError> {
        let io = |e| io_err(&self.path, e);
        loop {
            let file = match OpenOptions::new()
                .append(true)
                .read(true)
                .create(create)
                .mode(0o600)
                .open(&self.path)
            {
                Ok(f) => f,
                Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io(e)),
            };
            rustix::fs::flock(&file, FlockOperation::LockExclusive).map_err(|e| io(e.into()))?;
            let ours = file.metadata().map_err(io)?;
            match std::fs::metadata(&self.path) {
                Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => {
                    return Ok(Some(file))
                }
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if !create {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(io(e)),
            }
        }
    }
}

/// `bytes` up to and including the last newline: the changes that were staged in full.
fn complete_lines(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    &bytes[..end]
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, RepoError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, e)),
    }
}

fn remove_if_exists(path: &Path) -> Result<(), RepoError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, e)),
    }
}

fn io_err(path: &Path, e: std::io::Error) -> RepoError {
    RepoError::Changelist {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::change::SnapshotKey;
    use crate::tuf::{KeyId, PublicKey, RoleName, Sha256Digest, Sha512Digest};

    fn target(name: &str) -> Change {
        Change::AddTarget {
            role: RoleName::TARGETS,
            name: name.into(),
            length: 1,
            sha256: Sha256Digest::from_bytes([0xab; 32]),
            sha512: None,
            custom: None,
        }
    }

    fn gun() -> Gun {
        "example.com/app".parse().unwrap()
    }

    #[test]
    fn changes_come_back_in_staging_order() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Changelist::new(dir.path(), &gun())
            .list()
            .unwrap()
            .is_empty());
        let names: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
        // Each change from a new handle, as each `tufa notary addhash` process does.
        for name in &names[..3] {
            Changelist::new(dir.path(), &gun())
                .add(target(name))
                .unwrap();
        }
        Changelist::new(dir.path(), &gun())
            .add_all(names[3..].iter().map(|n| target(n)))
            .unwrap();
        let all = Changelist::new(dir.path(), &gun()).list().unwrap();
        assert_eq!(all, names.iter().map(|n| target(n)).collect::<Vec<_>>());
    }

    #[test]
    fn an_older_changelist_json_is_read_first_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("tuf/example.com/app");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(
            base.join("changelist.json"),
            serde_json::to_vec(&[target("old")]).unwrap(),
        )
        .unwrap();
        let list = Changelist::new(dir.path(), &gun());
        list.add(target("new")).unwrap();
        assert_eq!(list.list().unwrap(), vec![target("old"), target("new")]);
        list.clear().unwrap();
        assert!(list.list().unwrap().is_empty());
        assert!(!base.join("changelist.json").exists());
    }

    #[test]
    fn a_line_cut_short_is_ignored_then_cut_off_and_a_broken_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let list = Changelist::new(dir.path(), &gun());
        list.add(target("a")).unwrap();
        let path = dir.path().join("tuf/example.com/app/tufa-changes.jsonl");
        // A writer that died mid-line.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"type\":\"add_tar").unwrap();
        assert_eq!(list.list().unwrap(), vec![target("a")]);
        list.add(target("b")).unwrap();
        assert_eq!(list.list().unwrap(), vec![target("a"), target("b")]);
        // A complete line that is not a change is an error that names the file and line.
        file.write_all(b"{\"type\":\"nonsense\"}\n").unwrap();
        let err = list.list().unwrap_err().to_string();
        assert!(
            err.contains("tufa-changes.jsonl") && err.contains("line 3"),
            "{err}"
        );
        list.clear().unwrap();
        assert!(list.list().unwrap().is_empty());
        assert!(!path.exists());
    }

    /// Lines as the tufa before typed changes wrote them (`serde_json::to_string` of each kind of
    /// change, captured from that code), and the same changes typed.
    const OLD_LINES: [&str; 10] = [
        r#"{"type":"init","root_key":"1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f","targets_key":"2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e","snapshot":"server"}"#,
        r#"{"type":"init","root_key":"1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f","targets_key":"2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e","snapshot":{"agent":"3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d"}}"#,
        r#"{"type":"add_target","role":"targets","name":"v1","length":3,"sha256":"abababababababababababababababababababababababababababababababab"}"#,
        r#"{"type":"add_target","role":"targets/releases","name":"file \"x\"\nline","length":1234,"sha256":"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd","sha512":"efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef","custom":{"a":null,"b":[1,2]}}"#,
        r#"{"type":"remove_target","role":"targets/ci","name":"v0"}"#,
        r#"{"type":"add_delegation","role":"targets/releases","keys":[{"keytype":"ecdsa","keyval":{"private":null,"public":"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEB4EOqXTOpXc+Y7iX83476aCeel/puXGkTRBlrCo6kxFjfkek+ZRkoP3ORKiOx9cDqRg8HQZVLZ4ta3YGlIHFdw=="}},{"keytype":"ecdsa-x509","keyval":{"private":null,"public":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkFRSURCQT09Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K"}}],"paths":["","app/"],"threshold":0}"#,
        r#"{"type":"add_delegation","role":"targets/ci","keys":[],"paths":["ci/"],"threshold":2}"#,
        r#"{"type":"remove_delegation_keys","role":"targets/releases","key_ids":["0ed24ae70e4177b0188e746eb50acb906bffb95b5882703982d5082492a106bf","4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c"]}"#,
        r#"{"type":"remove_delegation","role":"targets/alice"}"#,
        r#"{"type":"resign","role":"targets"}"#,
    ];

    /// The changes of [`OLD_LINES`], in order.
    fn old_changes() -> Vec<Change> {
        use p256::pkcs8::EncodePublicKey as _;
        let secret = p256::SecretKey::from_slice(&[5; 32]).unwrap();
        let key = PublicKey::ecdsa(secret.public_key().to_public_key_der().unwrap().into_vec());
        let cert = PublicKey::ecdsa_x509(crate::tuf::certificate_pem(&[1, 2, 3, 4]).into_bytes());
        let id = |b: u8| KeyId::from_bytes([b; 32]);
        let role = |r: &str| r.parse::<RoleName>().unwrap();
        vec![
            Change::Init {
                root_key: id(0x1f),
                targets_key: id(0x2e),
                snapshot: SnapshotKey::Server,
            },
            Change::Init {
                root_key: id(0x1f),
                targets_key: id(0x2e),
                snapshot: SnapshotKey::Agent(id(0x3d)),
            },
            Change::AddTarget {
                role: RoleName::TARGETS,
                name: "v1".into(),
                length: 3,
                sha256: Sha256Digest::from_bytes([0xab; 32]),
                sha512: None,
                custom: None,
            },
            Change::AddTarget {
                role: RoleName::RELEASES,
                name: "file \"x\"\nline".into(),
                length: 1234,
                sha256: Sha256Digest::from_bytes([0xcd; 32]),
                sha512: Some(Sha512Digest::from_bytes([0xef; 64])),
                custom: Some(serde_json::json!({"b": [1, 2], "a": null})),
            },
            Change::RemoveTarget {
                role: role("targets/ci"),
                name: "v0".into(),
            },
            Change::AddDelegation {
                role: RoleName::RELEASES,
                keys: vec![key.clone(), cert],
                paths: vec!["".into(), "app/".into()],
                threshold: 0,
            },
            Change::AddDelegation {
                role: role("targets/ci"),
                keys: vec![],
                paths: vec!["ci/".into()],
                threshold: 2,
            },
            Change::RemoveDelegationKeys {
                role: RoleName::RELEASES,
                key_ids: vec![key.id(), id(0x4c)],
            },
            Change::RemoveDelegation {
                role: role("targets/alice"),
            },
            Change::Resign {
                role: RoleName::TARGETS,
            },
        ]
    }

    #[test]
    fn a_changelist_written_by_the_old_code_loads_typed_and_writes_back_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("tuf/example.com/app");
        std::fs::create_dir_all(&base).unwrap();
        let file: String = OLD_LINES.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(base.join("tufa-changes.jsonl"), &file).unwrap();
        let list = Changelist::new(dir.path(), &gun());
        assert_eq!(list.list().unwrap(), old_changes());

        // Staged again by this code, the file is the same bytes.
        let again = tempfile::tempdir().unwrap();
        Changelist::new(again.path(), &gun())
            .add_all(old_changes())
            .unwrap();
        let written =
            std::fs::read_to_string(again.path().join("tuf/example.com/app/tufa-changes.jsonl"))
                .unwrap();
        assert_eq!(written, file);
    }

    #[test]
    fn an_old_changelist_json_array_loads_typed() {
        // The one-array `changelist.json` of tufa before JSON lines, from the old code.
        let legacy = r#"[{"type":"add_target","role":"targets","name":"v1","length":3,"sha256":"abababababababababababababababababababababababababababababababab"},{"type":"add_target","role":"targets/releases","name":"file \"x\"\nline","length":1234,"sha256":"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd","sha512":"efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef","custom":{"a":null,"b":[1,2]}},{"type":"remove_target","role":"targets/ci","name":"v0"}]"#;
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("tuf/example.com/app");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("changelist.json"), legacy).unwrap();
        let list = Changelist::new(dir.path(), &gun());
        assert_eq!(list.list().unwrap(), old_changes()[2..5].to_vec());
        assert_eq!(serde_json::to_string(&old_changes()[2..5]).unwrap(), legacy);
    }

    #[test]
    fn a_staged_removal_of_a_key_that_is_no_key_id_is_left_out() {
        // Earlier tufas staged what was typed; such an ID never matched a key.
        let line = r#"{"type":"remove_delegation_keys","role":"targets/releases","key_ids":["abc","4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c"]}"#;
        let change: Change = serde_json::from_str(line).unwrap();
        assert_eq!(
            change,
            Change::RemoveDelegationKeys {
                role: RoleName::RELEASES,
                key_ids: vec![KeyId::from_bytes([0x4c; 32])],
            }
        );
        // A digest that is not one is refused with the file and line, as before at publish.
        let bad = r#"{"type":"add_target","role":"targets","name":"v1","length":3,"sha256":"xyz"}"#;
        assert!(serde_json::from_str::<Change>(bad).is_err());
    }
}
