//! The server: opening the agent, serving it on the socket, and a graceful shutdown.
//!
//! Layout:
//! - this file: [`open`], [`serve`] and the [`Shutdown`] signal with its grace deadline.
//! - [`socket`]: binding the socket safely, and the peer-credential check.
//! - [`connection`]: accepting: the peer check before HTTP/2, connections per uid, the back-off
//!   when descriptors run out, the idle deadline.
//! - [`service`]: the gRPC handlers.
//! - [`convert`]: proto <-> domain conversions.

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tufa_proto::v1::agent_server::AgentServer;

use crate::audit::{AuditError, AuditLog};
use crate::config::Config;
use crate::error::AgentError;
use crate::keyring::Keyring;

pub mod connection;
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
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The gRPC server failed.
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// How long calls in flight may take after a shutdown signal: longer than a YubiKey's touch
/// timeout (15 s), so a signature waiting for a touch still completes, but bounded, so a client
/// that never closes its connection cannot keep the agent alive.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// The largest request the agent decodes. The largest real ones (a PEM key, a certificate) are
/// a few KiB; the length is checked before the body is buffered, so a client cannot make the
/// agent hold megabytes per call.
pub const MAX_REQUEST: usize = 64 * 1024;

/// HTTP/2 streams a connection may open. As many as an HTTP/2 client assumes before it reads
/// the agent's settings (RFC 9113 recommends at least 100), so a client that starts many calls
/// at once has none refused; only `streams_per_connection` of them are read and handled at a
/// time, the others wait unread, held back by HTTP/2 flow control.
pub const MAX_STREAMS: u32 = 100;

/// Bytes a connection may send ahead of what the agent has read (HTTP/2 flow control): with
/// [`MAX_REQUEST`] and the limits, what a caller can make the agent buffer.
pub const CONNECTION_WINDOW: u32 = 256 * 1024;

/// How long one call may take, waiting for its turn included: longer than the client waits for
/// a touch (60 s), so the card or the client decides, but bounded.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Keeps the agent's memory (cached PINs, keys being imported) out of reach of the agent's own
/// user, as ssh-agent and gpg-agent do: no core dumps, no ptrace, no `/proc/PID/mem` or
/// `environ` reads (a `pin_env` PIN lives in the environment). Call it first thing.
pub fn protect_process() -> io::Result<()> {
    use rustix::process::{DumpableBehavior, Resource, Rlimit};
    rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    rustix::process::setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )?;
    Ok(())
}

/// Opens every configured device and the audit log; fails if one is missing or misconfigured.
pub async fn open(config: &Config) -> Result<Agent, ServerError> {
    let audit = match &config.audit_log {
        Some(path) => AuditLog::open(path)?,
        None => AuditLog::disabled(),
    };
    let devices = config.clone();
    let keyring = tokio::task::spawn_blocking(move || Keyring::open(&devices))
        .await
        .map_err(|e| AgentError::Internal(e.to_string()))??;
    Ok(Agent::new(
        keyring,
        audit,
        config.pin_cache_ttl,
        config.limits.device_calls_per_uid,
    ))
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
///
/// Limits (`config.limits`): connections per uid and the idle timeout at accept, calls handled
/// at once per connection (of at most [`MAX_STREAMS`] open), device work per uid in the
/// service, and [`MAX_REQUEST`], [`CONNECTION_WINDOW`] and [`CALL_TIMEOUT`] for every call.
pub async fn serve(
    config: &Config,
    socket: Socket,
    agent: Agent,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let peers = socket::PeerCheck::new(&config.allowed_uids);
    let limits = config.limits;
    let shutdown = Shutdown::new(shutdown, SHUTDOWN_GRACE);
    let (incoming, file) = socket.incoming(connection::Admission {
        allowed: peers.allowed().to_vec(),
        per_uid: limits.connections_per_uid,
        idle: limits.idle_timeout,
    });
    tracing::info!(socket = %config.socket.display(), "listening");
    let mut graceful = shutdown.clone();
    // A silent peer is pinged after a third of the idle timeout and given another third to
    // answer, so a live one always answers before the connection's idle deadline.
    let ping = limits.idle_timeout / 3;
    let service = AgentServer::new(agent).max_decoding_message_size(MAX_REQUEST);
    let server = tonic::transport::Server::builder()
        .max_concurrent_streams(MAX_STREAMS.max(limits.streams_per_connection))
        .concurrency_limit_per_connection(limits.streams_per_connection as usize)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .initial_stream_window_size(MAX_REQUEST as u32)
        .http2_keepalive_interval(Some(ping))
        .http2_keepalive_timeout(Some(ping))
        .timeout(CALL_TIMEOUT)
        .add_service(InterceptedService::new(service, move |req| {
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
