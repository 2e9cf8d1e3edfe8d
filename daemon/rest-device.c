/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * /api/v1/devices: the inventory (list with filters and pages, add by
 * connection string, probe, forget) and a device's history.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "db.h"
#include "distribution.h"
#include "engine.h"
#include "hawkbit.h"
#include "os-info.h"
#include "rest-internal.h"
#include "rest-text.h"

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

json_t *rest_json_device_labels(const struct device *d) {
        json_t *a = json_array();

        for (size_t i = 0; a && i < d->n_labels; i++)
                if (json_array_append_new(a, json_string(d->labels[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

json_t *rest_json_device(struct manager *m, const struct device *d) {
        struct os_info_fields os;
        const struct job *unfinished = d->unfinished_job;
        json_t *o, *images;

        images = json_array();
        if (!images)
                return NULL;
        for (size_t i = 0; i < d->slots->n_slots && i < SMP_UPDATE_SLOTS_MAX; i++) {
                if (!d->slots->slots[i].present)
                        continue;
                if (json_array_append_new(images, json_slot(&d->slots->slots[i])) < 0) {
                        json_decref(images);
                        return NULL;
                }
        }

        struct hawkbit_device_status hb;
        hawkbit_device_status(m->hawkbit, d->id, &hb);
        json_t *hawkbit = json_pack("{s:b, s:o, s:o, s:o, s:I}", "managed", hb.managed, "controller_id",
                                    rest_json_string_or_null(hb.controller_id), "action_id",
                                    hb.action_id ? json_integer((json_int_t) hb.action_id) : json_null(),
                                    "last_feedback", rest_json_string_or_null(hb.last_feedback), "feedback_queued",
                                    (json_int_t) hb.feedback_queued);
        (void) os_info_parse(d->os_info, &os);
        o = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
                      " s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                      "id", (json_int_t) d->id, "conn", rest_json_string_or_null(d->conn), "transport",
                      rest_json_string_or_null(d->transport), "address", rest_json_string_or_null(d->address),
                      "address_type", rest_json_string_or_null(d->address_type), "adapter",
                      rest_json_string_or_null(d->adapter), "name", rest_json_string_or_null(d->name), "state",
                      rest_json_string_or_null(device_state_to_string(d->state)), "source",
                      rest_json_string_or_null(d->source), "rssi", d->has_rssi ? json_integer(d->rssi) : json_null(),
                      "first_seen", rest_json_time(d->first_seen_usec), "last_seen", rest_json_time(d->last_seen_usec),
                      "last_probe", rest_json_time(d->last_probe_usec), "params",
                      d->has_params ? json_pack("{s:I, s:I}", "buf_size", (json_int_t) d->buf_size, "buf_count",
                                                (json_int_t) d->buf_count)
                                    : json_null(),
                      "os_info", rest_json_string_or_null(d->os_info), "bootloader",
                      rest_json_string_or_null(d->bootloader), "board",
                      rest_json_string_or_null(os.board[0] ? os.board : NULL), "app",
                      rest_json_string_or_null(os.app[0] ? os.app : NULL), "smp_version",
                      d->smp_version ? json_integer(d->smp_version) : json_null(), "last_error",
                      rest_json_string_or_null(d->last_error), "job",
                      unfinished ? json_integer((json_int_t) unfinished->id) : json_null(), "images", images, "labels",
                      rest_json_device_labels(d), "hawkbit", hawkbit);

        if (o) {
                json_object_set_new(o, "role", rest_json_string_or_null(d->role));
                json_object_set_new(o, "mesh", d->mesh ? rest_json_mesh_target(d) : json_null());
        }
        return o;
}

/* rest_json_device() written straight as text, for list pages: no value
 * allocated per field.  A 100-item page through jansson was 20 µs a
 * device (2 ms a page, 41 ms p99 at 16 clients); through fprintf() about
 * 3 µs, most of it in vfprintf and stdio's copies.  The two forms must
 * say the same: tests/daemon/test_scale.py compares every item of a page
 * with the device's own GET. */
#define KEY(t, name) rest_text_lit((t), ",\"" name "\":")

static void put_optional_u64(struct rest_text *t, bool has, uint64_t v) {
        if (has)
                rest_text_put_u64(t, v);
        else
                rest_text_lit(t, "null");
}

static void write_images(struct rest_text *t, const struct smp_update_snapshot *slots) {
        rest_text_putc(t, '[');
        bool first = true;
        for (size_t i = 0; i < slots->n_slots && i < SMP_UPDATE_SLOTS_MAX; i++) {
                const struct smp_update_slot *sl = &slots->slots[i];
                char hash[2 * sizeof(sl->hash) + 1];
                if (!sl->present)
                        continue;
                if (!first)
                        rest_text_putc(t, ',');
                first = false;
                rest_text_lit(t, "{\"image\":");
                rest_text_put_u64(t, sl->image);
                rest_text_lit(t, ",\"slot\":");
                rest_text_put_u64(t, sl->slot);
                rest_text_lit(t, ",\"version\":");
                rest_text_put_string_or_null(t, sl->version);
                hex_encode(sl->hash, MIN(sl->hash_len, sizeof(sl->hash)), hash);
                rest_text_lit(t, ",\"hash\":\"");
                rest_text_puts(t, hash);
                rest_text_lit(t, "\",\"active\":");
                rest_text_put_bool(t, sl->active);
                rest_text_lit(t, ",\"confirmed\":");
                rest_text_put_bool(t, sl->confirmed);
                rest_text_lit(t, ",\"pending\":");
                rest_text_put_bool(t, sl->pending);
                rest_text_lit(t, ",\"bootable\":");
                rest_text_put_bool(t, sl->bootable);
                rest_text_lit(t, ",\"permanent\":");
                rest_text_put_bool(t, sl->permanent);
                rest_text_putc(t, '}');
        }
        rest_text_putc(t, ']');
}

/* The images array, from the text its shared slot list keeps
 * (device-slots.h), written there by the first page that shows it. */
static void put_images(struct rest_text *t, const struct smp_update_snapshot *slots) {
        struct device_slots_entry *e = device_slots_entry_of(slots);
        size_t start = t->len;

        if (e && e->page_text) {
                rest_text_put(t, e->page_text, e->page_text_len);
                return;
        }
        write_images(t, slots);
        if (!e || t->failed)
                return;
        /* Out of memory here only means the next page writes it again. */
        e->page_text = malloc(t->len - start);
        if (e->page_text) {
                memcpy(e->page_text, t->data + start, t->len - start);
                e->page_text_len = t->len - start;
        }
}

/* A board or an application where os_info_locate() found it, as
 * rest_json_device() shows os_info_parse()'s field: "" is null. */
static void put_os_info_span(struct rest_text *t, const char *os_info, uint16_t offset, uint16_t len) {
        char field[OS_INFO_FIELD_SIZE];

        if (!os_info || len == 0 || len >= sizeof(field)) {
                rest_text_lit(t, "null");
                return;
        }
        memcpy(field, os_info + offset, len);
        field[len] = '\0';
        rest_text_put_string_or_null(t, field);
}

static void device_write(struct rest_text *t, const struct device *d) {
        const struct job *unfinished = d->unfinished_job;

        rest_text_lit(t, "{\"id\":");
        rest_text_put_u64(t, d->id);
        KEY(t, "conn");
        rest_text_put_string_or_null(t, d->conn);
        KEY(t, "transport");
        rest_text_put_string_or_null(t, d->transport);
        KEY(t, "address");
        rest_text_put_string_or_null(t, d->address);
        KEY(t, "address_type");
        rest_text_put_string_or_null(t, d->address_type);
        KEY(t, "adapter");
        rest_text_put_string_or_null(t, d->adapter);
        KEY(t, "name");
        rest_text_put_string_or_null(t, d->name);
        KEY(t, "state");
        rest_text_put_string_or_null(t, device_state_to_string(d->state));
        KEY(t, "source");
        rest_text_put_string_or_null(t, d->source);
        KEY(t, "rssi");
        if (d->has_rssi)
                rest_text_put_i64(t, d->rssi);
        else
                rest_text_lit(t, "null");
        KEY(t, "first_seen");
        rest_text_put_time(t, d->first_seen_usec);
        KEY(t, "last_seen");
        rest_text_put_time(t, d->last_seen_usec);
        KEY(t, "last_probe");
        rest_text_put_time(t, d->last_probe_usec);
        KEY(t, "params");
        if (d->has_params) {
                rest_text_lit(t, "{\"buf_size\":");
                rest_text_put_u64(t, d->buf_size);
                rest_text_lit(t, ",\"buf_count\":");
                rest_text_put_u64(t, d->buf_count);
                rest_text_putc(t, '}');
        } else
                rest_text_lit(t, "null");
        KEY(t, "os_info");
        rest_text_put_string_or_null(t, d->os_info);
        KEY(t, "bootloader");
        rest_text_put_string_or_null(t, d->bootloader);
        KEY(t, "board");
        put_os_info_span(t, d->os_info, d->os_spans.board_offset, d->os_spans.board_len);
        KEY(t, "app");
        put_os_info_span(t, d->os_info, d->os_spans.app_offset, d->os_spans.app_len);
        KEY(t, "smp_version");
        put_optional_u64(t, d->smp_version != 0, d->smp_version);
        KEY(t, "last_error");
        rest_text_put_string_or_null(t, d->last_error);
        KEY(t, "job");
        put_optional_u64(t, unfinished, unfinished ? unfinished->id : 0);
        KEY(t, "images");
        put_images(t, d->slots);
        rest_text_lit(t, ",\"labels\":[");
        for (size_t i = 0; i < d->n_labels; i++) {
                if (i > 0)
                        rest_text_putc(t, ',');
                rest_text_put_string_or_null(t, d->labels[i]);
        }
        rest_text_lit(t, "],\"role\":");
        rest_text_put_string_or_null(t, d->role);
        /* Mesh targets are few: their object through jansson. */
        KEY(t, "mesh");
        json_t *mesh = d->mesh ? rest_json_mesh_target(d) : NULL;
        _cleanup_free_ char *mesh_text = mesh ? json_dumps(mesh, JSON_COMPACT) : NULL;
        json_decref(mesh);
        if (mesh_text)
                rest_text_puts(t, mesh_text);
        else
                rest_text_lit(t, "null");
        struct hawkbit_device_status hb;
        hawkbit_device_status(d->manager->hawkbit, d->id, &hb);
        rest_text_lit(t, ",\"hawkbit\":{\"managed\":");
        rest_text_put_bool(t, hb.managed);
        KEY(t, "controller_id");
        rest_text_put_string_or_null(t, hb.controller_id);
        KEY(t, "action_id");
        put_optional_u64(t, hb.action_id != 0, hb.action_id);
        KEY(t, "last_feedback");
        rest_text_put_string_or_null(t, hb.last_feedback);
        KEY(t, "feedback_queued");
        rest_text_put_u64(t, hb.feedback_queued);
        rest_text_lit(t, "}}");
}

/* What one device's text usually takes (a probed UDP device with two
 * slots is about 900 bytes): the page's buffer is sized once for the
 * page, not grown by doubling through it. */
#define DEVICE_TEXT_ESTIMATE 1024u

/* A page of devices as text, in the order and layout rest_reply_page()
 * gives. */
static int reply_device_page(struct rest_request *req, struct device **page, size_t n, uint64_t total, unsigned limit,
                             uint64_t offset) {
        struct rest_text t = {};
        char *text;
        size_t len;

        (void) rest_text_reserve(&t, 64 + n * DEVICE_TEXT_ESTIMATE);
        rest_text_lit(&t, "{\"devices\":[");
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        rest_text_putc(&t, ',');
                device_write(&t, page[i]);
        }
        rest_text_lit(&t, "],\"total\":");
        rest_text_put_u64(&t, total);
        rest_text_lit(&t, ",\"limit\":");
        rest_text_put_u64(&t, limit);
        rest_text_lit(&t, ",\"offset\":");
        rest_text_put_u64(&t, offset);
        rest_text_lit(&t, "}\n");
        text = rest_text_steal(&t, &len);
        if (!text)
                return -ENOMEM;
        return rest_reply_text(req, 200, "application/json", text, len);
}

int rest_devices_list(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        struct engine_device_query q = {
                .state = rest_query(req, "state"),
                .transport = rest_query(req, "transport"),
                .name = rest_query(req, "name"),
                .image = rest_query(req, "image"),
                .label = rest_query(req, "label"),
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
        return reply_device_page(req, page, n, total, q.limit, q.offset);
}

int rest_devices_add(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        struct rest_body_error be;
        struct engine_error e;
        struct device *d;
        const char *conn;
        bool created;
        int k;

        k = rest_body_device_add(req->json, &conn, &be);
        if (k < 0)
                return rest_reply_body_error(req, &be);
        k = engine_device_add(m, conn, "rest", &d, &created, &e);
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

/* PATCH "direct_device": a device id, a connection string or null (none).
 * 0 with *ret set; else the reply was sent. */
static int patch_direct_device(struct rest_request *req, json_t *v, struct device **ret) {
        char spec[24];
        const char *s;

        *ret = NULL;
        if (json_is_null(v))
                return 0;
        if (json_is_integer(v)) {
                snprintf(spec, sizeof(spec), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                s = spec;
        } else if (json_is_string(v))
                s = json_string_value(v);
        else {
                (void) rest_reply_error(req, 400, "invalid_field",
                                        "Field 'direct_device' must be a device id, a connection string or null "
                                        "(none).");
                return -EINVAL;
        }
        *ret = engine_device_lookup(req->rest->manager, s);
        if (!*ret) {
                (void) rest_reply_error(req, 404, "not_found", "Field 'direct_device': no such device.");
                return -ENOENT;
        }
        return 0;
}

/* PATCH: changes what a user may change of a device (its name, role and,
 * of a mesh target, direct device); fields left out stay as they are.
 * All or nothing: a refused field leaves the others unchanged too. */
int rest_device_patch(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        struct engine_device_patch patch = {};
        struct rest_body_error be;
        struct engine_error e;
        struct device *d;
        json_t *v;
        int k;

        k = rest_find_device(req, &d);
        if (k < 0)
                return k;
        k = rest_body_device_patch(req->json, &patch.set_name, &patch.name, &be);
        if (k < 0)
                return rest_reply_body_error(req, &be);
        v = json_object_get(req->json, "role");
        if (v) {
                if (!json_is_null(v) && !json_is_string(v))
                        return rest_reply_error(req, 400, "invalid_field",
                                                "Field 'role' must be 'mesh-distributor' or null (none).");
                patch.set_role = true;
                patch.role = json_string_value(v); /* NULL for null */
        }
        v = json_object_get(req->json, "direct_device");
        if (v) {
                k = patch_direct_device(req, v, &patch.direct);
                if (k < 0)
                        return k; /* replied */
                patch.set_direct = true;
        }
        k = engine_device_patch(m, d, &patch, &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);
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

static int reply_labels(struct rest_request *req, const struct device *d) {
        return rest_reply_json(req, 200, json_pack("{s:o}", "labels", rest_json_device_labels(d)));
}

int rest_device_labels_get(struct rest_request *req) {
        struct device *d;
        int k;

        k = rest_find_device(req, &d);
        if (k < 0)
                return k;
        return reply_labels(req, d);
}

int rest_device_labels_put(struct rest_request *req) {
        static const char *const fields[] = { "labels", NULL };
        _cleanup_free_ const char **labels = NULL;
        struct engine_error e;
        struct device *d;
        json_t *v, *item;
        size_t i;
        int k;

        k = rest_find_device(req, &d);
        if (k < 0)
                return k;
        k = rest_json_check_fields(req, req->json, fields);
        if (k < 0)
                return k;
        v = json_object_get(req->json, "labels");
        if (!json_is_array(v))
                return rest_reply_error(
                        req, 400, "invalid_field",
                        "Field 'labels' is required: a list of labels such as [\"relay\", \"floor-3\"].");
        labels = calloc(json_array_size(v) + 1, sizeof(char *));
        if (!labels)
                return rest_reply_errno(req, -ENOMEM, "Out of memory.");
        json_array_foreach(v, i, item) {
                if (!json_is_string(item))
                        return rest_reply_error(req, 400, "invalid_field", "'labels' item %zu is not a string.", i);
                labels[i] = json_string_value(item);
        }
        k = engine_device_set_labels(req->rest->manager, d, labels, json_array_size(v), &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);
        return reply_labels(req, d);
}
