//! Each role's version, expiry and key holder, and which roles are due for re-signing.
//!
//! Windows: root is re-signed within six months of expiry, as Notary does (its lifetime is ten
//! years). Targets, delegations and a snapshot the agent signs live three years and are due
//! within [`ROLE_RENEWAL`] (90 days) unless the caller says otherwise. The timestamp is the
//! server's: it re-signs it itself when a read finds it expired (14-day lifetime).

use std::time::Duration;

use time::OffsetDateTime;

use crate::repo::{AgentKeys, ROOT_RENEWAL};
use crate::tuf::{Expires, KeyId, PublicKey, RoleName, VerifiedRepo};

/// How long before expiry targets, delegations and a client-signed snapshot are due: 90 days.
pub const ROLE_RENEWAL: Duration = Duration::from_secs(90 * 24 * 3600);

/// Who holds a role's signing keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// This agent holds enough of them to sign.
    Agent,
    /// The notary server (timestamp always; snapshot when it manages it).
    Server,
    /// Neither: another agent, an offline machine, or a signer's own key.
    Elsewhere,
}

impl Holder {
    /// The word `status` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Server => "server",
            Self::Elsewhere => "elsewhere",
        }
    }
}

/// One role's state.
#[derive(Clone, Debug)]
pub struct RoleStatus {
    /// The role.
    pub role: RoleName,
    /// Its published version.
    pub version: u64,
    /// When it expires.
    pub expires: Expires,
    /// Its keys (canonical IDs).
    pub keys: Vec<KeyId>,
    /// Signatures it needs.
    pub threshold: u32,
    /// Who can sign it.
    pub holder: Holder,
}

/// The state of every role of `repo`; `server_snapshot` is the key the server signs snapshots
/// with, if it has one.
pub fn report(
    repo: &VerifiedRepo,
    held: Option<&AgentKeys>,
    server_snapshot: Option<&PublicKey>,
) -> Vec<RoleStatus> {
    let root = &repo.root().signed;
    let holder = |keys: &[PublicKey], threshold: u32| {
        let have = held.map_or(0, |h| {
            keys.iter().filter(|k| h.for_key(k).is_some()).count()
        });
        if have >= threshold as usize {
            Holder::Agent
        } else {
            Holder::Elsewhere
        }
    };
    let base = |role: &RoleName| {
        let spec = root.roles.get(role).expect("a base role");
        let keys: Vec<PublicKey> = spec
            .keyids
            .iter()
            .filter_map(|id| root.keys.get(id).cloned())
            .collect();
        (keys, spec.threshold)
    };
    let ids = |keys: &[PublicKey]| -> Vec<KeyId> {
        keys.iter()
            .map(|k| k.canonical_id().unwrap_or_else(|_| k.id()))
            .collect()
    };
    let mut out = Vec::new();
    let (keys, threshold) = base(&RoleName::ROOT);
    out.push(RoleStatus {
        role: RoleName::ROOT,
        version: root.version,
        expires: root.expires,
        keys: ids(&keys),
        threshold,
        holder: holder(&keys, threshold),
    });
    let (keys, threshold) = base(&RoleName::TARGETS);
    let t = &repo.targets_role().signed;
    out.push(RoleStatus {
        role: RoleName::TARGETS,
        version: t.version,
        expires: t.expires,
        keys: ids(&keys),
        threshold,
        holder: holder(&keys, threshold),
    });
    let (keys, threshold) = base(&RoleName::SNAPSHOT);
    let s = &repo.snapshot().signed;
    let on_server = server_snapshot.is_some_and(|k| keys.iter().any(|x| x.id() == k.id()));
    out.push(RoleStatus {
        role: RoleName::SNAPSHOT,
        version: s.version,
        expires: s.expires,
        keys: ids(&keys),
        threshold,
        holder: if on_server {
            Holder::Server
        } else {
            holder(&keys, threshold)
        },
    });
    let (keys, threshold) = base(&RoleName::TIMESTAMP);
    let ts = &repo.timestamp().signed;
    out.push(RoleStatus {
        role: RoleName::TIMESTAMP,
        version: ts.version,
        expires: ts.expires,
        keys: ids(&keys),
        threshold,
        holder: Holder::Server,
    });
    for d in repo.delegations() {
        // Borrowed, not cloned: one parent can delegate to thousands of roles.
        let parent = d.name.parent().and_then(|p| {
            if p == RoleName::TARGETS {
                Some(&repo.targets_role().signed)
            } else {
                repo.delegation(&p).map(|x| &x.file.signed)
            }
        });
        let (keys, threshold) = parent
            .and_then(|p| {
                p.delegation(&d.name).map(|spec| {
                    let keys: Vec<PublicKey> = spec
                        .keyids
                        .iter()
                        .filter_map(|id| p.delegations.keys.get(id).cloned())
                        .collect();
                    (keys, spec.threshold)
                })
            })
            .unwrap_or_default();
        out.push(RoleStatus {
            role: d.name.clone(),
            version: d.file.signed.version,
            expires: d.file.signed.expires,
            keys: ids(&keys),
            threshold,
            holder: holder(&keys, threshold),
        });
    }
    out
}

/// Whether `status` is due for re-signing at `now`: root within six months of expiry, what the
/// server signs never (it renews the timestamp and its snapshots itself when a read finds
/// them expired), every other role within `window`.
pub fn is_due(status: &RoleStatus, now: OffsetDateTime, window: Duration) -> bool {
    if status.holder == Holder::Server {
        return false;
    }
    let window = if status.role == RoleName::ROOT {
        ROOT_RENEWAL
    } else {
        window
    };
    status.expires.is_expired_at(now + window)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(role: RoleName, expires_in_days: i64, now: OffsetDateTime) -> RoleStatus {
        RoleStatus {
            role,
            version: 1,
            expires: Expires::new(now + time::Duration::days(expires_in_days)).unwrap(),
            keys: Vec::new(),
            threshold: 1,
            holder: Holder::Agent,
        }
    }

    #[test]
    fn root_is_due_within_six_months_and_other_roles_within_the_window() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let window = ROLE_RENEWAL;
        assert!(is_due(&status(RoleName::ROOT, 150, now), now, window));
        assert!(!is_due(&status(RoleName::ROOT, 200, now), now, window));
        assert!(is_due(&status(RoleName::TARGETS, 60, now), now, window));
        assert!(!is_due(&status(RoleName::TARGETS, 150, now), now, window));
        assert!(is_due(&status(RoleName::RELEASES, 10, now), now, window));
        assert!(is_due(&status(RoleName::SNAPSHOT, -1, now), now, window));
        // The server renews the timestamp (and a snapshot it manages) itself.
        let mut ts = status(RoleName::TIMESTAMP, 1, now);
        ts.holder = Holder::Server;
        assert!(!is_due(&ts, now, window));
        // A longer window takes in roles with years left; root keeps Notary's six months.
        let long = Duration::from_secs(1100 * 24 * 3600);
        assert!(is_due(&status(RoleName::TARGETS, 1095, now), now, long));
        assert!(!is_due(&status(RoleName::ROOT, 3650, now), now, long));
    }
}
