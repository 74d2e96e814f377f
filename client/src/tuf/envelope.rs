//! The metadata file: `{"signed":…,"signatures":[…]}`, its signatures and its exact bytes.
//!
//! Notary writes the file with Go's standard `json.Marshal` around the canonical bytes of the
//! signed body, so the file is canonical JSON with `<`, `>`, `&`, U+2028 and U+2029 escaped
//! inside `signed` (see [`canonical::escape_embedded`]). Signatures cover the unescaped
//! canonical bytes. notary-server hashes Go's re-serialisation of what it parsed, so
//! [`Signed::to_bytes`] must equal that re-serialisation for every file Notary would write.

use serde_json::Value;
use tufa_proto::KeyId;

use crate::tuf::canonical;
use crate::tuf::error::TufError;
use crate::tuf::role::RoleName;
use crate::tuf::signature::Signature;
use crate::tuf::verify::{verify_signatures, RoleKeys};
use crate::tuf::wire::{self, Fields};

/// A kind of signed body: root, targets (top-level or delegated), snapshot or timestamp.
pub trait Metadata: Sized {
    /// The `_type` Notary writes for it.
    const TYPE: &'static str;

    /// The body with every member Notary writes, `_type` included.
    fn to_value(&self) -> Value;

    /// Reads the body of `role`'s file (the value of `signed`).
    fn from_value(role: &RoleName, value: &Value) -> Result<Self, TufError>;

    /// The canonical bytes of the body: what gets signed.
    fn canonical_bytes(&self) -> Result<Vec<u8>, TufError> {
        canonical::to_canonical(&self.to_value())
    }
}

/// A metadata file as received: the body as generic JSON, and the signatures.
///
/// Verify with [`Envelope::verify`] before [`Envelope::decode`]: like Notary, signatures are
/// checked over the canonical re-encoding of the body as parsed, unknown members included.
#[derive(Clone, Debug)]
pub struct Envelope {
    role: RoleName,
    signed: Value,
    signatures: Vec<Signature>,
    /// The `keyid`s of signatures left out because they are not key IDs.
    ignored: Vec<String>,
    /// Whether text that is not valid Unicode was read as U+FFFD.
    replaced: bool,
}

impl Envelope {
    /// Parses the file of `role` as Go's decoder reads it: text that is not valid Unicode (a
    /// lone surrogate escape, a byte that is not UTF-8) reads as U+FFFD, and a signature whose
    /// `keyid` is no key ID is left out, since it can name no key (Notary skips signatures by
    /// unknown IDs); see [`Envelope::ignored_signatures`] and [`Envelope::not_unicode`].
    pub fn from_slice(role: &RoleName, bytes: &[u8]) -> Result<Self, TufError> {
        let text = wire::as_go_reads(bytes);
        let replaced = matches!(text, std::borrow::Cow::Owned(_));
        let mut value: Value = serde_json::from_slice(&text).map_err(|source| TufError::Json {
            role: role.clone(),
            source,
        })?;
        drop(text);
        let mut signatures = Vec::new();
        let mut ignored = Vec::new();
        {
            let fields = Fields::new(role, String::new(), &value)?;
            let signed = fields.required("signed")?;
            if !signed.is_object() {
                return Err(fields.error(
                    "signed",
                    format!("must be an object, found {}", wire::kind(signed)),
                ));
            }
            for (i, sig) in fields.array("signatures")?.iter().enumerate() {
                if let Some(id) = sig.get("keyid").and_then(Value::as_str) {
                    if wire::key_id(id).is_err() {
                        ignored.push(id.chars().take(80).collect());
                        continue;
                    }
                }
                signatures.push(Signature::from_value(
                    role,
                    format!("signatures[{i}]"),
                    sig,
                )?);
            }
        }
        // Moved out, not cloned: a targets file can hold tens of thousands of entries.
        let signed = value.get_mut("signed").map(Value::take).unwrap_or_default();
        Ok(Self {
            role: role.clone(),
            signed,
            signatures,
            ignored,
            replaced,
        })
    }

    /// The `keyid`s (at most 80 characters of each) of the signatures left out because they
    /// are not key IDs.
    pub fn ignored_signatures(&self) -> &[String] {
        &self.ignored
    }

    /// Whether the file held text that is not valid Unicode, read as U+FFFD as Go reads it.
    pub fn not_unicode(&self) -> bool {
        self.replaced
    }

    /// The role whose file this is.
    pub fn role(&self) -> &RoleName {
        &self.role
    }

    /// The body as parsed.
    pub fn signed(&self) -> &Value {
        &self.signed
    }

    /// The signatures, in file order.
    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    /// The bytes Notary's verifier checks signatures over: the body decoded and re-encoded.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, TufError> {
        canonical::to_canonical_as_go_decoded(&self.signed)
    }

    /// Checks the signatures against `keys`; returns the distinct keys that signed validly.
    pub fn verify(&self, keys: &RoleKeys) -> Result<Vec<KeyId>, TufError> {
        verify_signatures(keys, &self.signed_bytes()?, &self.signatures)
    }

    /// Reads the body as `T`.
    pub fn decode<T: Metadata>(&self) -> Result<Signed<T>, TufError> {
        Ok(Signed {
            signed: T::from_value(&self.role, &self.signed)?,
            signatures: self.signatures.clone(),
        })
    }
}

/// A typed metadata file: a role body and its signatures.
#[derive(Clone, Debug)]
pub struct Signed<T> {
    /// The role body.
    pub signed: T,
    /// The signatures over its canonical bytes.
    pub signatures: Vec<Signature>,
}

impl<T: Metadata> Signed<T> {
    /// An unsigned file holding `signed`.
    pub fn new(signed: T) -> Self {
        Self {
            signed,
            signatures: Vec::new(),
        }
    }

    /// Parses the file of `role` without verifying it (see [`Envelope`] to verify first).
    pub fn from_slice(role: &RoleName, bytes: &[u8]) -> Result<Self, TufError> {
        Envelope::from_slice(role, bytes)?.decode()
    }

    /// The bytes to sign: the canonical JSON of the body.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, TufError> {
        self.signed.canonical_bytes()
    }

    /// Checks the signatures against `keys`; returns the distinct keys that signed validly.
    pub fn verify(&self, keys: &RoleKeys) -> Result<Vec<KeyId>, TufError> {
        verify_signatures(keys, &self.signed_bytes()?, &self.signatures)
    }

    /// The file bytes, exactly as Go's Notary writes (and notary-server re-serialises) them.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TufError> {
        let embedded = canonical::escape_embedded(&self.signed_bytes()?)?;
        let mut out = Vec::with_capacity(embedded.len() + 32 + 160 * self.signatures.len());
        out.extend_from_slice(b"{\"signed\":");
        out.extend_from_slice(&embedded);
        out.extend_from_slice(b",\"signatures\":[");
        for (i, sig) in self.signatures.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            sig.write(&mut out);
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::EncodePublicKey as _;

    use super::*;
    use crate::tuf::{Expires, FileMeta, PublicKey, Sha256Digest, SignatureMethod, Targets};

    fn signing_key() -> (p256::ecdsa::SigningKey, PublicKey) {
        let signing = p256::ecdsa::SigningKey::from_slice(&[42; 32]).unwrap();
        let spki = signing.verifying_key().to_public_key_der().unwrap();
        (signing, PublicKey::ecdsa(spki.as_bytes().to_vec()))
    }

    fn role_keys(key: &PublicKey) -> RoleKeys {
        let map = BTreeMap::from([(key.id(), key.clone())]);
        RoleKeys::new(RoleName::RELEASES, &RoleName::TARGETS, &[key.id()], &map, 1).unwrap()
    }

    fn sign(file: &mut Signed<Targets>, signing: &p256::ecdsa::SigningKey, key: &PublicKey) {
        let sig: p256::ecdsa::Signature = signing.sign(&file.signed_bytes().unwrap());
        file.signatures.push(Signature {
            key_id: key.id(),
            method: SignatureMethod::Ecdsa,
            sig: sig.to_bytes().to_vec(),
        });
    }

    #[test]
    fn html_characters_are_escaped_in_the_file_but_signed_raw() {
        let (signing, key) = signing_key();
        let mut body = Targets::new(1, Expires::parse("2030-01-01T00:00:00Z").unwrap());
        let name = "a<b>&c\u{2028}d\u{2029}é";
        body.targets.insert(
            name.into(),
            FileMeta::of_target(3, Sha256Digest::of(b"abc")),
        );
        let mut file = Signed::new(body);
        sign(&mut file, &signing, &key);

        let canonical = String::from_utf8(file.signed_bytes().unwrap()).unwrap();
        assert!(
            canonical.contains("\"a<b>&c\u{2028}d\u{2029}é\""),
            "{canonical}"
        );
        let bytes = file.to_bytes().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains(r#""a\u003cb\u003e\u0026c\u2028d\u2029é""#),
            "{text}"
        );

        let parsed = Envelope::from_slice(&RoleName::RELEASES, &bytes).unwrap();
        assert_eq!(parsed.verify(&role_keys(&key)).unwrap(), vec![key.id()]);
        let decoded: Signed<Targets> = parsed.decode().unwrap();
        assert!(decoded.signed.targets.contains_key(name));
        assert_eq!(decoded.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn envelope_layout() {
        let body = Targets::new(2, Expires::parse("2030-01-01T00:00:00.5Z").unwrap());
        let file = Signed::new(body);
        assert_eq!(
            String::from_utf8(file.to_bytes().unwrap()).unwrap(),
            r#"{"signed":{"_type":"Targets","delegations":{"keys":{},"roles":[]},"expires":"2030-01-01T00:00:00.5Z","targets":{},"version":2},"signatures":[]}"#
        );
    }

    #[test]
    fn accepts_any_member_order_and_method_case() {
        let (signing, key) = signing_key();
        let mut file = Signed::new(Targets::new(
            1,
            Expires::parse("2030-01-01T00:00:00Z").unwrap(),
        ));
        sign(&mut file, &signing, &key);
        let sig = &file.signatures[0];
        // Members shuffled, whitespace added, method in capitals, as a foreign writer might.
        let text = format!(
            r#"{{ "signatures": [ {{"sig": "{}", "method": "ECDSA", "keyid": "{}"}} ],
                "signed": {{"version": 1, "targets": {{}}, "expires": "2030-01-01T00:00:00Z",
                            "delegations": {{"roles": [], "keys": {{}}}}, "_type": "Targets"}} }}"#,
            wire::base64_encode(&sig.sig),
            sig.key_id
        );
        let parsed = Envelope::from_slice(&RoleName::RELEASES, text.as_bytes()).unwrap();
        assert_eq!(parsed.signatures()[0].method, SignatureMethod::Ecdsa);
        parsed.verify(&role_keys(&key)).unwrap();
        // Written back the way Go would.
        let decoded: Signed<Targets> = parsed.decode().unwrap();
        assert_eq!(decoded.to_bytes().unwrap(), file.to_bytes().unwrap());
    }

    #[test]
    fn unknown_members_are_verified_but_not_written() {
        let (signing, key) = signing_key();
        // Signed by someone who put an extra member in the body.
        let body = r#"{"_type":"Targets","delegations":{"keys":{},"roles":[]},"expires":"2030-01-01T00:00:00Z","extra":[1],"targets":{},"version":1}"#;
        let sig: p256::ecdsa::Signature = signing.sign(body.as_bytes());
        let text = format!(
            r#"{{"signed":{body},"signatures":[{{"keyid":"{}","method":"ecdsa","sig":"{}"}}]}}"#,
            key.id(),
            wire::base64_encode(&sig.to_bytes())
        );
        let parsed = Envelope::from_slice(&RoleName::RELEASES, text.as_bytes()).unwrap();
        // Go's verifier re-encodes what it parsed, extra member included: the signature holds.
        parsed.verify(&role_keys(&key)).unwrap();
        // Go's structs drop the member, so re-serialising drops it too.
        let decoded: Signed<Targets> = parsed.decode().unwrap();
        assert!(!String::from_utf8(decoded.to_bytes().unwrap())
            .unwrap()
            .contains("extra"));
    }

    #[test]
    fn read_as_go_reads_it() {
        let (signing, key) = signing_key();
        let mut file = Signed::new(Targets::new(
            1,
            Expires::parse("2030-01-01T00:00:00Z").unwrap(),
        ));
        file.signed.targets.insert(
            "v\u{FFFD}".into(),
            FileMeta::of_target(1, Sha256Digest::of(b"x")),
        );
        sign(&mut file, &signing, &key);
        let text = String::from_utf8(file.to_bytes().unwrap()).unwrap();
        // A lone surrogate where the signer had U+FFFD, and a signature by no key ID.
        let text = text.replace('\u{FFFD}', "\\ud800").replace(
            r#""signatures":["#,
            r#""signatures":[{"keyid":"NOT-HEX","method":"ecdsa","sig":"AAAA"},"#,
        );
        let parsed = Envelope::from_slice(&RoleName::RELEASES, text.as_bytes()).unwrap();
        assert!(parsed.not_unicode());
        assert_eq!(parsed.ignored_signatures(), ["NOT-HEX"]);
        assert_eq!(parsed.verify(&role_keys(&key)).unwrap(), vec![key.id()]);
        let decoded: Signed<Targets> = parsed.decode().unwrap();
        assert!(decoded.signed.targets.contains_key("v\u{FFFD}"));
        // A file Go wrote reads unchanged.
        let plain = Envelope::from_slice(&RoleName::RELEASES, &file.to_bytes().unwrap()).unwrap();
        assert!(!plain.not_unicode() && plain.ignored_signatures().is_empty());
    }

    #[test]
    fn wrong_body_type() {
        let text = br#"{"signed":{"_type":"Root","version":1},"signatures":[]}"#;
        let err = Signed::<Targets>::from_slice(&RoleName::TARGETS, text).unwrap_err();
        assert!(
            matches!(
                err,
                TufError::WrongType {
                    expected: "Targets",
                    ..
                }
            ),
            "{err}"
        );
        let err = Envelope::from_slice(&RoleName::ROOT, b"{\"signed\":").unwrap_err();
        assert!(
            err.to_string().starts_with("root.json is not valid JSON"),
            "{err}"
        );
    }
}
