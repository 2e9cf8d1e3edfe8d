/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Running mesh distributions (distribution.h): the state machine that
 * drives one Distributor over SMP shell commands, one command at a time,
 * from one timer.  Every step starts from on_timer(); every answer comes
 * back through on_exec() or on_upload_done(), which only record what they
 * read and arm the timer again, so the session is never freed inside one
 * of its own callbacks.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "db.h"
#include "distribution-internal.h"
#include "distribution.h"
#include "engine.h"
#include "log.h"
#include "manager.h"
#include "smpgw/mcuboot-image.h"
#include "smpgw/mesh-dfu.h"
#include "smpgw/smp-parse.h"
#include "smpgw/smp-session.h"
#include "smpgw/smp-shell.h"
#include "smpgw/smp-update.h"
#include "util.h"

/* Receivers asked for per receivers-get page: the Distributor prints
 * about 110 bytes per entry, and the NCS sample's output buffer of 1000
 * holds 8; a smaller buffer cuts the page and the next one starts where
 * it was cut.  An output larger than the SMP response buffer
 * (CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE) is refused whole (SMP rc 7,
 * EMSGSIZE): the page is then halved, down to one receiver. */
#define RECEIVERS_PAGE 8u

static const char *const state_names[_DISTRIBUTION_STATE_MAX] = {
        [DISTRIBUTION_QUEUED] = "queued",       [DISTRIBUTION_RUNNING] = "running",
        [DISTRIBUTION_VERIFIED] = "verified",   [DISTRIBUTION_SUSPENDED] = "suspended",
        [DISTRIBUTION_SUCCEEDED] = "succeeded", [DISTRIBUTION_FAILED] = "failed",
        [DISTRIBUTION_CANCELLED] = "cancelled",
};

static const char *const step_names[_DISTRIBUTION_STEP_MAX] = {
        [DISTRIBUTION_STEP_UPLOAD] = "upload",   [DISTRIBUTION_STEP_SLOT] = "slot",
        [DISTRIBUTION_STEP_ROUND] = "round",     [DISTRIBUTION_STEP_TRANSFER] = "transfer",
        [DISTRIBUTION_STEP_COLLECT] = "collect", [DISTRIBUTION_STEP_DONE] = "done",
};

static const char *const target_state_names[_DISTRIBUTION_TARGET_STATE_MAX] = {
        [DISTRIBUTION_TARGET_PENDING] = "pending",     [DISTRIBUTION_TARGET_ACTIVE] = "active",
        [DISTRIBUTION_TARGET_UPDATED] = "updated",     [DISTRIBUTION_TARGET_FAILED] = "failed",
        [DISTRIBUTION_TARGET_CANCELLED] = "cancelled",
};

static const char *const apply_names[_DISTRIBUTION_APPLY_MAX] = {
        [DISTRIBUTION_APPLY_NOW] = "now",
        [DISTRIBUTION_APPLY_VERIFY_ONLY] = "verify-only",
};

static int from_table(const char *const *table, size_t n, const char *s) {
        for (size_t i = 0; s && i < n; i++)
                if (table[i] && streq(table[i], s))
                        return (int) i;
        return -EINVAL;
}

const char *distribution_state_to_string(enum distribution_state s) {
        return (unsigned) s < _DISTRIBUTION_STATE_MAX ? state_names[s] : NULL;
}
int distribution_state_from_string(const char *s) {
        return from_table(state_names, _DISTRIBUTION_STATE_MAX, s);
}
const char *distribution_step_to_string(enum distribution_step s) {
        return (unsigned) s < _DISTRIBUTION_STEP_MAX ? step_names[s] : NULL;
}
int distribution_step_from_string(const char *s) {
        return from_table(step_names, _DISTRIBUTION_STEP_MAX, s);
}
const char *distribution_target_state_to_string(enum distribution_target_state s) {
        return (unsigned) s < _DISTRIBUTION_TARGET_STATE_MAX ? target_state_names[s] : NULL;
}
int distribution_target_state_from_string(const char *s) {
        return from_table(target_state_names, _DISTRIBUTION_TARGET_STATE_MAX, s);
}
const char *distribution_apply_to_string(enum distribution_apply a) {
        return (unsigned) a < _DISTRIBUTION_APPLY_MAX ? apply_names[a] : NULL;
}
int distribution_apply_from_string(const char *s) {
        return from_table(apply_names, _DISTRIBUTION_APPLY_MAX, s);
}

bool distribution_is_finished(const struct distribution *d) {
        return d->state == DISTRIBUTION_SUCCEEDED || d->state == DISTRIBUTION_FAILED ||
               d->state == DISTRIBUTION_CANCELLED;
}

static void distribution_disconnect(struct distribution *d) {
        smp_shell_exec_cancel(d->exec);
        d->exec = NULL;
        if (d->upload) {
                smp_update_cancel(d->upload);
                d->upload = NULL;
        }
        d->session = smp_session_free(d->session);
        if (d->image_mapped) {
                image_unmap(d->image_mapped);
                d->image_mapped = NULL;
        }
        d->busy = false;
}

struct distribution *distribution_free(struct distribution *d) {
        if (!d)
                return NULL;
        distribution_disconnect(d);
        d->timer = sd_event_source_disable_unref(d->timer);
        for (size_t i = 0; i < d->n_targets; i++)
                free(d->targets[i].reason);
        free(d->targets);
        smp_strv_free(d->lines);
        free(d->error);
        free(d);
        return NULL;
}

struct distribution *manager_find_distribution(struct manager *m, uint64_t id) {
        for (size_t i = 0; i < m->n_distributions; i++)
                if (m->distributions[i]->id == id)
                        return m->distributions[i];
        return NULL;
}

bool distribution_uses_device(struct manager *m, const struct device *dev) {
        for (size_t i = 0; i < m->n_distributions; i++) {
                const struct distribution *d = m->distributions[i];
                if (distribution_is_finished(d))
                        continue;
                if (d->distributor_id == dev->id)
                        return true;
                for (size_t k = 0; k < d->n_targets; k++)
                        if (d->targets[k].device_id == dev->id)
                                return true;
        }
        return false;
}

/* ---- recording and telling ---- */

static void save(struct distribution *d) {
        d->updated_usec = now_realtime_usec();
        int r = db_distribution_save(d->manager->db, d);
        if (r < 0)
                log_warning_errno(r, "Distribution %" PRIu64 ": cannot record its state: %m", d->id);
}

static void emit_state(struct distribution *d) {
        manager_emit_distribution(d->manager, MANAGER_EVENT_DISTRIBUTION_STATE, d);
}

_printf_(2, 3) static void set_error(struct distribution *d, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        free(d->error);
        d->error = s;
}

static struct device *distributor_of(struct distribution *d) {
        return manager_find_device(d->manager, d->distributor_id);
}

static void arm(struct distribution *d, uint64_t delay_usec) {
        uint64_t now = 0;
        (void) sd_event_now(d->manager->event, CLOCK_MONOTONIC, &now);
        (void) sd_event_source_set_time(d->timer, now + delay_usec);
        (void) sd_event_source_set_enabled(d->timer, SD_EVENT_ONESHOT);
}

/* The multicast's rate from the rounds timed whole (mesh_rate); none
 * when a round was not, or when nothing was timed. */
static void measure_rate(struct distribution *d) {
        if (d->transfer_untimed || d->transfer_usec == 0 || d->transfer_bytes == 0)
                return;
        d->mesh_rate = (double) d->transfer_bytes * 1e6 / (double) d->transfer_usec;
        log_info("Distribution %" PRIu64 ": multicast at %.0f B/s", d->id, d->mesh_rate);
}

static void finish(struct distribution *d, enum distribution_state state) {
        distribution_disconnect(d);
        (void) sd_event_source_set_enabled(d->timer, SD_EVENT_OFF);
        if (state != DISTRIBUTION_CANCELLED)
                measure_rate(d);
        d->state = state;
        d->step = DISTRIBUTION_STEP_DONE;
        d->finished_usec = now_realtime_usec();
        for (size_t i = 0; i < d->n_targets; i++) {
                struct distribution_target *t = &d->targets[i];
                if (t->state != DISTRIBUTION_TARGET_PENDING && t->state != DISTRIBUTION_TARGET_ACTIVE)
                        continue;
                t->state = state == DISTRIBUTION_CANCELLED ? DISTRIBUTION_TARGET_CANCELLED : DISTRIBUTION_TARGET_FAILED;
                if (!t->reason)
                        t->reason = strdup(state == DISTRIBUTION_CANCELLED ? "cancelled" : (d->error ?: "not updated"));
        }
        save(d);
        log_info("Distribution %" PRIu64 ": %s%s%s", d->id, distribution_state_to_string(state), d->error ? ": " : "",
                 d->error ?: "");
        emit_state(d);
}

/* The distribution cannot go on (the Distributor refuses, the image is
 * gone): every target not updated fails with the reason. */
_printf_(2, 3) static void fail(struct distribution *d, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        free(d->error);
        d->error = s;
        finish(d, DISTRIBUTION_FAILED);
}

/* ---- the mesh targets in the inventory ---- */

static void target_device_update(struct distribution *d, const struct distribution_target *t, bool updated) {
        struct device *dev = manager_find_device(d->manager, t->device_id);
        struct image *img = manager_find_image(d->manager, d->image_id);

        if (!dev || !dev->mesh)
                return;
        dev->mesh->phase = t->phase;
        dev->mesh->status = t->status;
        dev->mesh->has_phase = true;
        dev->mesh->updated_usec = now_realtime_usec();
        if (updated && img) {
                struct mcuboot_version v;
                uint8_t fwid[SMP_MESH_FWID_MCUBOOT_LEN];
                if (mcuboot_version_parse(img->version, &v) >= 0) {
                        smp_mesh_fwid_from_version(&v, fwid);
                        (void) smp_mesh_hex(fwid, sizeof(fwid), dev->mesh->fwid, sizeof(dev->mesh->fwid));
                }
                snprintf(dev->mesh->version, sizeof(dev->mesh->version), "%s", img->version);
        }
        int r = db_mesh_target_save(d->manager->db, dev);
        if (r < 0)
                log_warning_errno(r, "Mesh target %s: cannot record its state: %m", dev->conn);
        manager_emit(d->manager, MANAGER_EVENT_DEVICE_CHANGED, dev, NULL, NULL);
}

/* ---- commands ---- */

typedef void (*reply_fn)(struct distribution *d, const struct smp_shell_result *r);

static void lost(struct distribution *d, int error) {
        log_full_errno(LOG_NOTICE, error, NULL, NULL, NULL,
                       "Distribution %" PRIu64 ": lost the Distributor (%m); reconnecting in %" PRIu64 " ms", d->id,
                       d->reconnect_usec / 1000);
        set_error(d, "lost the Distributor: %s", strerror(-error));
        /* Torn down from the timer, never inside the session's callback. */
        d->lost = true;
        d->busy = false;
        arm(d, d->reconnect_usec);
        d->reconnect_usec = MIN(d->reconnect_usec * 2, (uint64_t) DISTRIBUTION_RECONNECT_MAX_USEC);
}

static void on_page(struct distribution *d, const struct smp_shell_result *r);
static void read_page(struct distribution *d);

static void on_exec(struct smp_shell_exec *x, const struct smp_shell_result *r, void *userdata) {
        struct distribution *d = userdata;
        reply_fn fn = d->reply;

        (void) x;
        d->reply = NULL;
        d->exec = NULL;
        d->busy = false;
        if (r->error == -EREMOTEIO && fn == on_page && r->status.has_rc && r->status.rc == SMP_MGMT_ERR_EMSGSIZE) {
                if (d->page_size > 1) {
                        d->page_size /= 2;
                        log_notice("Distribution %" PRIu64 ": a receivers page does not fit the Distributor's SMP "
                                   "buffer; asking for %u at a time",
                                   d->id, d->page_size);
                        read_page(d);
                        return;
                }
                fail(d, "the Distributor cannot answer even one receiver: its SMP buffer "
                        "(CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE) is smaller than its shell output");
                return;
        }
        if (r->error == -EREMOTEIO) {
                fail(d,
                     "the Distributor refused a shell command (SMP rc %" PRId64 ", group %" PRIu64 " rc %" PRIu64
                     "): is it a Distributor with shell management?",
                     r->status.rc, r->status.err_group, r->status.err_rc);
                return;
        }
        if (r->error < 0) {
                lost(d, r->error);
                return;
        }
        d->reconnect_usec = DISTRIBUTION_RECONNECT_MIN_USEC;
        fn(d, r);
}

_printf_(4, 5) static void exec(struct distribution *d, bool idempotent, reply_fn fn, const char *fmt, ...) {
        struct smp_shell_exec_params p = {
                .cmd_buf_size = d->shell_buf,
                .timeout_usec = DISTRIBUTION_COMMAND_TIMEOUT_USEC,
                .idempotent = idempotent,
        };
        char line[1024];
        va_list ap;
        int r;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);

        log_debug("Distribution %" PRIu64 ": %s", d->id, line);
        d->busy = true;
        d->reply = fn;
        r = smp_shell_exec_line(d->session, line, &p, on_exec, d, &d->exec);
        if (r == -E2BIG) {
                d->busy = false;
                fail(d, "the command '%s' does not fit the Distributor's shell buffer", line);
        } else if (r < 0) {
                d->busy = false;
                lost(d, r);
        }
}

static void next(struct distribution *d) {
        arm(d, 0);
}

/* An answer that does not read as the command's output.  The
 * Distributor's shell output buffer is also a log backend: deferred log
 * lines (mesh warnings, the sample's printk) land in it, and what does
 * not fit is dropped, so a burst of them cuts an answer off.  Asked again
 * after poll_min through on_timer(), whose next step the caller has set
 * (a command that changes something is checked first), up to
 * DISTRIBUTION_GARBLED_MAX in a row.  Returns false when the distribution
 * failed instead. */
static bool retry_garbled(struct distribution *d, const char *what, const struct smp_shell_result *r) {
        d->garbled++;
        if (d->garbled > DISTRIBUTION_GARBLED_MAX) {
                fail(d, "%s: unexpected answer '%.80s' (%u in a row)", what, r->output, d->garbled);
                return false;
        }
        log_notice("Distribution %" PRIu64 ": %s: unexpected answer '%.80s' (%u in a row; log lines in the "
                   "Distributor's shell output?): asking again",
                   d->id, what, r->output, d->garbled);
        arm(d, d->policy.poll_min_usec);
        return true;
}

/* Keeps the transfer parameters a `dfd get` (or a start's answer)
 * printed, for a resume: see has_dfd_params.  Only those of this
 * distribution's slot, and a mode a start can name. */
static void remember_dfd_params(struct distribution *d, const struct smp_mesh_dfd_state *st) {
        if (!st->has_params || st->slot_idx != d->slot_idx ||
            (st->xfer_mode != SMP_MESH_XFER_MODE_PUSH && st->xfer_mode != SMP_MESH_XFER_MODE_PULL))
                return;
        d->has_dfd_params = true;
        d->dfd_params = (struct smp_mesh_dfd_start_params) {
                .app_idx = st->app_idx,
                .slot_idx = st->slot_idx,
                .group = st->group,
                .apply = st->apply,
                .ttl = st->ttl,
                .timeout_base = st->timeout_base,
                .xfer_mode = st->xfer_mode,
        };
}

/* ---- the steps ---- */

/* A new step is told as progress (Distribution1.Step, REST's event
 * stream), at once: a round has a few, so emit_progress()'s bound is not
 * needed; and not as a state, whose first event while queued is the
 * distribution's creation to the front ends. */
static void emit_step(struct distribution *d) {
        manager_emit_distribution(d->manager, MANAGER_EVENT_DISTRIBUTION_PROGRESS, d);
}

static void step_to(struct distribution *d, enum distribution_step step) {
        bool changed = d->step != step;

        d->step = step;
        save(d);
        if (changed)
                emit_step(d);
        next(d);
}

static void set_state(struct distribution *d, enum distribution_state s) {
        if (d->state == s)
                return;
        d->state = s;
        save(d);
        emit_state(d);
}

static bool deadline_passed(const struct distribution *d) {
        return d->policy.deadline_usec && now_realtime_usec() >= d->policy.deadline_usec;
}

static size_t count_targets(const struct distribution *d, enum distribution_target_state s) {
        size_t n = 0;
        for (size_t i = 0; i < d->n_targets; i++)
                n += d->targets[i].state == s;
        return n;
}

static struct distribution_target *target_by_addr(struct distribution *d, uint16_t addr) {
        for (size_t i = 0; i < d->n_targets; i++)
                if (d->targets[i].addr == addr)
                        return &d->targets[i];
        return NULL;
}

/* upload */

static void on_upload_done(struct smp_update *u, const struct smp_update_result *res, void *userdata) {
        struct distribution *d = userdata;

        (void) u;
        d->upload = NULL;
        d->busy = false;
        if (res->error < 0) {
                if (res->error == -EREMOTEIO) {
                        fail(d, "the Distributor refused the upload into its slot 1 (SMP rc %" PRId64 ")",
                             res->status.rc);
                        return;
                }
                lost(d, res->error);
                return;
        }
        d->reconnect_usec = DISTRIBUTION_RECONNECT_MIN_USEC;
        log_info("Distribution %" PRIu64 ": image in the Distributor's slot 1%s", d->id,
                 res->upload_skipped ? " already" : "");
        step_to(d, DISTRIBUTION_STEP_SLOT);
}

static void run_upload(struct distribution *d) {
        struct image *img = manager_find_image(d->manager, d->image_id);
        const uint8_t *data;
        size_t len;
        int r;

        if (!img) {
                fail(d, "the image %s is gone", d->image_id);
                return;
        }
        if (!d->image_mapped) {
                r = image_map(img, &data, &len);
                if (r < 0) {
                        fail(d, "cannot read the image: %s", strerror(-r));
                        return;
                }
                d->image_mapped = img;
        } else {
                data = img->map;
                len = img->map_len;
        }
        /* Upload only: slot 1 is the Distributor's own secondary slot,
         * and a test or confirm would make it boot the targets' image. */
        const struct smp_update_params p = {
                .data = data,
                .len = len,
                .mode = SMP_UPDATE_UPLOAD_ONLY,
                .has_image = true,
                .image = 0,
                .erase_timeout_usec = d->manager->config->job_erase_timeout_usec,
                .done = on_upload_done,
                .userdata = d,
        };
        d->busy = true;
        r = smp_update_start(d->session, &p, &d->upload);
        if (r < 0) {
                d->busy = false;
                fail(d, "cannot start the upload: %s", strerror(-r));
        }
}

/* slot */

static void on_slot_add(struct distribution *d, const struct smp_shell_result *r) {
        struct smp_mesh_slot_add_result res;

        if (smp_mesh_slot_add_parse(r->output, r->output_len, &res) < 0) {
                /* on_timer() deletes and adds again (step slot) */
                (void) retry_garbled(d, "slot add", r);
                return;
        }
        d->garbled = 0;
        switch (res.outcome) {
        case SMP_MESH_SLOT_ADDED:
                d->slot_idx = (uint16_t) res.idx;
                log_info("Distribution %" PRIu64 ": slot %u registered", d->id, d->slot_idx);
                step_to(d, DISTRIBUTION_STEP_ROUND);
                return;
        case SMP_MESH_SLOT_NO_FREE_SLOT:
        case SMP_MESH_SLOT_FAILED:
                /* del-all deletes the registered slots only: one that a
                 * Firmware Distribution Upload over the mesh reserved and
                 * never finished stays until that upload is cancelled or
                 * the Distributor restarts (dfu_slot.c, dfd_srv.c).  In
                 * Zephyr 3.4, "Failed." is also a firmware ID already
                 * registered, which a failed del-all leaves. */
                if (d->slot_del_error)
                        fail(d,
                             "the Distributor could not delete its old DFU slots (error %d), and has no free "
                             "one: restart the Distributor",
                             d->slot_del_error);
                else
                        fail(d, "the Distributor has no free DFU slot after deleting them all: an upload to it over "
                                "the mesh (from another Initiator) that did not finish may hold one until the "
                                "Distributor restarts");
                return;
        case SMP_MESH_SLOT_COMMIT_FAILED:
                fail(d, "the Distributor cannot register the image (error %d)", res.err);
                return;
        }
}

/* The firmware metadata the Distributor passes to every target in
 * Firmware Update Start, which a target that checks it (nRF Connect
 * SDK's target sample) decodes and judges: the image's version, the size
 * the slot holds, the application core, and the composition the operator
 * declared for the image.  Without one, none is sent: a hash made up
 * would make a checking target unprovision itself at the apply, while
 * one that does not check works as before.  Returns the length, 0 for
 * none. */
static int slot_metadata(const struct image *img, const struct mcuboot_version *v, uint8_t *out, size_t cap) {
        struct smp_mesh_metadata md = {
                .version = *v,
                .size = (uint32_t) img->file_size,
                .core_type = SMP_MESH_CORE_APP,
                .has_composition = true,
                .comp_hash = img->mesh_composition.hash,
                .elements = img->mesh_composition.elements,
        };

        if (!img->has_mesh_composition)
                return 0;
        if (img->file_size > SMP_MESH_METADATA_SIZE_MAX)
                return -EFBIG;
        return smp_mesh_metadata_encode(&md, out, cap);
}

static void on_slot_del(struct distribution *d, const struct smp_shell_result *r) {
        struct image *img = manager_find_image(d->manager, d->image_id);
        struct mcuboot_version v;
        uint8_t fwid[SMP_MESH_FWID_MCUBOOT_LEN];
        uint8_t md[SMP_MESH_METADATA_MAXLEN];
        char line[256];

        /* "All slots deleted." or nothing printed: either way; a failure
         * is said if the add then fails too. */
        struct smp_mesh_slot_del_result del;
        d->slot_del_error = 0;
        if (smp_mesh_slot_del_parse(r->output, r->output_len, &del) >= 0 &&
            del.outcome == SMP_MESH_SLOT_DELETE_FAILED) {
                d->slot_del_error = del.err ?: -EIO;
                log_warning("Distribution %" PRIu64 ": the Distributor could not delete its DFU slots (error %d)",
                            d->id, d->slot_del_error);
        }
        if (!img || mcuboot_version_parse(img->version, &v) < 0) {
                fail(d, "the image %s is gone", d->image_id);
                return;
        }
        smp_mesh_fwid_from_version(&v, fwid);
        int n_md = slot_metadata(img, &v, md, sizeof(md));
        if (n_md < 0) {
                fail(d, "cannot write the firmware metadata: %s", strerror(-n_md));
                return;
        }
        int k = smp_mesh_slot_add_cmd((uint32_t) img->file_size, fwid, sizeof(fwid), n_md > 0 ? md : NULL,
                                      (size_t) n_md, line, sizeof(line));
        if (k < 0) {
                fail(d, "cannot write the slot add command: %s", strerror(-k));
                return;
        }
        if (n_md > 0)
                log_info("Distribution %" PRIu64 ": firmware metadata with composition hash 0x%08" PRIx32
                         ", %u elements",
                         d->id, img->mesh_composition.hash, img->mesh_composition.elements);
        exec(d, false, on_slot_add, "%s", line);
}

/* What a target that refused the metadata (status metadata-check-failed)
 * is told to do: without a composition the image sent none, which a
 * checking target cannot decode; with one, the target judged it (a
 * version not newer than its own, an image larger than its slots). */
static const char *metadata_refusal_hint(struct distribution *d) {
        const struct image *img = manager_find_image(d->manager, d->image_id);

        if (img && !img->has_mesh_composition)
                return "; the target checks firmware metadata and the image declares no mesh composition: set it "
                       "(REST PATCH /api/v1/images/{id} \"mesh_composition\", D-Bus Image1.SetMeshComposition(); "
                       "doc/mesh-dfu.md, \"Firmware metadata\") and distribute again";
        return "; the target refused the firmware metadata: a version not newer than the one it runs, an image "
               "larger than its slots, or no application core (doc/mesh-dfu.md, \"Firmware metadata\")";
}

/* Adds metadata_refusal_hint() to a failed target's reason. */
static void explain_target_failure(struct distribution *d, struct distribution_target *t) {
        char *s = NULL;

        if (t->status != SMP_MESH_DFU_ERR_METADATA || !t->reason)
                return;
        if (asprintf(&s, "%s%s", t->reason, metadata_refusal_hint(d)) < 0)
                return;
        free(t->reason);
        t->reason = s;
}

static void run_slot(struct distribution *d) {
        exec(d, false, on_slot_del, "mesh models dfu slot del-all");
}

/* round */

static void wait_canceling(struct distribution *d, const struct smp_mesh_dfd_state *st);
static void send_start(struct distribution *d);

static void on_start(struct distribution *d, const struct smp_shell_result *r) {
        struct smp_mesh_dfd_state st;

        if (smp_mesh_dfd_state_parse(r->output, r->output_len, &st) < 0) {
                /* Did it start?  A resume is sent again (a start with the
                 * same parameters is a no-op on a running transfer); a
                 * round's start is checked by the sync's `dfd get`, which
                 * goes on with the round if it runs and starts it again
                 * if not. */
                if (d->step == DISTRIBUTION_STEP_TRANSFER)
                        d->want_resume = true;
                else
                        d->synced = false;
                (void) retry_garbled(d, "dfd start", r);
                return;
        }
        d->garbled = 0;
        if (st.status == SMP_MESH_DFD_ERR_BUSY_WITH_DISTRIBUTION && st.phase == SMP_MESH_DFD_PHASE_CANCELING_UPDATE) {
                wait_canceling(d, &st);
                return;
        }
        if (st.status == SMP_MESH_DFD_ERR_BUSY_WITH_DISTRIBUTION && st.phase == SMP_MESH_DFD_PHASE_TRANSFER_SUSPENDED &&
            d->step == DISTRIBUTION_STEP_TRANSFER && !d->resume_refused && st.has_params &&
            st.slot_idx == d->slot_idx) {
                /* A resume whose parameters are not the suspended
                 * transfer's (dfd_srv.c compares all seven): the answer
                 * prints them; once more with those. */
                remember_dfd_params(d, &st);
                if (d->has_dfd_params) {
                        d->resume_refused = true;
                        log_notice("Distribution %" PRIu64 ": the Distributor refused the resume as another "
                                   "distribution; resuming with the parameters it printed",
                                   d->id);
                        send_start(d);
                        return;
                }
        }
        if (st.status != SMP_MESH_DFD_SUCCESS) {
                fail(d, "the Distributor refused to start: %s",
                     smp_mesh_dfd_status_to_string(st.status) ?: "unknown status");
                return;
        }
        d->poll_usec = d->policy.poll_min_usec;
        d->resume_at_usec = 0;
        d->resume_refused = false;
        /* A round's transfer starts here; a resumed one was suspended
         * and its time says nothing of the rate. */
        if (d->state == DISTRIBUTION_SUSPENDED || d->transfer_start_usec)
                d->transfer_untimed = true;
        else
                d->transfer_start_usec = now_monotonic_usec();
        set_state(d, DISTRIBUTION_RUNNING);
        step_to(d, DISTRIBUTION_STEP_TRANSFER);
}

/* A round's start sends the policy's parameters; a resume (at the
 * transfer step) those the Distributor printed for the transfer, which
 * it compares with the stored ones: the transfer mode may have become
 * the one the targets support. */
static void send_start(struct distribution *d) {
        struct smp_mesh_dfd_start_params p = {
                .app_idx = d->policy.app_idx,
                .slot_idx = d->slot_idx,
                .group = d->policy.group,
                .apply = d->policy.apply == DISTRIBUTION_APPLY_NOW,
                .ttl = d->policy.ttl,
                .timeout_base = d->policy.timeout_base,
                .xfer_mode = d->policy.xfer_mode,
        };
        char line[256];

        if (d->step == DISTRIBUTION_STEP_TRANSFER && d->has_dfd_params) {
                if (d->dfd_params.xfer_mode != p.xfer_mode)
                        log_info("Distribution %" PRIu64 ": resuming in %s mode, the one the Distributor "
                                 "chose for its targets",
                                 d->id, d->dfd_params.xfer_mode == SMP_MESH_XFER_MODE_PULL ? "pull" : "push");
                p = d->dfd_params;
        }
        int k = smp_mesh_dfd_start_cmd(&p, line, sizeof(line));
        if (k < 0) {
                fail(d, "cannot write the start command: %s", strerror(-k));
                return;
        }
        exec(d, false, on_start, "%s", line);
}

static void on_receivers_add(struct distribution *d, const struct smp_shell_result *r) {
        struct smp_mesh_receivers_status st;

        if (smp_mesh_receivers_status_parse(r->output, r->output_len, &st) < 0) {
                /* on_timer() sends the round's receivers again */
                (void) retry_garbled(d, "dfd receivers-add", r);
                return;
        }
        d->garbled = 0;
        if (r->ret < 0 || st.status != SMP_MESH_DFD_SUCCESS) {
                fail(d, "the Distributor refused receivers (ret %" PRId64 "): %.80s", r->ret, r->output);
                return;
        }
        d->line++;
        if (d->line < d->n_lines) {
                exec(d, false, on_receivers_add, "%s", d->lines[d->line]);
                return;
        }
        send_start(d);
}

static void on_receivers_delete(struct distribution *d, const struct smp_shell_result *r) {
        struct smp_mesh_receivers_status st;

        if (smp_mesh_receivers_status_parse(r->output, r->output_len, &st) < 0) {
                (void) retry_garbled(d, "dfd receivers-delete-all", r);
                return;
        }
        d->garbled = 0;
        if (st.status != SMP_MESH_DFD_SUCCESS) {
                fail(d, "the Distributor cannot clear its receivers: %.80s", r->output);
                return;
        }
        d->line = 0;
        exec(d, false, on_receivers_add, "%s", d->lines[0]);
}

/* Picks the round's receivers: the targets already active (a round the
 * Distributor forgot), else up to targets_max pending ones, which spend
 * an attempt. */
static void run_round(struct distribution *d) {
        _cleanup_free_ struct smp_mesh_receiver *rx = calloc(d->n_targets, sizeof(*rx));
        size_t n = 0;
        int r;

        if (!rx) {
                lost(d, -ENOMEM);
                return;
        }
        for (size_t i = 0; i < d->n_targets; i++)
                if (d->targets[i].state == DISTRIBUTION_TARGET_ACTIVE)
                        rx[n++] = (struct smp_mesh_receiver) { .addr = d->targets[i].addr };
        if (n == 0) {
                if (deadline_passed(d)) {
                        set_error(d, "the deadline passed");
                        finish(d, DISTRIBUTION_FAILED);
                        return;
                }
                for (size_t i = 0; i < d->n_targets && n < d->targets_max; i++) {
                        struct distribution_target *t = &d->targets[i];
                        if (t->state != DISTRIBUTION_TARGET_PENDING)
                                continue;
                        t->state = DISTRIBUTION_TARGET_ACTIVE;
                        t->attempts++;
                        t->phase = SMP_MESH_DFU_PHASE_UNKNOWN;
                        t->progress = 0;
                        rx[n++] = (struct smp_mesh_receiver) { .addr = t->addr };
                }
                if (n == 0) {
                        bool all = count_targets(d, DISTRIBUTION_TARGET_UPDATED) == d->n_targets;
                        finish(d, all ? DISTRIBUTION_SUCCEEDED : DISTRIBUTION_FAILED);
                        return;
                }
                d->rounds++;
                d->resumes = 0;
                save(d);
                log_info("Distribution %" PRIu64 ": round %u with %zu receivers", d->id, d->rounds, n);
        }
        /* this start sends the policy's parameters */
        d->has_dfd_params = false;
        d->resume_refused = false;
        smp_strv_free(d->lines);
        d->lines = NULL;
        r = smp_mesh_receivers_add_cmds(rx, n, d->shell_buf, &d->lines, &d->n_lines);
        if (r < 0) {
                fail(d, "cannot write the receivers lines: %s", strerror(-r));
                return;
        }
        set_state(d, DISTRIBUTION_RUNNING);
        exec(d, false, on_receivers_delete, "mesh models dfd receivers-delete-all");
}

/* transfer and collect */

static void poll_later(struct distribution *d) {
        if (d->changed_since_poll)
                d->poll_usec = d->policy.poll_min_usec;
        else
                d->poll_usec = MIN(d->poll_usec * 2, d->policy.poll_max_usec);
        d->changed_since_poll = false;
        arm(d, d->poll_usec);
}

static void emit_progress(struct distribution *d) {
        uint64_t now = now_realtime_usec();
        if (now - d->last_progress_emit_usec < 250000)
                return;
        d->last_progress_emit_usec = now;
        manager_emit_distribution(d->manager, MANAGER_EVENT_DISTRIBUTION_PROGRESS, d);
}

static void end_round(struct distribution *d, const char *why);

static void read_page(struct distribution *d) {
        exec(d, true, on_page, "mesh models dfd receivers-get %u %u", d->page_first, d->page_size);
}

/* The Distributor suspended the transfer without being asked: every
 * target of the round stopped answering mid-transfer (blob_cli.c
 * suspends when all remaining targets timed out), and only a start with
 * the same parameters resumes it.  Resumed after a backoff, each resume
 * spending an attempt of the round's targets; once one of them has none
 * left, the round ends (the others go to the next one).  Returns whether
 * to keep polling. */
static bool transfer_stalled(struct distribution *d) {
        uint64_t now = now_monotonic_usec();

        if (!d->resume_at_usec) {
                for (size_t i = 0; i < d->n_targets; i++) {
                        const struct distribution_target *t = &d->targets[i];
                        if (t->state == DISTRIBUTION_TARGET_ACTIVE && t->attempts >= d->policy.max_attempts) {
                                end_round(d, "every target stopped answering mid-transfer (the Distributor "
                                             "suspended the transfer)");
                                return false;
                        }
                }
                for (size_t i = 0; i < d->n_targets; i++)
                        if (d->targets[i].state == DISTRIBUTION_TARGET_ACTIVE)
                                d->targets[i].attempts++;
                uint64_t delay = d->policy.poll_max_usec << MIN(d->resumes, DISTRIBUTION_RESUME_DOUBLINGS);
                d->resume_at_usec = now + delay;
                d->resumes++;
                d->changed_since_poll = true;
                log_notice("Distribution %" PRIu64 ": every target of round %u stopped answering and the "
                           "Distributor suspended the transfer; resuming in %" PRIu64 " s",
                           d->id, d->rounds, delay / 1000000u);
                return true;
        }
        if (now < d->resume_at_usec)
                return true;
        d->resume_at_usec = 0;
        d->want_resume = true;
        next(d);
        return false;
}

static void after_pages(struct distribution *d) {
        switch (d->dfd_phase) {
        case SMP_MESH_DFD_PHASE_COMPLETED:
        case SMP_MESH_DFD_PHASE_FAILED:
                end_round(d, NULL);
                return;
        case SMP_MESH_DFD_PHASE_TRANSFER_SUCCESS:
                if (d->policy.apply == DISTRIBUTION_APPLY_VERIFY_ONLY) {
                        set_state(d, DISTRIBUTION_VERIFIED);
                        if (d->want_apply) {
                                d->want_apply = false;
                                d->pending_cmd = "mesh models dfd apply";
                                next(d);
                                return;
                        }
                }
                break;
        case SMP_MESH_DFD_PHASE_TRANSFER_SUSPENDED:
                if (deadline_passed(d)) {
                        end_round(d, "the deadline passed while the transfer was suspended");
                        return;
                }
                if (d->held || d->want_suspend) {
                        set_state(d, DISTRIBUTION_SUSPENDED);
                        break;
                }
                if (!transfer_stalled(d))
                        return;
                break;
        default:
                if (d->state != DISTRIBUTION_RUNNING)
                        set_state(d, DISTRIBUTION_RUNNING);
                break;
        }
        if (d->changed_since_poll) {
                save(d);
                emit_progress(d);
        }
        poll_later(d);
}

static void on_page(struct distribution *d, const struct smp_shell_result *r) {
        _cleanup_free_ struct smp_mesh_receivers_page *pg = malloc(sizeof(*pg));

        if (!pg) {
                lost(d, -ENOMEM);
                return;
        }
        if (smp_mesh_receivers_page_parse(r->output, r->output_len, pg) < 0 || pg->n_targets == 0) {
                /* No receivers (the Distributor forgot them), or past the end. */
                after_pages(d);
                return;
        }
        for (size_t i = 0; i < pg->n_targets; i++) {
                const struct smp_mesh_target *mt = &pg->targets[i];
                struct distribution_target *t = target_by_addr(d, mt->blob_addr);
                if (!t || t->state != DISTRIBUTION_TARGET_ACTIVE)
                        continue;
                /* The figure is the BLOB transfer's (blocks started) only
                 * while it is active: the Update Client reads 100 in
                 * every other state, suspended and canceling too
                 * (dfu_cli.c bt_mesh_dfu_cli_progress()); the last value
                 * stays then. */
                uint8_t pct = d->dfd_phase == SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE
                                      ? (uint8_t) smp_mesh_progress_percent(mt->progress)
                                      : t->progress;
                if (t->phase != mt->phase || t->status != mt->status || t->progress != pct)
                        d->changed_since_poll = true;
                t->phase = mt->phase;
                t->status = mt->status;
                t->progress = pct;
        }
        uint16_t last = pg->targets[pg->n_targets - 1].index;
        d->page_first = (uint16_t) (last + 1);
        if (pg->has_target_cnt && d->page_first < pg->target_cnt) {
                read_page(d);
                return;
        }
        after_pages(d);
}

/* Times a round's transfer, from its `dfd start` to the first poll that
 * sees it over: only a round seen whole counts (one that was going on
 * before a restart, suspended, forgotten or failed makes the rate
 * unknown). */
static void time_transfer(struct distribution *d, uint8_t phase) {
        const struct image *img;

        switch (phase) {
        case SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE:
                if (!d->transfer_start_usec)
                        d->transfer_untimed = true;
                return;
        case SMP_MESH_DFD_PHASE_TRANSFER_SUCCESS:
        case SMP_MESH_DFD_PHASE_APPLYING_UPDATE:
        case SMP_MESH_DFD_PHASE_COMPLETED:
                if (!d->transfer_start_usec)
                        return;
                img = manager_find_image(d->manager, d->image_id);
                if (img) {
                        d->transfer_usec += now_monotonic_usec() - d->transfer_start_usec;
                        d->transfer_bytes += img->file_size;
                } else
                        d->transfer_untimed = true;
                d->transfer_start_usec = 0;
                return;
        default:
                /* idle (forgotten), failed, suspended, canceling */
                if (d->transfer_start_usec)
                        d->transfer_untimed = true;
                d->transfer_start_usec = 0;
                return;
        }
}

static void on_get(struct distribution *d, const struct smp_shell_result *r) {
        struct smp_mesh_dfd_state st;

        if (smp_mesh_dfd_state_parse(r->output, r->output_len, &st) < 0) {
                /* A suspend is asked again while wanted; an apply is
                 * sent again only if the next poll finds the transfer
                 * still waiting for it (after_pages()). */
                if (d->sent_apply)
                        d->want_apply = true;
                d->sent_apply = false;
                (void) retry_garbled(d, "dfd get", r);
                return;
        }
        d->garbled = 0;
        d->sent_apply = false;
        remember_dfd_params(d, &st);
        if (st.phase == SMP_MESH_DFD_PHASE_APPLYING_UPDATE || st.phase == SMP_MESH_DFD_PHASE_COMPLETED)
                d->want_apply = false;
        if (st.phase != d->dfd_phase)
                d->changed_since_poll = true;
        d->dfd_phase = st.phase;
        time_transfer(d, st.phase);
        if (d->want_suspend && st.phase != SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE)
                d->want_suspend = false;
        if (st.phase == SMP_MESH_DFD_PHASE_IDLE) {
                /* It forgot the distribution: a reset (RAM state).  The
                 * slot survives; the round goes again, without spending
                 * an attempt. */
                log_notice("Distribution %" PRIu64 ": the Distributor is idle mid-round (reset?): "
                           "starting the round again",
                           d->id);
                d->rounds_lost++;
                step_to(d, DISTRIBUTION_STEP_ROUND);
                return;
        }
        d->page_first = 0;
        read_page(d);
}

static void run_transfer(struct distribution *d) {
        if (d->pending_cmd) {
                const char *cmd = d->pending_cmd;
                d->pending_cmd = NULL;
                d->sent_apply = streq(cmd, "mesh models dfd apply");
                exec(d, false, on_get, "%s", cmd);
                return;
        }
        if (d->want_suspend) {
                /* Asked again at each poll until the Distributor says it
                 * suspended (or the transfer is over, on_get()): it
                 * refuses while its BLOB client is not sending yet (the
                 * round's first steps), and a pause must not be lost. */
                exec(d, false, on_get, "mesh models dfd suspend");
                return;
        }
        if (d->want_resume) {
                d->want_resume = false;
                /* A start with the same parameters resumes a suspended
                 * transfer (dfd_srv.c). */
                send_start(d);
                return;
        }
        exec(d, true, on_get, "mesh models dfd get");
}

static void on_cancel_done(struct distribution *d, const struct smp_shell_result *r) {
        struct smp_mesh_dfd_state st;

        if (d->want_cancel) {
                finish(d, DISTRIBUTION_CANCELLED);
                return;
        }
        if (smp_mesh_dfd_state_parse(r->output, r->output_len, &st) >= 0 &&
            st.phase == SMP_MESH_DFD_PHASE_CANCELING_UPDATE) {
                /* The next round's start would be refused until idle. */
                d->step = DISTRIBUTION_STEP_ROUND;
                save(d);
                emit_step(d);
                wait_canceling(d, &st);
                return;
        }
        step_to(d, DISTRIBUTION_STEP_ROUND);
}

/* The round is over: every receiver updated or failed this round (with
 * why, or else its phase and status, as the reason). */
static void end_round(struct distribution *d, const char *why) {
        size_t ok = 0, bad = 0;

        for (size_t i = 0; i < d->n_targets; i++) {
                struct distribution_target *t = &d->targets[i];
                if (t->state != DISTRIBUTION_TARGET_ACTIVE)
                        continue;
                /* At "completed", every target the Distributor did not
                 * fail has status success: those that answered with the
                 * new firmware ID (apply success), and those whose update
                 * unprovisions them, which answer nothing after their
                 * reboot and stay in phase applying (dfu_cli.c
                 * confirmed()).  Elsewhere only apply success counts. */
                bool silent = d->dfd_phase == SMP_MESH_DFD_PHASE_COMPLETED && t->status == SMP_MESH_DFU_SUCCESS &&
                              t->phase != SMP_MESH_DFU_PHASE_APPLY_SUCCESS;
                if (t->phase == SMP_MESH_DFU_PHASE_APPLY_SUCCESS || silent) {
                        t->state = DISTRIBUTION_TARGET_UPDATED;
                        t->progress = 100;
                        free(t->reason);
                        t->reason = silent ? strdup(DISTRIBUTION_REASON_UNPROVISIONED) : NULL;
                        if (silent)
                                log_notice("Distribution %" PRIu64 ": mesh target 0x%04x updated and unprovisioned "
                                           "itself: provision it again",
                                           d->id, t->addr);
                        ok++;
                        target_device_update(d, t, true);
                        continue;
                }
                free(t->reason);
                if ((why ? asprintf(&t->reason, "round %u: %s", d->rounds, why)
                         : asprintf(&t->reason, "round %u: phase %s, status %s", d->rounds,
                                    smp_mesh_dfu_phase_to_string(t->phase) ?: "?",
                                    smp_mesh_dfu_status_to_string(t->status) ?: "?")) < 0)
                        t->reason = NULL;
                explain_target_failure(d, t);
                bad++;
                /* A target that refused the metadata judged the image
                 * (version, size, composition): another round sends it
                 * the same and is refused the same. */
                if (t->attempts < d->policy.max_attempts && !deadline_passed(d) &&
                    t->status != SMP_MESH_DFU_ERR_METADATA)
                        t->state = DISTRIBUTION_TARGET_PENDING;
                else
                        t->state = DISTRIBUTION_TARGET_FAILED;
                target_device_update(d, t, false);
        }
        log_info("Distribution %" PRIu64 ": round %u ended, %zu updated, %zu failed", d->id, d->rounds, ok, bad);
        d->resume_at_usec = 0;
        d->step = DISTRIBUTION_STEP_COLLECT;
        save(d);
        manager_emit_distribution(d->manager, MANAGER_EVENT_DISTRIBUTION_PROGRESS, d);
        /* Completed or failed goes back to idle only through cancel (a
         * start with the same parameters would be a no-op otherwise),
         * sent from the timer (on_timer(), step collect): the event
         * above is delivered first, which reads the step then.  Sent
         * from here, its answer could come in the same dispatch of the
         * link (a transport reads every datagram waiting) and move the
         * step on before, and "collect" was never told. */
        next(d);
}

/* ---- connecting, and finding out where the Distributor stands ---- */

/* The Distributor is in "canceling update" (a cancel from an active
 * transfer, ours or another distribution's): it goes idle once every
 * target answered the Update Cancel or timed out, and refuses a start
 * until then.  Asks again with backoff (on_timer() -> on_sync()), for
 * at most twice the BLOB client's timeout of that transfer. */
static void wait_canceling(struct distribution *d, const struct smp_mesh_dfd_state *st) {
        uint64_t now = now_monotonic_usec();
        uint64_t tb = st->has_params ? st->timeout_base : d->policy.timeout_base;
        uint64_t ttl = st->has_params ? st->ttl : (d->policy.ttl ?: SMP_MESH_TTL_DEFAULT);
        uint64_t bound =
                MAX((uint64_t) DISTRIBUTION_CANCELING_WAIT_MIN_USEC, 2u * (10000000u * (tb + 2u) + 100000u * ttl));

        if (!d->canceling_since_usec) {
                d->canceling_since_usec = now;
                d->canceling_poll_usec = d->policy.poll_min_usec;
                log_info("Distribution %" PRIu64 ": the Distributor is canceling a transfer; waiting for it "
                         "to go idle",
                         d->id);
        } else if (now - d->canceling_since_usec > bound) {
                fail(d, "the Distributor stayed in phase canceling update for more than %" PRIu64 " s",
                     bound / 1000000u);
                return;
        } else
                d->canceling_poll_usec = MIN(d->canceling_poll_usec * 2, d->policy.poll_max_usec);
        arm(d, d->canceling_poll_usec);
}

static void on_sync(struct distribution *d, const struct smp_shell_result *r) {
        struct smp_mesh_dfd_state st;

        if (smp_mesh_dfd_state_parse(r->output, r->output_len, &st) < 0) {
                /* The whole sync again (this answer may have been a
                 * cancel's). */
                d->synced = false;
                (void) retry_garbled(d, "dfd get", r);
                return;
        }
        d->garbled = 0;
        d->synced = true;
        d->dfd_phase = st.phase;
        remember_dfd_params(d, &st);
        if (st.phase == SMP_MESH_DFD_PHASE_CANCELING_UPDATE && d->step != DISTRIBUTION_STEP_TRANSFER &&
            d->step != DISTRIBUTION_STEP_DONE) {
                wait_canceling(d, &st);
                return;
        }
        d->canceling_since_usec = 0;
        bool active =
                st.phase == SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE || st.phase == SMP_MESH_DFD_PHASE_TRANSFER_SUCCESS ||
                st.phase == SMP_MESH_DFD_PHASE_APPLYING_UPDATE || st.phase == SMP_MESH_DFD_PHASE_TRANSFER_SUSPENDED ||
                st.phase == SMP_MESH_DFD_PHASE_CANCELING_UPDATE;
        bool ended = st.phase == SMP_MESH_DFD_PHASE_COMPLETED || st.phase == SMP_MESH_DFD_PHASE_FAILED;

        switch (d->step) {
        case DISTRIBUTION_STEP_UPLOAD:
        case DISTRIBUTION_STEP_SLOT:
                if (active) {
                        fail(d, "the Distributor is busy with another distribution (phase %s)",
                             smp_mesh_dfd_phase_to_string(st.phase) ?: "?");
                        return;
                }
                if (ended) {
                        /* An old distribution, finished: back to idle. */
                        exec(d, false, on_sync, "mesh models dfd cancel");
                        return;
                }
                break;
        case DISTRIBUTION_STEP_ROUND:
                /* Killed after start, before recording it: the round runs. */
                if (active || ended) {
                        d->step = DISTRIBUTION_STEP_TRANSFER;
                        emit_step(d);
                }
                break;
        case DISTRIBUTION_STEP_TRANSFER:
                break;
        case DISTRIBUTION_STEP_COLLECT:
                /* The round was read; its cancel may not have been sent. */
                if (ended || active) {
                        exec(d, false, on_cancel_done, "mesh models dfd cancel");
                        return;
                }
                d->step = DISTRIBUTION_STEP_ROUND;
                emit_step(d);
                break;
        case DISTRIBUTION_STEP_DONE:
        case _DISTRIBUTION_STEP_MAX:
                return;
        }
        next(d);
}

static void on_caps(struct distribution *d, const struct smp_shell_result *r) {
        struct smp_mesh_dfd_capabilities caps;

        if (smp_mesh_dfd_capabilities_parse(r->output, r->output_len, &caps) < 0 || caps.targets_max == 0) {
                /* on_timer() asks again: not synced */
                (void) retry_garbled(d, "the device does not answer as a Mesh Distributor (dfd capabilities-get)", r);
                return;
        }
        d->garbled = 0;
        d->targets_max = MIN(caps.targets_max, DISTRIBUTION_TARGETS_MAX);
        struct image *img = manager_find_image(d->manager, d->image_id);
        if (img && caps.slot_max_size && img->file_size > caps.slot_max_size) {
                fail(d, "the image (%" PRIu64 " bytes) is larger than the Distributor's slot (%" PRIu32 ")",
                     img->file_size, caps.slot_max_size);
                return;
        }
        exec(d, true, on_sync, "mesh models dfd get");
}

static void connect_distributor(struct distribution *d) {
        struct device *dist = distributor_of(d);
        int r;

        distribution_disconnect(d);
        d->lost = false;
        d->synced = false;
        if (!dist) {
                fail(d, "its Distributor is gone");
                return;
        }
        r = smp_session_open(d->manager->smp, d->manager->event, dist->conn, &d->session);
        if (r < 0) {
                lost(d, r);
                return;
        }
        exec(d, true, on_caps, "mesh models dfd capabilities-get");
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct distribution *d = userdata;

        (void) s;
        (void) usec;
        if (distribution_is_finished(d) || d->busy)
                return 0;
        if (d->lost || !d->session) {
                if (d->want_cancel) {
                        finish(d, DISTRIBUTION_CANCELLED);
                        return 0;
                }
                connect_distributor(d);
                return 0;
        }
        if (!d->synced) {
                exec(d, true, on_caps, "mesh models dfd capabilities-get");
                return 0;
        }
        if (d->want_cancel && d->step != DISTRIBUTION_STEP_COLLECT) {
                if (d->step == DISTRIBUTION_STEP_TRANSFER || d->step == DISTRIBUTION_STEP_ROUND) {
                        exec(d, false, on_cancel_done, "mesh models dfd cancel");
                        return 0;
                }
                finish(d, DISTRIBUTION_CANCELLED);
                return 0;
        }
        if (d->canceling_since_usec) {
                exec(d, true, on_sync, "mesh models dfd get");
                return 0;
        }
        switch (d->step) {
        case DISTRIBUTION_STEP_UPLOAD:
                set_state(d, DISTRIBUTION_RUNNING);
                run_upload(d);
                break;
        case DISTRIBUTION_STEP_SLOT:
                run_slot(d);
                break;
        case DISTRIBUTION_STEP_ROUND:
                if (d->held && deadline_passed(d)) {
                        set_error(d, "the deadline passed while it was suspended");
                        finish(d, DISTRIBUTION_FAILED);
                        break;
                }
                if (d->held) {
                        /* Waits for the resume, which kicks it, or the
                         * deadline. */
                        set_state(d, DISTRIBUTION_SUSPENDED);
                        if (d->policy.deadline_usec)
                                arm(d, d->policy.deadline_usec - now_realtime_usec());
                        break;
                }
                run_round(d);
                break;
        case DISTRIBUTION_STEP_TRANSFER:
                run_transfer(d);
                break;
        case DISTRIBUTION_STEP_COLLECT:
                exec(d, false, on_cancel_done, "mesh models dfd cancel");
                break;
        case DISTRIBUTION_STEP_DONE:
        case _DISTRIBUTION_STEP_MAX:
                break;
        }
        return 0;
}

int distribution_attach(struct manager *m, struct distribution *d) {
        int r;

        struct distribution **g = realloc(m->distributions, (m->n_distributions + 1) * sizeof(*g));
        if (!g)
                return -ENOMEM;
        m->distributions = g;
        d->manager = m;
        if (d->policy.poll_min_usec == 0)
                d->policy.poll_min_usec = DISTRIBUTION_POLL_MIN_DEFAULT_USEC;
        if (d->policy.poll_max_usec == 0)
                d->policy.poll_max_usec = DISTRIBUTION_POLL_MAX_DEFAULT_USEC;
        d->poll_usec = d->policy.poll_min_usec;
        d->reconnect_usec = DISTRIBUTION_RECONNECT_MIN_USEC;
        d->shell_buf = SMP_SHELL_CMD_BUFF_SIZE_DEFAULT;
        d->page_size = RECEIVERS_PAGE;
        d->dfd_phase = 0xff;
        /* Held when smpgwd stopped (before a round, or its transfer
         * suspended by a pause): it stays so until its resume (the
         * rollout paused stays paused).  A suspension the Distributor
         * chose leaves the state "running". */
        d->held = d->state == DISTRIBUTION_SUSPENDED;
        if (m->event) {
                r = sd_event_add_time(m->event, &d->timer, CLOCK_MONOTONIC, UINT64_MAX, 1000, on_timer, d);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_enabled(d->timer, SD_EVENT_OFF);
        }
        m->distributions[m->n_distributions++] = d;
        return 0;
}

void distributions_start_all(struct manager *m) {
        for (size_t i = 0; i < m->n_distributions; i++) {
                struct distribution *d = m->distributions[i];
                if (!distribution_is_finished(d) && d->timer)
                        next(d);
        }
}

void distributions_stop_all(struct manager *m) {
        for (size_t i = 0; i < m->n_distributions; i++) {
                struct distribution *d = m->distributions[i];
                distribution_disconnect(d);
                if (d->timer)
                        (void) sd_event_source_set_enabled(d->timer, SD_EVENT_OFF);
        }
}

/* ---- the engine's calls ---- */

void distribution_kick(struct distribution *d) {
        if (!d->busy)
                next(d);
}

int distribution_request(struct distribution *d, enum distribution_request req) {
        switch (req) {
        case DISTRIBUTION_REQUEST_CANCEL:
                d->want_cancel = true;
                /* An upload stops at once (it resumes if asked again);
                 * a shell command in flight is answered first. */
                if (d->upload) {
                        smp_update_cancel(d->upload);
                        d->upload = NULL;
                        d->busy = false;
                }
                break;
        case DISTRIBUTION_REQUEST_SUSPEND:
                d->want_suspend = true;
                d->want_resume = false;
                d->held = true;
                break;
        case DISTRIBUTION_REQUEST_RESUME:
                /* A suspend not done yet is dropped; a done one resumed.
                 * Held before a round, the Distributor has no transfer to
                 * resume: the round starts (a `dfd start` sent to its
                 * transfer again would be for nothing). */
                d->want_resume = d->want_suspend ? d->state == DISTRIBUTION_SUSPENDED : true;
                if (d->held && d->step == DISTRIBUTION_STEP_ROUND)
                        d->want_resume = false;
                d->want_suspend = false;
                d->held = false;
                break;
        case DISTRIBUTION_REQUEST_APPLY:
                d->want_apply = true;
                break;
        }
        distribution_kick(d);
        return 0;
}
