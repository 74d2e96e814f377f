//! The keyring: every configured device, which device holds which key, and the key operations
//! that route a request to the device holding the key.
//!
//! The devices are the source of truth: the cache is rebuilt from them on a miss, so keys made
//! by other tools, or a token swapped while the agent runs, are found without a restart. Every
//! method blocks on hardware.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use crate::backend::pkcs11::Pkcs11Backend;
use crate::backend::yubikey::YubiKeyBackend;
use crate::backend::{Attestation, Backend, BackendKind, GenerateSpec, KeyInfo, Location};
use crate::config::Config;
use crate::error::AgentError;
use crate::import::ImportedKey;
use crate::keys::{EcdsaSignature, KeyId, KeyName, KeyRef, Pkcs11Uri, Sha256Digest};

/// A key and the device that holds it.
#[derive(Clone)]
pub struct Found {
    /// The device.
    pub device: Arc<dyn Backend>,
    /// The key, as the device reports it.
    pub key: KeyInfo,
}

/// A request for a new key: what to make, and which device takes it.
#[derive(Clone, Debug)]
pub struct NewKey {
    /// Name and placement.
    pub spec: GenerateSpec,
    /// The kind of device asked for, if any.
    pub kind: Option<BackendKind>,
    /// The device asked for by name, if any.
    pub device: Option<String>,
}

/// A device's state, for `status`.
#[derive(Debug)]
pub struct DeviceStatus {
    /// The number of keys, or why they cannot be listed (the device is absent).
    pub keys: Result<usize, AgentError>,
    /// A PIN must be given before the device can sign.
    pub locked: bool,
}

/// Every configured device, and a cache of which device holds which key.
pub struct Keyring {
    backends: Vec<Arc<dyn Backend>>,
    cache: RwLock<Vec<(usize, KeyInfo)>>,
}

impl Keyring {
    /// Opens every configured device and reads their keys; fails if one is missing or
    /// misconfigured (an absent YubiKey is not: it is plugged in while the agent runs).
    pub fn open(config: &Config) -> Result<Self, AgentError> {
        let mut backends: Vec<Arc<dyn Backend>> = Vec::new();
        for p in &config.pkcs11 {
            backends.push(Arc::new(Pkcs11Backend::open(p.clone())?));
        }
        for y in &config.yubikeys {
            backends.push(Arc::new(YubiKeyBackend::open(y.clone())?));
        }
        let keyring = Self::new(backends);
        let keys = keyring.refresh();
        tracing::info!(
            keys = keys.len(),
            devices = keyring.backends.len(),
            "devices opened"
        );
        Ok(keyring)
    }

    /// A keyring over these devices; call [`Keyring::refresh`] to fill the cache.
    pub fn new(backends: Vec<Arc<dyn Backend>>) -> Self {
        Self {
            backends,
            cache: RwLock::new(Vec::new()),
        }
    }

    /// The configured devices.
    pub fn backends(&self) -> &[Arc<dyn Backend>] {
        &self.backends
    }

    /// Re-reads the keys of every present device and returns them. A device that fails is
    /// logged and keeps its keys in the cache (not in the answer), so a request for one of them
    /// still reaches the device and gets the device's own error ("not available: plug it
    /// in", "came back with another serial"), not "no such key".
    pub fn refresh(&self) -> Vec<KeyInfo> {
        let old = self.cache.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut all = Vec::new();
        let mut keys = Vec::new();
        for (i, b) in self.backends.iter().enumerate() {
            match b.keys() {
                Ok(found) => {
                    keys.extend(found.iter().cloned());
                    all.extend(found.into_iter().map(|k| (i, k)));
                }
                Err(e) => {
                    tracing::warn!(device = b.name(), error = %e, "cannot list keys");
                    all.extend(old.iter().filter(|(j, _)| *j == i).cloned());
                }
            }
        }
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = all;
        keys
    }

    /// Finds a key by ID, name or ID prefix; a miss re-reads the devices once.
    pub fn resolve(&self, key: &KeyRef) -> Result<Found, AgentError> {
        if let Some(found) = self.lookup(key)? {
            return Ok(found);
        }
        self.refresh();
        self.lookup(key)?.ok_or_else(|| AgentError::KeyNotFound {
            key: key.to_string(),
        })
    }

    /// The one rule: a full ID or an exact name wins, then a unique ID prefix; an ambiguous
    /// prefix is an error.
    fn lookup(&self, key: &KeyRef) -> Result<Option<Found>, AgentError> {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        let hit = |(i, k): &(usize, KeyInfo)| Found {
            device: Arc::clone(&self.backends[*i]),
            key: k.clone(),
        };
        let s = match key {
            KeyRef::Id(id) => return Ok(cache.iter().find(|(_, k)| k.id == *id).map(hit)),
            KeyRef::NameOrPrefix(s) => s,
            KeyRef::Uri(uri) => {
                let matches: Vec<_> = cache.iter().filter(|(_, k)| uri_matches(uri, k)).collect();
                return one_of(key, &matches).map(|f| f.map(hit));
            }
            KeyRef::Slot { serial, slot } => {
                return Ok(cache
                    .iter()
                    .find(|(_, k)| {
                        matches!(&k.location, Location::YubiKey { serial: s, slot: p } if s == serial && p.byte() == *slot)
                    })
                    .map(hit))
            }
        };
        if let Some(found) = cache.iter().find(|(_, k)| k.name.as_str() == s) {
            return Ok(Some(hit(found)));
        }
        let Some(prefix) = key.as_prefix() else {
            return Ok(None);
        };
        let matches: Vec<_> = cache
            .iter()
            .filter(|(_, k)| k.id.to_string().starts_with(&prefix))
            .collect();
        one_of(key, &matches).map(|f| f.map(hit))
    }

    /// The key that has this name on any device, re-read from the devices (names are unique
    /// per agent).
    pub fn key_named(&self, name: &KeyName) -> Option<KeyInfo> {
        self.refresh().into_iter().find(|k| k.name == *name)
    }

    /// Picks the device for a new key: by backend kind and device name, or the only/first one.
    pub fn pick_device(
        &self,
        kind: Option<BackendKind>,
        device: Option<&str>,
    ) -> Result<Arc<dyn Backend>, AgentError> {
        let candidates: Vec<_> = self
            .backends
            .iter()
            .filter(|b| kind.is_none_or(|k| b.kind() == k))
            .filter(|b| device.is_none_or(|d| b.name() == d))
            .collect();
        match candidates.first() {
            Some(b) => Ok(Arc::clone(b)),
            None => Err(AgentError::NoDevice {
                wanted: match (kind, device) {
                    (_, Some(d)) => format!("device '{d}'"),
                    (Some(k), None) => format!("{k} device"),
                    (None, None) => "device".into(),
                },
                configured: self.backends.iter().map(|b| b.name().to_owned()).collect(),
            }),
        }
    }

    fn refuse_taken_name(&self, name: &KeyName) -> Result<(), AgentError> {
        match self.key_named(name) {
            Some(existing) => Err(AgentError::NameTaken {
                name: name.clone(),
                key_id: existing.id,
            }),
            None => Ok(()),
        }
    }

    /// Generates a key on the device the request asks for; its name must be free.
    pub fn generate(&self, new: &NewKey) -> Result<KeyInfo, AgentError> {
        self.refuse_taken_name(&new.spec.name)?;
        let device = self.pick_device(new.kind, new.device.as_deref())?;
        let info = device.generate(&new.spec)?;
        self.refresh();
        Ok(info)
    }

    /// Imports a key into the device the request asks for; neither the key nor its name may be
    /// in the agent already.
    pub fn import(&self, new: &NewKey, key: &ImportedKey) -> Result<KeyInfo, AgentError> {
        let id = KeyId::for_ecdsa_spki(&key.public_spki());
        if let Ok(existing) = self.resolve(&KeyRef::Id(id)) {
            return Err(AgentError::KeyExists {
                name: existing.key.name,
                key_id: id,
            });
        }
        self.refuse_taken_name(&new.spec.name)?;
        let device = self.pick_device(new.kind, new.device.as_deref())?;
        let info = device.import(&new.spec, key)?;
        self.refresh();
        Ok(info)
    }

    /// Adopts a key another tool made in a YubiKey slot (`yubikey:SERIAL/SLOT`) under `name`,
    /// which must be free; returns the key as tufa now lists it.
    pub fn adopt(&self, key: &KeyRef, name: &KeyName) -> Result<KeyInfo, AgentError> {
        let KeyRef::Slot { serial, slot } = key else {
            return Err(AgentError::InvalidArgument(format!(
                "adopt takes a YubiKey slot, yubikey:SERIAL/SLOT (e.g. yubikey:12345678/9c), not {key}: keys of other tools on a PKCS#11 token sign as they are"
            )));
        };
        self.refuse_taken_name(name)?;
        let device = self
            .backends
            .iter()
            .find(|b| b.location() == crate::backend::DeviceLocation::YubiKey { serial: *serial })
            .ok_or_else(|| AgentError::NoDevice {
                wanted: format!("YubiKey serial {serial}"),
                configured: self.backends.iter().map(|b| b.name().to_owned()).collect(),
            })?;
        let info = device.adopt(*slot, name)?;
        self.refresh();
        Ok(info)
    }

    /// Deletes a key; returns what it was.
    pub fn delete(&self, key: &KeyRef) -> Result<KeyInfo, AgentError> {
        let Found { device, key } = self.resolve(key)?;
        device.delete(&key.id)?;
        self.refresh();
        Ok(key)
    }

    /// Stores a certificate with a key after checking it certifies the key; returns the key as
    /// it is now.
    pub fn set_certificate(&self, key: &KeyRef, der: &[u8]) -> Result<KeyInfo, AgentError> {
        let Found { device, key } = self.resolve(key)?;
        check_certificate(&key, der)?;
        device.set_certificate(&key.id, der)?;
        self.refresh();
        self.resolve(&KeyRef::Id(key.id)).map(|f| f.key)
    }

    /// Signs a digest with a key.
    pub fn sign(
        &self,
        key: &KeyRef,
        digest: &Sha256Digest,
    ) -> Result<(KeyInfo, EcdsaSignature), AgentError> {
        let Found { device, key } = self.resolve(key)?;
        let sig = device.sign(&key.id, digest)?;
        Ok((key, sig))
    }

    /// A key's attestation, with the device that refused when it has none.
    pub fn attest(&self, key: &KeyRef) -> Result<(Found, Option<Attestation>), AgentError> {
        let found = self.resolve(key)?;
        let att = found.device.attest(&found.key.id)?;
        Ok((found, att))
    }

    /// Every device with its state.
    pub fn status(&self) -> Vec<(Arc<dyn Backend>, DeviceStatus)> {
        self.backends
            .iter()
            .map(|b| {
                let keys = b.keys().map(|k| k.len());
                let locked = b.needs_pin();
                (Arc::clone(b), DeviceStatus { keys, locked })
            })
            .collect()
    }

    /// Gives a device a client's PIN for `ttl`; the device is the one named, else the only one,
    /// else the only one that needs a PIN. Returns the device's name.
    pub fn unlock(
        &self,
        device: Option<&str>,
        pin: SecretString,
        ttl: Duration,
    ) -> Result<String, AgentError> {
        let backend = self.unlock_target(device)?;
        if pin.expose_secret().is_empty() {
            return Err(AgentError::InvalidArgument("the PIN is empty".into()));
        }
        backend.unlock(pin, ttl)?;
        Ok(backend.name().to_owned())
    }

    fn unlock_target(&self, device: Option<&str>) -> Result<Arc<dyn Backend>, AgentError> {
        if let Some(d) = device {
            return self.pick_device(None, Some(d));
        }
        if let [only] = self.backends.as_slice() {
            return Ok(Arc::clone(only));
        }
        let needing: Vec<_> = self.backends.iter().filter(|b| b.needs_pin()).collect();
        match needing.as_slice() {
            [one] => Ok(Arc::clone(one)),
            _ => Err(AgentError::InvalidArgument(format!(
                "several devices could take this PIN ({}): say which with --device",
                self.backends
                    .iter()
                    .map(|b| b.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Forgets every cached PIN and logs out of every device; returns their names.
    pub fn lock(&self) -> Vec<String> {
        self.backends
            .iter()
            .map(|b| {
                b.lock();
                b.name().to_owned()
            })
            .collect()
    }
}

/// The one match, none, or an error naming the keys an ambiguous reference matches.
fn one_of<'a>(
    key: &KeyRef,
    matches: &[&'a (usize, KeyInfo)],
) -> Result<Option<&'a (usize, KeyInfo)>, AgentError> {
    match matches {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(AgentError::AmbiguousKey {
            key: key.to_string(),
            matches: many.iter().map(|(_, k)| k.id.to_string()).collect(),
        }),
    }
}

/// Whether a key on a PKCS#11 token is one a `pkcs11:` URI names: every attribute given must
/// equal the key's (token label, serial, model, manufacturer, module path; the label as
/// `object`, `CKA_ID` as `id`); `type` is private or public, both naming the key pair.
fn uri_matches(uri: &Pkcs11Uri, key: &KeyInfo) -> bool {
    let Location::Pkcs11(t) = &key.location else {
        return false;
    };
    let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
    eq(&uri.token, &t.token_label)
        && eq(&uri.serial, &t.token_serial)
        && eq(&uri.model, &t.token_model)
        && eq(&uri.manufacturer, &t.token_manufacturer)
        && eq(&uri.module_path, &t.module)
        && eq(&uri.object, key.name.as_str())
        && uri
            .id
            .as_deref()
            .is_none_or(|id| id == key.object_id.as_slice())
}

/// A certificate must be X.509 DER and certify exactly this key's public key.
fn check_certificate(info: &KeyInfo, der: &[u8]) -> Result<(), AgentError> {
    use x509_cert::der::{Decode as _, Encode as _};
    let refuse = |reason: String| AgentError::Certificate {
        key_id: info.id,
        reason,
    };
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| refuse(format!("not an X.509 certificate in DER: {e}")))?;
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| refuse(e.to_string()))?;
    if spki != info.public_spki {
        return Err(refuse(
            "it certifies another public key than this key's".into(),
        ));
    }
    Ok(())
}
