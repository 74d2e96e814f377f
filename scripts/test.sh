#!/usr/bin/env bash
# Builds everything and runs every test: unit tests, and the end-to-end tests in tests/, which
# start the real tufad from target/debug against SoftHSM tokens they create in temp directories.
#
# Usage: scripts/test.sh [ARGS...]   (ARGS go to `cargo test`, e.g. a test name filter)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

run() {
  printf '+ %s\n' "$*" >&2
  "$@"
}

run scripts/install-deps.sh
# The simulated YubiKey tests need pcscd with four virtual readers (idempotent).
run scripts/start-pcscd.sh
# The end-to-end tests run the binaries, so they are built before any test starts.
run cargo build --workspace --bins --all-targets
run cargo test --workspace "$@"
