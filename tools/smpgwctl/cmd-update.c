/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwctl --conn URI update FILE [--mode MODE]: the whole safe update of
 * one device (lib/smp-update.c): read state, upload (resuming), test or
 * confirm, reset, wait for MCUboot's decision, confirm, verify.  Prints
 * the outcome, the slots before and after, the reboot time and the upload
 * rate; the exit code tells updated (0), reverted (8) and stuck (9) apart.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd-device.h"
#include "ctl-session.h"
#include "smpgw/mcuboot-image.h"
#include "smpgw/smp-parse.h"
#include "smpgw/smp-update.h"
#include "util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct mcuboot_image *, mcuboot_image_free);

static const struct cmd_spec update_spec = {
        .usage = "update FILE [--mode MODE] [--erase] [--swap-timeout SEC] [--path-mtu N]",
        .description =
                "Updates the device to the MCUboot image FILE, safely:\n"
                "  read the image state (done if FILE already runs confirmed)\n"
                "  upload FILE to the secondary slot (skipped when it is there already;\n"
                "    an interrupted upload resumes)\n"
                "  check the slot holds it, mark it (test, or confirm), reset\n"
                "  wait until the device answers again with no slot pending (MCUboot decided)\n"
                "  confirm the new image once it runs, and check it is active and confirmed.\n"
                "Outcomes: updated, up-to-date, testing (test-only), uploaded (upload-only),\n"
                "reverted (MCUboot went back to the old image, or erased the new one as\n"
                "invalid: 'rejected'), stuck (any other state).",
        .options_help =
                "  -m, --mode MODE       test-and-confirm (default): test boot, then confirm\n"
                "                          once the new image runs;\n"
                "                        confirm-only: confirm before the reset (permanent\n"
                "                          swap, no way back);\n"
                "                        test-only: test boot, the application confirms itself;\n"
                "                        upload-only: upload and check, nothing else\n"
                "      --erase           erase the secondary slot before uploading\n"
                "      --swap-timeout SEC  how long to wait for the device after the reset\n"
                "                        (default 120)\n"
                CMD_PATH_MTU_HELP,
        .min_args = 1,
        .max_args = 1,
};

struct update_opts {
        enum smp_update_mode mode;
        bool erase;
        uint64_t swap_timeout_usec;
        size_t path_mtu;
};

static int update_option(int c, const char *arg, void *userdata) {
        struct update_opts *o = userdata;
        switch (c) {
        case 'm': {
                int m = ctl_parse_update_mode(arg);
                if (m < 0)
                        return m;
                o->mode = (enum smp_update_mode) m;
                return 0;
        }
        case 'E':
                o->erase = true;
                return 0;
        case 'T': {
                uint64_t v;
                if (smp_parse_uint(arg, 1, 3600, &v) < 0) {
                        ctl_log("--swap-timeout wants seconds from 1 to 3600, not '%s'", arg);
                        return -EINVAL;
                }
                o->swap_timeout_usec = (uint64_t) v * 1000000u;
                return 0;
        }
        case 'P':
                return cmd_path_mtu_option(arg, &o->path_mtu);
        }
        return -EINVAL;
}

struct update_run {
        const struct ctl_context *ctx;
        struct ctl_progress progress;
        struct smp_upload_progress last;
        bool tty;
        bool upload_started;
        bool done;
        struct smp_update_result result;
        struct ctl_saved_status status;
};

static void on_step(struct smp_update *u, enum smp_update_step step, void *userdata) {
        struct update_run *run = userdata;
        ctl_progress_end(&run->progress);
        if (step == SMP_UPDATE_STEP_UPLOAD)
                run->upload_started = true;
        if (run->tty)
                printf("-> %s\n", smp_update_step_to_string(step));
        else
                ctl_debug(run->ctx, "update: %s", smp_update_step_to_string(step));
}

static void on_progress(struct smp_upload *u, const struct smp_upload_progress *p, void *userdata) {
        struct update_run *run = userdata;
        run->last = *p;
        ctl_progress_update(&run->progress, p);
}

static void on_done(struct smp_update *u, const struct smp_update_result *r, void *userdata) {
        struct update_run *run = userdata;
        run->done = true;
        run->result = *r;
        /* the status borrows the answer, gone after this call */
        if (r->error == -EREMOTEIO)
                ctl_status_save(&run->status, &r->status);
        run->result.status = run->status.status;
        run->result.upload.status = run->status.status;
}

static const struct smp_update_slot *active_slot(const struct smp_update_snapshot *s) {
        for (size_t i = 0; i < s->n_slots; i++)
                if (s->slots[i].image == 0 && s->slots[i].active)
                        return &s->slots[i];
        return NULL;
}

/* The exit code of a finished update, with the failure reported on
 * stderr (and not as JSON: the result object carries it). */
static int update_exit_code(const struct ctl_context *ctx, const struct update_run *run, char *msg,
                            size_t size) {
        const struct smp_update_result *r = &run->result;
        char buf[256];

        msg[0] = '\0';
        switch (r->outcome) {
        case SMP_UPDATE_OUTCOME_REVERTED:
                snprintf(msg, size, "update: reverted: %s",
                         r->rejected ? "MCUboot found the new image invalid and erased it"
                                     : "the old image runs again, the new one is not pending");
                return CTL_EXIT_REVERTED;
        case SMP_UPDATE_OUTCOME_STUCK:
                snprintf(msg, size, "update: stuck after step %s: the device's image state is not what "
                                    "the procedure expects (see 'after')%s%s",
                         smp_update_step_to_string(r->error < 0 ? r->failed_step : SMP_UPDATE_STEP_DONE),
                         r->error < 0 ? ": " : "", r->error < 0 ? strerror(-r->error) : "");
                return CTL_EXIT_STUCK;
        default:
                break;
        }
        if (r->error == 0)
                return CTL_EXIT_OK;

        const char *step = smp_update_step_to_string(r->failed_step);
        if (r->error == -EREMOTEIO && run->status.set) {
                const struct smp_update_slot *testing = smp_update_refused_under_test(
                        r->after.n_slots ? &r->after : &r->before, 0, &run->status.status);
                (void) smp_status_format(&run->status.status, buf, sizeof(buf));
                char advice[256] = "";
                if (testing)
                        cmd_under_test_advice(testing, "update again", advice, sizeof(advice));
                else if (r->failed_step == SMP_UPDATE_STEP_RESET)
                        /* A reset hook (Zephyr's MGMT_EVT_OP_OS_MGMT_RESET)
                         * declines while the application is busy: the image
                         * is marked, and any later reset applies it. */
                        snprintf(advice, sizeof(advice),
                                 "; the application declined the reset, and the new image is marked and "
                                 "boots at the device's next reset: run the update again later, or "
                                 "'smpgwctl reset --force' resets it now");
                snprintf(msg, size, "update: %s: the device refused: %s%s", step, buf, advice);
                return CTL_EXIT_DEVICE;
        }
        if (r->failed_step == SMP_UPDATE_STEP_CHECK_UPLOAD && r->error == -EIO) {
                snprintf(msg, size, "update: %s: the secondary slot does not hold the image after the upload",
                         step);
                return CTL_EXIT_TRANSPORT;
        }
        if (r->failed_step == SMP_UPDATE_STEP_UPLOAD && r->error == -EIO) {
                snprintf(msg, size, "update: upload: the device's flash does not match the file's SHA-256");
                return CTL_EXIT_TRANSPORT;
        }
        if (r->failed_step == SMP_UPDATE_STEP_WAIT_REBOOT && r->error == -ETIMEDOUT) {
                snprintf(msg, size, "update: %s: the device did not come back with a decision in time", step);
                return CTL_EXIT_TRANSPORT;
        }
        snprintf(msg, size, "update: %s: %s", step, ctl_errno_sentence(r->error, buf, sizeof(buf), ctx->conn));
        if (r->error == -EMSGSIZE || r->error == -ENOMEM)
                return CTL_EXIT_FAILURE;
        return CTL_EXIT_TRANSPORT;
}

static json_t *json_result(const struct ctl_context *ctx, const char *path, const struct update_run *run,
                           enum smp_update_mode mode, const char *message) {
        const struct smp_update_result *r = &run->result;
        json_t *upload = NULL;

        if (run->upload_started) {
                upload = ctl_json_upload_result(&r->upload, run->last.total);
                if (upload && r->upload.error)
                        (void) json_object_set_new(upload, "error", json_string(strerror(-r->upload.error)));
                if (upload)
                        (void) json_object_set_new(upload, "path_mtu", cmd_json_path_mtu(&r->upload));
        }
        json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:{s:s, s:o}, s:{s:o}, s:{s:o}, s:b, s:o, s:o, s:f}",
                              "file", path,
                              "mode", smp_update_mode_to_string(mode),
                              "outcome", smp_update_outcome_to_string(r->outcome),
                              "rejected", r->rejected,
                              "new", "version", r->new_version, "hash", ctl_json_hex(r->new_hash, 32),
                              "before", "images", ctl_json_slots(r->before.slots, r->before.n_slots),
                              "after", "images", ctl_json_slots(r->after.slots, r->after.n_slots),
                              "upload_skipped", r->upload_skipped,
                              "upload", upload ? upload : json_null(),
                              "reboot_sec", r->reboot_usec ? json_real((double) r->reboot_usec / 1e6) : json_null(),
                              "elapsed_sec", (double) r->elapsed_usec / 1e6);
        if (!o)
                return NULL;
        if (r->error < 0 &&
            (json_object_set_new(o, "error", json_string(message && *message ? message : strerror(-r->error))) < 0 ||
             json_object_set_new(o, "failed_step", json_string(smp_update_step_to_string(r->failed_step))) < 0)) {
                json_decref(o);
                return NULL;
        }
        if (run->status.set && json_object_set_new(o, "device_error", ctl_json_status(&run->status.status)) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

static void print_result(const char *path, const struct update_run *run, enum smp_update_mode mode) {
        const struct smp_update_result *r = &run->result;
        _cleanup_free_ char *hash = ctl_hex(r->new_hash, 32);

        printf("outcome:  %s%s\n", smp_update_outcome_to_string(r->outcome),
               r->rejected ? " (rejected: MCUboot erased the new image)" : "");
        printf("mode:     %s\n", smp_update_mode_to_string(mode));
        printf("image:    %s, version %s, hash %s\n", path, r->new_version, hash ?: "");
        const struct smp_update_slot *b = active_slot(&r->before), *a = active_slot(&r->after);
        if (b)
                printf("before:   %s running\n", b->version);
        ctl_print_slots(r->before.slots, r->before.n_slots, "  ");
        if (r->after.n_slots > 0) {
                if (a)
                        printf("after:    %s running%s\n", a->version, a->confirmed ? ", confirmed" : "");
                else
                        printf("after:\n");
                ctl_print_slots(r->after.slots, r->after.n_slots, "  ");
        }
        if (r->upload_skipped)
                printf("upload:   skipped (the secondary slot held the image)\n");
        else if (run->upload_started) {
                printf("upload:\n");
                cmd_print_upload_result(&r->upload, run->last.total, "  ");
        }
        if (r->reboot_usec)
                printf("reboot:   %.2f s\n", (double) r->reboot_usec / 1e6);
        printf("elapsed:  %.2f s\n", (double) r->elapsed_usec / 1e6);
}

int cmd_update(struct ctl_context *ctx, int argc, char *argv[]) {
        static const struct option options[] = {
                { "mode", required_argument, NULL, 'm' },
                { "erase", no_argument, NULL, 'E' },
                { "swap-timeout", required_argument, NULL, 'T' },
                { "path-mtu", required_argument, NULL, 'P' },
                {}
        };
        _cleanup_(ctl_device_close) struct ctl_device d = {};
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_(mcuboot_image_freep) struct mcuboot_image *img = NULL;
        struct update_opts o = { .mode = SMP_UPDATE_TEST_AND_CONFIRM };
        struct update_run run = { .ctx = ctx };
        struct smp_update *u = NULL;
        struct mcuboot_error error = {};
        char **args, message[512];
        size_t len = 0;
        int n, r;

        r = cmd_parse(ctx, &update_spec, argc, argv, options, "m:", update_option, &o, &args, &n);
        if (r != CTL_EXIT_OK)
                return r == CMD_HELP_SHOWN ? CTL_EXIT_OK : r;
        const char *path = args[0];
        r = ctl_read_file(ctx, path, MCUBOOT_IMAGE_FILE_MAX, &data, &len);
        if (r != CTL_EXIT_OK)
                return r;

        /* The checks MCUboot would make at boot, before bothering the device. */
        r = mcuboot_image_parse(data, len, &img, &error);
        if (r == -EBADMSG)
                return ctl_fail(ctx, CTL_EXIT_BAD_IMAGE, NULL, "'%s' is not a valid MCUboot image: %s", path,
                                error.message);
        if (r < 0)
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "cannot parse '%s': %s", path, strerror(-r));
        if (!img->sha256_tlv)
                return ctl_fail(ctx, CTL_EXIT_BAD_HASH, NULL,
                                "'%s' has no single SHA256 TLV: devices name images by it", path);
        if (img->hash_status != MCUBOOT_HASH_MATCH && img->hash_status != MCUBOOT_HASH_ENCRYPTED)
                return ctl_fail(ctx, CTL_EXIT_BAD_HASH, NULL, "'%s': image hash %s; MCUboot would refuse it", path,
                                mcuboot_hash_status_to_string(img->hash_status));

        r = ctl_device_open(ctx, &d);
        if (r != CTL_EXIT_OK)
                return r;
        run.tty = !ctx->json && isatty(STDOUT_FILENO);
        ctl_progress_init(&run.progress, ctx);
        const struct smp_update_params p = {
                .data = data,
                .len = len,
                .mode = o.mode,
                .erase_first = o.erase,
                .swap_timeout_usec = o.swap_timeout_usec,
                .window = ctx->window,
                .chunk = ctx->chunk,
                .path_mtu = o.path_mtu,
                .chunk_timeout_usec = ctx->timeout_usec,
                .erase_timeout_usec = ctx->erase_timeout_usec,
                .upload_progress = on_progress,
                .step = on_step,
                .done = on_done,
                .userdata = &run,
        };
        run.last.total = len;
        r = smp_update_start(d.session, &p, &u);
        if (r < 0)
                return ctl_fail(ctx, r == -EINVAL ? CTL_EXIT_BAD_IMAGE : ctl_exit_code_from_errno(r), NULL,
                                "update: %s", ctl_errno_sentence(r, message, sizeof(message), ctx->conn));
        r = ctl_device_wait(&d, &run.done);
        ctl_progress_end(&run.progress);
        if (r < 0) {
                smp_update_cancel(u);
                if (r == -EINTR)
                        return ctl_fail(ctx, 128 + d.signal, NULL,
                                        "update interrupted by %s; run again to go on (an upload resumes)",
                                        strsignal(d.signal));
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "event loop failed: %s", strerror(-r));
        }
        ctl_device_log_stats(&d);

        int code = update_exit_code(ctx, &run, message, sizeof(message));
        if (message[0])
                ctl_log("%s", message);
        if (ctx->json)
                return ctl_json_print_result(ctx, json_result(ctx, path, &run, o.mode, message), code);
        print_result(path, &run, o.mode);
        return code;
}
