/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The whole update procedure (read state, erase, upload, check, test or
 * confirm, reset, wait for the reboot, confirm, verify) on a session, with
 * a device made of fuzzer bytes (fuzz-device.h): answers true and false,
 * late, lost, doubled and garbled, links that drop and refuse.
 *
 * Whatever the device says, the update ends (a silent device included),
 * reports once, names its step, and claims only what the device's last
 * answers support: "updated" only with the new image active and
 * confirmed, "reverted" only with the old one active again.  Every upload
 * chunk carries the file's own bytes at its offset. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-device.h"
#include "smpgw/smp-update.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FUZZ_VERBOSE=1: the steps and the result on stderr, to see where a
 * seed leads. */
static bool verbose(void) {
        static int v = -1;
        if (v < 0)
                v = getenv("FUZZ_VERBOSE") != NULL;
        return v;
}

struct run {
        struct smp_update *update;
        const uint8_t *image;
        size_t image_len;
        const uint8_t *hash;
        enum smp_update_mode mode;
        unsigned done_calls;
        bool done, cancelled;
};

static bool has_active(const struct smp_update_snapshot *s, const uint8_t *hash, bool confirmed) {
        for (size_t i = 0; i < s->n_slots; i++)
                if (s->slots[i].image == 0 && s->slots[i].active && s->slots[i].hash_len == 32 &&
                    memcmp(s->slots[i].hash, hash, 32) == 0 && (!confirmed || s->slots[i].confirmed))
                        return true;
        return false;
}

static const struct smp_update_slot *active_of(const struct smp_update_snapshot *s) {
        for (size_t i = 0; i < s->n_slots; i++)
                if (s->slots[i].image == 0 && s->slots[i].active)
                        return &s->slots[i];
        return NULL;
}

static void print_snapshot(const char *what, const struct smp_update_snapshot *s, const uint8_t *hash) {
        for (size_t i = 0; i < s->n_slots; i++) {
                const struct smp_update_slot *sl = &s->slots[i];
                fprintf(stderr, "%s: image %u slot %u %s%s%s%s%s\n", what, sl->image, sl->slot,
                        sl->hash_len == 32 && memcmp(sl->hash, hash, 32) == 0 ? "new" : "old",
                        sl->active ? " active" : "", sl->confirmed ? " confirmed" : "",
                        sl->pending ? " pending" : "", sl->permanent ? " permanent" : "");
        }
}

static void on_step(struct smp_update *u, enum smp_update_step step, void *userdata) {
        assert((unsigned) step < _SMP_UPDATE_STEP_MAX && step != SMP_UPDATE_STEP_DONE);
        if (verbose())
                fprintf(stderr, "step %s\n", smp_update_step_to_string(step));
}

static void on_progress(struct smp_upload *up, const struct smp_upload_progress *p, void *userdata) {
        struct run *run = userdata;
        assert(p->total == run->image_len && p->offset <= p->total);
        assert(p->window >= 1 && p->window <= SMP_UPLOAD_WINDOW_MAX);
}

static void on_done(struct smp_update *u, const struct smp_update_result *r, void *userdata) {
        struct run *run = userdata;

        run->done_calls++;
        run->done = true;
        /* Once, and never after a cancel. */
        assert(run->done_calls == 1 && !run->cancelled);
        if (verbose())
                fprintf(stderr, "done: %s, error %d in step %s, upload error %d\n",
                        smp_update_outcome_to_string(r->outcome), r->error,
                        smp_update_step_to_string(r->failed_step), r->upload.error);
        if (verbose()) {
                print_snapshot("before", &r->before, run->hash);
                print_snapshot("after", &r->after, run->hash);
        }
        assert(r->before.n_slots <= SMP_UPDATE_SLOTS_MAX && r->after.n_slots <= SMP_UPDATE_SLOTS_MAX);
        assert(memcmp(r->new_hash, run->hash, 32) == 0);
        assert(smp_update_outcome_to_string(r->outcome) && smp_update_step_to_string(r->failed_step));
        if (r->error < 0) {
                assert(r->outcome == SMP_UPDATE_OUTCOME_NONE || r->outcome == SMP_UPDATE_OUTCOME_STUCK);
                assert((unsigned) r->failed_step < SMP_UPDATE_STEP_DONE);
                return;
        }
        assert(r->error == 0);
        switch (r->outcome) {
        case SMP_UPDATE_OUTCOME_UPDATED:
                assert(has_active(&r->after, run->hash, true));
                break;
        case SMP_UPDATE_OUTCOME_UP_TO_DATE:
                assert(has_active(&r->before, run->hash, true));
                break;
        case SMP_UPDATE_OUTCOME_TESTING:
                assert(run->mode == SMP_UPDATE_TEST_ONLY && has_active(&r->after, run->hash, false));
                break;
        case SMP_UPDATE_OUTCOME_UPLOADED:
                assert(run->mode == SMP_UPDATE_UPLOAD_ONLY);
                break;
        case SMP_UPDATE_OUTCOME_REVERTED: {
                const struct smp_update_slot *now = active_of(&r->after), *then = active_of(&r->before);
                assert(now && then && now->hash_len == then->hash_len &&
                       memcmp(now->hash, then->hash, now->hash_len) == 0);
                assert(!has_active(&r->after, run->hash, false));
                break;
        }
        case SMP_UPDATE_OUTCOME_STUCK:
                break;
        default:
                assert(!"an update without error has an outcome");
        }
}

static void cancel(void *userdata) {
        struct run *run = userdata;
        if (run->done)
                return;
        smp_update_cancel(run->update);
        run->done = run->cancelled = true;
}

static void on_request(const struct smp_frame *f, const struct smp_img_upload_req *upload, void *userdata) {
        struct run *run = userdata;
        fuzz_check_upload_request(f, upload, run->image, run->image_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct fuzz_device *d = fuzz_device_new(data, size);
        struct run run = {};
        struct smp_update *u = NULL;

        if (!d)
                return 0;
        const struct fuzz_device_config *c = fuzz_device_get_config(d);
        run.image = fuzz_image(c->image_size, &run.image_len, &run.hash);
        run.mode = (enum smp_update_mode) (c->mode % _SMP_UPDATE_MODE_MAX);
        fuzz_device_set_new_hash(d, run.hash);
        fuzz_device_set_observer(d, on_request, &run);

        const struct smp_update_params p = {
                .data = run.image,
                .len = run.image_len,
                .mode = run.mode,
                .erase_first = c->flags & FUZZ_LINK_FLAG_A,
                .swap_timeout_usec = 2000000u * (1u + (c->timing >> 4)),
                .poll_interval_usec = 50000u * (1u + (c->timing & 15)),
                .window = c->window % 9,
                .chunk = fuzz_le16(c->chunk),
                .path_mtu = fuzz_le16(c->path_mtu),
                .chunk_timeout_usec = c->buf_count & 0x80 ? 100000u * (1u + (c->buf_count & 15)) : 0,
                .has_image = c->flags & FUZZ_LINK_FLAG_B,
                .image = 0,
                .upload_progress = on_progress,
                .step = on_step,
                .done = on_done,
                .userdata = &run,
        };
        assert(smp_update_start(fuzz_device_get_session(d), &p, &u) == 0);
        run.update = u;
        fuzz_device_set_cancel(d, cancel, &run);
        fuzz_device_run(d, &run.done);
        fuzz_device_free(d);
        return 0;
}
