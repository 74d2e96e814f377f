//! tufa: the `docker trust` and `notary` verbs with every private key in the tufad agent.
//!
//! Layout:
//! - [`agent`]: the gRPC client for tufad.
//! - [`tuf`]: TUF data model, canonical JSON and signature verification, as Notary writes them.
//! - [`notary`]: the notary-server client: metadata reads, publish, server keys, its error codes.
//! - [`reference`]: image references as docker parses them; GUNs, registries, notary servers.
//! - [`registry`]: the Distribution API client: what a tag or digest points to, on the scheme
//!   that answers.
//! - [`http`]: the one authenticated HTTP client both use: credentials, the 401 challenge and
//!   token service, TLS, transport errors ([`http::HttpError`]), error JSON.
//! - [`docker_config`]: credentials and TLS files from `$DOCKER_CONFIG`, as docker keeps them.
//! - [`repo`]: writing a repository: staged changes, signing through the agent, publishing.
//! - [`trust`]: the `docker trust` verbs.
//! - [`ceremony`]: root requests signed offline, threshold roots, key rotation.
//! - [`incident`]: removing a compromised delegation key and what it signed.
//! - [`status`]: each role's version, expiry and key holder; what is due for re-signing.
//! - [`cli`]: the command line.
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
