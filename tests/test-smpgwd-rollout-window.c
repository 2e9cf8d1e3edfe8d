/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon/rollout-window.c: the compact and JSON spellings (and the
 * sentences for what is wrong), and where an instant stands in
 * Europe/Berlin, America/New_York and UTC: every weekday, across
 * midnight, windows that touch, daylight saving switch days, far future
 * and past.  Expected instants are UTC dates through glibc's timegm().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rollout-window.h"
#include "test-util.h"

static uint64_t utc(int y, int mo, int d, int h, int mi) {
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi };
        return (uint64_t) timegm(&tm) * TZ_USEC_PER_SEC;
}

static struct tz_zone zone(const char *name) {
        struct tz_zone z;
        ASSERT_OK(tz_zone_load(name, &z, NULL));
        return z;
}

/* Windows from compact strings, NULL-terminated. */
static struct rollout_windows windows(const char *first, ...) {
        struct rollout_windows ws = {};
        va_list ap;

        va_start(ap, first);
        for (const char *s = first; s; s = va_arg(ap, const char *)) {
                struct rollout_window w;
                _cleanup_free_ char *why = NULL;
                if (rollout_window_parse(s, &w, &why) < 0) {
                        fprintf(stderr, "'%s': %s\n", s, why);
                        abort();
                }
                ASSERT_OK(rollout_windows_add(&ws, &w));
        }
        va_end(ap);
        return ws;
}

static struct rollout_window_state state(const struct rollout_windows *ws, const char *zone_name, uint64_t now) {
        struct tz_zone z = zone(zone_name);
        struct rollout_window_state st;

        ASSERT_OK(rollout_windows_state(ws, &z, now, &st));
        return st;
}

static void assert_open(const struct rollout_windows *ws, const char *z, uint64_t now, uint64_t closes) {
        struct rollout_window_state st = state(ws, z, now);

        ASSERT_TRUE(st.open);
        ASSERT_EQ(st.opens_usec, now);
        ASSERT_EQ(st.closes_usec, closes);
}

static void assert_closed(const struct rollout_windows *ws, const char *z, uint64_t now, uint64_t opens,
                          uint64_t closes) {
        struct rollout_window_state st = state(ws, z, now);

        ASSERT_TRUE(!st.open);
        ASSERT_EQ(st.opens_usec, opens);
        ASSERT_EQ(st.closes_usec, closes);
}

/* ---- spellings ---- */

static void parses_to(const char *text, uint8_t days, unsigned from, unsigned to, const char *canonical) {
        struct rollout_window w;
        char buf[ROLLOUT_WINDOW_FORMAT_MAX];

        ASSERT_OK(rollout_window_parse(text, &w, NULL));
        ASSERT_EQ(w.days, days);
        ASSERT_EQ(w.from_min, from);
        ASSERT_EQ(w.to_min, to);
        ASSERT_TRUE(rollout_window_format(&w, buf, sizeof(buf)) > 0);
        ASSERT_STREQ(buf, canonical);
}

static void test_compact(void) {
        parses_to("mon-fri 02:00-04:00", 0x1f, 120, 240, "mon-fri 02:00-04:00");
        parses_to("sat,sun 00:00-24:00", 0x60, 0, 1440, "sat,sun 00:00-24:00");
        parses_to("  SAT,Sun   00:00-24:00 ", 0x60, 0, 1440, "sat,sun 00:00-24:00");
        parses_to("fri-mon 22:00-06:00", 0x71, 1320, 360, "mon,fri-sun 22:00-06:00");
        parses_to("03:00-03:30", ROLLOUT_DAYS_ALL, 180, 210, "03:00-03:30");
        parses_to("mon-sun 03:00-03:30", ROLLOUT_DAYS_ALL, 180, 210, "03:00-03:30");
        parses_to("wed 12:00-12:00", 0x04, 720, 720, "wed 12:00-12:00");
        parses_to("mon,wed,thu,fri 23:59-00:00", 0x1d, 1439, 0, "mon,wed-fri 23:59-00:00");
        parses_to("tue,mon 01:00-02:00", 0x03, 60, 120, "mon,tue 01:00-02:00");
        parses_to("thu-thu 01:00-02:00", 0x08, 60, 120, "thu 01:00-02:00");
}

static void refused(const char *text, const char *words) {
        _cleanup_free_ char *reason = NULL;
        struct rollout_window w;

        ASSERT_EQ(rollout_window_parse(text, &w, &reason), -EINVAL);
        ASSERT_TRUE(reason);
        if (!strstr(reason, words)) {
                fprintf(stderr, "'%s': reason '%s' lacks '%s'\n", text, reason, words);
                abort();
        }
}

static void test_compact_refused(void) {
        refused("fir 02:00-04:00", "day 'fir' is not one of mon, tue");
        refused("mon-fri 2:00-04:00", "time '2:00' is not HH:MM");
        refused("mon-fri 02:00-04:60", "time '04:60' is out of range");
        refused("mon-fri 25:00-04:00", "time '25:00' is out of range");
        refused("mon-fri 24:00-02:00", "'24:00' can only end a window");
        refused("mon-fri 02:00-24:01", "time '24:01' is out of range");
        refused("mon-fri 02:00", "'02:00' is not a time range");
        refused("mon fri 02:00-04:00", "'mon fri' is not a list of days");
        refused("mon,,fri 02:00-04:00", "an empty day");
        refused("mon, 02:00-04:00", "an empty day");
        refused("monday 02:00-04:00", "day 'monday'");
        refused("mon-xyz 02:00-04:00", "day 'xyz'");
        refused("", "empty");
        refused("   ", "empty");
        refused("mon\t02:00-04:00", "printable ASCII");
        refused("mon 02:00-04:00\xc3\xa9", "printable ASCII");
        refused("mon 02:00-04:00-05:00", "time '04:00-05:00' is not HH:MM");
        {
                char long_text[200];
                memset(long_text, 'a', sizeof(long_text) - 1);
                long_text[sizeof(long_text) - 1] = '\0';
                refused(long_text, "at most 128");
        }
}

static void json_refused(const char *text, int expected, const char *words) {
        _cleanup_free_ char *reason = NULL;
        struct rollout_windows ws;
        json_t *j = json_loads(text, 0, NULL);

        ASSERT_TRUE(j);
        ASSERT_EQ(rollout_windows_from_json(j, &ws, &reason), expected);
        json_decref(j);
        ASSERT_TRUE(reason);
        if (!strstr(reason, words)) {
                fprintf(stderr, "%s: reason '%s' lacks '%s'\n", text, reason, words);
                abort();
        }
}

static void test_json(void) {
        struct rollout_windows ws;
        json_t *j = json_loads("[{\"days\": [\"mon\", \"TUE\", \"fri\"], \"from\": \"02:00\", \"to\": \"04:30\"},"
                               " {\"from\": \"22:00\", \"to\": \"24:00\"}]",
                               0, NULL);
        json_t *back;
        char *dump;

        ASSERT_TRUE(j);
        ASSERT_OK(rollout_windows_from_json(j, &ws, NULL));
        json_decref(j);
        ASSERT_EQ(ws.n, 2);
        ASSERT_EQ(ws.w[0].days, 0x13);
        ASSERT_EQ(ws.w[0].from_min, 120);
        ASSERT_EQ(ws.w[0].to_min, 270);
        ASSERT_EQ(ws.w[1].days, ROLLOUT_DAYS_ALL);
        ASSERT_EQ(ws.w[1].to_min, 1440);

        back = rollout_windows_to_json(&ws);
        ASSERT_TRUE(back);
        dump = json_dumps(back, JSON_COMPACT);
        ASSERT_STREQ(dump, "[{\"days\":[\"mon\",\"tue\",\"fri\"],\"from\":\"02:00\",\"to\":\"04:30\"},"
                           "{\"days\":[\"mon\",\"tue\",\"wed\",\"thu\",\"fri\",\"sat\",\"sun\"],"
                           "\"from\":\"22:00\",\"to\":\"24:00\"}]");
        free(dump);
        ASSERT_OK(rollout_windows_from_json(back, &ws, NULL));
        json_decref(back);
        ASSERT_EQ(ws.n, 2);

        ASSERT_OK(rollout_windows_from_json(NULL, &ws, NULL));
        ASSERT_EQ(ws.n, 0);

        json_refused("[{\"days\": [], \"from\": \"02:00\", \"to\": \"04:00\"}]", -EINVAL,
                     "window 1: \"days\" is empty");
        json_refused("[{\"from\": \"02:00\", \"to\": \"04:00\"}, {\"from\": \"02:00\"}]", -EINVAL,
                     "window 2: \"to\" is missing");
        json_refused("[{\"from\": \"02:00\", \"to\": \"04:00\", \"zone\": \"UTC\"}]", -EINVAL, "unknown key 'zone'");
        json_refused("[{\"days\": [\"mon\", \"funday\"], \"from\": \"02:00\", \"to\": \"04:00\"}]", -EINVAL,
                     "day 'funday' is not one of");
        json_refused("[{\"days\": [\"mon\", 3], \"from\": \"02:00\", \"to\": \"04:00\"}]", -EINVAL,
                     "\"days\" item 2 is not one of");
        json_refused("[{\"from\": 2, \"to\": \"04:00\"}]", -EINVAL, "\"from\" is not a time");
        json_refused("[{\"from\": \"24:00\", \"to\": \"04:00\"}]", -EINVAL, "can only end a window");
        json_refused("[\"mon 02:00-04:00\"]", -EINVAL, "window 1: a window is an object");
        json_refused("{\"from\": \"02:00\"}", -EINVAL, "a list of");
        {
                json_t *many = json_array();
                _cleanup_free_ char *text = NULL;
                for (int i = 0; i < 33; i++)
                        json_array_append_new(many, json_pack("{s:s, s:s}", "from", "01:00", "to", "02:00"));
                text = json_dumps(many, 0);
                json_decref(many);
                json_refused(text, -E2BIG, "33 windows given, at most 32");
        }
}

/* ---- where an instant stands ---- */

static void test_empty_always_open(void) {
        struct rollout_windows ws = {};
        struct rollout_window_state st;

        ASSERT_OK(rollout_windows_state(&ws, NULL, utc(2026, 5, 4, 12, 0), &st));
        ASSERT_TRUE(st.open);
        ASSERT_EQ(st.closes_usec, UINT64_MAX);
}

static void test_weekdays_utc(void) {
        struct rollout_windows ws = windows("mon-fri 02:00-04:00", NULL);

        /* 2026-05-04 is a Monday. */
        assert_open(&ws, "UTC", utc(2026, 5, 6, 3, 0), utc(2026, 5, 6, 4, 0));
        assert_open(&ws, "UTC", utc(2026, 5, 6, 2, 0), utc(2026, 5, 6, 4, 0));
        assert_closed(&ws, "UTC", utc(2026, 5, 6, 4, 0), utc(2026, 5, 7, 2, 0), utc(2026, 5, 7, 4, 0));
        assert_closed(&ws, "UTC", utc(2026, 5, 6, 1, 59), utc(2026, 5, 6, 2, 0), utc(2026, 5, 6, 4, 0));
        /* Friday after the window: Monday next. */
        assert_closed(&ws, "UTC", utc(2026, 5, 8, 5, 0), utc(2026, 5, 11, 2, 0), utc(2026, 5, 11, 4, 0));
}

/* One window per day name: open on exactly that weekday. */
static void test_every_weekday(void) {
        static const char *names[] = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" };

        for (int d = 0; d < 7; d++) {
                char text[32];
                struct rollout_windows ws;
                snprintf(text, sizeof(text), "%s 12:00-13:00", names[d]);
                ws = windows(text, NULL);
                for (int day = 0; day < 7; day++) {
                        /* Berlin, summer: 12:30 CEST is 10:30 UTC; 2026-05-04 is a Monday. */
                        uint64_t t = utc(2026, 5, 4 + day, 10, 30);
                        struct rollout_window_state st = state(&ws, "Europe/Berlin", t);
                        ASSERT_EQ(st.open, day == d);
                        if (day == d)
                                ASSERT_EQ(st.closes_usec, utc(2026, 5, 4 + day, 11, 0));
                        else
                                ASSERT_EQ(st.opens_usec, utc(2026, 5, 4 + (day < d ? d : d + 7), 10, 0));
                }
        }
}

static void test_across_midnight(void) {
        struct rollout_windows ws = windows("fri 22:00-06:00", NULL);

        /* Friday 2026-05-08 22:00 to Saturday 06:00, New York (EDT, UTC-4). */
        assert_closed(&ws, "America/New_York", utc(2026, 5, 9, 1, 59), utc(2026, 5, 9, 2, 0), utc(2026, 5, 9, 10, 0));
        assert_open(&ws, "America/New_York", utc(2026, 5, 9, 2, 0), utc(2026, 5, 9, 10, 0));
        assert_open(&ws, "America/New_York", utc(2026, 5, 9, 7, 0), utc(2026, 5, 9, 10, 0));
        assert_closed(&ws, "America/New_York", utc(2026, 5, 9, 10, 0), utc(2026, 5, 16, 2, 0), utc(2026, 5, 16, 10, 0));

        /* A whole day from 02:00: Wednesday 02:00 to Thursday 02:00. */
        ws = windows("wed 02:00-02:00", NULL);
        assert_open(&ws, "UTC", utc(2026, 5, 7, 1, 0), utc(2026, 5, 7, 2, 0));
        assert_closed(&ws, "UTC", utc(2026, 5, 6, 1, 0), utc(2026, 5, 6, 2, 0), utc(2026, 5, 7, 2, 0));
}

static void test_touching_windows(void) {
        struct rollout_windows ws = windows("sat 00:00-24:00", "sun 00:00-24:00", NULL);

        /* The weekend of 2026-05-09/10 in Berlin (CEST): Friday 22:00 UTC to Sunday 22:00 UTC. */
        assert_open(&ws, "Europe/Berlin", utc(2026, 5, 9, 10, 0), utc(2026, 5, 10, 22, 0));
        assert_closed(&ws, "Europe/Berlin", utc(2026, 5, 8, 12, 0), utc(2026, 5, 8, 22, 0), utc(2026, 5, 10, 22, 0));

        ws = windows("mon 22:00-24:00", "tue 00:00-02:00", "tue 01:00-03:00", NULL);
        assert_open(&ws, "UTC", utc(2026, 5, 4, 23, 0), utc(2026, 5, 5, 3, 0));
}

static void test_always(void) {
        struct rollout_windows ws = windows("00:00-24:00", NULL);
        assert_open(&ws, "Europe/Berlin", utc(2026, 3, 29, 1, 30), UINT64_MAX);

        ws = windows("02:00-02:00", NULL);
        assert_open(&ws, "America/New_York", utc(2026, 11, 1, 6, 30), UINT64_MAX);

        ws = windows("mon-wed 00:00-24:00", "thu-sun 00:00-24:00", NULL);
        assert_open(&ws, "UTC", utc(2026, 5, 4, 0, 0), UINT64_MAX);
}

static void test_berlin_spring(void) {
        /* 29 March 2026: 02:00 CET jumps to 03:00 CEST at 01:00 UTC. */
        struct rollout_windows ws = windows("sun 02:00-04:00", NULL);

        /* 02:00 does not exist: it opens at the jump and runs 1 hour. */
        assert_closed(&ws, "Europe/Berlin", utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0));
        assert_open(&ws, "Europe/Berlin", utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0));

        /* Wholly inside the jump: not that day, but a week later (CEST). */
        ws = windows("sun 02:15-02:45", NULL);
        assert_closed(&ws, "Europe/Berlin", utc(2026, 3, 29, 0, 0), utc(2026, 4, 5, 0, 15), utc(2026, 4, 5, 0, 45));

        /* Ending inside it: closes at the jump. */
        ws = windows("sun 01:00-02:30", NULL);
        assert_open(&ws, "Europe/Berlin", utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 0));
}

static void test_berlin_autumn(void) {
        /* 25 October 2026: 03:00 CEST goes back to 02:00 CET at 01:00 UTC. */
        struct rollout_windows ws = windows("sun 01:00-02:30", NULL);

        /* From 01:00 CEST (23:00 UTC the day before) to the second 02:30 (CET, 01:30 UTC). */
        assert_closed(&ws, "Europe/Berlin", utc(2026, 10, 24, 22, 0), utc(2026, 10, 24, 23, 0),
                      utc(2026, 10, 25, 1, 30));
        assert_open(&ws, "Europe/Berlin", utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 1, 30));

        /* The repeated hour itself. */
        ws = windows("sun 02:00-03:00", NULL);
        assert_closed(&ws, "Europe/Berlin", utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 2, 0));

        /* An ordinary Sunday a week later: one hour, CET. */
        assert_closed(&ws, "Europe/Berlin", utc(2026, 10, 25, 3, 0), utc(2026, 11, 1, 1, 0), utc(2026, 11, 1, 2, 0));
}

static void test_new_york_switches(void) {
        /* 8 March 2026: 02:00 EST → 03:00 EDT at 07:00 UTC. */
        struct rollout_windows ws = windows("sun 01:30-02:30", NULL);
        assert_closed(&ws, "America/New_York", utc(2026, 3, 8, 5, 0), utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7, 0));

        /* 1 November 2026: 02:00 EDT → 01:00 EST at 06:00 UTC: 01:00 EDT to 02:00 EST. */
        ws = windows("sun 01:00-02:00", NULL);
        assert_closed(&ws, "America/New_York", utc(2026, 11, 1, 4, 0), utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 7, 0));

        /* A window across midnight into the switch: Saturday 23:00 EDT to Sunday 01:30 EST. */
        ws = windows("sat 23:00-01:30", NULL);
        assert_open(&ws, "America/New_York", utc(2026, 11, 1, 4, 0), utc(2026, 11, 1, 6, 30));
}

static void test_far_future_and_past(void) {
        struct rollout_windows ws = windows("sun 02:00-04:00", NULL);

        /* 28 March 2100 (a Sunday): the jump at 01:00 UTC. */
        assert_closed(&ws, "Europe/Berlin", utc(2100, 3, 27, 12, 0), utc(2100, 3, 28, 1, 0), utc(2100, 3, 28, 2, 0));
        /* 6 April 1980: West Germany's first daylight saving day since 1949. */
        assert_closed(&ws, "Europe/Berlin", utc(1980, 4, 5, 12, 0), utc(1980, 4, 6, 1, 0), utc(1980, 4, 6, 2, 0));
        /* 1975, no daylight saving: 02:00 CET is 01:00 UTC. 1975-06-01 was a Sunday. */
        assert_closed(&ws, "Europe/Berlin", utc(1975, 5, 31, 12, 0), utc(1975, 6, 1, 1, 0), utc(1975, 6, 1, 3, 0));

        /* Near the end of time: 9999-12-31 is a Friday. */
        ws = windows("03:00-04:00", NULL);
        assert_closed(&ws, "UTC", utc(9999, 12, 31, 0, 0), utc(9999, 12, 31, 3, 0), utc(9999, 12, 31, 4, 0));
        {
                struct tz_zone z = zone("UTC");
                struct rollout_window_state st;
                ASSERT_EQ(rollout_windows_state(&ws, &z, utc(9999, 12, 31, 5, 0), &st), -ENOENT);
                ASSERT_EQ(rollout_windows_state(&ws, &z, TZ_USEC_MAX + 1, &st), -ERANGE);
        }
}

static void test_scope_batch(void) {
        struct rollout_windows ws = windows("mon-fri 02:00-04:00", NULL);
        struct tz_zone z = zone("Europe/Berlin");
        struct tz_scope scope;
        struct rollout_window_state st;
        int open = 0;

        ASSERT_OK(tz_scope_enter(&scope, &z));
        /* A week in 10-minute steps: 5 × 2 hours open. */
        for (uint64_t t = utc(2026, 5, 3, 22, 0); t < utc(2026, 5, 10, 22, 0); t += 600 * TZ_USEC_PER_SEC) {
                ASSERT_OK(rollout_windows_state_in(&ws, &scope, t, &st));
                open += st.open;
                ASSERT_TRUE(st.opens_usec >= t && st.closes_usec > st.opens_usec);
        }
        tz_scope_leave(&scope);
        ASSERT_EQ(open, 5 * 12);
}

TEST_MAIN(TEST(test_compact), TEST(test_compact_refused), TEST(test_json), TEST(test_empty_always_open),
          TEST(test_weekdays_utc), TEST(test_every_weekday), TEST(test_across_midnight), TEST(test_touching_windows),
          TEST(test_always), TEST(test_berlin_spring), TEST(test_berlin_autumn), TEST(test_new_york_switches),
          TEST(test_far_future_and_past), TEST(test_scope_batch))
