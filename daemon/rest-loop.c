/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libmicrohttpd in external-polling epoll mode, driven by the manager's
 * sd-event loop, and what keeps it serviceable.
 *
 * MHD_run() is called when MHD's epoll fd is readable, when the timeout
 * MHD_get_timeout() asks for passes, and from a defer source whenever MHD
 * must run although neither will happen:
 *
 *  - after MHD_resume_connection().  MHD_ALLOW_SUSPEND_RESUME includes
 *    MHD_USE_ITC, but in external polling mode MHD 0.9.75 drops that flag
 *    (MHD_start_daemon: "useless if we are using 'external' select"), so a
 *    resume sets a flag and writes to no wake-up channel: the stream stays
 *    silent until some other request happens to run MHD.  And a suspended
 *    connection is in no timeout list, so MHD_get_timeout() does not ask
 *    for a run either.
 *  - after a connection closed.  At max_connections (or when accept()
 *    failed with EMFILE) MHD takes its listen socket out of its epoll set,
 *    and puts it back only at the start of a later MHD_run(), once it is
 *    below the limit.  Connections are counted down at the end of a run,
 *    and MHD_get_timeout() knows nothing of the listen socket: when the
 *    last connections of a full server close in one run, nothing would
 *    ever run MHD again and the API would stay deaf while everything
 *    else went on.
 *
 * MHD_OPTION_CONNECTION_TIMEOUT is an idle timeout that every byte
 * restarts, so a client trickling its headers never reaches it: every
 * connection that waits for request headers has a deadline here, and one
 * that passes it is answered 408 and shut down (MHD then sees the end of
 * the stream and closes it).  A request body has the same deadline for
 * each piece of it: MHD 0.9.75 waits out its whole idle timeout for a
 * Content-Length the client never fills, and for a chunk line longer
 * than its buffer (a 70 KB chunk extension) it stops reading, silently.
 *
 * MHD also hides requests that can never complete: it does not act on a
 * client that half-closed its side before the request was whole, and it
 * waits for the end of a request line that a TLS ClientHello never sends.
 * Each connection's socket is watched here too (in the loop's own epoll
 * set, beside MHD's): the first byte of every request must be able to
 * start one, and a hang-up before the request is whole is answered 400
 * at once.  These answers are written to the socket directly, which is
 * safe exactly while MHD has written nothing for the request: before its
 * headers are in, or, for a body, before a reply was queued.
 *
 * rest_watchdog_check() lets the manager's watchdog ping only while MHD
 * can take a client: below max_connections, its listen socket must be in
 * its epoll set (/proc/self/fdinfo of the epoll fd lists the fds in it),
 * and its epoll fd and timeout must be watched.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "rest-internal.h"
#include "rest.h"

enum rest_conn_phase {
        REST_CONN_HEADERS,  /* waiting for (the rest of) request headers */
        REST_CONN_BODY,     /* headers in, the body arriving, no reply yet */
        REST_CONN_REPLYING, /* a reply is queued: MHD's until the request ends */
};

struct rest_conn {
        struct rest *rest;
        int fd;                        /* MHD's, borrowed */
        enum rest_conn_phase phase;
        uint64_t deadline_usec;        /* CLOCK_MONOTONIC; 0: no deadline */
        struct rest_conn *prev, *next; /* in rest->awaiting_*, while deadline_usec != 0 */
        sd_event_source *watch;        /* the socket: a request's first byte, the client hanging up */
        unsigned requests;             /* begun on this connection */
        bool got_bytes;                /* of the request awaited now */
        bool peer_closed;              /* the client shut down its sending side */
        bool refused;                  /* answered here: the socket is shut down */
};

static uint64_t loop_now(struct rest *r) {
        struct timespec ts;
        uint64_t now;

        if (sd_event_now(r->manager->event, CLOCK_MONOTONIC, &now) >= 0)
                return now;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* ---- running MHD ---- */

static void rest_arm_timer(struct rest *r) {
        MHD_UNSIGNED_LONG_LONG ms;

        if (!r->daemon || !r->timer_source)
                return;
        /* MHD_NO: no connection has a timeout and nothing is pending.  What
         * MHD_get_timeout() does not cover (resumes, the listen socket) is
         * the run defer's job. */
        if (MHD_get_timeout(r->daemon, &ms) != MHD_YES) {
                (void) sd_event_source_set_enabled(r->timer_source, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(r->timer_source,
                                        loop_now(r) + MIN(ms, (MHD_UNSIGNED_LONG_LONG) 3600000) * 1000u);
        (void) sd_event_source_set_enabled(r->timer_source, SD_EVENT_ONESHOT);
}

static void conns_check_hangups(struct rest *r);

static void rest_run(struct rest *r) {
        if (MHD_run(r->daemon) != MHD_YES)
                log_debug("REST: MHD_run() failed");
        conns_check_hangups(r);
        rest_arm_timer(r);
}

void rest_run_soon(struct rest *r) {
        if (r->run_defer && !r->stopping)
                (void) sd_event_source_set_enabled(r->run_defer, SD_EVENT_ONESHOT);
}

static int rest_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        rest_run(userdata);
        return 0;
}

static int rest_on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        rest_run(userdata);
        return 0;
}

static int rest_on_run_defer(sd_event_source *s, void *userdata) {
        rest_run(userdata);
        return 0;
}

/* ---- connections and their header deadlines ---- */

static struct rest_conn *conn_of(struct MHD_Connection *connection) {
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return info ? info->socket_context : NULL;
}

static void awaiting_remove(struct rest_conn *c) {
        struct rest *r = c->rest;

        if (c->deadline_usec == 0)
                return;
        if (c->prev)
                c->prev->next = c->next;
        else
                r->awaiting_head = c->next;
        if (c->next)
                c->next->prev = c->prev;
        else
                r->awaiting_tail = c->prev;
        c->prev = c->next = NULL;
        c->deadline_usec = 0;
}

static void header_timer_arm(struct rest *r) {
        if (!r->header_timer)
                return;
        if (!r->awaiting_head) {
                (void) sd_event_source_set_enabled(r->header_timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(r->header_timer, r->awaiting_head->deadline_usec);
        (void) sd_event_source_set_enabled(r->header_timer, SD_EVENT_ONESHOT);
}

/* Every deadline is now + the same timeout, so appending keeps the list
 * sorted and the head is the next to expire. */
static void awaiting_append(struct rest_conn *c) {
        struct rest *r = c->rest;

        awaiting_remove(c);
        c->deadline_usec = loop_now(r) + r->header_timeout_usec;
        c->prev = r->awaiting_tail;
        if (r->awaiting_tail)
                r->awaiting_tail->next = c;
        else
                r->awaiting_head = c;
        r->awaiting_tail = c;
        if (r->awaiting_head == c)
                header_timer_arm(r);
}

/* Answers a request MHD has written nothing for yet, then shuts the
 * socket down: MHD, reading the end of the stream, closes it.  Best
 * effort: a client that does not read may miss the answer, never the
 * close. */
static void conn_refuse(struct rest_conn *c, unsigned status, const char *reason, const char *code,
                        const char *message) {
        char text[512];
        int body_len, n;

        if (c->refused)
                return;
        c->refused = true;
        body_len = (int) strlen("{\"error\":{\"code\":\"\",\"message\":\"\"}}\n") + (int) strlen(code) +
                   (int) strlen(message);
        n = snprintf(text, sizeof(text),
                     "HTTP/1.1 %u %s\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     "Cache-Control: no-store\r\nContent-Length: %d\r\n\r\n"
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n",
                     status, reason, body_len, code, message);
        /* Over TLS the socket carries records that only MHD can write:
         * there the client gets the close alone. */
        if (n > 0 && (size_t) n < sizeof(text) && !c->rest->tls_cert_pem)
                (void) send(c->fd, text, (size_t) n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void) shutdown(c->fd, SHUT_RDWR);
        c->rest->refused_early++;
        log_debug("REST: %u %s answered on the socket: %s", status, code, message);
        rest_run_soon(c->rest);
}

void rest_conn_refuse(struct MHD_Connection *connection, unsigned status, const char *reason, const char *code,
                      const char *message) {
        struct rest_conn *c = conn_of(connection);

        if (c)
                conn_refuse(c, status, reason, code, message);
}

bool rest_conn_refused(struct MHD_Connection *connection) {
        struct rest_conn *c = conn_of(connection);

        return c && c->refused;
}

/* A byte no part of a request head can hold (C0 controls but HT, CR and
 * LF; DEL): where a request must begin, it tells a TLS handshake or
 * binary garbage from HTTP.  Only such bytes are refused, so that a peek
 * which, by a race, sees a later piece of the head rather than its first
 * byte never refuses a good request. */
static bool never_in_request_head(unsigned char b) {
        return (b < 0x20 && b != '\t' && b != '\r' && b != '\n') || b == 0x7f;
}

/* EPOLLIN only while a first byte is to be looked at: the watch is level
 * triggered and runs before MHD, so a readable socket it does not read
 * would starve MHD's own source (sd-event dispatches the highest priority
 * first).  Over TLS there is no first byte to look at. */
static uint32_t conn_watch_events(const struct rest_conn *c) {
        return c->rest->tls_cert_pem ? EPOLLRDHUP : EPOLLIN | EPOLLRDHUP;
}

/* Looks at the first byte of the request awaited, while it is still
 * unread in the socket.  Returns true when the request was refused. */
static bool conn_check_first_byte(struct rest_conn *c) {
        unsigned char first;

        /* Over TLS the first byte is a handshake's, rightly. */
        if (c->got_bytes || c->phase != REST_CONN_HEADERS || c->refused || c->rest->tls_cert_pem)
                return false;
        if (recv(c->fd, &first, 1, MSG_PEEK | MSG_DONTWAIT) != 1)
                return false;
        c->got_bytes = true;
        /* From here only the hang-up matters (EPOLLIN is level triggered
         * and MHD may leave bytes unread). */
        if (c->watch)
                (void) sd_event_source_set_io_events(c->watch, EPOLLRDHUP);
        if (!never_in_request_head(first))
                return false;
        if (first == 0x16)
                conn_refuse(c, 400, "Bad Request", "bad_request",
                            "This port speaks plain HTTP, and the client began a TLS handshake.");
        else
                conn_refuse(c, 400, "Bad Request", "bad_request", "The request does not start with a method.");
        return true;
}

/* Runs before MHD's own io source (a higher priority), so a request's
 * first byte is still unread in the socket when it is looked at. */
static int conn_on_socket(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct rest_conn *c = userdata;

        if (c->refused) {
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return 0;
        }
        if ((revents & EPOLLIN) && conn_check_first_byte(c))
                return 0;
        if ((revents & EPOLLIN) && (c->got_bytes || c->phase != REST_CONN_HEADERS))
                /* Looked at, or MHD read it first: nothing to look at until
                 * the next request, and a readable socket left to MHD must
                 * not keep this (higher priority) source pending. */
                (void) sd_event_source_set_io_events(s, EPOLLRDHUP);
        if (revents & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                c->peer_closed = true;
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                /* Decided after MHD has read what there is (rest_run()). */
                rest_run_soon(c->rest);
        }
        return 0;
}

/* After an MHD_run(): a client that hung up before its request was whole
 * will never complete it, and MHD 0.9.75 would keep the connection until
 * its timeout.  Only once MHD has read everything the client sent (the
 * socket shows the end of the stream and nothing before it) is that
 * certain. */
static void conns_check_hangups(struct rest *r) {
        for (size_t i = 0; i < r->n_hung_up;) {
                struct rest_conn *c = r->hung_up[i];
                char b;

                if (c->refused || c->phase == REST_CONN_REPLYING || (c->phase == REST_CONN_HEADERS && !c->got_bytes)) {
                        /* Answered, MHD's to finish, or an idle connection
                         * the client is done with. */
                        if (!c->refused && c->phase == REST_CONN_HEADERS) {
                                (void) shutdown(c->fd, SHUT_RDWR);
                                c->refused = true;
                                rest_run_soon(r);
                        }
                        r->hung_up[i] = r->hung_up[--r->n_hung_up];
                        continue;
                }
                if (recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) != 0) {
                        i++; /* MHD has more to read first */
                        continue;
                }
                if (c->phase == REST_CONN_HEADERS)
                        conn_refuse(c, 400, "Bad Request", "bad_request",
                                    "The client closed its side before the request headers were complete.");
                else
                        conn_refuse(c, 400, "Bad Request", "bad_request",
                                    "The client closed its side before the request body was complete.");
                r->hung_up[i] = r->hung_up[--r->n_hung_up];
        }
}

static void hung_up_remove(struct rest_conn *c) {
        struct rest *r = c->rest;

        for (size_t i = 0; i < r->n_hung_up; i++)
                if (r->hung_up[i] == c) {
                        r->hung_up[i] = r->hung_up[--r->n_hung_up];
                        return;
                }
}

static int conn_on_socket_checked(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct rest_conn *c = userdata;
        bool was = c->peer_closed;
        int k = conn_on_socket(s, fd, revents, userdata);

        if (!was && c->peer_closed) {
                struct rest *r = c->rest;
                struct rest_conn **p = reallocarray(r->hung_up, r->n_hung_up + 1, sizeof(*p));

                if (!p) {
                        (void) shutdown(c->fd, SHUT_RDWR);
                        c->refused = true;
                        return k;
                }
                r->hung_up = p;
                r->hung_up[r->n_hung_up++] = c;
        }
        return k;
}

static int rest_on_header_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct rest *r = userdata;
        uint64_t now = loop_now(r);
        unsigned cut = 0;

        while (r->awaiting_head && r->awaiting_head->deadline_usec <= now) {
                struct rest_conn *c = r->awaiting_head;

                awaiting_remove(c);
                if (c->phase == REST_CONN_BODY) {
                        conn_refuse(c, 408, "Request Timeout", "request_timeout",
                                    "The request body stalled: nothing of it arrived for too long.");
                        r->body_timeouts++;
                } else if (c->got_bytes)
                        conn_refuse(c, 408, "Request Timeout", "request_timeout",
                                    "The request headers did not arrive in time.");
                else {
                        /* An idle connection (kept alive, or never used):
                         * there is no request to answer. */
                        (void) shutdown(c->fd, SHUT_RDWR);
                        c->refused = true;
                }
                if (c->phase != REST_CONN_BODY)
                        r->header_timeouts++;
                cut++;
        }
        if (cut > 0) {
                log_debug("REST: %u client(s) sent no complete request in %" PRIu64 " ms; closed", cut,
                          r->header_timeout_usec / 1000u);
                rest_run_soon(r);
        }
        header_timer_arm(r);
        return 0;
}

static void conn_free(struct rest_conn *c) {
        struct rest *r = c->rest;
        bool was_head = r->awaiting_head == c;

        awaiting_remove(c);
        if (was_head)
                header_timer_arm(r);
        hung_up_remove(c);
        sd_event_source_disable_unref(c->watch);
        free(c);
}

void rest_on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                        enum MHD_ConnectionNotificationCode code) {
        struct rest *r = cls;
        struct rest_conn *c = *socket_context;

        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
                const union MHD_ConnectionInfo *info =
                        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
                int k;

                if (!info)
                        return;
                c = calloc(1, sizeof(*c));
                if (!c) {
                        /* Without a deadline it could be held forever. */
                        (void) shutdown(info->connect_fd, SHUT_RDWR);
                        return;
                }
                c->rest = r;
                c->fd = info->connect_fd;
                k = sd_event_add_io(r->manager->event, &c->watch, c->fd, conn_watch_events(c), conn_on_socket_checked,
                                    c);
                if (k >= 0) {
                        (void) sd_event_source_set_priority(c->watch, SD_EVENT_PRIORITY_NORMAL - 1);
                        (void) sd_event_source_set_description(c->watch, "rest-conn");
                } else
                        log_debug_errno(k, "REST: cannot watch a client's socket, its deadlines alone apply: %m");
                *socket_context = c;
                awaiting_append(c);
                /* MHD reads a new connection in the run that accepts it:
                 * look at what is there before it does. */
                (void) conn_check_first_byte(c);
                return;
        }

        /* MHD_CONNECTION_NOTIFY_CLOSED, at the end of an MHD_run(): MHD
         * counts the connection down after this, and only a later run puts
         * its listen socket back into its epoll set if it was out. */
        if (c) {
                conn_free(c);
                *socket_context = NULL;
        }
        rest_run_soon(r);
}

void rest_conn_request_line(struct MHD_Connection *connection) {
        struct rest_conn *c = conn_of(connection);

        if (c)
                c->got_bytes = true;
}

void rest_conn_request_begins(struct MHD_Connection *connection) {
        struct rest_conn *c = conn_of(connection);

        if (!c)
                return;
        c->requests++;
        /* The body (if any) is under the same deadline, per piece. */
        c->phase = REST_CONN_BODY;
        awaiting_append(c);
}

void rest_conn_body_progress(struct MHD_Connection *connection) {
        struct rest_conn *c = conn_of(connection);

        if (c && c->phase == REST_CONN_BODY)
                awaiting_append(c);
}

void rest_conn_replying(struct MHD_Connection *connection) {
        struct rest_conn *c = conn_of(connection);

        if (!c)
                return;
        c->phase = REST_CONN_REPLYING;
        if (c->deadline_usec != 0) {
                bool was_head = c->rest->awaiting_head == c;

                awaiting_remove(c);
                if (was_head)
                        header_timer_arm(c->rest);
        }
}

void rest_conn_unwatch(struct MHD_Connection *connection) {
        struct rest_conn *c = conn_of(connection);

        if (c)
                c->watch = sd_event_source_disable_unref(c->watch);
}

void rest_conn_request_ends(struct MHD_Connection *connection) {
        struct rest_conn *c = conn_of(connection);

        /* Kept alive, the connection now waits for another request; if it
         * is closing instead, NOTIFY_CLOSED follows and drops it. */
        if (!c || c->rest->stopping)
                return;
        c->phase = REST_CONN_HEADERS;
        awaiting_append(c);
        /* The next request's first byte is checked too. */
        c->got_bytes = false;
        if (c->watch && !c->peer_closed) {
                (void) sd_event_source_set_io_events(c->watch, conn_watch_events(c));
                (void) sd_event_source_set_enabled(c->watch, SD_EVENT_ON);
        }
}

/* ---- the watchdog's check ---- */

/* 1 when fd is in MHD's epoll set, 0 when not, negative when that cannot
 * be told.  /proc/self/fdinfo/EPFD has a "tfd: N" line per fd in the set;
 * it is opened once, at start, because the check matters most when no
 * new descriptor can be had (accept() failing with EMFILE is what takes
 * the listen socket out). */
static int epoll_set_has_fd(struct rest *r, int fd) {
        char buf[4096], line[128];
        size_t line_len = 0;
        ssize_t n;

        if (r->epoll_fdinfo_fd < 0)
                return -EBADF;
        if (lseek(r->epoll_fdinfo_fd, 0, SEEK_SET) < 0)
                return -errno;
        while ((n = read(r->epoll_fdinfo_fd, buf, sizeof(buf))) > 0)
                for (ssize_t i = 0; i < n; i++) {
                        int tfd;

                        if (buf[i] != '\n') {
                                /* Lines are short; a longer one is no "tfd:" line. */
                                if (line_len < sizeof(line) - 1)
                                        line[line_len++] = buf[i];
                                continue;
                        }
                        line[line_len] = '\0';
                        line_len = 0;
                        if (sscanf(line, "tfd: %d", &tfd) == 1 && tfd == fd)
                                return 1;
                }
        return n < 0 ? -errno : 0;
}

static bool source_enabled(sd_event_source *s) {
        int enabled = SD_EVENT_OFF;

        return s && sd_event_source_get_enabled(s, &enabled) >= 0 && enabled != SD_EVENT_OFF;
}

static const char *rest_unserviceable_reason(struct rest *r) {
        const union MHD_DaemonInfo *info;
        MHD_UNSIGNED_LONG_LONG ms;

        if (!r->daemon)
                return "the HTTP server is stopped";
        /* A run is due at once; it settles everything below. */
        if (source_enabled(r->run_defer))
                return NULL;
        if (!source_enabled(r->io_source))
                return "libmicrohttpd's epoll fd is not watched";
        if (MHD_get_timeout(r->daemon, &ms) == MHD_YES && !source_enabled(r->timer_source))
                return "libmicrohttpd's timeout is not armed";
        info = MHD_get_daemon_info(r->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        /* At max_connections the listen socket is out of the set by design. */
        if (info && info->num_connections < r->max_connections &&
            epoll_set_has_fd(r, r->listen_fd) == 0)
                return "libmicrohttpd does not watch its listen socket although it is below max_connections";
        return NULL;
}

unsigned rest_watchdog_check(struct rest *r, const char **ret_reason) {
        const char *reason;

        if (!r) {
                *ret_reason = NULL;
                return 0;
        }
        reason = rest_unserviceable_reason(r);
        r->watchdog_failures = reason ? r->watchdog_failures + 1 : 0;
        *ret_reason = reason;
        return r->watchdog_failures;
}

/* ---- start and stop ---- */

int rest_loop_start(struct rest *r) {
        struct manager *m = r->manager;
        const union MHD_DaemonInfo *info;
        char fdinfo[64];
        int k;

        info = MHD_get_daemon_info(r->daemon, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info)
                return log_error_errno(-EIO, "REST: libmicrohttpd has no epoll fd");
        r->epoll_fd = info->epoll_fd;
        info = MHD_get_daemon_info(r->daemon, MHD_DAEMON_INFO_LISTEN_FD);
        if (!info)
                return log_error_errno(-EIO, "REST: libmicrohttpd has no listen socket");
        r->listen_fd = info->listen_fd;
        snprintf(fdinfo, sizeof(fdinfo), "/proc/self/fdinfo/%d", r->epoll_fd);
        r->epoll_fdinfo_fd = open(fdinfo, O_RDONLY | O_CLOEXEC);
        if (r->epoll_fdinfo_fd < 0)
                log_warning_errno(-errno, "REST: cannot open %s, the watchdog will not check the listen socket: %m",
                                  fdinfo);

        k = sd_event_add_io(m->event, &r->io_source, r->epoll_fd, EPOLLIN, rest_on_io, r);
        if (k < 0)
                return log_error_errno(k, "REST: cannot watch the HTTP server: %m");
        (void) sd_event_source_set_description(r->io_source, "rest-io");
        /* 1 µs accuracy: sd-event's default (250 ms) would stall replies. */
        k = sd_event_add_time(m->event, &r->timer_source, CLOCK_MONOTONIC, 0, 1, rest_on_timer, r);
        if (k < 0)
                return log_error_errno(k, "REST: cannot add the HTTP timer: %m");
        (void) sd_event_source_set_description(r->timer_source, "rest-timer");
        (void) sd_event_source_set_enabled(r->timer_source, SD_EVENT_OFF);
        k = sd_event_add_defer(m->event, &r->run_defer, rest_on_run_defer, r);
        if (k < 0)
                return log_error_errno(k, "REST: cannot add the HTTP run source: %m");
        (void) sd_event_source_set_description(r->run_defer, "rest-run");
        (void) sd_event_source_set_enabled(r->run_defer, SD_EVENT_OFF);
        /* Deadlines are whole seconds; 100 ms late is fine. */
        k = sd_event_add_time(m->event, &r->header_timer, CLOCK_MONOTONIC, 0, 100000u, rest_on_header_timer, r);
        if (k < 0)
                return log_error_errno(k, "REST: cannot add the header deadline timer: %m");
        (void) sd_event_source_set_description(r->header_timer, "rest-header-deadline");
        header_timer_arm(r);
        /* MHD may have work already (nothing here, but cheap to be sure). */
        rest_run_soon(r);
        return 0;
}

void rest_loop_stop(struct rest *r) {
        closep(&r->epoll_fdinfo_fd);
        r->io_source = sd_event_source_disable_unref(r->io_source);
        r->timer_source = sd_event_source_disable_unref(r->timer_source);
        r->run_defer = sd_event_source_disable_unref(r->run_defer);
        r->header_timer = sd_event_source_disable_unref(r->header_timer);
}
