//! The end-to-end harness: real SoftHSM tokens and the real `tufad` and `tufa` binaries, each
//! in its own temporary directory, so no test depends on another's state.
//!
//! The binaries are the ones `cargo build --workspace --bins` left next to the test executable
//! (`scripts/test.sh` builds them first). A missing component fails the test with the install
//! step that provides it; nothing is skipped silently.
//!
//! Layout:
//! - [`device`]: [`SoftHsm`] tokens behind the [`Device`] trait; [`yubikey`] and [`piv`] are
//!   the simulated YubiKeys that share it;
//! - [`agent`]: a running `tufad` ([`Agent`]) and `tufa` run against it;
//! - [`run`]: [`Run`], what a command did, checked as success or as the refusal a test expects;
//! - [`stack`]: the real Docker Content Trust servers (notary-server, notary-signer, a registry)
//!   and the real `notary` and `docker` CLIs against them;
//! - [`world`]: one person's story against a stack ([`World`]), and what that person runs
//!   ([`User`]: `tufa` with docker's settings, `tufa notary`, `docker`, a DCT pull);
//! - [`offline`]: the offline machine of a root ceremony, one [`offline::Card`] per root key;
//! - [`hostile`]: a notary server that lies: a tampering proxy in front of a stack's
//!   notary-server, or a fake serving repositories that [`fake_repo`] signs with keys a test
//!   holds (the fixtures of `tufa-testkit`, their root key in the agent).

use std::path::{Path, PathBuf};

use tufa_client::agent::SignContext;

pub mod agent;
pub mod device;
pub mod fake_repo;
pub mod hostile;
pub mod offline;
pub mod piv;
pub mod run;
pub mod stack;
pub mod tpm;
pub mod world;
pub mod yubikey;

pub use agent::{Agent, AgentOptions};
pub use device::{Device, SoftHsm, SOFTHSM_MODULE};
pub use run::Run;
pub use tufa_testkit::{on_path, require};
pub use world::{Person, User, World};

/// The user PIN of every SoftHSM token a [`World`] or [`Person`] makes.
pub const PIN: &str = "pin-Qx7wz";

/// The context of a signature over metadata of role `role` in `example.com/app`, as the
/// client sends it (the audit log and the touch prompt show it).
pub fn signing(role: &str) -> SignContext {
    SignContext {
        gun: "example.com/app".into(),
        role: role.into(),
    }
}

/// Path of a workspace binary (`tufad`, `tufa`) built next to this test executable (or next to
/// this crate's own binaries, such as the demo).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>; a binary of this crate already
    // sits in target/<profile>.
    let mut dir = exe
        .parent()
        .expect("the executable lives in target/<profile>");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("target/<profile>/deps has a parent");
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` (scripts/test.sh does) before the tests",
        path.display()
    );
    path
}

/// The arguments of `tufa notary` against `server` (trusting `ca`) with trust dir `trust`:
/// `notary --server SERVER --tls-ca CA --trust-dir TRUST ARGS...`.
pub fn notary_args(server: &str, ca: &Path, trust: &Path, args: &[&str]) -> Vec<String> {
    let mut full: Vec<String> = vec![
        "notary".into(),
        "--server".into(),
        server.into(),
        "--tls-ca".into(),
        ca.display().to_string(),
        "--trust-dir".into(),
        trust.display().to_string(),
    ];
    full.extend(args.iter().map(|a| (*a).to_owned()));
    full
}

/// Verifies a raw r||s signature over `data` with a DER SubjectPublicKeyInfo, using p256 alone.
pub fn verify_with_p256(spki: &[u8], data: &[u8], sig: &[u8; 64]) -> bool {
    use p256::ecdsa::signature::Verifier as _;
    use p256::pkcs8::DecodePublicKey as _;
    let Ok(vk) = p256::ecdsa::VerifyingKey::from_public_key_der(spki) else {
        return false;
    };
    let Ok(sig) = p256::ecdsa::Signature::from_slice(sig) else {
        return false;
    };
    vk.verify(data, &sig).is_ok()
}
