//! The `docker trust` verbs: signer add/remove, sign, inspect, revoke, and verify.
//!
//! docker's conventions: the notary server is `$DOCKER_CONTENT_TRUST_SERVER`, else
//! `https://<registry host>` (`https://notary.docker.io` for Docker Hub); its CA is in
//! `$DOCKER_CONFIG/tls/<host:port>/`; credentials are the registry's from docker's config; short
//! names are docker.io names. Unlike docker, the notary server's certificate is always checked,
//! loopback registries included. Image references are parsed per verb and repository, not by
//! clap: docker reports a bad one among several and goes on, in its own words.

use std::io::BufRead as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use time::OffsetDateTime;

use super::context::{Ctx, ImageRepo};
use super::error::CliError;
use super::files::read_public_keys;
use crate::agent::AgentClient;
use crate::reference::ImageRef;
use crate::repo::{
    self, AgentKeys, Change, RepoError, RepoState, SnapshotChoice, StartingWith, StateSource,
};
use crate::trust::{inspect, ops};
use crate::tuf::{PendingCommit, PublicKey, RoleName, UpdateError, UpdateOptions};

/// `tufa signer ...`.
#[derive(Debug, Subcommand)]
pub enum SignerCommand {
    /// Add a signer: `targets/NAME` and its key in `targets/releases`.
    Add(SignerAddArgs),
    /// Remove a signer.
    Remove(SignerRemoveArgs),
}

impl SignerCommand {
    /// Runs the verb.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        match self {
            Self::Add(a) => a.run(ctx).await,
            Self::Remove(a) => a.run(ctx).await,
        }
    }
}

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
    /// `IMAGE[:TAG]` to inspect.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Arguments of `revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Do not prompt for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// `IMAGE[:TAG]` whose signatures to remove.
    pub image: String,
}

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// `IMAGE[:TAG]` or `IMAGE@sha256:...` to check as `DOCKER_CONTENT_TRUST=1 docker pull` would.
    pub image: String,
}

impl SignerAddArgs {
    /// Adds the signer to every repository.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let agent = ctx.agent().await?;
        ops::check_signer_name(&self.name)?;
        if self.key.is_empty() {
            return Err(CliError::Usage(
                "path to a public key must be provided using the `--key` flag".into(),
            ));
        }
        let keys = read_public_keys(&self.key)?;
        each_repository(&self.repos, "failed to add signer to", async |name| {
            println!("Adding signer \"{}\" to {name}...", self.name);
            self.add_to(ctx, agent, name, &keys).await?;
            println!("Successfully added signer: {} to {name}\n", self.name);
            Ok(())
        })
        .await
    }

    async fn add_to(
        &self,
        ctx: &Ctx,
        agent: &AgentClient,
        name: &str,
        keys: &[PublicKey],
    ) -> Result<(), CliError> {
        let image = ImageRef::parse(name)?;
        if image.tag().is_some() || image.digest().is_some() {
            return Err(CliError::Usage(format!(
                "signers are added to a repository, not to a tag: use {}",
                image.familiar_name()
            )));
        }
        let repo = ctx.for_image(image)?;
        let mut changes = Vec::new();
        let current = repo.state().await?;
        let new = current.is_none();
        if new {
            println!("Initializing signed repository for {name}...");
            changes.push(init(agent, &repo).await?);
        }
        changes.extend(ops::signer_add(&self.name, keys)?);
        publish(agent, &repo, None, current, None, &changes).await?;
        if new {
            println!("Successfully initialized \"{name}\"");
        }
        Ok(())
    }
}

impl SignerRemoveArgs {
    /// Removes the signer from every repository.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let agent = ctx.agent().await?;
        each_repository(&self.repos, "error removing signer from", async |name| {
            println!("Removing signer \"{}\" from {name}...", self.name);
            if self.remove_from(ctx, agent, name).await? {
                println!("Successfully removed {} from {name}\n", self.name);
            }
            Ok(())
        })
        .await
    }

    /// Whether the signer was removed (a "no" to docker's question keeps it).
    async fn remove_from(
        &self,
        ctx: &Ctx,
        agent: &AgentClient,
        name: &str,
    ) -> Result<bool, CliError> {
        let repo = ctx.for_image(ImageRef::parse(name)?)?;
        let Some(state) = repo.state().await? else {
            return Err(CliError::Refused(format!(
                "error retrieving signers for {name}: {}",
                repo.no_trust_data()
            )));
        };
        // Checked before asking, as docker does: no question about a signer that cannot go.
        let changes = ops::signer_remove(&state, &self.name, name)?;
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
        publish(agent, &repo, None, Some(state), None, &changes).await?;
        Ok(true)
    }
}

impl SignArgs {
    /// Signs the tag into every role the agent can sign.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let agent = ctx.agent().await?;
        let image = ImageRef::parse(&self.image)?;
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
        let registry = ctx.registry_for(&image)?;
        let repo = ctx.for_image(image.clone())?;
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
                let init = init(agent, &repo).await?;
                // Read after init: it made the repository's keys.
                let held = AgentKeys::load(agent).await?;
                let changes = vec![
                    init,
                    Change::AddTarget {
                        role: RoleName::TARGETS,
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
                let changes = ops::sign(state, &held, &tag, descriptor.size, descriptor.digest)?;
                (held, changes)
            }
        };
        publish(agent, &repo, Some(held), current, pending, &changes).await?;
        println!("Successfully signed {}", self.image);
        Ok(())
    }
}

impl InspectArgs {
    /// Prints docker's JSON or pretty tables; `[]` and an error for repositories it cannot read.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        if self.pretty {
            for (i, name) in self.images.iter().enumerate() {
                let found = inspect_one(ctx, name).await?;
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
            match inspect_one(ctx, name).await {
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

impl RevokeArgs {
    /// Removes the tag's signatures (or every tag's) from the roles the agent can sign.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let agent = ctx.agent().await?;
        let image = ImageRef::parse(&self.image)?;
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
        let repo = ctx.for_image(image)?;
        let failed = format!("could not remove signature for {}", self.image);
        let state = repo
            .state()
            .await?
            .ok_or_else(|| CliError::Refused(format!("{failed}: {}", repo.no_trust_data())))?;
        let held = AgentKeys::load(agent).await?;
        let changes =
            ops::revoke(&state, &held, tag.as_deref()).map_err(|e| CliError::within(failed, e))?;
        publish(agent, &repo, Some(held), Some(state), None, &changes).await?;
        println!("Successfully deleted signature for {}", self.image);
        Ok(())
    }
}

impl VerifyArgs {
    /// Prints `NAME@sha256:...` of the trusted digest, as `DOCKER_CONTENT_TRUST=1 docker pull`
    /// would pull it; fails as docker does when there is no trust data for the tag.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let image = ImageRef::parse(&self.image)?;
        if let Some(digest) = image.digest() {
            // A digest needs no trust data, but it must exist.
            let client = ctx.registry_for(&image)?;
            if !client.manifest_exists(image.repository(), digest).await? {
                return Err(CliError::Refused(format!(
                    "manifest {digest} not found in {}",
                    image.familiar_name()
                )));
            }
            println!("{}@{digest}", image.familiar_name());
            return Ok(());
        }
        let image = image.with_default_tag();
        let tag = image.tag().unwrap_or("latest").to_owned();
        let repo = ctx.for_image(image.clone())?;
        let verified = match repo.verified().await {
            Ok(v) => v,
            Err(UpdateError::RepositoryNotFound { .. }) => {
                return Err(CliError::Refused(format!(
                    "remote trust data does not exist for {}: {} does not have trust data for {}",
                    repo.gun, repo.server, repo.gun
                )))
            }
            Err(e) => return Err(e.into()),
        };
        let entry = verified.docker_target(&tag).ok_or_else(|| {
            // docker words the two cases apart: a tag found first in a signer's own role (not
            // released) is "No trust data", a tag found nowhere is "No valid trust data".
            let roles = [RoleName::RELEASES, RoleName::TARGETS];
            match verified.target(&tag, Some(&roles)) {
                Some(_) => CliError::Refused(format!("No trust data for {tag}")),
                None => CliError::Refused(format!("No valid trust data for {tag}")),
            }
        })?;
        let digest = entry.sha256.ok_or_else(|| {
            CliError::Refused(format!("no valid hash, expecting sha256 for {tag}"))
        })?;
        println!(
            "{}@sha256:{}",
            repo.image.familiar_name(),
            hex::encode(digest.as_bytes())
        );
        Ok(())
    }
}

/// Runs `each` on every repository named; a failure is printed and the next one goes on, as
/// docker does, and the failed ones are named at the end.
async fn each_repository(
    repos: &[String],
    action: &'static str,
    mut each: impl AsyncFnMut(&str) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let mut failed = Vec::new();
    for name in repos {
        if let Err(e) = each(name).await {
            eprintln!("{e}");
            failed.push(name.clone());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Repositories { action, failed })
    }
}

/// One repository for `inspect`; failures are worded and printed as docker's.
async fn inspect_one(ctx: &Ctx, name: &str) -> Result<inspect::TrustRepo, CliError> {
    let as_docker = |e: CliError| CliError::AsDocker(e.to_string());
    let image = ImageRef::parse(name).map_err(|e| as_docker(e.into()))?;
    let tag = image.tag().map(str::to_owned);
    let repo = ctx.for_image(image).map_err(as_docker)?;
    let verified = repo.verified().await.map_err(|e| {
        // docker hides the reason too (only `docker -D` shows it).
        tracing::debug!(error = %e, "cannot read trust data");
        CliError::AsDocker(format!("no signatures or cannot access {name}"))
    })?;
    Ok(inspect::inspect(&verified, name, tag.as_deref()))
}

/// The change that creates the repository as docker does: snapshot on the server.
async fn init(agent: &AgentClient, repo: &ImageRepo) -> Result<Change, CliError> {
    let (change, _) =
        repo::init_change(agent, &repo.gun, None, None, SnapshotChoice::Server).await?;
    Ok(change)
}

/// Publishes `changes` onto `current` (the state they were computed from); after a version
/// conflict the state is read again. The next read refreshes the cache. `held` is the agent's
/// key list when the caller has read it since the last key was made. `pending` is the cache
/// write of the read that gave `current`; it ends before any other.
async fn publish(
    agent: &AgentClient,
    repo: &ImageRepo,
    held: Option<AgentKeys>,
    current: Option<RepoState>,
    pending: Option<PendingCommit>,
    changes: &[Change],
) -> Result<bool, CliError> {
    let held = match held {
        Some(held) => held,
        None => AgentKeys::load(agent).await?,
    };
    let mut reread = Reread { repo, pending };
    let published = repo::publish_changes(
        agent,
        &held,
        &repo.remote,
        &repo.gun,
        changes,
        StartingWith::new(current, &mut reread),
        OffsetDateTime::now_utc(),
    )
    .await;
    finish(reread.pending.take()).await;
    // The posted files are not cached alone: beside the cached snapshot they would mix two
    // server states. The next read fetches them (and what the server signed with them).
    Ok(published?.created)
}

/// Waits for a deferred cache write; a failure costs only a later re-read, so it warns.
async fn finish(pending: Option<PendingCommit>) {
    if let Some(pending) = pending {
        if let Err(e) = pending.finish().await {
            eprintln!("warning: {e}");
        }
    }
}

/// The repository read again after a version conflict, the earlier read's cache write
/// finished first.
struct Reread<'a> {
    repo: &'a ImageRepo,
    pending: Option<PendingCommit>,
}

impl StateSource for Reread<'_> {
    async fn current(&mut self) -> Result<Option<RepoState>, RepoError> {
        finish(self.pending.take()).await;
        repo::load_state(
            &self.repo.remote,
            &self.repo.cache,
            &self.repo.gun,
            &UpdateOptions::default(),
        )
        .await
    }
}

/// docker prints who already signed this tag with this digest.
fn existing_signatures(state: &RepoState, tag: &str, sha256: &str) {
    let signers: Vec<String> = state
        .targets
        .iter()
        .filter(|(role, _)| role.is_delegation() && **role != RoleName::RELEASES)
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

/// Asks a yes/no question on the terminal (or reads the answer from stdin).
fn confirm(question: &str) -> Result<bool, CliError> {
    use std::io::Write as _;
    print!("{question}");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|source| CliError::Io {
            doing: "cannot read the answer",
            source,
        })?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
