//! tufad's YubiKey backend end to end: the real agent and client, the real `yubikey` and `pcsc`
//! crates and the real pcscd, against simulated cards ([`tufa_tests::piv`]). Each test holds the
//! simulator's exclusive guard (inside [`SimYubiKey`]) for its whole duration.
//!
//! The key conformance tests shared with SoftHSM are in `agent.rs` (`NAME::yubikey`).

use std::path::Path;
use std::time::{Duration, Instant};

use p256::pkcs8::DecodePublicKey as _;
use tonic::Code;
use tufa_client::agent::SignContext;
use tufa_proto::v1;
use tufa_testkit::pki::openssl_ok;
use tufa_tests::piv::{CardSpec, Firmware};
use tufa_tests::stack::Stack;
use tufa_tests::yubikey::{fresh_serial, open, SimYubiKey, PIN};
use tufa_tests::{signing, verify_with_p256, Agent, AgentOptions, Device as _, User};
use x509_cert::der::{Decode as _, Encode as _};

/// What the tests sign as: targets/releases of `example.com/app`.
fn ctx() -> SignContext {
    signing("targets/releases")
}

fn card(firmware: Firmware) -> CardSpec {
    CardSpec {
        serial: fresh_serial(),
        firmware,
        ..CardSpec::default()
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[tokio::test]
async fn both_firmware_personalities_generate_sign_and_list() {
    for firmware in [Firmware::V5_4_3, Firmware::V5_7_1] {
        // 5.4.3 authenticates with the 3DES default management key, 5.7.1 with AES-192.
        let dev = SimYubiKey::with(vec![card(firmware)]);
        let agent = Agent::start(&dev);
        let cwd = tempfile::tempdir().unwrap();
        agent.tufa_ok(cwd.path(), &["key", "generate", "alice"]);
        let client = agent.client().await;
        let key = client.key("alice").await.unwrap();
        assert_eq!(key.backend, v1::Backend::Yubikey);
        assert_eq!(key.origin, v1::KeyOrigin::Generated);
        assert_eq!(key.pin, v1::PinPolicy::Once, "{firmware:?}");
        assert_eq!(key.touch, v1::TouchPolicy::Never);
        let sig = client.sign(&key, b"payload", &ctx()).await.unwrap();
        assert!(verify_with_p256(key.spki(), b"payload", sig.as_bytes()));
        let list = agent.tufa_ok(cwd.path(), &["key", "list"]);
        let location = format!("yubikey:{}/82", dev.serial(0));
        assert!(
            list.contains(&location) && list.contains("generated"),
            "{firmware:?}: {list}"
        );
        let status = agent.tufa_ok(cwd.path(), &["agent", "status"]);
        assert!(
            status.contains(&format!("yubikey {}", dev.serial(0)))
                && status.contains("present, unlocked, 1 key"),
            "{status}"
        );
        // Audit lines name the card and the slot, never the PIN.
        let lines = agent.audit_lines();
        let sign = lines.iter().find(|l| l["op"] == "sign").unwrap();
        assert_eq!(sign["location"], location.as_str());
        assert!(!std::fs::read_to_string(&agent.audit_log)
            .unwrap()
            .contains(PIN));
    }
}

#[tokio::test]
async fn custom_and_pin_protected_management_keys() {
    // A custom AES-192 key from a file (firmware 5.7), then ykman's PIN-protected key (5.4.3).
    let mut dev = SimYubiKey::with(vec![card(Firmware::V5_7_1)]);
    let custom = [0x5a_u8; 24];
    {
        let mut yk = open(dev.serial(0));
        yk.authenticate(&yubikey::MgmKey::get_default(&yk).unwrap())
            .unwrap();
        yubikey::MgmKey::from_bytes(custom, Some(yubikey::MgmAlgorithmId::Aes192))
            .unwrap()
            .set_manual(&mut yk, false)
            .unwrap();
    }
    // With the default key the card refuses, and the error says what to set.
    let agent = Agent::start(&dev);
    let out = agent.tufa(dev.dir(), &["key", "generate", "refused"]);
    let err = out.stderr();
    assert!(!out.success() && err.contains("management_key"), "{err}");
    drop(agent);
    write(dev.dir(), "mgm.hex", &format!("{}\n", hex::encode(custom)));
    dev.section_extra = format!(
        "management_key = {{ file = \"{}\" }}\n",
        dev.dir().join("mgm.hex").display()
    );
    let opts = AgentOptions {
        pin_file: true,
        config: Some(String::new()),
        ..Default::default()
    };
    let agent = Agent::start_with(&dev, opts.clone());
    agent.tufa_ok(dev.dir(), &["key", "generate", "custom"]);
    drop(agent);
    drop(dev);

    let mut dev = SimYubiKey::with(vec![card(Firmware::V5_4_3)]);
    {
        let mut yk = open(dev.serial(0));
        yk.verify_pin(PIN.as_bytes()).unwrap();
        yk.authenticate(&yubikey::MgmKey::get_default(&yk).unwrap())
            .unwrap();
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).unwrap();
        yubikey::MgmKey::from_bytes(bytes, Some(yubikey::MgmAlgorithmId::ThreeDes))
            .unwrap()
            .set_protected(&mut yk)
            .unwrap();
    }
    dev.section_extra = "management_key = \"protected\"\n".into();
    let agent = Agent::start_with(&dev, opts);
    agent.tufa_ok(dev.dir(), &["key", "generate", "protected"]);
    let key = agent.client().await.key("protected").await.unwrap();
    assert_eq!(key.origin, v1::KeyOrigin::Generated);
}

#[tokio::test]
async fn two_cards_at_once_selected_by_serial() {
    let dev = SimYubiKey::with(vec![card(Firmware::V5_4_3), card(Firmware::V5_7_1)]);
    let agent = Agent::start(&dev);
    let cwd = tempfile::tempdir().unwrap();
    let (a, b) = (dev.serial(0).to_string(), dev.serial(1).to_string());
    agent.tufa_ok(cwd.path(), &["key", "generate", "on-a", "--device", &a]);
    agent.tufa_ok(cwd.path(), &["key", "generate", "on-b", "--device", &b]);
    let client = agent.client().await;
    for (name, serial) in [("on-a", &a), ("on-b", &b)] {
        let key = client.key(name).await.unwrap();
        match key.location {
            Some(v1::key_location::Location::Yubikey(y)) => {
                assert_eq!(y.serial.to_string(), *serial)
            }
            other => panic!("{name}: {other:?}"),
        }
        let key = client.key(name).await.unwrap();
        let sig = client.sign(&key, name.as_bytes(), &ctx()).await.unwrap();
        assert!(verify_with_p256(
            key.spki(),
            name.as_bytes(),
            sig.as_bytes()
        ));
    }
    let status = client.status().await.unwrap();
    assert_eq!(status.devices.len(), 2);
    assert!(status.devices.iter().all(|d| d.present && d.key_count == 1));
}

#[tokio::test]
async fn wrong_pin_then_right_pin_and_the_last_try_is_never_spent() {
    let dev = SimYubiKey::new();
    let agent = Agent::start_with(&dev, AgentOptions::default());
    let cwd = tempfile::tempdir().unwrap();
    write(cwd.path(), "wrong", "000000\n");
    write(cwd.path(), "right", &format!("{PIN}\n"));

    // A wrong PIN, then the right one.
    let out = agent.tufa(cwd.path(), &["agent", "unlock", "--pin-file", "wrong"]);
    let err = out.stderr();
    assert!(
        err.contains("wrong PIN") && err.contains("2 tries left"),
        "{err}"
    );
    agent.tufa_ok(cwd.path(), &["agent", "unlock", "--pin-file", "right"]);
    agent.tufa_ok(cwd.path(), &["key", "generate", "kept"]);
    agent.tufa_ok(cwd.path(), &["agent", "lock"]);

    // Two wrong PINs leave one try: the agent then refuses to try any PIN at all.
    for left in ["2 tries left", "1 tries left"] {
        let out = agent.tufa(cwd.path(), &["agent", "unlock", "--pin-file", "wrong"]);
        let err = out.stderr();
        assert!(err.contains(left), "{err}");
    }
    for pin in ["wrong", "right"] {
        let out = agent.tufa(cwd.path(), &["agent", "unlock", "--pin-file", pin]);
        let err = out.stderr();
        assert!(!out.success());
        assert!(
            err.contains("one PIN try left")
                && err.contains(&format!(
                    "ykman --device {} piv access unblock-pin",
                    dev.serial(0)
                )),
            "{err}"
        );
    }
    // The card still has its last try: the right PIN, given outside the agent, resets it.
    assert_eq!(dev.cards[0].pin_retries_left(), 1);
    {
        let mut yk = open(dev.serial(0));
        assert_eq!(yk.get_pin_retries().unwrap(), 1);
        yk.verify_pin(PIN.as_bytes()).unwrap();
        assert_eq!(yk.get_pin_retries().unwrap(), 3);
    }
    agent.tufa_ok(cwd.path(), &["agent", "unlock", "--pin-file", "right"]);
    let client = agent.client().await;
    let key = client.key("kept").await.unwrap();
    client.sign(&key, b"after", &ctx()).await.unwrap();
}

#[tokio::test]
async fn an_unplugged_card_is_unavailable_and_works_again_when_plugged_back() {
    let mut dev = SimYubiKey::new();
    let agent = Agent::start(&dev);
    let cwd = tempfile::tempdir().unwrap();
    agent.tufa_ok(cwd.path(), &["key", "generate", "travel"]);
    let client = agent.client().await;
    let key = client.key("travel").await.unwrap();
    client.sign(&key, b"before", &ctx()).await.unwrap();

    dev.cards[0].unplug();
    let e = client.sign(&key, b"unplugged", &ctx()).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::Unavailable), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("YubiKey serial {}", dev.serial(0))),
        "{e}"
    );

    let status = client.status().await.unwrap();
    assert!(!status.devices[0].present);
    assert!(
        status.devices[0].detail.contains("not connected"),
        "{}",
        status.devices[0].detail
    );

    // Back in: the agent reopens it by serial and gives the PIN again (the card forgot it).
    dev.cards[0].plug().unwrap();
    let sig = client.sign(&key, b"plugged again", &ctx()).await.unwrap();
    assert!(verify_with_p256(
        key.spki(),
        b"plugged again",
        sig.as_bytes()
    ));
}

/// Checks that `cert` is signed (ECDSA P-256, SHA-256) by the key of `issuer`.
fn signed_by(cert: &x509_cert::Certificate, issuer: &x509_cert::Certificate) -> bool {
    use p256::ecdsa::signature::Verifier as _;
    let spki = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .unwrap();
    let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
    let Ok(sig) = p256::ecdsa::Signature::from_der(cert.signature().raw_bytes()) else {
        return false;
    };
    vk.verify(&cert.tbs_certificate().to_der().unwrap(), &sig)
        .is_ok()
}

#[tokio::test]
async fn attestation_chains_up_to_the_device_certificate() {
    let dev = SimYubiKey::new();
    let agent = Agent::start(&dev);
    let cwd = tempfile::tempdir().unwrap();
    agent.tufa_ok(cwd.path(), &["key", "generate", "attested"]);
    let pem = agent.tufa_ok(cwd.path(), &["key", "attest", "attested"]);
    let certs: Vec<_> = pem::parse_many(&pem).unwrap();
    assert_eq!(certs.len(), 2, "{pem}");
    assert!(certs.iter().all(|c| c.tag() == "CERTIFICATE"));
    let leaf = x509_cert::Certificate::from_der(certs[0].contents()).unwrap();
    let device = x509_cert::Certificate::from_der(certs[1].contents()).unwrap();

    // The leaf certifies the key the agent lists, and the device's attestation key signed it.
    let key = agent.client().await.key("attested").await.unwrap();
    assert_eq!(
        leaf.tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap(),
        key.spki()
    );
    assert_eq!(
        leaf.tbs_certificate().issuer(),
        device.tbs_certificate().subject()
    );
    assert!(signed_by(&leaf, &device));
    assert_eq!(
        device.tbs_certificate().subject().to_string(),
        tufa_tests::piv::ATTESTATION_SUBJECT
    );
    assert!(signed_by(&device, &device));

    // An imported key has no attestation, and the error says why.
    let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
    let pem_key = p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(&secret, Default::default()).unwrap();
    write(cwd.path(), "k.pem", &pem_key);
    agent.tufa_ok(cwd.path(), &["key", "load", "k.pem", "--name", "imported"]);
    let out = agent.tufa(cwd.path(), &["key", "attest", "imported"]);
    let err = out.stderr();
    assert!(!out.success() && err.contains("imported key"), "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&agent.tufa_ok(cwd.path(), &["key", "list", "--json"])).unwrap();
    let origins: Vec<_> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["name"].as_str().unwrap(), k["origin"].as_str().unwrap()))
        .collect();
    assert_eq!(
        origins,
        [("attested", "generated"), ("imported", "imported")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_touch_longer_than_the_usual_timeout_completes_after_the_prompt() {
    let touch = tufa_client::agent::CALL_TIMEOUT + Duration::from_secs(2);
    let dev = SimYubiKey::with(vec![CardSpec {
        serial: fresh_serial(),
        touch_delay: touch,
        ..CardSpec::default()
    }]);
    let agent = Agent::start(&dev);
    let cwd = tempfile::tempdir().unwrap();
    agent.tufa_ok(
        cwd.path(),
        &["key", "generate", "touchy", "--touch-policy", "always"],
    );
    let key = agent.client().await.key("touchy").await.unwrap();
    assert_eq!(key.touch, v1::TouchPolicy::Always);
    write(cwd.path(), "msg", "sign me");
    let started = Instant::now();
    let out = agent.tufa(
        cwd.path(),
        &["key", "sign", "touchy", "--in", "msg", "--out", "sig"],
    );
    let err = out.stderr();
    assert!(out.success(), "{err}");
    assert!(
        err.contains(&format!(
            "Touch the YubiKey (serial {}) to sign with touchy",
            dev.serial(0)
        )),
        "{err}"
    );
    // The card really waited for the touch (not a timing assertion: the simulator sleeps).
    assert!(started.elapsed() >= touch);
    let sig: [u8; 64] = std::fs::read(cwd.path().join("sig"))
        .unwrap()
        .try_into()
        .unwrap();
    assert!(verify_with_p256(key.spki(), b"sign me", &sig));
    // The client knows the role and GUN when it signs metadata.
    let prompt = tufa_client::agent::touch_prompt(&key, &ctx()).unwrap();
    assert_eq!(
        prompt,
        format!(
            "Touch the YubiKey (serial {}) to sign targets/releases for example.com/app",
            dev.serial(0)
        )
    );
}

#[tokio::test]
async fn a_card_held_exclusively_by_another_program_is_reported() {
    let dev = SimYubiKey::new();
    let reader = std::ffi::CString::new(dev.cards[0].reader_name().unwrap()).unwrap();
    let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let held = ctx
        .connect(&reader, pcsc::ShareMode::Exclusive, pcsc::Protocols::T1)
        .unwrap();
    // The agent starts anyway (a YubiKey comes and goes) and says who has the card.
    let agent = Agent::start(&dev);
    let cwd = tempfile::tempdir().unwrap();
    let out = agent.tufa(cwd.path(), &["key", "generate", "blocked"]);
    let err = out.stderr();
    assert!(!out.success());
    assert!(
        err.contains(&format!("YubiKey serial {}", dev.serial(0)))
            && err.contains("another program holds it exclusively"),
        "{err}"
    );
    // Released: the next call works.
    held.disconnect(pcsc::Disposition::LeaveCard)
        .map_err(|(_, e)| e)
        .unwrap();
    agent.tufa_ok(cwd.path(), &["key", "generate", "blocked"]);
}

#[test]
fn a_delegation_key_on_the_card_signs_a_tag_notary_lists() {
    let stack = Stack::start();
    let dev = SimYubiKey::new();
    let agent = Agent::start(&dev);
    let cwd = tempfile::tempdir().unwrap();
    let me = User::new(&agent, &stack, cwd.path());
    let gun = "example.com/tufa/yubikey";
    // Root (with its certificate, CN = GUN), targets and snapshot keys go to the card too.
    me.notary_ok(&["init", gun, "-p"]);
    me.generate_key("releaser");
    me.delegate(gun, "targets/releases", "releaser.pub");
    write(cwd.path(), "artifact", "signed on a YubiKey");
    me.notary_ok(&[
        "add",
        gun,
        "v1",
        "artifact",
        "--roles",
        "targets/releases",
        "-p",
    ]);
    let theirs = stack.notary_ok(&["list", gun, "--roles", "targets/releases"]);
    assert!(theirs.contains("v1"), "{theirs}");
    // Every key is on the card, and the root key's certificate did not cost it its name.
    let keys = agent.tufa_ok(cwd.path(), &["key", "list"]);
    assert!(keys.contains("root") && keys.contains("releaser"), "{keys}");
    let json: serde_json::Value =
        serde_json::from_str(&agent.tufa_ok(cwd.path(), &["key", "list", "--json"])).unwrap();
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .all(|k| k["backend"] == "yubikey"),
        "{json}"
    );

    // A certificate for the root key (CN = GUN, as notary makes it) goes into the root key's
    // slot; the key keeps its name, and the client still signs with it.
    let pub_pem = agent.tufa_ok(cwd.path(), &["key", "public", "root"]);
    write(cwd.path(), "root.pem", &pub_pem);
    openssl_ok(
        cwd.path(),
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ca.key",
        ],
    );
    openssl_ok(
        cwd.path(),
        &[
            "x509",
            "-new",
            "-subj",
            "/CN=example.com\\/tufa\\/yubikey",
            "-key",
            "ca.key",
            "-force_pubkey",
            "root.pem",
            "-days",
            "3650",
            "-outform",
            "DER",
            "-out",
            "root.der",
        ],
    );
    let der = std::fs::read(cwd.path().join("root.der")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = agent.client().await;
        let root = client.set_certificate("root", der.clone()).await.unwrap();
        assert_eq!(root.name, "root");
        assert_eq!(root.certificate.as_ref(), Some(&der));
        let root = client.key("root").await.unwrap();
        assert_eq!(root.certificate.as_ref(), Some(&der));
        let sig = client.sign(&root, b"root signs", &ctx()).await.unwrap();
        assert!(verify_with_p256(root.spki(), b"root signs", sig.as_bytes()));
    });
    me.publish_target(gun, "v2", 3, &"cd".repeat(32));
    assert!(stack.notary_ok(&["list", gun]).contains("v2"));
    assert_eq!(dev.name(), dev.serial(0).to_string());
}
