//! tufa: the `docker trust` and `notary` verbs with every private key in the tufad agent.
//!
//! Layout:
//! - [`agent`]: the gRPC client for tufad.
//! - [`tuf`]: TUF data model, canonical JSON and signature verification, as Notary writes them.
//! - [`cli`]: the command line.
#![forbid(unsafe_code)]

pub mod agent;
pub mod cli;
pub mod tuf;
