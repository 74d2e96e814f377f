//! The ECDSA signature both sides pass around: what a device returns, and what TUF records.

use std::fmt;

/// A P-256 ECDSA signature as raw r||s, the encoding Notary's `ecdsa` method uses.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EcdsaSignature([u8; 64]);

/// Bytes that are not 64 long given as a raw P-256 signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureLengthError {
    /// The length given.
    pub len: usize,
}

impl fmt::Display for SignatureLengthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a raw P-256 ECDSA signature (r||s) has 64 bytes, not {}",
            self.len
        )
    }
}

impl std::error::Error for SignatureLengthError {}

impl EcdsaSignature {
    /// Wraps 64 raw bytes r||s.
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }

    /// Takes a raw r||s signature; it must be exactly 64 bytes.
    pub fn from_raw(raw: &[u8]) -> Result<Self, SignatureLengthError> {
        <[u8; 64]>::try_from(raw)
            .map(Self)
            .map_err(|_| SignatureLengthError { len: raw.len() })
    }

    /// The 64 bytes r||s.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for EcdsaSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EcdsaSignature({})", hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_64_bytes_are_a_signature() {
        assert!(EcdsaSignature::from_raw(&[7u8; 64]).is_ok());
        assert_eq!(
            EcdsaSignature::from_raw(&[0u8; 70]),
            Err(SignatureLengthError { len: 70 })
        );
        assert_eq!(EcdsaSignature::from_bytes([1u8; 64]).as_bytes(), &[1u8; 64]);
    }
}
