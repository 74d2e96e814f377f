//! Key objects on the token: the templates tufa writes, reading a key back, and finding a key's
//! objects by key ID.
//!
//! Keys are stored with `CKA_ID` = the TUF key ID and `CKA_LABEL` = the key's name, on both the
//! private and the public key object, so the agent finds them again after a restart from the
//! token alone; keys made by other tools are found too, by the key ID of their public key.

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::Session;
use p256::pkcs8::der::asn1::OctetString;
use p256::pkcs8::der::{Decode as _, Encode as _};
use p256::pkcs8::EncodePublicKey as _;

use crate::backend::{
    BackendKind, KeyInfo, Location, Origin, PinPolicy, TokenLocation, TouchPolicy,
};
use crate::import::ImportedKey;
use crate::keys::{KeyId, KeyLabel, KeyName};

/// DER of the P-256 curve OID, the `CKA_EC_PARAMS` of every key the agent makes.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

/// Public EC key objects with their key info.
pub fn list(
    session: &Session,
    location: &TokenLocation,
) -> Result<Vec<(ObjectHandle, KeyInfo)>, CkError> {
    let handles = session.find_objects(&[
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::EC),
    ])?;
    let mut out = Vec::new();
    for h in handles {
        if let Some(info) = key_info(session, h, location)? {
            out.push((h, info));
        }
    }
    Ok(out)
}

/// A public key object's key info; `None` for keys that are not P-256.
fn key_info(
    session: &Session,
    public: ObjectHandle,
    location: &TokenLocation,
) -> Result<Option<KeyInfo>, CkError> {
    let attrs = session.get_attributes(
        public,
        &[
            AttributeType::Id,
            AttributeType::Label,
            AttributeType::EcParams,
            AttributeType::EcPoint,
            AttributeType::Local,
        ],
    )?;
    let (mut cka_id, mut label, mut params, mut point, mut local) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), false);
    for a in attrs {
        match a {
            Attribute::Id(v) => cka_id = v,
            Attribute::Label(v) => label = v,
            Attribute::EcParams(v) => params = v,
            Attribute::EcPoint(v) => point = v,
            Attribute::Local(v) => local = v,
            _ => {}
        }
    }
    if params != P256_PARAMS {
        return Ok(None);
    }
    let Some(spki) = spki_from_ec_point(&point) else {
        tracing::warn!(token = %location.token_label, "skipping a public key whose EC point does not parse");
        return Ok(None);
    };
    let certificate = first_attribute(
        session,
        &[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Id(cka_id.clone()),
        ],
        AttributeType::Value,
        |a| match a {
            Attribute::Value(v) => Some(v),
            _ => None,
        },
    )?;
    let id = KeyId::for_ecdsa_spki(&spki);
    let other_tool = cka_id != id.as_bytes();
    Ok(Some(KeyInfo {
        id,
        name: KeyLabel::from_device(String::from_utf8_lossy(&label).into_owned()),
        backend: BackendKind::Pkcs11,
        location: Location::Pkcs11(location.clone()),
        public_spki: spki,
        certificate,
        pin_policy: PinPolicy::Unknown,
        touch_policy: TouchPolicy::Unknown,
        origin: if local {
            Origin::Generated
        } else {
            Origin::Imported
        },
        object_id: cka_id,
        other_tool,
    }))
}

/// The `CKA_ID` under which a key's objects are stored (the key ID for tufa's own keys).
pub fn cka_id(
    session: &Session,
    id: &KeyId,
    location: &TokenLocation,
) -> Result<Option<Vec<u8>>, CkError> {
    let own = session.find_objects(&[
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Id(id.as_bytes().to_vec()),
    ])?;
    if !own.is_empty() {
        return Ok(Some(id.as_bytes().to_vec()));
    }
    for (h, info) in list(session, location)? {
        if info.id == *id {
            let attrs = session.get_attributes(h, &[AttributeType::Id])?;
            return Ok(attrs.into_iter().find_map(|a| match a {
                Attribute::Id(v) => Some(v),
                _ => None,
            }));
        }
    }
    Ok(None)
}

/// The private key object of a key.
pub fn private_handle(
    session: &Session,
    id: &KeyId,
    location: &TokenLocation,
) -> Result<Option<ObjectHandle>, CkError> {
    let Some(cka_id) = cka_id(session, id, location)? else {
        return Ok(None);
    };
    Ok(session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(cka_id),
        ])?
        .first()
        .copied())
}

/// The label of the public key object stored under `cka_id` (empty if there is none).
pub fn label(session: &Session, cka_id: &[u8]) -> Result<Vec<u8>, CkError> {
    let label = first_attribute(
        session,
        &[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Id(cka_id.to_vec()),
        ],
        AttributeType::Label,
        |a| match a {
            Attribute::Label(v) => Some(v),
            _ => None,
        },
    )?;
    Ok(label.unwrap_or_default())
}

/// One attribute of the first object matching `template`, if there is such an object.
fn first_attribute<T>(
    session: &Session,
    template: &[Attribute],
    wanted: AttributeType,
    pick: impl Fn(Attribute) -> Option<T>,
) -> Result<Option<T>, CkError> {
    let Some(&object) = session.find_objects(template)?.first() else {
        return Ok(None);
    };
    Ok(session
        .get_attributes(object, &[wanted])?
        .into_iter()
        .find_map(pick))
}

/// The certificate objects stored under `cka_id`.
pub fn certificates(session: &Session, cka_id: &[u8]) -> Result<Vec<ObjectHandle>, CkError> {
    session.find_objects(&[
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::Id(cka_id.to_vec()),
    ])
}

/// The public and private templates of a key pair to generate, under a placeholder `CKA_ID`
/// (the key ID depends on the public key, so it is set once the key exists).
pub fn key_pair_templates(name: &KeyName) -> (Vec<Attribute>, Vec<Attribute>) {
    let name = name.as_str().as_bytes().to_vec();
    let placeholder = placeholder_id().to_vec();
    let public = vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::EcParams(P256_PARAMS.to_vec()),
        Attribute::Label(name.clone()),
        Attribute::Id(placeholder.clone()),
    ];
    let private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Label(name),
        Attribute::Id(placeholder),
    ];
    (public, private)
}

/// Drops the first optional attribute left in a pair of key templates (one a token may not
/// know, as ykcs11 does not know `CKA_EXTRACTABLE`); `false` when none is left.
pub fn drop_optional(templates: &mut (Vec<Attribute>, Vec<Attribute>)) -> bool {
    let optional = |a: &Attribute| matches!(a, Attribute::Extractable(_));
    match templates.1.iter().position(optional) {
        Some(i) => {
            templates.1.remove(i);
            true
        }
        None => false,
    }
}

/// Stores the key ID as `CKA_ID` on a new key's objects. A token that does not let `CKA_ID`
/// change keeps its own; the key is then found by its public key, as keys of other tools are.
pub fn set_key_id(session: &Session, objects: &[ObjectHandle], id: &KeyId) -> Result<(), CkError> {
    for &h in objects {
        match session.update_attributes(h, &[Attribute::Id(id.as_bytes().to_vec())]) {
            Ok(()) => {}
            Err(CkError::Pkcs11(RvError::FunctionNotSupported | RvError::AttributeReadOnly, _)) => {
                tracing::info!(key_id = %id, "token keeps its own CKA_ID; the key is found by its public key");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The private key object of an imported key; the caller zeroizes the scalar in it.
pub fn private_key_object(key: &ImportedKey, name: &KeyName, id: &KeyId) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::EcParams(P256_PARAMS.to_vec()),
        Attribute::Value(key.scalar().to_vec()),
        Attribute::Label(name.as_str().as_bytes().to_vec()),
        Attribute::Id(id.as_bytes().to_vec()),
    ]
}

/// The public key object of an imported key.
pub fn public_key_object(
    key: &ImportedKey,
    name: &KeyName,
    id: &KeyId,
) -> Result<Vec<Attribute>, p256::pkcs8::der::Error> {
    let ec_point = OctetString::new(key.public_point()).and_then(|o| o.to_der())?;
    Ok(vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::EcParams(P256_PARAMS.to_vec()),
        Attribute::EcPoint(ec_point),
        Attribute::Label(name.as_str().as_bytes().to_vec()),
        Attribute::Id(id.as_bytes().to_vec()),
    ])
}

/// `CKA_SUBJECT`, `CKA_ISSUER` and `CKA_SERIAL_NUMBER` (each DER) of a DER certificate.
/// PKCS#11 requires the subject on a certificate object (SoftHSM refuses one without); issuer
/// and serial number are how other tools match the certificate.
pub fn certificate_names(der: &[u8]) -> Result<[Attribute; 3], String> {
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| format!("not an X.509 certificate in DER: {e}"))?;
    let tbs = cert.tbs_certificate();
    let encode = |e: p256::pkcs8::der::Error| format!("its names do not encode: {e}");
    Ok([
        Attribute::Subject(tbs.subject().to_der().map_err(encode)?),
        Attribute::Issuer(tbs.issuer().to_der().map_err(encode)?),
        Attribute::SerialNumber(tbs.serial_number().to_der().map_err(encode)?),
    ])
}

/// An X.509 certificate object for the key stored under `cka_id`.
pub fn certificate_object(
    der: &[u8],
    names: [Attribute; 3],
    cka_id: Vec<u8>,
    label: Vec<u8>,
) -> Vec<Attribute> {
    let mut object = vec![
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(CertificateType::X_509),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Label(label),
        Attribute::Id(cka_id),
    ];
    object.extend(names);
    object.push(Attribute::Value(der.to_vec()));
    object
}

/// The SubjectPublicKeyInfo of a public key object.
pub fn public_spki(session: &Session, public: ObjectHandle) -> Result<Option<Vec<u8>>, CkError> {
    let point = session
        .get_attributes(public, &[AttributeType::EcPoint])?
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(v) => Some(v),
            _ => None,
        })
        .unwrap_or_default();
    Ok(spki_from_ec_point(&point))
}

/// Destroys objects; used to leave nothing half-made behind.
pub fn destroy_all(session: &Session, handles: &[ObjectHandle]) {
    for &h in handles {
        if let Err(e) = session.destroy_object(h) {
            tracing::error!(error = %e, "could not remove a half-made object");
        }
    }
}

/// Unwraps `CKA_EC_POINT` (a DER OCTET STRING around the SEC1 point; some tokens return the
/// bare point) into a P-256 SubjectPublicKeyInfo.
fn spki_from_ec_point(raw: &[u8]) -> Option<Vec<u8>> {
    let point = match OctetString::from_der(raw) {
        Ok(os) => os.as_bytes().to_vec(),
        Err(_) => raw.to_vec(),
    };
    let key = p256::PublicKey::from_sec1_bytes(&point).ok()?;
    key.to_public_key_der().ok().map(|d| d.as_bytes().to_vec())
}

fn placeholder_id() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random generator failed");
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_is_unwrapped_from_der() {
        let point = hex::decode(concat!(
            "04",
            "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
            "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
        ))
        .unwrap();
        let wrapped = OctetString::new(point.clone()).unwrap().to_der().unwrap();
        assert_eq!(wrapped.len(), 67);
        let a = spki_from_ec_point(&wrapped).unwrap();
        let b = spki_from_ec_point(&point).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 91);
        assert!(spki_from_ec_point(&[0x04, 0x01, 0x02]).is_none());
    }
}
