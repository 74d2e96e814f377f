//! The `docker trust` verbs: what they print and how they change a repository.
//!
//! Layout:
//! - [`inspect`]: `docker trust inspect`'s JSON and `--pretty` tables.
//! - [`ops`]: what signer add/remove, sign and revoke change, with docker's role selection.

pub mod inspect;
pub mod ops;
