//! The socket, the peer check, the gRPC service and a graceful shutdown.
//!
//! The socket sits in a directory only the agent's user can enter (0700) and is itself 0600, but
//! file modes are not the guard: every call checks the caller's uid from the socket's peer
//! credentials against the agent's own uid and the configured allow-list.

use std::future::Future;
use std::io;
use std::os::unix::fs::{
    DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status};
use tufa_proto::v1;
use tufa_proto::v1::agent_server::{Agent as AgentApi, AgentServer};
use tufa_proto::KeyId;

use crate::audit::{AuditLog, Operation, Peer, Record};
use crate::backend::pkcs11::Pkcs11Backend;
use crate::backend::yubikey::YubiKeyBackend;
use crate::backend::{
    Backend, BackendKind, GenerateSpec, KeyInfo, Location, Origin, PinPolicy, TouchPolicy,
};
use crate::config::Config;
use crate::error::AgentError;
use crate::import::ImportedKey;
use crate::keys::{KeyName, KeyRef, Keyring, Sha256Digest};

/// Why the agent cannot start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A device could not be opened.
    #[error(transparent)]
    Device(#[from] AgentError),
    /// Another agent answers on the socket.
    #[error("an agent is already listening on {0}: stop it first, or choose another --socket")]
    AlreadyRunning(PathBuf),
    /// The socket path or its directory is unsafe or unusable.
    #[error("socket {path}: {message}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The audit log cannot be opened.
    #[error("cannot open the audit log {path}: {error}")]
    Audit {
        /// The log path.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The gRPC server failed.
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The agent: devices, audit log and settings shared by every call.
pub struct Agent {
    keyring: Arc<Keyring>,
    audit: Arc<AuditLog>,
    pin_ttl: Duration,
    // Key management is rare; doing it one at a time keeps name checks race-free.
    manage: tokio::sync::Mutex<()>,
}

impl Agent {
    /// Opens every configured device; fails if one is missing or misconfigured.
    pub async fn open(config: &Config) -> Result<Self, ServerError> {
        let mut backends: Vec<Arc<dyn Backend>> = Vec::new();
        for p in config.pkcs11.clone() {
            let b = tokio::task::spawn_blocking(move || Pkcs11Backend::open(p))
                .await
                .map_err(|e| AgentError::Internal(e.to_string()))??;
            backends.push(Arc::new(b));
        }
        for y in config.yubikeys.clone() {
            let b = tokio::task::spawn_blocking(move || YubiKeyBackend::open(y))
                .await
                .map_err(|e| AgentError::Internal(e.to_string()))??;
            backends.push(Arc::new(b));
        }
        let audit = match &config.audit_log {
            Some(path) => AuditLog::open(path).map_err(|error| ServerError::Audit {
                path: path.clone(),
                error,
            })?,
            None => AuditLog::disabled(),
        };
        let keyring = Arc::new(Keyring::new(backends));
        let k = Arc::clone(&keyring);
        let keys = tokio::task::spawn_blocking(move || k.refresh())
            .await
            .map_err(|e| AgentError::Internal(e.to_string()))?;
        tracing::info!(
            keys = keys.len(),
            devices = keyring.backends().len(),
            "devices opened"
        );
        Ok(Self {
            keyring,
            audit: Arc::new(audit),
            pin_ttl: config.pin_cache_ttl,
            manage: tokio::sync::Mutex::new(()),
        })
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

    fn audit(&self, record: Record<'_>) {
        self.audit.write(&record);
    }
}

/// How long calls in flight may take after a shutdown signal: longer than a YubiKey's touch
/// timeout (15 s), so a signature waiting for a touch still completes, but bounded, so a client
/// that never closes its connection cannot keep the agent alive.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Serves the agent on `config.socket` until `shutdown` resolves, then finishes the calls in
/// flight (for at most [`SHUTDOWN_GRACE`]) and removes the socket.
pub async fn serve(
    config: &Config,
    listener: UnixListener,
    agent: Agent,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let own_uid = rustix::process::getuid().as_raw();
    let mut allowed = config.allowed_uids.clone();
    allowed.push(own_uid);
    let check = move |req: Request<()>| check_peer(&req, &allowed).map(|()| req);
    tracing::info!(socket = %config.socket.display(), "listening");
    let socket_inode = std::fs::metadata(&config.socket).map(|m| m.ino()).ok();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut graceful = stop_rx.clone();
    let mut deadline = stop_rx;
    let server = tonic::transport::Server::builder()
        .add_service(AgentServer::with_interceptor(agent, check))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            let _ = graceful.wait_for(|stop| *stop).await;
        });
    let result = tokio::select! {
        r = server => r,
        _ = async move {
            let _ = deadline.wait_for(|stop| *stop).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("connections still open {}s after the shutdown signal; exiting", SHUTDOWN_GRACE.as_secs());
            Ok(())
        }
    };
    // Remove the socket only if it is still ours (nobody replaced it meanwhile).
    if std::fs::metadata(&config.socket).map(|m| m.ino()).ok() == socket_inode {
        let _ = std::fs::remove_file(&config.socket);
    }
    tracing::info!("stopped");
    Ok(result?)
}

fn check_peer(req: &Request<()>, allowed: &[u32]) -> Result<(), Status> {
    let cred = req
        .extensions()
        .get::<UdsConnectInfo>()
        .and_then(|i| i.peer_cred);
    match cred {
        Some(c) if allowed.contains(&c.uid()) => Ok(()),
        Some(c) => {
            tracing::warn!(uid = c.uid(), pid = ?c.pid(), "refused a caller");
            Err(Status::permission_denied(format!(
                "uid {} may not use this agent: only its own user and the uids in allowed_uids may",
                c.uid()
            )))
        }
        None => Err(Status::permission_denied(
            "the caller's credentials cannot be read from the socket",
        )),
    }
}

fn peer<T>(req: &Request<T>) -> Peer {
    let cred = req
        .extensions()
        .get::<UdsConnectInfo>()
        .and_then(|i| i.peer_cred);
    Peer {
        uid: cred.map(|c| c.uid()),
        pid: cred.and_then(|c| c.pid()),
    }
}

/// Makes the socket's directory, replaces a stale socket (never a live one) and binds.
///
/// Alone, the agent uses a private directory (0700) and a 0600 socket. With other uids allowed
/// (`shared`), they must be able to reach the socket: the directory may be entered (0711) but
/// written by no one else, the socket is 0666, and the peer check is what keeps strangers out.
/// Call it before opening devices, so a second agent stops before it touches a token.
pub fn bind(path: &Path, shared: bool) -> Result<UnixListener, ServerError> {
    let err = |message: String| ServerError::Socket {
        path: path.to_owned(),
        message,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| err("give the socket a path inside a directory".into()))?;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(if shared { 0o711 } else { 0o700 })
            .create(dir)
            .map_err(|e| err(format!("cannot create directory {}: {e}", dir.display())))?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    let uid = rustix::process::getuid().as_raw();
    if meta.uid() != uid {
        return Err(err(format!(
            "directory {} belongs to uid {}, not to the agent's uid {uid}: choose a directory of your own",
            dir.display(),
            meta.uid()
        )));
    }
    let (forbidden, wanted) = if shared {
        (0o022, "711")
    } else {
        (0o077, "700")
    };
    if meta.mode() & forbidden != 0 {
        return Err(err(format!(
            "directory {} has mode {:o}; the socket needs a directory only its owner can change: `chmod {wanted} {}` or choose another --socket",
            dir.display(),
            meta.mode() & 0o777,
            dir.display()
        )));
    }
    if let Ok(existing) = std::fs::symlink_metadata(path) {
        if !existing.file_type().is_socket() {
            return Err(err(
                "exists and is not a socket: remove it or choose another --socket".into(),
            ));
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(ServerError::AlreadyRunning(path.to_owned())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(socket = %path.display(), "removing a stale socket");
                std::fs::remove_file(path)
                    .map_err(|e| err(format!("cannot remove the stale socket: {e}")))?;
            }
            Err(e) => {
                return Err(err(format!(
                    "cannot tell whether an agent is listening: {e}"
                )))
            }
        }
    }
    let listener = UnixListener::bind(path).map_err(|e| err(format!("cannot listen: {e}")))?;
    let mode = if shared { 0o666 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| err(format!("cannot set mode {mode:o}: {e}")))?;
    Ok(listener)
}

#[tonic::async_trait]
impl AgentApi for Agent {
    async fn status(
        &self,
        _req: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::StatusReply>, Status> {
        let devices = self
            .blocking(|k| {
                Ok(k.backends()
                    .iter()
                    .map(|b| {
                        let s = b.status();
                        v1::Device {
                            backend: backend_to_proto(b.kind()) as i32,
                            name: b.name().to_owned(),
                            location: Some(location_to_proto(b.location())),
                            present: s.present,
                            locked: s.locked,
                            detail: s.detail,
                            key_count: s.key_count as u32,
                        }
                    })
                    .collect())
            })
            .await?;
        Ok(Response::new(v1::StatusReply {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            devices,
            pin_cache_ttl_seconds: self.pin_ttl.as_secs(),
        }))
    }

    async fn list_keys(
        &self,
        _req: Request<v1::ListKeysRequest>,
    ) -> Result<Response<v1::ListKeysReply>, Status> {
        let mut keys = self.blocking(|k| Ok(k.refresh())).await?;
        keys.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(Response::new(v1::ListKeysReply {
            keys: keys.into_iter().map(key_to_proto).collect(),
        }))
    }

    async fn get_key(&self, req: Request<v1::GetKeyRequest>) -> Result<Response<v1::Key>, Status> {
        let key: KeyRef = req.into_inner().key.parse()?;
        let (_, info) = self.blocking(move |k| k.resolve(&key)).await?;
        Ok(Response::new(key_to_proto(info)))
    }

    async fn generate_key(
        &self,
        req: Request<v1::GenerateKeyRequest>,
    ) -> Result<Response<v1::Key>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        let _guard = self.manage.lock().await;
        let NewKey { spec, kind, device } = new_key(
            &r.name,
            r.backend,
            r.device,
            r.slot,
            r.pin_policy,
            r.touch_policy,
        )?;
        let name = spec.name.clone();
        let result = self
            .blocking(move |k| {
                refuse_taken_name(k, &spec.name)?;
                let backend = k.pick_device(kind, device.as_deref())?;
                let info = backend.generate(&spec)?;
                k.refresh();
                Ok(info)
            })
            .await;
        self.audit_key_op(Operation::Generate, peer, &name, &result);
        Ok(Response::new(key_to_proto(result?)))
    }

    async fn import_key(
        &self,
        req: Request<v1::ImportKeyRequest>,
    ) -> Result<Response<v1::Key>, Status> {
        let peer = peer(&req);
        let mut r = req.into_inner();
        let passphrase = Some(std::mem::take(&mut r.passphrase))
            .filter(|p| !p.is_empty())
            .map(SecretString::from);
        let pem = zeroize::Zeroizing::new(std::mem::take(&mut r.pem));
        let _guard = self.manage.lock().await;
        let NewKey { spec, kind, device } = new_key(
            &r.name,
            r.backend,
            r.device,
            r.slot,
            r.pin_policy,
            r.touch_policy,
        )?;
        let name = spec.name.clone();
        let result = self
            .blocking(move |k| {
                let key = ImportedKey::from_pem(&pem, passphrase.as_ref())?;
                let id = KeyId::for_ecdsa_spki(&key.public_spki());
                if let Ok((_, existing)) = k.resolve(&KeyRef::Id(id)) {
                    return Err(AgentError::KeyExists {
                        name: existing.name,
                        key_id: id.to_string(),
                    });
                }
                refuse_taken_name(k, &spec.name)?;
                let backend = k.pick_device(kind, device.as_deref())?;
                let info = backend.import(&spec, &key)?;
                k.refresh();
                Ok(info)
            })
            .await;
        self.audit_key_op(Operation::Import, peer, &name, &result);
        Ok(Response::new(key_to_proto(result?)))
    }

    async fn delete_key(
        &self,
        req: Request<v1::DeleteKeyRequest>,
    ) -> Result<Response<v1::DeleteKeyReply>, Status> {
        let peer = peer(&req);
        let key: KeyRef = req.into_inner().key.parse()?;
        let _guard = self.manage.lock().await;
        let result = self
            .blocking(move |k| {
                let (backend, info) = k.resolve(&key)?;
                backend.delete(&info.id)?;
                k.refresh();
                Ok(info)
            })
            .await;
        let mut rec = Record::new(Operation::Delete, peer);
        if let Ok(info) = &result {
            rec.key_id = Some(info.id.to_string());
            rec.key_name = Some(&info.name);
            rec.location = Some(audit_location(&info.location));
        }
        rec.result = result_text(&result);
        self.audit(rec);
        let info = result?;
        Ok(Response::new(v1::DeleteKeyReply {
            key_id: info.id.to_string(),
        }))
    }

    async fn set_certificate(
        &self,
        req: Request<v1::SetCertificateRequest>,
    ) -> Result<Response<v1::Key>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        let key: KeyRef = r.key.parse()?;
        let der = r.certificate_der;
        let _guard = self.manage.lock().await;
        let result = self
            .blocking(move |k| {
                let (backend, info) = k.resolve(&key)?;
                check_certificate(&info, &der)?;
                backend.set_certificate(&info.id, &der)?;
                k.refresh();
                k.resolve(&KeyRef::Id(info.id)).map(|(_, i)| i)
            })
            .await;
        let mut rec = Record::new(Operation::SetCertificate, peer);
        if let Ok(info) = &result {
            rec.key_id = Some(info.id.to_string());
            rec.key_name = Some(&info.name);
            rec.location = Some(audit_location(&info.location));
        }
        rec.result = result_text(&result);
        self.audit(rec);
        Ok(Response::new(key_to_proto(result?)))
    }

    async fn sign(&self, req: Request<v1::SignRequest>) -> Result<Response<v1::SignReply>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        let key: KeyRef = r.key.parse()?;
        let digest = match r.payload {
            Some(v1::sign_request::Payload::Data(d)) if d.is_empty() => {
                return Err(AgentError::InvalidArgument(
                    "nothing to sign: the payload is empty".into(),
                )
                .into())
            }
            Some(v1::sign_request::Payload::Data(d)) => Sha256Digest::of(&d),
            Some(v1::sign_request::Payload::Sha256Digest(d)) => {
                Sha256Digest::try_from(d.as_slice()).map_err(AgentError::from)?
            }
            None => {
                return Err(AgentError::InvalidArgument(
                    "nothing to sign: send data or a sha256_digest".into(),
                )
                .into())
            }
        };
        let context = r.context.unwrap_or_default();
        let result = self
            .blocking(move |k| {
                let (backend, info) = k.resolve(&key)?;
                let sig = backend.sign(&info.id, &digest)?;
                Ok((info, sig))
            })
            .await;
        let mut rec = Record::new(Operation::Sign, peer);
        rec.gun = Some(&context.gun)
            .filter(|g| !g.is_empty())
            .map(String::as_str);
        rec.role = Some(&context.role)
            .filter(|r| !r.is_empty())
            .map(String::as_str);
        rec.sha256 = Some(digest.to_string());
        if let Ok((info, _)) = &result {
            rec.key_id = Some(info.id.to_string());
            rec.key_name = Some(&info.name);
            rec.location = Some(audit_location(&info.location));
        }
        rec.result = result_text(&result);
        tracing::debug!(key_id = ?rec.key_id, gun = ?rec.gun, role = ?rec.role, result = %rec.result, "sign");
        self.audit(rec);
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
        let pin = SecretString::from(std::mem::take(&mut r.pin));
        let device = Some(r.device).filter(|d| !d.is_empty());
        let ttl = self.pin_ttl;
        let result = self
            .blocking(move |k| {
                let backend = pick_unlock_target(k, device.as_deref())?;
                if secrecy::ExposeSecret::expose_secret(&pin).is_empty() {
                    return Err(AgentError::InvalidArgument("the PIN is empty".into()));
                }
                backend.unlock(pin, ttl)?;
                Ok(backend.name().to_owned())
            })
            .await;
        let mut rec = Record::new(Operation::Unlock, peer);
        rec.device = result.as_ref().ok().map(String::as_str);
        rec.result = result_text(&result);
        self.audit(rec);
        Ok(Response::new(v1::UnlockReply {
            device: result?,
            ttl_seconds: ttl.as_secs(),
        }))
    }

    async fn lock(&self, req: Request<v1::LockRequest>) -> Result<Response<v1::LockReply>, Status> {
        let peer = peer(&req);
        let devices = self
            .blocking(|k| {
                Ok(k.backends()
                    .iter()
                    .map(|b| {
                        b.lock();
                        b.name().to_owned()
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
        let mut rec = Record::new(Operation::Lock, peer);
        rec.result = "ok".into();
        self.audit(rec);
        Ok(Response::new(v1::LockReply { devices }))
    }

    async fn attest(
        &self,
        req: Request<v1::AttestRequest>,
    ) -> Result<Response<v1::AttestReply>, Status> {
        self.attest_key(req).await.map(Response::new)
    }
}

impl Agent {
    async fn attest_key(&self, req: Request<v1::AttestRequest>) -> Result<v1::AttestReply, Status> {
        let peer = peer(&req);
        let key: KeyRef = req.into_inner().key.parse()?;
        let result = self
            .blocking(move |k| {
                let (backend, info) = k.resolve(&key)?;
                let att = backend.attest(&info.id)?;
                Ok((info, att))
            })
            .await;
        let mut rec = Record::new(Operation::Attest, peer);
        if let Ok((info, _)) = &result {
            rec.key_id = Some(info.id.to_string());
            rec.key_name = Some(&info.name);
            rec.location = Some(audit_location(&info.location));
        }
        rec.result = result_text(&result);
        self.audit(rec);
        let (info, att) = result?;
        Ok(v1::AttestReply {
            key_id: info.id.to_string(),
            certificate_der: att.certificate,
            intermediate_der: att.intermediate,
        })
    }

    fn audit_key_op(
        &self,
        op: Operation,
        peer: Peer,
        name: &KeyName,
        result: &Result<KeyInfo, AgentError>,
    ) {
        let mut rec = Record::new(op, peer);
        rec.key_name = Some(name.as_str());
        if let Ok(info) = result {
            rec.key_id = Some(info.id.to_string());
            rec.location = Some(audit_location(&info.location));
        }
        rec.result = result_text(result);
        self.audit(rec);
    }
}

/// What a generate or import request asks for: the key's spec and which device takes it.
struct NewKey {
    spec: GenerateSpec,
    kind: Option<BackendKind>,
    device: Option<String>,
}

fn new_key(
    name: &str,
    backend: i32,
    device: String,
    slot: String,
    pin_policy: i32,
    touch_policy: i32,
) -> Result<NewKey, AgentError> {
    Ok(NewKey {
        spec: GenerateSpec {
            name: name.parse()?,
            pin_policy: pin_policy_from_proto(pin_policy),
            touch_policy: touch_policy_from_proto(touch_policy),
            slot: Some(slot).filter(|s| !s.is_empty()),
        },
        kind: backend_from_proto(backend)?,
        device: Some(device).filter(|d| !d.is_empty()),
    })
}

/// A key's place for the audit log (no module path: the token label names it).
fn audit_location(l: &Location) -> String {
    match l {
        Location::Pkcs11 { token_label, .. } => format!("pkcs11:token={token_label}"),
        Location::YubiKey { serial, slot } => format!("yubikey:{serial}/{slot}"),
    }
}

fn result_text<T>(r: &Result<T, AgentError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

fn refuse_taken_name(k: &Keyring, name: &KeyName) -> Result<(), AgentError> {
    match k.name_taken(name) {
        Some(existing) => Err(AgentError::NameTaken {
            name: name.to_string(),
            key_id: existing.id.to_string(),
        }),
        None => Ok(()),
    }
}

fn pick_unlock_target(k: &Keyring, device: Option<&str>) -> Result<Arc<dyn Backend>, AgentError> {
    if let Some(d) = device {
        return k.pick_device(None, Some(d));
    }
    let all = k.backends();
    if all.len() == 1 {
        return Ok(Arc::clone(&all[0]));
    }
    let needing: Vec<_> = all.iter().filter(|b| b.needs_pin()).collect();
    match needing.as_slice() {
        [one] => Ok(Arc::clone(one)),
        _ => Err(AgentError::InvalidArgument(format!(
            "several devices could take this PIN ({}): say which with --device",
            all.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// A certificate must be X.509 DER and certify exactly this key's public key.
fn check_certificate(info: &KeyInfo, der: &[u8]) -> Result<(), AgentError> {
    use x509_cert::der::{Decode as _, Encode as _};
    let refuse = |reason: String| AgentError::Certificate {
        key_id: info.id.to_string(),
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

fn location_to_proto(l: Location) -> v1::KeyLocation {
    v1::KeyLocation {
        location: Some(match l {
            Location::Pkcs11 {
                module,
                token_label,
                token_serial,
            } => v1::key_location::Location::Pkcs11(v1::Pkcs11Location {
                module,
                token_label,
                token_serial,
            }),
            Location::YubiKey { serial, slot } => {
                v1::key_location::Location::Yubikey(v1::YubiKeyLocation { serial, slot })
            }
        }),
    }
}

fn key_to_proto(k: KeyInfo) -> v1::Key {
    v1::Key {
        key_id: k.id.to_string(),
        name: k.name,
        backend: backend_to_proto(k.backend) as i32,
        location: Some(location_to_proto(k.location)),
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
    }
}
