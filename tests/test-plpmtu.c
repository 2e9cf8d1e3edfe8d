/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The upload's path MTU search (lib/plpmtu.c) alone, deterministically:
 * what it probes and in which order, what it makes of answers and
 * losses, a probe lost by bad luck, a black hole, a seed taken and
 * revoked, paths narrower than the base size.  Paths are a size limit
 * the test applies itself; the upload against smpsim's --mtu is tested
 * in tests/smpgwctl/test_smpgwctl_conn.py.
 */
#include "plpmtu.h"
#include "test-util.h"

#define UDP_MAX 1472u   /* the udp transport's IPv4 default */

/* Probes one at a time along a path carrying `limit` bytes until the
 * search completes; returns the probes sent. */
static unsigned search(struct plpmtu *p, size_t limit) {
        unsigned probes = 0;
        size_t size;

        while ((size = plpmtu_next_probe(p, 1)) != 0) {
                ASSERT_TRUE(size > p->confirmed && size <= p->max);
                plpmtu_probe_sent(p, size);
                ASSERT_EQ(plpmtu_next_probe(p, 1), 0); /* one in flight at a time */
                if (size <= limit)
                        plpmtu_probe_acked(p, size);
                else
                        plpmtu_probe_lost(p, size);
                ASSERT_TRUE(++probes < 64);
        }
        ASSERT_TRUE(plpmtu_complete(p));
        return probes;
}

static void test_wide_path_confirmed_by_one_probe(void) {
        struct plpmtu p;

        plpmtu_init(&p, 1400, 0);
        ASSERT_EQ(p.confirmed, PLPMTU_BASE);
        ASSERT_TRUE(!plpmtu_complete(&p));
        /* the whole width first: a ",mtu=" that is right costs one probe */
        ASSERT_EQ(plpmtu_next_probe(&p, 1), 1400);
        plpmtu_probe_sent(&p, 1400);
        plpmtu_probe_acked(&p, 1400);
        ASSERT_EQ(p.confirmed, 1400);
        ASSERT_TRUE(plpmtu_complete(&p));
        ASSERT_EQ(plpmtu_next_probe(&p, PLPMTU_FLIGHT_MAX), 0);
}

static void test_search_finds_the_limit(void) {
        static const size_t limits[] = { 548, 549, 576, 600, 1000, 1232, 1280, 1400, 1452, 1471, 1472, 5000 };

        for (size_t i = 0; i < ELEMENTSOF(limits); i++) {
                struct plpmtu p;
                plpmtu_init(&p, UDP_MAX, 0);
                unsigned probes = search(&p, limits[i]);
                size_t want = MIN(limits[i], (size_t) UDP_MAX);
                /* never above the path, within the resolution below it */
                ASSERT_TRUE(p.confirmed <= want);
                ASSERT_TRUE(p.confirmed + plpmtu_resolution(p.confirmed) >= want);
                ASSERT_TRUE(p.confirmed * 16 >= want * 15);
                /* halving 924 bytes down to 16: about ten probes, plus the
                 * end of the range lost a second time */
                ASSERT_TRUE(probes <= 12);
        }
}

static void test_search_steps(void) {
        struct plpmtu p;

        /* the resolution: 16 bytes at least, c²/16384 (small chunks),
         * c/16 at most (large ones) */
        ASSERT_EQ(plpmtu_resolution(128), 16);
        ASSERT_EQ(plpmtu_resolution(548), 548 * 548 / 16384);
        ASSERT_EQ(plpmtu_resolution(1000), 1000 * 1000 / 16384);
        ASSERT_EQ(plpmtu_resolution(1400), 1400 / 16);
        ASSERT_EQ(plpmtu_resolution(9000), 9000 / 16);

        /* a 1400-byte path under the udp default, one probe at a time */
        plpmtu_init(&p, UDP_MAX, 0);
        ASSERT_EQ(plpmtu_next_probe(&p, 1), 1472);
        plpmtu_probe_sent(&p, 1472);
        plpmtu_probe_lost(&p, 1472);
        /* one loss makes the end of the range at once */
        ASSERT_EQ(p.too_big, 1472);
        ASSERT_EQ(plpmtu_next_probe(&p, 1), 548 + (1472 - 548) / 2);
        plpmtu_probe_sent(&p, 1010);
        plpmtu_probe_acked(&p, 1010);
        ASSERT_EQ(p.confirmed, 1010);
        ASSERT_EQ(plpmtu_next_probe(&p, 1), 1241);
        plpmtu_probe_sent(&p, 1241);
        plpmtu_probe_acked(&p, 1241);
        ASSERT_EQ(plpmtu_next_probe(&p, 1), 1356);
        plpmtu_probe_sent(&p, 1356);
        plpmtu_probe_acked(&p, 1356);
        ASSERT_EQ(plpmtu_next_probe(&p, 1), 1414);
        plpmtu_probe_sent(&p, 1414);
        plpmtu_probe_lost(&p, 1414);
        /* 58 bytes left, under 1356/16: the end is lost once more to be
         * sure, then the search is complete */
        ASSERT_EQ(plpmtu_resolution(1356), 1356 / 16);
        ASSERT_TRUE(!plpmtu_complete(&p));
        ASSERT_EQ(plpmtu_next_probe(&p, 1), 1414);
        plpmtu_probe_sent(&p, 1414);
        plpmtu_probe_lost(&p, 1414);
        ASSERT_TRUE(plpmtu_complete(&p));
        ASSERT_EQ(p.confirmed, 1356);
        ASSERT_EQ(plpmtu_next_probe(&p, 1), 0);
}

static void test_idle_flight(void) {
        struct plpmtu p;

        /* While the link is idle, three at once, largest first, splitting
         * the range evenly below max */
        plpmtu_init(&p, UDP_MAX, 0);
        ASSERT_EQ(plpmtu_next_probe(&p, PLPMTU_FLIGHT_MAX), 1472);
        plpmtu_probe_sent(&p, 1472);
        ASSERT_EQ(plpmtu_next_probe(&p, 1), 0);
        ASSERT_EQ(plpmtu_next_probe(&p, PLPMTU_FLIGHT_MAX), 548 + (1472 - 548) * 3 / 4);
        plpmtu_probe_sent(&p, 1241);
        ASSERT_EQ(plpmtu_next_probe(&p, PLPMTU_FLIGHT_MAX), 1010);
        plpmtu_probe_sent(&p, 1010);
        ASSERT_EQ(plpmtu_next_probe(&p, PLPMTU_FLIGHT_MAX), 0);

        /* the smaller ones arrive, the largest is lost */
        plpmtu_probe_lost(&p, 1472);
        plpmtu_probe_acked(&p, 1241);
        plpmtu_probe_acked(&p, 1010);
        ASSERT_EQ(p.confirmed, 1241);
        ASSERT_EQ(p.too_big, 1472);
        ASSERT_EQ(p.n_in_flight, 0);
        ASSERT_EQ(plpmtu_next_probe(&p, 1), 1356);

        /* all lost: the smallest is the end of the range */
        plpmtu_init(&p, UDP_MAX, 0);
        for (size_t size; (size = plpmtu_next_probe(&p, PLPMTU_FLIGHT_MAX)) != 0;)
                plpmtu_probe_sent(&p, size);
        ASSERT_EQ(p.n_in_flight, 3);
        plpmtu_probe_lost(&p, 1472);
        plpmtu_probe_lost(&p, 1241);
        plpmtu_probe_lost(&p, 1010);
        ASSERT_EQ(p.too_big, 1010);
        ASSERT_EQ(p.confirmed, PLPMTU_BASE);
        ASSERT_EQ(plpmtu_next_probe(&p, 1), 779);
}

static void test_probe_lost_by_bad_luck(void) {
        struct plpmtu p;

        /* The path carries 1472, but the first probe of 1472 is lost at
         * random: the search goes below it, and when the range is narrow
         * 1472 is probed again, gets through, and is confirmed. */
        plpmtu_init(&p, UDP_MAX, 0);
        plpmtu_probe_sent(&p, 1472);
        plpmtu_probe_lost(&p, 1472);
        search(&p, UDP_MAX);
        ASSERT_EQ(p.confirmed, 1472);

        /* The same deeper down: 1010 lost once on a 1400-byte path; the
         * range above reopens once it gets through. */
        plpmtu_init(&p, UDP_MAX, 0);
        plpmtu_probe_sent(&p, 1472);
        plpmtu_probe_lost(&p, 1472);
        plpmtu_probe_sent(&p, 1010);
        plpmtu_probe_lost(&p, 1010);
        ASSERT_EQ(p.too_big, 1010);
        search(&p, 1400);
        ASSERT_TRUE(p.confirmed <= 1400 && p.confirmed + plpmtu_resolution(p.confirmed) >= 1400);

        /* answers and losses that say nothing new change nothing */
        plpmtu_init(&p, UDP_MAX, 0);
        plpmtu_probe_sent(&p, 1000);
        plpmtu_probe_acked(&p, 1000);
        plpmtu_probe_lost(&p, 900);
        plpmtu_probe_acked(&p, 800);
        ASSERT_EQ(p.confirmed, 1000);
        ASSERT_EQ(p.too_big, UDP_MAX + 1);
}

static void test_black_hole(void) {
        struct plpmtu p;

        plpmtu_init(&p, UDP_MAX, 0);
        search(&p, 1400);
        size_t learned = p.confirmed;

        /* one episode of lost data is not enough; an answer in between
         * starts the count again */
        ASSERT_TRUE(!plpmtu_data_lost(&p));
        plpmtu_data_acked(&p);
        ASSERT_TRUE(!plpmtu_data_lost(&p));
        ASSERT_EQ(p.confirmed, learned);

        /* two in a row: the path narrowed (to 1000, say): back to base,
         * the lost size is the end of the range beyond doubt */
        ASSERT_TRUE(plpmtu_data_lost(&p));
        ASSERT_EQ(p.confirmed, PLPMTU_BASE);
        ASSERT_EQ(p.too_big, learned);
        ASSERT_TRUE(!plpmtu_complete(&p));
        search(&p, 1000);
        ASSERT_TRUE(p.confirmed <= 1000 && p.confirmed * 10 >= 1000 * 9);
}

static void test_seed(void) {
        struct plpmtu p;

        /* a seed is the size data starts with; the search still tries the
         * rest of the width above it, and keeps the seed when that fails */
        plpmtu_init(&p, UDP_MAX, 1400);
        ASSERT_EQ(p.confirmed, 1400);
        ASSERT_EQ(plpmtu_next_probe(&p, 1), 1472);
        search(&p, 1400);
        ASSERT_EQ(p.confirmed, 1400);

        /* a path that widened since is found */
        plpmtu_init(&p, UDP_MAX, 1300);
        search(&p, UDP_MAX);
        ASSERT_EQ(p.confirmed, UDP_MAX);

        /* a seed over max is max (the device's buffer or ",mtu=" shrank);
         * a tiny one is the floor */
        plpmtu_init(&p, 1000, 1400);
        ASSERT_EQ(p.confirmed, 1000);
        ASSERT_TRUE(plpmtu_complete(&p));
        plpmtu_init(&p, UDP_MAX, 20);
        ASSERT_EQ(p.confirmed, PLPMTU_MIN);
}

static void test_seed_revoked(void) {
        struct plpmtu p;

        /* The seed came from another path (a VPN went away, 576 bytes
         * now): data of its size vanishes, so it is revoked like any
         * confirmed size, and the search finds the new limit from base. */
        plpmtu_init(&p, UDP_MAX, 1400);
        plpmtu_probe_sent(&p, 1472);
        plpmtu_probe_lost(&p, 1472);
        ASSERT_TRUE(!plpmtu_data_lost(&p));
        ASSERT_TRUE(plpmtu_data_lost(&p));
        ASSERT_EQ(p.confirmed, PLPMTU_BASE);
        ASSERT_EQ(p.too_big, 1400);
        search(&p, 576);
        ASSERT_TRUE(p.confirmed <= 576 && p.confirmed * 10 >= 576 * 9);
}

static void test_narrower_than_base(void) {
        struct plpmtu p;

        /* base itself vanishes: a quarter smaller at a time (the first
         * chunk, at base, is what gets lost here) */
        plpmtu_init(&p, UDP_MAX, 0);
        ASSERT_TRUE(!plpmtu_data_lost(&p));
        ASSERT_TRUE(plpmtu_data_lost(&p));
        ASSERT_EQ(p.confirmed, PLPMTU_BASE * 3 / 4);
        ASSERT_EQ(p.too_big, PLPMTU_BASE);
        ASSERT_TRUE(!plpmtu_data_lost(&p));
        ASSERT_TRUE(plpmtu_data_lost(&p));
        ASSERT_EQ(p.confirmed, PLPMTU_BASE * 3 / 4 * 3 / 4);
        search(&p, 350);
        ASSERT_TRUE(p.confirmed <= 350 && p.confirmed * 10 >= 350 * 9);

        /* down to the floor, and no further */
        plpmtu_init(&p, UDP_MAX, PLPMTU_MIN);
        ASSERT_TRUE(!plpmtu_data_lost(&p));
        ASSERT_TRUE(!plpmtu_data_lost(&p));
        ASSERT_EQ(p.confirmed, PLPMTU_MIN);

        /* a transport limit under base: nothing to search */
        plpmtu_init(&p, 300, 0);
        ASSERT_EQ(p.base, 300);
        ASSERT_EQ(p.confirmed, 300);
        ASSERT_TRUE(plpmtu_complete(&p));
        ASSERT_EQ(plpmtu_next_probe(&p, PLPMTU_FLIGHT_MAX), 0);
}

TEST_MAIN(TEST(test_wide_path_confirmed_by_one_probe), TEST(test_search_finds_the_limit), TEST(test_search_steps),
          TEST(test_idle_flight), TEST(test_probe_lost_by_bad_luck), TEST(test_black_hole), TEST(test_seed),
          TEST(test_seed_revoked), TEST(test_narrower_than_base))
