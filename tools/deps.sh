# Sourced by tools/check.sh and tools/demo.sh: the Debian 12 packages smpgw
# builds, tests and runs with, and an installer for the missing ones that
# works as root or through sudo, with no standard input.

SMPGW_PACKAGES=(
  gcc clang libclang-rt-14-dev meson ninja-build pkg-config
  libcbor-dev libssl-dev nettle-dev libjansson-dev libsystemd-dev libcoap3-dev
  openssl python3 python3-cbor2 libcoap3-bin
  dbus-daemon python3-dbus python3-gi
  python3-yaml python3-jsonschema
  libsqlite3-dev libmicrohttpd-dev sqlite3 systemd uthash-dev
  libcurl4-openssl-dev
  libdbus-1-dev
  lowdown man-db bash-completion
  tzdata
  clang-format git
)

# Only for the benchmarks in tools/bench (not for building or testing, so
# not installed by smpgw_install_missing and not by CI):
#   apt-get install "${SMPGW_BENCH_PACKAGES[@]}"
# wrk: tools/bench/scale's HTTP load (it falls back to Python threads).
SMPGW_BENCH_PACKAGES=(
  wrk
)

smpgw_install_missing() {
  local missing=() p
  for p in "${SMPGW_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  printf '==> installing: %s\n' "${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}
