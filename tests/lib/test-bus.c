/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-bus.h"
#include "test-util.h"

#define START_TIMEOUT_MSEC 10000

int test_bus_start(struct test_bus *b) {
        const char *daemon = getenv("DBUS_DAEMON");
        char conf[512];
        int out[2];

        if (!daemon || !*daemon)
                daemon = "/usr/bin/dbus-daemon";
        if (access(daemon, X_OK) < 0)
                return -ENOENT;
        snprintf(conf, sizeof(conf), "--config-file=%s", TEST_BUS_CONF);
        const char *argv[] = { daemon, conf, "--nofork", "--print-address=1", NULL };

        memset(b, 0, sizeof(*b));
        ASSERT_OK(pipe2(out, O_CLOEXEC));
        b->pid = fork();
        ASSERT_TRUE(b->pid >= 0);
        if (b->pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                dup2(out[1], STDOUT_FILENO);
                execv(daemon, (char **) argv);
                _exit(127);
        }
        close(out[1]);
        /* It prints the address once it listens. */
        size_t got = 0;
        while (got < sizeof(b->address) - 1) {
                struct pollfd p = { .fd = out[0], .events = POLLIN };
                ASSERT_EQ(poll(&p, 1, START_TIMEOUT_MSEC), 1);
                ASSERT_EQ(read(out[0], b->address + got, 1), 1);
                if (b->address[got] == '\n')
                        break;
                got++;
        }
        b->address[got] = 0;
        close(out[0]);
        ASSERT_TRUE(strncmp(b->address, "unix:", 5) == 0);
        return 0;
}

void test_bus_stop(struct test_bus *b) {
        if (b->pid <= 0)
                return;
        (void) kill(b->pid, SIGTERM);
        (void) waitpid(b->pid, NULL, 0);
        b->pid = 0;
}
