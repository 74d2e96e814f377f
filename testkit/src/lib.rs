//! The test kit both test suites share: `client/tests/` (which cannot depend on `tufa-tests`)
//! and the end-to-end tests in `tests/`.
//!
//! Layout:
//! - [`keys`]: [`SoftKey`], a software P-256 key (bare or with a certificate), and [`sign`] /
//!   [`sign_value`], which sign metadata with such keys;
//! - [`cert`]: test certificates written byte by byte, defects included ([`CertSpec`]);
//! - [`repo`]: [`Fixture`], a repository as docker makes one, every part of it editable;
//! - [`odd`]: [`Oddity`], delegation files that are odd but that Notary reads;
//! - [`store`]: [`MemStore`], a notary server in memory, and [`served`], the file names a real
//!   one serves;
//! - [`samples`]: the repositories a real notary-server served ([`sample`]);
//! - [`dir`]: [`tree`], a directory's files and bytes, to show a cache unchanged;
//! - [`pki`]: a throwaway CA and TLS leaves made with the `openssl` CLI;
//! - [`services`]: servers as child processes on free loopback ports.
//!
//! A missing component fails the test with the install step ([`require`]); nothing is skipped.

pub mod cert;
pub mod dir;
pub mod keys;
pub mod odd;
pub mod pki;
pub mod repo;
pub mod samples;
pub mod services;
pub mod store;

pub use cert::CertSpec;
pub use dir::tree;
pub use keys::{sign, sign_value, SoftKey};
pub use odd::Oddity;
pub use repo::{in_days, now, target, Files, Fixture, GUN};
pub use samples::{data_dir, sample, sample_time};
pub use store::{served, MemStore};

/// Whether `cmd` is a file in one of the `PATH` directories.
pub fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

/// Fails the test, naming the install step, if a command is missing.
pub fn require(cmd: &str, install: &str) {
    assert!(
        on_path(cmd),
        "`{cmd}` is not installed: run scripts/install-deps.sh ({install})"
    );
}
