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
//! - this file: [`publish`] and [`publish_changes`], a publish of staged or given changes as
//!   the pieces below make it.
//! - `state`: [`RepoState`], the verified state a publish starts from ([`load_state`]).
//! - `change`: the typed staged-change model ([`Change`], [`SnapshotKey`]) and [`apply`].
//! - `changelist`: the [`Changelist`] file (JSON lines under `flock`; the older one-array file).
//! - `sign`: [`AgentKeys`], [`sign_role`], [`sign_changes`], role lifetimes.
//! - `publish`: [`Publisher`], [`StateSource`] and the one publish-with-retry loop (also the
//!   root ceremony's).
//! - `init`: [`init_change`], [`new_repository`], agent key naming ([`next_key_name`]).
//! - `error`: [`RepoError`].

mod change;
mod changelist;
mod error;
mod init;
mod publish;
mod sign;
mod state;

use time::OffsetDateTime;

use crate::agent::AgentClient;
use crate::tuf::{Gun, RoleName};

pub use change::{apply, Change, SnapshotKey};
pub use changelist::Changelist;
pub use error::RepoError;
pub use init::{init_change, key_name_for, new_repository, next_key_name, SnapshotChoice};
pub use publish::{
    FromServer, Prepared, PublishRejected, Publisher, StartingWith, StateSource, PUBLISH_ATTEMPTS,
};
pub use sign::{sign_changes, sign_role, AgentKeys, ROLE_LIFETIME, ROOT_LIFETIME, ROOT_RENEWAL};
pub use state::{load_state, load_state_deferred, RepoState};

pub(crate) use change::text as serde_text;
pub(crate) use publish::{check_snapshot_signer, publish_with_retry};

use sign::{renew, root_needs_renewal};

/// What a publish sent.
#[derive(Debug)]
pub struct Published {
    /// The roles posted, in order.
    pub roles: Vec<RoleName>,
    /// Whether the repository was created by this publish.
    pub created: bool,
}

/// Publishes the staged changes of `gun`, and drops them once published.
pub async fn publish<P: Publisher>(
    agent: &AgentClient,
    server: &P,
    gun: &Gun,
    changelist: &Changelist,
    source: impl StateSource,
    now: OffsetDateTime,
) -> Result<Published, RepoError> {
    let changes = changelist.list()?;
    let held = AgentKeys::load(agent).await?;
    let published = publish_changes(agent, &held, server, gun, &changes, source, now).await?;
    changelist.clear()?;
    Ok(published)
}

/// Publishes `changes` (not staged anywhere): what docker's verbs do, which publish at once.
///
/// The changes are applied afresh to each state `source` gives; with none, the repository is
/// created from the changes' [`Change::Init`]. A root within six months of expiry is re-signed
/// along, as Notary does.
pub async fn publish_changes<P: Publisher>(
    agent: &AgentClient,
    held: &AgentKeys,
    server: &P,
    gun: &Gun,
    changes: &[Change],
    mut source: impl StateSource,
    now: OffsetDateTime,
) -> Result<Published, RepoError> {
    let prepared = publish_with_retry(server, held, gun, &mut source, async |current| {
        let (mut state, created) = match current {
            Some(state) => (state, false),
            None => {
                let Some(Change::Init {
                    root_key,
                    targets_key,
                    snapshot,
                }) = changes.iter().find(|c| matches!(c, Change::Init { .. }))
                else {
                    return Err(RepoError::NotInitialised { gun: gun.clone() });
                };
                let init = (root_key, targets_key, snapshot);
                let state = new_repository(agent, held, server, gun, init, now).await?;
                (state, true)
            }
        };
        let mut dirty = apply(&mut state, changes)?;
        if created {
            dirty.insert(RoleName::TARGETS);
        }
        let renew_root = !created && root_needs_renewal(&state, now);
        if renew_root {
            renew(agent, held, gun, &mut state, now).await?;
        }
        let files = sign_changes(
            agent,
            held,
            gun,
            &mut state,
            &dirty,
            created || renew_root,
            now,
        )
        .await?;
        Ok(Prepared {
            files,
            state,
            created,
        })
    })
    .await?;
    Ok(Published {
        roles: prepared.files.into_iter().map(|(r, _)| r).collect(),
        created: prepared.created,
    })
}
