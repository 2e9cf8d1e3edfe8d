#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Builds the Debian packages and tests them as a system would use them.
#
#   tools/deb-test.sh            amd64: build, lintian, then a Debian 12
#                                container under systemd-nspawn (real
#                                systemd 252 and dbus): install, service
#                                checks, upgrade, remove, purge
#   tools/deb-test.sh arm64      cross build (-a arm64 -Pnocheck), lintian
#   tools/deb-test.sh armhf      the same for armhf
#
#   DEB_TEST_CHECK=1   run the test suite in the amd64 package build
#                      (dh_auto_test; by default -Pnocheck: tools/check.sh
#                      runs the same tests)
#   DEB_TEST_NO_CONTAINER=1   build and lintian only
#   DEB_TEST_REUSE=1   keep the .debs of the last run (container tests only)
#
# Everything lands in build-deb/ (git ignores it): the source copies, the
# .debs, and rootfs/, a Debian 12 tree made once by debootstrap from the
# mirror this machine's apt uses.  Each run boots a throw-away copy of it
# (--ephemeral) with no network but its own loopback.  Needs root.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
arch=${1:-amd64}
host_arch=$(dpkg --print-architecture)
work=$top/build-deb
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

log() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started )) s"; }
[ "$(id -u)" -eq 0 ] || { echo "deb-test.sh: run as root (apt-get, debootstrap, systemd-nspawn)" >&2; exit 1; }

installed() { dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'; }
apt_install() {
  local missing=() p
  for p in "$@"; do installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing: ${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

# A copy of the work tree as git sees it (tracked and new files, without
# what .gitignore leaves out), so a build never picks up build trees.
copy_source() {
  local dest=$1
  rm -rf "$dest"
  mkdir -p "$dest"
  git -C "$top" ls-files -z --cached --others --exclude-standard |
    tar -C "$top" --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C "$dest" -xf -
}

# build DIR [VERSION]: the packages of the work tree in DIR; VERSION adds
# a changelog entry (the upgrade's "next version").
build() {
  local dir=$1 version=${2:-} src opts=(-us -uc -b)
  src=$dir/smpgw
  copy_source "$src"
  if [ -n "$version" ]; then
    { printf 'smpgw (%s) unstable; urgency=medium\n\n  * Test upgrade (tools/deb-test.sh).\n\n' "$version"
      printf ' -- %s  %s\n\n' "$(sed -n 's/^ -- \(.*>\)  .*/\1/p' "$src/debian/changelog" | head -n1)" "$(date -R)"
      cat "$src/debian/changelog"; } >"$src/debian/changelog.new"
    mv "$src/debian/changelog.new" "$src/debian/changelog"
  fi
  local profiles=nocheck
  [ "$arch" = "$host_arch" ] && [ "${DEB_TEST_CHECK:-0}" = 1 ] && profiles=
  [ "$arch" = "$host_arch" ] || opts+=(-a "$arch")
  [ -n "$profiles" ] && opts+=(-P"$profiles")
  log "dpkg-buildpackage ${opts[*]} ($(sed -n '1s/.*(\(.*\)).*/\1/p' "$src/debian/changelog"))"
  rm -f "$dir"/*.deb "$dir"/*.changes "$dir"/*.buildinfo
  (cd "$src" && DEB_BUILD_OPTIONS="${profiles:+nocheck }parallel=2" nice -n 10 dpkg-buildpackage "${opts[@]}") \
    >"$dir/build.log" 2>&1 || { tail -n 60 "$dir/build.log"; echo "build failed: $dir/build.log" >&2; exit 1; }
  grep -E '^(dpkg-deb: building|.*[0-9]+ passed)|^Ok:|^Fail:' "$dir/build.log" || true
}

log "tools and build dependencies"
apt_install debhelper dpkg-dev fakeroot lintian git
if [ "$arch" != "$host_arch" ]; then
  dpkg --print-foreign-architectures | grep -qx "$arch" || { dpkg --add-architecture "$arch"; apt-get update -q; }
  apt_install "crossbuild-essential-$arch"
fi
copy_source "$work/deps/smpgw"
# apt reads the Build-Depends of debian/control, for the target
# architecture and profile (without the tests' packages under nocheck).
bd_opts=()
[ "$arch" = "$host_arch" ] || bd_opts+=(-a "$arch")
[ "$arch" = "$host_arch" ] && [ "${DEB_TEST_CHECK:-0}" = 1 ] || bd_opts+=(-Pnocheck)
apt-get build-dep -y -q "${bd_opts[@]}" "$work/deps/smpgw" </dev/null >"$work/deps/build-dep.log" 2>&1 ||
  { tail -n 30 "$work/deps/build-dep.log"; exit 1; }
echo "ready after $(elapsed)"

v1=$work/$arch-v1
v2=$work/$arch-v2
reuse=0
[ "${DEB_TEST_REUSE:-0}" = 1 ] && ls "$v1"/*.deb "$v2"/*.deb >/dev/null 2>&1 && reuse=1
[ "$reuse" = 1 ] || build "$v1"
echo "built after $(elapsed)"

log "lintian"
lintian --fail-on error --display-info --tag-display-limit 0 "$v1"/*.changes | tee "$v1/lintian.txt" || {
  echo "lintian found errors" >&2; exit 1; }
echo "lintian: $(grep -c '^E:' "$v1/lintian.txt" || true) errors, $(grep -c '^W:' "$v1/lintian.txt" || true) warnings, $(grep -c '^I:' "$v1/lintian.txt" || true) infos"
ls -l "$v1"/*.deb

if [ "$arch" != "$host_arch" ] || [ "${DEB_TEST_NO_CONTAINER:-0}" = 1 ]; then
  echo
  echo "tools/deb-test.sh $arch: built and linted in $(elapsed)"
  exit 0
fi

# The "next version" for the upgrade: same code, a higher version.
[ "$reuse" = 1 ] || build "$v2" "$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)+upgrade1"

log "Debian 12 container (systemd-nspawn)"
apt_install debootstrap systemd-container
rootfs=$work/rootfs
if [ ! -f "$rootfs/.complete" ]; then
  # The Debian mirror this machine's apt uses (deb822 or one-line format).
  mirror=$(sed -n 's/^URIs: *\([^ ]*debian\/*\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  mirror=${mirror:-http://deb.debian.org/debian}
  log "debootstrap bookworm from $mirror"
  rm -rf "$rootfs"
  nice -n 10 debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,procps,man-db,bash-completion,python3,curl,ca-certificates \
    bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log"; exit 1; }
  touch "$rootfs/.complete"
fi

# The packages' run-time dependencies, installed into the tree with the
# network (the booted container has none): every Depends of our .debs but
# our own packages.
own='^(libsmpgw0|libsmpgw-dev|smpgw-plugins|smpgwd|smpgw-tools|smpsim)( |$)'
deps=$(for d in "$v1"/{libsmpgw0,smpgw-plugins,smpgwd,smpgw-tools,smpsim}_*.deb; do
         dpkg-deb -f "$d" Depends | tr ',' '\n'
       done | sed 's/^ *//' | grep -Ev "$own" | sort -u | paste -sd, -)
log "run-time dependencies into the container tree: $deps"
systemd-nspawn --quiet --register=no --keep-unit -D "$rootfs" \
  sh -c "apt-get update -q && apt-get satisfy -y -q --no-install-recommends '$deps'" </dev/null >"$work/satisfy.log" 2>&1 ||
  { tail -n 30 "$work/satisfy.log"; exit 1; }

mnt=$work/mnt
rm -rf "$mnt"
mkdir -p "$mnt/v1" "$mnt/v2"
cp "$v1"/*.deb "$mnt/v1/"
cp "$v2"/*.deb "$mnt/v2/"
cp "$top/tools/deb-test-container.sh" "$top/tests/daemon/mcuimg.py" "$mnt/"

# A container left running by a run that was killed outright (SIGKILL
# runs no trap, and its init outlives systemd-nspawn): power it off, and
# drop its --ephemeral copy of the tree.
pidfile=$work/container.pid
if [ -f "$pidfile" ]; then
  old=$(cat "$pidfile")
  if [ "$(cat "/proc/$old/comm" 2>/dev/null)" = systemd ] &&
     tr '\0' '\n' <"/proc/$old/environ" 2>/dev/null | grep -qx 'container=systemd-nspawn'; then
    echo "powering off the container of an earlier run (pid $old)"
    kill -s SIGRTMIN+4 "$old" 2>/dev/null || true
    for _ in $(seq 100); do [ -d "/proc/$old" ] || break; sleep 0.1; done
    # SIGKILL to a PID namespace's init ends every process in it.
    kill -9 "$old" 2>/dev/null || true
  fi
  rm -f "$pidfile"
fi
rm -rf "$work"/.#machine.* "$work"/.#.#machine.*

log "boot"
systemd-nspawn --quiet --register=no --keep-unit --private-network --ephemeral -D "$rootfs" \
  --bind-ro="$mnt:/debs" -b --console=pipe >"$work/boot.log" 2>&1 </dev/null &
nspawn=$!
leader=
stop_container() {
  kill -TERM "$nspawn" 2>/dev/null || true
  wait "$nspawn" 2>/dev/null || true
  rm -f "$pidfile"
}
trap stop_container EXIT
trap 'exit 130' INT TERM HUP
for _ in $(seq 100); do
  leader=$(pgrep -P "$nspawn" -x systemd || true)
  [ -n "$leader" ] && break
  kill -0 "$nspawn" 2>/dev/null || { cat "$work/boot.log"; echo "systemd-nspawn failed" >&2; exit 1; }
  sleep 0.1
done
[ -n "$leader" ] || { echo "no init in the container" >&2; exit 1; }
echo "$leader" >"$pidfile"
in_container() { nsenter --target "$leader" --all -- "$@"; }
# systemctl answers once PID 1 listens on its private socket; then wait
# for the boot to finish.
for _ in $(seq 120); do
  in_container test -S /run/systemd/private 2>/dev/null && break
  sleep 0.5
done
state=$(in_container timeout 90 systemctl is-system-running --wait || true)
echo "container: $(in_container systemctl --version | head -n1), system $state"
[ "$state" = running ] || { in_container systemctl --failed --no-pager; exit 1; }

log "tests inside the container"
rc=0
in_container /bin/bash /debs/deb-test-container.sh || rc=$?
[ "$rc" -eq 0 ] || in_container journalctl -u smpgwd --no-pager -n 60 || true
echo
echo "tools/deb-test.sh $arch: $([ $rc -eq 0 ] && echo passed || echo FAILED) in $(elapsed)"
exit "$rc"
