#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""smpgwd's REST API (doc/openapi.yaml) from the outside: real smpgwd
processes, HTTP over loopback (http.client and raw sockets for what
http.client will not send: headers without their body, chunked bodies),
smpsim devices over UDP.  Every endpoint, its errors, bearer tokens,
body limits, Server-Sent Events during a push, Prometheus metrics."""

import datetime
import hashlib
import http.client
import json
import os
import random
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from daemonharness import Daemon, Sim, free_tcp_port, have, image_path, sql  # noqa: E402
import mcuimg  # noqa: E402

TOKEN = "t0k3n-for-tests"
OTHER_TOKEN = "second-token"
MAX_BODY = 8192
IMAGE_MAX = 200000
PAGE_MAX = 50

# The rest of the [rest] section (the harness writes "[rest]\ntokens_file=").
LIMITS_CONFIG = ("max_body=%d\npage_max=%d\n\n[images]\nmax_size=%d\n" % (MAX_BODY, PAGE_MAX, IMAGE_MAX))

ERROR_CODES = {"bad_request", "invalid_json", "invalid_field", "not_found", "method_not_allowed", "conflict",
               "busy", "payload_too_large", "unsupported_media_type", "unauthorized", "invalid_image",
               "signature_invalid", "too_many", "ambiguous", "internal", "invalid_path"}

# The event types of GET /api/v1/events (doc/openapi.yaml).
EVENT_TYPES = ("device-added", "device-changed", "device-removed", "image-added", "image-changed",
               "image-removed", "job-added", "job-state", "job-progress", "job-removed", "rollout-added",
               "rollout-state", "rollout-progress", "rollout-member", "rollout-removed", "distribution-state",
               "distribution-progress", "distribution-removed")

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def dumpinfo_version(name):
    """The version imgtool printed for a test vector (tests/data/*.dumpinfo.txt)."""
    with open(image_path(name.replace(".bin", ".dumpinfo.txt"))) as f:
        for line in f:
            if line.startswith("version:"):
                return line.split()[1]
    raise AssertionError("no version in the dumpinfo of " + name)


def raw_http(d, method, path, headers=(), chunks=None, body=None, token=True, timeout=20):
    """One request over a raw socket: headers exactly as given, then either
    nothing, a body, or a chunked body; returns (status, headers, body).
    A server that answers early and closes is fine: sending stops."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=timeout)
    try:
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1", "Connection: close"]
        if token:
            lines.append("Authorization: Bearer " + (token if isinstance(token, str) else d.token))
        lines += list(headers)
        if chunks is not None:
            lines.append("Transfer-Encoding: chunked")
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            if body is not None:
                s.sendall(body)
            if chunks is not None:
                for c in chunks:
                    s.sendall(b"%x\r\n%s\r\n" % (len(c), c))
                s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        while True:
            try:
                got = s.recv(65536)
            except ConnectionResetError:
                break
            if not got:
                break
            data += got
    finally:
        s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding") == "chunked":
        body_out = b""
        while rest:
            size_s, _, rest = rest.partition(b"\r\n")
            size = int(size_s, 16)
            if size == 0:
                break
            body_out += rest[:size]
            rest = rest[size + 2:]
        rest = body_out
    return status, hdrs, rest


class SSEClient:
    """Reads /api/v1/events in a thread: (event, id, data) tuples."""

    def __init__(self, d, query=""):
        self.conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=120)
        hdrs = {"Accept": "text/event-stream"}
        if d.token:
            hdrs["Authorization"] = "Bearer " + d.token
        self.conn.request("GET", "/api/v1/events" + query, headers=hdrs)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        self.events = []
        self.arrivals = []             # time.time() of each event, as self.events
        self.comments = 0
        self.comment_times = []
        self.lock = threading.Lock()
        self.ended = False
        self.thread = None
        if self.status == 200:
            self.thread = threading.Thread(target=self.run, daemon=True)
            self.thread.start()

    def run(self):
        current = {}
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                line = line.decode().rstrip("\n")
                if not line:
                    # A block without data (the "retry:" advice) is no event.
                    if "data" in current:
                        with self.lock:
                            self.events.append((current.get("event"), int(current.get("id", "0")),
                                                json.loads(current.get("data", "null"))))
                            self.arrivals.append(time.time())
                    current = {}
                elif line.startswith(":"):
                    with self.lock:
                        self.comments += 1
                        self.comment_times.append(time.time())
                else:
                    key, _, value = line.partition(":")
                    current[key] = value[1:] if value.startswith(" ") else value
        except Exception:  # noqa: BLE001 - close() pulls the socket from under readline()
            pass
        self.ended = True

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def timed(self):
        """[(arrival time, event)]"""
        with self.lock:
            return list(zip(self.arrivals, self.events))

    def wait_for(self, predicate, timeout=60, what="events"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return
            time.sleep(0.1)
        raise AssertionError("timed out waiting for %s; got %r" % (what, [e[:2] for e in self.snapshot()]))

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()
        if self.thread:
            self.thread.join(5)


class RestCase(unittest.TestCase):
    def assertError(self, d, method, path, body=None, status=400, code=None, contains=None, **kw):
        got, headers, data = d.http(method, path, body, **kw)
        self.assertEqual(got, status, "%s %s: %d %r" % (method, path, got, data))
        self.assertTrue(headers.get("content-type", "").startswith("application/json"), headers)
        doc = json.loads(data)
        self.assertEqual(set(doc), {"error"})
        self.assertIn(doc["error"]["code"], ERROR_CODES)
        if code:
            self.assertEqual(doc["error"]["code"], code, doc)
        self.assertIsInstance(doc["error"]["message"], str)
        self.assertTrue(doc["error"]["message"])
        if contains:
            self.assertIn(contains, doc["error"]["message"])
        return doc, headers

    def assertDevice(self, dev):
        for key in ("id", "conn", "transport", "address", "address_type", "adapter", "name", "state", "source",
                    "rssi", "first_seen", "last_seen", "last_probe", "params", "os_info", "bootloader",
                    "smp_version", "last_error", "job", "images"):
            self.assertIn(key, dev)
        self.assertIsInstance(dev["id"], int)
        self.assertIn(dev["state"], ("new", "online", "unreachable", "absent"))
        for key in ("first_seen", "last_seen", "last_probe"):
            self.assertTrue(dev[key] is None or RFC3339_MS.match(dev[key]), dev[key])
        for slot in dev["images"]:
            self.assertEqual(set(slot), {"image", "slot", "version", "hash", "active", "confirmed", "pending",
                                         "bootable", "permanent"})

    def assertJob(self, job):
        self.assertEqual(set(job), {"id", "device", "conn", "image", "rollout", "mode", "state", "step", "outcome",
                                    "attempts", "max_attempts", "bytes_sent", "bytes_total", "progress", "rate",
                                    "error", "created", "started", "finished", "next_attempt", "updated"})
        self.assertTrue(0 <= job["progress"] <= 1)
        self.assertTrue(RFC3339_MS.match(job["created"]), job["created"])


def add_device(d, conn, expect=201):
    _, dev = d.api("POST", "/api/v1/devices", {"conn": conn}, expect=expect)
    return dev


def upload(d, data, name=None, expect=201):
    path = "/api/v1/images" + ("?name=" + urllib.parse.quote(name) if name else "")
    status, doc = d.api("POST", path, data, headers={"Content-Type": "application/octet-stream"})
    if expect is not None and status != expect:
        raise AssertionError("upload: %d, wanted %d: %r" % (status, expect, doc))
    return doc


def job_ids(doc):
    return [j["id"] for j in doc["jobs"]]


def wait_online(d, dev_ids, timeout=30):
    def ok():
        devs = [d.api("GET", "/api/v1/devices/%d" % i, expect=200)[1] for i in dev_ids]
        return devs if all(x["state"] == "online" and x["images"] for x in devs) else None
    return d.wait_for(ok, timeout=timeout, what="devices online")


def wait_jobs_finished(d, ids, timeout=120):
    def done():
        jobs = [d.api("GET", "/api/v1/jobs/%d" % i, expect=200)[1] for i in ids]
        return jobs if all(j["state"] in ("succeeded", "failed", "cancelled") for j in jobs) else None
    return d.wait_for(done, timeout=timeout, interval=0.3, what="jobs %r finished" % ids)


class Api(RestCase):
    """Everything that needs no device: one daemon with tokens and small limits."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(config=LIMITS_CONFIG, tokens=[TOKEN, OTHER_TOKEN])

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def test_health(self):
        status, headers, data = self.d.http("GET", "/api/v1/health", token=False)
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("application/json"))
        doc = json.loads(data)
        self.assertEqual(doc["status"], "ok")
        self.assertRegex(doc["version"], r"^\d+\.\d+\.\d+")
        self.assertIsInstance(doc["uptime"], int)
        self.assertGreaterEqual(doc["uptime"], 0)
        self.assertIsInstance(doc["devices"], int)
        self.assertEqual(doc["jobs_running"], 0)
        # HEAD works as GET without a body.
        status, _, data = self.d.http("HEAD", "/api/v1/health", token=False)
        self.assertEqual(status, 200)
        self.assertEqual(data, b"")

    def test_auth(self):
        d = self.d
        for path in ("/api/v1/devices", "/api/v1/images", "/api/v1/jobs", "/metrics", "/api/v1/nonexistent",
                     "/api/v1/events"):
            _, headers = self.assertError(d, "GET", path, status=401, code="unauthorized", token=False)
            self.assertTrue(headers["www-authenticate"].startswith("Bearer"), headers)
            self.assertError(d, "GET", path, status=401, code="unauthorized", token="wrong")
            self.assertError(d, "GET", path, status=401, code="unauthorized", token=TOKEN + "x")
            self.assertError(d, "GET", path, status=401, code="unauthorized", token=TOKEN[:-1])
        self.assertError(d, "GET", "/api/v1/devices", status=401, code="unauthorized", token=False,
                         headers={"Authorization": "Basic " + TOKEN})
        self.assertError(d, "POST", "/api/v1/devices", {"conn": "udp:127.0.0.1:9"}, status=401,
                         code="unauthorized", token=False)
        d.api("GET", "/api/v1/devices", expect=200)
        d.api("GET", "/api/v1/devices", expect=200, token=OTHER_TOKEN)
        # The comment line of the tokens file is not a token.
        self.assertError(d, "GET", "/api/v1/devices", status=401, token="# test tokens")

    def test_unknown_paths_and_methods(self):
        d = self.d
        for path in ("/", "/api/v1", "/api/v1/nope", "/api/v2/devices", "/api/v1/images/abc/def",
                     "/api/v1/jobs/1/cancel/now", "/metricsx"):
            self.assertError(d, "GET", path, status=404, code="not_found")
        for method, path, allowed in (("PUT", "/api/v1/devices", {"GET", "POST"}),
                                      ("PATCH", "/api/v1/jobs/1", {"GET", "DELETE"}),
                                      ("GET", "/api/v1/devices/1/probe", {"POST"}),
                                      ("GET", "/api/v1/jobs/1/cancel", {"POST"}),
                                      ("DELETE", "/api/v1/health", {"GET"}),
                                      ("POST", "/metrics", {"GET"}),
                                      ("DELETE", "/api/v1/images", {"GET", "POST"})):
            _, headers = self.assertError(d, method, path, status=405, code="method_not_allowed")
            allow = {m.strip() for m in headers["allow"].split(",")}
            self.assertTrue(allowed <= allow, (path, headers["allow"]))

    def test_control_characters_in_path(self):
        """MHD unescapes the path before smpgwd sees it, and a %00 ended it
        there: POST /devices/%00/probe was routed to POST /devices (and
        added a device), GET /jobs/1%00/cancel answered job 1.  A control
        character in the path, raw or escaped, is 400 invalid_path."""
        d = self.d
        _, before = d.api("GET", "/api/v1/devices?limit=1", expect=200)
        for method, path in (("POST", "/api/v1/devices/%00/probe"),
                             ("POST", "/api/v1/devices/%00"),
                             ("GET", "/api/v1/jobs/1%00/cancel"),
                             ("GET", "/api/v1/jobs/1%00"),
                             ("GET", "/api/v1/health%00"),
                             ("GET", "/api/v1/devices/1%0a"),
                             ("GET", "/api/v1/devices/%1F"),
                             ("DELETE", "/api/v1/images/%7f"),
                             ("GET", "/api/v1/devices/a%09b")):
            body = b'{"conn":"udp:127.0.0.1:7"}' if method == "POST" else None
            headers = ["Content-Type: application/json", "Content-Length: %d" % len(body)] if body else []
            status, hdrs, data = raw_http(d, method, path, headers=headers, body=body)
            self.assertEqual(status, 400, "%s %s: %d %r" % (method, path, status, data))
            self.assertTrue(hdrs["content-type"].startswith("application/json"))
            doc = json.loads(data)
            self.assertEqual(doc["error"]["code"], "invalid_path", (path, doc))
            self.assertIsInstance(doc["error"]["message"], str)
        # Also without a token: refused for what it is, before anything else.
        status, _, data = raw_http(d, "POST", "/api/v1/devices/%00/probe", token=False)
        self.assertEqual((status, json.loads(data)["error"]["code"]), (400, "invalid_path"))
        # A raw control byte in the request target.
        status, _, data = raw_http(d, "GET", "/api/v1/jobs/1\x01")
        self.assertEqual(status, 400, data)
        _, after = d.api("GET", "/api/v1/devices?limit=1", expect=200)
        self.assertEqual(after["total"], before["total"], "a device was added")
        # In a query parameter: invalid_field, naming it.
        self.assertError(d, "GET", "/api/v1/devices?state=online%00x", status=400, code="invalid_field",
                         contains="'state'")
        # Escapes of anything else are fine: %2F in a connection string.
        self.assertError(d, "GET", "/api/v1/devices/serial%3A%2Fdev%2FttyNONE", status=404, code="not_found")
        d.api("GET", "/api/v1/health", expect=200)

    def test_json_body_errors(self):
        d = self.d
        post = "/api/v1/devices"
        doc, _ = self.assertError(d, "POST", post, b'{"conn": ', code="invalid_json",
                                  headers={"Content-Type": "application/json"})
        self.assertIn("line 1", doc["error"]["message"])
        self.assertError(d, "POST", post, b'{"conn": "udp:127.0.0.1:9",}', code="invalid_json",
                         headers={"Content-Type": "application/json"})
        self.assertError(d, "POST", post, b'\xff\xfe', code="invalid_json",
                         headers={"Content-Type": "application/json"})
        self.assertError(d, "POST", post, b'{"conn": "a", "conn": "b"}', code="invalid_json",
                         headers={"Content-Type": "application/json"})
        self.assertError(d, "POST", post, [1, 2], code="invalid_json")
        self.assertError(d, "POST", post, b'"udp:127.0.0.1:9"', code="invalid_json",
                         headers={"Content-Type": "application/json"})
        self.assertError(d, "POST", post, b'', code="bad_request", headers={"Content-Type": "application/json"})
        # Content-Type: strict.
        self.assertError(d, "POST", post, b'{"conn": "udp:127.0.0.1:9"}', status=415,
                         code="unsupported_media_type", headers={"Content-Type": "text/plain"})
        status, _, data = raw_http(d, "POST", post, headers=["Content-Length: 26"], body=b'{"conn":"udp:127.0.0.1:9"}')
        self.assertEqual(status, 415, data)
        self.assertEqual(json.loads(data)["error"]["code"], "unsupported_media_type")
        d.api("POST", post, b'{"conn": "udp:127.0.0.1:9"}', headers={"Content-Type": "application/json; charset=utf-8"},
              expect=201)
        # Wrong types, unknown and missing fields name the field.
        for body, field in (({"conn": 5}, "conn"), ({"conn": None}, "conn"), ({"conn": ""}, "conn"),
                            ({}, "conn"), ({"conn": "udp:127.0.0.1:9", "name": "x"}, "name"),
                            ({"conn": ["udp:127.0.0.1:9"]}, "conn")):
            self.assertError(d, "POST", post, body, code="invalid_field", contains="'%s'" % field)
        self.assertError(d, "POST", post, {"conn": "nosuch:abc"}, code="invalid_field", contains="transport")
        self.assertError(d, "POST", post, {"conn": "no-colon-here"}, status=400)
        # Over max_body: refused at the headers with Content-Length...
        big = json.dumps({"conn": "udp:127.0.0.1:9", "pad": "x" * MAX_BODY}).encode()
        self.assertError(d, "POST", post, big, status=413, code="payload_too_large",
                         headers={"Content-Type": "application/json"})
        status, _, data = raw_http(d, "POST", post, headers=["Content-Type: application/json",
                                                             "Content-Length: 100000000"])
        self.assertEqual(status, 413, data)
        # ... and after the fact when chunked.
        status, _, data = raw_http(d, "POST", post, headers=["Content-Type: application/json"],
                                   chunks=[big[i:i + 500] for i in range(0, len(big), 500)])
        self.assertEqual(status, 413, data)
        self.assertEqual(json.loads(data)["error"]["code"], "payload_too_large")
        # A chunked body under the limit is fine.
        small = json.dumps({"conn": "udp:127.0.0.1:10"}).encode()
        status, _, data = raw_http(d, "POST", post, headers=["Content-Type: application/json"],
                                   chunks=[small[:7], small[7:]])
        self.assertEqual(status, 201, data)
        d.api("GET", "/api/v1/health", expect=200)

    def test_devices(self):
        d = self.d
        base = 20000 + random.randrange(20000)
        conns = ["udp:127.0.0.1:%d" % (base + i) for i in range(7)]
        devs = [add_device(d, c) for c in conns]
        for dev, conn in zip(devs, conns):
            self.assertDevice(dev)
            self.assertEqual(dev["conn"], conn)
            self.assertEqual(dev["transport"], "udp")
            self.assertEqual(dev["source"], "rest")
            self.assertIsNone(dev["job"])
        # Adding again gives the same device with 200.
        again = add_device(d, conns[0], expect=200)
        self.assertEqual(again["id"], devs[0]["id"])

        ident = devs[0]["id"]
        _, got = d.api("GET", "/api/v1/devices/%d" % ident, expect=200)
        self.assertEqual(got["conn"], conns[0])
        _, got = d.api("GET", "/api/v1/devices/" + urllib.parse.quote(conns[0], safe=""), expect=200)
        self.assertEqual(got["id"], ident)
        _, got = d.api("GET", "/api/v1/devices/%d/" % ident, expect=200)
        self.assertEqual(got["id"], ident)
        for bad in ("999999", "abc", "0", "udp%3A127.0.0.1%3A1", "-1", "18446744073709551616"):
            self.assertError(d, "GET", "/api/v1/devices/" + bad, status=404, code="not_found")

        # Lists, filters and pages.
        _, doc = d.api("GET", "/api/v1/devices?limit=%d" % PAGE_MAX, expect=200)
        self.assertEqual(set(doc), {"devices", "total", "limit", "offset"})
        ours = [x for x in doc["devices"] if x["conn"] in conns]
        self.assertEqual(len(ours), len(conns))
        total = doc["total"]
        self.assertEqual(doc["limit"], PAGE_MAX)
        self.assertEqual(doc["offset"], 0)
        _, doc = d.api("GET", "/api/v1/devices", expect=200)
        self.assertEqual(doc["limit"], PAGE_MAX)  # the default (100) capped by page_max
        _, p1 = d.api("GET", "/api/v1/devices?limit=3&offset=0", expect=200)
        _, p2 = d.api("GET", "/api/v1/devices?limit=3&offset=3", expect=200)
        self.assertEqual(len(p1["devices"]), 3)
        self.assertEqual((p1["total"], p1["limit"], p1["offset"]), (total, 3, 0))
        self.assertEqual(p2["offset"], 3)
        self.assertFalse({x["id"] for x in p1["devices"]} & {x["id"] for x in p2["devices"]})
        _, past = d.api("GET", "/api/v1/devices?offset=%d" % (total + 5), expect=200)
        self.assertEqual(past["devices"], [])
        self.assertEqual(past["total"], total)
        _, doc = d.api("GET", "/api/v1/devices?transport=udp&limit=50", expect=200)
        self.assertEqual(doc["total"], total)
        _, doc = d.api("GET", "/api/v1/devices?transport=ble", expect=200)
        self.assertEqual(doc["total"], 0)
        for state in ("new", "online", "unreachable", "absent"):
            _, doc = d.api("GET", "/api/v1/devices?state=" + state, expect=200)
            self.assertTrue(all(x["state"] == state for x in doc["devices"]))
        _, doc = d.api("GET", "/api/v1/devices?name=no-such-name-anywhere", expect=200)
        self.assertEqual(doc["total"], 0)
        _, doc = d.api("GET", "/api/v1/devices?image=" + "ab" * 32, expect=200)
        self.assertEqual(doc["total"], 0)
        for query, field in (("limit=0", "limit"), ("limit=%d" % (PAGE_MAX + 1), "limit"), ("limit=abc", "limit"),
                             ("limit=-1", "limit"), ("offset=-1", "offset"), ("offset=1x", "offset"),
                             ("state=broken", "state"), ("image=xyz", "image")):
            self.assertError(d, "GET", "/api/v1/devices?" + query, code="invalid_field", contains="'%s'" % field)

        # Probe: 202 (or busy while the probe started at the add runs).
        status, doc = d.api("POST", "/api/v1/devices/%d/probe" % devs[1]["id"])
        self.assertIn(status, (202, 409), doc)
        if status == 202:
            self.assertDevice(doc)
        else:
            self.assertEqual(doc["error"]["code"], "busy")
        self.assertError(d, "POST", "/api/v1/devices/999999/probe", status=404, code="not_found")

        # History.
        _, hist = d.api("GET", "/api/v1/devices/%d/history" % ident, expect=200)
        self.assertTrue(hist["events"], hist)
        for ev in hist["events"]:
            self.assertEqual(set(ev), {"time", "type", "image", "job", "message"})
            self.assertTrue(RFC3339_MS.match(ev["time"]))
        _, hist = d.api("GET", "/api/v1/devices/%d/history?limit=1" % ident, expect=200)
        self.assertEqual(len(hist["events"]), 1)
        self.assertError(d, "GET", "/api/v1/devices/%d/history?limit=0" % ident, code="invalid_field")
        self.assertError(d, "GET", "/api/v1/devices/999999/history", status=404, code="not_found")

        # Forget.
        status, _, data = d.http("DELETE", "/api/v1/devices/" + urllib.parse.quote(conns[2], safe=""))
        self.assertEqual(status, 204, data)
        self.assertEqual(data, b"")
        self.assertError(d, "GET", "/api/v1/devices/%d" % devs[2]["id"], status=404, code="not_found")
        self.assertError(d, "DELETE", "/api/v1/devices/%d" % devs[2]["id"], status=404, code="not_found")
        _, doc = d.api("GET", "/api/v1/devices?limit=%d" % PAGE_MAX, expect=200)
        self.assertEqual(doc["total"], total - 1)

    def test_device_patch_all_or_nothing(self):
        """PATCH /devices/{id} saved (and announced) the name before it
        looked at 'role' and 'direct_device': a refused later field gave
        400 with the name changed.  A refusal leaves every field as it was."""
        d = self.d
        base = 40000 + random.randrange(10000)
        dev, other = add_device(d, "udp:127.0.0.1:%d" % base), add_device(d, "udp:127.0.0.1:%d" % (base + 1))
        path = "/api/v1/devices/%d" % dev["id"]
        d.api("PATCH", path, {"name": "before"}, expect=200)
        for body, status, code in (({"name": "after", "role": "bogus"}, 400, "invalid_field"),
                                   ({"name": "after", "role": 5}, 400, "invalid_field"),
                                   # a device that is no mesh target has no direct device
                                   ({"name": "after", "direct_device": other["id"]}, 400, "invalid_field"),
                                   ({"name": "after", "role": "mesh-distributor", "direct_device": other["id"]},
                                    400, "invalid_field"),
                                   ({"role": "mesh-distributor", "direct_device": None}, 400, "invalid_field"),
                                   ({"name": "after", "role": "mesh-distributor", "direct_device": 999999},
                                    404, "not_found"),
                                   ({"name": "after", "direct_device": True}, 400, "invalid_field")):
            self.assertError(d, "PATCH", path, body, status=status, code=code)
            _, got = d.api("GET", path, expect=200)
            self.assertEqual((got["name"], got["role"]), ("before", None), body)
        _, hist = d.api("GET", path + "/history", expect=200)
        self.assertEqual([e["message"] for e in hist["events"] if e["type"] == "device-name"], ["named 'before'"])
        # Each alone still does what it did.
        _, got = d.api("PATCH", path, {"name": "after", "role": "mesh-distributor"}, expect=200)
        self.assertEqual((got["name"], got["role"]), ("after", "mesh-distributor"))
        _, got = d.api("PATCH", path, {"name": None, "role": None}, expect=200)
        self.assertEqual((got["name"], got["role"]), (None, None))

    def test_images(self):
        d = self.d
        data = read_file(image_path("imgtool-ecdsa-p256.bin"))
        img = upload(d, data, name="fw p256.bin")
        self.assertEqual(set(img) - {"created"}, {"id", "name", "version", "size", "image_size", "sha256", "signed",
                                                 "key", "added", "in_use", "boards", "mesh_composition"})
        self.assertEqual(img["boards"], [])   # any board unless declared (issue 12)
        self.assertIsNone(img["mesh_composition"])   # none unless declared
        self.assertTrue(img["created"])
        self.assertRegex(img["id"], r"^[0-9a-f]{64}$")
        self.assertEqual(img["name"], "fw p256.bin")
        self.assertEqual(img["version"], dumpinfo_version("imgtool-ecdsa-p256.bin"))
        self.assertEqual(img["size"], len(data))
        self.assertEqual(img["sha256"], hashlib.sha256(data).hexdigest())
        self.assertFalse(img["signed"])  # no keys configured
        self.assertFalse(img["in_use"])
        self.assertTrue(RFC3339_MS.match(img["added"]))
        # The id is MCUboot's image hash: the SHA256 TLV over header and body.
        hdr_size = int.from_bytes(data[8:10], "little")
        img_size = int.from_bytes(data[12:16], "little")
        protected = int.from_bytes(data[10:12], "little")
        self.assertEqual(img["image_size"], img_size)
        self.assertEqual(img["id"], hashlib.sha256(data[:hdr_size + img_size + protected]).hexdigest())

        again = upload(d, data, name="other-name.bin")
        self.assertEqual(again["id"], img["id"])
        self.assertFalse(again["created"])

        unsigned, unsigned_hash = mcuimg.make_image(version=(3, 4, 5, 6), size=4096, seed=9)
        doc = upload(d, unsigned)
        self.assertEqual(doc["id"], unsigned_hash)
        self.assertEqual(doc["version"], "3.4.5+6")
        self.assertIsNone(doc["name"])

        _, lst = d.api("GET", "/api/v1/images", expect=200)
        self.assertIn(img["id"], [x["id"] for x in lst["images"]])
        self.assertIn(unsigned_hash, [x["id"] for x in lst["images"]])
        _, got = d.api("GET", "/api/v1/images/" + img["id"], expect=200)
        self.assertEqual(got["sha256"], img["sha256"])
        _, got = d.api("GET", "/api/v1/images/" + img["id"].upper(), expect=200)
        self.assertEqual(got["id"], img["id"])
        self.assertError(d, "GET", "/api/v1/images/" + "0" * 64, status=404, code="not_found")
        self.assertError(d, "GET", "/api/v1/images/nothex", status=404, code="not_found")

        # Invalid images: truncated, random bytes, empty, a bad hash.
        for bad in (data[:len(data) // 2], data[:31], os.urandom(5000), b"", b"\x3d\xb8\xf3\x96" + bytes(60)):
            self.assertError(d, "POST", "/api/v1/images", bad, code="invalid_image",
                             headers={"Content-Type": "application/octet-stream"})
        corrupt = bytearray(unsigned)
        corrupt[0x300] ^= 0xFF
        self.assertError(d, "POST", "/api/v1/images", bytes(corrupt), code="invalid_image",
                         headers={"Content-Type": "application/octet-stream"})
        self.assertError(d, "POST", "/api/v1/images?name=" + "n" * 300, data, code="invalid_field",
                         headers={"Content-Type": "application/octet-stream"})

        # Too large: at the headers (no body sent at all), and chunked.
        status, _, body = raw_http(d, "POST", "/api/v1/images",
                                   headers=["Content-Type: application/octet-stream",
                                            "Content-Length: %d" % (IMAGE_MAX + 1)])
        self.assertEqual(status, 413, body)
        self.assertEqual(json.loads(body)["error"]["code"], "payload_too_large")
        big, _ = mcuimg.make_image(size=IMAGE_MAX + 1000)
        status, _, body = raw_http(d, "POST", "/api/v1/images", headers=["Content-Type: application/octet-stream"],
                                   chunks=[big[i:i + 16384] for i in range(0, len(big), 16384)])
        self.assertEqual(status, 413, body)
        self.assertEqual(json.loads(body)["error"]["code"], "payload_too_large")
        # A chunked image within the limit is stored.
        mid, mid_hash = mcuimg.make_image(size=50000, seed=3)
        status, _, body = raw_http(d, "POST", "/api/v1/images", headers=["Content-Type: application/octet-stream"],
                                   chunks=[mid[i:i + 7000] for i in range(0, len(mid), 7000)])
        self.assertEqual(status, 201, body)
        self.assertEqual(json.loads(body)["id"], mid_hash)
        # An upload cut off half way leaves nothing behind.
        s = socket.create_connection(("127.0.0.1", d.port))
        s.sendall(("POST /api/v1/images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Length: %d\r\n\r\n" % (TOKEN, len(mid))).encode() + mid[:10000])
        s.close()
        _, lst2 = d.api("GET", "/api/v1/images", expect=200)
        self.assertEqual(len(lst2["images"]), len(lst["images"]) + 1)

        # Delete.
        status, _, body = d.http("DELETE", "/api/v1/images/" + unsigned_hash)
        self.assertEqual(status, 204, body)
        self.assertError(d, "GET", "/api/v1/images/" + unsigned_hash, status=404, code="not_found")
        self.assertError(d, "DELETE", "/api/v1/images/" + unsigned_hash, status=404, code="not_found")
        d.api("GET", "/api/v1/health", expect=200, token=False)

    def test_image_mesh_composition(self):
        """PATCH "mesh_composition": the object sets it, null clears it, a
        hash of 0 is a hash; bad values are refused with 400 and change
        nothing, "boards" in the same request included."""
        d = self.d
        data, _ = mcuimg.make_image(version=(4, 1, 0, 0), size=3000, seed=21)
        img = upload(d, data)
        path = "/api/v1/images/" + img["id"]
        self.assertIsNone(img["mesh_composition"])
        _, got = d.api("PATCH", path, {"mesh_composition": {"hash": 0, "elements": 1}}, expect=200)
        self.assertEqual(got["mesh_composition"], {"hash": 0, "elements": 1})
        _, got = d.api("PATCH", path, {"mesh_composition": {"hash": 4294967295, "elements": 65535},
                                       "boards": ["nrf52840dk"]}, expect=200)
        self.assertEqual(got["mesh_composition"], {"hash": 4294967295, "elements": 65535})
        self.assertEqual(got["boards"], ["nrf52840dk"])
        _, got = d.api("GET", path, expect=200)
        self.assertEqual(got["mesh_composition"], {"hash": 4294967295, "elements": 65535})
        _, lst = d.api("GET", "/api/v1/images", expect=200)
        self.assertEqual([x["mesh_composition"] for x in lst["images"] if x["id"] == img["id"]],
                         [{"hash": 4294967295, "elements": 65535}])
        # Left out: unchanged.
        _, got = d.api("PATCH", path, {"boards": []}, expect=200)
        self.assertEqual(got["mesh_composition"], {"hash": 4294967295, "elements": 65535})
        bad = [({"hash": -1, "elements": 1}, "0 to 4294967295"),
               ({"hash": 4294967296, "elements": 1}, "0 to 4294967295"),
               ({"hash": 1, "elements": 0}, "1 to 65535"),
               ({"hash": 1, "elements": 65536}, "1 to 65535"),
               ({"hash": "0x1234", "elements": 1}, "integers"),
               ({"hash": 1.0, "elements": 1}, "integers"),
               ({"hash": True, "elements": 1}, "integers"),
               ({"hash": 1}, "integers"),
               ({"elements": 1}, "integers"),
               ({"hash": 1, "elements": 1, "cid": 89}, "unknown key 'cid'"),
               ([1, 2], "must be"),
               (7, "must be"),
               ("none", "must be")]
        for value, message in bad:
            for extra in ({}, {"boards": ["esp32"]}):
                body = dict(extra, mesh_composition=value)
                doc, _ = self.assertError(d, "PATCH", path, body, status=400, code="invalid_field", contains=message)
                self.assertIn("mesh_composition", doc["error"]["message"])
        # A bad "boards" beside a good composition: neither is taken.
        self.assertError(d, "PATCH", path, {"boards": ["a b"], "mesh_composition": {"hash": 5, "elements": 5}},
                         status=400, code="invalid_field", contains="'boards' item 0")
        _, got = d.api("GET", path, expect=200)
        self.assertEqual(got["mesh_composition"], {"hash": 4294967295, "elements": 65535})
        self.assertEqual(got["boards"], [])
        _, got = d.api("PATCH", path, {"mesh_composition": None}, expect=200)
        self.assertIsNone(got["mesh_composition"])
        self.assertIsNone(d.api("GET", path, expect=200)[1]["mesh_composition"])

    def test_image_bad_boards_refused_before_body(self):
        """A bad ?boards= on an upload (a name that is not one, a 17th
        board, a name over 64 characters) is refused with 400 at the
        request line: a client asking 'Expect: 100-continue' gets the 400
        instead of the 100, and one that sends its body anyway gets the
        answer after a part of it, without the rest."""
        d = self.d
        length = IMAGE_MAX - 1000   # within [images] max_size: only the boards are wrong
        cases = [("bad%20name", "'boards' item 0 is not a board name"),
                 (",".join("b%d" % i for i in range(17)), "more than 16 distinct boards"),
                 ("ok," + "x" * 65, "'boards' item 1 is not a board name")]

        def request(boards, expect_continue):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            head = ["POST /api/v1/images?boards=%s HTTP/1.1" % boards, "Host: 127.0.0.1",
                    "Authorization: Bearer " + TOKEN, "Content-Type: application/octet-stream",
                    "Content-Length: %d" % length]
            if expect_continue:
                head.append("Expect: 100-continue")
            s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            if not expect_continue:
                s.sendall(bytes(16384))   # a part, then wait for the answer
            return s

        def answer(s):
            data = b""
            try:
                while True:
                    got = s.recv(65536)
                    if not got:
                        break
                    data += got
                    head, sep, body = data.partition(b"\r\n\r\n")
                    if sep and b"content-length:" in head.lower():
                        want = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                        if len(body) >= want:
                            break
            except socket.timeout:
                pass
            except ConnectionResetError:
                pass
            finally:
                s.close()
            return data

        for boards, message in cases:
            for expect_continue in (True, False):
                what = "boards=%s, Expect: 100-continue %s" % (boards[:20], expect_continue)
                data = answer(request(boards, expect_continue))
                self.assertTrue(data.startswith(b"HTTP/1.1 400 "), "%s: %r" % (what, data[:200]))
                doc = json.loads(data.partition(b"\r\n\r\n")[2])
                self.assertEqual(doc["error"]["code"], "invalid_field", what)
                self.assertIn(message, doc["error"]["message"], what)
        # Nothing was stored, and a good list still takes its upload.
        _, before = d.api("GET", "/api/v1/images", expect=200)
        data, _ = mcuimg.make_image((9, 1, 0, 0), 4096, seed=21)
        status, img = d.api("POST", "/api/v1/images?boards=nrf52840dk,esp32", data,
                            headers={"Content-Type": "application/octet-stream"})
        self.assertEqual((status, img["boards"]), (201, ["nrf52840dk", "esp32"]), img)
        d.api("DELETE", "/api/v1/images/" + img["id"], expect=204)
        _, after = d.api("GET", "/api/v1/images", expect=200)
        self.assertEqual(len(after["images"]), len(before["images"]))

    def test_image_prefixes(self):
        """An image is named by its id or by a unique prefix of at least 6
        hex digits everywhere: its path, POST /jobs, the ?image= filters;
        a prefix that fits two images is 409 ambiguous, never a guess."""
        d = self.d
        (a, a_id), (b, b_id) = mcuimg.prefix_twins()
        upload(d, a)
        upload(d, b)
        common = os.path.commonprefix([a_id, b_id])
        self.assertGreaterEqual(len(common), 6)
        short_a, short_b = a_id[:len(common) + 1], b_id[:len(common) + 1]
        _, images = d.api("GET", "/api/v1/images", expect=200)
        known = [x["id"] for x in images["images"]]
        nothing = next(p for p in ("%06x" % i for i in range(0, 1 << 24, 4099))
                       if not any(k.startswith(p) for k in known))

        _, got = d.api("GET", "/api/v1/images/" + short_a, expect=200)
        self.assertEqual(got["id"], a_id)
        _, got = d.api("GET", "/api/v1/images/" + short_b.upper(), expect=200)
        self.assertEqual(got["id"], b_id)
        self.assertError(d, "GET", "/api/v1/images/" + common[:6], status=409, code="ambiguous",
                         contains=common[:6])
        self.assertError(d, "GET", "/api/v1/images/" + a_id[:5], status=404, code="not_found", contains="6")
        self.assertError(d, "GET", "/api/v1/images/" + nothing, status=404, code="not_found")

        dev = add_device(d, "udp:127.0.0.1:%d" % (30000 + random.randrange(10000)))
        _, before = d.api("GET", "/api/v1/jobs", expect=200)
        self.assertError(d, "POST", "/api/v1/jobs", {"image": common[:6], "devices": [dev["id"]]}, status=409,
                         code="ambiguous")
        self.assertError(d, "POST", "/api/v1/jobs", {"image": a_id[:5], "devices": [dev["id"]]},
                         code="invalid_field", contains="'image'")
        self.assertError(d, "POST", "/api/v1/jobs", {"image": "xyzxyzxyz", "devices": [dev["id"]]},
                         code="invalid_field", contains="'image'")
        self.assertError(d, "POST", "/api/v1/jobs", {"image": nothing, "devices": [dev["id"]]}, status=404,
                         code="not_found")
        _, after = d.api("GET", "/api/v1/jobs", expect=200)
        self.assertEqual(after["total"], before["total"], "a refused request created jobs")
        _, doc = d.api("POST", "/api/v1/jobs", {"image": short_a, "devices": [dev["id"]], "mode": "upload-only"},
                       expect=201)
        job = doc["jobs"][0]
        self.assertEqual(job["image"], a_id)

        _, doc = d.api("GET", "/api/v1/jobs?image=" + short_a, expect=200)
        self.assertEqual([j["id"] for j in doc["jobs"]], [job["id"]])
        _, doc = d.api("GET", "/api/v1/jobs?image=" + a_id.upper(), expect=200)
        self.assertEqual([j["id"] for j in doc["jobs"]], [job["id"]])
        _, doc = d.api("GET", "/api/v1/jobs?image=" + short_b, expect=200)
        self.assertEqual(doc["total"], 0)
        _, doc = d.api("GET", "/api/v1/jobs?image=" + nothing, expect=200)
        self.assertEqual(doc["total"], 0)
        for path in ("/api/v1/jobs", "/api/v1/devices"):
            self.assertError(d, "GET", path + "?image=" + common[:6], status=409, code="ambiguous")
            self.assertError(d, "GET", path + "?image=" + a_id[:5], code="invalid_field", contains="'image'")
        _, doc = d.api("GET", "/api/v1/devices?image=" + short_a, expect=200)
        self.assertEqual(doc["total"], 0)   # no device runs it

        d.api("POST", "/api/v1/jobs/%d/cancel" % job["id"], expect=200)
        status, _, body = d.http("DELETE", "/api/v1/images/" + short_b)
        self.assertEqual(status, 204, body)
        # b gone, the shorter prefix is a's alone now
        _, got = d.api("GET", "/api/v1/images/" + common[:6], expect=200)
        self.assertEqual(got["id"], a_id)
        status, _, body = d.http("DELETE", "/api/v1/images/" + common[:6])
        self.assertEqual(status, 204, body)

    def test_jobs_validation(self):
        d = self.d
        imgdata, image = mcuimg.make_image(size=4096, seed=11)
        upload(d, imgdata)
        dev = add_device(d, "udp:127.0.0.1:%d" % (40000 + random.randrange(20000)))
        post = "/api/v1/jobs"
        _, before = d.api("GET", "/api/v1/jobs", expect=200)

        self.assertError(d, "POST", post, {"image": "0" * 64, "devices": [dev["id"]]}, status=404,
                         code="not_found", contains="0" * 64)
        self.assertError(d, "POST", post, {"image": image, "devices": [dev["id"], 999999]}, status=404,
                         code="not_found", contains="999999")
        self.assertError(d, "POST", post, {"image": image, "devices": ["udp:127.0.0.1:1"]}, status=404,
                         code="not_found", contains="udp:127.0.0.1:1")
        for body, field in (({"devices": [dev["id"]]}, "image"),
                            ({"image": 5, "devices": [dev["id"]]}, "image"),
                            ({"image": image}, "devices"),
                            ({"image": image, "devices": []}, "devices"),
                            ({"image": image, "devices": dev["id"]}, "devices"),
                            ({"image": image, "devices": list(range(1, 1002))}, "devices"),
                            ({"image": image, "devices": [dev["id"], dev["conn"]]}, "devices"),
                            ({"image": image, "devices": [dev["id"], str(dev["id"])]}, "devices"),
                            ({"image": image, "devices": [1.5]}, "devices[0]"),
                            ({"image": image, "devices": [None]}, "devices[0]"),
                            ({"image": image, "devices": [dev["id"]], "mode": "fast"}, "mode"),
                            ({"image": image, "devices": [dev["id"]], "mode": 1}, "mode"),
                            ({"image": image, "devices": [dev["id"]], "attempts": 0}, "attempts"),
                            ({"image": image, "devices": [dev["id"]], "attempts": 101}, "attempts"),
                            ({"image": image, "devices": [dev["id"]], "attempts": "3"}, "attempts"),
                            ({"image": image, "devices": [dev["id"]], "priority": 1}, "priority")):
            self.assertError(d, "POST", post, body, code="invalid_field", contains="'%s" % field)
        self.assertError(d, "POST", post, b"{", code="invalid_json", headers={"Content-Type": "application/json"})
        self.assertError(d, "POST", post, b"{}", status=415, headers={"Content-Type": "text/json"})
        _, after = d.api("GET", "/api/v1/jobs", expect=200)
        self.assertEqual(after["total"], before["total"], "a refused request created jobs")

        for bad in ("999999", "abc", "0"):
            self.assertError(d, "GET", "/api/v1/jobs/" + bad, status=404, code="not_found")
            self.assertError(d, "POST", "/api/v1/jobs/%s/cancel" % bad, status=404, code="not_found")
            self.assertError(d, "DELETE", "/api/v1/jobs/" + bad, status=404, code="not_found")
        for query, field in (("state=broken", "state"), ("limit=0", "limit"), ("limit=%d" % (PAGE_MAX + 1), "limit"),
                             ("offset=x", "offset")):
            self.assertError(d, "GET", "/api/v1/jobs?" + query, code="invalid_field", contains="'%s'" % field)
        _, doc = d.api("GET", "/api/v1/jobs?device=999999&image=" + "0" * 64, expect=200)
        self.assertEqual((doc["jobs"], doc["total"]), ([], 0))

    def test_events_head(self):
        """HEAD of the event stream is GET without the body (RFC 9110
        9.3.2): the stream's headers, then the reply ends.  It sent a
        chunked stream's last chunk after the headers, which a client
        reading its next reply on the connection took for a status line."""
        d = self.d
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        try:
            conn.request("HEAD", "/api/v1/events", headers={"Authorization": "Bearer " + d.token})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.getheader("Content-Type"), "text/event-stream")
            self.assertEqual(resp.getheader("Cache-Control"), "no-cache")
            # Nothing says the (absent) body is empty: GET's has no length.
            self.assertIsNone(resp.getheader("Content-Length"))
            self.assertEqual(resp.read(), b"")
            conn.request("GET", "/api/v1/health")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            resp.read()
        finally:
            conn.close()
        # On the wire: the headers, and the server ends the connection
        # with nothing after them.
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        try:
            s.sendall(("HEAD /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n"
                       % d.token).encode())
            data = b""
            while True:
                got = s.recv(65536)
                if not got:
                    break
                data += got
        finally:
            s.close()
        head, sep, after = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), data)
        self.assertEqual((sep, after), (b"\r\n\r\n", b""), data)
        # A bad filter is refused as GET's is.
        status, _, body = raw_http(d, "HEAD", "/api/v1/events?types=bogus", timeout=10)
        self.assertEqual((status, body), (400, b""))
        d.wait_for(lambda: "\nsmpgw_sse_clients 0\n" in d.http("GET", "/metrics")[2].decode(), timeout=10,
                   what="no event stream open")

    def test_events_filter_errors(self):
        self.assertError(self.d, "GET", "/api/v1/events?types=job-state,bogus", code="invalid_field",
                         contains="'types'")

    def test_events_filter_error_names_every_type(self):
        """The refusal of a bad 'types' once listed 8 of the types a stream
        accepts: it must name each one accepted."""
        doc, _ = self.assertError(self.d, "GET", "/api/v1/events?types=bogus", code="invalid_field",
                                  contains="'types'")
        named = set(re.findall(r"[a-z]+(?:-[a-z]+)+", doc["error"]["message"].partition(" list of ")[2]))
        for name in EVENT_TYPES:
            sse = SSEClient(self.d, "?types=" + name)
            try:
                self.assertEqual(sse.status, 200, name)
            finally:
                sse.close()
        self.assertEqual(named, set(EVENT_TYPES), doc["error"]["message"])

    def test_metrics(self):
        d = self.d
        status, headers, data = d.http("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"), headers)
        text = data.decode()
        self.assertTrue(text.endswith("\n"))
        types = {}
        samples = {}
        for line in text.splitlines():
            if line.startswith("# HELP "):
                self.assertRegex(line, r"^# HELP [a-z_]+ \S.*$")
            elif line.startswith("# TYPE "):
                _, _, name, kind = line.split()
                self.assertIn(kind, ("counter", "gauge", "histogram"))
                types[name] = kind
            else:
                m = re.match(r'^([a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (\d+(\.\d+)?)$', line)
                self.assertTrue(m, "not a Prometheus sample: %r" % line)
                family = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
                if types.get(family) != "histogram":
                    family = m.group(1)
                self.assertIn(family, types, "sample before its TYPE: %r" % line)
                samples[m.group(1) + (m.group(2) or "")] = float(m.group(4))
        for name in ("smpgw_devices", "smpgw_jobs", "smpgw_images", "smpgw_jobs_finished_total",
                     "smpgw_bytes_uploaded_total", "smpgw_probes_total", "smpgw_rest_requests_total",
                     "smpgw_db_flushes_total", "smpgw_db_transactions_total", "smpgw_history_dropped_total",
                     "smpgw_uptime_seconds"):
            self.assertIn(name, types)
        # The daemon wrote its devices and migrations: real transactions.
        self.assertGreater(samples["smpgw_db_transactions_total"], 0)
        self.assertEqual(samples["smpgw_history_dropped_total"], 0)
        for counter in ("smpgw_jobs_finished_total", "smpgw_bytes_uploaded_total", "smpgw_rest_requests_total",
                        "smpgw_db_transactions_total", "smpgw_history_dropped_total"):
            self.assertEqual(types[counter], "counter")
        for state in ("new", "online", "unreachable", "absent"):
            self.assertIn('smpgw_devices{state="%s"}' % state, samples)
        for state in ("queued", "running", "succeeded", "failed", "cancelled"):
            self.assertIn('smpgw_jobs{state="%s"}' % state, samples)
        self.assertEqual(types["smpgw_job_phases"], "gauge")
        for state in ("queued", "running", "retry-wait", "staged", "rebooting"):
            for phase in ("stage", "activate", "verify"):
                self.assertIn('smpgw_job_phases{state="%s",phase="%s"}' % (state, phase), samples)
        self.assertNotIn('smpgw_job_phases{state="succeeded",phase="stage"}', samples)
        for result in ("succeeded", "failed", "cancelled"):
            self.assertIn('smpgw_jobs_finished_total{result="%s"}' % result, samples)
        # Durations: the loop's callbacks and the REST requests, as
        # Prometheus histograms (cumulative buckets, +Inf = _count).
        for name in ("smpgw_rest_request_duration_seconds", "smpgw_loop_dispatch_seconds"):
            self.assertEqual(types[name], "histogram")
            buckets = [(k, v) for k, v in samples.items() if k.startswith(name + "_bucket{")]
            self.assertGreaterEqual(len(buckets), 2, name)
            counts = [v for _, v in buckets]
            self.assertEqual(counts, sorted(counts), name)
            self.assertEqual(buckets[-1][0], name + '_bucket{le="+Inf"}')
            self.assertEqual(buckets[-1][1], samples[name + "_count"])
            self.assertIn(name + "_sum", samples)
        # Every callback so far (the daemon's start, this request's) is in.
        self.assertGreater(samples["smpgw_loop_dispatch_seconds_count"], 0)
        _, _, data2 = d.http("GET", "/metrics")
        later = re.search(r"^smpgw_rest_requests_total (\d+)$", data2.decode(), re.M)
        self.assertGreater(int(later.group(1)), samples["smpgw_rest_requests_total"])
        # The scrape above, answered, is one more request timed.
        timed = re.search(r"^smpgw_rest_request_duration_seconds_count (\d+)$", data2.decode(), re.M)
        self.assertGreater(int(timed.group(1)), samples["smpgw_rest_request_duration_seconds_count"])
        self.assertError(d, "GET", "/metrics", status=401, code="unauthorized", token=False)


class Push(RestCase):
    """A full push over REST to three smpsim devices, watched over SSE."""

    def test_push_to_three(self):
        with Sim(count=3) as sim, Daemon(tokens=[TOKEN]) as d:
            conns = ["udp:127.0.0.1:%d" % (sim.port + i) for i in range(3)]
            ids = [add_device(d, c)["id"] for c in conns]
            devs = wait_online(d, ids)
            for dev in devs:
                self.assertDevice(dev)
                self.assertIsNotNone(dev["params"])
                active = [s for s in dev["images"] if s["active"]]
                self.assertEqual(active[0]["version"], "1.0.0+0")
            old_hash = active[0]["hash"]
            _, doc = d.api("GET", "/api/v1/devices?state=online&image=" + old_hash, expect=200)
            self.assertEqual(sorted(x["id"] for x in doc["devices"]), sorted(ids))

            sse = SSEClient(d, "?types=job-added,job-state,job-progress")
            everything = SSEClient(d)
            try:
                self.assertEqual(sse.status, 200)
                self.assertTrue(sse.headers["content-type"].startswith("text/event-stream"))
                imgdata, new_hash = mcuimg.make_image(version=(2, 1, 0, 5), size=48 * 1024, seed=5)
                uploaded = upload(d, imgdata, name="v2.bin")
                image = uploaded["id"]
                self.assertEqual(uploaded["version"], "2.1.0+5")
                self.assertEqual(image, new_hash)

                _, doc = d.api("POST", "/api/v1/jobs", {"image": image, "devices": [ids[0], str(ids[1]), conns[2]],
                                                        "mode": "test-and-confirm", "attempts": 2}, expect=201)
                jobs = job_ids(doc)
                self.assertEqual(len(jobs), 3)
                for j, dev_id, conn in zip(doc["jobs"], ids, conns):
                    self.assertJob(j)
                    self.assertEqual((j["device"], j["conn"], j["image"]), (dev_id, conn, image))
                    self.assertEqual((j["mode"], j["max_attempts"]), ("test-and-confirm", 2))
                    self.assertIsNone(j["rollout"])

                # While they are unfinished: no second job, no forget, no image delete.
                self.assertError(d, "POST", "/api/v1/jobs", {"image": image, "devices": [ids[2]]}, status=409,
                                 code="busy", contains=str(ids[2]))
                self.assertError(d, "DELETE", "/api/v1/devices/%d" % ids[0], status=409, code="busy")
                self.assertError(d, "DELETE", "/api/v1/images/" + image, status=409, code="busy")
                _, img = d.api("GET", "/api/v1/images/" + image, expect=200)
                self.assertTrue(img["in_use"])
                _, dev = d.api("GET", "/api/v1/devices/%d" % ids[0], expect=200)
                self.assertIn(dev["job"], jobs)
                _, lst = d.api("GET", "/api/v1/jobs", expect=200)
                self.assertEqual(lst["total"], 3)

                finished = wait_jobs_finished(d, jobs)
                for j in finished:
                    self.assertEqual(j["state"], "succeeded", j)
                    self.assertEqual(j["outcome"], "updated", j)
                    self.assertEqual(j["bytes_sent"], j["bytes_total"])
                    self.assertEqual(j["progress"], 1)
                    self.assertTrue(RFC3339_MS.match(j["finished"]))

                def updated():
                    devs = [d.api("GET", "/api/v1/devices/%d" % i, expect=200)[1] for i in ids]
                    for dev in devs:
                        if not any(s["hash"] == new_hash and s["active"] and s["confirmed"] for s in dev["images"]):
                            return None
                    return devs
                for dev in d.wait_for(updated, timeout=20, what="devices showing the new image"):
                    slot = [s for s in dev["images"] if s["hash"] == new_hash][0]
                    # the device reports "2.1.0.5" (Zephyr's spelling); one
                    # version, one spelling: the image's
                    self.assertEqual(slot["version"], uploaded["version"])
                    self.assertIsNone(dev["job"])

                sse.wait_for(lambda evs: sum(1 for e in evs if e[0] == "job-state" and e[2]["state"] == "succeeded")
                             >= 3, timeout=10, what="three job-state succeeded events")
                evs = sse.snapshot()
                kinds = {e[0] for e in evs}
                self.assertTrue({"job-added", "job-state", "job-progress"} <= kinds, kinds)
                self.assertEqual(sorted(e[2]["id"] for e in evs if e[0] == "job-added"), sorted(jobs))
                self.assertTrue(all(e[0] in ("job-added", "job-state", "job-progress") for e in evs))
                numbers = [e[1] for e in evs]
                self.assertEqual(numbers, sorted(numbers))
                self.assertEqual(len(set(numbers)), len(numbers))
                for e in evs:
                    self.assertJob(e[2])
                progress = [e[2]["bytes_sent"] for e in evs if e[0] == "job-progress" and e[2]["id"] == jobs[0]]
                self.assertEqual(progress, sorted(progress))
                # The unfiltered stream saw the image and the devices change too.
                everything.wait_for(lambda evs: {"image-added", "device-changed", "job-state"} <= {e[0] for e in evs},
                                    timeout=10, what="image-added, device-changed, job-state")
            finally:
                sse.close()
                everything.close()

            # Lists and filters over finished jobs, newest first.
            _, lst = d.api("GET", "/api/v1/jobs?state=succeeded", expect=200)
            self.assertEqual(lst["total"], 3)
            self.assertEqual([j["id"] for j in lst["jobs"]], sorted(jobs, reverse=True))
            _, lst = d.api("GET", "/api/v1/jobs?limit=2", expect=200)
            self.assertEqual((len(lst["jobs"]), lst["total"], lst["limit"]), (2, 3, 2))
            _, lst2 = d.api("GET", "/api/v1/jobs?limit=2&offset=2", expect=200)
            self.assertEqual([j["id"] for j in lst["jobs"] + lst2["jobs"]], sorted(jobs, reverse=True))
            _, lst = d.api("GET", "/api/v1/jobs?device=%d" % ids[1], expect=200)
            self.assertEqual([j["id"] for j in lst["jobs"]], [jobs[1]])
            _, lst = d.api("GET", "/api/v1/jobs?device=" + urllib.parse.quote(conns[2], safe=""), expect=200)
            self.assertEqual([j["id"] for j in lst["jobs"]], [jobs[2]])
            _, lst = d.api("GET", "/api/v1/jobs?image=%s&state=failed" % image, expect=200)
            self.assertEqual(lst["total"], 0)
            _, doc = d.api("GET", "/api/v1/devices?image=" + new_hash, expect=200)
            self.assertEqual(doc["total"], 3)

            # Finished jobs cannot be cancelled.
            self.assertError(d, "POST", "/api/v1/jobs/%d/cancel" % jobs[0], status=409, code="conflict")
            self.assertError(d, "DELETE", "/api/v1/jobs/%d" % jobs[0], status=409, code="conflict")

            _, hist = d.api("GET", "/api/v1/devices/%d/history" % ids[0], expect=200)
            self.assertIn(jobs[0], [e["job"] for e in hist["events"]])
            self.assertIn(image, [e["image"] for e in hist["events"]])

            _, health = d.api("GET", "/api/v1/health", expect=200)
            self.assertEqual((health["devices"], health["jobs_running"]), (3, 0))
            _, _, text = d.http("GET", "/metrics")
            text = text.decode()
            self.assertIn('smpgw_jobs_finished_total{result="succeeded"} 3\n', text)
            self.assertIn('smpgw_jobs{state="succeeded"} 3\n', text)
            self.assertIn('smpgw_devices{state="online"} 3\n', text)
            uploaded = int(re.search(r"^smpgw_bytes_uploaded_total (\d+)$", text, re.M).group(1))
            self.assertGreaterEqual(uploaded, 3 * len(imgdata))

            # Once nothing uses them, the image and the devices can go.
            status, _, _ = d.http("DELETE", "/api/v1/images/" + image)
            self.assertEqual(status, 204)
            status, _, _ = d.http("DELETE", "/api/v1/devices/%d" % ids[0])
            self.assertEqual(status, 204)


class Names(RestCase):
    def test_device_names(self):
        """A device's name defaults to its OS node name, can be set with
        PATCH (bounded, no control characters), survives probes and
        restarts, and null gives the default back."""
        with Sim(count=2) as sim, Daemon(tokens=[TOKEN]) as d:
            conns = ["udp:127.0.0.1:%d" % (sim.port + i) for i in range(2)]
            ids = [add_device(d, c)["id"] for c in conns]
            devs = wait_online(d, ids)
            # smpsim's devices answer OS info with node name smpsim-NNNN
            self.assertEqual([x["name"] for x in devs], ["smpsim-0000", "smpsim-0001"])
            path = "/api/v1/devices/%d" % ids[0]

            _, dev = d.api("PATCH", path, {"name": "Pump 7 \u2013 Halle B"}, expect=200)
            self.assertDevice(dev)
            self.assertEqual(dev["name"], "Pump 7 \u2013 Halle B")
            self.assertEqual(d.api("GET", path, expect=200)[1]["name"], "Pump 7 \u2013 Halle B")
            _, doc = d.api("GET", "/api/v1/devices?name=halle", expect=200)
            self.assertEqual([x["id"] for x in doc["devices"]], [ids[0]])
            _, dev = d.api("PATCH", "/api/v1/devices/" + urllib.parse.quote(conns[1], safe=""), {}, expect=200)
            self.assertEqual(dev["name"], "smpsim-0001")   # nothing to change
            _, dev = d.api("PATCH", path, {"name": "\u00e9" * 32}, expect=200)   # 64 bytes
            self.assertEqual(dev["name"], "\u00e9" * 32)
            for bad in ("a\nb", "tab\there", "\u202eevil", "x" * 65, "\u00e9" * 33, "bell\u0007", "c1\u0085"):
                self.assertError(d, "PATCH", path, {"name": bad}, code="invalid_field", contains="'name'")
            for bad in ({"name": 5}, {"name": ["x"]}, {"nick": "x"}):
                self.assertError(d, "PATCH", path, bad, code="invalid_field")
            self.assertError(d, "PATCH", "/api/v1/devices/999999", {"name": "x"}, status=404, code="not_found")
            self.assertEqual(d.api("GET", path, expect=200)[1]["name"], "\u00e9" * 32)
            status, headers, _ = d.http("PUT", path, {"name": "x"})
            self.assertEqual(status, 405)
            self.assertIn("PATCH", headers["allow"])

            # a user's name outlives probes and restarts
            d.api("PATCH", path, {"name": "pump-7"}, expect=200)
            before = d.api("GET", path, expect=200)[1]["last_probe"]
            d.api("POST", path + "/probe", expect=202)
            d.wait_for(lambda: d.api("GET", path, expect=200)[1]["last_probe"] != before, what="a new probe")
            self.assertEqual(d.api("GET", path, expect=200)[1]["name"], "pump-7")
            d.restart()
            self.assertEqual(d.api("GET", path, expect=200)[1]["name"], "pump-7")
            _, hist = d.api("GET", path + "/history", expect=200)
            self.assertIn("device-name", [e["type"] for e in hist["events"]])

            # null removes it; the default comes back with the next probe
            _, dev = d.api("PATCH", path, {"name": None}, expect=200)
            self.assertIsNone(dev["name"])
            d.wait_for(lambda: d.api("POST", path + "/probe")[0] == 202, what="a probe to start")
            d.wait_for(lambda: d.api("GET", path, expect=200)[1]["name"] == "smpsim-0000", what="the default name")

    def test_board_app_and_board_filter(self):
        """A device's board and app are read from its OS info answer and
        shown in REST, D-Bus and smpgwctl; a rollout filter's board term
        selects only that board's devices, and a device without the OS
        info command (NOT_SUPPORTED) keeps working, has no board and is
        listed as skipped with unknown-board instead of vanishing."""
        with Sim("--board", "nrf52840dk/nrf52840", "--dev-board", "1:stm32f4_disco", "--no-os-info=3",
                 count=4) as sim, Daemon(tokens=[TOKEN]) as d:
            conns = ["udp:127.0.0.1:%d" % (sim.port + i) for i in range(4)]
            ids = [add_device(d, c)["id"] for c in conns]
            devs = wait_online(d, ids)
            for dev in devs:
                self.assertDevice(dev)
            self.assertEqual([(x["board"], x["app"]) for x in devs],
                             [("nrf52840dk/nrf52840", "Zephyr"), ("stm32f4_disco", "Zephyr"),
                              ("nrf52840dk/nrf52840", "Zephyr"), (None, None)])
            self.assertIsNone(devs[3]["os_info"])
            self.assertTrue(devs[0]["os_info"].startswith("Zephyr smpsim-0000 "), devs[0]["os_info"])
            _, page = d.api("GET", "/api/v1/devices", expect=200)   # the list page writes them too
            self.assertEqual([(x["board"], x["app"]) for x in page["devices"]],
                             [(x["board"], x["app"]) for x in devs])
            out = d.smpgwctl("device", str(ids[1])).stdout.decode()
            self.assertRegex(out, r"\n  board: +stm32f4_disco\n")
            self.assertRegex(out, r"\n  app: +Zephyr\n")
            self.assertRegex(d.smpgwctl("device", str(ids[3])).stdout.decode(), r"\n  board: +-\n")
            for prop, want in (("Board", 's "nrf52840dk/nrf52840"'), ("App", 's "Zephyr"')):
                p = subprocess.run(["busctl", "--address=" + d.bus.address, "get-property", "org.smpgw",
                                    "/org/smpgw/device/%d" % ids[0], "org.smpgw.Device1", prop],
                                   capture_output=True, timeout=30, check=True)
                self.assertEqual(p.stdout.decode().strip(), want)

            data, _ = mcuimg.make_image((2, 0, 0, 0), 4096, seed=3)
            status, image = d.api("POST", "/api/v1/images", data,
                                  headers={"Content-Type": "application/octet-stream"})
            self.assertEqual(status, 201, image)
            body = {"image": image["id"], "targets": {"filter": {"board": "NRF52840DK/nrf52840"}},
                    "policy": {"canary": "1", "wave_size": "100%"}}
            _, plan = d.api("POST", "/api/v1/rollouts/plan", body, expect=200)
            self.assertEqual(sorted(sum((w["devices"] for w in plan["waves"]), [])), [ids[0], ids[2]])
            self.assertEqual(plan["skipped"], [{"device": ids[3], "reason": "unknown-board"}])
            body["targets"]["filter"] = {"board": "stm32f4_disco", "app": "zephyr"}
            _, plan = d.api("POST", "/api/v1/rollouts/plan", body, expect=200)
            self.assertEqual(sum((w["devices"] for w in plan["waves"]), []), [ids[1]])
            self.assertEqual(plan["skipped"], [{"device": ids[3], "reason": "unknown-board"}])

            self.image_boards(d, sim, ids, image["id"])

    def image_boards(self, d, sim, ids, image):
        """Issue 12: an image declares the boards it is built for (REST
        upload and PATCH, D-Bus Image1.Boards/SetBoards and
        AddImageWithOptions, smpgwctl images add --board and images
        set-boards); a plan skips devices of other boards with
        incompatible-board and those that do not tell theirs with
        unknown-board; a push to a device of another board is refused
        unless forced."""
        path = "/api/v1/images/" + image
        self.assertEqual(d.api("GET", path, expect=200)[1]["boards"], [])   # any board, as before
        _, img = d.api("PATCH", path, {"boards": ["nrf52840dk/nrf52840", "NRF52840DK/nrf52840"]}, expect=200)
        self.assertEqual(img["boards"], ["nrf52840dk/nrf52840"])
        status, doc = d.api("PATCH", path, {"boards": ["a b"]})
        self.assertEqual((status, doc["error"]["code"]), (400, "invalid_field"), doc)
        self.assertIn("'boards' item 0", doc["error"]["message"])

        # Listed devices: ids[1] is a stm32f4_disco, ids[3] tells no board.
        body = {"image": image, "targets": {"devices": ids}, "policy": {"canary": "1", "wave_size": "100%"}}
        _, plan = d.api("POST", "/api/v1/rollouts/plan", body, expect=200)
        self.assertEqual(sorted(sum((w["devices"] for w in plan["waves"]), [])), [ids[0], ids[2]])
        self.assertEqual(plan["skipped"], [{"device": ids[1], "reason": "incompatible-board"},
                                           {"device": ids[3], "reason": "unknown-board"}])
        # A filter: the image's boards decide on top of its terms.
        body["targets"] = {"filter": {"transport": "udp"}}
        _, plan = d.api("POST", "/api/v1/rollouts/plan", body, expect=200)
        self.assertEqual(plan["skipped"], [{"device": ids[1], "reason": "incompatible-board"},
                                           {"device": ids[3], "reason": "unknown-board"}])

        # A push to the other board is refused, through every door.
        status, doc = d.api("POST", "/api/v1/jobs", {"image": image, "devices": [ids[1]]})
        self.assertEqual((status, doc["error"]["code"]), (409, "incompatible_board"), doc)
        self.assertIn("reports board 'stm32f4_disco'", doc["error"]["message"])
        self.assertIn("nrf52840dk/nrf52840", doc["error"]["message"])
        busctl = ["busctl", "--address=" + d.bus.address]
        p = subprocess.run(busctl + ["call", "org.smpgw", "/org/smpgw", "org.smpgw.Manager1", "Push", "sasa{sv}",
                                     image, "1", str(ids[1]), "0"], capture_output=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(doc["error"]["message"], p.stderr.decode())
        p = d.smpgwctl("push", image, str(ids[1]), check=False)
        self.assertEqual(p.returncode, 10, p.stderr)
        self.assertIn("reports board 'stm32f4_disco'", p.stderr.decode())
        self.assertEqual(d.api("GET", "/api/v1/jobs", expect=200)[1]["total"], 0)

        # D-Bus: the property, and SetBoards (a revision: only that one).
        obj = "/org/smpgw/image/" + image
        p = subprocess.run(busctl + ["get-property", "org.smpgw", obj, "org.smpgw.Image1", "Boards"],
                           capture_output=True, timeout=30, check=True)
        self.assertEqual(p.stdout.decode().strip(), 'as 1 "nrf52840dk/nrf52840"')
        subprocess.run(busctl + ["call", "org.smpgw", obj, "org.smpgw.Image1", "SetBoards", "as", "2",
                                 "stm32f4_disco@2", "esp32"], capture_output=True, timeout=30, check=True)
        self.assertEqual(d.api("GET", path, expect=200)[1]["boards"], ["stm32f4_disco@2", "esp32"])
        _, plan = d.api("POST", "/api/v1/rollouts/plan",
                        dict(body, targets={"devices": ids}), expect=200)
        self.assertEqual(plan["waves"], [])
        self.assertEqual([x["reason"] for x in plan["skipped"]],
                         ["incompatible-board", "incompatible-board", "incompatible-board", "unknown-board"])

        # smpgwctl: set-boards, and add --board (a stored image given again
        # takes the boards); --json shows them as REST does.
        p = d.smpgwctl("images", "set-boards", image[:8], "stm32f4_disco", "--json")
        self.assertEqual(json.loads(p.stdout)["images"][0]["boards"], ["stm32f4_disco"])
        p = d.smpgwctl("images", "set-boards", image[:8], "bad name", check=False)
        self.assertEqual(p.returncode, 10, p.stderr)
        other, _ = mcuimg.make_image((3, 0, 0, 0), 4096, seed=4)
        with tempfile.NamedTemporaryFile(suffix=".bin") as f:
            f.write(other)
            f.flush()
            p = d.smpgwctl("images", "add", f.name, "--board", "nrf52840dk", "--board", "esp32", "--json")
        added = json.loads(p.stdout)
        self.assertEqual(added["boards"], ["nrf52840dk", "esp32"])
        self.assertEqual(d.api("GET", "/api/v1/images/" + added["id"], expect=200)[1]["boards"],
                         ["nrf52840dk", "esp32"])
        # The list's table shows them (joined by commas, "any" for none),
        # its --json as REST does.
        table = d.smpgwctl("images").stdout.decode().splitlines()
        self.assertEqual(table[0].split()[6:], ["BOARDS", "NAME"], table[0])   # "IN USE" is two words
        rows = {line.split()[0]: line.split() for line in table[1:]}
        self.assertEqual(rows[added["id"]][5], "nrf52840dk,esp32", table)
        self.assertEqual(rows[image][5], "stm32f4_disco", table)
        self.assertEqual(json.loads(d.smpgwctl("images", "--json").stdout)["images"],
                         d.api("GET", "/api/v1/images", expect=200)[1]["images"])
        d.smpgwctl("images", "set-boards", added["id"][:8])
        table = d.smpgwctl("images").stdout.decode().splitlines()
        self.assertEqual({line.split()[0]: line.split() for line in table[1:]}[added["id"]][5], "any", table)
        d.smpgwctl("images", "set-boards", added["id"][:8], "nrf52840dk", "esp32")
        # "nrf52840dk" takes every revision and qualifier-less name only:
        # nrf52840dk/nrf52840 is another board name.
        p = d.smpgwctl("push", added["id"], str(ids[0]), check=False)
        self.assertEqual(p.returncode, 10, p.stderr)
        # The REST upload's ?boards=, empty for any board.
        status, up = d.api("POST", "/api/v1/images?boards=", other,
                           headers={"Content-Type": "application/octet-stream"})
        self.assertEqual((status, up["boards"]), (201, []), up)
        status, up = d.api("POST", "/api/v1/images?boards=nrf52840dk/nrf52840,stm32f4_disco", other,
                           headers={"Content-Type": "application/octet-stream"})
        self.assertEqual((status, up["boards"]), (201, ["nrf52840dk/nrf52840", "stm32f4_disco"]), up)
        status, doc = d.api("POST", "/api/v1/images?boards=ok,,x", other,
                            headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(status, 400, doc)

        # A device that tells no board is not refused (nothing is known of
        # it); forced, the operator's word goes.
        _, unknown = d.api("POST", "/api/v1/jobs", {"image": added["id"], "devices": [ids[3]],
                                                    "mode": "upload-only"}, expect=201)
        _, forced = d.api("POST", "/api/v1/jobs", {"image": image, "devices": [ids[0]], "force": True,
                                                   "mode": "upload-only"}, expect=201)
        for job in unknown["jobs"] + forced["jobs"]:
            d.api("POST", "/api/v1/jobs/%d/cancel" % job["id"])


def rfc3339_to_epoch(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class RolloutRetention(RestCase):
    def test_finished_rollouts_pruned_past_keep_finished(self):
        """[rollouts] keep_finished bounds the finished rollouts kept: when
        one more finishes, the oldest finished goes with its members and
        its history rows (rollout-removed on the event stream); a
        scheduled one is never touched; at start the bound is applied to
        what the database holds."""
        with Sim(count=1) as sim, Daemon(config="[rollouts]\nkeep_finished=2\n", tokens=[TOKEN]) as d:
            dev = add_device(d, "udp:127.0.0.1:%d" % sim.port)["id"]
            wait_online(d, [dev])
            data, _ = mcuimg.make_image((3, 0, 0, 0), 4096, seed=5)
            status, image = d.api("POST", "/api/v1/images", data,
                                  headers={"Content-Type": "application/octet-stream"})
            self.assertEqual(status, 201, image)
            later = "2099-01-01T00:00:00Z"   # scheduled: nothing runs
            ids = [d.api("POST", "/api/v1/rollouts", {"image": image["id"], "targets": {"devices": [dev]},
                                                     "schedule": {"start_at": later}}, expect=201)[1]["id"]
                   for _ in range(5)]
            sse = SSEClient(d, "?types=rollout-removed")
            for rid in ids[:4]:
                d.api("POST", "/api/v1/rollouts/%d/cancel" % rid, expect=200)

            def kept():
                _, doc = d.api("GET", "/api/v1/rollouts?limit=100", expect=200)
                return sorted(x["id"] for x in doc["rollouts"])
            d.wait_for(lambda: kept() == ids[2:], timeout=10, what="the two oldest cancelled rollouts pruned")
            self.assertError(d, "GET", "/api/v1/rollouts/%d" % ids[0], status=404, code="not_found")
            self.assertEqual(d.api("GET", "/api/v1/rollouts/%d" % ids[4], expect=200)[1]["state"], "scheduled")
            sse.wait_for(lambda evs: len(evs) >= 2, timeout=10, what="two rollout-removed events")
            self.assertEqual(sorted((e[0], e[2]["id"]) for e in sse.snapshot()),
                             [("rollout-removed", rid) for rid in ids[:2]])
            sse.close()
            self.assertEqual(d.terminate(), 0)

            def history(rid):
                return sql(d.db_path, "SELECT count(*) FROM events WHERE type GLOB 'rollout-*' AND "
                           "(message GLOB ? OR message GLOB ?)", ("rollout %d:*" % rid, "rollout %d *" % rid))[0][0]
            self.assertEqual([r[0] for r in sql(d.db_path, "SELECT id FROM rollout ORDER BY id")], ids[2:])
            self.assertEqual(sql(d.db_path, "SELECT count(*) FROM rollout_member WHERE rollout_id IN (?, ?)",
                                 tuple(ids[:2]))[0][0], 0)
            self.assertEqual([history(rid) for rid in ids[:2]], [0, 0])
            self.assertGreater(history(ids[2]), 0)
            self.assertEqual(sql(d.db_path, "SELECT count(*) FROM rollout_member WHERE rollout_id = ?",
                                 (ids[2],))[0][0], 1)

            # A smaller bound at start: the oldest kept one goes, the scheduled stays.
            with open(d.config_path) as f:
                text = f.read()
            with open(d.config_path, "w") as f:
                f.write(text.replace("keep_finished=2", "keep_finished=1"))
            d.start()
            d.wait_for(lambda: kept() == ids[3:], timeout=10, what="the bound applied at start")
            self.assertEqual(d.terminate(), 0)
            self.assertEqual([r[0] for r in sql(d.db_path, "SELECT id FROM rollout ORDER BY id")], ids[3:])
            self.assertEqual(history(ids[2]), 0)

            # An age bound: a finished one older than keep_finished_age goes
            # however few are kept; the scheduled one, older still, stays.
            with open(d.config_path, "w") as f:
                f.write(text.replace("keep_finished=2", "keep_finished=5\nkeep_finished_age=1"))
            time.sleep(1.1)
            d.start()
            d.wait_for(lambda: kept() == ids[4:], timeout=10, what="the age bound applied")


class EventLatency(RestCase):
    """A client that only listens on /api/v1/events, with no other request
    reaching smpgwd, gets every event of a push within 0.5 s of the moment
    in its payload ("updated": when smpgwd changed the job and emitted the
    event), and the keepalive comment every 15 s."""

    MAX_DELAY = 0.5

    def test_events_arrive_without_other_traffic(self):
        with Sim("--bandwidth", "30000", count=1) as sim, \
                Daemon(config="[discovery]\nenabled=no\n", tokens=[TOKEN]) as d:
            dev = add_device(d, "udp:127.0.0.1:%d" % sim.port)["id"]
            wait_online(d, [dev])
            imgdata, image = mcuimg.make_image(version=(3, 0, 0, 0), size=64 * 1024, seed=9)
            upload(d, imgdata)
            sse = SSEClient(d, "?types=job-added,job-state,job-progress")
            opened = time.time()
            try:
                _, doc = d.api("POST", "/api/v1/jobs", {"image": image, "devices": [dev], "mode": "upload-only"},
                               expect=201)
                job = doc["jobs"][0]["id"]
                # From here on nothing but the stream talks to smpgwd.
                sse.wait_for(lambda evs: any(e[0] == "job-state" and e[2]["id"] == job
                                             and e[2]["state"] in ("succeeded", "failed", "cancelled") for e in evs),
                             timeout=30, what="the job's end, seen on the stream alone")
                timed = sse.timed()
                delays = [arrival - rfc3339_to_epoch(e[2]["updated"]) for arrival, e in timed]
                sys.stderr.write("    # %d events; delay from 'updated' to arrival: min %.1f ms, median %.1f ms, "
                                 "max %.1f ms\n" % (len(delays), min(delays) * 1000,
                                                    statistics.median(delays) * 1000, max(delays) * 1000))
                kinds = [e[0] for _, e in timed]
                self.assertIn("job-progress", kinds)
                self.assertEqual(timed[-1][1][2]["state"], "succeeded", timed[-1])
                for (arrival, e), delay in zip(timed, delays):
                    self.assertLess(delay, self.MAX_DELAY, "%s #%d arrived %.3f s late" % (e[0], e[1], delay))
                # The keepalive, on time too (its timer has 1 s accuracy).
                deadline = opened + 15 + 1.5
                while time.time() < deadline and sse.comments < 2:
                    time.sleep(0.1)
                self.assertGreaterEqual(sse.comments, 2, "the hello and a keepalive comment")
                self.assertLess(sse.comment_times[1] - opened, 15 + 1.5)
            finally:
                sse.close()


class Cancel(RestCase):
    """Slow devices, so jobs are still running when they are cancelled."""

    def test_cancel_and_busy(self):
        with Sim("--bandwidth", "20000", count=2) as sim, Daemon() as d:
            ids = [add_device(d, "udp:127.0.0.1:%d" % (sim.port + i))["id"] for i in range(2)]
            wait_online(d, ids)
            imgdata, image = mcuimg.make_image(size=96 * 1024, seed=21)
            upload(d, imgdata)
            sse = SSEClient(d, "?types=job-state")
            try:
                _, doc = d.api("POST", "/api/v1/jobs", {"image": image, "devices": ids, "mode": "upload-only"},
                               expect=201)
                jobs = job_ids(doc)

                def uploading():
                    js = [d.api("GET", "/api/v1/jobs/%d" % j, expect=200)[1] for j in jobs]
                    return js if all(j["state"] == "running" and j["bytes_sent"] > 0 for j in js) else None
                d.wait_for(uploading, timeout=30, what="both jobs uploading")

                self.assertError(d, "DELETE", "/api/v1/devices/%d" % ids[0], status=409, code="busy",
                                 contains=str(jobs[0]))
                self.assertError(d, "POST", "/api/v1/devices/%d/probe" % ids[0], status=409, code="busy")
                self.assertError(d, "DELETE", "/api/v1/images/" + image, status=409, code="busy")

                _, j0 = d.api("POST", "/api/v1/jobs/%d/cancel" % jobs[0], expect=200)
                self.assertJob(j0)
                self.assertEqual(j0["id"], jobs[0])
                _, j1 = d.api("DELETE", "/api/v1/jobs/%d" % jobs[1], expect=200)
                self.assertEqual(j1["id"], jobs[1])
                for j in wait_jobs_finished(d, jobs, timeout=30):
                    self.assertEqual(j["state"], "cancelled", j)
                    self.assertLess(j["bytes_sent"], len(imgdata))
                self.assertError(d, "POST", "/api/v1/jobs/%d/cancel" % jobs[0], status=409, code="conflict")
                sse.wait_for(lambda evs: {e[2]["id"] for e in evs if e[2]["state"] == "cancelled"} == set(jobs),
                             timeout=10, what="cancelled events")
            finally:
                sse.close()
            _, lst = d.api("GET", "/api/v1/jobs?state=cancelled", expect=200)
            self.assertEqual(lst["total"], 2)
            status, _, _ = d.http("DELETE", "/api/v1/devices/%d" % ids[0])
            self.assertEqual(status, 204)
            status, _, _ = d.http("DELETE", "/api/v1/images/" + image)
            self.assertEqual(status, 204)


class Signatures(RestCase):
    """[images] keys= makes a valid signature by one of them mandatory.
    No tokens_file here: the API is then open."""

    def test_signature_required(self):
        keys = image_path("key-ecdsa-p256.pub.pem")
        with Daemon(config="[images]\nkeys=%s\n" % keys) as d:
            d.api("GET", "/api/v1/devices", expect=200, token=False)
            good = upload(d, read_file(image_path("imgtool-ecdsa-p256.bin")))
            self.assertTrue(good["signed"])
            self.assertIsNotNone(good["key"])
            for name in ("imgtool-ed25519.bin", "imgtool-unsigned.bin"):
                self.assertError(d, "POST", "/api/v1/images", read_file(image_path(name)), code="signature_invalid",
                                 headers={"Content-Type": "application/octet-stream"})
            unsigned, _ = mcuimg.make_image(size=4096)
            self.assertError(d, "POST", "/api/v1/images", unsigned, code="signature_invalid",
                             headers={"Content-Type": "application/octet-stream"})
            _, lst = d.api("GET", "/api/v1/images", expect=200)
            self.assertEqual([x["id"] for x in lst["images"]], [good["id"]])


# OpenSSL loads its configuration, and with it its providers, on the
# first use that needs them (a digest, a key); this one also activates the
# legacy provider, a module of its own (ossl-modules/legacy.so), so that
# smpgwd's /proc/PID/maps shows whether OpenSSL was set up at all.
OPENSSL_CONF_WITH_LEGACY = """openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
legacy = legacy_sect
[default_sect]
activate = 1
[legacy_sect]
activate = 1
"""


def openssl_providers_loaded(d):
    with open("/proc/%d/maps" % d.proc.pid) as f:
        return "/legacy.so" in f.read()


def libcrypto_mapped(d):
    with open("/proc/%d/maps" % d.proc.pid) as f:
        return "/libcrypto.so." in f.read()


class OpenSslProviders(RestCase):
    """SHA-256 goes through nettle (lib/sha-digest.h): OpenSSL 3's first
    digest would load its default provider, about 1.9 MiB of RSS that
    smpgwd keeps (doc/smpgwd.md, "Load").  Tokens, unsigned images (hashed
    with SHA-256 or SHA-512) and an upload leave OpenSSL untouched, and
    unmapped: libsmpgw loads libcrypto with the first key
    (lib/libcrypto-dlopen.h).  A signing key needs it, which shows that
    the probes see it."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="smpgwd-openssl-")
        self.addCleanup(tmp.cleanup)
        self.conf = os.path.join(tmp.name, "openssl.cnf")
        with open(self.conf, "w") as f:
            f.write(OPENSSL_CONF_WITH_LEGACY)

    def test_unsigned_images_and_uploads_leave_openssl_alone(self):
        with Sim(count=1) as sim, Daemon(tokens=[TOKEN], bus=False, env={"OPENSSL_CONF": self.conf}) as d:
            self.assertFalse(openssl_providers_loaded(d), "smpgwd's start loaded OpenSSL's providers")
            self.assertFalse(libcrypto_mapped(d), "smpgwd without [images] keys mapped libcrypto")
            dev = add_device(d, "udp:127.0.0.1:%d" % sim.port)
            wait_online(d, [dev["id"]])
            data, image = mcuimg.make_image(version=(2, 0, 0, 1), size=8192, seed=3)
            self.assertEqual(upload(d, data)["sha256"], hashlib.sha256(data).hexdigest())
            # Parsed (its SHA-512 checked), then refused: no SHA256 TLV.
            self.assertError(d, "POST", "/api/v1/images", read_file(image_path("imgtool-sha512-unsigned.bin")),
                             code="invalid_image", headers={"Content-Type": "application/octet-stream"})
            _, doc = d.api("POST", "/api/v1/jobs", {"image": image, "devices": [dev["id"]], "mode": "upload-only"},
                           expect=201)
            [job] = wait_jobs_finished(d, job_ids(doc))
            self.assertEqual(job["state"], "succeeded", job)
            self.assertFalse(openssl_providers_loaded(d), "smpgwd loaded OpenSSL's providers")
            self.assertFalse(libcrypto_mapped(d), "smpgwd without [images] keys mapped libcrypto")

    def test_signing_key_loads_openssl(self):
        keys = image_path("key-ecdsa-p256.pub.pem")
        with Daemon(config="[images]\nkeys=%s\n" % keys, bus=False, env={"OPENSSL_CONF": self.conf}) as d:
            self.assertTrue(libcrypto_mapped(d))
            self.assertTrue(upload(d, read_file(image_path("imgtool-ecdsa-p256.bin")))["signed"])
            self.assertTrue(openssl_providers_loaded(d))


class Reload(RestCase):
    def test_sighup_rereads_tokens(self):
        with Daemon(tokens=[TOKEN]) as d:
            d.api("GET", "/api/v1/jobs", expect=200)
            with open(os.path.join(d.dir, "tokens"), "w") as f:
                f.write("# rotated\n\n  new-token  \n")
            d.proc.send_signal(signal.SIGHUP)
            d.wait_for(lambda: d.http("GET", "/api/v1/jobs", token="new-token")[0] == 200, timeout=10,
                       what="the new token accepted")
            self.assertError(d, "GET", "/api/v1/jobs", status=401, code="unauthorized")
            # A tokens file that cannot be read keeps the tokens in force.
            os.unlink(os.path.join(d.dir, "tokens"))
            d.proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            d.api("GET", "/api/v1/jobs", expect=200, token="new-token")

    @unittest.skipUnless(socket.has_ipv6, "no IPv6")
    def test_ipv6_listen(self):
        port = free_tcp_port()
        try:
            probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            probe.bind(("::1", 0))
            probe.close()
        except OSError:
            self.skipTest("no IPv6 loopback")
        with Daemon(args=("--rest", "[::1]:%d" % port)) as d:
            conn = http.client.HTTPConnection("::1", port, timeout=10)
            conn.request("GET", "/api/v1/health")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(json.loads(resp.read())["status"], "ok")
            conn.close()
            self.assertIsNotNone(d.proc)


@unittest.skipUnless(have("openssl"), "needs the openssl command to make a certificate")
class Tls(RestCase):
    def test_https(self):
        with Daemon(start=False, tokens=[TOKEN]) as d:
            cert, key = os.path.join(d.dir, "cert.pem"), os.path.join(d.dir, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1"],
                           check=True, capture_output=True)
            with open(d.config_path, "a") as f:
                f.write("tls_cert=%s\ntls_key=%s\n" % (cert, key))
            d.start()
            ctx = ssl.create_default_context(cafile=cert)
            ctx.check_hostname = False
            conn = http.client.HTTPSConnection("127.0.0.1", d.port, context=ctx, timeout=10)
            conn.request("GET", "/api/v1/devices", headers={"Authorization": "Bearer " + TOKEN})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(json.loads(resp.read())["total"], 0)
            conn.close()
            # Plain HTTP to the TLS port gets no answer that http.client accepts.
            with self.assertRaises((http.client.HTTPException, OSError)):
                d.http("GET", "/api/v1/health", timeout=3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
