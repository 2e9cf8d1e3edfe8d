/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * OS management group (0) bodies.  Shapes from Zephyr smp_group_0.rst and
 * grp/os_mgmt/src/os_mgmt.c; see protocol.md section 2.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/smp-error.h"
#include "smpgw/smp-os.h"
#include "util.h"

/* {"key": text} with the text required or optional. */
static int decode_text_field(const uint8_t *body, size_t len, bool response, const char *key,
                             bool required, struct smp_cbor_slice *ret, struct smp_cbor_error *error) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        struct smp_cbor_doc doc;
        struct smp_cbor_slice s = { NULL, 0 };
        int r;

        r = smp_body_parse(body, len, response, error, &items, &doc);
        if (r < 0)
                return r;
        if (required)
                r = smp_cbor_map_get_text(&doc, SMP_CBOR_ROOT, key, &s);
        else
                r = smp_cbor_map_opt_text(&doc, SMP_CBOR_ROOT, key, &s);
        if (r < 0)
                return r;
        *ret = s;
        return 0;
}

static int encode_text_field(struct smp_cbor_writer *w, const char *key, struct smp_cbor_slice text,
                             bool optional) {
        if (!text.ptr && text.len > 0)
                return -EINVAL;
        if (optional && !text.ptr)
                return smp_cbor_put_empty_map(w);
        smp_cbor_put_map(w, 1);
        smp_cbor_put_text(w, key);
        smp_cbor_put_text_slice(w, text.ptr ? text : SMP_CBOR_SLICE_LIT(""));
        return smp_cbor_put_end(w);
}

int smp_os_echo_req_encode(struct smp_cbor_writer *w, struct smp_cbor_slice text) {
        return encode_text_field(w, "d", text, false);
}

int smp_os_echo_req_decode(const uint8_t *body, size_t len, struct smp_cbor_slice *ret_text,
                           struct smp_cbor_error *error) {
        return decode_text_field(body, len, false, "d", true, ret_text, error);
}

int smp_os_echo_rsp_encode(struct smp_cbor_writer *w, struct smp_cbor_slice text) {
        return encode_text_field(w, "r", text, false);
}

int smp_os_echo_rsp_decode(const uint8_t *body, size_t len, struct smp_cbor_slice *ret_text,
                           struct smp_cbor_error *error) {
        return decode_text_field(body, len, true, "r", true, ret_text, error);
}

int smp_os_taskstat_rsp_encode(struct smp_cbor_writer *w, const struct smp_os_taskstat_rsp *rsp) {
        if (!rsp || (!rsp->tasks && rsp->n_tasks > 0))
                return -EINVAL;

        smp_cbor_put_map(w, 1);
        smp_cbor_put_text(w, "tasks");
        smp_cbor_put_map(w, rsp->n_tasks);
        for (size_t i = 0; i < rsp->n_tasks; i++) {
                const struct smp_os_task *t = &rsp->tasks[i];
                smp_cbor_put_text_slice(w, t->name);
                smp_cbor_put_map(w, 9);
                smp_cbor_put_text(w, "prio");
                smp_cbor_put_int(w, t->prio);
                smp_cbor_put_text(w, "tid");
                smp_cbor_put_uint(w, t->tid);
                smp_cbor_put_text(w, "state");
                smp_cbor_put_uint(w, t->state);
                smp_cbor_put_text(w, "stkuse");
                smp_cbor_put_uint(w, t->stkuse);
                smp_cbor_put_text(w, "stksiz");
                smp_cbor_put_uint(w, t->stksiz);
                smp_cbor_put_text(w, "cswcnt");
                smp_cbor_put_uint(w, t->cswcnt);
                smp_cbor_put_text(w, "runtime");
                smp_cbor_put_uint(w, t->runtime);
                smp_cbor_put_text(w, "last_checkin");
                smp_cbor_put_uint(w, t->last_checkin);
                smp_cbor_put_text(w, "next_checkin");
                smp_cbor_put_uint(w, t->next_checkin);
                smp_cbor_put_end(w);
        }
        smp_cbor_put_end(w);
        return smp_cbor_put_end(w);
}

static int decode_task(const struct smp_cbor_doc *doc, uint32_t key, uint32_t value, struct smp_os_task *t) {
        static const struct {
                const char *key;
                size_t offset;
        } fields[] = {
                { "tid", offsetof(struct smp_os_task, tid) },
                { "state", offsetof(struct smp_os_task, state) },
                { "stkuse", offsetof(struct smp_os_task, stkuse) },
                { "stksiz", offsetof(struct smp_os_task, stksiz) },
                { "cswcnt", offsetof(struct smp_os_task, cswcnt) },
                { "runtime", offsetof(struct smp_os_task, runtime) },
                { "last_checkin", offsetof(struct smp_os_task, last_checkin) },
                { "next_checkin", offsetof(struct smp_os_task, next_checkin) },
        };
        int r;

        *t = (struct smp_os_task) { 0 };
        r = smp_cbor_item_text(doc, key, "tasks{} key", &t->name);
        if (r < 0)
                return r;
        r = smp_cbor_item_map(doc, value, "tasks{}");
        if (r < 0)
                return r;
        r = smp_cbor_map_opt_int(doc, value, "prio", &t->prio);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                r = smp_cbor_map_opt_uint(doc, value, fields[i].key,
                                          (uint64_t *) ((uint8_t *) t + fields[i].offset));
                if (r < 0)
                        return r;
        }
        return 0;
}

int smp_os_taskstat_rsp_decode(const uint8_t *body, size_t len, struct smp_os_taskstat_rsp *ret,
                               struct smp_cbor_error *error) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        _cleanup_free_ struct smp_os_task *tasks = NULL;
        struct smp_cbor_doc doc;
        struct smp_cbor_iter it;
        uint32_t map, k, v;
        size_t n = 0;
        int r;

        r = smp_body_parse(body, len, true, error, &items, &doc);
        if (r < 0)
                return r;
        r = smp_cbor_map_get_map(&doc, SMP_CBOR_ROOT, "tasks", &map);
        if (r < 0)
                return r;

        /* The count is bounded by the parsed items, so it is safe to size
         * the array from it. */
        if (doc.items[map].count > 0) {
                tasks = calloc(doc.items[map].count, sizeof(*tasks));
                if (!tasks)
                        return smp_cbor_doc_fail(&doc, -ENOMEM, 0, "out of memory");
        }
        smp_cbor_iter_init(&doc, map, &it);
        while (smp_cbor_iter_next_pair(&doc, &it, &k, &v)) {
                r = decode_task(&doc, k, v, &tasks[n]);
                if (r < 0)
                        return r;
                n++;
        }

        *ret = (struct smp_os_taskstat_rsp) { .tasks = TAKE_PTR(tasks), .n_tasks = n };
        return 0;
}

void smp_os_taskstat_rsp_done(struct smp_os_taskstat_rsp *rsp) {
        if (!rsp)
                return;
        free(rsp->tasks);
        *rsp = (struct smp_os_taskstat_rsp) { 0 };
}

int smp_os_datetime_encode(struct smp_cbor_writer *w, struct smp_cbor_slice datetime) {
        return encode_text_field(w, "datetime", datetime, false);
}

int smp_os_datetime_req_decode(const uint8_t *body, size_t len, struct smp_cbor_slice *ret,
                               struct smp_cbor_error *error) {
        return decode_text_field(body, len, false, "datetime", true, ret, error);
}

int smp_os_datetime_rsp_decode(const uint8_t *body, size_t len, struct smp_cbor_slice *ret,
                               struct smp_cbor_error *error) {
        return decode_text_field(body, len, true, "datetime", true, ret, error);
}

int smp_os_reset_req_encode(struct smp_cbor_writer *w, const struct smp_os_reset_req *req) {
        if (!req)
                return -EINVAL;
        smp_cbor_put_map(w, (size_t) req->force + (size_t) req->has_boot_mode);
        if (req->force) {
                smp_cbor_put_text(w, "force");
                smp_cbor_put_bool(w, true);
        }
        if (req->has_boot_mode) {
                smp_cbor_put_text(w, "boot_mode");
                smp_cbor_put_uint(w, req->boot_mode);
        }
        return smp_cbor_put_end(w);
}

int smp_os_reset_req_decode(const uint8_t *body, size_t len, struct smp_os_reset_req *ret,
                            struct smp_cbor_error *error) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        struct smp_os_reset_req req = { 0 };
        struct smp_cbor_doc doc;
        uint32_t idx;
        int r;

        r = smp_body_parse(body, len, false, error, &items, &doc);
        if (r < 0)
                return r;

        r = smp_cbor_map_find(&doc, SMP_CBOR_ROOT, "force", &idx);
        if (r >= 0) {
                /* bool (Zephyr's decoder, Nordic) or uint (the docs). */
                uint64_t u;
                if (doc.items[idx].type == SMP_CBOR_UINT) {
                        r = smp_cbor_item_uint(&doc, idx, "force", &u);
                        req.force = u != 0;
                } else
                        r = smp_cbor_item_bool(&doc, idx, "force", &req.force);
                if (r < 0)
                        return r;
        } else if (r != -ENOENT)
                return r;

        r = smp_cbor_map_opt_u32(&doc, SMP_CBOR_ROOT, "boot_mode", &req.boot_mode);
        if (r < 0)
                return r;
        req.has_boot_mode = r > 0;

        *ret = req;
        return 0;
}

int smp_os_params_rsp_encode(struct smp_cbor_writer *w, const struct smp_os_params_rsp *rsp) {
        if (!rsp)
                return -EINVAL;
        smp_cbor_put_map(w, 2);
        smp_cbor_put_text(w, "buf_size");
        smp_cbor_put_uint(w, rsp->buf_size);
        smp_cbor_put_text(w, "buf_count");
        smp_cbor_put_uint(w, rsp->buf_count);
        return smp_cbor_put_end(w);
}

int smp_os_params_rsp_decode(const uint8_t *body, size_t len, struct smp_os_params_rsp *ret,
                             struct smp_cbor_error *error) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        struct smp_os_params_rsp rsp;
        struct smp_cbor_doc doc;
        int r;

        r = smp_body_parse(body, len, true, error, &items, &doc);
        if (r < 0)
                return r;
        r = smp_cbor_map_get_u32(&doc, SMP_CBOR_ROOT, "buf_size", &rsp.buf_size);
        if (r < 0)
                return r;
        r = smp_cbor_map_get_u32(&doc, SMP_CBOR_ROOT, "buf_count", &rsp.buf_count);
        if (r < 0)
                return r;
        *ret = rsp;
        return 0;
}

int smp_os_info_req_encode(struct smp_cbor_writer *w, struct smp_cbor_slice format) {
        return encode_text_field(w, "format", format, true);
}

int smp_os_info_req_decode(const uint8_t *body, size_t len, struct smp_cbor_slice *ret_format,
                           struct smp_cbor_error *error) {
        return decode_text_field(body, len, false, "format", false, ret_format, error);
}

int smp_os_info_rsp_encode(struct smp_cbor_writer *w, struct smp_cbor_slice output) {
        return encode_text_field(w, "output", output, false);
}

int smp_os_info_rsp_decode(const uint8_t *body, size_t len, struct smp_cbor_slice *ret_output,
                           struct smp_cbor_error *error) {
        return decode_text_field(body, len, true, "output", true, ret_output, error);
}

int smp_os_bootloader_info_req_encode(struct smp_cbor_writer *w, struct smp_cbor_slice query) {
        return encode_text_field(w, "query", query, true);
}

int smp_os_bootloader_info_req_decode(const uint8_t *body, size_t len, struct smp_cbor_slice *ret_query,
                                      struct smp_cbor_error *error) {
        return decode_text_field(body, len, false, "query", false, ret_query, error);
}

int smp_os_bootloader_info_rsp_encode(struct smp_cbor_writer *w,
                                      const struct smp_os_bootloader_info_rsp *rsp) {
        if (!rsp || (!rsp->bootloader.ptr && rsp->bootloader.len > 0))
                return -EINVAL;
        smp_cbor_put_map(w, (size_t) smp_cbor_slice_present(rsp->bootloader) + (size_t) rsp->has_mode +
                                    (size_t) rsp->no_downgrade);
        if (smp_cbor_slice_present(rsp->bootloader)) {
                smp_cbor_put_text(w, "bootloader");
                smp_cbor_put_text_slice(w, rsp->bootloader);
        }
        if (rsp->has_mode) {
                smp_cbor_put_text(w, "mode");
                smp_cbor_put_int(w, rsp->mode);
        }
        if (rsp->no_downgrade) {
                smp_cbor_put_text(w, "no-downgrade");
                smp_cbor_put_bool(w, true);
        }
        return smp_cbor_put_end(w);
}

int smp_os_bootloader_info_rsp_decode(const uint8_t *body, size_t len,
                                      struct smp_os_bootloader_info_rsp *ret,
                                      struct smp_cbor_error *error) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        struct smp_os_bootloader_info_rsp rsp = { 0 };
        struct smp_cbor_doc doc;
        int r;

        r = smp_body_parse(body, len, true, error, &items, &doc);
        if (r < 0)
                return r;
        r = smp_cbor_map_opt_text(&doc, SMP_CBOR_ROOT, "bootloader", &rsp.bootloader);
        if (r < 0)
                return r;
        r = smp_cbor_map_opt_int(&doc, SMP_CBOR_ROOT, "mode", &rsp.mode);
        if (r < 0)
                return r;
        rsp.has_mode = r > 0;
        r = smp_cbor_map_opt_bool(&doc, SMP_CBOR_ROOT, "no-downgrade", &rsp.no_downgrade);
        if (r < 0)
                return r;
        *ret = rsp;
        return 0;
}
