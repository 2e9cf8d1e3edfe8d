/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A job: one image pushed to one device with the safe update procedure
 * of lib/smp-update.c.  A job is persistent from the moment it is
 * created.  job.c is the object (create, cancel, finish, remove, the
 * states); job-scheduler.c runs jobs (the global and per-transport
 * limits, attempts, retries with backoff, resume after a stop).
 *
 * The job layer is the unit a rollout scheduler drives: it creates jobs
 * with a rollout id and a not-before time, and observes their states.
 */
#pragma once

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "model-index.h"
#include "smpgw/smp-update.h"
#include "smpgwd-limits.h"

/* A board's name as swap times are learned for it: OS info hardware,
 * else the transport (63 bytes). */
#define JOB_BOARD_SIZE 64u

struct manager;
struct device;
struct image;
struct smp_session;
struct smp_request;

enum job_state {
        JOB_QUEUED, /* waiting for a free slot (limits) */
        JOB_RUNNING,
        JOB_RETRY_WAIT, /* failed an attempt; next_attempt_usec says when */
        JOB_SUCCEEDED,  /* outcome updated/up-to-date/testing/uploaded */
        JOB_FAILED,     /* out of attempts, or an outcome that is final */
        JOB_CANCELLED,
        /* Phased jobs (the update in smp_update's phases, slot held only
         * while a phase talks to the device): */
        JOB_STAGED,    /* uploaded; waits for engine_job_activate() or the reboot gate */
        JOB_REBOOTING, /* reset sent; the device swaps and boots; no slot held */
        _JOB_STATE_MAX,
};

struct job {
        struct manager *manager;
        uint64_t id;                  /* database row id, > 0 */
        uint64_t device_id;
        /* Its device: a link the manager keeps from the job's attaching to
         * its removal (a device's jobs go before the device does); NULL
         * only for a job loaded without its device. */
        struct device *device;
        char image_id[IMAGE_ID_LEN + 1];
        uint64_t rollout_id;          /* 0: not part of a rollout */
        enum smp_update_mode mode;
        enum job_state state;
        bool has_step;
        enum smp_update_step step;    /* the update step running or last run */
        bool has_outcome;
        enum smp_update_outcome outcome;
        unsigned attempts, max_attempts;
        uint64_t bytes_sent, bytes_total;  /* upload progress: device-acknowledged offset, file size */
        double rate;                  /* bytes/s of the current or last upload */
        char *error;                  /* the last attempt's error as a sentence, may be NULL */
        uint64_t created_usec, started_usec, finished_usec, next_attempt_usec, updated_usec;
        /* The device's slots as the job found them: read once, before
         * its first attempt, and written at once (job_slots_before).  The
         * outcome is judged against them, so an attempt resumed after a
         * crash that finds the image already running says "updated",
         * not "up-to-date".  n_slots 0: not read yet. */
        struct smp_update_snapshot before;
        bool before_dirty;
        /* The phase to run next (or running), and what the last phase
         * left for it (smp_update_checkpoint): stored, so a kill -9
         * between phases goes on where it was.  reset_usec is the
         * checkpoint's, CLOCK_REALTIME. */
        enum smp_update_phase phase;
        bool has_checkpoint;
        struct smp_update_checkpoint checkpoint;
        bool stage_only;  /* stop in staged until engine_job_activate() */
        int64_t priority; /* slots go to lower values first; FIFO among equals */
        /* Pushed with force (a device of another board than the image
         * declares): a change of the image's boards leaves it queued,
         * before a restart and after it (stored, migration 12). */
        bool forced;
        /* The swap its verify measured (reset → the device answering
         * decided), and the board it is learned for (job-swap.h). */
        char board[JOB_BOARD_SIZE];
        uint64_t swap_usec;

        /* runtime, not stored */
        struct smp_session *session;
        struct smp_request *before_read;  /* reading `before` */
        struct smp_update_phase_run *phase_run;
        bool attempt_open;          /* an attempt is under way (counted); its next phase continues it */
        uint64_t reboot_wait_usec;  /* CLOCK_REALTIME: this attempt's wait for the reboot began */
        uint64_t first_verify_usec; /* the learned wait before the first verify; 0: polled from the reset */
        unsigned verify_misses;     /* verifies that found the device not back, this wait */
        /* Its device (BLE) was seen advertising since its last verify
         * began (job-advert.c): it is back, verify now. */
        bool advertised;
        bool verify_on_advert;       /* the verify under way began at an advertisement */
        uint64_t advert_verify_usec; /* CLOCK_REALTIME: the last such verify began */
        uint64_t advert_seen_usec;   /* CLOCK_REALTIME: the advertisement that began it */
        bool continue_phase;         /* finish_defer: run j->phase on the same session (slot kept) */
        /* The activate's reset is on its way: the radio slot is another
         * job's already (job_holds_slot()); the session stays to hear
         * the answer, which a device that resets may never send. */
        bool slot_given_back;
        /* The image state the phase before read last on the session the
         * next one continues on: activate does not read it again. */
        bool has_session_state;
        struct smp_update_snapshot session_state;
        /* The device's round trip as its last session measured it
         * (smoothed), for the timeout of a verify's poll; 0: unknown. */
        uint64_t link_rtt_usec;
        bool failure_pending;         /* finish_defer: the phase failed; decide how (error set) */
        bool failure_final;           /* that failure is final (the device refused) */
        int link_error;               /* why the session's link closed, 0: it did not */
        char refused_adapter[32];     /* the adapter that had no free link (-EUSERS) */
        struct image *image_mapped;   /* holds a mapping while running */
        sd_event_source *retry_timer;  /* retry-wait, or queued with a future next_attempt */
        sd_event_source *finish_defer; /* tears the session down outside its callbacks */
        uint64_t last_progress_emit_usec;
        uint64_t last_progress_bytes;  /* for stats.bytes_uploaded */
        bool dirty;
        UT_hash_handle hh;             /* the manager's index (model-index.h) */
};

struct job_options {
        enum smp_update_mode mode;     /* default config.job_mode */
        unsigned max_attempts;         /* 0: config.job_attempts */
        uint64_t rollout_id;           /* 0: none */
        uint64_t not_before_usec;      /* 0: now; a scheduler can queue for later */
        bool stage_only;               /* stop in staged */
        int64_t priority;              /* lower first */
        bool force;                    /* job.forced */
};

/* NULL is fine; the job must not be attached any more. */
struct job *job_free(struct job *j);

struct job *manager_find_job(struct manager *m, uint64_t id);
/* Queues a push of img to d.  -EBUSY when d already has an unfinished
 * job (*ret is then that job). */
int job_create(struct manager *m, struct image *img, struct device *d, const struct job_options *opts,
               struct job **ret);
/* -EALREADY when the job is finished already. */
int job_cancel(struct job *j);
/* Whether it has begun: left the queue once, or made an attempt. */
bool job_has_started(const struct job *j);
/* Ends a job that has not started as failed, with this error: it was
 * judged again before its first attempt (its image's boards changed).
 * -EBUSY when it has started. */
int job_fail_unstarted(struct job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Deletes a job (finished, or just created and taken back) from the
 * database and the model; on failure it stays as it is. */
int job_remove(struct job *j);
bool job_is_finished(const struct job *j);
/* Every change of state goes through here: the manager counts jobs by
 * state, and a job that finishes leaves its device's link. */
void job_set_state(struct job *j, enum job_state state);
/* Jobs in state running, of one transport or (NULL) all: REST's health,
 * D-Bus JobsRunning, the scheduler's limits. */
unsigned jobs_count_running(struct manager *m, const char *transport);
const char *job_state_to_string(enum job_state s);
int job_state_from_string(const char *s);
/* Keeps at most config.job_keep finished jobs (the oldest go first). */
void jobs_prune(struct manager *m);

/* The share of the upload the device acknowledged, 0..1, and 1 once the
 * job succeeded (an up-to-date device needs no upload); and the rate,
 * 0 when not known.  As REST, SSE and D-Bus all show them. */
static inline double job_progress(const struct job *j) {
        if (j->state == JOB_SUCCEEDED)
                return 1.0;
        if (j->bytes_total == 0)
                return 0.0;
        return j->bytes_sent >= j->bytes_total ? 1.0 : (double) j->bytes_sent / (double) j->bytes_total;
}
static inline double job_rate(const struct job *j) {
        return isfinite(j->rate) && j->rate > 0 ? j->rate : 0.0;
}

/* ---- job-scheduler.c ---- */

/* Starts queued jobs while the limits allow (the manager calls it once
 * per loop iteration at most, manager_schedule_jobs()). */
void jobs_schedule(struct manager *m);
/* SIGTERM: running jobs go back to queued where they are; the attempt
 * does not count. */
void jobs_stop_all(struct manager *m);
/* ---- between job.c and job-scheduler.c ---- */

/* Stops the attempt in progress without a callback; the caller sets the
 * state. */
void job_teardown(struct job *j);
/* The last attempt's error; NULL fmt clears it. */
void job_set_error(struct job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records a change: dirty, updated_usec, a JOB_STATE event. */
void job_changed(struct job *j);
/* An attempt failed (the error set): retry-wait, or failed when final
 * or out of attempts. */
void job_attempt_failed(struct job *j, bool final);
/* The reboot gate's answer for a rollout's job; true for the others. */
bool job_may_reboot(struct job *j);
/* Ends the job in a final state: counted, logged, recorded, flushed. */
void job_finish(struct job *j, enum job_state state);
/* job-advert.c saw j's device advertise while j waits for its reboot:
 * the scheduler verifies it now. */
void job_device_advertised(struct job *j);
/* The watch for advertisements ended (job-advert.c): j, waiting for
 * one, polls from now on. */
void job_advert_watch_ended(struct job *j);
