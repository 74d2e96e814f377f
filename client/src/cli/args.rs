//! Typed arguments: the values clap parses the command line into, and the flags several verbs
//! share.
//!
//! A bad value is refused by clap before anything runs, naming the value and the rule it breaks
//! (the types' own `FromStr` errors, or the parsers here).

use std::fmt;
use std::str::FromStr;

use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};
use tufa_proto::v1;
use tufa_proto::ParseKeyIdError;

use crate::repo::SnapshotChoice;
use crate::tuf::{InvalidRoleName, KeyId, RoleName, Sha256Digest, Sha512Digest};

/// A key of the agent: its name, key ID, or a key ID prefix of 7+ digits (the agent resolves it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRef(String);

impl KeyRef {
    /// The reference as given, as the agent takes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KeyRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(
                "no key given: name a key by its name or key ID (see `tufa key list`)".into(),
            );
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `--sha256`: 64 hex digits.
pub fn sha256_hex(s: &str) -> Result<Sha256Digest, String> {
    (s.len() == 64)
        .then(|| s.parse().ok())
        .flatten()
        .ok_or_else(|| format!("'{s}' is not a SHA-256 digest: give 64 hex digits"))
}

/// `--sha512`: 128 hex digits.
pub fn sha512_hex(s: &str) -> Result<Sha512Digest, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not a SHA-512 digest: give 128 hex digits"))
}

/// A delegation's key ID (`delegation remove`): 64 hex digits.
pub fn delegation_key_id(s: &str) -> Result<KeyId, String> {
    s.parse().map_err(|e: ParseKeyIdError| {
        format!("{e}: give the key IDs `tufa notary delegation list GUN` shows")
    })
}

/// A role that holds targets: `targets` or a delegation (`--roles` of the staging verbs).
pub fn targets_role(s: &str) -> Result<RoleName, String> {
    let role: RoleName = s.parse().map_err(|e: InvalidRoleName| e.to_string())?;
    if role != RoleName::TARGETS && !role.is_delegation() {
        return Err(format!(
            "targets cannot be added to {role}: use targets or a delegation (targets/<name>)"
        ));
    }
    Ok(role)
}

/// The targets and snapshot keys a new root names: `notary init`'s words (`root rotate` words
/// them as changes with `mut_arg`).
#[derive(Debug, Args)]
pub struct KeyChoice {
    /// Agent key for targets [default: a new key named after the repository].
    #[arg(long)]
    pub targets_key: Option<KeyRef>,
    /// Agent key for snapshot [default: a new key named after the repository].
    #[arg(long, conflicts_with = "server_managed_snapshot")]
    pub snapshot_key: Option<KeyRef>,
    /// Let the server hold the snapshot key and make snapshots, as docker does.
    #[arg(long)]
    pub server_managed_snapshot: bool,
}

impl KeyChoice {
    /// Who signs snapshots of a new repository.
    pub fn snapshot(&self) -> SnapshotChoice {
        match (self.server_managed_snapshot, &self.snapshot_key) {
            (true, _) => SnapshotChoice::Server,
            (false, Some(k)) => SnapshotChoice::Key(k.to_string()),
            (false, None) => SnapshotChoice::NewKey,
        }
    }
}

/// A protocol enum as a command-line value; its word is also how output names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice<T>(pub T);

impl<T: Copy> Choice<T>
where
    Self: ValueEnum,
{
    /// The word for `value` (`unknown` for a value the command line does not offer).
    pub fn word(value: T) -> String {
        Self(value)
            .to_possible_value()
            .map_or_else(|| "unknown".to_owned(), |v| v.get_name().to_owned())
    }
}

/// `ValueEnum` for `Choice<$enum>`: each offered variant with its word and help.
macro_rules! choices {
    ($enum:path { $($variant:ident => $word:literal, $help:literal;)* }) => {
        impl ValueEnum for Choice<$enum> {
            fn value_variants<'a>() -> &'a [Self] {
                &[$(Choice(<$enum>::$variant)),*]
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                match self.0 {
                    $(<$enum>::$variant => Some(PossibleValue::new($word).help($help)),)*
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }
    };
}

choices!(v1::Backend {
    Pkcs11 => "pkcs11", "A PKCS#11 token";
    Yubikey => "yubikey", "A YubiKey";
});

choices!(v1::PinPolicy {
    Never => "never", "Never";
    Once => "once", "Once per agent session with the card";
    Always => "always", "Before every signature";
});

choices!(v1::TouchPolicy {
    Never => "never", "Never";
    Always => "always", "Before every signature";
    Cached => "cached", "Once, then cached for 15 seconds";
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_name_what_they_parse() {
        let b = Choice::<v1::Backend>::from_str("yubikey", false).unwrap();
        assert_eq!(b.0, v1::Backend::Yubikey);
        assert_eq!(Choice::word(v1::Backend::Pkcs11), "pkcs11");
        assert_eq!(Choice::word(v1::Backend::Unspecified), "unknown");
        assert_eq!(Choice::word(v1::TouchPolicy::Cached), "cached");
    }

    #[test]
    fn refusals_name_the_value_and_the_rule() {
        let e = sha256_hex("abc").unwrap_err();
        assert!(e.contains("'abc'") && e.contains("64 hex digits"), "{e}");
        let e = targets_role("snapshot").unwrap_err();
        assert!(e.contains("snapshot") && e.contains("delegation"), "{e}");
        let e = targets_role("targets/Bad").unwrap_err();
        assert!(e.contains("targets/Bad") && e.contains("lowercase"), "{e}");
        assert!("".parse::<KeyRef>().is_err());
    }
}
