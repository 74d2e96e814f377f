//! Writing a trust repository: init, staged changes, signing through the agent, publishing.
//!
//! As in Notary, changes are staged in a changelist next to the cached metadata and sent by
//! `publish`. Publishing reads the server's current state (verified), applies the changes,
//! re-signs what changed with keys the agent holds (version + 1, fresh expiry), signs a new
//! snapshot when the agent holds the snapshot key (else the server makes it), and posts exactly
//! those files. A version conflict (someone published meanwhile) refetches, reapplies and retries;
//! any other failure leaves the server and the cache as they were, and the changelist staged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::agent::{AgentClient, AgentClientError, AgentKey, SignContext};
use crate::tuf::{
    Delegation, Expires, FileMeta, Gun, KeyId, Metadata, PublicKey, RemoteError, RoleKeys,
    RoleName, Root, RootRole, RootRoles, Sha256Digest, Signature, SignatureMethod, Signed,
    Snapshot, Targets, TufError,
};

/// Lifetime of a root Notary signs: 10 years.
pub const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Lifetime of targets, delegations and a client-signed snapshot: 3 years.
pub const ROLE_LIFETIME: Duration = Duration::from_secs(3 * 365 * 24 * 3600);
/// How many times a publish retries after a version conflict.
pub const PUBLISH_ATTEMPTS: usize = 5;

/// What publishing needs from the server, besides verified reads.
pub trait Publisher: Send + Sync {
    /// The server-held key of `timestamp` or `snapshot` (created on first request).
    fn server_key(
        &self,
        role: &RoleName,
    ) -> impl Future<Output = Result<PublicKey, RemoteError>> + Send;
    /// Posts these files in one atomic update.
    fn publish(
        &self,
        files: &[(RoleName, Vec<u8>)],
    ) -> impl Future<Output = Result<(), PublishRejected>> + Send;
}

impl Publisher for crate::notary::NotaryRepo {
    async fn server_key(&self, role: &RoleName) -> Result<PublicKey, RemoteError> {
        crate::notary::NotaryRepo::server_key(self, role)
            .await
            .map_err(|e| Box::new(e) as RemoteError)
    }

    async fn publish(&self, files: &[(RoleName, Vec<u8>)]) -> Result<(), PublishRejected> {
        crate::notary::NotaryRepo::publish(self, files)
            .await
            .map_err(|e| {
                if e.is_version_conflict() {
                    PublishRejected::VersionConflict(Box::new(e))
                } else {
                    PublishRejected::Other(Box::new(e))
                }
            })
    }
}

/// Why the server refused a publish.
#[derive(Debug)]
pub enum PublishRejected {
    /// Someone published a newer version meanwhile: refetch and retry.
    VersionConflict(RemoteError),
    /// Anything else.
    Other(RemoteError),
}

/// The verified state of a repository the changes apply to.
#[derive(Clone, Debug)]
pub struct RepoState {
    /// The current root.
    pub root: Signed<Root>,
    /// The current snapshot, if the server has one.
    pub snapshot: Option<Signed<Snapshot>>,
    /// `targets` and every delegated targets role, by name.
    pub targets: BTreeMap<RoleName, Signed<Targets>>,
}

impl From<crate::tuf::VerifiedRepo> for RepoState {
    fn from(v: crate::tuf::VerifiedRepo) -> Self {
        let mut targets = BTreeMap::from([(RoleName::TARGETS, v.targets_role().clone())]);
        for d in v.delegations() {
            targets.insert(d.name.clone(), d.file.clone());
        }
        Self {
            root: v.root().clone(),
            snapshot: Some(v.snapshot().clone()),
            targets,
        }
    }
}

/// Which key signs the snapshot of a new repository.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKey {
    /// The server holds it and makes every snapshot.
    Server,
    /// The agent holds it (key ID).
    Agent(String),
}

/// One staged change.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    /// Create the repository with these agent keys (key IDs).
    Init {
        /// The root key.
        root_key: String,
        /// The targets ("repository") key.
        targets_key: String,
        /// The snapshot key.
        snapshot: SnapshotKey,
    },
    /// Add or replace a target in a role.
    AddTarget {
        /// The role.
        role: String,
        /// Target name (a tag, a file name).
        name: String,
        /// Length in bytes.
        length: u64,
        /// SHA-256, hex.
        sha256: String,
        /// SHA-512, hex, when known (`notary add` records both).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha512: Option<String>,
        /// Custom data, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        custom: Option<serde_json::Value>,
    },
    /// Remove a target from a role.
    RemoveTarget {
        /// The role.
        role: String,
        /// Target name.
        name: String,
    },
    /// Create a delegation, or add keys and paths to it.
    AddDelegation {
        /// The delegated role, `targets/...`.
        role: String,
        /// Public keys as TUF key objects (JSON).
        keys: Vec<serde_json::Value>,
        /// Path prefixes it may sign ("" for all).
        paths: Vec<String>,
        /// Signatures needed; 0 keeps the current threshold (1 for a new role).
        threshold: u32,
    },
    /// Remove keys from a delegation.
    RemoveDelegationKeys {
        /// The delegated role.
        role: String,
        /// TUF key IDs to remove.
        key_ids: Vec<String>,
    },
    /// Remove a delegation entirely.
    RemoveDelegation {
        /// The delegated role.
        role: String,
    },
    /// Re-sign a targets role as it is (version + 1, fresh expiry): renewal, or after one of
    /// its keys was removed.
    Resign {
        /// The role.
        role: String,
    },
}

/// The staged changes of one GUN: one JSON line per change, appended to
/// `<trust_dir>/tuf/<gun>/tufa-changes.jsonl`.
///
/// Staging appends (under an exclusive `flock`, then synced), so it costs the same however many
/// changes wait, and publishing reads one file and removes one. A change is staged once its line
/// ends with a newline: a line cut short by a crash is ignored, and the next writer cuts it off.
/// notary's own `changelist/` is another path, so both CLIs can share a trust directory. A
/// `changelist.json` left by an older tufa (every change in one array) is read first.
pub struct Changelist {
    path: PathBuf,
    legacy: PathBuf,
}

impl Changelist {
    /// The changelist of `gun` under `trust_dir`.
    pub fn new(trust_dir: &Path, gun: &Gun) -> Self {
        let base = trust_dir.join("tuf").join(gun.as_str());
        Self {
            path: base.join("tufa-changes.jsonl"),
            legacy: base.join("changelist.json"),
        }
    }

    /// The staged changes, oldest first.
    pub fn list(&self) -> Result<Vec<Change>, RepoError> {
        let mut all: Vec<Change> = match read_if_exists(&self.legacy)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| RepoError::Changelist {
                path: self.legacy.clone(),
                detail: format!("it does not parse ({e}): remove it to drop the staged changes"),
            })?,
            None => Vec::new(),
        };
        let bytes = read_if_exists(&self.path)?.unwrap_or_default();
        for (i, line) in complete_lines(&bytes).split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            all.push(
                serde_json::from_slice(line).map_err(|e| RepoError::Changelist {
                    path: self.path.clone(),
                    detail: format!(
                        "line {} does not parse ({e}): remove the file to drop the staged changes",
                        i + 1
                    ),
                })?,
            );
        }
        Ok(all)
    }

    /// Stages one more change.
    pub fn add(&self, change: Change) -> Result<(), RepoError> {
        self.add_all([change])
    }

    /// Stages several changes, in order, in one append.
    pub fn add_all(&self, changes: impl IntoIterator<Item = Change>) -> Result<(), RepoError> {
        let mut lines = Vec::new();
        for change in changes {
            // Compact JSON escapes newlines inside strings, so a change is exactly one line.
            serde_json::to_writer(&mut lines, &change).map_err(|e| RepoError::Changelist {
                path: self.path.clone(),
                detail: e.to_string(),
            })?;
            lines.push(b'\n');
        }
        if lines.is_empty() {
            return Ok(());
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let mut file = self.open_locked(true)?.ok_or_else(|| {
            io_err(
                &self.path,
                std::io::Error::other("the changelist vanished as it was created"),
            )
        })?;
        let io = |e| io_err(&self.path, e);
        let len = file.metadata().map_err(io)?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, len - 1).map_err(io)?;
            if last[0] != b'\n' {
                // A writer died mid-line: that change was never staged, so cut it off.
                let bytes = std::fs::read(&self.path).map_err(io)?;
                file.set_len(complete_lines(&bytes).len() as u64)
                    .map_err(io)?;
            }
        }
        // Opened for appending: this lands at the end whatever the length now is.
        file.write_all(&lines).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(())
    }

    /// Drops every staged change.
    pub fn clear(&self) -> Result<(), RepoError> {
        // Locked first, so no writer is appending to the file as it goes.
        if let Some(_locked) = self.open_locked(false)? {
            remove_if_exists(&self.path)?;
        }
        remove_if_exists(&self.legacy)
    }

    /// The changelist opened for appending and exclusively locked; `None` if it does not exist
    /// and `create` is false. Reopened if another process removed it while we waited.
    fn open_locked(&self, create: bool) -> Result<Option<File>, RepoError> {
        let io = |e| io_err(&self.path, e);
        loop {
            let file = match OpenOptions::new()
                .append(true)
                .read(true)
                .create(create)
                .mode(0o600)
                .open(&self.path)
            {
                Ok(f) => f,
                Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io(e)),
            };
            rustix::fs::flock(&file, FlockOperation::LockExclusive).map_err(|e| io(e.into()))?;
            let ours = file.metadata().map_err(io)?;
            match std::fs::metadata(&self.path) {
                Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => {
                    return Ok(Some(file))
                }
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if !create {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(io(e)),
            }
        }
    }
}

/// `bytes` up to and including the last newline: the changes that were staged in full.
fn complete_lines(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    &bytes[..end]
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, RepoError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, e)),
    }
}

fn remove_if_exists(path: &Path) -> Result<(), RepoError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, e)),
    }
}

fn io_err(path: &Path, e: std::io::Error) -> RepoError {
    RepoError::Changelist {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

/// The agent's keys by their canonical key ID (what a role's keys map to).
pub struct AgentKeys {
    by_id: HashMap<KeyId, AgentKey>,
}

impl AgentKeys {
    /// Reads the agent's key list once.
    pub async fn load(agent: &AgentClient) -> Result<Self, RepoError> {
        let keys = agent.list_keys().await?;
        let by_id = keys.into_iter().map(|k| (k.id, k)).collect();
        Ok(Self { by_id })
    }

    /// The agent key behind a TUF key, if the agent holds it.
    pub fn for_key(&self, key: &PublicKey) -> Option<&AgentKey> {
        key.canonical_id().ok().and_then(|id| self.by_id.get(&id))
    }

    /// An agent key by ID.
    pub fn by_id(&self, id: &str) -> Option<&AgentKey> {
        id.parse::<KeyId>().ok().and_then(|id| self.by_id.get(&id))
    }
}

/// Signs `body` as `role` with every key of `keys` the agent holds; refuses when that is fewer
/// than `threshold`. The signature names each key by its TUF ID (for a root: the certificate's).
pub async fn sign_role<T: Metadata>(
    agent: &AgentClient,
    held: &AgentKeys,
    gun: &Gun,
    role: &RoleName,
    body: T,
    keys: &[PublicKey],
    threshold: u32,
) -> Result<Signed<T>, RepoError> {
    let mut signed = Signed::new(body);
    let bytes = signed.signed_bytes()?;
    let context = SignContext::new(gun, role);
    for key in keys {
        let Some(agent_key) = held.for_key(key) else {
            continue;
        };
        let sig = agent.sign(agent_key, &bytes, &context).await?;
        signed.signatures.push(Signature {
            key_id: key.id(),
            method: SignatureMethod::Ecdsa,
            sig: sig.to_vec(),
        });
    }
    let have = signed.signatures.len();
    if have < threshold as usize {
        return Err(RepoError::MissingKeys {
            role: role.clone(),
            have,
            threshold,
        });
    }
    // Belt and braces: the file must verify exactly as a reader will check it.
    let ids: Vec<KeyId> = keys.iter().map(PublicKey::id).collect();
    let by_id: BTreeMap<KeyId, PublicKey> = keys.iter().map(|k| (k.id(), k.clone())).collect();
    let role_keys = RoleKeys::new(role.clone(), role, &ids, &by_id, threshold)?;
    signed.verify(&role_keys)?;
    Ok(signed)
}

/// The files of a publish, and the state they make.
pub struct Prepared {
    /// Files to post, in the order they were signed.
    pub files: Vec<(RoleName, Vec<u8>)>,
}

/// What a publish sent.
#[derive(Debug)]
pub struct Published {
    /// The roles posted, in order.
    pub roles: Vec<RoleName>,
    /// Whether the repository was created by this publish.
    pub created: bool,
    /// The targets and delegation files as posted: what the server now serves for those roles.
    pub targets_files: Vec<(RoleName, Vec<u8>)>,
}

/// Publishes the staged changes of `gun`.
///
/// `load` reads the repository's current verified state (`None` when the server has none); it is
/// called again after a version conflict, and the changes are applied afresh to what it returns.
pub async fn publish<P, L, F>(
    agent: &AgentClient,
    server: &P,
    gun: &Gun,
    changelist: &Changelist,
    load: L,
    now: OffsetDateTime,
) -> Result<Published, RepoError>
where
    P: Publisher,
    L: Fn() -> F,
    F: Future<Output = Result<Option<RepoState>, RepoError>>,
{
    let changes = changelist.list()?;
    let held = AgentKeys::load(agent).await?;
    let published = publish_changes(agent, &held, server, gun, &changes, load, now).await?;
    changelist.clear()?;
    Ok(published)
}

/// A `load` for [`publish_changes`] that hands back `current` (the state the changes were
/// computed from) the first time, so it is not read twice, and calls `load` after a conflict.
pub fn starting_with<L, F>(
    current: Option<RepoState>,
    load: L,
) -> impl Fn() -> futures_util::future::Either<std::future::Ready<Result<Option<RepoState>, RepoError>>, F>
where
    L: Fn() -> F,
    F: Future<Output = Result<Option<RepoState>, RepoError>>,
{
    let first = std::sync::Mutex::new(Some(current));
    move || match first.lock().ok().and_then(|mut f| f.take()) {
        Some(state) => futures_util::future::Either::Left(std::future::ready(Ok(state))),
        None => futures_util::future::Either::Right(load()),
    }
}

/// Publishes `changes` (not staged anywhere): what docker's verbs do, which publish at once.
pub async fn publish_changes<P, L, F>(
    agent: &AgentClient,
    held: &AgentKeys,
    server: &P,
    gun: &Gun,
    changes: &[Change],
    load: L,
    now: OffsetDateTime,
) -> Result<Published, RepoError>
where
    P: Publisher,
    L: Fn() -> F,
    F: Future<Output = Result<Option<RepoState>, RepoError>>,
{
    for attempt in 1..=PUBLISH_ATTEMPTS {
        let (mut state, created) = match load().await? {
            Some(state) => (state, false),
            None => {
                let Some(Change::Init {
                    root_key,
                    targets_key,
                    snapshot,
                }) = changes.iter().find(|c| matches!(c, Change::Init { .. }))
                else {
                    return Err(RepoError::NotInitialised { gun: gun.clone() });
                };
                let init = (root_key.as_str(), targets_key.as_str(), snapshot);
                (
                    new_repository(agent, held, server, gun, init, now).await?,
                    true,
                )
            }
        };
        let mut dirty = apply(&mut state, changes)?;
        if created {
            dirty.insert(RoleName::TARGETS);
        }
        // As Notary does: a root within six months of expiry is re-signed with the next publish.
        let renew_root = !created && root_needs_renewal(&state, now);
        if renew_root {
            renew(agent, held, gun, &mut state, now).await?;
        }
        let prepared = sign_changes(
            agent,
            held,
            gun,
            &mut state,
            &dirty,
            created || renew_root,
            now,
        )
        .await?;
        match server.publish(&prepared.files).await {
            Ok(()) => {
                let roles = prepared.files.iter().map(|(r, _)| r.clone()).collect();
                let targets_files = prepared
                    .files
                    .into_iter()
                    .filter(|(r, _)| *r == RoleName::TARGETS || r.is_delegation())
                    .collect();
                return Ok(Published {
                    roles,
                    created,
                    targets_files,
                });
            }
            Err(PublishRejected::VersionConflict(e)) => {
                tracing::info!(gun = %gun, attempt, error = %e, "version conflict; refetching");
                conflict_pause(attempt).await;
            }
            Err(PublishRejected::Other(e)) => {
                // The likely cause, said plainly; checked only now, as it costs a request.
                if !created {
                    check_snapshot_signer(held, server, gun, &state).await?;
                }
                return Err(RepoError::Server(e));
            }
        }
    }
    Err(RepoError::Conflict {
        gun: gun.clone(),
        attempts: PUBLISH_ATTEMPTS,
    })
}

/// A short random pause after the `attempt`th version conflict, so publishers that collided do
/// not collide again.
pub(crate) async fn conflict_pause(attempt: usize) {
    let mut b = [0u8; 1];
    let _ = getrandom::fill(&mut b);
    let pause = 20 * attempt as u64 + u64::from(b[0] % 100);
    tokio::time::sleep(Duration::from_millis(pause)).await;
}

/// How long before its expiry a root is re-signed: six months, as Notary.
pub const ROOT_RENEWAL: Duration = Duration::from_secs(182 * 24 * 3600);

fn root_needs_renewal(state: &RepoState, now: OffsetDateTime) -> bool {
    state.root.signed.expires.is_expired_at(now + ROOT_RENEWAL)
}

/// Re-signs the root unchanged but for version + 1 and a fresh 10-year expiry.
async fn renew(
    agent: &AgentClient,
    held: &AgentKeys,
    gun: &Gun,
    state: &mut RepoState,
    now: OffsetDateTime,
) -> Result<(), RepoError> {
    let mut body = state.root.signed.clone();
    body.version += 1;
    body.expires = expires_in(now, ROOT_LIFETIME)?;
    let keys = key_list(&body, &body.roles.root);
    let threshold = body.roles.root.threshold;
    state.root = sign_role(agent, held, gun, &RoleName::ROOT, body, &keys, threshold)
        .await
        .map_err(|e| match e {
            RepoError::MissingKeys { .. } => RepoError::RootExpiring {
                gun: gun.clone(),
                expires: state.root.signed.expires.to_string(),
            },
            other => other,
        })?;
    Ok(())
}

/// A publish needs a snapshot from someone: the agent, or the server. Checked when the server
/// refused a publish, because its own refusal ("key not found") does not say what to do.
pub(crate) async fn check_snapshot_signer<P: Publisher>(
    held: &AgentKeys,
    server: &P,
    gun: &Gun,
    state: &RepoState,
) -> Result<(), RepoError> {
    let root = &state.root.signed;
    let keys = key_list(root, &root.roles.snapshot);
    if keys.iter().any(|k| held.for_key(k).is_some()) {
        return Ok(());
    }
    let server_key = server
        .server_key(&RoleName::SNAPSHOT)
        .await
        .map_err(RepoError::Server)?;
    if root.roles.snapshot.keyids.contains(&server_key.id()) {
        return Ok(());
    }
    Err(RepoError::NoSnapshotSigner { gun: gun.clone() })
}

/// Where a new repository's snapshot key comes from.
#[derive(Clone, Debug)]
pub enum SnapshotChoice {
    /// The server holds it (docker's choice).
    Server,
    /// This agent key.
    Key(String),
    /// A new agent key named after the repository (notary's default).
    NewKey,
}

/// The `Init` change for `gun`: the root key (given, else the agent key named `root`, made if
/// missing), the targets key (given, else a new one named after the GUN) and the snapshot key.
/// Returns the ID of a reused `root` key too, which notary reports.
pub async fn init_change(
    agent: &AgentClient,
    gun: &Gun,
    root_key: Option<&str>,
    targets_key: Option<&str>,
    snapshot: SnapshotChoice,
) -> Result<(Change, Option<String>), RepoError> {
    let (root, reused) = match root_key {
        Some(k) => (agent.key(k).await?, None),
        None => match agent.key("root").await {
            Ok(k) => {
                let id = k.id.to_string();
                (k, Some(id))
            }
            Err(_) => (key_named(agent, "root").await?, None),
        },
    };
    let base = key_name_for(gun);
    let targets = match targets_key {
        Some(k) => agent.key(k).await?,
        None => key_named(agent, &format!("{base}-targets")).await?,
    };
    let snapshot = match snapshot {
        SnapshotChoice::Server => SnapshotKey::Server,
        SnapshotChoice::Key(k) => SnapshotKey::Agent(agent.key(&k).await?.id.to_string()),
        SnapshotChoice::NewKey => SnapshotKey::Agent(
            key_named(agent, &format!("{base}-snapshot"))
                .await?
                .id
                .to_string(),
        ),
    };
    Ok((
        Change::Init {
            root_key: root.id.to_string(),
            targets_key: targets.id.to_string(),
            snapshot,
        },
        reused,
    ))
}

/// The agent key called `name`, generated if there is none.
async fn key_named(agent: &AgentClient, name: &str) -> Result<AgentKey, RepoError> {
    if let Ok(k) = agent.key(name).await {
        return Ok(k);
    }
    Ok(agent.generate_named(name).await?)
}

/// A free agent key name for a new `role` key of `gun`: `<repo>-<role>-2`, `-3`, ...
pub async fn next_key_name(
    agent: &AgentClient,
    gun: &Gun,
    role: &str,
) -> Result<String, RepoError> {
    let base = format!("{}-{role}", key_name_for(gun));
    let taken: BTreeSet<String> = agent
        .list_keys()
        .await?
        .into_iter()
        .map(|k| k.name)
        .collect();
    Ok((2..)
        .map(|n| format!("{base}-{n}"))
        .find(|name| !taken.contains(name))
        .expect("an unbounded range has a free name"))
}

/// A key name for a repository's keys: the GUN with separators replaced, shortened with a hash.
fn key_name_for(gun: &Gun) -> String {
    let clean: String = gun
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.len() <= 40 {
        return clean;
    }
    use sha2::Digest as _;
    let hash = hex::encode(&sha2::Sha256::digest(gun.as_str().as_bytes())[..4]);
    format!("{}_{hash}", &clean[..31])
}

/// Reads the repository's verified state from the server (`None` if it has none yet), updating
/// the cache.
pub async fn load_state<S: crate::tuf::RemoteStore>(
    remote: &S,
    cache: &crate::tuf::TrustCache,
    gun: &Gun,
    options: &crate::tuf::UpdateOptions,
) -> Result<Option<RepoState>, RepoError> {
    match crate::tuf::update(remote, cache, gun, options).await {
        Ok(verified) => Ok(Some(RepoState::from(verified))),
        Err(crate::tuf::UpdateError::RepositoryNotFound { .. }) => Ok(None),
        Err(e) => Err(RepoError::Update(Box::new(e))),
    }
}

/// As [`load_state`], with the cache written while the caller goes on (see
/// [`crate::tuf::update_deferred`]); `None` when there was nothing to read.
pub async fn load_state_deferred<S: crate::tuf::RemoteStore>(
    remote: &S,
    cache: &crate::tuf::TrustCache,
    gun: &Gun,
    options: &crate::tuf::UpdateOptions,
) -> Result<(Option<RepoState>, Option<crate::tuf::PendingCommit>), RepoError> {
    match crate::tuf::update_deferred(remote, cache, gun, options).await {
        Ok((verified, pending)) => Ok((Some(RepoState::from(verified)), Some(pending))),
        Err(crate::tuf::UpdateError::RepositoryNotFound { .. }) => Ok((None, None)),
        Err(e) => Err(RepoError::Update(Box::new(e))),
    }
}

/// Builds root v1 and an empty targets for a new repository.
pub async fn new_repository<P: Publisher>(
    agent: &AgentClient,
    held: &AgentKeys,
    server: &P,
    gun: &Gun,
    init: (&str, &str, &SnapshotKey),
    now: OffsetDateTime,
) -> Result<RepoState, RepoError> {
    let (root_id, targets_id, snapshot) = init;
    let root_agent_key = held.by_id(root_id).ok_or_else(|| RepoError::KeyGone {
        key: root_id.to_owned(),
    })?;
    let targets_agent_key = held.by_id(targets_id).ok_or_else(|| RepoError::KeyGone {
        key: targets_id.to_owned(),
    })?;
    let signer = agent.signer(root_agent_key, SignContext::new(gun, &RoleName::ROOT));
    let cert = crate::tuf::root_certificate(&signer, gun, now).await?;
    let root_key = crate::tuf::x509_public_key(&cert);
    let targets_key = targets_agent_key.public.clone();
    let snapshot_key = match snapshot {
        SnapshotKey::Server => server
            .server_key(&RoleName::SNAPSHOT)
            .await
            .map_err(RepoError::Server)?,
        SnapshotKey::Agent(id) => held
            .by_id(id)
            .ok_or_else(|| RepoError::KeyGone { key: id.clone() })?
            .public
            .clone(),
    };
    let timestamp_key = server
        .server_key(&RoleName::TIMESTAMP)
        .await
        .map_err(RepoError::Server)?;
    let keys: BTreeMap<KeyId, PublicKey> = [&root_key, &targets_key, &snapshot_key, &timestamp_key]
        .into_iter()
        .map(|k| (k.id(), k.clone()))
        .collect();
    let root = Root {
        version: 1,
        expires: expires_in(now, ROOT_LIFETIME)?,
        consistent_snapshot: false,
        keys,
        roles: RootRoles {
            root: RootRole::single(root_key.id()),
            targets: RootRole::single(targets_key.id()),
            snapshot: RootRole::single(snapshot_key.id()),
            timestamp: RootRole::single(timestamp_key.id()),
        },
    };
    let root = sign_role(agent, held, gun, &RoleName::ROOT, root, &[root_key], 1).await?;
    // Version 0: the first publish bumps it to 1 like any change.
    let targets = Signed::new(Targets::new(0, expires_in(now, ROLE_LIFETIME)?));
    Ok(RepoState {
        root,
        snapshot: None,
        targets: BTreeMap::from([(RoleName::TARGETS, targets)]),
    })
}

/// Applies changes to the targets roles; returns the roles they touched.
pub fn apply(state: &mut RepoState, changes: &[Change]) -> Result<BTreeSet<RoleName>, RepoError> {
    let mut dirty = BTreeSet::new();
    for change in changes {
        match change {
            Change::Init { .. } => {}
            Change::AddTarget {
                role,
                name,
                length,
                sha256,
                sha512,
                custom,
            } => {
                let role: RoleName = role.parse()?;
                check_path_allowed(state, &role, name)?;
                let digest = parse_sha256(sha256)?;
                let mut meta = FileMeta::of_target(*length, digest);
                if let Some(sha512) = sha512 {
                    meta.hashes.sha512 = Some(parse_sha512(sha512)?);
                }
                meta.custom = custom.clone();
                role_mut(state, &role)?.targets.insert(name.clone(), meta);
                dirty.insert(role);
            }
            Change::RemoveTarget { role, name } => {
                let role: RoleName = role.parse()?;
                role_mut(state, &role)?.targets.remove(name);
                dirty.insert(role);
            }
            Change::AddDelegation {
                role,
                keys,
                paths,
                threshold,
            } => {
                let role: RoleName = role.parse()?;
                let parent = delegation_parent(&role)?;
                let keys: Vec<PublicKey> = keys
                    .iter()
                    .map(|k| PublicKey::from_json(&role, k.to_string().as_bytes()))
                    .collect::<Result<_, _>>()?;
                let parent_role = role_mut(state, &parent)?;
                for k in &keys {
                    parent_role.delegations.keys.insert(k.id(), k.clone());
                }
                let entry = match parent_role
                    .delegations
                    .roles
                    .iter_mut()
                    .position(|d| d.name == role)
                {
                    Some(i) => &mut parent_role.delegations.roles[i],
                    None => {
                        parent_role.delegations.roles.push(Delegation {
                            name: role.clone(),
                            keyids: Vec::new(),
                            threshold: 1,
                            paths: Vec::new(),
                        });
                        parent_role
                            .delegations
                            .roles
                            .last_mut()
                            .expect("just pushed")
                    }
                };
                for k in &keys {
                    if !entry.keyids.contains(&k.id()) {
                        entry.keyids.push(k.id());
                    }
                }
                for p in paths {
                    if !entry.paths.contains(p) {
                        entry.paths.push(p.clone());
                    }
                }
                if *threshold > 0 {
                    entry.threshold = *threshold;
                }
                dirty.insert(parent);
            }
            Change::RemoveDelegationKeys { role, key_ids } => {
                let role: RoleName = role.parse()?;
                let parent = delegation_parent(&role)?;
                let parent_role = role_mut(state, &parent)?;
                if let Some(entry) = parent_role
                    .delegations
                    .roles
                    .iter_mut()
                    .find(|d| d.name == role)
                {
                    entry.keyids.retain(|id| !key_ids.contains(&id.to_string()));
                }
                prune_unused_keys(parent_role);
                dirty.insert(parent);
            }
            Change::Resign { role } => {
                let role: RoleName = role.parse()?;
                role_mut(state, &role)?;
                dirty.insert(role);
            }
            Change::RemoveDelegation { role } => {
                let role: RoleName = role.parse()?;
                let parent = delegation_parent(&role)?;
                let parent_role = role_mut(state, &parent)?;
                parent_role.delegations.roles.retain(|d| d.name != role);
                prune_unused_keys(parent_role);
                state.targets.retain(|name, _| name != &role);
                dirty.insert(parent);
            }
        }
    }
    Ok(dirty)
}

/// Re-signs the dirty roles and, when the agent holds it, a new snapshot; returns the files.
pub async fn sign_changes(
    agent: &AgentClient,
    held: &AgentKeys,
    gun: &Gun,
    state: &mut RepoState,
    dirty: &BTreeSet<RoleName>,
    publish_root: bool,
    now: OffsetDateTime,
) -> Result<Prepared, RepoError> {
    let mut files = Vec::new();
    if publish_root {
        files.push((RoleName::ROOT, state.root.to_bytes()?));
    }
    // Parents before children, so a child's keys are read from the parent as it will be published;
    // roles of one depth are independent, so they are signed at once.
    let mut order: Vec<RoleName> = dirty.iter().cloned().collect();
    order.sort_by_key(|r| r.as_str().matches('/').count());
    for depth in
        order.chunk_by(|a, b| a.as_str().matches('/').count() == b.as_str().matches('/').count())
    {
        let mut jobs = Vec::with_capacity(depth.len());
        for role in depth {
            let (keys, threshold) = signing_keys(state, role)?;
            let current = state
                .targets
                .get(role)
                .ok_or_else(|| RepoError::NoSuchRole { role: role.clone() })?;
            let mut body = current.signed.clone();
            body.version += 1;
            body.expires = expires_in(now, ROLE_LIFETIME)?;
            jobs.push(async move {
                let signed = sign_role(agent, held, gun, role, body, &keys, threshold).await?;
                Ok::<_, RepoError>((role, signed))
            });
        }
        for (role, signed) in futures_util::future::try_join_all(jobs).await? {
            files.push((role.clone(), signed.to_bytes()?));
            state.targets.insert(role.clone(), signed);
        }
    }
    // A snapshot the agent can sign goes with every publish (the server cannot make it).
    let snapshot_keys = key_list(&state.root.signed, &state.root.signed.roles.snapshot);
    if snapshot_keys.iter().any(|k| held.for_key(k).is_some()) {
        let mut meta = state
            .snapshot
            .as_ref()
            .map(|s| s.signed.meta.clone())
            .unwrap_or_default();
        for (role, bytes) in &files {
            meta.insert(role.clone(), FileMeta::of_metadata(bytes));
        }
        if let std::collections::btree_map::Entry::Vacant(e) = meta.entry(RoleName::ROOT) {
            e.insert(FileMeta::of_metadata(&state.root.to_bytes()?));
        }
        let body = Snapshot {
            version: state.snapshot.as_ref().map_or(0, |s| s.signed.version) + 1,
            expires: expires_in(now, ROLE_LIFETIME)?,
            meta,
        };
        let threshold = state.root.signed.roles.snapshot.threshold;
        let signed = sign_role(
            agent,
            held,
            gun,
            &RoleName::SNAPSHOT,
            body,
            &snapshot_keys,
            threshold,
        )
        .await?;
        files.push((RoleName::SNAPSHOT, signed.to_bytes()?));
        state.snapshot = Some(signed);
    }
    Ok(Prepared { files })
}

/// The keys and threshold that sign `role`: from root for `targets`, from the parent otherwise.
fn signing_keys(state: &RepoState, role: &RoleName) -> Result<(Vec<PublicKey>, u32), RepoError> {
    if *role == RoleName::TARGETS {
        let r = &state.root.signed;
        return Ok((key_list(r, &r.roles.targets), r.roles.targets.threshold));
    }
    let parent = delegation_parent(role)?;
    let parent_role = state
        .targets
        .get(&parent)
        .ok_or_else(|| RepoError::NoSuchRole {
            role: parent.clone(),
        })?;
    let d = parent_role
        .signed
        .delegation(role)
        .ok_or_else(|| RepoError::NoSuchRole { role: role.clone() })?;
    let keys = d
        .keyids
        .iter()
        .filter_map(|id| parent_role.signed.delegations.keys.get(id).cloned())
        .collect();
    Ok((keys, d.threshold))
}

fn key_list(root: &Root, role: &RootRole) -> Vec<PublicKey> {
    role.keyids
        .iter()
        .filter_map(|id| root.keys.get(id).cloned())
        .collect()
}

/// The targets body of `role`, creating an empty delegated role that its parent lists.
fn role_mut<'a>(state: &'a mut RepoState, role: &RoleName) -> Result<&'a mut Targets, RepoError> {
    if !state.targets.contains_key(role) {
        let listed = role.is_delegation()
            && delegation_parent(role)
                .ok()
                .and_then(|p| state.targets.get(&p))
                .is_some_and(|p| p.signed.delegation(role).is_some());
        if !listed {
            return Err(RepoError::NoSuchRole { role: role.clone() });
        }
        // A delegation that has never been published starts at version 0.
        let expires = state.root.signed.expires;
        state
            .targets
            .insert(role.clone(), Signed::new(Targets::new(0, expires)));
    }
    Ok(&mut state
        .targets
        .get_mut(role)
        .ok_or_else(|| RepoError::NoSuchRole { role: role.clone() })?
        .signed)
}

fn delegation_parent(role: &RoleName) -> Result<RoleName, RepoError> {
    role.parent()
        .ok_or_else(|| RepoError::NotADelegation { role: role.clone() })
}

fn check_path_allowed(state: &RepoState, role: &RoleName, name: &str) -> Result<(), RepoError> {
    if !role.is_delegation() {
        return Ok(());
    }
    let Some(parent) = role.parent().and_then(|p| state.targets.get(&p)) else {
        return Ok(());
    };
    if let Some(d) = parent.signed.delegation(role) {
        if !d.paths.iter().any(|p| name.starts_with(p.as_str())) {
            return Err(RepoError::PathNotDelegated {
                role: role.clone(),
                target: name.to_owned(),
                paths: d.paths.clone(),
            });
        }
    }
    Ok(())
}

fn prune_unused_keys(t: &mut Targets) {
    let used: BTreeSet<KeyId> = t
        .delegations
        .roles
        .iter()
        .flat_map(|d| d.keyids.iter().copied())
        .collect();
    t.delegations.keys.retain(|id, _| used.contains(id));
}

fn parse_sha256(hex_digest: &str) -> Result<Sha256Digest, RepoError> {
    parse_hex(hex_digest).map(Sha256Digest::from_bytes)
}

fn parse_sha512(hex_digest: &str) -> Result<crate::tuf::Sha512Digest, RepoError> {
    parse_hex(hex_digest).map(crate::tuf::Sha512Digest::from_bytes)
}

/// Exactly `N` bytes in hex (no `sha256:` prefix: the changelist records bare digests).
fn parse_hex<const N: usize>(hex_digest: &str) -> Result<[u8; N], RepoError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(hex_digest, &mut out).map_err(|_| RepoError::BadDigest {
        digest: hex_digest.to_owned(),
    })?;
    Ok(out)
}

fn expires_in(now: OffsetDateTime, lifetime: Duration) -> Result<Expires, RepoError> {
    Ok(Expires::new(now + lifetime)?)
}

/// Why a repository operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// The agent failed or refused.
    #[error(transparent)]
    Agent(#[from] AgentClientError),
    /// Metadata could not be built or checked.
    #[error(transparent)]
    Tuf(#[from] TufError),
    /// The root certificate could not be made.
    #[error(transparent)]
    Certificate(#[from] crate::tuf::CertificateError),
    /// The server failed.
    #[error("{0}")]
    Server(RemoteError),
    /// Reading the repository's current state failed verification or transport.
    #[error(transparent)]
    Update(Box<crate::tuf::UpdateError>),
    /// The agent holds too few keys of a role.
    #[error("cannot sign {role}: the agent holds {have} of its keys and the role needs {threshold}; load or generate the role's key in the agent (`tufa key list` shows what it holds)")]
    MissingKeys {
        /// The role.
        role: RoleName,
        /// Keys the agent holds.
        have: usize,
        /// Signatures needed.
        threshold: u32,
    },
    /// A key recorded at init is no longer in the agent.
    #[error("key {key} chosen when the repository was initialised is no longer in the agent: load it again, or drop the staged changes and init again")]
    KeyGone {
        /// The key ID.
        key: String,
    },
    /// A role that does not exist in the repository.
    #[error("role {role} does not exist in this repository: add it as a delegation first (`tufa notary delegation add`)")]
    NoSuchRole {
        /// The role.
        role: RoleName,
    },
    /// A top-level role where a delegation was expected.
    #[error("{role} is not a delegated role: delegations are named targets/<name>")]
    NotADelegation {
        /// The role.
        role: RoleName,
    },
    /// A target outside the role's delegated paths.
    #[error("{role} may not sign '{target}': its delegated paths are {paths:?}")]
    PathNotDelegated {
        /// The role.
        role: RoleName,
        /// The target.
        target: String,
        /// Its paths.
        paths: Vec<String>,
    },
    /// A digest that is not 64 hex digits.
    #[error("'{digest}' is not a SHA-256 digest (64 hex digits)")]
    BadDigest {
        /// The text given.
        digest: String,
    },
    /// The changelist cannot be read or written.
    #[error("changelist {path}: {detail}")]
    Changelist {
        /// Its path.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// Nothing exists to change.
    #[error("{gun} does not exist on the server and has not been initialised here: run `tufa notary init {gun}` first")]
    NotInitialised {
        /// The repository.
        gun: Gun,
    },
    /// The root must be renewed and the agent cannot sign it.
    #[error("the root of {gun} expires at {expires} and must be re-signed, but the agent does not hold its root key: load the root key into the agent (or run the offline root ceremony), then publish")]
    RootExpiring {
        /// The repository.
        gun: Gun,
        /// When the root expires.
        expires: String,
    },
    /// Neither the agent nor the server holds the snapshot key.
    #[error("cannot publish {gun}: its snapshot key is neither in the agent nor on the server; publish from where the snapshot key is, or let the server manage snapshots (`tufa root rotate {gun} --server-managed-snapshot`)")]
    NoSnapshotSigner {
        /// The repository.
        gun: Gun,
    },
    /// Publishing kept conflicting with other publishers.
    #[error(
        "{gun}: the server kept reporting newer versions after {attempts} attempts; try again"
    )]
    Conflict {
        /// The repository.
        gun: Gun,
        /// Attempts made.
        attempts: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str) -> Change {
        Change::AddTarget {
            role: "targets".into(),
            name: name.into(),
            length: 1,
            sha256: "ab".repeat(32),
            sha512: None,
            custom: None,
        }
    }

    fn gun() -> Gun {
        "example.com/app".parse().unwrap()
    }

    #[test]
    fn changes_come_back_in_staging_order() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Changelist::new(dir.path(), &gun())
            .list()
            .unwrap()
            .is_empty());
        let names: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
        // Each change from a new handle, as each `tufa notary addhash` process does.
        for name in &names[..3] {
            Changelist::new(dir.path(), &gun())
                .add(target(name))
                .unwrap();
        }
        Changelist::new(dir.path(), &gun())
            .add_all(names[3..].iter().map(|n| target(n)))
            .unwrap();
        let all = Changelist::new(dir.path(), &gun()).list().unwrap();
        assert_eq!(all, names.iter().map(|n| target(n)).collect::<Vec<_>>());
    }

    #[test]
    fn an_older_changelist_json_is_read_first_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("tuf/example.com/app");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(
            base.join("changelist.json"),
            serde_json::to_vec(&[target("old")]).unwrap(),
        )
        .unwrap();
        let list = Changelist::new(dir.path(), &gun());
        list.add(target("new")).unwrap();
        assert_eq!(list.list().unwrap(), vec![target("old"), target("new")]);
        list.clear().unwrap();
        assert!(list.list().unwrap().is_empty());
        assert!(!base.join("changelist.json").exists());
    }

    #[test]
    fn a_line_cut_short_is_ignored_then_cut_off_and_a_broken_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let list = Changelist::new(dir.path(), &gun());
        list.add(target("a")).unwrap();
        let path = dir.path().join("tuf/example.com/app/tufa-changes.jsonl");
        // A writer that died mid-line.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"type\":\"add_tar").unwrap();
        assert_eq!(list.list().unwrap(), vec![target("a")]);
        list.add(target("b")).unwrap();
        assert_eq!(list.list().unwrap(), vec![target("a"), target("b")]);
        // A complete line that is not a change is an error that names the file and line.
        file.write_all(b"{\"type\":\"nonsense\"}\n").unwrap();
        let err = list.list().unwrap_err().to_string();
        assert!(
            err.contains("tufa-changes.jsonl") && err.contains("line 3"),
            "{err}"
        );
        list.clear().unwrap();
        assert!(list.list().unwrap().is_empty());
        assert!(!path.exists());
    }
}
