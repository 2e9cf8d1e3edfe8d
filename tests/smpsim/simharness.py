# SPDX-License-Identifier: LGPL-2.1-or-later
"""Starts smpsim for a test, waits for "ready", talks to its control socket."""

import json
import os
import socket
import subprocess
import tempfile
import time

SMPSIM = os.environ.get("SMPSIM", "smpsim")


def free_udp_ports(count):
    """A run of `count` consecutive free UDP ports on 127.0.0.1."""
    for _ in range(200):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
        probe.close()
        if base + count > 65000:
            continue
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
    def __init__(self, *args, count=1, udp=True, serial=False, coap=False, env=None):
        self.tmp = tempfile.TemporaryDirectory(prefix="smpsim-test-")
        self.dir = self.tmp.name
        self.control_path = os.path.join(self.dir, "control")
        self.port = free_udp_ports(count) if udp else None
        self.coap_port = free_udp_ports(count) if coap else None
        cmd = [SMPSIM, "--count", str(count), "--control", self.control_path]
        if udp:
            cmd += ["--udp", "127.0.0.1:%d" % self.port]
        if coap:
            cmd += ["--coap", "127.0.0.1:%d" % self.coap_port]
        if serial:
            self.serial_dir = os.path.join(self.dir, "tty")
            cmd += ["--serial", self.serial_dir]
        cmd += list(args)
        self.stderr = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr,
                                     stdin=subprocess.DEVNULL, env=env)
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            self.proc.kill()
            self.stderr.seek(0)
            raise RuntimeError("smpsim did not start: %r %s" % (line, self.stderr.read()))
        self.ctl = None

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
        if self.ctl:
            self.ctl_file.close()
            self.ctl.close()
        self.proc.terminate()
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()
        self.tmp.cleanup()
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        rc = self.stop()
        if exc[0] is None and rc != 0:
            raise RuntimeError("smpsim exited with %d" % rc)
