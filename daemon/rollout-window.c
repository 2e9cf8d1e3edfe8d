/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Maintenance windows (rollout-window.h): the two spellings, and where an
 * instant stands, worked out as concrete stretches of time over the
 * local days around it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rollout-window.h"
#include "util.h"

#define MINUTES_PER_DAY 1440u
#define SECONDS_PER_DAY INT64_C(86400)
/* The local days whose windows are worked out around an instant on day
 * D: D-1 (a window across midnight) to D+HORIZON_DAYS.  Two weeks after
 * D, so a window that a jump forward swallowed opens the week after. */
#define HORIZON_DAYS 15
#define SPANS_MAX ((HORIZON_DAYS + 2) * ROLLOUT_WINDOWS_MAX)

static const char *const day_names[7] = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" };

static void reason_set(char **ret_reason, const char *fmt, ...) _printf_(2, 3);
static void reason_set(char **ret_reason, const char *fmt, ...) {
        va_list ap;

        if (!ret_reason)
                return;
        free(*ret_reason);
        va_start(ap, fmt);
        if (vasprintf(ret_reason, fmt, ap) < 0)
                *ret_reason = NULL;
        va_end(ap);
}

/* Printable ASCII only: what is quoted in a sentence is safe to show. */
static bool text_printable(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (s[i] < 0x20 || s[i] > 0x7e)
                        return false;
        return true;
}

/* ---- the compact form ---- */

/* "mon".."sun" in any case, of exactly len bytes: 0..6, or -EINVAL. */
static int day_from_name(const char *s, size_t len) {
        if (len != 3)
                return -EINVAL;
        for (int i = 0; i < 7; i++)
                if (strncasecmp(s, day_names[i], 3) == 0)
                        return i;
        return -EINVAL;
}

static int day_parse(const char *s, size_t len, int *ret, char **ret_reason) {
        int d = day_from_name(s, len);

        if (d < 0) {
                reason_set(ret_reason, "day '%.*s' is not one of mon, tue, wed, thu, fri, sat, sun", (int) len, s);
                return -EINVAL;
        }
        *ret = d;
        return 0;
}

/* "day" or "day-day" (running forward through the week, wrapping). */
static int dayspec_parse(const char *s, size_t len, uint8_t *days, char **ret_reason) {
        const char *dash = memchr(s, '-', len);
        int first, last, r;

        if (len == 0) {
                reason_set(ret_reason, "an empty day in the list of days (two commas, or a comma at an end)");
                return -EINVAL;
        }
        r = day_parse(s, dash ? (size_t) (dash - s) : len, &first, ret_reason);
        if (r < 0)
                return r;
        if (!dash) {
                *days |= (uint8_t) (1u << first);
                return 0;
        }
        r = day_parse(dash + 1, len - (size_t) (dash - s) - 1, &last, ret_reason);
        if (r < 0)
                return r;
        for (int d = first;; d = (d + 1) % 7) {
                *days |= (uint8_t) (1u << d);
                if (d == last)
                        break;
        }
        return 0;
}

static int days_parse(const char *s, size_t len, uint8_t *ret, char **ret_reason) {
        uint8_t days = 0;

        for (size_t i = 0; i <= len;) {
                const char *comma = memchr(s + i, ',', len - i);
                size_t n = comma ? (size_t) (comma - (s + i)) : len - i;
                int r = dayspec_parse(s + i, n, &days, ret_reason);
                if (r < 0)
                        return r;
                i += n + 1;
        }
        *ret = days;
        return 0;
}

/* "HH:MM" of exactly len bytes into minutes; 24:00 (1440) only when
 * is_end. */
static int time_parse(const char *s, size_t len, bool is_end, uint16_t *ret, char **ret_reason) {
        unsigned h, m;

        if (len != 5 || s[2] != ':' || s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' || s[3] < '0' ||
            s[3] > '9' || s[4] < '0' || s[4] > '9') {
                reason_set(ret_reason, "time '%.*s' is not HH:MM", (int) len, s);
                return -EINVAL;
        }
        h = (unsigned) (s[0] - '0') * 10 + (unsigned) (s[1] - '0');
        m = (unsigned) (s[3] - '0') * 10 + (unsigned) (s[4] - '0');
        if (h == 24 && m == 0 && is_end) {
                *ret = (uint16_t) MINUTES_PER_DAY;
                return 0;
        }
        if (h == 24 && m == 0) {
                reason_set(ret_reason,
                           "'24:00' can only end a window; a window that starts at midnight starts at '00:00'");
                return -EINVAL;
        }
        if (h > 23 || m > 59) {
                reason_set(ret_reason, "time '%.*s' is out of range (00:00 to 23:59, or 24:00 as the end)", (int) len,
                           s);
                return -EINVAL;
        }
        *ret = (uint16_t) (h * 60 + m);
        return 0;
}

/* "HH:MM-HH:MM". */
static int times_parse(const char *s, size_t len, struct rollout_window *w, char **ret_reason) {
        const char *dash = memchr(s, '-', len);
        int r;

        if (!dash) {
                reason_set(ret_reason, "'%.*s' is not a time range HH:MM-HH:MM", (int) len, s);
                return -EINVAL;
        }
        r = time_parse(s, (size_t) (dash - s), false, &w->from_min, ret_reason);
        if (r < 0)
                return r;
        return time_parse(dash + 1, len - (size_t) (dash - s) - 1, true, &w->to_min, ret_reason);
}

int rollout_window_parse(const char *text, struct rollout_window *ret, char **ret_reason) {
        struct rollout_window w = { .days = ROLLOUT_DAYS_ALL };
        size_t len = strlen(text), start = 0, end, times_at;
        int r;

        if (ret_reason)
                *ret_reason = NULL;
        if (len > ROLLOUT_WINDOW_TEXT_MAX) {
                reason_set(ret_reason, "a window is at most %u characters", ROLLOUT_WINDOW_TEXT_MAX);
                return -EINVAL;
        }
        if (!text_printable(text, len)) {
                reason_set(ret_reason, "a window is printable ASCII (a control or non-ASCII character was found)");
                return -EINVAL;
        }
        while (start < len && text[start] == ' ')
                start++;
        end = len;
        while (end > start && text[end - 1] == ' ')
                end--;
        if (start == end) {
                reason_set(ret_reason, "the window is empty (expected e.g. 'mon-fri 02:00-04:00')");
                return -EINVAL;
        }
        /* The times are the last word; the days, if any, the one before. */
        times_at = end;
        while (times_at > start && text[times_at - 1] != ' ')
                times_at--;
        if (times_at > start) {
                size_t days_end = times_at;
                while (text[days_end - 1] == ' ')
                        days_end--;
                if (memchr(text + start, ' ', days_end - start)) {
                        reason_set(ret_reason,
                                   "'%.*s' is not a list of days: days are written without spaces "
                                   "('sat,sun', 'mon-fri')",
                                   (int) (days_end - start), text + start);
                        return -EINVAL;
                }
                r = days_parse(text + start, days_end - start, &w.days, ret_reason);
                if (r < 0)
                        return r;
        }
        r = times_parse(text + times_at, end - times_at, &w, ret_reason);
        if (r < 0)
                return r;
        *ret = w;
        return 0;
}

/* Days as "mon,wed-fri": runs of three or more as ranges. */
static int days_format(uint8_t days, char *buf, size_t size) {
        size_t n = 0;

        buf[0] = '\0';
        for (int d = 0; d < 7;) {
                int last = d;
                if (!(days & (1u << d))) {
                        d++;
                        continue;
                }
                while (last + 1 < 7 && (days & (1u << (last + 1))))
                        last++;
                for (int k = d; k <= last; k++) {
                        bool range = last - d >= 2;
                        int w;
                        if (range && k != d && k != last)
                                continue;
                        w = snprintf(buf + n, size - n, "%s%s", n == 0 ? "" : (range && k == last) ? "-" : ",",
                                     day_names[k]);
                        if (w < 0 || (size_t) w >= size - n)
                                return -ENOBUFS;
                        n += (size_t) w;
                }
                d = last + 1;
        }
        return (int) n;
}

int rollout_window_format(const struct rollout_window *w, char *buf, size_t size) {
        char days[32];
        int r, n;

        r = days_format(w->days, days, sizeof(days));
        if (r < 0)
                return r;
        n = snprintf(buf, size, "%s%s%02u:%02u-%02u:%02u", w->days == ROLLOUT_DAYS_ALL ? "" : days,
                     w->days == ROLLOUT_DAYS_ALL ? "" : " ", w->from_min / 60u, w->from_min % 60u,
                     w->to_min / 60u, w->to_min % 60u);
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        return n;
}

/* ---- JSON ---- */

static int json_days_parse(const json_t *days, uint8_t *ret, char **ret_reason) {
        uint8_t mask = 0;
        size_t i;
        json_t *v;

        if (!json_is_array(days)) {
                reason_set(ret_reason, "\"days\" is not a list of day names");
                return -EINVAL;
        }
        if (json_array_size(days) == 0) {
                reason_set(ret_reason, "\"days\" is empty (leave it out for every day)");
                return -EINVAL;
        }
        json_array_foreach(days, i, v) {
                const char *s = json_string_value(v);
                int d;
                if (!s || !text_printable(s, strlen(s)) || strlen(s) > 16) {
                        reason_set(ret_reason, "\"days\" item %zu is not one of mon, tue, wed, thu, fri, sat, sun",
                                   i + 1);
                        return -EINVAL;
                }
                d = day_from_name(s, strlen(s));
                if (d < 0) {
                        reason_set(ret_reason, "day '%s' is not one of mon, tue, wed, thu, fri, sat, sun", s);
                        return -EINVAL;
                }
                mask |= (uint8_t) (1u << d);
        }
        *ret = mask;
        return 0;
}

static int json_time_parse(const json_t *obj, const char *key, bool is_end, uint16_t *ret, char **ret_reason) {
        const json_t *v = json_object_get(obj, key);
        const char *s = json_string_value(v);

        if (!v) {
                reason_set(ret_reason, "\"%s\" is missing", key);
                return -EINVAL;
        }
        if (!s || strlen(s) > 16 || !text_printable(s, strlen(s))) {
                reason_set(ret_reason, "\"%s\" is not a time \"HH:MM\"", key);
                return -EINVAL;
        }
        return time_parse(s, strlen(s), is_end, ret, ret_reason);
}

int rollout_window_from_json(const json_t *obj, struct rollout_window *ret, char **ret_reason) {
        struct rollout_window w = { .days = ROLLOUT_DAYS_ALL };
        const char *key;
        json_t *v;
        int r;

        if (ret_reason)
                *ret_reason = NULL;
        if (!json_is_object(obj)) {
                reason_set(ret_reason,
                           "a window is an object {\"days\": [...], \"from\": \"HH:MM\", \"to\": \"HH:MM\"}");
                return -EINVAL;
        }
        json_object_foreach((json_t *) obj, key, v) {
                if (streq(key, "days") || streq(key, "from") || streq(key, "to"))
                        continue;
                if (strlen(key) <= 32 && text_printable(key, strlen(key)))
                        reason_set(ret_reason, "unknown key '%s' (a window has days, from, to)", key);
                else
                        reason_set(ret_reason, "an unknown key (a window has days, from, to)");
                return -EINVAL;
        }
        v = json_object_get(obj, "days");
        if (v) {
                r = json_days_parse(v, &w.days, ret_reason);
                if (r < 0)
                        return r;
        }
        r = json_time_parse(obj, "from", false, &w.from_min, ret_reason);
        if (r < 0)
                return r;
        r = json_time_parse(obj, "to", true, &w.to_min, ret_reason);
        if (r < 0)
                return r;
        *ret = w;
        return 0;
}

int rollout_windows_from_json(const json_t *array, struct rollout_windows *ret, char **ret_reason) {
        struct rollout_windows ws = {};
        size_t i;
        json_t *v;

        if (ret_reason)
                *ret_reason = NULL;
        if (!array || json_is_null(array)) {
                *ret = ws;
                return 0;
        }
        if (!json_is_array(array)) {
                reason_set(ret_reason, "windows are a list of {\"days\", \"from\", \"to\"} objects");
                return -EINVAL;
        }
        if (json_array_size(array) > ROLLOUT_WINDOWS_MAX) {
                reason_set(ret_reason, "%zu windows given, at most %u are allowed", json_array_size(array),
                           ROLLOUT_WINDOWS_MAX);
                return -E2BIG;
        }
        json_array_foreach(array, i, v) {
                _cleanup_free_ char *why = NULL;
                int r = rollout_window_from_json(v, &ws.w[ws.n], &why);
                if (r < 0) {
                        reason_set(ret_reason, "window %zu: %s", i + 1, why ? why : "invalid");
                        return r;
                }
                ws.n++;
        }
        *ret = ws;
        return 0;
}

static json_t *window_to_json(const struct rollout_window *w) {
        char from[8], to[8];
        json_t *days = json_array(), *obj;

        if (!days)
                return NULL;
        for (int d = 0; d < 7; d++)
                if ((w->days & (1u << d)) && json_array_append_new(days, json_string(day_names[d])) < 0) {
                        json_decref(days);
                        return NULL;
                }
        snprintf(from, sizeof(from), "%02u:%02u", w->from_min / 60u, w->from_min % 60u);
        snprintf(to, sizeof(to), "%02u:%02u", w->to_min / 60u, w->to_min % 60u);
        obj = json_pack("{s:o, s:s, s:s}", "days", days, "from", from, "to", to);
        return obj;
}

json_t *rollout_windows_to_json(const struct rollout_windows *ws) {
        json_t *array = json_array();

        if (!array)
                return NULL;
        for (size_t i = 0; i < ws->n; i++)
                if (json_array_append_new(array, window_to_json(&ws->w[i])) < 0) {
                        json_decref(array);
                        return NULL;
                }
        return array;
}

int rollout_windows_add(struct rollout_windows *ws, const struct rollout_window *w) {
        if (ws->n >= ROLLOUT_WINDOWS_MAX)
                return -E2BIG;
        ws->w[ws->n++] = *w;
        return 0;
}

/* ---- where an instant stands ---- */

/* A stretch of time, seconds since the epoch: [open, close). */
struct span {
        int64_t open, close;
};

/* The stretches of the windows that open on local day `day`. */
static int day_spans(const struct rollout_windows *ws, const struct tz_scope *s, int64_t day, struct span *out,
                     size_t *n) {
        int weekday = tz_weekday_from_days(day);

        for (size_t i = 0; i < ws->n; i++) {
                const struct rollout_window *w = &ws->w[i];
                int64_t close_day = w->to_min <= w->from_min ? day + 1 : day;
                struct span sp;
                int r;

                if (!(w->days & (1u << weekday)))
                        continue;
                r = tz_scope_resolve(s, day * SECONDS_PER_DAY + w->from_min * 60, TZ_EARLIEST, &sp.open, NULL);
                if (r < 0)
                        return r;
                r = tz_scope_resolve(s, close_day * SECONDS_PER_DAY + w->to_min * 60, TZ_LATEST, &sp.close, NULL);
                if (r < 0)
                        return r;
                if (sp.open < sp.close)
                        out[(*n)++] = sp;
        }
        return 0;
}

static int span_compare(const void *a, const void *b) {
        const struct span *x = a, *y = b;
        return x->open < y->open ? -1 : x->open > y->open;
}

/* Sorts and joins stretches that overlap or touch; returns the count. */
static size_t spans_merge(struct span *sp, size_t n) {
        size_t m = 0;

        qsort(sp, n, sizeof(*sp), span_compare);
        for (size_t i = 0; i < n; i++) {
                if (m > 0 && sp[i].open <= sp[m - 1].close)
                        sp[m - 1].close = MAX(sp[m - 1].close, sp[i].close);
                else
                        sp[m++] = sp[i];
        }
        return m;
}

static uint64_t span_close_usec(const struct span *sp, int64_t horizon) {
        /* Open without a break from the day asked about to two weeks
         * later: every hour of the week is inside a window. */
        if (sp->close >= horizon)
                return UINT64_MAX;
        return (uint64_t) sp->close * TZ_USEC_PER_SEC;
}

int rollout_windows_state_in(const struct rollout_windows *ws, const struct tz_scope *scope, uint64_t now_usec,
                             struct rollout_window_state *ret) {
        struct span *spans;
        int64_t now_local, day, horizon;
        size_t n = 0;
        int r;

        if (now_usec > TZ_USEC_MAX)
                return -ERANGE;
        if (ws->n == 0) {
                *ret = (struct rollout_window_state) {
                        .open = true,
                        .opens_usec = now_usec,
                        .closes_usec = UINT64_MAX,
                };
                return 0;
        }
        if (!scope || !scope->active)
                return -EINVAL;
        r = tz_scope_local_seconds(scope, (int64_t) (now_usec / TZ_USEC_PER_SEC), &now_local);
        if (r < 0)
                return r;
        day = tz_day_of_local_seconds(now_local);
        r = tz_scope_resolve(scope, (day + HORIZON_DAYS) * SECONDS_PER_DAY, TZ_EARLIEST, &horizon, NULL);
        if (r == -ERANGE)
                horizon = TZ_SECONDS_MAX;
        else if (r < 0)
                return r;
        r = 0;

        spans = malloc(SPANS_MAX * sizeof(*spans));
        if (!spans)
                return -ENOMEM;
        for (int64_t d = day - 1; d <= day + HORIZON_DAYS && r >= 0; d++)
                r = day_spans(ws, scope, d, spans, &n);
        if (r == -ERANGE)
                r = 0;   /* days past 9999 have no windows */
        if (r < 0)
                goto out;
        n = spans_merge(spans, n);
        r = -ENOENT;
        for (size_t i = 0; i < n; i++) {
                uint64_t open = (uint64_t) spans[i].open * TZ_USEC_PER_SEC;
                uint64_t close = (uint64_t) spans[i].close * TZ_USEC_PER_SEC;
                if (now_usec >= close)
                        continue;
                *ret = (struct rollout_window_state) {
                        .open = now_usec >= open,
                        .opens_usec = now_usec >= open ? now_usec : open,
                        .closes_usec = span_close_usec(&spans[i], horizon),
                };
                r = 0;
                break;
        }
out:
        free(spans);
        return r;
}

int rollout_windows_state(const struct rollout_windows *ws, const struct tz_zone *zone, uint64_t now_usec,
                          struct rollout_window_state *ret) {
        struct tz_scope scope;
        int r;

        if (ws->n == 0)
                return rollout_windows_state_in(ws, NULL, now_usec, ret);
        if (!zone)
                return -EINVAL;
        r = tz_scope_enter(&scope, zone);
        if (r < 0)
                return r;
        r = rollout_windows_state_in(ws, &scope, now_usec, ret);
        tz_scope_leave(&scope);
        return r;
}
