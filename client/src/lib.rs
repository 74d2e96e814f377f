//! tufa: the `docker trust` and `notary` verbs with every private key in the tufad agent.
//!
//! Layout:
//! - [`agent`]: the edge to tufad: the gRPC client, its keys typed once ([`agent::AgentKey`]),
//!   each as a [`tuf::DigestSigner`].
//! - [`tuf`]: TUF data model, canonical JSON and signature verification, as Notary writes them;
//!   it knows neither the agent nor its protocol.
//! - [`notary`]: the notary-server client: metadata reads, publish, server keys, its error codes.
//! - [`reference`](mod@reference): image references as docker parses them; GUNs, registries, notary servers.
//! - [`registry`]: the Distribution API client: what a tag or digest points to, on the scheme
//!   that answers.
//! - [`http`]: the one authenticated HTTP client both use: credentials, the 401 challenge and
//!   token service, TLS, transport errors ([`http::HttpError`]), error JSON.
//! - [`docker_config`]: credentials and TLS files from `$DOCKER_CONFIG`, as docker keeps them.
//! - [`repo`]: writing a repository: the typed staged changes and their changelist file, signing
//!   through the agent, and the one publish-with-retry loop.
//! - [`trust`]: the `docker trust` verbs.
//! - [`ceremony`]: root requests signed offline, threshold roots, the root-rotation plan.
//! - [`incident`]: removing a compromised delegation key and what it signed.
//! - [`status`]: each role's version, expiry and key holder; what is due for re-signing.
//! - [`cli`]: the command line: one context ([`cli::Ctx`]) and one `run` per verb, a file per
//!   command group.
#![forbid(unsafe_code)]

pub mod agent;
pub mod ceremony;
pub mod cli;
pub mod docker_config;
pub mod http;
pub mod incident;
pub mod notary;
pub mod reference;
pub mod registry;
pub mod repo;
pub mod status;
pub mod trust;
pub mod tuf;
