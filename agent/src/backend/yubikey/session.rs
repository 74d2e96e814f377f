//! The card session: opening the card by serial and keeping it, presenting the PIN, the
//! management key, and the slot inventory read once per connection.
//!
//! One `YubiKey` handle per device, opened by serial and kept: opening connects to every card
//! and dropping a handle resets the card, so the agent never opens it per call. A PC/SC error
//! that means the card went away drops the handle and the call fails `Unavailable`; the next
//! call opens it again. A card reset by another program is reopened and the call run once more.
//!
//! Before any VERIFY the agent reads the retry counter and refuses when one try is left, so no
//! code path can block a card by itself.

use std::path::PathBuf;

use secrecy::{ExposeSecret as _, SecretString};
use yubikey::piv::{self, ManagementSlotId, SlotAlgorithmId, SlotId};
use yubikey::{MgmAlgorithmId, MgmKey, Serial, YubiKey};

use super::classify::{classify, classify_open};
use super::slot::{self, SlotUse};
use crate::backend::{KeyInfo, PivSlot, TouchPolicy};
use crate::error::{AgentError, NoPin, Retries, Unavailable};
use crate::keys::KeyId;
use crate::pin::{Login, LoginError, PinGate, PinOrigin, PinSource};

/// Where the management key comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ManagementKey {
    /// The factory default: 3DES before firmware 5.7, AES-192 from 5.7.
    #[default]
    Default,
    /// PIN-protected, stored on the card as `ykman piv access change-management-key --protect`
    /// does (read after the PIN is verified).
    Protected,
    /// Hex in the first line of a file (3DES or AES-192: 48 digits; AES-128: 32; AES-256: 64).
    File(PathBuf),
}

/// Settings for one YubiKey.
#[derive(Clone, Debug)]
pub struct YubiKeyConfig {
    /// Device serial.
    pub serial: u32,
    /// Where the PIV PIN comes from.
    pub pin: PinSource,
    /// Where the management key comes from.
    pub management_key: ManagementKey,
    /// Touch policy of new keys when the request names none.
    pub touch_policy: TouchPolicy,
    /// Where a refused PIN is remembered across restarts; `None`: until restart only.
    pub state_dir: Option<PathBuf>,
}

impl YubiKeyConfig {
    /// The card, described for messages.
    pub fn describe(&self) -> String {
        format!("YubiKey serial {}", self.serial)
    }
}

/// Everything about a card that changes: the connection and the PIN gate, under one lock.
pub struct State {
    /// The open card, if any.
    pub conn: Option<Connection>,
    /// The PIN bookkeeping.
    pub gate: PinGate,
}

/// An open card.
pub struct Connection {
    /// The crate's handle.
    pub yk: YubiKey,
    // Where the PIN the card holds as verified came from.
    verified: Option<PinOrigin>,
    // The slots' keys, read once per connection (a re-plug reads them again).
    slots: Option<Vec<(PivSlot, SlotUse)>>,
}

/// The card of a backend with its connection borrowed from the locked [`State`].
pub struct Card<'a> {
    /// The card's settings.
    pub config: &'a YubiKeyConfig,
    conn: &'a mut Option<Connection>,
}

/// Runs `f` on the open card; a card reset by another program is reopened and `f` run once
/// more (no PIN is tried twice: a reopened card needs the accepted PIN again, not a new one).
/// Any other loss of the card drops the connection, so the next call opens it again.
pub fn with_card<T>(
    config: &YubiKeyConfig,
    st: &mut State,
    operation: &str,
    mut f: impl FnMut(&mut Card<'_>, &mut PinGate) -> Result<T, AgentError>,
) -> Result<T, AgentError> {
    let State { conn, gate } = st;
    let mut card = Card { config, conn };
    match f(&mut card, gate) {
        Err(AgentError::Unavailable {
            cause: Unavailable::Reset { .. },
            ..
        }) => {
            tracing::info!(
                serial = config.serial,
                "card was reset by another program; reopening"
            );
            card.disconnect();
            f(&mut card, gate)
        }
        other => other.inspect_err(|e| {
            if let AgentError::Unavailable { .. } = e {
                card.disconnect();
            }
            tracing::debug!(serial = config.serial, operation, "failed");
        }),
    }
}

impl<'a> Card<'a> {
    /// The card with this connection slot.
    pub fn new(config: &'a YubiKeyConfig, conn: &'a mut Option<Connection>) -> Self {
        Self { config, conn }
    }

    /// The card, described for messages.
    pub fn describe(&self) -> String {
        self.config.describe()
    }

    /// The open card, opening it by serial if needed.
    pub fn connect(&mut self) -> Result<&mut Connection, AgentError> {
        if self.conn.is_none() {
            let yk = YubiKey::open_by_serial(Serial(self.config.serial))
                .map_err(|e| classify_open(&self.describe(), e))?;
            let v = yk.version();
            if v.major < 5 || (v.major == 5 && v.minor < 3) {
                return Err(AgentError::Unsupported(format!(
                    "{} has firmware {v}: tufa needs firmware 5.3 or later (GET METADATA)",
                    self.describe(),
                )));
            }
            *self.conn = Some(Connection {
                yk,
                verified: None,
                slots: None,
            });
        }
        self.conn
            .as_mut()
            .ok_or_else(|| AgentError::Internal("connection vanished".into()))
    }

    /// Drops the handle; the next call opens the card again.
    pub fn disconnect(&mut self) {
        *self.conn = None;
    }

    /// Maps a crate error; a card that is gone drops the handle, so the next call reopens it.
    pub fn fail(&mut self, operation: &str, e: yubikey::Error) -> AgentError {
        let err = classify(&self.describe(), operation, e);
        if matches!(err, AgentError::Unavailable { .. }) {
            self.disconnect();
        }
        err
    }

    /// The error of a key that needs a PIN the card does not hold.
    pub fn locked(&self) -> AgentError {
        AgentError::Locked {
            device: self.describe(),
            name: self.config.serial.to_string(),
            why: NoPin::NotGiven,
        }
    }

    /// VERIFY, after checking that a wrong PIN could not block the card.
    fn present_pin(&mut self, pin: &SecretString, origin: PinOrigin) -> Result<(), LoginError> {
        // A PIV PIN has 6 to 8 characters: any other cannot be right, so no try is spent on it.
        if !(6..=8).contains(&pin.expose_secret().len()) {
            return Err(LoginError::Refused(AgentError::WrongPin {
                device: format!(
                    "{} (a PIV PIN has 6 to 8 characters, this one has not; no try was used)",
                    self.describe()
                ),
                retries: Retries::Unknown,
            }));
        }
        let conn = self.connect()?;
        conn.verified = None;
        let tries = match conn.yk.get_pin_retries() {
            Ok(t) => t,
            Err(e) => return Err(self.fail("reading the PIN retry counter", e).into()),
        };
        if tries == 0 {
            return Err(self.pin_blocked().into());
        }
        if tries == 1 {
            return Err(LoginError::Failed(AgentError::LastPinTry {
                device: self.describe(),
                fix: format!(
                    "unblock the PIN with the PUK (`ykman --device {} piv access unblock-pin`), then unlock again",
                    self.config.serial
                ),
            }));
        }
        let conn = self.connect()?;
        match conn.yk.verify_pin(pin.expose_secret().as_bytes()) {
            Ok(()) => {
                conn.verified = Some(origin);
                Ok(())
            }
            Err(yubikey::Error::WrongPin { tries }) => {
                tracing::warn!(
                    serial = self.config.serial,
                    tries,
                    "YubiKey refused the PIN"
                );
                Err(LoginError::Refused(if tries == 0 {
                    self.pin_blocked()
                } else {
                    AgentError::WrongPin {
                        device: self.describe(),
                        retries: Retries::Exactly(tries),
                    }
                }))
            }
            Err(yubikey::Error::PinLocked) => Err(LoginError::Refused(self.pin_blocked())),
            Err(e) => Err(self.fail("verifying the PIN", e).into()),
        }
    }

    fn pin_blocked(&self) -> AgentError {
        AgentError::PinBlocked {
            device: self.describe(),
            fix: format!(
                "unblock it with the PUK (`ykman --device {} piv access unblock-pin`), then unlock again",
                self.config.serial
            ),
        }
    }

    /// Authenticates with the management key (after the PIN, which the protected key needs).
    pub fn authenticate(&mut self) -> Result<(), AgentError> {
        let describe = self.describe();
        let config = self.config;
        let conn = self.connect()?;
        let key = match &config.management_key {
            ManagementKey::Default => MgmKey::get_default(&conn.yk),
            ManagementKey::Protected => MgmKey::get_protected(&mut conn.yk),
            ManagementKey::File(path) => {
                let bytes = read_key_file(path, &describe)?;
                let alg = match bytes.len() {
                    16 => Ok(MgmAlgorithmId::Aes128),
                    32 => Ok(MgmAlgorithmId::Aes256),
                    // 24 bytes: 3DES or AES-192; the card's metadata says which.
                    _ => piv::metadata(
                        &mut conn.yk,
                        SlotId::Management(ManagementSlotId::Management),
                    )
                    .map(|m| match m.algorithm {
                        SlotAlgorithmId::Management(a) => a,
                        _ => MgmAlgorithmId::ThreeDes,
                    }),
                };
                alg.and_then(|a| MgmKey::from_bytes(bytes.as_slice(), Some(a)))
            }
        };
        let key = match key {
            Ok(k) => k,
            Err(e @ yubikey::Error::PcscError { .. }) => {
                return Err(self.fail("reading the management key", e))
            }
            Err(e) => {
                return Err(AgentError::Device {
                    device: describe,
                    operation: format!("getting the {} management key", self.management_key_text()),
                    detail: format!("{e}; check management_key in the agent's config"),
                })
            }
        };
        let conn = self.connect()?;
        match conn.yk.authenticate(&key) {
            Ok(()) => Ok(()),
            Err(yubikey::Error::AuthenticationError) => Err(AgentError::Device {
                device: describe,
                operation: "authenticating with the management key".into(),
                detail: format!(
                    "the card refused the {} management key: set management_key in the agent's config to the card's key (`ykman piv info` shows whether it is protected)",
                    self.management_key_text()
                ),
            }),
            Err(e) => Err(self.fail("authenticating with the management key", e)),
        }
    }

    fn management_key_text(&self) -> String {
        match &self.config.management_key {
            ManagementKey::Default => "default".into(),
            ManagementKey::Protected => "PIN-protected".into(),
            ManagementKey::File(p) => format!("configured ({})", p.display()),
        }
    }

    /// What every usable slot holds, from the cache or the card.
    pub fn slots(&mut self) -> Result<Vec<(PivSlot, SlotUse)>, AgentError> {
        let serial = self.config.serial;
        let conn = self.connect()?;
        if let Some(slots) = &conn.slots {
            return Ok(slots.clone());
        }
        let mut out = Vec::new();
        for s in PivSlot::all() {
            let conn = self.connect()?;
            match slot::read(&mut conn.yk, serial, s) {
                Ok(u) => out.push((s, u)),
                Err(e) => return Err(self.fail("reading the key slots", e)),
            }
        }
        self.connect()?.slots = Some(out.clone());
        Ok(out)
    }

    /// Drops the slot inventory, so the next call reads the card again.
    pub fn forget_slots(&mut self) {
        if let Some(c) = self.conn.as_mut() {
            c.slots = None;
        }
    }

    /// The slot and info of a tufa key; a key of another tool is refused until adopted.
    pub fn find(&mut self, id: &KeyId) -> Result<(PivSlot, KeyInfo), AgentError> {
        let serial = self.config.serial;
        let describe = self.describe();
        self.slots()?
            .into_iter()
            .find_map(|(s, u)| match u {
                SlotUse::Ours(k) if k.id == *id => Some(Ok((s, *k))),
                SlotUse::Foreign(Some(k)) if k.id == *id => Some(Err(AgentError::NotAdopted {
                    device: describe.clone(),
                    reference: format!("yubikey:{serial}/{s}"),
                })),
                _ => None,
            })
            .unwrap_or_else(|| {
                Err(AgentError::KeyNotFound {
                    key: id.to_string(),
                })
            })
    }
}

impl Login for Card<'_> {
    fn login(&self) -> Option<PinOrigin> {
        self.conn.as_ref().and_then(|c| c.verified)
    }

    fn log_in(&mut self, pin: &SecretString, origin: PinOrigin) -> Result<(), LoginError> {
        match self.present_pin(pin, origin) {
            Err(LoginError::Failed(AgentError::Unavailable {
                cause: Unavailable::Reset { .. },
                ..
            })) => {
                tracing::info!(
                    serial = self.config.serial,
                    "card was reset by another program; reopening"
                );
                self.disconnect();
                self.present_pin(pin, origin)
            }
            other => other,
        }
    }

    fn log_out(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            if conn.verified.is_some() {
                // SELECT clears the card's PIN state; reading the counter does one.
                let _ = conn.yk.get_pin_retries();
                conn.verified = None;
            }
        }
    }
}

/// The hex key in the first line of a management key file.
fn read_key_file(
    path: &std::path::Path,
    describe: &str,
) -> Result<zeroize::Zeroizing<Vec<u8>>, AgentError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        AgentError::InvalidArgument(format!(
            "cannot read the management key file {} for {describe}: {e}",
            path.display()
        ))
    })?);
    let bytes = hex::decode(text.lines().next().unwrap_or_default().trim()).map_err(|_| {
        AgentError::InvalidArgument(format!(
            "the management key file {} is not hex",
            path.display()
        ))
    })?;
    Ok(zeroize::Zeroizing::new(bytes))
}
