/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The "coap" transport: SMP over CoAP the way newtmgr's OIC transport
 * talks to Mynewt's oicmgr ("OMP", see smp-omp.h and protocol.md §6).
 *
 *   coap:HOST[:PORT][,mtu=N]
 *
 * HOST is a numeric IPv4 address, an IPv6 address in brackets (a scope
 * may follow '%': [fe80::1%eth0]) or "localhost" (127.0.0.1).  PORT
 * defaults to 5683.  mtu=N sets the CoAP datagram size libcoap builds
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
 * Logging: the plugin interface has no log callback yet; set
 * SMPGW_DEBUG=1 (or a value containing "coap") to get debug lines, and
 * libcoap's own messages, on stderr.
 */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>

#include <coap3/coap.h>
#include <systemd/sd-event.h>

#include "smpgw/smp-frame.h"
#include "smpgw/smp-omp.h"
#include "smpgw/smp-transport.h"
#include "util.h"

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

static int debug_enabled = -1;

static bool debugging(void) {
        if (debug_enabled < 0) {
                const char *e = getenv("SMPGW_DEBUG");
                debug_enabled = e && *e && (streq(e, "1") || streq(e, "all") || strstr(e, "coap"));
        }
        return debug_enabled > 0;
}

_printf_(2, 3) static void link_debug(const struct smp_link *l, const char *fmt, ...) {
        if (!debugging())
                return;
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "smpgw-coap[%p]: ", (const void *) l);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

static void on_coap_log(coap_log_t level, const char *message) {
        if (!debugging())
                return;
        size_t n = strlen(message);
        while (n > 0 && (message[n - 1] == '\n' || message[n - 1] == '\r'))
                n--;
        fprintf(stderr, "smpgw-coap: libcoap: %.*s\n", (int) n, message);
}

static void coap_global_setup(void) {
        static bool done;
        if (done)
                return;
        done = true;
        coap_startup();
        /* Global in libcoap: no user pointer.  Only this plugin uses
         * libcoap in a gateway process. */
        coap_set_log_handler(on_coap_log);
        if (debugging() && getenv("SMPGW_COAP_TRACE"))
                coap_set_log_level(LOG_DEBUG);
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

/* Parses "HOST[:PORT][,mtu=N]" into an address and options. */
static int parse_address(const char *address, coap_address_t *ret_addr, unsigned *ret_mtu) {
        char host[128], port[8] = COAP_DEFAULT_PORT_STR;
        const char *p = address, *end;
        unsigned mtu = 0;

        if (!address || strlen(address) >= SMP_CONN_MAX)
                return -EINVAL;

        if (*p == '[') {
                end = strchr(p, ']');
                if (!end || end == p + 1 || (size_t) (end - p - 1) >= sizeof(host))
                        return -EINVAL;
                memcpy(host, p + 1, (size_t) (end - p - 1));
                host[end - p - 1] = 0;
                p = end + 1;
        } else {
                size_t n = strcspn(p, ":,");
                if (n == 0 || n >= sizeof(host))
                        return -EINVAL;
                memcpy(host, p, n);
                host[n] = 0;
                p += n;
                if (streq(host, "localhost"))
                        strcpy(host, "127.0.0.1");
                else if (strchr(host, ':'))
                        return -EINVAL;
        }

        if (*p == ':') {
                p++;
                size_t n = strspn(p, "0123456789");
                if (n == 0 || n > 5)
                        return -EINVAL;
                memcpy(port, p, n);
                port[n] = 0;
                unsigned long v = strtoul(port, NULL, 10);
                if (v == 0 || v > 65535)
                        return -EINVAL;
                p += n;
        }

        while (*p == ',') {
                p++;
                if (strncmp(p, "mtu=", 4) == 0) {
                        char *e;
                        errno = 0;
                        unsigned long v = strtoul(p + 4, &e, 10);
                        if (errno || e == p + 4 || v < PDU_MTU_MIN || v > PDU_MTU_MAX)
                                return -EINVAL;
                        mtu = (unsigned) v;
                        p = e;
                } else
                        return -EINVAL;
        }
        if (*p)
                return -EINVAL;

        struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_DGRAM,
                .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
        };
        struct addrinfo *ai = NULL;
        if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
                return -EINVAL;
        if (ai->ai_addrlen > sizeof(ret_addr->addr)) {
                freeaddrinfo(ai);
                return -EINVAL;
        }
        coap_address_init(ret_addr);
        memcpy(&ret_addr->addr, ai->ai_addr, ai->ai_addrlen);
        ret_addr->size = ai->ai_addrlen;
        freeaddrinfo(ai);
        *ret_mtu = mtu;
        return 0;
}

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

static int coap_link_open(sd_event *event, const char *address, const struct smp_link_callbacks *cb,
                          void *userdata, struct smp_link **ret) {
        coap_address_t dst;
        unsigned mtu;
        int r;

        if (!event || !cb || !ret)
                return -EINVAL;
        r = parse_address(address, &dst, &mtu);
        if (r < 0)
                return r;

        coap_global_setup();

        struct smp_link *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
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
                coap_session_set_mtu(l->session, mtu);
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

        link_debug(l, "open %s: datagram %zu, block %zu, frame mtu %zu", address, l->pdu_mtu, l->block_size,
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

__attribute__((visibility("default"))) const struct smp_transport smpgw_transport_plugin = {
        .abi_version = SMP_TRANSPORT_ABI_VERSION,
        .name = "coap",
        .description = "SMP over CoAP (newtmgr OIC/OMP: PUT /omgr)",
        .open = coap_link_open,
        .close = coap_link_close,
        .send = coap_link_send,
        .get_info = coap_link_get_info,
        .get_stats = coap_link_get_stats,
        .discover_start = NULL,
        .discover_stop = NULL,
};
