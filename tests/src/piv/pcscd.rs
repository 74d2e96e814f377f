//! The machine's pcscd with the simulated readers, and the lock that keeps tests with cards
//! from overlapping (within this process and across test binaries).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::Error;

/// vpcd's TCP ports: the two of Debian's /etc/reader.conf.d/vpcd and the two of
/// scripts/start-pcscd.sh's /etc/reader.conf.d/tufa-vpcd.
pub const READER_PORTS: [u16; 4] = [35963, 35964, 35965, 35966];

/// The port of the reader named "Yubico YubiKey tufa 00 00" (scripts/start-pcscd.sh's
/// /etc/reader.conf.d/tufa-vpcd-yubico), the only kind Yubico's ykcs11 2.2 lists; cards go there
/// only when asked ([`crate::piv::VirtualCard::insert_for_ykcs11`]).
pub const YUBICO_READER_PORT: u16 = 35967;

/// The readers pcscd shows for those ports.
const READER_NAMES: [&str; 5] = [
    "Virtual PCD 00 00",
    "Virtual PCD 00 01",
    "Virtual PCD tufa 00 00",
    "Virtual PCD tufa 00 01",
    "Yubico YubiKey tufa 00 00",
];

const PCSCD: &str = "/usr/sbin/pcscd";
const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
/// The file every card-using test process locks.
const LOCK_FILE: &str = "/tmp/tufa-piv-cards.lock";

/// Makes sure pcscd runs with the four simulated readers: does nothing when it does, else
/// runs scripts/start-pcscd.sh (which writes the reader configuration and starts or restarts
/// pcscd) and waits for the readers.
pub fn ensure_pcscd() -> Result<(), Error> {
    if readers_ready() {
        return Ok(());
    }
    if !Path::new(PCSCD).exists() {
        return Err(Error::NotInstalled {
            what: "pcscd (Debian package pcscd)",
        });
    }
    if !Path::new(VPCD_DRIVER).exists() {
        return Err(Error::NotInstalled {
            what: "the vpcd reader driver (Debian package vsmartcard-vpcd)",
        });
    }
    let script = start_script();
    let output = Command::new(&script)
        // The caller holds the card lock (insert needs it): the script must not wait for it.
        .env("TUFA_PIV_CARDS_LOCKED", "1")
        .output()
        .map_err(|e| Error::Pcscd {
            reason: format!("cannot run {}: {e}", script.display()),
        })?;
    if !output.status.success() {
        return Err(Error::Pcscd {
            reason: format!(
                "{} failed ({}): {}",
                script.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if readers_ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(Error::Pcscd {
        reason: format!(
            "pcscd runs but does not list the readers {READER_NAMES:?} (see `opensc-tool -l`); \
             run {} and read its output",
            script.display()
        ),
    })
}

fn start_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/start-pcscd.sh")
}

/// Whether pcscd answers and lists every simulated reader.
fn readers_ready() -> bool {
    let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::User) else {
        return false;
    };
    let Ok(readers) = ctx.list_readers_owned() else {
        return false;
    };
    READER_NAMES
        .iter()
        .all(|name| readers.iter().any(|r| r.to_bytes() == name.as_bytes()))
}

static LOCK: Mutex<()> = Mutex::new(());
static HELD: AtomicBool = AtomicBool::new(false);

/// While alive, no other test (thread of this process, or process holding the same lock)
/// uses simulated cards.
#[must_use = "the lock is released when the guard is dropped"]
pub struct Exclusive {
    _file: File,
    _guard: MutexGuard<'static, ()>,
}

/// Waits for, then takes, the right to use simulated cards: a process-wide mutex plus an
/// exclusive flock on /tmp/tufa-piv-cards.lock, for cargo test's threads and nextest's
/// processes alike.
pub fn exclusive() -> Exclusive {
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // One lock for every user's tests: a lock file another user made (and we cannot write)
    // locks as well through a read-only descriptor.
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o666)
        .open(LOCK_FILE)
        .or_else(|_| File::open(LOCK_FILE))
        .unwrap_or_else(|e| panic!("cannot open the card lock {LOCK_FILE}: {e}"));
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .unwrap_or_else(|e| panic!("cannot lock {LOCK_FILE}: {e}"));
    HELD.store(true, Ordering::SeqCst);
    Exclusive {
        _file: file,
        _guard: guard,
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        // The flock goes with the file; the mutex with the guard, after this.
        HELD.store(false, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Exclusive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exclusive")
    }
}

/// Whether some test of this process holds [`exclusive`].
pub(crate) fn exclusive_held() -> bool {
    HELD.load(Ordering::SeqCst)
}
