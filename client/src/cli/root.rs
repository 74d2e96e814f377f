//! `tufa root ...`: the root ceremony (request files between online and offline machines) and
//! key rotation.
//!
//! Root keys are named by `--key REF`: a certificate file made on the machine whose agent holds
//! the key (`tufa root cert`), or a key of this machine's agent, which then makes the
//! certificate itself (CN = GUN, 10 years).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use time::OffsetDateTime;

use super::notary::{server_of, Context, ServerArgs};
use super::CliError;
use crate::agent::{AgentClient, LazyAgent, SignContext};
use crate::ceremony::{self, RootRequest, Rotation};
use crate::notary::NotaryRepo;
use crate::repo::{self, FromServer, RepoState, SnapshotKey};
use crate::tuf::{self, Gun, RoleName, Root, TrustCache, UpdateOptions};

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
    Show(FileArgs),
    /// Add signatures with this agent's keys.
    Sign(SignArgs),
    /// Publish a request once every threshold is met.
    Publish(FileArgs),
}

/// Arguments of `root cert`.
#[derive(Debug, Args)]
pub struct CertArgs {
    /// The repository (the certificate's CN).
    pub gun: String,
    /// The agent key.
    #[arg(long)]
    pub key: String,
    /// Where to write the PEM certificate.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `root init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The repository.
    pub gun: String,
    /// A root key: a certificate file from `tufa root cert`, or a key of this agent.
    #[arg(long = "key", required = true)]
    pub keys: Vec<String>,
    /// Root signatures needed [default: 1].
    #[arg(long)]
    pub threshold: Option<u32>,
    /// This agent's key for `targets`.
    #[arg(long)]
    pub targets_key: String,
    /// This agent's key for `snapshot` [default: the server makes snapshots, as docker].
    #[arg(long)]
    pub snapshot_key: Option<String>,
    /// Where to write the request.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `root rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The repository.
    pub gun: String,
    /// New root keys: certificate files from `tufa root cert`, or keys of this agent.
    #[arg(long = "key")]
    pub keys: Vec<String>,
    /// Root signatures needed by the new root keys [default: 1].
    #[arg(long, requires = "keys")]
    pub threshold: Option<u32>,
    /// A new targets key in this agent (targets is re-signed with it at publish).
    #[arg(long)]
    pub targets_key: Option<String>,
    /// Move the snapshot key to this agent key.
    #[arg(long, conflicts_with = "server_managed_snapshot")]
    pub snapshot_key: Option<String>,
    /// Have the server make a new snapshot key and sign every snapshot.
    #[arg(long)]
    pub server_managed_snapshot: bool,
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

/// A request file alone.
#[derive(Debug, Args)]
pub struct FileArgs {
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
    pub key: Option<String>,
}

impl RootArgs {
    /// Runs the step.
    pub async fn run(self, agent: LazyAgent) -> Result<(), CliError> {
        let ctx = self.server.context(agent)?;
        let agent = &ctx.agent;
        let trust_dir = ctx.trust_dir.clone();
        let server = || server_of(&ctx);
        let now = OffsetDateTime::now_utc();
        match self.command {
            RootCommand::Cert(a) => {
                let gun = parse_gun(&a.gun)?;
                let agent = agent.get().await?;
                let key = agent.key(&a.key).await?;
                let signer = agent.signer(&key, SignContext::new(&gun, &RoleName::ROOT));
                let der = tuf::root_certificate(&signer, &gun, now)
                    .await
                    .map_err(crate::ceremony::CeremonyError::from)?;
                write_file(&a.out, tuf::certificate_pem(&der).as_bytes())?;
                println!(
                    "Wrote the root certificate of key {} for {gun} to {}",
                    key.id,
                    a.out.display()
                );
                Ok(())
            }
            RootCommand::Init(a) => {
                let gun = parse_gun(&a.gun)?;
                let agent = agent.get().await?;
                let keys = ceremony::root_keys(agent, &gun, &a.keys, now).await?;
                let threshold = ceremony::root_threshold(a.threshold, keys.len())?;
                let targets = agent.key(&a.targets_key).await?;
                let targets_key = targets.public.clone();
                let client = server()?;
                let remote = client.repo(&gun);
                let snapshot = match &a.snapshot_key {
                    Some(r) => {
                        let k = agent.key(r).await?;
                        (k.public, SnapshotKey::Agent(k.id))
                    }
                    None => (
                        ceremony::server_key(&remote, &RoleName::SNAPSHOT, false).await?,
                        SnapshotKey::Server,
                    ),
                };
                let timestamp = ceremony::server_key(&remote, &RoleName::TIMESTAMP, false).await?;
                let request = RootRequest::init(
                    &gun,
                    &keys,
                    threshold,
                    (&targets_key, targets.id),
                    snapshot,
                    &timestamp,
                    now,
                )?;
                request.save(&a.out).map_err(ceremony_err)?;
                println!(
                    "Wrote the root request for new repository {gun} to {}: {threshold} of {} root key(s) must sign it (`tufa root sign`), then `tufa root publish`",
                    a.out.display(),
                    keys.len()
                );
                Ok(())
            }
            RootCommand::Rotate(a) => rotate(&ctx, a, now).await,
            RootCommand::Show(a) => {
                let request = RootRequest::load(&a.request).map_err(ceremony_err)?;
                let current = match server().ok() {
                    Some(client) if request.previous.is_some() => {
                        current_root(
                            &client.repo(&request.gun),
                            &trust_dir,
                            &request.gun,
                            &ctx.options,
                        )
                        .await
                    }
                    _ => None,
                };
                print!("{}", show(&request, current.as_ref()));
                Ok(())
            }
            RootCommand::Sign(a) => {
                let mut request = RootRequest::load(&a.request).map_err(ceremony_err)?;
                let report = request
                    .sign(agent.get().await?, a.key.as_deref())
                    .await
                    .map_err(ceremony_err)?;
                request.save(&a.request).map_err(ceremony_err)?;
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
            RootCommand::Publish(a) => {
                let request = RootRequest::load(&a.request).map_err(ceremony_err)?;
                request.check_complete().map_err(ceremony_err)?;
                publish_request(&ctx, agent.get().await?, &request, now).await
            }
        }
    }
}

impl RotateArgs {
    /// The rotation these flags ask for.
    fn rotation(&self) -> Rotation {
        Rotation {
            root_keys: self.keys.clone(),
            threshold: self.threshold,
            targets_key: self.targets_key.clone(),
            snapshot_key: self.snapshot_key.clone(),
            server_snapshot: self.server_managed_snapshot,
            server_timestamp: self.new_timestamp_key,
            renew: self.renew,
        }
    }
}

/// `tufa root rotate`: a request to sign offline (`--out`), or signed here and published.
async fn rotate(ctx: &Context, a: RotateArgs, now: OffsetDateTime) -> Result<(), CliError> {
    let gun = parse_gun(&a.gun)?;
    let Some(out) = &a.out else {
        return rotate_now(ctx, &gun, &a.rotation(), now).await;
    };
    let remote = server_of(ctx)?.repo(&gun);
    let cache = TrustCache::new(&ctx.trust_dir);
    let request = a
        .rotation()
        .request(&ctx.agent, &remote, &cache, &gun, &ctx.options, now)
        .await?;
    request.save(out).map_err(ceremony_err)?;
    println!(
        "Wrote the request for root version {} of {gun} to {}: sign it with the previous and the new root keys (`tufa root sign`), then `tufa root publish`",
        request.root.signed.version,
        out.display()
    );
    Ok(())
}

/// A rotation of `gun`'s root signed by this agent and published at once (`tufa root rotate`
/// without `--out`, `tufa notary key rotate`).
pub(crate) async fn rotate_now(
    ctx: &Context,
    gun: &Gun,
    rotation: &Rotation,
    now: OffsetDateTime,
) -> Result<(), CliError> {
    let remote = server_of(ctx)?.repo(gun);
    let cache = TrustCache::new(&ctx.trust_dir);
    let mut request = rotation
        .request(&ctx.agent, &remote, &cache, gun, &ctx.options, now)
        .await?;
    let agent = ctx.agent.get().await?;
    request.sign_here(agent).await?;
    publish_request(ctx, agent, &request, now).await
}

/// Publishes a complete request, refreshes the cache, and says what was published.
async fn publish_request(
    ctx: &Context,
    agent: &AgentClient,
    request: &RootRequest,
    now: OffsetDateTime,
) -> Result<(), CliError> {
    let remote = server_of(ctx)?.repo(&request.gun);
    let cache = TrustCache::new(&ctx.trust_dir);
    let gun = &request.gun;
    let source = FromServer::new(&remote, &cache, gun, &ctx.options);
    let roles = ceremony::publish(agent, &remote, request, source, now)
        .await
        .map_err(ceremony_err)?;
    refresh(&remote, &cache, gun, &ctx.options).await;
    println!(
        "Published root version {} of {gun} ({})",
        request.root.signed.version,
        names(&roles)
    );
    Ok(())
}

fn ceremony_err(e: ceremony::CeremonyError) -> CliError {
    CliError::Usage(e.to_string())
}

impl From<ceremony::CeremonyError> for CliError {
    fn from(e: ceremony::CeremonyError) -> Self {
        ceremony_err(e)
    }
}

fn parse_gun(s: &str) -> Result<Gun, CliError> {
    s.parse()
        .map_err(|e: tuf::TufError| CliError::Usage(e.to_string()))
}

/// The server's current root, verified (for `show`'s diff); `None` when it cannot be read.
async fn current_root(
    repo: &NotaryRepo,
    trust_dir: &Path,
    gun: &Gun,
    options: &UpdateOptions,
) -> Option<Root> {
    let cache = TrustCache::new(trust_dir);
    repo::load_state(repo, &cache, gun, options)
        .await
        .ok()
        .flatten()
        .map(|s: RepoState| s.root.signed)
}

async fn refresh(remote: &NotaryRepo, cache: &TrustCache, gun: &Gun, options: &UpdateOptions) {
    if let Err(e) = tuf::update(remote, cache, gun, options).await {
        tracing::warn!(gun = %gun, error = %e, "published, but could not refresh the local cache");
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes).map_err(|e| CliError::File {
        path: path.to_owned(),
        message: format!("cannot write it: {e}"),
    })
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
