//! What the notary-server and registry clients share: docker's auth challenge and token service,
//! TLS with rustls, and docker/distribution's error JSON.
//!
//! Layout:
//! - `auth`: the `Www-Authenticate` challenge, docker's token service, cached tokens.
//! - `tls`: rustls with ring, platform roots plus CA files, client certificates, or no
//!   verification for docker's insecure registries.
//! - `errcode`: the `{"errors":[{"code","message","detail"}]}` bodies.

pub(crate) mod auth;
pub(crate) mod errcode;
pub(crate) mod tls;

#[cfg(test)]
pub(crate) mod test_server;

use std::error::Error as StdError;

use reqwest::Response;
use url::Url;

pub(crate) use errcode::ErrCode;
pub(crate) use tls::{TlsFileError, Verify};

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

/// Reads at most `cap` bytes of a body; the rest is dropped with the connection.
pub(crate) async fn read_truncated(mut response: Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = cap - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == cap {
            break;
        }
    }
    body
}
