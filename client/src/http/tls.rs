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

use super::refusal::{failure_of, CertFacts, TlsFailure};

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
/// Accepts what one verifier over both sets of roots accepts: a chain ending at a CA file
/// passes either way, a refusal other than "unknown issuer" stands whatever the roots, and
/// anything else goes to the platform verifier, which has both. Besides, like Go's verifier, a
/// server certificate that is itself in a CA file (a self-signed server) is accepted after the
/// name and validity checks ([`CertFacts::check_pinned`]).
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

    /// Whether `end_entity` is, byte for byte, one of the CA files' certificates.
    fn is_pinned(&self, end_entity: &CertificateDer<'_>) -> bool {
        self.extra_roots
            .iter()
            .any(|root| root.as_ref() == end_entity.as_ref())
    }

    /// The chain check: the CA files first, then (only when the chain leads to none of them) the
    /// platform's roots with the CA files.
    fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(ca_files) = &self.ca_files {
            match ca_files.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Ok(ok) => return Ok(ok),
                // Expiry, a wrong name, a CA as the server's own certificate: no other roots
                // change that, so the answer stands (and the system bundle is not loaded).
                Err(e) if !is_unknown_issuer(&e) => return Err(e),
                Err(_) => {}
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
}

fn is_unknown_issuer(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    )
}

impl ServerCertVerifier for CaFilesThenPlatform {
    /// A server certificate that is itself in a CA file (a self-signed notary-server, with its
    /// certificate handed to clients as the CA) is accepted after the checks Go's verifier makes
    /// of it, as the notary CLI and docker accept it; webpki alone refuses it as a CA used as an
    /// end entity. Every other certificate goes through webpki's chain check unchanged.
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let facts = CertFacts::read(end_entity);
        if let Some(facts) = facts.as_ref().filter(|_| self.is_pinned(end_entity)) {
            facts.check_pinned(end_entity, server_name, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.verify_chain(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match &facts {
                Some(facts) => facts.classify(&e, server_name, now).into(),
                None => e,
            })
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

/// What failed, if TLS failed somewhere in `err`'s chain.
pub(crate) fn tls_failure(err: &(dyn StdError + 'static)) -> Option<TlsFailure> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(failure_of(tls));
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
        assert!(tls_failure(&io)
            .unwrap()
            .to_string()
            .contains("UnknownIssuer"));
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

    use std::path::Path;
    use std::time::Duration;

    use tufa_testkit::pki::{fingerprint, make_ca, make_cert, make_leaf, make_self_signed};

    /// The verifier `client_config` builds for these CA files.
    fn trusting(files: &[PathBuf]) -> CaFilesThenPlatform {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = files
            .iter()
            .flat_map(|f| read_certs(f, "CA file", CA_HINT).unwrap())
            .collect();
        CaFilesThenPlatform::new(roots, provider).unwrap()
    }

    fn der(dir: &Path, name: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(dir.join(format!("{name}.crt"))).unwrap()
    }

    fn days_from_now(days: i64) -> UnixTime {
        let now = UnixTime::now().as_secs() as i64;
        UnixTime::since_unix_epoch(Duration::from_secs((now + days * 86_400) as u64))
    }

    /// What the verifier says of `cert` presented by `host`, `days` from now.
    fn check(
        v: &CaFilesThenPlatform,
        cert: &CertificateDer<'_>,
        host: &str,
        days: i64,
    ) -> Result<(), TlsFailure> {
        let name = ServerName::try_from(host.to_owned()).unwrap();
        v.verify_server_cert(cert, &[], &name, &[], days_from_now(days))
            .map(drop)
            .map_err(|e| failure_of(&e))
    }

    #[test]
    fn a_self_signed_server_certificate_given_as_the_ca_is_accepted_as_go_accepts_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_self_signed(d, "notary", "127.0.0.1", "IP:127.0.0.1");
        let v = trusting(&[d.join("notary.crt")]);
        let cert = der(d, "notary");
        assert_eq!(check(&v, &cert, "127.0.0.1", 0), Ok(()));

        // The usual name and validity checks still apply.
        let e = check(&v, &cert, "localhost", 0).unwrap_err();
        assert_eq!(
            e,
            TlsFailure::WrongName {
                expected: "localhost".into(),
                presented: vec!["IP:127.0.0.1".into()],
            }
        );
        assert_eq!(
            e.to_string(),
            "the server's certificate is for IP:127.0.0.1, not for localhost"
        );
        let e = check(&v, &cert, "127.0.0.1", 40).unwrap_err();
        assert!(matches!(e, TlsFailure::Expired { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("the server's certificate expired at 20"),
            "{e}"
        );
        let e = check(&v, &cert, "127.0.0.1", -2).unwrap_err();
        assert!(matches!(e, TlsFailure::NotYetValid { .. }), "{e:?}");

        // A pinned certificate that is not for servers is refused, as Go refuses it.
        make_cert(
            d,
            "client-only",
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-addext",
                "extendedKeyUsage=clientAuth",
            ],
        );
        let v = trusting(&[d.join("client-only.crt")]);
        let e = check(&v, &der(d, "client-only"), "127.0.0.1", 0).unwrap_err();
        assert_eq!(e, TlsFailure::NotForServers);
    }

    #[test]
    fn a_ca_certificate_that_is_not_the_pinned_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_self_signed(d, "pinned", "127.0.0.1", "IP:127.0.0.1");
        make_self_signed(d, "impostor", "127.0.0.1", "IP:127.0.0.1");
        let v = trusting(&[d.join("pinned.crt")]);
        let e = check(&v, &der(d, "impostor"), "127.0.0.1", 0).unwrap_err();
        assert_eq!(
            e,
            TlsFailure::CaAsServerCertificate {
                fingerprint: fingerprint(d, "impostor"),
            }
        );
        assert!(
            e.to_string()
                .contains("is a CA certificate (basicConstraints CA:TRUE")
                && e.to_string().contains(&fingerprint(d, "impostor")),
            "{e}"
        );

        // A CA certificate issued by a trusted CA is a CA, not a server's certificate.
        make_ca(d, "ca", "tufa test CA");
        make_cert(
            d,
            "sub-ca",
            &[
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ],
        );
        let v = trusting(&[d.join("ca.crt")]);
        let e = check(&v, &der(d, "sub-ca"), "127.0.0.1", 0).unwrap_err();
        assert!(
            matches!(e, TlsFailure::CaAsServerCertificate { .. }),
            "{e:?}"
        );
        // ... while the CA's leaves pass, and only by the names they list.
        make_leaf(d, "ca", "server");
        assert_eq!(check(&v, &der(d, "server"), "127.0.0.1", 0), Ok(()));
        assert_eq!(check(&v, &der(d, "server"), "localhost", 0), Ok(()));
        let e = check(&v, &der(d, "server"), "notary.example.com", 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the server's certificate is for DNS:localhost, DNS:server, IP:127.0.0.1, IP:::1, \
             not for notary.example.com"
        );
        let e = check(&v, &der(d, "server"), "127.0.0.1", 40).unwrap_err();
        assert!(matches!(e, TlsFailure::Expired { .. }), "{e:?}");
    }

    #[test]
    fn an_unknown_issuer_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_ca(d, "ca", "tufa test CA");
        make_ca(d, "other", "tufa other CA");
        make_leaf(d, "other", "server");
        let v = trusting(&[d.join("ca.crt")]);
        let e = check(&v, &der(d, "server"), "127.0.0.1", 0).unwrap_err();
        assert_eq!(
            e,
            TlsFailure::UnknownIssuer {
                issuer: "CN=tufa other CA".into()
            }
        );
        let fix = e.fix(&super::super::Peer::NotaryServer, "127.0.0.1:4443");
        assert!(
            fix.contains("--tls-ca, or $DOCKER_CONFIG/tls/127.0.0.1:4443/ca.crt"),
            "{fix}"
        );
    }
}
