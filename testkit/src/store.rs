//! A notary server in memory ([`MemStore`]) and the file names a real one serves ([`served`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use tufa_client::tuf::{RemoteError, RemoteStore, RoleName, Sha256Digest};

use crate::repo::Files;

/// One repository's files as notary-server serves them: current roles, every version of root,
/// and every file ever published by its SHA-256. Every request is logged.
///
/// Like a careless transport, it returns whole bodies whatever `max_len` says, so the update's
/// own length checks are what is tested.
#[derive(Default)]
pub struct MemStore {
    current: Mutex<BTreeMap<RoleName, Vec<u8>>>,
    by_hash: Mutex<HashMap<(RoleName, Sha256Digest), Vec<u8>>>,
    root_versions: Mutex<BTreeMap<u64, Vec<u8>>>,
    requests: Mutex<Vec<String>>,
}

impl MemStore {
    /// A store that has published `files`.
    pub fn serving(files: &Files) -> Self {
        let store = Self::default();
        store.serve(files);
        store
    }

    /// Publishes `files`: each becomes current and fetchable by hash; roots by version too.
    pub fn serve(&self, files: &Files) {
        for (role, bytes) in files {
            lock(&self.current).insert(role.clone(), bytes.clone());
            lock(&self.by_hash).insert((role.clone(), Sha256Digest::of(bytes)), bytes.clone());
            if *role == RoleName::ROOT {
                lock(&self.root_versions).insert(root_version(bytes), bytes.clone());
            }
        }
    }

    /// Answers `<role>.<sha256>.json` with other bytes (a hostile or broken server).
    pub fn serve_by_hash(&self, role: &RoleName, sha256: Sha256Digest, bytes: Vec<u8>) {
        lock(&self.by_hash).insert((role.clone(), sha256), bytes);
    }

    /// Every request so far, as the file asked for (`root.json`, `2.root.json`,
    /// `targets.<sha256>.json`).
    pub fn requests(&self) -> Vec<String> {
        lock(&self.requests).clone()
    }

    fn log(&self, what: String) {
        lock(&self.requests).push(what);
    }
}

impl RemoteStore for MemStore {
    async fn role(&self, role: &RoleName, _max_len: u64) -> Result<Option<Vec<u8>>, RemoteError> {
        self.log(format!("{role}.json"));
        Ok(lock(&self.current).get(role).cloned())
    }

    async fn role_by_hash(
        &self,
        role: &RoleName,
        sha256: &Sha256Digest,
        _max_len: u64,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        self.log(format!("{role}.{sha256}.json"));
        Ok(lock(&self.by_hash).get(&(role.clone(), *sha256)).cloned())
    }

    async fn role_version(
        &self,
        role: &RoleName,
        version: u64,
        _max_len: u64,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        self.log(format!("{version}.{role}.json"));
        if *role != RoleName::ROOT {
            return Ok(None);
        }
        Ok(lock(&self.root_versions).get(&version).cloned())
    }
}

/// What notary-server serves for `files`: `<role>.json`, `<role>.<sha256>.json`, and the root
/// also as `<version>.root.json`. Keys are the file names after `/_trust/tuf/`.
pub fn served(files: &Files) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (role, bytes) in files {
        out.insert(format!("{role}.json"), bytes.clone());
        out.insert(
            format!("{role}.{}.json", Sha256Digest::of(bytes)),
            bytes.clone(),
        );
        if *role == RoleName::ROOT {
            out.insert(format!("{}.root.json", root_version(bytes)), bytes.clone());
        }
    }
    out
}

/// The version of a root file, read without checking the rest (a test may serve a broken one).
fn root_version(bytes: &[u8]) -> u64 {
    let file: serde_json::Value = serde_json::from_slice(bytes).expect("a root file");
    file["signed"]["version"]
        .as_u64()
        .expect("a root file with a version")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().expect("no test thread panicked holding the store")
}
