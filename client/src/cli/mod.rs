//! The `tufa` command line, shaped as tuftool's: a `Command` enum whose variants own their
//! arguments, and one `run(self, &Ctx)` per verb.
//!
//! Layout:
//! - `context`: [`Ctx`], what every verb runs with (agent, notary server, trust directory,
//!   options), and [`ServerArgs`], the flags that locate the server and the trust data.
//! - `args`: typed arguments (key references, digests, target roles, the protocol's enums) and
//!   `KeyChoice`, the key flags `notary init` and `root rotate` share.
//! - [`error`]: [`CliError`], why a command failed.
//! - `agent`: `tufa agent status/unlock/lock`.
//! - `key`: `tufa key generate/list/load/delete/sign/public/attest`.
//! - `notary`: `tufa notary ...`, one file per concern.
//! - `root`: `tufa root ...`, root ceremonies and rotation.
//! - `trust`: the docker trust verbs (`signer`, `sign`, `inspect`, `revoke`, `verify`).
//! - [`plugin`]: `docker tufa ...` and `install-plugin`.
//! - [`log`]: the `tracing` subscriber (`TUFA_LOG`).
//! - `client_config`, `files`, `table`: the notary CLI's config file, key and PEM files, and
//!   Go's tabwriter layout.

mod agent;
mod args;
mod client_config;
mod context;
pub mod error;
mod files;
mod key;
pub mod log;
mod notary;
pub mod plugin;
mod root;
mod table;
mod trust;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use context::{Ctx, ServerArgs};
pub use error::CliError;

/// Hardware-backed signing for Docker Content Trust.
#[derive(Debug, Parser)]
#[command(name = "tufa", version)]
pub struct Cli {
    /// The agent's socket [default: $TUFA_AGENT_SOCK, else $XDG_RUNTIME_DIR/tufa/agent.sock].
    #[arg(long, global = true, value_name = "SOCKET")]
    pub agent: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Talk to the agent itself: status, unlock, lock.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Manage keys held by the agent.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// The notary CLI's verbs (init, add, publish, list, delegations) with keys in the agent.
    Notary(notary::NotaryArgs),
    /// Root ceremonies with offline root keys, and key rotation.
    Root(root::RootArgs),
    /// Add or remove signers of a repository, as `docker trust signer`.
    #[command(subcommand)]
    Signer(trust::SignerCommand),
    /// Sign IMAGE:TAG (digest and size from the registry), as `docker trust sign`.
    Sign(trust::SignArgs),
    /// Show signatures and keys, as `docker trust inspect`.
    Inspect(trust::InspectArgs),
    /// Remove signatures, as `docker trust revoke`.
    Revoke(trust::RevokeArgs),
    /// Check IMAGE:TAG as `DOCKER_CONTENT_TRUST=1 docker pull` would; print NAME@sha256:...
    Verify(trust::VerifyArgs),
    /// Install tufa as the docker CLI plugin `docker tufa` (a link in docker's plugin directory).
    InstallPlugin(plugin::InstallPluginArgs),
}

impl Cli {
    /// Runs the command.
    pub async fn run(self) -> Result<(), CliError> {
        let socket = self.agent.or_else(crate::agent::default_socket);
        let ctx = Ctx::new(socket, self.command.server())?;
        self.command.run(&ctx).await
    }
}

impl Command {
    /// The flags that name a notary server and trust directory (the docker verbs have none).
    pub fn server(&self) -> Option<&ServerArgs> {
        match self {
            Self::Notary(a) => Some(&a.server),
            Self::Root(a) => Some(&a.server),
            _ => None,
        }
    }

    /// Runs the command.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        match self {
            Self::Agent(c) => c.run(ctx).await,
            Self::Key(c) => c.run(ctx).await,
            Self::Notary(a) => a.command.run(ctx).await,
            Self::Root(a) => a.command.run(ctx).await,
            Self::Signer(c) => c.run(ctx).await,
            Self::Sign(a) => a.run(ctx).await,
            Self::Inspect(a) => a.run(ctx).await,
            Self::Revoke(a) => a.run(ctx).await,
            Self::Verify(a) => a.run(ctx).await,
            Self::InstallPlugin(a) => a.run(ctx).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_values_are_refused_naming_the_value_and_the_rule() {
        let err = |args: &[&str]| {
            let mut full = vec!["tufa"];
            full.extend_from_slice(args);
            let e = Cli::try_parse_from(full).unwrap_err();
            use clap::error::ErrorKind;
            let kind = e.kind();
            assert!(
                matches!(kind, ErrorKind::ValueValidation | ErrorKind::InvalidValue),
                "{args:?}: {kind:?}"
            );
            e.to_string()
        };
        let e = err(&["notary", "list", "bad gun"]);
        assert!(
            e.contains("'bad gun'") && e.contains("not a valid GUN"),
            "{e}"
        );
        let sha = "a".repeat(64);
        let e = err(&[
            "notary",
            "addhash",
            "x",
            "t",
            "1",
            "--sha256",
            &sha,
            "-r",
            "targets/Bad",
        ]);
        assert!(e.contains("targets/Bad") && e.contains("lowercase"), "{e}");
        let e = err(&[
            "notary", "addhash", "x", "t", "1", "--sha256", &sha, "-r", "snapshot",
        ]);
        assert!(e.contains("targets cannot be added to snapshot"), "{e}");
        let e = err(&["notary", "addhash", "x", "t", "1", "--sha256", "abc"]);
        assert!(
            e.contains("'abc' is not a SHA-256 digest: give 64 hex digits"),
            "{e}"
        );
        let e = err(&["notary", "delegation", "remove", "x", "targets/a", "abc"]);
        assert!(e.contains("'abc' is not a key ID"), "{e}");
        let e = err(&["key", "generate", "a", "--backend", "tpm"]);
        assert!(e.contains("'tpm'") && e.contains("pkcs11"), "{e}");
        let e = err(&["key", "public", ""]);
        assert!(e.contains("no key given"), "{e}");
    }
}
