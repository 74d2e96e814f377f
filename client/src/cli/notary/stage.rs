//! `add`, `addhash`, `remove` and `publish`: changes staged in the repository's changelist, and
//! publishing them (also what `-p` does after any staging verb).

use std::path::PathBuf;

use clap::Args;
use time::OffsetDateTime;

use crate::cli::args::{sha256_hex, sha512_hex, targets_role};
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::repo::{self, Change, Changelist, FromServer};
use crate::tuf::{Gun, RoleName, Sha256Digest, Sha512Digest};

/// `--roles` and `-p`, shared by the staging verbs.
#[derive(Debug, Args)]
pub struct StageArgs {
    /// Roles to change [default: targets].
    #[arg(long = "roles", short = 'r', value_parser = targets_role)]
    pub roles: Vec<RoleName>,
    /// Publish at once.
    #[arg(long, short = 'p')]
    pub publish: bool,
}

impl StageArgs {
    /// The roles to change: those given, else `targets`.
    fn roles(&self) -> Vec<RoleName> {
        if self.roles.is_empty() {
            vec![RoleName::TARGETS]
        } else {
            self.roles.clone()
        }
    }
}

/// Arguments of `add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The repository.
    pub gun: Gun,
    /// Target name.
    pub name: String,
    /// File whose size and SHA-256 are recorded.
    pub file: PathBuf,
    /// Roles and publishing.
    #[command(flatten)]
    pub stage: StageArgs,
}

/// Arguments of `addhash`.
#[derive(Debug, Args)]
pub struct AddHashArgs {
    /// The repository.
    pub gun: Gun,
    /// Target name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    #[arg(long, value_parser = sha256_hex)]
    pub sha256: Sha256Digest,
    /// SHA-512, hex (recorded besides the SHA-256, as notary does).
    #[arg(long, value_parser = sha512_hex)]
    pub sha512: Option<Sha512Digest>,
    /// Roles and publishing.
    #[command(flatten)]
    pub stage: StageArgs,
}

/// Arguments of `remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The repository.
    pub gun: Gun,
    /// Target name.
    pub name: String,
    /// Roles and publishing.
    #[command(flatten)]
    pub stage: StageArgs,
}

/// Arguments of `publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The repository.
    pub gun: Gun,
}

/// A target's size and digests.
struct TargetHashes {
    size: u64,
    sha256: Sha256Digest,
    sha512: Option<Sha512Digest>,
}

impl AddArgs {
    /// Stages the file's size and both digests, as `notary add` records them.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let data = std::fs::read(&self.file).map_err(|e| CliError::File {
            path: self.file.clone(),
            message: format!("cannot read the target file: {e}"),
        })?;
        let target = TargetHashes {
            size: data.len() as u64,
            sha256: Sha256Digest::of(&data),
            sha512: Some(Sha512Digest::of(&data)),
        };
        stage_target(ctx, &self.gun, &self.name, target, &self.stage, "").await
    }
}

impl AddHashArgs {
    /// Stages the size and digests given.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let target = TargetHashes {
            size: self.size,
            sha256: self.sha256,
            sha512: self.sha512,
        };
        stage_target(
            ctx,
            &self.gun,
            &self.name,
            target,
            &self.stage,
            " by sha256 hash",
        )
        .await
    }
}

impl RemoveArgs {
    /// Stages the target's removal from each role.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let list = Changelist::new(&ctx.trust_dir, &self.gun);
        for role in self.stage.roles() {
            list.add(Change::RemoveTarget {
                role,
                name: self.name.clone(),
            })?;
        }
        println!(
            "Removal of {} from {} staged for next publish.",
            self.name, self.gun
        );
        maybe_publish(ctx, &self.gun, self.stage.publish).await
    }
}

impl PublishArgs {
    /// Publishes the staged changes.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        println!("Pushing changes to {}", self.gun);
        publish(ctx, &self.gun).await
    }
}

async fn stage_target(
    ctx: &Ctx,
    gun: &Gun,
    name: &str,
    target: TargetHashes,
    stage: &StageArgs,
    how: &str,
) -> Result<(), CliError> {
    let list = Changelist::new(&ctx.trust_dir, gun);
    for role in stage.roles() {
        list.add(Change::AddTarget {
            role,
            name: name.to_owned(),
            length: target.size,
            sha256: target.sha256,
            sha512: target.sha512,
            custom: None,
        })?;
    }
    println!("Addition of target \"{name}\"{how} to repository \"{gun}\" staged for next publish.");
    maybe_publish(ctx, gun, stage.publish).await
}

/// Publishes when `-p` was given.
pub(super) async fn maybe_publish(ctx: &Ctx, gun: &Gun, now: bool) -> Result<(), CliError> {
    if !now {
        return Ok(());
    }
    println!("Auto-publishing changes to {gun}");
    publish(ctx, gun).await
}

/// Publishes the changelist, then refreshes the cache with what the server now serves.
async fn publish(ctx: &Ctx, gun: &Gun) -> Result<(), CliError> {
    let remote = ctx.notary()?.repo(gun);
    let cache = ctx.cache();
    let list = Changelist::new(&ctx.trust_dir, gun);
    repo::publish(
        ctx.agent().await?,
        &remote,
        gun,
        &list,
        FromServer::new(&remote, &cache, gun, &ctx.options),
        OffsetDateTime::now_utc(),
    )
    .await?;
    ctx.refresh(&remote, gun).await;
    println!("Successfully published changes for repository {gun}");
    Ok(())
}
