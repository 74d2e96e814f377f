//! [`Ctx`]: what every verb runs with: the agent, the notary server, the local trust data and
//! the options of verified reads. Each verb's `run(self, &Ctx)` takes what it needs from it.
//!
//! Nothing is connected before a verb asks: reading trust data and staging changes need no
//! agent, and listing needs no key, so those verbs skip the agent handshake and loading the
//! platform's CA roots. The docker verbs find their notary server and registry per image, by
//! docker's conventions ([`Ctx::for_image`], [`Ctx::registry_for`]).

use std::path::PathBuf;
use std::sync::OnceLock;

use clap::Args;

use super::client_config::ClientConfig;
use super::error::CliError;
use crate::agent::{AgentClient, LazyAgent};
use crate::docker_config::DockerConfig;
use crate::http::host_port;
use crate::notary::{NotaryClient, NotaryConfig, NotaryRepo};
use crate::reference::ImageRef;
use crate::registry::{RegistryClient, RegistryConfig};
use crate::repo::{self, RepoState};
use crate::tuf::{self, Gun, PendingCommit, TrustCache, UpdateError, UpdateOptions, VerifiedRepo};

/// Where the notary server and the trust data are: flags, else a notary client config
/// (`tufa notary` and `tufa root`).
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The notary server [default: $DOCKER_CONTENT_TRUST_SERVER].
    #[arg(long, short = 's', global = true, env = "DOCKER_CONTENT_TRUST_SERVER")]
    pub server: Option<String>,
    /// CA certificate (PEM) that signed the server's TLS certificate.
    #[arg(long, global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Local trust data (cached metadata, staged changes) [default: $TUFA_TRUST_DIR, else
    /// $DOCKER_CONFIG/trust, else ~/.docker/trust].
    #[arg(long, short = 'd', global = true, env = "TUFA_TRUST_DIR")]
    pub trust_dir: Option<PathBuf>,
    /// A notary CLI client config (JSON): `trust_dir`, `remote_server.url`/`root_ca`/
    /// `tls_client_cert`/`tls_client_key`, and `trust_pinning`; flags override it.
    #[arg(long, short = 'c', global = true)]
    pub config: Option<PathBuf>,
}

/// Everything a verb needs, made once per run.
pub struct Ctx {
    /// The agent, connected when a verb first needs it.
    pub agent: LazyAgent,
    /// The notary server's settings, if any were given.
    server: Option<NotaryConfig>,
    /// Its client, made on first use.
    notary: OnceLock<NotaryClient>,
    /// Local trust data: cached metadata and staged changes.
    pub trust_dir: PathBuf,
    /// Trust pinning from the config, for every verified read.
    pub options: UpdateOptions,
}

impl Ctx {
    /// The agent at `socket`, and the server and trust data `server` names (the docker verbs
    /// have none: docker's trust directory, a server per image).
    pub fn new(socket: Option<PathBuf>, server: Option<&ServerArgs>) -> Result<Self, CliError> {
        let agent = LazyAgent::new(socket).with_messages(say);
        let Some(args) = server else {
            return Ok(Self {
                agent,
                server: None,
                notary: OnceLock::new(),
                trust_dir: default_trust_dir(),
                options: UpdateOptions::default(),
            });
        };
        let file = match &args.config {
            Some(path) => ClientConfig::load(path)?,
            None => ClientConfig::default(),
        };
        let mut options = UpdateOptions::default();
        if let Some(path) = &args.config {
            options.pinning = file.pinning(path)?;
        }
        let trust_dir = args
            .trust_dir
            .clone()
            .or(file.trust_dir.clone())
            .unwrap_or_else(default_trust_dir);
        let url = args.server.clone().or(file.remote_server.url.clone());
        let server = match &url {
            Some(url) => {
                let ca = args.tls_ca.clone().or(file.remote_server.root_ca.clone());
                let mut config = notary_config(url, ca)?;
                if let (Some(cert), Some(key)) = (
                    file.remote_server.tls_client_cert.clone(),
                    file.remote_server.tls_client_key.clone(),
                ) {
                    config.client_cert = Some((cert, key));
                }
                Some(config)
            }
            None => None,
        };
        Ok(Self {
            agent,
            server,
            notary: OnceLock::new(),
            trust_dir,
            options,
        })
    }

    /// The agent, connected.
    pub async fn agent(&self) -> Result<&AgentClient, CliError> {
        Ok(self.agent.get().await?)
    }

    /// The notary server's client.
    pub fn notary(&self) -> Result<&NotaryClient, CliError> {
        if let Some(client) = self.notary.get() {
            return Ok(client);
        }
        let config = self.server.clone().ok_or_else(|| {
            CliError::Usage(
                "no notary server: pass --server URL or set DOCKER_CONTENT_TRUST_SERVER".into(),
            )
        })?;
        let client = NotaryClient::new(config)?;
        Ok(self.notary.get_or_init(|| client))
    }

    /// The cache of verified metadata in the trust directory.
    pub fn cache(&self) -> TrustCache {
        TrustCache::new(&self.trust_dir)
    }

    /// The repository's trust data, fetched, verified and cached; warnings go to stderr.
    pub async fn verified(&self, gun: &Gun) -> Result<VerifiedRepo, CliError> {
        let server = self.notary()?;
        let cache = self.cache();
        let verified = tuf::update(&server.repo(gun), &cache, gun, &self.options)
            .await
            .map_err(|e| {
                if e.is_untrusted_data() {
                    CliError::Untrusted {
                        server: server.server().to_string(),
                        gun: gun.clone(),
                        cache: cache.metadata_dir(gun),
                        source: Box::new(e),
                    }
                } else {
                    e.into()
                }
            })?;
        // What was skipped or ignored has been said already: the update logs each warning
        // (`tracing::warn!`), which the CLI's subscriber prints.
        Ok(verified)
    }

    /// After a publish: the cache gets what the server now serves, verified. A failure only
    /// costs the next read a fetch, so it warns.
    pub async fn refresh(&self, remote: &NotaryRepo, gun: &Gun) {
        if let Err(e) = tuf::update(remote, &self.cache(), gun, &self.options).await {
            tracing::warn!(gun = %gun, error = %e, "published, but could not refresh the local cache");
        }
    }

    /// The notary repository behind `image`, by docker's conventions: the server is
    /// `$DOCKER_CONTENT_TRUST_SERVER` or the registry's, its CA and client certificate in
    /// `$DOCKER_CONFIG/tls/<host:port>/`, the registry's credentials.
    pub fn for_image(&self, image: ImageRef) -> Result<ImageRepo, CliError> {
        let env_server = std::env::var("DOCKER_CONTENT_TRUST_SERVER").ok();
        let server = image.registry().notary_server(env_server.as_deref())?;
        let docker = DockerConfig::load()?;
        let tls = docker.tls_dir(&host_port(&server));
        let config = NotaryConfig {
            ca_file: tls.ca_files.first().cloned(),
            client_cert: tls.client,
            credentials: docker.credentials_for(image.registry().as_str()),
            server: server.clone(),
        };
        let client = NotaryClient::new(config)?;
        let gun = image.gun();
        Ok(ImageRepo {
            remote: client.repo(&gun),
            server: server.to_string().trim_end_matches('/').to_owned(),
            cache: self.cache(),
            gun,
            image,
        })
    }

    /// The registry behind `image`, with docker's credentials and TLS files for it.
    pub fn registry_for(&self, image: &ImageRef) -> Result<RegistryClient, CliError> {
        let docker = DockerConfig::load()?;
        let config = RegistryConfig::from_docker_config(image.registry(), &docker, &[]);
        Ok(RegistryClient::new(config)?)
    }
}

/// One image's notary repository and cache, for the docker verbs (no trust pinning: docker has
/// no notary config).
pub struct ImageRepo {
    /// The image as given.
    pub image: ImageRef,
    /// Its repository.
    pub gun: Gun,
    /// The repository on its notary server.
    pub remote: NotaryRepo,
    /// The server's URL, for messages.
    pub server: String,
    /// The local cache.
    pub cache: TrustCache,
}

impl ImageRepo {
    /// docker's words for a repository the server has never heard of, and what to do.
    pub fn no_trust_data(&self) -> String {
        format!(
            "{} does not have trust data for {}: check the repository name, or create it with `tufa signer add` or `tufa sign`",
            self.server, self.gun
        )
    }

    /// The trust data, verified.
    pub async fn verified(&self) -> Result<VerifiedRepo, UpdateError> {
        tuf::update(
            &self.remote,
            &self.cache,
            &self.gun,
            &UpdateOptions::default(),
        )
        .await
    }

    /// The verified state (`None`: no trust data yet).
    pub async fn state(&self) -> Result<Option<RepoState>, CliError> {
        Ok(repo::load_state(
            &self.remote,
            &self.cache,
            &self.gun,
            &UpdateOptions::default(),
        )
        .await?)
    }

    /// As [`Self::state`], with the cache written while the caller signs; the pending write
    /// must end before any other read.
    pub async fn state_deferred(
        &self,
    ) -> Result<(Option<RepoState>, Option<PendingCommit>), CliError> {
        Ok(repo::load_state_deferred(
            &self.remote,
            &self.cache,
            &self.gun,
            &UpdateOptions::default(),
        )
        .await?)
    }
}

/// The server's settings: its URL, the CA to trust, and docker's credentials for its host.
fn notary_config(url: &str, ca_file: Option<PathBuf>) -> Result<NotaryConfig, CliError> {
    let server = url::Url::parse(url).map_err(|e| {
        CliError::Usage(format!(
            "'{url}' is not a notary server URL ({e}): give one such as https://notary.example.com:4443"
        ))
    })?;
    let host = host_port(&server);
    let docker = DockerConfig::load().ok();
    let tls = docker.as_ref().map(|d| d.tls_dir(&host));
    Ok(NotaryConfig {
        ca_file: ca_file.or_else(|| tls.as_ref().and_then(|t| t.ca_files.first().cloned())),
        client_cert: tls.and_then(|t| t.client),
        credentials: docker.and_then(|d| d.credentials_for(&host)),
        server,
    })
}

/// `$DOCKER_CONFIG/trust`, else `~/.docker/trust`: the cache docker and notary use.
fn default_trust_dir() -> PathBuf {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .unwrap_or_else(|| PathBuf::from(".docker"))
        .join("trust")
}

/// What the agent client tells the user (a YubiKey waiting for a touch): a line on stderr.
fn say(message: &str) {
    eprintln!("{message}");
}
