//! TUF metadata as Notary writes it: the data model, byte-exact serialisation and signature checks.
//!
//! Layout:
//! - [`canonical`]: docker/go canonical JSON (what is signed) and Go's escaping of the file.
//! - `envelope`: the file `{"signed":…,"signatures":[…]}` ([`Envelope`] as received,
//!   [`Signed`] typed) and the [`Metadata`] trait of role bodies.
//! - `signature`: one entry of `signatures` ([`Signature`], [`SignatureMethod`]).
//! - `root`, `targets`, `snapshot`: the role bodies ([`Root`], [`Targets`] with
//!   [`Delegations`], [`Snapshot`], [`Timestamp`]).
//! - `file_meta`: [`FileMeta`] lengths and [`Hashes`] (SHA-256 and [`Sha512Digest`]).
//! - `key`: [`PublicKey`], key types, TUF and canonical key IDs ([`KeyId`]).
//! - `pem`: key files and certificates as PEM ([`PublicKey::from_pem`], [`certificate_pem`],
//!   [`x509_public_key`]).
//! - `certificate`: Notary's self-signed root certificate ([`root_certificate`], signed by a
//!   [`DigestSigner`]).
//! - `signer`: [`DigestSigner`], a key that signs SHA-256 digests elsewhere (the agent) into a
//!   raw [`EcdsaSignature`] (the protocol's type, as are [`KeyId`] and [`Sha256Digest`]).
//! - `role`: [`RoleName`] with Notary's delegation name rules.
//! - `expires`: [`Expires`], Go's RFC 3339 nanosecond time format.
//! - `verify`: [`RoleKeys`] and threshold checks of ecdsa, eddsa and RSA signatures;
//!   [`verify_p256`] for one raw P-256 signature.
//! - `gun`: [`Gun`], a repository's name.
//! - `remote`: [`RemoteStore`], where verified reads fetch metadata from.
//! - `cache`: [`TrustCache`], verified metadata in Notary's trust directory layout.
//! - `root_validation`: root certificates and [`TrustPinning`] as Notary checks them.
//! - `update/`: [`update`](update()), the client update (root chain, timestamp, snapshot, targets,
//!   delegations) into a [`VerifiedRepo`] and its target lookups.
//! - `error`: [`TufError`], [`UpdateError`] and [`UpdateWarning`].
//!
//! Reading a file from the server: [`Envelope::from_slice`], [`Envelope::verify`] with keys from
//! [`Root::role_keys`] or [`Targets::delegation_keys`], then [`Envelope::decode`]. Writing one:
//! build the body, sign [`Signed::signed_bytes`], publish [`Signed::to_bytes`]. Reading a whole
//! repository: [`update`](update()) with a [`RemoteStore`] and a [`TrustCache`].

mod cache;
pub mod canonical;
mod certificate;
mod envelope;
mod error;
mod expires;
mod file_meta;
mod gun;
mod key;
mod pem;
mod remote;
mod role;
mod root;
mod root_validation;
mod signature;
mod signer;
mod snapshot;
mod targets;
mod update;
mod verify;
mod wire;

pub use cache::{CacheError, CacheView, GunLock, Holder, TrustCache};
pub use certificate::{
    root_certificate, root_certificate_key, CertificateError, ROOT_CERTIFICATE_VALIDITY_DAYS,
};
pub use envelope::{Envelope, Metadata, Signed};
pub use error::{TufError, UpdateError, UpdateWarning};
pub use expires::{Expires, InvalidExpires};
pub use file_meta::{FileMeta, Hashes, Sha512Digest};
pub use gun::{Gun, InvalidGun};
pub use key::{KeyAlgorithmError, KeyType, PublicKey, MIN_RSA_BITS};
pub use pem::{certificate_pem, x509_public_key, PemKeyError};
pub use remote::{OverLimit, RemoteError, RemoteStore};
pub use role::{InvalidRoleName, RoleName};
pub use root::{Root, RootRole, RootRoles};
pub use root_validation::{check_root_key, cn_matches_gun, validate_root, TrustPinning};
pub use signature::{Signature, SignatureMethod};
pub use signer::{DigestSigner, SignError};
pub use snapshot::{Snapshot, Timestamp};
pub use targets::{Delegation, Delegations, Targets};
pub use tufa_proto::{EcdsaSignature, KeyId, Sha256Digest, SignatureLengthError};
pub use update::{
    update, update_deferred, DelegatedRole, PendingCommit, TargetEntry, UpdateOptions, VerifiedRepo,
};
pub use verify::{
    verify_p256, verify_p256_digest, verify_signature, verify_signatures, P256Error, RoleKeys,
};
