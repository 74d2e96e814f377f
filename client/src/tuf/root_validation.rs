//! Root validation as Notary's client does it (notary: trustpinning/certs.go `ValidateRoot`,
//! trustpinning/trustpin.go, tuf/utils/x509.go `ValidateCertificate`).
//!
//! A root is usable when (1) its root-role keys are x509 certificate bundles with one leaf whose
//! CN names the GUN and which is valid now, (2) when a previous root is trusted, the previous
//! root's certificates meet the previous threshold over the new file, (3) on first contact the
//! `trust_pinning` configuration accepts at least one certificate (TOFU by default), and (4) the
//! certificates that passed meet the new root's own threshold.

use std::collections::HashMap;
use std::path::PathBuf;

use p256::pkcs8::DecodePublicKey as _;
use time::OffsetDateTime;
use tufa_proto::KeyId;
use x509_cert::der::{Decode as _, Encode as _};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage};
use x509_cert::spki::ObjectIdentifier;
use x509_cert::Certificate;

use crate::tuf::error::{UpdateError, UpdateWarning};
use crate::tuf::{Envelope, Gun, PublicKey, RoleKeys, RoleName, Root, Signed};

/// Notary's client `trust_pinning` configuration: how the first root of a repository is trusted.
///
/// Precedence as in Notary: `certs` (exact GUN, then the longest matching `prefix*`), then `ca`
/// (longest matching GUN prefix), then trust on first use unless `disable_tofu`. Once a root
/// is cached, the cached root is the pin and this configuration is not consulted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustPinning {
    /// GUN, or GUN prefix ending in `*`, to the root certificate key IDs (as root.json lists
    /// them, i.e. the x509 key IDs `docker trust inspect` shows) that may sign its root.
    pub certs: HashMap<String, Vec<KeyId>>,
    /// GUN prefix to a PEM file of CA certificates that must issue the root certificate.
    pub ca: HashMap<String, PathBuf>,
    /// Refuse to trust a repository's first root unless `certs` or `ca` covers it.
    pub disable_tofu: bool,
}

/// How a root's certificates are checked against the pinning configuration.
enum PinCheck {
    /// Only certificates whose key ID is listed.
    Certs(Vec<KeyId>),
    /// Only certificates that chain to one of these CAs.
    Ca(Vec<Certificate>),
    /// Any certificate (trust on first use, or a cached root already pins the repository).
    Tofu,
}

/// A root-role key whose PEM bundle has the shape Notary requires.
struct RootCert {
    id: KeyId,
    leaf: Certificate,
    intermediates: Vec<Certificate>,
}

/// Validates `new` (root.json of `gun`) and returns it typed, with any near-expiry warnings.
///
/// `prev` is the root trusted so far (cached or the previous link of a rotation chain), `None`
/// on first contact. `pinning` is applied only on first contact, as Notary applies an empty
/// configuration once a cached root exists. Expiry of the root file itself is the caller's
/// check: a cached root may be expired and still pin trust for the next one.
pub fn validate_root(
    prev: Option<&Root>,
    new: &Envelope,
    gun: &Gun,
    pinning: Option<&TrustPinning>,
    now: OffsetDateTime,
) -> Result<(Signed<Root>, Vec<UpdateWarning>), UpdateError> {
    let root: Signed<Root> = new.decode()?;
    let version = root.signed.version;
    let mut warnings = Vec::new();
    let (certs, mut problems) = root_certs(&root.signed);
    let mut valid = Vec::new();
    for cert in certs {
        match check_leaf(&cert, gun, Some(now)) {
            Ok(near_expiry) => {
                if let Some(not_after) = near_expiry {
                    warnings.push(UpdateWarning::CertificateNearExpiry {
                        gun: gun.clone(),
                        key_id: cert.id,
                        not_after,
                    });
                }
                valid.push(cert);
            }
            Err(problem) => problems.push(format!("key {}: {problem}", cert.id.short())),
        }
    }
    if valid.is_empty() {
        return Err(UpdateError::NoValidRootCertificate {
            gun: gun.clone(),
            version,
            problems: problems.join("; "),
        });
    }

    if let Some(prev) = prev {
        // The previous root's certificates sign for it whether or not they have expired since.
        let (prev_certs, _) = root_certs(prev);
        let trusted: Vec<KeyId> = prev_certs
            .iter()
            .filter(|c| check_leaf(c, gun, None).is_ok())
            .map(|c| c.id)
            .collect();
        let keys = RoleKeys::new(
            RoleName::ROOT,
            &RoleName::ROOT,
            &trusted,
            &prev.keys,
            prev.roles.root.threshold,
        )?;
        new.verify(&keys)
            .map_err(|source| UpdateError::RootRotation {
                gun: gun.clone(),
                from: prev.version,
                to: version,
                source: Box::new(source),
            })?;
    }

    let check = pin_check(pinning, gun, prev.is_none(), now)?;
    let mut rejected = Vec::new();
    valid.retain(|cert| match pin_accepts(&check, cert, now) {
        Ok(()) => true,
        Err(why) => {
            rejected.push(format!("key {}: {why}", cert.id.short()));
            false
        }
    });
    if valid.is_empty() {
        return Err(UpdateError::TrustPinning {
            gun: gun.clone(),
            problem: format!(
                "unable to match any certificates to trust_pinning config ({})",
                rejected.join("; ")
            ),
        });
    }

    let ids: Vec<KeyId> = valid.iter().map(|c| c.id).collect();
    let keys = RoleKeys::new(
        RoleName::ROOT,
        &RoleName::ROOT,
        &ids,
        &root.signed.keys,
        root.signed.roles.root.threshold,
    )?;
    new.verify(&keys)?;
    Ok((root, warnings))
}

/// Checks one root-role key as Notary would at `now`: an x509 bundle with one leaf whose CN
/// names `gun` and which is valid. The error says what is wrong.
pub fn check_root_key(key: &PublicKey, gun: &Gun, now: OffsetDateTime) -> Result<(), String> {
    let (leaf, intermediates) = bundle(key)?;
    let cert = RootCert {
        id: key.id(),
        leaf,
        intermediates,
    };
    check_leaf(&cert, gun, Some(now)).map(|_| ())
}

/// Notary's `MatchCNToGun`: the CN is the GUN, or ends in `*` and the GUN starts with the rest.
pub fn cn_matches_gun(common_name: &str, gun: &Gun) -> bool {
    match common_name.strip_suffix('*') {
        Some(_) => gun.as_str().starts_with(common_name.trim_end_matches('*')),
        None => common_name == gun.as_str(),
    }
}

/// The leaf and intermediates of every root-role key (Notary's `parseAllCerts`), and why the
/// other keys were passed over.
fn root_certs(root: &Root) -> (Vec<RootCert>, Vec<String>) {
    let mut certs = Vec::new();
    let mut problems = Vec::new();
    for id in &root.roles.root.keyids {
        let Some(key) = root.keys.get(id) else {
            problems.push(format!("key {}: not in root.json keys", id.short()));
            continue;
        };
        match bundle(key) {
            Ok((leaf, intermediates)) => certs.push(RootCert {
                id: *id,
                leaf,
                intermediates,
            }),
            Err(problem) => problems.push(format!("key {}: {problem}", id.short())),
        }
    }
    (certs, problems)
}

/// Splits an x509 key's PEM bundle into its single leaf (first) and its CA certificates.
fn bundle(key: &PublicKey) -> Result<(Certificate, Vec<Certificate>), String> {
    if !key.key_type().is_x509() {
        return Err(format!(
            "it is an {} key, but Notary root keys must be ecdsa-x509 or rsa-x509 certificates",
            key.key_type()
        ));
    }
    let ders = key.certificates().map_err(|e| e.to_string())?;
    let mut certs = Vec::with_capacity(ders.len());
    for (i, der) in ders.iter().enumerate() {
        certs.push(
            Certificate::from_der(der)
                .map_err(|e| format!("certificate {i} of its PEM bundle does not parse ({e})"))?,
        );
    }
    let leaves = certs.iter().filter(|c| !is_ca(c)).count();
    if leaves != 1 {
        return Err(format!(
            "its PEM bundle has {leaves} leaf (non-CA) certificates; exactly one is required"
        ));
    }
    if is_ca(&certs[0]) {
        return Err("its PEM bundle does not start with the leaf certificate".into());
    }
    let leaf = certs.remove(0);
    let intermediates = certs.into_iter().filter(is_ca).collect();
    Ok((leaf, intermediates))
}

/// The GUN, SHA-1, RSA size and (with `now`) validity checks of a root leaf certificate.
///
/// Returns the NotAfter time when it is less than six months away.
fn check_leaf(
    cert: &RootCert,
    gun: &Gun,
    now: Option<OffsetDateTime>,
) -> Result<Option<OffsetDateTime>, String> {
    let cn = common_name(&cert.leaf).unwrap_or_default();
    if !cn_matches_gun(&cn, gun) {
        return Err(format!(
            "its certificate is for CN {cn:?}, not for this repository {gun}"
        ));
    }
    validate_certificate(&cert.leaf, now)
}

/// Notary's `ValidateCertificate`: window order, no SHA-1, RSA ≥ 2048 and, with `now`,
/// NotBefore ≤ now + 1 day and NotAfter ≥ now. Returns NotAfter when within six months.
pub(crate) fn validate_certificate(
    cert: &Certificate,
    now: Option<OffsetDateTime>,
) -> Result<Option<OffsetDateTime>, String> {
    let (not_before, not_after) = validity(cert);
    if not_before > not_after {
        return Err("its certificate's validity window ends before it starts".into());
    }
    let sig_alg = cert.signature_algorithm().oid;
    if [SHA1_WITH_RSA, DSA_WITH_SHA1, ECDSA_WITH_SHA1].contains(&sig_alg) {
        return Err("its certificate is signed with SHA-1, which Notary refuses".into());
    }
    let spki = cert.tbs_certificate().subject_public_key_info();
    if spki.algorithm.oid == RSA_ENCRYPTION {
        use rsa::traits::PublicKeyParts as _;
        let der = spki.to_der().map_err(|e| e.to_string())?;
        let key = rsa::RsaPublicKey::from_public_key_der(&der)
            .map_err(|e| format!("its RSA key does not parse ({e})"))?;
        let bits = key.n().as_ref().bits();
        if bits < 2048 {
            return Err(format!(
                "its RSA key has {bits} bits; Notary requires at least 2048"
            ));
        }
    }
    let Some(now) = now else {
        return Ok(None);
    };
    if now + time::Duration::days(1) < not_before {
        return Err(format!(
            "its certificate is not valid before {not_before} (more than a day from now)"
        ));
    }
    if now > not_after {
        return Err(format!("its certificate expired at {not_after}"));
    }
    Ok((not_after < add_months(now, 6)).then_some(not_after))
}

fn validity(cert: &Certificate) -> (OffsetDateTime, OffsetDateTime) {
    let v = cert.tbs_certificate().validity();
    let t = |time: x509_cert::time::Time| {
        let secs = i64::try_from(time.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
        OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    };
    (t(v.not_before), t(v.not_after))
}

/// Go's `AddDate(0, n, 0)`: the day of the month is kept and overflow rolls into the next month.
fn add_months(t: OffsetDateTime, n: i32) -> OffsetDateTime {
    let months = t.year() * 12 + i32::from(u8::from(t.month())) - 1 + n;
    let (year, month) = (months.div_euclid(12), (months.rem_euclid(12) + 1) as u8);
    let first = time::Month::try_from(month)
        .ok()
        .and_then(|m| time::Date::from_calendar_date(year, m, 1).ok());
    match first {
        Some(first) => {
            first.with_time(t.time()).assume_offset(t.offset())
                + time::Duration::days(i64::from(t.day()) - 1)
        }
        None => t,
    }
}

fn common_name(cert: &Certificate) -> Option<String> {
    cert.tbs_certificate()
        .subject()
        .common_name()
        .ok()
        .flatten()
        .map(|cn| cn.value().into_owned())
}

/// Go's `IsCA`: a basicConstraints extension with `cA` true.
fn is_ca(cert: &Certificate) -> bool {
    matches!(
        cert.tbs_certificate().get_extension::<BasicConstraints>(),
        Ok(Some((_, bc))) if bc.ca
    )
}

/// Notary's `NewTrustPinChecker`.
fn pin_check(
    pinning: Option<&TrustPinning>,
    gun: &Gun,
    first_bootstrap: bool,
    now: OffsetDateTime,
) -> Result<PinCheck, UpdateError> {
    let Some(pinning) = pinning else {
        return Ok(PinCheck::Tofu);
    };
    let fail = |problem: String| UpdateError::TrustPinning {
        gun: gun.clone(),
        problem,
    };
    if let Some(ids) = pinning.certs.get(gun.as_str()) {
        return Ok(PinCheck::Certs(ids.clone()));
    }
    let wildcard = pinning
        .certs
        .iter()
        .filter_map(|(pattern, ids)| {
            let prefix = pattern.strip_suffix('*')?;
            gun.as_str().starts_with(prefix).then_some((pattern, ids))
        })
        .max_by_key(|(pattern, _)| pattern.len());
    if let Some((_, ids)) = wildcard {
        return Ok(PinCheck::Certs(ids.clone()));
    }
    let ca = pinning
        .ca
        .iter()
        .filter(|(prefix, _)| gun.as_str().starts_with(prefix.as_str()))
        .max_by_key(|(prefix, _)| prefix.len());
    if let Some((_, path)) = ca {
        let pem = std::fs::read(path).map_err(|e| {
            fail(format!(
                "could not read the pinned CA file {} ({e})",
                path.display()
            ))
        })?;
        let cas: Vec<Certificate> = pem::parse_many(&pem)
            .map_err(|e| fail(format!("{} is not PEM ({e})", path.display())))?
            .into_iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .filter_map(|b| Certificate::from_der(b.contents()).ok())
            .filter(|c| validate_certificate(c, Some(now)).is_ok())
            .collect();
        if cas.is_empty() {
            return Err(fail(format!(
                "{} holds no valid CA certificate",
                path.display()
            )));
        }
        return Ok(PinCheck::Ca(cas));
    }
    if pinning.disable_tofu && first_bootstrap {
        return Err(fail(
            "TOFU is disabled and neither `certs` nor `ca` covers this GUN (Notary: \"invalid \
             trust pinning specified\")"
                .into(),
        ));
    }
    Ok(PinCheck::Tofu)
}

fn pin_accepts(check: &PinCheck, cert: &RootCert, now: OffsetDateTime) -> Result<(), String> {
    match check {
        PinCheck::Tofu => Ok(()),
        PinCheck::Certs(ids) if ids.contains(&cert.id) => Ok(()),
        PinCheck::Certs(_) => Err("its ID is not among the pinned certificate IDs".into()),
        PinCheck::Ca(cas) => chain_to_ca(&cert.leaf, &cert.intermediates, cas, now),
    }
}

/// Go's `Certificate.Verify` with default options, as Notary's CA pinning calls it: a chain of
/// valid signatures from the leaf through the bundle's intermediates to a pinned CA, every
/// issuer a valid CA, and the leaf usable for server authentication (no EKU, or serverAuth or
/// anyExtendedKeyUsage).
fn chain_to_ca(
    leaf: &Certificate,
    intermediates: &[Certificate],
    cas: &[Certificate],
    now: OffsetDateTime,
) -> Result<(), String> {
    if let Ok(Some((_, eku))) = leaf.tbs_certificate().get_extension::<ExtendedKeyUsage>() {
        if !eku.0.iter().any(|o| *o == EKU_SERVER_AUTH || *o == EKU_ANY) {
            return Err(
                "its certificate's extended key usage does not allow serverAuth, which CA \
                 pinning requires (as in Go's x509 verification)"
                    .into(),
            );
        }
    }
    let mut current = leaf;
    for _ in 0..=intermediates.len() {
        let issuer_name = current.tbs_certificate().issuer();
        if cas
            .iter()
            .any(|ca| ca.tbs_certificate().subject() == issuer_name && signed_by(current, ca))
        {
            return Ok(());
        }
        let next = intermediates.iter().find(|i| {
            i.tbs_certificate().subject() == issuer_name
                && validate_certificate(i, Some(now)).is_ok()
                && signed_by(current, i)
        });
        match next {
            Some(next) => current = next,
            None => break,
        }
    }
    Err("its certificate does not chain to the pinned CA".into())
}

/// Whether `issuer`'s key made `cert`'s signature (P-256 ECDSA or RSA PKCS#1 v1.5, SHA-2).
fn signed_by(cert: &Certificate, issuer: &Certificate) -> bool {
    use p256::ecdsa::signature::Verifier as _;

    if !is_ca(issuer) {
        return false;
    }
    let (Ok(tbs), Ok(spki)) = (
        cert.tbs_certificate().to_der(),
        issuer.tbs_certificate().subject_public_key_info().to_der(),
    ) else {
        return false;
    };
    let Some(sig) = cert.signature().as_bytes() else {
        return false;
    };
    let alg = cert.signature_algorithm().oid;
    if alg == ECDSA_WITH_SHA256 {
        let (Ok(key), Ok(sig)) = (
            p256::ecdsa::VerifyingKey::from_public_key_der(&spki),
            p256::ecdsa::Signature::from_der(sig),
        ) else {
            return false;
        };
        return key.verify(&tbs, &sig).is_ok();
    }
    use sha2::Digest as _;
    let Ok(key) = rsa::RsaPublicKey::from_public_key_der(&spki) else {
        return false;
    };
    let result = if alg == SHA256_WITH_RSA {
        key.verify(
            rsa::Pkcs1v15Sign::new::<rsa::sha2::Sha256>(),
            &sha2::Sha256::digest(&tbs),
            sig,
        )
    } else if alg == SHA384_WITH_RSA {
        key.verify(
            rsa::Pkcs1v15Sign::new::<rsa::sha2::Sha384>(),
            &sha2::Sha384::digest(&tbs),
            sig,
        )
    } else if alg == SHA512_WITH_RSA {
        key.verify(
            rsa::Pkcs1v15Sign::new::<rsa::sha2::Sha512>(),
            &sha2::Sha512::digest(&tbs),
            sig,
        )
    } else {
        return false;
    };
    result.is_ok()
}

const SHA1_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const DSA_WITH_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10040.4.3");
const ECDSA_WITH_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EKU_SERVER_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
const EKU_ANY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO_ROOT: &[u8] = include_bytes!("../../tests/data/notary/demo/root.json");

    fn gun(s: &str) -> Gun {
        s.parse().unwrap()
    }

    fn at(text: &str) -> OffsetDateTime {
        crate::tuf::Expires::parse(text).unwrap().time()
    }

    fn demo() -> Envelope {
        Envelope::from_slice(&RoleName::ROOT, DEMO_ROOT).unwrap()
    }

    #[test]
    fn cn_matching_is_notarys() {
        let g = gun("docker.io/library/alpine");
        assert!(cn_matches_gun("docker.io/library/alpine", &g));
        assert!(cn_matches_gun("docker.io/library/*", &g));
        assert!(cn_matches_gun("docker.io/*", &g));
        assert!(cn_matches_gun("*", &g));
        assert!(!cn_matches_gun("docker.io/library/alp", &g));
        assert!(!cn_matches_gun("docker.io/other/*", &g));
        assert!(!cn_matches_gun("docker.io/library/alpine/", &g));
    }

    #[test]
    fn the_demo_root_validates_on_first_contact() {
        let (root, warnings) = validate_root(
            None,
            &demo(),
            &gun("localhost:5000/demo"),
            Some(&TrustPinning::default()),
            at("2026-11-22T05:00:00Z"),
        )
        .unwrap();
        assert_eq!(root.signed.version, 2);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn the_certificate_must_name_the_gun() {
        let err = validate_root(
            None,
            &demo(),
            &gun("localhost:5000/other"),
            None,
            at("2026-11-22T05:00:00Z"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no usable root certificate"), "{err}");
        assert!(err.contains("CN \"localhost:5000/demo\""), "{err}");
    }

    #[test]
    fn certificate_validity_window() {
        let g = gun("localhost:5000/demo");
        // The certificate is valid from 2026-11-22T04:01:11Z for ten years.
        let err = validate_root(None, &demo(), &g, None, at("2026-11-21T04:00:00Z"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid before"), "{err}");
        // Less than a day early is tolerated, as in Notary.
        validate_root(None, &demo(), &g, None, at("2026-11-21T05:00:00Z")).unwrap();
        let err = validate_root(None, &demo(), &g, None, at("2036-11-20T00:00:00Z"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expired at"), "{err}");
        let (_, warnings) =
            validate_root(None, &demo(), &g, None, at("2036-08-01T00:00:00Z")).unwrap();
        assert!(
            matches!(
                warnings.as_slice(),
                [UpdateWarning::CertificateNearExpiry { .. }]
            ),
            "{warnings:?}"
        );
    }

    #[test]
    fn pinning_by_cert_id() {
        let g = gun("localhost:5000/demo");
        let now = at("2026-11-22T05:00:00Z");
        let real_id = validate_root(None, &demo(), &g, None, now)
            .unwrap()
            .0
            .signed
            .roles
            .root
            .keyids[0];
        let mut pinning = TrustPinning {
            disable_tofu: true,
            ..TrustPinning::default()
        };
        let err = validate_root(None, &demo(), &g, Some(&pinning), now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("TOFU is disabled"), "{err}");

        pinning
            .certs
            .insert("localhost:5000/*".into(), vec![KeyId::from_bytes([0; 32])]);
        let err = validate_root(None, &demo(), &g, Some(&pinning), now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unable to match any certificates"), "{err}");

        // The exact GUN wins over the wildcard.
        pinning.certs.insert(g.to_string(), vec![real_id]);
        validate_root(None, &demo(), &g, Some(&pinning), now).unwrap();

        // A cached root is the pin: the configuration no longer applies.
        pinning.certs.clear();
        validate_root(None, &demo(), &g, None, now).unwrap();
    }

    #[test]
    fn ca_pinning_needs_a_chain() {
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("ca.pem");
        // The demo leaf is self-signed but not a CA, so it cannot anchor itself.
        let leaf_pem = demo()
            .decode::<Root>()
            .unwrap()
            .signed
            .keys
            .values()
            .find(|k| k.key_type().is_x509())
            .unwrap()
            .public()
            .to_vec();
        std::fs::write(&ca_path, &leaf_pem).unwrap();
        let g = gun("localhost:5000/demo");
        let pinning = TrustPinning {
            ca: HashMap::from([("localhost:5000/".to_owned(), ca_path)]),
            ..TrustPinning::default()
        };
        let err = validate_root(
            None,
            &demo(),
            &g,
            Some(&pinning),
            at("2026-11-22T05:00:00Z"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("trust_pinning"), "{err}");
    }

    #[test]
    fn go_add_date_months() {
        assert_eq!(
            add_months(at("2026-08-31T10:00:00Z"), 6),
            at("2027-03-03T10:00:00Z")
        );
        assert_eq!(
            add_months(at("2026-11-22T00:00:00Z"), 6),
            at("2027-05-22T00:00:00Z")
        );
    }
}
