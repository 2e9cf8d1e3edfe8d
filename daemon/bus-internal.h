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

#define SMPGW_DBUS_NAME "org.smpgw"
#define SMPGW_DBUS_ROOT "/org/smpgw"
#define SMPGW_DBUS_MANAGER_IFACE "org.smpgw.Manager1"
#define SMPGW_DBUS_DEVICE_IFACE "org.smpgw.Device1"
#define SMPGW_DBUS_IMAGE_IFACE "org.smpgw.Image1"
#define SMPGW_DBUS_JOB_IFACE "org.smpgw.Job1"
#define SMPGW_DBUS_DEVICE_PREFIX SMPGW_DBUS_ROOT "/device"
#define SMPGW_DBUS_IMAGE_PREFIX SMPGW_DBUS_ROOT "/image"
#define SMPGW_DBUS_JOB_PREFIX SMPGW_DBUS_ROOT "/job"

#define SMPGW_DBUS_ERROR_NOT_FOUND "org.smpgw.Error.NotFound"
#define SMPGW_DBUS_ERROR_BUSY "org.smpgw.Error.Busy"
#define SMPGW_DBUS_ERROR_INVALID_IMAGE "org.smpgw.Error.InvalidImage"
#define SMPGW_DBUS_ERROR_SIGNATURE_INVALID "org.smpgw.Error.SignatureInvalid"
#define SMPGW_DBUS_ERROR_TOO_MANY "org.smpgw.Error.TooMany"
#define SMPGW_DBUS_ERROR_ALREADY_FINISHED "org.smpgw.Error.AlreadyFinished"
#define SMPGW_DBUS_ERROR_AMBIGUOUS "org.smpgw.Error.Ambiguous"

struct bus_api {
        struct manager *manager;    /* borrowed: it owns us */
        sd_bus *bus;
        bool observing;             /* registered with manager_add_observer() */
        /* the last JobsRunning value emitted, so the signal goes out only
         * when the count changes */
        unsigned jobs_running_emitted;
        /* AddImage() calls reading a pipe or socket on the loop */
        struct image_stream *streams;
};

/* ---- bus.c ---- */

/* Object paths: "/org/smpgw/device/<id>" and so on.  A buffer of
 * SMPGW_DBUS_PATH_MAX bytes holds any of them. */
#define SMPGW_DBUS_PATH_MAX (sizeof(SMPGW_DBUS_IMAGE_PREFIX "/") + 64)
const char *bus_device_path(uint64_t id, char buf[static SMPGW_DBUS_PATH_MAX]);
const char *bus_image_path(const char *id, char buf[static SMPGW_DBUS_PATH_MAX]);
const char *bus_job_path(uint64_t id, char buf[static SMPGW_DBUS_PATH_MAX]);
/* The same, of an object of the model, for bus_enumerate(). */
typedef const char *(*bus_path_fn)(const void *object, char buf[static SMPGW_DBUS_PATH_MAX]);
const char *bus_device_object_path(const void *object, char buf[static SMPGW_DBUS_PATH_MAX]);
const char *bus_image_object_path(const void *object, char buf[static SMPGW_DBUS_PATH_MAX]);
const char *bus_job_object_path(const void *object, char buf[static SMPGW_DBUS_PATH_MAX]);
/* The decimal id after prefix "/", one spelling per id (no leading zero,
 * no sign), or 0. */
uint64_t bus_path_id(const char *path, const char *prefix);
/* A node enumerator's answer: the paths of n objects. */
int bus_enumerate(void *const *objects, size_t n, bus_path_fn path_of, char ***ret_nodes);

/* Fills error from a negative errno with its sentence: one table (bus.c)
 * maps errnos to error names, the same for every method.  Returns r, so
 * a method handler can `return bus_error_set(...)`. */
int bus_error_set(sd_bus_error *error, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An engine's refusal: its errno through the table, its sentence as it is. */
int bus_error_set_engine(sd_bus_error *error, const struct engine_error *e);

/* One kind of object: a fallback vtable under prefix, with its find
 * function and node enumerator (userdata: the struct bus_api). */
struct bus_kind {
        const char *prefix, *interface;
        const sd_bus_vtable *vtable;
        sd_bus_object_find_t find;
        sd_bus_node_enumerator_t enumerate;
};
extern const struct bus_kind bus_device_kind, bus_image_kind, bus_job_kind;

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
/* Answers every AddImage() still reading its stream with an error. */
void bus_image_streams_stop(struct bus_api *api);

/* ---- bus-job.c ---- */

/* Reads Push()'s a{sv} options into push (mode, attempts: their D-Bus
 * types only, the engine checks their values); unknown keys and wrong
 * types are InvalidArgs. */
int bus_read_push_options(sd_bus_message *message, struct engine_push *push, sd_bus_error *error);
