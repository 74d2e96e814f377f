//! The gRPC handlers: each parses its request, runs the keyring operation on a blocking worker,
//! writes its audit line and answers.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tonic::{Request, Response, Status};
use tufa_proto::v1;
use tufa_proto::v1::agent_server::Agent as AgentApi;

use super::convert::{device_to_proto, digest_from_proto};
use super::socket::peer;
use crate::audit::{AuditLog, Operation, Peer, Record};
use crate::backend::KeyInfo;
use crate::error::AgentError;
use crate::import::ImportedKey;
use crate::keyring::{Found, Keyring, NewKey};
use crate::keys::{KeyName, KeyRef};

/// The agent's service: devices, audit log and settings shared by every call.
pub struct Agent {
    keyring: Arc<Keyring>,
    audit: AuditLog,
    pin_ttl: Duration,
    // Key management is rare; doing it one at a time keeps name checks race-free.
    manage: tokio::sync::Mutex<()>,
}

impl Agent {
    /// The service over an opened keyring.
    pub fn new(keyring: Keyring, audit: AuditLog, pin_ttl: Duration) -> Self {
        Self {
            keyring: Arc::new(keyring),
            audit,
            pin_ttl,
            manage: tokio::sync::Mutex::new(()),
        }
    }

    /// Runs blocking device work off the executor.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Keyring) -> Result<T, AgentError> + Send + 'static,
    ) -> Result<T, AgentError> {
        let keyring = Arc::clone(&self.keyring);
        tokio::task::spawn_blocking(move || f(&keyring))
            .await
            .map_err(|e| AgentError::Internal(format!("a device worker failed: {e}")))?
    }

    /// Writes the audit line of a generate or import (with the name asked for, whether or not
    /// the key was made) and answers with the new key.
    fn new_key_reply(
        &self,
        op: Operation,
        peer: Peer,
        name: &KeyName,
        result: Result<KeyInfo, AgentError>,
    ) -> Result<Response<v1::Key>, Status> {
        self.audit.write(
            &Record::for_key(op, peer, result.as_ref().ok())
                .named(name)
                .result(&result),
        );
        Ok(Response::new(result?.into()))
    }
}

#[tonic::async_trait]
impl AgentApi for Agent {
    async fn status(
        &self,
        _req: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::StatusReply>, Status> {
        let devices = self.blocking(|k| Ok(k.status())).await?;
        Ok(Response::new(v1::StatusReply {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            devices: devices
                .into_iter()
                .map(|(device, status)| device_to_proto(&device, status))
                .collect(),
            pin_cache_ttl_seconds: self.pin_ttl.as_secs(),
        }))
    }

    async fn list_keys(
        &self,
        _req: Request<v1::ListKeysRequest>,
    ) -> Result<Response<v1::ListKeysReply>, Status> {
        let mut keys = self.blocking(|k| Ok(k.refresh())).await?;
        keys.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()).then(a.id.cmp(&b.id)));
        Ok(Response::new(v1::ListKeysReply {
            keys: keys.into_iter().map(v1::Key::from).collect(),
        }))
    }

    async fn get_key(&self, req: Request<v1::GetKeyRequest>) -> Result<Response<v1::Key>, Status> {
        let key: KeyRef = req.into_inner().key.parse().map_err(AgentError::from)?;
        let found = self.blocking(move |k| k.resolve(&key)).await?;
        Ok(Response::new(found.key.into()))
    }

    async fn generate_key(
        &self,
        req: Request<v1::GenerateKeyRequest>,
    ) -> Result<Response<v1::Key>, Status> {
        let peer = peer(&req);
        let _guard = self.manage.lock().await;
        let new = NewKey::try_from(req.get_ref())?;
        let name = new.spec.name.clone();
        let result = self.blocking(move |k| k.generate(&new)).await;
        self.new_key_reply(Operation::Generate, peer, &name, result)
    }

    async fn import_key(
        &self,
        req: Request<v1::ImportKeyRequest>,
    ) -> Result<Response<v1::Key>, Status> {
        let peer = peer(&req);
        let mut r = req.into_inner();
        // Copied at its exact length (a String's spare capacity would be reallocated, and the
        // old buffer freed unzeroized); the request zeroizes its own copy when it drops.
        let passphrase = Some(r.passphrase.as_str())
            .filter(|p| !p.is_empty())
            .map(SecretString::from);
        let pem = zeroize::Zeroizing::new(std::mem::take(&mut r.pem));
        let _guard = self.manage.lock().await;
        let new = NewKey::try_from(&r)?;
        let name = new.spec.name.clone();
        let result = self
            .blocking(move |k| {
                let key = ImportedKey::from_pem(&pem, passphrase.as_ref())?;
                k.import(&new, &key)
            })
            .await;
        self.new_key_reply(Operation::Import, peer, &name, result)
    }

    async fn delete_key(
        &self,
        req: Request<v1::DeleteKeyRequest>,
    ) -> Result<Response<v1::DeleteKeyReply>, Status> {
        let peer = peer(&req);
        let key: KeyRef = req.into_inner().key.parse().map_err(AgentError::from)?;
        let _guard = self.manage.lock().await;
        let result = self.blocking(move |k| k.delete(&key)).await;
        self.audit
            .write(&Record::for_key(Operation::Delete, peer, result.as_ref().ok()).result(&result));
        Ok(Response::new(v1::DeleteKeyReply {
            key_id: result?.id.to_string(),
        }))
    }

    async fn set_certificate(
        &self,
        req: Request<v1::SetCertificateRequest>,
    ) -> Result<Response<v1::Key>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        let key: KeyRef = r.key.parse().map_err(AgentError::from)?;
        let der = r.certificate_der;
        let _guard = self.manage.lock().await;
        let result = self.blocking(move |k| k.set_certificate(&key, &der)).await;
        self.audit.write(
            &Record::for_key(Operation::SetCertificate, peer, result.as_ref().ok()).result(&result),
        );
        Ok(Response::new(result?.into()))
    }

    async fn sign(&self, req: Request<v1::SignRequest>) -> Result<Response<v1::SignReply>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        let key: KeyRef = r.key.parse().map_err(AgentError::from)?;
        let digest = digest_from_proto(r.payload)?;
        let context = r.context.unwrap_or_default();
        let result = self.blocking(move |k| k.sign(&key, &digest)).await;
        let rec = Record::for_key(Operation::Sign, peer, result.as_ref().ok().map(|(i, _)| i))
            .signing(&context.gun, &context.role, &digest)
            .result(&result);
        tracing::debug!(key_id = ?rec.key_id, gun = ?rec.gun, role = ?rec.role, result = %rec.result, "sign");
        self.audit.write(&rec);
        let (info, sig) = result?;
        Ok(Response::new(v1::SignReply {
            signature: sig.as_bytes().to_vec(),
            method: tufa_proto::SIGNATURE_METHOD_ECDSA.to_owned(),
            key_id: info.id.to_string(),
        }))
    }

    async fn unlock(
        &self,
        req: Request<v1::UnlockRequest>,
    ) -> Result<Response<v1::UnlockReply>, Status> {
        let peer = peer(&req);
        let mut r = req.into_inner();
        // As the passphrase above: an exact copy; the request zeroizes its own.
        let pin = SecretString::from(r.pin.as_str());
        let device = Some(std::mem::take(&mut r.device)).filter(|d| !d.is_empty());
        let ttl = self.pin_ttl;
        let result = self
            .blocking(move |k| k.unlock(device.as_deref(), pin, ttl))
            .await;
        self.audit.write(
            &Record::new(Operation::Unlock, peer)
                .device(result.as_deref().ok())
                .result(&result),
        );
        Ok(Response::new(v1::UnlockReply {
            device: result?,
            ttl_seconds: ttl.as_secs(),
        }))
    }

    async fn lock(&self, req: Request<v1::LockRequest>) -> Result<Response<v1::LockReply>, Status> {
        let peer = peer(&req);
        let result = self.blocking(|k| Ok(k.lock())).await;
        self.audit
            .write(&Record::new(Operation::Lock, peer).result(&result));
        Ok(Response::new(v1::LockReply { devices: result? }))
    }

    async fn attest(
        &self,
        req: Request<v1::AttestRequest>,
    ) -> Result<Response<v1::AttestReply>, Status> {
        let peer = peer(&req);
        let key: KeyRef = req.into_inner().key.parse().map_err(AgentError::from)?;
        let result = self
            .blocking(move |k| match k.attest(&key)? {
                (found, Some(att)) => Ok((found.key, att)),
                (Found { device, .. }, None) => Err(AgentError::Unsupported(format!(
                    "{} devices cannot attest keys: only YubiKeys can",
                    device.kind()
                ))),
            })
            .await;
        self.audit.write(
            &Record::for_key(
                Operation::Attest,
                peer,
                result.as_ref().ok().map(|(i, _)| i),
            )
            .result(&result),
        );
        let (info, att) = result?;
        Ok(Response::new(v1::AttestReply {
            key_id: info.id.to_string(),
            certificate_der: att.certificate,
            intermediate_der: att.intermediate,
        }))
    }
}
