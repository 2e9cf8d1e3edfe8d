/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smpgw/smp-img.h"
#include "smpgw/smp-os.h"
#include "smpgw/smp-upload.h"
#include "plpmtu.h"
#include "sha-digest.h"
#include "util.h"

/* Without mcumgr parameters (the command is optional in Zephyr), assume
 * its defaults: CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE 384, COUNT 4. */
#define ASSUMED_BUF_SIZE 384u
#define ASSUMED_BUF_COUNT 4u
/* Bounds of the per-chunk timeout derived from the round-trip time. */
#define CHUNK_TIMEOUT_MIN_USEC (250u * 1000u)
#define CHUNK_TIMEOUT_MAX_USEC (20u * 1000u * 1000u)
#define PARAMS_TIMEOUT_USEC (3u * 1000u * 1000u)
/* Floor of a probe's timeout: a probe lost is mostly noticed sooner, by
 * an answer to a packet sent after it; the timer is for when nothing
 * else is in flight (--window 1, the end of the file). */
#define PROBE_TIMEOUT_MIN_USEC (50u * 1000u)
/* Where probes go: see send_probe(). */
#define PROBE_OFF 1u
/* The CBOR of an upload request but its data bytes, at most: map head 1,
 * "off" 4 + 9, "data" 5 + a string head of 9, "len" 4 + 9, "image" 6 + 9,
 * "sha" 4 + 2 + 32, "upgrade" 8 + 1: 103 bytes. */
#define UPLOAD_REQ_FIELDS_MAX 128u
/* Data bytes a first chunk carries at least: Zephyr's
 * img_mgmt_upload_inspect() refuses a shorter one with
 * IMG_MGMT_ERR_INVALID_IMAGE_HEADER, sizeof(struct image_header). */
#define FIRST_CHUNK_MIN 32u
/* After a device took part of a chunk (its flash write alignment, see
 * on_chunk_done()), chunks that do not end the file carry a multiple of
 * this: every write block size in use (4, 8, 16, 32 bytes) divides it, so
 * the device takes each whole.  Nordic's libraries call it memoryAlignment. */
#define CHUNK_ALIGN 32u

struct chunk {
        struct smp_upload *upload;
        struct chunk *next;
        uint64_t off;
        size_t len;
        size_t packet;               /* bytes of the whole SMP packet */
        /* A probe: the packet limit it was built for, which the search
         * asked about.  Its packet may be a byte or two shorter (the CBOR
         * heads of the data's length leave a byte unusable at some sizes),
         * and every chunk built for that limit is the same: the answer
         * is about the limit.  Accounted by its packet, a probe of the
         * largest size that came back confirmed a byte less than asked,
         * and the search sent the same probe for ever. */
        size_t limit;
        uint64_t sent_no;            /* order of sending, probes included */
        /* A probe sent while the first chunk waited out the slot erase
         * (with its timeout): lost unless answered by deadline_usec
         * (CLOCK_MONOTONIC), set when the first chunk's answer comes. */
        bool beside_first;
        uint64_t deadline_usec;      /* UINT64_MAX: none but the request's timeout */
        struct smp_request *req;
};

struct smp_upload {
        struct smp_session *session;
        struct smp_upload_params p;
        uint8_t sha[SHA256_DIGEST_SIZE];

        struct smp_request *params_req;
        /* The device answered offset 0 to the file's last chunk: its
         * upload state is gone, maybe because the last chunk completed
         * the upload and only the answer was lost.  complete_check: read
         * the image state before sending the file again; state_req: that
         * read, in flight (nothing is sent meanwhile). */
        bool complete_check;
        struct smp_request *state_req;
        struct chunk *chunks;        /* in flight, in send order */
        unsigned in_flight;          /* chunks, not probes */
        uint64_t sent_count;

        size_t budget;               /* bytes a whole SMP packet may take */
        /* buf_size is the device's word (its params answer, or the
         * caller's, who had it from one), not our assumption. */
        bool params_known;
        uint8_t *body; /* where send_request() encodes, body_room bytes */
        size_t body_room;
        size_t chunk_max;            /* data bytes of a full later chunk */
        /* The link does not fragment and no chunk size was given: chunks
         * are sized by the path's packet limit, which probes find. */
        bool pmtud;
        bool probing_possible;       /* the file is long enough for a probe of max */
        struct plpmtu pmtu;
        struct chunk *probes;        /* in flight, in send order, taking window slots */
        unsigned probes_in_flight;
        sd_event_source *probe_timer; /* the deadlines of probes sent beside the first chunk */
        unsigned window, window_max, clean_answers;

        uint64_t acked;              /* the device has everything below */
        uint64_t next_off;           /* next offset to send */
        bool first_outstanding;      /* the off=0 chunk is in flight */
        bool resyncing;              /* draining after a mismatch or loss */
        bool resync_known;
        uint64_t resync_off;
        unsigned failures;           /* since the last progress */
        bool align_chunks;           /* a chunk was taken in part: CHUNK_ALIGN */

        uint64_t start_usec;
        struct smp_upload_result result;
        bool finished;
        /* Inside smp_upload_start(): a failure there is its return value,
         * never a done callback, which would free the caller's state
         * before smp_upload_start() stores the handle in it. */
        bool starting;
};

void smp_upload_file_sha256(const uint8_t *data, size_t len, uint8_t ret[32]) {
        sha256_of(data, len, ret);
}

/* The clock itself, not the loop's cached iteration time: rates over a
 * fast local upload would otherwise divide by zero. */
static uint64_t now_usec(struct smp_upload *u) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void chunk_list_free(struct chunk **list) {
        while (*list) {
                struct chunk *c = *list;
                *list = c->next;
                smp_request_cancel(c->req);
                free(c);
        }
}

static void chunk_list_append(struct chunk **list, struct chunk *c) {
        while (*list)
                list = &(*list)->next;
        *list = c;
}

static void chunk_list_remove(struct chunk **list, struct chunk *c) {
        for (; *list; list = &(*list)->next)
                if (*list == c) {
                        *list = c->next;
                        return;
                }
}

static void chunks_cancel_all(struct smp_upload *u) {
        chunk_list_free(&u->chunks);
        u->in_flight = 0;
        chunk_list_free(&u->probes);
        u->probes_in_flight = 0;
}

static void upload_free(struct smp_upload *u) {
        chunks_cancel_all(u);
        u->probe_timer = sd_event_source_disable_unref(u->probe_timer);
        smp_request_cancel(u->params_req);
        smp_request_cancel(u->state_req);
        free(u->body);
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
        u->result.path_mtu = u->pmtud ? u->pmtu.confirmed : 0;
        if (u->starting)
                return;
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

/* The first chunk's answer comes after the slot erase.  A fixed chunk
 * timeout above it raises it too: a caller who waits a minute for every
 * answer waits as long for this one. */
static uint64_t first_timeout(const struct smp_upload *u) {
        uint64_t t = u->p.first_timeout_usec ? u->p.first_timeout_usec : SMP_UPLOAD_FIRST_TIMEOUT_DEFAULT_USEC;
        return MAX(t, u->p.timeout_usec);
}

/* A probe's answer takes a round trip, like a chunk's, and a probe lost
 * costs no resend: no floor of a quarter second, no back-off. */
static uint64_t probe_timeout(struct smp_upload *u) {
        struct smp_session_stats st;
        smp_session_get_stats(u->session, &st);
        /* behind the first chunk, it waits out the slot erase too */
        if (u->first_outstanding || st.srtt_usec == 0 || u->p.timeout_usec)
                return u->first_outstanding ? first_timeout(u) : chunk_timeout(u);
        uint64_t t = MAX(st.srtt_usec + 4 * st.rttvar_usec, 2 * st.srtt_usec);
        t = MAX(t, (uint64_t) PROBE_TIMEOUT_MIN_USEC);
        return MIN(t, (uint64_t) CHUNK_TIMEOUT_MAX_USEC);
}

static void on_chunk_done(struct smp_session *s, int error, const struct smp_header *hdr,
                          const uint8_t *body, size_t len, void *userdata);
static void on_probe_done(struct smp_session *s, int error, const struct smp_header *hdr,
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

/* The largest SMP packet a chunk at off may take.  The first chunk waits
 * out the slot erase (40 s), so losing it to a path narrower than we
 * assumed (a UDP datagram crossing a 6LoWPAN/Thread border router or a
 * VPN) would cost that long: it never takes more than the base size any
 * path carries, even when a seed says more.  Zephyr needs the image
 * header (32 bytes) in it, which fits. */
static size_t packet_limit(const struct smp_upload *u, uint64_t off) {
        if (!u->pmtud)
                return u->budget;
        return off == 0 ? MIN(u->pmtu.confirmed, u->pmtu.base) : u->pmtu.confirmed;
}

/* Data bytes for a chunk at off within packet bytes. */
static int chunk_size_at(struct smp_upload *u, uint64_t off, size_t packet, size_t *ret) {
        struct smp_img_upload_req req = chunk_request(u, off, 0);
        size_t n;
        int e = smp_img_upload_max_data(&req, packet, &n);
        if (e < 0)
                return e;
        /* a --chunk below the image header does not apply to the first
         * chunk, which the device could not take */
        if (u->p.chunk)
                n = MIN(n, off == 0 ? MAX(u->p.chunk, (size_t) FIRST_CHUNK_MIN) : u->p.chunk);
        n = MIN(n, (size_t) (u->p.len - off));
        /* the packet itself cannot hold the image header: -EMSGSIZE, the
         * device's buffer (or the link) is too small for any upload */
        if (off == 0 && n < MIN((size_t) FIRST_CHUNK_MIN, u->p.len))
                return -EMSGSIZE;
        *ret = n;
        return 0;
}

/* chunk_max follows the packet limit as probes raise it and black holes
 * lower it. */
static int chunk_max_update(struct smp_upload *u) {
        uint64_t off = u->p.len > 1 ? 1 : 0;
        return chunk_size_at(u, off, packet_limit(u, off), &u->chunk_max);
}

static uint64_t window_used(const struct smp_upload *u) {
        return u->in_flight + u->probes_in_flight;
}

/* Sends n data bytes at off as an upload request; *ret is linked nowhere
 * yet. */
static int send_request(struct smp_upload *u, uint64_t off, size_t n, uint64_t timeout_usec, bool behind_erase,
                        smp_request_done_fn done, struct chunk **ret) {
        const struct smp_img_upload_req req = chunk_request(u, off, n);
        /* Room for this body, not the whole budget: a budget is up to
         * 64 KiB, a chunk often a few hundred bytes.  The session copies
         * the body, so one buffer serves every chunk, grown when a chunk
         * needs more: thousands are sent per image. */
        size_t room = MIN(u->budget - SMP_HEADER_SIZE, n + UPLOAD_REQ_FIELDS_MAX);
        int e;

        if (room > u->body_room) {
                free(u->body);
                u->body_room = 0;
                u->body = malloc(room);
                if (!u->body)
                        return -ENOMEM;
                u->body_room = room;
        }
        uint8_t *body = u->body;
        struct smp_cbor_writer w;
        smp_cbor_writer_init(&w, body, room);
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
        c->packet = SMP_HEADER_SIZE + (size_t) e;
        c->sent_no = u->sent_count;
        const struct smp_request_params rp = {
                .op = SMP_OP_WRITE,
                .group = SMP_GROUP_IMAGE,
                .id = SMP_IMG_CMD_UPLOAD,
                .body = body,
                .body_len = (size_t) e,
                .timeout_usec = timeout_usec,
                /* The slot erase delays the first chunk's answer, and
                 * every answer queued behind it, by seconds: taken as
                 * round trips they made every later timeout that long
                 * (a lost probe then held its window slot for over a
                 * minute, and a silent device took over an hour to give
                 * up: the fuzz-upload inputs slow-erase-then-*). */
                .no_rtt_sample = behind_erase,
        };
        e = smp_session_send(u->session, &rp, done, c, &c->req);
        if (e < 0) {
                free(c);
                return e;
        }
        u->sent_count++;
        *ret = c;
        return 0;
}

static int send_chunk(struct smp_upload *u, uint64_t off) {
        struct chunk *c;
        size_t n;
        int e;

        e = chunk_size_at(u, off, packet_limit(u, off), &n);
        if (e < 0)
                return e;
        if (n == 0 && u->p.len > off)
                return -EMSGSIZE; /* not one data byte fits: the device's buffer is too small */
        if (u->align_chunks && off > 0 && off + n < u->p.len && n > CHUNK_ALIGN)
                n -= n % CHUNK_ALIGN;
        e = send_request(u, off, n, off == 0 ? first_timeout(u) : chunk_timeout(u), off == 0 || u->first_outstanding,
                         on_chunk_done, &c);
        if (e < 0)
                return e;
        chunk_list_append(&u->chunks, c);
        u->in_flight++;
        if (off == 0)
                u->first_outstanding = true;
        u->next_off = off + n;
        return 0;
}

/* A probe is an upload chunk of the probed size at offset 1 with the
 * file's bytes from there.  The device is past offset 1 (a first chunk
 * carries 32 bytes at least) or has no upload going, so it drops the
 * data and answers with its own offset (Zephyr's and Mynewt's img_mgmt
 * check the offset first): a probe that arrives costs its size on the
 * link and takes a device buffer for a moment; one that is lost disturbs
 * nothing, unlike a lost data chunk, after which the device refuses the
 * whole window.  Were the device ever at offset 1, these are the right
 * bytes. */
static int send_probe(struct smp_upload *u, size_t size) {
        struct chunk *c;
        size_t n;
        int e;

        e = chunk_size_at(u, PROBE_OFF, size, &n);
        if (e < 0)
                return e;
        e = send_request(u, PROBE_OFF, n, probe_timeout(u), u->first_outstanding, on_probe_done, &c);
        if (e < 0)
                return e;
        c->beside_first = u->first_outstanding;
        c->deadline_usec = UINT64_MAX;
        c->limit = size;
        chunk_list_append(&u->probes, c);
        u->probes_in_flight++;
        plpmtu_probe_sent(&u->pmtu, size);
        return 0;
}

static size_t probe_wanted(const struct smp_upload *u) {
        if (!u->pmtud || !u->probing_possible)
                return 0;
        /* while loss shrank the window to one packet, data first */
        if (u->window < 2 && u->window_max >= 2)
                return 0;
        /* While the first chunk waits out the slot erase the link is idle:
         * probes sent now, several sizes at once, cost no time. */
        return plpmtu_next_probe(&u->pmtu, u->first_outstanding ? PLPMTU_FLIGHT_MAX : 1);
}

/* Keeps the window full: the probe the search wants first, then data. */
static void pump(struct smp_upload *u) {
        while (!u->finished && !u->resyncing && !u->state_req && u->next_off < u->p.len) {
                int e;
                size_t probe = probe_wanted(u);

                if (u->first_outstanding) {
                        if (!probe || window_used(u) >= u->window)
                                return;
                        e = send_probe(u, probe);
                        if (e == -EBUSY)
                                return;
                        if (e < 0) {
                                finish(u, e);
                                return;
                        }
                        continue;
                }
                if (u->next_off == 0 ? u->in_flight > 0 : window_used(u) >= u->window)
                        return;
                if (probe && u->next_off > 0)
                        e = send_probe(u, probe);
                else
                        e = send_chunk(u, u->next_off);
                if (e == -EBUSY)
                        return; /* sequence numbers exhausted: wait for answers */
                if (e < 0) {
                        finish(u, e);
                        return;
                }
        }
}

static void chunk_remove(struct smp_upload *u, struct chunk *c) {
        chunk_list_remove(&u->chunks, c);
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

static void on_state_done(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                          size_t len, void *userdata);

/* Reads the image state (see complete_check); -errno if it cannot. */
static int send_state_read(struct smp_upload *u) {
        const struct smp_request_params rp = {
                .op = SMP_OP_READ,
                .group = SMP_GROUP_IMAGE,
                .id = SMP_IMG_CMD_STATE,
                .body = (const uint8_t[]) { 0xa0 },
                .body_len = 1,
                .timeout_usec = chunk_timeout(u),
                .idempotent = true,
        };
        return smp_session_send(u->session, &rp, on_state_done, u, &u->state_req);
}

static void resync_done(struct smp_upload *u) {
        u->resyncing = false;
        /* Nothing at all came back, twice in a row: the packets may be too
         * large for the path (an MTU nobody told us about drops them
         * silently, the path changed, a seed was wrong).  Smaller chunks
         * cost a little; never finishing costs the upload.  With path MTU
         * discovery that is a black hole (lib/plpmtu.h); links that
         * fragment shrink their packets as they always did. */
        if (!u->resync_known && u->pmtud) {
                if (plpmtu_data_lost(&u->pmtu))
                        (void) chunk_max_update(u);
        } else if (!u->resync_known && u->failures >= 2 && u->budget > BUDGET_FLOOR && !u->p.chunk) {
                u->budget = MAX(u->budget * 3 / 4, (size_t) BUDGET_FLOOR);
                (void) chunk_max_update(u);
        }
        uint64_t from = u->resync_known ? u->resync_off : u->acked;
        u->resync_known = false;
        if (from < u->acked || from > u->p.len)
                from = MIN(from, (uint64_t) u->p.len);
        if (u->next_off > from)
                u->result.retransmits += (u->next_off - from + u->chunk_max - 1) / MAX(u->chunk_max, (size_t) 1);
        u->acked = from;
        u->next_off = from;
        bool check = u->complete_check && from == 0;
        u->complete_check = false;
        /* a read that cannot be sent: the file goes again, as before */
        if (check && send_state_read(u) < 0)
                u->state_req = NULL;
}

/* Whether the image state answer shows the image this upload sends in a
 * slot of its image number that does not run. */
static bool state_holds_image(const struct smp_upload *u, const uint8_t *body, size_t len) {
        _cleanup_free_ struct smp_img_state_rsp *rsp = malloc(sizeof(*rsp));
        uint32_t image = u->p.has_image ? u->p.image : 0;

        if (!rsp || smp_img_state_rsp_decode(body, len, rsp, NULL) < 0)
                return false;
        for (size_t i = 0; i < rsp->n_images; i++) {
                const struct smp_img_slot_state *st = &rsp->images[i];
                if ((st->has_image ? st->image : 0) == image && !st->active &&
                    st->hash.len == SMP_UPLOAD_IMAGE_HASH_SIZE &&
                    memcmp(st->hash.ptr, u->p.image_hash, SMP_UPLOAD_IMAGE_HASH_SIZE) == 0)
                        return true;
        }
        return false;
}

static void on_state_done(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                          size_t len, void *userdata) {
        struct smp_upload *u = userdata;

        u->state_req = NULL;
        if (error == -ECONNRESET) {
                finish(u, error);
                return;
        }
        if (error == 0 && state_holds_image(u, body, len)) {
                /* The device has the whole image: the last chunk arrived and
                 * its answer was lost.  No match to report (the device
                 * compared nothing); its hash is the image's own. */
                u->acked = u->p.len;
                report_progress(u);
                finish(u, 0);
                return;
        }
        pump(u);
}

/* A probe came back, or was lost. */
static void probe_done(struct smp_upload *u, struct chunk *c, bool arrived) {
        size_t limit = c->limit;

        chunk_list_remove(&u->probes, c);
        u->probes_in_flight--;
        smp_request_cancel(c->req);
        free(c);
        if (arrived)
                plpmtu_probe_acked(&u->pmtu, limit);
        else
                plpmtu_probe_lost(&u->pmtu, limit);
        (void) chunk_max_update(u);
}

/* The device handles requests in the order they arrive and answers in
 * that order: an answer to a packet sent after a probe, before the
 * probe's, means the probe was lost; no need to wait for its timer. */
static void probes_overtaken(struct smp_upload *u, uint64_t answered_sent_no) {
        while (u->probes && u->probes->sent_no < answered_sent_no)
                probe_done(u, u->probes, false);
}

static int on_probe_timer(sd_event_source *src, uint64_t usec, void *userdata);

/* Arms the timer for the earliest probe deadline; failing that, the
 * requests' own timeouts still end the probes. */
static void probe_timer_arm(struct smp_upload *u) {
        uint64_t next = UINT64_MAX;

        for (struct chunk *c = u->probes; c; c = c->next)
                next = MIN(next, c->deadline_usec);
        if (next == UINT64_MAX) {
                if (u->probe_timer)
                        (void) sd_event_source_set_enabled(u->probe_timer, SD_EVENT_OFF);
                return;
        }
        if (!u->probe_timer) {
                if (sd_event_add_time(smp_session_get_event(u->session), &u->probe_timer, CLOCK_MONOTONIC,
                                      next, 1000, on_probe_timer, u) < 0)
                        return;
        } else
                (void) sd_event_source_set_time(u->probe_timer, next);
        (void) sd_event_source_set_enabled(u->probe_timer, SD_EVENT_ONESHOT);
}

static int on_probe_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        struct smp_upload *u = userdata;
        uint64_t now = now_usec(u);

        for (struct chunk *c = u->probes, *n; c; c = n) {
                n = c->next;
                if (c->deadline_usec <= now)
                        probe_done(u, c, false);
        }
        probe_timer_arm(u);
        pump(u);
        return 0;
}

/* The first chunk's answer came: the probes sent beside it were handled
 * right after it, so their answers follow within a round trip or never
 * (their own timeout is the first chunk's, the erase's).  Without this,
 * lost ones would hold window slots that long when no data gets answered
 * either (a seed too large for the path). */
static void probes_after_first(struct smp_upload *u) {
        uint64_t deadline = now_usec(u) + probe_timeout(u);

        for (struct chunk *c = u->probes; c; c = c->next)
                if (c->beside_first && c->deadline_usec == UINT64_MAX)
                        c->deadline_usec = deadline;
        probe_timer_arm(u);
}

/* The SMP layer's own refusal in an answer (a top-level "rc" without a
 * group's "err"), or 0.  Zephyr's smp.c answers so, without handling the
 * request: ENOMEM when no buffer is free for the answer (requests and
 * answers share CONFIG_MCUMGR_TRANSPORT_NETBUF_COUNT buffers, 2 by
 * default over UDP, and the mcumgr params command that would say so is
 * off by default), ECORRUPT when the packet is shorter than its header
 * says (a datagram longer than CONFIG_MCUMGR_TRANSPORT_UDP_MTU, cut). */
static int64_t smp_layer_refusal(const uint8_t *body, size_t len) {
        struct smp_status st;

        if (smp_status_decode(body, len, &st, NULL) < 0 || !st.has_rc || st.has_err)
                return 0;
        return st.rc;
}

static void on_probe_done(struct smp_session *s, int error, const struct smp_header *hdr,
                          const uint8_t *body, size_t len, void *userdata) {
        struct chunk *c = userdata;
        struct smp_upload *u = c->upload;

        c->req = NULL; /* completed: not ours to cancel any more */
        if (error == -ECONNRESET) {
                finish(u, error);
                return;
        }
        uint64_t sent_no = c->sent_no;
        if (error == 0)
                probes_overtaken(u, sent_no);
        /* Any answer, even an error (Mynewt refuses an offset when no
         * upload is going), means the probe arrived; but not whole when
         * the device says it was cut. */
        probe_done(u, c, error == 0 && smp_layer_refusal(body, len) != SMP_MGMT_ERR_ECORRUPT);

        /* The same order tells that the first chunk, sent before this
         * probe and not answered, was lost (or its answer was): no need to
         * wait out the erase timeout.  Sent again, it is answered with the
         * device's offset either way. */
        struct chunk *first = u->first_outstanding ? u->chunks : NULL;
        if (error == 0 && first && first->off == 0 && first->sent_no < sent_no) {
                smp_request_cancel(first->req);
                on_chunk_done(s, -ETIMEDOUT, NULL, NULL, 0, first); /* may free u */
                return;
        }
        pump(u);
}

static void on_chunk_done(struct smp_session *s, int error, const struct smp_header *hdr,
                          const uint8_t *body, size_t len, void *userdata) {
        struct chunk *c = userdata;
        struct smp_upload *u = c->upload;
        uint64_t c_off = c->off, c_end = c->off + c->len, c_sent_no = c->sent_no;

        c->req = NULL; /* completed: not ours to cancel any more */
        chunk_remove(u, c);

        if (error == -ECONNRESET) {
                finish(u, error);
                return;
        }
        if (error == 0 && smp_layer_refusal(body, len) == SMP_MGMT_ERR_ENOMEM) {
                /* Not handled: the chunk is lost, and the device holds
                 * fewer requests in flight than its window assumed (its
                 * buffers unknown, or shared with other clients): the
                 * window's bound halves for the rest of the upload. */
                u->window_max = MAX(1u, u->window_max / 2);
                error = -ENOBUFS;
        }
        if (error == 0 && u->pmtud) {
                plpmtu_data_acked(&u->pmtu);
                probes_overtaken(u, c_sent_no);
                if (c_off == 0)
                        probes_after_first(u);
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
                } else if (!u->resyncing && rsp.off > c_off && rsp.off < c_end) {
                        /* Part of the chunk taken: MCUboot's serial
                         * recovery (boot_serial.c, bs_upload()) writes a
                         * chunk that does not end the image only up to its
                         * flash write alignment and answers with where it
                         * got to.  That is progress, not loss: go on from
                         * there, the window and the failures as they were.
                         * Chunks sent after this one are answered with
                         * the same offset; they drain first. */
                        u->acked = rsp.off;
                        u->failures = 0;
                        report_progress(u);
                        u->result.window_max = MAX(u->result.window_max, u->window);
                        u->resyncing = true;
                        u->resync_known = true;
                        u->resync_off = rsp.off;
                        /* from here on, chunks the device takes whole */
                        u->align_chunks = true;
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
                        /* Zephyr's img_mgmt clears its upload state with
                         * the chunk that completes it (img_mgmt_reset_upload())
                         * and answers a later chunk with offset 0: the last
                         * chunk sent again after its answer was lost finds
                         * that.  A rebooted device answers the same. */
                        if (rsp.off == 0 && c_off > 0 && c_end == u->p.len && u->p.image_hash)
                                u->complete_check = true;
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
        /* Over BLE a packet larger than the link's MTU arrives in pieces
         * only the device's reassembly puts together, and Zephyr has that
         * off by default (CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY): without
         * it every write is taken as a whole packet and a piece refused.
         * As nRF Connect Device Manager and smpclient do, a device that
         * answered the params request is taken to reassemble; any other
         * gets one packet per write. */
        if (!info.fragments || (info.fragments_need_device && !u->params_known))
                budget = MIN(budget, info.mtu);
        budget = MIN(budget, (size_t) SMP_FRAME_MAX);
        u->budget = budget;
        /* Links that fragment (BLE, CoAP block-wise) have no path MTU to
         * run into; a --chunk given by the user is taken as it is. */
        u->pmtud = !info.fragments && !u->p.chunk;
        if (u->pmtud) {
                plpmtu_init(&u->pmtu, budget, u->p.path_mtu);
                /* a probe of the largest size must lie within the file */
                struct smp_img_upload_req req = chunk_request(u, PROBE_OFF, 0);
                size_t n;
                u->probing_possible = u->p.len > PROBE_OFF && smp_img_upload_max_data(&req, budget, &n) >= 0 &&
                                      n <= u->p.len - PROBE_OFF;
        }

        e = chunk_max_update(u);
        if (e < 0)
                return e;
        unsigned w = u->p.window ? u->p.window : (u->result.buf_count > 1 ? u->result.buf_count - 1 : 1);
        /* No params answer on a serial line: MCUboot's serial recovery
         * (every release: params is not among its commands) reads one
         * request at a time into 8 line buffers of 128 bytes, and Zephyr's
         * UART transport keeps 2; chunks pipelined behind one that waits
         * for flash lose lines, and a lost line loses its packet.  What
         * they can take is unknown: one at a time, as newtmgr and
         * smpclient do.  A window given is taken as it is. */
        if (!u->p.window && !u->params_known && info.device_line_buffers)
                w = 1;
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
                u->params_known = true;
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
                u->params_known = true;
                u->result.buf_size = u->p.buf_size;
                u->result.buf_count = MAX(u->p.buf_count, 1u);
                /* The first chunks go out now, and a send can fail at
                 * once (the link just closed). */
                u->starting = true;
                e = start_chunks(u);
                u->starting = false;
                if (e >= 0 && u->finished)
                        e = u->result.error < 0 ? u->result.error : -EIO;
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
