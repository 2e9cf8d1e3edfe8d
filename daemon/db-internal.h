/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared by db.c (connection, pragmas, migrations, statement cache, error
 * mapping), db-model.c (the model's rows) and db-hawkbit.c (the hawkBit
 * client's rows).  Nothing outside those files includes it: the rest of smpgwd sees struct db as opaque.
 */
#pragma once

#include <stdint.h>

#include <sqlite3.h>

#include "db.h"
#include "util.h"

/* Statements run on every flush or insert, prepared once with
 * SQLITE_PREPARE_PERSISTENT and kept until db_close().  Their SQL is in
 * db-model.c (db_stmt_sql[]), next to the code that binds them. */
enum db_stmt_id {
        DB_STMT_DEVICE_INSERT,
        DB_STMT_DEVICE_UPDATE,
        DB_STMT_SLOTS_DELETE,
        DB_STMT_SLOT_INSERT,
        DB_STMT_IMAGE_INSERT,
        DB_STMT_JOB_INSERT,
        DB_STMT_JOB_UPDATE,
        DB_STMT_JOB_BEFORE_DELETE,
        DB_STMT_JOB_BEFORE_INSERT,
        DB_STMT_EVENT_INSERT,
        _DB_STMT_MAX,
};

extern const char *const db_stmt_sql[_DB_STMT_MAX];

/* One history row waiting for the next flush; owns its strings. */
struct db_history_entry {
        uint64_t time_usec;
        char *type;
        uint64_t device_id;
        char *image_id;
        uint64_t job_id;
        char *message;
};

struct db {
        sqlite3 *sqlite;
        char *path;
        sqlite3_stmt *stmts[_DB_STMT_MAX];

        /* A ring of at most DB_HISTORY_QUEUE_MAX entries, allocated on the
         * first db_history_add(): the oldest is history[history_head]. */
        struct db_history_entry *history;
        size_t history_head, n_history;
        uint64_t history_dropped;
        unsigned history_drops_unlogged; /* drops since the last warning */
        /* Write transactions SQLite committed (its commit hook): every
         * one, the flushes and the writes done at once alike. */
        uint64_t commits;
};

/* SQLite result code (extended codes included) to a negative errno. */
int db_errno(struct db *db, int sqlite_rc);

/* The cached statement, prepared on first use; reset it after use
 * (_cleanup_(db_stmt_resetp)). */
int db_stmt(struct db *db, enum db_stmt_id id, sqlite3_stmt **ret);

/* Runs SQL without result rows; -errno, with the SQLite message logged at
 * debug level. */
int db_exec(struct db *db, const char *sql);

/* Ends the transaction that is open, if any (after a failed step). */
void db_rollback(struct db *db);

void db_history_entry_done(struct db_history_entry *e);

static inline void db_stmt_resetp(sqlite3_stmt **stmt) {
        if (*stmt) {
                sqlite3_reset(*stmt);
                sqlite3_clear_bindings(*stmt);
        }
}

DEFINE_TRIVIAL_CLEANUP_FUNC(sqlite3_stmt *, sqlite3_finalize);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct db *, db_close);
