//! TUF metadata as Notary writes it: the data model, byte-exact serialisation and signature checks.
//!
//! Layout:
//! - [`canonical`]: docker/go canonical JSON (what is signed) and Go's escaping of the file.
//! - `envelope`: the file `{"signed":…,"signatures":[…]}` ([`Envelope`] as received,
//!   [`Signed`] typed), [`Signature`], and the [`Metadata`] trait of role bodies.
//! - `root`, `targets`, `snapshot`: the role bodies ([`Root`], [`Targets`] with
//!   [`Delegations`], [`Snapshot`], [`Timestamp`]).
//! - `file_meta`: [`FileMeta`] lengths and [`Hashes`], [`Sha256Digest`].
//! - `key`: [`PublicKey`], key types, TUF and canonical key IDs ([`KeyId`]).
//! - `role`: [`RoleName`] with Notary's delegation name rules.
//! - `expires`: [`Expires`], Go's RFC 3339 nanosecond time format.
//! - `verify`: [`RoleKeys`] and threshold checks of ecdsa, eddsa and RSA signatures.
//! - `gun`: [`Gun`], a repository's name.
//! - `remote`: [`RemoteStore`], where verified reads fetch metadata from.
//! - `error`: [`TufError`].
//!
//! Reading a file from the server: [`Envelope::from_slice`], [`Envelope::verify`] with keys from
//! [`Root::role_keys`] or [`Targets::delegation_keys`], then [`Envelope::decode`]. Writing one:
//! build the body, sign [`Signed::signed_bytes`], publish [`Signed::to_bytes`].

pub mod canonical;
mod envelope;
mod error;
mod expires;
mod file_meta;
mod gun;
mod key;
mod remote;
mod role;
mod root;
mod snapshot;
mod targets;
mod verify;
mod wire;

pub use envelope::{Envelope, Metadata, Signature, SignatureMethod, Signed};
pub use error::TufError;
pub use expires::Expires;
pub use file_meta::{FileMeta, Hashes, Sha256Digest, Sha512Digest};
pub use gun::Gun;
pub use key::{KeyType, PublicKey};
pub use remote::{RemoteError, RemoteStore};
pub use role::RoleName;
pub use root::{Root, RootRole, RootRoles};
pub use snapshot::{Snapshot, Timestamp};
pub use targets::{Delegation, Delegations, Targets};
pub use tufa_proto::KeyId;
pub use verify::{verify_signature, verify_signatures, RoleKeys};
