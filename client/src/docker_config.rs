//! What `docker login` and docker's TLS convention leave in `$DOCKER_CONFIG` (default `~/.docker`):
//! registry credentials in `config.json` (inline, or behind a credential helper) and per-server
//! CA and client certificates in `tls/<host:port>/`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::http::Credentials;

/// Docker Hub's credentials are stored under this key, whatever host name is used.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The user name a credential helper returns for an identity token.
const TOKEN_USERNAME: &str = "<token>";

/// A docker client configuration directory and its parsed `config.json`.
#[derive(Debug)]
pub struct DockerConfig {
    dir: PathBuf,
    auths: BTreeMap<String, AuthEntry>,
    creds_store: Option<String>,
    cred_helpers: BTreeMap<String, String>,
    /// Where `docker-credential-*` programs are looked up; `None` is `$PATH`.
    helper_dir: Option<PathBuf>,
}

/// CA and client certificate files for one server, from `$DOCKER_CONFIG/tls/<host:port>/`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// `*.crt`: CAs to trust for this server, sorted by name.
    pub ca_files: Vec<PathBuf>,
    /// The first `*.cert` with a matching `*.key`: a client certificate and its key.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// `config.json` cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DockerConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {}: {source}; check its permissions", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not docker's JSON.
    #[error("{} is not a docker config file ({source}); fix or remove it (`docker login` \
             rewrites it)", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        source: serde_json::Error,
    },
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    /// base64 of `user:password`.
    #[serde(default)]
    auth: Option<SecretString>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<SecretString>,
}

impl std::fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthEntry")
            .field("auth", &self.auth.as_ref().map(|_| "[REDACTED]"))
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

impl DockerConfig {
    /// Reads `$DOCKER_CONFIG/config.json` (default `~/.docker`); a missing file is an empty config.
    pub fn load() -> Result<Self, DockerConfigError> {
        let dir = match std::env::var_os("DOCKER_CONFIG") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".docker"),
        };
        Self::load_from(&dir)
    }

    /// Reads `dir/config.json`; a missing file is an empty config.
    pub fn load_from(dir: &Path) -> Result<Self, DockerConfigError> {
        let path = dir.join("config.json");
        let file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<ConfigFile>(&bytes)
                .map_err(|source| DockerConfigError::Parse { path, source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ConfigFile::default(),
            Err(source) => return Err(DockerConfigError::Read { path, source }),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            auths: file.auths,
            creds_store: file.creds_store.filter(|s| !s.is_empty()),
            cred_helpers: file.cred_helpers,
            helper_dir: None,
        })
    }

    /// The configuration directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The credentials `docker login host` stored: from the host's credential helper (or the
    /// default `credsStore`), else from `auths`. Runs the helper program, so it blocks.
    pub fn credentials_for(&self, host: &str) -> Option<Credentials> {
        let host = hostname(host);
        let helper = self.cred_helpers.get(host).or(self.creds_store.as_ref());
        if let Some(helper) = helper {
            match self.run_helper(helper, host) {
                Ok(Some(c)) => return Some(c),
                Ok(None) => {}
                Err(problem) => tracing::warn!(
                    "credential helper docker-credential-{helper} failed for {host}: {problem}; \
                     trying config.json"
                ),
            }
        }
        let entry = self
            .auths
            .iter()
            .find(|(key, _)| hostname(key) == host)
            .or_else(|| {
                is_docker_hub(host)
                    .then(|| self.auths.get_key_value(DOCKER_HUB_KEY))
                    .flatten()
            })
            .map(|(_, entry)| entry)?;
        if let Some(token) = entry
            .identity_token
            .as_ref()
            .filter(|t| !t.expose_secret().is_empty())
        {
            return Some(Credentials::IdentityToken(token.clone()));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(entry.auth.as_ref()?.expose_secret().trim())
            .ok()?;
        let decoded = SecretString::from(String::from_utf8(decoded).ok()?);
        let (username, password) = decoded.expose_secret().split_once(':')?;
        Some(Credentials::Basic {
            username: username.to_owned(),
            password: SecretString::from(password.to_owned()),
        })
    }

    /// `$DOCKER_CONFIG/tls/<host:port>/`: `*.crt` CAs and a `*.cert` + `*.key` client pair.
    pub fn tls_dir(&self, host_port: &str) -> TlsFiles {
        let dir = self.dir.join("tls").join(host_port);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return TlsFiles::default();
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        let with_ext = |ext: &str| {
            names
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == ext))
                .cloned()
                .collect::<Vec<_>>()
        };
        let client = with_ext("cert").into_iter().find_map(|cert| {
            let key = cert.with_extension("key");
            key.is_file().then_some((cert, key))
        });
        TlsFiles {
            ca_files: with_ext("crt"),
            client,
        }
    }

    /// Runs `docker-credential-<helper> get`; `Ok(None)` when it has nothing for `host`.
    fn run_helper(&self, helper: &str, host: &str) -> Result<Option<Credentials>, String> {
        let program = format!("docker-credential-{helper}");
        let program = match &self.helper_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        let server_url = if is_docker_hub(host) {
            DOCKER_HUB_KEY
        } else {
            host
        };
        // The URL goes into a pipe before the helper starts: a helper that exits without reading
        // cannot raise SIGPIPE in us (tufa restores its default action, which would kill us).
        let (stdin, mut feed) =
            std::io::pipe().map_err(|e| format!("cannot make a pipe for it ({e})"))?;
        feed.write_all(server_url.as_bytes())
            .map_err(|e| format!("cannot write its input ({e})"))?;
        drop(feed);
        let output = Command::new(&program)
            .arg("get")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run {} ({e})", program.display()))?;
        if !output.status.success() {
            let said = String::from_utf8_lossy(&output.stdout);
            // docker-credential-helpers' "not found" answer is normal: nothing stored.
            if said.contains("credentials not found") {
                return Ok(None);
            }
            return Err(format!("it exited with {}", output.status));
        }
        #[derive(Deserialize)]
        struct HelperAnswer {
            #[serde(rename = "Username", default)]
            username: String,
            #[serde(rename = "Secret", default)]
            secret: SecretString,
        }
        let answer: HelperAnswer = serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("its answer is not credentials JSON ({e})"))?;
        if answer.secret.expose_secret().is_empty() {
            return Ok(None);
        }
        Ok(Some(if answer.username == TOKEN_USERNAME {
            Credentials::IdentityToken(answer.secret)
        } else {
            Credentials::Basic {
                username: answer.username,
                password: answer.secret,
            }
        }))
    }
}

/// docker's `ConvertToHostname`: drop a scheme and any path.
fn hostname(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> (tempfile::TempDir, DockerConfig) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), json).unwrap();
        let config = DockerConfig::load_from(dir.path()).unwrap();
        (dir, config)
    }

    fn basic(c: Option<Credentials>) -> (String, String) {
        match c {
            Some(Credentials::Basic { username, password }) => {
                (username, password.expose_secret().to_owned())
            }
            other => panic!("expected basic credentials, got {other:?}"),
        }
    }

    #[test]
    fn inline_auths_by_host_and_url_keys() {
        // "alice:s3cret" and "bob:pa:ss" (a colon in the password survives).
        let (_d, c) = config(
            r#"{"auths":{"registry.example.com:5000":{"auth":"YWxpY2U6czNjcmV0"},
                         "https://index.docker.io/v1/":{"auth":"Ym9iOnBhOnNz"},
                         "notary.example.com":{"auth":"","identitytoken":"tok-123"}}}"#,
        );
        assert_eq!(
            basic(c.credentials_for("registry.example.com:5000")),
            ("alice".into(), "s3cret".into())
        );
        assert_eq!(
            basic(c.credentials_for("https://registry.example.com:5000/v2/")),
            ("alice".into(), "s3cret".into())
        );
        assert_eq!(
            basic(c.credentials_for("docker.io")),
            ("bob".into(), "pa:ss".into())
        );
        match c.credentials_for("notary.example.com") {
            Some(Credentials::IdentityToken(t)) => assert_eq!(t.expose_secret(), "tok-123"),
            other => panic!("{other:?}"),
        }
        assert!(c.credentials_for("other.example.com").is_none());
    }

    #[test]
    fn missing_config_is_empty_and_broken_config_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let c = DockerConfig::load_from(dir.path()).unwrap();
        assert!(c.credentials_for("h").is_none());
        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        let e = DockerConfig::load_from(dir.path()).unwrap_err().to_string();
        assert!(e.contains("config.json"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn credential_helpers_answer_first() {
        use std::os::unix::fs::PermissionsExt as _;
        let (dir, mut c) = config(
            r#"{"auths":{"h1":{"auth":"YWxpY2U6czNjcmV0"}},"credsStore":"store",
                "credHelpers":{"h2":"tok"}}"#,
        );
        // `store` knows h1 (echoing the server URL it was asked for); `tok` holds a token.
        let script = |name: &str, body: &str| {
            let path = dir.path().join(format!("docker-credential-{name}"));
            std::fs::write(
                &path,
                format!("#!/bin/sh\n[ \"$1\" = get ] || exit 3\n{body}"),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        script(
            "store",
            r#"read url; if [ "$url" = h1 ]; then echo "{\"ServerURL\":\"$url\",\"Username\":\"carol\",\"Secret\":\"from-store\"}"; else echo "credentials not found in native keychain"; exit 1; fi"#,
        );
        script(
            "tok",
            r#"echo '{"Username":"<token>","Secret":"refresh-1"}'"#,
        );
        c.helper_dir = Some(dir.path().to_path_buf());
        assert_eq!(
            basic(c.credentials_for("h1")),
            ("carol".into(), "from-store".into())
        );
        match c.credentials_for("h2") {
            Some(Credentials::IdentityToken(t)) => assert_eq!(t.expose_secret(), "refresh-1"),
            other => panic!("{other:?}"),
        }
        assert!(c.credentials_for("h3").is_none());
        // A helper that cannot run falls back to config.json.
        c.creds_store = Some("missing".into());
        assert_eq!(
            basic(c.credentials_for("h1")),
            ("alice".into(), "s3cret".into())
        );
    }

    #[test]
    fn tls_dir_finds_cas_and_the_client_pair() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls").join("127.0.0.1:4443");
        std::fs::create_dir_all(&tls).unwrap();
        for f in [
            "b.crt",
            "a.crt",
            "lonely.cert",
            "me.cert",
            "me.key",
            "notes.txt",
        ] {
            std::fs::write(tls.join(f), "x").unwrap();
        }
        let c = DockerConfig::load_from(dir.path()).unwrap();
        assert_eq!(
            c.tls_dir("127.0.0.1:4443"),
            TlsFiles {
                ca_files: vec![tls.join("a.crt"), tls.join("b.crt")],
                client: Some((tls.join("me.cert"), tls.join("me.key"))),
            }
        );
        assert_eq!(c.tls_dir("elsewhere:1"), TlsFiles::default());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let (_d, c) =
            config(r#"{"auths":{"h":{"auth":"YWxpY2U6czNjcmV0","identitytoken":"t0k"}}}"#);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("YWxpY2U6czNjcmV0") && !shown.contains("t0k"),
            "{shown}"
        );
    }
}
