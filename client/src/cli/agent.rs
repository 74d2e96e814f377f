//! `tufa agent ...`: the agent itself: its devices, and their PINs.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use secrecy::SecretString;

use super::args::Choice;
use super::context::Ctx;
use super::error::CliError;
use super::files::read_secret_line;
use super::key::location_text;

/// `tufa agent ...`.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Show the agent's devices, whether they are locked, and its version.
    Status(StatusArgs),
    /// Give the agent a device PIN, kept for the agent's PIN cache TTL.
    Unlock(UnlockArgs),
    /// Make the agent forget every PIN at once.
    Lock(LockArgs),
}

impl AgentCommand {
    /// Runs the verb.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        match self {
            Self::Status(a) => a.run(ctx).await,
            Self::Unlock(a) => a.run(ctx).await,
            Self::Lock(a) => a.run(ctx).await,
        }
    }
}

/// Arguments of `agent status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `agent unlock`.
#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Token label or YubiKey serial [default: the only device that needs a PIN].
    #[arg(long)]
    pub device: Option<String>,
    /// Read the PIN from the first line of this file instead of prompting.
    #[arg(long)]
    pub pin_file: Option<PathBuf>,
}

/// Arguments of `agent lock` (none).
#[derive(Debug, Args)]
pub struct LockArgs {}

impl StatusArgs {
    /// Prints the agent's version, PIN cache TTL and one line per device.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let agent = ctx.agent().await?;
        let s = agent.status().await?;
        let location = |d: &tufa_proto::v1::Device| {
            d.location
                .as_ref()
                .and_then(|l| l.location.as_ref())
                .map(location_text)
                .unwrap_or_default()
        };
        if self.json {
            let devices: Vec<_> = s
                .devices
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "backend": Choice::word(d.backend()),
                        "name": d.name,
                        "location": d.location.as_ref().map(|_| location(d)),
                        "present": d.present,
                        "locked": d.locked,
                        "keys": d.key_count,
                        "detail": d.detail,
                    })
                })
                .collect();
            let out = serde_json::json!({
                "version": s.version,
                "socket": agent.socket(),
                "pin_cache_ttl_seconds": s.pin_cache_ttl_seconds,
                "devices": devices,
            });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            return Ok(());
        }
        println!("tufad {} on {}", s.version, agent.socket().display());
        println!("PIN cache TTL: {}s", s.pin_cache_ttl_seconds);
        for d in &s.devices {
            let state = match (d.present, d.locked) {
                (false, _) => format!("absent: {}", d.detail),
                (true, true) => format!("present, locked, {}", keys_text(d.key_count)),
                (true, false) => format!("present, unlocked, {}", keys_text(d.key_count)),
            };
            println!(
                "{} {} ({}): {state}",
                Choice::word(d.backend()),
                d.name,
                location(d)
            );
        }
        Ok(())
    }
}

impl UnlockArgs {
    /// Reads the PIN (file, else the terminal) and hands it to the agent.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let agent = ctx.agent().await?;
        let pin = match &self.pin_file {
            Some(path) => read_secret_line(path)?,
            None => {
                if !std::io::stdin().is_terminal() {
                    return Err(CliError::Usage(
                        "no terminal to ask for the PIN: pass --pin-file FILE".into(),
                    ));
                }
                let prompt = match &self.device {
                    Some(d) => format!("PIN for {d}: "),
                    None => "PIN: ".to_owned(),
                };
                SecretString::from(rpassword::prompt_password(prompt).map_err(|source| {
                    CliError::Io {
                        doing: "cannot read the PIN from the terminal",
                        source,
                    }
                })?)
            }
        };
        let reply = agent
            .unlock(self.device.as_deref().unwrap_or_default(), &pin)
            .await?;
        println!(
            "Unlocked {} for {} seconds",
            reply.device, reply.ttl_seconds
        );
        Ok(())
    }
}

impl LockArgs {
    /// Makes the agent forget every PIN.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let devices = ctx.agent().await?.lock().await?;
        println!(
            "Locked: the agent forgot the PINs of {}",
            devices.join(", ")
        );
        Ok(())
    }
}

fn keys_text(n: u32) -> String {
    if n == 1 {
        "1 key".into()
    } else {
        format!("{n} keys")
    }
}
