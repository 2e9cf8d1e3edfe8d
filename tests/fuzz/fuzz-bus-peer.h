/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The sd-bus connection the bus targets (fuzz-bluez-props,
 * fuzz-bus-push-options) hand their messages to: the server end of a
 * socket pair with anonymous authentication, the messages written into
 * the other end, so that every message is one sd-bus parsed off the wire.
 *
 * Setting one up (a socket pair, sd_bus_start() reading and setting a
 * dozen socket options, the authentication) took more than half of each
 * input's time, so it is kept from one input to the next, but only while
 * it is as a new one is after the authentication: every byte written
 * read, nothing queued either way, still open.  An input that leaves it
 * otherwise (an error, a message sd-bus refused, more messages than the
 * target processes) closes it, and the next input gets a new one: an
 * input does alone what it does after any other.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-bus.h>

struct fuzz_bus_peer {
        sd_bus *bus;
        int fd; /* the end the messages are written into */
};

#define FUZZ_BUS_PEER_INIT \
        { .fd = -1 }

/* The connection, set up and authenticated if there is none; then the
 * messages (whole, as the target framed them) are written into it. */
sd_bus *fuzz_bus_peer_write(struct fuzz_bus_peer *p, sd_id128_t server_id, const uint8_t *messages, size_t len);

/* After the input: r is what the last sd_bus_process() returned, or a
 * negative errno when the target stopped before sd-bus had read it all;
 * only when it is 0 and the connection is clean is it kept. */
void fuzz_bus_peer_done(struct fuzz_bus_peer *p, int r);
