#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""smpgwctl over the ble transport: smpsim --ble (a fake org.bluez) on a
private dbus-daemon (tests/bus.conf) that smpgwctl's ble plugin
reaches as the system bus ($DBUS_SYSTEM_BUS_ADDRESS).  scan, echo over
both data paths, image list and a whole update (upload, test, reset,
reconnect, confirm)."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
sys.path.insert(0, os.path.join(HERE, "..", "smpsim"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import harness  # noqa: E402
from harness import Bus, Sim  # noqa: E402
harness.require_program(harness.DBUS_DAEMON, " for a private bus")
harness.require("cbor2", "python3-cbor2")
from smp_client import mcuboot_build  # noqa: E402
SMPGWCTL = os.environ["SMPGWCTL"]


class BleSmpgwctl(unittest.TestCase):
    def setUp(self):
        self.bus = Bus()
        self.tmp = tempfile.TemporaryDirectory(prefix="test-ble-ctl-")
        self.sim = Sim("--ble-resolve-ms", "40", "--ble-supervision-ms", "150", "--boot-ms", "100",
                       "--swap-ms", "100", "--reset-ms", "50",
                       # device 1 loses its link mid-upload, device 2's new image reverts
                       "--ble-fault", "dev=1:disconnect-at=12000", "--fault", "dev=2:revert",
                       count=3, udp=False, ble=self.bus.address)
        self.env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address)

    def tearDown(self):
        rc = self.sim.stop()
        self.bus.stop()
        self.tmp.cleanup()
        self.assertEqual(rc, 0)

    def ctl(self, *args, rc=0, timeout=60):
        p = subprocess.run([SMPGWCTL, *args], env=self.env, capture_output=True, timeout=timeout)
        if p.returncode != rc:
            self.fail("smpgwctl %s: rc %d (want %d)\nstdout: %s\nstderr: %s" % (
                " ".join(args), p.returncode, rc, p.stdout.decode(), p.stderr.decode()))
        return p.stdout.decode()

    def test_scan(self):
        found = json.loads(self.ctl("--json", "scan", "--seconds", "1"))
        self.assertTrue(found["ok"])
        conns = sorted(d["conn"] for d in found["devices"])
        self.assertEqual(conns, ["ble:C0:DE:00:00:00:0%d" % i for i in range(3)])
        for d in found["devices"]:
            self.assertEqual(d["address_type"], "random")
            self.assertEqual(d["adapter"], "hci0")
            self.assertTrue(d["name"].startswith("smpsim-"))
            self.assertLessEqual(d["rssi"], -40)
        text = self.ctl("scan", "--seconds", "1")
        self.assertIn("ble:C0:DE:00:00:00:02", text)
        self.ctl("scan", "--seconds", "0", rc=2)
        self.ctl("scan", "--adapter", "usb0", rc=2)

    def test_echo(self):
        self.assertEqual(self.ctl("--conn", "ble:C0:DE:00:00:00:01", "echo", "hello"), "hello\n")
        self.assertEqual(self.ctl("--conn", "ble:C0:DE:00:00:00:01,mode=notify", "echo", "x" * 1500),
                         "x" * 1500 + "\n")
        self.assertIn("slot 0", self.ctl("--conn", "ble:c0:de:00:00:00:02", "image", "list"))

    def test_update(self):
        out = json.loads(self.ctl("--json", "--conn", "ble:C0:DE:00:00:00:00", "update",
                                  os.path.join(DATA, "imgtool-ed25519.bin"), timeout=120))
        self.assertTrue(out["ok"], out)
        lst = self.ctl("--conn", "ble:C0:DE:00:00:00:00", "image", "list")
        self.assertIn("2.0.1", lst)

    def test_update_resumes_after_disconnect(self):
        path = os.path.join(self.tmp.name, "big.bin")
        with open(path, "wb") as f:
            f.write(mcuboot_build((5, 0, 0, 0), bytes(range(256)) * 100))
        out = json.loads(self.ctl("--json", "--conn", "ble:C0:DE:00:00:00:01", "update", path, timeout=120))
        self.assertEqual(out["outcome"], "updated", out)
        # the device was reconnected and the upload went on from its offset
        self.assertGreater(out["upload"]["resumed_at"], 0, out)

    def test_revert_is_reported(self):
        out = json.loads(self.ctl("--json", "--conn", "ble:C0:DE:00:00:00:02", "update",
                                  os.path.join(DATA, "imgtool-ed25519.bin"), rc=8, timeout=120))
        self.assertEqual(out["outcome"], "reverted", out)

    def test_absent_device(self):
        self.ctl("--conn", "ble:C0:DE:00:00:00:09,connect-timeout=500", "echo", "x", rc=6)


if __name__ == "__main__":
    unittest.main(verbosity=2)
