//! TUF key IDs as Notary computes them.
//!
//! A key ID is the lowercase hex SHA-256 of the canonical JSON of the TUF public key object
//! `{"keytype":T,"keyval":{"private":null,"public":B64}}`. The agent names every key by the ID
//! of its bare `ecdsa` key object (Notary's "canonical key ID"), which is also the name Notary
//! and docker give the private key file.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A TUF key ID: the SHA-256 of a canonical key object.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 32]);

impl KeyId {
    /// The ID of an `ecdsa` TUF key whose public part is this SubjectPublicKeyInfo (DER).
    pub fn for_ecdsa_spki(spki_der: &[u8]) -> Self {
        Self::for_key_object("ecdsa", spki_der)
    }

    /// The ID of a TUF key object of `keytype` whose `public` is the base64 of `public`.
    ///
    /// The canonical form needs no escaping: key types are plain ASCII words and the value
    /// is standard base64, so the object is written directly in its sorted key order.
    pub fn for_key_object(keytype: &str, public: &[u8]) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD.encode(public);
        let canonical =
            format!(r#"{{"keytype":"{keytype}","keyval":{{"private":null,"public":"{b64}"}}}}"#);
        Self(Sha256::digest(canonical.as_bytes()).into())
    }

    /// The 32 raw bytes (what the agent stores as a PKCS#11 `CKA_ID`).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Builds a key ID from 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The first seven hex digits, as `docker trust` and `notary` shorten IDs.
    pub fn short(&self) -> String {
        self.to_string()[..7].to_owned()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = ParseKeyIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseKeyIdError(s.to_owned()));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.to_ascii_lowercase(), &mut out)
            .map_err(|_| ParseKeyIdError(s.to_owned()))?;
        Ok(Self(out))
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseKeyIdError(pub String);

impl fmt::Display for ParseKeyIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' is not a key ID (64 hex digits)", self.0)
    }
}

impl std::error::Error for ParseKeyIdError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answer: the targets key of a root.json served by a real notary-server
    /// (shared/reference/samples/demo/root.json).
    #[test]
    fn matches_notary_key_id() {
        let b64 = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7fcdmR1hF757+0P9uX9HCQHvS0hu84xd6vESm8Y899OVXKTstClAW3FbbbIbiiIgDECYgZm7PksOo+ljyhSPWw==";
        let spki = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(
            KeyId::for_ecdsa_spki(&spki).to_string(),
            "8c524f91aff70d4f305c6b5b2d24a269cf1c574342c737562b2c97b65d5d0b5b"
        );
    }

    #[test]
    fn parses_and_prints() {
        let s = "7b95a3b6cb1f0ba1a9a4b05c2d9e8e19a5b4dd4e5f8cb3e1c7d4c0b1a2f3e4d5";
        let id: KeyId = s.parse().unwrap();
        assert_eq!(id.to_string(), s);
        assert_eq!(id.short(), "7b95a3b");
        assert!("xyz".parse::<KeyId>().is_err());
    }
}
