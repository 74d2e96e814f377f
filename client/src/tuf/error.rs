//! What can go wrong reading, writing and verifying TUF metadata.

use tufa_proto::KeyId;

use crate::tuf::expires::InvalidExpires;
use crate::tuf::gun::InvalidGun;
use crate::tuf::role::{InvalidRoleName, RoleName};

/// A TUF metadata error: which role or key, what failed, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TufError {
    /// The file is not JSON.
    #[error(
        "{role}.json is not valid JSON ({source}); the server sent a damaged file: \
         fetch it again, and if that keeps failing, republish {role}"
    )]
    Json {
        /// The role whose file it is.
        role: RoleName,
        /// The parser's complaint.
        source: serde_json::Error,
    },

    /// The key the server returned for a server-managed role is not JSON.
    #[error(
        "the {role} key notary-server returned is not valid JSON ({source}); check that the \
         server URL points at notary-server and retry"
    )]
    KeyJson {
        /// The role whose key was fetched (timestamp or snapshot).
        role: RoleName,
        /// The parser's complaint.
        source: serde_json::Error,
    },

    /// A member is missing or has the wrong shape.
    #[error(
        "{role}.json: `{field}` {problem}; the file was not written by Notary or was altered, \
         so it cannot be used: republish {role} with a Notary-compatible client"
    )]
    Malformed {
        /// The role whose file it is.
        role: RoleName,
        /// Where in the file, e.g. `signed.delegations.roles[0].threshold`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },

    /// `_type` names another kind of role.
    #[error(
        "{role}.json has `_type` {found:?} where {expected:?} belongs; the server returned \
         the wrong file for {role}"
    )]
    WrongType {
        /// The role whose file it is.
        role: RoleName,
        /// What Notary writes for this role.
        expected: &'static str,
        /// What the file says.
        found: String,
    },

    /// A string that is not a Notary role name.
    #[error(transparent)]
    InvalidRoleName(#[from] InvalidRoleName),

    /// A repository name notary-server would not route.
    #[error(transparent)]
    InvalidGun(#[from] InvalidGun),

    /// An `expires` value that Go would not read or write back unchanged.
    #[error(transparent)]
    InvalidExpires(#[from] InvalidExpires),

    /// Something that canonical JSON or Go's encoder cannot express.
    #[error("cannot write this metadata the way Notary does: {reason}")]
    Canonical {
        /// What cannot be expressed.
        reason: String,
    },

    /// A role lists a key ID whose public key the listing file does not carry.
    #[error(
        "{role} lists key {key_id} as a signing key, but {listed_in}.json has no public key \
         with that ID; republish {listed_in} with the key, or remove the key ID from {role}"
    )]
    MissingKey {
        /// The role that lists the key.
        role: RoleName,
        /// The key ID without a key.
        key_id: KeyId,
        /// The file that should hold the key (root, or the delegating targets role).
        listed_in: RoleName,
    },

    /// A key published under an ID that is not the hash of the key.
    #[error(
        "{listed_in}.json publishes a key under ID {listed} but that key's ID is {computed}; \
         the file is corrupt or forged: republish {listed_in}"
    )]
    KeyIdMismatch {
        /// The file that holds the key.
        listed_in: RoleName,
        /// The ID the file gives the key.
        listed: KeyId,
        /// The ID computed from the key.
        computed: KeyId,
    },

    /// The targets role has no delegation of that name.
    #[error(
        "{parent}.json delegates no role named {name}; check the name, or add the delegation \
         (e.g. `docker trust signer add`) before signing into it"
    )]
    NoSuchDelegation {
        /// The delegating role.
        parent: RoleName,
        /// The missing delegation.
        name: RoleName,
    },

    /// A public key that cannot be used for what was asked.
    #[error("key {key_id} ({key_type}) cannot be used: {problem}")]
    InvalidKey {
        /// The key's TUF ID.
        key_id: KeyId,
        /// Its `keytype`.
        key_type: String,
        /// Why it cannot be used.
        problem: String,
    },

    /// One signature does not verify with its key.
    #[error("the {method} signature by key {key_id} does not verify: {problem}")]
    BadSignature {
        /// The signing key's TUF ID.
        key_id: KeyId,
        /// The signature's `method`.
        method: String,
        /// Why it failed.
        problem: String,
    },

    /// A file with no signatures at all.
    #[error("{role}.json has no signatures; sign it with a {role} key before publishing it")]
    NoSignatures {
        /// The role whose file it is.
        role: RoleName,
    },

    /// Fewer distinct keys signed validly than the role's threshold.
    #[error(
        "{role}.json has valid signatures from {valid} distinct {role} key(s) but needs \
         {threshold}{details}; re-sign {role} with its current keys (if a YubiKey signed, \
         was touch input given?)"
    )]
    ThresholdNotMet {
        /// The role whose file it is.
        role: RoleName,
        /// How many distinct role keys signed validly.
        valid: usize,
        /// How many the role needs.
        threshold: u32,
        /// What was wrong with each rejected signature, as `" (rejected: …)"`, or empty.
        details: String,
    },

    /// File bytes that differ from the length or hashes recorded for them.
    #[error(
        "{role}.json does not match what {recorded_in}.json records for it: {problem}; \
         the server returned a stale or altered file: fetch again, or republish {role}"
    )]
    MetaMismatch {
        /// The role whose file was checked.
        role: RoleName,
        /// The role that records the length and hashes (snapshot or timestamp).
        recorded_in: RoleName,
        /// Which check failed.
        problem: String,
    },
}

/// Why an update of a repository's trust data was refused. Nothing was written to the cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// A file failed a metadata check (parse, `_type`, signatures, hash or length).
    #[error(transparent)]
    Tuf(#[from] TufError),

    /// The local cache could not be read or written.
    #[error(transparent)]
    Cache(#[from] crate::tuf::cache::CacheError),

    /// The server has no trust data for the repository.
    #[error(
        "{gun} has no trust data on the notary server (root.json not found); check the \
         repository name, or sign and push a tag first to create it"
    )]
    RepositoryNotFound {
        /// The repository.
        gun: crate::tuf::Gun,
    },

    /// A file the trusted metadata refers to is missing on the server.
    #[error(
        "the notary server has no {what} for {gun}, although the trusted metadata refers to \
         it; the server's storage is incomplete: ask its operator, or republish {role}"
    )]
    MissingRole {
        /// The repository.
        gun: crate::tuf::Gun,
        /// The role.
        role: RoleName,
        /// The file asked for, e.g. `snapshot.<sha256>.json`.
        what: String,
    },

    /// Fetching a file failed.
    #[error("fetching {role} of {gun} from the notary server failed: {source}; check the server URL and the network, then retry")]
    Remote {
        /// The repository.
        gun: crate::tuf::Gun,
        /// The role being fetched.
        role: RoleName,
        /// The transport's error.
        source: crate::tuf::RemoteError,
    },

    /// The server sent more bytes than recorded or allowed for a file.
    #[error(
        "the notary server sent more than {limit} bytes for {role}.json, the most allowed \
         ({why}); the server returned an altered or wrong file: do not trust it, and report it \
         to the server's operator"
    )]
    TooLarge {
        /// The role.
        role: RoleName,
        /// The cap.
        limit: u64,
        /// Where the cap comes from (e.g. "the length snapshot.json records").
        why: String,
    },

    /// A file is older than one already trusted: rollback.
    #[error(
        "{role}.json of {gun} is version {found}, older than version {trusted} already \
         trusted (trust data version is lower than expected): the server is serving old \
         trust data, possibly a rollback attack. If the repository was deliberately reset, \
         delete the cached copy at {cache_path} and retry"
    )]
    Rollback {
        /// The repository.
        gun: crate::tuf::Gun,
        /// The role.
        role: RoleName,
        /// The version received.
        found: u64,
        /// The version cached or trusted.
        trusted: u64,
        /// The cached file the trusted version comes from.
        cache_path: std::path::PathBuf,
    },

    /// A file has expired: freeze.
    #[error(
        "{role}.json of {gun} expired at {expires} (checked at {now}); the server is serving \
         stale trust data (possibly a freeze attack) or {role} was not re-signed in time: {hint}"
    )]
    Expired {
        /// The repository.
        gun: crate::tuf::Gun,
        /// The role.
        role: RoleName,
        /// Its expiry.
        expires: crate::tuf::Expires,
        /// The time it was checked against.
        now: time::OffsetDateTime,
        /// Who can fix it.
        hint: &'static str,
    },

    /// The snapshot no longer lists a delegated role that the cached snapshot listed and whose
    /// parent still delegates to it.
    #[error(
        "snapshot.json of {gun} no longer lists {role}, which the snapshot trusted before \
         listed and {parent} still delegates to it: its targets would silently resolve from \
         other roles (TUF forbids a snapshot to drop a targets file), so this answer of the \
         server cannot be trusted. If {role} was removed on purpose, its delegation must go \
         from {parent} too (`notary delegation remove {gun} {role}`)"
    )]
    DelegationDropped {
        /// The repository.
        gun: crate::tuf::Gun,
        /// The role the snapshot dropped.
        role: RoleName,
        /// The role that still delegates to it.
        parent: RoleName,
    },

    /// The server's root has the cached root's version but signs something else: a fork.
    #[error(
        "root.json of {gun} is version {version}, as the cached root is, but differs from the \
         cached root.json in what it signs; a root changes only by a new version signed by the \
         old root keys, so this one cannot be trusted (two roots of one version fork the \
         repository). If the repository was deliberately re-created, delete the cached copy \
         at {cache_path} and retry"
    )]
    RootForked {
        /// The repository.
        gun: crate::tuf::Gun,
        /// The version both roots carry.
        version: u64,
        /// The cached root.
        cache_path: std::path::PathBuf,
    },

    /// `<v>.root.json` carries another version.
    #[error(
        "the notary server's {requested}.root.json of {gun} is version {found}; the root \
         history on the server is damaged: report it to the server's operator"
    )]
    RootVersionMismatch {
        /// The repository.
        gun: crate::tuf::Gun,
        /// The version asked for.
        requested: u64,
        /// The version in the file.
        found: u64,
    },

    /// No root-role key of a root is a usable certificate for the GUN.
    #[error(
        "root.json version {version} of {gun} has no usable root certificate ({problems}); \
         Notary requires an ecdsa-x509 or rsa-x509 root key whose certificate CN is the GUN, \
         valid now, not SHA-1-signed: the repository owner must rotate the root key \
         (`notary key rotate {gun} root`)"
    )]
    NoValidRootCertificate {
        /// The repository.
        gun: crate::tuf::Gun,
        /// The root's version.
        version: u64,
        /// Why each root key was passed over.
        problems: String,
    },

    /// A new root is not signed by the keys of the root trusted before it.
    #[error(
        "root.json version {to} of {gun} is not signed by the root key(s) of version {from} \
         ({source}); a root rotation must be signed by the previous root key, so this root \
         cannot be trusted. If the owner lost the old root key and told you so out of band, \
         delete the cached trust data of {gun} and retry"
    )]
    RootRotation {
        /// The repository.
        gun: crate::tuf::Gun,
        /// The trusted root's version.
        from: u64,
        /// The new root's version.
        to: u64,
        /// The signature check that failed.
        source: Box<TufError>,
    },

    /// The cached root, which pins trust in the repository, no longer validates.
    #[error(
        "the cached root.json of {gun} at {path} cannot be used ({source}); it is what pins \
         trust in {gun}: restore it from a backup, or delete it to trust the server's root \
         again on first use"
    )]
    CachedRootInvalid {
        /// The repository.
        gun: crate::tuf::Gun,
        /// The cached file.
        path: std::path::PathBuf,
        /// Why it failed.
        source: Box<UpdateError>,
    },

    /// The `trust_pinning` configuration does not accept the root.
    #[error(
        "could not validate the path to a trusted root of {gun}: {problem}; check the \
         trust_pinning `certs`/`ca` entries for {gun} (the IDs are the root key IDs \
         `docker trust inspect` shows), or enable TOFU"
    )]
    TrustPinning {
        /// The repository.
        gun: crate::tuf::Gun,
        /// What did not match.
        problem: String,
    },
}

impl UpdateError {
    /// Whether the server's answer itself was refused (a bad signature, hash, length, version,
    /// expiry, type or root), as a compromised or misconfigured server causes; not a network,
    /// local cache or missing repository problem.
    pub fn is_untrusted_data(&self) -> bool {
        match self {
            Self::Tuf(_)
            | Self::MissingRole { .. }
            | Self::TooLarge { .. }
            | Self::Rollback { .. }
            | Self::Expired { .. }
            | Self::RootVersionMismatch { .. }
            | Self::RootForked { .. }
            | Self::DelegationDropped { .. }
            | Self::NoValidRootCertificate { .. }
            | Self::RootRotation { .. }
            | Self::TrustPinning { .. } => true,
            Self::Cache(_)
            | Self::RepositoryNotFound { .. }
            | Self::Remote { .. }
            | Self::CachedRootInvalid { .. } => false,
        }
    }
}

/// Something worth telling the user about an update that succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateWarning {
    /// A root certificate expires within six months.
    CertificateNearExpiry {
        /// The repository.
        gun: crate::tuf::Gun,
        /// The root key (certificate) ID.
        key_id: KeyId,
        /// When the certificate expires.
        not_after: time::OffsetDateTime,
    },
    /// A delegation was skipped: it expired or lacks signatures (Notary skips it too), or its
    /// file or its entry in its parent cannot be used (Notary fails the whole update).
    DelegationSkipped {
        /// The delegated role.
        role: RoleName,
        /// Why.
        reason: String,
    },
    /// A delegated role lists a target outside the paths delegated to it; it is ignored.
    TargetOutsidePaths {
        /// The delegated role.
        role: RoleName,
        /// The ignored target.
        target: String,
    },
    /// A signature whose `keyid` is not a key ID names no key; it was left out, as in Notary.
    SignatureIgnored {
        /// The role whose file carries it.
        role: RoleName,
        /// The `keyid` (at most 80 characters of it).
        key_id: String,
    },
    /// A file held text that is not valid Unicode; it was read as U+FFFD, as Go reads it.
    NotUnicode {
        /// The role whose file it is.
        role: RoleName,
    },
    /// A targets file published a key with its private part; it counts for no role.
    PrivateKeyPublished {
        /// The role whose file publishes it.
        role: RoleName,
        /// The key.
        key_id: KeyId,
    },
    /// A target whose hash has the wrong length: it matches no file, so it cannot be used.
    TargetUnusable {
        /// The role that lists it.
        role: RoleName,
        /// The target.
        target: String,
        /// What is wrong, e.g. "a 16-byte sha256 (a sha256 is 32 bytes)".
        problem: String,
    },
    /// A cached file could not be read, so its version could not guard against rollback.
    CachedRoleUnreadable {
        /// The role.
        role: RoleName,
        /// Why.
        reason: String,
    },
    /// The verified files were not cached (another program kept writing the cache).
    NotCached {
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for UpdateWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CertificateNearExpiry {
                gun,
                key_id,
                not_after,
            } => write!(
                f,
                "the root certificate {} of {gun} expires at {not_after}; rotate the root key \
                 soon (`notary key rotate {gun} root`)",
                key_id.short()
            ),
            Self::DelegationSkipped { role, reason } => write!(
                f,
                "{role} is ignored (with the roles it delegates to), the rest of the \
                 repository is used: {reason}"
            ),
            Self::TargetOutsidePaths { role, target } => write!(
                f,
                "{role} lists {target:?}, outside the paths delegated to it; the target is ignored"
            ),
            Self::SignatureIgnored { role, key_id } => write!(
                f,
                "{role}.json carries a signature by {key_id:?}, which is not a key ID (64 \
                 lowercase hex digits); it is ignored, as Notary ignores it"
            ),
            Self::NotUnicode { role } => write!(
                f,
                "{role}.json holds text that is not valid Unicode (a lone surrogate, or bytes \
                 that are not UTF-8); it reads as U+FFFD, as Notary reads it"
            ),
            Self::PrivateKeyPublished { role, key_id } => write!(
                f,
                "{role}.json publishes the private part of key {key_id}: anyone can sign with \
                 it, so it counts for none of the roles that list it; replace that key (`notary \
                 delegation remove` and `add`) and treat it as compromised"
            ),
            Self::TargetUnusable {
                role,
                target,
                problem,
            } => write!(
                f,
                "{role} lists {target:?} with {problem}; it matches no image, so it cannot be \
                 verified or pulled: its signer should sign it again"
            ),
            Self::CachedRoleUnreadable { role, reason } => write!(
                f,
                "the cached {role}.json is unreadable ({reason}); rollback protection for it \
                 starts again from this update"
            ),
            Self::NotCached { reason } => f.write_str(reason),
        }
    }
}
