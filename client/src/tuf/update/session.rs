//! One update in progress ([`Session`]): its state, and the checks and warnings every step shares.

use std::collections::BTreeSet;

use crate::tuf::cache::{CacheView, TrustCache};
use crate::tuf::error::{UpdateError, UpdateWarning};
use crate::tuf::{Envelope, Expires, Gun, RemoteStore, RoleName, Root, Signed, Targets};

use super::options::UpdateOptions;

/// One update in progress: what was verified so far and is to be cached.
pub(super) struct Session<'a, S> {
    pub(super) store: &'a S,
    /// Where the cached files live (for messages).
    pub(super) cache: &'a TrustCache,
    /// The cached files, read once at the start: what this update trusts already.
    pub(super) view: &'a CacheView,
    pub(super) gun: &'a Gun,
    pub(super) options: &'a UpdateOptions,
    /// Verified files that differ from the cache, in commit order.
    pub(super) staged: Vec<(RoleName, Vec<u8>)>,
    pub(super) warnings: Vec<UpdateWarning>,
    /// The roles the cached snapshot lists, when it is not the snapshot being read.
    pub(super) trusted_roles: Option<BTreeSet<RoleName>>,
}

impl<'a, S: RemoteStore> Session<'a, S> {
    /// Warns about what reading `env` as Go does passed over.
    pub(super) fn note_reading(&mut self, env: &Envelope) {
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
    pub(super) fn note_targets(&mut self, role: &RoleName, file: &Targets) {
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

    /// Records `warning` for [`VerifiedRepo::warnings`](super::verified::VerifiedRepo::warnings) and logs it.
    pub(super) fn warn(&mut self, warning: UpdateWarning) {
        tracing::warn!(gun = %self.gun, "{warning}");
        self.warnings.push(warning);
    }

    pub(super) fn warn_all(&mut self, warnings: Vec<UpdateWarning>) {
        for warning in warnings {
            self.warn(warning);
        }
    }

    /// Verifies a base role's file with the keys root lists for it and reads it as `T`.
    pub(super) fn verify_base<T: crate::tuf::Metadata>(
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

    /// Refuses a version older than the cached one (Notary's `ErrLowVersion`); `bytes` are the
    /// verified file whose version is `found`.
    pub(super) fn check_version(
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

    pub(super) fn check_expiry(
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
    pub(super) fn stage(&mut self, role: &RoleName, bytes: Vec<u8>) -> Result<(), UpdateError> {
        if self.cached(role) != Some(bytes.as_slice()) {
            self.staged.push((role.clone(), bytes));
        }
        Ok(())
    }

    /// The cached copy of `role` this update started from.
    pub(super) fn cached(&self, role: &RoleName) -> Option<&'a [u8]> {
        self.view.get(role)
    }

    pub(super) fn rollback(&self, role: &RoleName, found: u64, trusted: u64) -> UpdateError {
        UpdateError::Rollback {
            gun: self.gun.clone(),
            role: role.clone(),
            found,
            trusted,
            cache_path: self.cache.path(self.gun, role),
        }
    }
}
