/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Local time in a named IANA time zone ("Europe/Berlin"), with the C
 * library's time zone database: no rule of any zone is written here.
 *
 * glibc has no per-call zone API (no localtime_z), so a zone's rules are
 * switched in by setting TZ=":/usr/share/zoneinfo/NAME" and calling
 * tzset(), and TZ is put back as it was afterwards.  This is the ONLY
 * code in smpgwd that touches TZ; it is safe because smpgwd runs one
 * thread, and nothing between tz_scope_enter() and tz_scope_leave()
 * yields to the event loop.  (glibc keeps every distinct TZ string it
 * was ever given, so the memory this costs is one string per zone used.)
 *
 * Times are CLOCK_REALTIME: µs (or seconds) since 1970-01-01T00:00:00Z,
 * leap seconds not counted, from 0 to TZ_USEC_MAX (9999-12-31T23:59:59Z).
 * A local time is resolved to seconds; the µs below a second are cut.
 *
 * Local times that do not exist or exist twice (daylight saving time):
 *
 *   gap      the clocks jump forward (Europe/Berlin, last Sunday of March,
 *            02:00 CET → 03:00 CEST): 02:30 never shows on a clock.  It
 *            resolves to the first instant whose local time is later,
 *            which is the instant of the jump (01:00 UTC, 03:00 CEST),
 *            whichever occurrence is asked for.
 *   overlap  the clocks go back (last Sunday of October, 03:00 CEST →
 *            02:00 CET): 02:30 shows twice, at 00:30 UTC (CEST) and at
 *            01:30 UTC (CET).  TZ_EARLIEST picks the first, TZ_LATEST the
 *            second.
 *
 * A maintenance window uses TZ_EARLIEST for its start and TZ_LATEST for
 * its end, so every instant whose wall clock reads inside the window is
 * inside it: the window never gets shorter on a switch day, and it gets
 * the repeated hour when the clocks go back (rollout-window.h).
 *
 * The offset of an instant is found with localtime_r(); the instants of a
 * local time are searched among the offsets in force from 27 hours before
 * to 27 hours after it (sampled every 3 hours), so zone transitions less
 * than 3 hours apart are not told apart (the tz database has none since
 * 1970 that matter here).  mktime() is not used: what it does in a gap
 * is unspecified, and glibc's answer depends on tm_isdst.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define TZ_ZONEINFO_DIR "/usr/share/zoneinfo"
/* The longest zone name accepted; the tz database's longest is 32 bytes. */
#define TZ_NAME_MAX 64u
/* 9999-12-31T23:59:59Z: times past it are refused with -ERANGE. */
#define TZ_SECONDS_MAX INT64_C(253402300799)
#define TZ_USEC_MAX ((uint64_t) TZ_SECONDS_MAX * UINT64_C(1000000) + UINT64_C(999999))
#define TZ_USEC_PER_SEC UINT64_C(1000000)

/* A zone that tz_zone_load() checked: its name and its TZif file. */
struct tz_zone {
        char name[TZ_NAME_MAX + 1];
        char path[sizeof(TZ_ZONEINFO_DIR) + 1 + TZ_NAME_MAX + 1];
};

/* A wall-clock time.  For conversions into seconds only year..second are
 * read; weekday, utc_offset_s and dst are outputs. */
struct tz_local {
        int year;             /* 1969..10000 (west of UTC at the epoch, east of it at the end) */
        int month;            /* 1..12 */
        int day;              /* 1..31 */
        int hour;             /* 0..23 */
        int minute;           /* 0..59 */
        int second;           /* 0..59 */
        int weekday;          /* 0 Monday .. 6 Sunday */
        int32_t utc_offset_s; /* local minus UTC */
        bool dst;
};

/* Which instant of a local time that exists twice. */
enum tz_pick {
        TZ_EARLIEST,
        TZ_LATEST,
};

/* What tz_*_resolve() found about the local time it was given. */
enum {
        TZ_RESOLVED_GAP = 1u << 0,     /* it does not exist: the jump's instant was returned */
        TZ_RESOLVED_OVERLAP = 1u << 1, /* it exists twice */
};

/* Checks a zone name and loads nothing yet: the name must be letters,
 * digits and '/', '_', '-', '+', '.', relative, without empty, "." or ".."
 * components, not under "right/" (those zones count leap seconds, which
 * CLOCK_REALTIME does not), at most TZ_NAME_MAX bytes, and
 * TZ_ZONEINFO_DIR/NAME must be a regular file that starts as a TZif file
 * does.  Errors, with a sentence in *ret_reason (malloc()ed, may be NULL;
 * lower case, no final period, made to follow "bad time zone: "):
 * -EINVAL a name that breaks the rules, -ENOENT no such zone, -EBADMSG the
 * file is no TZif file; or another -errno of open/read. */
int tz_zone_load(const char *name, struct tz_zone *ret, char **ret_reason);

/* The zone's rules in force for a stretch of conversions.  Scopes nest
 * (leave in the reverse order).  Between enter and leave, local time in
 * the whole process is the zone's: do nothing else there. */
struct tz_scope {
        const struct tz_zone *zone;   /* borrowed */
        char *saved_tz;               /* TZ before enter (owned), NULL when unset */
        bool active;
};

/* Sets TZ to the zone and calls tzset().  -ENOMEM. */
int tz_scope_enter(struct tz_scope *ret, const struct tz_zone *zone);
/* Puts TZ back as it was and calls tzset().  NULL-safe, idempotent. */
void tz_scope_leave(struct tz_scope *s);

/* Seconds since the epoch → wall-clock time.  -ERANGE outside
 * 0..TZ_SECONDS_MAX, -EOVERFLOW when the C library cannot convert it. */
int tz_scope_to_local(const struct tz_scope *s, int64_t seconds, struct tz_local *ret);
/* The "local seconds" of an instant: the wall clock's reading counted as
 * if it were UTC (seconds + UTC offset), so local dates are plain
 * arithmetic (tz_days_from_civil()). */
int tz_scope_local_seconds(const struct tz_scope *s, int64_t seconds, int64_t *ret);
/* Local seconds → the instant (see the header comment for gaps and
 * overlaps).  *ret_flags (may be NULL) gets TZ_RESOLVED_*.  -ERANGE when
 * the answer is outside 0..TZ_SECONDS_MAX, -EOVERFLOW as above. */
int tz_scope_resolve(const struct tz_scope *s, int64_t local_seconds, enum tz_pick pick, int64_t *ret,
                     unsigned *ret_flags);

/* One-shot forms: enter, convert, leave. */
int tz_to_local(const struct tz_zone *zone, uint64_t usec, struct tz_local *ret);
/* -EINVAL when a field of local is out of its range (or the day is not in
 * the month). */
int tz_from_local(const struct tz_zone *zone, const struct tz_local *local, enum tz_pick pick, uint64_t *ret_usec,
                  unsigned *ret_flags);

/* ---- calendar arithmetic (proleptic Gregorian, no zone) ---- */

/* Days since 1970-01-01 of a date; month 1..12, day 1..31 (not checked). */
int64_t tz_days_from_civil(int year, int month, int day);
/* The date of a day number. */
void tz_civil_from_days(int64_t days, int *ret_year, int *ret_month, int *ret_day);
/* 0 Monday .. 6 Sunday. */
int tz_weekday_from_days(int64_t days);
/* 28..31; 0 for a month outside 1..12. */
int tz_days_in_month(int year, int month);
/* Floor division of local seconds into a day number. */
int64_t tz_day_of_local_seconds(int64_t local_seconds);
