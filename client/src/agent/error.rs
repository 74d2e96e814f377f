//! [`AgentClientError`]: what went wrong talking to the agent, in words the user can act on.

use std::path::PathBuf;

use tonic::Code;

use crate::tuf::KeyId;

/// Errors talking to the agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentClientError {
    /// No socket is configured.
    #[error("no agent socket: pass --agent SOCKET or set TUFA_AGENT_SOCK (or XDG_RUNTIME_DIR)")]
    NoSocket,
    /// Nothing answers on the socket.
    #[error("cannot reach the tufa agent at {socket} ({detail}): start it with `tufad --config FILE` or point --agent / TUFA_AGENT_SOCK at its socket")]
    NoAgent {
        /// The socket.
        socket: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The agent refused or failed the call; its message says why.
    #[error("{message}")]
    Agent {
        /// gRPC code.
        code: Code,
        /// The agent's message.
        message: String,
    },
    /// A signature that does not verify: nothing is published with it.
    #[error("the agent returned a bad signature for key {key_id}: {detail}")]
    BadSignature {
        /// The key.
        key_id: KeyId,
        /// What is wrong.
        detail: String,
    },
    /// A key whose ID is not a TUF key ID: an agent this client does not understand.
    #[error("the agent sent key '{name}' with an unusable ID ({detail}): run tufad and tufa of the same version")]
    BadKey {
        /// The key's name.
        name: String,
        /// What is wrong with its ID.
        detail: String,
    },
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AgentClientError {
    /// The gRPC code, for callers that branch on it.
    pub fn code(&self) -> Option<Code> {
        match self {
            Self::Agent { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<tonic::Status> for AgentClientError {
    fn from(s: tonic::Status) -> Self {
        let message = match s.code() {
            Code::DeadlineExceeded => format!(
                "the agent did not answer in time ({}): check `tufa agent status`",
                s.message()
            ),
            Code::Unavailable if s.message().contains("transport") || s.message().is_empty() => {
                format!("the agent went away: {}", s.message())
            }
            _ => s.message().to_owned(),
        };
        Self::Agent {
            code: s.code(),
            message,
        }
    }
}
