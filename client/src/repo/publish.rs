//! Publishing: what a server must do ([`Publisher`]), where a publish reads the repository
//! ([`StateSource`]), and the one publish-with-retry loop that staged changes
//! ([`crate::repo::publish_changes`]) and root ceremonies both go through.
//!
//! A publish reads the verified state, makes and signs its files from it, and posts them in one
//! update. When the server reports a version conflict (someone published meanwhile), it pauses
//! a short random while, reads the state again and makes its files afresh from that, up to
//! [`PUBLISH_ATTEMPTS`] times; any other refusal ends it with nothing published.

use std::future::Future;
use std::time::Duration;

use crate::repo::error::RepoError;
use crate::repo::sign::{key_list, AgentKeys};
use crate::repo::state::{load_state, RepoState};
use crate::tuf::{Gun, PublicKey, RemoteError, RemoteStore, RoleName, TrustCache, UpdateOptions};

/// What publishing needs from the server, besides verified reads.
pub trait Publisher: Send + Sync {
    /// The server-held key of `timestamp` or `snapshot` (created on first request).
    fn server_key(
        &self,
        role: &RoleName,
    ) -> impl Future<Output = Result<PublicKey, RemoteError>> + Send;
    /// Posts these files in one atomic update.
    fn publish(
        &self,
        files: &[(RoleName, Vec<u8>)],
    ) -> impl Future<Output = Result<(), PublishRejected>> + Send;
}

/// Why the server refused a publish.
#[derive(Debug)]
pub enum PublishRejected {
    /// Someone published a newer version meanwhile: refetch and retry.
    VersionConflict(RemoteError),
    /// Anything else.
    Other(RemoteError),
}

/// Where a publish reads the repository it changes: before its first attempt, and again after
/// each version conflict.
pub trait StateSource {
    /// The repository's current verified state; `None` when the server has none yet.
    fn current(&mut self) -> impl Future<Output = Result<Option<RepoState>, RepoError>>;
}

impl<S: StateSource + ?Sized> StateSource for &mut S {
    fn current(&mut self) -> impl Future<Output = Result<Option<RepoState>, RepoError>> {
        (**self).current()
    }
}

/// The server's state, verified and cached as every read is ([`load_state`]).
pub struct FromServer<'a, R> {
    remote: &'a R,
    cache: &'a TrustCache,
    gun: &'a Gun,
    options: &'a UpdateOptions,
}

impl<'a, R: RemoteStore> FromServer<'a, R> {
    /// Reads `gun` from `remote` into `cache`, with `options`.
    pub fn new(
        remote: &'a R,
        cache: &'a TrustCache,
        gun: &'a Gun,
        options: &'a UpdateOptions,
    ) -> Self {
        Self {
            remote,
            cache,
            gun,
            options,
        }
    }
}

impl<R: RemoteStore> StateSource for FromServer<'_, R> {
    async fn current(&mut self) -> Result<Option<RepoState>, RepoError> {
        load_state(self.remote, self.cache, self.gun, self.options).await
    }
}

/// A state the caller has read already (the one its changes were computed from), handed out
/// first so it is not read twice; then `then`'s, after a conflict.
pub struct StartingWith<S> {
    first: Option<Option<RepoState>>,
    then: S,
}

impl<S: StateSource> StartingWith<S> {
    /// `current` first, then `then`.
    pub fn new(current: Option<RepoState>, then: S) -> Self {
        Self {
            first: Some(current),
            then,
        }
    }
}

impl<S: StateSource> StateSource for StartingWith<S> {
    async fn current(&mut self) -> Result<Option<RepoState>, RepoError> {
        match self.first.take() {
            Some(state) => Ok(state),
            None => self.then.current().await,
        }
    }
}

/// How many times a publish retries after a version conflict.
pub const PUBLISH_ATTEMPTS: usize = 5;

/// One attempt's files, and what they make.
pub struct Prepared {
    /// Files to post, in the order they were signed.
    pub files: Vec<(RoleName, Vec<u8>)>,
    /// The repository as the files make it.
    pub state: RepoState,
    /// Whether these files create the repository.
    pub created: bool,
}

/// The publish-with-retry loop: reads the state from `source`, has `prepare` make and sign the
/// files from it, and posts them. After a version conflict it pauses, reads again and prepares
/// afresh; after [`PUBLISH_ATTEMPTS`] conflicts it gives up. Returns what was published.
pub(crate) async fn publish_with_retry<P, E>(
    server: &P,
    held: &AgentKeys,
    gun: &Gun,
    source: &mut impl StateSource,
    mut prepare: impl AsyncFnMut(Option<RepoState>) -> Result<Prepared, E>,
) -> Result<Prepared, E>
where
    P: Publisher,
    E: From<RepoError>,
{
    for attempt in 1..=PUBLISH_ATTEMPTS {
        let prepared = prepare(source.current().await?).await?;
        match server.publish(&prepared.files).await {
            Ok(()) => return Ok(prepared),
            Err(PublishRejected::VersionConflict(e)) => {
                tracing::info!(gun = %gun, attempt, error = %e, "version conflict; refetching");
                conflict_pause(attempt).await;
            }
            Err(PublishRejected::Other(e)) => {
                // The likely cause, said plainly; checked only now, as it costs a request.
                if !prepared.created {
                    check_snapshot_signer(held, server, gun, &prepared.state).await?;
                }
                return Err(RepoError::Server(e).into());
            }
        }
    }
    Err(RepoError::Conflict {
        gun: gun.clone(),
        attempts: PUBLISH_ATTEMPTS,
    }
    .into())
}

/// A short random pause after the `attempt`th version conflict, so publishers that collided do
/// not collide again.
async fn conflict_pause(attempt: usize) {
    let mut b = [0u8; 1];
    let _ = getrandom::fill(&mut b);
    let pause = 20 * attempt as u64 + u64::from(b[0] % 100);
    tokio::time::sleep(Duration::from_millis(pause)).await;
}

/// A publish needs a snapshot from someone: the agent, or the server. Checked when the server
/// refused a publish, because its own refusal ("key not found") does not say what to do.
pub(crate) async fn check_snapshot_signer<P: Publisher>(
    held: &AgentKeys,
    server: &P,
    gun: &Gun,
    state: &RepoState,
) -> Result<(), RepoError> {
    let root = &state.root.signed;
    let keys = key_list(root, &root.roles.snapshot);
    if keys.iter().any(|k| held.for_key(k).is_some()) {
        return Ok(());
    }
    let server_key = server
        .server_key(&RoleName::SNAPSHOT)
        .await
        .map_err(RepoError::Server)?;
    if root.roles.snapshot.keyids.contains(&server_key.id()) {
        return Ok(());
    }
    Err(RepoError::NoSnapshotSigner { gun: gun.clone() })
}
