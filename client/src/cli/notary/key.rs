//! `key list` and `key rotate`: the agent's keys as notary lists them, and a role's key
//! replaced in a new root signed and published at once.

use std::path::Path;

use clap::{Args, Subcommand};
use time::OffsetDateTime;
use tufa_proto::v1::key_location::Location;

use crate::ceremony::Rotation;
use crate::cli::args::KeyRef;
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::cli::root::rotate_now;
use crate::cli::table;
use crate::repo;
use crate::tuf::{Gun, KeyId, RoleName, Root, Signed};

/// `key ...`.
#[derive(Debug, Subcommand)]
pub enum NotaryKeyCommand {
    /// List keys as `notary key list` does: role, GUN, key ID, location.
    List(KeyListArgs),
    /// Rotate a role's key as `notary key rotate` does, and publish (root keys must be in
    /// this agent; for offline root keys use `tufa root rotate --out`).
    Rotate(KeyRotateArgs),
}

impl NotaryKeyCommand {
    /// Runs the verb.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        match self {
            Self::List(a) => a.run(ctx).await,
            Self::Rotate(a) => a.run(ctx).await,
        }
    }
}

/// Arguments of `key list` (none).
#[derive(Debug, Args)]
pub struct KeyListArgs {}

/// Arguments of `key rotate`.
#[derive(Debug, Args)]
pub struct KeyRotateArgs {
    /// The repository.
    pub gun: Gun,
    /// root, targets, snapshot or timestamp.
    pub role: RoleName,
    /// Let the server hold the new key (snapshot, timestamp).
    #[arg(long = "server-managed", short = 'r')]
    pub server_managed: bool,
    /// The new key: an agent key [default: a new agent key named after the repository and role].
    #[arg(long)]
    pub key: Option<KeyRef>,
}

/// Roles the cached roots give the agent's keys: `(canonical key ID, role, GUN)`.
fn cached_roles(trust_dir: &Path) -> Vec<(KeyId, String, String)> {
    let mut out = Vec::new();
    let tuf_dir = trust_dir.join("tuf");
    let mut stack = vec![tuf_dir.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let root_file = path.join("root.json");
            if path.file_name().is_some_and(|n| n == "metadata") && root_file.is_file() {
                let gun = dir
                    .strip_prefix(&tuf_dir)
                    .map(|g| g.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let Ok(bytes) = std::fs::read(&root_file) else {
                    continue;
                };
                let Ok(root) = Signed::<Root>::from_slice(&RoleName::ROOT, &bytes) else {
                    continue;
                };
                let r = &root.signed;
                for (role, entry, with_gun) in [
                    ("root", &r.roles.root, false),
                    ("targets", &r.roles.targets, true),
                    ("snapshot", &r.roles.snapshot, true),
                ] {
                    for id in &entry.keyids {
                        if let Some(canonical) = r.keys.get(id).and_then(|k| k.canonical_id().ok())
                        {
                            let g = if with_gun { gun.clone() } else { String::new() };
                            out.push((canonical, role.to_owned(), g));
                        }
                    }
                }
            } else {
                stack.push(path);
            }
        }
    }
    out
}

impl KeyListArgs {
    /// Prints each agent key with the roles and repositories the cached roots give it.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let keys = ctx.agent().await?.list_keys().await?;
        let roles = cached_roles(&ctx.trust_dir);
        let mut rows: Vec<(String, String, String, String)> = Vec::new();
        for k in &keys {
            let location = k
                .location
                .as_ref()
                .map(|l| match l {
                    Location::Pkcs11(p) => {
                        format!("pkcs11:token={}", p.token_label)
                    }
                    Location::Yubikey(y) => {
                        format!("yubikey:{}/{}", y.serial, y.slot)
                    }
                })
                .unwrap_or_default();
            let uses: Vec<_> = roles.iter().filter(|(id, _, _)| *id == k.id).collect();
            if uses.is_empty() {
                rows.push((
                    k.name.clone(),
                    String::new(),
                    k.id.to_string(),
                    location.clone(),
                ));
            }
            for (_, role, gun) in uses {
                let row = (
                    role.clone(),
                    gun.clone(),
                    k.id.to_string(),
                    location.clone(),
                );
                if !rows.contains(&row) {
                    rows.push(row);
                }
            }
        }
        if rows.is_empty() {
            println!("\nNo signing keys found.\n");
            return Ok(());
        }
        // As notary: keys of no repository first (root first), then by repository.
        rows.sort_by(|a, b| {
            (!a.1.is_empty(), a.0 != "root", &a.1, &a.0, &a.2).cmp(&(
                !b.1.is_empty(),
                b.0 != "root",
                &b.1,
                &b.0,
                &b.2,
            ))
        });
        let mut table_rows = table::header(&["ROLE", "GUN", "KEY ID", "LOCATION"]);
        table_rows.extend(rows.into_iter().map(|(r, g, i, l)| vec![r, g, i, l]));
        println!();
        print!("{}", table::render(&table_rows));
        println!();
        Ok(())
    }
}

impl KeyRotateArgs {
    /// Maps notary's verb onto a root rotation signed by this agent and published at once.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let (gun, role) = (&self.gun, &self.role);
        let base = [
            RoleName::ROOT,
            RoleName::TARGETS,
            RoleName::SNAPSHOT,
            RoleName::TIMESTAMP,
        ];
        if !base.contains(role) {
            return Err(CliError::Usage(format!(
                "cannot rotate the key of {role}: give root, targets, snapshot or timestamp (a delegation's keys change with `tufa notary delegation add/remove`)"
            )));
        }
        if self.server_managed && self.key.is_some() {
            return Err(CliError::Usage(
                "give either --key or -r (--server-managed), not both".into(),
            ));
        }
        let server_ok = *role == RoleName::SNAPSHOT || *role == RoleName::TIMESTAMP;
        if self.server_managed && !server_ok {
            return Err(CliError::Usage(format!(
                "the server may hold only the snapshot and timestamp keys, not the {role} key: drop -r"
            )));
        }
        if *role == RoleName::TIMESTAMP && !self.server_managed {
            return Err(CliError::Usage(
                "the timestamp key is always the server's: rotate it with -r".into(),
            ));
        }
        let mut rotation = Rotation {
            server_snapshot: self.server_managed && *role == RoleName::SNAPSHOT,
            server_timestamp: *role == RoleName::TIMESTAMP,
            ..Rotation::default()
        };
        // A key made here is removed again if the rotation fails: nothing is left behind.
        let mut made = None;
        if !self.server_managed {
            let name = match &self.key {
                Some(k) => k.to_string(),
                None => {
                    let agent = ctx.agent().await?;
                    let name = repo::next_key_name(agent, gun, role).await?;
                    agent.generate_named(&name).await?;
                    made = Some(name.clone());
                    name
                }
            };
            match role.as_str() {
                "root" => {
                    rotation.root_keys = vec![name];
                    rotation.threshold = Some(1);
                }
                "targets" => rotation.targets_key = Some(name),
                _ => rotation.snapshot_key = Some(name),
            }
        }
        let result = rotate_now(ctx, gun, &rotation, OffsetDateTime::now_utc()).await;
        if let (Err(_), Some(name)) = (&result, &made) {
            if let Ok(agent) = ctx.agent.get().await {
                let _ = agent.delete(name).await;
            }
        }
        result?;
        if let Some(name) = made {
            println!("The new {role} key of {gun} is the agent key {name}");
        }
        Ok(())
    }
}
