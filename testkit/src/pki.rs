//! A throwaway PKI made with the `openssl` CLI: an EC P-256 CA and the TLS leaves it issues for
//! loopback servers (notary-server, notary-signer, a hostile server), and the self-signed server
//! certificates many self-hosted notary-servers use.

use std::path::Path;
use std::process::{Command, Output};

use crate::require;

/// Runs `openssl ARGS` in `dir` and returns what it did (for tests that check a refusal).
pub fn openssl(dir: &Path, args: &[&str]) -> Output {
    require("openssl", "apt-get install openssl");
    Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl")
}

/// Runs `openssl ARGS` in `dir` and fails the test, with openssl's words, unless it succeeds.
/// Returns stdout.
pub fn openssl_ok(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = openssl(dir, args);
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `openssl req -x509` making `<dir>/<name>.{crt,key}`: a new EC P-256 key (PKCS#8, no
/// passphrase) and a certificate for it valid 30 days, with `args` (subject, issuer,
/// extensions) added. A minimal config, so the system openssl.cnf adds no extensions of its own.
pub fn make_cert(dir: &Path, name: &str, args: &[&str]) {
    req_x509(dir, name, args);
}

/// `<dir>/<name>.{crt,key}`: one self-signed certificate for a server at `san` (e.g.
/// `IP:127.0.0.1`), the way most self-hosted notary-servers are set up and handed to clients as
/// their own CA: what `openssl req -x509 -newkey ec ... -subj /CN=127.0.0.1 -addext
/// subjectAltName=IP:127.0.0.1` makes with the stock openssl.cnf (`v3_ca`: basicConstraints
/// critical CA:TRUE, subject and authority key identifiers).
pub fn make_self_signed(dir: &Path, name: &str, cn: &str, san: &str) {
    let subj = format!("/CN={cn}");
    let san = format!("subjectAltName={san}");
    req_x509(
        dir,
        name,
        &[
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "subjectKeyIdentifier=hash",
            "-addext",
            "authorityKeyIdentifier=keyid:always",
            "-addext",
            &san,
        ],
    );
}

/// The SHA-256 fingerprint of `<dir>/<name>.crt` as openssl prints it (`AB:CD:…`).
pub fn fingerprint(dir: &Path, name: &str) -> String {
    let crt = format!("{name}.crt");
    let out = openssl_ok(
        dir,
        &["x509", "-in", &crt, "-noout", "-fingerprint", "-sha256"],
    );
    let text = String::from_utf8_lossy(&out);
    text.trim()
        .split_once('=')
        .map(|(_, f)| f.to_owned())
        .unwrap_or_else(|| panic!("openssl printed no fingerprint: {text}"))
}

fn req_x509(dir: &Path, name: &str, args: &[&str]) {
    let conf = dir.join("openssl.cnf");
    if !conf.exists() {
        std::fs::write(&conf, "[req]\ndistinguished_name = dn\n[dn]\n").expect("openssl.cnf");
    }
    let conf = conf.display().to_string();
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    let new_key = [
        "req",
        "-config",
        &conf,
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &crt,
        "-days",
        "30",
    ];
    openssl_ok(dir, &[&new_key[..], args].concat());
}

/// `<dir>/<name>.{crt,key}`: a self-signed EC P-256 CA with common name `cn`.
pub fn make_ca(dir: &Path, name: &str, cn: &str) {
    let subj = format!("/CN={cn}");
    req_x509(
        dir,
        name,
        &[
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
        ],
    );
}

/// `<dir>/<name>.{crt,key}` (PKCS#8 key): a leaf issued by the CA `<dir>/<ca>.{crt,key}` for
/// loopback (`localhost`, `<name>`, 127.0.0.1, ::1), usable as TLS server and client
/// (notary-server shows its server certificate to notary-signer as its client certificate).
pub fn make_leaf(dir: &Path, ca: &str, name: &str) {
    let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    let subj = format!("/CN={name}");
    let san = format!("subjectAltName=DNS:localhost,DNS:{name},IP:127.0.0.1,IP:::1");
    req_x509(
        dir,
        name,
        &[
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-subj",
            &subj,
            "-addext",
            &san,
            "-addext",
            "extendedKeyUsage=serverAuth,clientAuth",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "keyUsage=critical,digitalSignature",
        ],
    );
}
