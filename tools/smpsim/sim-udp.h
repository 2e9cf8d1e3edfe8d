/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Raw SMP over UDP (Zephyr smp_udp.c): one datagram is one SMP packet and
 * the answer goes back to the sender.  Device i listens on port + i. */
#pragma once

#include <stdint.h>
#include <sys/socket.h>

#include "sim.h"

/* Parses "HOST:PORT" or "[V6]:PORT" into a socket address. */
int sim_parse_endpoint(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len);

/* Sets the port of an IPv4/IPv6 address. */
void sim_sockaddr_set_port(struct sockaddr_storage *a, uint16_t port);

int sim_udp_open(struct sim *sim, struct sim_device *d, const struct sockaddr_storage *base,
                 socklen_t base_len, uint16_t port);
void sim_udp_send(struct sim_device *d, const struct sim_route *route, const uint8_t *pkt, size_t len);
void sim_udp_close(struct sim_device *d);
