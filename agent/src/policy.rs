//! Who may do what with which key: the `[[client]]` rules of the config, checked on every call.
//!
//! ```toml
//! [[client]]
//! uid = 1001                                # or gid = N: every member of the group
//! allow = ["status", "list", "sign"]        # the operations (see [`Op`])
//! keys = ["ci-*", "ab0665f5"]               # key name globs, or key ID prefixes (7+ digits)
//! guns = ["registry.example.com/team/*"]    # optional: what a Sign's GUN must match
//! ```
//!
//! - The agent's own uid may do everything; rules do not apply to it.
//! - A caller with rules may do an operation on a key when one of its rules allows the
//!   operation and names the key (and, for a Sign with `guns`, the GUN the client signs for).
//!   New keys (generate, import) are checked by the name asked for.
//! - A uid in `allowed_uids` with no rule gets [`DEFAULT_OPS`] with every key that is not a
//!   root key ([`is_root_key`]), and may not sign anything the client says is for `root`.
//! - Keys a caller may not use are not listed to it, and not found by `GetKey`.
//!
//! Rules name uids; a gid rule is resolved to its members (the users whose primary group it is
//! in `/etc/passwd`, and those `/etc/group` lists) when the agent starts.

use std::collections::BTreeSet;
use std::fmt;

use serde::Deserialize;

use crate::audit::Peer;
use crate::backend::KeyInfo;
use crate::error::AgentError;
use crate::keys::{KeyName, KeyRef};

/// An operation a `[[client]]` rule may allow, as the config names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// `Status`: devices, their state and key counts.
    Status,
    /// `ListKeys` and `GetKey`.
    List,
    /// `Sign`.
    Sign,
    /// `GenerateKey`.
    Generate,
    /// `ImportKey`.
    Import,
    /// `DeleteKey`.
    Delete,
    /// `SetCertificate`.
    Certificate,
    /// `Unlock`: handing a device a PIN (a wrong one spends a try).
    Unlock,
    /// `Lock`: making the agent forget every PIN (everyone's signing stops).
    Lock,
    /// `Attest`.
    Attest,
    /// `AdoptKey`: naming a key another tool made in a YubiKey slot (checked by the new name).
    Adopt,
}

/// What an allowed uid without a `[[client]]` rule may do (with keys that are not root keys).
pub const DEFAULT_OPS: [Op; 3] = [Op::Status, Op::List, Op::Sign];

impl Op {
    /// The word the config uses.
    pub fn word(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::List => "list",
            Self::Sign => "sign",
            Self::Generate => "generate",
            Self::Import => "import",
            Self::Delete => "delete",
            Self::Certificate => "certificate",
            Self::Unlock => "unlock",
            Self::Lock => "lock",
            Self::Attest => "attest",
            Self::Adopt => "adopt",
        }
    }

    /// What the caller tried, for a refusal: `sign with key 'x' (ID)`.
    fn action(self, key: Option<&str>) -> String {
        let key = key.unwrap_or("");
        match self {
            Self::Status => "read the agent's status".into(),
            Self::List if key.is_empty() => "list keys".into(),
            Self::List => format!("use {key}"),
            Self::Sign => format!("sign with {key}"),
            Self::Generate => format!("generate {key}"),
            Self::Import => format!("import {key}"),
            Self::Delete => format!("delete {key}"),
            Self::Certificate => format!("store a certificate for {key}"),
            Self::Unlock => "unlock a device".into(),
            Self::Lock => "lock the devices".into(),
            Self::Attest => format!("read the attestation of {key}"),
            Self::Adopt => format!("adopt a key as {key}"),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// One `[[client]]` table, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// The uid the rule is for.
    pub uid: Option<u32>,
    /// The group the rule is for.
    pub gid: Option<u32>,
    /// The operations allowed.
    pub allow: Vec<Op>,
    /// Key name globs and key ID prefixes.
    #[serde(default)]
    pub keys: Vec<String>,
    /// GUN globs a Sign's context must match.
    pub guns: Option<Vec<String>>,
}

/// Whom a rule is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    /// One uid.
    Uid(u32),
    /// The members of a group, resolved when the agent starts.
    Gid {
        /// The group.
        gid: u32,
        /// Its members' uids.
        members: BTreeSet<u32>,
    },
}

impl Who {
    fn covers(&self, uid: u32) -> bool {
        match self {
            Self::Uid(u) => *u == uid,
            Self::Gid { members, .. } => members.contains(&uid),
        }
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uid(u) => write!(f, "uid {u}"),
            Self::Gid { gid, .. } => write!(f, "gid {gid}"),
        }
    }
}

/// A `*`/`?` glob: `*` matches any run of characters (`/` included), `?` any one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` matches the whole glob.
    pub fn matches(&self, text: &str) -> bool {
        let (p, t): (Vec<char>, Vec<char>) = (self.0.chars().collect(), text.chars().collect());
        // The classic linear backtracking: remember the last `*` and how much it took.
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(&c) if c == '?' || c == t[ti] => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|c| *c == '*')
    }
}

/// One entry of a rule's `keys`: a name glob, which is also a key ID prefix when it is 7 or
/// more hex digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPattern {
    glob: Glob,
    prefix: Option<String>,
}

impl KeyPattern {
    fn new(text: &str) -> Self {
        let prefix = KeyRef::NameOrPrefix(text.to_owned()).as_prefix();
        Self {
            glob: Glob(text.to_owned()),
            prefix,
        }
    }

    /// Whether the key's name matches the glob, or its ID starts with the prefix.
    pub fn matches(&self, key: &KeyInfo) -> bool {
        self.glob.matches(key.name.as_str())
            || self
                .prefix
                .as_ref()
                .is_some_and(|p| key.id.to_string().starts_with(p.as_str()))
    }

    /// Whether a new key's name matches the glob.
    fn matches_name(&self, name: &KeyName) -> bool {
        self.glob.matches(name.as_str())
    }
}

impl fmt::Display for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.glob.as_str())
    }
}

/// One `[[client]]` rule, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRule {
    /// Its place in the file, `client[N]`, for messages.
    pub index: usize,
    /// Whom it is for.
    pub who: Who,
    /// What it allows.
    pub allow: BTreeSet<Op>,
    /// Which keys.
    pub keys: Vec<KeyPattern>,
    /// Which GUNs a Sign may be for (`None`: any).
    pub guns: Option<Vec<Glob>>,
}

impl ClientRule {
    fn name(&self) -> String {
        format!("client[{}] ({})", self.index, self.who)
    }

    fn covers_key(&self, key: &KeyInfo) -> bool {
        self.keys.iter().any(|k| k.matches(key))
    }

    fn covers_gun(&self, gun: &str) -> bool {
        self.guns
            .as_ref()
            .is_none_or(|g| g.iter().any(|g| g.matches(gun)))
    }
}

/// Why a `[[client]]` table cannot be used: the key (`client[N].allow`) and what to do.
#[derive(Debug, PartialEq, Eq)]
pub struct RuleError {
    /// The key, `client[N].FIELD`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Reads the `[[client]]` tables; `groups` resolves a gid to its members' uids.
pub fn rules(
    sections: Vec<ClientSection>,
    groups: &dyn Fn(u32) -> BTreeSet<u32>,
) -> Result<Vec<ClientRule>, RuleError> {
    sections
        .into_iter()
        .enumerate()
        .map(|(index, s)| {
            let bad = |field: &str, message: &str| RuleError {
                key: format!("client[{index}].{field}"),
                message: message.to_owned(),
            };
            let who = match (s.uid, s.gid) {
                (Some(uid), None) => Who::Uid(uid),
                (None, Some(gid)) => Who::Gid {
                    gid,
                    members: groups(gid),
                },
                (Some(_), Some(_)) => {
                    return Err(bad(
                        "uid",
                        "a rule is for one uid or one gid: split it into two [[client]] tables",
                    ))
                }
                (None, None) => {
                    return Err(bad(
                        "uid",
                        "say whom the rule is for: uid = N, or gid = N for a group",
                    ))
                }
            };
            if s.allow.is_empty() {
                return Err(bad(
                    "allow",
                    "it allows nothing: list operations (status, list, sign, generate, import, delete, certificate, unlock, lock, attest, adopt), or remove the rule",
                ));
            }
            if s.keys.iter().any(String::is_empty) {
                return Err(bad(
                    "keys",
                    "an empty entry: give key names (globs with * and ?) or key ID prefixes",
                ));
            }
            let guns = match s.guns {
                Some(g) if g.is_empty() || g.iter().any(String::is_empty) => {
                    return Err(bad(
                        "guns",
                        "give GUN globs (\"registry.example.com/team/*\"), or leave guns out to allow any GUN",
                    ))
                }
                Some(g) => Some(g.into_iter().map(Glob).collect()),
                None => None,
            };
            Ok(ClientRule {
                index,
                who,
                allow: s.allow.into_iter().collect(),
                keys: s.keys.iter().map(|k| KeyPattern::new(k)).collect(),
                guns,
            })
        })
        .collect()
}

/// The uids that belong to `gid`: users whose primary group it is (`passwd`) and users listed
/// as its members (`group`), both in the files' usual format.
pub fn group_members(gid: u32, passwd: &str, group: &str) -> BTreeSet<u32> {
    let users: Vec<(&str, u32, u32)> = passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((
                *f.first()?,
                f.get(2)?.parse().ok()?,
                f.get(3)?.parse().ok()?,
            ))
        })
        .collect();
    let mut members: BTreeSet<u32> = users
        .iter()
        .filter(|(_, _, g)| *g == gid)
        .map(|(_, u, _)| *u)
        .collect();
    for line in group.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.get(2).and_then(|g| g.parse::<u32>().ok()) != Some(gid) {
            continue;
        }
        for name in f.get(3).unwrap_or(&"").split(',').filter(|n| !n.is_empty()) {
            members.extend(users.iter().filter(|(n, _, _)| n == &name).map(|u| u.1));
        }
    }
    members
}

/// [`group_members`] from this system's `/etc/passwd` and `/etc/group`.
pub fn system_group_members(gid: u32) -> BTreeSet<u32> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    group_members(gid, &read("/etc/passwd"), &read("/etc/group"))
}

/// Whether a key's name marks it as a root key: `root`, `root-*` (`tufa key migrate`), `*-root`,
/// or `*-root-N` (a rotated root key, `tufa notary key rotate`).
pub fn is_root_key(name: &str) -> bool {
    let rotated = name
        .rsplit_once("-root-")
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    name == "root" || name.starts_with("root-") || name.ends_with("-root") || rotated
}

/// The `[[client]]` rules and the agent's own uid.
#[derive(Clone, Debug)]
pub struct Policy {
    owner: u32,
    rules: Vec<ClientRule>,
}

/// Whose call it is, as the policy sees it.
enum Caller<'a> {
    /// The agent's own uid.
    Owner,
    /// An allowed uid without a rule.
    Default(u32),
    /// A uid with rules.
    Ruled(u32, Vec<&'a ClientRule>),
    /// No credentials (the peer check refuses these first).
    Unknown,
}

/// What a Sign is for, as the client says.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The GUN (may be empty).
    pub gun: &'a str,
    /// The role (may be empty).
    pub role: &'a str,
}

impl Policy {
    /// The rules, for an agent running as `owner`.
    pub fn new(owner: u32, rules: Vec<ClientRule>) -> Self {
        Self { owner, rules }
    }

    /// The rules, for an agent running as this process's uid.
    pub fn for_this_process(rules: Vec<ClientRule>) -> Self {
        Self::new(rustix::process::getuid().as_raw(), rules)
    }

    fn caller(&self, peer: Peer) -> Caller<'_> {
        let Some(uid) = peer.uid else {
            return Caller::Unknown;
        };
        if uid == self.owner {
            return Caller::Owner;
        }
        let rules: Vec<_> = self.rules.iter().filter(|r| r.who.covers(uid)).collect();
        if rules.is_empty() {
            Caller::Default(uid)
        } else {
            Caller::Ruled(uid, rules)
        }
    }

    /// An operation on no key (status, list, unlock, lock): allowed if a rule allows it.
    pub fn check(&self, peer: Peer, op: Op) -> Result<(), AgentError> {
        let refuse = |uid, why| deny(uid, op, None, why);
        match self.caller(peer) {
            Caller::Owner => Ok(()),
            Caller::Unknown => Err(unknown_caller()),
            Caller::Default(_) if DEFAULT_OPS.contains(&op) => Ok(()),
            Caller::Default(uid) => Err(refuse(uid, default_why(uid))),
            Caller::Ruled(uid, rules) => match rules.iter().any(|r| r.allow.contains(&op)) {
                true => Ok(()),
                false => Err(refuse(uid, no_rule_allows(op, &rules))),
            },
        }
    }

    /// An operation on an existing key; `context` is a Sign's GUN and role.
    pub fn check_key(
        &self,
        peer: Peer,
        op: Op,
        key: &KeyInfo,
        context: Option<Context<'_>>,
    ) -> Result<(), AgentError> {
        let named = describe(key);
        let refuse = |uid, why| deny(uid, op, Some(&named), why);
        match self.caller(peer) {
            Caller::Owner => Ok(()),
            Caller::Unknown => Err(unknown_caller()),
            Caller::Default(uid) => {
                if !DEFAULT_OPS.contains(&op) {
                    return Err(refuse(uid, default_why(uid)));
                }
                if is_root_key(key.name.as_str()) {
                    return Err(refuse(
                        uid,
                        format!("'{}' is a root key, which only the agent's own user and [[client]] rules that name it may use", key.name),
                    ));
                }
                if context.is_some_and(|c| c.role == "root") {
                    return Err(refuse(
                        uid,
                        "the signature is for the root role, which only the agent's own user and [[client]] rules may sign".into(),
                    ));
                }
                Ok(())
            }
            Caller::Ruled(uid, rules) => {
                let naming =
                    named_by(op, &rules, |r| r.covers_key(key)).map_err(|why| refuse(uid, why))?;
                let Some(c) = context else { return Ok(()) };
                if naming.iter().any(|r| r.covers_gun(c.gun)) {
                    return Ok(());
                }
                let guns: Vec<_> = naming
                    .iter()
                    .flat_map(|r| r.guns.iter().flatten())
                    .map(Glob::as_str)
                    .collect();
                let asked = if c.gun.is_empty() {
                    "the request names no GUN".to_owned()
                } else {
                    format!("the signature is for GUN '{}'", c.gun)
                };
                Err(refuse(
                    uid,
                    format!(
                        "{asked}, and its [[client]] rules for this key allow GUNs {} only",
                        guns.join(", ")
                    ),
                ))
            }
        }
    }

    /// A new key (generate, import, adopt), by the name asked for.
    pub fn check_new(&self, peer: Peer, op: Op, name: &KeyName) -> Result<(), AgentError> {
        let named = format!("key '{name}'");
        let refuse = |uid, why| deny(uid, op, Some(&named), why);
        match self.caller(peer) {
            Caller::Owner => Ok(()),
            Caller::Unknown => Err(unknown_caller()),
            Caller::Default(uid) => Err(refuse(uid, default_why(uid))),
            Caller::Ruled(uid, rules) => {
                named_by(op, &rules, |r| r.keys.iter().any(|k| k.matches_name(name)))
                    .map(|_| ())
                    .map_err(|why| refuse(uid, why))
            }
        }
    }

    /// Whether the caller may use `key` at all: keys it may not are not listed to it.
    pub fn sees(&self, peer: Peer, key: &KeyInfo) -> bool {
        match self.caller(peer) {
            Caller::Owner => true,
            Caller::Unknown => false,
            Caller::Default(_) => !is_root_key(key.name.as_str()),
            Caller::Ruled(_, rules) => rules.iter().any(|r| r.covers_key(key)),
        }
    }

    /// The refusal of a key the caller may not see, worded as for a key that does not exist.
    pub fn not_visible(&self, peer: Peer, key: &KeyRef) -> AgentError {
        AgentError::KeyNotVisible {
            key: key.to_string(),
            uid: peer.uid.unwrap_or(u32::MAX),
        }
    }

    /// Whether the caller is the agent's own uid.
    pub fn is_owner(&self, peer: Peer) -> bool {
        matches!(self.caller(peer), Caller::Owner)
    }

    /// What to warn about at start, given the keys there are: rules whose key entries match no
    /// key (they apply once such a key exists), groups without members, rules for the agent's
    /// own uid.
    pub fn warnings(&self, keys: &[KeyInfo]) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.rules {
            match &r.who {
                Who::Uid(u) if *u == self.owner => out.push(format!(
                    "{}: uid {u} is the agent's own, which may do everything: this rule has no effect",
                    r.name()
                )),
                Who::Gid { gid, members } if members.is_empty() => out.push(format!(
                    "{}: group {gid} has no members in /etc/passwd or /etc/group: the rule applies to no one",
                    r.name()
                )),
                _ => {}
            }
            for k in &r.keys {
                if !keys.iter().any(|key| k.matches(key)) {
                    out.push(format!(
                        "{}: keys entry '{k}' names no key the agent holds now; it applies once such a key exists",
                        r.name()
                    ));
                }
            }
        }
        out
    }
}

/// `key 'name' (ID)`, as refusals name a key.
fn describe(key: &KeyInfo) -> String {
    format!("key '{}' ({})", key.name, key.id)
}

fn deny(uid: u32, op: Op, key: Option<&str>, why: String) -> AgentError {
    AgentError::PermissionDenied {
        who: format!("uid {uid}"),
        action: op.action(key),
        why,
    }
}

fn unknown_caller() -> AgentError {
    AgentError::PermissionDenied {
        who: "a caller whose uid is unknown".into(),
        action: "use this agent".into(),
        why: "the caller's credentials cannot be read from the socket".into(),
    }
}

fn default_why(uid: u32) -> String {
    format!(
        "uid {uid} has no [[client]] rule, and without one an allowed uid may only {} with keys that are not root keys: add a [[client]] rule for it to the agent's config",
        DEFAULT_OPS.map(Op::word).join(", ")
    )
}

fn no_rule_allows(op: Op, rules: &[&ClientRule]) -> String {
    let allowed: BTreeSet<Op> = rules.iter().flat_map(|r| r.allow.iter().copied()).collect();
    let names: Vec<_> = rules.iter().map(|r| r.name()).collect();
    format!(
        "no [[client]] rule for it allows {op} ({} allow{} {})",
        names.join(", "),
        if names.len() == 1 { "s" } else { "" },
        allowed
            .iter()
            .map(|o| o.word())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The rules that allow `op` and name the key (`names`), or why there are none.
fn named_by<'r>(
    op: Op,
    rules: &[&'r ClientRule],
    names: impl Fn(&ClientRule) -> bool,
) -> Result<Vec<&'r ClientRule>, String> {
    let allowing: Vec<&ClientRule> = rules
        .iter()
        .copied()
        .filter(|r| r.allow.contains(&op))
        .collect();
    if allowing.is_empty() {
        return Err(no_rule_allows(op, rules));
    }
    let naming: Vec<&ClientRule> = allowing.iter().copied().filter(|r| names(r)).collect();
    if naming.is_empty() {
        return Err(format!(
            "its [[client]] rules that allow {op} name other keys ({})",
            key_list(allowing.iter().copied())
        ));
    }
    Ok(naming)
}

fn key_list<'a>(rules: impl Iterator<Item = &'a ClientRule>) -> String {
    let keys: Vec<String> = rules
        .flat_map(|r| r.keys.iter().map(ToString::to_string))
        .collect();
    if keys.is_empty() {
        "none".into()
    } else {
        keys.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{BackendKind, Location, Origin, PinPolicy, TokenLocation, TouchPolicy};
    use crate::keys::{KeyId, KeyLabel};

    fn key(name: &str) -> KeyInfo {
        let spki = name.as_bytes().to_vec();
        KeyInfo {
            id: KeyId::for_ecdsa_spki(&spki),
            name: KeyLabel::from_device(name.to_owned()),
            backend: BackendKind::Pkcs11,
            location: Location::Pkcs11(TokenLocation {
                module: "m".into(),
                token_label: "t".into(),
                token_serial: "1".into(),
                token_model: String::new(),
                token_manufacturer: String::new(),
            }),
            public_spki: spki,
            certificate: None,
            pin_policy: PinPolicy::Unknown,
            touch_policy: TouchPolicy::Unknown,
            origin: Origin::Generated,
            object_id: Vec::new(),
            other_tool: false,
        }
    }

    fn peer(uid: u32) -> Peer {
        Peer {
            uid: Some(uid),
            pid: Some(1),
        }
    }

    fn policy(toml_text: &str) -> Policy {
        #[derive(Deserialize)]
        struct File {
            client: Vec<ClientSection>,
        }
        let file: File = toml::from_str(toml_text).unwrap();
        let groups = |gid| {
            group_members(gid, "ci:x:1001:2000::/:/bin/sh\nweb:x:1002:1002::/:/bin/sh\nops:x:1003:1003::/:/bin/sh\n", "builders:x:2000:ops\n")
        };
        Policy::new(0, rules(file.client, &groups).unwrap())
    }

    #[test]
    fn globs() {
        let g = |p: &str, t: &str| Glob(p.into()).matches(t);
        assert!(g("ci-*", "ci-signer"));
        assert!(g("ci-*", "ci-"));
        assert!(!g("ci-*", "xci-signer"));
        assert!(g("*", ""));
        assert!(g("a?c", "abc") && !g("a?c", "ac"));
        assert!(g(
            "registry.example.com/team/*",
            "registry.example.com/team/app/sub"
        ));
        assert!(!g(
            "registry.example.com/team/*",
            "registry.example.com/teams/app"
        ));
        assert!(g("*a*b*", "xxaxxbxx") && !g("*a*b*", "xxbxxaxx"));
        assert!(g("exact", "exact") && !g("exact", "exactly"));
    }

    #[test]
    fn root_keys_by_name() {
        for root in ["root", "root-5af2455", "app-root", "example.com_app-root-2"] {
            assert!(is_root_key(root), "{root}");
        }
        for other in [
            "rooted",
            "app-targets",
            "roots",
            "example.com_root-tools-targets",
            "x-root-2a",
        ] {
            assert!(!is_root_key(other), "{other}");
        }
    }

    #[test]
    fn a_rule_gives_its_keys_and_operations_only() {
        let p = policy(
            "[[client]]\nuid = 65534\nallow = [\"status\", \"list\", \"sign\"]\nkeys = [\"ci-*\"]\n",
        );
        let (ci, root) = (key("ci-signer"), key("root"));
        let me = peer(65534);
        assert!(p.check(me, Op::List).is_ok());
        assert!(p.check_key(me, Op::Sign, &ci, None).is_ok());
        let e = p
            .check_key(me, Op::Sign, &root, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("uid 65534 may not sign with key 'root' ("),
            "{e}"
        );
        assert!(e.contains("name other keys (ci-*)"), "{e}");
        let e = p
            .check_key(me, Op::Delete, &ci, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("may not delete key 'ci-signer'"), "{e}");
        assert!(
            e.contains("no [[client]] rule for it allows delete (client[0] (uid 65534) allows status, list, sign)"),
            "{e}"
        );
        let e = p
            .check_new(me, Op::Generate, &"ci-new".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("uid 65534 may not generate key 'ci-new'"), "{e}");
        assert!(p.sees(me, &ci) && !p.sees(me, &root));
        // The owner may do everything; a uid with no rule gets the default.
        assert!(p.check_key(peer(0), Op::Delete, &root, None).is_ok());
        assert!(p.check_key(peer(7), Op::Sign, &ci, None).is_ok());
    }

    #[test]
    fn without_a_rule_no_key_management_and_no_root_keys() {
        let p = Policy::new(0, Vec::new());
        let me = peer(1001);
        let (ci, root) = (key("ci-signer"), key("root-5af2455"));
        assert!(p.check(me, Op::Status).is_ok());
        assert!(p.check_key(me, Op::Sign, &ci, None).is_ok());
        let e = p
            .check_key(me, Op::Sign, &root, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a root key"), "{e}");
        let root_role = Context {
            gun: "example.com/app",
            role: "root",
        };
        let e = p
            .check_key(me, Op::Sign, &ci, Some(root_role))
            .unwrap_err()
            .to_string();
        assert!(e.contains("for the root role"), "{e}");
        for op in [Op::Delete, Op::Certificate, Op::Attest] {
            let e = p.check_key(me, op, &ci, None).unwrap_err().to_string();
            assert!(e.contains("has no [[client]] rule"), "{op}: {e}");
        }
        for op in [Op::Unlock, Op::Lock] {
            assert!(p.check(me, op).is_err(), "{op}");
        }
        for op in [Op::Generate, Op::Import, Op::Adopt] {
            assert!(p.check_new(me, op, &"x".parse().unwrap()).is_err(), "{op}");
        }
        assert!(p.sees(me, &ci) && !p.sees(me, &root));
        assert!(matches!(
            p.check(Peer::default(), Op::Status),
            Err(AgentError::PermissionDenied { .. })
        ));
    }

    #[test]
    fn guns_restrict_signatures() {
        let p = policy(
            "[[client]]\nuid = 5\nallow = [\"sign\"]\nkeys = [\"ci-*\"]\nguns = [\"registry.example.com/team/*\"]\n",
        );
        let ci = key("ci-signer");
        let ctx = |gun| {
            Some(Context {
                gun,
                role: "targets",
            })
        };
        assert!(p
            .check_key(peer(5), Op::Sign, &ci, ctx("registry.example.com/team/app"))
            .is_ok());
        let e = p
            .check_key(
                peer(5),
                Op::Sign,
                &ci,
                ctx("registry.example.com/other/app"),
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("GUN 'registry.example.com/other/app'")
                && e.contains("registry.example.com/team/*"),
            "{e}"
        );
        let e = p
            .check_key(peer(5), Op::Sign, &ci, ctx(""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("names no GUN"), "{e}");
    }

    #[test]
    fn two_rules_for_two_uids_do_not_leak_and_groups_add_up() {
        let p = policy(
            "[[client]]\nuid = 1001\nallow = [\"list\", \"sign\"]\nkeys = [\"ci-*\"]\n\
             [[client]]\nuid = 1002\nallow = [\"list\", \"sign\"]\nkeys = [\"web-*\"]\n\
             [[client]]\ngid = 2000\nallow = [\"delete\"]\nkeys = [\"build-*\"]\n",
        );
        let (ci, web, build) = (key("ci-a"), key("web-a"), key("build-a"));
        assert!(p.sees(peer(1001), &ci) && !p.sees(peer(1001), &web));
        assert!(p.sees(peer(1002), &web) && !p.sees(peer(1002), &ci));
        assert!(p.check_key(peer(1002), Op::Sign, &ci, None).is_err());
        // 1001's primary group is 2000, 1003 is listed in it; 1002 is not a member.
        assert!(p.check_key(peer(1001), Op::Delete, &build, None).is_ok());
        assert!(p.check_key(peer(1003), Op::Delete, &build, None).is_ok());
        assert!(p.check_key(peer(1001), Op::Delete, &ci, None).is_err());
        assert!(p.check_key(peer(1002), Op::Delete, &build, None).is_err());
        // An ID prefix names a key whatever its name.
        let by_id = policy(&format!(
            "[[client]]\nuid = 9\nallow = [\"sign\"]\nkeys = [\"{}\"]\n",
            &web.id.to_string()[..8]
        ));
        assert!(by_id.check_key(peer(9), Op::Sign, &web, None).is_ok());
        assert!(by_id.check_key(peer(9), Op::Sign, &ci, None).is_err());
    }

    #[test]
    fn bad_rules_and_start_warnings() {
        #[derive(Deserialize)]
        struct File {
            client: Vec<ClientSection>,
        }
        let bad = |text: &str| {
            let f: File = toml::from_str(text).unwrap();
            rules(f.client, &|_| BTreeSet::new()).unwrap_err()
        };
        assert_eq!(bad("[[client]]\nallow = [\"sign\"]\n").key, "client[0].uid");
        assert_eq!(
            bad("[[client]]\nuid = 1\ngid = 2\nallow = [\"sign\"]\n").key,
            "client[0].uid"
        );
        assert_eq!(
            bad("[[client]]\nuid = 1\nallow = []\n").key,
            "client[0].allow"
        );
        assert_eq!(
            bad("[[client]]\nuid = 1\nallow = [\"sign\"]\nguns = []\n").key,
            "client[0].guns"
        );
        let p = policy(
            "[[client]]\nuid = 0\nallow = [\"sign\"]\nkeys = [\"ci-*\", \"none-*\"]\n\
             [[client]]\ngid = 4242\nallow = [\"sign\"]\nkeys = [\"*\"]\n",
        );
        let w = p.warnings(&[key("ci-a")]);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("agent's own"), "{w:?}");
        assert!(w[1].contains("'none-*' names no key"), "{w:?}");
        assert!(w[2].contains("group 4242 has no members"), "{w:?}");
    }
}
