//! Where a device's PIN comes from, the cache of a PIN a client handed over, and the gate every
//! login goes through.
//!
//! A PIN is a `SecretString` from the moment it is read until the device call, and is zeroized
//! when dropped. A PIN the device refused is dropped at once and never tried again on the agent's
//! own initiative: a configured PIN that failed stays refused until it changes.
//!
//! The bookkeeping is written once, in [`PinGate`], for every device: when to log in, with which
//! PIN, when a cached PIN's login ends, what to remember of a refusal. A device only does the
//! device work of a login ([`Login`]), and lends its gate and login under its own lock
//! ([`Gated`]); [`PinControl`] (unlock, lock, needs a PIN?) follows for every such device.

use std::fmt;
use std::path::PathBuf;
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
}

impl PinState {
    /// State for a device whose PIN comes from `source`.
    pub fn new(source: PinSource) -> Self {
        Self {
            source,
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
            PinSource::File(path) => std::fs::read_to_string(path)
                .map(zeroize::Zeroizing::new)
                .map(|s| SecretString::from(s.lines().next().unwrap_or_default().to_owned()))
                .map_err(|e| NoPin::Unreadable(format!("cannot read {}: {e}", path.display())))?,
            PinSource::Env(var) => std::env::var(var)
                .map(SecretString::from)
                .map_err(|_| NoPin::Unreadable(format!("environment variable {var} is not set")))?,
        };
        if self.refused == Some(fingerprint(&pin)) {
            return Err(NoPin::Refused(self.source.to_string()));
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
            PinOrigin::Configured => self.refused = Some(fingerprint(pin)),
        }
    }

    /// A client's PIN was accepted: the device is fine again with whatever the source says.
    pub fn accepted(&mut self) {
        self.refused = None;
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
            Ok(()) => Ok(()),
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
