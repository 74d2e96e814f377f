//! `status`: each role's version, expiry, threshold, keys and who holds them, and which are due
//! for re-signing; also the reading `resign` starts from.

use std::time::Duration;

use clap::Args;
use time::OffsetDateTime;

use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::cli::table;
use crate::repo::{AgentKeys, RepoState};
use crate::status::{self, Holder, RoleStatus};
use crate::tuf::{Gun, RoleName};

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The repository.
    pub gun: Gun,
    /// Days before expiry targets, delegations and snapshot count as due (root: 182, as Notary).
    #[arg(long, default_value_t = 90)]
    pub within: u64,
}

/// `--within DAYS` as a duration.
pub(super) fn window(days: u64) -> Duration {
    Duration::from_secs(days * 24 * 3600)
}

/// What `status` and `resign` read: the verified repository, the agent's keys when an agent
/// answers, and the statuses of the repository's roles.
pub(super) struct Reading {
    pub(super) state: RepoState,
    pub(super) held: Option<AgentKeys>,
    pub(super) statuses: Vec<RoleStatus>,
}

impl Reading {
    /// Reads `gun` and the agent's keys.
    pub(super) async fn new(ctx: &Ctx, gun: &Gun) -> Result<Self, CliError> {
        let verified = ctx.verified(gun).await?;
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
            ctx.notary()?
                .repo(gun)
                .server_key(&RoleName::SNAPSHOT)
                .await
                .ok()
        };
        let statuses = status::report(&verified, held.as_ref(), server_snapshot.as_ref());
        Ok(Self {
            state: RepoState::from(verified),
            held,
            statuses,
        })
    }
}

impl StatusArgs {
    /// Prints one line per role.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let now = OffsetDateTime::now_utc();
        let mut rows = table::header(&[
            "ROLE",
            "VERSION",
            "EXPIRES",
            "THRESHOLD",
            "KEYS",
            "HELD BY",
            "DUE",
        ]);
        let reading = Reading::new(ctx, &self.gun).await?;
        for s in reading.statuses {
            let keys: Vec<String> = s.keys.iter().map(|k| k.short()).collect();
            let due = status::is_due(&s, now, window(self.within));
            rows.push(vec![
                s.role.to_string(),
                s.version.to_string(),
                s.expires.to_string(),
                s.threshold.to_string(),
                keys.join(","),
                holder_text(&s, reading.held.as_ref()),
                if due { "yes" } else { "no" }.to_owned(),
            ]);
        }
        print!("{}", table::render(&rows));
        Ok(())
    }
}

/// Who holds a role, as `status` prints it: a server role whose keys this agent keeps for
/// notary-server (it is the server's signer) is "server (tufad, HSM)".
fn holder_text(s: &RoleStatus, held: Option<&AgentKeys>) -> String {
    let in_this_agent = held.is_some_and(|h| s.keys.iter().any(|id| h.server_key(id).is_some()));
    if s.holder == Holder::Server && in_this_agent {
        "server (tufad, HSM)".to_owned()
    } else {
        s.holder.as_str().to_owned()
    }
}
