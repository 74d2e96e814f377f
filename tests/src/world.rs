//! One story against a real stack, told by the people in it: a [`World`] is the stack, the
//! person the story follows ([`Person`]: a SoftHSM token and an agent) and a working
//! directory; a [`User`] is what one person at that terminal runs — `tufa` with docker's
//! settings, `tufa notary`, the docker CLI, a DCT pull — named for what a user does.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use crate::stack::Stack;
use crate::{bin, notary_args, Agent, Run, SoftHsm, PIN};

/// A person with a SoftHSM token of their own (PIN [`PIN`]) and an agent serving it.
pub struct Person {
    /// The agent on the person's token (dropped before the token).
    pub agent: Agent,
    /// The token.
    pub hsm: SoftHsm,
}

impl Person {
    /// A fresh token labelled `label` and an agent started on it with its PIN file.
    pub fn new(label: &str) -> Self {
        let hsm = SoftHsm::new(label, PIN);
        let agent = Agent::start(&hsm);
        Self { agent, hsm }
    }
}

/// The stack, the person a story follows, and a working directory for them.
pub struct World {
    /// The person the story follows.
    pub me: Person,
    cwd: TempDir,
    /// The stack (dropped last).
    pub stack: Stack,
}

impl World {
    /// A fresh [`Stack`] and [`Person::new`]`(label)`, in a fresh working directory.
    pub fn new(label: &str) -> Self {
        Self::on(Stack::start(), label)
    }

    /// [`World::new`] on `stack` (e.g. [`Stack::start_self_signed`]).
    pub fn on(stack: Stack, label: &str) -> Self {
        let me = Person::new(label);
        let cwd = tempfile::tempdir().expect("tempdir");
        Self { me, cwd, stack }
    }

    /// The working directory.
    pub fn cwd(&self) -> &Path {
        self.cwd.path()
    }

    /// What [`World::me`] runs.
    pub fn user(&self) -> User<'_> {
        self.user_of(&self.me.agent)
    }

    /// What the person holding `agent` runs, in the same working directory.
    pub fn user_of<'a>(&'a self, agent: &'a Agent) -> User<'a> {
        User::new(agent, &self.stack, self.cwd())
    }
}

/// One person at a terminal: their agent, the stack they talk to, their working directory.
#[derive(Clone, Copy)]
pub struct User<'a> {
    /// The person's agent.
    pub agent: &'a Agent,
    /// The stack.
    pub stack: &'a Stack,
    /// The working directory.
    pub cwd: &'a Path,
}

impl<'a> User<'a> {
    /// The person holding `agent`, working in `cwd` against `stack`.
    pub fn new(agent: &'a Agent, stack: &'a Stack, cwd: &'a Path) -> Self {
        Self { agent, stack, cwd }
    }

    /// `tufa` with docker's environment, without arguments: the stack's `DOCKER_CONFIG` (and so
    /// its notary CA and trust dir), `DOCKER_CONTENT_TRUST_SERVER` and `HOME`.
    pub fn tufa_command(&self) -> Command {
        let mut cmd = Command::new(bin("tufa"));
        cmd.current_dir(self.cwd)
            .env("TUFA_AGENT_SOCK", &self.agent.socket)
            .env("HOME", self.stack.dir().join("home"))
            .env("DOCKER_CONFIG", self.stack.docker_config())
            .env("DOCKER_CONTENT_TRUST_SERVER", self.stack.notary_url())
            .env_remove("TUFA_TRUST_DIR")
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// `tufa ARGS` with docker's environment.
    pub fn tufa(&self, args: &[&str]) -> Run {
        Run::of(format!("tufa {args:?}"), self.tufa_command().args(args))
    }

    /// `tufa ARGS` with docker's environment, which must succeed; returns stdout.
    pub fn tufa_ok(&self, args: &[&str]) -> String {
        self.tufa(args).ok()
    }

    /// `tufa ARGS` with docker's environment, which must fail; returns stderr.
    pub fn tufa_fails(&self, args: &[&str]) -> String {
        self.tufa(args).fails()
    }

    /// `tufa ARGS` with `answer` on stdin: how a user answers tufa's prompts.
    pub fn tufa_answering(&self, args: &[&str], answer: &str) -> Run {
        Run::answering(
            format!("tufa {args:?} <<< {answer:?}"),
            self.tufa_command().args(args),
            answer,
        )
    }

    /// `tufa key generate NAME`: a new key in the agent, its public key in `NAME.pub`.
    pub fn generate_key(&self, name: &str) -> String {
        self.agent.tufa_ok(self.cwd, &["key", "generate", name])
    }

    /// `tufa signer add --key NAME.pub NAME REPO`.
    pub fn add_signer(&self, name: &str, repo: &str) -> String {
        let key = format!("{name}.pub");
        self.tufa_ok(&["signer", "add", "--key", &key, name, repo])
    }

    /// `tufa sign IMAGE`.
    pub fn sign(&self, image: &str) -> String {
        self.tufa_ok(&["sign", image])
    }

    /// `tufa notary ARGS` against the stack (`--server`, `--tls-ca`) with the trust dir
    /// `tufa-trust` in the working directory.
    pub fn notary(&self, args: &[&str]) -> Run {
        let trust = self.cwd.join("tufa-trust");
        let (server, ca) = (self.stack.notary_url(), self.stack.ca_file());
        self.agent
            .tufa(self.cwd, &notary_args(&server, &ca, &trust, args))
    }

    /// [`User::notary`], which must succeed; returns stdout.
    pub fn notary_ok(&self, args: &[&str]) -> String {
        self.notary(args).ok()
    }

    /// `tufa notary addhash GUN NAME LENGTH --sha256 SHA256 -p`: a target in `targets`,
    /// published at once.
    pub fn publish_target(&self, gun: &str, name: &str, length: u64, sha256: &str) -> String {
        let length = length.to_string();
        self.notary_ok(&["addhash", gun, name, &length, "--sha256", sha256, "-p"])
    }

    /// `tufa notary delegation add GUN ROLE KEY_FILE --all-paths -p`: a delegation to the key
    /// in `key_file` (e.g. `releaser.pub`) that may sign any target, published at once.
    pub fn delegate(&self, gun: &str, role: &str, key_file: &str) -> String {
        self.notary_ok(&[
            "delegation",
            "add",
            gun,
            role,
            key_file,
            "--all-paths",
            "-p",
        ])
    }

    /// The docker CLI: `docker ARGS` in the working directory.
    pub fn docker(&self, args: &[&str]) -> Run {
        self.stack.docker(self.cwd, args)
    }

    /// `docker ARGS`, which must succeed; returns stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        self.docker(args).ok()
    }

    /// `docker trust ARGS`: what `tufa ARGS` is checked against.
    pub fn docker_trust(&self, args: &[&str]) -> Run {
        self.docker(&[&["trust"], args].concat())
    }

    /// `docker ARGS` with `answer` on stdin.
    pub fn docker_answering(&self, args: &[&str], answer: &str) -> Run {
        Run::answering(
            format!("docker {args:?} <<< {answer:?}"),
            self.stack.docker_command(self.cwd).args(args),
            answer,
        )
    }

    /// `docker trust inspect ARGS` and `tufa inspect ARGS` print the same bytes; returns them.
    pub fn inspect_same(&self, args: &[&str]) -> String {
        let args = [&["inspect"], args].concat();
        let ours = self.tufa_ok(&args);
        let theirs = self.docker_trust(&args).ok();
        assert_eq!(ours, theirs, "tufa and docker differ on {args:?}");
        ours
    }

    /// The digest `DOCKER_CONTENT_TRUST=1 docker pull IMAGE` resolves (it then fails at the
    /// daemon), or everything docker said when trust did not resolve it.
    pub fn dct_pull(&self, image: &str) -> Result<String, String> {
        let out = Run::of(
            format!("DOCKER_CONTENT_TRUST=1 docker pull {image}"),
            self.stack
                .docker_command(self.cwd)
                .env("DOCKER_CONTENT_TRUST", "1")
                .args(["pull", image]),
        );
        let stdout = out.stdout();
        match stdout
            .lines()
            .find_map(|l| l.strip_prefix("Pull (1 of 1): "))
        {
            Some(line) => Ok(line
                .split_once('@')
                .map(|(_, d)| d.to_owned())
                .unwrap_or_default()),
            None => Err(format!("{stdout}{}", out.stderr())),
        }
    }

    /// What the server holds for `repo`: its timestamp (any publish makes a new one) and
    /// docker's reading of it; equal before and after shows a command published nothing.
    pub fn server_state(&self, repo: &str) -> (Option<Vec<u8>>, String) {
        (
            self.stack.trust_file(repo, "timestamp"),
            self.docker_trust(&["inspect", repo]).ok(),
        )
    }
}
