#!/usr/bin/env bash
# Builds smpgw and runs every test: the normal build, the ASan/UBSan build
# and a short libFuzzer run of each fuzz target.  Installs what it needs
# with apt-get when it is missing, so it runs on a fresh Debian 12 machine
# (as root, or as a user with sudo) with no standard input.
#
#   tools/check.sh                  everything
#   FUZZ_SECONDS=60 tools/check.sh  longer fuzz runs (default 5 s each)
#   ALL_TESTS=1 tools/check.sh      every test in both builds (by default
#                                   suite slow runs in the normal build,
#                                   the rest under ASan/UBSan)
#   SKIP_FUZZ=1 tools/check.sh      no fuzzing
#   SKIP_CROSS=1 tools/check.sh     no arm64 cross build (tools/cross.sh); it is
#                                   also left out past CROSS_BUDGET_S (1560 s)
#   tools/format-check.sh [--fix]   the format check alone
#   CROSS_ARCHES="arm64 armhf" tools/check.sh   cross builds to run
set -euo pipefail

check_start=$(date +%s)
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

FUZZ_SECONDS=${FUZZ_SECONDS:-5}
export DEBIAN_FRONTEND=noninteractive

# shellcheck source=tools/deps.sh
. "$top/tools/deps.sh"

log() { printf '\n==> %s\n' "$*"; }

passed=0
failed=0
failures=()

# meson test prints "Ok: N" and "Fail: N" (and friends) in its summary.
run_meson_tests() {
  local dir=$1 label=$2 out rc=0
  shift 2
  out=$(mktemp)
  meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" 2>&1 | tee "$out" || rc=$?
  local ok fail
  ok=$(awk '/^Ok:/ {print $2}' "$out" | tail -n1)
  fail=$(awk '/^(Fail|Unexpected Pass|Timeout):/ {s += $NF} END {print s + 0}' "$out")
  rm -f "$out"
  passed=$((passed + ${ok:-0}))
  failed=$((failed + fail))
  if [ "$rc" -ne 0 ] || [ "$fail" -ne 0 ]; then
    failures+=("$label")
    [ "$fail" -ne 0 ] || failed=$((failed + 1))
  fi
}

setup() {
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@"
  fi
}

smpgw_install_missing

log "format (.editorconfig, .clang-format)"
if tools/format-check.sh; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  failures+=("format check")
fi

log "build (gcc, -Werror)"
setup build
ninja -C build
# Every test runs once: the five long scenario tests of suite "slow" (a
# fleet's rollout, the daemon's end-to-end cases, the hawkBit client,
# smpsim and smpgwctl over every transport: 9 of the 15 minutes a full
# run takes) in this build, every other test under ASan/UBSan below, so
# CI stays inside 30 minutes on two cores.  ALL_TESTS=1 runs every test
# in both builds; `meson test -C build` runs them all here.
normal_suites=(--suite slow)
asan_suites=(--no-suite slow)
if [ "${ALL_TESTS:-0}" = 1 ]; then
  normal_suites=()
  asan_suites=()
fi
log "tests${normal_suites:+ (suite slow; the others run under ASan)}"
run_meson_tests build "tests (normal build)" "${normal_suites[@]}"

log "build with AddressSanitizer and UndefinedBehaviorSanitizer"
setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-asan
log "tests under ASan/UBSan${asan_suites:+ (all but suite slow)}"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  run_meson_tests build-asan "tests (ASan/UBSan build)" "${asan_suites[@]}"

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  log "fuzz targets (clang, libFuzzer), ${FUZZ_SECONDS} s each"
  CC=clang setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
  ninja -C build-fuzz
  work=$(mktemp -d)
  for exe in build-fuzz/tests/fuzz/fuzz-*; do
    [ -x "$exe" ] && [ -f "$exe" ] || continue
    name=$(basename "$exe")
    mkdir -p "$work/$name"
    seeds=tests/fuzz/corpus/$name
    [ -d "$seeds" ] || seeds=
    # UBSan only prints and goes on unless told to halt; libFuzzer then
    # never sees the finding (a NULL + 0 in the MCUboot parser went
    # unnoticed through every CI run that way).
    if ASAN_OPTIONS=abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
       "$exe" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -artifact_prefix="$work/$name-" \
         "$work/$name" $seeds >"$work/$name.log" 2>&1; then
      execs=$(awk '/stat::number_of_executed_units/ {print $NF}' "$work/$name.log")
      printf '%-24s ok, %s runs\n' "$name" "$execs"
      passed=$((passed + 1))
    else
      printf '%-24s FAILED\n' "$name"
      tail -n 40 "$work/$name.log"
      failed=$((failed + 1))
      failures+=("$name")
    fi
  done
  rm -rf "$work"
fi

# The Pi: a cross build with Debian's arm64 libraries, its unit tests and
# an end-to-end push under qemu user emulation.  About 70 s on a machine
# that lacks the arm64 packages, 25 s once they are there.  It runs when
# it fits: CI has 30 minutes, so past CROSS_BUDGET_S seconds (default
# 1560, 26 minutes) since the start it is left out, saying so (run
# tools/cross.sh arm64 by hand, or CROSS_BUDGET_S=0 for no limit).
elapsed=$(( $(date +%s) - check_start ))
if [ "${SKIP_CROSS:-0}" != 1 ] && [ "${CROSS_BUDGET_S:-1560}" != 0 ] && [ "$elapsed" -gt "${CROSS_BUDGET_S:-1560}" ]; then
  log "cross builds left out: ${elapsed} s have passed, past CROSS_BUDGET_S=${CROSS_BUDGET_S:-1560} (tools/cross.sh arm64 runs them)"
elif [ "${SKIP_CROSS:-0}" != 1 ]; then
  for arch in ${CROSS_ARCHES:-arm64}; do
    log "cross build for $arch, tested under qemu (tools/cross.sh $arch)"
    if "$top/tools/cross.sh" "$arch"; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      failures+=("cross $arch")
    fi
  done
fi

echo
if [ ${#failures[@]} -ne 0 ]; then
  echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed in $(( $(date +%s) - check_start )) s"
[ "$failed" -eq 0 ]
