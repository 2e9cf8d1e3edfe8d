#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""smpsim's fake org.bluez driven the way BlueZ clients (bleak, bluetoothctl,
mcumgr over D-Bus) drive bluetoothd 5.66, on a private dbus-daemon
(tests/bus.conf), with python3-dbus.

What is checked comes from BlueZ's documentation (doc/adapter-api.txt,
doc/device-api.txt, doc/gatt-api.txt) and Zephyr's SMP Bluetooth
transport (smp_bt.c: write-without-response + notify on characteristic
DA2E7828-..., requests reassembled from the SMP header's length, answers
cut at ATT_MTU-3).  SMP frames are built here with struct and cbor2."""

import os
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402
from harness import Bus, Sim  # noqa: E402

harness.require_program(harness.DBUS_DAEMON, " for a private bus")
harness.require("cbor2", "python3-cbor2")
harness.require("dbus.mainloop.glib", "python3-dbus")
harness.require("gi.repository.GLib", "python3-gi")
import cbor2  # noqa: E402
import dbus  # noqa: E402
import dbus.mainloop.glib  # noqa: E402
from gi.repository import GLib  # noqa: E402

SMP_SERVICE = "8d53dc1d-1db7-4cd3-868b-8a527460aa84"
SMP_CHRC = "da2e7828-fbce-4e01-ae9e-261174997c48"
ADAPTER = "org.bluez.Adapter1"
DEVICE = "org.bluez.Device1"
CHRC = "org.bluez.GattCharacteristic1"
SERVICE = "org.bluez.GattService1"
PROPS = "org.freedesktop.DBus.Properties"
OM = "org.freedesktop.DBus.ObjectManager"
MTU = 247

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)


def dev_path(index, adapter=0):
    return "/org/bluez/hci%d/dev_C0_DE_00_00_%02X_%02X" % (adapter, index >> 8, index & 0xFF)


def chrc_path(index, adapter=0):
    return dev_path(index, adapter) + "/service0010/char0011"


def smp_frame(op, group, cmd, body, seq, version=1):
    payload = cbor2.dumps(body)
    return struct.pack(">BBHHBB", op | (version << 3), 0, len(payload), group, seq, cmd) + payload


def smp_parse(frame):
    b0, _flags, length, group, seq, cmd = struct.unpack(">BBHHBB", frame[:8])
    assert len(frame) == 8 + length, (len(frame), length)
    return {"op": b0 & 7, "group": group, "seq": seq, "id": cmd, "body": cbor2.loads(frame[8:])}


class Reassembler:
    """Rebuilds SMP frames from notifications by the header's length."""

    def __init__(self):
        self.buf = b""
        self.frames = []
        self.pieces = []

    def feed(self, piece):
        self.pieces.append(len(piece))
        self.buf += piece
        while len(self.buf) >= 8:
            n = 8 + struct.unpack(">H", self.buf[2:4])[0]
            if len(self.buf) < n:
                break
            self.frames.append(self.buf[:n])
            self.buf = self.buf[n:]


class BleTest(unittest.TestCase):
    count = 8
    sim_args = ()

    def setUp(self):
        self.pbus = Bus()
        self.sim = Sim("--ble", self.pbus.address, "--ble-resolve-ms", "60", "--ble-supervision-ms", "150",
                       "--boot-ms", "100", "--swap-ms", "100", "--reset-ms", "50",
                       *self.sim_args, count=self.count, udp=False)
        self.bus = dbus.bus.BusConnection(self.pbus.address)
        self.events = []
        self.bus.add_signal_receiver(self._signal, bus_name="org.bluez", member_keyword="member",
                                     path_keyword="path", interface_keyword="iface")
        self.om = dbus.Interface(self.bus.get_object("org.bluez", "/"), OM)
        self.adapter = dbus.Interface(self.bus.get_object("org.bluez", "/org/bluez/hci0"), ADAPTER)

    def tearDown(self):
        self.bus.close()
        rc = self.sim.stop()
        self.pbus.stop()
        self.assertEqual(rc, 0)

    # ---- helpers ----

    def _signal(self, *args, member=None, path=None, iface=None):
        self.events.append((member, str(path), iface, args))

    def pump(self, seconds):
        deadline = time.monotonic() + seconds
        ctx = GLib.MainContext.default()
        while time.monotonic() < deadline:
            if not ctx.iteration(False):
                time.sleep(0.002)

    def wait(self, pred, timeout=5.0, what="condition"):
        deadline = time.monotonic() + timeout
        ctx = GLib.MainContext.default()
        while time.monotonic() < deadline:
            r = pred()
            if r:
                return r
            if not ctx.iteration(False):
                time.sleep(0.002)
        self.fail("timed out waiting for " + what)

    def changed(self, path, iface, prop, value=None):
        """Index of the first PropertiesChanged of prop (with value) on path."""
        for i, (member, p, _i, args) in enumerate(self.events):
            if member == "PropertiesChanged" and p == path and args[0] == iface and prop in args[1]:
                if value is None or args[1][prop] == value:
                    return i + 1
        return 0

    def added(self, path, iface):
        for i, (member, _p, _i, args) in enumerate(self.events):
            if member == "InterfacesAdded" and str(args[0]) == path and iface in args[1]:
                return i + 1
        return 0

    def removed(self, path, iface):
        for i, (member, _p, _i, args) in enumerate(self.events):
            if member == "InterfacesRemoved" and str(args[0]) == path and iface in args[1]:
                return i + 1
        return 0

    def prop(self, path, iface, name):
        return dbus.Interface(self.bus.get_object("org.bluez", path), PROPS).Get(iface, name)

    def discover(self, flt=None):
        self.adapter.SetDiscoveryFilter(flt if flt is not None else
                                        {"Transport": "le", "UUIDs": dbus.Array([SMP_SERVICE], signature="s")})
        self.adapter.StartDiscovery()
        self.wait(lambda: self.changed("/org/bluez/hci0", ADAPTER, "Discovering", True), what="Discovering")

    def connect(self, index=0):
        path = dev_path(index)
        self.wait(lambda: self.added(path, DEVICE), what="device %d" % index)
        dev = dbus.Interface(self.bus.get_object("org.bluez", path), DEVICE)
        done = []
        dev.Connect(reply_handler=lambda: done.append(None), error_handler=lambda e: done.append(e),
                    timeout=10)
        self.wait(lambda: done, what="Connect reply")
        if done[0] is not None:
            raise done[0]
        self.wait(lambda: self.changed(path, DEVICE, "ServicesResolved", True), what="ServicesResolved")
        return dev

    def call(self, method, *args, **kw):
        """An async call pumped by the main loop (our own bus serves signals meanwhile)."""
        done = []
        method(*args, reply_handler=lambda *r: done.append(("ok", r)),
               error_handler=lambda e: done.append(("err", e)), timeout=10, **kw)
        self.wait(lambda: done, what="reply")
        if done[0][0] == "err":
            raise done[0][1]
        r = done[0][1]
        return r[0] if len(r) == 1 else r

    def assert_dbus_error(self, name, fn, *args, message=None):
        try:
            fn(*args)
        except dbus.exceptions.DBusException as e:
            self.assertEqual(e.get_dbus_name(), name, e)
            if message is not None:
                self.assertEqual(e.get_dbus_message(), message)
            return e
        self.fail("expected " + name)


class Discovery(BleTest):
    def test_filter_and_devices(self):
        self.assertEqual(sorted(self.adapter.GetDiscoveryFilters()),
                         sorted(["UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable",
                                 "Pattern"]))
        # no device before discovery
        objs = self.om.GetManagedObjects()
        self.assertEqual([str(p) for p in objs], ["/org/bluez/hci0"])
        self.assertTrue(objs["/org/bluez/hci0"][ADAPTER]["Powered"])
        # RSSI is reported above the threshold only: smpsim's device i has -40 - i
        self.discover({"Transport": "le", "UUIDs": dbus.Array([SMP_SERVICE.upper()], signature="s"),
                       "RSSI": dbus.Int16(-45), "DuplicateData": False})
        self.wait(lambda: all(self.added(dev_path(i), DEVICE) for i in range(5)), what="devices 0..4")
        self.pump(0.4)
        for i in range(5, self.count):
            self.assertFalse(self.added(dev_path(i), DEVICE), i)
        props = self.events[self.added(dev_path(3), DEVICE) - 1][3][1][DEVICE]
        self.assertEqual(props["Address"], "C0:DE:00:00:00:03")
        self.assertEqual(props["AddressType"], "random")
        self.assertEqual(props["Name"], "smpsim-0003")
        self.assertEqual(props["Alias"], "smpsim-0003")
        self.assertEqual(props["RSSI"], -43)
        self.assertIn(SMP_SERVICE, props["UUIDs"])
        self.assertFalse(props["Paired"])
        self.assertFalse(props["Connected"])
        self.assertFalse(props["ServicesResolved"])
        self.assertEqual(str(props["Adapter"]), "/org/bluez/hci0")
        objs = self.om.GetManagedObjects()
        self.assertEqual(len([p for p in objs if DEVICE in objs[p]]), 5)
        # a second StartDiscovery from the same client
        self.assert_dbus_error("org.bluez.Error.InProgress", self.adapter.StartDiscovery)
        # a filter for another service finds nothing new
        self.adapter.StopDiscovery()
        self.wait(lambda: self.changed("/org/bluez/hci0", ADAPTER, "Discovering", False), what="stopped")
        # RSSI is invalidated when discovery stops
        self.wait(lambda: any(m == "PropertiesChanged" and p == dev_path(0) and "RSSI" in a[2]
                              for m, p, _i, a in self.events), what="RSSI invalidated")
        self.assert_dbus_error("org.bluez.Error.Failed", self.adapter.StopDiscovery)
        self.assert_dbus_error("org.bluez.Error.InvalidArguments", self.adapter.SetDiscoveryFilter,
                               {"Transport": "radio"})
        self.assert_dbus_error("org.bluez.Error.InvalidArguments", self.adapter.SetDiscoveryFilter,
                               {"Bogus": True})
        self.adapter.SetDiscoveryFilter({"UUIDs": dbus.Array(["180d"], signature="s")})
        self.adapter.StartDiscovery()
        self.pump(0.4)
        self.assertFalse(self.added(dev_path(6), DEVICE))
        self.adapter.StopDiscovery()
        # RemoveDevice
        self.adapter.RemoveDevice(dev_path(1))
        self.wait(lambda: self.removed(dev_path(1), DEVICE), what="removed")
        self.assert_dbus_error("org.bluez.Error.DoesNotExist", self.adapter.RemoveDevice, dev_path(1))

    def test_pattern_and_temporary(self):
        self.sim.stop()
        self.pbus.stop()
        self.pbus = Bus()
        self.sim = Sim("--ble", self.pbus.address, "--ble-temporary-ms", "300", count=4, udp=False)
        self.bus.close()
        self.bus = dbus.bus.BusConnection(self.pbus.address)
        self.bus.add_signal_receiver(self._signal, bus_name="org.bluez", member_keyword="member",
                                     path_keyword="path", interface_keyword="iface")
        self.adapter = dbus.Interface(self.bus.get_object("org.bluez", "/org/bluez/hci0"), ADAPTER)
        self.discover({"Pattern": "smpsim-0002"})
        self.wait(lambda: self.added(dev_path(2), DEVICE), what="device 2")
        self.pump(0.3)
        self.assertFalse(self.added(dev_path(1), DEVICE))
        self.adapter.StopDiscovery()
        # an unconnected device goes TemporaryTimeout after it was last seen
        self.wait(lambda: self.removed(dev_path(2), DEVICE), timeout=3, what="temporary device removed")


class Sessions(BleTest):
    sim_args = ("--ble-adapters", "2")

    def test_discovery_ends_with_its_client(self):
        other = dbus.bus.BusConnection(self.pbus.address)
        dbus.Interface(other.get_object("org.bluez", "/org/bluez/hci0"), ADAPTER).StartDiscovery()
        self.wait(lambda: self.changed("/org/bluez/hci0", ADAPTER, "Discovering", True), what="Discovering")
        # our own StopDiscovery does not end someone else's session
        self.assert_dbus_error("org.bluez.Error.Failed", self.adapter.StopDiscovery)
        other.close()
        self.wait(lambda: self.changed("/org/bluez/hci0", ADAPTER, "Discovering", False), what="session gone")

    def test_two_adapters_one_connection(self):
        objs = self.om.GetManagedObjects()
        self.assertIn("/org/bluez/hci1", [str(p) for p in objs])
        self.assertEqual(objs["/org/bluez/hci1"][ADAPTER]["Address"], "00:AA:01:00:00:01")
        a1 = dbus.Interface(self.bus.get_object("org.bluez", "/org/bluez/hci1"), ADAPTER)
        a1.StartDiscovery()
        self.discover()
        self.wait(lambda: self.added(dev_path(2, 1), DEVICE), what="device on hci1")
        self.connect(2)
        dev1 = dbus.Interface(self.bus.get_object("org.bluez", dev_path(2, 1)), DEVICE)
        e = self.assert_dbus_error("org.bluez.Error.Failed", dev1.Connect)
        self.assertEqual(e.get_dbus_message(), "le-connection-abort-by-local")
        self.assertFalse(self.prop(dev_path(2, 1), DEVICE, "Connected"))
        self.assertEqual(self.sim.control("ble-state 2")["adapter"], 0)


class Gatt(BleTest):
    def test_connect_resolve_disconnect(self):
        self.discover()
        path = dev_path(0)
        dev = self.connect(0)
        i_connected = self.changed(path, DEVICE, "Connected", True)
        i_service = self.added(path + "/service0010", SERVICE)
        i_chrc = self.added(chrc_path(0), CHRC)
        i_resolved = self.changed(path, DEVICE, "ServicesResolved", True)
        self.assertTrue(0 < i_connected < i_service < i_chrc < i_resolved,
                        (i_connected, i_service, i_chrc, i_resolved))
        svc = self.events[i_service - 1][3][1][SERVICE]
        self.assertEqual(svc["UUID"], SMP_SERVICE)
        self.assertTrue(svc["Primary"])
        self.assertEqual(str(svc["Device"]), path)
        ch = self.events[i_chrc - 1][3][1][CHRC]
        self.assertEqual(ch["UUID"], SMP_CHRC)
        self.assertEqual(list(ch["Flags"]), ["write-without-response", "notify"])
        self.assertEqual(ch["MTU"], MTU)
        self.assertFalse(ch["Notifying"])
        self.assertFalse(ch["WriteAcquired"])
        self.assertFalse(ch["NotifyAcquired"])
        self.assertNotIn("Value", ch)  # nothing cached yet
        self.assertTrue(self.prop(path, DEVICE, "Connected"))
        # Connect again on an LE-connected device succeeds (device.c)
        dev.Connect()
        self.assert_dbus_error("org.bluez.Error.NotPermitted",
                               dbus.Interface(self.bus.get_object("org.bluez", chrc_path(0)), CHRC).ReadValue, {})
        n = len(self.events)
        self.call(dev.Disconnect)
        tail = self.events[n:]
        order = [(m, a[1].keys() if m == "PropertiesChanged" else None) for m, p, _i, a in tail
                 if p in (path,) or m == "InterfacesRemoved"]
        self.assertTrue(self.changed(path, DEVICE, "ServicesResolved", False))
        self.assertTrue(self.changed(path, DEVICE, "Connected", False))
        self.assertTrue(self.removed(chrc_path(0), CHRC))
        self.assertLess(self.changed(path, DEVICE, "ServicesResolved", False),
                        self.changed(path, DEVICE, "Connected", False), order)
        self.assertLess(self.changed(path, DEVICE, "Connected", False), self.removed(chrc_path(0), CHRC))
        objs = self.om.GetManagedObjects()
        self.assertNotIn(chrc_path(0), [str(p) for p in objs])
        # the device stays: Connect made it non-temporary
        self.assertIn(path, [str(p) for p in objs])
        dev.Disconnect()  # not connected: success


class GattClient(BleTest):
    """Connected to device 0, with helpers to talk SMP over its characteristic."""
    sim_args = ("--ble-conn-interval-ms", "2", "--ble-notify-per-event", "3")

    def setUp(self):
        super().setUp()
        self.discover()
        self.dev = self.connect(0)
        self.chrc = dbus.Interface(self.bus.get_object("org.bluez", chrc_path(0)), CHRC)
        self.seq = 0

    def next_seq(self):
        self.seq = (self.seq + 1) & 0xFF
        return self.seq

    # -- AcquireWrite / AcquireNotify --

    def acquire(self):
        wfd, wmtu = self.chrc.AcquireWrite({})
        nfd, nmtu = self.chrc.AcquireNotify({})
        self.assertEqual((wmtu, nmtu), (MTU, MTU))
        w = socket.socket(fileno=wfd.take())
        n = socket.socket(fileno=nfd.take())
        self.assertEqual(w.type, socket.SOCK_SEQPACKET)
        n.settimeout(5)
        return w, n

    def fd_request(self, w, n, frame):
        for off in range(0, len(frame), MTU - 3):
            w.send(frame[off:off + MTU - 3])
        r = Reassembler()
        while not r.frames:
            piece = n.recv(4096)
            self.assertTrue(piece, "notify socket hung up")
            self.assertLessEqual(len(piece), MTU - 3)
            r.feed(piece)
        return smp_parse(r.frames[0]), r


class SmpOverGatt(GattClient):
    def test_acquired_sockets(self):
        w, n = self.acquire()
        self.wait(lambda: self.changed(chrc_path(0), CHRC, "WriteAcquired", True), what="WriteAcquired")
        self.wait(lambda: self.changed(chrc_path(0), CHRC, "NotifyAcquired", True), what="NotifyAcquired")
        self.assertTrue(self.prop(chrc_path(0), CHRC, "Notifying"))
        seq = self.next_seq()
        rsp, _ = self.fd_request(w, n, smp_frame(2, 0, 0, {"d": "hello"}, seq))
        self.assertEqual((rsp["op"], rsp["group"], rsp["id"], rsp["seq"]), (3, 0, 0, seq))
        self.assertEqual(rsp["body"], {"r": "hello"})
        rsp, _ = self.fd_request(w, n, smp_frame(0, 0, 6, {}, self.next_seq()))
        self.assertEqual(rsp["body"], {"buf_size": 2048, "buf_count": 4})
        # a request spread over several writes, an answer over several notifications
        text = "x" * 1200
        rsp, r = self.fd_request(w, n, smp_frame(2, 0, 0, {"d": text}, self.next_seq()))
        self.assertEqual(rsp["body"], {"r": text})
        self.assertGreaterEqual(len(r.pieces), 5)
        self.assertTrue(all(p == MTU - 3 for p in r.pieces[:-1]), r.pieces)
        # a datagram larger than MTU-3 is dropped (BlueZ write-without-response fails)
        w.send(smp_frame(2, 0, 0, {"d": "y" * 400}, self.next_seq()))
        # while acquired: WriteValue and StartNotify are NotPermitted, a second acquire too
        self.assert_dbus_error("org.bluez.Error.NotPermitted", self.chrc.WriteValue,
                               dbus.Array(b"\0" * 8, signature="y"), {"type": "command"})
        self.assert_dbus_error("org.bluez.Error.NotPermitted", self.chrc.StartNotify)
        self.assert_dbus_error("org.bluez.Error.NotPermitted", self.chrc.AcquireWrite, {})
        self.assert_dbus_error("org.bluez.Error.NotPermitted", self.chrc.AcquireNotify, {})
        rsp, _ = self.fd_request(w, n, smp_frame(2, 0, 0, {"d": "after"}, self.next_seq()))
        self.assertEqual(rsp["body"], {"r": "after"})
        st = self.sim.control("ble-state 0")
        self.assertEqual(st["stats"]["dropped_writes"], 1)
        # closing the write socket releases it
        w.close()
        self.wait(lambda: self.changed(chrc_path(0), CHRC, "WriteAcquired", False), what="write released")
        self.chrc.WriteValue(dbus.Array(smp_frame(0, 0, 6, {}, self.next_seq()), signature="y"),
                             {"type": "command"})
        n.settimeout(5)
        self.assertEqual(smp_parse(n.recv(4096))["body"]["buf_count"], 4)
        # disconnect: the notify socket hangs up
        self.call(self.dev.Disconnect)
        self.assertEqual(n.recv(4096), b"")
        n.close()

    # -- WriteValue / StartNotify --

    def value_request(self, frame, typ="command"):
        start = len(self.events)
        for off in range(0, len(frame), MTU - 3):
            self.chrc.WriteValue(dbus.Array(frame[off:off + MTU - 3], signature="y"), {"type": typ})
        r = Reassembler()
        seen = [start]

        def got():
            for m, p, _i, a in self.events[seen[0]:]:
                seen[0] += 1
                if m == "PropertiesChanged" and p == chrc_path(0) and a[0] == CHRC and "Value" in a[1]:
                    r.feed(bytes(a[1]["Value"]))
            return r.frames
        self.wait(got, what="answer")
        return smp_parse(r.frames[0]), r

    def test_write_value_start_notify(self):
        self.chrc.StartNotify()
        self.wait(lambda: self.changed(chrc_path(0), CHRC, "Notifying", True), what="Notifying")
        self.chrc.StartNotify()  # the same client again: success
        seq = self.next_seq()
        rsp, _ = self.value_request(smp_frame(2, 0, 0, {"d": "over D-Bus"}, seq))
        self.assertEqual((rsp["op"], rsp["seq"], rsp["body"]), (3, seq, {"r": "over D-Bus"}))
        rsp, _ = self.value_request(smp_frame(0, 0, 6, {}, self.next_seq()))
        self.assertEqual(rsp["body"], {"buf_size": 2048, "buf_count": 4})
        text = "z" * 700
        rsp, r = self.value_request(smp_frame(2, 0, 0, {"d": text}, self.next_seq()))
        self.assertEqual(rsp["body"], {"r": text})
        self.assertGreaterEqual(len(r.pieces), 3)
        # identical notifications are not merged: the last Value is cached
        self.assertEqual(bytes(self.prop(chrc_path(0), CHRC, "Value"))[-10:], r.frames[0][-10:])
        # write requests go through too (Zephyr does not check the properties)
        rsp, _ = self.value_request(smp_frame(2, 0, 0, {"d": "req"}, self.next_seq()), typ="request")
        self.assertEqual(rsp["body"], {"r": "req"})
        # a command larger than MTU-3, an offset, an unknown type
        self.assert_dbus_error("org.bluez.Error.Failed", self.chrc.WriteValue,
                               dbus.Array(b"\0" * (MTU - 2), signature="y"), {"type": "command"},
                               message="Failed to initiate write")
        self.assert_dbus_error("org.bluez.Error.NotSupported", self.chrc.WriteValue,
                               dbus.Array(b"\0", signature="y"), {"type": "command", "offset": dbus.UInt16(1)})
        self.assert_dbus_error("org.bluez.Error.InvalidArguments", self.chrc.WriteValue,
                               dbus.Array(b"\0", signature="y"), {"offset": dbus.UInt32(1)})
        # AcquireNotify while a StartNotify session exists
        self.assert_dbus_error("org.bluez.Error.InProgress", self.chrc.AcquireNotify, {})
        self.chrc.StopNotify()
        self.wait(lambda: self.changed(chrc_path(0), CHRC, "Notifying", False), what="Notifying off")
        self.assert_dbus_error("org.bluez.Error.Failed", self.chrc.StopNotify)
        # not subscribed: the device sends nothing
        n = len(self.events)
        self.chrc.WriteValue(dbus.Array(smp_frame(0, 0, 6, {}, self.next_seq()), signature="y"), {})
        self.pump(0.3)
        self.assertFalse([e for e in self.events[n:] if "Value" in (e[3][1] if e[0] == "PropertiesChanged" else {})])


class SmpOverGattUnreassembled(GattClient):
    """Zephyr without CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY (its default) and
    without the MCUmgr params command: smp_bt_chr_write() takes each write
    as one whole SMP packet (zephyr subsys/mgmt/mcumgr/transport/src/smp_bt.c)."""
    sim_args = GattClient.sim_args + ("--no-reassembly", "--no-params")

    def test_each_write_a_packet(self):
        w, n = self.acquire()
        # a packet in one write is answered as usual
        rsp, _ = self.fd_request(w, n, smp_frame(2, 0, 0, {"d": "hello"}, self.next_seq()))
        self.assertEqual(rsp["body"], {"r": "hello"})
        # no params command: MGMT_ERR_ENOTSUP (8)
        rsp, _ = self.fd_request(w, n, smp_frame(0, 0, 6, {}, self.next_seq()))
        self.assertEqual(rsp["body"], {"rc": 8})
        # a packet over two writes: its first piece is refused as short,
        # MGMT_ERR_ECORRUPT (9) with the request's header
        seq = self.next_seq()
        frame = smp_frame(2, 0, 0, {"d": "x" * 300}, seq)
        self.assertGreater(len(frame), MTU - 3)
        rsp, _ = self.fd_request(w, n, frame)
        self.assertEqual((rsp["seq"], rsp["body"]), (seq, {"rc": 9}))
        w.close()
        n.close()


class Faults(BleTest):
    def test_connect_fail(self):
        self.discover()
        self.wait(lambda: self.added(dev_path(0), DEVICE), what="device")
        self.assertTrue(self.sim.control("ble-fault 0 connect-fail=2")["ok"])
        for _ in range(2):
            with self.assertRaises(dbus.exceptions.DBusException) as cm:
                self.connect(0)
            self.assertEqual(cm.exception.get_dbus_name(), "org.bluez.Error.Failed")
            self.assertEqual(cm.exception.get_dbus_message(), "le-connection-abort-by-local")
        self.connect(0)
        self.assertEqual(self.sim.control("ble-state 0")["stats"]["connect_failures"], 2)

    def test_connect_in_progress_and_cancel(self):
        self.sim.control("ble-fault 0 resolve-late=0")
        self.discover()
        self.wait(lambda: self.added(dev_path(0), DEVICE), what="device")
        dev = dbus.Interface(self.bus.get_object("org.bluez", dev_path(0)), DEVICE)
        first = []
        dev.Connect(reply_handler=lambda: first.append(None), error_handler=lambda e: first.append(e))
        # device.c device_connect_le(): -EALREADY while an attempt is pending
        e = self.assert_dbus_error("org.bluez.Error.Failed", lambda: self.call(dev.Connect))
        self.assertEqual(e.get_dbus_message(), os.strerror(114))
        self.call(dev.Disconnect)
        self.wait(lambda: first, what="cancelled Connect")
        self.assertEqual(first[0].get_dbus_name(), "org.bluez.Error.Failed")

    def test_resolve_late_and_early(self):
        self.sim.control("ble-fault 0 resolve-late=400")
        self.sim.control("ble-fault 1 resolved-early")
        self.discover()
        t0 = time.monotonic()
        self.connect(0)
        self.assertGreater(time.monotonic() - t0, 0.4)
        self.assertLess(self.added(chrc_path(0), CHRC), self.changed(dev_path(0), DEVICE, "ServicesResolved", True))
        # bluez/bluez#1489: ServicesResolved before the objects
        self.connect(1)
        self.assertFalse(self.added(chrc_path(1), CHRC))
        self.wait(lambda: self.added(chrc_path(1), CHRC), what="late objects")
        self.assertGreater(self.added(chrc_path(1), CHRC), self.changed(dev_path(1), DEVICE, "ServicesResolved", True))

    def test_acquire_refused(self):
        self.sim.control("ble-fault 0 acquire-write=notpermitted")
        self.sim.control("ble-fault 0 acquire-notify=failed")
        self.discover()
        self.connect(0)
        chrc = dbus.Interface(self.bus.get_object("org.bluez", chrc_path(0)), CHRC)
        self.assert_dbus_error("org.bluez.Error.NotPermitted", chrc.AcquireWrite, {})
        self.assert_dbus_error("org.bluez.Error.Failed", chrc.AcquireNotify, {})
        self.sim.control("ble-clear-faults 0")
        fd, mtu = chrc.AcquireWrite({})
        os.close(fd.take())

    def test_notify_stuck(self):
        """BlueZ before 5.84 after an AcquireNotify that failed half way:
        AcquireNotify and StartNotify are both refused, as long as it lasts."""
        self.assertTrue(self.sim.control("ble-fault 0 acquire-notify=stuck")["ok"])
        self.discover()
        self.connect(0)
        chrc = dbus.Interface(self.bus.get_object("org.bluez", chrc_path(0)), CHRC)
        for fn, args in ((chrc.AcquireNotify, ({},)), (chrc.StartNotify, ())):
            self.assert_dbus_error("org.bluez.Error.NotPermitted", fn, *args, message="Notify acquired")
        self.assertFalse(self.sim.control("ble-fault 0 acquire-write=stuck")["ok"])
        self.assertTrue(self.sim.control("ble-fault 0 acquire-notify=ok")["ok"])
        chrc.StartNotify()

    def test_disconnect_mid_upload(self):
        self.sim.control("ble-fault 0 disconnect-at=1500")
        self.discover()
        self.connect(0)
        chrc = dbus.Interface(self.bus.get_object("org.bluez", chrc_path(0)), CHRC)
        wfd, _ = chrc.AcquireWrite({})
        nfd, _ = chrc.AcquireNotify({})
        w = socket.socket(fileno=wfd.take())
        n = socket.socket(fileno=nfd.take())
        n.settimeout(5)
        image = struct.pack("<I", 0x96F3B83D) + bytes(4092)
        off, seq, hung_up = 0, 0, False
        while off < len(image):
            seq += 1
            body = {"off": off, "data": image[off:off + 400]}
            if off == 0:
                body.update({"image": 0, "len": len(image)})
            frame = smp_frame(2, 1, 1, body, seq & 0xFF)
            try:
                for i in range(0, len(frame), MTU - 3):
                    w.send(frame[i:i + MTU - 3])
            except OSError:
                hung_up = True
                break
            r = Reassembler()
            while not r.frames:
                piece = n.recv(4096)
                if not piece:
                    hung_up = True
                    break
                r.feed(piece)
            if hung_up:
                break
            off = smp_parse(r.frames[0])["body"]["off"]
        self.assertTrue(hung_up)
        self.assertGreaterEqual(off, 1500 - 400)
        self.assertLess(off, len(image))
        self.wait(lambda: self.changed(dev_path(0), DEVICE, "Connected", False), what="link lost")
        self.wait(lambda: self.removed(chrc_path(0), CHRC), what="objects removed")
        w.close()
        n.close()
        # the fault fires once: reconnecting works, and "ble-disconnect" drops the link now
        self.connect(0)
        self.sim.control("ble-disconnect 0")
        self.wait(lambda: len([e for e in self.events if e[0] == "PropertiesChanged" and e[1] == dev_path(0)
                               and e[3][1].get("Connected") is not None and not e[3][1]["Connected"]]) == 2,
                  what="second link loss")

    def test_disconnect_mid_upload_with_a_window(self):
        """smpgw's upload of a 4648-byte image: the first chunk alone, then
        the other two back to back.  Both are written before the device
        processed the one that crosses BYTES, and the upload is complete
        before that chunk's answer leaves; the link must drop when the
        device writes that chunk all the same, and its answer is lost with
        it.  (Checked only at writes and answers, the fault never fired.)"""
        self.sim.control("ble-fault 0 disconnect-at=2000")
        self.discover()
        self.connect(0)
        chrc = dbus.Interface(self.bus.get_object("org.bluez", chrc_path(0)), CHRC)
        wfd, _ = chrc.AcquireWrite({})
        nfd, _ = chrc.AcquireNotify({})
        w = socket.socket(fileno=wfd.take())
        n = socket.socket(fileno=nfd.take())
        n.settimeout(5)
        image = struct.pack("<I", 0x96F3B83D) + bytes(4644)

        def fragments(seq, off):
            body = {"off": off, "data": image[off:off + 1981]}
            if off == 0:
                body.update({"image": 0, "len": len(image)})
            frame = smp_frame(2, 1, 1, body, seq)
            return [frame[i:i + MTU - 3] for i in range(0, len(frame), MTU - 3)]

        def send(*chunks):
            # Built before the first write, so that the chunks follow each
            # other as closely as the socket allows.  The device may still
            # have taken the chunk that crosses BYTES, and dropped the link,
            # before the last fragment is written (a loaded machine); then
            # the write fails with EPIPE, which is the same link loss.
            pieces = [p for seq, off in chunks for p in fragments(seq, off)]
            try:
                for p in pieces:
                    w.send(p)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def answers():
            r = Reassembler()
            while True:
                piece = n.recv(4096)
                if not piece:
                    return r.frames, True
                r.feed(piece)
                if r.frames:
                    return r.frames, False

        send((0, 0))
        frames, hung_up = answers()
        self.assertEqual(([smp_parse(f)["body"]["off"] for f in frames], hung_up), ([1981], False))
        send((1, 1981), (2, 3962))
        frames, hung_up = answers()
        self.assertEqual((frames, hung_up), ([], True))
        st = self.sim.control("ble-state 0")
        self.assertEqual((st["stats"]["link_losses"], st["faults"]["disconnect_at"]), (1, -1), st)
        w.close()
        n.close()

    def test_power_off(self):
        self.discover()
        self.connect(0)
        self.wait(lambda: self.added(dev_path(3), DEVICE), what="device 3")
        props = dbus.Interface(self.bus.get_object("org.bluez", "/org/bluez/hci0"), PROPS)
        props.Set(ADAPTER, "Powered", False)
        self.wait(lambda: self.changed("/org/bluez/hci0", ADAPTER, "Powered", False), what="powered off")
        self.assertTrue(self.changed(dev_path(0), DEVICE, "Connected", False))
        self.assertTrue(self.changed("/org/bluez/hci0", ADAPTER, "Discovering", False))
        self.assertTrue(self.removed(dev_path(3), DEVICE))       # temporary
        self.assertFalse(self.removed(dev_path(0), DEVICE))      # connected once
        dev = dbus.Interface(self.bus.get_object("org.bluez", dev_path(0)), DEVICE)
        self.assert_dbus_error("org.bluez.Error.NotReady", dev.Connect)
        self.assert_dbus_error("org.bluez.Error.NotReady", self.adapter.StartDiscovery)
        self.assertTrue(self.sim.control("ble-power 0 on")["ok"])
        self.wait(lambda: self.changed("/org/bluez/hci0", ADAPTER, "Powered", True), what="powered on")
        self.sim.control("ble-power 0 off")
        self.wait(lambda: not self.prop("/org/bluez/hci0", ADAPTER, "Powered"), what="off again")
        props.Set(ADAPTER, "Powered", True)
        self.connect(0)


class LinkLimit(BleTest):
    """--ble-max-links: a controller that holds only so many links refuses
    the next Connect() the way bluetoothd 5.66 reports it (device.c
    att_connect_cb() turns the socket error into -ECONNABORTED)."""
    sim_args = ("--ble-adapters", "2", "--ble-max-links", "2")

    def refused(self, index, adapter=0):
        dev = dbus.Interface(self.bus.get_object("org.bluez", dev_path(index, adapter)), DEVICE)
        e = self.assert_dbus_error("org.bluez.Error.Failed", lambda: self.call(dev.Connect),
                                   message="le-connection-abort-by-local")
        self.assertFalse(self.prop(dev_path(index, adapter), DEVICE, "Connected"))
        return e

    def hci(self, index):
        return self.sim.control("ble-state 0")["adapters"][index]

    def test_limit_per_adapter(self):
        a1 = dbus.Interface(self.bus.get_object("org.bluez", "/org/bluez/hci1"), ADAPTER)
        a1.StartDiscovery()
        self.discover()
        self.assertEqual(self.hci(0), {"index": 0, "powered": True, "links": 0, "max_links": 2, "refused": 0})
        self.connect(0)
        self.connect(1)
        self.wait(lambda: self.added(dev_path(2), DEVICE), what="device 2")
        self.refused(2)
        self.assertEqual(self.hci(0), {"index": 0, "powered": True, "links": 2, "max_links": 2, "refused": 1})
        self.assertEqual(self.sim.control("ble-state 2")["stats"]["connect_failures"], 1)
        # the limit is the controller's: hci1 has links of its own
        self.wait(lambda: self.added(dev_path(3, 1), DEVICE), what="device 3 on hci1")
        self.call(dbus.Interface(self.bus.get_object("org.bluez", dev_path(3, 1)), DEVICE).Connect)
        self.assertTrue(self.prop(dev_path(3, 1), DEVICE, "Connected"))
        self.assertEqual(self.hci(1)["links"], 1)
        # raised at run time: the refused device connects
        self.assertEqual(self.sim.control("ble-set 0 max-links=3"), {"ok": True})
        self.connect(2)
        self.assertEqual(self.hci(0)["links"], 3)
        # lowered below what it holds: the links stay, new ones are refused
        self.assertEqual(self.sim.control("ble-set 0 max-links=1"), {"ok": True})
        self.pump(0.2)
        self.assertTrue(all(self.prop(dev_path(i), DEVICE, "Connected") for i in range(3)))
        self.call(dbus.Interface(self.bus.get_object("org.bluez", dev_path(0)), DEVICE).Disconnect)
        self.refused(0)
        self.assertEqual(self.hci(0)["refused"], 2)
        # no limit
        self.assertEqual(self.sim.control("ble-set all max-links=unlimited"), {"ok": True})
        self.assertIsNone(self.hci(0)["max_links"])
        self.assertIsNone(self.hci(1)["max_links"])
        self.call(dbus.Interface(self.bus.get_object("org.bluez", dev_path(0)), DEVICE).Connect)
        self.assertEqual(self.hci(0)["links"], 3)
        # what ble-set refuses
        for bad in ("ble-set 0", "ble-set 0 max-links=0", "ble-set 0 max-links=-1", "ble-set 0 max-links=10001",
                    "ble-set 0 mtu=3", "ble-set 2 max-links=1", "ble-set 0 max-links=1 bogus"):
            r = self.sim.control(bad)
            self.assertFalse(r["ok"], bad)
            self.assertTrue(r["error"], bad)
        self.assertIsNone(self.hci(0)["max_links"])


class LinkLimitDefault(BleTest):
    def test_unlimited(self):
        self.assertIsNone(self.sim.control("ble-state 0")["adapters"][0]["max_links"])
        self.discover()
        for i in range(5):
            self.connect(i)
        st = self.sim.control("ble-state 0")["adapters"][0]
        self.assertEqual((st["links"], st["refused"]), (5, 0))


class Reset(BleTest):
    def test_reset_disconnects_and_comes_back(self):
        # With an RSSI in a filter bluetoothd emits RSSI at every
        # advertising report; RSSI stays valid through the connection
        # (only the end of discovery invalidates it), so without one the
        # device's return would not show.
        self.discover({"Transport": "le", "UUIDs": dbus.Array([SMP_SERVICE], signature="s"),
                       "RSSI": dbus.Int16(-100)})
        self.connect(0)
        chrc = dbus.Interface(self.bus.get_object("org.bluez", chrc_path(0)), CHRC)
        chrc.StartNotify()
        start = len(self.events)
        chrc.WriteValue(dbus.Array(smp_frame(2, 0, 5, {}, 7), signature="y"), {"type": "command"})
        self.wait(lambda: any(m == "PropertiesChanged" and "Value" in a[1] for m, _p, _i, a in self.events[start:]),
                  what="reset answer")
        t0 = time.monotonic()
        self.wait(lambda: self.changed(dev_path(0), DEVICE, "Connected", False), what="link loss")
        self.wait(lambda: self.removed(chrc_path(0), CHRC), what="objects removed")
        self.assertLess(time.monotonic() - t0, 2)
        # down for the boot time: a Connect now waits until it advertises again
        n = len(self.events)
        self.wait(lambda: any(m == "PropertiesChanged" and p == dev_path(0) and "RSSI" in a[1]
                              for m, p, _i, a in self.events[n:]), what="seen again")
        self.connect(0)
        self.assertEqual(self.sim.state(0)["boot_count"], 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
