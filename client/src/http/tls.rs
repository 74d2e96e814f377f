//! TLS with rustls and ring: platform roots plus CA files, client certificates, or (for docker's
//! insecure registries) no verification at all.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

const CA_HINT: &str = "give the PEM certificate of the CA that issued the server's certificate";
const CERT_HINT: &str = "give the PEM client certificate (*.cert) and its key (*.key)";

/// How the server's certificate is checked.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Verify<'a> {
    /// Against the platform's roots plus these PEM CA files.
    Roots(&'a [PathBuf]),
    /// Not at all: docker's `InsecureSkipVerify` for insecure registries (loopback by default).
    Nothing,
}

/// A CA or client certificate file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the {what} {}: {reason}; {hint}", path.display())]
pub struct TlsFileError {
    /// Which file: "CA file", "client certificate", "client key".
    pub what: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
    /// How to fix it.
    pub hint: &'static str,
}

/// The rustls configuration for one client: which roots, which client certificate.
pub(crate) fn client_config(
    verify: Verify<'_>,
    client_cert: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsFileError> {
    // ring, not aws-lc-rs: no C toolchain beyond what ring needs, and no global default to set.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Roots(ca_files) => {
            let mut extra_roots = Vec::new();
            for path in ca_files {
                extra_roots.extend(read_certs(path, "CA file", CA_HINT)?);
            }
            Arc::new(
                CaFilesThenPlatform::new(extra_roots, provider.clone()).map_err(|reason| {
                    TlsFileError {
                        what: "CA file",
                        path: ca_files.first().cloned().unwrap_or_default(),
                        reason,
                        hint: CA_HINT,
                    }
                })?,
            )
        }
        Verify::Nothing => Arc::new(NoVerification(provider.clone())),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match client_cert {
        Some((cert, key)) => {
            let chain = read_certs(cert, "client certificate", CERT_HINT)?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsFileError {
                what: "client key",
                path: key.to_path_buf(),
                reason: e.to_string(),
                hint: CERT_HINT,
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| TlsFileError {
                    what: "client key",
                    path: key.to_path_buf(),
                    reason: format!("it does not go with {} ({e})", cert.display()),
                    hint: CERT_HINT,
                })?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certs(
    path: &Path,
    what: &'static str,
    hint: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let failed = |reason: String| TlsFileError {
        what,
        path: path.to_path_buf(),
        reason,
        hint,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(e.to_string()))?;
    if certs.is_empty() {
        return Err(failed("it holds no PEM CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The platform's roots plus CA files, with the platform's roots loaded only when a server's
/// chain does not lead to a CA file: reading the system bundle costs more than a whole loopback
/// `tufa sign`, and servers with their own CA (the usual notary set-up) never need it.
///
/// Accepts exactly what one verifier over both sets of roots accepts: a chain ending at a CA
/// file passes either way, and anything else goes to the platform verifier, which has both.
#[derive(Debug)]
struct CaFilesThenPlatform {
    /// A verifier over the CA files alone; `None` without CA files.
    ca_files: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    /// The CA files again, for the platform verifier.
    extra_roots: Vec<CertificateDer<'static>>,
    /// Built on first use; an error is kept as text (rustls errors are not `Clone`).
    platform: OnceLock<Result<rustls_platform_verifier::Verifier, String>>,
    provider: Arc<CryptoProvider>,
}

impl CaFilesThenPlatform {
    fn new(
        extra_roots: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let ca_files = if extra_roots.is_empty() {
            None
        } else {
            let mut store = rustls::RootCertStore::empty();
            for cert in &extra_roots {
                store.add(cert.clone()).map_err(|e| e.to_string())?;
            }
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(store),
                provider.clone(),
            )
            .build()
            .map_err(|e| e.to_string())?;
            Some(verifier)
        };
        Ok(Self {
            ca_files,
            extra_roots,
            platform: OnceLock::new(),
            provider,
        })
    }

    fn platform(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.platform
            .get_or_init(|| {
                rustls_platform_verifier::Verifier::new_with_extra_roots(
                    self.extra_roots.clone(),
                    self.provider.clone(),
                )
                .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| {
                rustls::Error::General(format!("cannot load the system's CA certificates: {e}"))
            })
    }
}

impl ServerCertVerifier for CaFilesThenPlatform {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(ca_files) = &self.ca_files {
            if let Ok(ok) = ca_files.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                return Ok(ok);
            }
        }
        self.platform()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Accepts any certificate, as docker does for insecure registries; signatures on the handshake
/// are still checked, so the peer holds the key of the certificate it sent.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// rustls's complaint, if TLS is what failed somewhere in `err`'s chain.
pub(crate) fn tls_failure(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // io::Error::source skips its payload (hyper-util nests io::Errors), so step into it.
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_errors_are_found_inside_io_errors() {
        // As hyper-util reports it: io::Error(Other) around io::Error(InvalidData) around rustls.
        let io = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert!(tls_failure(&io).unwrap().contains("UnknownIssuer"));
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(tls_failure(&plain).is_none());
    }

    #[test]
    fn missing_and_empty_ca_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.crt");
        let e = client_config(Verify::Roots(std::slice::from_ref(&missing)), None).unwrap_err();
        assert!(e.what == "CA file" && e.path == missing, "{e:?}");
        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, "not a pem").unwrap();
        let e = client_config(Verify::Roots(&[empty]), None).unwrap_err();
        assert!(e.reason.contains("no PEM CERTIFICATE"), "{e:?}");
        // Without verification no CA is read at all.
        assert!(client_config(Verify::Nothing, None).is_ok());
    }
}
