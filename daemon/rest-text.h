/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * JSON text written straight into one growing buffer (rest-text.c), for
 * the replies that are long lists: no jansson value per field, no stdio
 * stream (a 100-item device page through fprintf() spent most of its
 * time in vfprintf and the stream's buffer copies).
 *
 * An allocation that fails sets `failed` and drops what follows: the
 * writer checks once, at the end.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct rest_text {
        char *data;
        size_t len, size;
        bool failed;
};

/* Room for `more` bytes beyond len (and a NUL); false when out of memory
 * (failed is then set). */
bool rest_text_reserve(struct rest_text *t, size_t more);

static inline void rest_text_put(struct rest_text *t, const char *s, size_t n) {
        if (t->size - t->len <= n && !rest_text_reserve(t, n))
                return;
        memcpy(t->data + t->len, s, n);
        t->len += n;
}

static inline void rest_text_putc(struct rest_text *t, char c) {
        if (t->size - t->len <= 1 && !rest_text_reserve(t, 1))
                return;
        t->data[t->len++] = c;
}

/* A string literal (its size known at compile time). */
#define rest_text_lit(t, literal) rest_text_put((t), "" literal, sizeof(literal) - 1)

static inline void rest_text_puts(struct rest_text *t, const char *s) {
        rest_text_put(t, s, strlen(s));
}

void rest_text_put_u64(struct rest_text *t, uint64_t v);
void rest_text_put_i64(struct rest_text *t, int64_t v);
void rest_text_put_bool(struct rest_text *t, bool v);
/* A JSON string, or null for NULL and for what is not UTF-8 (as
 * rest_json_string_or_null() shows it). */
void rest_text_put_string_or_null(struct rest_text *t, const char *s);
/* rest_json_time()'s form, or null for 0. */
void rest_text_put_time(struct rest_text *t, uint64_t realtime_usec);

/* "2026-11-26T23:45:00.123" + 'Z' for a CLOCK_REALTIME µs value: the
 * RFC 3339 form the API uses, computed without gmtime_r()/strftime()
 * (their locks and time zone lookups showed in the profile of a page).
 * Returns the length written (buf: REST_TIME_MAX bytes). */
#define REST_TIME_MAX 40
size_t rest_format_time(char buf[static REST_TIME_MAX], uint64_t realtime_usec);

/* Hands the text (NUL terminated) to the caller; NULL if an allocation
 * failed.  t is empty afterwards. */
char *rest_text_steal(struct rest_text *t, size_t *ret_len);
void rest_text_done(struct rest_text *t);
