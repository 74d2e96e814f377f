//! What signs for tufa without handing out its private half: a P-256 key that signs SHA-256
//! digests into a raw [`EcdsaSignature`].
//!
//! Shaped like rustls's `SigningKey` and tough's `Sign`: the public key, and one sign call. The
//! caller hashes (a device signs a digest), and the signature is fixed-width r‖s, as TUF's
//! `ecdsa` method writes it. The agent client implements [`DigestSigner`]; this module knows
//! nothing of the agent.

use std::future::Future;

use tufa_proto::{EcdsaSignature, KeyId, Sha256Digest};

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
