/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Databases of every schema version smpgwd ever wrote (tests/fixtures/db,
 * made by the smpgwd of that time: tests/fixtures/db/README.md), opened
 * by today's code, as fwupd's src/fu-history-test.c does with its old
 * history files.  For each, on a copy in a temporary directory:
 *   - the migrations run (db_open) up to today's version, and every row of
 *     every table the old file had is still there, column by column, in
 *     the columns the old file had;
 *   - the file passes integrity_check and foreign_key_check;
 *   - db_load gives the model those devices, images and jobs (the job
 *     left running by a SIGTERM comes back queued with its progress);
 *   - ids are not handed out again afterwards (sqlite_sequence), also for
 *     a device forgotten before the upgrade;
 *   - jobs still name an image removed before the upgrade (version 2 on).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "conf.h"
#include "db-internal.h"
#include "db.h"
#include "log.h"
#include "manager.h"
#include "smpgw/mcuboot-image.h"
#include "test-util.h"

/* daemon/main.c defines these in smpgwd. */
int smpgwd_log_max_level = LOG_WARNING;
bool smpgwd_log_to_journal = false;

/* The image the fixtures' removed image was: imgtool-ecdsa-p256.bin. */
#define ID_P256 "3d4c80af8dbb6df668dc30fc9279e3cc56157ea152e79db900021f1852a25e03"

/* What each stored database holds (README.md says how it was made). */
struct fixture {
        unsigned version;
        unsigned devices, images, jobs;
        bool image_removed;        /* jobs name an image no longer stored */
        bool device_forgotten;     /* a sixth device was added and forgotten */
        unsigned slots_before;     /* job_slots_before rows */
        /* Job 3's state once loaded: queued (0), or retry-wait where the
         * smpgwd of that time counted the SIGTERM as a failed attempt. */
        enum job_state interrupted_state;
};

static const struct fixture fixtures[] = {
        { .version = 1, .devices = 5, .images = 2, .jobs = 4 },
        { .version = 2, .devices = 5, .images = 1, .jobs = 4, .image_removed = true },
        { .version = 3, .devices = 5, .images = 1, .jobs = 4, .image_removed = true, .device_forgotten = true },
        { .version = 4,
          .devices = 5,
          .images = 1,
          .jobs = 4,
          .image_removed = true,
          .device_forgotten = true,
          .slots_before = 3 },
        /* Made by w-radio's smpgwd: the job left running (job 3) had not
         * read the device's slots yet when it stopped, so 2 rows. */
        { .version = 5,
          .devices = 5,
          .images = 1,
          .jobs = 4,
          .image_removed = true,
          .device_forgotten = true,
          .slots_before = 2 },
        { .version = 6,
          .devices = 5,
          .images = 1,
          .jobs = 4,
          .image_removed = true,
          .device_forgotten = true,
          .slots_before = 3,
          .interrupted_state = JOB_RETRY_WAIT },
        { .version = 7,
          .devices = 5,
          .images = 1,
          .jobs = 4,
          .image_removed = true,
          .device_forgotten = true,
          .slots_before = 3,
          .interrupted_state = JOB_RETRY_WAIT },
        /* As version 5's: job 3 was stopped before it read the slots. */
        { .version = 8,
          .devices = 5,
          .images = 1,
          .jobs = 4,
          .image_removed = true,
          .device_forgotten = true,
          .slots_before = 2 },
        /* 6e161ba, before 0010-mesh-direct-path.sql; job 3 as above. */
        { .version = 9,
          .devices = 5,
          .images = 1,
          .jobs = 4,
          .image_removed = true,
          .device_forgotten = true,
          .slots_before = 2 },
        /* 0fdd480, before 0011-image-boards.sql; job 3 as above. */
        { .version = 10,
          .devices = 5,
          .images = 1,
          .jobs = 4,
          .image_removed = true,
          .device_forgotten = true,
          .slots_before = 2 },
        /* 4afdeba, before 0012-job-forced.sql; job 3 as above. */
        { .version = 11,
          .devices = 5,
          .images = 1,
          .jobs = 4,
          .image_removed = true,
          .device_forgotten = true,
          .slots_before = 2 },
        /* da02357, before 0013-image-mesh-composition.sql; job 3 as above. */
        { .version = 12,
          .devices = 5,
          .images = 1,
          .jobs = 4,
          .image_removed = true,
          .device_forgotten = true,
          .slots_before = 2 },
};

/* The tables and the order their rows are compared in. */
static const struct {
        const char *name, *order;
} tables[] = {
        { "devices", "id" },
        { "device_slots", "device_id, image, slot" },
        { "images", "id" },
        { "jobs", "id" },
        { "events", "id" },
        { "job_slots_before", "job_id, image, slot" },
};

/* ---- files ---- */

static char *xasprintf(const char *fmt, ...) _printf_(1, 2);
static char *xasprintf(const char *fmt, ...) {
        va_list ap;
        char *s;
        va_start(ap, fmt);
        ASSERT_TRUE(vasprintf(&s, fmt, ap) >= 0);
        va_end(ap);
        return s;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

/* Copies the stored file: opening it in place would leave -shm and -wal
 * files in the source tree, and migrating it would change it. */
static void copy_file(const char *from, const char *to) {
        _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        char buf[65536];
        ssize_t n;
        if (in < 0)
                fprintf(stderr, "%s: %s\n", from, strerror(errno));
        ASSERT_TRUE(in >= 0 && out >= 0);
        while ((n = read(in, buf, sizeof(buf))) > 0)
                ASSERT_EQ(write(out, buf, (size_t) n), n);
        ASSERT_EQ(n, 0);
}

/* ---- SQLite, as an outside tool reads the file ---- */

static sqlite3 *raw_open(const char *path) {
        sqlite3 *s = NULL;
        ASSERT_EQ(sqlite3_open_v2(path, &s, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        return s;
}

static int64_t raw_int(sqlite3 *s, const char *sql) {
        sqlite3_stmt *stmt = NULL;
        if (sqlite3_prepare_v2(s, sql, -1, &stmt, NULL) != SQLITE_OK) {
                fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(s));
                abort();
        }
        ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
        int64_t v = sqlite3_column_int64(stmt, 0);
        sqlite3_finalize(stmt);
        return v;
}

static char *raw_text(sqlite3 *s, const char *sql) {
        sqlite3_stmt *stmt = NULL;
        ASSERT_EQ(sqlite3_prepare_v2(s, sql, -1, &stmt, NULL), SQLITE_OK);
        ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
        const char *t = (const char *) sqlite3_column_text(stmt, 0);
        char *v = strdup(t ? t : "(null)");
        sqlite3_finalize(stmt);
        return v;
}

static bool table_exists(sqlite3 *s, const char *table) {
        _cleanup_free_ char *sql = xasprintf("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '%s'",
                                             table);
        return raw_int(s, sql) > 0;
}

/* A growing string. */
struct text {
        char *s;
        size_t len, cap;
};

static void text_add(struct text *t, const char *fmt, ...) _printf_(2, 3);
static void text_add(struct text *t, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        ASSERT_TRUE(n >= 0);
        if (t->len + (size_t) n + 1 > t->cap) {
                t->cap = MAX(t->cap * 2, t->len + (size_t) n + 1);
                t->s = realloc(t->s, t->cap);
                ASSERT_TRUE(t->s);
        }
        va_start(ap, fmt);
        vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        t->len += (size_t) n;
}

/* Every row of the table, in its order, each value with its type, in
 * the columns named by *columns ("" or NULL: all, and *columns is set to
 * them, for the same query after the upgrade). */
static char *table_dump(sqlite3 *s, const char *table, const char *order, char **columns) {
        struct text out = { 0 };
        sqlite3_stmt *stmt = NULL;
        _cleanup_free_ char *sql = xasprintf("SELECT %s FROM %s ORDER BY %s", *columns ? *columns : "*", table, order);

        if (sqlite3_prepare_v2(s, sql, -1, &stmt, NULL) != SQLITE_OK) {
                fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(s));
                abort();
        }
        if (!*columns) {
                struct text cols = { 0 };
                for (int i = 0; i < sqlite3_column_count(stmt); i++)
                        text_add(&cols, "%s%s", i ? ", " : "", sqlite3_column_name(stmt, i));
                *columns = cols.s;
        }
        text_add(&out, "%s:", table);
        int r;
        while ((r = sqlite3_step(stmt)) == SQLITE_ROW) {
                text_add(&out, "\n");
                for (int i = 0; i < sqlite3_column_count(stmt); i++) {
                        switch (sqlite3_column_type(stmt, i)) {
                        case SQLITE_INTEGER:
                                text_add(&out, "|i:%lld", (long long) sqlite3_column_int64(stmt, i));
                                break;
                        case SQLITE_FLOAT:
                                text_add(&out, "|r:%.17g", sqlite3_column_double(stmt, i));
                                break;
                        case SQLITE_TEXT:
                                text_add(&out, "|t:%s", (const char *) sqlite3_column_text(stmt, i));
                                break;
                        case SQLITE_BLOB:
                                text_add(&out, "|b:%d bytes", sqlite3_column_bytes(stmt, i));
                                break;
                        default:
                                text_add(&out, "|null");
                        }
                }
        }
        ASSERT_EQ(r, SQLITE_DONE);
        sqlite3_finalize(stmt);
        return out.s;
}

/* ---- a manager as db_load() wants it (as in test-smpgwd-db.c) ---- */

static struct manager *test_manager_new(const char *dir) {
        struct manager *m = calloc(1, sizeof(*m));
        struct config *c = calloc(1, sizeof(*c));
        ASSERT_TRUE(m && c);
        c->state_dir = strdup(dir);
        c->db_path = xasprintf("%s/smpgw.db", dir);
        c->image_max_size = 16u << 20;
        c->max_images = 256;
        c->max_devices = 10000;
        c->job_attempts = 3;
        c->job_keep = 10000;
        m->config = c;
        m->images_dir = xasprintf("%s/images", dir);
        return m;
}

static void test_manager_free(struct manager *m) {
        manager_clear_indexes(m);
        for (size_t i = 0; i < m->n_jobs; i++)
                job_free(m->jobs[i]);
        free(m->jobs);
        for (size_t i = 0; i < m->n_devices; i++)
                device_free(m->devices[i]);
        free(m->devices);
        for (size_t i = 0; i < m->n_images; i++)
                image_free(m->images[i]);
        free(m->images);
        for (size_t i = 0; i < m->n_keys; i++)
                mcuboot_key_free(m->keys[i]);
        free(m->keys);
        free(m->observers);
        /* what the jobs loaded learned (swap times per board, since schema 5) */
        job_radio_done(&m->radio);
        db_close(m->db);
        free(m->images_dir);
        config_free(m->config);
        free(m);
}

static const struct job *find_job(const struct manager *m, uint64_t id) {
        for (size_t i = 0; i < m->n_jobs; i++)
                if (m->jobs[i]->id == id)
                        return m->jobs[i];
        return NULL;
}

/* ---- the test ---- */

static void upgrade(const struct fixture *fx) {
        char dir[] = "/tmp/test-smpgwd-db-fixtures-XXXXXX";
        const char *src = getenv("SMPGW_SRCDIR");
        char *before[ELEMENTSOF(tables)] = { 0 }, *columns[ELEMENTSOF(tables)] = { 0 };
        sqlite3 *s;

        ASSERT_TRUE(mkdtemp(dir));
        _cleanup_free_ char *stored = xasprintf("%s/tests/fixtures/db/smpgw-v%u.db", src ? src : "..", fx->version);
        _cleanup_free_ char *path = xasprintf("%s/smpgw.db", dir);
        copy_file(stored, path);

        /* As the old daemon left it. */
        s = raw_open(path);
        ASSERT_EQ(raw_int(s, "PRAGMA user_version"), fx->version);
        ASSERT_TRUE(fx->version <= db_schema_version());
        _cleanup_free_ char *check = raw_text(s, "PRAGMA integrity_check");
        ASSERT_STREQ(check, "ok");
        ASSERT_EQ(raw_int(s, "SELECT count(*) FROM devices"), fx->devices);
        ASSERT_EQ(raw_int(s, "SELECT count(*) FROM images"), fx->images);
        ASSERT_EQ(raw_int(s, "SELECT count(*) FROM jobs"), fx->jobs);
        ASSERT_TRUE(raw_int(s, "SELECT count(*) FROM device_slots") > 0);
        ASSERT_TRUE(raw_int(s, "SELECT count(*) FROM events") > 0);
        for (size_t i = 0; i < ELEMENTSOF(tables); i++)
                if (table_exists(s, tables[i].name))
                        before[i] = table_dump(s, tables[i].name, tables[i].order, &columns[i]);
        ASSERT_EQ(before[5] != NULL, fx->version >= 4);
        if (fx->slots_before > 0)
                ASSERT_EQ(raw_int(s, "SELECT count(*) FROM job_slots_before"), fx->slots_before);
        int64_t max_device = raw_int(s, "SELECT max(id) FROM devices");
        int64_t max_job = raw_int(s, "SELECT max(id) FROM jobs");
        if (fx->device_forgotten)
                ASSERT_TRUE(raw_int(s, "SELECT seq FROM sqlite_sequence WHERE name = 'devices'") > max_device);
        if (fx->image_removed)
                ASSERT_TRUE(raw_int(s, "SELECT count(*) FROM jobs WHERE image_id NOT IN (SELECT id FROM images)") > 0);
        sqlite3_close(s);

        /* Today's code migrates it. */
        struct manager *m = test_manager_new(dir);
        ASSERT_OK(db_open(path, &m->db));

        /* smpgwd holds the file exclusively (db.c): read it through the
         * daemon's own connection. */
        s = m->db->sqlite;
        ASSERT_EQ(raw_int(s, "PRAGMA user_version"), db_schema_version());
        _cleanup_free_ char *check_after = raw_text(s, "PRAGMA integrity_check");
        ASSERT_STREQ(check_after, "ok");
        ASSERT_EQ(raw_int(s, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
        ASSERT_TRUE(table_exists(s, "job_slots_before"));
        for (size_t i = 0; i < ELEMENTSOF(tables); i++) {
                if (!before[i])
                        continue;
                _cleanup_free_ char *after = table_dump(s, tables[i].name, tables[i].order, &columns[i]);
                if (!streq(before[i], after)) {
                        fprintf(stderr, "version %u, rows of %s changed:\n---- before\n%s\n---- after\n%s\n",
                                fx->version, tables[i].name, before[i], after);
                        abort();
                }
                free(before[i]);
                free(columns[i]);
        }

        /* ... and loads it. */
        ASSERT_OK(db_load(m->db, m));
        ASSERT_EQ(m->n_devices, fx->devices);
        ASSERT_EQ(m->n_images, fx->images);
        /* Images stored before migration 11 declare no board: any. */
        for (size_t i = 0; i < m->n_images; i++)
                ASSERT_EQ(m->images[i]->n_boards, 0);
        /* ... and before migration 13 no mesh composition: none, not a
         * hash of 0, in the database as in the model. */
        ASSERT_EQ(raw_int(s, "SELECT count(*) FROM images WHERE mesh_comp_hash IS NOT NULL OR "
                             "mesh_comp_elements IS NOT NULL"),
                  0);
        for (size_t i = 0; i < m->n_images; i++)
                ASSERT_TRUE(!m->images[i]->has_mesh_composition);
        ASSERT_EQ(m->n_jobs, fx->jobs);
        size_t slots = 0;
        for (size_t i = 0; i < m->n_devices; i++)
                slots += m->devices[i]->slots->n_slots;
        ASSERT_TRUE(slots > 0);
        /* The jobs make-fixture.py left: 1 succeeded, 2 failed after a
         * revert, 3 interrupted mid-upload by SIGTERM, 4 cancelled. */
        const struct job *j = find_job(m, 1);
        ASSERT_TRUE(j);
        ASSERT_EQ(j->state, JOB_SUCCEEDED);
        ASSERT_TRUE(j->has_outcome && j->outcome == SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_STREQ(j->image_id, ID_P256);
        j = find_job(m, 2);
        ASSERT_TRUE(j);
        ASSERT_EQ(j->state, JOB_FAILED);
        ASSERT_TRUE(j->has_outcome && j->outcome == SMP_UPDATE_OUTCOME_REVERTED);
        j = find_job(m, 3);
        ASSERT_TRUE(j);
        ASSERT_EQ(j->state, fx->interrupted_state);
        ASSERT_TRUE(j->bytes_sent > 0 && j->bytes_sent < j->bytes_total);
        j = find_job(m, 4);
        ASSERT_TRUE(j);
        ASSERT_EQ(j->state, JOB_CANCELLED);

        /* Ids are never handed out again, from here on. */
        struct device *d = calloc(1, sizeof(*d));
        ASSERT_TRUE(d);
        d->conn = strdup("udp:10.9.9.9:1337");
        d->slots = &device_slots_none;
        snprintf(d->transport, sizeof(d->transport), "udp");
        snprintf(d->source, sizeof(d->source), "rest");
        d->first_seen_usec = d->last_seen_usec = 1700000000000000ull;
        ASSERT_OK(db_device_insert(m->db, d));
        ASSERT_TRUE((int64_t) d->id > max_device + (fx->device_forgotten ? 1 : 0));
        ASSERT_OK(manager_attach_device(m, d));
        ASSERT_OK(db_device_delete(m->db, d->id));
        struct device *d2 = calloc(1, sizeof(*d2));
        ASSERT_TRUE(d2);
        d2->conn = strdup("udp:10.9.9.10:1337");
        d2->slots = &device_slots_none;
        snprintf(d2->transport, sizeof(d2->transport), "udp");
        snprintf(d2->source, sizeof(d2->source), "rest");
        d2->first_seen_usec = d2->last_seen_usec = 1700000000000000ull;
        ASSERT_OK(db_device_insert(m->db, d2));
        ASSERT_TRUE(d2->id > d->id);
        ASSERT_OK(manager_attach_device(m, d2));
        ASSERT_TRUE(max_job > 0);

        test_manager_free(m);
        ASSERT_OK(nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS));
}

static void test_upgrade_v1(void) {
        upgrade(&fixtures[0]);
}
static void test_upgrade_v2(void) {
        upgrade(&fixtures[1]);
}
static void test_upgrade_v3(void) {
        upgrade(&fixtures[2]);
}
static void test_upgrade_v4(void) {
        upgrade(&fixtures[3]);
}
static void test_upgrade_v5(void) {
        upgrade(&fixtures[4]);
}
static void test_upgrade_v6(void) {
        upgrade(&fixtures[5]);
}
static void test_upgrade_v7(void) {
        upgrade(&fixtures[6]);
}
static void test_upgrade_v8(void) {
        upgrade(&fixtures[7]);
}
/* Migration 10 adds columns to tables of version 7. */
static void test_upgrade_v9(void) {
        upgrade(&fixtures[8]);
}
/* Migration 11 adds the images' boards, none for the images stored
 * before (any board, as they were pushed until then). */
static void test_upgrade_v10(void) {
        upgrade(&fixtures[9]);
}
/* Migration 12 adds the jobs' forced flag, 0 for the jobs stored before
 * (none of them was judged forced after a restart). */
static void test_upgrade_v11(void) {
        upgrade(&fixtures[10]);
}
/* The newest: migration 13 adds the images' mesh composition, none (NULL)
 * for the images stored before. */
static void test_upgrade_v12(void) {
        upgrade(&fixtures[11]);
}

/* Every version an upgrade can start from has its stored database: a
 * migration added while the version before it has none fails here (make
 * that version's file with make-fixture.py, README.md). */
static void test_every_version_has_a_fixture(void) {
        ASSERT_TRUE(ELEMENTSOF(fixtures) + 1 >= db_schema_version());
        for (size_t i = 0; i < ELEMENTSOF(fixtures); i++)
                ASSERT_EQ(fixtures[i].version, i + 1);
}

TEST_MAIN(TEST(test_every_version_has_a_fixture), TEST(test_upgrade_v1), TEST(test_upgrade_v2), TEST(test_upgrade_v3),
          TEST(test_upgrade_v4), TEST(test_upgrade_v5), TEST(test_upgrade_v6), TEST(test_upgrade_v7),
          TEST(test_upgrade_v8), TEST(test_upgrade_v9), TEST(test_upgrade_v10), TEST(test_upgrade_v11),
          TEST(test_upgrade_v12))
