//! `list`: a repository's targets, verified, as `notary list` prints them.

use clap::Args;

use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::cli::table;
use crate::tuf::{Gun, RoleName};

/// Arguments of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The repository.
    pub gun: Gun,
    /// Only these roles.
    #[arg(long = "roles", short = 'r')]
    pub roles: Vec<RoleName>,
}

impl ListArgs {
    /// Prints the targets table (or notary's words for none).
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let verified = ctx.verified(&self.gun).await?;
        let entries = verified.targets((!self.roles.is_empty()).then_some(&self.roles[..]));
        if entries.is_empty() {
            println!("\nNo targets present in this repository.\n");
            return Ok(());
        }
        let mut rows = table::header(&["NAME", "DIGEST", "SIZE (BYTES)", "ROLE"]);
        for e in entries {
            rows.push(vec![
                e.name.clone(),
                e.sha256
                    .map(|d| hex::encode(d.as_bytes()))
                    .unwrap_or_default(),
                e.length.to_string(),
                e.role.to_string(),
            ]);
        }
        print!("{}", table::render(&rows));
        Ok(())
    }
}
