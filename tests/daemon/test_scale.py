#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""smpgwd with a large fleet (doc/smpgwd.md, "Load"): one discovery round
over a udp range of thousands of smpsim devices finds every one of them.
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


if __name__ == "__main__":
    unittest.main()
