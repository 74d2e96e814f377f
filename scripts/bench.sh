#!/usr/bin/env bash
# Builds the release binaries and runs the benchmarks: the agent's (SoftHSM, simulated YubiKeys),
# `tufa notary` against the notary CLI, notary-server backed by tufad against notary-signer, and
# the docker trust verbs against docker and notary. They print figures and whether the targets
# are met; they fail only when a command does.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
echo "+ cargo build --release --workspace --bins"
cargo build --release --workspace --bins
echo "+ cargo bench -p tufa-tests --bench agent"
cargo bench -p tufa-tests --bench agent
echo "+ cargo bench -p tufa-tests --bench yubikey"
cargo bench -p tufa-tests --bench yubikey
echo "+ cargo bench -p tufa-tests --bench notary"
cargo bench -p tufa-tests --bench notary
echo "+ cargo bench -p tufa-tests --bench notary_signer"
cargo bench -p tufa-tests --bench notary_signer
echo "+ cargo bench -p tufa-tests --bench trust"
cargo bench -p tufa-tests --bench trust
