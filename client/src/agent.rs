//! The gRPC client for tufad, over its Unix socket.
//!
//! Every signature the agent returns is checked against the key's public key before it is
//! handed on: a device that signs with the wrong key, or garbles a signature, is caught here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::pkcs8::DecodePublicKey as _;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::Code;
use tufa_proto::v1;
use tufa_proto::v1::agent_client::AgentClient as RawClient;

/// How long the client waits for the agent's answer to a call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// How long it waits for a signature that needs a touch: well past a YubiKey's own touch
/// timeout (about 15 s), so the card, not the client, decides when a touch is too late.
pub const TOUCH_TIMEOUT: Duration = Duration::from_secs(60);

/// A request that gives up after `timeout`.
fn timed<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(timeout);
    r
}

/// Where the client looks for the agent: `--agent`, `TUFA_AGENT_SOCK`, then
/// `$XDG_RUNTIME_DIR/tufa/agent.sock`.
pub fn default_socket() -> Option<PathBuf> {
    std::env::var_os(tufa_proto::AGENT_SOCKET_ENV)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_RUNTIME_DIR")
                .filter(|d| !d.is_empty())
                .map(|d| PathBuf::from(d).join("tufa").join("agent.sock"))
        })
}

/// A connection to tufad.
#[derive(Clone)]
pub struct AgentClient {
    inner: RawClient<Channel>,
    socket: PathBuf,
}

/// What the client asks a key for.
#[derive(Clone, Debug, Default)]
pub struct SignContext {
    /// The repository (GUN) the signature is for.
    pub gun: String,
    /// The TUF role.
    pub role: String,
}

impl AgentClient {
    /// Connects to the agent's socket.
    pub async fn connect(socket: &Path) -> Result<Self, AgentClientError> {
        // Say why the socket cannot be used: missing, or not reachable for this user.
        if let Err(e) = std::fs::symlink_metadata(socket) {
            return Err(AgentClientError::NoAgent {
                socket: socket.to_owned(),
                detail: match e.kind() {
                    std::io::ErrorKind::NotFound => "no socket there".into(),
                    std::io::ErrorKind::PermissionDenied => {
                        "permission denied: its directory is not open to this user".into()
                    }
                    _ => e.to_string(),
                },
            });
        }
        let path = socket.to_owned();
        // The URI is required by tonic but unused: the connector dials the socket.
        let channel = Endpoint::try_from("http://[::]:50051")
            .map_err(|e| AgentClientError::Internal(e.to_string()))?
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }))
            .await
            .map_err(|e| AgentClientError::NoAgent {
                socket: socket.to_owned(),
                detail: source_chain(&e),
            })?;
        Ok(Self {
            inner: RawClient::new(channel),
            socket: socket.to_owned(),
        })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Backends, devices and lock state.
    pub async fn status(&self) -> Result<v1::StatusReply, AgentClientError> {
        Ok(self
            .inner
            .clone()
            .status(timed(v1::StatusRequest {}, CALL_TIMEOUT))
            .await?
            .into_inner())
    }

    /// Every key the agent holds.
    pub async fn list_keys(&self) -> Result<Vec<v1::Key>, AgentClientError> {
        Ok(self
            .inner
            .clone()
            .list_keys(timed(v1::ListKeysRequest {}, CALL_TIMEOUT))
            .await?
            .into_inner()
            .keys)
    }

    /// One key by ID, unique ID prefix or name, resolved by the agent (one rule for every caller).
    pub async fn key(&self, key: &str) -> Result<v1::Key, AgentClientError> {
        Ok(self
            .inner
            .clone()
            .get_key(timed(
                v1::GetKeyRequest {
                    key: key.to_owned(),
                },
                CALL_TIMEOUT,
            ))
            .await?
            .into_inner())
    }

    /// Generates a key on a device.
    pub async fn generate(&self, req: v1::GenerateKeyRequest) -> Result<v1::Key, AgentClientError> {
        Ok(self
            .inner
            .clone()
            .generate_key(timed(req, CALL_TIMEOUT))
            .await?
            .into_inner())
    }

    /// Imports a PEM private key into a device.
    pub async fn import(
        &self,
        name: &str,
        pem: Vec<u8>,
        passphrase: Option<&SecretString>,
    ) -> Result<v1::Key, AgentClientError> {
        // The request zeroizes the PEM and the passphrase when tonic drops it after sending.
        let req = v1::ImportKeyRequest {
            name: name.to_owned(),
            backend: 0,
            device: String::new(),
            pem,
            passphrase: passphrase
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default(),
            slot: String::new(),
            pin_policy: 0,
            touch_policy: 0,
        };
        Ok(self
            .inner
            .clone()
            .import_key(timed(req, CALL_TIMEOUT))
            .await?
            .into_inner())
    }

    /// Deletes a key; returns its ID.
    pub async fn delete(&self, key: &str) -> Result<String, AgentClientError> {
        Ok(self
            .inner
            .clone()
            .delete_key(timed(
                v1::DeleteKeyRequest {
                    key: key.to_owned(),
                },
                CALL_TIMEOUT,
            ))
            .await?
            .into_inner()
            .key_id)
    }

    /// Stores a DER certificate with a key.
    pub async fn set_certificate(
        &self,
        key: &str,
        der: Vec<u8>,
    ) -> Result<v1::Key, AgentClientError> {
        Ok(self
            .inner
            .clone()
            .set_certificate(timed(
                v1::SetCertificateRequest {
                    key: key.to_owned(),
                    certificate_der: der,
                },
                CALL_TIMEOUT,
            ))
            .await?
            .into_inner())
    }

    /// Signs `data` (hashed here with SHA-256) with `key`, and checks the signature against the
    /// key's public key before returning the raw r||s bytes.
    pub async fn sign(
        &self,
        key: &v1::Key,
        data: &[u8],
        context: &SignContext,
    ) -> Result<[u8; 64], AgentClientError> {
        let digest: [u8; 32] = Sha256::digest(data).into();
        let sig = self.request_signature(key, &digest, context).await?;
        let bad = |why: String| AgentClientError::BadSignature {
            key_id: key.key_id.clone(),
            detail: why,
        };
        let raw: [u8; 64] = sig
            .as_slice()
            .try_into()
            .map_err(|_| bad(format!("{} bytes where 64 (r||s) were expected", sig.len())))?;
        crate::tuf::verify::verify_p256(&key.public_key_spki, data, &raw).map_err(|why| {
            bad(format!(
                "it does not verify with the key's public key: {why}"
            ))
        })?;
        Ok(raw)
    }

    /// Signs a SHA-256 digest with `key` and checks the signature.
    pub async fn sign_digest(
        &self,
        key: &v1::Key,
        digest: &[u8; 32],
        context: &SignContext,
    ) -> Result<[u8; 64], AgentClientError> {
        let sig = self.request_signature(key, digest, context).await?;
        verify_raw(key, digest, &sig)
    }

    /// The agent's signature over `digest`, not yet checked.
    async fn request_signature(
        &self,
        key: &v1::Key,
        digest: &[u8; 32],
        context: &SignContext,
    ) -> Result<Vec<u8>, AgentClientError> {
        // The card blocks until touched; say so first, since nothing else shows.
        let timeout = match touch_prompt(key, context) {
            Some(prompt) => {
                eprintln!("{prompt}");
                TOUCH_TIMEOUT
            }
            None => CALL_TIMEOUT,
        };
        let reply = self
            .inner
            .clone()
            .sign(timed(
                v1::SignRequest {
                    key: key.key_id.clone(),
                    payload: Some(v1::sign_request::Payload::Sha256Digest(digest.to_vec())),
                    context: Some(v1::SignContext {
                        gun: context.gun.clone(),
                        role: context.role.clone(),
                    }),
                },
                timeout,
            ))
            .await?
            .into_inner();
        Ok(reply.signature)
    }

    /// Gives the agent a PIN for a device; returns the device name and how long it is kept.
    pub async fn unlock(
        &self,
        device: &str,
        pin: &SecretString,
    ) -> Result<v1::UnlockReply, AgentClientError> {
        Ok(self
            .inner
            .clone()
            .unlock(timed(
                v1::UnlockRequest {
                    device: device.to_owned(),
                    pin: pin.expose_secret().to_owned(),
                },
                CALL_TIMEOUT,
            ))
            .await?
            .into_inner())
    }

    /// The device's attestation of a key.
    pub async fn attest(&self, key: &str) -> Result<v1::AttestReply, AgentClientError> {
        Ok(self
            .inner
            .clone()
            .attest(timed(
                v1::AttestRequest {
                    key: key.to_owned(),
                },
                CALL_TIMEOUT,
            ))
            .await?
            .into_inner())
    }

    /// Makes the agent forget every PIN.
    pub async fn lock(&self) -> Result<Vec<String>, AgentClientError> {
        Ok(self
            .inner
            .clone()
            .lock(timed(v1::LockRequest {}, CALL_TIMEOUT))
            .await?
            .into_inner()
            .devices)
    }
}

/// What to tell the user before a signature that needs a touch: `Touch the YubiKey (serial N)
/// to sign ROLE for GUN`, or nothing for keys that need none.
///
/// No timeout in the client or the agent is shorter than the card's own touch timeout (about
/// 15 s): calls carry no deadline at all.
pub fn touch_prompt(key: &v1::Key, context: &SignContext) -> Option<String> {
    let touch = matches!(
        v1::TouchPolicy::try_from(key.touch_policy),
        Ok(v1::TouchPolicy::Always | v1::TouchPolicy::Cached)
    );
    let Some(v1::key_location::Location::Yubikey(y)) =
        key.location.as_ref().and_then(|l| l.location.as_ref())
    else {
        return None;
    };
    if !touch {
        return None;
    }
    let role = if context.role.is_empty() {
        key.name.as_str()
    } else {
        context.role.as_str()
    };
    Some(if context.gun.is_empty() {
        format!(
            "Touch the YubiKey (serial {}) to sign with {role}",
            y.serial
        )
    } else {
        format!(
            "Touch the YubiKey (serial {}) to sign {role} for {}",
            y.serial, context.gun
        )
    })
}

/// Checks a raw r||s signature over `digest` against the key's SPKI.
pub fn verify_raw(
    key: &v1::Key,
    digest: &[u8; 32],
    sig: &[u8],
) -> Result<[u8; 64], AgentClientError> {
    let bad = |why: String| AgentClientError::BadSignature {
        key_id: key.key_id.clone(),
        detail: why,
    };
    let raw: [u8; 64] = sig
        .try_into()
        .map_err(|_| bad(format!("{} bytes where 64 (r||s) were expected", sig.len())))?;
    let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&key.public_key_spki)
        .map_err(|e| bad(format!("the key's public key does not parse: {e}")))?;
    let signature = p256::ecdsa::Signature::from_slice(&raw).map_err(|e| bad(e.to_string()))?;
    vk.verify_prehash(digest, &signature)
        .map_err(|_| bad("it does not verify with the key's public key".into()))?;
    Ok(raw)
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Errors talking to the agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentClientError {
    /// Nothing answers on the socket.
    #[error("cannot reach the tufa agent at {socket} ({detail}): start it with `tufad --config FILE` or point --agent / TUFA_AGENT_SOCK at its socket")]
    NoAgent {
        /// The socket.
        socket: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The agent refused or failed the call; its message says why.
    #[error("{message}")]
    Agent {
        /// gRPC code.
        code: Code,
        /// The agent's message.
        message: String,
    },
    /// A signature that does not verify: nothing is published with it.
    #[error("the agent returned a bad signature for key {key_id}: {detail}")]
    BadSignature {
        /// The key.
        key_id: String,
        /// What is wrong.
        detail: String,
    },
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AgentClientError {
    /// The gRPC code, for callers that branch on it.
    pub fn code(&self) -> Option<Code> {
        match self {
            Self::Agent { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<tonic::Status> for AgentClientError {
    fn from(s: tonic::Status) -> Self {
        let message = match s.code() {
            Code::DeadlineExceeded => format!(
                "the agent did not answer in time ({}): check `tufa agent status`",
                s.message()
            ),
            Code::Unavailable if s.message().contains("transport") || s.message().is_empty() => {
                format!("the agent went away: {}", s.message())
            }
            _ => s.message().to_owned(),
        };
        Self::Agent {
            code: s.code(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(touch: v1::TouchPolicy, location: v1::key_location::Location) -> v1::Key {
        v1::Key {
            name: "alice".into(),
            touch_policy: touch as i32,
            location: Some(v1::KeyLocation {
                location: Some(location),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn touch_prompt_only_for_yubikey_keys_that_need_a_touch() {
        let yk = v1::key_location::Location::Yubikey(v1::YubiKeyLocation {
            serial: 42,
            slot: "82".into(),
        });
        let ctx = SignContext {
            gun: "example.com/app".into(),
            role: "targets".into(),
        };
        assert_eq!(
            touch_prompt(&key(v1::TouchPolicy::Always, yk.clone()), &ctx).unwrap(),
            "Touch the YubiKey (serial 42) to sign targets for example.com/app"
        );
        assert!(touch_prompt(&key(v1::TouchPolicy::Cached, yk.clone()), &ctx).is_some());
        assert!(touch_prompt(&key(v1::TouchPolicy::Never, yk), &ctx).is_none());
        let p11 = v1::key_location::Location::Pkcs11(v1::Pkcs11Location::default());
        assert!(touch_prompt(&key(v1::TouchPolicy::Always, p11), &ctx).is_none());
    }
}
