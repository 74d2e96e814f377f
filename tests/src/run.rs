//! What a command did ([`Run`]): its exit status and output, checked as a success or as the
//! refusal a test expects, with both streams shown when the check fails.

use std::fmt;
use std::io::Write as _;
use std::process::{Command, ExitStatus, Output, Stdio};

/// A finished command and what it was (for the message when a check fails).
pub struct Run {
    what: String,
    output: Output,
}

impl Run {
    /// `output` of the command described by `what` (e.g. `tufa ["sign", "repo:v1"]`).
    pub fn new(what: impl Into<String>, output: Output) -> Self {
        Self {
            what: what.into(),
            output,
        }
    }

    /// Runs `cmd` to its end.
    pub fn of(what: impl Into<String>, cmd: &mut Command) -> Self {
        let what = what.into();
        let output = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        Self { what, output }
    }

    /// Runs `cmd` with `answer` on its stdin: how a user answers a prompt.
    pub fn answering(what: impl Into<String>, cmd: &mut Command, answer: &str) -> Self {
        let what = what.into();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(answer.as_bytes())
            .unwrap_or_else(|e| panic!("answering {what}: {e}"));
        let output = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
        Self { what, output }
    }

    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.output.status.success()
    }

    /// Its exit status.
    pub fn status(&self) -> ExitStatus {
        self.output.status
    }

    /// Its exit code (`None` if a signal ended it).
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// Its stdout, as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Its stderr, as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Stdout; fails the test, showing both streams, unless the command succeeded.
    pub fn ok(self) -> String {
        assert!(self.success(), "{self:?}");
        self.stdout()
    }

    /// Stderr; fails the test, showing both streams, if the command succeeded.
    pub fn fails(self) -> String {
        assert!(
            !self.success(),
            "{} succeeded where it must fail: {self:?}",
            self.what
        );
        self.stderr()
    }

    /// Stderr of a failure that says `words`; fails the test otherwise.
    pub fn fails_saying(self, words: &str) -> String {
        let err = self.fails();
        assert!(err.contains(words), "{words:?} missing from:\n{err}");
        err
    }
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}):\nstdout: {}\nstderr: {}",
            self.what,
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }
}
