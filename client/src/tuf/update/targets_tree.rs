//! The targets steps: targets.json by the hash the snapshot records, then the delegation walk.

use std::collections::HashSet;

use crate::tuf::error::{TufError, UpdateError, UpdateWarning};
use crate::tuf::{
    Delegation, Envelope, FileMeta, RemoteStore, RoleKeys, RoleName, Root, Signed, Snapshot,
    Targets,
};

use super::prefixes::Prefixes;
use super::session::Session;
use super::verified::DelegatedRole;

/// A delegated role still to verify: its keys from its parent, the snapshot's entry for its
/// file, and its paths restricted to its parent's.
struct Pending {
    name: RoleName,
    keys: RoleKeys,
    meta: FileMeta,
    paths: Vec<String>,
}

impl<'a, S: RemoteStore> Session<'a, S> {
    /// targets.json by the hash `snapshot` records, and its bytes.
    pub(super) async fn targets(
        &mut self,
        root: &Root,
        snapshot: &Snapshot,
    ) -> Result<(Signed<Targets>, Vec<u8>), UpdateError> {
        let meta = snapshot
            .meta
            .get(&RoleName::TARGETS)
            .ok_or_else(|| TufError::MetaMismatch {
                role: RoleName::TARGETS,
                recorded_in: RoleName::SNAPSHOT,
                problem: "snapshot.json has no entry for it".into(),
            })?;
        let bytes = self
            .fetch_by_meta(&RoleName::TARGETS, meta, &RoleName::SNAPSHOT)
            .await?;
        let targets: Signed<Targets> = self.verify_base(root, &RoleName::TARGETS, &bytes)?;
        self.note_targets(&RoleName::TARGETS, &targets.signed);
        self.check_version(&RoleName::TARGETS, targets.signed.version, &bytes)?;
        self.check_expiry(
            &RoleName::TARGETS,
            &targets.signed.expires,
            "the repository owner must re-sign targets: publish again (e.g. `notary publish`)",
        )?;
        Ok((targets, bytes))
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
    pub(super) async fn delegations(
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
}
