//! TUF public keys as Notary writes them, their key IDs and the certificates inside x509 keys.
//!
//! A key is `{"keytype":T,"keyval":{"private":null,"public":B64}}`; its ID is the SHA-256 of that
//! object's canonical JSON ([`KeyId::for_key_object`]). For `ecdsa-x509`/`rsa-x509` keys,
//! `public` holds PEM certificates and the "canonical key ID" that names the private key is the
//! ID of the bare `ecdsa`/`rsa` key built from the leaf certificate's SubjectPublicKeyInfo.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{json, Value};
use tufa_proto::KeyId;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::oid::db::{rfc5912, rfc8410, DB};
use x509_cert::der::{Decode, Encode};
use x509_cert::spki::SubjectPublicKeyInfoRef;
use x509_cert::Certificate;

use crate::tuf::error::TufError;
use crate::tuf::role::RoleName;
use crate::tuf::wire::{self, Fields};

/// A TUF `keytype`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum KeyType {
    /// `ecdsa`: DER SubjectPublicKeyInfo.
    Ecdsa,
    /// `ecdsa-x509`: PEM certificate(s), leaf first.
    EcdsaX509,
    /// `ed25519`: 32 raw public key bytes.
    Ed25519,
    /// `rsa`: DER SubjectPublicKeyInfo.
    Rsa,
    /// `rsa-x509`: PEM certificate(s), leaf first.
    RsaX509,
    /// Any other type: kept so the file reads back unchanged, never verifies.
    Other(String),
}

impl KeyType {
    /// The `keytype` string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Ecdsa => "ecdsa",
            Self::EcdsaX509 => "ecdsa-x509",
            Self::Ed25519 => "ed25519",
            Self::Rsa => "rsa",
            Self::RsaX509 => "rsa-x509",
            Self::Other(s) => s,
        }
    }

    /// Reads a `keytype` string (case-sensitive, as in Notary).
    pub fn parse(s: &str) -> Self {
        match s {
            "ecdsa" => Self::Ecdsa,
            "ecdsa-x509" => Self::EcdsaX509,
            "ed25519" => Self::Ed25519,
            "rsa" => Self::Rsa,
            "rsa-x509" => Self::RsaX509,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Whether `public` holds PEM certificates.
    pub fn is_x509(&self) -> bool {
        matches!(self, Self::EcdsaX509 | Self::RsaX509)
    }

    /// The bare type of a SubjectPublicKeyInfo (DER), `ecdsa` or `rsa`, as Notary's
    /// `keyTypeForPublicKey` reads a `PUBLIC KEY` file; only keys tufa can verify pass:
    /// ECDSA P-256, and RSA of 2048 bits or more (Notary's minimum).
    pub fn of_spki(spki_der: &[u8]) -> Result<Self, KeyAlgorithmError> {
        let spki = SubjectPublicKeyInfoRef::from_der(spki_der)
            .map_err(|e| KeyAlgorithmError::Malformed(e.to_string()))?;
        let oid = spki.algorithm.oid;
        if oid == rfc5912::ID_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters_oid()
                .map_err(|e| KeyAlgorithmError::Malformed(format!("its curve: {e}")))?;
            if curve != rfc5912::SECP_256_R_1 {
                return Err(KeyAlgorithmError::Curve(curve_name(curve)));
            }
            use p256::pkcs8::DecodePublicKey as _;
            p256::PublicKey::from_public_key_der(spki_der)
                .map_err(|e| KeyAlgorithmError::Malformed(format!("its P-256 point: {e}")))?;
            Ok(Self::Ecdsa)
        } else if oid == rfc5912::RSA_ENCRYPTION {
            use rsa::pkcs8::DecodePublicKey as _;
            use rsa::traits::PublicKeyParts as _;
            let key = rsa::RsaPublicKey::from_public_key_der(spki_der)
                .map_err(|e| KeyAlgorithmError::Malformed(format!("its RSA key: {e}")))?;
            let bits = key.n().as_ref().bits();
            if bits < MIN_RSA_BITS {
                return Err(KeyAlgorithmError::RsaTooShort(bits));
            }
            Ok(Self::Rsa)
        } else {
            Err(KeyAlgorithmError::Unsupported(algorithm_name(oid)))
        }
    }
}

/// Notary's smallest RSA key (notary: `MinRSABitSize`).
pub const MIN_RSA_BITS: u32 = 2048;

/// Why a public key cannot be a TUF key tufa writes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyAlgorithmError {
    /// A key algorithm Notary cannot type (Ed25519 certificates, DSA, RSASSA-PSS keys...).
    #[error(
        "it holds an {0} key; docker trust and Notary keys are ECDSA P-256 or RSA \
         (2048 bits or more): use a key of one of those"
    )]
    Unsupported(String),
    /// An ECDSA key on a curve tufa does not verify.
    #[error(
        "its ECDSA key is on curve {0}; tufa verifies ECDSA on P-256 (prime256v1) only: use a \
         P-256 key"
    )]
    Curve(String),
    /// An RSA key shorter than Notary accepts.
    #[error(
        "its RSA key has {0} bits; Notary refuses RSA keys shorter than 2048 bits: use a \
         2048, 3072 or 4096-bit key"
    )]
    RsaTooShort(u32),
    /// The SubjectPublicKeyInfo does not parse.
    #[error("its public key does not parse ({0})")]
    Malformed(String),
}

/// A key algorithm's usual name, else its registered name, else the dotted OID.
fn algorithm_name(oid: ObjectIdentifier) -> String {
    let known = [
        (rfc8410::ID_ED_25519, "Ed25519"),
        (rfc8410::ID_ED_448, "Ed448"),
        (rfc8410::ID_X_25519, "X25519"),
        (rfc8410::ID_X_448, "X448"),
        (rfc5912::ID_DSA, "DSA"),
        (rfc5912::ID_RSASSA_PSS, "RSASSA-PSS (RSA-PSS-only)"),
    ];
    known
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, name)| (*name).to_owned())
        .or_else(|| DB.by_oid(&oid).map(str::to_owned))
        .unwrap_or_else(|| oid.to_string())
}

/// A curve's NIST name where it has one.
fn curve_name(oid: ObjectIdentifier) -> String {
    if oid == rfc5912::SECP_384_R_1 {
        "P-384".into()
    } else if oid == rfc5912::SECP_521_R_1 {
        "P-521".into()
    } else {
        DB.by_oid(&oid)
            .map_or_else(|| oid.to_string(), str::to_owned)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A TUF public key: its type and the bytes its `public` member carries (base64-decoded).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    key_type: KeyType,
    public: Vec<u8>,
}

impl PublicKey {
    /// A key of `key_type` whose `public` member holds `public`.
    pub fn new(key_type: KeyType, public: Vec<u8>) -> Self {
        Self { key_type, public }
    }

    /// An `ecdsa` key from its DER SubjectPublicKeyInfo.
    pub fn ecdsa(spki_der: Vec<u8>) -> Self {
        Self::new(KeyType::Ecdsa, spki_der)
    }

    /// An `ecdsa-x509` key from PEM certificate text (leaf first).
    pub fn ecdsa_x509(pem: Vec<u8>) -> Self {
        Self::new(KeyType::EcdsaX509, pem)
    }

    /// The key's type.
    pub fn key_type(&self) -> &KeyType {
        &self.key_type
    }

    /// The decoded `public` bytes (DER, PEM text or raw Ed25519 key, by type).
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// The TUF key ID, as metadata uses it in `keys`, `keyids` and signatures.
    pub fn id(&self) -> KeyId {
        // `for_key_object` writes the type verbatim; canonical JSON would escape `"` and `\`.
        let key_type = self
            .key_type
            .as_str()
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        KeyId::for_key_object(&key_type, &self.public)
    }

    /// Notary's canonical key ID: for x509 keys the ID of the leaf certificate's bare key.
    ///
    /// This is the name of the private key (`~/.docker/trust/private/<id>.key`, the agent's key
    /// name) and what `docker trust inspect` shows for signers.
    pub fn canonical_id(&self) -> Result<KeyId, TufError> {
        match self.key_type {
            KeyType::EcdsaX509 => Ok(KeyId::for_key_object("ecdsa", &self.leaf_spki_der()?)),
            KeyType::RsaX509 => Ok(KeyId::for_key_object("rsa", &self.leaf_spki_der()?)),
            _ => Ok(self.id()),
        }
    }

    /// The DER certificates in an x509 key's PEM text, in order (leaf first).
    ///
    /// Like Notary's `LoadCertFromPEM`, blocks that are not header-less `CERTIFICATE` blocks
    /// are skipped.
    pub fn certificates(&self) -> Result<Vec<Vec<u8>>, TufError> {
        if !self.key_type.is_x509() {
            return Err(self.invalid("it holds no certificate".into()));
        }
        let blocks = pem::parse_many(&self.public)
            .map_err(|e| self.invalid(format!("its PEM text does not parse ({e})")))?;
        let certs: Vec<Vec<u8>> = blocks
            .into_iter()
            .filter(|b| b.tag() == "CERTIFICATE" && b.headers().iter().next().is_none())
            .map(|b| b.into_contents())
            .collect();
        if certs.is_empty() {
            return Err(self.invalid("no certificates found in its PEM data".into()));
        }
        Ok(certs)
    }

    /// The DER SubjectPublicKeyInfo that signatures verify with: the key itself for `ecdsa` and
    /// `rsa`, the first parseable certificate's key for x509 types.
    pub fn spki_der(&self) -> Result<Vec<u8>, TufError> {
        match self.key_type {
            KeyType::Ecdsa | KeyType::Rsa => Ok(self.public.clone()),
            KeyType::EcdsaX509 | KeyType::RsaX509 => self.leaf_spki_der(),
            _ => Err(self.invalid("it has no SubjectPublicKeyInfo".into())),
        }
    }

    /// The key object Notary writes: `private` is always `null`.
    pub fn to_value(&self) -> Value {
        json!({
            "keytype": self.key_type.as_str(),
            "keyval": {"private": null, "public": wire::base64_encode(&self.public)},
        })
    }

    /// Parses the key object that `GET …/{timestamp,snapshot}.key` returns for `role`.
    ///
    /// The server writes `public` before `private`; member order does not matter here.
    pub fn from_json(role: &RoleName, bytes: &[u8]) -> Result<Self, TufError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|source| TufError::KeyJson {
            role: role.clone(),
            source,
        })?;
        Self::from_value(role, String::new(), &value)
    }

    /// Reads a key object found at `path` in `role`'s file; one with a `private` part is
    /// refused: public metadata must never carry private key material.
    pub(crate) fn from_value(
        role: &RoleName,
        path: String,
        value: &Value,
    ) -> Result<Self, TufError> {
        let (key, private) = Self::read(role, path, value)?;
        match private {
            Some(err) => Err(err),
            None => Ok(key),
        }
    }

    /// Reads a key object; the second value is the error for a `private` part, if it has one.
    ///
    /// Like Go, the key ID ignores `private` (Notary's `TUFKey.ID`).
    fn read(
        role: &RoleName,
        path: String,
        value: &Value,
    ) -> Result<(Self, Option<TufError>), TufError> {
        let fields = Fields::new(role, path, value)?;
        let key_type = KeyType::parse(fields.str("keytype")?);
        let keyval = fields
            .nested("keyval")?
            .ok_or_else(|| fields.error("keyval", "is missing"))?;
        let private = keyval
            .get("private")
            .map(|_| keyval.error("private", "holds private key material; it must be null"));
        let public = keyval.base64("public")?;
        Ok((Self { key_type, public }, private))
    }

    fn leaf_spki_der(&self) -> Result<Vec<u8>, TufError> {
        for der in self.certificates()? {
            if let Ok(cert) = Certificate::from_der(&der) {
                return cert
                    .tbs_certificate()
                    .subject_public_key_info()
                    .to_der()
                    .map_err(|e| {
                        self.invalid(format!("its certificate key does not encode ({e})"))
                    });
            }
        }
        Err(self.invalid("none of its certificates parses".into()))
    }

    fn invalid(&self, problem: String) -> TufError {
        TufError::InvalidKey {
            key_id: self.id(),
            key_type: self.key_type.to_string(),
            problem,
        }
    }
}

/// Reads a `keys` object (key ID → key object); missing or `null` reads as empty.
pub(crate) fn read_keys(
    fields: &Fields<'_>,
    name: &str,
) -> Result<BTreeMap<KeyId, PublicKey>, TufError> {
    let mut keys = BTreeMap::new();
    let Some(members) = fields.nested(name)? else {
        return Ok(keys);
    };
    for (id, value) in members.entries() {
        let key_id = wire::key_id(id).map_err(|p| members.error(id, p))?;
        let key = PublicKey::from_value(fields.role(), members.child(id), value)?;
        keys.insert(key_id, key);
    }
    Ok(keys)
}

/// Reads the `keys` of a targets file's `delegations`, where a key published with its private
/// part is kept (by its public part) and its ID returned in the set: Notary would use it, but
/// anyone can sign with such a key, so it may count for no role. A base role's file refuses
/// such a key ([`read_keys`]).
pub(crate) fn read_delegation_keys(
    fields: &Fields<'_>,
    name: &str,
) -> Result<(BTreeMap<KeyId, PublicKey>, BTreeSet<KeyId>), TufError> {
    let mut keys = BTreeMap::new();
    let mut leaked = BTreeSet::new();
    let Some(members) = fields.nested(name)? else {
        return Ok((keys, leaked));
    };
    for (id, value) in members.entries() {
        let key_id = wire::key_id(id).map_err(|p| members.error(id, p))?;
        let (key, private) = PublicKey::read(fields.role(), members.child(id), value)?;
        if private.is_some() {
            leaked.insert(key_id);
        }
        keys.insert(key_id, key);
    }
    Ok((keys, leaked))
}

/// Writes a `keys` object.
pub(crate) fn keys_value(keys: &BTreeMap<KeyId, PublicKey>) -> Value {
    Value::Object(
        keys.iter()
            .map(|(id, key)| (id.to_string(), key.to_value()))
            .collect(),
    )
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.key_type, self.id())
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::tuf::canonical;

    const TARGETS_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7fcdmR1hF757+0P9uX9HCQHvS0hu84xd6vESm8Y899OVXKTstClAW3FbbbIbiiIgDECYgZm7PksOo+ljyhSPWw==";

    fn b64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    }

    #[test]
    fn key_id_known_answer() {
        // The targets key of samples/demo/root.json.
        let key = PublicKey::ecdsa(b64(TARGETS_KEY));
        assert_eq!(
            key.id().to_string(),
            "8c524f91aff70d4f305c6b5b2d24a269cf1c574342c737562b2c97b65d5d0b5b"
        );
        assert_eq!(key.canonical_id().unwrap(), key.id());
    }

    #[test]
    fn key_id_is_hash_of_canonical_object() {
        for key in [
            PublicKey::ecdsa(b64(TARGETS_KEY)),
            PublicKey::new(KeyType::Ed25519, vec![7; 32]),
            PublicKey::new(KeyType::Other("we\"ird".into()), vec![1, 2]),
        ] {
            let canonical = canonical::to_canonical(&key.to_value()).unwrap();
            assert_eq!(
                key.id(),
                KeyId::from_bytes(Sha256::digest(&canonical).into())
            );
        }
    }

    #[test]
    fn parses_members_in_any_order() {
        let text = format!(
            r#"{{"keytype":"ecdsa","keyval":{{"public":"{TARGETS_KEY}","private":null}}}}"#
        );
        let key = PublicKey::from_json(&RoleName::TIMESTAMP, text.as_bytes()).unwrap();
        assert_eq!(key, PublicKey::ecdsa(b64(TARGETS_KEY)));
        assert_eq!(
            canonical::to_canonical(&key.to_value()).unwrap(),
            format!(
                r#"{{"keytype":"ecdsa","keyval":{{"private":null,"public":"{TARGETS_KEY}"}}}}"#
            )
            .into_bytes()
        );
    }

    #[test]
    fn refuses_private_material() {
        let text = r#"{"keytype":"ed25519","keyval":{"public":"AAAA","private":"AAAA"}}"#;
        let err = PublicKey::from_json(&RoleName::TIMESTAMP, text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("keyval.private"), "{err}");
    }

    #[test]
    fn certificates_need_an_x509_type() {
        assert!(PublicKey::ecdsa(b64(TARGETS_KEY)).certificates().is_err());
        let err = PublicKey::ecdsa_x509(b"not pem".to_vec())
            .canonical_id()
            .unwrap_err();
        assert!(err.to_string().contains("ecdsa-x509"), "{err}");
    }
}
