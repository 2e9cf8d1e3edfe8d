/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A rollout's decisions (rollout-policy.h): membership, order, waves,
 * thresholds, reboot budgets, the activation gate, slot priority and
 * backoff.  The JSON spelling of a policy is rollout-policy-json.c.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "image-boards.h"
#include "rollout-policy.h"
#include "util.h"

/* ---- names ---- */

static const char *const member_state_names[_ROLLOUT_MEMBER_STATE_MAX] = {
        [ROLLOUT_MEMBER_PENDING] = "pending",       [ROLLOUT_MEMBER_SKIPPED] = "skipped",
        [ROLLOUT_MEMBER_STAGING] = "staging",       [ROLLOUT_MEMBER_STAGED] = "staged",
        [ROLLOUT_MEMBER_ACTIVATING] = "activating", [ROLLOUT_MEMBER_REBOOTING] = "rebooting",
        [ROLLOUT_MEMBER_VERIFYING] = "verifying",   [ROLLOUT_MEMBER_SOAKING] = "soaking",
        [ROLLOUT_MEMBER_SUCCEEDED] = "succeeded",   [ROLLOUT_MEMBER_FAILED] = "failed",
        [ROLLOUT_MEMBER_CANCELLED] = "cancelled",
};

static const char *const skip_reason_names[_ROLLOUT_SKIP_MAX] = {
        [ROLLOUT_SKIP_NONE] = "none",
        [ROLLOUT_SKIP_ALREADY_RUNNING] = "already-running",
        [ROLLOUT_SKIP_ABSENT] = "absent",
        [ROLLOUT_SKIP_INCOMPATIBLE_BOARD] = "incompatible-board",
        [ROLLOUT_SKIP_IMAGE_TOO_LARGE] = "image-too-large",
        [ROLLOUT_SKIP_FILTER_NO_LONGER_MATCHES] = "filter-no-longer-matches",
        [ROLLOUT_SKIP_UNKNOWN_BOARD] = "unknown-board",
        [ROLLOUT_SKIP_UNKNOWN_APP] = "unknown-app",
};

static const char *const failure_reason_names[_ROLLOUT_FAILED_MAX] = {
        [ROLLOUT_FAILED_REVERTED] = "reverted",       [ROLLOUT_FAILED_STUCK] = "stuck",
        [ROLLOUT_FAILED_REFUSED] = "refused",         [ROLLOUT_FAILED_UNREACHABLE] = "unreachable",
        [ROLLOUT_FAILED_DEADLINE] = "deadline",       [ROLLOUT_FAILED_CANCELLED] = "cancelled",
        [ROLLOUT_FAILED_SOAK_CHECK] = "soak-check",
};

static const char *const action_names[_ROLLOUT_ACTION_MAX] = {
        [ROLLOUT_ACTION_PAUSE] = "pause",
        [ROLLOUT_ACTION_ABORT] = "abort",
};

static const char *const mesh_path_names[_ROLLOUT_MESH_PATH_MAX] = {
        [ROLLOUT_MESH_PATH_AUTO] = "auto",
        [ROLLOUT_MESH_PATH_DISTRIBUTOR] = "distributor",
        [ROLLOUT_MESH_PATH_DIRECT] = "direct",
};

static const char *const halt_reason_names[_ROLLOUT_HALT_MAX] = {
        [ROLLOUT_HALT_NONE] = "none",
        [ROLLOUT_HALT_FAILURE_THRESHOLD] = "failure-threshold",
        [ROLLOUT_HALT_REVERTED] = "reverted",
};

static const char *name_of(const char *const *names, size_t n, int v) {
        return v >= 0 && (size_t) v < n ? names[v] : NULL;
}

static int name_find(const char *const *names, size_t n, const char *s) {
        for (size_t i = 0; s && i < n; i++)
                if (names[i] && streq(names[i], s))
                        return (int) i;
        return -EINVAL;
}

const char *rollout_member_state_to_string(enum rollout_member_state s) {
        return name_of(member_state_names, ELEMENTSOF(member_state_names), s);
}
enum rollout_member_state rollout_member_state_from_string(const char *s) {
        return name_find(member_state_names, ELEMENTSOF(member_state_names), s);
}
const char *rollout_skip_reason_to_string(enum rollout_skip_reason r) {
        return name_of(skip_reason_names, ELEMENTSOF(skip_reason_names), r);
}
enum rollout_skip_reason rollout_skip_reason_from_string(const char *s) {
        return name_find(skip_reason_names, ELEMENTSOF(skip_reason_names), s);
}
const char *rollout_failure_reason_to_string(enum rollout_failure_reason r) {
        return name_of(failure_reason_names, ELEMENTSOF(failure_reason_names), r);
}
enum rollout_failure_reason rollout_failure_reason_from_string(const char *s) {
        return name_find(failure_reason_names, ELEMENTSOF(failure_reason_names), s);
}
const char *rollout_action_to_string(enum rollout_action a) {
        return name_of(action_names, ELEMENTSOF(action_names), a);
}
enum rollout_action rollout_action_from_string(const char *s) {
        return name_find(action_names, ELEMENTSOF(action_names), s);
}
const char *rollout_mesh_path_to_string(enum rollout_mesh_path p) {
        return name_of(mesh_path_names, ELEMENTSOF(mesh_path_names), p);
}
enum rollout_mesh_path rollout_mesh_path_from_string(const char *s) {
        return name_find(mesh_path_names, ELEMENTSOF(mesh_path_names), s);
}
const char *rollout_halt_reason_to_string(enum rollout_halt_reason r) {
        return name_of(halt_reason_names, ELEMENTSOF(halt_reason_names), r);
}

/* ---- the policy ---- */

void rollout_policy_init(struct rollout_policy *ret) {
        *ret = (struct rollout_policy) {
                .canary = { .value = 1 },
                .wave_size = { .value = 25, .percent = true },
                .soak_s = 0,
                .failure_threshold = { .value = 1 },
                .failure_action = ROLLOUT_ACTION_PAUSE,
                .revert_halt = 1,
                .max_rebooting = 4,
                .max_rebooting_relay = 1,
                .attempts = 3,
                .retry_delay_s = 10,
                .retry_delay_max_s = 600,
        };
}

uint32_t rollout_count_resolve(const struct rollout_count *c, size_t total) {
        uint64_t v;

        if (!c->percent)
                return c->value;
        v = ((uint64_t) total * c->value + 99) / 100;
        return v > UINT32_MAX ? UINT32_MAX : (uint32_t) v;
}

/* ---- membership ---- */

static bool strv_contains(const char *const *strv, size_t n, const char *s) {
        for (size_t i = 0; i < n; i++)
                if (strv[i] && streq(strv[i], s))
                        return true;
        return false;
}

static bool filter_transport_matches(const struct rollout_filter *f, const char *transport) {
        if (f->n_transports == 0)
                return true;
        for (size_t i = 0; transport && i < f->n_transports; i++)
                if (streq(f->transports[i], transport))
                        return true;
        return false;
}

static bool filter_labels_match(const struct rollout_filter *f, const struct rollout_candidate *c) {
        for (size_t i = 0; i < f->n_labels; i++)
                if (!strv_contains(c->labels, c->n_labels, f->labels[i]))
                        return false;
        return true;
}

/* An empty term matches anything; a set term nothing unknown. */
static bool text_term_matches(const char *term, const char *value) {
        return term[0] == '\0' || (value && strcasecmp(term, value) == 0);
}

static int version_compare(const struct mcuboot_version *a, const struct mcuboot_version *b) {
        if (a->major != b->major)
                return a->major < b->major ? -1 : 1;
        if (a->minor != b->minor)
                return a->minor < b->minor ? -1 : 1;
        if (a->revision != b->revision)
                return a->revision < b->revision ? -1 : 1;
        if (a->build != b->build)
                return a->build < b->build ? -1 : 1;
        return 0;
}

bool rollout_filter_matches(const struct rollout_filter *f, const struct rollout_candidate *c) {
        if (!filter_transport_matches(f, c->transport))
                return false;
        if (f->name[0] && fnmatch(f->name, c->name ? c->name : "", FNM_CASEFOLD) != 0)
                return false;
        if (!filter_labels_match(f, c))
                return false;
        if (!text_term_matches(f->board, c->board) || !text_term_matches(f->app, c->app))
                return false;
        if (f->has_version_below && (!c->has_version || version_compare(&c->version, &f->version_below) >= 0))
                return false;
        return true;
}

enum rollout_skip_reason rollout_filter_unknown(const struct rollout_filter *f, const struct rollout_candidate *c) {
        struct rollout_candidate known = *c;
        bool board_unknown = f->board[0] && !c->board, app_unknown = f->app[0] && !c->app;

        if ((!board_unknown && !app_unknown) || rollout_filter_matches(f, c))
                return ROLLOUT_SKIP_NONE;
        /* As if it told what the terms ask: does anything else fail? */
        if (board_unknown)
                known.board = f->board;
        if (app_unknown)
                known.app = f->app;
        if (!rollout_filter_matches(f, &known))
                return ROLLOUT_SKIP_NONE;
        return board_unknown ? ROLLOUT_SKIP_UNKNOWN_BOARD : ROLLOUT_SKIP_UNKNOWN_APP;
}

enum rollout_skip_reason rollout_candidate_skip(const struct rollout_candidate *c,
                                                const struct rollout_image_facts *image) {
        if (c->active_hash && image->hash && strcasecmp(c->active_hash, image->hash) == 0 && c->active_confirmed)
                return ROLLOUT_SKIP_ALREADY_RUNNING;
        if (image->n_boards > 0 && !c->board)
                return ROLLOUT_SKIP_UNKNOWN_BOARD;
        if (!image_boards_accept(image->boards, image->n_boards, c->board))
                return ROLLOUT_SKIP_INCOMPATIBLE_BOARD;
        if (c->slot_size > 0 && image->size > c->slot_size)
                return ROLLOUT_SKIP_IMAGE_TOO_LARGE;
        if (c->absent)
                return ROLLOUT_SKIP_ABSENT;
        return ROLLOUT_SKIP_NONE;
}

bool rollout_labels_relay(const char *const *labels, size_t n_labels) {
        return strv_contains(labels, n_labels, "relay") || strv_contains(labels, n_labels, "proxy");
}

static bool candidate_stale(const struct rollout_candidate *c, uint64_t now_usec, uint64_t absent_after_usec) {
        return c->last_seen_usec < now_usec && now_usec - c->last_seen_usec > absent_after_usec;
}

int rollout_candidate_order(const struct rollout_candidate *a, const struct rollout_candidate *b, uint64_t now_usec,
                            uint64_t absent_after_usec) {
        bool stale_a = candidate_stale(a, now_usec, absent_after_usec);
        bool stale_b = candidate_stale(b, now_usec, absent_after_usec);
        bool known_a = a->rate > 0, known_b = b->rate > 0;

        if (stale_a != stale_b)
                return stale_a ? 1 : -1;
        if (known_a != known_b)
                return known_a ? -1 : 1;
        if (known_a && a->rate != b->rate)
                return a->rate > b->rate ? -1 : 1;
        return a->id < b->id ? -1 : a->id > b->id;
}

/* ---- waves ---- */

void rollout_waves_compute(const struct rollout_policy *p, size_t n_members, struct rollout_waves *ret) {
        uint32_t n = n_members > UINT32_MAX ? UINT32_MAX : (uint32_t) n_members;
        uint32_t canary, size, rest;

        if (n == 0) {
                *ret = (struct rollout_waves) {};
                return;
        }
        canary = MIN(MAX(rollout_count_resolve(&p->canary, n), 1u), n);
        size = MAX(rollout_count_resolve(&p->wave_size, n), 1u);
        rest = n - canary;
        *ret = (struct rollout_waves) {
                .canary = canary,
                .wave_size = size,
                .n_waves = 1 + rest / size + (rest % size != 0),
        };
}

uint32_t rollout_wave_of(const struct rollout_waves *w, size_t position) {
        if (position < w->canary)
                return 0;
        return 1 + (uint32_t) ((position - w->canary) / w->wave_size);
}

uint32_t rollout_wave_for_joiner(uint32_t n_waves, uint32_t waves_started) {
        return waves_started < n_waves ? waves_started : n_waves;
}

/* qsort_r() context for the member order. */
struct order_ctx {
        const struct rollout_candidate *candidates;
        uint64_t now_usec, absent_after_usec;
};

static int assignment_order_compare(const void *x, const void *y, void *userdata) {
        const struct rollout_assignment *a = x, *b = y;
        const struct order_ctx *ctx = userdata;

        return rollout_candidate_order(&ctx->candidates[a->candidate], &ctx->candidates[b->candidate],
                                       ctx->now_usec, ctx->absent_after_usec);
}

static int assignment_id_compare(const void *x, const void *y) {
        const struct rollout_assignment *a = x, *b = y;
        return a->device_id < b->device_id ? -1 : a->device_id > b->device_id;
}

/* The members (matching the filter), updated ones first; -EINVAL on a
 * repeated id. */
static int layout_collect(const struct rollout_policy *p, const struct rollout_image_facts *image,
                          const struct rollout_candidate *candidates, size_t n, struct rollout_layout *l) {
        _cleanup_free_ struct rollout_assignment *sorted = NULL;
        size_t n_all = 0, next_updated = 0;

        l->members = calloc(MAX(n, (size_t) 1), sizeof(*l->members));
        if (!l->members)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                enum rollout_skip_reason unknown = ROLLOUT_SKIP_NONE, skip;

                if (p->has_filter && !rollout_filter_matches(&p->filter, &candidates[i])) {
                        unknown = rollout_filter_unknown(&p->filter, &candidates[i]);
                        if (unknown == ROLLOUT_SKIP_NONE)
                                continue;
                }
                skip = rollout_candidate_skip(&candidates[i], image);
                l->members[n_all++] = (struct rollout_assignment) {
                        .candidate = i,
                        .device_id = candidates[i].id,
                        .skip = skip != ROLLOUT_SKIP_NONE ? skip : unknown,
                        .order_key = UINT32_MAX,
                        .wave = UINT32_MAX,
                };
        }
        qsort(l->members, n_all, sizeof(*l->members), assignment_id_compare);
        for (size_t i = 1; i < n_all; i++)
                if (l->members[i].device_id == l->members[i - 1].device_id)
                        return -EINVAL;
        /* Updated members to the front, keeping the skipped ones by id. */
        for (size_t i = 0; i < n_all; i++)
                if (l->members[i].skip == ROLLOUT_SKIP_NONE)
                        l->n_updated++;
        sorted = l->members;
        l->members = calloc(MAX(n, (size_t) 1), sizeof(*l->members));
        if (!l->members)
                return -ENOMEM;
        for (size_t i = 0, skipped_at = l->n_updated; i < n_all; i++) {
                if (sorted[i].skip == ROLLOUT_SKIP_NONE)
                        l->members[next_updated++] = sorted[i];
                else
                        l->members[skipped_at++] = sorted[i];
        }
        l->n_skipped = n_all - l->n_updated;
        return 0;
}

int rollout_layout_build(const struct rollout_policy *p, const struct rollout_image_facts *image,
                         const struct rollout_candidate *candidates, size_t n_candidates, uint64_t now_usec,
                         uint64_t absent_after_usec, struct rollout_layout *ret) {
        struct rollout_layout l = {};
        struct order_ctx ctx = { candidates, now_usec, absent_after_usec };
        int r;

        if (n_candidates > UINT32_MAX)
                return -E2BIG;
        r = layout_collect(p, image, candidates, n_candidates, &l);
        if (r < 0) {
                rollout_layout_done(&l);
                return r;
        }
        qsort_r(l.members, l.n_updated, sizeof(*l.members), assignment_order_compare, &ctx);
        rollout_waves_compute(p, l.n_updated, &l.waves);
        for (size_t i = 0; i < l.n_updated; i++) {
                l.members[i].order_key = (uint32_t) i;
                l.members[i].wave = rollout_wave_of(&l.waves, i);
        }
        *ret = l;
        return 0;
}

void rollout_layout_done(struct rollout_layout *l) {
        if (!l)
                return;
        free(l->members);
        *l = (struct rollout_layout) {};
}

/* ---- during the run ---- */

uint32_t rollout_failure_threshold_of(const struct rollout_policy *p, uint32_t members) {
        uint32_t t = rollout_count_resolve(&p->failure_threshold, members);
        return MAX(MIN(t, members), 1u);
}

static void verdict_set(struct rollout_verdict *v, enum rollout_verdict_kind kind, enum rollout_halt_reason reason) {
        v->kind = kind;
        v->reason = reason;
        v->sentence[0] = '\0';
}

void rollout_wave_evaluate(const struct rollout_policy *p, uint32_t wave, const struct rollout_wave_tally *t,
                           uint32_t reverted_total, struct rollout_verdict *ret) {
        uint32_t threshold = rollout_failure_threshold_of(p, t->members);
        bool threshold_hit = t->members > 0 && t->failed >= threshold;
        bool revert_hit = p->revert_halt > 0 && reverted_total >= p->revert_halt;

        if (threshold_hit && (p->failure_action == ROLLOUT_ACTION_ABORT || !revert_hit)) {
                bool abort = p->failure_action == ROLLOUT_ACTION_ABORT;
                verdict_set(ret, abort ? ROLLOUT_VERDICT_ABORT : ROLLOUT_VERDICT_PAUSE, ROLLOUT_HALT_FAILURE_THRESHOLD);
                snprintf(ret->sentence, sizeof(ret->sentence),
                         "wave %u%s: %u of %u members failed, the failure threshold is %u", wave,
                         wave == 0 ? " (the canary)" : "", t->failed, t->members, threshold);
        } else if (revert_hit) {
                verdict_set(ret, ROLLOUT_VERDICT_PAUSE, ROLLOUT_HALT_REVERTED);
                snprintf(ret->sentence, sizeof(ret->sentence),
                         "%u member%s went back to the old image, revert_halt is %u", reverted_total,
                         reverted_total == 1 ? "" : "s", p->revert_halt);
        } else if (t->finished >= t->members)
                verdict_set(ret, ROLLOUT_VERDICT_WAVE_DONE, ROLLOUT_HALT_NONE);
        else
                verdict_set(ret, ROLLOUT_VERDICT_RUNNING, ROLLOUT_HALT_NONE);
}

bool rollout_may_reboot(const struct rollout_policy *p, const struct rollout_reboots *now, bool relay) {
        if (now->rebooting >= p->max_rebooting)
                return false;
        return !relay || now->rebooting_relay < p->max_rebooting_relay;
}

bool rollout_may_activate(const struct rollout_activation_gate *g) {
        return g->staged && g->wave_open && g->reboot_allowed && (g->forced || g->window_open);
}

uint64_t rollout_job_priority(enum rollout_phase phase, uint32_t wave, uint32_t order_key) {
        uint64_t w = MIN(wave, UINT32_C(0xffffff));
        return ((uint64_t) phase << 56) | (w << 32) | order_key;
}

uint64_t rollout_retry_delay_usec(const struct rollout_policy *p, uint32_t failed_attempts, double unit_random) {
        double delay = p->retry_delay_s, cap = MAX(p->retry_delay_max_s, 1u);
        double u = unit_random < 0 ? 0 : unit_random >= 1 ? 1 : unit_random;

        for (uint32_t i = 1; i < failed_attempts && delay < cap; i++)
                delay *= 2;
        delay = MIN(delay, cap);
        /* Rounded to the nearest µs (positive: no libm needed). */
        return (uint64_t) (delay * (0.8 + 0.4 * u) * 1e6 + 0.5);
}
