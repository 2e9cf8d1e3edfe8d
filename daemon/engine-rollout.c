/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine's rollout calls (engine-rollout.h): checks and sentences,
 * written once for REST and D-Bus; the executor carries them out.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "db.h"
#include "distribution.h"
#include "engine-rollout.h"
#include "engine.h"
#include "job-radio.h"
#include "log.h"
#include "manager.h"
#include "rollout-executor.h"
#include "rollout-plan.h"
#include "rollout.h"
#include "smpgw/smp-parse.h"
#include "util.h"

_printf_(5, 6) static int fail(struct engine_error *e, int error, const char *field, ssize_t index, const char *fmt,
                               ...) {
        va_list ap;

        e->error = error;
        e->field = field;
        e->index = index;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
        return error;
}

static void error_reset(struct engine_error *e) {
        *e = (struct engine_error) { .index = -1 };
}

/* ---- create ---- */

int engine_rollout_create(struct manager *m, const json_t *spec, struct rollout **ret, struct engine_error *e) {
        _cleanup_(rollout_spec_done) struct rollout_spec s = {};
        struct rollout_layout layout = {};
        struct rollout_candidate *cands = NULL;
        size_t n_cands = 0, n_rollouts, unfinished = 0;
        struct rollout *const *all = rollout_executor_list(m->rollouts, &n_rollouts);
        uint64_t now = now_realtime_usec();
        struct rollout *r;
        int k;

        error_reset(e);
        if (!m->rollouts)
                return fail(e, -ENOTCONN, NULL, -1, "Rollouts are not available.");
        for (size_t i = 0; i < n_rollouts; i++)
                unfinished += !rollout_is_finished(all[i]);
        if (unfinished >= ROLLOUTS_MAX)
                return fail(e, -E2BIG, NULL, -1, "%u rollouts are unfinished already, the most smpgwd keeps.",
                            ROLLOUTS_MAX);
        k = rollout_spec_parse(m, spec, now, &s, e);
        if (k < 0)
                return k;
        k = rollout_spec_layout(m, &s, now, &layout, &cands, &n_cands);
        if (k < 0)
                return fail(e, k, NULL, -1, "Laying the rollout out failed: %s.", strerror(-k));
        if (layout.n_updated + layout.n_skipped > ROLLOUT_MEMBERS_MAX) {
                rollout_layout_done(&layout);
                rollout_candidates_free(cands, n_cands);
                return fail(e, -E2BIG, "targets", -1, "The targets hold more than %u devices.", ROLLOUT_MEMBERS_MAX);
        }

        r = calloc(1, sizeof(*r));
        if (!r) {
                rollout_layout_done(&layout);
                rollout_candidates_free(cands, n_cands);
                return fail(e, -ENOMEM, NULL, -1, "Out of memory.");
        }
        r->manager = m;
        r->name = TAKE_PTR(s.name);
        memcpy(r->image_id, s.image_id, sizeof(r->image_id));
        r->image_size = s.image_size;
        r->mode = s.mode;
        r->state = ROLLOUT_SCHEDULED;
        r->created_usec = r->updated_usec = now;
        r->targets = TAKE_PTR(s.targets);
        r->schedule_json = TAKE_PTR(s.schedule_json);
        r->policy_json = TAKE_PTR(s.policy_json);
        r->policy = s.policy;
        r->schedule = s.schedule;
        if (!r->schedule.start_at_usec)
                r->schedule.start_at_usec = now;
        r->n_waves = layout.waves.n_waves;
        k = 0;
        for (size_t i = 0; i < layout.n_updated + layout.n_skipped && k >= 0; i++) {
                const struct rollout_assignment *a = &layout.members[i];
                const struct rollout_candidate *c = &cands[a->candidate];
                struct rollout_member mem = {
                        .device_id = a->device_id,
                        .wave = a->wave,
                        .order_key = a->order_key,
                        .state = a->skip == ROLLOUT_SKIP_NONE ? ROLLOUT_MEMBER_PENDING : ROLLOUT_MEMBER_SKIPPED,
                        .relay = rollout_labels_relay(c->labels, c->n_labels),
                        .updated_usec = now,
                };
                if (a->skip != ROLLOUT_SKIP_NONE)
                        snprintf(mem.reason, sizeof(mem.reason), "%s", rollout_skip_reason_to_string(a->skip));
                k = rollout_add_member(r, &mem);
        }
        rollout_layout_done(&layout);
        rollout_candidates_free(cands, n_cands);
        if (k >= 0 && m->db)
                k = db_rollout_insert(m->db, r);
        if (k >= 0 && !m->db)
                r->id = n_rollouts + 1;
        if (k >= 0)
                k = rollout_executor_add(m->rollouts, r);
        if (k < 0) {
                if (r->id && m->db)
                        (void) db_rollout_delete(m->db, r->id);
                rollout_free(r);
                return fail(e, k, NULL, -1, "Storing the rollout failed: %s.", strerror(-k));
        }
        log_info("Rollout %" PRIu64 " created: image %.12s, %zu members in %" PRIu32 " waves", r->id, r->image_id,
                 r->n_members, r->n_waves);
        manager_history(m, "rollout-created", NULL, r->image_id, NULL,
                        "rollout %" PRIu64 ": %zu members, %" PRIu32 " waves", r->id, r->n_members, r->n_waves);
        manager_emit_rollout(m, MANAGER_EVENT_ROLLOUT_ADDED, r, 0);
        *ret = r;
        return 0;
}

int engine_rollout_find(struct manager *m, const char *spec, struct rollout **ret, struct engine_error *e) {
        uint64_t id;
        struct rollout *r = NULL;

        error_reset(e);
        if (spec && smp_parse_uint(spec, 1, UINT64_MAX, &id) >= 0)
                r = rollout_executor_find(m->rollouts, id);
        if (!r)
                return fail(e, -ENOENT, "id", -1, "No rollout '%s'.", spec ?: "");
        *ret = r;
        return 0;
}

/* ---- queries ---- */

int engine_rollout_query(struct manager *m, const struct engine_rollout_query *q, struct rollout ***ret, size_t *ret_n,
                         uint64_t *ret_total, struct engine_error *e) {
        size_t n;
        struct rollout *const *all = rollout_executor_list(m->rollouts, &n);
        struct rollout **page;
        uint64_t total = 0;
        size_t k = 0;
        int state = -1;

        error_reset(e);
        if (q->state) {
                state = rollout_state_from_string(q->state);
                if (state < 0)
                        return fail(e, -EINVAL, "state", -1,
                                    "'state' must be one of scheduled, running, paused, "
                                    "completed, cancelled, aborted.");
        }
        page = calloc(MAX(n, (size_t) 1), sizeof(*page));
        if (!page)
                return fail(e, -ENOMEM, NULL, -1, "Out of memory.");
        for (size_t i = n; i > 0; i--) {
                struct rollout *r = all[i - 1];
                if (state >= 0 && (int) r->state != state)
                        continue;
                if (total++ < q->offset)
                        continue;
                if (q->limit && k >= q->limit)
                        continue;
                page[k++] = r;
        }
        *ret = page;
        *ret_n = k;
        *ret_total = total;
        return 0;
}

int engine_rollout_members_query(struct manager *m, struct rollout *r, const struct engine_rollout_member_query *q,
                                 struct rollout_member ***ret, size_t *ret_n, uint64_t *ret_total,
                                 struct engine_error *e) {
        struct rollout_member **page;
        uint64_t total = 0, wave = 0;
        size_t k = 0;
        int state = -1;

        error_reset(e);
        if (q->state) {
                state = rollout_member_state_from_string(q->state);
                if (state < 0)
                        return fail(e, -EINVAL, "state", -1,
                                    "'state' must be a member state (pending, skipped, "
                                    "staging, staged, activating, rebooting, verifying, soaking, succeeded, "
                                    "failed, cancelled).");
        }
        if (q->wave && smp_parse_uint(q->wave, 0, UINT32_MAX - 1, &wave) < 0)
                return fail(e, -EINVAL, "wave", -1, "'wave' must be a wave number, 0 the canary.");
        page = calloc(MAX(r->n_members, (size_t) 1), sizeof(*page));
        if (!page)
                return fail(e, -ENOMEM, NULL, -1, "Out of memory.");
        /* Waves in order, then skipped members. */
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < r->n_members; i++) {
                        struct rollout_member *mem = &r->members[i];
                        if ((mem->wave == UINT32_MAX) != (pass == 1))
                                continue;
                        if (state >= 0 && (int) mem->state != state)
                                continue;
                        if (q->wave && mem->wave != wave)
                                continue;
                        if (total++ < q->offset)
                                continue;
                        if (q->limit && k >= q->limit)
                                continue;
                        page[k++] = mem;
                }
        *ret = page;
        *ret_n = k;
        *ret_total = total;
        return 0;
}

/* ---- controls ---- */

static int refuse_finished(struct rollout *r, struct engine_error *e) {
        return fail(e, -EALREADY, NULL, -1, "Rollout %" PRIu64 " is %s already.", r->id,
                    rollout_state_to_string(r->state));
}

int engine_rollout_pause(struct manager *m, struct rollout *r, struct engine_error *e) {
        error_reset(e);
        if (rollout_is_finished(r))
                return refuse_finished(r, e);
        if (r->state == ROLLOUT_PAUSED)
                return 0;
        rollout_do_pause(r);
        return 0;
}

int engine_rollout_resume(struct manager *m, struct rollout *r, struct engine_error *e) {
        error_reset(e);
        if (rollout_is_finished(r))
                return refuse_finished(r, e);
        if (r->state != ROLLOUT_PAUSED)
                return fail(e, -EBUSY, NULL, -1, "Rollout %" PRIu64 " is not paused (it is %s).", r->id,
                            rollout_state_to_string(r->state));
        rollout_do_resume(r);
        return 0;
}

int engine_rollout_cancel(struct manager *m, struct rollout *r, struct engine_error *e) {
        error_reset(e);
        if (rollout_is_finished(r))
                return refuse_finished(r, e);
        rollout_do_cancel(r);
        return 0;
}

int engine_rollout_activate(struct manager *m, struct rollout *r, struct engine_error *e) {
        error_reset(e);
        if (rollout_is_finished(r))
                return refuse_finished(r, e);
        if (!r->activate_now)
                rollout_do_activate(r);
        return 0;
}

/* ---- plan ---- */

/* Rates and round trips for transports without a measured rate: what
 * a link of that kind gives in practice (doc/rollouts.md). */
static const struct {
        const char *name;
        double rate, rtt_s;
} transport_defaults[] = {
        { "udp", 50000.0, 0.005 },
        { "coap", 50000.0, 0.005 },
        { "ble", 5000.0, 0.05 },
        { "serial", 10000.0, 0.02 },
};
#define PLAN_DEFAULT_RATE 10000.0
#define PLAN_DEFAULT_RTT_S 0.02
#define PLAN_SWAP_DEFAULT_S 10.0
/* The Distributor path: the BLOB multicast rate and targets per round
 * assumed (no distribution measures them yet; doc/mesh-dfu.md). */
#define PLAN_MESH_RATE_DEFAULT 1000.0
#define PLAN_MESH_TARGETS_MAX_DEFAULT 8u

/* The swap time learned for the device's board and the image size (the
 * job layer's estimate); 0 when none was learned. */
static double device_swap_s(struct manager *m, const struct device *d, uint64_t image_size) {
        char board[JOB_BOARD_SIZE];
        bool learned = false;
        uint64_t usec;

        if (!d)
                return 0;
        job_device_board(d, board, sizeof(board));
        usec = job_swap_estimate_usec(m, board, image_size, &learned);
        return learned && usec > 0 ? (double) usec / 1e6 : 0;
}

static json_t *json_time_or_null(uint64_t usec) {
        char buf[64];
        struct tm tm;
        time_t sec;

        if (!usec)
                return json_null();
        sec = (time_t) (usec / 1000000u);
        if (!gmtime_r(&sec, &tm) || strftime(buf, sizeof(buf) - 8, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
                return json_null();
        snprintf(buf + strlen(buf), 8, ".%03uZ", (unsigned) (usec / 1000u % 1000u));
        return json_string(buf);
}

struct plan_ctx {
        struct manager *m;
        const struct rollout_policy *policy;
        const struct rollout_schedule *schedule;
        enum smp_update_mode mode;
        uint64_t image_size, start_usec;
        bool activate_now;
};

/* ---- the two paths of mesh targets ---- */

/* The device a mesh target's direct path goes to: its direct device
 * when it names one that is known, not a mesh target and not absent;
 * else NULL (only its Distributor reaches it). */
struct device *rollout_mesh_direct_device(struct manager *m, const struct device *target) {
        struct device *d;

        if (!target || !target->mesh || !target->mesh->direct_device_id)
                return NULL;
        d = manager_find_device(m, target->mesh->direct_device_id);
        return d && !d->mesh && d->state != DEVICE_ABSENT ? d : NULL;
}

/* A member of the job simulation: its transport, adapter, rate and swap
 * time are those of the device its job goes to (link), its id the
 * member's. */
static void plan_member_fill(const struct plan_ctx *pc, uint64_t member_id, uint64_t link_id, uint32_t wave,
                             struct rollout_plan_member *pm, struct rollout_plan_transport *transports,
                             size_t *n_transports) {
        struct manager *m = pc->m;
        const struct device *d = manager_find_device(m, link_id);
        size_t t;

        *pm = (struct rollout_plan_member) { .device_id = member_id, .wave = wave };
        snprintf(pm->transport, sizeof(pm->transport), "%s", d ? d->transport : "udp");
        if (d && d->adapter)
                snprintf(pm->adapter, sizeof(pm->adapter), "%s", d->adapter);
        pm->relay = d && rollout_labels_relay((const char *const *) d->labels, d->n_labels);
        for (t = 0; t < *n_transports; t++)
                if (streq(transports[t].name, pm->transport))
                        break;
        if (t == *n_transports && *n_transports < ROLLOUT_PLAN_TABLE_MAX) {
                struct rollout_plan_transport *pt = &transports[(*n_transports)++];
                *pt = (struct rollout_plan_transport) { .rate = PLAN_DEFAULT_RATE, .rtt_s = PLAN_DEFAULT_RTT_S };
                snprintf(pt->name, sizeof(pt->name), "%s", pm->transport);
                for (size_t q = 0; q < ELEMENTSOF(transport_defaults); q++)
                        if (streq(transport_defaults[q].name, pt->name)) {
                                pt->rate = transport_defaults[q].rate;
                                pt->rtt_s = transport_defaults[q].rtt_s;
                        }
                pt->max_running =
                        MIN(config_jobs_max_running_for(m->config, pt->name), MAX(1u, m->config->jobs_max_running));
        }
        for (size_t q = m->n_jobs; q > 0; q--)
                if (m->jobs[q - 1]->device_id == link_id && job_rate(m->jobs[q - 1]) > 0) {
                        pm->rate = job_rate(m->jobs[q - 1]);
                        break;
                }
        pm->swap_s = device_swap_s(m, d, pc->image_size);
}

/* The input of a simulation of the given members (filled by the caller)
 * with the daemon's slot limits and defaults. */
static struct rollout_plan_input plan_input(const struct plan_ctx *pc, const struct rollout_policy *policy,
                                            const struct rollout_plan_member *members, size_t n,
                                            const struct rollout_plan_transport *transports, size_t n_transports) {
        struct manager *m = pc->m;
        return (struct rollout_plan_input) {
                .policy = policy,
                .mode = pc->mode,
                .image_size = pc->image_size,
                .start_usec = pc->start_usec,
                .deadline_usec = pc->schedule->deadline_usec,
                .windows = &pc->schedule->windows,
                .zone = pc->schedule->has_zone ? &pc->schedule->zone : NULL,
                .activate_now = pc->activate_now,
                .members = members,
                .n_members = n,
                .max_running = MAX(1u, m->config->jobs_max_running),
                .transports = transports,
                .n_transports = n_transports,
                .max_running_ble_adapter = MAX(1u, m->config->jobs_max_running_ble_adapter),
                .default_rate = PLAN_DEFAULT_RATE,
                .default_rtt_s = PLAN_DEFAULT_RTT_S,
                .swap_default_s = m->config->job_swap_estimate_usec ? (double) m->config->job_swap_estimate_usec / 1e6
                                                                    : PLAN_SWAP_DEFAULT_S,
        };
}

/* The direct path of some mesh targets: jobs to their direct devices,
 * simulated by the job model (slots, link rates, reboot budget, swaps)
 * as one wave of their own, without soak or windows: the time until the
 * last one is verified, and the radio time (the uploads). */
static int estimate_direct(const struct plan_ctx *pc, const uint64_t *ids, const uint64_t *direct_ids, size_t n,
                           double *ret_seconds, double *ret_radio) {
        _cleanup_free_ struct rollout_plan_member *members = calloc(MAX(n, (size_t) 1), sizeof(*members));
        struct rollout_plan_transport transports[ROLLOUT_PLAN_TABLE_MAX] = {};
        struct rollout_policy policy = *pc->policy;
        struct rollout_estimate est = {};
        size_t n_transports = 0, k = 0;
        double radio = 0;
        int r;

        if (!members)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (!direct_ids[i])
                        continue;
                plan_member_fill(pc, ids[i], direct_ids[i], 0, &members[k], transports, &n_transports);
                double rate = members[k].rate;
                for (size_t t = 0; !(rate > 0) && t < n_transports; t++)
                        if (streq(transports[t].name, members[k].transport))
                                rate = transports[t].rate;
                radio += (double) pc->image_size / (rate > 0 ? rate : PLAN_DEFAULT_RATE);
                k++;
        }
        policy.soak_s = 0;
        policy.staging = false;
        struct rollout_plan_input in = plan_input(pc, &policy, members, k, transports, n_transports);
        in.windows = NULL;
        in.zone = NULL;
        in.deadline_usec = 0;
        r = rollout_plan_estimate(&in, &est);
        if (r < 0)
                return r;
        *ret_seconds = est.n_waves > 0 && est.waves[0].members_done_usec > pc->start_usec
                               ? (double) (est.waves[0].members_done_usec - pc->start_usec) / 1e6
                               : (double) est.duration_usec / 1e6;
        *ret_radio = radio;
        rollout_estimate_done(&est);
        return 0;
}

/* The Distributor path's input for n targets behind one Distributor:
 * the upload at the Distributor's measured (or its transport's default)
 * rate, the multicast at the rate the newest finished distribution
 * through it measured, else [mesh] rate. */
static void distributor_input(const struct plan_ctx *pc, uint64_t distributor_id, unsigned n,
                              struct distribution_estimate_input *in, bool *ret_measured) {
        struct manager *m = pc->m;
        const struct device *dist = manager_find_device(m, distributor_id);
        double measured = distribution_measured_rate(m, distributor_id);

        *in = (struct distribution_estimate_input) {
                .image_size = pc->image_size,
                .n_targets = n,
                /* A distribution reboots all its targets at once, so the
                 * executor makes none larger than the reboot budget
                 * (rollout-executor.c): rounds of at most that many. */
                .targets_max = MAX(MIN(PLAN_MESH_TARGETS_MAX_DEFAULT, pc->policy->max_rebooting), 1u),
                .upload_rate = PLAN_DEFAULT_RATE,
                .mesh_rate = measured > 0               ? measured
                             : m->config->mesh_rate > 0 ? (double) m->config->mesh_rate
                                                        : (double) DISTRIBUTION_MESH_RATE_DEFAULT,
                .poll_interval = (double) m->config->mesh_poll_min_usec / 1e6,
        };
        *ret_measured = measured > 0;
        for (size_t q = 0; dist && q < ELEMENTSOF(transport_defaults); q++)
                if (streq(transport_defaults[q].name, dist->transport))
                        in->upload_rate = transport_defaults[q].rate;
        for (size_t q = m->n_jobs; q > 0; q--)
                if (m->jobs[q - 1]->device_id == distributor_id && job_rate(m->jobs[q - 1]) > 0) {
                        in->upload_rate = job_rate(m->jobs[q - 1]);
                        break;
                }
}

/* The choice for one group of mesh targets (one wave, one Distributor):
 * direct_ids[i] the direct device of ids[i], 0 when it has none (it
 * goes through the Distributor whatever the choice). */
struct mesh_choice {
        bool direct; /* the targets with a direct device go direct */
        unsigned n, n_direct;
        double distributor_s, distributor_radio_s; /* all n through the Distributor */
        double direct_s, direct_radio_s;           /* the n_direct as jobs */
        double rest_s, rest_radio_s;               /* the others through the Distributor (0: none) */
        struct distribution_estimate_input in;     /* all n through the Distributor */
        bool rate_measured;
        char reason[320];
};

static int mesh_choose(const struct plan_ctx *pc, uint64_t distributor_id, const uint64_t *ids,
                       const uint64_t *direct_ids, size_t n, struct mesh_choice *c) {
        struct distribution_estimate_input rest;
        bool measured;
        int r;

        *c = (struct mesh_choice) { .n = (unsigned) n };
        for (size_t i = 0; i < n; i++)
                c->n_direct += direct_ids[i] != 0;
        distributor_input(pc, distributor_id, (unsigned) n, &c->in, &c->rate_measured);
        if (distribution_estimate(&c->in, &c->distributor_s) < 0 ||
            distribution_estimate_radio(&c->in, &c->distributor_radio_s) < 0)
                c->distributor_s = c->distributor_radio_s = 0;
        unsigned rounds = (c->n + c->in.targets_max - 1) / c->in.targets_max;
        if (c->n_direct == 0) {
                snprintf(c->reason, sizeof(c->reason),
                         "no direct link: these mesh targets name no direct device, only their Distributor "
                         "reaches them (one upload to it, then a multicast to all)");
                return 0;
        }
        r = estimate_direct(pc, ids, direct_ids, n, &c->direct_s, &c->direct_radio_s);
        if (r < 0)
                return r;
        if (c->n_direct < c->n) {
                distributor_input(pc, distributor_id, c->n - c->n_direct, &rest, &measured);
                if (distribution_estimate(&rest, &c->rest_s) < 0 ||
                    distribution_estimate_radio(&rest, &c->rest_radio_s) < 0)
                        c->rest_s = c->rest_radio_s = 0;
        }
        double split_s = MAX(c->direct_s, c->rest_s);
        switch (pc->policy->mesh_path) {
        case ROLLOUT_MESH_PATH_DIRECT:
                c->direct = true;
                snprintf(c->reason, sizeof(c->reason),
                         "direct, as mesh_path says: %u target%s as jobs to their direct devices (%.0f s; the "
                         "Distributor path would take %.0f s)",
                         c->n_direct, c->n_direct == 1 ? "" : "s", c->direct_s, c->distributor_s);
                return 0;
        case ROLLOUT_MESH_PATH_DISTRIBUTOR:
                snprintf(c->reason, sizeof(c->reason),
                         "the Distributor, as mesh_path says (%.0f s: one upload, %u round%s at %.0f B/s "
                         "multicast; the direct path would take %.0f s)",
                         c->distributor_s, rounds, rounds == 1 ? "" : "s", c->in.mesh_rate, split_s);
                return 0;
        default:
                break;
        }
        c->direct = split_s < c->distributor_s;
        if (c->direct)
                snprintf(c->reason, sizeof(c->reason),
                         "direct is faster: %u target%s as jobs to their direct devices take %.0f s (%.0f s of "
                         "radio), the Distributor path %.0f s (one upload, %u round%s at %.0f B/s multicast)",
                         c->n_direct, c->n_direct == 1 ? "" : "s", split_s, c->direct_radio_s, c->distributor_s, rounds,
                         rounds == 1 ? "" : "s", c->in.mesh_rate);
        else
                snprintf(c->reason, sizeof(c->reason),
                         "the Distributor is faster: %.0f s (one upload, %u round%s at %.0f B/s multicast) "
                         "against %.0f s for %u job%s to the direct devices (%.0f s of radio)",
                         c->distributor_s, rounds, rounds == 1 ? "" : "s", c->in.mesh_rate, split_s, c->n_direct,
                         c->n_direct == 1 ? "" : "s", c->direct_radio_s);
        return 0;
}

int engine_rollout_mesh_choose(struct manager *m, struct rollout *r, uint64_t distributor_id, const uint64_t *ids,
                               const uint64_t *direct_ids, size_t n, bool *ret_direct, char *reason,
                               size_t reason_size) {
        struct plan_ctx pc = {
                .m = m,
                .policy = &r->policy,
                .schedule = &r->schedule,
                .mode = r->mode,
                .image_size = r->image_size,
                .activate_now = r->activate_now,
                .start_usec = now_realtime_usec(),
        };
        struct mesh_choice c;
        int k = mesh_choose(&pc, distributor_id, ids, direct_ids, n, &c);

        if (k < 0)
                return k;
        *ret_direct = c.direct;
        if (reason)
                snprintf(reason, reason_size, "%s", c.reason);
        return 0;
}

/* The mesh members' paths: per wave and Distributor one group, its
 * choice (mesh_choose()); the targets that go direct are set in
 * link_ids[] (their direct device) for the job simulation.  A member
 * whose path is taken already (path[i]: a running rollout's member that
 * has a job or a distribution) keeps it.  *ret_seconds: the longest sum
 * of one Distributor's distributions (a Distributor runs one at a time;
 * different Distributors run side by side). */
static int plan_mesh(const struct plan_ctx *pc, const uint64_t *ids, const uint32_t *waves,
                     const enum rollout_member_path *paths, size_t n, uint64_t *link_ids, json_t **ret,
                     double *ret_seconds) {
        struct manager *m = pc->m;
        _cleanup_free_ bool *done = calloc(MAX(n, (size_t) 1), sizeof(*done));
        _cleanup_free_ uint64_t *gids = calloc(MAX(n, (size_t) 1), sizeof(*gids));
        _cleanup_free_ uint64_t *gdirect = calloc(MAX(n, (size_t) 1), sizeof(*gdirect));
        _cleanup_free_ size_t *gidx = calloc(MAX(n, (size_t) 1), sizeof(*gidx));
        json_t *arr = json_array();
        double longest = 0;
        int r;

        if (!done || !gids || !gdirect || !gidx || !arr) {
                json_decref(arr);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                const struct device *d = manager_find_device(m, ids[i]);
                if (done[i] || !d || !d->mesh)
                        continue;
                uint64_t dist_id = d->mesh->distributor_id;
                size_t count = 0;
                double sum = 0;

                for (size_t k = i; k < n; k++) {
                        const struct device *kd = manager_find_device(m, ids[k]);
                        if (done[k] || !kd || !kd->mesh || kd->mesh->distributor_id != dist_id || waves[k] != waves[i])
                                continue;
                        done[k] = true;
                        if (paths && paths[k] == ROLLOUT_MEMBER_PATH_DIRECT) {
                                /* On its way by a job already. */
                                const struct device *dd = rollout_mesh_direct_device(m, kd);
                                link_ids[k] = dd ? dd->id : ids[k];
                                continue;
                        }
                        const struct device *dd = paths && paths[k] == ROLLOUT_MEMBER_PATH_DISTRIBUTOR
                                                          ? NULL
                                                          : rollout_mesh_direct_device(m, kd);
                        gids[count] = ids[k];
                        gdirect[count] = dd ? dd->id : 0;
                        gidx[count++] = k;
                }
                if (count == 0)
                        continue;
                struct mesh_choice c;
                r = mesh_choose(pc, dist_id, gids, gdirect, count, &c);
                if (r < 0) {
                        json_decref(arr);
                        return r;
                }
                json_t *devs = json_array(), *direct = json_array();
                for (size_t g = 0; g < count; g++) {
                        json_array_append_new(devs, json_integer((json_int_t) gids[g]));
                        if (c.direct && gdirect[g]) {
                                link_ids[gidx[g]] = gdirect[g];
                                json_array_append_new(direct, json_pack("{s:I, s:I}", "device", (json_int_t) gids[g],
                                                                        "direct_device", (json_int_t) gdirect[g]));
                        }
                }
                const char *path = !c.direct ? "distributor" : c.n_direct == c.n ? "direct" : "both";
                double through = !c.direct ? c.distributor_s : c.rest_s;
                double duration = !c.direct ? c.distributor_s : MAX(c.direct_s, c.rest_s);
                double radio = !c.direct ? c.distributor_radio_s : c.direct_radio_s + c.rest_radio_s;
                /* This Distributor's distributions so far, this one included. */
                for (size_t q = 0; q < json_array_size(arr); q++) {
                        json_t *o = json_array_get(arr, q);
                        if ((uint64_t) json_integer_value(json_object_get(o, "distributor")) == dist_id)
                                sum += json_real_value(json_object_get(o, "distributor_s"));
                }
                sum += through;
                longest = MAX(longest, sum);
                json_array_append_new(
                        arr, json_pack("{s:I, s:I, s:o, s:s, s:s, s:f, s:f, s:f, s:o, s:{s:{s:f, s:f}, s:o},"
                                       " s:{s:f, s:f, s:b, s:I}}",
                                       "wave", (json_int_t) waves[i], "distributor", (json_int_t) dist_id, "devices",
                                       devs, "path", path, "reason", c.reason, "duration_s", duration, "radio_s", radio,
                                       "distributor_s", through, "direct", direct, "estimates", "distributor",
                                       "duration_s", c.distributor_s, "radio_s", c.distributor_radio_s, "direct",
                                       c.n_direct ? json_pack("{s:f, s:f, s:I}", "duration_s", c.direct_s, "radio_s",
                                                              c.direct_radio_s, "devices", (json_int_t) c.n_direct)
                                                  : json_null(),
                                       "assumptions", "upload_rate", c.in.upload_rate, "mesh_rate", c.in.mesh_rate,
                                       "mesh_rate_measured", c.rate_measured, "targets_per_round",
                                       (json_int_t) c.in.targets_max));
        }
        *ret = arr;
        *ret_seconds = longest;
        return 0;
}

/* Members: device ids in order with their waves (renumbered from 0), and
 * the device each one's job goes to (link_ids NULL: its own). */
static int plan_run_direct(const struct plan_ctx *pc, const uint64_t *ids, const uint64_t *link_ids,
                           const uint32_t *waves, size_t n, json_t *skipped, json_t **ret);

/* Mesh members go the path plan_mesh() chooses: through the Distributor,
 * or (those with a direct device, when that is faster or forced) into
 * the job simulation as jobs to their direct devices, with the other
 * members, their waves renumbered without gaps.  The estimate's end is
 * the later of the two: the Distributor path is estimated as if its
 * waves did not wait for the direct ones. */
static int plan_run(const struct plan_ctx *pc, const uint64_t *ids, const uint32_t *waves,
                    const enum rollout_member_path *paths, size_t n, json_t *skipped, json_t **ret) {
        _cleanup_free_ uint64_t *dids = calloc(MAX(n, (size_t) 1), sizeof(*dids));
        _cleanup_free_ uint64_t *dlinks = calloc(MAX(n, (size_t) 1), sizeof(*dlinks));
        _cleanup_free_ uint64_t *links = calloc(MAX(n, (size_t) 1), sizeof(*links));
        _cleanup_free_ uint32_t *dwaves = calloc(MAX(n, (size_t) 1), sizeof(*dwaves));
        json_t *mesh = NULL, *out = NULL, *estimate, *jwaves;
        size_t nd = 0;
        uint32_t last_wave = UINT32_MAX;
        double mesh_s = 0;
        bool any_mesh = false;
        int k;

        if (!dids || !dwaves || !links || !dlinks)
                return -ENOMEM;
        for (size_t i = 0; i < n && !any_mesh; i++) {
                const struct device *d = manager_find_device(pc->m, ids[i]);
                any_mesh = d && d->mesh;
        }
        if (!any_mesh)
                return plan_run_direct(pc, ids, NULL, waves, n, skipped, ret);
        k = plan_mesh(pc, ids, waves, paths, n, links, &mesh, &mesh_s);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n; i++) {
                const struct device *d = manager_find_device(pc->m, ids[i]);
                if (d && d->mesh && !links[i])
                        continue;
                dids[nd] = ids[i];
                dlinks[nd] = links[i] ? links[i] : ids[i];
                dwaves[nd] = nd == 0 ? 0 : dwaves[nd - 1] + (waves[i] != last_wave);
                last_wave = waves[i];
                nd++;
        }
        k = plan_run_direct(pc, dids, dlinks, dwaves, nd, skipped, &out);
        if (k < 0) {
                json_decref(mesh);
                return k;
        }
        /* The waves as the rollout has them, mesh members included. */
        jwaves = json_array();
        for (size_t i = 0; jwaves && i < n; i++) {
                while (json_array_size(jwaves) <= waves[i])
                        json_array_append_new(jwaves, json_pack("{s:I, s:[]}", "wave",
                                                                (json_int_t) json_array_size(jwaves), "devices"));
                json_array_append_new(json_object_get(json_array_get(jwaves, waves[i]), "devices"),
                                      json_integer((json_int_t) ids[i]));
        }
        if (jwaves)
                json_object_set_new(out, "waves", jwaves);
        json_object_set_new(out, "mesh", mesh);
        estimate = json_object_get(out, "estimate");
        double direct_s = json_real_value(json_object_get(estimate, "duration_s"));
        if (mesh_s > direct_s) {
                json_object_set_new(estimate, "duration_s", json_real(mesh_s));
                json_object_set_new(estimate, "end", json_time_or_null(pc->start_usec + (uint64_t) (mesh_s * 1e6)));
        }
        json_object_set_new(estimate, "mesh_s", json_real(mesh_s));
        *ret = out;
        return 0;
}

static int plan_run_direct(const struct plan_ctx *pc, const uint64_t *ids, const uint64_t *link_ids,
                           const uint32_t *waves, size_t n, json_t *skipped, json_t **ret) {
        struct manager *m = pc->m;
        struct rollout_plan_member *members = calloc(MAX(n, (size_t) 1), sizeof(*members));
        struct rollout_plan_transport transports[ROLLOUT_PLAN_TABLE_MAX] = {};
        size_t n_transports = 0;
        struct rollout_estimate est = {};
        struct rollout_policy policy = *pc->policy;
        uint64_t lower = 0;
        json_t *jwaves, *per_wave, *jtransports, *out;
        int k;

        if (!members)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                plan_member_fill(pc, ids[i], link_ids ? link_ids[i] : ids[i], waves[i], &members[i], transports,
                                 &n_transports);
        uint32_t max_running = MAX(1u, m->config->jobs_max_running);
        struct rollout_plan_input in = plan_input(pc, &policy, members, n, transports, n_transports);

        jwaves = json_array();
        for (size_t i = 0; i < n; i++) {
                while (json_array_size(jwaves) <= waves[i])
                        json_array_append_new(jwaves, json_pack("{s:I, s:[]}", "wave",
                                                                (json_int_t) json_array_size(jwaves), "devices"));
                json_array_append_new(json_object_get(json_array_get(jwaves, waves[i]), "devices"),
                                      json_integer((json_int_t) ids[i]));
        }

        if (n == 0) {
                out = json_pack("{s:o, s:O, s:{s:f, s:o, s:o, s:[], s:{}}}", "waves", jwaves, "skipped", skipped,
                                "estimate", "duration_s", 0.0, "start", json_time_or_null(pc->start_usec), "end",
                                json_time_or_null(pc->start_usec), "per_wave", "assumptions");
                free(members);
                *ret = out;
                return out ? 0 : -ENOMEM;
        }
        k = rollout_plan_estimate(&in, &est);
        if (k >= 0)
                (void) rollout_plan_lower_bound(&in, &lower);
        free(members);
        if (k < 0) {
                json_decref(jwaves);
                return k;
        }
        per_wave = json_array();
        for (size_t i = 0; i < est.n_waves; i++) {
                const struct rollout_wave_estimate *we = &est.waves[i];
                json_array_append_new(
                        per_wave,
                        json_pack("{s:I, s:I, s:o, s:o, s:o, s:o}", "wave", (json_int_t) we->wave, "members",
                                  (json_int_t) we->n_members, "start", json_time_or_null(we->start_usec),
                                  "first_activation", json_time_or_null(we->first_activation_usec), "members_done",
                                  json_time_or_null(we->members_done_usec), "end", json_time_or_null(we->end_usec)));
        }
        jtransports = json_array();
        for (size_t i = 0; i < est.n_transports; i++) {
                const struct rollout_estimate_transport *et = &est.transports[i];
                json_array_append_new(jtransports,
                                      json_pack("{s:s, s:I, s:I, s:f, s:f, s:I}", "transport", et->name, "members",
                                                (json_int_t) et->n_members, "at_default_rate",
                                                (json_int_t) et->n_default_rate, "default_rate", et->default_rate,
                                                "rtt_s", et->rtt_s, "max_running", (json_int_t) et->max_running));
        }
        out = json_pack("{s:o, s:O, s:{s:f, s:o, s:o, s:o, s:f, s:{s:o, s:I, s:f, s:f, s:I, s:b}}}", "waves", jwaves,
                        "skipped", skipped, "estimate", "duration_s", (double) est.duration_usec / 1e6, "start",
                        json_time_or_null(est.start_usec), "end", json_time_or_null(est.end_usec), "per_wave", per_wave,
                        "lower_bound_s", (double) lower / 1e6, "assumptions", "transports", jtransports,
                        "at_default_swap", (json_int_t) est.n_default_swap, "swap_default_s", est.swap_default_s,
                        "window_wait_s", (double) est.window_wait_usec / 1e6, "max_running", (json_int_t) max_running,
                        "deadline_exceeded", est.deadline_exceeded);
        rollout_estimate_done(&est);
        *ret = out;
        return out ? 0 : -ENOMEM;
}

static int plan_error(struct engine_error *e, int k) {
        if (k == -ENOENT)
                return fail(e, -EINVAL, "windows", -1, "The windows never open.");
        if (k == -E2BIG)
                return fail(e, k, NULL, -1, "The rollout is too large to plan.");
        return fail(e, k, NULL, -1, "Planning failed: %s.", strerror(-k));
}

int engine_rollout_plan(struct manager *m, const json_t *spec, struct rollout *r, json_t **ret,
                        struct engine_error *e) {
        uint64_t now = now_realtime_usec();
        _cleanup_free_ uint64_t *ids = NULL;
        _cleanup_free_ uint32_t *waves = NULL;
        _cleanup_free_ enum rollout_member_path *paths = NULL;
        json_t *skipped = json_array();
        size_t n = 0;
        int k;

        error_reset(e);
        if (!skipped)
                return fail(e, -ENOMEM, NULL, -1, "Out of memory.");
        if (r) {
                struct plan_ctx pc = {
                        .m = m,
                        .policy = &r->policy,
                        .schedule = &r->schedule,
                        .mode = r->mode,
                        .image_size = r->image_size,
                        .activate_now = r->activate_now,
                        .start_usec = MAX(now, r->schedule.start_at_usec),
                };
                uint32_t first_wave = UINT32_MAX;

                ids = calloc(MAX(r->n_members, (size_t) 1), sizeof(*ids));
                waves = calloc(MAX(r->n_members, (size_t) 1), sizeof(*waves));
                paths = calloc(MAX(r->n_members, (size_t) 1), sizeof(*paths));
                if (!ids || !waves || !paths) {
                        json_decref(skipped);
                        return fail(e, -ENOMEM, NULL, -1, "Out of memory.");
                }
                for (size_t i = 0; i < r->n_members; i++) {
                        const struct rollout_member *mem = &r->members[i];
                        if (mem->state == ROLLOUT_MEMBER_SKIPPED)
                                json_array_append_new(skipped,
                                                      json_pack("{s:I, s:s}", "device", (json_int_t) mem->device_id,
                                                                "reason", mem->reason));
                        if (mem->state != ROLLOUT_MEMBER_PENDING && !mem->in_flight)
                                continue;
                        first_wave = MIN(first_wave, mem->wave);
                }
                /* Remaining members, waves renumbered without gaps. */
                for (uint32_t w = first_wave; w != UINT32_MAX && w < r->n_waves; w++) {
                        bool any = false;
                        for (size_t i = 0; i < r->n_members; i++) {
                                const struct rollout_member *mem = &r->members[i];
                                if (mem->wave != w || (mem->state != ROLLOUT_MEMBER_PENDING && !mem->in_flight))
                                        continue;
                                ids[n] = mem->device_id;
                                paths[n] = mem->path;
                                waves[n] = n == 0 ? 0 : waves[n - 1] + (any ? 0 : 1);
                                any = true;
                                n++;
                        }
                }
                if (rollout_is_finished(r) || r->state == ROLLOUT_PAUSED)
                        pc.activate_now = pc.activate_now;
                k = plan_run(&pc, ids, waves, paths, n, skipped, ret);
                json_decref(skipped);
                return k < 0 ? plan_error(e, k) : 0;
        }

        _cleanup_(rollout_spec_done) struct rollout_spec s = {};
        struct rollout_layout layout = {};
        struct rollout_candidate *cands = NULL;
        size_t n_cands = 0;

        k = rollout_spec_parse(m, spec, now, &s, e);
        if (k < 0) {
                json_decref(skipped);
                return k;
        }
        k = rollout_spec_layout(m, &s, now, &layout, &cands, &n_cands);
        if (k < 0) {
                json_decref(skipped);
                return fail(e, k, NULL, -1, "Laying the rollout out failed: %s.", strerror(-k));
        }
        ids = calloc(MAX(layout.n_updated, (size_t) 1), sizeof(*ids));
        waves = calloc(MAX(layout.n_updated, (size_t) 1), sizeof(*waves));
        for (size_t i = 0; ids && waves && i < layout.n_updated + layout.n_skipped; i++) {
                const struct rollout_assignment *a = &layout.members[i];
                if (a->skip != ROLLOUT_SKIP_NONE) {
                        json_array_append_new(skipped, json_pack("{s:I, s:s}", "device", (json_int_t) a->device_id,
                                                                 "reason", rollout_skip_reason_to_string(a->skip)));
                        continue;
                }
                ids[n] = a->device_id;
                waves[n] = a->wave;
                n++;
        }
        rollout_layout_done(&layout);
        rollout_candidates_free(cands, n_cands);
        if (!ids || !waves) {
                json_decref(skipped);
                return fail(e, -ENOMEM, NULL, -1, "Out of memory.");
        }
        struct plan_ctx pc = {
                .m = m,
                .policy = &s.policy,
                .schedule = &s.schedule,
                .mode = s.mode,
                .image_size = s.image_size,
                .start_usec = MAX(now, s.schedule.start_at_usec),
        };
        k = plan_run(&pc, ids, waves, NULL, n, skipped, ret);
        json_decref(skipped);
        return k < 0 ? plan_error(e, k) : 0;
}
