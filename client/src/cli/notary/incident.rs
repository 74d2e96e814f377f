//! `incident`: a compromised delegation key removed from every role that lists it; what it
//! alone vouched for re-signed by another signer or dropped, in one publish.

use clap::Args;
use time::OffsetDateTime;

use crate::cli::args::KeyRef;
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::incident::{self, Choices};
use crate::repo::{self, AgentKeys, FromServer, RepoState, StartingWith};
use crate::tuf::{Gun, RoleName};

/// Arguments of `incident`.
#[derive(Debug, Args)]
pub struct IncidentArgs {
    /// The repository.
    pub gun: Gun,
    /// The compromised key's ID (or 7+ hex digits of it).
    #[arg(long)]
    pub key: String,
    /// Re-sign what only the compromised key vouched for with this agent key (another signer's).
    #[arg(long)]
    pub resign_with: Option<KeyRef>,
    /// Drop this target instead (repeatable).
    #[arg(long)]
    pub drop: Vec<String>,
    /// Drop every target only the compromised key vouched for.
    #[arg(long)]
    pub drop_all: bool,
}

impl IncidentArgs {
    /// Plans, prints and publishes the removal of the compromised key.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let gun = &self.gun;
        let state = RepoState::from(ctx.verified(gun).await?);
        let resign_with = match &self.resign_with {
            Some(r) => Some(ctx.agent().await?.key(r.as_str()).await?.id),
            None => None,
        };
        let choices = Choices {
            resign_with,
            drop: self.drop.iter().cloned().collect(),
            drop_all: self.drop_all,
        };
        let plan = incident::plan(&state, &self.key, &choices)?;
        let ids: Vec<String> = plan.key_ids.iter().map(ToString::to_string).collect();
        println!("Removing key {} from {gun}", ids.join(", "));
        for role in &plan.roles_kept {
            println!("  {role}: key removed, re-signed by its other keys");
        }
        for role in &plan.roles_removed {
            println!("  {role}: removed (the compromised key was its only key)");
        }
        for (name, roles) in &plan.resigned {
            let roles: Vec<String> = roles.iter().map(RoleName::to_string).collect();
            println!("  {name}: re-signed into {}", roles.join(", "));
        }
        for name in &plan.dropped {
            println!("  {name}: dropped");
        }
        let remote = ctx.notary()?.repo(gun);
        let cache = ctx.cache();
        let source = StartingWith::new(
            Some(state),
            FromServer::new(&remote, &cache, gun, &ctx.options),
        );
        let agent = ctx.agent().await?;
        repo::publish_changes(
            agent,
            &AgentKeys::load(agent).await?,
            &remote,
            gun,
            &plan.changes,
            source,
            OffsetDateTime::now_utc(),
        )
        .await?;
        ctx.refresh(&remote, gun).await;
        println!("Successfully published changes for repository {gun}");
        Ok(())
    }
}
