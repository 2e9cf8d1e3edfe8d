#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A short end-to-end run of one build: smpsim with COUNT devices on UDP
# (loopback), smpgwd with a fresh database finding them by discovery, one
# MCUboot image POSTed over REST, one push job per device, and a check
# that every device then runs the image, confirmed.  `smpgwctl image info`
# reads the image first, so all three programs of the build run.
#
#   tools/e2e-push.sh BUILD_DIR [COUNT]          (COUNT: 1 by default)
#   E2E_IMAGE_KIB=N    the image's body size in KiB (default 48)
#   E2E_FLUSH_INTERVAL=S  smpgwd's [daemon] flush_interval (default 2)
#   E2E_SIM_ARGS="..."    more smpsim options (link emulation: --bandwidth 20k)
#
# SMPGW_EXE_WRAPPER runs the build's programs through a wrapper: that is
# how tools/cross.sh runs an arm64 or armhf build under qemu user
# emulation (SMPGW_EXE_WRAPPER=qemu-aarch64-static).  The REST client is
# the build machine's Python (tools/demo-rest.py).
#
# At the end it prints smpgwd's peak resident memory (VmHWM) and the CPU
# time it used (user + system, from /proc); under qemu user emulation
# both include the emulator's own share (its translation cache, the
# translation work).  No root, no D-Bus (--bus none); only loopback.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: e2e-push.sh BUILD_DIR [COUNT]}" && pwd)
count=${2:-1}
read -r -a wrapper <<<"${SMPGW_EXE_WRAPPER:-}"
py=/usr/bin/python3

ctl=$build/tools/smpgwctl/smpgwctl
sim=$build/tools/smpsim/smpsim
gwd=$build/daemon/smpgwd
for exe in "$ctl" "$sim" "$gwd"; do
  [ -x "$exe" ] || { echo "e2e-push: $exe is missing: build first" >&2; exit 1; }
done

tmp=$(mktemp -d)
simpid= gwpid=
cleanup() {
  [ -n "$gwpid" ] && kill "$gwpid" 2>/dev/null && wait "$gwpid" 2>/dev/null || true
  [ -n "$simpid" ] && kill "$simpid" 2>/dev/null && wait "$simpid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "e2e-push: $*" >&2
  for f in "$tmp"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }; done
  exit 1
}
t0=$(date +%s.%N)
stamp() { printf "[%6.1f s] %s\n" "$(awk -v a="$(date +%s.%N)" -v b="$t0" "BEGIN {print a - b}")" "$*"; }

# A free run of COUNT UDP ports and a free TCP port on loopback.
read -r simport restport < <("$py" - "$count" <<'PY'
import socket, sys
n = int(sys.argv[1])
for base in range(21000, 60000, n + 97):
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", p)); socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks: s.close()
    t = socket.socket(); t.bind(("127.0.0.1", 0)); print(base, t.getsockname()[1]); t.close()
    break
PY
)
lastport=$((simport + count - 1))
api="http://127.0.0.1:$restport/api/v1"
rest() { "$py" "$top/tools/demo-rest.py" "$api" "$@"; }

stamp "smpsim: $count device(s) on udp 127.0.0.1:$simport-$lastport"
read -r -a sim_args <<<"${E2E_SIM_ARGS:-}"
"${wrapper[@]}" "$sim" --udp "127.0.0.1:$simport" --count "$count" --swap-ms 500 "${sim_args[@]}" \
  >"$tmp/smpsim.out" 2>"$tmp/smpsim.log" &
simpid=$!
for _ in $(seq 600); do grep -q ready "$tmp/smpsim.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$tmp/smpsim.out" || fail "smpsim did not get ready"

"$py" - "$tmp/app-2.0.0.bin" "$top/tests/daemon" "${E2E_IMAGE_KIB:-48}" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
import mcuimg
data, digest = mcuimg.make_image((2, 0, 0, 0), int(sys.argv[3]) * 1024, seed=5)
open(sys.argv[1], "wb").write(data)
PY
stamp "smpgwctl image info"
"${wrapper[@]}" "$ctl" image info "$tmp/app-2.0.0.bin" | sed 's/^/    /'

cat >"$tmp/smpgwd.conf" <<EOF
[daemon]
flush_interval=${E2E_FLUSH_INTERVAL:-2}
[discovery]
udp=127.0.0.1:$simport-$lastport
interval=30
[jobs]
max_running=16
EOF
stamp "smpgwd: REST on 127.0.0.1:$restport, fresh database"
"${wrapper[@]}" "$gwd" --config "$tmp/smpgwd.conf" --state-dir "$tmp/state" --rest "127.0.0.1:$restport" \
  --bus none --plugin-dir "$build/plugins" >"$tmp/smpgwd.log" 2>&1 &
gwpid=$!
for _ in $(seq 600); do
  "$py" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$api/health" \
    2>/dev/null && break
  kill -0 "$gwpid" 2>/dev/null || fail "smpgwd exited"
  sleep 0.1
done

stamp "waiting for discovery to probe $count device(s)"
rest wait-online "$count" || fail "devices did not come online"
stamp "POST /images"
image=$(rest add-image "$tmp/app-2.0.0.bin" 2>/dev/null) || fail "POST /images failed"
stamp "POST /jobs: push ${image:0:16}… to $count device(s)"
rest push "$image"
rest progress || fail "push failed"
stamp "every device runs the image, confirmed?"
rest devices "$image" | tail -n 3 || fail "not every device was updated"

# Peak memory and CPU time of the smpgwd process (clock ticks in /proc).
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$gwpid/status")
read -r utime stime < <(awk '{print $14, $15}' "/proc/$gwpid/stat")
hz=$(getconf CLK_TCK)
kill -TERM "$gwpid"
rc=0; wait "$gwpid" || rc=$?
gwpid=
[ "$rc" -eq 0 ] || fail "smpgwd exited with $rc on SIGTERM"
stamp "smpgwd stopped cleanly (SIGTERM)"
awk -v kb="$hwm" -v u="$utime" -v s="$stime" -v hz="$hz" -v how="${SMPGW_EXE_WRAPPER:+, under $SMPGW_EXE_WRAPPER}" \
  'BEGIN { printf "smpgwd: peak RSS %d KiB, CPU %.2f s (user %.2f, system %.2f)%s\n", kb, (u + s) / hz, u / hz, s / hz, how }'

echo "e2e-push: passed ($count device(s))"
