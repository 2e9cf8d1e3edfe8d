/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The D-Bus front end: the connection (system, session or an address,
 * config.bus), the name org.smpgw, the ObjectManager at /org/smpgw, the
 * one errno → D-Bus error table, and the signals that follow the model
 * (InterfacesAdded/Removed, PropertiesChanged) from the manager's
 * events.  The interfaces are bus-manager.c (Manager1), bus-device.c,
 * bus-image.c and bus-job.c; dbus/org.smpgw.xml is the contract they
 * follow.
 *
 * Access control is the bus policy's job (dbus/org.smpgw.conf: root and
 * group smpgw may call methods, everybody may read), so every method is
 * flagged SD_BUS_VTABLE_UNPRIVILEGED: sd-bus's own check would otherwise
 * refuse group members that are neither root nor our user.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "bus-internal.h"
#include "distribution.h"
#include "bus.h"
#include "conf.h"
#include "engine.h"
#include "log.h"
#include "manager.h"
#include "util.h"

/* The one errno → D-Bus error table of the API.  An errno means the same
 * in every method (the model's functions agree on them: -ENOENT nothing
 * by that name, -EBUSY something is running, ...); the message says the
 * rest.  Anything not listed is org.freedesktop.DBus.Error.Failed. */
static const sd_bus_error_map bus_errors[] = {
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_NOT_FOUND, ENOENT),
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_NOT_FOUND, EPROTONOSUPPORT), /* no transport for a scheme */
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_BUSY, EBUSY),
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_INVALID_IMAGE, EBADMSG),
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_INVALID_IMAGE, EFBIG),
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_SIGNATURE_INVALID, EKEYREJECTED),
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_TOO_MANY, E2BIG),
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_ALREADY_FINISHED, EALREADY),
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_AMBIGUOUS, ENOTUNIQ),
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_INCOMPATIBLE_BOARD, ENOEXEC),
        SD_BUS_ERROR_MAP(SD_BUS_ERROR_INVALID_ARGS, EINVAL),
        SD_BUS_ERROR_MAP(SD_BUS_ERROR_INVALID_ARGS, EMEDIUMTYPE), /* a device of the wrong kind (mesh) */
        SD_BUS_ERROR_MAP(SD_BUS_ERROR_NO_MEMORY, ENOMEM),
        SD_BUS_ERROR_MAP(SD_BUS_ERROR_TIMEOUT, ETIMEDOUT),
        SD_BUS_ERROR_MAP(SD_BUS_ERROR_NOT_SUPPORTED, ENOTCONN), /* discovery is off */
        SD_BUS_ERROR_MAP_END,
};

int bus_error_set(sd_bus_error *error, int r, const char *fmt, ...) {
        const char *name = SD_BUS_ERROR_FAILED;
        va_list ap;

        for (const sd_bus_error_map *e = bus_errors; e->name; e++)
                if (e->code == -r) {
                        name = e->name;
                        break;
                }
        va_start(ap, fmt);
        (void) sd_bus_error_setfv(error, name, fmt, ap);
        va_end(ap);
        return r;
}

int bus_error_set_engine(sd_bus_error *error, const struct engine_error *e) {
        return bus_error_set(error, e->error, "%s", e->message);
}

const char *bus_device_path(uint64_t id, char buf[static SMPGW_DBUS_PATH_MAX]) {
        snprintf(buf, SMPGW_DBUS_PATH_MAX, SMPGW_DBUS_DEVICE_PREFIX "/%" PRIu64, id);
        return buf;
}

const char *bus_image_path(const char *id, char buf[static SMPGW_DBUS_PATH_MAX]) {
        snprintf(buf, SMPGW_DBUS_PATH_MAX, SMPGW_DBUS_IMAGE_PREFIX "/%s", id);
        return buf;
}

const char *bus_job_path(uint64_t id, char buf[static SMPGW_DBUS_PATH_MAX]) {
        snprintf(buf, SMPGW_DBUS_PATH_MAX, SMPGW_DBUS_JOB_PREFIX "/%" PRIu64, id);
        return buf;
}

uint64_t bus_path_id(const char *name) {
        char *end;

        /* One spelling per id: no sign, no leading zero. */
        if (name[0] < '1' || name[0] > '9' || strspn(name, "0123456789") != strlen(name))
                return 0;
        errno = 0;
        unsigned long long id = strtoull(name, &end, 10);
        if (errno != 0 || *end)
                return 0;
        return id;
}

/* The find function of every kind: the object the path's last part
 * names, as the model has it now. */
static int kind_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **ret_found,
                     sd_bus_error *error) {
        const struct bus_kind_slot *slot = userdata;
        size_t n = strlen(slot->kind->prefix);
        void *o;

        if (strncmp(path, slot->kind->prefix, n) != 0 || path[n] != '/')
                return 0;
        o = slot->kind->lookup(slot->api->manager, path + n + 1);
        if (!o)
                return 0;
        *ret_found = o;
        return 1;
}

/* The node enumerator of every kind: one path per object of the model. */
static int kind_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret_nodes, sd_bus_error *error) {
        const struct bus_kind_slot *slot = userdata;
        char path[SMPGW_DBUS_PATH_MAX];
        size_t n;
        void *const *objects = slot->kind->list(slot->api->manager, &n);
        _cleanup_(smp_strv_freep) char **nodes = calloc(n + 1, sizeof(char *));

        if (!nodes)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                nodes[i] = strdup(slot->kind->path_of(objects[i], path));
                if (!nodes[i])
                        return -ENOMEM;
        }
        *ret_nodes = TAKE_PTR(nodes);
        return 0;
}

/* ---- signals from the model's events ---- */

static void emit_added(struct bus_api *api, const char *path, const char *interface) {
        int r = sd_bus_emit_interfaces_added(api->bus, path, interface, NULL);
        if (r < 0)
                log_debug_errno(r, "Cannot emit InterfacesAdded for %s, ignoring: %m", path);
}

/* The object is out of the model already (no find, no enumeration
 * shows it): the interface is named, so sd-bus need not look it up. */
static void emit_removed(struct bus_api *api, const char *path, const char *interface) {
        int r = sd_bus_emit_interfaces_removed(api->bus, path, interface, NULL);
        if (r < 0)
                log_debug_errno(r, "Cannot emit InterfacesRemoved for %s, ignoring: %m", path);
}

/* names NULL: every property flagged EMITS_CHANGE. */
static void emit_changed(struct bus_api *api, const char *path, const char *interface, char **names) {
        int r = sd_bus_emit_properties_changed_strv(api->bus, path, interface, names);
        if (r < 0)
                log_debug_errno(r, "Cannot emit PropertiesChanged for %s, ignoring: %m", path);
}

static void emit_jobs_running(struct bus_api *api) {
        unsigned n = jobs_count_running(api->manager, NULL);
        if (n == api->jobs_running_emitted)
                return;
        api->jobs_running_emitted = n;
        emit_changed(api, SMPGW_DBUS_ROOT, SMPGW_DBUS_MANAGER_IFACE, (char *[]) { (char *) "JobsRunning", NULL });
}

/* What a job's start or end changes elsewhere: its device's Job, its
 * image's InUse, the manager's JobsRunning. */
static void emit_job_related(struct bus_api *api, const struct job *j) {
        char path[SMPGW_DBUS_PATH_MAX];

        if (j->device)
                emit_changed(api, bus_device_path(j->device_id, path), SMPGW_DBUS_DEVICE_IFACE,
                             (char *[]) { (char *) "Job", NULL });
        if (manager_find_image(api->manager, j->image_id))
                emit_changed(api, bus_image_path(j->image_id, path), SMPGW_DBUS_IMAGE_IFACE,
                             (char *[]) { (char *) "InUse", NULL });
        emit_jobs_running(api);
}

static void on_manager_event(struct manager *m, const struct manager_event *ev, void *userdata) {
        struct bus_api *api = userdata;
        char path[SMPGW_DBUS_PATH_MAX];

        switch (ev->type) {
        case MANAGER_EVENT_DEVICE_ADDED:
                emit_added(api, bus_device_path(ev->device->id, path), SMPGW_DBUS_DEVICE_IFACE);
                break;
        case MANAGER_EVENT_DEVICE_CHANGED:
                emit_changed(api, bus_device_path(ev->device->id, path), SMPGW_DBUS_DEVICE_IFACE, NULL);
                break;
        case MANAGER_EVENT_DEVICE_REMOVED:
                emit_removed(api, bus_device_path(ev->device->id, path), SMPGW_DBUS_DEVICE_IFACE);
                break;
        case MANAGER_EVENT_IMAGE_ADDED:
                emit_added(api, bus_image_path(ev->image->id, path), SMPGW_DBUS_IMAGE_IFACE);
                break;
        case MANAGER_EVENT_IMAGE_REMOVED:
                emit_removed(api, bus_image_path(ev->image->id, path), SMPGW_DBUS_IMAGE_IFACE);
                break;
        case MANAGER_EVENT_IMAGE_CHANGED:
                emit_changed(api, bus_image_path(ev->image->id, path), SMPGW_DBUS_IMAGE_IFACE,
                             (char *[]) { (char *) "Boards", (char *) "MeshComposition", NULL });
                break;
        case MANAGER_EVENT_JOB_ADDED:
                emit_added(api, bus_job_path(ev->job->id, path), SMPGW_DBUS_JOB_IFACE);
                emit_job_related(api, ev->job);
                break;
        case MANAGER_EVENT_JOB_STATE:
                emit_changed(api, bus_job_path(ev->job->id, path), SMPGW_DBUS_JOB_IFACE, NULL);
                emit_job_related(api, ev->job);
                break;
        case MANAGER_EVENT_JOB_PROGRESS:
                emit_changed(api, bus_job_path(ev->job->id, path), SMPGW_DBUS_JOB_IFACE,
                             (char *[]) { (char *) "BytesSent", (char *) "BytesTotal", (char *) "Progress",
                                          (char *) "Rate", (char *) "Updated", NULL });
                break;
        case MANAGER_EVENT_JOB_REMOVED:
                emit_removed(api, bus_job_path(ev->job->id, path), SMPGW_DBUS_JOB_IFACE);
                break;
        case MANAGER_EVENT_ROLLOUT_ADDED:
        case MANAGER_EVENT_ROLLOUT_STATE:
        case MANAGER_EVENT_ROLLOUT_PROGRESS:
        case MANAGER_EVENT_ROLLOUT_MEMBER:
        case MANAGER_EVENT_ROLLOUT_REMOVED:
                bus_rollout_on_event(api, ev);
                break;
        case MANAGER_EVENT_DISTRIBUTION_REMOVED:
                emit_removed(api, bus_distribution_path(ev->distribution->id, path), SMPGW_DBUS_DISTRIBUTION_IFACE);
                break;
        case MANAGER_EVENT_DISTRIBUTION_STATE:
                bus_distribution_path(ev->distribution->id, path);
                /* The first event of a distribution is its creation. */
                if (ev->distribution->state == DISTRIBUTION_QUEUED && ev->distribution->rounds == 0)
                        emit_added(api, path, SMPGW_DBUS_DISTRIBUTION_IFACE);
                else
                        emit_changed(api, path, SMPGW_DBUS_DISTRIBUTION_IFACE, NULL);
                break;
        case MANAGER_EVENT_DISTRIBUTION_PROGRESS:
                emit_changed(api, bus_distribution_path(ev->distribution->id, path), SMPGW_DBUS_DISTRIBUTION_IFACE,
                             (char *[]) { (char *) "Step", (char *) "Targets", (char *) "TargetsUpdated",
                                          (char *) "TargetsFailed", (char *) "Rounds", (char *) "Updated", NULL });
                break;
        case _MANAGER_EVENT_MAX:
                break;
        }
}

/* ---- the connection ---- */

static int bus_register(struct bus_api *api) {
        static const struct bus_kind *const kinds[BUS_KINDS] = { &bus_device_kind, &bus_image_kind, &bus_job_kind,
                                                                 &bus_rollout_kind, &bus_distribution_kind };
        int r;

        r = bus_manager_register(api);
        if (r < 0)
                return r;
        for (size_t i = 0; i < BUS_KINDS; i++) {
                struct bus_kind_slot *slot = &api->kinds[i];
                *slot = (struct bus_kind_slot) { .api = api, .kind = kinds[i] };
                r = sd_bus_add_fallback_vtable(api->bus, NULL, slot->kind->prefix, slot->kind->interface,
                                               slot->kind->vtable, kind_find, slot);
                if (r < 0)
                        return r;
                r = sd_bus_add_node_enumerator(api->bus, NULL, slot->kind->prefix, kind_enumerate, slot);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int bus_open(const struct config *c, sd_bus **ret) {
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL;
        int r;

        switch (c->bus) {
        case CONFIG_BUS_SYSTEM:
                /* honours $DBUS_SYSTEM_BUS_ADDRESS */
                return sd_bus_open_system_with_description(ret, "smpgwd");
        case CONFIG_BUS_SESSION:
                return sd_bus_open_user_with_description(ret, "smpgwd");
        case CONFIG_BUS_ADDRESS:
                r = sd_bus_new(&bus);
                if (r < 0)
                        return r;
                r = sd_bus_set_address(bus, c->bus_address);
                if (r < 0)
                        return r;
                r = sd_bus_set_bus_client(bus, 1);
                if (r < 0)
                        return r;
                r = sd_bus_set_description(bus, "smpgwd");
                if (r < 0)
                        return r;
                r = sd_bus_start(bus);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(bus);
                return 0;
        case CONFIG_BUS_NONE:
        default:
                return -EINVAL;
        }
}

static const char *bus_describe(const struct config *c) {
        switch (c->bus) {
        case CONFIG_BUS_SYSTEM:
                return "the system bus";
        case CONFIG_BUS_SESSION:
                return "the session bus";
        case CONFIG_BUS_ADDRESS:
                return c->bus_address;
        case CONFIG_BUS_NONE:
        default:
                return "no bus";
        }
}

struct bus_api *bus_api_free(struct bus_api *api) {
        if (!api)
                return NULL;
        if (api->observing)
                manager_remove_observer(api->manager, on_manager_event, api);
        bus_image_streams_stop(api);
        /* The vtables' slots are floating: they go with the connection,
         * which also gives up the name. */
        sd_bus_flush_close_unref(api->bus);
        free(api);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct bus_api *, bus_api_free);

int bus_api_start(struct manager *m, struct bus_api **ret) {
        _cleanup_(bus_api_freep) struct bus_api *api = NULL;
        const struct config *c = m->config;
        int r;

        if (c->bus == CONFIG_BUS_NONE) {
                *ret = NULL;
                return 0;
        }

        api = calloc(1, sizeof(*api));
        if (!api)
                return log_error_errno(-ENOMEM, "Cannot start the D-Bus API: %m");
        api->manager = m;

        r = bus_open(c, &api->bus);
        if (r < 0)
                return log_error_errno(r, "Cannot connect to %s: %m", bus_describe(c));

        r = sd_bus_add_object_manager(api->bus, NULL, SMPGW_DBUS_ROOT);
        if (r < 0)
                return log_error_errno(r, "Cannot add the D-Bus object manager: %m");
        r = bus_register(api);
        if (r < 0)
                return log_error_errno(r, "Cannot add the D-Bus interfaces: %m");

        r = sd_bus_attach_event(api->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Cannot attach the D-Bus connection to the event loop: %m");
        /* Without the bus nobody can reach this API again (a new
         * connection would lose every client's matches), so do what
         * systemd's daemons do: end the loop and let the unit's
         * Restart= bring us back once the bus is there. */
        r = sd_bus_set_exit_on_disconnect(api->bus, true);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the D-Bus connection: %m");

        api->jobs_running_emitted = jobs_count_running(m, NULL);
        r = manager_add_observer(m, on_manager_event, api);
        if (r < 0)
                return log_error_errno(r, "Cannot follow the manager's events: %m");
        api->observing = true;

        /* Synchronously, so READY=1 goes out only once clients can find
         * us by name (integration.md (f)). */
        r = sd_bus_request_name(api->bus, SMPGW_DBUS_NAME, 0);
        if (r == -EEXIST)
                return log_error_errno(r, "The name %s is owned by another process on %s.", SMPGW_DBUS_NAME,
                                       bus_describe(c));
        if (r == -EACCES || r == -EPERM)
                return log_error_errno(r,
                                       "The bus policy does not let this user own %s on %s "
                                       "(is %s installed, and the bus reloaded?): %m",
                                       SMPGW_DBUS_NAME, bus_describe(c), "org.smpgw.conf");
        if (r < 0)
                return log_error_errno(r, "Cannot acquire the name %s on %s: %m", SMPGW_DBUS_NAME, bus_describe(c));

        log_info("D-Bus API on %s as %s.", bus_describe(c), SMPGW_DBUS_NAME);
        *ret = TAKE_PTR(api);
        return 0;
}
