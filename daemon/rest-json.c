/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the JSON forms of the model's objects (rest-device.c,
 * rest-image.c, rest-job.c; doc/openapi.yaml) share, and the check of a
 * request body's fields.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rest-internal.h"

json_t *rest_json_time(uint64_t realtime_usec) {
        char buf[64];
        struct tm tm;
        time_t sec;

        if (realtime_usec == 0)
                return json_null();
        sec = (time_t) (realtime_usec / 1000000u);
        if (!gmtime_r(&sec, &tm))
                return json_null();
        if (strftime(buf, sizeof(buf) - 8, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
                return json_null();
        snprintf(buf + strlen(buf), 8, ".%03uZ", (unsigned) (realtime_usec / 1000u % 1000u));
        return json_string(buf);
}

json_t *rest_json_string_or_null(const char *s) {
        /* Device-reported strings (OS info, names) are not promised to be
         * UTF-8; json_string() refuses those, so show them as null rather
         * than fail the whole object. */
        json_t *v;

        if (!s)
                return json_null();
        v = json_string(s);
        return v ? v : json_null();
}





json_t *rest_json_array(struct manager *m, void *const *objects, size_t n, rest_json_form_fn form) {
        json_t *array = json_array();

        if (!array)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (json_array_append_new(array, form(m, objects[i])) < 0) {
                        json_decref(array);
                        return NULL;
                }
        return array;
}

int rest_reply_page(struct rest_request *req, const char *key, json_t *items, uint64_t total, unsigned limit,
                    uint64_t offset) {
        if (!items)
                return -ENOMEM;
        return rest_reply_json(req, 200,
                               json_pack("{s:o, s:I, s:I, s:I}", key, items, "total", (json_int_t) total, "limit",
                                         (json_int_t) limit, "offset", (json_int_t) offset));
}

int rest_reply_body_error(struct rest_request *req, const struct rest_body_error *e) {
        (void) rest_reply_error(req, 400, e->code, "%s", e->message);
        return -EINVAL;
}
