//! Writing a trust repository: init, staged changes, signing through the agent, publishing.
//!
//! As in Notary, changes are staged in a changelist next to the cached metadata and sent by
//! `publish`. Publishing reads the server's current state (verified), applies the changes,
//! re-signs what changed with keys the agent holds (version + 1, fresh expiry), signs a new
//! snapshot when the agent holds the snapshot key (else the server makes it), and posts exactly
//! those files. A version conflict (someone published meanwhile) refetches, reapplies and retries;
//! any other failure leaves the server and the cache as they were, and the changelist staged.
//!
//! Layout:
//! - `change`: the typed staged-change model ([`Change`], [`SnapshotKey`]) and [`apply`].
//! - `changelist`: the [`Changelist`] file (JSON lines under `flock`; the older one-array file).
//! - `sign`: [`AgentKeys`], [`sign_role`], [`sign_changes`].
//! - `publish`: [`Publisher`], [`StateSource`], [`publish`] / [`publish_changes`] and the one
//!   publish-with-retry loop (also the root ceremony's).
//! - `init`: [`init_change`], [`new_repository`], agent key naming ([`next_key_name`]).
//! - `error`: [`RepoError`].

mod change;
mod changelist;
mod error;
mod init;
mod publish;
mod sign;

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use crate::tuf::{Expires, Gun, RoleName, Root, Signed, Snapshot, Targets};

pub use change::{apply, Change, SnapshotKey};
pub use changelist::Changelist;
pub use error::RepoError;
pub use init::{init_change, new_repository, next_key_name, SnapshotChoice};
pub use publish::{
    publish, publish_changes, FromServer, Prepared, PublishRejected, Published, Publisher,
    StartingWith, StateSource,
};
pub use sign::{sign_changes, sign_role, AgentKeys};

pub(crate) use change::text as serde_text;
pub(crate) use publish::{check_snapshot_signer, publish_with_retry};
pub(crate) use sign::{key_list, renew, root_needs_renewal};

/// Lifetime of a root Notary signs: 10 years.
pub const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Lifetime of targets, delegations and a client-signed snapshot: 3 years.
pub const ROLE_LIFETIME: Duration = Duration::from_secs(3 * 365 * 24 * 3600);
/// How long before its expiry a root is re-signed: six months, as Notary.
pub const ROOT_RENEWAL: Duration = Duration::from_secs(182 * 24 * 3600);
/// How many times a publish retries after a version conflict.
pub const PUBLISH_ATTEMPTS: usize = 5;

/// The verified state of a repository the changes apply to.
#[derive(Clone, Debug)]
pub struct RepoState {
    /// The current root.
    pub root: Signed<Root>,
    /// The current snapshot, if the server has one.
    pub snapshot: Option<Signed<Snapshot>>,
    /// `targets` and every delegated targets role, by name.
    pub targets: BTreeMap<RoleName, Signed<Targets>>,
}

impl From<crate::tuf::VerifiedRepo> for RepoState {
    fn from(v: crate::tuf::VerifiedRepo) -> Self {
        let mut targets = BTreeMap::from([(RoleName::TARGETS, v.targets_role().clone())]);
        for d in v.delegations() {
            targets.insert(d.name.clone(), d.file.clone());
        }
        Self {
            root: v.root().clone(),
            snapshot: Some(v.snapshot().clone()),
            targets,
        }
    }
}

/// Reads the repository's verified state from the server (`None` if it has none yet), updating
/// the cache.
pub async fn load_state<S: crate::tuf::RemoteStore>(
    remote: &S,
    cache: &crate::tuf::TrustCache,
    gun: &Gun,
    options: &crate::tuf::UpdateOptions,
) -> Result<Option<RepoState>, RepoError> {
    match crate::tuf::update(remote, cache, gun, options).await {
        Ok(verified) => Ok(Some(RepoState::from(verified))),
        Err(crate::tuf::UpdateError::RepositoryNotFound { .. }) => Ok(None),
        Err(e) => Err(RepoError::Update(Box::new(e))),
    }
}

/// As [`load_state`], with the cache written while the caller goes on (see
/// [`crate::tuf::update_deferred`]); `None` when there was nothing to read.
pub async fn load_state_deferred<S: crate::tuf::RemoteStore>(
    remote: &S,
    cache: &crate::tuf::TrustCache,
    gun: &Gun,
    options: &crate::tuf::UpdateOptions,
) -> Result<(Option<RepoState>, Option<crate::tuf::PendingCommit>), RepoError> {
    match crate::tuf::update_deferred(remote, cache, gun, options).await {
        Ok((verified, pending)) => Ok((Some(RepoState::from(verified)), Some(pending))),
        Err(crate::tuf::UpdateError::RepositoryNotFound { .. }) => Ok((None, None)),
        Err(e) => Err(RepoError::Update(Box::new(e))),
    }
}

fn expires_in(now: OffsetDateTime, lifetime: Duration) -> Result<Expires, RepoError> {
    Ok(Expires::new(now + lifetime)?)
}
