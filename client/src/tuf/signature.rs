//! One entry of a metadata file's `signatures`: [`Signature`] and its [`SignatureMethod`].

use std::fmt;

use serde_json::Value;
use tufa_proto::KeyId;

use crate::tuf::canonical;
use crate::tuf::error::TufError;
use crate::tuf::role::RoleName;
use crate::tuf::wire::{self, Fields};

/// A TUF signature `method`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum SignatureMethod {
    /// `ecdsa`: raw 64-byte r‖s over SHA-256 (what tufa's agent produces).
    Ecdsa,
    /// `eddsa`: Ed25519 over the message itself.
    Eddsa,
    /// `rsapss`: RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt.
    RsaPss,
    /// `rsapkcs1v15`: RSASSA-PKCS1-v1_5 with SHA-256 (Notary verifies but never writes it).
    RsaPkcs1v15,
    /// Any other method (lower-cased on read, as Notary does); never verifies.
    Other(String),
}

impl SignatureMethod {
    /// The `method` string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Ecdsa => "ecdsa",
            Self::Eddsa => "eddsa",
            Self::RsaPss => "rsapss",
            Self::RsaPkcs1v15 => "rsapkcs1v15",
            Self::Other(s) => s,
        }
    }

    /// Reads a `method`, lower-cased first as Notary's `Signature.UnmarshalJSON` does.
    pub fn parse(s: &str) -> Self {
        match s.to_lowercase().as_str() {
            "ecdsa" => Self::Ecdsa,
            "eddsa" => Self::Eddsa,
            "rsapss" => Self::RsaPss,
            "rsapkcs1v15" => Self::RsaPkcs1v15,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for SignatureMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `signatures`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Signature {
    /// The TUF ID of the signing key as the role lists it (for x509 keys, the certificate's ID).
    pub key_id: KeyId,
    /// How the signature was made.
    pub method: SignatureMethod,
    /// The raw signature bytes (written as base64).
    pub sig: Vec<u8>,
}

impl Signature {
    /// Reads the entry at `path` of `role`'s `signatures`.
    pub(crate) fn from_value(
        role: &RoleName,
        path: String,
        value: &Value,
    ) -> Result<Self, TufError> {
        let fields = Fields::new(role, path, value)?;
        let key_id = wire::key_id(fields.str("keyid")?).map_err(|p| fields.error("keyid", p))?;
        Ok(Self {
            key_id,
            method: SignatureMethod::parse(fields.str("method")?),
            sig: fields.base64("sig")?,
        })
    }

    /// Appends this signature as Go's `json.Marshal` writes it: `keyid`, `method`, `sig`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"keyid\":\"");
        out.extend_from_slice(self.key_id.to_string().as_bytes());
        out.extend_from_slice(b"\",\"method\":");
        canonical::write_go_string(out, self.method.as_str());
        out.extend_from_slice(b",\"sig\":\"");
        out.extend_from_slice(wire::base64_encode(&self.sig).as_bytes());
        out.extend_from_slice(b"\"}");
    }
}
