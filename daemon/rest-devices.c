/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * /api/v1/devices: the inventory (list with filters and pages, add by
 * connection string, probe, forget) and a device's history.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "db.h"
#include "rest-internal.h"

static bool device_has_image(const struct device *d, const char *hash) {
        for (size_t i = 0; i < d->slots.n_slots && i < SMP_UPDATE_SLOTS_MAX; i++) {
                const struct smp_update_slot *s = &d->slots.slots[i];
                char hex[2 * sizeof(s->hash) + 1];

                if (!s->present || s->hash_len == 0)
                        continue;
                hex_encode(s->hash, MIN(s->hash_len, sizeof(s->hash)), hex);
                if (streq(hex, hash))
                        return true;
        }
        return false;
}

/* device id → its unfinished job, for a page of devices at once (one pass
 * over the jobs instead of one per device). */
struct job_index_entry {
        uint64_t device_id, job_id;
};

static int job_index_cmp(const void *a, const void *b) {
        const struct job_index_entry *x = a, *y = b;
        return x->device_id < y->device_id ? -1 : x->device_id > y->device_id;
}

static int job_index_build(struct manager *m, struct job_index_entry **ret, size_t *ret_n) {
        struct job_index_entry *index;
        size_t n = 0;

        index = calloc(m->n_jobs + 1, sizeof(*index));
        if (!index)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_jobs; i++)
                if (!job_is_finished(m->jobs[i]))
                        index[n++] = (struct job_index_entry) { m->jobs[i]->device_id, m->jobs[i]->id };
        qsort(index, n, sizeof(*index), job_index_cmp);
        *ret = index;
        *ret_n = n;
        return 0;
}

static uint64_t job_index_find(const struct job_index_entry *index, size_t n, uint64_t device_id) {
        struct job_index_entry key = { device_id, 0 };
        const struct job_index_entry *e = bsearch(&key, index, n, sizeof(*index), job_index_cmp);
        return e ? e->job_id : 0;
}

int rest_devices_list(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        const char *state_s = rest_query(req, "state"), *transport = rest_query(req, "transport"),
                   *name = rest_query(req, "name"), *image = rest_query(req, "image");
        _cleanup_free_ struct job_index_entry *index = NULL;
        size_t n_index = 0;
        char image_hash[IMAGE_ID_LEN + 1] = "";
        uint64_t offset, total = 0;
        unsigned limit;
        int state = -1, k;
        json_t *devices;

        k = rest_query_page(req, REST_PAGE_LIMIT_DEFAULT, &limit, &offset);
        if (k < 0)
                return k;
        if (state_s) {
                state = device_state_from_string(state_s);
                if (state < 0)
                        return rest_reply_error(req, 400, "invalid_field",
                                                "Query parameter 'state' must be one of new, online, unreachable, absent.");
        }
        if (image) {
                k = rest_filter_image(req, image, image_hash);
                if (k < 0)
                        return k;
        }

        k = job_index_build(m, &index, &n_index);
        if (k < 0)
                return k;
        devices = json_array();
        if (!devices)
                return -ENOMEM;

        for (size_t i = 0; i < m->n_devices; i++) {
                const struct device *d = m->devices[i];

                if (state >= 0 && (int) d->state != state)
                        continue;
                if (transport && !streq(d->transport, transport))
                        continue;
                if (name && (!d->name || !strcasestr(d->name, name)))
                        continue;
                if (image && !device_has_image(d, image_hash))
                        continue;
                total++;
                if (total <= offset || json_array_size(devices) >= limit)
                        continue;
                if (json_array_append_new(devices, rest_json_device(m, d, job_index_find(index, n_index, d->id))) < 0) {
                        json_decref(devices);
                        return -ENOMEM;
                }
        }

        return rest_reply_json(req, 200,
                               json_pack("{s:o, s:I, s:I, s:I}", "devices", devices, "total", (json_int_t) total,
                                         "limit", (json_int_t) limit, "offset", (json_int_t) offset));
}

int rest_devices_add(struct rest_request *req) {
        static const char *const fields[] = { "conn", NULL };
        struct manager *m = req->rest->manager;
        struct device *d = NULL;
        const char *conn;
        json_t *v;
        int k;

        k = rest_json_check_fields(req, req->json, fields);
        if (k < 0)
                return k;
        v = json_object_get(req->json, "conn");
        if (!json_is_string(v) || json_string_length(v) == 0)
                return rest_reply_error(req, 400, "invalid_field",
                                        "Field 'conn' is required: a connection string such as \"udp:192.0.2.1:1337\".");
        conn = json_string_value(v);
        if (strlen(conn) != json_string_length(v))
                return rest_reply_error(req, 400, "invalid_field", "Field 'conn' must not contain NUL characters.");

        k = manager_add_device(m, conn, "rest", &d);
        switch (k) {
        case 0:
                return rest_reply_json(req, 201, rest_json_device(m, d, rest_device_unfinished_job(m, d->id)));
        case -EEXIST:
                /* Adding is idempotent: the known device, as it is. */
                if (!d)
                        d = manager_find_device_by_conn(m, conn);
                if (!d)
                        return rest_reply_error(req, 409, "conflict", "Device '%s' exists already.", conn);
                return rest_reply_json(req, 200, rest_json_device(m, d, rest_device_unfinished_job(m, d->id)));
        case -EINVAL:
                return rest_reply_error(req, 400, "invalid_field",
                                        "Field 'conn': '%s' is not a connection string (SCHEME:ADDRESS, e.g. "
                                        "udp:192.0.2.1:1337).", conn);
        case -ENOENT:
                return rest_reply_error(req, 400, "invalid_field",
                                        "Field 'conn': no such transport for '%s' (no plugin handles its scheme).",
                                        conn);
        case -E2BIG:
                return rest_reply_error(req, 409, "too_many",
                                        "The inventory is full ([devices] max_count = %u); forget a device first.",
                                        m->config->max_devices);
        default:
                return rest_reply_errno(req, k, "Adding device '%s' failed: %s.", conn, strerror(abs(k)));
        }
}

int rest_device_get(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        struct device *d;
        int k;

        k = rest_find_device(req, req->path_id, &d);
        if (k < 0)
                return k;
        return rest_reply_json(req, 200, rest_json_device(m, d, rest_device_unfinished_job(m, d->id)));
}

/* PATCH: changes what a user may change of a device, its name; fields
 * left out stay as they are. */
int rest_device_patch(struct rest_request *req) {
        static const char *const fields[] = { "name", NULL };
        struct manager *m = req->rest->manager;
        struct device *d;
        json_t *v;
        int k;

        k = rest_find_device(req, req->path_id, &d);
        if (k < 0)
                return k;
        k = rest_json_check_fields(req, req->json, fields);
        if (k < 0)
                return k;
        v = json_object_get(req->json, "name");
        if (v) {
                const char *name = json_is_string(v) ? json_string_value(v) : NULL;

                if ((!json_is_null(v) && !name) || (name && strlen(name) != json_string_length(v)))
                        return rest_reply_error(req, 400, "invalid_field",
                                                "Field 'name' must be a string or null (no name).");
                k = device_set_name(d, name);
                if (k == -EINVAL)
                        return rest_reply_error(req, 400, "invalid_field",
                                                "Field 'name' must be at most %d bytes of UTF-8 without control "
                                                "characters.", DEVICE_NAME_MAX);
                if (k < 0)
                        return rest_reply_errno(req, k, "Renaming device %" PRIu64 " failed: %s.", d->id,
                                                strerror(-k));
        }
        return rest_reply_json(req, 200, rest_json_device(m, d, rest_device_unfinished_job(m, d->id)));
}

int rest_device_probe(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        struct device *d;
        int k;

        k = rest_find_device(req, req->path_id, &d);
        if (k < 0)
                return k;
        k = device_probe(d);
        if (k == -EBUSY)
                return rest_reply_error(req, 409, "busy",
                                        "Device %" PRIu64 " is busy: a probe or a job is running on it.", d->id);
        if (k < 0)
                return rest_reply_errno(req, k, "Probing device %" PRIu64 " failed: %s.", d->id, strerror(-k));
        return rest_reply_json(req, 202, rest_json_device(m, d, rest_device_unfinished_job(m, d->id)));
}

int rest_device_forget(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        struct device *d;
        uint64_t id, job;
        int k;

        k = rest_find_device(req, req->path_id, &d);
        if (k < 0)
                return k;
        id = d->id;
        job = rest_device_unfinished_job(m, id);
        k = manager_forget_device(m, d);
        /* d is freed on success: only id from here. */
        if (k == -EBUSY) {
                if (job)
                        return rest_reply_error(req, 409, "busy",
                                                "Device %" PRIu64 " has an unfinished job (%" PRIu64
                                                "); cancel it first.", id, job);
                return rest_reply_error(req, 409, "busy", "Device %" PRIu64 " is busy; try again later.", id);
        }
        if (k < 0)
                return rest_reply_errno(req, k, "Forgetting device %" PRIu64 " failed: %s.", id, strerror(-k));
        return rest_reply_no_content(req);
}

static int history_row(const struct db_history_row *row, void *userdata) {
        json_t *events = userdata, *o;

        o = json_pack("{s:o, s:o, s:o, s:o, s:o}",
                      "time", rest_json_time(row->time_usec),
                      "type", rest_json_string_or_null(row->type),
                      "image", rest_json_string_or_null(row->image_id),
                      "job", row->job_id ? json_integer((json_int_t) row->job_id) : json_null(),
                      "message", rest_json_string_or_null(row->message));
        if (json_array_append_new(events, o) < 0)
                return -ENOMEM;
        return 0;
}

int rest_device_history(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        unsigned page_max = m->config->rest_page_max ? m->config->rest_page_max : 1000;
        struct device *d;
        uint64_t limit;
        json_t *events;
        int k;

        k = rest_find_device(req, req->path_id, &d);
        if (k < 0)
                return k;
        k = rest_query_uint(req, "limit", MIN(REST_HISTORY_LIMIT_DEFAULT, page_max), 1, page_max, &limit);
        if (k < 0)
                return k;
        events = json_array();
        if (!events)
                return -ENOMEM;
        k = db_history_list(m->db, d->id, 0, (unsigned) limit, history_row, events);
        if (k < 0) {
                json_decref(events);
                return rest_reply_error(req, 500, "internal", "Reading the history of device %" PRIu64 " failed: %s.",
                                        d->id, strerror(-k));
        }
        return rest_reply_json(req, 200, json_pack("{s:I, s:o}", "device", (json_int_t) d->id, "events", events));
}
