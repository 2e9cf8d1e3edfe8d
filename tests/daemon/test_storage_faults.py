#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Issue 14 #4: smpgwd on storage that fails under it -- files made
immutable, a full disk (a small tmpfs), a read-only state directory, and
write/fsync errors at random points (tests/fault-inject.c, LD_PRELOAD).
Whatever happens, smpgwd never dies by a signal, logs what failed, and
what it answered 201 (or 204 for a forget) is in the database afterwards,
which passes PRAGMA integrity_check.

Mounts happen in a mount namespace of this test's own (unshare), so
nothing outside it sees them.  Needs root; skips otherwise."""

import ctypes
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemonharness import Daemon, sql  # noqa: E402
import mcuimg  # noqa: E402

FAULT_INJECT = os.environ.get("SMPGW_FAULT_INJECT")
# An ASan build wants its runtime first; the injector is not instrumented
# and needs not be.  LeakSanitizer stays off under the injector: its exit
# check runs in a tracer thread without thread-local storage, and the
# injector's write()/fsync() wrappers touch errno, which crashed that
# thread (SIGSEGV at the TLS offset, "LeakSanitizer has encountered a
# fatal error") after a clean stop.  Every other daemon test runs the
# leak check.
INJECTED_ASAN_OPTIONS = os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0:detect_leaks=0"
CLONE_NEWNS = 0x00020000
QUIET = "[discovery]\nenabled=no\n[devices]\nreprobe=3600\n[daemon]\nflush_interval=1\n"


def setUpModule():
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root (mount namespace, tmpfs, chattr)")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise unittest.SkipTest("unshare(CLONE_NEWNS): %s" % os.strerror(ctypes.get_errno()))
    # Mounts made from here on stay in this process's namespace.
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", path], check=True)


def umount(path):
    subprocess.run(["umount", "-l", path], check=False)


def integrity(db_path):
    return sql(db_path, "PRAGMA integrity_check")[0][0]


class Ledger:
    """What smpgwd acknowledged: devices and images created (201), devices
    forgotten (204).  check() compares it with the database of a stopped
    smpgwd."""

    def __init__(self, testcase):
        self.t = testcase
        self.devices = {}      # conn -> id, answered 201
        self.forgotten = set()  # conns answered 204
        self.images = set()    # ids answered 201
        self.failed = 0        # requests answered with an error
        self.server_errors = {"device": 0, "image": 0, "forget": 0}   # 5xx: the storage failed
        self.port = 20000

    def add_device(self, d):
        self.port += 1
        conn = "udp:127.0.0.9:%d" % self.port
        status, doc = d.api("POST", "/api/v1/devices", {"conn": conn}, timeout=20)
        if status == 201:
            self.devices[conn] = doc["id"]
        elif status == 409 and "too_many" in str(doc):
            raise AssertionError("inventory full: %r" % doc)
        else:
            self.t.assertGreaterEqual(status, 400, doc)
            self.failed += 1
            self.server_errors["device"] += status >= 500
        return status

    def add_image(self, d, seed, size=20000):
        data, digest = mcuimg.make_image((1, seed % 200, seed // 200, 0), size, seed=seed)
        status, doc = d.api("POST", "/api/v1/images?name=i%d.bin" % seed, data,
                            headers={"Content-Type": "application/octet-stream"}, timeout=30)
        if status == 201:
            self.images.add(doc["id"])
        elif status != 200:
            self.t.assertGreaterEqual(status, 400, doc)
            self.failed += 1
            self.server_errors["image"] += status >= 500
        return status

    def forget(self, d, rng):
        if not self.devices:
            return None
        conn = rng.choice(sorted(self.devices))
        status, doc = d.api("DELETE", "/api/v1/devices/%d" % self.devices[conn], timeout=20)
        if status == 204:
            del self.devices[conn]
            self.forgotten.add(conn)
        else:
            self.t.assertGreaterEqual(status, 400, doc)
            self.failed += 1
            self.server_errors["forget"] += status >= 500
        return status

    def check_logged(self, log):
        """Every kind of write that failed is in the log, with why: the
        client got a 500, the administrator must learn of it too."""
        for kind, wants in (("device", ["Cannot record device"]),
                            # REST streams an upload to the store itself
                            ("image", ["Image not stored: ", "writing an image upload failed"]),
                            ("forget", ["forgetting device"])):
            if self.server_errors[kind]:
                self.t.assertTrue(any(w in log for w in wants),
                                  "%d failed %s writes, not logged (%s)" % (self.server_errors[kind], kind, wants))

    def check(self, d):
        """d stopped: the file holds every acknowledged change."""
        self.t.assertEqual(integrity(d.db_path), "ok")
        stored = {conn for (conn,) in sql(d.db_path, "SELECT conn FROM devices")}
        missing = set(self.devices) - stored
        self.t.assertFalse(missing, "answered 201 but not stored: %s" % sorted(missing)[:5])
        back = self.forgotten & stored
        self.t.assertFalse(back, "answered 204 (forgotten) but still stored: %s" % sorted(back)[:5])
        images = {i for (i,) in sql(d.db_path, "SELECT id FROM images")}
        self.t.assertFalse(self.images - images, "images answered 201 but not stored")
        for i in self.images:
            self.t.assertTrue(os.path.exists(os.path.join(d.state_dir, "images", i + ".img")), i)


def alive(t, d):
    """smpgwd still runs; had it died, say how."""
    rc = d.proc.poll()
    t.assertIsNone(rc, "smpgwd exited with %s\n%s" % (rc, d.read_log()))


class StorageFaults(unittest.TestCase):
    def test_immutable_files_are_write_errors_not_sigbus(self):
        """chattr +i on the state directory's files killed smpgwd with SIGBUS
        in SQLite's shared -shm mapping (exit 135).  Now writes fail, are
        logged and retried, and resume once the files are writable again."""
        if not shutil.which("chattr"):
            self.skipTest("no chattr")
        with Daemon(config=QUIET, bus=False) as d:
            ledger = Ledger(self)
            for _ in range(5):
                self.assertEqual(ledger.add_device(d), 201)
            files = [os.path.join(d.state_dir, f) for f in os.listdir(d.state_dir)
                     if f.startswith("smpgw.db")]
            probe = subprocess.run(["chattr", "+i"] + files, capture_output=True)
            if probe.returncode != 0:
                self.skipTest("chattr +i: %s" % probe.stderr.decode().strip())
            try:
                os.sync()   # written back: the next write to a mapped page faults
                time.sleep(0.5)
                for _ in range(5):
                    ledger.add_device(d)
                time.sleep(2.5)   # flushes and checkpoints meet the same files
                alive(self, d)
                self.assertGreater(ledger.failed, 0, "the immutable files took writes?")
                self.assertIn("Cannot record device", d.read_log())
                self.assertEqual(d.api("GET", "/api/v1/health")[0], 200)
            finally:
                subprocess.run(["chattr", "-i"] + files, check=True)
            for _ in range(3):
                self.assertEqual(ledger.add_device(d), 201)
            self.assertEqual(d.terminate(), 0)
            ledger.check(d)

    def test_disk_full_loses_nothing_acknowledged(self):
        """The state directory on a 2 MiB tmpfs: devices and images are added
        until the disk is full, and on; smpgwd refuses what it cannot store,
        answers 201 only for what it stored, and takes new data again once
        there is room."""
        top = tempfile.mkdtemp(prefix="smpgwd-full-")
        state = os.path.join(top, "state")
        mount_tmpfs(state, "2m")
        try:
            with Daemon(config=QUIET, bus=False, state_dir=state) as d:
                ledger = Ledger(self)
                seed = 1
                full = 0
                for i in range(400):
                    if i % 4 == 0:
                        seed += 1
                        status = ledger.add_image(d, seed, size=60000)
                    else:
                        status = ledger.add_device(d)
                    if status >= 500:
                        full += 1
                    if full >= 30:
                        break
                alive(self, d)
                self.assertGreaterEqual(full, 30, "the disk never filled")
                sys.stderr.write("disk full: %d devices, %d images stored, %d refused\n"
                                 % (len(ledger.devices), len(ledger.images), ledger.failed))
                log = d.read_log()
                self.assertIn("No space left on device", log)
                self.assertGreater(ledger.server_errors["image"], 0)
                ledger.check_logged(log)
                # A forget on a full disk: a delete needs room too (WAL).
                rng = random.Random(3)
                for _ in range(5):
                    ledger.forget(d, rng)
                alive(self, d)
                ledger.check_logged(d.read_log())
                # Room again: new writes go through.
                subprocess.run(["mount", "-o", "remount,size=64m", state], check=True)
                d.wait_for(lambda: ledger.add_device(d) == 201, timeout=20, what="a device stored again")
                self.assertEqual(ledger.add_image(d, 9999, size=60000), 201)
                self.assertEqual(d.terminate(), 0)
                ledger.check(d)
                # The same holds after a kill -9 in the middle of it.
                d.start()
                subprocess.run(["mount", "-o", "remount,size=%dk" % (self.used_kib(state) + 96), state],
                               check=True)
                for i in range(60):
                    ledger.add_device(d)
                alive(self, d)
                d.kill9()
                subprocess.run(["mount", "-o", "remount,size=64m", state], check=True)
                ledger.check(d)
        finally:
            umount(state)
            shutil.rmtree(top, ignore_errors=True)

    @staticmethod
    def used_kib(path):
        st = os.statvfs(path)
        return (st.f_blocks - st.f_bfree) * st.f_frsize // 1024

    def test_read_only_state_refused_with_a_sentence(self):
        """A state directory on a read-only mount: smpgwd does not start,
        says why, and exits with a status rather than a signal."""
        top = tempfile.mkdtemp(prefix="smpgwd-ro-")
        state = os.path.join(top, "state")
        os.makedirs(state)
        try:
            d = Daemon(config=QUIET, bus=False, state_dir=state, start=False)
            try:
                d.start()
                ledger = Ledger(self)
                self.assertEqual(ledger.add_device(d), 201)
                self.assertEqual(d.terminate(), 0)
                subprocess.run(["mount", "--bind", state, state], check=True)
                subprocess.run(["mount", "-o", "remount,bind,ro", state], check=True)
                p = subprocess.run(d.command(), capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
                err = p.stderr.decode()
                self.assertGreater(p.returncode, 0, err)
                self.assertIn("Read-only file system", err)
                umount(state)
                ledger.check(d)
            finally:
                d.stop()
        finally:
            umount(state)
            shutil.rmtree(top, ignore_errors=True)

    def test_random_write_errors(self):
        """Write, fsync and truncate errors at random points (ENOSPC, EIO,
        EROFS), in rounds with different seeds: smpgwd stays up, and a clean
        stop leaves a file that passes integrity_check and holds every
        acknowledged change."""
        if not FAULT_INJECT or not os.path.exists(FAULT_INJECT):
            self.skipTest("no fault injector (SMPGW_FAULT_INJECT)")
        injected = 0
        kinds_failed = set()
        for round_, (error, rate) in enumerate([("ENOSPC", 3), ("EIO", 5), ("EROFS", 4), ("EIO", 2),
                                                 ("ENOSPC", 8), ("EROFS", 2)]):
            d = Daemon(config=QUIET, bus=False, start=False)
            ctl = os.path.join(d.dir, "faults-on")
            env = {
                "LD_PRELOAD": FAULT_INJECT,
                "SMPGW_FAULT_PATH": d.state_dir + "/",
                "SMPGW_FAULT_CTL": ctl,
                "SMPGW_FAULT_ERRNO": error,
                "SMPGW_FAULT_RATE": str(rate),
                "SMPGW_FAULT_SEED": str(round_ + 11),
                "ASAN_OPTIONS": INJECTED_ASAN_OPTIONS,
            }
            d.extra_env.update(env)
            try:
                d.start()
                ledger = Ledger(self)
                rng = random.Random(round_)
                for _ in range(5):
                    self.assertEqual(ledger.add_device(d), 201)
                open(ctl, "w").close()
                for i in range(60):
                    x = rng.random()
                    if x < 0.6:
                        ledger.add_device(d)
                    elif x < 0.8:
                        ledger.add_image(d, round_ * 1000 + i)
                    else:
                        ledger.forget(d, rng)
                    if i % 20 == 19:
                        time.sleep(1.1)   # a flush and a checkpoint under faults too
                    alive(self, d)
                os.unlink(ctl)
                log = d.read_log()
                faults = log.count("fault-inject: ")
                injected += faults
                self.assertGreater(ledger.failed, 0, "round %d: no request failed (%d faults)" % (round_, faults))
                ledger.check_logged(log)
                kinds_failed.update(k for k, n in ledger.server_errors.items() if n)
                # Faults off: it writes again.
                d.wait_for(lambda: ledger.add_device(d) == 201, timeout=20, what="a device stored again")
                self.assertEqual(d.terminate(), 0, "round %d" % round_)
                ledger.check(d)
                # And it starts on that file, without the injector.
                d.extra_env = {}
                d.start()
                got = {x["conn"] for x in self.all_devices(d)}
                self.assertFalse(set(ledger.devices) - got, "round %d" % round_)
                self.assertEqual(d.terminate(), 0)
            except BaseException:
                sys.stderr.write("---- round %d (%s 1/%d) log ----\n%s\n" % (round_, error, rate, d.read_log()))
                raise
            finally:
                d.stop()
        self.assertGreater(injected, 50)
        self.assertEqual(kinds_failed, {"device", "image", "forget"}, "every kind of write met a fault")

    def test_image_store_failures_are_logged(self):
        """An upload streamed to disk fine, then the store could not fsync
        it into place, or the database could not record it: the client
        got a 500 and the log said nothing.  Now it says 'Image not
        stored' and why."""
        if not FAULT_INJECT or not os.path.exists(FAULT_INJECT):
            self.skipTest("no fault injector (SMPGW_FAULT_INJECT)")
        for where, want in (("images/", "Image not stored: cannot store the image file"),
                            ("smpgw.db", "Image not stored: cannot record the image in the database")):
            d = Daemon(config=QUIET, bus=False, start=False)
            ctl = os.path.join(d.dir, "faults-on")
            d.extra_env.update({
                "LD_PRELOAD": FAULT_INJECT,
                "SMPGW_FAULT_PATH": os.path.join(d.state_dir, where),
                "SMPGW_FAULT_CTL": ctl,
                "SMPGW_FAULT_ERRNO": "EIO",
                "SMPGW_FAULT_RATE": "1",
                "SMPGW_FAULT_CALLS": "fsync,fdatasync",
                "ASAN_OPTIONS": INJECTED_ASAN_OPTIONS,
            })
            try:
                d.start()
                ledger = Ledger(self)
                open(ctl, "w").close()
                self.assertEqual(ledger.add_image(d, 77), 500, where)
                os.unlink(ctl)
                alive(self, d)
                self.assertIn(want, d.read_log(), where)
                self.assertEqual(ledger.add_image(d, 77), 201, where)
                self.assertEqual(d.terminate(), 0)
                ledger.check(d)
            except BaseException:
                sys.stderr.write("---- %s ----\n%s\n" % (where, d.read_log()))
                raise
            finally:
                d.stop()

    @staticmethod
    def all_devices(d):
        out = []
        while True:
            _, doc = d.api("GET", "/api/v1/devices?limit=500&offset=%d" % len(out), expect=200)
            out += doc["devices"]
            if not doc["devices"] or len(out) >= doc["total"]:
                return out


if __name__ == "__main__":
    unittest.main(verbosity=2)
