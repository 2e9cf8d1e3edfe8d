#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""smpgwd with a large fleet (doc/smpgwd.md, "Load"): one discovery round
over a udp range of thousands of smpsim devices finds every one of them;
list pages served from each device's cached JSON text say what a fresh
GET of the device says, after every kind of change.
No timed assertions: what is checked is what was found, not how fast
(tools/bench/scale measures that)."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from daemonharness import Daemon, Sim  # noqa: E402

# One range at the limit of the grammar: every probe of a round is sent
# before the first answers are read, if the plugin does not pace them.
FLEET = 4096


def log_text(d):
    d.log.flush()
    with open(d.log_path) as f:
        return f.read()


class Discovery(unittest.TestCase):
    def test_one_round_finds_a_full_range(self):
        with Sim(count=FLEET) as sim, \
                Daemon(config="[discovery]\ninterval=86400\nudp=127.0.0.1:%d-%d\n"
                       % (sim.port, sim.port + FLEET - 1), args=["--debug"], bus=False) as d:
            # The round is over when discovery says so; the count is what
            # that one round found.
            d.wait_for(lambda: "Discovery round finished" in log_text(d), timeout=240, interval=0.5,
                       what="the end of the first discovery round")
            _, doc = d.api("GET", "/api/v1/devices?limit=1", expect=200)
            self.assertEqual(doc["total"], FLEET)
            _, doc = d.api("GET", "/api/v1/devices?limit=1000&offset=%d" % (FLEET - 1000), expect=200)
            self.assertTrue(all(dev["source"] == "discovery" for dev in doc["devices"]))


class Pages(unittest.TestCase):
    def page(self, d):
        _, page = d.api("GET", "/api/v1/devices?limit=100", expect=200)
        return {dev["id"]: dev for dev in page["devices"]}

    def page_matches_devices(self, d):
        _, page = d.api("GET", "/api/v1/devices?limit=100", expect=200)
        self.assertEqual(page["total"], len(page["devices"]))
        self.assertEqual((page["limit"], page["offset"]), (100, 0))
        for item in page["devices"]:
            _, one = d.api("GET", "/api/v1/devices/%d" % item["id"], expect=200)
            # A probe may see it again between the two requests: those
            # two times may only have moved on.
            for key in ("last_seen", "last_probe"):
                if item[key] is not None:
                    self.assertGreaterEqual(one[key], item[key])
                one[key] = item[key]
            self.assertEqual(item, one)
        return {dev["id"]: dev for dev in page["devices"]}

    def test_cached_items_follow_changes(self):
        with Sim(count=3) as sim, Daemon(config="[discovery]\nenabled=no\n", bus=False) as d:
            ids = [d.api("POST", "/api/v1/devices", {"conn": "udp:127.0.0.1:%d" % (sim.port + i)},
                         expect=201)[1]["id"] for i in range(3)]
            # Probed: state, params, slots, os_info change behind the page's back.
            d.wait_for(lambda: all(dev["state"] == "online" and dev["images"] for dev in self.page(d).values()),
                       what="devices online")
            before = self.page_matches_devices(d)
            d.api("PATCH", "/api/v1/devices/%d" % ids[1], {"name": "re\"named\\ \u00e9"}, expect=200)
            after = self.page_matches_devices(d)
            self.assertEqual(after[ids[1]]["name"], "re\"named\\ \u00e9")
            self.assertEqual(after[ids[0]], before[ids[0]])
            # Seen again (a probe): last_seen and last_probe move on.
            d.api("POST", "/api/v1/devices/%d/probe" % ids[2], expect=202)
            d.wait_for(lambda: self.page(d)[ids[2]]["last_probe"] != before[ids[2]]["last_probe"],
                       what="the probe seen in the page")
            self.page_matches_devices(d)
            # Gone: off the page.
            d.api("DELETE", "/api/v1/devices/%d" % ids[0], expect=204)
            self.assertNotIn(ids[0], self.page_matches_devices(d))


if __name__ == "__main__":
    unittest.main()
