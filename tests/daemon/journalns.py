#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs a command with a real systemd-journald of its own, as systemd
would run a service whose output goes to the journal.

    unshare --mount --propagation private journalns.py DIR -- COMMAND...

Inside the new mount namespace: a tmpfs over /run (the machine's /run is
not touched), journald started with Storage=volatile and DIR bind-mounted
on /run/log/journal so the journal files are readable from outside
(journalctl --directory DIR), then COMMAND with stdout and stderr
connected to journald's stream socket and $JOURNAL_STREAM set to it, as
systemd does for StandardOutput=journal.  sd_journal_send() in COMMAND
reaches this journald through /run/systemd/journal/socket, the path
libsystemd always uses: nothing in the program under test is pointed
anywhere.  journald's PID goes to DIR/../journald.pid; the caller ends
it.  Needs root (CAP_SYS_ADMIN for the mounts)."""

import ctypes
import os
import socket
import subprocess
import sys
import time

MS_BIND = 4096
JOURNALD = "/lib/systemd/systemd-journald"


def mount(source, target, fstype, flags, data=None):
    libc = ctypes.CDLL(None, use_errno=True)
    # mount(2) directly: mount(8) would record the mounts in the machine's
    # /run/mount/utab, outside the namespace.
    if libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                  data.encode() if data else None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "mount %s on %s: %s" % (source, target, os.strerror(e)))


def main():
    journal_dir = os.path.abspath(sys.argv[1])
    if sys.argv[2] != "--":
        sys.exit("usage: journalns.py DIR -- COMMAND...")
    command = sys.argv[3:]

    mount("tmpfs", "/run", "tmpfs", 0, "mode=0755")
    for d in ("/run/systemd/journal", "/run/systemd/journald.conf.d", "/run/log/journal"):
        os.makedirs(d, exist_ok=True)
    mount(journal_dir, "/run/log/journal", None, MS_BIND)
    with open("/run/systemd/journald.conf.d/test.conf", "w") as f:
        f.write("[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToSyslog=no\nForwardToKMsg=no\n"
                "ForwardToConsole=no\nForwardToWall=no\n")

    env = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
        env.pop(k, None)   # they are the command's, not journald's
    journald = subprocess.Popen([JOURNALD], env=env, stdin=subprocess.DEVNULL)
    with open(os.path.join(os.path.dirname(journal_dir), "journald.pid"), "w") as f:
        f.write("%d\n" % journald.pid)
    deadline = time.monotonic() + 10
    while not (os.path.exists("/run/systemd/journal/socket") and os.path.exists("/run/systemd/journal/stdout")):
        if time.monotonic() > deadline or journald.poll() is not None:
            sys.exit("systemd-journald did not start")
        time.sleep(0.02)

    # The stream protocol's header (systemd's journald-stream.c): identifier,
    # unit id, priority, level prefix, forward to syslog, kmsg, console.
    stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stream.connect("/run/systemd/journal/stdout")
    stream.sendall(b"%s\n\n6\n1\n0\n0\n0\n" % os.path.basename(command[0]).encode())
    stream.shutdown(socket.SHUT_RD)
    os.dup2(stream.fileno(), 1)
    os.dup2(stream.fileno(), 2)
    st = os.fstat(2)
    os.environ["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
