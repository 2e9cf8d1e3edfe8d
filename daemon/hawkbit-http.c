/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libcurl's multi interface on smpgwd's sd-event loop: curl tells us
 * which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to wake it
 * (CURLMOPT_TIMERFUNCTION); each becomes an sd-event io or time source,
 * and each event goes back to curl through curl_multi_socket_action().
 * No thread, no blocking call: name resolution is curl's threaded
 * resolver (or its own for IP literals), the loop never waits on it.
 *
 * Finished transfers are collected after curl_multi_socket_action()
 * returns, never inside a curl callback, so a done callback may start or
 * cancel other requests.
 *
 * Built as smpgwd's module smpgwd-hawkbit-http.so (hawkbit-http.h): the
 * only file linked to libcurl, and it exports nothing but its
 * descriptor.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <syslog.h>

#include "config.h"
#include "hawkbit-http.h"
#include "hawkbit-internal.h"
#include "util.h"

struct hawkbit_curl {
        sd_event *event;
        hawkbit_http_log_fn log;
        CURLM *multi;
        sd_event_source *timer;
        unsigned in_flight;
        bool collecting;
};

struct hawkbit_request {
        struct hawkbit_curl *http;
        CURL *easy;
        struct curl_slist *headers;
        char *json; /* the request body, owned */
        char *buf;  /* the JSON answer */
        size_t len, alloc;
        int sink_fd;
        uint64_t sink_written, sink_max;
        bool too_big, sink_failed;
        hawkbit_http_done_fn done;
        void *userdata;
};

/* One per socket curl asked us to watch (curl_multi_assign()). */
struct http_socket {
        sd_event_source *io;
};

static void request_free(struct hawkbit_request *req) {
        if (!req)
                return;
        if (req->easy) {
                curl_multi_remove_handle(req->http->multi, req->easy);
                curl_easy_cleanup(req->easy);
                req->http->in_flight--;
        }
        curl_slist_free_all(req->headers);
        free(req->json);
        free(req->buf);
        free(req);
}

static void collect_done(struct hawkbit_curl *h) {
        CURLMsg *msg;
        int left;

        /* A done callback may start requests; curl_multi_info_read()
         * copes with handles added meanwhile. */
        while ((msg = curl_multi_info_read(h->multi, &left))) {
                struct hawkbit_request *req = NULL;
                long status = 0;
                int error = 0;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &req);
                curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
                switch (msg->data.result) {
                case CURLE_OK:
                        break;
                case CURLE_OPERATION_TIMEDOUT:
                        error = -ETIMEDOUT;
                        break;
                case CURLE_COULDNT_CONNECT:
                        error = -ECONNREFUSED;
                        break;
                case CURLE_COULDNT_RESOLVE_HOST:
                        error = -EHOSTUNREACH;
                        break;
                case CURLE_WRITE_ERROR:
                        error = req->too_big ? -EFBIG : -EIO;
                        break;
                case CURLE_OUT_OF_MEMORY:
                        error = -ENOMEM;
                        break;
                default: {
                        char why[160];
                        snprintf(why, sizeof(why), "transfer failed: %s", curl_easy_strerror(msg->data.result));
                        h->log(LOG_DEBUG, why);
                        error = -EIO;
                        break;
                }
                }
                if (req->buf)
                        req->buf[req->len] = 0;
                hawkbit_http_done_fn done = req->done;
                void *userdata = req->userdata;
                /* Taken out of the multi before the callback, which may
                 * cancel other requests but never this one any more. */
                curl_multi_remove_handle(h->multi, req->easy);
                curl_easy_cleanup(req->easy);
                req->easy = NULL;
                h->in_flight--;
                done(req, error, status, req->buf ? req->buf : "", req->buf ? req->len : 0, userdata);
                request_free(req);
        }
}

static void socket_action(struct hawkbit_curl *h, curl_socket_t fd, int events) {
        int running = 0;

        (void) curl_multi_socket_action(h->multi, fd, events, &running);
        collect_done(h);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct hawkbit_curl *h = userdata;
        int events = 0;

        if (revents & EPOLLIN)
                events |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                events |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                events |= CURL_CSELECT_ERR;
        socket_action(h, fd, events);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        socket_action(userdata, CURL_SOCKET_TIMEOUT, 0);
        return 0;
}

static int curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        struct hawkbit_curl *h = userp;
        struct http_socket *hs = socketp;
        uint32_t events = 0;

        if (what == CURL_POLL_REMOVE) {
                if (hs) {
                        sd_event_source_disable_unref(hs->io);
                        free(hs);
                        curl_multi_assign(h->multi, fd, NULL);
                }
                return 0;
        }
        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= EPOLLOUT;
        if (!hs) {
                hs = calloc(1, sizeof(*hs));
                if (!hs)
                        return -1;
                if (sd_event_add_io(h->event, &hs->io, fd, events, on_io, h) < 0) {
                        free(hs);
                        return -1;
                }
                curl_multi_assign(h->multi, fd, hs);
                return 0;
        }
        return sd_event_source_set_io_events(hs->io, events) < 0 ? -1 : 0;
}

static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp) {
        struct hawkbit_curl *h = userp;
        uint64_t now;

        if (timeout_ms < 0)
                return sd_event_source_set_enabled(h->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        if (sd_event_now(h->event, CLOCK_MONOTONIC, &now) < 0)
                return -1;
        /* 0 ms: "act now" -- from the loop, not from inside this callback. */
        if (sd_event_source_set_time(h->timer, now + (uint64_t) timeout_ms * 1000u) < 0 ||
            sd_event_source_set_enabled(h->timer, SD_EVENT_ONESHOT) < 0)
                return -1;
        return 0;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata) {
        struct hawkbit_request *req = userdata;
        size_t n = size * nmemb;

        if (req->sink_fd >= 0) {
                if (req->sink_written + n > req->sink_max) {
                        req->too_big = true;
                        return 0;
                }
                for (size_t off = 0; off < n;) {
                        ssize_t w = write(req->sink_fd, data + off, n - off);
                        if (w < 0) {
                                if (errno == EINTR)
                                        continue;
                                req->sink_failed = true;
                                return 0;
                        }
                        off += (size_t) w;
                }
                req->sink_written += n;
                return n;
        }
        if (req->len + n > HAWKBIT_RESPONSE_MAX) {
                req->too_big = true;
                return 0;
        }
        if (req->len + n + 1 > req->alloc) {
                size_t want = MAX(req->alloc * 2, req->len + n + 1);
                char *grown = realloc(req->buf, want);
                if (!grown)
                        return 0;
                req->buf = grown;
                req->alloc = want;
        }
        memcpy(req->buf + req->len, data, n);
        req->len += n;
        return n;
}

static void client_free(struct hawkbit_curl *h);

static int client_new(sd_event *event, hawkbit_http_log_fn log, struct hawkbit_curl **ret) {
        struct hawkbit_curl *h;
        int r;

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return -EIO;
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->event = sd_event_ref(event);
        h->log = log;
        h->multi = curl_multi_init();
        if (!h->multi) {
                client_free(h);
                return -ENOMEM;
        }
        r = sd_event_add_time(event, &h->timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_timer, h);
        if (r < 0) {
                client_free(h);
                return r;
        }
        (void) sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
        curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
        curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
        /* Keep-alive connections to the server, a few per host: polls of
         * many targets reuse them instead of a handshake each. */
        curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 16L);
        *ret = h;
        return 0;
}

static void client_free(struct hawkbit_curl *h) {
        if (!h)
                return;
        /* Requests are owned by their callers, who cancel them first. */
        if (h->multi)
                curl_multi_cleanup(h->multi);
        sd_event_source_disable_unref(h->timer);
        sd_event_unref(h->event);
        free(h);
        curl_global_cleanup();
}

static int start(struct hawkbit_curl *h, const struct hawkbit_http_call *call, hawkbit_http_done_fn done,
                 void *userdata, struct hawkbit_request **ret) {
        struct hawkbit_request *req;
        char range[64];

        req = calloc(1, sizeof(*req));
        if (!req)
                return -ENOMEM;
        req->http = h;
        req->sink_fd = call->sink_fd;
        req->sink_max = call->sink_max;
        req->done = done;
        req->userdata = userdata;
        req->easy = curl_easy_init();
        if (!req->easy) {
                free(req);
                return -ENOMEM;
        }
        h->in_flight++;
        CURL *e = req->easy;
        curl_easy_setopt(e, CURLOPT_URL, call->url);
        curl_easy_setopt(e, CURLOPT_PRIVATE, req);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long) MIN(call->timeout_usec / 1000u, 30000u));
        if (call->sink_fd >= 0) {
                /* A download may take long; one that stalls may not. */
                curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
                curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long) MAX(call->timeout_usec / 1000000u, 1u));
                if (call->range_from > 0) {
                        snprintf(range, sizeof(range), "%llu-", (unsigned long long) call->range_from);
                        curl_easy_setopt(e, CURLOPT_RANGE, range);
                }
                req->sink_written = call->range_from;
        } else
                curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) (call->timeout_usec / 1000u));

        struct curl_slist *l = curl_slist_append(NULL, "Accept: application/hal+json, application/json");
        if (l && call->auth_header)
                l = curl_slist_append(l, call->auth_header) ? l : NULL;
        if (l && call->json)
                l = curl_slist_append(l, "Content-Type: application/json;charset=UTF-8") ? l : NULL;
        if (!l) {
                request_free(req);
                return -ENOMEM;
        }
        req->headers = l;
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
        if (call->json) {
                req->json = strdup(call->json);
                if (!req->json) {
                        request_free(req);
                        return -ENOMEM;
                }
                curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->json);
                curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long) strlen(req->json));
        }
        if (!streq(call->method, "GET") && !streq(call->method, "POST"))
                curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, call->method);
        if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
                curl_easy_cleanup(e);
                req->easy = NULL;
                h->in_flight--;
                request_free(req);
                return -ENOMEM;
        }
        if (ret)
                *ret = req;
        return 0;
}

static void cancel(struct hawkbit_request *req) {
        request_free(req);
}

static unsigned in_flight(const struct hawkbit_curl *h) {
        return h ? h->in_flight : 0;
}

/* The one symbol the module exports (hawkbit-http.sym). */
extern const struct hawkbit_http_module smpgwd_hawkbit_http_module;
const struct hawkbit_http_module smpgwd_hawkbit_http_module = {
        .version = PACKAGE_VERSION,
        .struct_size = sizeof(struct hawkbit_http_module),
        .client_new = client_new,
        .client_free = client_free,
        .start = start,
        .cancel = cancel,
        .in_flight = in_flight,
};
