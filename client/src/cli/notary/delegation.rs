//! `delegation add/remove/list`: delegated roles, their keys and paths.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::stage::maybe_publish;
use crate::cli::args::delegation_key_id;
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::cli::files::read_public_keys;
use crate::cli::table;
use crate::repo::{Change, Changelist, RepoState};
use crate::tuf::{Gun, KeyId, RoleName};

/// `delegation ...`.
#[derive(Debug, Subcommand)]
pub enum DelegationCommand {
    /// Add a delegation, or keys and paths to one.
    Add(DelegationAddArgs),
    /// Remove a delegation, or some of its keys.
    Remove(DelegationRemoveArgs),
    /// List the delegations.
    List(DelegationListArgs),
}

impl DelegationCommand {
    /// Runs the verb.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        match self {
            Self::Add(a) => a.run(ctx).await,
            Self::Remove(a) => a.run(ctx).await,
            Self::List(a) => a.run(ctx).await,
        }
    }
}

/// Arguments of `delegation add`.
#[derive(Debug, Args)]
pub struct DelegationAddArgs {
    /// The repository.
    pub gun: Gun,
    /// The role, `targets/<name>`.
    pub role: RoleName,
    /// Public key files (PEM `PUBLIC KEY` or `CERTIFICATE`).
    pub keys: Vec<PathBuf>,
    /// Path prefixes the role may sign.
    #[arg(long)]
    pub paths: Vec<String>,
    /// Any path.
    #[arg(long)]
    pub all_paths: bool,
    /// Publish at once.
    #[arg(long, short = 'p')]
    pub publish: bool,
}

/// Arguments of `delegation remove`.
#[derive(Debug, Args)]
pub struct DelegationRemoveArgs {
    /// The repository.
    pub gun: Gun,
    /// The role.
    pub role: RoleName,
    /// Key IDs to remove [default: the whole role], as `tufa notary delegation list` shows them.
    #[arg(value_parser = delegation_key_id)]
    pub key_ids: Vec<KeyId>,
    /// Publish at once.
    #[arg(long, short = 'p')]
    pub publish: bool,
}

/// Arguments of `delegation list`.
#[derive(Debug, Args)]
pub struct DelegationListArgs {
    /// The repository.
    pub gun: Gun,
}

impl DelegationAddArgs {
    /// Stages the delegation (or its new keys and paths).
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let (gun, role) = (&self.gun, &self.role);
        let keys = read_public_keys(&self.keys)?;
        let paths = if self.all_paths {
            vec![String::new()]
        } else {
            self.paths.clone()
        };
        if keys.is_empty() && paths.is_empty() {
            return Err(CliError::Usage(
                "give at least one public key file or --paths/--all-paths".into(),
            ));
        }
        Changelist::new(&ctx.trust_dir, gun).add(Change::AddDelegation {
            role: role.clone(),
            keys: keys.clone(),
            paths: paths.clone(),
            threshold: 0,
        })?;
        let ids: Vec<String> = keys
            .iter()
            .map(|k| k.canonical_id().map(|i| i.to_string()).unwrap_or_default())
            .collect();
        let shown: Vec<String> = paths
            .iter()
            .map(|p| {
                if p.is_empty() {
                    "\"\" <all paths>".to_owned()
                } else {
                    format!("{p:?}")
                }
            })
            .collect();
        println!(
            "\nAddition of delegation role {role} with keys [{}], with paths [{}], to repository \"{gun}\" staged for next publish.\n",
            ids.join(" "),
            shown.join(", ")
        );
        maybe_publish(ctx, gun, self.publish).await
    }
}

impl DelegationRemoveArgs {
    /// Stages the removal of the role, or of some of its keys.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let (gun, role) = (&self.gun, &self.role);
        let list = Changelist::new(&ctx.trust_dir, gun);
        if self.key_ids.is_empty() {
            list.add(Change::RemoveDelegation { role: role.clone() })?;
            println!("\nRemoval of delegation role {role} to repository \"{gun}\" staged for next publish.\n");
        } else {
            let ids: Vec<String> = self.key_ids.iter().map(KeyId::to_string).collect();
            list.add(Change::RemoveDelegationKeys {
                role: role.clone(),
                key_ids: self.key_ids.clone(),
            })?;
            println!(
                "\nRemoval of delegation role {role} with keys [{}], to repository \"{gun}\" staged for next publish.\n",
                ids.join(" ")
            );
        }
        maybe_publish(ctx, gun, self.publish).await
    }
}

impl DelegationListArgs {
    /// Prints each delegation's paths, key IDs and threshold, one per line, as notary does.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let state = RepoState::from(ctx.verified(&self.gun).await?);
        let mut delegations: Vec<_> = state
            .targets
            .values()
            .flat_map(|t| t.signed.delegations.roles.clone())
            .collect();
        if delegations.is_empty() {
            println!("\nNo delegations present in this repository.\n");
            return Ok(());
        }
        delegations.sort_by(|a, b| a.name.cmp(&b.name));
        let mut rows = table::header(&["ROLE", "PATHS", "KEY IDS", "THRESHOLD"]);
        for d in delegations {
            let paths: Vec<String> = d
                .paths
                .iter()
                .map(|p| {
                    if p.is_empty() {
                        "\"\" <all paths>".to_owned()
                    } else {
                        p.clone()
                    }
                })
                .collect();
            let ids: Vec<String> = d.keyids.iter().map(|k| k.to_string()).collect();
            let lines = ids.len().max(paths.len()).max(1);
            for i in 0..lines {
                let first = |text: String| if i == 0 { text } else { String::new() };
                rows.push(vec![
                    first(d.name.to_string()),
                    paths.get(i).cloned().unwrap_or_default(),
                    ids.get(i).cloned().unwrap_or_default(),
                    first(d.threshold.to_string()),
                ]);
            }
        }
        println!();
        print!("{}", table::render(&rows));
        println!();
        Ok(())
    }
}
