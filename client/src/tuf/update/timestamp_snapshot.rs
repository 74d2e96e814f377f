//! The timestamp and snapshot steps: timestamp.json by name, snapshot.json by the hash it records.

use std::collections::BTreeSet;

use crate::tuf::error::UpdateError;
use crate::tuf::{RemoteStore, RoleName, Root, Signed, Snapshot, Timestamp};

use super::session::Session;

impl<'a, S: RemoteStore> Session<'a, S> {
    /// timestamp.json, always from the server, and its bytes.
    pub(super) async fn timestamp(
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

    /// snapshot.json by the hash `timestamp` records, and its bytes; it must record
    /// `root_bytes` as its root.
    pub(super) async fn snapshot(
        &mut self,
        root: &Root,
        timestamp: &Timestamp,
        root_bytes: &[u8],
    ) -> Result<(Signed<Snapshot>, Vec<u8>), UpdateError> {
        let snapshot_bytes = self
            .fetch_by_meta(
                &RoleName::SNAPSHOT,
                &timestamp.snapshot,
                &RoleName::TIMESTAMP,
            )
            .await?;
        let snapshot: Signed<Snapshot> =
            self.verify_base(root, &RoleName::SNAPSHOT, &snapshot_bytes)?;
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
        snapshot.signed.check(&RoleName::ROOT, root_bytes)?;
        self.trusted_roles = self.cached_snapshot_roles(&snapshot_bytes)?;
        Ok((snapshot, snapshot_bytes))
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
}
