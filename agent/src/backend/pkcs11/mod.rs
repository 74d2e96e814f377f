//! A PKCS#11 token as a [`Backend`], through `cryptoki`.
//!
//! The token is found by label (slot numbers change). Keys are stored with `CKA_ID` = the TUF
//! key ID and `CKA_LABEL` = the key's name, on both the private and the public key object, so the
//! agent finds them again after a restart from the token alone; keys made by other tools are
//! found too, by the key ID of their public key.
//!
//! Concurrency: PKCS#11 logs in per token and process, so one login serves every session. An
//! "anchor" session holds the login; signatures run on a small pool of sessions, each used by one
//! blocking worker at a time (a `Session` is `Send` but not `Sync`). Digests are computed on the
//! host and signed with `CKM_ECDSA`, which every token has (SoftHSM lacks `CKM_ECDSA_SHA256`).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use p256::pkcs8::der::asn1::OctetString;
use p256::pkcs8::der::{Decode as _, Encode as _};
use p256::pkcs8::EncodePublicKey as _;
use secrecy::SecretString;
use tufa_proto::KeyId;
use zeroize::Zeroize as _;

use super::{
    Backend, BackendKind, DeviceStatus, GenerateSpec, KeyInfo, Location, Origin, PinPolicy,
    TouchPolicy,
};
use crate::error::{AgentError, Retries};
use crate::import::ImportedKey;
use crate::keys::{EcdsaSignature, Sha256Digest};
use crate::pin::{NoPin, PinOrigin, PinSource, PinState};

/// How to unblock a token's user PIN.
const PIN_BLOCKED_FIX: &str = "reset it with the security officer PIN (e.g. `softhsm2-util --init-pin` or `pkcs11-tool --init-pin --login --login-type so`)";

/// DER of the P-256 curve OID, the `CKA_EC_PARAMS` of every key the agent makes.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

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

/// One PKCS#11 token.
pub struct Pkcs11Backend {
    config: Pkcs11Config,
    ctx: Pkcs11,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    conn: Option<Connection>,
    pin: PinState,
    // Bumped on every reconnect, so sessions of an old connection are not put back.
    generation: u64,
}

struct Connection {
    slot: Slot,
    serial: String,
    anchor: Session,
    logged_in: Option<PinOrigin>,
    idle: Vec<Session>,
    handles: HashMap<KeyId, ObjectHandle>,
}

/// A session taken from the pool for one operation.
struct Lease {
    session: Session,
    generation: u64,
}

impl Pkcs11Backend {
    /// Loads the module and finds the token; fails with the module path and label if either is
    /// missing, so a misconfigured runner stops at start-up instead of at the first signature.
    pub fn open(config: Pkcs11Config) -> Result<Self, AgentError> {
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
        let backend = Self {
            state: Mutex::new(State {
                pin: PinState::new(config.pin.clone()),
                ..State::default()
            }),
            config,
            ctx,
        };
        {
            let mut st = backend.lock_state();
            backend.connect(&mut st)?;
        }
        Ok(backend)
    }

    fn describe(&self) -> String {
        format!(
            "PKCS#11 token '{}' (module {})",
            self.config.token, self.config.module
        )
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves nothing half-done that matters here.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn find_slot(&self) -> Result<(Slot, String), AgentError> {
        let slots = self
            .ctx
            .get_slots_with_token()
            .map_err(|e| self.device_err("listing slots", e))?;
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

    fn connect<'a>(&self, st: &'a mut State) -> Result<&'a mut Connection, AgentError> {
        if st.conn.is_none() {
            let (slot, serial) = self.find_slot()?;
            let anchor = self
                .ctx
                .open_rw_session(slot)
                .map_err(|e| self.classify("opening a session", e))?;
            st.generation += 1;
            st.conn = Some(Connection {
                slot,
                serial,
                anchor,
                logged_in: None,
                idle: Vec::new(),
                handles: HashMap::new(),
            });
            tracing::info!(token = %self.config.token, "connected to PKCS#11 token");
        }
        st.conn
            .as_mut()
            .ok_or_else(|| AgentError::Internal("connection vanished".into()))
    }

    /// Drops every session; the next request reconnects.
    fn disconnect(st: &mut State) {
        st.conn = None;
    }

    /// Logs in if needed, with the cached or configured PIN; never retries a refused PIN.
    fn ensure_login(&self, st: &mut State) -> Result<(), AgentError> {
        let expired = st.pin.cache_expired();
        let conn = self.connect(st)?;
        if conn.logged_in == Some(PinOrigin::Cache) && expired {
            // The client's PIN outlived its TTL: the login it made ends with it.
            let _ = conn.anchor.logout();
            conn.logged_in = None;
            conn.idle.clear();
            conn.handles.clear();
        }
        if conn.logged_in.is_some() {
            return Ok(());
        }
        let (pin, origin) = st.pin.current().map_err(|e| match e {
            NoPin::Locked => AgentError::Locked {
                device: self.describe(),
                name: self.config.token.clone(),
            },
            NoPin::Unreadable(detail) => AgentError::Locked {
                device: format!("{} ({detail})", self.describe()),
                name: self.config.token.clone(),
            },
            NoPin::Refused(source) => AgentError::Locked {
                device: format!(
                    "{} (the PIN from {source} was refused and has not changed since)",
                    self.describe()
                ),
                name: self.config.token.clone(),
            },
        })?;
        self.login(st, &pin, origin)
    }

    fn login(
        &self,
        st: &mut State,
        pin: &SecretString,
        origin: PinOrigin,
    ) -> Result<(), AgentError> {
        let conn = self.connect(st)?;
        match conn.anchor.login(UserType::User, Some(pin)) {
            // Login is per token and process: another session's login counts.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                conn.logged_in = Some(origin);
                Ok(())
            }
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                let retries = self.retries(conn.slot);
                st.pin.refused(pin, origin);
                tracing::warn!(token = %self.config.token, "token refused the PIN");
                Err(AgentError::WrongPin {
                    device: self.describe(),
                    retries,
                })
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                st.pin.refused(pin, origin);
                Err(AgentError::PinBlocked {
                    device: self.describe(),
                    fix: PIN_BLOCKED_FIX.into(),
                })
            }
            Err(CkError::Pkcs11(RvError::PinLenRange, _)) => {
                st.pin.refused(pin, origin);
                Err(AgentError::InvalidArgument(format!(
                    "the PIN has a length {} does not accept",
                    self.describe()
                )))
            }
            Err(e) => Err(self.fail(st, "logging in", e)),
        }
    }

    /// Whether the token can sign now without a client's PIN.
    fn unlocked(st: &mut State) -> bool {
        let logged_in = st.conn.as_ref().and_then(|c| c.logged_in).is_some();
        (logged_in && !st.pin.cache_expired()) || st.pin.available()
    }

    fn retries(&self, slot: Slot) -> Retries {
        match self.ctx.get_token_info(slot) {
            Ok(i) if i.user_pin_final_try() => Retries::FinalTry,
            Ok(i) if i.user_pin_count_low() => Retries::Low,
            _ => Retries::Unknown,
        }
    }

    /// Takes a logged-in session from the pool, or opens one.
    fn lease(&self, login: bool) -> Result<Lease, AgentError> {
        let mut st = self.lock_state();
        if login {
            self.ensure_login(&mut st)?;
        }
        let generation = st.generation;
        let conn = self.connect(&mut st)?;
        let session = match conn.idle.pop() {
            Some(s) => s,
            None => {
                let slot = conn.slot;
                self.ctx
                    .open_rw_session(slot)
                    .map_err(|e| self.fail(&mut st, "opening a session", e))?
            }
        };
        Ok(Lease {
            session,
            generation,
        })
    }

    /// Puts a session back, unless the pool is full or it belongs to an old connection.
    fn release(&self, lease: Lease) {
        let mut st = self.lock_state();
        if st.generation != lease.generation {
            return;
        }
        if let Some(conn) = st.conn.as_mut() {
            if conn.idle.len() < self.config.sessions {
                conn.idle.push(lease.session);
            }
        }
    }

    /// Maps an error and, when the token is gone, drops the connection so the next call
    /// reconnects.
    fn fail(&self, st: &mut State, operation: &str, e: CkError) -> AgentError {
        let err = self.classify(operation, e);
        match &err {
            AgentError::Unavailable { .. } => Self::disconnect(st),
            AgentError::Locked { .. } => {
                if let Some(c) = st.conn.as_mut() {
                    c.logged_in = None;
                }
            }
            _ => {}
        }
        err
    }

    fn classify(&self, operation: &str, e: CkError) -> AgentError {
        classify(&self.describe(), &self.config.token, operation, e)
    }

    fn device_err(&self, operation: &str, e: CkError) -> AgentError {
        AgentError::Device {
            device: self.describe(),
            operation: operation.to_owned(),
            detail: e.to_string(),
        }
    }

    /// Runs `f` on a leased session; a lost token drops the connection and the session.
    fn with_session<T>(
        &self,
        login: bool,
        operation: &str,
        f: impl FnOnce(&Session) -> Result<T, CkError>,
    ) -> Result<T, AgentError> {
        let lease = self.lease(login)?;
        match f(&lease.session) {
            Ok(v) => {
                self.release(lease);
                Ok(v)
            }
            Err(e) => Err(self.settle(lease, operation, e)),
        }
    }

    /// Maps a failed operation's error; the session goes back to the pool unless the token is
    /// gone.
    fn settle(&self, lease: Lease, operation: &str, e: CkError) -> AgentError {
        let mut st = self.lock_state();
        let err = if st.generation == lease.generation {
            self.fail(&mut st, operation, e)
        } else {
            self.classify(operation, e)
        };
        drop(st);
        if !matches!(err, AgentError::Unavailable { .. }) {
            self.release(lease);
        }
        err
    }

    fn key_info(
        &self,
        session: &Session,
        public: ObjectHandle,
    ) -> Result<Option<KeyInfo>, CkError> {
        let attrs = session.get_attributes(
            public,
            &[
                AttributeType::Id,
                AttributeType::Label,
                AttributeType::EcParams,
                AttributeType::EcPoint,
                AttributeType::Local,
            ],
        )?;
        let (mut cka_id, mut label, mut params, mut point, mut local) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), false);
        for a in attrs {
            match a {
                Attribute::Id(v) => cka_id = v,
                Attribute::Label(v) => label = v,
                Attribute::EcParams(v) => params = v,
                Attribute::EcPoint(v) => point = v,
                Attribute::Local(v) => local = v,
                _ => {}
            }
        }
        if params != P256_PARAMS {
            return Ok(None);
        }
        let Some(spki) = spki_from_ec_point(&point) else {
            tracing::warn!(token = %self.config.token, "skipping a public key whose EC point does not parse");
            return Ok(None);
        };
        let id = KeyId::for_ecdsa_spki(&spki);
        let certificate = session
            .find_objects(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::Id(cka_id.clone()),
            ])?
            .first()
            .map(|&h| session.get_attributes(h, &[AttributeType::Value]))
            .transpose()?
            .and_then(|attrs| {
                attrs.into_iter().find_map(|a| match a {
                    Attribute::Value(v) => Some(v),
                    _ => None,
                })
            });
        Ok(Some(KeyInfo {
            id,
            name: String::from_utf8_lossy(&label).into_owned(),
            backend: BackendKind::Pkcs11,
            location: self.location_with_serial(),
            public_spki: spki,
            certificate,
            pin_policy: PinPolicy::Unknown,
            touch_policy: TouchPolicy::Unknown,
            origin: if local {
                Origin::Generated
            } else {
                Origin::Imported
            },
        }))
    }

    fn location_with_serial(&self) -> Location {
        let serial = self
            .lock_state()
            .conn
            .as_ref()
            .map(|c| c.serial.clone())
            .unwrap_or_default();
        Location::Pkcs11 {
            module: self.config.module.clone(),
            token_label: self.config.token.clone(),
            token_serial: serial,
        }
    }

    /// Public EC key objects with their key info.
    fn list(&self, session: &Session) -> Result<Vec<(ObjectHandle, KeyInfo)>, CkError> {
        let handles = session.find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC),
        ])?;
        let mut out = Vec::new();
        for h in handles {
            if let Some(info) = self.key_info(session, h)? {
                out.push((h, info));
            }
        }
        Ok(out)
    }

    /// The `CKA_ID` under which a key's objects are stored (the key ID for tufa's own keys).
    fn cka_id(&self, session: &Session, id: &KeyId) -> Result<Option<Vec<u8>>, CkError> {
        let own = session.find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Id(id.as_bytes().to_vec()),
        ])?;
        if !own.is_empty() {
            return Ok(Some(id.as_bytes().to_vec()));
        }
        for (h, info) in self.list(session)? {
            if info.id == *id {
                let attrs = session.get_attributes(h, &[AttributeType::Id])?;
                return Ok(attrs.into_iter().find_map(|a| match a {
                    Attribute::Id(v) => Some(v),
                    _ => None,
                }));
            }
        }
        Ok(None)
    }

    fn private_handle(
        &self,
        session: &Session,
        id: &KeyId,
    ) -> Result<Option<ObjectHandle>, CkError> {
        let Some(cka_id) = self.cka_id(session, id)? else {
            return Ok(None);
        };
        Ok(session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Id(cka_id),
            ])?
            .first()
            .copied())
    }

    fn cached_handle(&self, id: &KeyId) -> Option<ObjectHandle> {
        self.lock_state()
            .conn
            .as_ref()
            .and_then(|c| c.handles.get(id).copied())
    }

    fn forget_handle(&self, id: &KeyId) {
        if let Some(c) = self.lock_state().conn.as_mut() {
            c.handles.remove(id);
        }
    }

    fn not_found(id: &KeyId) -> AgentError {
        AgentError::KeyNotFound {
            key: id.to_string(),
        }
    }

    /// Destroys objects; used to leave nothing half-made behind.
    fn destroy_all(session: &Session, handles: &[ObjectHandle]) {
        for &h in handles {
            if let Err(e) = session.destroy_object(h) {
                tracing::error!(error = %e, "could not remove a half-made object");
            }
        }
    }

    fn info_of(&self, session: &Session, id: &KeyId) -> Result<KeyInfo, AgentError> {
        let found = self
            .list(session)
            .map_err(|e| self.classify("reading the new key", e))?;
        found
            .into_iter()
            .map(|(_, k)| k)
            .find(|k| k.id == *id)
            .ok_or_else(|| AgentError::Internal(format!("key {id} vanished after it was stored")))
    }
}

impl Backend for Pkcs11Backend {
    fn kind(&self) -> BackendKind {
        BackendKind::Pkcs11
    }

    fn name(&self) -> &str {
        &self.config.token
    }

    fn location(&self) -> Location {
        self.location_with_serial()
    }

    fn status(&self) -> DeviceStatus {
        let keys = self.keys();
        let locked = !Self::unlocked(&mut self.lock_state());
        DeviceStatus::from_keys(keys.as_deref(), locked)
    }

    fn keys(&self) -> Result<Vec<KeyInfo>, AgentError> {
        // Public objects need no login, so a locked token still shows its keys.
        self.with_session(false, "listing keys", |s| {
            Ok(self.list(s)?.into_iter().map(|(_, k)| k).collect())
        })
    }

    fn generate(&self, spec: &GenerateSpec) -> Result<KeyInfo, AgentError> {
        if spec.pin_policy != PinPolicy::Unknown || spec.touch_policy != TouchPolicy::Unknown {
            return Err(AgentError::Unsupported(format!(
                "{} cannot set PIN or touch policies: use a YubiKey for that",
                self.describe()
            )));
        }
        let lease = self.lease(true)?;
        let session = &lease.session;
        let name = spec.name.as_str().as_bytes().to_vec();
        // The key ID depends on the public key, so a random placeholder ID comes first.
        let placeholder: Vec<u8> = {
            let mut b = vec![0u8; 16];
            b.copy_from_slice(&rand_bytes());
            b
        };
        let public_template = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::Label(name.clone()),
            Attribute::Id(placeholder.clone()),
        ];
        let private_template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(name),
            Attribute::Id(placeholder),
        ];
        let (public, private) = match session.generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &public_template,
            &private_template,
        ) {
            Ok(pair) => pair,
            Err(e) => {
                let err = self.classify("generating a key", e);
                self.release(lease);
                return Err(err);
            }
        };
        let result = (|| {
            let point = session
                .get_attributes(public, &[AttributeType::EcPoint])
                .map_err(|e| self.classify("reading the new public key", e))?
                .into_iter()
                .find_map(|a| match a {
                    Attribute::EcPoint(v) => Some(v),
                    _ => None,
                })
                .unwrap_or_default();
            let spki = spki_from_ec_point(&point).ok_or_else(|| {
                AgentError::Internal("the token returned an EC point that does not parse".into())
            })?;
            let id = KeyId::for_ecdsa_spki(&spki);
            for h in [public, private] {
                session
                    .update_attributes(h, &[Attribute::Id(id.as_bytes().to_vec())])
                    .map_err(|e| self.classify("storing the key ID", e))?;
            }
            self.info_of(session, &id)
        })();
        if result.is_err() {
            Self::destroy_all(session, &[public, private]);
        }
        self.release(lease);
        result
    }

    fn import(&self, spec: &GenerateSpec, key: &ImportedKey) -> Result<KeyInfo, AgentError> {
        let spki = key.public_spki();
        let id = KeyId::for_ecdsa_spki(&spki);
        let lease = self.lease(true)?;
        let session = &lease.session;
        let name = spec.name.as_str().as_bytes().to_vec();
        let ec_point = OctetString::new(key.public_point())
            .and_then(|o| o.to_der())
            .map_err(|e| AgentError::Internal(format!("encoding the EC point: {e}")))?;
        let mut private_template = vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::Value(key.scalar().to_vec()),
            Attribute::Label(name.clone()),
            Attribute::Id(id.as_bytes().to_vec()),
        ];
        let private = session.create_object(&private_template);
        // The scalar's copy in the template is zeroized whatever happened.
        for a in private_template.iter_mut() {
            if let Attribute::Value(v) = a {
                v.zeroize();
            }
        }
        let private = match private {
            Ok(h) => h,
            Err(e) => {
                let err = self.classify("storing the private key", e);
                self.release(lease);
                return Err(err);
            }
        };
        let result = session
            .create_object(&[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(KeyType::EC),
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Verify(true),
                Attribute::EcParams(P256_PARAMS.to_vec()),
                Attribute::EcPoint(ec_point),
                Attribute::Label(name),
                Attribute::Id(id.as_bytes().to_vec()),
            ])
            .map_err(|e| self.classify("storing the public key", e))
            .and_then(|public| {
                self.info_of(session, &id).inspect_err(|_| {
                    Self::destroy_all(session, &[public]);
                })
            });
        if result.is_err() {
            Self::destroy_all(session, &[private]);
        }
        self.release(lease);
        result
    }

    fn delete(&self, id: &KeyId) -> Result<(), AgentError> {
        let found = self.with_session(true, "deleting a key", |s| {
            let Some(cka_id) = self.cka_id(s, id)? else {
                return Ok(false);
            };
            let objects = s.find_objects(&[Attribute::Id(cka_id)])?;
            for h in objects {
                s.destroy_object(h)?;
            }
            Ok(true)
        })?;
        self.forget_handle(id);
        if found {
            Ok(())
        } else {
            Err(Self::not_found(id))
        }
    }

    fn set_certificate(&self, id: &KeyId, der: &[u8]) -> Result<(), AgentError> {
        // PKCS#11 requires CKA_SUBJECT on an X.509 certificate object (SoftHSM refuses one
        // without it); issuer and serial number are how other tools match the certificate.
        let [subject, issuer, serial] =
            certificate_names(der).map_err(|reason| AgentError::Certificate {
                key_id: id.to_string(),
                reason,
            })?;
        let found = self.with_session(true, "storing a certificate", |s| {
            let Some(cka_id) = self.cka_id(s, id)? else {
                return Ok(false);
            };
            let label = s
                .find_objects(&[
                    Attribute::Class(ObjectClass::PUBLIC_KEY),
                    Attribute::Id(cka_id.clone()),
                ])?
                .first()
                .map(|&h| s.get_attributes(h, &[AttributeType::Label]))
                .transpose()?
                .and_then(|a| {
                    a.into_iter().find_map(|a| match a {
                        Attribute::Label(v) => Some(v),
                        _ => None,
                    })
                })
                .unwrap_or_default();
            let old = s.find_objects(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::Id(cka_id.clone()),
            ])?;
            // The new certificate is stored before the old one goes, so a failure loses nothing.
            s.create_object(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::CertificateType(CertificateType::X_509),
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Label(label),
                Attribute::Id(cka_id),
                subject,
                issuer,
                serial,
                Attribute::Value(der.to_vec()),
            ])?;
            for h in old {
                s.destroy_object(h)?;
            }
            Ok(true)
        })?;
        if found {
            Ok(())
        } else {
            Err(Self::not_found(id))
        }
    }

    fn sign(&self, id: &KeyId, digest: &Sha256Digest) -> Result<EcdsaSignature, AgentError> {
        // One retry covers a stale cached handle (key deleted and re-made by another tool).
        for attempt in 0..2 {
            let handle = match self.cached_handle(id) {
                Some(h) => h,
                None => {
                    let h = self
                        .with_session(true, "finding the key", |s| self.private_handle(s, id))?
                        .ok_or_else(|| Self::not_found(id))?;
                    if let Some(c) = self.lock_state().conn.as_mut() {
                        c.handles.insert(*id, h);
                    }
                    h
                }
            };
            let lease = self.lease(true)?;
            match lease
                .session
                .sign(&Mechanism::Ecdsa, handle, digest.as_bytes())
            {
                Ok(raw) => {
                    self.release(lease);
                    return EcdsaSignature::from_raw(&raw);
                }
                Err(CkError::Pkcs11(
                    RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid,
                    _,
                )) if attempt == 0 => {
                    self.release(lease);
                    self.forget_handle(id);
                }
                Err(e) => return Err(self.settle(lease, "signing", e)),
            }
        }
        Err(Self::not_found(id))
    }

    fn unlock(&self, pin: SecretString, ttl: Duration) -> Result<(), AgentError> {
        let mut st = self.lock_state();
        // A new PIN replaces the old login, so a wrong one is caught now and not at signing time.
        if let Some(conn) = st.conn.as_mut() {
            if conn.logged_in.is_some() {
                let _ = conn.anchor.logout();
                conn.logged_in = None;
            }
        }
        self.login(&mut st, &pin, PinOrigin::Client)?;
        if let Some(conn) = st.conn.as_mut() {
            conn.logged_in = Some(PinOrigin::Cache);
        }
        st.pin.accepted();
        st.pin.cache(pin, ttl);
        Ok(())
    }

    fn lock(&self) {
        let mut st = self.lock_state();
        st.pin.forget();
        if let Some(conn) = st.conn.as_mut() {
            if conn.logged_in.is_some() {
                let _ = conn.anchor.logout();
                conn.logged_in = None;
            }
            conn.handles.clear();
        }
    }

    fn needs_pin(&self) -> bool {
        !Self::unlocked(&mut self.lock_state())
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
            detail: format!(
                "{operation} failed ({e}); check the token is present, the agent reconnects by itself"
            ),
        },
        CkError::Pkcs11(RvError::UserNotLoggedIn, _) => AgentError::Locked {
            device: device.to_owned(),
            name: token.to_owned(),
        },
        other => AgentError::Device {
            device: device.to_owned(),
            operation: operation.to_owned(),
            detail: other.to_string(),
        },
    }
}

/// Unwraps `CKA_EC_POINT` (a DER OCTET STRING around the SEC1 point; some tokens return the
/// bare point) into a P-256 SubjectPublicKeyInfo.
fn spki_from_ec_point(raw: &[u8]) -> Option<Vec<u8>> {
    let point = match OctetString::from_der(raw) {
        Ok(os) => os.as_bytes().to_vec(),
        Err(_) => raw.to_vec(),
    };
    let key = p256::PublicKey::from_sec1_bytes(&point).ok()?;
    key.to_public_key_der().ok().map(|d| d.as_bytes().to_vec())
}

fn rand_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random generator failed");
    b
}

/// CKA_SUBJECT, CKA_ISSUER and CKA_SERIAL_NUMBER (each DER) of a DER certificate.
fn certificate_names(der: &[u8]) -> Result<[Attribute; 3], String> {
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| format!("not an X.509 certificate in DER: {e}"))?;
    let tbs = cert.tbs_certificate();
    let encode = |e: p256::pkcs8::der::Error| format!("its names do not encode: {e}");
    Ok([
        Attribute::Subject(tbs.subject().to_der().map_err(encode)?),
        Attribute::Issuer(tbs.issuer().to_der().map_err(encode)?),
        Attribute::SerialNumber(tbs.serial_number().to_der().map_err(encode)?),
    ])
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

    #[test]
    fn ec_point_is_unwrapped_from_der() {
        let point = hex::decode(concat!(
            "04",
            "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
            "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
        ))
        .unwrap();
        let wrapped = OctetString::new(point.clone()).unwrap().to_der().unwrap();
        assert_eq!(wrapped.len(), 67);
        let a = spki_from_ec_point(&wrapped).unwrap();
        let b = spki_from_ec_point(&point).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 91);
        assert!(spki_from_ec_point(&[0x04, 0x01, 0x02]).is_none());
    }
}
