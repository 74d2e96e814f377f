//! The `docker trust` verbs: what they print and how they change a repository.
//!
//! Layout:
//! - [`inspect`]: `docker trust inspect`'s JSON and `--pretty` tables.

pub mod inspect;
