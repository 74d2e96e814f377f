//! `docker trust inspect`: the same JSON and `--pretty` tables, from a verified repository.
//!
//! The rules are docker's: a tag is shown only if it was "released" (signed into `targets` or
//! `targets/releases`); its signers are the other roles that hold the same name and digest, or
//! "Repo Admin" when none does. Signers list the delegations but `targets/releases`, with
//! canonical key IDs; the administrative keys are root's and targets' key IDs as root lists them.

use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::tuf::{RoleName, VerifiedRepo};

/// What docker calls the base `targets` role as a signer.
pub const REPO_ADMIN: &str = "Repo Admin";

/// One repository as `docker trust inspect` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrustRepo {
    /// The reference as the user gave it (with its tag, if any).
    pub name: String,
    /// Released tags, naturally sorted.
    pub signed_tags: Vec<SignedTag>,
    /// Signers (delegations but releases), by name descending as docker sorts them.
    pub signers: Vec<TrustSigner>,
    /// `Root` and `Repository` keys.
    pub administrative_keys: Vec<TrustSigner>,
}

/// A released tag and who signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SignedTag {
    /// The tag.
    pub signed_tag: String,
    /// Hex SHA-256 of the manifest.
    pub digest: String,
    /// Signer names, or "Repo Admin".
    pub signers: Vec<String>,
}

/// A named list of keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrustSigner {
    /// The signer's name.
    pub name: String,
    /// Its keys.
    pub keys: Vec<TrustKey>,
}

/// One key ID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrustKey {
    /// The key ID.
    #[serde(rename = "ID")]
    pub id: String,
}

/// Whether docker counts a role's signature as a release.
fn is_released(role: &RoleName) -> bool {
    *role == RoleName::TARGETS || *role == RoleName::RELEASES
}

/// A delegation role's name as a signer: `targets/alice` is `alice`.
fn signer_name(role: &RoleName) -> String {
    match role.as_str().strip_prefix("targets/") {
        Some(name) => name.to_owned(),
        None => REPO_ADMIN.to_owned(),
    }
}

/// What `docker trust inspect NAME` shows for `repo`; `tag` limits it to one tag.
pub fn inspect(repo: &VerifiedRepo, name: &str, tag: Option<&str>) -> TrustRepo {
    let all: Vec<_> = repo
        .all_targets()
        .into_iter()
        .filter(|t| tag.is_none_or(|tag| t.name == tag))
        .collect();
    let digest_of = |t: &crate::tuf::TargetEntry| {
        t.sha256
            .map(|d| hex::encode(d.as_bytes()))
            .unwrap_or_default()
    };
    // First the released (name, digest) pairs, then every other role holding the same pair;
    // rows are found by pair, so that thousands of tags stay linear.
    let mut rows: Vec<SignedTag> = Vec::new();
    let mut row_of: HashMap<(String, String), usize> = HashMap::new();
    for t in all.iter().filter(|t| is_released(&t.role)) {
        let digest = digest_of(t);
        if let Entry::Vacant(slot) = row_of.entry((t.name.clone(), digest.clone())) {
            slot.insert(rows.len());
            rows.push(SignedTag {
                signed_tag: t.name.clone(),
                digest,
                signers: Vec::new(),
            });
        }
    }
    for t in all.iter().filter(|t| !is_released(&t.role)) {
        if let Some(&i) = row_of.get(&(t.name.clone(), digest_of(t))) {
            rows[i].signers.push(signer_name(&t.role));
        }
    }
    for row in &mut rows {
        if row.signers.is_empty() {
            row.signers.push(REPO_ADMIN.to_owned());
        }
    }
    rows.sort_by(|a, b| natural_cmp(&a.signed_tag, &b.signed_tag));

    let mut signers: Vec<TrustSigner> = delegation_keys(repo)
        .into_iter()
        .map(|(name, ids)| TrustSigner {
            name,
            keys: ids.into_iter().map(|id| TrustKey { id }).collect(),
        })
        .collect();
    signers.sort_by(|a, b| b.name.cmp(&a.name));

    let root = &repo.root().signed;
    let ids = |keyids: &[crate::tuf::KeyId]| -> Vec<TrustKey> {
        keyids
            .iter()
            .map(|id| TrustKey { id: id.to_string() })
            .collect()
    };
    let administrative_keys = vec![
        TrustSigner {
            name: "Root".into(),
            keys: ids(&root.roles.root.keyids),
        },
        TrustSigner {
            name: "Repository".into(),
            keys: ids(&root.roles.targets.keyids),
        },
    ];
    TrustRepo {
        name: name.to_owned(),
        signed_tags: rows,
        signers,
        administrative_keys,
    }
}

/// Every delegation but `targets/releases`, as (signer name, canonical key IDs).
fn delegation_keys(repo: &VerifiedRepo) -> Vec<(String, Vec<String>)> {
    let parents = std::iter::once(&repo.targets_role().signed)
        .chain(repo.delegations().iter().map(|d| &d.file.signed));
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut seen = HashSet::new();
    for parent in parents {
        for d in &parent.delegations.roles {
            if d.name == RoleName::RELEASES || !seen.insert(signer_name(&d.name)) {
                continue;
            }
            let ids = d
                .keyids
                .iter()
                .map(|id| {
                    parent
                        .delegations
                        .keys
                        .get(id)
                        .and_then(|k| k.canonical_id().ok())
                        .unwrap_or(*id)
                        .to_string()
                })
                .collect();
            out.push((signer_name(&d.name), ids));
        }
    }
    out
}

/// docker's JSON: an array of repositories, indented by four spaces.
pub fn to_json(repos: &[TrustRepo]) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    // Serializing these plain structs cannot fail.
    let _ = repos.serialize(&mut ser);
    let mut text = String::from_utf8(out).unwrap_or_default();
    text.push('\n');
    text
}

/// docker's `--pretty` text for one repository.
pub fn pretty(repo: &TrustRepo) -> String {
    let mut out = String::new();
    if repo.signed_tags.is_empty() {
        out.push_str(&format!("\nNo signatures for {}\n\n", repo.name));
    } else {
        out.push_str(&format!("\nSignatures for {}\n\n", repo.name));
        let mut rows = vec![vec![
            "SIGNED TAG".to_owned(),
            "DIGEST".to_owned(),
            "SIGNERS".to_owned(),
        ]];
        for t in &repo.signed_tags {
            let signers = if t.signers == [REPO_ADMIN] {
                format!("({REPO_ADMIN})")
            } else {
                t.signers.join(", ")
            };
            rows.push(vec![t.signed_tag.clone(), t.digest.clone(), signers]);
        }
        out.push_str(&docker_table(&rows));
    }
    if !repo.signers.is_empty() {
        out.push_str(&format!(
            "\nList of signers and their keys for {}\n\n",
            repo.name
        ));
        let mut signers = repo.signers.clone();
        signers.sort_by(|a, b| natural_cmp(&a.name, &b.name));
        let mut rows = vec![vec!["SIGNER".to_owned(), "KEYS".to_owned()]];
        for s in &signers {
            let keys: Vec<&str> = s.keys.iter().map(|k| &k.id[..k.id.len().min(12)]).collect();
            rows.push(vec![s.name.clone(), keys.join(", ")]);
        }
        out.push_str(&docker_table(&rows));
    }
    out.push_str(&format!("\nAdministrative keys for {}\n\n", repo.name));
    // docker sorts the roles by name descending ("targets" before "root").
    for (label, signer) in [("Repository Key", "Repository"), ("Root Key", "Root")] {
        if let Some(s) = repo.administrative_keys.iter().find(|s| s.name == signer) {
            let mut ids: Vec<&str> = s.keys.iter().map(|k| k.id.as_str()).collect();
            ids.sort();
            out.push_str(&format!("  {label}:\t{}\n", ids.join(", ")));
        }
    }
    out
}

/// docker's formatter tables: `tabwriter` with minimum width 10 and padding 3.
fn docker_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            widths[i] = widths[i].max((cell.chars().count() + 3).max(10));
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < row.len() {
                out.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

/// Natural order as docker's `sortorder.NaturalLess`: digit runs compare as numbers.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (&a[..da], &b[..db]);
                // Compare without leading zeros: longer is larger, then lexically.
                let ta: &[u8] = trim_zeros(na);
                let tb: &[u8] = trim_zeros(nb);
                let ord = ta.len().cmp(&tb.len()).then(ta.cmp(tb)).then(da.cmp(&db));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&c| c != b'0').unwrap_or(s.len());
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut tags = vec!["v10", "v2", "admin", "v1", "1.10", "1.9", "latest"];
        tags.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(tags, ["1.9", "1.10", "admin", "latest", "v1", "v2", "v10"]);
    }

    #[test]
    fn docker_tables_pad_to_ten_and_three() {
        let rows = vec![
            vec!["SIGNER".to_owned(), "KEYS".to_owned()],
            vec!["alice".to_owned(), "ca92f1c7d921".to_owned()],
        ];
        assert_eq!(
            docker_table(&rows),
            "SIGNER    KEYS\nalice     ca92f1c7d921\n"
        );
    }
}
