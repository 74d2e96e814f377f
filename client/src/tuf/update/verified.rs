//! [`VerifiedRepo`], the update's result, and the target lookups of `notary` and `docker pull`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::tuf::error::UpdateWarning;
use crate::tuf::{
    FileMeta, Gun, RoleName, Root, Sha256Digest, Signed, Snapshot, Targets, Timestamp,
};

use super::prefixes::Prefixes;

/// A delegated targets role that verified, with the paths it may sign for.
#[derive(Clone, Debug)]
pub struct DelegatedRole {
    /// Its name, e.g. `targets/releases`.
    pub name: RoleName,
    /// Its paths restricted to its parent's (Notary's `RestrictDelegationPathPrefixes`).
    pub paths: Vec<String>,
    /// The verified file.
    pub file: Signed<Targets>,
}

/// One target as `notary list` shows it: which role signed it, and its length and digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetEntry {
    /// The target name (for docker, the tag).
    pub name: String,
    /// The target's length in bytes (for docker, the manifest's size).
    pub length: u64,
    /// The target's SHA-256 (docker's manifest digest), when recorded.
    pub sha256: Option<Sha256Digest>,
    /// The role whose entry this is.
    pub role: RoleName,
}

/// A repository's metadata, every file verified.
#[derive(Clone, Debug)]
pub struct VerifiedRepo {
    gun: Gun,
    root: Signed<Root>,
    timestamp: Signed<Timestamp>,
    snapshot: Signed<Snapshot>,
    targets: Signed<Targets>,
    delegations: Vec<DelegatedRole>,
    /// Where each delegated role is in `delegations`.
    index: HashMap<RoleName, usize>,
    /// Each delegated role's paths as a [`Prefixes`], as `delegations` is ordered.
    allowed: Vec<Prefixes>,
    pub(super) warnings: Vec<UpdateWarning>,
}

impl VerifiedRepo {
    pub(super) fn new(
        gun: Gun,
        root: Signed<Root>,
        timestamp: Signed<Timestamp>,
        snapshot: Signed<Snapshot>,
        targets: Signed<Targets>,
        delegations: Vec<DelegatedRole>,
    ) -> Self {
        let index = delegations
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.clone(), i))
            .collect();
        let allowed = delegations
            .iter()
            .map(|d| Prefixes::new(&d.paths))
            .collect();
        Self {
            gun,
            root,
            timestamp,
            snapshot,
            targets,
            delegations,
            index,
            allowed,
            warnings: Vec::new(),
        }
    }

    /// The repository.
    pub fn gun(&self) -> &Gun {
        &self.gun
    }

    /// The trusted root.
    pub fn root(&self) -> &Signed<Root> {
        &self.root
    }

    /// The verified timestamp.
    pub fn timestamp(&self) -> &Signed<Timestamp> {
        &self.timestamp
    }

    /// The verified snapshot.
    pub fn snapshot(&self) -> &Signed<Snapshot> {
        &self.snapshot
    }

    /// The verified top-level targets role.
    pub fn targets_role(&self) -> &Signed<Targets> {
        &self.targets
    }

    /// The delegated roles that verified, in download (pre-)order.
    pub fn delegations(&self) -> &[DelegatedRole] {
        &self.delegations
    }

    /// One verified delegated role.
    pub fn delegation(&self, name: &RoleName) -> Option<&DelegatedRole> {
        self.index.get(name).map(|&i| &self.delegations[i])
    }

    /// What the user should hear about: near-expiry certificates, skipped roles, ignored targets.
    pub fn warnings(&self) -> &[UpdateWarning] {
        &self.warnings
    }

    /// The targets `notary list` shows (notary: client/reader.go `ListTargets`).
    ///
    /// `roles` are in priority order (default: `targets`, i.e. the whole tree); each role's
    /// subtree is walked breadth-first, skipping the other listed roles, and a target name is
    /// reported once, by the first role that has it within its paths. Sorted by name.
    pub fn targets(&self, roles: Option<&[RoleName]>) -> Vec<TargetEntry> {
        let roles = roles.unwrap_or(std::slice::from_ref(&RoleName::TARGETS));
        let mut found: BTreeMap<String, TargetEntry> = BTreeMap::new();
        for role in roles {
            let skip: Vec<&RoleName> = roles.iter().filter(|r| *r != role).collect();
            self.walk(None, role, &skip, |view| {
                for (name, meta) in &view.file.targets {
                    if !found.contains_key(name) && view.allows(name) {
                        found.insert(name.clone(), entry(name, meta, view.name));
                    }
                }
                false
            });
        }
        found.into_values().collect()
    }

    /// Every target entry of every role, within the role's paths, in walk order.
    pub fn all_targets(&self) -> Vec<TargetEntry> {
        let mut all = Vec::new();
        self.walk(None, &RoleName::TARGETS, &[], |view| {
            for (name, meta) in &view.file.targets {
                if view.allows(name) {
                    all.push(entry(name, meta, view.name));
                }
            }
            false
        });
        all
    }

    /// Looks a target up (notary: client/reader.go `GetTargetByName`).
    ///
    /// `roles` in priority order (default `targets`); the first role, breadth-first in each
    /// subtree, whose paths allow `name` and which lists it, wins.
    pub fn target(&self, name: &str, roles: Option<&[RoleName]>) -> Option<TargetEntry> {
        let roles = roles.unwrap_or(std::slice::from_ref(&RoleName::TARGETS));
        for role in roles {
            let skip: Vec<&RoleName> = roles.iter().filter(|r| *r != role).collect();
            let mut hit = None;
            self.walk(Some(name), role, &skip, |view| {
                hit = view
                    .file
                    .targets
                    .get(name)
                    .map(|meta| entry(name, meta, view.name));
                hit.is_some()
            });
            if hit.is_some() {
                return hit;
            }
        }
        None
    }

    /// The tag lookup of `docker pull` with content trust (cli: cli/command/image/trust.go):
    /// `targets/releases` first, then `targets`, accepted only from one of those two roles.
    pub fn docker_target(&self, tag: &str) -> Option<TargetEntry> {
        let roles = [RoleName::RELEASES, RoleName::TARGETS];
        self.target(tag, Some(&roles))
            .filter(|t| t.role == RoleName::RELEASES || t.role == RoleName::TARGETS)
    }

    /// Notary's `WalkTargets`: breadth-first from `targets`, visiting the roles in `subtree`
    /// whose paths allow `target_path` (all when `None`), except `skip`; `visit` returns true
    /// to stop. Each role is visited once: Notary's walk queues a role once per entry naming
    /// it, which over a few levels of repeated entries is exponential.
    fn walk<'a>(
        &'a self,
        target_path: Option<&str>,
        subtree: &RoleName,
        skip: &[&RoleName],
        mut visit: impl FnMut(&View<'a>) -> bool,
    ) {
        let mut visited: HashSet<&RoleName> = HashSet::new();
        let mut queue = VecDeque::from([View {
            name: &RoleName::TARGETS,
            allowed: None,
            file: &self.targets.signed,
        }]);
        let children = |view: &View<'a>| {
            view.file
                .delegations
                .unique()
                .into_iter()
                .filter_map(|d| {
                    let i = *self.index.get(&d.name)?;
                    Some(View {
                        name: &self.delegations[i].name,
                        allowed: Some(&self.allowed[i]),
                        file: &self.delegations[i].file.signed,
                    })
                })
                .collect::<Vec<_>>()
        };
        while let Some(view) = queue.pop_front() {
            if !visited.insert(view.name) {
                continue;
            }
            // An ancestor of the subtree: only the way down.
            if subtree.as_str().starts_with(&format!("{}/", view.name)) {
                queue.extend(children(&view));
                continue;
            }
            let in_subtree =
                view.name == subtree || view.name.as_str().starts_with(&format!("{subtree}/"));
            let path_ok = target_path.is_none_or(|p| view.allows(p));
            if in_subtree && path_ok && !skip.contains(&view.name) {
                if visit(&view) {
                    return;
                }
                queue.extend(children(&view));
            }
        }
    }
}

/// A targets role as a walk sees it: its name, effective paths and body.
struct View<'a> {
    name: &'a RoleName,
    /// Its paths; `None` for `targets`, which may sign any target.
    allowed: Option<&'a Prefixes>,
    file: &'a Targets,
}

impl View<'_> {
    fn allows(&self, target: &str) -> bool {
        self.allowed.is_none_or(|a| a.allows(target))
    }
}

fn entry(name: &str, meta: &FileMeta, role: &RoleName) -> TargetEntry {
    TargetEntry {
        name: name.to_owned(),
        length: meta.length,
        sha256: meta.hashes.sha256,
        role: role.clone(),
    }
}
