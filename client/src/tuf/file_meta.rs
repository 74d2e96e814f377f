//! Lengths and hashes of files: targets entries and the `meta` of snapshot and timestamp.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};
use sha2::{Digest, Sha512};

use crate::tuf::error::TufError;
use crate::tuf::role::RoleName;
use crate::tuf::wire::{self, Fields};

use tufa_proto::Sha256Digest;

/// A SHA-512 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha512Digest([u8; 64]);

impl Sha512Digest {
    /// The SHA-512 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha512::digest(bytes).into())
    }

    /// Wraps 64 raw digest bytes.
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }

    /// The 64 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Display for Sha512Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::str::FromStr for Sha512Digest {
    type Err = hex::FromHexError;

    /// Parses 128 hex digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 64];
        hex::decode_to_slice(s, &mut out)?;
        Ok(Self(out))
    }
}

impl fmt::Debug for Sha512Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha512Digest({self})")
    }
}

/// The `hashes` object: algorithm → digest, written as base64.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hashes {
    /// `sha256`, which Notary requires for root, targets and snapshot entries.
    pub sha256: Option<Sha256Digest>,
    /// `sha512`, which Notary adds to snapshot and timestamp entries and `notary add` targets.
    pub sha512: Option<Sha512Digest>,
    /// Any other algorithm, kept so that a file reads back unchanged; never checked.
    pub other: BTreeMap<String, Vec<u8>>,
}

impl Hashes {
    /// The members Notary writes.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        if let Some(d) = &self.sha256 {
            map.insert(
                "sha256".into(),
                Value::String(wire::base64_encode(d.as_bytes())),
            );
        }
        if let Some(d) = &self.sha512 {
            map.insert(
                "sha512".into(),
                Value::String(wire::base64_encode(d.as_bytes())),
            );
        }
        for (alg, bytes) in &self.other {
            map.insert(alg.clone(), Value::String(wire::base64_encode(bytes)));
        }
        Value::Object(map)
    }

    /// Reads `hashes`; a `sha256` or `sha512` of the wrong length is refused, or with
    /// `lenient` kept in `other` (it can match no file).
    fn from_fields(fields: &Fields<'_>, lenient: bool) -> Result<Self, TufError> {
        let mut hashes = Hashes::default();
        let Some(members) = fields.nested("hashes")? else {
            return Ok(hashes);
        };
        for (alg, _) in members.entries() {
            let bytes = members.base64(alg)?;
            let wrong = |size: usize| {
                members.error(alg, format!("must be {size} bytes, found {}", bytes.len()))
            };
            match alg.as_str() {
                "sha256" if bytes.len() == 32 || !lenient => {
                    let digest = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| wrong(32))?;
                    hashes.sha256 = Some(Sha256Digest::from_bytes(digest));
                }
                "sha512" if bytes.len() == 64 || !lenient => {
                    let digest = <[u8; 64]>::try_from(bytes.as_slice()).map_err(|_| wrong(64))?;
                    hashes.sha512 = Some(Sha512Digest(digest));
                }
                _ => {
                    hashes.other.insert(alg.clone(), bytes);
                }
            }
        }
        Ok(hashes)
    }

    /// What is wrong with a `sha256` or `sha512` kept in `other` for its length, if any.
    pub fn unusable(&self) -> Option<String> {
        [("sha256", 32), ("sha512", 64)]
            .iter()
            .find_map(|(alg, size)| {
                let found = self.other.get(*alg)?.len();
                Some(format!("a {found}-byte {alg} (a {alg} is {size} bytes)"))
            })
    }
}

/// The length, hashes and optional `custom` data of one file.
#[derive(Clone, Debug, PartialEq)]
pub struct FileMeta {
    /// The file's size in bytes.
    pub length: u64,
    /// The file's digests.
    pub hashes: Hashes,
    /// Opaque `custom` data; Docker never writes it. Only canonical JSON here survives
    /// verification by Go clients, so it is written canonically.
    pub custom: Option<Value>,
}

impl FileMeta {
    /// Length, SHA-256 and SHA-512 of `bytes`, as Notary records metadata files.
    pub fn of_metadata(bytes: &[u8]) -> Self {
        Self {
            length: bytes.len() as u64,
            hashes: Hashes {
                sha256: Some(Sha256Digest::of(bytes)),
                sha512: Some(Sha512Digest::of(bytes)),
                other: BTreeMap::new(),
            },
            custom: None,
        }
    }

    /// A target entry as docker writes one: length and SHA-256 only.
    pub fn of_target(length: u64, sha256: Sha256Digest) -> Self {
        Self {
            length,
            hashes: Hashes {
                sha256: Some(sha256),
                ..Hashes::default()
            },
            custom: None,
        }
    }

    /// Checks `bytes` (the file of `role`) against this entry recorded in `recorded_in`.
    ///
    /// Every known hash must match and at least one must be present, as in Notary's
    /// `CheckHashes`; the length must match too.
    pub fn check(
        &self,
        role: &RoleName,
        recorded_in: &RoleName,
        bytes: &[u8],
    ) -> Result<(), TufError> {
        let mismatch = |problem: String| TufError::MetaMismatch {
            role: role.clone(),
            recorded_in: recorded_in.clone(),
            problem,
        };
        if self.hashes.sha256.is_none() && self.hashes.sha512.is_none() {
            return Err(mismatch("no sha256 or sha512 is recorded".into()));
        }
        if bytes.len() as u64 != self.length {
            return Err(mismatch(format!(
                "length is {} bytes, {} recorded",
                bytes.len(),
                self.length
            )));
        }
        if let Some(expected) = self.hashes.sha256 {
            let actual = Sha256Digest::of(bytes);
            if actual != expected {
                return Err(mismatch(format!("sha256 is {actual}, {expected} recorded")));
            }
        }
        if let Some(expected) = self.hashes.sha512 {
            let actual = Sha512Digest::of(bytes);
            if actual != expected {
                return Err(mismatch(format!("sha512 is {actual}, {expected} recorded")));
            }
        }
        Ok(())
    }

    /// The members Notary writes: `custom` (only when present), `hashes`, `length`.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        if let Some(custom) = &self.custom {
            map.insert("custom".into(), custom.clone());
        }
        map.insert("hashes".into(), self.hashes.to_value());
        map.insert("length".into(), Value::from(self.length));
        Value::Object(map)
    }

    /// Reads a file meta object found at `path` in `role`'s file (a `meta` entry of snapshot or
    /// timestamp: every hash must have its algorithm's length).
    pub(crate) fn from_value(
        role: &RoleName,
        path: String,
        value: &Value,
    ) -> Result<Self, TufError> {
        Self::read(role, path, value, false)
    }

    /// Reads a target entry found at `path` in `role`'s file. As in Go, a hash of the wrong
    /// length does not make the file unreadable: it is kept in `other`, where it matches
    /// nothing, so that target alone cannot be used ([`Hashes::unusable`]).
    pub(crate) fn from_target_value(
        role: &RoleName,
        path: String,
        value: &Value,
    ) -> Result<Self, TufError> {
        Self::read(role, path, value, true)
    }

    fn read(role: &RoleName, path: String, value: &Value, lenient: bool) -> Result<Self, TufError> {
        let fields = Fields::new(role, path, value)?;
        Ok(Self {
            length: fields.u64("length")?,
            hashes: Hashes::from_fields(&fields, lenient)?,
            custom: fields.get("custom").cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn metadata_entries_carry_both_hashes() {
        let meta = FileMeta::of_metadata(b"abc");
        assert_eq!(meta.length, 3);
        assert_eq!(
            meta.hashes.sha256.unwrap().to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        meta.check(&RoleName::TARGETS, &RoleName::SNAPSHOT, b"abc")
            .unwrap();
        let err = meta
            .check(&RoleName::TARGETS, &RoleName::SNAPSHOT, b"abd")
            .unwrap_err();
        assert!(err.to_string().contains("sha256 is"), "{err}");
        let err = meta
            .check(&RoleName::TARGETS, &RoleName::SNAPSHOT, b"ab")
            .unwrap_err();
        assert!(
            err.to_string().contains("length is 2 bytes, 3 recorded"),
            "{err}"
        );
    }

    #[test]
    fn docker_targets_have_sha256_only() {
        let digest: Sha256Digest =
            "sha256:9f44d46c89f5315968cdc56713b7371a745c640e8e94dc02f0a15d2887082888"
                .parse()
                .unwrap();
        let meta = FileMeta::of_target(423, digest);
        assert_eq!(
            meta.to_value(),
            json!({"hashes": {"sha256": "n0TUbIn1MVlozcVnE7c3GnRcZA6OlNwC8KFdKIcIKIg="}, "length": 423})
        );
    }

    #[test]
    fn unknown_algorithms_and_custom_are_kept() {
        let value = json!({"custom": {"a": 1}, "hashes": {"md5": "AAAA", "sha256": "n0TUbIn1MVlozcVnE7c3GnRcZA6OlNwC8KFdKIcIKIg="}, "length": 1});
        let meta = FileMeta::from_value(&RoleName::TARGETS, "t".into(), &value).unwrap();
        assert_eq!(meta.hashes.other["md5"], vec![0, 0, 0]);
        assert_eq!(meta.to_value(), value);
    }

    #[test]
    fn digest_sizes_are_checked() {
        let value = json!({"hashes": {"sha256": "AAAA"}, "length": 1});
        let err = FileMeta::from_value(&RoleName::TARGETS, "signed.targets.v1".into(), &value)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("`signed.targets.v1.hashes.sha256` must be 32 bytes"),
            "{err}"
        );
        let value = json!({"hashes": {}, "length": -1});
        assert!(FileMeta::from_value(&RoleName::TARGETS, "t".into(), &value).is_err());
    }

    #[test]
    fn a_target_hash_of_the_wrong_length_is_kept_and_matches_nothing() {
        let value = json!({"hashes": {"sha256": "AAAA", "sha512": "AAAA"}, "length": 1});
        let meta = FileMeta::from_target_value(&RoleName::TARGETS, "t".into(), &value).unwrap();
        assert_eq!((meta.hashes.sha256, meta.hashes.sha512), (None, None));
        assert_eq!(
            meta.hashes.unusable().unwrap(),
            "a 3-byte sha256 (a sha256 is 32 bytes)"
        );
        // Written back as it was read.
        assert_eq!(meta.to_value(), value);
        let good = json!({"hashes": {"sha256": "n0TUbIn1MVlozcVnE7c3GnRcZA6OlNwC8KFdKIcIKIg="}, "length": 1});
        let meta = FileMeta::from_target_value(&RoleName::TARGETS, "t".into(), &good).unwrap();
        assert!(meta.hashes.sha256.is_some() && meta.hashes.unusable().is_none());
    }
}
