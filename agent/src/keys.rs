//! The values a key is named and used by: its name, how a request refers to it, what a device
//! calls it, and (from `tufa-proto`) the digest it signs and the signature it makes.
//!
//! Nothing here talks to a device or imports another module of the agent: backends, keyring and
//! server all speak these types.

use std::fmt;
use std::str::FromStr;

pub use tufa_proto::{EcdsaSignature, KeyId, Sha256Digest};

/// A key's human name (stored as the PKCS#11 `CKA_LABEL`): docker signer names and more.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyName(String);

impl KeyName {
    /// The longest name accepted (PKCS#11 labels are often limited to 32 bytes on real tokens).
    pub const MAX_LEN: usize = 64;

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A name the agent will not give a key, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid key name '{name}': {reason}")]
pub struct InvalidName {
    /// The name as given.
    pub name: String,
    /// The rule it breaks.
    pub reason: &'static str,
}

impl FromStr for KeyName {
    type Err = InvalidName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| InvalidName {
            name: s.to_owned(),
            reason,
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

/// What a device calls a key: a tufa name, or a label another tool wrote that is not one.
///
/// Keys made by other tools (`pkcs11-tool --label "my key"`) are listed and usable under their
/// label as it is; only tufa's own keys are guaranteed a [`KeyName`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum KeyLabel {
    /// A valid tufa name.
    Name(KeyName),
    /// A label that is not a valid tufa name (spaces, other characters, empty...).
    Foreign(String),
}

impl KeyLabel {
    /// Reads a label stored on a device.
    pub fn from_device(label: String) -> Self {
        match label.parse() {
            Ok(name) => Self::Name(name),
            Err(_) => Self::Foreign(label),
        }
    }

    /// The label as text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Name(n) => n.as_str(),
            Self::Foreign(s) => s,
        }
    }
}

impl From<KeyName> for KeyLabel {
    fn from(name: KeyName) -> Self {
        Self::Name(name)
    }
}

impl PartialEq<KeyName> for KeyLabel {
    fn eq(&self, other: &KeyName) -> bool {
        matches!(self, Self::Name(n) if n == other)
    }
}

impl fmt::Display for KeyLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for KeyLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(n) => write!(f, "{n:?}"),
            Self::Foreign(s) => write!(f, "KeyLabel::Foreign({s:?})"),
        }
    }
}

/// How a request names a key: a full key ID, a key ID prefix, or a key name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    /// A full 64-digit key ID.
    Id(KeyId),
    /// A name (or another tool's label), or a key ID prefix of at least 7 hex digits; names win
    /// over prefixes.
    NameOrPrefix(String),
}

impl KeyRef {
    /// The shortest key ID prefix accepted, as `docker trust` and `notary` print them.
    pub const MIN_PREFIX: usize = 7;

    /// The key ID prefix this reference could be, in lowercase, if it is long enough to be one.
    pub fn as_prefix(&self) -> Option<String> {
        match self {
            Self::Id(_) => None,
            Self::NameOrPrefix(s) => Some(s.to_ascii_lowercase()).filter(|p| {
                p.len() >= Self::MIN_PREFIX && p.bytes().all(|b| b.is_ascii_hexdigit())
            }),
        }
    }
}

/// An empty key reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no key given: name a key by its name or key ID (see `tufa key list`)")]
pub struct NoKeyGiven;

impl FromStr for KeyRef {
    type Err = NoKeyGiven;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(NoKeyGiven);
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
    fn labels_of_other_tools_are_kept_as_they_are() {
        let name: KeyName = "alice".parse().unwrap();
        assert_eq!(KeyLabel::from_device("alice".into()), name);
        let foreign = KeyLabel::from_device("my key".into());
        assert_eq!(foreign, KeyLabel::Foreign("my key".into()));
        assert_eq!(foreign.as_str(), "my key");
        assert_ne!(foreign, name);
    }

    #[test]
    fn key_refs() {
        let id = "8c524f91aff70d4f305c6b5b2d24a269cf1c574342c737562b2c97b65d5d0b5b";
        assert!(matches!(id.parse::<KeyRef>().unwrap(), KeyRef::Id(_)));
        let short = "8C524F9".parse::<KeyRef>().unwrap();
        assert_eq!(short, KeyRef::NameOrPrefix("8C524F9".into()));
        assert_eq!(short.as_prefix().as_deref(), Some("8c524f9"));
        assert_eq!("8c524f".parse::<KeyRef>().unwrap().as_prefix(), None);
        assert_eq!("alice-key".parse::<KeyRef>().unwrap().as_prefix(), None);
        assert_eq!("".parse::<KeyRef>(), Err(NoKeyGiven));
    }
}
