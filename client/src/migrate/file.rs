//! One private key file of a trust directory: what its path and PEM headers say (key ID, role,
//! GUN), and its public key once it is opened with its passphrase.
//!
//! Notary and docker name a key file after its key ID (`<id>.key`) and write `role:` and `gun:`
//! headers; older notary layouts put root keys under `root_keys/` and the others under
//! `tuf_keys/<gun>/`, some named `<id>_<role>.key`. The role and GUN are read as notary reads
//! them: from the path first, then from the headers.

use std::path::{Path, PathBuf};

use p256::pkcs8::der::asn1::ObjectIdentifier;
use p256::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use super::KeyError;
use crate::tuf::KeyId;

const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// A private key file, read but not yet opened.
pub struct KeyFile {
    /// Where it is.
    pub path: PathBuf,
    /// The key ID its name gives (`<id>.key` or `<id>_<role>.key`), if the name is one.
    pub named_id: Option<KeyId>,
    /// The TUF role (`root`, `targets`, `snapshot`, a signer's name), if known.
    pub role: Option<String>,
    /// The repository, for repository keys.
    pub gun: Option<String>,
    label: String,
    encrypted: bool,
    legacy: bool,
    text: Zeroizing<Vec<u8>>,
}

/// The public half of a key file, known once the file is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileKey {
    /// DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    /// Its TUF key ID.
    pub id: KeyId,
}

impl KeyFile {
    /// Reads `path`, a file under the trust directory's `private` directory `private_dir`.
    pub fn read(path: &Path, private_dir: &Path) -> Result<Self, KeyError> {
        let text = Zeroizing::new(std::fs::read(path).map_err(KeyError::Read)?);
        // An unencrypted key's base64 passes through the pem crate's own buffers unzeroized:
        // such a file already lies in the clear on disk, and the process is short-lived.
        let block = pem::parse(text.as_slice()).map_err(|_| KeyError::NotPem)?;
        let label = block.tag().to_owned();
        let header = |name: &str| {
            block
                .headers()
                .get(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let legacy = header("DEK-Info").is_some();
        let (named_id, path_role, path_gun) = from_path(path, private_dir);
        let role = path_role.or_else(|| header("role"));
        let gun = path_gun.or_else(|| header("gun"));
        drop(Zeroizing::new(block.into_contents()));
        Ok(Self {
            path: path.to_owned(),
            named_id,
            role,
            gun,
            encrypted: label == "ENCRYPTED PRIVATE KEY" || legacy,
            label,
            legacy,
            text,
        })
    }

    /// Whether opening it needs a passphrase.
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// The file's bytes, as the agent imports them.
    pub fn pem(&self) -> &[u8] {
        &self.text
    }

    /// Opens the file (with `passphrase` when it is encrypted) and returns its public key.
    pub fn open(&self, passphrase: Option<&SecretString>) -> Result<FileKey, KeyError> {
        if self.legacy {
            return Err(KeyError::LegacyEncryption);
        }
        let block = pem::parse(self.text.as_slice()).map_err(|_| KeyError::NotPem)?;
        let der = Zeroizing::new(block.into_contents());
        let secret = match self.label.as_str() {
            "ENCRYPTED PRIVATE KEY" => {
                let pass = passphrase.ok_or(KeyError::NoPassphrase(String::new()))?;
                let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
                    .map_err(|_| KeyError::Malformed("PKCS#8 EncryptedPrivateKeyInfo"))?;
                let plain = info
                    .decrypt(pass.expose_secret().as_bytes())
                    .map_err(|_| KeyError::WrongPassphrase(String::new()))?;
                // A wrong passphrase usually fails the padding, else yields garbage.
                from_pkcs8(plain.as_bytes()).map_err(|e| match e {
                    KeyError::Malformed(_) => KeyError::WrongPassphrase(String::new()),
                    other => other,
                })?
            }
            "PRIVATE KEY" => from_pkcs8(&der)?,
            "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(&der)
                .map_err(|_| KeyError::Malformed("SEC1 EC private key on curve P-256"))?,
            "RSA PRIVATE KEY" => return Err(KeyError::Unsupported("an RSA key".into())),
            other => return Err(KeyError::NotAPrivateKey(other.to_owned())),
        };
        let spki = secret
            .public_key()
            .to_public_key_der()
            .map_err(|_| KeyError::Malformed("P-256 public key"))?
            .as_bytes()
            .to_vec();
        Ok(FileKey {
            id: KeyId::for_ecdsa_spki(&spki),
            spki,
        })
    }
}

/// The key ID, role and GUN a path under `private_dir` gives, as notary infers them.
fn from_path(path: &Path, private_dir: &Path) -> (Option<KeyId>, Option<String>, Option<String>) {
    let rel = path.strip_prefix(private_dir).unwrap_or(path);
    let stem = rel
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The legacy `<id>_<role>` name.
    let (id, mut role) = match stem.rsplit_once('_') {
        Some((id, role)) if !role.is_empty() => (id.to_owned(), Some(role.to_owned())),
        _ => (stem, None),
    };
    let mut parts: Vec<String> = rel
        .parent()
        .into_iter()
        .flat_map(|p| p.components())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let mut gun = None;
    match parts.first().map(String::as_str) {
        Some("root_keys") => role = Some("root".into()),
        Some("tuf_keys") => {
            parts.remove(0);
            gun = Some(parts.join("/")).filter(|g| !g.is_empty());
        }
        _ => {}
    }
    (id.parse().ok(), role, gun)
}

/// The P-256 key of a PKCS#8 PrivateKeyInfo, or what else it holds.
fn from_pkcs8(der: &[u8]) -> Result<p256::SecretKey, KeyError> {
    let patched = as_version_one(der);
    let der = patched.as_deref().map_or(der, |p| p.as_slice());
    let info = pkcs8::PrivateKeyInfoRef::try_from(der)
        .map_err(|_| KeyError::Malformed("PKCS#8 PrivateKeyInfo"))?;
    match info.algorithm.oid {
        OID_EC => {}
        OID_RSA => return Err(KeyError::Unsupported("an RSA key".into())),
        OID_ED25519 => return Err(KeyError::Unsupported("an Ed25519 key".into())),
        other => return Err(KeyError::Unsupported(format!("a key of algorithm {other}"))),
    }
    let curve = info
        .algorithm
        .parameters
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if curve != Some(OID_P256) {
        let found = curve.map_or("an unnamed curve".to_owned(), |c| format!("curve {c}"));
        return Err(KeyError::Unsupported(format!("an EC key on {found}")));
    }
    p256::SecretKey::from_pkcs8_der(der)
        .map_err(|_| KeyError::Malformed("PKCS#8 EC private key on curve P-256"))
}

/// Notary and docker write PKCS#8 version 1 without the public key field, which the decoder
/// refuses; with version 0 it is the plain RFC 5208 structure (`None`: nothing to change).
fn as_version_one(der: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_give_id_role_and_gun_as_notary_reads_them() {
        let id = "ab".repeat(32);
        let private = Path::new("/t/private");
        let at = |rel: &str| from_path(&private.join(rel), private);
        let (named, role, gun) = at(&format!("{id}.key"));
        assert_eq!(named.map(|k| k.to_string()), Some(id.clone()));
        assert_eq!((role, gun), (None, None));
        let (named, role, gun) = at(&format!("root_keys/{id}_root.key"));
        assert!(named.is_some());
        assert_eq!((role.as_deref(), gun), (Some("root"), None));
        let (_, role, gun) = at(&format!("tuf_keys/example.com/app/{id}_targets.key"));
        assert_eq!(role.as_deref(), Some("targets"));
        assert_eq!(gun.as_deref(), Some("example.com/app"));
        let (named, role, gun) = at("tuf_keys/example.com/app/renamed.key");
        assert_eq!((named, role), (None, None));
        assert_eq!(gun.as_deref(), Some("example.com/app"));
    }

    fn key() -> p256::SecretKey {
        use sha2::Digest as _;
        p256::SecretKey::from_slice(&sha2::Sha256::digest(b"a migrated key")).unwrap()
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn opens_encrypted_pkcs8_with_notary_headers_and_names_what_it_cannot() {
        use p256::pkcs8::EncodePrivateKey as _;
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        let k = key();
        let spki = k
            .public_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        let id = KeyId::for_ecdsa_spki(&spki);
        let enc = k
            .to_pkcs8_der()
            .unwrap()
            .decode_msg::<pkcs8::PrivateKeyInfoRef<'_>>()
            .unwrap()
            // notary's own iteration count: the default (scrypt) takes seconds in a debug build.
            .encrypt_with_params(
                pkcs8::pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(
                    2048, &[7; 16], [9; 16],
                )
                .unwrap(),
                b"s3cret",
            )
            .unwrap();
        let body = pem::encode_config(
            &pem::Pem::new("ENCRYPTED PRIVATE KEY", enc.as_bytes()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        let text = body.replacen(
            "KEY-----\n",
            "KEY-----\nrole: targets\ngun: example.com/app\n\n",
            1,
        );
        let path = write(&private, &format!("{id}.key"), &text);
        let file = KeyFile::read(&path, &private).unwrap();
        assert_eq!(file.named_id, Some(id));
        assert_eq!(file.role.as_deref(), Some("targets"));
        assert_eq!(file.gun.as_deref(), Some("example.com/app"));
        assert!(file.encrypted());
        let pass = SecretString::from("s3cret");
        assert_eq!(
            file.open(Some(&pass)).unwrap(),
            FileKey {
                spki: spki.clone(),
                id
            }
        );
        let wrong = SecretString::from("nope");
        assert!(matches!(
            file.open(Some(&wrong)),
            Err(KeyError::WrongPassphrase(_))
        ));
        assert!(matches!(file.open(None), Err(KeyError::NoPassphrase(_))));

        // Plain PKCS#8 and SEC1 open without a passphrase.
        let plain = write(
            &private,
            "plain.key",
            &k.to_pkcs8_pem(Default::default()).unwrap(),
        );
        let file = KeyFile::read(&plain, &private).unwrap();
        assert!(!file.encrypted() && file.named_id.is_none());
        assert_eq!(file.open(None).unwrap().id, id);
        let sec1 = write(
            &private,
            "sec1.key",
            &k.to_sec1_pem(Default::default()).unwrap(),
        );
        assert_eq!(
            KeyFile::read(&sec1, &private)
                .unwrap()
                .open(None)
                .unwrap()
                .id,
            id
        );

        // Legacy PEM encryption, RSA and non-PEM are named, not guessed at.
        let legacy = write(
            &private,
            "legacy.key",
            "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END EC PRIVATE KEY-----\n",
        );
        let file = KeyFile::read(&legacy, &private).unwrap();
        assert!(file.encrypted());
        assert!(matches!(
            file.open(Some(&pass)),
            Err(KeyError::LegacyEncryption)
        ));
        let rsa = write(
            &private,
            "rsa.key",
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        );
        let e = KeyFile::read(&rsa, &private)
            .unwrap()
            .open(None)
            .unwrap_err();
        assert!(e.to_string().contains("an RSA key"), "{e}");
        let junk = write(&private, "junk.key", "not a key");
        assert!(matches!(
            KeyFile::read(&junk, &private),
            Err(KeyError::NotPem)
        ));
    }
}
