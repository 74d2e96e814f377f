//! A YubiKey's PIV application as a [`Backend`], through the `yubikey` crate and pcscd.
//!
//! One backend is one YubiKey, chosen by serial. Keys live in the slots 9a, 9c, 9d, 9e and the
//! retired slots 82-95; a new key takes the first free retired slot, then 9a, 9c, 9d, 9e, so the
//! standard slots other tools use stay free as long as possible. A slot is free when it holds no
//! key, or a key tufa deleted.
//!
//! **What is stored on the card.** Next to each key the agent writes a small object of its own,
//! `0x5F5400 | slot` (YubiKeys accept any data object in 0x5F0000-0x5FFFFF), holding the JSON
//! `{"tufa":1,"name":NAME,"key_id":ID}`. The key is found again from the card alone, after an
//! agent restart or a re-plug, and the slot's certificate object stays free for the client (the
//! root key's certificate with CN = GUN goes there). A marker whose key ID no longer matches the
//! slot's public key (another tool replaced the key) is ignored, and such slots are never chosen
//! for a new key. Public key, policies and origin come from GET METADATA (firmware 5.3+).
//!
//! **Deleting.** PIV cannot erase a private key before firmware 5.7, so delete replaces the
//! marker with `{"tufa":1,"deleted":ID}` and removes the certificate; the key is no longer listed
//! and its slot is reused by the next generate or import.
//!
//! **Connection.** One `YubiKey` handle per device, opened by serial and kept: opening connects
//! to every card and dropping a handle resets the card, so the agent never opens it per call. A
//! PC/SC error that means the card went away drops the handle and the call fails `Unavailable`;
//! the next call opens it again. A card another program holds exclusively is reported as such.
//!
//! **PIN.** Given to the card before each signature when the slot's policy asks for it (PIN
//! always), once per connection for PIN once, and before every key-management operation. Before
//! any VERIFY the agent reads the retry counter and refuses when one try is left, so no code path
//! can block a card by itself; a refused PIN is never tried again (see [`crate::pin`]).

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use p256::pkcs8::der::Encode as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use tufa_proto::KeyId;
use yubikey::certificate::CertInfo;
use yubikey::piv::{self, AlgorithmId, ManagementSlotId, RetiredSlotId, SlotAlgorithmId, SlotId};
use yubikey::{Certificate, MgmAlgorithmId, MgmKey, Serial, YubiKey};

use super::{
    Attestation, Backend, BackendKind, DeviceStatus, GenerateSpec, KeyInfo, Location, Origin,
    PinPolicy, TouchPolicy,
};
use crate::error::{AgentError, Retries};
use crate::import::ImportedKey;
use crate::keys::{EcdsaSignature, Sha256Digest};
use crate::pin::{NoPin, PinOrigin, PinSource, PinState};

/// The data object of the attestation slot's certificate (the device's attestation intermediate).
const ATTESTATION_CERT_OBJECT: u32 = 0x005F_FF01;

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
}

/// A PIV key slot tufa may use: 9a, 9c, 9d, 9e or a retired slot 82-95.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PivSlot(SlotId);

impl PivSlot {
    /// Every usable slot, in the order a new key takes them.
    pub fn all() -> Vec<Self> {
        let retired = (0x82u8..=0x95).filter_map(|b| RetiredSlotId::try_from(b).ok());
        retired
            .map(SlotId::Retired)
            .chain([
                SlotId::Authentication,
                SlotId::Signature,
                SlotId::KeyManagement,
                SlotId::CardAuthentication,
            ])
            .map(Self)
            .collect()
    }

    /// The slot's byte, e.g. 0x9c.
    pub fn byte(self) -> u8 {
        self.0.into()
    }

    /// The crate's slot.
    fn id(self) -> SlotId {
        self.0
    }

    /// The object holding tufa's marker for this slot.
    fn marker_object(self) -> u32 {
        0x005F_5400 | u32::from(self.byte())
    }

    /// The PIN policy the card applies to a key made with the default policy.
    fn default_pin_policy(self) -> PinPolicy {
        match self.0 {
            SlotId::Signature => PinPolicy::Always,
            SlotId::CardAuthentication => PinPolicy::Never,
            _ => PinPolicy::Once,
        }
    }
}

impl std::str::FromStr for PivSlot {
    type Err = AgentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            AgentError::InvalidArgument(format!(
                "'{s}' is not a PIV key slot tufa uses: give 9a, 9c, 9d, 9e or 82-95"
            ))
        };
        let b = u8::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|_| bad())?;
        Self::all()
            .into_iter()
            .find(|p| p.byte() == b)
            .ok_or_else(bad)
    }
}

impl std::fmt::Display for PivSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02x}", self.byte())
    }
}

/// tufa's marker object in a slot.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Marker {
    tufa: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleted: Option<String>,
}

/// What a slot holds, as far as tufa is concerned.
enum SlotUse {
    /// No key.
    Empty,
    /// A key tufa deleted: free for reuse.
    Deleted,
    /// A tufa key.
    Ours(Box<KeyInfo>),
    /// A key of another tool.
    Foreign,
}

/// One YubiKey.
pub struct YubiKeyBackend {
    config: YubiKeyConfig,
    name: String,
    state: Mutex<State>,
}

struct State {
    conn: Option<Connection>,
    pin: PinState,
}

struct Connection {
    yk: YubiKey,
    // Where the PIN the card holds as verified came from.
    verified: Option<PinOrigin>,
    // The slots' keys, read once per connection (a re-plug reads them again).
    keys: Option<Vec<(PivSlot, SlotUse)>>,
}

impl YubiKeyBackend {
    /// Sets up the backend and tries the card once; an absent card is logged, not fatal, since a
    /// YubiKey is plugged and unplugged while the agent runs.
    pub fn open(config: YubiKeyConfig) -> Result<Self, AgentError> {
        let backend = Self {
            name: config.serial.to_string(),
            state: Mutex::new(State {
                conn: None,
                pin: PinState::new(config.pin.clone()),
            }),
            config,
        };
        {
            let mut st = backend.lock_state();
            match backend.connect(&mut st) {
                Ok(c) => tracing::info!(
                    serial = backend.config.serial,
                    version = %c.yk.version(),
                    reader = c.yk.name(),
                    "connected to YubiKey"
                ),
                Err(AgentError::Unavailable { detail, .. }) => {
                    tracing::warn!(
                        serial = backend.config.serial,
                        "YubiKey not available yet: {detail}"
                    )
                }
                Err(e) => return Err(e),
            }
        }
        Ok(backend)
    }

    fn describe(&self) -> String {
        format!("YubiKey serial {}", self.config.serial)
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn connect<'a>(&self, st: &'a mut State) -> Result<&'a mut Connection, AgentError> {
        if st.conn.is_none() {
            let yk = YubiKey::open_by_serial(Serial(self.config.serial))
                .map_err(|e| self.classify("opening the card", e))?;
            if yk.version().major < 5 || (yk.version().major == 5 && yk.version().minor < 3) {
                return Err(AgentError::Unsupported(format!(
                    "{} has firmware {}: tufa needs firmware 5.3 or later (GET METADATA)",
                    self.describe(),
                    yk.version()
                )));
            }
            st.conn = Some(Connection {
                yk,
                verified: None,
                keys: None,
            });
        }
        st.conn
            .as_mut()
            .ok_or_else(|| AgentError::Internal("connection vanished".into()))
    }

    /// Maps a crate error; a card that is gone drops the handle, so the next call reopens it.
    fn fail(&self, st: &mut State, operation: &str, e: yubikey::Error) -> AgentError {
        let err = self.classify(operation, e);
        if matches!(err, AgentError::Unavailable { .. }) {
            st.conn = None;
        }
        err
    }

    fn classify(&self, operation: &str, e: yubikey::Error) -> AgentError {
        classify(&self.describe(), operation, e)
    }

    /// Runs `f` on the open card; a card reset by another program is reopened and `f` run once
    /// more (no PIN is tried twice: a reopened card needs the accepted PIN again, not a new one).
    fn with_card<T>(
        &self,
        st: &mut State,
        operation: &str,
        mut f: impl FnMut(&Self, &mut State) -> Result<T, AgentError>,
    ) -> Result<T, AgentError> {
        match f(self, st) {
            Err(AgentError::Unavailable { detail, .. }) if detail.contains(RESET_MARK) => {
                tracing::info!(
                    serial = self.config.serial,
                    "card was reset by another program; reopening"
                );
                st.conn = None;
                f(self, st)
            }
            other => other.map_err(|e| {
                if let AgentError::Unavailable { .. } = e {
                    st.conn = None;
                }
                tracing::debug!(serial = self.config.serial, operation, "failed");
                e
            }),
        }
    }

    /// Ends a verification made with a client's PIN whose TTL ran out.
    fn expire(&self, st: &mut State) {
        let expired = !st.pin.cache_valid();
        if let Some(conn) = st.conn.as_mut() {
            if conn.verified == Some(PinOrigin::Cache) && expired {
                // SELECT clears the card's PIN state; reading the counter does one.
                let _ = conn.yk.get_pin_retries();
                conn.verified = None;
            }
        }
    }

    /// Makes sure the card holds a verified PIN; `always` verifies even if it does already.
    fn ensure_pin(&self, st: &mut State, always: bool) -> Result<(), AgentError> {
        self.expire(st);
        if !always && st.conn.as_ref().is_some_and(|c| c.verified.is_some()) {
            return Ok(());
        }
        let (pin, origin) = st.pin.current().map_err(|e| self.no_pin(e))?;
        self.present_pin(st, &pin, origin)?;
        // A cached PIN stays a cached PIN: its verification ends with its TTL.
        if let Some(c) = st.conn.as_mut() {
            c.verified = Some(if origin == PinOrigin::Client {
                PinOrigin::Cache
            } else {
                origin
            });
        }
        Ok(())
    }

    fn no_pin(&self, e: NoPin) -> AgentError {
        let name = self.name.clone();
        match e {
            NoPin::Locked => AgentError::Locked {
                device: self.describe(),
                name,
            },
            NoPin::Unreadable(detail) => AgentError::Locked {
                device: format!("{} ({detail})", self.describe()),
                name,
            },
            NoPin::Refused(source) => AgentError::Locked {
                device: format!(
                    "{} (the PIN from {source} was refused and has not changed since)",
                    self.describe()
                ),
                name,
            },
        }
    }

    /// VERIFY, after checking that a wrong PIN could not block the card.
    fn present_pin(
        &self,
        st: &mut State,
        pin: &SecretString,
        origin: PinOrigin,
    ) -> Result<(), AgentError> {
        // A PIV PIN has 6 to 8 characters: any other cannot be right, so no try is spent on it.
        if !(6..=8).contains(&pin.expose_secret().len()) {
            st.pin.refused(pin, origin);
            return Err(AgentError::WrongPin {
                device: format!(
                    "{} (a PIV PIN has 6 to 8 characters, this one has not; no try was used)",
                    self.describe()
                ),
                retries: Retries::Unknown,
            });
        }
        let conn = self.connect(st)?;
        conn.verified = None;
        let tries = match conn.yk.get_pin_retries() {
            Ok(t) => t,
            Err(e) => return Err(self.fail(st, "reading the PIN retry counter", e)),
        };
        let conn = self.connect(st)?;
        if tries == 0 {
            return Err(AgentError::PinBlocked {
                device: self.describe(),
                fix: self.puk_fix(),
            });
        }
        if tries == 1 {
            return Err(AgentError::LastPinTry {
                device: self.describe(),
                serial: self.config.serial,
            });
        }
        match conn.yk.verify_pin(pin.expose_secret().as_bytes()) {
            Ok(()) => {
                conn.verified = Some(origin);
                Ok(())
            }
            Err(yubikey::Error::WrongPin { tries }) => {
                st.pin.refused(pin, origin);
                tracing::warn!(
                    serial = self.config.serial,
                    tries,
                    "YubiKey refused the PIN"
                );
                if tries == 0 {
                    return Err(AgentError::PinBlocked {
                        device: self.describe(),
                        fix: self.puk_fix(),
                    });
                }
                Err(AgentError::WrongPin {
                    device: self.describe(),
                    retries: Retries::Exactly(tries),
                })
            }
            Err(yubikey::Error::PinLocked) => {
                st.pin.refused(pin, origin);
                Err(AgentError::PinBlocked {
                    device: self.describe(),
                    fix: self.puk_fix(),
                })
            }
            Err(e) => Err(self.fail(st, "verifying the PIN", e)),
        }
    }

    /// Authenticates with the management key (after the PIN, which the protected key needs).
    fn authenticate(&self, st: &mut State) -> Result<(), AgentError> {
        let conn = self.connect(st)?;
        let key = match &self.config.management_key {
            ManagementKey::Default => MgmKey::get_default(&conn.yk),
            ManagementKey::Protected => MgmKey::get_protected(&mut conn.yk),
            ManagementKey::File(path) => {
                let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    AgentError::InvalidArgument(format!(
                        "cannot read the management key file {} for {}: {e}",
                        path.display(),
                        self.describe()
                    ))
                })?);
                let bytes = zeroize::Zeroizing::new(
                    hex::decode(text.lines().next().unwrap_or_default().trim()).map_err(|_| {
                        AgentError::InvalidArgument(format!(
                            "the management key file {} is not hex",
                            path.display()
                        ))
                    })?,
                );
                let alg = match bytes.len() {
                    16 => Ok(MgmAlgorithmId::Aes128),
                    32 => Ok(MgmAlgorithmId::Aes256),
                    // 24 bytes: 3DES or AES-192; the card's metadata says which.
                    _ => match piv::metadata(
                        &mut conn.yk,
                        SlotId::Management(ManagementSlotId::Management),
                    ) {
                        Ok(m) => match m.algorithm {
                            SlotAlgorithmId::Management(a) => Ok(a),
                            _ => Ok(MgmAlgorithmId::ThreeDes),
                        },
                        Err(e) => Err(e),
                    },
                };
                alg.and_then(|a| MgmKey::from_bytes(bytes.as_slice(), Some(a)))
            }
        };
        let key = match key {
            Ok(k) => k,
            Err(e @ yubikey::Error::PcscError { .. }) => {
                return Err(self.fail(st, "reading the management key", e))
            }
            Err(e) => {
                return Err(AgentError::Device {
                    device: self.describe(),
                    operation: format!("getting the {} management key", self.management_key_text()),
                    detail: format!("{e}; check management_key in the agent's config"),
                })
            }
        };
        let conn = self.connect(st)?;
        match conn.yk.authenticate(&key) {
            Ok(()) => Ok(()),
            Err(yubikey::Error::AuthenticationError) => Err(AgentError::Device {
                device: self.describe(),
                operation: "authenticating with the management key".into(),
                detail: format!(
                    "the card refused the {} management key: set management_key in the agent's config to the card's key (`ykman piv info` shows whether it is protected)",
                    self.management_key_text()
                ),
            }),
            Err(e) => Err(self.fail(st, "authenticating with the management key", e)),
        }
    }

    fn puk_fix(&self) -> String {
        format!(
            "unblock it with the PUK (`ykman --device {} piv access unblock-pin`), then unlock again",
            self.config.serial
        )
    }

    fn management_key_text(&self) -> String {
        match &self.config.management_key {
            ManagementKey::Default => "default".into(),
            ManagementKey::Protected => "PIN-protected".into(),
            ManagementKey::File(p) => format!("configured ({})", p.display()),
        }
    }

    /// What every usable slot holds, from the cache or the card.
    fn slots(&self, st: &mut State) -> Result<Vec<(PivSlot, SlotUse)>, AgentError> {
        let conn = self.connect(st)?;
        if let Some(keys) = &conn.keys {
            return Ok(keys.iter().map(|(s, u)| (*s, u.clone_use())).collect());
        }
        let mut out = Vec::new();
        for slot in PivSlot::all() {
            let conn = self.connect(st)?;
            match self.read_slot(conn, slot) {
                Ok(u) => out.push((slot, u)),
                Err(e) => return Err(self.fail(st, "reading the key slots", e)),
            }
        }
        let conn = self.connect(st)?;
        conn.keys = Some(out.iter().map(|(s, u)| (*s, u.clone_use())).collect());
        Ok(out)
    }

    fn read_slot(&self, conn: &mut Connection, slot: PivSlot) -> Result<SlotUse, yubikey::Error> {
        let marker = match conn.yk.fetch_object(slot.marker_object()) {
            Ok(buf) => serde_json::from_slice::<Marker>(&buf).ok(),
            Err(yubikey::Error::NotFound) => None,
            Err(e @ yubikey::Error::PcscError { .. }) => return Err(e),
            Err(_) => None,
        };
        let meta = match piv::metadata(&mut conn.yk, slot.id()) {
            Ok(m) => m,
            Err(yubikey::Error::NotFound) => return Ok(SlotUse::Empty),
            Err(e) => return Err(e),
        };
        let spki = meta
            .public
            .as_ref()
            .and_then(|p| p.to_der().ok())
            .unwrap_or_default();
        let id = KeyId::for_ecdsa_spki(&spki);
        let Some(marker) = marker else {
            return Ok(SlotUse::Foreign);
        };
        if marker.deleted.as_deref() == Some(id.to_string().as_str()) {
            return Ok(SlotUse::Deleted);
        }
        let (Some(name), Some(key_id)) = (marker.name, marker.key_id) else {
            return Ok(SlotUse::Foreign);
        };
        if key_id != id.to_string()
            || meta.algorithm != SlotAlgorithmId::Asymmetric(AlgorithmId::EccP256)
        {
            tracing::warn!(serial = self.config.serial, slot = %slot, "the key in this slot is not the one tufa stored; ignoring it");
            return Ok(SlotUse::Foreign);
        }
        let certificate = match Certificate::read(&mut conn.yk, slot.id()) {
            Ok(c) => c.cert.to_der().ok(),
            Err(e @ yubikey::Error::PcscError { .. }) => return Err(e),
            Err(_) => None,
        };
        let (pin_policy, touch_policy) = meta
            .policy
            .map(|(p, t)| (pin_from_card(p, slot), touch_from_card(t)))
            .unwrap_or((slot.default_pin_policy(), TouchPolicy::Unknown));
        Ok(SlotUse::Ours(Box::new(KeyInfo {
            id,
            name,
            backend: BackendKind::YubiKey,
            location: Location::YubiKey {
                serial: self.config.serial,
                slot: slot.to_string(),
            },
            public_spki: spki,
            certificate,
            pin_policy,
            touch_policy,
            origin: match meta.origin {
                Some(piv::Origin::Generated) => Origin::Generated,
                Some(piv::Origin::Imported) => Origin::Imported,
                None => Origin::Unknown,
            },
        })))
    }

    fn find(&self, st: &mut State, id: &KeyId) -> Result<(PivSlot, KeyInfo), AgentError> {
        self.slots(st)?
            .into_iter()
            .find_map(|(s, u)| match u {
                SlotUse::Ours(k) if k.id == *id => Some((s, *k)),
                _ => None,
            })
            .ok_or_else(|| AgentError::KeyNotFound {
                key: id.to_string(),
            })
    }

    /// The slot a new key goes to: the one asked for (if tufa may overwrite it) or the first free.
    fn pick_slot(&self, st: &mut State, wanted: Option<&str>) -> Result<PivSlot, AgentError> {
        let slots = self.slots(st)?;
        let wanted: Option<PivSlot> = wanted.map(str::parse).transpose()?;
        for (slot, used) in slots {
            if wanted.is_some_and(|w| w != slot) {
                continue;
            }
            match used {
                SlotUse::Empty | SlotUse::Deleted => return Ok(slot),
                SlotUse::Ours(k) if wanted.is_some() => {
                    return Err(AgentError::InvalidArgument(format!(
                        "slot {slot} of {} holds key '{}' ({}): delete it first with `tufa key delete {}`",
                        self.describe(),
                        k.name,
                        k.id,
                        k.name
                    )))
                }
                SlotUse::Foreign if wanted.is_some() => {
                    return Err(AgentError::InvalidArgument(format!(
                        "slot {slot} of {} holds a key tufa did not make: choose another slot, or clear it with ykman if it is really unused",
                        self.describe()
                    )))
                }
                _ => {}
            }
        }
        Err(AgentError::InvalidArgument(format!(
            "{} has no free key slot (tufa uses 82-95, 9a, 9c, 9d, 9e): delete a key first",
            self.describe()
        )))
    }

    fn write_marker(
        &self,
        st: &mut State,
        slot: PivSlot,
        marker: &Marker,
    ) -> Result<(), AgentError> {
        let mut bytes = serde_json::to_vec(marker)
            .map_err(|e| AgentError::Internal(format!("encoding the slot marker: {e}")))?;
        let conn = self.connect(st)?;
        if let Err(e) = conn.yk.save_object(slot.marker_object(), &mut bytes) {
            return Err(self.fail(st, "storing the key's name on the card", e));
        }
        Ok(())
    }

    /// PIN, management key, then `f`; the slot cache is dropped whatever happened.
    fn manage<T>(
        &self,
        operation: &str,
        f: impl FnOnce(&Self, &mut State) -> Result<T, AgentError>,
    ) -> Result<T, AgentError> {
        let mut st = self.lock_state();
        let result = self.with_card(&mut st, operation, |b, st| {
            b.ensure_pin(st, false)?;
            b.authenticate(st)
        });
        let result = result.and_then(|()| f(self, &mut st));
        if let Some(c) = st.conn.as_mut() {
            c.keys = None;
        }
        if let Err(AgentError::Unavailable { .. }) = &result {
            st.conn = None;
        }
        result
    }

    /// Stores a new key's marker and reads the key back; on failure the slot is left free.
    fn finish_new_key(
        &self,
        st: &mut State,
        slot: PivSlot,
        spec: &GenerateSpec,
        spki: &[u8],
    ) -> Result<KeyInfo, AgentError> {
        let id = KeyId::for_ecdsa_spki(spki);
        self.write_marker(
            st,
            slot,
            &Marker {
                tufa: 1,
                name: Some(spec.name.as_str().to_owned()),
                key_id: Some(id.to_string()),
                deleted: None,
            },
        )?;
        // An old certificate belongs to the slot's previous key.
        let conn = self.connect(st)?;
        let _ = Certificate::delete(&mut conn.yk, slot.id());
        conn.keys = None;
        let (_, info) = self.find(st, &id)?;
        Ok(info)
    }

    /// The PIN and touch policies for a new key.
    fn policies(&self, spec: &GenerateSpec) -> (yubikey::PinPolicy, yubikey::TouchPolicy) {
        let pin = match spec.pin_policy {
            PinPolicy::Never => yubikey::PinPolicy::Never,
            PinPolicy::Always => yubikey::PinPolicy::Always,
            // Signing keys: the PIN once per session, as the agent holds the session.
            PinPolicy::Once | PinPolicy::Unknown => yubikey::PinPolicy::Once,
        };
        let touch = match spec.touch_policy {
            TouchPolicy::Unknown => self.config.touch_policy,
            t => t,
        };
        let touch = match touch {
            TouchPolicy::Always => yubikey::TouchPolicy::Always,
            TouchPolicy::Cached => yubikey::TouchPolicy::Cached,
            TouchPolicy::Never | TouchPolicy::Unknown => yubikey::TouchPolicy::Never,
        };
        (pin, touch)
    }

    fn attestation(&self, id: &KeyId) -> Result<Attestation, AgentError> {
        let mut st = self.lock_state();
        self.with_card(&mut st, "attesting a key", |b, st| {
            let (slot, _) = b.find(st, id)?;
            let conn = b.connect(st)?;
            let leaf = match piv::attest(&mut conn.yk, slot.id()) {
                Ok(der) => der.to_vec(),
                Err(yubikey::Error::NotSupported | yubikey::Error::GenericError) => {
                    return Err(AgentError::Unsupported(format!(
                        "{} cannot attest slot {slot}: only keys generated on the card have an attestation (an imported key has none)",
                        b.describe()
                    )))
                }
                Err(e) => return Err(b.fail(st, "attesting a key", e)),
            };
            let conn = b.connect(st)?;
            let intermediate = match conn.yk.fetch_object(ATTESTATION_CERT_OBJECT) {
                Ok(buf) => strip_cert_object(&buf).ok_or_else(|| AgentError::Device {
                    device: b.describe(),
                    operation: "reading the attestation certificate (f9)".into(),
                    detail: "the object does not hold a certificate".into(),
                })?,
                Err(e) => return Err(b.fail(st, "reading the attestation certificate (f9)", e)),
            };
            Ok(Attestation {
                certificate: leaf,
                intermediate,
            })
        })
    }
}

impl SlotUse {
    fn clone_use(&self) -> Self {
        match self {
            Self::Empty => Self::Empty,
            Self::Deleted => Self::Deleted,
            Self::Ours(k) => Self::Ours(k.clone()),
            Self::Foreign => Self::Foreign,
        }
    }
}

impl Backend for YubiKeyBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::YubiKey
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn location(&self) -> Location {
        Location::YubiKey {
            serial: self.config.serial,
            slot: String::new(),
        }
    }

    fn status(&self) -> DeviceStatus {
        let keys = self.keys();
        let locked = self.needs_pin();
        DeviceStatus::from_keys(keys.as_deref(), locked)
    }

    fn keys(&self) -> Result<Vec<KeyInfo>, AgentError> {
        let mut st = self.lock_state();
        let slots = self.with_card(&mut st, "listing keys", |b, st| b.slots(st))?;
        Ok(slots
            .into_iter()
            .filter_map(|(_, u)| match u {
                SlotUse::Ours(k) => Some(*k),
                _ => None,
            })
            .collect())
    }

    fn generate(&self, spec: &GenerateSpec) -> Result<KeyInfo, AgentError> {
        let (pin_policy, touch_policy) = self.policies(spec);
        self.manage("generating a key", |b, st| {
            let slot = b.pick_slot(st, spec.slot.as_deref())?;
            let conn = b.connect(st)?;
            let spki = match piv::generate(
                &mut conn.yk,
                slot.id(),
                AlgorithmId::EccP256,
                pin_policy,
                touch_policy,
            ) {
                Ok(spki) => spki.to_der().map_err(|e| {
                    AgentError::Internal(format!("encoding the new public key: {e}"))
                })?,
                Err(e) => return Err(b.fail(st, "generating a key", e)),
            };
            b.finish_new_key(st, slot, spec, &spki)
        })
    }

    fn import(&self, spec: &GenerateSpec, key: &ImportedKey) -> Result<KeyInfo, AgentError> {
        let (pin_policy, touch_policy) = self.policies(spec);
        self.manage("importing a key", |b, st| {
            let slot = b.pick_slot(st, spec.slot.as_deref())?;
            let conn = b.connect(st)?;
            let scalar = key.scalar();
            if let Err(e) = piv::import_ecc_key(
                &mut conn.yk,
                slot.id(),
                AlgorithmId::EccP256,
                scalar.as_slice(),
                touch_policy,
                pin_policy,
            ) {
                return Err(b.fail(st, "importing a key", e));
            }
            b.finish_new_key(st, slot, spec, &key.public_spki())
        })
    }

    fn delete(&self, id: &KeyId) -> Result<(), AgentError> {
        self.manage("deleting a key", |b, st| {
            let (slot, _) = b.find(st, id)?;
            b.write_marker(
                st,
                slot,
                &Marker {
                    tufa: 1,
                    name: None,
                    key_id: None,
                    deleted: Some(id.to_string()),
                },
            )?;
            let conn = b.connect(st)?;
            if let Err(e) = Certificate::delete(&mut conn.yk, slot.id()) {
                tracing::warn!(serial = b.config.serial, slot = %slot, error = %e, "could not remove the deleted key's certificate");
            }
            Ok(())
        })
    }

    fn set_certificate(&self, id: &KeyId, der: &[u8]) -> Result<(), AgentError> {
        let cert = Certificate::from_bytes(der.to_vec()).map_err(|e| AgentError::Certificate {
            key_id: id.to_string(),
            reason: format!("not an X.509 certificate in DER: {e}"),
        })?;
        self.manage("storing a certificate", |b, st| {
            let (slot, _) = b.find(st, id)?;
            let conn = b.connect(st)?;
            match cert.write(&mut conn.yk, slot.id(), CertInfo::Uncompressed) {
                Ok(()) => Ok(()),
                Err(e) => Err(b.fail(st, "storing a certificate", e)),
            }
        })
    }

    fn sign(&self, id: &KeyId, digest: &Sha256Digest) -> Result<EcdsaSignature, AgentError> {
        let mut st = self.lock_state();
        self.with_card(&mut st, "signing", |b, st| {
            let (slot, info) = b.find(st, id)?;
            match info.pin_policy {
                PinPolicy::Never => b.expire(st),
                PinPolicy::Always => b.ensure_pin(st, true)?,
                PinPolicy::Once | PinPolicy::Unknown => b.ensure_pin(st, false)?,
            }
            let conn = b.connect(st)?;
            let der = match piv::sign_data(
                &mut conn.yk,
                digest.as_bytes(),
                AlgorithmId::EccP256,
                slot.id(),
            ) {
                Ok(der) => der,
                // Another program re-selected the applet and the card forgot the PIN.
                Err(yubikey::Error::AuthenticationError)
                    if info.pin_policy != PinPolicy::Never && conn.verified.is_some() =>
                {
                    conn.verified = None;
                    b.ensure_pin(st, true)?;
                    let conn = b.connect(st)?;
                    match piv::sign_data(
                        &mut conn.yk,
                        digest.as_bytes(),
                        AlgorithmId::EccP256,
                        slot.id(),
                    ) {
                        Ok(der) => der,
                        Err(e) => return Err(b.fail(st, "signing", e)),
                    }
                }
                Err(yubikey::Error::AuthenticationError) => {
                    return Err(AgentError::Locked {
                        device: b.describe(),
                        name: b.name.clone(),
                    })
                }
                // A YubiKey answers "conditions not satisfied" when nobody touched it in time.
                Err(yubikey::Error::GenericError) if info.touch_policy != TouchPolicy::Never => {
                    return Err(AgentError::TouchTimeout {
                        device: b.describe(),
                    })
                }
                Err(e) => return Err(b.fail(st, "signing", e)),
            };
            let sig = p256::ecdsa::Signature::from_der(&der).map_err(|e| {
                AgentError::Internal(format!(
                    "{} returned a signature that is not DER ECDSA: {e}",
                    b.describe()
                ))
            })?;
            EcdsaSignature::from_raw(&sig.to_bytes())
        })
    }

    fn unlock(&self, pin: SecretString, ttl: Duration) -> Result<(), AgentError> {
        let mut st = self.lock_state();
        self.with_card(&mut st, "verifying the PIN", |b, st| {
            b.present_pin(st, &pin, PinOrigin::Client)
        })?;
        if let Some(c) = st.conn.as_mut() {
            c.verified = Some(PinOrigin::Cache);
        }
        st.pin.accepted();
        st.pin.cache(pin, ttl);
        Ok(())
    }

    fn lock(&self) {
        let mut st = self.lock_state();
        st.pin.forget();
        if let Some(conn) = st.conn.as_mut() {
            if conn.verified.is_some() {
                let _ = conn.yk.get_pin_retries();
                conn.verified = None;
            }
        }
    }

    fn attest(&self, id: &KeyId) -> Result<Attestation, AgentError> {
        self.attestation(id)
    }

    fn needs_pin(&self) -> bool {
        let mut st = self.lock_state();
        let verified = st
            .conn
            .as_ref()
            .and_then(|c| c.verified)
            .is_some_and(|o| o != PinOrigin::Cache || st.pin.cache_valid());
        !(verified || st.pin.available())
    }
}

/// Marks an `Unavailable` detail that means "reset by someone else; reopen and go on".
const RESET_MARK: &str = "the card was reset";

/// Maps a crate error: PC/SC errors that mean the card or pcscd is gone are `Unavailable`
/// (naming the serial and what to check), the rest a device error.
fn classify(device: &str, operation: &str, e: yubikey::Error) -> AgentError {
    use pcsc::Error as P;
    let unavailable = |detail: String| AgentError::Unavailable {
        device: device.to_owned(),
        detail,
    };
    match e {
        yubikey::Error::NotFound if operation == "opening the card" => unavailable(
            "it is not connected (or pcscd does not see it): plug it in; the agent reconnects by itself".into(),
        ),
        yubikey::Error::PcscError { inner: Some(p) } => match p {
            P::SharingViolation => unavailable(
                "another program holds it exclusively (ykman, gpg's scdaemon, a PKCS#11 module...): close that program, then try again".into(),
            ),
            P::NoService | P::ServiceStopped | P::NoReadersAvailable => unavailable(format!(
                "{operation} failed: pcscd is not running ({p}): start it (`systemctl start pcscd.socket` or `pcscd`)"
            )),
            P::ResetCard => unavailable(format!("{operation} failed: {RESET_MARK} by another program")),
            P::RemovedCard
            | P::NoSmartcard
            | P::ReaderUnavailable
            | P::UnknownReader
            | P::UnpoweredCard
            | P::UnresponsiveCard
            | P::CommError
            | P::InvalidHandle
            | P::NotTransacted => unavailable(format!(
                "{operation} failed ({p}): it was unplugged or stopped answering; plug it in again, the agent reconnects by itself"
            )),
            other => AgentError::Device {
                device: device.to_owned(),
                operation: operation.to_owned(),
                detail: format!("PC/SC error: {other}"),
            },
        },
        other => AgentError::Device {
            device: device.to_owned(),
            operation: operation.to_owned(),
            detail: other.to_string(),
        },
    }
}

fn pin_from_card(p: yubikey::PinPolicy, slot: PivSlot) -> PinPolicy {
    match p {
        yubikey::PinPolicy::Never => PinPolicy::Never,
        yubikey::PinPolicy::Once => PinPolicy::Once,
        yubikey::PinPolicy::Always => PinPolicy::Always,
        yubikey::PinPolicy::Default => slot.default_pin_policy(),
    }
}

fn touch_from_card(t: yubikey::TouchPolicy) -> TouchPolicy {
    match t {
        yubikey::TouchPolicy::Never => TouchPolicy::Never,
        yubikey::TouchPolicy::Always => TouchPolicy::Always,
        yubikey::TouchPolicy::Cached => TouchPolicy::Cached,
        yubikey::TouchPolicy::Default => TouchPolicy::Never,
    }
}

/// A certificate data object is `70 <DER> 71 <compression> FE <LRC>`; returns the DER.
fn strip_cert_object(buf: &[u8]) -> Option<Vec<u8>> {
    if buf.first() == Some(&0x30) {
        return Some(buf.to_vec());
    }
    if buf.first() != Some(&0x70) {
        return None;
    }
    let (len, header) = match *buf.get(1)? {
        n if n < 0x80 => (usize::from(n), 2),
        0x81 => (usize::from(*buf.get(2)?), 3),
        0x82 => (
            usize::from(*buf.get(2)?) << 8 | usize::from(*buf.get(3)?),
            4,
        ),
        _ => return None,
    };
    buf.get(header..header + len).map(<[u8]>::to_vec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_parse_and_order() {
        let all = PivSlot::all();
        assert_eq!(all.len(), 24);
        assert_eq!(all[0].to_string(), "82");
        assert_eq!(all[19].to_string(), "95");
        assert_eq!(all[20].to_string(), "9a");
        assert_eq!("9c".parse::<PivSlot>().unwrap().byte(), 0x9c);
        assert_eq!("0x85".parse::<PivSlot>().unwrap().byte(), 0x85);
        for bad in ["9b", "f9", "80", "96", "zz", ""] {
            assert!(bad.parse::<PivSlot>().is_err(), "{bad}");
        }
        assert_eq!(
            "9a".parse::<PivSlot>().unwrap().marker_object(),
            0x005F_549A
        );
        assert_eq!(
            "9c".parse::<PivSlot>().unwrap().default_pin_policy(),
            PinPolicy::Always
        );
    }

    #[test]
    fn markers_round_trip() {
        let m = Marker {
            tufa: 1,
            name: Some("alice".into()),
            key_id: Some("ab".into()),
            deleted: None,
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"tufa":1,"name":"alice","key_id":"ab"}"#);
        assert_eq!(serde_json::from_str::<Marker>(&json).unwrap(), m);
    }

    #[test]
    fn lost_cards_are_unavailable_and_named() {
        let dev = "YubiKey serial 123";
        for p in [
            pcsc::Error::RemovedCard,
            pcsc::Error::NoSmartcard,
            pcsc::Error::ReaderUnavailable,
        ] {
            let e = classify(dev, "signing", yubikey::Error::PcscError { inner: Some(p) });
            assert_eq!(e.code(), tonic::Code::Unavailable);
            assert!(e.to_string().contains("serial 123"), "{e}");
            assert!(e.to_string().contains("reconnects"), "{e}");
        }
        let e = classify(
            dev,
            "opening the card",
            yubikey::Error::PcscError {
                inner: Some(pcsc::Error::SharingViolation),
            },
        );
        assert!(e.to_string().contains("exclusively"), "{e}");
        let e = classify(dev, "opening the card", yubikey::Error::NotFound);
        assert!(e.to_string().contains("not connected"), "{e}");
        let e = classify(dev, "signing", yubikey::Error::GenericError);
        assert_eq!(e.code(), tonic::Code::Internal);
    }

    #[test]
    fn certificate_objects_are_unwrapped() {
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x05];
        let mut obj = vec![0x70, der.len() as u8];
        obj.extend(&der);
        obj.extend([0x71, 0x01, 0x00, 0xFE, 0x00]);
        assert_eq!(strip_cert_object(&obj).unwrap(), der);
        assert_eq!(strip_cert_object(&der).unwrap(), der);
        assert!(strip_cert_object(&[0x99]).is_none());
    }
}
