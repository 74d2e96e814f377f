//! Moving the private keys of a docker or notary trust directory into the agent
//! (`tufa key migrate`).
//!
//! Each key file is opened here first, with its passphrase, only to learn its public key: the
//! file then goes to the agent as it is (the agent decrypts it again), and the key counts as
//! moved only once the agent's key is the file's public key and a test signature made by the
//! agent verifies with it. A key the agent already holds (same key ID) is not imported again.
//!
//! Layout:
//! - `file`: one key file: key ID, role and GUN from its path and headers; its public key.
//! - `plan`: the walk of the trust directory, the order, the names, the passphrase variables.

mod file;
mod plan;

use secrecy::SecretString;
use tufa_proto::v1;

pub use file::{FileKey, KeyFile};
pub use plan::{base_name, names, passphrase_vars, private_dir, scan, Found};

use crate::agent::{AgentClient, AgentClientError, AgentKey, SignContext};
use crate::tuf::{KeyId, Sha256Digest};

/// Why one key file was not moved; the other files are not held up by it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file cannot be read.
    #[error("cannot read it: {0}")]
    Read(std::io::Error),
    /// Not PEM.
    #[error("it is not a PEM private key")]
    NotPem,
    /// A PEM block of another kind.
    #[error("it holds a '{0}' block, not a private key")]
    NotAPrivateKey(String),
    /// OpenSSL's old `Proc-Type`/`DEK-Info` encryption.
    #[error("it uses the legacy PEM encryption (Proc-Type/DEK-Info), which tufa cannot read yet: convert it to encrypted PKCS#8 (remove its role:/gun: lines, then `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA1 -in FILE -out NEW.pem`) and load that with `tufa key load`")]
    LegacyEncryption,
    /// A key the devices cannot hold.
    #[error("it holds {0}: the agent's devices hold ECDSA P-256 keys only")]
    Unsupported(String),
    /// The DER inside does not parse.
    #[error("its content is not a valid {0}")]
    Malformed(&'static str),
    /// No passphrase opened it; says which were tried.
    #[error("wrong passphrase{}", if .0.is_empty() { String::new() } else { format!(" (tried {})", .0) })]
    WrongPassphrase(String),
    /// Encrypted, and no passphrase to try; names the variables that could hold one.
    #[error("it is encrypted and there is no passphrase for it: set {0}, or run tufa on a terminal to be asked")]
    NoPassphrase(String),
    /// The file's name and its key disagree.
    #[error(
        "its file name says key {named}, but it holds key {held}: check where the file came from"
    )]
    IdMismatch {
        /// The ID in the file name.
        named: KeyId,
        /// The key's own ID.
        held: KeyId,
    },
    /// The agent failed or refused.
    #[error(transparent)]
    Agent(#[from] AgentClientError),
    /// The agent's key is not the file's.
    #[error("the agent's key {agent} is not the file's key {file}")]
    NotTheFileKey {
        /// The agent's key.
        agent: KeyId,
        /// The file's key.
        file: KeyId,
    },
    /// The test signature does not verify with the file's public key.
    #[error("the agent's test signature with key {key} does not verify with the file's public key: {detail}")]
    Unverified {
        /// The key.
        key: KeyId,
        /// Why.
        detail: String,
    },
    /// A check after the import failed; the import was undone (or could not be).
    #[error("{error}; {}", if *.deleted { "the imported copy was deleted from the agent again".to_owned() } else { format!("the imported copy could not be deleted from the agent: delete it with `tufa key delete {key}`") })]
    Undone {
        /// What failed.
        error: Box<KeyError>,
        /// The imported key.
        key: KeyId,
        /// Whether it is gone from the agent again.
        deleted: bool,
    },
}

/// Where new keys go: a backend and device, or (unspecified, empty) the agent's first device.
#[derive(Clone, Debug, Default)]
pub struct Target {
    /// The backend of the device.
    pub backend: v1::Backend,
    /// The device's name (token label or YubiKey serial).
    pub device: String,
}

/// What a signature over metadata of this file's key would be for: its GUN and role.
fn context(file: &KeyFile) -> SignContext {
    SignContext {
        gun: file.gun.clone().unwrap_or_default(),
        role: file.role.clone().unwrap_or_default(),
    }
}

/// Imports `file` (opened as `key`) as `name` into `target`, then [`check`]s it; a key that
/// fails the check is deleted from the agent again.
pub async fn import(
    agent: &AgentClient,
    file: &KeyFile,
    key: &FileKey,
    name: &str,
    passphrase: Option<&SecretString>,
    target: &Target,
) -> Result<AgentKey, KeyError> {
    let imported = agent
        .import_to(
            name,
            file.pem().to_vec(),
            passphrase,
            target.backend,
            &target.device,
        )
        .await?;
    match check(agent, &imported, file, key).await {
        Ok(()) => Ok(imported),
        Err(error) => {
            let deleted = agent.delete(&imported.id.to_string()).await.is_ok();
            Err(KeyError::Undone {
                error: Box::new(error),
                key: imported.id,
                deleted,
            })
        }
    }
}

/// Checks that the agent's `held` key is the file's: the same public key, and a test signature
/// by the agent that verifies with the file's public key.
pub async fn check(
    agent: &AgentClient,
    held: &AgentKey,
    file: &KeyFile,
    key: &FileKey,
) -> Result<(), KeyError> {
    if held.spki() != key.spki.as_slice() {
        return Err(KeyError::NotTheFileKey {
            agent: held.id,
            file: key.id,
        });
    }
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| AgentClientError::Internal(e.to_string()))?;
    let digest = Sha256Digest::of(
        format!(
            "tufa key migrate: test signature of key {} ({})",
            key.id,
            hex::encode(nonce)
        )
        .as_bytes(),
    );
    let sig = agent.sign_digest(held, digest, &context(file)).await?;
    crate::tuf::verify_p256_digest(&key.spki, &digest, &sig).map_err(|e| KeyError::Unverified {
        key: key.id,
        detail: e.to_string(),
    })
}
