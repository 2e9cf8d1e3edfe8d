/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers of the commands that talk to a device (--conn URI): the global
 * options, one SMP session on an sd-event loop with synchronous-looking
 * calls, failure reporting (stderr, and a JSON object with --json), JSON
 * pieces and the upload progress bar.
 */
#pragma once

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "smpgw/smp-context.h"
#include "smpgw/smp-error.h"
#include "smpgw/smp-frame.h"
#include "smpgw/smp-session.h"
#include "smpgw/smp-update.h"
#include "smpgw/smp-upload.h"
#include "smpgwctl.h"

/* ---- global options ---- */

enum {
        CTL_ARG_WINDOW = 0x200,
        CTL_ARG_CHUNK,
        CTL_ARG_TIMEOUT,
        CTL_ARG_SMP_VERSION,
        CTL_ARG_ERASE,
};

/* struct option entries every device command (and main) accepts, one a
 * line (clang-format would join them). */
/* clang-format off */
#define CTL_GLOBAL_OPTIONS                                                   \
        { "conn", required_argument, NULL, 'c' },                           \
        { "json", no_argument, NULL, 'j' },                                 \
        { "verbose", no_argument, NULL, 'v' },                              \
        { "window", required_argument, NULL, CTL_ARG_WINDOW },              \
        { "chunk", required_argument, NULL, CTL_ARG_CHUNK },                \
        { "timeout", required_argument, NULL, CTL_ARG_TIMEOUT },            \
        { "erase-timeout", required_argument, NULL, CTL_ARG_ERASE },        \
        { "smp-version", required_argument, NULL, CTL_ARG_SMP_VERSION }
/* clang-format on */
#define CTL_GLOBAL_SHORTOPTS "c:jv"

/* Handles one getopt result if it is a global option: 1 handled, 0 not
 * ours, -1 bad value (message printed). */
int ctl_global_option(struct ctl_context *ctx, int c, const char *arg);

/* The "Options common to device commands" block of --help texts. */
void ctl_global_options_help(FILE *f);
void ctl_exit_codes_help(FILE *f);

/* ---- output ---- */

/* "smpgwctl: ..." on stderr. */
void ctl_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* --mode's value (enum smp_update_mode), or -EINVAL with the sentence
 * logged: a usage error (exit 2) of every command that takes it, checked
 * here rather than refused by smpgwd. */
int ctl_parse_update_mode(const char *arg);
/* Verbose-only message on stderr. */
void ctl_debug(const struct ctl_context *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reports a failure: "smpgwctl: <message>" on stderr, and with --json a
 * JSON object {"ok": false, "command", "conn", "error", "exit_code",
 * "device_error"?} on stdout.  status (may be NULL) is the device's error.
 * Returns exit_code. */
int ctl_fail(const struct ctl_context *ctx, int exit_code, const struct smp_status *status,
             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The exit code for a negative errno from the session or a procedure. */
int ctl_exit_code_from_errno(int error);
/* A sentence for a negative errno of a request to conn ("no answer ..."). */
const char *ctl_errno_sentence(int error, char *buf, size_t size, const char *conn);

/* {"name", "message", "group"?, "rc", "text"} of a device error. */
json_t *ctl_json_status(const struct smp_status *s);
/* Hex string of bytes (NULL on allocation failure). */
char *ctl_hex(const uint8_t *p, size_t n);
json_t *ctl_json_hex(const uint8_t *p, size_t n);
/* Adds "ok": true, "command" and "conn" to obj, prints it, steals it.
 * Returns CTL_EXIT_OK or CTL_EXIT_FAILURE. */
int ctl_json_print(const struct ctl_context *ctx, json_t *obj);
/* The same for a result that may be a failure: "ok" is exit_code == 0,
 * "exit_code" is added when not.  Returns exit_code (or
 * CTL_EXIT_FAILURE when printing failed). */
int ctl_json_print_result(const struct ctl_context *ctx, json_t *obj, int exit_code);

/* ---- one device session ---- */

struct ctl_device {
        const struct ctl_context *ctx;
        struct smp_context *smp;   /* plugins and their state */
        sd_event *event;
        struct smp_session *session;
        sd_event_source *sigint, *sigterm;
        int signal;                /* the signal that interrupted us, or 0 */
};

/* A libsmpgw context with $SMPGW_PLUGIN_DIR (when set) as its plugin
 * path, and lib's messages on stderr: warnings, and the debug lines of
 * the transports $SMPGW_DEBUG names ("ble,coap", or "1"/"all").  Returns
 * CTL_EXIT_OK, or an exit code after reporting why. */
int ctl_smp_context_new(const struct ctl_context *ctx, struct smp_context **ret);
/* The same without a word: a context with $SMPGW_PLUGIN_DIR's plugin
 * path and no log; -EINVAL for a path that is not one. */
int ctl_smp_context_open(struct smp_context **ret);

/* Opens the event loop and a session to ctx->conn with the options
 * applied.  A connection string libsmpgw refuses is a usage error (exit
 * 2, with its sentence); a missing or broken plugin a transport error.
 * Returns CTL_EXIT_OK, or an exit code after reporting why. */
int ctl_device_open(const struct ctl_context *ctx, struct ctl_device *ret);
void ctl_device_close(struct ctl_device *d);

/* Runs the loop until *done is true or SIGINT/SIGTERM arrives.  Returns 0,
 * -EINTR (d->signal says which) or a loop error. */
int ctl_device_wait(struct ctl_device *d, const bool *done);

/* The answer to one request; body is owned. */
struct ctl_answer {
        bool done;
        int error;                  /* 0, or negative errno from the session */
        struct smp_header hdr;
        uint8_t *body;
        size_t len;
};

void ctl_answer_done(struct ctl_answer *a);

/* Sends a request and waits for its answer.  Returns CTL_EXIT_OK when the
 * device answered and reported success (in a body ret keeps), else the
 * exit code after reporting: transport failures, interruption, and SMP
 * errors in the answer (name and sentence by smp_status_format()).  what
 * names the request in messages ("image list"). */
int ctl_device_call(struct ctl_device *d, const char *what, const struct smp_request_params *params,
                    struct ctl_answer *ret);
/* The same without reporting: 0 with ret filled, the session's negative
 * errno, -EINTR, -EBADMSG (undecodable status) or -EREMOTEIO (the device
 * reported an error; *ret_status then describes it and borrows ret's
 * body). */
int ctl_device_request(struct ctl_device *d, const struct smp_request_params *params,
                       struct ctl_answer *ret, struct smp_status *ret_status);

/* Reports an answer body the typed decoder refused (error is its errno):
 * -EREMOTEIO was handled by ctl_device_call(), so this is a garbled or
 * unexpected answer. */
int ctl_device_bad_answer(struct ctl_device *d, const char *what, int error);

/* Reports an interruption by a signal and returns its exit code (128+sig). */
int ctl_device_interrupted(struct ctl_device *d);

/* Prints session statistics on stderr with -v. */
void ctl_device_log_stats(struct ctl_device *d);

/* ---- files ---- */

/* Reads a whole file (at most max bytes).  Returns 0 or CTL_EXIT_FAILURE
 * after reporting. */
int ctl_read_file(const struct ctl_context *ctx, const char *path, size_t max, uint8_t **ret_data,
                  size_t *ret_len);

/* ---- image state ---- */

/* [{"image", "slot", "version", "hash", flags...}] for each slot. */
json_t *ctl_json_slots(const struct smp_update_slot *slots, size_t n);
/* One line per slot, each starting with indent. */
void ctl_print_slots(const struct smp_update_slot *slots, size_t n, const char *indent);

/* A device error kept beyond the answer it came in: rsn copied. */
struct ctl_saved_status {
        bool set;
        struct smp_status status;   /* rsn points into reason */
        char reason[128];
};

void ctl_status_save(struct ctl_saved_status *dst, const struct smp_status *src);

/* Upload figures as JSON ({"resumed_at", "rate", ...}). */
json_t *ctl_json_upload_result(const struct smp_upload_result *r, size_t total);

/* ---- progress bar ---- */

/* Upload progress on stdout, unless --json: on a terminal a bar redrawn
 * in place (bytes, per cent, rate, ETA, window); otherwise (a pipe, a log
 * file) a line each time another tenth of the upload is done, so a log
 * shows an upload moving without a line per chunk. */
struct ctl_progress {
        bool enabled;               /* the bar */
        bool lines;                 /* the lines */
        bool drawn;
        int tenths;                 /* the last tenth a line was written for */
        uint64_t last_usec;
};

void ctl_progress_init(struct ctl_progress *p, const struct ctl_context *ctx);
void ctl_progress_update(struct ctl_progress *p, const struct smp_upload_progress *pr);
/* Ends the bar's line (if one was drawn). */
void ctl_progress_end(struct ctl_progress *p);
/* Human-readable byte counts and rates: "204.8 KiB". */
void ctl_format_bytes(double bytes, char *buf, size_t size);
