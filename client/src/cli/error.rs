//! [`CliError`]: why a command failed, in the words printed after `Error: `.
//!
//! The libraries' errors keep their types up to here (each says what failed and what to do);
//! the command line adds only its own: usage, files, the terminal, and refusals it words itself.

use std::path::PathBuf;

use crate::agent::AgentClientError;
use crate::ceremony::CeremonyError;
use crate::docker_config::DockerConfigError;
use crate::incident::IncidentError;
use crate::notary::NotaryError;
use crate::reference::ReferenceError;
use crate::registry::RegistryError;
use crate::repo::RepoError;
use crate::trust::ops::TrustError;
use crate::tuf::{CacheError, Gun, UpdateError};

/// Errors of the command line, each with what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The command line asks for something that cannot be: a flag missing, two that conflict, no
    /// terminal to ask on.
    #[error("{0}")]
    Usage(String),
    /// What was asked cannot be done to this repository as it is (docker's and notary's
    /// refusals, in their words).
    #[error("{0}")]
    Refused(String),
    /// A failure docker reports in these exact words, without tufa's `Error: ` prefix (scripts
    /// compare `tufa inspect`'s stderr with `docker trust inspect`'s).
    #[error("{0}")]
    AsDocker(String),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Reading the terminal (or tufa's own executable) failed.
    #[error("{doing}: {source}")]
    Io {
        /// What tufa was doing, e.g. "cannot read the PIN from the terminal".
        doing: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An error said about one file or repository of several.
    #[error("{context}: {source}")]
    In {
        /// The object and the operation, e.g. "could not remove signature for app".
        context: String,
        /// What failed.
        source: Box<CliError>,
    },
    /// A verb over several repositories failed for some of them (each failure was printed).
    #[error("{action}: {}", failed.join(", "))]
    Repositories {
        /// What failed, e.g. "failed to add signer to".
        action: &'static str,
        /// The repositories, as given.
        failed: Vec<String>,
    },
    /// The agent said no.
    #[error(transparent)]
    Agent(#[from] AgentClientError),
    /// A repository operation failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A root ceremony step failed.
    #[error(transparent)]
    Ceremony(#[from] CeremonyError),
    /// The notary server failed.
    #[error(transparent)]
    Notary(#[from] NotaryError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Reading a repository's trust data failed (not because the data is untrusted).
    #[error(transparent)]
    Update(#[from] UpdateError),
    /// The local trust cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// An image reference docker would refuse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// docker's config cannot be read.
    #[error(transparent)]
    DockerConfig(#[from] DockerConfigError),
    /// A docker trust operation cannot be done.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The incident flow refused.
    #[error("{0}; nothing was published")]
    Incident(#[from] IncidentError),
    /// The server's trust data failed verification and was not used.
    #[error(
        "{source}\nThe notary server {server} sent trust data for {gun} that failed \
         verification, so none of it was used: the server may be compromised or misconfigured. \
         The local trust data in {cache} was left as it was. Retry later; if this persists, \
         report it to whoever runs the server and do not rely on {gun} meanwhile"
    )]
    Untrusted {
        /// The server's URL.
        server: String,
        /// The repository.
        gun: Gun,
        /// The repository's cached metadata directory.
        cache: PathBuf,
        /// The check that failed.
        source: Box<UpdateError>,
    },
}

impl CliError {
    /// `source` said about `context` (a file, a repository).
    pub(crate) fn within(context: impl Into<String>, source: impl Into<CliError>) -> Self {
        Self::In {
            context: context.into(),
            source: Box::new(source.into()),
        }
    }
}
