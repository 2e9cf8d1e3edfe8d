/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A duration histogram with fixed bounds, for /metrics (a Prometheus
 * histogram): how long the loop's callbacks ran, how long REST requests
 * took.  Adding is a bucket search over a dozen bounds, cheap enough for
 * every dispatch of the loop.
 */
#include <stdint.h>
#include <stdio.h>

/* Upper bounds in µs; a last bucket (+Inf) takes the rest. */
#define LATENCY_BOUNDS_USEC \
        { 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000 }
#define LATENCY_N_BOUNDS 12

struct latency_histogram {
        uint64_t buckets[LATENCY_N_BOUNDS + 1]; /* not cumulative; the last is +Inf */
        uint64_t count;
        uint64_t sum_usec;
        uint64_t max_usec;
};

void latency_add(struct latency_histogram *h, uint64_t usec);
/* Writes it as a Prometheus histogram called name (seconds). */
void latency_write_prometheus(FILE *f, const char *name, const char *help, const struct latency_histogram *h);
