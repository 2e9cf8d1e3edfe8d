/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An update checkpoint as one line of text and back (smp-update.h), for a
 * database column or a file that outlives the process.  Text rather than
 * the struct's bytes: it survives a new build (padding, enum sizes, fields
 * added), a person can read it in a log, and the parser refuses what it
 * does not know instead of guessing.  Keys come in one fixed order; a
 * change of the format changes its version word.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "smpgw/smp-update.h"
#include "util.h"

#define CHECKPOINT_MAGIC "smpgw-update/1"
#define HASH_HEX_MAX (2 * 32)
/* Longest value of one key=value token: a slot, whose version may be
 * percent-encoded byte by byte. */
#define VALUE_MAX 256u

struct out {
        char *buf;
        size_t size, len;
        bool overflow;
};

static _printf_(2, 3) void out_printf(struct out *o, const char *fmt, ...) {
        va_list ap;

        if (o->overflow)
                return;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= o->size - o->len)
                o->overflow = true;
        else
                o->len += (size_t) n;
}

static bool version_char_plain(unsigned char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
               c == '+' || c == '-' || c == '_' || c == '~';
}

/* A version buffer as the device filled it: it must end within its size
 * so that parsing gives it back whole. */
static int out_version(struct out *o, const char *version, size_t size) {
        size_t n = strnlen(version, size);
        if (n >= size)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) version[i];
                if (version_char_plain(c))
                        out_printf(o, "%c", c);
                else
                        out_printf(o, "%%%02X", c);
        }
        return 0;
}

static void out_hex(struct out *o, const uint8_t *data, size_t len) {
        char hex[HASH_HEX_MAX + 1];
        hex_encode(data, MIN(len, (size_t) 32), hex);
        out_printf(o, "%s", hex);
}

int smp_update_checkpoint_format(const struct smp_update_checkpoint *cp, char *buf, size_t size) {
        struct out o = { .buf = buf, .size = size };
        const char *mode = cp ? smp_update_mode_to_string(cp->mode) : NULL;
        int e;

        if (!cp || !buf || size == 0 || !mode || cp->before.n_slots > SMP_UPDATE_SLOTS_MAX)
                return -EINVAL;
        buf[0] = '\0';
        out_printf(&o, CHECKPOINT_MAGIC " mode=%s hash=", mode);
        out_hex(&o, cp->new_hash, sizeof(cp->new_hash));
        out_printf(&o, " version=");
        e = out_version(&o, cp->new_version, sizeof(cp->new_version));
        if (e < 0)
                return e;
        out_printf(&o, " reset=%" PRIu64 " reset-sent=%" PRIu64 " reset-tries=%u reset-answered=%d",
                   cp->reset_usec, cp->reset_sent_usec, cp->reset_tries, cp->reset_answered ? 1 : 0);
        if (!cp->has_before)
                out_printf(&o, " before=-");
        else {
                size_t n = 0;
                for (size_t i = 0; i < cp->before.n_slots; i++)
                        n += cp->before.slots[i].present;
                out_printf(&o, " before=%zu", n);
                for (size_t i = 0; i < cp->before.n_slots; i++) {
                        const struct smp_update_slot *s = &cp->before.slots[i];
                        if (!s->present)
                                continue;
                        if (s->hash_len > sizeof(s->hash))
                                return -EINVAL;
                        out_printf(&o, " slot=%" PRIu32 ",%" PRIu32 ",", s->image, s->slot);
                        if (!(s->bootable || s->pending || s->confirmed || s->active || s->permanent))
                                out_printf(&o, "-");
                        out_printf(&o, "%s%s%s%s%s", s->bootable ? "b" : "", s->pending ? "p" : "",
                                   s->confirmed ? "c" : "", s->active ? "a" : "", s->permanent ? "P" : "");
                        out_printf(&o, ",");
                        e = out_version(&o, s->version, sizeof(s->version));
                        if (e < 0)
                                return e;
                        out_printf(&o, ",");
                        out_hex(&o, s->hash, s->hash_len);
                }
        }
        if (o.overflow) {
                buf[0] = '\0';
                return -ENOBUFS;
        }
        return 0;
}

/* ---- parsing ---- */

/* The value of the next token, which must be `key=value`; *p moves past it
 * and the space that follows, if any. */
static int take(const char **p, const char *key, char value[static VALUE_MAX]) {
        size_t klen = strlen(key);
        const char *s = *p;

        if (strncmp(s, key, klen) != 0 || s[klen] != '=')
                return -EINVAL;
        s += klen + 1;
        size_t n = strcspn(s, " ");
        if (n >= VALUE_MAX)
                return -EINVAL;
        memcpy(value, s, n);
        value[n] = '\0';
        s += n;
        if (*s == ' ') {
                s++;
                if (*s == '\0' || *s == ' ')
                        return -EINVAL; /* one space between tokens, none at the end */
        }
        *p = s;
        return 0;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (!*s || (s[0] == '0' && s[1]))
                return -EINVAL; /* no digits, or a leading zero */
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                unsigned d = (unsigned) (*s - '0');
                if (v > max / 10 || (v == max / 10 && d > max % 10))
                        return -EINVAL;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -EINVAL;
}

/* Lower-case hex, as format writes it, of at most `size` bytes. */
static int parse_hex(const char *s, size_t n, uint8_t *out, size_t size) {
        if (n % 2 != 0 || n / 2 > size)
                return -EINVAL;
        for (size_t i = 0; i < n; i += 2) {
                if ((s[i] >= 'A' && s[i] <= 'F') || (s[i + 1] >= 'A' && s[i + 1] <= 'F'))
                        return -EINVAL;
                int hi = unhex(s[i]), lo = unhex(s[i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[i / 2] = (uint8_t) (hi << 4 | lo);
        }
        return (int) (n / 2);
}

static int parse_version(const char *s, size_t n, char *out, size_t size) {
        size_t len = 0;

        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c == '%') {
                        if (i + 2 >= n)
                                return -EINVAL;
                        int hi = unhex(s[i + 1]), lo = unhex(s[i + 2]);
                        if (hi < 0 || lo < 0)
                                return -EINVAL;
                        c = (unsigned char) (hi << 4 | lo);
                        if (c == 0 || version_char_plain(c))
                                return -EINVAL; /* one spelling per version */
                        i += 2;
                } else if (!version_char_plain(c))
                        return -EINVAL;
                if (len + 1 >= size)
                        return -EINVAL;
                out[len++] = (char) c;
        }
        out[len] = '\0';
        return 0;
}

static int parse_flags(const char *s, size_t n, struct smp_update_slot *sl) {
        if (n == 1 && s[0] == '-')
                return 0;
        if (n == 0)
                return -EINVAL;
        /* each letter once, in format's order */
        static const char order[] = "bpcaP";
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
                const char *f = memchr(order + at, s[i], sizeof(order) - 1 - at);
                if (!f)
                        return -EINVAL;
                at = (size_t) (f - order) + 1;
                switch (s[i]) {
                case 'b':
                        sl->bootable = true;
                        break;
                case 'p':
                        sl->pending = true;
                        break;
                case 'c':
                        sl->confirmed = true;
                        break;
                case 'a':
                        sl->active = true;
                        break;
                case 'P':
                        sl->permanent = true;
                        break;
                }
        }
        return 0;
}

/* IMAGE,SLOT,FLAGS,VERSION,HASH */
static int parse_slot(const char *v, struct smp_update_slot *ret) {
        struct smp_update_slot sl = { .present = true };
        const char *field[5];
        size_t len[5];
        const char *s = v;
        uint64_t n;
        int e;

        for (size_t i = 0; i < 5; i++) {
                field[i] = s;
                len[i] = strcspn(s, ",");
                s += len[i];
                if (i < 4) {
                        if (*s != ',')
                                return -EINVAL;
                        s++;
                }
        }
        if (*s)
                return -EINVAL;

        char num[16];
        for (size_t i = 0; i < 2; i++) {
                if (len[i] >= sizeof(num))
                        return -EINVAL;
                memcpy(num, field[i], len[i]);
                num[len[i]] = '\0';
                e = parse_u64(num, UINT32_MAX, &n);
                if (e < 0)
                        return e;
                if (i == 0)
                        sl.image = (uint32_t) n;
                else
                        sl.slot = (uint32_t) n;
        }
        e = parse_flags(field[2], len[2], &sl);
        if (e < 0)
                return e;
        e = parse_version(field[3], len[3], sl.version, sizeof(sl.version));
        if (e < 0)
                return e;
        e = parse_hex(field[4], len[4], sl.hash, sizeof(sl.hash));
        if (e < 0)
                return e;
        sl.hash_len = (size_t) e;
        *ret = sl;
        return 0;
}

int smp_update_checkpoint_parse(const char *s, struct smp_update_checkpoint *ret) {
        struct smp_update_checkpoint cp = {};
        char v[VALUE_MAX];
        uint64_t n;
        int e;

        if (!s || !ret || strnlen(s, SMP_UPDATE_CHECKPOINT_STRING_MAX) >= SMP_UPDATE_CHECKPOINT_STRING_MAX)
                return -EINVAL;
        if (strncmp(s, CHECKPOINT_MAGIC " ", strlen(CHECKPOINT_MAGIC) + 1) != 0)
                return -EINVAL;
        s += strlen(CHECKPOINT_MAGIC) + 1;

        if (take(&s, "mode", v) < 0 || (e = smp_update_mode_from_string(v)) < 0)
                return -EINVAL;
        cp.mode = (enum smp_update_mode) e;
        if (take(&s, "hash", v) < 0 || strlen(v) != HASH_HEX_MAX ||
            parse_hex(v, HASH_HEX_MAX, cp.new_hash, sizeof(cp.new_hash)) != 32)
                return -EINVAL;
        if (take(&s, "version", v) < 0 || parse_version(v, strlen(v), cp.new_version, sizeof(cp.new_version)) < 0)
                return -EINVAL;
        if (take(&s, "reset", v) < 0 || parse_u64(v, UINT64_MAX, &cp.reset_usec) < 0)
                return -EINVAL;
        if (take(&s, "reset-sent", v) < 0 || parse_u64(v, UINT64_MAX, &cp.reset_sent_usec) < 0)
                return -EINVAL;
        if (take(&s, "reset-tries", v) < 0 || parse_u64(v, UINT_MAX, &n) < 0)
                return -EINVAL;
        cp.reset_tries = (unsigned) n;
        if (take(&s, "reset-answered", v) < 0 || parse_u64(v, 1, &n) < 0)
                return -EINVAL;
        cp.reset_answered = n == 1;
        if (take(&s, "before", v) < 0)
                return -EINVAL;
        if (!streq(v, "-")) {
                if (parse_u64(v, SMP_UPDATE_SLOTS_MAX, &n) < 0)
                        return -EINVAL;
                cp.has_before = true;
                for (size_t i = 0; i < n; i++)
                        if (take(&s, "slot", v) < 0 || parse_slot(v, &cp.before.slots[i]) < 0)
                                return -EINVAL;
                cp.before.n_slots = (size_t) n;
        }
        if (*s)
                return -EINVAL;
        *ret = cp;
        return 0;
}
