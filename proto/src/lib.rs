//! The contract between the `tufa` client and the `tufad` agent.
//!
//! Layout:
//! - [`v1`]: the generated gRPC messages, client and server for `tufa.agent.v1`.
//! - [`notary`]: notary-signer's API (package `proto`), which tufad serves to notary-server.
//! - [`key_id`]: the TUF key ID both sides use to name a key.
//! - [`digest`]: the SHA-256 digest both sides pass around.
//! - [`signature`]: the raw r||s ECDSA signature a device makes.
//! - `secret`: the redacting `Debug` and zeroizing `Drop` of the messages that carry secrets.
#![forbid(unsafe_code)]

pub mod digest;
pub mod key_id;
mod secret;
pub mod signature;

pub use digest::{DigestLengthError, Sha256Digest};
pub use key_id::{KeyId, ParseKeyIdError};
pub use signature::{EcdsaSignature, SignatureLengthError};

/// Generated code for the `tufa.agent.v1` package.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("tufa.agent.v1");
}

/// Generated code for notary-signer's API (`proto.KeyManagement`, `proto.Signer`), as
/// notary-server 0.7 calls it.
#[allow(clippy::all, missing_docs)]
pub mod notary {
    tonic::include_proto!("proto");
}

/// The TUF signature method of every signature the agent returns (raw r||s ECDSA).
pub const SIGNATURE_METHOD_ECDSA: &str = "ecdsa";

/// The environment variable that names the agent's socket, for both binaries.
pub const AGENT_SOCKET_ENV: &str = "TUFA_AGENT_SOCK";
