/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "sim-link.h"

uint64_t sim_link_arrival(const struct sim_link_params *p, struct sim_link_dir *d,
                          uint64_t *rng, uint64_t now_us, size_t bytes) {
        uint64_t start = now_us > d->free_at_us ? now_us : d->free_at_us;
        uint64_t tx_us = p->bandwidth > 0 ? (uint64_t) bytes * 1000000ULL / p->bandwidth : 0;
        d->free_at_us = start + tx_us;

        uint64_t delay_us = (uint64_t) p->latency_ms * 1000;
        if (p->jitter_ms > 0)
                delay_us += (uint64_t) (sim_rng_uniform(rng) * p->jitter_ms * 1000.0);

        uint64_t arrival = d->free_at_us + delay_us;
        /* a link does not reorder: jitter stretches, never overtakes */
        if (arrival < d->last_arrival_us)
                arrival = d->last_arrival_us;
        d->last_arrival_us = arrival;
        return arrival;
}

int sim_parse_rate(const char *s, uint64_t *ret) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno != 0 || end == s || !isfinite(v) || v < 0)
                return -EINVAL;
        switch (*end) {
        case 0:
                break;
        case 'k': case 'K':
                v *= 1e3;
                end++;
                break;
        case 'M':
                v *= 1e6;
                end++;
                break;
        case 'G':
                v *= 1e9;
                end++;
                break;
        default:
                return -EINVAL;
        }
        if (*end != 0 || v > 1e15)
                return -EINVAL;
        *ret = (uint64_t) v;
        return 0;
}
