/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * OMP <-> SMP frame transform (see smp-omp.h for the format and sources).
 *
 * Both directions are byte splices: the body's pairs are copied verbatim
 * and only the map head and the "_h" pair are written or dropped, so
 * whatever the peer encoded (definite or indefinite maps, non-minimal
 * heads, key order) survives untouched.  The input is first parsed by the
 * bounded reader (smp_cbor_parse), which checks it is exactly one
 * well-formed map and gives each item's head offset; a pair's byte span
 * runs from its key's head to the head of the next sibling (or to the end
 * of the map for the last pair).
 */
#include <errno.h>
#include <string.h>

#include <cbor.h>

#include "smpgw/smp-cbor.h"
#include "smpgw/smp-frame.h"
#include "smpgw/smp-omp.h"
#include "util.h"

/* The "_h" pair as written: text(2) "_h", bytes(8) header. */
#define H_PAIR_SIZE (1u + 2u + 1u + SMP_HEADER_SIZE)

/* The pairs of the top-level map of a parsed body, as byte offsets. */
struct map_layout {
        bool indefinite;
        size_t n_pairs;
        size_t pairs_start;  /* first key's head (== pairs_end when empty) */
        size_t pairs_end;    /* after the last value (the break, if indefinite) */
        unsigned n_h;            /* "_h" keys seen */
        size_t h_start, h_end;   /* the first "_h" pair's span */
        uint32_t h_value;        /* item index of its value */
};

/* End offset of the top-level child at index i: the next sibling's head,
 * or the end of the map's pairs when i is the last child. */
static size_t child_end(const struct smp_cbor_doc *doc, const struct map_layout *m, uint32_t i) {
        uint32_t next = doc->items[i].next;
        return next < doc->n_items ? doc->items[next].offset : m->pairs_end;
}

/* Parses body as one map and locates its pairs and its "_h" pair.
 * *ret_items takes the item array (free() it). */
static int map_layout_parse(const uint8_t *body, size_t len, struct smp_cbor_item **ret_items,
                            struct smp_cbor_doc *ret_doc, struct map_layout *ret) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        struct smp_cbor_doc doc;
        struct map_layout m = {};
        struct smp_cbor_iter it;
        uint32_t k, v;
        int r;

        r = smp_cbor_parse_alloc(body, len, NULL, &items, &doc);
        if (r < 0)
                return r == -ENOMEM ? r : -EBADMSG;

        /* An indefinite-length map head is exactly 0xbf, and the reader
         * has checked it ends with the break as the body's last byte. */
        m.indefinite = body[0] == 0xbf;
        m.pairs_end = m.indefinite ? len - 1 : len;
        m.pairs_start = doc.n_items > 1 ? doc.items[1].offset : m.pairs_end;

        smp_cbor_iter_init(&doc, SMP_CBOR_ROOT, &it);
        while (smp_cbor_iter_next_pair(&doc, &it, &k, &v)) {
                const struct smp_cbor_item *key = &doc.items[k];

                m.n_pairs++;
                if (key->type != SMP_CBOR_TEXT || !smp_cbor_slice_eq(key->v.s, SMP_OMP_HEADER_KEY))
                        continue;
                if (m.n_h++ > 0)
                        continue;
                m.h_start = key->offset;
                m.h_end = child_end(&doc, &m, v);
                m.h_value = v;
        }

        *ret_items = TAKE_PTR(items);
        *ret_doc = doc;
        *ret = m;
        return 0;
}

/* Size of a definite map head for n pairs (shortest form). */
static size_t map_head_size(size_t n) {
        return smp_cbor_head_size(n);
}

int smp_omp_encode(const uint8_t *frame, size_t frame_len, uint8_t *out, size_t out_size) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        struct smp_cbor_doc doc;
        struct map_layout m = {};
        const uint8_t *body;
        size_t body_len, pairs_len, total, o = 0;
        int r;

        if (!frame || frame_len < SMP_HEADER_SIZE)
                return -EBADMSG;
        if (!out && out_size > 0)
                return -EINVAL;
        body = frame + SMP_HEADER_SIZE;
        body_len = frame_len - SMP_HEADER_SIZE;
        if (unaligned_read_be16(frame + 2) != body_len)
                return -EBADMSG;

        if (body_len > 0) {
                r = map_layout_parse(body, body_len, &items, &doc, &m);
                if (r < 0)
                        return r;
                if (m.n_h > 0)
                        return -EEXIST;
        }
        /* else: no body at all, sent as {} plus the header */

        pairs_len = m.pairs_end - m.pairs_start;
        if (m.indefinite)
                total = 1 + pairs_len + H_PAIR_SIZE + 1;
        else
                total = map_head_size(m.n_pairs + 1) + pairs_len + H_PAIR_SIZE;
        if (total > out_size)
                return -ENOBUFS;

        if (m.indefinite)
                out[o++] = 0xbf;
        else
                o += cbor_encode_map_start(m.n_pairs + 1, out, out_size);
        memcpy(out + o, body + m.pairs_start, pairs_len);
        o += pairs_len;

        /* "_h" goes last, where Mynewt's oicmgr puts it in its responses;
         * receivers look it up by key (newtmgr decodes the whole map,
         * oicmgr uses cbor_read_object), so its place does not matter. */
        out[o++] = 0x62; /* text string, 2 bytes */
        out[o++] = '_';
        out[o++] = 'h';
        out[o++] = 0x40 | SMP_HEADER_SIZE; /* byte string, 8 bytes */
        memcpy(out + o, frame, SMP_HEADER_SIZE);
        o += SMP_HEADER_SIZE;

        if (m.indefinite)
                out[o++] = 0xff;
        return (int) o;
}

int smp_omp_decode(const uint8_t *payload, size_t payload_len, uint8_t *out, size_t out_size) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        struct smp_cbor_doc doc;
        struct map_layout m;
        const struct smp_cbor_item *h;
        size_t before, after, body_len, total, o = 0;
        int r;

        if (!payload || payload_len == 0)
                return -EBADMSG;
        if (!out && out_size > 0)
                return -EINVAL;

        r = map_layout_parse(payload, payload_len, &items, &doc, &m);
        if (r < 0)
                return r;
        /* Missing, or twice: which one would be meant? */
        if (m.n_h != 1)
                return -EBADMSG;
        h = &doc.items[m.h_value];
        /* Mynewt's oicmgr answers 4.00 when "_h" is not exactly 8 bytes. */
        if (h->type != SMP_CBOR_BYTES || h->v.s.len != SMP_HEADER_SIZE)
                return -EBADMSG;

        before = m.h_start - m.pairs_start;
        after = m.pairs_end - m.h_end;
        if (m.indefinite)
                body_len = 1 + before + after + 1;
        else
                body_len = map_head_size(m.n_pairs - 1) + before + after;
        if (body_len > 0xffff)
                return -EMSGSIZE;
        total = SMP_HEADER_SIZE + body_len;
        if (total > out_size)
                return -ENOBUFS;

        memcpy(out, h->v.s.ptr, SMP_HEADER_SIZE);
        /* The length in "_h" is not trusted: Mynewt leaves the request's
         * length in its responses' headers. */
        unaligned_write_be16(out + 2, (uint16_t) body_len);
        o = SMP_HEADER_SIZE;

        if (m.indefinite)
                out[o++] = 0xbf;
        else
                o += cbor_encode_map_start(m.n_pairs - 1, out + o, out_size - o);
        memcpy(out + o, payload + m.pairs_start, before);
        o += before;
        memcpy(out + o, payload + m.h_end, after);
        o += after;
        if (m.indefinite)
                out[o++] = 0xff;
        return (int) o;
}
