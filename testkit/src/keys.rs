//! Software P-256 keys and the signing of metadata files with them.

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePublicKey as _;
use serde_json::Value;
use tufa_client::tuf::{canonical, KeyId, Metadata, PublicKey, Signature, SignatureMethod, Signed};

use crate::cert::{cert_der, pem_cert, CertSpec};

/// A software P-256 key and its TUF public key: bare `ecdsa` (as notary-server's keys are) or
/// `ecdsa-x509` (a certificate, as root keys are). Made from a seed, so two runs make the same
/// key; a test may misuse it at will (sign stale versions, wrong types, too few signatures).
#[derive(Clone)]
pub struct SoftKey {
    signing: SigningKey,
    public: PublicKey,
}

impl SoftKey {
    /// A bare `ecdsa` key from `seed`.
    pub fn ecdsa(seed: u8) -> Self {
        let signing = signing_key(seed);
        let spki = signing
            .verifying_key()
            .to_public_key_der()
            .expect("SPKI of a P-256 key");
        Self {
            public: PublicKey::ecdsa(spki.as_bytes().to_vec()),
            signing,
        }
    }

    /// A root key: a self-signed certificate as Notary makes one, for `cn`.
    pub fn root(seed: u8, cn: &str) -> Self {
        Self::with_cert(seed, &CertSpec::notary(cn))
    }

    /// An `ecdsa-x509` key whose self-signed certificate is made per `spec`.
    pub fn with_cert(seed: u8, spec: &CertSpec) -> Self {
        let signing = signing_key(seed);
        let der = cert_der(&signing, spec, &signing, &spec.cn);
        Self::x509(signing, &der)
    }

    /// An `ecdsa-x509` key whose certificate (per `spec`) is issued by `issuer`, named
    /// `issuer_cn`.
    pub fn issued_by(seed: u8, spec: &CertSpec, issuer: &SoftKey, issuer_cn: &str) -> Self {
        let signing = signing_key(seed);
        let der = cert_der(&signing, spec, &issuer.signing, issuer_cn);
        Self::x509(signing, &der)
    }

    fn x509(signing: SigningKey, der: &[u8]) -> Self {
        Self {
            public: PublicKey::ecdsa_x509(pem_cert(der).into_bytes()),
            signing,
        }
    }

    /// The private key, to issue certificates with.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The TUF public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The TUF key ID.
    pub fn id(&self) -> KeyId {
        self.public.id()
    }

    /// An `ecdsa` signature over `msg` (SHA-256, raw r||s).
    pub fn signature(&self, msg: &[u8]) -> Signature {
        let sig: p256::ecdsa::Signature = self.signing.sign(msg);
        Signature {
            key_id: self.id(),
            method: SignatureMethod::Ecdsa,
            sig: sig.to_bytes().to_vec(),
        }
    }
}

fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).expect("a valid P-256 scalar")
}

/// Signs `body` with every key and returns the file bytes, as Notary writes them.
pub fn sign<T: Metadata>(body: T, keys: &[&SoftKey]) -> Vec<u8> {
    let mut file = Signed::new(body);
    let msg = file.signed_bytes().expect("canonical body");
    file.signatures = keys.iter().map(|k| k.signature(&msg)).collect();
    file.to_bytes().expect("file bytes")
}

/// Signs an arbitrary `signed` value, for bodies the typed model refuses to write.
pub fn sign_value(signed: &Value, keys: &[&SoftKey]) -> Vec<u8> {
    let msg = canonical::to_canonical(signed).expect("canonical body");
    let sigs: Vec<String> = keys
        .iter()
        .map(|k| {
            let sig = k.signature(&msg);
            format!(
                r#"{{"keyid":"{}","method":"ecdsa","sig":"{}"}}"#,
                sig.key_id,
                base64::engine::general_purpose::STANDARD.encode(&sig.sig)
            )
        })
        .collect();
    let body = String::from_utf8(msg).expect("canonical JSON is UTF-8");
    format!(r#"{{"signed":{body},"signatures":[{}]}}"#, sigs.join(",")).into_bytes()
}
