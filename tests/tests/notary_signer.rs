//! tufad as notary-server's signer: the real notary-server 0.7 with `trust_service` `remote`
//! pointing at tufad's `[notary_signer]` listener (no notary-signer runs), driven by the real
//! notary CLI, `tufa` and the docker CLI.

use std::collections::BTreeSet;

use tonic::Code;
use tufa_proto::notary;
use tufa_proto::v1;
use tufa_tests::stack::{ManifestKind, Stack, SERVER_TOKEN};
use tufa_tests::{AgentOptions, SoftHsm, World, PIN};

/// The key IDs of the token's server keys.
async fn token_key_ids(stack: &Stack) -> BTreeSet<String> {
    stack
        .tufad()
        .server_keys()
        .await
        .into_iter()
        .map(|k| k.key_id)
        .collect()
}

/// Asserts that the served root's timestamp and snapshot keys are server keys in the token,
/// tagged for `gun`.
async fn server_roles_are_in_the_token(stack: &Stack, gun: &str) {
    for role in ["timestamp", "snapshot"] {
        let ids = stack.role_keyids(gun, role);
        let tagged: BTreeSet<String> = stack
            .tufad()
            .server_keys_for(gun, role)
            .await
            .into_iter()
            .map(|k| k.key_id)
            .collect();
        assert!(
            !ids.is_empty() && ids.iter().all(|id| tagged.contains(id)),
            "{gun}'s {role} keys {ids:?} are not all server keys in the token ({tagged:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_tufa_and_docker_publish_through_tufad_as_the_signer() {
    let w = World::on(Stack::start_with_tufad_signer(), "signer-user");
    let stack = &w.stack;

    // The notary CLI: init, add, publish, list; then the snapshot and the timestamp key go
    // to (new) server keys.
    let gun = "example.com/signer/notary";
    std::fs::write(stack.dir().join("artifact"), b"signed by the hsm").unwrap();
    stack.notary_ok(&["init", gun, "-p"]);
    stack.notary_ok(&["add", gun, "v1", "artifact", "-p"]);
    assert!(stack.notary_ok(&["list", gun]).contains("v1"));
    stack.notary_ok(&["key", "rotate", gun, "snapshot", "-r"]);
    stack.notary_ok(&["add", gun, "v2", "artifact", "-p"]);
    let timestamp_before = stack.role_keyids(gun, "timestamp");
    stack.notary_ok(&["key", "rotate", gun, "timestamp", "-r"]);
    stack.notary_ok(&["add", gun, "v3", "artifact", "-p"]);
    let listed = stack.notary_ok(&["list", gun]);
    for t in ["v1", "v2", "v3"] {
        assert!(listed.contains(t), "{listed}");
    }
    assert_ne!(stack.role_keyids(gun, "timestamp"), timestamp_before);
    server_roles_are_in_the_token(stack, gun).await;
    // The served timestamp and snapshot are signed by those keys.
    for role in ["timestamp", "snapshot"] {
        assert_eq!(
            stack.signed_by(gun, role),
            stack.role_keyids(gun, role),
            "{role}"
        );
    }

    // One audit line per server signature: each timestamp version was signed once, with the
    // GUN, role, key and notary-server's certificate subject.
    let lines: Vec<_> = stack
        .tufad()
        .server_signatures()
        .into_iter()
        .filter(|l| l["gun"] == gun)
        .collect();
    let timestamp: serde_json::Value =
        serde_json::from_slice(&stack.trust_file(gun, "timestamp").unwrap()).unwrap();
    let versions = timestamp["signed"]["version"].as_u64().unwrap();
    let stamped = lines.iter().filter(|l| l["role"] == "timestamp").count();
    assert_eq!(stamped as u64, versions, "{lines:#?}");
    assert!(lines.iter().any(|l| l["role"] == "snapshot"), "{lines:#?}");
    let ids = token_key_ids(stack).await;
    for l in &lines {
        assert_eq!(l["result"], "ok", "{l}");
        assert!(ids.contains(l["key_id"].as_str().unwrap()), "{l}");
        assert!(
            l["peer_cert"]
                .as_str()
                .unwrap()
                .contains("CN=notary-server"),
            "{l}"
        );
        assert!(l["sha256"].as_str().is_some_and(|h| h.len() == 64), "{l}");
    }

    // tufa and docker: a docker layout (server-managed snapshot), signed by tufa, read by
    // docker trust inspect and resolved by a DCT pull.
    let me = w.user();
    let repo = format!("{}/signer/app", stack.registry_addr());
    let v1 = stack.push_image("signer/app", "v1", ManifestKind::DockerSchema2);
    me.generate_key("alice");
    me.add_signer("alice", &repo);
    me.sign(&format!("{repo}:v1"));
    me.inspect_same(&[&repo]);
    assert_eq!(me.dct_pull(&format!("{repo}:v1")).unwrap(), v1.digest);
    server_roles_are_in_the_token(stack, &repo).await;

    // `tufa key list` on the server's agent shows the server keys as such.
    let listed = stack.tufad().agent.tufa_ok(w.cwd(), &["key", "list"]);
    for k in stack.tufad().server_keys_for(&repo, "snapshot").await {
        let line = listed
            .lines()
            .find(|l| l.contains(&k.key_id[..12]))
            .unwrap_or_else(|| panic!("{} missing from:\n{listed}", k.key_id));
        assert!(
            line.contains("server snapshot") && line.contains(&repo),
            "{line}"
        );
    }

    // `tufa notary status` names the holder of the server's roles: on the agent that keeps
    // their keys, "server (tufad, HSM)"; elsewhere it cannot tell.
    let status = w
        .user_of(&stack.tufad().agent)
        .notary_ok(&["status", &repo]);
    for role in ["snapshot", "timestamp"] {
        let line = status.lines().find(|l| l.starts_with(role)).unwrap();
        assert!(line.contains("server (tufad, HSM)"), "{status}");
    }
    let status = me.notary_ok(&["status", &repo]);
    let line = status.lines().find(|l| l.starts_with("timestamp")).unwrap();
    assert!(
        line.contains("server") && !line.contains("tufad"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_keeps_its_keys_across_a_tufad_restart() {
    let mut stack = Stack::start_with_tufad_signer();
    let gun = "example.com/signer/restart";
    std::fs::write(stack.dir().join("artifact"), b"one").unwrap();
    stack.notary_ok(&["init", gun, "-p"]);
    stack.notary_ok(&["add", gun, "v1", "artifact", "-p"]);
    let before = stack.role_keyids(gun, "timestamp");
    let keys_before = token_key_ids(&stack).await;

    stack.restart_tufad();
    stack.notary_ok(&["add", gun, "v2", "artifact", "-p"]);
    let listed = stack.notary_ok(&["list", gun]);
    assert!(listed.contains("v1") && listed.contains("v2"), "{listed}");
    assert_eq!(stack.role_keyids(gun, "timestamp"), before);
    assert_eq!(stack.signed_by(gun, "timestamp"), before);
    assert_eq!(token_key_ids(&stack).await, keys_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_certificate_of_the_ca_are_refused_at_the_handshake() {
    let stack = Stack::start_with_tufad_signer();
    let signer = stack.tufad();
    let certs = stack.dir().join("certs");
    tufa_testkit::pki::make_ca(&certs, "other-ca", "another CA");
    tufa_testkit::pki::make_leaf(&certs, "other-ca", "intruder");
    let read = |f: &str| std::fs::read(certs.join(f)).unwrap();
    let endpoint =
        tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{}", signer.port))
            .unwrap();
    let server_ca = tonic::transport::Certificate::from_pem(read("ca.crt"));
    let no_cert = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(server_ca.clone())
        .domain_name("127.0.0.1");
    let foreign = no_cert
        .clone()
        .identity(tonic::transport::Identity::from_pem(
            read("intruder.crt"),
            read("intruder.key"),
        ));
    for (who, tls) in [("no certificate", no_cert), ("another CA's", foreign)] {
        let refused = match endpoint.clone().tls_config(tls).unwrap().connect().await {
            Err(_) => true,
            Ok(ch) => {
                let mut km = notary::key_management_client::KeyManagementClient::new(ch);
                km.create_key(notary::CreateKeyRequest {
                    algorithm: "ecdsa".into(),
                    gun: "example.com/intruder".into(),
                    role: "timestamp".into(),
                })
                .await
                .is_err()
            }
        };
        assert!(refused, "a client with {who} got an answer");
    }
    let log = signer.agent.log();
    assert!(
        log.contains("refused a client at the TLS handshake"),
        "{log}"
    );
    // Nothing was made for them.
    assert!(signer
        .server_keys_for("example.com/intruder", "timestamp")
        .await
        .is_empty());

    // notary-server's own certificate is served, and both health names are SERVING.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        signer.channel_as("notary-server").await,
    );
    for name in [
        "grpc.health.v1.Health.KeyManagement",
        "grpc.health.v1.Health.Signer",
    ] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: name.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{name}"
        );
    }
    // And notary-server says it is healthy.
    let url = format!("{}/_notary_server/health", stack.notary_url());
    let agent = ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&[
                    ureq::tls::Certificate::from_pem(&read("ca.crt")).unwrap(),
                ]))
                .build(),
        )
        .build()
        .new_agent();
    let mut resp = agent.get(&url).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.body_mut().read_to_string().unwrap().trim(), "{}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_key_reuses_a_key_that_never_signed_and_refuses_other_roles() {
    let stack = Stack::start_with_tufad_signer();
    let gun = "example.com/signer/reuse";
    // Ten GETs before init (each a CreateKey in the signer) hand out one key.
    let first = stack.server_key(gun, "timestamp");
    for _ in 0..9 {
        assert_eq!(stack.server_key(gun, "timestamp"), first);
    }
    let made = stack.tufad().server_keys_for(gun, "timestamp").await;
    assert_eq!(made.len(), 1, "{made:#?}");
    assert!(!made[0].server.as_ref().unwrap().used);

    // Once it has signed, a CreateKey (a rotation) gets a new key.
    std::fs::write(stack.dir().join("artifact"), b"x").unwrap();
    stack.notary_ok(&["init", gun, "-p"]);
    stack.notary_ok(&["add", gun, "v1", "artifact", "-p"]);
    let used = stack.tufad().server_keys_for(gun, "timestamp").await;
    assert!(used[0].server.as_ref().unwrap().used, "{used:#?}");
    let (mut km, _) = stack.tufad().clients().await;
    let create = |algorithm: &str, role: &str| notary::CreateKeyRequest {
        algorithm: algorithm.into(),
        gun: gun.into(),
        role: role.into(),
    };
    let rotated = km
        .create_key(create("ecdsa", "timestamp"))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(rotated.key_info.unwrap().key_id.unwrap().id, used[0].key_id);

    // Other roles and algorithms are refused, saying why.
    for role in ["root", "targets", "targets/releases"] {
        let e = km.create_key(create("ecdsa", role)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("not a server role"), "{e:?}");
    }
    let e = km
        .create_key(create("ed25519", "timestamp"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("only ecdsa"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_key_on_the_same_token_cannot_be_reached_through_the_listener() {
    let stack = Stack::start_with_tufad_signer();
    let signer = stack.tufad();
    let cwd = tempfile::tempdir().unwrap();
    signer
        .agent
        .tufa_ok(cwd.path(), &["key", "generate", "alice"]);
    let mut api = signer.agent_api().await;
    let alice = api
        .get_key(v1::GetKeyRequest {
            key: "alice".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(alice.server.is_none());

    let (mut km, mut sign) = signer.clients().await;
    let id = || notary::KeyId {
        id: alice.key_id.clone(),
    };
    let e = km.get_key_info(id()).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = sign
        .sign(notary::SignatureRequest {
            key_id: Some(id()),
            content: b"{\"_type\":\"Timestamp\"}".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = km.delete_key(id()).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(signer.server_signatures().is_empty());

    // A server key's info and signature: raw r||s over SHA-256 of the content.
    let gun = "example.com/signer/visible";
    let made = km
        .create_key(notary::CreateKeyRequest {
            algorithm: "ecdsa".into(),
            gun: gun.into(),
            role: "snapshot".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let server_id = made.key_info.unwrap().key_id.unwrap();
    let info = km
        .get_key_info(server_id.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.role, "snapshot");
    assert_eq!(info.public_key, made.public_key);
    let content = b"{\"_type\":\"Snapshot\",\"version\":1}".to_vec();
    let sig = sign
        .sign(notary::SignatureRequest {
            key_id: Some(server_id.clone()),
            content: content.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let raw: [u8; 64] = sig.content.as_slice().try_into().expect("64 bytes");
    assert!(tufa_tests::verify_with_p256(
        &made.public_key,
        &content,
        &raw
    ));

    // The socket will not sign with a server key.
    let e = api
        .sign(v1::SignRequest {
            key: server_id.id.clone(),
            payload: Some(v1::sign_request::Payload::Data(content.clone())),
            context: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("[notary_signer]"), "{e:?}");

    // Neither API is served on the other's listener.
    let e = v1::agent_client::AgentClient::new(signer.channel_as("notary-server").await)
        .list_keys(v1::ListKeysRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
    let unix = signer.unix_channel().await;
    let e = notary::key_management_client::KeyManagementClient::new(unix)
        .get_key_info(server_id.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");

    // DeleteKey: a key that has signed stays; one that never signed goes.
    let e = km.delete_key(server_id.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let spare = km
        .create_key(notary::CreateKeyRequest {
            algorithm: "ecdsa".into(),
            gun: gun.into(),
            role: "timestamp".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .key_info
        .unwrap()
        .key_id
        .unwrap();
    km.delete_key(spare.clone()).await.unwrap();
    assert_eq!(
        km.get_key_info(spare).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(signer.server_keys_for(gun, "timestamp").await.len(), 0);
    assert_eq!(signer.server_keys_for(gun, "snapshot").await.len(), 1);
}

#[test]
fn a_device_that_would_wait_for_a_person_is_refused_at_start() {
    let hsm = SoftHsm::new(SERVER_TOKEN, PIN);
    let dir = tempfile::tempdir().unwrap();
    let table = |device: &str| {
        format!(
            "[notary_signer]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{d}/c.crt\"\ntls_key = \"{d}/c.key\"\nclient_ca = \"{d}/ca.crt\"\ndevice = \"{device}\"\n",
            d = dir.path().display()
        )
    };
    let mut agent = tufa_tests::Agent::start(&hsm);
    agent.stop();
    let start = |config: String, pin_file: bool| {
        let opts = AgentOptions {
            pin_file,
            config: Some(config),
            args: Vec::new(),
        };
        let out = agent.command(&hsm, &opts).output().unwrap();
        assert!(!out.status.success(), "tufad must refuse to start: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = start(table(SERVER_TOKEN), false);
    assert!(
        e.contains("its PIN is not configured")
            && e.contains("no deadline")
            && e.contains("pin_file"),
        "{e}"
    );
    let e = start(table("elsewhere"), true);
    assert!(
        e.contains("'elsewhere'") && e.contains("not one of the configured devices"),
        "{e}"
    );
    // With the device right, the missing TLS files are named.
    let e = start(table(SERVER_TOKEN), true);
    assert!(e.contains("tls_cert") && e.contains("c.crt"), "{e}");
}
