//! Test support: a repository served from memory, as a notary-server would serve it.

use std::collections::BTreeMap;
use std::path::Path;

use tufa_client::tuf::{RemoteError, RemoteStore, RoleName, Root, Sha256Digest, Signed};

/// Role files by role.
pub type Files = BTreeMap<RoleName, Vec<u8>>;

/// Serves fixed files: current by role, by SHA-256, and roots by version.
pub struct Served(pub Files);

impl RemoteStore for Served {
    async fn role(&self, role: &RoleName, _max_len: u64) -> Result<Option<Vec<u8>>, RemoteError> {
        Ok(self.0.get(role).cloned())
    }

    async fn role_by_hash(
        &self,
        role: &RoleName,
        sha256: &Sha256Digest,
        _max_len: u64,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        Ok(self
            .0
            .get(role)
            .filter(|b| Sha256Digest::of(b) == *sha256)
            .cloned())
    }

    async fn role_version(
        &self,
        role: &RoleName,
        version: u64,
        _max_len: u64,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        Ok(self.0.get(role).cloned().filter(|b| {
            *role == RoleName::ROOT
                && Signed::<Root>::from_slice(role, b).is_ok_and(|r| r.signed.version == version)
        }))
    }
}

/// A sample repository a real notary-server served (`tests/data/notary/<name>`).
pub fn sample(name: &str) -> Files {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/notary")
        .join(name);
    let mut files = Files::new();
    for entry in std::fs::read_dir(dir).expect("sample dir") {
        let path = entry.expect("entry").path();
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("name");
        let role = match stem.strip_prefix("targets_") {
            Some(child) => format!("targets/{child}"),
            None => stem.to_owned(),
        };
        files.insert(
            RoleName::new(&role).expect("role"),
            std::fs::read(&path).expect("read"),
        );
    }
    files
}
