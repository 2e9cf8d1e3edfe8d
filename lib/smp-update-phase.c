/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The update procedure's three phases (smp-update.h): stage, activate and
 * verify, each a small state machine on a session the caller may close
 * once the phase ends.  Everything one phase leaves for the next is in
 * the checkpoint; nothing else survives between them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/mcuboot-image.h"
#include "smpgw/smp-img.h"
#include "smpgw/smp-os.h"
#include "smpgw/smp-update.h"
#include "update-internal.h"
#include "util.h"

/* Link drops survived during one upload before giving up. */
#define UPLOAD_RECONNECTS_MAX 5u

struct smp_update_phase_run {
        struct smp_session *session;       /* borrowed */
        struct smp_update_phase_params p;
        struct smp_update_phase_result result;  /* its checkpoint is the working copy */
        enum smp_update_step step;
        uint64_t start_usec;               /* CLOCK_MONOTONIC */

        struct smp_request *req;           /* the request in flight, if any */
        struct smp_upload *upload;
        /* With a fresh state, the phase begins from the loop, so that done
         * never runs inside smp_update_phase_start(). */
        sd_event_source *begin;
        struct smp_update_snapshot fresh;
        unsigned reconnects;
        bool finished;
};

static const char *const phase_names[_SMP_UPDATE_PHASE_MAX] = {
        [SMP_UPDATE_PHASE_STAGE] = "stage",
        [SMP_UPDATE_PHASE_ACTIVATE] = "activate",
        [SMP_UPDATE_PHASE_VERIFY] = "verify",
        [SMP_UPDATE_PHASE_DONE] = "done",
};

const char *smp_update_phase_to_string(enum smp_update_phase p) {
        return (unsigned) p < _SMP_UPDATE_PHASE_MAX ? phase_names[p] : NULL;
}

int smp_update_phase_from_string(const char *s) {
        for (int i = 0; s && i < _SMP_UPDATE_PHASE_MAX; i++)
                if (streq(s, phase_names[i]))
                        return i;
        return -EINVAL;
}

/* ---- snapshot queries (the image being updated) ---- */

/* A device with more than one updatable image (nRF5340: the network
 * core's is image 1) lists each image's slots as "image": N, slot 0/1
 * (Zephyr's img_mgmt_state_encode_slot()); the phases look only at the
 * image they update, the one the upload named. */

/* The slot image runs from; NULL when none is active, and when more
 * than one is: MCUboot runs one, and a list that says otherwise supports
 * no claim about what runs ("reverted" with the new image listed active
 * beside the old, found by fuzz-update). */
static const struct smp_update_slot *snap_active(const struct smp_update_snapshot *s, uint32_t image) {
        const struct smp_update_slot *active = NULL;
        for (size_t i = 0; i < s->n_slots; i++)
                if (s->slots[i].image == image && s->slots[i].active) {
                        if (active)
                                return NULL;
                        active = &s->slots[i];
                }
        return active;
}

static const struct smp_update_slot *snap_find(const struct smp_update_snapshot *s, uint32_t image,
                                               const uint8_t hash[32]) {
        for (size_t i = 0; i < s->n_slots; i++)
                if (s->slots[i].image == image && s->slots[i].hash_len == 32 && memcmp(s->slots[i].hash, hash, 32) == 0)
                        return &s->slots[i];
        return NULL;
}

static bool snap_any_pending(const struct smp_update_snapshot *s, uint32_t image) {
        for (size_t i = 0; i < s->n_slots; i++)
                if (s->slots[i].image == image && s->slots[i].pending)
                        return true;
        return false;
}

/* The image this run updates: the upload's "image", 0 when not given. */
static uint32_t run_image(const struct smp_update_phase_run *run) {
        return run->p.has_image ? run->p.image : 0;
}

static bool slot_is(const struct smp_update_slot *sl, const uint8_t hash[32]) {
        return sl && sl->hash_len == 32 && memcmp(sl->hash, hash, 32) == 0;
}

/* ---- machinery ---- */

static uint64_t now_usec(struct smp_update_phase_run *run, clockid_t clock) {
        uint64_t t = 0;
        (void) sd_event_now(smp_session_get_event(run->session), clock, &t);
        return t;
}

/* Realtime may step back: a negative span is unknown, 0. */
static uint64_t usec_since(uint64_t now, uint64_t then) {
        return now > then ? now - then : 0;
}

static struct smp_update_checkpoint *checkpoint(struct smp_update_phase_run *run) {
        return &run->result.checkpoint;
}

static void phase_free(struct smp_update_phase_run *run) {
        smp_request_cancel(run->req);
        smp_upload_cancel(run->upload);
        run->begin = sd_event_source_disable_unref(run->begin);
        free(run);
}

void smp_update_phase_cancel(struct smp_update_phase_run *run) {
        if (run)
                phase_free(run);
}

/* Ends the phase: next is where the caller goes on (for an error that may
 * pass, the phase itself). */
static void finish(struct smp_update_phase_run *run, int error, enum smp_update_outcome outcome,
                   enum smp_update_phase next) {
        if (run->finished)
                return;
        run->finished = true;
        run->req = NULL;          /* completing, or none */
        run->upload = NULL;
        run->result.error = error;
        run->result.outcome = outcome;
        run->result.next = next;
        if (error < 0)
                run->result.failed_step = run->step;
        run->result.elapsed_usec = now_usec(run, CLOCK_MONOTONIC) - run->start_usec;
        run->step = SMP_UPDATE_STEP_DONE;
        if (run->p.done)
                run->p.done(run, &run->result, run->p.userdata);
        phase_free(run);
}

/* A failure that running the same phase again may get past. */
static void fail(struct smp_update_phase_run *run, int error) {
        finish(run, error, SMP_UPDATE_OUTCOME_NONE, run->p.phase);
}

static void set_step(struct smp_update_phase_run *run, enum smp_update_step step) {
        run->step = step;
        if (run->p.step)
                run->p.step(run, step, run->p.userdata);
}

static int send_request_retries(struct smp_update_phase_run *run, uint8_t op, uint16_t group, uint8_t id,
                                const uint8_t *body, size_t len, uint64_t timeout, bool idempotent, unsigned retries,
                                smp_request_done_fn done) {
        const struct smp_request_params rp = {
                .op = op,
                .group = group,
                .id = id,
                .body = body,
                .body_len = len,
                .timeout_usec = timeout,
                .idempotent = idempotent,
                .retries = retries,
        };
        return smp_session_send(run->session, &rp, done, run, &run->req);
}

/* With the session's retries (for idempotent requests). */
static int send_request(struct smp_update_phase_run *run, uint8_t op, uint16_t group, uint8_t id, const uint8_t *body,
                        size_t len, uint64_t timeout, bool idempotent, smp_request_done_fn done) {
        return send_request_retries(run, op, group, id, body, len, timeout, idempotent, 0, done);
}

static const uint8_t empty_map[] = { 0xa0 };

/* Retries of the requests to a device that has just answered (the
 * confirm after verify's read, and the read after it).  Not the
 * session's: a caller sets those to 0 for verify, whose first read goes
 * to a device that may still be rebooting (one short request per
 * verify), and a confirm lost on a lossy link would then fail the
 * phase, and leave the image to be reverted at the next reset. */
#define UP_RETRIES SMP_SESSION_RETRIES_DEFAULT

static int send_state_read(struct smp_update_phase_run *run, uint64_t timeout, smp_request_done_fn done) {
        return send_request(run, SMP_OP_READ, SMP_GROUP_IMAGE, SMP_IMG_CMD_STATE, empty_map, sizeof(empty_map),
                            timeout, true, done);
}

/* retries 0: the session's. */
static int send_state_write(struct smp_update_phase_run *run, const uint8_t *hash, bool confirm, unsigned retries,
                            smp_request_done_fn done) {
        uint8_t body[64];
        struct smp_cbor_writer w;
        const struct smp_img_state_write_req req = {
                .hash = hash ? smp_cbor_slice_make(hash, 32) : (struct smp_cbor_slice) { 0 },
                .confirm = confirm,
        };
        smp_cbor_writer_init(&w, body, sizeof(body));
        (void) smp_img_state_write_req_encode(&w, &req);
        int n = smp_cbor_writer_finish(&w);
        if (n < 0)
                return n;
        /* testing or confirming the same hash twice is harmless */
        return send_request_retries(run, SMP_OP_WRITE, SMP_GROUP_IMAGE, SMP_IMG_CMD_STATE, body, (size_t) n, 0, true,
                                    retries, done);
}

static int send_reset(struct smp_update_phase_run *run, smp_request_done_fn done) {
        struct smp_update_checkpoint *cp = checkpoint(run);

        cp->reset_tries++;
        cp->reset_sent_usec = now_usec(run, CLOCK_REALTIME);
        /* not idempotent: a second reset could hit the booting image */
        return send_request(run, SMP_OP_WRITE, SMP_GROUP_OS, SMP_OS_CMD_RESET, empty_map, sizeof(empty_map), 0,
                            false, done);
}

/* Common answer handling: -1 when finished with an error, else 0 with the
 * snapshot decoded when snap is given. */
static int answer_check(struct smp_update_phase_run *run, int error, const uint8_t *body, size_t len,
                        struct smp_update_snapshot *snap) {
        run->req = NULL;
        if (error < 0) {
                fail(run, error);
                return -1;
        }
        int e;
        if (snap)
                e = smp_update_snapshot_from_body(body, len, snap, &run->result.status);
        else {
                e = smp_status_decode(body, len, &run->result.status, NULL);
                if (e >= 0 && smp_status_failed(&run->result.status))
                        e = -EREMOTEIO;
        }
        if (e < 0) {
                fail(run, e);
                return -1;
        }
        return 0;
}

/* The answer to a reset: the device may go down before its answer leaves
 * (a timeout) or take the link with it (-ECONNRESET): both mean it may
 * well have reset.  An answer that is an SMP error does not (a reset
 * hook refused).  0, or -1 when finished with that error. */
static int reset_answer_check(struct smp_update_phase_run *run, int error, const uint8_t *body, size_t len) {
        struct smp_update_checkpoint *cp = checkpoint(run);

        run->req = NULL;
        if (error == 0) {
                struct smp_status st;
                if (smp_status_decode(body, len, &st, NULL) >= 0 && smp_status_failed(&st)) {
                        run->result.status = st;
                        fail(run, -EREMOTEIO);
                        return -1;
                }
        }
        if (cp->reset_usec == 0) {
                cp->reset_usec = now_usec(run, CLOCK_REALTIME);
                cp->reset_answered = error == 0;
        }
        return 0;
}

/* ---- verify ---- */

static void on_verify_confirmed(struct smp_session *s, int error, const struct smp_header *hdr,
                                const uint8_t *body, size_t len, void *userdata) {
        struct smp_update_phase_run *run = userdata;
        if (answer_check(run, error, body, len, &run->result.after) < 0)
                return;
        const struct smp_update_slot *active = snap_active(&run->result.after, run_image(run));
        if (slot_is(active, checkpoint(run)->new_hash) && active->confirmed)
                finish(run, 0, SMP_UPDATE_OUTCOME_UPDATED, SMP_UPDATE_PHASE_DONE);
        else
                finish(run, 0, SMP_UPDATE_OUTCOME_STUCK, SMP_UPDATE_PHASE_DONE);
}

static void on_confirm(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                       size_t len, void *userdata) {
        struct smp_update_phase_run *run = userdata;
        struct smp_update_snapshot snap;
        if (answer_check(run, error, body, len, &snap) < 0)
                return;
        set_step(run, SMP_UPDATE_STEP_VERIFY);
        /* img_mgmt (Zephyr, Mynewt) answers a state write with the state
         * after it: one that shows the new image running confirmed is
         * the verify, and the link is free a round trip sooner.  Anything
         * else is read again. */
        const struct smp_update_slot *active = snap_active(&snap, run_image(run));
        if (slot_is(active, checkpoint(run)->new_hash) && active->confirmed) {
                run->result.after = snap;
                finish(run, 0, SMP_UPDATE_OUTCOME_UPDATED, SMP_UPDATE_PHASE_DONE);
                return;
        }
        int e = send_request_retries(run, SMP_OP_READ, SMP_GROUP_IMAGE, SMP_IMG_CMD_STATE, empty_map, sizeof(empty_map),
                                     0, true, UP_RETRIES, on_verify_confirmed);
        if (e < 0)
                fail(run, e);
}

/* The device is back and MCUboot has decided: what happened, against the
 * "before" snapshot (in run->result.after). */
static void classify(struct smp_update_phase_run *run) {
        const struct smp_update_checkpoint *cp = checkpoint(run);
        const struct smp_update_snapshot *after = &run->result.after;
        const struct smp_update_slot *active = snap_active(after, run_image(run));
        const struct smp_update_slot *old_active = snap_active(&cp->before, run_image(run));
        const uint8_t *h = cp->new_hash;

        if (slot_is(active, h)) {
                if (active->confirmed) {
                        /* confirmed already: by a permanent swap, or the
                         * application confirmed itself */
                        finish(run, 0, SMP_UPDATE_OUTCOME_UPDATED, SMP_UPDATE_PHASE_DONE);
                        return;
                }
                if (cp->mode == SMP_UPDATE_TEST_ONLY) {
                        finish(run, 0, SMP_UPDATE_OUTCOME_TESTING, SMP_UPDATE_PHASE_DONE);
                        return;
                }
                set_step(run, SMP_UPDATE_STEP_CONFIRM);
                /* no hash: confirm the running image, which stops the
                 * revert.  Zephyr takes that as the image the application
                 * runs from (img_mgmt_state_write(): image 0's); another
                 * image is named by its hash, which Zephyr refuses unless
                 * CONFIG_MCUMGR_GRP_IMG_ALLOW_CONFIRM_NON_ACTIVE_IMAGE_ANY
                 * (img_mgmt_set_next_boot_slot()): confirm-only is the
                 * mode such images update in. */
                int e = send_state_write(run, run_image(run) != 0 ? h : NULL, true, UP_RETRIES, on_confirm);
                if (e < 0)
                        fail(run, e);
                return;
        }
        const struct smp_update_slot *new_slot = snap_find(after, run_image(run), h);
        if (old_active && active && active->hash_len == old_active->hash_len &&
            memcmp(active->hash, old_active->hash, active->hash_len) == 0 && (!new_slot || !new_slot->pending)) {
                run->result.rejected = !new_slot;
                finish(run, 0, SMP_UPDATE_OUTCOME_REVERTED, SMP_UPDATE_PHASE_DONE);
                return;
        }
        finish(run, 0, SMP_UPDATE_OUTCOME_STUCK, SMP_UPDATE_PHASE_DONE);
}

static void not_yet(struct smp_update_phase_run *run) {
        finish(run, -EAGAIN, SMP_UPDATE_OUTCOME_NONE, SMP_UPDATE_PHASE_VERIFY);
}

static void on_verify_reset(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                            size_t len, void *userdata) {
        struct smp_update_phase_run *run = userdata;
        if (reset_answer_check(run, error, body, len) < 0)
                return;
        set_step(run, SMP_UPDATE_STEP_WAIT_REBOOT);
        not_yet(run);
}

static void verify_state(struct smp_update_phase_run *run, const struct smp_update_snapshot *snap) {
        struct smp_update_checkpoint *cp = checkpoint(run);
        uint64_t now = now_usec(run, CLOCK_REALTIME);

        if (!snap_any_pending(snap, run_image(run)) || slot_is(snap_active(snap, run_image(run)), cp->new_hash)) {
                /* the device is back and MCUboot has decided (booting the
                 * new image is a decision, whatever else is pending) */
                run->result.swap_usec = cp->reset_usec ? usec_since(now, cp->reset_usec) : 0;
                run->result.after = *snap;
                classify(run);
                return;
        }
        /* still pending: the reset has not happened yet, or the reset
         * request was lost */
        run->result.after = *snap;
        if (cp->reset_sent_usec == 0 || usec_since(now, cp->reset_sent_usec) > SMP_UPDATE_RESET_RETRY_AFTER_USEC) {
                if (cp->reset_tries >= SMP_UPDATE_RESET_MAX_TRIES) {
                        finish(run, -ETIMEDOUT, SMP_UPDATE_OUTCOME_STUCK, SMP_UPDATE_PHASE_DONE);
                        return;
                }
                set_step(run, SMP_UPDATE_STEP_RESET);
                int e = send_reset(run, on_verify_reset);
                if (e < 0)
                        fail(run, e);
                return;
        }
        not_yet(run);
}

static void on_verify_read(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                           size_t len, void *userdata) {
        struct smp_update_phase_run *run = userdata;
        struct smp_update_snapshot snap;

        run->req = NULL;
        /* no answer, the link went away, or an answer that is no image
         * state (a booting device's error): not back yet */
        if (error < 0 || smp_update_snapshot_from_body(body, len, &snap, NULL) < 0) {
                not_yet(run);
                return;
        }
        verify_state(run, &snap);
}

static int verify_begin(struct smp_update_phase_run *run) {
        int e;

        /* links that die with the device (BLE, USB serial) come back
         * only when reopened */
        if (!smp_session_is_open(run->session) && smp_session_reconnect(run->session) < 0)
                return -EAGAIN;
        set_step(run, SMP_UPDATE_STEP_WAIT_REBOOT);
        e = send_state_read(run, run->p.verify_timeout_usec ?: SMP_UPDATE_VERIFY_TIMEOUT_USEC, on_verify_read);
        if (e == -ENOTCONN || e == -ECONNRESET)
                return -EAGAIN;
        return e;
}

/* ---- activate ---- */

static void on_activate_reset(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                              size_t len, void *userdata) {
        struct smp_update_phase_run *run = userdata;
        if (reset_answer_check(run, error, body, len) < 0)
                return;
        finish(run, 0, SMP_UPDATE_OUTCOME_NONE, SMP_UPDATE_PHASE_VERIFY);
}

static void activate_reset(struct smp_update_phase_run *run) {
        set_step(run, SMP_UPDATE_STEP_RESET);
        int e = send_reset(run, on_activate_reset);
        if (e < 0)
                fail(run, e);
}

static void on_mark(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                    size_t len, void *userdata) {
        struct smp_update_phase_run *run = userdata;
        struct smp_update_snapshot snap;
        if (answer_check(run, error, body, len, &snap) < 0)
                return;
        const struct smp_update_slot *sl = snap_find(&snap, run_image(run), checkpoint(run)->new_hash);
        if (!sl || !sl->pending) {
                run->result.after = snap;
                finish(run, -EIO, SMP_UPDATE_OUTCOME_STUCK, SMP_UPDATE_PHASE_DONE);
                return;
        }
        activate_reset(run);
}

static void activate_state(struct smp_update_phase_run *run, const struct smp_update_snapshot *snap) {
        const struct smp_update_checkpoint *cp = checkpoint(run);
        const struct smp_update_slot *sl = snap_find(snap, run_image(run), cp->new_hash);

        if (!sl) {
                /* gone since it was staged (erased, overwritten) */
                run->result.after = *snap;
                finish(run, -ENOENT, SMP_UPDATE_OUTCOME_NONE, SMP_UPDATE_PHASE_STAGE);
                return;
        }
        if (sl->active) {
                /* activated already (a run that stopped before it could
                 * keep its checkpoint): a reset now would revert a test
                 * boot; verify judges it */
                run->result.after = *snap;
                finish(run, 0, SMP_UPDATE_OUTCOME_NONE, SMP_UPDATE_PHASE_VERIFY);
                return;
        }
        if (sl->pending) {
                activate_reset(run); /* marked by an earlier run already */
                return;
        }
        set_step(run, SMP_UPDATE_STEP_MARK);
        int e = send_state_write(run, cp->new_hash, cp->mode == SMP_UPDATE_CONFIRM_ONLY, 0, on_mark);
        if (e < 0)
                fail(run, e);
}

static void on_activate_read(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                             size_t len, void *userdata) {
        struct smp_update_phase_run *run = userdata;
        struct smp_update_snapshot snap;
        if (answer_check(run, error, body, len, &snap) < 0)
                return;
        activate_state(run, &snap);
}

/* ---- stage ---- */

static void stage_upload(struct smp_update_phase_run *run);

static void on_check_upload(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                            size_t len, void *userdata) {
        struct smp_update_phase_run *run = userdata;
        struct smp_update_snapshot snap;
        if (answer_check(run, error, body, len, &snap) < 0)
                return;
        run->result.after = snap;
        const struct smp_update_slot *sl = snap_find(&snap, run_image(run), checkpoint(run)->new_hash);
        if (!sl || sl->active) {
                /* the upload went through but the slot does not hold the
                 * image: flash or transfer damage */
                fail(run, -EIO);
                return;
        }
        finish(run, 0, SMP_UPDATE_OUTCOME_UPLOADED,
               checkpoint(run)->mode == SMP_UPDATE_UPLOAD_ONLY ? SMP_UPDATE_PHASE_DONE : SMP_UPDATE_PHASE_ACTIVATE);
}

static void stage_check_upload(struct smp_update_phase_run *run) {
        set_step(run, SMP_UPDATE_STEP_CHECK_UPLOAD);
        int e = send_state_read(run, 0, on_check_upload);
        if (e < 0)
                fail(run, e);
}

static void on_upload_done(struct smp_upload *up, const struct smp_upload_result *r, void *userdata) {
        struct smp_update_phase_run *run = userdata;
        run->upload = NULL;
        run->result.upload = *r;
        if (r->error == -ECONNRESET && run->reconnects < UPLOAD_RECONNECTS_MAX) {
                /* The link dropped mid-transfer (BLE disconnect, serial
                 * hang-up): open it again and upload again; the device
                 * answers the first chunk with the offset it reached. */
                run->reconnects++;
                if (smp_session_reconnect(run->session) >= 0) {
                        stage_upload(run);
                        return;
                }
        }
        if (r->error < 0) {
                run->result.status = r->status;
                fail(run, r->error);
                return;
        }
        stage_check_upload(run);
}

/* The caller's progress callback gets the caller's userdata, not ours. */
static void on_upload_progress(struct smp_upload *up, const struct smp_upload_progress *pr, void *userdata) {
        struct smp_update_phase_run *run = userdata;
        if (run->p.upload_progress)
                run->p.upload_progress(up, pr, run->p.userdata);
}

static void stage_upload(struct smp_update_phase_run *run) {
        set_step(run, SMP_UPDATE_STEP_UPLOAD);
        const struct smp_upload_params up = {
                .data = run->p.data,
                .len = run->p.len,
                .has_image = run->p.has_image,
                .image = run->p.image,
                .window = run->p.window,
                .chunk = run->p.chunk,
                /* after a reconnect, what the attempt before learned */
                .path_mtu = run->result.upload.path_mtu ?: run->p.path_mtu,
                .timeout_usec = run->p.chunk_timeout_usec,
                .first_timeout_usec = run->p.erase_timeout_usec,
                .image_hash = checkpoint(run)->new_hash,
                .progress = on_upload_progress,
                .done = on_upload_done,
                .userdata = run,
        };
        int e = smp_upload_start(run->session, &up, &run->upload);
        if (e < 0)
                fail(run, e);
}

static void on_erase(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                     size_t len, void *userdata) {
        struct smp_update_phase_run *run = userdata;
        if (answer_check(run, error, body, len, NULL) < 0)
                return;
        stage_upload(run);
}

static void on_stage_read(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                          size_t len, void *userdata) {
        struct smp_update_phase_run *run = userdata;
        struct smp_update_checkpoint *cp = checkpoint(run);
        struct smp_update_snapshot snap;

        if (answer_check(run, error, body, len, &snap) < 0)
                return;
        if (!cp->has_before) {
                cp->before = snap;
                cp->has_before = true;
        }

        const struct smp_update_slot *active = snap_active(&snap, run_image(run));
        const struct smp_update_slot *have = snap_find(&snap, run_image(run), cp->new_hash);

        if (slot_is(active, cp->new_hash)) {
                run->result.after = snap;
                if (active->confirmed) {
                        finish(run, 0, SMP_UPDATE_OUTCOME_UP_TO_DATE, SMP_UPDATE_PHASE_DONE);
                        return;
                }
                /* running it under test already (an earlier run reset the
                 * device): only verify is left */
                finish(run, 0, SMP_UPDATE_OUTCOME_TESTING, SMP_UPDATE_PHASE_VERIFY);
                return;
        }
        if (have) {
                /* the secondary slot holds the image: no upload needed */
                run->result.upload_skipped = true;
                stage_check_upload(run);
                return;
        }
        if (run->p.erase_first) {
                set_step(run, SMP_UPDATE_STEP_ERASE);
                uint64_t timeout =
                        run->p.erase_timeout_usec
                                ?: MAX(run->p.chunk_timeout_usec, (uint64_t) SMP_UPDATE_ERASE_TIMEOUT_DEFAULT_USEC);
                int e = send_request(run, SMP_OP_WRITE, SMP_GROUP_IMAGE, SMP_IMG_CMD_ERASE, empty_map,
                                     sizeof(empty_map), timeout, true, on_erase);
                if (e < 0)
                        fail(run, e);
                return;
        }
        stage_upload(run);
}

/* ---- start ---- */

static int on_begin(sd_event_source *src, void *userdata) {
        struct smp_update_phase_run *run = userdata;

        run->begin = sd_event_source_disable_unref(run->begin);
        if (run->p.phase == SMP_UPDATE_PHASE_ACTIVATE)
                activate_state(run, &run->fresh);
        else
                verify_state(run, &run->fresh);
        return 0;
}

/* The image's hash and version into a new checkpoint; -EINVAL when data is
 * not an MCUboot image with a SHA256 TLV (devices name images by it). */
static int checkpoint_from_image(const uint8_t *data, size_t len, struct smp_update_checkpoint *ret) {
        struct mcuboot_image *img = NULL;

        if (!data || len == 0 || mcuboot_image_parse(data, len, &img, NULL) < 0)
                return -EINVAL;
        if (!img->sha256_tlv) {
                mcuboot_image_free(img);
                return -EINVAL;
        }
        *ret = (struct smp_update_checkpoint) {};
        memcpy(ret->new_hash, img->sha256_tlv, 32);
        (void) mcuboot_version_format(&img->version, ret->new_version, sizeof(ret->new_version));
        mcuboot_image_free(img);
        return 0;
}

/* The checkpoint the phase starts from: the caller's, checked against the
 * image when both are given, or a new one from the image. */
static int phase_checkpoint(const struct smp_update_phase_params *p, struct smp_update_checkpoint *ret) {
        struct smp_update_checkpoint from_image;
        int e;

        if (p->data || p->len) {
                e = checkpoint_from_image(p->data, p->len, &from_image);
                if (e < 0)
                        return e;
                if (p->checkpoint && memcmp(p->checkpoint->new_hash, from_image.new_hash, 32) != 0)
                        return -EINVAL;
        }
        if (p->checkpoint)
                *ret = *p->checkpoint;
        else
                *ret = from_image;
        if (p->phase == SMP_UPDATE_PHASE_STAGE)
                ret->mode = p->mode;
        if ((unsigned) ret->mode >= _SMP_UPDATE_MODE_MAX || ret->before.n_slots > SMP_UPDATE_SLOTS_MAX)
                return -EINVAL;
        return 0;
}

int update_phase_start_fresh(struct smp_session *s, const struct smp_update_phase_params *params,
                             const struct smp_update_snapshot *fresh, struct smp_update_phase_run **ret) {
        struct smp_update_checkpoint cp;
        int e;

        if (!s || !params || (unsigned) params->phase >= SMP_UPDATE_PHASE_DONE)
                return -EINVAL;
        if (params->phase == SMP_UPDATE_PHASE_STAGE ? !params->data
                                                    : !params->checkpoint)
                return -EINVAL;
        if (params->phase == SMP_UPDATE_PHASE_STAGE && (unsigned) params->mode >= _SMP_UPDATE_MODE_MAX)
                return -EINVAL;
        /* Zephyr (img_mgmt_set_next_boot_slot(), 3.5 and later) refuses
         * to confirm the running slot of an image other than the
         * application's (IMAGE_CONFIRMATION_DENIED, unless
         * ALLOW_CONFIRM_NON_ACTIVE_IMAGE_ANY): test-and-confirm of image
         * N would test, reset, be refused the confirm and revert at the
         * next reset.  Confirm-only is how such images update. */
        if (params->phase == SMP_UPDATE_PHASE_STAGE && params->has_image && params->image != 0 &&
            params->mode == SMP_UPDATE_TEST_AND_CONFIRM)
                return -EINVAL;
        e = phase_checkpoint(params, &cp);
        if (e < 0)
                return e;
        if (params->phase == SMP_UPDATE_PHASE_ACTIVATE && cp.mode == SMP_UPDATE_UPLOAD_ONLY)
                return -EINVAL;
        if (params->phase == SMP_UPDATE_PHASE_VERIFY && !cp.has_before)
                return -EINVAL;

        struct smp_update_phase_run *run = calloc(1, sizeof(*run));
        if (!run)
                return -ENOMEM;
        run->session = s;
        run->p = *params;
        run->p.checkpoint = NULL; /* copied: the caller's may go away */
        run->result.phase = params->phase;
        run->result.next = params->phase;
        run->result.checkpoint = cp;
        run->start_usec = now_usec(run, CLOCK_MONOTONIC);

        if (params->phase == SMP_UPDATE_PHASE_ACTIVATE) {
                /* a new activation: its resets are counted afresh */
                struct smp_update_checkpoint *c = checkpoint(run);
                c->reset_usec = c->reset_sent_usec = 0;
                c->reset_tries = 0;
                c->reset_answered = false;
        }

        if (fresh && params->phase != SMP_UPDATE_PHASE_STAGE) {
                run->fresh = *fresh;
                e = sd_event_add_defer(smp_session_get_event(s), &run->begin, on_begin, run);
        } else if (params->phase == SMP_UPDATE_PHASE_STAGE) {
                set_step(run, SMP_UPDATE_STEP_READ_STATE);
                /* Alone: a Zephyr device over UDP has two buffers for
                 * requests and answers (CONFIG_MCUMGR_TRANSPORT_NETBUF_COUNT),
                 * and answers a request whose answer finds none free with
                 * ENOMEM, unhandled.  The upload asks mcumgr parameters
                 * once this is answered. */
                e = send_state_read(run, 0, on_stage_read);
        } else if (params->phase == SMP_UPDATE_PHASE_ACTIVATE) {
                set_step(run, SMP_UPDATE_STEP_CHECK_UPLOAD);
                e = send_state_read(run, 0, on_activate_read);
        } else
                e = verify_begin(run);
        if (e < 0) {
                phase_free(run);
                return e;
        }
        if (ret)
                *ret = run;
        return 0;
}

int smp_update_phase_start(struct smp_session *s, const struct smp_update_phase_params *params,
                           struct smp_update_phase_run **ret) {
        return update_phase_start_fresh(s, params, params ? params->state : NULL, ret);
}
