/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The JSON text buffer (rest-text.h).
 */
#include <inttypes.h>
#include <stdlib.h>

#include "rest-text.h"

bool rest_text_reserve(struct rest_text *t, size_t more) {
        size_t want, size;
        char *p;

        if (t->failed)
                return false;
        if (more >= SIZE_MAX / 2 - t->len)
                goto fail;
        want = t->len + more + 1;
        if (want <= t->size)
                return true;
        size = t->size ? t->size : 256;
        while (size < want)
                size *= 2;
        p = realloc(t->data, size);
        if (!p)
                goto fail;
        t->data = p;
        t->size = size;
        return true;
fail:
        t->failed = true;
        return false;
}

static size_t format_u64(char buf[static 20], uint64_t v) {
        char tmp[20];
        size_t n = 0;

        do {
                tmp[n++] = (char) ('0' + v % 10);
                v /= 10;
        } while (v);
        for (size_t i = 0; i < n; i++)
                buf[i] = tmp[n - 1 - i];
        return n;
}

void rest_text_put_u64(struct rest_text *t, uint64_t v) {
        char buf[20];

        rest_text_put(t, buf, format_u64(buf, v));
}

void rest_text_put_i64(struct rest_text *t, int64_t v) {
        if (v < 0) {
                rest_text_putc(t, '-');
                rest_text_put_u64(t, (uint64_t) 0 - (uint64_t) v);
        } else
                rest_text_put_u64(t, (uint64_t) v);
}

void rest_text_put_bool(struct rest_text *t, bool v) {
        if (v)
                rest_text_lit(t, "true");
        else
                rest_text_lit(t, "false");
}

/* Well-formed UTF-8, as json_string() demands: no overlong forms, no
 * surrogates, nothing past U+10FFFF, nothing cut off. */
static bool utf8_valid(const unsigned char *s) {
        while (*s) {
                uint32_t c;
                size_t len;
                if (s[0] < 0x80) {
                        s++;
                        continue;
                }
                if (s[0] >= 0xc2 && s[0] <= 0xdf)
                        len = 2, c = s[0] & 0x1f;
                else if (s[0] >= 0xe0 && s[0] <= 0xef)
                        len = 3, c = s[0] & 0x0f;
                else if (s[0] >= 0xf0 && s[0] <= 0xf4)
                        len = 4, c = s[0] & 0x07;
                else
                        return false;
                for (size_t i = 1; i < len; i++) {
                        if ((s[i] & 0xc0) != 0x80) /* the NUL at the end included */
                                return false;
                        c = (c << 6) | (s[i] & 0x3f);
                }
                if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
                    (c >= 0xd800 && c <= 0xdfff))
                        return false;
                s += len;
        }
        return true;
}

void rest_text_put_string_or_null(struct rest_text *t, const char *s) {
        static const char hex[] = "0123456789abcdef";

        if (!s || !utf8_valid((const unsigned char *) s)) {
                rest_text_lit(t, "null");
                return;
        }
        rest_text_putc(t, '"');
        for (const unsigned char *p = (const unsigned char *) s; *p;) {
                /* The run of characters that need no escape, in one copy. */
                size_t run = 0;
                while (p[run] >= 0x20 && p[run] != '"' && p[run] != '\\')
                        run++;
                if (run > 0) {
                        rest_text_put(t, (const char *) p, run);
                        p += run;
                        continue;
                }
                switch (*p) {
                case '"':
                        rest_text_lit(t, "\\\"");
                        break;
                case '\\':
                        rest_text_lit(t, "\\\\");
                        break;
                case '\b':
                        rest_text_lit(t, "\\b");
                        break;
                case '\f':
                        rest_text_lit(t, "\\f");
                        break;
                case '\n':
                        rest_text_lit(t, "\\n");
                        break;
                case '\r':
                        rest_text_lit(t, "\\r");
                        break;
                case '\t':
                        rest_text_lit(t, "\\t");
                        break;
                default: {
                        char u[6] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 0xf] };
                        rest_text_put(t, u, sizeof(u));
                }
                }
                p++;
        }
        rest_text_putc(t, '"');
}

static char *put2(char *p, unsigned v) {
        p[0] = (char) ('0' + v / 10);
        p[1] = (char) ('0' + v % 10);
        return p + 2;
}

size_t rest_format_time(char buf[static REST_TIME_MAX], uint64_t realtime_usec) {
        uint64_t sec = realtime_usec / 1000000u, days = sec / 86400u, rem = sec % 86400u;
        unsigned ms = (unsigned) (realtime_usec / 1000u % 1000u);
        char *p = buf;

        /* The civil date of a day count from 1970-01-01 (the proleptic
         * Gregorian calendar in 400-year eras, as gmtime_r() has it),
         * after Howard Hinnant's days_from_civil inverse. */
        uint64_t z = days + 719468u;
        uint64_t era = z / 146097u;
        uint64_t doe = z - era * 146097u;
        uint64_t yoe = (doe - doe / 1460u + doe / 36524u - doe / 146096u) / 365u;
        uint64_t doy = doe - (365u * yoe + yoe / 4u - yoe / 100u);
        uint64_t mp = (5u * doy + 2u) / 153u;
        unsigned day = (unsigned) (doy - (153u * mp + 2u) / 5u + 1u);
        unsigned month = (unsigned) (mp < 10u ? mp + 3u : mp - 9u);
        uint64_t year = yoe + era * 400u + (month <= 2u);

        /* strftime's %Y: at least 4 digits. */
        char y[20];
        size_t ny = format_u64(y, year);
        for (size_t i = ny; i < 4; i++)
                *p++ = '0';
        memcpy(p, y, ny);
        p += ny;
        *p++ = '-';
        p = put2(p, month);
        *p++ = '-';
        p = put2(p, day);
        *p++ = 'T';
        p = put2(p, (unsigned) (rem / 3600u));
        *p++ = ':';
        p = put2(p, (unsigned) (rem / 60u % 60u));
        *p++ = ':';
        p = put2(p, (unsigned) (rem % 60u));
        *p++ = '.';
        *p++ = (char) ('0' + ms / 100u);
        p = put2(p, ms % 100u);
        *p++ = 'Z';
        *p = '\0';
        return (size_t) (p - buf);
}

void rest_text_put_time(struct rest_text *t, uint64_t realtime_usec) {
        char buf[REST_TIME_MAX];
        size_t n;

        if (realtime_usec == 0) {
                rest_text_lit(t, "null");
                return;
        }
        n = rest_format_time(buf, realtime_usec);
        rest_text_putc(t, '"');
        rest_text_put(t, buf, n);
        rest_text_putc(t, '"');
}

char *rest_text_steal(struct rest_text *t, size_t *ret_len) {
        char *data = NULL;

        if (!t->failed && rest_text_reserve(t, 0)) {
                t->data[t->len] = '\0';
                data = t->data;
                *ret_len = t->len;
                t->data = NULL;
        }
        rest_text_done(t);
        return data;
}

void rest_text_done(struct rest_text *t) {
        free(t->data);
        *t = (struct rest_text) {};
}
