/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The database connection: opening, pragmas, migrations, the statement
 * cache and SQLite-to-errno mapping.  The rows of the model are in
 * db-model.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "db-internal.h"
#include "db-migrations.h"
#include "db.h"
#include "log.h"
#include "util.h"

/* STRICT tables; a file written with them cannot be read by older
 * SQLite, and this build's schema needs them. */
#define DB_SQLITE_MIN_VERSION 3037000

/* The busy handler sleeps on the event loop thread.  Once the database
 * is open nobody else can hold a lock (exclusive locking mode, below);
 * before that an outside tool (the sqlite3 shell) may, and the open waits
 * this long for it, then fails with -EBUSY and a sentence. */
#define DB_BUSY_TIMEOUT_MSEC 200

/* Caps the WAL file left behind after a checkpoint; SD cards prefer a
 * small file rewritten in place over one that grows without bound. */
#define DB_JOURNAL_SIZE_LIMIT "4194304" /* 4 MiB */

/* SQLite's page cache, in KiB (a negative cache_size).  Its default
 * (2000 KiB) filled up with a fleet of 10,000 devices and was an eighth
 * of smpgwd's memory; the file's pages are in the kernel's page cache
 * anyway, so a miss costs a read(), not a disk access.  512 KiB holds the
 * pages of the tables and indexes a flush or a history write walks. */
#define DB_CACHE_KIB "512"

unsigned db_schema_version(void) {
        return db_migrations_count > 0 ? db_migrations[db_migrations_count - 1].version : 0;
}

int db_errno(struct db *db, int sqlite_rc) {
        switch (sqlite_rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return 0;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EUCLEAN;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EPERM;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_CONSTRAINT:
                if (sqlite_rc == SQLITE_CONSTRAINT_UNIQUE || sqlite_rc == SQLITE_CONSTRAINT_PRIMARYKEY ||
                    sqlite_rc == SQLITE_CONSTRAINT_ROWID)
                        return -EEXIST;
                return -EINVAL;
        case SQLITE_MISMATCH:
        case SQLITE_RANGE:
                return -EINVAL;
        case SQLITE_IOERR:
        case SQLITE_CANTOPEN: {
                if (sqlite_rc == SQLITE_IOERR_NOMEM)
                        return -ENOMEM;
                /* The OS error behind it says more than "I/O error":
                 * ENOSPC, EACCES, ELOOP (NOFOLLOW), ... */
                int e = db && db->sqlite ? sqlite3_system_errno(db->sqlite) : 0;
                if (e > 0)
                        return -e;
                return (sqlite_rc & 0xff) == SQLITE_CANTOPEN ? -EACCES : -EIO;
        }
        default:
                return -EIO;
        }
}

int db_exec(struct db *db, const char *sql) {
        char *msg = NULL;
        int rc = sqlite3_exec(db->sqlite, sql, NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
                int r = db_errno(db, rc);
                log_debug("database: \"%.60s\": %s", sql, msg ? msg : sqlite3_errstr(rc));
                sqlite3_free(msg);
                return r;
        }
        return 0;
}

void db_rollback(struct db *db) {
        /* Some errors (SQLITE_FULL, IOERR, NOMEM) roll back by themselves;
         * a second ROLLBACK would only fail. */
        if (!sqlite3_get_autocommit(db->sqlite))
                (void) db_exec(db, "ROLLBACK");
}

int db_stmt(struct db *db, enum db_stmt_id id, sqlite3_stmt **ret) {
        if (!db->stmts[id]) {
                int rc = sqlite3_prepare_v3(db->sqlite, db_stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                            &db->stmts[id], NULL);
                if (rc != SQLITE_OK) {
                        log_debug("database: preparing statement %d: %s", (int) id,
                                  sqlite3_errmsg(db->sqlite));
                        return db_errno(db, rc);
                }
        }
        *ret = db->stmts[id];
        return 0;
}

/* Reads a single-integer pragma such as user_version. */
static int db_pragma_int(struct db *db, const char *sql, int64_t *ret) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *stmt = NULL;
        int rc = sqlite3_prepare_v2(db->sqlite, sql, -1, &stmt, NULL);
        if (rc != SQLITE_OK)
                return db_errno(db, rc);
        rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW)
                return rc == SQLITE_DONE ? -EIO : db_errno(db, rc);
        *ret = sqlite3_column_int64(stmt, 0);
        return 0;
}

/* Reads a single-text pragma such as journal_mode; *ret is malloc'd. */
static int db_pragma_text(struct db *db, const char *sql, char **ret) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *stmt = NULL;
        int rc = sqlite3_prepare_v2(db->sqlite, sql, -1, &stmt, NULL);
        if (rc != SQLITE_OK)
                return db_errno(db, rc);
        rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW)
                return rc == SQLITE_DONE ? -EIO : db_errno(db, rc);
        const unsigned char *text = sqlite3_column_text(stmt, 0);
        char *s = strdup(text ? (const char *) text : "");
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* Applies one step in its own transaction.  IMMEDIATE takes the write
 * lock before user_version is read again: a step another process
 * applied in the meantime is seen and skipped, not applied twice.
 * Foreign keys are off while migrations run (db_open() turns them on
 * afterwards), so a step may rebuild a table others refer to without
 * its DROP cascading; PRAGMA foreign_key_check then proves the step
 * left every reference intact before it commits (the procedure of
 * sqlite.org/lang_altertable.html). */
static int db_migrate_step(struct db *db, const struct db_migration *step) {
        char sql[64];
        int64_t version;
        int r;

        r = db_exec(db, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = db_pragma_int(db, "PRAGMA user_version", &version);
        if (r >= 0 && version < step->version) {
                r = db_exec(db, step->sql);
                if (r >= 0) {
                        _cleanup_free_ char *violation = NULL;
                        r = db_pragma_text(db, "PRAGMA foreign_key_check", &violation);
                        if (r >= 0) {
                                log_error("Migration %s of %s breaks a foreign key (table %s)", step->name,
                                          db->path, violation);
                                r = -EUCLEAN;
                        } else if (r == -EIO)
                                r = 0;   /* no row: nothing broken */
                }
                if (r >= 0) {
                        snprintf(sql, sizeof(sql), "PRAGMA user_version = %u", step->version);
                        r = db_exec(db, sql);
                }
        }
        if (r >= 0)
                r = db_exec(db, "COMMIT");
        if (r < 0) {
                /* Logged before the rollback replaces SQLite's message. */
                log_error_errno(r, "Migration %s of %s failed, rolled back: %s", step->name, db->path,
                                sqlite3_errmsg(db->sqlite));
                db_rollback(db);
        }
        return r;
}

static int db_migrate(struct db *db) {
        unsigned target = db_schema_version();
        int64_t version;
        int r;

        r = db_pragma_int(db, "PRAGMA user_version", &version);
        if (r < 0)
                return log_error_errno(r, "Failed to read the schema version of %s: %s", db->path,
                                       sqlite3_errmsg(db->sqlite));
        if (version < 0 || (uint64_t) version > target)
                return log_error_errno(-EPROTONOSUPPORT,
                                       "Database %s has schema version %" PRId64 ", this smpgwd knows "
                                       "versions up to %u; refusing to use it (a newer smpgwd wrote it)",
                                       db->path, version, target);

        for (unsigned i = 0; i < db_migrations_count; i++) {
                const struct db_migration *step = &db_migrations[i];

                if (step->version <= (uint64_t) version)
                        continue;
                r = db_migrate_step(db, step);
                if (r < 0)
                        return r;
                log_info("Database %s: applied migration %s (schema version %u)", db->path, step->name,
                         step->version);
        }
        return 0;
}

/* The state directory normally exists (StateDirectory=); a --db path in
 * a directory of its own may not. */
static int db_make_parent_dir(const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return 0;
        *slash = '\0';
        if (mkdir(dir, 0750) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static int on_commit(void *userdata) {
        struct db *db = userdata;
        db->commits++;
        return 0; /* 0: go on with the commit */
}

int db_open(const char *path, struct db **ret) {
        _cleanup_(db_closep) struct db *db = NULL;
        _cleanup_free_ char *journal_mode = NULL;
        int rc, r;

        if (!path || !ret)
                return -EINVAL;

        if (sqlite3_libversion_number() < DB_SQLITE_MIN_VERSION)
                return log_error_errno(-EOPNOTSUPP,
                                       "SQLite %s is too old: smpgwd needs 3.37 or newer (STRICT tables)",
                                       sqlite3_libversion());

        r = db_make_parent_dir(path);
        if (r < 0)
                return log_error_errno(r, "Failed to create the directory of %s: %m", path);

        db = calloc(1, sizeof(*db));
        if (!db)
                return log_error_errno(-ENOMEM, "Failed to open database %s: %m", path);
        db->path = strdup(path);
        if (!db->path)
                return log_error_errno(-ENOMEM, "Failed to open database %s: %m", path);

        rc = sqlite3_open_v2(path, &db->sqlite,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW |
                                     SQLITE_OPEN_EXRESCODE,
                             NULL);
        if (rc != SQLITE_OK)
                return log_error_errno(db_errno(db, rc), "Failed to open database %s: %s", path,
                                       db->sqlite ? sqlite3_errmsg(db->sqlite) : sqlite3_errstr(rc));

        /* SQLite calls this for write transactions only, as it commits
         * them: the count of real transactions (COMMITs and statements in
         * autocommit mode that wrote), not of our attempts. */
        sqlite3_commit_hook(db->sqlite, on_commit, db);

        /* Before the first pragma: journal_mode=WAL itself needs a lock. */
        sqlite3_busy_timeout(db->sqlite, DB_BUSY_TIMEOUT_MSEC);

        /* Exclusive locking mode, set before the first access in WAL mode,
         * keeps the WAL index in our heap: there is no <db>-shm file and
         * no shared mapping of one.  With a shared -shm, SQLite writes to
         * a MAP_SHARED mapping, and when the kernel cannot back a page
         * (the file made immutable, the file system remounted read-only
         * after an SD card error, the file truncated by someone else) the
         * write is a SIGBUS inside SQLite, which no error path can catch.
         * Without the mapping such faults are write errors that a flush
         * reports and retries.  The price: while smpgwd runs, it holds an
         * exclusive lock on the file and no other process can read it
         * (the sqlite3 shell says "database is locked").  smpgwd is the
         * only writer anyway (flock on smpgwd.lock), and everything in
         * the database is served by the REST and D-Bus APIs; to read the
         * file itself, stop smpgwd (doc/smpgwd-db.md). */
        r = db_exec(db, "PRAGMA locking_mode = EXCLUSIVE");
        if (r < 0)
                return log_error_errno(r, "Failed to use database %s: %s", path, sqlite3_errmsg(db->sqlite));

        r = db_pragma_text(db, "PRAGMA journal_mode = WAL", &journal_mode);
        if (r == -EBUSY)
                return log_error_errno(r, "Failed to use database %s: another program (the sqlite3 shell?) "
                                          "has it open; smpgwd needs it to itself",
                                       path);
        if (r < 0)
                return log_error_errno(r, "Failed to use database %s: %s", path, sqlite3_errmsg(db->sqlite));
        if (strcasecmp(journal_mode, "wal") != 0)
                /* A file system without shared memory mappings: it works,
                 * but every commit rewrites pages twice. */
                log_warning("Database %s: WAL is not available here, journal mode is '%s'", path,
                            journal_mode);

        r = db_exec(db, "PRAGMA synchronous = NORMAL;"
                        "PRAGMA foreign_keys = OFF;"
                        "PRAGMA temp_store = MEMORY;"
                        "PRAGMA cache_size = -" DB_CACHE_KIB ";"
                        "PRAGMA journal_size_limit = " DB_JOURNAL_SIZE_LIMIT ";");
        if (r < 0)
                return log_error_errno(r, "Failed to configure database %s: %s", path,
                                       sqlite3_errmsg(db->sqlite));

        r = db_migrate(db);
        if (r < 0)
                return r;
        /* Only now: see db_migrate_step(). */
        r = db_exec(db, "PRAGMA foreign_keys = ON");
        if (r < 0)
                return log_error_errno(r, "Failed to configure database %s: %s", path,
                                       sqlite3_errmsg(db->sqlite));

        *ret = TAKE_PTR(db);
        return 0;
}

uint64_t db_commits(const struct db *db) {
        return db ? db->commits : 0;
}

void db_history_entry_done(struct db_history_entry *e) {
        free(e->type);
        free(e->image_id);
        free(e->message);
        *e = (struct db_history_entry) {};
}

struct db *db_close(struct db *db) {
        if (!db)
                return NULL;
        for (size_t i = 0; i < _DB_STMT_MAX; i++)
                sqlite3_finalize(db->stmts[i]);
        if (db->sqlite) {
                int rc = sqlite3_close(db->sqlite);
                if (rc != SQLITE_OK)
                        /* Only an unfinalized statement makes close fail:
                         * a bug here, but the file is consistent. */
                        log_error("Failed to close database %s: %s", db->path, sqlite3_errstr(rc));
        }
        if (db->history) {
                for (size_t i = 0; i < db->n_history; i++)
                        db_history_entry_done(&db->history[(db->history_head + i) % DB_HISTORY_QUEUE_MAX]);
                free(db->history);
        }
        if (db->history_dropped > 0)
                log_warning("Database %s: %" PRIu64 " history rows were dropped (queue full)", db->path,
                            db->history_dropped);
        free(db->path);
        free(db);
        return NULL;
}

int db_check(struct db *db, char **ret_message) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *stmt = NULL;
        int rc;

        /* Not logging: the watchdog timer calls this and says what it
         * makes of the answer. */
        if (!db)
                return -EINVAL;
        rc = sqlite3_prepare_v2(db->sqlite, "PRAGMA quick_check", -1, &stmt, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW) {
                log_debug("Database %s: quick_check: %s", db->path, sqlite3_errmsg(db->sqlite));
                return rc == SQLITE_DONE ? -EIO : db_errno(db, rc);
        }

        const char *first = (const char *) sqlite3_column_text(stmt, 0);
        log_debug("Database %s: quick_check: %s", db->path, first ? first : "(null)");
        if (first && streq(first, "ok")) {
                if (ret_message)
                        *ret_message = NULL;
                return 0;
        }
        if (ret_message) {
                *ret_message = strdup(first ? first : "integrity check failed");
                if (!*ret_message)
                        return -ENOMEM;
        }
        return -EUCLEAN;
}

int db_ping(struct db *db) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *stmt = NULL;
        int rc;

        if (!db)
                return -EINVAL;
        rc = sqlite3_prepare_v2(db->sqlite, "SELECT count(*) FROM sqlite_schema", -1, &stmt, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW) {
                log_debug("Database %s: ping: %s", db->path, sqlite3_errmsg(db->sqlite));
                return rc == SQLITE_DONE ? -EIO : db_errno(db, rc);
        }
        return 0;
}

int db_checkpoint(struct db *db) {
        if (!db)
                return -EINVAL;
        int rc = sqlite3_wal_checkpoint_v2(db->sqlite, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK) {
                log_debug("Database %s: checkpoint: %s", db->path, sqlite3_errmsg(db->sqlite));
                return db_errno(db, rc);
        }
        return 0;
}
