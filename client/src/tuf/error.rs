//! What can go wrong reading, writing and verifying TUF metadata.

use tufa_proto::KeyId;

use crate::tuf::role::RoleName;

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
    #[error(
        "{name:?} is not a Notary role name: {problem}. Use root, targets, snapshot, timestamp, \
         or targets/<name> where <name> has only lowercase letters, digits, '-', '_' and '/'"
    )]
    InvalidRoleName {
        /// The rejected name.
        name: String,
        /// The rule it breaks.
        problem: &'static str,
    },

    /// A repository name notary-server would not route.
    #[error("'{gun}' is not a valid GUN (repository name): {reason}; use a name such as docker.io/library/alpine")]
    InvalidGun {
        /// The rejected name.
        gun: String,
        /// What is wrong.
        reason: String,
    },

    /// An `expires` value that Go would not read or write back unchanged.
    #[error(
        "{value:?} is not a usable expiry time ({problem}); Notary writes RFC 3339 times such \
         as 2029-11-21T04:04:01.80537535Z"
    )]
    InvalidExpires {
        /// The rejected text.
        value: String,
        /// What is wrong with it.
        problem: String,
    },

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
