//! The agent's errors, each naming the object and the fix, and their one mapping to gRPC codes.

use std::fmt;

use tonic::{Code, Status};
use tufa_proto::{DigestLengthError, KeyId, SignatureLengthError};

use crate::import::ImportError;
use crate::keys::{InvalidName, KeyLabel, KeyName, KeyRefError};

/// Everything that can go wrong in the agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// No device holds such a key.
    #[error("no key '{key}' in the agent: `tufa key list` shows the keys it holds")]
    KeyNotFound {
        /// The key as the caller named it.
        key: String,
    },
    /// A key the caller may not use, answered as a key that does not exist is (the same words
    /// whether it exists or not).
    #[error("no key '{key}' that uid {uid} may use: `tufa key list` shows the keys it may use (the agent's [[client]] rules decide which)")]
    KeyNotVisible {
        /// The key as the caller named it.
        key: String,
        /// The caller.
        uid: u32,
    },
    /// The caller may not do this: the `[[client]]` rules, or the default for an allowed uid
    /// without one.
    #[error("{who} may not {action}: {why}")]
    PermissionDenied {
        /// The caller, `uid N`.
        who: String,
        /// What it tried, naming the key: `sign with key 'root' (ID)`.
        action: String,
        /// Why not, and what to do.
        why: String,
    },
    /// A key ID prefix matches several keys.
    #[error("'{key}' matches several keys ({}): give more digits of the key ID", matches.join(", "))]
    AmbiguousKey {
        /// The prefix.
        key: String,
        /// The key IDs it matches.
        matches: Vec<String>,
    },
    /// A key with that name exists.
    #[error("a key named '{name}' already exists (key ID {key_id}): choose another name or delete it with `tufa key delete {name}`")]
    NameTaken {
        /// The name asked for.
        name: KeyName,
        /// The existing key's ID.
        key_id: KeyId,
    },
    /// The same key is already on a device.
    #[error("this key is already in the agent as '{name}' (key ID {key_id})")]
    KeyExists {
        /// What the device calls the existing key.
        name: KeyLabel,
        /// The key's ID.
        key_id: KeyId,
    },
    /// A YubiKey key another tool made, not adopted yet.
    #[error("the key in {reference} of {device} was made by another tool: adopt it first with `tufa key adopt {reference} --name NAME` (only tufa's marker is added; the key and its certificate stay as they are)")]
    NotAdopted {
        /// The device, described.
        device: String,
        /// Its `yubikey:SERIAL/SLOT`.
        reference: String,
    },
    /// A name the agent will not store.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// A digest that is not 32 bytes.
    #[error("a SHA-256 digest is 32 bytes, this one has {len}: send the digest itself, or the data to sign")]
    InvalidDigest {
        /// Length received.
        len: usize,
    },
    /// Any other malformed request.
    #[error("{0}")]
    InvalidArgument(String),
    /// A key file that cannot be imported.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// A certificate that cannot be stored with a key.
    #[error("certificate for key {key_id} refused: {reason}")]
    Certificate {
        /// The key it was meant for.
        key_id: KeyId,
        /// What is wrong.
        reason: String,
    },
    /// The device needs a PIN and has none.
    #[error("{device} is locked: {}", why.advice(name))]
    Locked {
        /// The device, described.
        device: String,
        /// Its name for `--device`.
        name: String,
        /// Why no PIN can be had.
        why: NoPin,
    },
    /// The device refused the PIN.
    #[error("wrong PIN for {device}{}: the agent has dropped it and will not try it again; unlock with the right PIN", retries.describe())]
    WrongPin {
        /// The device, described.
        device: String,
        /// What the device says about the tries left.
        retries: Retries,
    },
    /// The PIN is blocked.
    #[error("the user PIN of {device} is blocked: {fix}")]
    PinBlocked {
        /// The device, described.
        device: String,
        /// How to unblock it.
        fix: String,
    },
    /// One PIN try is left: the agent will not risk blocking the device.
    #[error(
        "{device} has one PIN try left: the agent will not try a PIN and risk blocking it; {fix}"
    )]
    LastPinTry {
        /// The device, described.
        device: String,
        /// How to reset the tries.
        fix: String,
    },
    /// A key that needs a touch was not touched in time.
    #[error("{device} was not touched in time: sign again and touch the key when it blinks")]
    TouchTimeout {
        /// The device, described.
        device: String,
    },
    /// The device is not there right now.
    #[error("{device} is not available: {cause}")]
    Unavailable {
        /// The device, described.
        device: String,
        /// What happened, in a form the agent acts on (a reset card is reopened).
        cause: Unavailable,
    },
    /// The PKCS#11 module cannot be loaded.
    #[error("cannot load PKCS#11 module {module}: {detail}; install it (SoftHSM: `apt-get install softhsm2`, module /usr/lib/softhsm/libsofthsm2.so) or fix pkcs11.module / --pkcs11-module")]
    Module {
        /// Path of the module.
        module: String,
        /// Loader's message.
        detail: String,
    },
    /// No token with the configured label.
    #[error("no token labelled '{label}' in PKCS#11 module {module} (tokens present: {}): create it (`softhsm/init-token.sh --label {label}`) or fix pkcs11.token / --pkcs11-token", if present.is_empty() { "none".to_owned() } else { present.join(", ") })]
    TokenNotFound {
        /// Path of the module.
        module: String,
        /// Label looked for.
        label: String,
        /// Labels that are there.
        present: Vec<String>,
    },
    /// Several tokens match the configured label (and serial, model, manufacturer).
    #[error("{} tokens labelled '{label}' in PKCS#11 module {module} (serials {}): the agent will not guess which one gets the PIN; name one with `uri = \"pkcs11:token={label};serial=SERIAL\"` in the [[pkcs11]] section", serials.len(), serials.join(", "))]
    AmbiguousToken {
        /// Path of the module.
        module: String,
        /// Label looked for.
        label: String,
        /// Serials of the matching tokens.
        serials: Vec<String>,
    },
    /// No configured device matches a request.
    #[error("no {wanted} is configured in this agent (configured: {}): check `tufa agent status`", if configured.is_empty() { "none".to_owned() } else { configured.join(", ") })]
    NoDevice {
        /// What was asked for.
        wanted: String,
        /// Device names the agent has.
        configured: Vec<String>,
    },
    /// The device cannot do what was asked.
    #[error("{0}")]
    Unsupported(String),
    /// A notary-server key was asked to sign over the socket.
    #[error("key {key_id} is notary-server's {role} key for {gun}: it signs only for notary-server, through the [notary_signer] listener")]
    ServerKey {
        /// The key.
        key_id: KeyId,
        /// Its role.
        role: String,
        /// Its GUN.
        gun: String,
    },
    /// A device error that has no better name.
    #[error("{device}: {operation} failed: {detail}")]
    Device {
        /// The device, described.
        device: String,
        /// What the agent was doing.
        operation: String,
        /// The device's error.
        detail: String,
    },
    /// A bug or an impossible state.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why no PIN can be had for a device right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoPin {
    /// Nothing configured and nothing cached (or the cache expired), or the device lost its
    /// login.
    NotGiven,
    /// The configured source cannot be read; says why.
    Unreadable(String),
    /// The configured PIN was refused by the device before and has not changed; names the
    /// source.
    Refused(String),
}

impl NoPin {
    fn advice(&self, name: &str) -> String {
        let unlock = format!("run `tufa agent unlock --device {name}`");
        match self {
            Self::NotGiven => format!(
                "{unlock}, or give the agent a PIN file \
                 (pin_file in the config, --pkcs11-pin-file)"
            ),
            Self::Unreadable(why) => {
                format!("its PIN cannot be read ({why}): fix that, or {unlock}")
            }
            Self::Refused(source) => format!(
                "the PIN from {source} was refused and has not changed since: \
                 correct it, or {unlock}"
            ),
        }
    }
}

/// Why a device is not there, each with what to check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unavailable {
    /// No card with the serial is connected, or pcscd does not see it.
    NotConnected,
    /// Another program holds the card exclusively.
    Busy,
    /// The smart-card service (pcscd) is not running.
    NoService {
        /// What the agent was doing.
        operation: String,
        /// The PC/SC error.
        error: String,
    },
    /// Another program reset the card: reopening it is enough.
    Reset {
        /// What the agent was doing.
        operation: String,
    },
    /// The card was unplugged or stopped answering.
    Gone {
        /// What the agent was doing.
        operation: String,
        /// The PC/SC error.
        error: String,
    },
    /// The PKCS#11 token is not present or stopped answering.
    TokenGone {
        /// What the agent was doing.
        operation: String,
        /// The PKCS#11 error.
        error: String,
    },
    /// A token with the configured label came back with another serial than before.
    Replaced {
        /// The serial the agent knew.
        expected: String,
        /// The serial of the token there now.
        found: String,
    },
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotConnected => f.write_str(
                "it is not connected (or pcscd does not see it): plug it in; \
                 the agent reconnects by itself",
            ),
            Self::Busy => f.write_str(
                "another program holds it exclusively (ykman, gpg's scdaemon, a PKCS#11 \
                 module...): close that program, then try again",
            ),
            Self::NoService { operation, error } => write!(
                f,
                "{operation} failed: pcscd is not running ({error}): \
                 start it (`systemctl start pcscd.socket` or `pcscd`)"
            ),
            Self::Reset { operation } => write!(
                f,
                "{operation} failed: the card was reset by another program"
            ),
            Self::Gone { operation, error } => write!(
                f,
                "{operation} failed ({error}): it was unplugged or stopped answering; \
                 plug it in again, the agent reconnects by itself"
            ),
            Self::TokenGone { operation, error } => write!(
                f,
                "{operation} failed ({error}); check the token is present, \
                 the agent reconnects by itself"
            ),
            Self::Replaced { expected, found } => write!(
                f,
                "a token with its label came back with serial {found}, not {expected}: \
                 the agent refuses it (no PIN, no keys go to another token); put the \
                 original token back, or restart the agent if the new token is meant to \
                 replace it"
            ),
        }
    }
}

/// What a device says about the PIN tries left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// An exact count (YubiKey).
    Exactly(u8),
    /// PKCS#11 `CKF_USER_PIN_FINAL_TRY`: one more wrong PIN blocks it.
    FinalTry,
    /// PKCS#11 `CKF_USER_PIN_COUNT_LOW`.
    Low,
    /// The device does not say.
    Unknown,
}

impl Retries {
    fn describe(&self) -> String {
        match self {
            Self::Exactly(n) => format!(" ({n} tries left before the PIN is blocked)"),
            Self::FinalTry => " (one try left: the next wrong PIN blocks it)".into(),
            Self::Low => " (the token reports few tries left)".into(),
            Self::Unknown => String::new(),
        }
    }
}

impl AgentError {
    /// The gRPC code for this error: the one place errors become codes.
    pub fn code(&self) -> Code {
        match self {
            Self::KeyNotFound { .. } | Self::KeyNotVisible { .. } => Code::NotFound,
            Self::PermissionDenied { .. } => Code::PermissionDenied,
            Self::NameTaken { .. } | Self::KeyExists { .. } => Code::AlreadyExists,
            Self::AmbiguousKey { .. }
            | Self::InvalidName(_)
            | Self::InvalidDigest { .. }
            | Self::InvalidArgument(_)
            | Self::Import(_)
            | Self::Certificate { .. } => Code::InvalidArgument,
            Self::WrongPin { .. } => Code::Unauthenticated,
            Self::Locked { .. }
            | Self::NotAdopted { .. }
            | Self::PinBlocked { .. }
            | Self::LastPinTry { .. }
            | Self::NoDevice { .. } => Code::FailedPrecondition,
            Self::Unavailable { .. }
            | Self::Module { .. }
            | Self::TokenNotFound { .. }
            | Self::AmbiguousToken { .. } => Code::Unavailable,
            Self::Unsupported(_) => Code::Unimplemented,
            Self::ServerKey { .. } => Code::PermissionDenied,
            Self::TouchTimeout { .. } => Code::DeadlineExceeded,
            Self::Device { .. } | Self::Internal(_) => Code::Internal,
        }
    }
}

impl From<DigestLengthError> for AgentError {
    fn from(e: DigestLengthError) -> Self {
        Self::InvalidDigest { len: e.len }
    }
}

impl From<KeyRefError> for AgentError {
    fn from(e: KeyRefError) -> Self {
        Self::InvalidArgument(e.to_string())
    }
}

impl From<SignatureLengthError> for AgentError {
    /// A device that returns a signature of the wrong length is broken, not the caller.
    fn from(e: SignatureLengthError) -> Self {
        Self::Internal(format!(
            "the device returned a {}-byte ECDSA signature where 64 bytes (r||s) were expected",
            e.len
        ))
    }
}

impl From<AgentError> for Status {
    fn from(e: AgentError) -> Self {
        Status::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Sha256Digest;

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

    #[test]
    fn a_locked_device_says_why_and_how_to_unlock() {
        let locked = |why| AgentError::Locked {
            device: "PKCS#11 token 'ci'".into(),
            name: "ci".into(),
            why,
        };
        let e = locked(NoPin::NotGiven);
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert!(
            e.to_string()
                .contains("run `tufa agent unlock --device ci`, or give the agent a PIN file"),
            "{e}"
        );
        let e = locked(NoPin::Refused("PIN file /p".into())).to_string();
        assert!(
            e.contains("the PIN from PIN file /p was refused and has not changed since"),
            "{e}"
        );
        let e = locked(NoPin::Unreadable("cannot read /p: gone".into())).to_string();
        assert!(
            e.contains("cannot read /p") && e.contains("tufa agent unlock --device ci"),
            "{e}"
        );
    }
}
