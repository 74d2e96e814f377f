//! `snapshot.json` (length and hashes of root and every targets file) and `timestamp.json`
//! (length and hashes of the snapshot).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::tuf::envelope::Metadata;
use crate::tuf::error::TufError;
use crate::tuf::expires::Expires;
use crate::tuf::file_meta::FileMeta;
use crate::tuf::role::RoleName;
use crate::tuf::wire::Fields;

/// The body of `snapshot.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The version, from 1.
    pub version: u64,
    /// When the file stops being trusted.
    pub expires: Expires,
    /// Role → length and hashes of its current file: root, targets and every published
    /// delegation.
    pub meta: BTreeMap<RoleName, FileMeta>,
}

/// The body of `timestamp.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct Timestamp {
    /// The version, from 1.
    pub version: u64,
    /// When the file stops being trusted (14 days after the server made it).
    pub expires: Expires,
    /// Length and hashes of the current `snapshot.json` (its single `meta` entry).
    pub snapshot: FileMeta,
}

impl Snapshot {
    /// Checks `bytes`, the file of `role`, against this snapshot's entry for it.
    pub fn check(&self, role: &RoleName, bytes: &[u8]) -> Result<(), TufError> {
        self.meta
            .get(role)
            .ok_or_else(|| TufError::MetaMismatch {
                role: role.clone(),
                recorded_in: RoleName::SNAPSHOT,
                problem: "snapshot.json has no entry for it".into(),
            })?
            .check(role, &RoleName::SNAPSHOT, bytes)
    }
}

impl Timestamp {
    /// Checks `bytes`, a `snapshot.json`, against this timestamp.
    pub fn check(&self, snapshot_bytes: &[u8]) -> Result<(), TufError> {
        self.snapshot
            .check(&RoleName::SNAPSHOT, &RoleName::TIMESTAMP, snapshot_bytes)
    }
}

impl Metadata for Snapshot {
    const TYPE: &'static str = "Snapshot";

    fn to_value(&self) -> Value {
        let meta: Map<String, Value> = self
            .meta
            .iter()
            .map(|(role, meta)| (role.to_string(), meta.to_value()))
            .collect();
        json!({
            "_type": Self::TYPE,
            "expires": self.expires.to_string(),
            "meta": meta,
            "version": self.version,
        })
    }

    fn from_value(role: &RoleName, value: &Value) -> Result<Self, TufError> {
        let fields = Fields::new(role, "signed".into(), value)?;
        if *role != RoleName::SNAPSHOT {
            return Err(fields.error("_type", format!("{} is not the body of {role}", Self::TYPE)));
        }
        fields.check_type(Self::TYPE)?;
        let members = fields
            .nested("meta")?
            .ok_or_else(|| fields.error("meta", "is missing"))?;
        let mut meta = BTreeMap::new();
        for (name, value) in members.entries() {
            let entry_role = RoleName::new(name).map_err(|e| members.error(name, e.to_string()))?;
            meta.insert(
                entry_role,
                FileMeta::from_value(role, members.child(name), value)?,
            );
        }
        // Notary's `IsValidSnapshotStructure`: root and targets need a sha256.
        for required in [RoleName::ROOT, RoleName::TARGETS] {
            let has_sha256 = meta
                .get(&required)
                .is_some_and(|m| m.hashes.sha256.is_some());
            if !has_sha256 {
                return Err(members.error(
                    &format!("{required}.hashes.sha256"),
                    "is missing; a snapshot must record the sha256 of root and targets",
                ));
            }
        }
        Ok(Self {
            version: fields.version()?,
            expires: fields.expires()?,
            meta,
        })
    }
}

impl Metadata for Timestamp {
    const TYPE: &'static str = "Timestamp";

    fn to_value(&self) -> Value {
        json!({
            "_type": Self::TYPE,
            "expires": self.expires.to_string(),
            "meta": {"snapshot": self.snapshot.to_value()},
            "version": self.version,
        })
    }

    fn from_value(role: &RoleName, value: &Value) -> Result<Self, TufError> {
        let fields = Fields::new(role, "signed".into(), value)?;
        if *role != RoleName::TIMESTAMP {
            return Err(fields.error("_type", format!("{} is not the body of {role}", Self::TYPE)));
        }
        fields.check_type(Self::TYPE)?;
        let members = fields
            .nested("meta")?
            .ok_or_else(|| fields.error("meta", "is missing"))?;
        if let Some((other, _)) = members
            .entries()
            .find(|(name, _)| name.as_str() != "snapshot")
        {
            return Err(members.error(
                other,
                "is not expected; a timestamp records only the snapshot",
            ));
        }
        let snapshot = FileMeta::from_value(
            role,
            members.child("snapshot"),
            members.required("snapshot")?,
        )?;
        if snapshot.hashes.sha256.is_none() {
            return Err(members.error(
                "snapshot.hashes.sha256",
                "is missing; a timestamp must record the snapshot's sha256",
            ));
        }
        Ok(Self {
            version: fields.version()?,
            expires: fields.expires()?,
            snapshot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuf::Signed;

    const META: &str =
        r#"{"hashes":{"sha256":"xZbBo/F4ZrR9bj6gWecerzzViurYChbdX2HZdmPxJzg="},"length":2}"#;

    #[test]
    fn snapshot_needs_root_and_targets_sha256() {
        let text = format!(
            r#"{{"signed":{{"_type":"Snapshot","expires":"2029-11-21T04:01:31Z","meta":{{"root":{META}}},"version":1}},"signatures":[]}}"#
        );
        let err = Signed::<Snapshot>::from_slice(&RoleName::SNAPSHOT, text.as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .contains("`signed.meta.targets.hashes.sha256` is missing"),
            "{err}"
        );
    }

    #[test]
    fn timestamp_records_only_the_snapshot() {
        let ok = format!(
            r#"{{"signed":{{"_type":"Timestamp","expires":"2026-12-06T04:01:31.595796046Z","meta":{{"snapshot":{META}}},"version":4}},"signatures":[]}}"#
        );
        let file = Signed::<Timestamp>::from_slice(&RoleName::TIMESTAMP, ok.as_bytes()).unwrap();
        assert_eq!(file.to_bytes().unwrap(), ok.as_bytes());
        assert_eq!(file.signed.snapshot.length, 2);

        let extra = ok.replace(
            r#"{"snapshot":"#,
            &format!(r#"{{"root":{META},"snapshot":"#),
        );
        let err =
            Signed::<Timestamp>::from_slice(&RoleName::TIMESTAMP, extra.as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .contains("`signed.meta.root` is not expected"),
            "{err}"
        );
    }

    #[test]
    fn bodies_belong_to_their_roles() {
        let ok = format!(
            r#"{{"signed":{{"_type":"Timestamp","expires":"2026-12-06T04:01:31Z","meta":{{"snapshot":{META}}},"version":4}},"signatures":[]}}"#
        );
        assert!(Signed::<Timestamp>::from_slice(&RoleName::SNAPSHOT, ok.as_bytes()).is_err());
    }
}
