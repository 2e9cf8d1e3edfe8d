/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The model's rows: loading devices, slots, images and jobs at start,
 * immediate inserts and deletes, and the batched flush of dirty objects
 * and queued history.
 *
 * Column conventions (db/0001-initial.sql): times are INTEGER µs of
 * CLOCK_REALTIME, and a 0 in memory is NULL in a nullable column;
 * optional numbers (rssi, mcumgr parameters, SMP version, rollout) are
 * NULL when unknown; hashes are lower-case hex.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "db-internal.h"
#include "db.h"
#include "image-boards.h"
#include "log.h"
#include "manager.h"
#include "smpgw/mcuboot-image.h"
#include "smpgw/smp-update.h"
#include "util.h"

#define DEVICE_COLUMNS                                                                                \
        "conn, transport, address, address_type, adapter, name, rssi, state, source, first_seen, "   \
        "last_seen, last_probe, buf_size, buf_count, os_info, bootloader, smp_version, last_error"
#define JOB_COLUMNS                                                                                 \
        "device_id, image_id, rollout_id, mode, state, step, outcome, attempts, max_attempts, "     \
        "bytes_sent, bytes_total, rate, error, created, started, finished, next_attempt, updated, " \
        "phase, checkpoint, reset_time, priority, stage_only, board, swap_usec, forced"

const char *const db_stmt_sql[_DB_STMT_MAX] = {
        [DB_STMT_DEVICE_INSERT] = "INSERT INTO devices (" DEVICE_COLUMNS ") VALUES "
                                  "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        [DB_STMT_DEVICE_UPDATE] = "UPDATE devices SET conn = ?1, transport = ?2, address = ?3, address_type = ?4, "
                                  "adapter = ?5, name = ?6, rssi = ?7, state = ?8, source = ?9, first_seen = ?10, "
                                  "last_seen = ?11, last_probe = ?12, buf_size = ?13, buf_count = ?14, "
                                  "os_info = ?15, bootloader = ?16, smp_version = ?17, last_error = ?18 "
                                  "WHERE id = ?19",
        [DB_STMT_SLOTS_DELETE] = "DELETE FROM device_slots WHERE device_id = ?1",
        /* OR REPLACE: a device that reports one image/slot pair twice
         * must not make every later flush fail on the primary key. */
        [DB_STMT_SLOT_INSERT] = "INSERT OR REPLACE INTO device_slots (device_id, image, slot, version, hash, "
                                "bootable, pending, confirmed, active, permanent) VALUES "
                                "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        [DB_STMT_IMAGE_INSERT] = "INSERT INTO images (id, name, version, file_size, image_size, file_sha256, "
                                 "signed, key, added, boards, mesh_comp_hash, mesh_comp_elements) VALUES "
                                 "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        [DB_STMT_JOB_INSERT] = "INSERT INTO jobs (" JOB_COLUMNS ") VALUES "
                               "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
                               "?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)",
        [DB_STMT_JOB_UPDATE] = "UPDATE jobs SET device_id = ?1, image_id = ?2, rollout_id = ?3, mode = ?4, "
                               "state = ?5, step = ?6, outcome = ?7, attempts = ?8, max_attempts = ?9, "
                               "bytes_sent = ?10, bytes_total = ?11, rate = ?12, error = ?13, created = ?14, "
                               "started = ?15, finished = ?16, next_attempt = ?17, updated = ?18, phase = ?19, "
                               "checkpoint = ?20, reset_time = ?21, priority = ?22, stage_only = ?23, board = ?24, "
                               "swap_usec = ?25, forced = ?26 WHERE id = ?27",
        [DB_STMT_JOB_BEFORE_DELETE] = "DELETE FROM job_slots_before WHERE job_id = ?1",
        [DB_STMT_JOB_BEFORE_INSERT] = "INSERT OR REPLACE INTO job_slots_before (job_id, image, slot, version, "
                                      "hash, bootable, pending, confirmed, active, permanent) VALUES "
                                      "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        /* In parentheses: clang's -Wstring-concatenation takes the only
         * two-piece literal of a list for a missing comma. */
        [DB_STMT_EVENT_INSERT] = ("INSERT INTO events (time, type, device_id, image_id, job_id, message) "
                                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
};

static const char *strempty(const char *s) {
        return s ?: "";
}

/* ---- binding and reading columns ---- */

/* Collects the first bind error so a row's binds read as a list. */
struct binder {
        sqlite3_stmt *stmt;
        int rc;
};

static void bind_text(struct binder *b, int i, const char *v) {
        if (b->rc != SQLITE_OK)
                return;
        /* STATIC: every caller steps and resets before v goes away. */
        b->rc = v ? sqlite3_bind_text(b->stmt, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(b->stmt, i);
}

static void bind_int64(struct binder *b, int i, int64_t v) {
        if (b->rc == SQLITE_OK)
                b->rc = sqlite3_bind_int64(b->stmt, i, v);
}

static void bind_u64(struct binder *b, int i, uint64_t v) {
        bind_int64(b, i, (int64_t) v);
}

static void bind_u64_or_null(struct binder *b, int i, uint64_t v) {
        if (v == 0) {
                if (b->rc == SQLITE_OK)
                        b->rc = sqlite3_bind_null(b->stmt, i);
        } else
                bind_u64(b, i, v);
}

static void bind_double(struct binder *b, int i, double v) {
        if (b->rc == SQLITE_OK)
                b->rc = sqlite3_bind_double(b->stmt, i, v);
}

static bool column_is_null(sqlite3_stmt *stmt, int i) {
        return sqlite3_column_type(stmt, i) == SQLITE_NULL;
}

static uint64_t column_u64(sqlite3_stmt *stmt, int i) {
        return (uint64_t) sqlite3_column_int64(stmt, i);
}

static const char *column_text(sqlite3_stmt *stmt, int i) {
        return (const char *) sqlite3_column_text(stmt, i);
}

/* A copy of a nullable text column; NULL stays NULL. */
static int column_strdup(sqlite3_stmt *stmt, int i, char **ret) {
        if (column_is_null(stmt, i)) {
                *ret = NULL;
                return 0;
        }
        /* NULL for a value that is not NULL: SQLite ran out of memory
         * converting it. */
        const char *v = column_text(stmt, i);
        if (!v)
                return -ENOMEM;
        char *s = strdup(v);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static void column_copy(sqlite3_stmt *stmt, int i, char *buf, size_t size) {
        const char *v = column_text(stmt, i);
        snprintf(buf, size, "%s", v ? v : "");
}

/* Steps a statement that returns no rows. */
static int step_done(struct db *db, sqlite3_stmt *stmt) {
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_DONE)
                return 0;
        log_debug("database: %s: %s", sqlite3_sql(stmt), sqlite3_errmsg(db->sqlite));
        return db_errno(db, rc);
}

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Returns the byte count, or -EINVAL for odd length, a non-hex digit or
 * more than size bytes. */
static int hex_decode(const char *hex, uint8_t *out, size_t size) {
        size_t len = strlen(hex);
        if (len % 2 != 0 || len / 2 > size)
                return -EINVAL;
        for (size_t i = 0; i < len / 2; i++) {
                int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[i] = (uint8_t) (hi << 4 | lo);
        }
        return (int) (len / 2);
}

static int step_from_string(const char *s) {
        for (int i = 0; i < _SMP_UPDATE_STEP_MAX; i++)
                if (streq_ptr(s, smp_update_step_to_string((enum smp_update_step) i)))
                        return i;
        return -EINVAL;
}

static int outcome_from_string(const char *s) {
        for (int i = 0; i < _SMP_UPDATE_OUTCOME_MAX; i++)
                if (streq_ptr(s, smp_update_outcome_to_string((enum smp_update_outcome) i)))
                        return i;
        return -EINVAL;
}

/* ---- rows ---- */

static int device_bind(struct binder *b, const struct device *d) {
        bind_text(b, 1, d->conn);
        bind_text(b, 2, d->transport);
        bind_text(b, 3, d->address);
        bind_text(b, 4, d->address_type);
        bind_text(b, 5, d->adapter);
        bind_text(b, 6, d->name);
        if (d->has_rssi)
                bind_int64(b, 7, d->rssi);
        else
                bind_text(b, 7, NULL);
        bind_text(b, 8, device_state_to_string(d->state) ?: "new");
        bind_text(b, 9, d->source);
        bind_u64(b, 10, d->first_seen_usec);
        bind_u64(b, 11, d->last_seen_usec);
        bind_u64_or_null(b, 12, d->last_probe_usec);
        if (d->has_params) {
                bind_u64(b, 13, d->buf_size);
                bind_u64(b, 14, d->buf_count);
        } else {
                bind_text(b, 13, NULL);
                bind_text(b, 14, NULL);
        }
        bind_text(b, 15, d->os_info);
        bind_text(b, 16, d->bootloader);
        bind_u64_or_null(b, 17, d->smp_version);
        bind_text(b, 18, d->last_error);
        return b->rc;
}

/* Replaces the stored rows of a snapshot (a device's slots, or a job's
 * slots before it) by the snapshot, with the given statements: a delete
 * by owner id and an insert of (owner id, image, slot, version, hash,
 * bootable, pending, confirmed, active, permanent).  Inside the caller's
 * transaction. */
static int write_snapshot(struct db *db, enum db_stmt_id delete_id, enum db_stmt_id insert_id, uint64_t owner_id,
                          const struct smp_update_snapshot *snap) {
        sqlite3_stmt *stmt;
        int r;

        r = db_stmt(db, delete_id, &stmt);
        if (r < 0)
                return r;
        {
                _cleanup_(db_stmt_resetp) sqlite3_stmt *del = stmt;
                struct binder b = { del, SQLITE_OK };
                bind_u64(&b, 1, owner_id);
                if (b.rc != SQLITE_OK)
                        return db_errno(db, b.rc);
                r = step_done(db, del);
                if (r < 0)
                        return r;
        }

        r = db_stmt(db, insert_id, &stmt);
        if (r < 0)
                return r;
        for (size_t i = 0; i < MIN(snap->n_slots, (size_t) SMP_UPDATE_SLOTS_MAX); i++) {
                const struct smp_update_slot *s = &snap->slots[i];
                _cleanup_(db_stmt_resetp) sqlite3_stmt *ins = stmt;
                char hash[2 * sizeof(s->hash) + 1];
                char version[sizeof(s->version) + 1];

                if (!s->present)
                        continue;
                hex_encode(s->hash, MIN(s->hash_len, sizeof(s->hash)), hash);
                /* The snapshot's version is a fixed buffer filled from the
                 * device's answer: make sure it ends. */
                snprintf(version, sizeof(version), "%.*s", (int) sizeof(s->version), s->version);

                struct binder b = { ins, SQLITE_OK };
                bind_u64(&b, 1, owner_id);
                bind_u64(&b, 2, s->image);
                bind_u64(&b, 3, s->slot);
                bind_text(&b, 4, version);
                bind_text(&b, 5, hash);
                bind_int64(&b, 6, s->bootable);
                bind_int64(&b, 7, s->pending);
                bind_int64(&b, 8, s->confirmed);
                bind_int64(&b, 9, s->active);
                bind_int64(&b, 10, s->permanent);
                if (b.rc != SQLITE_OK)
                        return db_errno(db, b.rc);
                r = step_done(db, ins);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int device_write_slots(struct db *db, const struct device *d) {
        return write_snapshot(db, DB_STMT_SLOTS_DELETE, DB_STMT_SLOT_INSERT, d->id, d->slots);
}

static int job_write_before(struct db *db, const struct job *j) {
        return write_snapshot(db, DB_STMT_JOB_BEFORE_DELETE, DB_STMT_JOB_BEFORE_INSERT, j->id, &j->before);
}

static int job_bind(struct binder *b, const struct job *j) {
        bind_u64(b, 1, j->device_id);
        bind_text(b, 2, j->image_id);
        bind_u64_or_null(b, 3, j->rollout_id);
        bind_text(b, 4, smp_update_mode_to_string(j->mode) ?: "test-and-confirm");
        bind_text(b, 5, job_state_to_string(j->state) ?: "failed");
        bind_text(b, 6, j->has_step ? smp_update_step_to_string(j->step) : NULL);
        bind_text(b, 7, j->has_outcome ? smp_update_outcome_to_string(j->outcome) : NULL);
        bind_u64(b, 8, j->attempts);
        bind_u64(b, 9, j->max_attempts);
        bind_u64(b, 10, j->bytes_sent);
        bind_u64(b, 11, j->bytes_total);
        bind_double(b, 12, j->rate);
        bind_text(b, 13, j->error);
        bind_u64(b, 14, j->created_usec);
        bind_u64_or_null(b, 15, j->started_usec);
        bind_u64_or_null(b, 16, j->finished_usec);
        bind_u64_or_null(b, 17, j->next_attempt_usec);
        bind_u64(b, 18, j->updated_usec);
        bind_text(b, 19, smp_update_phase_to_string(j->phase) ?: "stage");
        char cp[SMP_UPDATE_CHECKPOINT_STRING_MAX];
        bool has_cp = j->has_checkpoint && smp_update_checkpoint_format(&j->checkpoint, cp, sizeof(cp)) >= 0;
        bind_text(b, 20, has_cp ? cp : NULL);
        bind_u64_or_null(b, 21, j->has_checkpoint ? j->checkpoint.reset_usec : 0);
        bind_int64(b, 22, j->priority);
        bind_int64(b, 23, j->stage_only);
        bind_text(b, 24, j->board[0] ? j->board : NULL);
        bind_u64_or_null(b, 25, j->swap_usec);
        bind_int64(b, 26, j->forced);
        return b->rc;
}

/* ---- loading ---- */

DEFINE_TRIVIAL_CLEANUP_FUNC(struct device *, device_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct image *, image_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct job *, job_free);

static int db_prepare(struct db *db, const char *sql, sqlite3_stmt **ret) {
        int rc = sqlite3_prepare_v2(db->sqlite, sql, -1, ret, NULL);
        if (rc != SQLITE_OK) {
                log_debug("database: %s: %s", sql, sqlite3_errmsg(db->sqlite));
                return db_errno(db, rc);
        }
        return 0;
}

/* Reads the rows of one snapshot (image, slot, version, hash, bootable,
 * pending, confirmed, active, permanent) for owner_id; d or j name the
 * owner in warnings. */
static int load_snapshot(struct db *db, sqlite3_stmt *stmt, uint64_t owner_id, const struct device *d,
                         const struct job *j, struct smp_update_snapshot *ret) {
        _cleanup_(db_stmt_resetp) sqlite3_stmt *q = stmt;
        int rc;

        rc = sqlite3_bind_int64(q, 1, (int64_t) owner_id);
        if (rc != SQLITE_OK)
                return db_errno(db, rc);
        *ret = (struct smp_update_snapshot) {};
        while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
                if (ret->n_slots >= SMP_UPDATE_SLOTS_MAX) {
                        log_full_errno(LOG_WARNING, 0, d, j, NULL, "More than %d stored slots, ignoring the rest",
                                       SMP_UPDATE_SLOTS_MAX);
                        break;
                }
                struct smp_update_slot *s = &ret->slots[ret->n_slots];
                const char *hash = column_text(q, 3);
                int n = hash ? hex_decode(hash, s->hash, sizeof(s->hash)) : -EINVAL;
                if (n < 0) {
                        log_full_errno(LOG_WARNING, 0, d, j, NULL, "Stored slot %d/%d has a bad hash, ignoring it",
                                       sqlite3_column_int(q, 0), sqlite3_column_int(q, 1));
                        continue;
                }
                s->hash_len = (size_t) n;
                s->present = true;
                s->image = (uint32_t) sqlite3_column_int64(q, 0);
                s->slot = (uint32_t) sqlite3_column_int64(q, 1);
                column_copy(q, 2, s->version, sizeof(s->version));
                /* Rows written before versions were normalized: "1.2.3.4". */
                (void) mcuboot_version_normalize(s->version, sizeof(s->version));
                s->bootable = sqlite3_column_int(q, 4);
                s->pending = sqlite3_column_int(q, 5);
                s->confirmed = sqlite3_column_int(q, 6);
                s->active = sqlite3_column_int(q, 7);
                s->permanent = sqlite3_column_int(q, 8);
                ret->n_slots++;
        }
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                return db_errno(db, rc);
        return 0;
}

static int load_devices(struct db *db, struct manager *m) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *stmt = NULL, *slots = NULL;
        int rc, r;

        r = db_prepare(db, "SELECT id, " DEVICE_COLUMNS " FROM devices ORDER BY id", &stmt);
        if (r < 0)
                return r;
        r = db_prepare(db,
                       "SELECT image, slot, version, hash, bootable, pending, confirmed, active, permanent "
                       "FROM device_slots WHERE device_id = ?1 ORDER BY image, slot",
                       &slots);
        if (r < 0)
                return r;

        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                _cleanup_(device_freep) struct device *d = calloc(1, sizeof(*d));
                if (!d)
                        return -ENOMEM;
                d->manager = m;
                d->slots = &device_slots_none;
                d->id = column_u64(stmt, 0);
                column_copy(stmt, 2, d->transport, sizeof(d->transport));
                if ((r = column_strdup(stmt, 1, &d->conn)) < 0 || (r = column_strdup(stmt, 4, &d->address_type)) < 0 ||
                    (r = column_strdup(stmt, 5, &d->adapter)) < 0 || (r = column_strdup(stmt, 6, &d->name)) < 0 ||
                    (r = column_strdup(stmt, 15, &d->os_info)) < 0 || (r = column_strdup(stmt, 18, &d->last_error)) < 0)
                        return r;
                os_info_locate(d->os_info, &d->os_spans);
                if (!column_is_null(stmt, 16)) {
                        const char *bootloader = column_text(stmt, 16);
                        r = bootloader ? device_set_bootloader(d, bootloader, strlen(bootloader)) : -ENOMEM;
                        if (r < 0)
                                return r;
                }
                if (!column_is_null(stmt, 3)) {
                        const char *address = column_text(stmt, 3);
                        r = address ? device_set_address(d, address, NULL) : -ENOMEM;
                        if (r < 0)
                                return r;
                }
                if (!column_is_null(stmt, 7)) {
                        d->has_rssi = true;
                        d->rssi = (int16_t) sqlite3_column_int(stmt, 7);
                }
                int state = device_state_from_string(column_text(stmt, 8));
                if (state < 0) {
                        log_device(LOG_WARNING, d, "Unknown stored state '%s', taking it as new",
                                   strempty(column_text(stmt, 8)));
                        state = DEVICE_NEW;
                        d->dirty = true;
                }
                d->state = (enum device_state) state;
                column_copy(stmt, 9, d->source, sizeof(d->source));
                d->first_seen_usec = column_u64(stmt, 10);
                d->last_seen_usec = column_u64(stmt, 11);
                d->stored_last_seen_sec = (uint32_t) (d->last_seen_usec / UINT64_C(1000000));
                d->last_probe_usec = column_is_null(stmt, 12) ? 0 : column_u64(stmt, 12);
                if (!column_is_null(stmt, 13) && !column_is_null(stmt, 14)) {
                        d->has_params = true;
                        d->buf_size = (uint32_t) sqlite3_column_int64(stmt, 13);
                        d->buf_count = (uint32_t) sqlite3_column_int64(stmt, 14);
                }
                d->smp_version = (uint8_t) sqlite3_column_int(stmt, 17);

                struct smp_update_snapshot snap;
                r = load_snapshot(db, slots, d->id, d, NULL, &snap);
                if (r < 0)
                        return r;
                r = device_set_slots(d, &snap);
                if (r < 0)
                        return r;

                r = manager_attach_device(m, d);
                if (r < 0)
                        return r;
                TAKE_PTR(d);
        }
        if (rc != SQLITE_DONE)
                return db_errno(db, rc);
        return 0;
}

/* Columns i and i + 1: the hash and element count, both NULL for none.
 * Values no client could have set (a row edited by hand) read as none. */
static void load_mesh_composition(sqlite3_stmt *stmt, int i, struct image *img) {
        if (sqlite3_column_type(stmt, i) == SQLITE_NULL && sqlite3_column_type(stmt, i + 1) == SQLITE_NULL)
                return;
        int64_t hash = sqlite3_column_int64(stmt, i), elements = sqlite3_column_int64(stmt, i + 1);
        if (sqlite3_column_type(stmt, i) != SQLITE_INTEGER || sqlite3_column_type(stmt, i + 1) != SQLITE_INTEGER ||
            hash < 0 || hash > UINT32_MAX || elements < 1 || elements > UINT16_MAX) {
                log_warning("Image %s: stored mesh composition is not valid, taken as none", img->id);
                return;
        }
        img->has_mesh_composition = true;
        img->mesh_composition =
                (struct smp_mesh_composition) { .hash = (uint32_t) hash, .elements = (uint16_t) elements };
}

static int load_images(struct db *db, struct manager *m) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *stmt = NULL;
        int rc, r;

        r = db_prepare(db,
                       "SELECT id, name, version, file_size, image_size, file_sha256, signed, key, added, boards, "
                       "mesh_comp_hash, mesh_comp_elements FROM images ORDER BY added, id",
                       &stmt);
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                _cleanup_(image_freep) struct image *img = calloc(1, sizeof(*img));
                if (!img)
                        return -ENOMEM;
                img->manager = m;
                column_copy(stmt, 0, img->id, sizeof(img->id));
                if ((r = column_strdup(stmt, 1, &img->name)) < 0 || (r = column_strdup(stmt, 7, &img->key)) < 0)
                        return r;
                column_copy(stmt, 2, img->version, sizeof(img->version));
                img->file_size = column_u64(stmt, 3);
                img->image_size = (uint32_t) sqlite3_column_int64(stmt, 4);
                column_copy(stmt, 5, img->file_sha256, sizeof(img->file_sha256));
                img->signed_ = sqlite3_column_int(stmt, 6) != 0;
                img->added_usec = column_u64(stmt, 8);
                r = image_boards_split((const char *) sqlite3_column_text(stmt, 9), &img->boards, &img->n_boards);
                if (r < 0)
                        return r;
                load_mesh_composition(stmt, 10, img);
                /* image_store_init() fills it when the directory is not
                 * known yet. */
                if (m->images_dir && asprintf(&img->path, "%s/%s.img", m->images_dir, img->id) < 0) {
                        img->path = NULL;
                        return -ENOMEM;
                }
                r = manager_attach_image(m, img);
                if (r < 0)
                        return r;
                TAKE_PTR(img);
        }
        if (rc != SQLITE_DONE)
                return db_errno(db, rc);
        return 0;
}

static int load_jobs(struct db *db, struct manager *m) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *stmt = NULL, *before = NULL;
        int rc, r;

        r = db_prepare(db, "SELECT id, " JOB_COLUMNS " FROM jobs ORDER BY id", &stmt);
        if (r < 0)
                return r;
        r = db_prepare(db,
                       "SELECT image, slot, version, hash, bootable, pending, confirmed, active, permanent "
                       "FROM job_slots_before WHERE job_id = ?1 ORDER BY image, slot",
                       &before);
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                _cleanup_(job_freep) struct job *j = calloc(1, sizeof(*j));
                if (!j)
                        return -ENOMEM;
                j->manager = m;
                j->id = column_u64(stmt, 0);
                j->device_id = column_u64(stmt, 1);
                column_copy(stmt, 2, j->image_id, sizeof(j->image_id));
                j->rollout_id = column_is_null(stmt, 3) ? 0 : column_u64(stmt, 3);

                int mode = smp_update_mode_from_string(column_text(stmt, 4));
                if (mode < 0) {
                        log_job(LOG_WARNING, j, "Unknown stored mode '%s', taking test-and-confirm",
                                strempty(column_text(stmt, 4)));
                        mode = SMP_UPDATE_TEST_AND_CONFIRM;
                        j->dirty = true;
                }
                j->mode = (enum smp_update_mode) mode;

                int state = job_state_from_string(column_text(stmt, 5));
                if (state < 0) {
                        /* Nothing says what it was doing: do not run it. */
                        log_job(LOG_WARNING, j, "Unknown stored state '%s', taking it as failed",
                                strempty(column_text(stmt, 5)));
                        state = JOB_FAILED;
                        j->dirty = true;
                }
                j->state = (enum job_state) state;

                if (!column_is_null(stmt, 6)) {
                        int step = step_from_string(column_text(stmt, 6));
                        if (step >= 0) {
                                j->has_step = true;
                                j->step = (enum smp_update_step) step;
                        }
                }
                if (!column_is_null(stmt, 7)) {
                        int outcome = outcome_from_string(column_text(stmt, 7));
                        if (outcome >= 0) {
                                j->has_outcome = true;
                                j->outcome = (enum smp_update_outcome) outcome;
                        }
                }
                j->attempts = (unsigned) sqlite3_column_int64(stmt, 8);
                j->max_attempts = (unsigned) sqlite3_column_int64(stmt, 9);
                j->bytes_sent = column_u64(stmt, 10);
                j->bytes_total = column_u64(stmt, 11);
                j->rate = sqlite3_column_double(stmt, 12);
                r = column_strdup(stmt, 13, &j->error);
                if (r < 0)
                        return r;
                j->created_usec = column_u64(stmt, 14);
                j->started_usec = column_is_null(stmt, 15) ? 0 : column_u64(stmt, 15);
                j->finished_usec = column_is_null(stmt, 16) ? 0 : column_u64(stmt, 16);
                j->next_attempt_usec = column_is_null(stmt, 17) ? 0 : column_u64(stmt, 17);
                j->updated_usec = column_u64(stmt, 18);
                int phase = smp_update_phase_from_string(column_text(stmt, 19));
                j->phase = phase >= 0 ? (enum smp_update_phase) phase : SMP_UPDATE_PHASE_STAGE;
                if (!column_is_null(stmt, 20)) {
                        if (smp_update_checkpoint_parse(column_text(stmt, 20), &j->checkpoint) >= 0)
                                j->has_checkpoint = true;
                        else {
                                /* Without it only a stage can go on: it
                                 * reads the device again. */
                                log_job(LOG_WARNING, j, "Unreadable stored checkpoint, the job stages again");
                                j->phase = SMP_UPDATE_PHASE_STAGE;
                                j->dirty = true;
                        }
                } else if (j->phase != SMP_UPDATE_PHASE_STAGE) {
                        j->phase = SMP_UPDATE_PHASE_STAGE;
                        j->dirty = true;
                }
                j->priority = sqlite3_column_int64(stmt, 22);
                j->stage_only = sqlite3_column_int64(stmt, 23) != 0;
                column_copy(stmt, 24, j->board, sizeof(j->board));
                j->swap_usec = column_is_null(stmt, 25) ? 0 : column_u64(stmt, 25);
                j->forced = sqlite3_column_int64(stmt, 26) != 0;

                /* Past its stage, the attempt goes on (activate, verify
                 * follow from the checkpoint). */
                j->attempt_open = j->phase != SMP_UPDATE_PHASE_STAGE;
                if (j->state == JOB_STAGED && !j->stage_only) {
                        /* Held by the reboot gate: it asks again. */
                        j->state = JOB_QUEUED;
                        j->dirty = true;
                }
                if (j->state == JOB_RUNNING) {
                        /* The daemon died during it (kill -9, a crash, power):
                         * like a SIGTERM stop, the interrupted attempt does not
                         * count, and the job is queued again with its progress
                         * (and its phase) so the manager resumes it. */
                        if (j->attempts > 0 && !j->attempt_open)
                                j->attempts--;
                        j->state = JOB_QUEUED;
                        j->dirty = true;
                        log_job_state(LOG_NOTICE, j,
                                      "Interrupted during attempt %u (the daemon did not stop cleanly); it does "
                                      "not count, the job resumes at %" PRIu64 " of %" PRIu64 " bytes",
                                      j->attempts + 1, j->bytes_sent, j->bytes_total);
                        char msg[128];
                        snprintf(msg, sizeof(msg), "attempt %u interrupted at %" PRIu64 " bytes (daemon died)",
                                 j->attempts + 1, j->bytes_sent);
                        db_history_add(db, now_realtime_usec(), "job-interrupted", j->device_id, j->image_id,
                                       j->id, msg);
                }
                if (!job_is_finished(j) && j->max_attempts > 0 && j->attempts >= j->max_attempts) {
                        /* Counted by an older smpgwd, which counted every
                         * interrupted attempt: leave it its last one. */
                        log_job(LOG_WARNING, j, "Stored attempts %u of %u for an unfinished job, taking %u",
                                j->attempts, j->max_attempts, j->max_attempts - 1);
                        j->attempts = j->max_attempts - 1;
                        j->dirty = true;
                }
                /* Finished jobs never judge an outcome again: only the
                 * unfinished need their slots before in memory. */
                if (!job_is_finished(j)) {
                        r = load_snapshot(db, before, j->id, NULL, j, &j->before);
                        if (r < 0)
                                return r;
                }

                /* The swap times its verifies measured: learned again. */
                if (j->swap_usec > 0)
                        job_swap_record(m, j->board, j->bytes_total, j->swap_usec);
                r = manager_attach_job(m, j);
                if (r < 0)
                        return r;
                TAKE_PTR(j);
        }
        if (rc != SQLITE_DONE)
                return db_errno(db, rc);
        return 0;
}

static int load_device_labels(struct db *db, struct manager *m);

int db_load(struct db *db, struct manager *m) {
        int r;

        if (!db || !m)
                return -EINVAL;
        /* One read transaction: a consistent view even if an outside
         * tool writes while we read. */
        r = db_exec(db, "BEGIN");
        if (r < 0)
                return r;
        r = load_devices(db, m);
        if (r >= 0)
                r = load_device_labels(db, m);
        if (r >= 0)
                r = load_images(db, m);
        if (r >= 0)
                r = load_jobs(db, m);
        if (r < 0)
                log_debug("database %s: load: %s", db->path, sqlite3_errmsg(db->sqlite));
        db_rollback(db);
        return r;
}

/* ---- immediate writes ---- */

/* An immediate write that failed for a reason of the disk's or SQLite's,
 * said in the log with SQLite's own words (the caller only passes an
 * errno on, and its client sees no more than that). */
_printf_(3, 4) static int log_write_failed(struct db *db, int error, const char *fmt, ...) {
        char what[128];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        return log_error_errno(error, "Database %s: %s failed: %s (%m)", db->path, what,
                               sqlite3_errmsg(db->sqlite));
}

int db_device_insert(struct db *db, struct device *d) {
        sqlite3_stmt *stmt;
        int r;

        if (!db || !d)
                return -EINVAL;
        r = db_stmt(db, DB_STMT_DEVICE_INSERT, &stmt);
        if (r < 0)
                return r;
        r = db_exec(db, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        {
                _cleanup_(db_stmt_resetp) sqlite3_stmt *ins = stmt;
                struct binder b = { ins, SQLITE_OK };
                if (device_bind(&b, d) != SQLITE_OK)
                        r = db_errno(db, b.rc);
                else
                        r = step_done(db, ins);
        }
        if (r >= 0) {
                d->id = (uint64_t) sqlite3_last_insert_rowid(db->sqlite);
                if (d->slots->n_slots > 0)
                        r = device_write_slots(db, d);
        }
        if (r >= 0)
                r = db_exec(db, "COMMIT");
        if (r < 0) {
                db_rollback(db);
                d->id = 0;
                return r;
        }
        device_row_written(d);
        d->slots_dirty = false;
        return 0;
}

int db_image_insert(struct db *db, const struct image *img) {
        sqlite3_stmt *stmt;
        int r;

        if (!db || !img)
                return -EINVAL;
        r = db_stmt(db, DB_STMT_IMAGE_INSERT, &stmt);
        if (r < 0)
                return r;
        _cleanup_(db_stmt_resetp) sqlite3_stmt *ins = stmt;
        struct binder b = { ins, SQLITE_OK };
        bind_text(&b, 1, img->id);
        bind_text(&b, 2, img->name);
        bind_text(&b, 3, img->version);
        bind_u64(&b, 4, img->file_size);
        bind_u64(&b, 5, img->image_size);
        bind_text(&b, 6, img->file_sha256);
        bind_int64(&b, 7, img->signed_);
        bind_text(&b, 8, img->key);
        bind_u64(&b, 9, img->added_usec);
        _cleanup_free_ char *boards = image_boards_join((const char *const *) img->boards, img->n_boards);
        if (!boards)
                return -ENOMEM;
        bind_text(&b, 10, boards);
        if (img->has_mesh_composition) {
                bind_u64(&b, 11, img->mesh_composition.hash);
                bind_u64(&b, 12, img->mesh_composition.elements);
        } else {
                bind_text(&b, 11, NULL);
                bind_text(&b, 12, NULL);
        }
        if (b.rc != SQLITE_OK)
                return db_errno(db, b.rc);
        /* The image file was fsync'ed already; with NORMAL a power loss
         * could still roll the row back, and the start-up sweep would
         * then delete the file of an upload that was answered "stored".
         * Rare and precious: this commit syncs the WAL. */
        r = db_exec(db, "PRAGMA synchronous = FULL");
        if (r < 0)
                return r;
        r = step_done(db, ins);
        int k = db_exec(db, "PRAGMA synchronous = NORMAL");
        if (k < 0)
                log_warning_errno(k, "Database %s: cannot return to synchronous=NORMAL: %m", db->path);
        return r;
}

int db_job_insert(struct db *db, struct job *j) {
        sqlite3_stmt *stmt;
        int r;

        if (!db || !j)
                return -EINVAL;
        r = db_stmt(db, DB_STMT_JOB_INSERT, &stmt);
        if (r < 0)
                return r;
        _cleanup_(db_stmt_resetp) sqlite3_stmt *ins = stmt;
        struct binder b = { ins, SQLITE_OK };
        if (job_bind(&b, j) != SQLITE_OK)
                return db_errno(db, b.rc);
        r = step_done(db, ins);
        if (r < 0)
                return r == -EINVAL || r == -EEXIST ? r : log_write_failed(db, r, "recording a job");
        j->id = (uint64_t) sqlite3_last_insert_rowid(db->sqlite);
        j->dirty = false;
        return 0;
}

/* Runs a one-parameter DELETE; -ENOENT when it matched no row. */
static int delete_row(struct db *db, const char *sql, uint64_t id, const char *text_id) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *stmt = NULL;
        int r = db_prepare(db, sql, &stmt);
        if (r < 0)
                return r;
        struct binder b = { stmt, SQLITE_OK };
        if (text_id)
                bind_text(&b, 1, text_id);
        else
                bind_u64(&b, 1, id);
        if (b.rc != SQLITE_OK)
                return db_errno(db, b.rc);
        r = step_done(db, stmt);
        if (r < 0)
                return r;
        return sqlite3_changes(db->sqlite) > 0 ? 0 : -ENOENT;
}

/* Forgetting a device forgets what happened to it: the queued rows go
 * with the stored ones. */
static void history_queue_drop_device(struct db *db, uint64_t device_id) {
        size_t kept = 0;

        for (size_t i = 0; i < db->n_history; i++) {
                struct db_history_entry *e = &db->history[(db->history_head + i) % DB_HISTORY_QUEUE_MAX];
                if (e->device_id == device_id) {
                        db_history_entry_done(e);
                        continue;
                }
                struct db_history_entry *to = &db->history[(db->history_head + kept) % DB_HISTORY_QUEUE_MAX];
                if (to != e) {
                        *to = *e;
                        *e = (struct db_history_entry) {};
                }
                kept++;
        }
        db->n_history = kept;
}

int db_device_delete(struct db *db, uint64_t device_id) {
        int r;

        if (!db || device_id == 0)
                return -EINVAL;
        r = db_exec(db, "BEGIN IMMEDIATE");
        if (r < 0)
                return log_write_failed(db, r, "forgetting device %" PRIu64, device_id);
        /* Slots and jobs go by ON DELETE CASCADE. */
        r = delete_row(db, "DELETE FROM devices WHERE id = ?1", device_id, NULL);
        if (r >= 0) {
                int q = delete_row(db, "DELETE FROM events WHERE device_id = ?1", device_id, NULL);
                if (q < 0 && q != -ENOENT)
                        r = q;
        }
        if (r >= 0)
                r = db_exec(db, "COMMIT");
        if (r < 0) {
                if (r != -ENOENT)
                        log_write_failed(db, r, "forgetting device %" PRIu64, device_id);
                db_rollback(db);
                return r;
        }
        history_queue_drop_device(db, device_id);
        return 0;
}

int db_device_labels_set(struct db *db, uint64_t device_id, const char *const *labels, size_t n) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *ins = NULL;
        int r, rc;

        if (!db || device_id == 0)
                return -EINVAL;
        r = db_prepare(db, "INSERT INTO device_label (device_id, label) VALUES (?1, ?2)", &ins);
        if (r < 0)
                return r;
        r = db_exec(db, "BEGIN IMMEDIATE");
        if (r < 0)
                return log_write_failed(db, r, "labelling device %" PRIu64, device_id);
        r = delete_row(db, "DELETE FROM device_label WHERE device_id = ?1", device_id, NULL);
        if (r == -ENOENT)
                r = 0;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                sqlite3_bind_int64(ins, 1, (sqlite3_int64) device_id);
                sqlite3_bind_text(ins, 2, labels[i], -1, SQLITE_STATIC);
                rc = sqlite3_step(ins);
                sqlite3_reset(ins);
                if (rc != SQLITE_DONE)
                        r = db_errno(db, rc);
        }
        if (r >= 0)
                r = db_exec(db, "COMMIT");
        if (r < 0) {
                log_write_failed(db, r, "labelling device %" PRIu64, device_id);
                db_rollback(db);
                return r;
        }
        return 0;
}

int db_image_boards_set(struct db *db, const char *image_id, const char *const *boards, size_t n) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *stmt = NULL;
        _cleanup_free_ char *text = NULL;
        int r, rc;

        if (!db || !image_id)
                return -EINVAL;
        text = image_boards_join(boards, n);
        if (!text)
                return -ENOMEM;
        r = db_prepare(db, "UPDATE images SET boards = ?1 WHERE id = ?2", &stmt);
        if (r < 0)
                return r;
        sqlite3_bind_text(stmt, 1, text, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 2, image_id, -1, SQLITE_STATIC);
        rc = sqlite3_step(stmt);
        if (rc != SQLITE_DONE)
                return log_write_failed(db, db_errno(db, rc), "declaring the boards of image %s", image_id);
        if (sqlite3_changes(db->sqlite) == 0)
                return -ENOENT;
        return 0;
}

int db_image_mesh_composition_set(struct db *db, const char *image_id, const struct smp_mesh_composition *comp) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *stmt = NULL;
        int r, rc;

        if (!db || !image_id)
                return -EINVAL;
        r = db_prepare(db, "UPDATE images SET mesh_comp_hash = ?1, mesh_comp_elements = ?2 WHERE id = ?3", &stmt);
        if (r < 0)
                return r;
        if (comp) {
                sqlite3_bind_int64(stmt, 1, comp->hash);
                sqlite3_bind_int64(stmt, 2, comp->elements);
        } else {
                sqlite3_bind_null(stmt, 1);
                sqlite3_bind_null(stmt, 2);
        }
        sqlite3_bind_text(stmt, 3, image_id, -1, SQLITE_STATIC);
        rc = sqlite3_step(stmt);
        if (rc != SQLITE_DONE)
                return log_write_failed(db, db_errno(db, rc), "declaring the mesh composition of image %s", image_id);
        if (sqlite3_changes(db->sqlite) == 0)
                return -ENOENT;
        return 0;
}

static int load_device_labels(struct db *db, struct manager *m) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *stmt = NULL;
        int rc, r;

        r = db_prepare(db, "SELECT device_id, label FROM device_label ORDER BY device_id, label", &stmt);
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                struct device *d = manager_find_device(m, column_u64(stmt, 0));
                const char *label = column_text(stmt, 1);
                char **p;

                if (!d || !label || d->n_labels >= DEVICE_LABELS_MAX)
                        continue;
                p = realloc(d->labels, (d->n_labels + 2) * sizeof(char *));
                if (!p)
                        return -ENOMEM;
                d->labels = p;
                if (!(d->labels[d->n_labels] = strdup(label)))
                        return -ENOMEM;
                d->labels[++d->n_labels] = NULL;
        }
        if (rc != SQLITE_DONE)
                return db_errno(db, rc);
        return 0;
}

int db_image_delete(struct db *db, const char *image_id) {
        if (!db || !image_id)
                return -EINVAL;
        return delete_row(db, "DELETE FROM images WHERE id = ?1", 0, image_id);
}

int db_job_delete(struct db *db, uint64_t job_id) {
        if (!db || job_id == 0)
                return -EINVAL;
        return delete_row(db, "DELETE FROM jobs WHERE id = ?1", job_id, NULL);
}

/* ---- history ---- */

static int history_write(struct db *db, const struct db_history_entry *e);

static void history_queue_clear(struct db *db) {
        for (size_t i = 0; i < db->n_history; i++)
                db_history_entry_done(&db->history[(db->history_head + i) % DB_HISTORY_QUEUE_MAX]);
        db->history_head = db->n_history = 0;
        db->history_drops_unlogged = 0; /* written: a new loss is news again */
}

/* The queued rows alone, in a transaction of their own.  Not inside one
 * that is open already (its rollback would take them along). */
static int history_write_queue(struct db *db) {
        int r;

        if (!sqlite3_get_autocommit(db->sqlite))
                return -EBUSY;
        r = db_exec(db, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        for (size_t i = 0; r >= 0 && i < db->n_history; i++)
                r = history_write(db, &db->history[(db->history_head + i) % DB_HISTORY_QUEUE_MAX]);
        if (r >= 0)
                r = db_exec(db, "COMMIT");
        if (r < 0) {
                db_rollback(db);
                return r;
        }
        history_queue_clear(db);
        return 0;
}

/* A row lost: counted for /metrics, and said in the log at once (the
 * first of a run of losses, then every DB_HISTORY_DROP_LOG_EVERY). */
#define DB_HISTORY_DROP_LOG_EVERY 1024u
static void history_count_drop(struct db *db) {
        if (db->history_drops_unlogged == 0)
                log_warning("Database %s: history queue full (%u rows) and the database cannot be written: "
                            "dropping the oldest rows (%" PRIu64 " dropped so far)",
                            db->path, DB_HISTORY_QUEUE_MAX, db->history_dropped + 1);
        db->history_dropped++;
        db->history_drops_unlogged = (db->history_drops_unlogged + 1) % DB_HISTORY_DROP_LOG_EVERY;
}

void db_history_add(struct db *db, uint64_t time_usec, const char *type, uint64_t device_id,
                    const char *image_id, uint64_t job_id, const char *message) {
        struct db_history_entry e = {
                .time_usec = time_usec,
                .device_id = device_id,
                .job_id = job_id,
        };

        if (!db)
                return;
        if (!db->history) {
                db->history = calloc(DB_HISTORY_QUEUE_MAX, sizeof(*db->history));
                if (!db->history) {
                        history_count_drop(db);
                        return;
                }
        }
        e.type = strdup(type ?: "");
        e.message = strdup(message ?: "");
        e.image_id = image_id ? strdup(image_id) : NULL;
        if (!e.type || !e.message || (image_id && !e.image_id)) {
                db_history_entry_done(&e);
                history_count_drop(db);
                return;
        }
        /* Full: a burst (10,000 devices added or probed within one flush
         * interval) or failing flushes.  Write the queue now in its own
         * transaction; only when that fails too does the oldest row give
         * way (the newest say the most about the current state), counted
         * and logged. */
        if (db->n_history == DB_HISTORY_QUEUE_MAX && history_write_queue(db) < 0) {
                db_history_entry_done(&db->history[db->history_head]);
                db->history_head = (db->history_head + 1) % DB_HISTORY_QUEUE_MAX;
                db->n_history--;
                history_count_drop(db);
        }
        db->history[(db->history_head + db->n_history) % DB_HISTORY_QUEUE_MAX] = e;
        db->n_history++;
}

uint64_t db_history_dropped(const struct db *db) {
        return db ? db->history_dropped : 0;
}

static int history_write(struct db *db, const struct db_history_entry *e) {
        sqlite3_stmt *stmt;
        int r = db_stmt(db, DB_STMT_EVENT_INSERT, &stmt);
        if (r < 0)
                return r;
        _cleanup_(db_stmt_resetp) sqlite3_stmt *ins = stmt;
        struct binder b = { ins, SQLITE_OK };
        bind_u64(&b, 1, e->time_usec);
        bind_text(&b, 2, e->type);
        bind_u64_or_null(&b, 3, e->device_id);
        bind_text(&b, 4, e->image_id);
        bind_u64_or_null(&b, 5, e->job_id);
        bind_text(&b, 6, e->message);
        if (b.rc != SQLITE_OK)
                return db_errno(db, b.rc);
        return step_done(db, ins);
}

/* ---- flush ---- */

static int flush_device(struct db *db, struct device *d, bool all) {
        sqlite3_stmt *stmt;
        int r;

        if (device_row_due(d, all)) {
                r = db_stmt(db, DB_STMT_DEVICE_UPDATE, &stmt);
                if (r < 0)
                        return r;
                _cleanup_(db_stmt_resetp) sqlite3_stmt *upd = stmt;
                struct binder b = { upd, SQLITE_OK };
                device_bind(&b, d);
                bind_u64(&b, 19, d->id);
                if (b.rc != SQLITE_OK)
                        return db_errno(db, b.rc);
                r = step_done(db, upd);
                if (r < 0)
                        return r;
        }
        if (d->slots_dirty) {
                r = device_write_slots(db, d);
                /* A row deleted behind our back (an outside tool): its
                 * slots have nothing to belong to, and failing every
                 * flush over it would lose everything else. */
                if (r == -EINVAL) {
                        log_device(LOG_WARNING, d, "Stored row is gone, slots not written");
                        return 0;
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int flush_job(struct db *db, struct job *j) {
        sqlite3_stmt *stmt;
        int r;

        if (j->dirty) {
                r = db_stmt(db, DB_STMT_JOB_UPDATE, &stmt);
                if (r < 0)
                        return r;
                _cleanup_(db_stmt_resetp) sqlite3_stmt *upd = stmt;
                struct binder b = { upd, SQLITE_OK };
                job_bind(&b, j);
                bind_u64(&b, 27, j->id);
                if (b.rc != SQLITE_OK)
                        return db_errno(db, b.rc);
                r = step_done(db, upd);
                if (r < 0)
                        return r;
        }
        if (j->before_dirty) {
                r = job_write_before(db, j);
                /* As for a device's slots: a row deleted by an outside
                 * tool must not make every flush fail. */
                if (r == -EINVAL) {
                        log_job(LOG_WARNING, j, "Stored row is gone, slots before the job not written");
                        return 0;
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int flush(struct db *db, struct manager *m, bool all) {
        bool anything = db && db->n_history > 0;
        int r;

        if (!db || !m)
                return -EINVAL;
        for (size_t i = 0; !anything && i < m->n_devices; i++)
                anything = device_row_due(m->devices[i], all) || m->devices[i]->slots_dirty;
        for (size_t i = 0; !anything && i < m->n_jobs; i++)
                anything = m->jobs[i]->dirty || m->jobs[i]->before_dirty;
        /* An idle gateway writes nothing: no empty transactions on the
         * SD card. */
        if (!anything)
                return 0;

        r = db_exec(db, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        for (size_t i = 0; r >= 0 && i < m->n_devices; i++)
                r = flush_device(db, m->devices[i], all);
        for (size_t i = 0; r >= 0 && i < m->n_jobs; i++)
                r = flush_job(db, m->jobs[i]);
        for (size_t i = 0; r >= 0 && i < db->n_history; i++)
                r = history_write(db, &db->history[(db->history_head + i) % DB_HISTORY_QUEUE_MAX]);
        if (r >= 0)
                r = db_exec(db, "COMMIT");
        if (r < 0) {
                log_debug("database %s: flush: %s", db->path, sqlite3_errmsg(db->sqlite));
                db_rollback(db);
                return r;
        }

        /* Only now: had the commit failed, all of it is written again by
         * the next flush. */
        for (size_t i = 0; i < m->n_devices; i++) {
                struct device *d = m->devices[i];
                /* Asked again with nothing changed since: the same
                 * answer flush_device() acted on. */
                if (device_row_due(d, all))
                        device_row_written(d);
                d->slots_dirty = false;
        }
        for (size_t i = 0; i < m->n_jobs; i++)
                m->jobs[i]->dirty = m->jobs[i]->before_dirty = false;
        history_queue_clear(db);
        return 0;
}

int db_flush(struct db *db, struct manager *m) {
        return flush(db, m, false);
}

int db_flush_all(struct db *db, struct manager *m) {
        return flush(db, m, true);
}

int db_history_list(struct db *db, uint64_t device_id, uint64_t job_id, unsigned limit, db_history_fn fn,
                    void *userdata) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *stmt = NULL;
        uint64_t left = limit > 0 ? limit : UINT64_MAX;
        int rc, r;

        if (!db || !fn)
                return -EINVAL;

        /* Rows still queued are the newest; listing them first (with id
         * 0: not stored yet) means what just happened is never missing
         * from a history read right after it. */
        for (size_t i = db->n_history; i > 0 && left > 0; i--) {
                const struct db_history_entry *e =
                        &db->history[(db->history_head + i - 1) % DB_HISTORY_QUEUE_MAX];
                if ((device_id && e->device_id != device_id) || (job_id && e->job_id != job_id))
                        continue;
                struct db_history_row row = {
                        .id = 0,
                        .time_usec = e->time_usec,
                        .type = e->type,
                        .device_id = e->device_id,
                        .image_id = e->image_id,
                        .job_id = e->job_id,
                        .message = e->message,
                };
                r = fn(&row, userdata);
                if (r != 0)
                        return r < 0 ? r : 0;
                left--;
        }
        if (left == 0)
                return 0;

        /* The filters spelled out rather than "?1 = 0 OR device_id = ?1",
         * so the planner can use events_device. */
        const char *sql = device_id && job_id ?
                "SELECT id, time, type, device_id, image_id, job_id, message FROM events "
                "WHERE device_id = ?1 AND job_id = ?2 ORDER BY time DESC, id DESC LIMIT ?3" :
                device_id ?
                "SELECT id, time, type, device_id, image_id, job_id, message FROM events "
                "WHERE device_id = ?1 ORDER BY time DESC, id DESC LIMIT ?3" :
                job_id ?
                "SELECT id, time, type, device_id, image_id, job_id, message FROM events "
                "WHERE job_id = ?2 ORDER BY time DESC, id DESC LIMIT ?3" :
                "SELECT id, time, type, device_id, image_id, job_id, message FROM events "
                "ORDER BY time DESC, id DESC LIMIT ?3";
        r = db_prepare(db, sql, &stmt);
        if (r < 0)
                return r;
        struct binder b = { stmt, SQLITE_OK };
        if (device_id)
                bind_u64(&b, 1, device_id);
        if (job_id)
                bind_u64(&b, 2, job_id);
        bind_int64(&b, 3, left > INT64_MAX ? -1 : (int64_t) left);
        if (b.rc != SQLITE_OK)
                return db_errno(db, b.rc);

        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                struct db_history_row row = {
                        .id = sqlite3_column_int64(stmt, 0),
                        .time_usec = column_u64(stmt, 1),
                        .type = column_text(stmt, 2) ?: "",
                        .device_id = column_is_null(stmt, 3) ? 0 : column_u64(stmt, 3),
                        .image_id = column_text(stmt, 4),
                        .job_id = column_is_null(stmt, 5) ? 0 : column_u64(stmt, 5),
                        .message = column_text(stmt, 6) ?: "",
                };
                r = fn(&row, userdata);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        if (rc != SQLITE_DONE)
                return db_errno(db, rc);
        return 0;
}
