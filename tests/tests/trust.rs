//! The `docker trust` verbs against the real docker CLI, notary-server and registry.

use std::path::{Path, PathBuf};

use tufa_tests::stack::{ManifestKind, PushedImage, Stack, PASSPHRASE};
use tufa_tests::{Person, Run, User, World};

/// `sha256:<hex>` without its prefix, as the notary verbs and docker's messages write it.
fn hex(digest: &str) -> String {
    digest.trim_start_matches("sha256:").to_owned()
}

/// The private key file docker wrote for the key of `role` (a signer's name, or `targets`).
fn docker_key_file(stack: &Stack, role: &str) -> PathBuf {
    let line = format!("role: {role}");
    std::fs::read_dir(stack.docker_config().join("trust/private"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.lines().any(|l| l == line)))
        .unwrap_or_else(|| panic!("docker wrote no private key for {role}"))
}

/// `tufa key load FILE --name NAME` with docker's passphrase variable set, as a user moves a
/// key docker made into the agent.
fn load_docker_key(me: &User, file: &Path, name: &str) {
    Run::of(
        format!("tufa key load {} --name {name}", file.display()),
        me.tufa_command()
            .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", PASSPHRASE)
            .args(["key", "load", file.to_str().unwrap(), "--name", name]),
    )
    .ok();
}

/// `tufa notary addhash GUN NAME SIZE --sha256 HEX --roles ROLE -p`: a target put into `role`
/// by hand.
fn addhash(me: &User, gun: &str, name: &str, image: &PushedImage, role: &str) {
    me.tufa_ok(&[
        "notary",
        "addhash",
        gun,
        name,
        &image.size.to_string(),
        "--sha256",
        &hex(&image.digest),
        "--roles",
        role,
        "-p",
    ]);
}

#[test]
fn a_repo_made_by_tufa_reads_the_same_in_docker() {
    let w = World::new("trust-tufa");
    let me = w.user();
    let repo = format!("{}/tufa/app", w.stack.registry_addr());
    let v1 = w
        .stack
        .push_image("tufa/app", "v1", ManifestKind::DockerSchema2);

    me.generate_key("alice");
    let out = me.add_signer("alice", &repo);
    assert!(
        out.contains(&format!("Initializing signed repository for {repo}...")),
        "{out}"
    );
    assert!(
        out.contains(&format!("Successfully added signer: alice to {repo}")),
        "{out}"
    );
    let out = me.sign(&format!("{repo}:v1"));
    assert!(
        out.contains(&format!("Successfully signed {repo}:v1")),
        "{out}"
    );

    // docker's view equals tufa's, JSON and pretty, whole repository and one tag.
    let name = format!("{repo}:v1");
    for target in [repo.as_str(), name.as_str()] {
        me.inspect_same(&[target]);
        me.inspect_same(&["--pretty", target]);
    }

    // verify and DCT pull agree on the digest.
    let out = me.tufa_ok(&["verify", &format!("{repo}:v1")]);
    assert_eq!(out.trim(), format!("{repo}@{}", v1.digest));
    assert_eq!(me.dct_pull(&format!("{repo}:v1")).unwrap(), v1.digest);
}

#[test]
fn a_repo_made_by_docker_is_read_and_extended_by_tufa() {
    let w = World::new("trust-docker");
    let me = w.user();
    let repo = format!("{}/docker/app", w.stack.registry_addr());
    let v1 = w
        .stack
        .push_image("docker/app", "v1", ManifestKind::OciManifest);
    let v2 = w
        .stack
        .push_image("docker/app", "v2", ManifestKind::OciIndex);

    // docker makes the repository with its signer (signing a new tag needs docker's daemon).
    me.docker_ok(&["trust", "key", "generate", "jeff"]);
    me.docker_ok(&["trust", "signer", "add", "--key", "jeff.pub", "jeff", &repo]);
    let theirs = me.docker_ok(&["trust", "inspect", &repo]);
    let ours = me.tufa_ok(&["inspect", &repo]);
    assert_eq!(ours, theirs);

    // Adding a signer re-signs targets: docker's repository key moves into the agent, the way
    // a user migrates from key files to hardware (docker's passphrase variable unlocks it).
    let targets_key = docker_key_file(&w.stack, "targets");
    load_docker_key(&me, &targets_key, "app-targets");

    // tufa adds its own signer and signs tags; docker shows them with that signer.
    me.generate_key("robot");
    me.add_signer("robot", &repo);
    me.sign(&format!("{repo}:v1"));
    me.sign(&format!("{repo}:v2"));
    let theirs = me.docker_ok(&["trust", "inspect", "--pretty", &repo]);
    assert!(theirs.contains("robot"), "{theirs}");
    let ours = me.tufa_ok(&["inspect", "--pretty", &repo]);
    assert_eq!(ours, theirs);
    assert_eq!(me.dct_pull(&format!("{repo}:v1")).unwrap(), v1.digest);
    assert_eq!(me.dct_pull(&format!("{repo}:v2")).unwrap(), v2.digest);

    // docker revokes v2 (it holds jeff's key, which is in targets/releases): tufa no longer
    // verifies it.
    me.docker_ok(&["trust", "revoke", "--yes", &format!("{repo}:v2")]);
    // robot's own role still lists v2, so both say "No trust data" (found, but not released).
    let ours = me.tufa_fails(&["verify", &format!("{repo}:v2")]);
    assert!(ours.contains("No trust data for v2\n"), "{ours}");
    let err = me.dct_pull(&format!("{repo}:v2")).unwrap_err();
    assert!(err.contains("No trust data for v2\n"), "{err}");

    // tufa revokes v1: docker no longer trusts it.
    let out = me.tufa_ok(&["revoke", &format!("{repo}:v1")]);
    assert!(
        out.contains(&format!("Successfully deleted signature for {repo}:v1")),
        "{out}"
    );
    let err = me.dct_pull(&format!("{repo}:v1")).unwrap_err();
    assert!(err.contains("No valid trust data for v1"), "{err}");
}

#[test]
fn two_signers_a_repo_admin_tag_and_every_manifest_kind() {
    // Two people, each with a key on their own token: alice also holds the repository's keys.
    let w = World::new("trust-alice");
    let bob_person = Person::new("trust-bob");
    let (alice, bob) = (w.user(), w.user_of(&bob_person.agent));
    let stack = &w.stack;
    let repo = format!("{}/multi/app", stack.registry_addr());
    let tag = |t: &str| format!("{repo}:{t}");
    // natural order: admin, both, v2, v10 (a plain sort would put v10 before v2).
    let v2 = stack.push_image("multi/app", "v2", ManifestKind::DockerSchema2);
    let v10 = stack.push_image("multi/app", "v10", ManifestKind::OciManifest);
    let both = stack.push_image("multi/app", "both", ManifestKind::OciIndex);
    let admin = stack.push_image("multi/app", "admin", ManifestKind::OciIndex);
    let hidden = stack.push_image("multi/app", "hidden", ManifestKind::DockerSchema2);

    alice.generate_key("alice");
    bob.generate_key("bob");
    for name in ["alice", "bob"] {
        alice.add_signer(name, &repo);
    }

    // Each signs with what their own agent holds: v2 by alice, v10 by bob, both by both.
    alice.sign(&tag("v2"));
    bob.sign(&tag("v10"));
    alice.sign(&tag("both"));
    let out = bob.sign(&tag("both"));
    assert!(
        out.contains(&format!(
            "Existing signatures for tag both digest {} from:\nalice\n",
            hex(&both.digest)
        )),
        "{out}"
    );
    // The repository admin signs `admin` into targets itself, and alice puts `hidden` into her
    // own role only: docker shows and pulls neither as alice's release.
    addhash(&alice, &repo, "admin", &admin, "targets");
    addhash(&alice, &repo, "hidden", &hidden, "targets/alice");

    // docker's view equals tufa's: the whole repository, each tag, and several at once.
    let json = alice.inspect_same(&[&repo]);
    alice.inspect_same(&["--pretty", &repo]);
    for t in ["v2", "v10", "both", "admin", "hidden"] {
        alice.inspect_same(&[&tag(t)]);
        alice.inspect_same(&["--pretty", &tag(t)]);
    }
    bob.inspect_same(&[&tag("v10"), &repo, &tag("admin")]);
    bob.inspect_same(&["--pretty", &tag("both"), &repo]);

    // ...and says what happened.
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows: Vec<(String, String, Vec<String>)> = json[0]["SignedTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let signers = r["Signers"].as_array().unwrap();
            (
                r["SignedTag"].as_str().unwrap().to_owned(),
                r["Digest"].as_str().unwrap().to_owned(),
                signers
                    .iter()
                    .map(|s| s.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    let row = |t: &str, d: &str, s: &[&str]| {
        (
            t.to_owned(),
            hex(d),
            s.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        rows,
        vec![
            row("admin", &admin.digest, &["Repo Admin"]),
            row("both", &both.digest, &["alice", "bob"]),
            row("v2", &v2.digest, &["alice"]),
            row("v10", &v10.digest, &["bob"]),
        ]
    );

    // verify and DCT pull resolve each released tag to the registry's digest, whatever the
    // manifest kind; the tag only alice's own role holds is trusted by neither.
    for (t, image) in [
        ("v2", &v2),
        ("v10", &v10),
        ("both", &both),
        ("admin", &admin),
    ] {
        let out = bob.tufa_ok(&["verify", &tag(t)]);
        assert_eq!(out.trim(), format!("{repo}@{}", image.digest), "{t}");
        assert_eq!(bob.dct_pull(&tag(t)).unwrap(), image.digest, "{t}");
    }
    // docker words it "No trust data" (found, but not released), not "No valid trust data".
    let ours = bob.tufa_fails(&["verify", &tag("hidden")]);
    assert!(ours.contains("No trust data for hidden\n"), "{ours}");
    let err = bob.dct_pull(&tag("hidden")).unwrap_err();
    assert!(err.contains("No trust data for hidden\n"), "{err}");
}

#[test]
fn bad_input_gets_a_clear_error_and_publishes_nothing() {
    let mut w = World::new("trust-bad");
    let reg = w.stack.registry_addr();
    let repo = format!("{reg}/bad/app");
    let v1 = w
        .stack
        .push_image("bad/app", "v1", ManifestKind::DockerSchema2);
    let me = w.user();
    me.generate_key("alice");
    me.add_signer("alice", &repo);
    me.sign(&format!("{repo}:v1"));
    let before = me.server_state(&repo);
    let run = |args: &[&str]| me.tufa_fails(args);

    // Malformed references: each verb names the reference and what a good one looks like.
    let upper = format!("{reg}/Bad/App:v1");
    let colons = format!("{repo}::v1");
    let short_digest = format!("{repo}@sha256:abc");
    for bad in [&upper, &colons, &short_digest] {
        for args in [
            vec!["sign", bad.as_str()],
            vec!["verify", bad],
            vec!["revoke", "--yes", bad],
            vec!["signer", "add", "--key", "alice.pub", "bob", bad],
            vec!["signer", "remove", "alice", bad],
        ] {
            let err = run(&args);
            assert!(err.contains("invalid reference format"), "{args:?}: {err}");
        }
    }
    let err = run(&["sign", &upper]);
    assert!(
        err.contains("repository name (Bad/App) must be lowercase"),
        "{err}"
    );
    let err = run(&["sign", &colons]);
    assert!(
        err.contains(&colons) && err.contains("[HOST[:PORT]/]NAME[:TAG]"),
        "{err}"
    );
    let err = run(&["sign", &repo]);
    assert!(
        err.contains(&format!("no tag specified for {repo}")),
        "{err}"
    );
    assert!(err.contains("IMAGE:TAG"), "{err}");
    // docker adds a signer to `repo:tag` as if the tag were not there; tufa says which
    // repository it would have meant instead.
    let err = run(&[
        "signer",
        "add",
        "--key",
        "alice.pub",
        "bob",
        &format!("{repo}:v1"),
    ]);
    assert!(err.contains(&format!("use {repo}")), "{err}");

    // Signer names docker refuses, refused with docker's words.
    for name in ["Alice", "a.b", "_x", "releases"] {
        let args = ["signer", "add", "--key", "alice.pub", name, &repo];
        let ours = run(&args);
        let theirs = me.docker_trust(&args).fails();
        assert!(
            ours.contains(theirs.trim()),
            "{name}: tufa: {ours}docker: {theirs}"
        );
    }
    for args in [
        ["signer", "remove", "releases", repo.as_str()],
        ["signer", "remove", "carol", repo.as_str()],
    ] {
        let ours = run(&args);
        let theirs = me.docker_trust(&args).fails();
        assert!(
            ours.contains(theirs.lines().next().unwrap()),
            "tufa: {ours}docker: {theirs}"
        );
    }

    // The registry has no such tag, or no such repository.
    let err = run(&["sign", &format!("{repo}:nosuch")]);
    assert!(
        err.contains(&format!("tag nosuch not found in {repo}")),
        "{err}"
    );
    assert!(err.contains("push it first"), "{err}");
    let unknown = format!("{reg}/bad/nosuch");
    let err = run(&["sign", &format!("{unknown}:v1")]);
    assert!(
        err.contains("bad/nosuch") && err.contains("push the image first"),
        "{err}"
    );

    // A repository without trust data: inspect is docker's, byte for byte and exit code.
    for args in [
        vec!["inspect", unknown.as_str()],
        vec!["inspect", "--pretty", &unknown],
    ] {
        let ours = me.tufa(&args);
        let theirs = me.docker_trust(&args);
        assert_eq!(ours.stdout(), theirs.stdout(), "{args:?}");
        assert_eq!(
            ours.stderr(),
            format!("no signatures or cannot access {unknown}\n"),
            "{args:?}"
        );
        assert_eq!(ours.stderr(), theirs.stderr(), "{args:?}");
        assert_eq!(ours.code(), theirs.code(), "{args:?}");
    }
    let no_trust = format!("does not have trust data for {unknown}");
    for args in [
        vec!["verify", &format!("{unknown}:v1")],
        vec!["revoke", "--yes", &format!("{unknown}:v1")],
        vec!["revoke", "--yes", &unknown],
        vec!["signer", "remove", "alice", &unknown],
    ] {
        let err = run(&args);
        assert!(err.contains(&no_trust), "{args:?}: {err}");
    }
    assert_eq!(w.stack.trust_file(&unknown, "root"), None);

    // Nothing listens where the notary server should be.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("https://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let notary_down = |args: &[&str]| {
        Run::of(
            format!("tufa {args:?} with the notary server down"),
            me.tufa_command()
                .env("DOCKER_CONTENT_TRUST_SERVER", &dead)
                .args(args),
        )
        .fails()
    };
    for args in [
        vec!["sign", &format!("{repo}:v1")],
        vec!["verify", &format!("{repo}:v1")],
        vec!["revoke", "--yes", &format!("{repo}:v1")],
        vec!["signer", "add", "--key", "alice.pub", "bob", &repo],
    ] {
        let err = notary_down(&args);
        assert!(err.contains(&dead), "{args:?}: {err}");
    }
    let err = notary_down(&["inspect", &repo]);
    assert_eq!(err, format!("no signatures or cannot access {repo}\n"));

    assert_eq!(me.server_state(&repo), before, "something was published");

    // The registry is down: sign cannot learn the digest, verify of a digest cannot check it.
    w.stack.stop("registry");
    let me = w.user();
    let err = me.tufa_fails(&["sign", &format!("{repo}:v1")]);
    assert!(err.contains(&reg), "{err}");
    let err = me.tufa_fails(&["verify", &format!("{repo}@{}", v1.digest)]);
    assert!(err.contains(&reg), "{err}");
    assert_eq!(me.server_state(&repo), before, "something was published");
}

#[test]
fn signer_remove_asks_as_docker_does_and_force_removes() {
    let w = World::new("trust-remove");
    let me = w.user();
    let repo = format!("{}/rm/app", w.stack.registry_addr());
    w.stack
        .push_image("rm/app", "v1", ManifestKind::DockerSchema2);
    w.stack
        .push_image("rm/app", "v2", ManifestKind::OciManifest);
    me.generate_key("alice");
    me.add_signer("alice", &repo);
    me.sign(&format!("{repo}:v1"));
    let before = me.server_state(&repo);
    let args = ["signer", "remove", "alice", repo.as_str()];

    // alice's signature is all that holds the release: both ask, and "n" changes nothing.
    let ours = me.tufa_answering(&args, "n\n");
    let theirs = me.docker_answering(&[&["trust"], &args[..]].concat(), "n\n");
    let ours_out = ours.stdout();
    assert!(
        ours_out.contains(&format!(
            "The signer \"alice\" signed the last released version of {repo}"
        )),
        "{ours_out}"
    );
    assert_eq!(ours_out, theirs.stdout());
    assert_eq!(ours.code(), theirs.code());
    // No answer at all (stdin closed) is a no as well.
    let out = me.tufa_ok(&args);
    assert!(out.ends_with("[y/N] "), "{out}");
    assert_eq!(
        me.server_state(&repo),
        before,
        "a refused removal published"
    );

    // "y" removes her: docker no longer lists her, and her key left targets/releases.
    let out = me.tufa_answering(&args, "y\n").ok();
    assert!(
        out.contains(&format!("Successfully removed alice from {repo}")),
        "{out}"
    );
    let json = me.docker_ok(&["trust", "inspect", &repo]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json[0]["Signers"], serde_json::json!([]), "{json}");
    let targets = w.stack.trust_json(&repo, "targets").unwrap();
    let roles = targets["signed"]["delegations"]["roles"]
        .as_array()
        .unwrap();
    assert!(
        roles.iter().all(|r| r["name"] != "targets/alice"),
        "{roles:?}"
    );
    let releases = roles
        .iter()
        .find(|r| r["name"] == "targets/releases")
        .expect("targets/releases stays");
    assert_eq!(
        releases["keyids"].as_array().map_or(0, Vec::len),
        0,
        "{releases}"
    );
    me.inspect_same(&[&repo]);

    // alice comes back and signs v2; --force removes her without asking (docker 28's --force
    // prints the first line and changes nothing: a CLI bug tufa does not copy).
    me.add_signer("alice", &repo);
    me.sign(&format!("{repo}:v2"));
    let out = me.tufa_ok(&["signer", "remove", "--force", "alice", &repo]);
    assert!(!out.contains("Are you sure"), "{out}");
    assert!(
        out.contains(&format!("Successfully removed alice from {repo}")),
        "{out}"
    );
    let pretty = me.inspect_same(&["--pretty", &repo]);
    assert!(!pretty.contains("alice"), "{pretty}");
}

/// The target names each role of `gun` holds on the server.
fn names_by_role(stack: &Stack, gun: &str, roles: &[&str]) -> Vec<(String, Vec<String>)> {
    roles
        .iter()
        .map(|role| (role.to_string(), stack.target_names(gun, role)))
        .collect()
}

#[test]
fn revoke_without_a_tag_does_what_docker_does() {
    let w = World::new("trust-revoke");
    let me = w.user();
    let stack = &w.stack;
    let reg = stack.registry_addr();
    // Twin repositories made by docker with the same signer: docker revokes one, tufa the other.
    let (theirs, ours) = (format!("{reg}/rv/docker"), format!("{reg}/rv/tufa"));
    me.docker_ok(&["trust", "key", "generate", "jeff"]);
    load_docker_key(&me, &docker_key_file(stack, "jeff"), "jeff");
    for repo in [&theirs, &ours] {
        let path = repo.strip_prefix(&format!("{reg}/")).unwrap();
        me.docker_ok(&["trust", "signer", "add", "--key", "jeff.pub", "jeff", repo]);
        // v1 and v2 released by jeff (tufa signs with jeff's key, now in the agent) ...
        for (t, kind) in [
            ("v1", ManifestKind::DockerSchema2),
            ("v2", ManifestKind::OciIndex),
        ] {
            stack.push_image(path, t, kind);
            me.sign(&format!("{repo}:{t}"));
        }
        // ... `admin` in targets, signed with docker's repository key by the notary CLI ...
        let admin = stack.push_image(path, "admin", ManifestKind::OciManifest);
        Run::of(
            "notary addhash admin",
            stack
                .notary_command()
                .arg("-d")
                .arg(stack.docker_config().join("trust"))
                .args([
                    "addhash",
                    repo,
                    "admin",
                    &admin.size.to_string(),
                    "--sha256",
                ])
                .args([hex(&admin.digest).as_str(), "-r", "targets", "-p"]),
        )
        .ok();
        // ... and `draft` in jeff's own role only.
        let draft = stack.push_image(path, "draft", ManifestKind::OciManifest);
        addhash(&me, repo, "draft", &draft, "targets/jeff");
    }
    let roles = ["targets", "targets/releases", "targets/jeff"];
    assert_eq!(
        names_by_role(stack, &theirs, &roles),
        names_by_role(stack, &ours, &roles)
    );

    // Without --yes both ask first; "n" changes nothing.
    let d = me.docker_answering(&["trust", "revoke", &theirs], "n\n");
    let t = me.tufa_answering(&["revoke", &ours], "n\n");
    assert_eq!(t.stdout(), d.stdout().replace(&theirs, &ours));
    assert_eq!(t.code(), d.code());

    // Revoking everything: the same roles lose the same names.
    let d = me.docker_ok(&["trust", "revoke", "--yes", &theirs]);
    let t = me.tufa_ok(&["revoke", "--yes", &ours]);
    assert_eq!(t, d.replace(&theirs, &ours));
    let after = names_by_role(stack, &ours, &roles);
    assert_eq!(names_by_role(stack, &theirs, &roles), after);
    assert_eq!(after[0], ("targets".to_owned(), vec!["admin".to_owned()]));
    me.inspect_same(&[&ours]);

    // Again: `admin` is left, in `targets`, which jeff cannot change. docker changes nothing and
    // reports success; tufa says the tag stays trusted and what would remove it.
    let before = names_by_role(stack, &theirs, &roles);
    let d = me.docker_ok(&["trust", "revoke", "--yes", &theirs]);
    assert!(d.contains("Successfully deleted signature"), "{d}");
    assert_eq!(names_by_role(stack, &theirs, &roles), before);
    assert_eq!(me.dct_pull(&format!("{theirs}:admin")).map(|_| ()), Ok(()));
    let err = me.tufa_fails(&["revoke", "--yes", &ours]);
    assert!(
        err.contains("stays trusted") && err.contains("--roles targets"),
        "{err}"
    );
    assert_eq!(names_by_role(stack, &ours, &roles), before);

    // A tag no role lists: docker's words.
    let err = me.tufa_fails(&["revoke", "--yes", &format!("{ours}:nosuch")]);
    assert!(
        err.contains(&format!(
            "could not remove signature for {ours}:nosuch: No valid trust data for nosuch"
        )),
        "{err}"
    );
    let theirs_err = me
        .docker_trust(&["revoke", "--yes", &format!("{theirs}:nosuch")])
        .fails();
    assert!(
        theirs_err.contains("No valid trust data for nosuch"),
        "{theirs_err}"
    );
}
