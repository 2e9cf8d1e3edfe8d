/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Time zone arithmetic on the C library's tz database (tz.h): TZ is
 * switched around localtime_r() here and nowhere else in smpgwd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tz.h"
#include "util.h"

#define SECONDS_PER_DAY INT64_C(86400)
/* The local time's instants are searched among the offsets in force
 * within ±SEARCH_SPAN of it (no zone is 26 h away from UTC), sampled
 * every SEARCH_STEP. */
#define SEARCH_SPAN (27 * INT64_C(3600))
#define SEARCH_STEP (3 * INT64_C(3600))
#define OFFSETS_MAX (2 * (SEARCH_SPAN / SEARCH_STEP) + 1)

/* ---- zone names ---- */

/* *ret_reason = the sentence, when the caller wants one. */
static void reason_set(char **ret_reason, const char *fmt, ...) _printf_(2, 3);
static void reason_set(char **ret_reason, const char *fmt, ...) {
        va_list ap;

        if (!ret_reason)
                return;
        va_start(ap, fmt);
        if (vasprintf(ret_reason, fmt, ap) < 0)
                *ret_reason = NULL;
        va_end(ap);
}

static bool zone_char_ok(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
               c == '_' || c == '-' || c == '+' || c == '.';
}

/* The name's grammar (tz.h): a sentence for what is wrong, or NULL. */
static const char *zone_name_problem(const char *name) {
        size_t len = strlen(name);

        if (len == 0)
                return "the time zone name is empty";
        if (len > TZ_NAME_MAX)
                return "the time zone name is longer than 64 bytes";
        for (size_t i = 0; i < len; i++)
                if (!zone_char_ok(name[i]))
                        return "a time zone name is letters, digits and '/', '_', '-', '+', '.' only";
        if (name[0] == '/')
                return "a time zone name is relative to " TZ_ZONEINFO_DIR ", not an absolute path";
        for (const char *p = name; *p;) {
                size_t n = strcspn(p, "/");
                if (n == 0)
                        return "a time zone name has no empty parts ('//' or a final '/')";
                if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
                        return "a time zone name has no '.' or '..' parts";
                p += n;
                if (*p == '/' && *++p == '\0')
                        return "a time zone name has no empty parts ('//' or a final '/')";
        }
        if (strncmp(name, "right/", 6) == 0)
                return "the right/ zones count leap seconds, which the system clock does not: "
                       "use the zone without right/";
        return NULL;
}

/* The file starts with "TZif" and a version byte (RFC 8536, 3.1). */
static int zone_file_check(const char *path) {
        _cleanup_close_ int fd = -1;
        unsigned char head[5];
        struct stat st;
        ssize_t n;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EBADMSG;
        n = read(fd, head, sizeof(head));
        if (n < 0)
                return -errno;
        if (n != (ssize_t) sizeof(head) || memcmp(head, "TZif", 4) != 0)
                return -EBADMSG;
        if (head[4] != 0 && (head[4] < '2' || head[4] > '4'))
                return -EBADMSG;
        return 0;
}

int tz_zone_load(const char *name, struct tz_zone *ret, char **ret_reason) {
        struct tz_zone zone = {};
        const char *problem;
        int r;

        if (ret_reason)
                *ret_reason = NULL;
        problem = zone_name_problem(name);
        if (problem) {
                reason_set(ret_reason, "%s", problem);
                return -EINVAL;
        }
        /* Both fit: the name is at most TZ_NAME_MAX bytes. */
        memcpy(zone.name, name, strlen(name) + 1);
        snprintf(zone.path, sizeof(zone.path), "%s/%s", TZ_ZONEINFO_DIR, name);

        r = zone_file_check(zone.path);
        if (r == -ENOENT || r == -ENOTDIR || r == -EISDIR) {
                reason_set(ret_reason, "unknown time zone '%s' (there is no file %s)", name, zone.path);
                return -ENOENT;
        }
        if (r == -EBADMSG) {
                reason_set(ret_reason, "%s is not a time zone (TZif) file", zone.path);
                return r;
        }
        if (r < 0) {
                reason_set(ret_reason, "cannot read %s: %s", zone.path, strerror(-r));
                return r;
        }
        *ret = zone;
        return 0;
}

/* ---- switching TZ ---- */

int tz_scope_enter(struct tz_scope *ret, const struct tz_zone *zone) {
        char value[sizeof(zone->path) + 1];
        const char *old = getenv("TZ");
        struct tz_scope s = { .zone = zone };

        if (old) {
                s.saved_tz = strdup(old);
                if (!s.saved_tz)
                        return -ENOMEM;
        }
        /* ':' and an absolute path: glibc reads exactly the file that
         * tz_zone_load() checked, whatever $TZDIR says. */
        snprintf(value, sizeof(value), ":%s", zone->path);
        if (setenv("TZ", value, 1) < 0) {
                free(s.saved_tz);
                return -errno;
        }
        /* localtime_r() need not look at TZ again (glibc's does not). */
        tzset();
        s.active = true;
        *ret = s;
        return 0;
}

void tz_scope_leave(struct tz_scope *s) {
        if (!s || !s->active)
                return;
        if (s->saved_tz)
                (void) setenv("TZ", s->saved_tz, 1);
        else
                (void) unsetenv("TZ");
        tzset();
        free(s->saved_tz);
        s->saved_tz = NULL;
        s->active = false;
}

/* ---- conversions ---- */

static int localtime_at(int64_t seconds, struct tm *ret) {
        time_t t = (time_t) seconds;

        if ((int64_t) t != seconds || !localtime_r(&t, ret))
                return -EOVERFLOW;
        return 0;
}

static int offset_at(int64_t seconds, int32_t *ret) {
        struct tm tm;
        int r = localtime_at(seconds, &tm);

        if (r < 0)
                return r;
        *ret = (int32_t) tm.tm_gmtoff;
        return 0;
}

int tz_scope_to_local(const struct tz_scope *s, int64_t seconds, struct tz_local *ret) {
        struct tm tm;
        int r;

        if (!s->active)
                return -EINVAL;
        if (seconds < 0 || seconds > TZ_SECONDS_MAX)
                return -ERANGE;
        r = localtime_at(seconds, &tm);
        if (r < 0)
                return r;
        *ret = (struct tz_local) {
                .year = tm.tm_year + 1900,
                .month = tm.tm_mon + 1,
                .day = tm.tm_mday,
                .hour = tm.tm_hour,
                .minute = tm.tm_min,
                .second = tm.tm_sec,
                .weekday = (tm.tm_wday + 6) % 7,
                .utc_offset_s = (int32_t) tm.tm_gmtoff,
                .dst = tm.tm_isdst > 0,
        };
        return 0;
}

int tz_scope_local_seconds(const struct tz_scope *s, int64_t seconds, int64_t *ret) {
        int32_t off;
        int r;

        if (!s->active)
                return -EINVAL;
        if (seconds < 0 || seconds > TZ_SECONDS_MAX)
                return -ERANGE;
        r = offset_at(seconds, &off);
        if (r < 0)
                return r;
        *ret = seconds + off;
        return 0;
}

/* The distinct offsets in force within ±SEARCH_SPAN of local seconds L
 * (read as an instant: the true instant is within 26 h of it). */
static int offsets_near(int64_t local, int32_t offsets[static OFFSETS_MAX], size_t *ret_n) {
        size_t n = 0;

        for (int64_t d = -SEARCH_SPAN; d <= SEARCH_SPAN; d += SEARCH_STEP) {
                int32_t off;
                bool seen = false;
                int r = offset_at(local + d, &off);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < n; i++)
                        seen = seen || offsets[i] == off;
                if (!seen)
                        offsets[n++] = off;
        }
        *ret_n = n;
        return 0;
}

/* The first instant in (lo, hi] whose local seconds reach local; the wall
 * clock is monotonic there (a gap, no overlap, lies between lo and hi). */
static int gap_end(int64_t local, int64_t lo, int64_t hi, int64_t *ret) {
        while (hi - lo > 1) {
                int64_t mid = lo + (hi - lo) / 2;
                int32_t off;
                int r = offset_at(mid, &off);
                if (r < 0)
                        return r;
                if (mid + off >= local)
                        hi = mid;
                else
                        lo = mid;
        }
        *ret = hi;
        return 0;
}

/* A local time that no instant shows: the instants each candidate offset
 * gives fall on both sides of the jump; search between the nearest two. */
static int resolve_gap(int64_t local, const int32_t *offsets, size_t n, int64_t *ret) {
        int64_t lo = INT64_MIN, hi = INT64_MAX;

        for (size_t i = 0; i < n; i++) {
                int64_t t = local - offsets[i];
                int32_t off;
                int r = offset_at(t, &off);
                if (r < 0)
                        return r;
                if (t + off < local)
                        lo = MAX(lo, t);
                else
                        hi = MIN(hi, t);
        }
        if (lo == INT64_MIN || hi == INT64_MAX || lo >= hi)
                return -EOVERFLOW;
        return gap_end(local, lo, hi, ret);
}

int tz_scope_resolve(const struct tz_scope *s, int64_t local_seconds, enum tz_pick pick, int64_t *ret,
                     unsigned *ret_flags) {
        int32_t offsets[OFFSETS_MAX];
        int64_t first = INT64_MAX, last = INT64_MIN, t;
        size_t n, n_valid = 0;
        unsigned flags = 0;
        int r;

        if (!s->active)
                return -EINVAL;
        /* Far enough inside time_t that the search cannot overflow. */
        if (local_seconds < -2 * SECONDS_PER_DAY || local_seconds > TZ_SECONDS_MAX + 2 * SECONDS_PER_DAY)
                return -ERANGE;
        r = offsets_near(local_seconds, offsets, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                int32_t off;
                t = local_seconds - offsets[i];
                r = offset_at(t, &off);
                if (r < 0)
                        return r;
                if (off != offsets[i])
                        continue;
                n_valid++;
                first = MIN(first, t);
                last = MAX(last, t);
        }
        if (n_valid == 0) {
                r = resolve_gap(local_seconds, offsets, n, &t);
                if (r < 0)
                        return r;
                flags |= TZ_RESOLVED_GAP;
        } else {
                t = pick == TZ_LATEST ? last : first;
                if (first != last)
                        flags |= TZ_RESOLVED_OVERLAP;
        }
        if (t < 0 || t > TZ_SECONDS_MAX)
                return -ERANGE;
        *ret = t;
        if (ret_flags)
                *ret_flags = flags;
        return 0;
}

int tz_to_local(const struct tz_zone *zone, uint64_t usec, struct tz_local *ret) {
        struct tz_scope s;
        int r;

        if (usec > TZ_USEC_MAX)
                return -ERANGE;
        r = tz_scope_enter(&s, zone);
        if (r < 0)
                return r;
        r = tz_scope_to_local(&s, (int64_t) (usec / TZ_USEC_PER_SEC), ret);
        tz_scope_leave(&s);
        return r;
}

static bool local_fields_ok(const struct tz_local *l) {
        return l->year >= 1969 && l->year <= 10000 && l->month >= 1 && l->month <= 12 && l->day >= 1 &&
               l->day <= tz_days_in_month(l->year, l->month) && l->hour >= 0 && l->hour <= 23 &&
               l->minute >= 0 && l->minute <= 59 && l->second >= 0 && l->second <= 59;
}

int tz_from_local(const struct tz_zone *zone, const struct tz_local *local, enum tz_pick pick, uint64_t *ret_usec,
                  unsigned *ret_flags) {
        struct tz_scope s;
        int64_t local_seconds, t;
        int r;

        if (!local_fields_ok(local))
                return -EINVAL;
        local_seconds = tz_days_from_civil(local->year, local->month, local->day) * SECONDS_PER_DAY +
                        local->hour * 3600 + local->minute * 60 + local->second;
        r = tz_scope_enter(&s, zone);
        if (r < 0)
                return r;
        r = tz_scope_resolve(&s, local_seconds, pick, &t, ret_flags);
        tz_scope_leave(&s);
        if (r < 0)
                return r;
        *ret_usec = (uint64_t) t * TZ_USEC_PER_SEC;
        return 0;
}

/* ---- calendar ---- */

/* Howard Hinnant's days_from_civil: eras of 400 years, March-based years
 * so the leap day ends the year. */
int64_t tz_days_from_civil(int year, int month, int day) {
        int64_t y = (int64_t) year - (month <= 2);
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        int64_t yoe = y - era * 400;
        int64_t doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
        int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

        return era * 146097 + doe - 719468;
}

void tz_civil_from_days(int64_t days, int *ret_year, int *ret_month, int *ret_day) {
        int64_t z = days + 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        int64_t doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int64_t mp = (5 * doy + 2) / 153;
        int64_t d = doy - (153 * mp + 2) / 5 + 1;
        int64_t m = mp < 10 ? mp + 3 : mp - 9;

        *ret_year = (int) (yoe + era * 400 + (m <= 2));
        *ret_month = (int) m;
        *ret_day = (int) d;
}

int tz_weekday_from_days(int64_t days) {
        /* 1970-01-01 was a Thursday (3). */
        int64_t w = (days + 3) % 7;
        return (int) (w < 0 ? w + 7 : w);
}

int tz_days_in_month(int year, int month) {
        static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

        if (month < 1 || month > 12)
                return 0;
        return days[month - 1] + (month == 2 && leap);
}

int64_t tz_day_of_local_seconds(int64_t local_seconds) {
        int64_t d = local_seconds / SECONDS_PER_DAY;
        return local_seconds % SECONDS_PER_DAY < 0 ? d - 1 : d;
}
