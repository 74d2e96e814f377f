//! Signing with the agent's keys: which keys the agent holds ([`AgentKeys`]), one role signed
//! and checked ([`sign_role`]), and every role a publish changes ([`sign_changes`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use time::OffsetDateTime;

use crate::agent::{AgentClient, AgentKey, SignContext};
use crate::repo::change::delegation_parent;
use crate::repo::error::RepoError;
use crate::repo::state::RepoState;
use crate::tuf::{
    Expires, FileMeta, Gun, KeyId, Metadata, PublicKey, RoleKeys, RoleName, Root, RootRole,
    Signature, SignatureMethod, Signed, Snapshot, TufError,
};

/// Lifetime of a root Notary signs: 10 years.
pub const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Lifetime of targets, delegations and a client-signed snapshot: 3 years.
pub const ROLE_LIFETIME: Duration = Duration::from_secs(3 * 365 * 24 * 3600);
/// How long before its expiry a root is re-signed: six months, as Notary.
pub const ROOT_RENEWAL: Duration = Duration::from_secs(182 * 24 * 3600);

/// The agent's keys by their canonical key ID (what a role's keys map to).
pub struct AgentKeys {
    by_id: HashMap<KeyId, AgentKey>,
    // Keys the agent keeps for notary-server: they sign only for it, never for this client.
    server: HashMap<KeyId, AgentKey>,
}

impl AgentKeys {
    /// Reads the agent's key list once (a key the agent describes wrongly is an error, from
    /// [`AgentClient::list_keys`]).
    pub async fn load(agent: &AgentClient) -> Result<Self, RepoError> {
        let keys = agent.list_keys().await?;
        let (server, own): (Vec<_>, Vec<_>) = keys.into_iter().partition(|k| k.server.is_some());
        Ok(Self {
            by_id: own.into_iter().map(|k| (k.id, k)).collect(),
            server: server.into_iter().map(|k| (k.id, k)).collect(),
        })
    }

    /// A key the agent keeps for notary-server (its notary-signer listener signs with it), by
    /// canonical ID.
    pub fn server_key(&self, id: &KeyId) -> Option<&AgentKey> {
        self.server.get(id)
    }

    /// The agent key behind a TUF key, if the agent holds it.
    pub fn for_key(&self, key: &PublicKey) -> Option<&AgentKey> {
        key.canonical_id().ok().and_then(|id| self.by_id.get(&id))
    }

    /// An agent key by ID.
    pub fn by_id(&self, id: &KeyId) -> Option<&AgentKey> {
        self.by_id.get(id)
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
            sig: sig.as_bytes().to_vec(),
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

/// Whether the root is within [`ROOT_RENEWAL`] of expiry: the next publish re-signs it.
pub(crate) fn root_needs_renewal(state: &RepoState, now: OffsetDateTime) -> bool {
    state.root.signed.expires.is_expired_at(now + ROOT_RENEWAL)
}

/// Re-signs the root unchanged but for version + 1 and a fresh 10-year expiry.
pub(crate) async fn renew(
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

/// Re-signs the dirty roles and, when the agent holds it, a new snapshot; returns the files.
pub async fn sign_changes(
    agent: &AgentClient,
    held: &AgentKeys,
    gun: &Gun,
    state: &mut RepoState,
    dirty: &BTreeSet<RoleName>,
    publish_root: bool,
    now: OffsetDateTime,
) -> Result<Vec<(RoleName, Vec<u8>)>, RepoError> {
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
    Ok(files)
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

pub(crate) fn key_list(root: &Root, role: &RootRole) -> Vec<PublicKey> {
    role.keyids
        .iter()
        .filter_map(|id| root.keys.get(id).cloned())
        .collect()
}

/// `now` + `lifetime`, as metadata writes it.
pub(crate) fn expires_in(now: OffsetDateTime, lifetime: Duration) -> Result<Expires, RepoError> {
    Ok(Expires::new(now + lifetime).map_err(TufError::from)?)
}
