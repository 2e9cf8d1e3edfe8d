/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SMP header and frame tests.  Byte vectors are written by hand from the
 * protocol documentation (Zephyr doc/services/device_mgmt/smp_protocol.rst,
 * header table; protocol.md §1 example), not produced by our encoder.
 */
#include <errno.h>

#include "smpgw/smp-frame.h"
#include "test-util.h"

/* protocol.md §1: v2 echo "hi", seq 0x42:
 *   0A      op 2 (write) | ver 1 << 3
 *   00      flags
 *   00 06   length 6
 *   00 00   group 0 (OS)
 *   42      sequence
 *   00      id 0 (echo)
 *   A1 61 64 62 68 69   {"d": "hi"} */
static const char ECHO_V2_HEX[] = "0a 00 00 06 00 00 42 00 a1 61 64 62 68 69";

static void test_header_decode_doc_vector(void) {
        uint8_t buf[32];
        size_t n = test_hex(ECHO_V2_HEX, buf, sizeof(buf));
        struct smp_header h;

        ASSERT_OK(smp_header_decode(buf, n, &h));
        ASSERT_EQ(h.op, SMP_OP_WRITE);
        ASSERT_EQ(h.version, SMP_VERSION_2);
        ASSERT_EQ(h.flags, 0);
        ASSERT_EQ(h.len, 6);
        ASSERT_EQ(h.group, SMP_GROUP_OS);
        ASSERT_EQ(h.seq, 0x42);
        ASSERT_EQ(h.id, 0);
}

static void test_header_encode_doc_vector(void) {
        uint8_t want[32], got[SMP_HEADER_SIZE];
        test_hex(ECHO_V2_HEX, want, sizeof(want));

        smp_header_encode(&(struct smp_header) {
                .op = SMP_OP_WRITE, .version = SMP_VERSION_2, .len = 6,
                .group = SMP_GROUP_OS, .seq = 0x42, .id = 0 }, got);
        ASSERT_MEMEQ(got, want, SMP_HEADER_SIZE);
}

/* Zephyr smp_protocol.rst: byte 0 values for each op and version. */
static void test_header_byte0_table(void) {
        static const struct { uint8_t op, ver, byte0; } table[] = {
                { SMP_OP_READ, SMP_VERSION_1, 0x00 },
                { SMP_OP_READ_RSP, SMP_VERSION_1, 0x01 },
                { SMP_OP_WRITE, SMP_VERSION_1, 0x02 },
                { SMP_OP_WRITE_RSP, SMP_VERSION_1, 0x03 },
                { SMP_OP_READ, SMP_VERSION_2, 0x08 },
                { SMP_OP_READ_RSP, SMP_VERSION_2, 0x09 },
                { SMP_OP_WRITE, SMP_VERSION_2, 0x0a },
                { SMP_OP_WRITE_RSP, SMP_VERSION_2, 0x0b },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                uint8_t b[SMP_HEADER_SIZE];
                struct smp_header h;
                smp_header_encode(&(struct smp_header) { .op = table[i].op, .version = table[i].ver }, b);
                ASSERT_EQ(b[0], table[i].byte0);
                ASSERT_OK(smp_header_decode(b, sizeof(b), &h));
                ASSERT_EQ(h.op, table[i].op);
                ASSERT_EQ(h.version, table[i].ver);
        }
}

/* Multi-byte fields are big-endian: group 0x0102, length 0x0304. */
static void test_header_big_endian(void) {
        const uint8_t b[] = { 0x00, 0x00, 0x03, 0x04, 0x01, 0x02, 0xff, 0x07 };
        struct smp_header h;

        ASSERT_OK(smp_header_decode(b, sizeof(b), &h));
        ASSERT_EQ(h.len, 0x0304);
        ASSERT_EQ(h.group, 0x0102);
        ASSERT_EQ(h.seq, 0xff);
        ASSERT_EQ(h.id, 7);
}

static void test_header_malformed(void) {
        uint8_t b[SMP_HEADER_SIZE] = { 0 };
        struct smp_header h = { .seq = 0x11 };

        /* too short */
        ASSERT_EQ(smp_header_decode(b, 7, &h), -EBADMSG);
        ASSERT_EQ(smp_header_decode(NULL, 8, &h), -EBADMSG);
        /* reserved bits 7..5 */
        for (int bit = 5; bit < 8; bit++) {
                b[0] = (uint8_t) (1u << bit);
                ASSERT_EQ(smp_header_decode(b, sizeof(b), &h), -EBADMSG);
        }
        /* reserved versions 2 and 3 */
        b[0] = 0x10;
        ASSERT_EQ(smp_header_decode(b, sizeof(b), &h), -EPROTONOSUPPORT);
        b[0] = 0x18;
        ASSERT_EQ(smp_header_decode(b, sizeof(b), &h), -EPROTONOSUPPORT);
        /* the output is untouched on failure */
        ASSERT_EQ(h.seq, 0x11);
}

static void test_response_matching(void) {
        struct smp_header req = { .op = SMP_OP_READ, .version = SMP_VERSION_2, .group = 1, .seq = 9, .id = 0 };
        struct smp_header rsp = req;

        rsp.op = SMP_OP_READ_RSP;
        ASSERT_TRUE(smp_header_matches_request(&req, &rsp));
        /* a v1 server answers a v2 request with version 0 */
        rsp.version = SMP_VERSION_1;
        ASSERT_TRUE(smp_header_matches_request(&req, &rsp));

        struct smp_header bad = rsp;
        bad.seq = 10;
        ASSERT_TRUE(!smp_header_matches_request(&req, &bad));
        bad = rsp;
        bad.id = 1;
        ASSERT_TRUE(!smp_header_matches_request(&req, &bad));
        bad = rsp;
        bad.group = 0;
        ASSERT_TRUE(!smp_header_matches_request(&req, &bad));
        bad = rsp;
        bad.op = SMP_OP_WRITE_RSP;
        ASSERT_TRUE(!smp_header_matches_request(&req, &bad));
        /* a request is never an answer */
        ASSERT_TRUE(!smp_header_matches_request(&req, &req));
        /* and a response cannot be matched as a request */
        ASSERT_TRUE(!smp_header_matches_request(&rsp, &rsp));

        ASSERT_EQ(smp_op_response_for(SMP_OP_READ), SMP_OP_READ_RSP);
        ASSERT_EQ(smp_op_response_for(SMP_OP_WRITE), SMP_OP_WRITE_RSP);
        ASSERT_EQ(smp_op_response_for(SMP_OP_READ_RSP), -EINVAL);
}

static void test_frame_build(void) {
        uint8_t want[32], out[32];
        size_t n = test_hex(ECHO_V2_HEX, want, sizeof(want));
        const uint8_t body[] = { 0xa1, 0x61, 0x64, 0x62, 0x68, 0x69 };
        struct smp_header h = { .op = SMP_OP_WRITE, .version = SMP_VERSION_2, .seq = 0x42, .len = 999 };

        ASSERT_EQ(smp_frame_build(&h, body, sizeof(body), out, sizeof(out)), (int) n);
        ASSERT_MEMEQ(out, want, n);
        ASSERT_EQ(smp_frame_build(&h, body, sizeof(body), out, n - 1), -ENOBUFS);
        ASSERT_EQ(smp_frame_build(&h, body, 0x10000, out, sizeof(out)), -EMSGSIZE);
}

static void test_packet_several_frames(void) {
        /* Two requests in one datagram, then a frame whose length field
         * points past the end of the packet. */
        uint8_t pkt[64];
        size_t n = test_hex("0a 00 00 06 00 00 42 00 a1 61 64 62 68 69"
                            "08 00 00 01 00 01 43 00 a0"
                            "0a 00 00 10 00 00 44 00 a1 61", pkt, sizeof(pkt));
        size_t off = 0;
        struct smp_frame f;

        ASSERT_EQ(smp_packet_next(pkt, n, &off, &f), 1);
        ASSERT_EQ(f.hdr.seq, 0x42);
        ASSERT_EQ(f.body_len, 6);
        ASSERT_EQ(f.body[0], 0xa1);
        ASSERT_EQ(off, 14);

        ASSERT_EQ(smp_packet_next(pkt, n, &off, &f), 1);
        ASSERT_EQ(f.hdr.seq, 0x43);
        ASSERT_EQ(f.hdr.group, SMP_GROUP_IMAGE);
        ASSERT_EQ(f.body_len, 1);
        ASSERT_EQ(off, 23);

        /* never trust the length: 0x10 bytes announced, 2 present */
        ASSERT_EQ(smp_packet_next(pkt, n, &off, &f), -EBADMSG);
        ASSERT_EQ(off, 23);

        /* a trailing partial header */
        off = 0;
        ASSERT_EQ(smp_packet_next(pkt, 17, &off, &f), 1);
        ASSERT_EQ(smp_packet_next(pkt, 17, &off, &f), -EBADMSG);

        /* end of packet */
        off = 14;
        ASSERT_EQ(smp_packet_next(pkt, 14, &off, &f), 0);
}

static void test_reassembler_pieces(void) {
        _cleanup_free_ uint8_t *stream = NULL;
        struct smp_reassembler *r;
        struct smp_frame f;
        uint8_t one[32];
        size_t n = test_hex(ECHO_V2_HEX, one, sizeof(one));

        /* three frames back to back, delivered in every piece size */
        stream = malloc(3 * n);
        for (int i = 0; i < 3; i++) {
                memcpy(stream + i * n, one, n);
                stream[i * n + 6] = (uint8_t) i;
        }
        ASSERT_OK(smp_reassembler_new(64, &r));
        for (size_t piece = 1; piece <= 3 * n; piece++) {
                int seen = 0;
                smp_reassembler_reset(r);
                for (size_t pos = 0; pos < 3 * n; pos += piece) {
                        ASSERT_OK(smp_reassembler_feed(r, stream + pos, MIN(piece, 3 * n - pos)));
                        int k;
                        while ((k = smp_reassembler_next(r, &f)) == 1) {
                                ASSERT_EQ(f.hdr.seq, seen);
                                ASSERT_EQ(f.body_len, 6);
                                ASSERT_MEMEQ(f.body, one + 8, 6);
                                seen++;
                        }
                        ASSERT_EQ(k, 0);
                }
                ASSERT_EQ(seen, 3);
                ASSERT_EQ(smp_reassembler_pending(r), 0);
        }
        smp_reassembler_free(r);
}

static void test_reassembler_limits(void) {
        struct smp_reassembler *r;
        struct smp_frame f;
        /* header announcing 0x100 body bytes: larger than the 64-byte limit */
        const uint8_t big[] = { 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00 };
        const uint8_t reserved[] = { 0xe1, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00 };
        uint8_t junk[65] = { 0 };

        ASSERT_EQ(smp_reassembler_new(4, &r), -EINVAL);
        ASSERT_EQ(smp_reassembler_new(SMP_FRAME_MAX + 1, &r), -EINVAL);
        ASSERT_OK(smp_reassembler_new(64, &r));

        ASSERT_OK(smp_reassembler_feed(r, big, sizeof(big)));
        ASSERT_EQ(smp_reassembler_next(r, &f), -EMSGSIZE);
        ASSERT_EQ(smp_reassembler_pending(r), 0);

        ASSERT_OK(smp_reassembler_feed(r, reserved, sizeof(reserved)));
        ASSERT_EQ(smp_reassembler_next(r, &f), -EBADMSG);
        ASSERT_EQ(smp_reassembler_pending(r), 0);

        ASSERT_EQ(smp_reassembler_feed(r, junk, sizeof(junk)), -ENOBUFS);
        ASSERT_EQ(smp_reassembler_pending(r), 0);

        /* after an error the next frame is found again */
        uint8_t one[32];
        size_t n = test_hex(ECHO_V2_HEX, one, sizeof(one));
        ASSERT_OK(smp_reassembler_feed(r, one, n));
        ASSERT_EQ(smp_reassembler_next(r, &f), 1);
        ASSERT_EQ(f.hdr.seq, 0x42);
        smp_reassembler_free(r);
}

TEST_MAIN(TEST(test_header_decode_doc_vector),
          TEST(test_header_encode_doc_vector),
          TEST(test_header_byte0_table),
          TEST(test_header_big_endian),
          TEST(test_header_malformed),
          TEST(test_response_matching),
          TEST(test_frame_build),
          TEST(test_packet_several_frames),
          TEST(test_reassembler_pieces),
          TEST(test_reassembler_limits))
