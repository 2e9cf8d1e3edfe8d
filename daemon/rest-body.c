/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * REST request bodies: the JSON parse and each body's field checks, as
 * pure functions (see rest-body.h); the handlers in rest-device.c and
 * rest-job.c reply what these refuse.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rest-body.h"
#include "smpgwd-limits.h"
#include "util.h"

static int refuse(struct rest_body_error *e, const char *code, const char *fmt, ...) _printf_(3, 4);

static int refuse(struct rest_body_error *e, const char *code, const char *fmt, ...) {
        va_list ap;

        e->code = code;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
        return -EINVAL;
}

int rest_body_parse(const char *text, size_t len, json_t **ret, struct rest_body_error *e) {
        json_error_t error;
        json_t *json;

        if (len == 0)
                return refuse(e, "bad_request", "This request needs a JSON object as its body.");
        json = json_loadb(text, len, JSON_REJECT_DUPLICATES, &error);
        if (!json)
                return refuse(e, "invalid_json", "Malformed JSON at line %d, column %d: %s.", error.line, error.column,
                              error.text);
        if (!json_is_object(json)) {
                json_decref(json);
                return refuse(e, "invalid_json", "The body must be a JSON object.");
        }
        *ret = json;
        return 0;
}

int rest_body_check_fields(json_t *object, const char *const *known, struct rest_body_error *e) {
        const char *key;
        json_t *value;

        json_object_foreach(object, key, value) {
                bool found = false;
                for (const char *const *k = known; *k; k++)
                        if (streq(key, *k)) {
                                found = true;
                                break;
                        }
                if (!found)
                        return refuse(e, "invalid_field", "Unknown field '%s'.", key);
        }
        return 0;
}

int rest_body_device_add(json_t *body, const char **ret_conn, struct rest_body_error *e) {
        static const char *const fields[] = { "conn", NULL };
        json_t *v;
        int k;

        k = rest_body_check_fields(body, fields, e);
        if (k < 0)
                return k;
        v = json_object_get(body, "conn");
        if (!json_is_string(v) || json_string_length(v) == 0)
                return refuse(e, "invalid_field",
                              "Field 'conn' is required: a connection string such as \"udp:192.0.2.1:1337\".");
        if (strlen(json_string_value(v)) != json_string_length(v))
                return refuse(e, "invalid_field", "Field 'conn' must not contain NUL characters.");
        *ret_conn = json_string_value(v);
        return 0;
}

int rest_body_device_patch(json_t *body, bool *ret_has_name, const char **ret_name, struct rest_body_error *e) {
        /* "role" and "direct_device" are the handler's own (rest_device_patch()). */
        static const char *const fields[] = { "name", "role", "direct_device", NULL };
        const char *name;
        json_t *v;
        int k;

        k = rest_body_check_fields(body, fields, e);
        if (k < 0)
                return k;
        v = json_object_get(body, "name");
        *ret_has_name = v != NULL;
        *ret_name = NULL;
        if (!v)
                return 0;
        name = json_is_string(v) ? json_string_value(v) : NULL;
        if ((!json_is_null(v) && !name) || (name && strlen(name) != json_string_length(v)))
                return refuse(e, "invalid_field", "Field 'name' must be a string or null (no name).");
        *ret_name = name;
        return 0;
}

/* Reads "devices" into specs (the field's type only: the engine checks
 * the count, every device, repeats and busy ones). */
static int read_devices(json_t *devices, rest_device_spec **ret_buf, const char ***ret_specs, size_t *ret_n,
                        struct rest_body_error *e) {
        _cleanup_free_ rest_device_spec *buf = NULL;
        _cleanup_free_ const char **specs = NULL;
        size_t n = json_array_size(devices);

        if (!json_is_array(devices))
                return refuse(e, "invalid_field",
                              "Field 'devices' must be an array of device ids or connection strings.");
        /* Past the limit the engine refuses by the count alone: no need
         * to convert what it will not look at. */
        n = MIN(n, (size_t) PUSH_DEVICES_MAX + 1);
        buf = calloc(MAX(n, (size_t) 1), sizeof(*buf));
        specs = calloc(MAX(n, (size_t) 1), sizeof(*specs));
        if (!buf || !specs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_t *v = json_array_get(devices, i);
                if (json_is_integer(v)) {
                        snprintf(buf[i], sizeof(buf[i]), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                        specs[i] = buf[i];
                } else if (json_is_string(v) && json_string_length(v) > 0)
                        specs[i] = json_string_value(v);
                else
                        return refuse(e, "invalid_field",
                                      "Field 'devices[%zu]' must be a device id or a connection string.", i);
        }
        *ret_buf = TAKE_PTR(buf);
        *ret_specs = TAKE_PTR(specs);
        *ret_n = json_array_size(devices);
        return 0;
}

int rest_body_push(json_t *body, struct engine_push *push, rest_device_spec **ret_buf, const char ***ret_specs,
                   struct rest_body_error *e) {
        static const char *const fields[] = { "image", "devices", "mode", "attempts", "force", NULL };
        json_t *v;
        int k;

        k = rest_body_check_fields(body, fields, e);
        if (k < 0)
                return k;
        v = json_object_get(body, "image");
        if (!json_is_string(v) || json_string_length(v) == 0)
                return refuse(e, "invalid_field", "Field 'image' is required: an image id (its hash).");
        push->image = json_string_value(v);
        v = json_object_get(body, "mode");
        if (v && !json_is_string(v))
                return refuse(e, "invalid_field", "Field 'mode' must be a string.");
        push->mode = v ? json_string_value(v) : NULL;
        v = json_object_get(body, "attempts");
        if (v && !json_is_integer(v))
                return refuse(e, "invalid_field", "Field 'attempts' must be an integer.");
        push->has_attempts = v != NULL;
        push->attempts = v ? json_integer_value(v) : 0;
        v = json_object_get(body, "force");
        if (v && !json_is_boolean(v))
                return refuse(e, "invalid_field", "Field 'force' must be true or false.");
        push->force = json_is_true(v);
        push->devices_listed = true;
        k = read_devices(json_object_get(body, "devices"), ret_buf, ret_specs, &push->n_devices, e);
        if (k < 0)
                return k;
        push->devices = *ret_specs;
        return 0;
}
