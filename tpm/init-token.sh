#!/usr/bin/env bash
# Starts a software TPM 2.0 (swtpm) on free loopback ports and initializes a tpm2-pkcs11 token
# on it with plain PKCS#11 calls (C_InitToken, C_InitPIN through pkcs11-tool; no tpm2_ptool).
#
# Usage: tpm/init-token.sh --dir DIR --label LABEL [--pin-file FILE] [--so-pin-file FILE]
#        tpm/init-token.sh --dir DIR --stop
#
# DIR holds the TPM's state (DIR/tpm), the tpm2-pkcs11 store (DIR/store), swtpm's pid, port and
# log, and, without --pin-file/--so-pin-file, random PINs in DIR/pin and DIR/so-pin (mode 0600).
# A swtpm already running for DIR is reused; a stopped one starts again on its old ports if they
# are free, else on a free pair (server P, control P+1, both on 127.0.0.1). The token is initialized only if no token
# labelled LABEL exists yet, so running this again is harmless. Stdout is the environment the
# agent (and any PKCS#11 tool) needs, for the caller to eval:
#   eval "$(tpm/init-token.sh --dir /tmp/tpm --label ci)"  # sets TPM2_PKCS11_TCTI, _STORE
# Everything else goes to stderr. PINs are never printed, and reach pkcs11-tool through its
# environment, not its command line.
#
# swtpm serves one connection at a time: while tufad runs (it keeps the module's connection),
# another program using the same TPM waits until tufad exits. On a real machine use the kernel's
# resource manager instead (TPM2_PKCS11_TCTI=device:/dev/tpmrm0).
set -euo pipefail
umask 077

module=${TPM2_PKCS11_MODULE:-/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so}

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
usage() {
  say "usage: $0 --dir DIR --label LABEL [--pin-file FILE] [--so-pin-file FILE]"
  say "       $0 --dir DIR --stop"
  exit 2
}

dir='' label='' pin_file='' so_pin_file='' stop=''
while (($#)); do
  case $1 in
    --dir) (($# >= 2)) || usage; dir=$2; shift 2 ;;
    --label) (($# >= 2)) || usage; label=$2; shift 2 ;;
    --pin-file) (($# >= 2)) || usage; pin_file=$2; shift 2 ;;
    --so-pin-file) (($# >= 2)) || usage; so_pin_file=$2; shift 2 ;;
    --stop) stop=1; shift ;;
    -h | --help) usage ;;
    *) say "unknown argument: $1"; usage ;;
  esac
done
[[ -n $dir ]] || usage

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[[ $dir != *$'\n'* ]] || die "the directory name must not contain a newline"
pidfile=$dir/swtpm.pid
portfile=$dir/swtpm.port

running_pid() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null || true)
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

if [[ -n $stop ]]; then
  if pid=$(running_pid); then
    kill "$pid"
    say "Stopped swtpm (pid $pid)"
  fi
  rm -f "$pidfile"
  exit 0
fi

[[ -n $label ]] || usage
# PKCS#11 allows 32 characters, but tpm2-pkcs11 1.9 keeps 31 (it stores the label with a NUL),
# so a 32-character label would be initialized under another name.
((${#label} <= 31)) || die "token label '$label' is longer than the 31 characters tpm2-pkcs11 keeps"
command -v swtpm >/dev/null || die "swtpm not found: run scripts/install-deps.sh (package swtpm)"
[[ -r $module ]] || die "tpm2-pkcs11 module $module not found: run scripts/install-deps.sh (package libtpm2-pkcs11-1)"
[[ -n $(ls /usr/lib/*/libtss2-tcti-swtpm.so* 2>/dev/null) ]] ||
  die "the TSS's swtpm transport is not installed: run scripts/install-deps.sh (package libtss2-tcti-swtpm0)"
command -v pkcs11-tool >/dev/null || die "pkcs11-tool not found: run scripts/install-deps.sh (package opensc)"

# Two runs on the same directory at once must not start two TPMs or initialize twice.
exec 9>"$dir/.init-token.lock"
flock 9

mkdir -p "$dir/tpm" "$dir/store"

# Starts swtpm on a random free port pair: a taken port makes swtpm exit before it daemonizes,
# and the next pair is tried. No port is reserved ahead, so there is no race to lose.
# A TPM that ran before is started on its old ports first, so its users' TCTI still holds.
start_swtpm() {
  local port tries old
  old=$(cat "$portfile" 2>/dev/null || true)
  for tries in $(seq 50); do
    if ((tries == 1)) && [[ $old =~ ^[0-9]+$ ]]; then
      port=$old
    else
      port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
      ((port % 2 == 0)) || port=$((port - 1))
    fi
    if swtpm socket --tpm2 --tpmstate "dir=$dir/tpm" \
      --server "type=tcp,port=$port,bindaddr=127.0.0.1" \
      --ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" \
      --flags not-need-init,startup-clear \
      --pid "file=$pidfile" --log "file=$dir/swtpm.log,level=1" --daemon \
      </dev/null >/dev/null 2>>"$dir/swtpm.log" 9>&-; then
      # (The daemon must not keep this script's stdout, which the caller reads to its end, nor
      # its lock.)
      echo "$port" >"$portfile"
      say "Started swtpm (pid $(cat "$pidfile")) on 127.0.0.1:$port (control $((port + 1)))"
      return 0
    fi
  done
  die "swtpm did not start on any of $tries port pairs; see $dir/swtpm.log"
}

if running_pid >/dev/null && [[ -s $portfile ]]; then
  say "swtpm for $dir already runs (pid $(running_pid)) on port $(cat "$portfile")"
else
  start_swtpm
fi
port=$(cat "$portfile")
export TPM2_PKCS11_TCTI="swtpm:host=127.0.0.1,port=$port"
export TPM2_PKCS11_STORE="$dir/store"
# The module's own errors still reach stderr; its chatter does not.
export TPM2_PKCS11_LOG_LEVEL=${TPM2_PKCS11_LOG_LEVEL:-1}

# Writes a random 32-hex-digit PIN to $1 (mode 0600) unless the file exists.
new_pin_file() {
  [[ -e $1 ]] && return 0
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$1"
  echo >>"$1"
  chmod 0600 "$1"
  say "Wrote a random PIN to $1"
}

# Prints the first line of PIN file $1 (to be captured, never shown) after checking it.
read_pin() {
  [[ -r $1 ]] || die "cannot read PIN file $1"
  local pin
  IFS= read -r pin <"$1" || [[ -n $pin ]] || die "PIN file $1 is empty"
  ((${#pin} >= 4 && ${#pin} <= 128)) || die "the PIN in $1 must be 4 to 128 characters long"
  printf '%s' "$pin"
}

token_exists() {
  pkcs11-tool --module "$module" --list-token-slots 2>/dev/null |
    awk -v want="$label" '
      /^ *token label *:/ { sub(/^[^:]*: /, ""); sub(/ +$/, ""); if ($0 == want) found = 1 }
      END { exit !found }'
}

# tpm2-pkcs11 always offers one uninitialized slot. (awk reads to the end: a reader that
# quits early could leave pkcs11-tool dying mid-write while the next one opens the store.)
free_slot_index() {
  pkcs11-tool --module "$module" --list-slots 2>/dev/null |
    awk '
      /^Slot [0-9]+ / { slot = $2 }
      /token state: *uninitialized/ && free == "" { free = slot }
      END { if (free != "") print free }'
}

if token_exists; then
  say "Token '$label' already exists in $dir/store; left as it is."
  if [[ -z $pin_file && ! -e $dir/pin ]]; then
    die "token '$label' exists but its PIN file $dir/pin is gone. Pass --pin-file FILE, or remove $dir to start over."
  fi
else
  [[ -n $pin_file ]] || { pin_file="$dir/pin"; new_pin_file "$pin_file"; }
  [[ -n $so_pin_file ]] || { so_pin_file="$dir/so-pin"; new_pin_file "$so_pin_file"; }
  user_pin=$(read_pin "$pin_file")
  so_pin=$(read_pin "$so_pin_file")
  slot=$(free_slot_index)
  [[ -n $slot ]] || die "tpm2-pkcs11 offers no uninitialized slot (is $module the tpm2-pkcs11 module? see $dir/swtpm.log)"
  say "Initializing token '$label' on the TPM at $TPM2_PKCS11_TCTI"
  TUFA_INIT_SO_PIN=$so_pin pkcs11-tool --module "$module" --slot-index "$slot" \
    --init-token --label "$label" --so-pin env:TUFA_INIT_SO_PIN >&2
  TUFA_INIT_SO_PIN=$so_pin TUFA_INIT_PIN=$user_pin pkcs11-tool --module "$module" \
    --token-label "$label" --login --login-type so --so-pin env:TUFA_INIT_SO_PIN \
    --init-pin --new-pin env:TUFA_INIT_PIN >&2
  unset user_pin so_pin
  token_exists || die "token '$label' was initialized but cannot be found"
fi

say "TPM token '$label' is ready (module $module). User PIN file: ${pin_file:-$dir/pin}"
printf 'export TPM2_PKCS11_TCTI=%q\n' "$TPM2_PKCS11_TCTI"
printf 'export TPM2_PKCS11_STORE=%q\n' "$TPM2_PKCS11_STORE"
printf 'export TPM2_PKCS11_LOG_LEVEL=%q\n' "$TPM2_PKCS11_LOG_LEVEL"
