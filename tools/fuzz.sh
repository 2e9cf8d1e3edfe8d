#!/usr/bin/env bash
# Runs the libFuzzer targets long, at low priority, and keeps what they
# learn.  tools/check.sh runs every target for 5 s from the seeds in
# tests/fuzz/corpus/; this is for the hours a decoder deserves.
#
#   tools/fuzz.sh [TARGET[:N]…] [--seconds N] [--until HH:MM] [--jobs N] [--work DIR]
#                 [--sanitizers LIST] [--coverage]
#
#   TARGET       fuzz-smp-cbor, … (default: every fuzz-* target built);
#                TARGET:N runs that one N seconds instead of --seconds
#   --seconds N  how long each target runs (default 3600; 0: no fuzzing,
#                with --coverage only the report)
#   --until T    no run goes past T (UTC, what date -d takes; a time of
#                day alone is the next one): each is cut short to end by
#                then, and those not started are skipped, so that a long
#                run ends, merged, when the machine is needed
#   --jobs N     targets running at once (default 2)
#   --work DIR   where corpora, findings and totals are kept
#                (default build-fuzz/fuzz-work)
#   --sanitizers address,undefined (default; build-fuzz) or undefined
#                (build-fuzz-undefined: no ASan, 1.4-1.6 times the
#                executions a second); what such a run keeps is then
#                replayed under ASan, so no kept input goes unchecked
#   --coverage   after the run, replay each corpus with -print_coverage=1
#                into DIR/TARGET/coverage.txt, and list the functions not
#                reached in the files the target reaches (coverage-gaps.txt)
#
# The fuzz build (build-fuzz: clang, -Dfuzz=true, ASan and UBSan) is set up
# and brought up to date first, and with --sanitizers undefined the
# UBSan-only one (build-fuzz-undefined) too.  ASan finds the memory errors
# no assertion sees, and costs a third of the state machines' time (its
# allocator and quarantine); without it libFuzzer searches faster, and
# every input that run keeps is replayed under ASan after its merge, so
# what it learnt is still checked for memory errors, one execution each.
# Each target runs under nice -n ${NICE:-15} with its work corpus
# DIR/TARGET/corpus (where libFuzzer adds what finds new coverage) and the
# seeds; afterwards the work corpus is minimised with -merge=1.  Crashes, leaks and timeouts land in
# DIR/TARGET/findings/; copy the input into tests/fuzz/corpus/TARGET/
# with the fix.  Every run appends one line to DIR/TARGET/history
# (date, seconds, execs, exec/s, cov, ft, findings, exit status,
# sanitizers), and the table printed at the end sums the execs of all runs
# so far, and of those under ASan.
#
# Run it detached for long runs:
#   nohup tools/fuzz.sh --seconds 14400 --jobs 2 > fuzz.log 2>&1 &
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

seconds=3600
jobs=2
work=$top/build-fuzz/fuzz-work
coverage=0
sanitizers=address,undefined
until=
targets=()

usage() {
  sed -n '6,27p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=${2:?}; shift 2 ;;
    --seconds=*) seconds=${1#*=}; shift ;;
    --until) until=${2:?}; shift 2 ;;
    --until=*) until=${1#*=}; shift ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --jobs=*) jobs=${1#*=}; shift ;;
    --work) work=${2:?}; shift 2 ;;
    --work=*) work=${1#*=}; shift ;;
    --sanitizers) sanitizers=${2:?}; shift 2 ;;
    --sanitizers=*) sanitizers=${1#*=}; shift ;;
    --coverage) coverage=1; shift ;;
    -h|--help) usage 0 ;;
    -*) echo "fuzz.sh: unknown option '$1'" >&2; usage 2 >&2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

case $seconds in ''|*[!0-9]*) echo "fuzz.sh: --seconds wants a number" >&2; exit 2 ;; esac
case $jobs in ''|*[!0-9]*|0) echo "fuzz.sh: --jobs wants a number of 1 or more" >&2; exit 2 ;; esac
deadline=
if [ -n "$until" ]; then
  deadline=$(date -u -d "$until" +%s) || { echo "fuzz.sh: --until wants a time, as date -d reads it" >&2; exit 2; }
  # A time of day alone is the next one, as at(1) takes it: "--until
  # 01:00" given at 22:00 means tomorrow's, not the one gone by (which
  # skipped every run as "too close").
  if [[ $until =~ ^[0-9]{1,2}:[0-9]{2}(:[0-9]{2})?$ ]] && [ "$deadline" -le "$(date -u +%s)" ]; then
    deadline=$(date -u -d "tomorrow $until" +%s)
  fi
fi

# build-fuzz (ASan and UBSan) always: it is the one that replays.
asan_build=$top/build-fuzz
case $sanitizers in
  address,undefined) build=$asan_build ;;
  undefined) build=$top/build-fuzz-undefined ;;
  *) echo "fuzz.sh: --sanitizers is address,undefined or undefined" >&2; exit 2 ;;
esac
# Two fuzz.sh at once (one per core) share the build directories: one
# sets up and builds while the other waits, instead of the second
# finding a fuzzer half linked.  The lock is on this script (flock(1),
# util-linux): no file to leave behind.
exec 9<"$0"
flock 9
for b in "$asan_build" "$build"; do
  if [ ! -f "$b/build.ninja" ]; then
    san=address,undefined
    [ "$b" = "$asan_build" ] || san=$sanitizers
    CC=clang meson setup "$b" -Dfuzz=true -Db_sanitize="$san" -Db_lundef=false >/dev/null
  fi
  nice -n "${NICE:-15}" ninja -C "$b" >/dev/null
done
flock -u 9
exec 9<&-

if [ ${#targets[@]} -eq 0 ]; then
  for exe in "$build"/tests/fuzz/fuzz-*; do
    [ -x "$exe" ] && [ -f "$exe" ] && targets+=("$(basename "$exe")")
  done
fi
# TARGET:N: that target's own seconds.
declare -A target_seconds=()
for i in "${!targets[@]}"; do
  t=${targets[$i]}
  case $t in
    *:*)
      n=${t##*:}
      case $n in ''|*[!0-9]*) echo "fuzz.sh: '$t': seconds after the colon" >&2; exit 2 ;; esac
      t=${t%:*}
      targets[$i]=$t
      target_seconds[$t]=$n
      ;;
  esac
  [ -x "$build/tests/fuzz/$t" ] || { echo "fuzz.sh: no target '$t' in $build/tests/fuzz" >&2; exit 2; }
done

# A UBSan report must stop the run like a crash (see tools/check.sh).  A
# 16 MB quarantine instead of ASan's 256: the state-machine targets
# allocate and free per request, and with the large one every allocation
# touches fresh pages (fuzz-update ran at a third of the speed); 16 MB is
# still many inputs' worth, so a use after free within one is caught.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:quarantine_size_mb=16}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

stat_of() { awk -v k="$1" '$1 == "stat::" k ":" {print $2}' "$2" | tail -n1; }

run_one() {
  local t=$1 exe=$build/tests/fuzz/$1 dir=$work/$1
  local seeds=$top/tests/fuzz/corpus/$1 log rc=0
  local seconds=${target_seconds[$1]:-$seconds}
  mkdir -p "$dir/corpus" "$dir/findings"
  [ -d "$seeds" ] || seeds=
  log=$dir/last.log
  if [ -n "$deadline" ] && [ "$seconds" -gt 0 ]; then
    # The merge afterwards takes a while too: a minute's margin.
    local left=$((deadline - $(date -u +%s) - 60))
    if [ "$left" -lt 10 ]; then
      echo "$t: skipped, --until $until is too close"
      return 0
    fi
    [ "$seconds" -le "$left" ] || seconds=$left
  fi
  if [ "$seconds" -gt 0 ]; then
    echo "$(date -u +%TZ) $t: ${seconds} s"
    nice -n "${NICE:-15}" "$exe" -max_total_time="$seconds" -print_final_stats=1 \
      -artifact_prefix="$dir/findings/" "$dir/corpus" $seeds >"$log" 2>&1 || rc=$?
    # Keep the corpus small: only what adds coverage survives.
    rm -rf "$dir/corpus.merge"
    mkdir "$dir/corpus.merge"
    if nice -n "${NICE:-15}" "$exe" -merge=1 "$dir/corpus.merge" "$dir/corpus" >"$dir/merge.log" 2>&1; then
      rm -rf "$dir/corpus"
      mv "$dir/corpus.merge" "$dir/corpus"
    else
      rm -rf "$dir/corpus.merge"
    fi
    local execs rate cov ft findings
    execs=$(stat_of number_of_executed_units "$log")
    rate=$(stat_of average_exec_per_sec "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | awk '{print $2}')
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n1 | awk '{print $2}')
    if [ "$build" != "$asan_build" ]; then
      # One execution under ASan of every input the run kept.
      nice -n "${NICE:-15}" "$asan_build/tests/fuzz/$t" -runs=0 -artifact_prefix="$dir/findings/" \
        "$dir/corpus" >"$dir/replay.log" 2>&1 || rc=$?
    fi
    findings=$(find "$dir/findings" -type f | wc -l)
    printf '%s %s %s %s %s %s %s %s %s\n' "$(date -u +%FT%TZ)" "$seconds" "${execs:-0}" "${rate:-0}" \
      "${cov:-0}" "${ft:-0}" "$findings" "$rc" "$sanitizers" >>"$dir/history"
  fi
  if [ "$coverage" = 1 ]; then
    nice -n "${NICE:-15}" "$exe" -runs=0 -print_coverage=1 "$dir/corpus" $seeds >"$dir/coverage.txt" 2>&1 || true
    # The gaps that matter: functions not reached in the source files the
    # target does reach (the rest of the library is another target's).
    awk '$1 == "COVERED_FUNC:" { f = $NF; sub(/:[0-9]+$/, "", f); seen[f] = 1 }
         $1 == "UNCOVERED_FUNC:" { f = $NF; sub(/:[0-9]+$/, "", f); gap[NR] = $0; file[NR] = f }
         END { for (i in gap) if (seen[file[i]]) print gap[i] }' "$dir/coverage.txt" |
      sed 's|[^ ]*/build-fuzz/\.\./||' | sort -k7 >"$dir/coverage-gaps.txt"
  fi
}

mkdir -p "$work"
echo "fuzzing ${#targets[@]} target(s), ${seconds} s each, ${jobs} at a time; work in $work"
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$t" &
  running=$((running + 1))
done
wait || true

printf '\n%-26s %14s %14s %9s %8s %8s %9s\n' target "execs (total)" "under ASan" "exec/s" cov ft findings
status=0
for t in "${targets[@]}"; do
  dir=$work/$t
  [ -f "$dir/history" ] || { printf '%-26s %14s\n' "$t" "(no runs)"; continue; }
  # Lines before the ninth column was written are all ASan runs.
  read -r total asan < <(awk '{s += $3; if (NF < 9 || $9 ~ /address/) a += $3} END {printf "%d %d\n", s, a}' "$dir/history")
  read -r _ _ _ rate cov ft _ rc _ < <(tail -n1 "$dir/history")
  findings=$(find "$dir/findings" -type f | wc -l)
  printf '%-26s %14s %14s %9s %8s %8s %9s\n' "$t" "$total" "$asan" "$rate" "$cov" "$ft" "$findings"
  [ "$findings" -eq 0 ] || status=1
  if [ "$coverage" = 1 ] && [ -f "$dir/coverage.txt" ]; then
    n=$(wc -l <"$dir/coverage-gaps.txt")
    printf '%-26s %d functions not reached in the files it reaches (%s)\n' "" "$n" "$dir/coverage-gaps.txt"
  fi
done
[ "$status" -eq 0 ] || echo "findings: see $work/*/findings/"
exit "$status"
