//! Signature checks as Notary's `tuf/signed/verify.go` and `verifiers.go` do them.
//!
//! A role's file is valid when signatures from at least `threshold` distinct keys of the role
//! verify over the canonical signed bytes. Signatures by keys outside the role, or that fail,
//! are skipped rather than fatal, so extra signatures never break a file.
//!
//! "Distinct keys" means distinct public keys, not distinct key IDs as in Notary: one key can be
//! listed under several IDs (bare and in a certificate, in two certificates, as a compressed
//! and an uncompressed point), and in Notary each ID counts, so one private key could meet a
//! threshold of two. Here such IDs count once.

use std::collections::{BTreeMap, BTreeSet};

use p256::pkcs8::DecodePublicKey as _;
use tufa_proto::{EcdsaSignature, KeyId, Sha256Digest};

use crate::tuf::error::TufError;
use crate::tuf::key::{KeyType, PublicKey};
use crate::tuf::role::RoleName;
use crate::tuf::signature::{Signature, SignatureMethod};

/// The keys and threshold that sign one role, resolved from root or the delegating role.
#[derive(Clone, Debug)]
pub struct RoleKeys {
    role: RoleName,
    keys: BTreeMap<KeyId, PublicKey>,
    threshold: u32,
}

impl RoleKeys {
    /// Resolves `keyids` of `role` against the `keys` published in `listed_in`'s file.
    ///
    /// Every ID must name a key whose own ID it is (Notary's `ErrInvalidKeyID`).
    pub fn new(
        role: RoleName,
        listed_in: &RoleName,
        keyids: &[KeyId],
        keys: &BTreeMap<KeyId, PublicKey>,
        threshold: u32,
    ) -> Result<Self, TufError> {
        if threshold == 0 {
            return Err(TufError::Malformed {
                role: listed_in.clone(),
                field: format!("{role} threshold"),
                problem: "must be at least 1".into(),
            });
        }
        let mut resolved = BTreeMap::new();
        for id in keyids {
            let key = keys.get(id).ok_or_else(|| TufError::MissingKey {
                role: role.clone(),
                key_id: *id,
                listed_in: listed_in.clone(),
            })?;
            let computed = key.id();
            if computed != *id {
                return Err(TufError::KeyIdMismatch {
                    listed_in: listed_in.clone(),
                    listed: *id,
                    computed,
                });
            }
            resolved.insert(*id, key.clone());
        }
        Ok(Self {
            role,
            keys: resolved,
            threshold,
        })
    }

    /// The role these keys sign.
    pub fn role(&self) -> &RoleName {
        &self.role
    }

    /// The role's keys by TUF key ID.
    pub fn keys(&self) -> &BTreeMap<KeyId, PublicKey> {
        &self.keys
    }

    /// How many distinct keys must sign.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }
}

/// Checks `signatures` over `msg` against the role's keys and threshold.
///
/// Returns the distinct keys whose signatures verified, or an error naming the role and, for
/// every rejected signature, why it was rejected.
pub fn verify_signatures(
    keys: &RoleKeys,
    msg: &[u8],
    signatures: &[Signature],
) -> Result<Vec<KeyId>, TufError> {
    if signatures.is_empty() {
        return Err(TufError::NoSignatures {
            role: keys.role.clone(),
        });
    }
    // Each public key once (see the module doc), under the first ID that signed with it.
    let mut valid: BTreeMap<Vec<u8>, KeyId> = BTreeMap::new();
    let mut rejected = Vec::new();
    for sig in signatures {
        let Some(key) = keys.keys.get(&sig.key_id) else {
            rejected.push(format!(
                "{}: not a key of {}",
                sig.key_id.short(),
                keys.role
            ));
            continue;
        };
        match verify_signature(key, &sig.method, msg, &sig.sig).and_then(|()| key_identity(key)) {
            Ok(identity) => {
                valid.entry(identity).or_insert(sig.key_id);
            }
            Err(e) => rejected.push(format!("{}: {e}", sig.key_id.short())),
        }
    }
    if valid.len() < keys.threshold as usize {
        let details = if rejected.is_empty() {
            String::new()
        } else {
            format!(" (rejected: {})", rejected.join("; "))
        };
        return Err(TufError::ThresholdNotMet {
            role: keys.role.clone(),
            valid: valid.len(),
            threshold: keys.threshold,
            details,
        });
    }
    let signers: BTreeSet<KeyId> = valid.into_values().collect();
    Ok(signers.into_iter().collect())
}

/// What makes two keys one key: the public point or modulus and exponent, however the key is
/// wrapped (bare SPKI or certificate, compressed or uncompressed point).
fn key_identity(key: &PublicKey) -> Result<Vec<u8>, TufError> {
    use rsa::pkcs1::EncodeRsaPublicKey as _;

    Ok(match key.key_type() {
        KeyType::Ecdsa | KeyType::EcdsaX509 => {
            let spki = key.spki_der()?;
            match p256_key(&spki) {
                Ok(k) => [b"p256:", k.to_sec1_point(false).as_ref()].concat(),
                Err(_) => spki,
            }
        }
        KeyType::Rsa | KeyType::RsaX509 => {
            let spki = key.spki_der()?;
            match rsa::RsaPublicKey::from_public_key_der(&spki)
                .ok()
                .and_then(|k| k.to_pkcs1_der().ok())
            {
                Some(der) => [b"rsa:", der.as_bytes()].concat(),
                None => spki,
            }
        }
        other => [other.as_str().as_bytes(), b":", key.public()].concat(),
    })
}

/// Checks one signature made with `method` by `key` over `msg`.
pub fn verify_signature(
    key: &PublicKey,
    method: &SignatureMethod,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), TufError> {
    let bad = |problem: String| TufError::BadSignature {
        key_id: key.id(),
        method: method.to_string(),
        problem,
    };
    let wrong_type = || {
        bad(format!(
            "{method} signatures cannot come from a key of type {}",
            key.key_type()
        ))
    };
    match method {
        SignatureMethod::Ecdsa => {
            if !matches!(key.key_type(), KeyType::Ecdsa | KeyType::EcdsaX509) {
                return Err(wrong_type());
            }
            verify_ecdsa(&key.spki_der()?, msg, sig).map_err(bad)
        }
        SignatureMethod::Eddsa => {
            if *key.key_type() != KeyType::Ed25519 {
                return Err(wrong_type());
            }
            verify_ed25519(key.public(), msg, sig).map_err(bad)
        }
        SignatureMethod::RsaPss | SignatureMethod::RsaPkcs1v15 => {
            if !matches!(key.key_type(), KeyType::Rsa | KeyType::RsaX509) {
                return Err(wrong_type());
            }
            let pss = *method == SignatureMethod::RsaPss;
            verify_rsa(&key.spki_der()?, pss, msg, sig).map_err(bad)
        }
        SignatureMethod::Other(_) => Err(bad("tufa does not support this signature method".into())),
    }
}

/// Raw r‖s ECDSA P-256 over SHA-256 of `msg`; DER signatures are refused, as in Notary.
fn verify_ecdsa(spki: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), String> {
    if sig.len() != 64 {
        return Err(format!(
            "it is {} bytes; ecdsa signatures are 64-byte r||s (DER is not accepted)",
            sig.len()
        ));
    }
    verify_p256(spki, msg, sig).map_err(|e| e.to_string())
}

/// Why a raw P-256 signature does not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum P256Error {
    /// The SubjectPublicKeyInfo is not a P-256 key.
    #[error("the key is not a P-256 public key (tufa verifies P-256 ECDSA only)")]
    NotP256,
    /// The signature is not 64 bytes of r‖s, or not a valid pair.
    #[error("it is not a raw r||s P-256 signature")]
    Malformed,
    /// The signature is not over these bytes, or not by this key.
    #[error("it does not match the signed bytes")]
    Mismatch,
}

/// Checks a raw r‖s ECDSA P-256 signature over SHA-256 of `msg` with an SPKI (DER) key.
///
/// p256 parses and validates the key; ring checks the signature, four times faster than p256
/// (it is most of an update's and a publish's CPU time).
pub fn verify_p256(spki: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), P256Error> {
    let key = p256_key(spki)?;
    let point = key.to_sec1_point(false);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(msg, sig)
        .map_err(|_| P256Error::Mismatch)
}

/// Checks a raw r‖s ECDSA P-256 signature over a SHA-256 digest computed elsewhere.
pub fn verify_p256_digest(
    spki: &[u8],
    digest: &Sha256Digest,
    sig: &EcdsaSignature,
) -> Result<(), P256Error> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier as _;

    let signature =
        p256::ecdsa::Signature::from_slice(sig.as_bytes()).map_err(|_| P256Error::Malformed)?;
    p256_key(spki)?
        .verify_prehash(digest.as_bytes(), &signature)
        .map_err(|_| P256Error::Mismatch)
}

fn p256_key(spki: &[u8]) -> Result<p256::ecdsa::VerifyingKey, P256Error> {
    p256::ecdsa::VerifyingKey::from_public_key_der(spki).map_err(|_| P256Error::NotP256)
}

/// Ed25519 over `msg` itself.
fn verify_ed25519(public: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), String> {
    use ed25519_dalek::Verifier as _;

    let public = <&[u8; 32]>::try_from(public)
        .map_err(|_| format!("the ed25519 key is {} bytes, not 32", public.len()))?;
    let sig =
        <&[u8; 64]>::try_from(sig).map_err(|_| format!("it is {} bytes, not 64", sig.len()))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(public)
        .map_err(|_| "the ed25519 key is not a valid curve point")?;
    key.verify(msg, &ed25519_dalek::Signature::from_bytes(sig))
        .map_err(|_| "it does not match the signed bytes".to_owned())
}

/// RSASSA-PSS (salt 32) or PKCS#1 v1.5 over SHA-256, with Notary's 2048-bit minimum.
fn verify_rsa(spki: &[u8], pss: bool, msg: &[u8], sig: &[u8]) -> Result<(), String> {
    use rsa::sha2::Sha256;
    use rsa::traits::PublicKeyParts as _;
    use sha2::Digest as _;

    const MIN_BITS: u32 = 2048;
    let key = rsa::RsaPublicKey::from_public_key_der(spki)
        .map_err(|e| format!("the key is not a usable RSA public key ({e})"))?;
    let bits = key.n().as_ref().bits();
    if bits < MIN_BITS {
        return Err(format!(
            "the RSA key has {bits} bits; Notary requires at least {MIN_BITS}"
        ));
    }
    let digest = sha2::Sha256::digest(msg);
    let result = if pss {
        key.verify(rsa::Pss::<Sha256>::new_with_salt(32), &digest, sig)
    } else {
        key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, sig)
    };
    result.map_err(|_| "it does not match the signed bytes".to_owned())
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::EncodePublicKey as _;

    use super::*;

    fn p256_key(seed: u8) -> (p256::ecdsa::SigningKey, PublicKey) {
        let signing = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
        let spki = signing
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        (signing, PublicKey::ecdsa(spki))
    }

    fn ecdsa_sig(signing: &p256::ecdsa::SigningKey, key: &PublicKey, msg: &[u8]) -> Signature {
        let sig: p256::ecdsa::Signature = signing.sign(msg);
        Signature {
            key_id: key.id(),
            method: SignatureMethod::Ecdsa,
            sig: sig.to_bytes().to_vec(),
        }
    }

    fn role_keys(keys: &[&PublicKey], threshold: u32) -> RoleKeys {
        let map: BTreeMap<KeyId, PublicKey> = keys.iter().map(|k| (k.id(), (*k).clone())).collect();
        let ids: Vec<KeyId> = map.keys().copied().collect();
        RoleKeys::new(RoleName::TARGETS, &RoleName::ROOT, &ids, &map, threshold).unwrap()
    }

    #[test]
    fn ecdsa_round_trip() {
        let (signing, key) = p256_key(1);
        let sig = ecdsa_sig(&signing, &key, b"msg");
        let keys = role_keys(&[&key], 1);
        assert_eq!(
            verify_signatures(&keys, b"msg", std::slice::from_ref(&sig)).unwrap(),
            vec![key.id()]
        );
        let err = verify_signatures(&keys, b"other", &[sig])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("targets.json has valid signatures from 0"),
            "{err}"
        );
        assert!(err.contains("does not match the signed bytes"), "{err}");
    }

    #[test]
    fn der_ecdsa_is_refused() {
        let (signing, key) = p256_key(2);
        let sig: p256::ecdsa::Signature = signing.sign(b"m");
        let der = sig.to_der().as_bytes().to_vec();
        let err = verify_signature(&key, &SignatureMethod::Ecdsa, b"m", &der).unwrap_err();
        assert!(err.to_string().contains("DER is not accepted"), "{err}");
    }

    #[test]
    fn threshold_counts_distinct_keys() {
        let (s1, k1) = p256_key(3);
        let (s2, k2) = p256_key(4);
        let keys = role_keys(&[&k1, &k2], 2);
        let a = ecdsa_sig(&s1, &k1, b"m");
        // The same key twice is still one key.
        let err = verify_signatures(&keys, b"m", &[a.clone(), a.clone()]).unwrap_err();
        assert!(matches!(
            err,
            TufError::ThresholdNotMet {
                valid: 1,
                threshold: 2,
                ..
            }
        ));
        let b = ecdsa_sig(&s2, &k2, b"m");
        assert_eq!(verify_signatures(&keys, b"m", &[a, b]).unwrap().len(), 2);
    }

    #[test]
    fn one_key_under_two_ids_is_one_key() {
        // The same P-256 key as an uncompressed and a compressed SubjectPublicKeyInfo.
        let (signing, plain) = p256_key(10);
        let point = signing.verifying_key().to_sec1_point(true);
        let prefix = &plain.public()[..plain.public().len() - 65];
        let mut spki = prefix.to_vec();
        spki[1] -= 32;
        spki[prefix.len() - 2] -= 32;
        spki.extend_from_slice(point.as_ref());
        let compressed = PublicKey::ecdsa(spki);
        assert_ne!(compressed.id(), plain.id());
        let keys = role_keys(&[&plain, &compressed], 2);
        let sig = ecdsa_sig(&signing, &plain, b"m");
        let again = Signature {
            key_id: compressed.id(),
            ..sig.clone()
        };
        // Alone, each ID verifies.
        verify_signatures(
            &role_keys(&[&compressed], 1),
            b"m",
            std::slice::from_ref(&again),
        )
        .unwrap();
        let err = verify_signatures(&keys, b"m", &[sig, again]).unwrap_err();
        assert!(
            matches!(
                err,
                TufError::ThresholdNotMet {
                    valid: 1,
                    threshold: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn foreign_and_broken_signatures_are_skipped() {
        let (s1, k1) = p256_key(5);
        let (s2, k2) = p256_key(6);
        let keys = role_keys(&[&k1], 1);
        let mut broken = ecdsa_sig(&s1, &k1, b"m");
        broken.sig[10] ^= 1;
        let foreign = ecdsa_sig(&s2, &k2, b"m");
        let good = ecdsa_sig(&s1, &k1, b"m");
        assert!(verify_signatures(&keys, b"m", &[broken.clone(), foreign.clone(), good]).is_ok());
        let err = verify_signatures(&keys, b"m", &[broken, foreign])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("{}: not a key of targets", k2.id().short())),
            "{err}"
        );
    }

    #[test]
    fn no_signatures() {
        let (_, k1) = p256_key(7);
        let err = verify_signatures(&role_keys(&[&k1], 1), b"m", &[]).unwrap_err();
        assert!(matches!(err, TufError::NoSignatures { .. }));
    }

    #[test]
    fn ed25519_round_trip() {
        use ed25519_dalek::Signer as _;
        let signing = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let key = PublicKey::new(
            KeyType::Ed25519,
            signing.verifying_key().to_bytes().to_vec(),
        );
        let sig = signing.sign(b"m").to_bytes();
        assert!(verify_signature(&key, &SignatureMethod::Eddsa, b"m", &sig).is_ok());
        assert!(verify_signature(&key, &SignatureMethod::Eddsa, b"x", &sig).is_err());
        // A method that does not fit the key type is refused.
        let err = verify_signature(&key, &SignatureMethod::Ecdsa, b"m", &sig).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot come from a key of type ed25519"),
            "{err}"
        );
    }

    #[test]
    fn key_published_under_a_wrong_id() {
        let (_, k1) = p256_key(8);
        let (_, k2) = p256_key(9);
        let map = BTreeMap::from([(k1.id(), k2.clone())]);
        let err = RoleKeys::new(RoleName::ROOT, &RoleName::ROOT, &[k1.id()], &map, 1).unwrap_err();
        assert!(matches!(err, TufError::KeyIdMismatch { .. }));
        let err = RoleKeys::new(RoleName::ROOT, &RoleName::ROOT, &[k2.id()], &map, 1).unwrap_err();
        assert!(matches!(err, TufError::MissingKey { .. }));
    }
}
