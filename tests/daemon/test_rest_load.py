#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""smpgwd's REST API at and past its connection limit (issue 10): real
smpgwd processes, many TCP clients over loopback from several 127.0.0.x
source addresses (bound client sockets; the whole of 127/8 is loopback, so
no interface changes), idle, slow and Server-Sent Events clients.

After the clients leave, GET /api/v1/health must answer within 1 s; a
client that trickles its request headers is cut off at the header
deadline; and when the API cannot take a client although it is below its
connection limit, the watchdog pings stop."""

import http.client
import os
import resource
import select
import signal
import socket
import statistics
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from daemonharness import Daemon  # noqa: E402

TOKEN = "load-test-token"
MAX_CONNECTIONS = 64          # [rest] max_connections, default
PER_ADDRESS = MAX_CONNECTIONS // 2
HEADER_DEADLINE = 10.0        # REST_HEADER_TIMEOUT_USEC, with the default [rest] timeout
HEALTH_WITHIN = 1.0
HEALTH_ADDRESS = "127.0.0.250"


def note(fmt, *args):
    """Figures for the report: on stderr, which meson keeps in the test log."""
    sys.stderr.write(("    # " + fmt + "\n") % args)
    sys.stderr.flush()


def connect_from(address, port, timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((address, 0))
    s.connect(("127.0.0.1", port))
    return s


def client_addresses(count):
    return ["127.0.0.%d" % (1 + i) for i in range(count)]


def accept_queue(port):
    """The listen socket's accept queue (ss's Recv-Q): connections the
    kernel completed that smpgwd did not accept yet."""
    want = ":%04X" % port
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1].endswith(want) and fields[3] == "0A":
                return int(fields[4].split(":")[1], 16)
    raise AssertionError("no listen socket on port %d" % port)


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))


def health_latency(d, timeout=10):
    """Seconds GET /api/v1/health takes (no token: it is public), or None
    when it does not answer within `timeout`.  From an address of its own,
    so the per-address limit never refuses it."""
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=timeout, source_address=(HEALTH_ADDRESS, 0))
    try:
        conn.request("GET", "/api/v1/health")
        resp = conn.getresponse()
        resp.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    if resp.status != 200:
        raise AssertionError("health answered %d" % resp.status)
    return time.monotonic() - start


def close_all(socks):
    for s in socks:
        s.close()


class Frozen:
    """SIGSTOP/SIGCONT around a block: stands in for a loop busy elsewhere
    (a database flush, a big reply) while the clients leave, so that one
    MHD_run() sees every one of them go, as under real dashboard load."""

    def __init__(self, d):
        self.d = d

    def __enter__(self):
        self.d.proc.send_signal(signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        time.sleep(0.1)
        self.d.proc.send_signal(signal.SIGCONT)


class LimitCase(unittest.TestCase):
    def setUp(self):
        self.d = Daemon(config="[discovery]\nenabled=no\n", tokens=[TOKEN])

    def tearDown(self):
        self.d.__exit__(None, None, None)

    def assertHealthAnswers(self, what):
        latency = health_latency(self.d)
        note("%s: health after %s", what,
             "no answer in 10 s (accept queue %d)" % accept_queue(self.d.port) if latency is None
             else "%.1f ms" % (latency * 1000))
        self.assertIsNotNone(latency, "%s: GET /api/v1/health did not answer; accept queue %d\n%s"
                             % (what, accept_queue(self.d.port), self.d.read_log()))
        self.assertLess(latency, HEALTH_WITHIN, what)
        # And it stays so: more than a handful of clients get in.
        for _ in range(3):
            self.assertIsNotNone(health_latency(self.d, timeout=HEALTH_WITHIN), what)

    def open_at_limit(self, addresses, per_address, send=None):
        socks = []
        for i in range(per_address * len(addresses)):
            s = connect_from(addresses[i % len(addresses)], self.d.port)
            if send:
                s.sendall(send)
            socks.append(s)
        return socks


class ConnectionLimit(LimitCase):
    """64 connections (max_connections) from two addresses, closed again."""

    def test_idle_clients(self):
        socks = self.open_at_limit(client_addresses(2), PER_ADDRESS)
        wait_until(lambda: accept_queue(self.d.port) == 0, 5, "smpgwd to accept 64 idle clients")
        # At the limit: a 65th client waits in the accept queue.
        extra = connect_from("127.0.0.3", self.d.port)
        time.sleep(0.3)
        self.assertEqual(accept_queue(self.d.port), 1)
        with Frozen(self.d):
            close_all(socks + [extra])
        self.assertHealthAnswers("64 idle clients closed")

    def test_slow_clients(self):
        # One byte of the request line now and then: each byte is activity,
        # so the idle timeout never ends them.
        socks = self.open_at_limit(client_addresses(2), PER_ADDRESS, send=b"G")
        wait_until(lambda: accept_queue(self.d.port) == 0, 5, "smpgwd to accept 64 slow clients")
        for s in socks:
            s.sendall(b"E")
        time.sleep(0.5)
        with Frozen(self.d):
            close_all(socks)
        self.assertHealthAnswers("64 slow clients closed")

    def test_event_stream_clients(self):
        request = ("GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n"
                   % TOKEN).encode()
        socks = self.open_at_limit(client_addresses(2), PER_ADDRESS, send=request)
        for s in socks:
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))
        # Suspended streams: smpgwd has to notice them go by itself.
        close_all(socks)
        self.assertHealthAnswers("64 event streams closed")

    def test_mixed_clients_closed_one_by_one(self):
        request = ("GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n"
                   % TOKEN).encode()
        addresses = client_addresses(2)
        socks = []
        for i in range(MAX_CONNECTIONS):
            s = connect_from(addresses[i % 2], self.d.port)
            if i % 3 == 0:
                s.sendall(request)
            elif i % 3 == 1:
                s.sendall(b"GET /api/v1/hea")
            socks.append(s)
        wait_until(lambda: accept_queue(self.d.port) == 0, 5, "smpgwd to accept 64 clients")
        for s in socks:
            s.close()
            time.sleep(0.002)
        self.assertHealthAnswers("64 mixed clients closed one by one")


class ManyClients(LimitCase):
    """500 connections, far past the limit, from 1 and from 20 addresses."""

    def many(self, n_addresses):
        addresses = client_addresses(n_addresses)
        socks = []
        for i in range(500):
            socks.append(connect_from(addresses[i % n_addresses], self.d.port))
        time.sleep(0.5)
        queued = accept_queue(self.d.port)
        note("500 clients from %d address(es): %d wait in the accept queue", n_addresses, queued)
        if n_addresses == 20:
            # 25 an address, under the per-address limit: smpgwd holds 64.
            wait_until(lambda: accept_queue(self.d.port) == 500 - MAX_CONNECTIONS, 5, "the accept queue to settle")
        with Frozen(self.d):
            close_all(socks)
        self.assertHealthAnswers("500 clients from %d address(es) closed" % n_addresses)

    def test_500_from_one_address(self):
        self.many(1)
        # libmicrohttpd logs every client it refuses past the per-address
        # limit; the log keeps 10 of its messages per 10 s.
        self.d.read_log()
        with open(self.d.log_path) as f:
            log = f.read()
        refused = log.count("Server reached connection limit")
        note("libmicrohttpd messages logged for 468 refused clients: %d", refused)
        self.assertLessEqual(refused, 10, log[-2000:])

    def test_500_from_twenty_addresses(self):
        self.many(20)


class HeaderDeadline(LimitCase):
    """A client has REST_HEADER_TIMEOUT_USEC (10 s) from its connection, or
    from the end of its previous request, to send its request headers."""

    def test_trickling_clients_are_cut_off(self):
        socks = self.open_at_limit(client_addresses(2), PER_ADDRESS, send=b"G")
        start = time.monotonic()
        closed_at = {}
        stop = threading.Event()
        wait_until(lambda: accept_queue(self.d.port) == 0, 5, "smpgwd to accept 64 slow clients")

        def trickle():
            # A byte a second to each: never idle, never done.  Between the
            # bytes, wait for the server closing any of them.
            request = b"ET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"x" * 100
            sent = 0
            next_byte = time.monotonic()
            while not stop.is_set():
                open_socks = [s for s in socks if s not in closed_at]
                if not open_socks:
                    return
                now = time.monotonic()
                if now >= next_byte:
                    for s in open_socks:
                        try:
                            s.sendall(request[sent % len(request):sent % len(request) + 1])
                        except OSError:
                            closed_at[s] = time.monotonic() - start
                    sent += 1
                    next_byte += 1.0
                    continue
                readable, _, _ = select.select(open_socks, [], [], min(next_byte - now, 0.2))
                for s in readable:
                    try:
                        gone = s.recv(1) == b""
                    except OSError:
                        gone = True
                    if gone:
                        closed_at[s] = time.monotonic() - start

        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        try:
            # Meanwhile a 65th client waits for a free connection.
            latency = health_latency(self.d, timeout=HEADER_DEADLINE + 5)
            note("health behind 64 trickling clients: %s", "none" if latency is None else "%.2f s" % latency)
            self.assertIsNotNone(latency, "no free connection after the header deadline")
            self.assertLess(latency, HEADER_DEADLINE + 1.5)
            wait_until(lambda: len(closed_at) == len(socks), 5, "every trickling client cut off")
        finally:
            stop.set()
            t.join(5)
            close_all(socks)
        times = sorted(closed_at.values())
        note("64 trickling clients cut off after %.2f .. %.2f s", times[0], times[-1])
        self.assertGreater(times[0], HEADER_DEADLINE - 0.5)
        self.assertLess(times[-1], HEADER_DEADLINE + 1.0)
        _, _, text = self.d.http("GET", "/metrics", token=TOKEN)
        self.assertIn("\nsmpgw_rest_header_timeouts_total 64\n", text.decode())

    def test_complete_requests_are_not_cut_off(self):
        # A keep-alive client that asks now and then keeps its connection.
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=5)
        for _ in range(3):
            conn.request("GET", "/api/v1/health")
            self.assertEqual(conn.getresponse().read()[:1], b"{")
            time.sleep(HEADER_DEADLINE / 4)
        sock = conn.sock
        conn.request("GET", "/api/v1/health")
        self.assertEqual(conn.getresponse().status, 200)
        self.assertIs(conn.sock, sock, "the keep-alive connection was replaced")
        conn.close()


class CheckpointWhileServing(unittest.TestCase):
    """The periodic WAL checkpoint writes the WAL's pages into the
    database file and syncs both, on the loop: every request that arrives
    meanwhile waits.  It waits for a pause in the REST traffic, and runs
    once clients pause.  With the database in exclusive WAL mode, only a
    checkpoint writes the database file itself: its mtime tells."""

    CHECK_INTERVAL = 5.0   # ABSENT_CHECK_USEC

    def test_checkpoint_waits_for_a_pause(self):
        with Daemon(config="[discovery]\nenabled=no\n", bus=False) as d:
            # Something in the WAL for a checkpoint to move.
            status, _, body = d.http("POST", "/api/v1/devices", {"conn": "udp:127.0.0.1:9"})
            self.assertEqual(status, 201, body)
            written = os.stat(d.db_path).st_mtime_ns
            conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
            # A client served without a pause for longer than one check.
            stop = time.monotonic() + self.CHECK_INTERVAL + 2
            served = 0
            while time.monotonic() < stop:
                conn.request("GET", "/api/v1/devices?limit=1")
                resp = conn.getresponse()
                resp.read()
                self.assertEqual(resp.status, 200)
                served += 1
            conn.close()
            self.assertEqual(os.stat(d.db_path).st_mtime_ns, written,
                             "the database file was written (a checkpoint) while a client was served")
            # The client pauses: the next check runs it.
            deadline = time.monotonic() + self.CHECK_INTERVAL + 3
            while os.stat(d.db_path).st_mtime_ns == written and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertNotEqual(os.stat(d.db_path).st_mtime_ns, written, "no checkpoint once the client paused")
            _, _, text = d.http("GET", "/metrics")
            text = text.decode()
            self.assertRegex(text, r'smpgw_db_checkpoints_total\{result="postponed"\} [1-9]')
            self.assertRegex(text, r'smpgw_db_checkpoints_total\{result="run"\} [1-9]')
            note("checkpoint put off while %d requests were served", served)


class Watchdog(unittest.TestCase):
    """WATCHDOG=1 proves the REST API can take a client.  libmicrohttpd
    stops watching its listen socket when accept() fails with EMFILE and
    watches it again only once a connection closes: with long-lived event
    streams that can be never, although descriptors are free again long
    before.  smpgwd is then deaf below max_connections, and the pings
    stop; once a client leaves and it accepts again, they resume."""

    def pings(self, d, seconds):
        return [n for n in d.read_notifications(seconds) if "WATCHDOG=1" in n.split("\n")]

    def test_pings_stop_while_rest_cannot_accept(self):
        d = Daemon(config="[discovery]\nenabled=no\n", start=False, env={"WATCHDOG_USEC": "1000000"})
        streams = []
        try:
            d.start()
            self.assertGreaterEqual(len(self.pings(d, 1.6)), 2, "pings at half of WATCHDOG_USEC")
            open_fds = {int(x) for x in os.listdir("/proc/%d/fd" % d.proc.pid)}
            # The smallest limit that leaves smpgwd three new descriptors.
            limit, free = 0, 0
            while free < 3:
                if limit not in open_fds:
                    free += 1
                limit += 1
            # The soft limit only: raising it back needs no privilege.
            old = resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE)
            resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (limit, old[1]))
            try:
                for _ in range(3):
                    s = connect_from("127.0.0.1", d.port)
                    s.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))
                    streams.append(s)
                # This one cannot be accepted: EMFILE.
                streams.append(connect_from("127.0.0.1", d.port))
                wait_until(lambda: "temporarily suspending accept" in d.read_log(), 5, "accept() to fail")
            finally:
                resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, old)
            # Descriptors are plenty again, but nobody gets in.
            self.assertIsNone(health_latency(d, timeout=1))
            d.read_notifications(1.2)
            late = self.pings(d, 2.5)
            self.assertEqual(late, [], "pings while the REST API cannot accept a client")
            self.assertIn("not pinging the watchdog", d.read_log())
            # One event stream ends: a connection closes, MHD listens again.
            streams.pop(0).close()
            latency = health_latency(d, timeout=5)
            note("health once a client left: %s", "none" if latency is None else "%.1f ms" % (latency * 1000))
            self.assertIsNotNone(latency, "no health answer once a client left\n" + d.read_log())
            self.assertLess(latency, HEALTH_WITHIN)
            self.assertGreaterEqual(len(self.pings(d, 1.6)), 2, "pings resumed")
        finally:
            close_all(streams)
            rc = d.stop()
        self.assertEqual(rc, 0, "smpgwd's exit status")


if __name__ == "__main__":
    unittest.main(verbosity=2)
