//! Key names, references, digests and signatures, and the keyring that routes a key to its device.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use tufa_proto::KeyId;

use crate::backend::{Backend, BackendKind, KeyInfo};
use crate::error::AgentError;

/// A key's human name (stored as the PKCS#11 `CKA_LABEL`): docker signer names and more.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyName(String);

impl KeyName {
    /// The longest name accepted (PKCS#11 labels are often limited to 32 bytes on real tokens).
    pub const MAX_LEN: usize = 64;

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KeyName {
    type Err = AgentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| AgentError::InvalidName {
            name: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.is_empty() {
            return Err(bad("a key needs a name"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(bad("it is longer than 64 characters"));
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(bad("it must start with a letter or a digit"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(bad("use only letters, digits, '-', '_' and '.'"));
        }
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("it would read as a key ID"));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyName({})", self.0)
    }
}

/// How a request names a key: a full key ID, a key ID prefix, or a key name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    /// A full 64-digit key ID.
    Id(KeyId),
    /// A name, or a key ID prefix of at least 7 hex digits; names win over prefixes.
    NameOrPrefix(String),
}

impl KeyRef {
    /// The shortest key ID prefix accepted, as `docker trust` and `notary` print them.
    pub const MIN_PREFIX: usize = 7;
}

impl FromStr for KeyRef {
    type Err = AgentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(AgentError::InvalidArgument(
                "no key given: name a key by its name or key ID (see `tufa key list`)".into(),
            ));
        }
        Ok(match s.parse::<KeyId>() {
            Ok(id) => Self::Id(id),
            Err(_) => Self::NameOrPrefix(s.to_owned()),
        })
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::NameOrPrefix(s) => f.write_str(s),
        }
    }
}

/// A SHA-256 digest: the only thing a device ever signs.
pub use tufa_proto::Sha256Digest;

/// A P-256 ECDSA signature as raw r||s, the encoding Notary's `ecdsa` method uses.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EcdsaSignature([u8; 64]);

impl EcdsaSignature {
    /// Takes a raw r||s signature; it must be exactly 64 bytes.
    pub fn from_raw(raw: &[u8]) -> Result<Self, AgentError> {
        <[u8; 64]>::try_from(raw).map(Self).map_err(|_| {
            AgentError::Internal(format!(
                "the device returned a {}-byte ECDSA signature where 64 bytes (r||s) were expected",
                raw.len()
            ))
        })
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

/// A key and the device that holds it.
pub type Found = (Arc<dyn Backend>, KeyInfo);

/// Every configured device, and a cache of which device holds which key.
///
/// The devices are the source of truth: the cache is rebuilt from them on a miss, so keys made
/// by other tools, or a token swapped while the agent runs, are found without a restart.
pub struct Keyring {
    backends: Vec<Arc<dyn Backend>>,
    cache: RwLock<Vec<(usize, KeyInfo)>>,
}

impl Keyring {
    /// A keyring over these devices; call [`Keyring::refresh`] to fill the cache.
    pub fn new(backends: Vec<Arc<dyn Backend>>) -> Self {
        Self {
            backends,
            cache: RwLock::new(Vec::new()),
        }
    }

    /// The configured devices.
    pub fn backends(&self) -> &[Arc<dyn Backend>] {
        &self.backends
    }

    /// Re-reads the keys of every present device. Devices that fail are skipped and logged.
    pub fn refresh(&self) -> Vec<KeyInfo> {
        let mut all = Vec::new();
        for (i, b) in self.backends.iter().enumerate() {
            match b.keys() {
                Ok(keys) => all.extend(keys.into_iter().map(|k| (i, k))),
                Err(e) => tracing::warn!(device = b.name(), error = %e, "cannot list keys"),
            }
        }
        let keys = all.iter().map(|(_, k)| k.clone()).collect();
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = all;
        keys
    }

    /// Finds a key by ID, name or ID prefix; a miss re-reads the devices once.
    pub fn resolve(&self, key: &KeyRef) -> Result<Found, AgentError> {
        if let Some(found) = self.lookup(key)? {
            return Ok(found);
        }
        self.refresh();
        self.lookup(key)?.ok_or_else(|| AgentError::KeyNotFound {
            key: key.to_string(),
        })
    }

    fn lookup(&self, key: &KeyRef) -> Result<Option<Found>, AgentError> {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        let hit = |(i, k): &(usize, KeyInfo)| (Arc::clone(&self.backends[*i]), k.clone());
        match key {
            KeyRef::Id(id) => Ok(cache.iter().find(|(_, k)| k.id == *id).map(hit)),
            KeyRef::NameOrPrefix(s) => {
                if let Some(found) = cache.iter().find(|(_, k)| k.name == *s) {
                    return Ok(Some(hit(found)));
                }
                let prefix = s.to_ascii_lowercase();
                if prefix.len() < KeyRef::MIN_PREFIX
                    || !prefix.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return Ok(None);
                }
                let matches: Vec<_> = cache
                    .iter()
                    .filter(|(_, k)| k.id.to_string().starts_with(&prefix))
                    .collect();
                match matches.as_slice() {
                    [] => Ok(None),
                    [one] => Ok(Some(hit(one))),
                    many => Err(AgentError::AmbiguousKey {
                        key: s.clone(),
                        matches: many.iter().map(|(_, k)| k.id.to_string()).collect(),
                    }),
                }
            }
        }
    }

    /// Whether any device already holds a key with this name (names are unique per agent).
    pub fn name_taken(&self, name: &KeyName) -> Option<KeyInfo> {
        self.refresh().into_iter().find(|k| k.name == name.as_str())
    }

    /// Picks the device for a new key: by backend kind and device name, or the only/first one.
    pub fn pick_device(
        &self,
        kind: Option<BackendKind>,
        device: Option<&str>,
    ) -> Result<Arc<dyn Backend>, AgentError> {
        let candidates: Vec<_> = self
            .backends
            .iter()
            .filter(|b| kind.is_none_or(|k| b.kind() == k))
            .filter(|b| device.is_none_or(|d| b.name() == d))
            .collect();
        match candidates.first() {
            Some(b) => Ok(Arc::clone(b)),
            None => Err(AgentError::NoDevice {
                wanted: match (kind, device) {
                    (_, Some(d)) => format!("device '{d}'"),
                    (Some(k), None) => format!("{k} device"),
                    (None, None) => "device".into(),
                },
                configured: self.backends.iter().map(|b| b.name().to_owned()).collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!("alice".parse::<KeyName>().is_ok());
        assert!("ci-runner_2.key".parse::<KeyName>().is_ok());
        for bad in ["", "-x", "a b", "é", &"a".repeat(65), &"ab".repeat(32)] {
            assert!(bad.parse::<KeyName>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn key_refs() {
        let id = "8c524f91aff70d4f305c6b5b2d24a269cf1c574342c737562b2c97b65d5d0b5b";
        assert!(matches!(id.parse::<KeyRef>().unwrap(), KeyRef::Id(_)));
        assert_eq!(
            "8c524f9".parse::<KeyRef>().unwrap(),
            KeyRef::NameOrPrefix("8c524f9".into())
        );
        assert!("".parse::<KeyRef>().is_err());
    }

    #[test]
    fn digests_must_be_32_bytes() {
        assert!(Sha256Digest::try_from(&[0u8; 32][..]).is_ok());
        assert!(matches!(
            Sha256Digest::try_from(&[0u8; 20][..]).map_err(AgentError::from),
            Err(AgentError::InvalidDigest { len: 20 })
        ));
        assert_eq!(
            Sha256Digest::of(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
