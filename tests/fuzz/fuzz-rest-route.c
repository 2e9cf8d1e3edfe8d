/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The REST request target as smpgwd reads it (daemon/rest-route.c): the
 * raw target scanned for control characters and counted query parameters
 * (what rest_request_new() does with the request line), and the path
 * routed to a resource and its {id}, with the devices whose whole
 * connection string a path may be.
 *
 * Input: a selector byte, then the target.  Bit 0 of the selector: a
 * device is "known" when its string is the tail the router asks about and
 * that ends in "/probe" or "/history" (the case where a whole connection
 * string wins over a sub-resource); otherwise none is. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rest-route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool device_known(const char *tail, void *userdata) {
        size_t n = strlen(tail);

        assert(n > 0);
        return (n >= 6 && strcmp(tail + n - 6, "/probe") == 0) || (n >= 8 && strcmp(tail + n - 8, "/history") == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct rest_target target;
        enum rest_resource res;
        char *target_text, *id = NULL;

        if (size < 1 || size > 65536)
                return 0;
        /* MHD hands both callbacks NUL-terminated text: a NUL ends it. */
        target_text = strndup((const char *) data + 1, size - 1);
        if (!target_text)
                return 0;

        if (rest_target_scan(target_text, &target) == 0) {
                if (target.bad_query) {
                        assert(strlen(target.bad_query) <= 64);
                        for (const char *p = target.bad_query; *p; p++)
                                assert((unsigned char) *p >= 0x20 && (unsigned char) *p < 0x7f);
                }
                assert(strchr(target_text, '?') ? target.n_params >= 1 : target.n_params == 0);
                free(target.bad_query);
        }

        res = rest_route_path(target_text, (data[0] & 1) ? device_known : NULL, NULL, &id);
        assert(res >= REST_RESOURCE_NONE && res < _REST_RESOURCE_MAX);
        switch (res) {
        case REST_RESOURCE_DEVICE:
        case REST_RESOURCE_DEVICE_PROBE:
        case REST_RESOURCE_DEVICE_HISTORY:
        case REST_RESOURCE_DEVICE_LABELS:
        case REST_RESOURCE_JOB:
        case REST_RESOURCE_JOB_CANCEL:
        case REST_RESOURCE_JOB_ACTIVATE:
        case REST_RESOURCE_IMAGE:
        case REST_RESOURCE_ROLLOUT:
        case REST_RESOURCE_ROLLOUT_MEMBERS:
        case REST_RESOURCE_ROLLOUT_PAUSE:
        case REST_RESOURCE_ROLLOUT_RESUME:
        case REST_RESOURCE_ROLLOUT_CANCEL:
        case REST_RESOURCE_ROLLOUT_ACTIVATE:
        case REST_RESOURCE_ROLLOUT_PLAN:
        case REST_RESOURCE_DISTRIBUTION:
        case REST_RESOURCE_DISTRIBUTION_CANCEL:
        case REST_RESOURCE_DISTRIBUTION_SUSPEND:
        case REST_RESOURCE_DISTRIBUTION_RESUME:
        case REST_RESOURCE_DISTRIBUTION_APPLY:
                /* Every {id} route has one, and it is never empty... */
                assert(id && *id);
                /* ...and only a device's may hold a '/' (serial:/dev/x). */
                if (res != REST_RESOURCE_DEVICE && res != REST_RESOURCE_DEVICE_PROBE &&
                    res != REST_RESOURCE_DEVICE_HISTORY && res != REST_RESOURCE_DEVICE_LABELS)
                        assert(!strchr(id, '/'));
                /* The id is a piece of the path. */
                assert(strstr(target_text, id));
                break;
        default:
                assert(!id);
                break;
        }
        free(id);
        free(target_text);
        return 0;
}
