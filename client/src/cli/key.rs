//! `tufa key ...`: the agent's keys: make, list, import, delete, sign with, and show them;
//! `migrate` (in `migrate.rs`) moves a trust directory's key files in.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use base64::Engine as _;
use clap::{Args, Subcommand, ValueEnum};
use secrecy::SecretString;
use serde::Serialize;
use tufa_proto::v1;
use tufa_proto::v1::key_location::Location;

use super::args::{Choice, KeyRef};
use super::context::Ctx;
use super::error::CliError;
use super::files::{pem_text, write_public_key};
use super::table;
use crate::agent::{AgentClientError, AgentKey, SignContext};

/// `tufa key ...`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a signing key on a device and write NAME.pub, like `docker trust key generate`.
    Generate(GenerateArgs),
    /// List the keys the agent holds.
    List(ListArgs),
    /// Import a PEM private key into a device, like `docker trust key load`.
    Load(LoadArgs),
    /// Delete a key from its device.
    Delete(DeleteArgs),
    /// Sign a file with a key (SHA-256, ECDSA P-256) and write the signature.
    Sign(SignArgs),
    /// Print a key's public key as plain PEM (for openssl and other tools).
    Public(PublicArgs),
    /// Print the device's attestation of a key (YubiKey: the slot's attestation certificate and
    /// the device's attestation certificate, PEM).
    Attest(AttestArgs),
    /// Take on a key another tool (ykman, yubico-piv-tool) made in a YubiKey slot: tufa's
    /// marker is written next to it; the key and its certificate are not changed.
    Adopt(AdoptArgs),
    /// Move every private key of a docker or notary trust directory into the agent, each
    /// checked by a test signature; with --remove, delete the files afterwards.
    Migrate(super::migrate::MigrateArgs),
}

impl KeyCommand {
    /// Runs the verb.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        match self {
            Self::Generate(a) => a.run(ctx).await,
            Self::List(a) => a.run(ctx).await,
            Self::Load(a) => a.run(ctx).await,
            Self::Delete(a) => a.run(ctx).await,
            Self::Sign(a) => a.run(ctx).await,
            Self::Public(a) => a.run(ctx).await,
            Self::Attest(a) => a.run(ctx).await,
            Self::Adopt(a) => a.run(ctx).await,
            Self::Migrate(a) => a.run(ctx).await,
        }
    }
}

/// Arguments of `key generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Name of the key (the signer's name, for `tufa signer add`).
    pub name: String,
    /// Backend for the key [default: the agent's first device].
    #[arg(long, value_enum)]
    pub backend: Option<Choice<v1::Backend>>,
    /// Token label or YubiKey serial.
    #[arg(long)]
    pub device: Option<String>,
    /// Directory to write NAME.pub to.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// YubiKey slot (9a, 9c, 9d, 9e, 82-95) [default: the first free one].
    #[arg(long)]
    pub slot: Option<String>,
    /// When the YubiKey asks for the PIN [default: once].
    #[arg(long, value_enum)]
    pub pin_policy: Option<Choice<v1::PinPolicy>>,
    /// When the YubiKey asks for a touch [default: the agent's touch_policy for the device].
    #[arg(long, value_enum)]
    pub touch_policy: Option<Choice<v1::TouchPolicy>>,
}

/// Arguments of `key list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Print each key's URI (RFC 7512 pkcs11: URI, or yubikey:SERIAL/SLOT), which every
    /// command that takes a KEY accepts.
    #[arg(long)]
    pub uri: bool,
}

/// Arguments of `key load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// PEM private key file (SEC1, PKCS#8 or encrypted PKCS#8).
    pub file: PathBuf,
    /// Name for the key.
    #[arg(long)]
    pub name: String,
}

/// Arguments of `key delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Name, key ID, pkcs11: URI or yubikey:SERIAL/SLOT.
    pub key: KeyRef,
}

/// Encoding of a signature written by `key sign`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SignatureFormat {
    /// 64 bytes r||s, as TUF's `ecdsa` method and PKCS#11 use.
    Raw,
    /// ASN.1 DER, as openssl and X.509 use.
    Der,
}

/// Arguments of `key sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Name, key ID, pkcs11: URI or yubikey:SERIAL/SLOT.
    pub key: KeyRef,
    /// File to sign.
    #[arg(long = "in")]
    pub input: PathBuf,
    /// Where to write the signature.
    #[arg(long)]
    pub out: PathBuf,
    /// Signature encoding.
    #[arg(long, value_enum, default_value = "raw")]
    pub format: SignatureFormat,
}

/// Arguments of `key public`.
#[derive(Debug, Args)]
pub struct PublicArgs {
    /// Name, key ID, pkcs11: URI or yubikey:SERIAL/SLOT.
    pub key: KeyRef,
}

/// Arguments of `key attest`.
#[derive(Debug, Args)]
pub struct AttestArgs {
    /// Name, key ID, pkcs11: URI or yubikey:SERIAL/SLOT.
    pub key: KeyRef,
}

/// Arguments of `key adopt`.
#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// The slot: yubikey:SERIAL/SLOT (as `tufa key list --uri` shows it).
    pub key: KeyRef,
    /// The name tufa gives the key.
    #[arg(long)]
    pub name: String,
}

impl AdoptArgs {
    /// Writes tufa's marker next to another tool's key; the key itself is not changed.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let key = ctx
            .agent()
            .await?
            .adopt(self.key.as_str(), &self.name)
            .await?;
        println!("Adopted {} as '{}' (key ID {})", self.key, key.name, key.id);
        Ok(())
    }
}

impl GenerateArgs {
    /// Makes the key, then NAME.pub; no key is left behind whose public half nobody has.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let agent = ctx.agent().await?;
        let pub_path = self.dir.join(format!("{}.pub", self.name));
        let pub_path = std::path::absolute(&pub_path).unwrap_or(pub_path);
        // Checked first, so a key is never made that cannot be written out.
        if pub_path.exists() {
            return Err(CliError::File {
                path: pub_path,
                message: "public key file already exists: remove it or use --dir".into(),
            });
        }
        println!("Generating key for {}...", self.name);
        let key = agent
            .generate(v1::GenerateKeyRequest {
                name: self.name.clone(),
                backend: self.backend.map_or(v1::Backend::Unspecified, |c| c.0) as i32,
                device: self.device.unwrap_or_default(),
                slot: self.slot.unwrap_or_default(),
                pin_policy: self.pin_policy.map_or(v1::PinPolicy::Unspecified, |c| c.0) as i32,
                touch_policy: self
                    .touch_policy
                    .map_or(v1::TouchPolicy::Unspecified, |c| c.0)
                    as i32,
                ..Default::default()
            })
            .await?;
        if let Err(e) = write_public_key(&pub_path, &self.name, key.spki()) {
            let _ = agent.delete(&key.id.to_string()).await;
            return Err(e);
        }
        println!(
            "Successfully generated and loaded private key. Corresponding public key available: {}",
            pub_path.display()
        );
        Ok(())
    }
}

impl ListArgs {
    /// Prints a table of the agent's keys, or JSON.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let keys = ctx.agent().await?.list_keys().await?;
        if self.json {
            let out: Vec<KeyJson> = keys.iter().map(KeyJson::from).collect();
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            return Ok(());
        }
        if keys.is_empty() {
            println!("No keys in the agent: `tufa key generate NAME` makes one");
            return Ok(());
        }
        if self.uri {
            let mut table = vec![["NAME", "KEY ID", "URI"].map(String::from).to_vec()];
            table.extend(
                keys.iter()
                    .map(|k| vec![display_name(k), k.id.to_string(), k.uri.clone()]),
            );
            print!("{}", table::render(&table));
            return Ok(());
        }
        // An agent that serves notary-server says which keys are the server's.
        let servers = keys.iter().any(|k| k.server.is_some());
        let mut header = vec!["NAME", "KEY ID", "BACKEND", "LOCATION", "ORIGIN"];
        if servers {
            header.push("FOR");
        }
        let mut rows = vec![header.into_iter().map(String::from).collect()];
        rows.extend(keys.iter().map(|k| {
            let mut row = vec![
                display_name(k),
                k.id.to_string(),
                Choice::word(k.backend),
                k.location.as_ref().map(short_location).unwrap_or_default(),
                if k.other_tool {
                    format!("other tool ({})", origin_name(k.origin))
                } else {
                    origin_name(k.origin).to_owned()
                },
            ];
            if servers {
                row.push(k.server.as_ref().map(server_text).unwrap_or_default());
            }
            row
        }));
        print!("{}", table::render(&rows));
        Ok(())
    }
}

impl LoadArgs {
    /// Imports the key file, asking for its passphrase when it is encrypted.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let agent = ctx.agent().await?;
        let file_name = self.file.display().to_string();
        println!("Loading key from \"{file_name}\"...");
        let pem = std::fs::read(&self.file).map_err(|e| CliError::File {
            path: self.file.clone(),
            message: format!("cannot read the key file: {e}"),
        })?;
        let passphrase = if pem.windows(9).any(|w| w == b"ENCRYPTED") {
            Some(passphrase_for(&pem)?)
        } else {
            None
        };
        agent
            .import(&self.name, pem, passphrase.as_ref())
            .await
            .map_err(|e| match e {
                // docker's words for a key the device refused.
                e @ AgentClientError::Agent { .. } => {
                    CliError::within(format!("error importing key from {file_name}"), e)
                }
                other => other.into(),
            })?;
        println!("Successfully imported key from {file_name}");
        Ok(())
    }
}

impl DeleteArgs {
    /// Deletes the key from its device.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let id = ctx.agent().await?.delete(self.key.as_str()).await?;
        if id == self.key.as_str() {
            println!("Deleted key {id}");
        } else {
            println!("Deleted key {} ({id})", self.key);
        }
        Ok(())
    }
}

impl SignArgs {
    /// Signs the file's SHA-256 and writes the signature in the chosen encoding.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let agent = ctx.agent().await?;
        let data = std::fs::read(&self.input).map_err(|e| CliError::File {
            path: self.input.clone(),
            message: format!("cannot read the file to sign: {e}"),
        })?;
        let key = agent.key(self.key.as_str()).await?;
        let raw = agent.sign(&key, &data, &SignContext::default()).await?;
        let bytes = match self.format {
            SignatureFormat::Raw => raw.as_bytes().to_vec(),
            SignatureFormat::Der => p256::ecdsa::Signature::from_slice(raw.as_bytes())
                .map_err(|e| AgentClientError::BadSignature {
                    key_id: key.id,
                    detail: e.to_string(),
                })?
                .to_der()
                .as_bytes()
                .to_vec(),
        };
        std::fs::write(&self.out, bytes).map_err(|e| CliError::File {
            path: self.out.clone(),
            message: format!("cannot write the signature: {e}"),
        })?;
        println!(
            "Signed {} with key {} ({}); signature in {}",
            self.input.display(),
            key.name,
            key.id,
            self.out.display()
        );
        Ok(())
    }
}

impl PublicArgs {
    /// Prints the public key as plain PEM.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let key = ctx.agent().await?.key(self.key.as_str()).await?;
        print!("{}", pem_text(&pem::Pem::new("PUBLIC KEY", key.spki())));
        Ok(())
    }
}

impl AttestArgs {
    /// Prints the key's attestation certificate, then the device's.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let reply = ctx.agent().await?.attest(self.key.as_str()).await?;
        for der in [reply.certificate_der, reply.intermediate_der] {
            print!("{}", pem_text(&pem::Pem::new("CERTIFICATE", der)));
        }
        Ok(())
    }
}

/// The passphrase of an encrypted key file: `TUFA_KEY_PASSPHRASE`, docker's variables for the
/// key's role, or a prompt on a terminal.
fn passphrase_for(pem: &[u8]) -> Result<SecretString, CliError> {
    let text = String::from_utf8_lossy(pem);
    let is_root = text.lines().any(|l| l.trim() == "role: root");
    let docker_var = if is_root {
        "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE"
    } else {
        "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE"
    };
    for var in ["TUFA_KEY_PASSPHRASE", docker_var] {
        if let Ok(v) = std::env::var(var) {
            return Ok(SecretString::from(v));
        }
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(format!(
            "the key file is encrypted and there is no terminal to ask for its passphrase: set TUFA_KEY_PASSPHRASE or {docker_var}"
        )));
    }
    rpassword::prompt_password("Enter passphrase for the key file: ")
        .map(SecretString::from)
        .map_err(|source| CliError::Io {
            doing: "cannot read the passphrase",
            source,
        })
}

/// A key as `key list --json` prints it.
#[derive(Serialize)]
struct KeyJson {
    key_id: String,
    name: String,
    backend: String,
    location: String,
    algorithm: &'static str,
    public_key: String,
    certificate: Option<String>,
    pin_policy: String,
    touch_policy: String,
    origin: &'static str,
    uri: String,
    other_tool: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<ServerJson>,
}

/// A notary-server key's tag, as `key list --json` prints it.
#[derive(Serialize)]
struct ServerJson {
    gun: String,
    role: String,
    used: bool,
}

/// What a notary-server key is for: `server timestamp GUN` (`, unused` until it signs).
fn server_text(s: &v1::ServerKey) -> String {
    let unused = if s.used { "" } else { " (unused)" };
    format!("server {} {}{unused}", s.role, s.gun)
}

impl From<&AgentKey> for KeyJson {
    fn from(k: &AgentKey) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD;
        Self {
            key_id: k.id.to_string(),
            name: k.name.clone(),
            backend: Choice::word(k.backend),
            location: k.location.as_ref().map(location_text).unwrap_or_default(),
            algorithm: "ecdsa-p256",
            public_key: b64.encode(k.spki()),
            certificate: k.certificate.as_ref().map(|der| b64.encode(der)),
            pin_policy: Choice::word(k.pin),
            touch_policy: Choice::word(k.touch),
            origin: origin_name(k.origin),
            server: k.server.as_ref().map(|s| ServerJson {
                gun: s.gun.clone(),
                role: s.role.clone(),
                used: s.used,
            }),
            uri: k.uri.clone(),
            other_tool: k.other_tool,
        }
    }
}

/// A key's name for a table: its name, or for a nameless key of another tool the subject of
/// its certificate (`(CN=...)`), with control characters of other tools' labels escaped.
fn display_name(k: &AgentKey) -> String {
    if !k.name.is_empty() {
        return k.name.escape_debug().to_string();
    }
    use x509_cert::der::Decode as _;
    let subject = k
        .certificate
        .as_deref()
        .and_then(|der| x509_cert::Certificate::from_der(der).ok())
        .map(|c| c.tbs_certificate().subject().to_string());
    match subject {
        Some(s) => format!("({})", s.escape_debug()),
        None => "(no name)".into(),
    }
}

fn origin_name(o: v1::KeyOrigin) -> &'static str {
    match o {
        v1::KeyOrigin::Generated => "generated",
        v1::KeyOrigin::Imported => "imported",
        _ => "unknown",
    }
}

/// A location without the module path, for tables.
pub(super) fn short_location(l: &Location) -> String {
    match l {
        Location::Pkcs11(p) => {
            format!("pkcs11:token={};serial={}", p.token_label, p.token_serial)
        }
        _ => location_text(l),
    }
}

/// Where a key or device is, in full: `pkcs11:token=..;serial=.. (module)`, `yubikey:SERIAL/SLOT`.
pub(super) fn location_text(l: &Location) -> String {
    match l {
        Location::Pkcs11(p) => {
            format!(
                "pkcs11:token={};serial={} ({})",
                p.token_label, p.token_serial, p.module
            )
        }
        Location::Yubikey(y) => {
            if y.slot.is_empty() {
                format!("yubikey:{}", y.serial)
            } else {
                format!("yubikey:{}/{}", y.serial, y.slot)
            }
        }
    }
}
