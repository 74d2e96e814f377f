//! The PIV application of the simulated YubiKey: its persistent state (keys, objects, PIN,
//! PUK, management key) and volatile state (PIN verified, management key authenticated), and
//! one APDU in, one response out.
//!
//! Formats follow what the `yubikey` 0.9.0-rc.0 crate, yubico-piv-tool and OpenSC expect
//! (see /work/shared/reference/piv-simulation.md); where a real key's behaviour was not
//! verified, the choice is the plainest one and tests should not assert on it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cipher::{BlockCipherDecrypt as _, BlockCipherEncrypt as _, KeyInit as _};
use p256::ecdsa::signature::hazmat::PrehashSigner as _;

use super::apdu::{sw, Command, Response, MAX_RESPONSE_CHUNK};
use super::{attest, tlv, Firmware, DEFAULT_MGM_KEY, DEFAULT_PIN, DEFAULT_PUK};

/// The PIV application identifier (the crate sends this 5-byte prefix).
const PIV_AID: &[u8] = &[0xa0, 0x00, 0x00, 0x03, 0x08];
/// YubiKey's management application (`YubiKey::deauthenticate`, `mgm::Manager`).
const MGMT_AID: &[u8] = &[0xa0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17];

/// Largest data object a YubiKey 5 stores.
const MAX_OBJECT: usize = 3063;
/// The printed-information object, readable only after PIN verification (ykman keeps the
/// PIN-protected management key there).
const OBJ_PRINTED: u32 = 0x5f_c109;
/// The attestation certificate object (slot f9).
pub(crate) const OBJ_ATTESTATION: u32 = 0x5f_ff01;

/// Cached touch lasts 15 s on a YubiKey.
const TOUCH_CACHE: Duration = Duration::from_secs(15);

/// Algorithm identifiers of key slots.
pub(crate) const ALG_P256: u8 = 0x11;
pub(crate) const ALG_P384: u8 = 0x14;
/// Management key algorithms.
pub(crate) const ALG_3DES: u8 = 0x03;
pub(crate) const ALG_AES128: u8 = 0x08;
pub(crate) const ALG_AES192: u8 = 0x0a;
pub(crate) const ALG_AES256: u8 = 0x0c;

/// PIN policies as the card stores them (never is 1, once 2, always 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PinPolicy {
    Never = 1,
    Once = 2,
    Always = 3,
}

/// Touch policies (never 1, always 2, cached 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TouchPolicy {
    Never = 1,
    Always = 2,
    Cached = 3,
}

/// An EC private key in a slot.
#[derive(Clone)]
pub(crate) enum EcKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

impl EcKey {
    /// A new random key for `alg`, or `None` for other algorithms.
    pub fn generate(alg: u8) -> Option<EcKey> {
        loop {
            let mut d = [0u8; 48];
            getrandom::fill(&mut d).expect("the OS random generator failed");
            let key = match alg {
                ALG_P256 => p256::ecdsa::SigningKey::from_slice(&d[..32])
                    .ok()
                    .map(EcKey::P256),
                ALG_P384 => p384::ecdsa::SigningKey::from_slice(&d)
                    .ok()
                    .map(EcKey::P384),
                _ => return None,
            };
            if key.is_some() {
                return key;
            }
        }
    }

    /// The key for a big-endian private scalar of the curve's size.
    fn import(alg: u8, d: &[u8]) -> Option<EcKey> {
        match alg {
            ALG_P256 if d.len() == 32 => {
                p256::ecdsa::SigningKey::from_slice(d).ok().map(EcKey::P256)
            }
            ALG_P384 if d.len() == 48 => {
                p384::ecdsa::SigningKey::from_slice(d).ok().map(EcKey::P384)
            }
            _ => None,
        }
    }

    /// The slot algorithm identifier.
    pub fn alg(&self) -> u8 {
        match self {
            EcKey::P256(_) => ALG_P256,
            EcKey::P384(_) => ALG_P384,
        }
    }

    /// Field size in bytes.
    fn size(&self) -> usize {
        match self {
            EcKey::P256(_) => 32,
            EcKey::P384(_) => 48,
        }
    }

    /// The uncompressed SEC1 public point.
    pub fn public_point(&self) -> Vec<u8> {
        match self {
            EcKey::P256(k) => k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
            EcKey::P384(k) => k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
        }
    }

    /// DER ECDSA signature over a hash, left-padded (or truncated) to the field size as the
    /// card does.
    fn sign(&self, hash: &[u8]) -> Option<Vec<u8>> {
        let mut padded = vec![0u8; self.size()];
        padded[self.size() - hash.len()..].copy_from_slice(hash);
        match self {
            EcKey::P256(k) => {
                let sig: p256::ecdsa::DerSignature = k.sign_prehash(&padded).ok()?;
                Some(sig.as_bytes().to_vec())
            }
            EcKey::P384(k) => {
                let sig: p384::ecdsa::DerSignature = k.sign_prehash(&padded).ok()?;
                Some(sig.as_bytes().to_vec())
            }
        }
    }

    /// ECDH: the x coordinate shared with `peer` (an uncompressed point).
    fn ecdh(&self, peer: &[u8]) -> Option<Vec<u8>> {
        match self {
            EcKey::P256(k) => {
                let peer = p256::PublicKey::from_sec1_bytes(peer).ok()?;
                let shared = p256::ecdh::diffie_hellman(k.as_nonzero_scalar(), peer.as_affine());
                Some(shared.raw_secret_bytes().to_vec())
            }
            EcKey::P384(k) => {
                let peer = p384::PublicKey::from_sec1_bytes(peer).ok()?;
                let shared = p384::ecdh::diffie_hellman(k.as_nonzero_scalar(), peer.as_affine());
                Some(shared.raw_secret_bytes().to_vec())
            }
        }
    }
}

/// A key slot's contents.
#[derive(Clone)]
pub(crate) struct SlotKey {
    pub key: EcKey,
    pub pin_policy: PinPolicy,
    pub touch_policy: TouchPolicy,
    /// Generated on the card (attestable) rather than imported.
    pub generated: bool,
}

/// A PIN or PUK with its retry counter.
#[derive(Clone)]
struct Secret {
    /// The value padded with FF to 8 bytes, as VERIFY sends it.
    padded: [u8; 8],
    retries: u8,
    remaining: u8,
    default: bool,
}

impl Secret {
    fn new(value: &str) -> Secret {
        Secret {
            padded: pad(value.as_bytes()).expect("default PIN/PUK fit"),
            retries: 3,
            remaining: 3,
            default: true,
        }
    }

    fn blocked(&self) -> bool {
        self.remaining == 0
    }

    /// Checks an 8-byte padded value: `Ok` or the SW of the failure (counter decremented).
    fn check(&mut self, candidate: &[u8]) -> Result<(), u16> {
        if self.blocked() {
            return Err(sw::AUTH_BLOCKED);
        }
        if candidate == self.padded {
            self.remaining = self.retries;
            Ok(())
        } else {
            self.remaining -= 1;
            Err(sw::tries_left(self.remaining))
        }
    }
}

/// FF-pads a PIN/PUK of 6-8 bytes to 8, or `None` if its length is wrong.
fn pad(value: &[u8]) -> Option<[u8; 8]> {
    if !(6..=8).contains(&value.len()) {
        return None;
    }
    let mut padded = [0xff; 8];
    padded[..value.len()].copy_from_slice(value);
    Some(padded)
}

/// A new PIN/PUK from its 8 padded bytes: 6-8 bytes before the padding.
fn unpad(padded: &[u8]) -> Option<[u8; 8]> {
    let len = padded
        .iter()
        .position(|&b| b == 0xff)
        .unwrap_or(padded.len());
    if padded.len() != 8 || padded[len..].iter().any(|&b| b != 0xff) {
        return None;
    }
    pad(&padded[..len])
}

/// The management key.
#[derive(Clone)]
struct MgmKey {
    alg: u8,
    key: Vec<u8>,
    touch: bool,
}

impl MgmKey {
    fn block_size(&self) -> usize {
        if self.alg == ALG_3DES {
            8
        } else {
            16
        }
    }

    fn crypt(&self, block: &mut [u8], encrypt: bool) -> Option<()> {
        macro_rules! run {
            ($cipher:ty) => {{
                let c = <$cipher>::new_from_slice(&self.key).ok()?;
                let b = block.try_into().ok()?;
                if encrypt {
                    c.encrypt_block(b)
                } else {
                    c.decrypt_block(b)
                }
            }};
        }
        match self.alg {
            ALG_3DES => run!(des::TdesEde3),
            ALG_AES128 => run!(aes::Aes128),
            ALG_AES192 => run!(aes::Aes192),
            ALG_AES256 => run!(aes::Aes256),
            _ => return None,
        }
        Some(())
    }
}

/// Key length of a management key algorithm.
fn mgm_key_len(alg: u8) -> Option<usize> {
    match alg {
        ALG_3DES | ALG_AES192 => Some(24),
        ALG_AES128 => Some(16),
        ALG_AES256 => Some(32),
        _ => None,
    }
}

/// Which application answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applet {
    Piv,
    Mgmt,
}

/// Where GENERAL AUTHENTICATE with the management key stands.
#[derive(Clone)]
enum MgmAuth {
    None,
    /// The card sent this witness (mutual auth step 1).
    Witness(Vec<u8>),
    /// The card sent this challenge (single auth step 1).
    Challenge(Vec<u8>),
}

/// The whole card: what survives unplugging, and what power cycles clear.
pub(crate) struct PivCard {
    pub firmware: Firmware,
    pub serial: u32,
    pub touch_delay: Duration,
    pin: Secret,
    puk: Secret,
    mgm: MgmKey,
    slots: BTreeMap<u8, SlotKey>,
    objects: BTreeMap<u32, Vec<u8>>,
    /// The attestation key (slot f9) and its certificate's DER.
    attestation: (p256::ecdsa::SigningKey, Vec<u8>),
    // Volatile state.
    applet: Applet,
    pin_verified: bool,
    /// One PIN-always operation is allowed right after a successful VERIFY.
    pin_always: bool,
    mgm_authenticated: bool,
    mgm_auth: MgmAuth,
    last_touch: Option<Instant>,
    /// Command chaining: (INS, P1, P2) and the data so far.
    chain: Option<((u8, u8, u8), Vec<u8>)>,
    /// Response data waiting for GET RESPONSE.
    pending: Vec<u8>,
}

impl PivCard {
    /// A card fresh from the factory: default PIN, PUK and management key, empty slots, and an
    /// attestation key with its certificate in object 5FFF01.
    pub fn new(firmware: Firmware, serial: u32, touch_delay: Duration) -> PivCard {
        let (key, cert) = attest::new_attestation_key();
        let mut card = PivCard {
            firmware,
            serial,
            touch_delay,
            pin: Secret::new(DEFAULT_PIN),
            puk: Secret::new(DEFAULT_PUK),
            mgm: default_mgm(firmware),
            slots: BTreeMap::new(),
            objects: BTreeMap::new(),
            attestation: (key, cert),
            applet: Applet::Piv,
            pin_verified: false,
            pin_always: false,
            mgm_authenticated: false,
            mgm_auth: MgmAuth::None,
            last_touch: None,
            chain: None,
            pending: Vec::new(),
        };
        card.store_attestation_certificate();
        card
    }

    /// PIN tries left.
    pub fn pin_remaining(&self) -> u8 {
        self.pin.remaining
    }

    /// PUK tries left.
    pub fn puk_remaining(&self) -> u8 {
        self.puk.remaining
    }

    /// The uncompressed public point of the key in `slot`, if any.
    pub fn public_point(&self, slot: u8) -> Option<Vec<u8>> {
        self.slots.get(&slot).map(|e| e.key.public_point())
    }

    /// The ATR of a YubiKey 5 NFC (offers T=1, which the crate requires).
    pub fn atr(&self) -> &'static [u8] {
        &[
            0x3b, 0xfd, 0x13, 0x00, 0x00, 0x81, 0x31, 0xfe, 0x15, 0x80, 0x73, 0xc0, 0x21, 0xc0,
            0x57, 0x59, 0x75, 0x62, 0x69, 0x4b, 0x65, 0x79, 0x40,
        ]
    }

    /// Power off, power on or reset: a YubiKey forgets PIN and management authentication.
    pub fn reset_volatile(&mut self) {
        self.applet = Applet::Piv;
        self.clear_security_state();
        self.chain = None;
        self.pending.clear();
    }

    fn clear_security_state(&mut self) {
        self.pin_verified = false;
        self.pin_always = false;
        self.mgm_authenticated = false;
        self.mgm_auth = MgmAuth::None;
    }

    /// The certificate object format: `70 cert 71 00 FE 00`.
    fn store_attestation_certificate(&mut self) {
        let mut value = tlv::encode(&[0x70], &self.attestation.1);
        value.extend_from_slice(&[0x71, 0x01, 0x00, 0xfe, 0x00]);
        self.objects.insert(OBJ_ATTESTATION, value);
    }

    /// One APDU: handles chaining and GET RESPONSE around [`PivCard::dispatch`].
    pub fn process(&mut self, raw: &[u8]) -> Vec<u8> {
        let Some(cmd) = Command::parse(raw) else {
            return Response::status(sw::WRONG_LENGTH).to_bytes();
        };
        if cmd.cla & !0x10 != 0 {
            return Response::status(sw::CLA_NOT_SUPPORTED).to_bytes();
        }
        if cmd.ins == 0xc0 {
            return self.next_chunk();
        }
        self.pending.clear();

        let header = (cmd.ins, cmd.p1, cmd.p2);
        let mut data = match self.chain.take() {
            Some((h, data)) if h == header => data,
            _ => Vec::new(),
        };
        data.extend_from_slice(&cmd.data);
        if cmd.chained() {
            self.chain = Some((header, data));
            return Response::status(sw::OK).to_bytes();
        }
        let cmd = Command { data, ..cmd };
        let response = self.dispatch(&cmd);
        if response.data.len() > MAX_RESPONSE_CHUNK {
            self.pending = response.data;
            return self.next_chunk_with(response.sw);
        }
        response.to_bytes()
    }

    fn next_chunk(&mut self) -> Vec<u8> {
        if self.pending.is_empty() {
            return Response::status(sw::CONDITIONS_NOT_SATISFIED).to_bytes();
        }
        self.next_chunk_with(sw::OK)
    }

    /// Up to 256 bytes of the pending data, then `61 xx` while more remains, else `final_sw`.
    fn next_chunk_with(&mut self, final_sw: u16) -> Vec<u8> {
        let n = self.pending.len().min(MAX_RESPONSE_CHUNK);
        let data: Vec<u8> = self.pending.drain(..n).collect();
        let sw = match self.pending.len() {
            0 => final_sw,
            rest if rest >= 256 => 0x6100,
            rest => 0x6100 | rest as u16,
        };
        Response { data, sw }.to_bytes()
    }

    fn dispatch(&mut self, cmd: &Command) -> Response {
        if cmd.ins == 0xa4 {
            return self.select(cmd);
        }
        if self.applet == Applet::Mgmt {
            return match cmd.ins {
                0x1d => self.read_config(),
                _ => Response::status(sw::INS_NOT_SUPPORTED),
            };
        }
        match cmd.ins {
            0xfd => Response::ok(self.firmware.version().to_vec()),
            0xf8 => Response::ok(self.serial.to_be_bytes().to_vec()),
            0x20 => self.verify(cmd),
            0x24 => self.change_reference(cmd),
            0x2c => self.reset_retry(cmd),
            0x87 => self.general_authenticate(cmd),
            0x47 => self.generate(cmd),
            0xfe => self.import(cmd),
            0xcb => self.get_data(cmd),
            0xdb => self.put_data(cmd),
            0xf7 => self.metadata(cmd),
            0xf9 => self.attest(cmd),
            0xff => self.set_mgm_key(cmd),
            0xfa => self.set_pin_retries(cmd),
            0xfb => self.reset(),
            _ => Response::status(sw::INS_NOT_SUPPORTED),
        }
    }

    fn select(&mut self, cmd: &Command) -> Response {
        if cmd.p1 != 0x04 {
            return Response::status(sw::NOT_FOUND);
        }
        if !cmd.data.is_empty() && PIV_AID.starts_with(&cmd.data) || cmd.data.starts_with(PIV_AID) {
            // Selecting PIV clears the PIN (the crate's get_pin_retries relies on it).
            self.applet = Applet::Piv;
            self.clear_security_state();
            let mut template = Vec::new();
            tlv::put(
                &mut template,
                &[0x4f],
                &[0x00, 0x00, 0x10, 0x00, 0x01, 0x00],
            );
            tlv::put(&mut template, &[0x79], &tlv::encode(&[0x4f], PIV_AID));
            return Response::ok(tlv::encode(&[0x61], &template));
        }
        if cmd.data == MGMT_AID {
            self.applet = Applet::Mgmt;
            self.clear_security_state();
            let v = self.firmware.version();
            let text = format!("Virtual mgmt - FW version {}.{}.{}", v[0], v[1], v[2]);
            return Response::ok(text.into_bytes());
        }
        // Another application: not here, and PIV stays selected (OpenSC probes many).
        Response::status(sw::NOT_FOUND)
    }

    /// The management application's device information (`mgm::Manager::read_config`).
    fn read_config(&self) -> Response {
        let mut tlvs = Vec::new();
        tlv::put(&mut tlvs, &[0x01], &0x023fu16.to_be_bytes()); // USB supported
        tlv::put(&mut tlvs, &[0x02], &self.serial.to_be_bytes());
        tlv::put(&mut tlvs, &[0x03], &0x023fu16.to_be_bytes()); // USB enabled
        tlv::put(&mut tlvs, &[0x04], &[0x01]); // USB-A keychain
        tlv::put(&mut tlvs, &[0x05], &self.firmware.version());
        tlv::put(&mut tlvs, &[0x0a], &[0x00]); // configuration not locked
        let mut data = vec![tlvs.len() as u8];
        data.extend_from_slice(&tlvs);
        Response::ok(data)
    }

    fn verify(&mut self, cmd: &Command) -> Response {
        if cmd.p2 != 0x80 {
            return Response::status(sw::REFERENCE_NOT_FOUND);
        }
        if cmd.p1 == 0xff {
            // Reset the verification state.
            self.pin_verified = false;
            self.pin_always = false;
            return Response::status(sw::OK);
        }
        if cmd.data.is_empty() {
            return Response::status(if self.pin.blocked() {
                sw::AUTH_BLOCKED
            } else if self.pin_verified {
                sw::OK
            } else {
                sw::tries_left(self.pin.remaining)
            });
        }
        if cmd.data.len() != 8 {
            return Response::status(sw::INCORRECT_DATA);
        }
        match self.pin.check(&cmd.data) {
            Ok(()) => {
                self.pin_verified = true;
                self.pin_always = true;
                Response::status(sw::OK)
            }
            Err(status) => {
                self.pin_verified = false;
                self.pin_always = false;
                Response::status(status)
            }
        }
    }

    fn change_reference(&mut self, cmd: &Command) -> Response {
        if cmd.data.len() != 16 {
            return Response::status(sw::INCORRECT_DATA);
        }
        let (old, new) = cmd.data.split_at(8);
        let Some(new) = unpad(new) else {
            return Response::status(sw::INCORRECT_DATA);
        };
        let secret = match cmd.p2 {
            0x80 => &mut self.pin,
            0x81 => &mut self.puk,
            _ => return Response::status(sw::REFERENCE_NOT_FOUND),
        };
        if let Err(status) = secret.check(old) {
            return Response::status(status);
        }
        secret.default = false;
        secret.padded = new;
        Response::status(sw::OK)
    }

    fn reset_retry(&mut self, cmd: &Command) -> Response {
        if cmd.p2 != 0x80 {
            return Response::status(sw::REFERENCE_NOT_FOUND);
        }
        if cmd.data.len() != 16 {
            return Response::status(sw::INCORRECT_DATA);
        }
        let (puk, new) = cmd.data.split_at(8);
        let Some(new) = unpad(new) else {
            return Response::status(sw::INCORRECT_DATA);
        };
        if let Err(status) = self.puk.check(puk) {
            return Response::status(status);
        }
        self.pin.padded = new;
        self.pin.default = false;
        self.pin.remaining = self.pin.retries;
        Response::status(sw::OK)
    }

    fn general_authenticate(&mut self, cmd: &Command) -> Response {
        let Some((0x7c, inner, [])) = tlv::take(&cmd.data) else {
            return Response::status(sw::INCORRECT_DATA);
        };
        let Some(items) = tlv::parse_all(inner) else {
            return Response::status(sw::INCORRECT_DATA);
        };
        if cmd.p2 == 0x9b {
            self.authenticate_management(cmd.p1, &items)
        } else {
            self.private_key_operation(cmd.p1, cmd.p2, &items)
        }
    }

    fn authenticate_management(&mut self, alg: u8, items: &[(u8, &[u8])]) -> Response {
        if alg != self.mgm.alg {
            self.mgm_auth = MgmAuth::None;
            return Response::status(sw::INCORRECT_DATA);
        }
        let bs = self.mgm.block_size();
        let pending = std::mem::replace(&mut self.mgm_auth, MgmAuth::None);
        match (items, pending) {
            // Mutual step 1: the host asks for a witness.
            ([(0x80, [])], _) => {
                let witness = random(bs);
                let mut encrypted = witness.clone();
                self.touch_for_management();
                self.mgm.crypt(&mut encrypted, true);
                self.mgm_auth = MgmAuth::Witness(witness);
                Response::ok(tlv::encode(&[0x7c], &tlv::encode(&[0x80], &encrypted)))
            }
            // Mutual step 2: the decrypted witness and the host's challenge.
            ([(0x80, decrypted), (0x81, challenge)], MgmAuth::Witness(witness)) => {
                if *decrypted != witness.as_slice() || challenge.len() != bs {
                    return Response::status(sw::SECURITY_STATUS);
                }
                let mut answer = challenge.to_vec();
                self.mgm.crypt(&mut answer, true);
                self.mgm_authenticated = true;
                Response::ok(tlv::encode(&[0x7c], &tlv::encode(&[0x82], &answer)))
            }
            // Single step 1: the host asks for a challenge.
            ([(0x81, [])], _) => {
                let challenge = random(bs);
                self.touch_for_management();
                self.mgm_auth = MgmAuth::Challenge(challenge.clone());
                Response::ok(tlv::encode(&[0x7c], &tlv::encode(&[0x81], &challenge)))
            }
            // Single step 2: the challenge encrypted with the key.
            ([(0x82, response)], MgmAuth::Challenge(challenge)) => {
                let mut expected = challenge;
                self.mgm.crypt(&mut expected, true);
                if *response != expected.as_slice() {
                    return Response::status(sw::SECURITY_STATUS);
                }
                self.mgm_authenticated = true;
                Response::status(sw::OK)
            }
            _ => Response::status(sw::SECURITY_STATUS),
        }
    }

    fn touch_for_management(&mut self) {
        if self.mgm.touch {
            std::thread::sleep(self.touch_delay);
        }
    }

    fn private_key_operation(&mut self, alg: u8, slot: u8, items: &[(u8, &[u8])]) -> Response {
        let Some(entry) = self.slot_key(slot).cloned() else {
            return Response::status(sw::NOT_FOUND);
        };
        if entry.key.alg() != alg {
            return Response::status(sw::INCORRECT_DATA);
        }
        let allowed = match entry.pin_policy {
            PinPolicy::Never => true,
            PinPolicy::Once => self.pin_verified,
            PinPolicy::Always => self.pin_always,
        };
        if !allowed {
            return Response::status(sw::SECURITY_STATUS);
        }
        let result = match items {
            [(0x82, []), (0x81, hash)] if hash.len() <= entry.key.size() => {
                self.touch(entry.touch_policy);
                entry.key.sign(hash)
            }
            [(0x82, []), (0x85, point)] => {
                self.touch(entry.touch_policy);
                entry.key.ecdh(point)
            }
            _ => return Response::status(sw::INCORRECT_DATA),
        };
        let Some(result) = result else {
            return Response::status(sw::INCORRECT_DATA);
        };
        if entry.pin_policy == PinPolicy::Always {
            self.pin_always = false;
        }
        Response::ok(tlv::encode(&[0x7c], &tlv::encode(&[0x82], &result)))
    }

    /// Waits for the simulated touch when the policy asks for one.
    fn touch(&mut self, policy: TouchPolicy) {
        let cached = policy == TouchPolicy::Cached
            && self.last_touch.is_some_and(|t| t.elapsed() < TOUCH_CACHE);
        if policy != TouchPolicy::Never && !cached {
            std::thread::sleep(self.touch_delay);
            self.last_touch = Some(Instant::now());
        }
    }

    fn slot_key(&self, slot: u8) -> Option<&SlotKey> {
        self.slots.get(&slot)
    }

    fn generate(&mut self, cmd: &Command) -> Response {
        if !self.mgm_authenticated {
            return Response::status(sw::SECURITY_STATUS);
        }
        if !is_key_slot(cmd.p2) {
            return Response::status(sw::WRONG_P1P2);
        }
        let Some((0xac, template, [])) = tlv::take(&cmd.data) else {
            return Response::status(sw::INCORRECT_DATA);
        };
        let Some(items) = tlv::parse_all(template) else {
            return Response::status(sw::INCORRECT_DATA);
        };
        let mut alg = None;
        let mut policies = (0, 0);
        for (tag, value) in items {
            match (tag, value) {
                (0x80, [a]) => alg = Some(*a),
                (0xaa, [p]) => policies.0 = *p,
                (0xab, [t]) => policies.1 = *t,
                _ => return Response::status(sw::INCORRECT_DATA),
            }
        }
        let Some((pin_policy, touch_policy)) = resolve_policies(cmd.p2, policies) else {
            return Response::status(sw::INCORRECT_DATA);
        };
        let Some(key) = alg.and_then(EcKey::generate) else {
            return Response::status(sw::INCORRECT_DATA);
        };
        let point = key.public_point();
        self.slots.insert(
            cmd.p2,
            SlotKey {
                key,
                pin_policy,
                touch_policy,
                generated: true,
            },
        );
        // One-byte lengths: the crate skips exactly 3 bytes of `7F 49 LL`.
        Response::ok(tlv::encode(&[0x7f, 0x49], &tlv::encode(&[0x86], &point)))
    }

    fn import(&mut self, cmd: &Command) -> Response {
        if !self.mgm_authenticated {
            return Response::status(sw::SECURITY_STATUS);
        }
        if !is_key_slot(cmd.p2) {
            return Response::status(sw::WRONG_P1P2);
        }
        let Some(items) = tlv::parse_all(&cmd.data) else {
            return Response::status(sw::INCORRECT_DATA);
        };
        let mut scalar = None;
        let mut policies = (0, 0);
        for (tag, value) in items {
            match (tag, value) {
                (0x06, d) => scalar = Some(d),
                (0xaa, [p]) => policies.0 = *p,
                (0xab, [t]) => policies.1 = *t,
                _ => return Response::status(sw::INCORRECT_DATA),
            }
        }
        let Some((pin_policy, touch_policy)) = resolve_policies(cmd.p2, policies) else {
            return Response::status(sw::INCORRECT_DATA);
        };
        let Some(key) = scalar.and_then(|d| EcKey::import(cmd.p1, d)) else {
            return Response::status(sw::INCORRECT_DATA);
        };
        self.slots.insert(
            cmd.p2,
            SlotKey {
                key,
                pin_policy,
                touch_policy,
                generated: false,
            },
        );
        Response::status(sw::OK)
    }

    fn get_data(&mut self, cmd: &Command) -> Response {
        match cmd.data.as_slice() {
            // The discovery object: the PIV AID and PIN usage policy (PIN only).
            [0x5c, 0x01, 0x7e] => {
                let mut value = tlv::encode(&[0x4f], &[0xa0, 0, 0, 3, 8, 0, 0, 0x10, 0, 1, 0]);
                tlv::put(&mut value, &[0x5f, 0x2f], &[0x40, 0x00]);
                Response::ok(tlv::encode(&[0x7e], &value))
            }
            [0x5c, 0x03, id @ ..] => {
                let id = u32::from_be_bytes([0, id[0], id[1], id[2]]);
                if id == OBJ_PRINTED && !self.pin_verified {
                    return Response::status(sw::SECURITY_STATUS);
                }
                match self.objects.get(&id) {
                    Some(value) => Response::ok(tlv::encode(&[0x53], value)),
                    None => Response::status(sw::NOT_FOUND),
                }
            }
            _ => Response::status(sw::NOT_FOUND),
        }
    }

    fn put_data(&mut self, cmd: &Command) -> Response {
        if !self.mgm_authenticated {
            return Response::status(sw::SECURITY_STATUS);
        }
        let Some((0x5c, id, rest)) = tlv::take(&cmd.data) else {
            return Response::status(sw::INCORRECT_DATA);
        };
        let id = match *id {
            // A YubiKey stores any object in 0x5F0000-0x5FFFFF (Yubico's PIV data objects page).
            [a, b, c] if a == 0x5f => u32::from_be_bytes([0, a, b, c]),
            _ => return Response::status(sw::NOT_FOUND),
        };
        let Some((0x53, value, [])) = tlv::take(rest) else {
            return Response::status(sw::INCORRECT_DATA);
        };
        if value.len() > MAX_OBJECT {
            return Response::status(sw::NO_SPACE);
        }
        if value.is_empty() {
            self.objects.remove(&id);
        } else {
            self.objects.insert(id, value.to_vec());
        }
        Response::status(sw::OK)
    }

    fn metadata(&mut self, cmd: &Command) -> Response {
        let mut out = Vec::new();
        match cmd.p2 {
            0x80 | 0x81 => {
                let secret = if cmd.p2 == 0x80 { &self.pin } else { &self.puk };
                tlv::put(&mut out, &[0x01], &[0xff]);
                tlv::put(&mut out, &[0x05], &[u8::from(secret.default)]);
                tlv::put(&mut out, &[0x06], &[secret.retries, secret.remaining]);
            }
            0x9b => {
                let touch = if self.mgm.touch { 2 } else { 1 };
                let default = self.mgm.key == DEFAULT_MGM_KEY;
                tlv::put(&mut out, &[0x01], &[self.mgm.alg]);
                tlv::put(&mut out, &[0x02], &[0x00, touch]);
                tlv::put(&mut out, &[0x05], &[u8::from(default)]);
            }
            slot => {
                let Some(entry) = self.slot_key(slot) else {
                    return Response::status(sw::REFERENCE_NOT_FOUND);
                };
                tlv::put(&mut out, &[0x01], &[entry.key.alg()]);
                tlv::put(
                    &mut out,
                    &[0x02],
                    &[entry.pin_policy as u8, entry.touch_policy as u8],
                );
                tlv::put(&mut out, &[0x03], &[if entry.generated { 1 } else { 2 }]);
                // No 7F49 wrapper here, unlike GENERATE.
                tlv::put(
                    &mut out,
                    &[0x04],
                    &tlv::encode(&[0x86], &entry.key.public_point()),
                );
            }
        }
        Response::ok(out)
    }

    fn attest(&mut self, cmd: &Command) -> Response {
        let Some(entry) = self.slot_key(cmd.p1) else {
            return Response::status(sw::REFERENCE_NOT_FOUND);
        };
        if !entry.generated {
            // A YubiKey only attests keys it generated.
            return Response::status(sw::INCORRECT_DATA);
        }
        let cert = attest::attestation_certificate(
            &self.attestation,
            cmd.p1,
            entry,
            self.firmware,
            self.serial,
        );
        Response::ok(cert)
    }

    fn set_mgm_key(&mut self, cmd: &Command) -> Response {
        if !self.mgm_authenticated {
            return Response::status(sw::SECURITY_STATUS);
        }
        let touch = match (cmd.p1, cmd.p2) {
            (0xff, 0xff) => false,
            (0xff, 0xfe) => true,
            _ => return Response::status(sw::WRONG_P1P2),
        };
        let [alg, 0x9b, len, key @ ..] = cmd.data.as_slice() else {
            return Response::status(sw::INCORRECT_DATA);
        };
        if mgm_key_len(*alg) != Some(usize::from(*len)) || key.len() != usize::from(*len) {
            return Response::status(sw::INCORRECT_DATA);
        }
        self.mgm = MgmKey {
            alg: *alg,
            key: key.to_vec(),
            touch,
        };
        Response::status(sw::OK)
    }

    fn set_pin_retries(&mut self, cmd: &Command) -> Response {
        if !self.mgm_authenticated || !self.pin_verified {
            return Response::status(sw::SECURITY_STATUS);
        }
        if cmd.p1 == 0 || cmd.p2 == 0 {
            return Response::status(sw::WRONG_P1P2);
        }
        // A YubiKey also puts PIN and PUK back to their defaults.
        self.pin = Secret::new(DEFAULT_PIN);
        self.puk = Secret::new(DEFAULT_PUK);
        (self.pin.retries, self.pin.remaining) = (cmd.p1, cmd.p1);
        (self.puk.retries, self.puk.remaining) = (cmd.p2, cmd.p2);
        self.pin_verified = false;
        self.pin_always = false;
        Response::status(sw::OK)
    }

    fn reset(&mut self) -> Response {
        if !(self.pin.blocked() && self.puk.blocked()) {
            return Response::status(sw::CONDITIONS_NOT_SATISFIED);
        }
        self.pin = Secret::new(DEFAULT_PIN);
        self.puk = Secret::new(DEFAULT_PUK);
        self.mgm = default_mgm(self.firmware);
        self.slots.clear();
        self.objects.clear();
        self.store_attestation_certificate();
        self.clear_security_state();
        Response::status(sw::OK)
    }
}

/// The factory management key: 3DES before firmware 5.7, AES-192 from 5.7, same bytes.
fn default_mgm(firmware: Firmware) -> MgmKey {
    MgmKey {
        alg: firmware.default_mgm_algorithm(),
        key: DEFAULT_MGM_KEY.to_vec(),
        touch: false,
    }
}

/// Slots that hold asymmetric keys: 9a, 9c, 9d, 9e and the retired 82-95.
fn is_key_slot(slot: u8) -> bool {
    matches!(slot, 0x9a | 0x9c | 0x9d | 0x9e | 0x82..=0x95)
}

/// The policies a GENERATE or IMPORT asked for, with the slot's defaults for 0: PIN always in
/// 9c, never in 9e, once elsewhere; touch never.
fn resolve_policies(slot: u8, (pin, touch): (u8, u8)) -> Option<(PinPolicy, TouchPolicy)> {
    let pin = match pin {
        0 => match slot {
            0x9c => PinPolicy::Always,
            0x9e => PinPolicy::Never,
            _ => PinPolicy::Once,
        },
        1 => PinPolicy::Never,
        2 => PinPolicy::Once,
        3 => PinPolicy::Always,
        _ => return None,
    };
    let touch = match touch {
        0 | 1 => TouchPolicy::Never,
        2 => TouchPolicy::Always,
        3 => TouchPolicy::Cached,
        _ => return None,
    };
    Some((pin, touch))
}

fn random(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the OS random generator failed");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> PivCard {
        PivCard::new(Firmware::V5_4_3, 42, Duration::ZERO)
    }

    fn sw_of(response: &[u8]) -> u16 {
        u16::from_be_bytes([response[response.len() - 2], response[response.len() - 1]])
    }

    fn verify_apdu(pin: &[u8]) -> Vec<u8> {
        let mut apdu = vec![0x00, 0x20, 0x00, 0x80, 0x08];
        apdu.extend_from_slice(&pad(pin).unwrap());
        apdu
    }

    #[test]
    fn a_foreign_select_keeps_piv_and_the_pin() {
        let mut card = card();
        assert_eq!(sw_of(&card.process(&verify_apdu(b"123456"))), sw::OK);
        let estonian = [0x00, 0xa4, 0x04, 0x00, 0x04, 0xf0, 0x45, 0x73, 0x74];
        assert_eq!(sw_of(&card.process(&estonian)), sw::NOT_FOUND);
        assert_eq!(
            card.process(&[0x00, 0xfd, 0x00, 0x00, 0x00]),
            [5, 4, 3, 0x90, 0x00]
        );
        assert_eq!(
            sw_of(&card.process(&[0x00, 0x20, 0x00, 0x80, 0x00])),
            sw::OK
        );
        // Selecting PIV again forgets the PIN.
        card.process(&[0x00, 0xa4, 0x04, 0x00, 0x05, 0xa0, 0x00, 0x00, 0x03, 0x08]);
        assert_eq!(
            sw_of(&card.process(&[0x00, 0x20, 0x00, 0x80, 0x00])),
            0x63c3
        );
    }

    #[test]
    fn the_blocking_attempt_then_blocked() {
        let mut card = card();
        let sws: Vec<u16> = (0..4)
            .map(|_| sw_of(&card.process(&verify_apdu(b"000000"))))
            .collect();
        assert_eq!(sws, [0x63c2, 0x63c1, 0x63c0, sw::AUTH_BLOCKED]);
        assert_eq!(
            sw_of(&card.process(&verify_apdu(b"123456"))),
            sw::AUTH_BLOCKED
        );
    }

    #[test]
    fn a_bad_new_pin_costs_no_try() {
        let mut card = card();
        let mut apdu = vec![0x00, 0x24, 0x00, 0x80, 0x10];
        apdu.extend_from_slice(&pad(b"123456").unwrap());
        apdu.extend_from_slice(&[b'1', b'2', b'3', 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(sw_of(&card.process(&apdu)), sw::INCORRECT_DATA);
        assert_eq!(card.pin_remaining(), 3);
    }

    #[test]
    fn discovery_object_and_get_response() {
        let mut card = card();
        let discovery = card.process(&[0x00, 0xcb, 0x3f, 0xff, 0x03, 0x5c, 0x01, 0x7e]);
        assert_eq!(&discovery[..4], [0x7e, 0x12, 0x4f, 0x0b]);
        assert_eq!(
            sw_of(&card.process(&[0x00, 0xc0, 0x00, 0x00, 0x00])),
            0x6985
        );
        // The attestation certificate object is longer than one response.
        let first = card.process(&[0x00, 0xcb, 0x3f, 0xff, 0x05, 0x5c, 0x03, 0x5f, 0xff, 0x01]);
        assert_eq!(first.len(), 258);
        assert_eq!(first[256], 0x61);
        let rest = card.process(&[0x00, 0xc0, 0x00, 0x00, 0x00]);
        assert_eq!(sw_of(&rest), sw::OK);
        assert_eq!(rest.len() - 2, usize::from(first[257]));
    }

    #[test]
    fn chaining_restarts_on_another_command_and_extended_apdus_work() {
        let mut card = card();
        card.mgm_authenticated = true;
        let mut put = vec![0x5c, 0x03, 0x5f, 0xc1, 0x02];
        put.extend(tlv::encode(&[0x53], &[0xaa; 300]));
        // A chain broken by another command is dropped.
        let mut part = vec![0x10, 0xdb, 0x3f, 0xff, 0x05];
        part.extend_from_slice(&put[..5]);
        assert_eq!(sw_of(&card.process(&part)), sw::OK);
        card.process(&[0x00, 0xfd, 0x00, 0x00, 0x00]);
        let mut tail = vec![0x00, 0xdb, 0x3f, 0xff, (put.len() - 5) as u8];
        tail.extend_from_slice(&put[5..]);
        assert_ne!(sw_of(&card.process(&tail)), sw::OK);
        // One extended APDU carries it all.
        let mut extended = vec![0x00, 0xdb, 0x3f, 0xff, 0x00];
        extended.extend_from_slice(&(put.len() as u16).to_be_bytes());
        extended.extend_from_slice(&put);
        assert_eq!(sw_of(&card.process(&extended)), sw::OK);
        assert_eq!(card.objects[&0x5f_c102], vec![0xaa; 300]);
    }
}
