/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine's rollout calls (doc/rollouts.md): what REST, D-Bus and
 * smpgwctl ask of the rollout layer, with refusals as in engine.h
 * (a negative errno and one sentence).  A rollout is described by one
 * JSON object, the same for every front end (REST's body; D-Bus turns
 * its a{sv} into it):
 *
 *   {"image": ID, "name": S, "mode": M,
 *    "targets": {"devices": [SPEC, ...]} | {"filter": {...}},
 *    "schedule": {"start_at": T, "deadline": T, "windows": [...], "timezone": Z, "staging": B},
 *    "policy": {...}}
 *
 * Errnos beyond engine.h's: -EALREADY a rollout finished already;
 * -EBUSY a control that does not apply in the rollout's state (resume a
 * running one); -E2BIG ROLLOUTS_MAX unfinished rollouts, or too many
 * members.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct manager;
struct rollout;
struct rollout_member;
struct rollout_executor;
struct engine_error;

/* Loads the rollouts, follows job and device events, resumes what was
 * running.  At manager start, after the jobs are loaded. */
int rollout_executor_new(struct manager *m, struct rollout_executor **ret);
/* SIGTERM: writes what is dirty, stops the timers; jobs stop as usual. */
void rollout_executor_stop(struct rollout_executor *x);
struct rollout_executor *rollout_executor_free(struct rollout_executor *x);
/* Every rollout, oldest first. */
struct rollout *const *rollout_executor_list(struct rollout_executor *x, size_t *ret_n);
/* Takes a finished r out of the executor's list (manager_remove_rollout()
 * frees it later); NULL-safe. */
void rollout_executor_detach(struct rollout_executor *x, struct rollout *r);

int engine_rollout_create(struct manager *m, const json_t *spec, struct rollout **ret, struct engine_error *e);
/* A rollout by its decimal id. */
int engine_rollout_find(struct manager *m, const char *spec, struct rollout **ret, struct engine_error *e);

struct engine_rollout_query {
        const char *state; /* a rollout state; NULL: any */
        uint64_t offset;
        unsigned limit; /* 0: all */
};
/* Newest first. */
int engine_rollout_query(struct manager *m, const struct engine_rollout_query *q, struct rollout ***ret, size_t *ret_n,
                         uint64_t *ret_total, struct engine_error *e);

struct engine_rollout_member_query {
        const char *state; /* a member state; NULL: any */
        const char *wave;  /* a wave number; NULL: any */
        uint64_t offset;
        unsigned limit;
};
/* In member order (waves, then order key; skipped members last). */
int engine_rollout_members_query(struct manager *m, struct rollout *r, const struct engine_rollout_member_query *q,
                                 struct rollout_member ***ret, size_t *ret_n, uint64_t *ret_total,
                                 struct engine_error *e);

/* pause: no new jobs start, running ones finish; resume: a paused (by a
 * user or a threshold) rollout goes on, its halting wave judged anew
 * with its failures forgiven; cancel: no new jobs, uploads stop, a
 * member told to test is followed through to confirm or revert;
 * activate: windows are no longer waited for. */
int engine_rollout_pause(struct manager *m, struct rollout *r, struct engine_error *e);
int engine_rollout_resume(struct manager *m, struct rollout *r, struct engine_error *e);
int engine_rollout_cancel(struct manager *m, struct rollout *r, struct engine_error *e);
int engine_rollout_activate(struct manager *m, struct rollout *r, struct engine_error *e);

/* A dry run: of a spec (r NULL), or of a rollout re-planned from now with
 * its remaining members (spec NULL).  *ret: {"waves": [...], "skipped":
 * [...], "estimate": {...}}. */
int engine_rollout_plan(struct manager *m, const json_t *spec, struct rollout *r, json_t **ret, struct engine_error *e);

/* The path of one group of a rollout's mesh targets (the same wave, one
 * Distributor), as the plan chooses it: direct_ids[i] is the direct
 * device of ids[i] (rollout_mesh_direct_device()), 0 for none.
 * *ret_direct: the targets with a direct device go as jobs to it (the
 * others through the Distributor anyway); reason: why, as the plan says
 * it.  By the rollout's mesh_path: auto takes the faster estimate. */
int engine_rollout_mesh_choose(struct manager *m, struct rollout *r, uint64_t distributor_id, const uint64_t *ids,
                               const uint64_t *direct_ids, size_t n, bool *ret_direct, char *reason,
                               size_t reason_size);
/* A mesh target's direct device if it can take a job (known, no mesh
 * target, not absent), else NULL. */
struct device *rollout_mesh_direct_device(struct manager *m, const struct device *target);
