//! tufa's Distribution API client against the stack's real registry (docker-registry 2.8, plain
//! HTTP on loopback): what a tag or digest points to, and what it says when it cannot tell.

use tufa_client::docker_config::DockerConfig;
use tufa_client::http::HttpError;
use tufa_client::reference::{ImageRef, Registry};
use tufa_client::registry::{RegistryClient, RegistryConfig, RegistryError};
use tufa_tests::stack::{ManifestKind, PushedImage, Stack};

/// The client `tufa sign` would make for the stack's registry: docker's settings from the
/// stack's `DOCKER_CONFIG`, insecure because it is on loopback.
fn client_for(stack: &Stack) -> RegistryClient {
    let registry: Registry = stack.registry_addr().parse().unwrap();
    let docker = DockerConfig::load_from(&stack.docker_config()).unwrap();
    let config = RegistryConfig::from_docker_config(&registry, &docker, &[]);
    assert!(
        config.insecure,
        "a loopback registry is insecure by default"
    );
    RegistryClient::new(config).unwrap()
}

fn as_pushed(d: &tufa_client::registry::Descriptor) -> PushedImage {
    PushedImage {
        digest: d.oci_digest(),
        size: d.size,
        media_type: d.media_type.clone(),
    }
}

#[tokio::test]
async fn every_manifest_kind_resolves_to_what_was_pushed() {
    let stack = Stack::start_local_signing();
    let client = client_for(&stack);
    for kind in ManifestKind::ALL {
        let tag = format!("{kind:?}").to_lowercase();
        let pushed = stack.push_image("reg/app", &tag, kind);

        let by_tag = client.manifest_descriptor("reg/app", &tag).await.unwrap();
        assert_eq!(as_pushed(&by_tag), pushed, "{kind:?} by tag");
        let by_digest = client
            .manifest_descriptor("reg/app", &pushed.digest)
            .await
            .unwrap();
        assert_eq!(as_pushed(&by_digest), pushed, "{kind:?} by digest");

        // The way `tufa sign IMAGE:TAG` and `tufa verify IMAGE@DIGEST` get there.
        let image = ImageRef::parse(&format!("{}/reg/app:{tag}", stack.registry_addr())).unwrap();
        assert_eq!(as_pushed(&client.resolve(&image).await.unwrap()), pushed);
        let pinned = ImageRef::parse(&format!(
            "{}/reg/app@{}",
            stack.registry_addr(),
            pushed.digest
        ))
        .unwrap();
        assert_eq!(as_pushed(&client.resolve(&pinned).await.unwrap()), pushed);
        assert!(client
            .manifest_exists("reg/app", &pushed.digest)
            .await
            .unwrap());
    }
}

#[tokio::test]
async fn unknown_tags_digests_and_repositories_say_what_to_do() {
    let stack = Stack::start_local_signing();
    let client = client_for(&stack);
    let pushed = stack.push_image("reg/known", "v1", ManifestKind::DockerSchema2);
    let registry = stack.registry_addr();

    let e = client
        .manifest_descriptor("reg/known", "v9")
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::TagNotFound { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("tag v9 not found in {registry}/reg/known: push it first, or check the tag")
    );

    let missing = format!("sha256:{}", "0".repeat(64));
    let e = client
        .manifest_descriptor("reg/known", &missing)
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::ManifestNotFound { .. }), "{e:?}");
    assert!(e.to_string().contains(&missing), "{e}");
    assert!(!client.manifest_exists("reg/known", &missing).await.unwrap());

    let e = client
        .manifest_descriptor("reg/never-pushed", "v1")
        .await
        .unwrap_err();
    assert!(
        matches!(e, RegistryError::RepositoryUnknown { .. }),
        "{e:?}"
    );
    assert!(
        e.to_string().contains(&format!(
            "repository reg/never-pushed is not known to the registry {registry}"
        )),
        "{e}"
    );
    // A digest that exists, but in another repository, is not found there.
    assert!(!client
        .manifest_exists("reg/never-pushed", &pushed.digest)
        .await
        .unwrap());
}

#[tokio::test]
async fn a_stopped_registry_is_unreachable() {
    let mut stack = Stack::start_local_signing();
    let client = client_for(&stack);
    stack.stop("registry");
    let e = client
        .manifest_descriptor("reg/app", "v1")
        .await
        .unwrap_err();
    let registry = stack.registry_addr();
    assert!(
        matches!(e, RegistryError::Http(HttpError::Unreachable { .. })),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("cannot reach the registry {registry} ("))
            && text.contains(&format!("http://{registry}/v2/reg/app/manifests/v1"))
            && text.contains("check that the registry is running"),
        "{text}"
    );
}

/// A secure (not loopback-insecure) registry's certificate is checked against the CA in
/// `$DOCKER_CONFIG/tls/<host:port>/`. The stack's only TLS server is notary-server, which
/// answers the Distribution API's paths with 404s: enough to see the handshake pass or fail.
#[tokio::test]
async fn a_secure_registry_is_checked_against_the_docker_config_ca() {
    let stack = Stack::start_local_signing();
    let host_port = stack.notary_url().trim_start_matches("https://").to_owned();
    let registry: Registry = host_port.parse().unwrap();

    let without_ca = RegistryClient::new(RegistryConfig {
        registry: registry.clone(),
        insecure: false,
        ca_files: Vec::new(),
        client_cert: None,
        credentials: None,
    })
    .unwrap();
    let e = without_ca
        .manifest_descriptor("reg/app", "v1")
        .await
        .unwrap_err();
    assert!(
        matches!(e, RegistryError::Http(HttpError::Tls { .. })),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains(&format!("$DOCKER_CONFIG/tls/{host_port}/ca.crt")),
        "{e}"
    );

    let docker = DockerConfig::load_from(&stack.docker_config()).unwrap();
    let mut config = RegistryConfig::from_docker_config(&registry, &docker, &[]);
    assert_eq!(config.ca_files.len(), 1, "{config:?}");
    config.insecure = false;
    let e = RegistryClient::new(config)
        .unwrap()
        .manifest_descriptor("reg/app", "v1")
        .await
        .unwrap_err();
    assert!(
        !matches!(
            e,
            RegistryError::Http(HttpError::Tls { .. } | HttpError::Unreachable { .. })
        ),
        "the handshake passes with the CA: {e:?}"
    );
}
