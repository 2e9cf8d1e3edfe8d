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

#include "conf.h"
#include "db.h"
#include "engine.h"
#include "hawkbit.h"
#include "rest-internal.h"

/* The JSON form, as REST and the event stream show it. */
static json_t *json_slot(const struct smp_update_slot *s) {
        char hash[2 * sizeof(s->hash) + 1];

        hex_encode(s->hash, MIN(s->hash_len, sizeof(s->hash)), hash);
        return json_pack("{s:I, s:I, s:o, s:s, s:b, s:b, s:b, s:b, s:b}",
                         "image", (json_int_t) s->image,
                         "slot", (json_int_t) s->slot,
                         "version", rest_json_string_or_null(s->version),
                         "hash", hash,
                         "active", s->active,
                         "confirmed", s->confirmed,
                         "pending", s->pending,
                         "bootable", s->bootable,
                         "permanent", s->permanent);
}

json_t *rest_json_device(struct manager *m, const struct device *d) {
        const struct job *unfinished = d->unfinished_job;
        json_t *o, *images;

        images = json_array();
        if (!images)
                return NULL;
        for (size_t i = 0; i < d->slots.n_slots && i < SMP_UPDATE_SLOTS_MAX; i++) {
                if (!d->slots.slots[i].present)
                        continue;
                if (json_array_append_new(images, json_slot(&d->slots.slots[i])) < 0) {
                        json_decref(images);
                        return NULL;
                }
        }

        struct hawkbit_device_status hb;
        hawkbit_device_status(m->hawkbit, d->id, &hb);
        json_t *hawkbit = json_pack("{s:b, s:o, s:o, s:o, s:I}", "managed", hb.managed,
                                    "controller_id", rest_json_string_or_null(hb.controller_id),
                                    "action_id", hb.action_id ? json_integer((json_int_t) hb.action_id) : json_null(),
                                    "last_feedback", rest_json_string_or_null(hb.last_feedback),
                                    "feedback_queued", (json_int_t) hb.feedback_queued);
        o = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
                      " s:o, s:o, s:o, s:o}",
                      "id", (json_int_t) d->id,
                      "conn", rest_json_string_or_null(d->conn),
                      "transport", rest_json_string_or_null(d->transport),
                      "address", rest_json_string_or_null(d->address),
                      "address_type", rest_json_string_or_null(d->address_type),
                      "adapter", rest_json_string_or_null(d->adapter),
                      "name", rest_json_string_or_null(d->name),
                      "state", rest_json_string_or_null(device_state_to_string(d->state)),
                      "source", rest_json_string_or_null(d->source),
                      "rssi", d->has_rssi ? json_integer(d->rssi) : json_null(),
                      "first_seen", rest_json_time(d->first_seen_usec),
                      "last_seen", rest_json_time(d->last_seen_usec),
                      "last_probe", rest_json_time(d->last_probe_usec),
                      "params", d->has_params ? json_pack("{s:I, s:I}", "buf_size", (json_int_t) d->buf_size,
                                                          "buf_count", (json_int_t) d->buf_count)
                                              : json_null(),
                      "os_info", rest_json_string_or_null(d->os_info),
                      "bootloader", rest_json_string_or_null(d->bootloader),
                      "smp_version", d->smp_version ? json_integer(d->smp_version) : json_null(),
                      "last_error", rest_json_string_or_null(d->last_error),
                      "job", unfinished ? json_integer((json_int_t) unfinished->id) : json_null(),
                      "images", images,
                      "hawkbit", hawkbit);
        return o;
}

static json_t *device_form(struct manager *m, const void *device) {
        return rest_json_device(m, device);
}

int rest_devices_list(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        struct engine_device_query q = {
                .state = rest_query(req, "state"),
                .transport = rest_query(req, "transport"),
                .name = rest_query(req, "name"),
                .image = rest_query(req, "image"),
        };
        _cleanup_free_ struct device **page = NULL;
        struct engine_error e;
        uint64_t total;
        size_t n;
        int k;

        k = rest_query_page(req, &q.limit, &q.offset);
        if (k < 0)
                return k;
        k = engine_devices_query(m, &q, &page, &n, &total, &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);
        return rest_reply_page(req, "devices", rest_json_array(m, (void *const *) page, n, device_form), total,
                               q.limit, q.offset);
}

int rest_devices_add(struct rest_request *req) {
        static const char *const fields[] = { "conn", NULL };
        struct manager *m = req->rest->manager;
        struct engine_error e;
        struct device *d;
        bool created;
        json_t *v;
        int k;

        k = rest_json_check_fields(req, req->json, fields);
        if (k < 0)
                return k;
        v = json_object_get(req->json, "conn");
        if (!json_is_string(v) || json_string_length(v) == 0)
                return rest_reply_error(req, 400, "invalid_field",
                                        "Field 'conn' is required: a connection string such as \"udp:192.0.2.1:1337\".");
        if (strlen(json_string_value(v)) != json_string_length(v))
                return rest_reply_error(req, 400, "invalid_field", "Field 'conn' must not contain NUL characters.");
        k = engine_device_add(m, json_string_value(v), "rest", &d, &created, &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);
        /* A device known already is answered as it is. */
        return rest_reply_json(req, created ? 201 : 200, rest_json_device(m, d));
}

int rest_device_get(struct rest_request *req) {
        struct device *d;
        int k;

        k = rest_find_device(req, &d);
        if (k < 0)
                return k;
        return rest_reply_json(req, 200, rest_json_device(req->rest->manager, d));
}

/* PATCH: changes what a user may change of a device, its name; fields
 * left out stay as they are. */
int rest_device_patch(struct rest_request *req) {
        static const char *const fields[] = { "name", NULL };
        struct manager *m = req->rest->manager;
        struct engine_error e;
        struct device *d;
        json_t *v;
        int k;

        k = rest_find_device(req, &d);
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
                k = engine_device_rename(m, d, name, &e);
                if (k < 0)
                        return rest_reply_engine_error(req, &e);
        }
        return rest_reply_json(req, 200, rest_json_device(m, d));
}

typedef int (*device_op_fn)(struct manager *m, struct device *d, struct engine_error *e);

/* The path's device, and the engine's op on it; replies the refusal. */
static int device_op(struct rest_request *req, device_op_fn op, struct device **ret) {
        struct engine_error e;
        struct device *d;
        int k;

        k = rest_find_device(req, &d);
        if (k < 0)
                return k;
        k = op(req->rest->manager, d, &e);
        if (k < 0) {
                (void) rest_reply_engine_error(req, &e);
                return k;
        }
        *ret = d;
        return 0;
}

int rest_device_probe(struct rest_request *req) {
        struct device *d;
        int k;

        k = device_op(req, engine_device_probe, &d);
        if (k < 0)
                return k;
        return rest_reply_json(req, 202, rest_json_device(req->rest->manager, d));
}

int rest_device_forget(struct rest_request *req) {
        struct device *d;
        int k;

        /* d is gone (its removal announced) once this succeeds. */
        k = device_op(req, engine_device_forget, &d);
        if (k < 0)
                return k;
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
        unsigned page_max = rest_page_max(req->rest);
        struct engine_error e;
        struct device *d;
        uint64_t limit;
        json_t *events;
        int k;

        k = rest_find_device(req, &d);
        if (k < 0)
                return k;
        k = rest_query_uint(req, "limit", MIN(HISTORY_LIMIT_DEFAULT, page_max), 1, page_max, &limit);
        if (k < 0)
                return k;
        events = json_array();
        if (!events)
                return -ENOMEM;
        k = engine_device_history(m, d, (unsigned) limit, history_row, events, &e);
        if (k < 0) {
                json_decref(events);
                return rest_reply_engine_error(req, &e);
        }
        return rest_reply_json(req, 200, json_pack("{s:I, s:o}", "device", (json_int_t) d->id, "events", events));
}
