//! What can go wrong asking a registry what a tag or digest points to.

use crate::http::HttpError;
use crate::reference::Registry;

/// A registry client error: which registry, repository and tag, what failed, and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The tag is not in the repository.
    #[error("tag {tag} not found in {registry}/{repository}: push it first, or check the tag")]
    TagNotFound {
        /// The registry.
        registry: Registry,
        /// The repository.
        repository: String,
        /// The tag.
        tag: String,
    },

    /// No manifest with this digest is in the repository.
    #[error(
        "manifest {digest} not found in {registry}/{repository}: check the digest, or push the \
         image first"
    )]
    ManifestNotFound {
        /// The registry.
        registry: Registry,
        /// The repository.
        repository: String,
        /// The digest asked for.
        digest: String,
    },

    /// The registry does not know the repository.
    #[error(
        "repository {repository} is not known to the registry {registry}: check the image name, \
         or push the image first"
    )]
    RepositoryUnknown {
        /// The registry.
        registry: Registry,
        /// The repository.
        repository: String,
    },

    /// The connection, TLS or authentication failed, or an error status without a registry
    /// meaning.
    #[error(transparent)]
    Http(#[from] HttpError),

    /// The tag or digest to look up is neither.
    #[error(
        "{reference:?} is neither a tag nor a sha256 digest; give a tag such as v1 or \
         sha256:<64 hex digits>"
    )]
    BadReference {
        /// The reference as given.
        reference: String,
    },

    /// The manifest the registry sent does not hash to the digest it stated or was asked for.
    #[error(
        "the registry sent a manifest for {url} whose sha256 is {computed}, but {expected} was \
         {source_of_expected}; the registry or something between is corrupting data: do not \
         sign this, and check the registry"
    )]
    DigestMismatch {
        /// The URL that was requested.
        url: String,
        /// `sha256:<hex>` of the bytes received.
        computed: String,
        /// The digest expected.
        expected: String,
        /// "stated in Docker-Content-Digest" or "asked for".
        source_of_expected: &'static str,
    },

    /// The answer is not a manifest tufa can describe.
    #[error("the registry's answer for {url} is not a usable manifest: {reason}")]
    BadManifest {
        /// The URL that was requested.
        url: String,
        /// What is wrong.
        reason: String,
    },
}
