//! The root step: the cached (or pinned first) root, then each newer version signed by the last.

use crate::tuf::error::UpdateError;
use crate::tuf::root_validation::validate_root;
use crate::tuf::{Envelope, RemoteStore, RoleName, Root, Signed};

use super::session::Session;

impl<'a, S: RemoteStore> Session<'a, S> {
    /// The root to trust, its bytes, and whether they differ from the cached root.
    pub(super) async fn root(&mut self) -> Result<(Signed<Root>, Vec<u8>, bool), UpdateError> {
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
}
