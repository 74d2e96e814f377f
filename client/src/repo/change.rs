//! The staged-change model: [`Change`], typed, and [`apply`], which makes the changes in a
//! [`RepoState`].
//!
//! A change is parsed once, where it comes in (the command line, a changelist line), so `apply`
//! only applies. On disk every field is the string or key object it always was: the serde form
//! of [`Change`] is the changelist's JSON, byte for byte as earlier tufas wrote it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::repo::error::RepoError;
use crate::repo::state::RepoState;
use crate::tuf::{
    Delegation, FileMeta, KeyId, PublicKey, RoleName, Sha256Digest, Sha512Digest, Signed, Targets,
};

/// Which key signs the snapshot of a new repository.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKey {
    /// The server holds it and makes every snapshot.
    Server,
    /// The agent holds it.
    Agent(#[serde(with = "text")] KeyId),
}

/// One staged change.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    /// Create the repository with these agent keys.
    Init {
        /// The root key.
        #[serde(with = "text")]
        root_key: KeyId,
        /// The targets ("repository") key.
        #[serde(with = "text")]
        targets_key: KeyId,
        /// The snapshot key.
        snapshot: SnapshotKey,
    },
    /// Add or replace a target in a role.
    AddTarget {
        /// The role.
        #[serde(with = "text")]
        role: RoleName,
        /// Target name (a tag, a file name).
        name: String,
        /// Length in bytes.
        length: u64,
        /// SHA-256 (hex on disk).
        #[serde(with = "text")]
        sha256: Sha256Digest,
        /// SHA-512 (hex on disk), when known (`notary add` records both).
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "optional_text"
        )]
        sha512: Option<Sha512Digest>,
        /// Custom data, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        custom: Option<serde_json::Value>,
    },
    /// Remove a target from a role.
    RemoveTarget {
        /// The role.
        #[serde(with = "text")]
        role: RoleName,
        /// Target name.
        name: String,
    },
    /// Create a delegation, or add keys and paths to it.
    AddDelegation {
        /// The delegated role, `targets/...`.
        #[serde(with = "text")]
        role: RoleName,
        /// Its public keys (TUF key objects on disk).
        #[serde(with = "key_objects")]
        keys: Vec<PublicKey>,
        /// Path prefixes it may sign ("" for all).
        paths: Vec<String>,
        /// Signatures needed; 0 keeps the current threshold (1 for a new role).
        threshold: u32,
    },
    /// Remove keys from a delegation.
    RemoveDelegationKeys {
        /// The delegated role.
        #[serde(with = "text")]
        role: RoleName,
        /// TUF key IDs to remove.
        #[serde(with = "key_ids")]
        key_ids: Vec<KeyId>,
    },
    /// Remove a delegation entirely.
    RemoveDelegation {
        /// The delegated role.
        #[serde(with = "text")]
        role: RoleName,
    },
    /// Re-sign a targets role as it is (version + 1, fresh expiry): renewal, or after one of
    /// its keys was removed.
    Resign {
        /// The role.
        #[serde(with = "text")]
        role: RoleName,
    },
}

/// Applies changes to the targets roles; returns the roles they touched.
pub fn apply(state: &mut RepoState, changes: &[Change]) -> Result<BTreeSet<RoleName>, RepoError> {
    let mut dirty = BTreeSet::new();
    for change in changes {
        match change {
            Change::Init { .. } => {}
            Change::AddTarget {
                role,
                name,
                length,
                sha256,
                sha512,
                custom,
            } => {
                check_path_allowed(state, role, name)?;
                let mut meta = FileMeta::of_target(*length, *sha256);
                meta.hashes.sha512 = *sha512;
                meta.custom = custom.clone();
                role_mut(state, role)?.targets.insert(name.clone(), meta);
                dirty.insert(role.clone());
            }
            Change::RemoveTarget { role, name } => {
                role_mut(state, role)?.targets.remove(name);
                dirty.insert(role.clone());
            }
            Change::AddDelegation {
                role,
                keys,
                paths,
                threshold,
            } => {
                let parent = delegation_parent(role)?;
                add_delegation(role_mut(state, &parent)?, role, keys, paths, *threshold);
                dirty.insert(parent);
            }
            Change::RemoveDelegationKeys { role, key_ids } => {
                let parent = delegation_parent(role)?;
                let parent_role = role_mut(state, &parent)?;
                if let Some(entry) = parent_role
                    .delegations
                    .roles
                    .iter_mut()
                    .find(|d| d.name == *role)
                {
                    entry.keyids.retain(|id| !key_ids.contains(id));
                }
                prune_unused_keys(parent_role);
                dirty.insert(parent);
            }
            Change::Resign { role } => {
                role_mut(state, role)?;
                dirty.insert(role.clone());
            }
            Change::RemoveDelegation { role } => {
                let parent = delegation_parent(role)?;
                let parent_role = role_mut(state, &parent)?;
                parent_role.delegations.roles.retain(|d| d.name != *role);
                prune_unused_keys(parent_role);
                state.targets.retain(|name, _| name != role);
                dirty.insert(parent);
            }
        }
    }
    Ok(dirty)
}

/// Adds `role` to `parent`'s delegations (or `keys` and `paths` to it, if it is there).
fn add_delegation(
    parent: &mut Targets,
    role: &RoleName,
    keys: &[PublicKey],
    paths: &[String],
    threshold: u32,
) {
    for k in keys {
        parent.delegations.keys.insert(k.id(), k.clone());
    }
    let roles = &mut parent.delegations.roles;
    let i = match roles.iter().position(|d| d.name == *role) {
        Some(i) => i,
        None => {
            roles.push(Delegation {
                name: role.clone(),
                keyids: Vec::new(),
                threshold: 1,
                paths: Vec::new(),
            });
            roles.len() - 1
        }
    };
    let entry = &mut roles[i];
    for k in keys {
        if !entry.keyids.contains(&k.id()) {
            entry.keyids.push(k.id());
        }
    }
    for p in paths {
        if !entry.paths.contains(p) {
            entry.paths.push(p.clone());
        }
    }
    if threshold > 0 {
        entry.threshold = threshold;
    }
}

/// The targets body of `role`, creating an empty delegated role that its parent lists.
fn role_mut<'a>(state: &'a mut RepoState, role: &RoleName) -> Result<&'a mut Targets, RepoError> {
    if !state.targets.contains_key(role) {
        let listed = role.is_delegation()
            && delegation_parent(role)
                .ok()
                .and_then(|p| state.targets.get(&p))
                .is_some_and(|p| p.signed.delegation(role).is_some());
        if !listed {
            return Err(RepoError::NoSuchRole { role: role.clone() });
        }
        // A delegation that has never been published starts at version 0.
        let expires = state.root.signed.expires;
        state
            .targets
            .insert(role.clone(), Signed::new(Targets::new(0, expires)));
    }
    Ok(&mut state
        .targets
        .get_mut(role)
        .ok_or_else(|| RepoError::NoSuchRole { role: role.clone() })?
        .signed)
}

/// The role that delegates to `role`; an error for a base role.
pub(crate) fn delegation_parent(role: &RoleName) -> Result<RoleName, RepoError> {
    role.parent()
        .ok_or_else(|| RepoError::NotADelegation { role: role.clone() })
}

fn check_path_allowed(state: &RepoState, role: &RoleName, name: &str) -> Result<(), RepoError> {
    if !role.is_delegation() {
        return Ok(());
    }
    let Some(parent) = role.parent().and_then(|p| state.targets.get(&p)) else {
        return Ok(());
    };
    if let Some(d) = parent.signed.delegation(role) {
        if !d.paths.iter().any(|p| name.starts_with(p.as_str())) {
            return Err(RepoError::PathNotDelegated {
                role: role.clone(),
                target: name.to_owned(),
                paths: d.paths.clone(),
            });
        }
    }
    Ok(())
}

fn prune_unused_keys(t: &mut Targets) {
    let used: BTreeSet<KeyId> = t
        .delegations
        .roles
        .iter()
        .flat_map(|d| d.keyids.iter().copied())
        .collect();
    t.delegations.keys.retain(|id, _| used.contains(id));
}

/// `#[serde(with = "text")]`: a value as the string its `Display` writes and `FromStr` reads.
pub(crate) mod text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{de, Deserialize as _, Deserializer, Serializer};

    /// Writes `value` as its text.
    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    /// Reads a value from its text.
    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr<Err: Display>,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// As [`text`], for a member that may be absent.
mod optional_text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{de, Deserialize as _, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(
        value: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => super::text::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr<Err: Display>,
        D: Deserializer<'de>,
    {
        Option::<String>::deserialize(d)?
            .map(|text| text.parse().map_err(de::Error::custom))
            .transpose()
    }
}

/// Key IDs to remove, as text. Earlier tufas staged whatever was typed: an entry that is not a
/// key ID matched no key then, so it is left out (with a warning) rather than refused now.
mod key_ids {
    use serde::{Deserialize as _, Deserializer, Serializer};

    use crate::tuf::KeyId;

    pub fn serialize<S: Serializer>(ids: &[KeyId], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ids.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<KeyId>, D::Error> {
        Ok(Vec::<String>::deserialize(d)?
            .into_iter()
            .filter_map(|text| match text.parse() {
                Ok(id) => Some(id),
                Err(e) => {
                    tracing::warn!(key = %text, "a staged key removal names no key: {e}");
                    None
                }
            })
            .collect())
    }
}

/// Public keys as the TUF key objects Notary writes (`{"keytype":…,"keyval":{…}}`).
mod key_objects {
    use serde::{de, Deserialize as _, Deserializer, Serialize as _, Serializer};

    use crate::tuf::{PublicKey, RoleName, TufError};

    pub fn serialize<S: Serializer>(keys: &[PublicKey], s: S) -> Result<S::Ok, S::Error> {
        let values: Vec<serde_json::Value> = keys.iter().map(PublicKey::to_value).collect();
        values.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PublicKey>, D::Error> {
        let values = Vec::<serde_json::Value>::deserialize(d)?;
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                // The role only names where the key was found; the path says it better here.
                PublicKey::from_value(&RoleName::TARGETS, format!("keys[{i}]"), v).map_err(|e| {
                    de::Error::custom(match e {
                        TufError::Malformed { field, problem, .. } => {
                            format!("`{field}` {problem}")
                        }
                        other => other.to_string(),
                    })
                })
            })
            .collect()
    }
}
