/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared between dbus.c (the connection, org.smpgw.Manager1, signals) and
 * dbus-objects.c (the per-object interfaces Device1, Image1 and Job1).
 * Not used outside the D-Bus front end.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-bus.h>

#include "smpgw/smp-transport.h"   /* smp_strv_free() */
#include "util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(char **, smp_strv_free);

struct manager;
struct device;
struct image;
struct job;

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

struct dbus_api {
        struct manager *manager;    /* borrowed: it owns us */
        sd_bus *bus;
        bool observing;             /* registered with manager_add_observer() */
        /* the last JobsRunning value emitted, so the signal goes out only
         * when the count changes */
        unsigned jobs_running_emitted;
        /* AddImage() calls reading a pipe or socket on the loop */
        struct image_stream *streams;
};

/* Object paths: "/org/smpgw/device/<id>" and so on.  A buffer of
 * SMPGW_DBUS_PATH_MAX bytes holds any of them. */
#define SMPGW_DBUS_PATH_MAX (sizeof(SMPGW_DBUS_IMAGE_PREFIX "/") + 64)
const char *dbus_device_path(uint64_t id, char buf[static SMPGW_DBUS_PATH_MAX]);
const char *dbus_image_path(const char *id, char buf[static SMPGW_DBUS_PATH_MAX]);
const char *dbus_job_path(uint64_t id, char buf[static SMPGW_DBUS_PATH_MAX]);

/* Fills error from a negative errno of the model with its sentence:
 * one table (dbus.c) maps errnos to error names, the same for every
 * method.  Returns r, so a method handler can `return dbus_error_set(...)`. */
int dbus_error_set(sd_bus_error *error, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* An engine's refusal: its errno through the table, its sentence as it is. */
struct engine_error;
int dbus_error_set_engine(sd_bus_error *error, const struct engine_error *e);

/* Reads Push()'s a{sv} options into push (mode, attempts: their D-Bus
 * types only, the engine checks their values); unknown keys and wrong
 * types are InvalidArgs. */
struct engine_push;
int dbus_read_push_options(sd_bus_message *message, struct engine_push *push, sd_bus_error *error);

/* Registers the fallback vtables and node enumerators of devices, images
 * and jobs (dbus-objects.c). */
int dbus_objects_register(struct dbus_api *api);
