//! The one trait every device implements, and the types it speaks.
//!
//! One [`Backend`] value is one device: a PKCS#11 token or a YubiKey. Its methods block (they
//! talk to hardware), so the server calls them on blocking workers, never on the executor. The
//! trait is device work only: the PIN bookkeeping every device shares is [`crate::pin`]'s, and
//! the words people read are the server's.

use std::fmt;

use crate::error::AgentError;
use crate::import::ImportedKey;
use crate::keys::{EcdsaSignature, KeyId, KeyLabel, KeyName, Sha256Digest};
use crate::pin::PinControl;
use crate::tag::ServerTag;

pub mod piv;
pub mod pkcs11;
pub mod yubikey;

pub use piv::PivSlot;

/// Which kind of device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// A PKCS#11 token.
    Pkcs11,
    /// A YubiKey's PIV application.
    YubiKey,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pkcs11 => "pkcs11",
            Self::YubiKey => "yubikey",
        })
    }
}

/// A token of a PKCS#11 module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenLocation {
    /// Path of the module.
    pub module: String,
    /// Token label (slot numbers change, labels do not).
    pub token_label: String,
    /// Token serial number as the token reports it; empty while the token is absent.
    pub token_serial: String,
    /// Token model, as reported when the agent first saw it.
    pub token_model: String,
    /// Token manufacturer ID, as reported when the agent first saw it.
    pub token_manufacturer: String,
}

/// Where a device is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceLocation {
    /// A PKCS#11 token.
    Pkcs11(TokenLocation),
    /// A YubiKey, by serial.
    YubiKey {
        /// Device serial.
        serial: u32,
    },
}

/// Where a key lives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// On a PKCS#11 token.
    Pkcs11(TokenLocation),
    /// In a YubiKey PIV slot.
    YubiKey {
        /// Device serial.
        serial: u32,
        /// The slot.
        slot: PivSlot,
    },
}

/// When a device asks for the PIN before using a key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinPolicy {
    /// Not known, or the device's default.
    #[default]
    Unknown,
    /// Never.
    Never,
    /// Once per session.
    Once,
    /// Before every use.
    Always,
}

/// When a device asks for a touch before using a key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TouchPolicy {
    /// Not known, or the device's default.
    #[default]
    Unknown,
    /// Never.
    Never,
    /// Before every use.
    Always,
    /// Once, then cached for a few seconds.
    Cached,
}

/// How the private key came to be on the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// Not known.
    #[default]
    Unknown,
    /// Generated on the device; it never existed elsewhere.
    Generated,
    /// Imported from software.
    Imported,
}

/// A key as a device reports it.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// TUF key ID of the `ecdsa` key object built from the public key.
    pub id: KeyId,
    /// The name given at generation or import, or another tool's label.
    pub name: KeyLabel,
    /// Kind of the device holding the key.
    pub backend: BackendKind,
    /// Where the key lives.
    pub location: Location,
    /// SubjectPublicKeyInfo, DER.
    pub public_spki: Vec<u8>,
    /// X.509 certificate, DER, if one is stored with the key.
    pub certificate: Option<Vec<u8>>,
    /// PIN policy, where the device knows it.
    pub pin_policy: PinPolicy,
    /// Touch policy, where the device knows it.
    pub touch_policy: TouchPolicy,
    /// Generated on the device or imported.
    pub origin: Origin,
    /// The PKCS#11 `CKA_ID` of the key's objects (empty on a YubiKey).
    pub object_id: Vec<u8>,
    /// Made by another tool: on a PKCS#11 token a key whose `CKA_ID` is not its key ID (it
    /// signs as it is); on a YubiKey a key without tufa's marker, which signs once adopted.
    pub other_tool: bool,
}

impl KeyInfo {
    /// The key's reference as other tools write it: an RFC 7512 `pkcs11:` URI on a token,
    /// `yubikey:SERIAL/SLOT` on a YubiKey.
    pub fn uri(&self) -> String {
        match &self.location {
            Location::Pkcs11(t) => crate::keys::uri::key_uri(
                &t.token_label,
                &t.token_serial,
                self.name.as_str(),
                &self.object_id,
            ),
            Location::YubiKey { serial, slot } => format!("yubikey:{serial}/{slot}"),
        }
    }
}

/// What to generate or import, and where on the device.
#[derive(Clone, Debug)]
pub struct GenerateSpec {
    /// Name of the new key.
    pub name: KeyName,
    /// Device-specific wishes.
    pub placement: Placement,
}

/// Where on its device a new key goes, with the knobs only some devices have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Placement {
    /// Wherever the device puts new keys, with its defaults.
    #[default]
    Default,
    /// A YubiKey PIV slot and policies; other devices refuse it.
    YubiKey {
        /// The slot, or the first free one.
        slot: Option<PivSlot>,
        /// PIN policy; `Unknown`: once per session.
        pin_policy: PinPolicy,
        /// Touch policy; `Unknown`: the device's configured default.
        touch_policy: TouchPolicy,
    },
}

/// A device's proof that a key was made on it.
#[derive(Clone, Debug)]
pub struct Attestation {
    /// The key's attestation certificate, DER.
    pub certificate: Vec<u8>,
    /// The device's attestation certificate that signed it, DER.
    pub intermediate: Vec<u8>,
}

/// One device holding keys. Every method may block on hardware. Unlocking and locking come
/// with [`PinControl`], written once for every device.
pub trait Backend: PinControl + Send + Sync {
    /// The kind of device.
    fn kind(&self) -> BackendKind;
    /// The device's name: token label or YubiKey serial.
    fn name(&self) -> &str;
    /// Where the device is.
    fn location(&self) -> DeviceLocation;
    /// Every signing key on the device.
    fn keys(&self) -> Result<Vec<KeyInfo>, AgentError>;
    /// Generates an ECDSA P-256 key whose private half never leaves the device.
    fn generate(&self, spec: &GenerateSpec) -> Result<KeyInfo, AgentError>;
    /// Stores a software key on the device; the caller zeroizes its copy.
    fn import(&self, spec: &GenerateSpec, key: &ImportedKey) -> Result<KeyInfo, AgentError>;
    /// Removes a key and everything stored with it.
    fn delete(&self, id: &KeyId) -> Result<(), AgentError>;
    /// Stores a DER certificate with a key, replacing any earlier one.
    fn set_certificate(&self, id: &KeyId, der: &[u8]) -> Result<(), AgentError>;
    /// Signs a SHA-256 digest; returns raw r||s.
    fn sign(&self, id: &KeyId, digest: &Sha256Digest) -> Result<EcdsaSignature, AgentError>;
    /// Takes on a key another tool made in a YubiKey slot (0x9a, 0x9c...) under `name`: tufa's
    /// marker goes next to it, the key and its certificate stay as they are.
    fn adopt(&self, slot: u8, name: &KeyName) -> Result<KeyInfo, AgentError> {
        let _ = (slot, name);
        Err(AgentError::Unsupported(format!(
            "{} keeps no marker to adopt a key into: a PKCS#11 key made by another tool signs as it is",
            self.kind()
        )))
    }
    /// The device's attestation of a key; `None` from devices that have no attestation.
    fn attest(&self, id: &KeyId) -> Result<Option<Attestation>, AgentError> {
        let _ = id;
        Ok(None)
    }
    /// The tags of the notary-server keys on the device ([`crate::tag`]); a device that cannot
    /// hold server keys has none.
    fn server_tags(&self) -> Result<Vec<ServerTag>, AgentError> {
        Ok(Vec::new())
    }
    /// One key's tag, read from the device: `None` if it is not a server key.
    fn server_tag(&self, id: &KeyId) -> Result<Option<ServerTag>, AgentError> {
        Ok(self.server_tags()?.into_iter().find(|t| t.key_id == *id))
    }
    /// Tags a key as a server key, replacing the tag it has (deleting the key removes it).
    fn set_server_tag(&self, tag: &ServerTag) -> Result<(), AgentError> {
        let _ = tag;
        Err(AgentError::Unsupported(format!(
            "{} devices cannot hold notary-server keys: use a PKCS#11 token",
            self.kind()
        )))
    }
}
