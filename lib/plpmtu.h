/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Datagram packetization-layer path MTU discovery (RFC 8899) for the
 * image upload, as a state machine without I/O or clocks: the upload
 * sends the probes, notices their fate and feeds it in here.
 *
 * Sizes are whole SMP packets (header and body) in bytes: on UDP the
 * datagram's payload, the unit of the udp transport's ",mtu=".
 *
 *  - base (BASE_PLPMTU) is what any path is taken to carry: data starts
 *    there unless a seed says more;
 *  - max (MAX_PLPMTU) is the upper bound: the transport's packet limit
 *    or the device's buffer, whichever is smaller;
 *  - confirmed (the PLPMTU) is the size data packets use: a size a probe
 *    got through with, base, or a seed from an earlier connection, taken
 *    as confirmed until data of that size stops arriving;
 *  - the search probes max first (a path as wide as the transport, or a
 *    ",mtu=" the user gave, is confirmed at once), then halves the range
 *    between confirmed and the smallest size lost, one probe at a time,
 *    or, while the link is idle (the first chunk waits out the slot
 *    erase), several at once, largest first;
 *  - one loss makes a size the search's upper end at once, as it mostly
 *    is, so the search costs one round trip per step; the search ends
 *    only when that end was lost PLPMTU_MAX_PROBES times, and a size
 *    lost by bad luck that gets through later reopens the range above;
 *  - PLPMTU_BLACK_HOLE_LOSSES loss episodes of data in a row with nothing
 *    answered (the path narrowed, or the seed was wrong) take confirmed
 *    back to base and search again; at base or below, confirmed shrinks
 *    by a quarter down to PLPMTU_MIN (paths narrower than base).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The UDP payload of a 576-byte IPv4 datagram, which every IPv4 host
 * must accept (RFC 1122, EMTU_R); IPv6 paths carry 1232 at least. */
#define PLPMTU_BASE 548u
/* Below base, after black holes: an SMP upload chunk still carries data. */
#define PLPMTU_MIN 128u
/* Losses of the search's upper end before the search ends (RFC 8899
 * MAX_PROBES, 3 by default; two tell a size limit from 2 % random loss
 * 99.8 % of the time, and our probes' losses are seen within a round
 * trip). */
#define PLPMTU_MAX_PROBES 2u
/* Probes in flight at most: several only while the link is idle. */
#define PLPMTU_FLIGHT_MAX 3u
/* Loss episodes of data packets in a row, with no answer between them,
 * that mean packets of the confirmed size no longer get through. */
#define PLPMTU_BLACK_HOLE_LOSSES 2u
/* The search stops when the range left above confirmed (c) is at most
 *   max(16, min(c / 16, c * c / 16384)) bytes.
 * A probe that gets through costs its size on the link (half a per cent
 * of a 200 KB upload), while a chunk Δ bytes larger saves only about
 * 30 Δ / c² of it (30 bytes of SMP header and CBOR per chunk): under
 * 0.2 % for Δ = c² / 16384.  Where chunks are small the window of
 * chunks in flight, not the link, tends to bound the rate, and every
 * byte counts: c / 16 keeps 94 % of the path at least, 16 bytes keeps
 * the search short. */
#define PLPMTU_RESOLUTION_MIN 16u
#define PLPMTU_RESOLUTION_DIV 16u
#define PLPMTU_RESOLUTION_SQ_DIV 16384u

static inline size_t plpmtu_resolution(size_t confirmed) {
        size_t rel = confirmed / PLPMTU_RESOLUTION_DIV, sq = confirmed * confirmed / PLPMTU_RESOLUTION_SQ_DIV;
        size_t r = rel < sq ? rel : sq;
        return r > PLPMTU_RESOLUTION_MIN ? r : PLPMTU_RESOLUTION_MIN;
}

struct plpmtu {
        size_t base, max;
        size_t confirmed;
        size_t too_big;          /* smallest size lost; max + 1: none */
        unsigned too_big_losses; /* how often too_big was lost */
        size_t in_flight[PLPMTU_FLIGHT_MAX];
        unsigned n_in_flight;
        unsigned data_losses;    /* loss episodes of data in a row */
};

/* max: the upper bound; seed: a size an earlier connection confirmed, or
 * 0.  A seed over max is taken as max. */
void plpmtu_init(struct plpmtu *p, size_t max, size_t seed);

/* The size to probe next while fewer than flight_max probes are in
 * flight, or 0: none is useful now (the search is complete, or waits for
 * the probes in flight).  Send sizes in the order they come: each is
 * smaller than those in flight. */
size_t plpmtu_next_probe(const struct plpmtu *p, unsigned flight_max);
bool plpmtu_complete(const struct plpmtu *p);

/* A probe of size went out; it came back (any answer: it arrived); it was
 * lost (its timeout, or an answer to a later packet came first). */
void plpmtu_probe_sent(struct plpmtu *p, size_t size);
void plpmtu_probe_acked(struct plpmtu *p, size_t size);
void plpmtu_probe_lost(struct plpmtu *p, size_t size);

/* A data packet was answered: packets get through. */
void plpmtu_data_acked(struct plpmtu *p);
/* A loss episode of data packets with nothing answered.  Returns true
 * when it was a black hole and confirmed went down. */
bool plpmtu_data_lost(struct plpmtu *p);
