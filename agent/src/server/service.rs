//! The gRPC handlers: each parses its request, then runs the keyring operation and writes its
//! audit line on a blocking worker, within the caller's share of device work, and answers.
//!
//! The audit log fails closed: a signature or attestation whose line cannot be written is not
//! returned, a new key whose line cannot be written is deleted again, and a deletion or
//! certificate (which cannot be undone) is done only once a `started` line is on disk. A failed
//! operation still answers with its own error; its lost line is reported on stderr.
//!
//! Every call is checked against the [`Policy`] first (the `[[client]]` rules): a refused call
//! touches no device, answers `PermissionDenied` naming the uid, the operation and the key,
//! and gets an audit line whose result says why.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status};
use tufa_proto::v1;
use tufa_proto::v1::agent_server::Agent as AgentApi;

use super::convert::{
    device_to_proto, digest_from_proto, key_ref_from_proto, key_to_proto, not_too_long,
};
use super::socket::peer;
use crate::audit::{AuditError, AuditLog, Operation, Peer, Record};
use crate::backend::KeyInfo;
use crate::error::AgentError;
use crate::import::ImportedKey;
use crate::keyring::{Found, Keyring, NewKey};
use crate::keys::{KeyName, KeyRef};
use crate::policy::{Context, Op, Policy};
use crate::tag::ServerTag;

/// Device operations of all callers together that may run at once (each caller also has its
/// `device_calls_per_uid`): well under tokio's 512 blocking threads.
pub const DEVICE_CALLS: usize = 64;

/// The agent's service: devices, audit log and settings shared by every call.
pub struct Agent {
    keyring: Arc<Keyring>,
    audit: AuditLog,
    pin_ttl: Duration,
    // Key management is rare; doing it one at a time keeps name checks race-free.
    manage: tokio::sync::Mutex<()>,
    work: DeviceWork,
    policy: Arc<Policy>,
}

/// Who may run device work now: every caller (uid) gets its own share, so one that floods
/// waits behind itself, and all together stay under [`DEVICE_CALLS`].
struct DeviceWork {
    per_uid: usize,
    uids: Mutex<HashMap<Option<u32>, Arc<Semaphore>>>,
    all: Arc<Semaphore>,
}

impl DeviceWork {
    fn new(per_uid: usize) -> Self {
        Self {
            per_uid,
            uids: Mutex::new(HashMap::new()),
            all: Arc::new(Semaphore::new(DEVICE_CALLS)),
        }
    }

    /// Waits for the caller's turn (its own share first, so it never holds a shared permit
    /// while queueing behind itself).
    async fn turn(&self, peer: Peer) -> (OwnedSemaphorePermit, OwnedSemaphorePermit) {
        let mine = {
            let mut uids = self.uids.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(
                uids.entry(peer.uid)
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_uid))),
            )
        };
        // The semaphores are never closed.
        let mine = mine.acquire_owned().await.expect("open semaphore");
        let all = Arc::clone(&self.all)
            .acquire_owned()
            .await
            .expect("open semaphore");
        (mine, all)
    }
}

impl Agent {
    /// The service over an opened keyring; `device_calls_per_uid` is each caller's share of
    /// device work, `policy` who may do what.
    pub fn new(
        keyring: Keyring,
        audit: AuditLog,
        pin_ttl: Duration,
        device_calls_per_uid: usize,
        policy: Policy,
    ) -> Self {
        Self {
            keyring: Arc::new(keyring),
            audit,
            pin_ttl,
            manage: tokio::sync::Mutex::new(()),
            work: DeviceWork::new(device_calls_per_uid),
            policy: Arc::new(policy),
        }
    }

    /// Checks an operation on no key (status, list, unlock, lock); a refusal gets its line.
    async fn allowed(&self, peer: Peer, op: Operation) -> Result<(), Status> {
        let Err(e) = self.policy.check(peer, rule_op(op)) else {
            return Ok(());
        };
        Err(self
            .blocking(peer, move |_, audit| {
                Ok(refuse(audit, Record::new(op, peer), e))
            })
            .await
            .unwrap_or_else(|s| s))
    }

    /// Checks a key name a caller asks for (generate, import, adopt); a refusal gets its line.
    async fn may_name(&self, peer: Peer, op: Operation, name: &KeyName) -> Result<(), Status> {
        let Err(e) = self.policy.check_new(peer, rule_op(op), name) else {
            return Ok(());
        };
        let name = name.clone();
        Err(self
            .blocking(peer, move |_, audit| {
                Ok(refuse(
                    audit,
                    Record::for_key(op, peer, None).named(&name),
                    e,
                ))
            })
            .await
            .unwrap_or_else(|s| s))
    }

    /// The keyring (the notary-signer listener shares it).
    pub fn keyring(&self) -> Arc<Keyring> {
        Arc::clone(&self.keyring)
    }

    /// The audit log (for the SIGHUP reopen).
    pub fn audit_log(&self) -> AuditLog {
        self.audit.clone()
    }

    /// Runs blocking device work (and its audit lines) off the executor, in the caller's turn.
    async fn blocking<T: Send + 'static>(
        &self,
        peer: Peer,
        f: impl FnOnce(&Keyring, &AuditLog) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let turn = self.work.turn(peer).await;
        let keyring = Arc::clone(&self.keyring);
        let audit = self.audit.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            f(&keyring, &audit)
        })
        .await
        .map_err(|e| AgentError::Internal(format!("a device worker failed: {e}")))?
    }

    /// Runs a generate or import; writes its line (with the name asked for, whether or not the
    /// key was made) and answers with the new key, or deletes the key again if the line
    /// cannot be written.
    async fn new_key(
        &self,
        op: Operation,
        peer: Peer,
        new: NewKey,
        make: impl FnOnce(&Keyring, &NewKey) -> Result<KeyInfo, AgentError> + Send + 'static,
    ) -> Result<Response<v1::Key>, Status> {
        self.may_name(peer, op, &new.spec.name).await?;
        let _guard = self.manage.lock().await;
        self.blocking(peer, move |k, audit| {
            let result = make(k, &new);
            let rec = Record::for_key(op, peer, result.as_ref().ok())
                .named(&new.spec.name)
                .result(&result);
            let written = audit.write(&rec);
            match (result, written) {
                (Ok(info), Ok(())) => Ok(Response::new(info.into())),
                (Ok(info), Err(e)) => Err(undo_new_key(k, &info, &new.spec.name, &e)),
                (Err(e), written) => Err(lost_line(written, e)),
            }
        })
        .await
    }

    /// Runs an operation on a key that cannot be undone (`done` says what it does, "deleted"):
    /// a `started` line first, the operation only once that line is on disk, then a line with
    /// its result.
    async fn irreversible<T: Send + 'static>(
        &self,
        op: Operation,
        peer: Peer,
        key: KeyRef,
        done: &'static str,
        run: impl FnOnce(&Keyring, &KeyInfo) -> Result<T, AgentError> + Send + 'static,
    ) -> Result<T, Status> {
        let _guard = self.manage.lock().await;
        let policy = Arc::clone(&self.policy);
        self.blocking(peer, move |k, audit| {
            let found = k.resolve(&key);
            let info = found.as_ref().map(|f| &f.key).ok();
            let Some(target) = info else {
                let rec = Record::for_key(op, peer, None).result(&found);
                return Err(lost_line(audit.write(&rec), found.err().expect("an error")));
            };
            // An adopted key is checked by the name it is given (adopt_key), not by what another
            // tool called it.
            let checked = match op {
                Operation::Adopt => Ok(()),
                _ => policy.check_key(peer, rule_op(op), target, None),
            };
            if let Err(e) = checked {
                return Err(refuse(audit, Record::for_key(op, peer, info), e));
            }
            audit
                .write(&Record::for_key(op, peer, info).started())
                .map_err(|e| e.refuse(&format!("key {} was not {done}", target.id)))?;
            let result = run(k, target);
            let rec = Record::for_key(op, peer, info).result(&result);
            match (result, audit.write(&rec)) {
                (Ok(value), Ok(())) => Ok(value),
                (Ok(_), Err(e)) => Err(e.refuse(&format!(
                    "key {} was {done}, but the line saying so was not written",
                    target.id
                ))),
                (Err(e), written) => Err(lost_line(written, e)),
            }
        })
        .await
    }
}

/// The `yubikey:SERIAL/SLOT` of a key in a YubiKey slot.
fn target_slot(key: &KeyInfo) -> Result<KeyRef, AgentError> {
    match &key.location {
        crate::backend::Location::YubiKey { serial, slot } => Ok(KeyRef::Slot {
            serial: *serial,
            slot: slot.byte(),
        }),
        _ => Err(AgentError::InvalidArgument(format!(
            "key {} is not in a YubiKey slot: adopt takes yubikey:SERIAL/SLOT; keys of other tools on a PKCS#11 token sign as they are",
            key.id
        ))),
    }
}

/// Deletes a key whose audit line could not be written, and says so.
fn undo_new_key(k: &Keyring, info: &KeyInfo, name: &KeyName, e: &AuditError) -> Status {
    match k.delete(&KeyRef::Id(info.id)) {
        Ok(_) => e.refuse(&format!("the new key '{name}' was deleted again")),
        Err(d) => e.refuse(&format!(
            "the new key '{name}' ({}) could not be deleted again ({d}): delete it with `tufa key delete {}`",
            info.id, info.id
        )),
    }
}

/// The policy's word for an audited operation.
fn rule_op(op: Operation) -> Op {
    match op {
        Operation::Generate => Op::Generate,
        Operation::Import => Op::Import,
        Operation::Delete => Op::Delete,
        Operation::SetCertificate => Op::Certificate,
        Operation::Sign => Op::Sign,
        Operation::Unlock => Op::Unlock,
        Operation::Lock => Op::Lock,
        Operation::Attest => Op::Attest,
        Operation::Status => Op::Status,
        Operation::List => Op::List,
        Operation::Adopt => Op::Adopt,
    }
}

/// Writes a refused call's line (its result says why) and answers with the refusal. Nothing
/// was done, so the refusal goes out even when its line cannot be written (that goes to
/// stderr).
fn refuse(audit: &AuditLog, rec: Record<'_>, e: AgentError) -> Status {
    let rec = rec.error(&e);
    tracing::info!(op = ?rec.op, uid = ?rec.peer_uid, key_id = ?rec.key_id, "refused by the [[client]] rules");
    if let Err(w) = audit.write(&rec) {
        tracing::error!(error = %w, "the audit line of a refused call was not written");
    }
    e.into()
}

/// The notary-server key tags of every device (a device that cannot be read is logged).
fn server_tags(k: &Keyring) -> Vec<ServerTag> {
    let mut all = Vec::new();
    for b in k.backends() {
        match b.server_tags() {
            Ok(tags) => all.extend(tags),
            Err(e) => tracing::warn!(device = b.name(), error = %e, "cannot read server-key tags"),
        }
    }
    all
}

/// A notary-server key signs only through the notary-signer listener: a signature over the
/// socket could forge the timestamps and snapshots the server vouches for.
fn refuse_server_key(k: &Keyring, key: &KeyRef) -> Result<(), AgentError> {
    let found = k.resolve(key)?;
    match found.device.server_tag(&found.key.id)? {
        None => Ok(()),
        Some(tag) => Err(AgentError::ServerKey {
            key_id: found.key.id,
            role: tag.role.to_string(),
            gun: tag.gun,
        }),
    }
}

/// A failed operation answers with its own error; a line lost besides is reported here.
fn lost_line(written: Result<(), AuditError>, e: AgentError) -> Status {
    if let Err(w) = written {
        tracing::error!(error = %w, "the audit line of a failed call was not written");
    }
    e.into()
}

#[tonic::async_trait]
impl AgentApi for Agent {
    async fn status(
        &self,
        req: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::StatusReply>, Status> {
        let peer = peer(&req);
        self.allowed(peer, Operation::Status).await?;
        let devices = self.blocking(peer, |k, _| Ok(k.status())).await?;
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
        req: Request<v1::ListKeysRequest>,
    ) -> Result<Response<v1::ListKeysReply>, Status> {
        let peer = peer(&req);
        self.allowed(peer, Operation::List).await?;
        let (mut keys, tags) = self
            .blocking(peer, |k, _| Ok((k.refresh(), server_tags(k))))
            .await?;
        // Keys the caller may not use are not shown to it.
        keys.retain(|k| self.policy.sees(peer, k));
        keys.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()).then(a.id.cmp(&b.id)));
        Ok(Response::new(v1::ListKeysReply {
            keys: keys
                .into_iter()
                .map(|k| {
                    let tag = tags.iter().find(|t| t.key_id == k.id);
                    key_to_proto(k, tag)
                })
                .collect(),
        }))
    }

    async fn get_key(&self, req: Request<v1::GetKeyRequest>) -> Result<Response<v1::Key>, Status> {
        let peer = peer(&req);
        self.allowed(peer, Operation::List).await?;
        let key = key_ref_from_proto(&req.into_inner().key)?;
        let policy = Arc::clone(&self.policy);
        let (found, tag) = self
            .blocking(peer, move |k, audit| match k.resolve(&key) {
                Ok(f) if policy.sees(peer, &f.key) => {
                    let tag = f.device.server_tag(&f.key.id).map_err(Status::from)?;
                    Ok((f, tag))
                }
                // The same words as for a key that does not exist, and a line.
                Ok(f) => {
                    let rec = Record::for_key(Operation::List, peer, Some(&f.key));
                    Err(refuse(audit, rec, policy.not_visible(peer, &key)))
                }
                Err(AgentError::KeyNotFound { .. }) if !policy.is_owner(peer) => {
                    Err(policy.not_visible(peer, &key).into())
                }
                Err(e) => Err(e.into()),
            })
            .await?;
        Ok(Response::new(key_to_proto(found.key, tag.as_ref())))
    }

    async fn generate_key(
        &self,
        req: Request<v1::GenerateKeyRequest>,
    ) -> Result<Response<v1::Key>, Status> {
        let peer = peer(&req);
        let new = NewKey::try_from(req.get_ref())?;
        self.new_key(Operation::Generate, peer, new, |k, new| k.generate(new))
            .await
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
        let new = NewKey::try_from(&r)?;
        drop(r);
        self.new_key(Operation::Import, peer, new, move |k, new| {
            let key = ImportedKey::from_pem(&pem, passphrase.as_ref())?;
            k.import(new, &key)
        })
        .await
    }

    async fn delete_key(
        &self,
        req: Request<v1::DeleteKeyRequest>,
    ) -> Result<Response<v1::DeleteKeyReply>, Status> {
        let peer = peer(&req);
        let key = key_ref_from_proto(&req.into_inner().key)?;
        let gone = self
            .irreversible(Operation::Delete, peer, key, "deleted", |k, target| {
                k.delete(&KeyRef::Id(target.id))
            })
            .await?;
        Ok(Response::new(v1::DeleteKeyReply {
            key_id: gone.id.to_string(),
        }))
    }

    async fn adopt_key(
        &self,
        req: Request<v1::AdoptKeyRequest>,
    ) -> Result<Response<v1::Key>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        let key = key_ref_from_proto(&r.key)?;
        super::convert::not_too_long("key name", &r.name)?;
        let name: KeyName = r.name.parse().map_err(AgentError::from)?;
        self.may_name(peer, Operation::Adopt, &name).await?;
        let adopted = self
            .irreversible(Operation::Adopt, peer, key, "adopted", move |k, target| {
                k.adopt(&target_slot(target)?, &name)
            })
            .await?;
        Ok(Response::new(adopted.into()))
    }

    async fn set_certificate(
        &self,
        req: Request<v1::SetCertificateRequest>,
    ) -> Result<Response<v1::Key>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        let key = key_ref_from_proto(&r.key)?;
        let der = r.certificate_der;
        let op = Operation::SetCertificate;
        let now = self
            .irreversible(op, peer, key, "given the certificate", move |k, target| {
                k.set_certificate(&KeyRef::Id(target.id), &der)
            })
            .await?;
        Ok(Response::new(now.into()))
    }

    async fn sign(&self, req: Request<v1::SignRequest>) -> Result<Response<v1::SignReply>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        let key = key_ref_from_proto(&r.key)?;
        let digest = digest_from_proto(r.payload)?;
        let context = r.context.unwrap_or_default();
        let policy = Arc::clone(&self.policy);
        self.blocking(peer, move |k, audit| {
            let asked = Context {
                gun: &context.gun,
                role: &context.role,
            };
            let found = match k.resolve(&key) {
                Ok(f) => f.key,
                Err(e) => {
                    let rec = Record::for_key(Operation::Sign, peer, None)
                        .signing(&context.gun, &context.role, &digest)
                        .error(&e);
                    return Err(lost_line(audit.write(&rec), e));
                }
            };
            let rec = Record::for_key(Operation::Sign, peer, Some(&found)).signing(
                &context.gun,
                &context.role,
                &digest,
            );
            if let Err(e) = policy.check_key(peer, Op::Sign, &found, Some(asked)) {
                return Err(refuse(audit, rec, e));
            }
            let by_id = KeyRef::Id(found.id);
            let result = refuse_server_key(k, &by_id).and_then(|()| k.sign(&by_id, &digest));
            let rec = rec.result(&result);
            tracing::debug!(key_id = ?rec.key_id, gun = ?rec.gun, role = ?rec.role, result = %rec.result, "sign");
            // The signature leaves the agent only once its line is on disk.
            let written = audit.write(&rec);
            match (result, written) {
                (Ok((info, sig)), Ok(())) => Ok(Response::new(v1::SignReply {
                    signature: sig.as_bytes().to_vec(),
                    method: tufa_proto::SIGNATURE_METHOD_ECDSA.to_owned(),
                    key_id: info.id.to_string(),
                })),
                (Ok(_), Err(e)) => Err(e.refuse("no signature was returned")),
                (Err(e), written) => Err(lost_line(written, e)),
            }
        })
        .await
    }

    async fn unlock(
        &self,
        req: Request<v1::UnlockRequest>,
    ) -> Result<Response<v1::UnlockReply>, Status> {
        let peer = peer(&req);
        // Before the PIN is even read: a refused caller spends no try.
        self.allowed(peer, Operation::Unlock).await?;
        let mut r = req.into_inner();
        // As the passphrase above: an exact copy; the request zeroizes its own.
        let pin = SecretString::from(r.pin.as_str());
        not_too_long("device name", &r.device)?;
        let device = Some(std::mem::take(&mut r.device)).filter(|d| !d.is_empty());
        drop(r);
        let ttl = self.pin_ttl;
        let device = self
            .blocking(peer, move |k, audit| {
                let result = k.unlock(device.as_deref(), pin, ttl);
                let rec = Record::new(Operation::Unlock, peer)
                    .device(result.as_deref().ok())
                    .result(&result);
                let written = audit.write(&rec);
                match (result, written) {
                    (Ok(name), Ok(())) => Ok(name),
                    // An unaudited PIN is not kept.
                    (Ok(name), Err(e)) => {
                        if let Some(b) = k.backends().iter().find(|b| b.name() == name) {
                            b.lock();
                        }
                        Err(e.refuse(&format!("the PIN for {name} was not kept")))
                    }
                    (Err(e), written) => Err(lost_line(written, e)),
                }
            })
            .await?;
        Ok(Response::new(v1::UnlockReply {
            device,
            ttl_seconds: ttl.as_secs(),
        }))
    }

    async fn lock(&self, req: Request<v1::LockRequest>) -> Result<Response<v1::LockReply>, Status> {
        let peer = peer(&req);
        self.allowed(peer, Operation::Lock).await?;
        // Locking only takes capabilities away: it is done, and answered, even when its line
        // cannot be written (the failure goes to stderr).
        let devices = self
            .blocking(peer, move |k, audit| {
                let devices = k.lock();
                let rec = Record::new(Operation::Lock, peer).result(&Ok::<_, AgentError>(&devices));
                if let Err(e) = audit.write(&rec) {
                    tracing::error!(error = %e, "the audit line of a lock was not written");
                }
                Ok(devices)
            })
            .await?;
        Ok(Response::new(v1::LockReply { devices }))
    }

    async fn attest(
        &self,
        req: Request<v1::AttestRequest>,
    ) -> Result<Response<v1::AttestReply>, Status> {
        let peer = peer(&req);
        let key = key_ref_from_proto(&req.into_inner().key)?;
        let policy = Arc::clone(&self.policy);
        self.blocking(peer, move |k, audit| {
            if let Ok(found) = k.resolve(&key) {
                if let Err(e) = policy.check_key(peer, Op::Attest, &found.key, None) {
                    let rec = Record::for_key(Operation::Attest, peer, Some(&found.key));
                    return Err(refuse(audit, rec, e));
                }
            }
            let result = match k.attest(&key) {
                Ok((found, Some(att))) => Ok((found.key, att)),
                Ok((Found { device, .. }, None)) => Err(AgentError::Unsupported(format!(
                    "{} devices cannot attest keys: only YubiKeys can",
                    device.kind()
                ))),
                Err(e) => Err(e),
            };
            let rec = Record::for_key(
                Operation::Attest,
                peer,
                result.as_ref().ok().map(|(i, _)| i),
            )
            .result(&result);
            let written = audit.write(&rec);
            match (result, written) {
                (Ok((info, att)), Ok(())) => Ok(Response::new(v1::AttestReply {
                    key_id: info.id.to_string(),
                    certificate_der: att.certificate,
                    intermediate_der: att.intermediate,
                })),
                (Ok(_), Err(e)) => Err(e.refuse("no attestation was returned")),
                (Err(e), written) => Err(lost_line(written, e)),
            }
        })
        .await
    }
}
