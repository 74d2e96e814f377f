//! A running `tufad` on its own socket ([`Agent`]), and the `tufa` commands run against it.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tufa_client::agent::AgentClient;

use crate::{bin, Device, Run};

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
        Self::try_start_with(hsm, opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Agent::start_with`], returning what went wrong (with the agent's log) instead of
    /// failing the test: for callers that start again on another port.
    pub fn try_start_with(hsm: &dyn Device, opts: AgentOptions) -> Result<Self, String> {
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
        agent.spawn(hsm, &opts);
        agent.wait_ready()?;
        Ok(agent)
    }

    /// Stops the agent and starts it again with the same device, options, socket and audit
    /// log (the files in its directory stay).
    pub fn restart(&mut self, hsm: &dyn Device, opts: &AgentOptions) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn(hsm, opts);
        self.wait_ready().unwrap_or_else(|e| panic!("{e}"));
    }

    fn spawn(&mut self, hsm: &dyn Device, opts: &AgentOptions) {
        let child = self
            .command(hsm, opts)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("agent.log"))
                    .expect("log"),
            ))
            .spawn()
            .expect("spawn tufad");
        self.child = Some(child);
    }

    /// The `tufad` command for `hsm` (for tests that expect it to fail at start).
    pub fn command(&self, hsm: &dyn Device, opts: &AgentOptions) -> Command {
        let mut cmd = Command::new(bin("tufad"));
        // The agent's state stays in the test (a device may name its own, shared by its agents).
        cmd.env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env_remove("STATE_DIRECTORY")
            .envs(hsm.env())
            // TUFA_TEST_AGENT_LOG=debug shows more of what an agent did in a failing test.
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

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!(
                    "tufad exited with {status} at start:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "tufad did not open {} in 20 s:\n{}",
            self.socket.display(),
            self.log()
        ))
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
    pub fn tufa<S: AsRef<std::ffi::OsStr>>(&self, cwd: &Path, args: &[S]) -> Run {
        let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
        Run::of(format!("tufa {shown:?}"), self.tufa_command(cwd).args(args))
    }

    /// The command [`Agent::tufa`] runs, without arguments, for tests that change its
    /// environment (a passphrase, another user).
    pub fn tufa_command(&self, cwd: &Path) -> Command {
        let mut cmd = Command::new(bin("tufa"));
        cmd.current_dir(cwd)
            .env("TUFA_AGENT_SOCK", &self.socket)
            .envs(self.env.iter().cloned())
            // Never the user's ~/.docker: credentials, CAs and trust data stay in the test.
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTENT_TRUST_SERVER")
            .env_remove("TUFA_TRUST_DIR")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `tufa ARGS` and returns stdout, failing the test on a non-zero exit.
    pub fn tufa_ok<S: AsRef<std::ffi::OsStr>>(&self, cwd: &Path, args: &[S]) -> String {
        self.tufa(cwd, args).ok()
    }

    /// The audit log's lines, parsed.
    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit_log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    /// Whether the agent has exited (with its status).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
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
