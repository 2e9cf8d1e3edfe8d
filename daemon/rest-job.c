/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * /api/v1/jobs: pushes of an image to devices, one job per device.  The
 * engine checks a push whole and creates all of its jobs or none
 * (engine_push()); rest-body.c reads the JSON into it, this file its
 * answer back.
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

int rest_jobs_create(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        _cleanup_free_ rest_device_spec *buf = NULL;
        _cleanup_free_ const char **specs = NULL;
        _cleanup_free_ struct job **created = NULL;
        struct engine_push push = {};
        struct rest_body_error be;
        struct engine_error e;
        json_t *jobs;
        int k;

        k = rest_body_push(req->json, &push, &buf, &specs, &be);
        if (k == -EINVAL)
                return rest_reply_body_error(req, &be);
        if (k < 0)
                return k;
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
