//! The simulated YubiKey (tests/src/piv) driven by the real `yubikey` crate through pcscd and
//! vpcd: what the agent's YubiKey backend relies on behaves as on a YubiKey 5.

use std::time::{Duration, Instant};

use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
use sha2::Digest as _;
use tufa_tests::piv::{self, CardSpec, Firmware, VirtualCard, DEFAULT_MGM_KEY};
use x509_cert::der::{Decode as _, Encode as _};
use yubikey::piv::{AlgorithmId, ManagementSlotId, RetiredSlotId, SlotAlgorithmId, SlotId};
use yubikey::{MgmAlgorithmId, MgmKey, PinPolicy, Serial, TouchPolicy, YubiKey};

const PIN: &[u8] = b"123456";
const PUK: &[u8] = b"12345678";

fn insert(serial: u32, firmware: Firmware) -> VirtualCard {
    VirtualCard::insert(CardSpec {
        serial,
        firmware,
        ..CardSpec::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn open(card: &VirtualCard) -> YubiKey {
    YubiKey::open_by_serial(Serial(card.serial()))
        .unwrap_or_else(|e| panic!("open card {}: {e}", card.serial()))
}

fn authenticate_default(yk: &mut YubiKey) {
    let key = MgmKey::get_default(yk).unwrap();
    yk.authenticate(&key).unwrap();
}

/// The SPKI's key, and a check of a DER signature over `hash` with it.
fn verify(spki_der: &[u8], hash: &[u8; 32], sig: &[u8]) -> bool {
    let key = VerifyingKey::from_public_key_der(spki_der).unwrap();
    let sig = DerSignature::from_bytes(sig).unwrap();
    key.verify_prehash(hash, &sig).is_ok()
}

#[test]
fn opens_with_version_and_serial() {
    let _x = piv::exclusive();
    let card = insert(10_000_001, Firmware::V5_4_3);
    let yk = open(&card);
    assert_eq!(yk.serial(), Serial(10_000_001));
    assert_eq!(yk.version().to_string(), "5.4.3");
    assert_eq!(Some(yk.name()), card.reader_name());
}

#[test]
fn pin_retries_block_and_unblock() {
    let _x = piv::exclusive();
    let card = insert(10_000_002, Firmware::V5_4_3);
    let mut yk = open(&card);
    assert_eq!(yk.get_pin_retries().unwrap(), 3);
    assert!(matches!(
        yk.verify_pin(b"654321"),
        Err(yubikey::Error::WrongPin { tries: 2 })
    ));
    assert_eq!(yk.get_pin_retries().unwrap(), 2);
    yk.verify_pin(PIN).unwrap();
    // SELECT (inside get_pin_retries) forgets the PIN; the counter is back to 3.
    assert_eq!(yk.get_pin_retries().unwrap(), 3);
    for tries in [2, 1, 0] {
        match yk.verify_pin(b"000000") {
            Err(yubikey::Error::WrongPin { tries: t }) => assert_eq!(t, tries),
            other => panic!("wrong PIN gave {other:?}"),
        }
    }
    assert!(matches!(
        yk.verify_pin(PIN),
        Err(yubikey::Error::WrongPin { tries: 0 })
    ));
    assert!(matches!(
        yk.unblock_pin(b"87654321", b"111111"),
        Err(yubikey::Error::WrongPin { tries: 2 })
    ));
    yk.unblock_pin(PUK, b"111111").unwrap();
    yk.verify_pin(b"111111").unwrap();
    yk.change_pin(b"111111", PIN).unwrap();
    yk.change_puk(PUK, b"87654321").unwrap();
    assert!(matches!(
        yk.change_puk(PUK, PUK),
        Err(yubikey::Error::WrongPin { tries: 2 })
    ));
    yk.verify_pin(PIN).unwrap();
}

#[test]
fn management_key_3des_on_5_4_and_aes192_on_5_7() {
    let _x = piv::exclusive();
    for (serial, firmware, alg) in [
        (10_000_003, Firmware::V5_4_3, MgmAlgorithmId::ThreeDes),
        (10_000_004, Firmware::V5_7_1, MgmAlgorithmId::Aes192),
    ] {
        let card = insert(serial, firmware);
        let mut yk = open(&card);
        let default = MgmKey::get_default(&yk).unwrap();
        assert_eq!(default.algorithm_id(), alg);
        let meta =
            yubikey::piv::metadata(&mut yk, SlotId::Management(ManagementSlotId::Management))
                .unwrap();
        assert_eq!(meta.algorithm, SlotAlgorithmId::Management(alg));
        assert_eq!(meta.default, Some(true));

        let wrong = MgmKey::from_bytes([9u8; 24], Some(alg)).unwrap();
        assert!(matches!(
            yk.authenticate(&wrong),
            Err(yubikey::Error::AuthenticationError)
        ));
        // A key of another algorithm is refused too.
        let other = if alg == MgmAlgorithmId::ThreeDes {
            MgmKey::from_bytes(DEFAULT_MGM_KEY, Some(MgmAlgorithmId::Aes192)).unwrap()
        } else {
            MgmKey::from_bytes(DEFAULT_MGM_KEY, Some(MgmAlgorithmId::ThreeDes)).unwrap()
        };
        assert!(yk.authenticate(&other).is_err());
        yk.authenticate(&default).unwrap();
    }
}

#[test]
fn generate_sign_and_pin_policies() {
    let _x = piv::exclusive();
    let card = insert(10_000_005, Firmware::V5_4_3);
    let mut yk = open(&card);
    // GENERATE needs the management key.
    assert!(matches!(
        yubikey::piv::generate(
            &mut yk,
            SlotId::Signature,
            AlgorithmId::EccP256,
            PinPolicy::Default,
            TouchPolicy::Default
        ),
        Err(yubikey::Error::AuthenticationError)
    ));
    authenticate_default(&mut yk);
    let spki_9c = yubikey::piv::generate(
        &mut yk,
        SlotId::Signature,
        AlgorithmId::EccP256,
        PinPolicy::Default,
        TouchPolicy::Default,
    )
    .unwrap()
    .to_der()
    .unwrap();
    let spki_9a = yubikey::piv::generate(
        &mut yk,
        SlotId::Authentication,
        AlgorithmId::EccP256,
        PinPolicy::Once,
        TouchPolicy::Never,
    )
    .unwrap()
    .to_der()
    .unwrap();
    let retired = SlotId::Retired(RetiredSlotId::R3);
    let spki_r3 = yubikey::piv::generate(
        &mut yk,
        retired,
        AlgorithmId::EccP256,
        PinPolicy::Never,
        TouchPolicy::Never,
    )
    .unwrap()
    .to_der()
    .unwrap();
    let hash = [0x5a; 32];

    // PIN never: signs at once.
    let sig = yubikey::piv::sign_data(&mut yk, &hash, AlgorithmId::EccP256, retired).unwrap();
    assert!(verify(&spki_r3, &hash, &sig));

    // PIN once (9a): refused before VERIFY, then signs repeatedly.
    assert!(matches!(
        yubikey::piv::sign_data(&mut yk, &hash, AlgorithmId::EccP256, SlotId::Authentication),
        Err(yubikey::Error::AuthenticationError)
    ));
    yk.verify_pin(PIN).unwrap();
    for _ in 0..2 {
        let sig =
            yubikey::piv::sign_data(&mut yk, &hash, AlgorithmId::EccP256, SlotId::Authentication)
                .unwrap();
        assert!(verify(&spki_9a, &hash, &sig));
    }

    // PIN always (9c's default): one signature per VERIFY.
    let sig =
        yubikey::piv::sign_data(&mut yk, &hash, AlgorithmId::EccP256, SlotId::Signature).unwrap();
    assert!(verify(&spki_9c, &hash, &sig));
    assert!(matches!(
        yubikey::piv::sign_data(&mut yk, &hash, AlgorithmId::EccP256, SlotId::Signature),
        Err(yubikey::Error::AuthenticationError)
    ));
    yk.verify_pin(PIN).unwrap();
    // A short hash is left-padded, as the card does.
    let short = [0x11; 20];
    let sig =
        yubikey::piv::sign_data(&mut yk, &short, AlgorithmId::EccP256, SlotId::Signature).unwrap();
    let mut padded = [0u8; 32];
    padded[12..].copy_from_slice(&short);
    assert!(verify(&spki_9c, &padded, &sig));

    // P-384 in 9e (PIN never by default there).
    let spki_384 = yubikey::piv::generate(
        &mut yk,
        SlotId::CardAuthentication,
        AlgorithmId::EccP384,
        PinPolicy::Default,
        TouchPolicy::Default,
    )
    .unwrap()
    .to_der()
    .unwrap();
    let hash_384 = [0x38; 48];
    let sig = yubikey::piv::sign_data(
        &mut yk,
        &hash_384,
        AlgorithmId::EccP384,
        SlotId::CardAuthentication,
    )
    .unwrap();
    let key_384 = p384::ecdsa::VerifyingKey::from_public_key_der(&spki_384).unwrap();
    let sig = p384::ecdsa::DerSignature::from_bytes(&sig).unwrap();
    key_384.verify_prehash(&hash_384, &sig).unwrap();

    // Selecting the management application ends management authentication.
    yk.deauthenticate().unwrap();
    drop(yk);
    let mut yk = open(&card);
    assert!(matches!(
        yubikey::piv::generate(
            &mut yk,
            SlotId::Signature,
            AlgorithmId::EccP256,
            PinPolicy::Default,
            TouchPolicy::Default
        ),
        Err(yubikey::Error::AuthenticationError)
    ));

    // Reopening (drop resets the card) forgets the PIN.
    drop(yk);
    let mut yk = open(&card);
    assert!(matches!(
        yubikey::piv::sign_data(&mut yk, &hash, AlgorithmId::EccP256, SlotId::Authentication),
        Err(yubikey::Error::AuthenticationError)
    ));
}

#[test]
fn objects_chain_both_ways() {
    let _x = piv::exclusive();
    let card = insert(10_000_006, Firmware::V5_7_1);
    let mut yk = open(&card);
    let object = 0x5f_c10d;
    assert!(matches!(
        yk.fetch_object(object),
        Err(yubikey::Error::NotFound)
    ));
    let mut data: Vec<u8> = (0..2000u32).map(|i| (i * 7 % 251) as u8).collect();
    assert!(matches!(
        yk.save_object(object, &mut data),
        Err(yubikey::Error::AuthenticationError)
    ));
    authenticate_default(&mut yk);
    yk.save_object(object, &mut data.clone()).unwrap();
    assert_eq!(&yk.fetch_object(object).unwrap()[..], &data[..]);
    // An empty value deletes the object.
    yk.save_object(object, &mut []).unwrap();
    assert!(matches!(
        yk.fetch_object(object),
        Err(yubikey::Error::NotFound)
    ));
}

#[test]
fn four_cards_at_once_by_serial() {
    let _x = piv::exclusive();
    let cards: Vec<VirtualCard> = (0..4)
        .map(|i| {
            let firmware = if i % 2 == 0 {
                Firmware::V5_4_3
            } else {
                Firmware::V5_7_1
            };
            insert(10_000_020 + i, firmware)
        })
        .collect();
    let readers: std::collections::BTreeSet<_> =
        cards.iter().map(|c| c.reader_name().unwrap()).collect();
    assert_eq!(readers.len(), 4);
    // A fifth card has no reader.
    assert!(matches!(
        VirtualCard::insert(CardSpec {
            serial: 10_000_030,
            ..CardSpec::default()
        }),
        Err(piv::Error::NoFreeReader)
    ));
    for card in &cards {
        let mut yk = open(card);
        assert_eq!(Some(yk.name()), card.reader_name());
        yk.verify_pin(PIN).unwrap();
    }
    // Several YubiKeys: open() without a serial refuses to choose.
    assert!(YubiKey::open().is_err());
    // Opening by serial touched no other card's PIN counter.
    assert!(cards.iter().all(|c| c.pin_retries_left() == 3));
}

#[test]
fn unplug_and_plug_keep_keys() {
    let _x = piv::exclusive();
    let mut card = insert(10_000_009, Firmware::V5_4_3);
    let mut yk = open(&card);
    authenticate_default(&mut yk);
    let spki = yubikey::piv::generate(
        &mut yk,
        SlotId::KeyManagement,
        AlgorithmId::EccP256,
        PinPolicy::Never,
        TouchPolicy::Never,
    )
    .unwrap()
    .to_der()
    .unwrap();
    drop(yk);

    card.unplug();
    assert!(card.reader_name().is_none());
    assert!(YubiKey::open_by_serial(Serial(card.serial())).is_err());

    card.plug().unwrap();
    let mut yk = open(&card);
    let hash = [3u8; 32];
    let sig = yubikey::piv::sign_data(&mut yk, &hash, AlgorithmId::EccP256, SlotId::KeyManagement)
        .unwrap();
    assert!(verify(&spki, &hash, &sig));

    // ECDH with the same key: the card's shared secret is the software one.
    let peer = p256::SecretKey::from_slice(&[0x24; 32]).unwrap();
    let peer_point = peer.public_key().to_sec1_bytes();
    let shared = yubikey::piv::decrypt_data(
        &mut yk,
        &peer_point,
        AlgorithmId::EccP256,
        SlotId::KeyManagement,
    )
    .unwrap();
    let card_public = p256::PublicKey::from_sec1_bytes(&card.public_key(0x9d).unwrap()).unwrap();
    let expected = p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), card_public.as_affine());
    assert_eq!(&shared[..], &expected.raw_secret_bytes()[..]);
}

#[test]
fn touch_policy_waits_for_the_touch() {
    let _x = piv::exclusive();
    let card = VirtualCard::insert(CardSpec {
        serial: 10_000_010,
        touch_delay: Duration::from_millis(300),
        ..CardSpec::default()
    })
    .unwrap();
    let mut yk = open(&card);
    authenticate_default(&mut yk);
    let retired = SlotId::Retired(RetiredSlotId::R1);
    yubikey::piv::generate(
        &mut yk,
        retired,
        AlgorithmId::EccP256,
        PinPolicy::Never,
        TouchPolicy::Always,
    )
    .unwrap();
    let started = Instant::now();
    yubikey::piv::sign_data(&mut yk, &[1; 32], AlgorithmId::EccP256, retired).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn set_mgm_key_and_the_pin_protected_key() {
    let _x = piv::exclusive();
    let card = insert(10_000_011, Firmware::V5_7_1);
    let mut yk = open(&card);
    let new = MgmKey::from_bytes([7u8; 24], Some(MgmAlgorithmId::Aes192)).unwrap();
    // Changing the key needs the current one.
    assert!(new.set_protected(&mut yk).is_err());
    authenticate_default(&mut yk);
    new.set_protected(&mut yk).unwrap();
    drop(yk);

    let mut yk = open(&card);
    assert!(yk.authenticate(&MgmKey::get_default(&yk).unwrap()).is_err());
    // The protected key sits in the printed object, which only a verified PIN reads.
    assert!(MgmKey::get_protected(&mut yk).is_err());
    yk.verify_pin(PIN).unwrap();
    let config = yk.config().unwrap();
    assert_eq!(config.mgm_type, yubikey::MgmType::Protected);
    assert!(config.protected_data_available);
    let stored = MgmKey::get_protected(&mut yk).unwrap();
    assert_eq!(stored.as_ref(), new.as_ref());
    yk.authenticate(&stored).unwrap();
    let meta =
        yubikey::piv::metadata(&mut yk, SlotId::Management(ManagementSlotId::Management)).unwrap();
    assert_eq!(meta.default, Some(false));

    // Back to a 3DES key, set by hand.
    let tdes = MgmKey::from_bytes([3u8; 24], Some(MgmAlgorithmId::ThreeDes)).unwrap();
    tdes.set_manual(&mut yk, false).unwrap();
    yk.authenticate(&tdes).unwrap();
    let meta =
        yubikey::piv::metadata(&mut yk, SlotId::Management(ManagementSlotId::Management)).unwrap();
    assert_eq!(
        meta.algorithm,
        SlotAlgorithmId::Management(MgmAlgorithmId::ThreeDes)
    );
}

#[test]
fn metadata_import_and_attestation() {
    let _x = piv::exclusive();
    let card = insert(10_000_012, Firmware::V5_4_3);
    let mut yk = open(&card);
    authenticate_default(&mut yk);
    let spki = yubikey::piv::generate(
        &mut yk,
        SlotId::Signature,
        AlgorithmId::EccP256,
        PinPolicy::Always,
        TouchPolicy::Cached,
    )
    .unwrap()
    .to_der()
    .unwrap();
    let imported = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
    yubikey::piv::import_ecc_key(
        &mut yk,
        SlotId::KeyManagement,
        AlgorithmId::EccP256,
        &imported.to_bytes(),
        TouchPolicy::Never,
        PinPolicy::Never,
    )
    .unwrap();

    let meta = yubikey::piv::metadata(&mut yk, SlotId::Signature).unwrap();
    assert_eq!(
        meta.algorithm,
        SlotAlgorithmId::Asymmetric(AlgorithmId::EccP256)
    );
    assert_eq!(meta.policy, Some((PinPolicy::Always, TouchPolicy::Cached)));
    assert_eq!(meta.origin, Some(yubikey::piv::Origin::Generated));
    assert_eq!(meta.public.unwrap().to_der().unwrap(), spki);
    let meta = yubikey::piv::metadata(&mut yk, SlotId::KeyManagement).unwrap();
    assert_eq!(meta.origin, Some(yubikey::piv::Origin::Imported));
    assert!(matches!(
        yubikey::piv::metadata(&mut yk, SlotId::CardAuthentication),
        Err(yubikey::Error::NotFound)
    ));
    let pin = yubikey::piv::metadata(&mut yk, SlotId::Management(ManagementSlotId::Pin)).unwrap();
    assert_eq!(pin.default, Some(true));
    assert_eq!(
        pin.retries,
        Some(yubikey::piv::Retries {
            retry_count: 3,
            remaining_count: 3
        })
    );
    // The imported key signs as the software key would verify.
    let hash = [9u8; 32];
    let sig = yubikey::piv::sign_data(&mut yk, &hash, AlgorithmId::EccP256, SlotId::KeyManagement)
        .unwrap();
    let imported_spki = imported
        .verifying_key()
        .to_public_key_der()
        .unwrap()
        .into_vec();
    assert!(verify(&imported_spki, &hash, &sig));

    // Attestation: only generated keys, signed by the f9 key, issuer = f9's subject.
    assert!(yubikey::piv::attest(&mut yk, SlotId::KeyManagement).is_err());
    let attestation = yubikey::piv::attest(&mut yk, SlotId::Signature).unwrap();
    let attestation = x509_cert::Certificate::from_der(&attestation).unwrap();
    let object = yk.fetch_object(0x5f_ff01).unwrap();
    let (0x70, f9_der) = (
        object[0],
        &object[4..4 + (usize::from(object[2]) << 8 | usize::from(object[3]))],
    ) else {
        panic!("the f9 object is not a certificate object");
    };
    let f9 = x509_cert::Certificate::from_der(f9_der).unwrap();
    assert_eq!(
        attestation.tbs_certificate().issuer(),
        f9.tbs_certificate().subject()
    );
    assert_eq!(
        attestation.tbs_certificate().subject().to_string(),
        "CN=YubiKey PIV Attestation 9c"
    );
    assert_eq!(
        attestation
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap(),
        spki
    );
    let f9_key = VerifyingKey::from_public_key_der(
        &f9.tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap(),
    )
    .unwrap();
    let tbs_hash = sha2::Sha256::digest(attestation.tbs_certificate().to_der().unwrap());
    let signature = DerSignature::from_bytes(attestation.signature().raw_bytes()).unwrap();
    f9_key.verify_prehash(&tbs_hash, &signature).unwrap();
    let extension = |oid: &str| {
        attestation
            .tbs_certificate()
            .extensions()
            .unwrap()
            .iter()
            .find(|e| e.extn_id.to_string() == oid)
            .map(|e| e.extn_value.as_bytes().to_vec())
    };
    assert_eq!(extension("1.3.6.1.4.1.41482.3.3"), Some(vec![5, 4, 3]));
    assert_eq!(
        extension("1.3.6.1.4.1.41482.3.7"),
        Some(
            x509_cert::der::asn1::Int::new(&10_000_012u32.to_be_bytes())
                .unwrap()
                .to_der()
                .unwrap()
        )
    );
    assert_eq!(extension("1.3.6.1.4.1.41482.3.8"), Some(vec![3, 3]));
    assert!(extension("1.3.6.1.4.1.41482.3.9").is_some());

    // A self-signed certificate made through the card (PIN always: VERIFY first), stored in
    // 9c's object and read back.
    yk.verify_pin(PIN).unwrap();
    let cert = yubikey::Certificate::generate_self_signed::<_, p256::NistP256>(
        &mut yk,
        SlotId::Signature,
        x509_cert::serial_number::SerialNumber::from(7u32),
        x509_cert::time::Validity::from_now(Duration::from_secs(3600)).unwrap(),
        "CN=card test".parse().unwrap(),
        x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(&spki).unwrap(),
        |_| Ok(()),
    )
    .unwrap();
    let read = yubikey::Certificate::read(&mut yk, SlotId::Signature).unwrap();
    assert_eq!(read.subject(), "CN=card test");
    assert_eq!(read.cert.to_der().unwrap(), cert.cert.to_der().unwrap());
    let self_signed = &read.cert;
    let tbs_hash = sha2::Sha256::digest(self_signed.tbs_certificate().to_der().unwrap());
    let signature = self_signed.signature().raw_bytes();
    assert!(verify(&spki, &tbs_hash.into(), signature));
    let slots: Vec<SlotId> = yubikey::Key::list(&mut yk)
        .unwrap()
        .iter()
        .map(|k| k.slot())
        .collect();
    assert_eq!(slots, [SlotId::Signature, SlotId::Attestation]);
}

#[test]
fn pin_retries_setting_and_reset() {
    let _x = piv::exclusive();
    let card = insert(10_000_013, Firmware::V5_4_3);
    let mut yk = open(&card);
    authenticate_default(&mut yk);
    yubikey::piv::generate(
        &mut yk,
        SlotId::Authentication,
        AlgorithmId::EccP256,
        PinPolicy::Default,
        TouchPolicy::Default,
    )
    .unwrap();
    // Needs the PIN as well as the management key.
    assert!(yk.set_pin_retries(5, 4).is_err());
    yk.verify_pin(PIN).unwrap();
    yk.set_pin_retries(5, 4).unwrap();
    assert_eq!(yk.get_pin_retries().unwrap(), 5);
    let puk = yubikey::piv::metadata(&mut yk, SlotId::Management(ManagementSlotId::Puk)).unwrap();
    assert_eq!(puk.retries.unwrap().remaining_count, 4);

    // RESET only works with PIN and PUK both blocked.
    assert!(yk.reset_device().is_err());
    while let Err(yubikey::Error::WrongPin { tries: 1.. }) = yk.verify_pin(b"000000") {}
    yk.block_puk().unwrap();
    assert!(matches!(
        yk.unblock_pin(PUK, PIN),
        Err(yubikey::Error::PinLocked)
    ));
    yk.reset_device().unwrap();
    assert_eq!(yk.get_pin_retries().unwrap(), 3);
    yk.verify_pin(PIN).unwrap();
    assert!(matches!(
        yubikey::piv::metadata(&mut yk, SlotId::Authentication),
        Err(yubikey::Error::NotFound)
    ));
    authenticate_default(&mut yk);
}
