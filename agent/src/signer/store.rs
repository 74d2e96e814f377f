//! The server keys: the tagged keys on the one device that serves notary-server, and the only
//! keys the notary-signer interface can see or use.
//!
//! The device is the source of truth (a restarted agent, or a second agent on the same
//! networked token, reads the same tags); a key found once is remembered, so a publish's
//! `GetKeyInfo` and `Sign` cost no device lookup after the first. Every method blocks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use crate::backend::{Backend, GenerateSpec, KeyInfo, Placement, TouchPolicy};
use crate::error::AgentError;
use crate::keyring::{Keyring, NewKey};
use crate::keys::{KeyId, KeyName, KeyRef};
use crate::tag::{ServerRole, ServerTag};

/// A server key: the key as its device reports it, and its tag.
#[derive(Clone, Debug)]
pub struct ServerKey {
    /// The key.
    pub key: KeyInfo,
    /// What it is for.
    pub tag: ServerTag,
}

/// What [`ServerKeys::create`] did.
#[derive(Debug)]
pub enum Created {
    /// A key of this GUN and role that never signed was handed out again.
    Reused(ServerKey),
    /// A new key was generated and tagged.
    New(ServerKey),
}

/// The server keys on one device.
pub struct ServerKeys {
    keyring: Arc<Keyring>,
    device: Arc<dyn Backend>,
    known: RwLock<HashMap<KeyId, ServerKey>>,
    // One create at a time: the reuse check and the new key must not race.
    create: Mutex<()>,
}

impl ServerKeys {
    /// The server keys of `device`, one of `keyring`'s devices.
    pub fn new(keyring: Arc<Keyring>, device: Arc<dyn Backend>) -> Self {
        Self {
            keyring,
            device,
            known: RwLock::new(HashMap::new()),
            create: Mutex::new(()),
        }
    }

    /// The device.
    pub fn device(&self) -> &Arc<dyn Backend> {
        &self.device
    }

    fn not_found(id: &KeyId) -> AgentError {
        AgentError::KeyNotFound {
            key: format!("{id} (among tufad's notary-server keys)"),
        }
    }

    /// Every server key on the device, read from it.
    pub fn list(&self) -> Result<Vec<ServerKey>, AgentError> {
        let tags = self.device.server_tags()?;
        let keys = self.device.keys()?;
        Ok(tags
            .into_iter()
            .filter_map(|tag| {
                let key = keys.iter().find(|k| k.id == tag.key_id)?.clone();
                Some(ServerKey { key, tag })
            })
            .collect())
    }

    /// A server key by ID: `NotFound` for any key that is not a tagged key on the device, a
    /// user's key on the same token included.
    pub fn get(&self, id: &KeyId) -> Result<ServerKey, AgentError> {
        if let Some(k) = self.read_known().get(id) {
            return Ok(k.clone());
        }
        let tag = self
            .device
            .server_tag(id)?
            .ok_or_else(|| Self::not_found(id))?;
        let found = match self.keyring.resolve(&KeyRef::Id(*id)) {
            Ok(f) if Arc::ptr_eq(&f.device, &self.device) => f,
            Ok(_) | Err(AgentError::KeyNotFound { .. }) => return Err(Self::not_found(id)),
            Err(e) => return Err(e),
        };
        let k = ServerKey {
            key: found.key,
            tag,
        };
        self.remember(&k);
        Ok(k)
    }

    /// A key for `gun` and `role`: one of theirs that never signed, else a new one, tagged
    /// before it is handed out (a key that cannot be tagged is deleted again).
    pub fn create(&self, gun: &str, role: ServerRole) -> Result<Created, AgentError> {
        let _one = self.create.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = self
            .list()?
            .into_iter()
            .find(|k| k.tag.gun == gun && k.tag.role == role && !k.tag.used)
        {
            self.remember(&k);
            return Ok(Created::Reused(k));
        }
        let new = NewKey {
            spec: GenerateSpec {
                name: new_name(role),
                placement: Placement::Default,
            },
            kind: Some(self.device.kind()),
            device: Some(self.device.name().to_owned()),
        };
        let key = self.keyring.generate(&new)?;
        let tag = ServerTag {
            key_id: key.id,
            gun: gun.to_owned(),
            role,
            used: false,
        };
        if let Err(e) = self.device.set_server_tag(&tag) {
            return Err(match self.keyring.delete(&KeyRef::Id(key.id)) {
                Ok(_) => e,
                Err(d) => AgentError::Internal(format!(
                    "{e}; the untagged new key {} could not be deleted again ({d}): delete it with `tufa key delete {}`",
                    key.id, key.id
                )),
            });
        }
        let k = ServerKey { key, tag };
        self.remember(&k);
        Ok(Created::New(k))
    }

    /// Records on the device, once, that a key has signed, so it is never handed out again by
    /// [`ServerKeys::create`]; called before its first signature leaves.
    pub fn mark_used(&self, k: &ServerKey) -> Result<(), AgentError> {
        if k.tag.used {
            return Ok(());
        }
        // Another agent on the same token may have marked it already.
        let mut tag = self
            .device
            .server_tag(&k.key.id)?
            .ok_or_else(|| Self::not_found(&k.key.id))?;
        if !tag.used {
            tag.used = true;
            self.device.set_server_tag(&tag)?;
        }
        self.remember(&ServerKey {
            key: k.key.clone(),
            tag,
        });
        Ok(())
    }

    /// Deletes a key (and its tag) from the device.
    pub fn delete(&self, id: &KeyId) -> Result<(), AgentError> {
        self.forget(id);
        self.keyring.delete(&KeyRef::Id(*id)).map(drop)
    }

    /// Forgets a remembered key (it was deleted, or the device no longer has it).
    pub fn forget(&self, id: &KeyId) {
        self.known
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Why the device cannot serve unattended, if it cannot: a server key that waits for a
    /// touch would hang notary-server's requests (they have no deadline).
    pub fn attended_keys(&self) -> Result<Vec<ServerKey>, AgentError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|k| {
                matches!(
                    k.key.touch_policy,
                    TouchPolicy::Always | TouchPolicy::Cached
                )
            })
            .collect())
    }

    fn read_known(&self) -> std::sync::RwLockReadGuard<'_, HashMap<KeyId, ServerKey>> {
        self.known.read().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, k: &ServerKey) {
        self.known
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(k.key.id, k.clone());
    }
}

/// A new server key's name: `server-ROLE-` and 12 random hex digits (names are unique per
/// agent; the tag, not the name, is what makes it a server key).
fn new_name(role: ServerRole) -> KeyName {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).expect("the OS random generator failed");
    format!("server-{role}-{}", hex::encode(b))
        .parse()
        .expect("a valid key name")
}
