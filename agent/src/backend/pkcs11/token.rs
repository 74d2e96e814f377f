//! Finding the token: loading the PKCS#11 module, the token by its label (slot numbers change),
//! what the token says about its PIN, and what its errors mean.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::Session;
use cryptoki::slot::Slot;

use crate::backend::TokenLocation;
use crate::error::{AgentError, NoPin, Retries, Unavailable};
use crate::pin::PinSource;

/// How to unblock a token's user PIN.
pub const PIN_BLOCKED_FIX: &str = "reset it with the security officer PIN (e.g. `softhsm2-util --init-pin` or `pkcs11-tool --init-pin --login --login-type so`)";

/// Settings for one token.
#[derive(Clone, Debug)]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module.
    pub module: String,
    /// Token label.
    pub token: String,
    /// Where the user PIN comes from.
    pub pin: PinSource,
    /// Sessions kept open for signing (about the number of cores).
    pub sessions: usize,
}

/// A loaded module and the label of the token to use in it.
pub struct Token {
    /// The settings.
    pub config: Pkcs11Config,
    ctx: Pkcs11,
}

impl Token {
    /// Loads and initializes the module; fails with the module path if it is missing or broken.
    pub fn load(config: Pkcs11Config) -> Result<Self, AgentError> {
        let module_err = |detail: String| AgentError::Module {
            module: config.module.clone(),
            detail,
        };
        if !std::path::Path::new(&config.module).exists() {
            return Err(module_err("no such file".into()));
        }
        let ctx = Pkcs11::new(&config.module).map_err(|e| module_err(e.to_string()))?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(module_err(format!("C_Initialize: {e}"))),
        }
        Ok(Self { config, ctx })
    }

    /// The token, described for messages.
    pub fn describe(&self) -> String {
        format!(
            "PKCS#11 token '{}' (module {})",
            self.config.token, self.config.module
        )
    }

    /// Where the token is, with the serial it reported.
    pub fn location(&self, serial: String) -> TokenLocation {
        TokenLocation {
            module: self.config.module.clone(),
            token_label: self.config.token.clone(),
            token_serial: serial,
        }
    }

    /// The slot holding the token with the configured label, and the token's serial.
    pub fn find_slot(&self) -> Result<(Slot, String), AgentError> {
        let slots = self
            .ctx
            .get_slots_with_token()
            .map_err(|e| AgentError::Device {
                device: self.describe(),
                operation: "listing slots".into(),
                detail: e.to_string(),
            })?;
        let mut present = Vec::new();
        for slot in slots {
            let Ok(info) = self.ctx.get_token_info(slot) else {
                continue;
            };
            if info.label() == self.config.token {
                return Ok((slot, info.serial_number().to_owned()));
            }
            present.push(info.label().to_owned());
        }
        Err(AgentError::TokenNotFound {
            module: self.config.module.clone(),
            label: self.config.token.clone(),
            present,
        })
    }

    /// Opens a read-write session on the token's slot.
    pub fn open_session(&self, slot: Slot) -> Result<Session, CkError> {
        self.ctx.open_rw_session(slot)
    }

    /// What the token says about the user PIN's tries left.
    pub fn retries(&self, slot: Slot) -> Retries {
        match self.ctx.get_token_info(slot) {
            Ok(i) if i.user_pin_final_try() => Retries::FinalTry,
            Ok(i) if i.user_pin_count_low() => Retries::Low,
            _ => Retries::Unknown,
        }
    }

    /// Maps an error of `operation` on this token.
    pub fn classify(&self, operation: &str, e: CkError) -> AgentError {
        classify(&self.describe(), &self.config.token, operation, e)
    }
}

/// Maps a PKCS#11 error: a token that is gone is `Unavailable` (the caller drops the
/// connection and the next call reconnects), a lost login is `Locked`, the rest a device error.
fn classify(device: &str, token: &str, operation: &str, e: CkError) -> AgentError {
    match e {
        CkError::Pkcs11(
            RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::SlotIdInvalid
            | RvError::DeviceError
            | RvError::TokenNotRecognized
            | RvError::CryptokiNotInitialized,
            _,
        ) => AgentError::Unavailable {
            device: device.to_owned(),
            cause: Unavailable::TokenGone {
                operation: operation.to_owned(),
                error: e.to_string(),
            },
        },
        CkError::Pkcs11(RvError::UserNotLoggedIn, _) => AgentError::Locked {
            device: device.to_owned(),
            name: token.to_owned(),
            why: NoPin::NotGiven,
        },
        other => AgentError::Device {
            device: device.to_owned(),
            operation: operation.to_owned(),
            detail: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vanished_token_is_unavailable_and_named() {
        use cryptoki::context::Function;
        let dev = "PKCS#11 token 'ci' (module /m.so)";
        for rv in [
            RvError::DeviceRemoved,
            RvError::TokenNotPresent,
            RvError::SessionHandleInvalid,
        ] {
            let e = classify(dev, "ci", "signing", CkError::Pkcs11(rv, Function::Sign));
            assert_eq!(e.code(), tonic::Code::Unavailable);
            let msg = e.to_string();
            assert!(
                msg.contains("'ci'") && msg.contains("/m.so") && msg.contains("reconnects"),
                "{msg}"
            );
        }
        let e = classify(
            dev,
            "ci",
            "signing",
            CkError::Pkcs11(RvError::UserNotLoggedIn, Function::Sign),
        );
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert!(e.to_string().contains("tufa agent unlock --device ci"));
        let e = classify(
            dev,
            "ci",
            "signing",
            CkError::Pkcs11(RvError::GeneralError, Function::Sign),
        );
        assert_eq!(e.code(), tonic::Code::Internal);
    }
}
