//! The listener's TLS: the server configuration (TLS 1.2 and 1.3, a client certificate that
//! chains to `client_ca` required), and the accept loop that hands tonic only connections
//! whose handshake succeeded.
//!
//! A caller without a valid client certificate gets nothing: its handshake fails and the
//! connection is closed before any HTTP/2. Handshakes have a deadline and run beside each
//! other, so a silent client cannot hold the listener; connections are capped.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};

use super::SignerError;
use crate::config::NotarySigner;
use crate::server::connection::{is_scarce, Throttle};

/// How long a client has to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections open at once (handshakes included): notary-server keeps one; a few servers
/// behind one hostname, health checks and restarts need a few more.
pub const MAX_CONNECTIONS: usize = 64;

/// The first pause after a failed accept; it doubles up to a second.
const ACCEPT_PAUSE: Duration = Duration::from_millis(20);

/// The TLS server configuration of `[notary_signer]`: its certificate chain and key, and the
/// CA every client certificate must chain to. Errors name the file and what to do.
pub fn server_config(s: &NotarySigner) -> Result<Arc<ServerConfig>, SignerError> {
    let tls = |key: &'static str, path: &Path, message: String| SignerError::Tls {
        key,
        path: path.to_owned(),
        message,
    };
    let chain = certificates(&s.tls_cert).map_err(|m| tls("tls_cert", &s.tls_cert, m))?;
    let key = PrivateKeyDer::from_pem_file(&s.tls_key).map_err(|e| {
        tls(
            "tls_key",
            &s.tls_key,
            format!("no PEM private key (PKCS#8, SEC1 or RSA) could be read: {e}"),
        )
    })?;
    let mut roots = RootCertStore::empty();
    for ca in certificates(&s.client_ca).map_err(|m| tls("client_ca", &s.client_ca, m))? {
        roots.add(ca).map_err(|e| {
            tls(
                "client_ca",
                &s.client_ca,
                format!("not a usable CA certificate: {e}"),
            )
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| tls("client_ca", &s.client_ca, e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| tls("tls_cert", &s.tls_cert, e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            tls(
                "tls_key",
                &s.tls_key,
                format!("does not go with tls_cert {}: {e}", s.tls_cert.display()),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Every PEM certificate in a file; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

/// A connection whose TLS handshake succeeded; gives its place back when it closes.
pub struct Connection {
    tls: TlsStream<TcpStream>,
    _place: OwnedSemaphorePermit,
}

/// Accepts on `listener` until the returned stream is dropped; yields only connections whose
/// client presented a certificate that chains to the configured CA.
pub fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> ReceiverStream<io::Result<Connection>> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(accept_loop(listener, acceptor, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<io::Result<Connection>>,
) {
    let places = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let refused = Arc::new(Mutex::new(Throttle::default()));
    let mut full = Throttle::default();
    let mut pause = ACCEPT_PAUSE;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = tx.closed() => return,
        };
        let (tcp, addr) = match accepted {
            Ok(a) => {
                pause = ACCEPT_PAUSE;
                a
            }
            Err(e) => {
                if is_scarce(&e) {
                    tracing::warn!(error = %e, "notary-signer listener: out of file descriptors; new connections wait");
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = tx.closed() => return,
                }
                pause = (pause * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(place) = Arc::clone(&places).try_acquire_owned() else {
            if let Some(more) = full.due() {
                tracing::warn!(%addr, refused_since_last = more, "notary-signer listener: {MAX_CONNECTIONS} connections open; closed a new one");
            }
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, tx, refused) = (acceptor.clone(), tx.clone(), Arc::clone(&refused));
        tokio::spawn(async move {
            let why = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send(Ok(Connection { tls, _place: place })).await;
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no TLS handshake within {} s", HANDSHAKE_TIMEOUT.as_secs()),
            };
            let due = refused.lock().unwrap_or_else(|p| p.into_inner()).due();
            if let Some(more) = due {
                tracing::warn!(%addr, refused_since_last = more, "notary-signer listener: refused a client at the TLS handshake: {why} (callers need a client certificate issued by client_ca)");
            }
        });
    }
}

impl Connected for Connection {
    type ConnectInfo = TlsConnectInfo<TcpConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.tls.connect_info()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }
}

/// The subject of a caller's client certificate, as RFC 4514 text (for the audit log).
pub fn peer_subject<T>(req: &tonic::Request<T>) -> String {
    use x509_cert::der::Decode as _;
    let Some(certs) = req.peer_certs() else {
        return "(no client certificate)".into();
    };
    match certs
        .first()
        .map(|c| x509_cert::Certificate::from_der(c.as_ref()))
    {
        Some(Ok(cert)) => cert.tbs_certificate().subject().to_string(),
        Some(Err(_)) => "(a client certificate that does not parse)".into(),
        None => "(no client certificate)".into(),
    }
}
