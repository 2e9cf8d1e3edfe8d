#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Seeds for fuzz-bluez-props from a real exchange: smpsim's fake org.bluez
on a private dbus-daemon (tests/bluez/bus.conf), smpgwctl's ble transport
scanning, echoing (acquire and notify mode) and listing images, busctl
asking for every property of a device, an adapter and a characteristic,
and
dbus-monitor --binary recording every message on the bus.  Each message of
a shape the fuzz target knows becomes a seed in its input format (kind
byte, 16-bit little-endian body length, body); the notifications of one
exchange also go together into one seed, so the reassembler sees whole
frames.

  SMPSIM=build/tools/smpsim/smpsim SMPGWCTL=build/tools/smpgwctl/smpgwctl \\
    tests/fuzz/capture-bluez-seeds.py tests/fuzz/corpus/fuzz-bluez-props
"""

import hashlib
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUS_CONF = os.path.join(HERE, "..", "bluez", "bus.conf")

# fuzz-bluez-props.c: kind % 6, and the error names it picks by kind / 8.
KINDS = {
    (2, "a{oa{sa{sv}}}"): 0,
    (4, "oa{sa{sv}}"): 1,
    (4, "sa{sv}as"): 2,
    (2, "a{sv}"): 3,
    (4, "oas"): 5,
}
ERROR_NAMES = [
    "org.bluez.Error.Failed", "org.bluez.Error.NotReady", "org.bluez.Error.InProgress",
    "org.bluez.Error.NotPermitted", "org.bluez.Error.NotAuthorized", "org.bluez.Error.AlreadyConnected",
    "org.bluez.Error.DoesNotExist", "org.bluez.Error.NotConnected", "org.bluez.Error.NotSupported",
    "org.bluez.Error.InvalidArguments", "org.bluez.Error.InvalidLength",
    "org.bluez.Error.AuthenticationFailed", "org.freedesktop.DBus.Error.NoReply",
    "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.UnknownObject",
    "org.freedesktop.DBus.Error.AccessDenied", "com.example.Unknown",
]


def error_kind(name):
    idx = ERROR_NAMES.index(name) if name in ERROR_NAMES else len(ERROR_NAMES) - 1
    for sel in range(256):
        if sel % 6 == 4 and (sel // 8) % len(ERROR_NAMES) == idx:
            return sel
    raise ValueError(name)


def messages(blob):
    """Splits dbus-monitor --binary output into (type, fields, body)."""
    pos = 0
    while pos + 16 <= len(blob):
        endian = "<" if blob[pos:pos + 1] == b"l" else ">"
        mtype = blob[pos + 1]
        body_len, _serial, fields_len = struct.unpack(endian + "III", blob[pos + 4:pos + 16])
        fields_end = pos + 16 + fields_len
        header_end = pos + ((16 + fields_len + 7) & ~7)
        fields = {}
        p = pos + 16
        while p < fields_end:
            p = pos + ((p - pos + 7) & ~7)
            code = blob[p]
            siglen = blob[p + 1]
            sig = blob[p + 2:p + 2 + siglen].decode()
            p += 3 + siglen
            if sig in ("s", "o"):
                p = pos + ((p - pos + 3) & ~3)
                (n,) = struct.unpack(endian + "I", blob[p:p + 4])
                fields[code] = blob[p + 4:p + 4 + n].decode()
                p += 5 + n
            elif sig == "g":
                n = blob[p]
                fields[code] = blob[p + 1:p + 1 + n].decode()
                p += 2 + n
            elif sig == "u":
                p = pos + ((p - pos + 3) & ~3)
                (fields[code],) = struct.unpack(endian + "I", blob[p:p + 4])
                p += 4
            else:
                raise ValueError("header field type %r" % sig)
        yield endian, mtype, fields, blob[header_end:header_end + body_len]
        pos = header_end + body_len


def record(kind, body):
    return bytes([kind]) + struct.pack("<H", len(body)) + body


def main():
    out = sys.argv[1]
    smpsim, smpgwctl = os.environ["SMPSIM"], os.environ["SMPGWCTL"]
    os.makedirs(out, exist_ok=True)
    lines = subprocess.check_output(["dbus-daemon", "--config-file=" + BUS_CONF, "--fork",
                                     "--print-address=1", "--print-pid=1"]).decode().split("\n")
    address, bus_pid = lines[0].strip(), int(lines[1].strip())
    tmp = tempfile.TemporaryDirectory(prefix="bluez-seeds-")
    capture = os.path.join(tmp.name, "capture")
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address)
    sim = mon = None
    try:
        with open(capture, "wb") as f:
            mon = subprocess.Popen(["dbus-monitor", "--address", address, "--binary"], stdout=f)
        time.sleep(0.3)
        sim = subprocess.Popen([smpsim, "--ble", address, "--count", "2", "--ble-mtu", "65",
                                "--ble-resolve-ms", "40"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert sim.stdout.readline().strip() == b"ready"
        for args in (["scan", "--seconds", "1"],
                     ["--conn", "ble:C0:DE:00:00:00:01", "echo", "hello"],
                     ["--conn", "ble:C0:DE:00:00:00:01,mode=notify", "echo", "x" * 300],
                     ["--conn", "ble:C0:DE:00:00:00:00,mode=notify", "image", "list"],
                     ["--conn", "ble:C0:DE:00:00:00:00,mode=notify", "params"],
                     ["--conn", "ble:C0:DE:00:00:00:07", "--timeout", "300", "echo", "nobody"]):
            subprocess.run([smpgwctl, *args], env=env, capture_output=True, timeout=60)
        # What the discovery asks of a device it has not reported yet,
        # and the same of an adapter and a characteristic.
        for path, iface in (("/org/bluez/hci0/dev_C0_DE_00_00_00_01", "org.bluez.Device1"),
                            ("/org/bluez/hci0", "org.bluez.Adapter1"),
                            ("/org/bluez/hci0/dev_C0_DE_00_00_00_01/service0010/char0011",
                             "org.bluez.GattCharacteristic1")):
            subprocess.run(["busctl", "--address=" + address, "call", "org.bluez", path,
                            "org.freedesktop.DBus.Properties", "GetAll", "s", iface],
                           capture_output=True, timeout=30)
        time.sleep(0.3)
    finally:
        if sim:
            sim.send_signal(signal.SIGTERM)
            sim.wait(10)
        if mon:
            mon.send_signal(signal.SIGTERM)
            mon.wait(10)
        os.kill(bus_pid, signal.SIGTERM)

    seeds = {}
    values = []
    with open(capture, "rb") as f:
        blob = f.read()
    for endian, mtype, fields, body in messages(blob):
        if endian != "<":
            continue
        sig = fields.get(8, "")
        if mtype == 3:
            if sig == "s":
                seeds[record(error_kind(fields.get(4, "")), body)] = "error"
            continue
        kind = KINDS.get((mtype, sig))
        if kind is None:
            continue
        rec = record(kind, body)
        if len(rec) > 65536:
            continue
        seeds[rec] = {0: "managed-objects", 1: "interfaces-added", 2: "properties-changed", 3: "get-all",
                      5: "interfaces-removed"}[kind]
        if kind == 2 and b"Value" in body:
            values.append(rec)
    # Notifications in a row: whole SMP frames through the reassembler.
    for i in range(0, len(values), 12):
        joined = b"".join(values[i:i + 12])
        if len(joined) <= 65536:
            seeds[joined] = "notifications"
    for data, what in sorted(seeds.items(), key=lambda kv: kv[1]):
        name = "%s-%s" % (what, hashlib.sha1(data).hexdigest()[:10])
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print("%d seeds in %s" % (len(seeds), out))


if __name__ == "__main__":
    main()
