//! `tufa root ...`: the root ceremony (request files between online and offline machines) and
//! key rotation.
//!
//! Root keys are named by `--key REF`: a certificate file made on the machine whose agent holds
//! the key (`tufa root cert`), or a key of this machine's agent, which then makes the
//! certificate itself (CN = GUN, 10 years).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use time::OffsetDateTime;

use super::args::{KeyChoice, KeyRef};
use super::context::{Ctx, ServerArgs};
use super::error::CliError;
use super::files::write_file;
use crate::agent::{AgentClient, SignContext};
use crate::ceremony::{self, RootRequest, Rotation};
use crate::repo::{self, FromServer, RepoState, SnapshotKey};
use crate::tuf::{self, Gun, RoleName, Root};

/// `tufa root`: where the server and trust data are, and what to do.
#[derive(Debug, Args)]
pub struct RootArgs {
    /// Server, trust directory and client config, as for `tufa notary`.
    #[command(flatten)]
    pub server: ServerArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: RootCommand,
}

/// The ceremony's steps.
#[derive(Debug, Subcommand)]
pub enum RootCommand {
    /// Make a root certificate (CN = GUN) for an agent key, to hand to the online machine.
    Cert(CertArgs),
    /// Prepare the version 1 root of a new repository whose root keys are offline.
    Init(InitArgs),
    /// Prepare a new root: new root keys and threshold, or a new targets, snapshot or
    /// timestamp key. Without --out, sign with this agent and publish at once.
    Rotate(RotateArgs),
    /// Show what a request changes and which signatures it has and lacks.
    Show(ShowArgs),
    /// Add signatures with this agent's keys.
    Sign(SignArgs),
    /// Publish a request once every threshold is met.
    Publish(PublishArgs),
}

impl RootCommand {
    /// Runs the step.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        match self {
            Self::Cert(a) => a.run(ctx).await,
            Self::Init(a) => a.run(ctx).await,
            Self::Rotate(a) => a.run(ctx).await,
            Self::Show(a) => a.run(ctx).await,
            Self::Sign(a) => a.run(ctx).await,
            Self::Publish(a) => a.run(ctx).await,
        }
    }
}

/// Arguments of `root cert`.
#[derive(Debug, Args)]
pub struct CertArgs {
    /// The repository (the certificate's CN).
    pub gun: Gun,
    /// The agent key.
    #[arg(long)]
    pub key: KeyRef,
    /// Where to write the PEM certificate.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `root init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The repository.
    pub gun: Gun,
    /// A root key: a certificate file from `tufa root cert`, or a key of this agent.
    #[arg(long = "key", required = true)]
    pub keys: Vec<String>,
    /// Root signatures needed [default: 1].
    #[arg(long)]
    pub threshold: Option<u32>,
    /// This agent's key for `targets`.
    #[arg(long)]
    pub targets_key: KeyRef,
    /// This agent's key for `snapshot` [default: the server makes snapshots, as docker].
    #[arg(long)]
    pub snapshot_key: Option<KeyRef>,
    /// Where to write the request.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `root rotate`.
#[derive(Debug, Args)]
#[command(
    mut_arg("targets_key", |a| {
        a.help("A new targets key in this agent (targets is re-signed with it at publish)")
    }),
    mut_arg("snapshot_key", |a| a.help("Move the snapshot key to this agent key")),
    mut_arg("server_managed_snapshot", |a| {
        a.help("Have the server make a new snapshot key and sign every snapshot")
    })
)]
pub struct RotateArgs {
    /// The repository.
    pub gun: Gun,
    /// New root keys: certificate files from `tufa root cert`, or keys of this agent.
    #[arg(long = "key")]
    pub keys: Vec<String>,
    /// Root signatures needed by the new root keys [default: 1].
    #[arg(long, requires = "keys")]
    pub threshold: Option<u32>,
    /// New targets and snapshot keys.
    #[command(flatten)]
    pub new_keys: KeyChoice,
    /// Have the server make a new timestamp key.
    #[arg(long)]
    pub new_timestamp_key: bool,
    /// Only renew the root: version + 1 and 10 more years, keys unchanged.
    #[arg(long)]
    pub renew: bool,
    /// Write a request to sign offline instead of signing and publishing now.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Arguments of `root show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The request file.
    pub request: PathBuf,
}

/// Arguments of `root sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The request file (signatures are added to it in place).
    pub request: PathBuf,
    /// Sign with this agent key only [default: every agent key the request still needs].
    #[arg(long)]
    pub key: Option<KeyRef>,
}

/// Arguments of `root publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The request file.
    pub request: PathBuf,
}

impl CertArgs {
    /// Writes the agent key's root certificate for the repository.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let gun = &self.gun;
        let agent = ctx.agent().await?;
        let key = agent.key(self.key.as_str()).await?;
        let signer = agent.signer(&key, SignContext::new(gun, &RoleName::ROOT));
        let der = tuf::root_certificate(&signer, gun, OffsetDateTime::now_utc())
            .await
            .map_err(ceremony::CeremonyError::from)?;
        write_file(&self.out, tuf::certificate_pem(&der).as_bytes())?;
        println!(
            "Wrote the root certificate of key {} for {gun} to {}",
            key.id,
            self.out.display()
        );
        Ok(())
    }
}

impl InitArgs {
    /// Writes the request for a new repository's version 1 root.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let (gun, now) = (&self.gun, OffsetDateTime::now_utc());
        let agent = ctx.agent().await?;
        let keys = ceremony::root_keys(agent, gun, &self.keys, now).await?;
        let threshold = ceremony::root_threshold(self.threshold, keys.len())?;
        let targets = agent.key(self.targets_key.as_str()).await?;
        let remote = ctx.notary()?.repo(gun);
        let snapshot = match &self.snapshot_key {
            Some(r) => {
                let k = agent.key(r.as_str()).await?;
                (k.public, SnapshotKey::Agent(k.id))
            }
            None => (
                ceremony::server_key(&remote, &RoleName::SNAPSHOT, false).await?,
                SnapshotKey::Server,
            ),
        };
        let timestamp = ceremony::server_key(&remote, &RoleName::TIMESTAMP, false).await?;
        let request = RootRequest::init(
            gun,
            &keys,
            threshold,
            (&targets.public, targets.id),
            snapshot,
            &timestamp,
            now,
        )?;
        request.save(&self.out)?;
        println!(
            "Wrote the root request for new repository {gun} to {}: {threshold} of {} root key(s) must sign it (`tufa root sign`), then `tufa root publish`",
            self.out.display(),
            keys.len()
        );
        Ok(())
    }
}

impl RotateArgs {
    /// A request to sign offline (`--out`), or signed here and published.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let (gun, now) = (&self.gun, OffsetDateTime::now_utc());
        let rotation = self.rotation();
        let Some(out) = &self.out else {
            return rotate_now(ctx, gun, &rotation, now).await;
        };
        let remote = ctx.notary()?.repo(gun);
        let request = rotation
            .request(&ctx.agent, &remote, &ctx.cache(), gun, &ctx.options, now)
            .await?;
        request.save(out)?;
        println!(
            "Wrote the request for root version {} of {gun} to {}: sign it with the previous and the new root keys (`tufa root sign`), then `tufa root publish`",
            request.root.signed.version,
            out.display()
        );
        Ok(())
    }

    /// The rotation these flags ask for.
    fn rotation(&self) -> Rotation {
        let key = |k: &Option<KeyRef>| k.as_ref().map(KeyRef::to_string);
        Rotation {
            root_keys: self.keys.clone(),
            threshold: self.threshold,
            targets_key: key(&self.new_keys.targets_key),
            snapshot_key: key(&self.new_keys.snapshot_key),
            server_snapshot: self.new_keys.server_managed_snapshot,
            server_timestamp: self.new_timestamp_key,
            renew: self.renew,
        }
    }
}

impl ShowArgs {
    /// Prints the request for the person about to sign it.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let request = RootRequest::load(&self.request)?;
        let current = match ctx.notary().ok() {
            Some(client) if request.previous.is_some() => {
                // The server's current root, verified, for the diff; none when it cannot be read.
                repo::load_state(
                    &client.repo(&request.gun),
                    &ctx.cache(),
                    &request.gun,
                    &ctx.options,
                )
                .await
                .ok()
                .flatten()
                .map(|s: RepoState| s.root.signed)
            }
            _ => None,
        };
        print!("{}", show(&request, current.as_ref()));
        Ok(())
    }
}

impl SignArgs {
    /// Adds this agent's signatures to the request file.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let mut request = RootRequest::load(&self.request)?;
        let only = self.key.as_ref().map(KeyRef::as_str);
        let report = request.sign(ctx.agent().await?, only).await?;
        request.save(&self.request)?;
        for id in &report.added {
            println!("Signed with root key {id}");
        }
        for absent in &report.absent {
            println!(
                "Not signed with root key {} (its device is not here: {})",
                absent.key, absent.detail
            );
        }
        println!("{}", request.summary());
        Ok(())
    }
}

impl PublishArgs {
    /// Publishes a request whose thresholds are all met.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let request = RootRequest::load(&self.request)?;
        request.check_complete()?;
        let agent = ctx.agent().await?;
        publish_request(ctx, agent, &request, OffsetDateTime::now_utc()).await
    }
}

/// A rotation of `gun`'s root signed by this agent and published at once (`tufa root rotate`
/// without `--out`, `tufa notary key rotate`).
pub(crate) async fn rotate_now(
    ctx: &Ctx,
    gun: &Gun,
    rotation: &Rotation,
    now: OffsetDateTime,
) -> Result<(), CliError> {
    let remote = ctx.notary()?.repo(gun);
    let mut request = rotation
        .request(&ctx.agent, &remote, &ctx.cache(), gun, &ctx.options, now)
        .await?;
    let agent = ctx.agent().await?;
    request.sign_here(agent).await?;
    publish_request(ctx, agent, &request, now).await
}

/// Publishes a complete request, refreshes the cache, and says what was published.
async fn publish_request(
    ctx: &Ctx,
    agent: &AgentClient,
    request: &RootRequest,
    now: OffsetDateTime,
) -> Result<(), CliError> {
    let gun = &request.gun;
    let remote = ctx.notary()?.repo(gun);
    let cache = ctx.cache();
    let source = FromServer::new(&remote, &cache, gun, &ctx.options);
    let roles = ceremony::publish(agent, &remote, request, source, now).await?;
    ctx.refresh(&remote, gun).await;
    println!(
        "Published root version {} of {gun} ({})",
        request.root.signed.version,
        names(&roles)
    );
    Ok(())
}

fn names(roles: &[RoleName]) -> String {
    roles
        .iter()
        .map(RoleName::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a person checks before signing.
fn show(request: &RootRequest, current: Option<&Root>) -> String {
    use std::fmt::Write as _;
    let root = &request.root.signed;
    let mut out = String::new();
    let _ = writeln!(out, "Repository: {}", request.gun);
    match &request.previous {
        Some((bytes, prev)) => {
            use sha2::Digest as _;
            let _ = writeln!(
                out,
                "Change: root version {} -> {} (replaces the root with SHA-256 {})",
                prev.signed.version,
                root.version,
                hex::encode(sha2::Sha256::digest(bytes))
            );
        }
        None => {
            let _ = writeln!(out, "Change: version 1 root of a new repository");
        }
    }
    let _ = writeln!(out, "Expires: {}", root.expires);
    let _ = writeln!(out, "Roles:");
    for (name, role) in [
        ("root", &root.roles.root),
        ("targets", &root.roles.targets),
        ("snapshot", &root.roles.snapshot),
        ("timestamp", &root.roles.timestamp),
    ] {
        let _ = writeln!(
            out,
            "  {name}: threshold {} of {}",
            role.threshold,
            role.keyids.len()
        );
        for id in &role.keyids {
            let _ = writeln!(out, "    {}", key_text(root, id));
        }
    }
    if let Some((_, prev)) = &request.previous {
        let _ = writeln!(out, "Against the root it replaces:");
        let diff = diff(&prev.signed, root);
        if diff.is_empty() {
            let _ = writeln!(out, "  no key or threshold changes (renewal)");
        }
        for line in diff {
            let _ = writeln!(out, "  {line}");
        }
        if let Some(cur) = current {
            if cur != &prev.signed {
                let _ = writeln!(
                    out,
                    "WARNING: the server's root is now version {}, not the one this request replaces: publishing will be refused; make a new request",
                    cur.version
                );
            }
        }
    }
    let _ = writeln!(out, "Signatures:");
    for n in request.status() {
        let _ = writeln!(
            out,
            "  {} ({} of {} needed, {} present):",
            n.label,
            n.threshold,
            n.keys.len(),
            n.have()
        );
        for (id, canonical, signed) in &n.keys {
            let _ = writeln!(
                out,
                "    {canonical} (certificate {}) {}",
                id.short(),
                if *signed { "signed" } else { "missing" }
            );
        }
    }
    let _ = writeln!(
        out,
        "{}",
        if request.complete() {
            "Ready to publish"
        } else {
            "Not ready to publish: signatures missing"
        }
    );
    out
}

fn key_text(root: &Root, id: &tuf::KeyId) -> String {
    match root.keys.get(id) {
        Some(k) if k.key_type().is_x509() => format!(
            "{} (certificate {}, {})",
            k.canonical_id().map(|c| c.to_string()).unwrap_or_default(),
            id.short(),
            k.key_type()
        ),
        Some(k) => format!("{id} ({})", k.key_type()),
        None => format!("{id} (not in keys)"),
    }
}

fn diff(old: &Root, new: &Root) -> Vec<String> {
    let mut out = Vec::new();
    for (name, a, b) in [
        ("root", &old.roles.root, &new.roles.root),
        ("targets", &old.roles.targets, &new.roles.targets),
        ("snapshot", &old.roles.snapshot, &new.roles.snapshot),
        ("timestamp", &old.roles.timestamp, &new.roles.timestamp),
    ] {
        for id in &a.keyids {
            if !b.keyids.contains(id) {
                out.push(format!("{name}: - {}", key_text(old, id)));
            }
        }
        for id in &b.keyids {
            if !a.keyids.contains(id) {
                out.push(format!("{name}: + {}", key_text(new, id)));
            }
        }
        if a.threshold != b.threshold {
            out.push(format!(
                "{name}: threshold {} -> {}",
                a.threshold, b.threshold
            ));
        }
    }
    out
}
