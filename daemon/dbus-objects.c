/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One D-Bus object per device, image and job:
 *
 *   /org/smpgw/device/<id>     org.smpgw.Device1   (id: decimal)
 *   /org/smpgw/image/<hash>    org.smpgw.Image1    (hash: 64 hex digits)
 *   /org/smpgw/job/<id>        org.smpgw.Job1      (id: decimal)
 *
 * They are fallback vtables with a find function and a node enumerator
 * per kind, not one registration per object: the manager's arrays are
 * the only list, so an object is on the bus exactly while the model has
 * it, and nothing here has to be kept in step with it.  The getters read
 * the model directly; strings the model does not have are "".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "dbus-internal.h"
#include "engine.h"
#include "manager.h"
#include "util.h"

/* ---- paths ---- */

/* The decimal id after prefix "/", one spelling per id (no leading zero,
 * no sign), or 0. */
static uint64_t path_id(const char *path, const char *prefix) {
        size_t n = strlen(prefix);
        const char *s;
        char *end;

        if (strncmp(path, prefix, n) != 0 || path[n] != '/')
                return 0;
        s = path + n + 1;
        if (s[0] < '1' || s[0] > '9' || strspn(s, "0123456789") != strlen(s))
                return 0;
        errno = 0;
        unsigned long long id = strtoull(s, &end, 10);
        if (errno != 0 || *end)
                return 0;
        return id;
}


/* ---- org.smpgw.Device1 ---- */

static int device_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **ret_found,
                       sd_bus_error *error) {
        struct dbus_api *api = userdata;
        uint64_t id = path_id(path, SMPGW_DBUS_DEVICE_PREFIX);
        struct device *d = id ? manager_find_device(api->manager, id) : NULL;

        if (!d)
                return 0;
        *ret_found = d;
        return 1;
}

static int device_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret_nodes,
                            sd_bus_error *error) {
        struct dbus_api *api = userdata;
        struct manager *m = api->manager;
        _cleanup_(smp_strv_freep) char **nodes = calloc(m->n_devices + 1, sizeof(char *));
        char path[SMPGW_DBUS_PATH_MAX];

        if (!nodes)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_devices; i++) {
                nodes[i] = strdup(dbus_device_path(m->devices[i]->id, path));
                if (!nodes[i])
                        return -ENOMEM;
        }
        *ret_nodes = TAKE_PTR(nodes);
        return 0;
}

/* Getters: one line each, the type checked by the compiler through the
 * field's expression.  D-Bus has no null strings, so NULL is "". */
#define DEFINE_GETTER(fn, type, signature, expr)                                                          \
        static int fn(sd_bus *bus, const char *path, const char *interface, const char *property,        \
                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {                      \
                const type *o = userdata;                                                                 \
                return sd_bus_message_append(reply, signature, expr);                                     \
        }

DEFINE_GETTER(device_get_id, struct device, "t", (uint64_t) o->id)
DEFINE_GETTER(device_get_conn, struct device, "s", o->conn)
DEFINE_GETTER(device_get_transport, struct device, "s", o->transport)
DEFINE_GETTER(device_get_address, struct device, "s", o->address ?: "")
DEFINE_GETTER(device_get_address_type, struct device, "s", o->address_type ?: "")
DEFINE_GETTER(device_get_adapter, struct device, "s", o->adapter ?: "")
DEFINE_GETTER(device_get_source, struct device, "s", o->source)
DEFINE_GETTER(device_get_smp_version, struct device, "u", (uint32_t) o->smp_version)
DEFINE_GETTER(device_get_name, struct device, "s", o->name ?: "")
DEFINE_GETTER(device_get_state, struct device, "s", device_state_to_string(o->state) ?: "")
DEFINE_GETTER(device_get_rssi, struct device, "n", (int) (o->has_rssi ? o->rssi : 0))
DEFINE_GETTER(device_get_first_seen, struct device, "t", (uint64_t) o->first_seen_usec)
DEFINE_GETTER(device_get_last_seen, struct device, "t", (uint64_t) o->last_seen_usec)
DEFINE_GETTER(device_get_last_probe, struct device, "t", (uint64_t) o->last_probe_usec)
DEFINE_GETTER(device_get_buf_size, struct device, "u", (uint32_t) (o->has_params ? o->buf_size : 0))
DEFINE_GETTER(device_get_buf_count, struct device, "u", (uint32_t) (o->has_params ? o->buf_count : 0))
DEFINE_GETTER(device_get_os_info, struct device, "s", o->os_info ?: "")
DEFINE_GETTER(device_get_bootloader, struct device, "s", o->bootloader ?: "")
DEFINE_GETTER(device_get_last_error, struct device, "s", o->last_error ?: "")

static int device_get_job(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct device *d = userdata;
        const struct job *j = device_unfinished_job(d->manager, d);
        char buf[SMPGW_DBUS_PATH_MAX];

        /* queued and retry-wait too, as REST's "job": one meaning */
        return sd_bus_message_append(reply, "o", j ? dbus_job_path(j->id, buf) : "/");
}

static int append_slot(sd_bus_message *reply, const struct smp_update_slot *s) {
        char hash[2 * sizeof(s->hash) + 1];
        int r;

        hex_encode(s->hash, MIN(s->hash_len, sizeof(s->hash)), hash);
        r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}",
                                  "image", "u", s->image,
                                  "slot", "u", s->slot,
                                  "version", "s", s->version,
                                  "hash", "s", hash,
                                  "active", "b", s->active,
                                  "confirmed", "b", s->confirmed,
                                  "pending", "b", s->pending,
                                  "bootable", "b", s->bootable,
                                  "permanent", "b", s->permanent);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int device_get_images(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct device *d = userdata;
        int r;

        r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "a{sv}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->slots.n_slots && i < SMP_UPDATE_SLOTS_MAX; i++) {
                if (!d->slots.slots[i].present)
                        continue;
                r = append_slot(reply, &d->slots.slots[i]);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int device_set_name_property(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *value, void *userdata, sd_bus_error *error) {
        struct device *d = userdata;
        struct engine_error e;
        const char *name;
        int r;

        r = sd_bus_message_read(value, "s", &name);
        if (r < 0)
                return r;
        r = engine_device_rename(d->manager, d, name, &e);
        if (r < 0)
                return dbus_error_set_engine(error, &e);
        return 0;
}

static int device_method_probe(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct device *d = userdata;
        struct engine_error e;

        if (engine_device_probe(d->manager, d, &e) < 0)
                return dbus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, NULL);
}

static int device_method_forget(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct device *d = userdata;
        struct engine_error e;

        if (engine_device_forget(d->manager, d, &e) < 0)
                return dbus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, NULL);
}

static int device_method_push(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct device *d = userdata;
        char spec[24], path[SMPGW_DBUS_PATH_MAX];
        const char *specs[1] = { spec };
        _cleanup_free_ struct job **jobs = NULL;
        struct engine_push push = { .devices = specs, .n_devices = 1 };
        struct engine_error e;
        int r;

        r = sd_bus_message_read(message, "s", &push.image);
        if (r < 0)
                return r;
        r = dbus_read_push_options(message, &push, error);
        if (r < 0)
                return r;
        snprintf(spec, sizeof(spec), "%" PRIu64, d->id);
        r = engine_push(d->manager, &push, &jobs, &e);
        if (r < 0)
                return dbus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, "o", dbus_job_path(jobs[0]->id, path));
}

static const sd_bus_vtable device_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "t", device_get_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Conn", "s", device_get_conn, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Transport", "s", device_get_transport, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Address", "s", device_get_address, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("AddressType", "s", device_get_address_type, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Adapter", "s", device_get_adapter, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Source", "s", device_get_source, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        /* Writable by whom the bus policy lets call methods (not flagged
         * privileged: the policy is the access control). */
        SD_BUS_WRITABLE_PROPERTY("Name", "s", device_get_name, device_set_name_property, 0,
                                 SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE | SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("State", "s", device_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RSSI", "n", device_get_rssi, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("FirstSeen", "t", device_get_first_seen, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("LastSeen", "t", device_get_last_seen, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastProbe", "t", device_get_last_probe, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BufSize", "u", device_get_buf_size, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BufCount", "u", device_get_buf_count, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("OsInfo", "s", device_get_os_info, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Bootloader", "s", device_get_bootloader, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SmpVersion", "u", device_get_smp_version, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastError", "s", device_get_last_error, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Job", "o", device_get_job, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Images", "aa{sv}", device_get_images, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Probe", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, device_method_probe,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Forget", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, device_method_forget,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Push", SD_BUS_ARGS("s", image, "a{sv}", options), SD_BUS_RESULT("o", job),
                                device_method_push, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* ---- org.smpgw.Image1 ---- */

static bool image_id_is_valid(const char *s) {
        return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

static int image_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **ret_found,
                      sd_bus_error *error) {
        struct dbus_api *api = userdata;
        const size_t n = strlen(SMPGW_DBUS_IMAGE_PREFIX "/");
        struct image *img;

        if (strncmp(path, SMPGW_DBUS_IMAGE_PREFIX "/", n) != 0 || !image_id_is_valid(path + n))
                return 0;
        img = manager_find_image(api->manager, path + n);
        if (!img)
                return 0;
        *ret_found = img;
        return 1;
}

static int image_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret_nodes,
                           sd_bus_error *error) {
        struct dbus_api *api = userdata;
        struct manager *m = api->manager;
        _cleanup_(smp_strv_freep) char **nodes = calloc(m->n_images + 1, sizeof(char *));
        char path[SMPGW_DBUS_PATH_MAX];

        if (!nodes)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_images; i++) {
                nodes[i] = strdup(dbus_image_path(m->images[i]->id, path));
                if (!nodes[i])
                        return -ENOMEM;
        }
        *ret_nodes = TAKE_PTR(nodes);
        return 0;
}

DEFINE_GETTER(image_get_id, struct image, "s", o->id)
DEFINE_GETTER(image_get_name, struct image, "s", o->name ?: "")
DEFINE_GETTER(image_get_version, struct image, "s", o->version)
DEFINE_GETTER(image_get_size, struct image, "t", (uint64_t) o->file_size)
DEFINE_GETTER(image_get_image_size, struct image, "u", (uint32_t) o->image_size)
DEFINE_GETTER(image_get_sha256, struct image, "s", o->file_sha256)
DEFINE_GETTER(image_get_signed, struct image, "b", (int) o->signed_)
DEFINE_GETTER(image_get_key, struct image, "s", o->key ?: "")
DEFINE_GETTER(image_get_added, struct image, "t", (uint64_t) o->added_usec)
DEFINE_GETTER(image_get_in_use, struct image, "b", (int) image_in_use(o->manager, o))

static int image_method_delete(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct image *img = userdata;
        struct engine_error e;

        if (engine_image_delete(img->manager, img, &e) < 0)
                return dbus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, NULL);
}

static const sd_bus_vtable image_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "s", image_get_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Name", "s", image_get_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Version", "s", image_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Size", "t", image_get_size, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ImageSize", "u", image_get_image_size, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Sha256", "s", image_get_sha256, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Signed", "b", image_get_signed, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Key", "s", image_get_key, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Added", "t", image_get_added, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("InUse", "b", image_get_in_use, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Delete", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, image_method_delete,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* ---- org.smpgw.Job1 ---- */

static int job_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **ret_found,
                    sd_bus_error *error) {
        struct dbus_api *api = userdata;
        uint64_t id = path_id(path, SMPGW_DBUS_JOB_PREFIX);
        struct job *j = id ? manager_find_job(api->manager, id) : NULL;

        if (!j)
                return 0;
        *ret_found = j;
        return 1;
}

static int job_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret_nodes, sd_bus_error *error) {
        struct dbus_api *api = userdata;
        struct manager *m = api->manager;
        _cleanup_(smp_strv_freep) char **nodes = calloc(m->n_jobs + 1, sizeof(char *));
        char path[SMPGW_DBUS_PATH_MAX];

        if (!nodes)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_jobs; i++) {
                nodes[i] = strdup(dbus_job_path(m->jobs[i]->id, path));
                if (!nodes[i])
                        return -ENOMEM;
        }
        *ret_nodes = TAKE_PTR(nodes);
        return 0;
}

static int job_get_device(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct job *j = userdata;
        char buf[SMPGW_DBUS_PATH_MAX];
        return sd_bus_message_append(reply, "o", dbus_device_path(j->device_id, buf));
}

static int job_get_conn(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct job *j = userdata;
        const struct device *d = manager_find_device(j->manager, j->device_id);
        return sd_bus_message_append(reply, "s", d ? d->conn : "");
}

static int job_get_image(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct job *j = userdata;
        char buf[SMPGW_DBUS_PATH_MAX];
        return sd_bus_message_append(reply, "o", dbus_image_path(j->image_id, buf));
}

DEFINE_GETTER(job_get_id, struct job, "t", (uint64_t) o->id)
DEFINE_GETTER(job_get_device_id, struct job, "t", (uint64_t) o->device_id)
DEFINE_GETTER(job_get_image_id, struct job, "s", o->image_id)
DEFINE_GETTER(job_get_rollout, struct job, "t", (uint64_t) o->rollout_id)
DEFINE_GETTER(job_get_mode, struct job, "s", smp_update_mode_to_string(o->mode) ?: "")
DEFINE_GETTER(job_get_state, struct job, "s", job_state_to_string(o->state) ?: "")
DEFINE_GETTER(job_get_step, struct job, "s", o->has_step ? smp_update_step_to_string(o->step) ?: "" : "")
DEFINE_GETTER(job_get_outcome, struct job, "s",
              o->has_outcome ? smp_update_outcome_to_string(o->outcome) ?: "" : "")
DEFINE_GETTER(job_get_attempts, struct job, "u", (uint32_t) o->attempts)
DEFINE_GETTER(job_get_max_attempts, struct job, "u", (uint32_t) o->max_attempts)
DEFINE_GETTER(job_get_bytes_sent, struct job, "t", (uint64_t) o->bytes_sent)
DEFINE_GETTER(job_get_bytes_total, struct job, "t", (uint64_t) o->bytes_total)
DEFINE_GETTER(job_get_progress, struct job, "d", job_progress(o))
DEFINE_GETTER(job_get_rate, struct job, "d", job_rate(o))
DEFINE_GETTER(job_get_error, struct job, "s", o->error ?: "")
DEFINE_GETTER(job_get_created, struct job, "t", (uint64_t) o->created_usec)
DEFINE_GETTER(job_get_started, struct job, "t", (uint64_t) o->started_usec)
DEFINE_GETTER(job_get_finished, struct job, "t", (uint64_t) o->finished_usec)
DEFINE_GETTER(job_get_next_attempt, struct job, "t", (uint64_t) o->next_attempt_usec)
DEFINE_GETTER(job_get_updated, struct job, "t", (uint64_t) o->updated_usec)

static int job_method_cancel(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct job *j = userdata;
        struct engine_error e;

        if (engine_job_cancel(j->manager, j, &e) < 0)
                return dbus_error_set_engine(error, &e);
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
        SD_BUS_VTABLE_END,
};

/* ---- registration ---- */

int dbus_objects_register(struct dbus_api *api) {
        static const struct {
                const char *prefix, *interface;
                const sd_bus_vtable *vtable;
                sd_bus_object_find_t find;
                sd_bus_node_enumerator_t enumerate;
        } kinds[] = {
                { SMPGW_DBUS_DEVICE_PREFIX, SMPGW_DBUS_DEVICE_IFACE, device_vtable, device_find, device_enumerate },
                { SMPGW_DBUS_IMAGE_PREFIX, SMPGW_DBUS_IMAGE_IFACE, image_vtable, image_find, image_enumerate },
                { SMPGW_DBUS_JOB_PREFIX, SMPGW_DBUS_JOB_IFACE, job_vtable, job_find, job_enumerate },
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                r = sd_bus_add_fallback_vtable(api->bus, NULL, kinds[i].prefix, kinds[i].interface, kinds[i].vtable,
                                               kinds[i].find, api);
                if (r < 0)
                        return r;
                r = sd_bus_add_node_enumerator(api->bus, NULL, kinds[i].prefix, kinds[i].enumerate, api);
                if (r < 0)
                        return r;
        }
        return 0;
}
