//! Why a server's certificate, or the TLS handshake, was refused: in words, with what to do.
//!
//! rustls and webpki say `UnknownIssuer` or `Other(OtherError(CaUsedAsEndEntity))`; a user needs
//! "the server's certificate is a CA certificate that is not in your CA file" and the fix. The
//! verifier classifies its own refusals here, where it still has the certificate to describe
//! (names, issuer, validity, fingerprint), and hands the words on inside the rustls error.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, OtherError};
use sha2::{Digest as _, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use x509_cert::der::oid::db::rfc5280;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::Decode as _;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, SubjectAltName};
use x509_cert::Certificate;

use super::error::Peer;

/// Why a TLS connection to a server failed, as the user can act on it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server's own certificate is a CA certificate (basicConstraints CA:TRUE), and it is not
    /// itself one of the certificates in the CA files.
    CaAsServerCertificate {
        /// Its SHA-256 fingerprint, as `openssl x509 -fingerprint -sha256` prints it.
        fingerprint: String,
    },
    /// The server's certificate expired.
    Expired {
        /// Its notAfter (RFC 3339).
        not_after: String,
        /// The time it was checked at (RFC 3339).
        now: String,
    },
    /// The server's certificate is not valid yet.
    NotYetValid {
        /// Its notBefore (RFC 3339).
        not_before: String,
        /// The time it was checked at (RFC 3339).
        now: String,
    },
    /// The server's certificate does not name the host tufa connected to.
    WrongName {
        /// The host in the URL.
        expected: String,
        /// The names in its subjectAltName, as `DNS:…` and `IP:…`.
        presented: Vec<String>,
    },
    /// The server's certificate does not lead to a trusted CA.
    UnknownIssuer {
        /// Its issuer's name (RFC 4514), or "" when it could not be read.
        issuer: String,
    },
    /// The server's certificate is not for TLS servers (extendedKeyUsage without serverAuth).
    NotForServers,
    /// A signature in the server's chain does not verify.
    BadSignature,
    /// The server did not answer in TLS at all (a plain-HTTP server, say).
    NotTls,
    /// Anything else, in rustls's words.
    Other(String),
}

impl TlsFailure {
    /// Whether the certificate was refused (rather than the handshake failing otherwise).
    pub fn is_certificate(&self) -> bool {
        !matches!(self, Self::NotTls | Self::Other(_))
    }

    /// What to do about it, for a server of kind `peer` at `host_port`.
    pub(crate) fn fix(&self, peer: &Peer, host_port: &str) -> String {
        let ca_setting = match peer {
            Peer::NotaryServer => format!("--tls-ca, or $DOCKER_CONFIG/tls/{host_port}/ca.crt"),
            Peer::Registry => format!("$DOCKER_CONFIG/tls/{host_port}/ca.crt"),
        };
        match self {
            Self::CaAsServerCertificate { .. } => format!(
                "If the server really uses this self-signed certificate (compare the fingerprint \
                 with `openssl x509 -noout -fingerprint -sha256 -in <its certificate>` on the \
                 server), give tufa that very certificate as the CA ({ca_setting}); otherwise \
                 this is not the server you trust"
            ),
            Self::Expired { .. } => "Renew the server's certificate (or, if this machine's \
                                     clock is wrong, correct it)"
                .into(),
            Self::NotYetValid { .. } => "Check the clock of this machine and of the one that \
                                         made the certificate"
                .into(),
            Self::WrongName { expected, .. } => format!(
                "Connect with a name the certificate lists, or reissue it with \
                 subjectAltName={}:{expected}",
                if expected.parse::<IpAddr>().is_ok() {
                    "IP"
                } else {
                    "DNS"
                }
            ),
            Self::UnknownIssuer { .. } => match peer {
                Peer::NotaryServer => format!(
                    "Give tufa the CA that issued the server's certificate ({ca_setting}), or use \
                     http:// if the server has no TLS"
                ),
                Peer::Registry => {
                    format!("Put the CA that issued the registry's certificate in {ca_setting}")
                }
            },
            Self::NotForServers => {
                "Reissue the server's certificate with extendedKeyUsage=serverAuth".into()
            }
            Self::BadSignature => "The certificate was altered or issued wrongly: reissue it, \
                                   and check what sits between you and the server"
                .into(),
            Self::NotTls => match peer {
                Peer::NotaryServer => {
                    "If the server has no TLS, give its URL with http:// instead".into()
                }
                Peer::Registry => "The registry must serve https: tufa, like docker, uses plain \
                                   http only for registries on this machine (localhost, \
                                   127.0.0.0/8, ::1)"
                    .into(),
            },
            Self::Other(_) => match peer {
                Peer::NotaryServer => format!(
                    "Check the server's TLS set-up and the CA given to tufa ({ca_setting}), or \
                     use http:// if the server has no TLS"
                ),
                Peer::Registry => {
                    format!("Check the registry's TLS set-up and the CA in {ca_setting}")
                }
            },
        }
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CaAsServerCertificate { fingerprint } => write!(
                f,
                "the server's certificate is a CA certificate (basicConstraints CA:TRUE, SHA-256 \
                 fingerprint {fingerprint}), and it is not itself one of the certificates tufa \
                 was told to trust"
            ),
            Self::Expired { not_after, now } => {
                write!(
                    f,
                    "the server's certificate expired at {not_after} (it is now {now})"
                )
            }
            Self::NotYetValid { not_before, now } => write!(
                f,
                "the server's certificate is not valid before {not_before} (it is now {now})"
            ),
            Self::WrongName {
                expected,
                presented,
            } if presented.is_empty() => write!(
                f,
                "the server's certificate names no host in its subjectAltName, so it is not \
                 valid for {expected} (its common name is not used, as in Go and browsers)"
            ),
            Self::WrongName {
                expected,
                presented,
            } => write!(
                f,
                "the server's certificate is for {}, not for {expected}",
                presented.join(", ")
            ),
            Self::UnknownIssuer { issuer } if issuer.is_empty() => f.write_str(
                "the server's certificate was not issued by any CA tufa trusts (unknown issuer)",
            ),
            Self::UnknownIssuer { issuer } => write!(
                f,
                "the server's certificate was issued by \"{issuer}\", which is not a CA tufa \
                 trusts (unknown issuer)"
            ),
            Self::NotForServers => f.write_str(
                "the server's certificate is not for TLS servers (its extendedKeyUsage lacks \
                 serverAuth)",
            ),
            Self::BadSignature => {
                f.write_str("a signature in the server's certificate chain does not verify")
            }
            Self::NotTls => {
                f.write_str("the server did not answer in TLS (is it a plain-HTTP server?)")
            }
            Self::Other(reason) => f.write_str(reason),
        }
    }
}

/// A [`TlsFailure`] as a rustls error, so it reaches the caller through hyper and reqwest.
#[derive(Debug)]
pub(crate) struct Refused(pub TlsFailure);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Refused {}

impl From<TlsFailure> for rustls::Error {
    fn from(failure: TlsFailure) -> Self {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Refused(
            failure,
        )))))
    }
}

/// What a failed handshake's rustls error means: the verifier's own words if it classified it,
/// else rustls's error read without the certificate at hand.
pub(crate) fn failure_of(err: &rustls::Error) -> TlsFailure {
    match err {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            match inner.downcast_ref::<Refused>() {
                Some(Refused(failure)) => failure.clone(),
                None => TlsFailure::Other(err.to_string()),
            }
        }
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
            TlsFailure::NotTls
        }
        other => TlsFailure::Other(other.to_string()),
    }
}

/// What tufa reads from a server's certificate to check a pinned one and to word a refusal.
pub(crate) struct CertFacts {
    fingerprint: String,
    issuer: String,
    is_ca: bool,
    names: Vec<String>,
    not_before: i64,
    not_after: i64,
    /// No extendedKeyUsage, or one with serverAuth or anyExtendedKeyUsage.
    for_servers: bool,
    /// The OID of a critical extension no verifier here knows, if any.
    unknown_critical: Option<ObjectIdentifier>,
}

/// Critical extensions Go's verifier (and webpki) handle; any other one refuses a certificate.
const KNOWN_EXTENSIONS: [ObjectIdentifier; 11] = [
    rfc5280::ID_CE_BASIC_CONSTRAINTS,
    rfc5280::ID_CE_KEY_USAGE,
    rfc5280::ID_CE_EXT_KEY_USAGE,
    rfc5280::ID_CE_SUBJECT_ALT_NAME,
    rfc5280::ID_CE_NAME_CONSTRAINTS,
    rfc5280::ID_CE_CERTIFICATE_POLICIES,
    rfc5280::ID_CE_POLICY_CONSTRAINTS,
    rfc5280::ID_CE_POLICY_MAPPINGS,
    rfc5280::ID_CE_INHIBIT_ANY_POLICY,
    rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
    rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
];

impl CertFacts {
    /// `None` when the certificate does not parse (the verifier then refuses it anyway).
    pub(crate) fn read(der: &CertificateDer<'_>) -> Option<Self> {
        let cert = Certificate::from_der(der.as_ref()).ok()?;
        let tbs = cert.tbs_certificate();
        let is_ca = matches!(
            tbs.get_extension::<BasicConstraints>(),
            Ok(Some((_, BasicConstraints { ca: true, .. })))
        );
        let names = match tbs.get_extension::<SubjectAltName>() {
            Ok(Some((_, SubjectAltName(names)))) => names.iter().filter_map(name_text).collect(),
            _ => Vec::new(),
        };
        let for_servers = match tbs.get_extension::<ExtendedKeyUsage>() {
            Ok(Some((_, ExtendedKeyUsage(usages)))) => usages
                .iter()
                .any(|u| *u == rfc5280::ID_KP_SERVER_AUTH || *u == rfc5280::ANY_EXTENDED_KEY_USAGE),
            Ok(None) => true,
            Err(_) => false,
        };
        let unknown_critical = tbs.extensions().and_then(|exts| {
            exts.iter()
                .find(|e| e.critical && !KNOWN_EXTENSIONS.contains(&e.extn_id))
                .map(|e| e.extn_id)
        });
        let seconds = |t: &x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
        let fingerprint = Sha256::digest(der.as_ref())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        Some(Self {
            fingerprint,
            issuer: tbs.issuer().to_string(),
            is_ca,
            names,
            not_before: seconds(&tbs.validity().not_before),
            not_after: seconds(&tbs.validity().not_after),
            for_servers,
            unknown_critical,
        })
    }

    /// The checks Go's verifier makes of a server certificate that is itself in the CA pool
    /// (crypto/x509 `Verify` with `Roots.contains(leaf)`): critical extensions, validity, key
    /// usage, and the host name. No chain and no signature: the user trusts these exact bytes,
    /// and the handshake proves the server holds their key.
    pub(crate) fn check_pinned(
        &self,
        der: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), TlsFailure> {
        if let Some(oid) = self.unknown_critical {
            return Err(TlsFailure::Other(format!(
                "the server's certificate has a critical extension tufa does not know ({oid})"
            )));
        }
        let now = now.as_secs() as i64;
        if now < self.not_before {
            return Err(self.not_yet_valid(now));
        }
        if now > self.not_after {
            return Err(self.expired(now));
        }
        if !self.for_servers {
            return Err(TlsFailure::NotForServers);
        }
        let parsed = ParsedCertificate::try_from(der).map_err(|e| {
            TlsFailure::Other(format!("the server's certificate is unreadable: {e}"))
        })?;
        rustls::client::verify_server_name(&parsed, server_name)
            .map_err(|_| self.wrong_name(server_name))
    }

    /// The words for rustls's refusal `err` of this certificate.
    pub(crate) fn classify(
        &self,
        err: &rustls::Error,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> TlsFailure {
        let now = now.as_secs() as i64;
        let rustls::Error::InvalidCertificate(e) = err else {
            return failure_of(err);
        };
        match e {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                self.expired(now)
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                self.not_yet_valid(now)
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                self.wrong_name(server_name)
            }
            CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer {
                issuer: self.issuer.clone(),
            },
            CertificateError::BadSignature => TlsFailure::BadSignature,
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                TlsFailure::NotForServers
            }
            // webpki's CaUsedAsEndEntity, and the platform verifier's EkuError, come as Other.
            CertificateError::Other(_) if self.is_ca => TlsFailure::CaAsServerCertificate {
                fingerprint: self.fingerprint.clone(),
            },
            CertificateError::Other(_) if !self.for_servers => TlsFailure::NotForServers,
            _ => failure_of(err),
        }
    }

    fn expired(&self, now: i64) -> TlsFailure {
        TlsFailure::Expired {
            not_after: rfc3339(self.not_after),
            now: rfc3339(now),
        }
    }

    fn not_yet_valid(&self, now: i64) -> TlsFailure {
        TlsFailure::NotYetValid {
            not_before: rfc3339(self.not_before),
            now: rfc3339(now),
        }
    }

    fn wrong_name(&self, server_name: &ServerName<'_>) -> TlsFailure {
        TlsFailure::WrongName {
            expected: host_of(server_name),
            presented: self.names.clone(),
        }
    }
}

/// `DNS:name` or `IP:address`, as openssl prints a subjectAltName; other kinds are skipped.
fn name_text(name: &GeneralName) -> Option<String> {
    match name {
        GeneralName::DnsName(dns) => Some(format!("DNS:{}", dns.as_str())),
        GeneralName::IpAddress(ip) => {
            let bytes = ip.as_bytes();
            let ip: IpAddr = match bytes.len() {
                4 => <[u8; 4]>::try_from(bytes).ok()?.into(),
                16 => <[u8; 16]>::try_from(bytes).ok()?.into(),
                _ => return None,
            };
            Some(format!("IP:{ip}"))
        }
        _ => None,
    }
}

fn host_of(server_name: &ServerName<'_>) -> String {
    match server_name {
        ServerName::DnsName(dns) => dns.as_ref().to_owned(),
        ServerName::IpAddress(ip) => IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{unix} s after 1970"))
}
