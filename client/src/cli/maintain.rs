//! `tufa notary status`, `resign` and `incident`: keeping a repository alive and recovering
//! from a compromised signer.

use std::time::Duration;

use clap::Args;
use time::OffsetDateTime;

use super::notary::{parse_gun, server_of, verified_repo, Context};
use super::{table, CliError};
use crate::incident::{self, Choices};
use crate::repo::{self, AgentKeys, Change, FromServer, RepoState, StartingWith};
use crate::status::{self, Holder};
use crate::tuf::{self, Gun, RoleName, TrustCache};

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The repository.
    pub gun: String,
    /// Days before expiry targets, delegations and snapshot count as due (root: 182, as Notary).
    #[arg(long, default_value_t = 90)]
    pub within: u64,
}

/// Arguments of `resign`.
#[derive(Debug, Args)]
pub struct ResignArgs {
    /// The repository.
    pub gun: String,
    /// Days before expiry targets, delegations and snapshot are re-signed (root: 182, as Notary).
    #[arg(long, default_value_t = 90)]
    pub within: u64,
    /// Re-sign what this agent holds even when other due roles are held elsewhere.
    #[arg(long)]
    pub skip_elsewhere: bool,
}

/// Arguments of `incident`.
#[derive(Debug, Args)]
pub struct IncidentArgs {
    /// The repository.
    pub gun: String,
    /// The compromised key's ID (or 7+ hex digits of it).
    #[arg(long)]
    pub key: String,
    /// Re-sign what only the compromised key vouched for with this agent key (another signer's).
    #[arg(long)]
    pub resign_with: Option<String>,
    /// Drop this target instead (repeatable).
    #[arg(long)]
    pub drop: Vec<String>,
    /// Drop every target only the compromised key vouched for.
    #[arg(long)]
    pub drop_all: bool,
}

fn window(days: u64) -> Duration {
    Duration::from_secs(days * 24 * 3600)
}

/// What `status` and `resign` read: the verified repository, the agent's keys when an agent
/// answers, and the statuses of the repository's roles.
struct Reading {
    state: RepoState,
    held: Option<AgentKeys>,
    statuses: Vec<status::RoleStatus>,
}

async fn statuses(ctx: &Context, gun: &Gun) -> Result<Reading, CliError> {
    let verified = verified_repo(ctx, gun).await?;
    let held = match ctx.agent.get().await {
        Ok(agent) => AgentKeys::load(agent).await.ok(),
        Err(_) => None,
    };
    // Asking the server makes it create a snapshot key it lacks: only when the agent has none.
    let root = &verified.root().signed;
    let agent_snapshot = held.as_ref().is_some_and(|h| {
        root.roles
            .snapshot
            .keyids
            .iter()
            .filter_map(|id| root.keys.get(id))
            .any(|k| h.for_key(k).is_some())
    });
    let server_snapshot = if agent_snapshot {
        None
    } else {
        server_of(ctx)?
            .repo(gun)
            .server_key(&RoleName::SNAPSHOT)
            .await
            .ok()
    };
    let statuses = status::report(&verified, held.as_ref(), server_snapshot.as_ref());
    Ok(Reading {
        state: RepoState::from(verified),
        held,
        statuses,
    })
}

impl StatusArgs {
    /// Prints one line per role.
    pub(crate) async fn run(self, ctx: &Context) -> Result<(), CliError> {
        let gun = parse_gun(&self.gun)?;
        let now = OffsetDateTime::now_utc();
        let mut rows = vec![
            [
                "ROLE",
                "VERSION",
                "EXPIRES",
                "THRESHOLD",
                "KEYS",
                "HELD BY",
                "DUE",
            ]
            .map(String::from)
            .to_vec(),
            [
                "----",
                "-------",
                "-------",
                "---------",
                "----",
                "-------",
                "---",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for s in statuses(ctx, &gun).await?.statuses {
            let keys: Vec<String> = s.keys.iter().map(|k| k.short()).collect();
            rows.push(vec![
                s.role.to_string(),
                s.version.to_string(),
                s.expires.to_string(),
                s.threshold.to_string(),
                keys.join(","),
                s.holder.as_str().to_owned(),
                if status::is_due(&s, now, window(self.within)) {
                    "yes".to_owned()
                } else {
                    "no".to_owned()
                },
            ]);
        }
        print!("{}", table::render(&rows));
        Ok(())
    }
}

impl ResignArgs {
    /// Re-signs the due roles this agent holds, in one publish.
    pub(crate) async fn run(self, ctx: &Context) -> Result<(), CliError> {
        let gun = parse_gun(&self.gun)?;
        let now = OffsetDateTime::now_utc();
        let reading = statuses(ctx, &gun).await?;
        let due: Vec<status::RoleStatus> = reading
            .statuses
            .into_iter()
            .filter(|s| status::is_due(s, now, window(self.within)))
            .collect();
        if due.is_empty() {
            println!("Nothing in {gun} is due for re-signing (root within 182 days of expiry, other roles within {} days)", self.within);
            return Ok(());
        }
        let (here, elsewhere): (Vec<_>, Vec<_>) =
            due.into_iter().partition(|s| s.holder == Holder::Agent);
        if let Some(root) = elsewhere.iter().find(|s| s.role == RoleName::ROOT) {
            return Err(CliError::Usage(format!(
                "the root of {gun} expires at {} and its keys are not in this agent: renew it with a ceremony (`tufa root rotate {gun} --renew --out REQ.json`, signed where the root keys are); nothing was published",
                root.expires
            )));
        }
        if !elsewhere.is_empty() && !self.skip_elsewhere {
            let names: Vec<String> = elsewhere.iter().map(|s| s.role.to_string()).collect();
            return Err(CliError::Usage(format!(
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
        let remote = server_of(ctx)?.repo(&gun);
        let cache = TrustCache::new(&ctx.trust_dir);
        let source = StartingWith::new(
            Some(reading.state),
            FromServer::new(&remote, &cache, &gun, &ctx.options),
        );
        let agent = ctx.agent.get().await?;
        let held = match reading.held {
            Some(held) => held,
            None => AgentKeys::load(agent).await?,
        };
        let published =
            repo::publish_changes(agent, &held, &remote, &gun, &changes, source, now).await?;
        refresh(ctx, &remote, &cache, &gun).await;
        let roles: Vec<String> = published.roles.iter().map(RoleName::to_string).collect();
        println!("Re-signed {} of {gun}", roles.join(", "));
        Ok(())
    }
}

impl IncidentArgs {
    /// Plans, prints and publishes the removal of the compromised key.
    pub(crate) async fn run(self, ctx: &Context) -> Result<(), CliError> {
        let gun = parse_gun(&self.gun)?;
        let state = RepoState::from(verified_repo(ctx, &gun).await?);
        let resign_with = match &self.resign_with {
            Some(r) => Some(ctx.agent.get().await?.key(r).await?.id),
            None => None,
        };
        let choices = Choices {
            resign_with,
            drop: self.drop.iter().cloned().collect(),
            drop_all: self.drop_all,
        };
        let plan = incident::plan(&state, &self.key, &choices)
            .map_err(|e| CliError::Usage(format!("{e}; nothing was published")))?;
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
        let remote = server_of(ctx)?.repo(&gun);
        let cache = TrustCache::new(&ctx.trust_dir);
        let source = StartingWith::new(
            Some(state),
            FromServer::new(&remote, &cache, &gun, &ctx.options),
        );
        let agent = ctx.agent.get().await?;
        repo::publish_changes(
            agent,
            &AgentKeys::load(agent).await?,
            &remote,
            &gun,
            &plan.changes,
            source,
            OffsetDateTime::now_utc(),
        )
        .await?;
        refresh(ctx, &remote, &cache, &gun).await;
        println!("Successfully published changes for repository {gun}");
        Ok(())
    }
}

async fn refresh(ctx: &Context, remote: &crate::notary::NotaryRepo, cache: &TrustCache, gun: &Gun) {
    if let Err(e) = tuf::update(remote, cache, gun, &ctx.options).await {
        tracing::warn!(gun = %gun, error = %e, "published, but could not refresh the local cache");
    }
}
