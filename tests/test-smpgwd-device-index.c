/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The devices-by-connection-string index (daemon/device-index.c) against
 * a plain list: random adds and removes at every fill level up to three
 * quarters, every device found exactly while it is in, the backward
 * shift of a removal (also across the end of the table) losing nobody.
 */
#include <stdio.h>
#include <stdlib.h>

#include "device.h"
#include "test-util.h"

#define N 3000u

static void check_all(const struct device_conn_index *x, struct device *devices, const bool *in) {
        for (unsigned i = 0; i < N; i++)
                ASSERT_TRUE(device_conn_index_find(x, devices[i].conn) == (in[i] ? &devices[i] : NULL));
}

static void test_random_against_list(void) {
        struct device *devices = calloc(N, sizeof(*devices));
        bool *in = calloc(N, sizeof(*in));
        struct device_conn_index x = {};
        unsigned n = 0;
        uint64_t rnd = 0x9e3779b97f4a7c15ull;

        ASSERT_TRUE(devices && in);
        for (unsigned i = 0; i < N; i++)
                ASSERT_TRUE(asprintf(&devices[i].conn, "udp:127.0.0.1:%u", 40000 + i) > 0);
        ASSERT_TRUE(!device_conn_index_find(&x, devices[0].conn));
        for (unsigned step = 0; step < 40000; step++) {
                rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
                unsigned i = (unsigned) (rnd % N);
                /* Mostly adds early, then as many removes as adds. */
                bool add = step < 4000 ? (rnd >> 32) % 4 != 0 : (rnd >> 32) % 2 == 0;
                if (add && !in[i]) {
                        ASSERT_OK(device_conn_index_add(&x, &devices[i]));
                        in[i] = true;
                        n++;
                } else if (!add && in[i]) {
                        device_conn_index_remove(&x, &devices[i]);
                        in[i] = false;
                        n--;
                }
                ASSERT_EQ(x.n, n);
                ASSERT_TRUE(x.n * 4 <= x.size * 3);
                if (step % 997 == 0)
                        check_all(&x, devices, in);
        }
        check_all(&x, devices, in);
        /* Removed down to nothing, and found again after. */
        for (unsigned i = 0; i < N; i++)
                if (in[i]) {
                        device_conn_index_remove(&x, &devices[i]);
                        in[i] = false;
                }
        ASSERT_EQ(x.n, 0);
        check_all(&x, devices, in);
        ASSERT_OK(device_conn_index_add(&x, &devices[7]));
        ASSERT_TRUE(device_conn_index_find(&x, "udp:127.0.0.1:40007") == &devices[7]);
        device_conn_index_clear(&x);
        ASSERT_TRUE(!device_conn_index_find(&x, "udp:127.0.0.1:40007"));
        for (unsigned i = 0; i < N; i++)
                free(devices[i].conn);
        free(devices);
        free(in);
}

TEST_MAIN(TEST(test_random_against_list))
