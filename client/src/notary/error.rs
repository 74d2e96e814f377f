//! What can go wrong talking to notary-server.

use std::path::PathBuf;

use crate::http::TlsFileError;
use crate::tuf::{Gun, TufError};

/// A notary-server client error: which server, repository or role, what failed, and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotaryError {
    /// The server URL in the configuration cannot be used.
    #[error(
        "the notary server URL {url} cannot be used: {reason}; set --server or \
         DOCKER_CONTENT_TRUST_SERVER to an https:// URL such as https://notary.example.com:4443"
    )]
    BadServerUrl {
        /// The URL as configured.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// A CA or client certificate file cannot be read or parsed.
    #[error("cannot use the {what} {}: {reason}; {hint}", path.display())]
    TlsFile {
        /// Which file: "CA file", "client certificate", "client key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// How to fix it.
        hint: &'static str,
    },

    /// No connection could be made.
    #[error(
        "cannot reach the notary server at {url} ({reason}); check --server or \
         DOCKER_CONTENT_TRUST_SERVER, and that notary-server is running and reachable from here"
    )]
    Unreachable {
        /// The URL that was requested.
        url: String,
        /// The transport's own words.
        reason: String,
    },

    /// The TLS handshake failed, usually because the server's certificate is not trusted.
    #[error(
        "TLS with the notary server at {url} failed ({reason}); its certificate was checked \
         against {trusted}. Give tufa the CA that issued the server's certificate \
         (e.g. $DOCKER_CONFIG/tls/{host_port}/ca.crt), or use http:// if the server has no TLS"
    )]
    Tls {
        /// The URL that was requested.
        url: String,
        /// `host:port` of the server, for the docker TLS directory.
        host_port: String,
        /// The CA file used, or "the system roots" when none was given.
        trusted: String,
        /// rustls's complaint.
        reason: String,
    },

    /// The connection broke after it was made (the server closed it, or a read timed out).
    #[error(
        "the connection to the notary server broke during {method} {url} ({reason}); retry, and \
         if it keeps failing look at the notary-server log"
    )]
    Transport {
        /// The request method.
        method: String,
        /// The URL that was requested.
        url: String,
        /// The transport's own words.
        reason: String,
    },

    /// The server (or its token service) refused the credentials, or none were given.
    #[error(
        "not authorized for {action} on {gun} at {url} (tried {tried}); run `docker login {host}` \
         with an account that may {action} this repository"
    )]
    NotAuthorized {
        /// The repository.
        gun: Gun,
        /// What was attempted: "pull", "push" or "delete / key rotation".
        action: &'static str,
        /// The URL that was requested.
        url: String,
        /// Which credentials were tried (never the secret itself).
        tried: String,
        /// The host to log in to.
        host: String,
    },

    /// The token service named in the server's challenge failed.
    #[error(
        "the token service {realm} named by the notary server failed ({reason}); check that it \
         is up, and the server's `auth` settings"
    )]
    TokenService {
        /// The token service URL.
        realm: String,
        /// What went wrong.
        reason: String,
    },

    /// A newer version of some role is already on the server (`VERSION`).
    #[error(
        "publishing {gun} conflicts with a newer version on the server ({message}); someone else \
         published meanwhile: fetch the repository again and retry"
    )]
    VersionConflict {
        /// The repository.
        gun: Gun,
        /// The server's message.
        message: String,
    },

    /// The server checked the uploaded metadata and refused it (`INVALID_UPDATE`).
    #[error(
        "notary server refused the update to {gun}: {name}: {msg}; the metadata does not fit \
         what the server holds (keys, signatures, versions): fetch the repository again and \
         re-sign"
    )]
    InvalidUpdate {
        /// The repository.
        gun: Gun,
        /// The validation error's type: `ErrBadRoot`, `ErrBadTargets`, `ErrBadSnapshot`,
        /// `ErrBadHierarchy` or `ErrValidation`.
        name: String,
        /// What the server found wrong.
        msg: String,
    },

    /// The upload could not be parsed (`MALFORMED_JSON`, `MALFORMED_UPLOAD`, `INVALID_ROLE`,
    /// `NO_FILENAME`).
    #[error(
        "notary server could not read the upload to {gun}: {code}: {message}{}; this is a bug \
         in the client that built it, please report it",
        detail_suffix(detail)
    )]
    MalformedUpload {
        /// The repository.
        gun: Gun,
        /// The server's error code.
        code: String,
        /// The server's message.
        message: String,
        /// The server's detail, e.g. the role name that was refused.
        detail: String,
    },

    /// The server has no such repository, refuses the GUN, or is not a notary server.
    #[error(
        "the notary server at {url} has no repository {gun} ({status} {code}: {message}); check \
         the image name, and that --server or DOCKER_CONTENT_TRUST_SERVER names notary-server \
         rather than the registry"
    )]
    UnknownRepository {
        /// The repository.
        gun: Gun,
        /// The URL that was requested.
        url: String,
        /// HTTP status.
        status: u16,
        /// The server's error code.
        code: String,
        /// The server's message.
        message: String,
    },

    /// A response body is larger than the caller allows.
    #[error(
        "the notary server sent more than {limit} bytes for {role} of {gun} ({url}); the \
         server is broken or hostile: check --server, and report it to whoever runs the server"
    )]
    TooLarge {
        /// The repository.
        gun: Gun,
        /// What was being read: a role, a role's key.
        role: String,
        /// The cap in bytes.
        limit: u64,
        /// The URL that was requested.
        url: String,
    },

    /// The server's key answer is not a TUF key.
    #[error("{source} (from {url})")]
    BadKey {
        /// The URL that was requested.
        url: String,
        /// The parse failure.
        source: TufError,
    },

    /// Any other error status.
    #[error(
        "notary server error on {method} {url}: HTTP {status} {code}: {message}; retry, and if \
         it keeps failing look at the notary-server log"
    )]
    Server {
        /// The request method.
        method: String,
        /// The URL that was requested.
        url: String,
        /// HTTP status.
        status: u16,
        /// The server's error code, or "-" when the body was not errcode JSON.
        code: String,
        /// The server's message, or the start of the body.
        message: String,
    },
}

impl From<TlsFileError> for NotaryError {
    fn from(e: TlsFileError) -> Self {
        Self::TlsFile {
            what: e.what,
            path: e.path,
            reason: e.reason,
            hint: e.hint,
        }
    }
}

impl NotaryError {
    /// Whether a publish lost a race with another publisher: fetch again, re-sign, retry.
    pub fn is_version_conflict(&self) -> bool {
        matches!(self, Self::VersionConflict { .. })
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuf::RoleName;

    #[test]
    fn messages_name_the_object_and_the_fix() {
        let gun: Gun = "docker.io/a/b".parse().unwrap();
        let e = NotaryError::VersionConflict {
            gun: gun.clone(),
            message: "A newer version of metadata is already available.".into(),
        };
        assert!(e.is_version_conflict());
        assert!(e.to_string().contains("docker.io/a/b"));
        let e = NotaryError::NotAuthorized {
            gun,
            action: "push",
            url: "https://n:4443/v2/docker.io/a/b/_trust/tuf/".into(),
            tried: "no credentials".into(),
            host: "n:4443".into(),
        };
        assert!(!e.is_version_conflict());
        assert!(e.to_string().contains("docker login n:4443"), "{e}");
        let e = NotaryError::TooLarge {
            gun: "x/y".parse().unwrap(),
            role: RoleName::TIMESTAMP.to_string(),
            limit: 10,
            url: "u".into(),
        };
        assert!(
            e.to_string().contains("more than 10 bytes for timestamp"),
            "{e}"
        );
    }
}
