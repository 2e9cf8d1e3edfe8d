/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon/rollout-plan.c: the simulation against timelines worked out by
 * hand (one device; three devices through one slot; more slots than
 * devices; a reboot budget of one; a window that opens later; staging;
 * a canary with a soak; BLE adapter limits; relays; upload-only), what it
 * reports as assumed, its refusals, and the lower bound, which no
 * estimate may beat.
 *
 * The figures of most cases: a 10000-byte image; "udp" at 1000 bytes/s
 * with a 0.1 s round trip, so a stage is 2 × 0.1 + 10 = 10.2 s, an
 * activation 2 × 0.1 = 0.2 s, a verify (test-and-confirm) 3 × 0.1 =
 * 0.3 s and a soak probe 0.1 s; swaps take 5 s.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rollout-plan.h"
#include "test-util.h"

#define SEC 1000000ull
#define MS 1000ull
#define START (1800000000ull * SEC)

static struct rollout_policy policy;
static const struct rollout_plan_transport udp_table[] = {
        { .name = "udp", .rate = 1000, .rtt_s = 0.1, .max_running = 8 },
        { .name = "ble", .rate = 500, .rtt_s = 0.1, .max_running = 8 },
};

static struct rollout_plan_member member(uint64_t id, uint32_t wave) {
        struct rollout_plan_member m = { .device_id = id, .wave = wave, .rate = 1000, .swap_s = 5 };
        strcpy(m.transport, "udp");
        return m;
}

static struct rollout_plan_input input(const struct rollout_plan_member *members, size_t n) {
        rollout_policy_init(&policy);
        policy.max_rebooting = 4;
        return (struct rollout_plan_input) {
                .policy = &policy,
                .mode = SMP_UPDATE_TEST_AND_CONFIRM,
                .image_size = 10000,
                .start_usec = START,
                .members = members,
                .n_members = n,
                .max_running = 8,
                .transports = udp_table,
                .n_transports = ELEMENTSOF(udp_table),
                .max_running_ble_adapter = 7,
                .default_rate = 2000,
                .default_rtt_s = 0.05,
                .swap_default_s = 10,
        };
}

static struct rollout_estimate estimate(const struct rollout_plan_input *in) {
        struct rollout_estimate e;
        uint64_t bound;

        ASSERT_OK(rollout_plan_estimate(in, &e));
        ASSERT_EQ(e.start_usec, in->start_usec);
        ASSERT_EQ(e.duration_usec, e.end_usec - e.start_usec);
        /* No estimate beats the lower bound. */
        ASSERT_OK(rollout_plan_lower_bound(in, &bound));
        ASSERT_TRUE(bound <= e.duration_usec);
        return e;
}

static uint64_t duration(const struct rollout_plan_input *in) {
        struct rollout_estimate e = estimate(in);
        uint64_t d = e.duration_usec;

        rollout_estimate_done(&e);
        return d;
}

static uint64_t lower_bound(const struct rollout_plan_input *in) {
        uint64_t b;

        ASSERT_OK(rollout_plan_lower_bound(in, &b));
        return b;
}

/* ---- hand-computed timelines ---- */

static void test_one_device(void) {
        struct rollout_plan_member m[] = { member(1, 0) };
        struct rollout_plan_input in = input(m, 1);
        struct rollout_estimate e = estimate(&in);

        /* 10.2 stage + 0.2 activate + 5 swap + 0.3 verify */
        ASSERT_EQ(e.duration_usec, 15700 * MS);
        ASSERT_EQ(e.n_waves, 1);
        ASSERT_EQ(e.waves[0].n_members, 1);
        ASSERT_EQ(e.waves[0].start_usec, START);
        ASSERT_EQ(e.waves[0].first_activation_usec, START + 10200 * MS);
        ASSERT_EQ(e.waves[0].members_done_usec, START + 15700 * MS);
        ASSERT_EQ(e.waves[0].end_usec, START + 15700 * MS);
        ASSERT_EQ(e.n_transports, 1);
        ASSERT_STREQ(e.transports[0].name, "udp");
        ASSERT_EQ(e.transports[0].n_members, 1);
        ASSERT_EQ(e.transports[0].n_default_rate, 0);
        ASSERT_TRUE(e.transports[0].from_table);
        ASSERT_EQ(e.n_default_swap, 0);
        ASSERT_EQ(e.window_wait_usec, 0);
        ASSERT_TRUE(!e.deadline_exceeded);
        rollout_estimate_done(&e);
        ASSERT_TRUE(e.waves == NULL);

        /* 10 s upload + 5 s swap */
        ASSERT_EQ(lower_bound(&in), 15 * SEC);
}

static void test_one_slot(void) {
        struct rollout_plan_member m[] = { member(1, 0), member(2, 0), member(3, 0) };
        struct rollout_plan_input in = input(m, 3);

        /* One slot; verifies, then activations, go before uploads:
         *   0     m1 stage          10.2  m1 activate
         *   10.4  m2 stage (m1 swaps to 15.4, then waits for the slot)
         *   20.6  m1 verify → 20.9  m2 activate → 21.1  m3 stage
         *   31.3  m2 verify → 31.6  m3 activate → 31.8, swap to 36.8
         *   36.8  m3 verify → 37.1 */
        in.max_running = 1;
        ASSERT_EQ(duration(&in), 37100 * MS);
        /* 3 × 10 s through one slot + 5 s swap */
        ASSERT_EQ(lower_bound(&in), 35 * SEC);

        /* The transport's limit binds the same way. */
        in.max_running = 8;
        in.transports = (const struct rollout_plan_transport[]) {
                { .name = "udp", .rate = 1000, .rtt_s = 0.1, .max_running = 1 },
        };
        in.n_transports = 1;
        ASSERT_EQ(duration(&in), 37100 * MS);
        ASSERT_EQ(lower_bound(&in), 35 * SEC);
}

static void test_slots_exceed_devices(void) {
        struct rollout_plan_member m[] = { member(1, 0), member(2, 0), member(3, 0) };
        struct rollout_plan_input in = input(m, 3);

        /* All in parallel: as long as one. */
        ASSERT_EQ(duration(&in), 15700 * MS);
        ASSERT_EQ(lower_bound(&in), 15 * SEC);
}

static void test_reboot_budget(void) {
        struct rollout_plan_member m[] = { member(1, 0), member(2, 0), member(3, 0) };
        struct rollout_plan_input in = input(m, 3);

        /* All staged at 10.2; one token: each holds it from its
         * activation to its verify's end, 5.5 s:
         * 10.2 → 15.7 → 21.2 → 26.7 */
        policy.max_rebooting = 1;
        ASSERT_EQ(duration(&in), 26700 * MS);
}

static void test_relay_budget(void) {
        struct rollout_plan_member m[] = { member(1, 0), member(2, 0), member(3, 0) };
        struct rollout_plan_input in = input(m, 3);

        /* Relays 1 and 2 one after the other (max_rebooting_relay 1);
         * device 3 in parallel: 10.2 → 15.7 → 21.2. */
        m[0].relay = m[1].relay = true;
        ASSERT_EQ(duration(&in), 21200 * MS);
        policy.max_rebooting_relay = 2;
        ASSERT_EQ(duration(&in), 15700 * MS);
}

static uint64_t utc(int y, int mo, int d, int h, int mi) {
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi };
        return (uint64_t) timegm(&tm) * SEC;
}

static void test_window_later(void) {
        struct rollout_plan_member m[] = { member(1, 0) };
        struct rollout_plan_input in = input(m, 1);
        struct rollout_windows ws = {};
        struct rollout_window w;
        struct tz_zone z;
        struct rollout_estimate e;

        ASSERT_OK(rollout_window_parse("mon-fri 02:00-04:00", &w, NULL));
        ASSERT_OK(rollout_windows_add(&ws, &w));
        ASSERT_OK(tz_zone_load("Europe/Berlin", &z, NULL));
        in.windows = &ws;
        in.zone = &z;
        /* Monday 4 May 2026, 00:00 CEST (22:00 UTC on Sunday): staged at
         * 10.2 s, activated when the window opens at 02:00 CEST. */
        in.start_usec = utc(2026, 5, 3, 22, 0);
        e = estimate(&in);
        ASSERT_EQ(e.end_usec, utc(2026, 5, 4, 0, 0) + 5500 * MS);
        ASSERT_EQ(e.waves[0].first_activation_usec, utc(2026, 5, 4, 0, 0));
        ASSERT_EQ(e.window_wait_usec, 7200 * SEC - 10200 * MS);
        rollout_estimate_done(&e);

        /* Started inside the window: no wait. */
        in.start_usec = utc(2026, 5, 4, 0, 30);
        ASSERT_EQ(duration(&in), 15700 * MS);

        /* Started 5 s before the window closes (04:00 CEST): staged after
         * it closed, and activations start only inside one, so the next
         * is Tuesday 02:00. */
        in.start_usec = utc(2026, 5, 4, 2, 0) - 5 * SEC;
        e = estimate(&in);
        ASSERT_EQ(e.waves[0].first_activation_usec, utc(2026, 5, 5, 0, 0));
        rollout_estimate_done(&e);

        /* `activate`: windows are not waited for. */
        in.start_usec = utc(2026, 5, 3, 22, 0);
        in.activate_now = true;
        ASSERT_EQ(duration(&in), 15700 * MS);

        /* A deadline before the end. */
        in.activate_now = false;
        in.deadline_usec = utc(2026, 5, 4, 0, 0);
        e = estimate(&in);
        ASSERT_TRUE(e.deadline_exceeded);
        rollout_estimate_done(&e);
}

static void test_canary_soak_and_staging(void) {
        struct rollout_plan_member m[] = { member(1, 0), member(2, 1) };
        struct rollout_plan_input in = input(m, 2);
        struct rollout_estimate e;

        policy.soak_s = 60;
        /* No staging: the canary 15.7, soak to 75.7, probe to 75.8; then
         * device 2's whole job, 15.7, soak, probe: 75.8 + 75.8 = 151.6. */
        e = estimate(&in);
        ASSERT_EQ(e.duration_usec, 151600 * MS);
        ASSERT_EQ(e.n_waves, 2);
        ASSERT_EQ(e.waves[0].members_done_usec, START + 15700 * MS);
        ASSERT_EQ(e.waves[0].end_usec, START + 75800 * MS);
        ASSERT_EQ(e.waves[1].start_usec, START + 75800 * MS);
        ASSERT_EQ(e.waves[1].first_activation_usec, START + 86000 * MS);
        ASSERT_EQ(e.waves[1].members_done_usec, START + 91500 * MS);
        rollout_estimate_done(&e);
        /* max(10 s upload, one soak between waves) + 5 s swap + the last soak */
        ASSERT_EQ(lower_bound(&in), 125 * SEC);

        /* Staging: both uploads from the start; device 2 is activated as
         * soon as its wave starts: 75.8 + 0.2 + 5 + 0.3 + 60 + 0.1. */
        policy.staging = true;
        e = estimate(&in);
        ASSERT_EQ(e.duration_usec, 141400 * MS);
        ASSERT_EQ(e.waves[1].start_usec, START + 75800 * MS);
        ASSERT_EQ(e.waves[1].first_activation_usec, START + 75800 * MS);
        rollout_estimate_done(&e);

        /* Staging through one slot: device 2's upload (10.4..20.6) runs
         * during the canary's swap; the canary's verify waits for it. */
        in.max_running = 1;
        e = estimate(&in);
        ASSERT_EQ(e.waves[0].members_done_usec, START + 20900 * MS);
        ASSERT_EQ(e.duration_usec, (20900 + 60000 + 100 + 5500 + 60000 + 100) * MS);
        rollout_estimate_done(&e);
}

static void test_ble_adapters(void) {
        struct rollout_plan_member m[4];
        struct rollout_plan_input in;
        struct rollout_estimate e;

        for (int i = 0; i < 4; i++) {
                m[i] = member((uint64_t) i + 1, 0);
                strcpy(m[i].transport, "ble");
                m[i].rate = 0;   /* the table's 500 bytes/s: 20.2 s stage */
                strcpy(m[i].adapter, i < 2 ? "hci0" : "hci1");
        }
        in = input(m, 4);
        /* hci0 learned a limit of 1; hci1 has the default 7: devices 3
         * and 4 in parallel (25.7 s), 1 and 2 through one slot:
         * 0 stage 1 → 20.2 activate 1 → 20.4 stage 2 → 40.6 verify 1
         * → 40.9 activate 2 → 41.1, swap to 46.1, verify to 46.4. */
        in.adapters = (const struct rollout_plan_adapter[]) { { .name = "hci0", .max_running = 1 } };
        in.n_adapters = 1;
        e = estimate(&in);
        ASSERT_EQ(e.duration_usec, 46400 * MS);
        ASSERT_EQ(e.n_transports, 1);
        ASSERT_STREQ(e.transports[0].name, "ble");
        ASSERT_EQ(e.transports[0].n_members, 4);
        ASSERT_EQ(e.transports[0].n_default_rate, 4);
        ASSERT_TRUE(e.transports[0].default_rate == 500);
        rollout_estimate_done(&e);
        /* 2 × 20 s through hci0's one slot + 5 s */
        ASSERT_EQ(lower_bound(&in), 45 * SEC);

        /* The default adapter limit binds too. */
        in.n_adapters = 0;
        in.max_running_ble_adapter = 1;
        ASSERT_EQ(duration(&in), 46400 * MS);
}

static void test_defaults_assumed(void) {
        struct rollout_plan_member m[] = { member(1, 0), member(2, 0) };
        struct rollout_plan_input in = input(m, 2);
        struct rollout_estimate e;

        /* A transport not in the table: default rate 2000 bytes/s and
         * round trip 0.05 s; no learned swap: 10 s.
         * 0.1 + 5 stage, 0.1 activate, 10 swap, 0.15 verify = 15.35 s. */
        strcpy(m[0].transport, "coap");
        m[0].rate = 0;
        m[0].swap_s = 0;
        m[1].swap_s = 0;
        e = estimate(&in);
        ASSERT_EQ(e.duration_usec, 20700 * MS);   /* device 2: 10.2 + 0.2 + 10 + 0.3 */
        ASSERT_EQ(e.n_transports, 2);
        /* in the order of first use */
        ASSERT_STREQ(e.transports[0].name, "coap");
        ASSERT_STREQ(e.transports[1].name, "udp");
        ASSERT_TRUE(!e.transports[0].from_table);
        ASSERT_EQ(e.transports[0].n_default_rate, 1);
        ASSERT_TRUE(e.transports[0].default_rate == 2000);
        ASSERT_TRUE(e.transports[0].rtt_s == 0.05);
        ASSERT_EQ(e.transports[0].max_running, 8);
        ASSERT_TRUE(e.transports[1].from_table);
        ASSERT_EQ(e.transports[1].n_default_rate, 0);
        ASSERT_EQ(e.n_default_swap, 2);
        ASSERT_TRUE(e.swap_default_s == 10);
        rollout_estimate_done(&e);

        m[1].rate = 0;   /* udp's default from the table, not the measured 1000 */
        strcpy(m[1].transport, "ble");
        ASSERT_EQ(duration(&in), 30700 * MS);   /* 0.2 + 20 stage, 0.2, 10, 0.3 */
}

static void test_modes(void) {
        struct rollout_plan_member m[] = { member(1, 0), member(2, 1) };
        struct rollout_plan_input in = input(m, 2);

        /* Upload only: two stages one after the other (waves). */
        in.mode = SMP_UPDATE_UPLOAD_ONLY;
        ASSERT_EQ(duration(&in), 20400 * MS);
        ASSERT_EQ(lower_bound(&in), 10 * SEC);
        policy.staging = true;
        ASSERT_EQ(duration(&in), 10200 * MS);

        /* Test only: a verify is one request. */
        in.mode = SMP_UPDATE_TEST_ONLY;
        policy.staging = false;
        ASSERT_EQ(duration(&in), 2 * 15500 * MS);
}

static void test_empty(void) {
        struct rollout_plan_input in = input(NULL, 0);
        struct rollout_estimate e;

        e = estimate(&in);
        ASSERT_EQ(e.duration_usec, 0);
        ASSERT_EQ(e.n_waves, 0);
        rollout_estimate_done(&e);
        ASSERT_EQ(lower_bound(&in), 0);
}

static void test_refused(void) {
        struct rollout_plan_member m[] = { member(1, 0), member(2, 2), member(3, 0) };
        struct rollout_plan_input in = input(m, 3);
        struct rollout_estimate e;
        struct rollout_windows ws = { .n = 1, .w = { { .days = ROLLOUT_DAYS_ALL, .from_min = 60, .to_min = 120 } } };
        uint64_t b;

        /* Wave 1 has no member. */
        ASSERT_EQ(rollout_plan_estimate(&in, &e), -EINVAL);
        ASSERT_EQ(rollout_plan_lower_bound(&in, &b), -EINVAL);
        m[1].wave = 1;
        ASSERT_OK(rollout_plan_estimate(&in, &e));
        rollout_estimate_done(&e);

        in.max_running = 0;
        ASSERT_EQ(rollout_plan_estimate(&in, &e), -EINVAL);
        in.max_running = 8;
        policy.max_rebooting = 0;
        ASSERT_EQ(rollout_plan_estimate(&in, &e), -EINVAL);
        policy.max_rebooting = 4;
        m[0].rate = 0.5;
        ASSERT_EQ(rollout_plan_estimate(&in, &e), -EINVAL);
        m[0].rate = 1000;
        in.default_rate = 0;
        ASSERT_EQ(rollout_plan_estimate(&in, &e), -EINVAL);
        in.default_rate = 2000;
        in.transports = (const struct rollout_plan_transport[]) { { .name = "udp", .rate = 100, .max_running = 0 } };
        in.n_transports = 1;
        ASSERT_EQ(rollout_plan_estimate(&in, &e), -EINVAL);
        in.transports = udp_table;
        in.n_transports = 2;
        in.image_size = 0;
        ASSERT_EQ(rollout_plan_estimate(&in, &e), -EINVAL);
        in.image_size = 10000;
        in.windows = &ws;   /* without a zone */
        ASSERT_EQ(rollout_plan_estimate(&in, &e), -EINVAL);
        in.windows = NULL;
        in.start_usec = TZ_USEC_MAX + 1;
        ASSERT_EQ(rollout_plan_estimate(&in, &e), -ERANGE);
}

/* Random fleets: the estimate never beats the lower bound, and more
 * slots never make it longer... is not a law (priorities can reorder),
 * so only the bound is checked, and the run is reproducible. */
static void test_random_fleets(void) {
        static struct rollout_plan_member m[300];
        unsigned seed = 12345;

        for (int round = 0; round < 40; round++) {
                size_t n = 1 + (size_t) (rand_r(&seed) % ELEMENTSOF(m));
                struct rollout_plan_input in = input(m, n);
                struct rollout_waves waves;
                struct rollout_estimate a, b;

                policy.staging = rand_r(&seed) % 2;
                policy.soak_s = (uint32_t) (rand_r(&seed) % 3) * 30;
                policy.max_rebooting = 1 + (uint32_t) (rand_r(&seed) % 6);
                in.max_running = 1 + (uint32_t) (rand_r(&seed) % 8);
                ASSERT_OK(rollout_count_parse("20%", "wave_size", &policy.wave_size, NULL));
                rollout_waves_compute(&policy, n, &waves);
                for (size_t i = 0; i < n; i++) {
                        m[i] = member(i + 1, rollout_wave_of(&waves, i));
                        strcpy(m[i].transport, rand_r(&seed) % 2 ? "udp" : "ble");
                        if (streq(m[i].transport, "ble"))
                                snprintf(m[i].adapter, sizeof(m[i].adapter), "hci%d", rand_r(&seed) % 2);
                        m[i].rate = rand_r(&seed) % 4 ? 200 + rand_r(&seed) % 5000 : 0;
                        m[i].swap_s = (double) (rand_r(&seed) % 30);
                        m[i].relay = rand_r(&seed) % 10 == 0;
                }
                a = estimate(&in);
                b = estimate(&in);
                ASSERT_EQ(a.end_usec, b.end_usec);
                rollout_estimate_done(&a);
                rollout_estimate_done(&b);
        }
}

/* A large fleet finishes in a reasonable time (the figure is printed). */
static void test_large_fleet(void) {
        size_t n = 10000;
        struct rollout_plan_member *m = calloc(n, sizeof(*m));
        struct rollout_plan_input in;
        struct rollout_waves waves;
        struct rollout_estimate e;
        struct timespec t0, t1;

        ASSERT_TRUE(m);
        in = input(m, n);
        ASSERT_OK(rollout_count_parse("10%", "wave_size", &policy.wave_size, NULL));
        policy.soak_s = 600;
        rollout_waves_compute(&policy, n, &waves);
        for (size_t i = 0; i < n; i++) {
                m[i] = member(i + 1, rollout_wave_of(&waves, i));
                strcpy(m[i].transport, i % 3 ? "ble" : "udp");
                if (i % 3)
                        snprintf(m[i].adapter, sizeof(m[i].adapter), "hci%zu", i % 2);
        }
        in.transports = (const struct rollout_plan_transport[]) {
                { .name = "udp", .rate = 20000, .rtt_s = 0.02, .max_running = 4 },
                { .name = "ble", .rate = 3000, .rtt_s = 0.1, .max_running = 2 },
        };
        clock_gettime(CLOCK_MONOTONIC, &t0);
        e = estimate(&in);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("# 10000 members, %zu waves: %.1f simulated hours in %.3f s\n", e.n_waves,
               (double) e.duration_usec / 3600e6,
               (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9);
        ASSERT_EQ(e.n_waves, 11);
        rollout_estimate_done(&e);
        free(m);
}

TEST_MAIN(TEST(test_one_device), TEST(test_one_slot), TEST(test_slots_exceed_devices), TEST(test_reboot_budget),
          TEST(test_relay_budget), TEST(test_window_later), TEST(test_canary_soak_and_staging),
          TEST(test_ble_adapters), TEST(test_defaults_assumed), TEST(test_modes), TEST(test_empty),
          TEST(test_refused), TEST(test_random_fleets), TEST(test_large_fleet))
