/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * REST request bodies as pure functions of their bytes (no MHD, no
 * manager), so a fuzzer can call them directly (tests/fuzz/fuzz-rest-
 * body.c): the JSON parse every JSON body goes through, and each body's
 * field checks.  A refusal fills a rest_body_error, which the handler
 * replies as 400 with that code and sentence.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "engine.h"

struct rest_body_error {
        const char *code; /* "invalid_json", "invalid_field", "bad_request" */
        char message[512];
};

/* A body that must be a JSON object: -EINVAL with *e filled, or 0 and
 * *ret (json_decref() it). */
int rest_body_parse(const char *text, size_t len, json_t **ret, struct rest_body_error *e);

/* -EINVAL naming the first field of object that is not in known (a
 * NULL-terminated list): a typo is an error, not an ignored option. */
int rest_body_check_fields(json_t *object, const char *const *known, struct rest_body_error *e);

/* POST /devices: {"conn": "..."}; *ret_conn points into body. */
int rest_body_device_add(json_t *body, const char **ret_conn, struct rest_body_error *e);

/* PATCH /devices/{id}: {"name": "..." | null}; *ret_has_name false when
 * the field is left out, *ret_name NULL for null (no name). */
int rest_body_device_patch(json_t *body, bool *ret_has_name, const char **ret_name, struct rest_body_error *e);

/* A device spec as the engine takes it: a JSON integer becomes its
 * decimal string. */
typedef char rest_device_spec[24];

/* POST /jobs: image, devices, mode, attempts into *push (the types only:
 * the engine checks values, counts and devices).  push->devices is set to
 * *ret_specs; free() *ret_buf and *ret_specs.  -ENOMEM without *e. */
int rest_body_push(json_t *body, struct engine_push *push, rest_device_spec **ret_buf, const char ***ret_specs,
                   struct rest_body_error *e);
