//! The client update: fetch a repository's metadata, verify it as Notary's Go client does
//! (notary: client/tufclient.go, tuf/builder.go), and commit it to the
//! [`TrustCache`](crate::tuf::TrustCache).
//!
//! Order, as Notary downloads: root (cache, else the server under `trust_pinning`; then the
//! server's root.json, walking `<v>.root.json` through every version in between), timestamp
//! (always from the server), snapshot by the hash the timestamp records, targets by the hash the
//! snapshot records, then delegations pre-order in each parent's `delegations.roles` order.
//! Nothing is written unless every check passed.
//!
//! Where tufa is stricter than Notary: a root that differs from the cached one under the same
//! version is refused (a fork), a snapshot may not drop a delegation the cached snapshot listed
//! while its parent still delegates to it (TUF 5.5.5), and a threshold counts distinct public
//! keys. Where it is more lenient: a delegation that cannot be used is skipped with a warning
//! (see `Session::delegations` in `targets_tree.rs`), where Notary fails the whole update.
//! Every walk is linear in the metadata, whatever a delegate repeats.
//!
//! Not checked, as in Notary: a role's name is not inside its signed body, so whoever holds
//! the snapshot key (notary-server, in docker's repositories) can serve one delegation's file
//! as another's when both roles share a key (`docker trust signer add` makes
//! `targets/<signer>` and `targets/releases` share one). The file still verifies only with
//! that key, so it swaps one signer's targets for another's, and can add nothing they did
//! not sign.
//!
//! The files follow the update: `commit` locks the cache, runs `workflow` and commits what it
//! staged; `workflow` runs the steps in order (`root_chain`, `timestamp_snapshot`,
//! `targets_tree`) on one `session`, which holds the state and the checks every step shares;
//! `fetch` reads from the server under the size caps of `options`; `verified` is the result
//! and its target lookups, with the path rules of `prefixes`.

mod commit;
mod fetch;
mod options;
mod prefixes;
mod root_chain;
mod session;
mod targets_tree;
mod timestamp_snapshot;
mod verified;
mod workflow;

pub use commit::{update, update_deferred, PendingCommit};
pub use options::UpdateOptions;
pub use verified::{DelegatedRole, TargetEntry, VerifiedRepo};
