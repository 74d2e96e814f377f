//! Creating a repository: the [`Change::Init`] that `init` stages (which agent keys, made when
//! missing and named after the GUN), and the first root and targets it turns into at publish.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use crate::agent::{AgentClient, AgentKey, SignContext};
use crate::repo::change::{Change, SnapshotKey};
use crate::repo::error::RepoError;
use crate::repo::publish::Publisher;
use crate::repo::sign::{expires_in, sign_role, AgentKeys, ROLE_LIFETIME, ROOT_LIFETIME};
use crate::repo::state::RepoState;
use crate::tuf::{Gun, KeyId, PublicKey, RoleName, Root, RootRole, RootRoles, Signed, Targets};

/// Where a new repository's snapshot key comes from.
#[derive(Clone, Debug)]
pub enum SnapshotChoice {
    /// The server holds it (docker's choice).
    Server,
    /// This agent key (a reference the agent resolves).
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
) -> Result<(Change, Option<KeyId>), RepoError> {
    let (root, reused) = match root_key {
        Some(k) => (agent.key(k).await?, None),
        None => match agent.key("root").await {
            Ok(k) => {
                let id = k.id;
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
        SnapshotChoice::Key(k) => SnapshotKey::Agent(agent.key(&k).await?.id),
        SnapshotChoice::NewKey => {
            SnapshotKey::Agent(key_named(agent, &format!("{base}-snapshot")).await?.id)
        }
    };
    Ok((
        Change::Init {
            root_key: root.id,
            targets_key: targets.id,
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
    role: &RoleName,
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
pub fn key_name_for(gun: &Gun) -> String {
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

/// Builds root v1 and an empty targets for a new repository.
pub async fn new_repository<P: Publisher>(
    agent: &AgentClient,
    held: &AgentKeys,
    server: &P,
    gun: &Gun,
    init: (&KeyId, &KeyId, &SnapshotKey),
    now: OffsetDateTime,
) -> Result<RepoState, RepoError> {
    let (root_id, targets_id, snapshot) = init;
    let held_key = |id: &KeyId| held.by_id(id).ok_or(RepoError::KeyGone { key: *id });
    let root_agent_key = held_key(root_id)?;
    let targets_agent_key = held_key(targets_id)?;
    let signer = agent.signer(root_agent_key, SignContext::new(gun, &RoleName::ROOT));
    let root_key = crate::tuf::root_certificate_key(&signer, gun, now).await?;
    let targets_key = targets_agent_key.public.clone();
    let snapshot_key = match snapshot {
        SnapshotKey::Server => server
            .server_key(&RoleName::SNAPSHOT)
            .await
            .map_err(RepoError::Server)?,
        SnapshotKey::Agent(id) => held_key(id)?.public.clone(),
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
