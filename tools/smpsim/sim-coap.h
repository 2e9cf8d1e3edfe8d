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

/* Sends an answer (an SMP frame) back for the request route->cookie names. */
void sim_coap_send(struct sim_device *d, const struct sim_route *route, const uint8_t *frame, size_t len);

void sim_coap_close(struct sim *sim);
