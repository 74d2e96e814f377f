//! A software TPM 2.0 (swtpm) with a tpm2-pkcs11 token on it, as a [`Device`] the agent harness
//! starts `tufad` on.
//!
//! Each [`SwTpm`] is its own swtpm process on its own free pair of loopback ports, set up by the
//! project's `tpm/init-token.sh` (so the tests use the script users run), and stopped when it is
//! dropped. swtpm serves one connection at a time: while an agent runs on it, nothing else can
//! use the TPM, so [`SwTpm::pkcs11_tool`] is for before an agent starts or after it stopped.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::Device;

/// tpm2-pkcs11's module as Debian installs it.
pub const TPM2_PKCS11_MODULE: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so";

/// The user PIN the fixture sets.
pub const PIN: &str = "tpm-pin-7Qx";

/// One swtpm with one initialized token.
pub struct SwTpm {
    dir: TempDir,
    /// Token label.
    pub label: String,
    env: Vec<(&'static str, OsString)>,
    pid: u32,
}

impl SwTpm {
    /// A fresh software TPM with a token labelled `label` and the fixture's PIN.
    pub fn new(label: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tufa-tpm-")
            .tempdir()
            .expect("tempdir");
        std::fs::write(dir.path().join("pin"), format!("{PIN}\n")).expect("pin file");
        std::fs::write(dir.path().join("so-pin"), "tpm-so-pin-5678\n").expect("so-pin file");
        let (env, pid) = Self::set_up(dir.path(), label);
        Self {
            dir,
            label: label.to_owned(),
            env,
            pid,
        }
    }

    /// Stops swtpm and starts it again on the same ports with the same state, as a TPM that
    /// restarted (or a VM that was resumed).
    pub fn restart(&mut self) {
        self.kill();
        let (env, pid) = Self::set_up(self.dir.path(), &self.label);
        assert_eq!(env, self.env, "swtpm came back on other ports");
        self.pid = pid;
    }

    fn kill(&self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Path::new(&format!("/proc/{}", self.pid)).exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "swtpm {} did not stop",
                self.pid
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Runs tpm/init-token.sh on `dir`: the environment it prints and swtpm's pid.
    fn set_up(dir: &Path, label: &str) -> (Vec<(&'static str, OsString)>, u32) {
        assert!(
            Path::new(TPM2_PKCS11_MODULE).exists(),
            "tpm2-pkcs11 is not installed ({TPM2_PKCS11_MODULE} is missing): run scripts/install-deps.sh (apt-get install libtpm2-pkcs11-1 libtss2-tcti-swtpm0)"
        );
        crate::require("swtpm", "apt-get install swtpm");
        crate::require("pkcs11-tool", "apt-get install opensc");
        let out = Command::new(script())
            .arg("--dir")
            .arg(dir)
            .args(["--label", label, "--pin-file"])
            .arg(dir.join("pin"))
            .arg("--so-pin-file")
            .arg(dir.join("so-pin"))
            .env("TPM2_PKCS11_LOG_LEVEL", "0")
            .output()
            .expect("run tpm/init-token.sh");
        if !out.status.success() {
            // A swtpm the script started before failing is not left behind.
            let _ = Command::new(script())
                .arg("--dir")
                .arg(dir)
                .arg("--stop")
                .output();
            panic!(
                "tpm/init-token.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut env = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let (name, value) = line
                .strip_prefix("export ")
                .and_then(|l| l.split_once('='))
                .unwrap_or_else(|| panic!("unexpected line from tpm/init-token.sh: {line}"));
            // The script quotes with printf %q; its values here have only `,` escaped.
            let value = value.replace("\\,", ",");
            let name = match name {
                "TPM2_PKCS11_TCTI" => "TPM2_PKCS11_TCTI",
                "TPM2_PKCS11_STORE" => "TPM2_PKCS11_STORE",
                "TPM2_PKCS11_LOG_LEVEL" => "TPM2_PKCS11_LOG_LEVEL",
                other => panic!("tpm/init-token.sh set an unknown variable {other}"),
            };
            env.push((name, OsString::from(value)));
        }
        env.push(("XDG_STATE_HOME", dir.join("state").into_os_string()));
        let pid = std::fs::read_to_string(dir.join("swtpm.pid"))
            .expect("swtpm.pid")
            .trim()
            .parse()
            .expect("swtpm.pid holds a pid");
        (env, pid)
    }

    /// The fixture's directory (PIN files, TPM state, tpm2-pkcs11 store, swtpm's log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `pkcs11-tool --module TPM2_PKCS11_MODULE ARGS` on this TPM. Only while no agent runs
    /// on it: swtpm would make this wait for the agent to exit.
    pub fn pkcs11_tool(&self, args: &[&str]) -> Output {
        Command::new("pkcs11-tool")
            .envs(self.env.iter().cloned())
            .args(["--module", TPM2_PKCS11_MODULE])
            .args(args)
            .output()
            .expect("run pkcs11-tool")
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tpm/init-token.sh")
}

impl Drop for SwTpm {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

impl Device for SwTpm {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn pin(&self) -> &str {
        PIN
    }

    fn pin_file(&self) -> PathBuf {
        self.dir.path().join("pin")
    }

    fn env(&self) -> Vec<(&'static str, OsString)> {
        self.env.clone()
    }

    fn flags(&self, pin_file: bool) -> Vec<OsString> {
        let mut f: Vec<OsString> = vec![
            "--pkcs11-module".into(),
            TPM2_PKCS11_MODULE.into(),
            "--pkcs11-token".into(),
            self.label.clone().into(),
        ];
        if pin_file {
            f.push("--pkcs11-pin-file".into());
            f.push(self.pin_file().into_os_string());
        }
        f
    }

    fn config_sections(&self, pin_file: bool) -> String {
        let pin = if pin_file {
            format!("pin_file = \"{}\"\n", self.pin_file().display())
        } else {
            String::new()
        };
        format!(
            "[[pkcs11]]\nmodule = \"{TPM2_PKCS11_MODULE}\"\ntoken = \"{}\"\n{pin}",
            self.label
        )
    }
}
