//! tufad: keeps TUF signing keys in hardware and signs over a private Unix socket.
//!
//! Layout, from the top down (a module imports only from modules below it):
//! - [`server`]: opening and serving the agent; [`server::socket`] (bind, peer check),
//!   [`server::connection`] (admission at accept: peer, per-uid cap, idle deadline, back-off),
//!   [`server::service`] (the gRPC handlers, each caller's share of device work),
//!   [`server::convert`] (proto <-> domain) and the named [`server::Shutdown`].
//! - [`signer`]: the second listener, off by default: notary-signer's API over mutual TLS for
//!   notary-server, on the server keys of one device.
//! - [`keyring`]: every configured device, which holds which key, and the key operations.
//! - [`config`]: the TOML file and the flags.
//! - [`policy`]: who may do what with which key: the `[[client]]` rules and their default.
//! - [`audit`]: the JSON-lines audit log, which fails closed.
//! - [`backend`]: the one trait every device implements, and the types it speaks;
//!   [`backend::pkcs11`] is a PKCS#11 token, [`backend::yubikey`] a YubiKey's PIV application.
//! - [`pin`]: where PINs come from, the cache of a PIN a client handed over, and the
//!   [`pin::PinGate`] every login goes through.
//! - [`error`]: the agent's errors and their gRPC codes.
//! - [`import`]: reading the PEM private keys `docker trust key load` accepts.
//! - [`tag`]: what marks a key as notary-server's (GUN, role, used).
//! - [`keys`]: key names, labels and references ([`keys::uri`]: RFC 7512 URIs); digests and
//!   signatures (from `tufa-proto`).
#![forbid(unsafe_code)]

pub mod audit;
pub mod backend;
pub mod config;
pub mod error;
pub mod import;
pub mod keyring;
pub mod keys;
pub mod pin;
pub mod policy;
pub mod server;
pub mod signer;
pub mod tag;

pub use error::AgentError;
