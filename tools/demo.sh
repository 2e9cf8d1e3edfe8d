#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine: install what is missing,
# build, start smpgwd with a fresh embedded SQLite database and 20
# simulated devices, and roll an image out to all of them over REST (a
# canary first, then the rest in waves) with live progress, until every
# device runs it, confirmed.
#
#   1. smpsim: 20 SMP devices on UDP (MCUboot slots, 400 kbit/s links)
#   2. smpgwd on a private D-Bus bus, REST on 127.0.0.1, discovery of the
#      devices' address range; the inventory fills itself
#   3. an MCUboot image (2.0.0, 192 KiB) POSTed to /api/v1/images
#   4. POST /api/v1/rollouts/plan (the waves and the estimated duration),
#      then POST /api/v1/rollouts: the canary, then two waves of the rest;
#      progress from the REST API
#   5. a third of the way, smpgwd is killed with SIGKILL; the database passes
#      PRAGMA integrity_check, smpgwd restarts and the rollout goes on
#   6. the devices, now on 2.0.0 confirmed: GET /api/v1/devices,
#      `smpgwctl devices` (over D-Bus) and `busctl`
#
# No root is needed for the run itself; nothing is installed system-wide
# but Debian packages.
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
ctl=$top/build/tools/smpgwctl/smpgwctl
sim=$top/build/tools/smpsim/smpsim
gwd=$top/build/daemon/smpgwd
export SMPGW_PLUGIN_DIR="$top/build/plugins"

tmp=$(mktemp -d)
simpid= gwpid= buspid=
cleanup() {
  [ -n "$gwpid" ] && kill "$gwpid" 2>/dev/null && wait "$gwpid" 2>/dev/null || true
  [ -n "$simpid" ] && kill "$simpid" 2>/dev/null || true
  [ -n "$buspid" ] && kill "$buspid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# A free run of 20 UDP ports and a free TCP port, on loopback.
read -r simport restport < <(/usr/bin/python3 - <<'PY'
import socket
for base in range(21000, 60000, 97):
    socks = []
    try:
        for p in range(base, base + 20):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", p)); socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks: s.close()
    t = socket.socket(); t.bind(("127.0.0.1", 0)); print(base, t.getsockname()[1]); t.close()
    break
PY
)
api="http://127.0.0.1:$restport/api/v1"

step "20 simulated devices (smpsim): udp 127.0.0.1:$simport-$((simport + 19)), 50 kB/s links, 10 ms latency"
"$sim" --udp "127.0.0.1:$simport" --count 20 --control "$tmp/simctl" --bandwidth 50000 --latency 10 \
  --buf-size 2475 --buf-count 4 --swap-ms 1500 >"$tmp/sim.out" 2>"$tmp/sim.err" &
simpid=$!
for _ in $(seq 100); do grep -q ready "$tmp/sim.out" 2>/dev/null && break; sleep 0.1; done

step "a private D-Bus bus for smpgwd's org.smpgw API"
{ read -r busaddr; read -r buspid; } < <(dbus-daemon --config-file="$top/tests/bus.conf" --fork \
                                           --print-address=1 --print-pid=1)
export DBUS_SYSTEM_BUS_ADDRESS=$busaddr   # smpgwctl talks to the system bus by default
echo "$busaddr"

cat >"$tmp/smpgwd.conf" <<EOF
# doc/smpgwd.conf.md describes every key
[discovery]
udp=127.0.0.1:$simport-$((simport + 19))
interval=10
[jobs]
max_running=10
[daemon]
flush_interval=1
EOF

start_smpgwd() {
  "$gwd" --config "$tmp/smpgwd.conf" --state-dir "$tmp/state" --rest "127.0.0.1:$restport" \
    --bus "$busaddr" >>"$tmp/smpgwd.log" 2>&1 &
  gwpid=$!
  for _ in $(seq 100); do
    /usr/bin/python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
      "$api/health" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "smpgwd did not start:" >&2; cat "$tmp/smpgwd.log" >&2; exit 1
}

step "smpgwd: fresh database $tmp/state/smpgw.db, REST on 127.0.0.1:$restport"
cat "$tmp/smpgwd.conf"
start_smpgwd
curl_json() { /usr/bin/python3 "$top/tools/demo-rest.py" "$api" "$@"; }

step "discovery: waiting for the 20 devices to be probed"
curl_json wait-online 20
"$ctl" devices

step "POST $api/images (an MCUboot image, version 2.0.0)"
/usr/bin/python3 - "$tmp/app-2.0.0.bin" <<PY
import sys
sys.path.insert(0, "$top/tests/daemon")
import mcuimg
data, digest = mcuimg.make_image((2, 0, 0, 0), 192 * 1024, seed=5)
open(sys.argv[1], "wb").write(data)
PY
image=$(curl_json add-image "$tmp/app-2.0.0.bin")

step "POST $api/rollouts: $image to every device, the canary first (the plan, then the rollout)"
rollout=$(curl_json rollout "$image" | tee /dev/stderr | tail -n 1)
"$ctl" rollout show "$rollout"

step "progress (from GET $api/rollouts/$rollout); smpgwd is killed with SIGKILL a third of the way"
curl_json rollout-progress "$rollout" --until-fraction 0.3
kill -9 "$gwpid"; wait "$gwpid" 2>/dev/null || true; gwpid=
echo "smpgwd killed (SIGKILL)."
echo "PRAGMA integrity_check: $(/usr/bin/python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])" "$tmp/state/smpgw.db")"

step "smpgwd restarted on the same database: the rollout goes on where the devices are"
start_smpgwd
curl_json rollout-progress "$rollout"
"$ctl" rollout show "$rollout"

step "GET $api/devices"
curl_json devices "$image"

step "smpgwctl devices (over D-Bus)"
"$ctl" devices

step "busctl: device 1's image slots, as org.smpgw.Device1 shows them"
busctl --address="$busaddr" get-property org.smpgw /org/smpgw/device/1 org.smpgw.Device1 Images || true
echo
echo "Logs: $tmp/smpgwd.log (removed on exit). API: doc/openapi.yaml, D-Bus: doc/dbus-api.md."
