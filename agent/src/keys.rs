//! The values a key is named and used by: its name, how a request refers to it, what a device
//! calls it, and (from `tufa-proto`) the digest it signs and the signature it makes.
//!
//! Nothing here talks to a device or imports another module of the agent: backends, keyring and
//! server all speak these types.

use std::fmt;
use std::str::FromStr;

pub use tufa_proto::{EcdsaSignature, KeyId, Sha256Digest};

pub mod uri;

pub use uri::{ObjectType, Pkcs11Uri, UriError};

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

/// How a request names a key: a full key ID, a key ID prefix, a key name, an RFC 7512
/// `pkcs11:` URI, or `yubikey:SERIAL/SLOT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    /// A full 64-digit key ID.
    Id(KeyId),
    /// A name (or another tool's label), or a key ID prefix of at least 7 hex digits; names win
    /// over prefixes.
    NameOrPrefix(String),
    /// A `pkcs11:` URI naming a key by token, label, `CKA_ID`... (and nothing that has no use
    /// in a key reference).
    Uri(Box<Pkcs11Uri>),
    /// A YubiKey PIV slot: `yubikey:SERIAL/SLOT`, the slot as two hex digits (byte here; the
    /// YubiKey backend says which slots it uses).
    Slot {
        /// The YubiKey's serial.
        serial: u32,
        /// The slot, e.g. 0x9c.
        slot: u8,
    },
}

/// The attributes a `pkcs11:` key reference may carry.
pub const KEY_URI_ATTRIBUTES: &[&str] = &[
    "token",
    "manufacturer",
    "serial",
    "model",
    "object",
    "id",
    "type",
    "module-path",
];

impl KeyRef {
    /// The shortest key ID prefix accepted, as `docker trust` and `notary` print them.
    pub const MIN_PREFIX: usize = 7;

    /// The key ID prefix this reference could be, in lowercase, if it is long enough to be one.
    pub fn as_prefix(&self) -> Option<String> {
        match self {
            Self::NameOrPrefix(s) => Some(s.to_ascii_lowercase()).filter(|p| {
                p.len() >= Self::MIN_PREFIX && p.bytes().all(|b| b.is_ascii_hexdigit())
            }),
            _ => None,
        }
    }
}

/// A key reference that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefError {
    /// Nothing given.
    #[error("no key given: name a key by its name, key ID, pkcs11: URI or yubikey:SERIAL/SLOT (see `tufa key list`)")]
    Empty,
    /// A `pkcs11:` URI that is not valid, or names what a key reference cannot.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// A `yubikey:` reference that is not `yubikey:SERIAL/SLOT`.
    #[error(
        "invalid YubiKey slot reference '{0}': write yubikey:SERIAL/SLOT, e.g. yubikey:12345678/9c"
    )]
    Slot(String),
}

impl FromStr for KeyRef {
    type Err = KeyRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(KeyRefError::Empty);
        }
        let scheme = |p: &str| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
        if scheme("pkcs11:") {
            let uri: Pkcs11Uri = s.parse()?;
            uri.refuse(KEY_URI_ATTRIBUTES, "a key reference")?;
            if let Some(t) = uri
                .object_type
                .filter(|t| !matches!(t, ObjectType::Private | ObjectType::Public))
            {
                return Err(KeyRefError::Uri(UriError(format!(
                    "type={t} names no key: a key reference has type=private or type=public (either names the key pair)"
                ))));
            }
            return Ok(Self::Uri(Box::new(uri)));
        }
        if scheme("yubikey:") {
            let bad = || KeyRefError::Slot(s.to_owned());
            let (serial, slot) = s[8..].split_once('/').ok_or_else(bad)?;
            let serial = serial.parse().map_err(|_| bad())?;
            let slot = slot.trim_start_matches("0x");
            if slot.len() != 2 {
                return Err(bad());
            }
            let slot = u8::from_str_radix(slot, 16).map_err(|_| bad())?;
            return Ok(Self::Slot { serial, slot });
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
            Self::Uri(u) => {
                let what: Vec<String> = [
                    u.token.as_ref().map(|t| format!("token '{t}'")),
                    u.object.as_ref().map(|o| format!("object '{o}'")),
                    u.id.as_ref().map(|i| format!("id {}", hex::encode(i))),
                ]
                .into_iter()
                .flatten()
                .collect();
                write!(
                    f,
                    "pkcs11: URI ({})",
                    if what.is_empty() {
                        "any key".into()
                    } else {
                        what.join(", ")
                    }
                )
            }
            Self::Slot { serial, slot } => write!(f, "yubikey:{serial}/{slot:02x}"),
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
        assert_eq!("".parse::<KeyRef>(), Err(KeyRefError::Empty));
        assert_eq!(
            "yubikey:12345678/9c".parse::<KeyRef>().unwrap(),
            KeyRef::Slot {
                serial: 12345678,
                slot: 0x9c
            }
        );
        assert!("yubikey:x/9c".parse::<KeyRef>().is_err());
        assert!("yubikey:1/9".parse::<KeyRef>().is_err());
        let KeyRef::Uri(u) = "pkcs11:token=dev;object=alice".parse::<KeyRef>().unwrap() else {
            panic!("not a URI")
        };
        assert_eq!(u.object.as_deref(), Some("alice"));
        for bad in [
            "pkcs11:token=dev?pin-source=file:/p",
            "pkcs11:token=dev;slot-id=1",
            "pkcs11:object=a;type=cert",
            "pkcs11:object=a?pin-value=123456",
        ] {
            assert!(bad.parse::<KeyRef>().is_err(), "{bad}");
        }
    }
}
