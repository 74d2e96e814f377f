#!/usr/bin/env bash
# Builds the release binaries and runs the agent benchmark (figures only; it checks nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
echo "+ cargo build --release --workspace --bins"
cargo build --release --workspace --bins
echo "+ cargo bench -p tufa-tests --bench agent"
cargo bench -p tufa-tests --bench agent
