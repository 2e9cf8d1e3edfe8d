/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared device strings (daemon/device-strings.c): one copy of each
 * text, handed out as often as asked, freed with its last reference, and
 * the table empty once every device let go (ASan checks the frees).
 */
#include <string.h>

#include "device-strings.h"
#include "test-util.h"

static void test_one_copy_each(void) {
        struct device_string_entry *table = NULL;

        const char *a = device_string_share(&table, "MCUboot", 7);
        const char *b = device_string_share(&table, "MCUbootXYZ", 7); /* only the first 7 bytes count */
        const char *c = device_string_share(&table, "Other", 5);
        ASSERT_TRUE(a && b && c);
        ASSERT_TRUE(a == b);
        ASSERT_TRUE(a != c);
        ASSERT_TRUE(strcmp(a, "MCUboot") == 0 && strcmp(c, "Other") == 0);
        ASSERT_EQ(HASH_COUNT(table), 2);

        device_string_release(b);
        ASSERT_TRUE(strcmp(a, "MCUboot") == 0); /* a still holds it */
        ASSERT_EQ(HASH_COUNT(table), 2);
        device_string_release(a);
        ASSERT_EQ(HASH_COUNT(table), 1);
        /* Shared again after it was freed: a new copy, same text. */
        const char *d = device_string_share(&table, "MCUboot", 7);
        ASSERT_TRUE(d && strcmp(d, "MCUboot") == 0);
        device_string_release(d);
        device_string_release(c);
        device_string_release(NULL);
        ASSERT_TRUE(table == NULL);
}

TEST_MAIN(TEST(test_one_copy_each))
