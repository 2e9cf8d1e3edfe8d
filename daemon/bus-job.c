/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.smpgw.Job1 at /org/smpgw/job/<id> (id: decimal), and the options
 * of a push (Manager1.Push(), Device1.Push()).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "bus-internal.h"
#include "engine.h"
#include "manager.h"
#include "util.h"

/* ---- push options ---- */

/* Enters the variant of an option and reads its one basic value, or says
 * which type the option wants. */
static int read_option_value(sd_bus_message *message, const char *key, char type, void *ret,
                             sd_bus_error *error) {
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

static int read_push_option(sd_bus_message *message, const char *key, struct engine_push *push,
                            sd_bus_error *error) {
        uint32_t attempts;
        int r;

        if (streq(key, "mode"))
                return read_option_value(message, key, SD_BUS_TYPE_STRING, &push->mode, error);
        if (streq(key, "attempts")) {
                r = read_option_value(message, key, SD_BUS_TYPE_UINT32, &attempts, error);
                if (r < 0)
                        return r;
                push->has_attempts = true;
                push->attempts = attempts;
                return 0;
        }
        if (streq(key, "force")) {
                int force;
                r = read_option_value(message, key, SD_BUS_TYPE_BOOLEAN, &force, error);
                if (r < 0)
                        return r;
                push->force = force;
                return 0;
        }
        return bus_error_set(error, -EINVAL,
                             "Unknown option '%s'; options are 'mode' (s), 'attempts' (u) and 'force' (b).", key);
}

int bus_read_push_options(sd_bus_message *message, struct engine_push *push, sd_bus_error *error) {
        bool seen_mode = false, seen_attempts = false, seen_force = false;
        int r;

        r = sd_bus_message_enter_container(message, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(message, SD_BUS_TYPE_DICT_ENTRY, "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(message, "s", &key);
                if (r < 0)
                        return r;
                /* An a{sv} may repeat a key; REST's JSON may not, and the
                 * last one silently winning would hide a client's bug. */
                bool *seen = streq(key, "mode")       ? &seen_mode
                             : streq(key, "attempts") ? &seen_attempts
                             : streq(key, "force")    ? &seen_force
                                                      : NULL;
                if (seen && *seen)
                        return bus_error_set(error, -EINVAL, "Option '%s' is given twice.", key);
                if (seen)
                        *seen = true;
                r = read_push_option(message, key, push, error);
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

/* ---- org.smpgw.Job1 ---- */

static void *job_lookup(struct manager *m, const char *name) {
        uint64_t id = bus_path_id(name);
        return id ? manager_find_job(m, id) : NULL;
}

static void *const *job_list(struct manager *m, size_t *ret_n) {
        *ret_n = m->n_jobs;
        return (void *const *) m->jobs;
}

static const char *job_path_of(const void *object, char buf[static SMPGW_DBUS_PATH_MAX]) {
        return bus_job_path(((const struct job *) object)->id, buf);
}


static int job_get_device(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct job *j = userdata;
        char buf[SMPGW_DBUS_PATH_MAX];
        return sd_bus_message_append(reply, "o", bus_device_path(j->device_id, buf));
}

static int job_get_conn(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct job *j = userdata;
        const struct device *d = j->device;
        return sd_bus_message_append(reply, "s", d ? d->conn : "");
}

static int job_get_image(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct job *j = userdata;
        char buf[SMPGW_DBUS_PATH_MAX];
        return sd_bus_message_append(reply, "o", bus_image_path(j->image_id, buf));
}

BUS_DEFINE_GETTER(job_get_id, struct job, "t", (uint64_t) o->id)
BUS_DEFINE_GETTER(job_get_device_id, struct job, "t", (uint64_t) o->device_id)
BUS_DEFINE_GETTER(job_get_image_id, struct job, "s", o->image_id)
BUS_DEFINE_GETTER(job_get_rollout, struct job, "t", (uint64_t) o->rollout_id)
BUS_DEFINE_GETTER(job_get_mode, struct job, "s", smp_update_mode_to_string(o->mode) ?: "")
BUS_DEFINE_GETTER(job_get_state, struct job, "s", job_state_to_string(o->state) ?: "")
BUS_DEFINE_GETTER(job_get_step, struct job, "s", o->has_step ? smp_update_step_to_string(o->step) ?: "" : "")
BUS_DEFINE_GETTER(job_get_outcome, struct job, "s",
              o->has_outcome ? smp_update_outcome_to_string(o->outcome) ?: "" : "")
BUS_DEFINE_GETTER(job_get_attempts, struct job, "u", (uint32_t) o->attempts)
BUS_DEFINE_GETTER(job_get_max_attempts, struct job, "u", (uint32_t) o->max_attempts)
BUS_DEFINE_GETTER(job_get_bytes_sent, struct job, "t", (uint64_t) o->bytes_sent)
BUS_DEFINE_GETTER(job_get_bytes_total, struct job, "t", (uint64_t) o->bytes_total)
BUS_DEFINE_GETTER(job_get_progress, struct job, "d", job_progress(o))
BUS_DEFINE_GETTER(job_get_rate, struct job, "d", job_rate(o))
BUS_DEFINE_GETTER(job_get_error, struct job, "s", o->error ?: "")
BUS_DEFINE_GETTER(job_get_created, struct job, "t", (uint64_t) o->created_usec)
BUS_DEFINE_GETTER(job_get_started, struct job, "t", (uint64_t) o->started_usec)
BUS_DEFINE_GETTER(job_get_finished, struct job, "t", (uint64_t) o->finished_usec)
BUS_DEFINE_GETTER(job_get_next_attempt, struct job, "t", (uint64_t) o->next_attempt_usec)
BUS_DEFINE_GETTER(job_get_updated, struct job, "t", (uint64_t) o->updated_usec)

static int job_method_cancel(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct job *j = userdata;
        struct engine_error e;

        if (engine_job_cancel(j->manager, j, &e) < 0)
                return bus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, NULL);
}

static int job_method_activate(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct job *j = userdata;
        struct engine_error e;

        if (engine_job_activate(j->manager, j, &e) < 0)
                return bus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, NULL);
}

static const sd_bus_vtable job_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "t", job_get_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Device", "o", job_get_device, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DeviceId", "t", job_get_device_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Conn", "s", job_get_conn, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Image", "o", job_get_image, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ImageId", "s", job_get_image_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Rollout", "t", job_get_rollout, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Mode", "s", job_get_mode, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", job_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Step", "s", job_get_step, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Outcome", "s", job_get_outcome, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Attempts", "u", job_get_attempts, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MaxAttempts", "u", job_get_max_attempts, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("BytesSent", "t", job_get_bytes_sent, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BytesTotal", "t", job_get_bytes_total, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Progress", "d", job_get_progress, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Rate", "d", job_get_rate, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Error", "s", job_get_error, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Created", "t", job_get_created, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Started", "t", job_get_started, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Finished", "t", job_get_finished, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NextAttempt", "t", job_get_next_attempt, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Updated", "t", job_get_updated, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Cancel", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, job_method_cancel,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Activate", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, job_method_activate,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

const struct bus_kind bus_job_kind = {
        .prefix = SMPGW_DBUS_JOB_PREFIX,
        .interface = SMPGW_DBUS_JOB_IFACE,
        .vtable = job_vtable,
        .lookup = job_lookup,
        .list = job_list,
        .path_of = job_path_of,
};
