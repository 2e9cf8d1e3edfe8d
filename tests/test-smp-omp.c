/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * OMP (SMP over CoAP, newtmgr/Mynewt) payload transform tests.  The byte
 * vectors are written by hand from the two peers' code, not produced by
 * our encoder:
 *   - newtmgr nmxact/omp/omp.go encodeOmpBase(): the request body struct
 *     becomes a map, "_h" is added to it as a byte string holding the
 *     8-byte header, the whole map is encoded with ugorji's CBOR codec
 *     (definite length; Go map order, so "_h" may come anywhere);
 *   - mynewt-core mgmt/oicmgr/src/oicmgr.c omgr_oic_put(): the response is
 *     an indefinite-length map, the handler's fields first, then "_h" with
 *     op = request op + 1 and the request's length field left unchanged;
 *     errors are "_h" then "rc".
 */
#include <errno.h>

#include "smpgw/smp-frame.h"
#include "smpgw/smp-omp.h"
#include "test-util.h"

#define BUF 70000

static uint8_t a[BUF], b[BUF], c[BUF];

static void expect_decode(const char *payload_hex, const char *frame_hex) {
        size_t pn = test_hex(payload_hex, a, sizeof(a));
        size_t fn = test_hex(frame_hex, b, sizeof(b));
        int r = smp_omp_decode(a, pn, c, sizeof(c));
        ASSERT_EQ(r, (long long) fn);
        ASSERT_MEMEQ(c, b, fn);
}

static void expect_encode(const char *frame_hex, const char *payload_hex) {
        size_t fn = test_hex(frame_hex, a, sizeof(a));
        size_t pn = test_hex(payload_hex, b, sizeof(b));
        int r = smp_omp_encode(a, fn, c, sizeof(c));
        ASSERT_EQ(r, (long long) pn);
        ASSERT_MEMEQ(c, b, pn);
}

static void expect_decode_error(const char *payload_hex, int err) {
        size_t pn = test_hex(payload_hex, a, sizeof(a));
        ASSERT_EQ(smp_omp_decode(a, pn, c, sizeof(c)), err);
}

static void expect_encode_error(const char *frame_hex, int err) {
        size_t fn = test_hex(frame_hex, a, sizeof(a));
        ASSERT_EQ(smp_omp_encode(a, fn, c, sizeof(c)), err);
}

/* newtmgr "echo hi", SMP v1 write, seq 0x42: {"d": "hi", "_h": h'02000006 00004200'}
 * in both orders a Go map may produce. */
static void test_decode_newtmgr_request(void) {
        static const char frame[] = "02 00 00 06 00 00 42 00  a1 61 64 62 68 69";
        expect_decode("a2 61 64 62 68 69  62 5f 68 48 02 00 00 06 00 00 42 00", frame);
        expect_decode("a2 62 5f 68 48 02 00 00 06 00 00 42 00  61 64 62 68 69", frame);
}

/* Mynewt's answer to it: indefinite map {"r": "hi", "_h": ...}; the header
 * still says 6 (the request's length), the rebuilt body is 7 bytes. */
static void test_decode_mynewt_response(void) {
        expect_decode("bf 61 72 62 68 69  62 5f 68 48 03 00 00 06 00 00 42 00  ff",
                      "03 00 00 07 00 00 42 00  bf 61 72 62 68 69 ff");
}

/* Mynewt's error answer (omgr_send_err_rsp): "_h" first, then "rc": 5
 * (unknown group 9). */
static void test_decode_mynewt_error(void) {
        expect_decode("bf 62 5f 68 48 03 00 00 00 00 09 42 00  62 72 63 05  ff",
                      "03 00 00 06 00 09 42 00  bf 62 72 63 05 ff");
}

/* A read with an empty body: newtmgr sends {"_h": ...} only. */
static void test_decode_header_only(void) {
        expect_decode("a1 62 5f 68 48 00 00 00 00 00 00 07 06",
                      "00 00 00 01 00 00 07 06  a0");
        expect_decode("bf 62 5f 68 48 00 00 00 00 00 00 07 06 ff",
                      "00 00 00 02 00 00 07 06  bf ff");
}

/* Non-minimal map head (b8 02 instead of a2): the head is rewritten
 * minimal for the remaining count, the pairs are copied untouched. */
static void test_decode_non_minimal_head(void) {
        expect_decode("b8 02  61 64 62 68 69  62 5f 68 48 02 00 00 06 00 00 42 00",
                      "02 00 00 06 00 00 42 00  a1 61 64 62 68 69");
}

/* Nested values before and after "_h" keep their bytes; an "_h" inside a
 * nested map is not the header. */
static void test_decode_nested(void) {
        /* {"images": [{"slot": 0, "_h": h''}], "_h": hdr, "splitStatus": 0} */
        expect_decode("a3"
                      " 66 69 6d 61 67 65 73 81 a2 64 73 6c 6f 74 00 62 5f 68 40"
                      " 62 5f 68 48 01 00 00 99 00 01 07 00"
                      " 6b 73 70 6c 69 74 53 74 61 74 75 73 00",
                      "01 00 00 21 00 01 07 00"
                      " a2"
                      " 66 69 6d 61 67 65 73 81 a2 64 73 6c 6f 74 00 62 5f 68 40"
                      " 6b 73 70 6c 69 74 53 74 61 74 75 73 00");
}

/* Frame -> payload: "_h" goes last; definite maps grow by one pair,
 * indefinite maps keep their form. */
static void test_encode_definite(void) {
        expect_encode("0a 00 00 06 00 00 42 00  a1 61 64 62 68 69",
                      "a2 61 64 62 68 69  62 5f 68 48 0a 00 00 06 00 00 42 00");
}

static void test_encode_indefinite(void) {
        expect_encode("0b 00 00 07 00 00 42 00  bf 61 72 62 68 69 ff",
                      "bf 61 72 62 68 69  62 5f 68 48 0b 00 00 07 00 00 42 00  ff");
        expect_encode("09 00 00 02 00 00 42 06  bf ff",
                      "bf 62 5f 68 48 09 00 00 02 00 00 42 06 ff");
}

/* {} and a frame without any body (taken as {}), the mcumgr params read. */
static void test_encode_empty(void) {
        expect_encode("08 00 00 01 00 00 01 06  a0",
                      "a1 62 5f 68 48 08 00 00 01 00 00 01 06");
        expect_encode("08 00 00 00 00 00 01 06",
                      "a1 62 5f 68 48 08 00 00 00 00 00 01 06");
}

/* Builds {0: 0, 1: 0, ... n-1: 0} with n < 24 keys written by hand. */
static size_t small_int_map(uint8_t *p, unsigned n, bool with_h) {
        size_t o = 0;
        unsigned pairs = n + (with_h ? 1 : 0);
        if (pairs < 24)
                p[o++] = (uint8_t) (0xa0 | pairs);
        else {
                p[o++] = 0xb8;
                p[o++] = (uint8_t) pairs;
        }
        for (unsigned i = 0; i < n; i++) {
                p[o++] = (uint8_t) i; /* uint i < 24 */
                p[o++] = 0x00;
        }
        if (with_h) {
                static const uint8_t h[] = { 0x62, '_', 'h', 0x48, 0x0a, 0, 0, 47, 0, 64, 1, 2 };
                memcpy(p + o, h, sizeof(h));
                o += sizeof(h);
        }
        return o;
}

/* 23 pairs + "_h" = 24: the head grows from 1 byte (b7) to 2 (b8 18),
 * which is the one byte of SMP_OMP_OVERHEAD beyond the "_h" pair. */
static void test_head_growth(void) {
        uint8_t frame[128], payload[128], out[256];
        static const uint8_t hdr[] = { 0x0a, 0, 0, 47, 0, 64, 1, 2 };
        size_t bn = small_int_map(frame + 8, 23, false);
        ASSERT_EQ(bn, 47);
        memcpy(frame, hdr, 8);
        size_t pn = small_int_map(payload, 23, true);
        ASSERT_EQ(payload[0], 0xb8);
        ASSERT_EQ(payload[1], 24);

        int r = smp_omp_encode(frame, 8 + bn, out, sizeof(out));
        ASSERT_EQ(r, (long long) pn);
        ASSERT_EQ(r, (long long) (bn + SMP_OMP_OVERHEAD));
        ASSERT_MEMEQ(out, payload, pn);

        r = smp_omp_decode(payload, pn, out, sizeof(out));
        ASSERT_EQ(r, (long long) (8 + bn));
        ASSERT_MEMEQ(out, frame, 8 + bn);
}

static void test_round_trip(void) {
        /* image upload, first chunk: {"image": 0, "len": 1000, "off": 0,
         * "sha": h'00..1f', "data": h'<300 bytes>'} */
        uint8_t frame[512], payload[512], back[512];
        size_t o = 8;
        static const uint8_t head[] = {
                0xa5, 0x65, 'i', 'm', 'a', 'g', 'e', 0x00, 0x63, 'l', 'e', 'n', 0x19, 0x03, 0xe8,
                0x63, 'o', 'f', 'f', 0x00, 0x63, 's', 'h', 'a', 0x58, 0x20,
        };
        memcpy(frame + o, head, sizeof(head));
        o += sizeof(head);
        for (unsigned i = 0; i < 32; i++)
                frame[o++] = (uint8_t) i;
        static const uint8_t data_key[] = { 0x64, 'd', 'a', 't', 'a', 0x59, 0x01, 0x2c };
        memcpy(frame + o, data_key, sizeof(data_key));
        o += sizeof(data_key);
        for (unsigned i = 0; i < 300; i++)
                frame[o++] = (uint8_t) (i * 7);
        static const uint8_t hdr[] = { 0x0a, 0x00, 0, 0, 0x00, 0x01, 0x11, 0x01 };
        memcpy(frame, hdr, 8);
        unaligned_write_be16(frame + 2, (uint16_t) (o - 8));

        int pn = smp_omp_encode(frame, o, payload, sizeof(payload));
        ASSERT_EQ(pn, (long long) (o - 8 + 12));
        int fn = smp_omp_decode(payload, (size_t) pn, back, sizeof(back));
        ASSERT_EQ(fn, (long long) o);
        ASSERT_MEMEQ(back, frame, o);

        struct smp_header h;
        ASSERT_OK(smp_header_decode(back, (size_t) fn, &h));
        ASSERT_EQ(h.len, o - 8);
        ASSERT_EQ(h.group, SMP_GROUP_IMAGE);
        ASSERT_EQ(h.id, 1);
}

static void test_decode_malformed(void) {
        /* no "_h" */
        expect_decode_error("a1 61 64 62 68 69", -EBADMSG);
        /* "_h" of 7 and 9 bytes (oicmgr: hlen != sizeof hdr -> 4.00) */
        expect_decode_error("a1 62 5f 68 47 02 00 00 00 00 00 42", -EBADMSG);
        expect_decode_error("a1 62 5f 68 49 02 00 00 00 00 00 42 00 00", -EBADMSG);
        /* "_h" as a text string, as an integer */
        expect_decode_error("a1 62 5f 68 68 02 00 00 00 00 00 42 00", -EBADMSG);
        expect_decode_error("a1 62 5f 68 00", -EBADMSG);
        /* the key as a byte string is not the header */
        expect_decode_error("a1 42 5f 68 48 02 00 00 00 00 00 42 00", -EBADMSG);
        /* "_h" twice */
        expect_decode_error("a2 62 5f 68 48 02 00 00 00 00 00 42 00 62 5f 68 48 02 00 00 00 00 00 42 00",
                            -EBADMSG);
        /* only nested */
        expect_decode_error("a1 61 78 a1 62 5f 68 48 02 00 00 00 00 00 42 00", -EBADMSG);
        /* not a map */
        expect_decode_error("82 62 5f 68 48 02 00 00 00 00 00 42 00", -EBADMSG);
        expect_decode_error("48 02 00 00 00 00 00 42 00", -EBADMSG);
        /* truncated: map count, header bytes, missing break */
        expect_decode_error("a2 62 5f 68 48 02 00 00 00 00 00 42 00", -EBADMSG);
        expect_decode_error("a1 62 5f 68 48 02 00 00 00 00 00 42", -EBADMSG);
        expect_decode_error("bf 62 5f 68 48 02 00 00 00 00 00 42 00", -EBADMSG);
        /* trailing bytes after the map */
        expect_decode_error("a1 62 5f 68 48 02 00 00 00 00 00 42 00 00", -EBADMSG);
        /* a key without a value in an indefinite map */
        expect_decode_error("bf 62 5f 68 48 02 00 00 00 00 00 42 00 61 64 ff", -EBADMSG);
        /* absurd counts */
        expect_decode_error("bb ff ff ff ff ff ff ff ff 62 5f 68", -EBADMSG);
        expect_decode_error("a1 62 5f 68 5b ff ff ff ff ff ff ff ff", -EBADMSG);
        /* reserved additional information */
        expect_decode_error("bc", -EBADMSG);
        /* empty */
        ASSERT_EQ(smp_omp_decode(a, 0, c, sizeof(c)), -EBADMSG);
        ASSERT_EQ(smp_omp_decode(NULL, 0, c, sizeof(c)), -EBADMSG);
}

static void test_decode_too_large(void) {
        /* {"_h": hdr, "x": h'<65530 bytes>'}: the body without "_h" is
         * a1 61 78 5a 00 00 ff fa + 65530 = 65538 bytes > 65535 */
        static uint8_t p[BUF];
        size_t o = 0;
        static const uint8_t head[] = { 0xa2, 0x62, '_', 'h', 0x48, 0x02, 0, 0, 0, 0, 0, 0x42, 0,
                                        0x61, 'x', 0x5a, 0x00, 0x00, 0xff, 0xfa };
        memcpy(p, head, sizeof(head));
        o = sizeof(head) + 65530;
        ASSERT_EQ(smp_omp_decode(p, o, c, sizeof(c)), -EMSGSIZE);
}

static void test_encode_malformed(void) {
        /* shorter than a header */
        expect_encode_error("0a 00 00 00 00 00 42", -EBADMSG);
        ASSERT_EQ(smp_omp_encode(NULL, 0, c, sizeof(c)), -EBADMSG);
        /* length field does not match the body */
        expect_encode_error("0a 00 00 05 00 00 42 00  a1 61 64 62 68 69", -EBADMSG);
        expect_encode_error("0a 00 00 07 00 00 42 00  a1 61 64 62 68 69", -EBADMSG);
        /* body not a map, truncated, trailing */
        expect_encode_error("0a 00 00 01 00 00 42 00  80", -EBADMSG);
        expect_encode_error("0a 00 00 05 00 00 42 00  a1 61 64 62 68", -EBADMSG);
        expect_encode_error("0a 00 00 02 00 00 42 00  a0 00", -EBADMSG);
        /* already has "_h" */
        expect_encode_error("0a 00 00 0d 00 00 42 00  a1 62 5f 68 48 00 00 00 00 00 00 00 00", -EEXIST);
        expect_encode_error("0a 00 00 05 00 00 42 00  a1 62 5f 68 00", -EEXIST);
}

static void test_buffer_sizes(void) {
        static const char frame_hex[] = "0a 00 00 06 00 00 42 00  a1 61 64 62 68 69";
        uint8_t frame[32], payload[64], back[64];
        size_t fn = test_hex(frame_hex, frame, sizeof(frame));
        int pn = smp_omp_encode(frame, fn, payload, sizeof(payload));
        ASSERT_EQ(pn, 18);
        ASSERT_TRUE((size_t) pn <= fn - 8 + SMP_OMP_OVERHEAD);

        /* exactly enough works, one byte less does not */
        ASSERT_EQ(smp_omp_encode(frame, fn, payload, (size_t) pn), pn);
        ASSERT_EQ(smp_omp_encode(frame, fn, payload, (size_t) pn - 1), -ENOBUFS);
        ASSERT_EQ(smp_omp_decode(payload, (size_t) pn, back, fn), (long long) fn);
        ASSERT_EQ(smp_omp_decode(payload, (size_t) pn, back, fn - 1), -ENOBUFS);
        ASSERT_EQ(smp_omp_decode(payload, (size_t) pn, NULL, 0), -ENOBUFS);
}

TEST_MAIN(TEST(test_decode_newtmgr_request),
          TEST(test_decode_mynewt_response),
          TEST(test_decode_mynewt_error),
          TEST(test_decode_header_only),
          TEST(test_decode_non_minimal_head),
          TEST(test_decode_nested),
          TEST(test_encode_definite),
          TEST(test_encode_indefinite),
          TEST(test_encode_empty),
          TEST(test_head_growth),
          TEST(test_round_trip),
          TEST(test_decode_malformed),
          TEST(test_decode_too_large),
          TEST(test_encode_malformed),
          TEST(test_buffer_sizes))
