/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The rollout executor: drives every rollout's members through jobs
 * (doc/rollouts.md).  It decides with rollout-policy.h and
 * rollout-window.h, and learns what jobs do only from the manager's
 * events (it adds no hook to the job layer).
 *
 * One step per rollout, run from a deferred source whenever something
 * may have changed (a job event, a device event, a control, a timer):
 * start a scheduled rollout; abort one past its deadline; run a soak
 * and its check; judge the current wave (threshold, reverts); go to the
 * next wave; start members' jobs while the reboot budget and the
 * windows allow.  Each rollout has one CLOCK_BOOTTIME timer armed for
 * the next thing due, so a soak or a backoff is not shortened by a
 * wall-clock jump; start_at, deadline and windows are wall-clock times
 * and are re-read from CLOCK_REALTIME at each step.
 *
 * A member's attempt is one job (max_attempts 1, rollout_id set, its
 * priority from its wave and order); a failure the policy retries puts
 * the member back to pending with a backoff.  Jobs upload as the job
 * layer's radio slots allow; before a job sends its reset the job layer
 * asks the reboot gate (rollout_reboot_gate()), which says yes only when
 * the member's wave has started, a window is open (or `activate` was
 * given) and a reboot token is free (max_rebooting, max_rebooting_relay).
 * A yes takes the token (the member is `activating`); it is given back
 * when the member's job ends.  A job told no waits `staged`, holding no
 * slot, and asks again when the gate's inputs change
 * (engine_reboot_gate_changed()).  With `staging`, every member's job is
 * created at the start, so later waves upload while earlier ones reboot.
 *
 * Mesh targets (devices of transport "mesh") get no job: they are only
 * reachable through their Distributor.  The due mesh members of one wave
 * behind one Distributor become one distribution (distribution.h), which
 * uploads once and re-drives its failed targets itself, up to the
 * rollout's attempts and deadline.  It applies at once when the wave has
 * started and a window is open (or `activate` was given); else it is
 * verify-only and the executor applies it when that becomes true.  Its
 * targets' outcomes come back through the manager's distribution events;
 * each member keeps its distribution's id (stored), so a restart follows
 * it.  Pause, resume and cancel of the rollout suspend, resume and
 * cancel its distributions.  A distribution applies every target of it
 * at once, so the reboot budgets bound it whole: it takes at most
 * max_rebooting members, of which at most max_rebooting_relay relays
 * (the others wait for the Distributor's next distribution).  It is
 * started to apply at once only when that many reboot tokens are free
 * at its start, else verify-only and told to apply once they are; its
 * applying members hold tokens, so the direct members' jobs wait for
 * them as for each other.  (Tokens a direct job takes while an
 * apply-at-once distribution still transfers are not taken back: the
 * overlap is bounded by one distribution.)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "conf.h"
#include "db.h"
#include "distribution.h"
#include "engine-rollout.h"
#include "engine.h"
#include "log.h"
#include "manager.h"
#include "rollout-executor.h"
#include "rollout-prune.h"
#include "rollout.h"
#include "smpgw/mesh-dfu.h"
#include "util.h"

/* The soak check's probes must have answered by then. */
#define SOAK_PROBE_TIMEOUT_USEC (30ull * 1000000ull)
/* A member whose device is busy with a job of someone else looks again. */
#define BUSY_RECHECK_USEC (2ull * 1000000ull)
#define PROGRESS_INTERVAL_USEC 1000000ull
/* How often a running rollout's ETA is re-planned. */
#define ETA_INTERVAL_USEC (5ull * 1000000ull)

struct rollout_executor {
        struct manager *manager;
        struct rollout **rollouts; /* oldest first */
        size_t n_rollouts;
        sd_event_source *step_defer;
        /* What the reboot gate's answers depend on, summed over the
         * rollouts at the last engine_reboot_gate_changed(): asking the
         * held jobs again only when it changed keeps their staged/queued
         * events from kicking steps forever. */
        uint64_t gate_signature;
        bool stopped;
        bool prune_wanted; /* a rollout finished (or smpgwd started): rollouts_prune() */
};

static uint64_t now_boottime_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_BOOTTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static double unit_random(void) {
        uint32_t v = 0;
        if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t) sizeof(v))
                v = (uint32_t) now_boottime_usec();
        return (double) v / 4294967296.0;
}

struct rollout *const *rollout_executor_list(struct rollout_executor *x, size_t *ret_n) {
        *ret_n = x ? x->n_rollouts : 0;
        return x ? x->rollouts : NULL;
}

struct rollout *rollout_executor_find(struct rollout_executor *x, uint64_t id) {
        for (size_t i = 0; x && i < x->n_rollouts; i++)
                if (x->rollouts[i]->id == id)
                        return x->rollouts[i];
        return NULL;
}

void rollout_executor_kick(struct rollout_executor *x) {
        if (x && x->step_defer && !x->stopped)
                (void) sd_event_source_set_enabled(x->step_defer, SD_EVENT_ONESHOT);
}

/* Mesh members (below): their distributions follow the rollout's controls. */
enum distributions_control { DISTRIBUTIONS_SUSPEND, DISTRIBUTIONS_RESUME, DISTRIBUTIONS_CANCEL };
static void control_distributions(struct rollout *r, enum distributions_control c);
static void on_distribution_event(struct rollout_executor *x, const struct manager_event *ev);

/* ---- states ---- */

static void set_text(char **field, const char *text) {
        free(*field);
        *field = text ? strdup(text) : NULL;
}

static void set_state(struct rollout *r, enum rollout_state state, const char *why) {
        struct manager *m = r->manager;

        if (r->state == state)
                return;
        r->state = state;
        if (state == ROLLOUT_RUNNING && !r->started_usec)
                r->started_usec = now_realtime_usec();
        if (rollout_is_finished(r)) {
                r->finished_usec = now_realtime_usec();
                if (m->rollouts)
                        m->rollouts->prune_wanted = true;
        }
        rollout_changed(r);
        log_info("Rollout %" PRIu64 ": %s%s%s", r->id, rollout_state_to_string(state), why ? ": " : "", why ?: "");
        manager_history(m, "rollout-state", NULL, r->image_id, NULL, "rollout %" PRIu64 " %s%s%s", r->id,
                        rollout_state_to_string(state), why ? ": " : "", why ?: "");
        manager_emit_rollout(m, MANAGER_EVENT_ROLLOUT_STATE, r, 0);
}

static void member_set(struct rollout *r, struct rollout_member *mem, enum rollout_member_state state,
                       const char *reason) {
        char old_reason[ROLLOUT_REASON_SIZE];

        memcpy(old_reason, mem->reason, sizeof(old_reason));
        snprintf(mem->reason, sizeof(mem->reason), "%s", reason ?: "");
        if (mem->state == state && streq(old_reason, mem->reason))
                return;
        mem->state = state;
        rollout_member_changed(r, mem);
        if (state == ROLLOUT_MEMBER_SUCCEEDED || state == ROLLOUT_MEMBER_FAILED || state == ROLLOUT_MEMBER_SKIPPED ||
            state == ROLLOUT_MEMBER_CANCELLED || state == ROLLOUT_MEMBER_STAGING) {
                struct device *d = manager_find_device(r->manager, mem->device_id);
                manager_history(r->manager, "rollout-member", d, r->image_id, NULL,
                                "rollout %" PRIu64 " wave %" PRIu32 ": %s%s%s", r->id, mem->wave,
                                rollout_member_state_to_string(state), mem->reason[0] ? " " : "", mem->reason);
        }
}

static bool member_active(const struct rollout_member *mem) {
        switch (mem->state) {
        case ROLLOUT_MEMBER_STAGING:
        case ROLLOUT_MEMBER_STAGED:
        case ROLLOUT_MEMBER_ACTIVATING:
        case ROLLOUT_MEMBER_REBOOTING:
        case ROLLOUT_MEMBER_VERIFYING:
                return true;
        default:
                return false;
        }
}

/* A member holding a reboot token: told it may reset, until its job ends. */
static bool member_holds_token(const struct rollout_member *mem) {
        return mem->state == ROLLOUT_MEMBER_ACTIVATING || mem->state == ROLLOUT_MEMBER_REBOOTING ||
               mem->state == ROLLOUT_MEMBER_VERIFYING;
}

static void count_tokens(const struct rollout *r, struct rollout_reboots *ret) {
        *ret = (struct rollout_reboots) {};
        for (size_t i = 0; i < r->n_members; i++)
                if (member_holds_token(&r->members[i])) {
                        ret->rebooting++;
                        if (r->members[i].relay)
                                ret->rebooting_relay++;
                }
}

static bool member_finished(const struct rollout_member *mem) {
        return mem->state == ROLLOUT_MEMBER_SUCCEEDED || mem->state == ROLLOUT_MEMBER_FAILED ||
               mem->state == ROLLOUT_MEMBER_CANCELLED || mem->state == ROLLOUT_MEMBER_SOAKING;
}

/* ---- following jobs ---- */

/* The member's state as its unfinished job tells it; the member's own
 * state where the job does not say (a job queued again between phases). */
static enum rollout_member_state state_of_job(const struct rollout_member *mem, const struct job *j) {
        if (j->state == JOB_STAGED)
                return member_holds_token(mem) ? mem->state : ROLLOUT_MEMBER_STAGED;
        if (j->state == JOB_REBOOTING)
                return ROLLOUT_MEMBER_REBOOTING;
        switch (j->phase) {
        case SMP_UPDATE_PHASE_STAGE:
                return ROLLOUT_MEMBER_STAGING;
        case SMP_UPDATE_PHASE_ACTIVATE:
                /* Running the activate phase: the gate said yes. */
                return j->state == JOB_RUNNING ? ROLLOUT_MEMBER_ACTIVATING : mem->state;
        case SMP_UPDATE_PHASE_VERIFY:
                return ROLLOUT_MEMBER_VERIFYING;
        default:
                return mem->state;
        }
}

/* Whether a job is past the point where stopping it is safe: it told the
 * device to test (or confirm) the new image, so it must be followed
 * through verify. */
static bool job_past_safe_point(const struct job *j) {
        return j->phase == SMP_UPDATE_PHASE_VERIFY || j->state == JOB_REBOOTING ||
               (j->has_step && j->step >= SMP_UPDATE_STEP_MARK && j->state != JOB_STAGED);
}

static bool outcome_is_success(const struct rollout *r, const struct job *j) {
        if (!j->has_outcome)
                return true;
        switch (j->outcome) {
        case SMP_UPDATE_OUTCOME_UPDATED:
        case SMP_UPDATE_OUTCOME_UP_TO_DATE:
        case SMP_UPDATE_OUTCOME_UPLOADED:
                return true;
        case SMP_UPDATE_OUTCOME_TESTING:
                return r->mode == SMP_UPDATE_TEST_ONLY || r->mode == SMP_UPDATE_TEST_AND_CONFIRM;
        default:
                return false;
        }
}

static const char *failure_reason(struct manager *m, const struct job *j) {
        const struct device *d = manager_find_device(m, j->device_id);

        if (j->has_outcome && j->outcome == SMP_UPDATE_OUTCOME_REVERTED)
                return "reverted";
        if (j->has_outcome && j->outcome == SMP_UPDATE_OUTCOME_STUCK)
                return "stuck";
        if (j->error && strstr(j->error, "rc="))
                return "refused";
        if (!d || d->state == DEVICE_ABSENT || d->state == DEVICE_UNREACHABLE)
                return "unreachable";
        if (j->error && (strstr(j->error, "refused") || strstr(j->error, "rejected")))
                return "refused";
        return "unreachable";
}

/* A member's job finished (or was found finished at load). */
static void member_job_finished(struct rollout *r, struct rollout_member *mem, const struct job *j) {
        struct manager *m = r->manager;

        mem->in_flight = false;
        mem->bytes_sent = j->bytes_sent;
        if (j->state == JOB_SUCCEEDED && outcome_is_success(r, j)) {
                bool soak = r->policy.soak_s > 0 && r->mode != SMP_UPDATE_UPLOAD_ONLY;
                member_set(r, mem, soak ? ROLLOUT_MEMBER_SOAKING : ROLLOUT_MEMBER_SUCCEEDED, NULL);
                return;
        }
        if (j->state == JOB_CANCELLED) {
                if (r->state == ROLLOUT_CANCELLED || r->state == ROLLOUT_ABORTED)
                        member_set(r, mem, ROLLOUT_MEMBER_CANCELLED, NULL);
                else
                        member_set(r, mem, ROLLOUT_MEMBER_FAILED, "cancelled");
                return;
        }
        const char *reason = j->state == JOB_SUCCEEDED ? "refused" : failure_reason(m, j);
        bool final = streq(reason, "reverted") || streq(reason, "stuck");
        if (!final && mem->attempts < r->policy.attempts && !rollout_is_finished(r)) {
                uint64_t delay = rollout_retry_delay_usec(&r->policy, mem->attempts, unit_random());
                /* Stored as a wall-clock time (for a restart), waited for
                 * on CLOCK_BOOTTIME: a clock change does not end it early. */
                mem->next_attempt_usec = now_realtime_usec() + delay;
                mem->next_attempt_boottime = now_boottime_usec() + delay;
                char note[ROLLOUT_REASON_SIZE];
                snprintf(note, sizeof(note), "retry: %s", reason);
                member_set(r, mem, ROLLOUT_MEMBER_PENDING, note);
                return;
        }
        mem->reverted = streq(reason, "reverted");
        member_set(r, mem, ROLLOUT_MEMBER_FAILED, reason);
}

/* The member whose job j is: the member of its device, or a mesh target
 * updated through that device (its direct device). */
static struct rollout_member *member_of_job(struct rollout *r, const struct job *j) {
        struct rollout_member *mem = rollout_find_member(r, j->device_id);

        if (mem && mem->job_id == j->id)
                return mem;
        for (size_t i = 0; i < r->n_members; i++)
                if (r->members[i].job_id == j->id && r->members[i].path == ROLLOUT_MEMBER_PATH_DIRECT)
                        return &r->members[i];
        return NULL;
}

/* The device a member's job goes to: a mesh target's direct device when
 * it took the direct path, else the member's own device. */
static struct device *member_link_device(struct manager *m, const struct rollout_member *mem) {
        struct device *d = manager_find_device(m, mem->device_id);

        if (d && d->mesh && mem->path == ROLLOUT_MEMBER_PATH_DIRECT)
                return rollout_mesh_direct_device(m, d);
        return d;
}

/* Whether another member of the rollout follows job j. */
static bool job_taken_by_other(const struct rollout *r, const struct rollout_member *mem, uint64_t job_id) {
        for (size_t i = 0; i < r->n_members; i++)
                if (&r->members[i] != mem && r->members[i].job_id == job_id)
                        return true;
        return false;
}

static void on_job_event(struct rollout_executor *x, const struct manager_event *ev) {
        const struct job *j = ev->job;
        struct rollout *r = rollout_executor_find(x, j->rollout_id);
        struct rollout_member *mem;

        if (!r)
                return;
        mem = member_of_job(r, j);
        if (!mem)
                return;
        if (ev->type == MANAGER_EVENT_JOB_PROGRESS) {
                /* Four times a second a job: a write of its own would be
                 * a transaction on the loop each time. */
                mem->bytes_sent = j->bytes_sent;
                mem->progress_dirty = true;
                return;
        }
        if (ev->type == MANAGER_EVENT_JOB_REMOVED) {
                if (mem->in_flight) {
                        mem->in_flight = false;
                        member_set(r, mem, ROLLOUT_MEMBER_PENDING, "job removed");
                }
                rollout_executor_kick(x);
                return;
        }
        if (job_is_finished(j)) {
                if (mem->in_flight || member_active(mem))
                        member_job_finished(r, mem, j);
        } else
                member_set(r, mem, state_of_job(mem, j), NULL);
        rollout_executor_kick(x);
}

/* ---- membership changes ---- */

static uint32_t next_order_key(const struct rollout *r) {
        uint32_t k = 0;
        for (size_t i = 0; i < r->n_members; i++)
                if (r->members[i].order_key != UINT32_MAX && r->members[i].order_key >= k)
                        k = r->members[i].order_key + 1;
        return k;
}

/* A skipped member joins: the first wave not started, or a new one. */
static void member_join_late(struct rollout *r, struct rollout_member *mem) {
        mem->wave = rollout_wave_for_joiner(r->n_waves, r->current_wave + 1);
        if (mem->wave >= r->n_waves)
                r->n_waves = mem->wave + 1;
        mem->order_key = next_order_key(r);
        member_set(r, mem, ROLLOUT_MEMBER_PENDING, NULL);
        rollout_changed(r);
}

static void on_device_event(struct rollout_executor *x, const struct device *d) {
        struct manager *m = x->manager;
        uint64_t now = now_realtime_usec();

        for (size_t i = 0; i < x->n_rollouts; i++) {
                struct rollout *r = x->rollouts[i];
                struct rollout_candidate c;
                struct rollout_image_facts image;
                struct rollout_member *mem;
                enum rollout_skip_reason unknown;
                bool matches;

                if (rollout_is_finished(r))
                        continue;
                if (r->schedule.deadline_usec && now >= r->schedule.deadline_usec)
                        continue;
                mem = rollout_find_member(r, d->id);
                /* Without a filter the members are the devices listed:
                 * only one waiting to tell its board (the image declares
                 * boards) can change. */
                if (!r->policy.has_filter &&
                    !(mem && mem->state == ROLLOUT_MEMBER_SKIPPED && streq(mem->reason, "unknown-board")))
                        continue;
                if (rollout_candidate_of(m, d, &c) < 0)
                        continue;
                image = rollout_image_facts_of(m, r->image_id, r->image_size);
                matches = !r->policy.has_filter || rollout_filter_matches(&r->policy.filter, &c);
                unknown = matches ? ROLLOUT_SKIP_NONE : rollout_filter_unknown(&r->policy.filter, &c);
                if (mem) {
                        if (mem->state == ROLLOUT_MEMBER_PENDING && !matches && mem->attempts == 0)
                                member_set(r, mem, ROLLOUT_MEMBER_SKIPPED, "filter-no-longer-matches");
                        else if (mem->state == ROLLOUT_MEMBER_SKIPPED && !matches && unknown == ROLLOUT_SKIP_NONE &&
                                 (streq(mem->reason, "unknown-board") || streq(mem->reason, "unknown-app")))
                                /* A probe told its board, and it is another. */
                                member_set(r, mem, ROLLOUT_MEMBER_SKIPPED, "filter-no-longer-matches");
                        else if (mem->state == ROLLOUT_MEMBER_SKIPPED && matches &&
                                 streq(mem->reason, "unknown-board") &&
                                 rollout_candidate_skip(&c, &image) == ROLLOUT_SKIP_INCOMPATIBLE_BOARD)
                                /* A probe told its board, and the image is not built for it. */
                                member_set(r, mem, ROLLOUT_MEMBER_SKIPPED, "incompatible-board");
                        else if (mem->state == ROLLOUT_MEMBER_SKIPPED && matches &&
                                 (streq(mem->reason, "absent") || streq(mem->reason, "filter-no-longer-matches") ||
                                  streq(mem->reason, "unknown-board") || streq(mem->reason, "unknown-app")) &&
                                 rollout_candidate_skip(&c, &image) == ROLLOUT_SKIP_NONE)
                                member_join_late(r, mem);
                } else if (matches || unknown != ROLLOUT_SKIP_NONE) {
                        enum rollout_skip_reason skip = rollout_candidate_skip(&c, &image);
                        struct rollout_member add = {
                                .device_id = d->id,
                                .wave = UINT32_MAX,
                                .order_key = UINT32_MAX,
                                .state = ROLLOUT_MEMBER_SKIPPED,
                                .relay = rollout_labels_relay(c.labels, c.n_labels),
                        };
                        if (skip == ROLLOUT_SKIP_NONE)
                                skip = unknown;
                        if (skip == ROLLOUT_SKIP_NONE) {
                                add.wave = rollout_wave_for_joiner(r->n_waves, r->current_wave + 1);
                                add.order_key = next_order_key(r);
                                add.state = ROLLOUT_MEMBER_PENDING;
                        } else
                                snprintf(add.reason, sizeof(add.reason), "%s", rollout_skip_reason_to_string(skip));
                        if (rollout_add_member(r, &add) >= 0) {
                                if (add.wave != UINT32_MAX && add.wave >= r->n_waves)
                                        r->n_waves = add.wave + 1;
                                log_info("Rollout %" PRIu64 ": device %" PRIu64 " joins%s%s", r->id, d->id,
                                         add.reason[0] ? ", skipped: " : "", add.reason);
                                rollout_member_changed(r, &r->members[r->n_members - 1]);
                                rollout_changed(r);
                        }
                }
                rollout_candidate_done(&c);
        }
        rollout_executor_kick(x);
}

static bool skip_is_board(enum rollout_skip_reason skip) {
        return skip == ROLLOUT_SKIP_INCOMPATIBLE_BOARD || skip == ROLLOUT_SKIP_UNKNOWN_BOARD;
}

/* One member of a rollout of an image whose boards changed. */
static void member_boards_changed(struct rollout *r, struct rollout_member *mem,
                                  const struct rollout_image_facts *image) {
        struct manager *m = r->manager;
        struct device *d = manager_find_device(m, mem->device_id);
        enum rollout_skip_reason skip, was;
        struct rollout_candidate c;
        struct job *j;

        if (!d || rollout_candidate_of(m, d, &c) < 0)
                return;
        skip = rollout_candidate_skip(&c, image);
        was = rollout_skip_reason_from_string(mem->reason);
        if (mem->state == ROLLOUT_MEMBER_SKIPPED && skip_is_board(was)) {
                /* Skipped for its board: it joins when the filter still
                 * takes it, as a device that turns up matching does. */
                if (skip == ROLLOUT_SKIP_NONE &&
                    (!r->policy.has_filter || rollout_filter_matches(&r->policy.filter, &c)))
                        member_join_late(r, mem);
                else if (skip_is_board(skip) && skip != was)
                        member_set(r, mem, ROLLOUT_MEMBER_SKIPPED, rollout_skip_reason_to_string(skip));
        } else if (skip_is_board(skip) && mem->state == ROLLOUT_MEMBER_PENDING)
                member_set(r, mem, ROLLOUT_MEMBER_SKIPPED, rollout_skip_reason_to_string(skip));
        else if (skip_is_board(skip) && mem->in_flight && !mem->distribution_id &&
                 (j = manager_find_job(m, mem->job_id)) && !job_has_started(j)) {
                /* Its job waits for a slot: it never starts.  The member
                 * lets go of it first, so its end is not a failure to
                 * retry. */
                mem->in_flight = false;
                member_set(r, mem, ROLLOUT_MEMBER_SKIPPED, rollout_skip_reason_to_string(skip));
                (void) job_fail_unstarted(j, "%s: image %s is no longer built for the device's board",
                                          rollout_skip_reason_to_string(skip), r->image_id);
        }
        /* Anything running (an upload, a distribution) goes on: what it
         * sends was chosen under the old list, and stopping half way
         * helps no one. */
        rollout_candidate_done(&c);
}

void rollout_executor_image_boards_changed(struct rollout_executor *x, const struct image *img) {
        uint64_t now = now_realtime_usec();

        for (size_t i = 0; x && i < x->n_rollouts; i++) {
                struct rollout *r = x->rollouts[i];
                struct rollout_image_facts image;

                if (rollout_is_finished(r) || !streq(r->image_id, img->id))
                        continue;
                if (r->schedule.deadline_usec && now >= r->schedule.deadline_usec)
                        continue;
                image = rollout_image_facts_of(x->manager, r->image_id, r->image_size);
                for (size_t k = 0; k < r->n_members; k++)
                        member_boards_changed(r, &r->members[k], &image);
        }
        rollout_executor_kick(x);
}

static void on_manager_event(struct manager *m, const struct manager_event *ev, void *userdata) {
        struct rollout_executor *x = userdata;

        if (x->stopped)
                return;
        switch (ev->type) {
        case MANAGER_EVENT_JOB_STATE:
        case MANAGER_EVENT_JOB_PROGRESS:
        case MANAGER_EVENT_JOB_REMOVED:
                if (ev->job && ev->job->rollout_id)
                        on_job_event(x, ev);
                break;
        case MANAGER_EVENT_DEVICE_ADDED:
        case MANAGER_EVENT_DEVICE_CHANGED:
                on_device_event(x, ev->device);
                break;
        case MANAGER_EVENT_DISTRIBUTION_STATE:
        case MANAGER_EVENT_DISTRIBUTION_PROGRESS:
                if (ev->distribution && ev->distribution->policy.rollout_id)
                        on_distribution_event(x, ev);
                /* One on its own counts against [rollouts] keep_finished too. */
                if (ev->type == MANAGER_EVENT_DISTRIBUTION_STATE && ev->distribution &&
                    distribution_is_finished(ev->distribution) && !ev->distribution->policy.rollout_id) {
                        x->prune_wanted = true;
                        rollout_executor_kick(x);
                }
                break;
        default:
                break;
        }
}

/* ---- the step ---- */

struct wake {
        uint64_t in_usec; /* UINT64_MAX: nothing due */
};

static void wake_in(struct wake *w, uint64_t usec) {
        if (usec < w->in_usec)
                w->in_usec = usec;
}

static int on_rollout_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct rollout *r = userdata;
        rollout_executor_kick(r->manager->rollouts);
        return 0;
}

static void arm_timer(struct rollout *r, const struct wake *w) {
        struct manager *m = r->manager;
        uint64_t when;

        if (w->in_usec == UINT64_MAX) {
                if (r->timer)
                        (void) sd_event_source_set_enabled(r->timer, SD_EVENT_OFF);
                return;
        }
        when = now_boottime_usec() + MAX(w->in_usec, (uint64_t) 1000);
        if (!r->timer) {
                if (sd_event_add_time(m->event, &r->timer, CLOCK_BOOTTIME, when, 10000, on_rollout_timer, r) < 0)
                        return;
        } else {
                (void) sd_event_source_set_time(r->timer, when);
                (void) sd_event_source_set_enabled(r->timer, SD_EVENT_ONESHOT);
        }
}

/* Stops what is safe to stop: pending members (to `pending_state`) and
 * jobs before their activation.  Jobs past it go on to verify. */
static void stop_members(struct rollout *r, enum rollout_member_state pending_state, const char *pending_reason) {
        struct manager *m = r->manager;

        for (size_t i = 0; i < r->n_members; i++) {
                struct rollout_member *mem = &r->members[i];
                if (mem->state == ROLLOUT_MEMBER_PENDING) {
                        member_set(r, mem, pending_state, pending_reason);
                        continue;
                }
                if (!mem->in_flight || mem->distribution_id)
                        continue;
                struct job *j = manager_find_job(m, mem->job_id);
                if (j && !job_is_finished(j) && !job_past_safe_point(j))
                        (void) job_cancel(j);
        }
        /* A distribution's cancel leaves targets that applied already
         * updated (the Distributor cannot take an apply back). */
        control_distributions(r, DISTRIBUTIONS_CANCEL);
}

static void wave_tally(const struct rollout *r, uint32_t wave, struct rollout_wave_tally *t, uint32_t *ret_reverts) {
        uint32_t reverts = 0;

        *t = (struct rollout_wave_tally) {};
        for (size_t i = 0; i < r->n_members; i++) {
                const struct rollout_member *mem = &r->members[i];
                if (mem->reverted)
                        reverts++;
                if (mem->wave != wave || mem->state == ROLLOUT_MEMBER_SKIPPED)
                        continue;
                t->members++;
                if (member_finished(mem))
                        t->finished++;
                if (mem->state == ROLLOUT_MEMBER_FAILED)
                        t->failed++;
        }
        if (wave == r->forgiven_wave)
                t->failed -= MIN(t->failed, r->forgiven_failures);
        *ret_reverts = reverts - MIN(reverts, r->forgiven_reverts);
}

static bool device_runs_image(const struct rollout *r, const struct device *d) {
        for (size_t i = 0; i < d->slots->n_slots && i < SMP_UPDATE_SLOTS_MAX; i++) {
                const struct smp_update_slot *s = &d->slots->slots[i];
                char hash[2 * sizeof(s->hash) + 1];

                if (!s->present || !s->active)
                        continue;
                hex_encode(s->hash, MIN(s->hash_len, sizeof(s->hash)), hash);
                if (streq(hash, r->image_id))
                        return s->confirmed || r->mode == SMP_UPDATE_TEST_ONLY;
        }
        return false;
}

/* The soak and its check.  true: the wave is still soaking (wait). */
static bool step_soak(struct rollout *r, uint64_t now, struct wake *w) {
        struct manager *m = r->manager;
        uint64_t boot = now_boottime_usec();
        bool waiting = false;

        if (!r->soak_until_usec)
                return false;
        if (!r->soak_end_boottime)
                r->soak_end_boottime = boot + (r->soak_until_usec > now ? r->soak_until_usec - now : 0);
        if (boot < r->soak_end_boottime) {
                wake_in(w, r->soak_end_boottime - boot);
                return true;
        }
        if (!r->probe_deadline_boottime) {
                r->probe_deadline_boottime = boot + SOAK_PROBE_TIMEOUT_USEC;
                for (size_t i = 0; i < r->n_members; i++) {
                        struct rollout_member *mem = &r->members[i];
                        struct device *d = manager_find_device(m, mem->device_id);
                        if (mem->wave != r->current_wave || mem->state != ROLLOUT_MEMBER_SOAKING)
                                continue;
                        if (d && d->mesh && mem->path != ROLLOUT_MEMBER_PATH_DIRECT) {
                                /* No probe reaches a mesh target: its check is the
                                 * firmware its Distributor last read from it. */
                                struct image *img = manager_find_image(m, r->image_id);
                                if (img && streq(d->mesh->version, img->version)) {
                                        /* keeps the soak's reason: an update
                                         * that unprovisioned it says so */
                                        char reason[ROLLOUT_REASON_SIZE];
                                        memcpy(reason, mem->reason, sizeof(reason));
                                        member_set(r, mem, ROLLOUT_MEMBER_SUCCEEDED, reason[0] ? reason : NULL);
                                } else
                                        member_set(r, mem, ROLLOUT_MEMBER_FAILED, "soak-check");
                                continue;
                        }
                        /* A mesh target updated directly: its direct device is probed. */
                        d = member_link_device(m, mem);
                        mem->probing = true;
                        if (d)
                                (void) device_probe(d);
                }
        }
        for (size_t i = 0; i < r->n_members; i++) {
                struct rollout_member *mem = &r->members[i];
                struct device *d = member_link_device(m, mem);
                if (!mem->probing)
                        continue;
                bool answered = d && d->last_probe_usec >= r->soak_until_usec && d->state == DEVICE_ONLINE;
                if (answered) {
                        mem->probing = false;
                        if (device_runs_image(r, d))
                                member_set(r, mem, ROLLOUT_MEMBER_SUCCEEDED, NULL);
                        else
                                member_set(r, mem, ROLLOUT_MEMBER_FAILED, "soak-check");
                } else if (boot >= r->probe_deadline_boottime) {
                        mem->probing = false;
                        member_set(r, mem, ROLLOUT_MEMBER_FAILED, "soak-check");
                } else {
                        if (d && !d->probe && !d->probe_queued && !d->job)
                                (void) device_probe(d);
                        waiting = true;
                }
        }
        if (waiting) {
                wake_in(w, MIN(r->probe_deadline_boottime - boot, (uint64_t) 500000));
                return true;
        }
        r->soak_until_usec = 0;
        r->soak_end_boottime = r->probe_deadline_boottime = 0;
        rollout_changed(r);
        return false;
}

static void halt(struct rollout *r, const struct rollout_verdict *v) {
        const char *reason = rollout_halt_reason_to_string(v->reason);
        char text[256];

        snprintf(text, sizeof(text), "%s: %s", reason ?: "halted", v->sentence);
        if (v->kind == ROLLOUT_VERDICT_ABORT) {
                set_text(&r->error, text);
                stop_members(r, ROLLOUT_MEMBER_CANCELLED, NULL);
                set_state(r, ROLLOUT_ABORTED, text);
        } else {
                set_text(&r->paused_reason, text);
                set_state(r, ROLLOUT_PAUSED, text);
                /* As a user's pause: its distributions stop transferring
                 * until resume. */
                control_distributions(r, DISTRIBUTIONS_SUSPEND);
        }
}

static bool windows_open(struct rollout *r, uint64_t now, struct wake *w) {
        struct rollout_window_state ws;

        if (r->schedule.windows.n == 0 || r->activate_now)
                return true;
        if (rollout_windows_state(&r->schedule.windows, &r->schedule.zone, now, &ws) < 0)
                return false;
        if (ws.open) {
                if (ws.closes_usec != UINT64_MAX && ws.closes_usec > now)
                        wake_in(w, ws.closes_usec - now);
                return true;
        }
        if (ws.opens_usec > now)
                wake_in(w, ws.opens_usec - now);
        return false;
}

static void start_member(struct rollout *r, struct rollout_member *mem, uint64_t now, struct wake *w) {
        struct manager *m = r->manager;
        struct device *d = member_link_device(m, mem);
        struct image *img = manager_find_image(m, r->image_id);
        struct job_options opts = {
                .mode = r->mode,
                .max_attempts = 1,
                .rollout_id = r->id,
                .priority = (int64_t) rollout_job_priority(ROLLOUT_PHASE_STAGE, mem->wave, mem->order_key),
        };
        struct job *j = NULL;
        int k;

        if (!d) {
                member_set(r, mem, ROLLOUT_MEMBER_FAILED, "absent");
                return;
        }
        if (!img) {
                set_text(&r->error, "the image was deleted");
                set_state(r, ROLLOUT_ABORTED, "the image was deleted");
                return;
        }
        if (d->unfinished_job) {
                if (d->unfinished_job->rollout_id == r->id && !job_taken_by_other(r, mem, d->unfinished_job->id)) {
                        /* Ours, made before a crash the member did not hear of. */
                        mem->job_id = d->unfinished_job->id;
                        mem->in_flight = true;
                        member_set(r, mem, ROLLOUT_MEMBER_STAGING, NULL);
                        return;
                }
                wake_in(w, BUSY_RECHECK_USEC);
                return;
        }
        k = job_create(m, img, d, &opts, &j);
        if (k < 0) {
                log_warning_errno(k, "Rollout %" PRIu64 ": cannot create a job for device %" PRIu64 ": %m", r->id,
                                  d->id);
                wake_in(w, BUSY_RECHECK_USEC);
                return;
        }
        mem->job_id = j->id;
        mem->attempts++;
        mem->in_flight = true;
        mem->next_attempt_usec = mem->next_attempt_boottime = 0;
        member_set(r, mem, ROLLOUT_MEMBER_STAGING, NULL);
}

/* ---- mesh targets: members a distribution updates ---- */

static struct device *member_mesh_device(struct manager *m, const struct rollout_member *mem) {
        struct device *d = manager_find_device(m, mem->device_id);
        return d && d->mesh ? d : NULL;
}

static const struct distribution_target *distribution_target_of(const struct distribution *d, uint64_t device_id) {
        for (size_t i = 0; i < d->n_targets; i++)
                if (d->targets[i].device_id == device_id)
                        return &d->targets[i];
        return NULL;
}

/* A mesh member as its distribution's target tells it. */
static void member_follow_distribution(struct rollout *r, struct rollout_member *mem, const struct distribution *d) {
        const struct distribution_target *t = distribution_target_of(d, mem->device_id);
        char note[ROLLOUT_REASON_SIZE];

        if (!t)
                return;
        if (t->phase != SMP_MESH_DFU_PHASE_UNKNOWN && (!mem->has_mesh_phase || mem->mesh_phase != t->phase)) {
                mem->has_mesh_phase = true;
                mem->mesh_phase = t->phase;
                mem->dirty = true;
        }
        if (t->attempts > mem->attempts) {
                mem->attempts = t->attempts;
                mem->dirty = true;
        }
        switch (t->state) {
        case DISTRIBUTION_TARGET_UPDATED: {
                bool soak = r->policy.soak_s > 0;
                mem->in_flight = false;
                /* the reason: its update unprovisioned it, if so */
                member_set(r, mem, soak ? ROLLOUT_MEMBER_SOAKING : ROLLOUT_MEMBER_SUCCEEDED, t->reason);
                return;
        }
        case DISTRIBUTION_TARGET_FAILED:
                mem->in_flight = false;
                member_set(r, mem, ROLLOUT_MEMBER_FAILED, t->reason ?: d->error ?: "failed");
                return;
        case DISTRIBUTION_TARGET_CANCELLED:
                mem->in_flight = false;
                if (r->state == ROLLOUT_CANCELLED || r->state == ROLLOUT_ABORTED)
                        member_set(r, mem, ROLLOUT_MEMBER_CANCELLED, NULL);
                else
                        member_set(r, mem, ROLLOUT_MEMBER_FAILED, "cancelled");
                return;
        default:
                break;
        }
        if (distribution_is_finished(d)) {
                /* Finished without a word for this target: its error is the reason. */
                mem->in_flight = false;
                member_set(r, mem, ROLLOUT_MEMBER_FAILED, d->error ?: "failed");
                return;
        }
        mem->in_flight = true;
        note[0] = 0;
        if (t->state == DISTRIBUTION_TARGET_PENDING && t->reason)
                snprintf(note, sizeof(note), "retry: %s", t->reason);
        if (t->phase == SMP_MESH_DFU_PHASE_APPLYING || (d->want_apply && d->state == DISTRIBUTION_VERIFIED))
                member_set(r, mem, ROLLOUT_MEMBER_ACTIVATING, note);
        else if (d->state == DISTRIBUTION_VERIFIED && t->phase == SMP_MESH_DFU_PHASE_VERIFY_OK)
                member_set(r, mem, ROLLOUT_MEMBER_STAGED, note);
        else
                member_set(r, mem, ROLLOUT_MEMBER_STAGING, note);
}

static void on_distribution_event(struct rollout_executor *x, const struct manager_event *ev) {
        const struct distribution *d = ev->distribution;
        struct rollout *r = rollout_executor_find(x, d->policy.rollout_id);

        if (!r)
                return;
        for (size_t i = 0; i < r->n_members; i++) {
                struct rollout_member *mem = &r->members[i];
                if (mem->distribution_id != d->id || (!mem->in_flight && !member_active(mem)))
                        continue;
                member_follow_distribution(r, mem, d);
        }
        if (ev->type == MANAGER_EVENT_DISTRIBUTION_STATE)
                rollout_executor_kick(x);
}

/* The unfinished distributions the rollout's members are in, each once
 * (*ret has room for one per member; NULL when none or out of memory). */
static size_t rollout_distributions(struct rollout *r, struct distribution ***ret) {
        _cleanup_free_ struct distribution **ds = r->n_members ? calloc(r->n_members, sizeof(*ds)) : NULL;
        size_t n = 0;

        *ret = NULL;
        if (!ds)
                return 0;

        for (size_t i = 0; i < r->n_members; i++) {
                const struct rollout_member *mem = &r->members[i];
                struct distribution *d;
                bool seen = false;

                if (!mem->distribution_id || !mem->in_flight)
                        continue;
                for (size_t k = 0; k < n && !seen; k++)
                        seen = ds[k]->id == mem->distribution_id;
                if (seen)
                        continue;
                d = manager_find_distribution(r->manager, mem->distribution_id);
                if (d && !distribution_is_finished(d))
                        ds[n++] = d;
        }
        *ret = TAKE_PTR(ds);
        return n;
}

static void control_distributions(struct rollout *r, enum distributions_control c) {
        _cleanup_free_ struct distribution **ds = NULL;
        size_t n = rollout_distributions(r, &ds);
        struct engine_error e;

        for (size_t i = 0; i < n; i++) {
                /* Only a transfer suspends (a verified distribution waits for
                 * its apply anyway), and only a suspended one resumes: a
                 * `dfd start` to a running transfer is not sent for nothing. */
                if (c == DISTRIBUTIONS_SUSPEND && ds[i]->state == DISTRIBUTION_VERIFIED)
                        continue;
                if (c == DISTRIBUTIONS_RESUME && ds[i]->state != DISTRIBUTION_SUSPENDED && !ds[i]->want_suspend)
                        continue;
                int k = c == DISTRIBUTIONS_SUSPEND  ? engine_distribution_suspend(r->manager, ds[i], &e)
                        : c == DISTRIBUTIONS_RESUME ? engine_distribution_resume(r->manager, ds[i], &e)
                                                    : engine_distribution_cancel(r->manager, ds[i], &e);
                if (k < 0)
                        log_warning("Rollout %" PRIu64 ": distribution %" PRIu64 ": %s", r->id, ds[i]->id, e.message);
        }
}

/* Whether a member of this wave may apply now: its wave started, a
 * window open (or activate given). */
static bool mesh_may_apply(struct rollout *r, uint32_t wave, uint64_t now, struct wake *w) {
        return wave <= r->current_wave && !r->soak_until_usec && windows_open(r, now, w);
}

/* Whether n more members, n_relay of them relays, may reboot together
 * now: a distribution applies all its targets at once. */
static bool reboot_tokens_free(const struct rollout *r, size_t n, size_t n_relay) {
        struct rollout_reboots tokens;

        count_tokens(r, &tokens);
        return tokens.rebooting + n <= r->policy.max_rebooting &&
               tokens.rebooting_relay + n_relay <= r->policy.max_rebooting_relay;
}

/* Verify-only distributions whose wave may apply now, and whose targets
 * fit the free reboot tokens, are told to. */
static void apply_distributions(struct rollout *r, uint64_t now, struct wake *w) {
        _cleanup_free_ struct distribution **ds = NULL;
        size_t n = rollout_distributions(r, &ds);
        struct engine_error e;

        for (size_t i = 0; i < n; i++) {
                struct distribution *d = ds[i];
                uint32_t wave = UINT32_MAX;
                size_t n_targets = 0, n_relay = 0;

                if (d->policy.apply != DISTRIBUTION_APPLY_VERIFY_ONLY || d->want_apply)
                        continue;
                for (size_t k = 0; k < r->n_members; k++) {
                        if (r->members[k].distribution_id != d->id || !r->members[k].in_flight)
                                continue;
                        wave = MIN(wave, r->members[k].wave);
                        n_targets++;
                        n_relay += r->members[k].relay;
                }
                if (!mesh_may_apply(r, wave, now, w))
                        continue;
                if (!reboot_tokens_free(r, n_targets, n_relay)) {
                        /* Tokens come back as members verify (a kick); this is the backstop. */
                        wake_in(w, BUSY_RECHECK_USEC);
                        continue;
                }
                if (engine_distribution_apply(r->manager, d, &e) < 0)
                        log_warning("Rollout %" PRIu64 ": distribution %" PRIu64 ": %s", r->id, d->id, e.message);
                else
                        log_info("Rollout %" PRIu64 ": distribution %" PRIu64 " applies (wave %" PRIu32 ")", r->id,
                                 d->id, wave);
        }
}

static bool member_due(const struct rollout *r, const struct rollout_member *mem, uint64_t now, struct wake *w) {
        if (mem->state != ROLLOUT_MEMBER_PENDING || (mem->wave > r->current_wave && !r->schedule.staging))
                return false;
        if (mem->next_attempt_boottime) {
                uint64_t boot = now_boottime_usec();
                if (mem->next_attempt_boottime > boot) {
                        wake_in(w, mem->next_attempt_boottime - boot);
                        return false;
                }
        } else if (mem->next_attempt_usec > now) {
                wake_in(w, mem->next_attempt_usec - now);
                return false;
        }
        return true;
}

/* The plan's choice for a group of due mesh members (one wave, one
 * Distributor; engine_rollout_mesh_choose()): when the direct path
 * wins (or mesh_path forces it), the members with a direct device get a
 * job to it now.  The others stay in targets[]/mems[] (compacted) for
 * the distribution; returns how many.  A member that went through the
 * Distributor before keeps that path. */
static size_t take_direct_path(struct rollout *r, uint64_t distributor_id, uint32_t wave, struct device **targets,
                               struct rollout_member **mems, size_t n, uint64_t now, struct wake *w) {
        struct manager *m = r->manager;
        _cleanup_free_ uint64_t *ids = calloc(MAX(n, (size_t) 1), sizeof(*ids));
        _cleanup_free_ uint64_t *direct = calloc(MAX(n, (size_t) 1), sizeof(*direct));
        char reason[320];
        size_t n_direct = 0, kept = 0;
        bool take = false;

        if (!ids || !direct || r->policy.mesh_path == ROLLOUT_MESH_PATH_DISTRIBUTOR)
                return n;
        for (size_t t = 0; t < n; t++) {
                const struct device *dd = mems[t]->path == ROLLOUT_MEMBER_PATH_DISTRIBUTOR
                                                  ? NULL
                                                  : rollout_mesh_direct_device(m, targets[t]);
                ids[t] = targets[t]->id;
                direct[t] = dd ? dd->id : 0;
                n_direct += dd != NULL;
        }
        if (n_direct == 0)
                return n;
        if (engine_rollout_mesh_choose(m, r, distributor_id, ids, direct, n, &take, reason, sizeof(reason)) < 0)
                return n;
        log_info("Rollout %" PRIu64 ": wave %" PRIu32 ", mesh targets behind device %" PRIu64 ": %s", r->id, wave,
                 distributor_id, reason);
        if (!take)
                return n;
        for (size_t t = 0; t < n; t++) {
                if (!direct[t]) {
                        targets[kept] = targets[t];
                        mems[kept++] = mems[t];
                        continue;
                }
                mems[t]->path = ROLLOUT_MEMBER_PATH_DIRECT;
                mems[t]->distribution_id = 0;
                mems[t]->has_mesh_phase = false;
                start_member(r, mems[t], now, w);
                /* Not started (its direct device busy): it waits pending,
                 * on the direct path now, for start_members(). */
        }
        return kept;
}

/* One distribution for the due mesh members of the lowest wave behind
 * each Distributor (a Distributor runs one distribution at a time; the
 * next wave's waits for it). */
static void start_mesh_members(struct rollout *r, uint64_t now, struct wake *w) {
        struct manager *m = r->manager;
        struct image *img = manager_find_image(m, r->image_id);
        _cleanup_free_ bool *handled = NULL;
        _cleanup_free_ struct device **targets = NULL;
        _cleanup_free_ struct rollout_member **mems = NULL;

        if (!img || r->n_members == 0)
                return;
        handled = calloc(r->n_members, sizeof(*handled));
        targets = calloc(r->n_members, sizeof(*targets));
        mems = calloc(r->n_members, sizeof(*mems));
        if (!handled || !targets || !mems)
                return;
        for (size_t i = 0; i < r->n_members && r->state == ROLLOUT_RUNNING; i++) {
                struct rollout_member *first = &r->members[i];
                struct device *fd = member_mesh_device(m, first);
                struct device *distributor;
                struct distribution *dist = NULL;
                struct engine_error e;
                size_t n = 0, n_relay = 0;

                if (handled[i] || !fd || first->path == ROLLOUT_MEMBER_PATH_DIRECT || !member_due(r, first, now, w))
                        continue;
                /* The lowest due wave behind this Distributor. */
                uint32_t wave = first->wave;
                for (size_t k = i + 1; k < r->n_members; k++) {
                        struct device *kd = member_mesh_device(m, &r->members[k]);
                        if (kd && kd->mesh->distributor_id == fd->mesh->distributor_id && r->members[k].wave < wave &&
                            member_due(r, &r->members[k], now, w))
                                wave = r->members[k].wave;
                }
                for (size_t k = i; k < r->n_members && n < DISTRIBUTION_TARGETS_MAX; k++) {
                        struct device *kd = member_mesh_device(m, &r->members[k]);
                        if (handled[k] || !kd || kd->mesh->distributor_id != fd->mesh->distributor_id ||
                            r->members[k].path == ROLLOUT_MEMBER_PATH_DIRECT)
                                continue;
                        if (r->members[k].wave != wave || !member_due(r, &r->members[k], now, w)) {
                                handled[k] = true;
                                continue;
                        }
                        /* Past a reboot budget: the Distributor's next distribution. */
                        if (n >= r->policy.max_rebooting ||
                            (r->members[k].relay && n_relay >= r->policy.max_rebooting_relay))
                                continue;
                        handled[k] = true;
                        targets[n] = kd;
                        mems[n++] = &r->members[k];
                        n_relay += r->members[k].relay;
                }
                n = take_direct_path(r, fd->mesh->distributor_id, wave, targets, mems, n, now, w);
                if (n == 0)
                        continue;
                n_relay = 0;
                for (size_t t = 0; t < n; t++)
                        n_relay += mems[t]->relay;
                distributor = manager_find_device(m, fd->mesh->distributor_id);
                struct distribution_policy p = {
                        .apply = mesh_may_apply(r, wave, now, w) && reboot_tokens_free(r, n, n_relay)
                                         ? DISTRIBUTION_APPLY_NOW
                                         : DISTRIBUTION_APPLY_VERIFY_ONLY,
                        .max_attempts = MIN(MAX(r->policy.attempts, 1u), DISTRIBUTION_ATTEMPTS_MAX),
                        .deadline_usec = r->schedule.deadline_usec,
                        .poll_min_usec = m->config->mesh_poll_min_usec,
                        .poll_max_usec = m->config->mesh_poll_max_usec,
                        .rollout_id = r->id,
                };
                int k = engine_distribution_start(m, distributor, img, targets, n, &p, &dist, &e);
                if (k == -EBUSY) {
                        /* The Distributor (or a target) is in another distribution. */
                        wake_in(w, BUSY_RECHECK_USEC);
                        continue;
                }
                if (k < 0) {
                        /* What the Distributor path cannot take fails those members, with why. */
                        log_warning("Rollout %" PRIu64 ": cannot start a distribution through device %" PRIu64 ": %s",
                                    r->id, fd->mesh->distributor_id, e.message);
                        for (size_t t = 0; t < n; t++) {
                                if (e.index >= 0 && (size_t) e.index != t)
                                        continue;
                                member_set(r, mems[t], ROLLOUT_MEMBER_FAILED,
                                           k == -ENOENT || k == -EMEDIUMTYPE ? "no-distributor" : "refused");
                        }
                        wake_in(w, BUSY_RECHECK_USEC);
                        continue;
                }
                log_info("Rollout %" PRIu64 ": wave %" PRIu32 ": distribution %" PRIu64 " for %zu mesh target%s "
                         "through device %" PRIu64,
                         r->id, wave, dist->id, n, n == 1 ? "" : "s", fd->mesh->distributor_id);
                for (size_t t = 0; t < n; t++) {
                        mems[t]->distribution_id = dist->id;
                        mems[t]->path = ROLLOUT_MEMBER_PATH_DISTRIBUTOR;
                        mems[t]->job_id = 0;
                        mems[t]->attempts++;
                        mems[t]->in_flight = true;
                        mems[t]->has_mesh_phase = false;
                        mems[t]->next_attempt_usec = mems[t]->next_attempt_boottime = 0;
                        member_set(r, mems[t], ROLLOUT_MEMBER_STAGING, NULL);
                }
        }
}

/* Jobs for the members due: of the waves started, or with staging every
 * wave (their activation waits at the gate).  Uploads are bounded by the
 * job layer's slots, reboots by the gate. */
static void start_members(struct rollout *r, uint64_t now, struct wake *w) {
        for (size_t i = 0; i < r->n_members && r->state == ROLLOUT_RUNNING; i++) {
                struct rollout_member *mem = &r->members[i];
                /* Mesh targets go through start_mesh_members(), except
                 * those on their direct path already (a retry). */
                if ((member_mesh_device(r->manager, mem) && mem->path != ROLLOUT_MEMBER_PATH_DIRECT) ||
                    !member_due(r, mem, now, w))
                        continue;
                start_member(r, mem, now, w);
        }
        if (r->state == ROLLOUT_RUNNING) {
                start_mesh_members(r, now, w);
                apply_distributions(r, now, w);
        }
        /* A window that opens or closes changes the gate's answer. */
        if (r->schedule.windows.n > 0 && !r->activate_now) {
                struct wake ww = { UINT64_MAX };
                (void) windows_open(r, now, &ww);
                wake_in(w, ww.in_usec);
        }
}

/* ---- the reboot gate ---- */

static bool rollout_reboot_gate(struct manager *m, const struct job *j, void *userdata) {
        struct rollout_executor *x = userdata;
        struct rollout *r = rollout_executor_find(x, j->rollout_id);
        struct rollout_member *mem = r ? member_of_job(r, j) : NULL;
        struct rollout_reboots tokens;
        struct wake w = { UINT64_MAX };

        if (!r || !mem || mem->job_id != j->id)
                return true; /* not ours (any more): the job layer's own way */
        if (member_holds_token(mem))
                return true; /* asked again for a yes it had */
        if (r->state != ROLLOUT_RUNNING || x->stopped)
                return false;
        count_tokens(r, &tokens);
        struct rollout_activation_gate g = {
                .staged = true,
                .wave_open = mem->wave <= r->current_wave && !r->soak_until_usec,
                .window_open = windows_open(r, now_realtime_usec(), &w),
                .forced = r->activate_now,
                .reboot_allowed = rollout_may_reboot(&r->policy, &tokens, mem->relay),
        };
        if (!rollout_may_activate(&g))
                return false;
        member_set(r, mem, ROLLOUT_MEMBER_ACTIVATING, NULL);
        rollout_executor_kick(x);
        return true;
}

/* What the gate's answers depend on; when it changes, the held jobs ask
 * again. */
static uint64_t gate_signature(struct rollout_executor *x) {
        uint64_t sig = 1469598103934665603ull;
        uint64_t now = now_realtime_usec();

        for (size_t i = 0; i < x->n_rollouts; i++) {
                struct rollout *r = x->rollouts[i];
                struct rollout_reboots tokens;
                struct wake w = { UINT64_MAX };
                uint64_t v;

                if (rollout_is_finished(r))
                        continue;
                count_tokens(r, &tokens);
                v = r->id ^ ((uint64_t) r->state << 8) ^ ((uint64_t) r->current_wave << 16) ^
                    ((uint64_t) tokens.rebooting << 32) ^ ((uint64_t) tokens.rebooting_relay << 44) ^
                    ((uint64_t) windows_open(r, now, &w) << 60) ^ ((uint64_t) r->activate_now << 61) ^
                    ((uint64_t) (r->soak_until_usec != 0) << 62);
                sig = (sig ^ v) * 1099511628211ull;
        }
        return sig;
}

static void step(struct rollout_executor *x, struct rollout *r) {
        uint64_t now = now_realtime_usec();
        struct wake w = { UINT64_MAX };

        if (r->state == ROLLOUT_SCHEDULED) {
                if (now < r->schedule.start_at_usec) {
                        wake_in(&w, r->schedule.start_at_usec - now);
                        goto out;
                }
                set_state(r, ROLLOUT_RUNNING, NULL);
        }
        if (r->state != ROLLOUT_RUNNING)
                goto out;
        if (r->schedule.deadline_usec) {
                if (now >= r->schedule.deadline_usec) {
                        size_t left = 0;
                        for (size_t i = 0; i < r->n_members; i++)
                                left += r->members[i].state == ROLLOUT_MEMBER_PENDING || r->members[i].in_flight;
                        char text[128];
                        snprintf(text, sizeof(text), "deadline: the deadline passed with %zu member%s unfinished", left,
                                 left == 1 ? "" : "s");
                        stop_members(r, ROLLOUT_MEMBER_FAILED, "deadline");
                        set_text(&r->error, text);
                        set_state(r, ROLLOUT_ABORTED, text);
                        goto out;
                }
                wake_in(&w, r->schedule.deadline_usec - now);
        }

        for (;;) {
                struct rollout_wave_tally t;
                struct rollout_verdict v;
                uint32_t reverts;

                if (step_soak(r, now, &w))
                        goto out;
                if (r->current_wave >= r->n_waves) {
                        set_state(r, ROLLOUT_COMPLETED, NULL);
                        goto out;
                }
                wave_tally(r, r->current_wave, &t, &reverts);
                if (t.members == 0) {
                        r->current_wave++;
                        rollout_changed(r);
                        continue;
                }
                rollout_wave_evaluate(&r->policy, r->current_wave, &t, reverts, &v);
                if (v.kind == ROLLOUT_VERDICT_PAUSE || v.kind == ROLLOUT_VERDICT_ABORT) {
                        halt(r, &v);
                        goto out;
                }
                if (v.kind == ROLLOUT_VERDICT_RUNNING)
                        break;
                /* The wave is done: its soak, then the next one. */
                bool soaking = false;
                for (size_t i = 0; i < r->n_members && !soaking; i++)
                        soaking =
                                r->members[i].wave == r->current_wave && r->members[i].state == ROLLOUT_MEMBER_SOAKING;
                if (soaking) {
                        r->soak_until_usec = now + (uint64_t) r->policy.soak_s * 1000000u;
                        r->soak_end_boottime = now_boottime_usec() + (uint64_t) r->policy.soak_s * 1000000u;
                        r->probe_deadline_boottime = 0;
                        rollout_changed(r);
                        log_info("Rollout %" PRIu64 ": wave %" PRIu32 " soaks for %" PRIu32 " s", r->id,
                                 r->current_wave, r->policy.soak_s);
                        continue;
                }
                r->current_wave++;
                rollout_changed(r);
                manager_emit_rollout(r->manager, MANAGER_EVENT_ROLLOUT_STATE, r, 0);
        }
        start_members(r, now, &w);
out:
        arm_timer(r, &w);
}

static void emit_progress(struct rollout *r) {
        struct manager *m = r->manager;
        uint64_t now = now_realtime_usec();
        double rate = 0;

        for (size_t i = 0; i < r->n_members; i++) {
                const struct rollout_member *mem = &r->members[i];
                const struct job *j = mem->in_flight ? manager_find_job(m, mem->job_id) : NULL;
                if (j && j->state == JOB_RUNNING)
                        rate += job_rate(j);
        }
        r->rate = rate;
        if (now - r->last_progress_emit_usec < PROGRESS_INTERVAL_USEC)
                return;
        r->last_progress_emit_usec = now;
        /* The ETA: the rollout re-planned from now, every few seconds. */
        if (r->state == ROLLOUT_RUNNING && now - r->last_eta_usec >= ETA_INTERVAL_USEC) {
                struct engine_error e;
                json_t *plan = NULL;
                uint64_t end = 0;

                r->last_eta_usec = now;
                if (engine_rollout_plan(m, NULL, r, &plan, &e) >= 0) {
                        const char *t = json_string_value(json_object_get(json_object_get(plan, "estimate"), "end"));
                        if (t && rollout_parse_time(t, &end) >= 0)
                                r->eta_usec = end;
                }
                json_decref(plan);
        } else if (r->state != ROLLOUT_RUNNING)
                r->eta_usec = 0;
        manager_emit_rollout(m, MANAGER_EVENT_ROLLOUT_PROGRESS, r, 0);
}

static void write_dirty(struct rollout_executor *x) {
        struct manager *m = x->manager;
        bool any = false;

        for (size_t i = 0; i < x->n_rollouts; i++) {
                struct rollout *r = x->rollouts[i];
                bool dirty = r->dirty;
                for (size_t k = 0; k < r->n_members && !dirty; k++)
                        dirty = r->members[k].dirty;
                if (!dirty)
                        continue;
                if (!r->dirty)
                        r->dirty = true;
                if (m->db)
                        (void) db_rollout_write(m->db, r);
                m->stats.rollout_writes++;
                any = true;
        }
        /* New jobs and their history with the rows that name them. */
        if (any)
                (void) manager_flush_now(m);
}

static int on_step_defer(sd_event_source *s, void *userdata) {
        struct rollout_executor *x = userdata;

        if (x->stopped)
                return 0;
        for (size_t i = 0; i < x->n_rollouts; i++) {
                struct rollout *r = x->rollouts[i];
                if (rollout_is_finished(r)) {
                        if (r->timer)
                                (void) sd_event_source_set_enabled(r->timer, SD_EVENT_OFF);
                        continue;
                }
                step(x, r);
                emit_progress(r);
        }
        write_dirty(x);
        if (x->prune_wanted) {
                /* Here, not where a rollout finishes: nothing walks the list now. */
                x->prune_wanted = false;
                (void) rollouts_prune(x->manager, now_realtime_usec());
        }
        uint64_t sig = gate_signature(x);
        if (sig != x->gate_signature) {
                x->gate_signature = sig;
                engine_reboot_gate_changed(x->manager);
        }
        return 0;
}

/* ---- controls ---- */

void rollout_executor_detach(struct rollout_executor *x, struct rollout *r) {
        for (size_t i = 0; x && i < x->n_rollouts; i++)
                if (x->rollouts[i] == r) {
                        memmove(&x->rollouts[i], &x->rollouts[i + 1], (x->n_rollouts - i - 1) * sizeof(*x->rollouts));
                        x->n_rollouts--;
                        return;
                }
}

int rollout_executor_add(struct rollout_executor *x, struct rollout *r) {
        struct rollout **p = realloc(x->rollouts, (x->n_rollouts + 1) * sizeof(*p));
        if (!p)
                return -ENOMEM;
        x->rollouts = p;
        x->rollouts[x->n_rollouts++] = r;
        rollout_executor_kick(x);
        return 0;
}

void rollout_do_pause(struct rollout *r) {
        set_text(&r->paused_reason, "user");
        set_state(r, ROLLOUT_PAUSED, "by a user");
        control_distributions(r, DISTRIBUTIONS_SUSPEND);
        rollout_executor_kick(r->manager->rollouts);
}

void rollout_do_resume(struct rollout *r) {
        struct rollout_wave_tally t;
        uint32_t reverts = 0;

        /* What halted it is forgiven: the failures of the current wave
         * and the reverts so far no longer count. */
        r->forgiven_reverts = 0;
        wave_tally(r, r->current_wave, &t, &reverts);
        r->forgiven_wave = r->current_wave;
        r->forgiven_failures = 0;
        for (size_t i = 0; i < r->n_members; i++)
                if (r->members[i].wave == r->current_wave && r->members[i].state == ROLLOUT_MEMBER_FAILED)
                        r->forgiven_failures++;
        for (size_t i = 0; i < r->n_members; i++)
                r->forgiven_reverts += r->members[i].reverted;
        set_text(&r->paused_reason, NULL);
        set_state(r, r->started_usec ? ROLLOUT_RUNNING : ROLLOUT_SCHEDULED, "resumed");
        control_distributions(r, DISTRIBUTIONS_RESUME);
        rollout_executor_kick(r->manager->rollouts);
}

void rollout_do_cancel(struct rollout *r) {
        stop_members(r, ROLLOUT_MEMBER_CANCELLED, NULL);
        set_state(r, ROLLOUT_CANCELLED, "by a user");
        rollout_executor_kick(r->manager->rollouts);
}

void rollout_do_activate(struct rollout *r) {
        r->activate_now = true;
        rollout_changed(r);
        manager_history(r->manager, "rollout-state", NULL, r->image_id, NULL,
                        "rollout %" PRIu64 ": activate now (windows no longer waited for)", r->id);
        manager_emit_rollout(r->manager, MANAGER_EVENT_ROLLOUT_STATE, r, 0);
        rollout_executor_kick(r->manager->rollouts);
}

/* ---- load and life ---- */

/* A member as the jobs say it is: after a restart (or kill -9), a job may
 * have moved on, or been created, without the member hearing of it. */
static void reconcile_member(struct rollout *r, struct rollout_member *mem) {
        struct manager *m = r->manager;
        struct device *d = manager_find_device(m, mem->device_id);
        struct job *j = mem->job_id ? manager_find_job(m, mem->job_id) : NULL;

        if (d && d->mesh)
                mem->path = mem->distribution_id ? ROLLOUT_MEMBER_PATH_DISTRIBUTOR
                            : mem->job_id        ? ROLLOUT_MEMBER_PATH_DIRECT
                                                 : ROLLOUT_MEMBER_PATH_NONE;
        if (mem->distribution_id && d && d->mesh) {
                struct distribution *dist = manager_find_distribution(m, mem->distribution_id);
                const struct distribution_target *t = dist ? distribution_target_of(dist, mem->device_id) : NULL;
                /* The phase is not stored with the member: its distribution has it. */
                if (t && t->phase != SMP_MESH_DFU_PHASE_UNKNOWN) {
                        mem->has_mesh_phase = true;
                        mem->mesh_phase = t->phase;
                }
                if (!member_active(mem))
                        return;
                if (dist) {
                        mem->in_flight = true;
                        member_follow_distribution(r, mem, dist);
                        return;
                }
                /* Its distribution is gone: the member goes again. */
                if (mem->attempts > 0)
                        mem->attempts--;
                mem->in_flight = false;
                member_set(r, mem, ROLLOUT_MEMBER_PENDING, NULL);
                return;
        }
        if (mem->state == ROLLOUT_MEMBER_PENDING && d && d->unfinished_job && d->unfinished_job->rollout_id == r->id) {
                j = d->unfinished_job;
                mem->job_id = j->id;
                mem->attempts++;
                member_set(r, mem, ROLLOUT_MEMBER_STAGING, NULL);
        }
        if (!member_active(mem))
                return;
        if (j && !job_is_finished(j)) {
                mem->in_flight = true;
                member_set(r, mem, state_of_job(mem, j), NULL);
                return;
        }
        if (j) {
                mem->in_flight = true;
                member_job_finished(r, mem, j);
                return;
        }
        /* Its job is gone (pruned): take the member's attempt again. */
        if (mem->attempts > 0)
                mem->attempts--;
        member_set(r, mem, ROLLOUT_MEMBER_PENDING, NULL);
}

static int on_rollout_loaded(struct manager *m, struct rollout *r) {
        struct rollout_executor *x = m->rollouts;
        int k;

        rollout_policy_init(&r->policy);
        if (r->policy_json)
                (void) rollout_policy_from_json(r->policy_json, &r->policy, NULL);
        if (r->targets && json_object_get(r->targets, "filter")) {
                if (rollout_filter_from_json(json_object_get(r->targets, "filter"), &r->policy.filter, NULL) >= 0)
                        r->policy.has_filter = true;
        }
        if (rollout_schedule_from_stored(r->schedule_json, &r->schedule) < 0)
                log_warning("Rollout %" PRIu64 ": its stored schedule does not load; running it without", r->id);
        r->policy.staging = r->schedule.staging;
        {
                struct image *img = manager_find_image(m, r->image_id);
                r->image_size = img ? img->file_size : 0;
        }
        for (size_t i = 0; i < r->n_members; i++) {
                struct device *d = manager_find_device(m, r->members[i].device_id);
                r->members[i].relay = d && rollout_labels_relay((const char *const *) d->labels, d->n_labels);
        }
        k = rollout_executor_add(x, r);
        if (k < 0)
                return k;
        for (size_t i = 0; i < r->n_members; i++)
                reconcile_member(r, &r->members[i]);
        return 0;
}

int rollout_executor_new(struct manager *m, struct rollout_executor **ret) {
        struct rollout_executor *x = calloc(1, sizeof(*x));
        int k;

        if (!x)
                return -ENOMEM;
        x->manager = m;
        m->rollouts = x;
        if (m->event) {
                k = sd_event_add_defer(m->event, &x->step_defer, on_step_defer, x);
                if (k < 0)
                        goto fail;
                (void) sd_event_source_set_enabled(x->step_defer, SD_EVENT_OFF);
                /* After the event delivery, so a step sees every change of
                 * the callback that kicked it. */
                (void) sd_event_source_set_priority(x->step_defer, SD_EVENT_PRIORITY_NORMAL + 5);
        }
        if (m->db) {
                k = db_rollouts_load(m->db, m, on_rollout_loaded);
                if (k < 0)
                        goto fail;
        }
        k = manager_add_observer(m, on_manager_event, x);
        if (k < 0)
                goto fail;
        engine_set_reboot_gate(m, rollout_reboot_gate, x);
        log_info("Rollouts: %zu loaded", x->n_rollouts);
        x->prune_wanted = true;
        rollout_executor_kick(x);
        *ret = x;
        return 0;
fail:
        m->rollouts = NULL;
        rollout_executor_free(x);
        return k;
}

void rollout_executor_stop(struct rollout_executor *x) {
        if (!x || x->stopped)
                return;
        write_dirty(x);
        x->stopped = true;
        for (size_t i = 0; i < x->n_rollouts; i++)
                if (x->rollouts[i]->timer)
                        (void) sd_event_source_set_enabled(x->rollouts[i]->timer, SD_EVENT_OFF);
}

struct rollout_executor *rollout_executor_free(struct rollout_executor *x) {
        if (!x)
                return NULL;
        manager_remove_observer(x->manager, on_manager_event, x);
        engine_set_reboot_gate(x->manager, NULL, NULL);
        sd_event_source_disable_unref(x->step_defer);
        for (size_t i = 0; i < x->n_rollouts; i++)
                rollout_free(x->rollouts[i]);
        free(x->rollouts);
        free(x);
        return NULL;
}
