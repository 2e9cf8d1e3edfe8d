#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""smpsim driven over real sockets and ptys by the independent client in
smp_client.py (written from the Zephyr documentation, not from libsmpgw).
Expected answers come from Zephyr's img_mgmt/os_mgmt behaviour as the
protocol documentation describes it."""

import glob
import os
import socket
import struct
import sys
import time
import unittest
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402
harness.require("cbor2", "python3-cbor2")
import cbor2  # noqa: E402
from smp_client import (GROUP_IMAGE, GROUP_OS, OP_READ, OP_WRITE, Client, SerialTransport,  # noqa: E402
                        SMPError, Timeout, UDPTransport, header, mcuboot_build,
                        mcuboot_hash_tlv, mcuboot_version)
from harness import Sim  # noqa: E402

DATA = os.environ.get("SMPGW_TEST_DATA", os.path.join(os.path.dirname(__file__), "..", "data"))

V1, V2 = 0, 1


def body(seed, size):
    out = bytearray()
    x = seed
    while len(out) < size:
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        out += struct.pack("<Q", x)
    return bytes(out[:size])


def imgtool_image():
    """An image signed by MCUboot's own imgtool, when the test data has one."""
    paths = sorted(glob.glob(os.path.join(DATA, "imgtool-*ecdsa*.bin")))
    if not paths:
        paths = sorted(glob.glob(os.path.join(DATA, "imgtool-*.bin")))
    if not paths:
        return None
    with open(paths[0], "rb") as f:
        return f.read()


def udp_client(sim, dev=0, version=V2, timeout=2.0):
    return Client(UDPTransport("127.0.0.1", sim.port + dev), version=version, timeout=timeout)


def by_slot(images):
    return {i["slot"]: i for i in images}


class Basics(unittest.TestCase):
    def test_echo_params_info(self):
        with Sim("--buf-size", "1024", "--buf-count", "6") as sim:
            c = udp_client(sim)
            self.assertEqual(c.echo("hello"), "hello")
            self.assertEqual(c.last_header["ver"], V2)
            self.assertEqual(c.params(), {"buf_size": 1024, "buf_count": 6})
            self.assertEqual(c.os_info(), "Zephyr")
            self.assertIn("smpsim", c.os_info("n"))
            all_info = c.os_info("a")
            self.assertTrue(all_info.startswith("Zephyr "), all_info)
            dt = c.datetime()
            self.assertRegex(dt, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
            tasks = c.taskstat()
            self.assertTrue(tasks)
            for t in tasks.values():
                for k in ("prio", "tid", "state", "stkuse", "stksiz"):
                    self.assertIn(k, t)
            names = c.stat_list()
            self.assertTrue(names)
            st = c.stat_read(names[0])
            self.assertEqual(st["name"], names[0])
            self.assertTrue(all(isinstance(v, int) for v in st["fields"].values()))

    def test_v1_request_to_v2_device(self):
        with Sim() as sim:
            c = udp_client(sim, version=V1)
            self.assertEqual(c.echo("x"), "x")
            self.assertEqual(c.last_header["ver"], V1)

    def test_v1_only_device(self):
        with Sim("--smp-version", "1") as sim:
            c = udp_client(sim, version=V2)
            self.assertEqual(c.echo("x"), "x")
            # old firmware knows no version field: answers carry 0
            self.assertEqual(c.last_header["ver"], V1)
            rsp = c.request(OP_WRITE, GROUP_IMAGE, 0, {"hash": b"\x01" * 32, "confirm": False})
            self.assertIn("rc", rsp)
            self.assertNotIn("err", rsp)

    def test_errors_v1_and_v2(self):
        with Sim() as sim:
            c = udp_client(sim, version=V2)
            rsp = c.request(OP_WRITE, GROUP_IMAGE, 0, {"hash": b"\x01" * 32, "confirm": False})
            self.assertEqual(rsp, {"err": {"group": 1, "rc": 8}})  # HASH_NOT_FOUND
            rsp = c.request(OP_WRITE, GROUP_IMAGE, 0, {"confirm": False})
            self.assertEqual(rsp, {"err": {"group": 1, "rc": 24}})  # INVALID_HASH
            # unknown group and command: top-level rc 8 (MGMT_ERR_ENOTSUP)
            self.assertEqual(c.request(OP_READ, 77, 0, {}), {"rc": 8})
            self.assertEqual(c.request(OP_READ, GROUP_OS, 99, {}), {"rc": 8})
            # a body that is not CBOR: MGMT_ERR_EINVAL (3)
            self.assertEqual(c.request(OP_WRITE, GROUP_OS, 0, None, raw_body=b"\xff\x00"), {"rc": 3})
            c1 = udp_client(sim, version=V1)
            rsp = c1.request(OP_WRITE, GROUP_IMAGE, 0, {"hash": b"\x01" * 32, "confirm": False})
            self.assertEqual(rsp, {"rc": 1})  # HASH_NOT_FOUND maps to EUNKNOWN for v1

    def test_reserved_version_answered_too_new(self):
        with Sim() as sim:
            c = udp_client(sim, version=2)
            self.assertEqual(c.request(OP_READ, GROUP_OS, 6, {}), {"rc": 13})

    def test_frame_larger_than_buffer_is_dropped(self):
        with Sim("--buf-size", "256") as sim:
            c = udp_client(sim, timeout=0.5)
            with self.assertRaises(Timeout):
                c.echo("x" * 300)
            self.assertEqual(c.echo("y" * 100), "y" * 100)
            self.assertEqual(sim.state()["stats"]["dropped_too_big"], 1)

    def test_mtu_drops_larger_packets(self):
        with Sim("--mtu", "100") as sim:
            c = udp_client(sim, timeout=0.5)
            with self.assertRaises(Timeout):
                c.echo("x" * 120)
            self.assertEqual(c.echo("y" * 40), "y" * 40)

    def test_netbufs_are_enforced(self):
        # Requests beyond the buffer count are lost while the device is busy
        # writing flash; buf_count - 1 in flight are all answered.
        with Sim("--buf-count", "3", "--flash-rate", "20000") as sim:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(2)
            img = mcuboot_build(body=body(1, 4000))
            first = cbor2.dumps({"off": 0, "data": img[:200], "len": len(img), "sha": b"\x01" * 32})
            s.sendto(header(OP_WRITE, V2, len(first), GROUP_IMAGE, 1, 1) + first, ("127.0.0.1", sim.port))
            s.recv(100)
            for seq, n in ((2, 2), (10, 6)):
                for i in range(n):
                    b = cbor2.dumps({"off": 200 + 400 * i, "data": img[200 + 400 * i:600 + 400 * i]})
                    s.sendto(header(OP_WRITE, V2, len(b), GROUP_IMAGE, seq + i, 1) + b,
                             ("127.0.0.1", sim.port))
                answers = 0
                try:
                    while answers < n:
                        s.recv(100)
                        answers += 1
                except socket.timeout:
                    pass
                if n == 2:
                    self.assertEqual(answers, 2)
                else:
                    self.assertLess(answers, n)
            self.assertGreater(sim.state()["stats"]["dropped_netbuf"], 0)
            s.close()

    def test_many_frames_in_one_datagram(self):
        with Sim() as sim:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(2)
            pkt = b""
            for seq, text in ((5, "a"), (6, "b")):
                b = cbor2.dumps({"d": text})
                pkt += header(OP_WRITE, V2, len(b), GROUP_OS, seq, 0) + b
            s.sendto(pkt, ("127.0.0.1", sim.port))
            got = [cbor2.loads(s.recv(100)[8:])["r"] for _ in range(2)]
            self.assertEqual(got, ["a", "b"])
            s.close()


class Update(unittest.TestCase):
    def full_update(self, sim, c, img, confirm=True):
        new_hash = mcuboot_hash_tlv(img)
        rsp = c.upload(img, chunk=512)
        self.assertEqual(rsp["off"], len(img))
        self.assertTrue(rsp.get("match", True))
        slots = by_slot(c.image_list())
        self.assertEqual(slots[1]["hash"], new_hash)
        self.assertEqual(slots[1]["version"], mcuboot_version(img))
        self.assertFalse(slots[1]["pending"])
        slots = by_slot(c.image_test(new_hash))
        self.assertTrue(slots[1]["pending"])
        self.assertFalse(slots[1]["permanent"])
        self.assertTrue(slots[0]["active"] and slots[0]["confirmed"])
        c.reset()
        time.sleep(0.3)
        sim.wait_booted()
        slots = by_slot(c.image_list())
        # running the test image: active, not confirmed; old one is the revert target
        self.assertEqual(slots[0]["hash"], new_hash)
        self.assertTrue(slots[0]["active"])
        self.assertFalse(slots[0]["confirmed"])
        self.assertTrue(slots[1]["confirmed"])
        if confirm:
            slots = by_slot(c.image_confirm())
            self.assertTrue(slots[0]["active"] and slots[0]["confirmed"])
            self.assertFalse(slots[1]["confirmed"] or slots[1]["pending"])
        return new_hash

    def test_update_confirm_and_revert(self):
        img = imgtool_image() or mcuboot_build((1, 2, 3, 4), body(7, 6000))
        with Sim("--swap-ms", "100") as sim:
            c = udp_client(sim)
            old_hash = by_slot(c.image_list())[0]["hash"]
            new_hash = self.full_update(sim, c, img, confirm=True)
            c.reset()
            time.sleep(0.3)
            sim.wait_booted()
            slots = by_slot(c.image_list())
            self.assertEqual(slots[0]["hash"], new_hash)
            self.assertTrue(slots[0]["confirmed"])
            self.assertEqual(slots[1]["hash"], old_hash)

        with Sim("--swap-ms", "100") as sim:
            c = udp_client(sim)
            old_hash = by_slot(c.image_list())[0]["hash"]
            new_hash = self.full_update(sim, c, img, confirm=False)
            c.reset()
            time.sleep(0.3)
            sim.wait_booted()
            slots = by_slot(c.image_list())
            self.assertEqual(slots[0]["hash"], old_hash)
            self.assertTrue(slots[0]["active"] and slots[0]["confirmed"])
            self.assertEqual(slots[1]["hash"], new_hash)
            self.assertFalse(slots[1]["pending"] or slots[1]["confirmed"])
            self.assertEqual(sim.state()["last_boot"], "reverted")

    def test_confirm_with_hash_is_permanent(self):
        img = mcuboot_build((2, 0, 0, 0), body(3, 3000))
        with Sim("--swap-ms", "50") as sim:
            c = udp_client(sim)
            c.upload(img)
            slots = by_slot(c.image_confirm(mcuboot_hash_tlv(img)))
            self.assertTrue(slots[1]["pending"] and slots[1]["permanent"])
            c.reset()
            time.sleep(0.3)
            sim.wait_booted()
            slots = by_slot(c.image_list())
            self.assertEqual(slots[0]["version"], "2.0.0")
            self.assertTrue(slots[0]["confirmed"])

    def test_state_write_rules(self):
        img = mcuboot_build((2, 0, 0, 0), body(3, 3000))
        with Sim() as sim:
            c = udp_client(sim)
            active = by_slot(c.image_list())[0]["hash"]
            with self.assertRaises(SMPError) as e:
                c.image_test(active)
            self.assertEqual(e.exception.rsp["err"]["rc"], 33)  # TEST_TO_ACTIVE_DENIED
            c.upload(img)
            h = mcuboot_hash_tlv(img)
            c.image_test(h)
            c.image_test(h)  # repeating the same test is a no-op
            with self.assertRaises(SMPError) as e:
                c.image_confirm(h)
            self.assertEqual(e.exception.rsp["err"]["rc"], 28)  # IMAGE_ALREADY_PENDING
            # the pending slot may not be erased or uploaded to
            with self.assertRaises(SMPError) as e:
                c.image_erase()
            self.assertEqual(e.exception.rsp["err"]["rc"], 9)  # NO_FREE_SLOT
            with self.assertRaises(SMPError) as e:
                c.upload(img)
            self.assertEqual(e.exception.rsp["err"]["rc"], 9)

    def test_upload_errors(self):
        img = mcuboot_build((2, 0, 0, 0), body(3, 3000))
        with Sim("--slot-size", "4096") as sim:
            c = udp_client(sim)
            def up(b):
                return c.request(OP_WRITE, GROUP_IMAGE, 1, b)
            self.assertEqual(up({"data": img[:64], "len": len(img)}), {"err": {"group": 1, "rc": 20}})
            self.assertEqual(up({"off": 0, "data": img[:16], "len": len(img)}), {"err": {"group": 1, "rc": 22}})
            self.assertEqual(up({"off": 0, "data": img[:64]}), {"err": {"group": 1, "rc": 21}})
            self.assertEqual(up({"off": 0, "data": b"\0" * 64, "len": 100}), {"err": {"group": 1, "rc": 23}})
            self.assertEqual(up({"off": 0, "data": img[:64], "len": len(img), "sha": b"\0" * 33}),
                             {"err": {"group": 1, "rc": 24}})
            self.assertEqual(up({"off": 0, "data": img[:64], "len": 5000}), {"err": {"group": 1, "rc": 30}})
            self.assertEqual(up({"off": 0, "data": img[:64], "len": 100})["off"], 64)
            self.assertEqual(up({"off": 64, "data": img[64:128]}), {"err": {"group": 1, "rc": 31}})

    def test_resume_and_restart(self):
        img = mcuboot_build((3, 0, 0, 0), body(5, 20000))
        other = mcuboot_build((4, 0, 0, 0), body(6, 20000))
        with Sim() as sim:
            c = udp_client(sim)
            c.upload(img, chunk=1000, stop_at=8000)
            # a new session with the same sha resumes at the device's offset
            c2 = udp_client(sim)
            import hashlib
            rsp = c2.checked(OP_WRITE, GROUP_IMAGE, 1, {"off": 0, "data": img[:1000], "len": len(img),
                                                         "sha": hashlib.sha256(img).digest()})
            self.assertEqual(rsp["off"], 8000)
            # a wrong offset is answered with the expected one, data dropped
            rsp = c2.checked(OP_WRITE, GROUP_IMAGE, 1, {"off": 9000, "data": img[9000:10000]})
            self.assertEqual(rsp["off"], 8000)
            # a first chunk of a different image restarts
            rsp = c2.checked(OP_WRITE, GROUP_IMAGE, 1, {"off": 0, "data": other[:1000], "len": len(other),
                                                         "sha": hashlib.sha256(other).digest()})
            self.assertEqual(rsp["off"], 1000)
            self.assertEqual(c2.upload(other, chunk=1000)["off"], len(other))
            self.assertEqual(by_slot(c2.image_list())[1]["hash"], mcuboot_hash_tlv(other))

    def test_erase(self):
        img = mcuboot_build((3, 0, 0, 0), body(5, 2000))
        with Sim() as sim:
            c = udp_client(sim)
            c.upload(img)
            self.assertIn(1, by_slot(c.image_list()))
            c.image_erase()
            self.assertNotIn(1, by_slot(c.image_list()))
            with self.assertRaises(SMPError):
                c.image_erase(0)

    def test_slot_info(self):
        with Sim("--slot-size", "65536") as sim:
            c = udp_client(sim)
            info = c.slot_info()
            self.assertEqual(info[0]["image"], 0)
            slots = by_slot(info[0]["slots"])
            self.assertEqual(slots[0]["size"], 65536)
            self.assertEqual(slots[1]["upload_image_id"], 0)
            self.assertNotIn("upload_image_id", slots[0])

    def test_state_dir_survives_restart(self):
        img = mcuboot_build((5, 1, 0, 0), body(9, 5000))
        import tempfile
        with tempfile.TemporaryDirectory() as state:
            with Sim("--state-dir", state, "--swap-ms", "50") as sim:
                c = udp_client(sim)
                c.upload(img)
                c.image_confirm(mcuboot_hash_tlv(img))
                c.reset()
                time.sleep(0.3)
                sim.wait_booted()
                before = c.image_list()
            with Sim("--state-dir", state) as sim:
                c = udp_client(sim)
                self.assertEqual(c.image_list(), before)
                self.assertEqual(by_slot(before)[0]["version"], "5.1.0")


class Faults(unittest.TestCase):
    def test_reject(self):
        img = mcuboot_build((2, 0, 0, 0), body(3, 3000))
        with Sim("--fault", "reject", "--swap-ms", "50") as sim:
            c = udp_client(sim)
            old = by_slot(c.image_list())[0]["hash"]
            c.upload(img)
            c.image_test(mcuboot_hash_tlv(img))
            c.reset()
            time.sleep(0.3)
            sim.wait_booted()
            slots = by_slot(c.image_list())
            self.assertEqual(slots[0]["hash"], old)
            self.assertNotIn(1, slots)  # MCUboot erased the image it rejected

    def test_revert_fault(self):
        img = mcuboot_build((2, 0, 0, 0), body(3, 3000))
        with Sim("--fault", "dev=0:revert", "--swap-ms", "50") as sim:
            c = udp_client(sim)
            old = by_slot(c.image_list())[0]["hash"]
            c.upload(img)
            c.image_test(mcuboot_hash_tlv(img))
            c.reset()
            time.sleep(0.5)
            sim.wait_booted()
            time.sleep(0.3)
            sim.wait_booted()
            slots = by_slot(c.image_list())
            self.assertEqual(slots[0]["hash"], old)
            self.assertEqual(slots[1]["hash"], mcuboot_hash_tlv(img))
            self.assertFalse(slots[1]["pending"])

    def test_drop_at(self):
        img = mcuboot_build((2, 0, 0, 0), body(3, 10000))
        with Sim("--fault", "drop-at=4000,300") as sim:
            c = udp_client(sim, timeout=0.2)
            with self.assertRaises(Timeout):
                c.upload(img, chunk=1000)
            time.sleep(0.4)
            c.timeout = 2
            self.assertEqual(c.upload(img, chunk=1000)["off"], len(img))

    def test_silent_at_until_reset(self):
        img = mcuboot_build((2, 0, 0, 0), body(3, 10000))
        with Sim("--fault", "silent-at=3000") as sim:
            c = udp_client(sim, timeout=0.3)
            with self.assertRaises(Timeout):
                c.upload(img, chunk=1000)
            with self.assertRaises(Timeout):
                c.echo("anyone?")
            self.assertTrue(sim.state()["silent"])
            sim.control("clear-faults 0")
            sim.control("reset 0")
            sim.wait_booted()
            c.timeout = 2
            self.assertEqual(c.echo("back"), "back")

    def test_reboot_at(self):
        img = mcuboot_build((2, 0, 0, 0), body(3, 10000))
        for keep in (False, True):
            spec = "reboot-at=5000" + (",keep" if keep else "")
            with Sim("--fault", spec) as sim:
                c = udp_client(sim, timeout=0.3)
                with self.assertRaises(Timeout):
                    c.upload(img, chunk=1000)
                sim.wait_booted()
                st = sim.state()
                self.assertEqual(st["stats"]["resets"], 1)
                self.assertEqual(st["slots"][1]["erased"], not keep)
                # the upload state was in RAM: it starts over
                c.timeout = 2
                rsp = c.checked(OP_WRITE, GROUP_IMAGE, 1, {"off": 5000, "data": img[5000:6000]})
                self.assertEqual(rsp["off"], 0)
                self.assertEqual(c.upload(img, chunk=1000)["off"], len(img))

    def test_slow_dup_corrupt(self):
        with Sim("--fault", "slow=300") as sim:
            c = udp_client(sim)
            t0 = time.monotonic()
            c.echo("x")
            self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        with Sim("--fault", "dup=1") as sim:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(1)
            b = cbor2.dumps({"d": "x"})
            s.sendto(header(OP_WRITE, V2, len(b), GROUP_OS, 1, 0) + b, ("127.0.0.1", sim.port))
            self.assertEqual(s.recv(100), s.recv(100))
            s.close()
        with Sim() as sim:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(1)
            b = cbor2.dumps({"d": "hello"})
            s.sendto(header(OP_WRITE, V2, len(b), GROUP_OS, 1, 0) + b, ("127.0.0.1", sim.port))
            good = s.recv(100)
            self.assertEqual(cbor2.loads(good[8:]), {"r": "hello"})
            self.assertTrue(sim.control("fault 0 corrupt=1")["ok"])
            s.sendto(header(OP_WRITE, V2, len(b), GROUP_OS, 1, 0) + b, ("127.0.0.1", sim.port))
            got = s.recv(100)
            self.assertEqual(len(got), len(good))
            self.assertNotEqual(got, good)
            s.close()

    def test_faults_at_run_time_and_loss(self):
        with Sim() as sim:
            c = udp_client(sim, timeout=0.3)
            self.assertTrue(sim.control("set 0 loss=1")["ok"])
            with self.assertRaises(Timeout):
                c.echo("x")
            self.assertTrue(sim.control("set 0 loss=0")["ok"])
            self.assertEqual(c.echo("y"), "y")
            self.assertFalse(sim.control("set 0 loss=7")["ok"])
            self.assertFalse(sim.control("fault 0 bogus")["ok"])
            self.assertFalse(sim.control("state 5")["ok"])
            self.assertTrue(sim.control("fault all slow=10")["ok"])


class Link(unittest.TestCase):
    def test_bandwidth_bounds_transfer_time(self):
        # 20 kB at 100 kB/s cannot take less than 0.2 s; an emulation
        # bound, not a performance assertion
        img = mcuboot_build((2, 0, 0, 0), body(3, 20000))
        with Sim("--bandwidth", "100k") as sim:
            c = udp_client(sim)
            t0 = time.monotonic()
            c.upload(img, chunk=1500)
            self.assertGreaterEqual(time.monotonic() - t0, len(img) / 100000.0)

    def test_latency(self):
        with Sim("--latency", "100") as sim:
            c = udp_client(sim)
            t0 = time.monotonic()
            c.echo("x")
            self.assertGreaterEqual(time.monotonic() - t0, 0.2)


class Transports(unittest.TestCase):
    def test_serial_pty(self):
        img = mcuboot_build((2, 0, 0, 0), body(3, 4000))
        with Sim(udp=False, serial=True, count=2) as sim:
            for dev in (0, 1):
                t = SerialTransport(sim.serial_path(dev))
                c = Client(t, version=V2)
                self.assertEqual(c.echo("over serial %d" % dev), "over serial %d" % dev)
                self.assertEqual(c.upload(img, chunk=300)["off"], len(img))
                self.assertEqual(by_slot(c.image_list())[1]["version"], "2.0.0")
                t.close()

    def test_many_devices(self):
        count = int(os.environ.get("SMPSIM_MANY", "1000"))
        with Sim(count=count) as sim:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(5)
            b = cbor2.dumps({"d": "hi"})
            answered = set()
            for i in range(count):
                s.sendto(header(OP_WRITE, V2, len(b), GROUP_OS, i & 0xFF, 0) + b, ("127.0.0.1", sim.port + i))
                if i % 100 == 99:
                    while True:
                        try:
                            s.settimeout(0.01)
                            data, addr = s.recvfrom(100)
                            answered.add(addr[1])
                        except socket.timeout:
                            break
            s.settimeout(2)
            try:
                while len(answered) < count:
                    data, addr = s.recvfrom(100)
                    self.assertEqual(cbor2.loads(data[8:]), {"r": "hi"})
                    answered.add(addr[1])
            except socket.timeout:
                pass
            self.assertEqual(len(answered), count)
            with open("/proc/%d/status" % sim.proc.pid) as f:
                rss = [line for line in f if line.startswith("VmRSS")]
            print("smpsim with %d devices: %s" % (count, rss[0].strip()), file=sys.stderr)
            s.close()


if __name__ == "__main__":
    # the client sockets live as long as a test; closing each is noise
    warnings.simplefilter("ignore", ResourceWarning)
    unittest.main(verbosity=2)
