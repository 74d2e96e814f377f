//! Adding signatures to a request with this agent's root keys.

use std::collections::BTreeSet;

use crate::agent::{AgentClient, SignContext};
use crate::ceremony::error::CeremonyError;
use crate::ceremony::request::RootRequest;
use crate::repo::AgentKeys;
use crate::tuf::{KeyId, RoleName, Signature, SignatureMethod};

impl RootRequest {
    /// Signs with the agent: with `only` (an agent key reference) or else with every agent key
    /// the request still needs whose device is present (an offline machine has one YubiKey
    /// plugged in at a time).
    pub async fn sign(
        &mut self,
        agent: &AgentClient,
        only: Option<&str>,
    ) -> Result<SignReport, CeremonyError> {
        let held = AgentKeys::load(agent).await?;
        let signed: BTreeSet<KeyId> = self.root.signatures.iter().map(|s| s.key_id).collect();
        let wanted = self.all_keys();
        let only_id = match only {
            Some(r) => Some(agent.key(r).await?.id),
            None => None,
        };
        let mut todo = Vec::new();
        for (id, key) in &wanted {
            let Some(agent_key) = held.for_key(key) else {
                continue;
            };
            if only_id.is_some_and(|o| o != agent_key.id) {
                continue;
            }
            todo.push((*id, key.clone(), agent_key.clone()));
        }
        let needed: Vec<String> = wanted
            .iter()
            .filter(|(id, _)| !signed.contains(id))
            .map(|(_, k)| k.canonical_id().map(|c| c.to_string()).unwrap_or_default())
            .collect();
        if todo.is_empty() {
            return Err(match only {
                Some(r) => CeremonyError::NotARootKey {
                    key: r.to_owned(),
                    needed: needed.join(", "),
                },
                None => CeremonyError::NoKeyHere {
                    needed: needed.join(", "),
                },
            });
        }
        let bytes = self.root.signed_bytes()?;
        let context = SignContext::new(&self.gun, &RoleName::ROOT);
        let mut added = Vec::new();
        let mut absent = Vec::new();
        for (id, key, agent_key) in todo {
            if signed.contains(&id) {
                if only.is_some() {
                    return Err(CeremonyError::AlreadySigned {
                        key: agent_key.id.to_string(),
                    });
                }
                continue;
            }
            let sig = match agent.sign(&agent_key, &bytes, &context).await {
                Ok(sig) => sig,
                // Without --key, a device that is not plugged in is for another time.
                Err(e) if only.is_none() && e.code() == Some(tonic::Code::Unavailable) => {
                    absent.push(Absent {
                        key: id,
                        detail: e.to_string(),
                    });
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            crate::tuf::verify_signature(&key, &SignatureMethod::Ecdsa, &bytes, sig.as_bytes())?;
            self.root.signatures.push(Signature {
                key_id: id,
                method: SignatureMethod::Ecdsa,
                sig: sig.as_bytes().to_vec(),
            });
            added.push(id);
        }
        if added.is_empty() {
            if !absent.is_empty() {
                return Err(CeremonyError::DevicesAbsent {
                    detail: absent
                        .iter()
                        .map(|a| a.detail.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                });
            }
            return Err(CeremonyError::NothingToSign);
        }
        Ok(SignReport { added, absent })
    }

    /// Signs with every root key this agent holds ([`Self::sign`] without `only`), and refuses
    /// unless that meets every threshold: a rotation this agent signs and publishes at once.
    pub async fn sign_here(&mut self, agent: &AgentClient) -> Result<(), CeremonyError> {
        let gun = self.gun.clone();
        self.sign(agent, None).await.map_err(|e| match e {
            CeremonyError::NoKeyHere { .. } => CeremonyError::NoRootKeyHere { gun: gun.clone() },
            other => other,
        })?;
        if !self.complete() {
            return Err(CeremonyError::TooFewRootKeysHere {
                gun,
                summary: self.summary(),
            });
        }
        Ok(())
    }
}

/// What `sign` did.
#[derive(Debug)]
pub struct SignReport {
    /// The keys that signed (TUF IDs).
    pub added: Vec<KeyId>,
    /// Keys skipped because their device is not plugged in.
    pub absent: Vec<Absent>,
}

/// A key whose device was absent.
#[derive(Debug)]
pub struct Absent {
    /// Its TUF ID.
    pub key: KeyId,
    /// The agent's words.
    pub detail: String,
}
