#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Rollouts end to end (doc/rollouts.md): smpgwd and smpsim as processes,
REST over loopback, the rollout's rows in a real SQLite file.  Waves with
a canary whose revert pauses the rollout, resume, cancel, kill -9 in the
middle and completion after the restart, a window that opens a few
seconds after the start, the reboot budgets (checked from the member
events), device labels and filters, 200 devices with faults, and the
plan's estimate against a measured run."""

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


if __name__ == "__main__":
    unittest.main(verbosity=2)
