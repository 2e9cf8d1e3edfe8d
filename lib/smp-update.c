/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The update procedure's names and snapshots, and the one-shot procedure
 * (smp_update_start()): stage, activate and verify (smp-update-phase.c)
 * one after the other on one session, verify repeated every poll interval
 * while the device reboots.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/mcuboot-image.h"
#include "smpgw/smp-img.h"
#include "smpgw/smp-update.h"
#include "update-internal.h"
#include "util.h"

static const char *const mode_names[_SMP_UPDATE_MODE_MAX] = {
        [SMP_UPDATE_TEST_AND_CONFIRM] = "test-and-confirm",
        [SMP_UPDATE_CONFIRM_ONLY] = "confirm-only",
        [SMP_UPDATE_TEST_ONLY] = "test-only",
        [SMP_UPDATE_UPLOAD_ONLY] = "upload-only",
};

static const char *const step_names[_SMP_UPDATE_STEP_MAX] = {
        [SMP_UPDATE_STEP_READ_STATE] = "read-state",
        [SMP_UPDATE_STEP_ERASE] = "erase",
        [SMP_UPDATE_STEP_UPLOAD] = "upload",
        [SMP_UPDATE_STEP_CHECK_UPLOAD] = "check-upload",
        [SMP_UPDATE_STEP_MARK] = "mark",
        [SMP_UPDATE_STEP_RESET] = "reset",
        [SMP_UPDATE_STEP_WAIT_REBOOT] = "wait-reboot",
        [SMP_UPDATE_STEP_CONFIRM] = "confirm",
        [SMP_UPDATE_STEP_VERIFY] = "verify",
        [SMP_UPDATE_STEP_DONE] = "done",
};

static const char *const outcome_names[_SMP_UPDATE_OUTCOME_MAX] = {
        [SMP_UPDATE_OUTCOME_NONE] = "failed",
        [SMP_UPDATE_OUTCOME_UPDATED] = "updated",
        [SMP_UPDATE_OUTCOME_UP_TO_DATE] = "up-to-date",
        [SMP_UPDATE_OUTCOME_TESTING] = "testing",
        [SMP_UPDATE_OUTCOME_UPLOADED] = "uploaded",
        [SMP_UPDATE_OUTCOME_REVERTED] = "reverted",
        [SMP_UPDATE_OUTCOME_STUCK] = "stuck",
};

const char *smp_update_mode_to_string(enum smp_update_mode m) {
        return (unsigned) m < _SMP_UPDATE_MODE_MAX ? mode_names[m] : NULL;
}

int smp_update_mode_from_string(const char *s) {
        for (int i = 0; s && i < _SMP_UPDATE_MODE_MAX; i++)
                if (streq(s, mode_names[i]))
                        return i;
        return -EINVAL;
}

const char *smp_update_step_to_string(enum smp_update_step s) {
        return (unsigned) s < _SMP_UPDATE_STEP_MAX ? step_names[s] : NULL;
}

const char *smp_update_outcome_to_string(enum smp_update_outcome o) {
        return (unsigned) o < _SMP_UPDATE_OUTCOME_MAX ? outcome_names[o] : NULL;
}

void smp_update_slot_from_state(const struct smp_img_slot_state *st, struct smp_update_slot *ret) {
        *ret = (struct smp_update_slot) {
                .present = true,
                .image = st->has_image ? st->image : 0,
                .slot = st->slot,
                .bootable = st->bootable,
                .pending = st->pending,
                .confirmed = st->confirmed,
                .active = st->active,
                .permanent = st->permanent,
        };
        if (smp_cbor_slice_present(st->version)) {
                (void) smp_cbor_slice_copy(st->version, ret->version, sizeof(ret->version));
                /* Zephyr reports "1.2.3.4" (".4" only when the build is
                 * not 0); shown as MCUboot writes it, "1.2.3+4". */
                (void) mcuboot_version_normalize(ret->version, sizeof(ret->version));
        }
        if (smp_cbor_slice_present(st->hash)) {
                ret->hash_len = MIN(st->hash.len, sizeof(ret->hash));
                memcpy(ret->hash, st->hash.ptr, ret->hash_len);
        }
}

int smp_update_snapshot_from_body(const uint8_t *body, size_t len, struct smp_update_snapshot *ret,
                                  struct smp_status *ret_status) {
        _cleanup_free_ struct smp_img_state_rsp *rsp = malloc(sizeof(*rsp));
        struct smp_update_snapshot snap = { 0 };
        int e;

        if (!rsp)
                return -ENOMEM;
        e = smp_img_state_rsp_decode(body, len, rsp, NULL);
        if (e == -EREMOTEIO && ret_status)
                (void) smp_status_decode(body, len, ret_status, NULL);
        if (e < 0)
                return e;
        for (size_t i = 0; i < rsp->n_images && snap.n_slots < SMP_UPDATE_SLOTS_MAX; i++)
                smp_update_slot_from_state(&rsp->images[i], &snap.slots[snap.n_slots++]);
        *ret = snap;
        return 0;
}

const struct smp_update_slot *smp_update_refused_under_test(const struct smp_update_snapshot *snap, uint32_t image,
                                                            const struct smp_status *status) {
        const struct smp_update_slot *running = NULL;
        bool other = false;

        if (!snap || !status || !status->has_err || status->err_group != SMP_GROUP_IMAGE ||
            (status->err_rc != SMP_IMG_ERR_NO_FREE_SLOT && status->err_rc != SMP_IMG_ERR_IMAGE_ALREADY_PENDING))
                return NULL;
        for (size_t i = 0; i < MIN(snap->n_slots, (size_t) SMP_UPDATE_SLOTS_MAX); i++) {
                const struct smp_update_slot *s = &snap->slots[i];
                if (!s->present || s->image != image)
                        continue;
                if (!s->active)
                        other = true;
                else if (running)
                        return NULL; /* two claim to run: no claim at all */
                else
                        running = s;
        }
        return running && !running->confirmed && other ? running : NULL;
}

/* ---- the one-shot procedure: the three phases on one session ---- */

struct smp_update {
        struct smp_session *session;       /* borrowed */
        struct smp_update_params p;
        struct smp_update_result result;
        struct smp_update_checkpoint checkpoint;
        uint64_t start_usec;               /* CLOCK_MONOTONIC */
        uint64_t reset_done_usec;          /* CLOCK_MONOTONIC: activate ended; the swap timeout runs */

        struct smp_update_phase_run *run;  /* the phase running, if any */
        sd_event_source *poll_timer;
        bool has_step;
        enum smp_update_step last_step;    /* the step the caller was told last */
        bool finished;
};

static uint64_t now_usec(struct smp_update *u) {
        uint64_t t = 0;
        (void) sd_event_now(smp_session_get_event(u->session), CLOCK_MONOTONIC, &t);
        return t;
}

static void update_free(struct smp_update *u) {
        smp_update_phase_cancel(u->run);
        u->poll_timer = sd_event_source_disable_unref(u->poll_timer);
        free(u);
}

void smp_update_cancel(struct smp_update *u) {
        if (u)
                update_free(u);
}

static void set_step(struct smp_update *u, enum smp_update_step step) {
        /* each verify of the polling begins by waiting for the reboot:
         * the caller hears of it once */
        if (u->has_step && u->last_step == SMP_UPDATE_STEP_WAIT_REBOOT && step == SMP_UPDATE_STEP_WAIT_REBOOT)
                return;
        u->has_step = true;
        u->last_step = step;
        if (u->p.step)
                u->p.step(u, step, u->p.userdata);
}

static void finish(struct smp_update *u, int error, enum smp_update_outcome outcome, enum smp_update_step failed_step) {
        if (u->finished)
                return;
        u->finished = true;
        u->run = NULL;            /* completing, or none */
        u->result.error = error;
        u->result.outcome = outcome;
        if (error < 0)
                u->result.failed_step = failed_step;
        u->result.before = u->checkpoint.before;
        memcpy(u->result.new_hash, u->checkpoint.new_hash, sizeof(u->result.new_hash));
        memcpy(u->result.new_version, u->checkpoint.new_version, sizeof(u->result.new_version));
        u->result.elapsed_usec = now_usec(u) - u->start_usec;
        if (u->p.done)
                u->p.done(u, &u->result, u->p.userdata);
        update_free(u);
}

/* Ends the procedure with what a phase found (r is valid during its done
 * callback only: so is r->status, which the caller gets from here). */
static void finish_with(struct smp_update *u, const struct smp_update_phase_result *r) {
        u->result.after = r->after;
        u->result.rejected = r->rejected;
        u->result.status = r->status;
        u->result.reboot_usec = r->swap_usec;
        finish(u, r->error, r->outcome, r->failed_step);
}

static void on_phase_step(struct smp_update_phase_run *run, enum smp_update_step step, void *userdata) {
        set_step(userdata, step);
}

static void on_phase_progress(struct smp_upload *up, const struct smp_upload_progress *pr, void *userdata) {
        struct smp_update *u = userdata;
        if (u->p.upload_progress)
                u->p.upload_progress(up, pr, u->p.userdata);
}

static void on_phase_done(struct smp_update_phase_run *run, const struct smp_update_phase_result *r,
                          void *userdata);
static int on_poll_timer(sd_event_source *src, uint64_t usec, void *userdata);

static int phase_start(struct smp_update *u, enum smp_update_phase phase, const struct smp_update_snapshot *fresh) {
        const struct smp_update_phase_params pp = {
                .phase = phase,
                .data = phase == SMP_UPDATE_PHASE_STAGE ? u->p.data : NULL,
                .len = phase == SMP_UPDATE_PHASE_STAGE ? u->p.len : 0,
                .checkpoint = phase == SMP_UPDATE_PHASE_STAGE ? NULL : &u->checkpoint,
                .mode = u->p.mode,
                .erase_first = u->p.erase_first,
                .window = u->p.window,
                .chunk = u->p.chunk,
                .chunk_timeout_usec = u->p.chunk_timeout_usec,
                .erase_timeout_usec = u->p.erase_timeout_usec,
                .path_mtu = u->p.path_mtu,
                .has_image = u->p.has_image,
                .image = u->p.image,
                .upload_progress = on_phase_progress,
                .step = on_phase_step,
                .done = on_phase_done,
                .userdata = u,
        };
        return update_phase_start_fresh(u->session, &pp, fresh, &u->run);
}

static int schedule_poll(struct smp_update *u) {
        uint64_t interval = u->p.poll_interval_usec ? u->p.poll_interval_usec : SMP_UPDATE_POLL_INTERVAL_DEFAULT_USEC;
        if (!u->poll_timer)
                return sd_event_add_time_relative(smp_session_get_event(u->session), &u->poll_timer,
                                                  CLOCK_MONOTONIC, interval, 1000, on_poll_timer, u);
        int e = sd_event_source_set_time_relative(u->poll_timer, interval);
        if (e < 0)
                return e;
        return sd_event_source_set_enabled(u->poll_timer, SD_EVENT_ONESHOT);
}

/* The device did not answer with a decision (yet): poll again, within the
 * swap timeout. */
static void poll_again(struct smp_update *u) {
        uint64_t timeout = u->p.swap_timeout_usec ? u->p.swap_timeout_usec : SMP_UPDATE_SWAP_TIMEOUT_DEFAULT_USEC;
        if (now_usec(u) - u->reset_done_usec > timeout) {
                finish(u, -ETIMEDOUT, SMP_UPDATE_OUTCOME_NONE, SMP_UPDATE_STEP_WAIT_REBOOT);
                return;
        }
        int e = schedule_poll(u);
        if (e < 0)
                finish(u, e, SMP_UPDATE_OUTCOME_NONE, SMP_UPDATE_STEP_WAIT_REBOOT);
}

static int on_poll_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        struct smp_update *u = userdata;
        /* a verify that cannot even start (no link yet) is an unanswered poll */
        if (phase_start(u, SMP_UPDATE_PHASE_VERIFY, NULL) < 0) {
                u->run = NULL;
                poll_again(u);
        }
        return 0;
}

static void on_phase_done(struct smp_update_phase_run *run, const struct smp_update_phase_result *r,
                          void *userdata) {
        struct smp_update *u = userdata;
        int e;

        u->run = NULL;
        u->checkpoint = r->checkpoint;
        if (r->phase == SMP_UPDATE_PHASE_STAGE) {
                u->result.upload = r->upload;
                u->result.upload_skipped = r->upload_skipped;
        }
        if (r->error == -EAGAIN) {
                poll_again(u);
                return;
        }
        if (r->error < 0 || r->next == SMP_UPDATE_PHASE_DONE) {
                finish_with(u, r);
                return;
        }
        if (r->phase == SMP_UPDATE_PHASE_ACTIVATE && r->next == SMP_UPDATE_PHASE_VERIFY &&
            u->checkpoint.reset_tries > 0) {
                /* the device resets: poll until it answers with MCUboot's decision */
                u->reset_done_usec = now_usec(u);
                set_step(u, SMP_UPDATE_STEP_WAIT_REBOOT);
                e = schedule_poll(u);
        } else
                /* on at once, with the state the phase has just read */
                e = phase_start(u, r->next, &r->after);
        if (e < 0)
                finish(u, e, SMP_UPDATE_OUTCOME_NONE, u->has_step ? u->last_step : SMP_UPDATE_STEP_READ_STATE);
}

int smp_update_start(struct smp_session *s, const struct smp_update_params *params, struct smp_update **ret) {
        int e;

        if (!s || !params || !params->data || params->len == 0 || (unsigned) params->mode >= _SMP_UPDATE_MODE_MAX)
                return -EINVAL;

        struct smp_update *u = calloc(1, sizeof(*u));
        if (!u)
                return -ENOMEM;
        u->session = s;
        u->p = *params;
        u->start_usec = now_usec(u);

        /* stage checks the image (-EINVAL) and fills the checkpoint, which
         * every phase's result brings back */
        e = phase_start(u, SMP_UPDATE_PHASE_STAGE, NULL);
        if (e < 0) {
                u->run = NULL;
                update_free(u);
                return e;
        }
        if (ret)
                *ret = u;
        return 0;
}
