//! `tufa notary ...` against the real notary-server, checked with the real notary CLI.

use std::path::Path;

use tufa_tests::stack::Stack;
use tufa_tests::{Agent, SoftHsm};

/// Runs `tufa notary` against the stack with its own trust dir.
fn tufa_notary(agent: &Agent, stack: &Stack, cwd: &Path, args: &[&str]) -> String {
    let server = stack.notary_url();
    let ca = stack.ca_file();
    let trust = cwd.join("tufa-trust");
    let mut full = vec![
        "notary",
        "--server",
        &server,
        "--tls-ca",
        ca.to_str().unwrap(),
        "--trust-dir",
        trust.to_str().unwrap(),
    ];
    full.extend_from_slice(args);
    agent.tufa_ok(cwd, &full)
}

#[test]
fn tufa_publishes_targets_and_a_delegation_that_notary_lists() {
    let stack = Stack::start();
    let hsm = SoftHsm::new("notary-e2e", "pin-Qx7wz");
    let agent = Agent::start(&hsm);
    let cwd = tempfile::tempdir().unwrap();
    let gun = "example.com/tufa/app";

    tufa_notary(&agent, &stack, cwd.path(), &["init", gun, "-p"]);
    let out = tufa_notary(
        &agent,
        &stack,
        cwd.path(),
        &[
            "addhash",
            gun,
            "v1",
            "423",
            "--sha256",
            &"ab".repeat(32),
            "-p",
        ],
    );
    assert!(
        out.contains("Successfully published changes for repository example.com/tufa/app"),
        "{out}"
    );

    // A delegation whose key lives in the agent, then a target signed into it.
    agent.tufa_ok(cwd.path(), &["key", "generate", "releaser"]);
    tufa_notary(
        &agent,
        &stack,
        cwd.path(),
        &[
            "delegation",
            "add",
            gun,
            "targets/releases",
            "releaser.pub",
            "--all-paths",
            "-p",
        ],
    );
    std::fs::write(cwd.path().join("artifact"), b"hello release").unwrap();
    tufa_notary(
        &agent,
        &stack,
        cwd.path(),
        &[
            "add",
            gun,
            "v2",
            "artifact",
            "--roles",
            "targets/releases",
            "-p",
        ],
    );

    // The real notary CLI trusts tufa's root on first use and prints, byte for byte, what tufa
    // prints.
    let theirs = stack.notary_ok(&["list", gun]);
    let ours = tufa_notary(&agent, &stack, cwd.path(), &["list", gun]);
    assert_eq!(ours, theirs, "tufa:\n{ours}\nnotary:\n{theirs}");
    assert!(theirs.contains("v1") && theirs.contains("v2"), "{theirs}");
    for role in ["targets", "targets/releases"] {
        let theirs = stack.notary_ok(&["list", gun, "--roles", role]);
        let ours = tufa_notary(&agent, &stack, cwd.path(), &["list", gun, "--roles", role]);
        assert_eq!(ours, theirs, "{role}: tufa:\n{ours}\nnotary:\n{theirs}");
    }
    let theirs = stack.notary_ok(&["delegation", "list", gun]);
    let ours = tufa_notary(&agent, &stack, cwd.path(), &["delegation", "list", gun]);
    assert_eq!(ours, theirs, "tufa:\n{ours}\nnotary:\n{theirs}");
}
