/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SMP over CoAP the way newtmgr's OIC variant ("OMP") does it: every
 * request is a confirmable PUT to /omgr whose payload is one CBOR map of
 * the command's fields plus "_h", the 8-byte SMP header as a byte string.
 * Device i listens on PORT+i; one libcoap context serves all devices,
 * driven by the simulator's sd-event loop.
 */
#pragma once

#include "sim.h"

/* Opens one CoAP endpoint per device at ADDR:PORT+i. */
int sim_coap_open(struct sim *sim, const char *endpoint);

/* Makes every device answer a multicast GET /.well-known/core sent to
 * GROUP (ADDR[:PORT], IPv6 in brackets with %IF for link-local scope;
 * NULL or "": 224.0.1.187, or ff05::fd for an IPv6 --coap address; port
 * 5683), each from its own port, as devices on a LAN would.  Call after
 * sim_coap_open(). */
int sim_coap_multicast(struct sim *sim, const char *group);

/* Sends an answer (an SMP frame) back for the request route->cookie names. */
void sim_coap_send(struct sim_device *d, const struct sim_route *route, const uint8_t *frame, size_t len);

void sim_coap_close(struct sim *sim);
