//! `tufa notary ...`: the notary CLI's verbs, with every private key in the agent.
//!
//! Operations stage changes and `publish` sends them, as in notary; `-p` publishes at once.
//! Output mirrors the notary CLI's, so scripts written for it keep working.

use std::path::PathBuf;
use std::sync::OnceLock;

use clap::{Args, Subcommand};
use time::OffsetDateTime;

use super::{table, CliError};
use crate::agent::LazyAgent;
use crate::ceremony::Rotation;
use crate::notary::{NotaryClient, NotaryConfig};
use crate::repo::{self, Change, Changelist, FromServer, RepoState};
use crate::tuf::{
    self, Gun, RoleName, Sha256Digest, Sha512Digest, TrustCache, UpdateOptions, VerifiedRepo,
};

/// Where the notary verbs find the server and the local trust data.
#[derive(Debug, Args)]
pub struct NotaryArgs {
    /// Server, trust directory and client config.
    #[command(flatten)]
    pub server: ServerArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: NotaryCommand,
}

/// Where the notary server and the trust data are: flags, else a notary client config.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The notary server [default: $DOCKER_CONTENT_TRUST_SERVER].
    #[arg(long, short = 's', global = true, env = "DOCKER_CONTENT_TRUST_SERVER")]
    pub server: Option<String>,
    /// CA certificate (PEM) that signed the server's TLS certificate.
    #[arg(long, global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Local trust data (cached metadata, staged changes) [default: $TUFA_TRUST_DIR, else
    /// $DOCKER_CONFIG/trust, else ~/.docker/trust].
    #[arg(long, short = 'd', global = true, env = "TUFA_TRUST_DIR")]
    pub trust_dir: Option<PathBuf>,
    /// A notary CLI client config (JSON): `trust_dir`, `remote_server.url`/`root_ca`/
    /// `tls_client_cert`/`tls_client_key`, and `trust_pinning`; flags override it.
    #[arg(long, short = 'c', global = true)]
    pub config: Option<PathBuf>,
}

/// The notary CLI's client config file, the parts tufa uses.
#[derive(Debug, Default, serde::Deserialize)]
struct ClientConfig {
    trust_dir: Option<PathBuf>,
    #[serde(default)]
    remote_server: RemoteServer,
    #[serde(default)]
    trust_pinning: PinningConfig,
}

#[derive(Debug, Default, serde::Deserialize)]
struct RemoteServer {
    url: Option<String>,
    root_ca: Option<PathBuf>,
    tls_client_cert: Option<PathBuf>,
    tls_client_key: Option<PathBuf>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct PinningConfig {
    #[serde(default)]
    certs: std::collections::HashMap<String, Vec<String>>,
    #[serde(default)]
    ca: std::collections::HashMap<String, PathBuf>,
    #[serde(default)]
    disable_tofu: bool,
}

impl ClientConfig {
    /// Reads the file; relative paths are relative to its directory, as notary reads them.
    fn load(path: &std::path::Path) -> Result<Self, CliError> {
        let bad = |message: String| CliError::File {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read(path).map_err(|e| bad(format!("cannot read the config: {e}")))?;
        let mut c: Self = serde_json::from_slice(&text)
            .map_err(|e| bad(format!("not a notary client config: {e}")))?;
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        c.trust_dir.iter_mut().for_each(fix);
        c.remote_server.root_ca.iter_mut().for_each(fix);
        c.remote_server.tls_client_cert.iter_mut().for_each(fix);
        c.remote_server.tls_client_key.iter_mut().for_each(fix);
        c.trust_pinning.ca.values_mut().for_each(fix);
        Ok(c)
    }

    fn pinning(&self, path: &std::path::Path) -> Result<tuf::TrustPinning, CliError> {
        let mut certs = std::collections::HashMap::new();
        for (gun, ids) in &self.trust_pinning.certs {
            let ids = ids
                .iter()
                .map(|id| {
                    id.parse::<tuf::KeyId>().map_err(|e| CliError::File {
                        path: path.to_owned(),
                        message: format!("trust_pinning.certs.{gun}: {e}"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            certs.insert(gun.clone(), ids);
        }
        Ok(tuf::TrustPinning {
            certs,
            ca: self.trust_pinning.ca.clone(),
            disable_tofu: self.trust_pinning.disable_tofu,
        })
    }
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
    Publish(GunArgs),
    /// Manage delegations.
    #[command(subcommand)]
    Delegation(DelegationCommand),
    /// Delete a repository's trust data.
    Delete(DeleteArgs),
    /// The agent's keys, with the role and repository each signs for.
    #[command(subcommand)]
    Key(NotaryKeyCommand),
    /// Each role's version, expiry, keys and who holds them; which are due for re-signing.
    Status(super::maintain::StatusArgs),
    /// Re-sign the roles close to expiry (root within 6 months, others within --within days).
    Resign(super::maintain::ResignArgs),
    /// A compromised delegation key: remove it everywhere; re-sign or drop what it signed.
    Incident(super::maintain::IncidentArgs),
}

/// `key ...`.
#[derive(Debug, Subcommand)]
pub enum NotaryKeyCommand {
    /// List keys as `notary key list` does: role, GUN, key ID, location.
    List,
    /// Rotate a role's key as `notary key rotate` does, and publish (root keys must be in
    /// this agent; for offline root keys use `tufa root rotate --out`).
    Rotate(KeyRotateArgs),
}

/// Arguments of `key rotate`.
#[derive(Debug, Args)]
pub struct KeyRotateArgs {
    /// The repository.
    pub gun: String,
    /// root, targets, snapshot or timestamp.
    pub role: String,
    /// Let the server hold the new key (snapshot, timestamp).
    #[arg(long = "server-managed", short = 'r')]
    pub server_managed: bool,
    /// The new key: an agent key [default: a new agent key named after the repository and role].
    #[arg(long)]
    pub key: Option<String>,
}

/// `--roles` and `-p`, shared by the staging verbs.
#[derive(Debug, Args)]
pub struct StageArgs {
    /// Roles to change [default: targets].
    #[arg(long = "roles", short = 'r')]
    pub roles: Vec<String>,
    /// Publish at once.
    #[arg(long, short = 'p')]
    pub publish: bool,
}

/// Arguments of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The repository.
    pub gun: String,
    /// Agent key for root [default: the key named `root`, generated if missing].
    #[arg(long)]
    pub root_key: Option<String>,
    /// Agent key for targets [default: a new key named after the repository].
    #[arg(long)]
    pub targets_key: Option<String>,
    /// Agent key for snapshot [default: a new key named after the repository].
    #[arg(long, conflicts_with = "server_managed_snapshot")]
    pub snapshot_key: Option<String>,
    /// Let the server hold the snapshot key and make snapshots, as docker does.
    #[arg(long)]
    pub server_managed_snapshot: bool,
    /// Publish at once.
    #[arg(long, short = 'p')]
    pub publish: bool,
}

/// Arguments of `add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The repository.
    pub gun: String,
    /// Target name.
    pub name: String,
    /// File whose size and SHA-256 are recorded.
    pub file: PathBuf,
    /// Roles and publishing.
    #[command(flatten)]
    pub stage: StageArgs,
}

/// Arguments of `addhash`.
#[derive(Debug, Args)]
pub struct AddHashArgs {
    /// The repository.
    pub gun: String,
    /// Target name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    #[arg(long)]
    pub sha256: String,
    /// SHA-512, hex (recorded besides the SHA-256, as notary does).
    #[arg(long)]
    pub sha512: Option<String>,
    /// Roles and publishing.
    #[command(flatten)]
    pub stage: StageArgs,
}

/// Arguments of `remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The repository.
    pub gun: String,
    /// Target name.
    pub name: String,
    /// Roles and publishing.
    #[command(flatten)]
    pub stage: StageArgs,
}

/// Arguments of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The repository.
    pub gun: String,
    /// Only these roles.
    #[arg(long = "roles", short = 'r')]
    pub roles: Vec<String>,
}

/// A GUN alone.
#[derive(Debug, Args)]
pub struct GunArgs {
    /// The repository.
    pub gun: String,
}

/// Arguments of `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The repository.
    pub gun: String,
    /// Also delete it on the server.
    #[arg(long)]
    pub remote: bool,
}

/// `delegation ...`.
#[derive(Debug, Subcommand)]
pub enum DelegationCommand {
    /// Add a delegation, or keys and paths to one.
    Add(DelegationAddArgs),
    /// Remove a delegation, or some of its keys.
    Remove(DelegationRemoveArgs),
    /// List the delegations.
    List(GunArgs),
}

/// Arguments of `delegation add`.
#[derive(Debug, Args)]
pub struct DelegationAddArgs {
    /// The repository.
    pub gun: String,
    /// The role, `targets/<name>`.
    pub role: String,
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
    pub gun: String,
    /// The role.
    pub role: String,
    /// Key IDs to remove [default: the whole role].
    pub key_ids: Vec<String>,
    /// Publish at once.
    #[arg(long, short = 'p')]
    pub publish: bool,
}

/// Everything a notary verb needs. The agent connection and the HTTPS client are made when a
/// verb first needs them: staging a change needs neither, and listing needs no key, so those
/// verbs skip the agent handshake and loading the platform's CA roots.
pub(crate) struct Context {
    pub(crate) agent: LazyAgent,
    server: Option<NotaryConfig>,
    client: OnceLock<NotaryClient>,
    pub(crate) trust_dir: PathBuf,
    // Trust pinning from the config, for every verified read.
    pub(crate) options: UpdateOptions,
}

impl ServerArgs {
    /// The flags and the config file resolved, with `agent` for signing.
    pub(crate) fn context(&self, agent: LazyAgent) -> Result<Context, CliError> {
        let file = match &self.config {
            Some(path) => ClientConfig::load(path)?,
            None => ClientConfig::default(),
        };
        let mut options = UpdateOptions::default();
        if let Some(path) = &self.config {
            options.pinning = file.pinning(path)?;
        }
        let trust_dir = self
            .trust_dir
            .clone()
            .or(file.trust_dir.clone())
            .unwrap_or_else(default_trust_dir);
        let url = self.server.clone().or(file.remote_server.url.clone());
        let server = match &url {
            Some(url) => {
                let ca = self.tls_ca.clone().or(file.remote_server.root_ca.clone());
                let mut config = notary_config(url, ca)?;
                if let (Some(cert), Some(key)) = (
                    file.remote_server.tls_client_cert.clone(),
                    file.remote_server.tls_client_key.clone(),
                ) {
                    config.client_cert = Some((cert, key));
                }
                Some(config)
            }
            None => None,
        };
        Ok(Context {
            agent,
            server,
            client: OnceLock::new(),
            trust_dir,
            options,
        })
    }
}

impl NotaryArgs {
    /// Runs the verb.
    pub async fn run(self, agent: LazyAgent) -> Result<(), CliError> {
        let ctx = self.server.context(agent)?;
        match self.command {
            NotaryCommand::Init(a) => a.run(&ctx).await,
            NotaryCommand::Add(a) => {
                let data = std::fs::read(&a.file).map_err(|e| CliError::File {
                    path: a.file.clone(),
                    message: format!("cannot read the target file: {e}"),
                })?;
                // Both digests, as `notary add` records them.
                stage_target(
                    &ctx,
                    parse_gun(&a.gun)?,
                    &a.name,
                    TargetHashes {
                        size: data.len() as u64,
                        sha256: Sha256Digest::of(&data),
                        sha512: Some(Sha512Digest::of(&data)),
                    },
                    &a.stage,
                    "",
                )
                .await
            }
            NotaryCommand::Addhash(a) => {
                let gun = parse_gun(&a.gun)?;
                stage_target(
                    &ctx,
                    gun,
                    &a.name,
                    TargetHashes::parse(a.size, &a.sha256, a.sha512.as_deref())?,
                    &a.stage,
                    " by sha256 hash",
                )
                .await
            }
            NotaryCommand::Remove(a) => {
                let gun = parse_gun(&a.gun)?;
                let list = Changelist::new(&ctx.trust_dir, &gun);
                for role in roles_or_targets(&a.stage.roles)? {
                    list.add(Change::RemoveTarget {
                        role,
                        name: a.name.clone(),
                    })?;
                }
                println!("Removal of {} from {gun} staged for next publish.", a.name);
                maybe_publish(&ctx, &gun, a.stage.publish).await
            }
            NotaryCommand::List(a) => a.run(&ctx).await,
            NotaryCommand::Publish(a) => {
                let gun = parse_gun(&a.gun)?;
                println!("Pushing changes to {gun}");
                publish(&ctx, &gun).await
            }
            NotaryCommand::Delegation(DelegationCommand::Add(a)) => a.run(&ctx).await,
            NotaryCommand::Delegation(DelegationCommand::Remove(a)) => a.run(&ctx).await,
            NotaryCommand::Delegation(DelegationCommand::List(a)) => {
                delegation_list(&ctx, &a.gun).await
            }
            NotaryCommand::Key(NotaryKeyCommand::List) => key_list(&ctx).await,
            NotaryCommand::Key(NotaryKeyCommand::Rotate(a)) => a.run(&ctx).await,
            NotaryCommand::Status(a) => a.run(&ctx).await,
            NotaryCommand::Resign(a) => a.run(&ctx).await,
            NotaryCommand::Incident(a) => a.run(&ctx).await,
            NotaryCommand::Delete(a) => {
                let gun = parse_gun(&a.gun)?;
                Changelist::new(&ctx.trust_dir, &gun).clear()?;
                TrustCache::new(&ctx.trust_dir)
                    .remove_gun(&gun)
                    .await
                    .map_err(|e| CliError::Usage(e.to_string()))?;
                println!("Deleting trust data for repository {gun}");
                if a.remote {
                    server_of(&ctx)?
                        .repo(&gun)
                        .delete()
                        .await
                        .map_err(|e| CliError::Usage(e.to_string()))?;
                    println!(
                        "Successfully deleted local and remote trust data for repository {gun}"
                    );
                } else {
                    println!("Successfully deleted local trust data for repository {gun}");
                }
                Ok(())
            }
        }
    }
}

/// The server's settings: its URL, the CA to trust, and docker's credentials for its host.
pub fn notary_config(url: &str, ca_file: Option<PathBuf>) -> Result<NotaryConfig, CliError> {
    let server = url::Url::parse(url).map_err(|e| {
        CliError::Usage(format!(
            "'{url}' is not a notary server URL ({e}): give one such as https://notary.example.com:4443"
        ))
    })?;
    let host = match (server.host_str(), server.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => String::new(),
    };
    let docker = crate::docker_config::DockerConfig::load().ok();
    let tls = docker.as_ref().map(|d| d.tls_dir(&host));
    Ok(NotaryConfig {
        ca_file: ca_file.or_else(|| tls.as_ref().and_then(|t| t.ca_files.first().cloned())),
        client_cert: tls.and_then(|t| t.client),
        credentials: docker.and_then(|d| d.credentials_for(&host)),
        server,
    })
}

/// `$DOCKER_CONFIG/trust`, else `~/.docker/trust`: the cache docker and notary use.
pub fn default_trust_dir() -> PathBuf {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .unwrap_or_else(|| PathBuf::from(".docker"))
        .join("trust")
}

pub(crate) fn parse_gun(s: &str) -> Result<Gun, CliError> {
    s.parse()
        .map_err(|e: tuf::TufError| CliError::Usage(e.to_string()))
}

fn roles_or_targets(roles: &[String]) -> Result<Vec<RoleName>, CliError> {
    if roles.is_empty() {
        return Ok(vec![RoleName::TARGETS]);
    }
    roles
        .iter()
        .map(|r| {
            let role: RoleName = r.parse().map_err(|e: tuf::TufError| CliError::Usage(e.to_string()))?;
            if role != RoleName::TARGETS && !role.is_delegation() {
                return Err(CliError::Usage(format!(
                    "targets cannot be added to {role}: use targets or a delegation (targets/<name>)"
                )));
            }
            Ok(role)
        })
        .collect()
}

pub(crate) fn server_of(ctx: &Context) -> Result<&NotaryClient, CliError> {
    if let Some(client) = ctx.client.get() {
        return Ok(client);
    }
    let config = ctx.server.clone().ok_or_else(|| {
        CliError::Usage(
            "no notary server: pass --server URL or set DOCKER_CONTENT_TRUST_SERVER".into(),
        )
    })?;
    let client = NotaryClient::new(config).map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(ctx.client.get_or_init(|| client))
}

/// A target's size and digests.
struct TargetHashes {
    size: u64,
    sha256: Sha256Digest,
    sha512: Option<Sha512Digest>,
}

impl TargetHashes {
    /// The size and digests (hex) given on the command line.
    fn parse(size: u64, sha256: &str, sha512: Option<&str>) -> Result<Self, CliError> {
        let sha256 = (sha256.len() == 64)
            .then(|| sha256.parse().ok())
            .flatten()
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "'{sha256}' is not a SHA-256 digest: give 64 hex digits"
                ))
            })?;
        let sha512 = match sha512 {
            None => None,
            Some(hex) => Some(hex.parse().map_err(|_| {
                CliError::Usage(format!(
                    "'{hex}' is not a SHA-512 digest: give 128 hex digits"
                ))
            })?),
        };
        Ok(Self {
            size,
            sha256,
            sha512,
        })
    }
}

async fn stage_target(
    ctx: &Context,
    gun: Gun,
    name: &str,
    target: TargetHashes,
    stage: &StageArgs,
    how: &str,
) -> Result<(), CliError> {
    let list = Changelist::new(&ctx.trust_dir, &gun);
    for role in roles_or_targets(&stage.roles)? {
        list.add(Change::AddTarget {
            role,
            name: name.to_owned(),
            length: target.size,
            sha256: target.sha256,
            sha512: target.sha512,
            custom: None,
        })?;
    }
    println!("Addition of target \"{name}\"{how} to repository \"{gun}\" staged for next publish.");
    maybe_publish(ctx, &gun, stage.publish).await
}

async fn maybe_publish(ctx: &Context, gun: &Gun, now: bool) -> Result<(), CliError> {
    if !now {
        return Ok(());
    }
    println!("Auto-publishing changes to {gun}");
    publish(ctx, gun).await
}

async fn publish(ctx: &Context, gun: &Gun) -> Result<(), CliError> {
    let remote = server_of(ctx)?.repo(gun);
    let cache = TrustCache::new(&ctx.trust_dir);
    let list = Changelist::new(&ctx.trust_dir, gun);
    repo::publish(
        ctx.agent.get().await?,
        &remote,
        gun,
        &list,
        FromServer::new(&remote, &cache, gun, &ctx.options),
        OffsetDateTime::now_utc(),
    )
    .await?;
    // Refresh the cache with what the server now serves, verified.
    if let Err(e) = tuf::update(&remote, &cache, gun, &ctx.options).await {
        tracing::warn!(gun = %gun, error = %e, "published, but could not refresh the local cache");
    }
    println!("Successfully published changes for repository {gun}");
    Ok(())
}

impl InitArgs {
    async fn run(self, ctx: &Context) -> Result<(), CliError> {
        let gun = parse_gun(&self.gun)?;
        let snapshot = match (self.server_managed_snapshot, self.snapshot_key) {
            (true, _) => repo::SnapshotChoice::Server,
            (false, Some(k)) => repo::SnapshotChoice::Key(k),
            (false, None) => repo::SnapshotChoice::NewKey,
        };
        let (change, reused_root) = repo::init_change(
            ctx.agent.get().await?,
            &gun,
            self.root_key.as_deref(),
            self.targets_key.as_deref(),
            snapshot,
        )
        .await?;
        if let Some(id) = reused_root {
            println!("Root key found, using: {id}");
        }
        // The timestamp key is asked for now, as notary does, so a wrong server shows at once.
        server_of(ctx)?
            .repo(&gun)
            .server_key(&RoleName::TIMESTAMP)
            .await
            .map_err(|e| CliError::Usage(e.to_string()))?;
        Changelist::new(&ctx.trust_dir, &gun).add(change)?;
        maybe_publish(ctx, &gun, self.publish).await
    }
}

/// The repository's trust data, fetched, verified and cached; warnings go to stderr.
pub(crate) async fn verified_repo(ctx: &Context, gun: &Gun) -> Result<VerifiedRepo, CliError> {
    let server = server_of(ctx)?;
    let cache = TrustCache::new(&ctx.trust_dir);
    let verified = tuf::update(&server.repo(gun), &cache, gun, &ctx.options)
        .await
        .map_err(|e| {
            if e.is_untrusted_data() {
                CliError::Untrusted {
                    server: server.server().to_string(),
                    gun: gun.clone(),
                    cache: cache.metadata_dir(gun),
                    source: Box::new(e),
                }
            } else {
                CliError::Usage(e.to_string())
            }
        })?;
    // Like notary, what was skipped or ignored is said, not hidden.
    for warning in verified.warnings() {
        eprintln!("Warning: {warning}");
    }
    Ok(verified)
}

impl ListArgs {
    async fn run(self, ctx: &Context) -> Result<(), CliError> {
        let gun = parse_gun(&self.gun)?;
        let roles: Vec<RoleName> = self
            .roles
            .iter()
            .map(|r| {
                r.parse()
                    .map_err(|e: tuf::TufError| CliError::Usage(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let verified = verified_repo(ctx, &gun).await?;
        let entries = verified.targets((!roles.is_empty()).then_some(&roles[..]));
        if entries.is_empty() {
            println!("\nNo targets present in this repository.\n");
            return Ok(());
        }
        let mut rows = vec![
            vec![
                "NAME".to_owned(),
                "DIGEST".into(),
                "SIZE (BYTES)".into(),
                "ROLE".into(),
            ],
            vec![
                "----".to_owned(),
                "------".into(),
                "------------".into(),
                "----".into(),
            ],
        ];
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

impl DelegationAddArgs {
    async fn run(self, ctx: &Context) -> Result<(), CliError> {
        let gun = parse_gun(&self.gun)?;
        let role: RoleName = self
            .role
            .parse()
            .map_err(|e: tuf::TufError| CliError::Usage(e.to_string()))?;
        let keys = super::read_public_keys(&self.keys)?;
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
        Changelist::new(&ctx.trust_dir, &gun).add(Change::AddDelegation {
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
        maybe_publish(ctx, &gun, self.publish).await
    }
}

impl DelegationRemoveArgs {
    async fn run(self, ctx: &Context) -> Result<(), CliError> {
        let gun = parse_gun(&self.gun)?;
        let role: RoleName = self
            .role
            .parse()
            .map_err(|e: tuf::TufError| CliError::Usage(e.to_string()))?;
        let list = Changelist::new(&ctx.trust_dir, &gun);
        if self.key_ids.is_empty() {
            list.add(Change::RemoveDelegation { role: role.clone() })?;
            println!("\nRemoval of delegation role {role} to repository \"{gun}\" staged for next publish.\n");
        } else {
            let key_ids = self
                .key_ids
                .iter()
                .map(|id| {
                    id.parse().map_err(|e| {
                        CliError::Usage(format!(
                            "{e}: give the key IDs `tufa notary delegation list {gun}` shows"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?;
            list.add(Change::RemoveDelegationKeys {
                role: role.clone(),
                key_ids,
            })?;
            println!(
                "\nRemoval of delegation role {role} with keys [{}], to repository \"{gun}\" staged for next publish.\n",
                self.key_ids.join(" ")
            );
        }
        maybe_publish(ctx, &gun, self.publish).await
    }
}

async fn delegation_list(ctx: &Context, gun: &str) -> Result<(), CliError> {
    let gun = parse_gun(gun)?;
    let state = RepoState::from(verified_repo(ctx, &gun).await?);
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
    let mut rows = vec![
        vec![
            "ROLE".to_owned(),
            "PATHS".into(),
            "KEY IDS".into(),
            "THRESHOLD".into(),
        ],
        vec![
            "----".to_owned(),
            "-----".into(),
            "-------".into(),
            "---------".into(),
        ],
    ];
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
            rows.push(vec![
                if i == 0 {
                    d.name.to_string()
                } else {
                    String::new()
                },
                paths.get(i).cloned().unwrap_or_default(),
                ids.get(i).cloned().unwrap_or_default(),
                if i == 0 {
                    d.threshold.to_string()
                } else {
                    String::new()
                },
            ]);
        }
    }
    println!();
    print!("{}", table::render(&rows));
    println!();
    Ok(())
}

/// Roles the cached roots give the agent's keys: `(canonical key ID, role, GUN)`.
fn cached_roles(trust_dir: &std::path::Path) -> Vec<(tuf::KeyId, String, String)> {
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
                let Ok(root) = tuf::Signed::<tuf::Root>::from_slice(&RoleName::ROOT, &bytes) else {
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

async fn key_list(ctx: &Context) -> Result<(), CliError> {
    let keys = ctx.agent.get().await?.list_keys().await?;
    let roles = cached_roles(&ctx.trust_dir);
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    for k in &keys {
        let location = k
            .location
            .as_ref()
            .map(|l| match l {
                tufa_proto::v1::key_location::Location::Pkcs11(p) => {
                    format!("pkcs11:token={}", p.token_label)
                }
                tufa_proto::v1::key_location::Location::Yubikey(y) => {
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
    let mut table_rows = vec![
        vec![
            "ROLE".to_owned(),
            "GUN".into(),
            "KEY ID".into(),
            "LOCATION".into(),
        ],
        vec![
            "----".to_owned(),
            "---".into(),
            "------".into(),
            "--------".into(),
        ],
    ];
    table_rows.extend(rows.into_iter().map(|(r, g, i, l)| vec![r, g, i, l]));
    println!();
    print!("{}", table::render(&table_rows));
    println!();
    Ok(())
}

impl KeyRotateArgs {
    /// Maps notary's verb onto a root rotation signed by this agent and published at once.
    async fn run(self, ctx: &Context) -> Result<(), CliError> {
        let gun = parse_gun(&self.gun)?;
        let role: RoleName = self
            .role
            .parse()
            .map_err(|e| CliError::Usage(format!("{e}")))?;
        let base = [
            RoleName::ROOT,
            RoleName::TARGETS,
            RoleName::SNAPSHOT,
            RoleName::TIMESTAMP,
        ];
        if !base.contains(&role) {
            return Err(CliError::Usage(format!(
                "cannot rotate the key of {role}: give root, targets, snapshot or timestamp (a delegation's keys change with `tufa notary delegation add/remove`)"
            )));
        }
        if self.server_managed && self.key.is_some() {
            return Err(CliError::Usage(
                "give either --key or -r (--server-managed), not both".into(),
            ));
        }
        let server_ok = role == RoleName::SNAPSHOT || role == RoleName::TIMESTAMP;
        if self.server_managed && !server_ok {
            return Err(CliError::Usage(format!(
                "the server may hold only the snapshot and timestamp keys, not the {role} key: drop -r"
            )));
        }
        if role == RoleName::TIMESTAMP && !self.server_managed {
            return Err(CliError::Usage(
                "the timestamp key is always the server's: rotate it with -r".into(),
            ));
        }
        let mut rotation = Rotation {
            server_snapshot: self.server_managed && role == RoleName::SNAPSHOT,
            server_timestamp: role == RoleName::TIMESTAMP,
            ..Rotation::default()
        };
        // A key made here is removed again if the rotation fails: nothing is left behind.
        let mut made = None;
        if !self.server_managed {
            let name = match &self.key {
                Some(k) => k.clone(),
                None => {
                    let agent = ctx.agent.get().await?;
                    let name = repo::next_key_name(agent, &gun, &role).await?;
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
        let result = super::root::rotate_now(ctx, &gun, &rotation, OffsetDateTime::now_utc()).await;
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
