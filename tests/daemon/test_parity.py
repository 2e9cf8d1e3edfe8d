#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""REST and D-Bus are two doors to one engine: the same request gets the
same answer.  Each bad push below goes through POST /api/v1/jobs and
through org.smpgw.Manager1.Push(); the refusals must carry the same
sentence, and their codes must be the one errno's mapping in each
protocol (rest.c's table, bus.c's table).  No refused push may leave a
job behind.  The same holds for what a mesh target or a Distributor is
asked that it cannot do (a push, a probe, a distribution's refusals, a
direct device): a device of the wrong kind is one answer in both."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from daemonharness import Daemon, Sim  # noqa: E402
import mcuimg  # noqa: E402

import dbus  # noqa: E402

NAME = "org.smpgw"
MANAGER = "org.smpgw.Manager1"

# errno → (HTTP status, REST code, D-Bus error), as the two tables say.
MAPPED = {
    "ENOENT": (404, "not_found", "org.smpgw.Error.NotFound"),
    "EINVAL": (400, "invalid_field", "org.freedesktop.DBus.Error.InvalidArgs"),
    "EBUSY": (409, "busy", "org.smpgw.Error.Busy"),
    "ENOTUNIQ": (409, "ambiguous", "org.smpgw.Error.Ambiguous"),
    "ENOEXEC": (409, "incompatible_board", "org.smpgw.Error.IncompatibleBoard"),
    "EMEDIUMTYPE": (400, "invalid_field", "org.freedesktop.DBus.Error.InvalidArgs"),
}

DEVICE = "org.smpgw.Device1"
PROPS = "org.freedesktop.DBus.Properties"


class Parity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # 1 KiB/s: the push that makes a device busy runs for a minute.
        # The third device is the mesh tests' Distributor.
        cls.sim = Sim("--bandwidth", "1k", count=3)
        cls.d = Daemon(config="[discovery]\nenabled=no\n")
        cls.bus = dbus.bus.BusConnection(cls.d.bus.address)
        cls.manager = dbus.Interface(cls.bus.get_object(NAME, "/org/smpgw"), MANAGER)

    @classmethod
    def tearDownClass(cls):
        cls.bus.close()
        rc = cls.d.stop()
        cls.sim.stop()
        if rc != 0:
            raise RuntimeError("smpgwd exited with %d" % rc)

    def rest_push(self, image, devices, options):
        body = {"image": image, "devices": devices}
        body.update(options)
        status, doc = self.d.api("POST", "/api/v1/jobs", body)
        self.assertIn("error", doc, "REST accepted %r" % body)
        return status, doc["error"]["code"], doc["error"]["message"]

    def dbus_push(self, image, devices, options):
        opts = {k: dbus.UInt32(v) if k == "attempts" else v for k, v in options.items()}
        try:
            self.manager.Push(image, dbus.Array([str(x) for x in devices], signature="s"),
                              dbus.Dictionary(opts, signature="sv"))
        except dbus.exceptions.DBusException as e:
            return e.get_dbus_name(), e.get_dbus_message()
        self.fail("D-Bus accepted Push(%r, %r, %r)" % (image, devices, options))

    def dbus_refusal(self, fn, *args):
        try:
            fn(*args)
        except dbus.exceptions.DBusException as e:
            return e.get_dbus_name(), e.get_dbus_message()
        self.fail("D-Bus accepted %r%r" % (fn, args))

    def device(self, id_):
        return self.bus.get_object(NAME, "/org/smpgw/device/%d" % id_)

    def jobs_total(self):
        return self.d.api("GET", "/api/v1/jobs", expect=200)[1]["total"]

    def test_same_refusals(self):
        d = self.d
        ids = [d.api("POST", "/api/v1/devices", {"conn": "udp:127.0.0.1:%d" % (self.sim.port + i)})[1]["id"]
               for i in range(2)]
        free, busy = ids
        free_conn = "udp:127.0.0.1:%d" % self.sim.port
        imgdata, image = mcuimg.make_image(size=64 * 1024, seed=3)
        d.api("POST", "/api/v1/images", imgdata, headers={"Content-Type": "application/octet-stream"}, expect=201)
        (a, a_id), (b, b_id) = mcuimg.prefix_twins()
        for data in (a, b):
            d.api("POST", "/api/v1/images", data, headers={"Content-Type": "application/octet-stream"}, expect=201)
        common = os.path.commonprefix([a_id, b_id])
        # An image built for another board than smpsim's (issue 12).
        other_data, other_board = mcuimg.make_image(size=4096, seed=5)
        d.api("POST", "/api/v1/images?boards=esp32_devkitc,stm32f4_disco", other_data,
              headers={"Content-Type": "application/octet-stream"}, expect=201)
        d.wait_for(lambda: d.api("GET", "/api/v1/devices/%d" % free, expect=200)[1]["board"],
                   timeout=30, what="the free device's board")

        # One device busy with a job that stays "running" while we ask:
        # the refusal quotes its state.
        _, doc = d.api("POST", "/api/v1/jobs", {"image": image, "devices": [busy], "mode": "upload-only"},
                       expect=201)
        job = doc["jobs"][0]["id"]
        d.wait_for(lambda: d.api("GET", "/api/v1/jobs/%d" % job, expect=200)[1]["state"] == "running",
                   timeout=30, what="the busy device's job running")
        before = self.jobs_total()

        cases = [
            ("unknown device by id", image, [str(free), "999999"], {}, "ENOENT"),
            ("unknown device by conn", image, ["udp:127.0.0.1:1"], {}, "ENOENT"),
            ("device named twice", image, [str(free), str(busy), free_conn], {}, "EINVAL"),
            ("busy device", image, [str(free), str(busy)], {}, "EBUSY"),
            ("too many devices", image, [str(free)] * 1001, {}, "EINVAL"),
            ("no devices", image, [], {}, "EINVAL"),
            ("bad mode", image, [str(free)], {"mode": "sideways"}, "EINVAL"),
            ("too few attempts", image, [str(free)], {"attempts": 0}, "EINVAL"),
            ("too many attempts", image, [str(free)], {"attempts": 101}, "EINVAL"),
            ("ambiguous image prefix", common[:6], [str(free)], {}, "ENOTUNIQ"),
            ("unknown image", "0" * 64, [str(free)], {}, "ENOENT"),
            ("not an image id", "xyz", [str(free)], {}, "EINVAL"),
            ("device of another board", other_board, [str(free)], {}, "ENOEXEC"),
        ]
        for what, img, devices, options, errno_name in cases:
            with self.subTest(what):
                status, code, rest_message = self.rest_push(img, devices, options)
                dbus_name, dbus_message = self.dbus_push(img, devices, options)
                self.assertEqual(rest_message, dbus_message)
                self.assertEqual((status, code, dbus_name), MAPPED[errno_name], rest_message)
        # The sentences say which item of the list they are about.
        _, _, message = self.rest_push(image, [str(free), str(busy)], {})
        self.assertIn("devices[1]", message)
        _, _, message = self.rest_push(image, [str(free), str(busy), free_conn], {})
        self.assertIn("devices[0] and devices[2]", message)
        # A JSON integer is the same device as its decimal string.
        self.assertEqual(self.rest_push(image, [free, busy], {})[2],
                         self.rest_push(image, [str(free), str(busy)], {})[2])

        self.assertEqual(self.jobs_total(), before, "a refused push created jobs")
        d.api("POST", "/api/v1/jobs/%d/cancel" % job, expect=200)

    def test_mesh_refusals(self):
        d = self.d
        plain = d.api("POST", "/api/v1/devices", {"conn": "udp:127.0.0.1:%d" % self.sim.port})[1]["id"]
        dist = d.api("POST", "/api/v1/devices", {"conn": "udp:127.0.0.1:%d" % (self.sim.port + 2)})[1]["id"]
        d.api("PATCH", "/api/v1/devices/%d" % dist, {"role": "mesh-distributor"}, expect=200)
        target = d.api("POST", "/api/v1/devices", {"conn": "mesh:%d/0x0100" % dist}, expect=201)[1]["id"]
        imgdata, image = mcuimg.make_image(size=4096, seed=11)
        d.api("POST", "/api/v1/images", imgdata, headers={"Content-Type": "application/octet-stream"}, expect=201)

        def rest(method, path, body=None):
            status, doc = d.api(method, path, body)
            self.assertIn("error", doc, "REST accepted %s %s %r" % (method, path, body))
            return status, doc["error"]["code"], doc["error"]["message"]

        def start_distribution(distributor, targets, options):
            body = {"distributor": distributor, "image": image, "targets": targets}
            body.update(options)
            return (rest("POST", "/api/v1/distributions", body),
                    self.dbus_refusal(self.manager.StartDistribution, str(distributor), image,
                                      dbus.Array([str(t) for t in targets], signature="s"),
                                      dbus.Dictionary(self.distribution_options(options), signature="sv")))

        def push():
            return (rest("POST", "/api/v1/jobs", {"image": image, "devices": [target]}),
                    self.dbus_refusal(self.manager.Push, image, dbus.Array([str(target)], signature="s"),
                                      dbus.Dictionary({}, signature="sv")))

        def probe():
            return (rest("POST", "/api/v1/devices/%d/probe" % target),
                    self.dbus_refusal(dbus.Interface(self.device(target), DEVICE).Probe))

        def direct_device(of, to):
            return (rest("PATCH", "/api/v1/devices/%d" % of, {"direct_device": to}),
                    self.dbus_refusal(dbus.Interface(self.device(of), PROPS).Set, DEVICE, "DirectDevice",
                                      dbus.UInt64(to)))

        cases = [
            ("push to a mesh target", push, "EMEDIUMTYPE", "through a distribution"),
            ("probe of a mesh target", probe, "EMEDIUMTYPE", "Distributor"),
            ("direct device of a device that is no mesh target", lambda: direct_device(plain, dist),
             "EMEDIUMTYPE", "not a mesh target"),
            ("a Distributor without the role", lambda: start_distribution(plain, [target], {}),
             "EMEDIUMTYPE", "role"),
            ("a mesh target as Distributor", lambda: start_distribution(target, [target], {}),
             "EMEDIUMTYPE", "not a Distributor"),
            ("a target that is no mesh target", lambda: start_distribution(dist, [plain], {}),
             "EMEDIUMTYPE", "no mesh target"),
            ("app_idx beyond 12 bits", lambda: start_distribution(dist, [target], {"app_idx": 0x1000}),
             "EINVAL", "app_idx"),
            ("ttl beyond 0x7f", lambda: start_distribution(dist, [target], {"ttl": 0x80}), "EINVAL", "ttl"),
            ("too many attempts", lambda: start_distribution(dist, [target], {"attempts": 101}),
             "EINVAL", "attempts"),
            ("a bad xfer_mode", lambda: start_distribution(dist, [target], {"xfer_mode": 3}),
             "EINVAL", "xfer_mode"),
        ]
        for what, call, errno_name, word in cases:
            with self.subTest(what):
                (status, code, rest_message), (dbus_name, dbus_message) = call()
                self.assertEqual(rest_message, dbus_message)
                self.assertEqual((status, code, dbus_name), MAPPED[errno_name], rest_message)
                self.assertIn(word, rest_message)
        self.assertEqual(d.api("GET", "/api/v1/distributions", expect=200)[1]["distributions"], [])

    @staticmethod
    def distribution_options(options):
        types = {"app_idx": dbus.UInt16, "ttl": dbus.Byte, "attempts": dbus.UInt32, "xfer_mode": dbus.Byte}
        return {k: types[k](v, variant_level=1) for k, v in options.items()}


if __name__ == "__main__":
    unittest.main(verbosity=2)
