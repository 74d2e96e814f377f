//! The agent's errors, each naming the object and the fix, and their one mapping to gRPC codes.

use tonic::{Code, Status};

use crate::import::ImportError;

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
        /// The name.
        name: String,
        /// The existing key's ID.
        key_id: String,
    },
    /// The same key is already on a device.
    #[error("this key is already in the agent as '{name}' (key ID {key_id})")]
    KeyExists {
        /// Name of the existing key.
        name: String,
        /// Its ID.
        key_id: String,
    },
    /// A name the agent will not store.
    #[error("invalid key name '{name}': {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// What is wrong.
        reason: String,
    },
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
        /// The key.
        key_id: String,
        /// What is wrong.
        reason: String,
    },
    /// The device needs a PIN and has none.
    #[error("{device} is locked: run `tufa agent unlock --device {name}`, or give the agent a PIN file (pin_file in the config, --pkcs11-pin-file)")]
    Locked {
        /// The device, described.
        device: String,
        /// Its name for `--device`.
        name: String,
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
    #[error("{device} has one PIN try left: the agent will not try a PIN and risk blocking it; unblock the PIN with the PUK (`ykman --device {serial} piv access unblock-pin`), then unlock again")]
    LastPinTry {
        /// The device, described.
        device: String,
        /// Its serial.
        serial: u32,
    },
    /// A key that needs a touch was not touched in time.
    #[error("{device} was not touched in time: sign again and touch the key when it blinks")]
    TouchTimeout {
        /// The device, described.
        device: String,
    },
    /// The device is not there right now.
    #[error("{device} is not available: {detail}")]
    Unavailable {
        /// The device, described.
        device: String,
        /// What happened and what to check.
        detail: String,
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
            Self::KeyNotFound { .. } => Code::NotFound,
            Self::NameTaken { .. } | Self::KeyExists { .. } => Code::AlreadyExists,
            Self::AmbiguousKey { .. }
            | Self::InvalidName { .. }
            | Self::InvalidDigest { .. }
            | Self::InvalidArgument(_)
            | Self::Import(_)
            | Self::Certificate { .. } => Code::InvalidArgument,
            Self::WrongPin { .. } => Code::Unauthenticated,
            Self::Locked { .. }
            | Self::PinBlocked { .. }
            | Self::LastPinTry { .. }
            | Self::NoDevice { .. } => Code::FailedPrecondition,
            Self::Unavailable { .. } | Self::Module { .. } | Self::TokenNotFound { .. } => {
                Code::Unavailable
            }
            Self::Unsupported(_) => Code::Unimplemented,
            Self::TouchTimeout { .. } => Code::DeadlineExceeded,
            Self::Device { .. } | Self::Internal(_) => Code::Internal,
        }
    }
}

impl From<tufa_proto::DigestLengthError> for AgentError {
    fn from(e: tufa_proto::DigestLengthError) -> Self {
        Self::InvalidDigest { len: e.len }
    }
}

impl From<AgentError> for Status {
    fn from(e: AgentError) -> Self {
        Status::new(e.code(), e.to_string())
    }
}
