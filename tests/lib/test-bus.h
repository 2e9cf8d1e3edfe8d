/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A private dbus-daemon for a test, with tests/bus.conf: the same program
 * and configuration the Python tests start (tests/lib/harness.py, Bus),
 * which lets everyone own any name, send anything and receive it
 * (integration.md (g): without receive_sender, dbus-daemon 1.14 lets
 * Hello hang).  $DBUS_DAEMON names the program (meson sets it; default
 * /usr/bin/dbus-daemon).
 */
#pragma once

#include <sys/types.h>

struct test_bus {
        pid_t pid;
        char address[256];   /* "unix:path=/tmp/dbus-...,guid=..." */
};

/* Starts the bus and waits until it listens.  0, or -ENOENT when there
 * is no dbus-daemon to run (the test then skips, saying so). */
int test_bus_start(struct test_bus *b);
/* SIGTERM, and waits for it. */
void test_bus_stop(struct test_bus *b);
