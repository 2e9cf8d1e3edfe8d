/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwctl's daemon mode: devices, device, images, images add, push,
 * jobs and watch ask smpgwd over D-Bus (org.smpgw, dbus/org.smpgw.xml).
 *
 * The bus is the system bus ($DBUS_SYSTEM_BUS_ADDRESS honoured) unless
 * --bus says session or gives an address.  Object properties are read
 * with one GetManagedObjects call and turned into JSON as they are, so
 * --json prints the D-Bus properties under their D-Bus names and the
 * tables are drawn from the same data.  watch and push --wait follow
 * jobs through PropertiesChanged signals, never by polling.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "cmd-daemon.h"
#include "ctl-session.h"
#include "smpgw/smp-parse.h"
#include "util.h"

#define BUS_NAME "org.smpgw"
#define ROOT_PATH "/org/smpgw"
#define MANAGER_IFACE "org.smpgw.Manager1"
#define DEVICE_IFACE "org.smpgw.Device1"
#define IMAGE_IFACE "org.smpgw.Image1"
#define JOB_IFACE "org.smpgw.Job1"
#define JOB_PREFIX "/org/smpgw/job/"

/* An upload over D-Bus copies up to the daemon's max_size (16 MiB by
 * default) on its side before answering. */
#define CALL_TIMEOUT_USEC (120ull * 1000000ull)

/* ---- options ---- */

enum {
        OPT_BUS = 1 << 0,
        OPT_JSON = 1 << 1,
        OPT_MODE = 1 << 2,
        OPT_ATTEMPTS = 1 << 3,
        OPT_WAIT = 1 << 4,
        OPT_FOLLOW = 1 << 5,
        OPT_NAME = 1 << 6,
};

struct daemon_cmd {
        const char *usage;          /* after "smpgwctl " */
        const char *description;
        unsigned options;           /* OPT_* it takes */
        int min_args, max_args;     /* max_args -1: any */
};

struct daemon_args {
        const char *bus;            /* NULL: system */
        const char *mode;
        uint32_t attempts;          /* 0: the daemon's default */
        bool wait, follow;
        const char *name;
        char **args;
        int n_args;
};

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
        { OPT_JSON, "  -j, --json             one JSON object on stdout\n" },
        { OPT_BUS, "      --bus BUS          system (default; $DBUS_SYSTEM_BUS_ADDRESS), session,\n"
                   "                         or a D-Bus address\n" },
};

static void daemon_cmd_help(FILE *f, const struct daemon_cmd *cmd) {
        fprintf(f, "Usage: smpgwctl %s\n\n%s\n\nOptions:\n", cmd->usage, cmd->description);
        for (size_t i = 0; i < ELEMENTSOF(option_help); i++)
                if (cmd->options & option_help[i].flag)
                        fputs(option_help[i].text, f);
        fprintf(f, "  -h, --help             show this help\n\n"
                   "Exit codes: 0 success, 1 failure on this side, 2 usage, 3 not a valid MCUboot\n"
                   "image, 5 no valid signature, 6 smpgwd not reachable, 8 reverted, 9 stuck,\n"
                   "10 the daemon refused (no such object, busy, access denied), 11 a job failed\n"
                   "or was cancelled, 130/143 interrupted.\n");
}

static int parse_u32(const char *arg, uint32_t min, uint32_t max, uint32_t *ret) {
        uint64_t v;
        if (smp_parse_uint(arg, min, max, &v) < 0)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

/* Returns CTL_EXIT_OK, CTL_EXIT_USAGE, or -1 when --help was shown. */
static int daemon_parse(struct ctl_context *ctx, const struct daemon_cmd *cmd, int argc, char *argv[],
                        struct daemon_args *ret) {
        enum { ARG_BUS = 0x300, ARG_MODE, ARG_ATTEMPTS, ARG_WAIT, ARG_FOLLOW, ARG_NAME };
        static const struct option options[] = {
                { "bus", required_argument, NULL, ARG_BUS },
                { "json", no_argument, NULL, 'j' },
                { "mode", required_argument, NULL, ARG_MODE },
                { "attempts", required_argument, NULL, ARG_ATTEMPTS },
                { "wait", no_argument, NULL, ARG_WAIT },
                { "follow", no_argument, NULL, ARG_FOLLOW },
                { "name", required_argument, NULL, ARG_NAME },
                { "help", no_argument, NULL, 'h' },
                {}
        };
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

struct client {
        struct ctl_context *ctx;
        const char *bus_text;       /* for messages */
        sd_bus *bus;
};

static void client_close(struct client *c) {
        c->bus = sd_bus_flush_close_unref(c->bus);
}

static int client_open(struct ctl_context *ctx, const char *bus_arg, struct client *ret) {
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
static int client_fail(struct client *c, const sd_bus_error *e, int r, const char *what) {
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

static int read_json(sd_bus_message *m, json_t **ret);

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
                r = read_json(m, &value);
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

static int read_json(sd_bus_message *m, json_t **ret) {
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
                r = read_json(m, ret);
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
                        r = read_json(m, &item);
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
static int get_managed_objects(struct client *c, json_t **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(c->bus, BUS_NAME, ROOT_PATH, "org.freedesktop.DBus.ObjectManager",
                               "GetManagedObjects", &error, &reply, NULL);
        if (r < 0)
                return client_fail(c, &error, r, "GetManagedObjects");
        r = read_json(reply, ret);
        if (r < 0)
                return ctl_fail(c->ctx, CTL_EXIT_FAILURE, NULL, "cannot read smpgwd's objects: %s", strerror(-r));
        return CTL_EXIT_OK;
}

static int get_all(struct client *c, const char *path, const char *interface, json_t **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(c->bus, BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll", &error, &reply,
                               "s", interface);
        if (r < 0)
                return client_fail(c, &error, r, "GetAll");
        r = read_json(reply, ret);
        if (r < 0)
                return ctl_fail(c->ctx, CTL_EXIT_FAILURE, NULL, "cannot read %s: %s", path, strerror(-r));
        return CTL_EXIT_OK;
}

static uint64_t json_u64(const json_t *obj, const char *key) {
        return (uint64_t) json_integer_value(json_object_get(obj, key));
}

static const char *json_str(const json_t *obj, const char *key) {
        const char *s = json_string_value(json_object_get(obj, key));
        return s ?: "";
}

static int compare_by_id(const void *a, const void *b) {
        const json_t *x = *(json_t *const *) a, *y = *(json_t *const *) b;
        json_t *ix = json_object_get(x, "Id"), *iy = json_object_get(y, "Id");
        if (json_is_string(ix))
                return strcmp(json_string_value(ix), json_string_value(iy) ?: "");
        uint64_t u = (uint64_t) json_integer_value(ix), v = (uint64_t) json_integer_value(iy);
        return u < v ? -1 : u > v;
}

/* The properties of every object with interface, sorted by their Id. */
static json_t *objects_of(const json_t *objects, const char *interface) {
        json_t *list = json_array(), *ifaces;
        const char *path;

        if (!list)
                return NULL;
        json_object_foreach((json_t *) objects, path, ifaces) {
                json_t *props = json_object_get(ifaces, interface);
                if (props && json_array_append(list, props) < 0) {
                        json_decref(list);
                        return NULL;
                }
        }
        size_t n = json_array_size(list);
        if (n > 1) {
                json_t **items = calloc(n, sizeof(*items));
                if (!items) {
                        json_decref(list);
                        return NULL;
                }
                for (size_t i = 0; i < n; i++)
                        items[i] = json_incref(json_array_get(list, i));
                qsort(items, n, sizeof(*items), compare_by_id);
                json_array_clear(list);
                for (size_t i = 0; i < n; i++)
                        (void) json_array_append_new(list, items[i]);
                free(items);
        }
        return list;
}

/* ---- output helpers ---- */

static void format_time(uint64_t usec, char *buf, size_t size) {
        if (usec == 0) {
                snprintf(buf, size, "never");
                return;
        }
        time_t t = (time_t) (usec / 1000000);
        struct tm tm;
        if (!localtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
                snprintf(buf, size, "%" PRIu64, usec);
}

static const json_t *active_slot(const json_t *device) {
        const json_t *slot;
        size_t i;

        json_array_foreach(json_object_get(device, "Images"), i, slot)
                if (json_is_true(json_object_get(slot, "active")))
                        return slot;
        return NULL;
}

static int print_json(struct ctl_context *ctx, const char *key, json_t *value) {
        json_t *obj = json_object();
        if (!obj || json_object_set_new(obj, key, value) < 0) {
                json_decref(obj);
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
        }
        return ctl_json_print(ctx, obj);
}

/* The start of every listing command: parses its options, reads
 * smpgwd's objects over D-Bus and keeps those with one interface.
 * Returns CTL_EXIT_OK with *ret set (and *ret_args filled), or the exit
 * code to return, with *ret NULL (CTL_EXIT_OK then means --help was
 * printed). */
static int list_objects(struct ctl_context *ctx, const struct daemon_cmd *cmd, int argc, char *argv[],
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
        *ret = objects_of(objects, interface);
        if (!*ret)
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
        return CTL_EXIT_OK;
}

static const struct daemon_cmd devices_cmd = {
        "devices [--json] [--bus BUS]",
        "Lists the devices smpgwd knows: id, state, connection string, name, and the\n"
        "version of the active image with whether it is confirmed.",
        0, 0, 0,
};

int cmd_devices(struct ctl_context *ctx, int argc, char *argv[]) {
        struct daemon_args a;
        json_t *devices;
        int r;

        r = list_objects(ctx, &devices_cmd, argc, argv, DEVICE_IFACE, &a, &devices);
        if (!devices)
                return r;
        if (ctx->json)
                return print_json(ctx, "devices", devices);

        const json_t *d;
        size_t i;
        printf("%-6s %-12s %-32s %-20s %-16s %s\n", "ID", "STATE", "CONN", "NAME", "VERSION", "CONFIRMED");
        json_array_foreach(devices, i, d) {
                const json_t *slot = active_slot(d);
                printf("%-6" PRIu64 " %-12s %-32s %-20s %-16s %s\n", json_u64(d, "Id"), json_str(d, "State"),
                       json_str(d, "Conn"), json_str(d, "Name")[0] ? json_str(d, "Name") : "-",
                       slot ? json_str(slot, "version") : "-",
                       slot ? (json_is_true(json_object_get(slot, "confirmed")) ? "yes" : "no") : "-");
        }
        json_decref(devices);
        return CTL_EXIT_OK;
}

/* A device named on the command line: its decimal id or its connection
 * string. */
static const json_t *find_device(const json_t *devices, const char *spec) {
        const json_t *d;
        size_t i;
        char id[32];

        json_array_foreach(devices, i, d) {
                snprintf(id, sizeof(id), "%" PRIu64, json_u64(d, "Id"));
                if (streq(spec, id) || streq(spec, json_str(d, "Conn")))
                        return d;
        }
        return NULL;
}

static const struct daemon_cmd device_cmd = {
        "device ID|CONN [--json] [--bus BUS]",
        "Shows one device: what smpgwd knows of it and its image slots.",
        0, 1, 1,
};

int cmd_device_show(struct ctl_context *ctx, int argc, char *argv[]) {
        _cleanup_(json_decrefp) json_t *devices = NULL;
        struct daemon_args a;
        int r;

        r = list_objects(ctx, &device_cmd, argc, argv, DEVICE_IFACE, &a, &devices);
        if (!devices)
                return r;
        const json_t *d = find_device(devices, a.args[0]);
        if (!d)
                return ctl_fail(ctx, CTL_EXIT_REFUSED, NULL, "no device '%s'", a.args[0]);
        if (ctx->json)
                return print_json(ctx, "device", json_incref((json_t *) d));

        char first[32], last[32], probe[32];
        format_time(json_u64(d, "FirstSeen"), first, sizeof(first));
        format_time(json_u64(d, "LastSeen"), last, sizeof(last));
        format_time(json_u64(d, "LastProbe"), probe, sizeof(probe));
        printf("device %" PRIu64 "\n", json_u64(d, "Id"));
        printf("  conn:        %s\n", json_str(d, "Conn"));
        printf("  transport:   %s\n", json_str(d, "Transport"));
        printf("  address:     %s\n", json_str(d, "Address"));
        printf("  name:        %s\n", json_str(d, "Name"));
        printf("  state:       %s\n", json_str(d, "State"));
        if (json_integer_value(json_object_get(d, "RSSI")) != 0)
                printf("  rssi:        %" JSON_INTEGER_FORMAT " dBm\n", json_integer_value(json_object_get(d, "RSSI")));
        printf("  first seen:  %s\n", first);
        printf("  last seen:   %s\n", last);
        printf("  last probe:  %s\n", probe);
        if (json_str(d, "LastError")[0])
                printf("  last error:  %s\n", json_str(d, "LastError"));
        printf("  buffers:     %" PRIu64 " x %" PRIu64 " bytes\n", json_u64(d, "BufCount"), json_u64(d, "BufSize"));
        printf("  os:          %s\n", json_str(d, "OsInfo"));
        printf("  bootloader:  %s\n", json_str(d, "Bootloader"));
        const char *job = json_str(d, "Job");
        printf("  job:         %s\n", streq(job, "/") ? "none" :
                                      strncmp(job, JOB_PREFIX, strlen(JOB_PREFIX)) == 0 ? job + strlen(JOB_PREFIX) : job);
        printf("  images:\n");
        const json_t *slot;
        size_t i;
        json_array_foreach(json_object_get(d, "Images"), i, slot) {
                static const char *const flags[] = { "active", "confirmed", "pending", "bootable", "permanent" };
                printf("    image %" PRIu64 " slot %" PRIu64 ": %s %s", json_u64(slot, "image"), json_u64(slot, "slot"),
                       json_str(slot, "version"), json_str(slot, "hash"));
                for (size_t f = 0; f < ELEMENTSOF(flags); f++)
                        if (json_is_true(json_object_get(slot, flags[f])))
                                printf(" %s", flags[f]);
                printf("\n");
        }
        if (json_array_size(json_object_get(d, "Images")) == 0)
                printf("    (not read yet)\n");
        return CTL_EXIT_OK;
}

static const struct daemon_cmd images_cmd = {
        "images [--json] [--bus BUS]",
        "Lists the images stored in smpgwd: id (the image hash), version, size,\n"
        "whether a configured key verified its signature, whether a job uses it, name.",
        0, 0, 0,
};

int cmd_images(struct ctl_context *ctx, int argc, char *argv[]) {
        struct daemon_args a;
        json_t *images;
        int r;

        r = list_objects(ctx, &images_cmd, argc, argv, IMAGE_IFACE, &a, &images);
        if (!images)
                return r;
        if (ctx->json)
                return print_json(ctx, "images", images);

        const json_t *img;
        size_t i;
        printf("%-64s %-14s %10s %-6s %-6s %s\n", "ID", "VERSION", "SIZE", "SIGNED", "IN USE", "NAME");
        json_array_foreach(images, i, img)
                printf("%-64s %-14s %10" PRIu64 " %-6s %-6s %s\n", json_str(img, "Id"), json_str(img, "Version"),
                       json_u64(img, "Size"), json_is_true(json_object_get(img, "Signed")) ? "yes" : "no",
                       json_is_true(json_object_get(img, "InUse")) ? "yes" : "no", json_str(img, "Name"));
        json_decref(images);
        return CTL_EXIT_OK;
}

/* Passes FILE to AddImage() as an open fd: the daemon may not be able to
 * open the caller's path (permissions, ProtectHome=), the fd proves the
 * caller could.  *ret_id gets the image id (64 hex digits + NUL). */
static int add_image(struct client *c, const char *file, const char *name, char ret_id[static 65],
                     bool *ret_created) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        _cleanup_close_ int fd = -1;
        const char *path, *id;
        int created, r;

        fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return ctl_fail(c->ctx, CTL_EXIT_FAILURE, NULL, "cannot open '%s': %s", file, strerror(errno));
        if (!name) {
                const char *slash = strrchr(file, '/');
                name = slash ? slash + 1 : file;
        }
        r = sd_bus_message_new_method_call(c->bus, &call, BUS_NAME, ROOT_PATH, MANAGER_IFACE, "AddImage");
        if (r >= 0)
                r = sd_bus_message_append(call, "hs", fd, name);
        if (r < 0)
                return ctl_fail(c->ctx, CTL_EXIT_FAILURE, NULL, "cannot build the AddImage call: %s", strerror(-r));
        r = sd_bus_call(c->bus, call, CALL_TIMEOUT_USEC, &error, &reply);
        if (r < 0)
                return client_fail(c, &error, r, "AddImage");
        r = sd_bus_message_read(reply, "osb", &path, &id, &created);
        if (r < 0 || strlen(id) != 64)
                return ctl_fail(c->ctx, CTL_EXIT_FAILURE, NULL, "unexpected AddImage answer");
        memcpy(ret_id, id, 65);
        *ret_created = created;
        return CTL_EXIT_OK;
}

static const struct daemon_cmd images_add_cmd = {
        "images add FILE [--name NAME] [--json] [--bus BUS]",
        "Stores an MCUboot image file in smpgwd (which validates it, and checks its\n"
        "signature when keys are configured) and prints its id, the image hash.",
        OPT_NAME, 1, 1,
};

int cmd_images_add(struct ctl_context *ctx, int argc, char *argv[]) {
        struct daemon_args a;
        struct client c = {};
        bool created = false;
        char id[65];
        int r;

        r = daemon_parse(ctx, &images_add_cmd, argc, argv, &a);
        if (r != CTL_EXIT_OK)
                return r < 0 ? CTL_EXIT_OK : r;
        r = client_open(ctx, a.bus, &c);
        if (r != CTL_EXIT_OK)
                return r;
        r = add_image(&c, a.args[0], a.name, id, &created);
        client_close(&c);
        if (r != CTL_EXIT_OK)
                return r;
        if (ctx->json)
                return ctl_json_print(ctx, json_pack("{s:s, s:s, s:b}", "id", id, "file", a.args[0], "created", created));
        printf("%s\n", id);
        if (!created)
                ctl_log("image %s was stored already", id);
        return CTL_EXIT_OK;
}

/* ---- following jobs (push --wait, watch) ---- */

struct watched_job {
        uint64_t id;
        char path[64];
        json_t *props;              /* Job1 properties, kept current from signals */
        char last_state[96];        /* what the last plain line said */
};

struct watch {
        struct client *client;
        sd_event *event;
        struct watched_job *jobs;
        size_t n_jobs;
        bool follow;                /* also take jobs created later; end only on a signal */
        bool tty;                   /* redraw one line per job in place */
        unsigned lines_drawn;
        bool done;
        int signal;
        int exit_code;              /* set when the daemon went away */
};

static bool state_is_final(const char *state) {
        return streq(state, "succeeded") || streq(state, "failed") || streq(state, "cancelled");
}

static bool all_finished(const struct watch *w) {
        for (size_t i = 0; i < w->n_jobs; i++)
                if (!state_is_final(json_str(w->jobs[i].props, "State")))
                        return false;
        return true;
}

static int job_exit_code(const json_t *props) {
        const char *state = json_str(props, "State"), *outcome = json_str(props, "Outcome");
        if (streq(state, "succeeded"))
                return CTL_EXIT_OK;
        if (streq(outcome, "reverted"))
                return CTL_EXIT_REVERTED;
        if (streq(outcome, "stuck"))
                return CTL_EXIT_STUCK;
        return CTL_EXIT_JOB_FAILED;
}

static void job_line(const struct watched_job *j, bool bar, char *buf, size_t size) {
        const json_t *p = j->props;
        const char *state = json_str(p, "State"), *step = json_str(p, "Step"), *outcome = json_str(p, "Outcome");
        const char *error = json_str(p, "Error");
        int n = snprintf(buf, size, "job %-5" PRIu64 " device %-5" PRIu64 " %-10s", j->id, json_u64(p, "DeviceId"),
                         state);
        if (n < 0 || (size_t) n >= size)
                return;
        buf += n, size -= (size_t) n;

        if (state_is_final(state)) {
                snprintf(buf, size, " %s%s%s", outcome[0] ? outcome : "-", error[0] ? ": " : "", error);
                return;
        }
        if (bar && (streq(step, "upload") || json_u64(p, "BytesSent") > 0)) {
                char bar_text[24], sent[32], total[32], rate[32];
                double progress = json_real_value(json_object_get(p, "Progress"));
                int filled = (int) (progress * 20.0 + 0.5);
                for (int i = 0; i < 20; i++)
                        bar_text[i] = i < filled ? '#' : '.';
                bar_text[20] = 0;
                ctl_format_bytes((double) json_u64(p, "BytesSent"), sent, sizeof(sent));
                ctl_format_bytes((double) json_u64(p, "BytesTotal"), total, sizeof(total));
                ctl_format_bytes(json_real_value(json_object_get(p, "Rate")), rate, sizeof(rate));
                snprintf(buf, size, " %-12s [%s] %3.0f%% %s/%s %s/s", step, bar_text, progress * 100.0, sent, total,
                         rate);
                return;
        }
        snprintf(buf, size, " %s%s%s", step[0] ? step : "-", error[0] ? "  last error: " : "", error);
}

static void watch_render(struct watch *w) {
        char line[512];

        if (w->client->ctx->json)
                return;
        if (w->tty) {
                struct winsize ws;
                int cols = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
                if (w->lines_drawn > 0)
                        printf("\033[%uA", w->lines_drawn);
                for (size_t i = 0; i < w->n_jobs; i++) {
                        job_line(&w->jobs[i], true, line, sizeof(line));
                        if ((int) strlen(line) >= cols)
                                line[cols - 1] = 0;
                        printf("\r\033[K%s\n", line);
                }
                w->lines_drawn = (unsigned) w->n_jobs;
        } else
                /* A log, not a picture: a line when a job's state, step
                 * or outcome changes, none for mere progress. */
                for (size_t i = 0; i < w->n_jobs; i++) {
                        struct watched_job *j = &w->jobs[i];
                        char key[sizeof(j->last_state)];
                        snprintf(key, sizeof(key), "%s/%s/%s", json_str(j->props, "State"), json_str(j->props, "Step"),
                                 json_str(j->props, "Outcome"));
                        if (streq(key, j->last_state))
                                continue;
                        memcpy(j->last_state, key, sizeof(key));
                        job_line(j, false, line, sizeof(line));
                        printf("%s\n", line);
                }
        fflush(stdout);
}

static void watch_check_done(struct watch *w) {
        if (!w->follow && all_finished(w)) {
                w->done = true;
                (void) sd_event_exit(w->event, 0);
        }
}

static struct watched_job *watch_find(struct watch *w, const char *path) {
        for (size_t i = 0; i < w->n_jobs; i++)
                if (streq(w->jobs[i].path, path))
                        return &w->jobs[i];
        return NULL;
}

/* props: taken. */
static int watch_add(struct watch *w, const char *path, json_t *props) {
        struct watched_job *jobs = realloc(w->jobs, (w->n_jobs + 1) * sizeof(*jobs));
        if (!jobs) {
                json_decref(props);
                return -ENOMEM;
        }
        w->jobs = jobs;
        struct watched_job *j = &w->jobs[w->n_jobs++];
        *j = (struct watched_job) { .id = json_u64(props, "Id"), .props = props };
        snprintf(j->path, sizeof(j->path), "%s", path);
        return 0;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct watch *w = userdata;
        _cleanup_(json_decrefp) json_t *changed = NULL;
        struct watched_job *j = watch_find(w, sd_bus_message_get_path(m) ?: "");
        const char *interface;
        int r;

        if (!j)
                return 0;
        r = sd_bus_message_read(m, "s", &interface);
        if (r < 0 || !streq(interface, JOB_IFACE))
                return 0;
        r = read_json(m, &changed);
        if (r < 0)
                return 0;
        /* Signals sent before our GetAll may arrive after it: a final
         * state is final, never undone by an older update. */
        if (state_is_final(json_str(j->props, "State")))
                return 0;
        (void) json_object_update(j->props, changed);
        watch_render(w);
        watch_check_done(w);
        return 0;
}

static int on_interfaces_added(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct watch *w = userdata;
        _cleanup_(json_decrefp) json_t *ifaces = NULL;
        const char *path;
        int r;

        if (!w->follow)
                return 0;
        r = sd_bus_message_read(m, "o", &path);
        if (r < 0 || watch_find(w, path))
                return 0;
        r = read_json(m, &ifaces);
        if (r < 0)
                return 0;
        json_t *props = json_object_get(ifaces, JOB_IFACE);
        if (!props)
                return 0;
        if (watch_add(w, path, json_incref(props)) < 0)
                return 0;
        watch_render(w);
        return 0;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct watch *w = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !streq(name, BUS_NAME))
                return 0;
        if (new_owner[0])
                return 0;
        w->exit_code = ctl_fail(w->client->ctx, CTL_EXIT_TRANSPORT, NULL, "smpgwd left %s", w->client->bus_text);
        return sd_event_exit(w->event, 0);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct watch *w = userdata;
        w->signal = (int) si->ssi_signo;
        return sd_event_exit(w->event, 0);
}

static void watch_done(struct watch *w) {
        for (size_t i = 0; i < w->n_jobs; i++)
                json_decref(w->jobs[i].props);
        free(w->jobs);
        w->jobs = NULL;
        w->n_jobs = 0;
        w->event = sd_event_unref(w->event);
}

/* Subscribes before anything is read, so no change between the read and
 * the subscription is lost. */
static int watch_subscribe(struct watch *w) {
        struct client *c = w->client;
        int r;

        r = sd_event_new(&w->event);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(c->bus, w->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        r = sd_bus_match_signal(c->bus, NULL, BUS_NAME, NULL, "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                on_properties_changed, w);
        if (r < 0)
                return r;
        r = sd_bus_match_signal(c->bus, NULL, BUS_NAME, ROOT_PATH, "org.freedesktop.DBus.ObjectManager",
                                "InterfacesAdded", on_interfaces_added, w);
        if (r < 0)
                return r;
        r = sd_bus_add_match(c->bus, NULL,
                             "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                             "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" BUS_NAME "'",
                             on_name_owner_changed, w);
        if (r < 0)
                return r;
        /* losing the bus ends the loop with EXIT_FAILURE, told apart
         * from our own ends by w->done and w->signal */
        r = sd_bus_set_exit_on_disconnect(c->bus, true);
        if (r < 0)
                return r;
        r = sd_event_add_signal(w->event, NULL, SIGINT | SD_EVENT_SIGNAL_PROCMASK, on_signal, w);
        if (r < 0)
                return r;
        return sd_event_add_signal(w->event, NULL, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, on_signal, w);
}

/* Runs until every job is finished (or, with follow, until a signal);
 * returns the exit code: the first job's that did not succeed. */
static int watch_run(struct watch *w) {
        struct ctl_context *ctx = w->client->ctx;
        int r, code = CTL_EXIT_OK;

        w->tty = !ctx->json && isatty(STDOUT_FILENO);
        watch_render(w);
        watch_check_done(w);
        if (!w->done) {
                r = sd_event_loop(w->event);
                if (r < 0)
                        return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "event loop: %s", strerror(-r));
                if (w->exit_code)
                        return w->exit_code;
                if (!w->done && !w->signal)
                        return ctl_fail(ctx, CTL_EXIT_TRANSPORT, NULL, "lost the connection to %s",
                                        w->client->bus_text);
        }
        if (w->signal && !w->follow) {
                ctl_log("interrupted; the jobs go on in smpgwd");
                code = 128 + w->signal;
        }
        if (code == CTL_EXIT_OK)
                for (size_t i = 0; i < w->n_jobs && code == CTL_EXIT_OK; i++)
                        if (state_is_final(json_str(w->jobs[i].props, "State")))
                                code = job_exit_code(w->jobs[i].props);
        if (ctx->json) {
                json_t *list = json_array();
                for (size_t i = 0; list && i < w->n_jobs; i++)
                        (void) json_array_append(list, w->jobs[i].props);
                return ctl_json_print_result(ctx, json_pack("{s:o*}", "jobs", list), code);
        }
        return code;
}

static int watch_add_job_path(struct watch *w, const char *path) {
        json_t *props = NULL;
        int r = get_all(w->client, path, JOB_IFACE, &props);
        if (r != CTL_EXIT_OK)
                return r;
        if (watch_add(w, path, props) < 0)
                return ctl_fail(w->client->ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
        return CTL_EXIT_OK;
}

static const struct daemon_cmd watch_cmd = {
        "watch [JOB...] [--follow] [--json] [--bus BUS]",
        "Shows the progress of jobs, live: on a terminal one line per job redrawn in\n"
        "place, otherwise a line whenever a job's state or step changes.  Ends when\n"
        "every job watched has finished.  Without JOBs, the jobs not finished yet;\n"
        "with --follow also those created later, until Ctrl-C.",
        OPT_FOLLOW, 0, -1,
};

int cmd_watch(struct ctl_context *ctx, int argc, char *argv[]) {
        _cleanup_(json_decrefp) json_t *objects = NULL;
        struct daemon_args a;
        struct client c = {};
        struct watch w = {};
        int r;

        r = daemon_parse(ctx, &watch_cmd, argc, argv, &a);
        if (r != CTL_EXIT_OK)
                return r < 0 ? CTL_EXIT_OK : r;
        if (a.follow && a.n_args > 0) {
                ctl_log("--follow takes no JOBs: it watches every job");
                return CTL_EXIT_USAGE;
        }
        for (int i = 0; i < a.n_args; i++) {
                uint32_t id;
                if (parse_u32(a.args[i], 1, UINT32_MAX, &id) < 0) {
                        ctl_log("JOB is a job id (a number), not '%s'", a.args[i]);
                        return CTL_EXIT_USAGE;
                }
        }
        r = client_open(ctx, a.bus, &c);
        if (r != CTL_EXIT_OK)
                return r;
        w = (struct watch) { .client = &c, .follow = a.follow };
        r = watch_subscribe(&w);
        if (r < 0) {
                r = ctl_fail(ctx, CTL_EXIT_TRANSPORT, NULL, "cannot subscribe to smpgwd's signals: %s", strerror(-r));
                goto finish;
        }
        if (a.n_args > 0)
                for (int i = 0; i < a.n_args; i++) {
                        char path[64];
                        snprintf(path, sizeof(path), JOB_PREFIX "%s", a.args[i]);
                        r = watch_add_job_path(&w, path);
                        if (r != CTL_EXIT_OK)
                                goto finish;
                }
        else {
                json_t *ifaces;
                const char *path;
                r = get_managed_objects(&c, &objects);
                if (r != CTL_EXIT_OK)
                        goto finish;
                json_object_foreach(objects, path, ifaces) {
                        json_t *props = json_object_get(ifaces, JOB_IFACE);
                        if (!props || state_is_final(json_str(props, "State")))
                                continue;
                        if (watch_add(&w, path, json_incref(props)) < 0) {
                                r = ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
                                goto finish;
                        }
                }
                if (w.n_jobs > 1) {
                        /* by id, as GetManagedObjects has no order */
                        for (size_t i = 1; i < w.n_jobs; i++)
                                for (size_t k = i; k > 0 && w.jobs[k - 1].id > w.jobs[k].id; k--) {
                                        struct watched_job t = w.jobs[k];
                                        w.jobs[k] = w.jobs[k - 1];
                                        w.jobs[k - 1] = t;
                                }
                }
                if (w.n_jobs == 0 && !a.follow && !ctx->json)
                        ctl_log("no unfinished jobs");
        }
        r = watch_run(&w);
finish:
        watch_done(&w);
        client_close(&c);
        return r;
}

/* ---- push ---- */

static bool is_image_id(const char *s) {
        return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* IMAGE on the command line: an image id, a file to add first, or a
 * unique prefix of an image id (at least 6 hex digits, as git allows
 * short hashes). */
static int resolve_image(struct client *c, const char *arg, char ret_id[static 65]) {
        _cleanup_(json_decrefp) json_t *objects = NULL;
        struct stat st;
        json_t *ifaces;
        const char *path, *found = NULL;
        bool created;
        int r;

        if (is_image_id(arg)) {
                memcpy(ret_id, arg, 65);
                return CTL_EXIT_OK;
        }
        if (stat(arg, &st) == 0 && S_ISREG(st.st_mode)) {
                r = add_image(c, arg, NULL, ret_id, &created);
                if (r == CTL_EXIT_OK && !c->ctx->json)
                        ctl_log("image %s %s", ret_id, created ? "added" : "was stored already");
                return r;
        }
        if (strlen(arg) < 6 || strspn(arg, "0123456789abcdef") != strlen(arg))
                return ctl_fail(c->ctx, CTL_EXIT_USAGE, NULL,
                                "IMAGE '%s' is neither an image id nor a file", arg);
        r = get_managed_objects(c, &objects);
        if (r != CTL_EXIT_OK)
                return r;
        json_object_foreach(objects, path, ifaces) {
                json_t *img = json_object_get(ifaces, IMAGE_IFACE);
                if (!img || strncmp(json_str(img, "Id"), arg, strlen(arg)) != 0)
                        continue;
                if (found)
                        return ctl_fail(c->ctx, CTL_EXIT_REFUSED, NULL, "image id prefix '%s' is ambiguous", arg);
                found = json_str(img, "Id");
        }
        if (!found || strlen(found) != 64)
                return ctl_fail(c->ctx, CTL_EXIT_REFUSED, NULL, "no image '%s'", arg);
        memcpy(ret_id, found, 65);
        return CTL_EXIT_OK;
}

static const struct daemon_cmd push_cmd = {
        "push IMAGE DEVICE... [--mode MODE] [--attempts N] [--wait] [--json] [--bus BUS]",
        "Has smpgwd update devices to an image: one job per device, printed as job\n"
        "ids.  IMAGE is an image id (or a unique prefix of one) or an image file,\n"
        "which is added first; DEVICE is a device id or connection string.  Nothing\n"
        "is queued unless every device can take a job.",
        OPT_MODE | OPT_ATTEMPTS | OPT_WAIT, 2, -1,
};

int cmd_push(struct ctl_context *ctx, int argc, char *argv[]) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        _cleanup_(json_decrefp) json_t *ids = NULL;
        struct daemon_args a;
        struct client c = {};
        struct watch w = {};
        char image_id[65];
        const char *path;
        int r;

        r = daemon_parse(ctx, &push_cmd, argc, argv, &a);
        if (r != CTL_EXIT_OK)
                return r < 0 ? CTL_EXIT_OK : r;
        r = client_open(ctx, a.bus, &c);
        if (r != CTL_EXIT_OK)
                return r;
        w = (struct watch) { .client = &c };
        if (a.wait) {
                r = watch_subscribe(&w);
                if (r < 0) {
                        r = ctl_fail(ctx, CTL_EXIT_TRANSPORT, NULL, "cannot subscribe to smpgwd's signals: %s",
                                     strerror(-r));
                        goto finish;
                }
        }
        r = resolve_image(&c, a.args[0], image_id);
        if (r != CTL_EXIT_OK)
                goto finish;

        r = sd_bus_message_new_method_call(c.bus, &call, BUS_NAME, ROOT_PATH, MANAGER_IFACE, "Push");
        if (r >= 0)
                r = sd_bus_message_append(call, "s", image_id);
        if (r >= 0)
                r = sd_bus_message_open_container(call, SD_BUS_TYPE_ARRAY, "s");
        for (int i = 1; r >= 0 && i < a.n_args; i++)
                r = sd_bus_message_append(call, "s", a.args[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(call);
        if (r >= 0)
                r = sd_bus_message_open_container(call, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r >= 0 && a.mode)
                r = sd_bus_message_append(call, "{sv}", "mode", "s", a.mode);
        if (r >= 0 && a.attempts)
                r = sd_bus_message_append(call, "{sv}", "attempts", "u", a.attempts);
        if (r >= 0)
                r = sd_bus_message_close_container(call);
        if (r < 0) {
                r = ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "cannot build the Push call: %s", strerror(-r));
                goto finish;
        }
        r = sd_bus_call(c.bus, call, CALL_TIMEOUT_USEC, &error, &reply);
        if (r < 0) {
                r = client_fail(&c, &error, r, "Push");
                goto finish;
        }

        ids = json_array();
        if (!ids) {
                r = ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
                goto finish;
        }
        r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_ARRAY, "o");
        while (r >= 0 && (r = sd_bus_message_read(reply, "o", &path)) > 0) {
                const char *id = strncmp(path, JOB_PREFIX, strlen(JOB_PREFIX)) == 0 ? path + strlen(JOB_PREFIX) : path;
                (void) json_array_append_new(ids, json_integer(strtoll(id, NULL, 10)));
                if (!ctx->json)
                        printf("%s\n", id);
                if (a.wait) {
                        r = watch_add_job_path(&w, path);
                        if (r != CTL_EXIT_OK)
                                goto finish;
                }
        }
        if (r < 0) {
                r = ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "unexpected Push answer: %s", strerror(-r));
                goto finish;
        }
        fflush(stdout);
        if (a.wait)
                r = watch_run(&w);
        else if (ctx->json)
                r = ctl_json_print(ctx, json_pack("{s:s, s:O}", "image", image_id, "jobs", ids));
        else
                r = CTL_EXIT_OK;
finish:
        watch_done(&w);
        client_close(&c);
        return r;
}

/* ---- jobs ---- */

static const struct daemon_cmd jobs_cmd = {
        "jobs [--json] [--bus BUS]",
        "Lists smpgwd's jobs, oldest first: id, device, state, step, outcome,\n"
        "upload progress, image (short id) and the last error.",
        0, 0, 0,
};

int cmd_jobs(struct ctl_context *ctx, int argc, char *argv[]) {
        struct daemon_args a;
        json_t *jobs;
        int r;

        r = list_objects(ctx, &jobs_cmd, argc, argv, JOB_IFACE, &a, &jobs);
        if (!jobs)
                return r;
        if (ctx->json)
                return print_json(ctx, "jobs", jobs);

        const json_t *j;
        size_t i;
        printf("%-6s %-6s %-10s %-12s %-10s %5s  %-12s %s\n", "ID", "DEVICE", "STATE", "STEP", "OUTCOME", "DONE", "IMAGE",
               "ERROR");
        json_array_foreach(jobs, i, j) {
                const char *step = json_str(j, "Step"), *outcome = json_str(j, "Outcome");
                printf("%-6" PRIu64 " %-6" PRIu64 " %-10s %-12s %-10s %4.0f%%  %-12.12s %s\n", json_u64(j, "Id"),
                       json_u64(j, "DeviceId"), json_str(j, "State"), step[0] ? step : "-", outcome[0] ? outcome : "-",
                       json_real_value(json_object_get(j, "Progress")) * 100.0, json_str(j, "ImageId"),
                       json_str(j, "Error"));
        }
        json_decref(jobs);
        return CTL_EXIT_OK;
}
