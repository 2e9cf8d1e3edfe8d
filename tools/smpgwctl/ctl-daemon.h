/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the daemon-mode commands (cmd-daemon*.c) share: their options, the
 * D-Bus connection to smpgwd and its errors as exit codes, D-Bus values
 * read as JSON, and smpgwd's objects in the one JSON shape the REST API
 * gives them (doc/openapi.yaml), in the REST API's order.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <systemd/sd-bus.h>

#include "cmd-daemon.h"

#define CTL_BUS_NAME "org.smpgw"
#define CTL_ROOT_PATH "/org/smpgw"
#define CTL_MANAGER_IFACE "org.smpgw.Manager1"
#define CTL_DEVICE_IFACE "org.smpgw.Device1"
#define CTL_IMAGE_IFACE "org.smpgw.Image1"
#define CTL_JOB_IFACE "org.smpgw.Job1"
#define CTL_DEVICE_PREFIX "/org/smpgw/device/"
#define CTL_JOB_PREFIX "/org/smpgw/job/"
#define CTL_DISTRIBUTION_IFACE "org.smpgw.Distribution1"

/* An upload over D-Bus copies up to the daemon's max_size (16 MiB by
 * default) on its side before answering. */
#define CTL_CALL_TIMEOUT_USEC (120ull * 1000000ull)

/* The shortest image id prefix smpgwd takes (IMAGE_ID_PREFIX_MIN). */
#define CTL_IMAGE_PREFIX_MIN 6

/* ---- options ---- */

enum {
        OPT_BUS = 1 << 0,
        OPT_JSON = 1 << 1,
        OPT_MODE = 1 << 2,
        OPT_ATTEMPTS = 1 << 3,
        OPT_WAIT = 1 << 4,
        OPT_FOLLOW = 1 << 5,
        OPT_NAME = 1 << 6,
        OPT_BOARD = 1 << 7,
        OPT_FORCE = 1 << 8,
};

/* --board given more often than an image may declare boards
 * (IMAGE_BOARDS_MAX) is a usage error. */
#define CTL_BOARDS_MAX 16

struct daemon_cmd {
        const char *usage;          /* after "smpgwctl " */
        const char *description;
        unsigned options;           /* OPT_* it takes */
        int min_args, max_args;     /* max_args -1: any */
};

struct daemon_args {
        const char *bus;            /* NULL: system */
        const char *mode;           /* checked: one of the update modes */
        uint32_t attempts;          /* 0: the daemon's default */
        bool wait, follow;
        const char *name;
        const char *boards[CTL_BOARDS_MAX + 1]; /* --board, in order; NULL-terminated */
        size_t n_boards;
        bool force;
        char **args;
        int n_args;
};

/* Parses a command's options and arguments.  Returns CTL_EXIT_OK,
 * CTL_EXIT_USAGE (reported), or -1 when --help was shown. */
int daemon_parse(struct ctl_context *ctx, const struct daemon_cmd *cmd, int argc, char *argv[],
                 struct daemon_args *ret);
int parse_u32(const char *arg, uint32_t min, uint32_t max, uint32_t *ret);

/* ---- the connection and its errors ---- */

struct client {
        struct ctl_context *ctx;
        const char *bus_text;       /* for messages */
        sd_bus *bus;
};

/* Returns CTL_EXIT_OK or an exit code after reporting. */
int client_open(struct ctl_context *ctx, const char *bus_arg, struct client *ret);
void client_close(struct client *c);
/* Reports a failed call (what: "AddImage") and returns its exit code:
 * 6 unreachable, 3/5 an image refused, 10 refused otherwise. */
int client_fail(struct client *c, const sd_bus_error *e, int r, const char *what);
/* Calls a method without arguments or with the types given; the reply in
 * *ret (may be NULL).  Returns CTL_EXIT_OK or client_fail()'s code. */
int client_call(struct client *c, const char *path, const char *interface, const char *member,
                sd_bus_message **ret, const char *types, ...);

/* ---- D-Bus values as JSON ---- */

/* The next value of m, whatever its type: dictionaries as objects,
 * arrays and structs as arrays. */
int bus_read_json(sd_bus_message *m, json_t **ret);
/* {path: {interface: {property: value}}} of every object. */
int get_managed_objects(struct client *c, json_t **ret);
/* One object's properties of one interface, under their D-Bus names. */
int get_all(struct client *c, const char *path, const char *interface, json_t **ret);

uint64_t json_u64(const json_t *obj, const char *key);
const char *json_str(const json_t *obj, const char *key);

/* ---- the REST API's shapes ---- */

/* A new object with the fields of the REST API's Device, Image or Job
 * (by interface) made from D-Bus properties: snake_case names, RFC 3339
 * times, null where D-Bus says "", 0 or "/".  NULL when out of memory. */
json_t *rest_shape(const char *interface, const json_t *props);
/* The objects with interface, in REST shapes and the REST API's order:
 * devices and images oldest first, jobs newest first. */
json_t *rest_list(const json_t *objects, const char *interface);
/* One object in its REST shape. */
int get_rest_object(struct client *c, const char *path, const char *interface, json_t **ret);
/* RFC 3339 UTC with milliseconds, as REST writes times; "never" for 0. */
void format_rest_time(uint64_t usec, char *buf, size_t size);

/* ---- lookups ---- */

/* A device named on the command line (its decimal id or connection
 * string) among REST-shaped devices; NULL when there is none. */
const json_t *find_device(const json_t *devices, const char *spec);
/* IMAGE on the command line has the shape of an image id or a prefix
 * smpgwd takes (hex, CTL_IMAGE_PREFIX_MIN..64 digits). */
bool image_ref_is_valid(const char *s);

/* ---- output ---- */

/* {"key": value} with "ok" etc. on stdout; value is taken. */
int print_json(struct ctl_context *ctx, const char *key, json_t *value);
void daemon_cmd_help(FILE *f, const struct daemon_cmd *cmd);

/* The start of a listing command: parses its options, reads smpgwd's
 * objects and keeps those with interface, REST-shaped.  Returns
 * CTL_EXIT_OK with *ret set, or the exit code to return with *ret NULL
 * (CTL_EXIT_OK then means --help was printed). */
int list_objects(struct ctl_context *ctx, const struct daemon_cmd *cmd, int argc, char *argv[],
                 const char *interface, struct daemon_args *ret_args, json_t **ret);
