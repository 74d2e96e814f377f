//! Golden tests of `tufa_client::tuf` against metadata written by the real Notary stack.
//!
//! `tests/data/notary/` holds files served by notary-server 0.7.0 (see its README): four
//! repositories saved as served, and two logging-proxy captures of the notary and docker CLIs
//! talking to the server (GET responses and multipart uploads). Each file is parsed, written
//! again and compared byte for byte with what the server sent; every signature is verified;
//! every snapshot and timestamp entry is checked against the bytes of the file it records.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use tufa_client::tuf::{
    verify_signature, Envelope, KeyId, KeyType, Metadata, PublicKey, RoleKeys, RoleName, Root,
    Sha256Digest, Signed, Snapshot, Targets, Timestamp, TufError,
};
use tufa_testkit::{data_dir, sample};

/// The saved repositories: one `<role>.json` per role, `targets_x.json` for `targets/x`.
const REPOS: [&str; 4] = [
    "demo",
    "demo2-docker-signer-add",
    "local-trust-ed25519",
    "reference-scenario",
];

/// The proxy captures: `NNN-METHOD-path.req` and `.resp` pairs.
const CAPTURES: [&str; 2] = ["wire", "wire-docker"];

/// Parses a file as the body type of `role` and writes it again.
fn rewrite(role: &RoleName, bytes: &[u8]) -> Vec<u8> {
    fn again<T: Metadata>(role: &RoleName, bytes: &[u8]) -> Vec<u8> {
        let file = Signed::<T>::from_slice(role, bytes).unwrap_or_else(|e| panic!("{e}"));
        // What is signed must be what the file embeds (no HTML escapes occur in the samples).
        assert_eq!(
            file.signed_bytes().unwrap(),
            embedded_signed(bytes),
            "{role}: canonical body differs from the signed bytes in the file"
        );
        file.to_bytes().unwrap()
    }
    match role.as_str() {
        "root" => again::<Root>(role, bytes),
        "snapshot" => again::<Snapshot>(role, bytes),
        "timestamp" => again::<Timestamp>(role, bytes),
        _ => again::<Targets>(role, bytes),
    }
}

/// The raw `signed` member of a file written by Go: between `{"signed":` and the last
/// `,"signatures":`.
fn embedded_signed(file: &[u8]) -> Vec<u8> {
    let start = b"{\"signed\":".len();
    let marker = b",\"signatures\":";
    let end = file
        .windows(marker.len())
        .rposition(|w| w == marker)
        .expect("no signatures member");
    file[start..end].to_vec()
}

/// Verifies every signature in `bytes` (the file of `role`) with `keys`, demanding that all
/// of them are valid and come from distinct keys.
fn verify_all(role: &RoleName, bytes: &[u8], keys: &RoleKeys) {
    let envelope = Envelope::from_slice(role, bytes).unwrap();
    let valid = envelope
        .verify(keys)
        .unwrap_or_else(|e| panic!("{role}: {e}"));
    assert_eq!(
        valid.len(),
        envelope.signatures().len(),
        "{role}: a signature did not verify"
    );
    // Go's verifier re-encodes the parsed body; for Notary's own files that is the file's body.
    assert_eq!(envelope.signed_bytes().unwrap(), embedded_signed(bytes));
}

#[test]
fn served_files_round_trip_byte_for_byte() {
    let mut checked = 0;
    for repo in REPOS {
        for (role, bytes) in sample(repo) {
            let again = rewrite(&role, &bytes);
            assert!(
                again == bytes,
                "{repo}/{role}: rewritten bytes differ\n served: {}\nwritten: {}",
                String::from_utf8_lossy(&bytes),
                String::from_utf8_lossy(&again)
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 22);
}

#[test]
fn every_signature_verifies_with_root_and_delegation_keys() {
    for repo in REPOS {
        let files = sample(repo);
        let root = Signed::<Root>::from_slice(&RoleName::ROOT, &files[&RoleName::ROOT]).unwrap();
        for (role, bytes) in &files {
            let keys = match role.parent() {
                None => root.signed.role_keys(role).unwrap(),
                Some(parent) => {
                    let parent_file =
                        Signed::<Targets>::from_slice(&parent, &files[&parent]).unwrap();
                    parent_file.signed.delegation_keys(role).unwrap()
                }
            };
            verify_all(role, bytes, &keys);
        }
    }
}

#[test]
fn local_signing_server_uses_ed25519() {
    let files = sample("local-trust-ed25519");
    let root = Signed::<Root>::from_slice(&RoleName::ROOT, &files[&RoleName::ROOT]).unwrap();
    for role in [RoleName::SNAPSHOT, RoleName::TIMESTAMP] {
        let keys = root.signed.role_keys(&role).unwrap();
        assert!(keys
            .keys()
            .values()
            .all(|k| *k.key_type() == KeyType::Ed25519));
        let file = Envelope::from_slice(&role, &files[&role]).unwrap();
        assert!(file
            .signatures()
            .iter()
            .all(|s| s.method.as_str() == "eddsa"));
    }
}

#[test]
fn snapshot_and_timestamp_record_the_served_bytes() {
    for repo in REPOS {
        let files = sample(repo);
        let snapshot =
            Signed::<Snapshot>::from_slice(&RoleName::SNAPSHOT, &files[&RoleName::SNAPSHOT])
                .unwrap();
        for (role, bytes) in &files {
            if *role == RoleName::SNAPSHOT || *role == RoleName::TIMESTAMP {
                continue;
            }
            snapshot
                .signed
                .check(role, bytes)
                .unwrap_or_else(|e| panic!("{repo}: {e}"));
        }
        // Every role the snapshot records was saved, so the loop above covered all entries.
        for role in snapshot.signed.meta.keys() {
            assert!(files.contains_key(role), "{repo}: no file for {role}");
        }
        let timestamp =
            Signed::<Timestamp>::from_slice(&RoleName::TIMESTAMP, &files[&RoleName::TIMESTAMP])
                .unwrap();
        timestamp.signed.check(&files[&RoleName::SNAPSHOT]).unwrap();
    }
}

#[test]
fn altered_files_fail_with_the_role_named() {
    let files = sample("demo");
    let root = Signed::<Root>::from_slice(&RoleName::ROOT, &files[&RoleName::ROOT]).unwrap();
    let keys = root.signed.role_keys(&RoleName::TARGETS).unwrap();
    let served = String::from_utf8(files[&RoleName::TARGETS].clone()).unwrap();

    // One more byte of target length: the signature no longer covers the body.
    let altered = served.replacen("\"length\":12", "\"length\":13", 1);
    let err = Envelope::from_slice(&RoleName::TARGETS, altered.as_bytes())
        .unwrap()
        .verify(&keys)
        .unwrap_err();
    assert!(matches!(
        err,
        TufError::ThresholdNotMet {
            valid: 0,
            threshold: 1,
            ..
        }
    ));
    let message = err.to_string();
    assert!(
        message.starts_with("targets.json has valid signatures from 0"),
        "{message}"
    );
    assert!(
        message.contains("does not match the signed bytes"),
        "{message}"
    );

    // Signed by the wrong role's key: the snapshot key is not a targets key.
    let snapshot_keys = root.signed.role_keys(&RoleName::SNAPSHOT).unwrap();
    let err = Envelope::from_slice(&RoleName::TARGETS, served.as_bytes())
        .unwrap()
        .verify(&snapshot_keys)
        .unwrap_err();
    assert!(err.to_string().contains("not a key of snapshot"), "{err}");

    // The snapshot notices a changed file even when its signature is intact.
    let snapshot =
        Signed::<Snapshot>::from_slice(&RoleName::SNAPSHOT, &files[&RoleName::SNAPSHOT]).unwrap();
    let err = snapshot
        .signed
        .check(&RoleName::TARGETS, altered.as_bytes())
        .unwrap_err();
    assert!(matches!(err, TufError::MetaMismatch { .. }), "{err}");
}

#[test]
fn key_ids_and_canonical_key_ids() {
    for repo in REPOS {
        let files = sample(repo);
        let root = Signed::<Root>::from_slice(&RoleName::ROOT, &files[&RoleName::ROOT]).unwrap();
        let mut keys = root.signed.keys.clone();
        for (role, bytes) in &files {
            if role.is_targets() {
                let targets = Signed::<Targets>::from_slice(role, bytes).unwrap();
                keys.extend(targets.signed.delegations.keys);
            }
        }
        for (id, key) in &keys {
            assert_eq!(key.id(), *id, "{repo}: key published under another ID");
            let canonical = key.canonical_id().unwrap();
            assert_eq!(canonical == *id, !key.key_type().is_x509(), "{repo}: {id}");
        }
    }

    // Known answers from the CLIs: root.json's certificate ID vs the private key file's name,
    // and a delegation certificate (real-stack.md §4.4, samples/reference-scenario/*.txt).
    let known = [
        ("demo", RoleName::ROOT, "32a4bc1053b4", "5af2455c"),
        ("demo", RoleName::TARGETS, "6d6a717f69d3", "5845038a"),
        (
            "reference-scenario",
            RoleName::ROOT,
            "5de29ffec23b",
            "713750c06309bd6ccd1e301d716f3bff07399bfe617e80689597b046e1ecf945",
        ),
    ];
    for (repo, role, tuf_id, canonical) in known {
        let files = sample(repo);
        let keys = if role == RoleName::ROOT {
            Signed::<Root>::from_slice(&role, &files[&role])
                .unwrap()
                .signed
                .keys
        } else {
            Signed::<Targets>::from_slice(&role, &files[&role])
                .unwrap()
                .signed
                .delegations
                .keys
        };
        let (_, key) = keys
            .iter()
            .find(|(id, _)| id.to_string().starts_with(tuf_id))
            .unwrap();
        assert_eq!(*key.key_type(), KeyType::EcdsaX509);
        assert!(key
            .canonical_id()
            .unwrap()
            .to_string()
            .starts_with(canonical));
        assert_eq!(key.certificates().unwrap().len(), 1);
    }
}

#[test]
fn target_hashes_match_what_the_clis_print() {
    // `docker trust inspect --pretty` shows tag admin at 9f44d46c…2888 (reference-scenario).
    let files = sample("reference-scenario");
    let targets =
        Signed::<Targets>::from_slice(&RoleName::TARGETS, &files[&RoleName::TARGETS]).unwrap();
    let admin = &targets.signed.targets["admin"];
    assert_eq!(
        admin.hashes.sha256.unwrap(),
        "9f44d46c89f5315968cdc56713b7371a745c640e8e94dc02f0a15d2887082888"
            .parse::<Sha256Digest>()
            .unwrap()
    );
    assert_eq!(admin.length, 423);
    let releases = targets.signed.delegation(&RoleName::RELEASES).unwrap();
    assert_eq!(releases.paths, vec![String::new()]);
    assert_eq!(releases.keyids.len(), 2);
}

/// One HTTP exchange's metadata: the role and the exact body bytes.
struct Captured {
    what: String,
    role: RoleName,
    body: Vec<u8>,
}

/// The role named by a `/_trust/tuf/` path: `root.json`, `snapshot.<sha256>.json`, …
fn role_of_path(path: &str) -> Option<(RoleName, Option<Sha256Digest>)> {
    let file = path.split_once("/_trust/tuf/")?.1.strip_suffix(".json")?;
    match file.rsplit_once('.') {
        Some((role, hash)) if hash.len() == 64 => {
            Some((RoleName::new(role).ok()?, Some(hash.parse().ok()?)))
        }
        _ => Some((RoleName::new(file).ok()?, None)),
    }
}

/// Splits a capture file into its first line, headers and body.
fn split_http(text: &[u8]) -> (String, Vec<(String, String)>, Vec<u8>) {
    let end = text
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(text.len());
    let head = String::from_utf8(text[..end].to_vec()).unwrap();
    let body = text.get(end + 2..).unwrap_or_default().to_vec();
    let mut lines = head.lines();
    let first = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    (first, headers, body)
}

/// Every metadata file in a capture (responses to GETs and parts of uploads), and every
/// `timestamp.key`/`snapshot.key` response.
fn load_capture(name: &str) -> (Vec<Captured>, Vec<PublicKey>) {
    let dir = data_dir(&format!("notary/{name}"));
    let mut names: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut files = Vec::new();
    let mut server_keys = Vec::new();
    for req_path in names.iter().filter(|p| p.extension().unwrap() == "req") {
        let resp_path = req_path.with_extension("resp");
        let (request_line, req_headers, req_body) = split_http(&fs::read(req_path).unwrap());
        let (status, resp_headers, resp_body) = split_http(&fs::read(&resp_path).unwrap());
        let what = req_path.file_name().unwrap().to_string_lossy().into_owned();
        let path = request_line.split(' ').nth(1).unwrap().to_owned();
        if let Some(len) = resp_headers.iter().find(|(k, _)| k == "content-length") {
            assert_eq!(
                len.1.parse::<usize>().unwrap(),
                resp_body.len(),
                "{what}: capture truncated"
            );
        }
        if status != "200 OK" {
            continue;
        }
        if let Some(role) = path.strip_suffix(".key").and_then(|p| p.rsplit('/').next()) {
            let role = RoleName::new(role).unwrap();
            server_keys.push(PublicKey::from_json(&role, &resp_body).unwrap());
        } else if request_line.starts_with("GET ") {
            if let Some((role, hash)) = role_of_path(&path) {
                if let Some(hash) = hash {
                    assert_eq!(
                        Sha256Digest::of(&resp_body),
                        hash,
                        "{what}: body is not the file asked for"
                    );
                }
                files.push(Captured {
                    what,
                    role,
                    body: resp_body,
                });
            }
        } else if request_line.starts_with("POST ") && path.ends_with("/_trust/tuf/") {
            let content_type = &req_headers
                .iter()
                .find(|(k, _)| k == "content-type")
                .unwrap()
                .1;
            let boundary = content_type.split_once("boundary=").unwrap().1;
            let delimiter = format!("--{boundary}");
            let text = String::from_utf8(req_body).unwrap();
            for part in text.split(delimiter.as_str()).skip(1) {
                let Some((head, body)) = part.trim_start_matches('\n').split_once("\n\n") else {
                    continue; // the closing `--`
                };
                let filename = head
                    .split_once("filename=\"")
                    .unwrap()
                    .1
                    .split('"')
                    .next()
                    .unwrap();
                files.push(Captured {
                    what: format!("{what} part {filename}"),
                    role: RoleName::new(filename).unwrap(),
                    body: body.strip_suffix('\n').unwrap_or(body).as_bytes().to_vec(),
                });
            }
        }
    }
    (files, server_keys)
}

#[test]
fn captured_exchanges_round_trip_and_verify() {
    let mut counted = 0;
    for capture in CAPTURES {
        let (files, server_keys) = load_capture(capture);
        // Every key any root or targets file in the capture publishes, by TUF key ID.
        let mut pool: BTreeMap<KeyId, PublicKey> = BTreeMap::new();
        for file in &files {
            if file.role == RoleName::ROOT {
                pool.extend(
                    Signed::<Root>::from_slice(&file.role, &file.body)
                        .unwrap()
                        .signed
                        .keys,
                );
            } else if file.role.is_targets() {
                let targets = Signed::<Targets>::from_slice(&file.role, &file.body).unwrap();
                pool.extend(targets.signed.delegations.keys);
            }
        }
        for key in &server_keys {
            assert!(
                pool.contains_key(&key.id()),
                "{capture}: server key {} in no root",
                key.id()
            );
        }
        for file in &files {
            let again = rewrite(&file.role, &file.body);
            assert!(again == file.body, "{}: rewritten bytes differ", file.what);
            let envelope = Envelope::from_slice(&file.role, &file.body).unwrap();
            let msg = envelope.signed_bytes().unwrap();
            assert!(!envelope.signatures().is_empty(), "{}", file.what);
            for sig in envelope.signatures() {
                let key = pool
                    .get(&sig.key_id)
                    .unwrap_or_else(|| panic!("{}: unknown key {}", file.what, sig.key_id));
                verify_signature(key, &sig.method, &msg, &sig.sig)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.what));
            }
            counted += 1;
        }
    }
    assert_eq!(counted, 50, "captured metadata files");
}

#[test]
fn rsa_signatures_made_by_openssl_verify() {
    let dir = data_dir("rsa");
    let keys = [
        PublicKey::new(KeyType::Rsa, fs::read(dir.join("spki.der")).unwrap()),
        PublicKey::new(KeyType::RsaX509, fs::read(dir.join("cert.pem")).unwrap()),
    ];
    for (key, file) in keys
        .iter()
        .zip(["targets-rsa.json", "targets-rsa-x509.json"])
    {
        let bytes = fs::read(dir.join(file)).unwrap();
        let map = BTreeMap::from([(key.id(), key.clone())]);
        let role_keys =
            RoleKeys::new(RoleName::TARGETS, &RoleName::ROOT, &[key.id()], &map, 1).unwrap();
        let envelope = Envelope::from_slice(&RoleName::TARGETS, &bytes).unwrap();
        let methods: Vec<&str> = envelope
            .signatures()
            .iter()
            .map(|s| s.method.as_str())
            .collect();
        assert_eq!(methods, ["rsapss", "rsapkcs1v15"]);
        let msg = envelope.signed_bytes().unwrap();
        for sig in envelope.signatures() {
            verify_signature(key, &sig.method, &msg, &sig.sig)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            verify_signature(key, &sig.method, b"other bytes", &sig.sig).unwrap_err();
        }
        assert_eq!(envelope.verify(&role_keys).unwrap(), vec![key.id()]);
        assert_eq!(rewrite(&RoleName::TARGETS, &bytes), bytes);
    }
    // The x509 key's canonical ID is the bare key's ID.
    assert_eq!(keys[1].canonical_id().unwrap(), keys[0].id());
}
