/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The rollout rows (rollout, rollout_member; db/NNNN-rollouts.sql).  A
 * third user of db-internal.h besides db.c and db-model.c, for the same
 * reason they share it: one connection and its error mapping.  Rollouts
 * change a few times per member, so their statements are prepared per
 * call rather than cached.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "db-internal.h"
#include "log.h"
#include "manager.h"
#include "rollout.h"

static int prepare(struct db *db, const char *sql, sqlite3_stmt **ret) {
        int rc = sqlite3_prepare_v2(db->sqlite, sql, -1, ret, NULL);
        return rc == SQLITE_OK ? 0 : db_errno(db, rc);
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s) {
        if (s)
                sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
        else
                sqlite3_bind_null(st, i);
}

static void bind_u64_or_null(sqlite3_stmt *st, int i, uint64_t v) {
        if (v)
                sqlite3_bind_int64(st, i, (sqlite3_int64) v);
        else
                sqlite3_bind_null(st, i);
}

static void bind_json(sqlite3_stmt *st, int i, const json_t *j) {
        char *text = json_dumps(j, JSON_COMPACT);
        if (text)
                sqlite3_bind_text(st, i, text, -1, free);
        else
                sqlite3_bind_text(st, i, "null", -1, SQLITE_STATIC);
}

static int step_done(struct db *db, sqlite3_stmt *st) {
        int rc = sqlite3_step(st);
        return rc == SQLITE_DONE ? 0 : db_errno(db, rc);
}

#define ROLLOUT_COLUMNS                                                                                 \
        "name, image_id, mode, state, created, started, finished, updated, targets, schedule, policy, " \
        "current_wave, n_waves, soak_until, activate_now, error, paused_reason, forgiven_wave, "        \
        "forgiven_failures, forgiven_reverts"

static void rollout_bind(sqlite3_stmt *st, const struct rollout *r) {
        bind_text_or_null(st, 1, r->name);
        sqlite3_bind_text(st, 2, r->image_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, smp_update_mode_to_string(r->mode), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, rollout_state_to_string(r->state), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, (sqlite3_int64) r->created_usec);
        bind_u64_or_null(st, 6, r->started_usec);
        bind_u64_or_null(st, 7, r->finished_usec);
        sqlite3_bind_int64(st, 8, (sqlite3_int64) r->updated_usec);
        bind_json(st, 9, r->targets);
        bind_json(st, 10, r->schedule_json);
        bind_json(st, 11, r->policy_json);
        sqlite3_bind_int64(st, 12, r->current_wave);
        sqlite3_bind_int64(st, 13, r->n_waves);
        bind_u64_or_null(st, 14, r->soak_until_usec);
        sqlite3_bind_int(st, 15, r->activate_now);
        bind_text_or_null(st, 16, r->error);
        bind_text_or_null(st, 17, r->paused_reason);
        sqlite3_bind_int64(st, 18, r->forgiven_wave);
        sqlite3_bind_int64(st, 19, r->forgiven_failures);
        sqlite3_bind_int64(st, 20, r->forgiven_reverts);
}

static int member_write(struct db *db, uint64_t rollout_id, const struct rollout_member *mem) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
        int r;

        r = prepare(db,
                    "INSERT OR REPLACE INTO rollout_member (rollout_id, device_id, wave, order_key, state, reason, "
                    "job_id, attempts, next_attempt, bytes_sent, updated, distribution_id) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, (sqlite3_int64) rollout_id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64) mem->device_id);
        if (mem->wave == UINT32_MAX)
                sqlite3_bind_null(st, 3);
        else
                sqlite3_bind_int64(st, 3, mem->wave);
        if (mem->order_key == UINT32_MAX)
                sqlite3_bind_null(st, 4);
        else
                sqlite3_bind_int64(st, 4, mem->order_key);
        sqlite3_bind_text(st, 5, rollout_member_state_to_string(mem->state), -1, SQLITE_STATIC);
        bind_text_or_null(st, 6, mem->reason[0] ? mem->reason : NULL);
        bind_u64_or_null(st, 7, mem->job_id);
        sqlite3_bind_int64(st, 8, mem->attempts);
        bind_u64_or_null(st, 9, mem->next_attempt_usec);
        sqlite3_bind_int64(st, 10, (sqlite3_int64) mem->bytes_sent);
        sqlite3_bind_int64(st, 11, (sqlite3_int64) mem->updated_usec);
        bind_u64_or_null(st, 12, mem->distribution_id);
        return step_done(db, st);
}

static int write_members(struct db *db, struct rollout *r, bool all) {
        for (size_t i = 0; i < r->n_members; i++) {
                if (!all && !r->members[i].dirty && !r->members[i].progress_dirty)
                        continue;
                int k = member_write(db, r->id, &r->members[i]);
                if (k < 0)
                        return k;
        }
        return 0;
}

static void clear_dirty(struct rollout *r) {
        r->dirty = false;
        for (size_t i = 0; i < r->n_members; i++)
                r->members[i].dirty = r->members[i].progress_dirty = false;
}

int db_rollout_insert(struct db *db, struct rollout *r) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
        int k;

        k = prepare(db,
                    "INSERT INTO rollout (" ROLLOUT_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                    "?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
                    &st);
        if (k < 0)
                return k;
        k = db_exec(db, "BEGIN IMMEDIATE");
        if (k < 0)
                return k;
        rollout_bind(st, r);
        k = step_done(db, st);
        if (k >= 0) {
                r->id = (uint64_t) sqlite3_last_insert_rowid(db->sqlite);
                k = write_members(db, r, true);
        }
        if (k >= 0)
                k = db_exec(db, "COMMIT");
        if (k < 0) {
                log_error_errno(k, "Cannot store a new rollout: %m");
                db_rollback(db);
                r->id = 0;
                return k;
        }
        clear_dirty(r);
        return 0;
}

int db_rollout_write(struct db *db, struct rollout *r) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
        int k;

        k = prepare(db,
                    "UPDATE rollout SET (" ROLLOUT_COLUMNS ") = (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                    "?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20) WHERE id = ?21",
                    &st);
        if (k < 0)
                return k;
        k = db_exec(db, "BEGIN IMMEDIATE");
        if (k < 0)
                return k;
        rollout_bind(st, r);
        sqlite3_bind_int64(st, 21, (sqlite3_int64) r->id);
        k = step_done(db, st);
        if (k >= 0)
                k = write_members(db, r, false);
        if (k >= 0)
                k = db_exec(db, "COMMIT");
        if (k < 0) {
                log_warning_errno(k, "Cannot write rollout %" PRIu64 ", trying again later: %m", r->id);
                db_rollback(db);
                return k;
        }
        clear_dirty(r);
        return 0;
}

int db_rollout_delete(struct db *db, uint64_t id) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
        int k = prepare(db, "DELETE FROM rollout WHERE id = ?1", &st);
        if (k < 0)
                return k;
        sqlite3_bind_int64(st, 1, (sqlite3_int64) id);
        return step_done(db, st);
}

static json_t *column_json(sqlite3_stmt *st, int i) {
        const char *text = (const char *) sqlite3_column_text(st, i);
        return text ? json_loads(text, 0, NULL) : NULL;
}

static char *column_dup(sqlite3_stmt *st, int i) {
        const char *text = (const char *) sqlite3_column_text(st, i);
        return text ? strdup(text) : NULL;
}

static int load_members(struct db *db, struct rollout *r) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
        int rc, k;

        k = prepare(db,
                    "SELECT device_id, wave, order_key, state, reason, job_id, attempts, next_attempt, "
                    "bytes_sent, updated, distribution_id FROM rollout_member WHERE rollout_id = ?1 "
                    "ORDER BY wave IS NULL, wave, order_key, device_id",
                    &st);
        if (k < 0)
                return k;
        sqlite3_bind_int64(st, 1, (sqlite3_int64) r->id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct rollout_member mem = {
                        .device_id = (uint64_t) sqlite3_column_int64(st, 0),
                        .wave = sqlite3_column_type(st, 1) == SQLITE_NULL ? UINT32_MAX
                                                                          : (uint32_t) sqlite3_column_int64(st, 1),
                        .order_key = sqlite3_column_type(st, 2) == SQLITE_NULL ? UINT32_MAX
                                                                               : (uint32_t) sqlite3_column_int64(st, 2),
                        .job_id = (uint64_t) sqlite3_column_int64(st, 5),
                        .attempts = (uint32_t) sqlite3_column_int64(st, 6),
                        .next_attempt_usec = (uint64_t) sqlite3_column_int64(st, 7),
                        .bytes_sent = (uint64_t) sqlite3_column_int64(st, 8),
                        .updated_usec = (uint64_t) sqlite3_column_int64(st, 9),
                        .distribution_id = (uint64_t) sqlite3_column_int64(st, 10),
                };
                int state = rollout_member_state_from_string((const char *) sqlite3_column_text(st, 3));
                const char *reason = (const char *) sqlite3_column_text(st, 4);

                mem.state = state < 0 ? ROLLOUT_MEMBER_PENDING : (enum rollout_member_state) state;
                if (reason)
                        snprintf(mem.reason, sizeof(mem.reason), "%s", reason);
                mem.reverted = mem.state == ROLLOUT_MEMBER_FAILED && streq(mem.reason, "reverted");
                k = rollout_add_member(r, &mem);
                if (k < 0)
                        return k;
        }
        return rc == SQLITE_DONE ? 0 : db_errno(db, rc);
}

int db_rollouts_load(struct db *db, struct manager *m, int (*fn)(struct manager *m, struct rollout *r)) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
        int rc, k;

        k = prepare(db, "SELECT id, " ROLLOUT_COLUMNS " FROM rollout ORDER BY id", &st);
        if (k < 0)
                return k;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct rollout *r = calloc(1, sizeof(*r));
                const char *image, *mode, *state;
                int v;

                if (!r)
                        return -ENOMEM;
                r->manager = m;
                r->id = (uint64_t) sqlite3_column_int64(st, 0);
                r->name = column_dup(st, 1);
                image = (const char *) sqlite3_column_text(st, 2);
                snprintf(r->image_id, sizeof(r->image_id), "%s", image ?: "");
                mode = (const char *) sqlite3_column_text(st, 3);
                v = mode ? smp_update_mode_from_string(mode) : -EINVAL;
                r->mode = v < 0 ? SMP_UPDATE_TEST_AND_CONFIRM : (enum smp_update_mode) v;
                state = (const char *) sqlite3_column_text(st, 4);
                v = rollout_state_from_string(state);
                r->state = v < 0 ? ROLLOUT_ABORTED : (enum rollout_state) v;
                r->created_usec = (uint64_t) sqlite3_column_int64(st, 5);
                r->started_usec = (uint64_t) sqlite3_column_int64(st, 6);
                r->finished_usec = (uint64_t) sqlite3_column_int64(st, 7);
                r->updated_usec = (uint64_t) sqlite3_column_int64(st, 8);
                r->targets = column_json(st, 9);
                r->schedule_json = column_json(st, 10);
                r->policy_json = column_json(st, 11);
                r->current_wave = (uint32_t) sqlite3_column_int64(st, 12);
                r->n_waves = (uint32_t) sqlite3_column_int64(st, 13);
                r->soak_until_usec = (uint64_t) sqlite3_column_int64(st, 14);
                r->activate_now = sqlite3_column_int(st, 15) != 0;
                r->error = column_dup(st, 16);
                r->paused_reason = column_dup(st, 17);
                r->forgiven_wave = (uint32_t) sqlite3_column_int64(st, 18);
                r->forgiven_failures = (uint32_t) sqlite3_column_int64(st, 19);
                r->forgiven_reverts = (uint32_t) sqlite3_column_int64(st, 20);
                k = load_members(db, r);
                if (k >= 0)
                        k = fn(m, r);
                if (k < 0) {
                        rollout_free(r);
                        return k;
                }
        }
        return rc == SQLITE_DONE ? 0 : db_errno(db, rc);
}
