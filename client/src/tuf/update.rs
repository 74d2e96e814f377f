//! The client update: fetch a repository's metadata, verify it as Notary's Go client does
//! (notary: client/tufclient.go, tuf/builder.go), and commit it to the [`TrustCache`].
//!
//! Order, as Notary downloads: root (cache, else the server under `trust_pinning`; then the
//! server's root.json, walking `<v>.root.json` through every version in between), timestamp
//! (always from the server), snapshot by the hash the timestamp records, targets by the hash the
//! snapshot records, then delegations pre-order in each parent's `delegations.roles` order.
//! Nothing is written unless every check passed.
//!
//! Where tufa is stricter than Notary: a root that differs from the cached one under the same
//! version is refused (a fork), a snapshot may not drop a delegation the cached snapshot listed
//! while its parent still delegates to it (TUF 5.5.5), and a threshold counts distinct public
//! keys. Where it is more lenient: a delegation that cannot be used is skipped with a warning
//! (see `Session::delegations`), where Notary fails the whole update. Every walk is linear in
//! the metadata, whatever a delegate repeats.
//!
//! Not checked, as in Notary: a role's name is not inside its signed body, so whoever holds
//! the snapshot key (notary-server, in docker's repositories) can serve one delegation's file
//! as another's when both roles share a key (`docker trust signer add` makes
//! `targets/<signer>` and `targets/releases` share one). The file still verifies only with
//! that key, so it swaps one signer's targets for another's, and can add nothing they did
//! not sign.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use time::OffsetDateTime;

use crate::tuf::cache::{CacheError, CacheView, TrustCache};
use crate::tuf::error::{TufError, UpdateError, UpdateWarning};
use crate::tuf::root_validation::{validate_root, TrustPinning};
use crate::tuf::{
    Delegation, Envelope, Expires, FileMeta, Gun, RemoteStore, RoleKeys, RoleName, Root,
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
    /// The most bytes read for any other file, whatever length timestamp or snapshot records.
    pub max_metadata_size: u64,
}

impl UpdateOptions {
    /// Notary's cap for root.json (`notary.MaxDownloadSize`): 100 MiB.
    pub const MAX_ROOT_SIZE: u64 = 100 << 20;
    /// Notary's cap for timestamp.json (`notary.MaxTimestampSize`): 1 MiB.
    pub const MAX_TIMESTAMP_SIZE: u64 = 1 << 20;
    /// tufa's ceiling for snapshot, targets and delegation files, above their recorded length:
    /// Notary's `MaxDownloadSize` (100 MiB), which Notary applies only where no length is
    /// recorded. Without it a holder of the timestamp and snapshot keys (notary-server, by
    /// default) makes the client buffer whatever length it records.
    pub const MAX_METADATA_SIZE: u64 = 100 << 20;

    /// Notary's defaults (TOFU, Notary's size caps), checking expiry at `now`.
    pub fn at(now: OffsetDateTime) -> Self {
        Self {
            now,
            pinning: TrustPinning::default(),
            max_root_size: Self::MAX_ROOT_SIZE,
            max_timestamp_size: Self::MAX_TIMESTAMP_SIZE,
            max_metadata_size: Self::MAX_METADATA_SIZE,
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
    /// Where each delegated role is in `delegations`.
    index: HashMap<RoleName, usize>,
    /// Each delegated role's paths as a [`Prefixes`], as `delegations` is ordered.
    allowed: Vec<Prefixes>,
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
        trusted_roles: None,
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

/// A delegated role still to verify: its keys from its parent, the snapshot's entry for its
/// file, and its paths restricted to its parent's.
struct Pending {
    name: RoleName,
    keys: RoleKeys,
    meta: FileMeta,
    paths: Vec<String>,
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
    /// The roles the cached snapshot lists, when it is not the snapshot being read.
    trusted_roles: Option<BTreeSet<RoleName>>,
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
        self.trusted_roles = self.cached_snapshot_roles(&snapshot_bytes)?;

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
        self.note_targets(&RoleName::TARGETS, &targets.signed);
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
        Ok(VerifiedRepo::new(
            self.gun.clone(),
            root,
            timestamp,
            snapshot,
            targets,
            delegations,
        ))
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
        self.note_reading(&remote_env);

        let Some(cached) = cached else {
            // First contact: trust_pinning decides (TOFU by default).
            let (root, warnings) =
                validate_root(None, &remote_env, gun, Some(&self.options.pinning), now)?;
            self.warn_all(warnings);
            return Ok((root, remote, true));
        };

        // The cached root pins trust; like Notary, it may have expired but must still be valid.
        let (cached_env, (mut trusted, warnings)) = Envelope::from_slice(&RoleName::ROOT, &cached)
            .map_err(UpdateError::from)
            .and_then(|env| {
                let valid = validate_root(None, &env, gun, None, now)?;
                Ok((env, valid))
            })
            .map_err(|e| UpdateError::CachedRootInvalid {
                gun: gun.clone(),
                path: self.cache.path(gun, &RoleName::ROOT),
                source: Box::new(e),
            })?;
        if remote == cached {
            self.warn_all(warnings);
            return Ok((trusted, cached, false));
        }
        let newest = remote_env.decode::<Root>()?.signed.version;
        if newest < trusted.signed.version {
            return Err(self.rollback(&RoleName::ROOT, newest, trusted.signed.version));
        }
        // Notary takes any root whose version is at least the cached one, so a second root
        // under the same version replaces it. TUF allows a new root only as version N+1, and
        // two roots of one version are a fork: refused. The same body signed or written
        // otherwise (other bytes, more signatures) is the same root.
        if newest == trusted.signed.version
            && remote_env.signed_bytes()? != cached_env.signed_bytes()?
        {
            return Err(UpdateError::RootForked {
                gun: gun.clone(),
                version: newest,
                cache_path: self.cache.path(gun, &RoleName::ROOT),
            });
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
        self.warn_all(warnings);
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
    ///
    /// Linear in the metadata: each role is verified once (a name listed again in its parent is
    /// its first entry), and a child's keys are resolved from its parent's `keys` alone.
    ///
    /// A delegation that cannot be used is skipped with a warning naming it, and the rest is
    /// served: one that expired or lacks signatures, as Notary skips it, and also one whose file
    /// or whose entry in its parent is damaged, where Notary fails the whole update
    /// (client/tufclient.go `downloadTargets` skips only `ErrExpired` and `ErrRoleThreshold`).
    /// Skipping grants a delegate nothing it could not get by signing badly, while failing
    /// would let any delegate, however narrow its paths, make every tag unreadable. What the
    /// server answers for the file (its hash, its length, a rollback) stays fatal.
    async fn delegations(
        &mut self,
        snapshot: &Snapshot,
        targets: &Targets,
    ) -> Result<Vec<DelegatedRole>, UpdateError> {
        let mut verified = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = Vec::new();
        self.children(
            &mut stack,
            &RoleName::TARGETS,
            targets,
            &[String::new()],
            snapshot,
        )?;
        while let Some(next) = stack.pop() {
            let Pending {
                name,
                keys,
                meta,
                paths,
            } = next;
            if !seen.insert(name.clone()) {
                continue;
            }
            let bytes = self
                .fetch_by_meta(&name, &meta, &RoleName::SNAPSHOT)
                .await?;
            let parsed = Envelope::from_slice(&name, &bytes).and_then(|env| {
                let file = env.decode::<Targets>()?;
                Ok((env, file))
            });
            let (env, file) = match parsed {
                Ok(parsed) => parsed,
                Err(e) => {
                    self.skip(name, e.to_string());
                    continue;
                }
            };
            self.check_version(&name, file.signed.version, &bytes)?;
            if let Err(e) = env.verify(&keys) {
                self.skip(name, e.to_string());
                continue;
            }
            if file.signed.expires.is_expired_at(self.options.now) {
                self.skip(
                    name,
                    format!(
                        "it expired at {}; its signer must sign it again (`notary witness` \
                         marks it for that)",
                        file.signed.expires
                    ),
                );
                continue;
            }
            self.note_reading(&env);
            self.note_targets(&name, &file.signed);
            let allowed = Prefixes::new(&paths);
            for target in file.signed.targets.keys() {
                if !allowed.allows(target) {
                    self.warn(UpdateWarning::TargetOutsidePaths {
                        role: name.clone(),
                        target: target.clone(),
                    });
                }
            }
            self.children(&mut stack, &name, &file.signed, &paths, snapshot)?;
            self.stage(&name, bytes)?;
            verified.push(DelegatedRole { name, paths, file });
        }
        Ok(verified)
    }

    /// Queues the delegations of `parent` (whose own paths are `parent_paths`) that the
    /// snapshot lists, each name once, so that they pop in file order. One whose keys cannot
    /// be resolved from `parent`'s file is skipped, as Notary's `buildDelegationRoles` leaves
    /// it out.
    fn children(
        &mut self,
        stack: &mut Vec<Pending>,
        parent: &RoleName,
        file: &Targets,
        parent_paths: &[String],
        snapshot: &Snapshot,
    ) -> Result<(), UpdateError> {
        let allowed = Prefixes::new(parent_paths);
        let leaks = |d: &Delegation| {
            let leaked = &file.delegations.leaked;
            d.keyids.iter().filter(|id| leaked.contains(id)).count()
        };
        let first = stack.len();
        for d in file.delegations.unique() {
            // A role defined but never published has no snapshot entry: Notary skips it. But
            // a file the trusted snapshot listed may not vanish while it is still delegated to
            // (TUF 5.5.5; Notary does not check): its tags would silently resolve elsewhere.
            let Some(meta) = snapshot.meta.get(&d.name) else {
                if self
                    .trusted_roles
                    .as_ref()
                    .is_some_and(|t| t.contains(&d.name))
                {
                    return Err(UpdateError::DelegationDropped {
                        gun: self.gun.clone(),
                        role: d.name.clone(),
                        parent: parent.clone(),
                    });
                }
                continue;
            };
            match file.delegations.role_keys(parent, d) {
                Ok(keys) if keys.keys().len() < keys.threshold() as usize && leaks(d) > 0 => {
                    let reason = format!(
                        "{} of the keys {parent}.json lists for it were published with their \
                         private part and do not count, which leaves {} of the {} it needs",
                        leaks(d),
                        keys.keys().len(),
                        keys.threshold()
                    );
                    self.skip(d.name.clone(), reason);
                }
                Ok(keys) => stack.push(Pending {
                    name: d.name.clone(),
                    keys,
                    meta: meta.clone(),
                    paths: allowed.restrict(&d.paths),
                }),
                Err(e) => self.skip(d.name.clone(), e.to_string()),
            }
        }
        stack[first..].reverse();
        Ok(())
    }

    /// Warns about a delegation left out, and why.
    fn skip(&mut self, role: RoleName, reason: String) {
        self.warn(UpdateWarning::DelegationSkipped { role, reason });
    }

    /// Warns about what reading `env` as Go does passed over.
    fn note_reading(&mut self, env: &Envelope) {
        for key_id in env.ignored_signatures() {
            self.warn(UpdateWarning::SignatureIgnored {
                role: env.role().clone(),
                key_id: key_id.clone(),
            });
        }
        if env.not_unicode() {
            self.warn(UpdateWarning::NotUnicode {
                role: env.role().clone(),
            });
        }
    }

    /// Warns about the parts of verified targets file `role` that cannot be used: keys it
    /// published with their private part, targets whose hash has the wrong length.
    fn note_targets(&mut self, role: &RoleName, file: &Targets) {
        for key_id in &file.delegations.leaked {
            self.warn(UpdateWarning::PrivateKeyPublished {
                role: role.clone(),
                key_id: *key_id,
            });
        }
        for (target, meta) in &file.targets {
            if let Some(problem) = meta.hashes.unusable() {
                self.warn(UpdateWarning::TargetUnusable {
                    role: role.clone(),
                    target: target.clone(),
                    problem,
                });
            }
        }
    }

    /// Records `warning` for [`VerifiedRepo::warnings`] and logs it.
    fn warn(&mut self, warning: UpdateWarning) {
        tracing::warn!(gun = %self.gun, "{warning}");
        self.warnings.push(warning);
    }

    fn warn_all(&mut self, warnings: Vec<UpdateWarning>) {
        for warning in warnings {
            self.warn(warning);
        }
    }

    /// The roles the cached snapshot lists, unless it is `current` (then none can have gone)
    /// or unreadable (then `check_version` has said that rollback protection starts again).
    fn cached_snapshot_roles(
        &self,
        current: &[u8],
    ) -> Result<Option<BTreeSet<RoleName>>, UpdateError> {
        let Some(cached) = self.cache.load(self.gun, &RoleName::SNAPSHOT)? else {
            return Ok(None);
        };
        if cached == current {
            return Ok(None);
        }
        Ok(Signed::<Snapshot>::from_slice(&RoleName::SNAPSHOT, &cached)
            .ok()
            .map(|s| s.signed.meta.into_keys().collect()))
    }

    /// Verifies a base role's file with the keys root lists for it and reads it as `T`.
    fn verify_base<T: crate::tuf::Metadata>(
        &mut self,
        root: &Root,
        role: &RoleName,
        bytes: &[u8],
    ) -> Result<Signed<T>, UpdateError> {
        let env = Envelope::from_slice(role, bytes)?;
        env.verify(&root.role_keys(role)?)?;
        let file = env.decode()?;
        self.note_reading(&env);
        Ok(file)
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
        let (limit, why) = if meta.length > self.options.max_metadata_size {
            let ceiling = self.options.max_metadata_size;
            let why = format!(
                "tufa's ceiling for one metadata file, Notary's download cap; {recorded_in}.json \
                 records {} bytes",
                meta.length
            );
            (ceiling, why)
        } else {
            (
                meta.length,
                format!("the length {recorded_in}.json records"),
            )
        };
        let (bytes, what) = match meta.hashes.sha256 {
            Some(sha256) => (
                self.store
                    .role_by_hash(role, &sha256, limit)
                    .await
                    .map_err(|source| self.remote_error(role, source, &why))?,
                format!("{role}.{sha256}.json"),
            ),
            // Without a sha256 Notary asks for the role by name.
            None => (
                self.store
                    .role(role, limit)
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
        self.check_size(role, &bytes, limit, &why)?;
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
                self.warn(UpdateWarning::CachedRoleUnreadable {
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
    fn new(
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

/// A role's target path prefixes, checked as Notary's `checkPaths` does (plain string
/// prefixes; `""` allows everything) in O(log n) per name rather than against every prefix:
/// sorted, with every path that another one starts dropped.
#[derive(Clone, Debug)]
struct Prefixes(Vec<String>);

impl Prefixes {
    fn new(paths: &[String]) -> Self {
        let mut sorted: Vec<&String> = paths.iter().collect();
        sorted.sort_unstable();
        let mut kept: Vec<String> = Vec::with_capacity(sorted.len());
        for path in sorted {
            // Everything between a prefix and a path it starts also starts with it.
            if kept.last().is_none_or(|k| !path.starts_with(k.as_str())) {
                kept.push(path.clone());
            }
        }
        Self(kept)
    }

    /// Whether one of the prefixes starts `target`.
    fn allows(&self, target: &str) -> bool {
        // No kept path starts another, so only the greatest one not above `target` can.
        let above = self.0.partition_point(|p| p.as_str() <= target);
        above > 0 && target.starts_with(self.0[above - 1].as_str())
    }

    /// Notary's `RestrictDelegationPathPrefixes`: the child's paths that one of these starts,
    /// in the child's order.
    fn restrict(&self, child: &[String]) -> Vec<String> {
        child.iter().filter(|c| self.allows(c)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn allows(paths: &[&str], target: &str) -> bool {
        Prefixes::new(&strings(paths)).allows(target)
    }

    #[test]
    fn paths_are_plain_prefixes() {
        assert!(allows(&[""], "v1"));
        assert!(allows(&["lib/", "app/"], "app/v1"));
        assert!(!allows(&["app/"], "app"));
        assert!(!allows(&[], "v1"));
        assert!(allows(&["a", "ab0", "zz"], "abc"));
        assert!(allows(&["app/x", "app/", "b"], "app/y"));
        assert!(!allows(&["app/x", "app/y", "b"], "app/z"));
        assert!(allows(&["app/x", "app/y", "b"], "app/yes"));
        // Byte order, not character order, as Go compares.
        assert!(allows(&["é", "e"], "ée"));
        assert!(!allows(&["é"], "e"));
    }

    #[test]
    fn prefix_checks_agree_with_a_plain_scan() {
        let paths = strings(&["", "a", "ab", "abc", "b/", "b/c", "ba", "c", "cd/e"]);
        let targets = [
            "", "a", "aa", "abd", "b", "b/", "b/cc", "bb", "c/", "cd/", "cd/ef", "d",
        ];
        for n in 0..(1 << paths.len()) {
            let subset: Vec<String> = (0..paths.len())
                .filter(|i| n & (1 << i) != 0)
                .map(|i| paths[i].clone())
                .collect();
            let set = Prefixes::new(&subset);
            for t in targets {
                let scan = subset.iter().any(|p| t.starts_with(p.as_str()));
                assert_eq!(set.allows(t), scan, "{subset:?} {t:?}");
            }
        }
    }

    #[test]
    fn child_paths_are_restricted_to_the_parent() {
        let restrict = |parent: &[&str], child: &[&str]| {
            Prefixes::new(&strings(parent)).restrict(&strings(child))
        };
        assert_eq!(
            restrict(&["app/"], &["app/x", "lib/", "app/"]),
            strings(&["app/x", "app/"])
        );
        assert_eq!(restrict(&[""], &["a"]), strings(&["a"]));
        assert!(restrict(&["a"], &[]).is_empty());
    }

    #[test]
    fn default_limits_are_notarys() {
        let options = UpdateOptions::default();
        assert_eq!(options.max_root_size, 100 * 1024 * 1024);
        assert_eq!(options.max_timestamp_size, 1024 * 1024);
        assert!(!options.pinning.disable_tofu);
    }
}
