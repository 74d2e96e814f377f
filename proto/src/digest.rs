//! The SHA-256 digest both sides pass around: what a device signs, and what TUF records.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

/// Bytes that are not 32 long given as a SHA-256 digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DigestLengthError {
    /// The length given.
    pub len: usize,
}

impl fmt::Display for DigestLengthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a SHA-256 digest has 32 bytes, not {}", self.len)
    }
}

impl std::error::Error for DigestLengthError {}

impl Sha256Digest {
    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Wraps 32 raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl TryFrom<&[u8]> for Sha256Digest {
    type Error = DigestLengthError;

    /// A digest computed elsewhere; it must be exactly 32 bytes.
    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| DigestLengthError { len: bytes.len() })
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl FromStr for Sha256Digest {
    type Err = hex::FromHexError;

    /// Parses 64 hex digits, optionally prefixed `sha256:` as in OCI digests.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.strip_prefix("sha256:").unwrap_or(s), &mut out)?;
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_32_bytes_are_a_digest() {
        assert!(Sha256Digest::try_from(&[0u8; 32][..]).is_ok());
        assert_eq!(
            Sha256Digest::try_from(&[0u8; 20][..]),
            Err(DigestLengthError { len: 20 })
        );
    }

    #[test]
    fn hex_with_or_without_the_oci_prefix() {
        let d = Sha256Digest::of(b"abc");
        assert_eq!(d.to_string().parse::<Sha256Digest>(), Ok(d));
        assert_eq!(format!("sha256:{d}").parse::<Sha256Digest>(), Ok(d));
        assert!("abc".parse::<Sha256Digest>().is_err());
    }
}
