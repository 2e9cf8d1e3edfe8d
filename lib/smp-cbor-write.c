/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bounded CBOR writer.  libcbor's cbor_encode_* write one head or scalar
 * into the caller's buffer and return 0 when it does not fit; this wraps
 * them so that the first failure sticks and later puts are no-ops.
 */
#include <cbor.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "smpgw/smp-cbor.h"
#include "util.h"

struct smp_cbor_slice smp_cbor_slice_str(const char *s) {
        if (!s)
                return (struct smp_cbor_slice) { NULL, 0 };
        return smp_cbor_slice_make(s, strlen(s));
}

bool smp_cbor_slice_eq(struct smp_cbor_slice s, const char *text) {
        if (!s.ptr || !text)
                return false;
        size_t n = strlen(text);
        return s.len == n && memcmp(s.ptr, text, n) == 0;
}

int smp_cbor_slice_copy(struct smp_cbor_slice s, char *buf, size_t size) {
        if (!buf || size == 0 || (!s.ptr && s.len > 0))
                return -EINVAL;
        if (s.len >= size || s.len > INT_MAX)
                return -ENAMETOOLONG;
        if (s.len > 0 && memchr(s.ptr, 0, s.len))
                return -EBADMSG;
        if (s.len > 0)
                memcpy(buf, s.ptr, s.len);
        buf[s.len] = 0;
        return (int) s.len;
}

void smp_cbor_writer_init(struct smp_cbor_writer *w, uint8_t *buf, size_t cap) {
        *w = (struct smp_cbor_writer) {
                .buf = buf,
                .cap = buf ? cap : 0,
        };
}

size_t smp_cbor_head_size(uint64_t value) {
        if (value < 24)
                return 1;
        if (value <= UINT8_MAX)
                return 2;
        if (value <= UINT16_MAX)
                return 3;
        if (value <= UINT32_MAX)
                return 5;
        return 9;
}

/* Account for n bytes that an encoder call reported writing; 0 means it
 * did not fit. */
static int writer_advance(struct smp_cbor_writer *w, size_t n) {
        if (w->err < 0)
                return w->err;
        if (n == 0)
                return (w->err = -ENOBUFS);
        w->len += n;
        return 0;
}

/* Room left, or 0 when an earlier put already failed so that libcbor's
 * encoders refuse everything that follows. */
static size_t writer_room(const struct smp_cbor_writer *w) {
        return w->err < 0 ? 0 : w->cap - w->len;
}

static uint8_t *writer_pos(const struct smp_cbor_writer *w) {
        /* libcbor never touches the pointer when the room is 0, but do not
         * form an out-of-range pointer from a NULL buffer either. */
        return w->buf ? w->buf + w->len : NULL;
}

int smp_cbor_put_map(struct smp_cbor_writer *w, size_t n_pairs) {
        if (w->indefinite)
                return writer_advance(w, cbor_encode_indef_map_start(writer_pos(w), writer_room(w)));
        return writer_advance(w, cbor_encode_map_start(n_pairs, writer_pos(w), writer_room(w)));
}

int smp_cbor_put_array(struct smp_cbor_writer *w, size_t n_items) {
        if (w->indefinite)
                return writer_advance(w, cbor_encode_indef_array_start(writer_pos(w), writer_room(w)));
        return writer_advance(w, cbor_encode_array_start(n_items, writer_pos(w), writer_room(w)));
}

int smp_cbor_put_end(struct smp_cbor_writer *w) {
        if (!w->indefinite)
                return w->err;
        return writer_advance(w, cbor_encode_break(writer_pos(w), writer_room(w)));
}

int smp_cbor_put_uint(struct smp_cbor_writer *w, uint64_t value) {
        return writer_advance(w, cbor_encode_uint(value, writer_pos(w), writer_room(w)));
}

int smp_cbor_put_int(struct smp_cbor_writer *w, int64_t value) {
        if (value >= 0)
                return smp_cbor_put_uint(w, (uint64_t) value);
        /* CBOR stores -1 - n; written this way it cannot overflow for
         * INT64_MIN. */
        uint64_t n = (uint64_t) (-(value + 1));
        return writer_advance(w, cbor_encode_negint(n, writer_pos(w), writer_room(w)));
}

int smp_cbor_put_bool(struct smp_cbor_writer *w, bool value) {
        return writer_advance(w, cbor_encode_bool(value, writer_pos(w), writer_room(w)));
}

int smp_cbor_put_null(struct smp_cbor_writer *w) {
        return writer_advance(w, cbor_encode_null(writer_pos(w), writer_room(w)));
}

/* The string head from libcbor, then the payload copied by hand (libcbor
 * has no call that writes both into a caller buffer). */
static int put_string(struct smp_cbor_writer *w, bool text, const void *data, size_t len) {
        if (w->err < 0)
                return w->err;
        if (!data && len > 0)
                return (w->err = -EINVAL);

        size_t head = text ? cbor_encode_string_start(len, writer_pos(w), writer_room(w))
                           : cbor_encode_bytestring_start(len, writer_pos(w), writer_room(w));
        if (head == 0 || len > writer_room(w) - head)
                return (w->err = -ENOBUFS);
        if (len > 0)
                memcpy(w->buf + w->len + head, data, len);
        w->len += head + len;
        return 0;
}

int smp_cbor_put_text(struct smp_cbor_writer *w, const char *text) {
        if (!text)
                return w->err < 0 ? w->err : (w->err = -EINVAL);
        return put_string(w, true, text, strlen(text));
}

int smp_cbor_put_text_slice(struct smp_cbor_writer *w, struct smp_cbor_slice text) {
        return put_string(w, true, text.ptr, text.len);
}

int smp_cbor_put_bytes(struct smp_cbor_writer *w, const void *data, size_t len) {
        return put_string(w, false, data, len);
}

int smp_cbor_put_empty_map(struct smp_cbor_writer *w) {
        smp_cbor_put_map(w, 0);
        return smp_cbor_put_end(w);
}

int smp_cbor_writer_finish(const struct smp_cbor_writer *w) {
        if (w->err < 0)
                return w->err;
        if (w->len > INT_MAX)
                return -EMSGSIZE;
        return (int) w->len;
}
