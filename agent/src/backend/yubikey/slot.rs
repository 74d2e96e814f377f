//! What a PIV slot holds, as far as tufa is concerned: read from the slot's metadata (firmware
//! 5.3+), tufa's marker and the certificate object.
//!
//! A marker whose key ID no longer matches the slot's public key (another tool replaced the
//! key) is ignored, and such slots are never chosen for a new key.

use p256::pkcs8::der::Encode as _;
use yubikey::piv::{self, AlgorithmId, SlotAlgorithmId, SlotId};
use yubikey::{Certificate, YubiKey};

use super::marker::{Marker, Says};
use crate::backend::{BackendKind, KeyInfo, Location, Origin, PinPolicy, PivSlot, TouchPolicy};
use crate::keys::{KeyId, KeyLabel};

/// What a slot holds.
#[derive(Clone, Debug)]
pub enum SlotUse {
    /// No key.
    Empty,
    /// A key tufa deleted: free for reuse.
    Deleted,
    /// A tufa key.
    Ours(Box<KeyInfo>),
    /// A key of another tool (ykman, yubico-piv-tool): its info when it is a P-256 key tufa
    /// could sign with once adopted, `None` for other algorithms.
    Foreign(Option<Box<KeyInfo>>),
}

/// Reads what `slot` of the card with this serial holds.
pub fn read(yk: &mut YubiKey, serial: u32, slot: PivSlot) -> Result<SlotUse, yubikey::Error> {
    let marker = Marker::read(yk, slot)?;
    let meta = match piv::metadata(yk, slot.id()) {
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
    let p256 = meta.algorithm == SlotAlgorithmId::Asymmetric(AlgorithmId::EccP256);
    let name = match marker.as_ref().map(Marker::says) {
        Some(Says::Deleted(d)) if d == id.to_string() => return Ok(SlotUse::Deleted),
        Some(Says::Key { name, key_id }) if key_id == id.to_string() && p256 => {
            Some(KeyLabel::from_device(name.to_owned()))
        }
        Some(Says::Key { .. }) => {
            tracing::warn!(serial, slot = %slot, "the key in this slot is not the one tufa stored; listing it as another tool's");
            None
        }
        _ => None,
    };
    if name.is_none() && !p256 {
        return Ok(SlotUse::Foreign(None));
    }
    let certificate = match Certificate::read(yk, slot.id()) {
        Ok(c) => c.cert.to_der().ok(),
        Err(e @ yubikey::Error::PcscError { .. }) => return Err(e),
        Err(_) => None,
    };
    let (pin_policy, touch_policy) = meta
        .policy
        .map(|(p, t)| (pin_from_card(p, slot), touch_from_card(t)))
        .unwrap_or((default_pin_policy(slot), TouchPolicy::Unknown));
    let info = Box::new(KeyInfo {
        id,
        name: name.clone().unwrap_or(KeyLabel::Foreign(String::new())),
        backend: BackendKind::YubiKey,
        location: Location::YubiKey { serial, slot },
        public_spki: spki,
        certificate,
        pin_policy,
        touch_policy,
        origin: match meta.origin {
            Some(piv::Origin::Generated) => Origin::Generated,
            Some(piv::Origin::Imported) => Origin::Imported,
            None => Origin::Unknown,
        },
        object_id: Vec::new(),
        other_tool: name.is_none(),
    });
    Ok(match name {
        Some(_) => SlotUse::Ours(info),
        None => SlotUse::Foreign(Some(info)),
    })
}

/// The PIN policy the card applies to a key made with the default policy.
fn default_pin_policy(slot: PivSlot) -> PinPolicy {
    match slot.id() {
        SlotId::Signature => PinPolicy::Always,
        SlotId::CardAuthentication => PinPolicy::Never,
        _ => PinPolicy::Once,
    }
}

fn pin_from_card(p: yubikey::PinPolicy, slot: PivSlot) -> PinPolicy {
    match p {
        yubikey::PinPolicy::Never => PinPolicy::Never,
        yubikey::PinPolicy::Once => PinPolicy::Once,
        yubikey::PinPolicy::Always => PinPolicy::Always,
        yubikey::PinPolicy::Default => default_pin_policy(slot),
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

/// The card's PIN and touch policies for a new key: the PIN once per session (the agent holds
/// the session) unless asked otherwise; the touch as asked, else `default_touch`.
pub fn new_key_policies(
    pin: PinPolicy,
    touch: TouchPolicy,
    default_touch: TouchPolicy,
) -> (yubikey::PinPolicy, yubikey::TouchPolicy) {
    let pin = match pin {
        PinPolicy::Never => yubikey::PinPolicy::Never,
        PinPolicy::Always => yubikey::PinPolicy::Always,
        PinPolicy::Once | PinPolicy::Unknown => yubikey::PinPolicy::Once,
    };
    let touch = match touch {
        TouchPolicy::Unknown => default_touch,
        t => t,
    };
    let touch = match touch {
        TouchPolicy::Always => yubikey::TouchPolicy::Always,
        TouchPolicy::Cached => yubikey::TouchPolicy::Cached,
        TouchPolicy::Never | TouchPolicy::Unknown => yubikey::TouchPolicy::Never,
    };
    (pin, touch)
}

/// A certificate data object is `70 <DER> 71 <compression> FE <LRC>`; returns the DER.
pub fn strip_cert_object(buf: &[u8]) -> Option<Vec<u8>> {
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
    fn default_policies_follow_the_slot() {
        let slot = |s: &str| s.parse::<PivSlot>().unwrap();
        assert_eq!(default_pin_policy(slot("9c")), PinPolicy::Always);
        assert_eq!(default_pin_policy(slot("9e")), PinPolicy::Never);
        assert_eq!(default_pin_policy(slot("82")), PinPolicy::Once);
        assert_eq!(
            new_key_policies(
                PinPolicy::Unknown,
                TouchPolicy::Unknown,
                TouchPolicy::Cached
            ),
            (yubikey::PinPolicy::Once, yubikey::TouchPolicy::Cached)
        );
        assert_eq!(
            new_key_policies(PinPolicy::Always, TouchPolicy::Never, TouchPolicy::Cached),
            (yubikey::PinPolicy::Always, yubikey::TouchPolicy::Never)
        );
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
