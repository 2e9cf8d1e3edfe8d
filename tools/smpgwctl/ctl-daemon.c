/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon-mode commands' common ground (ctl-daemon.h): options, the
 * connection to smpgwd, D-Bus values as JSON, and the REST shapes.
 *
 * Object properties come from one GetManagedObjects call (or GetAll for
 * one object) and are turned into the JSON the REST API gives the same
 * object: one table per interface maps each REST field to the D-Bus
 * property it comes from and how (doc/dbus-api.md: every property is a
 * REST field under its CamelCase name).  tests/daemon/test_dbus.py
 * compares the two outputs object by object, so they cannot drift apart.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl-daemon.h"
#include "smpgw/mesh-dfu.h"
#include "ctl-session.h"
#include "smpgw/smp-context.h"
#include "smpgw/smp-parse.h"
#include "smpgw/smp-update.h"
#include "util.h"

/* ---- options ---- */

static const struct {
        unsigned flag;
        const char *text;
} option_help[] = {
        { OPT_MODE, "      --mode MODE        test-and-confirm (the daemon's default), confirm-only,\n"
                    "                         test-only or upload-only\n" },
        { OPT_ATTEMPTS, "      --attempts N       attempts per job, 1..100 (default: the daemon's)\n" },
        { OPT_WAIT, "      --wait             wait until the jobs finish, showing their progress\n" },
        { OPT_FOLLOW, "      --follow           without JOBs: also watch jobs created later, until Ctrl-C\n" },
        { OPT_NAME, "      --name NAME        the name to store the image under (default: FILE's name)\n" },
        { OPT_BOARD, "      --board BOARD      a board the image is built for (Zephyr's BOARD, \"name\" for\n"
                     "                         every revision or \"name@rev\"); repeat for more; none:\n"
                     "                         any board\n" },
        { OPT_FORCE, "      --force            push even to a device that reports a board the image is\n"
                     "                         not built for\n" },
        { OPT_JSON, "  -j, --json             one JSON object on stdout\n" },
        { OPT_BUS, "      --bus BUS          system (default; $DBUS_SYSTEM_BUS_ADDRESS), session,\n"
                   "                         or a D-Bus address\n" },
};

void daemon_cmd_help(FILE *f, const struct daemon_cmd *cmd) {
        fprintf(f, "Usage: smpgwctl %s\n\n%s\n\nOptions:\n", cmd->usage, cmd->description);
        for (size_t i = 0; i < ELEMENTSOF(option_help); i++)
                if (cmd->options & option_help[i].flag)
                        fputs(option_help[i].text, f);
        fprintf(f, "  -h, --help             show this help\n\n"
                   "Exit codes: 0 success, 1 failure on this side, 2 usage, 3 not a valid MCUboot\n"
                   "image, 5 no valid signature, 6 smpgwd not reachable, 8 reverted, 9 stuck,\n"
                   "10 the daemon refused (no such object, busy, an ambiguous image prefix, an image\n"
                   "not built for a device's board, access denied), 11 a job failed or was\n"
                   "cancelled, 130/143 interrupted.\n");
}

int parse_u32(const char *arg, uint32_t min, uint32_t max, uint32_t *ret) {
        uint64_t v;
        if (smp_parse_uint(arg, min, max, &v) < 0)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

/* Returns CTL_EXIT_OK, CTL_EXIT_USAGE, or -1 when --help was shown. */
int daemon_parse(struct ctl_context *ctx, const struct daemon_cmd *cmd, int argc, char *argv[],
                        struct daemon_args *ret) {
        enum { ARG_BUS = 0x300, ARG_MODE, ARG_ATTEMPTS, ARG_WAIT, ARG_FOLLOW, ARG_NAME, ARG_BOARD, ARG_FORCE };
        static const struct option options[] = { { "bus", required_argument, NULL, ARG_BUS },
                                                 { "json", no_argument, NULL, 'j' },
                                                 { "mode", required_argument, NULL, ARG_MODE },
                                                 { "attempts", required_argument, NULL, ARG_ATTEMPTS },
                                                 { "wait", no_argument, NULL, ARG_WAIT },
                                                 { "follow", no_argument, NULL, ARG_FOLLOW },
                                                 { "name", required_argument, NULL, ARG_NAME },
                                                 { "board", required_argument, NULL, ARG_BOARD },
                                                 { "force", no_argument, NULL, ARG_FORCE },
                                                 { "help", no_argument, NULL, 'h' },
                                                 {} };
        struct daemon_args a = {};
        unsigned given = 0;
        int c;

        while ((c = getopt_long(argc, argv, "jh", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        daemon_cmd_help(stdout, cmd);
                        return -1;
                case ARG_BUS:
                        given |= OPT_BUS;
                        a.bus = optarg;
                        break;
                case 'j':
                        given |= OPT_JSON;
                        ctx->json = true;
                        break;
                case ARG_MODE:
                        given |= OPT_MODE;
                        /* a usage error here, not a refusal by smpgwd */
                        if (ctl_parse_update_mode(optarg) < 0)
                                return CTL_EXIT_USAGE;
                        a.mode = optarg;
                        break;
                case ARG_ATTEMPTS:
                        given |= OPT_ATTEMPTS;
                        if (parse_u32(optarg, 1, 100, &a.attempts) < 0) {
                                ctl_log("--attempts wants a number from 1 to 100, not '%s'", optarg);
                                return CTL_EXIT_USAGE;
                        }
                        break;
                case ARG_WAIT:
                        given |= OPT_WAIT;
                        a.wait = true;
                        break;
                case ARG_FOLLOW:
                        given |= OPT_FOLLOW;
                        a.follow = true;
                        break;
                case ARG_NAME:
                        given |= OPT_NAME;
                        a.name = optarg;
                        break;
                case ARG_BOARD:
                        given |= OPT_BOARD;
                        if (a.n_boards >= CTL_BOARDS_MAX) {
                                ctl_log("--board is given more than %d times: an image declares at most %d boards",
                                        CTL_BOARDS_MAX, CTL_BOARDS_MAX);
                                return CTL_EXIT_USAGE;
                        }
                        a.boards[a.n_boards++] = optarg;
                        break;
                case ARG_FORCE:
                        given |= OPT_FORCE;
                        a.force = true;
                        break;
                default:
                        return CTL_EXIT_USAGE;
                }
        }
        if (given & ~(cmd->options | OPT_JSON | OPT_BUS)) {
                ctl_log("an option given is not one of '%s'; see 'smpgwctl %s --help'", ctx->command, ctx->command);
                return CTL_EXIT_USAGE;
        }
        a.args = argv + optind;
        a.n_args = argc - optind;
        if (a.n_args < cmd->min_args || (cmd->max_args >= 0 && a.n_args > cmd->max_args)) {
                ctl_log("usage: smpgwctl %s; see 'smpgwctl %s --help'", cmd->usage, ctx->command);
                return CTL_EXIT_USAGE;
        }
        *ret = a;
        return CTL_EXIT_OK;
}

/* ---- the connection and its errors ---- */

void client_close(struct client *c) {
        c->bus = sd_bus_flush_close_unref(c->bus);
}

int client_open(struct ctl_context *ctx, const char *bus_arg, struct client *ret) {
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL;
        const char *text;
        int r;

        if (!bus_arg || streq(bus_arg, "system")) {
                text = getenv("DBUS_SYSTEM_BUS_ADDRESS") ? "the system bus ($DBUS_SYSTEM_BUS_ADDRESS)" : "the system bus";
                r = sd_bus_open_system(&bus);
        } else if (streq(bus_arg, "session")) {
                text = "the session bus";
                r = sd_bus_open_user(&bus);
        } else if (strchr(bus_arg, ':')) {
                text = bus_arg;
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, bus_arg);
                if (r >= 0)
                        r = sd_bus_set_bus_client(bus, 1);
                if (r >= 0)
                        r = sd_bus_start(bus);
        } else {
                ctl_log("--bus wants system, session or a D-Bus address (unix:path=...), not '%s'", bus_arg);
                return CTL_EXIT_USAGE;
        }
        if (r < 0)
                return ctl_fail(ctx, CTL_EXIT_TRANSPORT, NULL, "cannot connect to %s: %s", text, strerror(-r));
        *ret = (struct client) { .ctx = ctx, .bus_text = text, .bus = TAKE_PTR(bus) };
        return CTL_EXIT_OK;
}

static bool error_is(const sd_bus_error *e, const char *name) {
        return sd_bus_error_has_name(e, name);
}

/* Reports a failed call (what: "AddImage") and returns its exit code. */
int client_fail(struct client *c, const sd_bus_error *e, int r, const char *what) {
        if (error_is(e, SD_BUS_ERROR_SERVICE_UNKNOWN) || error_is(e, SD_BUS_ERROR_NAME_HAS_NO_OWNER) ||
            error_is(e, SD_BUS_ERROR_NO_REPLY) || error_is(e, SD_BUS_ERROR_DISCONNECTED) ||
            error_is(e, SD_BUS_ERROR_TIMEOUT) || error_is(e, SD_BUS_ERROR_NO_SERVER) ||
            (e->name && strncmp(e->name, "org.freedesktop.DBus.Error.Spawn.", 33) == 0) ||
            (!sd_bus_error_is_set(e) && (r == -ETIMEDOUT || r == -ECONNRESET || r == -ENOTCONN)))
                return ctl_fail(c->ctx, CTL_EXIT_TRANSPORT, NULL, "smpgwd is not reachable on %s: %s", c->bus_text,
                                e->message ?: strerror(-r));
        if (error_is(e, "org.smpgw.Error.InvalidImage"))
                return ctl_fail(c->ctx, CTL_EXIT_BAD_IMAGE, NULL, "%s", e->message);
        if (error_is(e, "org.smpgw.Error.SignatureInvalid"))
                return ctl_fail(c->ctx, CTL_EXIT_BAD_SIGNATURE, NULL, "%s", e->message);
        if (error_is(e, SD_BUS_ERROR_ACCESS_DENIED))
                return ctl_fail(c->ctx, CTL_EXIT_REFUSED, NULL,
                                "%s: access denied: only root and group smpgw may change things (%s)", what,
                                e->message ?: "");
        if (e->name && (strncmp(e->name, "org.smpgw.Error.", 16) == 0 || error_is(e, SD_BUS_ERROR_INVALID_ARGS) ||
                        error_is(e, SD_BUS_ERROR_UNKNOWN_OBJECT) || error_is(e, SD_BUS_ERROR_UNKNOWN_INTERFACE)))
                return ctl_fail(c->ctx, CTL_EXIT_REFUSED, NULL, "%s", e->message ?: e->name);
        return ctl_fail(c->ctx, CTL_EXIT_FAILURE, NULL, "%s failed: %s", what,
                        sd_bus_error_is_set(e) ? e->message ?: e->name : strerror(-r));
}

/* ---- D-Bus values as JSON ---- */

static int read_basic_json(sd_bus_message *m, char type, json_t **ret) {
        union {
                uint8_t y;
                int b;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
                double d;
                const char *s;
                int h;
        } v;
        json_t *j = NULL;
        int r;

        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;
        switch (type) {
        case SD_BUS_TYPE_BYTE:
                j = json_integer(v.y);
                break;
        case SD_BUS_TYPE_BOOLEAN:
                j = json_boolean(v.b);
                break;
        case SD_BUS_TYPE_INT16:
                j = json_integer(v.n);
                break;
        case SD_BUS_TYPE_UINT16:
                j = json_integer(v.q);
                break;
        case SD_BUS_TYPE_INT32:
                j = json_integer(v.i);
                break;
        case SD_BUS_TYPE_UINT32:
                j = json_integer(v.u);
                break;
        case SD_BUS_TYPE_INT64:
                j = json_integer(v.x);
                break;
        case SD_BUS_TYPE_UINT64:
                j = json_integer((json_int_t) v.t);
                break;
        case SD_BUS_TYPE_DOUBLE:
                j = json_real(v.d);
                break;
        case SD_BUS_TYPE_UNIX_FD:
                j = json_integer(v.h);
                break;
        default: /* string, object path, signature */
                j = json_string(v.s);
                break;
        }
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}

/* A dictionary (a{..}) as a JSON object; keys that are not strings are
 * formatted as JSON would print them. */
static int read_dict_json(sd_bus_message *m, const char *contents, json_t **ret) {
        _cleanup_(json_decrefp) json_t *obj = json_object();
        char entry[64];
        size_t len = strlen(contents);
        int r;

        if (!obj)
                return -ENOMEM;
        if (len < 3 || len - 2 >= sizeof(entry))
                return -EINVAL;
        memcpy(entry, contents + 1, len - 2);   /* "{sv}" → "sv" */
        entry[len - 2] = 0;

        r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, contents);
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, entry)) > 0) {
                _cleanup_(json_decrefp) json_t *key = NULL, *value = NULL;
                char buf[32];
                const char *k;

                r = read_basic_json(m, entry[0], &key);
                if (r < 0)
                        return r;
                if (json_is_string(key))
                        k = json_string_value(key);
                else {
                        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(key));
                        k = buf;
                }
                r = bus_read_json(m, &value);
                if (r < 0)
                        return r;
                if (json_object_set(obj, k, value) < 0)
                        return -ENOMEM;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(obj);
        return 0;
}

int bus_read_json(sd_bus_message *m, json_t **ret) {
        _cleanup_(json_decrefp) json_t *list = NULL;
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENXIO;
        switch (type) {
        case SD_BUS_TYPE_VARIANT:
                r = sd_bus_message_enter_container(m, type, contents);
                if (r < 0)
                        return r;
                r = bus_read_json(m, ret);
                if (r < 0)
                        return r;
                return sd_bus_message_exit_container(m);
        case SD_BUS_TYPE_ARRAY:
                if (contents[0] == SD_BUS_TYPE_DICT_ENTRY_BEGIN)
                        return read_dict_json(m, contents, ret);
                __attribute__((fallthrough));
        case SD_BUS_TYPE_STRUCT:
                list = json_array();
                if (!list)
                        return -ENOMEM;
                r = sd_bus_message_enter_container(m, type, contents);
                if (r < 0)
                        return r;
                while ((r = sd_bus_message_at_end(m, false)) == 0) {
                        json_t *item;
                        r = bus_read_json(m, &item);
                        if (r < 0)
                                return r;
                        if (json_array_append_new(list, item) < 0)
                                return -ENOMEM;
                }
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(list);
                return 0;
        default:
                return read_basic_json(m, type, ret);
        }
}

/* {path: {interface: {property: value}}} of every object. */
int get_managed_objects(struct client *c, json_t **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(c->bus, CTL_BUS_NAME, CTL_ROOT_PATH, "org.freedesktop.DBus.ObjectManager",
                               "GetManagedObjects", &error, &reply, NULL);
        if (r < 0)
                return client_fail(c, &error, r, "GetManagedObjects");
        r = bus_read_json(reply, ret);
        if (r < 0)
                return ctl_fail(c->ctx, CTL_EXIT_FAILURE, NULL, "cannot read smpgwd's objects: %s", strerror(-r));
        return CTL_EXIT_OK;
}

int get_all(struct client *c, const char *path, const char *interface, json_t **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(c->bus, CTL_BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll", &error, &reply,
                               "s", interface);
        if (r < 0)
                return client_fail(c, &error, r, "GetAll");
        r = bus_read_json(reply, ret);
        if (r < 0)
                return ctl_fail(c->ctx, CTL_EXIT_FAILURE, NULL, "cannot read %s: %s", path, strerror(-r));
        return CTL_EXIT_OK;
}

uint64_t json_u64(const json_t *obj, const char *key) {
        return (uint64_t) json_integer_value(json_object_get(obj, key));
}

const char *json_str(const json_t *obj, const char *key) {
        const char *s = json_string_value(json_object_get(obj, key));
        return s ?: "";
}


int client_call(struct client *c, const char *path, const char *interface, const char *member,
                sd_bus_message **ret, const char *types, ...) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(c->bus, &call, CTL_BUS_NAME, path, interface, member);
        if (r >= 0 && types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(call, types, ap);
                va_end(ap);
        }
        if (r < 0)
                return ctl_fail(c->ctx, CTL_EXIT_FAILURE, NULL, "cannot build the %s call: %s", member, strerror(-r));
        r = sd_bus_call(c->bus, call, CTL_CALL_TIMEOUT_USEC, &error, &reply);
        if (r < 0)
                return client_fail(c, &error, r, member);
        if (ret)
                *ret = TAKE_PTR(reply);
        return CTL_EXIT_OK;
}

/* ---- the REST API's shapes ---- */

enum field_kind {
        FIELD_PLAIN,     /* as D-Bus has it */
        FIELD_STRING,    /* "" is null */
        FIELD_NONZERO,   /* 0 is null */
        FIELD_TIME,      /* µs since the epoch as RFC 3339; 0 is null */
        FIELD_OBJECT_ID, /* an object path as the decimal id it ends in; "/" is null */
        FIELD_PARAMS,    /* BufSize and BufCount as {"buf_size", "buf_count"}; null when 0 */
        FIELD_MESH,      /* a mesh target's a{sv} as REST's "mesh" object; null when empty */
        FIELD_TARGETS,   /* a distribution's a(tqsuyyys) as REST's "targets" objects */
        FIELD_HAWKBIT,   /* Hawkbit a{sv} as REST's object: "" and 0 are null */
        FIELD_DICT,      /* an a{sv} with REST's keys, as it is; null when empty */
};

struct field {
        const char *name;           /* REST */
        const char *property;       /* D-Bus */
        enum field_kind kind;
};

/* In the order doc/openapi.yaml (and daemon/rest-json.c) list them. */
static const struct field device_fields[] = { { "id", "Id", FIELD_PLAIN },
                                              { "conn", "Conn", FIELD_PLAIN },
                                              { "transport", "Transport", FIELD_PLAIN },
                                              { "address", "Address", FIELD_STRING },
                                              { "address_type", "AddressType", FIELD_STRING },
                                              { "adapter", "Adapter", FIELD_STRING },
                                              { "name", "Name", FIELD_STRING },
                                              { "state", "State", FIELD_PLAIN },
                                              { "source", "Source", FIELD_PLAIN },
                                              { "rssi", "RSSI", FIELD_NONZERO },
                                              { "first_seen", "FirstSeen", FIELD_TIME },
                                              { "last_seen", "LastSeen", FIELD_TIME },
                                              { "last_probe", "LastProbe", FIELD_TIME },
                                              { "params", NULL, FIELD_PARAMS },
                                              { "os_info", "OsInfo", FIELD_STRING },
                                              { "bootloader", "Bootloader", FIELD_STRING },
                                              { "board", "Board", FIELD_STRING },
                                              { "app", "App", FIELD_STRING },
                                              { "smp_version", "SmpVersion", FIELD_NONZERO },
                                              { "last_error", "LastError", FIELD_STRING },
                                              { "job", "Job", FIELD_OBJECT_ID },
                                              { "images", "Images", FIELD_PLAIN }, /* per slot the same keys in both */
                                              { "labels", "Labels", FIELD_PLAIN },
                                              { "role", "Role", FIELD_STRING },
                                              { "mesh", "Mesh", FIELD_MESH },
                                              { "hawkbit", "Hawkbit", FIELD_HAWKBIT },
                                              {} };

static const struct field image_fields[] = { { "id", "Id", FIELD_PLAIN },
                                             { "name", "Name", FIELD_STRING },
                                             { "version", "Version", FIELD_PLAIN },
                                             { "size", "Size", FIELD_PLAIN },
                                             { "image_size", "ImageSize", FIELD_PLAIN },
                                             { "sha256", "Sha256", FIELD_PLAIN },
                                             { "signed", "Signed", FIELD_PLAIN },
                                             { "key", "Key", FIELD_STRING },
                                             { "added", "Added", FIELD_TIME },
                                             { "in_use", "InUse", FIELD_PLAIN },
                                             { "boards", "Boards", FIELD_PLAIN },
                                             { "mesh_composition", "MeshComposition", FIELD_DICT },
                                             {} };

static const struct field job_fields[] = {
        { "id", "Id", FIELD_PLAIN },
        { "device", "DeviceId", FIELD_PLAIN },
        { "conn", "Conn", FIELD_STRING },
        { "image", "ImageId", FIELD_PLAIN },
        { "rollout", "Rollout", FIELD_NONZERO },
        { "mode", "Mode", FIELD_PLAIN },
        { "state", "State", FIELD_PLAIN },
        { "step", "Step", FIELD_STRING },
        { "outcome", "Outcome", FIELD_STRING },
        { "attempts", "Attempts", FIELD_PLAIN },
        { "max_attempts", "MaxAttempts", FIELD_PLAIN },
        { "bytes_sent", "BytesSent", FIELD_PLAIN },
        { "bytes_total", "BytesTotal", FIELD_PLAIN },
        { "progress", "Progress", FIELD_PLAIN },
        { "rate", "Rate", FIELD_PLAIN },
        { "error", "Error", FIELD_STRING },
        { "created", "Created", FIELD_TIME },
        { "started", "Started", FIELD_TIME },
        { "finished", "Finished", FIELD_TIME },
        { "next_attempt", "NextAttempt", FIELD_TIME },
        { "updated", "Updated", FIELD_TIME },
        {}
};

static const struct field distribution_fields[] = { { "id", "Id", FIELD_PLAIN },
                                                    { "distributor", "DistributorId", FIELD_PLAIN },
                                                    { "image", "ImageId", FIELD_PLAIN },
                                                    { "state", "State", FIELD_PLAIN },
                                                    { "step", "Step", FIELD_PLAIN },
                                                    { "apply", "Apply", FIELD_PLAIN },
                                                    { "max_attempts", "MaxAttempts", FIELD_PLAIN },
                                                    { "rounds", "Rounds", FIELD_PLAIN },
                                                    { "targets_total", "TargetsTotal", FIELD_PLAIN },
                                                    { "targets_updated", "TargetsUpdated", FIELD_PLAIN },
                                                    { "targets_failed", "TargetsFailed", FIELD_PLAIN },
                                                    { "rollout", "Rollout", FIELD_NONZERO },
                                                    { "error", "Error", FIELD_STRING },
                                                    { "created", "Created", FIELD_TIME },
                                                    { "finished", "Finished", FIELD_TIME },
                                                    { "updated", "Updated", FIELD_TIME },
                                                    { "targets", "Targets", FIELD_TARGETS },
                                                    {} };

static const struct field *fields_of(const char *interface) {
        if (streq(interface, CTL_DISTRIBUTION_IFACE))
                return distribution_fields;
        if (streq(interface, CTL_DEVICE_IFACE))
                return device_fields;
        if (streq(interface, CTL_IMAGE_IFACE))
                return image_fields;
        if (streq(interface, CTL_JOB_IFACE))
                return job_fields;
        return NULL;
}

void format_rest_time(uint64_t usec, char *buf, size_t size) {
        time_t sec = (time_t) (usec / 1000000u);
        struct tm tm;
        size_t n;

        if (usec == 0 || !gmtime_r(&sec, &tm) || (n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm)) == 0) {
                snprintf(buf, size, "never");
                return;
        }
        snprintf(buf + n, size - n, ".%03uZ", (unsigned) (usec / 1000u % 1000u));
}

static json_t *field_value(const struct field *f, const json_t *props) {
        const json_t *v = f->property ? json_object_get(props, f->property) : NULL;
        char buf[64];

        switch (f->kind) {
        case FIELD_PLAIN:
                return v ? json_deep_copy(v) : json_null();
        case FIELD_STRING:
                return json_is_string(v) && json_string_length(v) > 0 ? json_deep_copy(v) : json_null();
        case FIELD_NONZERO:
                return json_is_integer(v) && json_integer_value(v) != 0 ? json_deep_copy(v) : json_null();
        case FIELD_TIME:
                if (!json_is_integer(v) || json_integer_value(v) == 0)
                        return json_null();
                format_rest_time((uint64_t) json_integer_value(v), buf, sizeof(buf));
                return json_string(buf);
        case FIELD_OBJECT_ID: {
                const char *path = json_string_value(v), *slash = path ? strrchr(path, '/') : NULL;
                char *end;
                if (!slash || slash[1] < '1' || slash[1] > '9')
                        return json_null();
                errno = 0;
                unsigned long long id = strtoull(slash + 1, &end, 10);
                return errno == 0 && !*end ? json_integer((json_int_t) id) : json_null();
        }
        case FIELD_PARAMS: {
                uint64_t size = json_u64(props, "BufSize"), count = json_u64(props, "BufCount");
                if (size == 0 && count == 0)
                        return json_null();
                return json_pack("{s:I, s:I}", "buf_size", (json_int_t) size, "buf_count", (json_int_t) count);
        }
        case FIELD_TARGETS: {
                /* [device, addr, state, attempts, phase, status, progress, reason] */
                json_t *arr = json_array(), *t;
                size_t i;
                if (!arr)
                        return NULL;
                json_array_foreach(v, i, t) {
                        const char *phase =
                                smp_mesh_dfu_phase_to_string((unsigned) json_integer_value(json_array_get(t, 4)));
                        const char *status =
                                smp_mesh_dfu_status_to_string((unsigned) json_integer_value(json_array_get(t, 5)));
                        const char *reason = json_string_value(json_array_get(t, 7));
                        snprintf(buf, sizeof(buf), "0x%04x", (unsigned) json_integer_value(json_array_get(t, 1)));
                        json_array_append_new(arr,
                                              json_pack("{s:I, s:s, s:s, s:I, s:o, s:o, s:I, s:o}", "device",
                                                        json_integer_value(json_array_get(t, 0)), "addr", buf, "state",
                                                        json_string_value(json_array_get(t, 2)) ?: "", "attempts",
                                                        json_integer_value(json_array_get(t, 3)), "phase",
                                                        phase ? json_string(phase) : json_null(), "status",
                                                        status ? json_string(status) : json_null(), "progress",
                                                        json_integer_value(json_array_get(t, 6)), "reason",
                                                        reason && reason[0] ? json_string(reason) : json_null()));
                }
                return arr;
        }
        case FIELD_DICT:
                if (!json_is_object(v) || json_object_size(v) == 0)
                        return json_null();
                return json_deep_copy(v);
        case FIELD_MESH: {
                static const char *const strings[] = { "addr", "fwid", "version", "phase", "status" };
                json_t *o;
                if (!json_is_object(v) || json_object_size(v) == 0 || !(o = json_object()))
                        return json_null();
                json_object_set_new(o, "distributor", json_integer((json_int_t) json_u64(v, "distributor")));
                for (size_t i = 0; i < ELEMENTSOF(strings); i++) {
                        const char *str = json_str(v, strings[i]);
                        json_object_set_new(o, strings[i], str[0] ? json_string(str) : json_null());
                }
                if (json_u64(v, "updated")) {
                        format_rest_time(json_u64(v, "updated"), buf, sizeof(buf));
                        json_object_set_new(o, "updated", json_string(buf));
                } else
                        json_object_set_new(o, "updated", json_null());
                json_object_set_new(o, "direct_device",
                                    json_u64(v, "direct_device")
                                            ? json_integer((json_int_t) json_u64(v, "direct_device"))
                                            : json_null());
                return o;
        }
        case FIELD_HAWKBIT: {
                const json_t *id = json_object_get(v, "action_id");
                return json_pack(
                        "{s:b, s:o, s:o, s:o, s:I}", "managed", json_is_true(json_object_get(v, "managed")),
                        "controller_id",
                        json_str(v, "controller_id")[0] ? json_string(json_str(v, "controller_id")) : json_null(),
                        "action_id",
                        json_is_integer(id) && json_integer_value(id) != 0 ? json_deep_copy(id) : json_null(),
                        "last_feedback",
                        json_str(v, "last_feedback")[0] ? json_string(json_str(v, "last_feedback")) : json_null(),
                        "feedback_queued", (json_int_t) json_u64(v, "feedback_queued"));
        }
        }
        return json_null();
}

json_t *rest_shape(const char *interface, const json_t *props) {
        const struct field *fields = fields_of(interface);
        _cleanup_(json_decrefp) json_t *o = json_object();

        if (!o || !fields)
                return NULL;
        for (const struct field *f = fields; f->name; f++)
                if (json_object_set_new(o, f->name, field_value(f, props)) < 0)
                        return NULL;
        return TAKE_PTR(o);
}

/* REST's orders: devices by id (the inventory's), images by when they
 * were added, jobs newest first. */
static int compare_devices(const void *a, const void *b) {
        uint64_t x = json_u64(*(json_t *const *) a, "id"), y = json_u64(*(json_t *const *) b, "id");
        return x < y ? -1 : x > y;
}

static int compare_images(const void *a, const void *b) {
        const json_t *x = *(json_t *const *) a, *y = *(json_t *const *) b;
        /* RFC 3339 UTC strings of one length sort as the times do */
        int r = strcmp(json_str(x, "added"), json_str(y, "added"));
        return r ? r : strcmp(json_str(x, "id"), json_str(y, "id"));
}

static int compare_jobs(const void *a, const void *b) {
        return -compare_devices(a, b);
}

json_t *rest_list(const json_t *objects, const char *interface) {
        _cleanup_(json_decrefp) json_t *list = json_array();
        _cleanup_free_ json_t **items = NULL;
        const char *path;
        json_t *ifaces;
        size_t n = 0;

        if (!list)
                return NULL;
        items = calloc(json_object_size(objects) + 1, sizeof(*items));
        if (!items)
                return NULL;
        json_object_foreach((json_t *) objects, path, ifaces) {
                const json_t *props = json_object_get(ifaces, interface);
                if (!props)
                        continue;
                items[n] = rest_shape(interface, props);
                if (!items[n]) {
                        for (size_t i = 0; i < n; i++)
                                json_decref(items[i]);
                        return NULL;
                }
                n++;
        }
        qsort(items, n, sizeof(*items),
              streq(interface, CTL_JOB_IFACE)            ? compare_jobs
              : streq(interface, CTL_DISTRIBUTION_IFACE) ? compare_devices
              : streq(interface, CTL_IMAGE_IFACE)        ? compare_images
                                                         : compare_devices);
        for (size_t i = 0; i < n; i++)
                if (json_array_append_new(list, items[i]) < 0) {
                        for (size_t k = i + 1; k < n; k++)
                                json_decref(items[k]);
                        return NULL;
                }
        return TAKE_PTR(list);
}

int get_rest_object(struct client *c, const char *path, const char *interface, json_t **ret) {
        _cleanup_(json_decrefp) json_t *props = NULL;
        int r;

        r = get_all(c, path, interface, &props);
        if (r != CTL_EXIT_OK)
                return r;
        *ret = rest_shape(interface, props);
        if (!*ret)
                return ctl_fail(c->ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
        return CTL_EXIT_OK;
}

/* ---- lookups ---- */

DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_context *, smp_context_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_conn *, smp_conn_unref);

static void quiet_log(int level, const char *source, const char *message, void *userdata) {
        /* what a plugin says while it loads: smpgwctl says "no device" */
}

static const json_t *find_device_exact(const json_t *devices, const char *spec) {
        const json_t *d;
        size_t i;
        char id[32];

        json_array_foreach(devices, i, d) {
                snprintf(id, sizeof(id), "%" PRIu64, json_u64(d, "id"));
                if (streq(spec, id) || streq(spec, json_str(d, "conn")))
                        return d;
        }
        return NULL;
}

/* smpgwd keeps devices by the canonical form of their connection string
 * and finds them by any spelling of it (daemon/device.c does the same);
 * so does this, with the transports' own parsers.  A spelling that does
 * not parse, or a transport that cannot be loaded, names no device. */
static const json_t *find_device_canonical(const json_t *devices, const char *spec) {
        _cleanup_(smp_context_unrefp) struct smp_context *smp = NULL;
        _cleanup_(smp_conn_unrefp) struct smp_conn *conn = NULL;

        if (!strchr(spec, ':') || ctl_smp_context_open(&smp) < 0)
                return NULL;
        smp_context_set_log(smp, SMP_LOG_ERR, quiet_log, NULL);
        if (smp_context_parse_conn(smp, spec, &conn, NULL) < 0 || streq(smp_conn_get_string(conn), spec))
                return NULL;
        return find_device_exact(devices, smp_conn_get_string(conn));
}

const json_t *find_device(const json_t *devices, const char *spec) {
        const json_t *d = find_device_exact(devices, spec);
        return d ? d : find_device_canonical(devices, spec);
}

bool image_ref_is_valid(const char *s) {
        size_t n = strlen(s);
        return n >= CTL_IMAGE_PREFIX_MIN && n <= 64 && strspn(s, "0123456789abcdefABCDEF") == n;
}

/* ---- output ---- */

int print_json(struct ctl_context *ctx, const char *key, json_t *value) {
        json_t *obj = json_object();
        if (!obj || json_object_set_new(obj, key, value) < 0) {
                json_decref(obj);
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
        }
        return ctl_json_print(ctx, obj);
}

int list_objects(struct ctl_context *ctx, const struct daemon_cmd *cmd, int argc, char *argv[],
                 const char *interface, struct daemon_args *ret_args, json_t **ret) {
        _cleanup_(json_decrefp) json_t *objects = NULL;
        struct client c = {};
        int r;

        *ret = NULL;
        r = daemon_parse(ctx, cmd, argc, argv, ret_args);
        if (r != CTL_EXIT_OK)
                return r < 0 ? CTL_EXIT_OK : r;
        r = client_open(ctx, ret_args->bus, &c);
        if (r != CTL_EXIT_OK)
                return r;
        r = get_managed_objects(&c, &objects);
        client_close(&c);
        if (r != CTL_EXIT_OK)
                return r;
        *ret = rest_list(objects, interface);
        if (!*ret)
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
        return CTL_EXIT_OK;
}
