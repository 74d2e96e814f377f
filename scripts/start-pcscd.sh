#!/usr/bin/env bash
# Gets pcscd running with the four virtual readers the simulated YubiKey tests use: vpcd's
# default two (/etc/reader.conf.d/vpcd, TCP 35963-35964) and two more (TCP 35965-35966) from
# /etc/reader.conf.d/tufa-vpcd, which this script writes. The vpcd driver keeps its readers in
# one static table per loaded library, indexed by slot, so a second entry using the same
# library would share the first entry's readers; the second entry therefore loads a copy of the
# driver, /usr/local/lib/tufa/libifdvpcd.so. pcscd reads its configuration only at start, so a
# pcscd that has not loaded that copy is restarted.
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

if ! cmp -s "$driver" "$copy"; then
  say "Copying the vpcd driver to $copy"
  "${as_root[@]}" install -D -m 0644 "$driver" "$copy"
fi

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
  if ! out=$("${as_root[@]}" "$pcscd" 2>&1); then
    # "Another pcscd (pid N) seems to be running": someone else just started it.
    [[ -n "$(running_pid)" ]] || die "pcscd did not start: $out"
  fi
}

loaded_copy() {
  "${as_root[@]}" grep -qF "$copy" "/proc/$1/maps" 2>/dev/null
}

pid=$(running_pid || true)
if [[ -n "$pid" ]] && ! loaded_copy "$pid"; then
  say "Restarting pcscd (pid $pid): it runs without the readers of $conf"
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
