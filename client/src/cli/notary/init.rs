//! `init`: a new repository: root and targets keys in the agent (made when missing), snapshot
//! in the agent or on the server, timestamp from the server.

use clap::Args;

use super::stage::maybe_publish;
use crate::cli::args::{KeyChoice, KeyRef};
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::repo::{self, Changelist};
use crate::tuf::{Gun, RoleName};

/// Arguments of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The repository.
    pub gun: Gun,
    /// Agent key for root [default: the key named `root`, generated if missing].
    #[arg(long)]
    pub root_key: Option<KeyRef>,
    /// The targets and snapshot keys.
    #[command(flatten)]
    pub keys: KeyChoice,
    /// Publish at once.
    #[arg(long, short = 'p')]
    pub publish: bool,
}

impl InitArgs {
    /// Stages the new repository's root (and publishes it with `-p`).
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let (change, reused_root) = repo::init_change(
            ctx.agent().await?,
            &self.gun,
            self.root_key.as_ref().map(KeyRef::as_str),
            self.keys.targets_key.as_ref().map(KeyRef::as_str),
            self.keys.snapshot(),
        )
        .await?;
        if let Some(id) = reused_root {
            println!("Root key found, using: {id}");
        }
        // The timestamp key is asked for now, as notary does, so a wrong server shows at once.
        ctx.notary()?
            .repo(&self.gun)
            .server_key(&RoleName::TIMESTAMP)
            .await?;
        Changelist::new(&ctx.trust_dir, &self.gun).add(change)?;
        maybe_publish(ctx, &self.gun, self.publish).await
    }
}
