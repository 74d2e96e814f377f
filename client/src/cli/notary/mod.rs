//! `tufa notary ...`: the notary CLI's verbs, with every private key in the agent.
//!
//! Operations stage changes and `publish` sends them, as in notary; `-p` publishes at once.
//! Output mirrors the notary CLI's, so scripts written for it keep working.
//!
//! Layout:
//! - `init`: `init`, a new repository's keys and first change.
//! - `stage`: `add`, `addhash`, `remove` and `publish`: the changelist and publishing it.
//! - `list`: `list`, the targets.
//! - `delegation`: `delegation add/remove/list`.
//! - `key`: `key list` (with the roles the cached roots give each key) and `key rotate`.
//! - `delete`: `delete`, local (and remote) trust data.
//! - `status`, `resign`: each role's expiry and re-signing what is due.
//! - `incident`: removing a compromised delegation key and what it alone signed.

mod delegation;
mod delete;
mod incident;
mod init;
mod key;
mod list;
mod resign;
mod stage;
mod status;

use clap::{Args, Subcommand};

use super::context::{Ctx, ServerArgs};
use super::error::CliError;

use delegation::DelegationCommand;
use delete::DeleteArgs;
use incident::IncidentArgs;
use init::InitArgs;
use key::NotaryKeyCommand;
use list::ListArgs;
use resign::ResignArgs;
use stage::{AddArgs, AddHashArgs, PublishArgs, RemoveArgs};
use status::StatusArgs;

/// Where the notary verbs find the server and the local trust data, and what to do.
#[derive(Debug, Args)]
pub struct NotaryArgs {
    /// Server, trust directory and client config.
    #[command(flatten)]
    pub server: ServerArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: NotaryCommand,
}

/// The notary verbs.
#[derive(Debug, Subcommand)]
pub enum NotaryCommand {
    /// Create a repository: root and targets keys in the agent, timestamp key from the server.
    Init(InitArgs),
    /// Stage a target read from a file.
    Add(AddArgs),
    /// Stage a target by size and SHA-256.
    Addhash(AddHashArgs),
    /// Stage the removal of a target.
    Remove(RemoveArgs),
    /// List the targets of a repository, verified.
    List(ListArgs),
    /// Publish the staged changes.
    Publish(PublishArgs),
    /// Manage delegations.
    #[command(subcommand)]
    Delegation(DelegationCommand),
    /// Delete a repository's trust data.
    Delete(DeleteArgs),
    /// The agent's keys, with the role and repository each signs for.
    #[command(subcommand)]
    Key(NotaryKeyCommand),
    /// Each role's version, expiry, keys and who holds them; which are due for re-signing.
    Status(StatusArgs),
    /// Re-sign the roles close to expiry (root within 6 months, others within --within days).
    Resign(ResignArgs),
    /// A compromised delegation key: remove it everywhere; re-sign or drop what it signed.
    Incident(IncidentArgs),
}

impl NotaryCommand {
    /// Runs the verb.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        match self {
            Self::Init(a) => a.run(ctx).await,
            Self::Add(a) => a.run(ctx).await,
            Self::Addhash(a) => a.run(ctx).await,
            Self::Remove(a) => a.run(ctx).await,
            Self::List(a) => a.run(ctx).await,
            Self::Publish(a) => a.run(ctx).await,
            Self::Delegation(c) => c.run(ctx).await,
            Self::Delete(a) => a.run(ctx).await,
            Self::Key(c) => c.run(ctx).await,
            Self::Status(a) => a.run(ctx).await,
            Self::Resign(a) => a.run(ctx).await,
            Self::Incident(a) => a.run(ctx).await,
        }
    }
}
