//! PIV attestation: the card's own attestation key (slot f9) with its certificate, and the
//! certificates it issues for keys generated on the card, with Yubico's extensions
//! (firmware, serial, policies, form factor) as a YubiKey writes them.

use std::str::FromStr as _;
use std::time::Duration;

use p256::pkcs8::EncodePublicKey as _;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{self, Builder as _, CertificateBuilder};
use x509_cert::der::asn1::OctetString;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode as _, Encode as _};
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::time::Validity;
use x509_cert::TbsCertificate;

use super::card::{EcKey, SlotKey};
use super::Firmware;

/// Subject of the simulated attestation certificate (a real key's reads "Yubico PIV
/// Attestation", issued by Yubico's PIV CA; this one is self-signed).
pub const ATTESTATION_SUBJECT: &str = "CN=Yubico PIV Attestation (simulated)";

/// Yubico's PIV attestation extensions (1.3.6.1.4.1.41482.3.x).
const OID_FIRMWARE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.3");
const OID_SERIAL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.7");
const OID_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.8");
const OID_FORM_FACTOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.9");
const OID_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");

/// Certificates are valid for 20 years from issuance.
const VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);

/// A new attestation key and its self-signed CA certificate (DER).
pub(crate) fn new_attestation_key() -> (p256::ecdsa::SigningKey, Vec<u8>) {
    let Some(EcKey::P256(key)) = EcKey::generate(super::card::ALG_P256) else {
        unreachable!("P-256 generation returns a P-256 key");
    };
    let name = Name::from_str(ATTESTATION_SUBJECT).expect("a valid name");
    let ca = BasicConstraints {
        ca: true,
        path_len_constraint: None,
    };
    let profile = Profile {
        issuer: name.clone(),
        subject: name,
        extensions: vec![extension(
            OID_BASIC_CONSTRAINTS,
            true,
            ca.to_der().expect("DER"),
        )],
    };
    let spki = spki_of(key.verifying_key().to_sec1_point(false).as_bytes(), true);
    let cert = build(profile, spki, &key);
    (key, cert)
}

/// The attestation certificate for the key in `slot`, signed by the f9 key; its issuer is the
/// subject of the f9 certificate.
pub(crate) fn attestation_certificate(
    (f9_key, f9_cert): &(p256::ecdsa::SigningKey, Vec<u8>),
    slot: u8,
    entry: &SlotKey,
    firmware: Firmware,
    serial: u32,
) -> Vec<u8> {
    let issuer = x509_cert::Certificate::from_der(f9_cert)
        .expect("the card's own certificate parses")
        .tbs_certificate()
        .subject()
        .clone();
    let subject =
        Name::from_str(&format!("CN=YubiKey PIV Attestation {slot:02x}")).expect("a valid name");
    let serial_der = x509_cert::der::asn1::Int::new(&serial.to_be_bytes())
        .and_then(|i| i.to_der())
        .expect("DER");
    let profile = Profile {
        issuer,
        subject,
        extensions: vec![
            extension(OID_FIRMWARE, false, firmware.version().to_vec()),
            extension(OID_SERIAL, false, serial_der),
            extension(
                OID_POLICY,
                false,
                vec![entry.pin_policy as u8, entry.touch_policy as u8],
            ),
            // USB-A keychain.
            extension(OID_FORM_FACTOR, false, vec![0x01]),
        ],
    };
    let spki = spki_of(
        &entry.key.public_point(),
        entry.key.alg() == super::card::ALG_P256,
    );
    build(profile, spki, f9_key)
}

fn build(
    profile: Profile,
    spki: SubjectPublicKeyInfoOwned,
    key: &p256::ecdsa::SigningKey,
) -> Vec<u8> {
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).expect("the OS random generator failed");
    serial[0] = serial[0] & 0x7f | 0x01;
    let serial = SerialNumber::new(&serial).expect("a positive serial");
    let validity = Validity::from_now(VALIDITY).expect("a valid time");
    CertificateBuilder::new(profile, serial, validity, spki)
        .expect("certificate builder")
        .build::<_, p256::ecdsa::DerSignature>(key)
        .expect("signing with a software key")
        .to_der()
        .expect("DER")
}

/// SubjectPublicKeyInfo of an uncompressed P-256 (`p256`) or P-384 point.
fn spki_of(point: &[u8], p256: bool) -> SubjectPublicKeyInfoOwned {
    let der = if p256 {
        p256::PublicKey::from_sec1_bytes(point).map(|k| k.to_public_key_der())
    } else {
        p384::PublicKey::from_sec1_bytes(point).map(|k| k.to_public_key_der())
    }
    .expect("the card's own point")
    .expect("SPKI DER");
    SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).expect("SPKI")
}

fn extension(extn_id: ObjectIdentifier, critical: bool, value: Vec<u8>) -> Extension {
    Extension {
        extn_id,
        critical,
        extn_value: OctetString::new(value).expect("a short extension"),
    }
}

/// Fixed names and extensions.
struct Profile {
    issuer: Name,
    subject: Name,
    extensions: Vec<Extension>,
}

impl BuilderProfile for Profile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> builder::Result<Vec<Extension>> {
        Ok(self.extensions.clone())
    }
}
