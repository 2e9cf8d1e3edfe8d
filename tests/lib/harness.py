# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the Python tests share (the C tests have the same in tests/lib/*.c):

  Sim       smpsim as a process: free ports, "ready", its control socket
  Bus       a private dbus-daemon with tests/bus.conf
  require(), require_program(), skip()
            a test that cannot run here says SKIP with the reason (exit 77,
            which meson reports as skipped); call them before unittest.main(),
            as unittest reports an exit from inside a test as an error

Tests put this directory on sys.path:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))

Environment (tests/meson.build sets it): SMPSIM, DBUS_DAEMON."""

import importlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SMPSIM = os.environ.get("SMPSIM", "smpsim")
DBUS_DAEMON = os.environ.get("DBUS_DAEMON") or shutil.which("dbus-daemon") or "dbus-daemon"
BUS_CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bus.conf")

# meson's exit code for a test that did not run
SKIP = 77


def skip(reason):
    """Ends the test program as skipped, saying why."""
    print("SKIP: " + reason, flush=True)
    sys.exit(SKIP)


def require(module, package):
    """Imports a module the test needs (import it again by name after
    this), or skips, naming the Debian package that has it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        skip("needs the Python module %s (Debian package %s; tools/deps.sh): %s" % (module, package, e))


def require_program(program, why=""):
    """The path of a program the test needs (a name on PATH or a path),
    or skips."""
    path = shutil.which(program) if not os.path.isabs(program) else (program if os.access(program, os.X_OK)
                                                                       else None)
    if not path:
        skip("needs %s%s" % (program, why))
    return path


def ephemeral_port_range():
    """The ports the kernel hands out to sockets bound to port 0, and
    to a connect() or send() on an unbound socket."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_udp_ports(count):
    """A run of `count` consecutive free UDP ports on 127.0.0.1, below
    the kernel's ephemeral range.  A port that is free now is only free
    until somebody binds it: inside the ephemeral range that is any
    socket of any process (smpgwd's own UDP links among them), so a
    smpsim started a moment later found its port taken now and then;
    below it only another test's explicit choice can take it, and Sim
    starts again on another range when that happens."""
    low, _ = ephemeral_port_range()
    first, last = 10000, max(10001, low - count - 1)
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(first, last)
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


class Sim:
    """smpsim with `count` devices, ready once it printed "ready".  udp and
    coap pick free ports unless given one (an int: the first device's);
    ble is a bus address for its fake org.bluez."""

    START_ATTEMPTS = 5

    def __init__(self, *args, count=1, udp=True, serial=False, coap=False, ble=None, env=None):
        # Ports we picked may be taken between the pick and smpsim's bind
        # (another test picking the same range): pick again and restart.
        for attempt in range(1, self.START_ATTEMPTS + 1):
            try:
                self._start(args, count, udp, serial, coap, ble, env)
                return
            except RuntimeError as e:
                picked = udp is True or coap is True
                if not picked or "in use" not in str(e) or attempt == self.START_ATTEMPTS:
                    raise
                self.stderr.close()
                self.tmp.cleanup()

    def _start(self, args, count, udp, serial, coap, ble, env):
        self.tmp = tempfile.TemporaryDirectory(prefix="smpsim-test-")
        self.dir = self.tmp.name
        self.control_path = os.path.join(self.dir, "control")
        self.port = (udp if udp is not True else free_udp_ports(count)) if udp else None
        self.coap_port = (coap if coap is not True else free_udp_ports(count)) if coap else None
        cmd = [SMPSIM, "--count", str(count), "--control", self.control_path]
        if udp:
            cmd += ["--udp", "127.0.0.1:%d" % self.port]
        if coap:
            cmd += ["--coap", "127.0.0.1:%d" % self.coap_port]
        if serial:
            self.serial_dir = os.path.join(self.dir, "tty")
            cmd += ["--serial", self.serial_dir]
        if ble:
            cmd += ["--ble", ble]
        cmd += list(args)
        self.stderr = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr,
                                     stdin=subprocess.DEVNULL, env=env)
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("smpsim did not start: %r %s" % (line, self.read_stderr()))
        self.ctl = None

    def read_stderr(self):
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()[-4000:]

    def serial_path(self, dev=0):
        return os.path.join(self.serial_dir, "smpsim-%04d" % dev)

    def serial_device(self, dev=0):
        """The pty behind serial_path(): serial: connection strings name
        devices under /dev/ (doc/connection-strings.md)."""
        return os.path.realpath(self.serial_path(dev))

    def control(self, line):
        if self.ctl is None:
            self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.ctl.connect(self.control_path)
            self.ctl_file = self.ctl.makefile("rb")
        self.ctl.sendall(line.encode() + b"\n")
        return json.loads(self.ctl_file.readline())

    def state(self, dev=0):
        return self.control("state %d" % dev)

    def wait_booted(self, dev=0, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.state(dev)["rebooting"]:
                return
            time.sleep(0.02)
        raise RuntimeError("device %d did not boot" % dev)

    def stop(self):
        """SIGTERM; returns smpsim's exit code (0 for a clean exit)."""
        if self.ctl:
            self.ctl_file.close()
            self.ctl.close()
            self.ctl = None
        self.proc.terminate()
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc.stdout.close()
        self.stderr_text = self.read_stderr()   # for reports after stop()
        self.stderr.close()
        self.tmp.cleanup()
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        rc = self.stop()
        if exc[0] is None and rc != 0:
            raise RuntimeError("smpsim exited with %d" % rc)


class Bus:
    """A private dbus-daemon: tests/bus.conf unless `config` names another
    configuration file.  Gone with stop(), or with the with-block."""

    def __init__(self, config=None):
        out = subprocess.check_output(
            [DBUS_DAEMON, "--config-file=" + (config or BUS_CONF), "--fork", "--print-address=1",
             "--print-pid=1"], stdin=subprocess.DEVNULL)
        lines = out.decode().split()
        self.address = lines[0]
        self.pid = int(lines[1])

    def stop(self):
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
