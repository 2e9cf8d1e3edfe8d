#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""smpgwctl --conn with connection strings libsmpgw refuses: a usage
error (exit 2, doc/smpgwctl.md), nothing on stdout, and on stderr the
sentence that names the part that is wrong.  Variants of one device's
string reach the device.  (Issue 10: these were "bad address", exit 6,
or worse, accepted.)

Environment: SMPGWCTL, SMPSIM."""

import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from harness import Sim  # noqa: E402

SMPGWCTL = os.environ.get("SMPGWCTL", "smpgwctl")
USAGE, TRANSPORT = 2, 6

# (connection string, a piece of the sentence)
BAD = [
    ("udp:127.0.0.1", "no port after '127.0.0.1' (udp:HOST:PORT)"),
    ("udp:example.com:1337", "host 'example.com' is not an IPv4 address"),
    ("coap:example.com:5683", "host 'example.com' is not an IPv4 address"),
    ("udp:127.0.0.1:99999", "port '99999' is out of range (1 to 65535)"),
    ("udp:127.0.0.1:0", "port '0' is out of range"),
    ("udp:127.0.0.1:65536", "port '65536' is out of range"),
    ("udp:127.0.0.1:99999999999999999999", "port '99999999999999999999' is out of range"),
    ("udp:127.0.0.1:1337,mtu=abc", "mtu='abc': 'abc' is not a number"),
    ("udp:127.0.0.1:1337,foo=1", "unknown option 'foo' (udp takes mtu)"),
    ("udp:256.1.1.1:5", "host '256.1.1.1' is not an IPv4 address"),
    ("udp:127.0.0.1:1337:1", "unexpected ':1' after the port 1337"),
    ("udp:127.0.0.1:1337 ", "a space at the end"),
    ("udp:127.0.0.1:1337\n", "a newline at the end"),
    ("udp:127.0.0.1:1337\u202e", "byte 0xe2 (beyond ASCII) at offset 18"),
    ("ble:zz:zz:zz", "'zz:zz:zz' is not a Bluetooth address"),
    ("coap:[::1:5683", "'[::1:5683' lacks the ']'"),
    ("serial:/etc/passwd", "'/etc/passwd' is not under /dev/"),
    ("serial:../../x", "'../../x' is not an absolute path under /dev/"),
    ("serial:/nonexistent/tty", "'/nonexistent/tty' is not under /dev/"),
    ("UDP:127.0.0.1:1337", "scheme 'UDP' is not a transport name"),
]


def ctl(*args, env=None):
    return subprocess.run([SMPGWCTL] + list(args), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env=env or dict(os.environ))


class Refused(unittest.TestCase):
    def test_usage_error_with_the_sentence(self):
        for conn, sentence in BAD:
            for json_flag in ([], ["--json"]):
                with self.subTest(conn=conn, json=json_flag):
                    r = ctl("--conn", conn, *json_flag, "echo", "x")
                    self.assertEqual(r.returncode, USAGE, "%r: %s" % (conn, r.stderr))
                    self.assertEqual(r.stdout, "")
                    self.assertIn("bad connection string: " + sentence, r.stderr)
                    self.assertNotIn("Sanitizer", r.stderr)

    def test_no_plugin_is_a_transport_error(self):
        r = ctl("--conn", "nosuch:127.0.0.1:1", "echo", "x")
        self.assertEqual(r.returncode, TRANSPORT, r.stderr)
        self.assertIn("no transport plugin for 'nosuch:'", r.stderr)


class Scan(unittest.TestCase):
    def test_usage_errors_print_nothing_on_stdout(self):
        """doc/smpgwctl.md: usage errors (exit 2) print nothing on stdout,
        also with --json; a transport that cannot discover is one."""
        env = dict(os.environ, SMPGW_PLUGIN_DIR="relative/dir")
        for args, want, e in [(["--transport", "serial"], "cannot discover", None),
                              (["--seconds", "0"], "--seconds wants a number from 1 to 3600", None),
                              ([], "$SMPGW_PLUGIN_DIR must be absolute", env)]:
            for json_flag in ([], ["--json"]):
                with self.subTest(args=args, json=json_flag):
                    r = ctl("scan", *args, *json_flag, env=e)
                    self.assertEqual((r.returncode, r.stdout), (USAGE, ""), r.stderr)
                    self.assertIn(want, r.stderr)

    def test_no_plugin_is_a_transport_error(self):
        for json_flag in ([], ["--json"]):
            r = ctl("scan", "--transport", "nosuch", *json_flag)
            self.assertEqual(r.returncode, TRANSPORT, r.stderr)
            self.assertIn("no 'nosuch' transport", r.stderr + r.stdout)


class Canonical(unittest.TestCase):
    def test_variants_reach_the_device(self):
        with Sim() as sim:
            for conn in ("udp:127.0.0.1:%d" % sim.port, "udp:localhost:%05d" % sim.port,
                         "udp:[::ffff:127.0.0.1]:%d" % sim.port, "udp:127.0.0.1:%d,mtu=01472" % sim.port):
                with self.subTest(conn=conn):
                    r = ctl("--conn", conn, "echo", "hi")
                    self.assertEqual((r.returncode, r.stdout), (0, "hi\n"), r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
