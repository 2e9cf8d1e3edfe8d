/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Retention of finished rollouts and mesh distributions
 * (doc/smpgwd.conf.md, [rollouts]).  A finished rollout (completed,
 * cancelled, aborted) is kept while it is among the newest
 * keep_finished finished ones and, when keep_finished_age is set, not
 * older than that; beyond, it goes with its members, its history rows
 * (events of type rollout-*) and its finished distributions.  Finished
 * distributions of no kept rollout (started on their own, or whose
 * rollout is gone) are bounded by the same count.  Never a running,
 * paused or scheduled rollout, nor a finished one with a job still at
 * work, never an unfinished distribution.
 *
 * Applied once after start (the first executor step) and after every
 * step in which a rollout finished.
 */
#pragma once

#include <stdint.h>

struct db;
struct manager;

/* Deletes what is beyond the bounds, rows first (one transaction per
 * rollout), then the objects (manager_remove_rollout(),
 * manager_remove_distribution()).  Returns how many rollouts and
 * distributions went, or the first database error (what was deleted
 * before it stays deleted; the rest waits for the next call). */
int rollouts_prune(struct manager *m, uint64_t now_usec);

/* The rows of one rollout: the rollout, its members, its history rows and
 * its finished distributions with their targets.  One transaction. */
int db_rollout_prune(struct db *db, uint64_t rollout_id);
/* The rows of one distribution and its targets. */
int db_distribution_prune(struct db *db, uint64_t distribution_id);
