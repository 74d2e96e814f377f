//! Finding the token: loading the PKCS#11 module, the token by its label (slot numbers change)
//! and, once seen, its serial; what the token says about its PIN, its limits and its
//! mechanisms; and what its errors mean.
//!
//! What a token can do is asked of the module (mechanism list and flags, session limits,
//! attribute errors), never inferred from its name.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::session::Session;
use cryptoki::slot::{Limit, Slot, TokenInfo};

use crate::backend::TokenLocation;
use crate::error::{AgentError, NoPin, Unavailable};
use crate::pin::PinSource;

/// How to unblock a token's user PIN.
pub const PIN_BLOCKED_FIX: &str = "reset it with the security officer PIN (e.g. `softhsm2-util --init-pin` or `pkcs11-tool --init-pin --login --login-type so`); on a TPM, the dictionary-attack lockout ends by itself after the TPM's recovery time, or at once with `tpm2_dictionarylockout --clear-lockout`";

/// How to get a token's PIN out of its final try.
pub const FINAL_TRY_FIX: &str = "check the PIN, then log in once by hand with the right one to reset the counter (`pkcs11-tool --module MODULE --token-label LABEL --login --test`), or reset the PIN with the security officer PIN (`pkcs11-tool --init-pin --login --login-type so`); then unlock again";

/// What a token reports of itself (`CK_TOKEN_INFO`), beside its label.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenIdentity {
    /// Serial number.
    pub serial: String,
    /// Model.
    pub model: String,
    /// Manufacturer ID.
    pub manufacturer: String,
}

/// What the token says about its user PIN before a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinFlags {
    /// Nothing to worry about (or the token does not say).
    Fine,
    /// `CKF_USER_PIN_COUNT_LOW`.
    Low,
    /// `CKF_USER_PIN_FINAL_TRY`: the next wrong PIN blocks it.
    FinalTry,
    /// `CKF_USER_PIN_LOCKED`.
    Locked,
}

/// What the token can do, as its mechanism list and flags say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// `Ok` when it generates EC key pairs; else why not.
    pub generate: Result<(), String>,
    /// `Ok` when it signs with raw ECDSA; else why not.
    pub sign: Result<(), String>,
    /// The most sessions the agent may hold open (pool plus the login's anchor).
    pub max_sessions: usize,
}

/// Settings for one token.
#[derive(Clone, Debug)]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module.
    pub module: String,
    /// Token label.
    pub token: String,
    /// What else the token must report (from a `uri`), beside its label.
    pub select: TokenSelect,
    /// Where the user PIN comes from.
    pub pin: PinSource,
    /// Sessions kept open for signing (about the number of cores).
    pub sessions: usize,
    /// Where a refused PIN is remembered across restarts; `None`: until restart only.
    pub state_dir: Option<std::path::PathBuf>,
}

/// The serial, model and manufacturer a configured token must have, when the configuration
/// names them (`uri = "pkcs11:token=L;serial=S"`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenSelect {
    /// Serial number.
    pub serial: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Manufacturer ID.
    pub manufacturer: Option<String>,
}

impl TokenSelect {
    fn admits(&self, info: &TokenInfo) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.serial, info.serial_number())
            && eq(&self.model, info.model())
            && eq(&self.manufacturer, info.manufacturer_id())
    }
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

    /// Where the token is, with what it reported of itself.
    pub fn location(&self, identity: &TokenIdentity) -> TokenLocation {
        TokenLocation {
            module: self.config.module.clone(),
            token_label: self.config.token.clone(),
            token_serial: identity.serial.clone(),
            token_model: identity.model.clone(),
            token_manufacturer: identity.manufacturer.clone(),
        }
    }

    /// Finalizes and initializes the module again, so it looks for its tokens afresh (a module
    /// may see a re-created token, or reach a restarted TPM, only after that). No other call
    /// into the module may be in flight.
    pub fn reinitialize(&self) -> Result<(), AgentError> {
        if let Err(e) = self.ctx.clone().finalize() {
            tracing::debug!(module = %self.config.module, error = %e, "C_Finalize");
        }
        match self
            .ctx
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
            Err(e) => Err(AgentError::Module {
                module: self.config.module.clone(),
                detail: format!("C_Initialize: {e}"),
            }),
        }
    }

    /// The slot holding the token with the configured label, and the token's serial. Once the
    /// agent has seen the token (`known` serial), only a token with that serial is taken: a
    /// token with the same label and another serial is refused, not logged in to.
    pub fn find_slot(&self, known: Option<&str>) -> Result<(Slot, TokenIdentity), AgentError> {
        let slots = self
            .ctx
            .get_slots_with_token()
            .map_err(|e| self.classify("listing slots", e))?;
        let mut present = Vec::new();
        let mut matching = Vec::new();
        for slot in slots {
            let Ok(info) = self.ctx.get_token_info(slot) else {
                continue;
            };
            if info.label() == self.config.token && self.config.select.admits(&info) {
                matching.push((
                    slot,
                    TokenIdentity {
                        serial: info.serial_number().to_owned(),
                        model: info.model().to_owned(),
                        manufacturer: info.manufacturer_id().to_owned(),
                    },
                ));
            } else {
                present.push(info.label().to_owned());
            }
        }
        if let Some(known) = known {
            if let Some(found) = matching.iter().find(|(_, i)| i.serial == known) {
                return Ok(found.clone());
            }
            if let Some((_, TokenIdentity { serial: found, .. })) = matching.first() {
                tracing::error!(token = %self.config.token, expected = known, found = %found, "a token with another serial took the token's place; refusing it");
                return Err(AgentError::Unavailable {
                    device: self.describe(),
                    cause: Unavailable::Replaced {
                        expected: known.to_owned(),
                        found: found.clone(),
                    },
                });
            }
        }
        match matching.len() {
            0 => Err(AgentError::TokenNotFound {
                module: self.config.module.clone(),
                label: self.config.token.clone(),
                present,
            }),
            1 => Ok(matching.remove(0)),
            _ => Err(AgentError::AmbiguousToken {
                module: self.config.module.clone(),
                label: self.config.token.clone(),
                serials: matching.into_iter().map(|(_, i)| i.serial).collect(),
            }),
        }
    }

    /// What the token's flags say about the user PIN (read before every login), and its serial.
    pub fn pin_flags(&self, slot: Slot) -> Result<(PinFlags, String), CkError> {
        let i = self.ctx.get_token_info(slot)?;
        let flags = if i.user_pin_locked() {
            PinFlags::Locked
        } else if i.user_pin_final_try() {
            PinFlags::FinalTry
        } else if i.user_pin_count_low() {
            PinFlags::Low
        } else {
            PinFlags::Fine
        };
        Ok((flags, i.serial_number().to_owned()))
    }

    /// Asks the module what the token can do: `C_GetMechanismInfo` for the mechanisms the
    /// agent uses and their flags, and how many sessions it allows.
    pub fn capabilities(&self, slot: Slot) -> Capabilities {
        let check = |m: MechanismType,
                     what: &str,
                     flag: fn(&cryptoki::mechanism::MechanismInfo) -> bool| {
            match self.ctx.get_mechanism_info(slot, m) {
                Ok(info) if flag(&info) => Ok(()),
                Ok(_) => Err(format!("its {what} mechanism is not flagged for this use")),
                Err(CkError::Pkcs11(RvError::MechanismInvalid, _)) => {
                    Err(format!("it has no {what} mechanism"))
                }
                Err(e) => Err(format!("C_GetMechanismInfo({what}): {e}")),
            }
        };
        let generate = check(
            MechanismType::ECC_KEY_PAIR_GEN,
            "CKM_EC_KEY_PAIR_GEN",
            |i| i.generate_key_pair(),
        );
        let sign = check(MechanismType::ECDSA, "CKM_ECDSA", |i| i.sign());
        let info = self.ctx.get_token_info(slot).ok();
        Capabilities {
            generate,
            sign,
            max_sessions: info.as_ref().map_or(usize::MAX, session_limit),
        }
    }

    /// The serial of the token in `slot` now.
    pub fn serial(&self, slot: Slot) -> Result<String, CkError> {
        Ok(self.ctx.get_token_info(slot)?.serial_number().to_owned())
    }

    /// Opens a read-write session on the token's slot.
    pub fn open_session(&self, slot: Slot) -> Result<Session, CkError> {
        self.ctx.open_rw_session(slot)
    }

    /// Maps an error of `operation` on this token.
    pub fn classify(&self, operation: &str, e: CkError) -> AgentError {
        classify(&self.describe(), &self.config.token, operation, e)
    }
}

/// The most sessions a token allows at once, read-write and in all.
fn session_limit(info: &TokenInfo) -> usize {
    let max = |l: Limit| match l {
        Limit::Max(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    max(info.max_session_count()).min(max(info.max_rw_session_count()))
}

/// Whether an error may mean the token ran out of room for loaded objects: a TPM holds only a
/// few (TPM_RC_OBJECT_MEMORY, which tpm2-pkcs11 reports as `CKR_GENERAL_ERROR`); freeing the
/// token's loaded objects and trying once more is the remedy.
pub fn may_be_out_of_objects(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::GeneralError | RvError::DeviceMemory | RvError::HostMemory,
            _
        )
    )
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
