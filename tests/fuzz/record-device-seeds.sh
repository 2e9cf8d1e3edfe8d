#!/usr/bin/env bash
# Seeds for fuzz-update and fuzz-upload from real exchanges with smpsim
# (record-device.c): a few image sizes and update modes against devices
# that behave, revert, reject, lose or double packets, reboot mid-upload,
# speak only SMP v1, or list their slots the frugal way.
#
# From the top of the tree, with a normal build:
#   ninja -C build tests/fuzz/record-device && tests/fuzz/record-device-seeds.sh build
set -euo pipefail

build=${1:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
rec=$build/tests/fuzz/record-device
sim=$build/tools/smpsim/smpsim
out=$top/tests/fuzz/corpus

# name what size mode smpsim-options...
scenarios=(
  "update-updated-small update 0 0"
  "update-updated-1500 update 3 0"
  "update-updated-12000 update 6 0"
  "update-confirm-only update 3 1"
  "update-test-only update 3 2"
  "update-upload-only update 4 3"
  "update-reverted update 3 0 --fault revert"
  "update-rejected update 3 0 --fault reject"
  "update-smp-v1 update 3 0 --smp-version 1"
  "update-frugal-lists update 3 0 --frugal"
  "update-lossy update 4 0 --seed 7 --loss 0.05"
  "update-doubled update 3 0 --seed 3 --fault dup=0.3"
  "update-reboot-mid-upload update 5 0 --fault reboot-at=2000"
  "update-small-buffer update 4 0 --buf-size 256 --buf-count 2"
  "upload-plain upload 5 0"
  "upload-no-match upload 4 0 --no-image-check"
  "upload-path-mtu-576 upload 6 0 --mtu 576"
  "upload-silent-at upload 5 1 --fault silent-at=3000"
  "upload-lossy upload 6 0 --seed 11 --loss 0.1"
)

for s in "${scenarios[@]}"; do
  read -r name what size mode opts <<<"$s"
  port=$((20000 + RANDOM % 20000))
  # shellcheck disable=SC2086
  "$sim" --udp 127.0.0.1:$port --count 1 --reset-ms 50 --boot-ms 100 --swap-ms 100 ${opts:-} \
    >/dev/null 2>&1 &
  pid=$!
  sleep 0.3
  mkdir -p "$out/fuzz-$what"
  timeout 120 "$rec" "$what" udp:127.0.0.1:$port "$size" "$mode" "$out/fuzz-$what/$name" || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
