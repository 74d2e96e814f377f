//! The notary-signer gRPC handlers: `KeyManagement` (CreateKey, GetKeyInfo, DeleteKey) and
//! `Signer` (Sign), over the server keys of one device ([`super::store`]).
//!
//! As on the socket, the audit log fails closed: a signature whose line cannot be written is
//! not returned, a new key whose line cannot be written is deleted again, and a deletion is
//! done only once its `started` line is on disk. Lines carry the caller's certificate subject
//! and address instead of a uid.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};
use tufa_proto::notary;
use tufa_proto::notary::key_management_server::KeyManagement;
use tufa_proto::notary::signer_server::Signer;

use super::store::{Created, ServerKey, ServerKeys};
use super::tls::peer_subject;
use crate::audit::{AuditLog, Operation, Peer, Record};
use crate::error::AgentError;
use crate::keys::{KeyId, Sha256Digest};
use crate::tag::ServerRole;

/// The TUF key type of every server key (ECDSA P-256).
pub const ECDSA: &str = "ecdsa";

/// The longest GUN accepted (Docker's limit on a repository name).
pub const MAX_GUN: usize = 255;

/// Device operations of the listener's callers that may run at once.
pub const DEVICE_CALLS: usize = 32;

/// The notary-signer service: the server keys, the audit log, and a share of device work.
#[derive(Clone)]
pub struct SignerService {
    keys: Arc<ServerKeys>,
    audit: AuditLog,
    work: Arc<Semaphore>,
}

/// Who called: certificate subject and address.
#[derive(Clone)]
struct Caller {
    subject: String,
    addr: Option<std::net::SocketAddr>,
}

impl Caller {
    fn of<T>(req: &Request<T>) -> Self {
        Self {
            subject: peer_subject(req),
            addr: req.remote_addr(),
        }
    }

    fn record<'a>(&self, op: Operation, key: Option<&'a ServerKey>) -> Record<'a> {
        let mut rec = Record::for_key(op, Peer::default(), key.map(|k| &k.key));
        if let Some(k) = key {
            rec = rec.context(&k.tag.gun, k.tag.role.as_str());
        }
        rec.tls_peer(&self.subject, self.addr)
    }
}

impl SignerService {
    /// The service over `keys`, writing to `audit`.
    pub fn new(keys: Arc<ServerKeys>, audit: AuditLog) -> Self {
        Self {
            keys,
            audit,
            work: Arc::new(Semaphore::new(DEVICE_CALLS)),
        }
    }

    /// The server keys.
    pub fn keys(&self) -> &Arc<ServerKeys> {
        &self.keys
    }

    /// Runs device work (and its audit lines) on a blocking worker, in turn.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ServerKeys, &AuditLog) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let turn = Arc::clone(&self.work)
            .acquire_owned()
            .await
            .expect("open semaphore");
        let (keys, audit) = (Arc::clone(&self.keys), self.audit.clone());
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            f(&keys, &audit)
        })
        .await
        .map_err(|e| AgentError::Internal(format!("a device worker failed: {e}")))?
    }
}

/// A request's key ID; notary-server sends the TUF key ID it computed itself.
fn key_id(id: Option<notary::KeyId>) -> Result<KeyId, Status> {
    let id = id.map(|k| k.id).unwrap_or_default();
    id.parse().map_err(|_| {
        Status::invalid_argument(format!(
            "'{}' is not a TUF key ID (64 hex digits)",
            id.chars().take(80).collect::<String>()
        ))
    })
}

fn key_info(k: &ServerKey) -> notary::KeyInfo {
    notary::KeyInfo {
        key_id: Some(notary::KeyId {
            id: k.key.id.to_string(),
        }),
        algorithm: Some(notary::Algorithm {
            algorithm: ECDSA.to_owned(),
        }),
    }
}

/// The GUN, role and algorithm of a CreateKey, or why tufad will not make that key.
fn create_request(r: &notary::CreateKeyRequest) -> Result<(String, ServerRole), Status> {
    if r.algorithm != ECDSA {
        return Err(Status::invalid_argument(format!(
            "algorithm '{}': tufad makes only ecdsa (P-256) server keys; set trust_service.key_algorithm to \"ecdsa\" in notary-server's config",
            r.algorithm.chars().take(40).collect::<String>()
        )));
    }
    let role: ServerRole = r
        .role
        .parse()
        .map_err(|e: crate::tag::NotAServerRole| Status::invalid_argument(e.to_string()))?;
    if r.gun.is_empty() || r.gun.len() > MAX_GUN || r.gun.chars().any(char::is_control) {
        return Err(Status::invalid_argument(format!(
            "a GUN of {} bytes{}: a GUN is 1 to {MAX_GUN} bytes of printable text",
            r.gun.len(),
            if r.gun.chars().any(char::is_control) {
                " with control characters"
            } else {
                ""
            }
        )));
    }
    Ok((r.gun.clone(), role))
}

#[tonic::async_trait]
impl KeyManagement for SignerService {
    async fn create_key(
        &self,
        req: Request<notary::CreateKeyRequest>,
    ) -> Result<Response<notary::PublicKey>, Status> {
        let caller = Caller::of(&req);
        let (gun, role) = create_request(req.get_ref())?;
        self.blocking(move |keys, audit| {
            let created = keys.create(&gun, role);
            if created.is_err() {
                let rec = caller
                    .record(Operation::Generate, None)
                    .context(&gun, role.as_str())
                    .result(&created);
                if let Err(w) = audit.write(&rec) {
                    tracing::error!(error = %w, "the audit line of a failed CreateKey was not written");
                }
            }
            let k = match created {
                Ok(Created::Reused(k)) => {
                    tracing::debug!(key_id = %k.key.id, gun = %gun, %role, "CreateKey: handed out a key that never signed");
                    k
                }
                Ok(Created::New(k)) => {
                    let rec = caller.record(Operation::Generate, Some(&k)).result(&Ok::<_, AgentError>(()));
                    if let Err(e) = audit.write(&rec) {
                        let undone = keys.delete(&k.key.id);
                        return Err(e.refuse(&match undone {
                            Ok(()) => format!("the new {role} key for {gun} was deleted again"),
                            Err(d) => format!("the new {role} key {} for {gun} could not be deleted again ({d}): delete it with `tufa key delete {}`", k.key.id, k.key.id),
                        }));
                    }
                    tracing::info!(key_id = %k.key.id, gun = %gun, %role, "created a notary-server key");
                    k
                }
                Err(e) => return Err(e.into()),
            };
            Ok(Response::new(notary::PublicKey {
                key_info: Some(key_info(&k)),
                public_key: k.key.public_spki.clone(),
            }))
        })
        .await
    }

    async fn get_key_info(
        &self,
        req: Request<notary::KeyId>,
    ) -> Result<Response<notary::GetKeyInfoResponse>, Status> {
        let id = key_id(Some(req.into_inner()))?;
        let k = self.blocking(move |keys, _| Ok(keys.get(&id)?)).await?;
        Ok(Response::new(notary::GetKeyInfoResponse {
            key_info: Some(key_info(&k)),
            public_key: k.key.public_spki.clone(),
            role: k.tag.role.to_string(),
        }))
    }

    /// Deletes a server key that never signed (an orphan of repeated CreateKeys); a key that
    /// has signed may be in a published root, so it is refused: the operator deletes it with
    /// `tufa key delete` once it is rotated out.
    async fn delete_key(
        &self,
        req: Request<notary::KeyId>,
    ) -> Result<Response<notary::Void>, Status> {
        let caller = Caller::of(&req);
        let id = key_id(Some(req.into_inner()))?;
        self.blocking(move |keys, audit| {
            let k = keys.get(&id)?;
            if k.tag.used {
                return Err(Status::failed_precondition(format!(
                    "key {id} ({} of {}) has signed metadata, so a root may list it: tufad deletes only server keys that never signed; rotate it out (`notary key rotate {} {} -r`), then delete it with `tufa key delete {id}` on the agent's host",
                    k.tag.role, k.tag.gun, k.tag.gun, k.tag.role
                )));
            }
            audit
                .write(&caller.record(Operation::Delete, Some(&k)).started())
                .map_err(|e| e.refuse(&format!("key {id} was not deleted")))?;
            let result = keys.delete(&id);
            let rec = caller.record(Operation::Delete, Some(&k)).result(&result);
            match (result, audit.write(&rec)) {
                (Ok(()), Ok(())) => Ok(Response::new(notary::Void {})),
                (Ok(()), Err(e)) => Err(e.refuse(&format!(
                    "key {id} was deleted, but the line saying so was not written"
                ))),
                (Err(e), _) => Err(e.into()),
            }
        })
        .await
    }
}

#[tonic::async_trait]
impl Signer for SignerService {
    async fn sign(
        &self,
        req: Request<notary::SignatureRequest>,
    ) -> Result<Response<notary::Signature>, Status> {
        let caller = Caller::of(&req);
        let r = req.into_inner();
        let id = key_id(r.key_id)?;
        if r.content.is_empty() {
            return Err(Status::invalid_argument(
                "nothing to sign: the content is empty",
            ));
        }
        let digest = Sha256Digest::of(&r.content);
        self.blocking(move |keys, audit| {
            let k = keys.get(&id)?;
            let result = keys
                .mark_used(&k)
                .and_then(|()| keys.device().sign(&id, &digest));
            if let Err(AgentError::KeyNotFound { .. }) = result {
                keys.forget(&id);
            }
            let rec = caller
                .record(Operation::Sign, Some(&k))
                .signing(&k.tag.gun, k.tag.role.as_str(), &digest)
                .result(&result);
            tracing::debug!(key_id = %id, gun = %k.tag.gun, role = %k.tag.role, result = %rec.result, "notary-server sign");
            match (result, audit.write(&rec)) {
                (Ok(sig), Ok(())) => Ok(Response::new(notary::Signature {
                    key_info: Some(key_info(&k)),
                    algorithm: Some(notary::Algorithm {
                        algorithm: ECDSA.to_owned(),
                    }),
                    content: sig.as_bytes().to_vec(),
                })),
                (Ok(_), Err(e)) => Err(e.refuse("no signature was returned")),
                (Err(e), written) => {
                    if let Err(w) = written {
                        tracing::error!(error = %w, "the audit line of a failed sign was not written");
                    }
                    Err(e.into())
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(algorithm: &str, gun: &str, role: &str) -> notary::CreateKeyRequest {
        notary::CreateKeyRequest {
            algorithm: algorithm.into(),
            gun: gun.into(),
            role: role.into(),
        }
    }

    #[test]
    fn create_key_refuses_other_roles_algorithms_and_bad_guns() {
        let ok = create_request(&request("ecdsa", "docker.io/library/app", "snapshot")).unwrap();
        assert_eq!(ok, ("docker.io/library/app".into(), ServerRole::Snapshot));
        let refused = |r| create_request(&r).unwrap_err();
        let e = refused(request("ed25519", "g", "timestamp"));
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(
            e.message().contains("only ecdsa") && e.message().contains("key_algorithm"),
            "{e:?}"
        );
        for role in ["root", "targets", "targets/releases"] {
            let e = refused(request("ecdsa", "g", role));
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(
                e.message()
                    .contains(&format!("role '{role}' is not a server role")),
                "{e:?}"
            );
        }
        assert!(refused(request("ecdsa", "", "timestamp"))
            .message()
            .contains("GUN of 0 bytes"));
        assert!(refused(request("ecdsa", &"a".repeat(256), "timestamp"))
            .message()
            .contains("256 bytes"));
        assert!(refused(request("ecdsa", "a\nb", "timestamp"))
            .message()
            .contains("control"));
    }

    #[test]
    fn key_ids_must_be_tuf_key_ids() {
        assert!(key_id(None).is_err());
        let e = key_id(Some(notary::KeyId { id: "abc".into() })).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let id = "8c524f91aff70d4f305c6b5b2d24a269cf1c574342c737562b2c97b65d5d0b5b";
        assert_eq!(
            key_id(Some(notary::KeyId { id: id.into() }))
                .unwrap()
                .to_string(),
            id
        );
    }
}
