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
//!   `docker login` stored them); `Basic` with the user name and password.
//! - **Manifests.** `HEAD /v2/<repo>/manifests/<ref>` with `Accept` for docker schema2 manifests
//!   and manifest lists and OCI manifests and indexes (registry 2.8 answers 400 or 404 without
//!   it); when the answer lacks `Docker-Content-Digest`, a GET whose body is hashed. A digest the
//!   registry states is checked against the bytes it sent, and against the digest asked for.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::WWW_AUTHENTICATE;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::docker_config::DockerConfig;
use crate::http::auth::{self, Challenge, TokenCache, TokenFailure};
use crate::http::{host_port, innermost, read_truncated, tls, ErrCode, TlsFileError, Verify};
use crate::notary::Credentials;
use crate::reference::{ImageRef, Registry, DEFAULT_TAG};
use crate::tuf::Sha256Digest;

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-platform).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Every manifest type tufa asks for, in docker's order of preference.
pub const MANIFEST_TYPES: [&str; 4] = [
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    OCI_INDEX,
];

/// docker's cap on a manifest body (distribution `maxManifestBodySize`).
pub const MANIFEST_MAX_LEN: u64 = 4 << 20;

/// Error bodies beyond this are cut off: only their start is shown.
const ERROR_BODY_MAX: usize = 64 * 1024;

/// The header registries state a manifest's digest in.
const CONTENT_DIGEST: &str = "docker-content-digest";

/// What a tag or digest points to: the values a DCT target records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// SHA-256 of the manifest bytes.
    pub digest: Sha256Digest,
    /// Length of the manifest bytes.
    pub size: u64,
    /// The manifest's media type, e.g. [`DOCKER_MANIFEST`].
    pub media_type: String,
}

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

    /// The tag or digest to look up is neither.
    #[error(
        "{reference:?} is neither a tag nor a sha256 digest; give a tag such as v1 or \
         sha256:<64 hex digits>"
    )]
    BadReference {
        /// The reference as given.
        reference: String,
    },

    /// No connection could be made with any scheme tried.
    #[error(
        "cannot reach the registry {registry} ({attempts}); check that the registry is running \
         and that {registry} is its address"
    )]
    Unreachable {
        /// The registry.
        registry: Registry,
        /// Each URL tried and the transport's own words.
        attempts: String,
    },

    /// The TLS handshake failed, usually because the registry's certificate is not trusted.
    #[error(
        "TLS with the registry at {url} failed ({reason}); its certificate was checked against \
         {trusted}. Put the CA that issued the registry's certificate in \
         $DOCKER_CONFIG/tls/{host_port}/ca.crt"
    )]
    Tls {
        /// The URL that was requested.
        url: String,
        /// `host:port`, for docker's TLS directory.
        host_port: String,
        /// The CA files used, or the system roots.
        trusted: String,
        /// rustls's complaint.
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

    /// The connection broke after it was made.
    #[error(
        "the connection to the registry broke during {method} {url} ({reason}); retry, and if \
         it keeps failing look at the registry's log"
    )]
    Transport {
        /// The request method.
        method: String,
        /// The URL that was requested.
        url: String,
        /// The transport's own words.
        reason: String,
    },

    /// The registry (or its token service) refused the credentials, or none were given.
    #[error(
        "not authorized to pull {registry}/{repository} (tried {tried}); run `docker login \
         {registry}` with an account that may pull this repository"
    )]
    NotAuthorized {
        /// The registry.
        registry: Registry,
        /// The repository.
        repository: String,
        /// Which credentials were tried (never the secret).
        tried: String,
    },

    /// The token service named in the registry's challenge failed.
    #[error(
        "the token service {realm} named by the registry {registry} failed ({reason}); check \
         that it is up"
    )]
    TokenService {
        /// The registry.
        registry: Registry,
        /// The token service URL.
        realm: String,
        /// What went wrong.
        reason: String,
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

    /// Any other error status.
    #[error(
        "registry error on {method} {url}: HTTP {status} {code}: {message}; retry, and if it \
         keeps failing look at the registry's log"
    )]
    Server {
        /// The request method.
        method: String,
        /// The URL that was requested.
        url: String,
        /// HTTP status.
        status: u16,
        /// The registry's error code, or "-".
        code: String,
        /// The registry's message, or the start of the body.
        message: String,
    },
}

/// A tag or a digest in `/v2/<repo>/manifests/<reference>`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ManifestRef {
    Tag(String),
    Digest(Sha256Digest),
}

struct Inner {
    registry: Registry,
    /// The base URLs to try in order: `https://host`, then `http://host` for insecure registries.
    bases: Vec<Url>,
    /// The index in `bases` that answered last; tried first.
    working: Mutex<Option<usize>>,
    /// For the registry (without certificate checks when insecure).
    http: reqwest::Client,
    /// For token services on other hosts: always checks certificates.
    verified_http: reqwest::Client,
    /// What certificates are checked against, for TLS error messages.
    trusted: String,
    insecure: bool,
    credentials: Option<Credentials>,
    tokens: TokenCache,
}

/// One request, re-sendable after an auth challenge or on another scheme.
struct Call<'a> {
    method: Method,
    repository: &'a str,
    /// Path and query after the base URL, e.g. `/v2/app/manifests/v1`.
    path: String,
    accept: Option<String>,
}

/// A failed attempt on one base URL.
enum Attempt {
    /// Could not connect (or TLS failed) on this scheme: the next scheme may work.
    Unreached { url: String, reason: String },
    /// Anything else ends the request.
    Failed(RegistryError),
}

impl Descriptor {
    /// The digest as OCI writes it: `sha256:<hex>`.
    pub fn oci_digest(&self) -> String {
        format!("sha256:{}", self.digest)
    }
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
    /// A client for `config.registry`; reads the CA and client certificate files now.
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        let client_cert = config
            .client_cert
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()));
        let verified = tls::client_config(Verify::Roots(&config.ca_files), client_cert)?;
        let registry_tls = if config.insecure {
            tls::client_config(Verify::Nothing, client_cert)?
        } else {
            verified.clone()
        };
        let host = config.registry.api_host();
        let mut bases = vec![base_url("https", host)];
        if config.insecure {
            bases.push(base_url("http", host));
        }
        let trusted = if config.ca_files.is_empty() {
            "the system roots (no CA in $DOCKER_CONFIG/tls)".to_owned()
        } else {
            let files: Vec<String> = config
                .ca_files
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            format!("{} and the system roots", files.join(", "))
        };
        Ok(Self {
            inner: Arc::new(Inner {
                registry: config.registry,
                bases,
                working: Mutex::new(None),
                http: http_client(registry_tls),
                verified_http: http_client(verified),
                trusted,
                insecure: config.insecure,
                credentials: config.credentials,
                tokens: TokenCache::default(),
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
        let body = self.inner.read_capped(&get, response).await?;
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
        let e = ErrCode::parse(&read_truncated(response, ERROR_BODY_MAX).await);
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
                    let e = ErrCode::parse(&read_truncated(r, ERROR_BODY_MAX).await);
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

impl ManifestRef {
    fn parse(reference: &str) -> Result<Self, RegistryError> {
        let bad = || RegistryError::BadReference {
            reference: reference.to_owned(),
        };
        if let Some(hex) = reference.strip_prefix("sha256:") {
            let lower = hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            return match lower.then(|| hex.parse::<Sha256Digest>()) {
                Some(Ok(d)) => Ok(Self::Digest(d)),
                _ => Err(bad()),
            };
        }
        // A tag, as the reference grammar has it: [\w][\w.-]{0,127}.
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let b = reference.as_bytes();
        let tag_ok = (1..=128).contains(&b.len())
            && word(b[0])
            && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-');
        if tag_ok {
            Ok(Self::Tag(reference.to_owned()))
        } else {
            Err(bad())
        }
    }
}

impl From<TlsFileError> for RegistryError {
    fn from(e: TlsFileError) -> Self {
        Self::TlsFile {
            what: e.what,
            path: e.path,
            reason: e.reason,
            hint: e.hint,
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
            match self.send_to(&self.bases[i], call).await {
                Ok(response) => {
                    *self.working.lock().unwrap_or_else(|e| e.into_inner()) = Some(i);
                    return Ok(response);
                }
                Err(Attempt::Unreached { url, reason }) => {
                    unreached.push(format!("{url}: {reason}"))
                }
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
        Err(RegistryError::Unreachable {
            registry: self.registry.clone(),
            attempts: unreached.join("; "),
        })
    }

    /// Sends `call` to one base URL, answering one 401 challenge and retrying once.
    async fn send_to(&self, base: &Url, call: &Call<'_>) -> Result<Response, Attempt> {
        let url = join(base, &call.path);
        let scope = format!("repository:{}:pull", call.repository);
        let mut authorization = self.tokens.lookup(&scope);
        let mut answered = false;
        loop {
            let mut request = self.http.request(call.method.clone(), url.clone());
            if let Some(accept) = &call.accept {
                request = request.header(ACCEPT, accept);
            }
            if let Some(value) = authorization.as_ref().and_then(auth::header_value) {
                request = request.header(AUTHORIZATION, value);
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => return Err(self.transport_error(call, &url, &e)),
            };
            let status = response.status();
            if status == StatusCode::FORBIDDEN || (status == StatusCode::UNAUTHORIZED && answered) {
                return Err(Attempt::Failed(self.not_authorized(call)));
            }
            if status != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            answered = true;
            let challenge = Challenge::pick(response.headers().get_all(WWW_AUTHENTICATE).iter());
            let value = match challenge {
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope: asked,
                }) => {
                    let token = self
                        .token(
                            &realm,
                            service.as_deref(),
                            asked.as_deref().unwrap_or(&scope),
                        )
                        .await
                        .map_err(|failure| {
                            Attempt::Failed(match failure {
                                TokenFailure::Refused => self.not_authorized(call),
                                TokenFailure::Failed(reason) => RegistryError::TokenService {
                                    registry: self.registry.clone(),
                                    realm: realm.clone(),
                                    reason,
                                },
                            })
                        })?;
                    let value = SecretString::from(format!("Bearer {}", token.expose_secret()));
                    self.tokens.store(&scope, value.clone());
                    value
                }
                Some(Challenge::Basic) => {
                    let value = auth::basic_value(self.credentials.as_ref())
                        .ok_or_else(|| Attempt::Failed(self.not_authorized(call)))?;
                    self.tokens.store_basic(value.clone());
                    value
                }
                None => return Err(Attempt::Failed(self.not_authorized(call))),
            };
            authorization = Some(value);
        }
    }

    /// A token from `realm`: through the registry's own client when the realm is on the
    /// registry's host (docker uses one transport for both), else with certificate checks.
    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<SecretString, TokenFailure> {
        let same_host = Url::parse(realm)
            .is_ok_and(|u| host_port(&u).eq_ignore_ascii_case(self.registry.api_host()));
        let http = if same_host {
            &self.http
        } else {
            &self.verified_http
        };
        auth::fetch_token(http, realm, service, scope, self.credentials.as_ref()).await
    }

    /// The error for a non-success answer other than 401, 403 and manifest 404s.
    async fn failure(&self, call: &Call<'_>, response: Response) -> RegistryError {
        let status = response.status();
        let e = ErrCode::parse(&read_truncated(response, ERROR_BODY_MAX).await);
        let (code, message) = if call.method == Method::HEAD {
            ("-".to_owned(), "(no body in an answer to HEAD)".to_owned())
        } else {
            (e.code, e.message)
        };
        RegistryError::Server {
            method: call.method.to_string(),
            url: self.url_for(call),
            status: status.as_u16(),
            code,
            message,
        }
    }

    /// Reads a manifest body, refusing it beyond [`MANIFEST_MAX_LEN`].
    async fn read_capped(
        &self,
        call: &Call<'_>,
        mut response: Response,
    ) -> Result<Vec<u8>, RegistryError> {
        let too_large = || RegistryError::BadManifest {
            url: self.url_for(call),
            reason: format!("it is larger than {MANIFEST_MAX_LEN} bytes, docker's limit"),
        };
        if response
            .content_length()
            .is_some_and(|n| n > MANIFEST_MAX_LEN)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|e| RegistryError::Transport {
                    method: call.method.to_string(),
                    url: self.url_for(call),
                    reason: innermost(&e),
                })?;
            let Some(chunk) = chunk else { break };
            if (body.len() + chunk.len()) as u64 > MANIFEST_MAX_LEN {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The URL of `call` on the scheme in use (or the first one), for messages.
    fn url_for(&self, call: &Call<'_>) -> String {
        let i = self
            .working
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(0);
        join(&self.bases[i], &call.path).to_string()
    }

    fn not_authorized(&self, call: &Call<'_>) -> RegistryError {
        RegistryError::NotAuthorized {
            registry: self.registry.clone(),
            repository: call.repository.to_owned(),
            tried: Credentials::describe(self.credentials.as_ref()),
        }
    }

    fn transport_error(&self, call: &Call<'_>, url: &Url, err: &reqwest::Error) -> Attempt {
        let tls = tls::tls_failure(err);
        if let Some(reason) = tls.clone().filter(|_| !self.insecure) {
            return Attempt::Failed(RegistryError::Tls {
                url: url.to_string(),
                host_port: self.registry.api_host().to_owned(),
                trusted: self.trusted.clone(),
                reason,
            });
        }
        if err.is_connect() || tls.is_some() {
            return Attempt::Unreached {
                url: url.to_string(),
                reason: tls.unwrap_or_else(|| innermost(err)),
            };
        }
        Attempt::Failed(RegistryError::Transport {
            method: call.method.to_string(),
            url: url.to_string(),
            reason: innermost(err),
        })
    }
}

/// What HEAD told, if it told all three: digest (sha256), length and media type.
fn descriptor_from_headers(headers: &HeaderMap) -> Option<Descriptor> {
    let digest = header_str(headers, CONTENT_DIGEST)?
        .strip_prefix("sha256:")?
        .parse::<Sha256Digest>()
        .ok()?;
    let size = header_str(headers, CONTENT_LENGTH.as_str())?.parse().ok()?;
    Some(Descriptor {
        digest,
        size,
        media_type: content_type(headers)?,
    })
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The media type in `Content-Type`, without parameters.
fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = header_str(headers, CONTENT_TYPE.as_str())?;
    let media_type = value.split(';').next().unwrap_or(value).trim();
    (!media_type.is_empty()).then(|| media_type.to_owned())
}

/// The `mediaType` member of a manifest body.
fn media_type_in_body(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Typed>(body).ok()?.media_type
}

fn base_url(scheme: &str, host: &str) -> Url {
    Url::parse(&format!("{scheme}://{host}")).expect("a parsed registry makes a valid URL")
}

fn join(base: &Url, path: &str) -> Url {
    let text = format!("{}{path}", base.as_str().trim_end_matches('/'));
    Url::parse(&text).expect("registry paths are URL-safe")
}

fn http_client(tls: rustls::ClientConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(concat!("tufa/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .build()
        .expect("a client with a preconfigured rustls backend builds")
}

// Compile-time check that the client can be shared across tasks.
const _: fn() = || {
    fn shared<T: Send + Sync + Clone>() {}
    shared::<RegistryClient>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_server::{fake_server, Answer, Seen};

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
        assert!(matches!(e, RegistryError::NotAuthorized { .. }), "{e:?}");
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
        assert!(matches!(e, RegistryError::Unreachable { .. }), "{e:?}");
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

    #[test]
    fn headers_make_a_descriptor_only_when_complete() {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            format!("{DOCKER_MANIFEST}; charset=utf-8").parse().unwrap(),
        );
        h.insert(CONTENT_LENGTH, "423".parse().unwrap());
        assert!(descriptor_from_headers(&h).is_none(), "no digest");
        h.insert(CONTENT_DIGEST, "sha512:abcd".parse().unwrap());
        assert!(descriptor_from_headers(&h).is_none(), "not sha256");
        h.insert(CONTENT_DIGEST, sha(MANIFEST).parse().unwrap());
        let d = descriptor_from_headers(&h).unwrap();
        assert_eq!((d.size, d.media_type.as_str()), (423, DOCKER_MANIFEST));
        h.remove(CONTENT_TYPE);
        assert!(descriptor_from_headers(&h).is_none(), "no type");
        assert_eq!(
            media_type_in_body(MANIFEST.as_bytes()).as_deref(),
            Some(OCI_MANIFEST)
        );
        assert_eq!(media_type_in_body(b"not json"), None);
    }
}
