//! The walk of a trust directory and the plan for its keys: the order they are shown in, the
//! agent name each gets, and the environment variables that may hold each one's passphrase.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::file::KeyFile;
use super::KeyError;
use crate::tuf::{Gun, KeyId};

/// A `*.key` file found under the trust directory, read or not.
pub struct Found {
    /// Where it is.
    pub path: PathBuf,
    /// The file, or why it cannot be read.
    pub file: Result<KeyFile, KeyError>,
}

/// The private key directory of a trust directory: `DIR/private`, or `DIR` itself when it is
/// one (named `private`).
pub fn private_dir(trust_dir: &Path) -> Option<PathBuf> {
    let inner = trust_dir.join("private");
    if inner.is_dir() {
        return Some(inner);
    }
    (trust_dir.file_name().is_some_and(|n| n == "private") && trust_dir.is_dir())
        .then(|| trust_dir.to_owned())
}

/// Every `*.key` file under `private` (the flat layout and the old `root_keys/`, `tuf_keys/`
/// ones), without following symbolic links: root keys first, then repository keys by GUN,
/// then signers, unreadable files last.
pub fn scan(private: &Path) -> std::io::Result<Vec<Found>> {
    let mut paths = Vec::new();
    let mut dirs = vec![private.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "key") {
                paths.push(path);
            }
        }
    }
    let mut found: Vec<Found> = paths
        .into_iter()
        .map(|path| Found {
            file: KeyFile::read(&path, private),
            path,
        })
        .collect();
    found.sort_by_key(order);
    Ok(found)
}

/// Root keys first, then repository keys by GUN, then signers; unreadable files last.
fn order(f: &Found) -> (u8, String, PathBuf) {
    let Ok(file) = &f.file else {
        return (9, String::new(), f.path.clone());
    };
    let rank = match file.role.as_deref() {
        Some("root") => 0,
        Some("targets") => 1,
        Some("snapshot") => 2,
        Some("timestamp") => 3,
        Some(_) => 4,
        None => 5,
    };
    (rank, file.gun.clone().unwrap_or_default(), f.path.clone())
}

/// Whether a role is one of a repository's own (its key carries the GUN).
fn is_repository_role(role: &str) -> bool {
    matches!(role, "targets" | "snapshot" | "timestamp")
}

/// The name a key would get alone: `root`; `<gun>-<role>` for a repository key (the GUN as
/// `tufa notary init` writes it into names); the signer's name for a delegation key;
/// `key-<short id>` when the file says nothing.
pub fn base_name(file: &KeyFile, id: &KeyId) -> String {
    match (file.role.as_deref(), file.gun.as_deref()) {
        (Some("root"), _) => "root".into(),
        (Some(role), Some(gun)) if is_repository_role(role) => match gun.parse::<Gun>() {
            Ok(gun) => format!("{}-{role}", crate::repo::key_name_for(&gun)),
            Err(_) => clean(&format!("{gun}-{role}"), id),
        },
        (Some(role), None) if is_repository_role(role) => format!("{role}-{}", id.short()),
        (Some(role), _) => clean(role.strip_prefix("targets/").unwrap_or(role), id),
        (None, _) => format!("key-{}", id.short()),
    }
}

/// `text` as a key name: other characters become `_`, it starts with a letter or a digit, and
/// it fits in 64 characters (cut, with the short key ID).
fn clean(text: &str, id: &KeyId) -> String {
    let mut name: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        name = format!("key-{name}");
    }
    if name.len() > 64 {
        name = format!("{}-{}", &name[..56], id.short());
    }
    name
}

/// Names for keys about to be imported, given by their base names: a base name that no other
/// key of the plan shares and no key of the agent has is used as it is, any other gets
/// `-<short id>`.
pub fn names(keys: &[(KeyId, String)], taken: &BTreeSet<String>) -> Vec<String> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, base) in keys {
        *count.entry(base.as_str()).or_default() += 1;
    }
    keys.iter()
        .map(|(id, base)| {
            if count[base.as_str()] == 1 && !taken.contains(base) {
                base.clone()
            } else {
                format!("{base}-{}", id.short())
            }
        })
        .collect()
}

/// The variables that may hold the passphrase of a key of `role`, in the order tried: tufa's
/// own, docker's, notary's (as each tool reads them).
pub fn passphrase_vars(role: Option<&str>) -> &'static [&'static str] {
    const TUFA: &str = "TUFA_KEY_PASSPHRASE";
    const DOCKER_REPO: &str = "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE";
    match role {
        Some("root") => &[
            TUFA,
            "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE",
            "NOTARY_ROOT_PASSPHRASE",
        ],
        Some("targets") => &[TUFA, DOCKER_REPO, "NOTARY_TARGETS_PASSPHRASE"],
        Some("snapshot") => &[TUFA, DOCKER_REPO, "NOTARY_SNAPSHOT_PASSPHRASE"],
        Some("timestamp") => &[TUFA, DOCKER_REPO],
        _ => &[TUFA, DOCKER_REPO, "NOTARY_DELEGATION_PASSPHRASE"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> KeyId {
        KeyId::from_bytes([n; 32])
    }

    #[test]
    fn names_are_unique_and_keep_the_short_id_when_needed() {
        let keys = vec![
            (id(1), "root".to_owned()),
            (id(2), "root".to_owned()),
            (id(3), "jeff".to_owned()),
            (id(4), "app-targets".to_owned()),
        ];
        let taken: BTreeSet<String> = ["app-targets".to_owned()].into();
        let got = names(&keys, &taken);
        assert_eq!(
            got,
            [
                format!("root-{}", id(1).short()),
                format!("root-{}", id(2).short()),
                "jeff".to_owned(),
                format!("app-targets-{}", id(4).short()),
            ]
        );
        assert_eq!(clean("targets releases", &id(5)), "targets_releases");
        assert_eq!(clean("_x", &id(5)), "key-_x");
        let long = clean(&"a".repeat(100), &id(5));
        assert_eq!(long.len(), 64);
        assert!(long.ends_with(&id(5).short()));
    }

    #[test]
    fn passphrases_come_from_the_role_s_variables() {
        assert!(passphrase_vars(Some("root")).contains(&"NOTARY_ROOT_PASSPHRASE"));
        assert!(
            !passphrase_vars(Some("root")).contains(&"DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE")
        );
        assert!(passphrase_vars(Some("jeff")).contains(&"NOTARY_DELEGATION_PASSPHRASE"));
        assert!(passphrase_vars(None).contains(&"DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE"));
    }
}
