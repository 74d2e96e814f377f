//! What signs for tufa without handing out its private half: a P-256 key that signs SHA-256
//! digests, and the raw signature it returns.
//!
//! Shaped like rustls's `SigningKey` and tough's `Sign`: the public key, and one sign call. The
//! caller hashes (a device signs a digest), and the signature is fixed-width r‖s, as TUF's
//! `ecdsa` method writes it. The agent client implements [`DigestSigner`]; this module knows
//! nothing of the agent.

use std::fmt;
use std::future::Future;

use tufa_proto::{KeyId, Sha256Digest};

/// A raw ECDSA P-256 signature: r‖s, 32 bytes each.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EcdsaSignature([u8; 64]);

impl EcdsaSignature {
    /// Wraps 64 raw bytes.
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }

    /// The 64 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    /// The bytes, as a TUF signature's `sig` holds them.
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.to_vec()
    }
}

impl TryFrom<&[u8]> for EcdsaSignature {
    type Error = SignatureLengthError;

    /// A signature made elsewhere; it must be exactly 64 bytes.
    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        <[u8; 64]>::try_from(bytes)
            .map(Self)
            .map_err(|_| SignatureLengthError { len: bytes.len() })
    }
}

impl AsRef<[u8]> for EcdsaSignature {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for EcdsaSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EcdsaSignature({})", hex::encode(self.0))
    }
}

/// Bytes that are not 64 long given as a raw r‖s signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{len} bytes where 64 (r||s) were expected")]
pub struct SignatureLengthError {
    /// The length given.
    pub len: usize,
}

/// Why a signer did not sign; its own error, boxed (its words reach the user).
pub type SignError = Box<dyn std::error::Error + Send + Sync>;

/// A P-256 key that signs SHA-256 digests somewhere else (a device, an agent).
pub trait DigestSigner {
    /// The key's DER SubjectPublicKeyInfo.
    fn public_spki(&self) -> &[u8];

    /// How messages name the key; by default its key ID.
    fn label(&self) -> String {
        KeyId::for_ecdsa_spki(self.public_spki()).to_string()
    }

    /// Signs `digest` and returns raw r‖s.
    fn sign(
        &self,
        digest: Sha256Digest,
    ) -> impl Future<Output = Result<EcdsaSignature, SignError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_64_bytes_are_a_signature() {
        assert!(EcdsaSignature::try_from(&[1u8; 64][..]).is_ok());
        let err = EcdsaSignature::try_from(&[1u8; 70][..]).unwrap_err();
        assert_eq!(err.to_string(), "70 bytes where 64 (r||s) were expected");
    }
}
