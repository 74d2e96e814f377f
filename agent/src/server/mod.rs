//! The server: opening the agent, serving it on the socket, and a graceful shutdown.
//!
//! Layout:
//! - this file: [`open`], [`serve`] and the [`Shutdown`] signal with its grace deadline.
//! - [`socket`]: binding the socket safely, and the peer-credential check.
//! - [`service`]: the gRPC handlers.
//! - [`convert`]: proto <-> domain conversions.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;
use tufa_proto::v1::agent_server::AgentServer;

use crate::audit::AuditLog;
use crate::config::Config;
use crate::error::AgentError;
use crate::keyring::Keyring;

pub mod convert;
pub mod service;
pub mod socket;

pub use service::Agent;
pub use socket::{bind, Socket, SocketError};

/// Why the agent cannot start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A device could not be opened.
    #[error(transparent)]
    Device(#[from] AgentError),
    /// The socket cannot be used.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The audit log cannot be opened.
    #[error("cannot open the audit log {path}: {error}")]
    Audit {
        /// The log path.
        path: PathBuf,
        /// The error opening it.
        error: io::Error,
    },
    /// The gRPC server failed.
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// How long calls in flight may take after a shutdown signal: longer than a YubiKey's touch
/// timeout (15 s), so a signature waiting for a touch still completes, but bounded, so a client
/// that never closes its connection cannot keep the agent alive.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Opens every configured device and the audit log; fails if one is missing or misconfigured.
pub async fn open(config: &Config) -> Result<Agent, ServerError> {
    let audit = match &config.audit_log {
        Some(path) => AuditLog::open(path).map_err(|error| ServerError::Audit {
            path: path.clone(),
            error,
        })?,
        None => AuditLog::disabled(),
    };
    let devices = config.clone();
    let keyring = tokio::task::spawn_blocking(move || Keyring::open(&devices))
        .await
        .map_err(|e| AgentError::Internal(e.to_string()))??;
    Ok(Agent::new(keyring, audit, config.pin_cache_ttl))
}

/// The shutdown signal as every part of the server sees it (mini-redis's `Shutdown`): the
/// server stops accepting and drains when it comes, the deadline gives up [`SHUTDOWN_GRACE`]
/// later.
#[derive(Clone, Debug)]
pub struct Shutdown {
    signalled: watch::Receiver<bool>,
    grace: Duration,
}

impl Shutdown {
    /// Watches `signal`; calls in flight then get `grace` to finish.
    pub fn new(signal: impl Future<Output = ()> + Send + 'static, grace: Duration) -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            let _ = tx.send(true);
        });
        Self {
            signalled: rx,
            grace,
        }
    }

    /// Resolves once the signal has come.
    pub async fn recv(&mut self) {
        let _ = self.signalled.wait_for(|stop| *stop).await;
    }

    /// Resolves the grace period after the signal.
    pub async fn deadline(mut self) {
        self.recv().await;
        tokio::time::sleep(self.grace).await;
    }
}

/// Serves the agent on the bound socket until `shutdown` resolves, then finishes the calls in
/// flight (for at most [`SHUTDOWN_GRACE`]) and removes the socket.
pub async fn serve(
    config: &Config,
    socket: Socket,
    agent: Agent,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let peers = socket::PeerCheck::new(&config.allowed_uids);
    let shutdown = Shutdown::new(shutdown, SHUTDOWN_GRACE);
    let (incoming, file) = socket.incoming();
    tracing::info!(socket = %config.socket.display(), "listening");
    let mut graceful = shutdown.clone();
    let server = tonic::transport::Server::builder()
        .add_service(AgentServer::with_interceptor(agent, move |req| {
            peers.check(req)
        }))
        .serve_with_incoming_shutdown(incoming, async move { graceful.recv().await });
    let result = tokio::select! {
        r = server => r,
        () = shutdown.deadline() => {
            tracing::warn!("connections still open {}s after the shutdown signal; exiting", SHUTDOWN_GRACE.as_secs());
            Ok(())
        }
    };
    file.remove();
    tracing::info!("stopped");
    Ok(result?)
}
