/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwd's SQLite database: one connection, WAL, foreign keys, a short
 * busy timeout, and the numbered migrations of db/NNNN-*.sql (embedded at
 * build time) applied in order, each in one transaction with
 * PRAGMA user_version.  The model lives in memory (manager.h); this file
 * loads it at start and writes dirty objects back in batches.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct manager;
struct device;
struct image;
struct job;
struct db;
struct smp_mesh_composition;

/* The schema version this build knows; a newer database is refused
 * (-EPROTONOSUPPORT) rather than written with an older idea of it. */
unsigned db_schema_version(void);

/* Opens or creates the database file (and its directory's WAL files),
 * sets the pragmas, applies pending migrations.  Logs its errors. */
int db_open(const char *path, struct db **ret);
struct db *db_close(struct db *db);

/* Loads devices (with slots), images and jobs into the manager's arrays.
 * Jobs found running (the daemon stopped or crashed during them) come
 * back as queued with their progress and without the interrupted
 * attempt in `attempts` (a job-interrupted history row is queued); the
 * manager restarts them.  Unfinished jobs get their slots before the
 * job (job_slots_before). */
int db_load(struct db *db, struct manager *m);

/* Immediate inserts, which assign the row id. */
int db_device_insert(struct db *db, struct device *d);
int db_image_insert(struct db *db, const struct image *img);
int db_job_insert(struct db *db, struct job *j);
int db_device_delete(struct db *db, uint64_t device_id);
/* Replaces a device's labels in one transaction (device_label). */
int db_device_labels_set(struct db *db, uint64_t device_id, const char *const *labels, size_t n);
int db_image_delete(struct db *db, const char *image_id);
/* Replaces the boards an image declares (image-boards.h); -ENOENT: no
 * such image row. */
int db_image_boards_set(struct db *db, const char *image_id, const char *const *boards, size_t n);
/* Replaces the mesh composition an image declares (NULL: none);
 * -ENOENT: no such image row. */
int db_image_mesh_composition_set(struct db *db, const char *image_id, const struct smp_mesh_composition *comp);
int db_job_delete(struct db *db, uint64_t job_id);

/* Queues a history row; written by the next db_flush().  At most
 * DB_HISTORY_QUEUE_MAX rows wait: a full queue is written at once in a
 * transaction of its own, and only if that fails is the oldest row
 * dropped (counted, db_history_dropped(), and logged as a warning). */
#define DB_HISTORY_QUEUE_MAX 4096u
void db_history_add(struct db *db, uint64_t time_usec, const char *type, uint64_t device_id,
                    const char *image_id, uint64_t job_id, const char *message);
/* How many history rows were dropped so far (queue full, or out of memory). */
uint64_t db_history_dropped(const struct db *db);
/* Write transactions committed since db_open(), migrations included. */
uint64_t db_commits(const struct db *db);

/* Writes every dirty device (and its slots when slots_dirty), every dirty
 * job (and its slots before the job when before_dirty) and the queued
 * history in one transaction, then clears the dirty
 * flags.  On error nothing is cleared, so the next flush tries again.
 * A device only seen again is written when device_row_due() says so. */
int db_flush(struct db *db, struct manager *m);
/* db_flush(), and every device's pending last_seen with it: a clean stop. */
int db_flush_all(struct db *db, struct manager *m);

/* History of a device or a job (0: any), newest first. */
struct db_history_row {
        int64_t id;                    /* 0: still queued, not written yet */
        uint64_t time_usec;
        const char *type;
        uint64_t device_id;            /* 0: none */
        const char *image_id;          /* NULL: none */
        uint64_t job_id;               /* 0: none */
        const char *message;
};
/* The row's strings live until fn returns.  fn returns 0 to go on, > 0 to
 * stop, < 0 to stop with that error.  limit 0: no limit.  Rows still
 * queued for the next flush come first. */
typedef int (*db_history_fn)(const struct db_history_row *row, void *userdata);
int db_history_list(struct db *db, uint64_t device_id, uint64_t job_id, unsigned limit, db_history_fn fn,
                    void *userdata);

/* A device's role and a mesh target's state, written at once
 * (db-distribution.c). */
int db_device_role_save(struct db *db, const struct device *d);
int db_mesh_target_save(struct db *db, const struct device *d);

/* PRAGMA quick_check; 0 when "ok", -EUCLEAN with the first message.
 * It reads every page of the file: tens of milliseconds for a fleet of
 * 10,000 devices, with the loop stopped. */
int db_check(struct db *db, char **ret_message);
/* A read of the schema table: SQLite takes its locks, reads the WAL
 * index and the first page, so a file it cannot lock or read fails here;
 * nothing in it grows with the database.  0, or a negative errno. */
int db_ping(struct db *db);
/* A passive WAL checkpoint, from an idle timer. */
int db_checkpoint(struct db *db);
