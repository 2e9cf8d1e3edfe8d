/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smp_parse_uint(): the one parser for numbers people type, used by the
 * tools, the plugins and connection strings.  Decimal digits only, bounds
 * checked, no wrap-around past UINT64_MAX, nothing written on failure.
 */
#include <errno.h>

#include "smpgw/smp-parse.h"
#include "test-util.h"

static void test_parse_uint(void) {
        uint64_t v = 42;

        ASSERT_OK(smp_parse_uint("0", 0, 10, &v));
        ASSERT_EQ(v, 0);
        ASSERT_OK(smp_parse_uint("0010", 0, 10, &v));
        ASSERT_EQ(v, 10);
        ASSERT_OK(smp_parse_uint("18446744073709551615", 0, UINT64_MAX, &v));
        ASSERT_TRUE(v == UINT64_MAX);
        v = 42;
        ASSERT_EQ(smp_parse_uint("18446744073709551616", 0, UINT64_MAX, &v), -ERANGE);
        ASSERT_EQ(smp_parse_uint("99999999999999999999999", 0, UINT64_MAX, &v), -ERANGE);
        ASSERT_EQ(smp_parse_uint("11", 0, 10, &v), -ERANGE);
        ASSERT_EQ(smp_parse_uint("4", 5, 10, &v), -ERANGE);
        ASSERT_EQ(v, 42); /* untouched on failure */
        static const char *const not_numbers[] = { "", " 5", "5 ", "+5", "-5", "5k", "0x10", "1e3", "1.0", "5\n" };
        for (size_t i = 0; i < ELEMENTSOF(not_numbers); i++)
                ASSERT_EQ(smp_parse_uint(not_numbers[i], 0, UINT64_MAX, &v), -EINVAL);
        ASSERT_EQ(smp_parse_uint(NULL, 0, 1, &v), -EINVAL);
        ASSERT_EQ(smp_parse_uint("99999999999999999999x", 0, UINT64_MAX, &v), -EINVAL);
        ASSERT_OK(smp_parse_uint_n("12345", 2, 0, 100, &v));
        ASSERT_EQ(v, 12);
        ASSERT_EQ(smp_parse_uint_n("12345", 0, 0, 100, &v), -EINVAL);
}

static void test_strv_free(void) {
        char **strv = calloc(3, sizeof(char *));
        ASSERT_TRUE(strv);
        strv[0] = strdup("a");
        strv[1] = strdup("b");
        smp_strv_free(strv);
        smp_strv_free(NULL);
}

TEST_MAIN(TEST(test_parse_uint), TEST(test_strv_free))
