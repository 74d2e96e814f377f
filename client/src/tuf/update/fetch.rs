//! Reads from the server: each file capped, and checked against the length and hash recorded.

use crate::tuf::error::UpdateError;
use crate::tuf::{FileMeta, RemoteStore, RoleName};

use super::session::Session;

impl<'a, S: RemoteStore> Session<'a, S> {
    /// A file the server has by hash, capped and checked against the `meta` recorded for it.
    ///
    /// A cached copy that matches `meta` is used instead, as Notary does.
    pub(super) async fn fetch_by_meta(
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
    pub(super) async fn fetch(
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

    pub(super) fn check_size(
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

    /// A failed read of `role`; an answer over the read's cap is the length check `why` names,
    /// not a transport failure.
    pub(super) fn remote_error(
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
