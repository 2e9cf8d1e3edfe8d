/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * GET /api/v1/events: the manager's events as Server-Sent Events.
 *
 * Each stream is an MHD callback response with a bounded text queue.  The
 * reader hands out what is queued; with nothing queued it suspends the
 * connection (legal only from the reader or the access handler) and
 * returns 0, and the next event resumes it and has MHD run at once
 * (rest_run_soon(): a resume alone wakes nothing in external polling
 * mode).  MHD takes a suspended connection out of its epoll set and does
 * not see the client go away, so each stream watches its own socket for
 * the client hanging up and then ends; a keepalive comment every 15 s
 * makes the write fail for clients that vanished without a FIN.  A client
 * that stops reading fills its queue and is dropped after an "overflow"
 * event instead of growing us.
 *
 * So that such a client does get the "overflow" event (when it reads
 * again) and is dropped at once, a stream never fills its socket: it
 * hands MHD more only while the socket holds less than
 * REST_SSE_SOCKET_QUEUE_MAX unacknowledged bytes, and otherwise waits
 * (suspended; a shared timer looks again every 100 ms, as EPOLLOUT would
 * say "writable" long before then).  The overflow event then always fits,
 * and once it is in the socket the reader ends the response with an
 * error, so MHD closes the connection.
 *
 * Ownership: a stream belongs to its MHD response; MHD frees it through
 * sse_free() when the response is done with, before it closes the socket.
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distribution.h"
#include "log.h"
#include "rest-internal.h"
#include "rollout.h"

struct rest_sse {
        struct rest *rest;
        struct rest_sse *prev, *next;
        struct MHD_Connection *connection;
        sd_event_source *hangup_source; /* the client's socket, EPOLLRDHUP */
        int fd;                         /* the client's socket (MHD's, borrowed) */
        char *buf;                     /* queued text is buf[start, start + len) */
        size_t start, len, alloc;
        unsigned types;                /* bit per enum manager_event_type */
        bool suspended;                /* by us, so only then resumed */
        bool ending;                   /* overflow or shutdown: send what is queued, then end */
        bool draining;                 /* suspended until its socket drains */
        bool overflowed;               /* dropped for falling behind */
        bool client_gone;              /* hung up: end without sending */
};

static const char *const event_names[_MANAGER_EVENT_MAX] = {
        [MANAGER_EVENT_DEVICE_ADDED] = "device-added",
        [MANAGER_EVENT_DEVICE_CHANGED] = "device-changed",
        [MANAGER_EVENT_DEVICE_REMOVED] = "device-removed",
        [MANAGER_EVENT_IMAGE_ADDED] = "image-added",
        [MANAGER_EVENT_IMAGE_REMOVED] = "image-removed",
        [MANAGER_EVENT_JOB_ADDED] = "job-added",
        [MANAGER_EVENT_JOB_STATE] = "job-state",
        [MANAGER_EVENT_JOB_PROGRESS] = "job-progress",
        [MANAGER_EVENT_JOB_REMOVED] = "job-removed",
        [MANAGER_EVENT_ROLLOUT_ADDED] = "rollout-added",
        [MANAGER_EVENT_ROLLOUT_STATE] = "rollout-state",
        [MANAGER_EVENT_ROLLOUT_PROGRESS] = "rollout-progress",
        [MANAGER_EVENT_ROLLOUT_MEMBER] = "rollout-member",
        [MANAGER_EVENT_DISTRIBUTION_STATE] = "distribution-state",
        [MANAGER_EVENT_DISTRIBUTION_PROGRESS] = "distribution-progress",
        [MANAGER_EVENT_ROLLOUT_REMOVED] = "rollout-removed",
        [MANAGER_EVENT_DISTRIBUTION_REMOVED] = "distribution-removed",
        [MANAGER_EVENT_IMAGE_CHANGED] = "image-changed",
};

#define SSE_ALL_TYPES ((1u << _MANAGER_EVENT_MAX) - 1)

static void sse_wake(struct rest_sse *s) {
        if (!s->suspended)
                return;
        s->suspended = false;
        MHD_resume_connection(s->connection);
        rest_run_soon(s->rest);
}

static int sse_reserve(struct rest_sse *s, size_t n) {
        char *p;
        size_t want;

        if (s->start + s->len + n <= s->alloc)
                return 0;
        if (s->start > 0) {
                memmove(s->buf, s->buf + s->start, s->len);
                s->start = 0;
                if (s->len + n <= s->alloc)
                        return 0;
        }
        want = MAX(s->alloc * 2, s->len + n);
        /* A full queue needs no more than the bound (and the overflow
         * event, which replaces it). */
        want = MIN(want, MAX((size_t) REST_SSE_QUEUE_MAX, s->len + n));
        p = realloc(s->buf, want);
        if (!p)
                return -ENOMEM;
        s->rest->sse_allocated += want - s->alloc;
        s->buf = p;
        s->alloc = want;
        return 0;
}

static void sse_wait_drain(struct rest_sse *s);

/* Drops what is queued (the client would have to resynchronise anyway,
 * and the point is to free it) and queues the overflow event instead. */
static void sse_overflow(struct rest_sse *s) {
        static const char overflow[] =
                "event: overflow\n"
                "data: {\"message\":\"The client did not keep up with the events; reconnect.\"}\n\n";
        struct rest *r = s->rest;

        log_warning("REST: an event stream fell %zu bytes behind (%zu in all streams); dropping it", s->len,
                    r->sse_queued);
        r->sse_overflows++;
        s->ending = true;
        s->overflowed = true;
        r->sse_queued -= s->len;
        r->sse_allocated -= s->alloc;
        s->start = s->len = 0;
        free(s->buf);
        s->buf = NULL;
        s->alloc = 0;
        if (sse_reserve(s, sizeof(overflow) - 1) >= 0) {
                memcpy(s->buf, overflow, sizeof(overflow) - 1);
                s->len = sizeof(overflow) - 1;
                r->sse_queued += s->len;
        }
        /* The socket has room for it: send it and end, drained or not. */
        s->draining = false;
        sse_wake(s);
}

static void sse_append(struct rest_sse *s, const char *text, size_t n) {
        struct rest *r = s->rest;

        if (s->ending)
                return;
        /* The total counts what the queues take from the allocator, as
         * growing one may take up to twice what it holds. */
        if (s->len + n > REST_SSE_QUEUE_MAX ||
            (r->sse_allocated + n > REST_SSE_QUEUE_TOTAL_MAX &&
             s->alloc + n > REST_SSE_QUEUE_TOTAL_MAX / MAX(r->n_sse_streams, (size_t) 1)) ||
            sse_reserve(s, n) < 0) {
                sse_overflow(s);
                return;
        }
        memcpy(s->buf + s->start + s->len, text, n);
        s->len += n;
        r->sse_queued += n;
        if (!s->draining)
                sse_wake(s);
}

/* Unacknowledged bytes in the stream's socket; 0 when that cannot be told
 * (then MHD's own buffering is all there is). */
static size_t sse_socket_queued(struct rest_sse *s) {
        int outq = 0;

        if (s->fd < 0 || ioctl(s->fd, SIOCOUTQ, &outq) < 0 || outq < 0)
                return 0;
        return (size_t) outq;
}

static int sse_on_drain_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        struct rest *r = userdata;
        bool waiting = false;

        for (struct rest_sse *s = r->sse_streams; s; s = s->next) {
                if (!s->draining)
                        continue;
                if (sse_socket_queued(s) < REST_SSE_SOCKET_QUEUE_MAX) {
                        s->draining = false;
                        sse_wake(s);
                } else
                        waiting = true;
        }
        if (waiting) {
                (void) sd_event_source_set_time(source, usec + REST_SSE_DRAIN_CHECK_USEC);
                (void) sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
        }
        return 0;
}

static void sse_wait_drain(struct rest_sse *s) {
        struct rest *r = s->rest;
        uint64_t now;
        int enabled = SD_EVENT_OFF;

        s->draining = true;
        if (!r->sse_drain_timer) {
                if (sd_event_now(r->manager->event, CLOCK_MONOTONIC, &now) < 0 ||
                    sd_event_add_time(r->manager->event, &r->sse_drain_timer, CLOCK_MONOTONIC,
                                      now + REST_SSE_DRAIN_CHECK_USEC, 10000u, sse_on_drain_timer, r) < 0) {
                        /* Without the timer the stream would stall: let
                         * MHD buffer as before. */
                        s->draining = false;
                        return;
                }
                (void) sd_event_source_set_description(r->sse_drain_timer, "rest-sse-drain");
                return;
        }
        if (sd_event_source_get_enabled(r->sse_drain_timer, &enabled) >= 0 && enabled == SD_EVENT_OFF &&
            sd_event_now(r->manager->event, CLOCK_MONOTONIC, &now) >= 0) {
                (void) sd_event_source_set_time(r->sse_drain_timer, now + REST_SSE_DRAIN_CHECK_USEC);
                (void) sd_event_source_set_enabled(r->sse_drain_timer, SD_EVENT_ONESHOT);
        }
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
        struct rest_sse *s = cls;
        size_t n;

        if (s->client_gone)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        /* A dropped stream closes its connection at once (MHD asks for
         * more only once what it had is in the socket, the overflow event
         * included); a stream ended by the shutdown ends cleanly. */
        if (s->len == 0 && s->overflowed)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        if (s->len == 0 && (s->ending || s->rest->stopping))
                return MHD_CONTENT_READER_END_OF_STREAM;
        if (s->len == 0 || (!s->ending && sse_socket_queued(s) >= REST_SSE_SOCKET_QUEUE_MAX)) {
                /* Nothing to send, or the client is not taking it:
                 * returning 0 is allowed only together with suspending
                 * (else MHD polls us in a busy loop). */
                if (s->len > 0)
                        sse_wait_drain(s);
                s->suspended = true;
                MHD_suspend_connection(s->connection);
                return 0;
        }
        n = MIN(max, s->len);
        memcpy(buf, s->buf + s->start, n);
        s->start += n;
        s->len -= n;
        s->rest->sse_queued -= n;
        if (s->len == 0) {
                s->start = 0;
                /* A burst is over: give its memory back. */
                if (s->alloc > 64u * 1024u) {
                        s->rest->sse_allocated -= s->alloc;
                        free(s->buf);
                        s->buf = NULL;
                        s->alloc = 0;
                }
        }
        return (ssize_t) n;
}

static void sse_free(void *cls) {
        struct rest_sse *s = cls;
        struct rest *r = s->rest;

        if (s->prev)
                s->prev->next = s->next;
        else if (r->sse_streams == s)
                r->sse_streams = s->next;
        if (s->next)
                s->next->prev = s->prev;
        r->n_sse_streams--;
        r->sse_queued -= s->len;
        r->sse_allocated -= s->alloc;
        sd_event_source_disable_unref(s->hangup_source);
        free(s->buf);
        free(s);
}

static json_t *event_data(struct manager *m, const struct manager_event *ev) {
        switch (ev->type) {
        case MANAGER_EVENT_DEVICE_ADDED:
        case MANAGER_EVENT_DEVICE_CHANGED:
                return ev->device ? rest_json_device(m, ev->device)
                                  : NULL;
        case MANAGER_EVENT_DEVICE_REMOVED:
                return ev->device ? json_pack("{s:I}", "id", (json_int_t) ev->device->id) : NULL;
        case MANAGER_EVENT_IMAGE_ADDED:
        case MANAGER_EVENT_IMAGE_CHANGED:
                return ev->image ? rest_json_image(m, ev->image) : NULL;
        case MANAGER_EVENT_IMAGE_REMOVED:
                return ev->image ? json_pack("{s:s}", "id", ev->image->id) : NULL;
        case MANAGER_EVENT_JOB_ADDED:
        case MANAGER_EVENT_JOB_STATE:
        case MANAGER_EVENT_JOB_PROGRESS:
                return ev->job ? rest_json_job(m, ev->job) : NULL;
        case MANAGER_EVENT_JOB_REMOVED:
                return ev->job ? json_pack("{s:I}", "id", (json_int_t) ev->job->id) : NULL;
        case MANAGER_EVENT_ROLLOUT_ADDED:
        case MANAGER_EVENT_ROLLOUT_STATE:
        case MANAGER_EVENT_ROLLOUT_PROGRESS:
                return ev->rollout ? rollout_to_json(ev->rollout) : NULL;
        case MANAGER_EVENT_ROLLOUT_MEMBER: {
                struct rollout_member *mem =
                        ev->rollout ? rollout_find_member(ev->rollout, ev->member_device_id) : NULL;
                json_t *o = mem ? rollout_member_to_json(mem) : NULL;
                if (o)
                        json_object_set_new(o, "rollout", json_integer((json_int_t) ev->rollout->id));
                return o;
        }
        case MANAGER_EVENT_DISTRIBUTION_STATE:
        case MANAGER_EVENT_DISTRIBUTION_PROGRESS:
                return ev->distribution ? rest_json_distribution(m, ev->distribution) : NULL;
        case MANAGER_EVENT_ROLLOUT_REMOVED:
                return ev->rollout ? json_pack("{s:I}", "id", (json_int_t) ev->rollout->id) : NULL;
        case MANAGER_EVENT_DISTRIBUTION_REMOVED:
                return ev->distribution ? json_pack("{s:I}", "id", (json_int_t) ev->distribution->id) : NULL;
        default:
                return NULL;
        }
}

static void rest_events_on_event(struct manager *m, const struct manager_event *ev, void *userdata) {
        struct rest *r = userdata;
        _cleanup_free_ char *data = NULL, *text = NULL;
        unsigned bit;
        bool wanted = false;
        json_t *o;
        int n;

        if ((unsigned) ev->type >= _MANAGER_EVENT_MAX || r->stopping)
                return;
        bit = 1u << ev->type;
        for (struct rest_sse *s = r->sse_streams; s; s = s->next)
                wanted |= (s->types & bit) != 0;
        if (!wanted)
                return;

        /* One text per event, shared by every stream that wants it. */
        o = event_data(m, ev);
        if (!o) {
                log_warning("REST: cannot describe a %s event; not sent", event_names[ev->type]);
                return;
        }
        data = json_dumps(o, REST_JSON_DUMP_FLAGS);
        json_decref(o);
        if (!data)
                return;
        n = asprintf(&text, "id: %" PRIu64 "\nevent: %s\ndata: %s\n\n", ++r->sse_last_event_id,
                     event_names[ev->type], data);
        if (n < 0) {
                text = NULL;
                return;
        }
        for (struct rest_sse *s = r->sse_streams; s; s = s->next)
                if (s->types & bit)
                        sse_append(s, text, (size_t) n);
}

static int parse_types(const char *spec, unsigned *ret) {
        _cleanup_free_ char *copy = NULL;
        unsigned types = 0;
        char *save = NULL;

        if (!spec) {
                *ret = SSE_ALL_TYPES;
                return 0;
        }
        copy = strdup(spec);
        if (!copy)
                return -ENOMEM;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                bool found = false;

                while (*t == ' ')
                        t++;
                for (unsigned i = 0; i < _MANAGER_EVENT_MAX; i++)
                        if (streq(t, event_names[i])) {
                                types |= 1u << i;
                                found = true;
                        }
                if (!found)
                        return -EINVAL;
        }
        if (types == 0)
                return -EINVAL;
        *ret = types;
        return 0;
}

static int sse_on_hangup(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct rest_sse *s = userdata;

        /* Level-triggered and it stays so: once is enough. */
        (void) sd_event_source_set_enabled(source, SD_EVENT_OFF);
        s->client_gone = true;
        s->ending = true;
        sse_wake(s);
        return 0;
}

/* MHD watches no suspended socket; we watch it for the hang-up only (the
 * client sends nothing more on a stream), in the loop's own epoll set. */
static int sse_watch_hangup(struct rest_sse *s) {
        const union MHD_ConnectionInfo *info =
                MHD_get_connection_info(s->connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        int k;

        if (!info)
                return -EBADF;
        rest_conn_unwatch(s->connection);
        s->fd = info->connect_fd;
        /* Little in the kernel per client (see REST_SSE_SOCKET_QUEUE_MAX). */
        (void) setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &(int) { REST_SSE_SNDBUF }, sizeof(int));
        k = sd_event_add_io(s->rest->manager->event, &s->hangup_source, info->connect_fd, EPOLLRDHUP,
                            sse_on_hangup, s);
        if (k < 0)
                return k;
        (void) sd_event_source_set_description(s->hangup_source, "rest-sse-hangup");
        return 0;
}

/* The list in the refusal comes from event_names[], so that a new event
 * type cannot be accepted and yet left out of it. */
static int refuse_types(struct rest_request *req) {
        char list[_MANAGER_EVENT_MAX * 32] = ""; /* names are under 30 characters */
        size_t len = 0;

        for (unsigned i = 0; i < _MANAGER_EVENT_MAX; i++) {
                int n = snprintf(list + len, sizeof(list) - len, "%s%s", i > 0 ? ", " : "", event_names[i]);

                if (n < 0 || (size_t) n >= sizeof(list) - len)
                        break;
                len += (size_t) n;
        }
        return rest_reply_error(req, 400, "invalid_field",
                                "Query parameter 'types' must be a comma-separated list of %s.", list);
}

static void sse_add_headers(struct MHD_Response *response) {
        (void) MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        (void) MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        (void) MHD_add_response_header(response, "X-Accel-Buffering", "no");
}

static ssize_t sse_head_read(void *cls, uint64_t pos, char *buf, size_t max) {
        (void) cls;
        (void) pos;
        (void) buf;
        (void) max;
        return MHD_CONTENT_READER_END_OF_STREAM;
}

/* HEAD is GET without the body (RFC 9110, 9.3.2): the stream's headers,
 * and the reply ends; no stream is opened.  Of unknown length, as GET's
 * reply is: a Content-Length of 0 would say GET's body is empty. */
static int sse_reply_head(struct rest_request *req) {
        struct MHD_Response *response;

        response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, sse_head_read, NULL, NULL);
        if (!response)
                return -ENOMEM;
        sse_add_headers(response);
        (void) MHD_set_response_options(response, MHD_RF_HTTP_1_0_COMPATIBLE_STRICT, MHD_RO_END);
        return rest_reply_response(req, 200, response);
}

int rest_events_stream(struct rest_request *req) {
        static const char hello[] = ": smpgwd events\nretry: 3000\n\n";
        struct rest *r = req->rest;
        struct MHD_Response *response;
        struct rest_sse *s;
        unsigned types;
        int k;

        k = parse_types(rest_query(req, "types"), &types);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return refuse_types(req);
        if (req->head)
                return sse_reply_head(req);

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->rest = r;
        s->connection = req->connection;
        s->types = types;
        s->fd = -1;
        /* Something to send at once, so the client sees the headers now
         * rather than with the first event. */
        if (sse_reserve(s, sizeof(hello) - 1) < 0) {
                free(s);
                return -ENOMEM;
        }
        memcpy(s->buf, hello, sizeof(hello) - 1);
        s->len = sizeof(hello) - 1;
        r->sse_queued += s->len;
        k = sse_watch_hangup(s);
        if (k < 0) {
                r->sse_queued -= s->len;
                r->sse_allocated -= s->alloc;
                free(s->buf);
                free(s);
                return k;
        }

        response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free);
        if (!response) {
                r->sse_queued -= s->len;
                r->sse_allocated -= s->alloc;
                sd_event_source_disable_unref(s->hangup_source);
                free(s->buf);
                free(s);
                return -ENOMEM;
        }
        /* From here the response owns the stream. */
        s->next = r->sse_streams;
        if (s->next)
                s->next->prev = s;
        r->sse_streams = s;
        r->n_sse_streams++;
        sse_add_headers(response);
        return rest_reply_response(req, 200, response);
}

static int rest_events_on_keepalive(sd_event_source *source, uint64_t usec, void *userdata) {
        static const char keepalive[] = ": keepalive\n\n";
        struct rest *r = userdata;

        for (struct rest_sse *s = r->sse_streams; s; s = s->next)
                sse_append(s, keepalive, sizeof(keepalive) - 1);
        (void) sd_event_source_set_time(source, usec + REST_SSE_KEEPALIVE_USEC);
        (void) sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
        return 0;
}

int rest_events_start(struct rest *r) {
        uint64_t now;
        int k;

        k = manager_add_observer(r->manager, rest_events_on_event, r);
        if (k < 0)
                return log_error_errno(k, "REST: cannot observe the manager: %m");
        r->observing = true;

        k = sd_event_now(r->manager->event, CLOCK_MONOTONIC, &now);
        if (k < 0)
                return log_error_errno(k, "REST: cannot read the loop's clock: %m");
        k = sd_event_add_time(r->manager->event, &r->keepalive_timer, CLOCK_MONOTONIC,
                              now + REST_SSE_KEEPALIVE_USEC, 1000000u, rest_events_on_keepalive, r);
        if (k < 0)
                return log_error_errno(k, "REST: cannot add the event keepalive timer: %m");
        (void) sd_event_source_set_description(r->keepalive_timer, "rest-sse-keepalive");
        return 0;
}

void rest_events_stop(struct rest *r) {
        if (r->observing) {
                manager_remove_observer(r->manager, rest_events_on_event, r);
                r->observing = false;
        }
        r->keepalive_timer = sd_event_source_disable_unref(r->keepalive_timer);
        r->sse_drain_timer = sd_event_source_disable_unref(r->sse_drain_timer);
        for (struct rest_sse *s = r->sse_streams; s; s = s->next) {
                s->ending = true;
                s->draining = false;
                sse_wake(s);
        }
}
