//! [`AgentClient`]: the calls to tufad over its socket, each signature checked before it is
//! handed on; [`LazyAgent`], connected on first use; [`KeySigner`], an agent key as a
//! [`DigestSigner`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use secrecy::{ExposeSecret as _, SecretString};
use tonic::transport::{Channel, Endpoint, Uri};
use tufa_proto::v1;
use tufa_proto::v1::agent_client::AgentClient as RawClient;

use crate::agent::error::AgentClientError;
use crate::agent::key::{touch_prompt, AgentKey, SignContext};
use crate::tuf::{DigestSigner, EcdsaSignature, Sha256Digest, SignError};

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

/// What the client tells the user while it waits on the agent (age-plugin-yubikey's
/// `callbacks.message`): the caller decides where the words go.
pub type Message = Arc<dyn Fn(&str) + Send + Sync>;

/// A connection to tufad.
#[derive(Clone)]
pub struct AgentClient {
    inner: RawClient<Channel>,
    socket: PathBuf,
    message: Option<Message>,
}

/// The agent at a socket, connected when first needed: reading trust data and staging changes
/// need no agent, so those commands skip the handshake (and work while it is down).
pub struct LazyAgent {
    socket: Option<PathBuf>,
    message: Option<Message>,
    client: tokio::sync::OnceCell<AgentClient>,
}

impl LazyAgent {
    /// The agent at `socket` (`None`: none configured, an error when a key is needed).
    pub fn new(socket: Option<PathBuf>) -> Self {
        Self {
            socket,
            message: None,
            client: tokio::sync::OnceCell::new(),
        }
    }

    /// As [`AgentClient::with_messages`], for the client once connected.
    pub fn with_messages(mut self, message: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.message = Some(Arc::new(message));
        self
    }

    /// The connected client.
    pub async fn get(&self) -> Result<&AgentClient, AgentClientError> {
        let socket = self.socket.as_deref().ok_or(AgentClientError::NoSocket)?;
        self.client
            .get_or_try_init(|| async {
                let mut client = AgentClient::connect(socket).await?;
                client.message = self.message.clone();
                Ok(client)
            })
            .await
    }
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
            message: None,
        })
    }

    /// Has `message` tell the user what a call waits for (a touch); without it the client
    /// says nothing.
    pub fn with_messages(mut self, message: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.message = Some(Arc::new(message));
        self
    }

    /// An agent key signing digests in `context`, for [`crate::tuf::root_certificate`].
    pub fn signer<'a>(&'a self, key: &'a AgentKey, context: SignContext) -> KeySigner<'a> {
        KeySigner::new(self, key, context)
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
    pub async fn list_keys(&self) -> Result<Vec<AgentKey>, AgentClientError> {
        self.inner
            .clone()
            .list_keys(timed(v1::ListKeysRequest {}, CALL_TIMEOUT))
            .await?
            .into_inner()
            .keys
            .into_iter()
            .map(AgentKey::try_from)
            .collect()
    }

    /// One key by ID, unique ID prefix or name, resolved by the agent (one rule for every caller).
    pub async fn key(&self, key: &str) -> Result<AgentKey, AgentClientError> {
        self.inner
            .clone()
            .get_key(timed(
                v1::GetKeyRequest {
                    key: key.to_owned(),
                },
                CALL_TIMEOUT,
            ))
            .await?
            .into_inner()
            .try_into()
    }

    /// Generates a key on a device.
    pub async fn generate(
        &self,
        req: v1::GenerateKeyRequest,
    ) -> Result<AgentKey, AgentClientError> {
        self.inner
            .clone()
            .generate_key(timed(req, CALL_TIMEOUT))
            .await?
            .into_inner()
            .try_into()
    }

    /// Generates a key called `name` where the agent's configuration puts new keys.
    pub async fn generate_named(&self, name: &str) -> Result<AgentKey, AgentClientError> {
        self.generate(v1::GenerateKeyRequest {
            name: name.to_owned(),
            ..Default::default()
        })
        .await
    }

    /// Imports a PEM private key into a device.
    pub async fn import(
        &self,
        name: &str,
        pem: Vec<u8>,
        passphrase: Option<&SecretString>,
    ) -> Result<AgentKey, AgentClientError> {
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
        self.inner
            .clone()
            .import_key(timed(req, CALL_TIMEOUT))
            .await?
            .into_inner()
            .try_into()
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
    ) -> Result<AgentKey, AgentClientError> {
        self.inner
            .clone()
            .set_certificate(timed(
                v1::SetCertificateRequest {
                    key: key.to_owned(),
                    certificate_der: der,
                },
                CALL_TIMEOUT,
            ))
            .await?
            .into_inner()
            .try_into()
    }

    /// Signs `data` (hashed here with SHA-256) with `key`, and checks the signature against the
    /// key's public key before returning it.
    pub async fn sign(
        &self,
        key: &AgentKey,
        data: &[u8],
        context: &SignContext,
    ) -> Result<EcdsaSignature, AgentClientError> {
        let sig = self
            .request_signature(key, Sha256Digest::of(data), context)
            .await?;
        // Over the data itself: ring's check, the fast one.
        crate::tuf::verify_p256(key.spki(), data, sig.as_bytes())
            .map_err(|why| bad_signature(key, why))?;
        Ok(sig)
    }

    /// Signs a SHA-256 digest with `key` and checks the signature.
    pub async fn sign_digest(
        &self,
        key: &AgentKey,
        digest: Sha256Digest,
        context: &SignContext,
    ) -> Result<EcdsaSignature, AgentClientError> {
        let sig = self.request_signature(key, digest, context).await?;
        crate::tuf::verify_p256_digest(key.spki(), &digest, &sig)
            .map_err(|why| bad_signature(key, why))?;
        Ok(sig)
    }

    /// The agent's signature over `digest`, 64 bytes but not yet checked.
    async fn request_signature(
        &self,
        key: &AgentKey,
        digest: Sha256Digest,
        context: &SignContext,
    ) -> Result<EcdsaSignature, AgentClientError> {
        // The card blocks until touched; say so first, since nothing else shows.
        let timeout = match touch_prompt(key, context) {
            Some(prompt) => {
                if let Some(message) = &self.message {
                    message(&prompt);
                }
                TOUCH_TIMEOUT
            }
            None => CALL_TIMEOUT,
        };
        let reply = self
            .inner
            .clone()
            .sign(timed(
                v1::SignRequest {
                    key: key.id.to_string(),
                    payload: Some(v1::sign_request::Payload::Sha256Digest(
                        digest.as_bytes().to_vec(),
                    )),
                    context: Some(v1::SignContext {
                        gun: context.gun.clone(),
                        role: context.role.clone(),
                    }),
                },
                timeout,
            ))
            .await?
            .into_inner();
        EcdsaSignature::from_raw(&reply.signature).map_err(|e| AgentClientError::BadSignature {
            key_id: key.id,
            detail: format!("{} bytes where 64 (r||s) were expected", e.len),
        })
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

    /// Adopts a key another tool made in a YubiKey slot (`yubikey:SERIAL/SLOT`) under `name`.
    pub async fn adopt(&self, key: &str, name: &str) -> Result<AgentKey, AgentClientError> {
        self.inner
            .clone()
            .adopt_key(timed(
                v1::AdoptKeyRequest {
                    key: key.to_owned(),
                    name: name.to_owned(),
                },
                CALL_TIMEOUT,
            ))
            .await?
            .into_inner()
            .try_into()
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

/// The error for a signature by `key` that is not one.
fn bad_signature(key: &AgentKey, why: impl std::fmt::Display) -> AgentClientError {
    AgentClientError::BadSignature {
        key_id: key.id,
        detail: format!("it does not verify with the key's public key: {why}"),
    }
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

/// An agent key signing digests in one context (a GUN and role): the agent edge's
/// [`DigestSigner`].
pub struct KeySigner<'a> {
    agent: &'a AgentClient,
    key: &'a AgentKey,
    context: SignContext,
}

impl<'a> KeySigner<'a> {
    /// `key`, signing through `agent` in `context`.
    pub fn new(agent: &'a AgentClient, key: &'a AgentKey, context: SignContext) -> Self {
        Self {
            agent,
            key,
            context,
        }
    }
}

impl DigestSigner for KeySigner<'_> {
    fn public_spki(&self) -> &[u8] {
        self.key.spki()
    }

    fn label(&self) -> String {
        self.key.label()
    }

    async fn sign(&self, digest: Sha256Digest) -> Result<EcdsaSignature, SignError> {
        Ok(self
            .agent
            .sign_digest(self.key, digest, &self.context)
            .await?)
    }
}
