/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Which finished rollouts and distributions go (rollout-prune.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "conf.h"
#include "distribution.h"
#include "engine-rollout.h"
#include "log.h"
#include "manager.h"
#include "rollout-executor.h"
#include "rollout-prune.h"
#include "rollout.h"
#include "util.h"

/* A finished rollout whose member's job still runs (cancelled past its
 * safe point: followed through to confirm or revert) waits for a later
 * round: its record is what says how that ended. */
static bool rollout_settled(const struct rollout *r) {
        for (size_t i = 0; i < r->n_members; i++)
                if (r->members[i].in_flight)
                        return false;
        return true;
}

struct finished {
        uint64_t finished_usec;
        uint64_t id;
        void *object; /* struct rollout or struct distribution */
};

static int newest_first(const void *x, const void *y) {
        const struct finished *a = x, *b = y;
        if (a->finished_usec != b->finished_usec)
                return a->finished_usec > b->finished_usec ? -1 : 1;
        return a->id > b->id ? -1 : a->id < b->id;
}

/* Beyond the bounds: past the newest keep_finished, or older than the age. */
static bool beyond(const struct config *c, size_t rank, uint64_t finished_usec, uint64_t now_usec) {
        uint64_t age = c->rollout_keep_finished_age_usec;

        if (rank >= c->rollout_keep_finished)
                return true;
        return age > 0 && now_usec > age && finished_usec < now_usec - age;
}

static int prune_rollouts(struct manager *m, uint64_t now_usec) {
        size_t n_all, n = 0, gone = 0;
        struct rollout *const *all = rollout_executor_list(m->rollouts, &n_all);
        _cleanup_free_ struct finished *f = calloc(MAX(n_all, (size_t) 1), sizeof(*f));
        bool flushed = false;

        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < n_all; i++)
                if (rollout_is_finished(all[i]))
                        f[n++] = (struct finished) { all[i]->finished_usec, all[i]->id, all[i] };
        qsort(f, n, sizeof(*f), newest_first);
        for (size_t i = 0; i < n; i++) {
                struct rollout *r = f[i].object;

                if (!beyond(m->config, i, f[i].finished_usec, now_usec) || !rollout_settled(r))
                        continue;
                if (m->db) {
                        int k;
                        /* Its last rows and history reach the tables first,
                         * or they would come back after the delete. */
                        if (!flushed)
                                (void) manager_flush_now(m);
                        flushed = true;
                        k = db_rollout_prune(m->db, r->id);
                        if (k < 0)
                                return k;
                }
                for (size_t j = m->n_distributions; j > 0; j--) {
                        struct distribution *d = m->distributions[j - 1];
                        if (d->policy.rollout_id == r->id && distribution_is_finished(d))
                                manager_remove_distribution(m, d);
                }
                log_debug("Rollout %" PRIu64 ": finished, past [rollouts] keep_finished: deleted", r->id);
                manager_remove_rollout(m, r);
                gone++;
        }
        return (int) MIN(gone, (size_t) INT32_MAX);
}

/* Finished distributions of no kept rollout: started on their own, or
 * their rollout is gone. */
static int prune_distributions(struct manager *m, uint64_t now_usec) {
        size_t n = 0, gone = 0;
        _cleanup_free_ struct finished *f = calloc(MAX(m->n_distributions, (size_t) 1), sizeof(*f));

        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_distributions; i++) {
                struct distribution *d = m->distributions[i];
                if (!distribution_is_finished(d))
                        continue;
                if (d->policy.rollout_id && rollout_executor_find(m->rollouts, d->policy.rollout_id))
                        continue;
                f[n++] = (struct finished) { d->finished_usec, d->id, d };
        }
        qsort(f, n, sizeof(*f), newest_first);
        for (size_t i = 0; i < n; i++) {
                struct distribution *d = f[i].object;

                if (!beyond(m->config, i, f[i].finished_usec, now_usec))
                        continue;
                if (m->db) {
                        int k = db_distribution_prune(m->db, d->id);
                        if (k < 0)
                                return k;
                }
                log_debug("Distribution %" PRIu64 ": finished, past [rollouts] keep_finished: deleted", d->id);
                manager_remove_distribution(m, d);
                gone++;
        }
        return (int) MIN(gone, (size_t) INT32_MAX);
}

int rollouts_prune(struct manager *m, uint64_t now_usec) {
        int rollouts, distributions;

        if (!m->rollouts)
                return 0;
        rollouts = prune_rollouts(m, now_usec);
        if (rollouts < 0)
                return rollouts;
        distributions = prune_distributions(m, now_usec);
        if (distributions < 0)
                return distributions;
        if (rollouts > 0 || distributions > 0)
                log_info("Deleted %d finished rollout%s and %d finished distribution%s past [rollouts] "
                         "keep_finished=%u%s",
                         rollouts, rollouts == 1 ? "" : "s", distributions, distributions == 1 ? "" : "s",
                         m->config->rollout_keep_finished,
                         m->config->rollout_keep_finished_age_usec ? " or keep_finished_age" : "");
        return rollouts + distributions;
}
