//! The client update: fetch a repository's metadata, verify it as Notary's Go client does
//! (notary: client/tufclient.go, tuf/builder.go), and commit it to the [`TrustCache`].
//!
//! Order, as Notary downloads: root (cache, else the server under `trust_pinning`; then the
//! server's root.json, walking `<v>.root.json` through every version in between), timestamp
//! (always from the server), snapshot by the hash the timestamp records, targets by the hash the
//! snapshot records, then delegations pre-order in each parent's `delegations.roles` order.
//! Nothing is written unless every check passed.

use std::collections::{BTreeMap, HashSet, VecDeque};

use time::OffsetDateTime;
use tufa_proto::KeyId;

use crate::tuf::cache::{CacheError, CacheView, TrustCache};
use crate::tuf::error::{TufError, UpdateError, UpdateWarning};
use crate::tuf::root_validation::{validate_root, TrustPinning};
use crate::tuf::{
    Delegation, Envelope, Expires, FileMeta, Gun, PublicKey, RemoteStore, RoleKeys, RoleName, Root,
    Sha256Digest, Signed, Snapshot, Targets, Timestamp,
};

/// What [`update`] checks against and how much it reads.
#[derive(Clone, Debug)]
pub struct UpdateOptions {
    /// The time expiry is checked at (normally now).
    pub now: OffsetDateTime,
    /// How a repository's first root is trusted.
    pub pinning: TrustPinning,
    /// The most bytes read for a root.json whose length nothing records.
    pub max_root_size: u64,
    /// The most bytes read for timestamp.json.
    pub max_timestamp_size: u64,
}

impl UpdateOptions {
    /// Notary's cap for root.json (`notary.MaxDownloadSize`): 100 MiB.
    pub const MAX_ROOT_SIZE: u64 = 100 << 20;
    /// Notary's cap for timestamp.json (`notary.MaxTimestampSize`): 1 MiB.
    pub const MAX_TIMESTAMP_SIZE: u64 = 1 << 20;

    /// Notary's defaults (TOFU, Notary's size caps), checking expiry at `now`.
    pub fn at(now: OffsetDateTime) -> Self {
        Self {
            now,
            pinning: TrustPinning::default(),
            max_root_size: Self::MAX_ROOT_SIZE,
            max_timestamp_size: Self::MAX_TIMESTAMP_SIZE,
        }
    }
}

impl Default for UpdateOptions {
    fn default() -> Self {
        Self::at(OffsetDateTime::now_utc())
    }
}

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
    warnings: Vec<UpdateWarning>,
}

/// Fetches, verifies and caches the trust data of `gun` from `store`.
///
/// The GUN's cache is locked throughout ([`TrustCache::lock`]), so other tufa processes neither
/// change it under the verification nor see it half-written. If a program that takes no lock
/// (the docker or notary CLI) wrote it meanwhile, the update starts over from the newer cache;
/// after a few such tries it leaves the cache to that program and warns
/// ([`UpdateWarning::NotCached`]). When refused, nothing was written to `cache`. Warnings
/// (near-expiry root certificates, skipped delegations, ignored targets) are in
/// [`VerifiedRepo::warnings`].
pub async fn update<S: RemoteStore>(
    store: &S,
    cache: &TrustCache,
    gun: &Gun,
    options: &UpdateOptions,
) -> Result<VerifiedRepo, UpdateError> {
    const ATTEMPTS: usize = 3;
    let mut attempt = 1;
    loop {
        let lock = cache.lock(gun).await?;
        let view = lock.read().await?;
        let (mut repo, staged) = verify(store, cache, &view, gun, options).await?;
        match lock.commit(&view, &staged) {
            Err(CacheError::Changed { .. }) if attempt < ATTEMPTS => {
                tracing::info!(gun = %gun, attempt, "the cache changed while read; reading again");
                attempt += 1;
            }
            // What was verified stands; only the cache stays the other program's.
            Err(e @ CacheError::Changed { .. }) => {
                repo.warnings.push(UpdateWarning::NotCached {
                    reason: e.to_string(),
                });
                return Ok(repo);
            }
            result => return result.map(|()| repo).map_err(UpdateError::from),
        }
    }
}

/// As [`update`], but the cache is written on a blocking thread while the caller goes on:
/// [`PendingCommit::finish`] waits for it, and the GUN stays locked until then. Dropped
/// unfinished, it still completes unless the process exits first, which leaves the cache as it
/// was (as a failed update does). A cache some other program changed meanwhile is not written
/// ([`CacheError::Changed`] from `finish`).
pub async fn update_deferred<S: RemoteStore>(
    store: &S,
    cache: &TrustCache,
    gun: &Gun,
    options: &UpdateOptions,
) -> Result<(VerifiedRepo, PendingCommit), UpdateError> {
    let lock = cache.lock(gun).await?;
    let view = lock.read().await?;
    let (repo, staged) = verify(store, cache, &view, gun, options).await?;
    let task = tokio::task::spawn_blocking(move || lock.commit(&view, &staged));
    Ok((repo, PendingCommit(task)))
}

/// A cache write started by [`update_deferred`].
#[derive(Debug)]
pub struct PendingCommit(tokio::task::JoinHandle<Result<(), crate::tuf::CacheError>>);

impl PendingCommit {
    /// Waits until the verified files are in the cache.
    pub async fn finish(self) -> Result<(), crate::tuf::CacheError> {
        match self.0.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => unreachable!("a blocking task is never cancelled once it runs"),
        }
    }
}

/// Fetches and verifies; returns the files to cache, in commit order.
async fn verify<S: RemoteStore>(
    store: &S,
    cache: &TrustCache,
    view: &CacheView,
    gun: &Gun,
    options: &UpdateOptions,
) -> Result<(VerifiedRepo, Vec<(RoleName, Vec<u8>)>), UpdateError> {
    let mut session = Session {
        store,
        cache,
        view,
        gun,
        options,
        staged: Vec::new(),
        warnings: Vec::new(),
    };
    let repo = session.run().await?;
    Ok((
        VerifiedRepo {
            warnings: session.warnings,
            ..repo
        },
        session.staged,
    ))
}

/// One update in progress: what was verified so far and is to be cached.
struct Session<'a, S> {
    store: &'a S,
    /// Where the cached files live (for messages).
    cache: &'a TrustCache,
    /// The cached files, read once at the start: what this update trusts already.
    view: &'a CacheView,
    gun: &'a Gun,
    options: &'a UpdateOptions,
    /// Verified files that differ from the cache, in commit order.
    staged: Vec<(RoleName, Vec<u8>)>,
    warnings: Vec<UpdateWarning>,
}

impl<'a, S: RemoteStore> Session<'a, S> {
    async fn run(&mut self) -> Result<VerifiedRepo, UpdateError> {
        let (root, root_bytes, root_changed) = self.root().await?;
        self.check_expiry(
            &RoleName::ROOT,
            &root.signed.expires,
            "the repository owner must re-sign root.json with the root key",
        )?;

        let (timestamp, timestamp_bytes) = self.timestamp(&root.signed).await?;

        let snapshot_bytes = self
            .fetch_by_meta(
                &RoleName::SNAPSHOT,
                &timestamp.signed.snapshot,
                &RoleName::TIMESTAMP,
            )
            .await?;
        let snapshot: Signed<Snapshot> =
            self.verify_base(&root.signed, &RoleName::SNAPSHOT, &snapshot_bytes)?;
        self.check_version(
            &RoleName::SNAPSHOT,
            snapshot.signed.version,
            &snapshot_bytes,
        )?;
        self.check_expiry(
            &RoleName::SNAPSHOT,
            &snapshot.signed.expires,
            "the holder of the snapshot key (often notary-server) must re-sign it: publish again",
        )?;
        // Mix-and-match: the root in use must be the one this snapshot records.
        snapshot.signed.check(&RoleName::ROOT, &root_bytes)?;

        let targets_meta = snapshot
            .signed
            .meta
            .get(&RoleName::TARGETS)
            .ok_or_else(|| TufError::MetaMismatch {
                role: RoleName::TARGETS,
                recorded_in: RoleName::SNAPSHOT,
                problem: "snapshot.json has no entry for it".into(),
            })?;
        let targets_bytes = self
            .fetch_by_meta(&RoleName::TARGETS, targets_meta, &RoleName::SNAPSHOT)
            .await?;
        let targets: Signed<Targets> =
            self.verify_base(&root.signed, &RoleName::TARGETS, &targets_bytes)?;
        self.check_version(&RoleName::TARGETS, targets.signed.version, &targets_bytes)?;
        self.check_expiry(
            &RoleName::TARGETS,
            &targets.signed.expires,
            "the repository owner must re-sign targets: publish again (e.g. `notary publish`)",
        )?;

        let delegations = self.delegations(&snapshot.signed, &targets.signed).await?;

        // Commit order: delegations were staged as they verified; the base roles follow, root last.
        self.stage(&RoleName::TARGETS, targets_bytes)?;
        self.stage(&RoleName::SNAPSHOT, snapshot_bytes)?;
        self.stage(&RoleName::TIMESTAMP, timestamp_bytes)?;
        if root_changed {
            self.staged.push((RoleName::ROOT, root_bytes));
        }
        Ok(VerifiedRepo {
            gun: self.gun.clone(),
            root,
            timestamp,
            snapshot,
            targets,
            delegations,
            warnings: Vec::new(),
        })
    }

    /// The root to trust, its bytes, and whether they differ from the cached root.
    async fn root(&mut self) -> Result<(Signed<Root>, Vec<u8>, bool), UpdateError> {
        let gun = self.gun;
        let now = self.options.now;
        let cached = self.cached(&RoleName::ROOT).map(<[u8]>::to_vec);
        let remote = self
            .fetch(
                &RoleName::ROOT,
                self.options.max_root_size,
                "the root.json size limit",
            )
            .await?
            .ok_or_else(|| UpdateError::RepositoryNotFound { gun: gun.clone() })?;
        let remote_env = Envelope::from_slice(&RoleName::ROOT, &remote)?;

        let Some(cached) = cached else {
            // First contact: trust_pinning decides (TOFU by default).
            let (root, warnings) =
                validate_root(None, &remote_env, gun, Some(&self.options.pinning), now)?;
            self.warnings.extend(warnings);
            return Ok((root, remote, true));
        };

        // The cached root pins trust; like Notary, it may have expired but must still be valid.
        let (mut trusted, warnings) = Envelope::from_slice(&RoleName::ROOT, &cached)
            .map_err(UpdateError::from)
            .and_then(|env| validate_root(None, &env, gun, None, now))
            .map_err(|e| UpdateError::CachedRootInvalid {
                gun: gun.clone(),
                path: self.cache.path(gun, &RoleName::ROOT),
                source: Box::new(e),
            })?;
        if remote == cached {
            self.warnings.extend(warnings);
            return Ok((trusted, cached, false));
        }
        let newest = remote_env.decode::<Root>()?.signed.version;
        if newest < trusted.signed.version {
            return Err(self.rollback(&RoleName::ROOT, newest, trusted.signed.version));
        }
        for version in trusted.signed.version + 1..newest {
            let bytes = self
                .store
                .role_version(&RoleName::ROOT, version, self.options.max_root_size)
                .await
                .map_err(|source| {
                    self.remote_error(&RoleName::ROOT, source, "the root.json size limit")
                })?
                .ok_or_else(|| UpdateError::MissingRole {
                    gun: gun.clone(),
                    role: RoleName::ROOT,
                    what: format!("{version}.root.json"),
                })?;
            self.check_size(
                &RoleName::ROOT,
                &bytes,
                self.options.max_root_size,
                "the root.json size limit",
            )?;
            let env = Envelope::from_slice(&RoleName::ROOT, &bytes)?;
            let (next, _) = validate_root(Some(&trusted.signed), &env, gun, None, now)?;
            if next.signed.version != version {
                return Err(UpdateError::RootVersionMismatch {
                    gun: gun.clone(),
                    requested: version,
                    found: next.signed.version,
                });
            }
            trusted = next;
        }
        let (root, warnings) = validate_root(Some(&trusted.signed), &remote_env, gun, None, now)?;
        self.warnings.extend(warnings);
        Ok((root, remote, true))
    }

    /// timestamp.json, always from the server, and its bytes.
    async fn timestamp(
        &mut self,
        root: &Root,
    ) -> Result<(Signed<Timestamp>, Vec<u8>), UpdateError> {
        let role = RoleName::TIMESTAMP;
        let bytes = self
            .fetch(
                &role,
                self.options.max_timestamp_size,
                "the timestamp.json size limit",
            )
            .await?
            .ok_or_else(|| UpdateError::MissingRole {
                gun: self.gun.clone(),
                role: role.clone(),
                what: "timestamp.json".into(),
            })?;
        let timestamp: Signed<Timestamp> = self.verify_base(root, &role, &bytes)?;
        self.check_version(&role, timestamp.signed.version, &bytes)?;
        self.check_expiry(
            &role,
            &timestamp.signed.expires,
            "notary-server re-signs the timestamp when asked: check the server's clock and its \
             signer, or your own clock",
        )?;
        Ok((timestamp, bytes))
    }

    /// Every published delegation, pre-order in each parent's `delegations.roles` order.
    async fn delegations(
        &mut self,
        snapshot: &Snapshot,
        targets: &Targets,
    ) -> Result<Vec<DelegatedRole>, UpdateError> {
        struct Pending {
            delegation: Delegation,
            paths: Vec<String>,
            parent_keys: BTreeMap<KeyId, PublicKey>,
            parent: RoleName,
        }
        fn children(parent: &RoleName, file: &Targets, parent_paths: &[String]) -> Vec<Pending> {
            file.delegations
                .roles
                .iter()
                .rev()
                .map(|d| Pending {
                    delegation: d.clone(),
                    paths: restrict_paths(parent_paths, &d.paths),
                    parent_keys: file.delegations.keys.clone(),
                    parent: parent.clone(),
                })
                .collect()
        }

        let mut verified = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = children(&RoleName::TARGETS, targets, &[String::new()]);
        while let Some(next) = stack.pop() {
            let name = next.delegation.name.clone();
            // A role defined but never published has no snapshot entry: Notary skips it.
            let Some(meta) = snapshot.meta.get(&name) else {
                continue;
            };
            if !seen.insert(name.clone()) {
                continue;
            }
            let bytes = self.fetch_by_meta(&name, meta, &RoleName::SNAPSHOT).await?;
            let env = Envelope::from_slice(&name, &bytes)?;
            let file: Signed<Targets> = env.decode()?;
            self.check_version(&name, file.signed.version, &bytes)?;
            let keys = RoleKeys::new(
                name.clone(),
                &next.parent,
                &next.delegation.keyids,
                &next.parent_keys,
                next.delegation.threshold,
            )?;
            // Like Notary, a delegation that lacks signatures or expired is skipped, not fatal.
            match env.verify(&keys) {
                Ok(_) => {}
                Err(e @ TufError::ThresholdNotMet { .. }) => {
                    self.warnings.push(UpdateWarning::DelegationSkipped {
                        role: name,
                        reason: e.to_string(),
                    });
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            if file.signed.expires.is_expired_at(self.options.now) {
                self.warnings.push(UpdateWarning::DelegationSkipped {
                    role: name,
                    reason: format!("it expired at {}", file.signed.expires),
                });
                continue;
            }
            for target in file.signed.targets.keys() {
                if !path_allowed(target, &next.paths) {
                    self.warnings.push(UpdateWarning::TargetOutsidePaths {
                        role: name.clone(),
                        target: target.clone(),
                    });
                }
            }
            stack.extend(children(&name, &file.signed, &next.paths));
            self.stage(&name, bytes)?;
            verified.push(DelegatedRole {
                name,
                paths: next.paths,
                file,
            });
        }
        Ok(verified)
    }

    /// Verifies a base role's file with the keys root lists for it and reads it as `T`.
    fn verify_base<T: crate::tuf::Metadata>(
        &self,
        root: &Root,
        role: &RoleName,
        bytes: &[u8],
    ) -> Result<Signed<T>, UpdateError> {
        let env = Envelope::from_slice(role, bytes)?;
        env.verify(&root.role_keys(role)?)?;
        Ok(env.decode()?)
    }

    /// A file the server has by hash, capped and checked against the `meta` recorded for it.
    ///
    /// A cached copy that matches `meta` is used instead, as Notary does.
    async fn fetch_by_meta(
        &mut self,
        role: &RoleName,
        meta: &FileMeta,
        recorded_in: &RoleName,
    ) -> Result<Vec<u8>, UpdateError> {
        if let Some(cached) = self.cached(role) {
            if meta.check(role, recorded_in, cached).is_ok() {
                return Ok(cached.to_vec());
            }
        }
        let why = format!("the length {recorded_in}.json records");
        let (bytes, what) = match meta.hashes.sha256 {
            Some(sha256) => (
                self.store
                    .role_by_hash(role, &sha256, meta.length)
                    .await
                    .map_err(|source| self.remote_error(role, source, &why))?,
                format!("{role}.{sha256}.json"),
            ),
            // Without a sha256 Notary asks for the role by name.
            None => (
                self.store
                    .role(role, meta.length)
                    .await
                    .map_err(|source| self.remote_error(role, source, &why))?,
                format!("{role}.json"),
            ),
        };
        let bytes = bytes.ok_or_else(|| UpdateError::MissingRole {
            gun: self.gun.clone(),
            role: role.clone(),
            what,
        })?;
        self.check_size(role, &bytes, meta.length, &why)?;
        meta.check(role, recorded_in, &bytes)?;
        Ok(bytes)
    }

    /// `role` by name, capped at `max_len`.
    async fn fetch(
        &self,
        role: &RoleName,
        max_len: u64,
        why: &str,
    ) -> Result<Option<Vec<u8>>, UpdateError> {
        let bytes = self
            .store
            .role(role, max_len)
            .await
            .map_err(|source| self.remote_error(role, source, why))?;
        if let Some(bytes) = &bytes {
            self.check_size(role, bytes, max_len, why)?;
        }
        Ok(bytes)
    }

    fn check_size(
        &self,
        role: &RoleName,
        bytes: &[u8],
        limit: u64,
        why: &str,
    ) -> Result<(), UpdateError> {
        if bytes.len() as u64 > limit {
            return Err(UpdateError::TooLarge {
                role: role.clone(),
                limit,
                why: why.to_owned(),
            });
        }
        Ok(())
    }

    /// Refuses a version older than the cached one (Notary's `ErrLowVersion`); `bytes` are the
    /// verified file whose version is `found`.
    fn check_version(
        &mut self,
        role: &RoleName,
        found: u64,
        bytes: &[u8],
    ) -> Result<(), UpdateError> {
        let Some(cached) = self.cached(role) else {
            return Ok(());
        };
        // The file itself, as on every read from a warm cache: same version, nothing to parse.
        if cached == bytes {
            return Ok(());
        }
        let version = Envelope::from_slice(role, cached)
            .map_err(|e| e.to_string())
            .and_then(|env| {
                env.signed()
                    .get("version")
                    .and_then(serde_json::Value::as_u64)
                    .ok_or_else(|| "it has no version".to_owned())
            });
        match version {
            Ok(trusted) if found < trusted => Err(self.rollback(role, found, trusted)),
            Ok(_) => Ok(()),
            Err(reason) => {
                self.warnings.push(UpdateWarning::CachedRoleUnreadable {
                    role: role.clone(),
                    reason,
                });
                Ok(())
            }
        }
    }

    fn check_expiry(
        &self,
        role: &RoleName,
        expires: &Expires,
        hint: &'static str,
    ) -> Result<(), UpdateError> {
        if expires.is_expired_at(self.options.now) {
            return Err(UpdateError::Expired {
                gun: self.gun.clone(),
                role: role.clone(),
                expires: *expires,
                now: self.options.now,
                hint,
            });
        }
        Ok(())
    }

    /// Queues verified bytes for the cache unless the cache already holds them.
    fn stage(&mut self, role: &RoleName, bytes: Vec<u8>) -> Result<(), UpdateError> {
        if self.cached(role) != Some(bytes.as_slice()) {
            self.staged.push((role.clone(), bytes));
        }
        Ok(())
    }

    /// The cached copy of `role` this update started from.
    fn cached(&self, role: &RoleName) -> Option<&'a [u8]> {
        self.view.get(role)
    }

    fn rollback(&self, role: &RoleName, found: u64, trusted: u64) -> UpdateError {
        UpdateError::Rollback {
            gun: self.gun.clone(),
            role: role.clone(),
            found,
            trusted,
            cache_path: self.cache.path(self.gun, role),
        }
    }

    /// A failed read of `role`; an answer over the read's cap is the length check `why` names,
    /// not a transport failure.
    fn remote_error(
        &self,
        role: &RoleName,
        source: crate::tuf::RemoteError,
        why: &str,
    ) -> UpdateError {
        if let Some(over) = source.downcast_ref::<crate::tuf::OverLimit>() {
            return UpdateError::TooLarge {
                role: role.clone(),
                limit: over.limit,
                why: why.to_owned(),
            };
        }
        UpdateError::Remote {
            gun: self.gun.clone(),
            role: role.clone(),
            source,
        }
    }
}

impl VerifiedRepo {
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
        self.delegations.iter().find(|d| d.name == *name)
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
                    if !found.contains_key(name) && path_allowed(name, &view.paths) {
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
                if path_allowed(name, &view.paths) {
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
    /// to stop.
    fn walk<'a>(
        &'a self,
        target_path: Option<&str>,
        subtree: &RoleName,
        skip: &[&RoleName],
        mut visit: impl FnMut(&View<'a>) -> bool,
    ) {
        let mut queue = VecDeque::from([View {
            name: &RoleName::TARGETS,
            paths: vec![String::new()],
            file: &self.targets.signed,
        }]);
        while let Some(view) = queue.pop_front() {
            let children = |view: &View<'a>| -> Vec<View<'a>> {
                view.file
                    .delegations
                    .roles
                    .iter()
                    .filter_map(|d| {
                        let role = self.delegation(&d.name)?;
                        Some(View {
                            name: &role.name,
                            paths: restrict_paths(&view.paths, &d.paths),
                            file: &role.file.signed,
                        })
                    })
                    .collect()
            };
            // An ancestor of the subtree: only the way down.
            if subtree.as_str().starts_with(&format!("{}/", view.name)) {
                queue.extend(children(&view));
                continue;
            }
            let in_subtree =
                view.name == subtree || view.name.as_str().starts_with(&format!("{subtree}/"));
            let path_ok = target_path.is_none_or(|p| path_allowed(p, &view.paths));
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
    paths: Vec<String>,
    file: &'a Targets,
}

fn entry(name: &str, meta: &FileMeta, role: &RoleName) -> TargetEntry {
    TargetEntry {
        name: name.to_owned(),
        length: meta.length,
        sha256: meta.hashes.sha256,
        role: role.clone(),
    }
}

/// Notary's `checkPaths`: plain string prefixes, `""` allows everything.
fn path_allowed(target: &str, paths: &[String]) -> bool {
    paths.iter().any(|p| target.starts_with(p.as_str()))
}

/// Notary's `RestrictDelegationPathPrefixes`: the child's paths that one of the parent's prefixes.
fn restrict_paths(parent: &[String], child: &[String]) -> Vec<String> {
    child
        .iter()
        .filter(|c| parent.iter().any(|p| c.starts_with(p.as_str())))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn paths_are_plain_prefixes() {
        assert!(path_allowed("v1", &strings(&[""])));
        assert!(path_allowed("app/v1", &strings(&["lib/", "app/"])));
        assert!(!path_allowed("app", &strings(&["app/"])));
        assert!(!path_allowed("v1", &[]));
    }

    #[test]
    fn child_paths_are_restricted_to_the_parent() {
        assert_eq!(
            restrict_paths(&strings(&["app/"]), &strings(&["app/x", "lib/", "app/"])),
            strings(&["app/x", "app/"])
        );
        assert_eq!(
            restrict_paths(&strings(&[""]), &strings(&["a"])),
            strings(&["a"])
        );
        assert!(restrict_paths(&strings(&["a"]), &[]).is_empty());
    }

    #[test]
    fn default_limits_are_notarys() {
        let options = UpdateOptions::default();
        assert_eq!(options.max_root_size, 100 * 1024 * 1024);
        assert_eq!(options.max_timestamp_size, 1024 * 1024);
        assert!(!options.pinning.disable_tofu);
    }
}
