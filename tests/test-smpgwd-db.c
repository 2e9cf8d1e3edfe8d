/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwd's database and image store on real files: SQLite databases and
 * image directories in a fresh temporary directory per test, the MCUboot
 * images imgtool made (tests/data, see tests/data/README.md), and a second
 * SQLite connection to look at what was really written or to get in the
 * way (locks, a failing trigger).  The crash test kills a writer with
 * SIGKILL in the middle of its transactions.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "conf.h"
#include "db-internal.h"   /* struct db: its connection, for reading while it is open */
#include "db-migrations.h"
#include "db.h"
#include "log.h"
#include "manager.h"
#include "smpgw/mcuboot-image.h"
#include "test-util.h"

/* daemon/main.c defines these in smpgwd. */
int smpgwd_log_max_level = LOG_WARNING;
bool smpgwd_log_to_journal = false;

/* The SHA256 TLVs imgtool wrote (tests/data/imgtool-*.dumpinfo.txt). */
#define ID_P256 "3d4c80af8dbb6df668dc30fc9279e3cc56157ea152e79db900021f1852a25e03"
#define ID_UNSIGNED "3412a80ce8180ab90a171e9248f9860cf4a4437f4d5017bd1510547e66ff6828"

/* ---- helpers ---- */

static char *xasprintf(const char *fmt, ...) _printf_(1, 2);
static char *xasprintf(const char *fmt, ...) {
        va_list ap;
        char *s;
        va_start(ap, fmt);
        ASSERT_TRUE(vasprintf(&s, fmt, ap) >= 0);
        va_end(ap);
        return s;
}

static char *tmpdir_new(void) {
        char *dir = strdup("/tmp/test-smpgwd-db-XXXXXX");
        ASSERT_TRUE(dir && mkdtemp(dir));
        return dir;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static void tmpdir_free(char *dir) {
        ASSERT_OK(nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS));
        free(dir);
}

static char *data_path(const char *name) {
        const char *src = getenv("SMPGW_SRCDIR");
        return xasprintf("%s/tests/data/%s", src ? src : "..", name);
}

static uint8_t *read_file(const char *path, size_t *ret_len) {
        FILE *f = fopen(path, "rb");
        ASSERT_TRUE(f);
        ASSERT_OK(fseek(f, 0, SEEK_END));
        long len = ftell(f);
        ASSERT_TRUE(len > 0);
        rewind(f);
        uint8_t *buf = malloc((size_t) len);
        ASSERT_TRUE(buf);
        ASSERT_EQ(fread(buf, 1, (size_t) len, f), len);
        fclose(f);
        *ret_len = (size_t) len;
        return buf;
}

static int open_data(const char *name) {
        _cleanup_free_ char *path = data_path(name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        return fd;
}

/* A file holding data, opened for reading. */
static int fd_with(const char *dir, const uint8_t *data, size_t len) {
        _cleanup_free_ char *path = xasprintf("%s/input-XXXXXX", dir);
        int fd = mkostemp(path, O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, data, len), len);
        ASSERT_OK(lseek(fd, 0, SEEK_SET));
        ASSERT_OK(unlink(path));
        return fd;
}

/* Whether this kernel (and our privileges) can give an O_TMPFILE a
 * name, so the store must link its temporary files rather than copy
 * them. */
static bool can_link_tmpfile(const char *dir) {
        _cleanup_close_ int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        _cleanup_free_ char *name = xasprintf("%s/link-probe", dir);
        char proc[64];
        if (fd < 0)
                return false;
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        if (linkat(fd, "", AT_FDCWD, name, AT_EMPTY_PATH) < 0 &&
            linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW) < 0)
                return false;
        ASSERT_OK(unlink(name));
        return true;
}

/* A second connection, as an outside tool would open the file. */
static sqlite3 *raw_open(const char *path) {
        sqlite3 *s = NULL;
        ASSERT_EQ(sqlite3_open_v2(path, &s, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        return s;
}

static int64_t raw_int(sqlite3 *s, const char *sql) {
        sqlite3_stmt *stmt = NULL;
        ASSERT_EQ(sqlite3_prepare_v2(s, sql, -1, &stmt, NULL), SQLITE_OK);
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

static void raw_exec(sqlite3 *s, const char *sql) {
        char *msg = NULL;
        if (sqlite3_exec(s, sql, NULL, NULL, &msg) != SQLITE_OK) {
                fprintf(stderr, "%s: %s\n", sql, msg);
                abort();
        }
}

/* The daemon's own connection: while it is open, no other connection can
 * read the file (exclusive locking mode, db.c). */
static int64_t own_int(struct db *db, const char *sql) {
        return raw_int(db->sqlite, sql);
}

static char *own_text(struct db *db, const char *sql) {
        return raw_text(db->sqlite, sql);
}

static void own_exec(struct db *db, const char *sql) {
        raw_exec(db->sqlite, sql);
}

static int64_t path_int(const char *db_path, const char *sql) {
        sqlite3 *s = raw_open(db_path);
        int64_t v = raw_int(s, sql);
        sqlite3_close(s);
        return v;
}

/* Entries of a directory other than . and .. */
static unsigned dir_count(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        unsigned n = 0;
        ASSERT_TRUE(d);
        while ((de = readdir(d)))
                n += !streq(de->d_name, ".") && !streq(de->d_name, "..");
        closedir(d);
        return n;
}

/* A manager as manager_start() leaves it for these layers: a
 * configuration, the store directory and the database; no event loop. */
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

static struct manager *test_manager_open(const char *dir) {
        struct manager *m = test_manager_new(dir);
        ASSERT_OK(db_open(m->config->db_path, &m->db));
        ASSERT_OK(db_load(m->db, m));
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
        db_close(m->db);
        free(m->images_dir);
        config_free(m->config);
        free(m);
}

static void config_set_keys(struct manager *m, size_t n, ...) {
        struct config *c = m->config;
        va_list ap;
        for (size_t i = 0; i < c->n_image_keys; i++)
                free(c->image_keys[i]);
        free(c->image_keys);
        c->image_keys = calloc(n + 1, sizeof(char *));
        ASSERT_TRUE(c->image_keys);
        va_start(ap, n);
        for (size_t i = 0; i < n; i++)
                c->image_keys[i] = data_path(va_arg(ap, const char *));
        va_end(ap);
        c->n_image_keys = n;
}

static struct device *device_new_test(const char *conn) {
        struct device *d = calloc(1, sizeof(*d));
        ASSERT_TRUE(d);
        d->conn = strdup(conn);
        d->slots = &device_slots_none;
        snprintf(d->transport, sizeof(d->transport), "udp");
        snprintf(d->source, sizeof(d->source), "rest");
        d->first_seen_usec = d->last_seen_usec = 1700000000000000ull;
        return d;
}

/* Inserts and attaches a device. */
static struct device *add_device(struct manager *m, const char *conn) {
        struct device *d = device_new_test(conn);
        d->manager = m;
        ASSERT_OK(db_device_insert(m->db, d));
        ASSERT_TRUE(d->id > 0);
        ASSERT_OK(manager_attach_device(m, d));
        return d;
}

/* A record as the store writes it; the file is not needed by the db layer. */
static struct image *image_record_new(const char *id, const char *version) {
        struct image *img = calloc(1, sizeof(*img));
        ASSERT_TRUE(img);
        snprintf(img->id, sizeof(img->id), "%s", id);
        snprintf(img->version, sizeof(img->version), "%s", version);
        snprintf(img->file_sha256, sizeof(img->file_sha256), "%064d", 0);
        img->file_size = 4096;
        img->image_size = 3000;
        img->added_usec = 1700000000000001ull;
        return img;
}

static struct job *add_job(struct manager *m, uint64_t device_id, const char *image_id, enum job_state state) {
        struct job *j = calloc(1, sizeof(*j));
        ASSERT_TRUE(j);
        j->device_id = device_id;
        snprintf(j->image_id, sizeof(j->image_id), "%s", image_id);
        j->mode = SMP_UPDATE_TEST_AND_CONFIRM;
        j->state = state;
        j->max_attempts = 3;
        j->created_usec = j->updated_usec = 1700000000000002ull;
        ASSERT_OK(db_job_insert(m->db, j));
        ASSERT_TRUE(j->id > 0);
        ASSERT_OK(manager_attach_job(m, j));
        return j;
}

/* ---- schema and migrations ---- */

static void test_fresh_create(void) {
        char *dir = tmpdir_new();
        _cleanup_free_ char *path = xasprintf("%s/sub/smpgw.db", dir);
        _cleanup_free_ char *sub = xasprintf("%s/sub", dir);
        struct db *db = NULL;
        struct stat st;

        ASSERT_TRUE(db_schema_version() >= 1);
        /* The directory is created, private to the group. */
        ASSERT_OK(db_open(path, &db));
        ASSERT_OK(stat(sub, &st));
        ASSERT_EQ(st.st_mode & 0777, 0750);
        ASSERT_EQ(own_int(db, "PRAGMA user_version"), db_schema_version());
        /* Exclusive locking mode: the WAL index lives in our heap, so there
         * is no -shm file whose shared mapping could SIGBUS, and no other
         * connection can read while the daemon has the file. */
        _cleanup_free_ char *shm = xasprintf("%s-shm", path);
        ASSERT_TRUE(access(shm, F_OK) < 0 && errno == ENOENT);
        {
                sqlite3 *s = raw_open(path);
                sqlite3_stmt *stmt = NULL;
                int rc = sqlite3_prepare_v2(s, "SELECT count(*) FROM devices", -1, &stmt, NULL);
                if (rc == SQLITE_OK)
                        rc = sqlite3_step(stmt);
                ASSERT_EQ(rc, SQLITE_BUSY);
                sqlite3_finalize(stmt);
                sqlite3_close(s);
        }
        _cleanup_free_ char *msg = NULL;
        ASSERT_EQ(db_check(db, &msg), 0);
        ASSERT_OK(db_ping(db));
        ASSERT_OK(db_checkpoint(db));
        db_close(db);
        {
                sqlite3 *s = raw_open(path);
                _cleanup_free_ char *mode = raw_text(s, "PRAGMA journal_mode");
                ASSERT_STREQ(mode, "wal");
                ASSERT_EQ(raw_int(s, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN "
                                     "('devices', 'device_slots', 'images', 'jobs', 'events')"),
                          5);
                sqlite3_close(s);
        }
        tmpdir_free(dir);
}

static void test_reopen_keeps_data(void) {
        char *dir = tmpdir_new();
        struct manager *m = test_manager_open(dir);
        add_device(m, "udp:127.0.0.1:1337");
        test_manager_free(m);

        _cleanup_free_ char *path = xasprintf("%s/smpgw.db", dir);
        int64_t changes_before = path_int(path, "PRAGMA schema_version");

        m = test_manager_open(dir);
        ASSERT_EQ(m->n_devices, 1);
        ASSERT_STREQ(m->devices[0]->conn, "udp:127.0.0.1:1337");
        test_manager_free(m);
        /* No migration ran again: the schema cookie did not move. */
        ASSERT_EQ(path_int(path, "PRAGMA schema_version"), changes_before);
        ASSERT_EQ(path_int(path, "PRAGMA user_version"), db_schema_version());
        tmpdir_free(dir);
}

static void test_newer_schema_refused(void) {
        char *dir = tmpdir_new();
        _cleanup_free_ char *path = xasprintf("%s/smpgw.db", dir);
        struct db *db = NULL;

        ASSERT_OK(db_open(path, &db));
        db_close(db);
        sqlite3 *s = raw_open(path);
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %u", db_schema_version() + 1);
        raw_exec(s, sql);
        sqlite3_close(s);

        db = NULL;
        ASSERT_EQ(db_open(path, &db), -EPROTONOSUPPORT);
        ASSERT_TRUE(db == NULL);
        ASSERT_EQ(path_int(path, "PRAGMA user_version"), db_schema_version() + 1);
        tmpdir_free(dir);
}

static void test_failed_migration_rolls_back(void) {
        char *dir = tmpdir_new();
        _cleanup_free_ char *path = xasprintf("%s/smpgw.db", dir);
        struct db *db = NULL;

        /* Version 0 with a table in the way of migration 1's last
         * CREATE TABLE: the step fails after creating four tables. */
        sqlite3 *s = NULL;
        ASSERT_EQ(sqlite3_open_v2(path, &s, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
        raw_exec(s, "CREATE TABLE events (x INTEGER)");
        sqlite3_close(s);

        ASSERT_TRUE(db_open(path, &db) < 0);
        ASSERT_TRUE(db == NULL);
        s = raw_open(path);
        ASSERT_EQ(raw_int(s, "PRAGMA user_version"), 0);
        /* Nothing of the step stayed, and the table in the way is as it was. */
        ASSERT_EQ(raw_int(s, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"), 1);
        ASSERT_EQ(raw_int(s, "SELECT count(*) FROM pragma_table_info('events')"), 1);
        sqlite3_close(s);
        tmpdir_free(dir);
}

static void test_not_a_database(void) {
        char *dir = tmpdir_new();
        _cleanup_free_ char *path = xasprintf("%s/smpgw.db", dir);
        struct db *db = NULL;
        FILE *f = fopen(path, "w");
        ASSERT_TRUE(f);
        for (int i = 0; i < 512; i++)
                fputs("this is not a database ", f);
        fclose(f);
        ASSERT_EQ(db_open(path, &db), -EUCLEAN);
        tmpdir_free(dir);
}

/* ---- rows ---- */

static void test_round_trip(void) {
        char *dir = tmpdir_new();
        struct manager *m = test_manager_open(dir);

        struct device *d = device_new_test("ble:AA:BB:CC:DD:EE:FF");
        snprintf(d->transport, sizeof(d->transport), "ble");
        d->address = strdup("AA:BB:CC:DD:EE:FF");
        d->address_type = strdup("random");
        d->adapter = strdup("hci0");
        d->name = strdup("sensor 7");
        d->has_rssi = true;
        d->rssi = -71;
        d->state = DEVICE_ONLINE;
        d->last_probe_usec = 1700000000500000ull;
        d->has_params = true;
        d->buf_size = 2475;
        d->buf_count = 4;
        d->os_info = strdup("Zephyr 3.5.0");
        d->manager = m; /* the bootloader name is shared through it */
        ASSERT_OK(device_set_bootloader(d, "MCUboot", 7));
        d->smp_version = 2;
        struct smp_update_snapshot snap = {};
        snap.n_slots = 2;
        snap.slots[0] = (struct smp_update_slot) {
                .present = true,
                .image = 0,
                .slot = 0,
                .version = "1.2.3",
                .hash_len = 32,
                .bootable = true,
                .confirmed = true,
                .active = true,
        };
        memset(snap.slots[0].hash, 0xab, 32);
        snap.slots[1] = (struct smp_update_slot) {
                /* as smpgwd before versions were normalized stored it:
                 * Zephyr's spelling, read back as MCUboot's */
                .present = true, .image = 0,       .slot = 1,       .version = "1.3.0.7",
                .hash_len = 32,  .bootable = true, .pending = true,
        };
        memset(snap.slots[1].hash, 0x01, 32);
        d->manager = m;
        ASSERT_OK(device_set_slots(d, &snap));
        ASSERT_OK(db_device_insert(m->db, d));
        ASSERT_OK(manager_attach_device(m, d));
        struct device *plain = add_device(m, "udp:10.0.0.2:1337");
        ASSERT_TRUE(plain->id > d->id);

        struct image *img = image_record_new(ID_P256, "1.2.3+4");
        img->name = strdup("app.bin");
        img->signed_ = true;
        img->key = strdup("key-ecdsa-p256.pem");
        ASSERT_OK(db_image_insert(m->db, img));
        ASSERT_EQ(db_image_insert(m->db, img), -EEXIST);
        image_free(img);

        struct job *running = add_job(m, d->id, ID_P256, JOB_RUNNING);
        running->bytes_sent = 12345;
        running->bytes_total = 65536;
        running->rate = 4096.5;
        running->attempts = 2;
        running->has_step = true;
        running->step = SMP_UPDATE_STEP_UPLOAD;
        running->started_usec = 1700000000600000ull;
        running->rollout_id = 9;
        running->mode = SMP_UPDATE_CONFIRM_ONLY;
        running->dirty = true;
        struct job *done = add_job(m, plain->id, ID_P256, JOB_FAILED);
        done->has_outcome = true;
        done->outcome = SMP_UPDATE_OUTCOME_REVERTED;
        done->has_step = true;
        done->step = SMP_UPDATE_STEP_VERIFY;
        done->error = strdup("the device went back to 1.2.3");
        done->finished_usec = 1700000000900000ull;
        done->dirty = true;
        ASSERT_OK(db_flush(m->db, m));
        test_manager_free(m);

        m = test_manager_open(dir);
        ASSERT_EQ(m->n_devices, 2);
        d = m->devices[0];
        ASSERT_STREQ(d->conn, "ble:AA:BB:CC:DD:EE:FF");
        ASSERT_STREQ(d->transport, "ble");
        ASSERT_STREQ(d->address, "AA:BB:CC:DD:EE:FF");
        ASSERT_STREQ(d->address_type, "random");
        ASSERT_STREQ(d->adapter, "hci0");
        ASSERT_STREQ(d->name, "sensor 7");
        ASSERT_TRUE(d->has_rssi);
        ASSERT_EQ(d->rssi, -71);
        ASSERT_EQ(d->state, DEVICE_ONLINE);
        ASSERT_STREQ(d->source, "rest");
        ASSERT_EQ(d->first_seen_usec, 1700000000000000ull);
        ASSERT_EQ(d->last_probe_usec, 1700000000500000ull);
        ASSERT_TRUE(d->has_params);
        ASSERT_EQ(d->buf_size, 2475);
        ASSERT_EQ(d->buf_count, 4);
        ASSERT_STREQ(d->os_info, "Zephyr 3.5.0");
        ASSERT_STREQ(d->bootloader, "MCUboot");
        ASSERT_EQ(d->smp_version, 2);
        ASSERT_TRUE(d->last_error == NULL);
        ASSERT_EQ(d->slots->n_slots, 2);
        ASSERT_TRUE(d->slots->slots[0].present && d->slots->slots[0].active && d->slots->slots[0].confirmed);
        ASSERT_TRUE(!d->slots->slots[0].pending);
        ASSERT_STREQ(d->slots->slots[1].version, "1.3.0+7");
        ASSERT_EQ(d->slots->slots[1].slot, 1);
        ASSERT_TRUE(d->slots->slots[1].pending && !d->slots->slots[1].active);
        ASSERT_EQ(d->slots->slots[1].hash_len, 32);
        ASSERT_EQ(d->slots->slots[1].hash[31], 0x01);
        ASSERT_EQ(d->slots->slots[0].hash[0], 0xab);
        ASSERT_TRUE(!d->dirty && !d->slots_dirty);

        plain = m->devices[1];
        ASSERT_TRUE(!plain->has_rssi && !plain->has_params && plain->address == NULL);
        ASSERT_EQ(plain->last_probe_usec, 0);
        ASSERT_EQ(plain->state, DEVICE_NEW);
        ASSERT_EQ(plain->slots->n_slots, 0);

        ASSERT_EQ(m->n_images, 1);
        img = m->images[0];
        ASSERT_STREQ(img->id, ID_P256);
        ASSERT_STREQ(img->name, "app.bin");
        ASSERT_STREQ(img->version, "1.2.3+4");
        ASSERT_EQ(img->file_size, 4096);
        ASSERT_EQ(img->image_size, 3000);
        ASSERT_TRUE(img->signed_);
        ASSERT_STREQ(img->key, "key-ecdsa-p256.pem");
        ASSERT_EQ(img->added_usec, 1700000000000001ull);
        _cleanup_free_ char *want_path = xasprintf("%s/images/%s.img", dir, ID_P256);
        ASSERT_STREQ(img->path, want_path);

        ASSERT_EQ(m->n_jobs, 2);
        running = m->jobs[0];
        /* Running when the daemon stopped: queued again, progress kept,
         * and the interrupted attempt does not count (issue 10 #15). */
        ASSERT_EQ(running->state, JOB_QUEUED);
        ASSERT_EQ(running->bytes_sent, 12345);
        ASSERT_EQ(running->bytes_total, 65536);
        ASSERT_TRUE(running->rate == 4096.5);
        ASSERT_EQ(running->attempts, 1);
        ASSERT_EQ(running->max_attempts, 3);
        ASSERT_TRUE(running->has_step && running->step == SMP_UPDATE_STEP_UPLOAD);
        ASSERT_TRUE(!running->has_outcome);
        ASSERT_EQ(running->rollout_id, 9);
        ASSERT_EQ(running->mode, SMP_UPDATE_CONFIRM_ONLY);
        ASSERT_EQ(running->started_usec, 1700000000600000ull);
        ASSERT_EQ(running->finished_usec, 0);
        ASSERT_EQ(running->created_usec, 1700000000000002ull);
        ASSERT_STREQ(running->image_id, ID_P256);
        done = m->jobs[1];
        ASSERT_EQ(done->state, JOB_FAILED);
        ASSERT_TRUE(done->has_outcome && done->outcome == SMP_UPDATE_OUTCOME_REVERTED);
        ASSERT_TRUE(done->has_step && done->step == SMP_UPDATE_STEP_VERIFY);
        ASSERT_STREQ(done->error, "the device went back to 1.2.3");
        ASSERT_EQ(done->finished_usec, 1700000000900000ull);
        ASSERT_EQ(done->rollout_id, 0);
        ASSERT_TRUE(!done->dirty);

        /* Nullable columns hold NULL, not 0, for "none". */
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM jobs WHERE rollout_id IS NULL AND "
                                                "started IS NULL AND next_attempt IS NULL"),
                  1);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM devices WHERE rssi IS NULL AND "
                                                "last_probe IS NULL AND buf_size IS NULL"),
                  1);
        test_manager_free(m);
        tmpdir_free(dir);
}

static int count_commit(void *userdata) {
        (*(unsigned *) userdata)++;
        return 0;
}

/* Devices that report the same slots share one copy (device-slots.h);
 * bytes that say nothing (past a hash's length, unused slots) do not
 * make two lists differ; a change replaces only that device's list; the
 * last device to let go of a list frees it (ASan: no leak). */
static void test_slots_shared(void) {
        char *dir = tmpdir_new();
        struct manager *m = test_manager_open(dir);
        struct device *a = add_device(m, "udp:10.0.0.1:1337");
        struct device *b = add_device(m, "udp:10.0.0.2:1337");
        struct smp_update_snapshot one = { .n_slots = 1 }, same;

        ASSERT_TRUE(a->slots == &device_slots_none && a->slots->n_slots == 0);
        one.slots[0] = (struct smp_update_slot) { .present = true, .version = "1.0.0", .hash_len = 4, .active = true };
        memset(&same, 0x5a, sizeof(same));
        same.n_slots = 1;
        same.slots[0] = one.slots[0];
        memset(same.slots[0].hash + 4, 0x77, sizeof(same.slots[0].hash) - 4);
        snprintf(same.slots[0].version, sizeof(same.slots[0].version), "1.0.0");
        ASSERT_OK(device_set_slots(a, &one));
        ASSERT_OK(device_set_slots(b, &same));
        ASSERT_TRUE(a->slots == b->slots);
        ASSERT_EQ(HASH_CNT(hh, m->slots_shared), 1);
        ASSERT_STREQ(b->slots->slots[0].version, "1.0.0");
        ASSERT_EQ(b->slots->slots[1].hash[0], 0);

        one.slots[0].version[0] = '2';
        ASSERT_OK(device_set_slots(b, &one));
        ASSERT_TRUE(a->slots != b->slots);
        ASSERT_STREQ(a->slots->slots[0].version, "1.0.0");
        ASSERT_STREQ(b->slots->slots[0].version, "2.0.0");
        ASSERT_EQ(HASH_CNT(hh, m->slots_shared), 2);
        ASSERT_OK(device_set_slots(a, &one));
        ASSERT_TRUE(a->slots == b->slots);
        ASSERT_EQ(HASH_CNT(hh, m->slots_shared), 1);
        ASSERT_OK(device_set_slots(a, &(struct smp_update_snapshot) {}));
        ASSERT_TRUE(a->slots == &device_slots_none);
        test_manager_free(m);
        tmpdir_free(dir);
}

static void test_flush_writes_dirty_only(void) {
        char *dir = tmpdir_new();
        struct manager *m = test_manager_open(dir);
        struct device *a = add_device(m, "udp:10.0.0.1:1337");
        struct device *b = add_device(m, "udp:10.0.0.2:1337");

        /* Nothing dirty: no transaction at all (the commit hook counts
         * every COMMIT, empty ones too). */
        unsigned commits = 0;
        sqlite3_commit_hook(m->db->sqlite, count_commit, &commits);
        ASSERT_OK(db_flush(m->db, m));
        ASSERT_EQ(commits, 0);

        a->name = strdup("renamed");
        a->dirty = true;
        b->name = strdup("changed in memory only");
        struct smp_update_snapshot snap = { .n_slots = 1 };
        snap.slots[0] = (struct smp_update_slot) { .present = true, .version = "2.0.0", .hash_len = 4 };
        ASSERT_OK(device_set_slots(a, &snap));
        a->slots_dirty = true;
        ASSERT_OK(db_flush(m->db, m));
        ASSERT_TRUE(!a->dirty && !a->slots_dirty && !b->dirty);
        ASSERT_EQ(commits, 1);
        sqlite3_commit_hook(m->db->sqlite, NULL, NULL);

        _cleanup_free_ char *an = own_text(m->db, "SELECT name FROM devices WHERE conn = 'udp:10.0.0.1:1337'");
        _cleanup_free_ char *bn = own_text(m->db, "SELECT name FROM devices WHERE conn = 'udp:10.0.0.2:1337'");
        _cleanup_free_ char *hash = own_text(m->db, "SELECT hash FROM device_slots");
        ASSERT_STREQ(an, "renamed");
        ASSERT_STREQ(bn, "(null)");
        ASSERT_STREQ(hash, "00000000");

        /* Slots replaced, not added to. */
        snap.slots[0].version[0] = '3';
        snap.slots[1] = (struct smp_update_slot) { .present = true, .slot = 1, .version = "3.1.0" };
        snap.n_slots = 2;
        ASSERT_OK(device_set_slots(a, &snap));
        a->slots_dirty = true;
        ASSERT_OK(db_flush(m->db, m));
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM device_slots"), 2);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM device_slots WHERE version LIKE '3.%'"), 2);
        test_manager_free(m);
        tmpdir_free(dir);
}

/* Seen again and nothing else (issue 14): the row is not rewritten by
 * the next flush, only once the stored last_seen is
 * DEVICE_SEEN_WRITE_INTERVAL_USEC behind; any real change still is, the
 * current last_seen with it; and a clean stop writes what is pending. */
static void test_flush_seen_again_lazy(void) {
        char *dir = tmpdir_new();
        struct manager *m = test_manager_open(dir);
        struct device *a = add_device(m, "udp:10.0.0.1:1337");
        struct device *b = add_device(m, "udp:10.0.0.2:1337");
        const char *stored_a = "SELECT last_seen FROM devices WHERE conn = 'udp:10.0.0.1:1337'";

        /* Rows holding a real clock reading, as discovery writes them
         * (device_new_test() leaves last_seen 0: due at once). */
        device_mark_seen(a);
        device_mark_seen(b);
        a->dirty = b->dirty = true;
        ASSERT_OK(db_flush(m->db, m));
        uint64_t written = a->last_seen_usec;
        ASSERT_EQ(own_int(m->db, stored_a), (int64_t) written);

        /* Seen again, both: nothing written, no transaction; memory (what
         * REST, D-Bus and /metrics read) has the new time. */
        int changes = sqlite3_total_changes(m->db->sqlite);
        uint64_t commits = db_commits(m->db);
        device_mark_seen(a);
        device_mark_seen(b);
        ASSERT_TRUE(a->last_seen_usec >= written);
        ASSERT_OK(db_flush(m->db, m));
        ASSERT_EQ(sqlite3_total_changes(m->db->sqlite) - changes, 0);
        ASSERT_EQ(db_commits(m->db) - commits, 0);

        /* A state change is written at the next flush, the current
         * last_seen with it, and that device only. */
        device_mark_seen(a);
        device_mark_seen(b);
        device_set_state(a, DEVICE_UNREACHABLE);
        changes = sqlite3_total_changes(m->db->sqlite);
        ASSERT_OK(db_flush(m->db, m));
        ASSERT_EQ(sqlite3_total_changes(m->db->sqlite) - changes, 2); /* the row and its history row */
        ASSERT_EQ(own_int(m->db, stored_a), (int64_t) a->last_seen_usec);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM devices WHERE state = 'unreachable'"), 1);

        /* Seen the interval after the stored time: due. */
        device_mark_seen(a);
        a->last_seen_usec += DEVICE_SEEN_WRITE_INTERVAL_USEC;
        changes = sqlite3_total_changes(m->db->sqlite);
        ASSERT_OK(db_flush(m->db, m));
        ASSERT_EQ(sqlite3_total_changes(m->db->sqlite) - changes, 1);
        ASSERT_EQ(own_int(m->db, stored_a), (int64_t) a->last_seen_usec);

        /* A clean stop writes b's pending last_seen. */
        ASSERT_OK(db_flush_all(m->db, m));
        ASSERT_EQ(own_int(m->db, "SELECT last_seen FROM devices WHERE conn = 'udp:10.0.0.2:1337'"),
                  (int64_t) b->last_seen_usec);
        ASSERT_TRUE(!device_row_due(a, true) && !device_row_due(b, true));
        test_manager_free(m);
        tmpdir_free(dir);
}

static void test_flush_failure_keeps_flags(void) {
        char *dir = tmpdir_new();
        struct manager *m = test_manager_open(dir);
        struct device *a = add_device(m, "udp:10.0.0.1:1337");
        struct image *img = image_record_new(ID_P256, "1.0.0");
        ASSERT_OK(db_image_insert(m->db, img));
        image_free(img);
        struct job *j = add_job(m, a->id, ID_P256, JOB_RUNNING);

        a->state = DEVICE_UNREACHABLE;
        a->dirty = true;
        j->bytes_sent = 4096;
        j->dirty = true;
        db_history_add(m->db, 1, "test", a->id, NULL, j->id, "first");

        /* An outside program cannot take the write lock from us (nor
         * read): the daemon holds it for as long as the file is open. */
        sqlite3 *s = raw_open(m->config->db_path);
        ASSERT_EQ(sqlite3_exec(s, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_BUSY);
        sqlite3_close(s);
        ASSERT_OK(db_flush(m->db, m));
        ASSERT_TRUE(!a->dirty && !j->dirty);
        ASSERT_EQ(own_int(m->db, "SELECT bytes_sent FROM jobs"), 4096);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM devices WHERE state = 'unreachable'"), 1);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM events WHERE message = 'first'"), 1);

        /* A statement failing midway through the flush (here a trigger)
         * takes the whole transaction back, the device written before it
         * included.  (Disk faults: test_storage_faults.) */
        own_exec(m->db, "CREATE TRIGGER refuse BEFORE UPDATE ON jobs WHEN NEW.bytes_sent = 666 "
                        "BEGIN SELECT RAISE(ABORT, 'refused'); END");
        a->state = DEVICE_ABSENT;
        a->dirty = true;
        j->bytes_sent = 666;
        j->dirty = true;
        db_history_add(m->db, 2, "test", a->id, NULL, j->id, "second");
        ASSERT_TRUE(db_flush(m->db, m) < 0);
        ASSERT_TRUE(a->dirty && j->dirty);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM devices WHERE state = 'unreachable'"), 1);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM events"), 1);

        own_exec(m->db, "DROP TRIGGER refuse");
        ASSERT_OK(db_flush(m->db, m));
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM devices WHERE state = 'absent'"), 1);
        ASSERT_EQ(own_int(m->db, "SELECT bytes_sent FROM jobs"), 666);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM events"), 2);
        test_manager_free(m);
        tmpdir_free(dir);
}

struct history_seen {
        unsigned n;
        int64_t ids[8];
        uint64_t times[8];
        char messages[8][256];
};

static int history_collect(const struct db_history_row *row, void *userdata) {
        struct history_seen *seen = userdata;
        ASSERT_TRUE(seen->n < ELEMENTSOF(seen->ids));
        seen->ids[seen->n] = row->id;
        seen->times[seen->n] = row->time_usec;
        snprintf(seen->messages[seen->n], sizeof(seen->messages[0]), "%s", row->message);
        seen->n++;
        return 0;
}

static void test_history(void) {
        char *dir = tmpdir_new();
        struct manager *m = test_manager_open(dir);

        /* While the database cannot take rows, the queue keeps the
         * newest DB_HISTORY_QUEUE_MAX rows, and counts what it drops. */
        own_exec(m->db, "CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'refused'); END");
        for (unsigned i = 0; i < DB_HISTORY_QUEUE_MAX + 10; i++) {
                char msg[32];
                snprintf(msg, sizeof(msg), "row %u", i);
                db_history_add(m->db, 1000 + i, "test", i % 2 ? 7 : 8, i % 3 ? NULL : ID_P256, 0, msg);
        }
        ASSERT_EQ(db_history_dropped(m->db), 10);
        own_exec(m->db, "DROP TRIGGER refuse");

        /* Queued rows are listed (id 0) before they are written. */
        struct history_seen seen = {};
        ASSERT_OK(db_history_list(m->db, 7, 0, 3, history_collect, &seen));
        ASSERT_EQ(seen.n, 3);
        ASSERT_EQ(seen.ids[0], 0);
        ASSERT_STREQ(seen.messages[0], "row 4105");
        ASSERT_STREQ(seen.messages[1], "row 4103");

        ASSERT_OK(db_flush(m->db, m));
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM events"), DB_HISTORY_QUEUE_MAX);
        ASSERT_EQ(own_int(m->db, "SELECT min(time) FROM events"), 1010);
        int64_t with_image = 0;
        for (unsigned i = 10; i < DB_HISTORY_QUEUE_MAX + 10; i++)
                with_image += i % 3 == 0;
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM events WHERE image_id IS NOT NULL"),
                  with_image);

        seen = (struct history_seen) {};
        ASSERT_OK(db_history_list(m->db, 8, 0, 2, history_collect, &seen));
        ASSERT_EQ(seen.n, 2);
        ASSERT_TRUE(seen.ids[0] > seen.ids[1] && seen.ids[1] > 0);
        ASSERT_STREQ(seen.messages[0], "row 4104");
        ASSERT_EQ(seen.times[1], 1000 + 4102);

        /* Queued and stored rows together, newest first. */
        db_history_add(m->db, 9000, "test", 42, NULL, 5, "queued");
        seen = (struct history_seen) {};
        ASSERT_OK(db_history_list(m->db, 0, 0, 2, history_collect, &seen));
        ASSERT_EQ(seen.n, 2);
        ASSERT_STREQ(seen.messages[0], "queued");
        ASSERT_STREQ(seen.messages[1], "row 4105");
        seen = (struct history_seen) {};
        ASSERT_OK(db_history_list(m->db, 0, 5, 0, history_collect, &seen));
        ASSERT_EQ(seen.n, 1);
        test_manager_free(m);
        tmpdir_free(dir);
}

/* A burst of rows, more than the queue holds within one flush interval
 * (10,000 devices added at once), loses none: a full queue is written
 * at once, in a transaction of its own. */
static void test_history_burst_kept(void) {
        char *dir = tmpdir_new();
        struct manager *m = test_manager_open(dir);
        const unsigned n = 3 * DB_HISTORY_QUEUE_MAX + 7;
        uint64_t commits = db_commits(m->db);

        for (unsigned i = 0; i < n; i++)
                db_history_add(m->db, 1000 + i, "test", 7, NULL, 0, "burst");
        ASSERT_EQ(db_history_dropped(m->db), 0);
        ASSERT_EQ(db_commits(m->db) - commits, 3);
        ASSERT_OK(db_flush(m->db, m));
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM events"), (int64_t) n);
        ASSERT_EQ(own_int(m->db, "SELECT count(DISTINCT time) FROM events"), (int64_t) n);
        test_manager_free(m);
        tmpdir_free(dir);
}

/* db_commits() counts SQLite's write transactions, those of a flush and
 * the writes done at once alike, and nothing for a flush with nothing to
 * write or for reads. */
static void test_commits_counted(void) {
        char *dir = tmpdir_new();
        struct manager *m = test_manager_open(dir);
        uint64_t before = db_commits(m->db);

        ASSERT_TRUE(before > 0); /* the migrations */
        struct device *a = add_device(m, "udp:10.0.0.1:1337");
        ASSERT_EQ(db_commits(m->db) - before, 1);
        ASSERT_OK(db_flush(m->db, m)); /* nothing dirty: no transaction */
        ASSERT_EQ(db_commits(m->db) - before, 1);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM devices"), 1);
        ASSERT_EQ(db_commits(m->db) - before, 1);
        a->dirty = true;
        db_history_add(m->db, 1, "test", a->id, NULL, 0, "x");
        ASSERT_OK(db_flush(m->db, m));
        ASSERT_EQ(db_commits(m->db) - before, 2);
        test_manager_free(m);
        tmpdir_free(dir);
}

static void test_device_delete_cascades(void) {
        char *dir = tmpdir_new();
        struct manager *m = test_manager_open(dir);
        struct device *a = add_device(m, "udp:10.0.0.1:1337");
        struct device *b = add_device(m, "udp:10.0.0.2:1337");
        struct image *img = image_record_new(ID_P256, "1.0.0");
        ASSERT_OK(db_image_insert(m->db, img));
        image_free(img);
        add_job(m, a->id, ID_P256, JOB_SUCCEEDED);
        add_job(m, b->id, ID_P256, JOB_SUCCEEDED);
        struct smp_update_snapshot snap = { .n_slots = 1 };
        snap.slots[0] = (struct smp_update_slot) { .present = true, .version = "1.0.0" };
        ASSERT_OK(device_set_slots(a, &snap));
        a->slots_dirty = true;
        db_history_add(m->db, 1, "device-added", a->id, NULL, 0, "a");
        db_history_add(m->db, 2, "device-added", b->id, NULL, 0, "b");
        ASSERT_OK(db_flush(m->db, m));
        db_history_add(m->db, 3, "device-state", a->id, NULL, 0, "a queued");
        uint64_t a_id = a->id;

        ASSERT_OK(db_device_delete(m->db, a_id));
        ASSERT_EQ(db_device_delete(m->db, a_id), -ENOENT);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM devices"), 1);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM device_slots"), 0);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM jobs"), 1);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM events"), 1);
        /* ... and its queued history went too. */
        struct history_seen seen = {};
        ASSERT_OK(db_history_list(m->db, a_id, 0, 0, history_collect, &seen));
        ASSERT_EQ(seen.n, 0);

        /* A job row, directly. */
        ASSERT_OK(db_job_delete(m->db, m->jobs[1]->id));
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM jobs"), 0);
        /* A device must exist for a job. */
        struct job bad = { .device_id = 999, .mode = SMP_UPDATE_TEST_ONLY, .max_attempts = 1 };
        snprintf(bad.image_id, sizeof(bad.image_id), "%s", ID_P256);
        ASSERT_EQ(db_job_insert(m->db, &bad), -EINVAL);
        /* A second device with the same connection string. */
        struct device *dup = device_new_test("udp:10.0.0.2:1337");
        ASSERT_EQ(db_device_insert(m->db, dup), -EEXIST);
        device_free(dup);

        /* Forgotten in memory as inventory.c does it. */
        manager_detach_device(m, a);
        device_free(a);
        test_manager_free(m);
        tmpdir_free(dir);
}

/* ---- image store ---- */

struct event_count {
        unsigned added, removed;
};

/* Ids name D-Bus objects and REST resources clients remember: deleting
 * the newest row must not hand its id out again (migration 3). */
static void test_ids_never_reused(void) {
        char *dir = tmpdir_new();
        struct manager *m = test_manager_open(dir);
        struct device *a = add_device(m, "udp:10.0.0.1:1337");
        struct device *b = add_device(m, "udp:10.0.0.2:1337");
        struct image *img = image_record_new(ID_P256, "1.0.0");
        ASSERT_OK(db_image_insert(m->db, img));
        image_free(img);
        uint64_t b_id = b->id;
        struct job *j = add_job(m, b_id, ID_P256, JOB_SUCCEEDED);
        uint64_t job_id = j->id;

        ASSERT_OK(db_device_delete(m->db, b_id));   /* its job goes with it */
        manager_detach_job(m, j);
        job_free(j);
        manager_detach_device(m, b);
        device_free(b);
        struct device *c = add_device(m, "udp:10.0.0.3:1337");
        ASSERT_TRUE(c->id > b_id);
        struct job *k = add_job(m, a->id, ID_P256, JOB_QUEUED);
        ASSERT_TRUE(k->id > job_id);
        test_manager_free(m);
        tmpdir_free(dir);
}

/* A version 2 database with devices, slots and jobs is rebuilt by
 * migration 3 without losing a row, and foreign keys are on afterwards. */
static void test_upgrade_from_v2_keeps_rows(void) {
        char *dir = tmpdir_new();
        char *path = xasprintf("%s/smpgw.db", dir);
        sqlite3 *s = NULL;
        ASSERT_EQ(sqlite3_open(path, &s), SQLITE_OK);
        for (unsigned i = 0; i < db_migrations_count && db_migrations[i].version <= 2; i++)
                raw_exec(s, db_migrations[i].sql);
        raw_exec(s, "PRAGMA user_version = 2;"
                    "INSERT INTO devices (id, conn, transport, state, source, first_seen, last_seen) "
                    "  VALUES (7, 'udp:10.0.0.7:1337', 'udp', 'online', 'config', 1, 2);"
                    "INSERT INTO device_slots VALUES (7, 0, 0, '1.0.0', 'ab', 1, 0, 1, 1, 0);"
                    "INSERT INTO images (id, version, file_size, image_size, file_sha256, signed, added) "
                    "  VALUES ('" ID_P256 "', '1.0.0', 10, 5, 'cd', 0, 3);"
                    "INSERT INTO jobs (id, device_id, image_id, mode, state, max_attempts, created, updated) "
                    "  VALUES (9, 7, '" ID_P256 "', 'test-and-confirm', 'succeeded', 3, 4, 5);");
        sqlite3_close(s);

        struct manager *m = test_manager_open(dir);
        ASSERT_EQ(own_int(m->db, "PRAGMA user_version"), (int64_t) db_schema_version());
        ASSERT_EQ(m->n_devices, 1u);
        ASSERT_EQ(m->devices[0]->id, 7u);
        ASSERT_EQ(m->devices[0]->slots->n_slots, 1u);
        ASSERT_EQ(m->n_jobs, 1u);
        ASSERT_EQ(m->jobs[0]->id, 9u);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
        /* Foreign keys are on again: a delete cascades. */
        ASSERT_OK(db_device_delete(m->db, 7));
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM device_slots"), 0);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM jobs"), 0);
        struct device *d = add_device(m, "udp:10.0.0.8:1337");
        ASSERT_TRUE(d->id > 7);
        test_manager_free(m);
        free(path);
        tmpdir_free(dir);
}

/* A version 3 database is migrated to 4 (job_slots_before) with every
 * row kept; unfinished jobs from it have no slots before yet, and get
 * them written like any job of version 4. */
static void test_upgrade_from_v3_keeps_rows(void) {
        char *dir = tmpdir_new();
        char *path = xasprintf("%s/smpgw.db", dir);
        sqlite3 *s = NULL;
        ASSERT_EQ(sqlite3_open(path, &s), SQLITE_OK);
        for (unsigned i = 0; i < db_migrations_count && db_migrations[i].version <= 3; i++)
                raw_exec(s, db_migrations[i].sql);
        raw_exec(s, "PRAGMA user_version = 3;"
                    "INSERT INTO devices (id, conn, transport, state, source, first_seen, last_seen) "
                    "  VALUES (7, 'udp:10.0.0.7:1337', 'udp', 'online', 'config', 1, 2);"
                    "INSERT INTO device_slots VALUES (7, 0, 0, '1.0.0', 'ab', 1, 0, 1, 1, 0);"
                    "INSERT INTO images (id, version, file_size, image_size, file_sha256, signed, added) "
                    "  VALUES ('" ID_P256 "', '1.0.0', 10, 5, 'cd', 0, 3);"
                    "INSERT INTO jobs (id, device_id, image_id, mode, state, attempts, max_attempts, "
                    "  created, updated) VALUES (9, 7, '" ID_P256 "', 'test-and-confirm', 'succeeded', 1, 3, 4, 5);"
                    "INSERT INTO jobs (id, device_id, image_id, mode, state, attempts, max_attempts, "
                    "  created, updated) VALUES (10, 7, '" ID_P256 "', 'test-and-confirm', 'queued', 0, 3, 6, 7);");
        sqlite3_close(s);

        struct manager *m = test_manager_open(dir);
        /* upgraded to this build's version (4 when written; later migrations add to it) */
        ASSERT_EQ(own_int(m->db, "PRAGMA user_version"), (int64_t) db_schema_version());
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
                                 "name = 'job_slots_before'"),
                  1);
        ASSERT_EQ(m->n_devices, 1u);
        ASSERT_EQ(m->devices[0]->slots->n_slots, 1u);
        ASSERT_EQ(m->n_jobs, 2u);
        ASSERT_EQ(m->jobs[0]->id, 9u);
        ASSERT_EQ(m->jobs[0]->state, JOB_SUCCEEDED);
        struct job *queued = m->jobs[1];
        ASSERT_EQ(queued->id, 10u);
        ASSERT_EQ(queued->before.n_slots, 0u);
        queued->before.n_slots = 1;
        queued->before.slots[0] = (struct smp_update_slot) {
                .present = true, .version = "1.0.0", .hash_len = 32, .bootable = true, .confirmed = true,
                .active = true,
        };
        queued->before_dirty = true;
        ASSERT_OK(db_flush(m->db, m));
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM job_slots_before WHERE job_id = 10"), 1);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
        test_manager_free(m);
        free(path);
        tmpdir_free(dir);
}

/* The slots a job found before its first attempt survive a restart for
 * an unfinished job, go with the job when it is deleted, and are written
 * by a flush even when nothing else about the job changed. */
static void test_job_slots_before(void) {
        char *dir = tmpdir_new();
        struct manager *m = test_manager_open(dir);
        struct device *d = add_device(m, "udp:10.0.0.1:1337");
        struct image *img = image_record_new(ID_P256, "1.0.0");
        ASSERT_OK(db_image_insert(m->db, img));
        image_free(img);
        struct job *j = add_job(m, d->id, ID_P256, JOB_RUNNING);
        struct job *finished = add_job(m, d->id, ID_P256, JOB_SUCCEEDED);
        ASSERT_TRUE(!j->dirty && !j->before_dirty);
        for (struct job **p = (struct job *[]) { j, finished, NULL }; *p; p++) {
                struct job *k = *p;
                k->before.n_slots = 2;
                k->before.slots[0] = (struct smp_update_slot) {
                        .present = true, .image = 0, .slot = 0, .version = "1.0.0", .hash_len = 32,
                        .bootable = true, .confirmed = true, .active = true,
                };
                memset(k->before.slots[0].hash, 0x5a, 32);
                k->before.slots[1] = (struct smp_update_slot) {
                        .present = true, .image = 0, .slot = 1, .version = "0.9.0", .hash_len = 32,
                        .bootable = true,
                };
                memset(k->before.slots[1].hash, 0xa5, 32);
                k->before_dirty = true;
        }
        ASSERT_OK(db_flush(m->db, m));
        ASSERT_TRUE(!j->before_dirty);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM job_slots_before"), 4);
        uint64_t job_id = j->id;
        test_manager_free(m);

        m = test_manager_open(dir);
        ASSERT_EQ(m->n_jobs, 2u);
        j = m->jobs[0];
        ASSERT_EQ(j->id, job_id);
        ASSERT_EQ(j->before.n_slots, 2u);
        ASSERT_TRUE(j->before.slots[0].active && j->before.slots[0].confirmed);
        /* Loading spells versions as MCUboot does (1.2.3+4). */
        ASSERT_STREQ(j->before.slots[0].version, "1.0.0+0");
        ASSERT_EQ(j->before.slots[0].hash[31], 0x5a);
        ASSERT_EQ(j->before.slots[1].slot, 1u);
        ASSERT_TRUE(!j->before.slots[1].active);
        ASSERT_EQ(j->before.slots[1].hash[0], 0xa5);
        /* A finished job judges nothing any more: not loaded, kept. */
        ASSERT_EQ(m->jobs[1]->before.n_slots, 0u);
        ASSERT_OK(db_job_delete(m->db, job_id));
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM job_slots_before"), 2);
        test_manager_free(m);
        tmpdir_free(dir);
}

struct type_count {
        const char *type;
        unsigned n;
};

static int count_type(const struct db_history_row *row, void *userdata) {
        struct type_count *c = userdata;
        c->n += streq(row->type, c->type);
        return 0;
}

/* A job stored as running was interrupted by a daemon that did not stop
 * cleanly (kill -9, a crash): like SIGTERM's checkpoint, that attempt
 * does not count.  Counts an older smpgwd inflated that way are brought
 * back under max_attempts for unfinished jobs; finished ones are history
 * and stay as they are.  (issue 10 #15: "Attempt 2 of 1", attempts 7 of 3) */
static void test_interrupted_attempt_not_counted(void) {
        char *dir = tmpdir_new();
        struct manager *m = test_manager_open(dir);
        struct device *d = add_device(m, "udp:10.0.0.1:1337");
        struct image *img = image_record_new(ID_P256, "1.0.0");
        ASSERT_OK(db_image_insert(m->db, img));
        image_free(img);
        struct job *running = add_job(m, d->id, ID_P256, JOB_RUNNING);
        running->attempts = 1;
        running->bytes_sent = 4096;
        running->dirty = true;
        struct job *inflated = add_job(m, d->id, ID_P256, JOB_QUEUED);
        inflated->attempts = 7;
        inflated->dirty = true;
        struct job *inflated_running = add_job(m, d->id, ID_P256, JOB_RUNNING);
        inflated_running->attempts = 6;
        inflated_running->dirty = true;
        struct job *history = add_job(m, d->id, ID_P256, JOB_FAILED);
        history->attempts = 7;
        history->dirty = true;
        ASSERT_OK(db_flush(m->db, m));
        test_manager_free(m);

        m = test_manager_open(dir);
        ASSERT_EQ(m->n_jobs, 4u);
        ASSERT_EQ(m->jobs[0]->state, JOB_QUEUED);
        ASSERT_EQ(m->jobs[0]->attempts, 0u);
        ASSERT_EQ(m->jobs[0]->bytes_sent, 4096u);
        ASSERT_EQ(m->jobs[1]->attempts, 2u);
        ASSERT_EQ(m->jobs[2]->state, JOB_QUEUED);
        ASSERT_EQ(m->jobs[2]->attempts, 2u);
        ASSERT_EQ(m->jobs[3]->attempts, 7u);
        ASSERT_TRUE(m->jobs[0]->dirty && m->jobs[1]->dirty && !m->jobs[3]->dirty);
        struct type_count interrupted = { "job-interrupted", 0 };
        ASSERT_OK(db_history_list(m->db, 0, m->jobs[0]->id, 0, count_type, &interrupted));
        ASSERT_EQ(interrupted.n, 1u);
        /* Written back, so the next start sees the corrected counts. */
        ASSERT_OK(db_flush(m->db, m));
        ASSERT_EQ(own_int(m->db, "SELECT sum(attempts) FROM jobs"), 0 + 2 + 2 + 7);
        test_manager_free(m);
        tmpdir_free(dir);
}

static void on_event(struct manager *m, const struct manager_event *ev, void *userdata) {
        struct event_count *c = userdata;
        if (ev->type == MANAGER_EVENT_IMAGE_ADDED)
                c->added++;
        else if (ev->type == MANAGER_EVENT_IMAGE_REMOVED)
                c->removed++;
}

static struct manager *store_open(const char *dir) {
        struct manager *m = test_manager_open(dir);
        ASSERT_OK(image_store_load_keys(m));
        ASSERT_OK(image_store_init(m));
        return m;
}

static void test_store_add(void) {
        char *dir = tmpdir_new();
        struct manager *m = store_open(dir);
        struct event_count events = {};
        struct image *img = NULL, *again = NULL;
        char *reason = NULL;
        bool created = false;
        size_t len;
        _cleanup_free_ char *src = data_path("imgtool-ecdsa-p256.bin");
        _cleanup_free_ uint8_t *data = read_file(src, &len);

        ASSERT_OK(manager_add_observer(m, on_event, &events));
        /* A regular file is read whole, wherever its offset is (the
         * sender may share it), and the offset is left alone. */
        int fd = open_data("imgtool-ecdsa-p256.bin");
        ASSERT_EQ(lseek(fd, 100, SEEK_SET), 100);
        ASSERT_OK(image_store_add_fd(m, fd, "app.bin", &img, &created, &reason));
        ASSERT_EQ(lseek(fd, 0, SEEK_CUR), 100);
        close(fd);
        ASSERT_TRUE(created);
        ASSERT_TRUE(reason == NULL);
        ASSERT_STREQ(img->id, ID_P256);
        ASSERT_STREQ(img->version, "1.2.3+4");
        ASSERT_STREQ(img->name, "app.bin");
        ASSERT_EQ(img->file_size, len);
        ASSERT_EQ(img->image_size, 0xbb8);
        /* No keys configured: stored, not called signed. */
        ASSERT_TRUE(!img->signed_ && img->key == NULL);
        ASSERT_EQ(events.added, 1);

        /* The file is the upload, byte for byte. */
        size_t stored_len;
        _cleanup_free_ uint8_t *stored = read_file(img->path, &stored_len);
        ASSERT_EQ(stored_len, len);
        ASSERT_MEMEQ(stored, data, len);
        {
                uint8_t md[32];
                unsigned md_len = 0;
                char hex[65];
                ASSERT_TRUE(EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) == 1);
                for (unsigned i = 0; i < 32; i++)
                        snprintf(hex + 2 * i, 3, "%02x", md[i]);
                ASSERT_STREQ(img->file_sha256, hex);
        }
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM images WHERE id = '" ID_P256 "'"), 1);

        /* The same image again: the one stored, no second copy. */
        int pfd[2];
        ASSERT_OK(pipe2(pfd, O_CLOEXEC));
        ASSERT_EQ(write(pfd[1], data, len), len);
        close(pfd[1]);
        ASSERT_OK(image_store_add_fd(m, pfd[0], "again.bin", &again, &created, &reason));
        close(pfd[0]);
        ASSERT_TRUE(!created);
        ASSERT_TRUE(again == img);
        ASSERT_EQ(m->n_images, 1);
        ASSERT_EQ(dir_count(m->images_dir), 1);
        ASSERT_EQ(events.added, 1);

        /* A pipe carrying a new image, and a store temporary file used
         * in place. */
        _cleanup_free_ char *usrc = data_path("imgtool-unsigned.bin");
        size_t ulen;
        _cleanup_free_ uint8_t *udata = read_file(usrc, &ulen);
        ASSERT_OK(pipe2(pfd, O_CLOEXEC));
        ASSERT_EQ(write(pfd[1], udata, ulen), ulen);
        close(pfd[1]);
        ASSERT_OK(image_store_add_fd(m, pfd[0], NULL, &img, &created, &reason));
        close(pfd[0]);
        ASSERT_TRUE(created);
        ASSERT_STREQ(img->id, ID_UNSIGNED);
        ASSERT_TRUE(img->name == NULL);

        _cleanup_free_ char *psrc = data_path("imgtool-padded-ecdsa-p256.bin");
        size_t plen;
        _cleanup_free_ uint8_t *pdata = read_file(psrc, &plen);
        int tmp = -1;
        ASSERT_OK(image_store_open_tmp(m, &tmp));
        ASSERT_EQ(write(tmp, pdata, plen), plen);
        ASSERT_OK(image_store_add_fd(m, tmp, "padded.bin", &img, &created, &reason));
        ASSERT_TRUE(created);
        ASSERT_EQ(img->file_size, 8192);
        if (can_link_tmpfile(dir)) {
                /* Named in place: the very file written, no copy. */
                struct stat tmp_st, stored_st;
                ASSERT_OK(fstat(tmp, &tmp_st));
                ASSERT_OK(stat(img->path, &stored_st));
                ASSERT_EQ(tmp_st.st_ino, stored_st.st_ino);
        } else
                printf("# O_TMPFILE cannot be linked here; the store copied it\n");
        close(tmp);

        /* An unlinked file that once had a name (image_store_open_tmp()'s
         * fallback where O_TMPFILE is missing) cannot be linked again:
         * the store writes a named copy instead. */
        _cleanup_free_ char *esrc = data_path("imgtool-ed25519.bin");
        size_t elen;
        _cleanup_free_ uint8_t *edata = read_file(esrc, &elen);
        _cleanup_free_ char *template = xasprintf("%s/.upload-XXXXXX", m->images_dir);
        tmp = mkostemp(template, O_CLOEXEC);
        ASSERT_TRUE(tmp >= 0);
        ASSERT_OK(unlink(template));
        ASSERT_EQ(write(tmp, edata, elen), elen);
        ASSERT_OK(image_store_add_fd(m, tmp, "ed.bin", &img, &created, &reason));
        close(tmp);
        ASSERT_TRUE(created);
        size_t elen_stored;
        _cleanup_free_ uint8_t *estored = read_file(img->path, &elen_stored);
        ASSERT_EQ(elen_stored, elen);
        ASSERT_MEMEQ(estored, edata, elen);

        ASSERT_EQ(m->n_images, 4);
        ASSERT_EQ(dir_count(m->images_dir), 4);
        ASSERT_EQ(events.added, 4);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM images"), 4);

        /* Everything is there after a restart. */
        test_manager_free(m);
        m = store_open(dir);
        ASSERT_EQ(m->n_images, 4);
        ASSERT_EQ(dir_count(m->images_dir), 4);
        ASSERT_TRUE(manager_find_image(m, ID_P256) != NULL);
        /* Hashes pasted in upper case find it too. */
        char upper[65];
        for (size_t i = 0; i < 65; i++)
                upper[i] = (char) (ID_UNSIGNED[i] >= 'a' && ID_UNSIGNED[i] <= 'f' ? ID_UNSIGNED[i] - 32
                                                                                   : ID_UNSIGNED[i]);
        ASSERT_TRUE(manager_find_image(m, upper) == manager_find_image(m, ID_UNSIGNED));
        test_manager_free(m);
        tmpdir_free(dir);
}

/* Adds data and expects error with a reason containing want; nothing
 * may be left behind. */
static void expect_refused(struct manager *m, const uint8_t *data, size_t len, int error, const char *want) {
        char *reason = NULL;
        struct image *img = NULL;
        bool created = true;
        size_t n_images = m->n_images;
        unsigned files = dir_count(m->images_dir);
        int64_t rows = own_int(m->db, "SELECT count(*) FROM images");

        int fd = fd_with(m->config->state_dir, data, len);
        int r = image_store_add_fd(m, fd, "x.bin", &img, &created, &reason);
        close(fd);
        if (r != error || !reason || !strstr(reason, want)) {
                fprintf(stderr, "expected %d \"%s\", got %d \"%s\"\n", error, want, r, reason ? reason : "(null)");
                abort();
        }
        free(reason);
        ASSERT_EQ(m->n_images, n_images);
        ASSERT_EQ(dir_count(m->images_dir), files);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM images"), rows);
}

static void test_store_refusals(void) {
        char *dir = tmpdir_new();
        struct manager *m = store_open(dir);
        size_t len, len384;
        _cleanup_free_ char *src = data_path("imgtool-ecdsa-p256.bin");
        _cleanup_free_ uint8_t *data = read_file(src, &len);
        _cleanup_free_ char *src384 = data_path("imgtool-ecdsa-p384.bin");
        _cleanup_free_ uint8_t *data384 = read_file(src384, &len384);

        expect_refused(m, data, 1000, -EBADMSG, "not a valid MCUboot image");
        expect_refused(m, data, 20, -EBADMSG, "too short");
        {
                uint8_t junk[512];
                memset(junk, 0x5a, sizeof(junk));
                expect_refused(m, junk, sizeof(junk), -EBADMSG, "magic");
        }
        {
                _cleanup_free_ uint8_t *bad = malloc(len);
                memcpy(bad, data, len);
                bad[0x300] ^= 0xff;   /* in the body */
                expect_refused(m, bad, len, -EBADMSG, "hash does not match");
        }
        /* SHA384 only: devices could not name it. */
        expect_refused(m, data384, len384, -EBADMSG, "SHA256");

        /* Size cap: a regular file and a pipe. */
        m->config->image_max_size = 2000;
        expect_refused(m, data, len, -EFBIG, "larger than the limit of 2000 bytes");
        {
                int pfd[2];
                char *reason = NULL;
                struct image *img = NULL;
                bool created;
                ASSERT_OK(pipe2(pfd, O_CLOEXEC));
                ASSERT_EQ(write(pfd[1], data, len), len);
                close(pfd[1]);
                ASSERT_EQ(image_store_add_fd(m, pfd[0], NULL, &img, &created, &reason), -EFBIG);
                close(pfd[0]);
                ASSERT_TRUE(reason && strstr(reason, "2000"));
                free(reason);
                ASSERT_EQ(dir_count(m->images_dir), 0);
        }
        m->config->image_max_size = 16u << 20;

        /* A wrong key configured. */
        config_set_keys(m, 1, "key-ecdsa-p256-other.pem");
        ASSERT_OK(image_store_load_keys(m));
        ASSERT_EQ(m->n_keys, 1);
        expect_refused(m, data, len, -EKEYREJECTED, "tried key-ecdsa-p256-other.pem");
        {
                _cleanup_free_ char *usrc = data_path("imgtool-unsigned.bin");
                size_t ulen;
                _cleanup_free_ uint8_t *udata = read_file(usrc, &ulen);
                expect_refused(m, udata, ulen, -EKEYREJECTED, "not signed");
        }

        /* A key file that does not load: the keys loaded before stay. */
        config_set_keys(m, 2, "key-ecdsa-p256.pub.pem", "no-such-key.pem");
        ASSERT_EQ(image_store_load_keys(m), -ENOENT);
        ASSERT_EQ(m->n_keys, 1);
        expect_refused(m, data, len, -EKEYREJECTED, "key-ecdsa-p256-other.pem");

        /* The right key among others: stored as signed, with that key. */
        config_set_keys(m, 2, "key-ecdsa-p256-other.pem", "key-ecdsa-p256.pub.pem");
        ASSERT_OK(image_store_load_keys(m));
        ASSERT_EQ(m->n_keys, 2);
        struct image *img = NULL;
        bool created = false;
        char *reason = NULL;
        int fd = fd_with(dir, data, len);
        ASSERT_OK(image_store_add_fd(m, fd, "signed.bin", &img, &created, &reason));
        close(fd);
        ASSERT_TRUE(created && img->signed_);
        ASSERT_STREQ(img->key, "key-ecdsa-p256.pub.pem");
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM images WHERE signed = 1 AND "
                                                "key = 'key-ecdsa-p256.pub.pem'"),
                  1);

        /* The store is full. */
        m->config->max_images = 1;
        config_set_keys(m, 0);
        ASSERT_OK(image_store_load_keys(m));
        ASSERT_EQ(m->n_keys, 0);
        {
                _cleanup_free_ char *usrc = data_path("imgtool-unsigned.bin");
                size_t ulen;
                _cleanup_free_ uint8_t *udata = read_file(usrc, &ulen);
                expect_refused(m, udata, ulen, -E2BIG, "full");
        }
        ASSERT_TRUE(m->stats.images_rejected >= 9);
        test_manager_free(m);
        tmpdir_free(dir);
}

static void test_store_remove_and_map(void) {
        char *dir = tmpdir_new();
        struct manager *m = store_open(dir);
        struct event_count events = {};
        struct image *img = NULL;
        bool created;
        char *reason = NULL;
        const uint8_t *p1, *p2;
        size_t l1, l2;

        ASSERT_OK(manager_add_observer(m, on_event, &events));
        int fd = open_data("imgtool-ed25519.bin");
        ASSERT_OK(image_store_add_fd(m, fd, "ed.bin", &img, &created, &reason));
        close(fd);
        _cleanup_free_ char *path = strdup(img->path);
        _cleanup_free_ char *id = strdup(img->id);

        /* One mapping, shared and counted. */
        ASSERT_OK(image_map(img, &p1, &l1));
        ASSERT_OK(image_map(img, &p2, &l2));
        ASSERT_TRUE(p1 == p2 && l1 == l2 && l1 == img->file_size);
        ASSERT_EQ(img->n_map, 2);
        ASSERT_EQ(unaligned_read_le32(p1), MCUBOOT_IMAGE_MAGIC);
        ASSERT_EQ(image_store_remove(m, img), -EBUSY);
        image_unmap(img);
        ASSERT_TRUE(img->map != NULL);
        ASSERT_EQ(p1[0], 0x3d);
        image_unmap(img);
        ASSERT_TRUE(img->map == NULL && img->n_map == 0);

        /* A queued job holds it; a finished one does not. */
        struct device *d = add_device(m, "udp:10.0.0.1:1337");
        struct job *j = add_job(m, d->id, id, JOB_QUEUED);
        ASSERT_TRUE(image_in_use(m, img));
        ASSERT_EQ(image_store_remove(m, img), -EBUSY);
        ASSERT_TRUE(access(path, F_OK) == 0);
        j->state = JOB_SUCCEEDED;
        j->dirty = true;
        ASSERT_OK(db_flush(m->db, m));
        ASSERT_TRUE(!image_in_use(m, img));
        ASSERT_OK(image_store_remove(m, img));
        ASSERT_EQ(events.removed, 1);
        ASSERT_EQ(m->n_images, 0);
        ASSERT_TRUE(manager_find_image(m, id) == NULL);
        ASSERT_TRUE(access(path, F_OK) < 0 && errno == ENOENT);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM images"), 0);
        /* The finished job still says what it pushed. */
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM jobs"), 1);
        ASSERT_STREQ(j->image_id, id);
        test_manager_free(m);

        /* ... also after a restart: the job loads, the image does not. */
        m = store_open(dir);
        ASSERT_EQ(m->n_jobs, 1);
        ASSERT_EQ(m->n_images, 0);
        test_manager_free(m);
        tmpdir_free(dir);
}

static void test_store_init_cleans(void) {
        char *dir = tmpdir_new();
        struct manager *m = store_open(dir);
        struct image *img = NULL;
        bool created;
        char *reason = NULL;

        int fd = open_data("imgtool-ecdsa-p256.bin");
        ASSERT_OK(image_store_add_fd(m, fd, NULL, &img, &created, &reason));
        close(fd);
        /* Two records whose files are gone, one of them named by a job. */
        struct image *gone = image_record_new("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "0.1.0");
        ASSERT_OK(db_image_insert(m->db, gone));
        image_free(gone);
        gone = image_record_new("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "0.2.0");
        ASSERT_OK(db_image_insert(m->db, gone));
        image_free(gone);
        struct device *d = add_device(m, "udp:10.0.0.1:1337");
        add_job(m, d->id, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", JOB_FAILED);
        test_manager_free(m);

        /* Leftovers of interrupted uploads, and a file that is not ours. */
        const char *names[] = {
                ".upload-Ab12Cd",
                "." ID_UNSIGNED ".tmp",
                "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc.img",
                "notes.txt",
        };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                _cleanup_free_ char *p = xasprintf("%s/images/%s", dir, names[i]);
                FILE *f = fopen(p, "w");
                ASSERT_TRUE(f);
                fputs("x", f);
                fclose(f);
        }

        m = store_open(dir);
        ASSERT_EQ(m->n_images, 2);
        ASSERT_TRUE(manager_find_image(m, ID_P256) != NULL);
        ASSERT_TRUE(manager_find_image(m, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") == NULL);
        ASSERT_TRUE(manager_find_image(m, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb") != NULL);
        ASSERT_EQ(dir_count(m->images_dir), 2);   /* the image and notes.txt */
        _cleanup_free_ char *notes = xasprintf("%s/images/notes.txt", dir);
        ASSERT_TRUE(access(notes, F_OK) == 0);
        ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM images"), 2);
        struct history_seen seen = {};
        ASSERT_OK(db_history_list(m->db, 0, 0, 0, history_collect, &seen));
        ASSERT_EQ(seen.n, 1);
        ASSERT_TRUE(strstr(seen.messages[0], "missing") != NULL);
        test_manager_free(m);
        tmpdir_free(dir);
}

/* ---- crashes ---- */

#define CRASH_JOBS 300
#define CRASH_ROUNDS 8

/* Flushes forever: every round writes one counter into every job, so a
 * torn transaction would show as jobs that disagree.  It tells the test
 * on ready_fd when the database is open ('o') and when its first flush is
 * committed ('f'), so that the kill lands in the flushes however slow the
 * machine (an ASan build on a loaded machine can take longer than the
 * whole random delay just to open). */
_Noreturn static void crash_writer(const char *dir, int ready_fd) {
        struct manager *m = test_manager_open(dir);
        uint64_t counter = m->jobs[0]->bytes_sent;
        bool told_flushed = false;
        if (write(ready_fd, "o", 1) != 1)
                _exit(4);
        for (;;) {
                counter++;
                for (size_t i = 0; i < m->n_jobs; i++) {
                        m->jobs[i]->bytes_sent = counter;
                        m->jobs[i]->updated_usec = counter;
                        m->jobs[i]->dirty = true;
                }
                m->devices[0]->last_seen_usec = counter;
                m->devices[0]->dirty = true;
                db_history_add(m->db, counter, "progress", m->devices[0]->id, NULL, 0, "a flush");
                if (db_flush(m->db, m) < 0)
                        _exit(3);
                if (!told_flushed) {
                        if (write(ready_fd, "f", 1) != 1)
                                _exit(4);
                        told_flushed = true;
                }
        }
}

/* Waits for the writer's next word, or fails the test after a minute. */
static void crash_writer_wait(int ready_fd, char expected) {
        struct pollfd p = { .fd = ready_fd, .events = POLLIN };
        ASSERT_EQ(poll(&p, 1, 60 * 1000), 1);
        char c = 0;
        ASSERT_EQ(read(ready_fd, &c, 1), 1);
        ASSERT_EQ(c, expected);
}

static void test_crash_consistency(void) {
        char *dir = tmpdir_new();
        struct manager *m = test_manager_open(dir);
        struct device *d = add_device(m, "udp:10.0.0.1:1337");
        struct image *img = image_record_new(ID_P256, "1.0.0");
        ASSERT_OK(db_image_insert(m->db, img));
        image_free(img);
        for (unsigned i = 0; i < CRASH_JOBS; i++)
                add_job(m, d->id, ID_P256, JOB_RUNNING);
        test_manager_free(m);

        uint64_t last = 0;
        srand((unsigned) time(NULL) ^ (unsigned) getpid());
        for (unsigned round = 0; round < CRASH_ROUNDS; round++) {
                /* No connection may cross the fork. */
                int ready[2];
                ASSERT_OK(pipe2(ready, O_CLOEXEC));
                pid_t pid = fork();
                ASSERT_TRUE(pid >= 0);
                if (pid == 0) {
                        close(ready[0]);
                        crash_writer(dir, ready[1]);
                }
                close(ready[1]);
                crash_writer_wait(ready[0], 'o');
                /* The last round is killed after a committed flush at the
                 * least, so the test always proves something; the others
                 * anywhere from the first transaction on. */
                if (round == CRASH_ROUNDS - 1)
                        crash_writer_wait(ready[0], 'f');
                struct timespec ts = { 0, (long) (20 + rand() % 130) * 1000000L };
                nanosleep(&ts, NULL);
                ASSERT_OK(kill(pid, SIGKILL));
                int status;
                ASSERT_EQ(waitpid(pid, &status, 0), pid);
                ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
                /* Open until now: a writer never dies of SIGPIPE. */
                close(ready[0]);

                /* The file as the kill left it, read by another program
                 * before the daemon opens it again. */
                _cleanup_free_ char *db_path = xasprintf("%s/smpgw.db", dir);
                sqlite3 *s = raw_open(db_path);
                _cleanup_free_ char *integrity = raw_text(s, "PRAGMA integrity_check");
                ASSERT_STREQ(integrity, "ok");
                ASSERT_EQ(raw_int(s, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
                sqlite3_close(s);
                m = test_manager_open(dir);
                _cleanup_free_ char *msg = NULL;
                ASSERT_EQ(db_check(m->db, &msg), 0);

                ASSERT_EQ(m->n_jobs, CRASH_JOBS);
                uint64_t v = m->jobs[0]->bytes_sent;
                for (size_t i = 0; i < m->n_jobs; i++) {
                        ASSERT_EQ(m->jobs[i]->bytes_sent, v);
                        ASSERT_EQ(m->jobs[i]->state, JOB_QUEUED);
                }
                if (v > 0)
                        ASSERT_EQ(m->devices[0]->last_seen_usec, v);
                /* One progress row per committed flush (the first load
                 * adds a job-interrupted row per job it found running). */
                ASSERT_EQ(own_int(m->db, "SELECT count(*) FROM events WHERE type = 'progress'"), v);
                ASSERT_TRUE(v >= last);
                last = v;
                test_manager_free(m);
        }
        /* The writer got somewhere, or this proved nothing. */
        ASSERT_TRUE(last > 0);
        tmpdir_free(dir);
}

/* ---- storage faults: a VFS around the real one ---- */

/* Every write, sync and truncate SQLite does goes through here; the
 * countdown picks the one that fails, and "persistent" keeps the disk
 * failing after it (a full disk stays full, a dying card stays dead)
 * until the test says otherwise.  Test-only state, one test at a time. */
static struct {
        sqlite3_vfs vfs;
        sqlite3_vfs *real;
        unsigned countdown;    /* 0: no fault armed */
        bool persistent, failing;
        int rc;                /* SQLITE_FULL or SQLITE_IOERR */
        unsigned fired;
} fault;

struct fault_file {
        sqlite3_file base;
        sqlite3_file *real;    /* follows this struct in the same allocation */
};

static bool fault_now(void) {
        if (fault.failing)
                return true;
        if (fault.countdown == 0 || --fault.countdown > 0)
                return false;
        fault.fired++;
        fault.failing = fault.persistent;
        return true;
}

static int fault_rc(int ioerr) {
        return fault.rc == SQLITE_FULL ? SQLITE_FULL : ioerr;
}

#define FF(f) (((struct fault_file *) (f))->real)

static int ff_close(sqlite3_file *f) {
        int rc = FF(f)->pMethods ? FF(f)->pMethods->xClose(FF(f)) : SQLITE_OK;
        return rc;
}
static int ff_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off) {
        return FF(f)->pMethods->xRead(FF(f), p, n, off);
}
static int ff_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off) {
        if (fault_now())
                return fault_rc(SQLITE_IOERR_WRITE);
        return FF(f)->pMethods->xWrite(FF(f), p, n, off);
}
static int ff_truncate(sqlite3_file *f, sqlite3_int64 size) {
        if (fault_now())
                return fault_rc(SQLITE_IOERR_TRUNCATE);
        return FF(f)->pMethods->xTruncate(FF(f), size);
}
static int ff_sync(sqlite3_file *f, int flags) {
        if (fault_now())
                return SQLITE_IOERR_FSYNC;
        return FF(f)->pMethods->xSync(FF(f), flags);
}
static int ff_file_size(sqlite3_file *f, sqlite3_int64 *size) {
        return FF(f)->pMethods->xFileSize(FF(f), size);
}
static int ff_lock(sqlite3_file *f, int l) {
        return FF(f)->pMethods->xLock(FF(f), l);
}
static int ff_unlock(sqlite3_file *f, int l) {
        return FF(f)->pMethods->xUnlock(FF(f), l);
}
static int ff_check_reserved(sqlite3_file *f, int *out) {
        return FF(f)->pMethods->xCheckReservedLock(FF(f), out);
}
static int ff_file_control(sqlite3_file *f, int op, void *arg) {
        return FF(f)->pMethods->xFileControl(FF(f), op, arg);
}
static int ff_sector_size(sqlite3_file *f) {
        return FF(f)->pMethods->xSectorSize(FF(f));
}
static int ff_device_characteristics(sqlite3_file *f) {
        return FF(f)->pMethods->xDeviceCharacteristics(FF(f));
}
static int ff_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **p) {
        return FF(f)->pMethods->xShmMap(FF(f), pg, pgsz, extend, p);
}
static int ff_shm_lock(sqlite3_file *f, int offset, int n, int flags) {
        return FF(f)->pMethods->xShmLock(FF(f), offset, n, flags);
}
static void ff_shm_barrier(sqlite3_file *f) {
        FF(f)->pMethods->xShmBarrier(FF(f));
}
static int ff_shm_unmap(sqlite3_file *f, int del) {
        return FF(f)->pMethods->xShmUnmap(FF(f), del);
}
static int ff_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **p) {
        return FF(f)->pMethods->xFetch(FF(f), off, n, p);
}
static int ff_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) {
        return FF(f)->pMethods->xUnfetch(FF(f), off, p);
}

static const sqlite3_io_methods fault_io = {
        .iVersion = 3,
        .xClose = ff_close, .xRead = ff_read, .xWrite = ff_write, .xTruncate = ff_truncate,
        .xSync = ff_sync, .xFileSize = ff_file_size, .xLock = ff_lock, .xUnlock = ff_unlock,
        .xCheckReservedLock = ff_check_reserved, .xFileControl = ff_file_control,
        .xSectorSize = ff_sector_size, .xDeviceCharacteristics = ff_device_characteristics,
        .xShmMap = ff_shm_map, .xShmLock = ff_shm_lock, .xShmBarrier = ff_shm_barrier,
        .xShmUnmap = ff_shm_unmap, .xFetch = ff_fetch, .xUnfetch = ff_unfetch,
};

static int fault_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags) {
        struct fault_file *ff = (struct fault_file *) f;
        ff->real = (sqlite3_file *) (ff + 1);
        int rc = fault.real->xOpen(fault.real, name, ff->real, flags, out_flags);
        /* The real file's methods decide whether there is anything to
         * close; ours only forward. */
        ff->base.pMethods = ff->real->pMethods ? &fault_io : NULL;
        return rc;
}
static int fault_delete(sqlite3_vfs *vfs, const char *name, int sync) {
        return fault.real->xDelete(fault.real, name, sync);
}
static int fault_access(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
        return fault.real->xAccess(fault.real, name, flags, out);
}
static int fault_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out) {
        return fault.real->xFullPathname(fault.real, name, n, out);
}
static int fault_randomness(sqlite3_vfs *vfs, int n, char *out) {
        return fault.real->xRandomness(fault.real, n, out);
}
static int fault_sleep(sqlite3_vfs *vfs, int usec) {
        return fault.real->xSleep(fault.real, usec);
}
static int fault_current_time(sqlite3_vfs *vfs, double *out) {
        return fault.real->xCurrentTime(fault.real, out);
}
static int fault_get_last_error(sqlite3_vfs *vfs, int n, char *out) {
        return fault.real->xGetLastError(fault.real, n, out);
}
static int fault_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out) {
        return fault.real->xCurrentTimeInt64(fault.real, out);
}

/* Makes the fault VFS the default, so db_open() uses it unchanged. */
static void fault_vfs_register(void) {
        fault.real = sqlite3_vfs_find("unix");
        ASSERT_TRUE(fault.real);
        fault.vfs = (sqlite3_vfs) {
                .iVersion = 2,
                .szOsFile = (int) sizeof(struct fault_file) + fault.real->szOsFile,
                .mxPathname = fault.real->mxPathname,
                .zName = "smpgw-test-faults",
                .xOpen = fault_open, .xDelete = fault_delete, .xAccess = fault_access,
                .xFullPathname = fault_full_pathname, .xDlOpen = NULL, .xDlError = NULL, .xDlSym = NULL,
                .xDlClose = NULL, .xRandomness = fault_randomness, .xSleep = fault_sleep,
                .xCurrentTime = fault_current_time, .xGetLastError = fault_get_last_error,
                .xCurrentTimeInt64 = fault_current_time_int64,
        };
        ASSERT_EQ(sqlite3_vfs_register(&fault.vfs, 1), SQLITE_OK);
}

static void fault_vfs_unregister(void) {
        ASSERT_EQ(sqlite3_vfs_unregister(&fault.vfs), SQLITE_OK);
}

static void fault_disarm(void) {
        fault.countdown = 0;
        fault.failing = false;
}

/* The write, sync or truncate number n (from 1) of a sequence of every
 * kind of write the daemon makes fails -- once, or for good until the
 * sequence ends -- for every n until the sequence has fewer.  Each time:
 * the call that met the fault says so and keeps its state (a failed
 * flush keeps the dirty flags), the connection works again once the disk
 * does, and the file, closed and read by another connection, passes
 * integrity_check and holds exactly what was acknowledged. */
static void test_storage_faults_at_every_point(void) {
        unsigned points = 0;

        fault_vfs_register();
        for (unsigned n = 1;; n++) {
                char *dir = tmpdir_new();
                struct manager *m = test_manager_open(dir);
                struct device *a = add_device(m, "udp:10.0.0.1:1337");
                struct image *img = image_record_new(ID_P256, "1.0.0");
                ASSERT_OK(db_image_insert(m->db, img));
                image_free(img);
                uint64_t a_id = a->id;

                fault.countdown = n;
                fault.persistent = n % 2 == 0;
                fault.rc = n % 3 == 0 ? SQLITE_FULL : SQLITE_IOERR;
                unsigned fired_before = fault.fired;

                /* A new device (REST 201 / discovery). */
                struct device *b = device_new_test("udp:10.0.0.2:1337");
                bool b_stored = db_device_insert(m->db, b) >= 0;
                if (b_stored)
                        ASSERT_OK(manager_attach_device(m, b));
                else {
                        ASSERT_EQ(b->id, 0);
                        device_free(b);
                        b = NULL;
                }
                /* A batched flush: a state change and a history row. */
                a->state = DEVICE_ABSENT;
                a->dirty = true;
                db_history_add(m->db, 5, "device-state", a_id, NULL, 0, "gone");
                bool flushed = db_flush(m->db, m) >= 0;
                ASSERT_EQ(a->dirty, !flushed);
                /* A job. */
                struct job *j = calloc(1, sizeof(*j));
                ASSERT_TRUE(j);
                j->device_id = a_id;
                snprintf(j->image_id, sizeof(j->image_id), "%s", ID_P256);
                j->mode = SMP_UPDATE_TEST_AND_CONFIRM;
                j->state = JOB_QUEUED;
                j->max_attempts = 3;
                bool job_stored = db_job_insert(m->db, j) >= 0;
                uint64_t job_id = job_stored ? j->id : 0;
                if (job_stored)
                        ASSERT_OK(manager_attach_job(m, j));
                else
                        free(j);
                /* A second image. */
                img = image_record_new(ID_UNSIGNED, "2.0.0");
                bool image_stored = db_image_insert(m->db, img) >= 0;
                image_free(img);
                /* Forgetting the new device (REST 204). */
                bool b_forgotten = false;
                if (b) {
                        b_forgotten = db_device_delete(m->db, b->id) >= 0;
                        if (b_forgotten) {
                                manager_detach_device(m, b);
                                device_free(b);
                                b = NULL;
                        }
                }
                bool fired = fault.fired > fired_before;
                fault_disarm();
                if (!fired) {
                        /* n is past the last write of the sequence. */
                        ASSERT_TRUE(b_stored && flushed && job_stored && image_stored && b_forgotten);
                        test_manager_free(m);
                        tmpdir_free(dir);
                        break;
                }
                points++;
                ASSERT_TRUE(!(b_stored && flushed && job_stored && image_stored && b_forgotten));

                /* The disk works again: so does the connection, and the
                 * flush writes what it could not. */
                ASSERT_OK(db_flush(m->db, m));
                ASSERT_TRUE(!a->dirty);
                _cleanup_free_ char *msg = NULL;
                ASSERT_EQ(db_check(m->db, &msg), 0);
                test_manager_free(m);

                _cleanup_free_ char *path = xasprintf("%s/smpgw.db", dir);
                sqlite3 *s = raw_open(path);
                _cleanup_free_ char *integrity = raw_text(s, "PRAGMA integrity_check");
                ASSERT_STREQ(integrity, "ok");
                ASSERT_EQ(raw_int(s, "SELECT count(*) FROM devices WHERE conn = 'udp:10.0.0.2:1337'"),
                          b_stored && !b_forgotten ? 1 : 0);
                ASSERT_EQ(raw_int(s, "SELECT count(*) FROM devices WHERE state = 'absent'"), 1);
                ASSERT_EQ(raw_int(s, "SELECT count(*) FROM events WHERE message = 'gone'"), 1);
                if (job_stored) {
                        _cleanup_free_ char *sql = xasprintf("SELECT count(*) FROM jobs WHERE id = %" PRIu64, job_id);
                        ASSERT_EQ(raw_int(s, sql), 1);
                }
                ASSERT_EQ(raw_int(s, "SELECT count(*) FROM images WHERE id = '" ID_UNSIGNED "'"),
                          image_stored ? 1 : 0);
                sqlite3_close(s);
                tmpdir_free(dir);
        }
        fault_vfs_unregister();
        /* Every kind of write was hit: inserts, deletes, the flush, and
         * their commits and syncs. */
        ASSERT_TRUE(points >= 10);
        printf("# storage faults injected at %u points\n", points);
}

TEST_MAIN(TEST(test_fresh_create), TEST(test_reopen_keeps_data), TEST(test_newer_schema_refused),
          TEST(test_failed_migration_rolls_back), TEST(test_not_a_database), TEST(test_round_trip),
          TEST(test_slots_shared), TEST(test_flush_writes_dirty_only), TEST(test_flush_seen_again_lazy),
          TEST(test_flush_failure_keeps_flags), TEST(test_history), TEST(test_history_burst_kept),
          TEST(test_commits_counted), TEST(test_device_delete_cascades), TEST(test_ids_never_reused),
          TEST(test_upgrade_from_v2_keeps_rows), TEST(test_upgrade_from_v3_keeps_rows), TEST(test_job_slots_before),
          TEST(test_interrupted_attempt_not_counted), TEST(test_store_add), TEST(test_store_refusals),
          TEST(test_store_remove_and_map), TEST(test_store_init_cleans), TEST(test_crash_consistency),
          TEST(test_storage_faults_at_every_point))
