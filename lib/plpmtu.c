/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "plpmtu.h"
#include "util.h"

void plpmtu_init(struct plpmtu *p, size_t max, size_t seed) {
        *p = (struct plpmtu) {
                .base = MIN((size_t) PLPMTU_BASE, max),
                .max = max,
                .too_big = max + 1,
        };
        p->confirmed = seed ? MIN(MAX(seed, (size_t) PLPMTU_MIN), max) : p->base;
}

static bool range_narrow(const struct plpmtu *p, size_t hi) {
        return hi <= p->confirmed + plpmtu_resolution(p->confirmed);
}

bool plpmtu_complete(const struct plpmtu *p) {
        return p->confirmed >= p->max ||
               (range_narrow(p, p->too_big) && p->too_big_losses >= PLPMTU_MAX_PROBES);
}

static bool in_flight(const struct plpmtu *p, size_t size) {
        for (unsigned i = 0; i < p->n_in_flight; i++)
                if (p->in_flight[i] == size)
                        return true;
        return false;
}

size_t plpmtu_next_probe(const struct plpmtu *p, unsigned flight_max) {
        if (p->n_in_flight >= MIN(flight_max, (unsigned) PLPMTU_FLIGHT_MAX) || plpmtu_complete(p))
                return 0;
        /* below everything lost or still on its way */
        size_t hi = p->too_big;
        for (unsigned i = 0; i < p->n_in_flight; i++)
                hi = MIN(hi, p->in_flight[i]);
        if (hi <= p->confirmed)
                return 0;
        /* the whole width first: when it gets through, nothing is left */
        if (hi > p->max)
                return p->max;
        if (!range_narrow(p, hi)) {
                /* Below probes in flight, the rest of the flight splits
                 * the range evenly (3/4 and 1/2 below a probe of max):
                 * paths are mostly wide (1232 to 1472 bytes), where an
                 * even split narrows the range most.  One at a time, the
                 * range is halved. */
                size_t n = p->n_in_flight;
                if (n > 0)
                        return p->confirmed + (hi - p->confirmed) * (PLPMTU_FLIGHT_MAX + 1 - n) /
                                                      (PLPMTU_FLIGHT_MAX + 2 - n);
                return p->confirmed + (hi - p->confirmed) / 2;
        }
        /* the range is narrow: lose its upper end again to be sure */
        if (hi == p->too_big && !in_flight(p, p->too_big))
                return p->too_big;
        return 0;
}

void plpmtu_probe_sent(struct plpmtu *p, size_t size) {
        if (p->n_in_flight < PLPMTU_FLIGHT_MAX)
                p->in_flight[p->n_in_flight++] = size;
}

static void flight_remove(struct plpmtu *p, size_t size) {
        for (unsigned i = 0; i < p->n_in_flight; i++)
                if (p->in_flight[i] == size) {
                        p->in_flight[i] = p->in_flight[--p->n_in_flight];
                        return;
                }
}

void plpmtu_probe_acked(struct plpmtu *p, size_t size) {
        flight_remove(p, size);
        p->data_losses = 0;
        if (size > p->confirmed)
                p->confirmed = MIN(size, p->max);
        /* a size lost before got through: the loss was bad luck, or the
         * path widened; the range above is open again */
        if (p->too_big <= p->confirmed) {
                p->too_big = p->max + 1;
                p->too_big_losses = 0;
        }
}

void plpmtu_probe_lost(struct plpmtu *p, size_t size) {
        flight_remove(p, size);
        if (size <= p->confirmed || size > p->too_big)
                return; /* says nothing new */
        if (size < p->too_big) {
                p->too_big = size;
                p->too_big_losses = 0;
        }
        p->too_big_losses++;
}

void plpmtu_data_acked(struct plpmtu *p) {
        p->data_losses = 0;
}

bool plpmtu_data_lost(struct plpmtu *p) {
        if (++p->data_losses < PLPMTU_BLACK_HOLE_LOSSES)
                return false;
        p->data_losses = 0;
        if (p->confirmed <= PLPMTU_MIN)
                return false; /* nothing smaller to try: the link is down */
        /* RFC 8899 5.2: back to BASE_PLPMTU and search again; when base
         * itself vanishes the path is narrower than any we assumed (the
         * ERROR state), so smaller packets, a quarter at a time */
        p->too_big = p->confirmed;
        p->too_big_losses = PLPMTU_MAX_PROBES; /* beyond doubt */
        if (p->confirmed > p->base)
                p->confirmed = p->base;
        else
                p->confirmed = MAX(p->confirmed * 3 / 4, (size_t) PLPMTU_MIN);
        return true;
}
