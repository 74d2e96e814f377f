//! What the notary-server and registry clients share: one authenticated client (docker's auth
//! challenge and token service), TLS with rustls, its errors, and docker/distribution's error
//! JSON.
//!
//! Layout:
//! - `client`: the authenticated client: the 401 loop, transport errors, capped reads.
//! - `deadline`: how long one request may take ([`TIMEOUT_VAR`], [`DEFAULT_TIMEOUT`]).
//! - `auth`: [`Credentials`], the `Www-Authenticate` challenge, docker's token service, cached
//!   tokens.
//! - `error`: [`HttpError`], what fails before the notary or registry protocol starts.
//! - `tls`: rustls with ring, platform roots plus CA files (a server certificate that is itself
//!   in a CA file is accepted as Go accepts it), client certificates, or no verification for
//!   docker's insecure registries.
//! - `refusal`: [`TlsFailure`], why a certificate or handshake was refused, in words.
//! - `errcode`: the `{"errors":[{"code","message","detail"}]}` bodies.

pub(crate) mod auth;
pub(crate) mod client;
mod deadline;
pub(crate) mod errcode;
mod error;
mod refusal;
pub(crate) mod tls;

#[cfg(test)]
pub(crate) mod test_server;

use std::error::Error as StdError;

use reqwest::Response;
use url::Url;

pub use auth::Credentials;
pub(crate) use client::{error_body, Access, AuthClient, Request, Settings};
pub use deadline::{timeout_from_env, DEFAULT_TIMEOUT, TIMEOUT_VAR};
pub(crate) use errcode::ErrCode;
pub use error::{HttpError, Peer, Unreached};
pub use refusal::TlsFailure;
pub use tls::TlsFileError;

/// The last error in a chain: the one that says what actually happened.
pub(crate) fn innermost(err: &(dyn StdError + 'static)) -> String {
    let mut last = err;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// `host:port` as docker names its TLS directories (`$DOCKER_CONFIG/tls/<host:port>/`).
pub(crate) fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Whether `url`'s host is this machine: `localhost`, 127.0.0.0/8 or `::1` (docker's loopback
/// rule for insecure registries).
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

/// Why a body was not read whole.
pub(crate) enum BodyError {
    /// It is (or says it is) longer than the cap.
    TooLarge,
    /// The connection broke.
    Broken(reqwest::Error),
}

/// Reads a body, refusing it as soon as it is known to exceed `max_len` bytes.
pub(crate) async fn read_at_most(
    mut response: Response,
    max_len: u64,
) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > max_len) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Broken)? {
        if (body.len() + chunk.len()) as u64 > max_len {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
