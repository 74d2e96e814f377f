//! A PKCS#11 token as a [`Backend`], through `cryptoki`.
//!
//! Layout:
//! - this file: the [`Backend`] operations.
//! - [`token`]: loading the module, finding the token by label, what its errors mean.
//! - [`session`]: the login (through the [`crate::pin::PinGate`]) and the pool of
//!   signing sessions.
//! - [`objects`]: the key and certificate objects tufa writes and reads back.
//! - [`tags`]: the data objects that mark notary-server keys.
//!
//! Digests are computed on the host and signed with `CKM_ECDSA`, which every token has (SoftHSM
//! lacks `CKM_ECDSA_SHA256`).

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki::session::Session;
use zeroize::Zeroize as _;

use self::session::{Failure, Lease, Sessions};
use self::token::Token;
use super::{Backend, BackendKind, DeviceLocation, GenerateSpec, KeyInfo, Placement};
use crate::error::AgentError;
use crate::import::ImportedKey;
use crate::keys::{EcdsaSignature, KeyId, Sha256Digest};
use crate::pin::{Gated, Login, PinGate};
use crate::tag::ServerTag;

pub mod objects;
pub mod session;
pub mod tags;
pub mod token;

pub use token::{Pkcs11Config, TokenSelect};

/// One PKCS#11 token.
pub struct Pkcs11Backend {
    sessions: Sessions,
}

impl Pkcs11Backend {
    /// Loads the module and finds the token; fails with the module path and label if either is
    /// missing, so a misconfigured runner stops at start-up instead of at the first signature.
    pub fn open(config: Pkcs11Config) -> Result<Self, AgentError> {
        Ok(Self {
            sessions: Sessions::open(Token::load(config)?)?,
        })
    }

    fn token(&self) -> &Token {
        self.sessions.token()
    }

    fn not_found(id: &KeyId) -> AgentError {
        AgentError::KeyNotFound {
            key: id.to_string(),
        }
    }

    /// Refuses what the token's mechanisms say it cannot do, naming what is missing.
    fn require(
        &self,
        what: &str,
        can: Result<(), String>,
        instead: &str,
    ) -> Result<(), AgentError> {
        can.map_err(|why| {
            AgentError::Unsupported(format!(
                "{} cannot {what}: {why}; {instead}",
                self.token().describe()
            ))
        })
    }

    /// Reads a key just stored back from the token.
    fn info_of(&self, session: &Session, id: &KeyId) -> Result<KeyInfo, AgentError> {
        objects::list(session, &self.sessions.location())
            .map_err(|e| self.token().classify("reading the new key", e))?
            .into_iter()
            .map(|(_, k)| k)
            .find(|k| k.id == *id)
            .ok_or_else(|| AgentError::Internal(format!("key {id} vanished after it was stored")))
    }

    /// Generates on a leased session; nothing is left behind on failure.
    fn generate_on(&self, lease: Lease, spec: &GenerateSpec) -> Result<KeyInfo, Failure> {
        let mut templates = objects::key_pair_templates(&spec.name);
        let generated = loop {
            match lease.session.generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &templates.0,
                &templates.1,
            ) {
                Ok(pair) => break pair,
                // A token that rejects an optional attribute says so; try without it.
                Err(CkError::Pkcs11(RvError::AttributeTypeInvalid, _))
                    if objects::drop_optional(&mut templates) =>
                {
                    tracing::info!(token = %self.token().config.token, "token refused an optional key attribute; generating without it");
                }
                Err(e) => return Err(self.sessions.settle_loading(lease, "generating a key", e)),
            }
        };
        let (public, private) = generated;
        let session = &lease.session;
        let result = (|| {
            let spki = objects::public_spki(session, public)
                .map_err(|e| self.token().classify("reading the new public key", e))?
                .ok_or_else(|| {
                    AgentError::Internal(
                        "the token returned an EC point that does not parse".into(),
                    )
                })?;
            let id = KeyId::for_ecdsa_spki(&spki);
            objects::set_key_id(session, &[public, private], &id)
                .map_err(|e| self.token().classify("storing the key ID", e))?;
            self.info_of(session, &id)
        })();
        if result.is_err() {
            objects::destroy_all(session, &[public, private]);
        }
        self.sessions.release(lease);
        Ok(result?)
    }

    /// Imports on a leased session; nothing is left behind on failure.
    fn import_on(
        &self,
        lease: Lease,
        spec: &GenerateSpec,
        key: &ImportedKey,
    ) -> Result<KeyInfo, Failure> {
        let id = KeyId::for_ecdsa_spki(&key.public_spki());
        let public_object = objects::public_key_object(key, &spec.name, &id)
            .map_err(|e| AgentError::Internal(format!("encoding the EC point: {e}")))?;
        let mut private_object = objects::private_key_object(key, &spec.name, &id);
        let private = lease.session.create_object(&private_object);
        // The scalar's copy in the template is zeroized whatever happened.
        for a in private_object.iter_mut() {
            if let Attribute::Value(v) = a {
                v.zeroize();
            }
        }
        let private = match private {
            Ok(h) => h,
            // The token's answer to the private key's template: it does not take EC keys.
            Err(CkError::Pkcs11(
                rv @ (RvError::AttributeValueInvalid
                | RvError::AttributeTypeInvalid
                | RvError::TemplateInconsistent
                | RvError::TemplateIncomplete
                | RvError::FunctionNotSupported
                | RvError::KeyTypeInconsistent),
                _,
            )) => {
                self.sessions.release(lease);
                return Err(Failure::Other(AgentError::Unsupported(format!(
                    "{} does not accept an EC private key through C_CreateObject ({rv}), so a key cannot be imported onto it; generate the key on it instead (`tufa key generate NAME`), or import it onto a token that takes keys (SoftHSM, a YubiKey)",
                    self.token().describe()
                ))));
            }
            Err(e) => {
                return Err(self
                    .sessions
                    .settle_loading(lease, "storing the private key", e))
            }
        };
        let session = &lease.session;
        let result = session
            .create_object(&public_object)
            .map_err(|e| self.token().classify("storing the public key", e))
            .and_then(|public| {
                self.info_of(session, &id).inspect_err(|_| {
                    objects::destroy_all(session, &[public]);
                })
            });
        if result.is_err() {
            objects::destroy_all(session, &[private]);
        }
        self.sessions.release(lease);
        Ok(result?)
    }

    /// One signature: the key's handle (cached for this connection, else found) and the
    /// signature on a session of the same connection.
    fn sign_once(&self, id: &KeyId, digest: &Sha256Digest) -> Result<EcdsaSignature, Failure> {
        // One retry covers a stale cached handle (key deleted and re-made by another tool).
        for attempt in 0..2 {
            let lease = self.sessions.lease(true)?;
            let handle = match self.sessions.cached_handle(id) {
                Some((h, generation)) if generation == lease.generation() => h,
                _ => {
                    let location = self.sessions.location();
                    let found = match objects::private_handle(&lease.session, id, &location) {
                        Ok(h) => h,
                        Err(e) => {
                            return Err(self.sessions.settle(lease, "finding the key", e).into())
                        }
                    };
                    let Some(h) = found else {
                        self.sessions.release(lease);
                        self.sessions.check_serial()?;
                        // A key the keyring knew that vanished may mean another token took
                        // this one's place without the module saying so.
                        return Err(Failure::Stale(Self::not_found(id)));
                    };
                    self.sessions.remember_handle(id, h, lease.generation());
                    h
                }
            };
            match lease
                .session
                .sign(&Mechanism::Ecdsa, handle, digest.as_bytes())
            {
                Ok(raw) => {
                    self.sessions.release(lease);
                    return Ok(EcdsaSignature::from_raw(&raw).map_err(AgentError::from)?);
                }
                Err(CkError::Pkcs11(
                    RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid,
                    _,
                )) if attempt == 0 => {
                    self.sessions.release(lease);
                    self.sessions.forget_handle(id);
                }
                Err(e) => return Err(self.sessions.settle_loading(lease, "signing", e)),
            }
        }
        Err(Self::not_found(id).into())
    }

    /// PKCS#11 has no per-key placement: only the token's defaults.
    fn refuse_placement(&self, spec: &GenerateSpec) -> Result<(), AgentError> {
        match spec.placement {
            Placement::Default => Ok(()),
            Placement::YubiKey { .. } => Err(AgentError::Unsupported(format!(
                "{} cannot take a PIV slot, PIN or touch policy: use a YubiKey for that",
                self.token().describe()
            ))),
        }
    }
}

impl Gated for Pkcs11Backend {
    fn gated<R>(&self, f: impl FnOnce(&mut PinGate, &mut dyn Login) -> R) -> R {
        self.sessions.gated(f)
    }
}

impl Backend for Pkcs11Backend {
    fn kind(&self) -> BackendKind {
        BackendKind::Pkcs11
    }

    fn name(&self) -> &str {
        &self.token().config.token
    }

    fn location(&self) -> DeviceLocation {
        DeviceLocation::Pkcs11(self.sessions.location())
    }

    fn keys(&self) -> Result<Vec<KeyInfo>, AgentError> {
        self.sessions.run(|| {
            self.sessions.check_serial()?;
            let location = self.sessions.location();
            // Public objects need no login, so a locked token still shows its keys.
            Ok(self.sessions.with_session(false, "listing keys", |s| {
                Ok(objects::list(s, &location)?
                    .into_iter()
                    .map(|(_, k)| k)
                    .collect())
            })?)
        })
    }

    fn generate(&self, spec: &GenerateSpec) -> Result<KeyInfo, AgentError> {
        self.refuse_placement(spec)?;
        let caps = self.sessions.capabilities()?;
        self.require(
            "generate ECDSA P-256 keys",
            caps.generate,
            "import a key onto it instead (`tufa key load`), or use another token",
        )?;
        self.sessions.run(|| {
            // New keys go only to the token the agent knows.
            self.sessions.check_serial()?;
            let lease = self.sessions.lease(true)?;
            self.generate_on(lease, spec)
        })
    }

    fn import(&self, spec: &GenerateSpec, key: &ImportedKey) -> Result<KeyInfo, AgentError> {
        self.refuse_placement(spec)?;
        self.sessions.run(|| {
            self.sessions.check_serial()?;
            let lease = self.sessions.lease(true)?;
            self.import_on(lease, spec, key)
        })
    }

    fn delete(&self, id: &KeyId) -> Result<(), AgentError> {
        let found = self.sessions.run(|| {
            let location = self.sessions.location();
            Ok(self.sessions.with_session(true, "deleting a key", |s| {
                let Some(cka_id) = objects::cka_id(s, id, &location)? else {
                    return Ok(false);
                };
                for h in s.find_objects(&[Attribute::Id(cka_id)])? {
                    s.destroy_object(h)?;
                }
                tags::remove(s, id)?;
                Ok(true)
            })?)
        })?;
        self.sessions.forget_handle(id);
        if found {
            Ok(())
        } else {
            Err(Self::not_found(id))
        }
    }

    fn set_certificate(&self, id: &KeyId, der: &[u8]) -> Result<(), AgentError> {
        let names = objects::certificate_names(der).map_err(|reason| AgentError::Certificate {
            key_id: *id,
            reason,
        })?;
        let found = self.sessions.run(|| {
            let location = self.sessions.location();
            let names = names.clone();
            Ok(self
                .sessions
                .with_session(true, "storing a certificate", |s| {
                    let Some(cka_id) = objects::cka_id(s, id, &location)? else {
                        return Ok(false);
                    };
                    let label = objects::label(s, &cka_id)?;
                    let old = objects::certificates(s, &cka_id)?;
                    // The new certificate is stored before the old one goes: a failure loses
                    // nothing.
                    s.create_object(&objects::certificate_object(der, names, cka_id, label))?;
                    for h in old {
                        s.destroy_object(h)?;
                    }
                    Ok(true)
                })?)
        })?;
        if found {
            Ok(())
        } else {
            Err(Self::not_found(id))
        }
    }

    fn sign(&self, id: &KeyId, digest: &Sha256Digest) -> Result<EcdsaSignature, AgentError> {
        let caps = self.sessions.capabilities()?;
        self.require(
            "sign with raw ECDSA",
            caps.sign,
            "tufa signs host-computed SHA-256 digests with CKM_ECDSA",
        )?;
        self.sessions.run(|| self.sign_once(id, digest))
    }

    fn server_tags(&self) -> Result<Vec<ServerTag>, AgentError> {
        // Through `run`, as every device call: a token that restarted is re-initialized.
        self.sessions
            .run(|| {
                Ok(self
                    .sessions
                    .with_session(false, "reading server-key tags", |s| tags::find(s, None))?)
            })
            .map(|found| found.into_iter().map(|(_, t)| t).collect())
    }

    fn server_tag(&self, id: &KeyId) -> Result<Option<ServerTag>, AgentError> {
        self.sessions
            .run(|| {
                Ok(self
                    .sessions
                    .with_session(false, "reading a server-key tag", |s| {
                        tags::find(s, Some(id))
                    })?)
            })
            .map(|found| found.into_iter().map(|(_, t)| t).reduce(newest))
    }

    fn set_server_tag(&self, tag: &ServerTag) -> Result<(), AgentError> {
        self.sessions.run(|| {
            Ok(self
                .sessions
                .with_session(true, "storing a server-key tag", |s| tags::store(s, tag))?)
        })
    }
}

/// Of two tags left for one key (a store that could not remove the old one), the used one.
fn newest(a: ServerTag, b: ServerTag) -> ServerTag {
    if b.used {
        b
    } else {
        a
    }
}
