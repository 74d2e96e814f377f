//! `targets.json` and delegated `targets/<x>.json`: signed targets and the delegations below.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::{json, Map, Value};
use tufa_proto::KeyId;

use crate::tuf::envelope::Metadata;
use crate::tuf::error::TufError;
use crate::tuf::expires::Expires;
use crate::tuf::file_meta::FileMeta;
use crate::tuf::key::{self, PublicKey};
use crate::tuf::role::RoleName;
use crate::tuf::verify::RoleKeys;
use crate::tuf::wire::Fields;

/// The body of a targets file, top-level or delegated.
#[derive(Clone, Debug, PartialEq)]
pub struct Targets {
    /// The version, from 1; each role counts its own.
    pub version: u64,
    /// When the file stops being trusted.
    pub expires: Expires,
    /// Target name (a docker tag) → length and hashes of what it names.
    pub targets: BTreeMap<String, FileMeta>,
    /// The roles this one delegates to, and their keys.
    pub delegations: Delegations,
}

/// The `delegations` object, written even when empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delegations {
    /// Keys used by the delegated roles, by TUF key ID.
    pub keys: BTreeMap<KeyId, PublicKey>,
    /// The delegated roles, in file order (Notary keeps creation order).
    pub roles: Vec<Delegation>,
    /// The IDs of `keys` the file published with their private part: they sign for no role
    /// (the private part is not kept, and not written back).
    pub leaked: BTreeSet<KeyId>,
}

/// One delegated role: `{"keyids":[…],"name":"targets/x","paths":[…],"threshold":N}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delegation {
    /// The delegated role, a direct child of the delegating role.
    pub name: RoleName,
    /// The role's key IDs; empty once its last key is removed (Notary then writes `null`).
    pub keyids: Vec<KeyId>,
    /// How many distinct keys must sign.
    pub threshold: u32,
    /// Target name prefixes the role may sign; `[""]` means all. Omitted when empty.
    pub paths: Vec<String>,
}

impl Targets {
    /// An empty targets body, as a new role starts.
    pub fn new(version: u64, expires: Expires) -> Self {
        Self {
            version,
            expires,
            targets: BTreeMap::new(),
            delegations: Delegations::default(),
        }
    }

    /// The delegation named `name` in this file.
    pub fn delegation(&self, name: &RoleName) -> Option<&Delegation> {
        self.delegations.roles.iter().find(|d| d.name == *name)
    }

    /// The keys and threshold of delegated role `name`, checked against this file's keys.
    pub fn delegation_keys(&self, name: &RoleName) -> Result<RoleKeys, TufError> {
        let parent = name.parent().unwrap_or(RoleName::TARGETS);
        let delegation = self
            .delegation(name)
            .ok_or_else(|| TufError::NoSuchDelegation {
                parent: parent.clone(),
                name: name.clone(),
            })?;
        self.delegations.role_keys(&parent, delegation)
    }
}

impl Delegations {
    /// The delegated roles, each name once, in file order. A name listed again stands for its
    /// first entry, keys, threshold and paths alike, as Notary's `BuildDelegationRole` finds it
    /// for every lookup. (Notary's client update then queues the role once per entry and fails
    /// on the second, "has already been loaded"; using the first entry is as safe and keeps the
    /// repository readable.)
    pub fn unique(&self) -> Vec<&Delegation> {
        let mut seen = HashSet::new();
        self.roles.iter().filter(|d| seen.insert(&d.name)).collect()
    }

    /// The keys and threshold of `delegation`, one of the entries of `parent`'s file, checked
    /// against the file's keys; a key published with its private part does not count.
    ///
    /// Like Notary's `BuildDelegationRole`, a key ID the file has no key for is an error: the
    /// caller skips that role.
    pub fn role_keys(
        &self,
        parent: &RoleName,
        delegation: &Delegation,
    ) -> Result<RoleKeys, TufError> {
        let usable: Vec<KeyId> = delegation
            .keyids
            .iter()
            .filter(|id| !self.leaked.contains(id))
            .copied()
            .collect();
        RoleKeys::new(
            delegation.name.clone(),
            parent,
            &usable,
            &self.keys,
            delegation.threshold,
        )
    }

    fn to_value(&self) -> Value {
        json!({
            "keys": key::keys_value(&self.keys),
            "roles": self.roles.iter().map(Delegation::to_value).collect::<Vec<_>>(),
        })
    }

    /// Reads `delegations`. A role that lists a key the file does not carry is read (Notary's
    /// parser refuses the whole file); [`Delegations::role_keys`] then fails for that role
    /// alone, as Notary's `buildDelegationRoles` leaves out a role it cannot build.
    fn from_fields(fields: &Fields<'_>, parent: &RoleName) -> Result<Self, TufError> {
        let (keys, leaked) = key::read_delegation_keys(fields, "keys")?;
        let mut roles = Vec::new();
        for (i, value) in fields.array("roles")?.iter().enumerate() {
            let role_fields = Fields::new(
                fields.role(),
                format!("{}[{i}]", fields.child("roles")),
                value,
            )?;
            roles.push(Delegation::from_fields(&role_fields, parent)?);
        }
        Ok(Self {
            keys,
            roles,
            leaked,
        })
    }
}

impl Delegation {
    fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert(
            "keyids".into(),
            self.keyids
                .iter()
                .map(|id| Value::String(id.to_string()))
                .collect(),
        );
        map.insert("name".into(), Value::String(self.name.to_string()));
        // Go's `omitempty`: no `paths` member at all when there are none.
        if !self.paths.is_empty() {
            map.insert("paths".into(), self.paths.iter().cloned().collect());
        }
        map.insert("threshold".into(), Value::from(self.threshold));
        Value::Object(map)
    }

    fn from_fields(fields: &Fields<'_>, parent: &RoleName) -> Result<Self, TufError> {
        let name_text = fields.str("name")?;
        let name = RoleName::new(name_text).map_err(|e| fields.error("name", e.to_string()))?;
        if name.parent().as_ref() != Some(parent) {
            return Err(fields.error(
                "name",
                format!(
                    "{name} is not a direct child of {parent}, so {parent} cannot delegate to it"
                ),
            ));
        }
        let paths = fields
            .array("paths")?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(fields.error(&format!("paths[{i}]"), "must be a string")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name,
            keyids: fields.key_ids("keyids")?,
            threshold: fields.threshold()?,
            paths,
        })
    }
}

impl Metadata for Targets {
    const TYPE: &'static str = "Targets";

    fn to_value(&self) -> Value {
        let targets: Map<String, Value> = self
            .targets
            .iter()
            .map(|(name, meta)| (name.clone(), meta.to_value()))
            .collect();
        json!({
            "_type": Self::TYPE,
            "delegations": self.delegations.to_value(),
            "expires": self.expires.to_string(),
            "targets": targets,
            "version": self.version,
        })
    }

    fn from_value(role: &RoleName, value: &Value) -> Result<Self, TufError> {
        let fields = Fields::new(role, "signed".into(), value)?;
        if !role.is_targets() {
            return Err(fields.error("_type", format!("{} is not the body of {role}", Self::TYPE)));
        }
        fields.check_type(Self::TYPE)?;
        let mut targets = BTreeMap::new();
        if let Some(members) = fields.nested("targets")? {
            for (name, meta) in members.entries() {
                targets.insert(
                    name.clone(),
                    FileMeta::from_target_value(role, members.child(name), meta)?,
                );
            }
        }
        let delegations = match fields.nested("delegations")? {
            Some(d) => Delegations::from_fields(&d, role)?,
            None => Delegations::default(),
        };
        Ok(Self {
            version: fields.version()?,
            expires: fields.expires()?,
            targets,
            delegations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuf::Signed;

    const KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7fcdmR1hF757+0P9uX9HCQHvS0hu84xd6vESm8Y899OVXKTstClAW3FbbbIbiiIgDECYgZm7PksOo+ljyhSPWw==";
    const KEY_ID: &str = "8c524f91aff70d4f305c6b5b2d24a269cf1c574342c737562b2c97b65d5d0b5b";

    fn body(roles: &str) -> String {
        format!(
            r#"{{"signed":{{"_type":"Targets","delegations":{{"keys":{{"{KEY_ID}":{{"keytype":"ecdsa","keyval":{{"private":null,"public":"{KEY}"}}}}}},"roles":{roles}}},"expires":"2029-11-21T04:04:01.804076555Z","targets":{{}},"version":3}},"signatures":[]}}"#
        )
    }

    #[test]
    fn keyids_null_reads_as_no_keys() {
        // What notary-server serves after a delegation's last key is removed.
        let text =
            body(r#"[{"keyids":null,"name":"targets/releases","paths":[""],"threshold":1}]"#);
        let file = Signed::<Targets>::from_slice(&RoleName::TARGETS, text.as_bytes()).unwrap();
        let releases = file.signed.delegation(&RoleName::RELEASES).unwrap();
        assert!(releases.keyids.is_empty());
        assert!(file
            .signed
            .delegation_keys(&RoleName::RELEASES)
            .unwrap()
            .keys()
            .is_empty());
        // Written back as `[]`, which Go parses to the same role and re-serialises unchanged.
        let again = String::from_utf8(file.to_bytes().unwrap()).unwrap();
        assert!(
            again.contains(r#"{"keyids":[],"name":"targets/releases","paths":[""],"threshold":1}"#)
        );
    }

    #[test]
    fn empty_paths_are_omitted_and_order_is_kept() {
        let roles = format!(
            r#"[{{"keyids":["{KEY_ID}"],"name":"targets/zed","threshold":1}},{{"keyids":["{KEY_ID}"],"name":"targets/alpha","paths":[],"threshold":1}}]"#
        );
        let text = body(&roles);
        let file = Signed::<Targets>::from_slice(&RoleName::TARGETS, text.as_bytes()).unwrap();
        let names: Vec<&str> = file
            .signed
            .delegations
            .roles
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(names, ["targets/zed", "targets/alpha"]);
        let again = String::from_utf8(file.to_bytes().unwrap()).unwrap();
        assert!(again.contains(&format!(
            r#""roles":[{{"keyids":["{KEY_ID}"],"name":"targets/zed","threshold":1}},{{"keyids":["{KEY_ID}"],"name":"targets/alpha","threshold":1}}]"#
        )), "{again}");
    }

    #[test]
    fn delegations_must_be_direct_children_with_known_keys() {
        let grandchild = body(&format!(
            r#"[{{"keyids":["{KEY_ID}"],"name":"targets/a/b","threshold":1}}]"#
        ));
        let err =
            Signed::<Targets>::from_slice(&RoleName::TARGETS, grandchild.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("not a direct child of targets"),
            "{err}"
        );

        // A role listing a key the file lacks is read; its keys cannot be resolved.
        let unknown = "0".repeat(64);
        let missing = body(&format!(
            r#"[{{"keyids":["{unknown}"],"name":"targets/a","threshold":1}}]"#
        ));
        let file = Signed::<Targets>::from_slice(&RoleName::TARGETS, missing.as_bytes()).unwrap();
        let err = file
            .signed
            .delegation_keys(&"targets/a".parse().unwrap())
            .unwrap_err();
        assert!(matches!(err, TufError::MissingKey { .. }), "{err}");

        let bad_name = body(r#"[{"keyids":[],"name":"targets/Releases","threshold":1}]"#);
        let err =
            Signed::<Targets>::from_slice(&RoleName::TARGETS, bad_name.as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .contains("`signed.delegations.roles[0].name`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_delegation() {
        let text = body("[]");
        let file = Signed::<Targets>::from_slice(&RoleName::TARGETS, text.as_bytes()).unwrap();
        let err = file
            .signed
            .delegation_keys(&RoleName::RELEASES)
            .unwrap_err();
        assert!(matches!(err, TufError::NoSuchDelegation { .. }), "{err}");
    }
}
