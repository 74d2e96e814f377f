//! The notary-server HTTP client: metadata reads, publishing, server-managed keys, deletion.
//!
//! Layout:
//! - this file: [`NotaryConfig`], [`NotaryClient`] (one connection pool, shared token cache) and
//!   [`NotaryRepo`] (one GUN; implements [`RemoteStore`]).
//! - `multipart`: the publish body.
//! - `publisher`: [`NotaryRepo`] as the [`crate::repo::Publisher`] publishing goes through.
//! - `error`: [`NotaryError`], notary-server's own errors around the shared
//!   [`HttpError`](crate::http::HttpError).
//!
//! The challenge and token handling, TLS, transport errors and the errcode JSON are the
//! authenticated client in `crate::http`, shared with the registry client.

mod error;
mod multipart;
mod publisher;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use crate::http::{
    error_body, host_port, timeout_from_env, Access, AuthClient, Credentials, Peer, Request,
    Settings,
};
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

/// A client for one notary server: one connection pool and one token cache; cheap to clone.
#[derive(Clone)]
pub struct NotaryClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: AuthClient,
    server: Url,
}

/// One repository (GUN) on a notary server.
#[derive(Clone)]
pub struct NotaryRepo {
    client: NotaryClient,
    gun: Gun,
}

/// The cap on a server key answer (about 100 bytes for ed25519/ecdsa; RSA keys are bigger).
pub const KEY_MAX_LEN: u64 = 64 * 1024;

/// What a URL path cannot carry as is; `/` and `:` stay (GUNs and roles use them).
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'@')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b'/');

impl NotaryClient {
    /// A client for `config.server`; reads the CA and client certificate files now. Each request
    /// has the deadline `TUFA_HTTP_TIMEOUT` sets ([`crate::http::DEFAULT_TIMEOUT`] if unset).
    pub fn new(config: NotaryConfig) -> Result<Self, NotaryError> {
        Self::with_timeout(config, timeout_from_env()?)
    }

    /// [`Self::new`] with `timeout` as the deadline of each request, connect to last byte.
    pub fn with_timeout(config: NotaryConfig, timeout: Duration) -> Result<Self, NotaryError> {
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
        let host = host_port(&server);
        let http = AuthClient::new(Settings {
            peer: Peer::NotaryServer,
            server: host.clone(),
            host,
            ca_files: config.ca_file.as_slice(),
            client_cert: config
                .client_cert
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path())),
            insecure: false,
            credentials: config.credentials,
            timeout,
        })?;
        Ok(Self {
            inner: Arc::new(Inner { http, server }),
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
        let mut request = self.request(Method::POST, "", Access::Push);
        request.body = Some((form.content_type(), form.body));
        self.send(&request).await.map(drop)
    }

    /// Deletes all of the repository's metadata on the server (succeeds if there was none).
    pub async fn delete(&self) -> Result<(), NotaryError> {
        let request = self.request(Method::DELETE, "", Access::Admin);
        self.send(&request).await.map(drop)
    }

    async fn key_call(
        &self,
        method: Method,
        access: Access,
        role: &RoleName,
        max_len: u64,
    ) -> Result<PublicKey, NotaryError> {
        let request = self.request(method, &format!("{role}.key"), access);
        let response = self.send(&request).await?;
        let body = self
            .read_capped(&request, response, max_len, &format!("the {role} key"))
            .await?;
        PublicKey::from_json(role, &body).map_err(|source| NotaryError::BadKey {
            url: request.url.to_string(),
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
        let request = self.request(Method::GET, &file, Access::Pull);
        let response = self.http().send(&request).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = self.success(&request, response).await?;
        let body = self
            .read_capped(&request, response, max_len, role.as_str())
            .await?;
        Ok(Some(body))
    }

    fn http(&self) -> &AuthClient {
        &self.client.inner.http
    }

    /// A request for `<server>/v2/<gun>/_trust/tuf/<tail>`.
    fn request(&self, method: Method, tail: &str, access: Access) -> Request<'_> {
        Request {
            method,
            url: self.url(tail),
            repository: self.gun.as_str(),
            access,
            accept: None,
            body: None,
        }
    }

    /// Sends `request`; any answer but success is an error.
    async fn send(&self, request: &Request<'_>) -> Result<Response, NotaryError> {
        let response = self.http().send(request).await?;
        self.success(request, response).await
    }

    /// `response` if it is a success, else the error it says.
    async fn success(
        &self,
        request: &Request<'_>,
        response: Response,
    ) -> Result<Response, NotaryError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let e = error_body(response).await;
        Err(NotaryError::protocol(&self.gun, &request.url, status, &e)
            .unwrap_or_else(|| self.http().status_error(request, status, e).into()))
    }

    /// Reads a success body, refusing it as soon as it is known to exceed `max_len`.
    async fn read_capped(
        &self,
        request: &Request<'_>,
        response: Response,
        max_len: u64,
        what: &str,
    ) -> Result<Vec<u8>, NotaryError> {
        let too_large = || NotaryError::TooLarge {
            gun: self.gun.clone(),
            role: what.to_owned(),
            limit: max_len,
            url: request.url.to_string(),
        };
        self.http()
            .read_capped(request, response, max_len, too_large)
            .await
    }

    /// `<server>/v2/<gun>/_trust/tuf/<tail>`.
    fn url(&self, tail: &str) -> Url {
        let base = self.client.inner.server.as_str().trim_end_matches('/');
        let text = format!(
            "{base}/v2/{}/_trust/tuf/{}",
            utf8_percent_encode(self.gun.as_str(), PATH),
            utf8_percent_encode(tail, PATH)
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

// Compile-time check that the client can be shared across tasks.
const _: fn() = || {
    fn shared<T: Send + Sync + Clone>() {}
    shared::<NotaryClient>();
    shared::<NotaryRepo>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_server::{fake_server, TRICKLE};
    use crate::http::HttpError;
    use secrecy::SecretString;
    use std::time::Instant;

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
            matches!(
                e,
                NotaryError::Http(HttpError::NotAuthorized { action: "push", .. })
            ),
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

    fn alice() -> Credentials {
        Credentials::Basic {
            username: "alice".into(),
            password: SecretString::from("s3cret"),
        }
    }

    /// A client whose requests have half a second each.
    fn impatient(base: &str, credentials: Option<Credentials>) -> NotaryRepo {
        let config = NotaryConfig {
            server: base.parse().unwrap(),
            ca_file: None,
            client_cert: None,
            credentials,
        };
        NotaryClient::with_timeout(config, Duration::from_millis(500))
            .unwrap()
            .repo(&"a/b".parse().unwrap())
    }

    #[tokio::test]
    async fn a_trickled_answer_is_cut_off_at_the_deadline() {
        // 400 bytes at 20 ms each: no read waits long, but the whole takes 8 s.
        let (base, _) =
            fake_server(|_, _| (200, vec![(TRICKLE, "20".into())], "x".repeat(400))).await;
        let started = Instant::now();
        let e = impatient(&base, None)
            .role(&RoleName::ROOT, 1 << 20)
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "GET {base}/v2/a/b/_trust/tuf/root.json took longer than 0.5 s"
            )) && text.contains("TUFA_HTTP_TIMEOUT=SECONDS"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_trickling_token_service_is_cut_off_at_the_deadline() {
        let (base, _) = fake_server(|base, req| {
            if req.line.starts_with("GET /token") {
                return (
                    200,
                    vec![(TRICKLE, "20".into())],
                    r#"{"token":"T"}"#.repeat(30),
                );
            }
            (
                401,
                vec![(
                    "Www-Authenticate",
                    format!(r#"Bearer realm="{base}/token",service="notary""#),
                )],
                UNAUTHORIZED.into(),
            )
        })
        .await;
        let e = impatient(&base, Some(alice()))
            .role(&RoleName::ROOT, 1 << 20)
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "the token service {base}/token named by the notary server"
            )) && text.contains("it did not answer within 0.5 s"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn credentials_never_go_to_a_plain_http_token_service_elsewhere() {
        let realm = "http://auth.example.invalid/token";
        let (base, seen) = fake_server(move |_, _| {
            (
                401,
                vec![(
                    "Www-Authenticate",
                    format!(r#"Bearer realm="{realm}",service="notary""#),
                )],
                UNAUTHORIZED.into(),
            )
        })
        .await;
        let e = client_for(&base, Some(alice()))
            .repo(&"a/b".parse().unwrap())
            .role(&RoleName::ROOT, 1 << 20)
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!(
                "sends tufa to the token service {realm}, which is plain HTTP"
            )) && text.contains(r#"does not send user "alice" with a password over plain HTTP"#)
                && text.contains("https:// realm")
                && !text.contains("s3cret"),
            "{text}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1, "only the server was asked");
    }
}
