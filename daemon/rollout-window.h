/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Maintenance windows of a rollout: when its members may be activated
 * (told to run the new image and reset).  Pure: no daemon state.
 *
 * A window opens on each of its days at `from` local time and closes at
 * `to` the same day; a `to` at or before `from` closes on the next day
 * ("22:00-02:00" on Monday runs from Monday 22:00 to Tuesday 02:00, and
 * "02:00-02:00" lasts 24 hours).  `to` may be "24:00", the end of the
 * day.  A window covers [open, close): at `to` it is closed.  Windows
 * that overlap or touch form one stretch ("sat 00:00-24:00" and "sun
 * 00:00-24:00" are the weekend, closing Monday 00:00).  An empty list
 * is always open.  Local times are the zone's (tz.h): `from` resolves to
 * its earliest instant and `to` to its latest, so on a daylight saving
 * switch day a window is never shorter than its wall-clock times say;
 * a window wholly inside a jump forward (Berlin "02:15-02:45" on the
 * last Sunday of March) does not open that day.
 *
 * Two spellings, the same windows:
 *
 * JSON (REST, D-Bus, stored):
 *   {"days": ["mon", "tue", ...], "from": "HH:MM", "to": "HH:MM"}
 *   "days" may be left out (every day); it is not empty.  No other keys.
 *
 * Compact (smpgwctl --window, one window per string):
 *   window   = [days " "] time "-" time
 *   days     = dayspec *("," dayspec)
 *   dayspec  = day / day "-" day     a range runs forward through the
 *                                     week: "fri-mon" is fri,sat,sun,mon
 *   day      = "mon" / "tue" / "wed" / "thu" / "fri" / "sat" / "sun"
 *   time     = 2DIGIT ":" 2DIGIT     00:00 to 23:59; "24:00" only as
 *                                     the end
 *   Day names in any case; no days means every day; spaces around the
 *   whole are allowed, one or more spaces separate days and times.
 *   Examples: "mon-fri 02:00-04:00", "sat,sun 00:00-24:00",
 *   "fri 22:00-06:00", "03:00-03:30".
 *
 * Errors name the part that is wrong in a sentence (lower case, no final
 * period, made to follow "bad window: "): "day 'fir' is not one of mon,
 * tue, wed, thu, fri, sat, sun".
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "tz.h"

/* Windows in one list; more are refused with -E2BIG. */
#define ROLLOUT_WINDOWS_MAX 32u
/* A compact window string longer than this is refused. */
#define ROLLOUT_WINDOW_TEXT_MAX 128u
/* The compact form's longest canonical spelling, with its NUL. */
#define ROLLOUT_WINDOW_FORMAT_MAX 64u

enum {
        ROLLOUT_DAY_MON = 1u << 0,
        ROLLOUT_DAY_TUE = 1u << 1,
        ROLLOUT_DAY_WED = 1u << 2,
        ROLLOUT_DAY_THU = 1u << 3,
        ROLLOUT_DAY_FRI = 1u << 4,
        ROLLOUT_DAY_SAT = 1u << 5,
        ROLLOUT_DAY_SUN = 1u << 6,
        ROLLOUT_DAYS_ALL = 0x7fu,
};

struct rollout_window {
        uint8_t days;        /* ROLLOUT_DAY_*: the days it opens on; never 0 */
        uint16_t from_min;   /* minutes after local midnight, 0..1439 */
        uint16_t to_min;     /* 1..1440; <= from_min: closes the next day */
};

struct rollout_windows {
        size_t n;            /* 0: always open */
        struct rollout_window w[ROLLOUT_WINDOWS_MAX];
};

/* Where an instant stands. */
struct rollout_window_state {
        bool open;
        /* open: the instant asked about; closed: when the next window opens */
        uint64_t opens_usec;
        /* when the window open now (or the next one) closes;
         * UINT64_MAX when the windows never close (every hour of the week) */
        uint64_t closes_usec;
};

/* The compact form, into *ret.  -EINVAL (with *ret_reason, malloc()ed,
 * may be NULL) when it is not the grammar above. */
int rollout_window_parse(const char *text, struct rollout_window *ret, char **ret_reason);
/* The compact form's canonical spelling ("mon-fri 02:00-04:00", days as
 * ranges where three or more follow each other, none for every day).
 * Returns the length, or -ENOBUFS. */
int rollout_window_format(const struct rollout_window *w, char *buf, size_t size);

/* One JSON window object.  -EINVAL with a sentence. */
int rollout_window_from_json(const json_t *obj, struct rollout_window *ret, char **ret_reason);
/* A JSON array of window objects (NULL or JSON null: none).  -EINVAL or
 * -E2BIG (more than ROLLOUT_WINDOWS_MAX) with a sentence that says which
 * window ("window 2: ..."), counting from 1. */
int rollout_windows_from_json(const json_t *array, struct rollout_windows *ret, char **ret_reason);
/* The JSON array (days always written, in week order).  NULL: no memory. */
json_t *rollout_windows_to_json(const struct rollout_windows *ws);

/* Appends one.  -E2BIG past ROLLOUT_WINDOWS_MAX. */
int rollout_windows_add(struct rollout_windows *ws, const struct rollout_window *w);

/* Whether the windows are open at now_usec (CLOCK_REALTIME) in zone, and
 * when that changes.  The zone is not read for an empty list (may then
 * be NULL).  -ERANGE past TZ_USEC_MAX; -ENOENT if no window opens within
 * the next 15 days (cannot happen with windows this module accepted). */
int rollout_windows_state(const struct rollout_windows *ws, const struct tz_zone *zone, uint64_t now_usec,
                          struct rollout_window_state *ret);
/* The same inside a scope the caller entered for zone (a batch of
 * queries pays for switching TZ once). */
int rollout_windows_state_in(const struct rollout_windows *ws, const struct tz_scope *scope, uint64_t now_usec,
                             struct rollout_window_state *ret);
