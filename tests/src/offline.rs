//! The offline machine of a root ceremony: one root-key device per card, each with its own agent.
//!
//! A [`Card`] stands for one YubiKey of the offline machine. Today each is a SoftHSM token with
//! its own `tufad`; a simulated YubiKey replaces the token in [`Card::new`] alone, and tests
//! keep talking to the card only through its agent (`tufa --agent SOCKET root ...`).

use std::path::Path;

use crate::{Agent, SoftHsm};

/// One root-key device and the agent that serves it.
pub struct Card {
    /// The card's name; also the name of its root key.
    pub name: String,
    /// The agent holding the card.
    pub agent: Agent,
    _device: SoftHsm,
}

impl Card {
    /// A fresh card called `name` holding one new key, also called `name`.
    pub fn new(name: &str) -> Self {
        let device = SoftHsm::new(name, "card-pin-4711");
        let agent = Agent::start(&device);
        let dir = tempfile::tempdir().expect("tempdir");
        agent.tufa_ok(dir.path(), &["key", "generate", name]);
        Self {
            name: name.to_owned(),
            agent,
            _device: device,
        }
    }

    /// `tufa root cert GUN --key NAME --out DIR/NAME.crt` on the card: the certificate the
    /// online machine names with `--key`. Returns its path.
    pub fn certificate(&self, gun: &str, dir: &Path) -> String {
        let out = dir.join(format!("{}.crt", self.name));
        self.agent.tufa_ok(
            dir,
            &[
                "root",
                "cert",
                gun,
                "--key",
                &self.name,
                "--out",
                &out.display().to_string(),
            ],
        );
        out.display().to_string()
    }

    /// `tufa root sign REQUEST --key NAME` on the card.
    pub fn sign(&self, request: &Path) -> String {
        self.agent.tufa_ok(
            request.parent().expect("request dir"),
            &[
                "root",
                "sign",
                &request.display().to_string(),
                "--key",
                &self.name,
            ],
        )
    }
}
