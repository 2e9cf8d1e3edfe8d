/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A job as an object (job.h): its states, its creation (persistent from
 * that moment), cancellation, its end, its removal, and the pruning of
 * old finished jobs.  Running it is job-scheduler.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "db.h"
#include "log.h"
#include "manager.h"
#include "util.h"

static const char *const job_state_table[_JOB_STATE_MAX] = {
        [JOB_QUEUED] = "queued",       [JOB_RUNNING] = "running",     [JOB_RETRY_WAIT] = "retry-wait",
        [JOB_SUCCEEDED] = "succeeded", [JOB_FAILED] = "failed",       [JOB_CANCELLED] = "cancelled",
        [JOB_STAGED] = "staged",       [JOB_REBOOTING] = "rebooting",
};

const char *job_state_to_string(enum job_state s) {
        return s < _JOB_STATE_MAX ? job_state_table[s] : NULL;
}

int job_state_from_string(const char *s) {
        for (int i = 0; i < _JOB_STATE_MAX; i++)
                if (s && strcmp(s, job_state_table[i]) == 0)
                        return i;
        return -EINVAL;
}

bool job_is_finished(const struct job *j) {
        return j->state == JOB_SUCCEEDED || j->state == JOB_FAILED || j->state == JOB_CANCELLED;
}

struct job *manager_find_job(struct manager *m, uint64_t id) {
        struct job *j;

        HASH_FIND(hh, m->jobs_by_id, &id, sizeof(id), j);
        return j;
}

void job_set_state(struct job *j, enum job_state state) {
        struct manager *m = j->manager;
        bool was_finished = job_is_finished(j);

        m->jobs_by_state[j->state]--;
        j->state = state;
        m->jobs_by_state[state]++;
        if (!was_finished && job_is_finished(j) && j->device)
                device_unlink_job(j->device, j);
}

struct job *job_free(struct job *j) {
        if (!j)
                return NULL;
        job_teardown(j);
        sd_event_source_disable_unref(j->retry_timer);
        free(j->error);
        free(j);
        return NULL;
}

void job_set_error(struct job *j, const char *fmt, ...) {
        free(j->error);
        j->error = NULL;
        if (fmt) {
                va_list ap;
                va_start(ap, fmt);
                if (vasprintf(&j->error, fmt, ap) < 0)
                        j->error = NULL;
                va_end(ap);
        }
}

void job_changed(struct job *j) {
        j->updated_usec = now_realtime_usec();
        j->dirty = true;
        manager_emit(j->manager, MANAGER_EVENT_JOB_STATE, NULL, NULL, j);
}

void job_finish(struct job *j, enum job_state state) {
        struct manager *m = j->manager;

        job_set_state(j, state);
        j->finished_usec = now_realtime_usec();
        j->next_attempt_usec = 0;
        if (state == JOB_SUCCEEDED)
                m->stats.jobs_succeeded++;
        else if (state == JOB_FAILED)
                m->stats.jobs_failed++;
        else
                m->stats.jobs_cancelled++;
        log_job_state(state == JOB_SUCCEEDED ? LOG_INFO : LOG_WARNING, j, "Job %s%s%s%s%s%s",
                      job_state_to_string(state), j->has_outcome ? " (" : "",
                      j->has_outcome ? smp_update_outcome_to_string(j->outcome) : "", j->has_outcome ? ")" : "",
                      j->error && state != JOB_SUCCEEDED ? ": " : "",
                      j->error && state != JOB_SUCCEEDED ? j->error : "");
        manager_history(m, "job-finished", NULL, NULL, j, "%s%s%s%s%s", job_state_to_string(state),
                        j->has_outcome ? ", outcome " : "",
                        j->has_outcome ? smp_update_outcome_to_string(j->outcome) : "", j->error ? ": " : "",
                        j->error ? j->error : "");
        job_changed(j);
        /* A finished job is a fact worth the write right now. */
        (void) manager_flush_now(m);
}

int job_create(struct manager *m, struct image *img, struct device *d, const struct job_options *opts,
               struct job **ret) {
        struct job *existing = d->unfinished_job;
        int r;

        if (existing) {
                if (ret)
                        *ret = existing;
                return -EBUSY;
        }
        struct job *j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->manager = m;
        j->device_id = d->id;
        memcpy(j->image_id, img->id, sizeof(j->image_id));
        j->mode = opts && opts->mode < _SMP_UPDATE_MODE_MAX ? opts->mode : m->config->job_mode;
        j->max_attempts = opts && opts->max_attempts ? opts->max_attempts : m->config->job_attempts;
        j->rollout_id = opts ? opts->rollout_id : 0;
        j->next_attempt_usec = opts ? opts->not_before_usec : 0;
        j->stage_only = opts && opts->stage_only;
        j->priority = opts ? opts->priority : 0;
        j->forced = opts && opts->force;
        j->phase = SMP_UPDATE_PHASE_STAGE;
        j->state = JOB_QUEUED;
        j->bytes_total = img->file_size;
        j->created_usec = j->updated_usec = now_realtime_usec();

        r = db_job_insert(m->db, j);
        if (r < 0) {
                free(j);
                return r;
        }
        r = manager_attach_job(m, j);
        if (r < 0) {
                (void) db_job_delete(m->db, j->id);
                free(j);
                return r;
        }
        log_job_state(LOG_INFO, j, "Queued: %s (%s) to %s, mode %s", img->version, img->id, d->conn,
                      smp_update_mode_to_string(j->mode));
        manager_history(m, "job-created", d, img->id, j, "push %s, mode %s", img->version,
                        smp_update_mode_to_string(j->mode));
        manager_emit(m, MANAGER_EVENT_JOB_ADDED, d, NULL, j);
        manager_schedule_jobs(m);
        if (ret)
                *ret = j;
        return 0;
}

int job_cancel(struct job *j) {
        if (job_is_finished(j))
                return -EALREADY;
        job_teardown(j);
        j->retry_timer = sd_event_source_disable_unref(j->retry_timer);
        job_set_error(j, "cancelled");
        job_finish(j, JOB_CANCELLED);
        manager_schedule_jobs(j->manager);
        return 0;
}

bool job_has_started(const struct job *j) {
        return j->state != JOB_QUEUED || j->started_usec != 0 || j->attempts > 0;
}

int job_fail_unstarted(struct job *j, const char *fmt, ...) {
        va_list ap;

        if (job_has_started(j))
                return -EBUSY;
        /* Nothing runs, but a read of its slots may be under way. */
        job_teardown(j);
        j->retry_timer = sd_event_source_disable_unref(j->retry_timer);
        free(j->error);
        va_start(ap, fmt);
        if (vasprintf(&j->error, fmt, ap) < 0)
                j->error = NULL;
        va_end(ap);
        job_finish(j, JOB_FAILED);
        manager_schedule_jobs(j->manager);
        return 0;
}

int job_remove(struct job *j) {
        struct manager *m = j->manager;
        int r;

        r = db_job_delete(m->db, j->id);
        if (r < 0)
                return r;
        /* Nothing may fire on it while it waits to be freed. */
        job_teardown(j);
        j->retry_timer = sd_event_source_disable_unref(j->retry_timer);
        manager_remove_job(m, j);
        return 0;
}

unsigned jobs_count_running(struct manager *m, const char *transport) {
        unsigned n = 0;

        if (!transport)
                return m->jobs_by_state[JOB_RUNNING];
        for (size_t i = 0; i < m->n_jobs; i++) {
                struct job *j = m->jobs[i];
                if (j->state != JOB_RUNNING)
                        continue;
                if (!j->device || !streq(j->device->transport, transport))
                        continue;
                n++;
        }
        return n;
}

/* Keeps at most config.job_keep finished jobs (the oldest go first). */
void jobs_prune(struct manager *m) {
        size_t finished = 0;
        for (size_t i = 0; i < m->n_jobs; i++)
                finished += job_is_finished(m->jobs[i]);
        for (size_t i = 0; i < m->n_jobs && finished > m->config->job_keep;) {
                struct job *j = m->jobs[i];
                if (!job_is_finished(j)) {
                        i++;
                        continue;
                }
                if (job_remove(j) < 0)
                        return;
                finished--;
        }
}
