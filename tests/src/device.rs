//! The devices an agent runs on: [`SoftHsm`], a SoftHSM2 token in a private directory, behind
//! the [`Device`] trait that simulated YubiKeys ([`crate::yubikey::SimYubiKey`]) share.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::require;

/// The SoftHSM2 module Debian installs.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

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

/// A device an agent runs on: a SoftHSM token, simulated YubiKeys, or a software TPM.
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
