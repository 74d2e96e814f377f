//! `tufad`'s configuration: a TOML file, with flags for everything a one-token CI runner needs.
//!
//! ```toml
//! socket = "/run/user/1000/tufa/agent.sock"   # default: $XDG_RUNTIME_DIR/tufa/agent.sock
//! audit_log = "/var/log/tufa/audit.log"       # default: no audit log
//! allowed_uids = [1001]                       # besides the agent's own uid
//! pin_cache_ttl_seconds = 900                 # how long an unlock PIN is kept
//! state_dir = "/var/lib/tufa"                 # default: $STATE_DIRECTORY, else
//!                                             # $XDG_STATE_HOME/tufa or ~/.local/state/tufa
//!
//! [[pkcs11]]
//! module = "/usr/lib/softhsm/libsofthsm2.so"
//! token = "tufa"                              # token label
//! # or the RFC 7512 way: uri = "pkcs11:token=tufa;serial=1234?module-path=/usr/lib/...so"
//! #   (token, serial, model, manufacturer; module-path, pin-source=file:PATH)
//! pin_file = "/etc/tufa/pin"                  # or pin_env = "TUFA_PKCS11_PIN", or neither: unlock
//! sessions = 4                                # signing sessions kept open
//!
//! [[yubikey]]
//! serial = 12345678
//! pin_file = "/etc/tufa/yubikey-pin"          # or pin_env, or neither: unlock
//! management_key = "default"                  # or "protected", or { file = "/etc/tufa/mgm.hex" }
//! touch_policy = "never"                      # new keys' touch policy: never, always, cached
//!
//! [[client]]                                  # what another uid may do (see crate::policy)
//! uid = 1001                                  # or gid = N; the uid needs no allowed_uids entry
//! allow = ["status", "list", "sign"]
//! keys = ["ci-*"]
//! [notary_signer]                             # serve notary-server as its signer (off without it)
//! listen = "127.0.0.1:7899"                   # TCP address of notary-server's trust_service
//! tls_cert = "/etc/tufa/signer.crt"           # this listener's certificate chain (PEM)
//! tls_key = "/etc/tufa/signer.key"            # and its private key (PEM)
//! client_ca = "/etc/tufa/notary-server-ca.crt" # notary-server's client certificate chains here
//! device = "hsm"                              # token label (or YubiKey serial) of the server keys
//!
//! [limits]                                    # what one caller may hold; the defaults:
//! connections_per_uid = 32
//! streams_per_connection = 16
//! device_calls_per_uid = 8
//! idle_timeout_seconds = 60
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::backend::pkcs11::{Pkcs11Config, TokenSelect};
use crate::backend::yubikey::{ManagementKey, YubiKeyConfig};
use crate::backend::TouchPolicy;
use crate::keys::Pkcs11Uri;
use crate::pin::PinSource;
use crate::policy::{ClientRule, ClientSection, Who};

/// The file's shape; unknown keys are errors so typos do not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Socket path.
    pub socket: Option<PathBuf>,
    /// Audit log path.
    pub audit_log: Option<PathBuf>,
    /// uids allowed besides the agent's own.
    #[serde(default)]
    pub allowed_uids: Vec<u32>,
    /// Unlock PIN lifetime in seconds.
    pub pin_cache_ttl_seconds: Option<u64>,
    /// Where the agent keeps what must outlive it (refused-PIN records).
    pub state_dir: Option<PathBuf>,
    /// PKCS#11 tokens.
    #[serde(default)]
    pub pkcs11: Vec<Pkcs11Section>,
    /// YubiKeys.
    #[serde(default)]
    pub yubikey: Vec<YubiKeySection>,
    /// Per-caller limits.
    pub limits: Option<LimitsSection>,
    /// Per-client rules.
    #[serde(default)]
    pub client: Vec<ClientSection>,
    /// The notary-signer listener.
    pub notary_signer: Option<NotarySignerSection>,
}

/// The `[notary_signer]` table: every key is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotarySignerSection {
    /// TCP address to listen on.
    pub listen: String,
    /// PEM certificate chain of the listener.
    pub tls_cert: PathBuf,
    /// PEM private key of the listener.
    pub tls_key: PathBuf,
    /// PEM CA certificate(s) the client certificate must chain to.
    pub client_ca: PathBuf,
    /// Token label or YubiKey serial holding the server keys.
    pub device: String,
}

/// The notary-signer listener's settings (`[notary_signer]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotarySigner {
    /// TCP address to listen on.
    pub listen: std::net::SocketAddr,
    /// PEM certificate chain of the listener.
    pub tls_cert: PathBuf,
    /// PEM private key of the listener.
    pub tls_key: PathBuf,
    /// PEM CA certificate(s) the client certificate must chain to.
    pub client_ca: PathBuf,
    /// Token label or YubiKey serial holding the server keys.
    pub device: String,
}

/// The `[limits]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Open connections per uid.
    pub connections_per_uid: Option<usize>,
    /// Concurrent calls per connection.
    pub streams_per_connection: Option<u32>,
    /// Device operations per uid running or waiting for a device.
    pub device_calls_per_uid: Option<usize>,
    /// Seconds a connection may stay silent.
    pub idle_timeout_seconds: Option<u64>,
}

/// What one caller may hold, so that no neighbour can starve the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections per uid; more are closed as they are accepted.
    pub connections_per_uid: usize,
    /// Concurrent calls (HTTP/2 streams) per connection.
    pub streams_per_connection: u32,
    /// Device operations per uid that may run at once; more wait their turn.
    pub device_calls_per_uid: usize,
    /// A connection from which nothing arrives for this long is closed (live clients answer
    /// the agent's pings well within it).
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections_per_uid: 32,
            streams_per_connection: 16,
            device_calls_per_uid: 8,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// One `[[yubikey]]` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YubiKeySection {
    /// Device serial.
    pub serial: u32,
    /// PIN file.
    pub pin_file: Option<PathBuf>,
    /// PIN environment variable.
    pub pin_env: Option<String>,
    /// `"default"`, `"protected"` or `{ file = PATH }`.
    pub management_key: Option<ManagementKeySetting>,
    /// `"never"`, `"always"` or `"cached"`.
    pub touch_policy: Option<String>,
}

/// How a `[[yubikey]]` section names its management key.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ManagementKeySetting {
    /// `"default"` or `"protected"`.
    Named(String),
    /// `{ file = PATH }`.
    File {
        /// The file holding the key in hex.
        file: PathBuf,
    },
}

/// One `[[pkcs11]]` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Section {
    /// Module path (or `module-path` in `uri`).
    pub module: Option<PathBuf>,
    /// Token label (or `token` in `uri`).
    pub token: Option<String>,
    /// An RFC 7512 URI naming the token.
    pub uri: Option<String>,
    /// PIN file.
    pub pin_file: Option<PathBuf>,
    /// PIN environment variable.
    pub pin_env: Option<String>,
    /// Signing sessions.
    pub sessions: Option<usize>,
}

/// The settings the agent runs with, after the file and the flags are merged.
#[derive(Debug, Clone)]
pub struct Config {
    /// Socket path.
    pub socket: PathBuf,
    /// Audit log path.
    pub audit_log: Option<PathBuf>,
    /// uids allowed besides the agent's own: `allowed_uids`, and every uid a `[[client]]` rule
    /// covers.
    pub allowed_uids: Vec<u32>,
    /// What each allowed uid may do.
    pub clients: Vec<ClientRule>,
    /// Unlock PIN lifetime.
    pub pin_cache_ttl: Duration,
    /// Where refused-PIN records are kept; `None`: nowhere (refusals last until restart).
    pub state_dir: Option<PathBuf>,
    /// PKCS#11 tokens.
    pub pkcs11: Vec<Pkcs11Config>,
    /// YubiKeys.
    pub yubikeys: Vec<YubiKeyConfig>,
    /// Per-caller limits.
    pub limits: Limits,
    /// The notary-signer listener, if configured.
    pub notary_signer: Option<NotarySigner>,
}

/// Settings given as flags; each overrides the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--socket` (or `TUFA_AGENT_SOCK`).
    pub socket: Option<PathBuf>,
    /// `--audit-log`.
    pub audit_log: Option<PathBuf>,
    /// `--pkcs11-module`.
    pub pkcs11_module: Option<PathBuf>,
    /// `--pkcs11-token`.
    pub pkcs11_token: Option<String>,
    /// `--pkcs11-pin-file`.
    pub pkcs11_pin_file: Option<PathBuf>,
    /// `--pin-cache-ttl`.
    pub pin_cache_ttl_seconds: Option<u64>,
    /// `--yubikey SERIAL`, repeatable.
    pub yubikeys: Vec<u32>,
    /// `--yubikey-pin-file`.
    pub yubikey_pin_file: Option<PathBuf>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML for this config (the message has line, column and key).
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value that cannot work.
    #[error("invalid config{}: {key}: {message}", path.as_ref().map(|p| format!(" file {}", p.display())).unwrap_or_default())]
    Invalid {
        /// The file, if the value came from one.
        path: Option<PathBuf>,
        /// The key.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
}

impl Config {
    /// The default PIN cache lifetime (15 minutes).
    pub const DEFAULT_PIN_TTL: Duration = Duration::from_secs(15 * 60);

    /// Reads the file (if any) and applies the flags.
    pub fn load(path: Option<&Path>, flags: Overrides) -> Result<Self, ConfigError> {
        let file = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|error| ConfigError::Read {
                    path: p.to_owned(),
                    error,
                })?;
                // The parser's own text quotes the offending line, which may hold a PIN or a
                // key written in the wrong place: give its position and complaint only.
                toml::from_str::<ConfigFile>(&text).map_err(|e| ConfigError::Parse {
                    path: p.to_owned(),
                    message: match e.span() {
                        Some(span) => {
                            let line = text[..span.start].matches('\n').count() + 1;
                            // The key's name, never its value.
                            let key = text
                                .lines()
                                .nth(line - 1)
                                .and_then(|l| l.split_once('='))
                                .map(|(k, _)| format!(" (`{}`)", k.trim()))
                                .unwrap_or_default();
                            format!("line {line}{key}: {}", e.message())
                        }
                        None => e.message().to_owned(),
                    },
                })?
            }
            None => ConfigFile::default(),
        };
        Self::merge(file, path, flags)
    }

    fn merge(file: ConfigFile, path: Option<&Path>, flags: Overrides) -> Result<Self, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.map(Path::to_owned),
            key: key.to_owned(),
            message,
        };
        let state_dir = file.state_dir.clone().or_else(default_state_dir);
        if let Some(d) = &state_dir {
            if d.is_relative() {
                return Err(invalid(
                    "state_dir",
                    format!("'{}' is relative: give an absolute path", d.display()),
                ));
            }
        }
        let mut pkcs11 = Vec::new();
        for (i, s) in file.pkcs11.into_iter().enumerate() {
            let key = |k: &str| format!("pkcs11[{i}].{k}");
            let mut pin = pin_source(s.pin_file, s.pin_env).ok_or_else(|| {
                invalid(
                    &key("pin_file"),
                    "pin_file and pin_env both set: keep one".into(),
                )
            })?;
            let (mut module, mut token) = (s.module, s.token);
            let mut select = TokenSelect::default();
            if let Some(text) = &s.uri {
                let uri = token_uri(text).map_err(|m| invalid(&key("uri"), m))?;
                let twice = |what: &str, setting: &str| {
                    invalid(
                        &key("uri"),
                        format!("the {what} is given in uri and in {setting}: keep one"),
                    )
                };
                if let Some(label) = uri.token {
                    if token.is_some() {
                        return Err(twice("token label", "token"));
                    }
                    token = Some(label);
                }
                if let Some(path) = uri.module_path {
                    if module.is_some() {
                        return Err(twice("module", "module"));
                    }
                    module = Some(PathBuf::from(path));
                }
                if let Some(source) = uri.pin_source {
                    if pin != PinSource::Unlock {
                        return Err(twice("PIN source", "pin_file or pin_env"));
                    }
                    pin = pin_source_of_uri(&source).map_err(|m| invalid(&key("uri"), m))?;
                }
                select = TokenSelect {
                    serial: uri.serial,
                    model: uri.model,
                    manufacturer: uri.manufacturer,
                };
            }
            let module = module.ok_or_else(|| {
                invalid(
                    &key("module"),
                    "no module: set module, or module-path in uri".into(),
                )
            })?;
            let token = token.filter(|t| !t.is_empty()).ok_or_else(|| {
                invalid(
                    &key("token"),
                    "no token label: set token, or token= in uri".into(),
                )
            })?;
            let sessions = s.sessions.unwrap_or(4);
            if !(1..=64).contains(&sessions) {
                return Err(invalid(&key("sessions"), "must be between 1 and 64".into()));
            }
            pkcs11.push(Pkcs11Config {
                module: module.display().to_string(),
                token,
                select,
                pin,
                sessions,
                state_dir: state_dir.clone(),
            });
        }
        match (flags.pkcs11_module, flags.pkcs11_token) {
            (Some(module), Some(token)) => pkcs11.push(Pkcs11Config {
                module: module.display().to_string(),
                token,
                pin: flags
                    .pkcs11_pin_file
                    .map(PinSource::File)
                    .unwrap_or_default(),
                sessions: 4,
                select: TokenSelect::default(),
                state_dir: state_dir.clone(),
            }),
            (None, None) => {
                if flags.pkcs11_pin_file.is_some() {
                    return Err(invalid(
                        "--pkcs11-pin-file",
                        "goes with --pkcs11-module and --pkcs11-token".into(),
                    ));
                }
            }
            (Some(_), None) => {
                return Err(invalid(
                    "--pkcs11-token",
                    "--pkcs11-module needs --pkcs11-token LABEL".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "--pkcs11-module",
                    "--pkcs11-token needs --pkcs11-module PATH".into(),
                ))
            }
        }
        let mut yubikeys = Vec::new();
        for (i, s) in file.yubikey.into_iter().enumerate() {
            let key = |k: &str| format!("yubikey[{i}].{k}");
            let pin = pin_source(s.pin_file, s.pin_env).ok_or_else(|| {
                invalid(
                    &key("pin_file"),
                    "pin_file and pin_env both set: keep one".into(),
                )
            })?;
            let management_key = match s.management_key {
                None => ManagementKey::Default,
                Some(ManagementKeySetting::Named(n)) if n == "default" => ManagementKey::Default,
                Some(ManagementKeySetting::Named(n)) if n == "protected" => {
                    ManagementKey::Protected
                }
                Some(ManagementKeySetting::Named(_)) => {
                    return Err(invalid(
                        &key("management_key"),
                        // Not echoed: a key written here by mistake must not reach the log.
                        "use \"default\", \"protected\" or { file = \"PATH\" } (a key itself does not belong in the config)".into(),
                    ));
                }
                Some(ManagementKeySetting::File { file }) => ManagementKey::File(file),
            };
            let touch_policy = match s.touch_policy.as_deref() {
                None | Some("never") => TouchPolicy::Never,
                Some("always") => TouchPolicy::Always,
                Some("cached") => TouchPolicy::Cached,
                Some(other) => {
                    return Err(invalid(
                        &key("touch_policy"),
                        format!("'{other}': use never, always or cached"),
                    ))
                }
            };
            yubikeys.push(YubiKeyConfig {
                serial: s.serial,
                pin,
                management_key,
                touch_policy,
                state_dir: state_dir.clone(),
            });
        }
        let flag_yubikeys = !flags.yubikeys.is_empty();
        for serial in flags.yubikeys {
            // A card the file configures keeps its section; the flag's PIN file wins.
            if let Some(y) = yubikeys.iter_mut().find(|y| y.serial == serial) {
                if let Some(f) = &flags.yubikey_pin_file {
                    y.pin = PinSource::File(f.clone());
                }
                continue;
            }
            yubikeys.push(YubiKeyConfig {
                serial,
                pin: flags
                    .yubikey_pin_file
                    .clone()
                    .map(PinSource::File)
                    .unwrap_or_default(),
                management_key: ManagementKey::Default,
                touch_policy: TouchPolicy::Never,
                state_dir: state_dir.clone(),
            });
        }
        if flags.yubikey_pin_file.is_some() && !flag_yubikeys {
            return Err(invalid(
                "--yubikey-pin-file",
                "goes with --yubikey SERIAL".into(),
            ));
        }
        if pkcs11.is_empty() && yubikeys.is_empty() {
            return Err(invalid(
                "pkcs11",
                "no device configured: add a [[pkcs11]] or [[yubikey]] section, or pass --pkcs11-module and --pkcs11-token, or --yubikey SERIAL".into(),
            ));
        }
        let ttl = flags
            .pin_cache_ttl_seconds
            .or(file.pin_cache_ttl_seconds)
            .map(Duration::from_secs)
            .unwrap_or(Self::DEFAULT_PIN_TTL);
        let socket = match flags.socket.or(file.socket) {
            Some(s) => s,
            None => default_socket().ok_or_else(|| {
                invalid(
                    "socket",
                    "no XDG_RUNTIME_DIR to put the socket in: set socket, --socket or TUFA_AGENT_SOCK".into(),
                )
            })?,
        };
        let limits = limits(file.limits.unwrap_or_default(), &invalid)?;
        let clients = crate::policy::rules(file.client, &crate::policy::system_group_members)
            .map_err(|e| invalid(&e.key, e.message))?;
        // A rule lets its uids in: naming them in allowed_uids too is not needed.
        let mut allowed_uids = file.allowed_uids;
        for rule in &clients {
            match &rule.who {
                Who::Uid(u) => allowed_uids.push(*u),
                Who::Gid { members, .. } => allowed_uids.extend(members),
            }
        }
        allowed_uids.sort_unstable();
        allowed_uids.dedup();
        let notary_signer = file
            .notary_signer
            .map(|s| notary_signer(s, &invalid))
            .transpose()?;
        Ok(Self {
            socket,
            audit_log: flags.audit_log.or(file.audit_log),
            allowed_uids,
            clients,
            pin_cache_ttl: ttl,
            state_dir,
            pkcs11,
            yubikeys,
            limits,
            notary_signer,
        })
    }
}

/// The `[notary_signer]` table, checked: an address to bind, and a device.
fn notary_signer(
    s: NotarySignerSection,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<NotarySigner, ConfigError> {
    let listen = s.listen.parse().map_err(|_| {
        invalid(
            "notary_signer.listen",
            format!(
                "'{}' is not an IP address and port: write e.g. \"127.0.0.1:7899\" (notary-server's trust_service hostname and port)",
                s.listen
            ),
        )
    })?;
    if s.device.is_empty() {
        return Err(invalid(
            "notary_signer.device",
            "name the token label (or YubiKey serial) that holds the server keys".into(),
        ));
    }
    Ok(NotarySigner {
        listen,
        tls_cert: s.tls_cert,
        tls_key: s.tls_key,
        client_ca: s.client_ca,
        device: s.device,
    })
}

/// The `[limits]` table over the defaults, each value within its range.
fn limits(
    s: LimitsSection,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Limits, ConfigError> {
    fn within<T: PartialOrd + std::fmt::Display + Copy>(
        value: Option<T>,
        default: T,
        (min, max): (T, T),
        key: &str,
        invalid: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<T, ConfigError> {
        match value {
            None => Ok(default),
            Some(v) if v >= min && v <= max => Ok(v),
            Some(_) => Err(invalid(
                &format!("limits.{key}"),
                format!("must be between {min} and {max}"),
            )),
        }
    }
    let d = Limits::default();
    Ok(Limits {
        connections_per_uid: within(
            s.connections_per_uid,
            d.connections_per_uid,
            (1, 4096),
            "connections_per_uid",
            invalid,
        )?,
        streams_per_connection: within(
            s.streams_per_connection,
            d.streams_per_connection,
            (1, 1024),
            "streams_per_connection",
            invalid,
        )?,
        device_calls_per_uid: within(
            s.device_calls_per_uid,
            d.device_calls_per_uid,
            (1, 64),
            "device_calls_per_uid",
            invalid,
        )?,
        idle_timeout: Duration::from_secs(within(
            s.idle_timeout_seconds,
            d.idle_timeout.as_secs(),
            (1, 86_400),
            "idle_timeout_seconds",
            invalid,
        )?),
    })
}

/// A `[[pkcs11]]` section's `uri`: a token, never a key, and never a PIN.
fn token_uri(text: &str) -> Result<Pkcs11Uri, String> {
    let uri: Pkcs11Uri = text
        .parse()
        .map_err(|e: crate::keys::UriError| e.to_string())?;
    uri.refuse(
        &[
            "token",
            "serial",
            "model",
            "manufacturer",
            "module-path",
            "pin-source",
        ],
        "a [[pkcs11]] section's uri, which names a token",
    )
    .map_err(|e| e.to_string())?;
    Ok(uri)
}

/// `pin-source` as RFC 7512 has it: a `file:` URI or an absolute path.
fn pin_source_of_uri(source: &str) -> Result<PinSource, String> {
    let path = source.strip_prefix("file:").unwrap_or(source);
    let path = path.strip_prefix("//").unwrap_or(path);
    if !path.starts_with('/') {
        return Err(format!(
            "pin-source '{source}': tufa reads a PIN from a file only (pin-source=file:/ABSOLUTE/PATH)"
        ));
    }
    Ok(PinSource::File(PathBuf::from(path)))
}

/// Where a device's PIN comes from; `None` when both a file and a variable are given.
fn pin_source(file: Option<PathBuf>, env: Option<String>) -> Option<PinSource> {
    match (file, env) {
        (Some(_), Some(_)) => None,
        (Some(f), None) => Some(PinSource::File(f)),
        (None, Some(v)) => Some(PinSource::Env(v)),
        (None, None) => Some(PinSource::Unlock),
    }
}

/// The state directory when the file names none: systemd's `StateDirectory=` (the first of
/// `$STATE_DIRECTORY`), else `$XDG_STATE_HOME/tufa`, else `~/.local/state/tufa`.
pub fn default_state_dir() -> Option<PathBuf> {
    let var = |v: &str| std::env::var_os(v).filter(|d| !d.is_empty());
    if let Some(dirs) = var("STATE_DIRECTORY") {
        return std::env::split_paths(&dirs).next();
    }
    var("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|d| d.join("tufa"))
}

/// `$XDG_RUNTIME_DIR/tufa/agent.sock`, the socket both binaries use by default.
pub fn default_socket() -> Option<PathBuf> {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join("tufa").join("agent.sock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tufad.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(Some(&p), Overrides::default())
    }

    #[test]
    fn reads_a_full_file() {
        let c = load(
            "socket = \"/tmp/x.sock\"\nallowed_uids = [7]\npin_cache_ttl_seconds = 60\n\
             [[pkcs11]]\nmodule = \"/m.so\"\ntoken = \"t\"\npin_env = \"PIN\"\n",
        )
        .unwrap();
        assert_eq!(c.socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(c.allowed_uids, vec![7]);
        assert_eq!(c.pin_cache_ttl, Duration::from_secs(60));
        assert_eq!(c.pkcs11[0].pin, PinSource::Env("PIN".into()));
        assert_eq!(c.limits, Limits::default());
    }

    #[test]
    fn reads_limits_within_their_ranges() {
        let base = "socket = \"/tmp/x.sock\"\n[[pkcs11]]\nmodule = \"/m.so\"\ntoken = \"t\"\n";
        let c = load(&format!(
            "{base}[limits]\nconnections_per_uid = 4\nidle_timeout_seconds = 2\n"
        ))
        .unwrap();
        assert_eq!(c.limits.connections_per_uid, 4);
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(2));
        assert_eq!(c.limits.streams_per_connection, 16);
        let e = load(&format!("{base}[limits]\ndevice_calls_per_uid = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("limits.device_calls_per_uid") && e.contains("between 1 and 64"),
            "{e}"
        );
        let e = load(&format!("{base}[limits]\nconections = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("conections"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = load("socket = \"/tmp/x\"\n[[pkcs11]]\nmodule = \"/m.so\"\ntokn = \"t\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tufad.toml"), "{e}");
        assert!(e.contains("line 4"), "{e}");
        assert!(e.contains("tokn"), "{e}");
        let e = load(
            "[[pkcs11]]\nmodule = \"/m.so\"\ntoken = \"t\"\npin_file = \"a\"\npin_env = \"B\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("pkcs11[0].pin_file"), "{e}");
    }

    #[test]
    fn reads_yubikey_sections() {
        let c = load(
            "socket = \"/tmp/x.sock\"\n[[yubikey]]\nserial = 7\npin_env = \"P\"\n\
             management_key = { file = \"/m.hex\" }\ntouch_policy = \"always\"\n\
             [[yubikey]]\nserial = 8\nmanagement_key = \"protected\"\n",
        )
        .unwrap();
        assert_eq!(c.yubikeys.len(), 2);
        assert_eq!(
            c.yubikeys[0].management_key,
            ManagementKey::File("/m.hex".into())
        );
        assert_eq!(c.yubikeys[0].touch_policy, TouchPolicy::Always);
        assert_eq!(c.yubikeys[1].management_key, ManagementKey::Protected);
        assert_eq!(c.yubikeys[1].pin, PinSource::Unlock);
        let e = load("socket = \"/x\"\n[[yubikey]]\nserial = 7\nmanagement_key = \"dflt\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("yubikey[0].management_key"), "{e}");
        let c = Config::load(
            None,
            Overrides {
                socket: Some("/tmp/s".into()),
                yubikeys: vec![1, 2],
                yubikey_pin_file: Some("/pin".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.yubikeys[1].serial, 2);
        assert_eq!(c.yubikeys[1].pin, PinSource::File("/pin".into()));
    }

    #[test]
    fn reads_client_rules_and_lets_their_uids_in() {
        let base = "socket = \"/tmp/x.sock\"\nallowed_uids = [7]\n[[pkcs11]]\nmodule = \"/m.so\"\ntoken = \"t\"\n";
        let c = load(&format!(
            "{base}[[client]]\nuid = 1001\nallow = [\"status\", \"sign\"]\nkeys = [\"ci-*\"]\n\
             [[client]]\ngid = 0\nallow = [\"list\"]\n"
        ))
        .unwrap();
        assert_eq!(c.clients.len(), 2);
        assert_eq!(c.clients[0].who, Who::Uid(1001));
        // root's primary group is 0 in every /etc/passwd.
        assert!(c.allowed_uids.contains(&7) && c.allowed_uids.contains(&1001));
        assert!(c.allowed_uids.contains(&0), "{:?}", c.allowed_uids);
        // An unknown operation is an error naming the line.
        let e = load(&format!(
            "{base}\n[[client]]\nuid = 1001\nallow = [\"status\", \"sing\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 9 (`allow`)") && e.contains("sing"), "{e}");
        assert!(e.contains("expected one of"), "{e}");
        let e = load(&format!("{base}[[client]]\nallow = [\"sign\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("client[0].uid") && e.contains("gid = N"), "{e}");
    }

    #[test]
    fn reads_the_notary_signer_table() {
        let base = "socket = \"/tmp/x.sock\"\n[[pkcs11]]\nmodule = \"/m.so\"\ntoken = \"hsm\"\n";
        let table = "[notary_signer]\nlisten = \"127.0.0.1:7899\"\ntls_cert = \"/c\"\ntls_key = \"/k\"\nclient_ca = \"/ca\"\ndevice = \"hsm\"\n";
        let c = load(&format!("{base}{table}")).unwrap();
        let n = c.notary_signer.unwrap();
        assert_eq!(n.listen, "127.0.0.1:7899".parse().unwrap());
        assert_eq!(n.device, "hsm");
        assert!(load(base).unwrap().notary_signer.is_none());
        let e = load(&format!(
            "{base}{}",
            table.replace("127.0.0.1:7899", "signer:7899")
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("notary_signer.listen") && e.contains("signer:7899"),
            "{e}"
        );
        let e = load(&format!(
            "{base}{}",
            table.replace("client_ca = \"/ca\"\n", "")
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("client_ca"), "{e}");
    }

    #[test]
    fn a_pkcs11_section_can_name_its_token_by_uri() {
        let c = load(
            "socket = \"/x\"\n[[pkcs11]]\nuri = \"pkcs11:token=my%20dev;serial=42?module-path=/m.so&pin-source=file:/etc/pin\"\n",
        )
        .unwrap();
        let p = &c.pkcs11[0];
        assert_eq!((p.module.as_str(), p.token.as_str()), ("/m.so", "my dev"));
        assert_eq!(p.select.serial.as_deref(), Some("42"));
        assert_eq!(p.pin, PinSource::File("/etc/pin".into()));
        let c =
            load("socket = \"/x\"\n[[pkcs11]]\nmodule = \"/m.so\"\nuri = \"pkcs11:token=dev\"\n")
                .unwrap();
        assert_eq!(c.pkcs11[0].token, "dev");
        let bad = |uri: &str| {
            load(&format!(
                "socket = \"/x\"\n[[pkcs11]]\nmodule = \"/m.so\"\n{uri}\n"
            ))
            .unwrap_err()
            .to_string()
        };
        let e = bad("uri = \"pkcs11:token=dev;object=alice\"");
        assert!(
            e.contains("pkcs11[0].uri") && e.contains("object has no use"),
            "{e}"
        );
        let e = bad("uri = \"pkcs11:token=dev?pin-value=123456\"");
        assert!(e.contains("pin-value") && !e.contains("123456"), "{e}");
        let e = bad("uri = \"pkcs11:token=dev?module-path=/n.so\"");
        assert!(e.contains("module is given in uri and in module"), "{e}");
        let e = bad("uri = \"pkcs11:serial=1\"");
        assert!(e.contains("no token label"), "{e}");
        let e = bad("uri = \"pkcs11:token=dev?pin-source=env:PIN\"");
        assert!(e.contains("file only"), "{e}");
    }

    #[test]
    fn flags_alone_are_enough() {
        let c = Config::load(
            None,
            Overrides {
                socket: Some("/tmp/s".into()),
                pkcs11_module: Some("/m.so".into()),
                pkcs11_token: Some("t".into()),
                pkcs11_pin_file: Some("/pin".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.pkcs11[0].pin, PinSource::File("/pin".into()));
        let e = Config::load(None, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no device configured"), "{e}");
    }
}
