/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpsim as a separate process for the transport tests: started on free
 * loopback ports (or ptys, or a bus), ready once it printed "ready",
 * with its control socket in a temporary directory of its own; gone
 * with the test even when an assertion aborts it (PR_SET_PDEATHSIG).
 * $SMPSIM names the program (meson sets it).
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct test_smpsim_options {
        unsigned count;             /* devices; 0: 1 */
        bool udp;                   /* --udp 127.0.0.1:PORT: device i on udp_port + i */
        unsigned udp_free_above;    /* that many ports above the devices' free as well
                                     * (for probes nobody answers) */
        bool coap;                  /* --coap 127.0.0.1:PORT: device i on coap_port + i */
        bool serial;                /* --serial DIR: ptys, see test_smpsim_tty() */
        const char *ble;            /* --ble BUS (a bus address), or NULL */
        const char *const *args;    /* more arguments (NULL-ended), before those
                                     * given to test_smpsim_start(); may be NULL */
};

struct test_smpsim {
        pid_t pid;
        unsigned count;
        uint16_t udp_port, coap_port;   /* the first device's, or 0 */
        char dir[64];                   /* a directory of its own */
        char control[96];               /* its control socket (doc/smpsim.md) */
};

/* Starts smpsim with the options and more arguments (NULL-ended) and
 * waits for "ready" (10 s at most); aborts the test when it does not
 * come. */
void test_smpsim_start(struct test_smpsim *s, const struct test_smpsim_options *o, ...)
        __attribute__((sentinel));
void test_smpsim_startv(struct test_smpsim *s, const struct test_smpsim_options *o, va_list ap);
/* SIGTERM; smpsim must exit 0.  Removes its directory. */
void test_smpsim_stop(struct test_smpsim *s);
/* SIGKILL (a crash of whatever smpsim plays, bluetoothd say).  Removes
 * its directory. */
void test_smpsim_kill(struct test_smpsim *s);

/* One command on the control socket; the answer line (JSON) in buf. */
void test_smpsim_control(const struct test_smpsim *s, const char *cmd, char *buf, size_t size);

/* The pty behind device index's serial link (serial: connection strings
 * name devices under /dev/). */
void test_smpsim_tty(const struct test_smpsim *s, unsigned index, char *buf, size_t size);

/* A port P with P..P+n-1 free on 127.0.0.1 for UDP, and P+n..P+n+extra-1
 * too. */
uint16_t test_free_udp_ports(unsigned n, unsigned extra);
