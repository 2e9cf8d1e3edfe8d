/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Image group decoders, requests and responses, on untrusted bodies, with
 * re-encode round trips; and the upload chunk computation with parameters
 * taken from the input, checked against the real encoder. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/smp-frame.h"
#include "smpgw/smp-img.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[SMP_FRAME_MAX + 64];
static uint8_t zeros[SMP_FRAME_MAX + 16];

static void writer(struct smp_cbor_writer *w, bool indef) {
        smp_cbor_writer_init(w, out, sizeof(out));
        w->indefinite = indef;
}

static size_t packet_size(struct smp_img_upload_req req, size_t n) {
        struct smp_cbor_writer w;
        req.data = smp_cbor_slice_make(zeros, n);
        writer(&w, false);
        assert(smp_img_upload_req_encode(&w, &req) == 0);
        return SMP_HEADER_SIZE + w.len;
}

static void chunk_check(const uint8_t *data, size_t size) {
        uint64_t v[4] = { 0 };
        if (size < 1 + sizeof(v))
                return;
        memcpy(v, data + 1, sizeof(v));
        uint8_t flags = data[0];
        struct smp_img_upload_req req = {
                .off = flags & 1 ? v[0] : v[0] & 0x1ffff,
                .has_len = flags & 2,
                .len = v[1] >> (flags >> 4),
                .has_image = flags & 4,
                .image = (uint32_t) v[2],
                .sha = (flags & 8) ? smp_cbor_slice_make(zeros, (size_t) (v[2] >> 32) % 33) : (struct smp_cbor_slice) { 0 },
                .has_upgrade = flags & 0x40,
        };
        size_t budget = (size_t) (v[3] % (SMP_FRAME_MAX + 100)), d;
        size_t cap = MIN(budget, (size_t) SMP_FRAME_MAX);
        int r = smp_img_upload_max_data(&req, budget, &d);
        if (r == -EMSGSIZE) {
                assert(packet_size(req, 0) > cap);
                return;
        }
        assert(r == 0);
        assert(packet_size(req, d) <= cap);
        assert(packet_size(req, d + 1) > cap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct smp_cbor_error error;
        struct smp_cbor_writer w;

        chunk_check(data, size);

        struct smp_img_state_rsp *st = malloc(2 * sizeof(*st));
        assert(st);
        if (smp_img_state_rsp_decode(data, size, &st[0], &error) >= 0) {
                for (int indef = 0; indef <= 1; indef++) {
                        writer(&w, indef);
                        st[0].frugal = indef;
                        assert(smp_img_state_rsp_encode(&w, &st[0]) == 0);
                        assert(smp_img_state_rsp_decode(out, w.len, &st[1], &error) == 0);
                        assert(st[1].n_images == st[0].n_images);
                        for (size_t i = 0; i < st[0].n_images; i++) {
                                assert(st[1].images[i].slot == st[0].images[i].slot);
                                assert(st[1].images[i].pending == st[0].images[i].pending);
                                assert(st[1].images[i].hash.len == st[0].images[i].hash.len);
                        }
                }
        }
        free(st);

        struct smp_img_state_write_req sw, sw2;
        if (smp_img_state_write_req_decode(data, size, &sw, &error) >= 0) {
                writer(&w, size & 1);
                assert(smp_img_state_write_req_encode(&w, &sw) == 0);
                assert(smp_img_state_write_req_decode(out, w.len, &sw2, &error) == 0);
                assert(sw2.confirm == sw.confirm && sw2.hash.len == sw.hash.len);
        }

        struct smp_img_upload_req ur, ur2;
        if (smp_img_upload_req_decode(data, size, &ur, &error) >= 0) {
                writer(&w, size & 1);
                int r = smp_img_upload_req_encode(&w, &ur);
                assert(r == 0 || (r == -EINVAL && ur.sha.len > SMP_IMG_UPLOAD_SHA_MAX));
                if (r == 0) {
                        assert(smp_img_upload_req_decode(out, w.len, &ur2, &error) == 0);
                        assert(ur2.off == ur.off && ur2.data.len == ur.data.len && ur2.len == ur.len &&
                               ur2.has_upgrade == ur.has_upgrade && ur2.image == ur.image);
                }
        }

        struct smp_img_upload_rsp up, up2;
        if (smp_img_upload_rsp_decode(data, size, &up, &error) >= 0) {
                writer(&w, size & 1);
                assert(smp_img_upload_rsp_encode(&w, &up) == 0);
                assert(smp_img_upload_rsp_decode(out, w.len, &up2, &error) == 0);
                assert(up2.off == up.off && up2.has_match == up.has_match && up2.match == up.match);
        }

        struct smp_img_erase_req er, er2;
        if (smp_img_erase_req_decode(data, size, &er, &error) >= 0) {
                writer(&w, size & 1);
                assert(smp_img_erase_req_encode(&w, &er) == 0);
                assert(smp_img_erase_req_decode(out, w.len, &er2, &error) == 0);
                assert(er2.has_slot == er.has_slot && er2.slot == er.slot);
        }

        struct smp_img_slot_info_rsp *si = malloc(2 * sizeof(*si));
        assert(si);
        if (smp_img_slot_info_rsp_decode(data, size, &si[0], &error) >= 0) {
                writer(&w, size & 1);
                assert(smp_img_slot_info_rsp_encode(&w, &si[0]) == 0);
                assert(smp_img_slot_info_rsp_decode(out, w.len, &si[1], &error) == 0);
                assert(si[1].n_images == si[0].n_images);
        }
        free(si);
        return 0;
}
