//! The real DCT stack harness end to end: the real notary and docker CLIs publish to the stack's
//! notary-server, and images pushed with plain HTTP come back from the registry byte for byte.

use sha2::{Digest as _, Sha256};
use tufa_tests::stack::{ManifestKind, Stack};

/// `notary init` + `addhash` + `publish`, then `notary list` shows the target.
fn publish_and_list(stack: &Stack, gun: &str) {
    let hex = hex::encode(Sha256::digest(b"a target"));
    stack.notary_ok(&["init", gun]);
    stack.notary_ok(&["addhash", gun, "v1", "8", "--sha256", &hex, "-p"]);
    let list = stack.notary_ok(&["list", gun]);
    let row = list
        .lines()
        .find(|l| l.split_whitespace().next() == Some("v1"))
        .unwrap_or_else(|| panic!("no v1 in `notary list`:\n{list}\n{}", stack.server_log()));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols, ["v1", &hex, "8", "targets"], "{list}");
}

#[test]
fn notary_cli_publishes_through_notary_signer() {
    let stack = Stack::start();
    publish_and_list(&stack, "127.0.0.1:5000/stack/remote");
    // The timestamp key is the signer's: ECDSA.
    let timestamp = std::fs::read_to_string(
        stack
            .notary_trust_dir()
            .join("tuf/127.0.0.1:5000/stack/remote/metadata/timestamp.json"),
    )
    .expect("cached timestamp.json");
    assert!(timestamp.contains(r#""method":"ecdsa""#), "{timestamp}");
}

#[test]
fn notary_cli_publishes_with_local_signing() {
    let stack = Stack::start_local_signing();
    publish_and_list(&stack, "127.0.0.1:5000/stack/local");
    let timestamp = std::fs::read_to_string(
        stack
            .notary_trust_dir()
            .join("tuf/127.0.0.1:5000/stack/local/metadata/timestamp.json"),
    )
    .expect("cached timestamp.json");
    assert!(timestamp.contains(r#""method":"eddsa""#), "{timestamp}");
}

#[test]
fn pushed_images_come_back_byte_for_byte() {
    let stack = Stack::start_local_signing();
    let mut digests = Vec::new();
    for kind in ManifestKind::ALL {
        let tag = format!("{kind:?}").to_lowercase();
        let image = stack.push_image("stack/app", &tag, kind);
        assert_eq!(image.media_type, kind.media_type());
        let bytes = stack.fetch_manifest("stack/app", &tag, kind.media_type());
        assert_eq!(bytes.len() as u64, image.size, "{kind:?}");
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        assert_eq!(digest, image.digest, "{kind:?}");
        // By digest too, as `docker pull repo@sha256:…` asks for it.
        assert_eq!(
            stack.fetch_manifest("stack/app", &digest, kind.media_type()),
            bytes
        );
        digests.push(digest);
    }
    // The same tag pushed again is a new image.
    let again = stack.push_image("stack/app", "dockerschema2", ManifestKind::DockerSchema2);
    digests.push(again.digest);
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), 4, "every push has its own digest");
}

#[test]
fn docker_trust_signer_add_and_inspect() {
    let stack = Stack::start();
    let cwd = tempfile::tempdir().expect("tempdir");
    let gun = format!("{}/stack/signed", stack.registry_addr());

    let out = stack.docker(cwd.path(), &["trust", "key", "generate", "jeff"]);
    assert!(
        out.success()
            && out
                .stdout()
                .contains("Successfully generated and loaded private key"),
        "{out:?}"
    );
    assert!(cwd.path().join("jeff.pub").exists());

    let out = stack.docker(
        cwd.path(),
        &["trust", "signer", "add", "--key", "jeff.pub", "jeff", &gun],
    );
    assert!(
        out.success()
            && out
                .stdout()
                .contains(&format!("Successfully added signer: jeff to {gun}")),
        "{out:?}\n{}",
        stack.server_log()
    );

    let out = stack.docker(cwd.path(), &["trust", "inspect", &gun]).ok();
    let inspect: serde_json::Value = serde_json::from_str(&out).expect("inspect JSON");
    let repo = &inspect[0];
    assert_eq!(repo["Name"], gun.as_str());
    assert_eq!(repo["SignedTags"], serde_json::json!([]));
    let signers: Vec<&str> = repo["Signers"]
        .as_array()
        .expect("Signers")
        .iter()
        .filter_map(|s| s["Name"].as_str())
        .collect();
    assert_eq!(signers, ["jeff"], "{inspect:#}");
    let admin: Vec<&str> = repo["AdministrativeKeys"]
        .as_array()
        .expect("AdministrativeKeys")
        .iter()
        .filter_map(|s| s["Name"].as_str())
        .collect();
    assert_eq!(admin, ["Root", "Repository"], "{inspect:#}");
}
