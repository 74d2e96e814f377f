//! tufad as the stack's signer: a SoftHSM token for the server's keys and a `tufad` whose
//! `[notary_signer]` listener notary-server's `trust_service` points at (no notary-signer runs).

use std::path::PathBuf;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tufa_proto::notary::key_management_client::KeyManagementClient;
use tufa_proto::notary::signer_client::SignerClient;
use tufa_proto::v1;
use tufa_proto::v1::agent_client::AgentClient as AgentApiClient;

use super::services::get;
use super::Stack;

use crate::{Agent, AgentOptions, SoftHsm, PIN};

/// The label of the token that holds the server's keys.
pub const SERVER_TOKEN: &str = "notary-hsm";

/// The tufad that serves notary-server, and its token.
pub struct ServerSigner {
    /// The agent (dropped before the token).
    pub agent: Agent,
    /// The token holding the server keys.
    pub hsm: SoftHsm,
    options: AgentOptions,
    /// The listener's port on 127.0.0.1.
    pub port: u16,
    certs: PathBuf,
}

impl ServerSigner {
    /// A fresh token and a tufad serving it on `127.0.0.1:port` with the stack's
    /// `notary-signer` certificate, requiring client certificates from the stack's CA; `Err`
    /// with the agent's log if it did not start (the port was taken, say).
    pub fn try_start(certs: PathBuf, port: u16) -> Result<Self, String> {
        let hsm = SoftHsm::new(SERVER_TOKEN, PIN);
        let config = format!(
            "[notary_signer]\nlisten = \"127.0.0.1:{port}\"\ntls_cert = \"{c}/notary-signer.crt\"\n\
             tls_key = \"{c}/notary-signer.key\"\nclient_ca = \"{c}/ca.crt\"\ndevice = \"{SERVER_TOKEN}\"\n",
            c = certs.display()
        );
        let options = AgentOptions {
            pin_file: true,
            config: Some(config),
            args: Vec::new(),
        };
        let mut agent = Agent::try_start_with(&hsm, options.clone())?;
        wait_serving(&mut agent, 0)?;
        Ok(Self {
            agent,
            hsm,
            options,
            port,
            certs,
        })
    }

    /// Stops tufad and starts it again on the same token, port and audit log.
    pub fn restart(&mut self) {
        let before = self.agent.log().matches(SERVING).count();
        self.agent.restart(&self.hsm, &self.options);
        wait_serving(&mut self.agent, before).unwrap_or_else(|e| panic!("{e}"));
    }

    /// An mTLS channel to the listener with the client certificate `name` of the stack's CA
    /// (`notary-server` is the one notary-server uses).
    pub async fn channel_as(&self, name: &str) -> Channel {
        mtls_channel(&self.certs, self.port, name).await
    }

    /// `KeyManagement` and `Signer` clients, as notary-server.
    pub async fn clients(&self) -> (KeyManagementClient<Channel>, SignerClient<Channel>) {
        let ch = self.channel_as("notary-server").await;
        (KeyManagementClient::new(ch.clone()), SignerClient::new(ch))
    }
}

/// An mTLS channel to a signer on `127.0.0.1:port` whose certificate the CA `certs/ca.crt`
/// issued, with the client certificate `certs/<client>.{crt,key}`.
pub async fn mtls_channel(certs: &std::path::Path, port: u16, client: &str) -> Channel {
    let read = |f: String| std::fs::read(certs.join(f)).expect("read a certificate");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.crt".into())))
        .identity(Identity::from_pem(
            read(format!("{client}.crt")),
            read(format!("{client}.key")),
        ))
        .domain_name("127.0.0.1");
    Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls config")
        .connect()
        .await
        .expect("connect to the signer")
}

/// The line tufad logs once its notary-signer listener serves.
const SERVING: &str = "notary-signer listener: serving notary-server";

/// Waits until the agent's notary-signer listener serves (the socket opens first) and has
/// logged it more than `before` times (a restarted agent appends to the same log), or says
/// why it did not: the agent exited (its port was taken, say) or took too long.
fn wait_serving(agent: &mut Agent, before: usize) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let serving = SERVING;
    loop {
        if let Some(status) = agent.exited() {
            return Err(format!(
                "tufad exited with {status} at start:\n{}",
                agent.log()
            ));
        }
        if agent.log().matches(serving).count() > before {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "tufad's listener did not start in 20 s:\n{}",
                agent.log()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

impl ServerSigner {
    /// The agent's own API over its Unix socket (what `tufa` speaks), as a raw gRPC client.
    pub async fn agent_api(&self) -> AgentApiClient<Channel> {
        AgentApiClient::new(self.unix_channel().await)
    }

    /// A channel on the agent's Unix socket.
    pub async fn unix_channel(&self) -> Channel {
        let path = self.agent.socket.clone();
        Endpoint::try_from("http://[::]:50051")
            .expect("endpoint")
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .expect("connect to tufad's socket")
    }

    /// The keys on the server's token that are tagged as notary-server keys, as `tufa key
    /// list` receives them.
    pub async fn server_keys(&self) -> Vec<v1::Key> {
        let mut api = self.agent_api().await;
        let keys = api
            .list_keys(v1::ListKeysRequest {})
            .await
            .expect("ListKeys")
            .into_inner()
            .keys;
        keys.into_iter().filter(|k| k.server.is_some()).collect()
    }

    /// The server keys for `gun` and `role`.
    pub async fn server_keys_for(&self, gun: &str, role: &str) -> Vec<v1::Key> {
        self.server_keys()
            .await
            .into_iter()
            .filter(|k| {
                k.server
                    .as_ref()
                    .is_some_and(|s| s.gun == gun && s.role == role)
            })
            .collect()
    }

    /// The audit lines of signatures made for notary-server (they carry `peer_cert`).
    pub fn server_signatures(&self) -> Vec<serde_json::Value> {
        self.agent
            .audit_lines()
            .into_iter()
            .filter(|l| l["op"] == "sign" && l.get("peer_cert").is_some())
            .collect()
    }
}

impl Stack {
    /// `GET /v2/GUN/_trust/tuf/ROLE.key`: the server's key for a role (made in its signer
    /// when the GUN has no root yet), as notary-server returns it.
    pub fn server_key(&self, gun: &str, role: &str) -> serde_json::Value {
        let url = format!("{}/v2/{gun}/_trust/tuf/{role}.key", self.notary_url());
        let (status, body) = get(self.notary_agent().get(&url), &url);
        assert_eq!(
            status,
            200,
            "GET {url}: {}\nnotary-server log:\n{}",
            String::from_utf8_lossy(&body),
            self.server_log()
        );
        serde_json::from_slice(&body).expect("a key in JSON")
    }
}
