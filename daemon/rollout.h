/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A rollout: one image pushed to many devices in waves, inside
 * maintenance windows, stopping by itself when too many fail
 * (doc/rollouts.md).  rollout.c is the object: its spec (parsed from the
 * JSON every front end passes through), its members, its states, its
 * rows (rollout, rollout_member) and its JSON form.  rollout-executor.c
 * drives it: it creates the members' jobs, follows them through the
 * manager's job events, judges waves, soaks, retries.  The rules it
 * decides with are rollout-policy.h and rollout-window.h, the same the
 * planner (rollout-plan.h) simulates.
 *
 * Persistence: every change marks the rollout dirty; one deferred
 * source per loop iteration writes the dirty rollouts and members in
 * one transaction, so a kill -9 loses at most the decisions of the loop
 * iteration it hit, and the executor re-derives those at the next start
 * from the jobs (which carry their rollout id).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "rollout-policy.h"
#include "rollout-window.h"
#include "smpgw/smp-update.h"
#include "smpgwd-limits.h"
#include "tz.h"

struct manager;
struct device;
struct job;
struct engine_error;

enum rollout_state {
        ROLLOUT_SCHEDULED, /* before start_at */
        ROLLOUT_RUNNING,
        ROLLOUT_PAUSED, /* by a user, or a threshold/revert (paused_reason) */
        ROLLOUT_COMPLETED,
        ROLLOUT_CANCELLED,
        ROLLOUT_ABORTED, /* error says why */
        _ROLLOUT_STATE_MAX,
        _ROLLOUT_STATE_INVALID = -EINVAL,
};

/* The reason column of a member: a skip reason, a failure reason, or
 * "waiting: ..." for a pending member's note. */
#define ROLLOUT_REASON_SIZE 48u

/* The path a mesh target's member took (doc/rollouts.md, "Choosing the
 * path"): none yet (and every member that is no mesh target), through
 * its Distributor (distribution_id), or a job to its direct device
 * (job_id).  Not stored: a member's job or distribution says it. */
enum rollout_member_path {
        ROLLOUT_MEMBER_PATH_NONE,
        ROLLOUT_MEMBER_PATH_DISTRIBUTOR,
        ROLLOUT_MEMBER_PATH_DIRECT,
};

struct rollout_member {
        uint64_t device_id;
        uint32_t wave;      /* UINT32_MAX: skipped */
        uint32_t order_key; /* UINT32_MAX: skipped */
        enum rollout_member_state state;
        char reason[ROLLOUT_REASON_SIZE];
        uint64_t job_id;            /* its current or last job, 0: none */
        uint64_t distribution_id;   /* a mesh target: its current or last distribution, 0: none */
        uint32_t attempts;          /* jobs it was given */
        uint64_t next_attempt_usec; /* CLOCK_REALTIME; 0: at once */
        uint64_t bytes_sent;
        uint64_t updated_usec;
        bool relay;                     /* labelled relay or proxy at joining */
        bool reverted;                  /* failed because it went back to its old image */
        uint64_t next_attempt_boottime; /* runtime: the same on CLOCK_BOOTTIME (0: after a restart,
                                         * next_attempt_usec counts) */
        bool in_flight;                 /* runtime: its job is unfinished */
        bool probing;                   /* runtime: its soak check probe is out */
        bool has_mesh_phase;            /* runtime: mesh_phase was read from its distribution */
        uint8_t mesh_phase;             /* runtime: enum smp_mesh_dfu_phase of its target */
        enum rollout_member_path path;  /* runtime: a mesh target's path, from its job or distribution */
        bool dirty;
        /* Only bytes_sent changed: written with the member's next change
         * (or the rollout's), not on its own; the job's row keeps the
         * upload's progress for a restart. */
        bool progress_dirty;
};

struct rollout_schedule {
        uint64_t start_at_usec; /* CLOCK_REALTIME; 0: at creation */
        uint64_t deadline_usec; /* 0: none */
        struct rollout_windows windows;
        bool has_zone;
        struct tz_zone zone;
        bool staging;
};

struct rollout {
        struct manager *manager;
        uint64_t id;
        char *name; /* may be NULL */
        char image_id[IMAGE_ID_LEN + 1];
        uint64_t image_size;
        enum smp_update_mode mode;
        enum rollout_state state;
        uint64_t created_usec, started_usec, finished_usec, updated_usec;
        json_t *targets, *schedule_json, *policy_json; /* as stored, normalised */
        struct rollout_policy policy;
        struct rollout_schedule schedule;
        uint32_t current_wave, n_waves;
        uint64_t soak_until_usec; /* CLOCK_REALTIME end of the current wave's soak; 0: none */
        bool activate_now;
        /* A resume forgives what halted the rollout: failures in that
         * wave and reverts so far no longer count towards the limits. */
        uint32_t forgiven_wave, forgiven_failures, forgiven_reverts;
        char *error;         /* aborted: why; may be NULL */
        char *paused_reason; /* paused: "user", "failure-threshold: ...", "reverted: ..." */

        struct rollout_member *members;
        size_t n_members, members_alloc;

        /* runtime */
        uint64_t soak_end_boottime;       /* CLOCK_BOOTTIME end of the soak; 0: none armed */
        uint64_t probe_deadline_boottime; /* the soak check's probes answer by then */
        sd_event_source *timer;           /* CLOCK_BOOTTIME: the next thing due */
        uint64_t last_progress_emit_usec;
        double rate;            /* bytes/s summed over the members uploading now */
        uint64_t eta_usec;      /* CLOCK_REALTIME end the last estimate gave; 0: none */
        uint64_t last_eta_usec; /* when it was estimated */
        bool dirty;
};

const char *rollout_state_to_string(enum rollout_state s);
enum rollout_state rollout_state_from_string(const char *s);
bool rollout_is_finished(const struct rollout *r);

struct rollout *rollout_free(struct rollout *r);
struct rollout_member *rollout_find_member(struct rollout *r, uint64_t device_id);

/* What a spec (the create body) says, checked.  Owned strings/JSON. */
struct rollout_spec {
        char *name;
        char image_id[IMAGE_ID_LEN + 1];
        uint64_t image_size;
        enum smp_update_mode mode;
        struct rollout_policy policy; /* has_filter, filter, staging included */
        struct rollout_schedule schedule;
        uint64_t *device_ids; /* explicit targets, in the order given */
        size_t n_device_ids;
        json_t *targets, *schedule_json, *policy_json;
};
void rollout_spec_done(struct rollout_spec *s);
/* Parses and checks a create body: image, name, mode, targets
 * ({"devices": [...]} or {"filter": {...}}), schedule, policy.  Refuses
 * with -EINVAL (field named), -ENOENT (image, device), -ENOTUNIQ. */
int rollout_spec_parse(struct manager *m, const json_t *body, uint64_t now_usec, struct rollout_spec *ret,
                       struct engine_error *e);

/* The schedule as stored (times as µs integers) back into its struct. */
int rollout_schedule_from_stored(const json_t *obj, struct rollout_schedule *s);

/* What the policy needs of the image a rollout pushes: its hash, size and
 * the boards the stored image declares now (borrowed from it; none when
 * it is gone). */
struct rollout_image_facts rollout_image_facts_of(struct manager *m, const char *image_id, uint64_t image_size);
/* The rollout's members from the inventory (rollout_layout_build()). */
int rollout_spec_layout(struct manager *m, const struct rollout_spec *s, uint64_t now_usec, struct rollout_layout *ret,
                        struct rollout_candidate **ret_candidates, size_t *ret_n_candidates);
/* Frees candidates made by rollout_spec_layout() / rollout_candidate_of(). */
void rollout_candidates_free(struct rollout_candidate *c, size_t n);
/* One device's facts for the policy; its strings borrowed from d except
 * active_hash, board and app (read from its OS info, os-info.h): owned
 * by *ret, freed by rollout_candidate_done() or rollout_candidates_free(). */
int rollout_candidate_of(struct manager *m, const struct device *d, struct rollout_candidate *ret);
void rollout_candidate_done(struct rollout_candidate *c);

/* Appends a member.  -ENOMEM, -E2BIG past ROLLOUT_MEMBERS_MAX. */
int rollout_add_member(struct rollout *r, const struct rollout_member *mem);
/* Records a change: dirty, updated time, the write deferred. */
void rollout_changed(struct rollout *r);
void rollout_member_changed(struct rollout *r, struct rollout_member *mem);

/* The JSON form REST, SSE and D-Bus Plan show. */
json_t *rollout_to_json(const struct rollout *r);
json_t *rollout_member_to_json(const struct rollout_member *mem);
/* Counts of members by state. */
void rollout_count_states(const struct rollout *r, uint32_t counts[static _ROLLOUT_MEMBER_STATE_MAX]);
/* Bytes sent and total over the members to update. */
void rollout_bytes(const struct rollout *r, uint64_t *ret_sent, uint64_t *ret_total);

/* ---- persistence (db-rollout.c) ---- */
struct db;
int db_rollout_insert(struct db *db, struct rollout *r);
/* Writes the rollout row (when dirty) and its dirty members. */
int db_rollout_write(struct db *db, struct rollout *r);
int db_rollout_delete(struct db *db, uint64_t id);
/* Loads every rollout with its members (calls fn for each, which takes it). */
int db_rollouts_load(struct db *db, struct manager *m, int (*fn)(struct manager *m, struct rollout *r));

/* Parses RFC 3339 ("2026-12-05T03:00:00Z", "…+01:00", fractions) into
 * CLOCK_REALTIME µs.  -EINVAL. */
int rollout_parse_time(const char *s, uint64_t *ret_usec);
