#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Mesh distributions through smpgwd as a process: smpsim as a Bluetooth
Mesh Distributor (--mesh-distributor) over real UDP and over BLE through
smpsim's fake org.bluez, the REST API over loopback, a real SQLite file.

  - a Distributor and its targets added over REST (role, mesh:<id>/<addr>),
    a distribution that ends with every simulated target on the new
    firmware, and the targets' device forms saying so;
  - kill -9 of smpgwd mid-transfer: started again on the same files, the
    distribution reconnects, reads the Distributor's state and finishes;
  - the same over BLE (GATT to the Distributor), then a rollout of those
    targets over BLE, planned with the multicast rate that distribution
    measured;
  - over D-Bus: Device1.Role, Manager1.StartDistribution(), a verify-only
    distribution applied with Distribution1.Apply(), and Distribution1's
    introspection against dbus/org.smpgw.xml;
  - a rollout over REST whose members are mesh targets: one distribution,
    the members' distribution and phase over REST and in `smpgwctl
    rollout show`, mesh_path "direct" refused;
  - then two of those targets given direct devices (two more smpsim UDP
    devices) over REST and smpgwctl direct-device: their device forms,
    the refusals, a plan that uses the multicast rate the distribution
    measured, and a rollout with mesh_path "direct" that updates them by
    jobs to their direct devices (members' path, `rollout show`); an
    image built for other boards than theirs: a distribution refused with
    409 incompatible_board over REST and refused over D-Bus too,
    started with "force"."""

import os
import sys
import time
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(__file__))
import daemonharness  # noqa: E402
from daemonharness import Daemon, Sim  # noqa: E402
import mcuimg  # noqa: E402


def add_image(d, data):
    status, doc = d.api("POST", "/api/v1/images?name=mesh.bin", data,
                        headers={"Content-Type": "application/octet-stream"})
    if status != 201:
        raise AssertionError("image upload: %d %r" % (status, doc))
    return doc["id"]


def setup(d, conn, n):
    """The Distributor by conn, its role, and n targets from 0x0100."""
    status, dev = d.api("POST", "/api/v1/devices", {"conn": conn})
    if status not in (200, 201):
        raise AssertionError("add %s: %d %r" % (conn, status, dev))
    _, dev = d.api("PATCH", "/api/v1/devices/%d" % dev["id"], {"role": "mesh-distributor"}, expect=200)
    assert dev["role"] == "mesh-distributor", dev
    targets = []
    for i in range(n):
        # decimal and hex both name a target; the canonical form is hex
        addr = "%d" % (0x100 + i) if i % 2 else "0x%04x" % (0x100 + i)
        status, t = d.api("POST", "/api/v1/devices", {"conn": "mesh:%d/%s" % (dev["id"], addr)})
        assert status == 201, (status, t)
        assert t["conn"] == "mesh:%d/0x%04x" % (dev["id"], 0x100 + i), t
        assert t["transport"] == "mesh" and t["mesh"]["distributor"] == dev["id"], t
        targets.append(t["id"])
    return dev["id"], targets


def distribution(d, dist_id):
    _, doc = d.api("GET", "/api/v1/distributions/%d" % dist_id, expect=200)
    return doc


def wait_finished(d, dist_id, timeout=120):
    return d.wait_for(lambda: (lambda x: x if x["state"] in ("succeeded", "failed", "cancelled") else None)(
        distribution(d, dist_id)), timeout=timeout, what="distribution %d to finish" % dist_id)


def check_updated(test, d, sim, doc, version):
    test.assertEqual(doc["state"], "succeeded", doc)
    test.assertEqual(doc["targets_updated"], doc["targets_total"])
    nodes = {t["addr"]: t for t in sim.control("mesh-state 0")["targets"]}
    for t in doc["targets"]:
        test.assertEqual(t["state"], "updated", t)
        test.assertEqual(nodes[int(t["addr"], 16)]["version"], version)
        _, dev = d.api("GET", "/api/v1/devices/%d" % t["device"], expect=200)
        test.assertEqual(dev["mesh"]["version"], version)
        test.assertEqual(dev["mesh"]["fwid"], "0200000000000000")


class MeshUdp(unittest.TestCase):
    def test_distribution_and_kill9(self):
        with Sim("--mesh-distributor=0", "--mesh-targets", "8", "--mesh-rate", "1000",
                 "--mesh-time-scale", "4", count=1) as sim, Daemon() as d:
            try:
                dist, targets = setup(d, "udp:127.0.0.1:%d" % sim.port, 8)
                data, _ = mcuimg.make_image((2, 0, 0, 0), 3000, seed=5)
                image = add_image(d, data)
                # a push to a mesh target is refused: no link reaches it
                status, doc = d.api("POST", "/api/v1/jobs", {"image": image, "devices": [targets[0]]})
                self.assertEqual(status, 400, doc)
                # refusals name the field, and create nothing
                for body, code in (({"distributor": dist, "image": image, "targets": []}, 400),
                                   ({"distributor": dist, "image": image, "targets": targets, "speed": 1}, 400),
                                   ({"distributor": dist, "image": image, "targets": [dist]}, 400),
                                   ({"distributor": targets[0], "image": image, "targets": targets}, 400),
                                   ({"distributor": dist, "image": image, "targets": targets, "apply": "later"}, 400),
                                   ({"distributor": dist, "image": image, "targets": targets,
                                     "deadline": 2 ** 62}, 400),
                                   ({"image": image, "targets": targets}, 400),
                                   ({"distributor": True, "image": image, "targets": targets}, 400),
                                   ({"distributor": dist, "image": image, "targets": [None]}, 400),
                                   ({"distributor": 999999, "image": image, "targets": targets}, 404),
                                   ({"distributor": dist, "image": "ffffff", "targets": targets}, 404)):
                    status, doc = d.api("POST", "/api/v1/distributions", body)
                    self.assertEqual(status, code, (body, doc))
                    self.assertEqual(len(d.api("GET", "/api/v1/distributions", expect=200)[1]["distributions"]),
                                     0, body)
                self.assertEqual(d.api("GET", "/api/v1/distributions", expect=200)[1]["distributions"], [])
                _, doc = d.api("POST", "/api/v1/distributions",
                               {"distributor": dist, "image": image, "targets": targets}, expect=201)
                dist_id = doc["id"]
                # one distribution per Distributor at a time
                status, _ = d.api("POST", "/api/v1/distributions",
                                  {"distributor": dist, "image": image, "targets": targets})
                self.assertEqual(status, 409)
                self.assertEqual(len(doc["targets"]), 8)
                # kill -9 while the Distributor transfers
                d.wait_for(lambda: distribution(d, dist_id)["step"] == "transfer", timeout=60,
                           what="the transfer")
                self.assertEqual(sim.control("mesh-state 0")["phase"], 1)
                d.kill9()
                d.start()
                doc = wait_finished(d, dist_id)
                check_updated(self, d, sim, doc, "2.0.0+0")
                self.assertEqual(doc["rounds"], 1)
                # the Distributor's slot 1 holds the image, never tested
                slots = sim.state(0)["slots"]
                self.assertFalse(any(s.get("pending") for s in slots), slots)
            except Exception:
                sys.stderr.write(d.read_log())
                raise


class MeshBle(unittest.TestCase):
    def test_distribution_over_gatt(self):
        d = Daemon(start=False, config="[mesh]\npoll_min=1\npoll_max=2\n")
        try:
            d.extra_env["DBUS_SYSTEM_BUS_ADDRESS"] = d.bus.address
            with Sim("--ble", d.bus.address, "--ble-resolve-ms", "40", "--mesh-distributor=0",
                     "--mesh-targets", "4", "--mesh-rate", "1000", "--mesh-time-scale", "20",
                     count=1, udp=False) as sim:
                d.start()
                dist, targets = setup(d, "ble:C0:DE:00:00:00:00", 4)
                data, _ = mcuimg.make_image((2, 0, 0, 0), 2000, seed=6)
                image = add_image(d, data)
                _, doc = d.api("POST", "/api/v1/distributions",
                               {"distributor": dist, "image": image, "targets": targets}, expect=201)
                doc = wait_finished(d, doc["id"], timeout=180)
                check_updated(self, d, sim, doc, "2.0.0+0")
                # a rollout of the same targets through the BLE Distributor
                data, _ = mcuimg.make_image((2, 1, 0, 0), 2000, seed=11)
                spec = {"image": add_image(d, data), "targets": {"devices": targets}, "policy": {"canary": 4}}
                _, plan = d.api("POST", "/api/v1/rollouts/plan", spec, expect=200)
                self.assertEqual([m["path"] for m in plan["mesh"]], ["distributor"], plan)
                self.assertTrue(plan["mesh"][0]["assumptions"]["mesh_rate_measured"], plan)
                _, ro = d.api("POST", "/api/v1/rollouts", spec, expect=201)
                path = "/api/v1/rollouts/%d" % ro["id"]
                ro = d.wait_for(lambda: (lambda x: x if x["state"] in ("completed", "aborted", "paused") else None)(
                    d.api("GET", path, expect=200)[1]), timeout=90, what="the rollout over BLE")
                self.assertEqual(ro["state"], "completed", ro)
                self.assertEqual({m["path"] for m in ro["mesh_members"]}, {"distributor"}, ro)
                for t in sim.control("mesh-state 0")["targets"]:
                    self.assertEqual(t["version"], "2.1.0+0")
        except Exception:
            sys.stderr.write(d.read_log())
            raise
        finally:
            d.stop()


def interfaces(root):
    """Members of the org.smpgw interfaces of an introspection document, as
    tests/daemon/test_dbus.py compares them."""
    result = {}
    for iface in root.findall("interface"):
        name = iface.get("name")
        if not name.startswith("org.smpgw."):
            continue
        members = {}
        for el in iface:
            if el.tag not in ("method", "property", "signal"):
                continue
            args = tuple((a.get("name"), a.get("type"), a.get("direction", "in" if el.tag == "method" else None))
                         for a in el.findall("arg"))
            annotations = frozenset((a.get("name"), a.get("value")) for a in el.findall("annotation"))
            members[(el.tag, el.get("name"))] = (el.get("type"), el.get("access"), args, annotations)
        result[name] = members
    return result


class MeshDbus(unittest.TestCase):
    def test_verify_only_over_dbus(self):
        try:
            import dbus
        except ImportError:
            self.skipTest("python3-dbus")
        with Sim("--mesh-distributor=0", "--mesh-targets", "3", "--mesh-rate", "1000",
                 "--mesh-time-scale", "50", count=1) as sim, Daemon() as d:
            try:
                bus = dbus.bus.BusConnection(d.bus.address)
                obj = lambda path, iface: dbus.Interface(bus.get_object("org.smpgw", path), iface)  # noqa: E731
                manager = obj("/org/smpgw", "org.smpgw.Manager1")
                dev_path = manager.AddDevice("udp:127.0.0.1:%d" % sim.port)
                obj(dev_path, "org.freedesktop.DBus.Properties").Set("org.smpgw.Device1", "Role",
                                                                      "mesh-distributor")
                dist_id = int(dev_path.rsplit("/", 1)[1])
                targets = [str(manager.AddDevice("mesh:%d/0x%04x" % (dist_id, 0x100 + i))).rsplit("/", 1)[1]
                           for i in range(3)]
                data, _ = mcuimg.make_image((2, 0, 0, 0), 2000, seed=7)
                image = add_image(d, data)
                path = manager.StartDistribution(str(dist_id), image, targets,
                                                 {"apply": dbus.String("verify-only", variant_level=1)})
                props = obj(path, "org.freedesktop.DBus.Properties")
                state = lambda: str(props.Get("org.smpgw.Distribution1", "State"))  # noqa: E731
                d.wait_for(lambda: state() == "verified" or None, timeout=60, what="verified")
                for t in sim.control("mesh-state 0")["targets"]:
                    self.assertEqual(t["version"], "1.0.0+0")
                obj(path, "org.smpgw.Distribution1").Apply()
                d.wait_for(lambda: state() == "succeeded" or None, timeout=60, what="succeeded")
                rows = props.Get("org.smpgw.Distribution1", "Targets")
                self.assertEqual([str(r[2]) for r in rows], ["updated"] * 3)
                for t in sim.control("mesh-state 0")["targets"]:
                    self.assertEqual(t["version"], "2.0.0+0")
                # the live interface is the documented one
                expected = interfaces(ET.parse(os.path.join(daemonharness.SRCDIR, "dbus", "org.smpgw.xml"))
                                      .getroot())
                xml = obj(path, "org.freedesktop.DBus.Introspectable").Introspect()
                live = interfaces(ET.fromstring(str(xml)))
                self.assertEqual(live["org.smpgw.Distribution1"], expected["org.smpgw.Distribution1"])
                # smpgwctl --json shows a mesh target and the Distributor as REST does
                import json
                for dev in (dist_id, int(targets[0])):
                    cli = json.loads(d.smpgwctl("device", str(dev), "--json").stdout)["device"]
                    self.assertEqual(cli, d.api("GET", "/api/v1/devices/%d" % dev, expect=200)[1])
                did = int(str(path).rsplit("/", 1)[1])
                cli = json.loads(d.smpgwctl("distribution", str(did), "--json").stdout)["distribution"]
                self.assertEqual(cli, distribution(d, did))
                cli = json.loads(d.smpgwctl("distributions", "--json").stdout)["distributions"]
                self.assertEqual(cli, d.api("GET", "/api/v1/distributions", expect=200)[1]["distributions"])
                out = d.smpgwctl("distribution", str(did)).stdout.decode()
                self.assertIn("0x0102", out)
                self.assertIn("apply-success", out)
                xml = obj(dev_path, "org.freedesktop.DBus.Introspectable").Introspect()
                self.assertEqual(interfaces(ET.fromstring(str(xml)))["org.smpgw.Device1"],
                                 expected["org.smpgw.Device1"])
            except Exception:
                sys.stderr.write(d.read_log())
                raise


class MeshRollout(unittest.TestCase):
    def test_rollout_of_mesh_targets(self):
        with Sim("--mesh-distributor=0", "--mesh-targets", "4", "--mesh-rate", "1000",
                 "--mesh-time-scale", "50", count=3) as sim, \
                Daemon(config="[mesh]\npoll_min=1\npoll_max=2\n[jobs]\nswap_estimate=1\n") as d:
            try:
                dist, targets = setup(d, "udp:127.0.0.1:%d" % sim.port, 4)
                data, _ = mcuimg.make_image((2, 0, 0, 0), 2000, seed=8)
                image = add_image(d, data)
                spec = {"image": image, "targets": {"devices": [str(t) for t in targets]},
                        "policy": {"canary": 4, "wave_size": "100%"}}
                status, doc = d.api("POST", "/api/v1/rollouts",
                                    dict(spec, policy={"canary": 4, "mesh_path": "direct"}))
                self.assertEqual(status, 400, doc)
                self.assertIn("no direct connection", doc["error"]["message"])
                _, plan = d.api("POST", "/api/v1/rollouts/plan", spec, expect=200)
                self.assertEqual([m["path"] for m in plan["mesh"]], ["distributor"])
                self.assertEqual(sorted(plan["mesh"][0]["devices"]), sorted(targets))
                _, ro = d.api("POST", "/api/v1/rollouts", spec, expect=201)
                path = "/api/v1/rollouts/%d" % ro["id"]
                ro = d.wait_for(lambda: (lambda x: x if x["state"] in ("completed", "aborted", "paused") else None)(
                    d.api("GET", path, expect=200)[1]), timeout=90, what="the rollout to finish")
                self.assertEqual(ro["state"], "completed", ro)
                _, members = d.api("GET", path + "/members", expect=200)
                dists = {m["distribution"] for m in members["members"]}
                self.assertEqual(len(dists), 1, members)
                for m in members["members"]:
                    self.assertEqual(m["state"], "succeeded", m)
                    self.assertEqual(m["mesh_phase"], "apply-success", m)
                    self.assertIsNone(m["job"], m)
                self.assertEqual(distribution(d, dists.pop())["state"], "succeeded")
                for t in sim.control("mesh-state 0")["targets"]:
                    self.assertEqual(t["version"], "2.0.0+0")
                self.assertEqual(len(ro["mesh_members"]), 4)
                out = d.smpgwctl("rollout", "show", str(ro["id"])).stdout.decode()
                lines = [x for x in out.splitlines() if x.strip().startswith("mesh:")]
                self.assertEqual(len(lines), 4, out)
                self.assertTrue(all("apply-success" in x and "distribution" in x for x in lines), out)
                self.direct_path(d, sim, targets)
            except Exception:
                sys.stderr.write(d.read_log())
                raise


    def direct_path(self, d, sim, targets):
        """Targets 0 and 1 reachable directly too (smpsim devices 1, 2)."""
        import json
        direct = []
        for i in (1, 2):
            status, dev = d.api("POST", "/api/v1/devices", {"conn": "udp:127.0.0.1:%d" % (sim.port + i)})
            self.assertIn(status, (200, 201), dev)
            direct.append(dev["id"])
        _, t0 = d.api("PATCH", "/api/v1/devices/%d" % targets[0], {"direct_device": direct[0]}, expect=200)
        self.assertEqual(t0["mesh"]["direct_device"], direct[0])
        # by connection string, over D-Bus (smpgwctl), and off again
        d.smpgwctl("direct-device", str(targets[1]), "udp:127.0.0.1:%d" % (sim.port + 2))
        self.assertEqual(d.api("GET", "/api/v1/devices/%d" % targets[1], expect=200)[1]["mesh"]["direct_device"],
                         direct[1])
        cli = json.loads(d.smpgwctl("device", str(targets[1]), "--json").stdout)["device"]
        self.assertEqual(cli, d.api("GET", "/api/v1/devices/%d" % targets[1], expect=200)[1])
        d.smpgwctl("direct-device", str(targets[1]), "none")
        self.assertIsNone(d.api("GET", "/api/v1/devices/%d" % targets[1], expect=200)[1]["mesh"]["direct_device"])
        d.api("PATCH", "/api/v1/devices/%d" % targets[1], {"direct_device": "udp:127.0.0.1:%d" % (sim.port + 2)},
              expect=200)
        # refused: a device taken, a device that is no mesh target, an unknown one
        status, doc = d.api("PATCH", "/api/v1/devices/%d" % targets[2], {"direct_device": direct[0]})
        self.assertEqual(status, 400, doc)
        self.assertIn("already", doc["error"]["message"])
        status, doc = d.api("PATCH", "/api/v1/devices/%d" % direct[0], {"direct_device": direct[1]})
        self.assertEqual(status, 400, doc)
        status, doc = d.api("PATCH", "/api/v1/devices/%d" % targets[2], {"direct_device": 999999})
        self.assertEqual(status, 404, doc)

        data, _ = mcuimg.make_image((2, 1, 0, 0), 2000, seed=9)
        image = add_image(d, data)
        spec = {"image": image, "targets": {"devices": targets[:2]}, "policy": {"canary": 2, "mesh_path": "direct"}}
        _, plan = d.api("POST", "/api/v1/rollouts/plan", spec, expect=200)
        entry = plan["mesh"][0]
        self.assertEqual(entry["path"], "direct", entry)
        self.assertIn("as mesh_path says", entry["reason"])
        self.assertEqual(sorted(x["direct_device"] for x in entry["direct"]), sorted(direct))
        # the first rollout's distribution measured the multicast
        self.assertTrue(entry["assumptions"]["mesh_rate_measured"], entry)
        self.assertGreater(entry["estimates"]["distributor"]["duration_s"], 0)
        self.assertGreater(entry["estimates"]["direct"]["duration_s"], 0)
        _, ro = d.api("POST", "/api/v1/rollouts", spec, expect=201)
        path = "/api/v1/rollouts/%d" % ro["id"]
        ro = d.wait_for(lambda: (lambda x: x if x["state"] in ("completed", "aborted", "paused") else None)(
            d.api("GET", path, expect=200)[1]), timeout=60, what="the direct rollout to finish")
        self.assertEqual(ro["state"], "completed", ro)
        _, members = d.api("GET", path + "/members", expect=200)
        for m in members["members"]:
            self.assertEqual(m["state"], "succeeded", m)
            self.assertEqual(m["path"], "direct", m)
            self.assertIsNone(m["distribution"], m)
            _, job = d.api("GET", "/api/v1/jobs/%d" % m["job"], expect=200)
            self.assertIn(job["device"], direct)
            self.assertEqual(job["state"], "succeeded", job)
        for i in (1, 2):
            active = [x for x in sim.state(i)["slots"] if x.get("active")]
            self.assertEqual(active[0]["version"], "2.1.0", active)
        out = d.smpgwctl("rollout", "show", str(ro["id"])).stdout.decode()
        lines = [x for x in out.splitlines() if x.strip().startswith("mesh:")]
        self.assertEqual(len(lines), 2, out)
        self.assertTrue(all("direct, job" in x for x in lines), out)
        self.target_boards(d, targets, image)

    def target_boards(self, d, targets, image):
        """An image built for other boards than those the direct devices of
        targets 0 and 1 report: a distribution to them is refused with 409
        incompatible_board naming both (and over D-Bus, with the same
        sentence), unless forced."""
        import subprocess
        d.api("PATCH", "/api/v1/images/" + image, {"boards": ["esp32"]}, expect=200)
        body = {"distributor": d.api("GET", "/api/v1/devices/%d" % targets[0], expect=200)[1]["mesh"]["distributor"],
                "image": image, "targets": targets[:2]}
        status, doc = d.api("POST", "/api/v1/distributions", body)
        self.assertEqual((status, doc["error"]["code"]), (409, "incompatible_board"), doc)
        self.assertIn("mesh targets %d ('smpsim/nrf52840'), %d ('smpsim/nrf52840')" % tuple(targets[:2]),
                      doc["error"]["message"])
        p = subprocess.run(["busctl", "--address=" + d.bus.address, "call", "org.smpgw", "/org/smpgw",
                            "org.smpgw.Manager1", "StartDistribution", "ssasa{sv}", str(body["distributor"]), image,
                            "1", str(targets[0]), "0"], capture_output=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("built for (esp32)", p.stderr.decode())
        self.assertEqual(d.api("GET", "/api/v1/distributions?limit=1000", expect=200)[1]["total"], 1)
        status, doc = d.api("POST", "/api/v1/distributions", dict(body, force=True))
        self.assertEqual(status, 201, doc)
        d.api("DELETE", "/api/v1/distributions/%d" % doc["id"], expect=202)


if __name__ == "__main__":
    unittest.main(verbosity=2)
