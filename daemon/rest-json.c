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

#include "rest-internal.h"
#include "rest-text.h"

json_t *rest_json_time(uint64_t realtime_usec) {
        char buf[REST_TIME_MAX];

        if (realtime_usec == 0)
                return json_null();
        /* The same text as list pages write (rest-text.c). */
        (void) rest_format_time(buf, realtime_usec);
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

int rest_json_check_fields(struct rest_request *req, json_t *object, const char *const *known) {
        struct rest_body_error e;
        int r;

        r = rest_body_check_fields(object, known, &e);
        if (r < 0)
                (void) rest_reply_body_error(req, &e);
        return r;
}
