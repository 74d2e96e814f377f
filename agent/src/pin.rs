//! Where a device's PIN comes from, the cache of a PIN a client handed over, and the gate every
//! login goes through.
//!
//! A PIN is a `SecretString` from the moment it is read until the device call, and is zeroized
//! when dropped. A PIN the device refused is dropped at once and never tried again on the agent's
//! own initiative: a configured PIN that failed stays refused until it changes, across restarts
//! too ([`RefusalRecord`]: a salted, slow fingerprint in the agent's state directory, never the
//! PIN). A PIN file that is empty, or changes while it is read, is not sent at all.
//!
//! The bookkeeping is written once, in [`PinGate`], for every device: when to log in, with which
//! PIN, when a cached PIN's login ends, what to remember of a refusal. A device only does the
//! device work of a login ([`Login`]), and lends its gate and login under its own lock
//! ([`Gated`]); [`PinControl`] (unlock, lock, needs a PIN?) follows for every such device.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest, Sha256};

use crate::error::{AgentError, NoPin};

/// Where the agent reads a device's PIN without asking a client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PinSource {
    /// Only a client's `unlock` gives the PIN.
    #[default]
    Unlock,
    /// The first line of a file.
    File(PathBuf),
    /// An environment variable of the agent.
    Env(String),
}

impl fmt::Display for PinSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unlock => f.write_str("`tufa agent unlock`"),
            Self::File(p) => write!(f, "PIN file {}", p.display()),
            Self::Env(v) => write!(f, "environment variable {v}"),
        }
    }
}

/// Where the PIN of a login came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinOrigin {
    /// The configured file or variable.
    Configured,
    /// A client's unlock, cached: the login ends with the cache's TTL.
    Cache,
}

/// A device's PIN state. No `Debug`: the refused PIN's fingerprint is an unsalted hash of a
/// short PIN, as good as the PIN itself.
#[derive(Default)]
pub struct PinState {
    source: PinSource,
    cached: Option<(SecretString, Instant)>,
    // Fingerprint of the configured PIN the device refused, so it is not tried again.
    refused: Option<[u8; 32]>,
    // The refusal remembered across restarts, and the last PIN checked against it (so the slow
    // comparison runs once per change of the file, not once per request).
    record: Option<RefusalRecord>,
    checked: Option<[u8; 32]>,
}

impl PinState {
    /// State for a device whose PIN comes from `source`.
    pub fn new(source: PinSource) -> Self {
        Self {
            source,
            ..Self::default()
        }
    }

    /// State that remembers a refused configured PIN in `record` across restarts.
    pub fn remembering(source: PinSource, record: Option<RefusalRecord>) -> Self {
        Self {
            source,
            record,
            ..Self::default()
        }
    }

    /// The PIN to log in with: an unexpired cached one first, then the configured source.
    pub fn current(&mut self) -> Result<(SecretString, PinOrigin), NoPin> {
        if self
            .cached_until()
            .is_some_and(|until| Instant::now() >= until)
        {
            self.cached = None;
        }
        if let Some((pin, _)) = &self.cached {
            return Ok((pin.clone(), PinOrigin::Cache));
        }
        let pin = match &self.source {
            PinSource::Unlock => return Err(NoPin::NotGiven),
            PinSource::File(path) => read_pin_file(path)?,
            PinSource::Env(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => SecretString::from(v),
                Ok(_) => {
                    return Err(NoPin::Unreadable(format!(
                        "environment variable {var} is empty"
                    )))
                }
                Err(_) => {
                    return Err(NoPin::Unreadable(format!(
                        "environment variable {var} is not set"
                    )))
                }
            },
        };
        let fp = fingerprint(&pin);
        if self.refused == Some(fp) {
            return Err(NoPin::Refused(self.source.to_string()));
        }
        if self.checked != Some(fp) {
            if let Some(record) = &self.record {
                if record.holds(&pin) {
                    self.refused = Some(fp);
                    return Err(NoPin::Refused(format!(
                        "{} (before the agent's restart; remembered in {})",
                        self.source,
                        record.path.display()
                    )));
                }
            }
            self.checked = Some(fp);
        }
        Ok((pin, PinOrigin::Configured))
    }

    /// Keeps a PIN a client gave, after the device accepted it.
    pub fn cache(&mut self, pin: SecretString, ttl: Duration) {
        self.cached = Some((pin, Instant::now() + ttl));
    }

    /// The device refused `pin` from `origin`: forget it, and never try it again by itself.
    pub fn refused(&mut self, pin: &SecretString, origin: PinOrigin) {
        match origin {
            PinOrigin::Cache => self.cached = None,
            PinOrigin::Configured => {
                let fp = fingerprint(pin);
                self.refused = Some(fp);
                self.checked = Some(fp);
                if let Some(record) = &self.record {
                    record.store(pin);
                }
            }
        }
    }

    /// A PIN was accepted: the device is fine again with whatever the source says.
    pub fn accepted(&mut self) {
        self.refused = None;
        self.checked = None;
        if let Some(record) = &self.record {
            record.clear();
        }
    }

    /// Forgets the cached PIN.
    pub fn forget(&mut self) {
        self.cached = None;
    }

    /// Whether a client's PIN is cached and unexpired.
    pub fn cache_valid(&self) -> bool {
        self.cached_until()
            .is_some_and(|until| Instant::now() < until)
    }

    /// Whether a PIN can be had without asking a client.
    pub fn available(&mut self) -> bool {
        self.current().is_ok()
    }

    fn cached_until(&self) -> Option<Instant> {
        self.cached.as_ref().map(|(_, until)| *until)
    }
}

/// Reads the PIN on a file's first line. An empty or blank line is refused without a try (a
/// file being rewritten, `echo new > pin`, is empty for a moment), and so is a file that changed
/// while it was read, which may have been read half-written.
fn read_pin_file(path: &Path) -> Result<SecretString, NoPin> {
    let unreadable = |why: String| NoPin::Unreadable(format!("{}: {why}", path.display()));
    let mut file =
        std::fs::File::open(path).map_err(|e| unreadable(format!("cannot read it: {e}")))?;
    let stamp = |f: &std::fs::File| f.metadata().map(|m| (m.len(), m.modified().ok()));
    let before = stamp(&file).map_err(|e| unreadable(format!("cannot read it: {e}")))?;
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    file.read_to_end(&mut bytes)
        .map_err(|e| unreadable(format!("cannot read it: {e}")))?;
    let after = stamp(&file).map_err(|e| unreadable(format!("cannot read it: {e}")))?;
    if before != after || before.0 != bytes.len() as u64 {
        return Err(unreadable(
            "it changed while the agent read it (being rewritten?); no PIN was tried, the next request reads it again".into(),
        ));
    }
    let text =
        std::str::from_utf8(&bytes).map_err(|_| unreadable("it is not UTF-8 text".into()))?;
    let line = text.lines().next().unwrap_or_default();
    if line.trim().is_empty() {
        return Err(unreadable(
            "its first line is empty; no PIN was tried (write the PIN on the first line)".into(),
        ));
    }
    Ok(SecretString::from(line.to_owned()))
}

/// A refused configured PIN, remembered across restarts in a file of the agent's state
/// directory: a random salt and PBKDF2-HMAC-SHA256 of the PIN, never the PIN itself. One file
/// per device, named after a hash of what identifies the device (for a token: module path,
/// label and serial), so a wrong PIN file costs one try in total, not one per restart.
pub struct RefusalRecord {
    path: PathBuf,
    device: String,
}

/// What a [`RefusalRecord`] file holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct RefusalFile {
    device: String,
    kdf: String,
    rounds: u32,
    salt: String,
    fingerprint: String,
}

impl RefusalRecord {
    /// PBKDF2 rounds: slow enough that the file is no shortcut to a short PIN, quick enough to
    /// run once per change of the PIN file.
    const ROUNDS: u32 = 10_000;
    const KDF: &'static str = "pbkdf2-hmac-sha256";

    /// The record of the device identified by `identity` (described as `device`) in `dir`.
    pub fn new(dir: &Path, identity: &str, device: String) -> Self {
        let name = hex::encode(&Sha256::digest(identity.as_bytes())[..16]);
        Self {
            path: dir.join(format!("refused-pin-{name}.json")),
            device,
        }
    }

    /// Where the record is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn derive(pin: &SecretString, salt: &[u8], rounds: u32) -> [u8; 32] {
        pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(pin.expose_secret().as_bytes(), salt, rounds)
    }

    /// Whether the record says `pin` was refused.
    fn holds(&self, pin: &SecretString) -> bool {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return false;
        };
        let Ok(f) = serde_json::from_str::<RefusalFile>(&text) else {
            tracing::warn!(path = %self.path.display(), "ignoring a refused-PIN record that does not parse");
            return false;
        };
        let (Ok(salt), Ok(want)) = (hex::decode(&f.salt), hex::decode(&f.fingerprint)) else {
            return false;
        };
        f.kdf == Self::KDF && f.rounds > 0 && Self::derive(pin, &salt, f.rounds)[..] == want[..]
    }

    /// Remembers that `pin` was refused (written whole, mode 0600, then renamed into place).
    fn store(&self, pin: &SecretString) {
        let mut salt = [0u8; 16];
        if getrandom::fill(&mut salt).is_err() {
            tracing::error!(
                "no randomness for the refused-PIN record; it lasts until restart only"
            );
            return;
        }
        let record = RefusalFile {
            device: self.device.clone(),
            kdf: Self::KDF.into(),
            rounds: Self::ROUNDS,
            salt: hex::encode(salt),
            fingerprint: hex::encode(Self::derive(pin, &salt, Self::ROUNDS)),
        };
        if let Err(e) = self.write(&record) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot remember the refused PIN across restarts");
        }
    }

    fn write(&self, record: &RefusalFile) -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec(record).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }

    /// Forgets the refusal (a PIN was accepted since).
    fn clear(&self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the refused-PIN record")
            }
        }
    }
}

fn fingerprint(pin: &SecretString) -> [u8; 32] {
    Sha256::digest(pin.expose_secret().as_bytes()).into()
}

/// Why a device did not take a PIN.
#[derive(Debug)]
pub enum LoginError {
    /// The device refused this PIN (wrong, blocked by it, a length it cannot have): it must not
    /// be tried again by itself.
    Refused(AgentError),
    /// The login failed for another reason (device gone, one try left): the PIN may be right.
    Failed(AgentError),
}

impl From<AgentError> for LoginError {
    fn from(e: AgentError) -> Self {
        Self::Failed(e)
    }
}

/// The device work of a login, under the device's lock; the [`PinGate`] decides when.
pub trait Login {
    /// Where the PIN of the login the device holds came from; `None` when it holds none.
    fn login(&self) -> Option<PinOrigin>;
    /// Presents `pin`; on success the device holds a login recorded as coming from `origin`.
    fn log_in(&mut self, pin: &SecretString, origin: PinOrigin) -> Result<(), LoginError>;
    /// Ends the login, if there is one.
    fn log_out(&mut self);
}

/// A device's PIN bookkeeping: the same rules for every backend.
pub struct PinGate {
    pins: PinState,
    device: String,
    name: String,
}

impl PinGate {
    /// The gate of `device` (described for messages, `name` as `--device` takes it).
    pub fn new(source: PinSource, device: String, name: String) -> Self {
        Self {
            pins: PinState::new(source),
            device,
            name,
        }
    }

    /// The gate of a device whose refused configured PIN is remembered in `record`.
    pub fn remembering(
        source: PinSource,
        record: Option<RefusalRecord>,
        device: String,
        name: String,
    ) -> Self {
        Self {
            pins: PinState::remembering(source, record),
            device,
            name,
        }
    }

    /// Makes sure the device holds a login; `again` presents the PIN even if it does (a PIV
    /// "PIN always" key).
    pub fn ensure(&mut self, dev: &mut dyn Login, again: bool) -> Result<(), AgentError> {
        self.expire(dev);
        if !again && dev.login().is_some() {
            return Ok(());
        }
        let (pin, origin) = self.pins.current().map_err(|why| AgentError::Locked {
            device: self.device.clone(),
            name: self.name.clone(),
            why,
        })?;
        match dev.log_in(&pin, origin) {
            Ok(()) => {
                if origin == PinOrigin::Configured {
                    self.pins.accepted();
                }
                Ok(())
            }
            Err(LoginError::Refused(e)) => {
                self.pins.refused(&pin, origin);
                Err(e)
            }
            Err(LoginError::Failed(e)) => Err(e),
        }
    }

    /// Ends a login made with a client's PIN whose TTL ran out.
    pub fn expire(&mut self, dev: &mut dyn Login) {
        if dev.login() == Some(PinOrigin::Cache) && !self.pins.cache_valid() {
            dev.log_out();
        }
    }

    /// Checks a client's PIN with the device at once and keeps it for `ttl`. A refused PIN is
    /// the client's to correct: nothing of it is kept.
    pub fn unlock(
        &mut self,
        dev: &mut dyn Login,
        pin: SecretString,
        ttl: Duration,
    ) -> Result<(), AgentError> {
        // A new PIN replaces the old login, so a wrong one is caught now and not at signing time.
        dev.log_out();
        match dev.log_in(&pin, PinOrigin::Cache) {
            Ok(()) => {
                self.pins.accepted();
                self.pins.cache(pin, ttl);
                Ok(())
            }
            Err(LoginError::Refused(e) | LoginError::Failed(e)) => Err(e),
        }
    }

    /// Forgets the cached PIN and logs out.
    pub fn lock(&mut self, dev: &mut dyn Login) {
        self.pins.forget();
        dev.log_out();
    }

    /// Whether the device needs a PIN from a client: no valid login, none configured or cached.
    pub fn needs_pin(&mut self, dev: &dyn Login) -> bool {
        let holds = dev
            .login()
            .is_some_and(|o| o != PinOrigin::Cache || self.pins.cache_valid());
        !(holds || self.pins.available())
    }
}

/// A device whose logins go through a [`PinGate`].
pub trait Gated {
    /// Runs `f` with the device's gate and login, holding the device's lock.
    fn gated<R>(&self, f: impl FnOnce(&mut PinGate, &mut dyn Login) -> R) -> R;
}

/// What a client can do with a device's PIN; the same for every [`Gated`] device.
pub trait PinControl {
    /// Checks a PIN with the device and keeps it for `ttl`; a wrong PIN is dropped at once.
    fn unlock(&self, pin: SecretString, ttl: Duration) -> Result<(), AgentError>;
    /// Forgets any cached PIN and logs out.
    fn lock(&self);
    /// Whether the device needs a PIN from a client (none configured, none cached).
    fn needs_pin(&self) -> bool;
}

impl<T: Gated> PinControl for T {
    fn unlock(&self, pin: SecretString, ttl: Duration) -> Result<(), AgentError> {
        self.gated(|gate, dev| gate.unlock(dev, pin, ttl))
    }

    fn lock(&self) {
        self.gated(|gate, dev| gate.lock(dev));
    }

    fn needs_pin(&self) -> bool {
        self.gated(|gate, dev| gate.needs_pin(dev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Retries;

    #[test]
    fn refused_configured_pin_is_not_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pin");
        std::fs::write(&file, "1234\n").unwrap();
        let mut st = PinState::new(PinSource::File(file.clone()));
        let (pin, origin) = st.current().unwrap();
        assert_eq!(pin.expose_secret(), "1234");
        st.refused(&pin, origin);
        assert!(matches!(st.current(), Err(NoPin::Refused(_))));
        std::fs::write(&file, "5678\n").unwrap();
        assert_eq!(st.current().unwrap().0.expose_secret(), "5678");
    }

    #[test]
    fn an_empty_or_blank_pin_file_is_never_sent() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pin");
        for text in ["", "\n", "   \nsecond line\n"] {
            std::fs::write(&file, text).unwrap();
            let mut st = PinState::new(PinSource::File(file.clone()));
            match st.current() {
                Err(NoPin::Unreadable(why)) => assert!(why.contains("empty"), "{why}"),
                Err(e) => panic!("{text:?}: {e:?}"),
                Ok(_) => panic!("{text:?} gave a PIN"),
            }
        }
        std::fs::write(&file, "1234\r\n").unwrap();
        let mut st = PinState::new(PinSource::File(file));
        assert_eq!(st.current().unwrap().0.expose_secret(), "1234");
    }

    #[test]
    fn a_refusal_is_remembered_across_restarts_without_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pin");
        let state = dir.path().join("state");
        std::fs::write(&file, "wrong-pin-4711\n").unwrap();
        let record = || {
            Some(RefusalRecord::new(
                &state,
                "pkcs11|/m.so|ci|123",
                "token ci".into(),
            ))
        };
        let mut st = PinState::remembering(PinSource::File(file.clone()), record());
        let (pin, origin) = st.current().unwrap();
        st.refused(&pin, origin);
        let stored = std::fs::read_dir(&state)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let text = std::fs::read_to_string(&stored).unwrap();
        assert!(
            !text.contains("wrong-pin-4711") && text.contains("pbkdf2"),
            "{text}"
        );
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // A new agent (a new state) does not try it again.
        let mut again = PinState::remembering(PinSource::File(file.clone()), record());
        match again.current() {
            Err(NoPin::Refused(why)) => assert!(why.contains("restart"), "{why}"),
            other => panic!("{:?}", other.map(|(_, o)| o)),
        }
        // Another device's record is another file.
        let mut other = PinState::remembering(
            PinSource::File(file.clone()),
            Some(RefusalRecord::new(
                &state,
                "pkcs11|/m.so|ci|456",
                "token ci".into(),
            )),
        );
        assert!(other.current().is_ok());
        // A changed file is tried; an accepted PIN clears the record.
        std::fs::write(&file, "right-pin\n").unwrap();
        let mut fixed = PinState::remembering(PinSource::File(file), record());
        assert!(fixed.current().is_ok());
        fixed.accepted();
        assert!(!stored.exists());
    }

    #[test]
    fn cache_expires() {
        let mut st = PinState::new(PinSource::Unlock);
        assert_eq!(st.current().unwrap_err(), NoPin::NotGiven);
        st.cache(SecretString::from("1234"), Duration::from_millis(30));
        assert_eq!(st.current().unwrap().1, PinOrigin::Cache);
        std::thread::sleep(Duration::from_millis(40));
        assert!(!st.cache_valid());
        assert_eq!(st.current().unwrap_err(), NoPin::NotGiven);
    }

    /// A device that takes one PIN and counts what it was asked to do.
    struct FakeDevice {
        right: &'static str,
        login: Option<PinOrigin>,
        tries: usize,
        logouts: usize,
    }

    impl FakeDevice {
        fn new(right: &'static str) -> Self {
            Self {
                right,
                login: None,
                tries: 0,
                logouts: 0,
            }
        }
    }

    impl Login for FakeDevice {
        fn login(&self) -> Option<PinOrigin> {
            self.login
        }

        fn log_in(&mut self, pin: &SecretString, origin: PinOrigin) -> Result<(), LoginError> {
            self.tries += 1;
            if pin.expose_secret() == self.right {
                self.login = Some(origin);
                Ok(())
            } else {
                Err(LoginError::Refused(AgentError::WrongPin {
                    device: "fake".into(),
                    retries: Retries::Unknown,
                }))
            }
        }

        fn log_out(&mut self) {
            self.logouts += 1;
            self.login = None;
        }
    }

    fn gate(source: PinSource) -> PinGate {
        PinGate::new(source, "fake device".into(), "fake".into())
    }

    #[test]
    fn a_refused_pin_file_is_tried_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pin");
        std::fs::write(&file, "0000\n").unwrap();
        let mut gate = gate(PinSource::File(file.clone()));
        let mut dev = FakeDevice::new("123456");
        assert!(matches!(
            gate.ensure(&mut dev, false),
            Err(AgentError::WrongPin { .. })
        ));
        assert!(matches!(
            gate.ensure(&mut dev, false),
            Err(AgentError::Locked {
                why: NoPin::Refused(_),
                ..
            })
        ));
        assert_eq!(dev.tries, 1);
        std::fs::write(&file, "123456\n").unwrap();
        gate.ensure(&mut dev, false).unwrap();
        assert_eq!(dev.login, Some(PinOrigin::Configured));
        // Logged in: no second VERIFY, unless the key asks for it every time.
        gate.ensure(&mut dev, false).unwrap();
        assert_eq!(dev.tries, 2);
        gate.ensure(&mut dev, true).unwrap();
        assert_eq!(dev.tries, 3);
    }

    #[test]
    fn an_unlock_pin_lasts_its_ttl_and_lock_ends_it() {
        let mut gate = gate(PinSource::Unlock);
        let mut dev = FakeDevice::new("123456");
        assert!(gate.needs_pin(&dev));
        assert!(matches!(
            gate.ensure(&mut dev, false),
            Err(AgentError::Locked {
                why: NoPin::NotGiven,
                ..
            })
        ));
        assert!(gate
            .unlock(&mut dev, "000000".into(), Duration::from_secs(60))
            .is_err());
        assert!(gate.needs_pin(&dev));
        gate.unlock(&mut dev, "123456".into(), Duration::from_millis(40))
            .unwrap();
        assert_eq!(dev.login, Some(PinOrigin::Cache));
        assert!(!gate.needs_pin(&dev));
        std::thread::sleep(Duration::from_millis(50));
        assert!(gate.needs_pin(&dev));
        assert!(gate.ensure(&mut dev, false).is_err());
        assert_eq!(dev.login, None);

        gate.unlock(&mut dev, "123456".into(), Duration::from_secs(60))
            .unwrap();
        gate.lock(&mut dev);
        assert_eq!(dev.login, None);
        assert!(gate.needs_pin(&dev));
    }
}
