/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * /api/v1/jobs: pushes of an image to devices, one job per device.  The
 * engine checks a push whole and creates all of its jobs or none
 * (engine_push()); this file reads the JSON into it and its answer back.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "rest-internal.h"

/* The JSON form, as REST and the event stream show it. */
json_t *rest_json_job(struct manager *m, const struct job *j) {
        const struct device *d = j->device;
        double progress = job_progress(j), rate = job_rate(j);

        return json_pack("{s:I, s:I, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:f, s:f, s:o,"
                         " s:o, s:o, s:o, s:o, s:o}",
                         "id", (json_int_t) j->id,
                         "device", (json_int_t) j->device_id,
                         "conn", d ? rest_json_string_or_null(d->conn) : json_null(),
                         "image", j->image_id,
                         "rollout", j->rollout_id ? json_integer((json_int_t) j->rollout_id) : json_null(),
                         "mode", rest_json_string_or_null(smp_update_mode_to_string(j->mode)),
                         "state", rest_json_string_or_null(job_state_to_string(j->state)),
                         "step", j->has_step ? rest_json_string_or_null(smp_update_step_to_string(j->step))
                                             : json_null(),
                         "outcome", j->has_outcome
                                            ? rest_json_string_or_null(smp_update_outcome_to_string(j->outcome))
                                            : json_null(),
                         "attempts", (json_int_t) j->attempts,
                         "max_attempts", (json_int_t) j->max_attempts,
                         "bytes_sent", (json_int_t) j->bytes_sent,
                         "bytes_total", (json_int_t) j->bytes_total,
                         "progress", progress,
                         "rate", rate,
                         "error", rest_json_string_or_null(j->error),
                         "created", rest_json_time(j->created_usec),
                         "started", rest_json_time(j->started_usec),
                         "finished", rest_json_time(j->finished_usec),
                         "next_attempt", rest_json_time(j->next_attempt_usec),
                         "updated", rest_json_time(j->updated_usec));
}

static json_t *job_form(struct manager *m, const void *job) {
        return rest_json_job(m, job);
}

/* A device spec as the engine takes it: a JSON integer becomes its
 * decimal string. */
typedef char device_spec[24];

/* Reads "devices" into specs (the field's type only: the engine checks
 * the count, every device, repeats and busy ones). */
static int read_devices(struct rest_request *req, json_t *devices, device_spec **ret_buf, const char ***ret_specs,
                        size_t *ret_n) {
        _cleanup_free_ device_spec *buf = NULL;
        _cleanup_free_ const char **specs = NULL;
        size_t n = json_array_size(devices);

        if (!json_is_array(devices))
                return rest_reply_error(req, 400, "invalid_field",
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
                        return rest_reply_error(req, 400, "invalid_field",
                                                "Field 'devices[%zu]' must be a device id or a connection string.", i);
        }
        *ret_buf = TAKE_PTR(buf);
        *ret_specs = TAKE_PTR(specs);
        *ret_n = json_array_size(devices);
        return 0;
}

/* The body's fields, their JSON types checked, into a push request. */
static int read_push(struct rest_request *req, struct engine_push *push, device_spec **ret_buf,
                     const char ***ret_specs) {
        static const char *const fields[] = { "image", "devices", "mode", "attempts", NULL };
        json_t *v;
        int k;

        k = rest_json_check_fields(req, req->json, fields);
        if (k < 0)
                return k;
        v = json_object_get(req->json, "image");
        if (!json_is_string(v) || json_string_length(v) == 0)
                return rest_reply_error(req, 400, "invalid_field", "Field 'image' is required: an image id (its hash).");
        push->image = json_string_value(v);
        v = json_object_get(req->json, "mode");
        if (v && !json_is_string(v))
                return rest_reply_error(req, 400, "invalid_field", "Field 'mode' must be a string.");
        push->mode = v ? json_string_value(v) : NULL;
        v = json_object_get(req->json, "attempts");
        if (v && !json_is_integer(v))
                return rest_reply_error(req, 400, "invalid_field", "Field 'attempts' must be an integer.");
        push->has_attempts = v != NULL;
        push->attempts = v ? json_integer_value(v) : 0;
        push->devices_listed = true;
        return read_devices(req, json_object_get(req->json, "devices"), ret_buf, ret_specs, &push->n_devices);
}

int rest_jobs_create(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        _cleanup_free_ device_spec *buf = NULL;
        _cleanup_free_ const char **specs = NULL;
        _cleanup_free_ struct job **created = NULL;
        struct engine_push push = {};
        struct engine_error e;
        json_t *jobs;
        int k;

        k = read_push(req, &push, &buf, &specs);
        if (k < 0)
                return k;
        push.devices = specs;
        k = engine_push(m, &push, &created, &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);
        jobs = rest_json_array(m, (void *const *) created, push.n_devices, job_form);
        if (!jobs)
                return -ENOMEM;
        return rest_reply_json(req, 201, json_pack("{s:o}", "jobs", jobs));
}

int rest_jobs_list(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        struct engine_job_query q = {
                .state = rest_query(req, "state"),
                .device = rest_query(req, "device"),
                .image = rest_query(req, "image"),
        };
        _cleanup_free_ struct job **page = NULL;
        struct engine_error e;
        size_t n;
        uint64_t total;
        int k;

        k = rest_query_page(req, &q.limit, &q.offset);
        if (k < 0)
                return k;
        k = engine_jobs_query(m, &q, &page, &n, &total, &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);
        return rest_reply_page(req, "jobs", rest_json_array(m, (void *const *) page, n, job_form), total, q.limit,
                               q.offset);
}

int rest_job_get(struct rest_request *req) {
        struct job *j;
        int k;

        k = rest_find_job(req, &j);
        if (k < 0)
                return k;
        return rest_reply_json(req, 200, rest_json_job(req->rest->manager, j));
}

int rest_job_cancel(struct rest_request *req) {
        struct engine_error e;
        struct job *j;
        int k;

        k = rest_find_job(req, &j);
        if (k < 0)
                return k;
        k = engine_job_cancel(req->rest->manager, j, &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);
        return rest_reply_json(req, 200, rest_json_job(req->rest->manager, j));
}

int rest_job_activate(struct rest_request *req) {
        struct engine_error e;
        struct job *j;
        int k;

        k = rest_find_job(req, &j);
        if (k < 0)
                return k;
        k = engine_job_activate(req->rest->manager, j, &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);
        return rest_reply_json(req, 200, rest_json_job(req->rest->manager, j));
}
