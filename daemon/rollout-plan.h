/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A rollout's estimate: a discrete-event simulation of the executor,
 * deciding with the same policy functions (rollout-policy.h,
 * rollout-window.h), so the estimate follows what a run does.  Pure: the
 * caller fills the inputs from the model (measured rates, learned swap
 * times, slot limits) and gets plain data back.
 *
 * What the simulation does, member by member (each member's job):
 *
 *   stage     needs a radio slot; n_stage requests (read state, check)
 *             plus the upload, image_size / rate
 *   activate  needs a slot and a reboot token (rollout_may_reboot());
 *             mark and reset, 2 requests; then the slot is released
 *   reboot    no slot, the token held: the member's swap time
 *   verify    needs a slot: 3 requests (read state, confirm, read) in
 *             test-and-confirm mode, 1 otherwise; then the token is
 *             released and the member is done
 *
 * A request costs one round trip of the member's transport.  Slots are
 * granted at each event in the order of rollout_job_priority(): verifies
 * first, then activations, then uploads; within a phase by wave, then by
 * order key; a member whose transport, adapter or the global limit is
 * full waits and the next one is looked at (no head-of-line blocking).
 *
 * Waves: wave 0 starts at start_usec.  Without staging, a wave's jobs
 * (stage included) start when the wave starts; with staging, every
 * member's stage is queued at the start.  A member is activated only
 * when rollout_may_activate() says so: staged, its wave started, a
 * window open (or activate_now), a reboot token free.  When every member
 * of a wave is done, its soak runs; then every member is probed (one
 * request, with a slot, as a verify); then the next wave starts (with a
 * soak of 0: no probe, the next wave at once).  The last wave soaks
 * too.  Upload-only mode stops after stage (no tokens, no reboot).  Every
 * member is assumed to succeed at its first attempt.
 *
 * Slot limits mirror the job layer: max_running over all jobs, each
 * transport's max_running_<transport>, and for a member with an adapter
 * its adapter's limit (rollout_plan_adapter, or max_running_ble_adapter).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollout-policy.h"
#include "rollout-window.h"
#include "smpgw/smp-update.h"
#include "tz.h"

/* Members in one simulation; more are refused with -E2BIG. */
#define ROLLOUT_PLAN_MEMBERS_MAX 100000u
/* Transports and adapters in the tables of an input. */
#define ROLLOUT_PLAN_TABLE_MAX 64u
#define ROLLOUT_PLAN_ADAPTER_SIZE 32u

/* Requests of each phase (each costs one round trip). */
#define ROLLOUT_PLAN_STAGE_REQUESTS 2u    /* read state, check the upload */
#define ROLLOUT_PLAN_ACTIVATE_REQUESTS 2u /* mark (test or confirm), reset */
#define ROLLOUT_PLAN_VERIFY_REQUESTS 3u   /* read state, confirm, read (test-and-confirm) */
#define ROLLOUT_PLAN_PROBE_REQUESTS 1u    /* the soak check */

/* Per transport: the default rate for members without a measured one,
 * the round trip of one request, the slot limit. */
struct rollout_plan_transport {
        char name[ROLLOUT_TRANSPORT_SIZE];
        double rate;                  /* bytes/s, > 0 */
        double rtt_s;                 /* >= 0 */
        uint32_t max_running;         /* >= 1 */
};

/* A BLE adapter whose limit is not the default (learned lower). */
struct rollout_plan_adapter {
        char name[ROLLOUT_PLAN_ADAPTER_SIZE];
        uint32_t max_running;         /* >= 1 */
};

struct rollout_plan_member {
        uint64_t device_id;
        uint32_t wave;                /* the layout's wave */
        char transport[ROLLOUT_TRANSPORT_SIZE];
        char adapter[ROLLOUT_PLAN_ADAPTER_SIZE];  /* "": none */
        bool relay;                   /* rollout_labels_relay() */
        double rate;                  /* measured bytes/s; 0: the transport's default */
        double swap_s;                /* learned swap time for its board and the image size; 0: swap_default_s */
};

struct rollout_plan_input {
        const struct rollout_policy *policy;   /* soak, staging, reboot budgets */
        enum smp_update_mode mode;
        uint64_t image_size;                   /* bytes */
        uint64_t start_usec;                   /* CLOCK_REALTIME */
        uint64_t deadline_usec;                /* 0: none */
        const struct rollout_windows *windows; /* NULL or empty: always open */
        const struct tz_zone *zone;            /* the windows' zone; NULL only without windows */
        bool activate_now;                     /* the `activate` control: windows not waited for */

        /* The members to update, in order (order key = index). */
        const struct rollout_plan_member *members;
        size_t n_members;

        uint32_t max_running;                  /* global slot limit, >= 1 */
        const struct rollout_plan_transport *transports;
        size_t n_transports;
        const struct rollout_plan_adapter *adapters;
        size_t n_adapters;
        uint32_t max_running_ble_adapter;      /* an adapter not in the table; >= 1 */
        /* A transport not in the table: */
        double default_rate;                   /* bytes/s, > 0 */
        double default_rtt_s;
        double swap_default_s;                 /* a member without a learned swap time */
};

struct rollout_wave_estimate {
        uint32_t wave;
        uint32_t n_members;
        uint64_t start_usec;                   /* the wave started (earlier waves soaked) */
        uint64_t first_activation_usec;        /* its first member activated (0: upload-only) */
        uint64_t members_done_usec;            /* its last member verified */
        uint64_t end_usec;                     /* soaked and probed: the next wave may start */
};

/* What the estimate assumed for one transport its members use. */
struct rollout_estimate_transport {
        char name[ROLLOUT_TRANSPORT_SIZE];
        uint32_t n_members;
        uint32_t n_default_rate;               /* members without a measured rate */
        double default_rate;                   /* the rate assumed for those */
        double rtt_s;
        uint32_t max_running;
        bool from_table;                       /* false: default_rate/default_rtt_s/max_running */
};

struct rollout_estimate {
        uint64_t start_usec, end_usec, duration_usec;
        size_t n_waves;
        struct rollout_wave_estimate *waves;   /* owned */
        size_t n_transports;
        struct rollout_estimate_transport *transports;  /* owned, in order of first use */
        uint32_t n_default_swap;               /* members at swap_default_s */
        double swap_default_s;
        uint64_t window_wait_usec;             /* time activations were held only by closed windows */
        bool deadline_exceeded;                /* end_usec past deadline_usec */
};

/* Runs the simulation.  -EINVAL for an input out of its ranges (a rate,
 * a limit or a reboot budget of 0, a member's wave after a wave with no
 * member), -E2BIG past ROLLOUT_PLAN_MEMBERS_MAX or ROLLOUT_PLAN_TABLE_MAX,
 * -ENOENT when the windows never open, -ERANGE past TZ_USEC_MAX, -ENOMEM. */
int rollout_plan_estimate(const struct rollout_plan_input *in, struct rollout_estimate *ret);
/* Frees what it owns; NULL-safe, leaves it empty. */
void rollout_estimate_done(struct rollout_estimate *e);

/* A duration no run can beat, from link rates, slot limits and one final
 * swap: the upload time (image_size / rate, no request overheads) summed
 * over all members and divided by max_running, or summed per transport
 * and per adapter and divided by their limits, or the slowest single
 * upload, whichever is longest; or the soaks of all waves but the last,
 * if longer; plus the shortest swap time of a member (not in upload-only
 * mode), plus one soak.  Windows, reboot budgets and round trips are not
 * counted.  In µs; 0 for no members.  -EINVAL as above. */
int rollout_plan_lower_bound(const struct rollout_plan_input *in, uint64_t *ret_usec);
