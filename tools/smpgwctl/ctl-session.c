/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared pieces of the device commands: global options, the session
 * runner, failure reporting, JSON helpers and the progress bar.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "ctl-session.h"
#include "smpgw/smp-context.h"
#include "smpgw/smp-parse.h"
#include "smpgw/smp-update.h"
#include "util.h"

/* ---- global options ---- */

/* A request timeout in milliseconds, as the session takes them. */
static int parse_timeout(const char *option, const char *arg, uint64_t *ret_usec) {
        uint64_t v;
        if (smp_parse_uint(arg, 1, SMP_SESSION_TIMEOUT_MAX_USEC / 1000, &v) < 0) {
                ctl_log("%s wants milliseconds from 1 to %u, not '%s'", option, SMP_SESSION_TIMEOUT_MAX_USEC / 1000,
                        arg);
                return -1;
        }
        *ret_usec = v * 1000;
        return 1;
}

int ctl_global_option(struct ctl_context *ctx, int c, const char *arg) {
        uint64_t v;

        switch (c) {
        case 'c':
                ctx->conn = arg;
                return 1;
        case 'j':
                ctx->json = true;
                return 1;
        case 'v':
                ctx->verbose++;
                return 1;
        case CTL_ARG_WINDOW:
                if (smp_parse_uint(arg, 1, SMP_UPLOAD_WINDOW_MAX, &v) < 0) {
                        ctl_log("--window wants a number of chunks from 1 to %u, not '%s'",
                                SMP_UPLOAD_WINDOW_MAX, arg);
                        return -1;
                }
                ctx->window = (unsigned) v;
                return 1;
        case CTL_ARG_CHUNK:
                if (smp_parse_uint(arg, 1, 65535, &v) < 0) {
                        ctl_log("--chunk wants a number of bytes from 1 to 65535, not '%s'", arg);
                        return -1;
                }
                ctx->chunk = (size_t) v;
                return 1;
        case CTL_ARG_TIMEOUT:
                return parse_timeout("--timeout", arg, &ctx->timeout_usec);
        case CTL_ARG_ERASE:
                return parse_timeout("--erase-timeout", arg, &ctx->erase_timeout_usec);
        case CTL_ARG_SMP_VERSION:
                if (!streq(arg, "1") && !streq(arg, "2")) {
                        ctl_log("--smp-version wants 1 or 2, not '%s'", arg);
                        return -1;
                }
                ctx->smp_version = arg[0] == '1' ? 1 : 2;
                return 1;
        }
        return 0;
}

void ctl_global_options_help(FILE *f) {
        fprintf(f, "Device options (before or after the command):\n"
                   "  -c, --conn URI        the device: udp:HOST:PORT[,mtu=N],\n"
                   "                        coap:HOST[:PORT][,mtu=N], serial:/dev/PATH[,baud=N],\n"
                   "                        ble:ADDR[,adapter=hciN][,mode=acquire|notify]\n"
                   "                        [,connect-timeout=MS][,resolve-timeout=MS]\n"
                   "                        [,max-connections=N] (IPv6: udp:[::1]:1337)\n"
                   "  -j, --json            print one JSON object on stdout\n"
                   "      --timeout MS      time to wait for each answer (default 2000; upload\n"
                   "                        chunks: from the measured round trip, first chunk 40 s)\n"
                   "      --erase-timeout MS\n"
                   "                        time to wait for a slot erase: the first upload\n"
                   "                        chunk's answer (default 40000, or --timeout if\n"
                   "                        longer) and image erase (default 60000)\n"
                   "      --smp-version N   1 or 2: SMP version to start with (default 2; falls\n"
                   "                        back to 1 when the device answers with version 1)\n"
                   "      --window N        upload chunks in flight (default: device buf_count - 1)\n"
                   "      --chunk N         upload data bytes per chunk at most (default: as many\n"
                   "                        as the device's buffer and the link take)\n"
                   "  -v, --verbose         session statistics and steps on stderr\n");
}

void ctl_exit_codes_help(FILE *f) {
        fprintf(f,
                "Exit codes:\n"
                "  0  success\n"
                "  1  failure on this side (file unreadable, out of memory, ...)\n"
                "  2  usage error\n"
                "  3  not a well-formed MCUboot image\n"
                "  4  the image's hash TLV is missing, duplicated or wrong\n"
                "  6  transport: cannot open the link, no answer in time, link lost,\n"
                "     answers that cannot be decoded\n"
                "  7  the device answered with an SMP error (its name and sentence are printed)\n"
                "  8  update: reverted (MCUboot went back to the old image, or rejected the new)\n"
                "  9  update: stuck (the device is in a state no step should leave)\n"
                "  130/143  interrupted by SIGINT/SIGTERM (an upload resumes when run again)\n");
}

/* ---- output ---- */

void ctl_log(const char *fmt, ...) {
        va_list ap;
        fputs("smpgwctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

int ctl_parse_update_mode(const char *arg) {
        int mode = smp_update_mode_from_string(arg);
        if (mode < 0) {
                ctl_log("unknown --mode '%s': test-and-confirm, confirm-only, test-only or upload-only", arg);
                return -EINVAL;
        }
        return mode;
}

void ctl_debug(const struct ctl_context *ctx, const char *fmt, ...) {
        va_list ap;
        if (!ctx->verbose)
                return;
        fputs("smpgwctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

char *ctl_hex(const uint8_t *p, size_t n) {
        char *s = malloc(2 * n + 1);
        if (s)
                hex_encode(p, n, s);
        return s;
}

json_t *ctl_json_hex(const uint8_t *p, size_t n) {
        _cleanup_free_ char *s = ctl_hex(p, n);
        return s ? json_string(s) : NULL;
}

json_t *ctl_json_status(const struct smp_status *s) {
        char text[256];
        const char *name, *message;
        bool group_err = s->has_err && s->err_rc != 0;

        (void) smp_status_format(s, text, sizeof(text));
        if (group_err) {
                name = smp_group_err_name(s->err_group, s->err_rc);
                message = smp_group_err_message(s->err_group, s->err_rc);
        } else {
                name = smp_mgmt_err_name(s->rc);
                message = smp_mgmt_err_message(s->rc);
        }
        json_t *o = json_pack("{s:o, s:o, s:o, s:I, s:s}",
                              "name", name ? json_string(name) : json_null(),
                              "message", message ? json_string(message) : json_null(),
                              "group", group_err ? json_integer((json_int_t) s->err_group) : json_null(),
                              "rc", (json_int_t) (group_err ? (int64_t) s->err_rc : s->rc),
                              "text", text);
        if (o && smp_cbor_slice_present(s->rsn))
                (void) json_object_set_new(o, "reason",
                                           json_stringn((const char *) s->rsn.ptr, s->rsn.len));
        return o;
}

static int json_dump_stdout(json_t *o) {
        if (json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) < 0)
                return -EIO;
        putchar('\n');
        return fflush(stdout) == 0 ? 0 : -EIO;
}

int ctl_json_print(const struct ctl_context *ctx, json_t *obj) {
        return ctl_json_print_result(ctx, obj, CTL_EXIT_OK);
}

int ctl_json_print_result(const struct ctl_context *ctx, json_t *obj, int exit_code) {
        _cleanup_(json_decrefp) json_t *o = obj;
        if (!o) {
                ctl_log("out of memory");
                return CTL_EXIT_FAILURE;
        }
        if (json_object_set_new(o, "ok", json_boolean(exit_code == CTL_EXIT_OK)) < 0 ||
            (exit_code != CTL_EXIT_OK && json_object_set_new(o, "exit_code", json_integer(exit_code)) < 0) ||
            json_object_set_new(o, "command", ctx->command ? json_string(ctx->command) : json_null()) < 0 ||
            json_object_set_new(o, "conn", ctx->conn ? json_string(ctx->conn) : json_null()) < 0 ||
            json_dump_stdout(o) < 0) {
                ctl_log("cannot write JSON output");
                return CTL_EXIT_FAILURE;
        }
        return exit_code;
}

int ctl_fail(const struct ctl_context *ctx, int exit_code, const struct smp_status *status,
             const char *fmt, ...) {
        char message[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);
        fprintf(stderr, "smpgwctl: %s\n", message);

        if (ctx->json) {
                _cleanup_(json_decrefp) json_t *o = json_pack(
                        "{s:b, s:o, s:o, s:s, s:i}", "ok", false,
                        "command", ctx->command ? json_string(ctx->command) : json_null(),
                        "conn", ctx->conn ? json_string(ctx->conn) : json_null(),
                        "error", message, "exit_code", exit_code);
                if (o && status)
                        (void) json_object_set_new(o, "device_error", ctl_json_status(status));
                if (o)
                        (void) json_dump_stdout(o);
        }
        return exit_code;
}

int ctl_exit_code_from_errno(int error) {
        switch (error) {
        case 0:
                return CTL_EXIT_OK;
        case -EREMOTEIO:
                return CTL_EXIT_DEVICE;
        case -ETIMEDOUT:
        case -ECONNRESET:
        case -ECONNREFUSED:
        case -ENOTCONN:
        case -EHOSTUNREACH:
        case -ENETUNREACH:
        case -ENETDOWN:
        case -EPIPE:
        case -EBADMSG:
        case -EPROTO:
        case -EIO:
                return CTL_EXIT_TRANSPORT;
        default:
                return CTL_EXIT_FAILURE;
        }
}

const char *ctl_errno_sentence(int error, char *buf, size_t size, const char *conn) {
        switch (error) {
        case -ETIMEDOUT:
                snprintf(buf, size, "no answer from '%s' (timed out)", conn);
                break;
        case -ECONNRESET:
                snprintf(buf, size, "the link to '%s' went down", conn);
                break;
        case -ENOTCONN:
                snprintf(buf, size, "no link to '%s'", conn);
                break;
        case -EBADMSG:
                snprintf(buf, size, "'%s' answered something that cannot be decoded", conn);
                break;
        case -EPROTO:
                snprintf(buf, size, "'%s' did not make progress (gave up after repeated failures)", conn);
                break;
        case -EMSGSIZE:
                snprintf(buf, size, "the request is larger than the link to '%s' or the device's buffer takes",
                         conn);
                break;
        default:
                snprintf(buf, size, "'%s': %s", conn, strerror(-error));
        }
        return buf;
}

/* ---- one device session ---- */

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct ctl_device *d = userdata;
        d->signal = (int) si->ssi_signo;
        return 0;
}

/* $SMPGW_DEBUG: "1" or "all", or transport names ("ble,coap"): their
 * debug lines on stderr. */
static bool debug_wanted(const char *source) {
        const char *e = secure_getenv("SMPGW_DEBUG");
        if (!e || !*e)
                return false;
        if (streq(e, "1") || streq(e, "all"))
                return true;
        size_t n = strlen(source);
        for (const char *p = strstr(e, source); p; p = strstr(p + 1, source))
                if ((p == e || !isalnum((unsigned char) p[-1])) && !isalnum((unsigned char) p[n]))
                        return true;
        return false;
}

static void on_lib_log(int level, const char *source, const char *message, void *userdata) {
        if (level >= SMP_LOG_DEBUG && !debug_wanted(source))
                return;
        fprintf(stderr, "smpgwctl: %s: %s\n", source, message);
}

int ctl_smp_context_open(struct smp_context **ret) {
        struct smp_context *smp;
        const char *path = secure_getenv("SMPGW_PLUGIN_DIR");
        int r;

        r = smp_context_new(&smp);
        if (r < 0)
                return r;
        if (path && *path) {
                r = smp_context_set_plugin_path(smp, path);
                if (r < 0) {
                        smp_context_unref(smp);
                        return -EINVAL;
                }
        }
        *ret = smp;
        return 0;
}

int ctl_smp_context_new(const struct ctl_context *ctx, struct smp_context **ret) {
        struct smp_context *smp;
        int r;

        r = ctl_smp_context_open(&smp);
        if (r == -EINVAL) {
                ctl_log("$SMPGW_PLUGIN_DIR must be absolute directories separated by ':', not '%s'",
                        secure_getenv("SMPGW_PLUGIN_DIR"));
                return CTL_EXIT_USAGE;
        }
        if (r < 0)
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "cannot set up libsmpgw: %s", strerror(-r));
        smp_context_set_log(smp, secure_getenv("SMPGW_DEBUG") ? SMP_LOG_DEBUG : SMP_LOG_WARNING, on_lib_log, NULL);
        *ret = smp;
        return CTL_EXIT_OK;
}

int ctl_device_open(const struct ctl_context *ctx, struct ctl_device *ret) {
        _cleanup_free_ char *why = NULL;
        struct smp_conn *conn = NULL;
        int r;

        *ret = (struct ctl_device) { .ctx = ctx };
        if (!ctx->conn) {
                ctl_log("'%s' talks to a device: give it with --conn URI (e.g. udp:192.0.2.1:1337)",
                        ctx->command);
                return CTL_EXIT_USAGE;
        }
        r = ctl_smp_context_new(ctx, &ret->smp);
        if (r != CTL_EXIT_OK)
                return r;
        r = smp_context_parse_conn(ret->smp, ctx->conn, &conn, &why);
        if (r == -EINVAL) {
                ctl_device_close(ret);
                ctl_log("bad connection string: %s", why ? why : "not valid");
                return CTL_EXIT_USAGE;
        }
        if (r < 0) {
                ctl_device_close(ret);
                return ctl_fail(ctx, CTL_EXIT_TRANSPORT, NULL, "%s", why ? why : strerror(-r));
        }

        r = sd_event_new(&ret->event);
        if (r < 0) {
                smp_conn_unref(conn);
                ctl_device_close(ret);
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "cannot create an event loop: %s", strerror(-r));
        }
        /* SIGINT/SIGTERM stop the wait, so commands can clean up (an
         * upload leaves the device's state for a resume). */
        if (sd_event_add_signal(ret->event, &ret->sigint, SIGINT | SD_EVENT_SIGNAL_PROCMASK, on_signal, ret) < 0 ||
            sd_event_add_signal(ret->event, &ret->sigterm, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, on_signal, ret) < 0)
                ctl_debug(ctx, "cannot watch SIGINT/SIGTERM, ignoring");

        r = smp_session_open_conn(ret->event, conn, &ret->session);
        smp_conn_unref(conn);
        if (r < 0) {
                ctl_device_close(ret);
                return ctl_fail(ctx, CTL_EXIT_TRANSPORT, NULL, "cannot open '%s': %s", ctx->conn, strerror(-r));
        }
        if (ctx->timeout_usec)
                smp_session_set_timeout(ret->session, ctx->timeout_usec);
        if (ctx->smp_version)
                smp_session_set_version(ret->session, ctx->smp_version == 1 ? SMP_VERSION_1 : SMP_VERSION_2);
        ctl_debug(ctx, "opened '%s'", ctx->conn);
        return CTL_EXIT_OK;
}

void ctl_device_close(struct ctl_device *d) {
        d->session = smp_session_free(d->session);
        d->sigint = sd_event_source_disable_unref(d->sigint);
        d->sigterm = sd_event_source_disable_unref(d->sigterm);
        d->event = sd_event_unref(d->event);
        /* Last: the session's transport state lives in it. */
        d->smp = smp_context_unref(d->smp);
}

int ctl_device_wait(struct ctl_device *d, const bool *done) {
        while (!*done) {
                if (d->signal)
                        return -EINTR;
                int r = sd_event_run(d->event, UINT64_MAX);
                if (r < 0)
                        return r;
        }
        return 0;
}

int ctl_device_interrupted(struct ctl_device *d) {
        return ctl_fail(d->ctx, 128 + d->signal, NULL, "interrupted by %s", strsignal(d->signal));
}

void ctl_device_log_stats(struct ctl_device *d) {
        struct smp_session_stats st;
        if (!d->ctx->verbose || !d->session)
                return;
        smp_session_get_stats(d->session, &st);
        ctl_log("session: %" PRIu64 " requests, %" PRIu64 " answers, %" PRIu64 " timeouts, %" PRIu64
                " retransmits, %" PRIu64 " ignored answers, %" PRIu64 " B out, %" PRIu64
                " B in, srtt %.1f ms, SMP version %d",
                st.requests, st.answers, st.timeouts, st.retransmits, st.ignored_answers, st.tx_bytes,
                st.rx_bytes, (double) st.srtt_usec / 1000.0,
                smp_session_get_version(d->session) == SMP_VERSION_1 ? 1 : 2);
}

void ctl_answer_done(struct ctl_answer *a) {
        free(a->body);
        a->body = NULL;
}

static void on_answer(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                      size_t len, void *userdata) {
        struct ctl_answer *a = userdata;

        a->done = true;
        a->error = error;
        if (error < 0)
                return;
        a->hdr = *hdr;
        a->body = malloc(MAX(len, (size_t) 1));
        if (!a->body) {
                a->error = -ENOMEM;
                return;
        }
        if (len)
                memcpy(a->body, body, len);
        a->len = len;
}

int ctl_device_request(struct ctl_device *d, const struct smp_request_params *params,
                       struct ctl_answer *ret, struct smp_status *ret_status) {
        struct smp_request *req = NULL;
        int r;

        *ret = (struct ctl_answer) {};
        r = smp_session_send(d->session, params, on_answer, ret, &req);
        if (r < 0)
                return r;
        r = ctl_device_wait(d, &ret->done);
        if (r < 0) {
                if (!ret->done)
                        smp_request_cancel(req);
                ctl_answer_done(ret);
                return r;
        }
        if (ret->error < 0)
                return ret->error;
        r = smp_status_decode(ret->body, ret->len, ret_status, NULL);
        if (r < 0)
                return -EBADMSG;
        return smp_status_failed(ret_status) ? -EREMOTEIO : 0;
}

int ctl_device_call(struct ctl_device *d, const char *what, const struct smp_request_params *params,
                    struct ctl_answer *ret) {
        const struct ctl_context *ctx = d->ctx;
        struct smp_status st;
        char buf[256];
        int r, code;

        r = ctl_device_request(d, params, ret, &st);
        switch (r) {
        case 0:
                return CTL_EXIT_OK;
        case -EINTR:
                return ctl_device_interrupted(d);
        case -EREMOTEIO:
                (void) smp_status_format(&st, buf, sizeof(buf));
                code = ctl_fail(ctx, CTL_EXIT_DEVICE, &st, "%s: the device refused: %s", what, buf);
                ctl_answer_done(ret);
                return code;
        case -EBADMSG:
                ctl_answer_done(ret);
                return ctl_device_bad_answer(d, what, -EBADMSG);
        default:
                ctl_answer_done(ret);
                /* anything else the session reports is the link's */
                code = r == -EMSGSIZE || r == -ENOMEM ? CTL_EXIT_FAILURE : CTL_EXIT_TRANSPORT;
                return ctl_fail(ctx, code, NULL, "%s: %s", what,
                                ctl_errno_sentence(r, buf, sizeof(buf), ctx->conn));
        }
}

int ctl_device_bad_answer(struct ctl_device *d, const char *what, int error) {
        char buf[256];
        return ctl_fail(d->ctx, CTL_EXIT_TRANSPORT, NULL, "%s: %s (%s)", what,
                        ctl_errno_sentence(-EBADMSG, buf, sizeof(buf), d->ctx->conn), strerror(-error));
}

void ctl_status_save(struct ctl_saved_status *dst, const struct smp_status *src) {
        *dst = (struct ctl_saved_status) { .set = true, .status = *src };
        dst->status.rsn = (struct smp_cbor_slice) {};
        if (smp_cbor_slice_present(src->rsn)) {
                size_t n = MIN(src->rsn.len, sizeof(dst->reason));
                memcpy(dst->reason, src->rsn.ptr, n);
                dst->status.rsn = smp_cbor_slice_make(dst->reason, n);
        }
}

/* ---- files ---- */

int ctl_read_file(const struct ctl_context *ctx, const char *path, size_t max, uint8_t **ret_data,
                  size_t *ret_len) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        _cleanup_free_ uint8_t *data = NULL;
        size_t len = 0, cap = 0;

        if (!f)
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "cannot read '%s': %m", path);
        for (;;) {
                if (len == cap) {
                        if (cap > max)
                                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "'%s' is larger than %zu bytes",
                                                path, max);
                        size_t ncap = cap ? 2 * cap : 64 * 1024;
                        uint8_t *p = realloc(data, ncap);
                        if (!p)
                                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
                        data = p;
                        cap = ncap;
                }
                size_t n = fread(data + len, 1, cap - len, f);
                len += n;
                if (n == 0)
                        break;
        }
        if (ferror(f))
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "cannot read '%s'", path);
        if (len > max)
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "'%s' is larger than %zu bytes", path, max);
        if (len == 0)
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "'%s' is empty", path);
        *ret_data = TAKE_PTR(data);
        *ret_len = len;
        return CTL_EXIT_OK;
}

/* ---- image state ---- */

json_t *ctl_json_slots(const struct smp_update_slot *slots, size_t n) {
        json_t *a = json_array();
        if (!a)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                const struct smp_update_slot *sl = &slots[i];
                if (json_array_append_new(a, json_pack("{s:I, s:I, s:s, s:o, s:b, s:b, s:b, s:b, s:b}",
                                                       "image", (json_int_t) sl->image,
                                                       "slot", (json_int_t) sl->slot,
                                                       "version", sl->version,
                                                       "hash", ctl_json_hex(sl->hash, sl->hash_len),
                                                       "bootable", sl->bootable, "pending", sl->pending,
                                                       "confirmed", sl->confirmed, "active", sl->active,
                                                       "permanent", sl->permanent)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        }
        return a;
}

void ctl_print_slots(const struct smp_update_slot *slots, size_t n, const char *indent) {
        if (n == 0)
                printf("%s(no images)\n", indent);
        for (size_t i = 0; i < n; i++) {
                const struct smp_update_slot *sl = &slots[i];
                _cleanup_free_ char *hash = ctl_hex(sl->hash, sl->hash_len);
                printf("%simage %" PRIu32 " slot %" PRIu32 ": %-12s %s%s%s%s%s%s\n", indent, sl->image,
                       sl->slot, sl->version[0] ? sl->version : "-", hash ? hash : "",
                       sl->active ? " active" : "", sl->confirmed ? " confirmed" : "",
                       sl->pending ? " pending" : "", sl->permanent ? " permanent" : "",
                       sl->bootable ? " bootable" : "");
        }
}

json_t *ctl_json_upload_result(const struct smp_upload_result *r, size_t total) {
        return json_pack("{s:I, s:I, s:f, s:f, s:I, s:i, s:I, s:I, s:I, s:o}",
                         "size", (json_int_t) total,
                         "resumed_at", (json_int_t) r->resumed_at,
                         "elapsed_sec", (double) r->elapsed_usec / 1e6,
                         "rate", r->rate,
                         "retransmits", (json_int_t) r->retransmits,
                         "window_max", (int) r->window_max,
                         "chunk", (json_int_t) r->chunk,
                         "buf_size", (json_int_t) r->buf_size,
                         "buf_count", (json_int_t) r->buf_count,
                         "match", r->has_match ? json_boolean(r->match) : json_null());
}

/* ---- progress bar ---- */

#define PROGRESS_REDRAW_USEC (100u * 1000u)

static uint64_t monotonic_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

void ctl_format_bytes(double bytes, char *buf, size_t size) {
        if (bytes < 1024)
                snprintf(buf, size, "%.0f B", bytes);
        else if (bytes < 1024 * 1024)
                snprintf(buf, size, "%.1f KiB", bytes / 1024);
        else
                snprintf(buf, size, "%.2f MiB", bytes / (1024 * 1024));
}

void ctl_progress_init(struct ctl_progress *p, const struct ctl_context *ctx) {
        bool tty = isatty(STDOUT_FILENO);
        *p = (struct ctl_progress) { .enabled = !ctx->json && tty, .lines = !ctx->json && !tty };
}

static void progress_line(struct ctl_progress *p, const struct smp_upload_progress *pr) {
        char done[32], total[32], rate[32];
        int tenths = pr->total ? (int) (pr->offset * 10 / pr->total) : 0;

        if (tenths <= p->tenths)
                return;
        p->tenths = tenths;
        ctl_format_bytes((double) pr->offset, done, sizeof(done));
        ctl_format_bytes((double) pr->total, total, sizeof(total));
        ctl_format_bytes(pr->rate, rate, sizeof(rate));
        printf("upload: %3d%% %s/%s %s/s\n", (int) (pr->offset * 100 / pr->total), done, total, rate);
        fflush(stdout);
}

void ctl_progress_update(struct ctl_progress *p, const struct smp_upload_progress *pr) {
        if (p->lines)
                progress_line(p, pr);
        if (!p->enabled)
                return;
        uint64_t now = monotonic_usec();
        bool last = pr->offset >= pr->total;
        if (p->drawn && !last && now - p->last_usec < PROGRESS_REDRAW_USEC)
                return;
        p->last_usec = now;

        struct winsize ws;
        int cols = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
        char done[32], total[32], rate[32], eta[32], text[160];
        ctl_format_bytes((double) pr->offset, done, sizeof(done));
        ctl_format_bytes((double) pr->total, total, sizeof(total));
        ctl_format_bytes(pr->rate, rate, sizeof(rate));
        if (pr->eta_sec >= 0 && pr->eta_sec < 360000)
                snprintf(eta, sizeof(eta), "%d:%02d", (int) pr->eta_sec / 60, (int) pr->eta_sec % 60);
        else
                snprintf(eta, sizeof(eta), "-:--");
        double frac = pr->total ? (double) pr->offset / (double) pr->total : 0;
        int n = snprintf(text, sizeof(text), " %3d%% %s/%s %s/s ETA %s w%u", (int) (frac * 100), done, total,
                         rate, eta, pr->window);
        int width = cols - 3 - n;
        printf("\r");
        if (width >= 10) {
                width = MIN(width, 50);
                int fill = (int) (frac * width);
                putchar('[');
                for (int i = 0; i < width; i++)
                        putchar(i < fill ? '#' : i == fill ? '>' : '.');
                putchar(']');
        }
        printf("%s\033[K", text);
        fflush(stdout);
        p->drawn = true;
}

void ctl_progress_end(struct ctl_progress *p) {
        if (p->drawn) {
                putchar('\n');
                fflush(stdout);
        }
        p->drawn = false;
}
