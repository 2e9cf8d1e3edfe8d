/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A bare transport link for transport tests, and what came back over
 * it.  Every byte received is kept and cut into SMP frames by the
 * header's length, so packet transports (udp, coap, serial: whole frames
 * per receive()) and stream transports (ble: pieces) are read the same
 * way.  Plus the SMP echo request every transport test sends and the
 * check of its answer.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "smpgw/smp-context.h"
#include "smpgw/smp-transport.h"

/* What one client keeps at most (a test that receives more is wrong). */
#define TEST_CLIENT_RX_MAX (4u << 20)
/* test_client_frame()'s index for the last whole frame. */
#define TEST_CLIENT_LAST UINT32_MAX

struct test_client {
        sd_event *event;                /* referenced */
        const struct smp_transport *t;
        struct smp_link *link;          /* NULL once closed */
        uint8_t *rx;                    /* bytes received since test_client_clear() */
        size_t rx_len, rx_cap;
        size_t whole;                   /* rx[0..whole) is whole frames */
        size_t last_off;                /* where the last whole frame starts */
        unsigned frames;                /* whole frames since test_client_clear() */
        unsigned pieces;                /* receive() calls (not reset by clear) */
        unsigned writable;              /* writable() calls */
        bool closed;                    /* closed() came ... */
        int closed_err;                 /* ... with this (negative) error */
        bool close_in_receive;          /* close the link from inside receive() */
};

/* Opens a bare link to conn (parsed in ctx) on event.  Returns the
 * link's result, or the parser's (-EINVAL for a string the transport's
 * grammar refuses); on failure there is nothing to close. */
int test_client_open(struct test_client *c, struct smp_context *ctx, sd_event *event, const char *conn);
/* Closes the link (if open), runs the loop once (nothing of the link may
 * be left in it) and frees what the client holds. */
void test_client_close(struct test_client *c);
/* Forgets the frames received so far. */
void test_client_clear(struct test_client *c);

/* Runs the loop until `frames` whole frames arrived since the last clear
 * (or the link closed); returns whether they did. */
bool test_client_wait(struct test_client *c, unsigned frames, uint64_t timeout_usec);
/* Runs the loop until closed() came; returns whether it did. */
bool test_client_wait_closed(struct test_client *c, uint64_t timeout_usec);

/* The index-th whole frame since the last clear (TEST_CLIENT_LAST: the
 * last one); aborts when there is none. */
const uint8_t *test_client_frame(const struct test_client *c, unsigned index, size_t *ret_len);

/* An SMP v2 echo request (os group, write) of text; returns its size. */
size_t test_echo_frame(uint8_t seq, const char *text, uint8_t *out, size_t cap);
/* Checks that frame is the SMP v2 answer to echo seq, and says text. */
void test_check_echo(const uint8_t *frame, size_t len, uint8_t seq, const char *text);
/* The same for the client's index-th frame (TEST_CLIENT_LAST: the last). */
void test_client_check_echo(const struct test_client *c, unsigned index, uint8_t seq, const char *text);
