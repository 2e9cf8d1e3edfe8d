/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The JSON text buffer (rest-text.h).
 */
#include <inttypes.h>
#include <stdlib.h>

#include "rest-text.h"
#include "utf8.h"

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

/* What a byte below 0x80 becomes in a JSON string: 0 itself, 'u' a
 * \u00XX escape, else the letter after the backslash. */
static const char json_escape[0x80] = {
        ['\0'] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u', [0x05] = 'u',  [0x06] = 'u',
        [0x07] = 'u', ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', [0x0b] = 'u', ['\f'] = 'f',  ['\r'] = 'r',
        [0x0e] = 'u', [0x0f] = 'u', [0x10] = 'u', [0x11] = 'u', [0x12] = 'u', [0x13] = 'u',  [0x14] = 'u',
        [0x15] = 'u', [0x16] = 'u', [0x17] = 'u', [0x18] = 'u', [0x19] = 'u', [0x1a] = 'u',  [0x1b] = 'u',
        [0x1c] = 'u', [0x1d] = 'u', [0x1e] = 'u', [0x1f] = 'u', ['"'] = '"',  ['\\'] = '\\',
};

/* Printable ASCII but '"' and '\\': copied as it is. */
static const bool json_plain[256] = {
        [0x20 ... 0x21] = true, /* '"' is 0x22 */
        [0x23 ... 0x5b] = true, /* '\\' is 0x5c */
        [0x5d ... 0x7f] = true,
};

void rest_text_put_string_or_null(struct rest_text *t, const char *s) {
        static const char hex[] = "0123456789abcdef";
        size_t start = t->len, pos;

        if (!s) {
                rest_text_lit(t, "null");
                return;
        }
        /* One pass, no strlen() first (it was a third of a page's time in
         * perf on this machine): room is made as the text grows, for the
         * longest thing one step writes (a \u00XX escape, or a 4-byte
         * sequence) and the closing quote. */
        if (!rest_text_reserve(t, 16))
                return;
        pos = t->len;
        t->data[pos++] = '"';
        for (const unsigned char *p = (const unsigned char *) s; *p;) {
                /* The run of bytes that stand for themselves, in one copy. */
                size_t run = 0;
                while (json_plain[p[run]])
                        run++;
                if (t->size - pos < run + 8) {
                        t->len = pos;
                        if (!rest_text_reserve(t, run + 16))
                                return;
                }
                memcpy(t->data + pos, p, run);
                pos += run;
                p += run;
                unsigned char c = *p;
                if (!c)
                        break;
                char *out = t->data + pos;
                if (c >= 0x80) {
                        uint32_t code_point;
                        size_t len = utf8_decode(p, 4, &code_point);
                        if (len == 0) {
                                /* As rest_json_string_or_null(): not UTF-8 shows as null. */
                                t->len = start;
                                rest_text_lit(t, "null");
                                return;
                        }
                        memcpy(out, p, len);
                        pos += len;
                        p += len;
                        continue;
                }
                char e = json_escape[c];
                if (!e)
                        out[0] = (char) c, pos += 1;
                else if (e != 'u')
                        out[0] = '\\', out[1] = e, pos += 2;
                else {
                        memcpy(out, "\\u00", 4);
                        out[4] = hex[c >> 4];
                        out[5] = hex[c & 0xf];
                        pos += 6;
                }
                p++;
        }
        t->data[pos++] = '"';
        t->len = pos;
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
