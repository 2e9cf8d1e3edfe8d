/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * /api/v1/distributions: mesh distributions (distribution.h), and their
 * JSON form as REST and the event stream show it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distribution.h"
#include "engine.h"
#include "rest-internal.h"
#include "smpgw/mesh-dfu.h"

static json_t *target_json(const struct distribution_target *t) {
        char addr[8];

        snprintf(addr, sizeof(addr), "0x%04x", t->addr);
        return json_pack("{s:I, s:s, s:s, s:I, s:o, s:o, s:I, s:o}", "device", (json_int_t) t->device_id, "addr", addr,
                         "state", distribution_target_state_to_string(t->state) ?: "failed", "attempts",
                         (json_int_t) t->attempts, "phase",
                         rest_json_string_or_null(smp_mesh_dfu_phase_to_string(t->phase)), "status",
                         rest_json_string_or_null(smp_mesh_dfu_status_to_string(t->status)), "progress",
                         (json_int_t) t->progress, "reason", rest_json_string_or_null(t->reason));
}

json_t *rest_json_distribution(struct manager *m, const struct distribution *d) {
        json_t *targets = json_array();
        size_t updated = 0, failed = 0;

        (void) m;
        if (!targets)
                return NULL;
        for (size_t i = 0; i < d->n_targets; i++) {
                const struct distribution_target *t = &d->targets[i];
                json_t *o = target_json(t);
                if (!o) {
                        json_decref(targets);
                        return NULL;
                }
                json_array_append_new(targets, o);
                updated += t->state == DISTRIBUTION_TARGET_UPDATED;
                failed += t->state == DISTRIBUTION_TARGET_FAILED;
        }
        return json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
                         (json_int_t) d->id, "distributor", (json_int_t) d->distributor_id, "image", d->image_id,
                         "state", distribution_state_to_string(d->state) ?: "failed", "step",
                         distribution_step_to_string(d->step) ?: "done", "apply",
                         distribution_apply_to_string(d->policy.apply) ?: "now", "max_attempts",
                         (json_int_t) d->policy.max_attempts, "rounds", (json_int_t) d->rounds, "targets_total",
                         (json_int_t) d->n_targets, "targets_updated", (json_int_t) updated, "targets_failed",
                         (json_int_t) failed, "rollout",
                         d->policy.rollout_id ? json_integer((json_int_t) d->policy.rollout_id) : json_null(), "error",
                         rest_json_string_or_null(d->error), "created", rest_json_time(d->created_usec), "finished",
                         rest_json_time(d->finished_usec), "updated", rest_json_time(d->updated_usec), "targets",
                         targets);
}

json_t *rest_json_mesh_target(const struct device *d) {
        const struct device_mesh *mt = d->mesh;
        char addr[8];

        snprintf(addr, sizeof(addr), "0x%04x", mt->addr);
        return json_pack(
                "{s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "distributor", (json_int_t) mt->distributor_id, "addr",
                addr, "fwid", rest_json_string_or_null(mt->fwid[0] ? mt->fwid : NULL), "version",
                rest_json_string_or_null(mt->version[0] ? mt->version : NULL), "phase",
                mt->has_phase ? rest_json_string_or_null(smp_mesh_dfu_phase_to_string(mt->phase)) : json_null(),
                "status",
                mt->has_phase ? rest_json_string_or_null(smp_mesh_dfu_status_to_string(mt->status)) : json_null(),
                "updated", rest_json_time(mt->updated_usec), "direct_device",
                mt->direct_device_id ? json_integer((json_int_t) mt->direct_device_id) : json_null());
}

static json_t *distribution_form(struct manager *m, const void *d) {
        return rest_json_distribution(m, d);
}

int rest_distributions_list(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        json_t *items = rest_json_array(m, (void *const *) m->distributions, m->n_distributions, distribution_form);

        return rest_reply_page(req, "distributions", items, m->n_distributions, 0, 0);
}

static int find_device_field(struct rest_request *req, json_t *v, const char *field, ssize_t index,
                             struct device **ret) {
        struct manager *m = req->rest->manager;
        char spec[24];
        const char *s = NULL;

        if (json_is_integer(v)) {
                snprintf(spec, sizeof(spec), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                s = spec;
        } else if (json_is_string(v))
                s = json_string_value(v);
        /* Replied: a negative return tells the handler to stop (a
         * reply returns 0).  Missing or of another type is the request's
         * fault (400); only a name that names nothing is 404. */
        if (!s) {
                if (index >= 0)
                        (void) rest_reply_error(req, 400, "invalid_field",
                                                "Field '%s[%zd]' must be a device id or connection string.", field,
                                                index);
                else
                        (void) rest_reply_error(req, 400, "invalid_field",
                                                "Field '%s' is required: a device id or connection string.", field);
                return -EINVAL;
        }
        *ret = engine_device_lookup(m, s);
        if (*ret)
                return 0;
        if (index >= 0)
                (void) rest_reply_error(req, 404, "not_found", "Field '%s[%zd]': no such device.", field, index);
        else
                (void) rest_reply_error(req, 404, "not_found", "Field '%s': no such device.", field);
        return -ENOENT;
}

static int get_uint(struct rest_request *req, const char *field, uint64_t max, uint64_t *ret) {
        json_t *v = json_object_get(req->json, field);

        if (!v)
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t) json_integer_value(v) > max) {
                (void) rest_reply_error(req, 400, "invalid_field", "Field '%s' must be an integer 0..%" PRIu64 ".",
                                        field, max);
                return -EINVAL;
        }
        *ret = (uint64_t) json_integer_value(v);
        return 1;
}

int rest_distributions_create(struct rest_request *req) {
        static const char *const fields[] = { "distributor", "image",   "targets", "apply", "attempts",
                                              "deadline",    "app_idx", "group",   "ttl",   "timeout_base",
                                              "xfer_mode",   "force",   NULL };
        struct manager *m = req->rest->manager;
        struct distribution_policy p = {};
        _cleanup_free_ struct device **targets = NULL;
        struct distribution *d;
        struct device *dist;
        struct image *img;
        struct engine_error e;
        uint64_t v;
        json_t *t;
        int k;

        k = rest_json_check_fields(req, req->json, fields);
        if (k < 0)
                return k;
        k = find_device_field(req, json_object_get(req->json, "distributor"), "distributor", -1, &dist);
        if (k < 0)
                return k;
        t = json_object_get(req->json, "image");
        if (!json_is_string(t))
                return rest_reply_error(req, 400, "invalid_field", "Field 'image' is required: an image id.");
        if (engine_image_find(m, "image", json_string_value(t), &img, &e) < 0)
                return rest_reply_engine_error(req, &e);
        t = json_object_get(req->json, "targets");
        if (!json_is_array(t) || json_array_size(t) == 0 || json_array_size(t) > DISTRIBUTION_TARGETS_MAX)
                return rest_reply_error(req, 400, "invalid_field",
                                        "Field 'targets' must be an array of 1 to %u mesh targets.",
                                        DISTRIBUTION_TARGETS_MAX);
        targets = calloc(json_array_size(t), sizeof(*targets));
        if (!targets)
                return -ENOMEM;
        for (size_t i = 0; i < json_array_size(t); i++) {
                k = find_device_field(req, json_array_get(t, i), "targets", (ssize_t) i, &targets[i]);
                if (k < 0)
                        return k;
        }
        json_t *a = json_object_get(req->json, "apply");
        if (a) {
                int ap = json_is_string(a) ? distribution_apply_from_string(json_string_value(a)) : -EINVAL;
                if (ap < 0)
                        return rest_reply_error(req, 400, "invalid_field",
                                                "Field 'apply' must be 'now' or 'verify-only'.");
                p.apply = (enum distribution_apply) ap;
        }
        json_t *force = json_object_get(req->json, "force");
        if (force) {
                if (!json_is_boolean(force))
                        return rest_reply_error(req, 400, "invalid_field", "Field 'force' must be true or false.");
                p.force = json_is_true(force);
        }
#define UINT_FIELD(name, max, dest)                  \
        do {                                         \
                v = 0;                               \
                k = get_uint(req, name, max, &v);    \
                if (k < 0)                           \
                        return k;                    \
                if (k > 0)                           \
                        dest = (__typeof__(dest)) v; \
        } while (0)
        /* Only what the policy's fields can hold: the ranges within
         * them are the engine's (engine_distribution_start()), the same
         * checks and sentences as over D-Bus. */
        UINT_FIELD("attempts", UINT32_MAX, p.max_attempts);
        UINT_FIELD("deadline", 253402300799u, p.deadline_usec); /* 9999-12-31: µs fit 64 bits */
        UINT_FIELD("app_idx", UINT16_MAX, p.app_idx);
        UINT_FIELD("group", UINT16_MAX, p.group);
        UINT_FIELD("ttl", UINT8_MAX, p.ttl);
        UINT_FIELD("timeout_base", UINT16_MAX, p.timeout_base);
        UINT_FIELD("xfer_mode", UINT8_MAX, p.xfer_mode);
#undef UINT_FIELD
        /* deadline is given in seconds since the epoch */
        p.deadline_usec *= 1000000u;
        k = engine_distribution_start(m, dist, img, targets, json_array_size(t), &p, &d, &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);
        return rest_reply_json(req, 201, rest_json_distribution(m, d));
}

static int find(struct rest_request *req, struct distribution **ret) {
        struct engine_error e;

        if (engine_distribution_find(req->rest->manager, req->path_id, ret, &e) < 0) {
                (void) rest_reply_engine_error(req, &e);
                return e.error;
        }
        return 0;
}

int rest_distribution_get(struct rest_request *req) {
        struct distribution *d;
        int k = find(req, &d);
        if (k < 0)
                return k;
        return rest_reply_json(req, 200, rest_json_distribution(req->rest->manager, d));
}

typedef int (*distribution_op_fn)(struct manager *m, struct distribution *d, struct engine_error *e);

static int op(struct rest_request *req, distribution_op_fn fn) {
        struct engine_error e;
        struct distribution *d;
        int k = find(req, &d);
        if (k < 0)
                return k;
        k = fn(req->rest->manager, d, &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);
        return rest_reply_json(req, 202, rest_json_distribution(req->rest->manager, d));
}

int rest_distribution_cancel(struct rest_request *req) {
        return op(req, engine_distribution_cancel);
}
int rest_distribution_suspend(struct rest_request *req) {
        return op(req, engine_distribution_suspend);
}
int rest_distribution_resume(struct rest_request *req) {
        return op(req, engine_distribution_resume);
}
int rest_distribution_apply(struct rest_request *req) {
        return op(req, engine_distribution_apply);
}
