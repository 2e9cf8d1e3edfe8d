#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Rollouts end to end (doc/rollouts.md): smpgwd and smpsim as processes,
REST over loopback, the rollout's rows in a real SQLite file.  Waves with
a canary whose revert pauses the rollout, resume, cancel, kill -9 in the
middle and completion after the restart, a window that opens a few
seconds after the start, the reboot budgets (checked from the member
events), device labels and filters, 200 devices over UDP, CoAP and BLE
(smpsim's fake BlueZ) with faults, and the plan's estimate against a
measured run."""

import json
import os
import sys
import threading
import time
import unittest
import http.client

sys.path.insert(0, os.path.dirname(__file__))
from daemonharness import Daemon, Sim, sql  # noqa: E402
import mcuimg  # noqa: E402

FINISHED = ("completed", "cancelled", "aborted")


def add_image(d, data, name="test.bin"):
    status, doc = d.api("POST", "/api/v1/images?name=" + name, data,
                        headers={"Content-Type": "application/octet-stream"})
    if status != 201:
        raise AssertionError("image upload: %d %r" % (status, doc))
    return doc["id"]


def devices(d):
    out = []
    while True:
        _, doc = d.api("GET", "/api/v1/devices?limit=500&offset=%d" % len(out), expect=200)
        out += doc["devices"]
        if not doc["devices"] or len(out) >= doc["total"]:
            return out


def wait_online(d, count, timeout=90):
    def ok():
        devs = devices(d)
        online = [x for x in devs if x["state"] == "online" and x["images"]]
        return online if len(online) >= count else None
    return d.wait_for(ok, timeout=timeout, what="%d devices online" % count)


def rollout(d, rid):
    _, doc = d.api("GET", "/api/v1/rollouts/%d" % rid, expect=200)
    return doc


def members(d, rid, **query):
    out = []
    while True:
        q = "&".join("%s=%s" % kv for kv in query.items())
        _, doc = d.api("GET", "/api/v1/rollouts/%d/members?limit=500&offset=%d%s%s"
                       % (rid, len(out), "&" if q else "", q), expect=200)
        out += doc["members"]
        if not doc["members"] or len(out) >= doc["total"]:
            return out


def wait_state(d, rid, states, timeout=180):
    if isinstance(states, str):
        states = (states,)
    return d.wait_for(lambda: (lambda r: r if r["state"] in states else None)(rollout(d, rid)),
                      timeout=timeout, interval=0.2, what="rollout %d %s" % (rid, "/".join(states)))


def running_hash(dev):
    for s in dev["images"]:
        if s["active"]:
            return s["hash"], s["confirmed"]
    return None, False


def conns_of(sim, n, first=0):
    return ["udp:127.0.0.1:%d" % (sim.port + i) for i in range(first, first + n)]


def config_for(conns, extra=""):
    return "[devices]\nadd=%s\n%s" % (" ".join(conns), extra)


class EventLog:
    """Reads /api/v1/events (SSE) in a thread and keeps every rollout-*
    event: the budget checks read the member states from them."""

    def __init__(self, d, types="rollout-added,rollout-state,rollout-member,rollout-progress"):
        self.events = []
        self.stop = False
        self.conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=300)
        self.conn.request("GET", "/api/v1/events?types=" + types)
        self.resp = self.conn.getresponse()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        kind = None
        try:
            while not self.stop:
                line = self.resp.fp.readline()
                if not line:
                    return
                line = line.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind:
                    self.events.append((kind, json.loads(line[6:])))
                    kind = None
        except (OSError, ValueError):
            return

    def close(self):
        self.stop = True
        try:
            self.conn.sock.shutdown(2)
        except OSError:
            pass
        self.conn.close()


def max_concurrent(events, rid, states, relay_ids=None):
    """The most members of rollout rid in any of states at once, as the
    rollout-member events tell it (optionally only relay devices)."""
    now = {}
    peak = 0
    for kind, data in events:
        if kind != "rollout-member" or data.get("rollout") != rid:
            continue
        if relay_ids is not None and data["device"] not in relay_ids:
            continue
        now[data["device"]] = data["state"]
        peak = max(peak, sum(1 for s in now.values() if s in states))
    return peak


ACTIVE = ("staging", "staged", "activating", "rebooting", "verifying")
# Members holding a reboot token: told they may reset, until their job ends.
TOKEN = ("activating", "rebooting", "verifying")


class Waves(unittest.TestCase):
    def test_canary_revert_pauses_resume_completes(self):
        """Wave 0 (the canary) reverts: the rollout pauses at once with
        reason 'reverted' and no member of a later wave was started; after
        resume the other waves run and every other device ends on the new
        image, confirmed.  The history and the SSE events say so."""
        n = 7
        with Sim("--swap-ms", "200", "--boot-ms", "100", count=n) as sim:
            conns = conns_of(sim, n)
            with Daemon(config=config_for(conns)) as d:
                wait_online(d, n)
                data, digest = mcuimg.make_image((2, 0, 0, 0), 16384)
                image = add_image(d, data)
                ids = sorted(x["id"] for x in devices(d))
                events = EventLog(d)
                # The canary is the fastest device; no job has measured a
                # rate yet, so the order is by id: the first device.
                sim.control("fault 0 revert")
                status, doc = d.api("POST", "/api/v1/rollouts", {
                    "image": image, "name": "canary test",
                    "targets": {"devices": ids},
                    "policy": {"canary": "1", "wave_size": "3", "attempts": 1},
                }, expect=201)
                rid = doc["id"]
                self.assertEqual(doc["waves"], 3)
                r = wait_state(d, rid, ("paused",) + FINISHED, timeout=120)
                self.assertEqual(r["state"], "paused", r)
                self.assertIn("reverted", r["paused_reason"])
                ms = {m["device"]: m for m in members(d, rid)}
                self.assertEqual(ms[ids[0]]["state"], "failed")
                self.assertEqual(ms[ids[0]]["reason"], "reverted")
                for i in ids[1:]:
                    self.assertEqual(ms[i]["state"], "pending", "a later wave started: %r" % ms[i])
                # resume: the other waves run to the end
                status, doc = d.api("POST", "/api/v1/rollouts/%d/resume" % rid, expect=200)
                r = wait_state(d, rid, FINISHED, timeout=180)
                self.assertEqual(r["state"], "completed", r)
                self.assertEqual(r["counts"]["succeeded"], n - 1)
                self.assertEqual(r["counts"]["failed"], 1)
                self.assertEqual(r["failures"], [{"device": ids[0], "reason": "reverted", "wave": 0}])
                by_id = {x["id"]: x for x in devices(d)}
                for i in ids[1:]:
                    self.assertEqual(running_hash(by_id[i]), (digest, True))
                # smpsim agrees, independently of the daemon
                for dev in range(1, n):
                    st = sim.state(dev)
                    active = [s for s in st["slots"] if s.get("active")]
                    self.assertEqual(active[0]["hash"], digest, st)
                # a finished rollout refuses controls
                status, doc = d.api("POST", "/api/v1/rollouts/%d/resume" % rid)
                self.assertEqual(status, 409, doc)
                time.sleep(1.2)
                events.close()
                kinds = [k for k, _ in events.events]
                self.assertIn("rollout-added", kinds)
                self.assertIn("rollout-member", kinds)
                states = [e["state"] for k, e in events.events if k == "rollout-state" and e["id"] == rid]
                self.assertIn("paused", states)
                self.assertEqual(states[-1], "completed")
                # wave order: no member of wave w+1 started before wave w finished
                started = [e["device"] for k, e in events.events
                           if k == "rollout-member" and e["state"] == "staging"]
                first = {}
                for pos, dev in enumerate(started):
                    first.setdefault(dev, pos)
                waves = {m["device"]: m["wave"] for m in members(d, rid)}
                order = sorted(first, key=first.get)
                self.assertEqual([waves[x] for x in order], sorted(waves[x] for x in order))
                self.assertEqual(d.terminate(), 0)
                rows = sql(d.db_path, "SELECT count(*) FROM events WHERE type LIKE 'rollout-%'")
                self.assertGreater(rows[0][0], n)
                rows = sql(d.db_path, "SELECT state FROM rollout WHERE id = ?", (rid,))
                self.assertEqual(rows[0][0], "completed")

    def test_cancel_leaves_nothing_half_activated(self):
        """Cancel while uploads run: pending members are cancelled, uploads
        stop, a member told to test is followed through to confirm; every
        device ends on one image, confirmed, with nothing pending."""
        n = 4
        with Sim("--bandwidth", "20000", "--swap-ms", "300", count=n) as sim:
            conns = conns_of(sim, n)
            with Daemon(config=config_for(conns, "[jobs]\nmax_running=4\n")) as d:
                wait_online(d, n)
                data, digest = mcuimg.make_image((2, 1, 0, 0), 60000, seed=3)
                image = add_image(d, data)
                ids = sorted(x["id"] for x in devices(d))
                _, doc = d.api("POST", "/api/v1/rollouts", {
                    "image": image, "targets": {"devices": ids},
                    "policy": {"canary": "3", "wave_size": "1", "max_rebooting": 3},
                }, expect=201)
                rid = doc["id"]
                d.wait_for(lambda: any(m["bytes_sent"] > 0 for m in members(d, rid)), timeout=60,
                           what="an upload under way")
                _, doc = d.api("POST", "/api/v1/rollouts/%d/cancel" % rid, expect=200)
                self.assertEqual(doc["state"], "cancelled")
                status, doc = d.api("POST", "/api/v1/rollouts/%d/cancel" % rid)
                self.assertEqual(status, 409, doc)
                # every job of the rollout finishes
                d.wait_for(lambda: not d.api("GET", "/api/v1/jobs?state=running")[1]["jobs"]
                           and not d.api("GET", "/api/v1/jobs?state=queued")[1]["jobs"],
                           timeout=60, what="the rollout's jobs to end")
                ms = members(d, rid)
                self.assertEqual(ms[-1]["state"], "cancelled", "the last wave never started")
                for m in ms:
                    self.assertIn(m["state"], ("cancelled", "succeeded"), m)
                for dev in range(n):
                    sim.wait_booted(dev, timeout=20)
                    slots = sim.state(dev)["slots"]
                    active = [x for x in slots if x.get("active")]
                    self.assertEqual(len(active), 1, slots)
                    self.assertTrue(active[0]["confirmed"], slots)
                    self.assertFalse(any(x.get("pending") for x in slots), "half activated: %r" % slots)

    def test_pause_holds_and_resume_goes_on(self):
        """A user's pause starts no new member; resume completes it."""
        n = 4
        with Sim("--bandwidth", "40000", count=n) as sim:
            conns = conns_of(sim, n)
            with Daemon(config=config_for(conns)) as d:
                wait_online(d, n)
                data, digest = mcuimg.make_image((2, 2, 0, 0), 30000, seed=4)
                image = add_image(d, data)
                ids = sorted(x["id"] for x in devices(d))
                _, doc = d.api("POST", "/api/v1/rollouts", {
                    "image": image, "targets": {"devices": ids},
                    "policy": {"canary": "1", "wave_size": "1"},
                }, expect=201)
                rid = doc["id"]
                _, doc = d.api("POST", "/api/v1/rollouts/%d/pause" % rid, expect=200)
                self.assertEqual(doc["state"], "paused")
                self.assertEqual(doc["paused_reason"], "user")
                time.sleep(3)
                started = [m for m in members(d, rid) if m["state"] != "pending"]
                self.assertLessEqual(len(started), 1, started)
                status, _ = d.api("POST", "/api/v1/rollouts/%d/resume" % rid, expect=200)
                r = wait_state(d, rid, FINISHED, timeout=120)
                self.assertEqual(r["state"], "completed", r)
                self.assertEqual(r["counts"]["succeeded"], n)

    def test_threshold_abort_and_deadline(self):
        """failure_action abort: the canary's failure aborts the rollout
        with the threshold's sentence and cancels the later waves; a
        deadline that passes aborts a rollout with its members unfinished."""
        n = 3
        with Sim("--bandwidth", "5000", count=n) as sim:
            conns = conns_of(sim, n)
            with Daemon(config=config_for(conns)) as d:
                wait_online(d, n)
                ids = sorted(x["id"] for x in devices(d))
                sim.control("fault 0 reject")
                data, digest = mcuimg.make_image((2, 3, 0, 0), 4096, seed=12)
                image = add_image(d, data)
                _, doc = d.api("POST", "/api/v1/rollouts", {
                    "image": image, "targets": {"devices": ids},
                    "policy": {"canary": "1", "wave_size": "1", "failure_action": "abort", "revert_halt": 0,
                               "attempts": 1},
                }, expect=201)
                r = wait_state(d, doc["id"], FINISHED, timeout=60)
                self.assertEqual(r["state"], "aborted", r)
                self.assertIn("failure-threshold", r["error"])
                self.assertEqual(r["counts"]["cancelled"], n - 1, r)
                self.assertEqual(r["failures"], [{"device": ids[0], "reason": "reverted", "wave": 0}])
                # a deadline 4 s away, uploads that take 10 s each
                sim.control("clear-faults 0")
                data, digest = mcuimg.make_image((2, 4, 0, 0), 50000, seed=13)
                image = add_image(d, data, "slow.bin")
                deadline = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 4))
                _, doc = d.api("POST", "/api/v1/rollouts", {
                    "image": image, "targets": {"devices": ids[1:]},
                    "schedule": {"deadline": deadline}, "policy": {"canary": "1", "wave_size": "1"},
                }, expect=201)
                r = wait_state(d, doc["id"], FINISHED, timeout=60)
                self.assertEqual(r["state"], "aborted", r)
                self.assertIn("deadline", r["error"])
                status, _ = d.api("POST", "/api/v1/rollouts", {
                    "image": image, "targets": {"devices": ids}, "schedule": {"deadline": "2001-01-01T00:00:00Z"}})
                self.assertEqual(status, 400)


class Restart(unittest.TestCase):
    def test_kill9_mid_rollout_then_completion(self):
        """kill -9 of smpgwd while a wave uploads: after the restart the
        rollout goes on from where it stood (the database and the jobs
        agree) and ends with every device updated, confirmed."""
        n = 6
        with Sim("--bandwidth", "30000", "--swap-ms", "200", count=n) as sim:
            conns = conns_of(sim, n)
            with Daemon(config=config_for(conns)) as d:
                wait_online(d, n)
                data, digest = mcuimg.make_image((3, 0, 0, 0), 40000, seed=5)
                image = add_image(d, data)
                ids = sorted(x["id"] for x in devices(d))
                _, doc = d.api("POST", "/api/v1/rollouts", {
                    "image": image, "targets": {"devices": ids},
                    "policy": {"canary": "1", "wave_size": "50%", "soak": 1},
                }, expect=201)
                rid = doc["id"]
                d.wait_for(lambda: rollout(d, rid)["current_wave"] >= 1 and
                           any(m["bytes_sent"] > 0 and m["wave"] == 1 for m in members(d, rid)),
                           timeout=90, what="wave 1 uploading")
                d.kill9()
                rows = sql(d.db_path, "SELECT state, current_wave FROM rollout WHERE id = ?", (rid,))
                self.assertEqual(rows[0][0], "running")
                self.assertGreaterEqual(rows[0][1], 1)
                d.start()
                r = wait_state(d, rid, FINISHED, timeout=180)
                self.assertEqual(r["state"], "completed", r)
                self.assertEqual(r["counts"]["succeeded"], n, r)
                by_id = {x["id"]: x for x in devices(d)}
                for i in ids:
                    self.assertEqual(running_hash(by_id[i]), (digest, True))
                for m in members(d, rid):
                    self.assertLessEqual(m["attempts"], 2, m)


class Windows(unittest.TestCase):
    def test_staged_activation_in_a_window_opening_seconds_later(self):
        """staging: every member uploads at once and waits `staged`; the
        window (UTC) opens at the next minute, and no member is activated
        before it; then the waves activate and the rollout completes."""
        n = 4
        with Sim("--swap-ms", "200", count=n) as sim:
            conns = conns_of(sim, n)
            with Daemon(config=config_for(conns)) as d:
                wait_online(d, n)
                data, digest = mcuimg.make_image((4, 0, 0, 0), 8192, seed=6)
                image = add_image(d, data)
                ids = sorted(x["id"] for x in devices(d))
                # create at hh:mm:45 or later, so the window opens within seconds
                while time.gmtime().tm_sec < 45:
                    time.sleep(0.5)
                now = time.time()
                opens = (int(now) // 60 + 1) * 60
                t0 = time.gmtime(opens)
                t1 = time.gmtime(opens + 180)
                window = {"from": "%02d:%02d" % (t0.tm_hour, t0.tm_min),
                          "to": "%02d:%02d" % (t1.tm_hour, t1.tm_min)}
                events = EventLog(d)
                _, doc = d.api("POST", "/api/v1/rollouts", {
                    "image": image, "targets": {"devices": ids},
                    "schedule": {"windows": [window], "timezone": "UTC", "staging": True},
                    "policy": {"canary": "1", "wave_size": "100%"},
                }, expect=201)
                rid = doc["id"]
                self.assertEqual(doc["schedule"]["timezone"], "UTC")
                # every member, of both waves, uploads and waits before the window
                d.wait_for(lambda: all(m["state"] == "staged" for m in members(d, rid)),
                           timeout=max(1, opens - time.time() - 0.5), what="every member staged")
                r = wait_state(d, rid, FINISHED, timeout=120)
                self.assertEqual(r["state"], "completed", r)
                self.assertEqual(r["counts"]["succeeded"], n)
                time.sleep(1.2)
                events.close()
                import calendar
                first = min(calendar.timegm(time.strptime(e["updated"][:19], "%Y-%m-%dT%H:%M:%S"))
                            for k, e in events.events if k == "rollout-member" and e["state"] == "activating")
                self.assertGreaterEqual(first, opens, "a member was activated before the window opened")


class Budgets(unittest.TestCase):
    def test_labels_filter_relay_budget_and_late_joiner(self):
        """Devices labelled over REST; a rollout by label filter takes
        those and skips the others; at most max_rebooting members and
        max_rebooting_relay relays are at work at once (from the member
        events); a device labelled while it runs joins and is updated."""
        n = 9
        with Sim("--bandwidth", "60000", "--swap-ms", "300", count=n) as sim:
            conns = conns_of(sim, n)
            with Daemon(config=config_for(conns, "[jobs]\nmax_running=8\n")) as d:
                wait_online(d, n)
                ids = sorted(x["id"] for x in devices(d))
                for i in ids[:7]:
                    labels = ["site-a"] + (["relay"] if i in ids[:3] else [])
                    _, doc = d.api("PUT", "/api/v1/devices/%d/labels" % i, {"labels": labels + ["site-a"]},
                                   expect=200)
                    self.assertEqual(doc["labels"], sorted(set(labels)))
                _, doc = d.api("GET", "/api/v1/devices?label=relay", expect=200)
                self.assertEqual(sorted(x["id"] for x in doc["devices"]), ids[:3])
                self.assertEqual(doc["devices"][0]["labels"], ["relay", "site-a"])
                status, doc = d.api("PUT", "/api/v1/devices/%d/labels" % ids[0], {"labels": ["Bad Label"]})
                self.assertEqual(status, 400, doc)
                data, digest = mcuimg.make_image((5, 0, 0, 0), 40000, seed=7)
                image = add_image(d, data)
                events = EventLog(d)
                _, doc = d.api("POST", "/api/v1/rollouts", {
                    "image": image, "targets": {"filter": {"labels": ["site-a"]}},
                    "policy": {"canary": "2", "wave_size": "100%", "max_rebooting": 3,
                               "max_rebooting_relay": 1, "soak": 0},
                }, expect=201)
                rid = doc["id"]
                self.assertEqual(len(members(d, rid)), 7)
                d.wait_for(lambda: rollout(d, rid)["current_wave"] >= 1, timeout=60, what="wave 1")
                # a late joiner: labelled now, it matches the filter
                d.api("PUT", "/api/v1/devices/%d/labels" % ids[7], {"labels": ["site-a"]}, expect=200)
                r = wait_state(d, rid, FINISHED, timeout=180)
                self.assertEqual(r["state"], "completed", r)
                ms = {m["device"]: m for m in members(d, rid)}
                self.assertIn(ids[7], ms)
                self.assertEqual(ms[ids[7]]["state"], "succeeded")
                self.assertNotIn(ids[8], ms)
                time.sleep(1.2)
                events.close()
                self.assertEqual(max_concurrent(events.events, rid, TOKEN), 3, "the budget held, and was used")
                self.assertEqual(max_concurrent(events.events, rid, TOKEN, relay_ids=set(ids[:3])), 1)
                # uploads are not bound by the reboot budget
                self.assertGreater(max_concurrent(events.events, rid, ("staging",)), 3)
                by_id = {x["id"]: x for x in devices(d)}
                for i in ids[:8]:
                    self.assertEqual(running_hash(by_id[i]), (digest, True))
                self.assertNotEqual(running_hash(by_id[ids[8]])[0], digest)


class Fleet(unittest.TestCase):
    @staticmethod
    def transport(i):
        """Device i of the fleet: 3 of 5 over UDP, 1 over CoAP, 1 over BLE,
        interleaved so that every wave (taken in id order while no job has
        measured a rate) has all three, and one adapter's links are shared
        by the waves' BLE members rather than all of them at the end."""
        return ("udp", "udp", "udp", "coap", "ble")[i % 5]

    def test_200_devices_with_faults_and_kill9(self):
        """200 devices of one smpsim, 120 over UDP, 40 over CoAP and 40
        over BLE through its fake org.bluez on the daemon's private bus
        (one adapter); a canary, waves of 25 %, relays on every transport;
        on each transport devices that revert, reject, lose their link
        once, or never answer; a kill -9 of smpgwd in the middle.  The
        rollout completes; every device that can be updated runs the new
        image confirmed (smpgwd and smpsim agree), every failure is
        explained with its reason, the link faults happened and were
        overcome, and the reboot budgets, total and relay, held (from the
        member events)."""
        n = 200
        # Wave 1 (ids 6..55) has the faults that cost time: the three
        # silent devices (three attempts each, side by side) and the
        # lossy ones; the waves after the kill -9 have the others.
        faults = {
            # udp
            10: "revert", 50: "revert", 80: "reject", 30: "silent=1", 20: "drop=0.2", 40: "drop=0.2",
            150: "drop-at=2000,1000",
            # coap
            18: "revert", 88: "reject", 33: "silent=1", 48: "drop=0.2", 118: "drop-at=2000,1000",
            # ble
            44: "revert", 99: "reject", 34: "silent=1", 179: "drop-at=2000,1000",
        }
        ble_faults = {129: "disconnect-at=2000", 164: "connect-fail=2"}
        expect_failed = {10: "reverted", 50: "reverted", 80: "reverted", 30: "unreachable",
                         18: "reverted", 88: "reverted", 33: "unreachable",
                         44: "reverted", 99: "reverted", 34: "unreachable"}
        relays = {5, 115, 8, 123, 9, 174}
        for i in list(faults) + list(ble_faults) + list(relays):
            self.assertTrue(i >= 5, "no fault in the canary")
        self.assertEqual({self.transport(i) for i in ble_faults}, {"ble"})
        for t in ("udp", "coap", "ble"):
            self.assertTrue({"revert", "reject", "silent=1"} <= {f for i, f in faults.items()
                                                                 if self.transport(i) == t}, t)
            self.assertTrue([i for i in relays if self.transport(i) == t], t)
        d = Daemon(start=False)
        try:
            # the ble plugin reaches the private bus as the system bus
            d.extra_env["DBUS_SYSTEM_BUS_ADDRESS"] = d.bus.address
            with Sim("--swap-ms", "100", "--boot-ms", "50", "--ble-resolve-ms", "40", ble=d.bus.address,
                     coap=True, count=n) as sim:
                conns = []
                for i in range(n):
                    t = self.transport(i)
                    conns.append("udp:127.0.0.1:%d" % (sim.port + i) if t == "udp" else
                                 "coap:127.0.0.1:%d" % (sim.coap_port + i) if t == "coap" else
                                 "ble:C0:DE:00:00:%02X:%02X,max-connections=7" % (i >> 8, i & 0xff))
                cfg = "".join("[devices]\nadd=%s\n" % " ".join(conns[i:i + 20]) for i in range(0, n, 20))
                cfg += "[jobs]\nmax_running=16\nmax_running_ble=7\n"
                with open(d.config_path, "w") as f:
                    f.write(cfg)
                d.start()
                wait_online(d, n, timeout=120)
                by_conn = {x["conn"]: x["id"] for x in devices(d)}
                self.assertEqual(sorted(by_conn), sorted(conns))
                index_of = {by_conn[c]: i for i, c in enumerate(conns)}
                relay_ids = {by_conn[conns[i]] for i in relays}
                for i in relays:
                    d.api("PUT", "/api/v1/devices/%d/labels" % by_conn[conns[i]], {"labels": ["relay"]},
                          expect=200)
                for i, f in faults.items():
                    self.assertTrue(sim.control("fault %d %s" % (i, f))["ok"])
                for i, f in ble_faults.items():
                    self.assertTrue(sim.control("ble-fault %d %s" % (i, f))["ok"])
                data, digest = mcuimg.make_image((6, 0, 0, 0), 4096, seed=8)
                image = add_image(d, data)
                events = EventLog(d, types="rollout-member,rollout-state")
                t0 = time.monotonic()
                _, doc = d.api("POST", "/api/v1/rollouts", {
                    "image": image, "targets": {"devices": sorted(by_conn.values())},
                    "policy": {"canary": "5", "wave_size": "25%", "failure_threshold": "50%",
                               "revert_halt": 0, "attempts": 3, "retry_delay": 1, "retry_delay_max": 2,
                               "max_rebooting": 16, "max_rebooting_relay": 1},
                }, expect=201)
                rid = doc["id"]
                self.assertEqual(doc["waves"], 5)
                d.wait_for(lambda: rollout(d, rid)["current_wave"] >= 2, timeout=180, what="wave 2")
                events.close()
                d.kill9()
                d.start()
                events2 = EventLog(d, types="rollout-member,rollout-state")
                r = wait_state(d, rid, FINISHED, timeout=400)
                elapsed = time.monotonic() - t0
                sys.stderr.write("\n200-device rollout: %.1f s (with a kill -9 and restart)\n" % elapsed)
                self.assertEqual(r["state"], "completed", r)
                ms = members(d, rid)
                self.assertEqual(len(ms), n)
                by_id = {x["id"]: x for x in devices(d)}
                for m in ms:
                    i = index_of[m["device"]]
                    if i in expect_failed:
                        self.assertEqual((m["state"], m["reason"]), ("failed", expect_failed[i]), m)
                    else:
                        self.assertEqual(m["state"], "succeeded", m)
                        self.assertEqual(running_hash(by_id[m["device"]]), (digest, True))
                        # smpsim agrees, independently of smpgwd
                        active = [s for s in sim.state(i)["slots"] if s.get("active")]
                        self.assertEqual((active[0]["hash"], active[0]["confirmed"]), (digest, True),
                                         (i, conns[i]))
                self.assertEqual(sorted((f["reason"] for f in r["failures"])),
                                 sorted(expect_failed.values()))
                # the link faults happened (and the members above succeeded)
                for i, f in faults.items():
                    if f.startswith("drop-at="):
                        self.assertGreater(sim.state(i)["stats"]["dropped_fault"], 0, (i, conns[i]))
                st = sim.control("ble-state 129")
                self.assertEqual(st["faults"]["disconnect_at"], -1, st)
                self.assertGreater(st["stats"]["link_losses"], 0, st)
                st = sim.control("ble-state 164")
                self.assertEqual(st["faults"]["connect_fail"], 0, st)
                self.assertGreaterEqual(st["stats"]["connect_failures"], 2, st)
                time.sleep(1.2)
                events2.close()
                # each log starts empty: the budgets before and after the kill -9
                logs = (events.events, events2.events)
                self.assertLessEqual(max(max_concurrent(log, rid, TOKEN) for log in logs), 16)
                self.assertEqual(max(max_concurrent(log, rid, TOKEN, relay_ids) for log in logs), 1,
                                 "the relay budget held, and was used")
                self.assertEqual(d.terminate(), 0)
        except Exception:
            sys.stderr.write(d.read_log())
            raise
        finally:
            d.stop()


class Plan(unittest.TestCase):
    def test_plan_lists_waves_and_skips_and_its_eta_holds(self):
        """The dry run lists the waves in order and the devices skipped
        with the reason; after a first rollout measured the links and the
        swap times, the plan's estimate of a second one is within 25 % of
        its measured duration."""
        n = 10
        with Sim("--bandwidth", "40000", "--latency", "2", "--swap-ms", "800", "--boot-ms", "100",
                 count=n) as sim:
            conns = conns_of(sim, n)
            with Daemon(config=config_for(conns, "[jobs]\nmax_running=3\n")) as d:
                wait_online(d, n)
                ids = sorted(x["id"] for x in devices(d))
                data_a, digest_a = mcuimg.make_image((7, 0, 0, 0), 32768, seed=9)
                image_a = add_image(d, data_a, "a.bin")
                # device 0 runs image A already: skipped in A's plan
                _, doc = d.api("POST", "/api/v1/rollouts", {
                    "image": image_a, "targets": {"devices": ids[:1]}}, expect=201)
                wait_state(d, doc["id"], FINISHED)
                d.wait_for(lambda: running_hash([x for x in devices(d) if x["id"] == ids[0]][0])
                           == (digest_a, True), timeout=30, what="device 0 probed")
                body = {"image": image_a, "targets": {"devices": ids},
                        "policy": {"canary": "1", "wave_size": "3", "max_rebooting": 3}}
                _, plan = d.api("POST", "/api/v1/rollouts/plan", body, expect=200)
                self.assertEqual(plan["skipped"], [{"device": ids[0], "reason": "already-running"}])
                self.assertEqual([len(w["devices"]) for w in plan["waves"]], [1, 3, 3, 2])
                self.assertEqual(sorted(sum((w["devices"] for w in plan["waves"]), [])), ids[1:])
                self.assertGreater(plan["estimate"]["duration_s"], 0)
                # the first run measures every link and swap
                _, doc = d.api("POST", "/api/v1/rollouts", body, expect=201)
                self.assertEqual(wait_state(d, doc["id"], FINISHED)["state"], "completed")
                data_b, digest_b = mcuimg.make_image((7, 1, 0, 0), 32768, seed=10)
                image_b = add_image(d, data_b, "b.bin")
                body["image"] = image_b
                _, plan = d.api("POST", "/api/v1/rollouts/plan", body, expect=200)
                est = plan["estimate"]["duration_s"]
                self.assertEqual(plan["estimate"]["assumptions"]["at_default_swap"], 0, plan)
                _, doc = d.api("POST", "/api/v1/rollouts", body, expect=201)
                rid = doc["id"]
                # the re-plan of a running rollout answers too
                _, replan = d.api("GET", "/api/v1/rollouts/%d/plan" % rid, expect=200)
                self.assertIn("estimate", replan)
                # a running rollout's eta is its re-plan
                eta = d.wait_for(lambda: rollout(d, rid)["eta"], timeout=10, what="an eta")
                self.assertRegex(eta, r"^\d{4}-\d\d-\d\dT")
                r = wait_state(d, rid, FINISHED)
                self.assertEqual(r["state"], "completed", r)
                t = lambda s: time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) + float(s[19:-1] or 0)
                measured = t(r["finished"]) - t(r["created"])
                sys.stderr.write("\nplan estimate %.2f s, measured %.2f s (%.0f %%)\n"
                                 % (est, measured, 100.0 * est / measured))
                self.assertLess(abs(est - measured), 0.25 * measured, plan)


class Cli(unittest.TestCase):
    def test_smpgwctl_rollout_and_labels_over_dbus(self):
        """smpgwctl device ID labels and rollout create/plan/list/show/
        pause/resume/cancel over the daemon's private bus: the same
        objects REST shows (Manager1.CreateRollout, Rollout1.*)."""
        n = 3
        with Sim(count=n) as sim:
            conns = conns_of(sim, n)
            with Daemon(config=config_for(conns)) as d:
                wait_online(d, n)
                ids = sorted(x["id"] for x in devices(d))
                p = d.smpgwctl("device", str(ids[0]), "labels", "--set", "relay,floor-1")
                self.assertEqual(p.stdout.decode().split(), ["floor-1", "relay"])
                p = d.smpgwctl("device", str(ids[0]), "labels", "--add", "x", "--remove", "floor-1", "--json")
                self.assertEqual(json.loads(p.stdout)["labels"], ["relay", "x"])
                _, doc = d.api("GET", "/api/v1/devices/%d/labels" % ids[0], expect=200)
                self.assertEqual(doc["labels"], ["relay", "x"])
                p = d.smpgwctl("device", str(ids[0]), "labels", "--add", "Bad!", check=False)
                self.assertEqual(p.returncode, 10, p.stderr)
                data, digest = mcuimg.make_image((8, 0, 0, 0), 8192, seed=11)
                image = add_image(d, data)
                p = d.smpgwctl("rollout", "plan", image[:12], "--devices", ",".join(map(str, ids)),
                               "--canary", "1", "--wave-size", "50%", "--json")
                plan = json.loads(p.stdout)["plan"]
                self.assertEqual([len(w["devices"]) for w in plan["waves"]], [1, 2])
                p = d.smpgwctl("rollout", "create", image[:12], "--filter", "labels=relay", "--filter",
                               "transport=udp", "--window", "mon-sun 00:00-24:00", "--timezone", "Europe/Berlin",
                               "--max-rebooting", "2", "--wait", "--json")
                r = json.loads(p.stdout)["rollout"]
                self.assertEqual(r["state"], "completed", r)
                self.assertEqual(r["counts"]["succeeded"], 1)
                self.assertEqual(r["schedule"]["timezone"], "Europe/Berlin")
                _, rest = d.api("GET", "/api/v1/rollouts/%d" % r["id"], expect=200)
                self.assertEqual(rest["counts"], r["counts"])
                p = d.smpgwctl("rollout", "create", image[:12], "--devices", ",".join(map(str, ids[1:])),
                               "--start", "2099-01-01T00:00:00Z")
                rid = int(p.stdout)
                p = d.smpgwctl("rollout", "show", str(rid))
                self.assertIn("state:       scheduled", p.stdout.decode())
                p = d.smpgwctl("rollout", "pause", str(rid))
                self.assertIn("paused", p.stdout.decode())
                d.smpgwctl("rollout", "resume", str(rid))
                d.smpgwctl("rollout", "activate", str(rid))
                p = d.smpgwctl("rollout", "plan", str(rid), "--json")
                self.assertIn("estimate", json.loads(p.stdout)["plan"])
                d.smpgwctl("rollout", "cancel", str(rid))
                p = d.smpgwctl("rollout", "cancel", str(rid), check=False)
                self.assertEqual(p.returncode, 10)
                p = d.smpgwctl("rollout", "list", "--json")
                states = {x["id"]: x["state"] for x in json.loads(p.stdout)["rollouts"]}
                self.assertEqual(states, {r["id"]: "completed", rid: "cancelled"})
                p = d.smpgwctl("rollout", "create", image[:12], check=False)
                self.assertEqual(p.returncode, 2)
                p = d.smpgwctl("rollout", "create", image[:12], "--devices", "999", check=False)
                self.assertEqual(p.returncode, 10)
                self.assertIn("no such device", p.stderr.decode())


if __name__ == "__main__":
    unittest.main(verbosity=2)
