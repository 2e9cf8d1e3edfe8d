/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Running jobs: jobs_schedule() starts queued ones while the global and
 * per-transport limits allow, a failed attempt waits (retry_delay,
 * doubled per attempt, capped) and tries again until max_attempts, and a
 * stop (SIGTERM, crash) leaves running jobs to resume: the next start
 * finds them queued and the upload goes on from the offset the device
 * reports for the same image.  An attempt cut short that way does not
 * count towards max_attempts.
 *
 * Outcomes: updated, up-to-date, testing (test-only) and uploaded
 * (upload-only) succeed.  reverted and stuck fail at once: MCUboot gave a
 * definitive answer, and pushing the same image again would only make the
 * device reboot into it and back again.  The job reads the device's slots
 * before its first attempt and keeps them (j->before, persisted), because
 * each attempt of the update judges only against what it finds: resumed
 * after a crash, it would call a device this job updated "up-to-date".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "manager.h"
#include "smpgw/smp-error.h"
#include "smpgw/smp-frame.h"
#include "smpgw/smp-img.h"
#include "smpgw/smp-session.h"
#include "smpgw/smp-update.h"
#include "util.h"

/* At most this many progress events per second per job. */
#define PROGRESS_EMIT_INTERVAL_USEC (250 * 1000ull)
/* SMP request timeout before the upload's own adaptive timeouts apply. */
#define JOB_REQUEST_TIMEOUT_USEC (5 * 1000000ull)

void job_teardown(struct job *j) {
        /* job_start() maps the image first, then takes the device. */
        bool started = j->image_mapped;

        if (j->before_read) {
                smp_request_cancel(j->before_read);
                j->before_read = NULL;
        }
        if (j->update) {
                smp_update_cancel(j->update);
                j->update = NULL;
        }
        j->session = smp_session_free(j->session);
        j->finish_defer = sd_event_source_disable_unref(j->finish_defer);
        if (j->image_mapped) {
                image_unmap(j->image_mapped);
                j->image_mapped = NULL;
        }
        if (started && j->device && j->device->job == j)
                j->device->job = NULL;
}

static int on_retry_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct job *j = userdata;
        j->retry_timer = sd_event_source_disable_unref(j->retry_timer);
        if (j->state == JOB_RETRY_WAIT) {
                job_set_state(j, JOB_QUEUED);
                log_job_state(LOG_INFO, j, "Retry due: queued for attempt %u of %u", j->attempts + 1,
                              j->max_attempts);
                job_changed(j);
        }
        manager_schedule_jobs(j->manager);
        return 0;
}

/* Arms the job's timer for next_attempt_usec (realtime). */
static int job_arm_timer(struct job *j) {
        struct manager *m = j->manager;
        j->retry_timer = sd_event_source_disable_unref(j->retry_timer);
        return sd_event_add_time(m->event, &j->retry_timer, CLOCK_REALTIME, j->next_attempt_usec, 100 * 1000,
                                 on_retry_timer, j);
}

static void error_sentence(const struct smp_update_result *r, char *buf, size_t size) {
        const char *step = smp_update_step_to_string(r->failed_step);
        char status[200];

        if (r->error == -EREMOTEIO) {
                (void) smp_status_format(&r->status, status, sizeof(status));
                snprintf(buf, size, "%s: the device refused: %s", step, status);
        } else if (r->error == -ETIMEDOUT && r->failed_step == SMP_UPDATE_STEP_WAIT_REBOOT)
                snprintf(buf, size, "%s: the device did not come back with a decision in time", step);
        else if (r->error == -ETIMEDOUT)
                snprintf(buf, size, "%s: the device does not answer", step);
        else if (r->error == -EIO && r->failed_step == SMP_UPDATE_STEP_UPLOAD)
                snprintf(buf, size, "%s: the device's flash does not match the image's SHA-256", step);
        else if (r->error == -EIO && r->failed_step == SMP_UPDATE_STEP_CHECK_UPLOAD)
                snprintf(buf, size, "%s: the secondary slot does not hold the image after the upload", step);
        else
                snprintf(buf, size, "%s: %s", step, strerror(-r->error));
}

/* Whether the device ran the job's image, confirmed, when the job began
 * (its slots before the first attempt).  Unknown (a job from a database
 * older than migration 4 that had started already) counts as yes: the
 * update's own judgement stands. */
static bool job_found_image_running(const struct job *j) {
        if (j->before.n_slots == 0)
                return true;
        for (size_t i = 0; i < MIN(j->before.n_slots, (size_t) SMP_UPDATE_SLOTS_MAX); i++) {
                const struct smp_update_slot *s = &j->before.slots[i];
                char hash[2 * sizeof(s->hash) + 1];
                if (!s->present || s->image != 0 || !s->active)
                        continue;
                hex_encode(s->hash, MIN(s->hash_len, sizeof(s->hash)), hash);
                return s->confirmed && streq(hash, j->image_id);
        }
        return false;
}

/* Runs outside the update's callbacks: the session can go now. */
static int on_finish_defer(sd_event_source *s, void *userdata) {
        struct job *j = userdata;
        job_teardown(j);
        manager_schedule_jobs(j->manager);
        return 0;
}

static void on_update_done(struct smp_update *u, const struct smp_update_result *r, void *userdata) {
        struct job *j = userdata;
        struct manager *m = j->manager;
        struct device *d = j->device;
        char msg[300];

        j->update = NULL;   /* frees itself after this call */
        if (d) {
                if (r->upload.path_mtu)
                        d->path_mtu = r->upload.path_mtu;
                if (r->after.n_slots > 0) {
                        d->slots = r->after;
                        d->slots_dirty = true;
                }
                if (r->error == 0 || r->outcome != SMP_UPDATE_OUTCOME_NONE) {
                        device_mark_seen(d);
                        d->last_probe_usec = d->last_seen_usec;
                        device_set_state(d, DEVICE_ONLINE);
                }
                d->dirty = true;
                manager_emit(m, MANAGER_EVENT_DEVICE_CHANGED, d, NULL, NULL);
        }
        enum smp_update_outcome outcome = r->outcome;
        if (outcome == SMP_UPDATE_OUTCOME_UP_TO_DATE && !job_found_image_running(j)) {
                /* This attempt found the image running and confirmed, but
                 * the device ran something else when the job began: an
                 * earlier attempt, interrupted before it could say so,
                 * did it. */
                log_job(LOG_INFO, j, "The device runs the image already: an earlier, interrupted attempt of "
                        "this job updated it");
                outcome = SMP_UPDATE_OUTCOME_UPDATED;
        }
        if (outcome != SMP_UPDATE_OUTCOME_NONE) {
                j->has_outcome = true;
                j->outcome = outcome;
        }
        if (r->upload.rate > 0)
                j->rate = r->upload.rate;

        switch (outcome) {
        case SMP_UPDATE_OUTCOME_UPDATED:
        case SMP_UPDATE_OUTCOME_UP_TO_DATE:
        case SMP_UPDATE_OUTCOME_TESTING:
        case SMP_UPDATE_OUTCOME_UPLOADED:
                j->bytes_sent = j->bytes_total;
                job_set_error(j, NULL);
                job_finish(j, JOB_SUCCEEDED);
                break;
        case SMP_UPDATE_OUTCOME_REVERTED:
                job_set_error(j, "reverted: %s",
                              r->rejected ? "MCUboot found the new image invalid and erased it"
                                          : "the device runs the old image again (the new one did not confirm)");
                job_finish(j, JOB_FAILED);
                break;
        case SMP_UPDATE_OUTCOME_STUCK:
                job_set_error(j, "stuck: the device's image state after %s is not what the update expects",
                              smp_update_step_to_string(r->error < 0 ? r->failed_step : SMP_UPDATE_STEP_DONE));
                job_finish(j, JOB_FAILED);
                break;
        default:
                error_sentence(r, msg, sizeof(msg));
                job_set_error(j, "%s", msg);
                m->stats.job_attempts_failed++;
                /* A device refusing the image (bad image, no room) will
                 * refuse it again; transport trouble may pass. */
                bool final = r->error == -EREMOTEIO && r->failed_step != SMP_UPDATE_STEP_WAIT_REBOOT;
                if (final || j->attempts >= j->max_attempts) {
                        job_finish(j, JOB_FAILED);
                        break;
                }
                uint64_t delay = m->config->job_retry_delay_usec;
                for (unsigned i = 1; i < j->attempts && delay < m->config->job_retry_delay_max_usec; i++)
                        delay *= 2;
                delay = MIN(delay, m->config->job_retry_delay_max_usec);
                job_set_state(j, JOB_RETRY_WAIT);
                j->next_attempt_usec = now_realtime_usec() + delay;
                log_job_state(LOG_NOTICE, j, "Attempt %u of %u failed (%s); next in %" PRIu64 " s", j->attempts,
                              j->max_attempts, msg, delay / 1000000u);
                manager_history(m, "job-retry", NULL, NULL, j, "attempt %u failed: %s", j->attempts, msg);
                (void) job_arm_timer(j);
                job_changed(j);
                (void) manager_flush_now(m);
                break;
        }
        if (sd_event_add_defer(m->event, &j->finish_defer, on_finish_defer, j) < 0)
                log_job(LOG_WARNING, j, "Out of memory deferring the session teardown");
}

static void on_update_step(struct smp_update *u, enum smp_update_step step, void *userdata) {
        struct job *j = userdata;
        j->has_step = true;
        j->step = step;
        log_job(LOG_DEBUG, j, "Step %s", smp_update_step_to_string(step));
        job_changed(j);
}

static void on_upload_progress(struct smp_upload *u, const struct smp_upload_progress *p, void *userdata) {
        struct job *j = userdata;
        struct manager *m = j->manager;
        uint64_t now = now_realtime_usec();

        if (p->offset > j->last_progress_bytes)
                m->stats.bytes_uploaded += p->offset - j->last_progress_bytes;
        j->last_progress_bytes = p->offset;
        j->bytes_sent = p->offset;
        j->bytes_total = p->total;
        j->rate = p->rate;
        j->dirty = true;
        /* No write here: the flush timer checkpoints progress. */
        if (now - j->last_progress_emit_usec >= PROGRESS_EMIT_INTERVAL_USEC || p->offset == p->total) {
                j->last_progress_emit_usec = now;
                j->updated_usec = now;
                manager_emit(m, MANAGER_EVENT_JOB_PROGRESS, NULL, NULL, j);
        }
}

/* The update procedure proper, on the attempt's session. */
static int job_update_start(struct job *j) {
        const struct image *img = j->image_mapped;
        const struct device *d = j->device;
        const struct smp_update_params params = {
                .data = img->map,
                .len = img->map_len,
                .mode = j->mode,
                .swap_timeout_usec = j->manager->config->job_swap_timeout_usec,
                /* the path limit the device's last upload found, checked again */
                .path_mtu = d ? d->path_mtu : 0,
                .upload_progress = on_upload_progress,
                .step = on_update_step,
                .done = on_update_done,
                .userdata = j,
        };
        return smp_update_start(j->session, &params, &j->update);
}

static void on_before_read(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                           size_t len, void *userdata) {
        struct job *j = userdata;
        struct smp_update_result failed = { .failed_step = SMP_UPDATE_STEP_READ_STATE };
        struct smp_update_snapshot snap = {};

        j->before_read = NULL;
        if (error >= 0)
                error = smp_update_snapshot_from_body(body, len, &snap, &failed.status);
        if (error >= 0) {
                j->before = snap;
                j->before_dirty = true;
                /* Written before the update can change the device: a kill
                 * -9 from here on must find them.  A failed write stays
                 * dirty and goes with the next flush. */
                (void) manager_flush_now(j->manager);
                error = job_update_start(j);
        }
        if (error < 0) {
                /* An attempt that failed in its first step, as if the
                 * update had read the state itself. */
                failed.error = error;
                on_update_done(NULL, &failed, j);
        }
}

/* Reads the device's slots for j->before: the first step of the job's
 * first attempt (and of later ones until a read succeeds).  One request
 * per job: the update reads the state again, at each attempt. */
static int job_read_before(struct job *j) {
        static const uint8_t empty_map[] = { 0xa0 };
        const struct smp_request_params params = {
                .op = SMP_OP_READ,
                .group = SMP_GROUP_IMAGE,
                .id = SMP_IMG_CMD_STATE,
                .body = empty_map,
                .body_len = sizeof(empty_map),
                .idempotent = true,
        };
        j->has_step = true;
        j->step = SMP_UPDATE_STEP_READ_STATE;
        return smp_session_send(j->session, &params, on_before_read, j, &j->before_read);
}

static int job_start(struct job *j, struct device *d) {
        struct manager *m = j->manager;
        struct image *img = manager_find_image(m, j->image_id);
        const uint8_t *data;
        size_t len;
        int r;

        if (!img) {
                job_set_error(j, "the image %s is no longer in the store", j->image_id);
                job_finish(j, JOB_FAILED);
                return -ENOENT;
        }
        r = image_map(img, &data, &len);
        if (r < 0) {
                job_set_error(j, "cannot read the image file: %s", strerror(-r));
                job_finish(j, JOB_FAILED);
                return r;
        }
        j->image_mapped = img;
        j->attempts++;
        job_set_state(j, JOB_RUNNING);
        if (!j->started_usec)
                j->started_usec = now_realtime_usec();
        j->bytes_total = len;
        j->last_progress_bytes = j->bytes_sent;
        d->job = j;
        device_probe_cancel(d);

        r = smp_session_open(m->smp, m->event, d->conn, &j->session);
        if (r < 0)
                goto fail;
        smp_session_set_timeout(j->session, JOB_REQUEST_TIMEOUT_USEC);
        r = j->before.n_slots == 0 ? job_read_before(j) : job_update_start(j);
        if (r < 0)
                goto fail;
        log_job_state(LOG_INFO, j, "Attempt %u of %u: pushing %s (%s, %zu bytes) to %s", j->attempts,
                      j->max_attempts, img->version, j->image_id, len, d->conn);
        manager_history(m, "job-started", d, NULL, j, "attempt %u of %u", j->attempts, j->max_attempts);
        job_changed(j);
        return 0;

fail:
        job_teardown(j);
        job_set_error(j, "cannot start: %s", strerror(-r));
        if (j->attempts >= j->max_attempts)
                job_finish(j, JOB_FAILED);
        else {
                job_set_state(j, JOB_RETRY_WAIT);
                j->next_attempt_usec = now_realtime_usec() + m->config->job_retry_delay_usec;
                log_job_state(LOG_NOTICE, j, "Attempt %u of %u could not start (%s); next in %" PRIu64 " s",
                              j->attempts, j->max_attempts, strerror(-r),
                              m->config->job_retry_delay_usec / 1000000u);
                (void) job_arm_timer(j);
                job_changed(j);
        }
        return r;
}

/* Running jobs per transport, counted once per scheduling pass: a
 * rollout queues thousands of jobs, and counting again for each of them
 * walked every job and device per queued job. */
#define TRANSPORTS_MAX 16

struct transport_count {
        const char *transport;
        unsigned running;
};

static unsigned *transport_running(struct transport_count *counts, size_t *n, const char *transport) {
        for (size_t i = 0; i < *n; i++)
                if (strcmp(counts[i].transport, transport) == 0)
                        return &counts[i].running;
        if (*n == TRANSPORTS_MAX)
                return NULL;
        counts[*n] = (struct transport_count) { .transport = transport };
        return &counts[(*n)++].running;
}

void jobs_schedule(struct manager *m) {
        uint64_t now = now_realtime_usec();
        struct transport_count counts[TRANSPORTS_MAX];
        size_t n_counts = 0;
        unsigned running = 0;

        /* d->job is set from job_start() until the attempt's session is
         * torn down, so it counts every job holding a slot. */
        for (size_t i = 0; i < m->n_devices; i++) {
                struct device *d = m->devices[i];
                unsigned *c;
                if (!d->job)
                        continue;
                running++;
                c = transport_running(counts, &n_counts, d->transport);
                if (c)
                        (*c)++;
        }

        if (m->stopping)
                return;
        for (size_t i = 0; i < m->n_jobs && running < m->config->jobs_max_running; i++) {
                struct job *j = m->jobs[i];
                if (j->state == JOB_RETRY_WAIT && !j->retry_timer)
                        (void) job_arm_timer(j);   /* loaded from the database */
                if (j->state != JOB_QUEUED)
                        continue;
                if (j->next_attempt_usec > now) {
                        if (!j->retry_timer)
                                (void) job_arm_timer(j);
                        continue;
                }
                struct device *d = j->device;
                if (!d) {
                        job_set_error(j, "the device is gone");
                        job_finish(j, JOB_FAILED);
                        continue;
                }
                if (d->job)
                        continue;
                unsigned *in_transport = transport_running(counts, &n_counts, d->transport);
                unsigned busy = in_transport ? *in_transport : jobs_count_running(m, d->transport);
                if (busy >= config_jobs_max_running_for(m->config, d->transport))
                        continue;
                if (job_start(j, d) >= 0) {
                        running++;
                        if (in_transport)
                                (*in_transport)++;
                }
        }
}

void jobs_stop_all(struct manager *m) {
        for (size_t i = 0; i < m->n_jobs; i++) {
                struct job *j = m->jobs[i];
                j->retry_timer = sd_event_source_disable_unref(j->retry_timer);
                if (j->state != JOB_RUNNING)
                        continue;
                /* Interrupted by us, not failed: the attempt does not
                 * count, and the next start resumes it. */
                job_teardown(j);
                if (j->attempts > 0)
                        j->attempts--;
                job_set_state(j, JOB_QUEUED);
                j->dirty = true;
                log_job_state(LOG_INFO, j, "Stopped at %" PRIu64 " of %" PRIu64 " bytes; resumes at the next start",
                              j->bytes_sent, j->bytes_total);
                manager_history(m, "job-interrupted", NULL, NULL, j, "daemon stopping at %" PRIu64 " bytes",
                                j->bytes_sent);
        }
}
