//! Root ceremonies: roots signed offline one card at a time through request files, checked with
//! the real notary-server and notary CLI.

use tufa_tests::offline::Card;
use tufa_tests::{Run, User, World};

/// `tufa root ARGS` on the online machine, against the stack, with its own trust dir.
fn root(online: &User, args: &[&str]) -> Run {
    let mut full: Vec<String> = vec![
        "root".into(),
        "--server".into(),
        online.stack.notary_url(),
        "--tls-ca".into(),
        online.stack.ca_file().display().to_string(),
        "--trust-dir".into(),
        online.cwd.join("tufa-trust").display().to_string(),
    ];
    full.extend(args.iter().map(|a| (*a).to_owned()));
    online.agent.tufa(online.cwd, &full)
}

/// `tufa root ARGS`, which must succeed (the server's log shown if not); returns stdout.
fn root_ok(online: &User, args: &[&str]) -> String {
    let out = root(online, args);
    assert!(
        out.success(),
        "{out:?}\nserver log:\n{}",
        online.stack.server_log()
    );
    out.stdout()
}

/// `tufa root ARGS`, which must fail; returns stderr.
fn root_fails(online: &User, args: &[&str]) -> String {
    root(online, args).fails()
}

/// An ordinary repository made online (root key in the online agent) with tag v1; notary has
/// cached its root v1.
fn repository_with_v1(online: &User, gun: &str) {
    online.notary_ok(&["init", gun, "-p"]);
    let digest = "ab".repeat(32);
    online.publish_target(gun, "v1", 3, &digest);
    assert!(online.stack.notary_ok(&["list", gun]).contains("v1"));
}

/// `--key CERT` for each certificate.
fn key_args(certs: &[String]) -> Vec<&str> {
    certs.iter().flat_map(|c| ["--key", c.as_str()]).collect()
}

/// `rotate GUN --key CERT... --threshold K --out REQ`.
fn rotate_args<'a>(
    gun: &'a str,
    certs: &'a [String],
    threshold: &'a str,
    out: &'a str,
) -> Vec<&'a str> {
    let mut args = vec!["rotate", gun];
    args.extend(key_args(certs));
    args.extend(["--threshold", threshold, "--out", out]);
    args
}

fn cards() -> [Card; 3] {
    [Card::new("card1"), Card::new("card2"), Card::new("card3")]
}

#[test]
fn a_two_of_three_root_signed_one_card_at_a_time_is_read_by_notary() {
    let w = World::new("online");
    let (online, stack, cwd) = (w.user(), &w.stack, w.cwd());
    let gun = "example.com/ceremony/rotated";

    // An ordinary repository, its root key in the online agent; notary caches root v1.
    repository_with_v1(&online, gun);

    // Each card certifies its key offline; the online machine prepares the 2-of-3 root.
    let cards = cards();
    let certs: Vec<String> = cards.iter().map(|c| c.certificate(gun, cwd)).collect();
    let req = cwd.join("req.json");
    let reqs = req.display().to_string();
    root_ok(&online, &rotate_args(gun, &certs, "2", &reqs));
    assert!(!std::fs::read_to_string(&req).unwrap().contains("PRIVATE"));

    let shown = root_ok(&online, &["show", &reqs]);
    for want in [
        &format!("Repository: {gun}") as &str,
        "Change: root version 1 -> 2",
        "root: threshold 2 of 3",
        "previous root (1 of 1 needed, 0 present)",
        "new root (2 of 3 needed, 0 present)",
        "Not ready to publish",
    ] {
        assert!(shown.contains(want), "{want}:\n{shown}");
    }

    // The old root key (online), then two cards, one at a time.
    root_ok(&online, &["sign", &reqs]);
    cards[0].sign(&req);
    let err = root_fails(&online, &["publish", &reqs]);
    assert!(err.contains("new root 1 of 2"), "{err}");
    assert_eq!(stack.root_version(gun), 1);
    cards[2].sign(&req);
    let shown = root_ok(&online, &["show", &reqs]);
    assert!(
        shown.contains("new root (2 of 3 needed, 2 present)"),
        "{shown}"
    );
    assert!(shown.contains("Ready to publish"), "{shown}");
    root_ok(&online, &["publish", &reqs]);
    assert_eq!(stack.root_version(gun), 2);

    // notary, holding root v1, follows the rotation to the 2-of-3 root; tufa keeps publishing.
    assert!(stack.notary_ok(&["list", gun]).contains("v1"));
    online.publish_target(gun, "v2", 3, &"cd".repeat(32));
    let listed = stack.notary_ok(&["list", gun]);
    assert!(listed.contains("v1") && listed.contains("v2"), "{listed}");

    // A further rotation needs 2 of the 3 cards: the online agent alone cannot publish one.
    let err = root_fails(
        &online,
        &["rotate", gun, "--key", &certs[1], "--threshold", "1"],
    );
    assert!(err.contains("--out REQ.json"), "{err}");
    assert_eq!(stack.root_version(gun), 2);
}

#[test]
fn publish_refuses_a_short_or_changed_request_and_publishes_nothing() {
    let w = World::new("online");
    let (online, stack, cwd) = (w.user(), &w.stack, w.cwd());
    let gun = "example.com/ceremony/refused";
    online.notary_ok(&["init", gun, "-p"]);
    let before = stack.trust_file(gun, "root");

    let cards = cards();
    let certs: Vec<String> = cards.iter().map(|c| c.certificate(gun, cwd)).collect();
    let req = cwd.join("req.json");
    let reqs = req.display().to_string();
    root_ok(&online, &rotate_args(gun, &certs, "2", &reqs));

    // Bad thresholds and a certificate for another repository are refused up front.
    let err = root_fails(&online, &rotate_args(gun, &certs[..2], "3", &reqs));
    assert!(err.contains("threshold of 3 with 2 root key(s)"), "{err}");
    let err = root_fails(
        &online,
        &[
            &["rotate", gun][..],
            &key_args(&certs[..2]),
            &["--out", &reqs],
        ]
        .concat(),
    );
    assert!(err.contains("without --threshold"), "{err}");
    let elsewhere = cwd.join("other");
    std::fs::create_dir(&elsewhere).unwrap();
    let other = cards[0].certificate("example.com/other", &elsewhere);
    let err = root_fails(&online, &["rotate", gun, "--key", &other, "--out", &reqs]);
    assert!(
        err.contains("cannot be a root key of") && err.contains("tufa root cert"),
        "{err}"
    );

    // One signature short: the old root and one card.
    root_ok(&online, &["sign", &reqs]);
    cards[1].sign(&req);
    let err = root_fails(&online, &["publish", &reqs]);
    assert!(
        err.contains("not signed enough")
            && err.contains("new root 1 of 2")
            && err.contains("tufa root sign"),
        "{err}"
    );
    assert_eq!(stack.trust_file(gun, "root"), before);
    // The same card cannot count twice, and a card the request does not name is refused.
    let out = cards[1]
        .agent
        .tufa(cwd, &["root", "sign", &reqs, "--key", "card2"]);
    assert!(out.stderr().contains("already signed"), "{out:?}");
    let stranger = Card::new("stranger");
    let out = stranger.agent.tufa(cwd, &["root", "sign", &reqs]);
    assert!(
        out.stderr().contains("holds none of the root keys"),
        "{out:?}"
    );

    // Fully signed, then one byte of the root changed: every reader refuses the file.
    cards[2].sign(&req);
    let good = std::fs::read(&req).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    let at = text.find("\"expires\": \"").unwrap() + "\"expires\": \"".len() + 3;
    let mut bad = good.clone();
    bad[at] = if bad[at] == b'7' { b'8' } else { b'7' };
    std::fs::write(&req, &bad).unwrap();
    for cmd in ["publish", "show"] {
        let err = root_fails(&online, &[cmd, &reqs]);
        assert!(
            err.contains("does not verify") && err.contains("changed"),
            "{cmd}: {err}"
        );
    }
    let out = cards[0].agent.tufa(cwd, &["root", "sign", &reqs]);
    assert!(!out.success());
    assert_eq!(stack.trust_file(gun, "root"), before);
    // A changed byte in the previous root is caught too.
    let at = text.find("\"previous_root\": \"").unwrap() + "\"previous_root\": \"".len() + 20;
    let mut bad = good.clone();
    bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&req, &bad).unwrap();
    let err = root_fails(&online, &["publish", &reqs]);
    assert!(
        err.contains("previous_root") && err.contains("changed"),
        "{err}"
    );
    assert_eq!(stack.trust_file(gun, "root"), before);

    // The intact file publishes; published again (or replayed), it is stale and refused.
    std::fs::write(&req, &good).unwrap();
    root_ok(&online, &["publish", &reqs]);
    assert_eq!(stack.root_version(gun), 2);
    let err = root_fails(&online, &["publish", &reqs]);
    assert!(err.contains("make a new request"), "{err}");
    assert_eq!(stack.root_version(gun), 2);
}

#[test]
fn a_repository_whose_root_is_offline_from_the_start() {
    let w = World::new("online");
    let (online, stack, cwd) = (w.user(), &w.stack, w.cwd());
    let gun = "example.com/ceremony/offline";

    let cards = cards();
    let certs: Vec<String> = cards.iter().map(|c| c.certificate(gun, cwd)).collect();
    online.generate_key("app-targets");
    let req = cwd.join("init.json");
    let reqs = req.display().to_string();
    let plan = [
        "--threshold",
        "2",
        "--targets-key",
        "app-targets",
        "--out",
        &reqs,
    ];
    root_ok(
        &online,
        &[&["init", gun][..], &key_args(&certs), &plan].concat(),
    );
    let shown = root_ok(&online, &["show", &reqs]);
    assert!(
        shown.contains("Change: version 1 root of a new repository"),
        "{shown}"
    );
    assert!(
        shown.contains("new root (2 of 3 needed, 0 present)"),
        "{shown}"
    );
    // The online agent holds no root key.
    let err = root_fails(&online, &["sign", &reqs]);
    assert!(err.contains("holds none of the root keys"), "{err}");
    let err = root_fails(&online, &["publish", &reqs]);
    assert!(err.contains("new root 0 of 2"), "{err}");
    assert_eq!(stack.root_version(gun), 0);

    // The unsigned init plan may only name keys the root lists.
    let good = std::fs::read_to_string(&req).unwrap();
    let listed: serde_json::Value = serde_json::from_str(&good).unwrap();
    let plan_key = listed["init"]["targets_key"].as_str().unwrap().to_owned();
    std::fs::write(&req, good.replace(&plan_key, &"0".repeat(64))).unwrap();
    let err = root_fails(&online, &["show", &reqs]);
    assert!(
        err.contains("init plan") && err.contains("changed"),
        "{err}"
    );
    std::fs::write(&req, &good).unwrap();

    cards[0].sign(&req);
    cards[1].sign(&req);
    let out = root_ok(&online, &["publish", &reqs]);
    assert!(out.contains("Published root version 1"), "{out}");
    assert_eq!(stack.root_version(gun), 1);

    // notary trusts it on first use; targets changes need no root key.
    assert!(stack
        .notary_ok(&["list", gun])
        .contains("No targets present"));
    online.publish_target(gun, "v1", 3, &"ab".repeat(32));
    assert!(stack.notary_ok(&["list", gun]).contains("v1"));
    // A key change needs the root keys: without them online, no publish, and the way out named.
    online.generate_key("app-targets-2");
    let err = root_fails(&online, &["rotate", gun, "--targets-key", "app-targets-2"]);
    assert!(err.contains("--out REQ.json"), "{err}");
    assert_eq!(stack.root_version(gun), 1);
    // The same change through a request the cards sign (the old root's 2 of 3, and the new's).
    root_ok(
        &online,
        &[
            "rotate",
            gun,
            "--targets-key",
            "app-targets-2",
            "--out",
            &reqs,
        ],
    );
    cards[1].sign(&req);
    cards[2].sign(&req);
    root_ok(&online, &["publish", &reqs]);
    assert_eq!(stack.root_version(gun), 2);
    let listed = stack.notary_ok(&["list", gun]);
    assert!(listed.contains("v1"), "{listed}");
}

/// Issue 6's ceremony on real PIV plumbing: three simulated YubiKeys (both firmware
/// personalities) on the offline machine's one agent, plugged in one at a time, as a person
/// would; a 2-of-3 root signed through the request file; notary follows the rotation.
#[test]
fn a_two_of_three_root_on_yubikeys_plugged_in_one_at_a_time() {
    use tufa_tests::piv::{CardSpec, Firmware};
    use tufa_tests::yubikey::{fresh_serial, SimYubiKey};

    let w = World::new("online");
    let (online, stack, cwd) = (w.user(), &w.stack, w.cwd());
    let gun = "example.com/ceremony/yubikeys";
    repository_with_v1(&online, gun);

    let firmware = [Firmware::V5_4_3, Firmware::V5_7_1, Firmware::V5_4_3];
    let mut cards = SimYubiKey::with(
        firmware
            .iter()
            .map(|&firmware| CardSpec {
                serial: fresh_serial(),
                firmware,
                ..CardSpec::default()
            })
            .collect(),
    );
    let offline = tufa_tests::Agent::start(&cards);
    let serials: Vec<String> = (0..3).map(|i| cards.serial(i).to_string()).collect();

    // Each card makes its root key and certifies it (the online machine gets the certificates).
    let mut certs = Vec::new();
    for (i, serial) in serials.iter().enumerate() {
        let name = format!("root-card{i}");
        offline.tufa_ok(cwd, &["key", "generate", &name, "--device", serial]);
        let out = cwd.join(format!("{name}.crt")).display().to_string();
        offline.tufa_ok(cwd, &["root", "cert", gun, "--key", &name, "--out", &out]);
        certs.push(out);
    }
    let listed = offline.tufa_ok(cwd, &["key", "list"]);
    assert_eq!(listed.matches("root-card").count(), 3, "{listed}");

    let req = cwd.join("req.json");
    let reqs = req.display().to_string();
    root_ok(&online, &rotate_args(gun, &certs, "2", &reqs));
    root_ok(&online, &["sign", &reqs]);

    // Only card 0 in the offline machine: `root sign` uses what is there.
    cards.cards[1].unplug();
    cards.cards[2].unplug();
    let out = offline.tufa_ok(cwd, &["root", "sign", &reqs]);
    assert_eq!(out.matches("Signed with root key").count(), 1, "{out}");
    assert_eq!(out.matches("its device is not here").count(), 2, "{out}");
    let shown = root_ok(&online, &["show", &reqs]);
    assert!(
        shown.contains("new root (2 of 3 needed, 1 present)"),
        "{shown}"
    );
    let err = root_fails(&online, &["publish", &reqs]);
    assert!(err.contains("new root 1 of 2"), "{err}");

    // Card 0 out, card 2 in (the AES-192 one is card 1; card 2 is like card 0).
    cards.cards[0].unplug();
    cards.cards[2].plug().unwrap();
    offline.tufa_ok(cwd, &["root", "sign", &reqs]);
    let shown = root_ok(&online, &["show", &reqs]);
    assert!(
        shown.contains("new root (2 of 3 needed, 2 present)"),
        "{shown}"
    );
    root_ok(&online, &["publish", &reqs]);
    assert_eq!(stack.root_version(gun), 2);

    // notary, holding root v1, follows the rotation; the next root needs two of the cards.
    assert!(stack.notary_ok(&["list", gun]).contains("v1"));
    let err = root_fails(
        &online,
        &["rotate", gun, "--key", &certs[1], "--threshold", "1"],
    );
    assert!(err.contains("--out REQ.json"), "{err}");

    // Card 1 (firmware 5.7, AES-192 management key) signs the next rotation with card 2.
    let req2 = cwd.join("req2.json");
    let req2s = req2.display().to_string();
    root_ok(&online, &["rotate", gun, "--renew", "--out", &req2s]);
    cards.cards[1].plug().unwrap();
    offline.tufa_ok(cwd, &["root", "sign", &req2s]);
    root_ok(&online, &["publish", &req2s]);
    assert_eq!(stack.root_version(gun), 3);
    assert!(stack.notary_ok(&["list", gun]).contains("v1"));
}
