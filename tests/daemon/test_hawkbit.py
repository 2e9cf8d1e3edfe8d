#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""smpgwd as an Eclipse hawkBit DDI gateway client (issue 16), against a
fake DDI server over loopback (fakeddi.py) and smpsim devices over UDP:
gateway-token authentication, polling and registration, attributes,
deployments to 50 devices with one artifact download, cancels answered
canceled or rejected, downloads cut off and resumed with Range,
maintenance windows, feedback queued while the server is down (across a
restart), and 1,000 exposed devices polling without a burst."""

import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from daemonharness import Daemon, Sim  # noqa: E402
from fakeddi import FakeDDI  # noqa: E402
import mcuimg  # noqa: E402

TOKEN = "gw-secret"


def note(fmt, *args):
    """Figures for the report: on stderr, which meson keeps in the test log."""
    sys.stderr.write(("    # " + fmt + "\n") % args)
    sys.stderr.flush()


class HawkbitTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="hawkbit-test-")

    def tearDown(self):
        self.tmp.cleanup()

    def config(self, fake, conns, token=TOKEN, extra="", jobs="max_running=16\n"):
        token_path = os.path.join(self.tmp.name, "gateway-token")
        with open(token_path, "w") as f:
            f.write(token + "\n")
        lines = ""
        for i in range(0, len(conns), 100):
            lines += "add=%s\n" % " ".join(conns[i:i + 100])
        return ("[discovery]\nenabled=no\n[devices]\n%s[jobs]\n%s"
                "[hawkbit]\nenabled=yes\nserver=%s\ngateway_token_file=%s\npoll_min=1\nstart_spread=2\n%s"
                % (lines, jobs, fake.url, token_path, extra))

    def devices(self, d):
        out = []
        while True:
            _, doc = d.api("GET", "/api/v1/devices?limit=500&offset=%d" % len(out), expect=200)
            out += doc["devices"]
            if not doc["devices"] or len(out) >= doc["total"]:
                return out

    def controller_ids(self, d, count):
        def ready():
            devs = self.devices(d)
            if len(devs) < count or not all(x["hawkbit"]["managed"] for x in devs):
                return None
            return [x["hawkbit"]["controller_id"] for x in devs]
        return d.wait_for(ready, timeout=30, what="%d managed devices" % count)

    def wait_online(self, d, count, timeout=60):
        def ok():
            devs = [x for x in self.devices(d) if x["state"] == "online" and x["images"]]
            return devs if len(devs) >= count else None
        return d.wait_for(ok, timeout=timeout, what="%d devices online" % count)

    def metrics(self, d):
        _, _, data = d.http("GET", "/metrics")
        out = {}
        for line in data.decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    # ---- authentication, registration, attributes ----

    def test_gateway_token_registration_attributes(self):
        fake = FakeDDI()
        try:
            with Sim(count=2) as sim:
                conns = ["udp:127.0.0.1:%d" % (sim.port + i) for i in range(2)]
                with Daemon(config=self.config(fake, conns, token="wrong")) as d:
                    d.wait_for(lambda: fake.unauthorized >= 2, timeout=20, what="polls with the wrong token")
                    self.assertEqual(fake.targets, {}, "a wrong token registered a target")
                    d.wait_for(lambda: self.metrics(d).get("smpgw_hawkbit_auth_errors_total", 0) >= 2,
                               timeout=10, what="auth errors counted")
                    self.assertIn("refused the gateway token", d.read_log())
                with Daemon(config=self.config(fake, conns)) as d:
                    self.wait_online(d, 2)
                    ids = self.controller_ids(d, 2)
                    self.assertEqual(sorted(ids), sorted("smpgw-%d" % x["id"] for x in self.devices(d)))
                    d.wait_for(lambda: all(c in fake.targets for c in ids), timeout=20, what="registration")
                    # Attributes come when the server asks (configData link),
                    # from what the probe found.
                    d.wait_for(lambda: all(c in fake.config_data and "image0_slot0_version" in fake.config_data[c]
                                           for c in ids), timeout=30, what="attributes")
                    attrs = fake.config_data[ids[0]]
                    self.assertEqual(attrs["transport"], "udp")
                    self.assertTrue(attrs["image0_slot0_version"].startswith("1.0.0"), attrs)
                    self.assertTrue(all(isinstance(v, str) for v in attrs.values()), attrs)
                    # The server's sleep (1 s) is honoured: a few polls each, not hundreds.
                    before = {c: fake.targets[c]["polls"] for c in ids}
                    time.sleep(4)
                    for c in ids:
                        n = fake.targets[c]["polls"] - before[c]
                        self.assertTrue(2 <= n <= 6, "%s polled %d times in 4 s with sleep 1 s" % (c, n))
                    m = self.metrics(d)
                    self.assertGreater(m["smpgw_hawkbit_polls_total"], 4)
                    self.assertEqual(m["smpgw_hawkbit_targets"], 2)
                    # D-Bus and smpgwctl show the same.
                    out = d.smpgwctl("device", str(self.devices(d)[0]["id"])).stdout.decode()
                    self.assertIn("hawkbit:     controllerId %s" % self.devices(d)[0]["hawkbit"]["controller_id"],
                                  out)
                    js = json.loads(d.smpgwctl("device", str(self.devices(d)[0]["id"]), "--json").stdout)
                    self.assertEqual(js["device"]["hawkbit"], self.devices(d)[0]["hawkbit"])
        finally:
            fake.stop()

    # ---- 50 devices, one distribution set ----

    def test_fleet_of_50_one_download_and_cancels(self):
        """50 devices get one deployment each of the same artifact: 50
        updated, 50 closed/success, one download.  Three more devices:
        a cancel while waiting for the window (canceled), a cancel during
        the upload (canceled, the job cancelled), a cancel after the
        device was told to test (rejected, then closed/success)."""
        n = 50
        data, digest = mcuimg.make_image((2, 0, 0, 0), 48 * 1024, seed=5)
        fake = FakeDDI()
        try:
            # Device n+1's upload is slow (cancelled midway); device n+2
            # swaps slowly (cancelled after being told to test).
            with Sim("--fault", "dev=%d:slow=300" % (n + 1), "--swap-ms", "4000", count=n + 3) as sim:
                conns = ["udp:127.0.0.1:%d" % (sim.port + i) for i in range(n + 3)]
                with Daemon(config=self.config(fake, conns)) as d:
                    self.wait_online(d, n + 3, timeout=120)
                    devs = self.devices(d)
                    cids = [x["hawkbit"]["controller_id"] for x in devs]
                    d.wait_for(lambda: all(c in fake.targets for c in cids), timeout=30, what="all registered")
                    start = time.monotonic()
                    actions = [fake.add_action(c, ("app-2.0.0.bin", data)) for c in cids[:n]]
                    waiting = fake.add_action(cids[n], ("app-2.0.0.bin", data), window="unavailable")
                    slow = fake.add_action(cids[n + 1], ("app-2.0.0.bin", data))
                    late = fake.add_action(cids[n + 2], ("app-2.0.0.bin", data))

                    # cancel while waiting for the window: canceled, nothing installed
                    d.wait_for(lambda: ("scheduled", "none") in fake.executions(cids[n], waiting.id),
                               timeout=60, what="scheduled feedback")
                    fake.cancel(waiting)
                    # cancel during the slow upload
                    d.wait_for(lambda: any(j["bytes_sent"] > 0 for j in self.jobs(d, devs[n + 1]["id"])),
                               timeout=60, what="slow upload under way")
                    fake.cancel(slow)
                    # cancel after "told to test" (proceeding 2/3)
                    d.wait_for(lambda: any(f[4]["status"]["result"].get("progress", {}).get("cnt") == 2
                                           for f in fake.feedback_for(cids[n + 2], late.id)),
                               timeout=60, what="device told to test")
                    fake.cancel(late)

                    def all_closed():
                        return all(a.state != "open" for a in actions + [waiting, slow, late])
                    d.wait_for(all_closed, timeout=240, what="every action closed or canceled")
                    elapsed = time.monotonic() - start

                    for a, c in zip(actions, cids[:n]):
                        ex = fake.executions(c, a.id)
                        self.assertEqual(ex[-1], ("closed", "success"), ex)
                        self.assertEqual(sum(1 for e in ex if e[0] == "closed"), 1, ex)
                        self.assertIn(("proceeding", "none"), ex)
                        closed = fake.feedback_for(c, a.id)[-1][4]
                        self.assertIn("outcome: updated", closed["status"]["details"])
                    closed_success = sum(1 for f in fake.feedback_for(kind="deploymentBase")
                                         if f[1] in cids[:n] and f[4]["status"]["execution"] == "closed"
                                         and f[4]["status"]["result"]["finished"] == "success")
                    self.assertEqual(closed_success, n)
                    for i in range(n):
                        active = [s for s in sim.state(i)["slots"] if s["active"]][0]
                        self.assertEqual(active["hash"], digest)
                        self.assertTrue(active["confirmed"])
                    # one artifact download for 53 actions
                    self.assertEqual(len(fake.artifact_requests), 1, fake.artifact_requests)
                    self.assertEqual(self.metrics(d)["smpgw_hawkbit_downloads_total"], 1)

                    self.assertEqual(waiting.cancel_answer, "canceled")
                    self.assertEqual(waiting.state, "canceled")
                    self.assertEqual(fake.executions(cids[n], waiting.id, "cancelAction"), [("canceled", "success")])
                    # Its job had staged the image; it is cancelled, the device
                    # keeps running what it ran.
                    self.assertEqual([j["state"] for j in self.jobs(d, devs[n]["id"])], ["cancelled"])
                    active = [s for s in sim.state(n)["slots"] if s.get("active")][0]
                    self.assertNotEqual(active["hash"], digest)
                    self.assertNotIn("closed", [e[0] for e in fake.executions(cids[n], waiting.id)])

                    self.assertEqual(slow.cancel_answer, "canceled")
                    self.assertEqual([j["state"] for j in self.jobs(d, devs[n + 1]["id"])], ["cancelled"])

                    self.assertEqual(late.cancel_answer, "rejected")
                    rej = fake.feedback_for(cids[n + 2], late.id, "cancelAction")[-1][4]
                    self.assertIn("cannot be cancelled halfway", " ".join(rej["status"]["details"]))
                    self.assertEqual(late.state, "closed")
                    self.assertEqual(late.result, "success")

                    dev = [x for x in self.devices(d) if x["id"] == devs[0]["id"]][0]
                    self.assertEqual(dev["hawkbit"]["action_id"], actions[0].id)
                    self.assertEqual(dev["hawkbit"]["last_feedback"], "closed/success")
                    self.assertEqual(dev["hawkbit"]["feedback_queued"], 0)
                    note("50 devices: %d updated, %d closed/success feedbacks, %d artifact download(s), "
                         "%.1f s from the deployment to the last closed action; cancels: waiting %s, "
                         "uploading %s, told to test %s",
                         n, closed_success, len(fake.artifact_requests), elapsed, waiting.cancel_answer,
                         slow.cancel_answer, late.cancel_answer)
        finally:
            fake.stop()

    def cpu_seconds(self, d):
        with open("/proc/%d/stat" % d.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def jobs(self, d, device_id):
        _, doc = d.api("GET", "/api/v1/jobs?device=%d" % device_id, expect=200)
        return doc["jobs"]

    # ---- interrupted download, server down, restart ----

    def test_download_resume_and_server_down(self):
        data, digest = mcuimg.make_image((3, 0, 0, 0), 200 * 1024, seed=7)
        fake = FakeDDI()
        try:
            with Sim("--swap-ms", "200", "--bandwidth", "50000", count=2) as sim:
                conns = ["udp:127.0.0.1:%d" % (sim.port + i) for i in range(2)]
                with Daemon(config=self.config(fake, conns)) as d:
                    self.wait_online(d, 2)
                    cids = self.controller_ids(d, 2)
                    d.wait_for(lambda: all(c in fake.targets for c in cids), timeout=20, what="registered")
                    fake.drop_artifact_after = 50000
                    acts = [fake.add_action(c, ("big.bin", data)) for c in cids]
                    # The first response breaks at 50,000 bytes; the next asks
                    # for the rest only.
                    d.wait_for(lambda: len(fake.artifact_requests) >= 2, timeout=60, what="a resumed download")
                    first, second = fake.artifact_requests[:2]
                    self.assertEqual(first, (None, 200, 50000))
                    self.assertEqual(second, ("bytes=50000-", 206, len(data) - 50000))
                    self.assertEqual(len(fake.artifact_requests), 2)
                    # Then the server goes away while the devices update
                    # (about 4 s at 50 kB/s).
                    fake.stop()
                    down_at = time.monotonic()

                    def queued():
                        devs = self.devices(d)
                        return all(x["hawkbit"]["last_feedback"] == "closed/success" for x in devs) and devs
                    devs = d.wait_for(queued, timeout=120, what="jobs closed while the server is down")
                    self.assertTrue(all(x["hawkbit"]["feedback_queued"] >= 1 for x in devs), devs)
                    self.assertTrue(all(a.state == "open" for a in acts))
                    # Feedback survives a restart (a clean one: exit code 0,
                    # which is also how ASan reports a leak).
                    self.assertEqual(d.terminate(), 0)
                    d.start()
                    time.sleep(2)
                    fake.start()
                    up_at = time.monotonic()
                    d.wait_for(lambda: all(a.state == "closed" for a in acts), timeout=90,
                               what="queued feedback delivered after the server came back")
                    note("server down %.1f s (smpgwd restarted meanwhile); queued feedback delivered %.1f s "
                         "after it came back", up_at - down_at, time.monotonic() - up_at)
                    for c, a in zip(cids, acts):
                        ex = fake.executions(c, a.id)
                        self.assertEqual(ex[-1], ("closed", "success"), ex)
                        self.assertEqual(sum(1 for e in ex if e[0] == "closed"), 1, ex)
                    for i in range(2):
                        active = [s for s in sim.state(i)["slots"] if s["active"]][0]
                        self.assertEqual(active["hash"], digest)
                    d.wait_for(lambda: all(x["hawkbit"]["feedback_queued"] == 0 for x in self.devices(d)),
                               timeout=10, what="queue empty")
        finally:
            fake.stop()

    def test_download_resumes_after_kill9(self):
        """smpgwd killed during a download resumes it at the next start
        from the bytes it had (.part file, the action's row)."""
        data, digest = mcuimg.make_image((3, 1, 0, 0), 120 * 1024, seed=11)
        fake = FakeDDI()
        try:
            with Sim(count=1) as sim:
                conns = ["udp:127.0.0.1:%d" % sim.port]
                with Daemon(config=self.config(fake, conns)) as d:
                    cid = self.controller_ids(d, 1)[0]
                    fake.stall_artifact_after = 40000
                    a = fake.add_action(cid, ("k.bin", data))
                    d.wait_for(lambda: fake.artifact_requests, timeout=30, what="the download under way")
                    time.sleep(0.5)
                    d.kill9()
                    fake.stall_release.set()
                    d.start()
                    d.wait_for(lambda: a.state == "closed", timeout=60, what="closed after the restart")
                    self.assertEqual(a.result, "success")
                    self.assertEqual(fake.artifact_requests,
                                     [(None, 200, 40000), ("bytes=40000-", 206, len(data) - 40000)])
                    active = [s for s in sim.state(0)["slots"] if s["active"]][0]
                    self.assertEqual(active["hash"], digest)
                    self.assertEqual(os.listdir(os.path.join(d.state_dir, "hawkbit")), [],
                                     "the .part file was left behind")
        finally:
            fake.stop()

    # ---- maintenance window ----

    def test_maintenance_window(self):
        data, digest = mcuimg.make_image((2, 1, 0, 0), 32 * 1024, seed=9)
        fake = FakeDDI()
        try:
            with Sim(count=1) as sim:
                conns = ["udp:127.0.0.1:%d" % sim.port]
                with Daemon(config=self.config(fake, conns)) as d:
                    self.wait_online(d, 1)
                    cid = self.controller_ids(d, 1)[0]
                    dev_id = self.devices(d)[0]["id"]
                    a = fake.add_action(cid, ("w.bin", data), update="skip", window="unavailable")
                    d.wait_for(lambda: ("scheduled", "none") in fake.executions(cid, a.id), timeout=30,
                               what="scheduled")
                    # Downloaded, stored and staged on the device now, not
                    # installed: the device still runs its old image.
                    self.assertEqual(len(fake.artifact_requests), 1)
                    _, imgs = d.api("GET", "/api/v1/images", expect=200)
                    self.assertIn(digest, [i["id"] for i in imgs["images"]])
                    d.wait_for(lambda: [j["state"] for j in self.jobs(d, dev_id)] == ["staged"], timeout=30,
                               what="the job staged")
                    time.sleep(2)
                    self.assertEqual([j["state"] for j in self.jobs(d, dev_id)], ["staged"])
                    active = [s for s in sim.state(0)["slots"] if s["active"]][0]
                    self.assertNotEqual(active["hash"], digest, "installed outside the window")
                    self.assertEqual(a.state, "open")
                    fake.set_window(a, "available", update="forced")
                    d.wait_for(lambda: a.state == "closed", timeout=60, what="closed after the window opened")
                    ex = fake.executions(cid, a.id)
                    self.assertIn(("resumed", "none"), ex)
                    self.assertEqual(ex[-1], ("closed", "success"))
                    self.assertLess(ex.index(("scheduled", "none")), ex.index(("resumed", "none")))
                    self.assertEqual(len(fake.artifact_requests), 1, "downloaded twice")
                    active = [s for s in sim.state(0)["slots"] if s["active"]][0]
                    self.assertEqual(active["hash"], digest)
        finally:
            fake.stop()

    # ---- a refused artifact ----

    def test_bad_artifact_closes_failure(self):
        fake = FakeDDI()
        try:
            with Sim(count=1) as sim:
                conns = ["udp:127.0.0.1:%d" % sim.port]
                with Daemon(config=self.config(fake, conns)) as d:
                    cid = self.controller_ids(d, 1)[0]
                    a = fake.add_action(cid, ("junk.bin", b"not an MCUboot image" * 100))
                    d.wait_for(lambda: a.state == "closed", timeout=30, what="closed")
                    self.assertEqual(a.result, "failure")
                    closed = fake.feedback_for(cid, a.id)[-1][4]
                    self.assertIn("outcome: refused", closed["status"]["details"])
                    self.assertIn("refused", " ".join(closed["status"]["details"]))
        finally:
            fake.stop()

    # ---- configuration ----

    def test_bad_configuration_refused(self):
        token = os.path.join(self.tmp.name, "token")
        with open(token, "w") as f:
            f.write("secret\n")
        big = os.path.join(self.tmp.name, "big-token")
        with open(big, "w") as f:
            f.write("x" * 5000)
        spaced = os.path.join(self.tmp.name, "spaced-token")
        with open(spaced, "w") as f:
            f.write("two words\n")
        ok = "[hawkbit]\nenabled=yes\nserver=http://127.0.0.1:9\ngateway_token_file=%s\n" % token
        cases = [
            ("[hawkbit]\nenabled=yes\ngateway_token_file=%s\n" % token, "server: an http:// or https:// URL"),
            ("[hawkbit]\nenabled=yes\nserver=ftp://x\ngateway_token_file=%s\n" % token, "server: an http://"),
            ("[hawkbit]\nenabled=yes\nserver=http://x\n", "gateway_token_file is required"),
            (ok + "controller_id=mac\n", "controller_id must be 'id' or 'address'"),
            (ok + "controller_id_prefix=a/b\n", "controller_id_prefix"),
            (ok + "tenant=a b\n", "tenant"),
            (ok + "expose=label:x\n", "expose: 'label:x'"),
            (ok + "poll_min=100\npoll_max=10\n", "poll_min is larger than poll_max"),
            (ok + "max_requests=0\n", "out of range"),
            (ok.replace(token, big), "larger than the limit"),
            (ok.replace(token, spaced), "space or a control character"),
            (ok.replace(token, self.tmp.name), "directory"),
        ]
        for text, want in cases:
            d = Daemon(config=text, start=False)
            try:
                p = subprocess.run(d.command(), capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
                self.assertNotEqual(p.returncode, 0, text)
                self.assertIn(want, p.stderr.decode(), text)
                self.assertNotIn("secret", p.stderr.decode())
            finally:
                d.stop()

    # ---- libcurl only with [hawkbit] ----

    def test_http_module_only_with_hawkbit(self):
        """The HTTP client (libcurl and what it pulls in) is a module of
        smpgwd's own, mapped only when [hawkbit] is configured (issue 14:
        RSS); missing, it is refused at start with a sentence."""
        def mapped(d):
            with open("/proc/%d/maps" % d.proc.pid) as f:
                return {os.path.basename(line.split()[5]).split(".so")[0]
                        for line in f if len(line.split()) > 5}
        with Daemon(config="[discovery]\nenabled=no\n", bus=False) as d:
            libs = mapped(d)
            self.assertNotIn("libcurl", libs)
            self.assertNotIn("smpgwd-hawkbit-http", libs)
        token = os.path.join(self.tmp.name, "token")
        with open(token, "w") as f:
            f.write("secret\n")
        hawkbit = ("[discovery]\nenabled=no\n[hawkbit]\nenabled=yes\nserver=http://127.0.0.1:9\n"
                   "gateway_token_file=%s\n" % token)
        with Daemon(config=hawkbit, bus=False) as d:
            libs = mapped(d)
            self.assertIn("libcurl", libs)
            self.assertIn("smpgwd-hawkbit-http", libs)
        # smpgwd out of its build tree does not look there, and the
        # installed directory has no module.
        build = os.path.dirname(os.path.dirname(os.path.abspath(os.environ["SMPGWD"])))
        copy = os.path.join(self.tmp.name, "smpgwd")
        subprocess.run(["cp", os.environ["SMPGWD"], copy], check=True)
        d = Daemon(config=hawkbit, bus=False, start=False)
        try:
            env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(build, "lib"))
            p = subprocess.run([copy] + d.command()[1:], capture_output=True, timeout=10,
                               stdin=subprocess.DEVNULL, env=env)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("[hawkbit] needs smpgwd's HTTP module smpgwd-hawkbit-http.so (libcurl), "
                          "which is in none of: ", p.stderr.decode())
        finally:
            d.stop()

    # ---- 1,000 devices, spread polls ----

    def test_1000_devices_poll_spread(self):
        """1,000 exposed devices (connection strings nobody answers: the
        inventory keeps them) poll a server that says sleep 10 s: about
        100 polls a second, never a burst."""
        n, sleep = 1000, 10
        fake = FakeDDI(sleep="00:00:%02d" % sleep, ask_config=False)
        try:
            base = 20000
            conns = ["udp:127.0.0.3:%d" % (base + i) for i in range(n)]
            extra = "poll_min=%d\nstart_spread=%d\nmax_requests=32\n" % (sleep, sleep)
            cfg = self.config(fake, conns, extra=extra) + "[devices]\nmax_probes=2\nprobe_timeout=1\n"
            with Daemon(config=cfg) as d:
                start = time.monotonic()
                cpu_before = self.cpu_seconds(d)
                window = 3 * sleep + 2
                time.sleep(window)
                cpu = self.cpu_seconds(d) - cpu_before
                with fake.lock:
                    polls = [t for t, _ in fake.polls if t >= start]
                    per_target = collections.Counter(c for t, c in fake.polls if t >= start)
                buckets = collections.Counter(int(t - start) for t in polls)
                rates = [buckets.get(s, 0) for s in range(window)]
                note("1000 devices, sleep %d s: polls per second over %d s: %s", sleep, window,
                     " ".join(str(r) for r in rates))
                steady = rates[2:window - 1]
                mean = sum(steady) / len(steady)
                note("mean %.1f/s, max %d/s, min %d/s (after the first 2 s); smpgwd used %.1f s of CPU in %d s",
                     mean, max(steady), min(steady), cpu, window)
                self.assertEqual(len(per_target), n, "not every device polled")
                self.assertGreater(mean, 0.6 * n / sleep)
                self.assertLess(mean, 1.4 * n / sleep)
                # No burst: no second far above the mean, the first included.
                self.assertLessEqual(max(rates), 2.0 * n / sleep, rates)
                self.assertGreaterEqual(min(steady), 0.3 * n / sleep, rates)
                for c, k in per_target.items():
                    self.assertLessEqual(k, window // sleep + 2, "%s polled %d times" % (c, k))
        finally:
            fake.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
