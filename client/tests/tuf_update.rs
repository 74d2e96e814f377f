//! The client update against repositories served from memory: the real notary-server samples,
//! and repositories signed here with software P-256 keys, honest and hostile.
//!
//! Every hostile case checks that the update is refused with an error naming the role and the
//! check, and that the trust cache is byte-for-byte what it was before.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::EncodePublicKey as _;
use serde_json::Value;
use time::OffsetDateTime;
use tufa_client::tuf::{
    canonical, update, Delegation, Expires, FileMeta, Gun, KeyId, Metadata, PublicKey, RemoteError,
    RemoteStore, RoleName, Root, RootRole, RootRoles, Sha256Digest, Signature, SignatureMethod,
    Signed, Snapshot, Targets, Timestamp, TrustCache, TrustPinning, TufError, UpdateError,
    UpdateOptions, UpdateWarning, VerifiedRepo,
};

// ---------------------------------------------------------------------------------------------
// An in-memory notary server.

/// One repository's files as notary-server serves them: current roles, every version of root,
/// and every file ever published by its SHA-256.
#[derive(Default)]
struct MemStore {
    current: Mutex<BTreeMap<RoleName, Vec<u8>>>,
    by_hash: Mutex<HashMap<(RoleName, Sha256Digest), Vec<u8>>>,
    root_versions: Mutex<BTreeMap<u64, Vec<u8>>>,
    requests: Mutex<Vec<String>>,
}

impl MemStore {
    fn serving(files: &Files) -> Self {
        let store = Self::default();
        store.serve(files);
        store
    }

    /// Publishes `files`: each becomes current and fetchable by hash; roots by version too.
    fn serve(&self, files: &Files) {
        for (role, bytes) in files {
            self.current
                .lock()
                .unwrap()
                .insert(role.clone(), bytes.clone());
            self.by_hash
                .lock()
                .unwrap()
                .insert((role.clone(), Sha256Digest::of(bytes)), bytes.clone());
            if *role == RoleName::ROOT {
                let version = Signed::<Root>::from_slice(role, bytes)
                    .unwrap()
                    .signed
                    .version;
                self.root_versions
                    .lock()
                    .unwrap()
                    .insert(version, bytes.clone());
            }
        }
    }

    /// Answers `<role>.<sha256>.json` with other bytes (a hostile or broken server).
    fn serve_by_hash(&self, role: &RoleName, sha256: Sha256Digest, bytes: Vec<u8>) {
        self.by_hash
            .lock()
            .unwrap()
            .insert((role.clone(), sha256), bytes);
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn log(&self, what: String) {
        self.requests.lock().unwrap().push(what);
    }
}

// Like a careless transport, these return whole bodies whatever `max_len` says, so the update's
// own length checks are what is tested.
impl RemoteStore for MemStore {
    async fn role(&self, role: &RoleName, _max_len: u64) -> Result<Option<Vec<u8>>, RemoteError> {
        self.log(format!("{role}.json"));
        Ok(self.current.lock().unwrap().get(role).cloned())
    }

    async fn role_by_hash(
        &self,
        role: &RoleName,
        sha256: &Sha256Digest,
        _max_len: u64,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        self.log(format!("{role}.{sha256}.json"));
        Ok(self
            .by_hash
            .lock()
            .unwrap()
            .get(&(role.clone(), *sha256))
            .cloned())
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
        Ok(self.root_versions.lock().unwrap().get(&version).cloned())
    }
}

type Files = BTreeMap<RoleName, Vec<u8>>;

// ---------------------------------------------------------------------------------------------
// Keys, certificates and signing.

/// A software P-256 key and the TUF public key (bare `ecdsa`, or an `ecdsa-x509` certificate).
struct Signer {
    signing: p256::ecdsa::SigningKey,
    key: PublicKey,
}

impl Signer {
    fn ecdsa(seed: u8) -> Self {
        let signing = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
        let spki = signing.verifying_key().to_public_key_der().unwrap();
        Self {
            key: PublicKey::ecdsa(spki.as_bytes().to_vec()),
            signing,
        }
    }

    /// A root key: a self-signed certificate as Notary makes one, for `cn`.
    fn root(seed: u8, cn: &str) -> Self {
        Self::with_cert(seed, &CertSpec::notary(cn))
    }

    fn with_cert(seed: u8, spec: &CertSpec) -> Self {
        let signing = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
        let der = cert_der(&signing, spec, &signing, &spec.cn);
        Self {
            key: PublicKey::ecdsa_x509(pem_cert(&der).into_bytes()),
            signing,
        }
    }

    fn id(&self) -> KeyId {
        self.key.id()
    }

    fn signature(&self, msg: &[u8]) -> Signature {
        let sig: p256::ecdsa::Signature = self.signing.sign(msg);
        Signature {
            key_id: self.id(),
            method: SignatureMethod::Ecdsa,
            sig: sig.to_bytes().to_vec(),
        }
    }
}

/// Signs `body` with every signer and returns the file bytes.
fn sign<T: Metadata>(body: T, signers: &[&Signer]) -> Vec<u8> {
    let mut file = Signed::new(body);
    let msg = file.signed_bytes().unwrap();
    file.signatures = signers.iter().map(|s| s.signature(&msg)).collect();
    file.to_bytes().unwrap()
}

/// Signs an arbitrary `signed` value (for bodies the typed model refuses to write).
fn sign_value(signed: &Value, signers: &[&Signer]) -> Vec<u8> {
    let msg = canonical::to_canonical(signed).unwrap();
    let sigs: Vec<String> = signers
        .iter()
        .map(|s| {
            let sig = s.signature(&msg);
            format!(
                r#"{{"keyid":"{}","method":"ecdsa","sig":"{}"}}"#,
                sig.key_id,
                base64::engine::general_purpose::STANDARD.encode(&sig.sig)
            )
        })
        .collect();
    format!(
        r#"{{"signed":{},"signatures":[{}]}}"#,
        String::from_utf8(msg).unwrap(),
        sigs.join(",")
    )
    .into_bytes()
}

/// What goes into a test certificate.
struct CertSpec {
    cn: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    ca: bool,
    code_signing_eku: bool,
    sig_alg: &'static str,
}

impl CertSpec {
    /// What Notary generates: CA:FALSE, EKU codeSigning, ECDSA-SHA256, ten years from now.
    fn notary(cn: &str) -> Self {
        let now = now();
        Self {
            cn: cn.to_owned(),
            not_before: now - time::Duration::minutes(5),
            not_after: now + time::Duration::days(3650),
            ca: false,
            code_signing_eku: true,
            sig_alg: "1.2.840.10045.4.3.2",
        }
    }
}

/// A DER X.509 v3 certificate for `subject_key` per `spec`, signed by `issuer_key` as `issuer`.
fn cert_der(
    subject_key: &p256::ecdsa::SigningKey,
    spec: &CertSpec,
    issuer_key: &p256::ecdsa::SigningKey,
    issuer: &str,
) -> Vec<u8> {
    let alg = der(0x30, &oid(spec.sig_alg));
    let mut extensions = Vec::new();
    let bc = if spec.ca {
        der(0x30, &der(0x01, &[0xff]))
    } else {
        der(0x30, &[])
    };
    extensions.extend(der(
        0x30,
        &[oid("2.5.29.19"), der(0x01, &[0xff]), der(0x04, &bc)].concat(),
    ));
    if spec.code_signing_eku {
        let eku = der(0x30, &oid("1.3.6.1.5.5.7.3.3"));
        extensions.extend(der(0x30, &[oid("2.5.29.37"), der(0x04, &eku)].concat()));
    }
    let spki = subject_key
        .verifying_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    let tbs = der(
        0x30,
        &[
            der(0xa0, &der(0x02, &[2])),
            der(0x02, &[0x01, spec.cn.len() as u8]),
            alg.clone(),
            name(issuer),
            der(
                0x30,
                &[time(spec.not_before), time(spec.not_after)].concat(),
            ),
            name(&spec.cn),
            spki,
            der(0xa3, &der(0x30, &extensions)),
        ]
        .concat(),
    );
    let sig: p256::ecdsa::Signature = issuer_key.sign(&tbs);
    let mut bits = vec![0];
    bits.extend_from_slice(sig.to_der().as_bytes());
    der(0x30, &[tbs, alg, der(0x03, &bits)].concat())
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').map(|a| a.parse().unwrap()).collect();
    let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &arc in &arcs[2..] {
        let mut chunk = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            chunk.push((rest & 0x7f) as u8 | 0x80);
            rest >>= 7;
        }
        chunk.reverse();
        body.extend(chunk);
    }
    der(0x06, &body)
}

/// `CN=<cn>` as a UTF8String.
fn name(cn: &str) -> Vec<u8> {
    let atv = der(0x30, &[oid("2.5.4.3"), der(0x0c, cn.as_bytes())].concat());
    der(0x30, &der(0x31, &atv))
}

/// UTCTime before 2050, GeneralizedTime after, as RFC 5280 wants.
fn time(t: OffsetDateTime) -> Vec<u8> {
    let tail = format!(
        "{:02}{:02}{:02}{:02}{:02}Z",
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if t.year() < 2050 {
        der(0x17, format!("{:02}{tail}", t.year() % 100).as_bytes())
    } else {
        der(0x18, format!("{:04}{tail}", t.year()).as_bytes())
    }
}

fn pem_cert(der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der.to_vec()), config)
}

// ---------------------------------------------------------------------------------------------
// A repository signed here.

/// One "now" per test binary, so certificates made from the same seed are identical.
fn now() -> OffsetDateTime {
    static NOW: OnceLock<OffsetDateTime> = OnceLock::new();
    *NOW.get_or_init(|| OffsetDateTime::now_utc().replace_nanosecond(0).unwrap())
}

fn in_days(days: i64) -> Expires {
    Expires::new(now() + time::Duration::days(days)).unwrap()
}

/// A repository like docker makes: root (x509), targets with `targets/releases`, server-side
/// snapshot and timestamp keys. Bodies are public so tests can change them before `build`.
struct Fixture {
    gun: Gun,
    root_key: Signer,
    targets_key: Signer,
    snapshot_key: Signer,
    timestamp_key: Signer,
    releases_key: Signer,
    root: Root,
    targets: Targets,
    releases: Targets,
    snapshot_version: u64,
    timestamp_version: u64,
    timestamp_expires: Expires,
}

const GUN: &str = "127.0.0.1:5000/dct/app";

impl Fixture {
    fn new() -> Self {
        let gun: Gun = GUN.parse().unwrap();
        let root_key = Signer::root(1, GUN);
        let targets_key = Signer::ecdsa(2);
        let snapshot_key = Signer::ecdsa(3);
        let timestamp_key = Signer::ecdsa(4);
        let releases_key = Signer::ecdsa(5);
        let root = root_body(1, &[&root_key], &targets_key, &snapshot_key, &timestamp_key);
        let mut targets = Targets::new(1, in_days(3 * 365));
        targets
            .delegations
            .keys
            .insert(releases_key.id(), releases_key.key.clone());
        targets.delegations.roles.push(Delegation {
            name: RoleName::RELEASES,
            keyids: vec![releases_key.id()],
            threshold: 1,
            paths: vec![String::new()],
        });
        targets.targets.insert("admin".into(), target(b"admin"));
        let mut releases = Targets::new(1, in_days(3 * 365));
        releases.targets.insert("v1".into(), target(b"v1"));
        Self {
            gun,
            root_key,
            targets_key,
            snapshot_key,
            timestamp_key,
            releases_key,
            root,
            targets,
            releases,
            snapshot_version: 1,
            timestamp_version: 1,
            timestamp_expires: in_days(14),
        }
    }

    /// Signs every role with its key, snapshot over the files, timestamp over the snapshot.
    fn build(&self) -> Files {
        let mut files = Files::new();
        files.insert(RoleName::ROOT, sign(self.root.clone(), &[&self.root_key]));
        files.insert(
            RoleName::TARGETS,
            sign(self.targets.clone(), &[&self.targets_key]),
        );
        files.insert(
            RoleName::RELEASES,
            sign(self.releases.clone(), &[&self.releases_key]),
        );
        self.resnapshot(&mut files, |_| {});
        files
    }

    /// Re-signs snapshot (changed by `edit`) and timestamp over the files as they are now.
    fn resnapshot(&self, files: &mut Files, edit: impl FnOnce(&mut Snapshot)) {
        let mut snapshot = Snapshot {
            version: self.snapshot_version,
            expires: in_days(3 * 365),
            meta: files
                .iter()
                .filter(|(role, _)| **role != RoleName::SNAPSHOT && **role != RoleName::TIMESTAMP)
                .map(|(role, bytes)| (role.clone(), FileMeta::of_metadata(bytes)))
                .collect(),
        };
        edit(&mut snapshot);
        let snapshot = sign(snapshot, &[&self.snapshot_key]);
        let timestamp = Timestamp {
            version: self.timestamp_version,
            expires: self.timestamp_expires,
            snapshot: FileMeta::of_metadata(&snapshot),
        };
        files.insert(RoleName::TIMESTAMP, sign(timestamp, &[&self.timestamp_key]));
        files.insert(RoleName::SNAPSHOT, snapshot);
    }
}

fn root_body(
    version: u64,
    root_keys: &[&Signer],
    targets: &Signer,
    snapshot: &Signer,
    timestamp: &Signer,
) -> Root {
    let mut keys = BTreeMap::new();
    for k in root_keys.iter().chain([&targets, &snapshot, &timestamp]) {
        keys.insert(k.id(), k.key.clone());
    }
    Root {
        version,
        expires: in_days(3650),
        consistent_snapshot: false,
        keys,
        roles: RootRoles {
            root: RootRole {
                keyids: root_keys.iter().map(|k| k.id()).collect(),
                threshold: 1,
            },
            targets: RootRole::single(targets.id()),
            snapshot: RootRole::single(snapshot.id()),
            timestamp: RootRole::single(timestamp.id()),
        },
    }
}

fn target(content: &[u8]) -> FileMeta {
    FileMeta::of_target(content.len() as u64, Sha256Digest::of(content))
}

// ---------------------------------------------------------------------------------------------
// Helpers for what a test checks.

/// A fresh trust directory.
fn trust_dir() -> (tempfile::TempDir, TrustCache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = TrustCache::new(dir.path());
    (dir, cache)
}

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(tree(&path));
        } else {
            out.insert(path.clone(), fs::read(&path).unwrap());
        }
    }
    out
}

async fn run(store: &MemStore, cache: &TrustCache, gun: &Gun) -> Result<VerifiedRepo, UpdateError> {
    update(store, cache, gun, &UpdateOptions::at(now())).await
}

/// Runs an update that must fail, checks the cache did not change, and returns the error.
async fn refused(store: &MemStore, cache: &TrustCache, gun: &Gun) -> UpdateError {
    let before = tree(cache.trust_dir());
    let err = run(store, cache, gun).await.unwrap_err();
    assert_eq!(
        tree(cache.trust_dir()),
        before,
        "the cache changed on a refused update ({err})"
    );
    err
}

/// Asserts the error's text names `role` and contains `check`.
fn names(err: &UpdateError, role: &str, check: &str) {
    let text = err.to_string();
    assert!(text.contains(role), "role {role} not named: {text}");
    assert!(text.contains(check), "check {check:?} not named: {text}");
}

fn role_versions(files: &Files) -> Vec<(String, u64)> {
    files
        .iter()
        .map(|(role, bytes)| {
            let v: Value = serde_json::from_slice(bytes).unwrap();
            (role.to_string(), v["signed"]["version"].as_u64().unwrap())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The real notary-server samples.

fn sample(name: &str) -> Files {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/notary")
        .join(name);
    let mut files = Files::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let role = match stem.strip_prefix("targets_") {
            Some(child) => format!("targets/{child}"),
            None => stem.to_owned(),
        };
        files.insert(RoleName::new(&role).unwrap(), fs::read(&path).unwrap());
    }
    files
}

/// Just after the samples were made (their root certificates start at 2026-11-22T04:0x).
fn sample_time() -> OffsetDateTime {
    Expires::parse("2026-11-22T05:00:00Z").unwrap().time()
}

fn entries(repo: &VerifiedRepo, roles: Option<&[RoleName]>) -> Vec<(String, String)> {
    repo.targets(roles)
        .into_iter()
        .map(|t| (t.name, t.role.to_string()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[tokio::test]
async fn real_samples_verify_and_are_cached_as_served() {
    let cases = [
        ("demo", "localhost:5000/demo"),
        ("demo2-docker-signer-add", "localhost:5000/demo2"),
        ("local-trust-ed25519", "localhost:5000/local"),
        ("reference-scenario", "127.0.0.1:5000/dct/app"),
    ];
    for (name, gun) in cases {
        let gun: Gun = gun.parse().unwrap();
        let files = sample(name);
        let store = MemStore::serving(&files);
        let (_dir, cache) = trust_dir();
        let options = UpdateOptions::at(sample_time());
        let repo = update(&store, &cache, &gun, &options)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(repo.warnings().is_empty(), "{name}: {:?}", repo.warnings());
        // Every role is cached byte for byte as served, at Notary's paths.
        for (role, bytes) in &files {
            assert_eq!(
                &fs::read(cache.path(&gun, role)).unwrap(),
                bytes,
                "{name}: {role}"
            );
        }
        // A second update reads the same, writes nothing and fetches snapshot and targets
        // from the cache (Notary's tryLoadCacheThenRemote).
        let before = tree(cache.trust_dir());
        let first_requests = store.requests().len();
        let again = update(&store, &cache, &gun, &options).await.unwrap();
        assert_eq!(tree(cache.trust_dir()), before, "{name}");
        assert_eq!(
            store.requests()[first_requests..],
            ["root.json".to_owned(), "timestamp.json".to_owned()],
            "{name}"
        );
        assert_eq!(again.targets(None), repo.targets(None), "{name}");
    }
}

#[tokio::test]
async fn reference_scenario_resolves_as_notary_and_docker() {
    let gun: Gun = "127.0.0.1:5000/dct/app".parse().unwrap();
    let store = MemStore::serving(&sample("reference-scenario"));
    let (_dir, cache) = trust_dir();
    let repo = update(&store, &cache, &gun, &UpdateOptions::at(sample_time()))
        .await
        .unwrap();
    // Downloads in Notary's order: delegations pre-order in the parent's array order.
    let fetched: Vec<String> = store
        .requests()
        .iter()
        .map(|r| r.split('.').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        fetched,
        [
            "root",
            "timestamp",
            "snapshot",
            "targets",
            "targets/alice",
            "targets/releases",
            "targets/bob"
        ]
    );
    assert_eq!(repo.root().signed.version, 1);
    assert_eq!(repo.timestamp().signed.version, 4);
    assert_eq!(repo.snapshot().signed.version, 4);
    assert_eq!(repo.targets_role().signed.version, 4);
    let names: Vec<&str> = repo.delegations().iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["targets/alice", "targets/releases", "targets/bob"]);

    // `notary list`: breadth-first over the whole tree, first role wins.
    assert_eq!(
        entries(&repo, None),
        pairs(&[
            ("admin", "targets"),
            ("v1", "targets/alice"),
            ("v2", "targets/alice")
        ])
    );
    // `notary list -r targets/releases -r targets` as docker lists.
    assert_eq!(
        entries(&repo, Some(&[RoleName::RELEASES, RoleName::TARGETS])),
        pairs(&[
            ("admin", "targets"),
            ("v1", "targets/releases"),
            ("v2", "targets/releases")
        ])
    );
    // `docker pull`: releases before targets, and only those two roles count.
    let v1 = repo.docker_target("v1").unwrap();
    assert_eq!(v1.role, RoleName::RELEASES);
    assert_eq!(v1.length, 423);
    assert!(v1.sha256.is_some());
    assert_eq!(repo.docker_target("admin").unwrap().role, RoleName::TARGETS);
    assert_eq!(repo.docker_target("nope"), None);
    assert_eq!(
        repo.target("v2", None).unwrap().role.as_str(),
        "targets/alice"
    );
    assert_eq!(repo.all_targets().len(), 7);
}

#[tokio::test]
async fn real_sample_with_an_expired_timestamp_is_refused() {
    let gun: Gun = "localhost:5000/demo".parse().unwrap();
    let store = MemStore::serving(&sample("demo"));
    let (_dir, cache) = trust_dir();
    let late = Expires::parse("2026-12-07T00:00:00Z").unwrap().time();
    let err = update(&store, &cache, &gun, &UpdateOptions::at(late))
        .await
        .unwrap_err();
    assert!(matches!(&err, UpdateError::Expired { role, .. } if *role == RoleName::TIMESTAMP));
    names(
        &err,
        "timestamp.json",
        "expired at 2026-12-06T04:01:31.595796046Z",
    );
    assert!(tree(cache.trust_dir()).is_empty());
}

#[tokio::test]
async fn real_sample_for_another_gun_is_refused() {
    // demo's root certificate is for localhost:5000/demo.
    let gun: Gun = "localhost:5000/evil".parse().unwrap();
    let store = MemStore::serving(&sample("demo"));
    let (_dir, cache) = trust_dir();
    let err = update(&store, &cache, &gun, &UpdateOptions::at(sample_time()))
        .await
        .unwrap_err();
    names(&err, "root.json", "CN \"localhost:5000/demo\"");
    assert!(tree(cache.trust_dir()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Repositories signed here: the honest path.

#[tokio::test]
async fn a_fresh_repository_verifies_and_lookups_follow_docker() {
    let fx = Fixture::new();
    let store = MemStore::serving(&fx.build());
    let (_dir, cache) = trust_dir();
    let repo = run(&store, &cache, &fx.gun).await.unwrap();
    assert_eq!(
        entries(&repo, None),
        pairs(&[("admin", "targets"), ("v1", "targets/releases")])
    );
    let v1 = repo.docker_target("v1").unwrap();
    assert_eq!(v1.sha256, Some(Sha256Digest::of(b"v1")));
    assert_eq!(v1.length, 2);
    assert!(cache.path(&fx.gun, &RoleName::RELEASES).is_file());
}

#[tokio::test]
async fn root_chain_walk_across_two_rotations() {
    let mut fx = Fixture::new();
    let store = MemStore::serving(&fx.build());
    let (_dir, cache) = trust_dir();
    run(&store, &cache, &fx.gun).await.unwrap();

    // v2: new root key B, signed by A (old) and B; v3: key C, signed by B and C.
    let a = std::mem::replace(&mut fx.root_key, Signer::root(11, GUN));
    let b_root = root_body(
        2,
        &[&fx.root_key],
        &fx.targets_key,
        &fx.snapshot_key,
        &fx.timestamp_key,
    );
    let mut v2 = Files::new();
    v2.insert(RoleName::ROOT, sign(b_root, &[&a, &fx.root_key]));
    store.serve(&v2);
    let b = std::mem::replace(&mut fx.root_key, Signer::root(12, GUN));
    fx.root = root_body(
        3,
        &[&fx.root_key],
        &fx.targets_key,
        &fx.snapshot_key,
        &fx.timestamp_key,
    );
    // Notary keeps old root certificates in `keys` after a rotation.
    fx.root.keys.insert(a.id(), a.key.clone());
    fx.snapshot_version = 2;
    fx.timestamp_version = 2;
    let mut files = fx.build();
    files.insert(RoleName::ROOT, sign(fx.root.clone(), &[&b, &fx.root_key]));
    fx.resnapshot(&mut files, |_| {});
    store.serve(&files);

    let repo = run(&store, &cache, &fx.gun).await.unwrap();
    assert_eq!(repo.root().signed.version, 3);
    assert!(store.requests().contains(&"2.root.json".to_owned()));
    assert_eq!(
        fs::read(cache.path(&fx.gun, &RoleName::ROOT)).unwrap(),
        files[&RoleName::ROOT]
    );
}

#[tokio::test]
async fn a_missing_intermediate_root_stops_the_walk() {
    let mut fx = Fixture::new();
    let store = MemStore::serving(&fx.build());
    let (_dir, cache) = trust_dir();
    run(&store, &cache, &fx.gun).await.unwrap();
    // Root jumps from v1 to v3 with no 2.root.json on the server.
    let a = std::mem::replace(&mut fx.root_key, Signer::root(11, GUN));
    fx.root = root_body(
        3,
        &[&fx.root_key],
        &fx.targets_key,
        &fx.snapshot_key,
        &fx.timestamp_key,
    );
    fx.snapshot_version = 2;
    fx.timestamp_version = 2;
    let mut files = fx.build();
    files.insert(RoleName::ROOT, sign(fx.root.clone(), &[&a, &fx.root_key]));
    fx.resnapshot(&mut files, |_| {});
    store.serve(&files);
    let err = refused(&store, &cache, &fx.gun).await;
    names(&err, "2.root.json", "no 2.root.json");
}

// ---------------------------------------------------------------------------------------------
// Hostile servers.

/// A trust directory holding the verified `files`.
async fn cached(files: &Files, gun: &Gun) -> (tempfile::TempDir, TrustCache) {
    let (dir, cache) = trust_dir();
    run(&MemStore::serving(files), &cache, gun).await.unwrap();
    (dir, cache)
}

#[tokio::test]
async fn rolled_back_timestamp_is_refused() {
    let mut fx = Fixture::new();
    fx.timestamp_version = 5;
    let (_dir, cache) = cached(&fx.build(), &fx.gun).await;
    fx.timestamp_version = 4;
    let err = refused(&MemStore::serving(&fx.build()), &cache, &fx.gun).await;
    assert!(
        matches!(&err, UpdateError::Rollback { role, found: 4, trusted: 5, .. } if *role == RoleName::TIMESTAMP)
    );
    names(&err, "timestamp.json", "version is lower than expected");
}

#[tokio::test]
async fn rolled_back_snapshot_is_refused() {
    let mut fx = Fixture::new();
    fx.snapshot_version = 3;
    let (_dir, cache) = cached(&fx.build(), &fx.gun).await;
    fx.snapshot_version = 2;
    fx.timestamp_version = 2;
    let err = refused(&MemStore::serving(&fx.build()), &cache, &fx.gun).await;
    assert!(
        matches!(&err, UpdateError::Rollback { role, found: 2, trusted: 3, .. } if *role == RoleName::SNAPSHOT)
    );
    names(&err, "snapshot.json", "rollback");
}

#[tokio::test]
async fn rolled_back_targets_is_refused() {
    let mut fx = Fixture::new();
    fx.targets.version = 7;
    let (_dir, cache) = cached(&fx.build(), &fx.gun).await;
    fx.targets.version = 6;
    fx.snapshot_version = 2;
    fx.timestamp_version = 2;
    let old = fx.build();
    assert!(role_versions(&old).contains(&("targets".into(), 6)));
    let err = refused(&MemStore::serving(&old), &cache, &fx.gun).await;
    assert!(
        matches!(&err, UpdateError::Rollback { role, found: 6, trusted: 7, .. } if *role == RoleName::TARGETS)
    );
    names(&err, "targets.json", "older than version 7");
}

#[tokio::test]
async fn expired_timestamp_is_refused() {
    let mut fx = Fixture::new();
    let (_dir, cache) = cached(&fx.build(), &fx.gun).await;
    fx.timestamp_version = 2;
    fx.timestamp_expires = Expires::new(now() - time::Duration::hours(1)).unwrap();
    let err = refused(&MemStore::serving(&fx.build()), &cache, &fx.gun).await;
    assert!(matches!(&err, UpdateError::Expired { role, .. } if *role == RoleName::TIMESTAMP));
    names(&err, "timestamp.json", "freeze attack");
}

#[tokio::test]
async fn expired_targets_is_refused() {
    let mut fx = Fixture::new();
    fx.targets.expires = Expires::new(now() - time::Duration::hours(1)).unwrap();
    let store = MemStore::serving(&fx.build());
    let (_dir, cache) = trust_dir();
    let err = refused(&store, &cache, &fx.gun).await;
    assert!(matches!(&err, UpdateError::Expired { role, .. } if *role == RoleName::TARGETS));
}

#[tokio::test]
async fn snapshot_with_the_wrong_targets_hash_is_refused() {
    let fx = Fixture::new();
    let mut files = fx.build();
    fx.resnapshot(&mut files, |s| {
        let meta = s.meta.get_mut(&RoleName::TARGETS).unwrap();
        meta.hashes.sha256 = Some(Sha256Digest::of(b"something else"));
    });
    // The server has a file under that hash: the genuine targets bytes.
    let store = MemStore::serving(&files);
    store.serve_by_hash(
        &RoleName::TARGETS,
        Sha256Digest::of(b"something else"),
        files[&RoleName::TARGETS].clone(),
    );
    let (_dir, cache) = trust_dir();
    let err = refused(&store, &cache, &fx.gun).await;
    assert!(matches!(
        &err,
        UpdateError::Tuf(TufError::MetaMismatch { role, recorded_in, .. })
            if *role == RoleName::TARGETS && *recorded_in == RoleName::SNAPSHOT
    ));
    names(
        &err,
        "targets.json does not match what snapshot.json records",
        "sha256",
    );
}

#[tokio::test]
async fn signature_by_an_unknown_key_only_is_refused() {
    let fx = Fixture::new();
    let mut files = fx.build();
    files.insert(
        RoleName::TARGETS,
        sign(fx.targets.clone(), &[&Signer::ecdsa(99)]),
    );
    fx.resnapshot(&mut files, |_| {});
    let store = MemStore::serving(&files);
    let (_dir, cache) = trust_dir();
    let err = refused(&store, &cache, &fx.gun).await;
    assert!(matches!(
        &err,
        UpdateError::Tuf(TufError::ThresholdNotMet { role, valid: 0, .. }) if *role == RoleName::TARGETS
    ));
    names(&err, "targets.json", "not a key of targets");
}

#[tokio::test]
async fn threshold_two_with_one_signature_is_refused() {
    let mut fx = Fixture::new();
    let second = Signer::ecdsa(20);
    fx.root.keys.insert(second.id(), second.key.clone());
    fx.root.roles.targets = RootRole {
        keyids: vec![fx.targets_key.id(), second.id()],
        threshold: 2,
    };
    let mut files = fx.build();
    // The same key twice is still one key.
    files.insert(
        RoleName::TARGETS,
        sign(fx.targets.clone(), &[&fx.targets_key, &fx.targets_key]),
    );
    fx.resnapshot(&mut files, |_| {});
    let store = MemStore::serving(&files);
    let (_dir, cache) = trust_dir();
    let err = refused(&store, &cache, &fx.gun).await;
    assert!(matches!(
        &err,
        UpdateError::Tuf(TufError::ThresholdNotMet { role, valid: 1, threshold: 2, .. })
            if *role == RoleName::TARGETS
    ));

    // Both keys: accepted.
    files.insert(
        RoleName::TARGETS,
        sign(fx.targets.clone(), &[&fx.targets_key, &second]),
    );
    fx.resnapshot(&mut files, |_| {});
    run(&MemStore::serving(&files), &cache, &fx.gun)
        .await
        .unwrap();
}

#[tokio::test]
async fn new_root_not_signed_by_the_old_root_is_refused() {
    let mut fx = Fixture::new();
    let (_dir, cache) = cached(&fx.build(), &fx.gun).await;
    fx.root_key = Signer::root(30, GUN);
    fx.root = root_body(
        2,
        &[&fx.root_key],
        &fx.targets_key,
        &fx.snapshot_key,
        &fx.timestamp_key,
    );
    fx.snapshot_version = 2;
    fx.timestamp_version = 2;
    let err = refused(&MemStore::serving(&fx.build()), &cache, &fx.gun).await;
    assert!(matches!(
        &err,
        UpdateError::RootRotation { from: 1, to: 2, .. }
    ));
    names(
        &err,
        "root.json version 2",
        "not signed by the root key(s) of version 1",
    );
}

#[tokio::test]
async fn rolled_back_root_is_refused() {
    let mut fx = Fixture::new();
    let old = fx.build();
    let a = std::mem::replace(&mut fx.root_key, Signer::root(31, GUN));
    fx.root = root_body(
        2,
        &[&fx.root_key],
        &fx.targets_key,
        &fx.snapshot_key,
        &fx.timestamp_key,
    );
    let mut files = fx.build();
    files.insert(RoleName::ROOT, sign(fx.root.clone(), &[&a, &fx.root_key]));
    fx.resnapshot(&mut files, |_| {});
    let store = MemStore::serving(&files);
    let (_dir, cache) = trust_dir();
    run(&store, &cache, &fx.gun).await.unwrap();
    let err = refused(&MemStore::serving(&old), &cache, &fx.gun).await;
    assert!(
        matches!(&err, UpdateError::Rollback { role, found: 1, trusted: 2, .. } if *role == RoleName::ROOT)
    );
}

#[tokio::test]
async fn file_longer_than_its_recorded_length_is_refused() {
    let fx = Fixture::new();
    let files = fx.build();
    let store = MemStore::serving(&files);
    let targets = &files[&RoleName::TARGETS];
    let mut longer = targets.clone();
    longer.extend_from_slice(b"                ");
    store.serve_by_hash(&RoleName::TARGETS, Sha256Digest::of(targets), longer);
    let (_dir, cache) = trust_dir();
    let err = refused(&store, &cache, &fx.gun).await;
    assert!(matches!(&err, UpdateError::TooLarge { role, .. } if *role == RoleName::TARGETS));
    names(&err, "targets.json", "the length snapshot.json records");
}

#[tokio::test]
async fn timestamp_over_the_size_cap_is_refused() {
    let fx = Fixture::new();
    let store = MemStore::serving(&fx.build());
    let (_dir, cache) = trust_dir();
    let options = UpdateOptions {
        max_timestamp_size: 100,
        ..UpdateOptions::at(now())
    };
    let err = update(&store, &cache, &fx.gun, &options).await.unwrap_err();
    names(&err, "timestamp.json", "the timestamp.json size limit");
    assert!(tree(cache.trust_dir()).is_empty());
}

#[tokio::test]
async fn delegated_target_outside_its_paths_is_ignored_as_notary_does() {
    let mut fx = Fixture::new();
    fx.targets.delegations.roles[0].paths = vec!["app/".into()];
    fx.releases.targets.insert("app/v2".into(), target(b"v2"));
    let store = MemStore::serving(&fx.build());
    let (_dir, cache) = trust_dir();
    let repo = run(&store, &cache, &fx.gun).await.unwrap();
    assert_eq!(
        repo.warnings(),
        [UpdateWarning::TargetOutsidePaths {
            role: RoleName::RELEASES,
            target: "v1".into()
        }]
    );
    assert!(repo.warnings()[0].to_string().contains("outside the paths"));
    assert_eq!(
        entries(&repo, None),
        pairs(&[("admin", "targets"), ("app/v2", "targets/releases")])
    );
    assert_eq!(repo.target("v1", None), None);
    assert_eq!(repo.docker_target("v1"), None);
    assert_eq!(
        repo.docker_target("app/v2").unwrap().role,
        RoleName::RELEASES
    );
    assert!(repo.all_targets().iter().all(|t| t.name != "v1"));
}

#[tokio::test]
async fn delegation_without_enough_signatures_is_skipped_as_notary_does() {
    let fx = Fixture::new();
    let mut files = fx.build();
    files.insert(
        RoleName::RELEASES,
        sign(fx.releases.clone(), &[&Signer::ecdsa(77)]),
    );
    fx.resnapshot(&mut files, |_| {});
    let store = MemStore::serving(&files);
    let (_dir, cache) = trust_dir();
    let repo = run(&store, &cache, &fx.gun).await.unwrap();
    assert!(matches!(
        repo.warnings(),
        [UpdateWarning::DelegationSkipped { role, .. }] if *role == RoleName::RELEASES
    ));
    assert!(repo.delegation(&RoleName::RELEASES).is_none());
    assert_eq!(repo.docker_target("v1"), None);
    // Only what verified is cached.
    assert!(!cache.path(&fx.gun, &RoleName::RELEASES).exists());
}

#[tokio::test]
async fn wrong_type_is_refused() {
    let fx = Fixture::new();
    let mut files = fx.build();
    let mut body = fx.targets.to_value();
    body["_type"] = Value::String("Root".into());
    files.insert(RoleName::TARGETS, sign_value(&body, &[&fx.targets_key]));
    fx.resnapshot(&mut files, |_| {});
    let store = MemStore::serving(&files);
    let (_dir, cache) = trust_dir();
    let err = refused(&store, &cache, &fx.gun).await;
    assert!(matches!(
        &err,
        UpdateError::Tuf(TufError::WrongType { role, .. }) if *role == RoleName::TARGETS
    ));
    names(&err, "targets.json", "`_type` \"Root\"");
}

#[tokio::test]
async fn root_certificate_for_another_gun_is_refused() {
    let mut fx = Fixture::new();
    fx.root_key = Signer::root(40, "127.0.0.1:5000/dct/other");
    fx.root = root_body(
        1,
        &[&fx.root_key],
        &fx.targets_key,
        &fx.snapshot_key,
        &fx.timestamp_key,
    );
    let store = MemStore::serving(&fx.build());
    let (_dir, cache) = trust_dir();
    let err = refused(&store, &cache, &fx.gun).await;
    assert!(matches!(&err, UpdateError::NoValidRootCertificate { .. }));
    names(
        &err,
        "root.json version 1",
        "CN \"127.0.0.1:5000/dct/other\"",
    );

    // A wildcard CN covering the GUN is accepted, as in Notary.
    fx.root_key = Signer::root(41, "127.0.0.1:5000/dct/*");
    fx.root = root_body(
        1,
        &[&fx.root_key],
        &fx.targets_key,
        &fx.snapshot_key,
        &fx.timestamp_key,
    );
    run(&MemStore::serving(&fx.build()), &cache, &fx.gun)
        .await
        .unwrap();
}

#[tokio::test]
async fn root_certificate_problems_are_refused() {
    let cases: [(&str, CertSpec); 4] = [
        (
            "expired at",
            CertSpec {
                not_before: now() - time::Duration::days(400),
                not_after: now() - time::Duration::days(1),
                ..CertSpec::notary(GUN)
            },
        ),
        (
            "not valid before",
            CertSpec {
                not_before: now() + time::Duration::days(2),
                ..CertSpec::notary(GUN)
            },
        ),
        (
            "SHA-1",
            CertSpec {
                sig_alg: "1.2.840.10045.4.1",
                ..CertSpec::notary(GUN)
            },
        ),
        (
            "leaf (non-CA)",
            CertSpec {
                ca: true,
                ..CertSpec::notary(GUN)
            },
        ),
    ];
    for (check, spec) in cases {
        let mut fx = Fixture::new();
        fx.root_key = Signer::with_cert(50, &spec);
        fx.root = root_body(
            1,
            &[&fx.root_key],
            &fx.targets_key,
            &fx.snapshot_key,
            &fx.timestamp_key,
        );
        let store = MemStore::serving(&fx.build());
        let (_dir, cache) = trust_dir();
        let err = refused(&store, &cache, &fx.gun).await;
        names(&err, "no usable root certificate", check);
    }

    // A bare ecdsa root key is not a certificate.
    let mut fx = Fixture::new();
    fx.root_key = Signer::ecdsa(51);
    fx.root = root_body(
        1,
        &[&fx.root_key],
        &fx.targets_key,
        &fx.snapshot_key,
        &fx.timestamp_key,
    );
    let err = refused(&MemStore::serving(&fx.build()), &trust_dir().1, &fx.gun).await;
    names(
        &err,
        "no usable root certificate",
        "must be ecdsa-x509 or rsa-x509",
    );
}

#[tokio::test]
async fn root_certificate_near_expiry_is_a_warning() {
    let mut fx = Fixture::new();
    fx.root_key = Signer::with_cert(
        52,
        &CertSpec {
            not_after: now() + time::Duration::days(30),
            ..CertSpec::notary(GUN)
        },
    );
    fx.root = root_body(
        1,
        &[&fx.root_key],
        &fx.targets_key,
        &fx.snapshot_key,
        &fx.timestamp_key,
    );
    let repo = run(&MemStore::serving(&fx.build()), &trust_dir().1, &fx.gun)
        .await
        .unwrap();
    assert!(matches!(
        repo.warnings(),
        [UpdateWarning::CertificateNearExpiry { key_id, .. }] if *key_id == fx.root_key.id()
    ));
}

#[tokio::test]
async fn trust_pinning_by_cert_id_and_by_ca() {
    let fx = Fixture::new();
    let store = MemStore::serving(&fx.build());
    let with = |pinning: TrustPinning| UpdateOptions {
        pinning,
        ..UpdateOptions::at(now())
    };

    // TOFU disabled and nothing pinned: refused.
    let (_d, cache) = trust_dir();
    let options = with(TrustPinning {
        disable_tofu: true,
        ..TrustPinning::default()
    });
    let err = update(&store, &cache, &fx.gun, &options).await.unwrap_err();
    names(
        &err,
        "trusted root of 127.0.0.1:5000/dct/app",
        "TOFU is disabled",
    );

    // Pinned to another certificate: refused; to this one: accepted.
    let pin = |ids: Vec<KeyId>| {
        with(TrustPinning {
            certs: HashMap::from([(GUN.to_owned(), ids)]),
            disable_tofu: true,
            ..TrustPinning::default()
        })
    };
    let err = update(
        &store,
        &cache,
        &fx.gun,
        &pin(vec![Signer::root(60, GUN).id()]),
    )
    .await
    .unwrap_err();
    names(&err, "trust_pinning", "unable to match any certificates");
    update(&store, &cache, &fx.gun, &pin(vec![fx.root_key.id()]))
        .await
        .unwrap();

    // CA pinning: the root certificate must chain to the CA and allow serverAuth.
    let ca_key = p256::ecdsa::SigningKey::from_slice(&[61; 32]).unwrap();
    let ca_spec = CertSpec {
        ca: true,
        code_signing_eku: false,
        ..CertSpec::notary("tufa test CA")
    };
    let ca_pem = pem_cert(&cert_der(&ca_key, &ca_spec, &ca_key, "tufa test CA"));
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    fs::write(&ca_path, ca_pem).unwrap();
    let ca_options = with(TrustPinning {
        ca: HashMap::from([("127.0.0.1:5000/".to_owned(), ca_path)]),
        ..TrustPinning::default()
    });
    let issued = |seed: u8, code_signing_eku: bool| {
        let signing = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
        let spec = CertSpec {
            code_signing_eku,
            ..CertSpec::notary(GUN)
        };
        let der = cert_der(&signing, &spec, &ca_key, "tufa test CA");
        Signer {
            key: PublicKey::ecdsa_x509(pem_cert(&der).into_bytes()),
            signing,
        }
    };
    for (eku, ok) in [(false, true), (true, false)] {
        let mut fx = Fixture::new();
        fx.root_key = issued(62, eku);
        fx.root = root_body(
            1,
            &[&fx.root_key],
            &fx.targets_key,
            &fx.snapshot_key,
            &fx.timestamp_key,
        );
        let store = MemStore::serving(&fx.build());
        let (_d, cache) = trust_dir();
        let result = update(&store, &cache, &fx.gun, &ca_options).await;
        assert_eq!(result.is_ok(), ok, "eku {eku}: {:?}", result.err());
    }
    // A Notary-style root (codeSigning only) fails Go's key usage check, as real-stack.md saw.
    let err = update(&store, &trust_dir().1, &fx.gun, &ca_options)
        .await
        .unwrap_err();
    names(&err, "trust_pinning", "does not allow serverAuth");
    // A self-signed root without EKU does not chain to the CA.
    let mut fx = Fixture::new();
    fx.root_key = Signer::with_cert(
        63,
        &CertSpec {
            code_signing_eku: false,
            ..CertSpec::notary(GUN)
        },
    );
    fx.root = root_body(
        1,
        &[&fx.root_key],
        &fx.targets_key,
        &fx.snapshot_key,
        &fx.timestamp_key,
    );
    let err = update(
        &MemStore::serving(&fx.build()),
        &trust_dir().1,
        &fx.gun,
        &ca_options,
    )
    .await
    .unwrap_err();
    names(&err, "trust_pinning", "does not chain to the pinned CA");
}

#[tokio::test]
async fn a_damaged_cached_root_is_not_silently_replaced() {
    let fx = Fixture::new();
    let (_dir, cache) = cached(&fx.build(), &fx.gun).await;
    fs::write(cache.path(&fx.gun, &RoleName::ROOT), b"{}").unwrap();
    let err = refused(&MemStore::serving(&fx.build()), &cache, &fx.gun).await;
    assert!(matches!(err, UpdateError::CachedRootInvalid { .. }));
    names(&err, "cached root.json", "pins trust");
}

#[tokio::test]
async fn unknown_repository() {
    let store = MemStore::default();
    let (_dir, cache) = trust_dir();
    let gun: Gun = GUN.parse().unwrap();
    let err = refused(&store, &cache, &gun).await;
    assert!(matches!(err, UpdateError::RepositoryNotFound { .. }));
    names(&err, GUN, "no trust data");
}
