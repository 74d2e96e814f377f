//! The real `notary` and `docker` CLIs pointed at a [`Stack`], each with its own config and
//! `HOME` in the stack's directory, so neither reads or writes the real `~/.notary` or
//! `~/.docker`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;

use super::{Stack, StackTls};
use crate::{require, Run};

/// The passphrase of every key the notary and docker CLIs create in a [`Stack`].
pub const PASSPHRASE: &str = "tufa-stack-passphrase-8Kq2";

impl Stack {
    /// The real notary CLI with `-c <client config>` (trust dir under [`Stack::dir`], this
    /// server's URL and CA) and the `NOTARY_*_PASSPHRASE`s set to [`PASSPHRASE`], run in
    /// [`Stack::dir`] with `HOME` there too, so it never reads `~/.notary`.
    pub fn notary(&self, args: &[&str]) -> Run {
        Run::of(format!("notary {args:?}"), self.notary_command().args(args))
    }

    /// Runs the notary CLI and returns stdout; panics with stdout, stderr and the server's log
    /// on failure.
    pub fn notary_ok(&self, args: &[&str]) -> String {
        let out = self.notary(args);
        assert!(
            out.success(),
            "{out:?}\nnotary-server log:\n{}",
            self.server_log()
        );
        out.stdout()
    }

    /// The notary CLI command without arguments, for tests that need stdin or more env.
    pub fn notary_command(&self) -> Command {
        require("notary", "apt-get install notary");
        let mut cmd = Command::new("notary");
        cmd.current_dir(self.dir())
            .env("HOME", self.dir().join("home"))
            .arg("-c")
            .arg(self.dir().join("notary/client.json"))
            .stdin(Stdio::null());
        for role in ["ROOT", "TARGETS", "SNAPSHOT", "DELEGATION"] {
            cmd.env(format!("NOTARY_{role}_PASSPHRASE"), PASSPHRASE);
        }
        cmd
    }

    /// The notary CLI's trust directory (private keys and cached metadata).
    pub fn notary_trust_dir(&self) -> PathBuf {
        self.dir().join("notary/trust")
    }

    /// A `DOCKER_CONFIG` dir with `tls/<host:port>/ca.crt` for the notary server (and a
    /// self-signed registry) under both `127.0.0.1:PORT` and `localhost:PORT`.
    pub fn docker_config(&self) -> PathBuf {
        self.dir().join("docker-config")
    }

    /// The docker CLI (client only, no daemon) pointed at this stack's notary server, run in `cwd`.
    pub fn docker(&self, cwd: &Path, args: &[&str]) -> Run {
        Run::of(
            format!("docker {args:?}"),
            self.docker_command(cwd).args(args),
        )
    }

    /// The docker CLI command without arguments: `DOCKER_CONFIG`, `DOCKER_CONTENT_TRUST_SERVER`
    /// and both trust passphrases set, and `DOCKER_HOST` on a socket nobody listens on, so
    /// commands that need a daemon fail the same way everywhere.
    pub fn docker_command(&self, cwd: &Path) -> Command {
        require(
            "docker",
            "apt-get install docker.io, or any docker CLI on PATH",
        );
        let mut cmd = Command::new("docker");
        cmd.current_dir(cwd)
            .env("HOME", self.dir().join("home"))
            .env("DOCKER_CONFIG", self.docker_config())
            .env("DOCKER_CONTENT_TRUST_SERVER", self.notary_url())
            .env("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", PASSPHRASE)
            .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", PASSPHRASE)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.dir().join("no-daemon.sock").display()),
            )
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTENT_TRUST")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null());
        cmd
    }

    /// The notary CLI's `client.json` and the docker CLI's `DOCKER_CONFIG`.
    pub(super) fn write_client_configs(&self) {
        let client = json!({
            "trust_dir": self.notary_trust_dir(),
            "remote_server": { "url": self.notary_url(), "root_ca": self.ca_file() },
        });
        std::fs::write(self.dir().join("notary/client.json"), client.to_string())
            .expect("notary client.json");
        let mut trusted = vec![(self.notary_port, self.ca_file())];
        if self.tls() == StackTls::SelfSigned {
            trusted.push((self.registry_port, self.registry_cert_file()));
        }
        for (port, cert) in trusted {
            for host in ["127.0.0.1", "localhost"] {
                let tls = self
                    .docker_config()
                    .join("tls")
                    .join(format!("{host}:{port}"));
                std::fs::create_dir_all(&tls).expect("docker tls dir");
                std::fs::copy(&cert, tls.join("ca.crt")).expect("docker ca.crt");
            }
        }
    }
}
