//! The real Docker Content Trust stack on loopback: notary-signer, notary-server and a registry,
//! plus the real `notary` and `docker` CLIs pointed at them.
//!
//! - [`services`]: the servers, configured, started on free ports and waited for;
//! - [`clis`]: the `notary` and `docker` CLIs with their configs in the stack's directory;
//! - [`images`]: images pushed to the registry ([`Stack::push_image`]);
//! - [`published`]: what notary-server serves for a repository, read back for assertions.
//! - [`tufad`]: tufad as notary-server's signer ([`Stack::start_with_tufad_signer`]).
//!
//! The CA and TLS leaves come from [`tufa_testkit::pki`].
//!
//! Layout of a [`Stack`]'s temporary directory:
//! - `certs/`: a throwaway EC P-256 CA (`ca.crt`, `ca.key`) and one leaf per TLS service, or
//!   with [`StackTls::SelfSigned`] one self-signed certificate each for notary-server and the
//!   registry (`notary-self.crt`, `registry-self.crt`);
//! - `config/`: the generated configs of notary-signer, notary-server and the registry;
//! - `logs/`: each service's stdout and stderr;
//! - `registry-data/`: the registry's filesystem storage;
//! - `notary/`: the notary CLI's `client.json` and `trust/` dir;
//! - `docker-config/`: the `DOCKER_CONFIG` of the docker CLI, with the CA under `tls/`;
//! - `home/`: `HOME` for both CLIs, so nothing reads or writes the real `~/.notary` or `~/.docker`.
//!
//! Every service listens on its own free 127.0.0.1 port and is killed when the `Stack` drops. The
//! notary state lives in memory, so each `Stack` starts empty.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use tempfile::TempDir;
use tufa_testkit::services::Services;

use crate::require;

pub mod clis;
pub mod images;
pub mod published;
pub mod services;
pub mod tufad;

pub use clis::PASSPHRASE;
pub use images::{ManifestKind, PushedImage};
use services::TrustService;
pub use tufad::{ServerSigner, SERVER_TOKEN};

/// The servers' TLS set-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackTls {
    /// notary-server on a leaf of the stack's throwaway CA; the registry on plain HTTP.
    Ca,
    /// notary-server and the registry (HTTPS) each on one self-signed certificate (CA:TRUE, as
    /// `openssl req -x509` makes it), which clients are given as the CA: the usual self-hosted
    /// set-up.
    SelfSigned,
}

/// notary-server (with or without notary-signer) and a docker registry, each on a free loopback
/// port in a private temporary directory.
///
/// notary-server's memory backend `DELETE /v2/<gun>/_trust/tuf/` (`notary delete --remote`)
/// removes every GUN that *starts with* `<gun>`, so `…/demo` also deletes `…/demo2`: give GUNs in
/// one test names that are not prefixes of one another.
pub struct Stack {
    // Dropped first: the services are killed before their directory goes.
    services: Services,
    /// tufad as the signer, in a stack started with [`Stack::start_with_tufad_signer`].
    pub signer: Option<ServerSigner>,
    notary_port: u16,
    registry_port: u16,
    signer_port: u16,
    /// How the servers' certificates are made.
    tls: StackTls,
    /// The harness's own client for the registry (plain HTTP, or TLS unchecked).
    http: ureq::Agent,
    /// Numbers each pushed image, so two pushes never make the same digest.
    pushes: AtomicU64,
    dir: TempDir,
}

impl Stack {
    /// notary-signer (memory store, mTLS) + notary-server (memory storage, TLS, remote ECDSA trust
    /// service) + docker-registry (plain HTTP), each on a free 127.0.0.1 port, all ready when it
    /// returns.
    pub fn start() -> Stack {
        Self::start_with(TrustService::Remote, StackTls::Ca)
    }

    /// notary-server with `trust_service: local` (ed25519 server keys), no signer; plus the
    /// registry.
    pub fn start_local_signing() -> Stack {
        Self::start_with(TrustService::Local, StackTls::Ca)
    }

    /// notary-server whose `trust_service` is tufad's `[notary_signer]` listener (mTLS, ECDSA
    /// keys on a SoftHSM token of its own, [`Stack::signer`]); no notary-signer runs. Plus the
    /// registry.
    pub fn start_with_tufad_signer() -> Stack {
        Self::start_with(TrustService::Tufad, StackTls::Ca)
    }

    /// The tufad that signs for notary-server ([`Stack::start_with_tufad_signer`]).
    pub fn tufad(&self) -> &ServerSigner {
        self.signer
            .as_ref()
            .expect("a stack started with start_with_tufad_signer")
    }

    /// Restarts the tufad that signs for notary-server, and waits until notary-server reaches
    /// it again (its gRPC connection reconnects with a back-off).
    pub fn restart_tufad(&mut self) {
        self.signer
            .as_mut()
            .expect("a stack started with start_with_tufad_signer")
            .restart();
        self.wait_for_signer_link()
            .unwrap_or_else(|e| panic!("{}", e.message));
    }

    /// notary-server (local signing) and the registry over HTTPS, each on its own self-signed
    /// certificate for `IP:127.0.0.1` only ([`StackTls::SelfSigned`]); [`Stack::ca_file`] is
    /// notary-server's certificate itself, and each certificate is its server's `ca.crt` in
    /// `$DOCKER_CONFIG/tls/`.
    pub fn start_self_signed() -> Stack {
        Self::start_with(TrustService::Local, StackTls::SelfSigned)
    }

    fn start_with(trust: TrustService, tls: StackTls) -> Stack {
        require("openssl", "apt-get install openssl");
        require("docker-registry", "apt-get install docker-registry");
        require("notary-server", "apt-get install notary");
        if trust == TrustService::Remote {
            require("notary-signer", "apt-get install notary");
        }
        // A port found free can be taken by another test's process before our service binds it;
        // then the whole stack starts again on new ports.
        tufa_testkit::services::start(|| Self::try_start(trust, tls))
    }

    /// The notary server's URL, `https://127.0.0.1:PORT`.
    pub fn notary_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.notary_port)
    }

    /// The certificate (PEM) clients trust for notary-server: the throwaway CA that issued the
    /// servers' certificates, or with [`StackTls::SelfSigned`] notary-server's own certificate.
    pub fn ca_file(&self) -> PathBuf {
        match self.tls {
            StackTls::Ca => self.dir.path().join("certs/ca.crt"),
            StackTls::SelfSigned => self.dir.path().join("certs/notary-self.crt"),
        }
    }

    /// The registry's self-signed certificate, with [`StackTls::SelfSigned`].
    pub fn registry_cert_file(&self) -> PathBuf {
        assert_eq!(
            self.tls,
            StackTls::SelfSigned,
            "only a self-signed stack has one"
        );
        self.dir.path().join("certs/registry-self.crt")
    }

    /// How the servers' certificates are made.
    pub fn tls(&self) -> StackTls {
        self.tls
    }

    /// The CA's private key (PKCS#8 PEM), to mint more certificates in tests.
    pub fn ca_key_file(&self) -> PathBuf {
        self.dir.path().join("certs/ca.key")
    }

    /// An mTLS channel to the stack's signer (notary-signer, or tufad's listener) with the
    /// client certificate `client` of the stack's CA (`notary-server` is notary-server's).
    pub async fn signer_channel(&self, client: &str) -> tonic::transport::Channel {
        tufad::mtls_channel(&self.dir().join("certs"), self.signer_port, client).await
    }

    /// The registry's address, `127.0.0.1:PORT` (plain HTTP, or HTTPS with
    /// [`StackTls::SelfSigned`]).
    pub fn registry_addr(&self) -> String {
        format!("127.0.0.1:{}", self.registry_port)
    }

    /// The stack's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills one service (`registry`, `notary-server` or `notary-signer`) and waits until it is
    /// gone, to test what clients say when it is down; its port stays unused.
    pub fn stop(&mut self, service: &str) {
        self.services.stop(service);
    }

    /// notary-server's log, for failure messages.
    pub fn server_log(&self) -> String {
        self.log_of("notary-server")
    }

    /// The log of one service: `notary-server`, `notary-signer` or `registry`.
    pub fn log_of(&self, service: &str) -> String {
        self.services.log_of(service)
    }
}
