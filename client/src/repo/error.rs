//! [`RepoError`]: why writing a repository failed, and what to do.

use std::path::PathBuf;

use crate::agent::AgentClientError;
use crate::tuf::{Gun, KeyId, RemoteError, RoleName, TufError};

/// Why a repository operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// The agent failed or refused.
    #[error(transparent)]
    Agent(#[from] AgentClientError),
    /// Metadata could not be built or checked.
    #[error(transparent)]
    Tuf(#[from] TufError),
    /// The root certificate could not be made.
    #[error(transparent)]
    Certificate(#[from] crate::tuf::CertificateError),
    /// The server failed.
    #[error("{0}")]
    Server(RemoteError),
    /// Reading the repository's current state failed verification or transport.
    #[error(transparent)]
    Update(Box<crate::tuf::UpdateError>),
    /// The agent holds too few keys of a role.
    #[error("cannot sign {role}: the agent holds {have} of its keys and the role needs {threshold}; load or generate the role's key in the agent (`tufa key list` shows what it holds)")]
    MissingKeys {
        /// The role.
        role: RoleName,
        /// Keys the agent holds.
        have: usize,
        /// Signatures needed.
        threshold: u32,
    },
    /// A key recorded at init is no longer in the agent.
    #[error("key {key} chosen when the repository was initialised is no longer in the agent: load it again, or drop the staged changes and init again")]
    KeyGone {
        /// The key ID.
        key: KeyId,
    },
    /// A role that does not exist in the repository.
    #[error("role {role} does not exist in this repository: add it as a delegation first (`tufa notary delegation add`)")]
    NoSuchRole {
        /// The role.
        role: RoleName,
    },
    /// A top-level role where a delegation was expected.
    #[error("{role} is not a delegated role: delegations are named targets/<name>")]
    NotADelegation {
        /// The role.
        role: RoleName,
    },
    /// A target outside the role's delegated paths.
    #[error("{role} may not sign '{target}': its delegated paths are {paths:?}")]
    PathNotDelegated {
        /// The role.
        role: RoleName,
        /// The target.
        target: String,
        /// Its paths.
        paths: Vec<String>,
    },
    /// The changelist cannot be read or written.
    #[error("changelist {path}: {detail}")]
    Changelist {
        /// Its path.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// Nothing exists to change.
    #[error("{gun} does not exist on the server and has not been initialised here: run `tufa notary init {gun}` first")]
    NotInitialised {
        /// The repository.
        gun: Gun,
    },
    /// The root must be renewed and the agent cannot sign it.
    #[error("the root of {gun} expires at {expires} and must be re-signed, but the agent does not hold its root key: load the root key into the agent (or run the offline root ceremony), then publish")]
    RootExpiring {
        /// The repository.
        gun: Gun,
        /// When the root expires.
        expires: String,
    },
    /// Neither the agent nor the server holds the snapshot key.
    #[error("cannot publish {gun}: its snapshot key is neither in the agent nor on the server; publish from where the snapshot key is, or let the server manage snapshots (`tufa root rotate {gun} --server-managed-snapshot`)")]
    NoSnapshotSigner {
        /// The repository.
        gun: Gun,
    },
    /// Publishing kept conflicting with other publishers.
    #[error(
        "{gun}: the server kept reporting newer versions after {attempts} attempts; try again"
    )]
    Conflict {
        /// The repository.
        gun: Gun,
        /// Attempts made.
        attempts: usize,
    },
}
