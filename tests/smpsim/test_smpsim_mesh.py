# SPDX-License-Identifier: LGPL-2.1-or-later
"""smpsim's Mesh Distributor seen by the independent client (smp_client.py,
cbor2): the shell management answers byte for byte as Zephyr's
shell_mgmt.c shapes them, the v3.5+ output is JSON a JSON parser takes, a
distribution runs end to end, and the command line and control socket
refuse what they should.  (test-mesh-distributor drives the same model
through libsmpgw.)"""

import json
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from simharness import SMPSIM, Sim  # noqa: E402
from smp_client import OP_READ, OP_WRITE, Client, UDPTransport, mcuboot_build  # noqa: E402

import cbor2  # noqa: E402

V1, V2 = 0, 1
GROUP_SHELL = 9


def client(sim, dev=0, version=V2):
    return Client(UDPTransport("127.0.0.1", sim.port + dev), version=version)


def raw_exec(c, argv, op=OP_WRITE):
    """The answer body as bytes, for checks of its encoding."""
    payload = cbor2.dumps({"argv": argv})
    c.seq = (c.seq + 1) & 0xFF
    from smp_client import header, parse_header
    c.t.send(header(op, c.version, len(payload), GROUP_SHELL, c.seq, 0) + payload)
    deadline = time.monotonic() + 2
    while True:
        data = c.t.recv(deadline - time.monotonic())
        hdr = parse_header(data)
        if hdr["seq"] == c.seq:
            return hdr, data[8:]


def sh(c, line):
    return c.request(OP_WRITE, GROUP_SHELL, 0, {"argv": line.split()})


class Wire(unittest.TestCase):
    def test_answer_shapes(self):
        with Sim("--mesh-distributor=0", "--count", "2") as sim:
            c = client(sim)
            hdr, body = raw_exec(c, ["mesh", "models", "dfd", "get"])
            self.assertEqual(hdr["ver"], V2)
            self.assertEqual(body[0], 0xBF)     # zcbor: an indefinite map
            rsp = cbor2.loads(body)
            self.assertEqual(set(rsp), {"o", "ret"})
            self.assertEqual(rsp["ret"], 0)
            self.assertEqual(rsp["o"], '{ "status": 0, "phase": 0 }\r\n')

            # a line of 256 characters: refused before it runs
            long = ["mesh", "models", "dfd", "receivers-add", "x" * 226]
            self.assertEqual(len(" ".join(long)), 256)
            self.assertEqual(sh(c, " ".join(long)), {"err": {"group": 9, "rc": 2}})
            long[-1] = "x" * 225                # 255: runs (and fails to parse)
            rsp = sh(c, " ".join(long))
            self.assertEqual(rsp["ret"], -22)
            # the same to an SMP v1 request: the legacy EINVAL
            c1 = client(sim, version=V1)
            self.assertEqual(c1.request(OP_WRITE, GROUP_SHELL, 0, {"argv": ["y"] * 2 + ["x" * 300]}), {"rc": 3})
            # no argv words; a read; a device that is no Distributor
            self.assertEqual(c.request(OP_WRITE, GROUP_SHELL, 0, {"argv": []}), {"err": {"group": 9, "rc": 3}})
            self.assertEqual(c.request(OP_READ, GROUP_SHELL, 0, {"argv": ["mesh"]}), {"rc": 8})
            self.assertEqual(client(sim, dev=1).request(OP_WRITE, GROUP_SHELL, 0, {"argv": ["mesh"]}), {"rc": 8})
            self.assertEqual(c.request(OP_WRITE, GROUP_SHELL, 0, {"x": 1}), {"rc": 3})

    def test_legacy_rc_and_output_buffer(self):
        with Sim("--mesh-distributor", "--mesh-legacy-rc", "--mesh-shell-out", "40") as sim:
            c = client(sim)
            rsp = sh(c, "mesh models dfd start 0 0")
            self.assertEqual(set(rsp), {"o", "rc"})
            self.assertEqual(rsp["rc"], -22)     # the command's result, as "rc"
            self.assertEqual(rsp["o"], '{ "status": 6, "phase": 0 }\r\n')
            rsp = sh(c, "mesh models dfd capabilities-get")
            self.assertEqual(rsp["rc"], 0)
            self.assertEqual(len(rsp["o"]), 39)  # the dummy buffer keeps size - 1
            self.assertTrue('{ "targets_max": 8, "slot_cnt": 1, "slot_max_size"'.startswith(rsp["o"]))


class Distribution(unittest.TestCase):
    def test_json_and_a_distribution(self):
        with Sim("--mesh-distributor", "--mesh-targets", "3", "--mesh-time-scale", "100",
                 "--mesh-target-version", "target=0x0102:1.5.0+7") as sim:
            c = client(sim)
            img = mcuboot_build(version=(2, 1, 0, 0), body=bytes(range(256)) * 12)
            c.upload(img)
            # never tested or confirmed: slot 1 holds it, nothing pending
            imgs = c.image_list()
            self.assertFalse(any(i.get("pending") for i in imgs))
            caps = json.loads(sh(c, "mesh models dfd capabilities-get")["o"])
            self.assertEqual(caps["targets_max"], 8)
            self.assertFalse(caps["oob_supported"])
            rsp = sh(c, "mesh models dfu slot add %d 0201000000000000" % len(img))
            self.assertEqual(rsp["o"], "Adding slot (size: %d)\r\nSlot added. Index: 0\r\n" % len(img))
            self.assertEqual(json.loads(sh(c, "mesh models dfd receivers-add 256,0;257,0;0x0102,0")["o"]),
                             {"status": 0, "target_cnt": 3})
            st = json.loads(sh(c, "mesh models dfd start 0 0 0 true")["o"])
            self.assertEqual(st["phase"], 1)
            for _ in range(500):
                st = json.loads(sh(c, "mesh models dfd get")["o"])
                if st["phase"] in (4, 5):
                    break
                time.sleep(0.01)
            self.assertEqual(st["phase"], 4)
            page = json.loads(sh(c, "mesh models dfd receivers-get 0 3")["o"])
            self.assertEqual(page["target_cnt"], 3)
            self.assertEqual([t["phase"] for t in page["targets"].values()], [8, 8, 8])
            state = sim.control("mesh-state 0")
            self.assertEqual({t["addr"]: t["version"] for t in state["targets"]},
                             {256: "2.1.0+0", 257: "2.1.0+0", 258: "2.1.0+0"})

    def test_version_3_4_is_not_json(self):
        with Sim("--mesh-distributor", "--mesh-zephyr", "3.4", "--mesh-targets", "1") as sim:
            c = client(sim)
            sh(c, "mesh models dfu slot add 100 01")
            sh(c, "mesh models dfd receivers-add 0x0100,0")
            out = sh(c, "mesh models dfd receivers-get 0 1")["o"]
            self.assertTrue(re.search(r'"blob_addr": 0x0100,', out))
            with self.assertRaises(ValueError):
                json.loads(out)


class Refusals(unittest.TestCase):
    def run_smpsim(self, *args):
        p = subprocess.run([SMPSIM, "--udp", "127.0.0.1:1", *args], capture_output=True, text=True, timeout=10)
        return p.returncode, p.stderr

    def test_command_line(self):
        rc, err = self.run_smpsim("--mesh-targets", "3")
        self.assertNotEqual(rc, 0)
        self.assertIn("need --mesh-distributor", err)
        rc, err = self.run_smpsim("--mesh-distributor", "--mesh-fault", "target=0x0100:melt")
        self.assertNotEqual(rc, 0)
        self.assertIn("unknown mesh fault", err)
        rc, err = self.run_smpsim("--mesh-distributor", "--mesh-addr-base", "0x7ffe", "--mesh-targets", "3")
        self.assertNotEqual(rc, 0)
        self.assertIn("0x7fff", err)
        rc, err = self.run_smpsim("--count", "2", "--mesh-distributor=0", "--mesh-fault", "dev=1:target=all:apply-fail")
        self.assertNotEqual(rc, 0)
        self.assertIn("not a Distributor", err)

    def test_control_socket(self):
        with Sim("--mesh-distributor=1", "--count", "2") as sim:
            self.assertFalse(sim.control("mesh-state 0")["ok"])
            self.assertFalse(sim.control("mesh-fault 1 target=0x9000:verify-fail")["ok"])
            self.assertFalse(sim.control("mesh-fault 1 target=0x0200:verify-fail")["ok"])
            self.assertTrue(sim.control("mesh-fault all target=0x0101:lost-at=50")["ok"])
            self.assertTrue(sim.control("mesh-set 1 rate=1k time-scale=2.5 zephyr=3.4")["ok"])
            self.assertFalse(sim.control("mesh-set 1 rate=0")["ok"])
            st = sim.control("mesh-state 1")
            self.assertEqual(st["rate"], 1000)
            self.assertEqual(st["zephyr"], "3.4")
            self.assertEqual([t["lost_at"] for t in st["targets"]], [-1, 50, -1, -1])


if __name__ == "__main__":
    unittest.main(verbosity=2)
