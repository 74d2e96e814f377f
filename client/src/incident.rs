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
                    role: role.clone(),
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
                    role: role.clone(),
                    name: name.clone(),
                    length: meta.length,
                    sha256,
                    sha512: meta.hashes.sha512,
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

    let ids: Vec<KeyId> = plan.key_ids.iter().copied().collect();
    for role in &plan.roles_kept {
        plan.changes.push(Change::RemoveDelegationKeys {
            role: role.clone(),
            key_ids: ids.clone(),
        });
        // Its file may carry the key's signature: re-signed by the keys it keeps.
        plan.changes.push(Change::Resign { role: role.clone() });
    }
    for role in &plan.roles_removed {
        plan.changes
            .push(Change::RemoveDelegation { role: role.clone() });
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use time::OffsetDateTime;

    use super::*;
    use crate::tuf::{
        Delegation, Expires, Root, RootRole, RootRoles, Sha256Digest, Signed, Targets,
    };

    fn key(seed: u8) -> PublicKey {
        use p256::pkcs8::EncodePublicKey as _;
        let secret = p256::SecretKey::from_slice(&[seed; 32]).unwrap();
        PublicKey::ecdsa(secret.public_key().to_public_key_der().unwrap().into_vec())
    }

    fn meta(n: u8) -> FileMeta {
        FileMeta::of_target(10, Sha256Digest::from_bytes([n; 32]))
    }

    fn role(name: &str, tags: &[(&str, u8)]) -> (RoleName, Signed<Targets>) {
        let expires = Expires::new(OffsetDateTime::now_utc() + time::Duration::days(30)).unwrap();
        let mut t = Targets::new(1, expires);
        for (tag, n) in tags {
            t.targets.insert((*tag).to_owned(), meta(*n));
        }
        (name.parse().unwrap(), Signed::new(t))
    }

    /// A docker repository: alice signed v1 and v3, bob v2 (the releases file has them all).
    fn docker_repo() -> (RepoState, PublicKey, PublicKey) {
        let (repo_key, alice, bob) = (key(1), key(2), key(3));
        let expires = Expires::new(OffsetDateTime::now_utc() + time::Duration::days(300)).unwrap();
        let root = Root {
            version: 1,
            expires,
            consistent_snapshot: false,
            keys: BTreeMap::from([(repo_key.id(), repo_key.clone())]),
            roles: RootRoles {
                root: RootRole::single(repo_key.id()),
                targets: RootRole::single(repo_key.id()),
                snapshot: RootRole::single(repo_key.id()),
                timestamp: RootRole::single(repo_key.id()),
            },
        };
        let (_, mut targets) = role("targets", &[]);
        let delegation = |name: &str, keys: &[&PublicKey]| Delegation {
            name: name.parse().unwrap(),
            keyids: keys.iter().map(|k| k.id()).collect(),
            threshold: 1,
            paths: vec![String::new()],
        };
        let d = &mut targets.signed.delegations;
        d.keys.insert(alice.id(), alice.clone());
        d.keys.insert(bob.id(), bob.clone());
        d.roles
            .push(delegation("targets/releases", &[&alice, &bob]));
        d.roles.push(delegation("targets/alice", &[&alice]));
        d.roles.push(delegation("targets/bob", &[&bob]));
        let state = RepoState {
            root: Signed::new(root),
            snapshot: None,
            targets: BTreeMap::from([
                (RoleName::TARGETS, targets),
                role("targets/releases", &[("v1", 1), ("v2", 2), ("v3", 3)]),
                role("targets/alice", &[("v1", 1), ("v3", 3)]),
                role("targets/bob", &[("v2", 2)]),
            ]),
        };
        (state, alice, bob)
    }

    #[test]
    fn the_key_leaves_every_role_and_what_it_alone_signed_is_resigned_or_dropped() {
        let (state, alice, bob) = docker_repo();
        let alice_id = alice.id().to_string();
        let err = plan(&state, &alice_id, &Choices::default()).unwrap_err();
        assert!(err.to_string().contains("v1, v3"), "{err}");

        let choices = Choices {
            resign_with: Some(bob.id()),
            drop: ["v3".to_owned()].into(),
            drop_all: false,
        };
        let p = plan(&state, &alice_id[..9], &choices).unwrap();
        let releases: RoleName = "targets/releases".parse().unwrap();
        let bob_role: RoleName = "targets/bob".parse().unwrap();
        assert_eq!(p.roles_kept, vec![releases.clone()]);
        assert_eq!(
            p.roles_removed,
            vec!["targets/alice".parse::<RoleName>().unwrap()]
        );
        assert_eq!(p.resigned["v1"], vec![releases.clone(), bob_role]);
        assert_eq!(p.dropped, ["v3".to_owned()].into());

        let mut after = state.clone();
        let dirty = crate::repo::apply(&mut after, &p.changes).unwrap();
        assert!(dirty.contains(&RoleName::TARGETS) && dirty.contains(&releases));
        let names = |r: &str| -> Vec<String> {
            after.targets[&r.parse::<RoleName>().unwrap()]
                .signed
                .targets
                .keys()
                .cloned()
                .collect()
        };
        assert_eq!(names("targets/releases"), ["v1", "v2"]);
        assert_eq!(names("targets/bob"), ["v1", "v2"]);
        assert!(!after
            .targets
            .contains_key(&"targets/alice".parse::<RoleName>().unwrap()));
        let t = &after.targets[&RoleName::TARGETS].signed.delegations;
        assert!(!t.keys.contains_key(&alice.id()));
        assert!(t.roles.iter().all(|d| !d.keyids.contains(&alice.id())));
    }

    #[test]
    fn refusals_name_the_problem() {
        let (state, alice, _) = docker_repo();
        let repo_key = key(1).id().to_string();
        let err = plan(&state, &repo_key, &Choices::default()).unwrap_err();
        assert!(err.to_string().contains("--targets-key"), "{err}");
        let err = plan(&state, "abc", &Choices::default()).unwrap_err();
        assert!(err.to_string().contains("at least 7 hex digits"), "{err}");
        let choices = Choices {
            resign_with: Some(alice.id()),
            ..Choices::default()
        };
        let err = plan(&state, &alice.id().to_string(), &choices).unwrap_err();
        assert!(err.to_string().contains("compromised key itself"), "{err}");
    }
}
