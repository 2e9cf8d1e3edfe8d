#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""smpgwctl --conn URI COMMAND (direct mode, no daemon) against smpsim:
every command on udp:, coap: and serial: and both SMP versions, the update
procedure in every mode, revert and reject, upload resume (after a link
drop and after smpgwctl was killed), the path MTU an upload finds, each
smpsim fault, device errors, usage errors and the exit codes that tell
them apart.

Environment: SMPGWCTL, SMPSIM, SMPGW_PLUGIN_DIR, SMPGW_TEST_DATA."""

import json
import os
import pty
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "smpsim"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import harness  # noqa: E402
from harness import Sim  # noqa: E402
harness.require("cbor2", "python3-cbor2")
from smp_client import mcuboot_build, mcuboot_hash_tlv  # noqa: E402

SMPGWCTL = os.environ.get("SMPGWCTL", "smpgwctl")
DATA = os.environ.get("SMPGW_TEST_DATA", os.path.join(HERE, "..", "data"))
ENV = dict(os.environ)

# exit codes (doc/smpgwctl.md)
OK, FAILURE, USAGE, BAD_IMAGE, BAD_HASH = 0, 1, 2, 3, 4
TRANSPORT, DEVICE, REVERTED, STUCK = 6, 7, 8, 9

FAST = ("--swap-ms", "50", "--boot-ms", "50", "--reset-ms", "20")


def body(seed, size):
    out = bytearray()
    x = seed
    while len(out) < size:
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        out += x.to_bytes(8, "little")
    return bytes(out[:size])


def image_file(tmpdir, name, version, size, seed=1):
    path = os.path.join(tmpdir, name)
    data = mcuboot_build(version=version, body=body(seed, size))
    with open(path, "wb") as f:
        f.write(data)
    return path, data


IMGTOOL = os.path.join(DATA, "imgtool-ecdsa-p256.bin")
with open(IMGTOOL, "rb") as _f:
    IMGTOOL_HASH = mcuboot_hash_tlv(_f.read()).hex()


class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return "rc=%d\nstdout: %s\nstderr: %s" % (self.rc, self.out, self.err)


def ctl(*args, timeout=90):
    proc = subprocess.run([SMPGWCTL] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, stdin=subprocess.DEVNULL)
    r = Result(proc)
    # never a crash or a sanitizer report, whatever the device did
    assert r.rc >= 0, r
    assert "Sanitizer" not in r.err and "runtime error" not in r.err, r
    return r


def conns(sim, dev_udp=0, dev_coap=1, dev_serial=2):
    return {
        "udp": "udp:127.0.0.1:%d" % (sim.port + dev_udp),
        "coap": "coap:127.0.0.1:%d" % (sim.coap_port + dev_coap),
        "serial": "serial:" + sim.serial_device(dev_serial),
    }


def slots(images):
    return {(i["image"], i["slot"]): i for i in images}


class Commands(unittest.TestCase):
    """Every command on every transport, against a v2 and a v1-only device."""

    def run_all(self, smp_version):
        with Sim("--smp-version", str(smp_version), *FAST, count=3, udp=True, coap=True, serial=True) as sim:
            for dev, (name, conn) in enumerate(conns(sim).items()):
                with self.subTest(transport=name, smp_version=smp_version):
                    self.commands(sim, dev, conn, smp_version)

    def commands(self, sim, dev, conn, smp_version):
        r = ctl("--conn", conn, "echo", "hello there")
        self.assertEqual((r.rc, r.out), (OK, "hello there\n"), r)
        r = ctl("--conn", conn, "--json", "echo", "hi")
        self.assertEqual(r.rc, OK, r)
        self.assertEqual(r.json()["text"], "hi")
        self.assertTrue(r.json()["ok"])
        # global options after the command too, and the v1 start
        r = ctl("echo", "x", "--conn", conn, "--smp-version", "1", "-j")
        self.assertEqual(r.json()["text"], "x", r)

        r = ctl("--conn", conn, "--json", "params")
        self.assertEqual(r.rc, OK, r)
        self.assertEqual((r.json()["buf_size"], r.json()["buf_count"]), (2048, 4))
        self.assertIn("buf_count: 4", ctl("--conn", conn, "params").out)

        r = ctl("--conn", conn, "--json", "info")
        self.assertEqual(r.rc, OK, r)
        j = r.json()
        self.assertIn("Zephyr", j["os_info"])
        self.assertEqual(j["bootloader"], "MCUboot")
        self.assertEqual(j["bootloader_mode"], 1)
        self.assertEqual(j["bootloader_mode_name"], "swap using scratch")
        r = ctl("--conn", conn, "info", "--format", "s")
        self.assertEqual(r.rc, OK, r)
        self.assertIn("os info:      Zephyr\n", r.out)

        r = ctl("--conn", conn, "--json", "stat", "list")
        self.assertEqual(r.rc, OK, r)
        self.assertIn("smp", r.json()["groups"])
        r = ctl("--conn", conn, "--json", "stat", "read", "smp")
        self.assertEqual(r.rc, OK, r)
        self.assertGreater(r.json()["fields"]["rx_packets"], 0)
        self.assertIn("rx_packets", ctl("--conn", conn, "stat", "read", "smp").out)
        r = ctl("--conn", conn, "--json", "stat", "read", "nosuchgroup")
        self.assertEqual(r.rc, DEVICE, r)
        self.assertIsNotNone(r.json()["device_error"]["name"])

        r = ctl("--conn", conn, "--json", "image", "list")
        self.assertEqual(r.rc, OK, r)
        old = slots(r.json()["images"])[(0, 0)]
        self.assertTrue(old["active"] and old["confirmed"])

        # upload, test, reset, confirm by hand
        r = ctl("--conn", conn, "--json", "image", "upload", IMGTOOL)
        self.assertEqual(r.rc, OK, r)
        j = r.json()
        self.assertEqual((j["resumed_at"], j["match"], j["hash"]), (0, True, IMGTOOL_HASH))
        r = ctl("--conn", conn, "--json", "image", "test", IMGTOOL_HASH)
        self.assertEqual(r.rc, OK, r)
        self.assertTrue(slots(r.json()["images"])[(0, 1)]["pending"])
        r = ctl("--conn", conn, "--json", "image", "test", "00" * 32)
        self.assertEqual(r.rc, DEVICE, r)
        err = r.json()["device_error"]
        if smp_version == 2:
            self.assertEqual(err["name"], "IMG_HASH_NOT_FOUND")
            self.assertIn("IMG_HASH_NOT_FOUND", r.err)
        else:
            self.assertIsNone(err["group"])  # legacy top-level rc
        self.assertEqual(ctl("--conn", conn, "--json", "reset").rc, OK)
        sim.wait_booted(dev)
        time.sleep(0.1)
        sim.wait_booted(dev)
        r = ctl("--conn", conn, "--json", "image", "list")
        new = slots(r.json()["images"])[(0, 0)]
        self.assertEqual((new["hash"], new["active"], new["confirmed"]), (IMGTOOL_HASH, True, False), r)
        r = ctl("--conn", conn, "image", "confirm")
        self.assertEqual(r.rc, OK, r)
        self.assertRegex(r.out, r"slot 0: 1\.2\.3\+4 +%s active confirmed" % IMGTOOL_HASH)
        # the old image is in slot 1 now; erase it
        r = ctl("--conn", conn, "--json", "image", "erase")
        self.assertEqual(r.rc, OK, r)
        r = ctl("--conn", conn, "--json", "image", "list")
        self.assertNotIn((0, 1), slots(r.json()["images"]))

    def test_smp_v2(self):
        self.run_all(2)

    def test_smp_v1(self):
        self.run_all(1)


class Update(unittest.TestCase):
    def test_modes(self):
        with Sim(*FAST, count=5) as sim:
            big, data = image_file(sim.dir, "big.bin", (2, 0, 0, 0), 60000, seed=7)
            big_hash = mcuboot_hash_tlv(data).hex()
            conn = ["udp:127.0.0.1:%d" % (sim.port + i) for i in range(5)]
            expect = {
                "test-and-confirm": ("updated", True, True),
                "confirm-only": ("updated", True, True),
                "test-only": ("testing", True, False),
                "upload-only": ("uploaded", False, False),
            }
            for dev, (mode, (outcome, active, confirmed)) in enumerate(expect.items()):
                with self.subTest(mode=mode):
                    r = ctl("--conn", conn[dev], "--json", "update", IMGTOOL, "--mode", mode)
                    self.assertEqual(r.rc, OK, r)
                    j = r.json()
                    self.assertEqual((j["outcome"], j["mode"]), (outcome, mode), r)
                    self.assertEqual(j["new"]["hash"], IMGTOOL_HASH)
                    self.assertEqual(slots(j["before"]["images"])[(0, 0)]["version"], "1.0.0+0")
                    self.assertEqual(j["upload"]["match"], True)
                    # a 3.6 KB upload to a local simulator may take less than
                    # the event loop's clock resolution: rate may be 0
                    self.assertGreaterEqual(j["upload"]["rate"], 0)
                    self.assertEqual(j["upload"]["size"], os.path.getsize(IMGTOOL))
                    s = {x["hash"]: x for x in sim.state(dev)["slots"] if "hash" in x}
                    self.assertEqual((s[IMGTOOL_HASH]["active"], s[IMGTOOL_HASH]["confirmed"]),
                                     (active, confirmed), sim.state(dev))
                    if mode != "upload-only":
                        self.assertGreater(j["reboot_sec"], 0)
            # again: nothing to do
            r = ctl("--conn", conn[0], "--json", "update", IMGTOOL)
            self.assertEqual((r.rc, r.json()["outcome"]), (OK, "up-to-date"), r)
            # test-only left it under test: a second run only confirms
            r = ctl("--conn", conn[2], "--json", "update", IMGTOOL)
            self.assertEqual((r.rc, r.json()["outcome"]), (OK, "updated"), r)
            # upload-only left it in slot 1: the update skips the upload
            r = ctl("--conn", conn[3], "--json", "update", IMGTOOL)
            self.assertEqual((r.rc, r.json()["outcome"], r.json()["upload_skipped"]), (OK, "updated", True), r)
            # a bigger smp_client-built image, text output, with --erase
            r = ctl("--conn", conn[4], "update", big, "--erase", "--window", "2", "--chunk", "512")
            self.assertEqual(r.rc, OK, r)
            self.assertIn("outcome:  updated", r.out)
            self.assertIn("reboot:", r.out)
            self.assertRegex(r.out, r"after: +2\.0\.0\+0 running, confirmed")
            self.assertIn(big_hash, r.out)
            self.assertRegex(r.out, r"\d+ bytes in [0-9.]+ s, [0-9.]+ [KM]?i?B/s")

    def test_versions_one_spelling(self):
        """A device reports "2.1.0.5" (Zephyr img_mgmt); smpgwctl shows the
        version as the image file has it, "2.1.0+5", in every place."""
        with Sim(*FAST) as sim:
            path, data = image_file(sim.dir, "v.bin", (2, 1, 0, 5), 4000, seed=5)
            conn = "udp:127.0.0.1:%d" % sim.port
            r = ctl("--conn", conn, "update", path)
            self.assertEqual(r.rc, OK, r)
            self.assertRegex(r.out, r"image: .*, version 2\.1\.0\+5,")
            self.assertRegex(r.out, r"before: +1\.0\.0\+0 running")
            self.assertRegex(r.out, r"after: +2\.1\.0\+5 running, confirmed")
            self.assertNotIn("2.1.0.5", r.out)
            r = ctl("--conn", conn, "image", "list")
            self.assertRegex(r.out, r"slot 0: 2\.1\.0\+5 ")
            self.assertRegex(r.out, r"slot 1: 1\.0\.0\+0 ")
            j = ctl("--conn", conn, "--json", "image", "list").json()
            self.assertEqual(slots(j["images"])[(0, 0)]["version"], "2.1.0+5")
            info = ctl("--json", "image", "info", path).json()
            self.assertEqual(info["version"], slots(j["images"])[(0, 0)]["version"])

    def test_revert(self):
        with Sim("--fault", "revert", *FAST) as sim:
            r = ctl("--conn", "udp:127.0.0.1:%d" % sim.port, "--json", "update", IMGTOOL)
            self.assertEqual(r.rc, REVERTED, r)
            j = r.json()
            self.assertEqual((j["outcome"], j["rejected"], j["ok"]), ("reverted", False, False))
            self.assertEqual(slots(j["after"]["images"])[(0, 0)]["version"], "1.0.0+0")

    def test_reject(self):
        with Sim("--fault", "reject", *FAST) as sim:
            r = ctl("--conn", "udp:127.0.0.1:%d" % sim.port, "update", IMGTOOL)
            self.assertEqual(r.rc, REVERTED, r)
            self.assertIn("outcome:  reverted (rejected", r.out)

    def test_bad_images(self):
        r = ctl("--conn", "udp:127.0.0.1:9", "update", "/etc/hostname")
        self.assertEqual(r.rc, BAD_IMAGE, r)
        r = ctl("--conn", "udp:127.0.0.1:9", "update", os.path.join(DATA, "imgtool-sha512-unsigned.bin"))
        self.assertEqual(r.rc, BAD_HASH, r)
        r = ctl("--conn", "udp:127.0.0.1:9", "update", "/nonexistent")
        self.assertEqual(r.rc, FAILURE, r)


class Resume(unittest.TestCase):
    def test_drop(self):
        with Sim("--fault", "drop-at=20000,1500", *FAST) as sim:
            path, data = image_file(sim.dir, "img.bin", (3, 0, 0, 0), 60000)
            r = ctl("--conn", "udp:127.0.0.1:%d" % sim.port, "--json", "image", "upload", path)
            self.assertEqual(r.rc, OK, r)
            self.assertEqual(r.json()["match"], True)
            self.assertGreater(r.json()["retransmits"], 0, r)

    def test_restart(self):
        """smpgwctl killed mid-way; the next run resumes where the device is."""
        with Sim("--bandwidth", "40000", *FAST) as sim:
            conn = "udp:127.0.0.1:%d" % sim.port
            for sig in (signal.SIGKILL, signal.SIGTERM):
                with self.subTest(signal=sig):
                    path, data = image_file(sim.dir, "img%d.bin" % sig, (3, 0, 0, 0), 100000, seed=sig)
                    proc = subprocess.Popen([SMPGWCTL, "--conn", conn, "--json", "image", "upload", path],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
                    deadline = time.monotonic() + 20
                    while sim.state()["upload"]["off"] < 30000 and time.monotonic() < deadline:
                        time.sleep(0.05)
                    proc.send_signal(sig)
                    out, err = proc.communicate(10)
                    stopped_at = sim.state()["upload"]["off"]
                    self.assertGreater(stopped_at, 0)
                    if sig == signal.SIGTERM:
                        self.assertEqual(proc.returncode, 128 + sig, err)
                        self.assertIn("run again to resume", err.decode())
                    r = ctl("--conn", conn, "--json", "image", "upload", path)
                    self.assertEqual(r.rc, OK, r)
                    self.assertGreater(r.json()["resumed_at"], 0, r)
                    self.assertLessEqual(r.json()["resumed_at"], stopped_at + 8000)
                    self.assertEqual(r.json()["match"], True)


class Faults(unittest.TestCase):
    def test_silent_at_times_out(self):
        with Sim("--fault", "silent-at=20000", *FAST) as sim:
            path, _ = image_file(sim.dir, "img.bin", (3, 0, 0, 0), 60000)
            t = time.monotonic()
            r = ctl("--conn", "udp:127.0.0.1:%d" % sim.port, "--timeout", "300", "--json",
                    "image", "upload", path)
            self.assertEqual(r.rc, TRANSPORT, r)
            self.assertFalse(r.json()["ok"])
            self.assertIn("timed out", r.json()["error"])
            self.assertLess(time.monotonic() - t, 30)
            # and a plain request to the silent device
            r = ctl("--conn", "udp:127.0.0.1:%d" % sim.port, "--timeout", "200", "echo", "x")
            self.assertEqual(r.rc, TRANSPORT, r)

    def test_reboot_at_restarts(self):
        with Sim("--fault", "reboot-at=30000", *FAST) as sim:
            path, _ = image_file(sim.dir, "img.bin", (3, 0, 0, 0), 60000)
            r = ctl("--conn", "udp:127.0.0.1:%d" % sim.port, "--json", "image", "upload", path)
            self.assertEqual(r.rc, OK, r)
            self.assertEqual(r.json()["match"], True)
            self.assertGreaterEqual(sim.state()["boot_count"], 2)

    def test_slow_dup_corrupt(self):
        for spec, allowed in (("slow=300", (OK,)), ("dup=0.5", (OK,)),
                              ("corrupt=0.2", (OK, TRANSPORT, DEVICE))):
            with self.subTest(fault=spec), Sim("--fault", spec, "--seed", "3", *FAST) as sim:
                path, _ = image_file(sim.dir, "img.bin", (3, 0, 0, 0), 30000)
                conn = "udp:127.0.0.1:%d" % sim.port
                for args in (("image", "list"), ("image", "upload", path), ("update", IMGTOOL)):
                    r = ctl("--conn", conn, "--json", *args)
                    self.assertIn(r.rc, allowed, r)
                    json.loads(r.out)  # always one well-formed JSON object

    def test_coap_and_serial_drop(self):
        with Sim("--fault", "drop-at=8000,800", *FAST, count=2, udp=False, coap=True, serial=True) as sim:
            path, _ = image_file(sim.dir, "img.bin", (3, 0, 0, 0), 20000)
            for conn in ("coap:127.0.0.1:%d" % sim.coap_port, "serial:" + sim.serial_device(1)):
                with self.subTest(conn=conn):
                    r = ctl("--conn", conn, "--json", "image", "upload", path)
                    self.assertEqual(r.rc, OK, r)
                    self.assertEqual(r.json()["match"], True)


class PathMtu(unittest.TestCase):
    """Over UDP the upload finds the largest packet the path carries (smpsim
    --mtu N loses larger ones) without being told, takes a --path-mtu hint
    and drops it when it is wrong, and follows a path that narrows."""

    # a link where lost packets cost round trips, not just CPU
    LINK = ("--bandwidth", "125000", "--latency", "15", "--buf-size", "2475", "--buf-count", "8")

    def check_learned(self, j, limit):
        self.assertEqual(j["match"], True, j)
        self.assertLessEqual(j["path_mtu"], limit, j)
        self.assertGreaterEqual(j["path_mtu"], 0.9 * limit, j)
        self.assertLess(j["chunk"], j["path_mtu"], j)

    def test_unknown_mtu(self):
        """Issue 10: the path's limit, not told; with the first chunk over
        576 bytes this took minutes (a 40 s timeout per lost first chunk)."""
        with Sim("--mtu", "576", *self.LINK, *FAST) as sim:
            path, _ = image_file(sim.dir, "img.bin", (3, 0, 0, 0), 100000)
            conn = "udp:127.0.0.1:%d" % sim.port
            r = ctl("--conn", conn, "--json", "image", "upload", path)
            self.assertEqual(r.rc, OK, r)
            self.check_learned(r.json(), 576)
            self.assertGreater(sim.state()["stats"]["dropped_mtu"], 0)
            # what was learned is printed for the next run
            path2, _ = image_file(sim.dir, "img2.bin", (3, 0, 0, 1), 30000, seed=2)
            r = ctl("--conn", conn, "image", "upload", path2, "--path-mtu", "560")
            self.assertEqual(r.rc, OK, r)
            self.assertRegex(r.out, r"path MTU (\d+) bytes \(--path-mtu \1 starts the next upload there\)")

    def test_told_mtu(self):
        """A right ",mtu=" is confirmed by the first probe."""
        with Sim("--mtu", "1400", *self.LINK, *FAST) as sim:
            path, _ = image_file(sim.dir, "img.bin", (3, 0, 0, 0), 100000)
            r = ctl("--conn", "udp:127.0.0.1:%d,mtu=1400" % sim.port, "--json", "image", "upload", path)
            self.assertEqual(r.rc, OK, r)
            self.assertEqual((r.json()["path_mtu"], r.json()["retransmits"]), (1400, 0), r)
            self.assertEqual(sim.state()["stats"]["dropped_mtu"], 0)

    def test_wrong_hint_revoked(self):
        """A --path-mtu from another path is used, lost, and given up."""
        with Sim("--mtu", "576", *self.LINK, *FAST) as sim:
            conn = "udp:127.0.0.1:%d" % sim.port
            path, _ = image_file(sim.dir, "img.bin", (3, 0, 0, 0), 100000)
            r = ctl("--conn", conn, "--json", "image", "upload", path, "--path-mtu", "1400")
            self.assertEqual(r.rc, OK, r)
            self.check_learned(r.json(), 576)
            self.assertGreater(r.json()["retransmits"], 0, r)
            # update passes it on to its upload step
            r = ctl("--conn", conn, "--json", "update", IMGTOOL, "--path-mtu", "1400")
            self.assertEqual(r.rc, OK, r)
            self.assertEqual(r.json()["outcome"], "updated")
            self.check_learned(r.json()["upload"], 576)

    def test_path_narrows(self):
        """Mid-upload the path drops to 700 bytes: a black hole for the
        learned size, found and searched again."""
        with Sim("--mtu", "1400", "--bandwidth", "40000", "--latency", "15", *FAST) as sim:
            path, _ = image_file(sim.dir, "img.bin", (3, 0, 0, 0), 100000)
            proc = subprocess.Popen([SMPGWCTL, "--conn", "udp:127.0.0.1:%d" % sim.port, "--json", "image", "upload",
                                     path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
            deadline = time.monotonic() + 20
            while sim.state()["upload"]["off"] < 30000 and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertTrue(sim.control("set 0 mtu=700")["ok"])
            out, err = proc.communicate(timeout=90)
            self.assertEqual(proc.returncode, OK, err)
            self.assertNotIn("Sanitizer", err)
            self.assertNotIn("runtime error", err)
            j = json.loads(out)
            self.assertGreater(j["retransmits"], 0, j)
            self.check_learned(j, 700)

    def test_hint_usage(self):
        for bad in ("0", "65536", "x", "-5"):
            r = ctl("--conn", "udp:127.0.0.1:9", "image", "upload", IMGTOOL, "--path-mtu", bad)
            self.assertEqual(r.rc, USAGE, r)
            self.assertIn("--path-mtu", r.err)


class ZephyrUdpDefaults(unittest.TestCase):
    """Zephyr over UDP with its defaults: two netbufs for requests and
    answers (MCUMGR_TRANSPORT_NETBUF_COUNT 2 with UDP), and no mcumgr params
    command (MCUMGR_GRP_OS_MCUMGR_PARAMS has no default).  A request whose
    turn comes with both netbufs holding requests is answered {"rc": 2},
    ENOMEM, and not handled (smp.c); smpgw pipelined a params request
    behind the state read and assumed 4 buffers, so the update failed at
    its first requests or chunks."""

    def test_update_with_two_netbufs(self):
        with Sim("--buf-count", "2", "--buf-size", "2048", "--no-params", "--latency", "5",
                 "--flash-rate", "200000", *FAST) as sim:
            conn = "udp:127.0.0.1:%d" % sim.port
            r = ctl("--conn", conn, "--json", "update", IMGTOOL)
            self.assertEqual(r.rc, OK, r)
            self.assertEqual(r.json()["outcome"], "updated", r)
            # the window met the two netbufs and shrank to one request
            self.assertGreater(sim.state()["stats"]["refused_netbuf"], 0)
            path, _ = image_file(sim.dir, "img.bin", (3, 0, 0, 0), 60000)
            r = ctl("--conn", conn, "--json", "image", "upload", path)
            self.assertEqual(r.rc, OK, r)
            self.assertEqual(r.json()["match"], True, r)


class SlowErase(unittest.TestCase):
    """A device erases the slot before it answers an upload's first chunk,
    and `image erase` erases one: a slot of megabytes erased sector by
    sector, or on external flash, takes longer than the 40 s the first
    chunk waited, and nothing raised it (the doc said --timeout did).
    --erase-timeout sets both waits.  A chunk sent again behind the erase
    is answered after it (Zephyr resumes an upload whose first chunk
    comes again with the same sha), so an upload fails only when the
    erase outlasts the timeouts its failure limit allows (5).  `update
    --erase` erases the slot first, and that erase waits --erase-timeout
    too."""

    def test_erase_timeout(self):
        # 40 KB at 10 KB/s: the first chunk answers after 4 s
        with Sim("--erase-rate", "10000", *FAST) as sim:
            conn = "udp:127.0.0.1:%d" % sim.port
            path, _ = image_file(sim.dir, "img.bin", (3, 0, 0, 0), 40000)
            newer, _ = image_file(sim.dir, "newer.bin", (3, 1, 0, 0), 40000, seed=2)
            for args in (("image", "upload", path), ("update", newer), ("image", "erase"),
                         ("update", newer, "--erase")):
                with self.subTest(args=args):
                    r = ctl("--conn", conn, "--json", "--erase-timeout", "300", *args)
                    self.assertEqual(r.rc, TRANSPORT, r)
                    self.assertEqual(r.json()["ok"], False, r)
                    if "--erase" in args:
                        # the erase itself waits --erase-timeout (it waited a
                        # fixed 60 s, then failed at the upload's first chunk)
                        self.assertEqual(r.json()["failed_step"], "erase", r)
                    # the device's queue of erases, dropped
                    sim.control("reset 0")
                    sim.wait_booted(0)
            r = ctl("--conn", conn, "--json", "--erase-timeout", "20000", "image", "upload", path)
            self.assertEqual(r.rc, OK, r)
            self.assertEqual(r.json()["match"], True, r)
            r = ctl("--conn", conn, "--erase-timeout", "0", "image", "upload", path)
            self.assertEqual(r.rc, USAGE, r)
            self.assertIn("--erase-timeout wants milliseconds from 1 to 300000, not '0'", r.err)


class LostLastAnswer(unittest.TestCase):
    """Zephyr's img_mgmt clears its upload state with the chunk that
    completes the upload, so the last chunk sent again after its answer
    was lost is answered with offset 0.  The whole file went again (an
    erase and minutes over BLE); now the client reads the image state
    first and finds the image there."""

    def test_upload_done_when_the_device_has_the_image(self):
        with Sim(*FAST) as sim:
            conn = "udp:127.0.0.1:%d" % sim.port
            path, data = image_file(sim.dir, "img.bin", (3, 0, 0, 0), 40000)
            newer, newer_data = image_file(sim.dir, "newer.bin", (3, 1, 0, 0), 40000, seed=2)
            self.assertTrue(sim.control("fault 0 lose-answer-at=%d" % len(data))["ok"])
            r = ctl("--conn", conn, "--json", "image", "upload", path)
            self.assertEqual(r.rc, OK, r)
            self.assertEqual(r.json()["match"], None, r)  # the device compared nothing
            state = sim.control("state 0")
            self.assertIn("lose-answer-at=%d(fired)" % len(data), state["faults"], state)
            # the file once, not twice
            self.assertEqual(state["stats"]["upload_bytes"], len(data), state)
            self.assertEqual(state["slots"][1]["hash"], mcuboot_hash_tlv(data).hex(), state)

            # the update procedure's upload, then its check of the slot
            self.assertTrue(sim.control("fault 0 lose-answer-at=%d" % len(newer_data))["ok"])
            r = ctl("--conn", conn, "--json", "update", newer)
            self.assertEqual((r.rc, r.json()["outcome"]), (OK, "updated"), r)
            state = sim.control("state 0")
            self.assertEqual(state["stats"]["upload_bytes"], len(data) + len(newer_data), state)


class SerialRecoveryLike(unittest.TestCase):
    """MCUboot's serial recovery has no params command (every release),
    reads one request at a time and takes a chunk only up to its flash
    write alignment.  Without params the upload pipelined 3 chunks on a
    serial line, and every chunk not a multiple of the alignment was taken
    in part, the chunks behind it answered with the old offset and sent
    again."""

    def test_upload_without_params_on_a_serial_line(self):
        with Sim("--no-params", "--write-align", "8", *FAST, count=1, udp=False, serial=True) as sim:
            conn = "serial:" + sim.serial_device(0)
            path, data = image_file(sim.dir, "img.bin", (3, 0, 0, 0), 30000)
            r = ctl("--conn", conn, "--json", "image", "upload", path)
            self.assertEqual(r.rc, OK, r)
            j = r.json()
            self.assertEqual(j["match"], True, r)
            self.assertEqual(j["window_max"], 1, r)   # one at a time, as newtmgr
            # the first chunk the device took in part is finished; the
            # chunks after it are multiples of 32 bytes, taken whole
            self.assertLessEqual(j["retransmits"], 1, r)
            # a window given is a window taken, and chunks still aligned
            newer, _ = image_file(sim.dir, "newer.bin", (3, 1, 0, 0), 30000, seed=2)
            r = ctl("--conn", conn, "--json", "--window", "2", "image", "upload", newer)
            self.assertEqual((r.rc, r.json()["window_max"], r.json()["match"]), (OK, 2, True), r)
            self.assertLessEqual(r.json()["retransmits"], 2, r)


class ResetDeclined(unittest.TestCase):
    """An application's reset hook (Zephyr's MGMT_EVT_OP_OS_MGMT_RESET)
    may decline a reset while it is busy.  The image is marked by then and
    boots at the device's next reset; the refusal said none of that."""

    def test_update_when_the_application_declines_the_reset(self):
        with Sim(*FAST) as sim:
            conn = "udp:127.0.0.1:%d" % sim.port
            path, data = image_file(sim.dir, "a.bin", (2, 0, 0, 0), 20000)
            self.assertTrue(sim.control("fault 0 reset-busy")["ok"])
            r = ctl("--conn", conn, "--json", "update", path)
            self.assertEqual(r.rc, DEVICE, r)
            self.assertEqual(r.json()["failed_step"], "reset", r)
            self.assertIn("update: reset: the device refused: ", r.err)
            self.assertIn("the application declined the reset, and the new image is marked and boots at the "
                          "device's next reset: run the update again later, or 'smpgwctl reset --force' "
                          "resets it now", r.err)
            state = sim.control("state 0")
            self.assertTrue(state["slots"][1]["pending"], state)
            boots = state["boot_count"]
            r = ctl("--conn", conn, "reset", "--force")
            self.assertEqual(r.rc, OK, r)
            # the reset follows its answer: wait for the boot, not only
            # for "not rebooting", which holds until the reset begins
            deadline = time.monotonic() + 10
            while sim.state(0)["boot_count"] == boots or sim.state(0)["rebooting"]:
                self.assertLess(time.monotonic(), deadline, "the forced reset did not reboot the device")
                time.sleep(0.02)
            # the image runs under test: the update only confirms it
            r = ctl("--conn", conn, "--json", "update", path)
            self.assertEqual((r.rc, r.json()["outcome"]), (OK, "updated"), r)
            self.assertEqual(r.json()["upload"], None, r)


class UnderTest(unittest.TestCase):
    """A device running an image under test (after a test-only update)
    keeps its other slot to go back to, so it refuses an upload of a
    third image (IMG_NO_FREE_SLOT; Zephyr's img_mgmt_slot_in_use()) until
    the image is confirmed or the device resets back.  The refusal alone
    did not say why, to `update` or to `image upload`."""

    def test_update_while_an_image_runs_under_test(self):
        with Sim(*FAST) as sim:
            conn = "udp:127.0.0.1:%d" % sim.port
            a, _ = image_file(sim.dir, "a.bin", (2, 0, 0, 0), 20000)
            b, _ = image_file(sim.dir, "b.bin", (3, 0, 0, 0), 20000, seed=2)
            r = ctl("--conn", conn, "--json", "update", a, "--mode", "test-only")
            self.assertEqual((r.rc, r.json()["outcome"]), (OK, "testing"), r)
            r = ctl("--conn", conn, "--json", "update", b)
            self.assertEqual(r.rc, DEVICE, r)
            self.assertIn("IMG_NO_FREE_SLOT", r.err)
            self.assertIn("it runs 2.0.0+0 under test, not confirmed", r.err)
            self.assertIn("'smpgwctl image confirm' keeps that image, 'smpgwctl reset' goes back", r.err)
            # image upload reads no state before it: it reads it after the
            # refusal, to say the same
            r = ctl("--conn", conn, "image", "upload", b)
            self.assertEqual(r.rc, DEVICE, r)
            self.assertIn("image upload: the device refused: IMG_NO_FREE_SLOT", r.err)
            self.assertIn("it runs 2.0.0+0 under test, not confirmed", r.err)
            self.assertIn("'smpgwctl reset' goes back; then upload again", r.err)
            r = ctl("--conn", conn, "--json", "image", "upload", b)
            self.assertEqual(r.rc, DEVICE, r)
            self.assertEqual(r.json()["ok"], False, r)
            self.assertIn("then upload again", r.json()["error"], r)
            r = ctl("--conn", conn, "image", "confirm")
            self.assertEqual(r.rc, OK, r)
            r = ctl("--conn", conn, "--json", "update", b)
            self.assertEqual((r.rc, r.json()["outcome"]), (OK, "updated"), r)


class Usage(unittest.TestCase):
    def test_usage_errors(self):
        conn = "udp:127.0.0.1:9"
        for args in (["echo", "x"],                        # no --conn
                     ["--conn", conn],                     # no command
                     ["--conn", conn, "frobnicate"],
                     ["--conn", conn, "image"],
                     ["--conn", conn, "echo"],
                     ["--conn", conn, "echo", "a", "b"],
                     ["--conn", conn, "stat", "read"],
                     ["--conn", conn, "image", "test", "xyz"],
                     ["--conn", conn, "image", "test"],
                     ["--conn", conn, "--window", "0", "image", "list"],
                     ["--conn", conn, "--chunk", "x", "image", "list"],
                     ["--conn", conn, "--timeout", "-5", "image", "list"],
                     ["--conn", conn, "--smp-version", "3", "image", "list"],
                     ["--conn", conn, "update", IMGTOOL, "--mode", "sometimes"],
                     ["--conn", conn, "image", "list", "--bogus"],
                     ["--conn", "no-scheme", "image", "list"]):
            with self.subTest(args=args):
                self.assertEqual(ctl(*args).rc, USAGE)

    def test_group_help(self):
        """'smpgwctl GROUP --help' lists the group's commands (exit 0); a
        group without a command is a usage error that lists them too."""
        for group, commands in (("image", ("image info", "image list", "image upload", "image test",
                                           "image confirm", "image erase")),
                                ("stat", ("stat list", "stat read")),
                                ("images", None)):
            for flag in ("--help", "-h"):
                with self.subTest(group=group, flag=flag):
                    r = ctl(group, flag)
                    self.assertEqual(r.rc, OK, r)
                    for c in commands or ():
                        self.assertIn(c, r.out)
        self.assertIn("images add", ctl("images", "--help").out)   # its own help names the others
        r = ctl("image")
        self.assertEqual(r.rc, USAGE, r)
        self.assertIn("image upload", r.err)
        r = ctl("image", "frobnicate")
        self.assertEqual(r.rc, USAGE, r)
        self.assertIn("image list", r.err)

    def test_help_and_transport_errors(self):
        r = ctl("--help")
        self.assertEqual(r.rc, OK)
        for word in ("--conn", "update FILE", "image upload", "stat read", "8  update: reverted"):
            self.assertIn(word, r.out)
        self.assertEqual(ctl("update", "--help").rc, OK)
        self.assertIn("upload-only", ctl("update", "--help").out)
        r = ctl("--conn", "nosuch:x", "--json", "echo", "x")
        self.assertEqual(r.rc, TRANSPORT, r)
        self.assertFalse(r.json()["ok"])
        r = ctl("--conn", "serial:/dev/nonexistent-tty", "echo", "x")
        self.assertEqual(r.rc, TRANSPORT, r)


class Progress(unittest.TestCase):
    def test_bar_on_a_terminal_only(self):
        with Sim("--bandwidth", "200000", *FAST) as sim:
            path, _ = image_file(sim.dir, "img.bin", (3, 0, 0, 0), 100000)
            conn = "udp:127.0.0.1:%d" % sim.port
            master, slave = pty.openpty()
            proc = subprocess.Popen([SMPGWCTL, "--conn", conn, "image", "upload", path], stdout=slave,
                                    stderr=subprocess.PIPE, env=ENV)
            os.close(slave)
            out = b""
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            proc.wait(30)
            os.close(master)
            self.assertEqual(proc.returncode, OK)
            self.assertIn(b"\r[", out)
            self.assertIn(b"100%", out)
            self.assertIn(b"ETA", out)
            # not a terminal: no bar
            r = ctl("--conn", conn, "image", "upload", path)
            self.assertEqual(r.rc, OK, r)
            self.assertNotIn("\r", r.out)

    def test_lines_when_piped(self):
        """Not on a terminal, update and image upload write a line per tenth
        of the upload as it goes, not nothing until the end; with --json
        stdout stays the one JSON object."""
        with Sim("--bandwidth", "200000", *FAST, count=3) as sim:
            path, _ = image_file(sim.dir, "img.bin", (3, 0, 0, 0), 100000)
            conn = ["udp:127.0.0.1:%d" % (sim.port + i) for i in range(3)]
            for dev, command in enumerate((["update", path], ["image", "upload", path])):
                r = ctl("--conn", conn[dev], *command)
                self.assertEqual(r.rc, OK, r)
                self.assertNotIn("\r", r.out)
                lines = [x for x in r.out.splitlines() if x.startswith("upload: ")]
                tenths = [int(x.split()[1].rstrip("%")) // 10 for x in lines]
                self.assertGreaterEqual(len(tenths), 8, r.out)
                self.assertEqual(tenths, sorted(set(tenths)), r.out)   # one line per tenth, in order
                self.assertEqual(tenths[-1], 10, r.out)
                self.assertRegex(lines[-1], r"^upload: 100% 97\.\d KiB/97\.\d KiB [0-9.]+ [KM]?i?B/s$")
                if command[0] == "update":   # as it goes: before the result
                    self.assertLess(r.out.index("upload: 100%"), r.out.index("outcome:"))
            r = ctl("--conn", conn[2], "--json", "update", path)
            self.assertEqual(r.rc, OK, r)
            self.assertEqual(r.json()["outcome"], "updated")


if __name__ == "__main__":
    unittest.main(verbosity=2)
