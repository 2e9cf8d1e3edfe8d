/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * When smpgwd looks at its devices again (device_check_due(), the
 * decision devices_check_absent() takes every 5 s): a fleet found or
 * added at once is not probed again all at once, every absent_after or
 * every reprobe, but spread over a quarter of the period, and the rules
 * stay: nothing is marked absent before absent_after without a sight.
 * The schedule is computed, not waited for: simulated time, no clock.
 */
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "device.h"
#include "log.h"
#include "test-util.h"

/* daemon/main.c defines these in smpgwd. */
int smpgwd_log_max_level = LOG_WARNING;
bool smpgwd_log_to_journal = false;

#define FLEET 1000u
#define CHECK_USEC (5ull * 1000000u) /* manager.c: ABSENT_CHECK_USEC */
#define T0 (1700000000ull * 1000000u)

struct sim {
        struct device devices[FLEET];
        unsigned probes_at[2048]; /* probes per check, by check index */
        unsigned most_at_once, checks_with_probes;
};

static void fleet_init(struct sim *s, enum device_state state) {
        memset(s, 0, sizeof(*s));
        for (unsigned i = 0; i < FLEET; i++)
                s->devices[i] = (struct device) {
                        .id = i + 1,
                        .state = state,
                        .last_seen_usec = T0,
                        .last_probe_usec = T0,
                };
}

/* Runs the checks for `checks` × 5 s from T0.  A probe answers (seen
 * again) if `answering`; else it fails, as probe.c has it. */
static void run(struct sim *s, const struct config *c, unsigned checks, bool answering) {
        for (unsigned k = 1; k <= checks; k++) {
                uint64_t now = T0 + k * CHECK_USEC;
                unsigned probes = 0;
                for (unsigned i = 0; i < FLEET; i++) {
                        struct device *d = &s->devices[i];
                        switch (device_check_due(d, c, now)) {
                        case DEVICE_CHECK_PROBE:
                                probes++;
                                d->last_probe_usec = now;
                                if (answering) {
                                        d->last_seen_usec = now;
                                        d->state = DEVICE_ONLINE;
                                } else if (d->state != DEVICE_ABSENT)
                                        d->state = DEVICE_UNREACHABLE;
                                break;
                        case DEVICE_CHECK_ABSENT:
                                /* Never before absent_after without a sight. */
                                ASSERT_TRUE(now - d->last_seen_usec > c->absent_after_usec);
                                d->state = DEVICE_ABSENT;
                                break;
                        case DEVICE_CHECK_NONE:
                                break;
                        }
                }
                if (k < ELEMENTSOF(s->probes_at))
                        s->probes_at[k] = probes;
                s->most_at_once = probes > s->most_at_once ? probes : s->most_at_once;
                s->checks_with_probes += probes > 0;
        }
}

/* IP devices added at once (REST, [devices] add) are "seen" only when a
 * probe answers: each is asked again about every absent_after.  Not all
 * in the same check: spread over the last quarter of the period. */
static void test_absent_checks_spread(void) {
        struct config *c;
        ASSERT_OK(config_new(&c));
        struct sim *s = calloc(1, sizeof(*s));
        ASSERT_TRUE(s);
        fleet_init(s, DEVICE_ONLINE);

        /* Three absent_after periods (600 s each). */
        run(s, c, (unsigned) (3 * c->absent_after_usec / CHECK_USEC), true);
        /* The window is 150 s = 30 checks: on average 34 devices a check. */
        ASSERT_TRUE(s->most_at_once <= FLEET / 10);
        ASSERT_TRUE(s->checks_with_probes >= 25);
        /* Nobody before three quarters of the period, everybody by its end. */
        uint64_t first = 3 * c->absent_after_usec / 4 / CHECK_USEC;
        for (unsigned k = 1; k < first; k++)
                ASSERT_EQ(s->probes_at[k], 0);
        unsigned first_period = 0;
        for (unsigned k = 1; k <= c->absent_after_usec / CHECK_USEC + 1; k++)
                first_period += s->probes_at[k];
        ASSERT_EQ(first_period, FLEET);
        for (unsigned i = 0; i < FLEET; i++)
                ASSERT_EQ(s->devices[i].state, DEVICE_ONLINE);
        free(s);
        config_free(c);
}

/* Devices discovery keeps seeing (BLE, ranged) are still probed every
 * reprobe: spread too. */
static void test_reprobes_spread(void) {
        struct config *c;
        ASSERT_OK(config_new(&c));
        struct sim *s = calloc(1, sizeof(*s));
        ASSERT_TRUE(s);
        fleet_init(s, DEVICE_ONLINE);
        c->absent_after_usec = 30 * 86400ull * 1000000u; /* seen all along: only reprobes */

        run(s, c, (unsigned) (c->reprobe_usec / CHECK_USEC + 1), true);
        ASSERT_TRUE(s->most_at_once <= FLEET / 20); /* 900 s window: 180 checks */
        ASSERT_TRUE(s->checks_with_probes >= 100);
        for (unsigned i = 0; i < FLEET; i++) {
                ASSERT_TRUE(s->devices[i].last_probe_usec > T0);
                /* Due within the last quarter of the period, never later. */
                const struct device fresh = { .id = i + 1, .last_probe_usec = T0 };
                ASSERT_TRUE(device_reprobe_due(&fresh, c, T0 + c->reprobe_usec + 1));
                ASSERT_TRUE(
                        !device_reprobe_due(&fresh, c, T0 + c->reprobe_usec - c->reprobe_usec / DEVICE_SPREAD_DIVISOR));
        }
        free(s);
        config_free(c);
}

/* Devices that stop answering: probed once more, then absent, each not
 * before absent_after since it was last seen. */
static void test_silent_fleet_goes_absent(void) {
        struct config *c;
        ASSERT_OK(config_new(&c));
        struct sim *s = calloc(1, sizeof(*s));
        ASSERT_TRUE(s);
        fleet_init(s, DEVICE_ONLINE);

        run(s, c, (unsigned) (2 * c->absent_after_usec / CHECK_USEC), false);
        for (unsigned i = 0; i < FLEET; i++)
                ASSERT_EQ(s->devices[i].state, DEVICE_ABSENT);
        free(s);
        config_free(c);
}

/* A device busy with a job or a probe is left alone. */
static void test_busy_left_alone(void) {
        struct config *c;
        ASSERT_OK(config_new(&c));
        struct device d = {
                .id = 1, .state = DEVICE_ONLINE, .last_seen_usec = T0, .last_probe_usec = T0, .probe_queued = true
        };
        ASSERT_EQ(device_check_due(&d, c, T0 + 10 * c->absent_after_usec), DEVICE_CHECK_NONE);
        d.probe_queued = false;
        ASSERT_EQ(device_check_due(&d, c, T0 + 10 * c->absent_after_usec), DEVICE_CHECK_PROBE);
        config_free(c);
}

TEST_MAIN(TEST(test_absent_checks_spread), TEST(test_reprobes_spread), TEST(test_silent_fleet_goes_absent),
          TEST(test_busy_left_alone))
