#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The bash completion of smpgwctl, as bash drives it: bash-completion's
# own library, COMP_WORDS split the way readline splits them (':' is a
# word break), and for the daemon's ids a real smpgwd on a private bus
# with smpsim devices.  TAP output.
#
#   SMPGWCTL=... SMPGWD=... SMPSIM=... BUS_CONF=... COMPLETION=... \
#     test-smpgwctl-completion.sh
set -uo pipefail

bash_completion=/usr/share/bash-completion/bash_completion
if [ ! -r "$bash_completion" ]; then
  echo "1..0 # SKIP bash-completion is not installed"
  exit 77
fi
# shellcheck disable=SC1090
. "$bash_completion"
# shellcheck disable=SC1090
. "$COMPLETION"

n=0
failed=0
tmp=$(mktemp -d)
simpid= gwpid= buspid=
cleanup() {
  [ -n "$gwpid" ] && kill "$gwpid" 2>/dev/null && wait "$gwpid" 2>/dev/null
  [ -n "$simpid" ] && kill "$simpid" 2>/dev/null && wait "$simpid" 2>/dev/null
  [ -n "$buspid" ] && kill "$buspid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# complete LINE: what Tab at the end of LINE offers, one per line, sorted.
# The words are split as readline does with COMP_WORDBREAKS' ':'.
complete_line() {
  local line=$1
  local -a w=()
  local word
  read -r -a w <<<"$line"
  [[ $line == *" " ]] && w+=("")
  COMP_WORDS=()
  for word in "${w[@]}"; do
    while [[ $word == *:* ]]; do
      [[ -n ${word%%:*} ]] && COMP_WORDS+=("${word%%:*}")
      COMP_WORDS+=(":")
      word=${word#*:}
    done
    [[ -n $word || ${#COMP_WORDS[@]} -eq 0 || $line == *" " ]] && COMP_WORDS+=("$word")
  done
  # A trailing ':' leaves the word after it empty.
  [[ $line == *: ]] && COMP_WORDS+=("")
  COMP_WORDS[0]=$SMPGWCTL
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMP_LINE="$SMPGWCTL ${line#smpgwctl }"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  _smpgwctl "$SMPGWCTL" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}" 2>/dev/null
  # bash replaces only what follows the word's last ':'; put the part
  # before it back, to compare whole words.
  local last=${line##* } prefix
  prefix=${last%"${last##*:}"}
  local reply
  for reply in "${COMPREPLY[@]}"; do printf '%s%s\n' "$prefix" "$reply"; done | sort
}

# expect LINE WORD...: Tab offers exactly these words.
expect() {
  local line=$1 got want
  shift
  got=$(complete_line "$line" | tr '\n' ' ')
  want=$( (($# == 0)) || printf '%s\n' "$@" | sort | tr '\n' ' ')
  n=$((n + 1))
  if [ "$got" = "$want" ]; then
    echo "ok $n - '$line' offers: $got"
  else
    echo "not ok $n - '$line' offers: $got (expected: $want)"
    failed=$((failed + 1))
  fi
}

# expect_has LINE WORD...: among what Tab offers are these words.
expect_has() {
  local line=$1 got w missing=""
  shift
  got=$(complete_line "$line")
  for w in "$@"; do
    grep -qxF -- "$w" <<<"$got" || missing+=" $w"
  done
  n=$((n + 1))
  if [ -z "$missing" ]; then
    echo "ok $n - '$line' offers$(printf ' %s' "$@")"
  else
    echo "not ok $n - '$line' lacks$missing (offers: $(tr '\n' ' ' <<<"$got"))"
    failed=$((failed + 1))
  fi
}

n=$((n + 1))
if complete -p smpgwctl | grep -q -- '-F _smpgwctl smpgwctl'; then
  echo "ok $n - complete -p smpgwctl: $(complete -p smpgwctl)"
else
  echo "not ok $n - smpgwctl has no completion function"; failed=$((failed + 1))
fi

# Commands, subcommands, options and their values: no daemon needed.
expect "smpgwctl im" image images
expect "smpgwctl ima" image images
expect "smpgwctl image " info list upload test confirm erase
expect "smpgwctl image u" upload
expect "smpgwctl stat " list read
expect "smpgwctl images " add delete set-boards set-mesh-composition
expect_has "smpgwctl images add --" --name --board
expect "smpgwctl devices " add
expect "smpgwctl ca" cancel
expect "smpgwctl fo" forget
expect "smpgwctl pr" probe
expect "smpgwctl p" params probe push
expect "smpgwctl re" rename reset
expect "smpgwctl ro" rollout
expect "smpgwctl di" direct-device
expect "smpgwctl rollout " create list show pause resume cancel activate plan
expect_has "smpgwctl rollout create --" --devices --filter --canary --wave-size --soak --window --timezone \
  --staging --failure-threshold --failure-action --max-rebooting --max-rebooting-relay --attempts --wait
expect "smpgwctl rollout create --failure-action " abort pause
expect "smpgwctl rollout pause --" --bus --help --json
expect_has "smpgwctl --" --conn --json --timeout --erase-timeout --smp-version --window --chunk --verbose --help --version
expect "smpgwctl --conn " udp: coap: serial: ble:
expect "smpgwctl --conn s" serial:
expect "smpgwctl --smp-version " 1 2
expect "smpgwctl update app.bin --mode test-" test-and-confirm test-only
expect "smpgwctl update app.bin -m c" confirm-only
expect_has "smpgwctl push --" --mode --attempts --force --wait --bus
expect "smpgwctl watch --f" --follow
expect "smpgwctl reset --f" --force
expect "smpgwctl push --bus s" session system
touch "$tmp/app-1.2.0.bin"
expect "smpgwctl image info $tmp/app-1" "$tmp/app-1.2.0.bin"
expect "smpgwctl -c udp:127.0.0.1:1337 update $tmp/app-" "$tmp/app-1.2.0.bin"
if [ -e /dev/ttyS0 ]; then
  expect_has "smpgwctl --conn serial:/dev/ttyS" serial:/dev/ttyS0
fi

# The daemon's ids: smpgwd on a private bus, two smpsim devices, one image,
# one job.
if [ -z "${SMPGWD:-}" ] || [ -z "${SMPSIM:-}" ] || ! command -v dbus-daemon >/dev/null; then
  echo "# no smpgwd, smpsim or dbus-daemon: the daemon's ids are not tested"
else
  { read -r busaddr; read -r buspid; } < <(dbus-daemon --config-file="$BUS_CONF" --fork --print-address=1 --print-pid=1)
  export DBUS_SYSTEM_BUS_ADDRESS=$busaddr
  port=$(/usr/bin/python3 -c '
import socket
for base in range(25000, 60000, 7):
    try:
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", base))
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.bind(("127.0.0.1", base + 1))
    except OSError:
        continue
    a.close(); b.close(); print(base); break')
  "$SMPSIM" --udp "127.0.0.1:$port" --count 2 >"$tmp/sim.out" 2>"$tmp/sim.err" &
  simpid=$!
  for _ in $(seq 100); do grep -q ready "$tmp/sim.out" 2>/dev/null && break; sleep 0.1; done
  "$SMPGWD" --state-dir "$tmp/state" --rest off --bus "$busaddr" >"$tmp/smpgwd.log" 2>&1 &
  gwpid=$!
  for _ in $(seq 100); do "$SMPGWCTL" devices >/dev/null 2>&1 && break; sleep 0.1; done
  "$SMPGWCTL" devices add "udp:127.0.0.1:$port" "udp:127.0.0.1:$((port + 1))" >/dev/null
  /usr/bin/python3 - "$tmp/app.bin" "$SMPGW_SRCDIR/tests/daemon" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
import mcuimg
open(sys.argv[1], "wb").write(mcuimg.make_image((2, 0, 0, 0), 4096)[0])
PY
  image=$("$SMPGWCTL" images add "$tmp/app.bin")
  job=$("$SMPGWCTL" push "$image" 1)

  expect "smpgwctl device " 1 2
  expect "smpgwctl probe 1 " 1 2
  expect "smpgwctl forget 2" 2
  expect "smpgwctl rename " 1 2
  expect "smpgwctl push $image " 1 2
  expect_has "smpgwctl push " "$image"
  expect "smpgwctl images delete " "$image"
  expect "smpgwctl images set-boards " "$image"
  expect "smpgwctl images set-mesh-composition " "$image"
  expect "smpgwctl cancel " "$job"
  rollout=$("$SMPGWCTL" rollout create "$image" --devices 2 --start 2099-01-01T00:00:00Z)
  expect "smpgwctl rollout pause " "$rollout"
  expect_has "smpgwctl rollout create " "$image"
  expect "smpgwctl device 1 " labels
  expect "smpgwctl device 1 labels --" --add --bus --help --json --remove --set
  expect "smpgwctl watch " "$job"
  expect "smpgwctl --conn udp:127" "udp:127.0.0.1:$port" "udp:127.0.0.1:$((port + 1))"
  expect "smpgwctl device udp:127.0.0.1:$((port + 1))" "udp:127.0.0.1:$((port + 1))"
  # --bus on the command line is the bus the ids come from: none here.
  expect "smpgwctl device --bus unix:path=$tmp/nobus "
fi

echo "1..$n"
[ "$failed" -eq 0 ]
