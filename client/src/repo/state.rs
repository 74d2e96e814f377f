//! The verified state a publish starts from ([`RepoState`]), read from the server.

use std::collections::BTreeMap;

use crate::repo::error::RepoError;
use crate::tuf::{
    self, Gun, PendingCommit, RemoteStore, RoleName, Root, Signed, Snapshot, Targets, TrustCache,
    UpdateError, UpdateOptions, VerifiedRepo,
};

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

impl From<VerifiedRepo> for RepoState {
    fn from(v: VerifiedRepo) -> Self {
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
pub async fn load_state<S: RemoteStore>(
    remote: &S,
    cache: &TrustCache,
    gun: &Gun,
    options: &UpdateOptions,
) -> Result<Option<RepoState>, RepoError> {
    match tuf::update(remote, cache, gun, options).await {
        Ok(verified) => Ok(Some(RepoState::from(verified))),
        Err(UpdateError::RepositoryNotFound { .. }) => Ok(None),
        Err(e) => Err(RepoError::Update(Box::new(e))),
    }
}

/// As [`load_state`], with the cache written while the caller goes on (see
/// [`crate::tuf::update_deferred`]); `None` when there was nothing to read.
pub async fn load_state_deferred<S: RemoteStore>(
    remote: &S,
    cache: &TrustCache,
    gun: &Gun,
    options: &UpdateOptions,
) -> Result<(Option<RepoState>, Option<PendingCommit>), RepoError> {
    match tuf::update_deferred(remote, cache, gun, options).await {
        Ok((verified, pending)) => Ok((Some(RepoState::from(verified)), Some(pending))),
        Err(UpdateError::RepositoryNotFound { .. }) => Ok((None, None)),
        Err(e) => Err(RepoError::Update(Box::new(e))),
    }
}
