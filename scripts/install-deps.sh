#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages tufa's build, demo and tests need, if they are missing.
#
# Already-installed packages are left alone and the network is not touched when nothing is
# missing. Runs as root, or through sudo when that is available.
set -euo pipefail

# What each package is for (the end-to-end tests and the demo run these for real):
packages=(
  softhsm2         # the PKCS#11 token used in development and CI
  opensc           # pkcs11-tool, used by softhsm/init-token.sh
  openssl          # makes the throwaway CA of the demo and the tests
  libpcsclite-dev  # PC/SC headers and library, for the YubiKey backend
  pcscd            # the PC/SC daemon, for the YubiKey backend
  vsmartcard-vpcd  # a virtual smart-card reader, for the simulated YubiKey in tests
  swtpm            # a software TPM 2.0, for the TPM token in tests (tpm/init-token.sh)
  libtpm2-pkcs11-1 # tpm2-pkcs11, the PKCS#11 module over a TPM 2.0
  libtss2-tcti-swtpm0 # the TSS transport tpm2-pkcs11 uses to reach swtpm
  ykcs11           # Yubico's PKCS#11 module: the simulated YubiKey as a PKCS#11 token that counts PIN tries
  notary           # notary-server, notary-signer and the notary CLI, for end-to-end tests
  docker-registry  # a registry for end-to-end tests
  jq               # reads JSON in scripts
  curl             # talks HTTP in scripts
  util-linux       # setpriv and flock
  time             # /usr/bin/time: peak memory of the commands the notary benchmark runs
  ca-certificates  # TLS roots for apt and cargo
  gcc              # the linker cargo calls
  libc6-dev        # the C library the linker needs
  pkg-config       # finds libpcsclite for the build
)
# The docker CLI, for the end-to-end tests of `docker trust` and the demo's DCT pull (client
# only: no daemon is used).
# Machines that already have one (Docker's own packages, a static binary) keep it; elsewhere
# Debian's docker.io provides it.
command -v docker >/dev/null || packages+=(docker.io)

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

installed() {
  # dpkg-query, not `dpkg -s | grep -q`: with pipefail, grep's early exit can fail the pipe.
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  say "All system packages are installed."
else
  say "Missing system packages: ${missing[*]}"
  command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} with your system's package manager"
  if ((EUID == 0)); then
    as_root=()
  elif command -v sudo >/dev/null; then
    as_root=(sudo)
    say "Using sudo to install them."
  else
    die "not root and no sudo: as root, run
  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  fi

  # Package scripts (docker-registry's, pcscd's) try to start system services. tufa does not
  # use them (tests start their own), and in containers starting them fails and breaks the
  # install, so service starts are refused for the duration of this install, through the
  # standard policy-rc.d hook. An existing policy-rc.d is kept as it is.
  policy=/usr/sbin/policy-rc.d
  marker='# tufa install-deps: temporary'
  remove_policy() {
    if grep -qxF "$marker" "$policy" 2>/dev/null; then
      "${as_root[@]}" rm -f "$policy"
    fi
  }
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n%s\nexit 101\n' "$marker" | "${as_root[@]}" tee "$policy" >/dev/null
    "${as_root[@]}" chmod 0755 "$policy"
    trap remove_policy EXIT
  fi

  apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
  say "+ apt-get update"
  "${apt[@]}" update -q
  say "+ apt-get install -y --no-install-recommends ${missing[*]}"
  if ! "${apt[@]}" install -y -q --no-install-recommends "${missing[@]}"; then
    # A service that failed to start can leave a package half-configured; one retry of the
    # configuration step usually settles it.
    say "apt-get install failed; retrying the package configuration step"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive dpkg --configure -a || true
  fi
  remove_policy
  trap - EXIT

  still=()
  for p in "${missing[@]}"; do
    installed "$p" || still+=("$p")
  done
  ((${#still[@]} == 0)) || die "these packages are still not installed: ${still[*]}"
  say "Installed: ${missing[*]}"
fi

# Rust is not taken from apt: the workspace needs a newer toolchain than Debian ships.
if ! command -v cargo >/dev/null; then
  if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    die "cargo is installed in ~/.cargo/bin but not on PATH: run
  source \"\$HOME/.cargo/env\""
  fi
  die "cargo not found. Install Rust with rustup (https://rustup.rs):
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
  source \"\$HOME/.cargo/env\""
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
need=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$root/Cargo.toml" | head -n1)
have=$(cargo --version | awk '{print $2}')
if [[ -n "$need" && -n "$have" ]] &&
  [[ "$(printf '%s\n%s\n' "$need" "${have%%-*}" | sort -V | head -n1)" != "$need" ]]; then
  die "cargo $have is older than the workspace's rust-version $need: run
  rustup update stable"
fi
say "Rust toolchain: $(cargo --version)"
