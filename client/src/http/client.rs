//! One authenticated HTTP client, for a notary server or a registry: the 401 challenge answered
//! once per request, cached tokens, transport errors told apart, and capped body reads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::auth::{self, Challenge, Credentials, TokenCache, TokenFailure};
use super::deadline::{CONNECT_TIMEOUT, IDLE_TIMEOUT};
use super::error::{HttpError, Peer, Unreached};
use super::tls::{self, Verify};
use super::{host_port, innermost, is_loopback, read_at_most, BodyError, ErrCode};

/// Error bodies beyond this are cut off, not refused: only their start is shown.
const ERROR_BODY_MAX: usize = 64 * 1024;

/// What a request needs permission for; decides the token scope and the words in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Pull,
    Push,
    /// Deleting a repository or rotating a server key (`*`).
    Admin,
}

impl Access {
    /// The actions of docker's token scope `repository:<name>:<actions>`.
    fn actions(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Push => "pull,push",
            Self::Admin => "*",
        }
    }

    /// The same in words, for errors.
    fn verb(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Push => "push",
            Self::Admin => "delete / key rotation",
        }
    }
}

/// One request, re-sendable after an auth challenge: the one place both clients describe what
/// they send. Its deadline is the client's (every request gets the same); its size cap is the
/// caller's, given when the body is read ([`AuthClient::read_capped`]).
pub(crate) struct Request<'a> {
    pub method: Method,
    pub url: Url,
    /// The repository as the token scope names it.
    pub repository: &'a str,
    pub access: Access,
    pub accept: Option<&'a str>,
    /// `Content-Type` and body.
    pub body: Option<(String, Vec<u8>)>,
}

/// How to reach one server.
pub(crate) struct Settings<'a> {
    pub peer: Peer,
    /// The server as `docker login` names it.
    pub server: String,
    /// `host:port` of the server: docker's TLS directory for it, and token realms there are
    /// asked over the server's own connection settings.
    pub host: String,
    /// PEM CA files to trust in addition to the platform roots.
    pub ca_files: &'a [PathBuf],
    /// A PEM client certificate and its key.
    pub client_cert: Option<(&'a Path, &'a Path)>,
    /// Docker's insecure registry: no certificate checks, and a failed handshake means "try the
    /// next scheme" rather than a TLS error.
    pub insecure: bool,
    pub credentials: Option<Credentials>,
    /// How long one request may take, from connecting to the last byte of the answer.
    pub timeout: Duration,
}

/// A client for one server: one connection pool, one token cache.
pub(crate) struct AuthClient {
    peer: Peer,
    server: String,
    host: String,
    /// For the server (without certificate checks when insecure).
    http: reqwest::Client,
    /// For token services on other hosts: always checks certificates.
    verified: reqwest::Client,
    /// What certificates are checked against, for TLS error messages.
    trusted: String,
    insecure: bool,
    credentials: Option<Credentials>,
    tokens: TokenCache,
    timeout: Duration,
}

impl AuthClient {
    /// A client as `settings` say; reads the CA and client certificate files now.
    pub(crate) fn new(settings: Settings<'_>) -> Result<Self, HttpError> {
        let verified_tls =
            tls::client_config(Verify::Roots(settings.ca_files), settings.client_cert)?;
        let timeout = settings.timeout;
        let (http, verified) = if settings.insecure {
            let tls = tls::client_config(Verify::Nothing, settings.client_cert)?;
            (
                http_client(tls, timeout),
                http_client(verified_tls, timeout),
            )
        } else {
            let http = http_client(verified_tls, timeout);
            (http.clone(), http)
        };
        let trusted = if settings.ca_files.is_empty() {
            settings.peer.no_ca_files().to_owned()
        } else {
            let files: Vec<String> = settings
                .ca_files
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            let noun = if files.len() == 1 { "file" } else { "files" };
            format!("the CA {noun} {} and the system roots", files.join(", "))
        };
        Ok(Self {
            peer: settings.peer,
            server: settings.server,
            host: settings.host,
            http,
            verified,
            trusted,
            insecure: settings.insecure,
            credentials: settings.credentials,
            tokens: TokenCache::default(),
            timeout,
        })
    }

    /// Which kind of server this client talks to.
    pub(crate) fn peer(&self) -> Peer {
        self.peer
    }

    /// The server as `docker login` names it.
    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    /// Sends `request`, answering one 401 challenge (token or basic) and retrying once. A 403,
    /// or a 401 after the answer, is [`HttpError::NotAuthorized`].
    pub(crate) async fn send(&self, request: &Request<'_>) -> Result<Response, HttpError> {
        let scope = format!(
            "repository:{}:{}",
            request.repository,
            request.access.actions()
        );
        let mut authorization = self.tokens.lookup(&scope);
        let mut answered = false;
        loop {
            let mut builder = self
                .http
                .request(request.method.clone(), request.url.clone());
            if let Some(accept) = request.accept {
                builder = builder.header(ACCEPT, accept);
            }
            if let Some(value) = authorization.as_ref().and_then(auth::header_value) {
                builder = builder.header(AUTHORIZATION, value);
            }
            if let Some((content_type, body)) = &request.body {
                builder = builder
                    .header(CONTENT_TYPE, content_type)
                    .body(body.clone());
            }
            let response = builder
                .send()
                .await
                .map_err(|e| self.transport_error(request, &e))?;
            let status = response.status();
            if status == StatusCode::FORBIDDEN || (status == StatusCode::UNAUTHORIZED && answered) {
                return Err(self.not_authorized(request));
            }
            if status != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            answered = true;
            authorization = Some(self.answer(request, &scope, response.headers()).await?);
        }
    }

    /// The `Authorization` value that answers the challenge in `headers`, remembered for `scope`.
    async fn answer(
        &self,
        request: &Request<'_>,
        scope: &str,
        headers: &HeaderMap,
    ) -> Result<SecretString, HttpError> {
        match Challenge::pick(headers.get_all(WWW_AUTHENTICATE).iter()) {
            Some(Challenge::Bearer {
                realm,
                service,
                scope: asked,
            }) => {
                if self.credentials.is_some() && cleartext_realm(&request.url, &realm) {
                    return Err(HttpError::CleartextTokenRealm {
                        peer: self.peer,
                        server: self.server.clone(),
                        realm,
                        tried: Credentials::describe(self.credentials.as_ref()),
                    });
                }
                let token = auth::fetch_token(
                    self.client_for_realm(&realm),
                    &realm,
                    service.as_deref(),
                    asked.as_deref().unwrap_or(scope),
                    self.credentials.as_ref(),
                    self.timeout,
                )
                .await
                .map_err(|failure| match failure {
                    TokenFailure::Refused => self.not_authorized(request),
                    TokenFailure::Failed(reason) => HttpError::TokenService {
                        peer: self.peer,
                        server: self.server.clone(),
                        realm: realm.clone(),
                        reason,
                    },
                })?;
                let value = SecretString::from(format!("Bearer {}", token.expose_secret()));
                self.tokens.store(scope, value.clone());
                Ok(value)
            }
            Some(Challenge::Basic) => {
                let value = auth::basic_value(self.credentials.as_ref())
                    .ok_or_else(|| self.not_authorized(request))?;
                self.tokens.store_basic(value.clone());
                Ok(value)
            }
            None => Err(self.not_authorized(request)),
        }
    }

    /// A realm on the server's host is asked over the server's own connection settings (docker
    /// uses one transport for both); any other host with certificate checks.
    fn client_for_realm(&self, realm: &str) -> &reqwest::Client {
        let same_host =
            Url::parse(realm).is_ok_and(|u| host_port(&u).eq_ignore_ascii_case(&self.host));
        if same_host {
            &self.http
        } else {
            &self.verified
        }
    }

    /// Reads a success body, refusing it with `too_large` as soon as it is known to exceed
    /// `max_len`.
    pub(crate) async fn read_capped<E: From<HttpError>>(
        &self,
        request: &Request<'_>,
        response: Response,
        max_len: u64,
        too_large: impl FnOnce() -> E,
    ) -> Result<Vec<u8>, E> {
        read_at_most(response, max_len).await.map_err(|e| match e {
            BodyError::TooLarge => too_large(),
            BodyError::Broken(e) => self.transport_error(request, &e).into(),
        })
    }

    /// The error for a status the protocol above has no meaning for.
    pub(crate) fn status_error(
        &self,
        request: &Request<'_>,
        status: StatusCode,
        e: ErrCode,
    ) -> HttpError {
        let (code, message) = if request.method == Method::HEAD {
            ("-".to_owned(), "(no body in an answer to HEAD)".to_owned())
        } else {
            (e.code, e.message)
        };
        HttpError::Status {
            peer: self.peer,
            method: request.method.to_string(),
            url: request.url.to_string(),
            status: status.as_u16(),
            code,
            message,
        }
    }

    fn not_authorized(&self, request: &Request<'_>) -> HttpError {
        HttpError::NotAuthorized {
            server: self.server.clone(),
            action: request.access.verb(),
            repository: self.peer.repository(&self.server, request.repository),
            url: request.url.to_string(),
            tried: Credentials::describe(self.credentials.as_ref()),
        }
    }

    /// A failed handshake is a TLS error, unless certificates are not checked (an insecure
    /// registry's https attempt on a plain-http port): then, like no connection, it is
    /// [`HttpError::Unreachable`], and the caller may try the next scheme.
    fn transport_error(&self, request: &Request<'_>, err: &reqwest::Error) -> HttpError {
        let url = request.url.to_string();
        let tls = tls::tls_failure(err);
        if let Some(reason) = tls.clone().filter(|_| !self.insecure) {
            return HttpError::Tls {
                peer: self.peer,
                url,
                host_port: self.host.clone(),
                trusted: self.trusted.clone(),
                reason: Box::new(reason),
            };
        }
        if err.is_timeout() && !err.is_connect() {
            return HttpError::TimedOut {
                peer: self.peer,
                method: request.method.to_string(),
                url,
                limit: self.timeout,
            };
        }
        if err.is_connect() || tls.is_some() {
            return HttpError::Unreachable {
                peer: self.peer,
                server: self.server.clone(),
                attempts: vec![Unreached {
                    url,
                    reason: tls.map_or_else(|| innermost(err), |t| t.to_string()),
                }],
            };
        }
        HttpError::Transport {
            peer: self.peer,
            method: request.method.to_string(),
            url,
            reason: innermost(err),
        }
    }
}

/// The errcode JSON of an error answer, from at most [`ERROR_BODY_MAX`] bytes of it.
pub(crate) async fn error_body(mut response: Response) -> ErrCode {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = ERROR_BODY_MAX - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == ERROR_BODY_MAX {
            break;
        }
    }
    ErrCode::parse(&body)
}

/// Whether credentials would go in clear to the token service `realm` named by the server at
/// `server_url`: a plain-HTTP realm is used only when the server itself is plain HTTP on this
/// machine and so is the realm (a local test registry); docker sends them to any realm.
fn cleartext_realm(server_url: &Url, realm: &str) -> bool {
    let Ok(realm) = Url::parse(realm) else {
        // Not a URL at all: fetch_token says so.
        return false;
    };
    let local_plain =
        server_url.scheme() == "http" && is_loopback(server_url) && is_loopback(&realm);
    realm.scheme() == "http" && !local_plain
}

/// A client whose every request has `timeout` as its deadline, connect to last byte.
fn http_client(tls: rustls::ClientConfig, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(concat!("tufa/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .read_timeout(IDLE_TIMEOUT.min(timeout))
        .build()
        // Building fails only when a TLS backend or resolver cannot start; ours is preconfigured.
        .expect("a client with a preconfigured rustls backend builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_realms_only_for_plain_http_servers_on_this_machine() {
        let url = |u: &str| Url::parse(u).unwrap();
        let local_plain = url("http://127.0.0.1:5000/v2/app/manifests/v1");
        assert!(!cleartext_realm(&local_plain, "http://127.0.0.1:5001/auth"));
        assert!(!cleartext_realm(&local_plain, "http://localhost:5001/auth"));
        assert!(!cleartext_realm(&local_plain, "http://[::1]:5001/auth"));
        assert!(cleartext_realm(
            &local_plain,
            "http://auth.example.com/token"
        ));
        assert!(!cleartext_realm(
            &local_plain,
            "https://auth.example.com/token"
        ));
        // A server reached over TLS, even on this machine, never sends credentials in clear.
        let local_tls = url("https://127.0.0.1:4443/v2/a/_trust/tuf/root.json");
        assert!(cleartext_realm(&local_tls, "http://127.0.0.1:4443/token"));
        assert!(!cleartext_realm(&local_tls, "https://127.0.0.1:4443/token"));
        let remote_plain = url("http://registry.internal:5000/v2/");
        assert!(cleartext_realm(
            &remote_plain,
            "http://registry.internal:5001/auth"
        ));
        assert!(cleartext_realm(&remote_plain, "http://127.0.0.1:5001/auth"));
    }
}
