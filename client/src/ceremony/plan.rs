//! What a new root changes: [`RootPlan`] (new keys and threshold) and the requests made from
//! it, for a rotation ([`RootRequest::rotation`]) or a new repository ([`RootRequest::init`]);
//! and [`Rotation`], a rotation as the user names it, resolved into a plan.
//!
//! Root keys are named by reference: a certificate file made on the machine whose agent holds
//! the key (`tufa root cert`), or a key of this machine's agent, which then makes the certificate
//! itself (CN = GUN, 10 years).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use time::OffsetDateTime;

use crate::agent::{AgentClient, LazyAgent, SignContext};
use crate::ceremony::error::CeremonyError;
use crate::ceremony::request::{InitPlan, RootRequest};
use crate::notary::NotaryRepo;
use crate::repo::{self, SnapshotKey, ROOT_LIFETIME};
use crate::tuf::{
    self, Expires, Gun, KeyId, PublicKey, RoleName, Root, RootRole, RootRoles, Signed, TrustCache,
    UpdateOptions,
};

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
        root.expires = Expires::new(now + ROOT_LIFETIME).map_err(tuf::TufError::from)?;
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
            expires: Expires::new(now + ROOT_LIFETIME).map_err(tuf::TufError::from)?,
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

/// A rotation as the user names it (`tufa root rotate`, `tufa notary key rotate`).
#[derive(Clone, Debug, Default)]
pub struct Rotation {
    /// New root keys: certificate files from `tufa root cert`, or keys of this agent.
    pub root_keys: Vec<String>,
    /// Signatures the new root keys need; required with more than one.
    pub threshold: Option<u32>,
    /// A new targets key in this agent.
    pub targets_key: Option<String>,
    /// A new snapshot key in this agent.
    pub snapshot_key: Option<String>,
    /// A new snapshot key made by the server, which then signs every snapshot.
    pub server_snapshot: bool,
    /// A new timestamp key made by the server.
    pub server_timestamp: bool,
    /// Only a renewal: version + 1 and ten more years, keys unchanged.
    pub renew: bool,
}

impl Rotation {
    /// The request this rotation makes of `gun`'s current root, read verified from `remote`
    /// (and cached, whose exact root file the request replaces).
    pub async fn request(
        &self,
        agent: &LazyAgent,
        remote: &NotaryRepo,
        cache: &TrustCache,
        gun: &Gun,
        options: &UpdateOptions,
        now: OffsetDateTime,
    ) -> Result<RootRequest, CeremonyError> {
        let state = repo::load_state(remote, cache, gun, options)
            .await?
            .ok_or_else(|| CeremonyError::NoRepository { gun: gun.clone() })?;
        let previous_bytes = cache
            .load(gun, &RoleName::ROOT)?
            .ok_or_else(|| CeremonyError::CacheVanished { gun: gun.clone() })?;
        let plan = RootPlan::build(self, agent, remote, gun, now).await?;
        RootRequest::rotation(gun, previous_bytes, state.root, &plan, now)
    }
}

impl RootPlan {
    /// Resolves `rotation`: agent keys through the agent (connected only if one is named),
    /// certificate files read and checked, and the server's new keys made last, since each one
    /// the server makes stays unused if the rotation stops here.
    pub async fn build(
        rotation: &Rotation,
        agent: &LazyAgent,
        remote: &NotaryRepo,
        gun: &Gun,
        now: OffsetDateTime,
    ) -> Result<Self, CeremonyError> {
        let mut plan = RootPlan::default();
        if !rotation.root_keys.is_empty() {
            let keys = root_keys(agent.get().await?, gun, &rotation.root_keys, now).await?;
            let threshold = root_threshold(rotation.threshold, keys.len())?;
            plan.root_keys = Some((keys, threshold));
        }
        if let Some(r) = &rotation.targets_key {
            plan.targets_key = Some(agent.get().await?.key(r).await?.public);
        }
        if let Some(r) = &rotation.snapshot_key {
            plan.snapshot_key = Some(agent.get().await?.key(r).await?.public);
        }
        if plan.is_empty()
            && !rotation.server_snapshot
            && !rotation.server_timestamp
            && !rotation.renew
        {
            return Err(CeremonyError::NothingToRotate);
        }
        if rotation.server_snapshot {
            plan.snapshot_key = Some(server_key(remote, &RoleName::SNAPSHOT, true).await?);
        }
        if rotation.server_timestamp {
            plan.timestamp_key = Some(server_key(remote, &RoleName::TIMESTAMP, true).await?);
        }
        Ok(plan)
    }
}

/// The TUF root keys for root key references: certificate files, or agent keys certified now.
pub async fn root_keys(
    agent: &AgentClient,
    gun: &Gun,
    refs: &[String],
    now: OffsetDateTime,
) -> Result<Vec<PublicKey>, CeremonyError> {
    let mut keys: Vec<PublicKey> = Vec::new();
    for r in refs {
        let path = Path::new(r);
        let key = if path.is_file() {
            certificate_file(path, gun, now)?
        } else {
            let agent_key = agent
                .key(r)
                .await
                .map_err(|source| CeremonyError::UnknownRootKey {
                    key: r.clone(),
                    source,
                })?;
            let signer = agent.signer(&agent_key, SignContext::new(gun, &RoleName::ROOT));
            tuf::root_certificate_key(&signer, gun, now).await?
        };
        let canonical = key.canonical_id()?;
        if keys
            .iter()
            .any(|k| k.canonical_id().ok() == Some(canonical))
        {
            return Err(CeremonyError::DuplicateRootKey {
                key: r.clone(),
                id: canonical,
            });
        }
        keys.push(key);
    }
    Ok(keys)
}

/// The root key in a certificate file from `tufa root cert`, checked as a root key of `gun`.
fn certificate_file(
    path: &Path,
    gun: &Gun,
    now: OffsetDateTime,
) -> Result<PublicKey, CeremonyError> {
    let bad = |message: String| CeremonyError::CertificateFile {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read(path).map_err(|e| bad(format!("cannot read the certificate: {e}")))?;
    let block = std::str::from_utf8(&text)
        .ok()
        .and_then(|t| pem::parse(t).ok())
        .filter(|b| b.tag() == "CERTIFICATE")
        .ok_or_else(|| {
            bad("not a PEM CERTIFICATE: make one with `tufa root cert GUN --key KEY --out FILE` where the key is".into())
        })?;
    let key = tuf::x509_public_key(block.contents())
        .map_err(|e| bad(format!("cannot be a root key of {gun}: {e}")))?;
    tuf::check_root_key(&key, gun, now).map_err(|e| {
        bad(format!(
            "cannot be a root key of {gun}: {e}; make it with `tufa root cert {gun} --key KEY --out FILE`"
        ))
    })?;
    Ok(key)
}

/// The root threshold: as given, else 1 for a single key (several keys need it said).
pub fn root_threshold(given: Option<u32>, keys: usize) -> Result<u32, CeremonyError> {
    match given {
        Some(t) => Ok(t),
        None if keys == 1 => Ok(1),
        None => Err(CeremonyError::NoThreshold { keys }),
    }
}

/// The server's `role` key; with `new`, one it makes now.
pub async fn server_key(
    remote: &NotaryRepo,
    role: &RoleName,
    new: bool,
) -> Result<PublicKey, CeremonyError> {
    let result = if new {
        remote.rotate_server_key(role).await
    } else {
        remote.server_key(role).await
    };
    result.map_err(|e| CeremonyError::ServerKey {
        role: role.clone(),
        source: Box::new(e),
    })
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
