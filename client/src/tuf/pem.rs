//! Public keys and certificates as PEM text: what `docker trust signer add` and `notary
//! delegation add` read, and the certificate blocks Notary writes into `ecdsa-x509` and
//! `rsa-x509` keys.

use time::OffsetDateTime;
use x509_cert::der::{Decode as _, Encode as _};
use x509_cert::Certificate;

use crate::tuf::key::{KeyAlgorithmError, KeyType, PublicKey};
use crate::tuf::root_validation::validate_certificate;

/// PEM for a DER certificate, exactly as Go's `pem.EncodeToMemory` writes a `CERTIFICATE` block:
/// standard padded base64 in 64-character lines, `\n` line ends, a trailing `\n`.
pub fn certificate_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der),
        pem::EncodeConfig::new()
            .set_line_ending(pem::LineEnding::LF)
            .set_line_wrap(64),
    )
}

/// The TUF key for a DER certificate, as Notary's `CertToKey` makes it: `rsa-x509` or
/// `ecdsa-x509` by the certificate's public key algorithm, `public` the PEM text of exactly
/// these DER bytes ([`certificate_pem`]), so that the key ID is the one docker computes.
pub fn x509_public_key(der: &[u8]) -> Result<PublicKey, PemKeyError> {
    let cert =
        Certificate::from_der(der).map_err(|e| PemKeyError::BadCertificate(e.to_string()))?;
    Ok(certificate_key(&cert, der)?)
}

/// The key for `cert` (whose DER is `der`) by its public key algorithm.
fn certificate_key(cert: &Certificate, der: &[u8]) -> Result<PublicKey, KeyAlgorithmError> {
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| KeyAlgorithmError::Malformed(e.to_string()))?;
    let key_type = match KeyType::of_spki(&spki)? {
        KeyType::Rsa => KeyType::RsaX509,
        _ => KeyType::EcdsaX509,
    };
    Ok(PublicKey::new(key_type, certificate_pem(der).into_bytes()))
}

impl PublicKey {
    /// Reads a public key file as `notary delegation add` and `docker trust signer add` accept
    /// it (Notary's `ParsePEMPublicKey`): the first PEM block, a `PUBLIC KEY` (docker's
    /// NAME.pub, with or without a `role:` header; an `ecdsa` or `rsa` key) or a `CERTIFICATE`
    /// valid at `now` (an `ecdsa-x509` or `rsa-x509` key by its public key algorithm).
    pub fn from_pem(text: &[u8], now: OffsetDateTime) -> Result<Self, PemKeyError> {
        let text = std::str::from_utf8(text).map_err(|_| PemKeyError::NotText)?;
        let block = pem::parse(text).map_err(|e| PemKeyError::NotPem(e.to_string()))?;
        match block.tag() {
            "PUBLIC KEY" => {
                let key_type = KeyType::of_spki(block.contents())?;
                Ok(Self::new(key_type, block.contents().to_vec()))
            }
            "CERTIFICATE" => {
                let cert = Certificate::from_der(block.contents())
                    .map_err(|e| PemKeyError::BadCertificate(e.to_string()))?;
                validate_certificate(&cert, Some(now)).map_err(PemKeyError::InvalidCertificate)?;
                Ok(certificate_key(&cert, block.contents())?)
            }
            other => Err(PemKeyError::OtherBlock(other.to_owned())),
        }
    }
}

/// Why a public key file cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PemKeyError {
    /// Not UTF-8 text.
    #[error("the key file is not PEM text")]
    NotText,
    /// Not a PEM block.
    #[error("the key file is not PEM ({0})")]
    NotPem(String),
    /// A key of an algorithm or size tufa does not write.
    #[error("the key file cannot be a signer key: {0}")]
    Algorithm(#[from] KeyAlgorithmError),
    /// A `CERTIFICATE` block that is not a DER certificate.
    #[error("the certificate does not parse ({0})")]
    BadCertificate(String),
    /// A certificate docker and Notary refuse (expired, SHA-1, ...).
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    /// A block that is neither a public key nor a certificate.
    #[error("the key file holds a '{0}' block: expected PUBLIC KEY or CERTIFICATE")]
    OtherBlock(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_has_64_column_lines_and_a_trailing_newline() {
        let der: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        let pem = certificate_pem(&der);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
        assert!(pem.ends_with("\n-----END CERTIFICATE-----\n"), "{pem}");
        assert!(!pem.contains('\r'));
        let body: Vec<&str> = pem
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("-----"))
            .collect();
        let (last, full) = body.split_last().unwrap();
        assert!(full.iter().all(|l| l.len() == 64), "{body:?}");
        // 700 bytes are 936 base64 characters: 14 full lines and 40 more.
        assert_eq!(full.len(), 14);
        assert_eq!(last.len(), 40);
        let decoded = pem::parse(&pem).unwrap();
        assert_eq!(decoded.tag(), "CERTIFICATE");
        assert_eq!(decoded.contents(), der.as_slice());
    }

    #[test]
    fn pem_matches_go_byte_for_byte() {
        // Go: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b}) for 48 bytes 0..47
        // (exactly one full line) and for no bytes.
        let der: Vec<u8> = (0..48u8).collect();
        assert_eq!(
            certificate_pem(&der),
            "-----BEGIN CERTIFICATE-----\n\
             AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v\n\
             -----END CERTIFICATE-----\n"
        );
        assert_eq!(
            certificate_pem(&[]),
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"
        );
    }

    const RSA_CERT: &str = include_str!("../../tests/data/rsa/cert.pem");

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn certificates_are_typed_by_their_key() {
        // The file's own PEM is Go's encoding of its DER: the key carries these exact bytes.
        let der = pem::parse(RSA_CERT).unwrap().into_contents();
        let key = x509_public_key(&der).unwrap();
        assert_eq!(key.key_type(), &KeyType::RsaX509);
        assert_eq!(key.public(), RSA_CERT.as_bytes());
        let key = PublicKey::from_pem(RSA_CERT.as_bytes(), now()).unwrap();
        assert_eq!(key.key_type(), &KeyType::RsaX509);
        // Not valid yet, or expired: refused as docker refuses it.
        let long_ago = OffsetDateTime::from_unix_timestamp(1_000_000_000).unwrap();
        assert!(matches!(
            PublicKey::from_pem(RSA_CERT.as_bytes(), long_ago),
            Err(PemKeyError::InvalidCertificate(_))
        ));
        assert!(matches!(
            x509_public_key(&[1, 2, 3]),
            Err(PemKeyError::BadCertificate(_))
        ));
    }

    #[test]
    fn key_files_are_p256_or_rsa_public_keys_or_certificates() {
        use p256::pkcs8::{EncodePublicKey as _, LineEnding};
        let secret = p256::SecretKey::from_slice(&[3; 32]).unwrap();
        let der = secret.public_key().to_public_key_der().unwrap();
        let text = secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let key = PublicKey::from_pem(text.as_bytes(), now()).unwrap();
        assert_eq!(key, PublicKey::ecdsa(der.as_bytes().to_vec()));
        let rsa_spki = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/rsa/spki.der"
        ))
        .unwrap();
        let text = pem::encode(&pem::Pem::new("PUBLIC KEY", rsa_spki.clone()));
        assert_eq!(
            PublicKey::from_pem(text.as_bytes(), now()).unwrap(),
            PublicKey::new(KeyType::Rsa, rsa_spki)
        );
        let other = pem::encode(&pem::Pem::new("PRIVATE KEY", vec![1]));
        assert_eq!(
            PublicKey::from_pem(other.as_bytes(), now()),
            Err(PemKeyError::OtherBlock("PRIVATE KEY".into()))
        );
        assert_eq!(
            PublicKey::from_pem(&[0xff], now()),
            Err(PemKeyError::NotText)
        );
        // An Ed25519 key is refused by its name.
        let mut ed25519 = hex::decode("302a300506032b6570032100").unwrap();
        ed25519.extend([9; 32]);
        let text = pem::encode(&pem::Pem::new("PUBLIC KEY", ed25519));
        let err = PublicKey::from_pem(text.as_bytes(), now()).unwrap_err();
        assert_eq!(
            err,
            PemKeyError::Algorithm(KeyAlgorithmError::Unsupported("Ed25519".into()))
        );
        assert!(err.to_string().contains("Ed25519 key"), "{err}");
        let junk = pem::encode(&pem::Pem::new("PUBLIC KEY", vec![1, 2]));
        assert!(matches!(
            PublicKey::from_pem(junk.as_bytes(), now()),
            Err(PemKeyError::Algorithm(KeyAlgorithmError::Malformed(_)))
        ));
    }
}
