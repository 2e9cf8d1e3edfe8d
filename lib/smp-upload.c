/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

#include "smpgw/smp-img.h"
#include "smpgw/smp-os.h"
#include "smpgw/smp-upload.h"
#include "util.h"

/* Without mcumgr parameters (the command is optional in Zephyr), assume
 * its defaults: CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE 384, COUNT 4. */
#define ASSUMED_BUF_SIZE 384u
#define ASSUMED_BUF_COUNT 4u
/* Bounds of the per-chunk timeout derived from the round-trip time. */
#define CHUNK_TIMEOUT_MIN_USEC (250u * 1000u)
#define CHUNK_TIMEOUT_MAX_USEC (20u * 1000u * 1000u)
#define PARAMS_TIMEOUT_USEC (3u * 1000u * 1000u)

struct chunk {
        struct smp_upload *upload;
        struct chunk *next;
        uint64_t off;
        size_t len;
        struct smp_request *req;
};

struct smp_upload {
        struct smp_session *session;
        struct smp_upload_params p;
        uint8_t sha[SHA256_DIGEST_LENGTH];

        struct smp_request *params_req;
        struct chunk *chunks;        /* in flight, in send order */
        unsigned in_flight;

        size_t budget;               /* bytes a whole SMP packet may take */
        size_t chunk_max;            /* data bytes of a full later chunk */
        unsigned window, window_max, clean_answers;

        uint64_t acked;              /* the device has everything below */
        uint64_t next_off;           /* next offset to send */
        bool first_outstanding;      /* the off=0 chunk is in flight */
        bool small_first;            /* the off=0 chunk is kept to FIRST_CHUNK_DATA_MAX */
        bool resyncing;              /* draining after a mismatch or loss */
        bool resync_known;
        uint64_t resync_off;
        unsigned failures;           /* since the last progress */

        uint64_t start_usec;
        struct smp_upload_result result;
        bool finished;
};

void smp_upload_file_sha256(const uint8_t *data, size_t len, uint8_t ret[32]) {
        SHA256(data, len, ret);
}

/* The clock itself, not the loop's cached iteration time: rates over a
 * fast local upload would otherwise divide by zero. */
static uint64_t now_usec(struct smp_upload *u) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void chunks_cancel_all(struct smp_upload *u) {
        while (u->chunks) {
                struct chunk *c = u->chunks;
                u->chunks = c->next;
                smp_request_cancel(c->req);
                free(c);
        }
        u->in_flight = 0;
}

static void upload_free(struct smp_upload *u) {
        chunks_cancel_all(u);
        smp_request_cancel(u->params_req);
        free(u);
}

void smp_upload_cancel(struct smp_upload *u) {
        if (u)
                upload_free(u);
}

static double run_rate(struct smp_upload *u) {
        uint64_t elapsed = now_usec(u) - u->start_usec;
        uint64_t bytes = u->acked > u->result.resumed_at ? u->acked - u->result.resumed_at : 0;
        return elapsed > 0 ? (double) bytes * 1e6 / (double) elapsed : 0;
}

static void finish(struct smp_upload *u, int error) {
        if (u->finished)
                return;
        u->finished = true;
        chunks_cancel_all(u);
        u->params_req = NULL; /* completing or already done */
        u->result.error = error;
        u->result.elapsed_usec = now_usec(u) - u->start_usec;
        u->result.rate = run_rate(u);
        u->result.chunk = u->chunk_max;
        if (u->p.done)
                u->p.done(u, &u->result, u->p.userdata);
        upload_free(u);
}

static void report_progress(struct smp_upload *u) {
        if (!u->p.progress)
                return;
        double rate = run_rate(u);
        struct smp_upload_progress pr = {
                .offset = u->acked,
                .total = u->p.len,
                .resumed_at = u->result.resumed_at,
                .rate = rate,
                .eta_sec = rate > 0 ? (double) (u->p.len - u->acked) / rate : -1,
                .window = u->window,
                .chunk = u->chunk_max,
                .retransmits = u->result.retransmits,
        };
        u->p.progress(u, &pr, u->p.userdata);
}

static uint64_t chunk_timeout(struct smp_upload *u) {
        if (u->p.timeout_usec)
                return u->p.timeout_usec;
        struct smp_session_stats st;
        smp_session_get_stats(u->session, &st);
        if (st.srtt_usec == 0)
                return 2500u * 1000u; /* what Nordic's libraries use */
        /* RFC 6298's srtt + 4 rttvar, and never under twice the smoothed
         * round trip: a window of queued chunks stretches single ones */
        uint64_t t = MAX(st.srtt_usec + 4 * st.rttvar_usec, 2 * st.srtt_usec);
        t = MAX(t, (uint64_t) CHUNK_TIMEOUT_MIN_USEC);
        /* and back off while nothing gets through (RFC 6298 5.5), so a
         * link that is down for seconds is waited out, not given up on */
        t <<= MIN(u->failures, 6u);
        return MIN(t, (uint64_t) CHUNK_TIMEOUT_MAX_USEC);
}

static void on_chunk_done(struct smp_session *s, int error, const struct smp_header *hdr,
                          const uint8_t *body, size_t len, void *userdata);

/* The request for a chunk at off: a chunk at offset 0 is a first chunk
 * and carries the whole file's length and SHA-256 (Zephyr needs len there,
 * and matches sha to resume). */
static struct smp_img_upload_req chunk_request(const struct smp_upload *u, uint64_t off, size_t n) {
        struct smp_img_upload_req req = {
                .off = off,
                .data = smp_cbor_slice_make(u->p.data + off, n),
        };
        if (off == 0) {
                req.has_len = true;
                req.len = u->p.len;
                req.sha = smp_cbor_slice_make(u->sha, sizeof(u->sha));
                req.has_image = u->p.has_image;
                req.image = u->p.image;
                req.has_upgrade = u->p.upgrade;
                req.upgrade = u->p.upgrade;
        }
        return req;
}

/* The first chunk waits out the slot erase (40 s), so a first chunk lost
 * because the path is narrower than the link MTU we assumed (a UDP
 * datagram crossing a 6LoWPAN/Thread border router, 1280-byte IPv6
 * MTU) would cost that long per budget shrink.  It is kept small enough
 * for any path; later chunks, full size, find the path's limit with
 * round-trip timeouts.  Zephyr needs the image header (32 bytes) in it. */
#define FIRST_CHUNK_DATA_MAX 512u

/* Data bytes for a chunk at off within the budget. */
static int chunk_size_at(struct smp_upload *u, uint64_t off, size_t *ret) {
        struct smp_img_upload_req req = chunk_request(u, off, 0);
        size_t n;
        int e = smp_img_upload_max_data(&req, u->budget, &n);
        if (e < 0)
                return e;
        if (u->p.chunk)
                n = MIN(n, u->p.chunk);
        if (off == 0 && u->small_first)
                n = MIN(n, (size_t) FIRST_CHUNK_DATA_MAX);
        *ret = MIN(n, (size_t) (u->p.len - off));
        return 0;
}

static int send_chunk(struct smp_upload *u, uint64_t off) {
        size_t n;
        int e;

        e = chunk_size_at(u, off, &n);
        if (e < 0)
                return e;
        if (n == 0 && u->p.len > off)
                return -EMSGSIZE; /* not one data byte fits: the device's buffer is too small */

        const struct smp_img_upload_req req = chunk_request(u, off, n);
        _cleanup_free_ uint8_t *body = malloc(u->budget);
        if (!body)
                return -ENOMEM;
        struct smp_cbor_writer w;
        smp_cbor_writer_init(&w, body, u->budget - SMP_HEADER_SIZE);
        (void) smp_img_upload_req_encode(&w, &req);
        e = smp_cbor_writer_finish(&w);
        if (e < 0)
                return e;

        struct chunk *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->upload = u;
        c->off = off;
        c->len = n;
        const struct smp_request_params rp = {
                .op = SMP_OP_WRITE,
                .group = SMP_GROUP_IMAGE,
                .id = SMP_IMG_CMD_UPLOAD,
                .body = body,
                .body_len = (size_t) e,
                .timeout_usec = off == 0 ? (u->p.first_timeout_usec ? u->p.first_timeout_usec
                                                                     : SMP_UPLOAD_FIRST_TIMEOUT_DEFAULT_USEC)
                                         : chunk_timeout(u),
        };
        e = smp_session_send(u->session, &rp, on_chunk_done, c, &c->req);
        if (e < 0) {
                free(c);
                return e;
        }
        /* append */
        struct chunk **p = &u->chunks;
        while (*p)
                p = &(*p)->next;
        *p = c;
        u->in_flight++;
        if (off == 0)
                u->first_outstanding = true;
        u->next_off = off + n;
        return 0;
}

/* Keeps the window full. */
static void pump(struct smp_upload *u) {
        while (!u->finished && !u->resyncing && !u->first_outstanding &&
               u->in_flight < (u->next_off == 0 ? 1u : u->window) && u->next_off < u->p.len) {
                int e = send_chunk(u, u->next_off);
                if (e == -EBUSY)
                        return; /* sequence numbers exhausted: wait for answers */
                if (e < 0) {
                        finish(u, e);
                        return;
                }
                if (u->next_off == u->p.len || u->first_outstanding)
                        break;
        }
}

static void chunk_remove(struct smp_upload *u, struct chunk *c) {
        for (struct chunk **p = &u->chunks; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        u->in_flight--;
        if (c->off == 0)
                u->first_outstanding = false;
        free(c);
}

static void shrink_window(struct smp_upload *u) {
        u->window = MAX(1u, u->window / 2);
        u->clean_answers = 0;
}

/* All chunks drained after a loss or mismatch: go on from what the device
 * said last, or from what it acknowledged before. */
/* Smallest whole packet the budget shrinks to when packets vanish. */
#define BUDGET_FLOOR 128u

static void resync_done(struct smp_upload *u) {
        u->resyncing = false;
        /* Nothing at all came back, twice in a row: the packets may be too
         * large for the path (an MTU nobody told us about drops them
         * silently).  Smaller chunks cost a little; never finishing costs
         * the upload. */
        if (!u->resync_known && u->failures >= 2 && u->budget > BUDGET_FLOOR && !u->p.chunk) {
                u->budget = MAX(u->budget * 3 / 4, (size_t) BUDGET_FLOOR);
                (void) chunk_size_at(u, u->p.len > 1 ? 1 : 0, &u->chunk_max);
        }
        uint64_t from = u->resync_known ? u->resync_off : u->acked;
        u->resync_known = false;
        if (from < u->acked || from > u->p.len)
                from = MIN(from, (uint64_t) u->p.len);
        if (u->next_off > from)
                u->result.retransmits += (u->next_off - from + u->chunk_max - 1) / MAX(u->chunk_max, (size_t) 1);
        u->acked = from;
        u->next_off = from;
}

static void on_chunk_done(struct smp_session *s, int error, const struct smp_header *hdr,
                          const uint8_t *body, size_t len, void *userdata) {
        struct chunk *c = userdata;
        struct smp_upload *u = c->upload;
        uint64_t c_off = c->off, c_end = c->off + c->len;

        c->req = NULL; /* completed: not ours to cancel any more */
        chunk_remove(u, c);

        if (error == -ECONNRESET) {
                finish(u, error);
                return;
        }
        if (error < 0 && c_end <= u->acked) {
                /* only the answer was lost: a later answer already went
                 * past this chunk (Nordic's libraries forgive it too) */
        } else if (error < 0) {
                /* one failure per episode: a lost link times out every
                 * chunk in flight, which is one event, not a window's worth */
                if (!u->resyncing) {
                        u->failures++;
                        shrink_window(u);
                        u->resyncing = true;
                }
        } else {
                struct smp_img_upload_rsp rsp;
                int e = smp_img_upload_rsp_decode(body, len, &rsp, NULL);
                if (e == -EREMOTEIO) {
                        (void) smp_status_decode(body, len, &u->result.status, NULL);
                        finish(u, -EREMOTEIO);
                        return;
                }
                if (e < 0 || rsp.off > u->p.len) {
                        finish(u, -EBADMSG);
                        return;
                }
                if (c_off == 0 && u->acked == 0 && rsp.off > c_end)
                        u->result.resumed_at = rsp.off; /* the device had more: resumed */
                if (rsp.off == u->p.len) {
                        u->acked = rsp.off;
                        u->result.has_match = rsp.has_match;
                        u->result.match = rsp.match;
                        report_progress(u);
                        finish(u, rsp.has_match && !rsp.match ? -EIO : 0);
                        return;
                }
                if (!u->resyncing && rsp.off == c_end) {
                        if (rsp.off > u->acked) {
                                u->acked = rsp.off;
                                u->failures = 0;
                                report_progress(u);
                        }
                        if (++u->clean_answers >= u->window && u->window < u->window_max) {
                                u->window++;
                                u->clean_answers = 0;
                        }
                        u->result.window_max = MAX(u->result.window_max, u->window);
                } else {
                        /* The device wants another offset: a chunk before
                         * this one was lost, or the device restarted. */
                        if (!u->resyncing) {
                                u->resyncing = true;
                                if (c_off != 0)
                                        shrink_window(u);
                                /* going back (or nowhere) is a failure;
                                 * going ahead is a resume */
                                if (rsp.off <= c_off)
                                        u->failures++;
                        }
                        u->resync_known = true;
                        u->resync_off = rsp.off;
                }
        }

        if (u->failures > u->p.max_failures) {
                finish(u, error < 0 ? error : -EPROTO);
                return;
        }
        if (u->resyncing && u->in_flight == 0)
                resync_done(u);
        pump(u);
}

static int start_chunks(struct smp_upload *u) {
        struct smp_link_info info;
        int e;

        e = smp_session_get_link_info(u->session, &info);
        if (e < 0)
                return e;
        size_t budget = u->result.buf_size > info.buffer_overhead ? u->result.buf_size - info.buffer_overhead : 0;
        if (!info.fragments)
                budget = MIN(budget, info.mtu);
        budget = MIN(budget, (size_t) SMP_FRAME_MAX);
        u->budget = budget;
        /* Links that fragment (BLE, CoAP block-wise) have no path MTU to
         * run into; a --chunk given by the user is taken as it is. */
        u->small_first = !info.fragments && !u->p.chunk;

        e = chunk_size_at(u, u->p.len > 1 ? 1 : 0, &u->chunk_max);
        if (e < 0)
                return e;
        unsigned w = u->p.window ? u->p.window : (u->result.buf_count > 1 ? u->result.buf_count - 1 : 1);
        u->window = u->window_max = MIN(w, (unsigned) SMP_UPLOAD_WINDOW_MAX);
        u->result.window_max = 1;
        /* restart at offset 0: the device answers with its own offset when
         * it has this file's upload in progress */
        u->next_off = 0;
        pump(u);
        return 0;
}

static void on_params_done(struct smp_session *s, int error, const struct smp_header *hdr,
                           const uint8_t *body, size_t len, void *userdata) {
        struct smp_upload *u = userdata;
        struct smp_os_params_rsp rsp;

        u->params_req = NULL;
        if (error == -ECONNRESET) {
                finish(u, error);
                return;
        }
        if (error == 0 && smp_os_params_rsp_decode(body, len, &rsp, NULL) >= 0 && rsp.buf_size >= 64) {
                u->result.buf_size = rsp.buf_size;
                u->result.buf_count = MAX(rsp.buf_count, 1u);
        } else {
                /* older firmware without the command, or a timeout: go on
                 * with Zephyr's defaults */
                u->result.buf_size = ASSUMED_BUF_SIZE;
                u->result.buf_count = ASSUMED_BUF_COUNT;
        }
        int e = start_chunks(u);
        if (e < 0)
                finish(u, e);
}

int smp_upload_start(struct smp_session *s, const struct smp_upload_params *params, struct smp_upload **ret) {
        int e;

        if (!s || !params || (!params->data && params->len > 0) || params->len == 0)
                return -EINVAL;
        struct smp_upload *u = calloc(1, sizeof(*u));
        if (!u)
                return -ENOMEM;
        u->session = s;
        u->p = *params;
        if (!u->p.max_failures)
                u->p.max_failures = SMP_UPLOAD_MAX_FAILURES_DEFAULT;
        smp_upload_file_sha256(u->p.data, u->p.len, u->sha);
        u->start_usec = now_usec(u);

        if (u->p.buf_size) {
                u->result.buf_size = u->p.buf_size;
                u->result.buf_count = MAX(u->p.buf_count, 1u);
                e = start_chunks(u);
        } else {
                const struct smp_request_params rp = {
                        .op = SMP_OP_READ,
                        .group = SMP_GROUP_OS,
                        .id = SMP_OS_CMD_MCUMGR_PARAMS,
                        .body = (const uint8_t[]) { 0xa0 },
                        .body_len = 1,
                        .timeout_usec = PARAMS_TIMEOUT_USEC,
                        .idempotent = true,
                };
                e = smp_session_send(s, &rp, on_params_done, u, &u->params_req);
        }
        if (e < 0) {
                upload_free(u);
                return e;
        }
        if (ret)
                *ret = u;
        return 0;
}
