#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Connection strings at every door of smpgwd (issue 10): REST
POST /api/v1/devices, D-Bus AddDevice and the configuration's [devices]
add all go through libsmpgw's validator.  A bad string is refused with the
sentence that names the wrong part, and nothing is stored; variants of one
device's string (the default port, localhost, a Bluetooth address in lower
case; whitespace is refused) find the same device, when adding and when
looking it up.

Environment: SMPGWD, SMPGW_PLUGIN_DIR, DBUS_DAEMON, SMPGW_SRCDIR."""

import os
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from daemonharness import Daemon, harness, sql  # noqa: E402
harness.require("dbus", "python3-dbus")

import dbus  # noqa: E402

# (connection string, a piece of the sentence); each was stored as a
# device before.
BAD = [
    ("udp:127.0.0.1", "no port after '127.0.0.1' (udp:HOST:PORT)"),
    ("udp:example.com:1337", "host 'example.com' is not an IPv4 address"),
    ("udp:127.0.0.1:0", "port '0' is out of range (1 to 65535)"),
    ("udp:127.0.0.1:65536", "port '65536' is out of range"),
    ("udp:127.0.0.1:99999999999999999999", "port '99999999999999999999' is out of range"),
    ("udp:256.1.1.1:5", "host '256.1.1.1' is not an IPv4 address"),
    ("udp:127.0.0.1:1337:1", "unexpected ':1' after the port 1337"),
    ("udp:127.0.0.1:1337,mtu=abc", "mtu='abc': 'abc' is not a number"),
    ("udp:127.0.0.1:1337,foo=1", "unknown option 'foo' (udp takes mtu)"),
    ("udp:127.0.0.1:1337 ", "a space at the end"),
    ("udp:127.0.0.1:1337\n", "a newline at the end"),
    ("udp:127.0.0.1:1337\u202e", "byte 0xe2 (beyond ASCII) at offset 18"),
    ("ble:zz:zz:zz", "'zz:zz:zz' is not a Bluetooth address"),
    ("coap:[::1:5683", "'[::1:5683' lacks the ']'"),
    ("serial:/etc/passwd", "'/etc/passwd' is not under /dev/"),
    ("serial:../../x", "'../../x' is not an absolute path under /dev/"),
]

# Ways of writing one device: the first is the canonical form stored.
SAME = [
    ("coap:127.0.0.1:5683", "coap:127.0.0.1", "coap:localhost:05683", "coap:[::ffff:127.0.0.1]"),
    ("udp:127.0.0.1:1337", "udp:localhost:1337"),
    ("ble:C0:DE:00:00:00:01", "ble:c0:de:00:00:00:01"),
    ("udp:[2001:db8::1]:9", "udp:[2001:DB8:0:0::1]:9"),
]

NO_PROBES = "[devices]\nreprobe=86400\n[discovery]\nenabled=no\n"


def device_conns(d):
    _, doc = d.api("GET", "/api/v1/devices?limit=1000", expect=200)
    return sorted(x["conn"] for x in doc["devices"])


class Rest(unittest.TestCase):
    def test_bad_strings_are_refused(self):
        with Daemon(config=NO_PROBES, bus=False) as d:
            for conn, sentence in BAD:
                with self.subTest(conn=conn):
                    status, _, data = d.http("POST", "/api/v1/devices", {"conn": conn})
                    self.assertEqual(status, 400, data)
                    self.assertIn(b'"invalid_field"', data)
                    self.assertIn("Field 'conn': " + sentence, data.decode())
            self.assertEqual(device_conns(d), [])
            # smpgwd holds the database exclusively while it runs
            d.terminate()
            self.assertEqual(sql(d.db_path, "SELECT COUNT(*) FROM devices"), [(0,)])

    def test_one_device_for_every_way_of_writing_it(self):
        with Daemon(config=NO_PROBES, bus=False) as d:
            for canonical, *variants in SAME:
                with self.subTest(conn=canonical):
                    _, first = d.api("POST", "/api/v1/devices", {"conn": variants[0]}, expect=201)
                    self.assertEqual(first["conn"], canonical)
                    for v in variants[1:] + [canonical]:
                        _, again = d.api("POST", "/api/v1/devices", {"conn": v}, expect=200)
                        self.assertEqual(again["id"], first["id"])
                    # Looked up by any of them, too.
                    for v in variants:
                        _, got = d.api("GET", "/api/v1/devices/" + urllib.parse.quote(v, safe=""), expect=200)
                        self.assertEqual(got["id"], first["id"])
            self.assertEqual(device_conns(d), sorted(s[0] for s in SAME))


def mapped_plugins(d):
    """The transport plugins smpgwd has mapped: /proc/PID/maps."""
    with open("/proc/%d/maps" % d.proc.pid) as f:
        return sorted({os.path.basename(line.split()[5])[len("smpgw-transport-"):-len(".so")]
                       for line in f if len(line.split()) > 5 and "/smpgw-transport-" in line.split()[5]})


def mapped_openssl(d):
    """OpenSSL's libraries that smpgwd has mapped: /proc/PID/maps."""
    with open("/proc/%d/maps" % d.proc.pid) as f:
        return sorted({os.path.basename(line.split()[5]) for line in f
                       if len(line.split()) > 5 and os.path.basename(line.split()[5]).startswith(("libssl.", "libcrypto."))})


class Plugins(unittest.TestCase):
    """Plugins are loaded for the schemes in use (issue 14): a daemon with
    UDP devices only has mapped no other plugin (nor libcoap and the rest
    behind them); a scheme first used at runtime loads its plugin then,
    and the database's devices load theirs at the next start.  The coap
    plugin's libcoap is the flavour without DTLS (smpgw speaks no coaps:),
    so it maps neither libssl nor libcrypto (meson.build)."""

    def test_plugins_load_when_a_scheme_is_first_used(self):
        config = NO_PROBES + "[devices]\nadd=udp:127.0.0.1:9\n"
        with Daemon(config=config, bus=False) as d:
            self.assertEqual(device_conns(d), ["udp:127.0.0.1:9"])
            self.assertEqual(mapped_plugins(d), ["udp"])
            self.assertIn("Transports (from ", d.read_log())
            d.api("POST", "/api/v1/devices", {"conn": "coap:127.0.0.1:5683"}, expect=201)
            self.assertEqual(mapped_plugins(d), ["coap", "udp"])
            self.assertEqual(mapped_openssl(d), [])
            # An unknown scheme: the same sentence as ever.
            status, _, data = d.http("POST", "/api/v1/devices", {"conn": "nope:1"})
            self.assertEqual(status, 400, data)
            self.assertIn("no transport plugin for 'nope:' (smpgw-transport-nope.so is in none of: ", data.decode())
            # The database's schemes, without [devices] add.
            with open(d.config_path, "w") as f:
                f.write(NO_PROBES)
            d.restart()
            self.assertEqual(device_conns(d), ["coap:127.0.0.1:5683", "udp:127.0.0.1:9"])
            self.assertEqual(mapped_plugins(d), ["coap", "udp"])


class DBus(unittest.TestCase):
    def test_bad_strings_are_refused(self):
        with Daemon(config=NO_PROBES) as d:
            bus = dbus.bus.BusConnection(d.bus.address)
            try:
                manager = dbus.Interface(bus.get_object("org.smpgw", "/org/smpgw"), "org.smpgw.Manager1")
                for conn, sentence in BAD:
                    with self.subTest(conn=conn):
                        with self.assertRaises(dbus.exceptions.DBusException) as cm:
                            manager.AddDevice(conn)
                        self.assertEqual(cm.exception.get_dbus_name(), "org.freedesktop.DBus.Error.InvalidArgs")
                        self.assertIn("Bad connection string: " + sentence, cm.exception.get_dbus_message())
                path = manager.AddDevice("coap:127.0.0.1")
                self.assertEqual(manager.AddDevice("coap:127.0.0.1:5683"), path)
            finally:
                bus.close()
            self.assertEqual(device_conns(d), ["coap:127.0.0.1:5683"])


class Config(unittest.TestCase):
    def test_bad_entries_are_logged_and_skipped(self):
        config = NO_PROBES + "[devices]\nadd=udp:127.0.0.1 udp:127.0.0.1:9 serial:/etc/passwd udp:localhost:9\n"
        with Daemon(config=config, bus=False) as d:
            self.assertEqual(device_conns(d), ["udp:127.0.0.1:9"])
            log = d.read_log()
            self.assertIn("Configured device 1 of [devices] add not added: no port after '127.0.0.1'", log)
            self.assertIn("Configured device 3 of [devices] add not added: '/etc/passwd' is not under /dev/", log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
