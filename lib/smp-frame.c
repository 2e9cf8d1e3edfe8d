/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SMP frame header and frame walking.  Nothing here trusts a length field:
 * every length is checked against the bytes actually present before it is
 * used.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/smp-frame.h"
#include "util.h"

#define HDR_OP_MASK 0x07u
#define HDR_VERSION_SHIFT 3
#define HDR_VERSION_MASK 0x03u
#define HDR_RESERVED_MASK 0xe0u

void smp_header_encode(const struct smp_header *hdr, uint8_t out[SMP_HEADER_SIZE]) {
        out[0] = (uint8_t) ((hdr->op & HDR_OP_MASK) | ((hdr->version & HDR_VERSION_MASK) << HDR_VERSION_SHIFT));
        out[1] = hdr->flags;
        unaligned_write_be16(out + 2, hdr->len);
        unaligned_write_be16(out + 4, hdr->group);
        out[6] = hdr->seq;
        out[7] = hdr->id;
}

int smp_header_decode(const uint8_t *buf, size_t len, struct smp_header *ret) {
        if (!buf || len < SMP_HEADER_SIZE)
                return -EBADMSG;

        /* Reserved bits must be zero (Zephyr smp_internal.h).  A peer that
         * sets them speaks something we do not know. */
        if (buf[0] & HDR_RESERVED_MASK)
                return -EBADMSG;

        uint8_t version = (buf[0] >> HDR_VERSION_SHIFT) & HDR_VERSION_MASK;
        if (version > SMP_VERSION_2)
                return -EPROTONOSUPPORT;

        *ret = (struct smp_header) {
                .op = buf[0] & HDR_OP_MASK,
                .version = version,
                .flags = buf[1],
                .len = unaligned_read_be16(buf + 2),
                .group = unaligned_read_be16(buf + 4),
                .seq = buf[6],
                .id = buf[7],
        };
        return 0;
}

int smp_op_response_for(uint8_t op) {
        if (!smp_op_is_request(op))
                return -EINVAL;
        return op + 1;
}

bool smp_header_matches_request(const struct smp_header *req, const struct smp_header *rsp) {
        return smp_op_is_request(req->op) &&
               rsp->op == req->op + 1 &&
               rsp->group == req->group &&
               rsp->id == req->id &&
               rsp->seq == req->seq;
}

int smp_frame_build(const struct smp_header *hdr, const uint8_t *body, size_t body_len,
                    uint8_t *out, size_t out_size) {
        if (body_len > 0xffffu)
                return -EMSGSIZE;
        if (out_size < SMP_HEADER_SIZE + body_len)
                return -ENOBUFS;

        struct smp_header h = *hdr;
        h.len = (uint16_t) body_len;
        smp_header_encode(&h, out);
        if (body_len > 0)
                memmove(out + SMP_HEADER_SIZE, body, body_len);
        return (int) (SMP_HEADER_SIZE + body_len);
}

int smp_packet_next(const uint8_t *pkt, size_t pkt_len, size_t *offset, struct smp_frame *ret) {
        struct smp_header hdr;
        int r;

        if (*offset >= pkt_len)
                return 0;

        size_t left = pkt_len - *offset;
        r = smp_header_decode(pkt + *offset, left, &hdr);
        if (r < 0)
                return r;
        if (hdr.len > left - SMP_HEADER_SIZE)
                return -EBADMSG;

        *ret = (struct smp_frame) {
                .hdr = hdr,
                .body = pkt + *offset + SMP_HEADER_SIZE,
                .body_len = hdr.len,
        };
        *offset += SMP_HEADER_SIZE + hdr.len;
        return 1;
}

struct smp_reassembler {
        size_t max_frame;
        size_t len;        /* bytes buffered */
        size_t consumed;   /* bytes of buf[] already returned as frames */
        uint8_t buf[];     /* max_frame bytes */
};

int smp_reassembler_new(size_t max_frame, struct smp_reassembler **ret) {
        if (max_frame < SMP_HEADER_SIZE || max_frame > SMP_FRAME_MAX)
                return -EINVAL;

        /* Not zeroed: only the len bytes fed are ever read, and zeroing
         * 64 KiB for every link opened showed in the profiles. */
        struct smp_reassembler *r = malloc(sizeof(*r) + max_frame);
        if (!r)
                return -ENOMEM;
        *r = (struct smp_reassembler) { .max_frame = max_frame };
        *ret = r;
        return 0;
}

struct smp_reassembler *smp_reassembler_free(struct smp_reassembler *r) {
        free(r);
        return NULL;
}

void smp_reassembler_reset(struct smp_reassembler *r) {
        r->len = 0;
        r->consumed = 0;
}

size_t smp_reassembler_pending(const struct smp_reassembler *r) {
        return r->len - r->consumed;
}

/* Moves the unreturned bytes to the front, so the buffer never needs more
 * than max_frame bytes even when frames arrive back to back. */
static void reassembler_compact(struct smp_reassembler *r) {
        if (r->consumed == 0)
                return;
        size_t pending = r->len - r->consumed;
        memmove(r->buf, r->buf + r->consumed, pending);
        r->len = pending;
        r->consumed = 0;
}

int smp_reassembler_feed(struct smp_reassembler *r, const uint8_t *data, size_t len) {
        reassembler_compact(r);
        if (len > r->max_frame - r->len) {
                /* More than one frame's worth without a complete frame:
                 * whatever we hold is garbage or a frame we will refuse. */
                smp_reassembler_reset(r);
                return -ENOBUFS;
        }
        if (len > 0)
                memcpy(r->buf + r->len, data, len);
        r->len += len;
        return 0;
}

int smp_reassembler_next(struct smp_reassembler *r, struct smp_frame *ret) {
        struct smp_header hdr;
        int e;

        size_t pending = r->len - r->consumed;
        if (pending < SMP_HEADER_SIZE)
                return 0;

        const uint8_t *p = r->buf + r->consumed;
        e = smp_header_decode(p, pending, &hdr);
        if (e < 0) {
                smp_reassembler_reset(r);
                return e;
        }
        if (SMP_HEADER_SIZE + (size_t) hdr.len > r->max_frame) {
                smp_reassembler_reset(r);
                return -EMSGSIZE;
        }
        if (pending - SMP_HEADER_SIZE < hdr.len)
                return 0;

        *ret = (struct smp_frame) {
                .hdr = hdr,
                .body = p + SMP_HEADER_SIZE,
                .body_len = hdr.len,
        };
        r->consumed += SMP_HEADER_SIZE + hdr.len;
        return 1;
}
