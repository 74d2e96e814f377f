//! A notary-server and a registry each on one self-signed certificate, handed to clients as
//! their CA: the usual self-hosted set-up (issue 18). OpenSSL marks such a certificate CA:TRUE,
//! which webpki alone refuses as a server's own; tufa accepts it, as the notary CLI and docker
//! do, when it is byte for byte the certificate the user gave, and refuses everything else in
//! words that say why and what to do.

use std::path::Path;

use tufa_client::docker_config::DockerConfig;
use tufa_client::http::{HttpError, TlsFailure};
use tufa_client::reference::Registry;
use tufa_client::registry::{RegistryClient, RegistryConfig, RegistryError};
use tufa_testkit::pki::{fingerprint, make_self_signed};
use tufa_tests::stack::{ManifestKind, Stack};
use tufa_tests::{notary_args, Person, Run, World};

/// `sha256:<hex>` without its prefix.
fn hex(digest: &str) -> String {
    digest.trim_start_matches("sha256:").to_owned()
}

/// The notary CLI against `url`, trusting `ca`, with its trust dir in `trust`.
fn notary_cli(stack: &Stack, url: &str, ca: &Path, trust: &Path, args: &[&str]) -> Run {
    let mut cmd = stack.notary_command();
    cmd.args(["-s", url, "--tlscacert"])
        .arg(ca)
        .arg("-d")
        .arg(trust)
        .args(args);
    Run::of(format!("notary -s {url} {args:?}"), &mut cmd)
}

#[test]
fn a_self_signed_notary_server_and_registry_work_for_tufa_docker_and_notary() {
    let w = World::on(Stack::start_self_signed(), "self-signed");
    let (me, stack) = (w.user(), &w.stack);
    // The certificates really are what openssl makes: CA:TRUE, for IP:127.0.0.1 only.
    let text = tufa_testkit::pki::openssl_ok(
        &stack.dir().join("certs"),
        &["x509", "-in", "notary-self.crt", "-noout", "-text"],
    );
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("CA:TRUE") && text.contains("IP Address:127.0.0.1"),
        "{text}"
    );

    // tufa sign: the tag's digest from the registry over HTTPS, the trust data from
    // notary-server; verify by tag and by digest (the registry alone), notary list.
    let repo = format!("{}/self/app", stack.registry_addr());
    let v1 = stack.push_image("self/app", "v1", ManifestKind::DockerSchema2);
    me.generate_key("alice");
    me.add_signer("alice", &repo);
    let out = me.sign(&format!("{repo}:v1"));
    assert!(
        out.contains(&format!("Successfully signed {repo}:v1")),
        "{out}"
    );
    let out = me.tufa_ok(&["verify", &format!("{repo}:v1")]);
    assert_eq!(out.trim(), format!("{repo}@{}", v1.digest));
    let pinned = format!("{repo}@{}", v1.digest);
    assert_eq!(me.tufa_ok(&["verify", &pinned]).trim(), pinned);

    // The notary CLI, given the same certificate as root_ca, prints what tufa prints.
    let ours = me.notary_ok(&["list", &repo]);
    let theirs = stack.notary_ok(&["list", &repo]);
    assert_eq!(ours, theirs, "tufa:\n{ours}\nnotary:\n{theirs}");
    assert!(ours.contains(&hex(&v1.digest)), "{ours}");

    // docker reads the same (for an image of a loopback registry, docker checks no
    // certificate of notary-server at all).
    me.inspect_same(&[&repo]);
    assert_eq!(me.dct_pull(&format!("{repo}:v1")).unwrap(), v1.digest);

    // For a registry docker deems secure (not loopback) docker checks notary-server's
    // certificate itself, against the same file in $DOCKER_CONFIG/tls: it accepts it too.
    let gun = "registry.example/self/app";
    me.notary_ok(&["init", gun, "-p"]);
    me.publish_target(gun, "v1", v1.size, &hex(&v1.digest));
    let json = me.inspect_same(&[gun]);
    assert!(json.contains(&hex(&v1.digest)), "{json}");
    assert_eq!(me.dct_pull(&format!("{gun}:v1")).unwrap(), v1.digest);
    let ours = me.notary_ok(&["list", gun]);
    assert_eq!(ours, stack.notary_ok(&["list", gun]));

    // ... and docker really checks it there: with another self-signed certificate in its
    // place, docker refuses the server (and falls back to its cache, as notary does offline);
    // tufa refuses too.
    let host_port = stack.notary_url().trim_start_matches("https://").to_owned();
    let docker_ca = stack
        .docker_config()
        .join("tls")
        .join(&host_port)
        .join("ca.crt");
    make_self_signed(w.cwd(), "impostor", "127.0.0.1", "IP:127.0.0.1");
    std::fs::copy(w.cwd().join("impostor.crt"), &docker_ca).unwrap();
    let err = me.docker(&["-D", "trust", "inspect", gun]).stderr();
    assert!(
        err.contains("x509: certificate signed by unknown authority")
            && err.contains("using cached timestamp"),
        "{err}"
    );
    me.tufa(&["verify", &format!("{gun}:v1")])
        .fails_saying("is a CA certificate (basicConstraints CA:TRUE");
    std::fs::copy(stack.ca_file(), &docker_ca).unwrap();
    me.inspect_same(&[gun]);
}

#[test]
fn a_certificate_that_is_not_the_one_given_is_refused_in_words() {
    let stack = Stack::start_self_signed();
    let me = Person::new("self-signed-refusals");
    let cwd = tempfile::tempdir().unwrap();
    let (cwd, trust) = (cwd.path(), cwd.path().join("trust"));
    let gun = "registry.example/refused/app";
    let url = stack.notary_url();
    let server_fp = fingerprint(&stack.dir().join("certs"), "notary-self");
    let list = |server: &str, ca: &Path| {
        me.agent
            .tufa(cwd, &notary_args(server, ca, &trust, &["list", gun]))
    };

    // Another self-signed certificate given as the CA: the server's own is a CA certificate
    // that is not the pinned one.
    make_self_signed(cwd, "other", "127.0.0.1", "IP:127.0.0.1");
    let other = cwd.join("other.crt");
    let err = list(&url, &other).fails_saying(&format!(
        "TLS with the notary server at {url}/v2/{gun}/_trust/tuf/root.json failed: the server's \
         certificate is a CA certificate (basicConstraints CA:TRUE, SHA-256 fingerprint \
         {server_fp}), and it is not itself one of the certificates tufa was told to trust \
         (checked against the CA file {} and the system roots). If the server really uses \
         this self-signed certificate",
        other.display()
    ));
    assert!(
        err.contains("give tufa that very certificate as the CA (--tls-ca, or $DOCKER_CONFIG/tls/"),
        "{err}"
    );
    assert!(!err.contains("CaUsedAsEndEntity"), "a debug dump: {err}");
    println!("--- another self-signed certificate as the CA\n{err}");
    let notary = notary_cli(&stack, &url, &other, &trust, &["list", gun]).fails();
    assert!(notary.contains("x509"), "{notary}");

    // No CA at all: the same, checked against the system roots.
    let no_ca = me.agent.tufa(
        cwd,
        &[
            "notary",
            "--server",
            &url,
            "--trust-dir",
            trust.to_str().unwrap(),
            "list",
            gun,
        ],
    );
    let err = no_ca.fails_saying("is a CA certificate (basicConstraints CA:TRUE");
    println!("--- no CA\n{err}");

    // The right certificate, the wrong name: what it is for, and how to fix it.
    let by_name = url.replace("127.0.0.1", "localhost");
    let err = list(&by_name, &stack.ca_file()).fails_saying(
        "failed: the server's certificate is for IP:127.0.0.1, not for localhost (checked \
         against the CA file",
    );
    assert!(
        err.contains("Connect with a name the certificate lists, or reissue it with subjectAltName=DNS:localhost"),
        "{err}"
    );
    println!("--- the wrong name\n{err}");
    let notary = notary_cli(&stack, &by_name, &stack.ca_file(), &trust, &["list", gun]).fails();
    assert!(notary.contains("x509"), "{notary}");

    // Nothing was cached by any refusal.
    assert!(tufa_testkit::tree(&trust).is_empty());
}

/// The registry over HTTPS on its self-signed certificate, checked as for a registry docker
/// deems secure (`tufa sign` skips the check for a loopback registry, as docker does).
#[tokio::test]
async fn a_registry_on_a_self_signed_certificate_is_checked_against_that_certificate() {
    let stack = Stack::start_self_signed();
    let pushed = stack.push_image("reg/app", "v1", ManifestKind::OciManifest);
    let registry: Registry = stack.registry_addr().parse().unwrap();
    let docker = DockerConfig::load_from(&stack.docker_config()).unwrap();
    let mut config = RegistryConfig::from_docker_config(&registry, &docker, &[]);
    assert_eq!(config.ca_files.len(), 1, "{config:?}");
    config.insecure = false;
    let found = RegistryClient::new(config.clone())
        .unwrap()
        .manifest_descriptor("reg/app", "v1")
        .await
        .unwrap();
    assert_eq!(found.oci_digest(), pushed.digest);

    // notary-server's certificate is not the registry's.
    config.ca_files = vec![stack.ca_file()];
    let e = RegistryClient::new(config)
        .unwrap()
        .manifest_descriptor("reg/app", "v1")
        .await
        .unwrap_err();
    let registry_fp = fingerprint(&stack.dir().join("certs"), "registry-self");
    assert!(
        matches!(&e, RegistryError::Http(HttpError::Tls { reason, .. })
            if **reason == TlsFailure::CaAsServerCertificate { fingerprint: registry_fp.clone() }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "give tufa that very certificate as the CA ($DOCKER_CONFIG/tls/{}/ca.crt)",
            stack.registry_addr()
        )),
        "{text}"
    );
}
