//! Root ceremonies: a new root prepared online, signed offline one device at a time, published.
//!
//! The online and offline machines exchange a request file ([`RootRequest`]), never keys. It is
//! plain JSON holding the GUN, the root being replaced (its exact file, base64), and the new root
//! file with the signatures collected so far. Signatures are over the canonical new root, so any
//! change to it voids them. The new root is bound to its repository by its certificates (CN =
//! GUN) and by its version (the previous root's + 1), and publishing checks that the server's
//! root is still the one the request replaces, so a request cannot be replayed elsewhere.
//!
//! A root needs the threshold of the previous root's keys (a rotation) and the threshold of its
//! own keys, as Notary checks it; [`RootRequest::status`] says which are present and missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::agent::{AgentClient, SignContext};
use crate::repo::{
    self, AgentKeys, Prepared, Publisher, RepoError, RepoState, SnapshotKey, StateSource,
    ROLE_LIFETIME, ROOT_LIFETIME,
};
use crate::tuf::{
    Envelope, Expires, Gun, KeyId, PublicKey, RoleName, Root, RootRole, RootRoles, Signature,
    SignatureMethod, Signed, Targets, TufError,
};

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

/// What a changed root changes, for `tufa root rotate` and key rotation.
#[derive(Clone, Debug, Default)]
pub struct RootPlan {
    /// New root keys (certificates) and threshold.
    pub root_keys: Option<(Vec<PublicKey>, u32)>,
    /// A new targets key.
    pub targets_key: Option<PublicKey>,
    /// A new snapshot key (the agent's, or the server's).
    pub snapshot_key: Option<PublicKey>,
    /// A new timestamp key from the server.
    pub timestamp_key: Option<PublicKey>,
}

impl RootPlan {
    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.root_keys.is_none()
            && self.targets_key.is_none()
            && self.snapshot_key.is_none()
            && self.timestamp_key.is_none()
    }
}

impl RootRequest {
    /// A request to replace `previous` (the server's current root file) following `plan`.
    pub fn rotation(
        gun: &Gun,
        previous_bytes: Vec<u8>,
        previous: Signed<Root>,
        plan: &RootPlan,
        now: OffsetDateTime,
    ) -> Result<Self, CeremonyError> {
        let old = &previous.signed;
        let mut root = old.clone();
        root.version = old.version + 1;
        root.expires = Expires::new(now + ROOT_LIFETIME)?;
        if let Some((keys, threshold)) = &plan.root_keys {
            check_threshold(keys.len(), *threshold)?;
            for k in keys {
                root.keys.insert(k.id(), k.clone());
            }
            root.roles.root = RootRole {
                keyids: keys.iter().map(PublicKey::id).collect(),
                threshold: *threshold,
            };
        }
        for (key, role) in [
            (&plan.targets_key, &mut root.roles.targets),
            (&plan.snapshot_key, &mut root.roles.snapshot),
            (&plan.timestamp_key, &mut root.roles.timestamp),
        ] {
            if let Some(k) = key {
                root.keys.insert(k.id(), k.clone());
                *role = RootRole::single(k.id());
            }
        }
        // As Notary: keys no role uses go, except earlier root certificates, which stay.
        let old_root_keys: BTreeSet<KeyId> = old.roles.root.keyids.iter().copied().collect();
        let used = used_keys(&root.roles);
        root.keys.retain(|id, k| {
            used.contains(id) || (old_root_keys.contains(id) && k.key_type().is_x509())
        });
        Ok(Self {
            gun: gun.clone(),
            previous: Some((previous_bytes, previous)),
            root: Signed::new(root),
            init: None,
        })
    }

    /// A request for the first root of a new repository.
    pub fn init(
        gun: &Gun,
        root_keys: &[PublicKey],
        threshold: u32,
        targets_key: (&PublicKey, KeyId),
        snapshot: (PublicKey, SnapshotKey),
        timestamp_key: &PublicKey,
        now: OffsetDateTime,
    ) -> Result<Self, CeremonyError> {
        check_threshold(root_keys.len(), threshold)?;
        let mut keys = BTreeMap::new();
        for k in root_keys
            .iter()
            .chain([targets_key.0, &snapshot.0, timestamp_key])
        {
            keys.insert(k.id(), k.clone());
        }
        let root = Root {
            version: 1,
            expires: Expires::new(now + ROOT_LIFETIME)?,
            consistent_snapshot: false,
            keys,
            roles: RootRoles {
                root: RootRole {
                    keyids: root_keys.iter().map(PublicKey::id).collect(),
                    threshold,
                },
                targets: RootRole::single(targets_key.0.id()),
                snapshot: RootRole::single(snapshot.0.id()),
                timestamp: RootRole::single(timestamp_key.id()),
            },
        };
        Ok(Self {
            gun: gun.clone(),
            previous: None,
            root: Signed::new(root),
            init: Some(InitPlan {
                targets_key: targets_key.1,
                snapshot: snapshot.1,
            }),
        })
    }

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
            .map_err(|e: TufError| bad(format!("its GUN: {e}")))?;
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
    fn all_keys(&self) -> BTreeMap<KeyId, PublicKey> {
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

    /// Signs with the agent: with `only` (an agent key reference) or else with every agent key
    /// the request still needs whose device is present (an offline machine has one YubiKey
    /// plugged in at a time).
    pub async fn sign(
        &mut self,
        agent: &AgentClient,
        only: Option<&str>,
    ) -> Result<SignReport, CeremonyError> {
        let held = AgentKeys::load(agent).await?;
        let signed: BTreeSet<KeyId> = self.root.signatures.iter().map(|s| s.key_id).collect();
        let wanted = self.all_keys();
        let only_id = match only {
            Some(r) => Some(agent.key(r).await?.id),
            None => None,
        };
        let mut todo = Vec::new();
        for (id, key) in &wanted {
            let Some(agent_key) = held.for_key(key) else {
                continue;
            };
            if only_id.is_some_and(|o| o != agent_key.id) {
                continue;
            }
            todo.push((*id, key.clone(), agent_key.clone()));
        }
        let needed: Vec<String> = wanted
            .iter()
            .filter(|(id, _)| !signed.contains(id))
            .map(|(_, k)| k.canonical_id().map(|c| c.to_string()).unwrap_or_default())
            .collect();
        if todo.is_empty() {
            return Err(match only {
                Some(r) => CeremonyError::NotARootKey {
                    key: r.to_owned(),
                    needed: needed.join(", "),
                },
                None => CeremonyError::NoKeyHere {
                    needed: needed.join(", "),
                },
            });
        }
        let bytes = self.root.signed_bytes()?;
        let context = SignContext::new(&self.gun, &RoleName::ROOT);
        let mut added = Vec::new();
        let mut absent = Vec::new();
        for (id, key, agent_key) in todo {
            if signed.contains(&id) {
                if only.is_some() {
                    return Err(CeremonyError::AlreadySigned {
                        key: agent_key.id.to_string(),
                    });
                }
                continue;
            }
            let sig = match agent.sign(&agent_key, &bytes, &context).await {
                Ok(sig) => sig,
                // Without --key, a device that is not plugged in is for another time.
                Err(e) if only.is_none() && e.code() == Some(tonic::Code::Unavailable) => {
                    absent.push(Absent {
                        key: id,
                        detail: e.to_string(),
                    });
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            crate::tuf::verify_signature(&key, &SignatureMethod::Ecdsa, &bytes, sig.as_bytes())?;
            self.root.signatures.push(Signature {
                key_id: id,
                method: SignatureMethod::Ecdsa,
                sig: sig.to_vec(),
            });
            added.push(id);
        }
        if added.is_empty() {
            if !absent.is_empty() {
                return Err(CeremonyError::DevicesAbsent {
                    detail: absent
                        .iter()
                        .map(|a| a.detail.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                });
            }
            return Err(CeremonyError::NothingToSign);
        }
        Ok(SignReport { added, absent })
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
}

/// Publishes a complete request: the new root, plus what it implies (targets re-signed with a
/// new targets key, a snapshot when the agent holds the snapshot key; for a new repository,
/// its first targets). Refuses if the server's root is no longer the one the request replaces.
pub async fn publish<P: Publisher>(
    agent: &AgentClient,
    server: &P,
    request: &RootRequest,
    mut source: impl StateSource,
    now: OffsetDateTime,
) -> Result<Vec<RoleName>, CeremonyError> {
    request.check_complete()?;
    let gun = &request.gun;
    let held = AgentKeys::load(agent).await?;
    // A snapshot key the request changed came from the agent or a POST to the server.
    let snapshot_unchanged = request
        .previous
        .as_ref()
        .is_some_and(|(_, p)| p.signed.roles.snapshot == request.root.signed.roles.snapshot);
    let prepared = repo::publish_with_retry(server, &held, gun, &mut source, async |current| {
        let (mut state, dirty) = request.apply_to(current, &held, now)?;
        if snapshot_unchanged {
            repo::check_snapshot_signer(&held, server, gun, &state)
                .await
                .map_err(|e| match e {
                    RepoError::NoSnapshotSigner { .. } => CeremonyError::NoSnapshotSigner,
                    e => e.into(),
                })?;
        }
        let files = repo::sign_changes(agent, &held, gun, &mut state, &dirty, true, now).await?;
        Ok::<_, CeremonyError>(Prepared {
            files,
            state,
            created: request.previous.is_none(),
        })
    })
    .await?;
    Ok(prepared.files.into_iter().map(|(r, _)| r).collect())
}

impl RootRequest {
    /// The repository with this request's root in place of `current`'s, and the roles that
    /// must be signed with it; refuses a `current` this request does not replace.
    fn apply_to(
        &self,
        current: Option<RepoState>,
        held: &AgentKeys,
        now: OffsetDateTime,
    ) -> Result<(RepoState, BTreeSet<RoleName>), CeremonyError> {
        let gun = &self.gun;
        match (&self.previous, current) {
            (None, None) => {
                let plan = self.init.as_ref().ok_or(CeremonyError::Invalid {
                    detail: "a first root without its init plan".into(),
                })?;
                let agent_snapshot = match &plan.snapshot {
                    SnapshotKey::Agent(id) => Some(id),
                    SnapshotKey::Server => None,
                };
                for id in std::iter::once(&plan.targets_key).chain(agent_snapshot) {
                    if held.by_id(id).is_none() {
                        return Err(RepoError::KeyGone { key: *id }.into());
                    }
                }
                let targets = Signed::new(Targets::new(0, Expires::new(now + ROLE_LIFETIME)?));
                let state = RepoState {
                    root: self.root.clone(),
                    snapshot: None,
                    targets: BTreeMap::from([(RoleName::TARGETS, targets)]),
                };
                Ok((state, BTreeSet::from([RoleName::TARGETS])))
            }
            (None, Some(_)) => Err(CeremonyError::Exists { gun: gun.clone() }),
            (Some(_), None) => Err(RepoError::NotInitialised { gun: gun.clone() }.into()),
            (Some((_, prev)), Some(mut state)) => {
                if state.root.signatures != prev.signatures || state.root.signed != prev.signed {
                    return Err(CeremonyError::Stale {
                        gun: gun.clone(),
                        theirs: state.root.signed.version,
                        ours: prev.signed.version,
                    });
                }
                let mut dirty = BTreeSet::new();
                // A new targets key must sign targets at once: the old signature no longer counts.
                if state.root.signed.roles.targets != self.root.signed.roles.targets {
                    dirty.insert(RoleName::TARGETS);
                }
                state.root = self.root.clone();
                Ok((state, dirty))
            }
        }
    }
}

fn check_threshold(keys: usize, threshold: u32) -> Result<(), CeremonyError> {
    if threshold == 0 || threshold as usize > keys {
        return Err(CeremonyError::Threshold { keys, threshold });
    }
    Ok(())
}

fn used_keys(roles: &RootRoles) -> BTreeSet<KeyId> {
    [
        &roles.root,
        &roles.targets,
        &roles.snapshot,
        &roles.timestamp,
    ]
    .into_iter()
    .flat_map(|r| r.keyids.iter().copied())
    .collect()
}

/// What `sign` did.
#[derive(Debug)]
pub struct SignReport {
    /// The keys that signed (TUF IDs).
    pub added: Vec<KeyId>,
    /// Keys skipped because their device is not plugged in.
    pub absent: Vec<Absent>,
}

/// A key whose device was absent.
#[derive(Debug)]
pub struct Absent {
    /// Its TUF ID.
    pub key: KeyId,
    /// The agent's words.
    pub detail: String,
}

/// Why a ceremony step failed; nothing was published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CeremonyError {
    /// The request file is unusable.
    #[error("root request {path}: {detail}")]
    BadRequest {
        /// The file.
        path: String,
        /// What is wrong, and what to do.
        detail: String,
    },
    /// The request file could not be written.
    #[error("cannot write the root request {path}: {detail}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// A threshold that the keys cannot meet.
    #[error("a threshold of {threshold} with {keys} root key(s) cannot work: give 1 to {keys} (--threshold), or more --key")]
    Threshold {
        /// Keys given.
        keys: usize,
        /// Threshold asked.
        threshold: u32,
    },
    /// Signatures are missing.
    #[error("the new root is not signed enough yet: {missing}; sign it where those keys are (`tufa root sign REQ.json`), then publish again")]
    Unsigned {
        /// Which thresholds are short, and by which keys.
        missing: String,
    },
    /// The signed root would not pass a Notary client's checks.
    #[error("the new root would be refused by readers: {detail}")]
    Invalid {
        /// Why.
        detail: String,
    },
    /// `--key` names an agent key the request does not need.
    #[error("agent key {key} is not a root key this request needs; it needs: {needed}")]
    NotARootKey {
        /// The reference given.
        key: String,
        /// Canonical IDs still needed.
        needed: String,
    },
    /// The agent holds none of the needed keys.
    #[error("this agent holds none of the root keys the request needs ({needed}): sign on the machine whose agent holds them (`tufa --agent SOCKET root sign`)")]
    NoKeyHere {
        /// Canonical IDs still needed.
        needed: String,
    },
    /// The key has signed already.
    #[error("key {key} has already signed this request: sign with another root key")]
    AlreadySigned {
        /// The key ID.
        key: String,
    },
    /// Every device holding a key the request needs is absent.
    #[error("no device holding a root key this request needs is plugged in ({detail}); nothing was signed")]
    DevicesAbsent {
        /// The agent's words for each absent device.
        detail: String,
    },
    /// Every key the agent holds has signed already.
    #[error("every root key this agent holds has already signed this request: sign with the other devices, or publish")]
    NothingToSign,
    /// The server's root moved on since the request was made.
    #[error("the root of {gun} on the server is version {theirs}, but the request replaces version {ours}: make a new request from the current root (`tufa root rotate`)")]
    Stale {
        /// The repository.
        gun: Gun,
        /// The server's version.
        theirs: u64,
        /// The version the request replaces.
        ours: u64,
    },
    /// An init request for a repository that exists.
    #[error("{gun} already exists on the server: rotate its root with `tufa root rotate` instead of init")]
    Exists {
        /// The repository.
        gun: Gun,
    },
    /// Nobody could sign the new root's snapshots.
    #[error("the new root's snapshot key is neither in this agent nor on the server: publish from where the snapshot key is, or rotate it to the server (`tufa root rotate GUN --server-managed-snapshot`)")]
    NoSnapshotSigner,
    /// A repository operation failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// Metadata could not be built or checked.
    #[error(transparent)]
    Tuf(#[from] TufError),
    /// The agent failed.
    #[error(transparent)]
    Agent(#[from] crate::agent::AgentClientError),
    /// A root certificate could not be made.
    #[error(transparent)]
    Certificate(#[from] crate::tuf::CertificateError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> PublicKey {
        use p256::pkcs8::EncodePublicKey as _;
        let secret = p256::SecretKey::from_slice(&[seed; 32]).unwrap();
        PublicKey::ecdsa(secret.public_key().to_public_key_der().unwrap().into_vec())
    }

    fn root_of(root: &PublicKey, others: [&PublicKey; 3]) -> Root {
        let mut keys = BTreeMap::from([(root.id(), root.clone())]);
        for k in others {
            keys.insert(k.id(), k.clone());
        }
        Root {
            version: 3,
            expires: Expires::new(OffsetDateTime::now_utc() + ROOT_LIFETIME).unwrap(),
            consistent_snapshot: false,
            keys,
            roles: RootRoles {
                root: RootRole::single(root.id()),
                targets: RootRole::single(others[0].id()),
                snapshot: RootRole::single(others[1].id()),
                timestamp: RootRole::single(others[2].id()),
            },
        }
    }

    #[test]
    fn a_rotation_bumps_the_version_swaps_keys_and_prunes_what_no_role_uses() {
        let (old_root, targets, snapshot, timestamp) = (key(1), key(2), key(3), key(4));
        let previous = Signed::new(root_of(&old_root, [&targets, &snapshot, &timestamp]));
        let new_targets = key(5);
        let plan = RootPlan {
            root_keys: Some((vec![key(6), key(7), key(8)], 2)),
            targets_key: Some(new_targets.clone()),
            ..RootPlan::default()
        };
        let gun: Gun = "example.com/app".parse().unwrap();
        let now = OffsetDateTime::now_utc();
        let request = RootRequest::rotation(&gun, b"old".to_vec(), previous, &plan, now).unwrap();
        let root = &request.root.signed;
        assert_eq!(root.version, 4);
        assert_eq!(root.roles.root.threshold, 2);
        assert_eq!(root.roles.root.keyids.len(), 3);
        assert_eq!(root.roles.targets, RootRole::single(new_targets.id()));
        assert_eq!(root.roles.snapshot, RootRole::single(snapshot.id()));
        // The old targets key goes; the old root key is not x509 here, so it goes too.
        assert!(!root.keys.contains_key(&targets.id()));
        assert!(!root.keys.contains_key(&old_root.id()));
        assert!(root.keys.contains_key(&timestamp.id()));
        // Needs the previous root's 1 of 1 and the new root's 2 of 3; nothing signed yet.
        let status = request.status();
        assert_eq!(status.len(), 2);
        assert_eq!((status[0].threshold, status[0].have()), (1, 0));
        assert_eq!((status[1].threshold, status[1].keys.len()), (2, 3));
        assert!(!request.complete());
    }

    #[test]
    fn thresholds_outside_one_to_the_number_of_keys_are_refused() {
        let k = key(1);
        let previous = Signed::new(root_of(&k, [&key(2), &key(3), &key(4)]));
        let gun: Gun = "example.com/app".parse().unwrap();
        for t in [0, 3] {
            let plan = RootPlan {
                root_keys: Some((vec![key(6), key(7)], t)),
                ..RootPlan::default()
            };
            let err = RootRequest::rotation(
                &gun,
                Vec::new(),
                previous.clone(),
                &plan,
                OffsetDateTime::now_utc(),
            )
            .unwrap_err();
            assert!(err.to_string().contains("--threshold"), "{err}");
        }
    }
}
