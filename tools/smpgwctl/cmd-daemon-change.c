/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwctl's daemon mode, the commands that change one object at a time,
 * each the D-Bus call of the same name (doc/dbus-api.md):
 *
 *   devices add CONN...     Manager1.AddDevice
 *   rename DEVICE NAME      Device1.Name
 *   direct-device TARGET DEVICE|none   Device1.DirectDevice
 *   probe DEVICE...         Device1.Probe
 *   forget DEVICE...        Device1.Forget
 *   images delete IMAGE...  Manager1.GetImage, Image1.Delete
 *   images set-boards IMAGE [BOARD...]   Manager1.GetImage, Image1.SetBoards
 *   images set-mesh-composition IMAGE [HASH ELEMENTS]   Image1.SetMeshComposition,
 *                           ClearMeshComposition
 *   cancel JOB...           Job1.Cancel
 *   activate JOB...         Job1.Activate
 *
 * With several arguments they go in order and stop at the first one
 * smpgwd refuses, with its exit code.  They print nothing on success but
 * what the object is now with --json (in the REST shape), and the device
 * ids that `devices add` gave.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <systemd/sd-bus.h>

#include "cmd-daemon.h"
#include "ctl-daemon.h"
#include "ctl-session.h"
#include "util.h"

/* What each command does to the object an argument names. */
struct change_ctx {
        struct client *client;
        json_t *devices;            /* REST-shaped, for DEVICE arguments */
        json_t *out;                /* the --json list */
        const char *name;           /* rename */
        const char *direct;         /* direct-device: the device, or "none" */
        char **boards;              /* images set-boards: NULL-terminated */
        bool has_composition;       /* images set-mesh-composition: set (else clear) */
        uint32_t comp_hash;
        uint32_t comp_elements;
};

typedef int (*change_fn)(struct change_ctx *cc, const char *arg);

struct change_cmd {
        struct daemon_cmd cmd;
        const char *json_key;       /* {"<key>": [...]} with --json */
        bool needs_devices;
        change_fn fn;
};

/* Appends item (taken) to the --json list. */
static int out_append(struct change_ctx *cc, json_t *item) {
        if (!item || json_array_append_new(cc->out, item) < 0)
                return ctl_fail(cc->client->ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
        return CTL_EXIT_OK;
}

static int device_path(struct change_ctx *cc, const char *spec, char *buf, size_t size, uint64_t *ret_id) {
        const json_t *d = find_device(cc->devices, spec);
        if (!d)
                return ctl_fail(cc->client->ctx, CTL_EXIT_REFUSED, NULL, "no device '%s'", spec);
        *ret_id = json_u64(d, "id");
        snprintf(buf, size, CTL_DEVICE_PREFIX "%" PRIu64, *ret_id);
        return CTL_EXIT_OK;
}

static int add_device(struct change_ctx *cc, const char *conn) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        json_t *dev = NULL;
        int r;

        r = client_call(cc->client, CTL_ROOT_PATH, CTL_MANAGER_IFACE, "AddDevice", &reply, "s", conn);
        if (r != CTL_EXIT_OK)
                return r;
        if (sd_bus_message_read(reply, "o", &path) < 0)
                return ctl_fail(cc->client->ctx, CTL_EXIT_FAILURE, NULL, "unexpected AddDevice answer");
        r = get_rest_object(cc->client, path, CTL_DEVICE_IFACE, &dev);
        if (r != CTL_EXIT_OK)
                return r;
        if (!cc->client->ctx->json)
                printf("%" PRIu64 "\n", json_u64(dev, "id"));
        return out_append(cc, dev);
}

static int rename_device(struct change_ctx *cc, const char *spec) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        char path[64];
        uint64_t id;
        json_t *dev = NULL;
        int r;

        r = device_path(cc, spec, path, sizeof(path), &id);
        if (r != CTL_EXIT_OK)
                return r;
        r = sd_bus_set_property(cc->client->bus, CTL_BUS_NAME, path, CTL_DEVICE_IFACE, "Name", &error, "s", cc->name);
        if (r < 0)
                return client_fail(cc->client, &error, r, "rename");
        r = get_rest_object(cc->client, path, CTL_DEVICE_IFACE, &dev);
        if (r != CTL_EXIT_OK)
                return r;
        return out_append(cc, dev);
}

/* A mesh target's direct device, "none" for none. */
static int set_direct_device(struct change_ctx *cc, const char *spec) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        char path[64], direct_path[64];
        uint64_t id, direct = 0;
        json_t *dev = NULL;
        int r;

        r = device_path(cc, spec, path, sizeof(path), &id);
        if (r != CTL_EXIT_OK)
                return r;
        if (!streq(cc->direct, "none")) {
                r = device_path(cc, cc->direct, direct_path, sizeof(direct_path), &direct);
                if (r != CTL_EXIT_OK)
                        return r;
        }
        r = sd_bus_set_property(cc->client->bus, CTL_BUS_NAME, path, CTL_DEVICE_IFACE, "DirectDevice", &error, "t",
                                direct);
        if (r < 0)
                return client_fail(cc->client, &error, r, "direct-device");
        r = get_rest_object(cc->client, path, CTL_DEVICE_IFACE, &dev);
        if (r != CTL_EXIT_OK)
                return r;
        return out_append(cc, dev);
}

static int probe_device(struct change_ctx *cc, const char *spec) {
        char path[64];
        uint64_t id;
        json_t *dev = NULL;
        int r;

        r = device_path(cc, spec, path, sizeof(path), &id);
        if (r == CTL_EXIT_OK)
                r = client_call(cc->client, path, CTL_DEVICE_IFACE, "Probe", NULL, NULL);
        if (r == CTL_EXIT_OK)
                r = get_rest_object(cc->client, path, CTL_DEVICE_IFACE, &dev);
        if (r != CTL_EXIT_OK)
                return r;
        return out_append(cc, dev);
}

static int forget_device(struct change_ctx *cc, const char *spec) {
        char path[64];
        uint64_t id;
        int r;

        r = device_path(cc, spec, path, sizeof(path), &id);
        if (r == CTL_EXIT_OK)
                r = client_call(cc->client, path, CTL_DEVICE_IFACE, "Forget", NULL, NULL);
        if (r != CTL_EXIT_OK)
                return r;
        return out_append(cc, json_integer((json_int_t) id));
}

/* The object path of the image ref names (owned). */
static int image_path(struct change_ctx *cc, const char *ref, char **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *p;
        int r;

        if (!image_ref_is_valid(ref)) {
                ctl_log("IMAGE is an image id or a prefix of at least %d of its hex digits, not '%s'",
                        CTL_IMAGE_PREFIX_MIN, ref);
                return CTL_EXIT_USAGE;
        }
        /* smpgwd resolves the prefix: unique, or Ambiguous */
        r = client_call(cc->client, CTL_ROOT_PATH, CTL_MANAGER_IFACE, "GetImage", &reply, "s", ref);
        if (r != CTL_EXIT_OK)
                return r;
        if (sd_bus_message_read(reply, "o", &p) < 0 || !strrchr(p, '/') || !(*ret = strdup(p)))
                return ctl_fail(cc->client->ctx, CTL_EXIT_FAILURE, NULL, "unexpected GetImage answer");
        return CTL_EXIT_OK;
}

static int set_image_boards(struct change_ctx *cc, const char *ref) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        _cleanup_free_ char *path = NULL;
        json_t *img = NULL;
        int r;

        r = image_path(cc, ref, &path);
        if (r != CTL_EXIT_OK)
                return r;
        r = sd_bus_message_new_method_call(cc->client->bus, &call, CTL_BUS_NAME, path, CTL_IMAGE_IFACE, "SetBoards");
        if (r >= 0)
                r = sd_bus_message_append_strv(call, cc->boards);
        if (r < 0)
                return ctl_fail(cc->client->ctx, CTL_EXIT_FAILURE, NULL, "cannot build the SetBoards call: %s",
                                strerror(-r));
        r = sd_bus_call(cc->client->bus, call, CTL_CALL_TIMEOUT_USEC, &error, &reply);
        if (r < 0)
                return client_fail(cc->client, &error, r, "SetBoards");
        r = get_rest_object(cc->client, path, CTL_IMAGE_IFACE, &img);
        if (r != CTL_EXIT_OK)
                return r;
        return out_append(cc, img);
}

static int set_image_mesh_composition(struct change_ctx *cc, const char *ref) {
        _cleanup_free_ char *path = NULL;
        json_t *img = NULL;
        int r;

        r = image_path(cc, ref, &path);
        if (r != CTL_EXIT_OK)
                return r;
        if (cc->has_composition)
                r = client_call(cc->client, path, CTL_IMAGE_IFACE, "SetMeshComposition", NULL, "uq", cc->comp_hash,
                                (uint16_t) cc->comp_elements);
        else
                r = client_call(cc->client, path, CTL_IMAGE_IFACE, "ClearMeshComposition", NULL, NULL);
        if (r != CTL_EXIT_OK)
                return r;
        r = get_rest_object(cc->client, path, CTL_IMAGE_IFACE, &img);
        if (r != CTL_EXIT_OK)
                return r;
        return out_append(cc, img);
}

/* HASH as Zephyr's shell prints it ("0x9e3779b9"), or in decimal. */
static int parse_comp_hash(const char *arg, uint32_t *ret) {
        if (strncasecmp(arg, "0x", 2) == 0) {
                const char *hex = arg + 2;
                size_t n = strlen(hex);
                if (n == 0 || n > 8 || strspn(hex, "0123456789abcdefABCDEF") != n)
                        return -EINVAL;
                *ret = (uint32_t) strtoul(hex, NULL, 16);
                return 0;
        }
        return parse_u32(arg, 0, UINT32_MAX, ret);
}

static int delete_image(struct change_ctx *cc, const char *ref) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = image_path(cc, ref, &path);
        if (r != CTL_EXIT_OK)
                return r;
        r = client_call(cc->client, path, CTL_IMAGE_IFACE, "Delete", NULL, NULL);
        if (r != CTL_EXIT_OK)
                return r;
        return out_append(cc, json_string(strrchr(path, '/') + 1));
}

/* Calls a method of Job1 without arguments on the job spec names. */
static int call_job(struct change_ctx *cc, const char *spec, const char *method) {
        _cleanup_(json_decrefp) json_t *job = NULL;
        char path[64];
        uint32_t id;
        int r;

        if (parse_u32(spec, 1, UINT32_MAX, &id) < 0) {
                ctl_log("JOB is a job id (a number), not '%s'", spec);
                return CTL_EXIT_USAGE;
        }
        snprintf(path, sizeof(path), CTL_JOB_PREFIX "%" PRIu32, id);
        /* reading it first tells "no such job" from a refusal */
        r = get_rest_object(cc->client, path, CTL_JOB_IFACE, &job);
        if (r != CTL_EXIT_OK)
                return r;
        r = client_call(cc->client, path, CTL_JOB_IFACE, method, NULL, NULL);
        if (r != CTL_EXIT_OK)
                return r;
        json_decref(TAKE_PTR(job));
        r = get_rest_object(cc->client, path, CTL_JOB_IFACE, &job);
        if (r != CTL_EXIT_OK)
                return r;
        return out_append(cc, TAKE_PTR(job));
}

static int cancel_job(struct change_ctx *cc, const char *spec) {
        return call_job(cc, spec, "Cancel");
}

static int activate_job(struct change_ctx *cc, const char *spec) {
        return call_job(cc, spec, "Activate");
}

static int run_change(struct ctl_context *ctx, const struct change_cmd *cmd, int argc, char *argv[]) {
        _cleanup_(json_decrefp) json_t *objects = NULL, *devices = NULL, *out = NULL;
        struct daemon_args a;
        struct client c = {};
        struct change_ctx cc;
        int r;

        r = daemon_parse(ctx, &cmd->cmd, argc, argv, &a);
        if (r != CTL_EXIT_OK)
                return r < 0 ? CTL_EXIT_OK : r;
        out = json_array();
        if (!out)
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
        r = client_open(ctx, a.bus, &c);
        if (r != CTL_EXIT_OK)
                return r;
        cc = (struct change_ctx) { .client = &c, .out = out };
        if (cmd->needs_devices) {
                r = get_managed_objects(&c, &objects);
                if (r != CTL_EXIT_OK)
                        goto finish;
                devices = rest_list(objects, CTL_DEVICE_IFACE);
                if (!devices) {
                        r = ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
                        goto finish;
                }
                cc.devices = devices;
        }
        if (cmd->fn == rename_device) {
                cc.name = a.args[1];
                a.n_args = 1;
        }
        if (cmd->fn == set_direct_device) {
                cc.direct = a.args[1];
                a.n_args = 1;
        }
        if (cmd->fn == set_image_boards) {
                cc.boards = a.args + 1; /* argv is NULL-terminated */
                a.n_args = 1;
        }
        if (cmd->fn == set_image_mesh_composition) {
                if (a.n_args == 2) {
                        r = ctl_fail(ctx, CTL_EXIT_USAGE, NULL, "give HASH and ELEMENTS, or neither to clear");
                        goto finish;
                }
                if (a.n_args == 3) {
                        if (parse_comp_hash(a.args[1], &cc.comp_hash) < 0) {
                                r = ctl_fail(ctx, CTL_EXIT_USAGE, NULL,
                                             "HASH is 0..4294967295, in decimal or as 0x and up to 8 hex digits, "
                                             "not '%s'",
                                             a.args[1]);
                                goto finish;
                        }
                        if (parse_u32(a.args[2], 1, UINT16_MAX, &cc.comp_elements) < 0) {
                                r = ctl_fail(ctx, CTL_EXIT_USAGE, NULL, "ELEMENTS is 1..65535, not '%s'", a.args[2]);
                                goto finish;
                        }
                        cc.has_composition = true;
                }
                a.n_args = 1;
        }
        for (int i = 0; i < a.n_args; i++) {
                r = cmd->fn(&cc, a.args[i]);
                if (r != CTL_EXIT_OK)
                        goto finish;
        }
        fflush(stdout);
        if (ctx->json)
                r = print_json(ctx, cmd->json_key, TAKE_PTR(out));
finish:
        client_close(&c);
        return r;
}

static const struct change_cmd devices_add_cmd = {
        { "devices add CONN... [--json] [--bus BUS]",
          "Adds devices to smpgwd by their connection strings (udp:HOST:PORT, ble:ADDR,\n"
          "serial:/dev/PATH, coap:HOST:PORT) and prints their ids, one per line; smpgwd\n"
          "probes them.  A device smpgwd knows already is not added twice: its id is\n"
          "printed.",
          0, 1, -1 },
        "devices", false, add_device,
};

static const struct change_cmd rename_cmd = {
        { "rename DEVICE NAME [--json] [--bus BUS]",
          "Names a device (DEVICE: its id or connection string): at most 64 bytes of\n"
          "UTF-8 without control characters.  \"\" removes the name; the default (the\n"
          "name the device advertises over BLE, else its OS node name) applies again\n"
          "from the next probe.",
          0, 2, 2 },
        "devices", true, rename_device,
};

static const struct change_cmd direct_device_cmd = {
        { "direct-device TARGET DEVICE|none [--json] [--bus BUS]",
          "Names the direct device of a Bluetooth Mesh target (TARGET: its id or mesh:\n"
          "connection string): the device that is the same node over a link of its own\n"
          "(GATT, ...), so that a rollout may update the target by a job to it instead\n"
          "of through its Distributor when that is faster.  \"none\" removes it.",
          0, 2, 2 },
        "devices",
        true,
        set_direct_device,
};

static const struct change_cmd probe_cmd = {
        { "probe DEVICE... [--json] [--bus BUS]",
          "Has smpgwd read devices again now (parameters, OS info, image slots); the\n"
          "result comes in the background ('smpgwctl device' shows it).",
          0, 1, -1 },
        "devices", true, probe_device,
};

static const struct change_cmd forget_cmd = {
        { "forget DEVICE... [--json] [--bus BUS]",
          "Has smpgwd forget devices and their history.  Refused while a device has an\n"
          "unfinished job: cancel it first.",
          0, 1, -1 },
        "forgotten", true, forget_device,
};

static const struct change_cmd images_delete_cmd = {
        { "images delete IMAGE... [--json] [--bus BUS]",
          "Removes stored images from smpgwd.  IMAGE is an image id or a unique prefix of\n"
          "one (at least 6 hex digits).  Refused while an unfinished job uses it.",
          0, 1, -1 },
        "deleted", false, delete_image,
};

static const struct change_cmd images_set_boards_cmd = {
        { "images set-boards IMAGE [BOARD...] [--json] [--bus BUS]",
          "Declares the boards a stored image is built for (IMAGE: its id or a unique\n"
          "prefix), replacing those it had; no BOARD: any board.  BOARD is a board name\n"
          "as devices report it (Zephyr's BOARD): \"name\" takes every revision of the\n"
          "board, \"name@rev\" only that one.  smpgwd refuses to push the image to a\n"
          "device of another board, and rollouts skip such devices.",
          0, 1, 1 + CTL_BOARDS_MAX },
        "images",
        false,
        set_image_boards,
};

static const struct change_cmd images_set_mesh_composition_cmd = {
        { "images set-mesh-composition IMAGE [HASH ELEMENTS] [--json] [--bus BUS]",
          "Declares the Bluetooth Mesh composition of the firmware in a stored image\n"
          "(IMAGE: its id or a unique prefix): HASH, the hash of its Composition Data\n"
          "Page 0 as Zephyr's `mesh models dfu metadata comp-hash-get` prints it\n"
          "(0x... or decimal), and ELEMENTS, its element count.  A mesh distribution\n"
          "sends them to the targets in the firmware metadata.  Neither: none again.",
          0, 1, 3 },
        "images",
        false,
        set_image_mesh_composition,
};

static const struct change_cmd cancel_cmd = {
        { "cancel JOB... [--json] [--bus BUS]",
          "Cancels jobs where they are (an interrupted upload resumes with the next job\n"
          "to that device).  Refused for a job that has finished.",
          0, 1, -1 },
        "jobs", false, cancel_job,
};

static const struct change_cmd activate_cmd = {
        { "activate JOB... [--json] [--bus BUS]",
          "Activates staged jobs (uploaded, waiting): each goes on with test or confirm\n"
          "by its mode, reset and verify.  Refused for a job that is not staged.",
          0, 1, -1 },
        "jobs",
        false,
        activate_job,
};

int cmd_devices_add(struct ctl_context *ctx, int argc, char *argv[]) {
        return run_change(ctx, &devices_add_cmd, argc, argv);
}

int cmd_rename(struct ctl_context *ctx, int argc, char *argv[]) {
        return run_change(ctx, &rename_cmd, argc, argv);
}

int cmd_direct_device(struct ctl_context *ctx, int argc, char *argv[]) {
        return run_change(ctx, &direct_device_cmd, argc, argv);
}

int cmd_probe(struct ctl_context *ctx, int argc, char *argv[]) {
        return run_change(ctx, &probe_cmd, argc, argv);
}

int cmd_forget(struct ctl_context *ctx, int argc, char *argv[]) {
        return run_change(ctx, &forget_cmd, argc, argv);
}

int cmd_images_delete(struct ctl_context *ctx, int argc, char *argv[]) {
        return run_change(ctx, &images_delete_cmd, argc, argv);
}

int cmd_images_set_boards(struct ctl_context *ctx, int argc, char *argv[]) {
        return run_change(ctx, &images_set_boards_cmd, argc, argv);
}

int cmd_images_set_mesh_composition(struct ctl_context *ctx, int argc, char *argv[]) {
        return run_change(ctx, &images_set_mesh_composition_cmd, argc, argv);
}

int cmd_cancel(struct ctl_context *ctx, int argc, char *argv[]) {
        return run_change(ctx, &cancel_cmd, argc, argv);
}

int cmd_activate(struct ctl_context *ctx, int argc, char *argv[]) {
        return run_change(ctx, &activate_cmd, argc, argv);
}
