//! Public keys and certificates as PEM text: what `docker trust signer add` and `notary
//! delegation add` read, and the certificate blocks Notary writes into `ecdsa-x509` keys.

use crate::tuf::key::PublicKey;

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

/// The TUF root key for a certificate: `ecdsa-x509` whose `public` is (base64 of) its PEM text.
///
/// The DER is not parsed here: [`PublicKey::canonical_id`] reads it back.
pub fn x509_public_key(der: &[u8]) -> PublicKey {
    PublicKey::ecdsa_x509(certificate_pem(der).into_bytes())
}

impl PublicKey {
    /// Reads a public key file as `notary delegation add` and `docker trust signer add` accept
    /// it: PEM `PUBLIC KEY` (docker's NAME.pub, with or without a `role:` header; ECDSA P-256)
    /// or `CERTIFICATE` (an `ecdsa-x509` key).
    pub fn from_pem(text: &[u8]) -> Result<Self, PemKeyError> {
        let text = std::str::from_utf8(text).map_err(|_| PemKeyError::NotText)?;
        let block = pem::parse(text).map_err(|e| PemKeyError::NotPem(e.to_string()))?;
        match block.tag() {
            "PUBLIC KEY" => {
                use p256::pkcs8::DecodePublicKey as _;
                p256::PublicKey::from_public_key_der(block.contents())
                    .map_err(|_| PemKeyError::NotP256)?;
                Ok(Self::ecdsa(block.contents().to_vec()))
            }
            "CERTIFICATE" => Ok(x509_public_key(block.contents())),
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
    /// A public key of another algorithm.
    #[error("the public key is not ECDSA P-256: tufa's delegations use P-256 keys")]
    NotP256,
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

    #[test]
    fn x509_public_key_carries_the_pem_text() {
        let key = x509_public_key(&[1, 2, 3]);
        assert_eq!(key.key_type(), &crate::tuf::KeyType::EcdsaX509);
        assert_eq!(key.public(), certificate_pem(&[1, 2, 3]).as_bytes());
    }

    #[test]
    fn key_files_are_p256_public_keys_or_certificates() {
        use p256::pkcs8::{EncodePublicKey as _, LineEnding};
        let secret = p256::SecretKey::from_slice(&[3; 32]).unwrap();
        let der = secret.public_key().to_public_key_der().unwrap();
        let text = secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let key = PublicKey::from_pem(text.as_bytes()).unwrap();
        assert_eq!(key, PublicKey::ecdsa(der.as_bytes().to_vec()));
        let cert = certificate_pem(&[1, 2, 3]);
        assert_eq!(
            PublicKey::from_pem(cert.as_bytes()).unwrap(),
            x509_public_key(&[1, 2, 3])
        );
        let other = pem::encode(&pem::Pem::new("PRIVATE KEY", vec![1]));
        assert_eq!(
            PublicKey::from_pem(other.as_bytes()),
            Err(PemKeyError::OtherBlock("PRIVATE KEY".into()))
        );
        assert_eq!(PublicKey::from_pem(&[0xff]), Err(PemKeyError::NotText));
        let rsa_like = pem::encode(&pem::Pem::new("PUBLIC KEY", vec![1, 2]));
        assert_eq!(
            PublicKey::from_pem(rsa_like.as_bytes()),
            Err(PemKeyError::NotP256)
        );
    }
}
