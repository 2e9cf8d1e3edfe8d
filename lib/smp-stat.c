/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Statistics group (2) bodies.  Shapes from Zephyr smp_group_2.rst and
 * grp/stat_mgmt/src/stat_mgmt.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/smp-error.h"
#include "smpgw/smp-stat.h"
#include "util.h"

int smp_stat_read_req_encode(struct smp_cbor_writer *w, struct smp_cbor_slice name) {
        if (!name.ptr)
                return -EINVAL;
        smp_cbor_put_map(w, 1);
        smp_cbor_put_text(w, "name");
        smp_cbor_put_text_slice(w, name);
        return smp_cbor_put_end(w);
}

int smp_stat_read_req_decode(const uint8_t *body, size_t len, struct smp_cbor_slice *ret_name,
                             struct smp_cbor_error *error) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        struct smp_cbor_doc doc;
        struct smp_cbor_slice name;
        int r;

        r = smp_body_parse(body, len, false, error, &items, &doc);
        if (r < 0)
                return r;
        r = smp_cbor_map_get_text(&doc, SMP_CBOR_ROOT, "name", &name);
        if (r < 0)
                return r;
        *ret_name = name;
        return 0;
}

int smp_stat_read_rsp_encode(struct smp_cbor_writer *w, const struct smp_stat_read_rsp *rsp) {
        if (!rsp || !rsp->name.ptr || (!rsp->fields && rsp->n_fields > 0))
                return -EINVAL;
        smp_cbor_put_map(w, 2);
        smp_cbor_put_text(w, "name");
        smp_cbor_put_text_slice(w, rsp->name);
        smp_cbor_put_text(w, "fields");
        smp_cbor_put_map(w, rsp->n_fields);
        for (size_t i = 0; i < rsp->n_fields; i++) {
                smp_cbor_put_text_slice(w, rsp->fields[i].name);
                smp_cbor_put_uint(w, rsp->fields[i].value);
        }
        smp_cbor_put_end(w);
        return smp_cbor_put_end(w);
}

int smp_stat_read_rsp_decode(const uint8_t *body, size_t len, struct smp_stat_read_rsp *ret,
                             struct smp_cbor_error *error) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        _cleanup_free_ struct smp_stat_field *fields = NULL;
        struct smp_cbor_slice name;
        struct smp_cbor_doc doc;
        struct smp_cbor_iter it;
        uint32_t map, k, v;
        size_t n = 0;
        int r;

        r = smp_body_parse(body, len, true, error, &items, &doc);
        if (r < 0)
                return r;
        r = smp_cbor_map_get_text(&doc, SMP_CBOR_ROOT, "name", &name);
        if (r < 0)
                return r;
        r = smp_cbor_map_get_map(&doc, SMP_CBOR_ROOT, "fields", &map);
        if (r < 0)
                return r;
        /* The count was checked against the body size by the parser. */
        if (doc.items[map].count > 0) {
                fields = calloc(doc.items[map].count, sizeof(*fields));
                if (!fields)
                        return smp_cbor_doc_fail(&doc, -ENOMEM, 0, "out of memory");
        }
        smp_cbor_iter_init(&doc, map, &it);
        while (smp_cbor_iter_next_pair(&doc, &it, &k, &v)) {
                r = smp_cbor_item_text(&doc, k, "fields{} key", &fields[n].name);
                if (r < 0)
                        return r;
                r = smp_cbor_item_uint(&doc, v, "fields{}", &fields[n].value);
                if (r < 0)
                        return r;
                n++;
        }
        *ret = (struct smp_stat_read_rsp) { .name = name, .fields = TAKE_PTR(fields), .n_fields = n };
        return 0;
}

void smp_stat_read_rsp_done(struct smp_stat_read_rsp *rsp) {
        if (!rsp)
                return;
        free(rsp->fields);
        *rsp = (struct smp_stat_read_rsp) { 0 };
}

int smp_stat_list_rsp_encode(struct smp_cbor_writer *w, const struct smp_stat_list_rsp *rsp) {
        if (!rsp || (!rsp->names && rsp->n_names > 0))
                return -EINVAL;
        smp_cbor_put_map(w, 1);
        smp_cbor_put_text(w, "stat_list");
        smp_cbor_put_array(w, rsp->n_names);
        for (size_t i = 0; i < rsp->n_names; i++)
                smp_cbor_put_text_slice(w, rsp->names[i]);
        smp_cbor_put_end(w);
        return smp_cbor_put_end(w);
}

int smp_stat_list_rsp_decode(const uint8_t *body, size_t len, struct smp_stat_list_rsp *ret,
                             struct smp_cbor_error *error) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        _cleanup_free_ struct smp_cbor_slice *names = NULL;
        struct smp_cbor_doc doc;
        struct smp_cbor_iter it;
        uint32_t list, e;
        size_t n = 0;
        int r;

        r = smp_body_parse(body, len, true, error, &items, &doc);
        if (r < 0)
                return r;
        r = smp_cbor_map_get_array(&doc, SMP_CBOR_ROOT, "stat_list", &list);
        if (r < 0)
                return r;
        if (doc.items[list].count > 0) {
                names = calloc(doc.items[list].count, sizeof(*names));
                if (!names)
                        return smp_cbor_doc_fail(&doc, -ENOMEM, 0, "out of memory");
        }
        smp_cbor_iter_init(&doc, list, &it);
        while (smp_cbor_iter_next(&doc, &it, &e)) {
                r = smp_cbor_item_text(&doc, e, "stat_list[]", &names[n]);
                if (r < 0)
                        return r;
                n++;
        }
        *ret = (struct smp_stat_list_rsp) { .names = TAKE_PTR(names), .n_names = n };
        return 0;
}

void smp_stat_list_rsp_done(struct smp_stat_list_rsp *rsp) {
        if (!rsp)
                return;
        free(rsp->names);
        *rsp = (struct smp_stat_list_rsp) { 0 };
}
