/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The rollout planner's simulation (rollout-plan.h).  Time is integer µs
 * of CLOCK_REALTIME, so equal times are equal and a run is reproducible.
 *
 * Members waiting for a slot sit in queues, one per (transport, adapter)
 * group and kind of wait (verify or probe, activate, activate a relay,
 * stage), each a heap ordered by rollout_job_priority().  A scheduler
 * pass takes the best head of the queues that are not blocked, grants
 * it, or marks its queue blocked for the rest of the pass (its transport
 * or adapter is full, no reboot token, no window).  Events (a phase's
 * end, a soak's end, a window opening) are a heap ordered by time, then
 * by the order they were made in.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rollout-plan.h"
#include "util.h"

#define USEC_PER_SEC 1e6
/* Inputs beyond these are refused: they would only mean a typo. */
#define RATE_MIN 1.0               /* bytes/s */
#define RTT_MAX_S 3600.0
#define SWAP_MAX_S 86400.0
#define IMAGE_SIZE_MAX (UINT64_C(1) << 32)

/* ---- heaps ---- */

struct heap_entry {
        uint64_t key;                 /* priority or time */
        uint64_t seq;                 /* ties: first made, first out */
        uint32_t idx;                 /* member or wave */
        uint32_t kind;                /* events: enum event_kind */
};

struct heap {
        struct heap_entry *e;
        size_t n, cap;
};

static bool entry_before(const struct heap_entry *a, const struct heap_entry *b) {
        return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static void entry_swap(struct heap_entry *a, struct heap_entry *b) {
        struct heap_entry t = *a;
        *a = *b;
        *b = t;
}

static int heap_push(struct heap *h, struct heap_entry e) {
        size_t i;

        if (h->n == h->cap) {
                size_t cap = h->cap ? h->cap * 2 : 16;
                struct heap_entry *p = reallocarray(h->e, cap, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                h->e = p;
                h->cap = cap;
        }
        i = h->n++;
        h->e[i] = e;
        while (i > 0 && entry_before(&h->e[i], &h->e[(i - 1) / 2])) {
                entry_swap(&h->e[i], &h->e[(i - 1) / 2]);
                i = (i - 1) / 2;
        }
        return 0;
}

static struct heap_entry heap_pop(struct heap *h) {
        struct heap_entry top = h->e[0];
        size_t i = 0;

        h->e[0] = h->e[--h->n];
        for (;;) {
                size_t l = 2 * i + 1, r = l + 1, m = i;
                if (l < h->n && entry_before(&h->e[l], &h->e[m]))
                        m = l;
                if (r < h->n && entry_before(&h->e[r], &h->e[m]))
                        m = r;
                if (m == i)
                        break;
                entry_swap(&h->e[i], &h->e[m]);
                i = m;
        }
        return top;
}

static void heap_done(struct heap *h) {
        free(h->e);
        *h = (struct heap) {};
}

/* ---- the simulated world ---- */

enum member_state {
        M_IDLE,                       /* its wave has not started (no staging) */
        M_WANT_STAGE,
        M_STAGING,
        M_STAGED,                     /* waiting for its wave */
        M_WANT_ACTIVATE,
        M_ACTIVATING,
        M_REBOOTING,
        M_WANT_VERIFY,
        M_VERIFYING,
        M_DONE,
        M_WANT_PROBE,
        M_PROBING,
        M_PROBED,
};

/* The kinds of wait, one queue each per group. */
enum queue_kind {
        Q_VERIFY,                     /* verify and the soak check's probe */
        Q_ACTIVATE,
        Q_ACTIVATE_RELAY,
        Q_STAGE,
        _Q_MAX,
};

enum event_kind {
        EV_PHASE_END,
        EV_SOAK_END,
        EV_WAKE,                      /* a window opens */
        EV_WAVE_START,                /* the previous wave ended (an event: no recursion) */
};

struct sim_limit {
        uint32_t limit, running;
};

struct sim_transport {
        struct rollout_estimate_transport info;
        struct sim_limit slots;
};

struct sim_adapter {
        char name[ROLLOUT_PLAN_ADAPTER_SIZE];
        struct sim_limit slots;
};

/* Members sharing a transport and an adapter share queues. */
struct sim_group {
        uint32_t transport;
        int32_t adapter;              /* -1: none */
        struct heap queues[_Q_MAX];
};

struct sim_member {
        const struct rollout_plan_member *in;
        uint32_t group;
        enum member_state state;
        uint64_t stage_usec, activate_usec, swap_usec, verify_usec, probe_usec;
};

struct sim_wave {
        uint32_t n, done, probed;
        uint32_t *members;            /* n indices; owned */
        bool started, ended;
        struct rollout_wave_estimate est;
};

struct sim {
        const struct rollout_plan_input *in;
        uint64_t now;
        uint64_t seq;
        struct heap events;
        struct sim_member *members;
        struct sim_wave *waves;
        uint32_t n_waves, waves_ended;
        struct sim_transport transports[ROLLOUT_PLAN_TABLE_MAX];
        size_t n_transports;
        struct sim_adapter adapters[ROLLOUT_PLAN_TABLE_MAX];
        size_t n_adapters;
        struct sim_group *groups;
        size_t n_groups;
        struct sim_limit global;
        struct rollout_reboots reboots;
        uint32_t n_default_swap;

        /* the windows */
        struct tz_scope scope;
        bool have_state;
        struct rollout_window_state window;
        uint64_t wake_at;             /* an EV_WAKE is queued for this time; 0 none */
        uint64_t window_wait_since;   /* activations waiting on a closed window since; 0 not */
        uint64_t window_wait_usec;
};

/* Rounded to the nearest µs; s >= 0 (inputs are checked). */
static uint64_t seconds_to_usec(double s) {
        return (uint64_t) (s * USEC_PER_SEC + 0.5);
}

static bool windows_given(const struct rollout_plan_input *in) {
        return in->windows && in->windows->n > 0;
}

/* ---- setting up ---- */

static bool finite_in(double v, double lo, double hi) {
        return isfinite(v) && v >= lo && v <= hi;
}

static int input_check(const struct rollout_plan_input *in) {
        if (!in->policy || in->max_running == 0 || in->max_running_ble_adapter == 0)
                return -EINVAL;
        /* No token ever free: nobody could be activated. */
        if (in->policy->max_rebooting == 0 || in->policy->max_rebooting_relay == 0)
                return -EINVAL;
        if (in->n_members > ROLLOUT_PLAN_MEMBERS_MAX || in->n_transports > ROLLOUT_PLAN_TABLE_MAX ||
            in->n_adapters > ROLLOUT_PLAN_TABLE_MAX)
                return -E2BIG;
        if (in->image_size == 0 || in->image_size > IMAGE_SIZE_MAX ||
            !finite_in(in->default_rate, RATE_MIN, HUGE_VAL) || !finite_in(in->default_rtt_s, 0, RTT_MAX_S) ||
            !finite_in(in->swap_default_s, 0, SWAP_MAX_S))
                return -EINVAL;
        if (windows_given(in) && !in->zone)
                return -EINVAL;
        if (in->start_usec > TZ_USEC_MAX)
                return -ERANGE;
        for (size_t i = 0; i < in->n_transports; i++) {
                const struct rollout_plan_transport *t = &in->transports[i];
                if (!finite_in(t->rate, RATE_MIN, HUGE_VAL) || !finite_in(t->rtt_s, 0, RTT_MAX_S) ||
                    t->max_running == 0)
                        return -EINVAL;
        }
        for (size_t i = 0; i < in->n_adapters; i++)
                if (in->adapters[i].max_running == 0)
                        return -EINVAL;
        for (size_t i = 0; i < in->n_members; i++) {
                const struct rollout_plan_member *m = &in->members[i];
                if ((m->rate != 0 && !finite_in(m->rate, RATE_MIN, HUGE_VAL)) || !finite_in(m->swap_s, 0, SWAP_MAX_S))
                        return -EINVAL;
        }
        return 0;
}

/* The index of a member's transport in s->transports, added on first use. */
static int transport_find(struct sim *s, const char *name) {
        const struct rollout_plan_input *in = s->in;
        struct sim_transport *t;

        for (size_t i = 0; i < s->n_transports; i++)
                if (streq(s->transports[i].info.name, name))
                        return (int) i;
        if (s->n_transports >= ROLLOUT_PLAN_TABLE_MAX)
                return -E2BIG;
        t = &s->transports[s->n_transports];
        *t = (struct sim_transport) {
                .info = {
                        .default_rate = in->default_rate,
                        .rtt_s = in->default_rtt_s,
                        .max_running = in->max_running,
                },
        };
        snprintf(t->info.name, sizeof(t->info.name), "%s", name);
        for (size_t i = 0; i < in->n_transports; i++)
                if (streq(in->transports[i].name, name)) {
                        t->info.default_rate = in->transports[i].rate;
                        t->info.rtt_s = in->transports[i].rtt_s;
                        t->info.max_running = in->transports[i].max_running;
                        t->info.from_table = true;
                }
        t->slots.limit = t->info.max_running;
        return (int) s->n_transports++;
}

/* The same for an adapter; -1 for none. */
static int adapter_find(struct sim *s, const char *name) {
        struct sim_adapter *a;

        if (name[0] == '\0')
                return -1;
        for (size_t i = 0; i < s->n_adapters; i++)
                if (streq(s->adapters[i].name, name))
                        return (int) i;
        if (s->n_adapters >= ROLLOUT_PLAN_TABLE_MAX)
                return -E2BIG;
        a = &s->adapters[s->n_adapters];
        *a = (struct sim_adapter) { .slots.limit = s->in->max_running_ble_adapter };
        snprintf(a->name, sizeof(a->name), "%s", name);
        for (size_t i = 0; i < s->in->n_adapters; i++)
                if (streq(s->in->adapters[i].name, name))
                        a->slots.limit = s->in->adapters[i].max_running;
        return (int) s->n_adapters++;
}

static int group_find(struct sim *s, uint32_t transport, int32_t adapter) {
        struct sim_group *g;

        for (size_t i = 0; i < s->n_groups; i++)
                if (s->groups[i].transport == transport && s->groups[i].adapter == adapter)
                        return (int) i;
        g = reallocarray(s->groups, s->n_groups + 1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        s->groups = g;
        s->groups[s->n_groups] = (struct sim_group) { .transport = transport, .adapter = adapter };
        return (int) s->n_groups++;
}

/* The phases' durations of one member, from its transport's figures. */
static void member_durations(struct sim *s, struct sim_member *m, const struct sim_transport *t) {
        const struct rollout_plan_input *in = s->in;
        double rate = m->in->rate > 0 ? m->in->rate : t->info.default_rate;
        double rtt = t->info.rtt_s;
        double verify_requests = in->mode == SMP_UPDATE_TEST_AND_CONFIRM ? ROLLOUT_PLAN_VERIFY_REQUESTS : 1;

        m->stage_usec = seconds_to_usec(ROLLOUT_PLAN_STAGE_REQUESTS * rtt + (double) in->image_size / rate);
        m->activate_usec = seconds_to_usec(ROLLOUT_PLAN_ACTIVATE_REQUESTS * rtt);
        m->swap_usec = seconds_to_usec(m->in->swap_s > 0 ? m->in->swap_s : in->swap_default_s);
        m->verify_usec = seconds_to_usec(verify_requests * rtt);
        m->probe_usec = seconds_to_usec(ROLLOUT_PLAN_PROBE_REQUESTS * rtt);
}

static int member_setup(struct sim *s, uint32_t i) {
        struct sim_member *m = &s->members[i];
        struct sim_transport *t;
        int ti, ai, gi;

        m->in = &s->in->members[i];
        ti = transport_find(s, m->in->transport);
        if (ti < 0)
                return ti;
        ai = adapter_find(s, m->in->adapter);
        if (ai < -1)
                return ai;
        gi = group_find(s, (uint32_t) ti, ai);
        if (gi < 0)
                return gi;
        m->group = (uint32_t) gi;
        t = &s->transports[ti];
        t->info.n_members++;
        if (m->in->rate <= 0)
                t->info.n_default_rate++;
        if (m->in->swap_s <= 0)
                s->n_default_swap++;
        member_durations(s, m, t);
        return 0;
}

/* Waves 0..max, each with at least one member. */
static int waves_setup(struct sim *s) {
        const struct rollout_plan_input *in = s->in;
        uint32_t max = 0;

        for (size_t i = 0; i < in->n_members; i++)
                max = MAX(max, in->members[i].wave);
        if (in->n_members > 0 && max >= in->n_members)
                return -EINVAL;
        s->n_waves = in->n_members > 0 ? max + 1 : 0;
        s->waves = calloc(MAX(s->n_waves, 1u), sizeof(*s->waves));
        if (!s->waves)
                return -ENOMEM;
        for (size_t i = 0; i < in->n_members; i++)
                s->waves[in->members[i].wave].n++;
        for (uint32_t w = 0; w < s->n_waves; w++) {
                s->waves[w].est = (struct rollout_wave_estimate) { .wave = w, .n_members = s->waves[w].n };
                if (s->waves[w].n == 0)
                        return -EINVAL;
                s->waves[w].members = calloc(s->waves[w].n, sizeof(uint32_t));
                if (!s->waves[w].members)
                        return -ENOMEM;
                s->waves[w].n = 0;
        }
        for (uint32_t i = 0; i < in->n_members; i++) {
                struct sim_wave *wave = &s->waves[in->members[i].wave];
                wave->members[wave->n++] = i;
        }
        return 0;
}

static int sim_setup(struct sim *s, const struct rollout_plan_input *in) {
        int r;

        *s = (struct sim) { .in = in, .now = in->start_usec, .global.limit = in->max_running };
        r = input_check(in);
        if (r < 0)
                return r;
        s->members = calloc(MAX(in->n_members, (size_t) 1), sizeof(*s->members));
        if (!s->members)
                return -ENOMEM;
        for (uint32_t i = 0; i < in->n_members; i++) {
                r = member_setup(s, i);
                if (r < 0)
                        return r;
        }
        return waves_setup(s);
}

static void sim_done(struct sim *s) {
        tz_scope_leave(&s->scope);
        heap_done(&s->events);
        for (size_t g = 0; g < s->n_groups; g++)
                for (int q = 0; q < _Q_MAX; q++)
                        heap_done(&s->groups[g].queues[q]);
        free(s->groups);
        for (uint32_t w = 0; s->waves && w < s->n_waves; w++)
                free(s->waves[w].members);
        free(s->waves);
        free(s->members);
}

/* ---- events and queues ---- */

static int event_add(struct sim *s, uint64_t at, enum event_kind kind, uint32_t idx) {
        return heap_push(&s->events, (struct heap_entry) { .key = at, .seq = s->seq++, .idx = idx, .kind = kind });
}

static enum rollout_phase queue_phase(enum queue_kind q) {
        return q == Q_VERIFY ? ROLLOUT_PHASE_VERIFY : q == Q_STAGE ? ROLLOUT_PHASE_STAGE : ROLLOUT_PHASE_ACTIVATE;
}

static int enqueue(struct sim *s, uint32_t i, enum queue_kind q, enum member_state state) {
        struct sim_member *m = &s->members[i];
        uint64_t key = rollout_job_priority(queue_phase(q), m->in->wave, i);

        m->state = state;
        return heap_push(&s->groups[m->group].queues[q], (struct heap_entry) { .key = key, .seq = s->seq++, .idx = i });
}

static int enqueue_activate(struct sim *s, uint32_t i) {
        return enqueue(s, i, s->members[i].in->relay ? Q_ACTIVATE_RELAY : Q_ACTIVATE, M_WANT_ACTIVATE);
}

/* ---- slots ---- */

static struct sim_limit *adapter_slots(struct sim *s, const struct sim_group *g) {
        return g->adapter >= 0 ? &s->adapters[g->adapter].slots : NULL;
}

static bool slot_free(struct sim *s, const struct sim_group *g) {
        const struct sim_limit *a = adapter_slots(s, g);
        const struct sim_limit *t = &s->transports[g->transport].slots;

        return t->running < t->limit && (!a || a->running < a->limit);
}

static void slot_take(struct sim *s, uint32_t i, int delta) {
        const struct sim_group *g = &s->groups[s->members[i].group];
        struct sim_limit *a = adapter_slots(s, g);

        s->global.running += (uint32_t) delta;
        s->transports[g->transport].slots.running += (uint32_t) delta;
        if (a)
                a->running += (uint32_t) delta;
}

/* ---- windows ---- */

/* Whether a window is open now; when not, an EV_WAKE at its opening. */
static int window_open_now(struct sim *s, bool *ret) {
        const struct rollout_plan_input *in = s->in;
        int r;

        if (in->activate_now || !windows_given(in)) {
                *ret = true;
                return 0;
        }
        if (!s->have_state || s->now >= (s->window.open ? s->window.closes_usec : s->window.opens_usec)) {
                r = rollout_windows_state_in(in->windows, &s->scope, s->now, &s->window);
                if (r < 0)
                        return r;
                s->have_state = true;
        }
        *ret = s->window.open;
        if (!s->window.open && s->wake_at != s->window.opens_usec) {
                s->wake_at = s->window.opens_usec;
                return event_add(s, s->wake_at, EV_WAKE, 0);
        }
        return 0;
}

/* ---- phases ---- */

static int phase_start(struct sim *s, uint32_t i, enum member_state state, uint64_t duration) {
        s->members[i].state = state;
        return event_add(s, s->now + duration, EV_PHASE_END, i);
}

/* Grants a slot to the head of queue q of group g, or says why not:
 * 1 granted, 0 the queue is blocked, -EAGAIN no slot anywhere. */
static int grant(struct sim *s, struct sim_group *g, enum queue_kind q, bool window_open) {
        uint32_t i = g->queues[q].e[0].idx;
        struct sim_member *m = &s->members[i];
        int r;

        if (s->global.running >= s->global.limit)
                return -EAGAIN;
        if (!slot_free(s, g))
                return 0;
        if (q == Q_ACTIVATE || q == Q_ACTIVATE_RELAY) {
                struct rollout_activation_gate gate = {
                        .staged = true,
                        .wave_open = s->waves[m->in->wave].started,
                        .window_open = window_open,
                        .forced = s->in->activate_now,
                        .reboot_allowed = rollout_may_reboot(s->in->policy, &s->reboots, m->in->relay),
                };
                if (!rollout_may_activate(&gate))
                        return 0;
                s->reboots.rebooting++;
                s->reboots.rebooting_relay += m->in->relay;
                if (s->waves[m->in->wave].est.first_activation_usec == 0)
                        s->waves[m->in->wave].est.first_activation_usec = s->now;
        }
        (void) heap_pop(&g->queues[q]);
        slot_take(s, i, +1);
        switch (q) {
        case Q_VERIFY:
                r = m->state == M_WANT_PROBE ? phase_start(s, i, M_PROBING, m->probe_usec)
                                             : phase_start(s, i, M_VERIFYING, m->verify_usec);
                break;
        case Q_ACTIVATE:
        case Q_ACTIVATE_RELAY:
                r = phase_start(s, i, M_ACTIVATING, m->activate_usec);
                break;
        default:
                r = phase_start(s, i, M_STAGING, m->stage_usec);
                break;
        }
        return r < 0 ? r : 1;
}

/* The best head among the queues not blocked; false when none. */
static bool pick(struct sim *s, const bool *blocked, size_t *ret_g, enum queue_kind *ret_q) {
        const struct heap_entry *best = NULL;

        for (size_t g = 0; g < s->n_groups; g++)
                for (int q = 0; q < _Q_MAX; q++) {
                        const struct heap *h = &s->groups[g].queues[q];
                        if (blocked[g * _Q_MAX + q] || h->n == 0 || (best && !entry_before(&h->e[0], best)))
                                continue;
                        best = &h->e[0];
                        *ret_g = g;
                        *ret_q = (enum queue_kind) q;
                }
        return best != NULL;
}

static bool activations_waiting(const struct sim *s) {
        for (size_t g = 0; g < s->n_groups; g++)
                if (s->groups[g].queues[Q_ACTIVATE].n > 0 || s->groups[g].queues[Q_ACTIVATE_RELAY].n > 0)
                        return true;
        return false;
}

/* Counts the time activations wait for a window to open. */
static void window_wait_account(struct sim *s, bool window_open) {
        bool waiting = !window_open && activations_waiting(s);

        if (waiting && s->window_wait_since == 0)
                s->window_wait_since = s->now;
        else if (!waiting && s->window_wait_since != 0) {
                s->window_wait_usec += s->now - s->window_wait_since;
                s->window_wait_since = 0;
        }
}

/* One scheduler pass at s->now. */
static int schedule(struct sim *s, bool *blocked) {
        bool window_open;
        /* pick() sets both when it returns true; armhf's gcc 12 -O2
         * cannot see that (-Wmaybe-uninitialized). */
        size_t g = 0;
        enum queue_kind q = 0;
        int r;

        r = window_open_now(s, &window_open);
        if (r < 0)
                return r;
        window_wait_account(s, window_open);
        memset(blocked, 0, s->n_groups * _Q_MAX * sizeof(*blocked));
        while (pick(s, blocked, &g, &q)) {
                r = grant(s, &s->groups[g], q, window_open);
                if (r == -EAGAIN)
                        break;
                if (r < 0)
                        return r;
                if (r == 0)
                        blocked[g * _Q_MAX + q] = true;
        }
        return 0;
}

/* ---- waves ---- */

static int member_done(struct sim *s, uint32_t i);

/* A member staged while its wave runs: activate it, or in upload-only
 * mode it is done. */
static int member_staged(struct sim *s, uint32_t i) {
        if (s->in->mode == SMP_UPDATE_UPLOAD_ONLY)
                return member_done(s, i);
        return enqueue_activate(s, i);
}

static int wave_start(struct sim *s, uint32_t w) {
        struct sim_wave *wave = &s->waves[w];
        int r = 0;

        wave->started = true;
        wave->est.start_usec = s->now;
        for (uint32_t k = 0; k < wave->n && r >= 0; k++) {
                uint32_t i = wave->members[k];
                if (s->members[i].state == M_IDLE)
                        r = enqueue(s, i, Q_STAGE, M_WANT_STAGE);
                else if (s->members[i].state == M_STAGED)
                        r = member_staged(s, i);
        }
        return r;
}

static int wave_end(struct sim *s, uint32_t w) {
        s->waves[w].ended = true;
        s->waves[w].est.end_usec = s->now;
        s->waves_ended++;
        return w + 1 < s->n_waves ? event_add(s, s->now, EV_WAVE_START, w + 1) : 0;
}

static int member_done(struct sim *s, uint32_t i) {
        uint32_t w = s->members[i].in->wave;
        struct sim_wave *wave = &s->waves[w];

        s->members[i].state = M_DONE;
        if (++wave->done < wave->n)
                return 0;
        wave->est.members_done_usec = s->now;
        if (s->in->policy->soak_s > 0)
                return event_add(s, s->now + (uint64_t) s->in->policy->soak_s * TZ_USEC_PER_SEC, EV_SOAK_END, w);
        return wave_end(s, w);
}

static int soak_end(struct sim *s, uint32_t w) {
        struct sim_wave *wave = &s->waves[w];
        int r = 0;

        for (uint32_t k = 0; k < wave->n && r >= 0; k++)
                r = enqueue(s, wave->members[k], Q_VERIFY, M_WANT_PROBE);
        return r;
}

static int phase_end(struct sim *s, uint32_t i) {
        struct sim_member *m = &s->members[i];
        struct sim_wave *wave = &s->waves[m->in->wave];

        switch (m->state) {
        case M_STAGING:
                slot_take(s, i, -1);
                m->state = M_STAGED;
                return wave->started ? member_staged(s, i) : 0;
        case M_ACTIVATING:
                slot_take(s, i, -1);
                return phase_start(s, i, M_REBOOTING, m->swap_usec);
        case M_REBOOTING:
                return enqueue(s, i, Q_VERIFY, M_WANT_VERIFY);
        case M_VERIFYING:
                slot_take(s, i, -1);
                s->reboots.rebooting--;
                s->reboots.rebooting_relay -= m->in->relay;
                return member_done(s, i);
        case M_PROBING:
                slot_take(s, i, -1);
                m->state = M_PROBED;
                return ++wave->probed == wave->n ? wave_end(s, m->in->wave) : 0;
        default:
                return -EIO;   /* no phase of this state ends */
        }
}

static int event_run(struct sim *s, const struct heap_entry *ev) {
        switch (ev->kind) {
        case EV_PHASE_END:
                return phase_end(s, ev->idx);
        case EV_SOAK_END:
                return soak_end(s, ev->idx);
        case EV_WAVE_START:
                return wave_start(s, ev->idx);
        default:
                if (s->wake_at == ev->key)
                        s->wake_at = 0;
                return 0;   /* the pass that follows looks at the window */
        }
}

static int sim_run(struct sim *s) {
        _cleanup_free_ bool *blocked = calloc(MAX(s->n_groups, (size_t) 1) * _Q_MAX, sizeof(bool));
        int r = 0;

        if (!blocked)
                return -ENOMEM;
        if (s->in->policy->staging)
                for (uint32_t i = 0; i < s->in->n_members && r >= 0; i++)
                        r = enqueue(s, i, Q_STAGE, M_WANT_STAGE);
        if (r >= 0 && s->n_waves > 0)
                r = wave_start(s, 0);
        if (r >= 0)
                r = schedule(s, blocked);
        while (r >= 0 && s->waves_ended < s->n_waves) {
                if (s->events.n == 0)
                        return -EDEADLK;   /* members wait for what never comes */
                s->now = s->events.e[0].key;
                while (r >= 0 && s->events.n > 0 && s->events.e[0].key == s->now) {
                        struct heap_entry ev = heap_pop(&s->events);
                        r = event_run(s, &ev);
                }
                if (r >= 0)
                        r = schedule(s, blocked);
                if (r >= 0 && s->now > TZ_USEC_MAX)
                        r = -ERANGE;
        }
        return r;
}

/* ---- the estimate ---- */

static int estimate_fill(struct sim *s, struct rollout_estimate *e) {
        const struct rollout_plan_input *in = s->in;

        *e = (struct rollout_estimate) {
                .start_usec = in->start_usec,
                .end_usec = s->n_waves > 0 ? s->waves[s->n_waves - 1].est.end_usec : in->start_usec,
                .n_waves = s->n_waves,
                .n_transports = s->n_transports,
                .n_default_swap = s->n_default_swap,
                .swap_default_s = in->swap_default_s,
                .window_wait_usec = s->window_wait_usec,
        };
        e->duration_usec = e->end_usec - e->start_usec;
        e->deadline_exceeded = in->deadline_usec > 0 && e->end_usec > in->deadline_usec;
        e->waves = calloc(MAX(s->n_waves, 1u), sizeof(*e->waves));
        e->transports = calloc(MAX(s->n_transports, (size_t) 1), sizeof(*e->transports));
        if (!e->waves || !e->transports) {
                rollout_estimate_done(e);
                return -ENOMEM;
        }
        for (uint32_t w = 0; w < s->n_waves; w++)
                e->waves[w] = s->waves[w].est;
        for (size_t t = 0; t < s->n_transports; t++)
                e->transports[t] = s->transports[t].info;
        return 0;
}

int rollout_plan_estimate(const struct rollout_plan_input *in, struct rollout_estimate *ret) {
        struct sim s;
        int r;

        r = sim_setup(&s, in);
        if (r >= 0 && windows_given(in) && !in->activate_now)
                r = tz_scope_enter(&s.scope, in->zone);
        if (r >= 0)
                r = sim_run(&s);
        if (r >= 0)
                r = estimate_fill(&s, ret);
        sim_done(&s);
        return r;
}

void rollout_estimate_done(struct rollout_estimate *e) {
        if (!e)
                return;
        free(e->waves);
        free(e->transports);
        *e = (struct rollout_estimate) {};
}

/* ---- the lower bound ---- */

/* The upload time, in seconds, the busiest limit needs: every member's
 * image_size / rate, summed per limit and divided by it. */
static double upload_bound(struct sim *s) {
        double global = 0, slowest = 0, per_transport[ROLLOUT_PLAN_TABLE_MAX] = {},
               per_adapter[ROLLOUT_PLAN_TABLE_MAX] = {}, bound;

        for (size_t i = 0; i < s->in->n_members; i++) {
                const struct sim_member *m = &s->members[i];
                const struct sim_group *g = &s->groups[m->group];
                double rate = m->in->rate > 0 ? m->in->rate : s->transports[g->transport].info.default_rate;
                double up = (double) s->in->image_size / rate;

                global += up;
                slowest = MAX(slowest, up);
                per_transport[g->transport] += up;
                if (g->adapter >= 0)
                        per_adapter[g->adapter] += up;
        }
        bound = MAX(slowest, global / s->global.limit);
        for (size_t t = 0; t < s->n_transports; t++)
                bound = MAX(bound, per_transport[t] / s->transports[t].slots.limit);
        for (size_t a = 0; a < s->n_adapters; a++)
                bound = MAX(bound, per_adapter[a] / s->adapters[a].slots.limit);
        return bound;
}

static double shortest_swap(const struct sim *s) {
        double best = HUGE_VAL;

        for (size_t i = 0; i < s->in->n_members; i++)
                best = MIN(best, (double) s->members[i].swap_usec / USEC_PER_SEC);
        return best;
}

int rollout_plan_lower_bound(const struct rollout_plan_input *in, uint64_t *ret_usec) {
        struct sim s;
        double soak, bound;
        int r;

        r = sim_setup(&s, in);
        if (r < 0) {
                sim_done(&s);
                return r;
        }
        if (in->n_members == 0) {
                sim_done(&s);
                *ret_usec = 0;
                return 0;
        }
        soak = in->policy->soak_s;
        bound = MAX(upload_bound(&s), soak * (s.n_waves - 1));
        if (in->mode != SMP_UPDATE_UPLOAD_ONLY)
                bound += shortest_swap(&s);
        bound += soak;
        sim_done(&s);
        *ret_usec = seconds_to_usec(bound);
        return 0;
}
