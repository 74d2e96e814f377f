//! Test certificates written byte by byte, including the ones a certificate library refuses to
//! make (expired, not yet valid, SHA-1, a CA where a leaf belongs): the root certificates whose
//! every defect the client must name.

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePublicKey as _;
use time::OffsetDateTime;

use crate::now;

/// What goes into a test certificate.
#[derive(Clone, Debug)]
pub struct CertSpec {
    /// The subject's common name.
    pub cn: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// `basicConstraints` CA:TRUE (else CA:FALSE).
    pub ca: bool,
    /// An extended key usage of codeSigning only (else none).
    pub code_signing_eku: bool,
    /// The signature algorithm's OID, dotted (the signature is always ECDSA-SHA256).
    pub sig_alg: &'static str,
}

impl CertSpec {
    /// What Notary generates: CA:FALSE, EKU codeSigning, ECDSA-SHA256, ten years from [`now`].
    pub fn notary(cn: &str) -> Self {
        let now = now();
        Self {
            cn: cn.to_owned(),
            not_before: now - time::Duration::minutes(5),
            not_after: now + time::Duration::days(3650),
            ca: false,
            code_signing_eku: true,
            sig_alg: "1.2.840.10045.4.3.2",
        }
    }
}

/// A DER X.509 v3 certificate for `subject_key` per `spec`, signed by `issuer_key` as `issuer`.
pub fn cert_der(
    subject_key: &SigningKey,
    spec: &CertSpec,
    issuer_key: &SigningKey,
    issuer: &str,
) -> Vec<u8> {
    let alg = der(0x30, &oid(spec.sig_alg));
    let mut extensions = Vec::new();
    let bc = if spec.ca {
        der(0x30, &der(0x01, &[0xff]))
    } else {
        der(0x30, &[])
    };
    extensions.extend(der(
        0x30,
        &[oid("2.5.29.19"), der(0x01, &[0xff]), der(0x04, &bc)].concat(),
    ));
    if spec.code_signing_eku {
        let eku = der(0x30, &oid("1.3.6.1.5.5.7.3.3"));
        extensions.extend(der(0x30, &[oid("2.5.29.37"), der(0x04, &eku)].concat()));
    }
    let spki = subject_key
        .verifying_key()
        .to_public_key_der()
        .expect("SPKI of a P-256 key")
        .as_bytes()
        .to_vec();
    let tbs = der(
        0x30,
        &[
            der(0xa0, &der(0x02, &[2])),
            der(0x02, &[0x01, spec.cn.len() as u8]),
            alg.clone(),
            name(issuer),
            der(
                0x30,
                &[time(spec.not_before), time(spec.not_after)].concat(),
            ),
            name(&spec.cn),
            spki,
            der(0xa3, &der(0x30, &extensions)),
        ]
        .concat(),
    );
    let sig: p256::ecdsa::Signature = issuer_key.sign(&tbs);
    let mut bits = vec![0];
    bits.extend_from_slice(sig.to_der().as_bytes());
    der(0x30, &[tbs, alg, der(0x03, &bits)].concat())
}

/// `der` as a PEM `CERTIFICATE` with LF line ends, as Go writes it.
pub fn pem_cert(der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der.to_vec()), config)
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted
        .split('.')
        .map(|a| a.parse().expect("a dotted OID"))
        .collect();
    let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &arc in &arcs[2..] {
        let mut chunk = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            chunk.push((rest & 0x7f) as u8 | 0x80);
            rest >>= 7;
        }
        chunk.reverse();
        body.extend(chunk);
    }
    der(0x06, &body)
}

/// `CN=<cn>` as a UTF8String.
fn name(cn: &str) -> Vec<u8> {
    let atv = der(0x30, &[oid("2.5.4.3"), der(0x0c, cn.as_bytes())].concat());
    der(0x30, &der(0x31, &atv))
}

/// UTCTime before 2050, GeneralizedTime after, as RFC 5280 wants.
fn time(t: OffsetDateTime) -> Vec<u8> {
    let tail = format!(
        "{:02}{:02}{:02}{:02}{:02}Z",
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if t.year() < 2050 {
        der(0x17, format!("{:02}{tail}", t.year() % 100).as_bytes())
    } else {
        der(0x18, format!("{:04}{tail}", t.year()).as_bytes())
    }
}
