#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Programs run from the build tree, as a developer runs them (issue 10):

  - build/tools/smpgwctl/smpgwctl finds the build's transport plugins with
    no $SMPGW_PLUGIN_DIR at all, and the same program copied out of the
    build tree does not look there;
  - a missing plugin is reported with every directory searched, a broken
    one with dlerror()'s reason;
  - smpgwd started without any transport says so at start, naming the
    directory;
  - `meson devenv` puts smpgwd on PATH and sets $SMPGW_PLUGIN_DIR.

Environment: SMPGWCTL, SMPGWD, SMPSIM, MESON, BUILD_ROOT."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from harness import Sim  # noqa: E402

SMPGWCTL = os.environ["SMPGWCTL"]
SMPGWD = os.environ["SMPGWD"]
MESON = os.environ.get("MESON", "meson")
BUILD_ROOT = os.environ["BUILD_ROOT"]
TRANSPORT = 6


def clean_env(**extra):
    """The environment of a developer's shell: no plugin directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("SMPGW_PLUGIN_DIR", "MESON_DEVENV", "JOURNAL_STREAM")}
    env.update(extra)
    return env


def ctl(*args, program=SMPGWCTL, env=None):
    return subprocess.run([program] + list(args), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env=env if env is not None else clean_env())


class Smpgwctl(unittest.TestCase):
    def test_finds_the_build_plugins(self):
        with Sim() as sim:
            r = ctl("--conn", "udp:127.0.0.1:%d" % sim.port, "echo", "from the build tree")
            self.assertEqual((r.returncode, r.stdout), (0, "from the build tree\n"), r.stderr)

    def test_a_copy_outside_the_build_tree_does_not_look_there(self):
        with tempfile.TemporaryDirectory(prefix="smpgw-outside-") as tmp:
            copy = os.path.join(tmp, "smpgwctl")
            shutil.copy2(SMPGWCTL, copy)
            # The library from the build tree all the same: what decides
            # is where the program is.
            r = ctl("--conn", "udp:127.0.0.1:9", "echo", "x", program=copy,
                    env=clean_env(LD_LIBRARY_PATH=os.path.join(BUILD_ROOT, "lib")))
            self.assertEqual(r.returncode, TRANSPORT, r.stderr)
            self.assertIn("no transport plugin for 'udp:'", r.stderr)
            self.assertNotIn(BUILD_ROOT, r.stderr)

    def test_missing_plugin_names_every_directory(self):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            r = ctl("--conn", "udp:127.0.0.1:9", "echo", "x", env=clean_env(SMPGW_PLUGIN_DIR=a + ":" + b))
            self.assertEqual(r.returncode, TRANSPORT, r.stderr)
            self.assertIn("smpgw-transport-udp.so is in none of: %s, %s" % (a, b), r.stderr)

    def test_broken_plugin_says_why(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "smpgw-transport-udp.so"), "w") as f:
                f.write("this is not a shared library\n")
            r = ctl("--conn", "udp:127.0.0.1:9", "echo", "x", env=clean_env(SMPGW_PLUGIN_DIR=d))
            self.assertEqual(r.returncode, TRANSPORT, r.stderr)
            self.assertIn(os.path.join(d, "smpgw-transport-udp.so") + " cannot be loaded: ", r.stderr)
            self.assertTrue("invalid ELF header" in r.stderr or "file too short" in r.stderr, r.stderr)


def free_tcp_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Smpgwd(unittest.TestCase):
    def test_no_transport_is_logged_at_start(self):
        with tempfile.TemporaryDirectory() as empty, tempfile.TemporaryDirectory() as state:
            rest = "127.0.0.1:%d" % free_tcp_port()
            p = subprocess.Popen([SMPGWD, "--state-dir", state, "--bus", "none", "--rest", rest,
                                  "--plugin-dir", empty], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, env=clean_env())
            try:
                line, log = "", ""
                deadline = time.monotonic() + 20
                while "running" not in line and time.monotonic() < deadline and p.poll() is None:
                    line = p.stdout.readline()
                    log += line
            finally:
                p.terminate()
                log += p.communicate(timeout=30)[0]
            self.assertIn("No transport plugin (smpgw-transport-*.so) in %s: no device can be reached" % empty, log)


class Devenv(unittest.TestCase):
    def test_devenv(self):
        out = subprocess.run([MESON, "devenv", "-C", BUILD_ROOT, "--dump"], capture_output=True, text=True,
                             check=True, env=clean_env()).stdout
        env = {}
        for line in out.splitlines():
            if "=" in line and not line.startswith("export"):
                k, v = line.split("=", 1)
                env[k] = v.strip('"')
        self.assertEqual(env.get("SMPGW_PLUGIN_DIR"), os.path.join(BUILD_ROOT, "plugins"))
        path = env.get("PATH", "").split(":")
        self.assertIn(os.path.join(BUILD_ROOT, "daemon"), path)
        self.assertIn(os.path.join(BUILD_ROOT, "tools", "smpgwctl"), path)


if __name__ == "__main__":
    unittest.main(verbosity=2)
