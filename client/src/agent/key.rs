//! The agent's keys as the client uses them: [`AgentKey`], converted once from the wire's
//! `v1::Key`; what a signature is for ([`SignContext`]) and what the user is told meanwhile
//! ([`touch_prompt`]).

use tufa_proto::v1;
use tufa_proto::v1::key_location::Location;

use crate::agent::error::AgentClientError;
use crate::tuf::{Gun, KeyId, PublicKey, RoleName};

/// A key the agent holds: its typed ID and public key, where it lives, and its policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentKey {
    /// The TUF key ID (of the bare `ecdsa` key), which names it in the agent and in metadata.
    pub id: KeyId,
    /// The name given at generation or import.
    pub name: String,
    /// The public key, an `ecdsa` TUF key whose `public` is the agent's SubjectPublicKeyInfo.
    pub public: PublicKey,
    /// The backend that holds it.
    pub backend: v1::Backend,
    /// The token or YubiKey slot it is in, when the agent says.
    pub location: Option<Location>,
    /// The DER certificate stored with it, if any.
    pub certificate: Option<Vec<u8>>,
    /// When the device asks for the PIN.
    pub pin: v1::PinPolicy,
    /// When the device asks for a touch.
    pub touch: v1::TouchPolicy,
    /// Whether it was generated on the device or imported.
    pub origin: v1::KeyOrigin,
    /// Set for a key the agent keeps for notary-server (its GUN and role): it signs only
    /// through the agent's notary-signer listener.
    pub server: Option<v1::ServerKey>,
    /// How other tools name it: a `pkcs11:` URI or `yubikey:SERIAL/SLOT`.
    pub uri: String,
    /// Made by another tool (in a YubiKey slot: signs once adopted).
    pub other_tool: bool,
}

impl AgentKey {
    /// The DER SubjectPublicKeyInfo.
    pub fn spki(&self) -> &[u8] {
        self.public.public()
    }

    /// How messages name the key: `'name' (id)`, or the ID alone for a nameless key.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            self.id.to_string()
        } else {
            format!("'{}' ({})", self.name, self.id)
        }
    }

    /// The YubiKey serial when a signature with this key waits for a touch.
    fn touch_serial(&self) -> Option<u32> {
        let touch = matches!(
            self.touch,
            v1::TouchPolicy::Always | v1::TouchPolicy::Cached
        );
        match &self.location {
            Some(Location::Yubikey(y)) if touch => Some(y.serial),
            _ => None,
        }
    }
}

impl TryFrom<v1::Key> for AgentKey {
    type Error = AgentClientError;

    /// The one place the wire's key becomes the client's: an ID that is not a key ID is an
    /// error (an agent that does not match this client), never a key silently left out.
    fn try_from(k: v1::Key) -> Result<Self, Self::Error> {
        let id = k
            .key_id
            .parse::<KeyId>()
            .map_err(|e| AgentClientError::BadKey {
                name: k.name.clone(),
                detail: e.to_string(),
            })?;
        // prost's getters read a value this client does not know as unspecified.
        Ok(Self {
            id,
            backend: k.backend(),
            pin: k.pin_policy(),
            touch: k.touch_policy(),
            origin: k.origin(),
            public: PublicKey::ecdsa(k.public_key_spki),
            location: k.location.and_then(|l| l.location),
            certificate: (!k.certificate_der.is_empty()).then_some(k.certificate_der),
            server: k.server,
            uri: k.uri,
            other_tool: k.other_tool,
            name: k.name,
        })
    }
}

/// What the client asks a key for.
#[derive(Clone, Debug, Default)]
pub struct SignContext {
    /// The repository (GUN) the signature is for.
    pub gun: String,
    /// The TUF role.
    pub role: String,
}

impl SignContext {
    /// A signature for `role` of `gun`.
    pub fn new(gun: &Gun, role: &RoleName) -> Self {
        Self {
            gun: gun.to_string(),
            role: role.to_string(),
        }
    }
}

/// What to tell the user before a signature that needs a touch: `Touch the YubiKey (serial N)
/// to sign ROLE for GUN`, or nothing for keys that need none.
///
/// No timeout in the client or the agent is shorter than the card's own touch timeout (about
/// 15 s): such calls wait [`crate::agent::TOUCH_TIMEOUT`].
pub fn touch_prompt(key: &AgentKey, context: &SignContext) -> Option<String> {
    let serial = key.touch_serial()?;
    let role = if context.role.is_empty() {
        key.name.as_str()
    } else {
        context.role.as_str()
    };
    Some(if context.gun.is_empty() {
        format!("Touch the YubiKey (serial {serial}) to sign with {role}")
    } else {
        format!(
            "Touch the YubiKey (serial {serial}) to sign {role} for {}",
            context.gun
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(touch: v1::TouchPolicy, location: Location) -> AgentKey {
        AgentKey::try_from(v1::Key {
            key_id: "ab".repeat(32),
            name: "alice".into(),
            touch_policy: touch as i32,
            location: Some(v1::KeyLocation {
                location: Some(location),
            }),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn touch_prompt_only_for_yubikey_keys_that_need_a_touch() {
        let yk = Location::Yubikey(v1::YubiKeyLocation {
            serial: 42,
            slot: "82".into(),
        });
        let ctx = SignContext {
            gun: "example.com/app".into(),
            role: "targets".into(),
        };
        assert_eq!(
            touch_prompt(&key(v1::TouchPolicy::Always, yk.clone()), &ctx).unwrap(),
            "Touch the YubiKey (serial 42) to sign targets for example.com/app"
        );
        assert!(touch_prompt(&key(v1::TouchPolicy::Cached, yk.clone()), &ctx).is_some());
        assert!(touch_prompt(&key(v1::TouchPolicy::Never, yk), &ctx).is_none());
        let p11 = Location::Pkcs11(v1::Pkcs11Location::default());
        assert!(touch_prompt(&key(v1::TouchPolicy::Always, p11), &ctx).is_none());
    }

    #[test]
    fn a_key_whose_id_is_not_a_key_id_is_refused_by_name() {
        let err = AgentKey::try_from(v1::Key {
            key_id: "not-an-id".into(),
            name: "odd".into(),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("'odd'") && err.contains("not-an-id"), "{err}");
    }

    #[test]
    fn the_wire_key_becomes_typed_once() {
        let spki = vec![1, 2, 3];
        let k = AgentKey::try_from(v1::Key {
            key_id: "cd".repeat(32),
            name: "bob".into(),
            public_key_spki: spki.clone(),
            backend: v1::Backend::Yubikey as i32,
            pin_policy: 99,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(k.id.to_string(), "cd".repeat(32));
        assert_eq!(k.spki(), &spki[..]);
        assert_eq!(k.backend, v1::Backend::Yubikey);
        // A value this client does not know reads as unspecified, as the CLI prints "unknown".
        assert_eq!(k.pin, v1::PinPolicy::Unspecified);
        assert_eq!(k.certificate, None);
        assert_eq!(k.label(), format!("'bob' ({})", "cd".repeat(32)));
    }
}
