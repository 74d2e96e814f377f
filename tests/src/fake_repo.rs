//! Repositories for a fake notary server, signed here: what a server holding every key could
//! serve, honest or not.
//!
//! They are [`tufa_testkit::Fixture`]s whose root key lives in the agent: its certificate is made
//! by the same code as `tufa notary init` ([`tufa_client::tuf::root_certificate`]), so the root
//! is one tufa accepts. Every other role is signed with a software key a test can misuse at will
//! (sign stale versions, wrong types, too few signatures).

use time::OffsetDateTime;
use tufa_client::agent::{AgentClient, AgentKey, SignContext};
use tufa_client::tuf::{self, Gun, PublicKey, RoleName, Root, Signature, SignatureMethod, Signed};
use tufa_testkit::{Fixture, SoftKey};

/// A root key in the agent with Notary's self-signed certificate for one GUN.
pub struct AgentRootKey {
    key: AgentKey,
    public: PublicKey,
    gun: Gun,
}

impl AgentRootKey {
    /// Generates agent key `name` and its root certificate for `gun`.
    pub async fn generate(agent: &AgentClient, name: &str, gun: &Gun) -> Self {
        let key = agent
            .generate_named(name)
            .await
            .expect("generate a root key in the agent");
        let signer = agent.signer(&key, SignContext::new(gun, &RoleName::ROOT));
        let der = tuf::root_certificate(&signer, gun, OffsetDateTime::now_utc())
            .await
            .expect("root certificate");
        Self {
            key,
            public: tuf::x509_public_key(&der).expect("the agent's certificate is a TUF key"),
            gun: gun.clone(),
        }
    }

    /// The `ecdsa-x509` TUF key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// `root` signed by this key alone.
    pub async fn sign_root(&self, agent: &AgentClient, root: Root) -> Vec<u8> {
        let mut file = Signed::new(root);
        let msg = file.signed_bytes().expect("canonical root");
        let context = SignContext::new(&self.gun, &RoleName::ROOT);
        let sig = agent
            .sign(&self.key, &msg, &context)
            .await
            .expect("the agent signs the root");
        file.signatures.push(Signature {
            key_id: self.public.id(),
            method: SignatureMethod::Ecdsa,
            sig: sig.as_bytes().to_vec(),
        });
        file.to_bytes().expect("root file bytes")
    }
}

/// A repository as docker makes one for `gun`, with its root v1 signed in the agent (key
/// `name`), and a twist: targets needs both of its two keys (threshold 2), so a file with one
/// signature is one short.
pub async fn agent_rooted(agent: &AgentClient, name: &str, gun: &str) -> Fixture {
    agent_rooted_keyed(agent, name, gun).await.0
}

/// As [`agent_rooted`], with the root key, to sign other roots with (a fork, a rotation).
pub async fn agent_rooted_keyed(
    agent: &AgentClient,
    name: &str,
    gun: &str,
) -> (Fixture, AgentRootKey) {
    let mut fixture = Fixture::for_gun(gun);
    fixture.targets_keys.push(SoftKey::ecdsa(6));
    let root_key = AgentRootKey::generate(agent, name, &fixture.gun).await;
    fixture.root = fixture.root_body(1, &[root_key.public()]);
    fixture.signed_root = Some(root_key.sign_root(agent, fixture.root.clone()).await);
    (fixture, root_key)
}
