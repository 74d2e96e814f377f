#!/usr/bin/env bash
# Checks formatting, lints and docs, builds everything and runs every test: unit tests, and the
# end-to-end tests in tests/, which start the real tufad from target/debug against SoftHSM tokens
# they create in temp directories.
#
# Usage: scripts/test.sh [ARGS...]   (ARGS go to `cargo test`, e.g. a test name filter)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

run() {
  printf '+ %s\n' "$*" >&2
  "$@"
}

run scripts/install-deps.sh
# Formatting, lints and doc links first: they fail in seconds, the tests in minutes.
run cargo fmt --all --check
run cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" run cargo doc --workspace --no-deps --quiet
# The simulated YubiKey tests need pcscd with four virtual readers (idempotent).
run scripts/start-pcscd.sh
# The end-to-end tests run the binaries, so they are built before any test starts.
run cargo build --workspace --bins --all-targets
run cargo test --workspace "$@"
