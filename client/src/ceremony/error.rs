//! [`CeremonyError`]: why a ceremony step failed (nothing was published), and what to do.

use std::path::PathBuf;

use crate::agent::AgentClientError;
use crate::repo::RepoError;
use crate::tuf::{CacheError, CertificateError, Gun, KeyId, RemoteError, RoleName, TufError};

/// Why a ceremony step failed; nothing was published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CeremonyError {
    /// The request file is unusable.
    #[error("root request {path}: {detail}")]
    BadRequest {
        /// The file.
        path: String,
        /// What is wrong, and what to do.
        detail: String,
    },
    /// The request file could not be written.
    #[error("cannot write the root request {path}: {detail}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// A threshold that the keys cannot meet.
    #[error("a threshold of {threshold} with {keys} root key(s) cannot work: give 1 to {keys} (--threshold), or more --key")]
    Threshold {
        /// Keys given.
        keys: usize,
        /// Threshold asked.
        threshold: u32,
    },
    /// Signatures are missing.
    #[error("the new root is not signed enough yet: {missing}; sign it where those keys are (`tufa root sign REQ.json`), then publish again")]
    Unsigned {
        /// Which thresholds are short, and by which keys.
        missing: String,
    },
    /// The signed root would not pass a Notary client's checks.
    #[error("the new root would be refused by readers: {detail}")]
    Invalid {
        /// Why.
        detail: String,
    },
    /// `--key` names an agent key the request does not need.
    #[error("agent key {key} is not a root key this request needs; it needs: {needed}")]
    NotARootKey {
        /// The reference given.
        key: String,
        /// Canonical IDs still needed.
        needed: String,
    },
    /// The agent holds none of the needed keys.
    #[error("this agent holds none of the root keys the request needs ({needed}): sign on the machine whose agent holds them (`tufa --agent SOCKET root sign`)")]
    NoKeyHere {
        /// Canonical IDs still needed.
        needed: String,
    },
    /// The key has signed already.
    #[error("key {key} has already signed this request: sign with another root key")]
    AlreadySigned {
        /// The key ID.
        key: String,
    },
    /// Every device holding a key the request needs is absent.
    #[error("no device holding a root key this request needs is plugged in ({detail}); nothing was signed")]
    DevicesAbsent {
        /// The agent's words for each absent device.
        detail: String,
    },
    /// Every key the agent holds has signed already.
    #[error("every root key this agent holds has already signed this request: sign with the other devices, or publish")]
    NothingToSign,
    /// The server's root moved on since the request was made.
    #[error("the root of {gun} on the server is version {theirs}, but the request replaces version {ours}: make a new request from the current root (`tufa root rotate`)")]
    Stale {
        /// The repository.
        gun: Gun,
        /// The server's version.
        theirs: u64,
        /// The version the request replaces.
        ours: u64,
    },
    /// An init request for a repository that exists.
    #[error("{gun} already exists on the server: rotate its root with `tufa root rotate` instead of init")]
    Exists {
        /// The repository.
        gun: Gun,
    },
    /// Nobody could sign the new root's snapshots.
    #[error("the new root's snapshot key is neither in this agent nor on the server: publish from where the snapshot key is, or rotate it to the server (`tufa root rotate GUN --server-managed-snapshot`)")]
    NoSnapshotSigner,
    /// The repository to rotate does not exist.
    #[error("{gun} does not exist on the server: prepare its first root with `tufa root init`")]
    NoRepository {
        /// The repository.
        gun: Gun,
    },
    /// The root just read is no longer in the cache.
    #[error("the cached root of {gun} vanished: run the command again")]
    CacheVanished {
        /// The repository.
        gun: Gun,
    },
    /// A certificate file given as a root key is unusable.
    #[error("{path}: {message}")]
    CertificateFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        message: String,
    },
    /// A root key reference that is neither a certificate file nor an agent key.
    #[error("--key {key}: no such certificate file, and the agent says: {source}")]
    UnknownRootKey {
        /// The reference given.
        key: String,
        /// The agent's answer.
        source: AgentClientError,
    },
    /// The same root key given twice.
    #[error("--key {key}: key {id} is given twice; each root key counts once")]
    DuplicateRootKey {
        /// The reference given second.
        key: String,
        /// Its canonical key ID.
        id: KeyId,
    },
    /// Several root keys and no threshold.
    #[error("{keys} root keys given without --threshold: say how many must sign (1 to {keys})")]
    NoThreshold {
        /// Root keys given.
        keys: usize,
    },
    /// A rotation that changes nothing.
    #[error("nothing to rotate: give --key (with --threshold), --targets-key, --snapshot-key, --server-managed-snapshot, --new-timestamp-key, or --renew")]
    NothingToRotate,
    /// The server did not give (or make) one of its keys.
    #[error("the server's {role} key: {source}")]
    ServerKey {
        /// The role.
        role: RoleName,
        /// The server's error.
        source: RemoteError,
    },
    /// A rotation signed here, but this agent holds none of the root keys.
    #[error("this agent holds none of the root keys of {gun}: write a request (`tufa root rotate {gun} ... --out REQ.json`) and sign it where the root keys are")]
    NoRootKeyHere {
        /// The repository.
        gun: Gun,
    },
    /// A rotation signed here, but this agent cannot meet every threshold.
    #[error("this agent holds too few of the root keys of {gun} to sign the new root ({summary}): write a request (`tufa root rotate {gun} ... --out REQ.json`) and sign it where the other root keys are; nothing was published")]
    TooFewRootKeysHere {
        /// The repository.
        gun: Gun,
        /// The signature sets, as [`crate::ceremony::RootRequest::summary`] says them.
        summary: String,
    },
    /// A repository operation failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The trust cache could not be read.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Metadata could not be built or checked.
    #[error(transparent)]
    Tuf(#[from] TufError),
    /// The agent failed.
    #[error(transparent)]
    Agent(#[from] AgentClientError),
    /// A root certificate could not be made.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
}
