/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the JSON forms of the model's objects (rest-device.c,
 * rest-image.c, rest-job.c; doc/openapi.yaml) share, and the check of a
 * request body's fields.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rest-internal.h"

json_t *rest_json_time(uint64_t realtime_usec) {
        char buf[64];
        struct tm tm;
        time_t sec;

        if (realtime_usec == 0)
                return json_null();
        sec = (time_t) (realtime_usec / 1000000u);
        if (!gmtime_r(&sec, &tm))
                return json_null();
        if (strftime(buf, sizeof(buf) - 8, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
                return json_null();
        snprintf(buf + strlen(buf), 8, ".%03uZ", (unsigned) (realtime_usec / 1000u % 1000u));
        return json_string(buf);
}

void rest_json_write_time(FILE *f, uint64_t realtime_usec) {
        char buf[64];
        struct tm tm;
        time_t sec = (time_t) (realtime_usec / 1000000u);

        if (realtime_usec == 0 || !gmtime_r(&sec, &tm) ||
            strftime(buf, sizeof(buf) - 8, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
                fputs("null", f);
                return;
        }
        fprintf(f, "\"%s.%03uZ\"", buf, (unsigned) (realtime_usec / 1000u % 1000u));
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

void rest_json_write_string_or_null(FILE *f, const char *s) {
        /* As rest_json_string_or_null(): not UTF-8 shows as null. */
        if (!s || !utf8_valid((const unsigned char *) s)) {
                fputs("null", f);
                return;
        }
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                /* The run of characters that need no escape, in one write. */
                size_t run = 0;
                while (p[run] >= 0x20 && p[run] != '"' && p[run] != '\\')
                        run++;
                if (run > 0) {
                        fwrite(p, 1, run, f);
                        p += run - 1;
                        continue;
                }
                switch (*p) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\b':
                        fputs("\\b", f);
                        break;
                case '\f':
                        fputs("\\f", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\r':
                        fputs("\\r", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                default:
                        if (*p < 0x20)
                                fprintf(f, "\\u%04x", *p);
                        else
                                fputc(*p, f);
                }
        }
        fputc('"', f);
}

json_t *rest_json_string_or_null(const char *s) {
        /* Device-reported strings (OS info, names) are not promised to be
         * UTF-8; json_string() refuses those, so show them as null rather
         * than fail the whole object. */
        json_t *v;

        if (!s)
                return json_null();
        v = json_string(s);
        return v ? v : json_null();
}





json_t *rest_json_array(struct manager *m, void *const *objects, size_t n, rest_json_form_fn form) {
        json_t *array = json_array();

        if (!array)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (json_array_append_new(array, form(m, objects[i])) < 0) {
                        json_decref(array);
                        return NULL;
                }
        return array;
}

int rest_reply_page(struct rest_request *req, const char *key, json_t *items, uint64_t total, unsigned limit,
                    uint64_t offset) {
        if (!items)
                return -ENOMEM;
        return rest_reply_json(req, 200,
                               json_pack("{s:o, s:I, s:I, s:I}", key, items, "total", (json_int_t) total, "limit",
                                         (json_int_t) limit, "offset", (json_int_t) offset));
}

int rest_reply_body_error(struct rest_request *req, const struct rest_body_error *e) {
        (void) rest_reply_error(req, 400, e->code, "%s", e->message);
        return -EINVAL;
}

int rest_json_check_fields(struct rest_request *req, json_t *object, const char *const *known) {
        struct rest_body_error e;
        int r;

        r = rest_body_check_fields(object, known, &e);
        if (r < 0)
                (void) rest_reply_body_error(req, &e);
        return r;
}
