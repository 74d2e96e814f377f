#!/usr/bin/env bash
# Gets pcscd running with the virtual readers the simulated YubiKey tests use: vpcd's default
# two (/etc/reader.conf.d/vpcd, TCP 35963-35964), two more (TCP 35965-35966) from
# /etc/reader.conf.d/tufa-vpcd, and two named "Yubico YubiKey tufa" (TCP 35967-35968) from
# /etc/reader.conf.d/tufa-vpcd-yubico, both written by this script. (Yubico's ykcs11 2.2 lists
# only readers whose name starts with "Yubico".) The vpcd driver keeps its readers in one
# static table per loaded library, indexed by slot, so entries sharing a library would share
# readers; each extra entry therefore loads its own copy of the driver from /usr/local/lib/tufa.
# pcscd reads its configuration only at start, so a pcscd that has not loaded both copies is
# restarted, after taking the card tests' lock (/tmp/tufa-piv-cards.lock) so no test's cards
# vanish under it; the test harness, which holds that lock already, says so with
# TUFA_PIV_CARDS_LOCKED=1.
#
# Safe to run again: with pcscd already running with the readers, it changes nothing.
# Runs as root, or through sudo. The test harness (tests/src/piv) runs it when needed.
set -euo pipefail

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

pcscd=/usr/sbin/pcscd
driver=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
conf=/etc/reader.conf.d/tufa-vpcd
copy=/usr/local/lib/tufa/libifdvpcd.so
yubico_conf=/etc/reader.conf.d/tufa-vpcd-yubico
yubico_copy=/usr/local/lib/tufa/libifdvpcd-yubico.so
lock=/tmp/tufa-piv-cards.lock
pidfile=/run/pcscd/pcscd.pid

[[ -x "$pcscd" ]] || die "pcscd is not installed: run scripts/install-deps.sh"
[[ -e "$driver" ]] || die "the vpcd reader driver (vsmartcard-vpcd) is not installed: run scripts/install-deps.sh"

if ((EUID == 0)); then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  die "pcscd and $conf need root: run this script as root"
fi

for c in "$copy" "$yubico_copy"; do
  if ! cmp -s "$driver" "$c"; then
    say "Copying the vpcd driver to $c"
    "${as_root[@]}" install -D -m 0644 "$driver" "$c"
  fi
done

# vpcd opens two readers per entry, on PORT and PORT+1.
wanted="# Written by tufa's scripts/start-pcscd.sh: two more virtual readers for the tests.
FRIENDLYNAME \"Virtual PCD tufa\"
DEVICENAME   /dev/null:35965
LIBPATH      $copy
CHANNELID    35965"

if [[ "$(cat "$conf" 2>/dev/null)" != "$wanted" ]]; then
  say "Writing $conf (virtual readers on TCP 35965-35966)"
  printf '%s\n' "$wanted" | "${as_root[@]}" tee "$conf" >/dev/null
fi

yubico_wanted="# Written by tufa's scripts/start-pcscd.sh: readers ykcs11 lists (its name filter).
FRIENDLYNAME \"Yubico YubiKey tufa\"
DEVICENAME   /dev/null:35967
LIBPATH      $yubico_copy
CHANNELID    35967"

if [[ "$(cat "$yubico_conf" 2>/dev/null)" != "$yubico_wanted" ]]; then
  say "Writing $yubico_conf (virtual readers named Yubico... on TCP 35967-35968)"
  printf '%s\n' "$yubico_wanted" | "${as_root[@]}" tee "$yubico_conf" >/dev/null
fi

running_pid() {
  # The pid file is NUL-padded.
  local pid
  pid=$(tr -d '\0' 2>/dev/null <"$pidfile" || true)
  # A killed pcscd may linger as a zombie (state Z) until its parent reaps it.
  [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" =~ ^[^Z]$ ]] &&
    echo "$pid"
}

start() {
  # A pcscd managed by systemd socket activation starts again by itself on the next client.
  if command -v systemctl >/dev/null && systemctl is-active --quiet pcscd.socket 2>/dev/null; then
    return 0
  fi
  say "Starting pcscd"
  local out
  # (The daemon must not inherit the card tests' lock.)
  if ! out=$("${as_root[@]}" "$pcscd" 2>&1 8>&-); then
    # "Another pcscd (pid N) seems to be running": someone else just started it.
    [[ -n "$(running_pid)" ]] || die "pcscd did not start: $out"
  fi
}

loaded_copy() {
  "${as_root[@]}" grep -qF "$copy" "/proc/$1/maps" 2>/dev/null &&
    "${as_root[@]}" grep -qF "$yubico_copy" "/proc/$1/maps" 2>/dev/null
}

pid=$(running_pid || true)
if [[ -n "$pid" ]] && ! loaded_copy "$pid"; then
  if [[ ${TUFA_PIV_CARDS_LOCKED:-} != 1 ]]; then
    say "Waiting for running card tests ($lock) before restarting pcscd"
    exec 8>>"$lock"
    flock -w 600 8 || die "card tests held $lock for 10 minutes; try again later"
  fi
  say "Restarting pcscd (pid $pid): it runs without the readers of $conf and $yubico_conf"
  "${as_root[@]}" kill "$pid"
  for _ in $(seq 50); do
    [[ "$(running_pid || true)" == "$pid" ]] || break
    sleep 0.1
  done
  [[ "$(running_pid || true)" != "$pid" ]] || die "pcscd (pid $pid) did not stop"
  pid=
fi
[[ -n "$pid" ]] || start

for _ in $(seq 30); do
  pid=$(running_pid || true)
  [[ -n "$pid" ]] && loaded_copy "$pid" && exit 0
  sleep 0.1
done
command -v systemctl >/dev/null && systemctl is-active --quiet pcscd.socket 2>/dev/null && exit 0
die "pcscd is not running after start; try it in the foreground to see why: $pcscd -f -d"
