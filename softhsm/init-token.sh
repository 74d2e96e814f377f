#!/usr/bin/env bash
# Creates a private SoftHSM token directory and initializes a token in it, once.
#
# Usage: softhsm/init-token.sh --dir DIR --label LABEL [--pin-file FILE] [--so-pin-file FILE]
#
# Writes DIR/softhsm2.conf and DIR/tokens/ (mode 0700). Without --pin-file a random user PIN is
# written to DIR/pin (mode 0600), and without --so-pin-file a random SO PIN to DIR/so-pin. The
# token is initialized only if no token labelled LABEL exists yet, so running this again is
# harmless. Stdout is one line for the caller to eval:
#   eval "$(softhsm/init-token.sh --dir /tmp/hsm --label dev)"   # sets SOFTHSM2_CONF
# Everything else goes to stderr. PINs are never printed, and reach pkcs11-tool through its
# environment, not its command line.
#
# SOFTHSM2_MODULE overrides the module path (default /usr/lib/softhsm/libsofthsm2.so).
set -euo pipefail
# Everything written here (configuration, PINs, tokens) is for the caller's eyes only.
umask 077

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module=${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
usage() {
  say "usage: $0 --dir DIR --label LABEL [--pin-file FILE] [--so-pin-file FILE]"
  exit 2
}

dir='' label='' pin_file='' so_pin_file=''
while (($#)); do
  case $1 in
    --dir) (($# >= 2)) || usage; dir=$2; shift 2 ;;
    --label) (($# >= 2)) || usage; label=$2; shift 2 ;;
    --pin-file) (($# >= 2)) || usage; pin_file=$2; shift 2 ;;
    --so-pin-file) (($# >= 2)) || usage; so_pin_file=$2; shift 2 ;;
    -h | --help) usage ;;
    *) say "unknown argument: $1"; usage ;;
  esac
done
[[ -n $dir && -n $label ]] || usage
((${#label} <= 32)) || die "token label '$label' is longer than PKCS#11's 32 characters"
[[ -r $module ]] || die "SoftHSM module $module not found: run scripts/install-deps.sh (package softhsm2)"
command -v pkcs11-tool >/dev/null || die "pkcs11-tool not found: run scripts/install-deps.sh (package opensc)"

# Writes a random 32-hex-digit PIN to $1 (mode 0600) unless the file exists.
new_pin_file() {
  [[ -e $1 ]] && return 0
  (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$1" && echo >>"$1")
  chmod 0600 "$1"
  say "Wrote a random PIN to $1"
}

# Prints the first line of PIN file $1 (to be captured, never shown) after checking it.
read_pin() {
  [[ -r $1 ]] || die "cannot read PIN file $1"
  local pin
  IFS= read -r pin <"$1" || [[ -n $pin ]] || die "PIN file $1 is empty"
  ((${#pin} >= 4 && ${#pin} <= 255)) || die "the PIN in $1 must be 4 to 255 characters long"
  printf '%s' "$pin"
}

# Whether a token labelled $label is in the token directory.
token_exists() {
  pkcs11-tool --module "$module" --list-token-slots 2>/dev/null |
    awk -v want="$label" '
      /^ *token label *:/ { sub(/^[^:]*: /, ""); sub(/ +$/, ""); if ($0 == want) found = 1 }
      END { exit !found }'
}

# The index of the slot holding SoftHSM's free (uninitialized) token.
free_slot_index() {
  pkcs11-tool --module "$module" --list-slots 2>/dev/null |
    awk '
      /^Slot [0-9]+ / { slot = $2 }
      /token state: *uninitialized/ { print slot; exit }'
}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[[ $dir != *$'\n'* ]] || die "the directory name must not contain a newline"
# The configuration names the token directory; both belong to the caller only.
mkdir -p "$dir/tokens"
chmod 0700 "$dir/tokens"
conf="$dir/softhsm2.conf"
template=$(<"$here/softhsm2.conf.template")
# Quoting the replacement keeps bash 5.2 from reading `&` in the path as the match.
printf '%s\n' "${template//@TOKENDIR@/"$dir/tokens"}" >"$conf.tmp"
mv -f "$conf.tmp" "$conf"
export SOFTHSM2_CONF=$conf

# Two runs on the same directory at once must not both initialize the token.
exec 9>"$dir/.init-token.lock"
flock 9

if token_exists; then
  say "Token '$label' already exists in $dir/tokens; left as it is."
  if [[ -z $pin_file && ! -e $dir/pin ]]; then
    die "token '$label' exists but its PIN file $dir/pin is gone, and the PIN cannot be recovered.
Pass --pin-file FILE with the PIN, or remove $dir/tokens to start over."
  fi
else
  [[ -n $pin_file ]] || { pin_file="$dir/pin"; new_pin_file "$pin_file"; }
  [[ -n $so_pin_file ]] || { so_pin_file="$dir/so-pin"; new_pin_file "$so_pin_file"; }
  user_pin=$(read_pin "$pin_file")
  so_pin=$(read_pin "$so_pin_file")
  slot=$(free_slot_index)
  [[ -n $slot ]] || die "SoftHSM offers no free slot in $dir/tokens (is $module the SoftHSM module?)"
  say "Initializing token '$label' in $dir/tokens"
  TUFA_INIT_SO_PIN=$so_pin pkcs11-tool --module "$module" --slot-index "$slot" \
    --init-token --label "$label" --so-pin env:TUFA_INIT_SO_PIN >&2
  TUFA_INIT_SO_PIN=$so_pin TUFA_INIT_PIN=$user_pin pkcs11-tool --module "$module" \
    --token-label "$label" --login --login-type so --so-pin env:TUFA_INIT_SO_PIN \
    --init-pin --new-pin env:TUFA_INIT_PIN >&2
  unset user_pin so_pin
  token_exists || die "token '$label' was initialized but cannot be found in $dir/tokens"
fi

say "SoftHSM token '$label' is ready. User PIN file: ${pin_file:-$dir/pin}"
printf 'export SOFTHSM2_CONF=%q\n' "$conf"
