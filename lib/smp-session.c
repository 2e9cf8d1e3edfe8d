/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context-internal.h"
#include "smpgw/smp-error.h"
#include "smpgw/smp-session.h"
#include "util.h"

/* Largest frame a request may build (the header's length is 16 bits). */
#define REQUEST_BODY_MAX 0xffffu
/* Timer slack: answers are compared against milliseconds-scale timeouts. */
#define TIMER_ACCURACY_USEC 1000u

struct smp_request {
        struct smp_session *session;
        struct smp_request *prev, *next;   /* in session->requests, send order */
        struct smp_header hdr;
        uint8_t *frame;                    /* header + body */
        size_t frame_len;
        uint64_t timeout_usec;
        unsigned retries_left;
        bool idempotent;
        bool transmitted;                  /* at least once */
        bool retransmitted;                /* RTT samples only from single sends (Karn) */
        bool no_rtt_sample;                /* smp_request_params.no_rtt_sample */
        bool waiting_to_send;              /* the link said EAGAIN */
        bool upgraded;                     /* resent as v2 after UNSUPPORTED_TOO_OLD */
        uint64_t link_epoch;               /* the session's link_epoch when it was sent */
        uint64_t sent_usec;
        sd_event_source *timer;
        smp_request_done_fn done;
        void *userdata;
};

struct smp_session {
        unsigned n_ref;
        bool freed;
        sd_event *event;
        struct smp_conn *conn;                 /* a reference; it holds the context */
        const struct smp_transport *transport; /* conn's */
        struct smp_transport_instance *instance;
        struct smp_link *link;
        struct smp_link_info info;
        struct smp_reassembler *reassembler;   /* for stream transports */
        /* The adapter the last closed link went through ("" unknown). */
        char last_adapter[32];

        uint8_t version;
        uint8_t next_seq;
        uint64_t timeout_usec;
        unsigned retries;

        struct smp_request *requests, *requests_tail;
        unsigned n_requests;
        /* Counts the links opened: a request belongs to the link it was
         * sent on, so failing a dead link's requests spares those a
         * callback sent meanwhile on a new one. */
        uint64_t link_epoch;

        smp_session_closed_fn closed_fn;
        void *closed_userdata;

        /* A transport may report the link closed from inside send() (BLE:
         * the write fd hangs up as we write).  Failing every request there
         * would free the one being transmitted under its caller, so the
         * close is handled from a defer source once send() returned. */
        unsigned in_send;
        sd_event_source *close_defer;
        int close_error;

        struct smp_session_stats stats;
};

static void session_ref(struct smp_session *s) {
        s->n_ref++;
}

static void session_unref(struct smp_session *s) {
        if (--s->n_ref > 0)
                return;
        sd_event_unref(s->event);
        smp_conn_unref(s->conn);
        free(s);
}

static void request_unlink(struct smp_request *r) {
        struct smp_session *s = r->session;
        if (r->prev)
                r->prev->next = r->next;
        else
                s->requests = r->next;
        if (r->next)
                r->next->prev = r->prev;
        else
                s->requests_tail = r->prev;
        r->prev = r->next = NULL;
        s->n_requests--;
}

static void request_free(struct smp_request *r) {
        r->timer = sd_event_source_disable_unref(r->timer);
        free(r->frame);
        free(r);
}

/* Finishes a request: unlinks it, calls its callback, frees it. */
static void request_complete(struct smp_request *r, int error, const struct smp_frame *f) {
        struct smp_session *s = r->session;

        request_unlink(r);
        r->timer = sd_event_source_disable_unref(r->timer);
        if (r->done) {
                session_ref(s);
                r->done(s, error, f ? &f->hdr : NULL, f ? f->body : NULL, f ? f->body_len : 0, r->userdata);
                session_unref(s);
        }
        request_free(r);
}

static int request_transmit(struct smp_request *r);

static int on_request_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        struct smp_request *r = userdata;
        struct smp_session *s = r->session;

        if (r->retries_left > 0) {
                r->retries_left--;
                r->retransmitted = true;
                s->stats.retransmits++;
                if (request_transmit(r) >= 0)
                        return 0;
        }
        s->stats.timeouts++;
        request_complete(r, -ETIMEDOUT, NULL);
        return 0;
}

static int request_arm_timer(struct smp_request *r) {
        struct smp_session *s = r->session;
        if (!r->timer)
                return sd_event_add_time_relative(s->event, &r->timer, CLOCK_MONOTONIC, r->timeout_usec,
                                                  TIMER_ACCURACY_USEC, on_request_timeout, r);
        int e = sd_event_source_set_time_relative(r->timer, r->timeout_usec);
        if (e < 0)
                return e;
        return sd_event_source_set_enabled(r->timer, SD_EVENT_ONESHOT);
}

/* Sends (or re-sends) a request with the session's current version.  The
 * timeout runs from the moment it went out, or from now when the link
 * asked us to wait, so a slow link cannot make requests time out before
 * they were sent. */
static int request_transmit(struct smp_request *r) {
        struct smp_session *s = r->session;
        int e;

        if (!s->link)
                return -ENOTCONN;
        r->hdr.version = s->version;
        smp_header_encode(&r->hdr, r->frame);

        s->in_send++;
        e = s->transport->send(s->link, r->frame, r->frame_len);
        s->in_send--;
        if (e == -EAGAIN) {
                r->waiting_to_send = true;
                if (r->timer)
                        (void) sd_event_source_set_enabled(r->timer, SD_EVENT_OFF);
                return 0;
        }
        if (e < 0)
                return e;

        r->waiting_to_send = false;
        r->transmitted = true;
        r->sent_usec = 0;
        (void) sd_event_now(s->event, CLOCK_MONOTONIC, &r->sent_usec);
        s->stats.tx_bytes += r->frame_len;
        return request_arm_timer(r);
}

static void session_flush_waiting(struct smp_session *s) {
        for (struct smp_request *r = s->requests; r; r = r->next) {
                if (!r->waiting_to_send)
                        continue;
                int e = request_transmit(r);
                if (e < 0) {
                        request_complete(r, e, NULL);
                        return; /* the list may have changed under us */
                }
                if (r->waiting_to_send)
                        return; /* still blocked: keep the order */
        }
}

static void update_rtt(struct smp_session *s, struct smp_request *r) {
        uint64_t now;
        if (r->retransmitted || r->no_rtt_sample || r->sent_usec == 0 ||
            sd_event_now(s->event, CLOCK_MONOTONIC, &now) < 0 || now < r->sent_usec)
                return;
        uint64_t sample = now - r->sent_usec;
        /* RFC 6298 smoothing: alpha 1/8, beta 1/4 */
        if (s->stats.srtt_usec == 0) {
                s->stats.srtt_usec = sample;
                s->stats.rttvar_usec = sample / 2;
        } else {
                uint64_t dev = sample > s->stats.srtt_usec ? sample - s->stats.srtt_usec : s->stats.srtt_usec - sample;
                s->stats.rttvar_usec = (3 * s->stats.rttvar_usec + dev) / 4;
                s->stats.srtt_usec = (7 * s->stats.srtt_usec + sample) / 8;
        }
}

static void handle_frame(struct smp_session *s, const struct smp_frame *f) {
        struct smp_request *r;

        if (!smp_op_is_response(f->hdr.op)) {
                s->stats.ignored_answers++;
                return;
        }
        for (r = s->requests; r; r = r->next)
                if (r->transmitted && smp_header_matches_request(&r->hdr, &f->hdr))
                        break;
        if (!r) {
                s->stats.ignored_answers++;
                return;
        }
        s->stats.answers++;
        update_rtt(s, r);

        if (f->hdr.version == SMP_VERSION_1 && r->hdr.version == SMP_VERSION_2) {
                /* Only firmware without SMP v2 answers a v2 request with
                 * version 0: speak v1 from now on. */
                s->version = SMP_VERSION_1;
        } else if (f->hdr.version == SMP_VERSION_1 && r->hdr.version == SMP_VERSION_1 && !r->upgraded) {
                /* Zephyr built without the original protocol refuses v1
                 * with MGMT_ERR_UNSUPPORTED_TOO_OLD: go (back) to v2. */
                struct smp_status st;
                if (smp_status_decode(f->body, f->body_len, &st, NULL) >= 0 && st.has_rc &&
                    st.rc == SMP_MGMT_ERR_UNSUPPORTED_TOO_OLD) {
                        s->version = SMP_VERSION_2;
                        r->upgraded = true;
                        if (request_transmit(r) >= 0)
                                return;
                }
        }
        request_complete(r, 0, f);
}

static void on_link_receive(const uint8_t *data, size_t len, void *userdata) {
        struct smp_session *s = userdata;
        struct smp_frame f;
        int e;

        s->stats.rx_bytes += len;
        session_ref(s);
        if (s->reassembler) {
                e = smp_reassembler_feed(s->reassembler, data, len);
                while (e >= 0 && !s->freed && (e = smp_reassembler_next(s->reassembler, &f)) > 0)
                        handle_frame(s, &f);
        } else {
                size_t off = 0;
                while (!s->freed && smp_packet_next(data, len, &off, &f) > 0)
                        handle_frame(s, &f);
        }
        session_unref(s);
}

/* Fails the requests of the link that is gone.  A callback may reopen
 * the link and send new requests; they are appended behind, carry the new
 * link's epoch, and are left alone.  (Counting the requests present at
 * the start instead failed new ones whenever a callback also took old
 * ones off the list, e.g. an upload cancelling its window.) */
static void session_fail_all(struct smp_session *s, int error) {
        uint64_t epoch = s->link_epoch;

        session_ref(s);
        while (!s->freed && s->requests && s->requests->link_epoch <= epoch)
                request_complete(s->requests, error, NULL);
        session_unref(s);
}

static const char *link_adapter(const struct smp_session *s) {
        if (!s->link || !SMP_TRANSPORT_HAS(s->transport, get_adapter))
                return NULL;
        const char *adapter = s->transport->get_adapter(s->link);
        return adapter && *adapter ? adapter : NULL;
}

static void link_close(struct smp_session *s) {
        if (s->link) {
                /* Kept for the closed handler, which runs after this. */
                const char *adapter = link_adapter(s);
                snprintf(s->last_adapter, sizeof(s->last_adapter), "%s", adapter ? adapter : "");
                struct smp_link *l = TAKE_PTR(s->link);
                s->transport->close(l);
        }
        s->reassembler = smp_reassembler_free(s->reassembler);
}

static void on_link_closed(int error, void *userdata);

static int on_close_defer(sd_event_source *src, void *userdata) {
        struct smp_session *s = userdata;
        s->close_defer = sd_event_source_disable_unref(s->close_defer);
        on_link_closed(s->close_error, s);
        return 0;
}

static void on_link_closed(int error, void *userdata) {
        struct smp_session *s = userdata;

        if (s->in_send > 0) {
                s->close_error = error;
                if (s->close_defer || sd_event_add_defer(s->event, &s->close_defer, on_close_defer, s) >= 0)
                        return;
                /* Out of memory: handle it now and hope for the best. */
        }
        session_ref(s);
        link_close(s);
        session_fail_all(s, -ECONNRESET);
        if (!s->freed && s->closed_fn)
                s->closed_fn(s, error, s->closed_userdata);
        session_unref(s);
}

static void on_link_writable(void *userdata) {
        struct smp_session *s = userdata;
        session_ref(s);
        session_flush_waiting(s);
        session_unref(s);
}

static const struct smp_link_callbacks link_callbacks = {
        .receive = on_link_receive,
        .closed = on_link_closed,
        .writable = on_link_writable,
};

static int link_open(struct smp_session *s) {
        int e;

        e = s->transport->open(s->instance, s->event, s->conn, &link_callbacks, s, &s->link);
        if (e < 0)
                return e;
        s->link_epoch++;
        /* Zeroed first: a plugin built before a field was added at the
         * end fills only the fields it knows (smp-transport.h). */
        s->info = (struct smp_link_info) {};
        s->transport->get_info(s->link, &s->info);
        if (s->info.stream) {
                e = smp_reassembler_new(SMP_FRAME_MAX, &s->reassembler);
                if (e < 0) {
                        link_close(s);
                        return e;
                }
        }
        return 0;
}

int smp_session_open_conn(sd_event *event, struct smp_conn *conn, struct smp_session **ret) {
        int e;

        if (!event || !conn || !ret)
                return -EINVAL;
        struct smp_session *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        struct transport_entry *entry = conn_get_entry(conn);
        s->n_ref = 1;
        s->event = sd_event_ref(event);
        s->conn = smp_conn_ref(conn);
        s->transport = entry->transport;
        s->instance = entry->instance;
        s->version = SMP_VERSION_2;
        s->timeout_usec = SMP_SESSION_TIMEOUT_DEFAULT_USEC;
        s->retries = SMP_SESSION_RETRIES_DEFAULT;
        e = link_open(s);
        if (e < 0) {
                session_unref(s);
                return e;
        }
        *ret = s;
        return 0;
}

int smp_session_open(struct smp_context *ctx, sd_event *event, const char *conn, struct smp_session **ret) {
        struct smp_conn *c;
        int e;

        if (!ctx || !conn)
                return -EINVAL;
        e = smp_context_parse_conn(ctx, conn, &c, NULL);
        if (e < 0)
                return e;
        e = smp_session_open_conn(event, c, ret);
        smp_conn_unref(c);
        return e;
}

struct smp_session *smp_session_free(struct smp_session *s) {
        if (!s)
                return NULL;
        s->freed = true;
        s->close_defer = sd_event_source_disable_unref(s->close_defer);
        while (s->requests) {
                struct smp_request *r = s->requests;
                request_unlink(r);
                request_free(r);
        }
        link_close(s);
        session_unref(s);
        return NULL;
}

int smp_session_reconnect(struct smp_session *s) {
        session_ref(s);
        /* A close still pending concerns the link closed right here. */
        s->close_defer = sd_event_source_disable_unref(s->close_defer);
        link_close(s);
        session_fail_all(s, -ECONNRESET);
        int e = s->freed ? -ECANCELED : link_open(s);
        session_unref(s);
        return e;
}

bool smp_session_is_open(const struct smp_session *s) {
        return s->link != NULL;
}

void smp_session_set_closed_handler(struct smp_session *s, smp_session_closed_fn fn, void *userdata) {
        s->closed_fn = fn;
        s->closed_userdata = userdata;
}

void smp_session_set_timeout(struct smp_session *s, uint64_t usec) {
        s->timeout_usec = MIN(MAX(usec, (uint64_t) 1000), (uint64_t) SMP_SESSION_TIMEOUT_MAX_USEC);
}

void smp_session_set_retries(struct smp_session *s, unsigned retries) {
        s->retries = retries;
}

void smp_session_set_version(struct smp_session *s, uint8_t version) {
        s->version = version == SMP_VERSION_1 ? SMP_VERSION_1 : SMP_VERSION_2;
}

uint8_t smp_session_get_version(const struct smp_session *s) {
        return s->version;
}

const char *smp_session_get_adapter(const struct smp_session *s) {
        if (s->link)
                return link_adapter(s);
        return s->last_adapter[0] ? s->last_adapter : NULL;
}

int smp_session_get_link_info(struct smp_session *s, struct smp_link_info *ret) {
        if (!s->link)
                return -ENOTCONN;
        *ret = (struct smp_link_info) {};
        s->transport->get_info(s->link, ret);
        return 0;
}

void smp_session_get_stats(const struct smp_session *s, struct smp_session_stats *ret) {
        *ret = s->stats;
}

unsigned smp_session_in_flight(const struct smp_session *s) {
        return s->n_requests;
}

const char *smp_session_get_conn(const struct smp_session *s) {
        return smp_conn_get_string(s->conn);
}

sd_event *smp_session_get_event(const struct smp_session *s) {
        return s->event;
}

/* The next sequence number not used by a request in flight. */
static int session_next_seq(struct smp_session *s, uint8_t *ret) {
        for (unsigned tries = 0; tries < 256; tries++) {
                uint8_t seq = s->next_seq++;
                bool used = false;
                for (struct smp_request *r = s->requests; r && !used; r = r->next)
                        used = r->hdr.seq == seq;
                if (!used) {
                        *ret = seq;
                        return 0;
                }
        }
        return -EBUSY; /* 256 requests in flight */
}

int smp_session_send(struct smp_session *s, const struct smp_request_params *p,
                     smp_request_done_fn done, void *userdata, struct smp_request **ret) {
        uint8_t seq;
        int e;

        if (!s || !p || !smp_op_is_request(p->op) || (p->body_len > 0 && !p->body))
                return -EINVAL;
        if (p->body_len > REQUEST_BODY_MAX)
                return -EMSGSIZE;
        if (!s->link)
                return -ENOTCONN;
        if (SMP_HEADER_SIZE + p->body_len > s->info.mtu && !s->info.fragments)
                return -EMSGSIZE;
        e = session_next_seq(s, &seq);
        if (e < 0)
                return e;

        struct smp_request *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->frame_len = SMP_HEADER_SIZE + p->body_len;
        r->frame = malloc(r->frame_len);
        if (!r->frame) {
                free(r);
                return -ENOMEM;
        }
        r->session = s;
        r->link_epoch = s->link_epoch;
        r->hdr = (struct smp_header) {
                .op = p->op,
                .version = s->version,
                .len = (uint16_t) p->body_len,
                .group = p->group,
                .seq = seq,
                .id = p->id,
        };
        if (p->body_len)
                memcpy(r->frame + SMP_HEADER_SIZE, p->body, p->body_len);
        r->timeout_usec = p->timeout_usec ? MIN(p->timeout_usec, (uint64_t) SMP_SESSION_TIMEOUT_MAX_USEC)
                                          : s->timeout_usec;
        r->idempotent = p->idempotent;
        r->no_rtt_sample = p->no_rtt_sample;
        r->retries_left = p->idempotent ? (p->retries ? p->retries : s->retries) : 0;
        r->done = done;
        r->userdata = userdata;

        /* append */
        r->prev = s->requests_tail;
        if (s->requests_tail)
                s->requests_tail->next = r;
        else
                s->requests = r;
        s->requests_tail = r;
        s->n_requests++;
        s->stats.requests++;

        /* keep the order: behind requests waiting for the link */
        bool blocked = false;
        for (struct smp_request *q = s->requests; q != r; q = q->next)
                blocked = blocked || q->waiting_to_send;
        if (blocked)
                r->waiting_to_send = true;
        else {
                e = request_transmit(r);
                if (e < 0) {
                        request_unlink(r);
                        request_free(r);
                        return e;
                }
        }
        if (ret)
                *ret = r;
        return 0;
}

void smp_request_cancel(struct smp_request *r) {
        if (!r)
                return;
        request_unlink(r);
        request_free(r);
}

uint8_t smp_request_get_seq(const struct smp_request *r) {
        return r->hdr.seq;
}
