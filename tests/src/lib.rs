//! The end-to-end harness: real SoftHSM tokens and the real `tufad` and `tufa` binaries, each
//! in its own temporary directory, so no test depends on another's state.
//!
//! The binaries are the ones `cargo build --workspace --bins` left next to the test executable
//! (`scripts/test.sh` builds them first). A missing component fails the test with the install
//! step that provides it; nothing is skipped silently.
//!
//! [`stack`] runs the real Docker Content Trust servers (notary-server, notary-signer, a registry)
//! and the real `notary` and `docker` CLIs against them. [`hostile`] is a notary server that
//! lies: a tampering proxy in front of a stack's notary-server, or a fake serving repositories
//! that [`fake_repo`] signs with keys a test holds.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tufa_client::agent::AgentClient;

pub mod fake_repo;
pub mod hostile;
pub mod offline;
pub mod piv;
pub mod stack;
pub mod tpm;
pub mod yubikey;

/// The SoftHSM2 module Debian installs.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Path of a workspace binary (`tufad`, `tufa`) built next to this test executable (or next to
/// this crate's own binaries, such as the demo).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>; a binary of this crate already
    // sits in target/<profile>.
    let mut dir = exe
        .parent()
        .expect("the executable lives in target/<profile>");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("target/<profile>/deps has a parent");
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` (scripts/test.sh does) before the tests",
        path.display()
    );
    path
}

/// Whether `cmd` is a file in one of the `PATH` directories.
pub fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

/// Fails the test, naming the install step, if a command is missing.
pub fn require(cmd: &str, install: &str) {
    assert!(
        on_path(cmd),
        "`{cmd}` is not installed: run scripts/install-deps.sh ({install})"
    );
}

/// A SoftHSM2 token in a private directory.
pub struct SoftHsm {
    dir: TempDir,
    /// Token label.
    pub label: String,
    /// The user PIN.
    pub pin: String,
}

impl SoftHsm {
    /// A fresh token labelled `label` with user PIN `pin`.
    pub fn new(label: &str, pin: &str) -> Self {
        assert!(
            Path::new(SOFTHSM_MODULE).exists(),
            "SoftHSM2 is not installed ({SOFTHSM_MODULE} is missing): run scripts/install-deps.sh (apt-get install softhsm2)"
        );
        require("softhsm2-util", "apt-get install softhsm2");
        let dir = tempfile::Builder::new()
            .prefix("tufa-hsm-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir(dir.path().join("tokens")).expect("tokens dir");
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .expect("softhsm2.conf");
        let hsm = Self {
            dir,
            label: label.to_owned(),
            pin: pin.to_owned(),
        };
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", hsm.conf())
            .args(["--init-token", "--free", "--label", label, "--pin", pin])
            .args(["--so-pin", "so-pin-5678"])
            .output()
            .expect("run softhsm2-util");
        assert!(out.status.success(), "softhsm2-util failed: {out:?}");
        std::fs::write(hsm.pin_file(), format!("{pin}\n")).expect("pin file");
        hsm
    }

    /// The `SOFTHSM2_CONF` for this token.
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    /// A file holding the user PIN.
    pub fn pin_file(&self) -> PathBuf {
        self.dir.path().join("pin")
    }

    /// The token's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A device an agent runs on: a SoftHSM token, or simulated YubiKeys.
pub trait Device {
    /// The device's name as `--device` and the agent's messages give it (label or serial).
    fn name(&self) -> String;
    /// Its PIN.
    fn pin(&self) -> &str;
    /// A file holding the PIN (first line).
    fn pin_file(&self) -> PathBuf;
    /// Environment both binaries need (e.g. `SOFTHSM2_CONF`).
    fn env(&self) -> Vec<(&'static str, std::ffi::OsString)>;
    /// `tufad` flags selecting the device, with its PIN file when `pin_file`.
    fn flags(&self, pin_file: bool) -> Vec<std::ffi::OsString>;
    /// The device's sections of a config file, with its PIN file when `pin_file`.
    fn config_sections(&self, pin_file: bool) -> String;
}

impl Device for SoftHsm {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn pin(&self) -> &str {
        &self.pin
    }

    fn pin_file(&self) -> PathBuf {
        SoftHsm::pin_file(self)
    }

    fn env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        vec![
            ("SOFTHSM2_CONF", self.conf().into_os_string()),
            // The device's agents share their state (refused-PIN records), and only they do.
            (
                "XDG_STATE_HOME",
                self.dir.path().join("state").into_os_string(),
            ),
        ]
    }

    fn flags(&self, pin_file: bool) -> Vec<std::ffi::OsString> {
        let mut f: Vec<std::ffi::OsString> = vec![
            "--pkcs11-module".into(),
            SOFTHSM_MODULE.into(),
            "--pkcs11-token".into(),
            self.label.clone().into(),
        ];
        if pin_file {
            f.push("--pkcs11-pin-file".into());
            f.push(SoftHsm::pin_file(self).into_os_string());
        }
        f
    }

    fn config_sections(&self, pin_file: bool) -> String {
        let pin = if pin_file {
            format!("pin_file = \"{}\"\n", SoftHsm::pin_file(self).display())
        } else {
            String::new()
        };
        format!(
            "[[pkcs11]]\nmodule = \"{SOFTHSM_MODULE}\"\ntoken = \"{}\"\n{pin}",
            self.label
        )
    }
}

/// How to start an agent.
#[derive(Clone, Debug, Default)]
pub struct AgentOptions {
    /// Give the agent the PIN file (else it starts locked).
    pub pin_file: bool,
    /// Extra lines for a config file (passed with --config).
    pub config: Option<String>,
    /// Extra flags.
    pub args: Vec<String>,
}

/// A running `tufad` on a socket in its own directory.
pub struct Agent {
    child: Option<Child>,
    dir: TempDir,
    /// The socket.
    pub socket: PathBuf,
    /// The audit log.
    pub audit_log: PathBuf,
    env: Vec<(&'static str, std::ffi::OsString)>,
}

impl Agent {
    /// Starts an agent on `hsm` with its PIN file.
    pub fn start(hsm: &dyn Device) -> Self {
        Self::start_with(
            hsm,
            AgentOptions {
                pin_file: true,
                ..Default::default()
            },
        )
    }

    /// Starts an agent on `hsm` with these options, and waits for its socket.
    pub fn start_with(hsm: &dyn Device, opts: AgentOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tufa-agent-")
            .tempdir()
            .expect("tempdir");
        let socket = dir.path().join("run").join("agent.sock");
        let audit_log = dir.path().join("audit.log");
        let mut agent = Self {
            child: None,
            dir,
            socket,
            audit_log,
            env: hsm.env(),
        };
        let child = agent
            .command(hsm, &opts)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(agent.dir.path().join("agent.log")).expect("log"),
            ))
            .spawn()
            .expect("spawn tufad");
        agent.child = Some(child);
        agent.wait_ready();
        agent
    }

    /// The `tufad` command for `hsm` (for tests that expect it to fail at start).
    pub fn command(&self, hsm: &dyn Device, opts: &AgentOptions) -> Command {
        let mut cmd = Command::new(bin("tufad"));
        // The agent's state stays in the test (a device may name its own, shared by its agents).
        cmd.env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env_remove("STATE_DIRECTORY")
            .envs(hsm.env())
            .env(
                "TUFA_LOG",
                std::env::var("TUFA_TEST_AGENT_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("TUFA_AGENT_SOCK")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--audit-log")
            .arg(&self.audit_log);
        match &opts.config {
            Some(extra) => {
                let path = self.dir.path().join("tufad.toml");
                std::fs::write(
                    &path,
                    format!("{extra}\n{}", hsm.config_sections(opts.pin_file)),
                )
                .expect("config");
                cmd.arg("--config").arg(path);
            }
            None => {
                cmd.args(hsm.flags(opts.pin_file));
            }
        }
        cmd.args(&opts.args);
        cmd
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("tufad exited with {status} at start:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "tufad did not open {} in 20 s:\n{}",
            self.socket.display(),
            self.log()
        );
    }

    /// The agent's own log (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// The agent's working directory (socket dir, audit log, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A gRPC client on the agent's socket.
    pub async fn client(&self) -> AgentClient {
        AgentClient::connect(&self.socket)
            .await
            .expect("connect to tufad")
    }

    /// Runs `tufa ARGS` against this agent, in `cwd`.
    pub fn tufa<S: AsRef<std::ffi::OsStr>>(&self, cwd: &Path, args: &[S]) -> Output {
        Command::new(bin("tufa"))
            .current_dir(cwd)
            .env("TUFA_AGENT_SOCK", &self.socket)
            .envs(self.env.iter().cloned())
            // Never the user's ~/.docker: credentials, CAs and trust data stay in the test.
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTENT_TRUST_SERVER")
            .env_remove("TUFA_TRUST_DIR")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tufa")
    }

    /// Runs `tufa ARGS` and returns stdout, failing the test on a non-zero exit.
    pub fn tufa_ok<S: AsRef<std::ffi::OsStr>>(&self, cwd: &Path, args: &[S]) -> String {
        let out = self.tufa(cwd, args);
        let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
        assert!(
            out.status.success(),
            "tufa {shown:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The audit log's lines, parsed.
    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit_log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM without waiting.
    pub fn send_sigterm(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
    }

    /// Sends SIGTERM and waits for the agent to exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.send_sigterm();
        self.wait()
    }

    /// Waits for the agent to exit (at most 30 s: its shutdown grace is 20 s).
    pub fn wait(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = child.try_wait().expect("wait") {
                self.child = None;
                return s;
            }
            assert!(Instant::now() < deadline, "tufad did not stop in 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Opens the socket and its directory to everyone (to show modes are not the guard).
    pub fn open_socket_to_all(&self) {
        let dir = self.socket.parent().expect("socket dir");
        for p in [self.dir.path(), dir, &self.socket] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The arguments of `tufa notary` against `server` (trusting `ca`) with trust dir `trust`:
/// `notary --server SERVER --tls-ca CA --trust-dir TRUST ARGS...`.
pub fn notary_args(server: &str, ca: &Path, trust: &Path, args: &[&str]) -> Vec<String> {
    let mut full: Vec<String> = vec![
        "notary".into(),
        "--server".into(),
        server.into(),
        "--tls-ca".into(),
        ca.display().to_string(),
        "--trust-dir".into(),
        trust.display().to_string(),
    ];
    full.extend(args.iter().map(|a| (*a).to_owned()));
    full
}

/// Verifies a raw r||s signature over `data` with a DER SubjectPublicKeyInfo, using p256 alone.
pub fn verify_with_p256(spki: &[u8], data: &[u8], sig: &[u8; 64]) -> bool {
    use p256::ecdsa::signature::Verifier as _;
    use p256::pkcs8::DecodePublicKey as _;
    let Ok(vk) = p256::ecdsa::VerifyingKey::from_public_key_der(spki) else {
        return false;
    };
    let Ok(sig) = p256::ecdsa::Signature::from_slice(sig) else {
        return false;
    };
    vk.verify(data, &sig).is_ok()
}
