/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwctl's daemon mode, the commands that read and push: devices,
 * device, images, images add, push, jobs and watch ask smpgwd over D-Bus
 * (org.smpgw, dbus/org.smpgw.xml).  Those that change one object (devices
 * add, rename, probe, forget, images delete, cancel) are in
 * cmd-daemon-change.c.
 *
 * The bus is the system bus ($DBUS_SYSTEM_BUS_ADDRESS honoured) unless
 * --bus says session or gives an address.  --json prints objects as the
 * REST API does (ctl-daemon.h: rest_shape()), and the tables are drawn
 * from the same JSON, so a value reads the same everywhere.  watch and
 * push --wait follow jobs through PropertiesChanged signals, never by
 * polling (ctl-watch.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <systemd/sd-bus.h>

#include "cmd-daemon.h"
#include "ctl-daemon.h"
#include "ctl-session.h"
#include "ctl-watch.h"
#include "util.h"

static const json_t *active_slot(const json_t *device) {
        const json_t *slot;
        size_t i;

        json_array_foreach(json_object_get(device, "images"), i, slot)
                if (json_is_true(json_object_get(slot, "active")))
                        return slot;
        return NULL;
}

static const char *str_or_dash(const json_t *obj, const char *key) {
        const char *s = json_str(obj, key);
        return s[0] ? s : "-";
}

/* ---- devices, device ---- */

static const struct daemon_cmd devices_cmd = {
        "devices [--json] [--bus BUS]",
        "Lists the devices smpgwd knows: id, state, connection string, name, and the\n"
        "version of the active image with whether it is confirmed.  ('devices add'\n"
        "adds one.)",
        0, 0, 0,
};

int cmd_devices(struct ctl_context *ctx, int argc, char *argv[]) {
        _cleanup_(json_decrefp) json_t *devices = NULL;
        struct daemon_args a;
        const json_t *d;
        size_t i;
        int r;

        r = list_objects(ctx, &devices_cmd, argc, argv, CTL_DEVICE_IFACE, &a, &devices);
        if (!devices)
                return r;
        if (ctx->json)
                return print_json(ctx, "devices", TAKE_PTR(devices));

        printf("%-6s %-12s %-32s %-20s %-16s %s\n", "ID", "STATE", "CONN", "NAME", "VERSION", "CONFIRMED");
        json_array_foreach(devices, i, d) {
                const json_t *slot = active_slot(d);
                printf("%-6" PRIu64 " %-12s %-32s %-20s %-16s %s\n", json_u64(d, "id"), json_str(d, "state"),
                       json_str(d, "conn"), str_or_dash(d, "name"), slot ? json_str(slot, "version") : "-",
                       slot ? (json_is_true(json_object_get(slot, "confirmed")) ? "yes" : "no") : "-");
        }
        return CTL_EXIT_OK;
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

        if (argc >= 3 && streq(argv[2], "labels"))
                return cmd_device_labels(ctx, argc, argv);
        r = list_objects(ctx, &device_cmd, argc, argv, CTL_DEVICE_IFACE, &a, &devices);
        if (!devices)
                return r;
        const json_t *d = find_device(devices, a.args[0]);
        if (!d)
                return ctl_fail(ctx, CTL_EXIT_REFUSED, NULL, "no device '%s'", a.args[0]);
        if (ctx->json)
                return print_json(ctx, "device", json_incref((json_t *) d));

        const json_t *params = json_object_get(d, "params"), *job = json_object_get(d, "job");
        printf("device %" PRIu64 "\n", json_u64(d, "id"));
        printf("  conn:        %s\n", json_str(d, "conn"));
        printf("  transport:   %s\n", json_str(d, "transport"));
        printf("  address:     %s\n", str_or_dash(d, "address"));
        if (json_str(d, "address_type")[0] || json_str(d, "adapter")[0])
                printf("  ble:         %s address, adapter %s\n", str_or_dash(d, "address_type"),
                       str_or_dash(d, "adapter"));
        printf("  name:        %s\n", str_or_dash(d, "name"));
        printf("  state:       %s\n", json_str(d, "state"));
        printf("  source:      %s\n", json_str(d, "source"));
        if (json_is_integer(json_object_get(d, "rssi")))
                printf("  rssi:        %" JSON_INTEGER_FORMAT " dBm\n", json_integer_value(json_object_get(d, "rssi")));
        /* times as the REST API and --json write them: RFC 3339, UTC */
        printf("  first seen:  %s\n", json_str(d, "first_seen")[0] ? json_str(d, "first_seen") : "never");
        printf("  last seen:   %s\n", json_str(d, "last_seen")[0] ? json_str(d, "last_seen") : "never");
        printf("  last probe:  %s\n", json_str(d, "last_probe")[0] ? json_str(d, "last_probe") : "never");
        if (json_str(d, "last_error")[0])
                printf("  last error:  %s\n", json_str(d, "last_error"));
        if (json_is_object(params))
                printf("  buffers:     %" PRIu64 " x %" PRIu64 " bytes\n", json_u64(params, "buf_count"),
                       json_u64(params, "buf_size"));
        if (json_is_integer(json_object_get(d, "smp_version")))
                printf("  smp:         version %" PRIu64 "\n", json_u64(d, "smp_version"));
        printf("  os:          %s\n", str_or_dash(d, "os_info"));
        printf("  board:       %s\n", str_or_dash(d, "board"));
        printf("  app:         %s\n", str_or_dash(d, "app"));
        printf("  bootloader:  %s\n", str_or_dash(d, "bootloader"));
        if (json_is_integer(job))
                printf("  job:         %" JSON_INTEGER_FORMAT "\n", json_integer_value(job));
        else
                printf("  job:         none\n");
        const json_t *hb = json_object_get(d, "hawkbit");
        if (json_is_true(json_object_get(hb, "managed"))) {
                printf("  hawkbit:     controllerId %s", json_str(hb, "controller_id"));
                if (json_is_integer(json_object_get(hb, "action_id")))
                        printf(", action %" PRIu64, json_u64(hb, "action_id"));
                if (json_str(hb, "last_feedback")[0])
                        printf(", last feedback %s", json_str(hb, "last_feedback"));
                if (json_u64(hb, "feedback_queued"))
                        printf(", %" PRIu64 " feedback queued", json_u64(hb, "feedback_queued"));
                printf("\n");
        } else
                printf("  hawkbit:     not managed\n");
        printf("  images:\n");
        const json_t *slot;
        size_t i;
        json_array_foreach(json_object_get(d, "images"), i, slot) {
                static const char *const flags[] = { "active", "confirmed", "pending", "bootable", "permanent" };
                printf("    image %" PRIu64 " slot %" PRIu64 ": %s %s", json_u64(slot, "image"), json_u64(slot, "slot"),
                       json_str(slot, "version"), json_str(slot, "hash"));
                for (size_t f = 0; f < ELEMENTSOF(flags); f++)
                        if (json_is_true(json_object_get(slot, flags[f])))
                                printf(" %s", flags[f]);
                printf("\n");
        }
        if (json_array_size(json_object_get(d, "images")) == 0)
                printf("    (not read yet)\n");
        return CTL_EXIT_OK;
}

/* ---- images, images add ---- */

static const struct daemon_cmd images_cmd = {
        "images [--json] [--bus BUS]",
        "Lists the images stored in smpgwd, oldest first: id (the image hash),\n"
        "version, size, whether a configured key verified its signature, whether a job\n"
        "uses it, the boards it is built for (\"any\" when none is declared), name.\n"
        "('images add' and 'images delete' store and remove one; 'images set-boards'\n"
        "declares the boards.)",
        0,
        0,
        0,
};

/* The table's BOARDS cell: the names joined by commas (a board name has
 * none), "any" for an image that declares none.  NULL when out of
 * memory. */
static char *boards_cell(const json_t *img) {
        const json_t *boards = json_object_get(img, "boards"), *b;
        size_t i, len = 1;
        char *s, *p;

        if (json_array_size(boards) == 0)
                return strdup("any");
        json_array_foreach(boards, i, b) {
                len += strlen(json_string_value(b) ?: "") + 1;
        }
        s = p = malloc(len);
        if (!s)
                return NULL;
        *p = '\0';
        json_array_foreach(boards, i, b) {
                p = stpcpy(stpcpy(p, i > 0 ? "," : ""), json_string_value(b) ?: "");
        }
        return s;
}

int cmd_images(struct ctl_context *ctx, int argc, char *argv[]) {
        _cleanup_(json_decrefp) json_t *images = NULL;
        struct daemon_args a;
        const json_t *img;
        size_t i;
        int r;

        r = list_objects(ctx, &images_cmd, argc, argv, CTL_IMAGE_IFACE, &a, &images);
        if (!images)
                return r;
        if (ctx->json)
                return print_json(ctx, "images", TAKE_PTR(images));

        printf("%-64s %-14s %10s %-6s %-6s %-24s %s\n", "ID", "VERSION", "SIZE", "SIGNED", "IN USE", "BOARDS", "NAME");
        json_array_foreach(images, i, img) {
                _cleanup_free_ char *boards = boards_cell(img);

                if (!boards)
                        return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
                printf("%-64s %-14s %10" PRIu64 " %-6s %-6s %-24s %s\n", json_str(img, "id"), json_str(img, "version"),
                       json_u64(img, "size"), json_is_true(json_object_get(img, "signed")) ? "yes" : "no",
                       json_is_true(json_object_get(img, "in_use")) ? "yes" : "no", boards, str_or_dash(img, "name"));
        }
        return CTL_EXIT_OK;
}

/* Passes FILE to AddImage() as an open fd: the daemon may not be able to
 * open the caller's path (permissions, ProtectHome=), the fd proves the
 * caller could.  *ret_path gets the image's object path (owned). */
static int add_image(struct client *c, const char *file, const char *name, const char *const *boards, size_t n_boards,
                     char **ret_path, bool *ret_created) {
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
        if (n_boards == 0) {
                r = client_call(c, CTL_ROOT_PATH, CTL_MANAGER_IFACE, "AddImage", &reply, "hs", fd, name);
                if (r != CTL_EXIT_OK)
                        return r;
        } else {
                /* The boards it is built for: AddImageWithOptions' "boards". */
                r = sd_bus_message_new_method_call(c->bus, &call, CTL_BUS_NAME, CTL_ROOT_PATH, CTL_MANAGER_IFACE,
                                                   "AddImageWithOptions");
                if (r >= 0)
                        r = sd_bus_message_append(call, "hs", fd, name);
                if (r >= 0)
                        r = sd_bus_message_open_container(call, SD_BUS_TYPE_ARRAY, "{sv}");
                if (r >= 0)
                        r = sd_bus_message_open_container(call, SD_BUS_TYPE_DICT_ENTRY, "sv");
                if (r >= 0)
                        r = sd_bus_message_append(call, "s", "boards");
                if (r >= 0)
                        r = sd_bus_message_open_container(call, SD_BUS_TYPE_VARIANT, "as");
                if (r >= 0)
                        r = sd_bus_message_append_strv(call, (char **) boards);
                for (int k = 0; k < 3 && r >= 0; k++)
                        r = sd_bus_message_close_container(call);
                if (r < 0)
                        return ctl_fail(c->ctx, CTL_EXIT_FAILURE, NULL, "cannot build the AddImageWithOptions call: %s",
                                        strerror(-r));
                r = sd_bus_call(c->bus, call, CTL_CALL_TIMEOUT_USEC, &error, &reply);
                if (r < 0)
                        return client_fail(c, &error, r, "AddImageWithOptions");
        }
        r = sd_bus_message_read(reply, "osb", &path, &id, &created);
        if (r < 0 || strlen(id) != 64)
                return ctl_fail(c->ctx, CTL_EXIT_FAILURE, NULL, "unexpected AddImage answer");
        *ret_path = strdup(path);
        if (!*ret_path)
                return ctl_fail(c->ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
        *ret_created = created;
        return CTL_EXIT_OK;
}

static const struct daemon_cmd images_add_cmd = {
        "images add FILE [--name NAME] [--board BOARD]... [--json] [--bus BUS]",
        "Stores an MCUboot image file in smpgwd (which validates it, and checks its\n"
        "signature when keys are configured) and prints its id, the image hash.  With\n"
        "--board, the boards it is built for: smpgwd then refuses to push it to a\n"
        "device that reports another board, and rollouts skip such devices\n"
        "(incompatible-board).  A stored image given again gets these boards.",
        OPT_NAME | OPT_BOARD,
        1,
        1,
};

int cmd_images_add(struct ctl_context *ctx, int argc, char *argv[]) {
        _cleanup_free_ char *path = NULL;
        _cleanup_(json_decrefp) json_t *img = NULL;
        struct daemon_args a;
        struct client c = {};
        bool created = false;
        int r;

        r = daemon_parse(ctx, &images_add_cmd, argc, argv, &a);
        if (r != CTL_EXIT_OK)
                return r < 0 ? CTL_EXIT_OK : r;
        r = client_open(ctx, a.bus, &c);
        if (r != CTL_EXIT_OK)
                return r;
        r = add_image(&c, a.args[0], a.name, a.boards, a.n_boards, &path, &created);
        if (r == CTL_EXIT_OK)
                r = get_rest_object(&c, path, CTL_IMAGE_IFACE, &img);
        client_close(&c);
        if (r != CTL_EXIT_OK)
                return r;
        if (ctx->json) {
                /* as POST /api/v1/images answers, and the file */
                if (json_object_set_new(img, "created", json_boolean(created)) < 0 ||
                    json_object_set_new(img, "file", json_string(a.args[0])) < 0)
                        return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
                return ctl_json_print(ctx, TAKE_PTR(img));
        }
        printf("%s\n", json_str(img, "id"));
        if (!created)
                ctl_log("image %s was stored already", json_str(img, "id"));
        return CTL_EXIT_OK;
}

/* ---- watch ---- */

static const struct daemon_cmd watch_cmd = {
        "watch [JOB...] [--follow] [--json] [--bus BUS]",
        "Shows the progress of jobs, live: on a terminal one line per job redrawn in\n"
        "place, as wide as the terminal, otherwise a line whenever a job's state or\n"
        "step changes.  Ends when every job watched has finished.  Without JOBs, the\n"
        "jobs not finished yet; with --follow also those created later, until Ctrl-C.",
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
                        snprintf(path, sizeof(path), CTL_JOB_PREFIX "%s", a.args[i]);
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
                        json_t *props = json_object_get(ifaces, CTL_JOB_IFACE);
                        if (!props || job_state_is_final(json_str(props, "State")))
                                continue;
                        if (watch_add(&w, path, json_incref(props)) < 0) {
                                r = ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
                                goto finish;
                        }
                }
                watch_sort(&w);
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

static const struct daemon_cmd push_cmd = {
        "push IMAGE DEVICE... [--mode MODE] [--attempts N] [--force] [--wait] [--json] [--bus BUS]",
        "Has smpgwd update devices to an image: one job per device, printed as job\n"
        "ids.  IMAGE is an image file, which is added first, or an image id or a\n"
        "unique prefix of one (at least 6 hex digits); DEVICE is a device id or\n"
        "connection string.  Nothing is queued unless every device can take a job,\n"
        "and, unless --force, reports a board the image is built for (or none).",
        OPT_MODE | OPT_ATTEMPTS | OPT_FORCE | OPT_WAIT,
        2,
        -1,
};

int cmd_push(struct ctl_context *ctx, int argc, char *argv[]) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        _cleanup_(json_decrefp) json_t *jobs = NULL;
        _cleanup_free_ char *image_path = NULL;
        struct daemon_args a;
        struct client c = {};
        struct watch w = {};
        const char *image, *path;
        struct stat st;
        bool is_file;
        int r;

        r = daemon_parse(ctx, &push_cmd, argc, argv, &a);
        if (r != CTL_EXIT_OK)
                return r < 0 ? CTL_EXIT_OK : r;
        /* IMAGE: a file, else what smpgwd resolves (an id or a prefix) */
        image = a.args[0];
        is_file = stat(image, &st) == 0 && S_ISREG(st.st_mode);
        if (!is_file && !image_ref_is_valid(image)) {
                ctl_log("IMAGE '%s' is neither an image file nor an image id (or a prefix of at least %d of its "
                        "hex digits)", image, CTL_IMAGE_PREFIX_MIN);
                return CTL_EXIT_USAGE;
        }
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
        if (is_file) {
                bool created;
                r = add_image(&c, image, NULL, NULL, 0, &image_path, &created);
                if (r != CTL_EXIT_OK)
                        goto finish;
                image = strrchr(image_path, '/') + 1;   /* the id */
                if (!ctx->json)
                        ctl_log("image %s %s", image, created ? "added" : "was stored already");
        }

        r = sd_bus_message_new_method_call(c.bus, &call, CTL_BUS_NAME, CTL_ROOT_PATH, CTL_MANAGER_IFACE, "Push");
        if (r >= 0)
                r = sd_bus_message_append(call, "s", image);
        if (r >= 0)
                r = sd_bus_message_append_strv(call, a.args + 1);
        if (r >= 0)
                r = sd_bus_message_open_container(call, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r >= 0 && a.mode)
                r = sd_bus_message_append(call, "{sv}", "mode", "s", a.mode);
        if (r >= 0 && a.attempts)
                r = sd_bus_message_append(call, "{sv}", "attempts", "u", a.attempts);
        if (r >= 0 && a.force)
                r = sd_bus_message_append(call, "{sv}", "force", "b", 1);
        if (r >= 0)
                r = sd_bus_message_close_container(call);
        if (r < 0) {
                r = ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "cannot build the Push call: %s", strerror(-r));
                goto finish;
        }
        r = sd_bus_call(c.bus, call, CTL_CALL_TIMEOUT_USEC, &error, &reply);
        if (r < 0) {
                r = client_fail(&c, &error, r, "Push");
                goto finish;
        }

        jobs = json_array();
        if (!jobs) {
                r = ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
                goto finish;
        }
        r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_ARRAY, "o");
        while (r >= 0 && (r = sd_bus_message_read(reply, "o", &path)) > 0) {
                const char *id = strncmp(path, CTL_JOB_PREFIX, strlen(CTL_JOB_PREFIX)) == 0 ?
                                         path + strlen(CTL_JOB_PREFIX) : path;
                if (!ctx->json)
                        printf("%s\n", id);
                if (a.wait)
                        r = watch_add_job_path(&w, path);
                else if (ctx->json) {
                        json_t *job = NULL;
                        r = get_rest_object(&c, path, CTL_JOB_IFACE, &job);
                        if (r == CTL_EXIT_OK && json_array_append_new(jobs, job) < 0)
                                r = ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
                } else
                        r = CTL_EXIT_OK;
                if (r != CTL_EXIT_OK)
                        goto finish;
        }
        if (r < 0) {
                r = ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "unexpected Push answer: %s", strerror(-r));
                goto finish;
        }
        fflush(stdout);
        if (a.wait)
                r = watch_run(&w);
        else if (ctx->json) {
                /* as POST /api/v1/jobs answers, and the image's whole id */
                json_t *first = json_array_get(jobs, 0);
                r = ctl_json_print(ctx, json_pack("{s:s, s:O}", "image", first ? json_str(first, "image") : image,
                                                  "jobs", jobs));
        } else
                r = CTL_EXIT_OK;
finish:
        watch_done(&w);
        client_close(&c);
        return r;
}

/* ---- jobs ---- */

static const struct daemon_cmd jobs_cmd = {
        "jobs [--json] [--bus BUS]",
        "Lists smpgwd's jobs, newest first (as the REST API does): id, device, state,\n"
        "step, outcome, upload progress, image (short id) and the last error.",
        0, 0, 0,
};

int cmd_jobs(struct ctl_context *ctx, int argc, char *argv[]) {
        _cleanup_(json_decrefp) json_t *jobs = NULL;
        struct daemon_args a;
        const json_t *j;
        size_t i;
        int r;

        r = list_objects(ctx, &jobs_cmd, argc, argv, CTL_JOB_IFACE, &a, &jobs);
        if (!jobs)
                return r;
        if (ctx->json)
                return print_json(ctx, "jobs", TAKE_PTR(jobs));

        printf("%-6s %-6s %-10s %-12s %-10s %5s  %-12s %s\n", "ID", "DEVICE", "STATE", "STEP", "OUTCOME", "DONE", "IMAGE",
               "ERROR");
        json_array_foreach(jobs, i, j)
                printf("%-6" PRIu64 " %-6" PRIu64 " %-10s %-12s %-10s %4.0f%%  %-12.12s %s\n", json_u64(j, "id"),
                       json_u64(j, "device"), json_str(j, "state"), str_or_dash(j, "step"), str_or_dash(j, "outcome"),
                       json_real_value(json_object_get(j, "progress")) * 100.0, json_str(j, "image"),
                       json_str(j, "error"));
        return CTL_EXIT_OK;
}

/* ---- distributions, distribution ---- */

static const struct daemon_cmd distributions_cmd = {
        "distributions [--json] [--bus BUS]",
        "Lists smpgwd's Bluetooth Mesh distributions, oldest first: id, Distributor,\n"
        "state, step, rounds, targets updated, failed and in all, image (short id).",
        0,
        0,
        0,
};

int cmd_distributions(struct ctl_context *ctx, int argc, char *argv[]) {
        _cleanup_(json_decrefp) json_t *list = NULL;
        struct daemon_args a;
        const json_t *d;
        size_t i;
        int r;

        r = list_objects(ctx, &distributions_cmd, argc, argv, CTL_DISTRIBUTION_IFACE, &a, &list);
        if (!list)
                return r;
        if (ctx->json)
                return print_json(ctx, "distributions", TAKE_PTR(list));
        printf("%-6s %-11s %-10s %-9s %6s %8s %6s %6s  %s\n", "ID", "DISTRIBUTOR", "STATE", "STEP", "ROUNDS", "UPDATED",
               "FAILED", "TOTAL", "IMAGE");
        json_array_foreach(list, i, d) printf(
                "%-6" PRIu64 " %-11" PRIu64 " %-10s %-9s %6" PRIu64 " %8" PRIu64 " %6" PRIu64 " %6" PRIu64 "  %.12s\n",
                json_u64(d, "id"), json_u64(d, "distributor"), json_str(d, "state"), json_str(d, "step"),
                json_u64(d, "rounds"), json_u64(d, "targets_updated"), json_u64(d, "targets_failed"),
                json_u64(d, "targets_total"), json_str(d, "image"));
        return CTL_EXIT_OK;
}

static const struct daemon_cmd distribution_cmd = {
        "distribution ID [--json] [--bus BUS]",
        "Shows one Bluetooth Mesh distribution and every target: its state, attempts,\n"
        "phase as the Distributor printed it, progress and why it failed.",
        0,
        1,
        1,
};

int cmd_distribution_show(struct ctl_context *ctx, int argc, char *argv[]) {
        _cleanup_(json_decrefp) json_t *list = NULL;
        struct daemon_args a;
        const json_t *d = NULL, *t;
        size_t i;
        int r;

        r = list_objects(ctx, &distribution_cmd, argc, argv, CTL_DISTRIBUTION_IFACE, &a, &list);
        if (!list)
                return r;
        json_array_foreach(list, i, t) {
                char id[24];
                snprintf(id, sizeof(id), "%" PRIu64, json_u64(t, "id"));
                if (streq(id, a.args[0]))
                        d = t;
        }
        if (!d)
                return ctl_fail(ctx, CTL_EXIT_REFUSED, NULL, "no distribution '%s'", a.args[0]);
        if (ctx->json)
                return print_json(ctx, "distribution", json_incref((json_t *) d));
        printf("distribution %" PRIu64 "\n", json_u64(d, "id"));
        printf("  distributor: %" PRIu64 "\n", json_u64(d, "distributor"));
        printf("  image:       %s\n", json_str(d, "image"));
        printf("  state:       %s (step %s, %" PRIu64 " rounds, apply %s)\n", json_str(d, "state"), json_str(d, "step"),
               json_u64(d, "rounds"), json_str(d, "apply"));
        printf("  targets:     %" PRIu64 " updated, %" PRIu64 " failed, of %" PRIu64 "\n",
               json_u64(d, "targets_updated"), json_u64(d, "targets_failed"), json_u64(d, "targets_total"));
        if (json_str(d, "error")[0])
                printf("  error:       %s\n", json_str(d, "error"));
        printf("  %-8s %-8s %-10s %8s %-18s %5s  %s\n", "DEVICE", "ADDR", "STATE", "ATTEMPTS", "PHASE", "DONE",
               "REASON");
        json_array_foreach(json_object_get(d, "targets"), i, t)
                printf("  %-8" PRIu64 " %-8s %-10s %8" PRIu64 " %-18s %4" PRIu64 "%%  %s\n", json_u64(t, "device"),
                       json_str(t, "addr"), json_str(t, "state"), json_u64(t, "attempts"), str_or_dash(t, "phase"),
                       json_u64(t, "progress"), json_str(t, "reason"));
        return CTL_EXIT_OK;
}
