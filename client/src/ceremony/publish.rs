//! Publishing a complete request through the publish-with-retry loop that staged changes use.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use crate::agent::AgentClient;
use crate::ceremony::error::CeremonyError;
use crate::ceremony::request::RootRequest;
use crate::repo::{
    self, AgentKeys, Prepared, Publisher, RepoError, RepoState, SnapshotKey, StateSource,
    ROLE_LIFETIME,
};
use crate::tuf::{Expires, RoleName, Signed, Targets, TufError};

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
                let targets = Signed::new(Targets::new(
                    0,
                    Expires::new(now + ROLE_LIFETIME).map_err(TufError::from)?,
                ));
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
