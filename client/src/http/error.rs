//! What can go wrong talking HTTP to a notary server or a registry, before their protocols start.

use std::fmt;
use std::time::Duration;

use super::deadline::{seconds, DEFAULT_TIMEOUT, TIMEOUT_VAR};

use super::refusal::TlsFailure;
use super::tls::TlsFileError;

/// Which kind of server a client talks to; decides the words and the fix in its errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Peer {
    /// A notary server.
    NotaryServer,
    /// A registry (Distribution API).
    Registry,
}

/// One URL that could not be reached, and the transport's own words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreached {
    /// The URL that was requested.
    pub url: String,
    /// Why no connection was made.
    pub reason: String,
}

/// An HTTP error shared by the notary and registry clients: which server and URL, what failed,
/// and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// A CA or client certificate file cannot be read or parsed.
    #[error(transparent)]
    TlsFile(#[from] TlsFileError),

    /// No connection could be made (with any scheme tried).
    #[error(
        "cannot reach {} {server} ({}); {}",
        .peer.noun(),
        Attempts(.attempts),
        .peer.unreachable_fix(.server)
    )]
    Unreachable {
        /// Which kind of server.
        peer: Peer,
        /// The server as `docker login` names it.
        server: String,
        /// Each URL tried and why it failed.
        attempts: Vec<Unreached>,
    },

    /// The TLS handshake failed, usually because the server's certificate is not trusted.
    #[error(
        "TLS with {} at {url} failed: {reason}{}. {}",
        .peer.noun(),
        checked_against(.reason, .trusted),
        .reason.fix(.peer, .host_port)
    )]
    Tls {
        /// The server.
        peer: Peer,
        /// The URL that was requested.
        url: String,
        /// `host:port` of the server, for docker's TLS directory.
        host_port: String,
        /// The CA files used, or "the system roots" when none was given.
        trusted: String,
        /// What failed, in words (boxed: it is the largest part of an error often returned).
        reason: Box<TlsFailure>,
    },

    /// The connection broke after it was made (the server closed it, or a read timed out).
    #[error(
        "the connection to {} broke during {method} {url} ({reason}); retry, and if it keeps \
         failing look at {}",
        .peer.noun(),
        .peer.log()
    )]
    Transport {
        /// The server.
        peer: Peer,
        /// The request method.
        method: String,
        /// The URL that was requested.
        url: String,
        /// The transport's own words.
        reason: String,
    },

    /// A request did not finish within tufa's deadline for one request.
    #[error(
        "{method} {url} took longer than {}, the most tufa gives one request from connecting \
         to the last byte: {} or the network is too slow, or the server is stalling on purpose. \
         On a slow link allow more time with {TIMEOUT_VAR}=SECONDS; otherwise look at {}",
        seconds(*.limit),
        .peer.noun(),
        .peer.log()
    )]
    TimedOut {
        /// The server.
        peer: Peer,
        /// The request method.
        method: String,
        /// The URL that was requested.
        url: String,
        /// The deadline.
        limit: Duration,
    },

    /// The deadline in the environment cannot be read.
    #[error(
        "{TIMEOUT_VAR}={value:?} is not a number of seconds: set it to e.g. 600, or unset it \
         for the default of {}",
        seconds(DEFAULT_TIMEOUT)
    )]
    BadTimeout {
        /// The variable's value (at most its first 40 characters).
        value: String,
    },

    /// The server names a plain-HTTP token service, and credentials would go to it in clear.
    #[error(
        "{} {server} sends tufa to the token service {realm}, which is plain HTTP: tufa does \
         not send {tried} over plain HTTP, where anyone on the way can read them. Ask whoever \
         runs the server to give its token service an https:// realm (a plain-HTTP token \
         service is used only by a plain-HTTP server on this machine, and only on this machine)",
        .peer.noun()
    )]
    CleartextTokenRealm {
        /// Which kind of server.
        peer: Peer,
        /// The server as `docker login` names it.
        server: String,
        /// The token service URL.
        realm: String,
        /// Which credentials were withheld (never the secret itself).
        tried: String,
    },

    /// The server (or its token service) refused the credentials, or none were given.
    #[error(
        "not authorized for {action} on {repository} at {url} (tried {tried}); run `docker \
         login {server}` with an account that may {action} this repository"
    )]
    NotAuthorized {
        /// The server as `docker login` names it.
        server: String,
        /// What was attempted: "pull", "push" or "delete / key rotation".
        action: &'static str,
        /// The repository, as the user names it.
        repository: String,
        /// The URL that was requested.
        url: String,
        /// Which credentials were tried (never the secret itself).
        tried: String,
    },

    /// The token service named in the server's challenge failed.
    #[error(
        "the token service {realm} named by {} {server} failed ({reason}); check that it is up{}",
        .peer.noun(),
        .peer.token_fix()
    )]
    TokenService {
        /// Which kind of server.
        peer: Peer,
        /// The server as `docker login` names it.
        server: String,
        /// The token service URL.
        realm: String,
        /// What went wrong.
        reason: String,
    },

    /// An error status the protocol above does not explain.
    #[error(
        "{} error on {method} {url}: HTTP {status} {code}: {message}; retry, and if it keeps \
         failing look at {}",
        .peer.kind(),
        .peer.log()
    )]
    Status {
        /// The server.
        peer: Peer,
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

impl Peer {
    fn kind(self) -> &'static str {
        match self {
            Self::NotaryServer => "notary server",
            Self::Registry => "registry",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::NotaryServer => "the notary server",
            Self::Registry => "the registry",
        }
    }

    fn log(self) -> &'static str {
        match self {
            Self::NotaryServer => "the notary-server log",
            Self::Registry => "the registry's log",
        }
    }

    /// A repository as the user names it: registries' token scopes leave the registry out.
    pub(crate) fn repository(self, server: &str, scope_name: &str) -> String {
        match self {
            Self::NotaryServer => scope_name.to_owned(),
            Self::Registry => format!("{server}/{scope_name}"),
        }
    }

    /// What certificates are checked against when no CA file is given.
    pub(crate) fn no_ca_files(self) -> &'static str {
        match self {
            Self::NotaryServer => "the system roots (no CA file given)",
            Self::Registry => "the system roots (no CA in $DOCKER_CONFIG/tls)",
        }
    }

    fn unreachable_fix(self, server: &str) -> String {
        match self {
            Self::NotaryServer => "check --server or DOCKER_CONTENT_TRUST_SERVER, and that \
                                      notary-server is running and reachable from here"
                .into(),
            Self::Registry => {
                format!("check that the registry is running and that {server} is its address")
            }
        }
    }

    fn token_fix(self) -> &'static str {
        match self {
            Self::NotaryServer => ", and the server's `auth` settings",
            Self::Registry => "",
        }
    }
}

/// " (checked against …)" after a certificate refusal; nothing after other TLS failures.
fn checked_against(reason: &TlsFailure, trusted: &str) -> String {
    if reason.is_certificate() {
        format!(" (checked against {trusted})")
    } else {
        String::new()
    }
}

/// `url: reason; url: reason`.
struct Attempts<'a>(&'a [Unreached]);

impl fmt::Display for Attempts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", a.url, a.reason)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_server_and_the_fix() {
        let e = HttpError::NotAuthorized {
            server: "n:4443".into(),
            action: "push",
            repository: Peer::NotaryServer.repository("n:4443", "docker.io/a/b"),
            url: "https://n:4443/v2/docker.io/a/b/_trust/tuf/".into(),
            tried: "no credentials".into(),
        };
        assert_eq!(
            e.to_string(),
            "not authorized for push on docker.io/a/b at https://n:4443/v2/docker.io/a/b/_trust/\
             tuf/ (tried no credentials); run `docker login n:4443` with an account that may \
             push this repository"
        );
        let e = HttpError::Unreachable {
            peer: Peer::Registry,
            server: "r:5000".into(),
            attempts: vec![
                Unreached {
                    url: "https://r:5000/v2/".into(),
                    reason: "refused".into(),
                },
                Unreached {
                    url: "http://r:5000/v2/".into(),
                    reason: "refused".into(),
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "cannot reach the registry r:5000 (https://r:5000/v2/: refused; http://r:5000/v2/: \
             refused); check that the registry is running and that r:5000 is its address"
        );
        let e = HttpError::Status {
            peer: Peer::NotaryServer,
            method: "GET".into(),
            url: "u".into(),
            status: 500,
            code: "UNKNOWN".into(),
            message: "unknown error".into(),
        };
        assert!(
            e.to_string()
                .starts_with("notary server error on GET u: HTTP 500 UNKNOWN: unknown error")
                && e.to_string().ends_with("look at the notary-server log"),
            "{e}"
        );
        assert_eq!(
            Peer::Registry.repository("r:5000", "team/app"),
            "r:5000/team/app"
        );
    }
}
