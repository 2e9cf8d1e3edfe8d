/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An SMP session with one device over one transport link, on an sd-event
 * loop: sequence numbers, request/response matching, per-request
 * timeouts, retransmission of requests the caller marks as safe to
 * repeat, and the SMP version: a session starts with version 2 and drops
 * to version 1 for good when the device answers with version 0 (firmware
 * older than SMP v2 does; current Zephyr echoes the request's version).
 *
 * No threads, no blocking calls.  Answers whose sequence number, group
 * and command do not match a request in flight (late answers to a
 * retransmitted request, duplicates) are counted and ignored.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include <smpgw/smp-conn.h>
#include <smpgw/smp-context.h>
#include <smpgw/smp-frame.h>
#include <smpgw/smp-transport.h>

#ifdef __cplusplus
extern "C" {
#endif

struct smp_session;
struct smp_request;

/* Default time to wait for an answer, and the longest a caller may ask
 * for (the first upload chunk may wait for a slot erase). */
#define SMP_SESSION_TIMEOUT_DEFAULT_USEC (2u * 1000000u)
#define SMP_SESSION_TIMEOUT_MAX_USEC (300u * 1000000u)
/* Retransmissions of a request marked idempotent, by default. */
#define SMP_SESSION_RETRIES_DEFAULT 3u

struct smp_request_params {
        uint8_t op;                /* SMP_OP_READ or SMP_OP_WRITE */
        uint16_t group;
        uint8_t id;
        const uint8_t *body;       /* CBOR body, copied */
        size_t body_len;
        uint64_t timeout_usec;     /* per transmission; 0: the session's */
        /* Repeating the request is harmless (reads, a test of the same
         * hash, an upload chunk at an offset): it is retransmitted on
         * timeout, up to `retries` times (0: the session's default). */
        bool idempotent;
        unsigned retries;
        /* The answer waits on work the device does first (the first
         * upload chunk erases the slot, seconds to tens of seconds), so
         * its time says nothing of the link: it is no sample of the
         * round-trip time the session's timeouts follow. */
        bool no_rtt_sample;
};

/* The answer.  error is 0 with hdr/body set (the body may still report
 * an SMP error: decode it with smp_status_decode() or a typed decoder),
 * or -ETIMEDOUT, -ECONNRESET (the link went away), -EMSGSIZE (larger than
 * the link carries).  hdr and body are valid only during the call. */
typedef void (*smp_request_done_fn)(struct smp_session *session, int error,
                                    const struct smp_header *hdr, const uint8_t *body,
                                    size_t body_len, void *userdata);

/* Notified when the link goes down (a device reset over BLE, a serial
 * hang-up).  Requests in flight have already failed with -ECONNRESET. */
typedef void (*smp_session_closed_fn)(struct smp_session *session, int error, void *userdata);

struct smp_session_stats {
        uint64_t requests, answers, timeouts, retransmits;
        uint64_t ignored_answers;   /* late, duplicate or unmatched */
        uint64_t tx_bytes, rx_bytes;
        uint64_t srtt_usec;         /* smoothed round-trip time, 0 if none yet */
        uint64_t rttvar_usec;       /* its mean deviation (RFC 6298) */
};

/* Opens a session to conn ("udp:127.0.0.1:1337", ...) with the transport
 * of its scheme in ctx.  -EINVAL: not a valid connection string; -ENOENT,
 * -EPROTO: no usable transport.  To tell people why, parse first with
 * smp_context_parse_conn(), which says so in a sentence, and open the
 * result with smp_session_open_conn(). */
int smp_session_open(struct smp_context *ctx, sd_event *event, const char *conn, struct smp_session **ret);
/* The same with a parsed connection string; the session takes a
 * reference on conn (and so on its context). */
int smp_session_open_conn(sd_event *event, struct smp_conn *conn, struct smp_session **ret);
/* Frees the session.  Requests in flight are dropped without their
 * callbacks being called. */
struct smp_session *smp_session_free(struct smp_session *s);

/* Closes the link (if open) and opens it again: after a reset, for
 * transports whose link dies with the device (BLE, some serial).
 * Requests in flight fail with -ECONNRESET. */
int smp_session_reconnect(struct smp_session *s);
bool smp_session_is_open(const struct smp_session *s);

void smp_session_set_closed_handler(struct smp_session *s, smp_session_closed_fn fn, void *userdata);
void smp_session_set_timeout(struct smp_session *s, uint64_t usec);
void smp_session_set_retries(struct smp_session *s, unsigned retries);
/* SMP_VERSION_2 (default) or SMP_VERSION_1; the session falls back to 1
 * on its own when the device answers with version 0. */
void smp_session_set_version(struct smp_session *s, uint8_t version);
uint8_t smp_session_get_version(const struct smp_session *s);

/* Link facts (MTU, fragments, buffer overhead), 0 or -ENOTCONN. */
int smp_session_get_link_info(struct smp_session *s, struct smp_link_info *ret);
void smp_session_get_stats(const struct smp_session *s, struct smp_session_stats *ret);
unsigned smp_session_in_flight(const struct smp_session *s);
/* The local adapter the session's link goes through ("hci0" for ble;
 * smp_transport.get_adapter), or, once the link closed, the one the last
 * link went through: so the closed handler can put a failure such as
 * -EUSERS ("the adapter has no free link") down to an adapter.  NULL when
 * unknown or the transport has no such notion.  Valid until the next call
 * into the session. */
const char *smp_session_get_adapter(const struct smp_session *s);
/* The canonical connection string (smp-conn.h). */
const char *smp_session_get_conn(const struct smp_session *s);
sd_event *smp_session_get_event(const struct smp_session *s);

/* Sends a request.  done is called exactly once unless the request is
 * cancelled or the session freed.  *ret (may be NULL) is a handle valid
 * until done runs.  -EMSGSIZE: body over 65535 bytes; -ENOTCONN: no link. */
int smp_session_send(struct smp_session *s, const struct smp_request_params *params,
                     smp_request_done_fn done, void *userdata, struct smp_request **ret);

/* Forgets a request: its callback will not be called. */
void smp_request_cancel(struct smp_request *r);

/* The sequence number a request went out with. */
uint8_t smp_request_get_seq(const struct smp_request *r);

#ifdef __cplusplus
}
#endif
