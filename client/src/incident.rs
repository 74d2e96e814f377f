//! A compromised delegation key: remove it from every role and decide about what it signed.
//!
//! [`plan`] turns the repository's verified state into changes for [`crate::repo::publish_changes`]:
//! the key leaves every delegation that lists it (a delegation left without keys goes
//! entirely), every role that kept other keys is re-signed without it, and each target the key
//! vouched for alone is either re-signed by another signer's key or dropped, as the user chose.
//! A target counts as vouched for by another signer when a role the key is not in holds the
//! same name with the same length and hashes (docker's `targets/<signer>` roles do).

use std::collections::{BTreeMap, BTreeSet};

use crate::repo::{Change, RepoState};
use crate::tuf::{FileMeta, KeyId, PublicKey, RoleName};

/// What to do with the targets only the compromised key vouched for.
#[derive(Clone, Debug, Default)]
pub struct Choices {
    /// Re-sign them with this key (canonical ID), which must remain a key of some delegation.
    pub resign_with: Option<KeyId>,
    /// Drop these targets (by name) instead.
    pub drop: BTreeSet<String>,
    /// Drop every such target.
    pub drop_all: bool,
}

/// The changes that remove a compromised key, and what they do.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// The compromised key's TUF IDs as delegations list it.
    pub key_ids: BTreeSet<KeyId>,
    /// Roles that keep other keys and lose this one.
    pub roles_kept: Vec<RoleName>,
    /// Roles that had only this key and are removed.
    pub roles_removed: Vec<RoleName>,
    /// Targets re-signed with the chosen key, and the roles they are added to.
    pub resigned: BTreeMap<String, Vec<RoleName>>,
    /// Targets dropped.
    pub dropped: BTreeSet<String>,
    /// The changes to publish.
    pub changes: Vec<Change>,
}

/// Plans the removal of `key` (a canonical or TUF key ID, or a prefix of 7 or more hex digits).
pub fn plan(state: &RepoState, key: &str, choices: &Choices) -> Result<Plan, IncidentError> {
    let key = key.to_ascii_lowercase();
    if key.len() < 7 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(IncidentError::BadKey { key });
    }
    let matches = |id: &KeyId, k: Option<&PublicKey>| {
        id.to_string().starts_with(&key)
            || k.and_then(|k| k.canonical_id().ok())
                .is_some_and(|c| c.to_string().starts_with(&key))
    };
    let root = &state.root.signed;
    if root
        .roles
        .targets
        .keyids
        .iter()
        .any(|id| matches(id, root.keys.get(id)))
    {
        return Err(IncidentError::RepositoryKey { key });
    }

    // Every delegation listing the key: (role, its keys without it, its threshold).
    let mut plan = Plan::default();
    let mut affected: Vec<(RoleName, Vec<KeyId>, u32)> = Vec::new();
    let mut compromised: BTreeSet<KeyId> = BTreeSet::new();
    for file in state.targets.values() {
        let t = &file.signed;
        for d in &t.delegations.roles {
            let (bad, good): (Vec<KeyId>, Vec<KeyId>) = d
                .keyids
                .iter()
                .partition(|id| matches(id, t.delegations.keys.get(id)));
            if bad.is_empty() {
                continue;
            }
            for id in &bad {
                if let Some(c) = t
                    .delegations
                    .keys
                    .get(id)
                    .and_then(|k| k.canonical_id().ok())
                {
                    compromised.insert(c);
                }
            }
            plan.key_ids.extend(bad);
            affected.push((d.name.clone(), good, d.threshold));
        }
    }
    if affected.is_empty() {
        return Err(IncidentError::NotASigner { key });
    }
    if plan.key_ids.len() > 1 {
        return Err(IncidentError::Ambiguous {
            key,
            ids: plan.key_ids.iter().map(KeyId::to_string).collect(),
        });
    }
    let affected_names: BTreeSet<&RoleName> = affected.iter().map(|a| &a.0).collect();
    for (role, good, threshold) in &affected {
        if good.is_empty() {
            plan.roles_removed.push(role.clone());
        } else if good.len() < *threshold as usize {
            return Err(IncidentError::BelowThreshold {
                role: role.clone(),
                left: good.len(),
                threshold: *threshold,
            });
        } else {
            plan.roles_kept.push(role.clone());
        }
    }

    // Targets only the key vouched for.
    let vouched = |name: &str, meta: &FileMeta| {
        state
            .targets
            .iter()
            .filter(|(r, _)| !affected_names.contains(r))
            .any(|(_, f)| f.signed.targets.get(name) == Some(meta))
    };
    let mut suspects: BTreeMap<String, (FileMeta, Vec<RoleName>)> = BTreeMap::new();
    for (role, _, _) in &affected {
        let Some(file) = state.targets.get(role) else {
            continue;
        };
        for (name, meta) in &file.signed.targets {
            if !vouched(name, meta) {
                suspects
                    .entry(name.clone())
                    .or_insert_with(|| (meta.clone(), Vec::new()))
                    .1
                    .push(role.clone());
            }
        }
    }

    // Where the re-signing key signs: every delegation that lists it and keeps existing.
    let resign_roles: Vec<RoleName> = match &choices.resign_with {
        None => Vec::new(),
        Some(with) => {
            if compromised.contains(with) {
                return Err(IncidentError::ResignWithCompromised);
            }
            let mut roles = Vec::new();
            for file in state.targets.values() {
                let t = &file.signed;
                for d in &t.delegations.roles {
                    if plan.roles_removed.contains(&d.name) {
                        continue;
                    }
                    let listed = d.keyids.iter().any(|id| {
                        t.delegations
                            .keys
                            .get(id)
                            .and_then(|k| k.canonical_id().ok())
                            .is_some_and(|c| c == *with)
                    });
                    if listed {
                        roles.push(d.name.clone());
                    }
                }
            }
            if roles.is_empty() {
                return Err(IncidentError::ResignKeyNotASigner {
                    key: with.to_string(),
                });
            }
            roles
        }
    };

    let mut undecided = Vec::new();
    for (name, (meta, roles)) in &suspects {
        if choices.drop_all || choices.drop.contains(name) {
            for role in roles.iter().filter(|r| plan.roles_kept.contains(r)) {
                plan.changes.push(Change::RemoveTarget {
                    role: role.to_string(),
                    name: name.clone(),
                });
            }
            plan.dropped.insert(name.clone());
        } else if choices.resign_with.is_some() {
            let Some(sha256) = meta.hashes.sha256 else {
                return Err(IncidentError::NoSha256 { name: name.clone() });
            };
            for role in &resign_roles {
                plan.changes.push(Change::AddTarget {
                    role: role.to_string(),
                    name: name.clone(),
                    length: meta.length,
                    sha256: hex::encode(sha256.as_bytes()),
                    custom: meta.custom.clone(),
                });
            }
            plan.resigned.insert(name.clone(), resign_roles.clone());
        } else {
            undecided.push(name.clone());
        }
    }
    if !undecided.is_empty() {
        return Err(IncidentError::Undecided { tags: undecided });
    }
    if let Some(name) = choices.drop.iter().find(|n| !suspects.contains_key(*n)) {
        return Err(IncidentError::NotSuspect { name: name.clone() });
    }

    let ids: Vec<String> = plan.key_ids.iter().map(KeyId::to_string).collect();
    for role in &plan.roles_kept {
        plan.changes.push(Change::RemoveDelegationKeys {
            role: role.to_string(),
            key_ids: ids.clone(),
        });
        // Its file may carry the key's signature: re-signed by the keys it keeps.
        plan.changes.push(Change::Resign {
            role: role.to_string(),
        });
    }
    for role in &plan.roles_removed {
        plan.changes.push(Change::RemoveDelegation {
            role: role.to_string(),
        });
    }
    Ok(plan)
}

/// Why the incident flow refused; nothing was published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IncidentError {
    /// Not a key ID.
    #[error("'{key}' is not a key ID: give the compromised key's ID (at least 7 hex digits) as `tufa inspect` or `tufa notary delegation list` shows it")]
    BadKey {
        /// What was given.
        key: String,
    },
    /// The key is the repository (targets) key.
    #[error("key {key} is the repository's targets key, not a delegation key: rotate it with `tufa root rotate GUN --targets-key NEW`")]
    RepositoryKey {
        /// The key.
        key: String,
    },
    /// No delegation lists the key.
    #[error("no delegation of this repository lists key {key}: nothing to remove (`tufa notary delegation list GUN` shows the keys)")]
    NotASigner {
        /// The key.
        key: String,
    },
    /// The prefix names several keys.
    #[error("key prefix {key} matches several keys ({}): give more digits", ids.join(", "))]
    Ambiguous {
        /// The prefix.
        key: String,
        /// The keys it matches.
        ids: Vec<String>,
    },
    /// A role would keep fewer keys than its threshold.
    #[error("{role} needs {threshold} signatures and would keep {left} key(s): add a key to it first (`tufa notary delegation add`), then remove the compromised one")]
    BelowThreshold {
        /// The role.
        role: RoleName,
        /// Keys left.
        left: usize,
        /// Its threshold.
        threshold: u32,
    },
    /// Targets with no decision.
    #[error("only the compromised key vouches for {}: re-sign them with another signer's key (--resign-with KEY) or drop them (--drop TAG, --drop-all)", tags.join(", "))]
    Undecided {
        /// Their names.
        tags: Vec<String>,
    },
    /// `--drop` names a target the key did not sign alone.
    #[error(
        "{name} is not a target only the compromised key vouches for: --drop names those only"
    )]
    NotSuspect {
        /// The name.
        name: String,
    },
    /// `--resign-with` is the compromised key.
    #[error("--resign-with names the compromised key itself: choose another signer's key")]
    ResignWithCompromised,
    /// `--resign-with` is in no remaining delegation.
    #[error("key {key} is not a key of any delegation that remains: choose a key of another signer (`tufa notary delegation list GUN`)")]
    ResignKeyNotASigner {
        /// The key.
        key: String,
    },
    /// A target without a SHA-256 cannot be re-added.
    #[error(
        "target {name} has no SHA-256: drop it (--drop {name}) or sign it again from its file"
    )]
    NoSha256 {
        /// The name.
        name: String,
    },
}
