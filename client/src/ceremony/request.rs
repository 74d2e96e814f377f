//! The request file exchanged between the online and offline machines ([`RootRequest`]): its
//! JSON, the checks it must pass when read, and which signatures it has and lacks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::ceremony::error::CeremonyError;
use crate::repo::SnapshotKey;
use crate::tuf::{Envelope, Gun, InvalidGun, KeyId, PublicKey, RoleName, Root, RootRole, Signed};

/// The `format` member of every request file this version writes and reads.
pub const REQUEST_FORMAT: &str = "tufa-root-request/1";

/// A root waiting for signatures, as exchanged between the online and offline machines.
#[derive(Clone, Debug)]
pub struct RootRequest {
    /// The repository.
    pub gun: Gun,
    /// The root being replaced, exactly as the server serves it; `None` for a new repository.
    pub previous: Option<(Vec<u8>, Signed<Root>)>,
    /// The new root and the signatures collected so far.
    pub root: Signed<Root>,
    /// For a new repository: the online agent's targets key and the snapshot key.
    pub init: Option<InitPlan>,
}

/// How the online machine completes a new repository once its root is signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitPlan {
    /// The agent key that signs `targets`.
    #[serde(with = "crate::repo::serde_text")]
    pub targets_key: KeyId,
    /// Who signs snapshots.
    pub snapshot: SnapshotKey,
}

/// The request file as JSON.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestFile {
    format: String,
    gun: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_root_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_root: Option<String>,
    root: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    init: Option<InitPlan>,
}

/// Which keys a root needs and which have signed.
#[derive(Clone, Debug)]
pub struct Needed {
    /// What the set is: "previous root" or "new root".
    pub label: &'static str,
    /// Signatures needed.
    pub threshold: u32,
    /// Each key (TUF ID, canonical ID) and whether a valid signature by it is present.
    pub keys: Vec<(KeyId, KeyId, bool)>,
}

impl Needed {
    /// Valid signatures present.
    pub fn have(&self) -> usize {
        self.keys.iter().filter(|k| k.2).count()
    }

    /// Whether the threshold is met.
    pub fn met(&self) -> bool {
        self.have() >= self.threshold as usize
    }
}

impl RootRequest {
    /// Reads a request file and checks it hangs together: every signature present verifies,
    /// the certificates name the GUN, the version follows the previous root's.
    pub fn load(path: &Path) -> Result<Self, CeremonyError> {
        let bad = |detail: String| CeremonyError::BadRequest {
            path: path.display().to_string(),
            detail,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it ({e})")))?;
        let file: RequestFile = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("it is not a tufa root request ({e})")))?;
        if file.format != REQUEST_FORMAT {
            return Err(bad(format!(
                "its format is '{}', this tufa reads '{REQUEST_FORMAT}'",
                file.format
            )));
        }
        let gun: Gun = file
            .gun
            .parse()
            .map_err(|e: InvalidGun| bad(format!("its GUN: {e}")))?;
        let root_bytes = serde_json::to_vec(&file.root).map_err(|e| bad(e.to_string()))?;
        let envelope = Envelope::from_slice(&RoleName::ROOT, &root_bytes)
            .map_err(|e| bad(format!("its root: {e}")))?;
        let root: Signed<Root> = envelope
            .decode()
            .map_err(|e| bad(format!("its root: {e}")))?;
        // Signatures are checked over the body as parsed, as every reader will check them.
        if envelope.signed_bytes().map_err(|e| bad(e.to_string()))?
            != root.signed_bytes().map_err(|e| bad(e.to_string()))?
        {
            return Err(bad(
                "its root carries members Notary does not write: the file was changed".into(),
            ));
        }
        let previous = match (&file.previous_root, &file.previous_root_sha256) {
            (None, None) => None,
            (Some(b64), Some(sha)) => {
                let prev_bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| bad(format!("previous_root is not base64 ({e})")))?;
                if hex::encode(Sha256::digest(&prev_bytes)) != *sha {
                    return Err(bad(
                        "previous_root does not match previous_root_sha256: the file was changed"
                            .into(),
                    ));
                }
                let prev = Signed::<Root>::from_slice(&RoleName::ROOT, &prev_bytes)
                    .map_err(|e| bad(format!("previous_root: {e}")))?;
                Some((prev_bytes, prev))
            }
            _ => {
                return Err(bad(
                    "it has one of previous_root and previous_root_sha256 without the other: the file was changed".into(),
                ))
            }
        };
        let request = Self {
            gun,
            previous,
            root,
            init: file.init,
        };
        request.check(path)?;
        Ok(request)
    }

    /// Writes the request file (mode 0644: it holds nothing secret).
    pub fn save(&self, path: &Path) -> Result<(), CeremonyError> {
        let root_value: serde_json::Value = serde_json::from_slice(&self.root.to_bytes()?)
            .map_err(|e| CeremonyError::Write {
                path: path.display().to_string(),
                detail: e.to_string(),
            })?;
        let file = RequestFile {
            format: REQUEST_FORMAT.to_owned(),
            gun: self.gun.to_string(),
            previous_root_sha256: self
                .previous
                .as_ref()
                .map(|(b, _)| hex::encode(Sha256::digest(b))),
            previous_root: self
                .previous
                .as_ref()
                .map(|(b, _)| base64::engine::general_purpose::STANDARD.encode(b)),
            root: root_value,
            init: self.init.clone(),
        };
        let mut text = serde_json::to_vec_pretty(&file).map_err(|e| CeremonyError::Write {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        text.push(b'\n');
        // Written beside, then renamed: a failed write never leaves half a request.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                CeremonyError::Write {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                }
            })
    }

    /// The consistency checks of [`Self::load`].
    fn check(&self, path: &Path) -> Result<(), CeremonyError> {
        let bad = |detail: String| CeremonyError::BadRequest {
            path: path.display().to_string(),
            detail,
        };
        let now = OffsetDateTime::now_utc();
        for id in &self.root.signed.roles.root.keyids {
            let key = &self.root.signed.keys[id];
            crate::tuf::check_root_key(key, &self.gun, now)
                .map_err(|e| bad(format!("root key {}: {e}", id.short())))?;
        }
        match &self.previous {
            Some((_, prev)) => {
                if self.root.signed.version != prev.signed.version + 1 {
                    return Err(bad(format!(
                        "the new root is version {} but the root it replaces is version {}: the file was changed",
                        self.root.signed.version, prev.signed.version
                    )));
                }
            }
            None => {
                let Some(plan) = self.init.as_ref().filter(|_| self.root.signed.version == 1)
                else {
                    return Err(bad(
                        "a request without a previous root must be the version 1 root of a new repository (`tufa root init`)".into(),
                    ));
                };
                // The plan is not signed: it may only name the keys the signed root lists.
                let lists = |role: &RootRole, id: &KeyId| {
                    role.keyids.iter().any(|k| {
                        self.root.signed.keys[k]
                            .canonical_id()
                            .is_ok_and(|c| c == *id)
                    })
                };
                let roles = &self.root.signed.roles;
                let snapshot_ok = match &plan.snapshot {
                    SnapshotKey::Agent(id) => lists(&roles.snapshot, id),
                    SnapshotKey::Server => true,
                };
                if !lists(&roles.targets, &plan.targets_key) || !snapshot_ok {
                    return Err(bad(
                        "its init plan names keys the new root does not list: the file was changed"
                            .into(),
                    ));
                }
            }
        }
        let bytes = self.root.signed_bytes()?;
        let known = self.all_keys();
        for sig in &self.root.signatures {
            let key = known.get(&sig.key_id).ok_or_else(|| {
                bad(format!(
                    "it carries a signature by {}, which is not a root key of this request: the file was changed",
                    sig.key_id.short()
                ))
            })?;
            crate::tuf::verify_signature(key, &sig.method, &bytes, &sig.sig).map_err(|e| {
                bad(format!(
                    "the signature by {} does not verify ({e}): the file was changed after it was signed; make a new request",
                    sig.key_id.short()
                ))
            })?;
        }
        Ok(())
    }

    /// Every key whose signature counts: the previous and the new root keys, by TUF ID.
    pub(crate) fn all_keys(&self) -> BTreeMap<KeyId, PublicKey> {
        let mut out = BTreeMap::new();
        let mut add = |root: &Root| {
            for id in &root.roles.root.keyids {
                if let Some(k) = root.keys.get(id) {
                    out.insert(*id, k.clone());
                }
            }
        };
        if let Some((_, prev)) = &self.previous {
            add(&prev.signed);
        }
        add(&self.root.signed);
        out
    }

    /// The signature sets the root needs: the previous root's (for a rotation), then its own.
    pub fn status(&self) -> Vec<Needed> {
        let signed: BTreeSet<KeyId> = self.root.signatures.iter().map(|s| s.key_id).collect();
        let needed = |label, root: &Root| Needed {
            label,
            threshold: root.roles.root.threshold,
            keys: root
                .roles
                .root
                .keyids
                .iter()
                .map(|id| {
                    let canonical = root.keys[id].canonical_id().unwrap_or(*id);
                    (*id, canonical, signed.contains(id))
                })
                .collect(),
        };
        let mut out = Vec::new();
        if let Some((_, prev)) = &self.previous {
            out.push(needed("previous root", &prev.signed));
        }
        out.push(needed("new root", &self.root.signed));
        out
    }

    /// Whether every threshold is met.
    pub fn complete(&self) -> bool {
        self.status().iter().all(Needed::met)
    }

    /// Refuses unless the root meets every threshold, checked as Notary's client checks a new
    /// root (certificates, the previous root's threshold, its own).
    pub fn check_complete(&self) -> Result<(), CeremonyError> {
        let missing: Vec<String> = self
            .status()
            .iter()
            .filter(|n| !n.met())
            .map(|n| {
                format!(
                    "{} {} of {} (missing: {})",
                    n.label,
                    n.have(),
                    n.threshold,
                    n.keys
                        .iter()
                        .filter(|k| !k.2)
                        .map(|k| k.1.short().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        if !missing.is_empty() {
            return Err(CeremonyError::Unsigned {
                missing: missing.join("; "),
            });
        }
        let envelope = Envelope::from_slice(&RoleName::ROOT, &self.root.to_bytes()?)?;
        crate::tuf::validate_root(
            self.previous.as_ref().map(|(_, p)| &p.signed),
            &envelope,
            &self.gun,
            None,
            OffsetDateTime::now_utc(),
        )
        .map_err(|e| CeremonyError::Invalid {
            detail: e.to_string(),
        })?;
        Ok(())
    }

    /// One line per signature set (`new root: 1 of 2 signature(s) (unsigned keys: …)`), then
    /// whether it is ready to publish.
    pub fn summary(&self) -> String {
        let mut lines = Vec::new();
        for n in self.status() {
            let missing: Vec<String> = n
                .keys
                .iter()
                .filter(|k| !k.2)
                .map(|k| k.1.to_string())
                .collect();
            lines.push(format!(
                "{}: {} of {} signature(s){}",
                n.label,
                n.have(),
                n.threshold,
                if n.met() {
                    " (threshold met)".to_owned()
                } else {
                    format!(" (unsigned keys: {})", missing.join(", "))
                }
            ));
        }
        lines.push(if self.complete() {
            "Ready to publish: `tufa root publish`".to_owned()
        } else {
            "Not ready to publish".to_owned()
        });
        lines.join("\n")
    }
}
