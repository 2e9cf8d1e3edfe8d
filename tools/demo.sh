#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine: install what is missing,
# build, and show smpgw working against simulated devices.
#
# What it shows grows with the project; today: an MCUboot image signed by
# MCUboot's own imgtool checked by `smpgwctl image info` (with the right
# key and a wrong one), a fleet of simulated devices (smpsim) behind an
# emulated link, and that image pushed to them with the full update
# procedure (upload, test, reset, confirm) by `smpgwctl --conn`, with
# progress, ending with each device running it confirmed.  (The daemon,
# smpgwd, will take over the pushing.)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
# shellcheck source=tools/deps.sh
. "$top/tools/deps.sh"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

smpgw_install_missing

step "building"
if [ -f build/build.ninja ]; then meson setup --reconfigure build >/dev/null; else meson setup build >/dev/null; fi
ninja -C build >/dev/null
ctl=build/tools/smpgwctl/smpgwctl
sim=build/tools/smpsim/smpsim
data=tests/data

step "smpgwctl image info (image signed by MCUboot's imgtool, with its key)"
"$ctl" image info "$data/imgtool-ecdsa-p256.bin" --key "$data/key-ecdsa-p256.pub.pem"

step "the same image against another key: the signature does not verify"
if "$ctl" image info "$data/imgtool-ecdsa-p256.bin" --key "$data/key-ecdsa-p256-other.pem"; then
  echo "unexpected: a wrong key verified" >&2
  exit 1
else
  echo "(exit code $? as documented: no valid signature)"
fi

step "a corrupted copy is rejected with a reason"
tmp=$(mktemp -d)
trap 'kill "${simpid:-}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
head -c 300 "$data/imgtool-ecdsa-p256.bin" >"$tmp/truncated.bin"
"$ctl" image info "$tmp/truncated.bin" || echo "(exit code $?)"

step "20 simulated devices on UDP (smpsim; 1 Mbit/s, 15 ms links), and the state of one of them"
port=$((20000 + RANDOM % 20000))
"$sim" --udp "127.0.0.1:$port" --count 20 --control "$tmp/ctl" --bandwidth 125000 --latency 15 \
  --buf-size 2475 --buf-count 8 --swap-ms 1500 >"$tmp/sim.out" 2>"$tmp/sim.err" &
simpid=$!
for _ in $(seq 50); do grep -q ready "$tmp/sim.out" 2>/dev/null && break; sleep 0.1; done
/usr/bin/python3 - "$tmp/ctl" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rb")
s.sendall(b"list\nstate 0\n")
print(json.loads(f.readline()))
st = json.loads(f.readline())
for slot in st["slots"]:
    print("slot %d: %s" % (slot["slot"], {k: slot[k] for k in slot if k in ("version", "hash", "active", "confirmed")}))
PY

export SMPGW_PLUGIN_DIR="$top/build/plugins"
image="$data/imgtool-ecdsa-p256.bin"
for dev in 0 1 2; do
  step "update device $dev (udp:127.0.0.1:$((port + dev))) to $(basename "$image")"
  "$ctl" --conn "udp:127.0.0.1:$((port + dev))" update "$image"
done

step "device 1 afterwards"
"$ctl" --conn "udp:127.0.0.1:$((port + 1))" image list

step "the same push to device 3, which reverts (smpsim fault: the new image never confirms itself)"
/usr/bin/python3 - "$tmp/ctl" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"fault 3 revert\n"); s.makefile().readline()
PY
if "$ctl" --conn "udp:127.0.0.1:$((port + 3))" update "$image"; then
  echo "unexpected: the revert was not detected" >&2
  exit 1
else
  echo "(exit code $?: reverted, as documented in doc/smpgwctl.md)"
fi
echo
echo "smpsim runs devices on udp 127.0.0.1:$port..$((port + 19)); see doc/smpsim.md and doc/smpgwctl.md."
