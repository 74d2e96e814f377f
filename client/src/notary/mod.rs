//! The notary-server HTTP client: metadata reads, publishing, server-managed keys, deletion.
//!
//! Layout:
//! - this file: [`NotaryConfig`], [`NotaryClient`] (one connection pool, shared token cache) and
//!   [`NotaryRepo`] (one GUN; implements [`RemoteStore`]).
//! - `multipart`: the publish body.
//! - `error`: [`NotaryError`].
//!
//! The challenge and token handling, TLS and the errcode JSON are shared with the registry
//! client in `crate::http`.

mod error;
mod multipart;

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use secrecy::SecretString;
use url::Url;

use crate::http::auth::{self, Challenge, TokenCache, TokenFailure};
use crate::http::{host_port, innermost, read_truncated, tls, ErrCode, Verify};
use crate::tuf::{Gun, OverLimit, PublicKey, RemoteError, RemoteStore, RoleName, Sha256Digest};

use multipart::Multipart;

pub use error::NotaryError;

/// Where the server is and how to authenticate to it.
#[derive(Clone, Debug)]
pub struct NotaryConfig {
    /// The server's base URL, e.g. `https://notary.docker.io` (docker requires https).
    pub server: Url,
    /// A PEM CA certificate to trust in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate and its PEM private key, for servers that require mTLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// What to answer the server's (or its token service's) challenge with.
    pub credentials: Option<Credentials>,
}

/// Registry credentials, as `docker login` stores them.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// A user name and password (or personal access token).
    Basic {
        /// The user name.
        username: String,
        /// The password; never logged or shown.
        password: SecretString,
    },
    /// An OAuth2 refresh token from `docker login` (`identitytoken` in config.json).
    IdentityToken(SecretString),
}

impl Credentials {
    /// Which credentials these are, for error messages; never the secret.
    pub(crate) fn describe(credentials: Option<&Self>) -> String {
        match credentials {
            None => "no credentials".into(),
            Some(Self::Basic { username, .. }) => format!("user {username:?} with a password"),
            Some(Self::IdentityToken(_)) => "the identity token from docker login".into(),
        }
    }
}

/// A client for one notary server: one connection pool and one token cache; cheap to clone.
#[derive(Clone)]
pub struct NotaryClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    server: Url,
    /// What the server certificate is checked against, for TLS error messages.
    trusted: String,
    credentials: Option<Credentials>,
    tokens: TokenCache,
}

/// One repository (GUN) on a notary server.
#[derive(Clone)]
pub struct NotaryRepo {
    client: NotaryClient,
    gun: Gun,
}

/// What a request needs permission for; decides the token scope and the words in errors.
#[derive(Clone, Copy)]
enum Access {
    Pull,
    Push,
    /// Deleting a repository or rotating a server key (`*`).
    Admin,
}

impl Access {
    fn actions(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Push => "pull,push",
            Self::Admin => "*",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Push => "push",
            Self::Admin => "delete / key rotation",
        }
    }
}

/// One request to the server, re-sendable after an auth challenge.
struct Call<'a> {
    method: Method,
    url: Url,
    gun: &'a Gun,
    access: Access,
    body: Option<(String, Vec<u8>)>,
}

/// The cap on a server key answer (about 100 bytes for ed25519/ecdsa; RSA keys are bigger).
pub const KEY_MAX_LEN: u64 = 64 * 1024;

/// Error bodies beyond this are cut off, not refused: only their start is shown.
const ERROR_BODY_MAX: usize = 64 * 1024;

impl NotaryClient {
    /// A client for `config.server`; reads the CA and client certificate files now.
    pub fn new(config: NotaryConfig) -> Result<Self, NotaryError> {
        let server = config.server;
        let bad = |reason: &str| NotaryError::BadServerUrl {
            url: server.to_string(),
            reason: reason.into(),
        };
        if !matches!(server.scheme(), "https" | "http") {
            return Err(bad("only https:// (or http://) URLs are supported"));
        }
        if server.host_str().is_none() {
            return Err(bad("it has no host"));
        }
        if server.query().is_some() || server.fragment().is_some() {
            return Err(bad("it has a query or fragment"));
        }
        let tls = tls::client_config(
            Verify::Roots(config.ca_file.as_slice()),
            config
                .client_cert
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path())),
        )?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(concat!("tufa/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(30))
            .read_timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| {
                bad(&format!(
                    "the HTTP client cannot be built ({})",
                    innermost(&e)
                ))
            })?;
        let trusted = match &config.ca_file {
            Some(path) => format!("the CA file {} and the system roots", path.display()),
            None => "the system roots (no CA file given)".into(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                server,
                trusted,
                credentials: config.credentials,
                tokens: TokenCache::default(),
            }),
        })
    }

    /// The server this client talks to.
    pub fn server(&self) -> &Url {
        &self.inner.server
    }

    /// The repository `gun` on this server.
    pub fn repo(&self, gun: &Gun) -> NotaryRepo {
        NotaryRepo {
            client: self.clone(),
            gun: gun.clone(),
        }
    }
}

impl NotaryRepo {
    /// The repository's GUN.
    pub fn gun(&self) -> &Gun {
        &self.gun
    }

    /// The public key the server signs `role` (timestamp or snapshot) with, created on first ask.
    pub async fn server_key(&self, role: &RoleName) -> Result<PublicKey, NotaryError> {
        self.server_key_capped(role, KEY_MAX_LEN).await
    }

    /// [`Self::server_key`] with a caller-chosen cap on the answer's size.
    pub async fn server_key_capped(
        &self,
        role: &RoleName,
        max_len: u64,
    ) -> Result<PublicKey, NotaryError> {
        self.key_call(Method::GET, Access::Push, role, max_len)
            .await
    }

    /// Has the server make a new key for `role` (timestamp or snapshot); it is used once a
    /// root listing it is published.
    pub async fn rotate_server_key(&self, role: &RoleName) -> Result<PublicKey, NotaryError> {
        self.key_call(Method::POST, Access::Admin, role, KEY_MAX_LEN)
            .await
    }

    /// Uploads role files in one atomic update; the server makes the timestamp (and snapshot,
    /// if it holds that key). A lost race is [`NotaryError::VersionConflict`].
    pub async fn publish(&self, files: &[(RoleName, Vec<u8>)]) -> Result<(), NotaryError> {
        let form = Multipart::encode(files);
        let call = Call {
            method: Method::POST,
            url: self.url(""),
            gun: &self.gun,
            access: Access::Push,
            body: Some((form.content_type(), form.body)),
        };
        let response = self.client.inner.send(&call).await?;
        if !response.status().is_success() {
            return Err(self.client.inner.failure(&call, response).await);
        }
        Ok(())
    }

    /// Deletes all of the repository's metadata on the server (succeeds if there was none).
    pub async fn delete(&self) -> Result<(), NotaryError> {
        let call = Call {
            method: Method::DELETE,
            url: self.url(""),
            gun: &self.gun,
            access: Access::Admin,
            body: None,
        };
        let response = self.client.inner.send(&call).await?;
        if !response.status().is_success() {
            return Err(self.client.inner.failure(&call, response).await);
        }
        Ok(())
    }

    async fn key_call(
        &self,
        method: Method,
        access: Access,
        role: &RoleName,
        max_len: u64,
    ) -> Result<PublicKey, NotaryError> {
        let call = Call {
            method,
            url: self.url(&format!("{role}.key")),
            gun: &self.gun,
            access,
            body: None,
        };
        let response = self.client.inner.send(&call).await?;
        if !response.status().is_success() {
            return Err(self.client.inner.failure(&call, response).await);
        }
        let what = format!("the {role} key");
        let body = self
            .client
            .inner
            .read_capped(&call, response, max_len, &what)
            .await?;
        PublicKey::from_json(role, &body).map_err(|source| NotaryError::BadKey {
            url: call.url.to_string(),
            source,
        })
    }

    /// GETs a metadata file; 404 is `None`.
    async fn fetch(
        &self,
        file: String,
        role: &RoleName,
        max_len: u64,
    ) -> Result<Option<Vec<u8>>, NotaryError> {
        let call = Call {
            method: Method::GET,
            url: self.url(&file),
            gun: &self.gun,
            access: Access::Pull,
            body: None,
        };
        let response = self.client.inner.send(&call).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(self.client.inner.failure(&call, response).await);
        }
        let body = self
            .client
            .inner
            .read_capped(&call, response, max_len, role.as_str())
            .await?;
        Ok(Some(body))
    }

    /// `<server>/v2/<gun>/_trust/tuf/<tail>`.
    fn url(&self, tail: &str) -> Url {
        let base = self.client.inner.server.as_str().trim_end_matches('/');
        let text = format!(
            "{base}/v2/{}/_trust/tuf/{}",
            encode_path(self.gun.as_str()),
            encode_path(tail)
        );
        Url::parse(&text).expect("a valid base URL with an encoded path stays valid")
    }
}

impl RemoteStore for NotaryRepo {
    async fn role(&self, role: &RoleName, max_len: u64) -> Result<Option<Vec<u8>>, RemoteError> {
        self.fetch(format!("{role}.json"), role, max_len)
            .await
            .map_err(store_error)
    }

    async fn role_by_hash(
        &self,
        role: &RoleName,
        sha256: &Sha256Digest,
        max_len: u64,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        self.fetch(format!("{role}.{sha256}.json"), role, max_len)
            .await
            .map_err(store_error)
    }

    async fn role_version(
        &self,
        role: &RoleName,
        version: u64,
        max_len: u64,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        self.fetch(format!("{version}.{role}.json"), role, max_len)
            .await
            .map_err(store_error)
    }
}

/// A read's error as the update expects it: an over-long answer is [`OverLimit`].
fn store_error(e: NotaryError) -> RemoteError {
    match e {
        NotaryError::TooLarge { url, limit, .. } => Box::new(OverLimit { url, limit }),
        other => Box::new(other),
    }
}

impl Inner {
    /// Sends `call`, answering one 401 challenge (token or basic) and retrying once.
    async fn send(&self, call: &Call<'_>) -> Result<Response, NotaryError> {
        let scope = format!("repository:{}:{}", call.gun, call.access.actions());
        let mut authorization = self.tokens.lookup(&scope);
        let mut answered = false;
        loop {
            let mut request = self.http.request(call.method.clone(), call.url.clone());
            if let Some(value) = authorization.as_ref().and_then(auth::header_value) {
                request = request.header(AUTHORIZATION, value);
            }
            if let Some((content_type, body)) = &call.body {
                request = request
                    .header(CONTENT_TYPE, content_type)
                    .body(body.clone());
            }
            let response = request
                .send()
                .await
                .map_err(|e| self.transport_error(call, &e))?;
            if response.status() != StatusCode::UNAUTHORIZED || answered {
                return Ok(response);
            }
            answered = true;
            let challenge = Challenge::pick(response.headers().get_all(WWW_AUTHENTICATE).iter());
            authorization = Some(match challenge {
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope: asked,
                }) => {
                    let token = auth::fetch_token(
                        &self.http,
                        &realm,
                        service.as_deref(),
                        asked.as_deref().unwrap_or(&scope),
                        self.credentials.as_ref(),
                    )
                    .await
                    .map_err(|failure| match failure {
                        TokenFailure::Refused => self.not_authorized(call),
                        TokenFailure::Failed(reason) => NotaryError::TokenService {
                            realm: realm.clone(),
                            reason,
                        },
                    })?;
                    let value = SecretString::from(format!(
                        "Bearer {}",
                        secrecy::ExposeSecret::expose_secret(&token)
                    ));
                    self.tokens.store(&scope, value.clone());
                    value
                }
                Some(Challenge::Basic) => {
                    let value = auth::basic_value(self.credentials.as_ref())
                        .ok_or_else(|| self.not_authorized(call))?;
                    self.tokens.store_basic(value.clone());
                    value
                }
                None => return Err(self.not_authorized(call)),
            });
        }
    }

    /// The error for a non-success answer (other than a 404 read, which is `None`).
    async fn failure(&self, call: &Call<'_>, response: Response) -> NotaryError {
        let status = response.status();
        let body = read_truncated(response, ERROR_BODY_MAX).await;
        let e = ErrCode::parse(&body);
        let gun = call.gun.clone();
        match (status, e.code.as_str()) {
            (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) => self.not_authorized(call),
            (_, "VERSION") => NotaryError::VersionConflict {
                gun,
                message: e.message,
            },
            (_, "INVALID_UPDATE") => {
                let (name, msg) = e.invalid_update();
                NotaryError::InvalidUpdate { gun, name, msg }
            }
            (_, "MALFORMED_JSON" | "MALFORMED_UPLOAD" | "INVALID_ROLE" | "NO_FILENAME") => {
                NotaryError::MalformedUpload {
                    gun,
                    detail: e.detail_text(),
                    code: e.code,
                    message: e.message,
                }
            }
            (StatusCode::NOT_FOUND, _) | (_, "INVALID_GUN") => NotaryError::UnknownRepository {
                gun,
                url: call.url.to_string(),
                status: status.as_u16(),
                code: e.code,
                message: e.message,
            },
            _ => NotaryError::Server {
                method: call.method.to_string(),
                url: call.url.to_string(),
                status: status.as_u16(),
                code: e.code,
                message: e.message,
            },
        }
    }

    /// Reads a success body, refusing it as soon as it is known to exceed `max_len`.
    async fn read_capped(
        &self,
        call: &Call<'_>,
        mut response: Response,
        max_len: u64,
        what: &str,
    ) -> Result<Vec<u8>, NotaryError> {
        let too_large = || NotaryError::TooLarge {
            gun: call.gun.clone(),
            role: what.to_owned(),
            limit: max_len,
            url: call.url.to_string(),
        };
        if response.content_length().is_some_and(|n| n > max_len) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(call, &e))?
        {
            if (body.len() + chunk.len()) as u64 > max_len {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn not_authorized(&self, call: &Call<'_>) -> NotaryError {
        NotaryError::NotAuthorized {
            gun: call.gun.clone(),
            action: call.access.verb(),
            url: call.url.to_string(),
            tried: Credentials::describe(self.credentials.as_ref()),
            host: host_port(&self.server),
        }
    }

    fn transport_error(&self, call: &Call<'_>, err: &reqwest::Error) -> NotaryError {
        let url = call.url.to_string();
        if let Some(reason) = tls::tls_failure(err) {
            return NotaryError::Tls {
                url,
                host_port: host_port(&self.server),
                trusted: self.trusted.clone(),
                reason,
            };
        }
        let reason = innermost(err);
        if err.is_connect() {
            NotaryError::Unreachable { url, reason }
        } else {
            NotaryError::Transport {
                method: call.method.to_string(),
                url,
                reason,
            }
        }
    }
}

/// Percent-encodes what a URL path cannot carry as is; `/` and `:` stay (GUNs and roles use them).
fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@!$&'()+,;=/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// Compile-time check that the client can be shared across tasks.
const _: fn() = || {
    fn shared<T: Send + Sync + Clone>() {}
    shared::<NotaryClient>();
    shared::<NotaryRepo>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_server::fake_server;

    fn repo(server: &str, gun: &str) -> NotaryRepo {
        let client = NotaryClient::new(NotaryConfig {
            server: server.parse().unwrap(),
            ca_file: None,
            client_cert: None,
            credentials: None,
        })
        .unwrap();
        client.repo(&gun.parse().unwrap())
    }

    #[test]
    fn urls_follow_the_server_routes() {
        let r = repo("https://notary.example.com:4443/", "127.0.0.1:5000/dct/app");
        assert_eq!(
            r.url("timestamp.key").as_str(),
            "https://notary.example.com:4443/v2/127.0.0.1:5000/dct/app/_trust/tuf/timestamp.key"
        );
        assert_eq!(
            r.url("").as_str(),
            "https://notary.example.com:4443/v2/127.0.0.1:5000/dct/app/_trust/tuf/"
        );
        assert_eq!(
            r.url("3.targets/releases.json").path(),
            "/v2/127.0.0.1:5000/dct/app/_trust/tuf/3.targets/releases.json"
        );
        // A path prefix on the server URL is kept; odd GUN characters are escaped.
        let r = repo("https://h/notary", "docker.io/a%b?c#d");
        assert_eq!(
            r.url("root.json").as_str(),
            "https://h/notary/v2/docker.io/a%25b%3Fc%23d/_trust/tuf/root.json"
        );
    }

    #[test]
    fn bad_server_urls_are_refused_with_the_fix() {
        let e = NotaryClient::new(NotaryConfig {
            server: "ftp://h/".parse().unwrap(),
            ca_file: None,
            client_cert: None,
            credentials: None,
        })
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("ftp://h/") && e.contains("DOCKER_CONTENT_TRUST_SERVER"),
            "{e}"
        );
    }

    fn client_for(base: &str, credentials: Option<Credentials>) -> NotaryClient {
        NotaryClient::new(NotaryConfig {
            server: base.parse().unwrap(),
            ca_file: None,
            client_cert: None,
            credentials,
        })
        .unwrap()
    }

    const UNAUTHORIZED: &str =
        r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[]}]}"#;

    #[tokio::test]
    async fn bearer_challenge_gets_a_token_once_and_reuses_it() {
        let (base, seen) = fake_server(|base, req| {
            if req.line.starts_with("GET /token?") {
                return match req.authorization.as_deref() {
                    Some("Basic YWxpY2U6czNjcmV0") => (200, vec![], r#"{"token":"T1"}"#.into()),
                    _ => (401, vec![], String::new()),
                };
            }
            match req.authorization.as_deref() {
                Some("Bearer T1") => (200, vec![], "{}".into()),
                _ => (
                    401,
                    vec![(
                        "Www-Authenticate",
                        format!(
                            r#"Bearer realm="{base}/token",service="notary",scope="repository:a/b:pull""#
                        ),
                    )],
                    UNAUTHORIZED.into(),
                ),
            }
        })
        .await;
        let alice = Credentials::Basic {
            username: "alice".into(),
            password: SecretString::from("s3cret"),
        };
        let repo = client_for(&base, Some(alice)).repo(&"a/b".parse().unwrap());
        assert_eq!(
            repo.role(&RoleName::ROOT, 100).await.unwrap(),
            Some(b"{}".to_vec())
        );
        assert_eq!(
            repo.role(&RoleName::TARGETS, 100).await.unwrap(),
            Some(b"{}".to_vec())
        );
        let lines: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.line.clone())
            .collect();
        assert_eq!(
            lines,
            [
                "GET /v2/a/b/_trust/tuf/root.json HTTP/1.1",
                "GET /token?service=notary&scope=repository%3Aa%2Fb%3Apull&account=alice HTTP/1.1",
                "GET /v2/a/b/_trust/tuf/root.json HTTP/1.1",
                "GET /v2/a/b/_trust/tuf/targets.json HTTP/1.1",
            ]
        );
    }

    #[tokio::test]
    async fn identity_tokens_are_posted_as_refresh_tokens() {
        let (base, seen) = fake_server(|base, req| {
            if req.line.starts_with("POST /token ") {
                return (200, vec![], r#"{"access_token":"T2"}"#.into());
            }
            match req.authorization.as_deref() {
                Some("Bearer T2") => (200, vec![], String::new()),
                _ => (
                    401,
                    vec![(
                        "Www-Authenticate",
                        format!(r#"Bearer realm="{base}/token",service="notary",scope="repository:a/b:*""#),
                    )],
                    UNAUTHORIZED.into(),
                ),
            }
        })
        .await;
        let token = Credentials::IdentityToken(SecretString::from("refresh-9"));
        let repo = client_for(&base, Some(token)).repo(&"a/b".parse().unwrap());
        repo.delete().await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen[1].line, "POST /token HTTP/1.1");
        assert_eq!(
            seen[1].body,
            "grant_type=refresh_token&service=notary&scope=repository%3Aa%2Fb%3A*\
             &client_id=tufa&refresh_token=refresh-9"
        );
        assert_eq!(seen[2].line, "DELETE /v2/a/b/_trust/tuf/ HTTP/1.1");
    }

    #[tokio::test]
    async fn basic_challenges_and_refusals_name_what_was_tried() {
        let (base, seen) = fake_server(|_, req| match req.authorization.as_deref() {
            Some("Basic YWxpY2U6czNjcmV0") => (200, vec![], String::new()),
            _ => (
                401,
                vec![("Www-Authenticate", r#"Basic realm="notary""#.into())],
                UNAUTHORIZED.into(),
            ),
        })
        .await;
        let gun: Gun = "a/b".parse().unwrap();
        let files = [(RoleName::TARGETS, b"{}".to_vec())];
        let alice = Credentials::Basic {
            username: "alice".into(),
            password: SecretString::from("s3cret"),
        };
        client_for(&base, Some(alice))
            .repo(&gun)
            .publish(&files)
            .await
            .unwrap();
        assert_eq!(seen.lock().unwrap().len(), 2);
        assert!(seen.lock().unwrap()[1]
            .body
            .contains("filename=\"targets\""));

        let e = client_for(&base, None)
            .repo(&gun)
            .publish(&files)
            .await
            .unwrap_err();
        let host = base.trim_start_matches("http://");
        let text = e.to_string();
        assert!(
            matches!(e, NotaryError::NotAuthorized { action: "push", .. }),
            "{e:?}"
        );
        assert!(
            text.contains("no credentials") && text.contains(&format!("docker login {host}")),
            "{text}"
        );

        let mallory = Credentials::Basic {
            username: "mallory".into(),
            password: SecretString::from("guess"),
        };
        let e = client_for(&base, Some(mallory))
            .repo(&gun)
            .server_key(&RoleName::TIMESTAMP)
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("\"mallory\"") && !text.contains("guess"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn version_conflicts_and_server_errors_are_typed() {
        let (base, _) = fake_server(|_, req| {
            if req.line.starts_with("POST") {
                (400, vec![], r#"{"errors":[{"code":"VERSION","message":"A newer version of metadata is already available.","detail":{}}]}"#.into())
            } else {
                (500, vec![], r#"{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":{}}]}"#.into())
            }
        })
        .await;
        let repo = client_for(&base, None).repo(&"a/b".parse().unwrap());
        let e = repo.publish(&[]).await.unwrap_err();
        assert!(e.is_version_conflict(), "{e:?}");
        let e = repo.server_key(&RoleName::SNAPSHOT).await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("HTTP 500 UNKNOWN: unknown error") && text.contains("snapshot.key"),
            "{text}"
        );
    }

    #[test]
    fn credentials_are_described_without_secrets() {
        let c = Credentials::Basic {
            username: "alice".into(),
            password: SecretString::from("hunter2"),
        };
        let d = Credentials::describe(Some(&c));
        assert!(d.contains("alice") && !d.contains("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
        let t = Credentials::IdentityToken(SecretString::from("zq9-refresh"));
        assert!(!Credentials::describe(Some(&t)).contains("zq9"));
        assert!(!format!("{t:?}").contains("zq9"));
    }
}
