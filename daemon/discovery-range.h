/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Discovery ranges, the values of [discovery] udp= and coap=:
 *
 *   HOST:PORT[-PORT]              HOST a numeric IPv4 address, "localhost"
 *                                 or an IPv6 address in brackets (a scope
 *                                 may follow '%': [fe80::1%eth0])
 *   A.B.C.D-A.B.C.E:PORT[-PORT]   an IPv4 address range
 *
 * at most DISCOVERY_RANGE_TARGETS_MAX targets (addresses × ports), the
 * whole at most SMP_CONN_MAX bytes.  conf.c refuses a configuration
 * with a range this parser refuses, so discovery.c never meets one; the
 * udp plugin parses the same grammar again for its own probe.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define DISCOVERY_RANGE_TARGETS_MAX 4096u

struct discovery_range {
        /* The host as written for a single host ("localhost",
         * "[fe80::1%eth0]"); empty for an IPv4 range. */
        char host[64];
        uint32_t addr_first, addr_last;  /* IPv4 range, host byte order */
        uint16_t port_first, port_last;
        uint32_t n_addrs, n_ports, n_targets;
};

/* -EINVAL: not the grammar above (a reversed port or address range, port
 * 0, a hostname); -E2BIG: more than DISCOVERY_RANGE_TARGETS_MAX targets;
 * -ENAMETOOLONG: longer than SMP_CONN_MAX. */
int discovery_range_parse(const char *text, struct discovery_range *ret);

/* The connection string "scheme:HOST:PORT" of target i (addresses
 * outer, ports inner), i < n_targets.  -ENOBUFS when it does not fit. */
int discovery_range_target(const struct discovery_range *range, const char *scheme, uint32_t i, char *buf,
                           size_t size);
