//! tufa's marker object: a small data object next to each key, naming it.
//!
//! The object is `0x5F5400 | slot` (YubiKeys accept any data object in 0x5F0000-0x5FFFFF) and
//! holds the JSON `{"tufa":1,"name":NAME,"key_id":ID}`, or `{"tufa":1,"deleted":ID}` for a key
//! tufa deleted (PIV cannot erase a private key before firmware 5.7). The slot's certificate
//! object stays free for the client.

use serde::{Deserialize, Serialize};
use yubikey::YubiKey;

use crate::backend::PivSlot;
use crate::error::AgentError;
use crate::keys::{KeyId, KeyName};

/// tufa's marker object in a slot.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Marker {
    tufa: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleted: Option<String>,
}

/// What a marker says about its slot's key.
#[derive(Debug, PartialEq, Eq)]
pub enum Says<'a> {
    /// A tufa key of this name and key ID (as written; the caller checks the ID).
    Key {
        /// The name.
        name: &'a str,
        /// The key ID, hex.
        key_id: &'a str,
    },
    /// tufa deleted the key with this ID.
    Deleted(&'a str),
    /// Nothing tufa can use.
    Nothing,
}

impl Marker {
    /// The marker of a new key.
    pub fn key(name: &KeyName, id: &KeyId) -> Self {
        Self {
            tufa: 1,
            name: Some(name.as_str().to_owned()),
            key_id: Some(id.to_string()),
            deleted: None,
        }
    }

    /// The marker of a key tufa deleted: its slot is free again.
    pub fn deleted(id: &KeyId) -> Self {
        Self {
            tufa: 1,
            name: None,
            key_id: None,
            deleted: Some(id.to_string()),
        }
    }

    /// What the marker says.
    pub fn says(&self) -> Says<'_> {
        match (&self.deleted, &self.name, &self.key_id) {
            (Some(id), _, _) => Says::Deleted(id),
            (None, Some(name), Some(key_id)) => Says::Key { name, key_id },
            _ => Says::Nothing,
        }
    }

    /// Reads a slot's marker: `None` when there is none or it is not tufa's JSON.
    pub fn read(yk: &mut YubiKey, slot: PivSlot) -> Result<Option<Self>, yubikey::Error> {
        match yk.fetch_object(object(slot)) {
            Ok(buf) => Ok(serde_json::from_slice(&buf).ok()),
            Err(e @ yubikey::Error::PcscError { .. }) => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// The bytes to store.
    pub fn encode(&self) -> Result<Vec<u8>, AgentError> {
        serde_json::to_vec(self)
            .map_err(|e| AgentError::Internal(format!("encoding the slot marker: {e}")))
    }
}

/// The object holding tufa's marker for a slot.
pub fn object(slot: PivSlot) -> u32 {
    0x005F_5400 | u32::from(slot.byte())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        let name: KeyName = "alice".parse().unwrap();
        let id = KeyId::from_bytes([0xab; 32]);
        let m = Marker::key(&name, &id);
        let json = String::from_utf8(m.encode().unwrap()).unwrap();
        assert_eq!(
            json,
            format!(r#"{{"tufa":1,"name":"alice","key_id":"{id}"}}"#)
        );
        assert_eq!(serde_json::from_str::<Marker>(&json).unwrap(), m);
        let hex = id.to_string();
        assert_eq!(
            m.says(),
            Says::Key {
                name: "alice",
                key_id: &hex
            }
        );
        let gone = Marker::deleted(&id);
        assert_eq!(
            String::from_utf8(gone.encode().unwrap()).unwrap(),
            format!(r#"{{"tufa":1,"deleted":"{id}"}}"#)
        );
        assert_eq!(gone.says(), Says::Deleted(&hex));
    }

    #[test]
    fn objects_are_in_tufa_range() {
        assert_eq!(object("9a".parse().unwrap()), 0x005F_549A);
    }
}
