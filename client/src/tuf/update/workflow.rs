//! The update's steps in order: root, timestamp, snapshot, targets, delegations; then staging.

use crate::tuf::cache::{CacheView, TrustCache};
use crate::tuf::error::UpdateError;
use crate::tuf::{Gun, RemoteStore, RoleName};

use super::options::UpdateOptions;
use super::session::Session;
use super::verified::VerifiedRepo;

/// Fetches and verifies; returns the files to cache, in commit order.
pub(super) async fn verify<S: RemoteStore>(
    store: &S,
    cache: &TrustCache,
    view: &CacheView,
    gun: &Gun,
    options: &UpdateOptions,
) -> Result<(VerifiedRepo, Vec<(RoleName, Vec<u8>)>), UpdateError> {
    let mut session = Session {
        store,
        cache,
        view,
        gun,
        options,
        staged: Vec::new(),
        warnings: Vec::new(),
        trusted_roles: None,
    };
    let mut repo = session.run().await?;
    repo.warnings = session.warnings;
    Ok((repo, session.staged))
}

impl<'a, S: RemoteStore> Session<'a, S> {
    /// Every step in download order; stages what verified in commit order.
    pub(super) async fn run(&mut self) -> Result<VerifiedRepo, UpdateError> {
        let (root, root_bytes, root_changed) = self.root().await?;
        self.check_expiry(
            &RoleName::ROOT,
            &root.signed.expires,
            "the repository owner must re-sign root.json with the root key",
        )?;

        let (timestamp, timestamp_bytes) = self.timestamp(&root.signed).await?;

        let (snapshot, snapshot_bytes) = self
            .snapshot(&root.signed, &timestamp.signed, &root_bytes)
            .await?;
        let (targets, targets_bytes) = self.targets(&root.signed, &snapshot.signed).await?;
        let delegations = self.delegations(&snapshot.signed, &targets.signed).await?;

        // Commit order: delegations were staged as they verified; the base roles follow, root last.
        self.stage(&RoleName::TARGETS, targets_bytes)?;
        self.stage(&RoleName::SNAPSHOT, snapshot_bytes)?;
        self.stage(&RoleName::TIMESTAMP, timestamp_bytes)?;
        if root_changed {
            self.staged.push((RoleName::ROOT, root_bytes));
        }
        Ok(VerifiedRepo::new(
            self.gun.clone(),
            root,
            timestamp,
            snapshot,
            targets,
            delegations,
        ))
    }
}
