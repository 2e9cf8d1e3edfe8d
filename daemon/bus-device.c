/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.smpgw.Device1 at /org/smpgw/device/<id> (id: decimal).
 *
 * Like every kind of object here, a fallback vtable with a find function
 * and a node enumerator, not one registration per object: the model is
 * the only list, so a device is on the bus exactly while the model has
 * it, and nothing here has to be kept in step with it.  The getters read
 * the model directly; strings the model does not have are "".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "bus-internal.h"
#include "distribution.h"
#include "smpgw/mesh-dfu.h"
#include "engine.h"
#include "hawkbit.h"
#include "manager.h"
#include "os-info.h"
#include "util.h"

static void *device_lookup(struct manager *m, const char *name) {
        uint64_t id = bus_path_id(name);
        return id ? manager_find_device(m, id) : NULL;
}

static void *const *device_list(struct manager *m, size_t *ret_n) {
        *ret_n = m->n_devices;
        return (void *const *) m->devices;
}

static const char *device_path_of(const void *object, char buf[static SMPGW_DBUS_PATH_MAX]) {
        return bus_device_path(((const struct device *) object)->id, buf);
}


BUS_DEFINE_GETTER(device_get_id, struct device, "t", (uint64_t) o->id)
BUS_DEFINE_GETTER(device_get_conn, struct device, "s", o->conn)
BUS_DEFINE_GETTER(device_get_transport, struct device, "s", o->transport)
BUS_DEFINE_GETTER(device_get_address, struct device, "s", o->address ?: "")
BUS_DEFINE_GETTER(device_get_address_type, struct device, "s", o->address_type ?: "")
BUS_DEFINE_GETTER(device_get_adapter, struct device, "s", o->adapter ?: "")
BUS_DEFINE_GETTER(device_get_source, struct device, "s", o->source)
BUS_DEFINE_GETTER(device_get_smp_version, struct device, "u", (uint32_t) o->smp_version)
BUS_DEFINE_GETTER(device_get_name, struct device, "s", o->name ?: "")
BUS_DEFINE_GETTER(device_get_state, struct device, "s", device_state_to_string(o->state) ?: "")
BUS_DEFINE_GETTER(device_get_role, struct device, "s", o->role ?: "")
BUS_DEFINE_GETTER(device_get_rssi, struct device, "n", (int) (o->has_rssi ? o->rssi : 0))
BUS_DEFINE_GETTER(device_get_first_seen, struct device, "t", (uint64_t) o->first_seen_usec)
BUS_DEFINE_GETTER(device_get_last_seen, struct device, "t", (uint64_t) o->last_seen_usec)
BUS_DEFINE_GETTER(device_get_last_probe, struct device, "t", (uint64_t) o->last_probe_usec)
BUS_DEFINE_GETTER(device_get_buf_size, struct device, "u", (uint32_t) (o->has_params ? o->buf_size : 0))
BUS_DEFINE_GETTER(device_get_buf_count, struct device, "u", (uint32_t) (o->has_params ? o->buf_count : 0))
BUS_DEFINE_GETTER(device_get_os_info, struct device, "s", o->os_info ?: "")
BUS_DEFINE_GETTER(device_get_bootloader, struct device, "s", o->bootloader ?: "")
BUS_DEFINE_GETTER(device_get_last_error, struct device, "s", o->last_error ?: "")

/* Board and App: read from OsInfo (os-info.h), "" when it does not say. */
static int device_get_os_field(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct device *d = userdata;
        struct os_info_fields os;

        (void) os_info_parse(d->os_info, &os);
        return sd_bus_message_append(reply, "s", streq(property, "Board") ? os.board : os.app);
}

static int device_get_job(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct device *d = userdata;
        const struct job *j = d->unfinished_job;
        char buf[SMPGW_DBUS_PATH_MAX];

        /* queued and retry-wait too, as REST's "job": one meaning */
        return sd_bus_message_append(reply, "o", j ? bus_job_path(j->id, buf) : "/");
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
        for (size_t i = 0; i < d->slots->n_slots && i < SMP_UPDATE_SLOTS_MAX; i++) {
                if (!d->slots->slots[i].present)
                        continue;
                r = append_slot(reply, &d->slots->slots[i]);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

/* The hawkBit client's view of the device (doc/hawkbit.md); managed
 * false and the rest empty when hawkBit is off or it is not exposed. */
static int device_get_hawkbit(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct device *d = userdata;
        struct hawkbit_device_status st;

        hawkbit_device_status(d->manager->hawkbit, d->id, &st);
        return sd_bus_message_append(reply, "a{sv}", 5, "managed", "b", st.managed, "controller_id", "s",
                                     st.controller_id ?: "", "action_id", "t", st.action_id, "last_feedback", "s",
                                     st.last_feedback ?: "", "feedback_queued", "u", st.feedback_queued);
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
                return bus_error_set_engine(error, &e);
        return 0;
}

static int device_get_labels(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct device *d = userdata;
        int r;

        r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "s");
        for (size_t i = 0; r >= 0 && i < d->n_labels; i++)
                r = sd_bus_message_append(reply, "s", d->labels[i]);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int device_set_labels_property(sd_bus *bus, const char *path, const char *interface, const char *property,
                                      sd_bus_message *value, void *userdata, sd_bus_error *error) {
        struct device *d = userdata;
        _cleanup_(smp_strv_freep) char **labels = NULL;
        struct engine_error e;
        size_t n = 0;
        int r;

        r = sd_bus_message_read_strv(value, &labels);
        if (r < 0)
                return r;
        while (labels && labels[n])
                n++;
        r = engine_device_set_labels(d->manager, d, (const char *const *) labels, n, &e);
        if (r < 0)
                return bus_error_set_engine(error, &e);
        return 0;
}

/* A mesh target's "Mesh": distributor (t), addr (s), fwid, version, phase,
 * status (s, "" when unknown), updated (t); empty for other devices. */
static int device_get_mesh(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct device *d = userdata;
        const struct device_mesh *mt = d->mesh;
        char addr[8];
        int r;

        if (!mt)
                return sd_bus_message_append(reply, "a{sv}", 0);
        snprintf(addr, sizeof(addr), "0x%04x", mt->addr);
        r = sd_bus_message_append(reply, "a{sv}", 8, "distributor", "t", (uint64_t) mt->distributor_id, "addr", "s",
                                  addr, "fwid", "s", mt->fwid, "version", "s", mt->version, "phase", "s",
                                  mt->has_phase ? smp_mesh_dfu_phase_to_string(mt->phase) ?: "" : "", "status", "s",
                                  mt->has_phase ? smp_mesh_dfu_status_to_string(mt->status) ?: "" : "", "updated", "t",
                                  (uint64_t) mt->updated_usec, "direct_device", "t", (uint64_t) mt->direct_device_id);
        return r;
}

static int device_get_direct_device(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct device *d = userdata;
        return sd_bus_message_append(reply, "t", d->mesh ? (uint64_t) d->mesh->direct_device_id : (uint64_t) 0);
}

/* A mesh target's direct device by id, 0 for none (engine_mesh_target_set_direct()). */
static int device_set_direct_device(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *value, void *userdata, sd_bus_error *error) {
        struct device *d = userdata;
        struct device *direct = NULL;
        struct engine_error e;
        uint64_t id;
        int r;

        r = sd_bus_message_read(value, "t", &id);
        if (r < 0)
                return r;
        if (id && !(direct = manager_find_device(d->manager, id)))
                return bus_error_set(error, -ENOENT, "No device %" PRIu64 ".", id);
        r = engine_mesh_target_set_direct(d->manager, d, direct, &e);
        if (r < 0)
                return bus_error_set_engine(error, &e);
        return 0;
}

static int device_set_role_property(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *value, void *userdata, sd_bus_error *error) {
        struct device *d = userdata;
        struct engine_error e;
        const char *role;
        int r;

        r = sd_bus_message_read(value, "s", &role);
        if (r < 0)
                return r;
        r = engine_device_set_role(d->manager, d, role, &e);
        if (r < 0)
                return bus_error_set_engine(error, &e);
        return 0;
}

static int device_method_probe(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct device *d = userdata;
        struct engine_error e;

        if (engine_device_probe(d->manager, d, &e) < 0)
                return bus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, NULL);
}

static int device_method_forget(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct device *d = userdata;
        struct engine_error e;

        if (engine_device_forget(d->manager, d, &e) < 0)
                return bus_error_set_engine(error, &e);
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
        r = bus_read_push_options(message, &push, error);
        if (r < 0)
                return r;
        snprintf(spec, sizeof(spec), "%" PRIu64, d->id);
        r = engine_push(d->manager, &push, &jobs, &e);
        if (r < 0)
                return bus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, "o", bus_job_path(jobs[0]->id, path));
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
        SD_BUS_WRITABLE_PROPERTY("Labels", "as", device_get_labels, device_set_labels_property, 0,
                                 SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE | SD_BUS_VTABLE_UNPRIVILEGED),
        /* "mesh-distributor" or "" (doc/mesh-dfu.md). */
        SD_BUS_WRITABLE_PROPERTY("Role", "s", device_get_role, device_set_role_property, 0,
                                 SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE | SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("Mesh", "a{sv}", device_get_mesh, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        /* A mesh target's direct device (the same node over its own link), 0: none. */
        SD_BUS_WRITABLE_PROPERTY("DirectDevice", "t", device_get_direct_device, device_set_direct_device, 0,
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
        SD_BUS_PROPERTY("Board", "s", device_get_os_field, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("App", "s", device_get_os_field, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SmpVersion", "u", device_get_smp_version, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastError", "s", device_get_last_error, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Job", "o", device_get_job, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Images", "aa{sv}", device_get_images, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        /* Read when asked: it changes with every poll answer, too often to signal. */
        SD_BUS_PROPERTY("Hawkbit", "a{sv}", device_get_hawkbit, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("Probe", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, device_method_probe,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Forget", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, device_method_forget,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Push", SD_BUS_ARGS("s", image, "a{sv}", options), SD_BUS_RESULT("o", job),
                                device_method_push, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

const struct bus_kind bus_device_kind = {
        .prefix = SMPGW_DBUS_DEVICE_PREFIX,
        .interface = SMPGW_DBUS_DEVICE_IFACE,
        .vtable = device_vtable,
        .lookup = device_lookup,
        .list = device_list,
        .path_of = device_path_of,
};
