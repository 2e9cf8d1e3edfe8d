/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pipelined image upload on its own, with the parameters the caller
 * may give (buffer size and count, window, chunk size, a learned path
 * MTU, timeouts, failures allowed) and a device made of fuzzer bytes
 * (fuzz-device.h).
 *
 * The upload ends whatever the device does, reports once, never goes
 * past the file, sends the file's own bytes at every offset, keeps every
 * packet within the buffer it was told of, and succeeds only once the
 * device has acknowledged the whole file (or, after it answered offset 0
 * to the last chunk, listed the image in its state). */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz-device.h"
#include "smpgw/smp-upload.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
        struct smp_upload *upload;
        const uint8_t *image;
        size_t image_len;
        size_t packet_max;        /* the buffer given, less the link's share; 0: not given */
        uint64_t acked;
        unsigned done_calls;
        bool done, cancelled;
};

static void on_progress(struct smp_upload *up, const struct smp_upload_progress *p, void *userdata) {
        struct run *run = userdata;
        assert(p->total == run->image_len && p->offset <= p->total);
        assert(p->window >= 1 && p->window <= SMP_UPLOAD_WINDOW_MAX);
        run->acked = p->offset;
}

static void on_done(struct smp_upload *u, const struct smp_upload_result *r, void *userdata) {
        struct run *run = userdata;

        run->done_calls++;
        run->done = true;
        /* Once, and never after a cancel. */
        assert(run->done_calls == 1 && !run->cancelled);
        assert(r->window_max <= SMP_UPLOAD_WINDOW_MAX);
        assert(r->resumed_at <= run->image_len);
        if (r->error == 0) {
                assert(run->acked == run->image_len);
                assert(!r->has_match || r->match);
        }
}

static void cancel(void *userdata) {
        struct run *run = userdata;
        if (run->done)
                return;
        smp_upload_cancel(run->upload);
        run->done = run->cancelled = true;
}

static void on_request(const struct smp_frame *f, const struct smp_img_upload_req *upload, void *userdata) {
        struct run *run = userdata;
        fuzz_check_upload_request(f, upload, run->image, run->image_len);
        if (run->packet_max && f->hdr.group == SMP_GROUP_IMAGE && f->hdr.id == 1)
                assert(SMP_HEADER_SIZE + f->body_len <= run->packet_max);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct fuzz_device *d = fuzz_device_new(data, size);
        struct run run = {};
        struct smp_upload *u = NULL;
        const uint8_t *hash;

        if (!d)
                return 0;
        const struct fuzz_device_config *c = fuzz_device_get_config(d);
        run.image = fuzz_image(c->image_size, &run.image_len, &hash);
        fuzz_device_set_new_hash(d, hash);
        fuzz_device_set_observer(d, on_request, &run);

        uint32_t buf_size = fuzz_le16(c->buf_size);
        if (buf_size)
                run.packet_max = buf_size - (c->flags & FUZZ_LINK_BUFFER_OVERHEAD ? MIN(buf_size, 4u) : 0);
        const struct smp_upload_params p = {
                .data = run.image,
                .len = run.image_len,
                .has_image = c->flags & FUZZ_LINK_FLAG_B,
                .image = c->mode >> 4,
                .upgrade = c->flags & FUZZ_LINK_FLAG_A,
                .window = c->window % 9,
                .chunk = fuzz_le16(c->chunk),
                .path_mtu = fuzz_le16(c->path_mtu),
                .buf_size = buf_size,
                .buf_count = c->buf_count % 8,
                .first_timeout_usec = c->timing & 1 ? 1000000u * (1u + (c->timing >> 4)) : 0,
                .timeout_usec = c->timing & 2 ? 100000u * (1u + (c->timing >> 4)) : 0,
                .max_failures = c->mode % 8,
                .image_hash = hash,
                .progress = on_progress,
                .done = on_done,
                .userdata = &run,
        };
        int r = smp_upload_start(fuzz_device_get_session(d), &p, &u);
        if (r == 0) {
                run.upload = u;
                fuzz_device_set_cancel(d, cancel, &run);
                fuzz_device_run(d, &run.done);
        }
        fuzz_device_free(d);
        return 0;
}
