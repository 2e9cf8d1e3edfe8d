#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Cross-builds smpgw for a Raspberry Pi architecture on a Debian 12 amd64
# machine and tests the result under qemu user emulation:
#
#   tools/cross.sh arm64      64-bit (aarch64-linux-gnu), Pi 3/4/5, Zero 2 W
#   tools/cross.sh armhf      32-bit (arm-linux-gnueabihf), ARMv7 and later
#
# 1. installs what is missing (as root, or through sudo, no stdin): the
#    foreign architecture (dpkg --add-architecture), the cross compiler,
#    pkgconf and the -dev packages of tools/deps.sh for that architecture,
#    qemu-user-static;
# 2. builds in build-ARCH with cross/TRIPLET.ini (-Dtests=true: the unit
#    test programs are cross-built too);
# 3. runs the unit tests (meson test --suite unit) and the database test
#    under qemu (the cross file's exe_wrapper);
# 4. runs tools/e2e-push.sh under qemu: smpsim and smpgwd (both ARCH
#    binaries), one push over UDP driven through REST.
#
# The Python process tests (tests/daemon, tests/smpsim) start the
# programs themselves and would need binfmt_misc to run foreign binaries;
# they stay with the native build (tools/check.sh).
#
#   CROSS_E2E_COUNT=N   devices in the end-to-end run (default 1)
#   CROSS_SKIP_E2E=1    build and unit tests only
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

arch=${1:-}
case "$arch" in
  arm64) triplet=aarch64-linux-gnu;   qemu=qemu-aarch64-static ;;
  armhf) triplet=arm-linux-gnueabihf; qemu=qemu-arm-static ;;
  *) echo "usage: tools/cross.sh arm64|armhf" >&2; exit 2 ;;
esac
build=build-$arch
export DEBIAN_FRONTEND=noninteractive

# shellcheck source=tools/deps.sh
. "$top/tools/deps.sh"

log() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started )) s"; }

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo -n)

installed() {
  dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

install_cross_deps() {
  local wanted=() missing=() p
  # The build machine's part: meson, ninja, Python for the migrations
  # and the REST client of the end-to-end run.
  for p in meson ninja-build python3 dpkg-dev; do wanted+=("$p"); done
  wanted+=("gcc-$triplet" "libc6-dev:$arch" "pkgconf:$arch" qemu-user-static)
  # The libraries: every -dev package of tools/deps.sh, for ARCH (the
  # compiler runtime for clang's fuzzers is not one of them).
  for p in "${SMPGW_PACKAGES[@]}"; do
    case "$p" in
      libclang-rt-*) ;;
      lib*-dev | nettle-dev) wanted+=("$p:$arch") ;;
    esac
  done
  for p in "${wanted[@]}"; do installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0

  if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    log "dpkg --add-architecture $arch"
    "${sudo[@]}" dpkg --add-architecture "$arch"
  fi
  log "installing: ${missing[*]}"
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

install_cross_deps
echo "dependencies ready after $(elapsed)"

log "cross build ($build, cross/$triplet.ini)"
if [ -f "$build/build.ninja" ]; then
  meson setup --reconfigure "$build" --cross-file "cross/$triplet.ini" >/dev/null
else
  meson setup "$build" --cross-file "cross/$triplet.ini"
fi
nice -n 10 ninja -C "$build"
file -b "$build/daemon/smpgwd" 2>/dev/null || true
echo "built after $(elapsed)"

log "unit tests under $qemu"
nice -n 10 meson test -C "$build" --print-errorlogs --num-processes 2 --suite unit
nice -n 10 meson test -C "$build" --print-errorlogs smpgwd-db
echo "unit tests done after $(elapsed)"

if [ "${CROSS_SKIP_E2E:-0}" != 1 ]; then
  log "end to end under $qemu: smpsim + smpgwd over UDP, one push, REST"
  SMPGW_EXE_WRAPPER=$qemu "$top/tools/e2e-push.sh" "$build" "${CROSS_E2E_COUNT:-1}"
fi
echo
echo "tools/cross.sh $arch: passed in $(elapsed)"
