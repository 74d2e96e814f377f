//! Role names: the four base roles and `targets/<x>` delegations, with Notary's rules.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// A string that is not a Notary role name, and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{name:?} is not a Notary role name: {problem}. Use root, targets, snapshot, timestamp, \
     or targets/<name> where <name> has only lowercase letters, digits, '-', '_' and '/'"
)]
pub struct InvalidRoleName {
    /// The rejected name.
    pub name: String,
    /// The rule it breaks.
    pub problem: &'static str,
}

/// A Notary role name: `root`, `targets`, `snapshot`, `timestamp` or a `targets/…` delegation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleName(Cow<'static, str>);

impl RoleName {
    /// The root role.
    pub const ROOT: RoleName = RoleName(Cow::Borrowed("root"));
    /// The top-level targets role.
    pub const TARGETS: RoleName = RoleName(Cow::Borrowed("targets"));
    /// The snapshot role.
    pub const SNAPSHOT: RoleName = RoleName(Cow::Borrowed("snapshot"));
    /// The timestamp role.
    pub const TIMESTAMP: RoleName = RoleName(Cow::Borrowed("timestamp"));
    /// The delegation docker signs tags into.
    pub const RELEASES: RoleName = RoleName(Cow::Borrowed("targets/releases"));

    /// Parses a role name, applying Notary's delegation rules (`tuf/data/roles.go` `IsDelegation`).
    pub fn new(name: &str) -> Result<Self, InvalidRoleName> {
        for base in [Self::ROOT, Self::TARGETS, Self::SNAPSHOT, Self::TIMESTAMP] {
            if base.as_str() == name {
                return Ok(base);
            }
        }
        let invalid = |problem| InvalidRoleName {
            name: name.to_owned(),
            problem,
        };
        let Some(rest) = name.strip_prefix("targets/") else {
            return Err(invalid("delegations start with \"targets/\""));
        };
        if name.len() >= 256 {
            return Err(invalid("it is longer than 255 bytes"));
        }
        if !name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'/'))
        {
            return Err(invalid(
                "it has a character other than a-z, 0-9, '-', '_', '/'",
            ));
        }
        // With '.' excluded above, Go's `path.Clean(name) == name` leaves only these to check.
        if rest.is_empty() || rest.starts_with('/') || rest.ends_with('/') || rest.contains("//") {
            return Err(invalid("it has an empty path segment"));
        }
        Ok(Self(Cow::Owned(name.to_owned())))
    }

    /// The name as Notary writes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a `targets/…` delegation rather than a base role.
    pub fn is_delegation(&self) -> bool {
        self.0.starts_with("targets/")
    }

    /// Whether this role's files are targets files (top-level or delegated).
    pub fn is_targets(&self) -> bool {
        *self == Self::TARGETS || self.is_delegation()
    }

    /// The role that delegates to this one (`path.Dir`), or `None` for a base role.
    pub fn parent(&self) -> Option<RoleName> {
        if !self.is_delegation() {
            return None;
        }
        let (parent, _) = self.0.rsplit_once('/')?;
        Self::new(parent).ok()
    }

    /// The `_type` Notary writes in this role's files.
    pub fn tuf_type(&self) -> &'static str {
        match self.as_str() {
            "root" => "Root",
            "snapshot" => "Snapshot",
            "timestamp" => "Timestamp",
            _ => "Targets",
        }
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoleName({})", self.0)
    }
}

impl FromStr for RoleName {
    type Err = InvalidRoleName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for RoleName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_roles() {
        assert_eq!(RoleName::new("root").unwrap(), RoleName::ROOT);
        assert_eq!(RoleName::new("timestamp").unwrap().tuf_type(), "Timestamp");
        assert!(!RoleName::TARGETS.is_delegation());
        assert!(RoleName::TARGETS.is_targets());
        assert_eq!(RoleName::SNAPSHOT.parent(), None);
    }

    #[test]
    fn delegations_follow_notary_rules() {
        for ok in ["targets/releases", "targets/a-b_c/d0", "targets/x/y/z"] {
            let role = RoleName::new(ok).unwrap();
            assert!(role.is_delegation());
            assert_eq!(role.tuf_type(), "Targets");
        }
        for bad in [
            "targets/",
            "targets//x",
            "targets/x/",
            "targets/X",
            "targets/a.b",
            "targets/../root",
            "targets/é",
            "target/x",
            "Root",
            "",
            "mirror",
        ] {
            assert!(RoleName::new(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("targets/{}", "a".repeat(247));
        assert_eq!(long.len(), 255);
        assert!(RoleName::new(&long).is_ok());
        assert!(RoleName::new(&format!("{long}a")).is_err());
    }

    #[test]
    fn parent_is_path_dir() {
        let role = RoleName::new("targets/a/b").unwrap();
        assert_eq!(role.parent().unwrap().as_str(), "targets/a");
        assert_eq!(RoleName::RELEASES.parent(), Some(RoleName::TARGETS));
    }

    #[test]
    fn error_names_the_rule() {
        let err = RoleName::new("targets/Bad").unwrap_err().to_string();
        assert!(err.contains("\"targets/Bad\""), "{err}");
        assert!(err.contains("a-z"), "{err}");
    }
}
