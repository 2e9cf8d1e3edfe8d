/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The rows retention deletes (rollout-prune.h): a finished rollout with
 * everything that names it, and a finished distribution.  Each in one
 * transaction, so a crash leaves a rollout whole or gone.
 */
#include <errno.h>
#include <inttypes.h>

#include "db-internal.h"
#include "log.h"
#include "rollout-prune.h"

/* The distribution states that are final (distribution.h). */
#define FINISHED_DISTRIBUTION "('succeeded', 'failed', 'cancelled')"

static int delete_by_id(struct db *db, const char *sql, uint64_t id) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db->sqlite, sql, -1, &st, NULL);

        if (rc != SQLITE_OK)
                return db_errno(db, rc);
        sqlite3_bind_int64(st, 1, (sqlite3_int64) id);
        rc = sqlite3_step(st);
        return rc == SQLITE_DONE ? 0 : db_errno(db, rc);
}

static int in_transaction(struct db *db, const char *const *sql, uint64_t id) {
        int k = db_exec(db, "BEGIN IMMEDIATE");

        for (; k >= 0 && *sql; sql++)
                k = delete_by_id(db, *sql, id);
        if (k >= 0)
                k = db_exec(db, "COMMIT");
        if (k < 0)
                db_rollback(db);
        return k;
}

int db_rollout_prune(struct db *db, uint64_t rollout_id) {
        static const char *const sql[] = {
                "DELETE FROM distribution_targets WHERE distribution_id IN (SELECT id FROM distributions "
                "WHERE rollout_id = ?1 AND state IN " FINISHED_DISTRIBUTION ")",
                "DELETE FROM distributions WHERE rollout_id = ?1 AND state IN " FINISHED_DISTRIBUTION,
                "DELETE FROM rollout_member WHERE rollout_id = ?1",
                "DELETE FROM rollout WHERE id = ?1",
                /* Its history: every rollout-* message starts "rollout N:" or
                 * "rollout N " (rollout-executor.c, engine-rollout.c). */
                "DELETE FROM events WHERE type GLOB 'rollout-*' AND (message GLOB ('rollout ' || ?1 || ':*') "
                "OR message GLOB ('rollout ' || ?1 || ' *'))",
                NULL,
        };
        int k = in_transaction(db, sql, rollout_id);

        if (k < 0)
                log_warning_errno(k, "Cannot delete finished rollout %" PRIu64 ": %m", rollout_id);
        return k;
}

int db_distribution_prune(struct db *db, uint64_t distribution_id) {
        static const char *const sql[] = {
                "DELETE FROM distribution_targets WHERE distribution_id IN (SELECT id FROM distributions "
                "WHERE id = ?1 AND state IN " FINISHED_DISTRIBUTION ")",
                "DELETE FROM distributions WHERE id = ?1 AND state IN " FINISHED_DISTRIBUTION,
                NULL,
        };
        int k = in_transaction(db, sql, distribution_id);

        if (k < 0)
                log_warning_errno(k, "Cannot delete finished distribution %" PRIu64 ": %m", distribution_id);
        return k;
}
