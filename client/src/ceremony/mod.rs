//! Root ceremonies: a new root prepared online, signed offline one device at a time, published.
//!
//! The online and offline machines exchange a request file ([`RootRequest`]), never keys. It is
//! plain JSON holding the GUN, the root being replaced (its exact file, base64), and the new root
//! file with the signatures collected so far. Signatures are over the canonical new root, so any
//! change to it voids them. The new root is bound to its repository by its certificates (CN =
//! GUN) and by its version (the previous root's + 1), and publishing checks that the server's
//! root is still the one the request replaces, so a request cannot be replayed elsewhere.
//!
//! A root needs the threshold of the previous root's keys (a rotation) and the threshold of its
//! own keys, as Notary checks it; [`RootRequest::status`] says which are present and missing.
//!
//! Layout:
//! - `request`: the request file ([`RootRequest`], [`InitPlan`]), its checks and [`Needed`].
//! - `plan`: [`RootPlan`], [`Rotation`] (a rotation as the user names it) and root key
//!   references ([`root_keys`]).
//! - `sign`: signing a request with this agent's keys ([`SignReport`]).
//! - `publish`: [`publish`], through the publish-with-retry loop of [`crate::repo`].
//! - `error`: [`CeremonyError`].

mod error;
mod plan;
mod publish;
mod request;
mod sign;

pub use error::CeremonyError;
pub use plan::{root_keys, root_threshold, server_key, RootPlan, Rotation};
pub use publish::publish;
pub use request::{InitPlan, Needed, RootRequest, REQUEST_FORMAT};
pub use sign::{Absent, SignReport};
