//! A repository as docker makes one, signed here with [`SoftKey`]s, whose every body, version and
//! signature a test may change before [`Fixture::build`] signs it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use time::OffsetDateTime;
use tufa_client::tuf::{
    Delegation, Expires, FileMeta, Gun, PublicKey, RoleName, Root, RootRole, RootRoles,
    Sha256Digest, Snapshot, Targets, Timestamp,
};

use crate::keys::{sign, SoftKey};

/// Each role's file bytes, as a server serves them.
pub type Files = BTreeMap<RoleName, Vec<u8>>;

/// The repository of [`Fixture::new`].
pub const GUN: &str = "127.0.0.1:5000/dct/app";

/// One "now" per test binary, so certificates made from the same seed are identical.
pub fn now() -> OffsetDateTime {
    static NOW: OnceLock<OffsetDateTime> = OnceLock::new();
    *NOW.get_or_init(|| {
        OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .expect("0 ns is a valid nanosecond")
    })
}

/// [`now`] plus `days` (negative: in the past), as an `expires`.
pub fn in_days(days: i64) -> Expires {
    Expires::new(now() + time::Duration::days(days)).expect("a usable expiry")
}

/// A target's file meta: its length and SHA-256.
pub fn target(content: &[u8]) -> FileMeta {
    FileMeta::of_target(content.len() as u64, Sha256Digest::of(content))
}

/// A repository like docker makes: root (x509), targets with the `targets/releases`
/// delegation (`paths [""]`), and the server's snapshot and timestamp keys. Targets v1 holds
/// `admin`, releases v1 holds `v1`; snapshot and timestamp are v1.
///
/// Bodies, keys and versions are public, so a test changes them before [`Fixture::build`].
#[derive(Clone)]
pub struct Fixture {
    /// The repository.
    pub gun: Gun,
    /// The key [`Fixture::build`] signs `root` with (unless `signed_root` is set).
    pub root_key: SoftKey,
    /// The targets keys; the root makes all of them needed (threshold = their number).
    pub targets_keys: Vec<SoftKey>,
    /// The snapshot key (the server's, in docker's repositories).
    pub snapshot_key: SoftKey,
    /// The timestamp key (the server's).
    pub timestamp_key: SoftKey,
    /// The key of `targets/releases`.
    pub releases_key: SoftKey,
    /// The root body.
    pub root: Root,
    /// `root.json` signed elsewhere (by a key in an agent): served as it is in place of `root`
    /// signed with `root_key`.
    pub signed_root: Option<Vec<u8>>,
    /// The top-level targets body.
    pub targets: Targets,
    /// The `targets/releases` body.
    pub releases: Targets,
    /// More delegated roles, each body signed with its key (a test adds the delegations to
    /// their parents itself).
    pub more_roles: Vec<(RoleName, Targets, SoftKey)>,
    /// The snapshot's version.
    pub snapshot_version: u64,
    /// The timestamp's version.
    pub timestamp_version: u64,
    /// When the timestamp expires.
    pub timestamp_expires: Expires,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    /// The repository [`GUN`], one targets key.
    pub fn new() -> Self {
        Self::for_gun(GUN)
    }

    /// The repository `gun`, one targets key; every key is made from a fixed seed (1 to 5).
    pub fn for_gun(gun: &str) -> Self {
        let releases_key = SoftKey::ecdsa(5);
        let mut targets = Targets::new(1, in_days(3 * 365));
        targets
            .delegations
            .keys
            .insert(releases_key.id(), releases_key.public().clone());
        targets.delegations.roles.push(Delegation {
            name: RoleName::RELEASES,
            keyids: vec![releases_key.id()],
            threshold: 1,
            paths: vec![String::new()],
        });
        targets.targets.insert("admin".into(), target(b"admin"));
        let mut releases = Targets::new(1, in_days(3 * 365));
        releases.targets.insert("v1".into(), target(b"v1"));
        let root_key = SoftKey::root(1, gun);
        let targets_keys = vec![SoftKey::ecdsa(2)];
        let (snapshot_key, timestamp_key) = (SoftKey::ecdsa(3), SoftKey::ecdsa(4));
        Self {
            gun: gun.parse().expect("a valid GUN"),
            root: root_of(
                1,
                &[root_key.public()],
                &targets_keys,
                &snapshot_key,
                &timestamp_key,
            ),
            root_key,
            targets_keys,
            snapshot_key,
            timestamp_key,
            releases_key,
            signed_root: None,
            targets,
            releases,
            more_roles: Vec::new(),
            snapshot_version: 1,
            timestamp_version: 1,
            timestamp_expires: in_days(14),
        }
    }

    /// This fixture with `key` as its root key (root v1 listing it alone).
    pub fn with_root_key(mut self, key: SoftKey) -> Self {
        self.rotate_root(1, key);
        self
    }

    /// Replaces the root key with `to` in a root of `version` listing it alone, and returns the
    /// old key (which signs the new root too in [`Fixture::build_rotated`]).
    pub fn rotate_root(&mut self, version: u64, to: SoftKey) -> SoftKey {
        self.root = self.root_body(version, &[to.public()]);
        std::mem::replace(&mut self.root_key, to)
    }

    /// A root of `version` with `root_keys` (threshold 1) and this fixture's other keys.
    pub fn root_body(&self, version: u64, root_keys: &[&PublicKey]) -> Root {
        root_of(
            version,
            root_keys,
            &self.targets_keys,
            &self.snapshot_key,
            &self.timestamp_key,
        )
    }

    /// Every role signed with its keys, snapshot over the files, timestamp over the snapshot.
    pub fn build(&self) -> Files {
        let root = match &self.signed_root {
            Some(bytes) => bytes.clone(),
            None => sign(self.root.clone(), &[&self.root_key]),
        };
        self.build_with_root(root)
    }

    /// As [`Fixture::build`], with root signed by `old` as well: what a root rotation publishes.
    pub fn build_rotated(&self, old: &SoftKey) -> Files {
        self.build_with_root(sign(self.root.clone(), &[old, &self.root_key]))
    }

    /// As [`Fixture::build`], with `role`'s file replaced by `file` (a lie, or a file signed
    /// otherwise), snapshot and timestamp signed over it.
    pub fn build_replacing(&self, role: RoleName, file: Vec<u8>) -> Files {
        let mut files = self.build();
        files.insert(role, file);
        self.resnapshot(&mut files, |_| {});
        files
    }

    fn build_with_root(&self, root: Vec<u8>) -> Files {
        let mut files = Files::new();
        files.insert(RoleName::ROOT, root);
        let targets_keys: Vec<&SoftKey> = self.targets_keys.iter().collect();
        files.insert(RoleName::TARGETS, sign(self.targets.clone(), &targets_keys));
        files.insert(
            RoleName::RELEASES,
            sign(self.releases.clone(), &[&self.releases_key]),
        );
        for (role, body, key) in &self.more_roles {
            files.insert(role.clone(), sign(body.clone(), &[key]));
        }
        self.resnapshot(&mut files, |_| {});
        files
    }

    /// Adds role `name` (a child of `parent`, which must be `targets`, `targets/releases` or
    /// one of [`Fixture::more_roles`]) with `body`, signed by `key`, delegated `paths` with
    /// threshold 1; `copies` entries for it in the parent (Notary uses the first).
    pub fn delegate(
        &mut self,
        parent: &RoleName,
        name: &str,
        paths: &[&str],
        copies: usize,
        key: &SoftKey,
        body: Targets,
    ) {
        let name: RoleName = name.parse().expect("a delegation name");
        let delegation = Delegation {
            name: name.clone(),
            keyids: vec![key.id()],
            threshold: 1,
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        };
        let parent = self.body_mut(parent);
        parent
            .delegations
            .keys
            .insert(key.id(), key.public().clone());
        for _ in 0..copies {
            parent.delegations.roles.push(delegation.clone());
        }
        self.more_roles.push((name, body, key.clone()));
    }

    /// The body of targets role `role`: `targets`, `targets/releases` or one of
    /// [`Fixture::more_roles`].
    pub fn body_mut(&mut self, role: &RoleName) -> &mut Targets {
        if *role == RoleName::TARGETS {
            return &mut self.targets;
        }
        if *role == RoleName::RELEASES {
            return &mut self.releases;
        }
        self.more_roles
            .iter_mut()
            .find(|(name, _, _)| name == role)
            .map(|(_, body, _)| body)
            .unwrap_or_else(|| panic!("the fixture has no role {role}"))
    }

    /// Re-signs snapshot (changed by `edit`) over the files as they are now, and the timestamp
    /// over that snapshot.
    pub fn resnapshot(&self, files: &mut Files, edit: impl FnOnce(&mut Snapshot)) {
        let mut snapshot = Snapshot {
            version: self.snapshot_version,
            expires: in_days(3 * 365),
            meta: files
                .iter()
                .filter(|(role, _)| **role != RoleName::SNAPSHOT && **role != RoleName::TIMESTAMP)
                .map(|(role, bytes)| (role.clone(), FileMeta::of_metadata(bytes)))
                .collect(),
        };
        edit(&mut snapshot);
        let snapshot = sign(snapshot, &[&self.snapshot_key]);
        let timestamp = sign(self.timestamp_body(&snapshot), &[&self.timestamp_key]);
        files.insert(RoleName::TIMESTAMP, timestamp);
        files.insert(RoleName::SNAPSHOT, snapshot);
    }

    /// The timestamp body over `snapshot` with this fixture's version and expiry.
    pub fn timestamp_body(&self, snapshot: &[u8]) -> Timestamp {
        Timestamp {
            version: self.timestamp_version,
            expires: self.timestamp_expires,
            snapshot: FileMeta::of_metadata(snapshot),
        }
    }
}

fn root_of(
    version: u64,
    root_keys: &[&PublicKey],
    targets_keys: &[SoftKey],
    snapshot_key: &SoftKey,
    timestamp_key: &SoftKey,
) -> Root {
    let mut keys = BTreeMap::new();
    let others = targets_keys.iter().chain([snapshot_key, timestamp_key]);
    for key in root_keys.iter().copied().chain(others.map(SoftKey::public)) {
        keys.insert(key.id(), key.clone());
    }
    Root {
        version,
        expires: in_days(3650),
        consistent_snapshot: false,
        keys,
        roles: RootRoles {
            root: RootRole {
                keyids: root_keys.iter().map(|k| k.id()).collect(),
                threshold: 1,
            },
            targets: RootRole {
                keyids: targets_keys.iter().map(SoftKey::id).collect(),
                threshold: targets_keys.len() as u32,
            },
            snapshot: RootRole::single(snapshot_key.id()),
            timestamp: RootRole::single(timestamp_key.id()),
        },
    }
}
