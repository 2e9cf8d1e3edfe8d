# SPDX-License-Identifier: LGPL-2.1-or-later
"""A fake Eclipse hawkBit server speaking the Direct Device Integration
(DDI) API over loopback HTTP, written for the tests from the DDI
document's facts (paths, bodies, link names), not from any hawkBit code:

  GET  /{tenant}/controller/v1/{controllerId}                 the base: config.polling.sleep, _links
  GET  .../{controllerId}/deploymentBase/{actionId}            deployment: download, update,
                                                               maintenanceWindow, chunks[].artifacts[]
  POST .../{controllerId}/deploymentBase/{actionId}/feedback   {"id", "status": {"execution", "result":
                                                               {"finished", "progress"}, "details"}}
  GET  .../{controllerId}/cancelAction/{actionId}              {"id", "cancelAction": {"stopId"}}
  POST .../{controllerId}/cancelAction/{actionId}/feedback
  PUT  .../{controllerId}/configData                           {"mode": "merge", "data": {...}}
  GET  .../{controllerId}/softwaremodules/{id}/artifacts/{f}   the artifact, with Range support

Authentication: "Authorization: GatewayToken <token>", else 401.  A
controllerId polling for the first time is registered (hawkBit's
auto-registration for gateway tokens).  Everything the gateway sent is
recorded for the test to check."""

import hashlib
import http.server
import json
import re
import socket
import socketserver
import threading
import time

TENANT = "DEFAULT"


class Action:
    def __init__(self, action_id, controller_id, artifact, download="forced", update="forced", window=None):
        self.id = action_id
        self.controller_id = controller_id
        self.artifact = artifact          # (filename, bytes)
        self.download = download
        self.update = update
        self.window = window              # None, "available", "unavailable"
        self.state = "open"               # open, closed, canceled
        self.result = None                # closed: success / failure
        self.cancel_id = None             # a cancel requested and not yet answered
        self.cancel_answer = None         # canceled / rejected


class FakeDDI:
    def __init__(self, token="gw-secret", sleep="00:00:01", ask_config=True, port=0):
        self.token = token
        self.sleep = sleep
        self.ask_config = ask_config
        self.lock = threading.Lock()
        self.targets = {}                 # controllerId -> {"polls": n, "registered": time}
        self.actions = {}                 # actionId -> Action
        self.next_action_id = 1
        self.feedback = []                # (time, controllerId, kind, id, body)
        self.config_data = {}             # controllerId -> data
        self.polls = []                   # (monotonic time, controllerId)
        self.unauthorized = 0
        self.artifact_requests = []       # (range header or None, status, bytes sent)
        self.drop_artifact_after = None   # the next artifact response stops after this many bytes
        self.stall_artifact_after = None  # the next one stalls after this many bytes until stall_release
        self.stall_release = threading.Event()
        self.requests = 0
        self.artifacts = {}               # filename -> bytes, as deploymentBase named them
        self.port = port
        self.server = None
        self.conns = set()
        self.start()

    # ---- the server's life ----

    def start(self):
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with fake.lock:
                    fake.conns.add(self.connection)

            def finish(self):
                with fake.lock:
                    fake.conns.discard(self.connection)
                super().finish()

            def do_GET(self):
                fake.handle(self, "GET")

            def do_POST(self):
                fake.handle(self, "POST")

            def do_PUT(self):
                fake.handle(self, "PUT")

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 256

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        """The server goes away: connections are refused until start()."""
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
            # Kept-alive connections go too: a server that is down answers nothing.
            with self.lock:
                conns = list(self.conns)
            for c in conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    # ---- what a test sets up ----

    def add_action(self, controller_id, artifact, **kw):
        with self.lock:
            a = Action(self.next_action_id, controller_id, artifact, **kw)
            self.next_action_id += 1
            self.actions[a.id] = a
            return a

    def cancel(self, action):
        with self.lock:
            action.cancel_id = action.id

    def set_window(self, action, window, update="forced"):
        with self.lock:
            action.window = window
            action.update = update

    # ---- what a test reads ----

    def feedback_for(self, controller_id=None, action_id=None, kind=None):
        with self.lock:
            return [f for f in self.feedback
                    if (controller_id is None or f[1] == controller_id)
                    and (action_id is None or f[3] == action_id)
                    and (kind is None or f[2] == kind)]

    def executions(self, controller_id, action_id, kind="deploymentBase"):
        return [(f[4]["status"]["execution"], f[4]["status"]["result"]["finished"])
                for f in self.feedback_for(controller_id, action_id, kind)]

    # ---- the protocol ----

    def open_action(self, controller_id):
        for a in self.actions.values():
            if a.controller_id == controller_id and a.state == "open":
                return a
        return None

    def reply(self, h, status, body=None, content_type="application/hal+json;charset=UTF-8"):
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def handle(self, h, method):
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        with self.lock:
            self.requests += 1
        if h.headers.get("Authorization") != "GatewayToken " + self.token:
            with self.lock:
                self.unauthorized += 1
            return self.reply(h, 401, {"message": "unauthorized"})
        m = re.fullmatch(r"/([^/]+)/controller/v1/([^/?]+)(/[^?]*)?(\?.*)?", h.path)
        if not m or m.group(1) != TENANT:
            return self.reply(h, 404, {"message": "no such resource"})
        cid, rest = m.group(2), m.group(3) or ""
        base = "%s/%s/controller/v1/%s" % (self.url, TENANT, cid)
        if method == "GET" and rest == "":
            return self.poll(h, cid, base)
        if method == "PUT" and rest == "/configData":
            body = json.loads(raw)
            assert body.get("mode") == "merge", body
            with self.lock:
                self.config_data[cid] = body["data"]
            return self.reply(h, 200)
        am = re.fullmatch(r"/(deploymentBase|cancelAction)/(\d+)(/feedback)?", rest)
        if am:
            kind, action_id, feedback = am.group(1), int(am.group(2)), am.group(3)
            with self.lock:
                a = self.actions.get(action_id)
            if not a or a.controller_id != cid:
                return self.reply(h, 404, {"message": "no such action"})
            if feedback and method == "POST":
                return self.take_feedback(h, cid, kind, a, json.loads(raw))
            if method == "GET" and kind == "deploymentBase":
                return self.reply(h, 200, self.deployment(a, base))
            if method == "GET" and kind == "cancelAction":
                return self.reply(h, 200, {"id": str(a.id), "cancelAction": {"stopId": str(a.id)}})
        sm = re.fullmatch(r"/softwaremodules/(\d+)/artifacts/([^/]+)", rest)
        if sm and method == "GET":
            return self.artifact(h, sm.group(2))
        return self.reply(h, 404, {"message": "no such resource"})

    def poll(self, h, cid, base):
        with self.lock:
            t = self.targets.setdefault(cid, {"polls": 0, "registered": time.time()})
            t["polls"] += 1
            self.polls.append((time.monotonic(), cid))
            links = {}
            a = self.open_action(cid)
            if a and a.cancel_id:
                links["cancelAction"] = {"href": "%s/cancelAction/%d" % (base, a.id)}
            elif a:
                # hawkBit's href carries a hash of the action's state, so
                # a client can tell a changed deployment from the same one.
                c = hashlib.sha1(("%s%s%s" % (a.window, a.update, a.download)).encode()).hexdigest()[:8]
                links["deploymentBase"] = {"href": "%s/deploymentBase/%d?c=%s" % (base, a.id, c)}
            if self.ask_config and cid not in self.config_data:
                links["configData"] = {"href": base + "/configData"}
        body = {"config": {"polling": {"sleep": self.sleep}}}
        if links:
            body["_links"] = links
        return self.reply(h, 200, body)

    def deployment(self, a, base):
        name, data = a.artifact
        deployment = {
            "download": a.download,
            "update": a.update,
            "chunks": [{
                "part": "bApp", "version": "1.0", "name": "app",
                "artifacts": [{
                    "filename": name,
                    "hashes": {"sha1": hashlib.sha1(data).hexdigest(), "md5": hashlib.md5(data).hexdigest(),
                               "sha256": hashlib.sha256(data).hexdigest()},
                    "size": len(data),
                    "_links": {
                        "download-http": {"href": "%s/softwaremodules/7/artifacts/%s" % (base, name)},
                        "md5sum-http": {"href": "%s/softwaremodules/7/artifacts/%s.MD5SUM" % (base, name)},
                    },
                }],
            }],
        }
        if a.window:
            deployment["maintenanceWindow"] = a.window
        self.artifacts[name] = data
        return {"id": str(a.id), "deployment": deployment,
                "actionHistory": {"status": "RUNNING", "messages": []}}

    def artifact(self, h, name):
        data = self.artifacts.get(name)
        if data is None:
            return self.reply(h, 404, {"message": "no such artifact"})
        rng = h.headers.get("Range")
        start = 0
        if rng:
            m = re.fullmatch(r"bytes=(\d+)-", rng)
            start = int(m.group(1)) if m else 0
        status = 206 if start else 200
        with self.lock:
            drop = self.drop_artifact_after
            self.drop_artifact_after = None
            stall = self.stall_artifact_after
            self.stall_artifact_after = None
        part = data[start:]
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(part)))
        if start:
            h.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        h.send_header("Accept-Ranges", "bytes")
        h.end_headers()
        if stall is not None:
            h.wfile.write(part[:stall])
            h.wfile.flush()
            with self.lock:
                self.artifact_requests.append((rng, status, stall))
            self.stall_release.wait(60)
            h.close_connection = True
            return
        if drop is not None:
            h.wfile.write(part[:drop])
            h.wfile.flush()
            # The connection breaks mid-artifact.
            h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            sent = min(drop, len(part))
        else:
            h.wfile.write(part)
            sent = len(part)
        with self.lock:
            self.artifact_requests.append((rng, status, sent))

    def take_feedback(self, h, cid, kind, a, body):
        status = body["status"]
        assert status["execution"] in ("proceeding", "scheduled", "resumed", "closed", "canceled", "rejected",
                                       "download", "downloaded"), body
        assert status["result"]["finished"] in ("success", "failure", "none"), body
        assert isinstance(status.get("details", []), list), body
        assert str(body.get("id")) == str(a.id), body
        with self.lock:
            self.feedback.append((time.time(), cid, kind, a.id, body))
            if kind == "deploymentBase" and status["execution"] == "closed":
                a.state = "closed"
                a.result = status["result"]["finished"]
            if kind == "cancelAction":
                a.cancel_id = None
                a.cancel_answer = status["execution"]
                if status["execution"] in ("canceled", "closed") and status["result"]["finished"] == "success":
                    a.state = "canceled"
        return self.reply(h, 200)
