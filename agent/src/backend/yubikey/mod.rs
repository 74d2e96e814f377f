//! A YubiKey's PIV application as a [`Backend`], through the `yubikey` crate and pcscd.
//!
//! One backend is one YubiKey, chosen by serial. Keys live in the slots 9a, 9c, 9d, 9e and the
//! retired slots 82-95; a new key takes the first free retired slot, then 9a, 9c, 9d, 9e, so the
//! standard slots other tools use stay free as long as possible. A slot is free when it holds no
//! key, or a key tufa deleted.
//!
//! Layout:
//! - this file: the [`Backend`] operations, each under the card's lock.
//! - [`session`]: connecting, the PIN, the management key, the slot inventory.
//! - [`slot`]: what a slot holds (metadata, marker, certificate).
//! - [`marker`]: tufa's marker object next to each key, which names it on the card itself, so
//!   the key is found again after an agent restart or a re-plug. Public key, policies and origin
//!   come from GET METADATA (firmware 5.3+).
//! - [`classify`]: what PC/SC errors mean.
//!
//! **Deleting.** PIV cannot erase a private key before firmware 5.7, so delete replaces the
//! marker with a "deleted" one and removes the certificate; the key is no longer listed and its
//! slot is reused by the next generate or import.
//!
//! **PIN.** Given to the card before each signature when the slot's policy asks for it (PIN
//! always), once per connection for PIN once, and before every key-management operation; the
//! bookkeeping is the [`PinGate`]'s.

use std::sync::{Mutex, MutexGuard};

use yubikey::certificate::CertInfo;
use yubikey::piv::{self, AlgorithmId};
use yubikey::Certificate;

use self::marker::Marker;
use self::session::{with_card, Card, State};
use self::slot::SlotUse;
use super::{
    Attestation, Backend, BackendKind, DeviceLocation, GenerateSpec, KeyInfo, PinPolicy, PivSlot,
    Placement, TouchPolicy,
};
use crate::error::AgentError;
use crate::import::ImportedKey;
use crate::keys::{EcdsaSignature, KeyId, KeyName, Sha256Digest};
use crate::pin::{Gated, Login, PinGate, RefusalRecord};

pub mod classify;
pub mod marker;
pub mod session;
pub mod slot;

pub use session::{ManagementKey, YubiKeyConfig};

/// The data object of the attestation slot's certificate (the device's attestation intermediate).
const ATTESTATION_CERT_OBJECT: u32 = 0x005F_FF01;

/// One YubiKey.
pub struct YubiKeyBackend {
    config: YubiKeyConfig,
    name: String,
    state: Mutex<State>,
}

impl YubiKeyBackend {
    /// Sets up the backend and tries the card once; an absent card is logged, not fatal, since a
    /// YubiKey is plugged and unplugged while the agent runs.
    pub fn open(config: YubiKeyConfig) -> Result<Self, AgentError> {
        let name = config.serial.to_string();
        let record = config.state_dir.as_deref().map(|d| {
            RefusalRecord::new(d, &format!("yubikey|{}", config.serial), config.describe())
        });
        let gate =
            PinGate::remembering(config.pin.clone(), record, config.describe(), name.clone());
        let backend = Self {
            name,
            state: Mutex::new(State { conn: None, gate }),
            config,
        };
        {
            let mut st = backend.lock_state();
            let mut card = Card::new(&backend.config, &mut st.conn);
            match card.connect() {
                Ok(c) => tracing::info!(
                    serial = backend.config.serial,
                    version = %c.yk.version(),
                    reader = c.yk.name(),
                    "connected to YubiKey"
                ),
                Err(AgentError::Unavailable { cause, .. }) => {
                    tracing::warn!(
                        serial = backend.config.serial,
                        "YubiKey not available yet: {cause}"
                    )
                }
                Err(e) => return Err(e),
            }
        }
        Ok(backend)
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// PIN, management key, then `f`; the slot inventory is dropped whatever happened.
    fn manage<T>(
        &self,
        operation: &str,
        f: impl FnOnce(&mut Card<'_>) -> Result<T, AgentError>,
    ) -> Result<T, AgentError> {
        let mut st = self.lock_state();
        let ready = with_card(&self.config, &mut st, operation, |card, gate| {
            gate.ensure(card, false)?;
            card.authenticate()
        });
        let mut card = Card::new(&self.config, &mut st.conn);
        let result = ready.and_then(|()| f(&mut card));
        card.forget_slots();
        if let Err(AgentError::Unavailable { .. }) = &result {
            card.disconnect();
        }
        result
    }

    /// Generates or imports into a slot: `make` puts the key there and returns its SPKI.
    fn new_key(
        &self,
        operation: &str,
        spec: &GenerateSpec,
        make: impl FnOnce(
            &mut Card<'_>,
            PivSlot,
            (yubikey::PinPolicy, yubikey::TouchPolicy),
        ) -> Result<Vec<u8>, AgentError>,
    ) -> Result<KeyInfo, AgentError> {
        let (wanted, pin, touch) = match spec.placement {
            Placement::Default => (None, PinPolicy::Unknown, TouchPolicy::Unknown),
            Placement::YubiKey {
                slot,
                pin_policy,
                touch_policy,
            } => (slot, pin_policy, touch_policy),
        };
        let policies = slot::new_key_policies(pin, touch, self.config.touch_policy);
        self.manage(operation, |card| {
            let slot = pick_slot(card, wanted)?;
            let spki = make(card, slot, policies)?;
            finish_new_key(card, slot, spec, &spki)
        })
    }
}

impl Gated for YubiKeyBackend {
    fn gated<R>(&self, f: impl FnOnce(&mut PinGate, &mut dyn Login) -> R) -> R {
        let mut st = self.lock_state();
        let State { conn, gate } = &mut *st;
        f(gate, &mut Card::new(&self.config, conn))
    }
}

impl Backend for YubiKeyBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::YubiKey
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn location(&self) -> DeviceLocation {
        DeviceLocation::YubiKey {
            serial: self.config.serial,
        }
    }

    fn keys(&self) -> Result<Vec<KeyInfo>, AgentError> {
        let mut st = self.lock_state();
        let slots = with_card(&self.config, &mut st, "listing keys", |card, _| {
            card.slots()
        })?;
        // Keys of other tools are listed too (to be adopted); they sign once adopted.
        Ok(slots
            .into_iter()
            .filter_map(|(_, u)| match u {
                SlotUse::Ours(k) | SlotUse::Foreign(Some(k)) => Some(*k),
                _ => None,
            })
            .collect())
    }

    fn generate(&self, spec: &GenerateSpec) -> Result<KeyInfo, AgentError> {
        self.new_key("generating a key", spec, |card, slot, (pin, touch)| {
            let conn = card.connect()?;
            match piv::generate(&mut conn.yk, slot.id(), AlgorithmId::EccP256, pin, touch) {
                Ok(spki) => p256::pkcs8::der::Encode::to_der(&spki)
                    .map_err(|e| AgentError::Internal(format!("encoding the new public key: {e}"))),
                Err(e) => Err(card.fail("generating a key", e)),
            }
        })
    }

    fn import(&self, spec: &GenerateSpec, key: &ImportedKey) -> Result<KeyInfo, AgentError> {
        self.new_key("importing a key", spec, |card, slot, (pin, touch)| {
            let conn = card.connect()?;
            let scalar = key.scalar();
            match piv::import_ecc_key(
                &mut conn.yk,
                slot.id(),
                AlgorithmId::EccP256,
                scalar.as_slice(),
                touch,
                pin,
            ) {
                Ok(_) => Ok(key.public_spki()),
                Err(e) => Err(card.fail("importing a key", e)),
            }
        })
    }

    fn delete(&self, id: &KeyId) -> Result<(), AgentError> {
        self.manage("deleting a key", |card| {
            let (slot, _) = card.find(id)?;
            write_marker(card, slot, &Marker::deleted(id))?;
            let conn = card.connect()?;
            if let Err(e) = Certificate::delete(&mut conn.yk, slot.id()) {
                tracing::warn!(serial = card.config.serial, slot = %slot, error = %e, "could not remove the deleted key's certificate");
            }
            Ok(())
        })
    }

    fn set_certificate(&self, id: &KeyId, der: &[u8]) -> Result<(), AgentError> {
        let cert = Certificate::from_bytes(der.to_vec()).map_err(|e| AgentError::Certificate {
            key_id: *id,
            reason: format!("not an X.509 certificate in DER: {e}"),
        })?;
        self.manage("storing a certificate", |card| {
            let (slot, _) = card.find(id)?;
            let conn = card.connect()?;
            match cert.write(&mut conn.yk, slot.id(), CertInfo::Uncompressed) {
                Ok(()) => Ok(()),
                Err(e) => Err(card.fail("storing a certificate", e)),
            }
        })
    }

    fn adopt(&self, slot: u8, name: &KeyName) -> Result<KeyInfo, AgentError> {
        let slot = PivSlot::all()
            .into_iter()
            .find(|s| s.byte() == slot)
            .ok_or_else(|| {
                AgentError::InvalidArgument(format!(
                    "slot {slot:02x} is not a PIV key slot tufa uses: 9a, 9c, 9d, 9e or 82-95"
                ))
            })?;
        self.manage("adopting a key", |card| {
            let used = card
                .slots()?
                .into_iter()
                .find(|(s, _)| *s == slot)
                .map(|(_, u)| u);
            let info = match used {
                Some(SlotUse::Foreign(Some(info))) => info,
                Some(SlotUse::Ours(k)) => {
                    return Err(AgentError::InvalidArgument(format!(
                        "slot {slot} of {} already holds tufa's key '{}' ({})",
                        card.describe(),
                        k.name,
                        k.id
                    )))
                }
                Some(SlotUse::Foreign(None)) => {
                    return Err(AgentError::Unsupported(format!(
                        "slot {slot} of {} holds a key that is not ECDSA P-256: tufa signs with P-256 keys only",
                        card.describe()
                    )))
                }
                _ => {
                    return Err(AgentError::KeyNotFound {
                        key: format!("yubikey:{}/{slot}", card.config.serial),
                    })
                }
            };
            // Only tufa's marker is written: the key and its certificate stay as they are.
            write_marker(card, slot, &Marker::key(name, &info.id))?;
            card.forget_slots();
            let (_, info) = card.find(&info.id)?;
            Ok(info)
        })
    }

    fn sign(&self, id: &KeyId, digest: &Sha256Digest) -> Result<EcdsaSignature, AgentError> {
        let mut st = self.lock_state();
        with_card(&self.config, &mut st, "signing", |card, gate| {
            let (slot, info) = card.find(id)?;
            match info.pin_policy {
                PinPolicy::Never => gate.expire(card),
                PinPolicy::Always => gate.ensure(card, true)?,
                _ => gate.ensure(card, false)?,
            }
            let sign = |card: &mut Card<'_>| {
                let conn = card.connect()?;
                Ok::<_, AgentError>(piv::sign_data(
                    &mut conn.yk,
                    digest.as_bytes(),
                    AlgorithmId::EccP256,
                    slot.id(),
                ))
            };
            let der = match sign(card)? {
                Ok(der) => der,
                // Another program re-selected the applet and the card forgot the PIN.
                Err(yubikey::Error::AuthenticationError)
                    if info.pin_policy != PinPolicy::Never && card.login().is_some() =>
                {
                    gate.ensure(card, true)?;
                    match sign(card)? {
                        Ok(der) => der,
                        Err(e) => return Err(card.fail("signing", e)),
                    }
                }
                Err(yubikey::Error::AuthenticationError) => return Err(card.locked()),
                // A YubiKey answers "conditions not satisfied" when nobody touched it in time.
                Err(yubikey::Error::GenericError) if info.touch_policy != TouchPolicy::Never => {
                    return Err(AgentError::TouchTimeout {
                        device: card.describe(),
                    })
                }
                Err(e) => return Err(card.fail("signing", e)),
            };
            let sig = p256::ecdsa::Signature::from_der(&der).map_err(|e| {
                AgentError::Internal(format!(
                    "{} returned a signature that is not DER ECDSA: {e}",
                    card.describe()
                ))
            })?;
            Ok(EcdsaSignature::from_raw(&sig.to_bytes())?)
        })
    }

    fn attest(&self, id: &KeyId) -> Result<Option<Attestation>, AgentError> {
        let mut st = self.lock_state();
        with_card(&self.config, &mut st, "attesting a key", |card, _| {
            let (slot, _) = card.find(id)?;
            let conn = card.connect()?;
            let leaf = match piv::attest(&mut conn.yk, slot.id()) {
                Ok(der) => der.to_vec(),
                Err(yubikey::Error::NotSupported | yubikey::Error::GenericError) => {
                    return Err(AgentError::Unsupported(format!(
                        "{} cannot attest slot {slot}: only keys generated on the card have an attestation (an imported key has none)",
                        card.describe()
                    )))
                }
                Err(e) => return Err(card.fail("attesting a key", e)),
            };
            let conn = card.connect()?;
            let intermediate = match conn.yk.fetch_object(ATTESTATION_CERT_OBJECT) {
                Ok(buf) => slot::strip_cert_object(&buf).ok_or_else(|| AgentError::Device {
                    device: card.describe(),
                    operation: "reading the attestation certificate (f9)".into(),
                    detail: "the object does not hold a certificate".into(),
                })?,
                Err(e) => return Err(card.fail("reading the attestation certificate (f9)", e)),
            };
            Ok(Some(Attestation {
                certificate: leaf,
                intermediate,
            }))
        })
    }
}

/// The slot a new key goes to: the one asked for (if tufa may overwrite it) or the first free.
fn pick_slot(card: &mut Card<'_>, wanted: Option<PivSlot>) -> Result<PivSlot, AgentError> {
    for (slot, used) in card.slots()? {
        if wanted.is_some_and(|w| w != slot) {
            continue;
        }
        match used {
            SlotUse::Empty | SlotUse::Deleted => return Ok(slot),
            SlotUse::Ours(k) if wanted.is_some() => {
                return Err(AgentError::InvalidArgument(format!(
                    "slot {slot} of {} holds key '{}' ({}): delete it first with `tufa key delete {}`",
                    card.describe(),
                    k.name,
                    k.id,
                    k.name
                )))
            }
            SlotUse::Foreign(_) if wanted.is_some() => {
                return Err(AgentError::InvalidArgument(format!(
                    "slot {slot} of {} holds a key tufa did not make: choose another slot, or clear it with ykman if it is really unused",
                    card.describe()
                )))
            }
            _ => {}
        }
    }
    Err(AgentError::InvalidArgument(format!(
        "{} has no free key slot (tufa uses 82-95, 9a, 9c, 9d, 9e): delete a key first",
        card.describe()
    )))
}

fn write_marker(card: &mut Card<'_>, slot: PivSlot, marker: &Marker) -> Result<(), AgentError> {
    let mut bytes = marker.encode()?;
    let conn = card.connect()?;
    match conn.yk.save_object(marker::object(slot), &mut bytes) {
        Ok(()) => Ok(()),
        Err(e) => Err(card.fail("storing the key's name on the card", e)),
    }
}

/// Stores a new key's marker and reads the key back; on failure the slot is left free.
fn finish_new_key(
    card: &mut Card<'_>,
    slot: PivSlot,
    spec: &GenerateSpec,
    spki: &[u8],
) -> Result<KeyInfo, AgentError> {
    let id = KeyId::for_ecdsa_spki(spki);
    write_marker(card, slot, &Marker::key(&spec.name, &id))?;
    // An old certificate belongs to the slot's previous key.
    let conn = card.connect()?;
    let _ = Certificate::delete(&mut conn.yk, slot.id());
    card.forget_slots();
    let (_, info) = card.find(&id)?;
    Ok(info)
}
