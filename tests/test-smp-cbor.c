/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bounded CBOR writer and reader.  Expected bytes are written by hand:
 * scalars from RFC 8949 Appendix A ("Examples of Encoded CBOR Data Items"),
 * bodies from protocol.md and Zephyr's smp_group_*.rst shapes, indefinite
 * containers the way zcbor emits them without ZCBOR_CANONICAL
 * (zcbor src/zcbor_encode.c list_map_start_encode()/list_map_end_encode():
 * head byte major|31, closing 0xFF).  Never produced by our own writer.
 */
#include <errno.h>
#include <malloc.h>

#include "smpgw/smp-cbor.h"
#include "test-util.h"

#define HEX_MAX 512

/* Encodes with one put and compares to hand-written bytes. */
#define CHECK_PUT(expr_hex, call)                                              \
        do {                                                                   \
                uint8_t _buf[32], _want[32];                                   \
                struct smp_cbor_writer w;                                      \
                size_t want_len = test_hex(expr_hex, _want, sizeof(_want));    \
                smp_cbor_writer_init(&w, _buf, sizeof(_buf));                  \
                ASSERT_OK(call);                                               \
                ASSERT_EQ(smp_cbor_writer_finish(&w), (int) want_len);         \
                ASSERT_MEMEQ(_buf, _want, want_len);                           \
        } while (0)

static void test_writer_rfc8949_scalars(void) {
        /* RFC 8949 Appendix A, Table 6. */
        CHECK_PUT("00", smp_cbor_put_uint(&w, 0));
        CHECK_PUT("17", smp_cbor_put_uint(&w, 23));
        CHECK_PUT("18 18", smp_cbor_put_uint(&w, 24));
        CHECK_PUT("18 64", smp_cbor_put_uint(&w, 100));
        CHECK_PUT("19 03 e8", smp_cbor_put_uint(&w, 1000));
        CHECK_PUT("1a 00 0f 42 40", smp_cbor_put_uint(&w, 1000000));
        CHECK_PUT("1b 00 00 00 e8 d4 a5 10 00", smp_cbor_put_uint(&w, 1000000000000ull));
        CHECK_PUT("1b ff ff ff ff ff ff ff ff", smp_cbor_put_uint(&w, UINT64_MAX));
        CHECK_PUT("20", smp_cbor_put_int(&w, -1));
        CHECK_PUT("29", smp_cbor_put_int(&w, -10));
        CHECK_PUT("38 63", smp_cbor_put_int(&w, -100));
        CHECK_PUT("39 03 e7", smp_cbor_put_int(&w, -1000));
        CHECK_PUT("0a", smp_cbor_put_int(&w, 10));
        /* -2^63 = -1 - (2^63 - 1) */
        CHECK_PUT("3b 7f ff ff ff ff ff ff ff", smp_cbor_put_int(&w, INT64_MIN));
        CHECK_PUT("f4", smp_cbor_put_bool(&w, false));
        CHECK_PUT("f5", smp_cbor_put_bool(&w, true));
        CHECK_PUT("f6", smp_cbor_put_null(&w));
        CHECK_PUT("60", smp_cbor_put_text(&w, ""));
        CHECK_PUT("61 61", smp_cbor_put_text(&w, "a"));
        CHECK_PUT("64 49 45 54 46", smp_cbor_put_text(&w, "IETF"));
        CHECK_PUT("40", smp_cbor_put_bytes(&w, NULL, 0));
        CHECK_PUT("44 01 02 03 04", smp_cbor_put_bytes(&w, "\x01\x02\x03\x04", 4));
        CHECK_PUT("80", smp_cbor_put_array(&w, 0));
        CHECK_PUT("a0", smp_cbor_put_empty_map(&w));
        CHECK_PUT("a1", smp_cbor_put_map(&w, 1));
        CHECK_PUT("98 19", smp_cbor_put_array(&w, 25));
}

static void test_writer_indefinite_style(void) {
        /* RFC 8949 Appendix A: {_ "a": 1, "b": [_ 2, 3]} is
         * bf 61 61 01 61 62 9f 02 03 ff ff */
        uint8_t buf[32], want[32];
        struct smp_cbor_writer w;
        size_t n = test_hex("bf 61 61 01 61 62 9f 02 03 ff ff", want, sizeof(want));

        smp_cbor_writer_init(&w, buf, sizeof(buf));
        w.indefinite = true;
        smp_cbor_put_map(&w, 2);
        smp_cbor_put_text(&w, "a");
        smp_cbor_put_uint(&w, 1);
        smp_cbor_put_text(&w, "b");
        smp_cbor_put_array(&w, 2);
        smp_cbor_put_uint(&w, 2);
        smp_cbor_put_uint(&w, 3);
        smp_cbor_put_end(&w);
        smp_cbor_put_end(&w);
        ASSERT_EQ(smp_cbor_writer_finish(&w), (int) n);
        ASSERT_MEMEQ(buf, want, n);

        /* Definite style: put_end writes nothing.  {"a": 1, "b": [2, 3]} is
         * a2 61 61 01 61 62 82 02 03 */
        n = test_hex("a2 61 61 01 61 62 82 02 03", want, sizeof(want));
        smp_cbor_writer_init(&w, buf, sizeof(buf));
        smp_cbor_put_map(&w, 2);
        smp_cbor_put_text(&w, "a");
        smp_cbor_put_uint(&w, 1);
        smp_cbor_put_text(&w, "b");
        smp_cbor_put_array(&w, 2);
        smp_cbor_put_uint(&w, 2);
        smp_cbor_put_uint(&w, 3);
        smp_cbor_put_end(&w);
        smp_cbor_put_end(&w);
        ASSERT_EQ(smp_cbor_writer_finish(&w), (int) n);
        ASSERT_MEMEQ(buf, want, n);
}

static void test_writer_overflow_sticks(void) {
        uint8_t buf[8];

        /* Every capacity below the 7 bytes of {"d": "hi"} fails, and the
         * bytes written before the failure stay counted (no partial string). */
        for (size_t cap = 0; cap < 6; cap++) {
                struct smp_cbor_writer w;
                smp_cbor_writer_init(&w, buf, cap);
                smp_cbor_put_map(&w, 1);
                smp_cbor_put_text(&w, "d");
                smp_cbor_put_text(&w, "hi");
                ASSERT_EQ(smp_cbor_writer_finish(&w), -ENOBUFS);
                ASSERT_TRUE(w.len <= cap);
                size_t len = w.len;
                /* Sticky: a later small put that would fit is refused. */
                ASSERT_EQ(smp_cbor_put_uint(&w, 0), -ENOBUFS);
                ASSERT_EQ(w.len, len);
        }
        struct smp_cbor_writer w;
        smp_cbor_writer_init(&w, buf, 6);
        smp_cbor_put_map(&w, 1);
        smp_cbor_put_text(&w, "d");
        smp_cbor_put_text(&w, "hi");
        ASSERT_EQ(smp_cbor_writer_finish(&w), 6);

        /* A NULL buffer has no room at all. */
        smp_cbor_writer_init(&w, NULL, 100);
        ASSERT_EQ(smp_cbor_put_uint(&w, 1), -ENOBUFS);
}

static void test_head_sizes(void) {
        static const struct {
                uint64_t v;
                size_t size;
        } cases[] = {
                { 0, 1 }, { 23, 1 }, { 24, 2 }, { 255, 2 }, { 256, 3 }, { 65535, 3 },
                { 65536, 5 }, { UINT32_MAX, 5 }, { (uint64_t) UINT32_MAX + 1, 9 }, { UINT64_MAX, 9 },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint8_t buf[16];
                struct smp_cbor_writer w;

                ASSERT_EQ(smp_cbor_head_size(cases[i].v), cases[i].size);
                /* Cross-check with libcbor's own encoder. */
                smp_cbor_writer_init(&w, buf, sizeof(buf));
                smp_cbor_put_uint(&w, cases[i].v);
                ASSERT_EQ(w.len, cases[i].size);
        }
        ASSERT_EQ(smp_cbor_text_size(0), 1);
        ASSERT_EQ(smp_cbor_text_size(3), 4);    /* "off" */
        ASSERT_EQ(smp_cbor_bytes_size(32), 34); /* a SHA-256 */
        ASSERT_EQ(smp_cbor_bytes_size(256), 259);
}

/* Parses hex into a static buffer; returns the parse result. */
static uint8_t body_buf[HEX_MAX];
static struct smp_cbor_item item_buf[256];
static struct smp_cbor_error err;

static int parse_hex(const char *hex, struct smp_cbor_doc *doc) {
        size_t n = test_hex(hex, body_buf, sizeof(body_buf));
        memset(&err, 0, sizeof(err));
        return smp_cbor_parse(body_buf, n, item_buf, ELEMENTSOF(item_buf), &err, doc);
}

static void test_reader_protocol_md_echo(void) {
        /* protocol.md §1: the body of the v2 echo example.
         *   A1        map, 1 pair
         *   61 64     text(1) "d"
         *   62 68 69  text(2) "hi" */
        struct smp_cbor_doc doc;
        struct smp_cbor_slice s;

        ASSERT_OK(parse_hex("a1 61 64 62 68 69", &doc));
        ASSERT_EQ(doc.n_items, 3);
        ASSERT_EQ(doc.items[0].type, SMP_CBOR_MAP);
        ASSERT_EQ(doc.items[0].count, 1);
        ASSERT_EQ(doc.items[0].next, 3);
        ASSERT_OK(smp_cbor_map_get_text(&doc, SMP_CBOR_ROOT, "d", &s));
        ASSERT_TRUE(smp_cbor_slice_eq(s, "hi"));
        ASSERT_TRUE(s.ptr == body_buf + 4); /* borrowed, not copied */
        ASSERT_EQ(smp_cbor_map_get_text(&doc, SMP_CBOR_ROOT, "r", &s), -ENOENT);
        ASSERT_STREQ(err.message, "field 'r' is missing");
}

static void test_reader_indefinite_like_zcbor(void) {
        /* An image list as a default Zephyr build (zcbor, no
         * CONFIG_ZCBOR_CANONICAL) sends it: every map/array indefinite.
         *   BF                       map(*)
         *     66 "images"            text(6)
         *     9F                     array(*)
         *       BF                   map(*)
         *         64 "slot" 00
         *         67 "version" 65 "1.0.0"
         *       FF
         *       BF 64 "slot" 01 FF
         *     FF
         *     6B "splitStatus" 00
         *   FF */
        struct smp_cbor_doc doc;
        struct smp_cbor_iter it;
        uint32_t images, e;
        uint64_t u;
        int n = 0;

        ASSERT_OK(parse_hex("bf 66 69 6d 61 67 65 73 9f"
                            " bf 64 73 6c 6f 74 00 67 76 65 72 73 69 6f 6e 65 31 2e 30 2e 30 ff"
                            " bf 64 73 6c 6f 74 01 ff"
                            " ff 6b 73 70 6c 69 74 53 74 61 74 75 73 00 ff",
                            &doc));
        ASSERT_EQ(doc.items[0].count, 2);
        ASSERT_OK(smp_cbor_map_get_array(&doc, SMP_CBOR_ROOT, "images", &images));
        ASSERT_EQ(doc.items[images].count, 2);
        smp_cbor_iter_init(&doc, images, &it);
        while (smp_cbor_iter_next(&doc, &it, &e)) {
                ASSERT_OK(smp_cbor_map_get_uint(&doc, e, "slot", &u));
                ASSERT_EQ(u, (uint64_t) n);
                n++;
        }
        ASSERT_EQ(n, 2);
        ASSERT_OK(smp_cbor_map_get_uint(&doc, SMP_CBOR_ROOT, "splitStatus", &u));
        ASSERT_EQ(u, 0);
        /* The array's next sibling is the "splitStatus" key. */
        ASSERT_EQ(doc.items[doc.items[images].next].type, SMP_CBOR_TEXT);
        ASSERT_TRUE(smp_cbor_slice_eq(doc.items[doc.items[images].next].v.s, "splitStatus"));

        /* Empty indefinite map and array: BF FF, {"a": 9F FF}. */
        ASSERT_OK(parse_hex("bf ff", &doc));
        ASSERT_EQ(doc.items[0].count, 0);
        ASSERT_OK(parse_hex("bf 61 61 9f ff ff", &doc));
        ASSERT_OK(smp_cbor_map_get_array(&doc, SMP_CBOR_ROOT, "a", &e));
        ASSERT_EQ(doc.items[e].count, 0);
        /* Mixed: definite map inside an indefinite one and vice versa. */
        ASSERT_OK(parse_hex("bf 61 61 a1 61 62 bf ff ff", &doc));
        ASSERT_OK(parse_hex("a1 61 61 bf 61 62 a0 ff", &doc));
}

static void test_reader_skips_unknown_subtrees(void) {
        /* {"x": {"deep": [1, 2, {"z": 3}], "t": null, "f": 1.5, "u": undefined},
         *  "off": 5}
         *   A2 61 78 A4 64 "deep" 83 01 02 A1 61 7A 03
         *               61 74 F6  61 66 F9 3E 00  61 75 F7
         *      63 "off" 05 */
        struct smp_cbor_doc doc;
        uint64_t off;

        ASSERT_OK(parse_hex("a2 61 78 a4 64 64 65 65 70 83 01 02 a1 61 7a 03"
                            " 61 74 f6 61 66 f9 3e 00 61 75 f7 63 6f 66 66 05",
                            &doc));
        ASSERT_OK(smp_cbor_map_get_uint(&doc, SMP_CBOR_ROOT, "off", &off));
        ASSERT_EQ(off, 5);
        /* Item 2 is the value of "x": its next sibling is the key "off". */
        ASSERT_EQ(doc.items[2].type, SMP_CBOR_MAP);
        ASSERT_TRUE(smp_cbor_slice_eq(doc.items[doc.items[2].next].v.s, "off"));
        /* Non-text keys never match, and are skipped: {1: 2, "a": 3}. */
        ASSERT_OK(parse_hex("a2 01 02 61 61 03", &doc));
        ASSERT_OK(smp_cbor_map_get_uint(&doc, SMP_CBOR_ROOT, "a", &off));
        ASSERT_EQ(off, 3);
}

static void test_reader_wrong_types(void) {
        struct smp_cbor_doc doc;
        uint64_t u;
        uint32_t u32;
        int64_t i;
        bool b;
        struct smp_cbor_slice s;

        /* {"off": "x"} */
        ASSERT_OK(parse_hex("a1 63 6f 66 66 61 78", &doc));
        ASSERT_EQ(smp_cbor_map_get_uint(&doc, SMP_CBOR_ROOT, "off", &u), -EBADMSG);
        ASSERT_STREQ(err.message, "field 'off': expected unsigned integer, got text string");
        ASSERT_EQ(smp_cbor_map_get_bool(&doc, SMP_CBOR_ROOT, "off", &b), -EBADMSG);
        ASSERT_EQ(smp_cbor_map_get_bytes(&doc, SMP_CBOR_ROOT, "off", &s), -EBADMSG);
        ASSERT_STREQ(err.message, "field 'off': expected byte string, got text string");
        ASSERT_EQ(smp_cbor_map_get_map(&doc, SMP_CBOR_ROOT, "off", &u32), -EBADMSG);
        ASSERT_EQ(smp_cbor_map_get_array(&doc, SMP_CBOR_ROOT, "off", &u32), -EBADMSG);
        ASSERT_EQ(smp_cbor_map_opt_uint(&doc, SMP_CBOR_ROOT, "off", &u), -EBADMSG);
        ASSERT_EQ(smp_cbor_map_opt_uint(&doc, SMP_CBOR_ROOT, "nope", &u), 0);

        /* {"a": -1} as uint is a type error, as int fine. */
        ASSERT_OK(parse_hex("a1 61 61 20", &doc));
        ASSERT_EQ(smp_cbor_map_get_uint(&doc, SMP_CBOR_ROOT, "a", &u), -EBADMSG);
        ASSERT_STREQ(err.message, "field 'a': expected unsigned integer, got negative integer");
        ASSERT_OK(smp_cbor_map_get_int(&doc, SMP_CBOR_ROOT, "a", &i));
        ASSERT_EQ(i, -1);

        /* Ranges: {"a": 2^32} does not fit u32; {"a": -2^64} and {"a": 2^63}
         * do not fit int64. */
        ASSERT_OK(parse_hex("a1 61 61 1b 00 00 00 01 00 00 00 00", &doc));
        ASSERT_EQ(smp_cbor_map_get_u32(&doc, SMP_CBOR_ROOT, "a", &u32), -ERANGE);
        ASSERT_OK(parse_hex("a1 61 61 3b ff ff ff ff ff ff ff ff", &doc));
        ASSERT_EQ(smp_cbor_map_get_int(&doc, SMP_CBOR_ROOT, "a", &i), -ERANGE);
        ASSERT_OK(parse_hex("a1 61 61 1b 80 00 00 00 00 00 00 00", &doc));
        ASSERT_EQ(smp_cbor_map_get_int(&doc, SMP_CBOR_ROOT, "a", &i), -ERANGE);
        ASSERT_OK(parse_hex("a1 61 61 3b 7f ff ff ff ff ff ff ff", &doc));
        ASSERT_OK(smp_cbor_map_get_int(&doc, SMP_CBOR_ROOT, "a", &i));
        ASSERT_EQ(i, INT64_MIN);
}

static void test_reader_duplicate_keys(void) {
        /* {"off": 1, "off": 2}: a known key twice is an error (as Zephyr's
         * zcbor_map_decode_bulk()); an unknown duplicate is not looked at. */
        struct smp_cbor_doc doc;
        uint64_t u;

        ASSERT_OK(parse_hex("a2 63 6f 66 66 01 63 6f 66 66 02", &doc));
        ASSERT_EQ(smp_cbor_map_get_uint(&doc, SMP_CBOR_ROOT, "off", &u), -EBADMSG);
        ASSERT_TRUE(strstr(err.message, "more than once") != NULL);
        ASSERT_OK(parse_hex("a3 61 78 01 61 78 02 61 61 07", &doc));
        ASSERT_OK(smp_cbor_map_get_uint(&doc, SMP_CBOR_ROOT, "a", &u));
        ASSERT_EQ(u, 7);
}

static void test_reader_top_level(void) {
        struct smp_cbor_doc doc;

        ASSERT_EQ(parse_hex("80", &doc), -EBADMSG);
        ASSERT_STREQ(err.message, "body must be a CBOR map, got array");
        ASSERT_EQ(parse_hex("01", &doc), -EBADMSG);
        ASSERT_EQ(parse_hex("61 61", &doc), -EBADMSG);
        ASSERT_EQ(parse_hex("9f ff", &doc), -EBADMSG);
        ASSERT_EQ(smp_cbor_parse(body_buf, 0, item_buf, 4, &err, &doc), -EBADMSG);
        ASSERT_EQ(parse_hex("ff", &doc), -EBADMSG);

        /* Trailing bytes: the given length is longer than the map. */
        ASSERT_EQ(parse_hex("a0 00", &doc), -EBADMSG);
        ASSERT_TRUE(strstr(err.message, "trailing bytes") != NULL);
        ASSERT_EQ(parse_hex("a1 61 64 62 68 69 a0", &doc), -EBADMSG);
        ASSERT_EQ(parse_hex("bf ff ff", &doc), -EBADMSG);

        /* Shorter than the map: definite counts that cannot fit. */
        ASSERT_EQ(parse_hex("a2 61 61 01", &doc), -EBADMSG);
        ASSERT_EQ(parse_hex("bb ff ff ff ff ff ff ff ff", &doc), -EBADMSG);
        ASSERT_EQ(parse_hex("a1 61 61 9b 00 00 00 01 00 00 00 00", &doc), -EBADMSG);
        /* 2^32 + 1: a 32-bit size_t holds 1, and the byte after the head
         * would pass as the whole string, the array's element or the map's
         * key (libcbor 0.8 on armhf). */
        ASSERT_EQ(parse_hex("a1 61 61 5b 00 00 00 01 00 00 00 01 41", &doc), -EBADMSG);
        ASSERT_TRUE(strstr(err.message, "truncated") != NULL);
        ASSERT_EQ(parse_hex("a1 61 61 7b 00 00 00 01 00 00 00 01 41", &doc), -EBADMSG);
        ASSERT_EQ(parse_hex("a1 61 61 9b 00 00 00 01 00 00 00 01 01", &doc), -EBADMSG);
        ASSERT_EQ(parse_hex("a1 61 61 bb 00 00 00 01 00 00 00 01 01 01", &doc), -EBADMSG);
        ASSERT_EQ(parse_hex("bb 00 00 00 01 00 00 00 01 01 01", &doc), -EBADMSG);
        ASSERT_EQ(parse_hex("a1 61 61 5b ff ff ff ff ff ff ff f0", &doc), -EBADMSG);
        /* Indefinite map never closed. */
        ASSERT_EQ(parse_hex("bf 61 61 01", &doc), -EBADMSG);
        ASSERT_TRUE(strstr(err.message, "truncated") != NULL);
}

static void test_reader_malformed(void) {
        struct smp_cbor_doc doc;

        /* Break outside an indefinite container, in a definite map. */
        ASSERT_EQ(parse_hex("a1 ff", &doc), -EBADMSG);
        ASSERT_EQ(parse_hex("a1 61 61 ff", &doc), -EBADMSG);
        /* Indefinite map closed after a key without value. */
        ASSERT_EQ(parse_hex("bf 61 61 ff", &doc), -EBADMSG);
        ASSERT_TRUE(strstr(err.message, "without a value") != NULL);
        /* Tags: {"a": 1(0)}. */
        ASSERT_EQ(parse_hex("a1 61 61 c1 00", &doc), -EBADMSG);
        ASSERT_TRUE(strstr(err.message, "tag") != NULL);
        /* Indefinite-length strings are refused: {"a": (_ h'61')} and
         * {"a": (_ "a")}. */
        ASSERT_EQ(parse_hex("a1 61 61 5f 41 61 ff", &doc), -EBADMSG);
        ASSERT_TRUE(strstr(err.message, "indefinite-length byte string") != NULL);
        ASSERT_EQ(parse_hex("a1 61 61 7f 61 61 ff", &doc), -EBADMSG);
        /* Reserved additional information 28-30 and simple values. */
        ASSERT_EQ(parse_hex("a1 61 61 1c", &doc), -EBADMSG);
        ASSERT_EQ(parse_hex("a1 61 61 f8 20", &doc), -EBADMSG);
        ASSERT_EQ(parse_hex("a1 61 61 e0", &doc), -EBADMSG);
        ASSERT_EQ(parse_hex("a1 1f 00", &doc), -EBADMSG);
}

/* {"a": [[[...[0]...]]]}: the body map plus `arrays` nested arrays. */
static size_t nested(uint8_t *buf, size_t arrays, bool indefinite) {
        size_t n = 0;
        buf[n++] = indefinite ? 0xbf : 0xa1;
        buf[n++] = 0x61;
        buf[n++] = 'a';
        for (size_t i = 0; i < arrays; i++)
                buf[n++] = indefinite ? 0x9f : 0x81;
        buf[n++] = 0x00;
        if (indefinite)
                for (size_t i = 0; i <= arrays; i++)
                        buf[n++] = 0xff;
        return n;
}

static void test_reader_depth(void) {
        uint8_t buf[64];
        struct smp_cbor_doc doc;

        for (int indefinite = 0; indefinite <= 1; indefinite++) {
                /* SMP_CBOR_MAX_DEPTH levels, the body map included, are fine. */
                size_t n = nested(buf, SMP_CBOR_MAX_DEPTH - 1, indefinite);
                ASSERT_OK(smp_cbor_parse(buf, n, item_buf, ELEMENTSOF(item_buf), &err, &doc));
                ASSERT_EQ(doc.items[doc.n_items - 1].depth, SMP_CBOR_MAX_DEPTH);
                n = nested(buf, SMP_CBOR_MAX_DEPTH, indefinite);
                ASSERT_EQ(smp_cbor_parse(buf, n, item_buf, ELEMENTSOF(item_buf), &err, &doc), -EBADMSG);
                ASSERT_TRUE(strstr(err.message, "nested deeper") != NULL);
        }
        /* An empty container one level too deep counts too. */
        size_t n = nested(buf, SMP_CBOR_MAX_DEPTH - 1, false);
        buf[n - 1] = 0x80;
        ASSERT_EQ(smp_cbor_parse(buf, n, item_buf, ELEMENTSOF(item_buf), &err, &doc), -EBADMSG);
}

static void test_reader_item_limit(void) {
        /* {"a": [0, 0, ..., 0]} with 20 elements = 23 items. */
        uint8_t buf[64];
        struct smp_cbor_item items[32];
        struct smp_cbor_doc doc;
        size_t n = 0;

        buf[n++] = 0xa1, buf[n++] = 0x61, buf[n++] = 'a', buf[n++] = 0x94;
        for (int i = 0; i < 20; i++)
                buf[n++] = 0;
        ASSERT_OK(smp_cbor_parse(buf, n, items, 23, &err, &doc));
        ASSERT_EQ(doc.n_items, 23);
        ASSERT_EQ(smp_cbor_parse(buf, n, items, 22, &err, &doc), -E2BIG);
        ASSERT_EQ(err.code, -E2BIG);
        ASSERT_TRUE(strstr(err.message, "too many items") != NULL);
}

/* {"a": [0, ..., 0]} with elements zeros: elements + 3 items. */
static size_t zeros_body(uint8_t *buf, size_t elements) {
        size_t n = 0;
        buf[n++] = 0xa1, buf[n++] = 0x61, buf[n++] = 'a', buf[n++] = 0x99;
        buf[n++] = (uint8_t) (elements >> 8), buf[n++] = (uint8_t) elements;
        for (size_t i = 0; i < elements; i++)
                buf[n++] = 0;
        return n;
}

static void test_parse_alloc_any_count(void) {
        /* smp_cbor_parse_alloc() makes room for a few items first and for
         * all only when a body holds more: the result is the same either
         * side of that first size, up to SMP_CBOR_MAX_ITEMS. */
        static const size_t counts[] = { 0, 1, 60, 61, 62, 63, 64, 100, 1000, SMP_CBOR_MAX_ITEMS - 3 };
        static uint8_t buf[SMP_CBOR_MAX_ITEMS + 16];

        for (size_t c = 0; c < ELEMENTSOF(counts); c++) {
                struct smp_cbor_item *items = NULL;
                struct smp_cbor_doc doc;
                uint32_t arr, idx;
                uint64_t u;
                size_t n = zeros_body(buf, counts[c]);

                err.code = 12345;
                ASSERT_OK(smp_cbor_parse_alloc(buf, n, &err, &items, &doc));
                ASSERT_EQ(doc.n_items, counts[c] + 3);
                ASSERT_EQ(err.code, 12345); /* written only on failure */
                ASSERT_TRUE(doc.error == &err);
                ASSERT_OK(smp_cbor_map_find(&doc, SMP_CBOR_ROOT, "a", &arr));
                ASSERT_EQ(doc.items[arr].count, counts[c]);
                ASSERT_EQ(doc.items[arr].next, counts[c] + 3);
                /* A getter's failure goes to the caller's error. */
                ASSERT_EQ(smp_cbor_map_get_uint(&doc, SMP_CBOR_ROOT, "a", &u), -EBADMSG);
                ASSERT_EQ(err.code, -EBADMSG);
                if (counts[c] > 0) {
                        struct smp_cbor_iter it;
                        size_t seen = 0;
                        smp_cbor_iter_init(&doc, arr, &it);
                        while (smp_cbor_iter_next(&doc, &it, &idx)) {
                                ASSERT_EQ(doc.items[idx].type, SMP_CBOR_UINT);
                                seen++;
                        }
                        ASSERT_EQ(seen, counts[c]);
                }
                free(items);

                /* The same body cut short: malformed, whatever the count. */
                err.code = 0;
                ASSERT_EQ(smp_cbor_parse_alloc(buf, n - (counts[c] > 0), &err, &items, &doc),
                          counts[c] > 0 ? -EBADMSG : 0);
                if (counts[c] > 0) {
                        ASSERT_EQ(err.code, -EBADMSG);
                        ASSERT_TRUE(strstr(err.message, "truncated") != NULL);
                } else
                        free(items);
        }

        /* One item more than SMP_CBOR_MAX_ITEMS. */
        struct smp_cbor_item *items = NULL;
        struct smp_cbor_doc doc;
        size_t n = zeros_body(buf, SMP_CBOR_MAX_ITEMS - 2);
        ASSERT_EQ(smp_cbor_parse_alloc(buf, n, &err, &items, &doc), -E2BIG);
        ASSERT_EQ(err.code, -E2BIG);
        ASSERT_TRUE(strstr(err.message, "too many items") != NULL);
        ASSERT_TRUE(items == NULL);
        /* And without an error to write to. */
        ASSERT_EQ(smp_cbor_parse_alloc(buf, n, NULL, &items, &doc), -E2BIG);
        n = zeros_body(buf, 100);
        buf[n - 1] = 0xff; /* a break inside a definite array, after 64 items */
        ASSERT_EQ(smp_cbor_parse_alloc(buf, n, NULL, &items, &doc), -EBADMSG);
        ASSERT_EQ(smp_cbor_parse_alloc(buf, n, &err, &items, &doc), -EBADMSG);
        ASSERT_TRUE(strstr(err.message, "unexpected break") != NULL);
}

static void test_parse_alloc_takes_what_the_body_holds(void) {
        /* {"a": [600 zeros], "b": 5000 bytes}: 604 items in 5 KiB.  The
         * array a decode allocates is for the items the body holds; room
         * that grew in steps took 4096 items (128 KiB) for it, for any body
         * of more than 512 items and 4 KiB. */
        static uint8_t buf[6000];
        size_t n = zeros_body(buf, 600);
        struct smp_cbor_item *items = NULL;
        struct smp_cbor_doc doc;
        uint32_t b;

        buf[0] = 0xa2;
        buf[n++] = 0x61, buf[n++] = 'b', buf[n++] = 0x59, buf[n++] = 5000 >> 8, buf[n++] = 5000 & 0xff;
        memset(buf + n, 0x5a, 5000);
        n += 5000;
        ASSERT_OK(smp_cbor_parse_alloc(buf, n, &err, &items, &doc));
        ASSERT_EQ(doc.n_items, 605);
        ASSERT_TRUE(malloc_usable_size(items) < 606 * sizeof(struct smp_cbor_item));
        ASSERT_OK(smp_cbor_map_find(&doc, SMP_CBOR_ROOT, "b", &b));
        ASSERT_EQ(doc.items[b].v.s.len, 5000);
        ASSERT_EQ(doc.items[b].next, 605);
        free(items);
}

static void test_reader_truncation_everywhere(void) {
        static const char *const vectors[] = {
                "a1 61 64 62 68 69",
                "bf 66 69 6d 61 67 65 73 9f bf 64 73 6c 6f 74 00 ff ff ff",
                "a2 61 78 a4 64 64 65 65 70 83 01 02 a1 61 7a 03"
                " 61 74 f6 61 66 f9 3e 00 61 75 f7 63 6f 66 66 05",
                "a1 61 61 1b 00 00 00 01 00 00 00 00",
                "a1 64 64 61 74 61 58 20 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"
                " 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f",
        };
        for (size_t v = 0; v < ELEMENTSOF(vectors); v++) {
                uint8_t buf[HEX_MAX];
                size_t n = test_hex(vectors[v], buf, sizeof(buf));
                struct smp_cbor_doc doc;

                ASSERT_OK(smp_cbor_parse(buf, n, item_buf, ELEMENTSOF(item_buf), &err, &doc));
                for (size_t cut = 0; cut < n; cut++) {
                        /* Copy to an exactly sized heap buffer so ASan sees
                         * any read past the cut. */
                        uint8_t *p = malloc(cut ? cut : 1);
                        ASSERT_TRUE(p);
                        memcpy(p, buf, cut);
                        ASSERT_EQ(smp_cbor_parse(p, cut, item_buf, ELEMENTSOF(item_buf), &err, &doc),
                                  -EBADMSG);
                        free(p);
                }
        }
}

static void test_reader_random_never_crashes(void) {
        /* xorshift noise, biased towards heads and small lengths. */
        uint64_t x = 0x9e3779b97f4a7c15ull;
        for (int round = 0; round < 20000; round++) {
                size_t n = (size_t) (x % 40) + 1;
                uint8_t *p = malloc(n);
                struct smp_cbor_doc doc;

                ASSERT_TRUE(p);
                for (size_t i = 0; i < n; i++) {
                        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                        p[i] = (uint8_t) (x & 3 ? x >> 8 : 0xa0 | (x >> 8 & 0x1f));
                }
                p[0] = (uint8_t) (0xa0 | (p[0] & 3)) | (round & 1 ? 0x1f : 0);
                int r = smp_cbor_parse(p, n, item_buf, 16, &err, &doc);
                ASSERT_TRUE(r == 0 || r == -EBADMSG || r == -E2BIG);
                if (r == 0) {
                        uint64_t u;
                        (void) smp_cbor_map_get_uint(&doc, SMP_CBOR_ROOT, "a", &u);
                }
                free(p);
        }
}

static void test_slices(void) {
        char buf[4];
        struct smp_cbor_slice s = SMP_CBOR_SLICE_LIT("abc");

        ASSERT_EQ(s.len, 3);
        ASSERT_TRUE(smp_cbor_slice_eq(s, "abc"));
        ASSERT_TRUE(!smp_cbor_slice_eq(s, "ab"));
        ASSERT_TRUE(!smp_cbor_slice_eq((struct smp_cbor_slice) { NULL, 0 }, ""));
        ASSERT_EQ(smp_cbor_slice_copy(s, buf, sizeof(buf)), 3);
        ASSERT_STREQ(buf, "abc");
        ASSERT_EQ(smp_cbor_slice_copy(s, buf, 3), -ENAMETOOLONG);
        ASSERT_EQ(smp_cbor_slice_copy(smp_cbor_slice_make("a\0b", 3), buf, sizeof(buf)), -EBADMSG);
        ASSERT_TRUE(!smp_cbor_slice_present(smp_cbor_slice_str(NULL)));
        ASSERT_EQ(smp_cbor_slice_str("hello").len, 5);
}

TEST_MAIN(TEST(test_writer_rfc8949_scalars), TEST(test_writer_indefinite_style), TEST(test_writer_overflow_sticks),
          TEST(test_head_sizes), TEST(test_reader_protocol_md_echo), TEST(test_reader_indefinite_like_zcbor),
          TEST(test_reader_skips_unknown_subtrees), TEST(test_reader_wrong_types), TEST(test_reader_duplicate_keys),
          TEST(test_reader_top_level), TEST(test_reader_malformed), TEST(test_reader_depth),
          TEST(test_reader_item_limit), TEST(test_parse_alloc_any_count),
          TEST(test_parse_alloc_takes_what_the_body_holds), TEST(test_reader_truncation_everywhere),
          TEST(test_reader_random_never_crashes), TEST(test_slices))
