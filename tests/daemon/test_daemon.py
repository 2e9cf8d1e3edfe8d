#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""smpgwd end to end: discovery of smpsim devices, push jobs and their
limits, retries, reverts, cancel, SIGTERM checkpoints, kill -9 during
uploads and during database writes (then PRAGMA integrity_check with
Python's own sqlite3, and resumption), SIGHUP reload, configuration
errors.  Real processes, real UDP and HTTP over loopback, real SQLite."""

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from daemonharness import SRCDIR, Daemon, Sim, SMPGWD, have, image_path, sql  # noqa: E402
import mcuimg  # noqa: E402


def udp_range(sim, count):
    return "127.0.0.1:%d-%d" % (sim.port, sim.port + count - 1)


def discovery_config(sim, count, extra=""):
    return "[discovery]\nudp=%s\ninterval=5\n%s" % (udp_range(sim, count), extra)


def add_image(d, data, name="test.bin"):
    status, doc = d.api("POST", "/api/v1/images?name=" + name, data,
                        headers={"Content-Type": "application/octet-stream"})
    if status != 201:
        raise AssertionError("image upload: %d %r" % (status, doc))
    return doc["id"]


def devices(d):
    """Every device, page by page (a page holds at most page_max)."""
    out = []
    while True:
        _, doc = d.api("GET", "/api/v1/devices?limit=500&offset=%d" % len(out), expect=200)
        out += doc["devices"]
        if not doc["devices"] or len(out) >= doc["total"]:
            return out


def job(d, job_id):
    _, doc = d.api("GET", "/api/v1/jobs/%d" % job_id, expect=200)
    return doc


def push(d, image_id, device_ids, **extra):
    body = {"image": image_id, "devices": device_ids}
    body.update(extra)
    _, doc = d.api("POST", "/api/v1/jobs", body, expect=201)
    return [j["id"] for j in doc["jobs"]]


def wait_jobs(d, job_ids, states=("succeeded",), timeout=120):
    def done():
        jobs = [job(d, i) for i in job_ids]
        if all(j["state"] in ("succeeded", "failed", "cancelled") for j in jobs):
            return jobs
        return None
    jobs = d.wait_for(done, timeout=timeout, what="jobs %s to finish" % job_ids)
    for j in jobs:
        if j["state"] not in states:
            raise AssertionError("job %d ended %s: %r" % (j["id"], j["state"], j))
    return jobs


def running_hash(dev):
    for s in dev["images"]:
        if s["active"]:
            return s["hash"], s["confirmed"]
    return None, False


def wait_online(d, count, timeout=60):
    def ok():
        devs = devices(d)
        online = [x for x in devs if x["state"] == "online" and x["images"]]
        return online if len(online) >= count else None
    return d.wait_for(ok, timeout=timeout, what="%d devices online" % count)


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def log_mark(d):
    """Where the daemon's log ends now; log_since() reads what follows."""
    d.log.flush()
    return os.path.getsize(d.log_path)


def log_since(d, mark):
    d.log.flush()
    with open(d.log_path) as f:
        f.seek(mark)
        return f.read()


def integrity(db_path):
    return sql(db_path, "PRAGMA integrity_check")[0][0]


class Discovery(unittest.TestCase):
    def test_discovers_probes_and_pushes_to_20(self):
        """The 'done when' of the daemon issue, end to end over REST."""
        with Sim(count=20) as sim, Daemon(config=discovery_config(sim, 20)) as d:
            devs = wait_online(d, 20)
            self.assertEqual(len(devs), 20)
            for dev in devs:
                self.assertEqual(dev["source"], "discovery")
                self.assertEqual(dev["transport"], "udp")
                self.assertIsNotNone(dev["params"])
                h, confirmed = running_hash(dev)
                self.assertTrue(h and confirmed)
            data, digest = mcuimg.make_image((2, 0, 0, 0), 24000)
            image_id = add_image(d, data)
            self.assertEqual(image_id, digest)
            ids = push(d, image_id, [x["id"] for x in devs])
            self.assertEqual(len(ids), 20)
            jobs = wait_jobs(d, ids, timeout=240)
            for j in jobs:
                self.assertEqual(j["outcome"], "updated")
                self.assertEqual(j["bytes_sent"], j["bytes_total"])
            for dev in devices(d):
                h, confirmed = running_hash(dev)
                self.assertEqual(h, digest, dev)
                self.assertTrue(confirmed)
            # smpsim agrees, independently of what the daemon believes.
            for i in range(20):
                slots = sim.state(i)["slots"]
                active = [s for s in slots if s["active"]]
                self.assertEqual(active[0]["hash"], digest)
                self.assertTrue(active[0]["confirmed"])
            self.assertEqual(d.terminate(), 0)   # the file is smpgwd's alone while it runs
            self.assertEqual(integrity(d.db_path), "ok")

    def test_last_seen_written_lazily(self):
        """A device only seen again (discovery, every second here) keeps a
        current last_seen over REST while its row is not rewritten for it
        (DEVICE_SEEN_WRITE_INTERVAL_USEC, 300 s): a kill -9 finds the row
        older.  SIGTERM writes the pending last_seen."""
        def iso(usec):
            t = time.gmtime(usec // 1000000)
            return time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03dZ" % (usec // 1000 % 1000)

        def last_seen(d):
            return devices(d)[0]["last_seen"]

        def settled(d):
            """The last_seen once it stopped moving for 5 s (over two
            flush intervals), with the device silenced."""
            sim.control("fault 0 drop=1")
            seen = [last_seen(d)]
            def still():
                time.sleep(5)
                seen.append(last_seen(d))
                return seen[-1] if seen[-1] == seen[-2] else None
            return d.wait_for(still, timeout=60, what="last_seen settled")

        with Sim(count=1) as sim, \
                Daemon(config="[discovery]\nudp=%s\ninterval=1\n" % udp_range(sim, 1), bus=False) as d:
            first = wait_online(d, 1)[0]["last_seen"]
            d.wait_for(lambda: last_seen(d) > first, timeout=30, what="seen again")
            lazy = settled(d)
            d.kill9()
            stored = sql(d.db_path, "SELECT last_seen FROM devices")[0][0]
            self.assertLess(iso(stored), lazy)   # not written for it alone

            sim.control("clear-faults 0")
            d.start()
            d.wait_for(lambda: last_seen(d) > iso(stored), timeout=30, what="seen after the restart")
            pending = settled(d)
            self.assertEqual(d.terminate(), 0)
            stored = sql(d.db_path, "SELECT last_seen FROM devices")[0][0]
            self.assertEqual(iso(stored), pending)

    def test_absent_and_back(self):
        cfg = "[devices]\nabsent_after=10\nreprobe=10\n"
        with Sim(count=1) as sim:
            conn = "udp:127.0.0.1:%d" % sim.port
            with Daemon(config=cfg + "add=%s\n" % conn) as d:
                wait_online(d, 1)
                sim.control("fault 0 silent-at=0")
                sim.control("fault 0 drop=1")
                dev = d.wait_for(lambda: [x for x in devices(d) if x["state"] == "absent"], timeout=60,
                                 what="device absent")[0]
                self.assertEqual(dev["conn"], conn)
                # Never deleted: still listed, with its last known slots.
                self.assertTrue(dev["images"])
                sim.control("clear-faults 0")
                sim.control("reset 0")
                d.wait_for(lambda: [x for x in devices(d) if x["state"] == "online"], timeout=60,
                           what="device back online")


class Ble(unittest.TestCase):
    def test_ble_discovery_and_push(self):
        """smpsim's fake org.bluez on the daemon's private bus, which the
        ble plugin reaches as the system bus: BLE scan rounds find the
        devices, probes read them over GATT, a push updates them."""
        d = Daemon(config="[discovery]\nble=yes\ninterval=3\n[jobs]\nmax_running_ble=2\n", start=False)
        try:
            d.extra_env["DBUS_SYSTEM_BUS_ADDRESS"] = d.bus.address
            with Sim("--ble", d.bus.address, "--ble-resolve-ms", "40", "--boot-ms", "100", "--swap-ms", "100",
                     "--reset-ms", "50", count=3, udp=False) as sim:
                d.start()
                devs = wait_online(d, 3)
                self.assertEqual(sorted(x["conn"] for x in devs),
                                 ["ble:C0:DE:00:00:00:0%d" % i for i in range(3)])
                for x in devs:
                    self.assertEqual(x["transport"], "ble")
                    self.assertIn(x["address_type"], ("public", "random"))
                    self.assertIsNotNone(x["rssi"])
                    self.assertTrue(x["adapter"])
                data, digest = mcuimg.make_image((6, 0, 0, 0), 30000, seed=4)
                image_id = add_image(d, data)
                ids = push(d, image_id, [x["id"] for x in devs])
                seen = 0
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline:
                    _, doc = d.api("GET", "/api/v1/jobs?state=running", expect=200)
                    self.assertLessEqual(len(doc["jobs"]), 2, "max_running_ble=2 exceeded")
                    seen = max(seen, len(doc["jobs"]))
                    if all(job(d, i)["state"] in ("succeeded", "failed") for i in ids):
                        break
                    time.sleep(0.1)
                wait_jobs(d, ids, timeout=10)
                for i in range(3):
                    active = [s for s in sim.state(i)["slots"] if s["active"]][0]
                    self.assertEqual(active["hash"], digest)
                    self.assertTrue(active["confirmed"])
        except Exception:
            sys.stderr.write(d.read_log())
            raise
        finally:
            d.stop()


    def test_verify_reopens_a_slow_link(self):
        """A BLE verify opens its link (connect, GATT resolution) within
        its state read's timeout: one timed by the round trip the upload
        measured (a few ms here) never saw the device back, and the job
        failed at its reboot timeout.  Resolution takes 250 ms here."""
        d = Daemon(config="[discovery]\nble=yes\ninterval=3\n[jobs]\nattempts=1\n", start=False)
        try:
            d.extra_env["DBUS_SYSTEM_BUS_ADDRESS"] = d.bus.address
            with Sim("--ble", d.bus.address, "--ble-resolve-ms", "250", "--boot-ms", "100", "--swap-ms", "300",
                     "--reset-ms", "50", count=1, udp=False):
                d.start()
                devs = wait_online(d, 1)
                data, digest = mcuimg.make_image((6, 2, 0, 0), 20000, seed=9)
                ids = push(d, add_image(d, data), [devs[0]["id"]])
                jobs = wait_jobs(d, ids, timeout=60)
                self.assertEqual((jobs[0]["outcome"], jobs[0]["attempts"]), ("updated", 1), jobs[0])
        except Exception:
            sys.stderr.write(d.read_log())
            raise
        finally:
            d.stop()

    def test_adapter_limit_learned_from_refusals(self):
        """The controller of smpsim's fake adapter holds 2 links
        (--ble-max-links 2) while smpgwd may run 4 BLE jobs: the third
        connect is refused (-EUSERS), smpgwd learns the adapter's limit
        from the links it held then, never runs more jobs on it than
        that afterwards, and every push ends updated (a refusal is no
        attempt)."""
        d = Daemon(config="[discovery]\nble=yes\ninterval=3\n[jobs]\nmax_running=4\nmax_running_ble=4\n"
                          "attempts=1\n", start=False)
        try:
            d.extra_env["DBUS_SYSTEM_BUS_ADDRESS"] = d.bus.address
            with Sim("--ble", d.bus.address, "--ble-resolve-ms", "40", "--boot-ms", "100", "--swap-ms", "100",
                     "--reset-ms", "50", "--ble-max-links", "2", "--bandwidth", "20000", count=4, udp=False):
                d.start()
                devs = wait_online(d, 4)
                mark = log_mark(d)
                data, digest = mcuimg.make_image((6, 1, 0, 0), 100000, seed=8)
                image_id = add_image(d, data)
                ids = push(d, image_id, [x["id"] for x in devs])
                jobs = wait_jobs(d, ids, timeout=180)
                for j in jobs:
                    self.assertEqual((j["outcome"], j["attempts"]), ("updated", 1), j)
                log = log_since(d, mark)
                learned = [int(x) for x in re.findall(r"Adapter hci0 refused a link with \d+ held: its limit is (\d+) "
                                                      r"now", log)]
                self.assertTrue(learned, log[-3000:])
                self.assertEqual(learned[-1], 2, log[-3000:])
        except Exception:
            sys.stderr.write(d.read_log())
            raise
        finally:
            d.stop()


class Jobs(unittest.TestCase):
    def test_limits_retries_revert_cancel(self):
        cfg = ("[jobs]\nmax_running=2\nattempts=2\nretry_delay=1\n"
               "[devices]\nadd=%s\n")
        with Sim("--bandwidth", "40000", count=6) as sim:
            conns = ["udp:127.0.0.1:%d" % (sim.port + i) for i in range(6)]
            with Daemon(config=cfg % " ".join(conns)) as d:
                wait_online(d, 6)
                data, digest = mcuimg.make_image((3, 0, 0, 0), 40000)
                image_id = add_image(d, data)
                by_conn = {x["conn"]: x["id"] for x in devices(d)}
                sim.control("fault 4 revert")
                sim.control("fault 5 drop=1")
                ids = push(d, image_id, [by_conn[c] for c in conns])
                seen_running = 0
                deadline = time.monotonic() + 240
                while time.monotonic() < deadline:
                    _, doc = d.api("GET", "/api/v1/jobs?state=running", expect=200)
                    n = len(doc["jobs"])
                    self.assertLessEqual(n, 2, "max_running=2 exceeded")
                    seen_running = max(seen_running, n)
                    states = [job(d, i)["state"] for i in ids]
                    if all(s in ("succeeded", "failed", "cancelled") for s in states):
                        break
                    time.sleep(0.1)
                self.assertEqual(seen_running, 2)
                jobs = {j["id"]: j for j in (job(d, i) for i in ids)}
                for i in ids[:4]:
                    self.assertEqual(jobs[i]["state"], "succeeded", jobs[i])
                reverted = jobs[ids[4]]
                self.assertEqual(reverted["state"], "failed")
                self.assertEqual(reverted["outcome"], "reverted")
                self.assertEqual(reverted["attempts"], 1, "a revert is final, not retried")
                silent = jobs[ids[5]]
                self.assertEqual(silent["state"], "failed")
                self.assertEqual(silent["attempts"], 2, "retried up to attempts=2")
                self.assertTrue(silent["error"])
                # Cancel: a running job stops, a finished one cannot be cancelled.
                sim.control("clear-faults 5")
                sim.control("reset 5")
                data2, _ = mcuimg.make_image((3, 1, 0, 0), 200000, seed=2)
                image2 = add_image(d, data2, "big.bin")
                [jid] = push(d, image2, [by_conn[conns[0]]])
                d.wait_for(lambda: job(d, jid)["bytes_sent"] > 0, timeout=60, what="upload started")
                status, doc = d.api("POST", "/api/v1/jobs/%d/cancel" % jid)
                self.assertEqual(status, 200, doc)
                self.assertEqual(doc["state"], "cancelled")
                status, doc = d.api("POST", "/api/v1/jobs/%d/cancel" % jid)
                self.assertEqual(status, 409, doc)
                # History rows were written for the jobs (read once smpgwd
                # stopped: while it runs, it has the file to itself).
                self.assertEqual(d.terminate(), 0)
                rows = sql(d.db_path, "SELECT count(*) FROM events WHERE job_id = ?", (jid,))
                self.assertGreaterEqual(rows[0][0], 2)

    def test_erase_timeout_from_the_configuration(self):
        """[jobs] erase_timeout is how long the answer to an upload's first
        chunk may take: the device erases its slot before it answers, and
        a slot of megabytes erased sector by sector outlasts the 40 s the
        daemon waited, with no way to raise it.  A device erasing for 10 s
        fails the job at erase_timeout=1 (the first chunk, sent again,
        times out 6 times behind the erase); after a reload to 20 the
        same push succeeds."""
        base = "[discovery]\nenabled=no\n[devices]\nadd=udp:127.0.0.1:%d\n[jobs]\nattempts=1\n"
        with Sim("--erase-rate", "4000", count=1) as sim, \
                Daemon(config=(base % sim.port) + "erase_timeout=1\n", bus=False) as d:
            [dev] = [x["id"] for x in wait_online(d, 1)]
            data, _ = mcuimg.make_image((3, 0, 0, 0), 40000, seed=7)
            image = add_image(d, data)
            [jid] = push(d, image, [dev], mode="upload-only")
            [j] = wait_jobs(d, [jid], states=("failed",), timeout=90)
            self.assertEqual((j["attempts"], j["bytes_sent"] < 40000), (1, True), j)
            sim.control("reset 0")
            sim.wait_booted(0)
            with open(d.config_path, "w") as f:
                f.write((base % sim.port) + "erase_timeout=20\n")
            mark = log_mark(d)
            d.proc.send_signal(signal.SIGHUP)
            d.wait_for(lambda: "Configuration reloaded" in log_since(d, mark), timeout=10, what="reload")
            [jid] = push(d, image, [dev], mode="upload-only")
            [j] = wait_jobs(d, [jid], timeout=90)
            self.assertEqual(j["outcome"], "uploaded", j)

    def test_push_while_an_image_runs_under_test(self):
        """A device running an image under test (a test-only push) keeps
        its other slot to go back to and refuses a third image
        (IMG_NO_FREE_SLOT) until that image is confirmed or the device
        resets back; the job's error says so, not the refusal alone."""
        base = "[discovery]\nenabled=no\n[devices]\nadd=udp:127.0.0.1:%d\n[jobs]\nattempts=1\n"
        with Sim("--swap-ms", "50", "--boot-ms", "50", "--reset-ms", "20", count=1) as sim, \
                Daemon(config=base % sim.port, bus=False) as d:
            [dev] = [x["id"] for x in wait_online(d, 1)]
            a = add_image(d, mcuimg.make_image((2, 0, 0, 0), 20000, seed=8)[0], "a.bin")
            b = add_image(d, mcuimg.make_image((3, 0, 0, 0), 20000, seed=9)[0], "b.bin")
            [j] = wait_jobs(d, push(d, a, [dev], mode="test-only"))
            self.assertEqual(j["outcome"], "testing", j)
            [j] = wait_jobs(d, push(d, b, [dev]), states=("failed",))
            self.assertIn("IMG_NO_FREE_SLOT", j["error"])
            self.assertIn("it runs 2.0.0+0 under test, not confirmed", j["error"])
            self.assertIn("confirm that image or reset the device, then push again", j["error"])

    def test_declined_reset_is_tried_again(self):
        """An application's reset hook may decline a reset while it is
        busy (Zephyr's MGMT_EVT_OP_OS_MGMT_RESET): that passes, unlike a
        refused image, so the job tries again, and its error says what
        happened.  It failed for good at the first refusal."""
        base = ("[discovery]\nenabled=no\n[devices]\nadd=udp:127.0.0.1:%d\n"
                "[jobs]\nattempts=5\nretry_delay=1\nretry_delay_max=2\n")
        with Sim("--swap-ms", "50", "--boot-ms", "50", "--reset-ms", "20", count=1) as sim, \
                Daemon(config=base % sim.port, bus=False) as d:
            [dev] = [x["id"] for x in wait_online(d, 1)]
            a = add_image(d, mcuimg.make_image((2, 0, 0, 0), 20000, seed=8)[0], "a.bin")
            sim.control("fault 0 reset-busy")
            [jid] = push(d, a, [dev])
            j = d.wait_for(lambda: (lambda x: x if "declined the reset" in (x.get("error") or "") else None)(
                job(d, jid)), timeout=60, what="the declined reset in the job's error")
            self.assertIn("reset: the device refused: ", j["error"], j)
            self.assertIn("the application declined the reset (busy), and the new image is marked and boots "
                          "at the device's next reset", j["error"], j)
            self.assertNotIn(j["state"], ("failed", "succeeded"), j)
            sim.control("clear-faults 0")
            [j] = wait_jobs(d, [jid])
            self.assertEqual(j["outcome"], "updated", j)
            self.assertGreaterEqual(j["attempts"], 2, j)


class Crashes(unittest.TestCase):
    def upload_setup(self, sim, n, d):
        data, digest = mcuimg.make_image((4, 0, 0, 0), 240000, seed=3)
        image_id = add_image(d, data)
        devs = wait_online(d, n)
        ids = push(d, image_id, [x["id"] for x in devs])
        return data, digest, ids

    def test_kill9_during_upload_resumes(self):
        n = 4
        with Sim("--bandwidth", "30000", count=n) as sim:
            conns = ["udp:127.0.0.1:%d" % (sim.port + i) for i in range(n)]
            cfg = "[devices]\nadd=%s\n[daemon]\nflush_interval=1\n" % " ".join(conns)
            with Daemon(config=cfg) as d:
                data, digest, ids = self.upload_setup(sim, n, d)
                d.wait_for(lambda: all(job(d, i)["bytes_sent"] > len(data) * 0.4 for i in ids), timeout=120,
                           what="uploads 40% through")
                time.sleep(1.2)   # one flush interval: progress checkpointed
                offsets = [sim.state(i)["upload"]["off"] for i in range(n)]
                d.kill9()
                self.assertEqual(integrity(d.db_path), "ok")
                stored = sql(d.db_path, "SELECT state, bytes_sent FROM jobs ORDER BY id")
                for state, sent in stored:
                    self.assertEqual(state, "running")
                    self.assertGreater(sent, 0, "progress was checkpointed before the kill")
                d.start()
                jobs = wait_jobs(d, ids, timeout=240)
                for j in jobs:
                    self.assertEqual(j["outcome"], "updated")
                for i in range(n):
                    st = sim.state(i)
                    active = [s for s in st["slots"] if s["active"]][0]
                    self.assertEqual(active["hash"], digest)
                    self.assertTrue(active["confirmed"])
                    # Resumed, not restarted: the device received the image
                    # about once, not once plus the part before the kill.
                    self.assertLess(st["stats"]["upload_bytes"], len(data) + offsets[i] * 0.5,
                                    "device %d got %d bytes for a %d-byte image (offset at kill %d)"
                                    % (i, st["stats"]["upload_bytes"], len(data), offsets[i]))
                self.assertEqual(d.terminate(), 0)
                self.assertEqual(integrity(d.db_path), "ok")

    def test_repeated_kill9_does_not_count_attempts(self):
        """Issue 10 #15: an attempt cut short by kill -9 does not count,
        as one cut short by SIGTERM does not: killed three times during
        its upload, a job with max_attempts 3 ends after one counted
        attempt, not "Attempt 4 of 3"."""
        with Sim("--bandwidth", "30000", count=1) as sim:
            conn = "udp:127.0.0.1:%d" % sim.port
            cfg = "[devices]\nadd=%s\n[daemon]\nflush_interval=1\n[jobs]\nattempts=3\n" % conn
            with Daemon(config=cfg) as d:
                data, digest = mcuimg.make_image((4, 2, 0, 0), 150000, seed=5)
                image_id = add_image(d, data)
                [dev] = wait_online(d, 1)
                [jid] = push(d, image_id, [dev["id"]])
                for fraction in (0.15, 0.35, 0.55):
                    d.wait_for(lambda: job(d, jid)["bytes_sent"] > len(data) * fraction, timeout=120,
                               what="upload %d%% through" % (fraction * 100))
                    time.sleep(1.2)   # one flush interval: the attempt is on record
                    d.kill9()
                    self.assertEqual(sql(d.db_path, "SELECT state, attempts FROM jobs WHERE id = ?", (jid,)),
                                     [("running", 1)])
                    d.start()
                    # After the last kill only a few KiB are left: the
                    # resumed job may be over before the first look.
                    d.wait_for(lambda: job(d, jid)["state"] in ("running", "succeeded"), timeout=30,
                               what="job resumed")
                [j] = wait_jobs(d, [jid], timeout=240)
                self.assertEqual(j["outcome"], "updated")
                self.assertEqual(j["max_attempts"], 3)
                self.assertEqual(j["attempts"], 1, j)
                self.assertNotIn("Attempt 2 of", d.read_log())
                self.assertEqual(d.terminate(), 0)
                rows = sql(d.db_path, "SELECT count(*) FROM events WHERE job_id = ? AND type = 'job-interrupted'",
                           (jid,))
                self.assertEqual(rows[0][0], 3)

    def test_kill9_after_reset_reports_updated(self):
        """Issue 10 #15: killed while the device swaps to the new image
        (confirm-only: it comes back running it, confirmed), the resumed
        job finds the image running.  It says "updated" -- what this job
        did -- judged against the slots it read before its first attempt,
        not "up-to-date"."""
        with Sim("--swap-ms", "3000", count=1) as sim:
            conn = "udp:127.0.0.1:%d" % sim.port
            with Daemon(config="[devices]\nadd=%s\n[daemon]\nflush_interval=1\n" % conn) as d:
                data, digest = mcuimg.make_image((5, 0, 0, 0), 20000, seed=6)
                image_id = add_image(d, data)
                [dev] = wait_online(d, 1)
                self.assertNotEqual(running_hash(dev)[0], digest)
                [jid] = push(d, image_id, [dev["id"]], mode="confirm-only")
                d.wait_for(lambda: job(d, jid)["step"] == "wait-reboot", timeout=60, interval=0.05,
                           what="the device rebooting into the new image")
                d.kill9()
                # The reset is answered first; the reboot (and swap) follow.
                deadline = time.monotonic() + 10
                while not sim.state(0)["rebooting"] and time.monotonic() < deadline:
                    time.sleep(0.02)
                sim.wait_booted(0, timeout=30)
                active = [x for x in sim.state(0)["slots"] if x["active"]][0]
                self.assertEqual((active["hash"], active["confirmed"]), (digest, True))
                d.start()
                [j] = wait_jobs(d, [jid], timeout=120)
                self.assertEqual(j["outcome"], "updated", j)
                self.assertEqual(j["attempts"], 1, j)
                # A push of the image it runs now is what up-to-date means.
                [again] = push(d, image_id, [dev["id"]], mode="confirm-only")
                [j2] = wait_jobs(d, [again], timeout=60)
                self.assertEqual(j2["outcome"], "up-to-date", j2)

    def test_kill9_while_rebooting_resumes(self):
        """A job holds no slot while its device swaps and reboots (state
        rebooting, its reset time stored).  Killed then, the next smpgwd
        finds it rebooting, waits for the device from the stored reset
        time, verifies and confirms: updated, in one attempt, with one
        reset of the device."""
        with Sim("--swap-ms", "4000", count=1) as sim:
            conn = "udp:127.0.0.1:%d" % sim.port
            with Daemon(config="[devices]\nadd=%s\n[daemon]\nflush_interval=1\n" % conn) as d:
                data, digest = mcuimg.make_image((5, 1, 0, 0), 20000, seed=7)
                image_id = add_image(d, data)
                [dev] = wait_online(d, 1)
                [jid] = push(d, image_id, [dev["id"]], mode="test-and-confirm")
                d.wait_for(lambda: job(d, jid)["state"] == "rebooting", timeout=60, interval=0.05,
                           what="the job rebooting")
                # /metrics counts it at work though it holds no slot: rebooting, verify next
                _, _, text = d.http("GET", "/metrics")
                self.assertIn('smpgw_job_phases{state="rebooting",phase="verify"} 1\n', text.decode())
                self.assertIn('smpgw_jobs{state="running"} 0\n', text.decode())
                d.kill9()
                [(state, phase, reset)] = sql(d.db_path, "SELECT state, phase, reset_time FROM jobs WHERE id = ?",
                                              (jid,))
                self.assertEqual((state, phase), ("rebooting", "verify"))
                self.assertGreater(reset or 0, 0)
                d.start()
                self.assertEqual(job(d, jid)["state"], "rebooting")
                [j] = wait_jobs(d, [jid], timeout=120)
                self.assertEqual(j["outcome"], "updated", j)
                self.assertEqual(j["attempts"], 1, j)
                st = sim.state(0)
                active = [x for x in st["slots"] if x["active"]][0]
                self.assertEqual((active["hash"], active["confirmed"]), (digest, True))
                self.assertEqual(st["stats"]["resets"], 1)

    def test_sigterm_checkpoints_and_resumes(self):
        with Sim("--bandwidth", "30000", count=2) as sim:
            conns = ["udp:127.0.0.1:%d" % (sim.port + i) for i in range(2)]
            with Daemon(config="[devices]\nadd=%s\n" % " ".join(conns)) as d:
                data, digest, ids = self.upload_setup(sim, 2, d)
                d.wait_for(lambda: all(job(d, i)["bytes_sent"] > len(data) * 0.3 for i in ids), timeout=120,
                           what="uploads 30% through")
                self.assertEqual(d.terminate(), 0)
                stored = sql(d.db_path, "SELECT state, bytes_sent, attempts FROM jobs ORDER BY id")
                for state, sent, attempts in stored:
                    self.assertEqual(state, "queued", "a stop checkpoints running jobs as queued")
                    self.assertGreater(sent, len(data) * 0.3)
                    self.assertEqual(attempts, 0, "an interrupted attempt does not count")
                d.start()
                wait_jobs(d, ids, timeout=240)

    def test_kill9_during_database_writes(self):
        """Devices are added as fast as REST takes them while the daemon is
        killed at random moments: the file stays intact and every device
        whose creation was answered 201 is still there."""
        with Daemon(config="[discovery]\nenabled=no\n[devices]\nreprobe=3600\n") as d:
            confirmed = set()
            rng = random.Random(6)
            port = 30000
            for round_ in range(5):
                stop = threading.Event()

                def writer():
                    nonlocal port
                    while not stop.is_set():
                        port += 1
                        conn = "udp:127.0.0.9:%d" % port
                        try:
                            status, _, _ = d.http("POST", "/api/v1/devices", {"conn": conn}, timeout=5)
                        except OSError:
                            return
                        if status == 201:
                            confirmed.add(conn)
                t = threading.Thread(target=writer)
                t.start()
                time.sleep(0.3 + rng.random() * 1.0)
                d.kill9()
                stop.set()
                t.join()
                self.assertEqual(integrity(d.db_path), "ok", "round %d" % round_)
                d.start()
                present = {x["conn"] for x in devices(d)}
                missing = confirmed - present
                self.assertFalse(missing, "%d answered 201 but lost, e.g. %s" % (len(missing), sorted(missing)[:5]))
            self.assertGreater(len(confirmed), 20)


class Process(unittest.TestCase):
    def test_sighup_reload_adds_configured_device(self):
        with Sim(count=2) as sim:
            with Daemon(config="[discovery]\nenabled=no\n") as d:
                self.assertEqual(devices(d), [])
                with open(d.config_path, "a") as f:
                    f.write("[devices]\nadd=udp:127.0.0.1:%d\n" % sim.port)
                d.proc.send_signal(signal.SIGHUP)
                d.wait_for(lambda: devices(d), timeout=20, what="device from the reloaded configuration")
                # A broken file on reload keeps the running configuration.
                with open(d.config_path, "a") as f:
                    f.write("[jobs]\nmax_running=0\n")
                d.proc.send_signal(signal.SIGHUP)
                time.sleep(0.5)
                self.assertIsNone(d.proc.poll())
                status, _ = d.api("GET", "/api/v1/health")
                self.assertEqual(status, 200)

    def test_sighup_reloads_job_and_rollout_bounds(self):
        """[jobs] keep and swap_estimate, [rollouts] keep_finished and
        keep_finished_age are documented "reload: yes": a SIGHUP applies
        them (the lowered bounds at once).  max_running_ble_adapter needs
        a BLE adapter to show; hold_slot_during_reboot changes at a restart
        only, with a notice."""
        base = "[discovery]\nenabled=no\n[devices]\nadd=udp:127.0.0.1:%d\n"
        with Sim(count=1) as sim, Daemon(config=(base % sim.port) + "[jobs]\nkeep=10000\n",
                                         bus=False) as d:

            def reload(extra):
                with open(d.config_path, "w") as f:
                    f.write((base % sim.port) + extra)
                mark = log_mark(d)
                d.proc.send_signal(signal.SIGHUP)
                d.wait_for(lambda: "Configuration reloaded" in log_since(d, mark), timeout=10, what="reload")
                return log_since(d, mark)

            [dev] = [x["id"] for x in wait_online(d, 1)]
            data, _ = mcuimg.make_image((3, 0, 0, 0), 4096, seed=5)
            image = add_image(d, data)
            # swap_estimate: the planner's swap time of a board not measured yet
            body = {"image": image, "targets": {"devices": [dev]}}

            def estimate():
                _, plan = d.api("POST", "/api/v1/rollouts/plan", body, expect=200)
                self.assertEqual(plan["estimate"]["assumptions"]["at_default_swap"], 1, plan)
                return plan["estimate"]["duration_s"]
            before = estimate()
            reload("[jobs]\nswap_estimate=3000\n")
            self.assertGreater(estimate(), before + 2000)
            # [rollouts] keep_finished: three cancelled, then a bound of one
            later = "2099-01-01T00:00:00Z"
            ids = [d.api("POST", "/api/v1/rollouts", dict(body, schedule={"start_at": later}),
                         expect=201)[1]["id"] for _ in range(4)]
            for rid in ids[:3]:
                d.api("POST", "/api/v1/rollouts/%d/cancel" % rid, expect=200)

            def kept():
                _, doc = d.api("GET", "/api/v1/rollouts?limit=100", expect=200)
                return sorted(x["id"] for x in doc["rollouts"])
            self.assertEqual(kept(), ids)
            reload("[rollouts]\nkeep_finished=2\n")
            d.wait_for(lambda: kept() == ids[1:], timeout=10, what="keep_finished=2 applied by the reload")
            # keep_finished_age: the finished ones older than a second go
            time.sleep(1.1)
            reload("[rollouts]\nkeep_finished=100\nkeep_finished_age=1\n")
            d.wait_for(lambda: kept() == ids[3:], timeout=10, what="keep_finished_age applied by the reload")
            # [jobs] keep: eleven finished jobs, then a bound of ten
            jobs = []
            for _ in range(11):
                jobs += push(d, image, [dev], mode="upload-only")
                wait_jobs(d, jobs[-1:])
            self.assertEqual(d.api("GET", "/api/v1/jobs?limit=100", expect=200)[1]["total"], 11)
            reload("[jobs]\nkeep=10\n")
            d.wait_for(lambda: d.api("GET", "/api/v1/jobs?limit=100", expect=200)[1]["total"] == 10,
                       timeout=10, what="keep=10 applied by the reload")
            self.assertEqual(d.api("GET", "/api/v1/jobs/%d" % jobs[0])[0], 404)
            # hold_slot_during_reboot: said, not applied
            log = reload("[jobs]\nhold_slot_during_reboot=true\n")
            self.assertIn("hold_slot_during_reboot changes at the next restart", log)

    def test_reload_refused_for_a_bad_tokens_or_key_file(self):
        """A tokens file or key file the new configuration names that
        cannot be used refuses the whole reload: nothing of the new
        configuration is put in place (its device is not added), the old
        tokens and keys stay; the same file fixed, the reload goes."""
        key = image_path("key-ecdsa-p256.pub.pem")
        with Sim(count=1) as sim, Daemon(config="[discovery]\nenabled=no\n[images]\nkeys=%s\n" % key,
                                         tokens=["s3cret"], bus=False) as d:
            with open(d.config_path) as f:
                good = f.read()
            tokens_path = os.path.join(d.dir, "tokens")
            new_tokens = os.path.join(d.dir, "tokens-new")
            with open(image_path("imgtool-unsigned.bin"), "rb") as f:
                unsigned = f.read()

            def refused(config, what, want):
                with open(d.config_path, "w") as f:
                    f.write(config + "[devices]\nadd=udp:127.0.0.1:%d\n" % sim.port)
                mark = log_mark(d)
                d.proc.send_signal(signal.SIGHUP)
                d.wait_for(lambda: "Reload refused" in log_since(d, mark), timeout=10, what="refusal (%s)" % what)
                log = log_since(d, mark)
                self.assertIn(want, log, what)
                self.assertNotIn("Configuration reloaded", log, what)
                self.assertEqual(devices(d), [], what)
                self.assertEqual(d.http("GET", "/api/v1/devices", token=False)[0], 401, what)
                self.assertEqual(d.http("GET", "/api/v1/devices")[0], 200, what)
                # the old key still checks signatures
                status, doc = d.api("POST", "/api/v1/images", unsigned,
                                    headers={"Content-Type": "application/octet-stream"})
                self.assertEqual((status, doc["error"]["code"]), (400, "signature_invalid"), what)

            with open(new_tokens, "w") as f:
                f.write("other\n" + "z" * 5000 + "\n")
            refused(good.replace(tokens_path, new_tokens), "token too long", "tokens-new:2: token longer than 4096")
            refused(good.replace(tokens_path, "/dev/zero"), "tokens special file", "it is a special file")
            refused(good.replace(key, os.path.join(d.dir, "missing.pem")), "key missing", "missing.pem")
            refused(good.replace(key, tokens_path), "key not a key", "Cannot load image signing key")
            # fixed: the new tokens and the device come in together
            with open(new_tokens, "w") as f:
                f.write("other\n")
            with open(d.config_path, "w") as f:
                f.write(good.replace(tokens_path, new_tokens) + "[devices]\nadd=udp:127.0.0.1:%d\n" % sim.port)
            mark = log_mark(d)
            d.proc.send_signal(signal.SIGHUP)
            d.wait_for(lambda: "Configuration reloaded" in log_since(d, mark), timeout=10, what="reload")
            self.assertEqual(d.http("GET", "/api/v1/devices")[0], 401)
            d.token = "other"
            d.wait_for(lambda: devices(d), timeout=10, what="the device of the reloaded configuration")

    def test_reload_never_drops_authentication(self):
        """Issue 10 #12: with a tokens file configured, a configuration
        emptied or replaced by a directory must not reload as "every
        default", which has no tokens file and so no authentication."""
        with Daemon(config="[discovery]\nenabled=no\n", tokens=["s3cret"]) as d:
            self.assertEqual(d.http("GET", "/api/v1/devices", token=False)[0], 401)
            with open(d.config_path) as f:
                good = f.read()

            def reload_and_check(what):
                mark = log_mark(d)
                d.proc.send_signal(signal.SIGHUP)
                d.wait_for(lambda: "Reload refused" in log_since(d, mark) or "Reload failed" in log_since(d, mark),
                           timeout=10, what="the reload's answer (%s)" % what)
                log = log_since(d, mark)
                self.assertNotIn("Configuration reloaded", log, what)
                self.assertIsNone(d.proc.poll(), what)
                self.assertEqual(d.http("GET", "/api/v1/devices", token=False)[0], 401, what)
                self.assertEqual(d.http("GET", "/api/v1/devices")[0], 200, what)
                return log

            # An empty file: it loads, but would switch authentication off.
            open(d.config_path, "w").close()
            log = reload_and_check("empty configuration")
            self.assertIn("tokens_file", log)
            # A directory where the file was.
            os.unlink(d.config_path)
            os.mkdir(d.config_path)
            log = reload_and_check("directory")
            self.assertIn("not a regular file", log)
            # The file back: reloads fine, tokens still required.
            os.rmdir(d.config_path)
            with open(d.config_path, "w") as f:
                f.write(good)
            mark = log_mark(d)
            d.proc.send_signal(signal.SIGHUP)
            d.wait_for(lambda: "Configuration reloaded" in log_since(d, mark), timeout=10, what="reload")
            self.assertEqual(d.http("GET", "/api/v1/devices", token=False)[0], 401)

    def test_config_must_be_a_regular_file(self):
        """--config DIR is an error, not an empty configuration; /dev/null
        stays the way to say "no file"."""
        d = Daemon(start=False)
        try:
            os.unlink(d.config_path)
            os.mkdir(d.config_path)
            p = subprocess.run(d.command(), capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(b"not a regular file", p.stderr)
            os.rmdir(d.config_path)
            os.mkfifo(d.config_path)
            p = subprocess.run(d.command(), capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(b"not a regular file", p.stderr)
            os.unlink(d.config_path)
            os.symlink("/dev/null", d.config_path)
            d.start()
            self.assertEqual(d.api("GET", "/api/v1/health")[0], 200)
        finally:
            d.stop()

    def test_second_daemon_on_the_same_state_refused(self):
        """Issue 10 #6: a second smpgwd on the state directory (or on the
        database) of a running one must not start: both would write the
        same database and delete each other's images as orphans."""
        with Daemon(config="[discovery]\nenabled=no\n") as d:
            status, _ = d.api("POST", "/api/v1/devices", {"conn": "udp:127.0.0.9:4000"})
            self.assertEqual(status, 201)
            second = Daemon(config="[discovery]\nenabled=no\n", state_dir=d.state_dir, bus=False, start=False)
            try:
                p = subprocess.run(second.command(), capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
                self.assertNotEqual(p.returncode, 0)
                err = p.stderr.decode()
                self.assertIn("Another smpgwd (PID %d) is running on the state directory %s"
                              % (d.proc.pid, d.state_dir), err)
                # The same database from another state directory.
                other = os.path.join(second.dir, "other-state")
                cmd = second.command() + ["--state-dir", other, "--db", d.db_path]
                db_dir = os.path.join(second.dir, "db")
                os.makedirs(db_dir)
                moved = os.path.join(db_dir, "moved.db")
                p = subprocess.run(cmd, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn("Another smpgwd", p.stderr.decode())
                # The first one noticed nothing.
                self.assertIsNone(d.proc.poll())
                self.assertEqual([x["conn"] for x in devices(d)], ["udp:127.0.0.9:4000"])
                # Once it stops (even killed), the lock is free again.
                d.kill9()
                d.start()
                self.assertEqual([x["conn"] for x in devices(d)], ["udp:127.0.0.9:4000"])
                # The database moved out of the state directory: the same
                # refusal through the database's own lock.
                d.terminate()
                d.args = ["--db", moved]
                d.start()
                cmd = second.command() + ["--state-dir", other, "--db", moved]
                p = subprocess.run(cmd, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn("Another smpgwd (PID %d) is running on the database %s" % (d.proc.pid, moved),
                              p.stderr.decode())
            finally:
                second.stop()

    def test_sd_notify_watchdog_reload_stopping(self):
        """What systemd sees: READY with a STATUS, WATCHDOG=1 pings at half
        of $WATCHDOG_USEC (after a database check), RELOADING=1 then
        READY=1 around SIGHUP, STOPPING=1 on SIGTERM."""
        d = Daemon(config="[discovery]\nenabled=no\n", start=False, env={"WATCHDOG_USEC": "1000000"})
        try:
            d.start()
            self.assertTrue(any("STATUS=" in n for n in d.notifications), d.notifications)
            pings = [n for n in d.read_notifications(3) if "WATCHDOG=1" in n.split("\n")]
            self.assertGreaterEqual(len(pings), 2, "pings at half of WATCHDOG_USEC=1 s")
            d.proc.send_signal(signal.SIGHUP)
            msgs = "\n".join(d.read_notifications(1.5))
            self.assertIn("RELOADING=1", msgs)
            self.assertIn("READY=1", msgs.split("RELOADING=1", 1)[1])
            d.proc.send_signal(signal.SIGTERM)
            msgs = "\n".join(d.read_notifications(3))
            self.assertIn("STOPPING=1", msgs)
            self.assertEqual(d.proc.wait(10), 0)
            d.proc = None
        finally:
            d.stop()

    def test_watchdog_reads_the_whole_database_once(self):
        """The watchdog's whole-file check (PRAGMA quick_check) stops the
        loop while it reads every page: it runs at the first tick, and the
        ticks after only ask for a read.  With WATCHDOG_USEC=1 s, six or
        more pings in 3.5 s, one quick_check."""
        d = Daemon(config="[daemon]\nlog_level=debug\n[discovery]\nenabled=no\n", start=False,
                   env={"WATCHDOG_USEC": "1000000"})
        try:
            d.start()
            pings = [n for n in d.read_notifications(3.5) if "WATCHDOG=1" in n.split("\n")]
            self.assertGreaterEqual(len(pings), 5, "pings at half of WATCHDOG_USEC=1 s")
            d.log.flush()
            with open(d.log_path) as f:
                log = f.read()
            self.assertEqual(log.count(": quick_check: ok"), 1, log[-2000:])
        finally:
            d.stop()

    def test_bad_configuration_refused(self):
        cases = [
            ("[jobs]\nmax_runing=3\n", "unknown key"),
            ("[jobs]\nmax_running=0\n", "out of range"),
            ("[jobs]\nmode=yolo\n", "invalid value"),
            ("[rest]\ntls_cert=/x.pem\n", "go together"),
            ("[daemon\n", "syntax"),
        ]
        for text, want in cases:
            d = Daemon(config=text, start=False)
            try:
                p = subprocess.run(d.command(), capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
                self.assertNotEqual(p.returncode, 0, text)
                self.assertIn(want, p.stderr.decode(), text)
            finally:
                d.stop()

    def test_version_and_help(self):
        p = subprocess.run([SMPGWD, "--version"], capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        self.assertTrue(p.stdout.startswith(b"smpgwd "))
        p = subprocess.run([SMPGWD, "--bogus"], capture_output=True, timeout=10)
        self.assertNotEqual(p.returncode, 0)

    def test_imgtool_image_with_keys(self):
        key = image_path("key-ecdsa-p256.pub.pem")
        with Daemon(config="[images]\nkeys=%s\n" % key) as d:
            with open(image_path("imgtool-ecdsa-p256.bin"), "rb") as f:
                good = f.read()
            status, doc = d.api("POST", "/api/v1/images", good,
                                headers={"Content-Type": "application/octet-stream"})
            self.assertEqual(status, 201, doc)
            self.assertTrue(doc["signed"])
            with open(image_path("imgtool-unsigned.bin"), "rb") as f:
                unsigned = f.read()
            status, doc = d.api("POST", "/api/v1/images", unsigned,
                                headers={"Content-Type": "application/octet-stream"})
            self.assertEqual(status, 400, doc)
            self.assertEqual(doc["error"]["code"], "signature_invalid")


class BleRebootAdvertising(unittest.TestCase):
    """A verify of a BLE device after its reset connects once the device
    advertises again, not by polling it while it swaps: a Connect() to a
    device that does not advertise holds the adapter's one LE connect in
    progress until it times out (job-advert.c).  smpsim's fake bluetoothd
    shows an advertisement as BlueZ does with an RSSI in the discovery
    filter (a PropertiesChanged of RSSI at each report)."""
    SWAP_MS = 3000

    def push_one(self, fault=None, extra=""):
        """One device (added by the file, [discovery] off), pushed to;
        returns (its job, smpsim's ble-state of it, the ms from when the
        job showed rebooting to when it ended)."""
        d = Daemon(config="[devices]\nadd=ble:C0:DE:00:00:00:00\n[discovery]\nenabled=no\n"
                          "[jobs]\nattempts=1\n" + extra, start=False)
        try:
            d.extra_env["DBUS_SYSTEM_BUS_ADDRESS"] = d.bus.address
            with Sim("--ble", d.bus.address, "--ble-resolve-ms", "40", "--boot-ms", "100", "--swap-ms",
                     str(self.SWAP_MS), "--reset-ms", "50", count=1, udp=False) as sim:
                d.start()
                devs = wait_online(d, 1)
                if fault:
                    self.assertTrue(sim.control("ble-fault 0 %s" % fault)["ok"])
                data, _digest = mcuimg.make_image((6, 3, 0, 0), 20000, seed=11)
                ids = push(d, add_image(d, data), [devs[0]["id"]])
                rebooting = ended = None
                deadline = time.monotonic() + 90
                while ended is None and time.monotonic() < deadline:
                    st = job(d, ids[0])["state"]
                    if st == "rebooting" and rebooting is None:
                        rebooting = time.monotonic()
                    if st in ("succeeded", "failed"):
                        ended = time.monotonic()
                    time.sleep(0.02)
                jobs = wait_jobs(d, ids, timeout=10)
                self.assertIsNotNone(rebooting)
                state = sim.control("ble-state 0")
        except Exception:
            sys.stderr.write(d.read_log())
            raise
        finally:
            d.stop()
        return jobs[0], state, (ended - rebooting) * 1000.0

    def test_verified_when_it_advertises_again(self):
        """No Connect() to the device while it reboots (the probe's, the
        upload's and the verify's connects only), and the verify comes
        within a second of the device's return."""
        j, state, wait_ms = self.push_one()
        self.assertEqual((j["outcome"], j["attempts"]), ("updated", 1), j)
        self.assertEqual((state["stats"]["silent_connects"], state["stats"]["connects"]), (0, 3), state["stats"])
        self.assertLess(wait_ms, self.SWAP_MS + 1000)

    def test_never_seen_falls_back_to_a_slow_poll(self):
        """A device whose advertisements never reach the host (fault
        unseen) is still verified: by the poll a quarter of its reboot
        timeout ([jobs] swap_timeout, 8 s here) before it, 6 s after its
        reset."""
        j, state, wait_ms = self.push_one("unseen", "swap_timeout=8\n")
        self.assertEqual((j["outcome"], j["attempts"]), ("updated", 1), j)
        self.assertEqual(state["stats"]["silent_connects"], 0, state["stats"])
        self.assertGreaterEqual(wait_ms, 5500)


def refused_at_start(testcase, config=None, files=None, timeout=20, rss_limit_mb=512):
    """Starts smpgwd on a configuration that must be refused: it must exit
    non-zero within `timeout` seconds without growing past `rss_limit_mb`
    (a daemon that hangs or eats memory is killed and fails the test).
    Returns its stderr."""
    d = Daemon(config=config or "", start=False, bus=False)
    try:
        for name, content in (files or {}).items():
            path = os.path.join(d.dir, name)
            if content is None:
                os.mkfifo(path)
            else:
                with open(path, "w") as f:
                    f.write(content)
        if config and "@DIR@" in config:
            with open(d.config_path, "w") as f:
                f.write(config.replace("@DIR@", d.dir))
        errf = open(os.path.join(d.dir, "stderr"), "w+")
        p = subprocess.Popen(d.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf)
        deadline = time.monotonic() + timeout
        peak = 0
        try:
            while p.poll() is None:
                try:
                    with open("/proc/%d/status" % p.pid) as f:
                        rss = [int(x.split()[1]) for x in f if x.startswith("VmRSS:")]
                    peak = max(peak, rss[0] // 1024 if rss else 0)
                except (OSError, IndexError):
                    pass
                if peak > rss_limit_mb or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
                errf.seek(0)
                testcase.fail("smpgwd still running after %.1f s, %d MiB resident (limit %d): %s"
                              % (timeout, peak, rss_limit_mb, errf.read()[-2000:]))
        errf.seek(0)
        err = errf.read()
        errf.close()
        testcase.assertNotEqual(p.returncode, 0, err)
        testcase.assertGreater(p.returncode, 0, "killed by signal %d: %s" % (-p.returncode, err))
        return err
    finally:
        d.stop()


class Configuration(unittest.TestCase):
    """Issue 14 #2: what an administrator may write by mistake, or what
    someone with write access to a file it names may put there."""

    def test_long_add_lines_repeat_and_keep_options(self):
        """A 245-character add= line (inih cut lines at 199 bytes), add=
        given again (it adds), and a connection string with options after a
        comma (the doc's own example was split into two entries)."""
        conns = ["udp:127.0.0.9:%d" % (20000 + i) for i in range(15)]
        line = "add=" + " ".join(conns[:14])
        self.assertGreater(len(line), 240)
        serial = "serial:/dev/ttyNOSUCH0,baud=115200"
        cfg = ("[discovery]\nenabled=no\n[devices]\nreprobe=3600\n%s\n  add = %s   ; the last one\nadd=%s\n"
               % (line, conns[14], serial))
        with Daemon(config=cfg, bus=False) as d:
            got = {x["conn"] for x in devices(d)}
            self.assertEqual(got, set(conns) | {serial}, d.read_log())

    def test_long_comment_sets_no_key(self):
        """A comment longer than inih's line was parsed from its 199th byte
        as a line of its own: '#' + 198 characters + 'max_count=1' set
        [devices] max_count."""
        cfg = ("[discovery]\nenabled=no\n[devices]\nreprobe=3600\n#%smax_count=1\n"
               "add=udp:127.0.0.9:30001 udp:127.0.0.9:30002\n" % ("x" * 198))
        with Daemon(config=cfg, bus=False) as d:
            self.assertEqual(len(devices(d)), 2, d.read_log())
            status, doc = d.api("POST", "/api/v1/devices", {"conn": "udp:127.0.0.9:30003"})
            self.assertEqual(status, 201, doc)

    def test_too_long_and_malformed_lines_name_file_and_line(self):
        cases = [
            ("[devices]\n#%s\n" % ("y" * 5000), ":2: line longer than 4096 bytes"),
            ("[devices]\nadd=udp:127.0.0.9:1\n    udp:127.0.0.9:2\n", ":3: syntax error"),
            ("[devices]\nadd=udp:127.0.0.9:1 nocolon\n", ":2: [devices] add: 'nocolon' is not a connection string"),
            ("[devices]\nadd=udp:%s\n" % ("9" * 300), ":2: [devices] add:"),
            ("\n[devices]\nadd=udp:127.0.0.9:1\x00\n", ":3: syntax error: a NUL byte"),
            ("[daemon]\nflush_interval=99\n", ":2: [daemon] flush_interval=99 is out of range"),
            ("[jobs] x\n", ":1: syntax error: text after the section header"),
        ]
        for text, want in cases:
            err = refused_at_start(self, text)
            self.assertIn("smpgwd.conf" + want, err, repr(text[:60]))

    def test_bad_discovery_ranges_refused_at_start(self):
        """doc/smpgwd.md: a bad range refuses the configuration.  A udp range
        was only logged at the first round; 0.0.0.0-255.255.255.255 counted
        2^32 addresses in 32 bits (0) and wrote past its array."""
        for key, rng, why in [
            ("udp", "127.0.0.1:2000-1000", "not a range"),
            ("udp", "127.0.0.2-127.0.0.1:1337", "not a range"),
            ("coap", "127.0.0.1:0", "not a range"),
            ("udp", "127.0.0.1-127.0.16.1:1337", "too many targets"),
            ("coap", "127.0.0.1:1-4097", "too many targets"),
            ("coap", "0.0.0.0-255.255.255.255:1", "too many targets"),
            ("udp", "0.0.0.0-255.255.255.255:1", "too many targets"),
            ("coap", "gateway.example:5683", "not a range"),
        ]:
            err = refused_at_start(self, "[discovery]\n%s=127.0.0.1:1337 %s\n" % (key, rng))
            self.assertIn("smpgwd.conf:2: [discovery] %s: bad range '%s': %s" % (key, rng, why), err)

    def test_bad_range_refuses_reload(self):
        with Daemon(config="[discovery]\ninterval=3600\n", bus=False) as d:
            with open(d.config_path, "a") as f:
                f.write("udp=127.0.0.1:2000-1000\n")
            mark = log_mark(d)
            d.proc.send_signal(signal.SIGHUP)
            d.wait_for(lambda: "bad range" in log_since(d, mark), timeout=10, what="reload refused")
            self.assertNotIn("Configuration reloaded", log_since(d, mark))
            self.assertIsNone(d.proc.poll())

    def test_files_it_names_are_bounded(self):
        """tokens_file=/dev/zero grew without bound (3 GB in 5 s); a FIFO as
        keys= blocked the start in open(); every file is a regular file
        within its cap."""
        big_tokens = "".join("token-%06d\n" % i for i in range(6000))   # 72 KB
        for cfg, files, want in [
            ("[rest]\ntokens_file=/dev/zero\n", {}, "tokens file '/dev/zero': it is a special file"),
            ("[rest]\ntokens_file=@DIR@/fifo\n", {"fifo": None}, "it is a special file"),
            ("[rest]\ntokens_file=@DIR@/big\n", {"big": big_tokens}, "larger than 65536 bytes"),
            ("[rest]\ntokens_file=@DIR@/t\n", {"t": "ok\n" + "z" * 5000 + "\n"}, "/t:2: token longer than 4096"),
            ("[images]\nkeys=@DIR@/fifo\n", {"fifo": None}, "fifo: it is a special file"),
            ("[images]\nkeys=/dev/zero\n", {}, "/dev/zero: it is a special file"),
            ("[rest]\ntls_cert=/dev/zero\ntls_key=/dev/zero\n", {}, "tls_cert"),
        ]:
            err = refused_at_start(self, cfg, files)
            self.assertIn(want, err, cfg)

    def test_reload_from_dev_zero_refused_and_sigterm_works(self):
        """--config pointing at /dev/zero spun at 100 % CPU on SIGHUP and
        ignored SIGTERM; it is refused before anything is read."""
        with Daemon(config="[discovery]\nenabled=no\n", bus=False) as d:
            os.unlink(d.config_path)
            os.symlink("/dev/zero", d.config_path)
            mark = log_mark(d)
            d.proc.send_signal(signal.SIGHUP)
            d.wait_for(lambda: "not a regular file" in log_since(d, mark), timeout=10, what="reload refused")
            self.assertEqual(d.api("GET", "/api/v1/health")[0], 200)
            self.assertEqual(d.terminate(timeout=10), 0)

    def test_config_file_bounded(self):
        d = Daemon(start=False, bus=False)
        try:
            with open(d.config_path, "w") as f:
                f.write("# filler\n" * 120000)   # 1.08 MB
            p = subprocess.run(d.command(), capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(b"larger than 1048576 bytes", p.stderr)
        finally:
            d.stop()

    def test_check_config(self):
        """`smpgwd --check-config`, the unit's first ExecReload=: 0 and
        "PATH: valid" for a configuration smpgwd starts with; non-zero with
        the file and line, or the file it names, for one it would refuse;
        nothing started (no database, no port)."""
        d = Daemon(start=False, bus=False)
        try:
            state = os.path.join(d.dir, "state-not-made")
            tokens = os.path.join(d.dir, "tokens")
            with open(tokens, "w") as f:
                f.write("s3cret\n")

            def check(config, *flags):
                with open(d.config_path, "w") as f:
                    f.write(config)
                return subprocess.run([SMPGWD, "--config", d.config_path, "--state-dir", state,
                                       "--check-config"] + list(flags),
                                      capture_output=True, timeout=20, stdin=subprocess.DEVNULL)

            good = "[discovery]\nenabled=no\n[rest]\ntokens_file=%s\n" % tokens
            p = check(good)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.decode(), "%s: valid\n" % d.config_path)
            for config, want in [
                ("[jobs]\nattempts=0\n", "smpgwd.conf:2: [jobs] attempts=0 is out of range"),
                ("[discovery]\nudp=127.0.0.1:2000-1000\n", "smpgwd.conf:2: [discovery] udp: bad range"),
                ("[jobs] x\n", "smpgwd.conf:1: syntax error"),
                (good.replace(tokens, tokens + "-missing"), "tokens-missing"),
                ("[images]\nkeys=%s\n" % tokens, "Cannot load image signing key"),
            ]:
                p = check(config)
                self.assertNotEqual(p.returncode, 0, config)
                self.assertIn(want, p.stderr.decode(), config)
                self.assertEqual(p.stdout, b"", config)
            # the flags count as at a start: no REST, no tokens file read
            p = check(good.replace(tokens, tokens + "-missing"), "--rest", "off")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertFalse(os.path.exists(state), "a check creates nothing")
        finally:
            d.stop()


def build_root():
    return os.environ.get("MESON_BUILD_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(SMPGWD)))


def system_bus_policy_dirs():
    """The directories the system bus reads policies from: the <includedir>s
    of dbus-daemon's own system.conf (relative ones are relative to it)."""
    import xml.etree.ElementTree as ET
    conf = "/usr/share/dbus-1/system.conf"
    return {os.path.normpath(os.path.join(os.path.dirname(conf), e.text.strip()))
            for e in ET.parse(conf).getroot().iter("includedir")}


# dbus-daemon(1), <standard_system_servicedirs/>: where the system bus looks
# for activation files (system.conf names no other <servicedir>).
SYSTEM_BUS_SERVICE_DIRS = {"/usr/local/share/dbus-1/system-services", "/usr/share/dbus-1/system-services",
                           "/lib/dbus-1/system-services"}


@unittest.skipUnless(have("meson") and have("systemd-analyze") and have("systemctl") and
                     os.path.exists("/usr/share/dbus-1/system.conf"),
                     "needs meson, systemd-analyze, systemctl and dbus-daemon's system.conf")
class Install(unittest.TestCase):
    """Issue 10 #7 and #8: `meson install` into a DESTDIR, as a package
    build or `sudo meson install` would write the files, then the files
    judged by the tools that read them (systemctl, systemd-sysusers,
    systemd-analyze) and by dbus-daemon's own configuration."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="smpgw-install-")
        cls.destdir = os.path.join(cls.tmp.name, "root")
        opts = {o["name"]: o["value"] for o in json.loads(subprocess.check_output(
            ["meson", "introspect", "--buildoptions", build_root()], stdin=subprocess.DEVNULL))}
        cls.prefix = opts["prefix"]
        cls.sysconfdir = os.path.join(cls.prefix, opts["sysconfdir"])
        cls.datadir = os.path.join(cls.prefix, opts["datadir"])
        cls.install()
        cls.files = cls.walk()   # before the tests add links and files of their own

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def install(cls):
        p = subprocess.run(["meson", "install", "-C", build_root(), "--destdir", cls.destdir, "--no-rebuild",
                            "--quiet"], capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
        if p.returncode != 0:
            raise AssertionError("meson install: %s%s" % (p.stdout.decode(), p.stderr.decode()))

    @classmethod
    def walk(cls):
        """Every file in the DESTDIR, as its path on the target system."""
        out = []
        for root, dirs, files in os.walk(cls.destdir):
            for f in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                out.append("/" + os.path.relpath(os.path.join(root, f), cls.destdir))
        return sorted(out)

    def one(self, name):
        """The one file of that name the first install wrote."""
        found = [f for f in self.files if os.path.basename(f) == name]
        self.assertEqual(len(found), 1, (name, found))
        return found[0]

    def target(self, path):
        return os.path.join(self.destdir, path.lstrip("/"))

    def test_configuration_never_overwritten(self):
        """The configuration is the operator's: nothing is installed where
        smpgwd reads it, smpgwd reads it from the build's sysconfdir, and
        an edited file survives the next install."""
        help_text = subprocess.check_output([SMPGWD, "--help"]).decode()
        config_path = re.search(r"--config FILE +configuration file \(default (\S+)\)", help_text).group(1)
        self.assertEqual(config_path, os.path.join(self.sysconfdir, "smpgw", "smpgwd.conf"),
                         "smpgwd reads its configuration below the build's sysconfdir")
        self.assertEqual([f for f in self.files if f.startswith(self.sysconfdir + "/smpgw")
                          or f.startswith("/etc/smpgw")], [], "nothing installed into the configuration directory")
        example = self.one("smpgwd.conf.example")
        self.assertEqual(example, os.path.join(self.datadir, "smpgw", "smpgwd.conf.example"))
        with open(self.target(example)) as f:
            text = f.read()
        self.assertIn(config_path, text, "the example says where the configuration goes")
        # The operator installs and edits the configuration ...
        edited = text + "\n[jobs]\nattempts=5\n# edited by the operator\n"
        os.makedirs(os.path.dirname(self.target(config_path)), exist_ok=True)
        with open(self.target(config_path), "w") as f:
            f.write(edited)
        # ... which smpgwd runs with ...
        with Daemon(config=edited, bus=False) as d:
            self.assertEqual(d.api("GET", "/api/v1/health")[0], 200)
        # ... and the next install (an upgrade) keeps.
        self.install()
        with open(self.target(config_path)) as f:
            self.assertEqual(f.read(), edited)

    def test_files_where_systemd_and_dbus_read_them(self):
        policy = self.one("org.smpgw.conf")
        self.assertIn(os.path.dirname(policy), system_bus_policy_dirs(),
                      "the bus policy is where the system bus reads policies")
        activation = self.one("org.smpgw.service")
        self.assertIn(os.path.dirname(activation), SYSTEM_BUS_SERVICE_DIRS)
        # systemctl finds the unit where it was installed, and enables it
        # (with its D-Bus activation alias).
        p = subprocess.run(["systemctl", "--root=" + self.destdir, "enable", "smpgwd.service"],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        for link in ("etc/systemd/system/multi-user.target.wants/smpgwd.service",
                     "etc/systemd/system/dbus-org.smpgw.service"):
            self.assertTrue(os.path.islink(os.path.join(self.destdir, link)), link)
        # systemd-sysusers reads the sysusers.d file and creates the user.
        p = subprocess.run(["systemd-sysusers", "--root=" + self.destdir, "--cat-config"], capture_output=True,
                           timeout=60)
        self.assertIn("# %s\n" % self.target(self.one("smpgwd.conf")), p.stdout.decode())
        # The unit's ExecStart= is the installed daemon.
        unit_path = self.one("smpgwd.service")
        with open(self.target(unit_path)) as f:
            unit = f.read()
        exec_start = re.search(r"^ExecStart=(\S+)", unit, re.M).group(1)
        self.assertTrue(os.access(self.target(exec_start), os.X_OK), exec_start)
        # A reload checks the configuration first, with the same daemon,
        # and signals only if it is valid (ExecReload= lines run in order,
        # the first failure ending the reload).
        reload = re.findall(r"^ExecReload=(.*)$", unit, re.M)
        self.assertEqual(reload, [exec_start + " --check-config", "/bin/kill -HUP $MAINPID"])

    def unit_for_analysis(self):
        """The installed unit with ExecStart= pointing into the DESTDIR, so
        systemd-analyze finds the binary it names."""
        unit_path = self.one("smpgwd.service")
        with open(self.target(unit_path)) as f:
            unit = f.read()
        exec_start = re.search(r"^ExecStart=(\S+)", unit, re.M).group(1)
        path = os.path.join(self.tmp.name, "smpgwd.service")
        with open(path, "w") as f:
            # ExecStart= and the check of ExecReload=
            f.write(re.sub(r"^(Exec\w+=)" + re.escape(exec_start) + r"\b",
                           lambda m: m.group(1) + self.target(exec_start), unit, flags=re.M))
        return path, unit

    def test_unit_verifies(self):
        path, _ = self.unit_for_analysis()
        p = subprocess.run(["systemd-analyze", "verify", "--man=no", path], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_unit_allows_the_pi_uart(self):
        """Issue 10 #8: the serial transport must be able to open the
        Raspberry Pi's UARTs (ttyAMA*: PL011; ttyS0: the mini UART;
        /dev/serial0 links to one of them) and USB serial devices, with
        the unit's hardening at 1.5 or better."""
        path, unit = self.unit_for_analysis()
        p = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", path],
                           capture_output=True, timeout=60)
        out = p.stdout.decode()
        # systemd's own reading of DeviceAllow=: "char-ttyAMA:rw ..."
        line = [x for x in out.splitlines() if "DeviceAllow=" in x][0]
        allowed = dict(re.findall(r"char-(\w+):(\w+)", line))
        for group in ("ttyAMA", "ttyS", "ttyACM", "ttyUSB"):
            self.assertEqual(allowed.get(group), "rw", (group, line))
        exposure = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out).group(1))
        self.assertLessEqual(exposure, 1.5, out[-500:])
        self.assertIn("dialout", re.search(r"^SupplementaryGroups=(.*)$", unit, re.M).group(1).split())
        self.assertIn("DevicePolicy=closed", unit)


JOURNALNS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "journalns.py")
DEVICE_STATE_ID = "334c24f67cab42638b888443a4e9c690"
JOB_STATE_ID = "b00bb5ee6fd64f6e84a7fcd3b7589d2f"


class JournalDaemon(Daemon):
    """smpgwd as systemd runs it with StandardOutput=journal, against a
    real systemd-journald in a mount namespace (tests/daemon/journalns.py)."""

    def __init__(self, **kw):
        super().__init__(start=False, **kw)
        self.journal_dir = os.path.join(self.dir, "journal")
        os.makedirs(self.journal_dir)

    def command(self):
        return (["unshare", "--mount", "--propagation", "private", "/usr/bin/python3", JOURNALNS,
                 self.journal_dir, "--"] + super().command())

    def entries(self):
        """smpgwd's own entries (not its stdout stream), as journalctl reads the files."""
        p = subprocess.run(["journalctl", "--directory", self.journal_dir, "--output", "json", "--no-pager",
                            "SYSLOG_IDENTIFIER=smpgwd", "_TRANSPORT=journal"],
                           capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise AssertionError("journalctl: %s" % p.stderr.decode())
        return [json.loads(line) for line in p.stdout.decode().splitlines() if line.strip()]

    def stop(self):
        """smpgwd first (its last words reach the journal), then journald
        (the namespace goes with it), then the harness's cleanup."""
        rc = self.terminate() if self.proc else 0
        pid_path = os.path.join(self.dir, "journald.pid")
        if os.path.exists(pid_path):
            with open(pid_path) as f:
                pid = int(f.read())
            try:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
                    time.sleep(0.02)
            except ProcessLookupError:
                pass
        super().stop()
        return rc


@unittest.skipUnless(os.geteuid() == 0 and os.path.exists("/lib/systemd/systemd-journald") and have("unshare")
                     and have("journalctl"), "needs root, systemd-journald, unshare and journalctl")
class Journal(unittest.TestCase):
    def test_journal_fields(self):
        """Issue 10 #16: in the journal, MESSAGE carries the context
        stderr shows ("device 2 udp:...: new → unreachable"), CODE_FILE,
        CODE_LINE and CODE_FUNC are the caller's, and device and job state
        changes carry their documented MESSAGE_ID."""
        with open(os.path.join(SRCDIR, "doc", "smpgwd.md")) as f:
            doc = f.read()
        self.assertIn(DEVICE_STATE_ID, doc)
        self.assertIn(JOB_STATE_ID, doc)
        with Sim(count=1) as sim:
            live = "udp:127.0.0.1:%d" % sim.port
            dead = "udp:127.0.0.1:%d" % free_udp_port()
            cfg = "[discovery]\nenabled=no\n[devices]\nadd=%s %s\nprobe_timeout=1\n" % (live, dead)
            d = JournalDaemon(config=cfg)
            try:
                d.start()
                wait_online(d, 1)
                by_conn = {x["conn"]: x["id"] for x in devices(d)}
                d.wait_for(lambda: [x for x in devices(d) if x["state"] == "unreachable"], timeout=30,
                           what="the dead device unreachable")
                data, digest = mcuimg.make_image((7, 0, 0, 0), 8000, seed=7)
                image_id = add_image(d, data)
                [jid] = push(d, image_id, [by_conn[live]])
                wait_jobs(d, [jid], timeout=60)

                def find(message):
                    return [e for e in d.entries() if e.get("MESSAGE") == message]

                def entry(message):
                    return d.wait_for(lambda: find(message), timeout=10, what="journal entry %r" % message)[0]

                e = entry("device %d %s: new → unreachable" % (by_conn[dead], dead))
                self.assertEqual(e.get("MESSAGE_ID"), DEVICE_STATE_ID)
                self.assertEqual(e.get("DEVICE_ID"), str(by_conn[dead]))
                self.assertEqual(e.get("DEVICE_CONN"), dead)
                self.assertEqual(e.get("PRIORITY"), "5")
                self.assertEqual(e.get("CODE_FILE"), "daemon/device.c")
                self.assertEqual(e.get("CODE_FUNC"), "device_set_state")
                self.assertTrue(e.get("CODE_LINE", "").isdigit(), e)
                e = entry("device %d %s: new → online" % (by_conn[live], live))
                self.assertEqual(e.get("MESSAGE_ID"), DEVICE_STATE_ID)
                self.assertEqual(e.get("PRIORITY"), "6")

                prefix = "job %d (device %d): " % (jid, by_conn[live])
                jobs = d.wait_for(lambda: [x for x in d.entries() if x.get("JOB_ID") == str(jid) and
                                           x.get("MESSAGE_ID") == JOB_STATE_ID and
                                           x["MESSAGE"].startswith(prefix + "Job succeeded")] and
                                  [x for x in d.entries() if x.get("JOB_ID") == str(jid)],
                                  timeout=10, what="the job's journal entries")
                states = [x for x in jobs if x.get("MESSAGE_ID") == JOB_STATE_ID]
                texts = [x["MESSAGE"][len(prefix):] for x in states]
                self.assertTrue(all(x["MESSAGE"].startswith(prefix) for x in jobs), jobs)
                self.assertTrue(texts[0].startswith("Queued: 7.0.0"), texts)
                self.assertTrue(texts[1].startswith("Attempt 1 of 3: pushing"), texts)
                self.assertEqual(texts[-1], "Job succeeded (updated)")
                for x in states:
                    self.assertIn(x.get("CODE_FILE"), ("daemon/job.c", "daemon/job-scheduler.c"), x)
                    self.assertEqual(x.get("IMAGE_ID"), digest)
                    self.assertEqual(x.get("DEVICE_ID"), str(by_conn[live]))
                self.assertEqual([(x["CODE_FILE"], x["CODE_FUNC"]) for x in (states[0], states[1], states[-1])],
                                 [("daemon/job.c", "job_create"), ("daemon/job-scheduler.c", "job_start"),
                                  ("daemon/job.c", "job_finish")])

                # Every entry names where it was logged, never the log wrapper.
                everything = d.entries()
                self.assertGreater(len(everything), 5)
                for x in everything:
                    self.assertTrue(x.get("CODE_FILE", "").startswith("daemon/"), x)
                    self.assertNotEqual(x.get("CODE_FILE"), "daemon/log.c", x)
                    self.assertTrue(x.get("CODE_FUNC") and x.get("CODE_LINE", "").isdigit(), x)
                [running] = [x for x in everything if x["MESSAGE"].startswith("smpgwd ")]
                self.assertEqual((running["CODE_FILE"], running["CODE_FUNC"]), ("daemon/main.c", "run"))
                # Nothing went to the stream as plain text instead.
                p = subprocess.run(["journalctl", "--directory", d.journal_dir, "--output", "cat", "--no-pager",
                                    "_TRANSPORT=stdout"], capture_output=True, timeout=30)
                self.assertEqual(p.stdout.decode().strip(), "")
            except Exception:
                sys.stderr.write(d.read_log())
                raise
            finally:
                d.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
