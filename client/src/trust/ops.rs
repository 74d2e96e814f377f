//! What `docker trust` signer add/remove, sign and revoke change in a repository, as changes for
//! [`crate::repo::publish_changes`].
//!
//! Role selection is docker's (cli/trust `GetSignableRoles`): without delegations a tag goes into
//! `targets`; with delegations it goes into every direct child of `targets` whose paths allow the
//! tag and one of whose keys the agent holds (normally `targets/releases` and `targets/<signer>`).

use crate::repo::{AgentKeys, Change, RepoState};
use crate::tuf::{KeyId, PublicKey, RoleName, Sha256Digest};

/// Why a docker trust operation cannot be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The repository has delegations, and the agent holds none of their keys.
    #[error("no valid signing keys for delegation roles: add a signer whose key is in the agent (`tufa key generate NAME`, then `tufa signer add --key NAME.pub NAME REPO`)")]
    NoSigningKeys,
    /// No role of the repository lists the tag (docker's words).
    #[error("No valid trust data for {tag}")]
    UnknownTag {
        /// The tag.
        tag: String,
    },
    /// The repository lists no tags at all.
    #[error("no signed tags to remove")]
    NoSignedTags,
    /// The tag is signed nowhere the agent can change.
    #[error("no signature for {tag} in a role this agent can sign: it stays trusted; a tag in `targets` itself needs the repository key (`tufa notary remove REPO TAG --roles targets -p`)")]
    NotSigned {
        /// The tag.
        tag: String,
    },
    /// A signer name docker would refuse.
    #[error("signer name \"{0}\" must start with lowercase alphanumeric characters and can include \"-\" or \"_\" after the first character")]
    InvalidSignerName(String),
    /// `releases` is docker's own role.
    #[error("releases is a reserved keyword, use a different signer name")]
    ReservedSignerName,
    /// `targets/releases` holds every signer's release signatures; it is not a signer.
    #[error("releases is a reserved keyword and cannot be removed")]
    ReservedRoleRemoval,
    /// No such signer in the repository.
    #[error("no signer {name} for repository {repo}")]
    UnknownSigner {
        /// The signer.
        name: String,
        /// The repository.
        repo: String,
    },
}

/// Checks a signer name as docker does (`^[a-z0-9][a-z0-9\_\-]*$`, not `releases`).
pub fn check_signer_name(name: &str) -> Result<(), TrustError> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid {
        return Err(TrustError::InvalidSignerName(name.to_owned()));
    }
    if name == "releases" {
        return Err(TrustError::ReservedSignerName);
    }
    Ok(())
}

/// The roles a tag is signed into (docker's `GetSignableRoles`).
pub fn signable_roles(
    state: &RepoState,
    held: &AgentKeys,
    tag: &str,
) -> Result<Vec<RoleName>, TrustError> {
    let Some(targets) = state.targets.get(&RoleName::TARGETS) else {
        return Ok(vec![RoleName::TARGETS]);
    };
    let delegations = &targets.signed.delegations;
    if delegations.roles.is_empty() {
        return Ok(vec![RoleName::TARGETS]);
    }
    let roles: Vec<RoleName> = delegations
        .roles
        .iter()
        .filter(|d| d.name.parent().as_ref() == Some(&RoleName::TARGETS))
        .filter(|d| d.paths.iter().any(|p| tag.starts_with(p.as_str())))
        .filter(|d| {
            d.keyids.iter().any(|id| {
                delegations
                    .keys
                    .get(id)
                    .is_some_and(|k| held.for_key(k).is_some())
            })
        })
        .map(|d| d.name.clone())
        .collect();
    if roles.is_empty() {
        return Err(TrustError::NoSigningKeys);
    }
    Ok(roles)
}

/// Signs `tag` (its manifest's `sha256` and `length`) into every signable role.
pub fn sign(
    state: &RepoState,
    held: &AgentKeys,
    tag: &str,
    length: u64,
    sha256: Sha256Digest,
) -> Result<Vec<Change>, TrustError> {
    Ok(signable_roles(state, held, tag)?
        .into_iter()
        .map(|role| Change::AddTarget {
            role,
            name: tag.to_owned(),
            length,
            sha256,
            sha512: None,
            custom: None,
        })
        .collect())
}

/// Removes `tag` (or, with `None`, every tag the repository lists) from every role this agent
/// can sign that holds it, as `docker trust revoke` does (cli/command/trust/revoke.go): the roles
/// are chosen per tag, so a signer whose paths allow only some tags keeps the others.
pub fn revoke(
    state: &RepoState,
    held: &AgentKeys,
    tag: Option<&str>,
) -> Result<Vec<Change>, TrustError> {
    let mut names: Vec<&String> = state
        .targets
        .values()
        .flat_map(|file| file.signed.targets.keys())
        .filter(|n| tag.is_none_or(|t| t == n.as_str()))
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Err(match tag {
            Some(t) => TrustError::UnknownTag { tag: t.to_owned() },
            None => TrustError::NoSignedTags,
        });
    }
    let mut changes = Vec::new();
    for name in names {
        for role in signable_roles(state, held, name)? {
            if state
                .targets
                .get(&role)
                .is_some_and(|f| f.signed.targets.contains_key(name))
            {
                changes.push(Change::RemoveTarget {
                    role,
                    name: name.clone(),
                });
            }
        }
    }
    // docker publishes nothing and still reports success here; the tags stay trusted, so say so.
    if changes.is_empty() {
        return Err(TrustError::NotSigned {
            tag: tag.unwrap_or("any tag").to_owned(),
        });
    }
    Ok(changes)
}

/// Adds signer `name` with `keys`: `targets/<name>` and the keys in `targets/releases`, both with
/// every path, as `docker trust signer add` does.
pub fn signer_add(name: &str, keys: &[PublicKey]) -> Result<Vec<Change>, TrustError> {
    check_signer_name(name)?;
    Ok([signer_role(name)?, RoleName::RELEASES]
        .into_iter()
        .map(|role| Change::AddDelegation {
            role,
            keys: keys.to_vec(),
            paths: vec![String::new()],
            threshold: 0,
        })
        .collect())
}

/// Signer `name`'s own role, `targets/<name>`.
fn signer_role(name: &str) -> Result<RoleName, TrustError> {
    format!("targets/{name}")
        .parse()
        .map_err(|_| TrustError::InvalidSignerName(name.to_owned()))
}

/// Removes signer `name`: its role, and its keys from `targets/releases`.
pub fn signer_remove(state: &RepoState, name: &str, repo: &str) -> Result<Vec<Change>, TrustError> {
    if name == "releases" {
        return Err(TrustError::ReservedRoleRemoval);
    }
    let role = signer_role(name)?;
    let targets = state.targets.get(&RoleName::TARGETS);
    let Some(delegation) = targets.and_then(|t| t.signed.delegation(&role)) else {
        return Err(TrustError::UnknownSigner {
            name: name.to_owned(),
            repo: repo.to_owned(),
        });
    };
    let mut changes = vec![Change::RemoveDelegation { role: role.clone() }];
    // Keys shared with another signer stay in releases.
    let others: Vec<_> = targets
        .map(|t| {
            t.signed
                .delegations
                .roles
                .iter()
                .filter(|d| d.name != role && d.name != RoleName::RELEASES)
                .flat_map(|d| d.keyids.clone())
                .collect()
        })
        .unwrap_or_default();
    let key_ids: Vec<KeyId> = delegation
        .keyids
        .iter()
        .filter(|id| !others.contains(id))
        .copied()
        .collect();
    if !key_ids.is_empty() {
        changes.push(Change::RemoveDelegationKeys {
            role: RoleName::RELEASES,
            key_ids,
        });
    }
    Ok(changes)
}

/// Whether removing `name` would leave the last released version without its signature: the
/// signer's keys are what satisfies `targets/releases`' threshold (docker then asks first).
pub fn signer_signed_last_release(state: &RepoState, name: &str) -> bool {
    let Some(targets) = state.targets.get(&RoleName::TARGETS) else {
        return false;
    };
    let role = format!("targets/{name}");
    let (Some(signer), Some(releases)) = (
        targets
            .signed
            .delegations
            .roles
            .iter()
            .find(|d| d.name.as_str() == role),
        targets.signed.delegation(&RoleName::RELEASES),
    ) else {
        return false;
    };
    let Some(file) = state.targets.get(&RoleName::RELEASES) else {
        return false;
    };
    let signing: Vec<_> = file
        .signatures
        .iter()
        .filter(|s| releases.keyids.contains(&s.key_id))
        .map(|s| s.key_id)
        .collect();
    let remaining = signing
        .iter()
        .filter(|id| !signer.keyids.contains(id))
        .count();
    signing.iter().any(|id| signer.keyids.contains(id)) && remaining < releases.threshold as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signer_names_follow_docker() {
        for ok in ["alice", "ci-2", "a_b", "0day"] {
            assert!(check_signer_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Alice", "-x", "_x", "a.b", "a/b"] {
            assert!(matches!(
                check_signer_name(bad),
                Err(TrustError::InvalidSignerName(_))
            ));
        }
        assert!(matches!(
            check_signer_name("releases"),
            Err(TrustError::ReservedSignerName)
        ));
    }
}
