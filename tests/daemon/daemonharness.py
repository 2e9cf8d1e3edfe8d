# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs smpgwd for a test: a private dbus-daemon, a fresh state directory
(real SQLite file), the REST API on a free loopback port, readiness read
from a real $NOTIFY_SOCKET, and helpers for HTTP over loopback.

Environment (set by tests/meson.build): SMPGWD, SMPSIM, SMPGWCTL,
SMPGW_PLUGIN_DIR, DBUS_DAEMON, SMPGW_SRCDIR.  smpsim and the private bus
come from tests/lib/harness.py."""

import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402

SMPGWD = os.environ.get("SMPGWD", "smpgwd")
SMPGWCTL = os.environ.get("SMPGWCTL", "smpgwctl")
DBUS_DAEMON = harness.DBUS_DAEMON
SRCDIR = os.environ.get("SMPGW_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))

Sim = harness.Sim
Bus = harness.Bus

# Every Daemon runs on a private bus unless told otherwise.
harness.require_program(DBUS_DAEMON, " for a private bus")


def free_tcp_port():
    """A free TCP port on 127.0.0.1 below the kernel's ephemeral range,
    where no client connection's local port can take it before smpgwd
    binds it (see harness.free_udp_ports())."""
    low, _ = harness.ephemeral_port_range()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(10000, max(10001, low - 1))
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free TCP port")


class Daemon:
    """smpgwd with its own state directory.  The state directory, database
    and bus outlive restart() and kill9(), so tests can crash and restart
    the daemon on the same files."""

    def __init__(self, config="", args=(), bus=True, tokens=None, state_dir=None, start=True, env=None):
        self.tmp = tempfile.TemporaryDirectory(prefix="smpgwd-test-")
        self.dir = self.tmp.name
        self.state_dir = state_dir or os.path.join(self.dir, "state")
        os.makedirs(self.state_dir, exist_ok=True)
        self.db_path = os.path.join(self.state_dir, "smpgw.db")
        self.port = free_tcp_port()
        self.bus = Bus() if bus else None
        self.tokens = tokens
        self.config_path = os.path.join(self.dir, "smpgwd.conf")
        if tokens:
            tokens_path = os.path.join(self.dir, "tokens")
            with open(tokens_path, "w") as f:
                f.write("# test tokens\n" + "".join(t + "\n" for t in tokens))
            config = "[rest]\ntokens_file=%s\n%s" % (tokens_path, config)
        with open(self.config_path, "w") as f:
            f.write(config)
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.proc = None
        self.log_path = os.path.join(self.dir, "smpgwd.log")
        self.log = open(self.log_path, "a+")
        self.token = tokens[0] if tokens else None
        if start:
            self.start()

    # ---- process ----

    def command(self):
        cmd = [SMPGWD, "--config", self.config_path, "--state-dir", self.state_dir,
               "--rest", "127.0.0.1:%d" % self.port]
        cmd += ["--bus", self.bus.address] if self.bus else ["--bus", "none"]
        if os.environ.get("SMPGW_PLUGIN_DIR"):
            cmd += ["--plugin-dir", os.environ["SMPGW_PLUGIN_DIR"]]
        return cmd + self.args

    def start(self, timeout=30):
        notify_path = os.path.join(self.dir, "notify")
        self.close_notify()
        if os.path.exists(notify_path):
            os.unlink(notify_path)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = notify_path
        env.update(self.extra_env)
        env.pop("JOURNAL_STREAM", None)
        self.log.write("==== start %s\n" % " ".join(self.command()))
        self.log.flush()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, env=env)
        self.notifications = []
        deadline = time.monotonic() + timeout
        ready = False
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("smpgwd did not send READY=1 in %d s\n%s" % (timeout, self.read_log()))
                if self.proc.poll() is not None:
                    raise RuntimeError("smpgwd exited with %d before READY=1\n%s"
                                       % (self.proc.returncode, self.read_log()))
                notify.settimeout(min(left, 0.2))
                try:
                    msg = notify.recv(4096).decode()
                except socket.timeout:
                    continue
                self.notifications.append(msg)
                if "READY=1" in msg.split("\n"):
                    ready = True
                    break
        finally:
            if ready:
                self.notify = notify   # later messages: read_notifications()
            else:
                notify.close()

    def read_notifications(self, seconds):
        """The sd_notify messages smpgwd sends within `seconds` from now."""
        got = []
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return got
            self.notify.settimeout(left)
            try:
                got.append(self.notify.recv(4096).decode())
            except socket.timeout:
                return got

    def read_log(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()[-8000:]

    def close_notify(self):
        if getattr(self, "notify", None):
            self.notify.close()
            self.notify = None

    def kill9(self):
        self.close_notify()
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def terminate(self, timeout=30):
        """SIGTERM; returns the exit code."""
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("smpgwd did not stop on SIGTERM in %d s\n%s" % (timeout, self.read_log()))
        self.proc = None
        self.close_notify()
        return rc

    def restart(self):
        if self.proc:
            self.terminate()
        self.start()

    def stop(self):
        rc = 0
        if self.proc:
            rc = self.terminate()
        if self.bus:
            self.bus.stop()
        # A bad exit (a sanitizer's report, an abort) is explained by the
        # log, which goes with the directory: keep its text.
        self.last_log = self.read_log() if rc != 0 else ""
        self.log.close()
        self.tmp.cleanup()
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            sys.stderr.write("---- smpgwd log ----\n%s\n" % self.read_log())
        rc = self.stop()
        if exc[0] is None and rc != 0:
            raise RuntimeError("smpgwd exited with %d\n---- smpgwd log ----\n%s" % (rc, self.last_log))

    # ---- REST over loopback ----

    def http(self, method, path, body=None, headers=None, token=True, timeout=30):
        """Returns (status, headers dict, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        hdrs = dict(headers or {})
        if token is True and self.token:
            hdrs["Authorization"] = "Bearer " + self.token
        elif isinstance(token, str):
            hdrs["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        result = (resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        conn.close()
        return result

    def api(self, method, path, body=None, expect=None, **kw):
        """JSON in, JSON out; checks the status when expect is given."""
        status, headers, data = self.http(method, path, body, **kw)
        doc = json.loads(data) if data and headers.get("content-type", "").startswith("application/json") else data
        if expect is not None and status != expect:
            raise AssertionError("%s %s: %d, wanted %d: %r" % (method, path, status, expect, doc))
        return status, doc

    def wait_for(self, predicate, timeout=60, interval=0.2, what="condition"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError("smpgwd exited with %d while waiting for %s\n%s"
                                   % (self.proc.returncode, what, self.read_log()))
            time.sleep(interval)
        raise AssertionError("timed out waiting for %s (last: %r)\n%s" % (what, last, self.read_log()))

    def smpgwctl(self, *args, check=True, timeout=120):
        env = dict(os.environ)
        if self.bus:
            env["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus.address
        p = subprocess.run([SMPGWCTL] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                           env=env, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("smpgwctl %s: exit %d\n%s%s" % (" ".join(args), p.returncode,
                                                                 p.stdout.decode(), p.stderr.decode()))
        return p


def sql(db_path, query, args=()):
    """Reads the daemon's database with Python's own sqlite3 (a second,
    independent reader of the file).  Only while smpgwd is stopped (or
    killed): while it runs it holds an exclusive lock on the file
    (doc/smpgwd-db.md), and this fails with "database is locked"."""
    import sqlite3
    con = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True, timeout=5)
    try:
        return con.execute(query, args).fetchall()
    finally:
        con.close()


def image_path(name="imgtool-ecdsa-p256.bin"):
    return os.path.join(SRCDIR, "tests", "data", name)


def have(program):
    return shutil.which(program) is not None
