/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hawkBit client's rows.  Statements are prepared per call, not
 * cached: they run a few times per action, not per chunk.
 */
#include <errno.h>
#include <string.h>

#include "db-hawkbit.h"
#include "db-internal.h"
#include "log.h"

static int prepare(struct db *db, const char *sql, sqlite3_stmt **ret) {
        int rc = sqlite3_prepare_v2(db->sqlite, sql, -1, ret, NULL);
        if (rc != SQLITE_OK) {
                log_debug("database: \"%.60s\": %s", sql, sqlite3_errmsg(db->sqlite));
                return db_errno(db, rc);
        }
        return 0;
}

static int step_done(struct db *db, sqlite3_stmt *stmt) {
        int rc = sqlite3_step(stmt);
        if (rc != SQLITE_DONE) {
                log_debug("database: %s", sqlite3_errmsg(db->sqlite));
                return db_errno(db, rc) ?: -EIO;
        }
        return 0;
}

static const char *column_text(sqlite3_stmt *s, int i) {
        const unsigned char *t = sqlite3_column_text(s, i);
        return t ? (const char *) t : "";
}

int db_hawkbit_action_save(struct db *db, const struct db_hawkbit_action *a) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *s = NULL;
        int r = prepare(db,
                        "INSERT OR REPLACE INTO hawkbit_actions (device_id, action_id, state, sha256, url, size, "
                        "update_type, window_open, job_id, scheduled_sent, last_feedback, image_id, updated_usec) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, strftime('%s','now') * 1000000)",
                        &s);
        if (r < 0)
                return r;
        sqlite3_bind_int64(s, 1, (sqlite3_int64) a->device_id);
        sqlite3_bind_int64(s, 2, (sqlite3_int64) a->action_id);
        sqlite3_bind_text(s, 3, a->state, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, a->sha256, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 5, a->url, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 6, (sqlite3_int64) a->size);
        sqlite3_bind_text(s, 7, a->update_type, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 8, a->window_open);
        sqlite3_bind_int64(s, 9, (sqlite3_int64) a->job_id);
        sqlite3_bind_int(s, 10, a->scheduled_sent);
        sqlite3_bind_text(s, 11, a->last_feedback, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 12, a->image_id, -1, SQLITE_STATIC);
        return step_done(db, s);
}

int db_hawkbit_action_delete(struct db *db, uint64_t device_id) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *s = NULL;
        int r = prepare(db, "DELETE FROM hawkbit_actions WHERE device_id = ?", &s);
        if (r < 0)
                return r;
        sqlite3_bind_int64(s, 1, (sqlite3_int64) device_id);
        return step_done(db, s);
}

int db_hawkbit_actions_load(struct db *db, int (*fn)(const struct db_hawkbit_action *a, void *userdata),
                            void *userdata) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *s = NULL;
        int r = prepare(db,
                        "SELECT device_id, action_id, state, sha256, url, size, update_type, window_open, job_id, "
                        "scheduled_sent, last_feedback, image_id FROM hawkbit_actions ORDER BY device_id",
                        &s);
        if (r < 0)
                return r;
        for (;;) {
                int rc = sqlite3_step(s);
                if (rc == SQLITE_DONE)
                        return 0;
                if (rc != SQLITE_ROW)
                        return db_errno(db, rc) ?: -EIO;
                struct db_hawkbit_action a = {
                        .device_id = (uint64_t) sqlite3_column_int64(s, 0),
                        .action_id = (uint64_t) sqlite3_column_int64(s, 1),
                        .state = column_text(s, 2),
                        .sha256 = column_text(s, 3),
                        .url = column_text(s, 4),
                        .size = (uint64_t) sqlite3_column_int64(s, 5),
                        .update_type = column_text(s, 6),
                        .window_open = sqlite3_column_int(s, 7) != 0,
                        .job_id = (uint64_t) sqlite3_column_int64(s, 8),
                        .scheduled_sent = sqlite3_column_int(s, 9) != 0,
                        .last_feedback = column_text(s, 10),
                        .image_id = column_text(s, 11),
                };
                r = fn(&a, userdata);
                if (r < 0)
                        return r;
        }
}

int db_hawkbit_feedback_insert(struct db *db, uint64_t device_id, const char *controller_id, const char *path,
                               const char *body, int64_t *ret_id) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *s = NULL;
        int r = prepare(db,
                        "INSERT INTO hawkbit_feedback (device_id, controller_id, path, body, created_usec) "
                        "VALUES (?, ?, ?, ?, strftime('%s','now') * 1000000)",
                        &s);
        if (r < 0)
                return r;
        sqlite3_bind_int64(s, 1, (sqlite3_int64) device_id);
        sqlite3_bind_text(s, 2, controller_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, path, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, body, -1, SQLITE_STATIC);
        r = step_done(db, s);
        if (r < 0)
                return r;
        *ret_id = sqlite3_last_insert_rowid(db->sqlite);
        return 0;
}

int db_hawkbit_feedback_delete(struct db *db, int64_t id) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *s = NULL;
        int r = prepare(db, "DELETE FROM hawkbit_feedback WHERE id = ?", &s);
        if (r < 0)
                return r;
        sqlite3_bind_int64(s, 1, id);
        return step_done(db, s);
}

int db_hawkbit_feedback_load(struct db *db,
                             int (*fn)(int64_t id, uint64_t device_id, const char *controller_id, const char *path,
                                       const char *body, void *userdata),
                             void *userdata) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *s = NULL;
        int r = prepare(db, "SELECT id, device_id, controller_id, path, body FROM hawkbit_feedback ORDER BY id", &s);
        if (r < 0)
                return r;
        for (;;) {
                int rc = sqlite3_step(s);
                if (rc == SQLITE_DONE)
                        return 0;
                if (rc != SQLITE_ROW)
                        return db_errno(db, rc) ?: -EIO;
                r = fn(sqlite3_column_int64(s, 0), (uint64_t) sqlite3_column_int64(s, 1), column_text(s, 2),
                       column_text(s, 3), column_text(s, 4), userdata);
                if (r < 0)
                        return r;
        }
}

int db_hawkbit_download_save(struct db *db, const char *sha256, const char *url, uint64_t size, const char *image_id) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *s = NULL;
        int r = prepare(db,
                        "INSERT OR REPLACE INTO hawkbit_downloads (sha256, url, size, image_id, created_usec) "
                        "VALUES (?, ?, ?, ?, strftime('%s','now') * 1000000)",
                        &s);
        if (r < 0)
                return r;
        sqlite3_bind_text(s, 1, sha256, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, url, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, (sqlite3_int64) size);
        sqlite3_bind_text(s, 4, image_id, -1, SQLITE_STATIC);
        return step_done(db, s);
}

int db_hawkbit_download_delete(struct db *db, const char *sha256) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *s = NULL;
        int r = prepare(db, "DELETE FROM hawkbit_downloads WHERE sha256 = ?", &s);
        if (r < 0)
                return r;
        sqlite3_bind_text(s, 1, sha256, -1, SQLITE_STATIC);
        return step_done(db, s);
}

int db_hawkbit_downloads_load(struct db *db,
                              int (*fn)(const char *sha256, const char *url, uint64_t size, const char *image_id,
                                        void *userdata),
                              void *userdata) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *s = NULL;
        int r = prepare(db, "SELECT sha256, url, size, image_id FROM hawkbit_downloads ORDER BY created_usec", &s);
        if (r < 0)
                return r;
        for (;;) {
                int rc = sqlite3_step(s);
                if (rc == SQLITE_DONE)
                        return 0;
                if (rc != SQLITE_ROW)
                        return db_errno(db, rc) ?: -EIO;
                r = fn(column_text(s, 0), column_text(s, 1), (uint64_t) sqlite3_column_int64(s, 2), column_text(s, 3),
                       userdata);
                if (r < 0)
                        return r;
        }
}
