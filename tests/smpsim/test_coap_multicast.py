#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""CoAP multicast discovery: smpsim --coap-multicast answering, the coap
plugin discovering (through `smpgwctl scan --transport coap`, whose empty
discovery arguments mean the default group 224.0.1.187:5683), each found
conn answering an SMP echo.

Everything runs in network namespaces this test creates and deletes
(`ip netns add`, lo inside them): the machine's own interfaces are never
touched.  Needs root and iproute2; skips (exit 77) otherwise.

The script runs itself a second time inside the namespace (--inside) so
that its own sockets (a hand-made CoAP client, independent of libcoap)
live there too."""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402

SMPSIM = harness.SMPSIM
SMPGWCTL = os.environ.get("SMPGWCTL", "smpgwctl")
GROUP, GROUP_PORT = "224.0.1.187", 5683
BASE_PORT = 5700
COUNT = 5
LINKS = b'</omgr>;rt="x.mynewt.nmgr"'


def run(*args, check=True, timeout=30, **kw):
    return subprocess.run(list(args), check=check, timeout=timeout, capture_output=True, text=True, **kw)


def coap_get_wkc(token, mid, query=None, msg_type=1):
    """A GET /.well-known/core (RFC 7252 §3 encoding), NON by default."""
    pkt = bytes([0x40 | (msg_type << 4) | len(token), 0x01]) + struct.pack(">H", mid) + token
    opts = [(11, b".well-known"), (11, b"core")]
    if query:
        opts.append((15, query))
    last = 0
    for number, value in opts:
        delta, length = number - last, len(value)
        assert delta < 13 and length < 269
        if length < 13:
            pkt += bytes([(delta << 4) | length])
        else:
            pkt += bytes([(delta << 4) | 13, length - 13])
        pkt += value
        last = number
    return pkt


def coap_parse(pkt):
    """(type, code, token, content_format, payload) of a CoAP datagram."""
    tkl = pkt[0] & 0x0F
    msg_type, code = (pkt[0] >> 4) & 3, pkt[1]
    token = pkt[4:4 + tkl]
    i, number, cf = 4 + tkl, 0, None
    while i < len(pkt) and pkt[i] != 0xFF:
        delta, length = pkt[i] >> 4, pkt[i] & 0x0F
        i += 1
        if delta == 13:
            delta, i = pkt[i] + 13, i + 1
        if length == 13:
            length, i = pkt[i] + 13, i + 1
        number += delta
        if number == 12:
            cf = int.from_bytes(pkt[i:i + length], "big")
        i += length
    payload = pkt[i + 1:] if i < len(pkt) else b""
    return msg_type, code, token, cf, payload


class Inside(unittest.TestCase):
    """Runs inside a namespace whose lo carries multicast."""

    sim = None

    @classmethod
    def setUpClass(cls):
        cls.sim = harness.Sim("--coap-multicast", "--seed", "7", count=COUNT, udp=False, coap=BASE_PORT)

    @classmethod
    def tearDownClass(cls):
        rc = cls.sim.stop()
        # A clean exit on SIGTERM (and, under ASan, no leak or error report).
        if rc != 0:
            raise AssertionError(f"smpsim exited with {rc}: {cls.sim.stderr_text[-2000:]}")

    def expected(self):
        return [f"coap:127.0.0.1:{BASE_PORT + i}" for i in range(COUNT)]

    def scan(self):
        r = run(SMPGWCTL, "--json", "scan", "--transport", "coap", check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [d["conn"] for d in json.loads(r.stdout)["devices"]]

    def test_1_scan_finds_each_device_once(self):
        conns = self.scan()
        self.assertEqual(len(conns), len(set(conns)), f"a device reported twice: {conns}")
        self.assertEqual(sorted(conns), self.expected())

    def test_2_found_conns_answer_echo(self):
        for conn in self.scan():
            r = run(SMPGWCTL, "--conn", conn, "echo", f"hi {conn}", check=False)
            self.assertEqual(r.returncode, 0, f"{conn}: {r.stderr}")
            self.assertEqual(r.stdout.strip(), f"hi {conn}")

    def hand_client(self, pkt, wait=1.0):
        """Sends pkt to the group; returns [(source, datagram)]."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.sendto(pkt, (GROUP, GROUP_PORT))
            s.settimeout(0.1)
            got, end = [], time.monotonic() + wait
            while time.monotonic() < end:
                try:
                    got.append(s.recvfrom(2048)[::-1])
                except socket.timeout:
                    pass
            return got

    def test_3_answers_come_from_each_devices_port(self):
        token = os.urandom(8)
        got = self.hand_client(coap_get_wkc(token, 0x1234, b"rt=x.mynewt.nmgr"))
        sources = sorted(src for src, _ in got)
        self.assertEqual(sources, [("127.0.0.1", BASE_PORT + i) for i in range(COUNT)])
        for _, pkt in got:
            msg_type, code, tok, cf, payload = coap_parse(pkt)
            self.assertEqual((msg_type, code, tok, cf), (1, 0x45, token, 40))
            self.assertEqual(payload, LINKS)

    def test_4_filters_and_garbage_get_no_answer(self):
        self.assertEqual(self.hand_client(coap_get_wkc(b"ab", 1, b"rt=oic.wk.res"), 0.5), [])
        self.assertEqual(self.hand_client(coap_get_wkc(b"ab", 2, b"if=core.ll"), 0.5), [])
        # A wildcard filter that matches, and no filter at all, are answered.
        self.assertEqual(len(self.hand_client(coap_get_wkc(b"cd", 3, b"rt=x.mynewt.*"), 0.5)), COUNT)
        self.assertEqual(len(self.hand_client(coap_get_wkc(b"ef", 4), 0.5)), COUNT)
        # Confirmable multicast is not allowed (RFC 7252 §8.1): silence.
        self.assertEqual(self.hand_client(coap_get_wkc(b"gh", 5, msg_type=0), 0.5), [])
        for junk in (b"", b"\xff", b"\x41\x01\x00", os.urandom(300), b"\x5f" + os.urandom(40)):
            self.assertEqual(self.hand_client(junk, 0.2), [])
        self.assertIsNone(self.sim.proc.poll(), "smpsim died")
        self.assertEqual(sorted(self.scan()), self.expected())

    def test_5_plugin_ignores_garbage_answers(self):
        # A rogue server on the group answering nonsense, a wrong token and
        # a listing without /omgr: the scan still finds exactly the devices.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rogue:
            rogue.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            rogue.bind((GROUP, GROUP_PORT))
            mreq = socket.inet_aton(GROUP) + socket.inet_aton("0.0.0.0")
            rogue.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            scan = subprocess.Popen([SMPGWCTL, "--json", "scan", "--transport", "coap"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            rogue.settimeout(5)
            pkt, src = rogue.recvfrom(2048)
            _, _, token, _, _ = coap_parse(pkt)
            tkl = bytes([0x50 | len(token), 0x45])
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tx.bind(("127.0.0.1", 0))
            for body in (b"\xff" + os.urandom(200),
                         b"\xc1\x28\xff" + b"<" * 500,
                         b'\xc1\x28\xff</omgr;rt="x.mynewt.nmgr"',
                         b'\xc1\x28\xff</other>;rt="x.mynewt.nmgr"',
                         b'\xc1\x28\xff</omgr>;rt="something.else"',
                         b'\xc1\x00\xff</omgr>;rt="x.mynewt.nmgr"'):
                tx.sendto(tkl + b"\x00\x01" + token + body, src)
            # Right listing, wrong token.
            tx.sendto(bytes([0x50 | 8, 0x45]) + b"\x00\x02" + bytes(8) + b"\xc1\x28\xff" + LINKS, src)
            tx.close()
            out, err = scan.communicate(timeout=30)
        self.assertEqual(scan.returncode, 0, err)
        self.assertEqual(sorted(d["conn"] for d in json.loads(out)["devices"]), self.expected())


def ns_exec(ns, *args, **kw):
    return run("ip", "netns", "exec", ns, *args, **kw)


def outer():
    if os.geteuid() != 0:
        print("SKIP: needs root to create network namespaces")
        return 77
    if not shutil.which("ip") or run("ip", "netns", "list", check=False).returncode != 0:
        print("SKIP: 'ip netns' is not available")
        return 77

    tag = uuid.uuid4().hex[:8]
    ns, bare = f"smpgw-coapmc-{tag}", f"smpgw-coapmc-bare-{tag}"
    created = []
    try:
        for name in (ns, bare):
            run("ip", "netns", "add", name)
            created.append(name)
            ns_exec(name, "ip", "link", "set", "lo", "up")
        # Only inside the namespace: lo carries multicast, and the route
        # to 224.0.0.0/4 points at it.
        ns_exec(ns, "ip", "link", "set", "lo", "multicast", "on")
        ns_exec(ns, "ip", "route", "add", "224.0.0.0/4", "dev", "lo")

        failures = 0
        # Without a multicast route: a clean error from the plugin (through
        # smpgwctl), and smpsim refuses to join.
        r = ns_exec(bare, SMPGWCTL, "scan", "--transport", "coap", check=False)
        if r.returncode == 0 or "Network is unreachable" not in r.stderr:
            print(f"FAIL: scan without a multicast route: rc {r.returncode}, {r.stderr!r}")
            failures += 1
        else:
            print(f"ok: scan without a multicast route fails cleanly: {r.stderr.strip()}")
        r = ns_exec(bare, SMPSIM, "--coap", f"127.0.0.1:{BASE_PORT}", "--coap-multicast", check=False)
        if r.returncode == 0 or "--coap-multicast" not in r.stderr:
            print(f"FAIL: smpsim without a multicast route: rc {r.returncode}, {r.stderr!r}")
            failures += 1
        else:
            print("ok: smpsim without a multicast route refuses --coap-multicast")

        r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), "--inside"],
                           timeout=300)
        return 1 if failures or r.returncode else 0
    finally:
        for name in created:
            subprocess.run(["ip", "netns", "del", name], check=False)


if __name__ == "__main__":
    if "--inside" in sys.argv:
        sys.argv.remove("--inside")
        unittest.main(verbosity=2)
    sys.exit(outer())
