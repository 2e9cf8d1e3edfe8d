/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hawkBit client's HTTP as a module of smpgwd's own: hawkbit-http.c
 * (libcurl's multi interface on the loop) is built as
 * smpgwd-hawkbit-http.so, linked to libcurl, and dlopen()ed only when
 * [hawkbit] is configured (hawkbit-http-module.c), so a gateway without
 * hawkBit maps neither libcurl nor the Kerberos, LDAP, SSH, RTMP and
 * HTTP/2 libraries it pulls in.  The module and smpgwd come from one
 * build: the descriptor carries the version, and is refused otherwise.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

/* The file, and where it is installed (beside the transport plugins);
 * smpgwd run from its build tree loads the build's first. */
#define HAWKBIT_HTTP_MODULE_FILE "smpgwd-hawkbit-http.so"
#define HAWKBIT_HTTP_MODULE_SYMBOL "smpgwd_hawkbit_http_module"

struct hawkbit_curl;    /* the module's client: one curl multi handle */
struct hawkbit_request; /* one transfer */

struct hawkbit_http_call {
        const char *method; /* "GET", "POST", "PUT" */
        const char *url;
        const char *json;        /* request body, NULL: none */
        const char *auth_header; /* NULL: none */
        int sink_fd;             /* >= 0: the response body is appended to it (downloads) */
        uint64_t range_from;     /* with sink_fd: Range: bytes=N- when > 0 */
        uint64_t sink_max;       /* with sink_fd: bytes it may reach in all */
        uint64_t timeout_usec;   /* whole request (JSON), or stall (downloads) */
};
/* error: 0, or a negative errno of the transfer (-ECONNREFUSED,
 * -ETIMEDOUT, -EFBIG past a cap, -EIO ...).  body is NUL-terminated
 * (JSON calls), "" for sinks.  The request is freed after the call. */
typedef void (*hawkbit_http_done_fn)(struct hawkbit_request *req, int error, long status, const char *body, size_t len,
                                     void *userdata);
/* The module's messages (LOG_DEBUG ...) into smpgwd's log. */
typedef void (*hawkbit_http_log_fn)(int level, const char *message);

struct hawkbit_http_module {
        const char *version; /* PACKAGE_VERSION of the build */
        size_t struct_size;  /* sizeof(struct hawkbit_http_module) of the build */
        int (*client_new)(sd_event *event, hawkbit_http_log_fn log, struct hawkbit_curl **ret);
        void (*client_free)(struct hawkbit_curl *c);
        int (*start)(struct hawkbit_curl *c, const struct hawkbit_http_call *call, hawkbit_http_done_fn done,
                     void *userdata, struct hawkbit_request **ret);
        /* Drops a request without its callback. */
        void (*cancel)(struct hawkbit_request *req);
        unsigned (*in_flight)(const struct hawkbit_curl *c);
};
