//! Server-key tags on the token: one public data object per notary-server key
//! (`CKO_DATA`, `CKA_APPLICATION` "tufa notary-server key", `CKA_LABEL` the key ID in hex,
//! `CKA_VALUE` the tag's JSON), so the agent, or a second agent on the same token, knows from
//! the token alone which keys are notary-server's and for which GUN and role.

use cryptoki::error::Error as CkError;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use crate::keys::KeyId;
use crate::tag::ServerTag;

/// `CKA_APPLICATION` of a tag object.
pub const APPLICATION: &[u8] = b"tufa notary-server key";

/// Every tag on the token, or the tags of one key.
pub fn find(
    session: &Session,
    id: Option<&KeyId>,
) -> Result<Vec<(ObjectHandle, ServerTag)>, CkError> {
    let mut template = vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Application(APPLICATION.to_vec()),
    ];
    if let Some(id) = id {
        template.push(Attribute::Label(id.to_string().into_bytes()));
    }
    let mut out = Vec::new();
    for h in session.find_objects(&template)? {
        let value = session
            .get_attributes(h, &[AttributeType::Value])?
            .into_iter()
            .find_map(|a| match a {
                Attribute::Value(v) => Some(v),
                _ => None,
            })
            .unwrap_or_default();
        match ServerTag::decode(&value) {
            Some(tag) if id.is_none_or(|id| tag.key_id == *id) => out.push((h, tag)),
            Some(_) => {}
            None => tracing::warn!("skipping a server-key tag object that does not parse"),
        }
    }
    Ok(out)
}

/// Stores `tag`, then removes the key's earlier tags: a failure loses nothing.
pub fn store(session: &Session, tag: &ServerTag) -> Result<(), CkError> {
    let old = find(session, Some(&tag.key_id))?;
    session.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Application(APPLICATION.to_vec()),
        Attribute::Label(tag.key_id.to_string().into_bytes()),
        Attribute::Value(tag.encode()),
    ])?;
    for (h, _) in old {
        session.destroy_object(h)?;
    }
    Ok(())
}

/// Removes a key's tags.
pub fn remove(session: &Session, id: &KeyId) -> Result<(), CkError> {
    for (h, _) in find(session, Some(id))? {
        session.destroy_object(h)?;
    }
    Ok(())
}
