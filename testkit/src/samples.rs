//! The repositories a real notary-server 0.7 served, saved in `client/tests/data/notary/` (see
//! its README): one `<role>.json` per role, `targets_<x>.json` for `targets/<x>`.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use tufa_client::tuf::{Expires, RoleName};

use crate::repo::Files;

/// `client/tests/data/<path>`: the samples and captures of the real Notary stack and docker CLI.
pub fn data_dir(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../client/tests/data")
        .join(path)
}

/// The saved repository `name`: role → file bytes exactly as served.
pub fn sample(name: &str) -> Files {
    let dir = data_dir(&format!("notary/{name}"));
    let mut files = Files::new();
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("the sample {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a sample entry").path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a UTF-8 file name");
        let role = match stem.strip_prefix("targets_") {
            Some(child) => format!("targets/{child}"),
            None => stem.to_owned(),
        };
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("the sample {}: {e}", path.display()));
        files.insert(RoleName::new(&role).expect("a role name"), bytes);
    }
    assert!(
        files.contains_key(&RoleName::ROOT),
        "the sample {name} has no root.json"
    );
    files
}

/// Just after the samples were made (their root certificates start at 2026-11-22T04:0x).
pub fn sample_time() -> OffsetDateTime {
    Expires::parse("2026-11-22T05:00:00Z")
        .expect("an RFC 3339 time")
        .time()
}
