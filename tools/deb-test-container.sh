#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Runs INSIDE a booted Debian 12 container (tools/deb-test.sh starts it
# under systemd-nspawn and enters it): installs the packages from /debs/v1,
# checks smpgwd under the real systemd and bus, upgrades to /debs/v2 with
# an edited configuration, removes and purges.  Every check prints
# "ok N - what" or "not ok N - what"; the script exits non-zero if any
# failed.  No network but the container's own loopback.
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
PATH=/usr/sbin:/usr/bin:/sbin:/bin

n=0
failed=0
ok()  { n=$((n + 1)); echo "ok $n - $*"; }
bad() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() {  # check "what" command...
  local what=$1; shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
step() { printf '\n# %s\n' "$*"; }
prop() { systemctl show -P "$1" smpgwd; }
wait_for() {  # wait_for SECONDS command...: until the command succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}
api=http://127.0.0.1:8080/api/v1
rest() { curl -fs --max-time 10 "$api$1"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

debs_v1=(/debs/v1/libsmpgw0_*.deb /debs/v1/smpgw-plugins_*.deb /debs/v1/smpgwd_*.deb
         /debs/v1/smpgw-tools_*.deb /debs/v1/smpsim_*.deb)
debs_v2=(/debs/v2/libsmpgw0_*.deb /debs/v2/smpgw-plugins_*.deb /debs/v2/smpgwd_*.deb
         /debs/v2/smpgw-tools_*.deb /debs/v2/smpsim_*.deb)

step "install $(dpkg-deb -f /debs/v1/smpgwd_*.deb Version)"
check "dpkg -i installs the packages" dpkg -i "${debs_v1[@]}" </dev/null
check "user smpgw exists (sysusers)" id smpgw
check "smpgwd.service is enabled" test "$(systemctl is-enabled smpgwd)" = enabled
check "the D-Bus alias dbus-org.smpgw.service is linked" test -L /etc/systemd/system/dbus-org.smpgw.service
wait_for 20 systemctl is-active -q smpgwd
check "smpgwd.service is active" systemctl is-active -q smpgwd
# The first start must work: a failed one is hidden by Restart=on-failure
# five seconds later (the bus did not know the policy yet).
check "it started on the first try (NRestarts=$(prop NRestarts))" test "$(prop NRestarts)" = 0
check "Type=notify, and the daemon said READY with a status" \
  test "$(prop Type)" = notify -a -n "$(prop StatusText)"
echo "# StatusText: $(prop StatusText)"
check "it may open the Pi's UARTs (DeviceAllow char-ttyAMA, char-ttyS)" \
  bash -c "systemctl show -P DeviceAllow smpgwd | grep -q 'char-ttyAMA rw' && systemctl show -P DeviceAllow smpgwd | grep -q 'char-ttyS rw'"
check "it runs as user smpgw" test "$(ps -o user= -p "$(prop MainPID)")" = smpgw
check "the REST API answers on 127.0.0.1:8080" wait_for 10 rest /health
check "/etc/smpgw/smpgwd.conf is a conffile" grep -qx ' */etc/smpgw/smpgwd.conf [0-9a-f]*' \
  <(dpkg-query -W -f='${Conffiles}\n' smpgwd)
check "the database is in /var/lib/smpgw, mode 0750, owner smpgw" \
  test -f /var/lib/smpgw/smpgw.db -a "$(stat -c '%a %U' /var/lib/smpgw)" = "750 smpgw"
check "man smpgwctl works" bash -c 'man -P cat smpgwctl 2>/dev/null | grep -q "smpgwctl - "'
check "man 5 smpgwd.conf and man 8 smpgwd work" \
  bash -c 'man -w 5 smpgwd.conf >/dev/null && man -w 8 smpgwd >/dev/null'

# bash-completion's loader finds the installed file on the first Tab.
check "bash completion: 'smpgwctl im' + Tab offers image, images" bash -c '
  out=$(bash -i -c ". /usr/share/bash-completion/bash_completion; _completion_loader smpgwctl;
    COMP_WORDS=(smpgwctl im); COMP_CWORD=1; COMP_LINE=\"smpgwctl im\"; COMP_POINT=11;
    _smpgwctl smpgwctl im smpgwctl; echo \"\${COMPREPLY[*]}\"" 2>/dev/null | tail -n1)
  echo "# offered: $out"; [ "$out" = "image images" ]'

step "security exposure (systemd-analyze security)"
exposure=$(systemd-analyze security smpgwd 2>/dev/null | sed -n 's/.*Overall exposure level for smpgwd.service: \([0-9.]*\).*/\1/p')
echo "# overall exposure: $exposure"
check "exposure $exposure is 1.5 or better" awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 1.5) }'

step "a device, an image and a push, as an administrator would"
systemd-run --quiet --unit smpsim-test /usr/bin/smpsim --udp 127.0.0.1:1337 --count 2 --swap-ms 300
python3 - <<'PY'
import sys
sys.path.insert(0, "/debs")
import mcuimg
data, digest = mcuimg.make_image((2, 0, 0, 0), 32 * 1024, seed=3)
open("/root/app-2.0.0.bin", "wb").write(data)
PY
# The administrator's edit: a device to add at start (a reloadable key).
sed -i 's|^#add=$|add=udp:127.0.0.1:1337|' /etc/smpgw/smpgwd.conf
check "the configuration was edited" grep -qx 'add=udp:127.0.0.1:1337' /etc/smpgw/smpgwd.conf
pid_before=$(prop MainPID)
check "systemctl reload smpgwd" systemctl reload smpgwd
check "the reload applied [devices] add= without a restart" \
  wait_for 15 bash -c "curl -fs $api/devices | grep -q 'udp:127.0.0.1:1337'"
check "... same MainPID after the reload" test "$(prop MainPID)" = "$pid_before"
check "... the journal says so" wait_for 5 bash -c "journalctl -u smpgwd -q | grep -q 'Configuration reloaded'"
check "smpgwctl push --wait over the system bus updates the device" \
  smpgwctl push /root/app-2.0.0.bin udp:127.0.0.1:1337 --wait
image=$(rest /images | json 'd["images"][0]["id"]')
check "smpgwctl devices lists it on 2.0.0" bash -c "smpgwctl devices | grep -q '2.0.0'"

step "restart on failure"
pid=$(prop MainPID)
restarts=$(prop NRestarts)
kill -9 "$pid"
check "systemd restarts smpgwd after SIGKILL" \
  wait_for 30 bash -c "systemctl is-active -q smpgwd && [ \"\$(systemctl show -P MainPID smpgwd)\" != $pid ]"
check "... NRestarts went from $restarts to $((restarts + 1))" test "$(prop NRestarts)" = $((restarts + 1))

step "watchdog"
check "WatchdogSec=60s is set" test "$(prop WatchdogUSec)" = 1min
# A frozen daemon must be killed and restarted: a drop-in with a short
# watchdog, then SIGSTOP.  systemd sends SIGABRT after 4 s without a ping.
mkdir -p /run/systemd/system/smpgwd.service.d
printf '[Service]\nWatchdogSec=4s\nTimeoutAbortSec=5s\n' >/run/systemd/system/smpgwd.service.d/watchdog.conf
systemctl daemon-reload
systemctl restart smpgwd
check "the daemon pings the watchdog (WatchdogTimestamp moves)" wait_for 10 bash -c \
  "t0=\$(systemctl show -P WatchdogTimestampMonotonic smpgwd); sleep 2.5; [ \"\$(systemctl show -P WatchdogTimestampMonotonic smpgwd)\" -gt \"\$t0\" ]"
pid=$(prop MainPID)
restarts=$(prop NRestarts)
kill -STOP "$pid"
check "a frozen daemon is killed by the watchdog and restarted" \
  wait_for 30 bash -c "systemctl is-active -q smpgwd && [ \"\$(systemctl show -P MainPID smpgwd)\" != $pid ]"
check "... the journal names the watchdog" bash -c "journalctl -u smpgwd -q | grep -q -i 'watchdog timeout'"
check "... NRestarts went up" test "$(prop NRestarts)" -gt "$restarts"
rm -r /run/systemd/system/smpgwd.service.d
systemctl daemon-reload
systemctl restart smpgwd

step "D-Bus activation"
systemctl stop smpgwd
check "smpgwd is stopped" bash -c '! systemctl is-active -q smpgwd'
check "a call to org.smpgw starts it through the bus" \
  busctl --timeout=30 call org.smpgw /org/smpgw org.freedesktop.DBus.Peer Ping
check "... smpgwd.service is active again" wait_for 15 systemctl is-active -q smpgwd
check "... and smpgwctl reads the devices over the bus" bash -c "smpgwctl devices | grep -q udp:127.0.0.1:1337"

step "a reload with a broken configuration keeps the running one"
cp /etc/smpgw/smpgwd.conf /root/smpgwd.conf.good
echo 'no_such_key=1' >>/etc/smpgw/smpgwd.conf
pid=$(prop MainPID)
systemctl reload smpgwd
check "... still active, same process" bash -c "sleep 1; systemctl is-active -q smpgwd && [ \"\$(systemctl show -P MainPID smpgwd)\" = $pid ]"
check "... the journal says the reload failed" \
  wait_for 5 bash -c "journalctl -u smpgwd -q | grep -q 'Reload failed, keeping the running configuration'"
cp /root/smpgwd.conf.good /etc/smpgw/smpgwd.conf
systemctl reload smpgwd

step "upgrade to $(dpkg-deb -f /debs/v2/smpgwd_*.deb Version)"
pid=$(prop MainPID)
sum=$(md5sum </etc/smpgw/smpgwd.conf)
check "dpkg -i upgrades without asking about the edited conffile" dpkg -i "${debs_v2[@]}" </dev/null
check "smpgwd is the new version" test "$(dpkg-query -W -f='${Version}' smpgwd)" = "$(dpkg-deb -f /debs/v2/smpgwd_*.deb Version)"
check "the edited configuration is kept" test "$(md5sum </etc/smpgw/smpgwd.conf)" = "$sum"
check "no .dpkg-dist/.dpkg-new beside it" bash -c '! ls /etc/smpgw/*.dpkg-* 2>/dev/null'
check "the service was restarted (new MainPID)" \
  wait_for 20 bash -c "systemctl is-active -q smpgwd && [ \"\$(systemctl show -P MainPID smpgwd)\" != $pid ]"
check "the database is kept: the image is still stored" wait_for 10 bash -c "curl -fs $api/images | grep -q $image"
check "... the device still runs it and the job is still listed" \
  bash -c "smpgwctl devices | grep -q 2.0.0 && smpgwctl jobs | grep -q succeeded"

step "remove"
systemctl stop smpsim-test
check "dpkg -r removes the packages" dpkg -r smpsim smpgw-tools smpgwd </dev/null
check "the service is stopped" bash -c '! systemctl is-active -q smpgwd && ! pgrep -x smpgwd'
check "the data is kept (/var/lib/smpgw/smpgw.db)" test -f /var/lib/smpgw/smpgw.db
check "the configuration is kept" test -f /etc/smpgw/smpgwd.conf
check "the package is in state config-files" test "$(dpkg-query -W -f='${db:Status-Abbrev}' smpgwd)" = "rc "

step "purge"
check "dpkg -P purges the packages" dpkg -P smpsim smpgw-tools smpgwd smpgw-plugins libsmpgw0 </dev/null
check "the data is gone" test ! -e /var/lib/smpgw
check "the configuration is gone" test ! -e /etc/smpgw
check "no unit symlinks are left" \
  bash -c '! ls /etc/systemd/system/dbus-org.smpgw.service /etc/systemd/system/multi-user.target.wants/smpgwd.service 2>/dev/null'
check "systemd no longer knows the unit" bash -c '[ "$(systemctl show -P LoadState smpgwd)" = not-found ]'
check "no smpgw package is left" bash -c '! dpkg -l | grep -E "^(ii|rc) +(lib)?smpgw|^(ii|rc) +smpsim"'

echo
echo "1..$n"
echo "$((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
