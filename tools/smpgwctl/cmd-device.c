/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Direct device commands: smpgwctl --conn URI COMMAND.  Each one opens a
 * session on its own sd-event loop, sends its request(s), waits for the
 * answer and prints it (text, or one JSON object with --json).  No daemon
 * is involved.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-session.h"
#include "cmd-device.h"
#include "smpgw/mcuboot-image.h"
#include "smpgw/smp-img.h"
#include "smpgw/smp-os.h"
#include "smpgw/smp-parse.h"
#include "smpgw/smp-stat.h"
#include "smpgw/smp-update.h"
#include "util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct mcuboot_image *, mcuboot_image_free);

static const uint8_t empty_map[] = { 0xa0 };

/* ---- argument parsing shared by the commands ---- */

void cmd_help(FILE *f, const struct cmd_spec *spec) {
        fprintf(f, "Usage: smpgwctl --conn URI [OPTIONS] %s\n\n%s\n", spec->usage, spec->description);
        if (spec->options_help)
                fprintf(f, "\nOptions:\n%s", spec->options_help);
        fprintf(f, "  -h, --help            show this help\n\n");
        ctl_global_options_help(f);
        fputc('\n', f);
        ctl_exit_codes_help(f);
}

int cmd_parse(struct ctl_context *ctx, const struct cmd_spec *spec, int argc, char *argv[],
              const struct option *extra, const char *extra_short, cmd_option_fn fn, void *userdata,
              char ***ret_args, int *ret_n) {
        static const struct option global[] = { CTL_GLOBAL_OPTIONS, { "help", no_argument, NULL, 'h' } };
        struct option options[32];
        char shortopts[64];
        size_t n = 0;
        int c, r;

        for (size_t i = 0; i < ELEMENTSOF(global); i++)
                options[n++] = global[i];
        for (size_t i = 0; extra && extra[i].name && n < ELEMENTSOF(options) - 1; i++)
                options[n++] = extra[i];
        options[n] = (struct option) {};
        snprintf(shortopts, sizeof(shortopts), "%sh%s", CTL_GLOBAL_SHORTOPTS, extra_short ?: "");

        while ((c = getopt_long(argc, argv, shortopts, options, NULL)) >= 0) {
                r = ctl_global_option(ctx, c, optarg);
                if (r < 0)
                        return CTL_EXIT_USAGE;
                if (r > 0)
                        continue;
                if (c == 'h') {
                        cmd_help(stdout, spec);
                        return CMD_HELP_SHOWN;
                }
                if (c == '?' || !fn || fn(c, optarg, userdata) < 0)
                        return CTL_EXIT_USAGE;
        }
        int n_args = argc - optind;
        if (n_args < (int) spec->min_args || n_args > (int) spec->max_args) {
                ctl_log("usage: smpgwctl --conn URI %s; see 'smpgwctl %s --help'", spec->usage, ctx->command);
                return CTL_EXIT_USAGE;
        }
        *ret_args = argv + optind;
        *ret_n = n_args;
        return CTL_EXIT_OK;
}

static int parse_u32_option(const char *name, const char *arg, uint32_t *ret) {
        uint64_t v;
        if (smp_parse_uint(arg, 0, UINT32_MAX, &v) < 0) {
                ctl_log("%s wants a number, not '%s'", name, arg ?: "");
                return -EINVAL;
        }
        *ret = (uint32_t) v;
        return 0;
}

/* Encodes a body with fn into buf; -ENOBUFS etc. are bugs or absurd
 * arguments, reported as failures. */
static int body_check(const struct ctl_context *ctx, const struct smp_cbor_writer *w, size_t *ret_len) {
        int n = smp_cbor_writer_finish(w);
        if (n < 0)
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "cannot encode the request: %s", strerror(-n));
        *ret_len = (size_t) n;
        return CTL_EXIT_OK;
}

/* Opens the device, sends one request, keeps the answer. */
static int call_once(struct ctl_context *ctx, struct ctl_device *d, const char *what, uint8_t op, uint16_t group,
                     uint8_t id, const uint8_t *body, size_t len, bool idempotent, uint64_t timeout_usec,
                     struct ctl_answer *ret) {
        int r = ctl_device_open(ctx, d);
        if (r != CTL_EXIT_OK)
                return r;
        const struct smp_request_params p = {
                .op = op,
                .group = group,
                .id = id,
                .body = body,
                .body_len = len,
                .idempotent = idempotent,
                .timeout_usec = timeout_usec,
        };
        r = ctl_device_call(d, what, &p, ret);
        ctl_device_log_stats(d);
        return r;
}

/* ---- echo ---- */

static const struct cmd_spec echo_spec = {
        .usage = "echo TEXT",
        .description = "Sends TEXT to the device (OS group, echo) and prints what it answers.",
        .min_args = 1,
        .max_args = 1,
};

int cmd_echo(struct ctl_context *ctx, int argc, char *argv[]) {
        _cleanup_(ctl_device_close) struct ctl_device d = {};
        _cleanup_(ctl_answer_done) struct ctl_answer a = {};
        _cleanup_free_ uint8_t *body = NULL;
        char **args;
        int n, r;
        size_t len = 0;

        r = cmd_parse(ctx, &echo_spec, argc, argv, NULL, NULL, NULL, NULL, &args, &n);
        if (r != CTL_EXIT_OK)
                return r == CMD_HELP_SHOWN ? CTL_EXIT_OK : r;
        size_t cap = strlen(args[0]) + 16;
        body = malloc(cap);
        if (!body)
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
        struct smp_cbor_writer w;
        smp_cbor_writer_init(&w, body, cap);
        (void) smp_os_echo_req_encode(&w, smp_cbor_slice_str(args[0]));
        r = body_check(ctx, &w, &len);
        if (r != CTL_EXIT_OK)
                return r;

        r = call_once(ctx, &d, "echo", SMP_OP_WRITE, SMP_GROUP_OS, SMP_OS_CMD_ECHO, body, len, true, 0, &a);
        if (r != CTL_EXIT_OK)
                return r;
        struct smp_cbor_slice text;
        r = smp_os_echo_rsp_decode(a.body, a.len, &text, NULL);
        if (r < 0)
                return ctl_device_bad_answer(&d, "echo", r);
        if (ctx->json)
                return ctl_json_print(ctx, json_pack("{s:s%}", "text", (const char *) text.ptr, text.len));
        printf("%.*s\n", (int) text.len, (const char *) text.ptr);
        return CTL_EXIT_OK;
}

/* ---- params ---- */

static const struct cmd_spec params_spec = {
        .usage = "params",
        .description = "Shows the device's mcumgr parameters: the size of its SMP buffers (the largest\n"
                       "packet it takes, header included) and how many it has.",
};

int cmd_params(struct ctl_context *ctx, int argc, char *argv[]) {
        _cleanup_(ctl_device_close) struct ctl_device d = {};
        _cleanup_(ctl_answer_done) struct ctl_answer a = {};
        char **args;
        int n, r;

        r = cmd_parse(ctx, &params_spec, argc, argv, NULL, NULL, NULL, NULL, &args, &n);
        if (r != CTL_EXIT_OK)
                return r == CMD_HELP_SHOWN ? CTL_EXIT_OK : r;
        r = call_once(ctx, &d, "params", SMP_OP_READ, SMP_GROUP_OS, SMP_OS_CMD_MCUMGR_PARAMS, empty_map,
                      sizeof(empty_map), true, 0, &a);
        if (r != CTL_EXIT_OK)
                return r;
        struct smp_os_params_rsp rsp;
        r = smp_os_params_rsp_decode(a.body, a.len, &rsp, NULL);
        if (r < 0)
                return ctl_device_bad_answer(&d, "params", r);
        if (ctx->json)
                return ctl_json_print(ctx, json_pack("{s:I, s:I}", "buf_size", (json_int_t) rsp.buf_size,
                                                     "buf_count", (json_int_t) rsp.buf_count));
        printf("buf_size:  %" PRIu32 "\nbuf_count: %" PRIu32 "\n", rsp.buf_size, rsp.buf_count);
        return CTL_EXIT_OK;
}

/* ---- info ---- */

static const char *bootloader_mode_name(int64_t mode) {
        /* Zephyr smp_group_0.rst, bootloader information, MCUboot modes */
        static const char *const names[] = {
                "single application", "swap using scratch", "overwrite only", "swap without scratch",
                "direct XIP without revert", "direct XIP with revert", "RAM load", "firmware loader",
        };
        if (mode == -1)
                return "unknown";
        return mode >= 0 && mode < (int64_t) ELEMENTSOF(names) ? names[mode] : NULL;
}

static const struct cmd_spec info_spec = {
        .usage = "info [--format FORMAT]",
        .description = "Shows the device's OS/application information (OS group, command 7) and its\n"
                       "bootloader: name, and for MCUboot its mode and whether it refuses downgrades\n"
                       "(command 8; left out when the device does not support it).",
        .options_help = "  -f, --format FORMAT   os info format characters (default \"a\": everything):\n"
                        "                        s kernel, n node, r release, v version, b build date,\n"
                        "                        m machine, p processor, i platform, o OS\n",
        .max_args = 0,
};

static int info_option(int c, const char *arg, void *userdata) {
        if (c != 'f')
                return -EINVAL;
        *(const char **) userdata = arg;
        return 0;
}

/* Bootloader info, optional: a device error leaves it out. */
static int bootloader_query(struct ctl_device *d, const char *query, struct ctl_answer *a,
                            struct smp_os_bootloader_info_rsp *ret, bool *ret_supported) {
        uint8_t body[32];
        struct smp_cbor_writer w;
        struct smp_status st;
        char buf[256];
        size_t len = 0;
        int r;

        smp_cbor_writer_init(&w, body, sizeof(body));
        (void) smp_os_bootloader_info_req_encode(&w, smp_cbor_slice_str(query));
        r = body_check(d->ctx, &w, &len);
        if (r != CTL_EXIT_OK)
                return r;
        const struct smp_request_params p = {
                .op = SMP_OP_READ,
                .group = SMP_GROUP_OS,
                .id = SMP_OS_CMD_BOOTLOADER_INFO,
                .body = body,
                .body_len = len,
                .idempotent = true,
        };
        r = ctl_device_request(d, &p, a, &st);
        *ret_supported = r == 0;
        if (r == -EREMOTEIO) {
                (void) smp_status_format(&st, buf, sizeof(buf));
                ctl_debug(d->ctx, "bootloader info: %s", buf);
                return CTL_EXIT_OK;
        }
        if (r == -EINTR)
                return ctl_device_interrupted(d);
        if (r < 0)
                return ctl_fail(d->ctx, CTL_EXIT_TRANSPORT, NULL, "bootloader info: %s",
                                ctl_errno_sentence(r, buf, sizeof(buf), d->ctx->conn));
        r = smp_os_bootloader_info_rsp_decode(a->body, a->len, ret, NULL);
        if (r < 0)
                return ctl_device_bad_answer(d, "bootloader info", r);
        return CTL_EXIT_OK;
}

int cmd_info(struct ctl_context *ctx, int argc, char *argv[]) {
        static const struct option options[] = { { "format", required_argument, NULL, 'f' }, {} };
        _cleanup_(ctl_device_close) struct ctl_device d = {};
        _cleanup_(ctl_answer_done) struct ctl_answer a = {}, b = {}, m = {};
        const char *format = "a";
        uint8_t body[96];
        char **args;
        int n, r;
        size_t len = 0;

        r = cmd_parse(ctx, &info_spec, argc, argv, options, "f:", info_option, &format, &args, &n);
        if (r != CTL_EXIT_OK)
                return r == CMD_HELP_SHOWN ? CTL_EXIT_OK : r;
        if (strlen(format) > 32) {
                ctl_log("--format takes a few format characters, not '%s'", format);
                return CTL_EXIT_USAGE;
        }
        struct smp_cbor_writer w;
        smp_cbor_writer_init(&w, body, sizeof(body));
        (void) smp_os_info_req_encode(&w, smp_cbor_slice_str(format));
        r = body_check(ctx, &w, &len);
        if (r != CTL_EXIT_OK)
                return r;
        r = call_once(ctx, &d, "os info", SMP_OP_READ, SMP_GROUP_OS, SMP_OS_CMD_INFO, body, len, true, 0, &a);
        if (r != CTL_EXIT_OK)
                return r;
        struct smp_cbor_slice output;
        r = smp_os_info_rsp_decode(a.body, a.len, &output, NULL);
        if (r < 0)
                return ctl_device_bad_answer(&d, "os info", r);

        struct smp_os_bootloader_info_rsp bl = {}, mode = {};
        bool have_bl = false, have_mode = false;
        r = bootloader_query(&d, NULL, &b, &bl, &have_bl);
        if (r != CTL_EXIT_OK)
                return r;
        if (have_bl && smp_cbor_slice_eq(bl.bootloader, "MCUboot")) {
                r = bootloader_query(&d, "mode", &m, &mode, &have_mode);
                if (r != CTL_EXIT_OK)
                        return r;
                have_mode = have_mode && mode.has_mode;
        }
        ctl_device_log_stats(&d);

        const char *mode_name = have_mode ? bootloader_mode_name(mode.mode) : NULL;
        if (ctx->json) {
                json_t *o = json_pack("{s:s, s:s%, s:o, s:o, s:o, s:o}", "format", format, "os_info",
                                      (const char *) output.ptr, output.len,
                                      "bootloader", have_bl && bl.bootloader.ptr
                                                      ? json_stringn((const char *) bl.bootloader.ptr,
                                                                     bl.bootloader.len)
                                                      : json_null(),
                                      "bootloader_mode", have_mode ? json_integer(mode.mode) : json_null(),
                                      "bootloader_mode_name", mode_name ? json_string(mode_name) : json_null(),
                                      "no_downgrade", have_mode ? json_boolean(mode.no_downgrade) : json_null());
                return ctl_json_print(ctx, o);
        }
        printf("os info:      %.*s\n", (int) output.len, (const char *) output.ptr);
        if (have_bl && bl.bootloader.ptr)
                printf("bootloader:   %.*s\n", (int) bl.bootloader.len, (const char *) bl.bootloader.ptr);
        else
                printf("bootloader:   (not reported)\n");
        if (have_mode) {
                printf("mode:         %" PRId64 " (%s)\n", mode.mode, mode_name ?: "unknown mode");
                printf("no-downgrade: %s\n", mode.no_downgrade ? "yes" : "no");
        }
        return CTL_EXIT_OK;
}

/* ---- reset ---- */

static const struct cmd_spec reset_spec = {
        .usage = "reset [--force]",
        .description = "Asks the device to reboot (OS group, reset).  It answers first, then reboots;\n"
                       "MCUboot swaps a pending image on the way.",
        .options_help = "      --force           ask for the reset even if the application objects\n",
};

static int reset_option(int c, const char *arg, void *userdata) {
        if (c != 'F')
                return -EINVAL;
        *(bool *) userdata = true;
        return 0;
}

int cmd_reset(struct ctl_context *ctx, int argc, char *argv[]) {
        static const struct option options[] = { { "force", no_argument, NULL, 'F' }, {} };
        _cleanup_(ctl_device_close) struct ctl_device d = {};
        _cleanup_(ctl_answer_done) struct ctl_answer a = {};
        bool force = false;
        uint8_t body[32];
        char **args;
        int n, r;
        size_t len = 0;

        r = cmd_parse(ctx, &reset_spec, argc, argv, options, NULL, reset_option, &force, &args, &n);
        if (r != CTL_EXIT_OK)
                return r == CMD_HELP_SHOWN ? CTL_EXIT_OK : r;
        struct smp_cbor_writer w;
        const struct smp_os_reset_req req = { .force = force };
        smp_cbor_writer_init(&w, body, sizeof(body));
        (void) smp_os_reset_req_encode(&w, &req);
        r = body_check(ctx, &w, &len);
        if (r != CTL_EXIT_OK)
                return r;
        /* not repeated: a second reset would hit the rebooted device */
        r = call_once(ctx, &d, "reset", SMP_OP_WRITE, SMP_GROUP_OS, SMP_OS_CMD_RESET, body, len, false, 0, &a);
        if (r != CTL_EXIT_OK)
                return r;
        if (ctx->json)
                return ctl_json_print(ctx, json_pack("{s:b}", "force", force));
        printf("reset: the device is rebooting\n");
        return CTL_EXIT_OK;
}

/* ---- image list, test, confirm ---- */

/* Decodes and prints an image state answer. */
static int print_state(struct ctl_context *ctx, struct ctl_device *d, const char *what,
                       const struct ctl_answer *a) {
        _cleanup_free_ struct smp_img_state_rsp *rsp = malloc(sizeof(*rsp));
        struct smp_update_slot slots[SMP_IMG_MAX_IMAGES];
        int r;

        if (!rsp)
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
        r = smp_img_state_rsp_decode(a->body, a->len, rsp, NULL);
        if (r < 0)
                return ctl_device_bad_answer(d, what, r);
        for (size_t i = 0; i < rsp->n_images; i++)
                smp_update_slot_from_state(&rsp->images[i], &slots[i]);
        if (ctx->json)
                return ctl_json_print(ctx, json_pack("{s:o, s:o}", "images", ctl_json_slots(slots, rsp->n_images),
                                                     "split_status",
                                                     rsp->has_split_status ? json_integer(rsp->split_status)
                                                                           : json_null()));
        ctl_print_slots(slots, rsp->n_images, "");
        return CTL_EXIT_OK;
}

static const struct cmd_spec image_list_spec = {
        .usage = "image list",
        .description = "Lists the images in the device's slots: version, hash (the image's SHA256\n"
                       "TLV) and flags (active, confirmed, pending, permanent, bootable).",
};

int cmd_image_list(struct ctl_context *ctx, int argc, char *argv[]) {
        _cleanup_(ctl_device_close) struct ctl_device d = {};
        _cleanup_(ctl_answer_done) struct ctl_answer a = {};
        char **args;
        int n, r;

        r = cmd_parse(ctx, &image_list_spec, argc, argv, NULL, NULL, NULL, NULL, &args, &n);
        if (r != CTL_EXIT_OK)
                return r == CMD_HELP_SHOWN ? CTL_EXIT_OK : r;
        r = call_once(ctx, &d, "image list", SMP_OP_READ, SMP_GROUP_IMAGE, SMP_IMG_CMD_STATE, empty_map,
                      sizeof(empty_map), true, 0, &a);
        if (r != CTL_EXIT_OK)
                return r;
        return print_state(ctx, &d, "image list", &a);
}

static int parse_hash(const char *s, uint8_t *buf, size_t size, size_t *ret_len) {
        size_t n = strlen(s);
        if (n == 0 || n % 2 || n / 2 > size)
                return -EINVAL;
        for (size_t i = 0; i < n / 2; i++) {
                unsigned v;
                if (sscanf(s + 2 * i, "%2x", &v) != 1 || !strchr("0123456789abcdefABCDEF", s[2 * i]) ||
                    !strchr("0123456789abcdefABCDEF", s[2 * i + 1]))
                        return -EINVAL;
                buf[i] = (uint8_t) v;
        }
        *ret_len = n / 2;
        return 0;
}

static int state_write(struct ctl_context *ctx, const char *what, const char *hash_text, bool confirm) {
        _cleanup_(ctl_device_close) struct ctl_device d = {};
        _cleanup_(ctl_answer_done) struct ctl_answer a = {};
        uint8_t hash[SMP_IMG_HASH_MAX], body[128];
        size_t hash_len = 0, len = 0;
        int r;

        if (hash_text && parse_hash(hash_text, hash, sizeof(hash), &hash_len) < 0) {
                ctl_log("'%s' is not an image hash (hex, 64 digits for SHA-256; see 'smpgwctl image list')",
                        hash_text);
                return CTL_EXIT_USAGE;
        }
        struct smp_cbor_writer w;
        const struct smp_img_state_write_req req = {
                .hash = hash_text ? smp_cbor_slice_make(hash, hash_len) : (struct smp_cbor_slice) {},
                .confirm = confirm,
        };
        smp_cbor_writer_init(&w, body, sizeof(body));
        (void) smp_img_state_write_req_encode(&w, &req);
        r = body_check(ctx, &w, &len);
        if (r != CTL_EXIT_OK)
                return r;
        /* marking the same image twice is harmless: repeat on timeout */
        r = call_once(ctx, &d, what, SMP_OP_WRITE, SMP_GROUP_IMAGE, SMP_IMG_CMD_STATE, body, len, true, 0, &a);
        if (r != CTL_EXIT_OK)
                return r;
        return print_state(ctx, &d, what, &a);
}

static const struct cmd_spec image_test_spec = {
        .usage = "image test HASH",
        .description = "Marks the image with this hash (see 'image list') for one test boot: MCUboot\n"
                       "swaps it in at the next reset and back at the one after unless it is\n"
                       "confirmed.  Prints the image list the device answers with.",
        .min_args = 1,
        .max_args = 1,
};

int cmd_image_test(struct ctl_context *ctx, int argc, char *argv[]) {
        char **args;
        int n, r = cmd_parse(ctx, &image_test_spec, argc, argv, NULL, NULL, NULL, NULL, &args, &n);
        if (r != CTL_EXIT_OK)
                return r == CMD_HELP_SHOWN ? CTL_EXIT_OK : r;
        return state_write(ctx, "image test", args[0], false);
}

static const struct cmd_spec image_confirm_spec = {
        .usage = "image confirm [HASH]",
        .description = "Without HASH: confirms the running image, so MCUboot keeps it (ends a test\n"
                       "boot).  With the hash of the image in the secondary slot: marks it for a\n"
                       "permanent swap at the next reset.  Prints the image list the device answers\n"
                       "with.",
        .max_args = 1,
};

int cmd_image_confirm(struct ctl_context *ctx, int argc, char *argv[]) {
        char **args;
        int n, r = cmd_parse(ctx, &image_confirm_spec, argc, argv, NULL, NULL, NULL, NULL, &args, &n);
        if (r != CTL_EXIT_OK)
                return r == CMD_HELP_SHOWN ? CTL_EXIT_OK : r;
        return state_write(ctx, "image confirm", n > 0 ? args[0] : NULL, true);
}

/* ---- image erase ---- */

static const struct cmd_spec image_erase_spec = {
        .usage = "image erase [--slot N]",
        .description = "Erases a slot (by default the device's choice, the secondary slot 1).  Erasing\n"
                       "may take long on real flash: the answer is waited for 60 s at least.",
        .options_help = "      --slot N          the slot to erase\n",
};

struct erase_opts {
        bool has_slot;
        uint32_t slot;
};

static int erase_option(int c, const char *arg, void *userdata) {
        struct erase_opts *o = userdata;
        if (c != 'S' || parse_u32_option("--slot", arg, &o->slot) < 0)
                return -EINVAL;
        o->has_slot = true;
        return 0;
}

int cmd_image_erase(struct ctl_context *ctx, int argc, char *argv[]) {
        static const struct option options[] = { { "slot", required_argument, NULL, 'S' }, {} };
        _cleanup_(ctl_device_close) struct ctl_device d = {};
        _cleanup_(ctl_answer_done) struct ctl_answer a = {};
        struct erase_opts o = {};
        uint8_t body[32];
        char **args;
        int n, r;
        size_t len = 0;

        r = cmd_parse(ctx, &image_erase_spec, argc, argv, options, NULL, erase_option, &o, &args, &n);
        if (r != CTL_EXIT_OK)
                return r == CMD_HELP_SHOWN ? CTL_EXIT_OK : r;
        struct smp_cbor_writer w;
        const struct smp_img_erase_req req = { .has_slot = o.has_slot, .slot = o.slot };
        smp_cbor_writer_init(&w, body, sizeof(body));
        (void) smp_img_erase_req_encode(&w, &req);
        r = body_check(ctx, &w, &len);
        if (r != CTL_EXIT_OK)
                return r;
        r = call_once(ctx, &d, "image erase", SMP_OP_WRITE, SMP_GROUP_IMAGE, SMP_IMG_CMD_ERASE, body, len, true,
                      ctx->erase_timeout_usec
                              ?: MAX(ctx->timeout_usec, (uint64_t) SMP_UPDATE_ERASE_TIMEOUT_DEFAULT_USEC),
                      &a);
        if (r != CTL_EXIT_OK)
                return r;
        if (ctx->json)
                return ctl_json_print(ctx, json_pack("{s:o}", "slot",
                                                     o.has_slot ? json_integer(o.slot) : json_null()));
        if (o.has_slot)
                printf("image erase: slot %" PRIu32 " erased\n", o.slot);
        else
                printf("image erase: secondary slot erased\n");
        return CTL_EXIT_OK;
}

/* ---- image upload ---- */

struct upload_run {
        struct ctl_progress progress;
        struct smp_upload_progress last;
        bool done;
        struct smp_upload_result result;
        struct ctl_saved_status status;
};

static void on_upload_progress(struct smp_upload *u, const struct smp_upload_progress *p, void *userdata) {
        struct upload_run *run = userdata;
        run->last = *p;
        ctl_progress_update(&run->progress, p);
}

static void on_upload_done(struct smp_upload *u, const struct smp_upload_result *r, void *userdata) {
        struct upload_run *run = userdata;
        run->done = true;
        run->result = *r;
        /* the status borrows the answer, gone after this call */
        if (r->error == -EREMOTEIO)
                ctl_status_save(&run->status, &r->status);
        run->result.status = run->status.status;
}

void cmd_under_test_advice(const struct smp_update_slot *testing, const char *again, char *buf, size_t size) {
        snprintf(buf, size,
                 "; it runs %s under test, not confirmed, and keeps its other slot to go back to: "
                 "'smpgwctl image confirm' keeps that image, 'smpgwctl reset' goes back; then %s",
                 testing->version[0] ? testing->version : "an image", again);
}

/* After the device refused an upload: when it runs an image under test,
 * that is why (Zephyr keeps the slot to revert to, IMG_NO_FREE_SLOT), but
 * the refusal does not say so and an upload reads no state before it.
 * One state read tells; any trouble with it leaves advice empty, and the
 * refusal is reported as it came. */
static void upload_refusal_advice(struct ctl_device *d, uint32_t image, const struct smp_status *refusal, char *advice,
                                  size_t size) {
        _cleanup_(ctl_answer_done) struct ctl_answer a = {};
        struct smp_update_snapshot snap;
        struct smp_status st;
        const struct smp_request_params p = {
                .op = SMP_OP_READ,
                .group = SMP_GROUP_IMAGE,
                .id = SMP_IMG_CMD_STATE,
                .body = empty_map,
                .body_len = sizeof(empty_map),
                .idempotent = true,
        };

        advice[0] = '\0';
        if (!refusal->has_err || refusal->err_group != SMP_GROUP_IMAGE || refusal->err_rc != SMP_IMG_ERR_NO_FREE_SLOT)
                return;
        if (ctl_device_request(d, &p, &a, &st) < 0 || smp_update_snapshot_from_body(a.body, a.len, &snap, NULL) < 0)
                return;
        const struct smp_update_slot *testing = smp_update_refused_under_test(&snap, image, refusal);
        if (testing)
                cmd_under_test_advice(testing, "upload again", advice, size);
}

/* Reports a failed upload (or update's upload step): returns the exit code. */
int cmd_upload_failed(const struct ctl_context *ctx, const char *what, int error,
                      const struct ctl_saved_status *status, uint64_t offset, uint64_t total) {
        char buf[256];

        if (error == -EREMOTEIO && status->set) {
                (void) smp_status_format(&status->status, buf, sizeof(buf));
                return ctl_fail(ctx, CTL_EXIT_DEVICE, &status->status, "%s: the device refused: %s", what, buf);
        }
        if (error == -EIO)
                return ctl_fail(ctx, CTL_EXIT_TRANSPORT, NULL,
                                "%s: the device's flash does not match the file's SHA-256 (damaged in transfer?)",
                                what);
        if (error == -EMSGSIZE)
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL,
                                "%s: the device's buffer or the link is too small for an upload chunk", what);
        return ctl_fail(ctx, error == -ENOMEM ? CTL_EXIT_FAILURE : CTL_EXIT_TRANSPORT, NULL,
                        "%s: %s (at %" PRIu64 " of %" PRIu64 " bytes; run again to resume)", what,
                        ctl_errno_sentence(error, buf, sizeof(buf), ctx->conn), offset, total);
}

void cmd_print_upload_result(const struct smp_upload_result *r, size_t total, const char *indent) {
        char rate[32];
        ctl_format_bytes(r->rate, rate, sizeof(rate));
        printf("%s%zu bytes in %.2f s, %s/s", indent, total, (double) r->elapsed_usec / 1e6, rate);
        if (r->resumed_at)
                printf(", resumed at %" PRIu64, r->resumed_at);
        printf("\n%swindow %u, chunk %zu bytes, %" PRIu64 " retransmits, device buffers %" PRIu32 " x %" PRIu32
               " bytes%s\n",
               indent, r->window_max, r->chunk, r->retransmits, r->buf_count, r->buf_size,
               r->has_match ? (r->match ? ", flash matches" : ", flash does NOT match") : "");
        /* smpgwctl keeps nothing between runs: the user carries it over */
        if (r->path_mtu)
                printf("%spath MTU %zu bytes (--path-mtu %zu starts the next upload there)\n", indent, r->path_mtu,
                       r->path_mtu);
}

json_t *cmd_json_path_mtu(const struct smp_upload_result *r) {
        return r->path_mtu ? json_integer((json_int_t) r->path_mtu) : json_null();
}

int cmd_path_mtu_option(const char *arg, size_t *ret) {
        uint32_t v;
        if (parse_u32_option("--path-mtu", arg, &v) < 0)
                return -EINVAL;
        if (v == 0 || v > UINT16_MAX) {
                ctl_log("--path-mtu wants bytes from 1 to 65535, not '%s'", arg);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

static const struct cmd_spec image_upload_spec = {
        .usage = "image upload FILE [--image N] [--upgrade] [--path-mtu N]",
        .description = "Uploads FILE into the device's secondary slot, pipelined (up to --window\n"
                       "chunks in flight).  An upload of the same file that was interrupted resumes\n"
                       "where the device stopped (the device matches it by the file's SHA-256).  On a\n"
                       "terminal a progress bar shows bytes, per cent, rate, time left and window.\n"
                       "Over UDP it finds the largest packet the path carries (path_mtu) unless\n"
                       "--chunk is given.\n"
                       "Only uploads: 'image test', 'image confirm' and 'reset' (or 'update') follow.",
        .options_help = "      --image N         image number (multi-image devices; default 0)\n"
                        "      --upgrade         ask the device to refuse an image not newer than the\n"
                        "                        running one\n"
                        CMD_PATH_MTU_HELP,
        .min_args = 1,
        .max_args = 1,
};

struct upload_opts {
        bool has_image;
        uint32_t image;
        bool upgrade;
        size_t path_mtu;
};

static int upload_option(int c, const char *arg, void *userdata) {
        struct upload_opts *o = userdata;
        switch (c) {
        case 'I':
                if (parse_u32_option("--image", arg, &o->image) < 0)
                        return -EINVAL;
                o->has_image = true;
                return 0;
        case 'U':
                o->upgrade = true;
                return 0;
        case 'P':
                return cmd_path_mtu_option(arg, &o->path_mtu);
        }
        return -EINVAL;
}

int cmd_image_upload(struct ctl_context *ctx, int argc, char *argv[]) {
        static const struct option options[] = {
                { "image", required_argument, NULL, 'I' },
                { "upgrade", no_argument, NULL, 'U' },
                { "path-mtu", required_argument, NULL, 'P' },
                {}
        };
        _cleanup_(ctl_device_close) struct ctl_device d = {};
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_(mcuboot_image_freep) struct mcuboot_image *img = NULL;
        struct upload_opts o = {};
        struct upload_run run = {};
        struct smp_upload *up = NULL;
        uint8_t sha[32];
        char **args;
        size_t len = 0;
        int n, r;

        r = cmd_parse(ctx, &image_upload_spec, argc, argv, options, NULL, upload_option, &o, &args, &n);
        if (r != CTL_EXIT_OK)
                return r == CMD_HELP_SHOWN ? CTL_EXIT_OK : r;
        const char *path = args[0];
        r = ctl_read_file(ctx, path, MCUBOOT_IMAGE_FILE_MAX, &data, &len);
        if (r != CTL_EXIT_OK)
                return r;
        /* Not required (the device judges), but named in the output. */
        if (mcuboot_image_parse(data, len, &img, NULL) < 0)
                ctl_debug(ctx, "'%s' is not a well-formed MCUboot image, uploading it anyway", path);
        smp_upload_file_sha256(data, len, sha);

        r = ctl_device_open(ctx, &d);
        if (r != CTL_EXIT_OK)
                return r;
        ctl_progress_init(&run.progress, ctx);
        const struct smp_upload_params p = {
                .data = data,
                .len = len,
                .has_image = o.has_image,
                .image = o.image,
                .upgrade = o.upgrade,
                .window = ctx->window,
                .chunk = ctx->chunk,
                .path_mtu = o.path_mtu,
                .timeout_usec = ctx->timeout_usec,
                .first_timeout_usec = ctx->erase_timeout_usec,
                .image_hash = img && img->sha256_tlv ? img->sha256_tlv : NULL,
                .progress = on_upload_progress,
                .done = on_upload_done,
                .userdata = &run,
        };
        r = smp_upload_start(d.session, &p, &up);
        if (r < 0)
                return cmd_upload_failed(ctx, "image upload", r, &run.status, 0, len);
        r = ctl_device_wait(&d, &run.done);
        ctl_progress_end(&run.progress);
        if (r < 0) {
                /* the device keeps its upload state: the next run resumes */
                smp_upload_cancel(up);
                if (r == -EINTR)
                        return ctl_fail(ctx, 128 + d.signal, NULL,
                                        "interrupted by %s at %" PRIu64 " of %zu bytes; run again to resume",
                                        strsignal(d.signal), run.last.offset, len);
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "event loop failed: %s", strerror(-r));
        }
        ctl_device_log_stats(&d);
        if (run.result.error == -EREMOTEIO && run.status.set) {
                char advice[256], buf[256];
                upload_refusal_advice(&d, o.image, &run.status.status, advice, sizeof(advice));
                if (advice[0]) {
                        (void) smp_status_format(&run.status.status, buf, sizeof(buf));
                        return ctl_fail(ctx, CTL_EXIT_DEVICE, &run.status.status,
                                        "image upload: the device refused: %s%s", buf, advice);
                }
        }
        if (run.result.error < 0)
                return cmd_upload_failed(ctx, "image upload", run.result.error, &run.status, run.last.offset, len);

        char version[MCUBOOT_VERSION_STRING_MAX] = "";
        if (img)
                (void) mcuboot_version_format(&img->version, version, sizeof(version));
        if (ctx->json) {
                json_t *o_json = ctl_json_upload_result(&run.result, len);
                if (o_json &&
                    (json_object_set_new(o_json, "file", json_string(path)) < 0 ||
                     json_object_set_new(o_json, "sha256", ctl_json_hex(sha, sizeof(sha))) < 0 ||
                     json_object_set_new(o_json, "path_mtu", cmd_json_path_mtu(&run.result)) < 0 ||
                     json_object_set_new(o_json, "version", img ? json_string(version) : json_null()) < 0 ||
                     json_object_set_new(o_json, "hash", img && img->sha256_tlv ? ctl_json_hex(img->sha256_tlv, 32)
                                                                               : json_null()) < 0))
                        o_json = (json_decref(o_json), NULL);
                return ctl_json_print(ctx, o_json);
        }
        _cleanup_free_ char *hash = img && img->sha256_tlv ? ctl_hex(img->sha256_tlv, 32) : NULL;
        printf("uploaded %s", path);
        if (img)
                printf(" (version %s%s%s)", version, hash ? ", hash " : "", hash ?: "");
        printf("\n");
        cmd_print_upload_result(&run.result, len, "  ");
        return CTL_EXIT_OK;
}

/* ---- stat list, stat read ---- */

static const struct cmd_spec stat_list_spec = {
        .usage = "stat list",
        .description = "Lists the device's statistics groups.",
};

int cmd_stat_list(struct ctl_context *ctx, int argc, char *argv[]) {
        _cleanup_(ctl_device_close) struct ctl_device d = {};
        _cleanup_(ctl_answer_done) struct ctl_answer a = {};
        /* _done() frees what a decode allocated and takes a zeroed struct */
        _cleanup_(smp_stat_list_rsp_done) struct smp_stat_list_rsp rsp = {};
        char **args;
        int n, r;

        r = cmd_parse(ctx, &stat_list_spec, argc, argv, NULL, NULL, NULL, NULL, &args, &n);
        if (r != CTL_EXIT_OK)
                return r == CMD_HELP_SHOWN ? CTL_EXIT_OK : r;
        r = call_once(ctx, &d, "stat list", SMP_OP_READ, SMP_GROUP_STAT, SMP_STAT_CMD_LIST, empty_map,
                      sizeof(empty_map), true, 0, &a);
        if (r != CTL_EXIT_OK)
                return r;
        r = smp_stat_list_rsp_decode(a.body, a.len, &rsp, NULL);
        if (r < 0)
                return ctl_device_bad_answer(&d, "stat list", r);
        if (ctx->json) {
                json_t *names = json_array();
                for (size_t i = 0; names && i < rsp.n_names; i++)
                        if (json_array_append_new(names, json_stringn((const char *) rsp.names[i].ptr,
                                                                      rsp.names[i].len)) < 0)
                                names = (json_decref(names), NULL);
                return ctl_json_print(ctx, names ? json_pack("{s:o}", "groups", names) : NULL);
        }
        for (size_t i = 0; i < rsp.n_names; i++)
                printf("%.*s\n", (int) rsp.names[i].len, (const char *) rsp.names[i].ptr);
        return CTL_EXIT_OK;
}

static const struct cmd_spec stat_read_spec = {
        .usage = "stat read NAME",
        .description = "Shows the counters of one statistics group (see 'stat list').",
        .min_args = 1,
        .max_args = 1,
};

int cmd_stat_read(struct ctl_context *ctx, int argc, char *argv[]) {
        _cleanup_(ctl_device_close) struct ctl_device d = {};
        _cleanup_(ctl_answer_done) struct ctl_answer a = {};
        _cleanup_(smp_stat_read_rsp_done) struct smp_stat_read_rsp rsp = {};
        _cleanup_free_ uint8_t *body = NULL;
        char **args;
        size_t len = 0;
        int n, r;

        r = cmd_parse(ctx, &stat_read_spec, argc, argv, NULL, NULL, NULL, NULL, &args, &n);
        if (r != CTL_EXIT_OK)
                return r == CMD_HELP_SHOWN ? CTL_EXIT_OK : r;
        size_t cap = strlen(args[0]) + 16;
        body = malloc(cap);
        if (!body)
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
        struct smp_cbor_writer w;
        smp_cbor_writer_init(&w, body, cap);
        (void) smp_stat_read_req_encode(&w, smp_cbor_slice_str(args[0]));
        r = body_check(ctx, &w, &len);
        if (r != CTL_EXIT_OK)
                return r;
        r = call_once(ctx, &d, "stat read", SMP_OP_READ, SMP_GROUP_STAT, SMP_STAT_CMD_READ, body, len, true, 0, &a);
        if (r != CTL_EXIT_OK)
                return r;
        r = smp_stat_read_rsp_decode(a.body, a.len, &rsp, NULL);
        if (r < 0)
                return ctl_device_bad_answer(&d, "stat read", r);
        if (ctx->json) {
                json_t *fields = json_object();
                for (size_t i = 0; fields && i < rsp.n_fields; i++) {
                        _cleanup_free_ char *name = strndup((const char *) rsp.fields[i].name.ptr,
                                                            rsp.fields[i].name.len);
                        if (!name || json_object_set_new(fields, name,
                                                         json_integer((json_int_t) rsp.fields[i].value)) < 0)
                                fields = (json_decref(fields), NULL);
                }
                return ctl_json_print(ctx, fields ? json_pack("{s:s%, s:o}", "name", (const char *) rsp.name.ptr,
                                                              rsp.name.len, "fields", fields)
                                                  : NULL);
        }
        printf("%.*s:\n", (int) rsp.name.len, (const char *) rsp.name.ptr);
        for (size_t i = 0; i < rsp.n_fields; i++)
                printf("  %-24.*s %" PRIu64 "\n", (int) rsp.fields[i].name.len,
                       (const char *) rsp.fields[i].name.ptr, rsp.fields[i].value);
        return CTL_EXIT_OK;
}
