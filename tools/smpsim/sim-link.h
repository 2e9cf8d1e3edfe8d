/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Link emulation for one simulated device: each direction is a FIFO medium
 * with a bandwidth (serialisation time), a one-way latency with jitter, a
 * loss probability and a largest packet (MTU).  Pure computation: the
 * device schedules the resulting times on its event queue.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sim_link_params {
        uint64_t bandwidth;   /* payload bytes per second, each direction; 0 = unlimited */
        uint32_t latency_ms;  /* one-way */
        uint32_t jitter_ms;   /* uniform 0..jitter added to the latency */
        double loss;          /* probability a packet is lost, each direction */
        uint32_t mtu;         /* largest packet in bytes; larger ones are dropped; 0 = none */
};

/* One direction of the medium. */
struct sim_link_dir {
        uint64_t free_at_us;  /* when the medium has sent everything queued */
        uint64_t last_arrival_us; /* keeps the FIFO order despite jitter */
};

/* xorshift64*: small, seedable, good enough for loss and jitter, and
 * reproducible for a given --seed. */
static inline uint64_t sim_rng_next(uint64_t *state) {
        uint64_t x = *state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, 1). */
static inline double sim_rng_uniform(uint64_t *state) {
        return (double) (sim_rng_next(state) >> 11) / (double) (1ULL << 53);
}

static inline bool sim_rng_chance(uint64_t *state, double p) {
        return p > 0 && sim_rng_uniform(state) < p;
}

/* When a packet of `bytes` handed to the medium at now_us arrives at the
 * far end.  Packets arrive in the order they were sent. */
uint64_t sim_link_arrival(const struct sim_link_params *p, struct sim_link_dir *d,
                          uint64_t *rng, uint64_t now_us, size_t bytes);

/* Parses "1M", "125000", "2.5k" (bytes per second; k/M/G are 10^3/6/9). */
int sim_parse_rate(const char *s, uint64_t *ret);
