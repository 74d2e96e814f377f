//! What marks a key as notary-server's: the GUN and role it was made for through tufad's
//! notary-signer interface, and whether it has signed yet.
//!
//! Devices store a tag next to the key (on a PKCS#11 token, a data object), so a restarted
//! agent, or a second agent on the same networked token, knows its server keys from the device
//! alone. Only tagged keys can be seen or used through the notary-signer interface.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::keys::KeyId;

/// The roles notary-server keeps keys for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerRole {
    /// The timestamp role (always the server's).
    Timestamp,
    /// The snapshot role (the server's in docker's layout, or after `key rotate snapshot -r`).
    Snapshot,
}

impl ServerRole {
    /// The TUF role name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timestamp => "timestamp",
            Self::Snapshot => "snapshot",
        }
    }
}

impl fmt::Display for ServerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role notary-server may not keep a key for here.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("role '{0}' is not a server role: tufad keeps only timestamp and snapshot keys for notary-server (root, targets and delegation keys stay with their owners)")]
pub struct NotAServerRole(pub String);

impl FromStr for ServerRole {
    type Err = NotAServerRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "timestamp" => Ok(Self::Timestamp),
            "snapshot" => Ok(Self::Snapshot),
            other => Err(NotAServerRole(other.to_owned())),
        }
    }
}

/// A server key's tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTag {
    /// The key.
    pub key_id: KeyId,
    /// The GUN it was made for.
    pub gun: String,
    /// The role it was made for.
    pub role: ServerRole,
    /// It has signed something; a key that never has is reused for the same GUN and role.
    pub used: bool,
}

/// The tag's stored form, JSON: `{"tufa":1,"key_id":ID,"gun":GUN,"role":ROLE,"used":BOOL}`.
#[derive(Serialize, Deserialize)]
struct Stored {
    tufa: u8,
    key_id: String,
    gun: String,
    role: ServerRole,
    used: bool,
}

impl ServerTag {
    /// The bytes a device stores.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&Stored {
            tufa: 1,
            key_id: self.key_id.to_string(),
            gun: self.gun.clone(),
            role: self.role,
            used: self.used,
        })
        .expect("a tag encodes")
    }

    /// Reads stored bytes; `None` when they are not a tag tufa wrote.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let s: Stored = serde_json::from_slice(bytes).ok()?;
        (s.tufa == 1).then_some(())?;
        Some(Self {
            key_id: s.key_id.parse().ok()?,
            gun: s.gun,
            role: s.role,
            used: s.used,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        let tag = ServerTag {
            key_id: KeyId::from_bytes([0xcd; 32]),
            gun: "registry.example.com/team/app".into(),
            role: ServerRole::Snapshot,
            used: false,
        };
        let bytes = tag.encode();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            format!(
                r#"{{"tufa":1,"key_id":"{}","gun":"registry.example.com/team/app","role":"snapshot","used":false}}"#,
                tag.key_id
            )
        );
        assert_eq!(ServerTag::decode(&bytes), Some(tag));
        assert_eq!(ServerTag::decode(b"{\"tufa\":2}"), None);
        assert_eq!(ServerTag::decode(b"not json"), None);
    }

    #[test]
    fn only_timestamp_and_snapshot_are_server_roles() {
        assert_eq!("timestamp".parse(), Ok(ServerRole::Timestamp));
        assert_eq!("snapshot".parse(), Ok(ServerRole::Snapshot));
        for bad in ["root", "targets", "targets/releases", "Timestamp", ""] {
            assert!(bad.parse::<ServerRole>().is_err(), "{bad}");
        }
    }
}
