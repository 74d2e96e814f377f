//! RSA signers as docker's guides set them up (openssl key and certificate), against the real
//! docker CLI, notary CLI and notary-server.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tufa_tests::stack::ManifestKind;
use tufa_tests::{Run, World};

/// `openssl ARGS` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    Run::of(
        format!("openssl {args:?}"),
        Command::new("openssl").current_dir(dir).args(args),
    )
    .ok();
}

/// docker's guide: a 3072-bit RSA key and a self-signed certificate for `CN=*`.
fn docker_guide_rsa_signer(dir: &Path) {
    openssl(dir, &["genrsa", "-out", "key.pem", "3072"]);
    openssl(
        dir,
        &[
            "req", "-new", "-sha512", "-key", "key.pem", "-out", "key.csr", "-subj", "/CN=*",
        ],
    );
    openssl(
        dir,
        &[
            "x509", "-req", "-sha512", "-days", "365", "-in", "key.csr", "-signkey", "key.pem",
            "-out", "key.crt",
        ],
    );
}

/// The delegation keys of `gun`'s targets and the key IDs of `role`, as served.
fn delegation(stack: &tufa_tests::stack::Stack, gun: &str, role: &str) -> (Value, Value) {
    let targets = stack.trust_json(gun, "targets").expect("targets.json");
    let delegations = &targets["signed"]["delegations"];
    let ids = delegations["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == role)
        .unwrap_or_else(|| panic!("{gun} has no {role}: {delegations}"))["keyids"]
        .clone();
    (delegations["keys"].clone(), ids)
}

#[test]
fn an_rsa_certificate_is_the_same_key_in_docker_and_tufa() {
    let w = World::new("rsa-cert");
    let me = w.user();
    let stack = &w.stack;
    let reg = stack.registry_addr();
    let (theirs, ours) = (format!("{reg}/rsa/docker"), format!("{reg}/rsa/tufa"));
    docker_guide_rsa_signer(w.cwd());

    // Twin repositories, one signer from the same certificate file.
    me.docker_ok(&["trust", "key", "load", "key.pem", "--name", "jeff"]);
    me.docker_ok(&[
        "trust", "signer", "add", "--key", "key.crt", "jeff", &theirs,
    ]);
    me.tufa_ok(&["signer", "add", "--key", "key.crt", "jeff", &ours]);
    for role in ["targets/jeff", "targets/releases"] {
        let (their_keys, their_ids) = delegation(stack, &theirs, role);
        let (our_keys, our_ids) = delegation(stack, &ours, role);
        assert_eq!(our_ids, their_ids, "{role}");
        let id = their_ids[0].as_str().unwrap();
        assert_eq!(their_keys[id]["keytype"], "rsa-x509");
        assert_eq!(our_keys[id], their_keys[id], "{role}");
    }

    // jeff signs v1 into docker's repository with docker's RSA key (notary CLI, docker's key
    // store): `rsapss` signatures, which tufa verifies and shows as docker does.
    let v1 = stack.push_image("rsa/docker", "v1", ManifestKind::DockerSchema2);
    Run::of(
        "notary addhash with jeff's RSA key",
        stack
            .notary_command()
            .arg("-d")
            .arg(stack.docker_config().join("trust"))
            .args(["addhash", &theirs, "v1", &v1.size.to_string(), "--sha256"])
            .arg(v1.digest.trim_start_matches("sha256:"))
            .args(["-r", "targets/releases", "-r", "targets/jeff", "-p"]),
    )
    .ok();
    let releases = stack
        .trust_json(&theirs, "targets/releases")
        .expect("targets/releases.json");
    assert_eq!(releases["signatures"][0]["method"], "rsapss", "{releases}");
    for args in [
        vec![theirs.as_str()],
        vec!["--pretty", theirs.as_str()],
        vec![&format!("{theirs}:v1")],
    ] {
        let out = me.inspect_same(&args);
        assert!(out.contains("jeff"), "{out}");
    }
    let out = me.tufa_ok(&["verify", &format!("{theirs}:v1")]);
    assert_eq!(out.trim(), format!("{theirs}@{}", v1.digest));
    assert_eq!(me.dct_pull(&format!("{theirs}:v1")).unwrap(), v1.digest);
}

#[test]
fn certificates_of_other_key_types_are_refused_by_name() {
    let w = World::new("rsa-ed25519");
    let me = w.user();
    let repo = format!("{}/ed/app", w.stack.registry_addr());
    openssl(
        w.cwd(),
        &["genpkey", "-algorithm", "ed25519", "-out", "ed.pem"],
    );
    openssl(
        w.cwd(),
        &[
            "req", "-new", "-x509", "-key", "ed.pem", "-subj", "/CN=*", "-days", "30", "-out",
            "ed.crt",
        ],
    );
    openssl(
        w.cwd(),
        &["pkey", "-in", "ed.pem", "-pubout", "-out", "ed.pub"],
    );
    for file in ["ed.crt", "ed.pub"] {
        let err = me.tufa_fails(&["signer", "add", "--key", file, "jeff", &repo]);
        assert!(
            err.contains(file) && err.contains("Ed25519 key") && err.contains("RSA"),
            "{err}"
        );
        let err = me.tufa_fails(&["notary", "delegation", "add", &repo, "targets/jeff", file]);
        assert!(err.contains("Ed25519 key"), "{err}");
    }
    // Nothing was published: the repository was not even made.
    assert_eq!(w.stack.trust_file(&repo, "root"), None);
}
