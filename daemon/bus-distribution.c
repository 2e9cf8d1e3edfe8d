/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.smpgw.Distribution1 at /org/smpgw/distribution/<id> (id: decimal):
 * Bluetooth Mesh distributions (distribution.h), and Manager1's
 * StartDistribution() options.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "bus-internal.h"
#include "distribution.h"
#include "engine.h"
#include "manager.h"
#include "smpgw/mesh-dfu.h"
#include "util.h"

const char *bus_distribution_path(uint64_t id, char buf[static SMPGW_DBUS_PATH_MAX]) {
        snprintf(buf, SMPGW_DBUS_PATH_MAX, SMPGW_DBUS_DISTRIBUTION_PREFIX "/%" PRIu64, id);
        return buf;
}

/* ---- StartDistribution(distributor, image, targets, options) ---- */

static int read_value(sd_bus_message *message, const char *key, char type, void *ret, sd_bus_error *error) {
        const char contents[2] = { type, 0 };
        int r;

        r = sd_bus_message_enter_container(message, SD_BUS_TYPE_VARIANT, contents);
        if (r < 0)
                return bus_error_set(error, -EINVAL, "Option '%s' must be of type '%s'.", key, contents);
        r = sd_bus_message_read_basic(message, type, ret);
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(message);
}

static int read_option(sd_bus_message *message, const char *key, struct distribution_policy *p, sd_bus_error *error) {
        const char *apply;
        uint32_t u;
        int r;

        if (streq(key, "apply")) {
                r = read_value(message, key, SD_BUS_TYPE_STRING, &apply, error);
                if (r < 0)
                        return r;
                r = distribution_apply_from_string(apply);
                if (r < 0)
                        return bus_error_set(error, -EINVAL, "Option 'apply' is 'now' or 'verify-only'.");
                p->apply = (enum distribution_apply) r;
                return 0;
        }
        if (streq(key, "deadline"))
                return read_value(message, key, SD_BUS_TYPE_UINT64, &p->deadline_usec, error);
        if (streq(key, "app_idx"))
                return read_value(message, key, SD_BUS_TYPE_UINT16, &p->app_idx, error);
        if (streq(key, "group"))
                return read_value(message, key, SD_BUS_TYPE_UINT16, &p->group, error);
        if (streq(key, "ttl"))
                return read_value(message, key, SD_BUS_TYPE_BYTE, &p->ttl, error);
        if (streq(key, "timeout_base"))
                return read_value(message, key, SD_BUS_TYPE_UINT16, &p->timeout_base, error);
        if (streq(key, "xfer_mode"))
                return read_value(message, key, SD_BUS_TYPE_BYTE, &p->xfer_mode, error);
        if (streq(key, "force")) {
                int force;
                r = read_value(message, key, SD_BUS_TYPE_BOOLEAN, &force, error);
                if (r < 0)
                        return r;
                p->force = force;
                return 0;
        }
        /* The ranges are the engine's (engine_distribution_start()), as
         * for REST: one check, one sentence. */
        if (streq(key, "attempts")) {
                r = read_value(message, key, SD_BUS_TYPE_UINT32, &u, error);
                if (r < 0)
                        return r;
                p->max_attempts = u;
                return 0;
        }
        return bus_error_set(error, -EINVAL,
                             "Unknown option '%s'; options are 'apply' (s), 'attempts' (u), 'deadline' (t, "
                             "CLOCK_REALTIME µs), 'app_idx' (q), 'group' (q), 'ttl' (y), 'timeout_base' (q), "
                             "'xfer_mode' (y), 'force' (b).",
                             key);
}

static int read_options(sd_bus_message *message, struct distribution_policy *p, sd_bus_error *error) {
        int r;

        r = sd_bus_message_enter_container(message, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(message, SD_BUS_TYPE_DICT_ENTRY, "sv")) > 0) {
                const char *key;
                r = sd_bus_message_read(message, "s", &key);
                if (r < 0)
                        return r;
                r = read_option(message, key, p, error);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(message);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(message);
}

int bus_method_start_distribution(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct bus_api *api = userdata;
        struct manager *m = api->manager;
        _cleanup_(smp_strv_freep) char **specs = NULL;
        _cleanup_free_ struct device **targets = NULL;
        struct distribution_policy p = {};
        struct distribution *d;
        struct engine_error e;
        struct device *dist;
        struct image *img;
        const char *dist_spec, *image;
        char path[SMPGW_DBUS_PATH_MAX];
        size_t n;
        int r;

        r = sd_bus_message_read(message, "ss", &dist_spec, &image);
        if (r < 0)
                return r;
        r = sd_bus_message_read_strv(message, &specs);
        if (r < 0)
                return r;
        r = read_options(message, &p, error);
        if (r < 0)
                return r;
        r = engine_device_find(m, dist_spec, &dist, &e);
        if (r < 0)
                return bus_error_set_engine(error, &e);
        r = engine_image_find(m, "image", image, &img, &e);
        if (r < 0)
                return bus_error_set_engine(error, &e);
        n = 0;
        for (char **sp = specs; sp && *sp; sp++)
                n++;
        if (n == 0 || n > DISTRIBUTION_TARGETS_MAX)
                return bus_error_set(error, -EINVAL, "1 to %u mesh targets.", DISTRIBUTION_TARGETS_MAX);
        targets = calloc(n, sizeof(*targets));
        if (!targets)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                targets[i] = engine_device_lookup(m, specs[i]);
                if (!targets[i])
                        return bus_error_set(error, -ENOENT, "No device '%s' (targets[%zu]).", specs[i], i);
        }
        r = engine_distribution_start(m, dist, img, targets, n, &p, &d, &e);
        if (r < 0)
                return bus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, "o", bus_distribution_path(d->id, path));
}

/* ---- org.smpgw.Distribution1 ---- */

static void *distribution_lookup(struct manager *m, const char *name) {
        uint64_t id = bus_path_id(name);
        return id ? manager_find_distribution(m, id) : NULL;
}

static void *const *distribution_list(struct manager *m, size_t *ret_n) {
        *ret_n = m->n_distributions;
        return (void *const *) m->distributions;
}

static const char *distribution_path_of(const void *object, char buf[static SMPGW_DBUS_PATH_MAX]) {
        return bus_distribution_path(((const struct distribution *) object)->id, buf);
}

static uint32_t count(const struct distribution *d, enum distribution_target_state s) {
        uint32_t n = 0;
        for (size_t i = 0; i < d->n_targets; i++)
                n += d->targets[i].state == s;
        return n;
}

static int get_distributor(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct distribution *d = userdata;
        char buf[SMPGW_DBUS_PATH_MAX];
        return sd_bus_message_append(reply, "o", bus_device_path(d->distributor_id, buf));
}

/* a(tqsuyyys): device id, address, state, attempts, phase, status,
 * progress (percent), reason ("" when none). */
static int get_targets(sd_bus *bus, const char *path, const char *interface, const char *property,
                       sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct distribution *d = userdata;
        int r;

        r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "(tqsuyyys)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->n_targets; i++) {
                const struct distribution_target *t = &d->targets[i];
                r = sd_bus_message_append(reply, "(tqsuyyys)", (uint64_t) t->device_id, t->addr,
                                          distribution_target_state_to_string(t->state) ?: "", (uint32_t) t->attempts,
                                          t->phase, t->status, t->progress, t->reason ?: "");
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

BUS_DEFINE_GETTER(get_id, struct distribution, "t", (uint64_t) o->id)
BUS_DEFINE_GETTER(get_distributor_id, struct distribution, "t", (uint64_t) o->distributor_id)
BUS_DEFINE_GETTER(get_image_id, struct distribution, "s", o->image_id)
BUS_DEFINE_GETTER(get_rollout, struct distribution, "t", (uint64_t) o->policy.rollout_id)
BUS_DEFINE_GETTER(get_apply, struct distribution, "s", distribution_apply_to_string(o->policy.apply) ?: "")
BUS_DEFINE_GETTER(get_state, struct distribution, "s", distribution_state_to_string(o->state) ?: "")
BUS_DEFINE_GETTER(get_step, struct distribution, "s", distribution_step_to_string(o->step) ?: "")
BUS_DEFINE_GETTER(get_max_attempts, struct distribution, "u", (uint32_t) o->policy.max_attempts)
BUS_DEFINE_GETTER(get_rounds, struct distribution, "u", (uint32_t) o->rounds)
BUS_DEFINE_GETTER(get_targets_total, struct distribution, "u", (uint32_t) o->n_targets)
BUS_DEFINE_GETTER(get_targets_updated, struct distribution, "u", count(o, DISTRIBUTION_TARGET_UPDATED))
BUS_DEFINE_GETTER(get_targets_failed, struct distribution, "u", count(o, DISTRIBUTION_TARGET_FAILED))
BUS_DEFINE_GETTER(get_error, struct distribution, "s", o->error ?: "")
BUS_DEFINE_GETTER(get_created, struct distribution, "t", (uint64_t) o->created_usec)
BUS_DEFINE_GETTER(get_finished, struct distribution, "t", (uint64_t) o->finished_usec)
BUS_DEFINE_GETTER(get_updated, struct distribution, "t", (uint64_t) o->updated_usec)

typedef int (*op_fn)(struct manager *m, struct distribution *d, struct engine_error *e);

static int run_op(sd_bus_message *message, struct distribution *d, op_fn fn, sd_bus_error *error) {
        struct engine_error e;

        if (fn(d->manager, d, &e) < 0)
                return bus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, NULL);
}

static int method_cancel(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return run_op(message, userdata, engine_distribution_cancel, error);
}
static int method_suspend(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return run_op(message, userdata, engine_distribution_suspend, error);
}
static int method_resume(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return run_op(message, userdata, engine_distribution_resume, error);
}
static int method_apply(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return run_op(message, userdata, engine_distribution_apply, error);
}

static const sd_bus_vtable distribution_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "t", get_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Distributor", "o", get_distributor, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DistributorId", "t", get_distributor_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ImageId", "s", get_image_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Rollout", "t", get_rollout, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Apply", "s", get_apply, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Step", "s", get_step, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MaxAttempts", "u", get_max_attempts, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Rounds", "u", get_rounds, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("TargetsTotal", "u", get_targets_total, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("TargetsUpdated", "u", get_targets_updated, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("TargetsFailed", "u", get_targets_failed, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Targets", "a(tqsuyyys)", get_targets, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Error", "s", get_error, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Created", "t", get_created, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Finished", "t", get_finished, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Updated", "t", get_updated, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Cancel", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_cancel, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Suspend", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_suspend,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Resume", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_resume, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Apply", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_apply, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

const struct bus_kind bus_distribution_kind = {
        .prefix = SMPGW_DBUS_DISTRIBUTION_PREFIX,
        .interface = SMPGW_DBUS_DISTRIBUTION_IFACE,
        .vtable = distribution_vtable,
        .lookup = distribution_lookup,
        .list = distribution_list,
        .path_of = distribution_path_of,
};
