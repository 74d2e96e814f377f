//! Keys made by other tools, and key references by URI: a P-256 key that ykman or
//! yubico-piv-tool left in a YubiKey slot (with a certificate) is listed, refused until adopted,
//! and signs once `tufa key adopt` wrote tufa's marker next to it; every key has a URI
//! (`tufa key list --uri`) that any command taking KEY accepts.

use std::time::Duration;

use tufa_client::agent::SignContext;
use tufa_tests::yubikey::{open, SimYubiKey, PIN};
use tufa_tests::{signing, verify_with_p256, Agent, SoftHsm};
use x509_cert::der::{Decode as _, Encode as _};
use yubikey::piv::{AlgorithmId, SlotId};

fn ctx() -> SignContext {
    signing("targets")
}

/// What ykman does for `ykman piv keys generate 9c` then `ykman piv certificates generate 9c`:
/// a P-256 key made on the card and a self-signed certificate in the slot; returns the SPKI
/// and the certificate's DER.
fn make_key_as_ykman_does(serial: u32) -> (Vec<u8>, Vec<u8>) {
    let mut yk = open(serial);
    yk.verify_pin(PIN.as_bytes()).unwrap();
    let mgm = yubikey::MgmKey::get_default(&yk).unwrap();
    yk.authenticate(&mgm).unwrap();
    let spki = yubikey::piv::generate(
        &mut yk,
        SlotId::Signature,
        AlgorithmId::EccP256,
        yubikey::PinPolicy::Default,
        yubikey::TouchPolicy::Default,
    )
    .unwrap();
    yk.verify_pin(PIN.as_bytes()).unwrap();
    let cert = yubikey::Certificate::generate_self_signed::<_, p256::NistP256>(
        &mut yk,
        SlotId::Signature,
        x509_cert::serial_number::SerialNumber::from(7u32),
        x509_cert::time::Validity::from_now(Duration::from_secs(3600)).unwrap(),
        "CN=made by ykman".parse().unwrap(),
        spki.clone(),
        |_| Ok(()),
    )
    .unwrap();
    (spki.to_der().unwrap(), cert.cert.to_der().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_by_ykman_is_listed_adopted_and_then_signs() {
    let dev = SimYubiKey::new();
    let serial = dev.serial(0);
    let (spki, cert) = make_key_as_ykman_does(serial);
    let mut agent = Agent::start(&dev);
    let client = agent.client().await;
    let cwd = tempfile::tempdir().unwrap();
    let reference = format!("yubikey:{serial}/9c");

    // Listed as another tool's key, with its slot and its certificate's subject.
    let keys = client.list_keys().await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = &keys[0];
    assert!(key.other_tool && key.name.is_empty(), "{key:?}");
    assert_eq!(key.spki(), spki.as_slice());
    assert_eq!(key.uri, reference);
    let list = agent.tufa_ok(cwd.path(), &["key", "list"]);
    assert!(
        list.contains("(CN=made by ykman)") && list.contains("other tool") && list.contains("9c"),
        "{list}"
    );

    // Not signed with before it is adopted, and the message says how.
    let e = client.sign(key, b"too early", &ctx()).await.unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("tufa key adopt {reference} --name NAME")),
        "{e}"
    );

    let out = agent.tufa_ok(
        cwd.path(),
        &["key", "adopt", &reference, "--name", "ci-signer"],
    );
    assert!(
        out.contains("Adopted") && out.contains("ci-signer"),
        "{out}"
    );
    let adopted = client.key("ci-signer").await.unwrap();
    assert_eq!(adopted.id, key.id);
    assert!(!adopted.other_tool);
    let sig = client.sign(&adopted, b"adopted", &ctx()).await.unwrap();
    assert!(verify_with_p256(&spki, b"adopted", sig.as_bytes()));
    // By its slot reference too.
    let by_slot = client.key(&reference).await.unwrap();
    assert_eq!(by_slot.id, key.id);

    // The key and its certificate are as ykman left them.
    let mut yk = open(serial);
    let meta = yubikey::piv::metadata(&mut yk, SlotId::Signature).unwrap();
    assert_eq!(meta.public.unwrap().to_der().unwrap(), spki);
    let now = yubikey::Certificate::read(&mut yk, SlotId::Signature).unwrap();
    assert_eq!(now.cert.to_der().unwrap(), cert);
    drop(yk);

    // Adopting again, or under a taken name, is refused.
    let err = agent
        .tufa(cwd.path(), &["key", "adopt", &reference, "--name", "other"])
        .fails();
    assert!(
        err.contains("already holds tufa's key 'ci-signer'"),
        "{err}"
    );

    // The name is on the card: a new agent finds it.
    assert!(agent.stop().success());
    let agent = Agent::start(&dev);
    let again = agent.client().await.key("ci-signer").await.unwrap();
    assert_eq!(again.id, key.id);
    assert!(x509_cert::Certificate::from_der(&again.certificate.unwrap()).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_found_by_their_uri_and_bad_uris_are_refused_by_name() {
    let hsm = SoftHsm::new("uri dev", "pin-Qx7wz");
    let agent = Agent::start(&hsm);
    let cwd = tempfile::tempdir().unwrap();
    agent.tufa_ok(cwd.path(), &["key", "generate", "alice"]);
    agent.tufa_ok(cwd.path(), &["key", "generate", "bob"]);
    let client = agent.client().await;
    let alice = client.key("alice").await.unwrap();

    let list = agent.tufa_ok(cwd.path(), &["key", "list", "--uri"]);
    assert!(list.contains(&alice.uri), "{list}");
    assert!(
        alice.uri.starts_with("pkcs11:token=uri%20dev;serial=")
            && alice.uri.contains(";object=alice;type=private;id="),
        "{}",
        alice.uri
    );
    // The URI the agent prints, a short one, and one with the module, all name alice.
    for reference in [
        alice.uri.clone(),
        "pkcs11:token=uri%20dev;object=alice".to_owned(),
        format!(
            "pkcs11:object=alice;type=private?module-path={}",
            tufa_tests::SOFTHSM_MODULE
        ),
        // tufa's CKA_ID is the key ID's 32 bytes.
        format!(
            "pkcs11:id={}",
            alice
                .id
                .as_bytes()
                .iter()
                .map(|b| format!("%{b:02x}"))
                .collect::<String>()
        ),
    ] {
        assert_eq!(
            client.key(&reference).await.unwrap().id,
            alice.id,
            "{reference}"
        );
    }
    // Any command that takes KEY takes it.
    std::fs::write(cwd.path().join("m"), b"by uri").unwrap();
    let out = agent.tufa_ok(
        cwd.path(),
        &["key", "sign", &alice.uri, "--in", "m", "--out", "s"],
    );
    assert!(out.contains("alice"), "{out}");
    let pem = agent.tufa_ok(cwd.path(), &["key", "public", "pkcs11:object=alice"]);
    assert!(pem.contains("BEGIN PUBLIC KEY"), "{pem}");

    // A URI matching both keys is ambiguous; one matching none is not found.
    let err = agent
        .tufa(cwd.path(), &["key", "public", "pkcs11:token=uri%20dev"])
        .fails();
    assert!(err.contains("matches several keys"), "{err}");
    let err = agent
        .tufa(cwd.path(), &["key", "public", "pkcs11:object=carol"])
        .fails();
    assert!(
        err.contains("no key") && err.contains("object 'carol'"),
        "{err}"
    );
    // Attributes that have no use in a key reference, and PINs, are refused by name.
    for (uri, words) in [
        ("pkcs11:object=alice?pin-value=pin-Qx7wz", "pin-value"),
        (
            "pkcs11:object=alice?pin-source=file:/p",
            "pin-source has no use in a key reference",
        ),
        (
            "pkcs11:object=alice;colour=red",
            "unknown path attribute 'colour'",
        ),
        ("pkcs11:object=alice;type=cert", "type=cert names no key"),
        ("pkcs11:object=my alice", "%20"),
    ] {
        let err = agent.tufa(cwd.path(), &["key", "public", uri]).fails();
        assert!(err.contains(words), "{uri}: {err}");
        assert!(!err.contains("pin-Qx7wz"), "{err}");
    }
}
