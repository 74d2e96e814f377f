//! Notary's root certificate, signed by a key that never leaves the agent.
//!
//! Notary root keys are `ecdsa-x509`: a self-signed certificate whose CN is the GUN (notary:
//! tuf/utils/x509.go `NewCertificate`, cryptoservice/certificate.go). Two ECDSA signature
//! encodings meet in this module and must not be mixed:
//!
//! - **X.509**: the certificate's `signatureValue` is a DER `ECDSA-Sig-Value` (SEQUENCE of two
//!   INTEGERs) over SHA-256 of the DER TBSCertificate (RFC 5758 §3.2, ecdsa-with-SHA256).
//! - **TUF** (`ecdsa` method): raw fixed-width r‖s over SHA-256 of canonical JSON.
//!
//! A [`DigestSigner`] (the agent) only returns raw r‖s, so the certificate signature is converted
//! to DER here.
//! Notary's own YubiKey signer embedded r‖s (and hashed twice), which newer Go rejects with
//! "x509: signature over certificate returned by signer is invalid" (docker/cli#3303).

use std::time::Duration;

use p256::ecdsa::signature::{Keypair, Verifier as _};
use p256::ecdsa::{DerSignature, Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use time::OffsetDateTime;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{self, Builder as _, CertificateBuilder};
use x509_cert::der::asn1::{AnyRef, BitString, GeneralizedTime, UtcTime};
use x509_cert::der::oid::db::{rfc4519, rfc5280};
use x509_cert::der::{Any, DateTime, Decode as _, Encode as _, Tag};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::ext::{Extension, ToExtension as _};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{
    AlgorithmIdentifier, SignatureAlgorithmIdentifier, SubjectPublicKeyInfoOwned,
    SubjectPublicKeyInfoRef,
};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate};

use crate::tuf::key::PublicKey;
use crate::tuf::pem::x509_public_key;
use crate::tuf::signer::{DigestSigner, SignError};
use crate::tuf::{Gun, Sha256Digest};

/// How long Notary's root certificates are valid (notary: client/client.go `rootCertKey`).
pub const ROOT_CERTIFICATE_VALIDITY_DAYS: i64 = 3650;

/// Builds Notary's root certificate for `signer`'s key and has it sign the certificate; returns
/// DER.
///
/// Self-signed X.509 v3 with Issuer = Subject = `CN=<gun>` only, a random positive serial below
/// 2^128, NotBefore = `now` and NotAfter = `now` + 3650 days (whole seconds; UTCTime before
/// 2050, GeneralizedTime after), KeyUsage (critical) digitalSignature + keyEncipherment,
/// ExtKeyUsage codeSigning, BasicConstraints (critical) CA:FALSE, signed ecdsa-with-SHA256.
///
/// The signer signs SHA-256 of the TBSCertificate (for the agent: in the context of role `root`
/// of `gun`); the certificate carries that signature as DER, and its signature is checked once
/// assembled.
pub async fn root_certificate(
    signer: &impl DigestSigner,
    gun: &Gun,
    now: OffsetDateTime,
) -> Result<Vec<u8>, CertificateError> {
    let unsupported = |reason: String| CertificateError::UnsupportedKey {
        key: signer.label(),
        reason,
    };
    // Parsing with p256 is the P-256 check; the certificate keeps the signer's exact SPKI bytes
    // so that its canonical key ID is the signer's key ID.
    let public_spki = signer.public_spki();
    let verifying_key = VerifyingKey::from_public_key_der(public_spki)
        .map_err(|e| unsupported(format!("its public key is not ECDSA P-256 ({e})")))?;
    let spki = SubjectPublicKeyInfoOwned::from_der(public_spki)
        .map_err(|e| unsupported(format!("its SubjectPublicKeyInfo does not parse ({e})")))?;

    let build = |reason: String| CertificateError::Build {
        gun: gun.clone(),
        reason,
    };
    let profile = NotaryRoot {
        subject: common_name(gun).map_err(|e| build(format!("the subject name: {e}")))?,
    };
    let key = SignerKey(verifying_key);
    let mut builder = CertificateBuilder::new(profile, random_serial()?, validity(now)?, spki)
        .map_err(|e| build(e.to_string()))?;
    let tbs_der = builder
        .finalize(&key)
        .map_err(|e| build(format!("the TBSCertificate: {e}")))?;

    let raw = signer
        .sign(Sha256Digest::of(&tbs_der))
        .await
        .map_err(|source| CertificateError::Sign {
            gun: gun.clone(),
            key: signer.label(),
            source,
        })?;
    // X.509 wants ECDSA-Sig-Value, not the signer's (and TUF's) fixed-width r‖s.
    let x509_signature = Signature::from_slice(raw.as_bytes())
        .map_err(|e| build(format!("the signer's r||s signature: {e}")))?
        .to_der();
    let signature_value = BitString::from_bytes(x509_signature.as_bytes())
        .map_err(|e| build(format!("the signature BIT STRING: {e}")))?;
    let certificate = builder
        .assemble(signature_value, &key)
        .map_err(|e| build(e.to_string()))?;
    let der = certificate
        .to_der()
        .map_err(|e| build(format!("the certificate: {e}")))?;

    // Go's CreateCertificate makes the same check: what is published must verify as read back.
    check_signature(&der, &tbs_der, &verifying_key).map_err(build)?;
    Ok(der)
}

/// [`root_certificate`] as the TUF root key that lists it (`ecdsa-x509`).
pub async fn root_certificate_key(
    signer: &impl DigestSigner,
    gun: &Gun,
    now: OffsetDateTime,
) -> Result<PublicKey, CertificateError> {
    let der = root_certificate(signer, gun, now).await?;
    x509_public_key(&der).map_err(|e| CertificateError::Build {
        gun: gun.clone(),
        reason: format!("the certificate as a TUF key: {e}"),
    })
}

/// Why a root certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The key cannot be a Notary root key.
    #[error(
        "key {key} cannot sign a Notary root certificate: {reason}; Notary root keys are \
         ECDSA P-256: make one with `tufa key generate NAME`"
    )]
    UnsupportedKey {
        /// The key's name and ID.
        key: String,
        /// What is wrong with its public key.
        reason: String,
    },

    /// `now` (or `now` + 3650 days) cannot be written in a certificate.
    #[error(
        "cannot date a root certificate at {time}: {reason}; check the system clock \
         (`date -u`)"
    )]
    Time {
        /// The time asked for.
        time: OffsetDateTime,
        /// What is wrong with it.
        reason: String,
    },

    /// The operating system gave no random bytes for the serial number.
    #[error(
        "cannot draw a random certificate serial number from the operating system ({reason}); \
         retry, and check that /dev/urandom is readable"
    )]
    Random {
        /// The OS error.
        reason: String,
    },

    /// The signer (the agent) did not sign; its message says why (locked token, missing key, ...).
    #[error("the agent did not sign the root certificate of {gun} with key {key}: {source}")]
    Sign {
        /// The repository.
        gun: Gun,
        /// The key's name and ID.
        key: String,
        /// The signer's error.
        source: SignError,
    },

    /// The certificate could not be encoded or does not verify: a bug, not a user error.
    #[error(
        "cannot build the root certificate of {gun} ({reason}); this is a bug in tufa: \
         please report it with this message"
    )]
    Build {
        /// The repository.
        gun: Gun,
        /// What failed.
        reason: String,
    },
}

/// What x509-cert's builder needs to know about the signer: its public key and
/// ecdsa-with-SHA256 (parameters absent, RFC 5758). The signing itself happens in the signer,
/// between the builder's `finalize` (the TBS DER) and `assemble` (the signed certificate).
struct SignerKey(VerifyingKey);

impl Keypair for SignerKey {
    type VerifyingKey = VerifyingKey;

    fn verifying_key(&self) -> VerifyingKey {
        self.0
    }
}

impl SignatureAlgorithmIdentifier for SignerKey {
    type Params = AnyRef<'static>;

    const SIGNATURE_ALGORITHM_IDENTIFIER: AlgorithmIdentifier<Self::Params> =
        VerifyingKey::SIGNATURE_ALGORITHM_IDENTIFIER;
}

/// The names and extensions of Notary's root certificate, in the order Go writes them.
struct NotaryRoot {
    subject: Name,
}

impl BuilderProfile for NotaryRoot {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> builder::Result<Vec<Extension>> {
        // Criticality is spelled out rather than taken from x509-cert's defaults.
        let subject = tbs.subject();
        let key_usage = KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment);
        let ext_key_usage = ExtendedKeyUsage(vec![rfc5280::ID_KP_CODE_SIGNING]);
        let basic_constraints = BasicConstraints {
            ca: false,
            path_len_constraint: None,
        };
        Ok(vec![
            (true, &key_usage).to_extension(subject, &[])?,
            (false, &ext_key_usage).to_extension(subject, &[])?,
            (true, &basic_constraints).to_extension(subject, &[])?,
        ])
    }
}

/// `CN=<gun>` and nothing else, as a UTF8String (RFC 5280 §4.1.2.6); Notary matches the CN
/// text, not its string type.
fn common_name(gun: &Gun) -> Result<Name, x509_cert::der::Error> {
    let cn = AttributeTypeAndValue {
        oid: rfc4519::COMMON_NAME,
        value: Any::new(Tag::Utf8String, gun.as_str().as_bytes())?,
    };
    let rdns = RdnSequence::from(vec![RelativeDistinguishedName::try_from(vec![cn])?]);
    // A Name is its RDNSequence; x509-cert builds one from parts only behind `hazmat`.
    Name::from_der(&rdns.to_der()?)
}

/// A uniformly random serial in [1, 2^128), as Go's `rand.Int(rand.Reader, 1<<128)` (but
/// never zero: RFC 5280 wants it positive).
fn random_serial() -> Result<SerialNumber, CertificateError> {
    let mut bytes = [0u8; 16];
    while bytes == [0; 16] {
        getrandom::fill(&mut bytes).map_err(|e| CertificateError::Random {
            reason: e.to_string(),
        })?;
    }
    // Read as unsigned: a set top bit gets a leading zero octet, so the INTEGER stays positive.
    SerialNumber::new(&bytes).map_err(|e| CertificateError::Random {
        reason: format!("the serial does not encode: {e}"),
    })
}

/// NotBefore = `now`, NotAfter = `now` + 3650 days; no back-dating, as Notary.
fn validity(now: OffsetDateTime) -> Result<Validity, CertificateError> {
    let not_after = now
        .checked_add(time::Duration::days(ROOT_CERTIFICATE_VALIDITY_DAYS))
        .ok_or_else(|| CertificateError::Time {
            time: now,
            reason: "3650 days later is out of range".into(),
        })?;
    Ok(Validity::new(x509_time(now)?, x509_time(not_after)?))
}

/// A certificate time in whole seconds: UTCTime through 2049, GeneralizedTime from 2050
/// (RFC 5280 §4.1.2.5).
fn x509_time(t: OffsetDateTime) -> Result<Time, CertificateError> {
    let bad = |reason: String| CertificateError::Time { time: t, reason };
    let seconds = u64::try_from(t.unix_timestamp()).map_err(|_| bad("it is before 1970".into()))?;
    let date = DateTime::from_unix_duration(Duration::from_secs(seconds))
        .map_err(|e| bad(format!("it cannot be encoded ({e})")))?;
    if date.year() < 2050 {
        UtcTime::from_date_time(date)
            .map(Time::UtcTime)
            .map_err(|e| bad(format!("it cannot be a UTCTime ({e})")))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(date)))
    }
}

/// Reads the certificate back and checks that it carries the TBS that was signed and that its
/// DER signature verifies over it with `key`.
fn check_signature(der: &[u8], tbs_der: &[u8], key: &VerifyingKey) -> Result<(), String> {
    let certificate =
        Certificate::from_der(der).map_err(|e| format!("it does not parse back: {e}"))?;
    let tbs = certificate
        .tbs_certificate()
        .to_der()
        .map_err(|e| format!("its TBSCertificate does not encode: {e}"))?;
    if tbs != tbs_der {
        return Err("its TBSCertificate differs from the one signed".into());
    }
    let signature = certificate
        .signature()
        .as_bytes()
        .and_then(|bytes| DerSignature::from_bytes(bytes).ok())
        .ok_or("its signatureValue is not a DER ECDSA-Sig-Value")?;
    key.verify(&tbs, &signature)
        .map_err(|_| "its signature does not verify over its TBSCertificate".into())
}

#[cfg(test)]
mod tests {
    use x509_cert::der::Tagged as _;

    use super::*;

    #[test]
    fn times_switch_to_generalized_time_in_2050() {
        let at = |s: i64| OffsetDateTime::from_unix_timestamp(s).unwrap();
        // 2049-12-31T23:59:59Z and 2050-01-01T00:00:00Z.
        assert!(matches!(x509_time(at(2_524_607_999)), Ok(Time::UtcTime(_))));
        assert!(matches!(
            x509_time(at(2_524_608_000)),
            Ok(Time::GeneralTime(_))
        ));
        assert!(matches!(
            x509_time(at(-1)),
            Err(CertificateError::Time { .. })
        ));
        // Sub-second parts are dropped, as Go's encoder does.
        let t = at(1_700_000_000) + time::Duration::milliseconds(750);
        assert_eq!(
            x509_time(t).unwrap().to_unix_duration(),
            Duration::from_secs(1_700_000_000)
        );
    }

    #[test]
    fn validity_is_3650_days_from_now() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let v = validity(now).unwrap();
        assert_eq!(v.not_before.to_unix_duration().as_secs(), 1_700_000_000);
        assert_eq!(
            v.not_after.to_unix_duration().as_secs(),
            1_700_000_000 + 3650 * 86_400
        );
    }

    #[test]
    fn serials_are_positive_and_below_2_pow_128() {
        for _ in 0..64 {
            let serial = random_serial().unwrap();
            let bytes = serial.as_bytes();
            // Minimal two's complement: 16 value bytes plus at most a leading zero for the sign.
            assert!(!bytes.is_empty() && bytes.len() <= 17, "{bytes:02x?}");
            assert_eq!(bytes[0] & 0x80, 0, "{bytes:02x?}");
            if bytes.len() == 17 {
                assert_eq!(bytes[0], 0);
            }
            assert!(bytes.iter().any(|b| *b != 0));
        }
    }

    #[test]
    fn common_name_is_the_gun_alone() {
        let gun: Gun = "127.0.0.1:5000/dct/a,b+c=d\"e".parse().unwrap();
        let name = common_name(&gun).unwrap();
        assert_eq!(name.len(), 1);
        let cn = name.iter().next().unwrap();
        assert_eq!(cn.oid, rfc4519::COMMON_NAME);
        assert_eq!(cn.value.tag(), Tag::Utf8String);
        assert_eq!(cn.value.value(), gun.as_str().as_bytes());
    }
}
