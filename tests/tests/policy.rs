//! Who may use which key (issue 14): `[[client]]` rules for other uids, checked by the real
//! agent for the real `tufa` run as those uids (through `setpriv`, which needs root), and the
//! audit lines of what it refused.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command;

use tempfile::TempDir;
use tufa_tests::{require, Agent, AgentOptions, Run, SoftHsm, PIN};

/// The uids the tests act as: two with rules of their own, one allowed without a rule.
const CI_UID: u32 = 65534;
const WEB_UID: u32 = 65533;
const PLAIN_UID: u32 = 65532;

/// Fails (never skips) when the test cannot act as other uids.
fn require_root() {
    require("setpriv", "apt-get install util-linux");
    let uid = std::fs::metadata("/proc/self").expect("/proc").uid();
    assert_eq!(
        uid, 0,
        "this test runs tufa as other uids (setpriv): run it as root"
    );
}

/// An agent with `config` (rules, allowed_uids) whose socket other uids can reach.
fn shared_agent(label: &str, config: &str) -> (SoftHsm, Agent) {
    let hsm = SoftHsm::new(label, PIN);
    let agent = Agent::start_with(
        &hsm,
        AgentOptions {
            pin_file: true,
            config: Some(config.into()),
            ..Default::default()
        },
    );
    // Only the test's own temp directory is opened; the agent makes its socket reachable.
    std::fs::set_permissions(agent.dir(), std::fs::Permissions::from_mode(0o711)).unwrap();
    (hsm, agent)
}

/// A directory every uid may read and write (files to sign, signatures, public keys).
fn open_dir() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// `tufa --agent SOCKET ARGS` as `uid`, in `cwd`.
fn tufa_as(uid: u32, agent: &Agent, cwd: &Path, args: &[&str]) -> Run {
    Run::of(
        format!("tufa {args:?} as uid {uid}"),
        Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .arg(tufa_tests::bin("tufa"))
            .arg("--agent")
            .arg(&agent.socket)
            .args(args)
            .current_dir(cwd)
            .env_remove("TUFA_AGENT_SOCK"),
    )
}

/// One Sign with the key of full ID `key_id`, asked for directly as `uid` (no GetKey first).
fn sign_as(uid: u32, agent: &Agent, key_id: &str) -> serde_json::Value {
    let out = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg(env!("CARGO_BIN_EXE_neighbour"))
        .arg("sign")
        .arg(&agent.socket)
        .arg(key_id)
        .current_dir("/")
        .output()
        .expect("run the neighbour");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("the neighbour's JSON")
}

/// The names `tufa key list --json` shows to `uid`.
fn names_seen_by(uid: u32, agent: &Agent, cwd: &Path) -> Vec<String> {
    let out = tufa_as(uid, agent, cwd, &["key", "list", "--json"]).ok();
    let keys: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    keys.iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The owner makes `name` and returns its key ID.
fn owner_key(agent: &Agent, cwd: &Path, name: &str) -> String {
    agent.tufa_ok(
        cwd,
        &["key", "generate", name, "--dir", cwd.to_str().unwrap()],
    );
    let out = agent.tufa_ok(cwd, &["key", "list", "--json"]);
    let keys: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    keys.iter()
        .find(|k| k["name"] == name)
        .map(|k| k["key_id"].as_str().unwrap().to_owned())
        .unwrap()
}

/// The audit lines of `uid`'s calls that were refused.
fn refusals_of(agent: &Agent, uid: u32) -> Vec<serde_json::Value> {
    agent
        .audit_lines()
        .into_iter()
        .filter(|l| l["peer_uid"] == uid && l["result"].as_str().is_some_and(|r| r != "ok"))
        .collect()
}

#[test]
fn a_ci_uid_signs_with_its_keys_and_is_refused_everything_else() {
    require_root();
    let (_hsm, agent) = shared_agent(
        "policy-ci",
        &format!(
            "[[client]]\nuid = {CI_UID}\nallow = [\"status\", \"list\", \"sign\"]\n\
             keys = [\"ci-*\", \"later-*\"]\n"
        ),
    );
    // A rule may name keys that come later: a warning at start, not an error.
    assert!(
        agent.log().contains(
            "client[0] (uid 65534): keys entry 'later-*' names no key the agent holds now"
        ),
        "{}",
        agent.log()
    );
    let dir = open_dir();
    let cwd = dir.path();
    owner_key(&agent, cwd, "ci-signer");
    let root_id = owner_key(&agent, cwd, "root");
    std::fs::write(cwd.join("data"), b"a CI artifact").unwrap();

    // It sees and signs with its key, and only that.
    assert_eq!(names_seen_by(CI_UID, &agent, cwd), ["ci-signer"]);
    let listed = tufa_as(CI_UID, &agent, cwd, &["key", "list"]).ok();
    assert!(!listed.contains("root"), "{listed}");
    tufa_as(
        CI_UID,
        &agent,
        cwd,
        &["key", "sign", "ci-signer", "--in", "data", "--out", "sig"],
    )
    .ok();
    let spki = agent.tufa_ok(cwd, &["key", "public", "ci-signer"]);
    let der = pem::parse(spki).unwrap().into_contents();
    let sig: [u8; 64] = std::fs::read(cwd.join("sig")).unwrap().try_into().unwrap();
    assert!(tufa_tests::verify_with_p256(&der, b"a CI artifact", &sig));

    // The root key is not there for it, and a Sign that names it anyway is refused.
    tufa_as(
        CI_UID,
        &agent,
        cwd,
        &["key", "sign", "root", "--in", "data", "--out", "sig2"],
    )
    .fails_saying("no key 'root' that uid 65534 may use");
    let refused = sign_as(CI_UID, &agent, &root_id);
    assert_eq!(refused["code"], "PermissionDenied", "{refused}");
    let e = refused["error"].as_str().unwrap();
    assert!(
        e.contains(&format!(
            "uid 65534 may not sign with key 'root' ({root_id})"
        )) && e.contains("name other keys (ci-*, later-*)"),
        "{e}"
    );

    // No key management: neither delete nor generate, and the key is still there.
    tufa_as(CI_UID, &agent, cwd, &["key", "delete", "ci-signer"])
        .fails_saying("uid 65534 may not delete key 'ci-signer'");
    tufa_as(
        CI_UID,
        &agent,
        cwd,
        &["key", "generate", "ci-new", "--dir", "."],
    )
    .fails_saying("uid 65534 may not generate key 'ci-new'");
    tufa_as(CI_UID, &agent, cwd, &["agent", "lock"])
        .fails_saying("uid 65534 may not lock the devices: no [[client]] rule for it allows lock");
    let all = agent.tufa_ok(cwd, &["key", "list"]);
    assert!(
        all.contains("ci-signer") && !all.contains("ci-new"),
        "{all}"
    );

    // Each refusal has its audit line, and the result says why.
    let lines = refusals_of(&agent, CI_UID);
    let line = |op: &str, name: &str| {
        lines
            .iter()
            .find(|l| l["op"] == op && l["key_name"] == name)
            .unwrap_or_else(|| panic!("no refused {op} of {name} in {lines:#?}"))
    };
    let sign = line("sign", "root");
    assert_eq!(sign["key_id"], root_id.as_str());
    assert!(
        sign["result"].as_str().unwrap().contains("may not sign"),
        "{sign}"
    );
    assert!(line("delete", "ci-signer")["result"]
        .as_str()
        .unwrap()
        .contains("allows delete"));
    assert!(line("generate", "ci-new")["result"]
        .as_str()
        .unwrap()
        .contains("may not generate"));
    assert!(lines.iter().any(|l| l["op"] == "lock"), "{lines:#?}");
    // The hidden key asked for by name: a line too.
    assert_eq!(line("list", "root")["key_id"], root_id.as_str());
}

#[test]
fn two_rules_for_two_uids_do_not_leak_and_a_uid_without_one_gets_the_default() {
    require_root();
    let (_hsm, agent) = shared_agent(
        "policy-two",
        &format!(
            "allowed_uids = [{PLAIN_UID}]\n\
             [[client]]\nuid = {CI_UID}\nallow = [\"list\", \"sign\"]\nkeys = [\"ci-*\"]\n\
             [[client]]\nuid = {WEB_UID}\nallow = [\"list\", \"sign\"]\nkeys = [\"web-*\"]\n"
        ),
    );
    let dir = open_dir();
    let cwd = dir.path();
    let ci = owner_key(&agent, cwd, "ci-a");
    let web = owner_key(&agent, cwd, "web-a");
    let plain = owner_key(&agent, cwd, "plain-a");
    let root = owner_key(&agent, cwd, "root");

    assert_eq!(names_seen_by(CI_UID, &agent, cwd), ["ci-a"]);
    assert_eq!(names_seen_by(WEB_UID, &agent, cwd), ["web-a"]);
    // Without a rule: every key but the root key.
    assert_eq!(
        names_seen_by(PLAIN_UID, &agent, cwd),
        ["ci-a", "plain-a", "web-a"]
    );

    assert_eq!(sign_as(CI_UID, &agent, &ci)["ok"], true);
    assert_eq!(sign_as(WEB_UID, &agent, &web)["ok"], true);
    for (uid, other) in [(CI_UID, &web), (WEB_UID, &ci)] {
        let r = sign_as(uid, &agent, other);
        assert_eq!(r["code"], "PermissionDenied", "{r}");
        assert!(r["error"]
            .as_str()
            .unwrap()
            .contains(&format!("uid {uid} may not sign")));
    }
    assert_eq!(sign_as(PLAIN_UID, &agent, &plain)["ok"], true);
    let r = sign_as(PLAIN_UID, &agent, &root);
    assert_eq!(r["code"], "PermissionDenied", "{r}");
    let e = r["error"].as_str().unwrap();
    assert!(
        e.contains("uid 65532 may not sign with key 'root'") && e.contains("is a root key"),
        "{e}"
    );
    tufa_as(PLAIN_UID, &agent, cwd, &["key", "delete", "plain-a"])
        .fails_saying("uid 65532 has no [[client]] rule");
    // The status is the default's too; a ruled uid without `status` is refused it.
    tufa_as(PLAIN_UID, &agent, cwd, &["agent", "status"]).ok();
    tufa_as(CI_UID, &agent, cwd, &["agent", "status"])
        .fails_saying("uid 65534 may not read the agent's status");
    // web's lines: the lookup of ci's key and the Sign that named it anyway.
    let ops: Vec<_> = refusals_of(&agent, WEB_UID)
        .iter()
        .map(|l| (l["op"].clone(), l["key_name"].clone()))
        .collect();
    assert_eq!(
        ops,
        [
            ("list".into(), "ci-a".into()),
            ("sign".into(), "ci-a".into())
        ]
    );
}
