//! [`UpdateOptions`]: the clock and the size caps an update reads under.

use time::OffsetDateTime;

use crate::tuf::root_validation::TrustPinning;

/// What [`update`](super::commit::update()) checks against and how much it reads.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_are_notarys() {
        let options = UpdateOptions::default();
        assert_eq!(options.max_root_size, 100 * 1024 * 1024);
        assert_eq!(options.max_timestamp_size, 1024 * 1024);
        assert!(!options.pinning.disable_tofu);
    }
}
