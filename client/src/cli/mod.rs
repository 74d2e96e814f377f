//! The `tufa` command line: each subcommand owns its arguments and a `run`.

use std::io::{IsTerminal as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;
use serde::Serialize;
use tufa_proto::v1;
use tufa_proto::v1::key_location::Location;

use crate::agent::{default_socket, AgentClient, AgentClientError, AgentKey, LazyAgent};

pub mod maintain;
pub mod notary;
pub mod plugin;
pub mod root;
pub mod table;
pub mod trust;

/// Hardware-backed signing for Docker Content Trust.
#[derive(Debug, Parser)]
#[command(name = "tufa", version)]
pub struct Cli {
    /// The agent's socket [default: $TUFA_AGENT_SOCK, else $XDG_RUNTIME_DIR/tufa/agent.sock].
    #[arg(long, global = true, value_name = "SOCKET")]
    pub agent: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Talk to the agent itself: status, unlock, lock.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Manage keys held by the agent.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The notary CLI's verbs (init, add, publish, list, delegations) with keys in the agent.
    Notary(notary::NotaryArgs),
    /// Root ceremonies with offline root keys, and key rotation.
    Root(root::RootArgs),
    /// Add or remove signers of a repository, as `docker trust signer`.
    #[command(subcommand)]
    Signer(SignerCommand),
    /// Sign IMAGE:TAG (digest and size from the registry), as `docker trust sign`.
    Sign(trust::SignArgs),
    /// Show signatures and keys, as `docker trust inspect`.
    Inspect(trust::InspectArgs),
    /// Remove signatures, as `docker trust revoke`.
    Revoke(trust::RevokeArgs),
    /// Check IMAGE:TAG as `DOCKER_CONTENT_TRUST=1 docker pull` would; print NAME@sha256:...
    Verify(trust::VerifyArgs),
    /// Install tufa as the docker CLI plugin `docker tufa` (a link in docker's plugin directory).
    InstallPlugin(InstallPluginArgs),
}

/// Arguments of `install-plugin`.
#[derive(Debug, Args)]
pub struct InstallPluginArgs {
    /// Plugin directory [default: $DOCKER_CONFIG/cli-plugins, else ~/.docker/cli-plugins].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// `tufa signer ...`.
#[derive(Debug, Subcommand)]
pub enum SignerCommand {
    /// Add a signer: `targets/NAME` and its key in `targets/releases`.
    Add(trust::SignerAddArgs),
    /// Remove a signer.
    Remove(trust::SignerRemoveArgs),
}

/// `tufa agent ...`.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Show the agent's devices, whether they are locked, and its version.
    Status(StatusArgs),
    /// Give the agent a device PIN, kept for the agent's PIN cache TTL.
    Unlock(UnlockArgs),
    /// Make the agent forget every PIN at once.
    Lock,
}

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
    Attest(PublicArgs),
    /// Take on a key another tool (ykman, yubico-piv-tool) made in a YubiKey slot: tufa's
    /// marker is written next to it; the key and its certificate are not changed.
    Adopt(AdoptArgs),
}

/// Arguments of `key adopt`.
#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// The slot: yubikey:SERIAL/SLOT (as `tufa key list --uri` shows it).
    pub key: String,
    /// The name tufa gives the key.
    #[arg(long)]
    pub name: String,
}

impl AdoptArgs {
    async fn run(self, agent: &AgentClient) -> Result<(), CliError> {
        let key = agent.adopt(&self.key, &self.name).await?;
        println!("Adopted {} as '{}' (key ID {})", self.key, key.name, key.id);
        Ok(())
    }
}

/// Arguments of `agent status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `agent unlock`.
#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Token label or YubiKey serial [default: the only device that needs a PIN].
    #[arg(long)]
    pub device: Option<String>,
    /// Read the PIN from the first line of this file instead of prompting.
    #[arg(long)]
    pub pin_file: Option<PathBuf>,
}

/// Which backend a new key goes to.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackendArg {
    /// A PKCS#11 token.
    Pkcs11,
    /// A YubiKey.
    Yubikey,
}

/// Arguments of `key generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Name of the key (the signer's name, for `tufa signer add`).
    pub name: String,
    /// Backend for the key [default: the agent's first device].
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
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
    pub pin_policy: Option<PinPolicyArg>,
    /// When the YubiKey asks for a touch [default: the agent's touch_policy for the device].
    #[arg(long, value_enum)]
    pub touch_policy: Option<TouchPolicyArg>,
}

/// `--pin-policy` of a YubiKey key.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PinPolicyArg {
    /// Never.
    Never,
    /// Once per agent session with the card.
    Once,
    /// Before every signature.
    Always,
}

/// `--touch-policy` of a YubiKey key.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TouchPolicyArg {
    /// Never.
    Never,
    /// Before every signature.
    Always,
    /// Once, then cached for 15 seconds.
    Cached,
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
    pub key: String,
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
    pub key: String,
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
    pub key: String,
}

/// Errors of the command line, each with what to do.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The agent said no.
    #[error(transparent)]
    Agent(#[from] AgentClientError),
    /// No socket could be found.
    #[error("no agent socket: pass --agent SOCKET or set TUFA_AGENT_SOCK (or XDG_RUNTIME_DIR)")]
    NoSocket,
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Input that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// A failure docker reports in these exact words, without tufa's `Error: ` prefix (scripts
    /// compare `tufa inspect`'s stderr with `docker trust inspect`'s).
    #[error("{0}")]
    AsDocker(String),
    /// A repository operation failed.
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The server's trust data failed verification and was not used.
    #[error(
        "{source}\nThe notary server {server} sent trust data for {gun} that failed \
         verification, so none of it was used: the server may be compromised or misconfigured. \
         The local trust data in {cache} was left as it was. Retry later; if this persists, \
         report it to whoever runs the server and do not rely on {gun} meanwhile"
    )]
    Untrusted {
        /// The server's URL.
        server: String,
        /// The repository.
        gun: crate::tuf::Gun,
        /// The repository's cached metadata directory.
        cache: PathBuf,
        /// The check that failed.
        source: Box<crate::tuf::UpdateError>,
    },
}

impl Cli {
    /// Runs the command.
    pub async fn run(self) -> Result<(), CliError> {
        let socket = self.agent.or_else(default_socket);
        // Reading trust data needs no agent; the notary verbs connect when they first need a key.
        let command = match self.command {
            Command::Inspect(a) => return a.run().await,
            Command::Verify(a) => return a.run().await,
            Command::InstallPlugin(a) => {
                let link = plugin::install(a.dir)?;
                println!(
                    "Installed {}: `docker tufa ...` now runs tufa",
                    link.display()
                );
                return Ok(());
            }
            Command::Notary(a) => return a.run(LazyAgent::new(socket).with_messages(say)).await,
            Command::Root(a) => return a.run(LazyAgent::new(socket).with_messages(say)).await,
            other => other,
        };
        let socket = socket.ok_or(CliError::NoSocket)?;
        let agent = AgentClient::connect(&socket).await?.with_messages(say);
        match command {
            Command::Inspect(_)
            | Command::Verify(_)
            | Command::InstallPlugin(_)
            | Command::Notary(_)
            | Command::Root(_) => Ok(()),
            Command::Signer(SignerCommand::Add(a)) => a.run(&agent).await,
            Command::Signer(SignerCommand::Remove(a)) => a.run(&agent).await,
            Command::Sign(a) => a.run(&agent).await,
            Command::Revoke(a) => a.run(&agent).await,
            Command::Agent(AgentCommand::Status(a)) => a.run(&agent).await,
            Command::Agent(AgentCommand::Unlock(a)) => a.run(&agent).await,
            Command::Agent(AgentCommand::Lock) => {
                let devices = agent.lock().await?;
                println!(
                    "Locked: the agent forgot the PINs of {}",
                    devices.join(", ")
                );
                Ok(())
            }
            Command::Key(KeyCommand::Generate(a)) => a.run(&agent).await,
            Command::Key(KeyCommand::List(a)) => a.run(&agent).await,
            Command::Key(KeyCommand::Adopt(a)) => a.run(&agent).await,
            Command::Key(KeyCommand::Load(a)) => a.run(&agent).await,
            Command::Key(KeyCommand::Sign(a)) => a.run(&agent).await,
            Command::Key(KeyCommand::Public(a)) => {
                let key = agent.key(&a.key).await?;
                let pem = pem::encode_config(
                    &pem::Pem::new("PUBLIC KEY", key.spki()),
                    pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
                );
                print!("{pem}");
                Ok(())
            }
            Command::Key(KeyCommand::Attest(a)) => {
                let reply = agent.attest(&a.key).await?;
                let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
                for der in [reply.certificate_der, reply.intermediate_der] {
                    print!(
                        "{}",
                        pem::encode_config(&pem::Pem::new("CERTIFICATE", der), lf)
                    );
                }
                Ok(())
            }
            Command::Key(KeyCommand::Delete(a)) => {
                let id = agent.delete(&a.key).await?;
                if id == a.key {
                    println!("Deleted key {id}");
                } else {
                    println!("Deleted key {} ({id})", a.key);
                }
                Ok(())
            }
        }
    }
}

/// What the agent client tells the user (a YubiKey waiting for a touch): a line on stderr.
fn say(message: &str) {
    eprintln!("{message}");
}

impl StatusArgs {
    async fn run(self, agent: &AgentClient) -> Result<(), CliError> {
        let s = agent.status().await?;
        if self.json {
            let devices: Vec<_> = s
                .devices
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "backend": backend_name(d.backend()),
                        "name": d.name,
                        "location": d.location.as_ref().map(|l| l.location.as_ref().map(location_text).unwrap_or_default()),
                        "present": d.present,
                        "locked": d.locked,
                        "keys": d.key_count,
                        "detail": d.detail,
                    })
                })
                .collect();
            let out = serde_json::json!({
                "version": s.version,
                "socket": agent.socket(),
                "pin_cache_ttl_seconds": s.pin_cache_ttl_seconds,
                "devices": devices,
            });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            return Ok(());
        }
        println!("tufad {} on {}", s.version, agent.socket().display());
        println!("PIN cache TTL: {}s", s.pin_cache_ttl_seconds);
        for d in &s.devices {
            let state = match (d.present, d.locked) {
                (false, _) => format!("absent: {}", d.detail),
                (true, true) => format!("present, locked, {}", keys_text(d.key_count)),
                (true, false) => format!("present, unlocked, {}", keys_text(d.key_count)),
            };
            println!(
                "{} {} ({}): {state}",
                backend_name(d.backend()),
                d.name,
                d.location
                    .as_ref()
                    .and_then(|l| l.location.as_ref())
                    .map(location_text)
                    .unwrap_or_default()
            );
        }
        Ok(())
    }
}

impl UnlockArgs {
    async fn run(self, agent: &AgentClient) -> Result<(), CliError> {
        let pin = match &self.pin_file {
            Some(path) => read_secret_line(path)?,
            None => {
                if !std::io::stdin().is_terminal() {
                    return Err(CliError::Usage(
                        "no terminal to ask for the PIN: pass --pin-file FILE".into(),
                    ));
                }
                let prompt = match &self.device {
                    Some(d) => format!("PIN for {d}: "),
                    None => "PIN: ".to_owned(),
                };
                SecretString::from(rpassword::prompt_password(prompt).map_err(|e| {
                    CliError::Usage(format!("cannot read the PIN from the terminal: {e}"))
                })?)
            }
        };
        let reply = agent
            .unlock(self.device.as_deref().unwrap_or_default(), &pin)
            .await?;
        println!(
            "Unlocked {} for {} seconds",
            reply.device, reply.ttl_seconds
        );
        Ok(())
    }
}

impl GenerateArgs {
    async fn run(self, agent: &AgentClient) -> Result<(), CliError> {
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
                backend: match self.backend {
                    None => v1::Backend::Unspecified,
                    Some(BackendArg::Pkcs11) => v1::Backend::Pkcs11,
                    Some(BackendArg::Yubikey) => v1::Backend::Yubikey,
                } as i32,
                device: self.device.unwrap_or_default(),
                slot: self.slot.unwrap_or_default(),
                pin_policy: match self.pin_policy {
                    None => v1::PinPolicy::Unspecified,
                    Some(PinPolicyArg::Never) => v1::PinPolicy::Never,
                    Some(PinPolicyArg::Once) => v1::PinPolicy::Once,
                    Some(PinPolicyArg::Always) => v1::PinPolicy::Always,
                } as i32,
                touch_policy: match self.touch_policy {
                    None => v1::TouchPolicy::Unspecified,
                    Some(TouchPolicyArg::Never) => v1::TouchPolicy::Never,
                    Some(TouchPolicyArg::Always) => v1::TouchPolicy::Always,
                    Some(TouchPolicyArg::Cached) => v1::TouchPolicy::Cached,
                } as i32,
                ..Default::default()
            })
            .await?;
        if let Err(e) = write_public_key(&pub_path, &self.name, key.spki()) {
            // No key is left behind whose public half nobody has.
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
    async fn run(self, agent: &AgentClient) -> Result<(), CliError> {
        let keys = agent.list_keys().await?;
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
        let rows: Vec<[String; 5]> = keys
            .iter()
            .map(|k| {
                [
                    display_name(k),
                    k.id.to_string(),
                    backend_name(k.backend).to_owned(),
                    k.location.as_ref().map(short_location).unwrap_or_default(),
                    if k.other_tool {
                        format!("other tool ({})", origin_name(k.origin))
                    } else {
                        origin_name(k.origin).to_owned()
                    },
                ]
            })
            .collect();
        let mut table = vec![["NAME", "KEY ID", "BACKEND", "LOCATION", "ORIGIN"]
            .map(String::from)
            .to_vec()];
        table.extend(rows.into_iter().map(|r| r.to_vec()));
        print!("{}", table::render(&table));
        Ok(())
    }
}

impl SignArgs {
    async fn run(self, agent: &AgentClient) -> Result<(), CliError> {
        let data = std::fs::read(&self.input).map_err(|e| CliError::File {
            path: self.input.clone(),
            message: format!("cannot read the file to sign: {e}"),
        })?;
        let key = agent.key(&self.key).await?;
        let context = crate::agent::SignContext::default();
        let raw = agent.sign(&key, &data, &context).await?;
        let bytes = match self.format {
            SignatureFormat::Raw => raw.as_bytes().to_vec(),
            SignatureFormat::Der => p256::ecdsa::Signature::from_slice(raw.as_bytes())
                .map_err(|e| CliError::Usage(format!("bad signature from the agent: {e}")))?
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

impl LoadArgs {
    async fn run(self, agent: &AgentClient) -> Result<(), CliError> {
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
                AgentClientError::Agent { message, .. } => {
                    CliError::Usage(format!("error importing key from {file_name}: {message}"))
                }
                other => other.into(),
            })?;
        println!("Successfully imported key from {file_name}");
        Ok(())
    }
}

/// Reads public key files (PEM `PUBLIC KEY`, e.g. NAME.pub, or `CERTIFICATE`).
pub(crate) fn read_public_keys(paths: &[PathBuf]) -> Result<Vec<crate::tuf::PublicKey>, CliError> {
    paths
        .iter()
        .map(|path| {
            let pem = std::fs::read(path).map_err(|e| CliError::File {
                path: path.clone(),
                message: format!("cannot read the public key: {e}"),
            })?;
            crate::tuf::PublicKey::from_pem(&pem).map_err(|e| CliError::File {
                path: path.clone(),
                message: e.to_string(),
            })
        })
        .collect()
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
        .map_err(|e| CliError::Usage(format!("cannot read the passphrase: {e}")))
}

fn read_secret_line(path: &Path) -> Result<SecretString, CliError> {
    let text =
        zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| CliError::File {
            path: path.to_owned(),
            message: format!("cannot read the PIN file: {e}"),
        })?);
    Ok(SecretString::from(
        text.lines().next().unwrap_or_default().to_owned(),
    ))
}

/// Writes NAME.pub as docker does: PEM `PUBLIC KEY` with a `role: NAME` header, mode 0600.
fn write_public_key(path: &Path, name: &str, spki: &[u8]) -> Result<(), CliError> {
    let err = |e: std::io::Error| CliError::File {
        path: path.to_owned(),
        message: format!("cannot write the public key: {e}"),
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(public_key_pem(name, spki).as_bytes())
        .map_err(err)
}

/// The PEM text docker writes for a public key, with its `role` header.
pub fn public_key_pem(role: &str, spki: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(spki);
    let mut out = format!("-----BEGIN PUBLIC KEY-----\nrole: {role}\n\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}

#[derive(Serialize)]
struct KeyJson {
    key_id: String,
    name: String,
    backend: &'static str,
    location: String,
    algorithm: &'static str,
    public_key: String,
    certificate: Option<String>,
    pin_policy: &'static str,
    touch_policy: &'static str,
    origin: &'static str,
    uri: String,
    other_tool: bool,
}

impl From<&AgentKey> for KeyJson {
    fn from(k: &AgentKey) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD;
        Self {
            key_id: k.id.to_string(),
            name: k.name.clone(),
            backend: backend_name(k.backend),
            location: k.location.as_ref().map(location_text).unwrap_or_default(),
            algorithm: "ecdsa-p256",
            public_key: b64.encode(k.spki()),
            certificate: k.certificate.as_ref().map(|der| b64.encode(der)),
            pin_policy: match k.pin {
                v1::PinPolicy::Never => "never",
                v1::PinPolicy::Once => "once",
                v1::PinPolicy::Always => "always",
                _ => "unknown",
            },
            touch_policy: match k.touch {
                v1::TouchPolicy::Never => "never",
                v1::TouchPolicy::Always => "always",
                v1::TouchPolicy::Cached => "cached",
                _ => "unknown",
            },
            origin: origin_name(k.origin),
            uri: k.uri.clone(),
            other_tool: k.other_tool,
        }
    }
}

fn keys_text(n: u32) -> String {
    if n == 1 {
        "1 key".into()
    } else {
        format!("{n} keys")
    }
}

fn backend_name(b: v1::Backend) -> &'static str {
    match b {
        v1::Backend::Pkcs11 => "pkcs11",
        v1::Backend::Yubikey => "yubikey",
        _ => "unknown",
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
fn short_location(l: &Location) -> String {
    match l {
        Location::Pkcs11(p) => {
            format!("pkcs11:token={};serial={}", p.token_label, p.token_serial)
        }
        _ => location_text(l),
    }
}

fn location_text(l: &Location) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_pem_matches_docker() {
        // Docker writes the role header, a blank line, then 64-column base64.
        let pem = public_key_pem("alice", &[0u8; 91]);
        let lines: Vec<_> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN PUBLIC KEY-----");
        assert_eq!(lines[1], "role: alice");
        assert_eq!(lines[2], "");
        assert_eq!(lines[3].len(), 64);
        assert_eq!(*lines.last().unwrap(), "-----END PUBLIC KEY-----");
    }
}
