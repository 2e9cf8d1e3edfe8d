/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Running jobs: jobs_schedule() grants radio slots to queued jobs while
 * the global, per-transport and per-adapter limits allow (lower priority
 * first, FIFO among equals).  A job runs the update in libsmpgw's phases
 * (doc/update-phases.md) and holds its slot only while a phase talks to
 * the device: stage (read, upload, check) and activate (mark, reset) run
 * back to back on one session; then the job is `rebooting` with no slot
 * for the learned swap time of its board (job-radio.h), and verify
 * attempts each take a slot again until the device answers decided or
 * the reboot timeout passes (a BLE device: at once when it is seen
 * advertising again, job-advert.c).  A stage_only job, or a rollout's job the
 * reboot gate holds, waits `staged` between stage and activate.  Each
 * phase's checkpoint is stored when it ends, so a kill -9 between phases
 * goes on where the job was.  [jobs] hold_slot_during_reboot=true keeps
 * the slot and the session through the reboot (the old way; for
 * comparison).  Also: a failed attempt waits (retry_delay,
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
/* A verify that found the device not back yet tries again after this
 * (a board not measured yet: polled from its reset at this interval). */
#define JOB_VERIFY_POLL_USEC (1000 * 1000ull)
/* The shortest timeout of a verify's state read timed by the link's
 * round trip (job_verify_timeout_usec()). */
#define JOB_VERIFY_TIMEOUT_MIN_USEC (100 * 1000ull)
/* With idle slots, a device that was not back at a learned verify is
 * polled again this soon (a poll takes a slot from nobody then). */
#define JOB_IDLE_VERIFY_POLL_USEC (250 * 1000ull)
/* With idle slots, the first verify of a learned board comes at this
 * share of the estimate (an upper bound of the swap time). */
#define JOB_EARLY_VERIFY_PERCENT 90u
/* A BLE device's advertisements this soon after its reset's answer are
 * from before the reset: the device answers, waits a moment (Zephyr's
 * CONFIG_MCUMGR_GRP_OS_RESET_MS, 250 ms by default) and resets, and once
 * the gateway has let go of the link it may advertise meanwhile.  No
 * device swaps and boots this fast. */
#define JOB_ADVERT_AFTER_RESET_USEC (1000 * 1000ull)
/* An adapter with no free link: the job asks for a slot again after this. */
#define JOB_ADAPTER_FULL_DELAY_USEC (1000 * 1000ull)

void job_teardown(struct job *j) {
        /* job_start() maps the image first, then takes the device. */
        bool started = j->image_mapped;

        if (j->phase_run) {
                smp_update_phase_cancel(j->phase_run);
                j->phase_run = NULL;
        }
        j->session = smp_session_free(j->session);
        j->finish_defer = sd_event_source_disable_unref(j->finish_defer);
        j->continue_phase = false;
        j->slot_given_back = false;
        j->has_session_state = false;
        if (j->image_mapped) {
                image_unmap(j->image_mapped);
                j->image_mapped = NULL;
        }
        if (started && j->device && j->device->job == j)
                j->device->job = NULL;
}

static int job_phase_start(struct job *j);
static int job_arm_timer(struct job *j);

/* Whether j is the one job that polls for its board's first swap time:
 * the oldest of the board's jobs waiting for a device with none learned.
 * The others poll seldom until it has measured one (every poll of a
 * device not back costs a slot its timeout). */
static const struct job *job_board_scout(const struct job *j) {
        struct manager *m = j->manager;
        for (size_t i = 0; i < m->n_jobs; i++) {
                const struct job *o = m->jobs[i];
                if (o == j)
                        return j;
                if (o->phase == SMP_UPDATE_PHASE_VERIFY && o->first_verify_usec == 0 && !job_is_finished(o) &&
                    o->state != JOB_RETRY_WAIT && streq(o->board, j->board))
                        return o;
        }
        return j;
}

static bool job_is_scout(const struct job *j) {
        return job_board_scout(j) == j;
}

/* Whether j's device is verified when it is seen advertising again, and
 * polled only as the fallback (job-advert.c). */
static bool job_awaits_advert(const struct job *j) {
        return job_link_advertises(j) && job_advert_watching(j->manager);
}

/* The fallback polls of a device that is verified when it is seen
 * advertising again: a quarter of its reboot timeout before the timeout,
 * and 1 s before it.  One that is back but never seen (discovery cannot
 * run, its advertisement lacks the SMP service) is verified then, late;
 * one that is not back fails at the timeout as it would have.  More
 * polls would each cost the adapter a connect timeout for devices the
 * watch sees anyway. */
static uint64_t job_advert_fallback_usec(const struct job *j, uint64_t now) {
        struct manager *m = j->manager;
        uint64_t timeout = job_swap_timeout_usec(m, job_swap_estimate_usec(m, j->board, j->bytes_total, NULL));
        uint64_t deadline = (j->reboot_wait_usec ? j->reboot_wait_usec : now) + timeout;
        uint64_t first = deadline - MIN(deadline, MAX(timeout / 4, JOB_VERIFY_POLL_USEC));
        uint64_t last = deadline - MIN(deadline, JOB_VERIFY_POLL_USEC);

        return MAX(now + JOB_VERIFY_POLL_USEC <= first ? first : last, now + JOB_VERIFY_POLL_USEC);
}

/* When the next verify of a device with no learned swap time is due. */
static uint64_t job_unlearned_poll_usec(const struct job *j, uint64_t now) {
        if (job_awaits_advert(j))
                return job_advert_fallback_usec(j, now);
        /* The others try at [jobs] swap_estimate intervals: they learn
         * the scout's measurement as soon as it is made (below). */
        return now + (job_is_scout(j) ? JOB_VERIFY_POLL_USEC
                                      : MAX(j->manager->config->job_swap_estimate_usec, JOB_VERIFY_POLL_USEC));
}

/* A job polling for a board nobody had measured when its device reset:
 * once one is measured, it waits for that instead (each poll of a device
 * not back costs a slot its timeout).  True when it waits on. */
static bool job_reboot_wait_learned(struct job *j) {
        struct manager *m = j->manager;
        uint64_t now = now_realtime_usec(), reset = j->checkpoint.reset_usec;
        bool learned;

        if (j->first_verify_usec > 0 || !reset || !j->board[0])
                return false;
        uint64_t estimate = job_swap_estimate_usec(m, j->board, j->bytes_total, &learned);
        if (!learned)
                return false;
        j->first_verify_usec = estimate;
        j->verify_misses = 0;
        if (reset + estimate <= now)
                return false;
        j->next_attempt_usec = reset + estimate;
        (void) job_arm_timer(j);
        return true;
}
/* A job of a board nobody has measured yet, not its scout, due for a
 * poll: when the scout's device reset first and the scout still polls
 * it, this device is most likely not back either (the same board and
 * image), and the scout's answer will time this job's verify
 * (job_reboot_wait_learned()): a poll now would cost a slot for nothing.
 * It waits another interval, as long as that leaves it a poll before its
 * own reboot timeout: the fallback should the scout's device never come
 * back.  True when it waits on. */
static bool job_waits_for_scout(struct job *j) {
        struct manager *m = j->manager;
        uint64_t now = now_realtime_usec(), reset = j->checkpoint.reset_usec;

        if (j->first_verify_usec > 0 || !reset || !j->board[0])
                return false;
        const struct job *scout = job_board_scout(j);
        if (scout == j || !scout->checkpoint.reset_usec || scout->checkpoint.reset_usec > reset)
                return false;
        uint64_t interval = MAX(m->config->job_swap_estimate_usec, JOB_VERIFY_POLL_USEC);
        uint64_t timeout = job_swap_timeout_usec(m, job_swap_estimate_usec(m, j->board, j->bytes_total, NULL));
        if (now + interval + JOB_VERIFY_POLL_USEC >= MIN(j->reboot_wait_usec, reset) + timeout)
                return false;
        j->next_attempt_usec = now + interval;
        (void) job_arm_timer(j);
        return true;
}

/* Whether the job's link outlives its device's reboot: datagrams (UDP,
 * CoAP).  A BLE or serial verify opens its link first, within its state
 * read's timeout, and a BLE connect to a device not back holds the
 * adapter's one connect in progress, which others queue behind: such
 * polls are neither timed by the round trip nor sent early. */
static bool job_link_outlives_reboot(const struct job *j) {
        const struct device *d = j->device;
        return d && (streq(d->transport, "udp") || streq(d->transport, "coap"));
}

/* Whether a verify's poll would take a slot from nobody: no stage or
 * activate waits for one (the end of a fan-out, a lone push). */
static bool jobs_slots_idle(struct manager *m) {
        for (size_t i = 0; i < m->n_jobs; i++) {
                const struct job *o = m->jobs[i];
                if (o->state == JOB_QUEUED && o->phase != SMP_UPDATE_PHASE_VERIFY)
                        return false;
        }
        return true;
}

/* A job waiting for the learned swap time of its board, woken before it
 * (JOB_EARLY_VERIFY_PERCENT) to poll while slots are idle: when uploads
 * wait, it goes on waiting until the estimate.  True when it waits on. */
static bool job_waits_for_estimate(struct job *j) {
        uint64_t due = j->checkpoint.reset_usec + j->first_verify_usec;

        if (j->first_verify_usec == 0 || j->verify_misses > 0 || !j->checkpoint.reset_usec ||
            now_realtime_usec() >= due || jobs_slots_idle(j->manager))
                return false;
        j->next_attempt_usec = due;
        (void) job_arm_timer(j);
        return true;
}

static void job_adapter_full(struct job *j, const char *adapter);

static int on_retry_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct job *j = userdata;
        j->retry_timer = sd_event_source_disable_unref(j->retry_timer);
        if (j->state == JOB_RETRY_WAIT) {
                job_set_state(j, JOB_QUEUED);
                log_job_state(LOG_INFO, j, "Retry due: queued for attempt %u of %u", j->attempts + 1,
                              j->max_attempts);
                job_changed(j);
        } else if (j->state == JOB_REBOOTING && j->session) {
                /* hold_slot_during_reboot: verify on the slot it kept */
                int r = job_phase_start(j);
                if (r < 0) {
                        j->next_attempt_usec = now_realtime_usec() + SMP_UPDATE_POLL_INTERVAL_DEFAULT_USEC;
                        (void) sd_event_add_time(j->manager->event, &j->retry_timer, CLOCK_REALTIME,
                                                 j->next_attempt_usec, 10 * 1000, on_retry_timer, j);
                } else {
                        job_set_state(j, JOB_RUNNING);
                        job_changed(j);
                }
        } else if (j->state == JOB_REBOOTING) {
                /* Seen advertising: back, whatever the waits say. */
                if (!j->advertised &&
                    (job_reboot_wait_learned(j) || job_waits_for_scout(j) || job_waits_for_estimate(j)))
                        return 0;
                /* The device should be back: verify needs a slot. */
                job_set_state(j, JOB_QUEUED);
                job_changed(j);
        }
        manager_schedule_jobs(j->manager);
        return 0;
}

/* Arms the job's timer for next_attempt_usec (realtime). */
static int job_arm_timer(struct job *j) {
        struct manager *m = j->manager;
        j->retry_timer = sd_event_source_disable_unref(j->retry_timer);
        return sd_event_add_time(m->event, &j->retry_timer, CLOCK_REALTIME, j->next_attempt_usec, 10 * 1000,
                                 on_retry_timer, j);
}

void job_advert_watch_ended(struct job *j) {
        uint64_t soon = now_realtime_usec() + JOB_VERIFY_POLL_USEC;

        if (j->state != JOB_REBOOTING || j->session || j->next_attempt_usec <= soon)
                return;
        j->next_attempt_usec = soon;
        (void) job_arm_timer(j);
}

void job_device_advertised(struct job *j) {
        uint64_t now = now_realtime_usec();

        /* Not the device back: still the old one before its reset. */
        if (j->advertised || (j->checkpoint.reset_usec && now < j->checkpoint.reset_usec + JOB_ADVERT_AFTER_RESET_USEC))
                return;
        j->advertised = true;
        j->advert_seen_usec = now;
        log_job(LOG_DEBUG, j, "Advertising again: verify now");
        if (j->session)
                return; /* a verify is under way: should it miss, the next comes at once */
        /* Should one advertise later before its reset all the same (a
         * slow reset), its verify finds it not back: at most one verify
         * per poll interval is started this way. */
        uint64_t at = j->advert_verify_usec ? MAX(now, j->advert_verify_usec + JOB_VERIFY_POLL_USEC) : now;
        if (j->state == JOB_REBOOTING) {
                j->next_attempt_usec = at;
                (void) job_arm_timer(j);
        } else if (j->next_attempt_usec <= now)
                manager_schedule_jobs(j->manager); /* queued: it goes first now (job_grant_class()) */
}

/* state: the device's image state the refused request followed, or NULL */
static void error_sentence(int error, enum smp_update_step failed_step, const struct smp_status *st,
                           const struct smp_update_snapshot *state, char *buf, size_t size) {
        const char *step = smp_update_step_to_string(failed_step);
        const struct smp_update_slot *testing;
        char status[200];

        if (error == -EREMOTEIO && (testing = smp_update_refused_under_test(state, 0, st))) {
                (void) smp_status_format(st, status, sizeof(status));
                snprintf(buf, size,
                         "%s: the device refused: %s; it runs %s under test, not confirmed, and keeps its "
                         "other slot to go back to: confirm that image or reset the device, then push again",
                         step, status, testing->version[0] ? testing->version : "an image");
        } else if (error == -EREMOTEIO && failed_step == SMP_UPDATE_STEP_RESET) {
                (void) smp_status_format(st, status, sizeof(status));
                snprintf(buf, size,
                         "%s: the device refused: %s; the application declined the reset (busy), and the new "
                         "image is marked and boots at the device's next reset",
                         step, status);
        } else if (error == -EREMOTEIO) {
                (void) smp_status_format(st, status, sizeof(status));
                snprintf(buf, size, "%s: the device refused: %s", step, status);
        } else if (error == -ETIMEDOUT && failed_step == SMP_UPDATE_STEP_WAIT_REBOOT)
                snprintf(buf, size, "%s: the device did not come back with a decision in time", step);
        else if (error == -ETIMEDOUT)
                snprintf(buf, size, "%s: the device does not answer", step);
        else if (error == -EIO && failed_step == SMP_UPDATE_STEP_UPLOAD)
                snprintf(buf, size, "%s: the device's flash does not match the image's SHA-256", step);
        else if (error == -EIO && failed_step == SMP_UPDATE_STEP_CHECK_UPLOAD)
                snprintf(buf, size, "%s: the secondary slot does not hold the image after the upload", step);
        else
                snprintf(buf, size, "%s: %s", step, strerror(-error));
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

/* Runs outside the phase's callbacks: the session can go now (the slot
 * with it), or the next phase starts on it (the slot kept). */
static int on_finish_defer(sd_event_source *s, void *userdata) {
        struct job *j = userdata;

        j->finish_defer = sd_event_source_disable_unref(j->finish_defer);
        if (j->failure_pending) {
                j->failure_pending = false;
                job_teardown(j);
                if (j->link_error == -EUSERS && j->refused_adapter[0])
                        job_adapter_full(j, j->refused_adapter);
                else
                        job_attempt_failed(j, j->failure_final);
                manager_schedule_jobs(j->manager);
                return 0;
        }
        if (j->continue_phase) {
                j->continue_phase = false;
                int r = job_phase_start(j);
                if (r >= 0)
                        return 0;
                job_teardown(j);
                struct smp_status none = {};
                char msg[300];
                error_sentence(r, j->has_step ? j->step : SMP_UPDATE_STEP_READ_STATE, &none, NULL, msg, sizeof(msg));
                job_set_error(j, "cannot start %s: %s", smp_update_phase_to_string(j->phase), msg);
                job_attempt_failed(j, false);
        } else
                job_teardown(j);
        manager_schedule_jobs(j->manager);
        return 0;
}

/* Ends the phase's hold of the session: keep (the next phase runs on
 * it at once) or let it go with the slot. */
static void job_after_phase(struct job *j, bool keep_session) {
        j->continue_phase = keep_session;
        if (sd_event_add_defer(j->manager->event, &j->finish_defer, on_finish_defer, j) < 0) {
                log_job(LOG_WARNING, j, "Out of memory deferring the session teardown");
                j->continue_phase = false;
        }
}

void job_attempt_failed(struct job *j, bool final) {
        struct manager *m = j->manager;

        m->stats.job_attempts_failed++;
        j->attempt_open = false;
        if (final || j->attempts >= j->max_attempts) {
                job_finish(j, JOB_FAILED);
                return;
        }
        uint64_t delay = m->config->job_retry_delay_usec;
        for (unsigned i = 1; i < j->attempts && delay < m->config->job_retry_delay_max_usec; i++)
                delay *= 2;
        delay = MIN(delay, m->config->job_retry_delay_max_usec);
        job_set_state(j, JOB_RETRY_WAIT);
        j->next_attempt_usec = now_realtime_usec() + delay;
        log_job_state(LOG_NOTICE, j, "Attempt %u of %u failed (%s); next in %" PRIu64 " s", j->attempts,
                      j->max_attempts, j->error ?: "?", delay / 1000000u);
        manager_history(m, "job-retry", NULL, NULL, j, "attempt %u failed: %s", j->attempts, j->error ?: "?");
        (void) job_arm_timer(j);
        job_changed(j);
        (void) manager_flush_now(m);
}

/* The image state a phase's last request followed: the one it read last,
 * or the stage's (kept in the checkpoint). */
static const struct smp_update_snapshot *result_state(const struct smp_update_phase_result *r) {
        return r->after.n_slots > 0 ? &r->after : &r->checkpoint.before;
}

/* The device answered with MCUboot's decision, or the phases found
 * nothing to do: the job's outcome. */
static void job_outcome(struct job *j, enum smp_update_outcome outcome, bool rejected, int error,
                        enum smp_update_step failed_step, const struct smp_status *st,
                        const struct smp_update_snapshot *state) {
        char msg[512];

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
        j->phase = SMP_UPDATE_PHASE_DONE;
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
                              rejected ? "MCUboot found the new image invalid and erased it"
                                       : "the device runs the old image again (the new one did not confirm)");
                job_finish(j, JOB_FAILED);
                break;
        case SMP_UPDATE_OUTCOME_STUCK:
                job_set_error(j, "stuck: the device's image state after %s is not what the update expects",
                              smp_update_step_to_string(error < 0 ? failed_step : SMP_UPDATE_STEP_DONE));
                job_finish(j, JOB_FAILED);
                break;
        default:
                error_sentence(error, failed_step, st, state, msg, sizeof(msg));
                job_set_error(j, "%s", msg);
                job_finish(j, JOB_FAILED);
                break;
        }
}

/* Slots held by jobs on one adapter; with links_only, only those whose
 * link is up (not the ones still connecting or failing): what the
 * controller held when it refused. */
static unsigned adapter_jobs(struct manager *m, const char *adapter, const struct job *except, bool links_only) {
        unsigned n = 0;
        for (size_t i = 0; adapter && i < m->n_devices; i++) {
                const struct device *d = m->devices[i];
                struct smp_link_info info;
                if (!d->job || d->job == except || !d->adapter || !streq(d->adapter, adapter))
                        continue;
                if (!links_only && d->job->slot_given_back)
                        continue;
                if (links_only && (d->job->failure_pending || !d->job->session ||
                                   smp_session_get_link_info(d->job->session, &info) < 0))
                        continue;
                n++;
        }
        return n;
}

static unsigned adapter_links_held(struct manager *m, const char *adapter, const struct job *except) {
        return adapter_jobs(m, adapter, except, true);
}

/* The controller had no link for it: not the device's fault, and not
 * an attempt; the adapter's limit is learned lower and the job waits
 * for a slot again. */
static void job_adapter_full(struct job *j, const char *adapter) {
        struct manager *m = j->manager;

        job_adapter_refused(m, adapter, adapter_links_held(m, adapter, j));
        if (j->attempts > 0 && j->phase == SMP_UPDATE_PHASE_STAGE && j->attempt_open) {
                j->attempts--;
                j->attempt_open = false;
        }
        job_set_state(j, JOB_QUEUED);
        j->next_attempt_usec = now_realtime_usec() + JOB_ADAPTER_FULL_DELAY_USEC;
        (void) job_arm_timer(j);
        job_changed(j);
        if (j->session)
                job_after_phase(j, false);
}

/* The device resets now (or ran the image already): wait with no slot. */
static void job_reboot_wait(struct job *j) {
        struct manager *m = j->manager;
        struct device *d = j->device;
        uint64_t now = now_realtime_usec();
        uint64_t reset = j->checkpoint.reset_usec ? j->checkpoint.reset_usec : now;
        uint64_t size = j->image_mapped ? j->image_mapped->file_size : j->bytes_total;
        bool hold = m->config->job_hold_slot_during_reboot;

        if (d)
                job_device_board(d, j->board, sizeof(j->board));
        j->reboot_wait_usec = reset;
        /* Learned: the first verify at the estimate (each verify of a
         * device not back costs a slot for its timeout).  Not learned
         * yet: poll from the start, which measures it finely. */
        bool learned;
        uint64_t estimate = job_swap_estimate_usec(m, j->board, size, &learned);
        j->first_verify_usec = learned ? estimate : 0;
        j->verify_misses = 0;
        /* With idle slots (job_waits_for_estimate()), polls start a
         * little before the estimate: they cost nothing then, and the
         * estimate is an upper bound. */
        j->next_attempt_usec = !learned ? job_unlearned_poll_usec(j, MAX(reset, now))
                               : hold || !job_link_outlives_reboot(j)
                                       ? reset + estimate
                                       : reset + estimate / 100 * JOB_EARLY_VERIFY_PERCENT;
        if (j->next_attempt_usec < now)
                j->next_attempt_usec = now;
        job_set_state(j, JOB_REBOOTING);
        j->has_step = true;
        j->step = SMP_UPDATE_STEP_WAIT_REBOOT;
        (void) job_arm_timer(j);
        job_changed(j);
        (void) manager_flush_now(m);
        if (!hold)
                job_after_phase(j, false);
}

static void on_phase_done(struct smp_update_phase_run *run, const struct smp_update_phase_result *r, void *userdata) {
        struct job *j = userdata;
        struct manager *m = j->manager;
        struct device *d = j->device;
        const char *adapter = j->session ? smp_session_get_adapter(j->session) : NULL;
        char adapter_name[JOB_ADAPTER_NAME_SIZE] = "";
        char msg[512];

        j->phase_run = NULL; /* frees itself after this call */
        j->has_session_state = false;
        if (j->session) {
                struct smp_session_stats st;
                smp_session_get_stats(j->session, &st);
                if (st.srtt_usec > 0)
                        j->link_rtt_usec = st.srtt_usec;
        }
        if (adapter)
                snprintf(adapter_name, sizeof(adapter_name), "%s", adapter);
        if (r->error == -EUSERS && adapter_name[0]) {
                job_adapter_full(j, adapter_name);
                return;
        }
        if (adapter_name[0] && r->error != -EAGAIN)
                job_adapter_connected(m, adapter_name);

        j->checkpoint = r->checkpoint;
        j->has_checkpoint = true;
        if (j->before.n_slots == 0 && r->checkpoint.has_before) {
                j->before = r->checkpoint.before;
                j->before_dirty = true;
        }
        if (r->phase == SMP_UPDATE_PHASE_STAGE && r->upload.rate > 0)
                j->rate = r->upload.rate;
        if (r->phase == SMP_UPDATE_PHASE_STAGE && r->error == 0)
                j->bytes_sent = j->bytes_total;
        if (d) {
                if (r->upload.path_mtu)
                        d->path_mtu = r->upload.path_mtu;
                /* Out of memory keeps the old list: the next probe reads it again. */
                if (r->after.n_slots > 0 && device_set_slots(d, &r->after) >= 0)
                        d->slots_dirty = true;
                if (r->error == 0 || r->outcome != SMP_UPDATE_OUTCOME_NONE) {
                        device_mark_seen(d);
                        d->last_probe_usec = d->last_seen_usec;
                        device_set_state(d, DEVICE_ONLINE);
                }
                d->dirty = true;
                manager_emit(m, MANAGER_EVENT_DEVICE_CHANGED, d, NULL, NULL);
        }
        if (r->phase == SMP_UPDATE_PHASE_VERIFY && r->error != -EAGAIN && r->swap_usec > 0) {
                uint64_t sample = r->swap_usec;
                if (j->verify_misses == 0 && j->first_verify_usec > 0 && !j->verify_on_advert)
                        /* Back at the first verify, timed by the estimate:
                         * that says only "no longer than the wait".  1 %
                         * less is kept, so the estimate follows a device
                         * that got faster, slowly (a first verify that
                         * misses costs a slot its timeout; one that waited
                         * too long costs nothing but that device's time).
                         * Back at an early one: when it answered. */
                        sample = MIN(j->first_verify_usec / 100 * 99, r->swap_usec);
                else if (j->verify_on_advert && j->advert_seen_usec > j->checkpoint.reset_usec)
                        /* Back when it was seen advertising: the answer
                         * came later by the wait for a slot and the
                         * link's opening, which are not the device's. */
                        sample = MIN(j->advert_seen_usec - j->checkpoint.reset_usec, r->swap_usec);
                /* Polled: the device came back between the last miss and
                 * this answer; the answer's time is kept.  Every other
                 * device of the board takes it as its first verify's
                 * wait: one too short costs each of them a poll that
                 * misses (a slot, and a poll interval for the device),
                 * one too long only their own wait, no slot. */
                j->swap_usec = sample;
                job_swap_record(m, j->board, j->bytes_total, sample);
                /* The others of the board wait for it now instead of polling. */
                for (size_t i = 0; i < m->n_jobs; i++) {
                        struct job *o = m->jobs[i];
                        if (o == j || o->session || o->first_verify_usec != 0 || o->phase != SMP_UPDATE_PHASE_VERIFY ||
                            !streq(o->board, j->board) || (o->state != JOB_REBOOTING && o->state != JOB_QUEUED))
                                continue;
                        if (job_reboot_wait_learned(o)) {
                                if (o->state == JOB_QUEUED) {
                                        job_set_state(o, JOB_REBOOTING);
                                        job_changed(o);
                                }
                        } else if (o->first_verify_usec > 0 && o->state == JOB_REBOOTING) {
                                /* Its learned wait is over already: verify
                                 * now, not at the unlearned poll (up to
                                 * [jobs] swap_estimate away). */
                                o->next_attempt_usec = now_realtime_usec();
                                (void) job_arm_timer(o);
                        }
                }
        }
        if (r->phase == SMP_UPDATE_PHASE_VERIFY && r->error == -EAGAIN)
                j->verify_misses++;

        if (r->error == -EAGAIN) {
                /* Not back yet. */
                uint64_t now = now_realtime_usec();
                uint64_t size = j->bytes_total;
                uint64_t timeout = job_swap_timeout_usec(m, job_swap_estimate_usec(m, j->board, size, NULL));
                if (now - MIN(now, j->reboot_wait_usec) > timeout) {
                        struct smp_status none = {};
                        error_sentence(-ETIMEDOUT, SMP_UPDATE_STEP_WAIT_REBOOT, &none, NULL, msg, sizeof(msg));
                        job_set_error(j, "%s", msg);
                        j->phase = SMP_UPDATE_PHASE_VERIFY;
                        job_after_phase(j, false);
                        job_attempt_failed(j, false);
                        return;
                }
                job_set_state(j, JOB_REBOOTING);
                /* Seen advertising while this verify ran: again now (at
                 * most once a poll interval).  A BLE device past its
                 * learned time: its advertisement says when it is back
                 * (job-advert.c); polls are the fallback. */
                j->next_attempt_usec =
                        j->advertised               ? MAX(now, j->advert_verify_usec + JOB_VERIFY_POLL_USEC)
                        : j->first_verify_usec == 0 ? job_unlearned_poll_usec(j, now)
                        : jobs_slots_idle(m) && !m->config->job_hold_slot_during_reboot && job_link_outlives_reboot(j)
                                ? now + JOB_IDLE_VERIFY_POLL_USEC
                        : job_awaits_advert(j) ? job_advert_fallback_usec(j, now)
                                               : now + JOB_VERIFY_POLL_USEC;
                if (j->advertised || !job_reboot_wait_learned(j))
                        (void) job_arm_timer(j);
                job_changed(j);
                if (!m->config->job_hold_slot_during_reboot)
                        job_after_phase(j, false);
                return;
        }
        if (r->next == SMP_UPDATE_PHASE_DONE) {
                job_after_phase(j, false);
                job_outcome(j, r->outcome, r->rejected, r->error, r->failed_step, &r->status, result_state(r));
                return;
        }
        if (r->error < 0) {
                error_sentence(r->error, r->failed_step, &r->status, result_state(r), msg, sizeof(msg));
                job_set_error(j, "%s", msg);
                j->phase = r->next;
                /* A device refusing the image (bad image, no room) will
                 * refuse it again; transport trouble may pass, and so
                 * does an application that declines a reset while it is
                 * busy (Zephyr's reset hook).  Decided outside this
                 * callback: a link that failed reports why (an adapter
                 * with no free link) only after its requests failed. */
                j->failure_pending = true;
                j->failure_final = r->error == -EREMOTEIO && r->failed_step != SMP_UPDATE_STEP_WAIT_REBOOT &&
                                   r->failed_step != SMP_UPDATE_STEP_RESET;
                job_after_phase(j, false);
                return;
        }

        j->phase = r->next;
        if (r->phase == SMP_UPDATE_PHASE_ACTIVATE && r->next == SMP_UPDATE_PHASE_VERIFY &&
            r->checkpoint.reset_tries > 0) {
                job_reboot_wait(j);
                return;
        }
        if (j->phase == SMP_UPDATE_PHASE_ACTIVATE && (j->stage_only || !job_may_reboot(j))) {
                /* Uploaded: it waits for engine_job_activate() or the gate. */
                job_set_state(j, JOB_STAGED);
                log_job_state(LOG_INFO, j, "Staged: %s",
                              j->stage_only ? "waits to be activated" : "waits for its rollout to allow the reboot");
                job_changed(j);
                (void) manager_flush_now(m);
                job_after_phase(j, false);
                return;
        }
        /* On at once on the same session and slot: activate after stage,
         * verify after an activate that found the image running.  What
         * the phase read last is still true: the next does not read it
         * again (a round trip less on the slot). */
        if (r->after.n_slots > 0) {
                j->session_state = r->after;
                j->has_session_state = true;
        }
        job_changed(j);
        (void) manager_flush_now(m);
        job_after_phase(j, true);
}

static void on_phase_step(struct smp_update_phase_run *run, enum smp_update_step step, void *userdata) {
        struct job *j = userdata;
        if (step == SMP_UPDATE_STEP_RESET && j->phase == SMP_UPDATE_PHASE_ACTIVATE &&
            !j->manager->config->job_hold_slot_during_reboot && !j->slot_given_back) {
                /* The reset goes out now, and the device has nothing more
                 * to say to this phase but its answer, which it may not
                 * send before it resets: another job may have the slot
                 * meanwhile (a round trip of slot time per device).  The
                 * answer is still heard, and an SMP error in it still
                 * fails the job.  A link that holds a radio resource of
                 * its own (a BLE connection) keeps it until the session
                 * goes; the transport queues the next one behind it. */
                j->slot_given_back = true;
                manager_schedule_jobs(j->manager);
        }
        if (j->has_step && j->step == step)
                return;
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

bool job_may_reboot(struct job *j) {
        struct manager *m = j->manager;
        if (j->rollout_id == 0 || !m->reboot_gate)
                return true;
        return m->reboot_gate(m, j, m->reboot_gate_userdata);
}

static int hex_nibble(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* An image id (64 hex digits) as its 32 bytes. */
static bool image_id_to_hash(const char *id, uint8_t hash[static 32]) {
        for (size_t i = 0; i < 32; i++) {
                int hi = hex_nibble(id[2 * i]), lo = hi < 0 ? -1 : hex_nibble(id[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return false;
                hash[i] = (uint8_t) (hi << 4 | lo);
        }
        return true;
}

/* A verify's state read: a device that is back answers within a round
 * trip, and every poll of one that is not back holds a slot this long.
 * Twice the smoothed round trip its last session measured (an upload's
 * queue stretches it: room enough for a lone request), within bounds. */
static uint64_t job_verify_timeout_usec(const struct job *j) {
        /* hold_slot_during_reboot: the slot is held anyway; the old way */
        if (!j->link_rtt_usec || j->manager->config->job_hold_slot_during_reboot || !job_link_outlives_reboot(j))
                return 0; /* libsmpgw's SMP_UPDATE_VERIFY_TIMEOUT_USEC */
        return MIN(MAX(2 * j->link_rtt_usec, JOB_VERIFY_TIMEOUT_MIN_USEC), (uint64_t) SMP_UPDATE_VERIFY_TIMEOUT_USEC);
}

/* Runs j->phase on the job's session. */
static int job_phase_start(struct job *j) {
        const struct image *img = j->image_mapped;
        const struct device *d = j->device;
        struct smp_update_checkpoint from_before;
        const struct smp_update_checkpoint *cp = NULL;

        if (j->has_checkpoint)
                cp = &j->checkpoint;
        else if (j->before.n_slots > 0) {
                /* A job of an older smpgwd: the slots it found, kept. */
                from_before =
                        (struct smp_update_checkpoint) { .mode = j->mode, .has_before = true, .before = j->before };
                if (image_id_to_hash(j->image_id, from_before.new_hash))
                        cp = &from_before;
        }
        if (j->phase != SMP_UPDATE_PHASE_STAGE && !cp)
                j->phase = SMP_UPDATE_PHASE_STAGE;
        if (cp && j->phase == SMP_UPDATE_PHASE_STAGE) {
                /* the mode may have been changed since */
                j->checkpoint = *cp;
                j->checkpoint.mode = j->mode;
                j->has_checkpoint = true;
                cp = &j->checkpoint;
        }
        const struct smp_update_phase_params params = {
                .phase = j->phase,
                .data = img->map,
                .len = img->map_len,
                .checkpoint = cp,
                .mode = j->mode,
                /* the path limit the device's last upload found, checked again */
                .path_mtu = d ? d->path_mtu : 0,
                .erase_timeout_usec = j->manager->config->job_erase_timeout_usec,
                .upload_progress = on_upload_progress,
                .step = on_phase_step,
                .done = on_phase_done,
                .userdata = j,
                .state = j->has_session_state && j->phase != SMP_UPDATE_PHASE_STAGE ? &j->session_state : NULL,
                .verify_timeout_usec = job_verify_timeout_usec(j),
        };
        /* A verify of a device still rebooting is answered by nobody:
         * one transmission, not the session's retries, each costing the
         * slot a timeout; the next verify is the retry. */
        smp_session_set_retries(j->session, j->phase == SMP_UPDATE_PHASE_VERIFY ? 0 : SMP_SESSION_RETRIES_DEFAULT);
        if (j->phase == SMP_UPDATE_PHASE_VERIFY) {
                j->verify_on_advert = j->advertised;
                if (j->advertised)
                        j->advert_verify_usec = now_realtime_usec();
                j->advertised = false;
        }
        j->has_session_state = false; /* copied, or read again next time */
        return smp_update_phase_start(j->session, &params, &j->phase_run);
}

/* The link went down: why (the bluez plugin says -EUSERS for "the
 * adapter has no free link"), and through which adapter. */
static void on_session_closed(struct smp_session *session, int error, void *userdata) {
        struct job *j = userdata;
        const char *adapter = smp_session_get_adapter(session);

        j->link_error = error;
        snprintf(j->refused_adapter, sizeof(j->refused_adapter), "%s", error == -EUSERS && adapter ? adapter : "");
}

static int job_start(struct job *j, struct device *d) {
        struct manager *m = j->manager;
        struct image *img = manager_find_image(m, j->image_id);
        const uint8_t *data;
        size_t len;
        bool new_attempt = !j->attempt_open;
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
        if (new_attempt) {
                j->attempts++;
                j->attempt_open = true;
                if (j->phase == SMP_UPDATE_PHASE_VERIFY)
                        j->reboot_wait_usec = now_realtime_usec();
        } else if (j->phase == SMP_UPDATE_PHASE_VERIFY && !j->reboot_wait_usec)
                /* resumed after a restart: from the reset it recorded */
                j->reboot_wait_usec = j->checkpoint.reset_usec ?: now_realtime_usec();
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
        j->link_error = 0;
        j->refused_adapter[0] = '\0';
        smp_session_set_closed_handler(j->session, on_session_closed, j);
        r = job_phase_start(j);
        if (r < 0)
                goto fail;
        if (new_attempt) {
                log_job_state(LOG_INFO, j, "Attempt %u of %u: pushing %s (%s, %zu bytes) to %s", j->attempts,
                              j->max_attempts, img->version, j->image_id, len, d->conn);
                manager_history(m, "job-started", d, NULL, j, "attempt %u of %u", j->attempts, j->max_attempts);
        } else
                log_job_state(LOG_INFO, j, "Phase %s of attempt %u", smp_update_phase_to_string(j->phase), j->attempts);
        job_changed(j);
        return 0;

fail:
        if (r == -EUSERS && d->adapter) {
                job_teardown(j);
                job_adapter_refused(m, d->adapter, adapter_links_held(m, d->adapter, j));
                job_set_state(j, JOB_QUEUED);
                j->next_attempt_usec = now_realtime_usec() + JOB_ADAPTER_FULL_DELAY_USEC;
                (void) job_arm_timer(j);
                job_changed(j);
                return r;
        }
        job_teardown(j);
        job_set_error(j, "cannot start: %s", strerror(-r));
        j->attempt_open = false;
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

/* The grant class of a ready job: a verify expected back (the first
 * after the learned wait, or of a device seen advertising again: one
 * short request that ends a job), then
 * stages and activates, then verifies polling a device that was not
 * back yet (each may cost a slot its timeout for nothing). */
static int job_grant_class(const struct job *j) {
        if (j->phase != SMP_UPDATE_PHASE_VERIFY)
                return 1;
        if (j->advertised)
                return 0; /* seen back */
        return j->verify_misses == 0 && j->first_verify_usec > 0 ? 0 : 2;
}

/* Slots go to lower priority values first; among equals by grant class,
 * then in the order the jobs were created. */
static int job_grant_order(const void *a, const void *b) {
        const struct job *x = *(const struct job *const *) a, *y = *(const struct job *const *) b;
        int cx = job_grant_class(x), cy = job_grant_class(y);

        if (x->priority != y->priority)
                return x->priority < y->priority ? -1 : 1;
        if (cx != cy)
                return cx < cy ? -1 : 1;
        return x->id < y->id ? -1 : x->id > y->id;
}

void jobs_schedule(struct manager *m) {
        uint64_t now = now_realtime_usec();
        struct transport_count counts[TRANSPORTS_MAX];
        size_t n_counts = 0, n_ready = 0;
        unsigned running = 0;
        _cleanup_free_ struct job **ready = NULL;

        /* d->job is set from job_start() until the attempt's session is
         * torn down, so it counts every job holding a slot. */
        for (size_t i = 0; i < m->n_devices; i++) {
                struct device *d = m->devices[i];
                unsigned *c;
                if (!d->job || d->job->slot_given_back)
                        continue;
                running++;
                c = transport_running(counts, &n_counts, d->transport);
                if (c)
                        (*c)++;
        }

        job_advert_update(m);
        if (m->stopping)
                return;
        if (m->jobs_by_state[JOB_QUEUED] == 0 && m->jobs_by_state[JOB_RETRY_WAIT] == 0 &&
            m->jobs_by_state[JOB_REBOOTING] == 0)
                return;
        ready = malloc(MAX(m->n_jobs, (size_t) 1) * sizeof(*ready));
        if (!ready)
                return;
        for (size_t i = 0; i < m->n_jobs; i++) {
                struct job *j = m->jobs[i];
                if ((j->state == JOB_RETRY_WAIT || (j->state == JOB_REBOOTING && !j->session)) && !j->retry_timer)
                        (void) job_arm_timer(j);   /* loaded from the database */
                if (j->state != JOB_QUEUED)
                        continue;
                if (j->next_attempt_usec > now) {
                        if (!j->retry_timer)
                                (void) job_arm_timer(j);
                        continue;
                }
                ready[n_ready++] = j;
        }
        qsort(ready, n_ready, sizeof(*ready), job_grant_order);
        /* Polls go last, but one of them at a time goes first: it finds
         * the swap time of a board nobody has measured yet while the
         * others upload. */
        bool polling = false;
        for (size_t i = 0; i < m->n_devices && !polling; i++) {
                const struct job *held = m->devices[i]->job;
                polling = held && held->state == JOB_RUNNING && job_grant_class(held) == 2;
        }
        for (size_t i = 0; !polling && i < n_ready; i++)
                if (job_grant_class(ready[i]) == 2) {
                        struct job *scout = ready[i];
                        memmove(ready + 1, ready, i * sizeof(*ready));
                        ready[0] = scout;
                        polling = true;
                }

        for (size_t i = 0; i < n_ready && running < m->config->jobs_max_running; i++) {
                struct job *j = ready[i];
                if (j->state != JOB_QUEUED)
                        continue;
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
                if (d->adapter && adapter_jobs(m, d->adapter, NULL, false) >= job_adapter_limit(m, d->adapter))
                        continue;
                if (j->phase == SMP_UPDATE_PHASE_ACTIVATE && !job_may_reboot(j)) {
                        /* Its rollout's reboot budget is spent: it asks
                         * again at engine_reboot_gate_changed(). */
                        job_set_state(j, JOB_STAGED);
                        job_changed(j);
                        continue;
                }
                if (job_start(j, d) >= 0) {
                        running++;
                        if (in_transport)
                                (*in_transport)++;
                }
        }
}

void jobs_stop_all(struct manager *m) {
        job_advert_stop(m);
        for (size_t i = 0; i < m->n_jobs; i++) {
                struct job *j = m->jobs[i];
                j->retry_timer = sd_event_source_disable_unref(j->retry_timer);
                if (j->state == JOB_REBOOTING) {
                        /* hold_slot_during_reboot: the session goes; the
                         * next start waits from the stored reset time. */
                        job_teardown(j);
                        continue;
                }
                if (j->state != JOB_RUNNING)
                        continue;
                /* Interrupted by us, not failed: the attempt does not
                 * count (past its stage it goes on), and the next start
                 * resumes it. */
                job_teardown(j);
                if (j->attempts > 0 && j->phase == SMP_UPDATE_PHASE_STAGE) {
                        j->attempts--;
                        j->attempt_open = false;
                }
                job_set_state(j, JOB_QUEUED);
                j->dirty = true;
                log_job_state(LOG_INFO, j, "Stopped at %" PRIu64 " of %" PRIu64 " bytes; resumes at the next start",
                              j->bytes_sent, j->bytes_total);
                manager_history(m, "job-interrupted", NULL, NULL, j, "daemon stopping at %" PRIu64 " bytes",
                                j->bytes_sent);
        }
}
