//! Where verified reads fetch metadata: the notary server, or a test double.
//!
//! A store is bound to one GUN. Every read is capped (`max_len`: the recorded length, never
//! above the update's ceilings) so an endless or oversized answer is cut off before it is
//! buffered, and reported as [`OverLimit`] so the update can say which limit the server broke;
//! a role the server does not have is `Ok(None)`. A store over the network also gives each read
//! a total deadline (the notary client's: `TUFA_HTTP_TIMEOUT`, 300 s by default), so a server
//! that trickles cannot hold the update either.

use std::future::Future;

use super::{RoleName, Sha256Digest};

/// Any failure of the transport or the server, already worded for people.
pub type RemoteError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The [`RemoteError`] of a read whose answer is longer than the `max_len` asked for.
#[derive(Debug, thiserror::Error)]
#[error("{url} answered with more than {limit} bytes")]
pub struct OverLimit {
    /// What was requested.
    pub url: String,
    /// The `max_len` of the read.
    pub limit: u64,
}

/// Read access to one repository's metadata on a server.
pub trait RemoteStore: Send + Sync {
    /// The current version of `role` (`GET <role>.json`).
    fn role(
        &self,
        role: &RoleName,
        max_len: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, RemoteError>> + Send;

    /// `role` by the SHA-256 of its bytes (`GET <role>.<sha256>.json`).
    fn role_by_hash(
        &self,
        role: &RoleName,
        sha256: &Sha256Digest,
        max_len: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, RemoteError>> + Send;

    /// A given version of `role` (`GET <version>.<role>.json`), for walking the root chain.
    fn role_version(
        &self,
        role: &RoleName,
        version: u64,
        max_len: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, RemoteError>> + Send;
}
