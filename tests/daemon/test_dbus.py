#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""smpgwd's D-Bus API (org.smpgw, dbus/org.smpgw.xml) against a running
daemon on a private dbus-daemon, with smpsim devices over UDP: every
method and its errors, the signals, the introspection against the XML
contract, a full push to three devices, smpgwctl's daemon mode, a mesh
distribution through smpsim's Distributor and its
Distribution1.Step signals, and the bus policy
(dbus/org.smpgw.conf) for an unprivileged caller.

Method calls go through python3-dbus; signals are read from
`busctl monitor --json=short` (python3-dbus needs a GLib main loop for
signals, and Debian's /usr/bin/python3 may lack gi)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(__file__))
import daemonharness  # noqa: E402
daemonharness.harness.require("dbus", "python3-dbus")
from daemonharness import Daemon, Sim, image_path  # noqa: E402
import mcuimg  # noqa: E402

import dbus  # noqa: E402

NAME = "org.smpgw"
ROOT = "/org/smpgw"
MANAGER = "org.smpgw.Manager1"
DEVICE = "org.smpgw.Device1"
IMAGE = "org.smpgw.Image1"
JOB = "org.smpgw.Job1"
ROLLOUT = "org.smpgw.Rollout1"
DISTRIBUTION = "org.smpgw.Distribution1"
PROPS = "org.freedesktop.DBus.Properties"
XML_PATH = os.path.join(daemonharness.SRCDIR, "dbus", "org.smpgw.xml")
POLICY_PATH = os.path.join(daemonharness.SRCDIR, "dbus", "org.smpgw.conf")

NEW_IMAGE = image_path("imgtool-ecdsa-p256.bin")      # version 1.2.3+4, unsigned check off
OTHER_IMAGE = image_path("imgtool-ed25519.bin")


class Monitor:
    """busctl monitor on the bus, messages from or to org.smpgw as JSON,
    collected by a thread."""

    def __init__(self, address):
        self.messages = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            ["stdbuf", "-oL", "busctl", "--address=" + address, "monitor", "--json=short", NAME],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("busctl monitor did not start")

    def _read(self):
        for line in self.proc.stdout:
            line = line.decode(errors="replace").strip()
            if line.startswith("Monitoring"):
                self.ready.set()
                continue
            if not line.startswith("{"):
                continue
            msg = json.loads(line)
            with self.lock:
                self.messages.append(msg)

    def signals(self, member, path=None):
        with self.lock:
            return [m for m in self.messages if m.get("type") == "signal" and m.get("member") == member
                    and (path is None or m.get("path") == path)]

    def wait_signal(self, predicate, timeout=30, what="signal"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for m in self.messages:
                    if m.get("type") == "signal" and predicate(m):
                        return m
            time.sleep(0.05)
        raise AssertionError("no %s in %d s" % (what, timeout))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stdout.close()


def dbus_error_name(exc):
    return exc.get_dbus_name() if isinstance(exc, dbus.exceptions.DBusException) else None


class TestDBus(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # 1 KiB/s links: a push takes seconds, long enough to see it
        # running (Busy) and its progress signals.
        cls.sim = Sim("--bandwidth", "1k", count=4)
        cls.daemon = Daemon()
        cls.bus = dbus.bus.BusConnection(cls.daemon.bus.address)
        cls.monitor = Monitor(cls.daemon.bus.address)
        cls.conns = ["udp:127.0.0.1:%d" % (cls.sim.port + i) for i in range(4)]

    @classmethod
    def tearDownClass(cls):
        cls.monitor.stop()
        cls.bus.close()
        rc = cls.daemon.stop()
        cls.sim.stop()
        if rc != 0:
            raise RuntimeError("smpgwd exited with %d" % rc)

    # ---- helpers ----

    def obj(self, path, interface):
        return dbus.Interface(self.bus.get_object(NAME, path), interface)

    def manager(self):
        return self.obj(ROOT, MANAGER)

    def get(self, path, interface, prop):
        return self.obj(path, PROPS).Get(interface, prop)

    def get_all(self, path, interface):
        return self.obj(path, PROPS).GetAll(interface)

    def managed(self):
        return self.obj(ROOT, "org.freedesktop.DBus.ObjectManager").GetManagedObjects()

    def paths_with(self, interface):
        return sorted(str(p) for p, ifaces in self.managed().items() if interface in ifaces)

    def assertDBusError(self, name, fn, *args, **kw):
        with self.assertRaises(dbus.exceptions.DBusException) as cm:
            fn(*args, **kw)
        self.assertEqual(dbus_error_name(cm.exception), name, cm.exception.get_dbus_message())
        # the message is a sentence, not just a name
        self.assertTrue(cm.exception.get_dbus_message(), "error without a message")
        return cm.exception

    def add_image(self, path, name=None):
        with open(path, "rb") as f:
            return self.manager().AddImage(dbus.types.UnixFd(f.fileno()), name or os.path.basename(path))

    def ensure_devices(self):
        return [str(self.manager().AddDevice(c)) for c in self.conns]

    def wait_job_final(self, path, timeout=120):
        def final():
            state = str(self.get(path, JOB, "State"))
            return state if state in ("succeeded", "failed", "cancelled") else None
        return self.daemon.wait_for(final, timeout=timeout, what="job %s to finish" % path)

    # ---- tests (they share one daemon and run in name order) ----

    def test_01_name_and_manager_properties(self):
        owner = self.bus.get_name_owner(NAME)
        self.assertTrue(owner.startswith(":"))
        self.assertRegex(str(self.get(ROOT, MANAGER, "Version")), r"^\d+\.\d+")
        transports = [str(t) for t in self.get(ROOT, MANAGER, "Transports")]
        self.assertIn("udp", transports)
        self.assertEqual(int(self.get(ROOT, MANAGER, "JobsRunning")), 0)

    def test_02_add_image(self):
        m = self.manager()
        # a pipe whose writer closed without writing: an empty image
        r, w = os.pipe()
        os.close(w)
        try:
            e = self.assertDBusError("org.smpgw.Error.InvalidImage", m.AddImage, dbus.types.UnixFd(r), "pipe")
            self.assertIn("empty", e.get_dbus_message())
        finally:
            os.close(r)
        # a regular file that is no MCUboot image
        with tempfile.TemporaryFile() as f:
            f.write(b"this is not firmware\n" * 100)
            f.flush()
            e = self.assertDBusError("org.smpgw.Error.InvalidImage", m.AddImage,
                                     dbus.types.UnixFd(f.fileno()), "junk.bin")
            self.assertIn("MCUboot", e.get_dbus_message())
        # a name with a control character
        with open(NEW_IMAGE, "rb") as f:
            self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", m.AddImage,
                                 dbus.types.UnixFd(f.fileno()), "bad\nname")
        self.assertEqual(self.paths_with(IMAGE), [])

        path, image_id, created = self.add_image(NEW_IMAGE)
        self.assertTrue(created)
        self.assertEqual(len(image_id), 64)
        self.assertEqual(str(path), "%s/image/%s" % (ROOT, image_id))
        props = self.get_all(path, IMAGE)
        self.assertEqual(props["Id"], image_id)
        self.assertEqual(props["Name"], "imgtool-ecdsa-p256.bin")
        self.assertEqual(props["Version"], "1.2.3+4")
        self.assertEqual(props["Size"], os.path.getsize(NEW_IMAGE))
        self.assertFalse(props["InUse"])
        self.monitor.wait_signal(lambda s: s["member"] == "InterfacesAdded" and s["payload"]["data"][0] == path,
                                 what="InterfacesAdded for the image")
        # the same image again, from a file offset at its end: the whole
        # file is read anyway, and nothing new is stored
        with open(NEW_IMAGE, "rb") as f:
            f.seek(0, os.SEEK_END)
            again = m.AddImage(dbus.types.UnixFd(f.fileno()), "")
        self.assertEqual((str(again[0]), str(again[1]), bool(again[2])), (str(path), image_id, False))
        TestDBus.image_id = str(image_id)

    def test_03_add_device(self):
        m = self.manager()
        paths = self.ensure_devices()
        self.assertEqual(len(set(paths)), 4)
        for p in paths:
            self.assertRegex(p, r"^/org/smpgw/device/[1-9][0-9]*$")
            self.monitor.wait_signal(lambda s, p=p: s["member"] == "InterfacesAdded" and s["payload"]["data"][0] == p,
                                     what="InterfacesAdded for " + p)
        # known already: the same object
        self.assertEqual(str(m.AddDevice(self.conns[0])), paths[0])
        self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", m.AddDevice, "not a connection string")
        self.assertDBusError("org.smpgw.Error.NotFound", m.AddDevice, "nosuchtransport:127.0.0.1:1")
        m.Scan()
        # the probe reads the device: online, its slots, its parameters
        for p in paths:
            self.daemon.wait_for(lambda p=p: str(self.get(p, DEVICE, "State")) == "online", what=p + " online")
            props = self.get_all(p, DEVICE)
            self.assertIn(props["Conn"], self.conns)
            self.assertEqual(props["Transport"], "udp")
            self.assertEqual(props["Job"], "/")
            self.assertGreater(props["BufSize"], 0)
            self.assertGreater(props["LastProbe"], 0)
            self.assertEqual(props["Bootloader"], "MCUboot")
            slots = props["Images"]
            self.assertTrue(any(s["active"] and s["confirmed"] for s in slots), slots)
            self.assertEqual(set(slots[0].keys()), {"image", "slot", "version", "hash", "active", "confirmed",
                                                    "pending", "bootable", "permanent"})
        managed = self.managed()
        self.assertEqual(len([1 for i in managed.values() if DEVICE in i]), 4)
        self.assertEqual(len([1 for i in managed.values() if IMAGE in i]), 1)
        TestDBus.devices = paths

    def test_03a_device_names(self):
        """Device1.Name defaults to the OS node name and is writable."""
        dev = self.devices[0]
        self.assertEqual(str(self.get(dev, DEVICE, "Name")), "smpsim-0000")
        props = self.obj(dev, PROPS)
        props.Set(DEVICE, "Name", "boiler room")
        self.assertEqual(str(self.get(dev, DEVICE, "Name")), "boiler room")
        self.monitor.wait_signal(
            lambda s: s["member"] == "PropertiesChanged" and s["path"] == dev
            and s["payload"]["data"][1].get("Name", {}).get("data") == "boiler room",
            what="PropertiesChanged with the new Name")
        for bad in ("a\nb", "x" * 65, "\u202eevil"):
            self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", props.Set, DEVICE, "Name", bad)
        self.assertEqual(str(self.get(dev, DEVICE, "Name")), "boiler room")
        # "" removes it: the default is back after the next probe
        props.Set(DEVICE, "Name", "")
        self.assertEqual(str(self.get(dev, DEVICE, "Name")), "")
        self.daemon.wait_for(lambda: self.probe_started(dev), what="a probe to start")
        self.daemon.wait_for(lambda: str(self.get(dev, DEVICE, "Name")) == "smpsim-0000", what="the default name")

    def probe_started(self, dev):
        try:
            self.obj(dev, DEVICE).Probe()
            return True
        except dbus.exceptions.DBusException as e:
            if dbus_error_name(e) != "org.smpgw.Error.Busy":
                raise
            return False

    def test_04_push_refusals_create_nothing(self):
        m = self.manager()
        ids = [p.rsplit("/", 1)[1] for p in self.devices]
        self.assertDBusError("org.smpgw.Error.NotFound", m.Push, "0" * 64, ids[:1], {})
        self.assertDBusError("org.smpgw.Error.NotFound", m.Push, self.image_id, [ids[0], "999999"], {})
        self.assertDBusError("org.smpgw.Error.NotFound", m.Push, self.image_id, ["udp:127.0.0.1:9"], {})
        self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", m.Push, self.image_id,
                             dbus.Array([], signature="s"), {})
        self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", m.Push, self.image_id,
                             [ids[0], self.conns[0]], {})  # the same device twice
        self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", m.Push, self.image_id, ids[:1],
                             {"mode": dbus.UInt32(1)})
        self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", m.Push, self.image_id, ids[:1],
                             {"mode": "sideways"})
        self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", m.Push, self.image_id, ids[:1],
                             {"attempts": "three"})
        self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", m.Push, self.image_id, ids[:1],
                             {"attempts": dbus.UInt32(0)})
        self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", m.Push, self.image_id, ids[:1],
                             {"colour": "blue"})
        # An option given twice (dbus-python's dictionaries cannot say it;
        # busctl can) is refused, as REST refuses a repeated JSON key,
        # rather than the last one silently winning.
        p = subprocess.run(["busctl", "--address=" + self.daemon.bus.address, "call", NAME, ROOT, MANAGER, "Push",
                            "sasa{sv}", self.image_id, "1", ids[0], "2", "mode", "s", "upload-only", "mode", "s",
                            "test-only"], capture_output=True, stdin=subprocess.DEVNULL, timeout=30)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn(b"given twice", p.stderr)
        self.assertDBusError("org.smpgw.Error.NotFound", self.obj(self.devices[0], DEVICE).Push, "f" * 64, {})
        self.assertEqual(self.paths_with(JOB), [])

    def test_05_push_to_three_devices(self):
        m = self.manager()
        targets = self.devices[:3]
        specs = [targets[0].rsplit("/", 1)[1], self.conns[1], targets[2].rsplit("/", 1)[1]]
        jobs = [str(j) for j in m.Push(self.image_id, specs, {"mode": "test-and-confirm",
                                                               "attempts": dbus.UInt32(2)})]
        self.assertEqual(len(jobs), 3)
        for j, dev in zip(jobs, targets):
            self.assertRegex(j, r"^/org/smpgw/job/[1-9][0-9]*$")
            props = self.get_all(j, JOB)
            self.assertEqual(props["Device"], dev)
            self.assertEqual(props["ImageId"], self.image_id)
            self.assertEqual(props["Image"], "%s/image/%s" % (ROOT, self.image_id))
            self.assertEqual(props["Mode"], "test-and-confirm")
            self.assertEqual(props["MaxAttempts"], 2)
            self.monitor.wait_signal(lambda s, j=j: s["member"] == "InterfacesAdded" and s["payload"]["data"][0] == j,
                                     what="InterfacesAdded for " + j)

        # while they run: a second push to a busy device is refused as a
        # whole, and what a running job holds cannot go
        self.assertTrue(bool(self.get(self.image_path(), IMAGE, "InUse")))
        self.assertDBusError("org.smpgw.Error.Busy", m.Push, self.image_id, [specs[0], self.conns[3]], {})
        self.assertDBusError("org.smpgw.Error.Busy", self.obj(targets[1], DEVICE).Push, self.image_id, {})
        self.assertDBusError("org.smpgw.Error.Busy", self.obj(targets[2], DEVICE).Forget)
        self.assertDBusError("org.smpgw.Error.Busy", self.obj(self.image_path(), IMAGE).Delete)
        self.assertEqual(self.paths_with(JOB), sorted(jobs))   # device 4 got nothing
        self.daemon.wait_for(lambda: str(self.get(targets[0], DEVICE, "Job")) in jobs, what="Device.Job set")

        # progress as PropertiesChanged while uploading
        self.monitor.wait_signal(
            lambda s: s["member"] == "PropertiesChanged" and s["path"] == jobs[0]
            and s["payload"]["data"][0] == JOB and "BytesSent" in s["payload"]["data"][1]
            and 0 < s["payload"]["data"][1]["BytesSent"]["data"] < os.path.getsize(NEW_IMAGE),
            timeout=60, what="a progress PropertiesChanged mid-upload")
        self.monitor.wait_signal(
            lambda s: s["member"] == "PropertiesChanged" and s["path"] == ROOT
            and "JobsRunning" in s["payload"]["data"][1], what="JobsRunning PropertiesChanged")

        for j in jobs:
            self.assertEqual(self.wait_job_final(j), "succeeded", self.get_all(j, JOB))
            props = self.get_all(j, JOB)
            self.assertEqual(props["Outcome"], "updated")
            self.assertEqual(props["Progress"], 1.0)
            self.assertEqual(props["BytesSent"], props["BytesTotal"])
            self.assertGreater(props["Finished"], 0)
            self.assertEqual(props["Error"], "")
            self.monitor.wait_signal(
                lambda s, j=j: s["member"] == "PropertiesChanged" and s["path"] == j
                and s["payload"]["data"][1].get("State", {}).get("data") == "succeeded",
                what="State=succeeded PropertiesChanged for " + j)
        # the devices run the new image, confirmed
        for dev in targets:
            def updated(dev=dev):
                slots = self.get(dev, DEVICE, "Images")
                return any(s["hash"] == self.image_id and s["active"] and s["confirmed"] for s in slots)
            self.daemon.wait_for(updated, what=dev + " running the new image")
            self.assertEqual(str(self.get(dev, DEVICE, "Job")), "/")
        self.assertEqual(int(self.get(ROOT, MANAGER, "JobsRunning")), 0)
        self.assertFalse(bool(self.get(self.image_path(), IMAGE, "InUse")))
        self.assertDBusError("org.smpgw.Error.AlreadyFinished", self.obj(jobs[0], JOB).Cancel)
        # only a staged job can be activated
        self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", self.obj(jobs[0], JOB).Activate)
        TestDBus.jobs = jobs

    def image_path(self):
        return "%s/image/%s" % (ROOT, self.image_id)

    def test_06_cancel(self):
        dev = self.devices[3]
        job = str(self.obj(dev, DEVICE).Push(self.image_id, {"mode": "upload-only"}))
        self.obj(job, JOB).Cancel()
        self.assertEqual(self.wait_job_final(job, timeout=30), "cancelled")
        self.assertDBusError("org.smpgw.Error.AlreadyFinished", self.obj(job, JOB).Cancel)
        self.daemon.wait_for(lambda: str(self.get(dev, DEVICE, "Job")) == "/", what="device free again")

    def test_07_probe_forget_delete(self):
        dev = self.devices[3]
        before = int(self.get(dev, DEVICE, "LastProbe"))
        self.obj(dev, DEVICE).Probe()
        self.daemon.wait_for(lambda: int(self.get(dev, DEVICE, "LastProbe")) > before, what="a new probe")
        self.obj(dev, DEVICE).Forget()
        self.monitor.wait_signal(lambda s: s["member"] == "InterfacesRemoved" and s["payload"]["data"][0] == dev,
                                 what="InterfacesRemoved for the device")
        self.assertNotIn(dev, self.paths_with(DEVICE))
        with self.assertRaises(dbus.exceptions.DBusException) as cm:
            self.bus.get_object(NAME, dev, introspect=False).Get(DEVICE, "Id", dbus_interface=PROPS)
        self.assertEqual(cm.exception.get_dbus_name(), "org.freedesktop.DBus.Error.UnknownObject")

        # A pipe is read as its writer delivers, here more than the pipe
        # buffer holds, so the daemon must come back to it on the loop.
        sys.path.insert(0, os.path.dirname(__file__))
        import mcuimg
        data, digest = mcuimg.make_image((7, 0, 0, 0), 300000, seed=11)
        r, w = os.pipe()

        def writer():
            with os.fdopen(w, "wb") as f:
                f.write(data)
        t = threading.Thread(target=writer)
        t.start()
        try:
            piped, piped_id, created = self.manager().AddImage(dbus.types.UnixFd(r), "piped.bin")
        finally:
            os.close(r)
            t.join()
        self.assertEqual(str(piped_id), digest)
        self.assertTrue(created)
        self.assertEqual(int(self.get(piped, IMAGE, "Size")), len(data))
        self.obj(piped, IMAGE).Delete()

        path, other_id, created = self.add_image(OTHER_IMAGE)
        self.assertTrue(created)
        self.obj(path, IMAGE).Delete()
        self.monitor.wait_signal(lambda s: s["member"] == "InterfacesRemoved" and s["payload"]["data"][0] == path,
                                 what="InterfacesRemoved for the image")
        self.assertNotIn(str(path), self.paths_with(IMAGE))

    def test_07a_image_prefixes(self):
        """Push() and GetImage() take an image id or a unique prefix of at
        least 6 hex digits; a prefix that fits two images is Ambiguous."""
        sys.path.insert(0, os.path.dirname(__file__))
        import mcuimg
        m = self.manager()
        (a, a_id), (b, b_id) = mcuimg.prefix_twins()
        paths = []
        for data in (a, b):
            with tempfile.TemporaryFile() as f:
                f.write(data)
                f.flush()
                paths.append(str(m.AddImage(dbus.types.UnixFd(f.fileno()), "twin")[0]))
        common = os.path.commonprefix([a_id, b_id])
        self.assertEqual(str(m.GetImage(a_id)), paths[0])
        self.assertEqual(str(m.GetImage(a_id[:len(common) + 1])), paths[0])
        self.assertEqual(str(m.GetImage(b_id[:len(common) + 1].upper())), paths[1])
        self.assertDBusError("org.smpgw.Error.Ambiguous", m.GetImage, common[:6])
        self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", m.GetImage, a_id[:5])
        self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", m.GetImage, "not-hex")
        self.assertDBusError("org.smpgw.Error.NotFound", m.GetImage, "f" * 63)

        dev = self.devices[2]
        dev_id = dev.rsplit("/", 1)[1]
        jobs_before = self.paths_with(JOB)
        self.assertDBusError("org.smpgw.Error.Ambiguous", m.Push, common[:6], [dev_id], {})
        self.assertDBusError("org.smpgw.Error.Ambiguous", self.obj(dev, DEVICE).Push, common[:6], {})
        self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", m.Push, a_id[:5], [dev_id], {})
        self.assertEqual(self.paths_with(JOB), jobs_before)
        job = str(m.Push(self.image_id[:8], [dev_id], {"mode": "upload-only"})[0])
        self.assertEqual(str(self.get(job, JOB, "ImageId")), self.image_id)
        self.obj(job, JOB).Cancel()
        self.assertEqual(self.wait_job_final(job, timeout=30), "cancelled")
        for p in paths:
            self.obj(p, IMAGE).Delete()

    def test_07b_image_mesh_composition(self):
        """Image1.MeshComposition: empty for none, {hash, elements} once
        set (a hash of 0 is a hash); SetMeshComposition() refuses 0
        elements and a wrong signature, ClearMeshComposition() goes back
        to none; every change is signalled, and REST shows the same."""
        sys.path.insert(0, os.path.dirname(__file__))
        import mcuimg
        data, image_id = mcuimg.make_image(version=(5, 0, 0, 0), size=3000, seed=31)
        with tempfile.TemporaryFile() as f:
            f.write(data)
            f.flush()
            path = str(self.manager().AddImage(dbus.types.UnixFd(f.fileno()), "mesh")[0])
        img = self.obj(path, IMAGE)
        rest = "/api/v1/images/" + image_id
        self.assertEqual(dict(self.get(path, IMAGE, "MeshComposition")), {})
        self.assertIsNone(self.daemon.api("GET", rest, expect=200)[1]["mesh_composition"])

        img.SetMeshComposition(dbus.UInt32(0), dbus.UInt16(1))
        comp = self.get(path, IMAGE, "MeshComposition")
        self.assertEqual(dict(comp), {"hash": 0, "elements": 1})
        self.assertIsInstance(comp["hash"], dbus.UInt32)
        self.assertIsInstance(comp["elements"], dbus.UInt16)
        self.monitor.wait_signal(
            lambda s: s["member"] == "PropertiesChanged" and s["path"] == path
            and s["payload"]["data"][0] == IMAGE and "MeshComposition" in s["payload"]["data"][1],
            what="PropertiesChanged of MeshComposition")
        img.SetMeshComposition(dbus.UInt32(0xffffffff), dbus.UInt16(0xffff))
        self.assertEqual(dict(self.get(path, IMAGE, "MeshComposition")), {"hash": 0xffffffff, "elements": 0xffff})
        self.assertEqual(self.daemon.api("GET", rest, expect=200)[1]["mesh_composition"],
                         {"hash": 0xffffffff, "elements": 0xffff})

        e = self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", img.SetMeshComposition,
                                 dbus.UInt32(7), dbus.UInt16(0))
        self.assertIn("element count", e.get_dbus_message())
        # Other types than (u hash, q elements), sent as they are: sd-bus refuses them.
        self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", img.SetMeshComposition,
                             "0x1234", 1, signature="sq")
        self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", img.SetMeshComposition,
                             1 << 32, 1, signature="tq")
        self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", img.SetMeshComposition,
                             1, 1 << 16, signature="uu")
        self.assertEqual(dict(self.get(path, IMAGE, "MeshComposition")), {"hash": 0xffffffff, "elements": 0xffff})

        # smpgwctl images set-mesh-composition: the hash as the shell
        # prints it (0x...) or in decimal; neither HASH nor ELEMENTS clears.
        d = self.daemon
        got = json.loads(d.smpgwctl("images", "set-mesh-composition", image_id[:8], "0x9E3779B9", "2",
                                    "--json").stdout)["images"][0]
        self.assertEqual(got, d.api("GET", rest, expect=200)[1])
        self.assertEqual(got["mesh_composition"], {"hash": 0x9e3779b9, "elements": 2})
        d.smpgwctl("images", "set-mesh-composition", image_id[:8], "7", "1")
        self.assertEqual(dict(self.get(path, IMAGE, "MeshComposition")), {"hash": 7, "elements": 1})
        for args in (["0x"], ["1"], ["0x123456789", "1"], ["-1", "1"], ["4294967296", "1"], ["1", "0"],
                     ["1", "65536"], ["hash", "1"]):
            p = d.smpgwctl("images", "set-mesh-composition", image_id[:8], *args, check=False)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
        self.assertEqual(dict(self.get(path, IMAGE, "MeshComposition")), {"hash": 7, "elements": 1})
        d.smpgwctl("images", "set-mesh-composition", image_id[:8])
        self.assertEqual(dict(self.get(path, IMAGE, "MeshComposition")), {})
        img.SetMeshComposition(dbus.UInt32(7), dbus.UInt16(1))

        img.ClearMeshComposition()
        self.assertEqual(dict(self.get(path, IMAGE, "MeshComposition")), {})
        self.assertIsNone(self.daemon.api("GET", rest, expect=200)[1]["mesh_composition"])
        self.monitor.wait_signal(
            lambda s: s["member"] == "PropertiesChanged" and s["path"] == path
            and s["payload"]["data"][1].get("MeshComposition", {}).get("data") == {},
            what="PropertiesChanged of MeshComposition, cleared")
        img.Delete()

    def test_08_introspection_matches_xml(self):
        """The running daemon's interfaces are those of dbus/org.smpgw.xml:
        members, signatures, argument names and directions, annotations."""
        def interfaces(root):
            result = {}
            for iface in root.findall("interface"):
                name = iface.get("name")
                if not name.startswith("org.smpgw."):
                    continue
                members = {}
                for el in iface:
                    if el.tag not in ("method", "property", "signal"):
                        continue
                    args = tuple((a.get("name"), a.get("type"), a.get("direction", "in" if el.tag == "method" else None))
                                 for a in el.findall("arg"))
                    annotations = frozenset((a.get("name"), a.get("value")) for a in el.findall("annotation"))
                    members[(el.tag, el.get("name"))] = (el.get("type"), el.get("access"), args, annotations)
                result[name] = members
            return result

        expected = interfaces(ET.parse(XML_PATH).getroot())
        self.assertEqual(set(expected), {MANAGER, DEVICE, IMAGE, JOB, ROLLOUT, DISTRIBUTION})
        # A rollout that never starts, to introspect its object.
        _, doc = self.daemon.api("POST", "/api/v1/rollouts", {
            "image": self.image_path().rsplit("/", 1)[1], "targets": {"devices": [int(self.devices[0].rsplit("/", 1)[1])]},
            "schedule": {"start_at": "2099-01-01T00:00:00Z"}}, expect=201)
        rollout = "/org/smpgw/rollout/%d" % doc["id"]
        live = {}
        for path in (ROOT, self.devices[0], self.image_path(), self.jobs[0], rollout):
            xml = self.obj(path, "org.freedesktop.DBus.Introspectable").Introspect()
            live.update(interfaces(ET.fromstring(str(xml))))
        # A Distribution1 object needs a Distributor: tests/daemon/test_mesh.py
        # compares that one.
        self.assertEqual(set(live), set(expected) - {DISTRIBUTION})
        for name in live:
            self.assertEqual(live[name], expected[name], name)

    def test_09_smpgwctl(self):
        d = self.daemon
        dev1 = self.devices[0].rsplit("/", 1)[1]

        out = d.smpgwctl("devices").stdout.decode()
        for conn in self.conns[:3]:
            self.assertIn(conn, out)
        self.assertIn("1.2.3", out)
        listed = json.loads(d.smpgwctl("devices", "--json").stdout)
        self.assertTrue(listed["ok"])
        self.assertEqual(len(listed["devices"]), 3)

        out = d.smpgwctl("device", dev1).stdout.decode()
        self.assertIn(self.image_id, out)
        self.assertIn("active", out)
        self.assertIn(self.conns[0], d.smpgwctl("device", self.conns[0]).stdout.decode())
        self.assertEqual(d.smpgwctl("device", "4242", check=False).returncode, 10)
        # any spelling of a device's connection string names it, as in smpgwd
        spelled = self.conns[0].replace("127.0.0.1", "localhost")
        self.assertIn(self.conns[0], d.smpgwctl("device", spelled).stdout.decode())
        self.assertEqual(d.smpgwctl("device", spelled, "labels", check=False).returncode, 0)
        self.assertEqual(d.smpgwctl("device", "udp:localhost:1", check=False).returncode, 10)
        # a bad --mode is a usage error of every command, not smpgwd's refusal
        for cmd in (["push", self.image_id, dev1], ["rollout", "plan", self.image_id, "--devices", dev1],
                    ["rollout", "create", self.image_id, "--devices", dev1]):
            p = d.smpgwctl(*cmd, "--mode", "bogus", check=False)
            self.assertEqual((p.returncode, p.stdout), (2, b""), cmd)
            self.assertIn(b"unknown --mode 'bogus'", p.stderr, cmd)

        added = d.smpgwctl("images", "add", OTHER_IMAGE).stdout.decode().strip()
        self.assertRegex(added, r"^[0-9a-f]{64}$")
        self.assertIn(added, d.smpgwctl("images").stdout.decode())
        junk = os.path.join(d.dir, "junk.bin")
        with open(junk, "wb") as f:
            f.write(b"\0" * 4096)
        self.assertEqual(d.smpgwctl("images", "add", junk, check=False).returncode, 3)

        # push a file (added on the way) to two devices and wait
        p = d.smpgwctl("push", OTHER_IMAGE, dev1, self.conns[1], "--wait", timeout=300)
        lines = p.stdout.decode().splitlines()
        self.assertRegex(lines[0], r"^\d+$")
        self.assertRegex(lines[1], r"^\d+$")
        self.assertIn("succeeded", p.stdout.decode())
        self.assertIn(added, str(self.get(self.devices[0], DEVICE, "Images")))

        jobs = d.smpgwctl("jobs").stdout.decode()
        self.assertIn("updated", jobs)
        listed = json.loads(d.smpgwctl("jobs", "--json").stdout)["jobs"]
        self.assertEqual(sorted("%s/job/%d" % (ROOT, j["id"]) for j in listed), self.paths_with(JOB))
        ids = [j["id"] for j in listed]
        self.assertEqual(ids, sorted(ids, reverse=True))   # newest first, as REST
        table = [line.split()[0] for line in jobs.splitlines()[1:]]
        self.assertEqual(table, [str(i) for i in ids])
        # 3 + 1 cancelled (test_07a) + 2: device 4's cancelled job went with the device
        self.assertEqual(len(listed), 6)

        # watch a push that runs now, from its start to its end
        out = d.smpgwctl("push", self.image_id[:12], self.conns[1], "--mode", "test-only").stdout.decode()
        job_id = out.strip()
        w = d.smpgwctl("watch", job_id, timeout=300)
        text = w.stdout.decode()
        self.assertIn("job %s" % job_id, text)
        self.assertIn("succeeded", text)
        self.assertIn("testing", text)
        # a finished job: watch ends at once; --json gives its properties
        w = json.loads(d.smpgwctl("watch", job_id, "--json").stdout)
        self.assertEqual(w["jobs"][0]["outcome"], "testing")

        # usage and refusals
        self.assertEqual(d.smpgwctl("push", self.image_id, "4242", check=False).returncode, 10)
        # a bad --mode is a usage error here, not a refusal by smpgwd
        p = d.smpgwctl("push", self.image_id, dev1, "--mode", "bogus", check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"test-and-confirm", p.stderr)
        self.assertEqual(d.smpgwctl("push", "nonsense", dev1, check=False).returncode, 2)
        self.assertEqual(d.smpgwctl("watch", "x", check=False).returncode, 2)
        # no daemon on that bus
        p = d.smpgwctl("devices", "--bus", "unix:path=" + os.path.join(d.dir, "nothing"), check=False)
        self.assertEqual(p.returncode, 6, p.stderr)

    def test_09a_smpgwctl_json_is_rest(self):
        """smpgwctl --json prints an object as the REST API does: the same
        fields, values, RFC 3339 times, and the same order of lists."""
        d = self.daemon

        def same(cli_args, rest_path, key):
            for _ in range(10):
                _, before = d.api("GET", rest_path, expect=200)
                cli = json.loads(d.smpgwctl(*cli_args, "--json").stdout)
                _, after = d.api("GET", rest_path, expect=200)
                if before == after:   # nothing changed meanwhile
                    break
                time.sleep(0.2)
            want = before[key] if key in before else before
            self.assertEqual(cli[key], want, cli_args)
            return want

        devices = same(["devices"], "/api/v1/devices?limit=1000", "devices")
        self.assertGreaterEqual(len(devices), 3)
        images = same(["images"], "/api/v1/images", "images")
        self.assertGreaterEqual(len(images), 1)
        jobs = same(["jobs"], "/api/v1/jobs?limit=1000", "jobs")
        self.assertGreaterEqual(len(jobs), 5)
        for dev in devices:
            same(["device", str(dev["id"])], "/api/v1/devices/%d" % dev["id"], "device")
        job = jobs[0]["id"]
        self.assertEqual(json.loads(d.smpgwctl("watch", str(job), "--json").stdout)["jobs"],
                         [d.api("GET", "/api/v1/jobs/%d" % job, expect=200)[1]])

    def watch_on_pty(self, job, cols, timeout=30):
        """smpgwctl watch JOB on a terminal `cols` wide until it drew a bar;
        the lines it drew, escape sequences removed."""
        import fcntl
        import pty
        import re
        import select
        import struct
        import termios
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.daemon.bus.address)
        env.pop("COLUMNS", None)
        proc = subprocess.Popen([daemonharness.SMPGWCTL, "watch", str(job)], stdout=slave, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=env)
        os.close(slave)
        out = b""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and not re.search(rb"\[[#.]+\][^\n]*/s", out):
                ready, _, _ = select.select([master], [], [], 0.5)
                if ready:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:
                        break
                    if not chunk:
                        break
                    out += chunk
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(10)
            proc.stderr.close()
            os.close(master)
        text = re.sub(rb"\x1b\[[0-9]*[A-Za-z]", b"", out).decode()
        return [x for x in re.split(r"[\r\n]+", text) if x]

    def test_09b_smpgwctl_watch_fits_the_terminal(self):
        """On a terminal watch draws the bar as wide as the terminal allows
        and never past its last column: the numbers are never cut off."""
        sys.path.insert(0, os.path.dirname(__file__))
        import mcuimg
        d = self.daemon
        data, image = mcuimg.make_image(version=(5, 0, 0, 1), size=16000, seed=3)
        with tempfile.TemporaryFile() as f:
            f.write(data)
            f.flush()
            self.manager().AddImage(dbus.types.UnixFd(f.fileno()), "big.bin")
        # Device 1, not device 2: test_09 left device 2 running a test
        # boot, whose revert needs the secondary slot, so img_mgmt refuses
        # an upload there (IMG_NO_FREE_SLOT) -- the job then failed in the
        # middle of the watches whenever the device answered quickly
        # enough (under ASan).  Device 1 runs a confirmed image.
        pushed = json.loads(d.smpgwctl("push", image[:10], self.conns[0], "--mode", "upload-only", "--json").stdout)
        self.assertEqual(pushed["image"], image)   # the prefix, resolved by smpgwd
        self.assertEqual([j["image"] for j in pushed["jobs"]], [image])
        job = str(pushed["jobs"][0]["id"])
        self.assertEqual(set(pushed["jobs"][0]), set(d.api("GET", "/api/v1/jobs/" + job, expect=200)[1]))
        try:
            for cols, bar_min in ((160, 40), (100, 10), (80, 10)):
                with self.subTest(cols=cols):
                    lines = self.watch_on_pty(job, cols)
                    bars = [x for x in lines if "[" in x and x.endswith("/s")]
                    self.assertTrue(bars, lines)
                    for line in lines:
                        self.assertLess(len(line), cols, line)
                    bar = bars[-1][bars[-1].index("[") + 1:bars[-1].index("]")]
                    self.assertGreaterEqual(len(bar), bar_min, bars[-1])
                    self.assertRegex(bars[-1], r"job %s .*\d+%% [0-9.]+ (B|KiB)/16\.\d KiB [0-9.]+ (B|KiB)/s$" % job)
        finally:
            # cancel, from the command line
            p = d.smpgwctl("cancel", job, "--json")
            self.assertEqual(json.loads(p.stdout)["jobs"][0]["state"], "cancelled")
        self.assertEqual(str(self.get("%s/job/%s" % (ROOT, job), JOB, "State")), "cancelled")
        self.assertEqual(d.smpgwctl("cancel", job, check=False).returncode, 10)   # finished already
        self.assertEqual(d.smpgwctl("cancel", "99999", check=False).returncode, 10)
        self.assertEqual(d.smpgwctl("cancel", "x", check=False).returncode, 2)
        TestDBus.big_image = image

    def test_09c_smpgwctl_change_commands(self):
        """The D-Bus API's changes from the command line: devices add,
        rename, probe, forget, images delete (by prefix)."""
        d = self.daemon
        conn = self.conns[3]   # forgotten in test_07
        added = d.smpgwctl("devices", "add", conn).stdout.decode().strip()
        self.assertRegex(added, r"^\d+$")
        self.assertEqual(d.smpgwctl("devices", "add", conn).stdout.decode().strip(), added)   # known: the same
        self.assertEqual(d.smpgwctl("devices", "add", "not a conn", check=False).returncode, 10)
        rest = "/api/v1/devices/" + added
        d.wait_for(lambda: d.api("GET", rest, expect=200)[1]["state"] == "online", what="the device online")

        self.assertEqual(d.smpgwctl("rename", added, "spare unit").stdout, b"")
        self.assertEqual(d.api("GET", rest, expect=200)[1]["name"], "spare unit")
        dev = json.loads(d.smpgwctl("rename", conn, "pump-4", "--json").stdout)["devices"][0]
        self.assertEqual(dev, d.api("GET", rest, expect=200)[1])
        self.assertEqual(dev["name"], "pump-4")
        self.assertEqual(d.smpgwctl("rename", added, "a\nb", check=False).returncode, 10)
        self.assertEqual(d.smpgwctl("rename", "4242", "x", check=False).returncode, 10)
        self.assertEqual(d.smpgwctl("rename", added, check=False).returncode, 2)
        self.assertIn("pump-4", d.smpgwctl("devices").stdout.decode())

        before = d.api("GET", rest, expect=200)[1]["last_probe"]
        d.wait_for(lambda: d.smpgwctl("probe", added, check=False).returncode == 0, what="probe accepted")
        d.wait_for(lambda: d.api("GET", rest, expect=200)[1]["last_probe"] != before, what="a new probe")
        self.assertEqual(d.smpgwctl("probe", "4242", check=False).returncode, 10)

        self.assertEqual(json.loads(d.smpgwctl("forget", conn, "--json").stdout)["forgotten"], [int(added)])
        self.assertEqual(d.http("GET", rest)[0], 404)
        self.assertEqual(d.smpgwctl("forget", added, check=False).returncode, 10)

        sys.path.insert(0, os.path.dirname(__file__))
        import mcuimg
        (a, a_id), (b, b_id) = mcuimg.prefix_twins()
        junk = os.path.join(d.dir, "twin-%d.bin")
        for i, data in enumerate((a, b)):
            with open(junk % i, "wb") as f:
                f.write(data)
            d.smpgwctl("images", "add", junk % i)
        common = os.path.commonprefix([a_id, b_id])
        p = d.smpgwctl("images", "delete", common[:6], check=False)
        self.assertEqual(p.returncode, 10, p.stderr)
        self.assertIn(b"more than one", p.stderr)
        self.assertEqual(d.smpgwctl("images", "delete", "abc", check=False).returncode, 2)
        self.assertEqual(d.smpgwctl("images", "delete", "0" * 64, check=False).returncode, 10)
        deleted = json.loads(d.smpgwctl("images", "delete", a_id[:len(common) + 1], b_id.upper(), self.big_image[:8],
                                        "--json").stdout)["deleted"]
        self.assertEqual(deleted, [a_id, b_id, self.big_image])
        listed = [x["id"] for x in json.loads(d.smpgwctl("images", "--json").stdout)["images"]]
        self.assertFalse({a_id, b_id, self.big_image} & set(listed))

    def test_09d_distribution_step_is_signalled(self):
        """Distribution1.Step changes are sent (PropertiesChanged), as the
        XML promises for a property without an annotation; StartDistribution
        takes attempts 0 as the default, as POST /distributions does."""
        with Sim("--mesh-distributor=0", "--mesh-targets", "2", "--mesh-rate", "1000",
                 "--mesh-time-scale", "50", count=1) as sim:
            m = self.manager()
            dev = str(m.AddDevice("udp:127.0.0.1:%d" % sim.port))
            self.obj(dev, PROPS).Set(DEVICE, "Role", "mesh-distributor")
            dist = dev.rsplit("/", 1)[1]
            targets = [str(m.AddDevice("mesh:%s/0x%04x" % (dist, 0x100 + i))).rsplit("/", 1)[1] for i in range(2)]
            data, _ = mcuimg.make_image((2, 0, 0, 0), 2000, seed=9)
            with tempfile.NamedTemporaryFile(dir=self.daemon.dir, suffix=".bin") as f:
                f.write(data)
                f.flush()
                _, image, _ = self.add_image(f.name, "mesh.bin")
            path = str(m.StartDistribution(dist, image, targets, {"attempts": dbus.UInt32(0, variant_level=1)}))
            self.assertEqual(int(self.get(path, DISTRIBUTION, "MaxAttempts")), 3)
            self.daemon.wait_for(lambda: str(self.get(path, DISTRIBUTION, "State")) == "succeeded" or None,
                                 timeout=60, what="the distribution to succeed")
            self.monitor.wait_signal(
                lambda s: s["member"] == "PropertiesChanged" and s["path"] == path
                and s["payload"]["data"][1].get("Step", {}).get("data") == "done",
                what="PropertiesChanged with Step done")
            steps = [s["payload"]["data"][1]["Step"]["data"] for s in self.monitor.signals("PropertiesChanged", path)
                     if "Step" in s["payload"]["data"][1]]
            # each step of the round, in order (other signals repeat a
            # step, and the cancel after collecting goes back to round)
            seen = iter(steps)
            self.assertTrue(all(step in seen for step in ("slot", "round", "transfer", "collect", "done")), steps)
            # leave the later tests the devices they count
            for t in targets:
                self.obj("%s/device/%s" % (ROOT, t), DEVICE).Forget()
            self.obj(dev, DEVICE).Forget()

    @unittest.skipUnless(shutil.which("setpriv") and os.geteuid() == 0,
                         "needs setpriv and root to call as user nobody")
    def test_10_policy(self):
        """dbus/org.smpgw.conf on a bus configured like Debian's system bus:
        nobody may read, not call."""
        tmp = tempfile.TemporaryDirectory(prefix="smpgw-policy-")
        conf = os.path.join(tmp.name, "bus.conf")
        with open(conf, "w") as f:
            f.write("""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:dir=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>%s</include>
</busconfig>
""" % (tmp.name, POLICY_PATH))
        os.chmod(tmp.name, 0o755)
        policy_bus = daemonharness.Bus(config=conf)
        address = policy_bus.address
        try:
            with Daemon(bus=False, args=["--bus", address], config="[discovery]\nenabled=no\n") as d:
                def busctl(*args, user=None):
                    cmd = ["busctl", "--address=" + address] + list(args)
                    if user:
                        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] + cmd
                    return subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, timeout=30)

                p = busctl("get-property", NAME, ROOT, MANAGER, "Version", user="nobody")
                self.assertEqual(p.returncode, 0, p.stderr)
                p = busctl("call", NAME, ROOT, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects",
                           user="nobody")
                self.assertEqual(p.returncode, 0, p.stderr)
                p = busctl("introspect", NAME, ROOT, user="nobody")
                self.assertEqual(p.returncode, 0, p.stderr)
                for call in (["Scan"], ["AddDevice", "s", self.conns[3]]):
                    p = busctl("call", NAME, ROOT, MANAGER, *call, user="nobody")
                    self.assertNotEqual(p.returncode, 0)
                    self.assertIn(b"denied", p.stderr.lower())
                # root may (the test runs as root); Scan() is refused here
                # by the daemon itself, as discovery is off
                p = busctl("call", NAME, ROOT, MANAGER, "Scan")
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(b"Discovery is disabled", p.stderr)
                p = busctl("call", NAME, ROOT, MANAGER, "AddDevice", "s", self.conns[3])
                self.assertEqual(p.returncode, 0, p.stderr)
                device = p.stdout.decode().split()[1].strip('"')
                # a name is changed like a method is called: root may, nobody not
                p = busctl("set-property", NAME, device, DEVICE, "Name", "s", "x", user="nobody")
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(b"denied", p.stderr.lower())
                p = busctl("set-property", NAME, device, DEVICE, "Name", "s", "gateway-room")
                self.assertEqual(p.returncode, 0, p.stderr)
                # and nobody cannot take the name (given a state directory
                # it can write, so the name is what fails)
                state = os.path.join(tmp.name, "nobody")
                os.makedirs(state)
                os.chown(state, 65534, 65534)
                p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                    daemonharness.SMPGWD, "--bus", address, "--rest", "off",
                                    "--state-dir", state, "--config", "/dev/null"],
                                   capture_output=True, stdin=subprocess.DEVNULL, timeout=30)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(b"org.smpgw", p.stderr)
        finally:
            policy_bus.stop()
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
