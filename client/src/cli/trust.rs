//! The `docker trust` verbs: signer add/remove, sign, inspect, revoke, and verify.
//!
//! docker's conventions: the notary server is `$DOCKER_CONTENT_TRUST_SERVER`, else
//! `https://<registry host>` (`https://notary.docker.io` for Docker Hub); its CA is in
//! `$DOCKER_CONFIG/tls/<host:port>/`; credentials are the registry's from docker's config; short
//! names are docker.io names. Unlike docker, the notary server's certificate is always checked,
//! loopback registries included.

use std::io::BufRead as _;
use std::path::PathBuf;

use clap::Args;
use time::OffsetDateTime;

use super::CliError;
use crate::agent::AgentClient;
use crate::docker_config::DockerConfig;
use crate::notary::{NotaryClient, NotaryConfig, NotaryRepo};
use crate::reference::ImageRef;
use crate::registry::{RegistryClient, RegistryConfig};
use crate::repo::{
    self, AgentKeys, Change, RepoError, RepoState, SnapshotChoice, StartingWith, StateSource,
};
use crate::trust::{inspect, ops};
use crate::tuf::{Gun, PendingCommit, TrustCache, UpdateError, UpdateOptions, VerifiedRepo};

/// Arguments of `signer add`.
#[derive(Debug, Args)]
pub struct SignerAddArgs {
    /// The signer's public key (PEM, e.g. NAME.pub from `tufa key generate`).
    #[arg(long)]
    pub key: Vec<PathBuf>,
    /// The signer's name.
    pub name: String,
    /// Repositories.
    #[arg(required = true)]
    pub repos: Vec<String>,
}

/// Arguments of `signer remove`.
#[derive(Debug, Args)]
pub struct SignerRemoveArgs {
    /// Do not ask before removing a signer that signed the last release.
    #[arg(long, short = 'f')]
    pub force: bool,
    /// The signer's name.
    pub name: String,
    /// Repositories.
    #[arg(required = true)]
    pub repos: Vec<String>,
}

/// Arguments of `sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// IMAGE:TAG to sign; its digest and size come from the registry.
    pub image: String,
}

/// Arguments of `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Print the information in a human friendly format.
    #[arg(long)]
    pub pretty: bool,
    /// IMAGE[:TAG] to inspect.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Arguments of `revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Do not prompt for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// IMAGE[:TAG] whose signatures to remove.
    pub image: String,
}

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// IMAGE[:TAG] or IMAGE@sha256:... to check as `DOCKER_CONTENT_TRUST=1 docker pull` would.
    pub image: String,
}

/// One repository's notary connection and cache.
struct Repo {
    image: ImageRef,
    gun: Gun,
    remote: NotaryRepo,
    server: String,
    cache: TrustCache,
}

/// docker's config; a malformed one is an error, not silently ignored.
fn docker_config() -> Result<DockerConfig, CliError> {
    DockerConfig::load().map_err(|e| CliError::Usage(e.to_string()))
}

fn parse_image(s: &str) -> Result<ImageRef, CliError> {
    ImageRef::parse(s).map_err(|e| CliError::Usage(e.to_string()))
}

/// The notary repository behind `image`, by docker's conventions.
fn open(image: ImageRef) -> Result<Repo, CliError> {
    let env_server = std::env::var("DOCKER_CONTENT_TRUST_SERVER").ok();
    let server = image
        .registry()
        .notary_server(env_server.as_deref())
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let host_port = match (server.host_str(), server.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => String::new(),
    };
    let docker = docker_config()?;
    let tls = docker.tls_dir(&host_port);
    let config = NotaryConfig {
        ca_file: tls.ca_files.first().cloned(),
        client_cert: tls.client,
        credentials: docker.credentials_for(image.registry().as_str()),
        server: server.clone(),
    };
    let client = NotaryClient::new(config).map_err(|e| CliError::Usage(e.to_string()))?;
    let gun = image.gun();
    Ok(Repo {
        remote: client.repo(&gun),
        server: server.to_string().trim_end_matches('/').to_owned(),
        cache: TrustCache::new(super::notary::default_trust_dir()),
        gun,
        image,
    })
}

impl Repo {
    /// docker's words for a repository the server has never heard of, and what to do.
    fn no_trust_data(&self) -> String {
        format!(
            "{} does not have trust data for {}: check the repository name, or create it with `tufa signer add` or `tufa sign`",
            self.server, self.gun
        )
    }

    async fn verified(&self) -> Result<VerifiedRepo, UpdateError> {
        tuf_update(&self.remote, &self.cache, &self.gun).await
    }

    /// As [`Self::state`], with the cache written while the caller signs; hand the pending
    /// write to [`Self::publish`].
    async fn state_deferred(&self) -> Result<(Option<RepoState>, Option<PendingCommit>), CliError> {
        Ok(repo::load_state_deferred(
            &self.remote,
            &self.cache,
            &self.gun,
            &UpdateOptions::default(),
        )
        .await?)
    }

    async fn state(&self) -> Result<Option<RepoState>, CliError> {
        Ok(repo::load_state(
            &self.remote,
            &self.cache,
            &self.gun,
            &UpdateOptions::default(),
        )
        .await?)
    }

    /// Publishes `changes` onto `current` (the state they were computed from); after a version
    /// conflict the state is read again. The next read refreshes the cache. `held` is the
    /// agent's key list when the caller has read it since the last key was made. `pending`
    /// is the cache write of the read that gave `current`; it ends before any other.
    async fn publish(
        &self,
        agent: &AgentClient,
        held: Option<AgentKeys>,
        current: Option<RepoState>,
        pending: Option<PendingCommit>,
        changes: &[Change],
    ) -> Result<bool, CliError> {
        let held = match held {
            Some(held) => held,
            None => AgentKeys::load(agent).await?,
        };
        let mut reread = Reread {
            repo: self,
            pending,
        };
        let published = repo::publish_changes(
            agent,
            &held,
            &self.remote,
            &self.gun,
            changes,
            StartingWith::new(current, &mut reread),
            OffsetDateTime::now_utc(),
        )
        .await;
        self.finish(reread.pending.take()).await;
        // The posted files are not cached alone: beside the cached snapshot they would mix two
        // server states. The next read fetches them (and what the server signed with them).
        let published = published?;
        Ok(published.created)
    }

    /// Waits for a deferred cache write; a failure costs only a later re-read, so it warns.
    async fn finish(&self, pending: Option<PendingCommit>) {
        if let Some(pending) = pending {
            if let Err(e) = pending.finish().await {
                eprintln!("warning: {e}");
            }
        }
    }

    /// Changes that create the repository as docker does: snapshot on the server.
    async fn init(&self, agent: &AgentClient) -> Result<Change, CliError> {
        let (change, _) =
            repo::init_change(agent, &self.gun, None, None, SnapshotChoice::Server).await?;
        Ok(change)
    }
}

/// The repository read again after a version conflict, the earlier read's cache write
/// finished first.
struct Reread<'a> {
    repo: &'a Repo,
    pending: Option<PendingCommit>,
}

impl StateSource for Reread<'_> {
    async fn current(&mut self) -> Result<Option<RepoState>, RepoError> {
        self.repo.finish(self.pending.take()).await;
        repo::load_state(
            &self.repo.remote,
            &self.repo.cache,
            &self.repo.gun,
            &UpdateOptions::default(),
        )
        .await
    }
}

async fn tuf_update(
    remote: &NotaryRepo,
    cache: &TrustCache,
    gun: &Gun,
) -> Result<VerifiedRepo, UpdateError> {
    crate::tuf::update(remote, cache, gun, &UpdateOptions::default()).await
}

impl SignerAddArgs {
    /// Adds the signer to every repository.
    pub async fn run(self, agent: &AgentClient) -> Result<(), CliError> {
        ops::check_signer_name(&self.name).map_err(|e| CliError::Usage(e.to_string()))?;
        if self.key.is_empty() {
            return Err(CliError::Usage(
                "path to a public key must be provided using the `--key` flag".into(),
            ));
        }
        let keys = super::read_public_keys(&self.key)?;
        let mut failed = Vec::new();
        for name in &self.repos {
            println!("Adding signer \"{}\" to {name}...", self.name);
            match self.add_to(agent, name, &keys).await {
                Ok(()) => println!("Successfully added signer: {} to {name}\n", self.name),
                Err(e) => {
                    eprintln!("{e}");
                    failed.push(name.clone());
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(CliError::Usage(format!(
                "failed to add signer to: {}",
                failed.join(", ")
            )))
        }
    }

    async fn add_to(
        &self,
        agent: &AgentClient,
        name: &str,
        keys: &[crate::tuf::PublicKey],
    ) -> Result<(), CliError> {
        let image = parse_image(name)?;
        if image.tag().is_some() || image.digest().is_some() {
            return Err(CliError::Usage(format!(
                "signers are added to a repository, not to a tag: use {}",
                image.familiar_name()
            )));
        }
        let repo = open(image)?;
        let mut changes = Vec::new();
        let current = repo.state().await?;
        let new = current.is_none();
        if new {
            println!("Initializing signed repository for {name}...");
            changes.push(repo.init(agent).await?);
        }
        changes
            .extend(ops::signer_add(&self.name, keys).map_err(|e| CliError::Usage(e.to_string()))?);
        repo.publish(agent, None, current, None, &changes).await?;
        if new {
            println!("Successfully initialized \"{name}\"");
        }
        Ok(())
    }
}

impl SignerRemoveArgs {
    /// Removes the signer from every repository.
    pub async fn run(self, agent: &AgentClient) -> Result<(), CliError> {
        let mut failed = Vec::new();
        for name in &self.repos {
            println!("Removing signer \"{}\" from {name}...", self.name);
            match self.remove_from(agent, name).await {
                Ok(true) => println!("Successfully removed {} from {name}\n", self.name),
                Ok(false) => {}
                Err(e) => {
                    eprintln!("{e}");
                    failed.push(name.clone());
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(CliError::Usage(format!(
                "error removing signer from: {}",
                failed.join(", ")
            )))
        }
    }

    async fn remove_from(&self, agent: &AgentClient, name: &str) -> Result<bool, CliError> {
        let repo = open(parse_image(name)?)?;
        let Some(state) = repo.state().await? else {
            return Err(CliError::Usage(format!(
                "error retrieving signers for {name}: {}",
                repo.no_trust_data()
            )));
        };
        // Checked before asking, as docker does: no question about a signer that cannot go.
        let changes = ops::signer_remove(&state, &self.name, name)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        if !self.force && ops::signer_signed_last_release(&state, &self.name) {
            let question = format!(
                "The signer \"{}\" signed the last released version of {name}. Removing this signer will make {name} unpullable. Are you sure you want to continue? [y/N] ",
                self.name
            );
            // docker's answer to "no" is silence and exit 0.
            if !confirm(&question)? {
                return Ok(false);
            }
        }
        repo.publish(agent, None, Some(state), None, &changes)
            .await?;
        Ok(true)
    }
}

/// Asks a yes/no question on the terminal (or reads the answer from stdin).
fn confirm(question: &str) -> Result<bool, CliError> {
    use std::io::Write as _;
    print!("{question}");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Usage(format!("cannot read the answer: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

impl SignArgs {
    /// Signs the tag into every role the agent can sign.
    pub async fn run(self, agent: &AgentClient) -> Result<(), CliError> {
        let image = parse_image(&self.image)?;
        let Some(tag) = image.tag().map(str::to_owned) else {
            return Err(CliError::Usage(format!(
                "no tag specified for {}: sign IMAGE:TAG",
                self.image
            )));
        };
        if image.digest().is_some() {
            return Err(CliError::Usage(
                "sign a tag, not a digest: IMAGE:TAG".into(),
            ));
        }
        let registry = registry_client(&image)?;
        let repo = open(image.clone())?;
        // Independent reads, so at once; their errors are reported in this order.
        let (descriptor, current, held) = tokio::join!(
            registry.resolve(&image),
            repo.state_deferred(),
            AgentKeys::load(agent)
        );
        let descriptor = descriptor?;
        let sha256 = hex::encode(descriptor.digest.as_bytes());
        println!("Signing and pushing trust metadata for {}", self.image);
        let (current, pending) = current?;
        let (held, changes) = match &current {
            None => {
                println!(
                    "Initializing signed repository for {}...",
                    image.familiar_name()
                );
                let init = repo.init(agent).await?;
                // Read after init: it made the repository's keys.
                let held = AgentKeys::load(agent).await?;
                let changes = vec![
                    init,
                    Change::AddTarget {
                        role: crate::tuf::RoleName::TARGETS,
                        name: tag.clone(),
                        length: descriptor.size,
                        sha256: descriptor.digest,
                        sha512: None,
                        custom: None,
                    },
                ];
                (held, changes)
            }
            Some(state) => {
                existing_signatures(state, &tag, &sha256);
                let held = held?;
                let changes = ops::sign(state, &held, &tag, descriptor.size, descriptor.digest)
                    .map_err(|e| CliError::Usage(e.to_string()))?;
                (held, changes)
            }
        };
        repo.publish(agent, Some(held), current, pending, &changes)
            .await?;
        println!("Successfully signed {}", self.image);
        Ok(())
    }
}

/// docker prints who already signed this tag with this digest.
fn existing_signatures(state: &RepoState, tag: &str, sha256: &str) {
    let signers: Vec<String> = state
        .targets
        .iter()
        .filter(|(role, _)| role.is_delegation() && **role != crate::tuf::RoleName::RELEASES)
        .filter(|(_, file)| {
            file.signed
                .targets
                .get(tag)
                .and_then(|m| m.hashes.sha256)
                .is_some_and(|d| hex::encode(d.as_bytes()) == sha256)
        })
        .map(|(role, _)| role.as_str().trim_start_matches("targets/").to_owned())
        .collect();
    if !signers.is_empty() {
        println!("Existing signatures for tag {tag} digest {sha256} from:");
        for s in signers {
            println!("{s}");
        }
    }
}

fn registry_client(image: &ImageRef) -> Result<RegistryClient, CliError> {
    let docker = docker_config()?;
    let config = RegistryConfig::from_docker_config(image.registry(), &docker, &[]);
    Ok(RegistryClient::new(config)?)
}

impl InspectArgs {
    /// Prints docker's JSON or pretty tables; `[]` and an error for repositories it cannot read.
    pub async fn run(self) -> Result<(), CliError> {
        if self.pretty {
            for (i, name) in self.images.iter().enumerate() {
                let found = inspect_one(name).await?;
                print!("{}", inspect::pretty(&found));
                if i + 1 < self.images.len() {
                    print!("\n\n");
                }
            }
            return Ok(());
        }
        let mut found = Vec::new();
        let mut errors = Vec::new();
        for name in &self.images {
            match inspect_one(name).await {
                Ok(r) => found.push(r),
                Err(e) => errors.push(e.to_string()),
            }
        }
        print!("{}", inspect::to_json(&found));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(CliError::AsDocker(errors.join("\n")))
        }
    }
}

/// One repository for `inspect`; failures are worded and printed as docker's.
async fn inspect_one(name: &str) -> Result<inspect::TrustRepo, CliError> {
    let as_docker = |e: CliError| CliError::AsDocker(e.to_string());
    let image = parse_image(name).map_err(as_docker)?;
    let tag = image.tag().map(str::to_owned);
    let repo = open(image).map_err(as_docker)?;
    let verified = repo.verified().await.map_err(|e| {
        // docker hides the reason too (only `docker -D` shows it).
        tracing::debug!(error = %e, "cannot read trust data");
        CliError::AsDocker(format!("no signatures or cannot access {name}"))
    })?;
    Ok(inspect::inspect(&verified, name, tag.as_deref()))
}

impl RevokeArgs {
    /// Removes the tag's signatures (or every tag's) from the roles the agent can sign.
    pub async fn run(self, agent: &AgentClient) -> Result<(), CliError> {
        let image = parse_image(&self.image)?;
        let tag = image.tag().map(str::to_owned);
        if tag.is_none() && !self.yes {
            let question = format!(
                "Confirm you would like to delete all signature data for {}? [y/N] ",
                self.image
            );
            // docker 28's words; a "no" ends silently with exit 0, as docker's does.
            if !confirm(&question)? {
                return Ok(());
            }
        }
        let repo = open(image)?;
        let state = repo.state().await?.ok_or_else(|| {
            CliError::Usage(format!(
                "could not remove signature for {}: {}",
                self.image,
                repo.no_trust_data()
            ))
        })?;
        let held = AgentKeys::load(agent).await?;
        let changes = ops::revoke(&state, &held, tag.as_deref()).map_err(|e| {
            CliError::Usage(format!(
                "could not remove signature for {}: {e}",
                self.image
            ))
        })?;
        repo.publish(agent, Some(held), Some(state), None, &changes)
            .await?;
        println!("Successfully deleted signature for {}", self.image);
        Ok(())
    }
}

impl VerifyArgs {
    /// Prints `NAME@sha256:...` of the trusted digest, as `DOCKER_CONTENT_TRUST=1 docker pull`
    /// would pull it; fails as docker does when there is no trust data for the tag.
    pub async fn run(self) -> Result<(), CliError> {
        let image = parse_image(&self.image)?;
        if let Some(digest) = image.digest() {
            // A digest needs no trust data, but it must exist.
            let client = registry_client(&image)?;
            if !client.manifest_exists(image.repository(), digest).await? {
                return Err(CliError::Usage(format!(
                    "manifest {digest} not found in {}",
                    image.familiar_name()
                )));
            }
            println!("{}@{digest}", image.familiar_name());
            return Ok(());
        }
        let image = image.with_default_tag();
        let tag = image.tag().unwrap_or("latest").to_owned();
        let repo = open(image.clone())?;
        let verified = match repo.verified().await {
            Ok(v) => v,
            Err(UpdateError::RepositoryNotFound { .. }) => {
                return Err(CliError::Usage(format!(
                    "remote trust data does not exist for {}: {} does not have trust data for {}",
                    repo.gun, repo.server, repo.gun
                )))
            }
            Err(e) => return Err(CliError::Usage(e.to_string())),
        };
        let entry = verified.docker_target(&tag).ok_or_else(|| {
            // docker words the two cases apart: a tag found first in a signer's own role (not
            // released) is "No trust data", a tag found nowhere is "No valid trust data".
            let roles = [
                crate::tuf::RoleName::RELEASES,
                crate::tuf::RoleName::TARGETS,
            ];
            match verified.target(&tag, Some(&roles)) {
                Some(_) => CliError::Usage(format!("No trust data for {tag}")),
                None => CliError::Usage(format!("No valid trust data for {tag}")),
            }
        })?;
        let digest = entry
            .sha256
            .ok_or_else(|| CliError::Usage(format!("no valid hash, expecting sha256 for {tag}")))?;
        println!(
            "{}@sha256:{}",
            repo.image.familiar_name(),
            hex::encode(digest.as_bytes())
        );
        Ok(())
    }
}
