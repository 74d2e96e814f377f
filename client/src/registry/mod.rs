//! A Distribution API (registry v2) client: what a tag or digest points to, as `docker trust
//! sign` and DCT pulls need it.
//!
//! As docker does it:
//! - **Scheme.** https, checked against the platform roots plus `$DOCKER_CONFIG/tls/<host:port>/
//!   *.crt`, with the client certificate found there. An insecure registry (loopback and
//!   `localhost` by default, or listed by the caller) is tried with https without certificate
//!   checks first, then with plain http; the scheme that answered is kept.
//! - **Auth.** A 401 `Www-Authenticate: Bearer realm,service,scope` challenge is answered with a
//!   token for `repository:<repo>:pull` from the realm (credentials from the docker config, as
//!   `docker login` stored them); `Basic` with the user name and password. Unlike docker,
//!   credentials never go to a plain-`http://` realm unless the registry itself is plain HTTP on
//!   loopback (and so is the realm). That is the authenticated client in `crate::http`, shared
//!   with the notary client; the scheme fallback is a layer above it, here.
//! - **Limits.** Each request has a total deadline (`TUFA_HTTP_TIMEOUT`, 300 s by default);
//!   manifests are read up to 4 MiB, docker's limit.
//! - **Manifests.** `HEAD /v2/<repo>/manifests/<ref>` with `Accept` for docker schema2 manifests
//!   and manifest lists and OCI manifests and indexes (registry 2.8 answers 400 or 404 without
//!   it); when the answer lacks `Docker-Content-Digest`, a GET whose body is hashed. A digest the
//!   registry states is checked against the bytes it sent, and against the digest asked for.
//!
//! Layout: this file ([`RegistryConfig`], [`RegistryClient`], the scheme fallback), `manifest`
//! (media types, [`Descriptor`], what headers tell), `error` ([`RegistryError`]).

mod error;
mod manifest;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use url::Url;

use crate::docker_config::DockerConfig;
use crate::http::{
    error_body, timeout_from_env, Access, AuthClient, Credentials, HttpError, Peer, Request,
    Settings,
};
use crate::reference::{ImageRef, Registry, DEFAULT_TAG};
use crate::tuf::Sha256Digest;

pub use error::RegistryError;
pub use manifest::{
    Descriptor, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, MANIFEST_MAX_LEN, MANIFEST_TYPES, OCI_INDEX,
    OCI_MANIFEST,
};

use manifest::{
    content_type, descriptor_from_headers, header_str, media_type_in_body, ManifestRef,
    CONTENT_DIGEST,
};

/// How to reach one registry.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// The registry, as named in image references.
    pub registry: Registry,
    /// Whether to skip certificate checks and fall back to plain http, as docker does for
    /// insecure registries.
    pub insecure: bool,
    /// PEM CA files to trust in addition to the platform roots.
    pub ca_files: Vec<PathBuf>,
    /// A PEM client certificate and its key, for registries that require mTLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// What to answer the registry's (or its token service's) challenge with.
    pub credentials: Option<Credentials>,
}

/// A client for one registry: one connection pool and one token cache; cheap to clone.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    /// The base URLs to try in order: `https://host`, then `http://host` for insecure registries.
    bases: Vec<Url>,
    /// The index in `bases` that answered last; tried first.
    working: Mutex<Option<usize>>,
    http: AuthClient,
}

/// One request, re-sendable on another scheme.
struct Call<'a> {
    method: Method,
    repository: &'a str,
    /// Path and query after the base URL, e.g. `/v2/app/manifests/v1`.
    path: String,
    accept: Option<String>,
}

impl RegistryConfig {
    /// docker's settings for `registry`: CA and client certificate from `$DOCKER_CONFIG/tls/
    /// <host:port>/`, the credentials `docker login` stored (this may run a credential helper),
    /// and insecure if the registry is loopback or `localhost`, or in `insecure_registries`.
    pub fn from_docker_config(
        registry: &Registry,
        docker: &DockerConfig,
        insecure_registries: &[Registry],
    ) -> Self {
        let tls = docker.tls_dir(registry.api_host());
        Self {
            registry: registry.clone(),
            insecure: registry.is_insecure_by_default() || insecure_registries.contains(registry),
            ca_files: tls.ca_files,
            client_cert: tls.client,
            credentials: docker.credentials_for(registry.as_str()),
        }
    }
}

impl RegistryClient {
    /// A client for `config.registry`; reads the CA and client certificate files now. Each
    /// request has the deadline `TUFA_HTTP_TIMEOUT` sets ([`crate::http::DEFAULT_TIMEOUT`] if
    /// unset).
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        Self::with_timeout(config, timeout_from_env()?)
    }

    /// [`Self::new`] with `timeout` as the deadline of each request, connect to last byte.
    pub fn with_timeout(config: RegistryConfig, timeout: Duration) -> Result<Self, RegistryError> {
        let host = config.registry.api_host();
        let mut bases = vec![base_url("https", host)];
        if config.insecure {
            bases.push(base_url("http", host));
        }
        let http = AuthClient::new(Settings {
            peer: Peer::Registry,
            server: config.registry.to_string(),
            host: host.to_owned(),
            ca_files: &config.ca_files,
            client_cert: config
                .client_cert
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path())),
            insecure: config.insecure,
            credentials: config.credentials,
            timeout,
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                registry: config.registry,
                bases,
                working: Mutex::new(None),
                http,
            }),
        })
    }

    /// The registry this client talks to.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// What `reference` (a tag or `sha256:<hex>`) in `repository` points to.
    pub async fn manifest_descriptor(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Descriptor, RegistryError> {
        let wanted = ManifestRef::parse(reference)?;
        let head = self.manifest_call(Method::HEAD, repository, reference);
        let response = self.inner.send(&head).await?;
        match response.status() {
            StatusCode::OK => {
                if let Some(found) = descriptor_from_headers(response.headers()) {
                    if let ManifestRef::Digest(d) = &wanted {
                        if *d != found.digest {
                            return Err(RegistryError::DigestMismatch {
                                url: self.inner.url_for(&head),
                                computed: found.oci_digest(),
                                expected: format!("sha256:{d}"),
                                source_of_expected: "asked for",
                            });
                        }
                    }
                    return Ok(found);
                }
            }
            StatusCode::NOT_FOUND => {}
            _ => return Err(self.inner.failure(&head, response).await),
        }
        // HEAD did not tell enough (or said 404, whose reason only a GET body names).
        let get = self.manifest_call(Method::GET, repository, reference);
        let response = self.inner.send(&get).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(self.not_found(repository, &wanted, response).await);
        }
        if !response.status().is_success() {
            return Err(self.inner.failure(&get, response).await);
        }
        let url = self.inner.url_for(&get);
        let headers = response.headers().clone();
        let body = self.inner.read_manifest(&get, response).await?;
        let digest = Sha256Digest::of(&body);
        let computed = format!("sha256:{digest}");
        if let Some(stated) = header_str(&headers, CONTENT_DIGEST) {
            // Only a sha256 statement can be compared; registries use sha256 by default.
            if stated.starts_with("sha256:") && stated != computed {
                return Err(RegistryError::DigestMismatch {
                    url,
                    computed,
                    expected: stated.to_owned(),
                    source_of_expected: "stated in Docker-Content-Digest",
                });
            }
        }
        if let ManifestRef::Digest(d) = &wanted {
            if *d != digest {
                return Err(RegistryError::DigestMismatch {
                    url,
                    computed,
                    expected: format!("sha256:{d}"),
                    source_of_expected: "asked for",
                });
            }
        }
        let media_type = match content_type(&headers) {
            Some(t) => t,
            None => media_type_in_body(&body).ok_or_else(|| RegistryError::BadManifest {
                url,
                reason: "it has neither a Content-Type nor a mediaType field".into(),
            })?,
        };
        Ok(Descriptor {
            digest,
            size: body.len() as u64,
            media_type,
        })
    }

    /// What `image` points to: its digest if it has one, else its tag, else `latest`.
    pub async fn resolve(&self, image: &ImageRef) -> Result<Descriptor, RegistryError> {
        let reference = image
            .digest()
            .or(image.tag())
            .unwrap_or(DEFAULT_TAG)
            .to_owned();
        self.manifest_descriptor(image.repository(), &reference)
            .await
    }

    /// Whether the registry holds the manifest `digest` (`sha256:<hex>`) in `repository`.
    pub async fn manifest_exists(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        let ManifestRef::Digest(wanted) = ManifestRef::parse(digest)? else {
            return Err(RegistryError::BadReference {
                reference: digest.to_owned(),
            });
        };
        let head = self.manifest_call(Method::HEAD, repository, digest);
        let response = self.inner.send(&head).await?;
        match response.status() {
            StatusCode::OK => {
                let stated = header_str(response.headers(), CONTENT_DIGEST);
                if let Some(stated) = stated.filter(|s| s.starts_with("sha256:")) {
                    if stated != format!("sha256:{wanted}") {
                        return Err(RegistryError::DigestMismatch {
                            url: self.inner.url_for(&head),
                            computed: stated.to_owned(),
                            expected: format!("sha256:{wanted}"),
                            source_of_expected: "asked for",
                        });
                    }
                }
                Ok(true)
            }
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.inner.failure(&head, response).await),
        }
    }

    fn manifest_call<'a>(&self, method: Method, repository: &'a str, reference: &str) -> Call<'a> {
        Call {
            method,
            repository,
            path: format!("/v2/{repository}/manifests/{reference}"),
            accept: Some(MANIFEST_TYPES.join(", ")),
        }
    }

    /// The error for a 404 manifest GET: unknown repository, tag or digest.
    async fn not_found(
        &self,
        repository: &str,
        wanted: &ManifestRef,
        response: Response,
    ) -> RegistryError {
        let e = error_body(response).await;
        let registry = self.inner.registry.clone();
        let mut repository_known = e.code != "NAME_UNKNOWN";
        if repository_known {
            // Registry 2.8 says MANIFEST_UNKNOWN for a tag in a repository it never saw; its
            // tag list tells the two apart.
            let tags = Call {
                method: Method::GET,
                repository,
                path: format!("/v2/{repository}/tags/list"),
                accept: None,
            };
            if let Ok(r) = self.inner.send(&tags).await {
                if r.status() == StatusCode::NOT_FOUND {
                    let e = error_body(r).await;
                    repository_known = e.code != "NAME_UNKNOWN";
                }
            }
        }
        let repository = repository.to_owned();
        match wanted {
            _ if !repository_known => RegistryError::RepositoryUnknown {
                registry,
                repository,
            },
            ManifestRef::Tag(tag) => RegistryError::TagNotFound {
                registry,
                repository,
                tag: tag.clone(),
            },
            ManifestRef::Digest(d) => RegistryError::ManifestNotFound {
                registry,
                repository,
                digest: format!("sha256:{d}"),
            },
        }
    }
}

impl Call<'_> {
    /// This call on one base URL.
    fn on(&self, base: &Url) -> Request<'_> {
        Request {
            method: self.method.clone(),
            url: join(base, &self.path),
            repository: self.repository,
            access: Access::Pull,
            accept: self.accept.as_deref(),
            body: None,
        }
    }
}

impl Inner {
    /// Sends `call` to the scheme that worked last, else to each in turn (https, then http for
    /// insecure registries) until one connects.
    async fn send(&self, call: &Call<'_>) -> Result<Response, RegistryError> {
        let remembered = *self.working.lock().unwrap_or_else(|e| e.into_inner());
        let order: Vec<usize> = match remembered {
            Some(i) => vec![i],
            None => (0..self.bases.len()).collect(),
        };
        let mut unreached = Vec::new();
        for i in order {
            match self.http.send(&call.on(&self.bases[i])).await {
                Ok(response) => {
                    *self.working.lock().unwrap_or_else(|e| e.into_inner()) = Some(i);
                    return Ok(response);
                }
                // The next scheme may work.
                Err(HttpError::Unreachable { attempts, .. }) => unreached.extend(attempts),
                Err(e) => return Err(e.into()),
            }
        }
        Err(HttpError::Unreachable {
            peer: self.http.peer(),
            server: self.http.server().to_owned(),
            attempts: unreached,
        }
        .into())
    }

    /// The call on the scheme in use (or the first one).
    fn current<'c>(&self, call: &'c Call<'_>) -> Request<'c> {
        let i = self
            .working
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(0);
        call.on(&self.bases[i])
    }

    /// The URL of `call` on the scheme in use, for messages.
    fn url_for(&self, call: &Call<'_>) -> String {
        self.current(call).url.to_string()
    }

    /// The error for a non-success answer other than 401, 403 and manifest 404s.
    async fn failure(&self, call: &Call<'_>, response: Response) -> RegistryError {
        let status = response.status();
        let e = error_body(response).await;
        self.http
            .status_error(&self.current(call), status, e)
            .into()
    }

    /// Reads a manifest body, refusing it beyond [`MANIFEST_MAX_LEN`].
    async fn read_manifest(
        &self,
        call: &Call<'_>,
        response: Response,
    ) -> Result<Vec<u8>, RegistryError> {
        let too_large = || RegistryError::BadManifest {
            url: self.url_for(call),
            reason: format!("it is larger than {MANIFEST_MAX_LEN} bytes, docker's limit"),
        };
        self.http
            .read_capped(&self.current(call), response, MANIFEST_MAX_LEN, too_large)
            .await
    }
}

fn base_url(scheme: &str, host: &str) -> Url {
    Url::parse(&format!("{scheme}://{host}")).expect("a parsed registry makes a valid URL")
}

fn join(base: &Url, path: &str) -> Url {
    let text = format!("{}{path}", base.as_str().trim_end_matches('/'));
    Url::parse(&text).expect("registry paths are URL-safe")
}

// Compile-time check that the client can be shared across tasks.
const _: fn() = || {
    fn shared<T: Send + Sync + Clone>() {}
    shared::<RegistryClient>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_server::{fake_server, Answer, Seen, TRICKLE};
    use secrecy::SecretString;

    const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;

    fn sha(body: &str) -> String {
        format!("sha256:{}", Sha256Digest::of(body.as_bytes()))
    }

    fn client(base: &str, credentials: Option<Credentials>) -> RegistryClient {
        let registry: Registry = base.trim_start_matches("http://").parse().unwrap();
        assert!(registry.is_insecure_by_default());
        RegistryClient::new(RegistryConfig {
            registry,
            insecure: true,
            ca_files: Vec::new(),
            client_cert: None,
            credentials,
        })
        .unwrap()
    }

    fn lines(seen: &crate::http::test_server::SeenLog) -> Vec<String> {
        seen.lock()
            .unwrap()
            .iter()
            .map(|s| s.line.clone())
            .collect()
    }

    /// A registry holding `MANIFEST` as `app:v1`; HEAD answers with `head_headers`.
    fn serve(head_headers: fn() -> Vec<(&'static str, String)>) -> impl Fn(&str, &Seen) -> Answer {
        move |_, req| {
            let found = req.line.contains("/v2/app/manifests/v1 ")
                || req
                    .line
                    .contains(&format!("/v2/app/manifests/{} ", sha(MANIFEST)));
            if !found {
                return (
                    404,
                    vec![],
                    r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
                        .into(),
                );
            }
            if req.line.starts_with("HEAD ") {
                (200, head_headers(), String::new())
            } else {
                (
                    200,
                    vec![
                        ("Content-Type", OCI_MANIFEST.into()),
                        ("Docker-Content-Digest", sha(MANIFEST)),
                    ],
                    MANIFEST.into(),
                )
            }
        }
    }

    #[tokio::test]
    async fn head_with_all_headers_is_enough_and_asks_for_every_manifest_type() {
        let (base, seen) = fake_server(serve(|| {
            vec![
                ("Content-Type", OCI_MANIFEST.into()),
                ("Docker-Content-Digest", sha(MANIFEST)),
                ("Content-Length", MANIFEST.len().to_string()),
            ]
        }))
        .await;
        let c = client(&base, None);
        let d = c.manifest_descriptor("app", "v1").await.unwrap();
        assert_eq!(d.oci_digest(), sha(MANIFEST));
        assert_eq!(d.size, MANIFEST.len() as u64);
        assert_eq!(d.media_type, OCI_MANIFEST);
        let by_digest = c.manifest_descriptor("app", &sha(MANIFEST)).await.unwrap();
        assert_eq!(by_digest, d);
        // https was tried first and hung up on, then plain http, which is kept.
        assert_eq!(
            lines(&seen),
            [
                "HEAD /v2/app/manifests/v1 HTTP/1.1".to_owned(),
                format!("HEAD /v2/app/manifests/{} HTTP/1.1", sha(MANIFEST)),
            ]
        );
        let accept = seen.lock().unwrap()[0].accept.clone().unwrap();
        for t in MANIFEST_TYPES {
            assert!(accept.contains(t), "{accept}");
        }
        assert!(c.manifest_exists("app", &sha(MANIFEST)).await.unwrap());
        assert!(!c.manifest_exists("app", &sha("other")).await.unwrap());
    }

    #[tokio::test]
    async fn head_without_digest_falls_back_to_get_and_hashes_the_body() {
        let (base, seen) = fake_server(serve(|| vec![("Content-Type", OCI_MANIFEST.into())])).await;
        let d = client(&base, None)
            .manifest_descriptor("app", "v1")
            .await
            .unwrap();
        assert_eq!(
            (d.oci_digest(), d.size, d.media_type.as_str()),
            (sha(MANIFEST), MANIFEST.len() as u64, OCI_MANIFEST)
        );
        assert_eq!(
            lines(&seen),
            [
                "HEAD /v2/app/manifests/v1 HTTP/1.1",
                "GET /v2/app/manifests/v1 HTTP/1.1"
            ]
        );
    }

    #[tokio::test]
    async fn a_wrong_stated_or_asked_digest_is_refused() {
        let wrong = sha("something else");
        let (base, _) = fake_server(move |_, req| {
            if req.line.starts_with("HEAD ") {
                (200, vec![], String::new())
            } else {
                (
                    200,
                    vec![
                        ("Content-Type", DOCKER_MANIFEST.into()),
                        ("Docker-Content-Digest", wrong.clone()),
                    ],
                    MANIFEST.into(),
                )
            }
        })
        .await;
        let c = client(&base, None);
        let e = c.manifest_descriptor("app", "v1").await.unwrap_err();
        assert!(
            matches!(&e, RegistryError::DigestMismatch { source_of_expected, .. }
                if source_of_expected.contains("Docker-Content-Digest")),
            "{e:?}"
        );
        assert!(e.to_string().contains(&sha(MANIFEST)), "{e}");

        // Asked by a digest the body does not have (and no digest stated).
        let (base, _) = fake_server(|_, req| {
            if req.line.starts_with("HEAD ") {
                (200, vec![], String::new())
            } else {
                (
                    200,
                    vec![("Content-Type", DOCKER_MANIFEST.into())],
                    MANIFEST.into(),
                )
            }
        })
        .await;
        let e = client(&base, None)
            .manifest_descriptor("app", &sha("x"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                RegistryError::DigestMismatch {
                    source_of_expected: "asked for",
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn not_found_names_tag_digest_or_repository() {
        let (base, _) = fake_server(|_, req| {
            let unknown_name = r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#;
            let unknown_manifest = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
            if req.line.contains("/v2/ghost/") {
                (404, vec![], unknown_name.into())
            } else if req.line.contains("/tags/list") {
                (200, vec![], r#"{"name":"app","tags":["v1"]}"#.into())
            } else {
                (404, vec![], unknown_manifest.into())
            }
        })
        .await;
        let c = client(&base, None);
        let host = base.trim_start_matches("http://");
        let e = c.manifest_descriptor("app", "v9").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("tag v9 not found in {host}/app: push it first, or check the tag")
        );
        let e = c.manifest_descriptor("app", &sha("x")).await.unwrap_err();
        assert!(matches!(e, RegistryError::ManifestNotFound { .. }), "{e:?}");
        let e = c.manifest_descriptor("ghost", "v1").await.unwrap_err();
        assert!(
            matches!(e, RegistryError::RepositoryUnknown { .. }),
            "{e:?}"
        );
        for bad in ["", "-v", "sha256:abc", &sha("x").to_uppercase(), "a/b"] {
            let e = c.manifest_descriptor("app", bad).await.unwrap_err();
            assert!(
                matches!(e, RegistryError::BadReference { .. }),
                "{bad:?}: {e:?}"
            );
        }
    }

    #[tokio::test]
    async fn bearer_challenge_gets_a_pull_token_once() {
        let (base, seen) = fake_server(|base, req| {
            if req.line.starts_with("GET /token?") {
                return match req.authorization.as_deref() {
                    Some("Basic YWxpY2U6czNjcmV0") => (200, vec![], r#"{"token":"R1"}"#.into()),
                    _ => (401, vec![], String::new()),
                };
            }
            match req.authorization.as_deref() {
                Some("Bearer R1") => (
                    200,
                    vec![
                        ("Content-Type", DOCKER_MANIFEST.into()),
                        ("Docker-Content-Digest", sha(MANIFEST)),
                        ("Content-Length", MANIFEST.len().to_string()),
                    ],
                    String::new(),
                ),
                _ => (
                    401,
                    vec![(
                        "Www-Authenticate",
                        format!(r#"Bearer realm="{base}/token",service="registry",scope="repository:team/app:pull""#),
                    )],
                    String::new(),
                ),
            }
        })
        .await;
        let alice = Credentials::Basic {
            username: "alice".into(),
            password: SecretString::from("s3cret"),
        };
        let c = client(&base, Some(alice));
        c.manifest_descriptor("team/app", "v1").await.unwrap();
        c.manifest_descriptor("team/app", "v2").await.unwrap();
        assert_eq!(
            lines(&seen),
            [
                "HEAD /v2/team/app/manifests/v1 HTTP/1.1",
                "GET /token?service=registry&scope=repository%3Ateam%2Fapp%3Apull&account=alice HTTP/1.1",
                "HEAD /v2/team/app/manifests/v1 HTTP/1.1",
                "HEAD /v2/team/app/manifests/v2 HTTP/1.1",
            ]
        );
        // Refused credentials name the login to run, never the password.
        let mallory = Credentials::Basic {
            username: "mallory".into(),
            password: SecretString::from("guess"),
        };
        let e = client(&base, Some(mallory))
            .manifest_descriptor("team/app", "v1")
            .await
            .unwrap_err();
        let host = base.trim_start_matches("http://");
        let text = e.to_string();
        assert!(
            text.contains(&format!("docker login {host}"))
                && text.contains("mallory")
                && !text.contains("guess"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn basic_challenge_without_credentials_is_not_authorized() {
        let (base, _) = fake_server(|_, _| {
            (
                401,
                vec![("Www-Authenticate", r#"Basic realm="registry""#.into())],
                String::new(),
            )
        })
        .await;
        let e = client(&base, None)
            .manifest_descriptor("app", "v1")
            .await
            .unwrap_err();
        assert!(
            matches!(e, RegistryError::Http(HttpError::NotAuthorized { .. })),
            "{e:?}"
        );
        assert!(e.to_string().contains("tried no credentials"), "{e}");
    }

    #[tokio::test]
    async fn a_stopped_registry_is_unreachable_on_both_schemes() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = client(&format!("127.0.0.1:{port}"), None)
            .manifest_descriptor("app", "v1")
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(e, RegistryError::Http(HttpError::Unreachable { .. })),
            "{e:?}"
        );
        assert!(
            text.contains(&format!("https://127.0.0.1:{port}/v2/app/manifests/v1"))
                && text.contains(&format!("http://127.0.0.1:{port}/v2/app/manifests/v1"))
                && text.contains("check that the registry is running"),
            "{text}"
        );
    }

    #[test]
    fn schemes_follow_docker() {
        let secure = RegistryClient::new(RegistryConfig {
            registry: Registry::docker_hub(),
            insecure: false,
            ca_files: Vec::new(),
            client_cert: None,
            credentials: None,
        })
        .unwrap();
        let bases: Vec<&str> = secure.inner.bases.iter().map(Url::as_str).collect();
        assert_eq!(bases, ["https://registry-1.docker.io/"]);
        let dir = tempfile::tempdir().unwrap();
        let docker = DockerConfig::load_from(dir.path()).unwrap();
        let listed: Registry = "registry.internal:5000".parse().unwrap();
        let config =
            RegistryConfig::from_docker_config(&listed, &docker, std::slice::from_ref(&listed));
        assert!(config.insecure);
        let config = RegistryConfig::from_docker_config(&listed, &docker, &[]);
        assert!(!config.insecure);
        let local: Registry = "localhost:5000".parse().unwrap();
        let c =
            RegistryClient::new(RegistryConfig::from_docker_config(&local, &docker, &[])).unwrap();
        let bases: Vec<&str> = c.inner.bases.iter().map(Url::as_str).collect();
        assert_eq!(bases, ["https://localhost:5000/", "http://localhost:5000/"]);
    }

    #[tokio::test]
    async fn a_registry_trickling_its_answer_is_cut_off_at_the_deadline() {
        // Headers only (a HEAD), one byte every 20 ms: 8 s in all.
        let (base, _) = fake_server(|_, _| {
            (
                200,
                vec![(TRICKLE, "20".into()), ("X-Padding", "p".repeat(400))],
                String::new(),
            )
        })
        .await;
        let registry: Registry = base.trim_start_matches("http://").parse().unwrap();
        let config = RegistryConfig {
            registry,
            insecure: true,
            ca_files: Vec::new(),
            client_cert: None,
            credentials: None,
        };
        let c = RegistryClient::with_timeout(config, Duration::from_millis(500)).unwrap();
        let started = std::time::Instant::now();
        let e = c.manifest_exists("app", &sha(MANIFEST)).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        assert!(
            matches!(e, RegistryError::Http(HttpError::TimedOut { .. })),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "HEAD {base}/v2/app/manifests/{} took longer than 0.5 s",
                sha(MANIFEST)
            )) && text.contains("the registry or the network is too slow"),
            "{text}"
        );
    }
}
