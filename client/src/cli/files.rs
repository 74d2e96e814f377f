//! The files verbs read and write: public keys in, PEM out (as docker writes it), the first line
//! of a secret file. Every failure names the file.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::error::CliError;
use crate::tuf::PublicKey;

/// Reads public key files (PEM `PUBLIC KEY`, e.g. NAME.pub, or `CERTIFICATE`, which must be
/// valid now).
pub fn read_public_keys(paths: &[PathBuf]) -> Result<Vec<PublicKey>, CliError> {
    let now = time::OffsetDateTime::now_utc();
    paths
        .iter()
        .map(|path| {
            let pem = std::fs::read(path).map_err(|e| CliError::File {
                path: path.clone(),
                message: format!("cannot read the public key: {e}"),
            })?;
            PublicKey::from_pem(&pem, now).map_err(|e| CliError::File {
                path: path.clone(),
                message: e.to_string(),
            })
        })
        .collect()
}

/// PEM with LF line endings and 64-column base64, as openssl and docker write it.
pub fn pem_text(pem: &pem::Pem) -> String {
    pem::encode_config(
        pem,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// The PEM text docker writes for a public key: `PUBLIC KEY` with a `role: NAME` header.
pub fn public_key_pem(role: &str, spki: &[u8]) -> Result<String, pem::PemError> {
    let mut pem = pem::Pem::new("PUBLIC KEY", spki);
    pem.headers_mut().add("role", role)?;
    Ok(pem_text(&pem))
}

/// Writes NAME.pub as docker does: [`public_key_pem`], mode 0600, never over another file.
pub fn write_public_key(path: &Path, name: &str, spki: &[u8]) -> Result<(), CliError> {
    let err = |e: &dyn std::fmt::Display| CliError::File {
        path: path.to_owned(),
        message: format!("cannot write the public key: {e}"),
    };
    let text = public_key_pem(name, spki).map_err(|e| err(&e))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| err(&e))?;
    f.write_all(text.as_bytes()).map_err(|e| err(&e))
}

/// Writes a file whole.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes).map_err(|e| CliError::File {
        path: path.to_owned(),
        message: format!("cannot write it: {e}"),
    })
}

/// The first line of a file holding a secret (`--pin-file`); the file's text is zeroized.
pub fn read_secret_line(path: &Path) -> Result<SecretString, CliError> {
    let text =
        zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| CliError::File {
            path: path.to_owned(),
            message: format!("cannot read the PIN file: {e}"),
        })?);
    Ok(SecretString::from(
        text.lines().next().unwrap_or_default().to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_pem_matches_docker() {
        // Docker writes the role header, a blank line, then 64-column base64.
        let pem = public_key_pem("alice", &[0u8; 91]).unwrap();
        let lines: Vec<_> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN PUBLIC KEY-----");
        assert_eq!(lines[1], "role: alice");
        assert_eq!(lines[2], "");
        assert_eq!(lines[3].len(), 64);
        assert_eq!(*lines.last().unwrap(), "-----END PUBLIC KEY-----");
        assert!(pem.ends_with("-----\n") && !pem.contains('\r'));
        // The header reads back, as docker and notary read it.
        let parsed = pem::parse(&pem).unwrap();
        assert_eq!(parsed.headers().get("role"), Some("alice"));
        assert_eq!(parsed.contents(), &[0u8; 91]);
    }
}
