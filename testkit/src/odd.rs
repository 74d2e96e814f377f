//! Delegation files that are odd but that Go's Notary reads (or nearly): what one delegate can
//! publish to make a careless client refuse the whole repository ([`Oddity`]).

use serde_json::{json, Value};
use tufa_client::tuf::{Metadata as _, RoleName, Targets};

use crate::keys::{sign, sign_value, SoftKey};
use crate::repo::{in_days, target, Fixture};

/// One odd thing in `targets/releases.json` (or in what it delegates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oddity {
    /// An extra signature whose `keyid` is not a key ID.
    ExtraSignature,
    /// A target name with the escape `\ud800`, a lone surrogate (Go reads U+FFFD, over which
    /// the delegate signed).
    LoneSurrogate,
    /// A key of the sub-delegation `targets/releases/sub` published with a non-null `private`.
    PrivateKey,
    /// The sub-delegation `targets/releases/sub` lists a key the file does not carry.
    MissingKey,
    /// Target `v2` with a 16-byte `sha256`.
    ShortHash,
    /// Target `v1` with a `length` that is a string: damage Go's decoder refuses too.
    Damaged,
}

impl Oddity {
    /// Every oddity.
    pub const ALL: [Oddity; 6] = [
        Self::ExtraSignature,
        Self::LoneSurrogate,
        Self::PrivateKey,
        Self::MissingKey,
        Self::ShortHash,
        Self::Damaged,
    ];

    /// The sub-delegation of the key cases.
    pub const SUB: &'static str = "targets/releases/sub";

    /// What it is, for a scenario's name.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ExtraSignature => "an extra signature with a key ID that is no key ID",
            Self::LoneSurrogate => "a lone surrogate escape in a target name",
            Self::PrivateKey => "a sub-delegation key with a non-null private part",
            Self::MissingKey => "a sub-delegation whose key is missing",
            Self::ShortHash => "a target hash of the wrong length",
            Self::Damaged => "a target length that is a string",
        }
    }

    /// The role tufa's warning names, and words of that warning.
    pub fn warning(self) -> (&'static str, &'static str) {
        match self {
            Self::ExtraSignature => ("targets/releases.json", "which is not a key ID"),
            Self::LoneSurrogate => ("targets/releases.json", "not valid Unicode"),
            Self::PrivateKey => ("targets/releases.json", "publishes the private part of key"),
            Self::MissingKey => (Self::SUB, "has no public key with that ID"),
            Self::ShortHash => ("targets/releases", "16-byte sha256"),
            Self::Damaged => (
                "targets/releases is ignored",
                "must be a non-negative integer",
            ),
        }
    }

    /// The delegation files to publish: `targets/releases` (signed by `fx.releases_key`) and,
    /// for the key cases, `targets/releases/sub` (whose key `fx` then holds in `more_roles`).
    /// `fx.releases` gets the sub-delegation; its target `v1` stays.
    pub fn files(self, fx: &mut Fixture) -> Vec<(RoleName, Vec<u8>)> {
        let sub: RoleName = Self::SUB.parse().expect("a role name");
        if matches!(self, Self::PrivateKey | Self::MissingKey) {
            let mut body = Targets::new(1, in_days(365));
            body.targets.insert("sub".into(), target(b"sub"));
            fx.delegate(
                &RoleName::RELEASES,
                Self::SUB,
                &[""],
                1,
                &SoftKey::ecdsa(26),
                body,
            );
        }
        let key = fx.releases_key.clone();
        let mut body = fx.releases.to_value();
        let releases = match self {
            Self::ExtraSignature => {
                // Laid out as Go writes the file, so notary-server's re-serialisation of it
                // (which its snapshot hashes) is these very bytes.
                let text = String::from_utf8(sign(fx.releases.clone(), &[&key]))
                    .expect("the file is UTF-8");
                text.replacen(
                    r#""signatures":["#,
                    r#""signatures":[{"keyid":"not-a-key-id","method":"ecdsa","sig":"AAAA"},"#,
                    1,
                )
                .into_bytes()
            }
            Self::LoneSurrogate => {
                let mut with = fx.releases.clone();
                with.targets.insert("v2\u{FFFD}".into(), target(b"v2"));
                let text = String::from_utf8(sign_value(&with.to_value(), &[&key]))
                    .expect("canonical JSON is UTF-8");
                text.replace('\u{FFFD}', "\\ud800").into_bytes()
            }
            Self::PrivateKey => {
                let id = fx.more_roles.last().expect("the sub-delegation").2.id();
                body["delegations"]["keys"][id.to_string()]["keyval"]["private"] =
                    Value::String("c2VjcmV0".into());
                sign_value(&body, &[&key])
            }
            Self::MissingKey => {
                body["delegations"]["keys"] = json!({});
                sign_value(&body, &[&key])
            }
            Self::ShortHash => {
                body["targets"]["v2"] =
                    json!({"hashes": {"sha256": "AAAAAAAAAAAAAAAAAAAAAA=="}, "length": 2});
                sign_value(&body, &[&key])
            }
            Self::Damaged => {
                body["targets"]["v1"]["length"] = Value::String("two".into());
                sign_value(&body, &[&key])
            }
        };
        let mut files = vec![(RoleName::RELEASES, releases)];
        if let Some((_, body, key)) = fx.more_roles.iter().find(|(r, _, _)| *r == sub) {
            files.push((sub, sign(body.clone(), &[key])));
        }
        files
    }

    /// [`Fixture::build`] of `fx` with [`Oddity::files`] in place, snapshot and timestamp
    /// signed over them.
    pub fn build(self, fx: &mut Fixture) -> crate::Files {
        let odd = self.files(fx);
        let mut files = fx.build();
        files.extend(odd);
        fx.resnapshot(&mut files, |_| {});
        files
    }
}
