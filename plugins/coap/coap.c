/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The "coap" transport: SMP over CoAP the way newtmgr's OIC transport
 * talks to Mynewt's oicmgr ("OMP", see smp-omp.h and protocol.md §6).
 *
 *   coap:HOST[:PORT][,mtu=N]
 *
 * HOST is an IPv4 address, an IPv6 address in brackets (a link-local one
 * with its interface: [fe80::1%eth0]) or "localhost"; host names are
 * refused (libsmpgw parses the string: smp-conn.h).  PORT defaults to
 * 5683.  mtu=N sets the CoAP datagram size libcoap builds
 * requests for (default COAP_DEFAULT_MTU, 1152); it must stay within what
 * the device receives.
 *
 * Each SMP frame given to send() becomes one Confirmable PUT to /omgr with
 * Content-Format 60 (application/cbor) and the OMP payload, its token the
 * one byte SMP sequence number (newtmgr does the same).  Tokens stay
 * unique among requests in flight: a frame whose sequence number is still
 * waiting for an answer is refused with -EBUSY, unless it is the very same
 * frame, which is a retransmission by the session above: it is sent again
 * as a new CoAP exchange with the same token (whichever answer comes
 * first is delivered; the other is a duplicate the session ignores).  A
 * request stops being "in flight" when its answer or libcoap's NACK
 * arrives, or PENDING_LIFETIME_USEC after it was last sent (a device that
 * acknowledged and then never answers cannot block its sequence number
 * for ever).
 *
 * Answers with 2.01..2.05 are turned back into SMP frames and delivered
 * with receive(), one frame per call.  Anything else (4.xx, 5.xx, a
 * payload that is not OMP) means nothing to the SMP session above: it is
 * counted in stats.lost and dropped, and the session times out and
 * retries.  closed() is reported only when libcoap's I/O fails for good.
 *
 * Frames larger than one datagram go block-wise: libcoap does Block1 for
 * the request and Block2 for the answer (COAP_BLOCK_USE_LIBCOAP |
 * COAP_BLOCK_SINGLE_BODY, so the answer arrives whole).  Note that
 * libcoap puts its own 8-byte token on the wire during a Block1 transfer
 * and restores ours in the answer it hands us.
 *
 * Link info.  mtu is the largest SMP frame sent without Block1, derived
 * from the block size libcoap picks for the datagram size: with the
 * default 1152-byte datagram libcoap 4.3.1 keeps room for a 40-byte Echo
 * option and an 8-byte token and chooses 1024-byte blocks, so a payload
 * of up to 1024 bytes always fits one datagram, and the frame limit is
 * 1024 - (SMP_OMP_OVERHEAD - 8) = 1019.  fragments is true.  overhead
 * counts the CoAP header, token, Uri-Path, Content-Format and payload
 * marker (13 bytes) plus the "_h" pair's cost over the SMP header (5).
 *
 * Lost packets.  libcoap retransmits Confirmable requests itself but does
 * not say when.  The session's ACK_RANDOM_FACTOR is set to 1.0, which
 * makes the schedule fixed (retransmission k leaves ACK_TIMEOUT *
 * (2^k - 1) after the request: 2, 6, 14, 30 s), so for an answer
 * piggybacked on the ACK the number of retransmissions follows from the
 * time it took; a request libcoap gave up on counts all its
 * transmissions, one refused by RST or an ICMP error counts one.  For
 * separate answers (empty ACK first) the ACK's time is unknown and
 * nothing is counted: stats.lost is a lower bound.
 *
 * Memory a device can make us hold: answers of at most one SMP frame
 * each, queued during one libcoap pass (at most RX_QUEUE_MAX), and copies
 * of our own request payloads while libcoap sends them.  libcoap 4.3.1 itself collects a
 * Block2 body whole before handing it over and has no setting to bound
 * that; answers larger than an SMP frame are dropped once it has.
 *
 * Stats count CoAP messages and their payload bytes: one per request, or
 * one per Block1 block; one per answer however many blocks it took.
 *
 * Event loop.  One libcoap client context per link: its epoll fd (which
 * also holds libcoap's timerfd for retransmissions and block timeouts)
 * is one io source on the caller's sd-event loop, calling
 * coap_io_process(COAP_IO_NO_WAIT) (integration.md (b)).  A context per
 * link costs three fds (epoll, timerfd, socket) but keeps links fully
 * independent: closing one never touches another, and libcoap's global
 * state is limited to coap_startup() and the log handler.  Answers are
 * queued by libcoap's handler and delivered after coap_io_process()
 * returns, so callbacks may send() or close() freely.
 *
 * Discovery (doc/transport-coap.md).  Arguments, comma-separated, all
 * optional ("" is all defaults):
 *
 *   [multicast][,group=ADDR][,port=N][,seconds=N][,if=NAME][,rt=TYPE][,hops=N]
 *
 * One Non-confirmable GET /.well-known/core?rt=TYPE (default
 * x.mynewt.nmgr, the type Mynewt's oicmgr gives /omgr; rt= sends no
 * filter) goes to the group (default 224.0.1.187, port 5683) from a
 * libcoap client context of its own, on the caller's loop like a link.
 * Every reply carrying our random 8-byte token, 2.05 with link-format
 * (Content-Format 40) listing a link to /omgr of that type, counts: its
 * source address and port (coap_session_get_addr_remote() inside the
 * handler: libcoap 4.3.1 copies each packet's source into the multicast
 * session) is reported once as coap:HOST:PORT.  After `seconds` (default
 * 3, at most 60) found(NULL) ends the round and the context is freed,
 * token and all.  The request is sent once: libcoap would send a repeat
 * to the last responder, not the group.  Block mode stays off, so only
 * the first block of a listing is read.  Before anything is sent, a
 * connect() on a throw-away socket asks the kernel for a route to the
 * group, so a host without a multicast route fails discover_start with
 * -ENETUNREACH rather than a silent round.
 *
 * Logging goes to the host (struct smp_host) at debug level, libcoap's
 * own messages too: libcoap's log handler is process-wide and has no user
 * pointer, so its messages go to the instance whose call into libcoap is
 * running (log_target, set around every such call).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include <coap3/coap.h>
#include <systemd/sd-event.h>

#include <smpgw/smp-frame.h>
#include <smpgw/smp-omp.h>
#include <smpgw/smp-transport.h>

#include "coap-link-format.h"
#include "plugin-util.h"

#define COAP_DEFAULT_PORT_STR "5683"
#define OMGR_PATH "omgr"
/* Bytes of a request beyond its payload: 4 header, 1 token, Uri-Path
 * "omgr" (1 + 4), Content-Format 60 (1 + 1), payload marker 1. */
#define REQUEST_OVERHEAD 13u
/* What the OMP payload costs beyond the SMP frame at most. */
#define OMP_EXTRA (SMP_OMP_OVERHEAD - SMP_HEADER_SIZE)
/* Room libcoap 4.3.1 keeps free in a request it may split
 * (coap_add_data_large_internal): an Echo option of 40 bytes (43 encoded)
 * and a token grown to 8 bytes. */
#define LIBCOAP_RESERVE (43u + 7u)
/* Accepted range of mtu=N: libcoap needs room for 16-byte blocks at the
 * bottom; at the top, libcoap's UDP receive buffer (COAP_RXBUFFER_SIZE). */
#define PDU_MTU_MIN 128u
#define PDU_MTU_MAX 1472u
/* How long a sent request keeps its sequence number (token) busy when no
 * answer and no NACK arrives.  Beyond libcoap's give-up time for an
 * unacknowledged request with our fixed schedule it would only block a
 * device that ACKed and went silent, so keep it in the order of the
 * longest SMP wait (a slot erase). */
#define PENDING_LIFETIME_USEC (30ull * 1000000ull)
/* Answers waiting for delivery: one libcoap pass cannot produce many, but
 * a peer must not make us queue without bound. */
#define RX_QUEUE_MAX 64u

struct pending {
        bool used;
        bool blockwise;
        coap_mid_t mid;        /* of the latest transmission's first PDU */
        uint64_t sent_usec;
        uint64_t hash;         /* FNV-1a of the frame, to recognise a resend */
        size_t len;
};

struct rx_item {
        struct rx_item *next;
        size_t len;
        uint8_t data[];
};

struct smp_link {
        struct smp_transport_instance *instance;
        sd_event *event;
        sd_event_source *io_source;
        coap_context_t *ctx;
        coap_session_t *session;
        struct smp_link_callbacks cb;
        void *userdata;

        unsigned busy;         /* inside our io handler: close() defers */
        bool close_requested;
        bool failed;

        size_t pdu_mtu;        /* CoAP datagram size */
        size_t block_size;     /* the Block1 size libcoap picks */
        size_t frame_mtu;      /* largest frame in one datagram */

        struct pending pending[256];
        struct rx_item *rx_head, *rx_tail;
        unsigned rx_count;

        struct smp_link_stats stats;
        bool nacked;
        coap_mid_t last_nack_mid;
        coap_nack_reason_t last_nack_reason;
};

/* ---- logging ---- */

struct smp_transport_instance {
        const struct smp_host *host;
};

/* The instance whose call into libcoap runs on this thread (see the top). */
static _Thread_local const struct smp_transport_instance *log_target;

static const struct smp_transport_instance *log_target_set(const struct smp_transport_instance *i) {
        const struct smp_transport_instance *saved = log_target;
        log_target = i;
        return saved;
}

static void log_target_restore(const struct smp_transport_instance **saved) {
        log_target = *saved;
}

/* Names the instance for the rest of the scope. */
#define LOG_TARGET(i) \
        _cleanup_(log_target_restore) _unused_ const struct smp_transport_instance *_saved_log_target_ = \
                log_target_set(i)

_printf_(2, 3) static void link_debug(const struct smp_link *l, const char *fmt, ...);

static void on_coap_log(coap_log_t level, const char *message) {
        if (!log_target)
                return;
        size_t n = strlen(message);
        while (n > 0 && (message[n - 1] == '\n' || message[n - 1] == '\r'))
                n--;
        smp_host_log(log_target->host, SMP_LOG_DEBUG, "libcoap: %.*s", (int) n, message);
}

static void link_debug(const struct smp_link *l, const char *fmt, ...) {
        const struct smp_host *host = l->instance->host;
        char msg[512];
        va_list ap;

        if (!host->log_enabled(host, SMP_LOG_DEBUG))
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        smp_host_log(host, SMP_LOG_DEBUG, "[%p] %s", (const void *) l, msg);
}

/* ---- helpers ---- */

static uint64_t fnv1a(const uint8_t *p, size_t n) {
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < n; i++) {
                h ^= p[i];
                h *= 0x100000001b3ull;
        }
        return h;
}

static uint64_t now_usec(const struct smp_link *l) {
        uint64_t t = 0;
        (void) sd_event_now(l->event, CLOCK_MONOTONIC, &t);
        return t;
}

static bool pending_active(const struct smp_link *l, const struct pending *p, uint64_t now) {
        return p->used && now - p->sent_usec < PENDING_LIFETIME_USEC;
}

static uint64_t fixed_point_usec(coap_fixed_point_t v) {
        return (uint64_t) v.integer_part * 1000000u + (uint64_t) v.fractional_part * 1000u;
}

/* Retransmissions libcoap made before an answer piggybacked on an ACK
 * arrived after elapsed µs (fixed schedule, see the top). */
static unsigned retransmissions_before(const struct smp_link *l, uint64_t elapsed) {
        uint64_t t = fixed_point_usec(coap_session_get_ack_timeout(l->session));
        unsigned max = (unsigned) coap_session_get_max_retransmit(l->session);
        unsigned k = 0;
        if (t == 0)
                return 0;
        while (k < max && k < 30 && t * ((1ull << (k + 1)) - 1) <= elapsed)
                k++;
        return k;
}

/* ---- connection strings ---- */

static const struct smp_conn_option coap_options[] = {
        { .name = "mtu", .type = SMP_CONN_OPTION_UINT, .min = PDU_MTU_MIN, .max = PDU_MTU_MAX },
};

static const struct smp_conn_syntax coap_syntax = {
        .address = SMP_CONN_ADDRESS_INET,
        .default_port = COAP_DEFAULT_PORT,
        .options = coap_options,
        .n_options = ELEMENTSOF(coap_options),
};

/* ---- receiving ---- */

static int rx_queue(struct smp_link *l, const uint8_t *payload, size_t len) {
        if (len > SMP_FRAME_MAX + SMP_OMP_OVERHEAD)
                return -EMSGSIZE; /* cannot hold one SMP frame */
        if (l->rx_count >= RX_QUEUE_MAX)
                return -ENOBUFS;
        struct rx_item *it = malloc(sizeof(*it) + len);
        if (!it)
                return -ENOMEM;
        int r = smp_omp_decode(payload, len, it->data, len);
        if (r < 0) {
                free(it);
                return r;
        }
        it->len = (size_t) r;
        it->next = NULL;
        if (l->rx_tail)
                l->rx_tail->next = it;
        else
                l->rx_head = it;
        l->rx_tail = it;
        l->rx_count++;
        return 0;
}

static void rx_clear(struct smp_link *l) {
        while (l->rx_head) {
                struct rx_item *it = l->rx_head;
                l->rx_head = it->next;
                free(it);
        }
        l->rx_tail = NULL;
        l->rx_count = 0;
}

static coap_response_t on_response(coap_session_t *session, const coap_pdu_t *sent,
                                   const coap_pdu_t *received, const coap_mid_t mid) {
        struct smp_link *l = coap_session_get_app_data(session);
        if (!l)
                return COAP_RESPONSE_OK;

        coap_bin_const_t token = coap_pdu_get_token(received);
        coap_pdu_code_t code = coap_pdu_get_code(received);
        coap_pdu_type_t type = coap_pdu_get_type(received);
        const uint8_t *data = NULL;
        size_t len = 0, offset = 0, total = 0;
        int r;

        if (token.length != 1) {
                /* Not one of ours (we only send 1-byte tokens). */
                link_debug(l, "answer %d.%02d with a %zu-byte token ignored", code >> 5, code & 0x1f,
                           token.length);
                return COAP_RESPONSE_OK;
        }
        uint8_t seq = token.s[0];
        struct pending *p = &l->pending[seq];
        bool had = p->used;
        uint64_t elapsed = now_usec(l) - p->sent_usec;

        l->stats.rx_packets++;
        if (coap_get_data_large(received, &len, &data, &offset, &total) && offset == 0 && len == total)
                l->stats.rx_bytes += len;
        else
                data = NULL, len = 0;

        if (had && type == COAP_MESSAGE_ACK && !p->blockwise) {
                unsigned k = retransmissions_before(l, elapsed);
                if (k > 0)
                        link_debug(l, "seq %u: answered after %u retransmission(s)", seq, k);
                l->stats.lost += k;
        }
        p->used = false;

        if (code < COAP_RESPONSE_CODE(201) || code > COAP_RESPONSE_CODE(205)) {
                link_debug(l, "seq %u: answer %d.%02d, dropped", seq, code >> 5, code & 0x1f);
                l->stats.lost++;
                return COAP_RESPONSE_OK;
        }
        if (!data) {
                link_debug(l, "seq %u: answer %d.%02d without a payload, dropped", seq, code >> 5,
                           code & 0x1f);
                l->stats.lost++;
                return COAP_RESPONSE_OK;
        }
        r = rx_queue(l, data, len);
        if (r < 0) {
                link_debug(l, "seq %u: answer of %zu bytes dropped: %s", seq, len, strerror(-r));
                l->stats.lost++;
        }
        return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *session, const coap_pdu_t *sent, const coap_nack_reason_t reason,
                    const coap_mid_t mid) {
        struct smp_link *l = coap_session_get_app_data(session);
        if (!l)
                return;

        /* libcoap may report one ICMP error twice (on the read error and
         * again on the next retransmission): count a message once. */
        if (l->nacked && l->last_nack_mid == mid && l->last_nack_reason == reason)
                return;
        l->nacked = true;
        l->last_nack_mid = mid;
        l->last_nack_reason = reason;

        unsigned transmissions = 1;
        if (reason == COAP_NACK_TOO_MANY_RETRIES)
                transmissions += (unsigned) coap_session_get_max_retransmit(session);
        l->stats.lost += transmissions;

        if (sent) {
                coap_bin_const_t token = coap_pdu_get_token(sent);
                if (token.length == 1) {
                        struct pending *p = &l->pending[token.s[0]];
                        if (p->used && p->mid == mid)
                                p->used = false;
                }
        }
        link_debug(l, "request mid %d not delivered (%s)", mid,
                   reason == COAP_NACK_TOO_MANY_RETRIES ? "no ACK"
                   : reason == COAP_NACK_RST           ? "reset by the device"
                   : reason == COAP_NACK_ICMP_ISSUE    ? "ICMP error"
                                                       : "other");
}

/* ---- the link ---- */

static void link_free(struct smp_link *l) {
        if (!l)
                return;
        LOG_TARGET(l->instance);
        l->io_source = sd_event_source_disable_unref(l->io_source);
        if (l->session) {
                coap_session_set_app_data(l->session, NULL);
                coap_session_release(l->session);
        }
        /* Frees what libcoap still holds, calling our release_func. */
        if (l->ctx)
                coap_free_context(l->ctx);
        rx_clear(l);
        sd_event_unref(l->event);
        free(l);
}

static void link_fail(struct smp_link *l, int err) {
        if (l->failed)
                return;
        l->failed = true;
        l->io_source = sd_event_source_disable_unref(l->io_source);
        link_debug(l, "link failed: %s", strerror(-err));
        if (l->cb.closed)
                l->cb.closed(err, l->userdata);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct smp_link *l = userdata;
        LOG_TARGET(l->instance);

        l->busy++;
        int r = coap_io_process(l->ctx, COAP_IO_NO_WAIT);
        /* Deliver outside libcoap: the callbacks may send() or close(). */
        while (l->rx_head && !l->close_requested && !l->failed) {
                struct rx_item *it = l->rx_head;
                l->rx_head = it->next;
                if (!l->rx_head)
                        l->rx_tail = NULL;
                l->rx_count--;
                if (l->cb.receive)
                        l->cb.receive(it->data, it->len, l->userdata);
                free(it);
        }
        if (r < 0 && !l->close_requested)
                link_fail(l, -EIO);
        l->busy--;
        if (l->close_requested && l->busy == 0)
                link_free(l);
        return 0;
}

static int coap_link_open(struct smp_transport_instance *instance, sd_event *event, const struct smp_conn *conn,
                          const struct smp_link_callbacks *cb, void *userdata, struct smp_link **ret) {
        LOG_TARGET(instance);
        coap_address_t dst;
        struct sockaddr_storage ss;
        socklen_t ss_len;
        uint64_t mtu = 0;
        int r;

        if (!event || !conn || !cb || !ret)
                return -EINVAL;
        r = smp_conn_get_sockaddr(conn, &ss, &ss_len);
        if (r < 0)
                return r;
        if (ss_len > sizeof(dst.addr))
                return -EINVAL;
        coap_address_init(&dst);
        memcpy(&dst.addr, &ss, ss_len);
        dst.size = ss_len;
        (void) smp_conn_get_option_uint(conn, "mtu", &mtu);

        struct smp_link *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->instance = instance;
        l->event = sd_event_ref(event);
        l->cb = *cb;
        l->userdata = userdata;

        l->ctx = coap_new_context(NULL);
        if (!l->ctx) {
                r = -ENOMEM;
                goto fail;
        }
        coap_context_set_block_mode(l->ctx, COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
        coap_register_response_handler(l->ctx, on_response);
        coap_register_nack_handler(l->ctx, on_nack);

        l->session = coap_new_client_session(l->ctx, NULL, &dst, COAP_PROTO_UDP);
        if (!l->session) {
                r = -EADDRNOTAVAIL;
                goto fail;
        }
        coap_session_set_app_data(l->session, l);
        if (mtu)
                coap_session_set_mtu(l->session, (unsigned) mtu);
        /* Fixed retransmission schedule, see the top. */
        coap_session_set_ack_random_factor(l->session, (coap_fixed_point_t) { 1, 0 });

        /* The block size libcoap will choose (coap_add_data_large_internal):
         * the largest power of two, 16..1024, within what the datagram has
         * left after our options and its reserve. */
        size_t max_pdu = coap_session_max_pdu_size(l->session);
        size_t used = REQUEST_OVERHEAD - 4 - 1; /* token + options, no header or marker */
        if (max_pdu < used + LIBCOAP_RESERVE + 16 + OMP_EXTRA) {
                r = -EINVAL;
                goto fail;
        }
        size_t avail = max_pdu - used - LIBCOAP_RESERVE;
        l->block_size = 16;
        while (l->block_size * 2 <= avail && l->block_size < 1024)
                l->block_size *= 2;
        l->pdu_mtu = max_pdu + 4;
        l->frame_mtu = l->block_size - OMP_EXTRA;

        int fd = coap_context_get_coap_fd(l->ctx);
        if (fd < 0) {
                r = -EOPNOTSUPP; /* a libcoap without epoll */
                goto fail;
        }
        r = sd_event_add_io(event, &l->io_source, fd, EPOLLIN, on_io, l);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(l->io_source, "coap-link");

        link_debug(l, "open %s: datagram %zu, block %zu, frame mtu %zu", smp_conn_get_string(conn), l->pdu_mtu,
                   l->block_size,
                   l->frame_mtu);
        *ret = l;
        return 0;

fail:
        link_free(l);
        return r;
}

static void coap_link_close(struct smp_link *l) {
        if (!l)
                return;
        if (l->busy > 0) {
                l->close_requested = true;
                return;
        }
        link_free(l);
}

static void release_payload(coap_session_t *session, void *app_ptr) {
        free(app_ptr);
}

static int send_one(struct smp_link *l, const uint8_t *frame, size_t len, uint64_t now) {
        uint8_t seq = frame[6];
        struct pending *p = &l->pending[seq];
        uint8_t cf[4];
        int r;

        size_t cap = len - SMP_HEADER_SIZE + SMP_OMP_OVERHEAD;
        uint8_t *payload = malloc(cap);
        if (!payload)
                return -ENOMEM;
        r = smp_omp_encode(frame, len, payload, cap);
        if (r < 0) {
                free(payload);
                return r;
        }
        size_t plen = (size_t) r;

        coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_REQUEST_CODE_PUT, coap_new_message_id(l->session),
                                        coap_session_max_pdu_size(l->session));
        if (!pdu) {
                free(payload);
                return -ENOMEM;
        }
        if (!coap_add_token(pdu, 1, &seq) ||
            !coap_add_option(pdu, COAP_OPTION_URI_PATH, strlen(OMGR_PATH), (const uint8_t *) OMGR_PATH) ||
            !coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT,
                             coap_encode_var_safe(cf, sizeof(cf), COAP_MEDIATYPE_APPLICATION_CBOR), cf)) {
                free(payload);
                coap_delete_pdu(pdu);
                return -ENOMEM;
        }
        /* libcoap owns payload from here: release_payload runs when it is
         * done with it, also on failure. */
        if (!coap_add_data_large_request(l->session, pdu, plen, payload, release_payload, payload)) {
                coap_delete_pdu(pdu);
                return -ENOMEM;
        }
        coap_mid_t mid = coap_send(l->session, pdu); /* consumes pdu */
        if (mid == COAP_INVALID_MID) {
                link_debug(l, "seq %u: coap_send failed", seq);
                return -EIO;
        }

        bool blockwise = plen > l->block_size;
        *p = (struct pending) {
                .used = true,
                .blockwise = blockwise,
                .mid = mid,
                .sent_usec = now,
                .hash = fnv1a(frame, len),
                .len = len,
        };
        l->stats.tx_packets += blockwise ? (plen + l->block_size - 1) / l->block_size : 1;
        l->stats.tx_bytes += plen;
        return 0;
}

static int coap_link_send(struct smp_link *l, const uint8_t *frame, size_t len) {
        struct smp_frame f;
        size_t off = 0;
        uint64_t now;
        int r;

        if (!l || !frame)
                return -EINVAL;
        LOG_TARGET(l->instance);
        if (l->failed || l->close_requested)
                return -ENOTCONN;
        if (len == 0)
                return -EBADMSG;

        /* A packet may hold several frames: each becomes its own request.
         * Check them all first so that none goes out if one is refused. */
        now = now_usec(l);
        bool seen[256] = {};
        while ((r = smp_packet_next(frame, len, &off, &f)) > 0) {
                if (!smp_op_is_request(f.hdr.op))
                        return -EINVAL;
                if (seen[f.hdr.seq])
                        return -EBUSY;
                seen[f.hdr.seq] = true;
                const uint8_t *start = f.body - SMP_HEADER_SIZE;
                size_t flen = SMP_HEADER_SIZE + f.body_len;
                const struct pending *p = &l->pending[f.hdr.seq];
                if (pending_active(l, p, now) && !(p->len == flen && p->hash == fnv1a(start, flen))) {
                        link_debug(l, "seq %u is still waiting for an answer: refused", f.hdr.seq);
                        return -EBUSY;
                }
        }
        if (r < 0)
                return r;

        off = 0;
        while (smp_packet_next(frame, len, &off, &f) > 0) {
                const uint8_t *start = f.body - SMP_HEADER_SIZE;
                r = send_one(l, start, SMP_HEADER_SIZE + f.body_len, now);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void coap_link_get_info(struct smp_link *l, struct smp_link_info *ret) {
        *ret = (struct smp_link_info) {
                .mtu = l->frame_mtu,
                .fragments = true,
                .stream = false,
                .overhead = REQUEST_OVERHEAD + OMP_EXTRA,
                .buffer_overhead = 0,
        };
}

static void coap_link_get_stats(struct smp_link *l, struct smp_link_stats *ret) {
        *ret = l->stats;
}

/* ---- discovery: NON GET /.well-known/core to a multicast group ---- */

#define DISCOVERY_GROUP_DEFAULT "224.0.1.187" /* "All CoAP Nodes", RFC 7252 §12.8 */
#define DISCOVERY_SECONDS_DEFAULT 3u
#define DISCOVERY_SECONDS_MAX 60u
/* Mynewt's oicmgr registers /omgr with this resource type. */
#define DISCOVERY_RT_DEFAULT "x.mynewt.nmgr"
#define DISCOVERY_RT_MAX 63u
/* Distinct responders remembered per round; past this, more are ignored
 * (a flood must not grow memory without bound). */
#define DISCOVERY_RESPONDERS_MAX 4096u
#define DISCOVERY_TOKEN_LEN 8u

struct discovery_args {
        coap_address_t group;
        unsigned seconds;
        unsigned hops;         /* 0: the kernel's default (1) */
        unsigned ifindex;      /* 0: the route decides */
        char ifname[IF_NAMESIZE];
        char rt[DISCOVERY_RT_MAX + 1]; /* "" when not filtering */
};

struct responder {
        coap_address_t addr;
        bool reported;
};

struct smp_transport_discovery {
        struct smp_transport_instance *instance;
        unsigned n_ref;        /* the caller's, plus one per callback in progress */
        bool stopped;          /* discover_stop() was called */
        bool finished;         /* found(NULL) was reported */
        sd_event *event;
        sd_event_source *io_source, *timer_source;
        coap_context_t *ctx;
        coap_session_t *session;

        uint8_t token[DISCOVERY_TOKEN_LEN];
        char rt[DISCOVERY_RT_MAX + 1];

        struct responder *responders;
        size_t n_responders, n_alloc;

        smp_discovered_fn found;
        void *userdata;
};

static bool parse_unsigned(const char *s, size_t n, unsigned min, unsigned max, unsigned *ret) {
        uint64_t v;
        if (smp_parse_uint_n(s, n, min, max, &v) < 0)
                return false;
        *ret = (unsigned) v;
        return true;
}

/* A numeric multicast address, IPv6 optionally in brackets and with a
 * %scope; the port is set later. */
static int parse_group(const char *s, size_t n, coap_address_t *ret) {
        char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];

        if (n >= 2 && s[0] == '[' && s[n - 1] == ']')
                s++, n -= 2;
        if (n == 0 || n >= sizeof(host))
                return -EINVAL;
        memcpy(host, s, n);
        host[n] = 0;

        struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_DGRAM,
                .ai_flags = AI_NUMERICHOST,
        };
        struct addrinfo *ai = NULL;
        if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai)
                return -EINVAL;
        if (ai->ai_addrlen > sizeof(ret->addr)) {
                freeaddrinfo(ai);
                return -EINVAL;
        }
        coap_address_init(ret);
        memcpy(&ret->addr, ai->ai_addr, ai->ai_addrlen);
        ret->size = ai->ai_addrlen;
        freeaddrinfo(ai);
        return coap_is_mcast(ret) ? 0 : -EINVAL;
}

/* [multicast][,group=ADDR][,port=N][,seconds=N][,if=NAME][,rt=TYPE][,hops=N];
 * "" means all defaults. */
static int parse_discovery_args(const char *args, struct discovery_args *ret) {
        unsigned port = COAP_DEFAULT_PORT;
        bool have_group = false;
        int r;

        *ret = (struct discovery_args) { .seconds = DISCOVERY_SECONDS_DEFAULT };
        snprintf(ret->rt, sizeof(ret->rt), "%s", DISCOVERY_RT_DEFAULT);
        if (strnlen(args, SMP_CONN_MAX + 1) > SMP_CONN_MAX)
                return -ENAMETOOLONG;

        const char *p = args;
        bool first = true;
        while (*p) {
                size_t n = strcspn(p, ",");
                const char *eq = memchr(p, '=', n);
                size_t key_len = eq ? (size_t) (eq - p) : n;
                const char *v = eq ? eq + 1 : NULL;
                size_t v_len = eq ? n - key_len - 1 : 0;

                if (n == 0)
                        return -EINVAL;
                if (!eq && first && n == 9 && strncmp(p, "multicast", 9) == 0)
                        ; /* the mode, the only one there is */
                else if (!eq)
                        return -EINVAL;
                else if (key_len == 5 && strncmp(p, "group", 5) == 0) {
                        r = parse_group(v, v_len, &ret->group);
                        if (r < 0)
                                return r;
                        have_group = true;
                } else if (key_len == 4 && strncmp(p, "port", 4) == 0) {
                        if (!parse_unsigned(v, v_len, 1, 65535, &port))
                                return -EINVAL;
                } else if (key_len == 7 && strncmp(p, "seconds", 7) == 0) {
                        if (!parse_unsigned(v, v_len, 1, DISCOVERY_SECONDS_MAX, &ret->seconds))
                                return -EINVAL;
                } else if (key_len == 4 && strncmp(p, "hops", 4) == 0) {
                        if (!parse_unsigned(v, v_len, 1, 255, &ret->hops))
                                return -EINVAL;
                } else if (key_len == 2 && strncmp(p, "if", 2) == 0) {
                        if (v_len == 0 || v_len >= sizeof(ret->ifname))
                                return -EINVAL;
                        memcpy(ret->ifname, v, v_len);
                        ret->ifname[v_len] = 0;
                } else if (key_len == 2 && strncmp(p, "rt", 2) == 0) {
                        /* A query value: keep it to characters that need no
                         * percent-encoding and cannot end a link-format token. */
                        if (v_len > DISCOVERY_RT_MAX)
                                return -EINVAL;
                        for (size_t i = 0; i < v_len; i++)
                                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:",
                                            v[i]))
                                        return -EINVAL;
                        memcpy(ret->rt, v, v_len);
                        ret->rt[v_len] = 0;
                } else
                        return -EINVAL;
                first = false;
                p += n;
                if (*p == ',') {
                        p++;
                        if (!*p)
                                return -EINVAL;
                }
        }

        if (!have_group) {
                r = parse_group(DISCOVERY_GROUP_DEFAULT, strlen(DISCOVERY_GROUP_DEFAULT), &ret->group);
                if (r < 0)
                        return r;
        }
        coap_address_set_port(&ret->group, (uint16_t) port);
        if (ret->ifname[0]) {
                ret->ifindex = if_nametoindex(ret->ifname);
                if (ret->ifindex == 0)
                        return -ENODEV;
                /* For IPv6 the scope picks the interface (the kernel honours
                 * it for link- and interface-local groups). */
                if (ret->group.addr.sa.sa_family == AF_INET6)
                        ret->group.addr.sin6.sin6_scope_id = ret->ifindex;
        }
        return 0;
}

/* For if=NAME with an IPv4 group: the interface's first IPv4 address.
 * A socket bound to it sends multicast out of that interface (Linux picks
 * the device owning the source address when no IP_MULTICAST_IF is set,
 * and libcoap 4.3.1 offers no way to set one). */
static int ipv4_of_interface(const char *ifname, coap_address_t *ret) {
        struct ifaddrs *ifa = NULL;
        int r = -EADDRNOTAVAIL;

        if (getifaddrs(&ifa) < 0)
                return -errno;
        for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
                if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && streq(i->ifa_name, ifname)) {
                        coap_address_init(ret);
                        memcpy(&ret->addr.sin, i->ifa_addr, sizeof(ret->addr.sin));
                        ret->addr.sin.sin_port = 0;
                        ret->size = sizeof(ret->addr.sin);
                        r = 0;
                        break;
                }
        freeifaddrs(ifa);
        return r;
}

/* libcoap sends with sendmsg() only once coap_send() runs and then merely
 * logs why it failed.  Ask the kernel first, with a throw-away socket,
 * whether the group is routable from here: connect() on a UDP socket does
 * the route lookup and reports ENETUNREACH (no multicast route), ENODEV,
 * EADDRNOTAVAIL and friends, so the caller gets a real reason. */
static int check_route(const struct discovery_args *a, const coap_address_t *local) {
        _cleanup_close_ int fd = socket(a->group.addr.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (local && bind(fd, &local->addr.sa, local->size) < 0)
                return -errno;
        if (connect(fd, &a->group.addr.sa, a->group.size) < 0)
                return -errno;
        return 0;
}

static void discovery_unref(struct smp_transport_discovery *d) {
        if (--d->n_ref > 0)
                return;
        sd_event_unref(d->event);
        free(d->responders);
        free(d);
}

/* Frees libcoap's side; the token dies with it, so late replies are not
 * taken for a later round's. */
static void discovery_shutdown(struct smp_transport_discovery *d) {
        LOG_TARGET(d->instance);
        d->io_source = sd_event_source_disable_unref(d->io_source);
        d->timer_source = sd_event_source_disable_unref(d->timer_source);
        if (d->session) {
                coap_session_set_app_data(d->session, NULL);
                coap_session_release(d->session);
                d->session = NULL;
        }
        if (d->ctx) {
                coap_free_context(d->ctx);
                d->ctx = NULL;
        }
}

static void discovery_finish(struct smp_transport_discovery *d) {
        if (d->finished)
                return;
        d->finished = true;
        discovery_shutdown(d);
        if (!d->stopped)
                d->found(NULL, d->userdata);
}

/* Formats a responder as HOST:PORT (IPv6 in brackets, a link-local
 * address with its %interface so that the conn can be opened). */
static int format_responder(const coap_address_t *a, char *buf, size_t size) {
        char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 1];
        uint16_t port = coap_address_get_port(a);

        if (a->addr.sa.sa_family == AF_INET) {
                if (!inet_ntop(AF_INET, &a->addr.sin.sin_addr, host, sizeof(host)))
                        return -EINVAL;
                return snprintf(buf, size, "%s:%u", host, port) < (int) size ? 0 : -ENAMETOOLONG;
        }
        if (a->addr.sa.sa_family != AF_INET6)
                return -EAFNOSUPPORT;
        const struct in6_addr *in6 = &a->addr.sin6.sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(in6)) {
                if (!inet_ntop(AF_INET, &in6->s6_addr[12], host, sizeof(host)))
                        return -EINVAL;
                return snprintf(buf, size, "%s:%u", host, port) < (int) size ? 0 : -ENAMETOOLONG;
        }
        if (!inet_ntop(AF_INET6, in6, host, sizeof(host)))
                return -EINVAL;
        if (IN6_IS_ADDR_LINKLOCAL(in6) && a->addr.sin6.sin6_scope_id) {
                char ifname[IF_NAMESIZE];
                if (if_indextoname(a->addr.sin6.sin6_scope_id, ifname)) {
                        size_t l = strlen(host);
                        snprintf(host + l, sizeof(host) - l, "%%%s", ifname);
                }
        }
        return snprintf(buf, size, "[%s]:%u", host, port) < (int) size ? 0 : -ENAMETOOLONG;
}

static void discovery_debug(const struct smp_transport_discovery *d, const char *fmt, ...) _printf_(2, 3);
static void discovery_debug(const struct smp_transport_discovery *d, const char *fmt, ...) {
        const struct smp_host *host = d->instance->host;
        char msg[512];
        va_list ap;

        if (!host->log_enabled(host, SMP_LOG_DEBUG))
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        smp_host_log(host, SMP_LOG_DEBUG, "[discovery %p] %s", (const void *) d, msg);
}

/* libcoap's handler: notes a new responder, reported once libcoap's pass
 * is over (found() may stop the discovery, which frees the context). */
static coap_response_t on_discovery_response(coap_session_t *session, const coap_pdu_t *sent,
                                             const coap_pdu_t *received, const coap_mid_t mid) {
        struct smp_transport_discovery *d = coap_session_get_app_data(session);
        if (!d || d->finished || d->stopped)
                return COAP_RESPONSE_OK;

        /* libcoap 4.3.1 copies each packet's source into the session. */
        const coap_address_t *from = coap_session_get_addr_remote(session);
        coap_bin_const_t token = coap_pdu_get_token(received);
        if (!from || token.length != sizeof(d->token) || memcmp(token.s, d->token, sizeof(d->token)) != 0)
                return COAP_RESPONSE_OK; /* not an answer to this round */
        if (coap_pdu_get_code(received) != COAP_RESPONSE_CODE_CONTENT)
                return COAP_RESPONSE_OK;

        coap_opt_iterator_t it;
        coap_opt_t *cf = coap_check_option(received, COAP_OPTION_CONTENT_FORMAT, &it);
        if (!cf || coap_decode_var_bytes(coap_opt_value(cf), coap_opt_length(cf)) !=
                           COAP_MEDIATYPE_APPLICATION_LINK_FORMAT)
                return COAP_RESPONSE_OK;
        /* Only the first block: block mode is off on this context, so a
         * large listing is not fetched further (see the top). */
        size_t len = 0;
        const uint8_t *data = NULL;
        if (!coap_get_data(received, &len, &data) || !coap_link_format_lists_omgr((const char *) data, len, d->rt))
                return COAP_RESPONSE_OK;

        for (size_t i = 0; i < d->n_responders; i++)
                if (coap_address_equals(&d->responders[i].addr, from))
                        return COAP_RESPONSE_OK; /* answered twice */
        if (d->n_responders >= DISCOVERY_RESPONDERS_MAX) {
                discovery_debug(d, "more than %u responders, ignoring the rest", DISCOVERY_RESPONDERS_MAX);
                return COAP_RESPONSE_OK;
        }
        if (d->n_responders == d->n_alloc) {
                size_t n = d->n_alloc ? d->n_alloc * 2 : 16;
                struct responder *r = reallocarray(d->responders, n, sizeof(*r));
                if (!r)
                        return COAP_RESPONSE_OK;
                d->responders = r;
                d->n_alloc = n;
        }
        d->responders[d->n_responders++] = (struct responder) { .addr = *from };
        return COAP_RESPONSE_OK;
}

static void discovery_report(struct smp_transport_discovery *d) {
        for (size_t i = 0; i < d->n_responders && !d->stopped && !d->finished; i++) {
                struct responder *r = &d->responders[i];
                char address[INET6_ADDRSTRLEN + IF_NAMESIZE + 16], conn[sizeof(address) + 8];
                if (r->reported)
                        continue;
                r->reported = true;
                if (format_responder(&r->addr, address, sizeof(address)) < 0)
                        continue;
                snprintf(conn, sizeof(conn), "coap:%s", address);
                discovery_debug(d, "found %s", conn);
                d->found(&(const struct smp_discovered) { .conn = conn, .address = address }, d->userdata);
        }
}

static int on_discovery_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct smp_transport_discovery *d = userdata;
        LOG_TARGET(d->instance);

        d->n_ref++;
        int r = coap_io_process(d->ctx, COAP_IO_NO_WAIT);
        discovery_report(d);
        if (r < 0 && !d->stopped && !d->finished) {
                discovery_debug(d, "libcoap I/O failed, ending the round");
                discovery_finish(d);
        }
        discovery_unref(d);
        return 0;
}

static int on_discovery_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct smp_transport_discovery *d = userdata;

        d->n_ref++;
        discovery_debug(d, "round over, %zu responder(s)", d->n_responders);
        discovery_finish(d);
        discovery_unref(d);
        return 0;
}

static int discovery_send(struct smp_transport_discovery *d) {
        size_t rt_len = strlen(d->rt);
        char query[DISCOVERY_RT_MAX + 4];

        coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_NON, COAP_REQUEST_CODE_GET, coap_new_message_id(d->session),
                                        coap_session_max_pdu_size(d->session));
        if (!pdu)
                return -ENOMEM;
        snprintf(query, sizeof(query), "rt=%s", d->rt);
        if (!coap_add_token(pdu, sizeof(d->token), d->token) ||
            !coap_add_option(pdu, COAP_OPTION_URI_PATH, 11, (const uint8_t *) ".well-known") ||
            !coap_add_option(pdu, COAP_OPTION_URI_PATH, 4, (const uint8_t *) "core") ||
            (rt_len > 0 && !coap_add_option(pdu, COAP_OPTION_URI_QUERY, rt_len + 3, (const uint8_t *) query))) {
                coap_delete_pdu(pdu);
                return -ENOMEM;
        }
        if (coap_send(d->session, pdu) == COAP_INVALID_MID) /* consumes pdu */
                return -EIO;
        return 0;
}

static int coap_discover_start(struct smp_transport_instance *instance, sd_event *event, const char *args,
                               smp_discovered_fn found, void *userdata, struct smp_transport_discovery **ret) {
        LOG_TARGET(instance);
        struct discovery_args a;
        coap_address_t local;
        bool have_local = false;
        int r;

        if (!event || !args || !found || !ret)
                return -EINVAL;
        r = parse_discovery_args(args, &a);
        if (r < 0)
                return r;
        if (a.ifindex && a.group.addr.sa.sa_family == AF_INET) {
                r = ipv4_of_interface(a.ifname, &local);
                if (r < 0)
                        return r;
                have_local = true;
        }
        r = check_route(&a, have_local ? &local : NULL);
        if (r < 0)
                return r;

        struct smp_transport_discovery *d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->instance = instance;
        d->n_ref = 1;
        d->event = sd_event_ref(event);
        d->found = found;
        d->userdata = userdata;
        memcpy(d->rt, a.rt, sizeof(d->rt));
        /* Random, so that replies to an earlier round (or to somebody
         * else's discovery) are not taken for this one's. */
        if (!coap_prng(d->token, sizeof(d->token))) {
                r = -EIO;
                goto fail;
        }

        d->ctx = coap_new_context(NULL);
        if (!d->ctx) {
                r = -ENOMEM;
                goto fail;
        }
        /* No block mode: libcoap would ask the last responder for the
         * next block of a long listing, and the session's remote address
         * changes with every reply. */
        coap_register_response_handler(d->ctx, on_discovery_response);
        d->session = coap_new_client_session(d->ctx, have_local ? &local : NULL, &a.group, COAP_PROTO_UDP);
        if (!d->session) {
                r = -EADDRNOTAVAIL;
                goto fail;
        }
        coap_session_set_app_data(d->session, d);
        if (a.hops && !coap_mcast_set_hops(d->session, a.hops)) {
                r = -EINVAL;
                goto fail;
        }

        int fd = coap_context_get_coap_fd(d->ctx);
        if (fd < 0) {
                r = -EOPNOTSUPP;
                goto fail;
        }
        r = sd_event_add_io(event, &d->io_source, fd, EPOLLIN, on_discovery_io, d);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(d->io_source, "coap-discovery");
        r = sd_event_add_time_relative(event, &d->timer_source, CLOCK_MONOTONIC,
                                       (uint64_t) a.seconds * 1000000u, 10000, on_discovery_timer, d);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(d->timer_source, "coap-discovery-end");

        r = discovery_send(d);
        if (r < 0)
                goto fail;
        discovery_debug(d, "GET /.well-known/core%s%s sent, listening %u s", d->rt[0] ? "?rt=" : "", d->rt,
                        a.seconds);
        *ret = d;
        return 0;

fail:
        discovery_shutdown(d);
        discovery_unref(d);
        return r;
}

static void coap_discover_stop(struct smp_transport_discovery *d) {
        if (!d || d->stopped)
                return;
        d->stopped = true;
        discovery_shutdown(d);
        discovery_unref(d);
}

static int coap_instance_new(const struct smp_host *host, struct smp_transport_instance **ret) {
        struct smp_transport_instance *i = calloc(1, sizeof(*i));
        if (!i)
                return -ENOMEM;
        i->host = host;
        /* Both process-wide in libcoap, and idempotent. */
        coap_startup();
        coap_set_log_handler(on_coap_log);
        *ret = i;
        return 0;
}

static void coap_instance_free(struct smp_transport_instance *i) {
        if (log_target == i)
                log_target = NULL;
        free(i);
}

const struct smp_transport smpgw_transport_plugin = {
        .abi_version = SMP_TRANSPORT_ABI_VERSION,
        .struct_size = sizeof(struct smp_transport),
        .name = "coap",
        .description = "SMP over CoAP (newtmgr OIC/OMP: PUT /omgr)",
        .conn_syntax = &coap_syntax,
        .instance_new = coap_instance_new,
        .instance_free = coap_instance_free,
        .open = coap_link_open,
        .close = coap_link_close,
        .send = coap_link_send,
        .get_info = coap_link_get_info,
        .get_stats = coap_link_get_stats,
        .discover_start = coap_discover_start,
        .discover_stop = coap_discover_stop,
};
