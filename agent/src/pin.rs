//! Where a device's PIN comes from, and the cache of a PIN a client handed over.
//!
//! A PIN is a `SecretString` from the moment it is read until the device call, and is zeroized
//! when dropped. A PIN the device refused is dropped at once and never tried again on the agent's
//! own initiative: a configured PIN that failed stays refused until it changes.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest, Sha256};

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

/// Why no PIN can be had right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoPin {
    /// Nothing configured and nothing cached (or the cache expired).
    Locked,
    /// The configured source cannot be read.
    Unreadable(String),
    /// The configured PIN was refused by the device before and has not changed.
    Refused(String),
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

    /// Where the configured PIN comes from.
    pub fn source(&self) -> &PinSource {
        &self.source
    }

    /// The PIN to log in with: an unexpired cached one first, then the configured source.
    pub fn current(&mut self) -> Result<(SecretString, PinOrigin), NoPin> {
        if self.cache_expired() {
            self.cached = None;
        }
        if let Some((pin, _)) = &self.cached {
            return Ok((pin.clone(), PinOrigin::Cache));
        }
        let pin = match &self.source {
            PinSource::Unlock => return Err(NoPin::Locked),
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
            PinOrigin::Client => {}
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

    /// Whether a login made with a cached PIN must end because the cache expired.
    pub fn cache_expired(&self) -> bool {
        self.cached
            .as_ref()
            .is_some_and(|(_, until)| Instant::now() >= *until)
    }

    /// Whether a client's PIN is cached and unexpired.
    pub fn cache_valid(&self) -> bool {
        self.cached
            .as_ref()
            .is_some_and(|(_, until)| Instant::now() < *until)
    }

    /// Whether a PIN can be had without asking a client.
    pub fn available(&mut self) -> bool {
        self.current().is_ok()
    }
}

/// Where the PIN used for a login came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinOrigin {
    /// The configured file or variable.
    Configured,
    /// A client's unlock, cached.
    Cache,
    /// A client's unlock being checked right now.
    Client,
}

fn fingerprint(pin: &SecretString) -> [u8; 32] {
    Sha256::digest(pin.expose_secret().as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(st.current().unwrap_err(), NoPin::Locked);
        st.cache(SecretString::from("1234"), Duration::from_millis(30));
        assert_eq!(st.current().unwrap().1, PinOrigin::Cache);
        std::thread::sleep(Duration::from_millis(40));
        assert!(st.cache_expired());
        assert_eq!(st.current().unwrap_err(), NoPin::Locked);
    }
}
