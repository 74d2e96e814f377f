#!/usr/bin/env bash
# The demo: Docker Content Trust with every key in a SoftHSM token, end to end on loopback.
#
# Installs what is missing, builds the binaries, then runs the demo program
# (tests/src/bin/demo.rs), which starts the agent and the servers, runs the real tufa and docker
# commands and stops everything at the end. Everything lives in temporary directories that are
# removed on exit, so every run starts afresh. Exits non-zero, naming the step, on any failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

step() { printf '\n==> %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "Installing the system packages tufa needs (only the missing ones)"
run scripts/install-deps.sh
# Simulated YubiKeys need pcscd with four virtual readers (idempotent).
run scripts/start-pcscd.sh

step "Building tufad (the agent), tufa (the client) and the demo"
run cargo build --workspace --bins
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir="$root/$target_dir"
demo="$target_dir/debug/demo"
[[ -x $demo ]] || { printf 'error: the build did not produce %s\n' "$demo" >&2; exit 1; }

# exec: Ctrl-C goes straight to the demo, which stops what it started.
exec "$demo"
