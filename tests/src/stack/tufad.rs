//! tufad as the stack's signer: a SoftHSM token for the server's keys and a `tufad` whose
//! `[notary_signer]` listener notary-server's `trust_service` points at (no notary-signer runs).

use std::path::PathBuf;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tufa_proto::notary::key_management_client::KeyManagementClient;
use tufa_proto::notary::signer_client::SignerClient;

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
        let agent = Agent::try_start_with(&hsm, options.clone())?;
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
        self.agent.restart(&self.hsm, &self.options);
    }

    /// An mTLS channel to the listener with the client certificate `name` of the stack's CA
    /// (`notary-server` is the one notary-server uses).
    pub async fn channel_as(&self, name: &str) -> Channel {
        let read = |f: String| std::fs::read(self.certs.join(f)).expect("read a certificate");
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read("ca.crt".into())))
            .identity(Identity::from_pem(
                read(format!("{name}.crt")),
                read(format!("{name}.key")),
            ))
            .domain_name("127.0.0.1");
        Endpoint::from_shared(format!("https://127.0.0.1:{}", self.port))
            .expect("endpoint")
            .tls_config(tls)
            .expect("tls config")
            .connect()
            .await
            .expect("connect to tufad's notary-signer listener")
    }

    /// `KeyManagement` and `Signer` clients, as notary-server.
    pub async fn clients(&self) -> (KeyManagementClient<Channel>, SignerClient<Channel>) {
        let ch = self.channel_as("notary-server").await;
        (KeyManagementClient::new(ch.clone()), SignerClient::new(ch))
    }
}
