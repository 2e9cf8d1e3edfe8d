/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * /api/v1/jobs: pushes of an image to devices, one job per device.  A
 * request to create jobs is checked whole (image, every device, options,
 * no device busy) before the first job is created, so it either creates
 * all of its jobs or none.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "rest-internal.h"

#define REST_JOB_ATTEMPTS_MAX 100   /* as [jobs] attempts and D-Bus Push() */

struct target {
        struct device *device;
        size_t index;                  /* in the request's "devices" */
};

static int target_cmp(const void *a, const void *b) {
        const struct target *x = a, *y = b;
        if (x->device->id != y->device->id)
                return x->device->id < y->device->id ? -1 : 1;
        return x->index < y->index ? -1 : x->index > y->index;
}

/* Resolves devices[i]; replies and returns negative when it cannot. */
static int resolve_device(struct rest_request *req, json_t *v, size_t i, struct device **ret) {
        struct manager *m = req->rest->manager;
        struct device *d = NULL;

        if (json_is_integer(v)) {
                json_int_t id = json_integer_value(v);
                if (id > 0)
                        d = manager_find_device(m, (uint64_t) id);
                if (!d) {
                        (void) rest_reply_error(req, 404, "not_found", "No device %" JSON_INTEGER_FORMAT
                                                " (devices[%zu]).", id, i);
                        return -ENOENT;
                }
        } else if (json_is_string(v) && json_string_length(v) > 0) {
                d = rest_lookup_device(m, json_string_value(v));
                if (!d) {
                        (void) rest_reply_error(req, 404, "not_found", "No device '%s' (devices[%zu]).",
                                                json_string_value(v), i);
                        return -ENOENT;
                }
        } else {
                (void) rest_reply_error(req, 400, "invalid_field",
                                        "Field 'devices[%zu]' must be a device id or a connection string.", i);
                return -EINVAL;
        }
        *ret = d;
        return 0;
}

int rest_jobs_create(struct rest_request *req) {
        static const char *const fields[] = { "image", "devices", "mode", "attempts", NULL };
        struct manager *m = req->rest->manager;
        struct job_options opts = {
                .mode = m->config->job_mode,
        };
        _cleanup_free_ struct target *targets = NULL;
        _cleanup_free_ struct device **order = NULL;
        _cleanup_free_ struct job **created = NULL;
        json_t *v, *devices, *jobs;
        struct image *img;
        size_t n;
        int k;

        k = rest_json_check_fields(req, req->json, fields);
        if (k < 0)
                return k;

        v = json_object_get(req->json, "image");
        if (!json_is_string(v) || json_string_length(v) == 0)
                return rest_reply_error(req, 400, "invalid_field", "Field 'image' is required: an image id (its hash).");
        if (!image_ref_is_valid(json_string_value(v)))
                return rest_reply_error(req, 400, "invalid_field",
                                        "Field 'image' must be an image id (64 hex digits) or a unique prefix of at "
                                        "least %d of them.", IMAGE_ID_PREFIX_MIN);
        k = rest_find_image(req, json_string_value(v), &img);
        if (k < 0)
                return k;

        v = json_object_get(req->json, "mode");
        if (v) {
                int mode = json_is_string(v) ? smp_update_mode_from_string(json_string_value(v)) : -EINVAL;
                if (mode < 0)
                        return rest_reply_error(req, 400, "invalid_field",
                                                "Field 'mode' must be one of test-and-confirm, confirm-only, "
                                                "test-only, upload-only.");
                opts.mode = (enum smp_update_mode) mode;
        }
        v = json_object_get(req->json, "attempts");
        if (v) {
                if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                    json_integer_value(v) > REST_JOB_ATTEMPTS_MAX)
                        return rest_reply_error(req, 400, "invalid_field",
                                                "Field 'attempts' must be an integer from 1 to %d.",
                                                REST_JOB_ATTEMPTS_MAX);
                opts.max_attempts = (unsigned) json_integer_value(v);
        }

        devices = json_object_get(req->json, "devices");
        if (!json_is_array(devices) || json_array_size(devices) == 0 ||
            json_array_size(devices) > REST_JOB_DEVICES_MAX)
                return rest_reply_error(req, 400, "invalid_field",
                                        "Field 'devices' must be an array of 1 to %u device ids or connection strings.",
                                        REST_JOB_DEVICES_MAX);
        n = json_array_size(devices);
        targets = calloc(n, sizeof(*targets));
        order = calloc(n, sizeof(*order));
        created = calloc(n, sizeof(*created));
        if (!targets || !order || !created)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                k = resolve_device(req, json_array_get(devices, i), i, &order[i]);
                if (k < 0)
                        return k;
                targets[i] = (struct target) { order[i], i };
        }

        /* Sorted by device, a repeated device sits next to itself. */
        qsort(targets, n, sizeof(*targets), target_cmp);
        for (size_t i = 1; i < n; i++)
                if (targets[i].device == targets[i - 1].device)
                        return rest_reply_error(req, 400, "invalid_field",
                                                "Field 'devices': devices[%zu] and devices[%zu] are both device %" PRIu64 ".",
                                                targets[i - 1].index, targets[i].index, targets[i].device->id);
        for (size_t i = 0; i < n; i++) {
                uint64_t busy = rest_device_unfinished_job(m, targets[i].device->id);
                if (busy)
                        return rest_reply_error(req, 409, "busy",
                                                "Device %" PRIu64 " (devices[%zu]) already has an unfinished job (%" PRIu64
                                                "); nothing was created.", targets[i].device->id, targets[i].index, busy);
        }

        for (size_t i = 0; i < n; i++) {
                k = job_create(m, img, order[i], &opts, &created[i]);
                if (k < 0) {
                        /* Checked above, so this is out of memory or the
                         * database: take back what was created. */
                        log_error_errno(k, "REST: creating a job for device %" PRIu64 " failed: %m", order[i]->id);
                        for (size_t u = 0; u < i; u++)
                                (void) job_cancel(created[u]);
                        return rest_reply_error(req, k == -EBUSY ? 409 : 500, k == -EBUSY ? "busy" : "internal",
                                                "Creating the job for device %" PRIu64 " failed: %s; "
                                                "the jobs created before it were cancelled.",
                                                order[i]->id, strerror(-k));
                }
        }

        jobs = json_array();
        if (!jobs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (json_array_append_new(jobs, rest_json_job(m, created[i])) < 0) {
                        json_decref(jobs);
                        return -ENOMEM;
                }
        return rest_reply_json(req, 201, json_pack("{s:o}", "jobs", jobs));
}

int rest_jobs_list(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        const char *state_s = rest_query(req, "state"), *device_s = rest_query(req, "device"),
                   *image = rest_query(req, "image");
        uint64_t offset, total = 0, device_id = 0;
        char image_hash[IMAGE_ID_LEN + 1] = "";
        unsigned limit;
        int state = -1, k;
        json_t *jobs;

        k = rest_query_page(req, REST_PAGE_LIMIT_DEFAULT, &limit, &offset);
        if (k < 0)
                return k;
        if (state_s) {
                state = job_state_from_string(state_s);
                if (state < 0)
                        return rest_reply_error(req, 400, "invalid_field",
                                                "Query parameter 'state' must be a job state (queued, running, "
                                                "retry-wait, succeeded, failed, cancelled).");
        }
        if (image) {
                k = rest_filter_image(req, image, image_hash);
                if (k < 0)
                        return k;
        }
        if (device_s) {
                char *end = NULL;
                unsigned long long id = strtoull(device_s, &end, 10);

                if (device_s[0] >= '0' && device_s[0] <= '9' && end && *end == '\0') {
                        /* By id: jobs of a forgotten device can still be listed. */
                        device_id = id;
                } else {
                        struct device *d = manager_find_device_by_conn(m, device_s);
                        device_id = d ? d->id : UINT64_MAX;
                }
        }

        jobs = json_array();
        if (!jobs)
                return -ENOMEM;
        for (size_t i = m->n_jobs; i > 0; i--) {
                const struct job *j = m->jobs[i - 1];

                if (state >= 0 && (int) j->state != state)
                        continue;
                if (device_s && j->device_id != device_id)
                        continue;
                if (image && !streq(j->image_id, image_hash))
                        continue;
                total++;
                if (total <= offset || json_array_size(jobs) >= limit)
                        continue;
                if (json_array_append_new(jobs, rest_json_job(m, j)) < 0) {
                        json_decref(jobs);
                        return -ENOMEM;
                }
        }
        return rest_reply_json(req, 200,
                               json_pack("{s:o, s:I, s:I, s:I}", "jobs", jobs, "total", (json_int_t) total, "limit",
                                         (json_int_t) limit, "offset", (json_int_t) offset));
}

int rest_job_get(struct rest_request *req) {
        struct job *j;
        int k;

        k = rest_find_job(req, req->path_id, &j);
        if (k < 0)
                return k;
        return rest_reply_json(req, 200, rest_json_job(req->rest->manager, j));
}

int rest_job_cancel(struct rest_request *req) {
        struct job *j;
        int k;

        k = rest_find_job(req, req->path_id, &j);
        if (k < 0)
                return k;
        k = job_cancel(j);
        if (k == -EALREADY)
                return rest_reply_error(req, 409, "conflict", "Job %" PRIu64 " is finished already (%s).", j->id,
                                        job_state_to_string(j->state));
        if (k < 0)
                return rest_reply_errno(req, k, "Cancelling job %" PRIu64 " failed: %s.", j->id, strerror(-k));
        return rest_reply_json(req, 200, rest_json_job(req->rest->manager, j));
}
