//! Repositories signed here, for a fake notary server: what a server holding every key could
//! serve, honest or not.
//!
//! The root key lives in the agent and its certificate is made by the same code as
//! `tufa notary init` ([`tufa_client::tuf::root_certificate`]), so the root is one tufa accepts;
//! every other role is signed with a software P-256 key ([`SoftKey`]) that a test can misuse at
//! will (sign stale versions, wrong types, too few signatures).

use std::collections::BTreeMap;

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::EncodePublicKey as _;
use serde_json::Value;
use time::OffsetDateTime;
use tufa_client::agent::{AgentClient, AgentKey, SignContext};
use tufa_client::tuf::{
    self, canonical, Delegation, Expires, FileMeta, Gun, KeyId, Metadata, PublicKey, RoleName,
    Root, RootRole, RootRoles, Sha256Digest, Signature, SignatureMethod, Signed, Snapshot, Targets,
    Timestamp,
};

/// Each role's file bytes.
pub type Files = BTreeMap<RoleName, Vec<u8>>;

/// A software P-256 key and its TUF public key (bare `ecdsa`, as notary-server's keys are).
#[derive(Clone)]
pub struct SoftKey {
    signing: p256::ecdsa::SigningKey,
    public: PublicKey,
}

impl SoftKey {
    /// A key derived from `seed`, so two runs make the same key.
    pub fn new(seed: u8) -> Self {
        let signing = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).expect("valid scalar");
        let spki = signing
            .verifying_key()
            .to_public_key_der()
            .expect("SPKI of a P-256 key");
        Self {
            public: PublicKey::ecdsa(spki.as_bytes().to_vec()),
            signing,
        }
    }

    /// The TUF public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The TUF key ID.
    pub fn id(&self) -> KeyId {
        self.public.id()
    }

    /// An `ecdsa` signature over `msg` (SHA-256, raw r||s).
    pub fn signature(&self, msg: &[u8]) -> Signature {
        let sig: p256::ecdsa::Signature = self.signing.sign(msg);
        Signature {
            key_id: self.id(),
            method: SignatureMethod::Ecdsa,
            sig: sig.to_bytes().to_vec(),
        }
    }
}

/// Signs `body` with every key and returns the file bytes, as Notary writes them.
pub fn sign<T: Metadata>(body: T, keys: &[&SoftKey]) -> Vec<u8> {
    let mut file = Signed::new(body);
    let msg = file.signed_bytes().expect("canonical body");
    file.signatures = keys.iter().map(|k| k.signature(&msg)).collect();
    file.to_bytes().expect("file bytes")
}

/// Signs an arbitrary `signed` value, for bodies the typed model refuses to write.
pub fn sign_value(signed: &Value, keys: &[&SoftKey]) -> Vec<u8> {
    let msg = canonical::to_canonical(signed).expect("canonical body");
    let sigs: Vec<String> = keys
        .iter()
        .map(|k| {
            let sig = k.signature(&msg);
            format!(
                r#"{{"keyid":"{}","method":"ecdsa","sig":"{}"}}"#,
                sig.key_id,
                base64::engine::general_purpose::STANDARD.encode(&sig.sig)
            )
        })
        .collect();
    let body = String::from_utf8(msg).expect("canonical JSON is UTF-8");
    format!(r#"{{"signed":{body},"signatures":[{}]}}"#, sigs.join(",")).into_bytes()
}

/// A root key in the agent with Notary's self-signed certificate for one GUN.
pub struct AgentRootKey {
    key: AgentKey,
    public: PublicKey,
    gun: Gun,
}

impl AgentRootKey {
    /// Generates agent key `name` and its root certificate for `gun`.
    pub async fn generate(agent: &AgentClient, name: &str, gun: &Gun) -> Self {
        let key = agent
            .generate_named(name)
            .await
            .expect("generate a root key in the agent");
        let signer = agent.signer(&key, SignContext::new(gun, &RoleName::ROOT));
        let der = tuf::root_certificate(&signer, gun, OffsetDateTime::now_utc())
            .await
            .expect("root certificate");
        Self {
            key,
            public: tuf::x509_public_key(&der),
            gun: gun.clone(),
        }
    }

    /// The `ecdsa-x509` TUF key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// `root` signed by this key alone.
    pub async fn sign_root(&self, agent: &AgentClient, root: Root) -> Vec<u8> {
        let mut file = Signed::new(root);
        let msg = file.signed_bytes().expect("canonical root");
        let context = SignContext::new(&self.gun, &RoleName::ROOT);
        let sig = agent
            .sign(&self.key, &msg, &context)
            .await
            .expect("the agent signs the root");
        file.signatures.push(Signature {
            key_id: self.public.id(),
            method: SignatureMethod::Ecdsa,
            sig: sig.as_bytes().to_vec(),
        });
        file.to_bytes().expect("root file bytes")
    }
}

/// A repository as docker makes one, with a twist: targets needs both of its two keys
/// (threshold 2), so a file with one signature is one short. `targets/releases` may sign
/// anything (`paths [""]`); snapshot and timestamp keys are the "server's".
///
/// The bodies and versions are public so a test can change them before [`FakeRepo::files`].
#[derive(Clone)]
pub struct FakeRepo {
    /// The repository.
    pub gun: Gun,
    root_file: Vec<u8>,
    /// The two targets keys; both must sign.
    pub targets_keys: [SoftKey; 2],
    /// The snapshot key.
    pub snapshot_key: SoftKey,
    /// The timestamp key.
    pub timestamp_key: SoftKey,
    /// The key of `targets/releases`.
    pub releases_key: SoftKey,
    /// The top-level targets body.
    pub targets: Targets,
    /// The `targets/releases` body.
    pub releases: Targets,
    /// The snapshot's version.
    pub snapshot_version: u64,
    /// The timestamp's version.
    pub timestamp_version: u64,
    /// When the timestamp expires.
    pub timestamp_expires: Expires,
}

impl FakeRepo {
    /// Root v1 signed in the agent (key `name`), targets v1 with target `admin` and the
    /// `targets/releases` delegation, releases v1 with target `v1`; snapshot and timestamp v1.
    pub async fn new(agent: &AgentClient, name: &str, gun: &str) -> Self {
        let gun: Gun = gun.parse().expect("GUN");
        let root_key = AgentRootKey::generate(agent, name, &gun).await;
        let targets_keys = [SoftKey::new(2), SoftKey::new(3)];
        let snapshot_key = SoftKey::new(4);
        let timestamp_key = SoftKey::new(5);
        let releases_key = SoftKey::new(6);

        let mut keys = BTreeMap::new();
        for k in [
            &targets_keys[0],
            &targets_keys[1],
            &snapshot_key,
            &timestamp_key,
        ] {
            keys.insert(k.id(), k.public().clone());
        }
        keys.insert(root_key.public().id(), root_key.public().clone());
        let root = Root {
            version: 1,
            expires: in_days(3650),
            consistent_snapshot: false,
            keys,
            roles: RootRoles {
                root: RootRole::single(root_key.public().id()),
                targets: RootRole {
                    keyids: targets_keys.iter().map(SoftKey::id).collect(),
                    threshold: 2,
                },
                snapshot: RootRole::single(snapshot_key.id()),
                timestamp: RootRole::single(timestamp_key.id()),
            },
        };
        let root_file = root_key.sign_root(agent, root).await;

        let mut targets = Targets::new(1, in_days(3 * 365));
        targets
            .delegations
            .keys
            .insert(releases_key.id(), releases_key.public().clone());
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
            root_file,
            targets_keys,
            snapshot_key,
            timestamp_key,
            releases_key,
            targets,
            releases,
            snapshot_version: 1,
            timestamp_version: 1,
            timestamp_expires: in_days(14),
        }
    }

    /// Every role signed with its keys; snapshot over the files, timestamp over the snapshot.
    pub fn files(&self) -> Files {
        let mut files = Files::new();
        files.insert(RoleName::ROOT, self.root_file.clone());
        let [t0, t1] = &self.targets_keys;
        files.insert(RoleName::TARGETS, sign(self.targets.clone(), &[t0, t1]));
        files.insert(
            RoleName::RELEASES,
            sign(self.releases.clone(), &[&self.releases_key]),
        );
        self.resnapshot(&mut files);
        files
    }

    /// Signs a snapshot over the files as they are now and a timestamp over that snapshot.
    pub fn resnapshot(&self, files: &mut Files) {
        let snapshot = Snapshot {
            version: self.snapshot_version,
            expires: in_days(3 * 365),
            meta: files
                .iter()
                .filter(|(role, _)| **role != RoleName::SNAPSHOT && **role != RoleName::TIMESTAMP)
                .map(|(role, bytes)| (role.clone(), FileMeta::of_metadata(bytes)))
                .collect(),
        };
        let snapshot = sign(snapshot, &[&self.snapshot_key]);
        files.insert(RoleName::TIMESTAMP, self.timestamp_over(&snapshot));
        files.insert(RoleName::SNAPSHOT, snapshot);
    }

    /// The timestamp body over `snapshot` with this repository's version and expiry.
    pub fn timestamp_body(&self, snapshot: &[u8]) -> Timestamp {
        Timestamp {
            version: self.timestamp_version,
            expires: self.timestamp_expires,
            snapshot: FileMeta::of_metadata(snapshot),
        }
    }

    fn timestamp_over(&self, snapshot: &[u8]) -> Vec<u8> {
        sign(self.timestamp_body(snapshot), &[&self.timestamp_key])
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
            let version = Signed::<Root>::from_slice(role, bytes)
                .expect("a root file")
                .signed
                .version;
            out.insert(format!("{version}.root.json"), bytes.clone());
        }
    }
    out
}

/// `now` plus `days` (negative: in the past), as an `expires`.
pub fn in_days(days: i64) -> Expires {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("0 ns");
    Expires::new(now + time::Duration::days(days)).expect("a usable expiry")
}

/// A target's file meta: its length and SHA-256.
pub fn target(content: &[u8]) -> FileMeta {
    FileMeta::of_target(content.len() as u64, Sha256Digest::of(content))
}
