//! The cache hand-off: lock the GUN's cache, verify against what it holds, commit what verified.

use crate::tuf::cache::{CacheError, TrustCache};
use crate::tuf::error::{UpdateError, UpdateWarning};
use crate::tuf::{Gun, RemoteStore};

use super::options::UpdateOptions;
use super::verified::VerifiedRepo;
use super::workflow::verify;

/// Fetches, verifies and caches the trust data of `gun` from `store`.
///
/// The GUN's cache is locked throughout ([`TrustCache::lock`]), so other tufa processes neither
/// change it under the verification nor see it half-written. If a program that takes no lock
/// (the docker or notary CLI) wrote it meanwhile, the update starts over from the newer cache;
/// after a few such tries it leaves the cache to that program and warns
/// ([`UpdateWarning::NotCached`]). When refused, nothing was written to `cache`. Warnings
/// (near-expiry root certificates, skipped delegations, ignored targets) are in
/// [`VerifiedRepo::warnings`].
pub async fn update<S: RemoteStore>(
    store: &S,
    cache: &TrustCache,
    gun: &Gun,
    options: &UpdateOptions,
) -> Result<VerifiedRepo, UpdateError> {
    const ATTEMPTS: usize = 3;
    let mut attempt = 1;
    loop {
        let lock = cache.lock(gun).await?;
        let view = lock.read().await?;
        let (mut repo, staged) = verify(store, cache, &view, gun, options).await?;
        match lock.commit(&view, &staged) {
            Err(CacheError::Changed { .. }) if attempt < ATTEMPTS => {
                tracing::info!(gun = %gun, attempt, "the cache changed while read; reading again");
                attempt += 1;
            }
            // What was verified stands; only the cache stays the other program's.
            Err(e @ CacheError::Changed { .. }) => {
                repo.warnings.push(UpdateWarning::NotCached {
                    reason: e.to_string(),
                });
                return Ok(repo);
            }
            result => return result.map(|()| repo).map_err(UpdateError::from),
        }
    }
}

/// As [`update`], but the cache is written on a blocking thread while the caller goes on:
/// [`PendingCommit::finish`] waits for it, and the GUN stays locked until then. Dropped
/// unfinished, it still completes unless the process exits first, which leaves the cache as it
/// was (as a failed update does). A cache some other program changed meanwhile is not written
/// ([`CacheError::Changed`] from `finish`).
pub async fn update_deferred<S: RemoteStore>(
    store: &S,
    cache: &TrustCache,
    gun: &Gun,
    options: &UpdateOptions,
) -> Result<(VerifiedRepo, PendingCommit), UpdateError> {
    let lock = cache.lock(gun).await?;
    let view = lock.read().await?;
    let (repo, staged) = verify(store, cache, &view, gun, options).await?;
    let task = tokio::task::spawn_blocking(move || lock.commit(&view, &staged));
    Ok((repo, PendingCommit(task)))
}

/// A cache write started by [`update_deferred`].
#[derive(Debug)]
pub struct PendingCommit(tokio::task::JoinHandle<Result<(), crate::tuf::CacheError>>);

impl PendingCommit {
    /// Waits until the verified files are in the cache.
    pub async fn finish(self) -> Result<(), crate::tuf::CacheError> {
        match self.0.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => unreachable!("a blocking task is never cancelled once it runs"),
        }
    }
}
