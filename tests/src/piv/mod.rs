//! A simulated YubiKey 5 (PIV application) for tests, reached through the real stack: the
//! `yubikey` crate → libpcsclite → pcscd → vsmartcard's vpcd driver → TCP on loopback → a
//! thread of the test process that plays the card.
//!
//! Layout: `vpcd` is the link to the reader driver, `apdu` and `tlv` the encodings,
//! `card` the PIV application and its state, `attest` the attestation certificates, `pcscd`
//! the daemon set-up and the cross-process lock.
//!
//! ```no_run
//! use tufa_tests::piv::{self, CardSpec, VirtualCard};
//! let _exclusive = piv::exclusive();
//! let card = VirtualCard::insert(CardSpec { serial: 1234, ..CardSpec::default() }).unwrap();
//! // yubikey::YubiKey::open_by_serial(yubikey::Serial(1234)) now finds it.
//! ```
//!
//! pcscd is one per machine, and the agent resets every card it finds, so every test that
//! inserts cards holds [`exclusive`] for its whole duration.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod apdu;
mod attest;
mod card;
mod pcscd;
mod tlv;
mod vpcd;

pub use attest::ATTESTATION_SUBJECT;
pub use pcscd::{ensure_pcscd, exclusive, Exclusive, READER_PORTS, YUBICO_READER_PORT};

use card::PivCard;
use vpcd::Link;

/// The factory PIN.
pub const DEFAULT_PIN: &str = "123456";
/// The factory PUK.
pub const DEFAULT_PUK: &str = "12345678";
/// The factory management key (3DES before firmware 5.7, AES-192 from 5.7).
pub const DEFAULT_MGM_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

/// How long pcscd may take to notice an insertion or removal (it polls every ~400 ms).
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(3);

/// The firmware the card claims, which decides its default management key algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Firmware {
    /// 5.4.3: 3DES default management key.
    #[default]
    V5_4_3,
    /// 5.7.1: AES-192 default management key.
    V5_7_1,
}

impl Firmware {
    /// Major, minor, patch.
    pub fn version(self) -> [u8; 3] {
        match self {
            Firmware::V5_4_3 => [5, 4, 3],
            Firmware::V5_7_1 => [5, 7, 1],
        }
    }

    /// The PIV algorithm identifier of the factory management key (03 = 3DES, 0A = AES-192).
    pub fn default_mgm_algorithm(self) -> u8 {
        match self {
            Firmware::V5_4_3 => card::ALG_3DES,
            Firmware::V5_7_1 => card::ALG_AES192,
        }
    }
}

/// What card to make.
#[derive(Debug, Clone)]
pub struct CardSpec {
    /// The serial number the card reports.
    pub serial: u32,
    /// The firmware it claims.
    pub firmware: Firmware,
    /// How long a "touch" takes when a key's touch policy asks for one.
    pub touch_delay: Duration,
}

impl Default for CardSpec {
    fn default() -> Self {
        CardSpec {
            serial: 12_345_678,
            firmware: Firmware::default(),
            touch_delay: Duration::from_millis(200),
        }
    }
}

/// Why a simulated card could not be inserted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// pcscd or the vpcd driver is missing.
    #[error("{what} is not installed: run scripts/install-deps.sh")]
    NotInstalled {
        /// The missing component.
        what: &'static str,
    },
    /// pcscd could not be started with the simulated readers.
    #[error("cannot get pcscd running with the simulated readers: {reason}")]
    Pcscd {
        /// What went wrong, with the step that fixes it.
        reason: String,
    },
    /// [`VirtualCard::insert`] was called without [`exclusive`] held.
    #[error(
        "simulated cards need piv::exclusive() held for the whole test: the agent resets \
         every card it finds, so tests with cards must not overlap"
    )]
    NotExclusive,
    /// Every simulated reader already holds a card of this process.
    #[error("all {} simulated readers hold a card already; unplug one first", READER_PORTS.len())]
    NoFreeReader,
    /// Another card of this process has the same serial.
    #[error("a simulated card with serial {0} is already inserted; give each card its own serial")]
    DuplicateSerial(u32),
    /// vpcd did not accept the card's connection.
    #[error(
        "cannot connect the simulated card to vpcd on 127.0.0.1:{port} ({source}); run \
         scripts/start-pcscd.sh"
    )]
    Connect {
        /// The reader's port.
        port: u16,
        /// The connection error.
        source: std::io::Error,
    },
    /// pcscd did not show the card in time.
    #[error(
        "pcscd did not report the simulated card {serial} (vpcd port {port}) within {}s; \
         check pcscd with `opensc-tool -l`, or restart it with scripts/start-pcscd.sh",
        VISIBLE_TIMEOUT.as_secs()
    )]
    NotVisible {
        /// The card's serial.
        serial: u32,
        /// The reader's port.
        port: u16,
    },
}

/// Ports and reader names taken by this process's inserted cards, and serials of all its cards.
static IN_USE: Mutex<(BTreeSet<u16>, BTreeSet<String>, BTreeSet<u32>)> =
    Mutex::new((BTreeSet::new(), BTreeSet::new(), BTreeSet::new()));

/// Index in [`READER_PORTS`] of the next reader to try.
static NEXT_PORT: AtomicUsize = AtomicUsize::new(0);

fn in_use() -> std::sync::MutexGuard<'static, (BTreeSet<u16>, BTreeSet<String>, BTreeSet<u32>)> {
    IN_USE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A simulated YubiKey. Its keys, objects, PIN and PUK live in this value, so they survive
/// [`VirtualCard::unplug`] and [`VirtualCard::plug`]; dropping it removes the card.
pub struct VirtualCard {
    state: Arc<Mutex<PivCard>>,
    serial: u32,
    plugged: Option<Plugged>,
    // The reader the card always goes into, if not any free one.
    port: Option<u16>,
}

/// A card in a reader.
struct Plugged {
    link: Link,
    port: u16,
    reader: String,
}

impl VirtualCard {
    /// Makes a factory-fresh card and inserts it into a free simulated reader; returns once
    /// pcscd reports it. Starts pcscd if needed ([`ensure_pcscd`]); needs [`exclusive`] held.
    pub fn insert(spec: CardSpec) -> Result<VirtualCard, Error> {
        Self::insert_at(spec, None)
    }

    /// As [`VirtualCard::insert`], into the reader named "Yubico YubiKey tufa 00 00", so that
    /// Yubico's ykcs11 PKCS#11 module (which lists only readers named "Yubico...") sees it.
    pub fn insert_for_ykcs11(spec: CardSpec) -> Result<VirtualCard, Error> {
        Self::insert_at(spec, Some(YUBICO_READER_PORT))
    }

    fn insert_at(spec: CardSpec, port: Option<u16>) -> Result<VirtualCard, Error> {
        if !pcscd::exclusive_held() {
            return Err(Error::NotExclusive);
        }
        ensure_pcscd()?;
        if !in_use().2.insert(spec.serial) {
            return Err(Error::DuplicateSerial(spec.serial));
        }
        let state = PivCard::new(spec.firmware, spec.serial, spec.touch_delay);
        let mut card = VirtualCard {
            state: Arc::new(Mutex::new(state)),
            serial: spec.serial,
            plugged: None,
            port,
        };
        card.plug()?;
        Ok(card)
    }

    /// The serial number the card reports.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// The PC/SC name of the reader holding the card, while it is plugged in.
    pub fn reader_name(&self) -> Option<&str> {
        self.plugged.as_ref().map(|p| p.reader.as_str())
    }

    /// PIN tries left (3 on a fresh card): lets a test check that nothing used up a try.
    pub fn pin_retries_left(&self) -> u8 {
        self.lock().pin_remaining()
    }

    /// PUK tries left.
    pub fn puk_retries_left(&self) -> u8 {
        self.lock().puk_remaining()
    }

    /// The uncompressed SEC1 public point of the key in `slot` (0x9a, 0x9c, 0x82...), if any.
    pub fn public_key(&self, slot: u8) -> Option<Vec<u8>> {
        self.lock().public_point(slot)
    }

    /// Whether the card is in a reader.
    pub fn is_plugged(&self) -> bool {
        self.plugged.is_some()
    }

    /// Removes the card, as pulling a YubiKey out; returns once pcscd reports the reader
    /// empty. PIN verification and management authentication are lost.
    pub fn unplug(&mut self) {
        self.remove(true);
    }

    /// Closes the link; `wait` until pcscd reports the reader empty.
    fn remove(&mut self, wait: bool) {
        let Some(plugged) = self.plugged.take() else {
            return;
        };
        plugged.link.close();
        if wait {
            wait_removed(&plugged.reader);
        }
        let mut used = in_use();
        used.0.remove(&plugged.port);
        used.1.remove(&plugged.reader);
        drop(used);
        self.lock().reset_volatile();
    }

    /// Inserts the card again (into any free reader), keeping its keys and objects; returns
    /// once pcscd reports it.
    pub fn plug(&mut self) -> Result<(), Error> {
        if self.plugged.is_some() {
            return Ok(());
        }
        self.lock().reset_volatile();
        let port = if let Some(port) = self.port {
            let mut used = in_use();
            if !used.0.insert(port) {
                return Err(Error::NoFreeReader);
            }
            port
        } else {
            let mut used = in_use();
            // Round robin, so a reader whose removal pcscd has not noticed yet (a card just
            // dropped) is the last one taken again.
            let start = NEXT_PORT.load(Ordering::Relaxed);
            let port = (0..READER_PORTS.len())
                .map(|i| READER_PORTS[(start + i) % READER_PORTS.len()])
                .find(|p| !used.0.contains(p))
                .ok_or(Error::NoFreeReader)?;
            let index = READER_PORTS.iter().position(|&p| p == port).unwrap_or(0);
            NEXT_PORT.store(index + 1, Ordering::Relaxed);
            used.0.insert(port);
            port
        };
        let release = || {
            in_use().0.remove(&port);
        };
        let link = match Link::connect(port, Arc::clone(&self.state)) {
            Ok(link) => link,
            Err(source) => {
                release();
                return Err(Error::Connect { port, source });
            }
        };
        match wait_visible(self.serial) {
            Some(reader) => {
                in_use().1.insert(reader.clone());
                self.plugged = Some(Plugged { link, port, reader });
                Ok(())
            }
            None => {
                link.close();
                release();
                Err(Error::NotVisible {
                    serial: self.serial,
                    port,
                })
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PivCard> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for VirtualCard {
    fn drop(&mut self) {
        // No need to wait for pcscd: the next card takes another reader.
        self.remove(false);
        in_use().2.remove(&self.serial);
    }
}

impl std::fmt::Debug for VirtualCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualCard")
            .field("serial", &self.serial)
            .field("reader", &self.reader_name())
            .finish_non_exhaustive()
    }
}

/// Finds the reader whose card answers with `serial`, asking only readers no other card of
/// this process holds (asking selects PIV, which would clear that card's PIN).
fn wait_visible(serial: u32) -> Option<String> {
    let deadline = Instant::now() + VISIBLE_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::User) {
            let readers = ctx.list_readers_owned().unwrap_or_default();
            for reader in readers {
                let name = reader.to_string_lossy().into_owned();
                if in_use().1.contains(&name) {
                    continue;
                }
                if card_serial(&ctx, &reader) == Some(serial) {
                    return Some(name);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// SELECT PIV and GET SERIAL on the card in `reader`, leaving the card as it is.
fn card_serial(ctx: &pcsc::Context, reader: &CString) -> Option<u32> {
    let card = ctx
        .connect(reader, pcsc::ShareMode::Shared, pcsc::Protocols::T1)
        .ok()?;
    let mut buf = [0u8; 258];
    let select = card
        .transmit(
            &[0x00, 0xa4, 0x04, 0x00, 0x05, 0xa0, 0x00, 0x00, 0x03, 0x08],
            &mut buf,
        )
        .ok()
        .map(|r| r.ends_with(&[0x90, 0x00]))
        .unwrap_or(false);
    let serial = if select {
        match card.transmit(&[0x00, 0xf8, 0x00, 0x00, 0x00], &mut buf) {
            Ok([a, b, c, d, 0x90, 0x00]) => Some(u32::from_be_bytes([*a, *b, *c, *d])),
            _ => None,
        }
    } else {
        None
    };
    let _ = card.disconnect(pcsc::Disposition::LeaveCard);
    serial
}

/// Waits until pcscd reports `reader` empty.
fn wait_removed(reader: &str) {
    let Ok(name) = CString::new(reader) else {
        return;
    };
    let deadline = Instant::now() + VISIBLE_TIMEOUT;
    while Instant::now() < deadline {
        let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::User) else {
            return;
        };
        let mut states = [pcsc::ReaderState::new(name.clone(), pcsc::State::UNAWARE)];
        match ctx.get_status_change(Some(Duration::ZERO), &mut states) {
            Ok(()) if !states[0].event_state().contains(pcsc::State::PRESENT) => return,
            Ok(()) => {}
            Err(_) => return,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
