//! What the stack's notary-server serves for a repository, read straight over HTTPS: the bytes
//! a test compares before and after a command to show what it published, and the keys, versions
//! and target names in them.

use serde_json::Value;

use super::services::get;
use super::Stack;

impl Stack {
    /// The bytes notary-server serves for `<gun>`'s `<role>.json` (e.g. `timestamp`,
    /// `targets/releases`), or `None` on 404: a test compares them before and after a command to
    /// show it published nothing.
    pub fn trust_file(&self, gun: &str, role: &str) -> Option<Vec<u8>> {
        let url = format!("{}/v2/{gun}/_trust/tuf/{role}.json", self.notary_url());
        let (status, body) = get(self.notary_agent().get(&url), &url);
        match status {
            200 => Some(body),
            404 => None,
            s => panic!("GET {url}: {s}: {}", String::from_utf8_lossy(&body)),
        }
    }

    /// `<gun>`'s `<role>.json` as the server serves it, parsed; `None` on 404.
    pub fn trust_json(&self, gun: &str, role: &str) -> Option<Value> {
        self.trust_file(gun, role).map(|bytes| {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{gun}'s {role}.json is not JSON: {e}"))
        })
    }

    /// The key IDs the served root lists for base role `role`.
    pub fn role_keyids(&self, gun: &str, role: &str) -> Vec<String> {
        let root = self
            .trust_json(gun, "root")
            .unwrap_or_else(|| panic!("the server has no root for {gun}"));
        strings(&root["signed"]["roles"][role]["keyids"])
    }

    /// The key IDs that signed the served `<role>.json`.
    pub fn signed_by(&self, gun: &str, role: &str) -> Vec<String> {
        let file = self
            .trust_json(gun, role)
            .unwrap_or_else(|| panic!("the server has no {role} for {gun}"));
        file["signatures"]
            .as_array()
            .expect("signatures")
            .iter()
            .map(|s| s["keyid"].as_str().expect("a keyid").to_owned())
            .collect()
    }

    /// The version of the root the server serves for `gun`, 0 when it has none.
    pub fn root_version(&self, gun: &str) -> u64 {
        self.trust_json(gun, "root").map_or(0, |root| {
            root["signed"]["version"].as_u64().expect("a root version")
        })
    }

    /// The target names of the served `<role>.json`, sorted; none when the server has no such
    /// file.
    pub fn target_names(&self, gun: &str, role: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .trust_json(gun, role)
            .and_then(|file| {
                file["signed"]["targets"]
                    .as_object()
                    .map(|t| t.keys().cloned().collect())
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|k| k.as_str().expect("a string").to_owned())
        .collect()
}
