/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Private to the REST API (rest*.c): the server object, one request's
 * state, the reply helpers every handler ends with, and the JSON forms of
 * the model's objects.
 *
 * Handler convention: a handler queues exactly one reply through a
 * rest_reply_*() helper and returns what that helper returned (0, or a
 * negative errno when MHD refused the reply).  Input checks that fail
 * queue their 4xx reply themselves and return -EINVAL (or -ENOENT), so
 * handlers simply propagate `if (r < 0) return r;`.  A handler that
 * returns without having replied gets a 500 "internal" reply naming the
 * error it returned.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* How REST writes JSON numbers that are not integers (progress, rate):
 * six significant digits, as smpgwctl prints the same values, so one
 * value has one spelling and no 17-digit float noise. */
#define REST_JSON_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(6))
#include <microhttpd.h>
#include <systemd/sd-event.h>

#include "manager.h"
#include "rest-body.h"
#include "rest-route.h"
#include "smpgwd-limits.h"
#include "util.h"

struct engine_error;

/* A client that lets this much undelivered event text pile up is dropped:
 * a dashboard that stopped reading must not make the daemon grow. */
#define REST_SSE_QUEUE_MAX (1024u * 1024u)
/* ... and all streams together hold at most this much: past it, a stream
 * that holds more than its share (REST_SSE_QUEUE_TOTAL_MAX / streams) is
 * dropped the same way.  300 clients that stopped reading once took
 * 352 MB. */
#define REST_SSE_QUEUE_TOTAL_MAX (16u * 1024u * 1024u)
/* What a stream may leave unacknowledged in its socket (SIOCOUTQ) before
 * it waits: the socket then always has room for the "overflow" event and
 * the end of the stream, so a client that stopped reading finds them when
 * it reads again, and the kernel holds little per client (SO_SNDBUF is
 * set to REST_SSE_SNDBUF). */
#define REST_SSE_SOCKET_QUEUE_MAX (16u * 1024u)
#define REST_SSE_SNDBUF (64 * 1024)
/* How often streams that wait for their socket to drain look again. */
#define REST_SSE_DRAIN_CHECK_USEC (100ull * 1000ull)
/* Suspended connections never time out in MHD and MHD does not watch
 * their sockets: rest-events.c watches each stream's socket for the client
 * hanging up, and a comment every 15 s finds the clients that vanished
 * without a FIN. */
#define REST_SSE_KEEPALIVE_USEC (15ull * 1000000ull)
/* A client has this long from its connection (or from the end of its
 * previous request on a kept-alive connection) to send complete request
 * headers; [rest] timeout, when shorter, wins.  MHD's own timeout is an
 * idle timeout: a client sending a byte every few seconds never hits it
 * and, 64 of them, would hold every connection. */
#define REST_HEADER_TIMEOUT_USEC (10ull * 1000000ull)
/* rest_busy(): a request answered this recently still counts as serving
 * (a keep-alive client's next request comes within microseconds). */
#define REST_BUSY_WINDOW_USEC (1000000ull)
/* A request body gets the same deadline for each of its pieces
 * (rest-loop.c), and the query string at most this many parameters: past
 * a few hundred, MHD 0.9.75 runs out of its per-connection memory and
 * neither answers nor closes. */
#define REST_QUERY_PARAMS_MAX 64u

struct rest_conn;
struct rest_sse;
struct rest_request;

typedef int (*rest_handler_fn)(struct rest_request *req);

struct rest {
        struct manager *manager;       /* borrowed: the manager owns us */
        struct MHD_Daemon *daemon;

        /* rest-loop.c: MHD on the loop */
        int epoll_fd, listen_fd;       /* MHD's, borrowed */
        int epoll_fdinfo_fd;           /* /proc/self/fdinfo/<epoll_fd>, owned; -1 without /proc */
        unsigned max_connections;
        uint64_t header_timeout_usec;
        size_t requests_in_flight;      /* rest_request objects alive, event streams too */
        uint64_t last_request_end_usec; /* CLOCK_MONOTONIC */
        sd_event_source *io_source;    /* MHD's epoll fd */
        sd_event_source *timer_source; /* MHD_get_timeout(), one shot */
        sd_event_source *run_defer;    /* one more MHD_run() at once: after a resume, a close */
        sd_event_source *header_timer; /* the oldest header deadline */
        struct rest_conn *awaiting_head, *awaiting_tail; /* waiting for request headers, by deadline */
        uint64_t header_timeouts;      /* clients cut off at the header deadline */
        uint64_t body_timeouts;        /* requests whose body stalled past the deadline */
        uint64_t refused_early;        /* answered on the socket: MHD could not (rest-loop.c) */
        struct rest_conn **hung_up;    /* clients that shut down their side, to be decided on */
        size_t n_hung_up;
        unsigned watchdog_failures;    /* consecutive checks that found MHD unable to accept */

        /* libmicrohttpd's messages, rate limited: a client can cause them */
        uint64_t mhd_log_window_usec;
        unsigned mhd_log_count, mhd_log_suppressed;

        sd_event_source *keepalive_timer;
        uint64_t started_usec;         /* CLOCK_MONOTONIC, for uptime */

        /* SHA-256 of every accepted token; auth is off unless tokens_file
         * is configured (then an empty file refuses every request). */
        bool auth_required;
        uint8_t (*token_digests)[32];
        size_t n_tokens;

        char *tls_cert_pem;            /* kept for the daemon's lifetime */
        char *tls_key_pem;

        struct rest_sse *sse_streams;  /* each owned by its MHD response */
        size_t n_sse_streams;
        size_t sse_queued;                /* undelivered event text of all streams */
        size_t sse_allocated;             /* the memory their queues hold */
        uint64_t sse_overflows;           /* streams dropped for falling behind */
        sd_event_source *sse_drain_timer; /* while a stream waits for its socket */
        uint64_t sse_last_event_id;
        bool observing;
        bool stopping;
};

enum rest_body_kind {
        REST_BODY_NONE,                /* read (bounded by max_body) and ignored */
        REST_BODY_JSON,                /* application/json, bounded by max_body, parsed before the handler */
        REST_BODY_IMAGE,               /* streamed into an image store temporary file */
};

struct rest_request {
        struct rest *rest;
        struct MHD_Connection *connection;
        const char *method;            /* "GET", ...; HEAD is routed as GET */
        bool head;                     /* it was HEAD: MHD sends no body */
        char *path_id;                 /* the {id} of the route, unescaped; NULL when none */
        rest_handler_fn handler;       /* NULL: a reply was queued at the headers already */
        enum rest_body_kind body_kind;

        /* REST_BODY_NONE / REST_BODY_JSON */
        char *body;
        size_t body_len, body_alloc;
        json_t *json;                  /* the parsed body (an object) */

        /* REST_BODY_IMAGE */
        int upload_fd;
        uint64_t upload_size;
        int upload_error;              /* a write to the temporary file failed */

        /* Past the limit, the rest of the body is read and dropped so the
         * client can read our 413 (MHD allows no reply while a body is
         * arriving); after `drained` exceeds as much again as the limit
         * (at least 1 MiB) the connection is simply closed. */
        bool body_too_large;
        uint64_t drained;

        uint64_t started_usec;         /* CLOCK_MONOTONIC: its request line read */
        bool begun;                    /* the access handler saw the headers */
        bool replied;
        bool queue_failed;
        unsigned status;

        /* The raw request target (before MHD unescapes it, when %00 would
         * cut a path short and reroute it) held a control character:
         * refused at the headers. */
        bool target_bad_path;
        char *target_bad_query;        /* the (raw) parameter name */
};

/* ---- rest.c: replies, lookups, query parameters ---- */

/* Takes ownership of body (which may be NULL: out of memory). */
int rest_reply_json(struct rest_request *req, unsigned status, json_t *body);
int rest_reply_error(struct rest_request *req, unsigned status, const char *code, const char *fmt, ...)
        _printf_(4, 5);
/* The one table from an errno to an HTTP status and error code. */
int rest_reply_errno(struct rest_request *req, int error, const char *fmt, ...) _printf_(3, 4);
/* An engine's refusal: its errno through that table, its sentence as it is. */
int rest_reply_engine_error(struct rest_request *req, const struct engine_error *e);
int rest_reply_no_content(struct rest_request *req);
/* Takes ownership of text (malloc'd). */
int rest_reply_text(struct rest_request *req, unsigned status, const char *content_type, char *text, size_t len);
/* Queues an already built response (SSE); takes over our reference. */
int rest_reply_response(struct rest_request *req, unsigned status, struct MHD_Response *response);

const char *rest_query(struct rest_request *req, const char *name);
/* ?limit= (default PAGE_LIMIT_DEFAULT, at most [rest] page_max) and
 * ?offset=: anything but a decimal number in range replies 400
 * invalid_field and returns -EINVAL. */
int rest_query_page(struct rest_request *req, unsigned *ret_limit, uint64_t *ret_offset);
int rest_query_uint(struct rest_request *req, const char *name, uint64_t default_value, uint64_t min,
                    uint64_t max, uint64_t *ret);
/* [rest] page_max. */
unsigned rest_page_max(const struct rest *r);

/* The object the path's {id} names (engine_device_find(), ...); they
 * reply 404 not_found (409 ambiguous for an image prefix) and return
 * negative when there is none. */
int rest_find_device(struct rest_request *req, struct device **ret);
int rest_find_image(struct rest_request *req, struct image **ret);
int rest_find_job(struct rest_request *req, struct job **ret);

/* ---- rest-json.c; the objects' forms in rest-device.c, rest-image.c, rest-job.c ---- */

/* RFC 3339 UTC with milliseconds ("2026-11-26T23:45:00.123Z"); JSON null for 0. */
json_t *rest_json_time(uint64_t realtime_usec);
/* NULL-safe string: JSON null for NULL. */
json_t *rest_json_string_or_null(const char *s);

json_t *rest_json_device(struct manager *m, const struct device *d);
/* A device's labels as a JSON array. */
json_t *rest_json_device_labels(const struct device *d);
/* The JSON form of one object of a list. */
typedef json_t *(*rest_json_form_fn)(struct manager *m, const void *object);
/* A JSON array of the objects' forms; NULL: out of memory. */
json_t *rest_json_array(struct manager *m, void *const *objects, size_t n, rest_json_form_fn form);
/* A page of a list: {key: items, total, limit, offset}; takes items (NULL:
 * out of memory). */
int rest_reply_page(struct rest_request *req, const char *key, json_t *items, uint64_t total, unsigned limit,
                    uint64_t offset);
json_t *rest_json_image(struct manager *m, const struct image *img);
json_t *rest_json_job(struct manager *m, const struct job *j);
struct distribution;
json_t *rest_json_distribution(struct manager *m, const struct distribution *d);
/* A mesh target's "mesh" object in the device form. */
json_t *rest_json_mesh_target(const struct device *d);

/* Replies a body's refusal (rest-body.c) as 400 with its code and
 * sentence; returns -EINVAL. */
int rest_reply_body_error(struct rest_request *req, const struct rest_body_error *e);

/* rest_body_check_fields() for a handler: replies the refusal (400
 * invalid_field naming the unknown field) and returns -EINVAL. */
int rest_json_check_fields(struct rest_request *req, json_t *object, const char *const *known);

/* ---- handlers ---- */

int rest_devices_list(struct rest_request *req);
int rest_devices_add(struct rest_request *req);
int rest_device_get(struct rest_request *req);
int rest_device_patch(struct rest_request *req);
int rest_device_probe(struct rest_request *req);
int rest_device_forget(struct rest_request *req);
int rest_device_history(struct rest_request *req);
int rest_device_labels_get(struct rest_request *req);
int rest_device_labels_put(struct rest_request *req);

int rest_images_list(struct rest_request *req);
int rest_image_upload(struct rest_request *req);
int rest_image_get(struct rest_request *req);
int rest_image_delete(struct rest_request *req);
int rest_image_patch(struct rest_request *req);
/* Upload streaming (rest-image.c): at the headers, then per chunk.  Both
 * reply themselves (400 for a bad ?boards=, 413, 500) and return
 * negative when they did. */
int rest_image_upload_begin(struct rest_request *req);
int rest_image_upload_chunk(struct rest_request *req, const char *data, size_t size);

int rest_jobs_list(struct rest_request *req);
int rest_jobs_create(struct rest_request *req);
int rest_job_get(struct rest_request *req);
int rest_job_cancel(struct rest_request *req);
int rest_job_activate(struct rest_request *req);

int rest_rollouts_list(struct rest_request *req);
int rest_rollouts_create(struct rest_request *req);
int rest_rollouts_plan(struct rest_request *req);
int rest_rollout_get(struct rest_request *req);
int rest_rollout_members(struct rest_request *req);
int rest_rollout_pause(struct rest_request *req);
int rest_rollout_resume(struct rest_request *req);
int rest_rollout_cancel(struct rest_request *req);
int rest_rollout_activate(struct rest_request *req);
int rest_rollout_replan(struct rest_request *req);

int rest_distributions_list(struct rest_request *req);
int rest_distributions_create(struct rest_request *req);
int rest_distribution_get(struct rest_request *req);
int rest_distribution_cancel(struct rest_request *req);
int rest_distribution_suspend(struct rest_request *req);
int rest_distribution_resume(struct rest_request *req);
int rest_distribution_apply(struct rest_request *req);

int rest_events_stream(struct rest_request *req);
int rest_events_start(struct rest *r);
/* Ends every stream (resuming the suspended ones) ahead of MHD_stop_daemon(). */
void rest_events_stop(struct rest *r);

int rest_metrics(struct rest_request *req);

/* ---- rest-loop.c: libmicrohttpd on the sd-event loop ---- */

/* After MHD_start_daemon(): watches MHD's epoll fd, its timeout, the
 * header deadlines. */
int rest_loop_start(struct rest *r);
void rest_loop_stop(struct rest *r);
/* Runs MHD_run() from a defer source, at once but not from inside an MHD
 * callback: MHD_resume_connection() alone wakes nothing in external
 * polling mode. */
void rest_run_soon(struct rest *r);
/* MHD_OPTION_NOTIFY_CONNECTION. */
void rest_on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                        enum MHD_ConnectionNotificationCode code);
/* The headers of a request are in / the request is over (the connection
 * waits for its next request, under a fresh header deadline). */
void rest_conn_request_begins(struct MHD_Connection *connection);
/* The request line is in (a request is under way on the connection). */
void rest_conn_request_line(struct MHD_Connection *connection);
void rest_conn_request_ends(struct MHD_Connection *connection);
/* A piece of the body arrived: the body deadline starts again. */
void rest_conn_body_progress(struct MHD_Connection *connection);
/* A reply is queued: from here MHD alone writes to the socket. */
void rest_conn_replying(struct MHD_Connection *connection);
/* Answers status on the socket itself and shuts it down, for what MHD
 * hides from the access handler; only before a reply was queued. */
void rest_conn_refuse(struct MHD_Connection *connection, unsigned status, const char *reason, const char *code,
                      const char *message);
bool rest_conn_refused(struct MHD_Connection *connection);
/* Stops watching the socket (an fd has one watch in the loop): an event
 * stream watches it itself. */
void rest_conn_unwatch(struct MHD_Connection *connection);
