/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* [discovery] udp= and coap= ranges.  A range accepted has 1 to 4096
 * targets, and each target's connection string is itself a range of
 * exactly one target (what discovery probes is what the grammar says). */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "discovery-range.h"
#include "smpgw/smp-transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char text[SMP_CONN_MAX + 8];
        struct discovery_range range, one;

        if (size >= sizeof(text))
                return 0;
        memcpy(text, data, size);
        text[size] = 0;
        if (discovery_range_parse(text, &range) < 0)
                return 0;
        assert(range.n_targets >= 1 && range.n_targets <= DISCOVERY_RANGE_TARGETS_MAX);
        assert(range.n_targets == range.n_addrs * range.n_ports);
        assert(range.port_first >= 1 && range.port_first <= range.port_last);
        /* The first, the last and a few between; all 4096 would make each
         * run slow for nothing. */
        for (uint32_t i = 0; i < range.n_targets; i += range.n_targets / 8 + 1) {
                char conn[SMP_CONN_MAX + 16];
                for (int last = 0; last < 2; last++) {
                        uint32_t t = last ? range.n_targets - 1 : i;
                        assert(discovery_range_target(&range, "coap", t, conn, sizeof(conn)) == 0);
                        assert(strncmp(conn, "coap:", 5) == 0);
                        assert(discovery_range_parse(conn + 5, &one) == 0);
                        assert(one.n_targets == 1);
                        assert(one.port_first == range.port_first + t % range.n_ports);
                }
        }
        assert(discovery_range_target(&range, "coap", range.n_targets, (char[64]) {}, 64) == -EINVAL);
        return 0;
}
