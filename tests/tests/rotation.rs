//! Key rotation and the compromised-signer incident on docker-made repositories, checked with
//! the real docker CLI (`docker trust inspect`, DCT pull) and notary-server.

use tufa_tests::stack::{ManifestKind, PushedImage};
use tufa_tests::{Person, User, World};

/// `docker trust inspect REPO` as JSON, checked equal to `tufa inspect REPO`.
fn inspect(me: &User, repo: &str) -> serde_json::Value {
    serde_json::from_str(&me.inspect_same(&[repo])).unwrap()
}

/// The ID of the agent key called `name`, as `tufa key list --json` gives it.
fn key_id(me: &User, name: &str) -> String {
    let list: serde_json::Value =
        serde_json::from_str(&me.agent.tufa_ok(me.cwd, &["key", "list", "--json"])).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == name)
        .unwrap_or_else(|| panic!("no key {name}: {list}"))["key_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn signed_tags(v: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    v[0]["SignedTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let signers = t["Signers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect();
            (t["SignedTag"].as_str().unwrap().to_owned(), signers)
        })
        .collect()
}

/// A repository `<registry>/<path>` that `me` made with signer `alice` (a key in their agent),
/// with `tags` pushed and the first of them signed.
fn alice_signed_repo(w: &World, path: &str, tags: &[&str]) -> (String, Vec<PushedImage>) {
    let me = w.user();
    let repo = format!("{}/{path}", w.stack.registry_addr());
    let images = tags
        .iter()
        .map(|t| w.stack.push_image(path, t, ManifestKind::DockerSchema2))
        .collect();
    me.generate_key("alice");
    me.add_signer("alice", &repo);
    me.sign(&format!("{repo}:{}", tags[0]));
    (repo, images)
}

#[test]
fn targets_key_rotation_and_the_snapshot_key_to_the_server_and_back() {
    let w = World::new("rotation");
    let (me, stack) = (w.user(), &w.stack);
    let (repo, images) = alice_signed_repo(&w, "rot/app", &["v1", "v2"]);
    let (v1, v2) = (&images[0], &images[1]);
    let before = inspect(&me, &repo);
    let old_repo_key = before[0]["AdministrativeKeys"][1]["Keys"][0]["ID"].clone();

    // A new targets key in the agent; the root key is online, so this publishes at once.
    me.generate_key("repo-key-2");
    let new_key = key_id(&me, "repo-key-2");
    let out = me.tufa_ok(&["root", "rotate", &repo, "--targets-key", "repo-key-2"]);
    assert!(out.contains("Published root version 2"), "{out}");
    assert_eq!(stack.role_keyids(&repo, "targets"), vec![new_key.clone()]);
    assert_eq!(stack.signed_by(&repo, "targets"), vec![new_key.clone()]);
    let after = inspect(&me, &repo);
    assert_eq!(after[0]["AdministrativeKeys"][1]["Name"], "Repository");
    assert_eq!(
        after[0]["AdministrativeKeys"][1]["Keys"][0]["ID"],
        new_key.as_str()
    );
    assert_ne!(
        after[0]["AdministrativeKeys"][1]["Keys"][0]["ID"],
        old_repo_key
    );
    assert_eq!(signed_tags(&after), signed_tags(&before));
    assert_eq!(me.dct_pull(&format!("{repo}:v1")).unwrap(), v1.digest);

    // The snapshot key moves from the server to the agent: snapshots come signed by it.
    me.generate_key("snap");
    let snap = key_id(&me, "snap");
    me.tufa_ok(&["root", "rotate", &repo, "--snapshot-key", "snap"]);
    assert_eq!(stack.role_keyids(&repo, "snapshot"), vec![snap.clone()]);
    me.sign(&format!("{repo}:v2"));
    assert_eq!(stack.signed_by(&repo, "snapshot"), vec![snap.clone()]);

    // And back: the server makes a new snapshot key and every snapshot; a new timestamp key.
    let old_timestamp = stack.role_keyids(&repo, "timestamp");
    me.tufa_ok(&[
        "root",
        "rotate",
        &repo,
        "--server-managed-snapshot",
        "--new-timestamp-key",
    ]);
    let server_snap = stack.role_keyids(&repo, "snapshot");
    assert_ne!(server_snap, vec![snap]);
    assert_eq!(stack.signed_by(&repo, "snapshot"), server_snap);
    let timestamp = stack.role_keyids(&repo, "timestamp");
    assert_ne!(timestamp, old_timestamp);
    assert_eq!(stack.signed_by(&repo, "timestamp"), timestamp);
    me.agent.tufa_ok(me.cwd, &["key", "delete", "snap"]);
    let v3 = stack.push_image("rot/app", "v3", ManifestKind::DockerSchema2);
    me.sign(&format!("{repo}:v3"));

    // docker still reads every tag, with the new repository key.
    let last = inspect(&me, &repo);
    assert_eq!(
        last[0]["AdministrativeKeys"][1]["Keys"][0]["ID"],
        new_key.as_str()
    );
    let tags: Vec<String> = signed_tags(&last).into_iter().map(|t| t.0).collect();
    assert_eq!(tags, ["v1", "v2", "v3"]);
    for (tag, image) in [("v1", v1), ("v2", v2), ("v3", &v3)] {
        assert_eq!(
            me.dct_pull(&format!("{repo}:{tag}")).unwrap(),
            image.digest,
            "{tag}"
        );
    }
    // Nothing to rotate is refused by name.
    let err = me.tufa_fails(&["root", "rotate", &repo]);
    assert!(err.contains("nothing to rotate"), "{err}");
}

#[test]
fn a_compromised_signer_is_removed_and_only_what_remains_is_trusted() {
    let w = World::new("admin");
    let alice_person = Person::new("alice");
    let (admin, alice) = (w.user(), w.user_of(&alice_person.agent));
    let stack = &w.stack;
    let repo = format!("{}/incident/app", stack.registry_addr());
    let images: Vec<_> = ["v1", "v2", "v3", "v4"]
        .iter()
        .map(|t| stack.push_image("incident/app", t, ManifestKind::DockerSchema2))
        .collect();

    // The admin holds root, targets and bob's key; alice signs from her own agent.
    admin.generate_key("bob");
    alice.generate_key("alice");
    let alice_id = key_id(&alice, "alice");
    admin.add_signer("alice", &repo);
    admin.add_signer("bob", &repo);
    alice.sign(&format!("{repo}:v1"));
    admin.sign(&format!("{repo}:v2"));
    alice.sign(&format!("{repo}:v3"));
    let before = inspect(&admin, &repo);
    assert_eq!(
        signed_tags(&before),
        [
            ("v1".to_owned(), vec!["alice".to_owned()]),
            ("v2".to_owned(), vec!["bob".to_owned()]),
            ("v3".to_owned(), vec!["alice".to_owned()]),
        ]
    );

    // alice's key leaks. Without a decision about v1 and v3, nothing is published.
    let targets_before = stack.trust_file(&repo, "targets");
    let err = admin.tufa_fails(&["notary", "incident", &repo, "--key", &alice_id]);
    assert!(
        err.contains("v1, v3")
            && err.contains("--resign-with")
            && err.contains("nothing was published"),
        "{err}"
    );
    let err = admin.tufa_fails(&[
        "notary",
        "incident",
        &repo,
        "--key",
        &alice_id,
        "--resign-with",
        "bob",
        "--drop",
        "v2",
    ]);
    assert!(
        err.contains("v2 is not a target only the compromised key"),
        "{err}"
    );
    let err = admin.tufa_fails(&["notary", "incident", &repo, "--key", "0123456789"]);
    assert!(
        err.contains("no delegation of this repository lists key"),
        "{err}"
    );
    assert_eq!(stack.trust_file(&repo, "targets"), targets_before);

    // bob vouches for v1 again; v3 is dropped.
    let out = admin.tufa_ok(&[
        "notary",
        "incident",
        &repo,
        "--key",
        &alice_id[..12],
        "--resign-with",
        "bob",
        "--drop",
        "v3",
    ]);
    assert!(out.contains("targets/alice: removed"), "{out}");
    assert!(out.contains("targets/releases: key removed"), "{out}");
    assert!(
        out.contains("v1: re-signed into") && out.contains("v3: dropped"),
        "{out}"
    );

    // docker and tufa trust only what remains; alice's key signs nothing any more.
    let after = inspect(&admin, &repo);
    assert!(!after.to_string().contains(&alice_id), "{after}");
    assert!(!after.to_string().contains("\"alice\""), "{after}");
    let tags: Vec<String> = signed_tags(&after).into_iter().map(|t| t.0).collect();
    assert_eq!(tags, ["v1", "v2"]);
    for (i, tag) in ["v1", "v2"].iter().enumerate() {
        let image = format!("{repo}:{tag}");
        assert_eq!(admin.dct_pull(&image).unwrap(), images[i].digest, "{tag}");
        let out = admin.tufa_ok(&["verify", &image]);
        assert_eq!(out.trim(), format!("{repo}@{}", images[i].digest));
    }
    let err = admin.dct_pull(&format!("{repo}:v3")).unwrap_err();
    assert!(err.contains("v3"), "{err}");
    let err = admin.tufa_fails(&["verify", &format!("{repo}:v3")]);
    assert!(err.contains("v3"), "{err}");
    let targets_now = stack.trust_file(&repo, "targets");
    let err = alice.tufa_fails(&["sign", &format!("{repo}:v4")]);
    assert!(err.contains("no valid signing keys"), "{err}");
    assert_eq!(stack.trust_file(&repo, "targets"), targets_now);
    let err = admin.dct_pull(&format!("{repo}:v4")).unwrap_err();
    assert!(err.contains("No valid trust data for v4"), "{err}");
    // The admin's signer keeps signing.
    admin.sign(&format!("{repo}:v4"));
    assert_eq!(
        admin.dct_pull(&format!("{repo}:v4")).unwrap(),
        images[3].digest
    );
}

/// The columns of `role`'s row in `tufa notary status`.
fn status_row(status: &str, role: &str) -> Vec<String> {
    status
        .lines()
        .find(|l| l.split_whitespace().next() == Some(role))
        .unwrap_or_else(|| panic!("{role}:\n{status}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn status_shows_expiry_and_resign_renews_what_is_due() {
    let w = World::new("status");
    let (me, stack) = (w.user(), &w.stack);
    let (repo, images) = alice_signed_repo(&w, "status/app", &["v1"]);
    let v1 = &images[0];

    let out = me.tufa_ok(&["notary", "status", &repo]);
    let row = |role: &str| status_row(&out, role);
    assert_eq!(row("root")[5], "agent", "{out}");
    assert_eq!(row("targets")[5], "agent", "{out}");
    assert_eq!(row("snapshot")[5], "server", "{out}");
    assert_eq!(row("timestamp")[5], "server", "{out}");
    assert_eq!(row("targets/releases")[5], "agent", "{out}");
    for role in [
        "root",
        "targets",
        "snapshot",
        "timestamp",
        "targets/releases",
        "targets/alice",
    ] {
        assert_eq!(row(role)[6], "no", "{role}:\n{out}");
    }
    let out_ = me.tufa_ok(&["notary", "resign", &repo]);
    assert!(out_.contains("Nothing in"), "{out_}");

    // Everything signed for three years is due within 1100 days; root (ten years) is not.
    let targets_v = row("targets")[1].parse::<u64>().unwrap();
    let releases_v = row("targets/releases")[1].parse::<u64>().unwrap();
    let root_before = stack.trust_file(&repo, "root");
    let out2 = me.tufa_ok(&["notary", "resign", &repo, "--within", "1100"]);
    assert!(out2.contains("Re-signed targets"), "{out2}");
    let out = me.tufa_ok(&["notary", "status", &repo]);
    let row = |role: &str| status_row(&out, role);
    assert_eq!(row("targets")[1].parse::<u64>().unwrap(), targets_v + 1);
    assert_eq!(
        row("targets/releases")[1].parse::<u64>().unwrap(),
        releases_v + 1
    );
    assert_eq!(stack.trust_file(&repo, "root"), root_before);
    assert_eq!(me.dct_pull(&format!("{repo}:v1")).unwrap(), v1.digest);
    inspect(&me, &repo);

    // The root is renewed by hand (version + 1, ten more years), its keys unchanged.
    let out = me.tufa_ok(&["root", "rotate", &repo, "--renew"]);
    assert!(out.contains("Published root version 2"), "{out}");
    assert_eq!(stack.role_keyids(&repo, "root").len(), 1);
    assert_eq!(me.dct_pull(&format!("{repo}:v1")).unwrap(), v1.digest);
    let root_before = stack.trust_file(&repo, "root");

    // A role held elsewhere is named, and nothing is published.
    let other = Person::new("other");
    let err = w
        .user_of(&other.agent)
        .tufa_fails(&["notary", "resign", &repo, "--within", "1100"]);
    assert!(
        err.contains("root rotate") || err.contains("cannot sign them"),
        "{err}"
    );
    assert_eq!(stack.trust_file(&repo, "root"), root_before);
}
