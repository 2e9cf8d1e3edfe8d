/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SMP frames: the 8-byte header (SMP versions 1 and 2), request/response
 * matching, several frames in one packet, and one frame split over several
 * packets (BLE notifications, serial lines).
 *
 * Header layout (Zephyr smp_protocol.rst; all multi-byte fields big-endian):
 *   byte 0  bits 2..0 op, bits 4..3 version (0 = SMP v1, 1 = SMP v2),
 *           bits 7..5 reserved (0)
 *   byte 1  flags (0)
 *   2..3    length of the CBOR body that follows, header excluded
 *   4..5    group
 *   6       sequence number, echoed by the server
 *   7       command id within the group
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SMP_HEADER_SIZE 8u
/* The length field is 16 bits: no frame can be larger than this. */
#define SMP_FRAME_MAX (SMP_HEADER_SIZE + 0xffffu)

enum smp_op {
        SMP_OP_READ = 0,
        SMP_OP_READ_RSP = 1,
        SMP_OP_WRITE = 2,
        SMP_OP_WRITE_RSP = 3,
};

/* On-wire values of the 2-bit version field. */
enum smp_version {
        SMP_VERSION_1 = 0,
        SMP_VERSION_2 = 1,
};

enum smp_group {
        SMP_GROUP_OS = 0,
        SMP_GROUP_IMAGE = 1,
        SMP_GROUP_STAT = 2,
        SMP_GROUP_SETTINGS = 3,
        SMP_GROUP_LOG = 4,
        SMP_GROUP_CRASH = 5,
        SMP_GROUP_SPLIT = 6,
        SMP_GROUP_RUN = 7,
        SMP_GROUP_FS = 8,
        SMP_GROUP_SHELL = 9,
        SMP_GROUP_ENUM = 10,
        SMP_GROUP_ZEPHYR_BASIC = 63,
        SMP_GROUP_PERUSER = 64,
};

struct smp_header {
        uint8_t op;      /* enum smp_op */
        uint8_t version; /* enum smp_version (wire value) */
        uint8_t flags;
        uint16_t len;    /* body length */
        uint16_t group;
        uint8_t seq;
        uint8_t id;
};

/* A frame found in a buffer: its header and a pointer to its body, which
 * stays owned by the buffer it was found in. */
struct smp_frame {
        struct smp_header hdr;
        const uint8_t *body;
        size_t body_len;
};

/* Writes the 8 header bytes.  Never fails: every field is masked to its
 * width (op 3 bits, version 2 bits). */
void smp_header_encode(const struct smp_header *hdr, uint8_t out[SMP_HEADER_SIZE]);

/* Decodes the 8 header bytes.  Returns 0, -EBADMSG when fewer than 8 bytes
 * are given or a reserved bit is set, -EPROTONOSUPPORT for the reserved
 * versions 2 and 3.  Does not look at the length: that is the caller's
 * business (see smp_packet_next()). */
int smp_header_decode(const uint8_t *buf, size_t len, struct smp_header *ret);

static inline bool smp_op_is_response(uint8_t op) {
        return op == SMP_OP_READ_RSP || op == SMP_OP_WRITE_RSP;
}

static inline bool smp_op_is_request(uint8_t op) {
        return op == SMP_OP_READ || op == SMP_OP_WRITE;
}

/* The response op a server answers a request op with (read 0 -> 1,
 * write 2 -> 3), or -EINVAL when op is not a request. */
int smp_op_response_for(uint8_t op);

/* Whether rsp answers req: same group, command id and sequence number, and
 * the op is the request's op plus one.  The version is not compared: an
 * SMP v1 server answers a v2 request with version 0. */
bool smp_header_matches_request(const struct smp_header *req, const struct smp_header *rsp);

/* Builds a whole frame (header + body) into out.  hdr->len is ignored and
 * replaced by body_len.  Returns the frame size, -EMSGSIZE when body_len
 * does not fit the 16-bit length field, -ENOBUFS when out is too small. */
int smp_frame_build(const struct smp_header *hdr, const uint8_t *body, size_t body_len,
                    uint8_t *out, size_t out_size);

/* Walks the frames concatenated in one packet (a UDP datagram or a
 * reassembled buffer may hold several).  *offset is where to look and is
 * advanced past the frame found.  Returns 1 with *ret filled, 0 when
 * *offset is at the end, -EBADMSG when the remaining bytes are not a whole
 * frame (fewer than 8 bytes, or a length field pointing past the end of
 * the packet), or the error of smp_header_decode(). */
int smp_packet_next(const uint8_t *pkt, size_t pkt_len, size_t *offset, struct smp_frame *ret);

/* Reassembles frames from a byte stream delivered in pieces of any size:
 * BLE notifications (cut at ATT_MTU-3), raw UART, serial console packets.
 * A frame is complete when 8 + header.len bytes have arrived.  Frames
 * larger than max_frame are refused (-EMSGSIZE) and the stream is
 * resynchronised by dropping what was buffered. */
struct smp_reassembler;

int smp_reassembler_new(size_t max_frame, struct smp_reassembler **ret);
struct smp_reassembler *smp_reassembler_free(struct smp_reassembler *r);

/* Appends bytes.  Returns 0, or -ENOBUFS when more than max_frame bytes
 * would be pending without a complete frame (the buffer is then dropped). */
int smp_reassembler_feed(struct smp_reassembler *r, const uint8_t *data, size_t len);

/* Takes the next complete frame.  Returns 1 with *ret pointing into the
 * reassembler's buffer (valid until the next feed, next or reset call),
 * 0 when no complete frame is buffered, -EMSGSIZE when the pending
 * header announces a frame larger than max_frame, -EBADMSG or
 * -EPROTONOSUPPORT for a bad header.  After an error the buffered bytes
 * are dropped so the next feed starts afresh. */
int smp_reassembler_next(struct smp_reassembler *r, struct smp_frame *ret);

/* Number of bytes buffered that are not yet part of a returned frame. */
size_t smp_reassembler_pending(const struct smp_reassembler *r);

/* Drops whatever is buffered (after a disconnect or a timeout). */
void smp_reassembler_reset(struct smp_reassembler *r);

#ifdef __cplusplus
}
#endif
