//! The GUN (globally unique name) of a trust repository, e.g. `docker.io/library/alpine`.

use std::fmt;
use std::str::FromStr;

/// A repository name notary-server would not route, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{gun}' is not a valid GUN (repository name): {reason}; use a name such as docker.io/library/alpine")]
pub struct InvalidGun {
    /// The rejected name.
    pub gun: String,
    /// What is wrong.
    pub reason: String,
}

/// A repository's GUN as notary-server routes it: `/v2/<gun>/_trust/tuf/...`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gun(String);

impl Gun {
    /// The longest GUN accepted (the certificate CN and the server's path both carry it).
    pub const MAX_LEN: usize = 255;

    /// The GUN as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Gun {
    type Err = InvalidGun;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| InvalidGun {
            gun: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(bad("it is longer than 255 characters"));
        }
        if s.starts_with('/') || s.ends_with('/') || s.contains("//") {
            return Err(bad("it has an empty path component"));
        }
        if s.split('/').any(|p| p == "." || p == "..") {
            return Err(bad("it has a '.' or '..' path component"));
        }
        // The server's route takes anything but '*'; whitespace and controls cannot be in a URL path.
        if s.chars()
            .any(|c| c == '*' || c.is_whitespace() || c.is_control())
        {
            return Err(bad("it contains '*', whitespace or a control character"));
        }
        if !s.is_ascii() {
            return Err(bad("it contains non-ASCII characters"));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for Gun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gun_rules() {
        for ok in [
            "docker.io/library/alpine",
            "127.0.0.1:5000/dct/app",
            "localhost:5000/demo",
        ] {
            assert_eq!(ok.parse::<Gun>().unwrap().as_str(), ok);
        }
        for bad in ["", "/a", "a/", "a//b", "a/../b", "a b", "a*", "é"] {
            let e = bad.parse::<Gun>().unwrap_err().to_string();
            assert!(e.contains("GUN"), "{bad:?}: {e}");
        }
    }
}
