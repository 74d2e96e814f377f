#!/usr/bin/env bash
# A first run of tufa, end to end, on a SoftHSM token: start the agent, make a key, sign a file,
# check the signature with openssl, read the audit log, stop the agent.
#
# Everything goes to ${TUFA_DEMO_DIR:-a fresh temporary directory}; a temporary one is removed at
# the end, a TUFA_DEMO_DIR is kept and reused on the next run. Exits non-zero on any failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
module=${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
token='tufa-demo'
key='demo-signer'

step() { printf '\n==> %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

agent_pid=''
log_start=''
made_dir=''
cleanup() {
  local rc=$?
  if [[ -n $agent_pid ]] && kill -0 "$agent_pid" 2>/dev/null; then
    printf 'Stopping the agent (pid %s)\n' "$agent_pid" >&2
    kill -TERM "$agent_pid" 2>/dev/null || true
    wait "$agent_pid" 2>/dev/null || true
  fi
  if ((rc != 0)) && [[ -n $log_start ]]; then
    printf '\nThe agent log of this run (%s/tufad.log) ends with:\n' "$demo" >&2
    tail -n "+$log_start" "$demo/tufad.log" 2>/dev/null | tail -n 20 >&2 || true
  fi
  if [[ -n $made_dir ]]; then
    rm -rf "$made_dir"
  fi
  if ((rc != 0)); then
    printf '\nThe demo FAILED (exit %s).\n' "$rc" >&2
  fi
}
trap cleanup EXIT

step "Installing the system packages tufa needs (only the missing ones)"
run scripts/install-deps.sh

step "Building tufad (the agent) and tufa (the client)"
run cargo build --workspace --bins
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir="$root/$target_dir"
bin="$target_dir/debug"
[[ -x $bin/tufad && -x $bin/tufa ]] || die "the build did not produce $bin/tufad and $bin/tufa"
# The commands below are the ones just built.
export PATH="$bin:$PATH"
echo "Using $bin/tufad and $bin/tufa"

step "Preparing a demo directory"
if [[ -n ${TUFA_DEMO_DIR:-} ]]; then
  mkdir -p "$TUFA_DEMO_DIR"
  demo=$(cd "$TUFA_DEMO_DIR" && pwd)
  echo "Using $demo (kept after the demo; run again to reuse it)"
else
  demo=$(mktemp -d "${TMPDIR:-/tmp}/tufa-demo.XXXXXX")
  made_dir=$demo
  echo "Using $demo (removed at the end; set TUFA_DEMO_DIR=DIR to keep the files)"
fi

step "Creating a SoftHSM token '$token' (a PKCS#11 token kept in files) with a random PIN"
printf '$ softhsm/init-token.sh --dir %s --label %s > %s\n' "$demo/softhsm" "$token" "$demo/softhsm.env"
softhsm/init-token.sh --dir "$demo/softhsm" --label "$token" >"$demo/softhsm.env"
# Every program that uses the token (the agent, here) must see the same SoftHSM configuration.
# shellcheck source=/dev/null
source "$demo/softhsm.env"
echo "SOFTHSM2_CONF=$SOFTHSM2_CONF; the PIN is in $demo/softhsm/pin (never printed)"

step "Starting the agent, tufad, on a private socket, with an audit log"
sock="$demo/run/agent.sock"
audit="$demo/audit.log"
# The client finds the agent through this variable.
export TUFA_AGENT_SOCK=$sock
# The agent creates the log with mode 0600; a rerun appends, so remember where this run starts.
audit_start=1
[[ ! -f $audit ]] || audit_start=$(($(wc -l <"$audit") + 1))
# The wait below watches for the socket to appear, so nothing may be there before the start.
if [[ -e $sock ]]; then
  if tufa agent status >/dev/null 2>&1; then
    die "an agent is already running on $sock (from an earlier demo?): stop it first"
  fi
  echo "Removing a stale socket left by an agent that did not stop cleanly: $sock"
  rm -f "$sock"
fi
log_start=1
[[ ! -f $demo/tufad.log ]] || log_start=$(($(wc -l <"$demo/tufad.log") + 1))
printf '$ tufad --socket %s --pkcs11-module %s --pkcs11-token %s --pkcs11-pin-file %s --audit-log %s &\n' \
  "$sock" "$module" "$token" "$demo/softhsm/pin" "$audit"
# NO_COLOR: the log goes to a file, which colour codes would clutter.
NO_COLOR=1 tufad --socket "$sock" --pkcs11-module "$module" --pkcs11-token "$token" \
  --pkcs11-pin-file "$demo/softhsm/pin" --audit-log "$audit" 2>>"$demo/tufad.log" &
agent_pid=$!
for ((i = 0; i < 100; i++)); do
  [[ -S $sock ]] && break
  kill -0 "$agent_pid" 2>/dev/null || die "the agent exited before it was ready; see $demo/tufad.log"
  sleep 0.1
done
[[ -S $sock ]] || die "the agent did not create $sock within 10 seconds; see $demo/tufad.log"
kill -0 "$agent_pid" 2>/dev/null || die "the agent exited after creating its socket; see $demo/tufad.log"
echo "The agent (pid $agent_pid) listens on $sock; its log goes to $demo/tufad.log"
echo "Socket directory and socket modes: $(stat -c '%a' "$demo/run") and $(stat -c '%a' "$sock")"

step "Asking the agent for its status"
run tufa agent status

if tufa key list --json | jq -e --arg k "$key" 'any(.[]; .name == $k)' >/dev/null; then
  step "Deleting the key '$key' left by an earlier run"
  run tufa key delete "$key"
fi
rm -f "$demo/$key.pub"

step "Generating the signing key '$key' inside the token (the private key never leaves it)"
run tufa key generate "$key" --dir "$demo"
echo "The public key, written like 'docker trust key generate' does ($demo/$key.pub):"
cat "$demo/$key.pub"

step "Listing the keys the agent holds"
run tufa key list

step "Signing a small file (SHA-256, ECDSA P-256, DER signature for openssl)"
printf 'Hello from tufa, %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$demo/hello.txt"
run tufa key sign "$key" --in "$demo/hello.txt" --out "$demo/hello.sig" --format der

step "Exporting the public key as plain PEM"
printf '$ tufa key public %s > %s\n' "$key" "$demo/$key.pem"
tufa key public "$key" >"$demo/$key.pem"
cat "$demo/$key.pem"

step "Checking the signature with openssl, which knows nothing about tufa"
run openssl dgst -sha256 -verify "$demo/$key.pem" -signature "$demo/hello.sig" "$demo/hello.txt"

step "Reading the audit log: one JSON line per key operation and signature"
tail -n "+$audit_start" "$audit" | jq -c .
tail -n "+$audit_start" "$audit" | jq -e 'select(.op == "sign" and .result == "ok")' >/dev/null ||
  die "the audit log has no successful sign line"
if grep -qFf "$demo/softhsm/pin" "$audit" "$demo/tufad.log"; then
  die "the PIN appears in the audit log or the agent log"
fi
echo "(The PIN appears in neither the audit log nor the agent log.)"

step "Stopping the agent with SIGTERM"
printf '$ kill -TERM %s\n' "$agent_pid"
kill -TERM "$agent_pid"
agent_rc=0
wait "$agent_pid" || agent_rc=$?
agent_pid=''
((agent_rc == 0)) || die "the agent exited with status $agent_rc; see $demo/tufad.log"
[[ ! -e $sock ]] || die "the agent stopped but left its socket $sock behind"
echo "The agent stopped cleanly and removed its socket."

step "Done: a key in a token, a signature openssl accepts, and an audit trail"
if [[ -z $made_dir ]]; then
  echo "Files are in $demo: $key.pub, $key.pem, hello.txt, hello.sig, audit.log, tufad.log"
fi
