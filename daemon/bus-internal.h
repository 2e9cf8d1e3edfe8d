/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared by the D-Bus front end's files (bus.c: the connection, errors,
 * signals; bus-manager.c, bus-device.c, bus-image.c, bus-job.c: one
 * interface each).  Not used outside the D-Bus front end.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-bus.h>

#include "smpgw/smp-transport.h"   /* smp_strv_free() */
#include "util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(char **, smp_strv_free);

struct manager;
struct device;
struct image;
struct job;
struct engine_error;
struct engine_push;
struct manager_event;

#define SMPGW_DBUS_NAME "org.smpgw"
#define SMPGW_DBUS_ROOT "/org/smpgw"
#define SMPGW_DBUS_MANAGER_IFACE "org.smpgw.Manager1"
#define SMPGW_DBUS_DEVICE_IFACE "org.smpgw.Device1"
#define SMPGW_DBUS_IMAGE_IFACE "org.smpgw.Image1"
#define SMPGW_DBUS_JOB_IFACE "org.smpgw.Job1"
#define SMPGW_DBUS_ROLLOUT_IFACE "org.smpgw.Rollout1"
#define SMPGW_DBUS_DEVICE_PREFIX SMPGW_DBUS_ROOT "/device"
#define SMPGW_DBUS_IMAGE_PREFIX SMPGW_DBUS_ROOT "/image"
#define SMPGW_DBUS_JOB_PREFIX SMPGW_DBUS_ROOT "/job"
#define SMPGW_DBUS_ROLLOUT_PREFIX SMPGW_DBUS_ROOT "/rollout"
#define SMPGW_DBUS_DISTRIBUTION_IFACE "org.smpgw.Distribution1"
#define SMPGW_DBUS_DISTRIBUTION_PREFIX SMPGW_DBUS_ROOT "/distribution"

#define SMPGW_DBUS_ERROR_NOT_FOUND "org.smpgw.Error.NotFound"
#define SMPGW_DBUS_ERROR_BUSY "org.smpgw.Error.Busy"
#define SMPGW_DBUS_ERROR_INCOMPATIBLE_BOARD "org.smpgw.Error.IncompatibleBoard"
#define SMPGW_DBUS_ERROR_INVALID_IMAGE "org.smpgw.Error.InvalidImage"
#define SMPGW_DBUS_ERROR_SIGNATURE_INVALID "org.smpgw.Error.SignatureInvalid"
#define SMPGW_DBUS_ERROR_TOO_MANY "org.smpgw.Error.TooMany"
#define SMPGW_DBUS_ERROR_ALREADY_FINISHED "org.smpgw.Error.AlreadyFinished"
#define SMPGW_DBUS_ERROR_AMBIGUOUS "org.smpgw.Error.Ambiguous"

/* Object paths: "/org/smpgw/device/<id>" and so on.  A buffer of
 * SMPGW_DBUS_PATH_MAX bytes holds any of them. */
#define SMPGW_DBUS_PATH_MAX (sizeof(SMPGW_DBUS_IMAGE_PREFIX "/") + 64)

/* One kind of object (devices, images, jobs): a fallback vtable under
 * prefix, with one find function and one node enumerator for all kinds
 * (bus.c), which ask the kind's own functions. */
struct bus_kind {
        const char *prefix, *interface;
        const sd_bus_vtable *vtable;
        /* The object the path's last component names, NULL when none. */
        void *(*lookup)(struct manager *m, const char *name);
        /* Every object of the kind, as the model lists them. */
        void *const *(*list)(struct manager *m, size_t *ret_n);
        const char *(*path_of)(const void *object, char buf[static SMPGW_DBUS_PATH_MAX]);
};
extern const struct bus_kind bus_device_kind, bus_image_kind, bus_job_kind, bus_rollout_kind, bus_distribution_kind;
#define BUS_KINDS 5

/* What the find function and the enumerator of one kind are given. */
struct bus_kind_slot {
        struct bus_api *api;
        const struct bus_kind *kind;
};

struct bus_api {
        struct manager *manager;    /* borrowed: it owns us */
        sd_bus *bus;
        bool observing;             /* registered with manager_add_observer() */
        /* the last JobsRunning value emitted, so the signal goes out only
         * when the count changes */
        unsigned jobs_running_emitted;
        /* AddImage() calls reading a pipe or socket on the loop */
        struct image_stream *streams;
        struct bus_kind_slot kinds[BUS_KINDS];
};

/* ---- bus.c ---- */

const char *bus_device_path(uint64_t id, char buf[static SMPGW_DBUS_PATH_MAX]);
const char *bus_image_path(const char *id, char buf[static SMPGW_DBUS_PATH_MAX]);
const char *bus_job_path(uint64_t id, char buf[static SMPGW_DBUS_PATH_MAX]);
const char *bus_distribution_path(uint64_t id, char buf[static SMPGW_DBUS_PATH_MAX]);
/* Manager1.StartDistribution() (bus-distribution.c). */
int bus_method_start_distribution(sd_bus_message *message, void *userdata, sd_bus_error *error);
/* The decimal id of a path's last component, one spelling per id (no
 * leading zero, no sign), or 0. */
uint64_t bus_path_id(const char *name);

/* Fills error from a negative errno with its sentence: one table (bus.c)
 * maps errnos to error names, the same for every method.  Returns r, so
 * a method handler can `return bus_error_set(...)`. */
int bus_error_set(sd_bus_error *error, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An engine's refusal: its errno through the table, its sentence as it is. */
int bus_error_set_engine(sd_bus_error *error, const struct engine_error *e);

/* Getters: one line each, the type checked by the compiler through the
 * field's expression.  D-Bus has no null strings, so NULL is "". */
#define BUS_DEFINE_GETTER(fn, type, signature, expr)                                                      \
        static int fn(sd_bus *bus, const char *path, const char *interface, const char *property,        \
                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {                      \
                const type *o = userdata;                                                                 \
                return sd_bus_message_append(reply, signature, expr);                                     \
        }

/* ---- bus-manager.c ---- */

/* org.smpgw.Manager1 at the root. */
int bus_manager_register(struct bus_api *api);

/* ---- bus-image.c ---- */

/* Manager1.AddImage(). */
int bus_method_add_image(sd_bus_message *message, void *userdata, sd_bus_error *error);
int bus_method_add_image_with_options(sd_bus_message *message, void *userdata, sd_bus_error *error);
/* Answers every AddImage() still reading its stream with an error. */
void bus_image_streams_stop(struct bus_api *api);

/* ---- bus-job.c ---- */

/* Reads Push()'s a{sv} options into push (mode, attempts: their D-Bus
 * types only, the engine checks their values); unknown keys and wrong
 * types are InvalidArgs. */
int bus_read_push_options(sd_bus_message *message, struct engine_push *push, sd_bus_error *error);

/* ---- bus-rollout.c ---- */

const char *bus_rollout_path(uint64_t id, char buf[static SMPGW_DBUS_PATH_MAX]);
/* Manager1.CreateRollout(a{sv}) → o and PlanRollout(a{sv}) → s. */
int bus_method_create_rollout(sd_bus_message *message, void *userdata, sd_bus_error *error);
int bus_method_plan_rollout(sd_bus_message *message, void *userdata, sd_bus_error *error);
/* InterfacesAdded / PropertiesChanged of a rollout event. */
void bus_rollout_on_event(struct bus_api *api, const struct manager_event *ev);
