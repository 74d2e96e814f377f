//! Simulated YubiKeys (see [`crate::piv`]) as a [`Device`] the agent harness starts `tufad` on.
//!
//! A [`SimYubiKey`] holds the simulator's exclusive guard for its whole life, so every test that
//! uses one holds it for the test's duration. Its cards get a non-default PIN, so nothing can
//! pass by relying on the factory PIN.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use tempfile::TempDir;

use crate::piv::{self, CardSpec, Exclusive, VirtualCard};
use crate::Device;

/// The PIN the fixture sets on its cards (a PIV PIN has 6-8 characters).
pub const PIN: &str = "Qx7wz9k";

/// Serials unique within the test process.
static NEXT_SERIAL: AtomicU32 = AtomicU32::new(31_000_000);

/// A fresh serial for a simulated card.
pub fn fresh_serial() -> u32 {
    NEXT_SERIAL.fetch_add(1, Ordering::Relaxed)
}

/// One or more simulated YubiKeys, with a PIN file, as one [`Device`].
pub struct SimYubiKey {
    /// The cards, in the order given.
    pub cards: Vec<VirtualCard>,
    /// Extra lines for each card's `[[yubikey]]` section (e.g. `management_key = ...`).
    pub section_extra: String,
    dir: TempDir,
    // Dropped last: the cards are gone before another test may insert its own.
    _exclusive: Exclusive,
}

impl SimYubiKey {
    /// One factory-fresh card (firmware 5.4.3) with the fixture's PIN.
    pub fn new() -> Self {
        Self::with(vec![CardSpec {
            serial: fresh_serial(),
            ..CardSpec::default()
        }])
    }

    /// These cards, each with the fixture's PIN.
    pub fn with(specs: Vec<CardSpec>) -> Self {
        let exclusive = piv::exclusive();
        let dir = tempfile::Builder::new()
            .prefix("tufa-yubikey-")
            .tempdir()
            .expect("tempdir");
        std::fs::write(dir.path().join("pin"), format!("{PIN}\n")).expect("pin file");
        let cards = specs
            .into_iter()
            .map(|spec| {
                let card = VirtualCard::insert(spec).unwrap_or_else(|e| panic!("{e}"));
                set_pin(card.serial(), piv::DEFAULT_PIN, PIN);
                card
            })
            .collect();
        Self {
            cards,
            section_extra: String::new(),
            dir,
            _exclusive: exclusive,
        }
    }

    /// Serial of card `i`.
    pub fn serial(&self, i: usize) -> u32 {
        self.cards[i].serial()
    }

    /// The fixture's working directory (PIN file, management key files).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Default for SimYubiKey {
    fn default() -> Self {
        Self::new()
    }
}

/// Changes a card's PIN in-process through the `yubikey` crate, as `ykman piv access change-pin`.
pub fn set_pin(serial: u32, old: &str, new: &str) {
    let mut yk = open(serial);
    yk.change_pin(old.as_bytes(), new.as_bytes())
        .unwrap_or_else(|e| panic!("changing the PIN of simulated card {serial}: {e}"));
}

/// Opens a card in-process (dropping the handle resets the card, as on a real YubiKey).
pub fn open(serial: u32) -> yubikey::YubiKey {
    yubikey::YubiKey::open_by_serial(yubikey::Serial(serial))
        .unwrap_or_else(|e| panic!("opening simulated card {serial}: {e}"))
}

impl Device for SimYubiKey {
    fn name(&self) -> String {
        self.serial(0).to_string()
    }

    fn pin(&self) -> &str {
        PIN
    }

    fn pin_file(&self) -> PathBuf {
        self.dir.path().join("pin")
    }

    fn env(&self) -> Vec<(&'static str, OsString)> {
        // The device's agents share their state (refused-PIN records), and only they do.
        vec![(
            "XDG_STATE_HOME",
            self.dir.path().join("state").into_os_string(),
        )]
    }

    fn flags(&self, pin_file: bool) -> Vec<OsString> {
        let mut f = Vec::new();
        for c in &self.cards {
            f.push("--yubikey".into());
            f.push(c.serial().to_string().into());
        }
        if pin_file {
            f.push("--yubikey-pin-file".into());
            f.push(self.pin_file().into_os_string());
        }
        f
    }

    fn config_sections(&self, pin_file: bool) -> String {
        let mut out = String::new();
        for c in &self.cards {
            out.push_str(&format!("[[yubikey]]\nserial = {}\n", c.serial()));
            if pin_file {
                out.push_str(&format!("pin_file = \"{}\"\n", self.pin_file().display()));
            }
            out.push_str(&self.section_extra);
            out.push('\n');
        }
        out
    }
}

/// Yubico's PKCS#11 module, as Debian installs it.
pub const YKCS11_MODULE: &str = "/usr/lib/x86_64-linux-gnu/libykcs11.so";

/// A simulated YubiKey reached as a PKCS#11 token through Yubico's ykcs11 (a token that really
/// counts PIN tries and says so in its flags), as a [`Device`] for `[[pkcs11]]`.
pub struct Ykcs11Token {
    /// The card.
    pub card: VirtualCard,
    dir: TempDir,
    // Dropped last.
    _exclusive: Exclusive,
}

impl Ykcs11Token {
    /// A factory-fresh card with the fixture's PIN, in the reader ykcs11 lists.
    pub fn new() -> Self {
        assert!(
            std::path::Path::new(YKCS11_MODULE).exists(),
            "ykcs11 is not installed ({YKCS11_MODULE} is missing): run scripts/install-deps.sh (apt-get install ykcs11)"
        );
        let exclusive = piv::exclusive();
        let dir = tempfile::Builder::new()
            .prefix("tufa-ykcs11-")
            .tempdir()
            .expect("tempdir");
        std::fs::write(dir.path().join("pin"), format!("{PIN}\n")).expect("pin file");
        let card = VirtualCard::insert_for_ykcs11(CardSpec {
            serial: fresh_serial(),
            ..CardSpec::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        set_pin(card.serial(), piv::DEFAULT_PIN, PIN);
        Self {
            card,
            dir,
            _exclusive: exclusive,
        }
    }
}

impl Default for Ykcs11Token {
    fn default() -> Self {
        Self::new()
    }
}

impl Device for Ykcs11Token {
    /// ykcs11 labels the token after the card's serial.
    fn name(&self) -> String {
        format!("YubiKey PIV #{}", self.card.serial())
    }

    fn pin(&self) -> &str {
        PIN
    }

    fn pin_file(&self) -> PathBuf {
        self.dir.path().join("pin")
    }

    fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![(
            "XDG_STATE_HOME",
            self.dir.path().join("state").into_os_string(),
        )]
    }

    fn flags(&self, pin_file: bool) -> Vec<OsString> {
        let mut f: Vec<OsString> = vec![
            "--pkcs11-module".into(),
            YKCS11_MODULE.into(),
            "--pkcs11-token".into(),
            self.name().into(),
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
            "[[pkcs11]]\nmodule = \"{YKCS11_MODULE}\"\ntoken = \"{}\"\n{pin}",
            self.name()
        )
    }
}
