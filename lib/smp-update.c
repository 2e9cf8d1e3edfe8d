/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/mcuboot-image.h"
#include "smpgw/smp-img.h"
#include "smpgw/smp-os.h"
#include "smpgw/smp-update.h"
#include "util.h"

/* Per request while polling a rebooting device: short, the poll repeats. */
#define POLL_REQUEST_TIMEOUT_USEC (500u * 1000u)
/* Erase of a whole slot may take long on real flash. */
#define ERASE_TIMEOUT_USEC (60u * 1000000u)
/* If the device keeps answering with its slot still pending this long
 * after a reset, the reset request was lost: send it again. */
#define RESET_RETRY_AFTER_USEC (5u * 1000000u)
#define RESET_MAX_TRIES 3u
/* Link drops survived during one upload before giving up. */
#define UPLOAD_RECONNECTS_MAX 5u

struct smp_update {
        struct smp_session *session;
        struct smp_update_params p;
        enum smp_update_step step;
        struct smp_update_result result;
        uint64_t start_usec;

        struct smp_request *req;      /* the request in flight, if any */
        struct smp_upload *upload;
        sd_event_source *poll_timer;
        uint64_t reset_usec;          /* when the reset was answered (or sent) */
        uint64_t last_reset_sent_usec;
        unsigned reset_tries;
        unsigned reconnects;
        bool finished;
};

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

/* ---- snapshot queries (image 0) ---- */

/* The slot image 0 runs from; NULL when none is active, and when more
 * than one is: MCUboot runs one, and a list that says otherwise supports
 * no claim about what runs ("reverted" with the new image listed active
 * beside the old, found by fuzz-update). */
static const struct smp_update_slot *snap_active(const struct smp_update_snapshot *s) {
        const struct smp_update_slot *active = NULL;
        for (size_t i = 0; i < s->n_slots; i++)
                if (s->slots[i].image == 0 && s->slots[i].active) {
                        if (active)
                                return NULL;
                        active = &s->slots[i];
                }
        return active;
}

static const struct smp_update_slot *snap_find(const struct smp_update_snapshot *s, const uint8_t hash[32]) {
        for (size_t i = 0; i < s->n_slots; i++)
                if (s->slots[i].image == 0 && s->slots[i].hash_len == 32 && memcmp(s->slots[i].hash, hash, 32) == 0)
                        return &s->slots[i];
        return NULL;
}

static bool snap_any_pending(const struct smp_update_snapshot *s) {
        for (size_t i = 0; i < s->n_slots; i++)
                if (s->slots[i].pending)
                        return true;
        return false;
}

static bool slot_is(const struct smp_update_slot *sl, const uint8_t hash[32]) {
        return sl && sl->hash_len == 32 && memcmp(sl->hash, hash, 32) == 0;
}

/* ---- machinery ---- */

static uint64_t now_usec(struct smp_update *u) {
        uint64_t t = 0;
        (void) sd_event_now(smp_session_get_event(u->session), CLOCK_MONOTONIC, &t);
        return t;
}

static void update_free(struct smp_update *u) {
        smp_request_cancel(u->req);
        smp_upload_cancel(u->upload);
        u->poll_timer = sd_event_source_disable_unref(u->poll_timer);
        free(u);
}

void smp_update_cancel(struct smp_update *u) {
        if (u)
                update_free(u);
}

static void finish(struct smp_update *u, int error, enum smp_update_outcome outcome) {
        if (u->finished)
                return;
        u->finished = true;
        u->req = NULL;
        u->upload = NULL;
        u->result.error = error;
        u->result.outcome = outcome;
        if (error < 0)
                u->result.failed_step = u->step;
        u->result.elapsed_usec = now_usec(u) - u->start_usec;
        u->step = SMP_UPDATE_STEP_DONE;
        if (u->p.done)
                u->p.done(u, &u->result, u->p.userdata);
        update_free(u);
}

static void set_step(struct smp_update *u, enum smp_update_step step) {
        u->step = step;
        if (u->p.step)
                u->p.step(u, step, u->p.userdata);
}

static int send_request(struct smp_update *u, uint8_t op, uint16_t group, uint8_t id,
                        const uint8_t *body, size_t len, uint64_t timeout, bool idempotent,
                        smp_request_done_fn done) {
        const struct smp_request_params rp = {
                .op = op,
                .group = group,
                .id = id,
                .body = body,
                .body_len = len,
                .timeout_usec = timeout,
                .idempotent = idempotent,
        };
        return smp_session_send(u->session, &rp, done, u, &u->req);
}

static const uint8_t empty_map[] = { 0xa0 };

static int send_state_read(struct smp_update *u, uint64_t timeout, smp_request_done_fn done) {
        return send_request(u, SMP_OP_READ, SMP_GROUP_IMAGE, SMP_IMG_CMD_STATE, empty_map, sizeof(empty_map),
                            timeout, true, done);
}

static int send_state_write(struct smp_update *u, const uint8_t *hash, bool confirm, smp_request_done_fn done) {
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
        return send_request(u, SMP_OP_WRITE, SMP_GROUP_IMAGE, SMP_IMG_CMD_STATE, body, (size_t) n, 0, true, done);
}

/* Common answer handling: -1 when finished with an error, else 0 with the
 * snapshot decoded when snap is given. */
static int answer_check(struct smp_update *u, int error, const uint8_t *body, size_t len,
                        struct smp_update_snapshot *snap) {
        u->req = NULL;
        if (error < 0) {
                finish(u, error, SMP_UPDATE_OUTCOME_NONE);
                return -1;
        }
        int e;
        if (snap)
                e = smp_update_snapshot_from_body(body, len, snap, &u->result.status);
        else {
                e = smp_status_decode(body, len, &u->result.status, NULL);
                if (e >= 0 && smp_status_failed(&u->result.status))
                        e = -EREMOTEIO;
        }
        if (e < 0) {
                finish(u, e, SMP_UPDATE_OUTCOME_NONE);
                return -1;
        }
        return 0;
}

static void step_upload(struct smp_update *u);
static void step_check_upload(struct smp_update *u);
static void step_mark(struct smp_update *u);
static void step_reset(struct smp_update *u);
static void step_confirm(struct smp_update *u);

/* After the reboot: what happened, against the "before" snapshot. */
static void classify(struct smp_update *u) {
        const struct smp_update_snapshot *after = &u->result.after;
        const struct smp_update_slot *active = snap_active(after);
        const struct smp_update_slot *old_active = snap_active(&u->result.before);
        const uint8_t *h = u->result.new_hash;

        if (slot_is(active, h)) {
                if (active->confirmed) {
                        /* confirmed already: by a permanent swap, or the
                         * application confirmed itself */
                        finish(u, 0, SMP_UPDATE_OUTCOME_UPDATED);
                        return;
                }
                if (u->p.mode == SMP_UPDATE_TEST_ONLY) {
                        finish(u, 0, SMP_UPDATE_OUTCOME_TESTING);
                        return;
                }
                step_confirm(u);
                return;
        }
        const struct smp_update_slot *new_slot = snap_find(after, h);
        if (old_active && active && active->hash_len == old_active->hash_len &&
            memcmp(active->hash, old_active->hash, active->hash_len) == 0 && (!new_slot || !new_slot->pending)) {
                u->result.rejected = !new_slot;
                finish(u, 0, SMP_UPDATE_OUTCOME_REVERTED);
                return;
        }
        finish(u, 0, SMP_UPDATE_OUTCOME_STUCK);
}

static void on_verify(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                      size_t len, void *userdata) {
        struct smp_update *u = userdata;
        if (answer_check(u, error, body, len, &u->result.after) < 0)
                return;
        const struct smp_update_slot *active = snap_active(&u->result.after);
        if (slot_is(active, u->result.new_hash) && active->confirmed)
                finish(u, 0, SMP_UPDATE_OUTCOME_UPDATED);
        else
                finish(u, 0, SMP_UPDATE_OUTCOME_STUCK);
}

static void on_confirm(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                       size_t len, void *userdata) {
        struct smp_update *u = userdata;
        struct smp_update_snapshot snap;
        if (answer_check(u, error, body, len, &snap) < 0)
                return;
        set_step(u, SMP_UPDATE_STEP_VERIFY);
        int e = send_state_read(u, 0, on_verify);
        if (e < 0)
                finish(u, e, SMP_UPDATE_OUTCOME_NONE);
}

static void step_confirm(struct smp_update *u) {
        set_step(u, SMP_UPDATE_STEP_CONFIRM);
        /* no hash: confirm the running image, which stops the revert */
        int e = send_state_write(u, NULL, true, on_confirm);
        if (e < 0)
                finish(u, e, SMP_UPDATE_OUTCOME_NONE);
}

static int schedule_poll(struct smp_update *u);

static void on_poll_answer(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                           size_t len, void *userdata) {
        struct smp_update *u = userdata;
        struct smp_update_snapshot snap;
        uint64_t now = now_usec(u);

        u->req = NULL;
        if (error == 0 && smp_update_snapshot_from_body(body, len, &snap, NULL) >= 0) {
                if (!snap_any_pending(&snap)) {
                        /* the device is back and MCUboot has decided */
                        u->result.reboot_usec = now - u->reset_usec;
                        u->result.after = snap;
                        classify(u);
                        return;
                }
                /* still pending: the reset has not happened yet, or the
                 * reset request was lost */
                if (now - u->last_reset_sent_usec > RESET_RETRY_AFTER_USEC) {
                        if (u->reset_tries >= RESET_MAX_TRIES) {
                                u->result.after = snap;
                                finish(u, -ETIMEDOUT, SMP_UPDATE_OUTCOME_STUCK);
                                return;
                        }
                        step_reset(u);
                        return;
                }
        }
        if (now - u->reset_usec > (u->p.swap_timeout_usec ? u->p.swap_timeout_usec
                                                          : SMP_UPDATE_SWAP_TIMEOUT_DEFAULT_USEC)) {
                finish(u, -ETIMEDOUT, SMP_UPDATE_OUTCOME_NONE);
                return;
        }
        int e = schedule_poll(u);
        if (e < 0)
                finish(u, e, SMP_UPDATE_OUTCOME_NONE);
}

static int on_poll_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        struct smp_update *u = userdata;
        int e;

        /* links that die with the device (BLE, USB serial) come back
         * only when reopened */
        if (!smp_session_is_open(u->session))
                (void) smp_session_reconnect(u->session);
        if (!smp_session_is_open(u->session))
                e = -ENOTCONN;
        else
                e = send_state_read(u, POLL_REQUEST_TIMEOUT_USEC, on_poll_answer);
        if (e < 0) {
                /* nothing to talk to yet: count it as an unanswered poll */
                on_poll_answer(u->session, e, NULL, NULL, 0, u);
        }
        return 0;
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

static void on_reset(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                     size_t len, void *userdata) {
        struct smp_update *u = userdata;
        u->req = NULL;
        /* The answer may be lost as the device goes down: not an error.
         * An answer that is an SMP error is one (a reset hook refused). */
        if (error == 0) {
                struct smp_status st;
                if (smp_status_decode(body, len, &st, NULL) >= 0 && smp_status_failed(&st)) {
                        u->result.status = st;
                        finish(u, -EREMOTEIO, SMP_UPDATE_OUTCOME_NONE);
                        return;
                }
        }
        if (u->reset_usec == 0)
                u->reset_usec = now_usec(u);
        set_step(u, SMP_UPDATE_STEP_WAIT_REBOOT);
        int e = schedule_poll(u);
        if (e < 0)
                finish(u, e, SMP_UPDATE_OUTCOME_NONE);
}

static void step_reset(struct smp_update *u) {
        set_step(u, SMP_UPDATE_STEP_RESET);
        u->reset_tries++;
        u->last_reset_sent_usec = now_usec(u);
        int e = send_request(u, SMP_OP_WRITE, SMP_GROUP_OS, SMP_OS_CMD_RESET, empty_map, sizeof(empty_map),
                             0, false, on_reset);
        if (e < 0)
                finish(u, e, SMP_UPDATE_OUTCOME_NONE);
}

static void on_mark(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                    size_t len, void *userdata) {
        struct smp_update *u = userdata;
        struct smp_update_snapshot snap;
        if (answer_check(u, error, body, len, &snap) < 0)
                return;
        const struct smp_update_slot *sl = snap_find(&snap, u->result.new_hash);
        if (!sl || !sl->pending) {
                u->result.after = snap;
                finish(u, -EIO, SMP_UPDATE_OUTCOME_STUCK);
                return;
        }
        step_reset(u);
}

static void step_mark(struct smp_update *u) {
        set_step(u, SMP_UPDATE_STEP_MARK);
        int e = send_state_write(u, u->result.new_hash, u->p.mode == SMP_UPDATE_CONFIRM_ONLY, on_mark);
        if (e < 0)
                finish(u, e, SMP_UPDATE_OUTCOME_NONE);
}

static void on_check_upload(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                            size_t len, void *userdata) {
        struct smp_update *u = userdata;
        struct smp_update_snapshot snap;
        if (answer_check(u, error, body, len, &snap) < 0)
                return;
        const struct smp_update_slot *sl = snap_find(&snap, u->result.new_hash);
        if (!sl || sl->active) {
                /* the upload went through but the slot does not hold the
                 * image: flash or transfer damage */
                u->result.after = snap;
                finish(u, -EIO, SMP_UPDATE_OUTCOME_NONE);
                return;
        }
        if (u->p.mode == SMP_UPDATE_UPLOAD_ONLY) {
                u->result.after = snap;
                finish(u, 0, SMP_UPDATE_OUTCOME_UPLOADED);
                return;
        }
        if (sl->pending)
                step_reset(u); /* marked by an earlier run already */
        else
                step_mark(u);
}

static void step_check_upload(struct smp_update *u) {
        set_step(u, SMP_UPDATE_STEP_CHECK_UPLOAD);
        int e = send_state_read(u, 0, on_check_upload);
        if (e < 0)
                finish(u, e, SMP_UPDATE_OUTCOME_NONE);
}

static void on_upload_done(struct smp_upload *up, const struct smp_upload_result *r, void *userdata) {
        struct smp_update *u = userdata;
        u->upload = NULL;
        u->result.upload = *r;
        if (r->error == -ECONNRESET && u->reconnects < UPLOAD_RECONNECTS_MAX) {
                /* The link dropped mid-transfer (BLE disconnect, serial
                 * hang-up): open it again and upload again; the device
                 * answers the first chunk with the offset it reached. */
                u->reconnects++;
                if (smp_session_reconnect(u->session) >= 0) {
                        step_upload(u);
                        return;
                }
        }
        if (r->error < 0) {
                u->result.status = r->status;
                finish(u, r->error, SMP_UPDATE_OUTCOME_NONE);
                return;
        }
        step_check_upload(u);
}

/* The caller's progress callback gets the caller's userdata, not ours. */
static void on_upload_progress(struct smp_upload *up, const struct smp_upload_progress *pr, void *userdata) {
        struct smp_update *u = userdata;
        if (u->p.upload_progress)
                u->p.upload_progress(up, pr, u->p.userdata);
}

static void step_upload(struct smp_update *u) {
        set_step(u, SMP_UPDATE_STEP_UPLOAD);
        const struct smp_upload_params up = {
                .data = u->p.data,
                .len = u->p.len,
                .has_image = u->p.has_image,
                .image = u->p.image,
                .window = u->p.window,
                .chunk = u->p.chunk,
                /* after a reconnect, what the attempt before learned */
                .path_mtu = u->result.upload.path_mtu ?: u->p.path_mtu,
                .timeout_usec = u->p.chunk_timeout_usec,
                .progress = on_upload_progress,
                .done = on_upload_done,
                .userdata = u,
        };
        int e = smp_upload_start(u->session, &up, &u->upload);
        if (e < 0)
                finish(u, e, SMP_UPDATE_OUTCOME_NONE);
}

static void on_erase(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                     size_t len, void *userdata) {
        struct smp_update *u = userdata;
        if (answer_check(u, error, body, len, NULL) < 0)
                return;
        step_upload(u);
}

static void on_read_state(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                          size_t len, void *userdata) {
        struct smp_update *u = userdata;
        if (answer_check(u, error, body, len, &u->result.before) < 0)
                return;

        const struct smp_update_snapshot *b = &u->result.before;
        const struct smp_update_slot *active = snap_active(b);
        const struct smp_update_slot *have = snap_find(b, u->result.new_hash);

        if (slot_is(active, u->result.new_hash)) {
                if (active->confirmed) {
                        u->result.after = *b;
                        finish(u, 0, SMP_UPDATE_OUTCOME_UP_TO_DATE);
                        return;
                }
                /* running it under test already (an earlier run reset the
                 * device): only the confirm is left */
                u->result.after = *b;
                classify(u);
                return;
        }
        if (have) {
                /* the secondary slot holds the image: no upload needed */
                u->result.upload_skipped = true;
                step_check_upload(u);
                return;
        }
        if (u->p.erase_first) {
                set_step(u, SMP_UPDATE_STEP_ERASE);
                int e = send_request(u, SMP_OP_WRITE, SMP_GROUP_IMAGE, SMP_IMG_CMD_ERASE, empty_map,
                                     sizeof(empty_map), ERASE_TIMEOUT_USEC, true, on_erase);
                if (e < 0)
                        finish(u, e, SMP_UPDATE_OUTCOME_NONE);
                return;
        }
        step_upload(u);
}

int smp_update_start(struct smp_session *s, const struct smp_update_params *params, struct smp_update **ret) {
        struct mcuboot_image *img = NULL;
        int e;

        if (!s || !params || !params->data || params->len == 0 || (unsigned) params->mode >= _SMP_UPDATE_MODE_MAX)
                return -EINVAL;
        e = mcuboot_image_parse(params->data, params->len, &img, NULL);
        if (e < 0)
                return -EINVAL;
        if (!img->sha256_tlv) {
                mcuboot_image_free(img);
                return -EINVAL;
        }

        struct smp_update *u = calloc(1, sizeof(*u));
        if (!u) {
                mcuboot_image_free(img);
                return -ENOMEM;
        }
        u->session = s;
        u->p = *params;
        memcpy(u->result.new_hash, img->sha256_tlv, 32);
        (void) mcuboot_version_format(&img->version, u->result.new_version, sizeof(u->result.new_version));
        mcuboot_image_free(img);
        u->start_usec = now_usec(u);

        set_step(u, SMP_UPDATE_STEP_READ_STATE);
        e = send_state_read(u, 0, on_read_state);
        if (e < 0) {
                update_free(u);
                return e;
        }
        if (ret)
                *ret = u;
        return 0;
}
