//! `root.json`: every key of the repository's base roles and which keys sign which role.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tufa_proto::KeyId;

use crate::tuf::envelope::Metadata;
use crate::tuf::error::TufError;
use crate::tuf::expires::Expires;
use crate::tuf::key::{self, PublicKey};
use crate::tuf::role::{InvalidRoleName, RoleName};
use crate::tuf::verify::RoleKeys;
use crate::tuf::wire::Fields;

/// The body of `root.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct Root {
    /// The version, from 1.
    pub version: u64,
    /// When the file stops being trusted.
    pub expires: Expires,
    /// Always `false` in repositories Notary writes.
    pub consistent_snapshot: bool,
    /// Every key of the four base roles, by TUF key ID. Old root certificates stay here after a
    /// root rotation, as Notary keeps them.
    pub keys: BTreeMap<KeyId, PublicKey>,
    /// The key IDs and threshold of each base role.
    pub roles: RootRoles,
}

/// The `roles` object of root: exactly the four base roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootRoles {
    /// Keys that sign `root.json`.
    pub root: RootRole,
    /// Keys that sign `targets.json`.
    pub targets: RootRole,
    /// Keys that sign `snapshot.json`.
    pub snapshot: RootRole,
    /// Keys that sign `timestamp.json`.
    pub timestamp: RootRole,
}

/// One base role in root: `{"keyids":[…],"threshold":N}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootRole {
    /// The role's key IDs, in file order.
    pub keyids: Vec<KeyId>,
    /// How many distinct keys must sign.
    pub threshold: u32,
}

impl Root {
    /// The keys and threshold of base role `role`, checked against `keys`.
    pub fn role_keys(&self, role: &RoleName) -> Result<RoleKeys, TufError> {
        let spec = self.roles.get(role).ok_or_else(|| InvalidRoleName {
            name: role.to_string(),
            problem: "root.json only lists root, targets, snapshot and timestamp",
        })?;
        RoleKeys::new(
            role.clone(),
            &RoleName::ROOT,
            &spec.keyids,
            &self.keys,
            spec.threshold,
        )
    }
}

impl RootRoles {
    /// The entry for base role `role`, or `None` for a delegation.
    pub fn get(&self, role: &RoleName) -> Option<&RootRole> {
        match role.as_str() {
            "root" => Some(&self.root),
            "targets" => Some(&self.targets),
            "snapshot" => Some(&self.snapshot),
            "timestamp" => Some(&self.timestamp),
            _ => None,
        }
    }
}

impl RootRole {
    /// A role with one key and threshold 1, as Notary always creates them.
    pub fn single(keyid: KeyId) -> Self {
        Self {
            keyids: vec![keyid],
            threshold: 1,
        }
    }

    fn to_value(&self) -> Value {
        json!({
            "keyids": self.keyids.iter().map(KeyId::to_string).collect::<Vec<_>>(),
            "threshold": self.threshold,
        })
    }

    fn from_fields(fields: &Fields<'_>) -> Result<Self, TufError> {
        Ok(Self {
            keyids: fields.key_ids("keyids")?,
            threshold: fields.threshold()?,
        })
    }
}

impl Metadata for Root {
    const TYPE: &'static str = "Root";

    fn to_value(&self) -> Value {
        json!({
            "_type": Self::TYPE,
            "consistent_snapshot": self.consistent_snapshot,
            "expires": self.expires.to_string(),
            "keys": key::keys_value(&self.keys),
            "roles": {
                "root": self.roles.root.to_value(),
                "snapshot": self.roles.snapshot.to_value(),
                "targets": self.roles.targets.to_value(),
                "timestamp": self.roles.timestamp.to_value(),
            },
            "version": self.version,
        })
    }

    fn from_value(role: &RoleName, value: &Value) -> Result<Self, TufError> {
        let fields = Fields::new(role, "signed".into(), value)?;
        if *role != RoleName::ROOT {
            return Err(fields.error("_type", format!("{} is not the body of {role}", Self::TYPE)));
        }
        fields.check_type(Self::TYPE)?;
        let keys = key::read_keys(&fields, "keys")?;
        let roles_fields = fields
            .nested("roles")?
            .ok_or_else(|| fields.error("roles", "is missing"))?;
        let mut found: BTreeMap<&str, RootRole> = BTreeMap::new();
        for (name, value) in roles_fields.entries() {
            if !matches!(name.as_str(), "root" | "targets" | "snapshot" | "timestamp") {
                return Err(roles_fields.error(name, "is not a base role; Notary roots list only root, targets, snapshot and timestamp"));
            }
            let spec = RootRole::from_fields(&Fields::new(role, roles_fields.child(name), value)?)?;
            // Notary rejects a root whose roles name keys it does not carry.
            if let Some(missing) = spec.keyids.iter().find(|id| !keys.contains_key(id)) {
                return Err(TufError::MissingKey {
                    role: RoleName::new(name)?,
                    key_id: *missing,
                    listed_in: RoleName::ROOT,
                });
            }
            found.insert(name.as_str(), spec);
        }
        let mut take = |name: &str| {
            found.remove(name).ok_or_else(|| {
                roles_fields.error(name, "is missing; every root lists all four base roles")
            })
        };
        let roles = RootRoles {
            root: take("root")?,
            targets: take("targets")?,
            snapshot: take("snapshot")?,
            timestamp: take("timestamp")?,
        };
        Ok(Self {
            version: fields.version()?,
            expires: fields.expires()?,
            // Go reads a missing member as false.
            consistent_snapshot: match fields.get("consistent_snapshot") {
                None => false,
                Some(_) => fields.bool("consistent_snapshot")?,
            },
            keys,
            roles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuf::Signed;

    const KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7fcdmR1hF757+0P9uX9HCQHvS0hu84xd6vESm8Y899OVXKTstClAW3FbbbIbiiIgDECYgZm7PksOo+ljyhSPWw==";
    const KEY_ID: &str = "8c524f91aff70d4f305c6b5b2d24a269cf1c574342c737562b2c97b65d5d0b5b";

    fn root_with_roles(roles: &str) -> String {
        format!(
            r#"{{"signed":{{"_type":"Root","consistent_snapshot":false,"expires":"2036-11-19T04:01:26.074673629Z","keys":{{"{KEY_ID}":{{"keytype":"ecdsa","keyval":{{"private":null,"public":"{KEY}"}}}}}},"roles":{roles},"version":1}},"signatures":[]}}"#
        )
    }

    fn role(name: &str) -> String {
        format!(r#""{name}":{{"keyids":["{KEY_ID}"],"threshold":1}}"#)
    }

    #[test]
    fn round_trips_and_resolves_role_keys() {
        let roles = format!(
            "{{{},{},{},{}}}",
            role("root"),
            role("snapshot"),
            role("targets"),
            role("timestamp")
        );
        let text = root_with_roles(&roles);
        let file = Signed::<Root>::from_slice(&RoleName::ROOT, text.as_bytes()).unwrap();
        assert_eq!(file.to_bytes().unwrap(), text.as_bytes());
        let keys = file.signed.role_keys(&RoleName::TIMESTAMP).unwrap();
        assert_eq!(keys.threshold(), 1);
        assert_eq!(keys.keys().keys().next().unwrap().to_string(), KEY_ID);
        assert!(file.signed.role_keys(&RoleName::RELEASES).is_err());
    }

    #[test]
    fn needs_exactly_the_base_roles() {
        let three = format!(
            "{{{},{},{}}}",
            role("root"),
            role("snapshot"),
            role("targets")
        );
        let err = Signed::<Root>::from_slice(&RoleName::ROOT, root_with_roles(&three).as_bytes())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("`signed.roles.timestamp` is missing"),
            "{err}"
        );

        let five = format!(
            "{{{},{},{},{},{}}}",
            role("root"),
            role("snapshot"),
            role("targets"),
            role("timestamp"),
            role("mirror")
        );
        let err = Signed::<Root>::from_slice(&RoleName::ROOT, root_with_roles(&five).as_bytes())
            .unwrap_err();
        assert!(err.to_string().contains("not a base role"), "{err}");
    }

    #[test]
    fn threshold_must_be_positive() {
        let roles = format!(
            r#"{{{},{},{},"timestamp":{{"keyids":["{KEY_ID}"],"threshold":0}}}}"#,
            role("root"),
            role("snapshot"),
            role("targets")
        );
        let err = Signed::<Root>::from_slice(&RoleName::ROOT, root_with_roles(&roles).as_bytes())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("`signed.roles.timestamp.threshold`"),
            "{err}"
        );
    }
}
