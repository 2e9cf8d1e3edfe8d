/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.smpgw.Rollout1 at /org/smpgw/rollout/<id> (id: decimal), and
 * Manager1's CreateRollout() and PlanRollout().  A rollout's spec comes
 * as a{sv} and is read into the JSON object every front end hands the
 * engine (engine-rollout.h): variants of basic types as JSON values,
 * arrays as lists, a{sv} as objects.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <systemd/sd-bus.h>

#include "bus-internal.h"
#include "engine-rollout.h"
#include "engine.h"
#include "manager.h"
#include "rollout.h"
#include "util.h"

#define SPEC_DEPTH_MAX 32 /* nesting of containers and variants; a spec needs about 12 */

const char *bus_rollout_path(uint64_t id, char buf[static SMPGW_DBUS_PATH_MAX]) {
        snprintf(buf, SMPGW_DBUS_PATH_MAX, SMPGW_DBUS_ROLLOUT_PREFIX "/%" PRIu64, id);
        return buf;
}

static void *rollout_lookup(struct manager *m, const char *name) {
        uint64_t id = bus_path_id(name);
        size_t n;
        struct rollout *const *all = rollout_executor_list(m->rollouts, &n);

        for (size_t i = 0; id && i < n; i++)
                if (all[i]->id == id)
                        return all[i];
        return NULL;
}

static void *const *rollout_list(struct manager *m, size_t *ret_n) {
        return (void *const *) rollout_executor_list(m->rollouts, ret_n);
}

static const char *rollout_path_of(const void *object, char buf[static SMPGW_DBUS_PATH_MAX]) {
        return bus_rollout_path(((const struct rollout *) object)->id, buf);
}

/* ---- a{sv} into JSON ---- */

static int read_value(sd_bus_message *m, unsigned depth, json_t **ret);

static int read_container(sd_bus_message *m, char type, const char *contents, unsigned depth, json_t **ret) {
        json_t *out;
        int r;

        if (depth > SPEC_DEPTH_MAX)
                return -EINVAL;
        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;
        if (type == SD_BUS_TYPE_ARRAY && contents[0] == SD_BUS_TYPE_DICT_ENTRY_BEGIN) {
                out = json_object();
                for (;;) {
                        const char *key, *entry;
                        json_t *v = NULL;
                        char t;
                        r = sd_bus_message_peek_type(m, &t, &entry);
                        if (r <= 0)
                                break;
                        r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, entry);
                        if (r >= 0)
                                r = sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, &key);
                        if (r >= 0)
                                r = read_value(m, depth + 1, &v);
                        if (r >= 0)
                                r = json_object_set_new(out, key, v) < 0 ? -ENOMEM : 0;
                        if (r >= 0)
                                r = sd_bus_message_exit_container(m);
                        if (r < 0) {
                                json_decref(out);
                                return r;
                        }
                }
        } else {
                out = json_array();
                for (;;) {
                        json_t *v = NULL;
                        char t;
                        const char *c;
                        r = sd_bus_message_peek_type(m, &t, &c);
                        if (r <= 0)
                                break;
                        r = read_value(m, depth + 1, &v);
                        if (r < 0)
                                break;
                        json_array_append_new(out, v);
                }
        }
        if (r < 0) {
                json_decref(out);
                return r;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0) {
                json_decref(out);
                return r;
        }
        *ret = out;
        return 0;
}

static int read_value(sd_bus_message *m, unsigned depth, json_t **ret) {
        const char *contents;
        char type;
        union {
                uint8_t y;
                int b;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
                double d;
                const char *s;
        } v;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r <= 0)
                return r < 0 ? r : -EINVAL;
        switch (type) {
        case SD_BUS_TYPE_VARIANT:
        case SD_BUS_TYPE_ARRAY:
        case SD_BUS_TYPE_STRUCT:
                if (type == SD_BUS_TYPE_VARIANT) {
                        if (depth > SPEC_DEPTH_MAX)
                                return -EINVAL;
                        r = sd_bus_message_enter_container(m, type, contents);
                        if (r < 0)
                                return r;
                        r = read_value(m, depth + 1, ret);
                        if (r < 0)
                                return r;
                        return sd_bus_message_exit_container(m);
                }
                return read_container(m, type, contents, depth, ret);
        default:
                break;
        }
        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;
        switch (type) {
        case SD_BUS_TYPE_STRING:
        case SD_BUS_TYPE_OBJECT_PATH:
                *ret = json_string(v.s);
                break;
        case SD_BUS_TYPE_BOOLEAN:
                *ret = json_boolean(v.b);
                break;
        case SD_BUS_TYPE_BYTE:
                *ret = json_integer(v.y);
                break;
        case SD_BUS_TYPE_INT16:
                *ret = json_integer(v.n);
                break;
        case SD_BUS_TYPE_UINT16:
                *ret = json_integer(v.q);
                break;
        case SD_BUS_TYPE_INT32:
                *ret = json_integer(v.i);
                break;
        case SD_BUS_TYPE_UINT32:
                *ret = json_integer(v.u);
                break;
        case SD_BUS_TYPE_INT64:
                *ret = json_integer(v.x);
                break;
        case SD_BUS_TYPE_UINT64:
                *ret = json_integer((json_int_t) v.t);
                break;
        case SD_BUS_TYPE_DOUBLE:
                *ret = json_real(v.d);
                break;
        default:
                return -EINVAL;
        }
        return *ret ? 0 : -ENOMEM;
}

static int read_spec(sd_bus_message *message, json_t **ret, sd_bus_error *error) {
        int r = read_container(message, SD_BUS_TYPE_ARRAY, "{sv}", 0, ret);
        if (r < 0)
                return bus_error_set(error, -EINVAL, "The rollout spec is no a{sv} of JSON-like values (%s).",
                                     strerror(-r));
        return 0;
}

int bus_method_create_rollout(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct bus_api *api = userdata;
        char path[SMPGW_DBUS_PATH_MAX];
        struct engine_error e;
        struct rollout *r;
        json_t *spec = NULL;
        int k;

        k = read_spec(message, &spec, error);
        if (k < 0)
                return k;
        k = engine_rollout_create(api->manager, spec, &r, &e);
        json_decref(spec);
        if (k < 0)
                return bus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, "o", bus_rollout_path(r->id, path));
}

static int reply_plan(sd_bus_message *message, json_t *plan) {
        _cleanup_free_ char *text = json_dumps(plan, JSON_COMPACT | JSON_REAL_PRECISION(6));
        json_decref(plan);
        if (!text)
                return -ENOMEM;
        return sd_bus_reply_method_return(message, "s", text);
}

int bus_method_plan_rollout(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct bus_api *api = userdata;
        struct engine_error e;
        json_t *spec = NULL, *plan = NULL;
        int k;

        k = read_spec(message, &spec, error);
        if (k < 0)
                return k;
        k = engine_rollout_plan(api->manager, spec, NULL, &plan, &e);
        json_decref(spec);
        if (k < 0)
                return bus_error_set_engine(error, &e);
        return reply_plan(message, plan);
}

/* ---- Rollout1 ---- */

BUS_DEFINE_GETTER(rollout_get_id, struct rollout, "t", (uint64_t) o->id)
BUS_DEFINE_GETTER(rollout_get_name, struct rollout, "s", o->name ?: "")
BUS_DEFINE_GETTER(rollout_get_image, struct rollout, "s", o->image_id)
BUS_DEFINE_GETTER(rollout_get_mode, struct rollout, "s", smp_update_mode_to_string(o->mode))
BUS_DEFINE_GETTER(rollout_get_state, struct rollout, "s", rollout_state_to_string(o->state))
BUS_DEFINE_GETTER(rollout_get_current_wave, struct rollout, "u", o->current_wave)
BUS_DEFINE_GETTER(rollout_get_waves, struct rollout, "u", o->n_waves)
BUS_DEFINE_GETTER(rollout_get_rate, struct rollout, "d", o->rate)
BUS_DEFINE_GETTER(rollout_get_eta, struct rollout, "t", (uint64_t) o->eta_usec)
BUS_DEFINE_GETTER(rollout_get_error, struct rollout, "s", o->error ?: "")
BUS_DEFINE_GETTER(rollout_get_paused_reason, struct rollout, "s", o->paused_reason ?: "")
BUS_DEFINE_GETTER(rollout_get_created, struct rollout, "t", (uint64_t) o->created_usec)
BUS_DEFINE_GETTER(rollout_get_started, struct rollout, "t", (uint64_t) o->started_usec)
BUS_DEFINE_GETTER(rollout_get_finished, struct rollout, "t", (uint64_t) o->finished_usec)

static int rollout_get_counts(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        uint32_t counts[_ROLLOUT_MEMBER_STATE_MAX];
        int r;

        rollout_count_states(userdata, counts);
        r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "{su}");
        for (unsigned i = 0; r >= 0 && i < _ROLLOUT_MEMBER_STATE_MAX; i++)
                r = sd_bus_message_append(reply, "{su}", rollout_member_state_to_string((enum rollout_member_state) i),
                                          counts[i]);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int rollout_get_bytes(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        uint64_t sent, total;

        rollout_bytes(userdata, &sent, &total);
        return sd_bus_message_append(reply, "t", streq(property, "BytesSent") ? sent : total);
}

static int rollout_get_json(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        json_t *o = rollout_to_json(userdata);
        _cleanup_free_ char *text = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;

        json_decref(o);
        if (!text)
                return -ENOMEM;
        return sd_bus_message_append(reply, "s", text);
}

typedef int (*control_fn)(struct manager *m, struct rollout *r, struct engine_error *e);

static int control(sd_bus_message *message, struct rollout *r, control_fn fn, sd_bus_error *error) {
        struct engine_error e;

        if (fn(r->manager, r, &e) < 0)
                return bus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, NULL);
}

static int rollout_method_pause(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return control(message, userdata, engine_rollout_pause, error);
}
static int rollout_method_resume(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return control(message, userdata, engine_rollout_resume, error);
}
static int rollout_method_cancel(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return control(message, userdata, engine_rollout_cancel, error);
}
static int rollout_method_activate(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return control(message, userdata, engine_rollout_activate, error);
}

static int rollout_method_plan(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct rollout *r = userdata;
        struct engine_error e;
        json_t *plan = NULL;

        if (engine_rollout_plan(r->manager, NULL, r, &plan, &e) < 0)
                return bus_error_set_engine(error, &e);
        return reply_plan(message, plan);
}

static const sd_bus_vtable rollout_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "t", rollout_get_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Name", "s", rollout_get_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Image", "s", rollout_get_image, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Mode", "s", rollout_get_mode, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", rollout_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CurrentWave", "u", rollout_get_current_wave, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Waves", "u", rollout_get_waves, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Counts", "a{su}", rollout_get_counts, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BytesSent", "t", rollout_get_bytes, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BytesTotal", "t", rollout_get_bytes, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Rate", "d", rollout_get_rate, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Eta", "t", rollout_get_eta, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Error", "s", rollout_get_error, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PausedReason", "s", rollout_get_paused_reason, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Created", "t", rollout_get_created, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Started", "t", rollout_get_started, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Finished", "t", rollout_get_finished, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Json", "s", rollout_get_json, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_METHOD_WITH_ARGS("Pause", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, rollout_method_pause,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Resume", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, rollout_method_resume,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Cancel", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, rollout_method_cancel,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Activate", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, rollout_method_activate,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Plan", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", plan), rollout_method_plan,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

const struct bus_kind bus_rollout_kind = {
        .prefix = SMPGW_DBUS_ROLLOUT_PREFIX,
        .interface = SMPGW_DBUS_ROLLOUT_IFACE,
        .vtable = rollout_vtable,
        .lookup = rollout_lookup,
        .list = rollout_list,
        .path_of = rollout_path_of,
};

void bus_rollout_on_event(struct bus_api *api, const struct manager_event *ev) {
        char path[SMPGW_DBUS_PATH_MAX];
        int r;

        if (!ev->rollout)
                return;
        bus_rollout_path(ev->rollout->id, path);
        switch (ev->type) {
        case MANAGER_EVENT_ROLLOUT_ADDED:
                r = sd_bus_emit_interfaces_added(api->bus, path, SMPGW_DBUS_ROLLOUT_IFACE, NULL);
                break;
        case MANAGER_EVENT_ROLLOUT_STATE:
        case MANAGER_EVENT_ROLLOUT_PROGRESS:
                r = sd_bus_emit_properties_changed_strv(api->bus, path, SMPGW_DBUS_ROLLOUT_IFACE, NULL);
                break;
        case MANAGER_EVENT_ROLLOUT_REMOVED:
                /* Out of the executor already: the interface is named. */
                r = sd_bus_emit_interfaces_removed(api->bus, path, SMPGW_DBUS_ROLLOUT_IFACE, NULL);
                break;
        default:
                r = 0;
                break;
        }
        (void) r;
}
