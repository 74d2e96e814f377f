//! tufad: keeps TUF signing keys in hardware and signs over a private Unix socket.
//!
//! Layout:
//! - [`server`]: the socket, the peer-credential check, the gRPC service and shutdown.
//! - [`keys`]: key names and references, digests, signatures, and the keyring that routes a key
//!   to the device holding it.
//! - [`backend`]: the one trait every device implements; [`backend::pkcs11`] is a PKCS#11 token.
//! - [`pin`]: where PINs come from, and the cache of a PIN a client handed over.
//! - [`import`]: reading the PEM private keys `docker trust key load` accepts.
//! - [`audit`]: the JSON-lines audit log.
//! - [`config`]: the TOML file and the flags.
//! - [`error`]: the agent's errors and their gRPC codes.
#![forbid(unsafe_code)]

pub mod audit;
pub mod backend;
pub mod config;
pub mod error;
pub mod import;
pub mod keys;
pub mod pin;
pub mod server;

pub use error::AgentError;
