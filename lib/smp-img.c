/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Image management group (1) bodies and upload chunk sizing.  Shapes from
 * Zephyr smp_group_1.rst, grp/img_mgmt/src/img_mgmt.c and
 * img_mgmt_state.c; see protocol.md sections 3 and 4.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/smp-error.h"
#include "smpgw/smp-frame.h"
#include "smpgw/smp-img.h"
#include "util.h"

/* ------------------------------------------------------------------ */
/* State                                                               */

static void encode_flag(struct smp_cbor_writer *w, const char *key, bool value, bool frugal) {
        if (frugal && !value)
                return;
        smp_cbor_put_text(w, key);
        smp_cbor_put_bool(w, value);
}

int smp_img_state_rsp_encode(struct smp_cbor_writer *w, const struct smp_img_state_rsp *rsp) {
        if (!rsp || rsp->n_images > SMP_IMG_MAX_IMAGES)
                return -EINVAL;
        /* Refuse before writing anything. */
        for (size_t i = 0; i < rsp->n_images; i++)
                if ((!rsp->images[i].version.ptr && rsp->images[i].version.len > 0) ||
                    (!rsp->images[i].hash.ptr && rsp->images[i].hash.len > 0))
                        return -EINVAL;

        smp_cbor_put_map(w, 1 + (size_t) rsp->has_split_status);
        smp_cbor_put_text(w, "images");
        smp_cbor_put_array(w, rsp->n_images);
        for (size_t i = 0; i < rsp->n_images; i++) {
                const struct smp_img_slot_state *s = &rsp->images[i];
                bool f = rsp->frugal;
                size_t pairs = 2 + (size_t) s->has_image + (size_t) smp_cbor_slice_present(s->hash);

                pairs += f ? (size_t) s->bootable + s->pending + s->confirmed + s->active + s->permanent : 5;

                smp_cbor_put_map(w, pairs);
                if (s->has_image) {
                        smp_cbor_put_text(w, "image");
                        smp_cbor_put_uint(w, s->image);
                }
                smp_cbor_put_text(w, "slot");
                smp_cbor_put_uint(w, s->slot);
                smp_cbor_put_text(w, "version");
                smp_cbor_put_text_slice(w, s->version.ptr ? s->version : SMP_CBOR_SLICE_LIT(""));
                if (smp_cbor_slice_present(s->hash)) {
                        smp_cbor_put_text(w, "hash");
                        smp_cbor_put_bytes(w, s->hash.ptr, s->hash.len);
                }
                encode_flag(w, "bootable", s->bootable, f);
                encode_flag(w, "pending", s->pending, f);
                encode_flag(w, "confirmed", s->confirmed, f);
                encode_flag(w, "active", s->active, f);
                encode_flag(w, "permanent", s->permanent, f);
                smp_cbor_put_end(w);
        }
        smp_cbor_put_end(w);
        if (rsp->has_split_status) {
                smp_cbor_put_text(w, "splitStatus");
                smp_cbor_put_int(w, rsp->split_status);
        }
        return smp_cbor_put_end(w);
}

static int decode_slot_state(const struct smp_cbor_doc *doc, uint32_t entry, struct smp_img_slot_state *s) {
        static const struct {
                const char *key;
                size_t offset;
        } flags[] = {
                { "bootable", offsetof(struct smp_img_slot_state, bootable) },
                { "pending", offsetof(struct smp_img_slot_state, pending) },
                { "confirmed", offsetof(struct smp_img_slot_state, confirmed) },
                { "active", offsetof(struct smp_img_slot_state, active) },
                { "permanent", offsetof(struct smp_img_slot_state, permanent) },
        };
        int r;

        *s = (struct smp_img_slot_state) { 0 };
        r = smp_cbor_item_map(doc, entry, "images[]");
        if (r < 0)
                return r;
        r = smp_cbor_map_opt_u32(doc, entry, "image", &s->image);
        if (r < 0)
                return r;
        s->has_image = r > 0;
        r = smp_cbor_map_get_u32(doc, entry, "slot", &s->slot);
        if (r < 0)
                return r;
        r = smp_cbor_map_get_text(doc, entry, "version", &s->version);
        if (r < 0)
                return r;
        /* MCUboot serial recovery sends "hash" only when built with
         * MCUBOOT_SERIAL_IMG_GRP_HASH: optional. */
        r = smp_cbor_map_opt_bytes(doc, entry, "hash", &s->hash);
        if (r < 0)
                return r;
        if (r > 0 && (s->hash.len == 0 || s->hash.len > SMP_IMG_HASH_MAX))
                return smp_cbor_doc_fail(doc, -EBADMSG, doc->items[entry].offset,
                                         "field 'hash': %zu bytes, expected 1 to %d", s->hash.len,
                                         SMP_IMG_HASH_MAX);
        for (size_t i = 0; i < ELEMENTSOF(flags); i++) {
                r = smp_cbor_map_opt_bool(doc, entry, flags[i].key, (bool *) ((uint8_t *) s + flags[i].offset));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The "images" array of a state or slot info answer, bounded. */
static int get_images_array(const struct smp_cbor_doc *doc, uint32_t *ret) {
        uint32_t images;
        int r = smp_cbor_map_get_array(doc, SMP_CBOR_ROOT, "images", &images);
        if (r < 0)
                return r;
        if (doc->items[images].count > SMP_IMG_MAX_IMAGES)
                return smp_cbor_doc_fail(doc, -E2BIG, doc->items[images].offset,
                                         "field 'images': %" PRIu32 " entries, at most %d supported",
                                         doc->items[images].count, SMP_IMG_MAX_IMAGES);
        *ret = images;
        return 0;
}

int smp_img_state_rsp_decode(const uint8_t *body, size_t len, struct smp_img_state_rsp *ret,
                             struct smp_cbor_error *error) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        _cleanup_free_ struct smp_img_state_rsp *rsp = NULL;
        struct smp_cbor_doc doc;
        struct smp_cbor_iter it;
        uint32_t images, entry;
        int r;

        r = smp_body_parse(body, len, true, error, &items, &doc);
        if (r < 0)
                return r;
        /* Built aside so that *ret is written only on success. */
        rsp = calloc(1, sizeof(*rsp));
        if (!rsp)
                return smp_cbor_doc_fail(&doc, -ENOMEM, 0, "out of memory");

        r = get_images_array(&doc, &images);
        if (r < 0)
                return r;
        smp_cbor_iter_init(&doc, images, &it);
        while (smp_cbor_iter_next(&doc, &it, &entry)) {
                r = decode_slot_state(&doc, entry, &rsp->images[rsp->n_images]);
                if (r < 0)
                        return r;
                rsp->n_images++;
        }

        r = smp_cbor_map_opt_int(&doc, SMP_CBOR_ROOT, "splitStatus", &rsp->split_status);
        if (r < 0)
                return r;
        rsp->has_split_status = r > 0;

        *ret = *rsp;
        return 0;
}

int smp_img_state_write_req_encode(struct smp_cbor_writer *w, const struct smp_img_state_write_req *req) {
        if (!req || (!req->hash.ptr && req->hash.len > 0))
                return -EINVAL;
        smp_cbor_put_map(w, 1 + (size_t) smp_cbor_slice_present(req->hash));
        if (smp_cbor_slice_present(req->hash)) {
                smp_cbor_put_text(w, "hash");
                smp_cbor_put_bytes(w, req->hash.ptr, req->hash.len);
        }
        smp_cbor_put_text(w, "confirm");
        smp_cbor_put_bool(w, req->confirm);
        return smp_cbor_put_end(w);
}

int smp_img_state_write_req_decode(const uint8_t *body, size_t len, struct smp_img_state_write_req *ret,
                                   struct smp_cbor_error *error) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        struct smp_img_state_write_req req = { 0 };
        struct smp_cbor_doc doc;
        int r;

        r = smp_body_parse(body, len, false, error, &items, &doc);
        if (r < 0)
                return r;
        r = smp_cbor_map_opt_bytes(&doc, SMP_CBOR_ROOT, "hash", &req.hash);
        if (r < 0)
                return r;
        /* Zephyr's decoder defaults confirm to false when absent. */
        r = smp_cbor_map_opt_bool(&doc, SMP_CBOR_ROOT, "confirm", &req.confirm);
        if (r < 0)
                return r;
        *ret = req;
        return 0;
}

/* ------------------------------------------------------------------ */
/* Upload                                                              */

static size_t upload_pairs(const struct smp_img_upload_req *req) {
        return 2 + (size_t) req->has_len + (size_t) req->has_image +
               (size_t) smp_cbor_slice_present(req->sha) + (size_t) req->has_upgrade;
}

static int upload_req_check(const struct smp_img_upload_req *req) {
        if (!req)
                return -EINVAL;
        if (!req->sha.ptr && req->sha.len > 0)
                return -EINVAL;
        if (req->sha.len > SMP_IMG_UPLOAD_SHA_MAX)
                return -EINVAL;
        return 0;
}

int smp_img_upload_req_encode(struct smp_cbor_writer *w, const struct smp_img_upload_req *req) {
        int r = upload_req_check(req);

        if (r < 0)
                return r;
        if (!req->data.ptr && req->data.len > 0)
                return -EINVAL;

        smp_cbor_put_map(w, upload_pairs(req));
        smp_cbor_put_text(w, "off");
        smp_cbor_put_uint(w, req->off);
        smp_cbor_put_text(w, "data");
        smp_cbor_put_bytes(w, req->data.ptr, req->data.len);
        if (req->has_len) {
                smp_cbor_put_text(w, "len");
                smp_cbor_put_uint(w, req->len);
        }
        if (req->has_image) {
                smp_cbor_put_text(w, "image");
                smp_cbor_put_uint(w, req->image);
        }
        if (smp_cbor_slice_present(req->sha)) {
                smp_cbor_put_text(w, "sha");
                smp_cbor_put_bytes(w, req->sha.ptr, req->sha.len);
        }
        if (req->has_upgrade) {
                smp_cbor_put_text(w, "upgrade");
                smp_cbor_put_bool(w, req->upgrade);
        }
        return smp_cbor_put_end(w);
}

int smp_img_upload_req_decode(const uint8_t *body, size_t len, struct smp_img_upload_req *ret,
                              struct smp_cbor_error *error) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        struct smp_img_upload_req req = { 0 };
        struct smp_cbor_doc doc;
        int r;

        r = smp_body_parse(body, len, false, error, &items, &doc);
        if (r < 0)
                return r;
        r = smp_cbor_map_get_uint(&doc, SMP_CBOR_ROOT, "off", &req.off);
        if (r < 0)
                return r;
        r = smp_cbor_map_opt_bytes(&doc, SMP_CBOR_ROOT, "data", &req.data);
        if (r < 0)
                return r;
        r = smp_cbor_map_opt_uint(&doc, SMP_CBOR_ROOT, "len", &req.len);
        if (r < 0)
                return r;
        req.has_len = r > 0;
        r = smp_cbor_map_opt_u32(&doc, SMP_CBOR_ROOT, "image", &req.image);
        if (r < 0)
                return r;
        req.has_image = r > 0;
        r = smp_cbor_map_opt_bytes(&doc, SMP_CBOR_ROOT, "sha", &req.sha);
        if (r < 0)
                return r;
        r = smp_cbor_map_opt_bool(&doc, SMP_CBOR_ROOT, "upgrade", &req.upgrade);
        if (r < 0)
                return r;
        req.has_upgrade = r > 0;
        *ret = req;
        return 0;
}

int smp_img_upload_rsp_encode(struct smp_cbor_writer *w, const struct smp_img_upload_rsp *rsp) {
        if (!rsp)
                return -EINVAL;
        smp_cbor_put_map(w, 1 + (size_t) rsp->has_match);
        smp_cbor_put_text(w, "off");
        smp_cbor_put_uint(w, rsp->off);
        if (rsp->has_match) {
                smp_cbor_put_text(w, "match");
                smp_cbor_put_bool(w, rsp->match);
        }
        return smp_cbor_put_end(w);
}

int smp_img_upload_rsp_decode(const uint8_t *body, size_t len, struct smp_img_upload_rsp *ret,
                              struct smp_cbor_error *error) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        struct smp_img_upload_rsp rsp = { 0 };
        struct smp_cbor_doc doc;
        int r;

        r = smp_body_parse(body, len, true, error, &items, &doc);
        if (r < 0)
                return r;
        r = smp_cbor_map_get_uint(&doc, SMP_CBOR_ROOT, "off", &rsp.off);
        if (r < 0)
                return r;
        r = smp_cbor_map_opt_bool(&doc, SMP_CBOR_ROOT, "match", &rsp.match);
        if (r < 0)
                return r;
        rsp.has_match = r > 0;
        *ret = rsp;
        return 0;
}

int smp_img_upload_max_data(const struct smp_img_upload_req *req, size_t frame_budget,
                            size_t *ret_data_len) {
        /* Largest value each head size can describe, and the smallest that
         * needs it (CBOR heads are always the shortest form here). */
        static const struct {
                size_t head;
                uint64_t min, max;
        } heads[] = {
                { 1, 0, 23 },
                { 2, 24, UINT8_MAX },
                { 3, UINT8_MAX + 1, UINT16_MAX },
                { 5, UINT16_MAX + 1, UINT32_MAX },
                { 9, (uint64_t) UINT32_MAX + 1, UINT64_MAX },
        };
        size_t fixed, avail, best = 0;
        bool found = false;
        int r;

        r = upload_req_check(req);
        if (r < 0)
                return r;
        if (!ret_data_len)
                return -EINVAL;

        /* Everything but the data string's head and bytes. */
        fixed = SMP_HEADER_SIZE + smp_cbor_head_size(upload_pairs(req)) +
                smp_cbor_text_size(3) + smp_cbor_uint_size(req->off) +      /* "off": off */
                smp_cbor_text_size(4);                                       /* "data" */
        if (req->has_len)
                fixed += smp_cbor_text_size(3) + smp_cbor_uint_size(req->len);
        if (req->has_image)
                fixed += smp_cbor_text_size(5) + smp_cbor_uint_size(req->image);
        if (smp_cbor_slice_present(req->sha))
                fixed += smp_cbor_text_size(3) + smp_cbor_bytes_size(req->sha.len);
        if (req->has_upgrade)
                fixed += smp_cbor_text_size(7) + 1;

        frame_budget = MIN(frame_budget, (size_t) SMP_FRAME_MAX);
        if (frame_budget < fixed + 1)
                return -EMSGSIZE;
        avail = frame_budget - fixed;

        /* For each head size, the most data whose head has that size and
         * still fits; the best of them.  (Not monotonic: with 25 bytes
         * left, 24 data bytes need a 2-byte head, so 23 is the answer.) */
        for (size_t i = 0; i < ELEMENTSOF(heads); i++) {
                if (avail < heads[i].head)
                        break;
                uint64_t n = MIN((uint64_t) (avail - heads[i].head), heads[i].max);
                if (n < heads[i].min)
                        continue;
                if (!found || n > best) {
                        best = (size_t) n;
                        found = true;
                }
        }
        if (!found)
                return -EMSGSIZE;
        *ret_data_len = best;
        return 0;
}

/* ------------------------------------------------------------------ */
/* Erase and slot info                                                 */

int smp_img_erase_req_encode(struct smp_cbor_writer *w, const struct smp_img_erase_req *req) {
        if (!req)
                return -EINVAL;
        smp_cbor_put_map(w, (size_t) req->has_slot);
        if (req->has_slot) {
                smp_cbor_put_text(w, "slot");
                smp_cbor_put_uint(w, req->slot);
        }
        return smp_cbor_put_end(w);
}

int smp_img_erase_req_decode(const uint8_t *body, size_t len, struct smp_img_erase_req *ret,
                             struct smp_cbor_error *error) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        struct smp_img_erase_req req = { 0 };
        struct smp_cbor_doc doc;
        int r;

        r = smp_body_parse(body, len, false, error, &items, &doc);
        if (r < 0)
                return r;
        r = smp_cbor_map_opt_u32(&doc, SMP_CBOR_ROOT, "slot", &req.slot);
        if (r < 0)
                return r;
        req.has_slot = r > 0;
        *ret = req;
        return 0;
}

int smp_img_slot_info_rsp_encode(struct smp_cbor_writer *w, const struct smp_img_slot_info_rsp *rsp) {
        if (!rsp || rsp->n_images > SMP_IMG_MAX_IMAGES)
                return -EINVAL;
        for (size_t i = 0; i < rsp->n_images; i++)
                if (rsp->images[i].n_slots > SMP_IMG_MAX_SLOTS)
                        return -EINVAL;

        smp_cbor_put_map(w, 1);
        smp_cbor_put_text(w, "images");
        smp_cbor_put_array(w, rsp->n_images);
        for (size_t i = 0; i < rsp->n_images; i++) {
                const struct smp_img_slot_info_image *im = &rsp->images[i];
                smp_cbor_put_map(w, 2 + (size_t) im->has_max_image_size);
                smp_cbor_put_text(w, "image");
                smp_cbor_put_uint(w, im->image);
                smp_cbor_put_text(w, "slots");
                smp_cbor_put_array(w, im->n_slots);
                for (size_t j = 0; j < im->n_slots; j++) {
                        const struct smp_img_slot_info *s = &im->slots[j];
                        smp_cbor_put_map(w, 2 + (size_t) s->has_upload_image_id);
                        smp_cbor_put_text(w, "slot");
                        smp_cbor_put_uint(w, s->slot);
                        if (s->has_rc) {
                                smp_cbor_put_text(w, "rc");
                                smp_cbor_put_int(w, s->rc);
                        } else {
                                smp_cbor_put_text(w, "size");
                                smp_cbor_put_uint(w, s->size);
                        }
                        if (s->has_upload_image_id) {
                                smp_cbor_put_text(w, "upload_image_id");
                                smp_cbor_put_uint(w, s->upload_image_id);
                        }
                        smp_cbor_put_end(w);
                }
                smp_cbor_put_end(w);
                if (im->has_max_image_size) {
                        smp_cbor_put_text(w, "max_image_size");
                        smp_cbor_put_uint(w, im->max_image_size);
                }
                smp_cbor_put_end(w);
        }
        smp_cbor_put_end(w);
        return smp_cbor_put_end(w);
}

static int decode_slot_info_image(const struct smp_cbor_doc *doc, uint32_t entry,
                                  struct smp_img_slot_info_image *im) {
        struct smp_cbor_iter it;
        uint32_t slots, s;
        int r;

        *im = (struct smp_img_slot_info_image) { 0 };
        r = smp_cbor_item_map(doc, entry, "images[]");
        if (r < 0)
                return r;
        r = smp_cbor_map_get_u32(doc, entry, "image", &im->image);
        if (r < 0)
                return r;
        r = smp_cbor_map_get_array(doc, entry, "slots", &slots);
        if (r < 0)
                return r;
        if (doc->items[slots].count > SMP_IMG_MAX_SLOTS)
                return smp_cbor_doc_fail(doc, -E2BIG, doc->items[slots].offset,
                                         "field 'slots': %" PRIu32 " entries, at most %d supported",
                                         doc->items[slots].count, SMP_IMG_MAX_SLOTS);
        smp_cbor_iter_init(doc, slots, &it);
        while (smp_cbor_iter_next(doc, &it, &s)) {
                struct smp_img_slot_info *si = &im->slots[im->n_slots];
                r = smp_cbor_item_map(doc, s, "slots[]");
                if (r < 0)
                        return r;
                r = smp_cbor_map_get_u32(doc, s, "slot", &si->slot);
                if (r < 0)
                        return r;
                /* Zephyr's img_mgmt_slot_info() writes "rc" in place of
                 * "size" for a slot whose flash area it cannot open */
                int64_t rc;
                r = smp_cbor_map_opt_int(doc, s, "rc", &rc);
                if (r < 0)
                        return r;
                if (r > 0) {
                        if (rc < INT32_MIN || rc > INT32_MAX)
                                return smp_cbor_doc_fail(doc, -ERANGE, doc->items[s].offset,
                                                         "field 'rc': %" PRId64 " out of range", rc);
                        si->has_rc = true;
                        si->rc = (int32_t) rc;
                        r = smp_cbor_map_opt_uint(doc, s, "size", &si->size);
                } else
                        r = smp_cbor_map_get_uint(doc, s, "size", &si->size);
                if (r < 0)
                        return r;
                r = smp_cbor_map_opt_u32(doc, s, "upload_image_id", &si->upload_image_id);
                if (r < 0)
                        return r;
                si->has_upload_image_id = r > 0;
                im->n_slots++;
        }
        r = smp_cbor_map_opt_uint(doc, entry, "max_image_size", &im->max_image_size);
        if (r < 0)
                return r;
        im->has_max_image_size = r > 0;
        return 0;
}

int smp_img_slot_info_rsp_decode(const uint8_t *body, size_t len, struct smp_img_slot_info_rsp *ret,
                                 struct smp_cbor_error *error) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        _cleanup_free_ struct smp_img_slot_info_rsp *rsp = NULL;
        struct smp_cbor_doc doc;
        struct smp_cbor_iter it;
        uint32_t images, entry;
        int r;

        r = smp_body_parse(body, len, true, error, &items, &doc);
        if (r < 0)
                return r;
        rsp = calloc(1, sizeof(*rsp));
        if (!rsp)
                return smp_cbor_doc_fail(&doc, -ENOMEM, 0, "out of memory");
        r = get_images_array(&doc, &images);
        if (r < 0)
                return r;
        smp_cbor_iter_init(&doc, images, &it);
        while (smp_cbor_iter_next(&doc, &it, &entry)) {
                r = decode_slot_info_image(&doc, entry, &rsp->images[rsp->n_images]);
                if (r < 0)
                        return r;
                rsp->n_images++;
        }
        *ret = *rsp;
        return 0;
}
