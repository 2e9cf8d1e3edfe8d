/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon/tz.c against the system's tz database (tzdata): zone names,
 * conversions both ways, daylight saving gaps and overlaps in
 * Europe/Berlin and America/New_York (2026, 2100, and the 1970s), and TZ
 * put back as it was.  Expected instants are written as UTC dates and
 * turned into seconds by glibc's timegm(), which knows no zone.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test-util.h"
#include "tz.h"

static int64_t utc(int y, int mo, int d, int h, int mi, int s) {
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s };
        return (int64_t) timegm(&tm);
}

static uint64_t utc_usec(int y, int mo, int d, int h, int mi, int s) {
        return (uint64_t) utc(y, mo, d, h, mi, s) * TZ_USEC_PER_SEC;
}

static struct tz_zone zone(const char *name) {
        struct tz_zone z;
        ASSERT_OK(tz_zone_load(name, &z, NULL));
        return z;
}

static struct tz_local local_of(int y, int mo, int d, int h, int mi, int s) {
        return (struct tz_local) { .year = y, .month = mo, .day = d, .hour = h, .minute = mi, .second = s };
}

/* The instant of a local time, and the flags. */
static int64_t resolve(const char *name, int y, int mo, int d, int h, int mi, enum tz_pick pick, unsigned *flags) {
        struct tz_zone z = zone(name);
        struct tz_local l = local_of(y, mo, d, h, mi, 0);
        uint64_t usec;

        ASSERT_OK(tz_from_local(&z, &l, pick, &usec, flags));
        ASSERT_EQ(usec % TZ_USEC_PER_SEC, 0);
        return (int64_t) (usec / TZ_USEC_PER_SEC);
}

static void assert_local(const char *name, int64_t t, int y, int mo, int d, int h, int mi, int s, int32_t off,
                         bool dst) {
        struct tz_zone z = zone(name);
        struct tz_local l;

        ASSERT_OK(tz_to_local(&z, (uint64_t) t * TZ_USEC_PER_SEC + 123456, &l));
        ASSERT_EQ(l.year, y);
        ASSERT_EQ(l.month, mo);
        ASSERT_EQ(l.day, d);
        ASSERT_EQ(l.hour, h);
        ASSERT_EQ(l.minute, mi);
        ASSERT_EQ(l.second, s);
        ASSERT_EQ(l.utc_offset_s, off);
        ASSERT_EQ(l.dst, dst);
}

/* ---- names ---- */

static void refused(const char *name, int expected, const char *words) {
        _cleanup_free_ char *reason = NULL;
        struct tz_zone z;

        ASSERT_EQ(tz_zone_load(name, &z, &reason), expected);
        ASSERT_TRUE(reason);
        if (!strstr(reason, words)) {
                fprintf(stderr, "'%s': reason '%s' lacks '%s'\n", name, reason, words);
                abort();
        }
}

static void test_zone_names(void) {
        struct tz_zone z;

        ASSERT_OK(tz_zone_load("Europe/Berlin", &z, NULL));
        ASSERT_STREQ(z.name, "Europe/Berlin");
        ASSERT_STREQ(z.path, "/usr/share/zoneinfo/Europe/Berlin");
        ASSERT_OK(tz_zone_load("UTC", &z, NULL));
        ASSERT_OK(tz_zone_load("America/Argentina/Buenos_Aires", &z, NULL));
        ASSERT_OK(tz_zone_load("Etc/GMT+5", &z, NULL));

        refused("", -EINVAL, "empty");
        refused("../../etc/passwd", -EINVAL, "'..'");
        refused("Europe/../UTC", -EINVAL, "'..'");
        refused("./UTC", -EINVAL, "'.'");
        refused("/usr/share/zoneinfo/UTC", -EINVAL, "absolute");
        refused("Europe//Berlin", -EINVAL, "empty parts");
        refused("Europe/Berlin/", -EINVAL, "empty parts");
        refused("Europe/Ber lin", -EINVAL, "letters, digits");
        refused("Europe/Berlin\n", -EINVAL, "letters, digits");
        refused("right/UTC", -EINVAL, "leap seconds");
        refused("Europe/Berln", -ENOENT, "unknown time zone 'Europe/Berln'");
        refused("Europe", -ENOENT, "unknown time zone 'Europe'");   /* a directory */
        refused("zone.tab", -EBADMSG, "not a time zone (TZif) file");
        refused("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", -EINVAL, "longer than 64");
        ASSERT_EQ(tz_zone_load("nope", &z, NULL), -ENOENT);   /* no reason wanted */
}

/* ---- conversions ---- */

static void test_to_local_berlin(void) {
        /* Spring 2026: 01:00 UTC, 02:00 CET → 03:00 CEST. */
        assert_local("Europe/Berlin", utc(2026, 3, 29, 0, 59, 59), 2026, 3, 29, 1, 59, 59, 3600, false);
        assert_local("Europe/Berlin", utc(2026, 3, 29, 1, 0, 0), 2026, 3, 29, 3, 0, 0, 7200, true);
        /* Autumn 2026: 01:00 UTC, 03:00 CEST → 02:00 CET; 02:30 twice. */
        assert_local("Europe/Berlin", utc(2026, 10, 25, 0, 30, 0), 2026, 10, 25, 2, 30, 0, 7200, true);
        assert_local("Europe/Berlin", utc(2026, 10, 25, 1, 30, 0), 2026, 10, 25, 2, 30, 0, 3600, false);
}

static void test_weekday(void) {
        struct tz_zone z = zone("America/New_York");
        struct tz_local l;

        /* 2026-05-04 is a Monday; 03:00 UTC is still Sunday evening in New York. */
        ASSERT_OK(tz_to_local(&z, utc_usec(2026, 5, 4, 12, 0, 0), &l));
        ASSERT_EQ(l.weekday, 0);
        ASSERT_OK(tz_to_local(&z, utc_usec(2026, 5, 4, 3, 0, 0), &l));
        ASSERT_EQ(l.weekday, 6);
        ASSERT_EQ(l.day, 3);
}

static void test_gap_berlin(void) {
        unsigned flags;

        /* 02:00 and 02:30 do not exist: the jump's instant, either pick. */
        ASSERT_EQ(resolve("Europe/Berlin", 2026, 3, 29, 2, 30, TZ_EARLIEST, &flags), utc(2026, 3, 29, 1, 0, 0));
        ASSERT_EQ(flags, TZ_RESOLVED_GAP);
        ASSERT_EQ(resolve("Europe/Berlin", 2026, 3, 29, 2, 30, TZ_LATEST, &flags), utc(2026, 3, 29, 1, 0, 0));
        ASSERT_EQ(flags, TZ_RESOLVED_GAP);
        ASSERT_EQ(resolve("Europe/Berlin", 2026, 3, 29, 2, 0, TZ_EARLIEST, &flags), utc(2026, 3, 29, 1, 0, 0));
        ASSERT_EQ(flags, TZ_RESOLVED_GAP);
        /* Around it, ordinary times. */
        ASSERT_EQ(resolve("Europe/Berlin", 2026, 3, 29, 1, 59, TZ_EARLIEST, &flags), utc(2026, 3, 29, 0, 59, 0));
        ASSERT_EQ(flags, 0);
        ASSERT_EQ(resolve("Europe/Berlin", 2026, 3, 29, 3, 0, TZ_LATEST, &flags), utc(2026, 3, 29, 1, 0, 0));
        ASSERT_EQ(flags, 0);
}

static void test_overlap_berlin(void) {
        unsigned flags;

        ASSERT_EQ(resolve("Europe/Berlin", 2026, 10, 25, 2, 30, TZ_EARLIEST, &flags), utc(2026, 10, 25, 0, 30, 0));
        ASSERT_EQ(flags, TZ_RESOLVED_OVERLAP);
        ASSERT_EQ(resolve("Europe/Berlin", 2026, 10, 25, 2, 30, TZ_LATEST, &flags), utc(2026, 10, 25, 1, 30, 0));
        ASSERT_EQ(flags, TZ_RESOLVED_OVERLAP);
        /* 02:00 is in it (CEST 02:00, CET 02:00); 03:00 is not. */
        ASSERT_EQ(resolve("Europe/Berlin", 2026, 10, 25, 2, 0, TZ_EARLIEST, &flags), utc(2026, 10, 25, 0, 0, 0));
        ASSERT_EQ(resolve("Europe/Berlin", 2026, 10, 25, 2, 0, TZ_LATEST, &flags), utc(2026, 10, 25, 1, 0, 0));
        ASSERT_EQ(resolve("Europe/Berlin", 2026, 10, 25, 3, 0, TZ_LATEST, &flags), utc(2026, 10, 25, 2, 0, 0));
        ASSERT_EQ(flags, 0);
}

static void test_new_york(void) {
        unsigned flags;

        /* 8 March 2026, 02:00 EST → 03:00 EDT at 07:00 UTC. */
        ASSERT_EQ(resolve("America/New_York", 2026, 3, 8, 2, 30, TZ_EARLIEST, &flags), utc(2026, 3, 8, 7, 0, 0));
        ASSERT_EQ(flags, TZ_RESOLVED_GAP);
        ASSERT_EQ(resolve("America/New_York", 2026, 3, 8, 1, 30, TZ_EARLIEST, &flags), utc(2026, 3, 8, 6, 30, 0));
        ASSERT_EQ(flags, 0);
        /* 1 November 2026, 02:00 EDT → 01:00 EST at 06:00 UTC: 01:30 twice. */
        ASSERT_EQ(resolve("America/New_York", 2026, 11, 1, 1, 30, TZ_EARLIEST, &flags), utc(2026, 11, 1, 5, 30, 0));
        ASSERT_EQ(flags, TZ_RESOLVED_OVERLAP);
        ASSERT_EQ(resolve("America/New_York", 2026, 11, 1, 1, 30, TZ_LATEST, &flags), utc(2026, 11, 1, 6, 30, 0));
        assert_local("America/New_York", utc(2026, 11, 1, 5, 59, 59), 2026, 11, 1, 1, 59, 59, -4 * 3600, true);
        assert_local("America/New_York", utc(2026, 11, 1, 6, 0, 0), 2026, 11, 1, 1, 0, 0, -5 * 3600, false);
}

static void test_far_future(void) {
        unsigned flags;

        /* Past the file's last transition: the POSIX rule at its end. */
        ASSERT_EQ(resolve("Europe/Berlin", 2100, 3, 28, 2, 30, TZ_EARLIEST, &flags), utc(2100, 3, 28, 1, 0, 0));
        ASSERT_EQ(flags, TZ_RESOLVED_GAP);
        ASSERT_EQ(resolve("Europe/Berlin", 2100, 10, 31, 2, 30, TZ_LATEST, &flags), utc(2100, 10, 31, 1, 30, 0));
        ASSERT_EQ(flags, TZ_RESOLVED_OVERLAP);
        ASSERT_EQ(resolve("America/New_York", 2100, 11, 7, 1, 30, TZ_EARLIEST, &flags), utc(2100, 11, 7, 5, 30, 0));
        ASSERT_EQ(flags, TZ_RESOLVED_OVERLAP);
        /* The last second accepted, east of UTC: already year 10000 there. */
        assert_local("Europe/Berlin", TZ_SECONDS_MAX, 10000, 1, 1, 0, 59, 59, 3600, false);
        assert_local("UTC", TZ_SECONDS_MAX, 9999, 12, 31, 23, 59, 59, 0, false);
}

static void test_past(void) {
        unsigned flags;

        /* No daylight saving in West Germany from 1950 to 1979. */
        ASSERT_EQ(resolve("Europe/Berlin", 1979, 7, 1, 12, 0, TZ_EARLIEST, &flags), utc(1979, 7, 1, 11, 0, 0));
        ASSERT_EQ(flags, 0);
        /* Its return, 6 April 1980, 02:00 CET. */
        ASSERT_EQ(resolve("Europe/Berlin", 1980, 4, 6, 2, 30, TZ_EARLIEST, &flags), utc(1980, 4, 6, 1, 0, 0));
        ASSERT_EQ(flags, TZ_RESOLVED_GAP);
        /* The United States' year-round daylight time began 6 January 1974. */
        ASSERT_EQ(resolve("America/New_York", 1974, 1, 6, 2, 30, TZ_EARLIEST, &flags), utc(1974, 1, 6, 7, 0, 0));
        ASSERT_EQ(flags, TZ_RESOLVED_GAP);
        /* The epoch is 1969 in New York. */
        assert_local("America/New_York", 0, 1969, 12, 31, 19, 0, 0, -5 * 3600, false);
}

static void test_ranges(void) {
        struct tz_zone z = zone("UTC");
        struct tz_local l;
        uint64_t usec;

        ASSERT_EQ(tz_to_local(&z, TZ_USEC_MAX + 1, &l), -ERANGE);
        ASSERT_OK(tz_to_local(&z, TZ_USEC_MAX, &l));
        l = local_of(2026, 2, 29, 12, 0, 0);   /* not a leap year */
        ASSERT_EQ(tz_from_local(&z, &l, TZ_EARLIEST, &usec, NULL), -EINVAL);
        l = local_of(2024, 2, 29, 24, 0, 0);
        ASSERT_EQ(tz_from_local(&z, &l, TZ_EARLIEST, &usec, NULL), -EINVAL);
        l = local_of(2024, 2, 29, 23, 59, 59);
        ASSERT_OK(tz_from_local(&z, &l, TZ_EARLIEST, &usec, NULL));
        ASSERT_EQ(usec, utc_usec(2024, 2, 29, 23, 59, 59));
        /* Before the epoch in UTC. */
        l = local_of(1969, 12, 31, 23, 0, 0);
        ASSERT_EQ(tz_from_local(&z, &l, TZ_EARLIEST, &usec, NULL), -ERANGE);
}

/* Every hour of a year round-trips: local time back to the same instant
 * (TZ_LATEST for the second pass through an overlap). */
static void test_round_trip(void) {
        const char *names[] = { "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata" };

        for (size_t n = 0; n < ELEMENTSOF(names); n++) {
                struct tz_zone z = zone(names[n]);
                struct tz_scope s;
                ASSERT_OK(tz_scope_enter(&s, &z));
                for (int64_t t = utc(2026, 1, 1, 0, 0, 0); t < utc(2027, 1, 1, 0, 0, 0); t += 1800) {
                        int64_t local, back_first, back_last;
                        unsigned flags;
                        ASSERT_OK(tz_scope_local_seconds(&s, t, &local));
                        ASSERT_OK(tz_scope_resolve(&s, local, TZ_EARLIEST, &back_first, &flags));
                        ASSERT_OK(tz_scope_resolve(&s, local, TZ_LATEST, &back_last, NULL));
                        ASSERT_TRUE(!(flags & TZ_RESOLVED_GAP));
                        ASSERT_TRUE(back_first == t || back_last == t);
                        ASSERT_EQ(back_first != back_last, !!(flags & TZ_RESOLVED_OVERLAP));
                }
                tz_scope_leave(&s);
        }
}

static void test_tz_restored(void) {
        struct tz_zone z = zone("Europe/Berlin");
        struct tz_local l;
        struct tm tm;
        time_t t = (time_t) utc(2026, 7, 1, 12, 0, 0);

        ASSERT_OK(setenv("TZ", ":Asia/Tokyo", 1));
        tzset();
        ASSERT_OK(tz_to_local(&z, (uint64_t) t * TZ_USEC_PER_SEC, &l));
        ASSERT_EQ(l.hour, 14);
        ASSERT_STREQ(getenv("TZ"), ":Asia/Tokyo");
        ASSERT_TRUE(localtime_r(&t, &tm));
        ASSERT_EQ(tm.tm_hour, 21);   /* Tokyo's rules are back */

        ASSERT_OK(unsetenv("TZ"));
        tzset();
        ASSERT_OK(tz_to_local(&z, (uint64_t) t * TZ_USEC_PER_SEC, &l));
        ASSERT_TRUE(getenv("TZ") == NULL);
}

static void test_calendar(void) {
        int y, m, d;

        ASSERT_EQ(tz_days_from_civil(1970, 1, 1), 0);
        ASSERT_EQ(tz_days_from_civil(2000, 3, 1), 11017);
        ASSERT_EQ(tz_days_from_civil(1969, 12, 31), -1);
        ASSERT_EQ(tz_weekday_from_days(0), 3);     /* Thursday */
        ASSERT_EQ(tz_weekday_from_days(-1), 2);
        ASSERT_EQ(tz_days_in_month(2000, 2), 29);
        ASSERT_EQ(tz_days_in_month(2100, 2), 28);
        ASSERT_EQ(tz_days_in_month(2024, 13), 0);
        ASSERT_EQ(tz_day_of_local_seconds(-1), -1);
        ASSERT_EQ(tz_day_of_local_seconds(86399), 0);
        for (int64_t days = -1000; days < 3000000; days += 97) {
                tz_civil_from_days(days, &y, &m, &d);
                ASSERT_EQ(tz_days_from_civil(y, m, d), days);
                ASSERT_EQ(utc(y, m, d, 0, 0, 0), days * 86400);
        }
}

TEST_MAIN(TEST(test_zone_names), TEST(test_to_local_berlin), TEST(test_weekday), TEST(test_gap_berlin),
          TEST(test_overlap_berlin), TEST(test_new_york), TEST(test_far_future), TEST(test_past),
          TEST(test_ranges), TEST(test_round_trip), TEST(test_tz_restored), TEST(test_calendar))
