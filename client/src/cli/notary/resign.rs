//! `resign`: the roles due for re-signing that this agent holds, re-signed in one publish.

use clap::Args;
use time::OffsetDateTime;

use super::status::{window, Reading};
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::repo::{self, AgentKeys, Change, FromServer, StartingWith};
use crate::status::{is_due, Holder, RoleStatus};
use crate::tuf::{Gun, RoleName};

/// Arguments of `resign`.
#[derive(Debug, Args)]
pub struct ResignArgs {
    /// The repository.
    pub gun: Gun,
    /// Days before expiry targets, delegations and snapshot are re-signed (root: 182, as Notary).
    #[arg(long, default_value_t = 90)]
    pub within: u64,
    /// Re-sign what this agent holds even when other due roles are held elsewhere.
    #[arg(long)]
    pub skip_elsewhere: bool,
}

impl ResignArgs {
    /// Re-signs the due roles this agent holds, in one publish.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let gun = &self.gun;
        let now = OffsetDateTime::now_utc();
        let reading = Reading::new(ctx, gun).await?;
        let due: Vec<RoleStatus> = reading
            .statuses
            .into_iter()
            .filter(|s| is_due(s, now, window(self.within)))
            .collect();
        if due.is_empty() {
            println!("Nothing in {gun} is due for re-signing (root within 182 days of expiry, other roles within {} days)", self.within);
            return Ok(());
        }
        let (here, elsewhere): (Vec<_>, Vec<_>) =
            due.into_iter().partition(|s| s.holder == Holder::Agent);
        if let Some(root) = elsewhere.iter().find(|s| s.role == RoleName::ROOT) {
            return Err(CliError::Refused(format!(
                "the root of {gun} expires at {} and its keys are not in this agent: renew it with a ceremony (`tufa root rotate {gun} --renew --out REQ.json`, signed where the root keys are); nothing was published",
                root.expires
            )));
        }
        if !elsewhere.is_empty() && !self.skip_elsewhere {
            let names: Vec<String> = elsewhere.iter().map(|s| s.role.to_string()).collect();
            return Err(CliError::Refused(format!(
                "{} of {gun} are due but this agent cannot sign them: re-sign them where their keys are, or pass --skip-elsewhere to re-sign only what this agent holds; nothing was published",
                names.join(", ")
            )));
        }
        // Root and an agent-held snapshot are re-signed by any publish; targets roles by name.
        let changes: Vec<Change> = here
            .iter()
            .filter(|s| s.role == RoleName::TARGETS || s.role.is_delegation())
            .map(|s| Change::Resign {
                role: s.role.clone(),
            })
            .collect();
        if here.is_empty() {
            println!("Nothing this agent can sign is due in {gun}");
            return Ok(());
        }
        let remote = ctx.notary()?.repo(gun);
        let cache = ctx.cache();
        let source = StartingWith::new(
            Some(reading.state),
            FromServer::new(&remote, &cache, gun, &ctx.options),
        );
        let agent = ctx.agent().await?;
        let held = match reading.held {
            Some(held) => held,
            None => AgentKeys::load(agent).await?,
        };
        let published =
            repo::publish_changes(agent, &held, &remote, gun, &changes, source, now).await?;
        ctx.refresh(&remote, gun).await;
        let roles: Vec<String> = published.roles.iter().map(RoleName::to_string).collect();
        println!("Re-signed {} of {gun}", roles.join(", "));
        Ok(())
    }
}
