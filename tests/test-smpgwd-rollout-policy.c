/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon/rollout-policy.c and rollout-policy-json.c: counts, filters,
 * skip reasons, the member order, waves and late joiners, threshold
 * verdicts, reboot budgets, the activation gate, slot priorities, the
 * retry backoff, and the JSON spellings with their sentences.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "image-boards.h"
#include "os-info.h"
#include "rollout-policy.h"
#include "test-util.h"

#define SEC 1000000ull
#define NOW (1800000000ull * SEC)
#define ABSENT_AFTER (600 * SEC)
#define IMAGE_HASH "3d4c80af8dbb6df668dc30fc9279e3cc56157ea152e79db900021f1852a25e03"

static const char *const no_labels[] = { NULL };
static const char *const relay_labels[] = { "floor-2", "relay" };
static const char *const lab_labels[] = { "lab", "floor-2" };

/* A present, online device with a known rate and version 1.0.0. */
static struct rollout_candidate candidate(uint64_t id, const char *transport, double rate) {
        return (struct rollout_candidate) {
                .id = id,
                .name = "sensor",
                .transport = transport,
                .labels = no_labels,
                .has_version = true,
                .version = { 1, 0, 0, 0 },
                .active_hash = "aa",
                .active_confirmed = true,
                .rate = rate,
                .last_seen_usec = NOW - 10 * SEC,
        };
}

static const struct rollout_image_facts image = { .hash = IMAGE_HASH, .size = 100000 };

/* ---- counts ---- */

static void test_counts(void) {
        struct rollout_count c;
        char buf[16];
        _cleanup_free_ char *reason = NULL;

        ASSERT_OK(rollout_count_parse("5", "canary", &c, NULL));
        ASSERT_EQ(c.value, 5);
        ASSERT_TRUE(!c.percent);
        ASSERT_EQ(rollout_count_resolve(&c, 3), 5);
        ASSERT_OK(rollout_count_parse("10%", "canary", &c, NULL));
        ASSERT_TRUE(c.percent);
        ASSERT_EQ(rollout_count_resolve(&c, 25), 3);   /* 2.5 rounds up */
        ASSERT_EQ(rollout_count_resolve(&c, 10), 1);
        ASSERT_EQ(rollout_count_resolve(&c, 0), 0);
        ASSERT_STREQ(rollout_count_format(&c, buf, sizeof(buf)), "10%");
        ASSERT_OK(rollout_count_parse("100000", "wave_size", &c, NULL));
        ASSERT_OK(rollout_count_parse("100%", "wave_size", &c, NULL));
        ASSERT_EQ(rollout_count_resolve(&c, 7), 7);

        ASSERT_EQ(rollout_count_parse("0", "canary", &c, &reason), -EINVAL);
        ASSERT_STREQ(reason, "canary '0' is not a count 1..100000 or a percentage 1%..100%");
        free(reason);
        reason = NULL;
        ASSERT_EQ(rollout_count_parse("101%", "wave_size", &c, &reason), -EINVAL);
        ASSERT_TRUE(strstr(reason, "wave_size '101%'"));
        ASSERT_EQ(rollout_count_parse("100001", "canary", &c, NULL), -EINVAL);
        ASSERT_EQ(rollout_count_parse("0%", "canary", &c, NULL), -EINVAL);
        ASSERT_EQ(rollout_count_parse("5 ", "canary", &c, NULL), -EINVAL);
        ASSERT_EQ(rollout_count_parse("-5", "canary", &c, NULL), -EINVAL);
        ASSERT_EQ(rollout_count_parse("%", "canary", &c, NULL), -EINVAL);
        ASSERT_EQ(rollout_count_parse("", "canary", &c, NULL), -EINVAL);
        ASSERT_EQ(rollout_count_parse("99999999999999999999", "canary", &c, NULL), -EINVAL);
}

/* ---- filters and skip reasons ---- */

static void test_filter(void) {
        struct rollout_filter f = {};
        struct rollout_candidate c = candidate(1, "ble", 100);

        ASSERT_TRUE(rollout_filter_matches(&f, &c));   /* no terms */

        f.n_transports = 2;
        strcpy(f.transports[0], "udp");
        strcpy(f.transports[1], "ble");
        ASSERT_TRUE(rollout_filter_matches(&f, &c));
        c.transport = "serial";
        ASSERT_TRUE(!rollout_filter_matches(&f, &c));
        c.transport = "ble";

        strcpy(f.name, "SENS*");
        ASSERT_TRUE(rollout_filter_matches(&f, &c));
        c.name = "lamp";
        ASSERT_TRUE(!rollout_filter_matches(&f, &c));
        c.name = NULL;
        ASSERT_TRUE(!rollout_filter_matches(&f, &c));
        strcpy(f.name, "*");
        ASSERT_TRUE(rollout_filter_matches(&f, &c));   /* no name is "" */
        c.name = "sensor";

        f.n_labels = 2;
        strcpy(f.labels[0], "lab");
        strcpy(f.labels[1], "floor-2");
        ASSERT_TRUE(!rollout_filter_matches(&f, &c));
        c.labels = lab_labels;
        c.n_labels = 2;
        ASSERT_TRUE(rollout_filter_matches(&f, &c));
        c.n_labels = 1;   /* "lab" only: all of them are needed */
        ASSERT_TRUE(!rollout_filter_matches(&f, &c));
        c.n_labels = 2;

        strcpy(f.board, "nrf52840dk_nrf52840");
        ASSERT_TRUE(!rollout_filter_matches(&f, &c));   /* unknown board */
        c.board = "NRF52840DK_nrf52840";
        ASSERT_TRUE(rollout_filter_matches(&f, &c));
        strcpy(f.app, "thermo");
        ASSERT_TRUE(!rollout_filter_matches(&f, &c));
        c.app = "thermo";
        ASSERT_TRUE(rollout_filter_matches(&f, &c));

        /* version_below, MCUboot order, strictly below. */
        f.has_version_below = true;
        f.version_below = (struct mcuboot_version) { 1, 3, 0, 0 };
        c.version = (struct mcuboot_version) { 1, 2, 9, 7 };
        ASSERT_TRUE(rollout_filter_matches(&f, &c));
        c.version = (struct mcuboot_version) { 1, 3, 0, 0 };
        ASSERT_TRUE(!rollout_filter_matches(&f, &c));
        c.version = (struct mcuboot_version) { 0, 255, 65535, 0 };
        ASSERT_TRUE(rollout_filter_matches(&f, &c));
        f.version_below = (struct mcuboot_version) { 1, 3, 0, 5 };
        c.version = (struct mcuboot_version) { 1, 3, 0, 4 };
        ASSERT_TRUE(rollout_filter_matches(&f, &c));
        c.version = (struct mcuboot_version) { 1, 3, 0, 6 };
        ASSERT_TRUE(!rollout_filter_matches(&f, &c));
        c.has_version = false;
        c.version = (struct mcuboot_version) {};
        ASSERT_TRUE(!rollout_filter_matches(&f, &c));
}

/* Zephyr's os_mgmt "a" answer into a board and an application. */
static void test_os_info(void) {
        struct os_info_fields os;

        /* CONFIG_MCUMGR_GRP_OS_INFO_BUILD_DATE_TIME: __TIMESTAMP__ (five
         * words, a day padded with a space), a Bluetooth name with spaces */
        ASSERT_OK(os_info_parse("Zephyr Zephyr Heartrate Sensor zephyr-v3.6.0-1234-gabcdef 3.6.99 "
                                "Sun Sep  6 01:03:52 2026 arm cortex-m4 nrf52840dk/nrf52840 Zephyr",
                                &os));
        ASSERT_STREQ(os.board, "nrf52840dk/nrf52840");
        ASSERT_STREQ(os.app, "Zephyr");
        /* no build date; a board revision; an application that names itself */
        ASSERT_OK(os_info_parse("Zephyr thermo-12 v3.7.0 3.7.0 arm cortex-m33 nrf5340dk@1.0.0 Thermo Stat 2", &os));
        ASSERT_STREQ(os.board, "nrf5340dk@1.0.0");
        ASSERT_STREQ(os.app, "Thermo Stat 2");
        /* a node name holding an architecture's name is not the machine */
        ASSERT_OK(os_info_parse("Zephyr arm x86 riscv unknown 3.7.0 riscv riscv esp32c3_devkitm Zephyr", &os));
        ASSERT_STREQ(os.board, "esp32c3_devkitm");
        /* __DATE__ " " __TIME__, as smpsim answered before */
        ASSERT_OK(os_info_parse("Zephyr smpsim-0001 3.7.0 v3.7.0-smpsim Nov 26 2026 00:00:00 arm cortex-m4 "
                                "smpsim/nrf52840 Zephyr",
                                &os));
        ASSERT_STREQ(os.board, "smpsim/nrf52840");
        /* not Zephyr's layout, a lone kernel name, nothing, a board too long */
        ASSERT_EQ(os_info_parse("Zephyr", &os), -ENODATA);
        ASSERT_STREQ(os.board, "");
        ASSERT_STREQ(os.app, "");
        ASSERT_EQ(os_info_parse("Apache Mynewt 1.12", &os), -ENODATA);
        ASSERT_EQ(os_info_parse(NULL, &os), -ENODATA);
        ASSERT_EQ(os_info_parse("", &os), -ENODATA);
        ASSERT_EQ(os_info_parse("Zephyr n 3.7.0 3.7.0 arm cortex-m4 "
                                "b123456789b123456789b123456789b123456789b123456789b123456789b1234 Zephyr",
                                &os),
                  -ENODATA);
        ASSERT_OK(os_info_parse("Zephyr n 3.7.0 3.7.0 arm cortex-m4 "
                                "b123456789b123456789b123456789b123456789b123456789b123456789b123 Zephyr",
                                &os));
        ASSERT_EQ(strlen(os.board), 64);
        /* machine and processor but no board after them */
        ASSERT_EQ(os_info_parse("Zephyr n 3.7.0 3.7.0 arm cortex-m4", &os), -ENODATA);
}

/* A board or app term and a device that does not know its own (no OS
 * info command): not a match, but a skipped member that says why. */
static void test_filter_unknown(void) {
        struct rollout_candidate c[4];
        struct rollout_policy p;
        struct rollout_layout l;

        rollout_policy_init(&p);
        c[0] = candidate(1, "udp", 100);
        c[0].board = "nrf52840dk";
        c[1] = candidate(2, "udp", 100); /* board unknown */
        c[2] = candidate(3, "udp", 100);
        c[2].board = "stm32";               /* another board: not a member at all */
        c[3] = candidate(4, "serial", 100); /* unknown board, and another transport */

        p.has_filter = true;
        strcpy(p.filter.board, "NRF52840DK");
        p.filter.n_transports = 1;
        strcpy(p.filter.transports[0], "udp");
        ASSERT_EQ(rollout_filter_unknown(&p.filter, &c[0]), ROLLOUT_SKIP_NONE);
        ASSERT_EQ(rollout_filter_unknown(&p.filter, &c[1]), ROLLOUT_SKIP_UNKNOWN_BOARD);
        ASSERT_EQ(rollout_filter_unknown(&p.filter, &c[2]), ROLLOUT_SKIP_NONE);
        ASSERT_EQ(rollout_filter_unknown(&p.filter, &c[3]), ROLLOUT_SKIP_NONE);
        ASSERT_OK(rollout_layout_build(&p, &image, c, ELEMENTSOF(c), NOW, ABSENT_AFTER, &l));
        ASSERT_EQ(l.n_updated, 1);
        ASSERT_EQ(l.n_skipped, 1);
        ASSERT_EQ(l.members[0].device_id, 1);
        ASSERT_EQ(l.members[1].device_id, 2);
        ASSERT_EQ(l.members[1].skip, ROLLOUT_SKIP_UNKNOWN_BOARD);
        ASSERT_STREQ(rollout_skip_reason_to_string(l.members[1].skip), "unknown-board");
        rollout_layout_done(&l);

        /* the app term the same way, once the board is known and matches */
        strcpy(p.filter.app, "thermo");
        c[1].board = "nrf52840dk";
        ASSERT_EQ(rollout_filter_unknown(&p.filter, &c[1]), ROLLOUT_SKIP_UNKNOWN_APP);
        c[1].app = "other";
        ASSERT_EQ(rollout_filter_unknown(&p.filter, &c[1]), ROLLOUT_SKIP_NONE);
        ASSERT_EQ(rollout_skip_reason_from_string("unknown-app"), ROLLOUT_SKIP_UNKNOWN_APP);
}

static void test_skip(void) {
        static const char *const nrf[] = { "nrf52840dk" }, *const x[] = { "x" };
        struct rollout_candidate c = candidate(1, "udp", 100);
        struct rollout_image_facts img = { .hash = IMAGE_HASH, .size = 100000, .boards = nrf, .n_boards = 1 };

        c.board = "nrf52840dk@1.0.0";
        ASSERT_EQ(rollout_candidate_skip(&c, &img), ROLLOUT_SKIP_NONE);
        c.active_hash = "3D4C80AF8DBB6DF668DC30FC9279E3CC56157EA152E79DB900021F1852A25E03";
        c.active_confirmed = false;   /* testing the image: not done */
        ASSERT_EQ(rollout_candidate_skip(&c, &img), ROLLOUT_SKIP_NONE);
        c.active_confirmed = true;
        c.absent = true;
        c.slot_size = 1000;
        ASSERT_EQ(rollout_candidate_skip(&c, &img), ROLLOUT_SKIP_ALREADY_RUNNING);
        c.active_hash = NULL;
        c.board = "stm32";
        ASSERT_EQ(rollout_candidate_skip(&c, &img), ROLLOUT_SKIP_INCOMPATIBLE_BOARD);
        c.board = "NRF52840DK";
        ASSERT_EQ(rollout_candidate_skip(&c, &img), ROLLOUT_SKIP_IMAGE_TOO_LARGE);
        c.slot_size = 100000;   /* exactly fits */
        ASSERT_EQ(rollout_candidate_skip(&c, &img), ROLLOUT_SKIP_ABSENT);
        c.absent = false;
        ASSERT_EQ(rollout_candidate_skip(&c, &img), ROLLOUT_SKIP_NONE);
        /* Unknown, while the image declares boards: it waits for a probe
         * to tell its board (issue 12); an image for any board takes it. */
        c.board = NULL;
        img.boards = x;
        ASSERT_EQ(rollout_candidate_skip(&c, &img), ROLLOUT_SKIP_UNKNOWN_BOARD);
        img.n_boards = 0;
        ASSERT_EQ(rollout_candidate_skip(&c, &img), ROLLOUT_SKIP_NONE);
        c.board = "stm32";
        ASSERT_EQ(rollout_candidate_skip(&c, &img), ROLLOUT_SKIP_NONE);

        ASSERT_TRUE(rollout_labels_relay(relay_labels, 2));
        ASSERT_TRUE(!rollout_labels_relay(lab_labels, 2));
        {
                const char *const proxy[] = { "proxy" };
                ASSERT_TRUE(rollout_labels_relay(proxy, 1));
        }
        ASSERT_TRUE(!rollout_labels_relay(NULL, 0));
}

/* ---- order and waves ---- */

/* The boards an image declares against the board a device reports:
 * a name takes every revision of it, a name@rev only that one. */
static void test_image_boards(void) {
        static const char *const two[] = { "nrf52840dk", "nrf5340dk@2.0.0" };
        static const char *const bad_at[] = { "nrf52840dk", "a@b@c" };
        char **kept = NULL;
        size_t n = 0, index = 99;

        ASSERT_TRUE(image_board_matches("nrf52840dk", "nrf52840dk"));
        ASSERT_TRUE(image_board_matches("nrf52840dk", "NRF52840DK"));
        ASSERT_TRUE(image_board_matches("nrf52840dk", "nrf52840dk@1.0.0"));
        ASSERT_TRUE(!image_board_matches("nrf52840dk", "nrf52840dk_nrf52840"));
        ASSERT_TRUE(!image_board_matches("nrf52840", "nrf52840dk@1.0.0"));
        ASSERT_TRUE(image_board_matches("nrf5340dk@2.0.0", "nrf5340dk@2.0.0"));
        ASSERT_TRUE(!image_board_matches("nrf5340dk@2.0.0", "nrf5340dk@1.0.0"));
        ASSERT_TRUE(!image_board_matches("nrf5340dk@2.0.0", "nrf5340dk"));
        ASSERT_TRUE(!image_board_matches("nrf52840dk", NULL));
        ASSERT_TRUE(!image_board_matches("nrf52840dk", ""));

        ASSERT_TRUE(image_boards_accept(NULL, 0, NULL));
        ASSERT_TRUE(image_boards_accept(NULL, 0, "anything"));
        ASSERT_TRUE(!image_boards_accept(two, 2, NULL));
        ASSERT_TRUE(image_boards_accept(two, 2, "nrf52840dk@3"));
        ASSERT_TRUE(image_boards_accept(two, 2, "nrf5340dk@2.0.0"));
        ASSERT_TRUE(!image_boards_accept(two, 2, "nrf5340dk@1.0.0"));
        ASSERT_TRUE(!image_boards_accept(two, 2, "esp32"));

        ASSERT_TRUE(image_board_name_is_valid("nrf5340dk/nrf5340/cpuapp"));
        ASSERT_TRUE(image_board_name_is_valid("board@1.0.0"));
        ASSERT_TRUE(!image_board_name_is_valid(""));
        ASSERT_TRUE(!image_board_name_is_valid("@1.0"));
        ASSERT_TRUE(!image_board_name_is_valid("board@"));
        ASSERT_TRUE(!image_board_name_is_valid("a b"));
        ASSERT_TRUE(!image_board_name_is_valid("a,b"));
        ASSERT_EQ(image_boards_check(bad_at, 2, &index), -EINVAL);
        ASSERT_EQ(index, 1);
        {
                const char *many[IMAGE_BOARDS_MAX + 1];
                char names[IMAGE_BOARDS_MAX + 1][8];
                for (size_t i = 0; i <= IMAGE_BOARDS_MAX; i++) {
                        snprintf(names[i], sizeof(names[i]), "b%zu", i);
                        many[i] = names[i];
                }
                ASSERT_OK(image_boards_check(many, IMAGE_BOARDS_MAX, NULL));
                ASSERT_EQ(image_boards_check(many, IMAGE_BOARDS_MAX + 1, NULL), -E2BIG);
        }

        /* Kept without repeats (by case), spelt with spaces for the database. */
        {
                const char *const given[] = { "nrf52840dk", "NRF52840DK", "nrf5340dk@2.0.0" };
                _cleanup_free_ char *text = NULL;
                ASSERT_OK(image_boards_normalize(given, 3, &kept, &n, NULL));
                ASSERT_EQ(n, 2);
                text = image_boards_join((const char *const *) kept, n);
                ASSERT_STREQ(text, "nrf52840dk nrf5340dk@2.0.0");
                image_boards_free(kept, n);
                ASSERT_OK(image_boards_split(text, &kept, &n));
                ASSERT_EQ(n, 2);
                ASSERT_STREQ(kept[1], "nrf5340dk@2.0.0");
                image_boards_free(kept, n);
                ASSERT_OK(image_boards_split("", &kept, &n));
                ASSERT_EQ(n, 0);
                ASSERT_TRUE(!kept);
        }
}

/* A plan of an image built for some boards: devices of another board are
 * skipped incompatible-board, those that do not tell theirs
 * unknown-board, with or without a filter. */
static void test_layout_image_boards(void) {
        static const char *const boards[] = { "nrf52840dk", "nrf5340dk@2.0.0" };
        struct rollout_image_facts img = { .hash = IMAGE_HASH, .size = 100000, .boards = boards, .n_boards = 2 };
        struct rollout_candidate c[5];
        struct rollout_policy p;
        struct rollout_layout l;

        rollout_policy_init(&p);
        c[0] = candidate(1, "udp", 100);
        c[0].board = "nrf52840dk@1.0.0";
        c[1] = candidate(2, "udp", 100);
        c[1].board = "esp32_devkitc";
        c[2] = candidate(3, "udp", 100); /* does not tell its board */
        c[3] = candidate(4, "udp", 100);
        c[3].board = "nrf5340dk@1.0.0"; /* another revision than the image's */
        c[4] = candidate(5, "udp", 100);
        c[4].board = "NRF5340DK@2.0.0";

        ASSERT_OK(rollout_layout_build(&p, &img, c, ELEMENTSOF(c), NOW, ABSENT_AFTER, &l));
        ASSERT_EQ(l.n_updated, 2);
        ASSERT_EQ(l.n_skipped, 3);
        ASSERT_EQ(l.members[0].device_id, 1);
        ASSERT_EQ(l.members[1].device_id, 5);
        ASSERT_EQ(l.members[2].device_id, 2);
        ASSERT_STREQ(rollout_skip_reason_to_string(l.members[2].skip), "incompatible-board");
        ASSERT_EQ(l.members[3].device_id, 3);
        ASSERT_STREQ(rollout_skip_reason_to_string(l.members[3].skip), "unknown-board");
        ASSERT_EQ(l.members[4].device_id, 4);
        ASSERT_STREQ(rollout_skip_reason_to_string(l.members[4].skip), "incompatible-board");
        rollout_layout_done(&l);

        /* A filter term on top: the image's boards still decide. */
        p.has_filter = true;
        p.filter.n_transports = 1;
        strcpy(p.filter.transports[0], "udp");
        ASSERT_OK(rollout_layout_build(&p, &img, c, ELEMENTSOF(c), NOW, ABSENT_AFTER, &l));
        ASSERT_EQ(l.n_updated, 2);
        ASSERT_EQ(l.n_skipped, 3);
        rollout_layout_done(&l);

        /* The same image declaring no board: everyone is a member. */
        img.n_boards = 0;
        ASSERT_OK(rollout_layout_build(&p, &img, c, ELEMENTSOF(c), NOW, ABSENT_AFTER, &l));
        ASSERT_EQ(l.n_updated, 5);
        ASSERT_EQ(l.n_skipped, 0);
        rollout_layout_done(&l);
}

static void test_order(void) {
        struct rollout_candidate fast = candidate(9, "udp", 5000), slow = candidate(2, "udp", 100),
                                 unknown1 = candidate(3, "udp", 0), unknown2 = candidate(1, "ble", 0),
                                 stale_fast = candidate(4, "udp", 9000), stale_unknown = candidate(5, "udp", 0),
                                 same = candidate(7, "udp", 5000);
        const struct rollout_candidate *expected[] = { &fast, &same, &slow, &unknown2, &unknown1, &stale_fast,
                                                       &stale_unknown };

        stale_fast.last_seen_usec = NOW - ABSENT_AFTER - 1;
        stale_unknown.last_seen_usec = 0;
        /* Exactly absent_after ago still counts as seen. */
        slow.last_seen_usec = NOW - ABSENT_AFTER;
        /* Seen "in the future" (a clock step): not stale. */
        unknown1.last_seen_usec = NOW + SEC;
        same.id = 10;
        expected[0] = &fast;   /* id 9 before id 10 at the same rate */
        for (size_t i = 0; i < ELEMENTSOF(expected); i++)
                for (size_t j = 0; j < ELEMENTSOF(expected); j++) {
                        int c = rollout_candidate_order(expected[i], expected[j], NOW, ABSENT_AFTER);
                        ASSERT_TRUE(i < j ? c < 0 : i > j ? c > 0 : c == 0);
                }
}

static void waves_are(const char *canary, const char *wave_size, size_t n, uint32_t e_canary, uint32_t e_size,
                      uint32_t e_waves) {
        struct rollout_policy p;
        struct rollout_waves w;

        rollout_policy_init(&p);
        ASSERT_OK(rollout_count_parse(canary, "canary", &p.canary, NULL));
        ASSERT_OK(rollout_count_parse(wave_size, "wave_size", &p.wave_size, NULL));
        rollout_waves_compute(&p, n, &w);
        ASSERT_EQ(w.canary, e_canary);
        ASSERT_EQ(w.wave_size, e_size);
        ASSERT_EQ(w.n_waves, e_waves);
}

static void test_waves(void) {
        struct rollout_waves w;

        waves_are("1", "25%", 10, 1, 3, 4);     /* 1 + 3 + 3 + 3 */
        waves_are("1", "25%", 11, 1, 3, 5);     /* 1 + 3 + 3 + 3 + 1 */
        waves_are("10%", "5", 5, 1, 5, 2);      /* 10% of 5 rounds up to 1 */
        waves_are("20", "5", 10, 10, 5, 1);     /* the canary takes everyone */
        waves_are("1", "100%", 1, 1, 1, 1);
        waves_are("2", "1%", 3, 2, 1, 2);       /* 1% of 3 rounds up to 1 */
        waves_are("50%", "50%", 4, 2, 2, 2);
        waves_are("1", "1", 0, 0, 0, 0);

        w = (struct rollout_waves) { .canary = 1, .wave_size = 3, .n_waves = 4 };
        ASSERT_EQ(rollout_wave_of(&w, 0), 0);
        ASSERT_EQ(rollout_wave_of(&w, 1), 1);
        ASSERT_EQ(rollout_wave_of(&w, 3), 1);
        ASSERT_EQ(rollout_wave_of(&w, 4), 2);
        ASSERT_EQ(rollout_wave_of(&w, 9), 3);

        /* Late joiners: the first wave not started, else a new last one. */
        ASSERT_EQ(rollout_wave_for_joiner(4, 0), 0);
        ASSERT_EQ(rollout_wave_for_joiner(4, 2), 2);
        ASSERT_EQ(rollout_wave_for_joiner(4, 4), 4);
        ASSERT_EQ(rollout_wave_for_joiner(0, 0), 0);
}

static void test_layout(void) {
        struct rollout_candidate c[8];
        struct rollout_policy p;
        struct rollout_layout l;
        const char *const ble_only[] = { "ble" };

        rollout_policy_init(&p);
        ASSERT_OK(rollout_count_parse("2", "wave_size", &p.wave_size, NULL));
        c[0] = candidate(10, "udp", 100);
        c[1] = candidate(11, "udp", 900);
        c[2] = candidate(12, "udp", 0);
        c[3] = candidate(13, "serial", 500);   /* filtered out below */
        c[4] = candidate(14, "udp", 100);
        c[4].active_hash = IMAGE_HASH;         /* already running */
        c[5] = candidate(5, "udp", 100);
        c[5].absent = true;
        c[6] = candidate(16, "udp", 700);
        c[6].last_seen_usec = 0;               /* stale: last */
        c[7] = candidate(17, "udp", 300);
        c[7].slot_size = 50000;                /* image-too-large */

        p.has_filter = true;
        p.filter.n_transports = 1;
        strcpy(p.filter.transports[0], "udp");
        ASSERT_OK(rollout_layout_build(&p, &image, c, ELEMENTSOF(c), NOW, ABSENT_AFTER, &l));
        ASSERT_EQ(l.n_updated, 4);
        ASSERT_EQ(l.n_skipped, 3);
        ASSERT_EQ(l.waves.n_waves, 3);   /* 1 + 2 + 1 */
        /* order: 11 (900), 10 (100), 12 (unknown), 16 (stale) */
        ASSERT_EQ(l.members[0].device_id, 11);
        ASSERT_EQ(l.members[1].device_id, 10);
        ASSERT_EQ(l.members[2].device_id, 12);
        ASSERT_EQ(l.members[3].device_id, 16);
        for (uint32_t i = 0; i < 4; i++) {
                ASSERT_EQ(l.members[i].order_key, i);
                ASSERT_EQ(l.members[i].skip, ROLLOUT_SKIP_NONE);
                ASSERT_EQ(c[l.members[i].candidate].id, l.members[i].device_id);
        }
        ASSERT_EQ(l.members[0].wave, 0);
        ASSERT_EQ(l.members[1].wave, 1);
        ASSERT_EQ(l.members[2].wave, 1);
        ASSERT_EQ(l.members[3].wave, 2);
        /* skipped, by id */
        ASSERT_EQ(l.members[4].device_id, 5);
        ASSERT_EQ(l.members[4].skip, ROLLOUT_SKIP_ABSENT);
        ASSERT_EQ(l.members[5].device_id, 14);
        ASSERT_EQ(l.members[5].skip, ROLLOUT_SKIP_ALREADY_RUNNING);
        ASSERT_EQ(l.members[6].device_id, 17);
        ASSERT_EQ(l.members[6].skip, ROLLOUT_SKIP_IMAGE_TOO_LARGE);
        ASSERT_EQ(l.members[6].wave, UINT32_MAX);
        ASSERT_EQ(l.members[6].order_key, UINT32_MAX);
        rollout_layout_done(&l);
        ASSERT_TRUE(l.members == NULL);
        rollout_layout_done(&l);

        /* Explicit targets: no filter, everyone given is a member. */
        p.has_filter = false;
        ASSERT_OK(rollout_layout_build(&p, &image, c, ELEMENTSOF(c), NOW, ABSENT_AFTER, &l));
        ASSERT_EQ(l.n_updated, 5);
        ASSERT_EQ(l.members[1].device_id, 13);   /* serial, 500 */
        rollout_layout_done(&l);

        /* Nothing matches. */
        p.has_filter = true;
        memcpy(p.filter.transports[0], ble_only[0], 4);
        ASSERT_OK(rollout_layout_build(&p, &image, c, ELEMENTSOF(c), NOW, ABSENT_AFTER, &l));
        ASSERT_EQ(l.n_updated + l.n_skipped, 0);
        ASSERT_EQ(l.waves.n_waves, 0);
        rollout_layout_done(&l);
        ASSERT_OK(rollout_layout_build(&p, &image, NULL, 0, NOW, ABSENT_AFTER, &l));
        rollout_layout_done(&l);

        /* A repeated id. */
        p.has_filter = false;
        c[1].id = 10;
        ASSERT_EQ(rollout_layout_build(&p, &image, c, ELEMENTSOF(c), NOW, ABSENT_AFTER, &l), -EINVAL);
}

/* ---- verdicts ---- */

static void verdict_is(const struct rollout_policy *p, uint32_t wave, uint32_t members, uint32_t finished,
                       uint32_t failed, uint32_t reverted, enum rollout_verdict_kind kind,
                       enum rollout_halt_reason reason, const char *sentence) {
        struct rollout_wave_tally t = { .members = members, .finished = finished, .failed = failed };
        struct rollout_verdict v;

        rollout_wave_evaluate(p, wave, &t, reverted, &v);
        ASSERT_EQ(v.kind, kind);
        ASSERT_EQ(v.reason, reason);
        ASSERT_STREQ(v.sentence, sentence);
}

static void test_verdicts(void) {
        struct rollout_policy p;

        rollout_policy_init(&p);   /* threshold 1, pause, revert_halt 1 */
        verdict_is(&p, 0, 1, 0, 0, 0, ROLLOUT_VERDICT_RUNNING, ROLLOUT_HALT_NONE, "");
        verdict_is(&p, 0, 1, 1, 0, 0, ROLLOUT_VERDICT_WAVE_DONE, ROLLOUT_HALT_NONE, "");
        verdict_is(&p, 0, 1, 1, 1, 0, ROLLOUT_VERDICT_PAUSE, ROLLOUT_HALT_FAILURE_THRESHOLD,
                   "wave 0 (the canary): 1 of 1 members failed, the failure threshold is 1");
        verdict_is(&p, 2, 10, 1, 1, 1, ROLLOUT_VERDICT_PAUSE, ROLLOUT_HALT_REVERTED,
                   "1 member went back to the old image, revert_halt is 1");

        ASSERT_OK(rollout_count_parse("20%", "failure_threshold", &p.failure_threshold, NULL));
        p.revert_halt = 3;
        /* 20% of 10 is 2: one failure goes on, two stop the wave at once. */
        verdict_is(&p, 1, 10, 4, 1, 0, ROLLOUT_VERDICT_RUNNING, ROLLOUT_HALT_NONE, "");
        verdict_is(&p, 1, 10, 10, 1, 1, ROLLOUT_VERDICT_WAVE_DONE, ROLLOUT_HALT_NONE, "");
        verdict_is(&p, 1, 10, 5, 2, 2, ROLLOUT_VERDICT_PAUSE, ROLLOUT_HALT_FAILURE_THRESHOLD,
                   "wave 1: 2 of 10 members failed, the failure threshold is 2");
        verdict_is(&p, 3, 10, 5, 1, 3, ROLLOUT_VERDICT_PAUSE, ROLLOUT_HALT_REVERTED,
                   "3 members went back to the old image, revert_halt is 3");
        /* Both: pause says reverted; abort wins over the revert's pause. */
        verdict_is(&p, 1, 10, 5, 3, 3, ROLLOUT_VERDICT_PAUSE, ROLLOUT_HALT_REVERTED,
                   "3 members went back to the old image, revert_halt is 3");
        p.failure_action = ROLLOUT_ACTION_ABORT;
        verdict_is(&p, 1, 10, 5, 3, 3, ROLLOUT_VERDICT_ABORT, ROLLOUT_HALT_FAILURE_THRESHOLD,
                   "wave 1: 3 of 10 members failed, the failure threshold is 2");
        /* revert_halt 0: reverts never halt by themselves. */
        p.revert_halt = 0;
        verdict_is(&p, 1, 10, 5, 1, 50, ROLLOUT_VERDICT_RUNNING, ROLLOUT_HALT_NONE, "");

        /* A count above the wave's size: a wave whose every member failed still stops. */
        ASSERT_OK(rollout_count_parse("5", "failure_threshold", &p.failure_threshold, NULL));
        ASSERT_EQ(rollout_failure_threshold_of(&p, 2), 2);
        ASSERT_EQ(rollout_failure_threshold_of(&p, 0), 1);
        verdict_is(&p, 0, 2, 2, 2, 0, ROLLOUT_VERDICT_ABORT, ROLLOUT_HALT_FAILURE_THRESHOLD,
                   "wave 0 (the canary): 2 of 2 members failed, the failure threshold is 2");
        /* A percentage rounds up and is at least 1. */
        ASSERT_OK(rollout_count_parse("1%", "failure_threshold", &p.failure_threshold, NULL));
        ASSERT_EQ(rollout_failure_threshold_of(&p, 150), 2);
        ASSERT_EQ(rollout_failure_threshold_of(&p, 3), 1);
}

/* ---- budgets, gate, priority, backoff ---- */

static void test_reboot_budget(void) {
        struct rollout_policy p;

        rollout_policy_init(&p);   /* 4, relay 1 */
        ASSERT_TRUE(rollout_may_reboot(&p, &(struct rollout_reboots) { 0, 0 }, false));
        ASSERT_TRUE(rollout_may_reboot(&p, &(struct rollout_reboots) { 3, 0 }, false));
        ASSERT_TRUE(!rollout_may_reboot(&p, &(struct rollout_reboots) { 4, 0 }, false));
        ASSERT_TRUE(rollout_may_reboot(&p, &(struct rollout_reboots) { 3, 0 }, true));
        ASSERT_TRUE(!rollout_may_reboot(&p, &(struct rollout_reboots) { 1, 1 }, true));
        ASSERT_TRUE(rollout_may_reboot(&p, &(struct rollout_reboots) { 1, 1 }, false));
        ASSERT_TRUE(!rollout_may_reboot(&p, &(struct rollout_reboots) { 4, 0 }, true));
        p.max_rebooting_relay = 2;
        ASSERT_TRUE(rollout_may_reboot(&p, &(struct rollout_reboots) { 1, 1 }, true));
}

static void test_activation_gate(void) {
        struct rollout_activation_gate g = {
                .staged = true, .wave_open = true, .window_open = true, .reboot_allowed = true,
        };

        ASSERT_TRUE(rollout_may_activate(&g));
        g.window_open = false;
        ASSERT_TRUE(!rollout_may_activate(&g));
        g.forced = true;   /* `activate`: windows are not waited for */
        ASSERT_TRUE(rollout_may_activate(&g));
        g.reboot_allowed = false;   /* but budgets are */
        ASSERT_TRUE(!rollout_may_activate(&g));
        g.reboot_allowed = true;
        g.wave_open = false;   /* and wave order */
        ASSERT_TRUE(!rollout_may_activate(&g));
        g.wave_open = true;
        g.staged = false;
        ASSERT_TRUE(!rollout_may_activate(&g));
}

static void test_priority(void) {
        ASSERT_TRUE(rollout_job_priority(ROLLOUT_PHASE_VERIFY, 9, 900) <
                    rollout_job_priority(ROLLOUT_PHASE_ACTIVATE, 0, 0));
        ASSERT_TRUE(rollout_job_priority(ROLLOUT_PHASE_ACTIVATE, 9, 900) <
                    rollout_job_priority(ROLLOUT_PHASE_STAGE, 0, 0));
        ASSERT_TRUE(rollout_job_priority(ROLLOUT_PHASE_STAGE, 0, 900) <
                    rollout_job_priority(ROLLOUT_PHASE_STAGE, 1, 0));
        ASSERT_TRUE(rollout_job_priority(ROLLOUT_PHASE_STAGE, 1, 3) < rollout_job_priority(ROLLOUT_PHASE_STAGE, 1, 4));
        ASSERT_TRUE(rollout_job_priority(ROLLOUT_PHASE_VERIFY, UINT32_MAX, UINT32_MAX) <
                    rollout_job_priority(ROLLOUT_PHASE_ACTIVATE, 0, 0));
}

static void test_retry_delay(void) {
        struct rollout_policy p;

        rollout_policy_init(&p);   /* 10 s, cap 600 s */
        ASSERT_EQ(rollout_retry_delay_usec(&p, 1, 0.5), 10 * SEC);
        ASSERT_EQ(rollout_retry_delay_usec(&p, 2, 0.5), 20 * SEC);
        ASSERT_EQ(rollout_retry_delay_usec(&p, 3, 0.5), 40 * SEC);
        ASSERT_EQ(rollout_retry_delay_usec(&p, 7, 0.5), 600 * SEC);   /* 640 capped */
        ASSERT_EQ(rollout_retry_delay_usec(&p, 1000, 0.5), 600 * SEC);
        ASSERT_EQ(rollout_retry_delay_usec(&p, 1, 0), 8 * SEC);        /* -20 % */
        ASSERT_EQ(rollout_retry_delay_usec(&p, 1, 0.999999), 12 * SEC - 4);
        ASSERT_EQ(rollout_retry_delay_usec(&p, 1, 5), 12 * SEC);       /* clamped */
        ASSERT_EQ(rollout_retry_delay_usec(&p, 7, 0), 480 * SEC);
}

/* ---- names ---- */

static void test_names(void) {
        for (int s = 0; s < _ROLLOUT_MEMBER_STATE_MAX; s++)
                ASSERT_EQ(rollout_member_state_from_string(rollout_member_state_to_string(s)), s);
        for (int r = 0; r < _ROLLOUT_SKIP_MAX; r++)
                ASSERT_EQ(rollout_skip_reason_from_string(rollout_skip_reason_to_string(r)), r);
        for (int r = 0; r < _ROLLOUT_FAILED_MAX; r++)
                ASSERT_EQ(rollout_failure_reason_from_string(rollout_failure_reason_to_string(r)), r);
        ASSERT_STREQ(rollout_skip_reason_to_string(ROLLOUT_SKIP_FILTER_NO_LONGER_MATCHES), "filter-no-longer-matches");
        ASSERT_STREQ(rollout_failure_reason_to_string(ROLLOUT_FAILED_SOAK_CHECK), "soak-check");
        ASSERT_STREQ(rollout_member_state_to_string(ROLLOUT_MEMBER_REBOOTING), "rebooting");
        ASSERT_STREQ(rollout_halt_reason_to_string(ROLLOUT_HALT_REVERTED), "reverted");
        ASSERT_EQ(rollout_action_from_string("abort"), ROLLOUT_ACTION_ABORT);
        ASSERT_EQ(rollout_action_from_string("Abort"), -EINVAL);
        ASSERT_EQ(rollout_member_state_from_string(NULL), -EINVAL);
        ASSERT_TRUE(rollout_member_state_to_string(_ROLLOUT_MEMBER_STATE_MAX) == NULL);
        ASSERT_TRUE(rollout_skip_reason_to_string(-1) == NULL);
}

/* ---- JSON ---- */

static int policy_json(const char *text, struct rollout_policy *p, char **reason) {
        json_t *j = json_loads(text, 0, NULL);
        int r;

        ASSERT_TRUE(j);
        rollout_policy_init(p);
        r = rollout_policy_from_json(j, p, reason);
        json_decref(j);
        return r;
}

static void policy_refused(const char *text, const char *sentence) {
        struct rollout_policy p;
        _cleanup_free_ char *reason = NULL;

        ASSERT_EQ(policy_json(text, &p, &reason), -EINVAL);
        ASSERT_STREQ(reason, sentence);
}

/* Two policies say the same (compared by their JSON: no padding bytes). */
static void assert_policy_eq(const struct rollout_policy *a, const struct rollout_policy *b) {
        json_t *ja = rollout_policy_to_json(a), *jb = rollout_policy_to_json(b);

        ASSERT_TRUE(ja && jb);
        ASSERT_TRUE(json_equal(ja, jb));
        json_decref(ja);
        json_decref(jb);
}

static void test_policy_json(void) {
        struct rollout_policy p, q;
        json_t *j;
        char *dump;

        ASSERT_OK(policy_json("{\"canary\": \"10%\", \"wave_size\": 20, \"soak\": 300, \"failure_threshold\": \"5%\","
                              " \"failure_action\": \"abort\", \"revert_halt\": 0, \"max_rebooting\": 8,"
                              " \"max_rebooting_relay\": 2, \"attempts\": 5, \"retry_delay\": 30,"
                              " \"retry_delay_max\": 900}",
                              &p, NULL));
        ASSERT_TRUE(p.canary.percent && p.canary.value == 10);
        ASSERT_TRUE(!p.wave_size.percent && p.wave_size.value == 20);
        ASSERT_EQ(p.soak_s, 300);
        ASSERT_TRUE(p.failure_threshold.percent && p.failure_threshold.value == 5);
        ASSERT_EQ(p.failure_action, ROLLOUT_ACTION_ABORT);
        ASSERT_EQ(p.revert_halt, 0);
        ASSERT_EQ(p.max_rebooting, 8);
        ASSERT_EQ(p.max_rebooting_relay, 2);
        ASSERT_EQ(p.attempts, 5);
        ASSERT_EQ(p.retry_delay_s, 30);
        ASSERT_EQ(p.retry_delay_max_s, 900);

        j = rollout_policy_to_json(&p);
        ASSERT_TRUE(j);
        dump = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        ASSERT_STREQ(dump, "{\"attempts\":5,\"canary\":\"10%\",\"failure_action\":\"abort\","
                           "\"failure_threshold\":\"5%\","
                           "\"max_rebooting\":8,\"max_rebooting_relay\":2,\"retry_delay\":30,\"retry_delay_max\":900,"
                           "\"revert_halt\":0,\"soak\":300,\"wave_size\":\"20\"}");
        free(dump);
        rollout_policy_init(&q);
        ASSERT_OK(rollout_policy_from_json(j, &q, NULL));
        json_decref(j);
        assert_policy_eq(&p, &q);

        /* Defaults stay for keys not given; JSON null is no policy. */
        ASSERT_OK(policy_json("{}", &p, NULL));
        rollout_policy_init(&q);
        assert_policy_eq(&p, &q);
        ASSERT_OK(rollout_policy_from_json(json_null(), &p, NULL));

        policy_refused("{\"canary\": \"0\"}", "canary '0' is not a count 1..100000 or a percentage 1%..100%");
        policy_refused("{\"canary\": 0}", "canary 0 is not a count 1..100000 or a percentage 1%..100%");
        policy_refused("{\"wave_size\": true}", "wave_size is not a count (\"5\") or a percentage (\"10%\")");
        policy_refused("{\"soak\": 604801}", "soak 604801 is out of range (0..604800)");
        policy_refused("{\"soak\": \"60\"}", "soak is not a whole number (0..604800)");
        policy_refused("{\"max_rebooting\": 0}", "max_rebooting 0 is out of range (1..1024)");
        policy_refused("{\"attempts\": 101}", "attempts 101 is out of range (1..100)");
        policy_refused("{\"failure_action\": \"panic\"}", "failure_action 'panic' is not pause or abort");
        policy_refused("{\"wavesize\": 3}", "unknown policy key 'wavesize'");
        policy_refused("[]", "the policy is not an object");
        /* A refused policy leaves *p as it was. */
        {
                json_t *bad = json_pack("{s:i, s:i}", "soak", 5, "attempts", 0);
                rollout_policy_init(&p);
                ASSERT_EQ(rollout_policy_from_json(bad, &p, NULL), -EINVAL);
                json_decref(bad);
                ASSERT_EQ(p.soak_s, 0);
        }
}

static int filter_json(const char *text, struct rollout_filter *f, char **reason) {
        json_t *j = json_loads(text, 0, NULL);
        int r;

        ASSERT_TRUE(j);
        r = rollout_filter_from_json(j, f, reason);
        json_decref(j);
        return r;
}

static void filter_refused(const char *text, const char *words) {
        struct rollout_filter f;
        _cleanup_free_ char *reason = NULL;

        ASSERT_EQ(filter_json(text, &f, &reason), -EINVAL);
        if (!reason || !strstr(reason, words)) {
                fprintf(stderr, "%s: reason '%s' lacks '%s'\n", text, reason, words);
                abort();
        }
}

static void test_filter_json(void) {
        struct rollout_filter f;
        json_t *j;
        char *dump;

        ASSERT_OK(filter_json("{\"transport\": [\"ble\", \"udp\"], \"name\": \"Sensor-*\","
                              " \"labels\": [\"lab\", \"floor-2\"],"
                              " \"board\": \"nrf52840dk\", \"app\": \"thermo\", \"version_below\": \"1.3.0\"}",
                              &f, NULL));
        ASSERT_EQ(f.n_transports, 2);
        ASSERT_STREQ(f.transports[1], "udp");
        ASSERT_STREQ(f.name, "Sensor-*");
        ASSERT_EQ(f.n_labels, 2);
        ASSERT_STREQ(f.labels[1], "floor-2");
        ASSERT_STREQ(f.board, "nrf52840dk");
        ASSERT_STREQ(f.app, "thermo");
        ASSERT_TRUE(f.has_version_below);
        ASSERT_EQ(f.version_below.minor, 3);

        j = rollout_filter_to_json(&f);
        dump = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        ASSERT_STREQ(dump, "{\"app\":\"thermo\",\"board\":\"nrf52840dk\",\"labels\":[\"lab\",\"floor-2\"],"
                           "\"name\":\"Sensor-*\",\"transport\":[\"ble\",\"udp\"],\"version_below\":\"1.3.0+0\"}");
        free(dump);
        json_decref(j);

        ASSERT_OK(filter_json("{\"transport\": \"serial\"}", &f, NULL));
        ASSERT_EQ(f.n_transports, 1);
        ASSERT_STREQ(f.transports[0], "serial");

        filter_refused("{}", "at least one of");
        filter_refused("{\"labels\": \"lab\"}", "labels is not a list of names");
        filter_refused("{\"labels\": [\"Lab\"]}", "labels 'Lab' is not a valid name");
        filter_refused("{\"labels\": [\"-lab\"]}", "labels '-lab' is not a valid name");
        filter_refused("{\"labels\": []}", "labels has 0 names, 1 to 16 are allowed");
        filter_refused("{\"transport\": [\"BLE\"]}", "transport 'BLE' is not a valid name");
        filter_refused("{\"transport\": [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]}",
                       "transport has 9 names, 1 to 8 are allowed");
        filter_refused("{\"version_below\": \"1.x\"}", "version_below '1.x' is not a version");
        filter_refused("{\"name\": \"\"}", "name is not printable text of 1..128 characters");
        filter_refused("{\"board\": 5}", "board is not printable text");
        filter_refused("{\"colour\": \"red\"}", "unknown filter key 'colour'");
}

TEST_MAIN(TEST(test_counts), TEST(test_filter), TEST(test_os_info), TEST(test_filter_unknown), TEST(test_skip),
          TEST(test_image_boards), TEST(test_layout_image_boards), TEST(test_order), TEST(test_waves),
          TEST(test_layout), TEST(test_verdicts), TEST(test_reboot_budget), TEST(test_activation_gate),
          TEST(test_priority), TEST(test_retry_delay), TEST(test_names), TEST(test_policy_json), TEST(test_filter_json))
