#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""smpsim's CoAP transport (newtmgr "OMP") driven by libcoap's own
command-line client, coap-client, independently of libsmpgw's encoder.

The payloads are built here with cbor2 from the format newtmgr uses
(nmxact/omp/omp.go: one CBOR map = the command's fields + "_h", a byte
string holding the 8-byte SMP header whose length field is the body's
length without "_h"; a confirmable PUT to /omgr) and the answers are
checked against what Mynewt's oicmgr sends (mgmt/oicmgr/src/oicmgr.c:
the result fields + "_h" with op = request op + 1; a missing or bad
"_h" is 4.00 Bad Request)."""

import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402
from harness import Sim  # noqa: E402

harness.require("cbor2", "python3-cbor2")
import cbor2  # noqa: E402

COAP_CLIENT = os.environ.get("COAP_CLIENT") or shutil.which("coap-client-openssl") or \
    shutil.which("coap-client-gnutls") or shutil.which("coap-client-notls") or shutil.which("coap-client")
if not COAP_CLIENT:
    harness.skip("needs libcoap's coap-client (Debian package libcoap3-bin)")

OP_READ, OP_READ_RSP, OP_WRITE, OP_WRITE_RSP = 0, 1, 2, 3
V1, V2 = 0, 1
GROUP_OS, GROUP_IMAGE = 0, 1
OS_ECHO, OS_PARAMS = 0, 6


def smp_header(op, version, length, group, seq, cmd):
    return struct.pack(">BBHHBB", op | (version << 3), 0, length, group, seq, cmd)


def parse_header(h):
    b0, flags, length, group, seq, cmd = struct.unpack(">BBHHBB", h)
    return {"op": b0 & 7, "version": (b0 >> 3) & 3, "flags": flags, "len": length,
            "group": group, "seq": seq, "id": cmd}


def omp_request(op, group, cmd, fields, seq, version=V2, h_first=False):
    """What newtmgr sends: the fields plus "_h" in one definite map."""
    body_len = len(cbor2.dumps(fields))
    h = smp_header(op, version, body_len, group, seq, cmd)
    m = {"_h": h, **fields} if h_first else {**fields, "_h": h}
    return cbor2.dumps(m)


class CoapResult:
    def __init__(self, code, payload, log):
        self.code = code
        self.payload = payload
        self.log = log

    def body(self):
        return cbor2.loads(self.payload)


def coap(port, payload=None, method="put", path="omgr", content_format=60, timeout=10, extra=()):
    """Runs coap-client once; returns the last response code it logged
    (e.g. "2.05") and the payload it wrote."""
    with tempfile.TemporaryDirectory(prefix="coap-test-") as tmp:
        out = os.path.join(tmp, "out")
        cmd = [COAP_CLIENT, "-m", method, "-v", "6", "-B", str(timeout), "-o", out]
        if payload is not None:
            inp = os.path.join(tmp, "in")
            with open(inp, "wb") as f:
                f.write(payload)
            cmd += ["-f", inp]
            if content_format is not None:
                cmd += ["-t", str(content_format)]
        cmd += list(extra) + ["coap://127.0.0.1:%d/%s" % (port, path)]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=timeout + 20)
        log = p.stdout.decode(errors="replace")
        # coap_show_pdu lines: "v:1 t:ACK c:2.05 i:1234 {01} [ ... ] :: ..."
        codes = [c for c in re.findall(r"t:(?:CON|NON|ACK|RST) c:(\d\.\d\d)", log)
                 if c[0] in "2345" and c != "2.31"]
        data = b""
        if os.path.exists(out):
            with open(out, "rb") as f:
                data = f.read()
        return CoapResult(codes[-1] if codes else None, data, log)


class OmpOverCoap(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim("--buf-size", "2048", "--buf-count", "6", count=3, udp=False, coap=True)

    @classmethod
    def tearDownClass(cls):
        rc = cls.sim.stop()
        if rc != 0:
            raise RuntimeError("smpsim exited with %d" % rc)

    def port(self, dev=0):
        return self.sim.coap_port + dev

    def check_answer(self, r, req_op, group, cmd, seq, version=V2):
        self.assertEqual(r.code, "2.05", r.log)
        self.assertIn("Content-Format:application/cbor", r.log)
        body = r.body()
        self.assertIsInstance(body, dict)
        self.assertIn("_h", body, body)
        self.assertEqual(len(body["_h"]), 8)
        h = parse_header(body["_h"])
        self.assertEqual(h["op"], req_op + 1)
        self.assertEqual((h["group"], h["id"], h["seq"], h["version"]), (group, cmd, seq, version))
        fields = {k: v for k, v in body.items() if k != "_h"}
        # the header's length is the body's without "_h" (our encoder keeps
        # the device's map; cbor2 re-encodes minimal, so compare loosely)
        self.assertGreaterEqual(h["len"], len(cbor2.dumps(fields)))
        return fields

    def test_echo_v2(self):
        r = coap(self.port(), omp_request(OP_WRITE, GROUP_OS, OS_ECHO, {"d": "hello coap"}, seq=0x42))
        fields = self.check_answer(r, OP_WRITE, GROUP_OS, OS_ECHO, 0x42)
        self.assertEqual(fields, {"r": "hello coap"})

    def test_echo_header_first_v1(self):
        # A Go map has no order: "_h" may come first.  SMP v1 header.
        r = coap(self.port(), omp_request(OP_WRITE, GROUP_OS, OS_ECHO, {"d": "v1"}, seq=7, version=V1,
                                          h_first=True))
        self.assertEqual(r.code, "2.05", r.log)
        h = parse_header(r.body()["_h"])
        self.assertEqual((h["op"], h["seq"]), (OP_WRITE_RSP, 7))
        self.assertEqual(r.body()["r"], "v1")

    def test_indefinite_request(self):
        # {_ "d": "indef", "_h": h'...'} written by hand as an indefinite map
        fields = cbor2.dumps({"d": "indef"})
        h = smp_header(OP_WRITE, V2, len(fields), GROUP_OS, 9, OS_ECHO)
        payload = b"\xbf" + cbor2.dumps("d") + cbor2.dumps("indef") + cbor2.dumps("_h") + cbor2.dumps(h) + b"\xff"
        r = coap(self.port(), payload)
        self.assertEqual(self.check_answer(r, OP_WRITE, GROUP_OS, OS_ECHO, 9), {"r": "indef"})

    def test_mcumgr_params(self):
        # a read with no fields: the payload is {"_h": header} only
        r = coap(self.port(1), omp_request(OP_READ, GROUP_OS, OS_PARAMS, {}, seq=200))
        fields = self.check_answer(r, OP_READ, GROUP_OS, OS_PARAMS, 200)
        self.assertEqual(fields.get("buf_size"), 2048, fields)
        self.assertEqual(fields.get("buf_count"), 6, fields)

    def test_device_by_port(self):
        before = self.sim.state(2)["stats"]["rx_packets"]
        r = coap(self.port(2), omp_request(OP_WRITE, GROUP_OS, OS_ECHO, {"d": "dev2"}, seq=1))
        self.assertEqual(self.check_answer(r, OP_WRITE, GROUP_OS, OS_ECHO, 1), {"r": "dev2"})
        self.assertEqual(self.sim.state(2)["stats"]["rx_packets"], before + 1)

    def test_unknown_command(self):
        # the SMP error travels inside a 2.05 answer, as with oicmgr
        r = coap(self.port(), omp_request(OP_READ, 60, 0, {}, seq=3))
        fields = self.check_answer(r, OP_READ, 60, 0, 3)
        self.assertIn("rc", fields)
        self.assertNotEqual(fields["rc"], 0)

    def test_blockwise_both_ways(self):
        # ~1.5 kB each way: more than one 1024-byte block in the request
        # (Block1) and in the answer (Block2).
        text = "".join(chr(ord("a") + i % 26) for i in range(1500))
        r = coap(self.port(), omp_request(OP_WRITE, GROUP_OS, OS_ECHO, {"d": text}, seq=77))
        self.assertIn("Block1", r.log)
        self.assertIn("Block2", r.log)
        self.assertEqual(self.check_answer(r, OP_WRITE, GROUP_OS, OS_ECHO, 77), {"r": text})

    def test_bad_requests(self):
        bad = {
            "no _h": cbor2.dumps({"d": "x"}),
            "_h of 7 bytes": cbor2.dumps({"d": "x", "_h": b"\x02\x00\x00\x03\x00\x00\x01"}),
            "_h as text": cbor2.dumps({"_h": "\x02\x00\x00\x00\x00\x00\x01\x00"}),
            "_h twice (hand-built)": b"\xa2" + (cbor2.dumps("_h") + cbor2.dumps(smp_header(2, 1, 1, 0, 1, 0))) * 2,
            "not a map": cbor2.dumps([1, 2, 3]),
            "not CBOR": b"\xff\xff\xff",
            "truncated": omp_request(OP_WRITE, GROUP_OS, OS_ECHO, {"d": "x"}, seq=1)[:-3],
            "response op": omp_request(OP_WRITE_RSP, GROUP_OS, OS_ECHO, {"r": "x"}, seq=1),
        }
        for name, payload in bad.items():
            with self.subTest(name):
                r = coap(self.port(), payload)
                self.assertEqual(r.code, "4.00", r.log)
        r = coap(self.port(), b"", content_format=None)
        self.assertEqual(r.code, "4.00", r.log)
        # still alive and answering
        r = coap(self.port(), omp_request(OP_WRITE, GROUP_OS, OS_ECHO, {"d": "alive"}, seq=5))
        self.assertEqual(self.check_answer(r, OP_WRITE, GROUP_OS, OS_ECHO, 5), {"r": "alive"})

    def test_only_put(self):
        # oicmgr registers only PUT
        r = coap(self.port(), None, method="get")
        self.assertEqual(r.code, "4.05", r.log)
        r = coap(self.port(), omp_request(OP_WRITE, GROUP_OS, OS_ECHO, {"d": "x"}, seq=1), path="other")
        self.assertEqual(r.code, "4.04", r.log)

    def test_parallel_clients(self):
        results = {}

        def run(dev, i):
            text = "dev%d-%d" % (dev, i)
            results[(dev, i)] = (text, coap(self.port(dev), omp_request(OP_WRITE, GROUP_OS, OS_ECHO,
                                                                       {"d": text}, seq=i)))

        threads = [threading.Thread(target=run, args=(dev, i)) for dev in range(3) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for (dev, i), (text, r) in results.items():
            self.assertEqual(self.check_answer(r, OP_WRITE, GROUP_OS, OS_ECHO, i), {"r": text})


class LinkAndFaults(unittest.TestCase):
    def test_latency_separate_response(self):
        # 400 ms each way: libcoap's ACK goes out at once, the answer later
        with Sim("--latency", "400", udp=False, coap=True) as sim:
            r = coap(sim.coap_port, omp_request(OP_WRITE, GROUP_OS, OS_ECHO, {"d": "slow"}, seq=11))
            self.assertEqual(r.code, "2.05", r.log)
            self.assertEqual(r.body()["r"], "slow")
            # a separate response is a CON of its own (a piggybacked one
            # would be the ACK); coap-client does not log the empty ACK
            self.assertRegex(r.log, r"t:CON c:2\.05")

    def test_silent_device(self):
        # a device that never answers: only the empty ACK; the simulator
        # keeps serving the other device
        with Sim("--fault", "dev=0:silent=1", count=2, udp=False, coap=True) as sim:
            r = coap(sim.coap_port, omp_request(OP_WRITE, GROUP_OS, OS_ECHO, {"d": "lost"}, seq=1),
                     timeout=3)
            self.assertIsNone(r.code, r.log)
            r = coap(sim.coap_port + 1, omp_request(OP_WRITE, GROUP_OS, OS_ECHO, {"d": "ok"}, seq=2))
            self.assertEqual(r.code, "2.05", r.log)
            self.assertEqual(r.body()["r"], "ok")
            self.assertIsNone(sim.proc.poll())

    def test_retransmission_after_a_dropped_request(self):
        """A client's SMP retransmission is a new Confirmable request with
        the token of the one that was lost (newtmgr and smpgw use the SMP
        sequence number as the token), from the same endpoint.  After the
        device dropped the first, the second must be answered as Mynewt's
        oicmgr would; smpsim must not keep the first one's libcoap async,
        which would make libcoap swallow the second."""
        with Sim("--fault", "dev=0:drop=1", udp=False, coap=True) as sim:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.settimeout(0.2)
            try:
                payload = omp_request(OP_WRITE, GROUP_OS, OS_ECHO, {"d": "again"}, seq=0x17)
                sock.sendto(coap_con_put(0x1001, b"\x17", payload), ("127.0.0.1", sim.coap_port))
                self.assertEqual(coap_receive(sock, 3), [(2, "0.00", 0x1001, b"")], "only the empty ACK")
                self.assertEqual(sim.state(0)["stats"]["dropped_fault"], 1)
                sim.control("clear-faults 0")
                time.sleep(0.3)
                sock.sendto(coap_con_put(0x1002, b"\x17", payload), ("127.0.0.1", sim.coap_port))
                got = coap_receive(sock, 3, until_code="2.05")
                self.assertEqual([g[:2] + (g[3],) for g in got if g[1] != "0.00"][-1:],
                                 [(0, "2.05", b"\x17")], got)
            finally:
                sock.close()


def coap_con_put(mid, token, payload):
    """A Confirmable PUT /omgr, Content-Format 60, built by hand (RFC 7252 §3)."""
    head = bytes([0x40 | len(token), 0x03]) + struct.pack(">H", mid) + token
    # Uri-Path (11) "omgr", then Content-Format (12, delta 1) 60
    return head + bytes([0xb4]) + b"omgr" + bytes([0x11, 60, 0xff]) + payload


def coap_receive(sock, seconds, until_code=None):
    """(type, code, mid, token) of what arrives within `seconds`;
    Confirmable responses are acknowledged."""
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data, addr = sock.recvfrom(2048)
        except socket.timeout:
            continue
        kind, tkl = (data[0] >> 4) & 3, data[0] & 15
        code = "%d.%02d" % (data[1] >> 5, data[1] & 31)
        mid = struct.unpack(">H", data[2:4])[0]
        got.append((kind, code, mid, data[4:4 + tkl]))
        if kind == 0:
            sock.sendto(bytes([0x60, 0x00]) + data[2:4], addr)
        if until_code and code == until_code:
            break
    return got


if __name__ == "__main__":
    unittest.main(verbosity=2)
