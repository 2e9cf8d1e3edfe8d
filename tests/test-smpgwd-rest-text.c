/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The JSON text list pages are written with (daemon/rest-text.c) says
 * what the jansson forms say: times as gmtime_r() + strftime() have them
 * (every era boundary, leap days, the far future a uint64 µs reaches),
 * strings that parse back to themselves (escapes, UTF-8; null for what
 * is not UTF-8, as json_string() refuses it), and a buffer that grows
 * past any first guess.
 */
#include <jansson.h>
#include <time.h>

#include "rest-text.h"
#include "test-util.h"

static void expect_time(uint64_t usec) {
        char want[64], got[REST_TIME_MAX];
        time_t sec = (time_t) (usec / 1000000u);
        struct tm tm;

        ASSERT_TRUE(gmtime_r(&sec, &tm));
        ASSERT_TRUE(strftime(want, sizeof(want) - 8, "%Y-%m-%dT%H:%M:%S", &tm) > 0);
        snprintf(want + strlen(want), 8, ".%03uZ", (unsigned) (usec / 1000u % 1000u));
        ASSERT_EQ(rest_format_time(got, usec), strlen(want));
        ASSERT_STREQ(got, want);
}

static void test_time_as_strftime(void) {
        static const uint64_t days[] = {
                0, 1, 58, 59, 60, 365, 10956, 11016, 11017, 11323, 47540, 47541, 2932896, 2932897,
        };
        for (size_t i = 0; i < ELEMENTSOF(days); i++)
                for (uint64_t s = 0; s < 2; s++)
                        expect_time((days[i] * 86400u + s * 86399u) * 1000000u + 999999u);
        expect_time(1);
        expect_time(1764927000123456ull);
        expect_time(UINT64_MAX);
        /* Every day of 800 years from 1970 (two 400-year eras), and a spread
         * of values over the whole range. */
        for (uint64_t d = 0; d < 800u * 366u; d += 1)
                expect_time((d * 86400u + d % 86400u) * 1000000u + d % 1000000u);
        uint64_t x = 0x9e3779b97f4a7c15ull;
        for (unsigned i = 0; i < 100000; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                expect_time(x);
        }
}

static void expect_string(const char *s) {
        struct rest_text t = {};
        size_t len;

        rest_text_put_string_or_null(&t, s);
        _cleanup_free_ char *text = rest_text_steal(&t, &len);
        ASSERT_TRUE(text);
        ASSERT_EQ(strlen(text), len);
        json_t *parsed = json_loads(text, JSON_DECODE_ANY, NULL);
        json_t *want = s ? json_string(s) : NULL;
        ASSERT_TRUE(parsed);
        if (want)
                ASSERT_TRUE(json_is_string(parsed) && streq(json_string_value(parsed), s));
        else
                ASSERT_TRUE(json_is_null(parsed));
        json_decref(parsed);
        json_decref(want);
}

static void test_strings_parse_back(void) {
        static const char *const strings[] = {
                "",
                "plain",
                "re\"named\\ \xc3\xa9",
                "tab\there\nline\r\b\f",
                "\x01\x1f\x7f",
                "\xe2\x80\xa8 sep",
                "\xf0\x9f\x98\x80",
                "bad \xff",
                "cut \xe2\x82",
                "overlong \xc0\xaf",
                "surrogate \xed\xa0\x80",
                "/slash",
                NULL,
        };
        for (size_t i = 0; i < ELEMENTSOF(strings); i++)
                expect_string(strings[i]);
        /* Long enough to grow the buffer inside a string, at every offset
         * of an escape or a multibyte sequence. */
        char long_string[20000];
        static const char *const pieces[] = { "a", "\x01", "\"", "\xc3\xa9", "\xf0\x9f\x98\x80", "\\", "bc" };
        for (size_t start = 0; start < ELEMENTSOF(pieces); start++) {
                size_t n = 0;
                for (size_t i = start; n + 8 < sizeof(long_string); i++) {
                        strcpy(long_string + n, pieces[i % ELEMENTSOF(pieces)]);
                        n += strlen(pieces[i % ELEMENTSOF(pieces)]);
                }
                expect_string(long_string);
        }
}

static void test_grows(void) {
        struct rest_text t = {};
        size_t len;

        for (unsigned i = 0; i < 10000; i++) {
                rest_text_lit(&t, "{\"n\":");
                rest_text_put_i64(&t, (int64_t) i - 5000);
                rest_text_lit(&t, ",\"b\":");
                rest_text_put_bool(&t, i % 2);
                rest_text_putc(&t, '}');
        }
        rest_text_put_u64(&t, UINT64_MAX);
        rest_text_put_i64(&t, INT64_MIN);
        _cleanup_free_ char *text = rest_text_steal(&t, &len);
        ASSERT_TRUE(text);
        ASSERT_EQ(strlen(text), len);
        static const char start[] = "{\"n\":-5000,\"b\":false}{\"n\":-4999,\"b\":true}";
        ASSERT_TRUE(strncmp(text, start, sizeof(start) - 1) == 0);
        ASSERT_TRUE(strstr(text, "{\"n\":4999,\"b\":true}18446744073709551615-9223372036854775808"));
        ASSERT_TRUE(!t.data && t.len == 0);
}

TEST_MAIN(TEST(test_time_as_strftime), TEST(test_strings_parse_back), TEST(test_grows))
