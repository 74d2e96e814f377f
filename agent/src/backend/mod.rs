//! The one trait every device implements, and the types it speaks.
//!
//! One [`Backend`] value is one device: a PKCS#11 token or a YubiKey. Its methods block (they
//! talk to hardware), so the server calls them on blocking workers, never on the executor.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use tufa_proto::KeyId;

use crate::error::AgentError;
use crate::import::ImportedKey;
use crate::keys::{EcdsaSignature, KeyName, Sha256Digest};

pub mod pkcs11;
pub mod yubikey;

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

/// Where a device, or a key on it, lives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// A token of a PKCS#11 module.
    Pkcs11 {
        /// Path of the module.
        module: String,
        /// Token label.
        token_label: String,
        /// Token serial number, when the token is present.
        token_serial: String,
    },
    /// A YubiKey PIV slot (slot empty for the device itself).
    YubiKey {
        /// Device serial.
        serial: u32,
        /// Slot as two hex digits.
        slot: String,
    },
}

/// When a device asks for the PIN before using a key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    /// Name given at generation or import.
    pub name: String,
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
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateSpec {
    /// Name of the new key.
    pub name: KeyName,
    /// PIN policy (YubiKey).
    pub pin_policy: PinPolicy,
    /// Touch policy (YubiKey).
    pub touch_policy: TouchPolicy,
    /// Slot (YubiKey), or the first free one.
    pub slot: Option<String>,
}

/// A device's state for `status`.
#[derive(Clone, Debug)]
pub struct DeviceStatus {
    /// The device answers.
    pub present: bool,
    /// A PIN must be given before it can sign.
    pub locked: bool,
    /// Why it is absent or locked, in words.
    pub detail: String,
    /// Number of keys, when present.
    pub key_count: usize,
}

/// A device's proof that a key was made on it.
#[derive(Clone, Debug)]
pub struct Attestation {
    /// The key's attestation certificate, DER.
    pub certificate: Vec<u8>,
    /// The device's attestation certificate that signed it, DER.
    pub intermediate: Vec<u8>,
}

impl DeviceStatus {
    /// The status of a device whose key listing gave `keys`.
    pub fn from_keys(keys: Result<&[KeyInfo], &AgentError>, locked: bool) -> Self {
        match keys {
            Ok(keys) => Self {
                present: true,
                locked,
                detail: if locked {
                    "locked: `tufa agent unlock` gives it a PIN".into()
                } else {
                    String::new()
                },
                key_count: keys.len(),
            },
            Err(e) => Self {
                present: false,
                locked,
                detail: e.to_string(),
                key_count: 0,
            },
        }
    }
}

/// One device holding keys. Every method may block on hardware.
pub trait Backend: Send + Sync {
    /// The kind of device.
    fn kind(&self) -> BackendKind;
    /// The device's name: token label or YubiKey serial.
    fn name(&self) -> &str;
    /// Where the device is.
    fn location(&self) -> Location;
    /// Present, locked, key count.
    fn status(&self) -> DeviceStatus;
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
    /// Checks a PIN with the device and keeps it for `ttl`; a wrong PIN is dropped at once.
    fn unlock(&self, pin: SecretString, ttl: Duration) -> Result<(), AgentError>;
    /// Forgets any cached PIN and logs out.
    fn lock(&self);
    /// Whether the device needs a PIN from a client (none configured, none cached).
    fn needs_pin(&self) -> bool;
    /// The device's attestation of a key; devices without attestation refuse.
    fn attest(&self, id: &KeyId) -> Result<Attestation, AgentError> {
        let _ = id;
        Err(AgentError::Unsupported(format!(
            "{} devices cannot attest keys: only YubiKeys can",
            self.kind()
        )))
    }
}
