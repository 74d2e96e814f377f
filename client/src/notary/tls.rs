//! TLS for notary-server: rustls with ring, platform roots plus the server's CA, client certs.

use std::error::Error as StdError;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ClientConfig;

use super::NotaryError;

const CA_HINT: &str = "give the PEM certificate of the CA that issued the server's certificate";
const CERT_HINT: &str = "give the PEM client certificate (*.cert) and its key (*.key)";

/// The rustls configuration for one client: which roots, which client certificate.
pub(crate) fn client_config(
    ca_file: Option<&Path>,
    client_cert: Option<(&Path, &Path)>,
) -> Result<ClientConfig, NotaryError> {
    // ring, not aws-lc-rs: no C toolchain beyond what ring needs, and no global default to set.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let extra_roots = match ca_file {
        Some(path) => read_certs(path, "CA file", CA_HINT)?,
        None => Vec::new(),
    };
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
            .map_err(|e| NotaryError::TlsFile {
                what: "CA file",
                path: ca_file.map(Path::to_path_buf).unwrap_or_default(),
                reason: e.to_string(),
                hint: CA_HINT,
            })?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match client_cert {
        Some((cert, key)) => {
            let chain = read_certs(cert, "client certificate", CERT_HINT)?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| NotaryError::TlsFile {
                what: "client key",
                path: key.to_path_buf(),
                reason: e.to_string(),
                hint: CERT_HINT,
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| NotaryError::TlsFile {
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
) -> Result<Vec<CertificateDer<'static>>, NotaryError> {
    let failed = |reason: String| NotaryError::TlsFile {
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
        let e = client_config(Some(&missing), None).unwrap_err().to_string();
        assert!(e.contains("CA file") && e.contains("nope.crt"), "{e}");
        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, "not a pem").unwrap();
        let e = client_config(Some(&empty), None).unwrap_err().to_string();
        assert!(e.contains("no PEM CERTIFICATE"), "{e}");
    }
}
