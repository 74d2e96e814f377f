//! Proto <-> domain conversions, and the words `status` shows people.

use std::sync::Arc;

use tufa_proto::v1;

use crate::backend::{
    Backend, BackendKind, DeviceLocation, GenerateSpec, KeyInfo, Location, Origin, PinPolicy,
    Placement, TokenLocation, TouchPolicy,
};
use crate::error::AgentError;
use crate::keyring::{DeviceStatus, NewKey};
use crate::keys::{KeyRef, Sha256Digest};
use crate::tag::ServerTag;

/// The longest key reference or name a request may carry: far above any name (64) or key ID
/// (64), and small enough that quoting it in an error or an audit line costs nothing.
pub const MAX_REFERENCE: usize = 1024;

/// A request's key reference (ID, unique ID prefix or name).
pub fn key_ref_from_proto(key: &str) -> Result<KeyRef, AgentError> {
    not_too_long("key reference", key)?;
    Ok(key.parse()?)
}

/// Refuses client text longer than [`MAX_REFERENCE`], without quoting it.
pub fn not_too_long(what: &str, text: &str) -> Result<(), AgentError> {
    if text.len() > MAX_REFERENCE {
        return Err(AgentError::InvalidArgument(format!(
            "a {what} of {} bytes: at most {MAX_REFERENCE} are accepted",
            text.len()
        )));
    }
    Ok(())
}

/// The fields a generate and an import request share.
struct NewKeyFields<'a> {
    name: &'a str,
    backend: i32,
    device: &'a str,
    slot: &'a str,
    pin_policy: i32,
    touch_policy: i32,
}

impl TryFrom<NewKeyFields<'_>> for NewKey {
    type Error = AgentError;

    fn try_from(r: NewKeyFields<'_>) -> Result<Self, AgentError> {
        not_too_long("key name", r.name)?;
        not_too_long("device name", r.device)?;
        let name = r.name.parse()?;
        let kind = backend_from_proto(r.backend)?;
        let slot = Some(r.slot)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .transpose()?;
        let pin_policy = pin_policy_from_proto(r.pin_policy);
        let touch_policy = touch_policy_from_proto(r.touch_policy);
        // Any YubiKey knob makes the request a YubiKey placement; other devices refuse it.
        let placement = if slot.is_none()
            && pin_policy == PinPolicy::Unknown
            && touch_policy == TouchPolicy::Unknown
        {
            Placement::Default
        } else {
            Placement::YubiKey {
                slot,
                pin_policy,
                touch_policy,
            }
        };
        Ok(Self {
            spec: GenerateSpec { name, placement },
            kind,
            device: Some(r.device.to_owned()).filter(|d| !d.is_empty()),
        })
    }
}

/// Generate and import requests carry the same new-key fields.
macro_rules! new_key_from {
    ($($request:ty),*) => {$(
        impl TryFrom<&$request> for NewKey {
            type Error = AgentError;

            fn try_from(r: &$request) -> Result<Self, AgentError> {
                NewKeyFields {
                    name: &r.name,
                    backend: r.backend,
                    device: &r.device,
                    slot: &r.slot,
                    pin_policy: r.pin_policy,
                    touch_policy: r.touch_policy,
                }
                .try_into()
            }
        }
    )*};
}

new_key_from!(v1::GenerateKeyRequest, v1::ImportKeyRequest);

/// The digest a sign request asks for: of the data sent, or sent as is.
pub fn digest_from_proto(
    payload: Option<v1::sign_request::Payload>,
) -> Result<Sha256Digest, AgentError> {
    match payload {
        Some(v1::sign_request::Payload::Data(d)) if d.is_empty() => Err(
            AgentError::InvalidArgument("nothing to sign: the payload is empty".into()),
        ),
        Some(v1::sign_request::Payload::Data(d)) => Ok(Sha256Digest::of(&d)),
        Some(v1::sign_request::Payload::Sha256Digest(d)) => {
            Ok(Sha256Digest::try_from(d.as_slice())?)
        }
        None => Err(AgentError::InvalidArgument(
            "nothing to sign: send data or a sha256_digest".into(),
        )),
    }
}

impl From<KeyInfo> for v1::Key {
    fn from(k: KeyInfo) -> Self {
        let uri = k.uri();
        v1::Key {
            uri,
            other_tool: k.other_tool,
            key_id: k.id.to_string(),
            name: k.name.to_string(),
            backend: backend_to_proto(k.backend) as i32,
            location: Some(key_location_to_proto(k.location)),
            algorithm: v1::Algorithm::EcdsaP256 as i32,
            public_key_spki: k.public_spki,
            certificate_der: k.certificate.unwrap_or_default(),
            pin_policy: match k.pin_policy {
                PinPolicy::Unknown => v1::PinPolicy::Unspecified,
                PinPolicy::Never => v1::PinPolicy::Never,
                PinPolicy::Once => v1::PinPolicy::Once,
                PinPolicy::Always => v1::PinPolicy::Always,
            } as i32,
            touch_policy: match k.touch_policy {
                TouchPolicy::Unknown => v1::TouchPolicy::Unspecified,
                TouchPolicy::Never => v1::TouchPolicy::Never,
                TouchPolicy::Always => v1::TouchPolicy::Always,
                TouchPolicy::Cached => v1::TouchPolicy::Cached,
            } as i32,
            origin: match k.origin {
                Origin::Unknown => v1::KeyOrigin::Unspecified,
                Origin::Generated => v1::KeyOrigin::Generated,
                Origin::Imported => v1::KeyOrigin::Imported,
            } as i32,
            server: None,
        }
    }
}

/// A key for `list` and `get`, with its notary-server tag if it has one.
pub fn key_to_proto(k: KeyInfo, tag: Option<&ServerTag>) -> v1::Key {
    v1::Key {
        server: tag.map(|t| v1::ServerKey {
            gun: t.gun.clone(),
            role: t.role.to_string(),
            used: t.used,
        }),
        ..k.into()
    }
}

/// A device for `status`, with the words that say why it is absent or locked.
pub fn device_to_proto(device: &Arc<dyn Backend>, status: DeviceStatus) -> v1::Device {
    let (present, detail, key_count) = match status.keys {
        Ok(n) if status.locked => (true, "locked: `tufa agent unlock` gives it a PIN".into(), n),
        Ok(n) => (true, String::new(), n),
        Err(e) => (false, e.to_string(), 0),
    };
    v1::Device {
        backend: backend_to_proto(device.kind()) as i32,
        name: device.name().to_owned(),
        location: Some(device_location_to_proto(device.location())),
        present,
        locked: status.locked,
        detail,
        key_count: key_count as u32,
    }
}

fn backend_from_proto(v: i32) -> Result<Option<BackendKind>, AgentError> {
    match v1::Backend::try_from(v) {
        Ok(v1::Backend::Unspecified) => Ok(None),
        Ok(v1::Backend::Pkcs11) => Ok(Some(BackendKind::Pkcs11)),
        Ok(v1::Backend::Yubikey) => Ok(Some(BackendKind::YubiKey)),
        Err(_) => Err(AgentError::InvalidArgument(format!("unknown backend {v}"))),
    }
}

fn backend_to_proto(k: BackendKind) -> v1::Backend {
    match k {
        BackendKind::Pkcs11 => v1::Backend::Pkcs11,
        BackendKind::YubiKey => v1::Backend::Yubikey,
    }
}

fn pin_policy_from_proto(v: i32) -> PinPolicy {
    match v1::PinPolicy::try_from(v) {
        Ok(v1::PinPolicy::Never) => PinPolicy::Never,
        Ok(v1::PinPolicy::Once) => PinPolicy::Once,
        Ok(v1::PinPolicy::Always) => PinPolicy::Always,
        _ => PinPolicy::Unknown,
    }
}

fn touch_policy_from_proto(v: i32) -> TouchPolicy {
    match v1::TouchPolicy::try_from(v) {
        Ok(v1::TouchPolicy::Never) => TouchPolicy::Never,
        Ok(v1::TouchPolicy::Always) => TouchPolicy::Always,
        Ok(v1::TouchPolicy::Cached) => TouchPolicy::Cached,
        _ => TouchPolicy::Unknown,
    }
}

fn token_to_proto(t: TokenLocation) -> v1::key_location::Location {
    v1::key_location::Location::Pkcs11(v1::Pkcs11Location {
        module: t.module,
        token_label: t.token_label,
        token_serial: t.token_serial,
        token_model: t.token_model,
        token_manufacturer: t.token_manufacturer,
    })
}

fn key_location_to_proto(l: Location) -> v1::KeyLocation {
    v1::KeyLocation {
        location: Some(match l {
            Location::Pkcs11(t) => token_to_proto(t),
            Location::YubiKey { serial, slot } => {
                v1::key_location::Location::Yubikey(v1::YubiKeyLocation {
                    serial,
                    slot: slot.to_string(),
                })
            }
        }),
    }
}

fn device_location_to_proto(l: DeviceLocation) -> v1::KeyLocation {
    v1::KeyLocation {
        location: Some(match l {
            DeviceLocation::Pkcs11(t) => token_to_proto(t),
            // The device itself: no slot.
            DeviceLocation::YubiKey { serial } => {
                v1::key_location::Location::Yubikey(v1::YubiKeyLocation {
                    serial,
                    slot: String::new(),
                })
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::PivSlot;

    #[test]
    fn a_request_with_yubikey_knobs_is_a_yubikey_placement() {
        let plain = v1::GenerateKeyRequest {
            name: "alice".into(),
            ..Default::default()
        };
        let new = NewKey::try_from(&plain).unwrap();
        assert_eq!(new.spec.placement, Placement::Default);
        assert_eq!((new.kind, new.device), (None, None));

        let slotted = v1::GenerateKeyRequest {
            name: "alice".into(),
            backend: v1::Backend::Yubikey as i32,
            device: "123".into(),
            slot: "9c".into(),
            touch_policy: v1::TouchPolicy::Always as i32,
            ..Default::default()
        };
        let new = NewKey::try_from(&slotted).unwrap();
        assert_eq!(
            new.spec.placement,
            Placement::YubiKey {
                slot: Some("9c".parse::<PivSlot>().unwrap()),
                pin_policy: PinPolicy::Unknown,
                touch_policy: TouchPolicy::Always,
            }
        );
        assert_eq!(new.kind, Some(BackendKind::YubiKey));
        assert_eq!(new.device.as_deref(), Some("123"));
    }

    #[test]
    fn bad_requests_are_refused_by_name() {
        let bad = |r: v1::ImportKeyRequest| NewKey::try_from(&r).unwrap_err().to_string();
        // The request zeroizes itself on drop, so it is built field by field.
        let request = |name: &str, slot: &str, backend: i32| v1::ImportKeyRequest {
            name: name.into(),
            backend,
            device: String::new(),
            pem: Vec::new(),
            passphrase: String::new(),
            slot: slot.into(),
            pin_policy: 0,
            touch_policy: 0,
        };
        assert!(bad(request("bad name!", "", 0)).contains("invalid key name 'bad name!'"));
        assert!(bad(request("alice", "9b", 0)).contains("'9b' is not a PIV key slot"));
        assert!(bad(request("alice", "", 9)).contains("unknown backend 9"));
        assert!(digest_from_proto(None).is_err());
        assert!(digest_from_proto(Some(v1::sign_request::Payload::Data(vec![]))).is_err());
        assert!(matches!(
            digest_from_proto(Some(v1::sign_request::Payload::Sha256Digest(vec![0; 20]))),
            Err(AgentError::InvalidDigest { len: 20 })
        ));
    }
}
