//! Notary root certificates signed by a key in the agent: a real SoftHSM token per test, the
//! certificate read back with x509-cert, p256 and the openssl CLI.

use std::path::Path;
use std::process::Output;

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{DerSignature, Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use tufa_client::agent::{AgentClient, AgentKey, SignContext};
use tufa_client::tuf::{
    canonical, certificate_pem, root_certificate, x509_public_key, CertificateError, Gun, KeyId,
    KeyType, RoleName,
};
use tufa_proto::v1;
use tufa_testkit::pki::openssl;
use tufa_tests::{require, Person};
use x509_cert::der::asn1::BitString;
use x509_cert::der::oid::db::{rfc4519, rfc5280, rfc5912};
use x509_cert::der::{Any, Decode as _, Encode as _};
use x509_cert::ext::pkix::name::DirectoryString;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::time::Time;
use x509_cert::{Certificate, Version};

const GUN: &str = "127.0.0.1:5000/dct/app";

fn gun() -> Gun {
    GUN.parse().expect("GUN")
}

/// A fresh token and agent with one generated key, `root`.
async fn agent_with_root_key(label: &str) -> (Person, AgentClient, AgentKey) {
    let person = Person::new(label);
    let cwd = tempfile::tempdir().expect("tempdir");
    person
        .agent
        .tufa_ok(cwd.path(), &["key", "generate", "root"]);
    let client = person.agent.client().await;
    let key = client.key("root").await.expect("the generated key");
    (person, client, key)
}

/// Notary's root certificate for GUN, signed by `key` through the agent.
async fn certificate(
    client: &AgentClient,
    key: &AgentKey,
    now: OffsetDateTime,
) -> Result<Vec<u8>, CertificateError> {
    let signer = client.signer(key, SignContext::new(&gun(), &RoleName::ROOT));
    root_certificate(&signer, &gun(), now).await
}

fn unix_seconds(t: &Time) -> i64 {
    t.to_unix_duration().as_secs() as i64
}

/// The check that really verifies a self-signed leaf's own signature: without `-check_ss_sig`
/// openssl trusts a certificate found in `-CAfile` as it is, bad signature or not.
fn openssl_verify_self_signed(dir: &Path, pem_file: &str) -> Output {
    openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            pem_file,
            "-check_ss_sig",
            "-partial_chain",
            pem_file,
        ],
    )
}

/// `openssl verify` of the self-signed `pem_file` fails on its signature (what openssl said is
/// printed, labelled `what`).
fn openssl_refuses_the_signature(dir: &Path, pem_file: &str, what: &str) {
    let out = openssl_verify_self_signed(dir, pem_file);
    eprintln!(
        "openssl verify ({what}): {:?}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(
        text(&out.stderr).contains("certificate signature failure"),
        "{out:?}"
    );
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[tokio::test]
async fn root_certificate_has_every_field_notary_writes() {
    let (me, client, key) = agent_with_root_key("cert-fields").await;
    let now = OffsetDateTime::now_utc();
    let der = certificate(&client, &key, now).await.unwrap();

    let cert = Certificate::from_der(&der).expect("x509-cert parses it");
    let tbs = cert.tbs_certificate();
    assert_eq!(tbs.version(), Version::V3);

    // Serial: random, positive, below 2^128 (16 value octets, plus a zero for the sign).
    let serial = tbs.serial_number().as_bytes();
    assert!(serial.len() <= 17 && serial[0] & 0x80 == 0, "{serial:02x?}");
    assert!(serial.len() < 17 || serial[0] == 0, "{serial:02x?}");
    assert!(serial.iter().any(|b| *b != 0));

    // ecdsa-with-SHA256 with absent parameters, inside and outside the TBS.
    for alg in [tbs.signature(), cert.signature_algorithm()] {
        assert_eq!(alg.oid, rfc5912::ECDSA_WITH_SHA_256);
        assert!(alg.parameters.is_none());
    }

    // Issuer = Subject = CN=<gun>, nothing else.
    assert_eq!(tbs.issuer(), tbs.subject());
    let rdns: Vec<_> = tbs.subject().iter_rdn().collect();
    assert_eq!(rdns.len(), 1);
    let atvs: Vec<_> = rdns[0].iter().collect();
    assert_eq!(atvs.len(), 1);
    assert_eq!(atvs[0].oid, rfc4519::COMMON_NAME);
    match tbs.subject().common_name().unwrap() {
        Some(DirectoryString::Utf8String(cn)) => assert_eq!(cn, GUN),
        other => panic!("CN is {other:?}"),
    }

    // NotBefore = now (whole seconds, no back-dating), NotAfter = now + 3650 days, UTCTime.
    let validity = tbs.validity();
    assert!(matches!(validity.not_before, Time::UtcTime(_)));
    assert!(matches!(validity.not_after, Time::UtcTime(_)));
    assert_eq!(unix_seconds(&validity.not_before), now.unix_timestamp());
    assert_eq!(
        unix_seconds(&validity.not_after),
        now.unix_timestamp() + 3650 * 86_400
    );

    // The agent's key, byte for byte.
    assert_eq!(tbs.subject_public_key_info().to_der().unwrap(), key.spki());
    assert!(tbs.issuer_unique_id().is_none() && tbs.subject_unique_id().is_none());

    // Exactly three extensions, in Go's order, with Notary's criticality.
    let extensions = tbs.extensions().expect("extensions");
    let ids: Vec<_> = extensions.iter().map(|e| (e.extn_id, e.critical)).collect();
    assert_eq!(
        ids,
        [
            (rfc5280::ID_CE_KEY_USAGE, true),
            (rfc5280::ID_CE_EXT_KEY_USAGE, false),
            (rfc5280::ID_CE_BASIC_CONSTRAINTS, true),
        ]
    );
    let (_, key_usage) = tbs.get_extension::<KeyUsage>().unwrap().unwrap();
    assert_eq!(
        key_usage.0,
        KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment
    );
    let (_, ext_key_usage) = tbs.get_extension::<ExtendedKeyUsage>().unwrap().unwrap();
    assert_eq!(ext_key_usage.0, [rfc5280::ID_KP_CODE_SIGNING]);
    let (_, basic) = tbs.get_extension::<BasicConstraints>().unwrap().unwrap();
    assert!(!basic.ca);
    assert_eq!(basic.path_len_constraint, None);

    // The agent signed in the context of the root role of this GUN.
    let signs: Vec<_> = me
        .agent
        .audit_lines()
        .into_iter()
        .filter(|l| l["op"] == "sign")
        .collect();
    assert_eq!(signs.len(), 1, "{signs:?}");
    assert_eq!(signs[0]["role"], "root");
    assert_eq!(signs[0]["gun"], GUN);
    assert_eq!(signs[0]["result"], "ok");

    // Two certificates never share a serial.
    let again = certificate(&client, &key, now).await.unwrap();
    let again = Certificate::from_der(&again).unwrap();
    assert_ne!(again.tbs_certificate().serial_number(), tbs.serial_number());
}

#[tokio::test]
async fn validity_past_2049_is_generalized_time() {
    let (_me, client, key) = agent_with_root_key("cert-2050").await;
    // 2045-06-01T12:00:00.5Z: NotBefore stays UTCTime, NotAfter (2055) must be GeneralizedTime.
    let now = OffsetDateTime::from_unix_timestamp(2_379_931_200).unwrap()
        + time::Duration::milliseconds(500);
    let der = certificate(&client, &key, now).await.unwrap();
    let cert = Certificate::from_der(&der).unwrap();
    let validity = cert.tbs_certificate().validity();
    assert!(matches!(validity.not_before, Time::UtcTime(_)));
    assert!(matches!(validity.not_after, Time::GeneralTime(_)));
    assert_eq!(unix_seconds(&validity.not_before), 2_379_931_200);
    assert_eq!(
        unix_seconds(&validity.not_after),
        2_379_931_200 + 3650 * 86_400
    );
}

#[tokio::test]
async fn signature_is_der_ecdsa_over_sha256_of_the_tbs() {
    let (_me, client, key) = agent_with_root_key("cert-sig").await;
    let der = certificate(&client, &key, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let cert = Certificate::from_der(&der).unwrap();
    let tbs = cert.tbs_certificate().to_der().unwrap();
    let signature_value = cert.signature().as_bytes().expect("whole octets");

    // An ECDSA-Sig-Value (SEQUENCE of r and s), not the agent's 64-byte r||s.
    assert_eq!(signature_value[0], 0x30, "{signature_value:02x?}");
    let signature = DerSignature::from_bytes(signature_value).expect("DER ECDSA-Sig-Value");
    let vk = VerifyingKey::from_public_key_der(key.spki()).unwrap();
    vk.verify(&tbs, &signature)
        .expect("verifies over the TBSCertificate with the key's SPKI");

    // And over nothing else: not the hash of the hash, not another TBS.
    let digest = Sha256::digest(&tbs);
    assert!(vk.verify(&digest, &signature).is_err());
    let mut other = tbs.clone();
    *other.last_mut().unwrap() ^= 1;
    assert!(vk.verify(&other, &signature).is_err());
}

#[tokio::test]
async fn openssl_reads_it_and_checks_its_signature() {
    require("openssl", "apt-get install openssl");
    let (_me, client, key) = agent_with_root_key("cert-openssl").await;
    let der = certificate(&client, &key, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), certificate_pem(&der)).unwrap();

    let out = openssl(dir.path(), &["x509", "-in", "cert.pem", "-noout", "-text"]);
    assert!(out.status.success(), "{out:?}");
    let dump = text(&out.stdout);
    eprintln!("openssl x509 -noout -text:\n{dump}");
    for expected in [
        "Version: 3 (0x2)",
        "Signature Algorithm: ecdsa-with-SHA256",
        &format!("Issuer: CN = {GUN}\n"),
        &format!("Subject: CN = {GUN}\n"),
        "Public Key Algorithm: id-ecPublicKey",
        "ASN1 OID: prime256v1",
        "X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment\n",
        "X509v3 Extended Key Usage: \n                Code Signing\n",
        "X509v3 Basic Constraints: critical\n                CA:FALSE\n",
    ] {
        assert!(dump.contains(expected), "missing {expected:?} in:\n{dump}");
    }
    assert_eq!(dump.matches("X509v3 ").count(), 4, "{dump}"); // the heading and three

    let out = openssl_verify_self_signed(dir.path(), "cert.pem");
    eprintln!(
        "openssl verify (good): {:?}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "cert.pem: OK\n");

    // The same certificate with one bit of s flipped.
    let mut bad = der.clone();
    *bad.last_mut().unwrap() ^= 1;
    std::fs::write(dir.path().join("bad.pem"), certificate_pem(&bad)).unwrap();
    openssl_refuses_the_signature(dir.path(), "bad.pem", "corrupted");

    // Notary's YubiKey bug (docker/cli#3303): a correct signature written as raw r||s.
    let mut parts = Vec::<Any>::from_der(&der).unwrap();
    let signature = Signature::from_der(
        Certificate::from_der(&der)
            .unwrap()
            .signature()
            .as_bytes()
            .unwrap(),
    )
    .unwrap();
    parts[2] = Any::encode_from(&BitString::from_bytes(&signature.to_bytes()).unwrap()).unwrap();
    let raw = parts.to_der().unwrap();
    std::fs::write(dir.path().join("raw.pem"), certificate_pem(&raw)).unwrap();
    openssl_refuses_the_signature(dir.path(), "raw.pem", "raw r||s");
}

#[tokio::test]
async fn x509_key_is_found_under_the_agent_key_id() {
    let (_me, client, key) = agent_with_root_key("cert-keyid").await;
    let der = certificate(&client, &key, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let root_key = x509_public_key(&der).unwrap();
    assert_eq!(root_key.key_type(), &KeyType::EcdsaX509);

    // `public` is base64 of the Go-exact PEM text, and the certificate reads back from it.
    let object = root_key.to_value();
    assert_eq!(object["keytype"], "ecdsa-x509");
    assert!(object["keyval"]["private"].is_null());
    use base64::Engine as _;
    let public = base64::engine::general_purpose::STANDARD
        .decode(object["keyval"]["public"].as_str().unwrap())
        .unwrap();
    assert_eq!(public, certificate_pem(&der).into_bytes());
    assert_eq!(root_key.certificates().unwrap(), std::slice::from_ref(&der));

    // Canonical ID = the bare ecdsa key of the leaf SPKI = the agent's key ID.
    let canonical_id = root_key.canonical_id().unwrap();
    assert_eq!(canonical_id, key.id);
    assert_eq!(canonical_id, KeyId::for_ecdsa_spki(key.spki()));

    // TUF ID = SHA-256 of the canonical key object, and differs from the canonical ID.
    let canonical_json = canonical::to_canonical(&object).unwrap();
    assert_eq!(
        root_key.id(),
        KeyId::from_bytes(Sha256::digest(&canonical_json).into())
    );
    assert_ne!(root_key.id(), canonical_id);
}

#[tokio::test]
async fn certificate_is_stored_with_the_key() {
    let (_me, client, key) = agent_with_root_key("cert-store").await;
    assert!(key.certificate.is_none());
    let der = certificate(&client, &key, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let stored = client
        .set_certificate(&key.id.to_string(), der.clone())
        .await
        .unwrap();
    assert_eq!(stored.certificate.as_ref(), Some(&der));

    let keys = client.list_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id, key.id);
    assert_eq!(keys[0].certificate.as_ref(), Some(&der));
}

#[tokio::test]
async fn keys_that_are_not_p256_are_refused_before_signing() {
    require("openssl", "apt-get install openssl");
    let (me, client, _key) = agent_with_root_key("cert-bad").await;
    let dir = tempfile::tempdir().unwrap();

    let mut spkis = vec![
        ("garbage", b"not a public key".to_vec()),
        ("empty", Vec::new()),
    ];
    for (name, genpkey) in [
        (
            "p384",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"][..],
        ),
        ("ed25519", &["-algorithm", "ed25519"][..]),
    ] {
        let key_file = format!("{name}.pem");
        let mut args = vec!["genpkey"];
        args.extend_from_slice(genpkey);
        args.extend_from_slice(&["-out", &key_file]);
        assert!(openssl(dir.path(), &args).status.success());
        let out = openssl(
            dir.path(),
            &["pkey", "-in", &key_file, "-pubout", "-outform", "DER"],
        );
        assert!(out.status.success(), "{out:?}");
        spkis.push((name, out.stdout));
    }

    for (name, spki) in spkis {
        let key = AgentKey::try_from(v1::Key {
            key_id: KeyId::for_ecdsa_spki(&spki).to_string(),
            name: name.into(),
            public_key_spki: spki,
            ..Default::default()
        })
        .unwrap();
        let err = certificate(&client, &key, OffsetDateTime::now_utc())
            .await
            .unwrap_err();
        assert!(
            matches!(err, CertificateError::UnsupportedKey { .. }),
            "{name}: {err:?}"
        );
        let message = err.to_string();
        eprintln!("{name}: {message}");
        assert!(
            message.contains(&format!("'{name}'"))
                && message.contains("ECDSA P-256")
                && message.contains("tufa key generate"),
            "{name}: {message}"
        );
    }
    assert!(
        !me.agent.audit_lines().iter().any(|l| l["op"] == "sign"),
        "nothing was sent to the agent"
    );
}

#[tokio::test]
async fn a_p256_key_the_agent_does_not_hold_fails_at_signing() {
    require("openssl", "apt-get install openssl");
    let (_me, client, _key) = agent_with_root_key("cert-missing").await;
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
    ];
    let out = openssl(dir.path(), &[&args[..], &["-out", "k.pem"]].concat());
    assert!(out.status.success(), "{out:?}");
    let out = openssl(
        dir.path(),
        &["pkey", "-in", "k.pem", "-pubout", "-outform", "DER"],
    );
    assert!(out.status.success(), "{out:?}");
    let key = AgentKey::try_from(v1::Key {
        key_id: KeyId::for_ecdsa_spki(&out.stdout).to_string(),
        name: "elsewhere".into(),
        public_key_spki: out.stdout,
        ..Default::default()
    })
    .unwrap();
    let err = certificate(&client, &key, OffsetDateTime::now_utc())
        .await
        .unwrap_err();
    let message = err.to_string();
    eprintln!("{message}");
    assert!(matches!(err, CertificateError::Sign { .. }), "{err:?}");
    assert!(
        message.contains("did not sign the root certificate of 127.0.0.1:5000/dct/app")
            && message.contains("'elsewhere'"),
        "{message}"
    );
}
