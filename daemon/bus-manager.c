/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.smpgw.Manager1 at /org/smpgw: the gateway's properties, and the
 * methods that create things (AddImage is bus-image.c's, the push
 * options bus-job.c's).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "bus-internal.h"
#include "conf.h"
#include "engine.h"
#include "manager.h"
#include "smpgw/smp-context.h"
#include "util.h"

static int method_add_device(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct bus_api *api = userdata;
        char path[SMPGW_DBUS_PATH_MAX];
        struct engine_error e;
        struct device *d;
        const char *conn;
        bool created;
        int r;

        r = sd_bus_message_read(message, "s", &conn);
        if (r < 0)
                return r;
        /* A device known already is answered as it is. */
        r = engine_device_add(api->manager, conn, "dbus", &d, &created, &e);
        if (r < 0)
                return bus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, "o", bus_device_path(d->id, path));
}

static int method_get_image(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct bus_api *api = userdata;
        char path[SMPGW_DBUS_PATH_MAX];
        struct engine_error e;
        struct image *img;
        const char *ref;
        int r;

        r = sd_bus_message_read(message, "s", &ref);
        if (r < 0)
                return r;
        r = engine_image_find(api->manager, "id", ref, &img, &e);
        if (r < 0)
                return bus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, "o", bus_image_path(img->id, path));
}

/* The device specs of Push(), as strings of the message (valid while it
 * is); more than PUSH_DEVICES_MAX are counted, not kept: the engine
 * refuses them by the count. */
static int read_device_specs(sd_bus_message *message, const char ***ret, size_t *ret_n) {
        _cleanup_free_ const char **specs = NULL;
        size_t n = 0, alloc = 0;
        const char *spec;
        int r;

        r = sd_bus_message_enter_container(message, SD_BUS_TYPE_ARRAY, "s");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(message, "s", &spec)) > 0) {
                if (n < PUSH_DEVICES_MAX && n == alloc) {
                        const char **g = realloc(specs, MAX(alloc * 2, (size_t) 16) * sizeof(*specs));
                        if (!g)
                                return -ENOMEM;
                        specs = g;
                        alloc = MAX(alloc * 2, (size_t) 16);
                }
                if (n < PUSH_DEVICES_MAX)
                        specs[n] = spec;
                n++;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(message);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(specs);
        *ret_n = n;
        return 0;
}

static int reply_job_paths(sd_bus_message *message, struct job **jobs, size_t n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "o");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                char path[SMPGW_DBUS_PATH_MAX];
                r = sd_bus_message_append(reply, "o", bus_job_path(jobs[i]->id, path));
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_push(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct bus_api *api = userdata;
        _cleanup_free_ const char **specs = NULL;
        _cleanup_free_ struct job **jobs = NULL;
        struct engine_push push = { .devices_listed = true };
        struct engine_error e;
        int r;

        r = sd_bus_message_read(message, "s", &push.image);
        if (r < 0)
                return r;
        r = read_device_specs(message, &specs, &push.n_devices);
        if (r < 0)
                return r;
        push.devices = specs;
        r = bus_read_push_options(message, &push, error);
        if (r < 0)
                return r;
        r = engine_push(api->manager, &push, &jobs, &e);
        if (r < 0)
                return bus_error_set_engine(error, &e);
        return reply_job_paths(message, jobs, push.n_devices);
}

static int method_scan(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct bus_api *api = userdata;
        struct engine_error e;

        if (engine_scan(api->manager, &e) < 0)
                return bus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, NULL);
}

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
}

static int property_get_transports(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        _cleanup_(smp_strv_freep) char **transports = NULL;
        struct bus_api *api = userdata;
        int r;

        r = smp_context_list_transports(api->manager->smp, &transports);
        if (r < 0)
                return r;
        return sd_bus_message_append_strv(reply, transports);
}

static int property_get_jobs_running(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct bus_api *api = userdata;
        return sd_bus_message_append(reply, "u", jobs_count_running(api->manager, NULL));
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Transports", "as", property_get_transports, 0, 0),
        SD_BUS_PROPERTY("JobsRunning", "u", property_get_jobs_running, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("AddImage", SD_BUS_ARGS("h", fd, "s", name),
                                SD_BUS_RESULT("o", image, "s", id, "b", created), bus_method_add_image,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AddImageWithOptions", SD_BUS_ARGS("h", fd, "s", name, "a{sv}", options),
                                SD_BUS_RESULT("o", image, "s", id, "b", created), bus_method_add_image_with_options,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AddDevice", SD_BUS_ARGS("s", conn), SD_BUS_RESULT("o", device), method_add_device,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetImage", SD_BUS_ARGS("s", id), SD_BUS_RESULT("o", image), method_get_image,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Push", SD_BUS_ARGS("s", image, "as", devices, "a{sv}", options),
                                SD_BUS_RESULT("ao", jobs), method_push, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                "StartDistribution", SD_BUS_ARGS("s", distributor, "s", image, "as", targets, "a{sv}", options),
                SD_BUS_RESULT("o", distribution), bus_method_start_distribution, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Scan", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_scan, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CreateRollout", SD_BUS_ARGS("a{sv}", spec), SD_BUS_RESULT("o", rollout),
                                bus_method_create_rollout, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PlanRollout", SD_BUS_ARGS("a{sv}", spec), SD_BUS_RESULT("s", plan),
                                bus_method_plan_rollout, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int bus_manager_register(struct bus_api *api) {
        return sd_bus_add_object_vtable(api->bus, NULL, SMPGW_DBUS_ROOT, SMPGW_DBUS_MANAGER_IFACE, manager_vtable,
                                        api);
}
