//! What can go wrong talking to notary-server.

use reqwest::StatusCode;
use url::Url;

use crate::http::{ErrCode, HttpError};
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

    /// The connection, TLS or authentication failed, or an error status without a notary
    /// meaning.
    #[error(transparent)]
    Http(#[from] HttpError),

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
}

impl NotaryError {
    /// Whether a publish lost a race with another publisher: fetch again, re-sign, retry.
    pub fn is_version_conflict(&self) -> bool {
        matches!(self, Self::VersionConflict { .. })
    }

    /// What an error answer means in notary-server's protocol, if it means anything there.
    pub(crate) fn protocol(gun: &Gun, url: &Url, status: StatusCode, e: &ErrCode) -> Option<Self> {
        let gun = gun.clone();
        Some(match (status, e.code.as_str()) {
            (_, "VERSION") => Self::VersionConflict {
                gun,
                message: e.message.clone(),
            },
            (_, "INVALID_UPDATE") => {
                let (name, msg) = e.invalid_update();
                Self::InvalidUpdate { gun, name, msg }
            }
            (_, "MALFORMED_JSON" | "MALFORMED_UPLOAD" | "INVALID_ROLE" | "NO_FILENAME") => {
                Self::MalformedUpload {
                    gun,
                    detail: e.detail_text(),
                    code: e.code.clone(),
                    message: e.message.clone(),
                }
            }
            (StatusCode::NOT_FOUND, _) | (_, "INVALID_GUN") => Self::UnknownRepository {
                gun,
                url: url.to_string(),
                status: status.as_u16(),
                code: e.code.clone(),
                message: e.message.clone(),
            },
            _ => return None,
        })
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
        let e = NotaryError::from(HttpError::NotAuthorized {
            server: "n:4443".into(),
            action: "push",
            repository: gun.to_string(),
            url: "https://n:4443/v2/docker.io/a/b/_trust/tuf/".into(),
            tried: "no credentials".into(),
        });
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
