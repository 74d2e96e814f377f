//! Reading the PEM private keys `docker trust key load` accepts, to import them into a device.
//!
//! Accepted: SEC1 `EC PRIVATE KEY`, PKCS#8 `PRIVATE KEY` and PBES2-encrypted PKCS#8
//! `ENCRYPTED PRIVATE KEY`, including the files Notary and docker write (PKCS#8 version 1,
//! PBKDF2-HMAC-SHA1, AES-256-CBC, and `role:`/`gun:` PEM headers). Only P-256 keys fit the
//! devices; anything else is refused with a message saying what was found.

use p256::pkcs8::der::asn1::ObjectIdentifier;
use p256::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

/// id-ecPublicKey.
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// prime256v1 / secp256r1.
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// rsaEncryption.
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// Ed25519.
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// A P-256 private key read from software, zeroized on drop.
pub struct ImportedKey {
    secret: p256::SecretKey,
}

impl ImportedKey {
    /// Reads a PEM private key, decrypting it with `passphrase` when it is encrypted.
    pub fn from_pem(
        pem_text: &[u8],
        passphrase: Option<&SecretString>,
    ) -> Result<Self, ImportError> {
        let PemBlock {
            label,
            legacy_encrypted,
            der,
        } = PemBlock::decode(pem_text)?;
        let secret = match label.as_str() {
            "EC PRIVATE KEY" => {
                if legacy_encrypted {
                    return Err(ImportError::LegacyEncryption);
                }
                p256::SecretKey::from_sec1_der(&der).map_err(|_| ImportError::Malformed {
                    what: "SEC1 EC private key on curve P-256",
                })?
            }
            "PRIVATE KEY" => from_pkcs8(&der)?,
            "ENCRYPTED PRIVATE KEY" => {
                let pass = passphrase.ok_or(ImportError::PassphraseNeeded)?;
                let info = EncryptedPrivateKeyInfoRef::try_from(der.as_slice()).map_err(|_| {
                    ImportError::Malformed {
                        what: "PKCS#8 EncryptedPrivateKeyInfo",
                    }
                })?;
                let plain = info
                    .decrypt(pass.expose_secret().as_bytes())
                    .map_err(|_| ImportError::Decrypt)?;
                // A wrong passphrase usually yields a padding error, else garbage that fails here.
                from_pkcs8(plain.as_bytes()).map_err(|e| match e {
                    ImportError::Malformed { .. } => ImportError::Decrypt,
                    other => other,
                })?
            }
            "RSA PRIVATE KEY" => return Err(ImportError::Unsupported("an RSA key".into())),
            "ED25519 PRIVATE KEY" => return Err(ImportError::Unsupported("an Ed25519 key".into())),
            other => return Err(ImportError::UnexpectedBlock(other.to_owned())),
        };
        Ok(Self { secret })
    }

    /// The 32-byte private scalar, for the device's import call.
    pub fn scalar(&self) -> Zeroizing<[u8; 32]> {
        let bytes = Zeroizing::new(self.secret.to_bytes());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&bytes);
        out
    }

    /// The SEC1 uncompressed public point (65 bytes).
    pub fn public_point(&self) -> Vec<u8> {
        self.secret.public_key().to_sec1_bytes().to_vec()
    }

    /// The SubjectPublicKeyInfo, DER.
    pub fn public_spki(&self) -> Vec<u8> {
        self.secret
            .public_key()
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default()
    }
}

/// The first PEM block of a file, decoded into zeroizing buffers.
///
/// Written here rather than taken from a PEM crate: `pem` builds the whitespace-stripped base64
/// in a growing `String` it drops unzeroized (for SEC1 and plain PKCS#8 that is the key), and
/// `pem-rfc7468` refuses the `role:`/`gun:` headers Notary and docker write. Accepted as `pem`
/// accepts it: text around the block, CRLF or LF, and RFC 1421 headers ended by a blank line.
struct PemBlock {
    label: String,
    legacy_encrypted: bool,
    der: Zeroizing<Vec<u8>>,
}

impl PemBlock {
    fn decode(text: &[u8]) -> Result<Self, ImportError> {
        use base64ct::Encoding as _;
        let (_, rest) = split_once(text, b"-----BEGIN ").ok_or(ImportError::NotPem)?;
        let (label, rest) = split_once(rest, b"-----").ok_or(ImportError::NotPem)?;
        let (payload, rest) = split_once(rest, b"-----END ").ok_or(ImportError::NotPem)?;
        let (end_label, _) = split_once(rest, b"-----").ok_or(ImportError::NotPem)?;
        if label != end_label || !label.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            return Err(ImportError::NotPem);
        }
        let (headers, body) = split_once(payload, b"\n\n")
            .or_else(|| split_once(payload, b"\r\n\r\n"))
            .unwrap_or((&[], payload));
        let legacy_encrypted = headers
            .split(|b| *b == b'\n')
            .any(|line| line.trim_ascii_start().starts_with(b"DEK-Info:"));
        // Sized before filling, so neither buffer ever reallocates and leaves a copy behind.
        let mut base64 = Zeroizing::new(Vec::with_capacity(body.len()));
        base64.extend(body.iter().filter(|b| !b.is_ascii_whitespace()));
        let mut der = Zeroizing::new(vec![0u8; base64.len() / 4 * 3 + 3]);
        let len = base64ct::Base64::decode(base64.as_slice(), der.as_mut_slice())
            .map_err(|_| ImportError::NotPem)?
            .len();
        der.truncate(len);
        Ok(Self {
            label: String::from_utf8_lossy(label).into_owned(),
            legacy_encrypted,
            der,
        })
    }
}

/// The bytes before the first `marker` and those after it.
fn split_once<'a>(haystack: &'a [u8], marker: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = haystack.windows(marker.len()).position(|w| w == marker)?;
    Some((&haystack[..at], &haystack[at + marker.len()..]))
}

fn from_pkcs8(der: &[u8]) -> Result<p256::SecretKey, ImportError> {
    let patched;
    let der = match PrivateKeyInfoRef::try_from(der) {
        Ok(_) => der,
        Err(_) => {
            patched = as_version_one(der).ok_or(ImportError::Malformed {
                what: "PKCS#8 PrivateKeyInfo",
            })?;
            &patched[..]
        }
    };
    let info = PrivateKeyInfoRef::try_from(der).map_err(|_| ImportError::Malformed {
        what: "PKCS#8 PrivateKeyInfo",
    })?;
    match info.algorithm.oid {
        OID_EC => {}
        OID_RSA => return Err(ImportError::Unsupported("an RSA key".into())),
        OID_ED25519 => return Err(ImportError::Unsupported("an Ed25519 key".into())),
        other => {
            return Err(ImportError::Unsupported(format!(
                "a key of algorithm {other}"
            )))
        }
    }
    let curve = info
        .algorithm
        .parameters
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if curve != Some(OID_P256) {
        let found = curve.map_or("an unnamed curve".to_owned(), |c| format!("curve {c}"));
        return Err(ImportError::Unsupported(format!("an EC key on {found}")));
    }
    p256::SecretKey::from_pkcs8_der(der).map_err(|_| ImportError::Malformed {
        what: "PKCS#8 EC private key on curve P-256",
    })
}

/// Notary and docker write PKCS#8 with version 1 (RFC 5958 "v2") but no public key field,
/// which strict decoders refuse; the same structure with version 0 is the plain RFC 5208 form.
fn as_version_one(der: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    // The outer SEQUENCE's header is 2 bytes, or 2 + n for a long-form length.
    let header = match *der.get(1)? {
        n if n < 0x80 => 2,
        n => 2 + usize::from(n & 0x7f),
    };
    if der.first() != Some(&0x30) || der.get(header..header + 3)? != [0x02, 0x01, 0x01] {
        return None;
    }
    let mut out = Zeroizing::new(der.to_vec());
    out[header + 2] = 0;
    Some(out)
}

/// Why a key file cannot be imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Not PEM at all.
    #[error("the key file is not PEM: expected a '-----BEGIN EC PRIVATE KEY-----', '-----BEGIN PRIVATE KEY-----' or '-----BEGIN ENCRYPTED PRIVATE KEY-----' block")]
    NotPem,
    /// A PEM block of another kind.
    #[error("the key file holds a '{0}' block, not a private key: expected EC PRIVATE KEY, PRIVATE KEY or ENCRYPTED PRIVATE KEY")]
    UnexpectedBlock(String),
    /// The DER inside does not parse.
    #[error("the key file's content is not a valid {what}")]
    Malformed {
        /// What was expected.
        what: &'static str,
    },
    /// An encrypted key and no passphrase.
    #[error("the key file is encrypted: give its passphrase (tufa prompts for it, or reads TUFA_KEY_PASSPHRASE)")]
    PassphraseNeeded,
    /// The passphrase does not open the key.
    #[error("could not decrypt the key file: wrong passphrase?")]
    Decrypt,
    /// OpenSSL's old `Proc-Type`/`DEK-Info` encryption.
    #[error("the key file uses legacy PEM encryption (DEK-Info): convert it with `openssl pkcs8 -topk8 -in KEY -out KEY.p8` first")]
    LegacyEncryption,
    /// A key the devices cannot hold.
    #[error("the key file holds {0}: tufa's devices hold ECDSA P-256 keys only")]
    Unsupported(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
    use sha2::{Digest as _, Sha256};

    fn key() -> p256::SecretKey {
        p256::SecretKey::from_slice(&Sha256::digest(b"a test key")).unwrap()
    }

    #[test]
    fn reads_pkcs8_and_sec1() {
        let k = key();
        let p8 = k.to_pkcs8_pem(LineEnding::LF).unwrap();
        let got = ImportedKey::from_pem(p8.as_bytes(), None).unwrap();
        assert_eq!(got.scalar().as_slice(), k.to_bytes().as_slice());
        let sec1 = k.to_sec1_pem(LineEnding::LF).unwrap();
        let got = ImportedKey::from_pem(sec1.as_bytes(), None).unwrap();
        assert_eq!(got.public_point(), k.public_key().to_sec1_bytes().to_vec());
        assert_eq!(got.public_spki().len(), 91);
    }

    #[test]
    fn reads_encrypted_pkcs8_with_headers() {
        let k = key();
        let enc = k
            .to_pkcs8_der()
            .unwrap()
            .decode_msg::<PrivateKeyInfoRef<'_>>()
            .unwrap()
            .encrypt(b"hunter2")
            .unwrap();
        let body = pem::encode(&pem::Pem::new("ENCRYPTED PRIVATE KEY", enc.as_bytes()));
        let with_role = body.replacen("KEY-----\n", "KEY-----\nrole: alice\n\n", 1);
        let pass = SecretString::from("hunter2");
        let got = ImportedKey::from_pem(with_role.as_bytes(), Some(&pass)).unwrap();
        assert_eq!(got.scalar().as_slice(), k.to_bytes().as_slice());
        assert!(matches!(
            ImportedKey::from_pem(with_role.as_bytes(), None),
            Err(ImportError::PassphraseNeeded)
        ));
        let wrong = SecretString::from("nope");
        assert!(matches!(
            ImportedKey::from_pem(with_role.as_bytes(), Some(&wrong)),
            Err(ImportError::Decrypt)
        ));
    }

    #[test]
    fn reads_pem_as_the_pem_crate_does() {
        let k = key();
        let p8 = k.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        // Text around the block, CRLF line ends, and Notary's headers.
        let crlf = format!("junk before\r\n{}\r\ntrailing", p8.replace('\n', "\r\n"));
        let headed = p8.replacen(
            "KEY-----\n",
            "KEY-----\nrole: root\ngun: example.com/app\n\n",
            1,
        );
        for text in [crlf, headed] {
            let got = ImportedKey::from_pem(text.as_bytes(), None).unwrap();
            assert_eq!(got.scalar().as_slice(), k.to_bytes().as_slice(), "{text}");
            let block = pem::parse(&text).unwrap();
            assert_eq!(
                PemBlock::decode(text.as_bytes()).unwrap().der.as_slice(),
                block.contents()
            );
        }
        let legacy = p8.replace("PRIVATE KEY", "EC PRIVATE KEY").replacen(
            "KEY-----\n",
            "KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n",
            1,
        );
        assert!(matches!(
            ImportedKey::from_pem(legacy.as_bytes(), None),
            Err(ImportError::LegacyEncryption)
        ));
        for broken in [
            p8.replace("-----END PRIVATE KEY-----", "-----END PUBLIC KEY-----"),
            p8.replace("-----END PRIVATE KEY-----", ""),
            p8.replacen('M', "*", 1),
            "-----BEGIN PRIVATE KEY-----".to_owned(),
        ] {
            assert!(
                matches!(
                    ImportedKey::from_pem(broken.as_bytes(), None),
                    Err(ImportError::NotPem)
                ),
                "{broken}"
            );
        }
    }

    #[test]
    fn refuses_what_does_not_fit() {
        assert!(matches!(
            ImportedKey::from_pem(b"hello", None),
            Err(ImportError::NotPem)
        ));
        let cert = pem::encode(&pem::Pem::new("CERTIFICATE", vec![0x30, 0x00]));
        assert!(matches!(
            ImportedKey::from_pem(cert.as_bytes(), None),
            Err(ImportError::UnexpectedBlock(_))
        ));
        let junk = pem::encode(&pem::Pem::new("PRIVATE KEY", vec![0x30, 0x03, 1, 2, 3]));
        assert!(matches!(
            ImportedKey::from_pem(junk.as_bytes(), None),
            Err(ImportError::Malformed { .. })
        ));
    }
}
