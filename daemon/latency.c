/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>

#include "latency.h"

static const uint64_t latency_bounds_usec[LATENCY_N_BOUNDS] = LATENCY_BOUNDS_USEC;

void latency_add(struct latency_histogram *h, uint64_t usec) {
        unsigned i = 0;

        while (i < LATENCY_N_BOUNDS && usec > latency_bounds_usec[i])
                i++;
        h->buckets[i]++;
        h->count++;
        h->sum_usec += usec;
        if (usec > h->max_usec)
                h->max_usec = usec;
}

void latency_write_prometheus(FILE *f, const char *name, const char *help, const struct latency_histogram *h) {
        uint64_t cumulative = 0;

        fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
        for (unsigned i = 0; i < LATENCY_N_BOUNDS; i++) {
                cumulative += h->buckets[i];
                fprintf(f, "%s_bucket{le=\"%" PRIu64 ".%06" PRIu64 "\"} %" PRIu64 "\n", name,
                        latency_bounds_usec[i] / 1000000u, latency_bounds_usec[i] % 1000000u, cumulative);
        }
        fprintf(f, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, h->count);
        fprintf(f, "%s_sum %" PRIu64 ".%06" PRIu64 "\n", name, h->sum_usec / 1000000u, h->sum_usec % 1000000u);
        fprintf(f, "%s_count %" PRIu64 "\n", name, h->count);
}
