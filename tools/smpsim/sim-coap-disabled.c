/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Built when libcoap is not available (-Dcoap=disabled): --coap fails
 * with a clear message instead of the option vanishing. */
#include <errno.h>

#include "sim-coap.h"

int sim_coap_open(struct sim *sim, const char *endpoint) {
        return -EOPNOTSUPP;
}

int sim_coap_multicast(struct sim *sim, const char *group) {
        return -EOPNOTSUPP;
}

void sim_coap_send(struct sim_device *d, const struct sim_route *route, const uint8_t *frame, size_t len) {
}

void sim_coap_close(struct sim *sim) {
}
