//! tufad as notary-server's signer: a second listener, off unless `[notary_signer]` is
//! configured, that speaks notary-signer's gRPC API over mutual TLS and keeps the server's
//! timestamp and snapshot keys on one device.
//!
//! It is a separate server on a TCP address: it never serves the agent's own API, and the Unix
//! socket never serves this one. It can see and use only keys it tagged itself
//! ([`crate::tag`]); a user's keys on the same token are invisible to it.
//!
//! Layout:
//! - this file: the checks at start ([`NotarySignerListener::prepare`]: an unattended device,
//!   TLS files, the address) and [`NotarySignerListener::serve`] with the health service.
//! - [`tls`]: the TLS configuration and the accept loop (handshake deadline, connection cap).
//! - [`service`]: the `KeyManagement` and `Signer` handlers.
//! - [`store`]: the server keys on the device: lookup, create-or-reuse, the used mark.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic_health::ServingStatus;
use tufa_proto::notary::key_management_server::KeyManagementServer;
use tufa_proto::notary::signer_server::SignerServer;

use crate::backend::{Backend, BackendKind, TouchPolicy};
use crate::config::{Config, NotarySigner};
use crate::error::AgentError;
use crate::pin::PinSource;
use crate::server::{Agent, Shutdown, CALL_TIMEOUT, SHUTDOWN_GRACE};

pub mod service;
pub mod store;
pub mod tls;

pub use service::SignerService;
pub use store::{ServerKey, ServerKeys};

/// The service names notary-server's health check asks about (its `const.go`), both of which
/// must be SERVING.
pub const HEALTH_SERVICES: [&str; 2] = [
    "grpc.health.v1.Health.KeyManagement",
    "grpc.health.v1.Health.Signer",
];

/// How often the device is checked for the health service (notary-server asks every 10 s).
pub const HEALTH_EVERY: Duration = Duration::from_secs(5);

/// The largest request decoded: a snapshot's canonical JSON grows with the delegations it
/// lists; grpc-go's own default limit.
pub const MAX_REQUEST: usize = 4 * 1024 * 1024;

/// Why the notary-signer listener cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The device cannot serve notary-server.
    #[error("[notary_signer] device '{device}' cannot serve notary-server: {reason}")]
    Device {
        /// The device's name.
        device: String,
        /// Why, and what to do.
        reason: String,
    },
    /// A TLS file cannot be used.
    #[error("[notary_signer] {key} {}: {message}", path.display())]
    Tls {
        /// The config key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The address cannot be listened on.
    #[error("[notary_signer] cannot listen on {addr}: {error}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The device failed while it was checked.
    #[error("[notary_signer] device check failed: {0}")]
    Agent(#[from] AgentError),
    /// The gRPC server failed.
    #[error("the notary-signer listener failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The listener, checked and bound, ready to serve.
pub struct NotarySignerListener {
    settings: NotarySigner,
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    service: SignerService,
}

impl NotarySignerListener {
    /// Checks that the device can serve unattended (a PIN from a file or the environment, no
    /// touch), loads the TLS files and binds the address; every refusal says why.
    pub async fn prepare(
        config: &Config,
        settings: &NotarySigner,
        agent: &Agent,
    ) -> Result<Self, SignerError> {
        let keyring = agent.keyring();
        let refuse = |reason: String| SignerError::Device {
            device: settings.device.clone(),
            reason,
        };
        let device = keyring
            .backends()
            .iter()
            .find(|b| b.name() == settings.device)
            .cloned()
            .ok_or_else(|| {
                let configured: Vec<_> = keyring.backends().iter().map(|b| b.name()).collect();
                refuse(format!(
                    "it is not one of the configured devices ({}): add a [[pkcs11]] section with token = \"{}\" (or name a configured one)",
                    configured.join(", "),
                    settings.device
                ))
            })?;
        unattended(config, device.as_ref()).map_err(refuse)?;
        let keys = Arc::new(ServerKeys::new(Arc::clone(&keyring), Arc::clone(&device)));
        let checked = Arc::clone(&keys);
        let attended = tokio::task::spawn_blocking(move || checked.attended_keys())
            .await
            .map_err(|e| AgentError::Internal(e.to_string()))??;
        if let Some(k) = attended.first() {
            return Err(refuse(format!(
                "server key {} ({} of {}) needs a touch before it signs, and notary-server sets no deadline on signer calls, so its requests would hang: rotate it out (`notary key rotate {} {} -r`) onto a key without a touch policy",
                k.key.id, k.tag.role, k.tag.gun, k.tag.gun, k.tag.role
            )));
        }
        let tls = tls::server_config(settings)?;
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|error| SignerError::Listen {
                    addr: settings.listen,
                    error,
                })?;
        Ok(Self {
            settings: settings.clone(),
            listener,
            acceptor: tokio_rustls::TlsAcceptor::from(tls),
            service: SignerService::new(keys, agent.audit_log()),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `KeyManagement`, `Signer` and the health service until `shutdown` resolves,
    /// then finishes the calls in flight for at most [`SHUTDOWN_GRACE`].
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), SignerError> {
        let shutdown = Shutdown::new(shutdown, SHUTDOWN_GRACE);
        let (reporter, health) = tonic_health::server::health_reporter();
        let keys = Arc::clone(self.service.keys());
        let watch = tokio::spawn(report_health(reporter, keys));
        let incoming = tls::accept(self.listener, self.acceptor);
        tracing::info!(
            listen = %self.settings.listen,
            device = %self.settings.device,
            "notary-signer listener: serving notary-server (mutual TLS)"
        );
        let mut graceful = shutdown.clone();
        let server = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .timeout(CALL_TIMEOUT)
            .add_service(health)
            .add_service(
                KeyManagementServer::new(self.service.clone()).max_decoding_message_size(64 * 1024),
            )
            .add_service(SignerServer::new(self.service).max_decoding_message_size(MAX_REQUEST))
            .serve_with_incoming_shutdown(incoming, async move { graceful.recv().await });
        let result = tokio::select! {
            r = server => r,
            () = shutdown.deadline() => {
                tracing::warn!("notary-signer connections still open {}s after the shutdown signal; exiting", SHUTDOWN_GRACE.as_secs());
                Ok(())
            }
        };
        watch.abort();
        tracing::info!("notary-signer listener stopped");
        Ok(result?)
    }
}

/// Why a device cannot sign without a person, if it cannot: notary-server sets no deadline
/// on signer calls, so a signature waiting for a PIN or a touch would hang its requests.
fn unattended(config: &Config, device: &dyn Backend) -> Result<(), String> {
    let hang = "notary-server sets no deadline on signer calls, so a signature waiting for it would hang notary-server's requests";
    let pin = match device.kind() {
        BackendKind::Pkcs11 => config
            .pkcs11
            .iter()
            .find(|p| p.token == device.name())
            .map(|p| p.pin.clone()),
        BackendKind::YubiKey => {
            let y = config
                .yubikeys
                .iter()
                .find(|y| y.serial.to_string() == device.name());
            if let Some(y) = y {
                if y.touch_policy != TouchPolicy::Never {
                    return Err(format!(
                        "its new keys get touch_policy = \"{:?}\", and {hang}: set touch_policy = \"never\" in its [[yubikey]] section",
                        y.touch_policy
                    )
                    .to_lowercase());
                }
            }
            y.map(|y| y.pin.clone())
        }
    };
    match pin {
        Some(PinSource::File(_) | PinSource::Env(_)) => {}
        _ => {
            return Err(format!(
                "its PIN is not configured, so it would wait for `tufa agent unlock`, and {hang}: give its section a pin_file (or pin_env)"
            ))
        }
    }
    if device.kind() == BackendKind::YubiKey {
        return Err("tufad keeps notary-server keys on PKCS#11 tokens only (a YubiKey has no room for a tag per key yet): name a PKCS#11 token (an HSM, or a TPM through tpm2-pkcs11)".into());
    }
    Ok(())
}

/// Keeps both health names SERVING while the device answers, NOT_SERVING while it does not,
/// so notary-server's `/_notary_server/health` tells an operator the HSM is gone.
async fn report_health(reporter: tonic_health::server::HealthReporter, keys: Arc<ServerKeys>) {
    let mut last = None;
    loop {
        let probe = Arc::clone(&keys);
        let ok = tokio::task::spawn_blocking(move || probe.device().server_tags().is_ok())
            .await
            .unwrap_or(false);
        let status = if ok {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(ok) {
            for name in HEALTH_SERVICES {
                reporter.set_service_status(name, status).await;
            }
            if ok {
                tracing::info!("notary-signer health: SERVING");
            } else {
                tracing::warn!("notary-signer health: NOT_SERVING (the device does not answer)");
            }
            last = Some(ok);
        }
        tokio::time::sleep(HEALTH_EVERY).await;
    }
}
