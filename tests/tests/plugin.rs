//! tufa as a docker CLI plugin: `docker tufa ...` through the real docker CLI.

use tufa_tests::stack::{ManifestKind, Stack};
use tufa_tests::{Agent, SoftHsm};

#[test]
fn docker_tufa_signs_and_verifies() {
    let stack = Stack::start();
    let hsm = SoftHsm::new("plugin", "pin-Qx7wz");
    let agent = Agent::start(&hsm);
    let cwd = tempfile::tempdir().unwrap();
    let repo = format!("{}/plugin/app", stack.registry_addr());
    let image = stack.push_image("plugin/app", "v1", ManifestKind::DockerSchema2);

    let out = std::process::Command::new(tufa_tests::bin("tufa"))
        .env("DOCKER_CONFIG", stack.docker_config())
        .arg("install-plugin")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(stack
        .docker_config()
        .join("cli-plugins/docker-tufa")
        .exists());

    let docker = |args: &[&str]| {
        let out = stack
            .docker_command(cwd.path())
            .env("TUFA_AGENT_SOCK", &agent.socket)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "docker {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // docker lists the plugin from its metadata.
    assert!(docker(&["--help"]).contains("tufa*"));
    agent.tufa_ok(cwd.path(), &["key", "generate", "carol"]);
    docker(&[
        "tufa",
        "signer",
        "add",
        "--key",
        "carol.pub",
        "carol",
        &repo,
    ]);
    let out = docker(&["tufa", "sign", &format!("{repo}:v1")]);
    assert!(
        out.contains(&format!("Successfully signed {repo}:v1")),
        "{out}"
    );
    let out = docker(&["tufa", "verify", &format!("{repo}:v1")]);
    assert_eq!(out.trim(), format!("{repo}@{}", image.digest));
}
