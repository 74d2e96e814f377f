//! The gRPC client for tufad, over its Unix socket: the client's edge to the agent.
//!
//! Keys cross the edge once, as [`AgentKey`] (typed ID and public key); key references (name,
//! ID, ID prefix) are resolved by the agent alone ([`AgentClient::key`]). Every signature the
//! agent returns is checked against the key's public key before it is handed on: a device that
//! signs with the wrong key, or garbles a signature, is caught here. What the user must do
//! meanwhile (touch a YubiKey) goes to the caller's message callback, never to a terminal.
//!
//! Layout:
//! - `client`: [`AgentClient`], [`LazyAgent`], [`KeySigner`].
//! - `key`: [`AgentKey`], [`SignContext`], [`touch_prompt`].
//! - `error`: [`AgentClientError`].

mod client;
mod error;
mod key;

pub use client::{
    default_socket, AgentClient, KeySigner, LazyAgent, Message, CALL_TIMEOUT, TOUCH_TIMEOUT,
};
pub use error::AgentClientError;
pub use key::{touch_prompt, AgentKey, SignContext};
