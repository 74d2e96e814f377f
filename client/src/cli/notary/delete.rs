//! `delete`: a repository's local trust data (staged changes, cached metadata), and with
//! `--remote` the server's.

use clap::Args;

use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::repo::Changelist;
use crate::tuf::Gun;

/// Arguments of `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The repository.
    pub gun: Gun,
    /// Also delete it on the server.
    #[arg(long)]
    pub remote: bool,
}

impl DeleteArgs {
    /// Deletes the trust data, local first.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let gun = &self.gun;
        Changelist::new(&ctx.trust_dir, gun).clear()?;
        ctx.cache().remove_gun(gun).await?;
        println!("Deleting trust data for repository {gun}");
        if self.remote {
            ctx.notary()?.repo(gun).delete().await?;
            println!("Successfully deleted local and remote trust data for repository {gun}");
        } else {
            println!("Successfully deleted local trust data for repository {gun}");
        }
        Ok(())
    }
}
