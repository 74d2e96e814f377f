//! tufa as a docker CLI plugin: `docker tufa ...` through the real docker CLI.

use tufa_tests::stack::ManifestKind;
use tufa_tests::{bin, Run, World};

#[test]
fn docker_tufa_signs_and_verifies() {
    let w = World::new("plugin");
    let repo = format!("{}/plugin/app", w.stack.registry_addr());
    let image = w
        .stack
        .push_image("plugin/app", "v1", ManifestKind::DockerSchema2);

    Run::of(
        "tufa install-plugin",
        std::process::Command::new(bin("tufa"))
            .env("DOCKER_CONFIG", w.stack.docker_config())
            .arg("install-plugin"),
    )
    .ok();
    assert!(w
        .stack
        .docker_config()
        .join("cli-plugins/docker-tufa")
        .exists());

    let docker = |args: &[&str]| {
        Run::of(
            format!("docker {args:?}"),
            w.stack
                .docker_command(w.cwd())
                .env("TUFA_AGENT_SOCK", &w.me.agent.socket)
                .args(args),
        )
        .ok()
    };
    // docker lists the plugin from its metadata.
    assert!(docker(&["--help"]).contains("tufa*"));
    w.user().generate_key("carol");
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
