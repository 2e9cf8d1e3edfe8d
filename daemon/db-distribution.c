/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The rows of mesh distributions, mesh targets and device roles
 * (db/NNNN-mesh-distributions.sql).  Written at once, each in its own
 * transaction: a distribution changes at the pace of its steps and
 * polls, seconds apart, and a restart must find the step it was in.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db-internal.h"
#include "distribution-internal.h"
#include "log.h"
#include "manager.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct distribution *, distribution_free);

static int prepare(struct db *db, const char *sql, sqlite3_stmt **ret) {
        int rc = sqlite3_prepare_v2(db->sqlite, sql, -1, ret, NULL);
        return rc == SQLITE_OK ? 0 : db_errno(db, rc);
}

static int bind_text(sqlite3_stmt *s, int i, const char *v) {
        return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s, i);
}

static int step_done(struct db *db, sqlite3_stmt *s) {
        int rc = sqlite3_step(s);
        return rc == SQLITE_DONE ? 0 : db_errno(db, rc);
}

int db_device_role_save(struct db *db, const struct device *d) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *s = NULL;
        int r;

        if (d->role)
                r = prepare(db, "INSERT OR REPLACE INTO device_roles (device_id, role) VALUES (?1, ?2)", &s);
        else
                r = prepare(db, "DELETE FROM device_roles WHERE device_id = ?1", &s);
        if (r < 0)
                return r;
        sqlite3_bind_int64(s, 1, (sqlite3_int64) d->id);
        if (d->role)
                bind_text(s, 2, d->role);
        return step_done(db, s);
}

int db_mesh_target_save(struct db *db, const struct device *d) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *s = NULL;
        int r;

        if (!d->mesh)
                return -EINVAL;
        r = prepare(db,
                    "INSERT OR REPLACE INTO mesh_targets (device_id, distributor_id, addr, fwid, version, phase, "
                    "status, updated, direct_device_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    &s);
        if (r < 0)
                return r;
        sqlite3_bind_int64(s, 1, (sqlite3_int64) d->id);
        sqlite3_bind_int64(s, 2, (sqlite3_int64) d->mesh->distributor_id);
        sqlite3_bind_int(s, 3, d->mesh->addr);
        bind_text(s, 4, d->mesh->fwid[0] ? d->mesh->fwid : NULL);
        bind_text(s, 5, d->mesh->version[0] ? d->mesh->version : NULL);
        if (d->mesh->has_phase) {
                sqlite3_bind_int(s, 6, d->mesh->phase);
                sqlite3_bind_int(s, 7, d->mesh->status);
        }
        sqlite3_bind_int64(s, 8, (sqlite3_int64) d->mesh->updated_usec);
        if (d->mesh->direct_device_id)
                sqlite3_bind_int64(s, 9, (sqlite3_int64) d->mesh->direct_device_id);
        return step_done(db, s);
}

static int bind_distribution(sqlite3_stmt *s, const struct distribution *d) {
        bind_text(s, 1, distribution_state_to_string(d->state));
        bind_text(s, 2, distribution_step_to_string(d->step));
        bind_text(s, 3, distribution_apply_to_string(d->policy.apply));
        sqlite3_bind_int(s, 4, d->policy.app_idx);
        sqlite3_bind_int(s, 5, d->policy.group);
        sqlite3_bind_int(s, 6, d->policy.ttl);
        sqlite3_bind_int(s, 7, d->policy.timeout_base);
        sqlite3_bind_int(s, 8, d->policy.xfer_mode);
        sqlite3_bind_int(s, 9, (int) d->policy.max_attempts);
        sqlite3_bind_int64(s, 10, (sqlite3_int64) d->policy.deadline_usec);
        sqlite3_bind_int64(s, 11, (sqlite3_int64) d->policy.poll_min_usec);
        sqlite3_bind_int64(s, 12, (sqlite3_int64) d->policy.poll_max_usec);
        sqlite3_bind_int(s, 13, (int) d->rounds);
        sqlite3_bind_int(s, 14, d->slot_idx);
        sqlite3_bind_int64(s, 15, (sqlite3_int64) d->policy.rollout_id);
        sqlite3_bind_int64(s, 16, (sqlite3_int64) d->updated_usec);
        if (d->finished_usec)
                sqlite3_bind_int64(s, 17, (sqlite3_int64) d->finished_usec);
        bind_text(s, 18, d->error);
        return 0;
}

static int save_targets(struct db *db, const struct distribution *d) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *s = NULL;
        int r = prepare(db,
                        "INSERT OR REPLACE INTO distribution_targets (distribution_id, device_id, addr, state, "
                        "attempts, phase, status, progress, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                        &s);
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->n_targets; i++) {
                const struct distribution_target *t = &d->targets[i];
                sqlite3_reset(s);
                sqlite3_clear_bindings(s);
                sqlite3_bind_int64(s, 1, (sqlite3_int64) d->id);
                sqlite3_bind_int64(s, 2, (sqlite3_int64) t->device_id);
                sqlite3_bind_int(s, 3, t->addr);
                bind_text(s, 4, distribution_target_state_to_string(t->state));
                sqlite3_bind_int(s, 5, (int) t->attempts);
                sqlite3_bind_int(s, 6, t->phase);
                sqlite3_bind_int(s, 7, t->status);
                sqlite3_bind_int(s, 8, t->progress);
                bind_text(s, 9, t->reason);
                r = step_done(db, s);
                if (r < 0)
                        return r;
        }
        return 0;
}

int db_distribution_insert(struct db *db, struct distribution *d) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *s = NULL;
        int r;

        r = db_exec(db, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = prepare(db,
                    "INSERT INTO distributions (state, step, apply, app_idx, grp, ttl, timeout_base, xfer_mode, "
                    "max_attempts, deadline, poll_min, poll_max, rounds, slot_idx, rollout_id, updated, finished, "
                    "error, distributor_id, image_id, created, mesh_rate) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                    "?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
                    &s);
        if (r >= 0) {
                bind_distribution(s, d);
                sqlite3_bind_int64(s, 19, (sqlite3_int64) d->distributor_id);
                bind_text(s, 20, d->image_id);
                sqlite3_bind_int64(s, 21, (sqlite3_int64) d->created_usec);
                if (d->mesh_rate > 0)
                        sqlite3_bind_double(s, 22, d->mesh_rate);
                r = step_done(db, s);
        }
        if (r >= 0) {
                d->id = (uint64_t) sqlite3_last_insert_rowid(db->sqlite);
                r = save_targets(db, d);
        }
        if (r >= 0)
                r = db_exec(db, "COMMIT");
        if (r < 0) {
                db_rollback(db);
                d->id = 0;
        }
        return r;
}

int db_distribution_save(struct db *db, const struct distribution *d) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *s = NULL;
        int r;

        r = db_exec(db, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = prepare(db,
                    "UPDATE distributions SET state = ?1, step = ?2, apply = ?3, app_idx = ?4, grp = ?5, "
                    "ttl = ?6, timeout_base = ?7, xfer_mode = ?8, max_attempts = ?9, deadline = ?10, "
                    "poll_min = ?11, poll_max = ?12, rounds = ?13, slot_idx = ?14, rollout_id = ?15, "
                    "updated = ?16, finished = ?17, error = ?18, mesh_rate = ?20 WHERE id = ?19",
                    &s);
        if (r >= 0) {
                bind_distribution(s, d);
                sqlite3_bind_int64(s, 19, (sqlite3_int64) d->id);
                if (d->mesh_rate > 0)
                        sqlite3_bind_double(s, 20, d->mesh_rate);
                r = step_done(db, s);
        }
        if (r >= 0)
                r = save_targets(db, d);
        if (r >= 0)
                r = db_exec(db, "COMMIT");
        if (r < 0)
                db_rollback(db);
        return r;
}

static const char *col_text(sqlite3_stmt *s, int i) {
        return (const char *) sqlite3_column_text(s, i);
}

static int load_roles_and_targets(struct db *db, struct manager *m) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *s = NULL;
        int r, rc;

        r = prepare(db, "SELECT device_id, role FROM device_roles", &s);
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                struct device *d = manager_find_device(m, (uint64_t) sqlite3_column_int64(s, 0));
                if (!d || !col_text(s, 1))
                        continue;
                free(d->role);
                d->role = strdup(col_text(s, 1));
                if (!d->role)
                        return -ENOMEM;
        }
        if (rc != SQLITE_DONE)
                return db_errno(db, rc);
        sqlite3_finalize(TAKE_PTR(s));

        r = prepare(db,
                    "SELECT device_id, distributor_id, addr, fwid, version, phase, status, updated, "
                    "direct_device_id FROM mesh_targets",
                    &s);
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                struct device *d = manager_find_device(m, (uint64_t) sqlite3_column_int64(s, 0));
                if (!d)
                        continue;
                if (!d->mesh && !(d->mesh = calloc(1, sizeof(*d->mesh))))
                        return -ENOMEM;
                d->mesh->distributor_id = (uint64_t) sqlite3_column_int64(s, 1);
                d->mesh->addr = (uint16_t) sqlite3_column_int(s, 2);
                snprintf(d->mesh->fwid, sizeof(d->mesh->fwid), "%s", col_text(s, 3) ?: "");
                snprintf(d->mesh->version, sizeof(d->mesh->version), "%s", col_text(s, 4) ?: "");
                d->mesh->has_phase = sqlite3_column_type(s, 5) != SQLITE_NULL;
                d->mesh->phase = (uint8_t) sqlite3_column_int(s, 5);
                d->mesh->status = (uint8_t) sqlite3_column_int(s, 6);
                d->mesh->updated_usec = (uint64_t) sqlite3_column_int64(s, 7);
                d->mesh->direct_device_id = (uint64_t) sqlite3_column_int64(s, 8);
        }
        return rc == SQLITE_DONE ? 0 : db_errno(db, rc);
}

static int load_targets(struct db *db, struct distribution *d) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *s = NULL;
        int r, rc;

        r = prepare(db,
                    "SELECT device_id, addr, state, attempts, phase, status, progress, reason "
                    "FROM distribution_targets WHERE distribution_id = ?1 ORDER BY rowid",
                    &s);
        if (r < 0)
                return r;
        sqlite3_bind_int64(s, 1, (sqlite3_int64) d->id);
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                struct distribution_target *g = realloc(d->targets, (d->n_targets + 1) * sizeof(*g));
                if (!g)
                        return -ENOMEM;
                d->targets = g;
                struct distribution_target *t = &d->targets[d->n_targets];
                int st = distribution_target_state_from_string(col_text(s, 2));
                *t = (struct distribution_target) {
                        .device_id = (uint64_t) sqlite3_column_int64(s, 0),
                        .addr = (uint16_t) sqlite3_column_int(s, 1),
                        .state = st < 0 ? DISTRIBUTION_TARGET_FAILED : (enum distribution_target_state) st,
                        .attempts = (unsigned) sqlite3_column_int(s, 3),
                        .phase = (uint8_t) sqlite3_column_int(s, 4),
                        .status = (uint8_t) sqlite3_column_int(s, 5),
                        .progress = (uint8_t) sqlite3_column_int(s, 6),
                };
                if (col_text(s, 7) && !(t->reason = strdup(col_text(s, 7))))
                        return -ENOMEM;
                d->n_targets++;
        }
        return rc == SQLITE_DONE ? 0 : db_errno(db, rc);
}

int db_distributions_load(struct db *db, struct manager *m) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *s = NULL;
        int r, rc;

        r = load_roles_and_targets(db, m);
        if (r < 0)
                return r;
        r = prepare(db,
                    "SELECT id, distributor_id, image_id, state, step, apply, app_idx, grp, ttl, timeout_base, "
                    "xfer_mode, max_attempts, deadline, poll_min, poll_max, rounds, slot_idx, rollout_id, "
                    "created, updated, finished, error, mesh_rate FROM distributions ORDER BY id",
                    &s);
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                _cleanup_(distribution_freep) struct distribution *d = calloc(1, sizeof(*d));
                if (!d)
                        return -ENOMEM;
                int state = distribution_state_from_string(col_text(s, 3));
                int step = distribution_step_from_string(col_text(s, 4));
                int apply = distribution_apply_from_string(col_text(s, 5));
                d->id = (uint64_t) sqlite3_column_int64(s, 0);
                d->distributor_id = (uint64_t) sqlite3_column_int64(s, 1);
                snprintf(d->image_id, sizeof(d->image_id), "%s", col_text(s, 2) ?: "");
                d->state = state < 0 ? DISTRIBUTION_FAILED : (enum distribution_state) state;
                d->step = step < 0 ? DISTRIBUTION_STEP_DONE : (enum distribution_step) step;
                d->policy.apply = apply < 0 ? DISTRIBUTION_APPLY_NOW : (enum distribution_apply) apply;
                d->policy.app_idx = (uint16_t) sqlite3_column_int(s, 6);
                d->policy.group = (uint16_t) sqlite3_column_int(s, 7);
                d->policy.ttl = (uint8_t) sqlite3_column_int(s, 8);
                d->policy.timeout_base = (uint16_t) sqlite3_column_int(s, 9);
                d->policy.xfer_mode = (uint8_t) sqlite3_column_int(s, 10);
                d->policy.max_attempts = (unsigned) sqlite3_column_int(s, 11);
                d->policy.deadline_usec = (uint64_t) sqlite3_column_int64(s, 12);
                d->policy.poll_min_usec = (uint64_t) sqlite3_column_int64(s, 13);
                d->policy.poll_max_usec = (uint64_t) sqlite3_column_int64(s, 14);
                d->rounds = (unsigned) sqlite3_column_int(s, 15);
                d->slot_idx = (uint16_t) sqlite3_column_int(s, 16);
                d->policy.rollout_id = (uint64_t) sqlite3_column_int64(s, 17);
                d->created_usec = (uint64_t) sqlite3_column_int64(s, 18);
                d->updated_usec = (uint64_t) sqlite3_column_int64(s, 19);
                d->finished_usec = (uint64_t) sqlite3_column_int64(s, 20);
                if (col_text(s, 21) && !(d->error = strdup(col_text(s, 21))))
                        return -ENOMEM;
                d->mesh_rate = sqlite3_column_double(s, 22);
                r = load_targets(db, d);
                if (r < 0)
                        return r;
                r = distribution_attach(m, d);
                if (r < 0)
                        return r;
                TAKE_PTR(d);
        }
        return rc == SQLITE_DONE ? 0 : db_errno(db, rc);
}
