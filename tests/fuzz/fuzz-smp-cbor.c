/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The generic CBOR reader on untrusted bytes: parse with a small and a
 * large item budget, walk every container with the typed getters, decode
 * the status fields, and re-encode whatever parsed (both container styles)
 * and check the result parses to the same shape. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "smpgw/smp-cbor.h"
#include "smpgw/smp-error.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void reencode(const struct smp_cbor_doc *doc, uint32_t i, struct smp_cbor_writer *w) {
        const struct smp_cbor_item *it = &doc->items[i];
        struct smp_cbor_iter iter;
        uint32_t c;

        switch (it->type) {
        case SMP_CBOR_UINT:
                smp_cbor_put_uint(w, it->v.u);
                break;
        case SMP_CBOR_NEGINT: {
                int64_t v;
                if (smp_cbor_item_int(doc, i, "x", &v) >= 0)
                        smp_cbor_put_int(w, v);
                else
                        smp_cbor_put_uint(w, it->v.u); /* out of int64 range: keep the shape */
                break;
        }
        case SMP_CBOR_BYTES:
                smp_cbor_put_bytes(w, it->v.s.ptr, it->v.s.len);
                break;
        case SMP_CBOR_TEXT:
                smp_cbor_put_text_slice(w, it->v.s);
                break;
        case SMP_CBOR_BOOL:
                smp_cbor_put_bool(w, it->v.b);
                break;
        case SMP_CBOR_MAP:
        case SMP_CBOR_ARRAY:
                if (it->type == SMP_CBOR_MAP)
                        smp_cbor_put_map(w, it->count);
                else
                        smp_cbor_put_array(w, it->count);
                smp_cbor_iter_init(doc, i, &iter);
                while (smp_cbor_iter_next(doc, &iter, &c))
                        reencode(doc, c, w);
                smp_cbor_put_end(w);
                break;
        default:
                /* null, undefined, float: null keeps the item count. */
                smp_cbor_put_null(w);
                break;
        }
}

static void walk(const struct smp_cbor_doc *doc) {
        for (uint32_t i = 0; i < doc->n_items; i++) {
                const struct smp_cbor_item *it = &doc->items[i];
                assert(it->next > i && it->next <= doc->n_items);
                if (it->type != SMP_CBOR_MAP)
                        continue;
                struct smp_cbor_iter iter;
                uint32_t k, v, found;
                smp_cbor_iter_init(doc, i, &iter);
                while (smp_cbor_iter_next_pair(doc, &iter, &k, &v)) {
                        uint64_t u;
                        int64_t s;
                        bool b;
                        struct smp_cbor_slice sl;
                        (void) smp_cbor_item_uint(doc, v, "v", &u);
                        (void) smp_cbor_item_int(doc, v, "v", &s);
                        (void) smp_cbor_item_bool(doc, v, "v", &b);
                        (void) smp_cbor_item_text(doc, v, "v", &sl);
                        (void) smp_cbor_item_bytes(doc, v, "v", &sl);
                        if (doc->items[k].type == SMP_CBOR_TEXT && doc->items[k].v.s.len < 16) {
                                char key[16];
                                if (smp_cbor_slice_copy(doc->items[k].v.s, key, sizeof(key)) >= 0) {
                                        int r = smp_cbor_map_find(doc, i, key, &found);
                                        assert(r == 0 || r == -EBADMSG);
                                }
                        }
                }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct smp_cbor_item items[SMP_CBOR_MAX_ITEMS], items2[SMP_CBOR_MAX_ITEMS];
        static uint8_t out[70000];
        struct smp_cbor_error error;
        struct smp_cbor_doc doc, doc2;
        struct smp_status st;
        char text[128];

        (void) smp_cbor_parse(data, size, items, 8, &error, &doc);
        if (smp_cbor_parse(data, size, items, ELEMENTSOF(items), &error, &doc) < 0)
                return 0;
        walk(&doc);
        if (smp_status_from_doc(&doc, SMP_CBOR_ROOT, &st) >= 0) {
                (void) smp_status_format(&st, text, sizeof(text));
                (void) smp_status_to_errno(&st);
        }
        (void) smp_status_check(&doc, SMP_CBOR_ROOT);

        for (int indef = 0; indef <= 1; indef++) {
                struct smp_cbor_writer w;
                smp_cbor_writer_init(&w, out, sizeof(out));
                w.indefinite = indef;
                reencode(&doc, SMP_CBOR_ROOT, &w);
                if (smp_cbor_writer_finish(&w) < 0)
                        continue;
                /* Whatever parsed re-encodes to something that parses with
                 * the same number of items and the same types. */
                int r = smp_cbor_parse(out, w.len, items2, ELEMENTSOF(items2), &error, &doc2);
                assert(r == 0);
                assert(doc2.n_items == doc.n_items);
                for (uint32_t i = 0; i < doc.n_items; i++) {
                        assert(doc2.items[i].next == doc.items[i].next);
                        assert(doc2.items[i].count == doc.items[i].count);
                }
        }
        return 0;
}
