/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The manager: owns the model and wires its parts to the event loop.
 * See manager.h for the ownership and persistence rules.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "conf.h"
#include "db.h"
#include "engine-rollout.h"
#include "distribution-internal.h"
#include "bus.h"
#include "hawkbit.h"
#include "log.h"
#include "manager.h"
#include "rest.h"
#include "rollout.h"
#include "rollout-prune.h"
#include "smpgw/mcuboot-image.h"
#include "smpgw/smp-context.h"
#include "util.h"

/* How often devices are checked for absence (and the WAL checkpointed). */
#define ABSENT_CHECK_USEC (5 * 1000000ull)
/* A checkpoint (the WAL's pages written into the database file, and two
 * fdatasync()s: 20-80 ms on this machine's disk) waits for a moment
 * without REST clients, but not longer than this: under a load that
 * never pauses, the WAL must not grow without bound. */
#define CHECKPOINT_POSTPONE_MAX_USEC (60 * 1000000ull)

uint64_t now_realtime_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000ull + (uint64_t) ts.tv_nsec / 1000u;
}

uint64_t now_monotonic_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ull + (uint64_t) ts.tv_nsec / 1000u;
}

static int on_deliver_defer(sd_event_source *s, void *userdata);

int manager_new(sd_event *event, struct config *config, struct manager **ret) {
        struct manager *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        int r = smp_context_new(&m->smp);
        if (r < 0) {
                free(m);
                return r;
        }
        m->event = sd_event_ref(event);
        m->config = config;
        m->state_lock_fd = m->db_lock_fd = -1;
        m->started_usec = now_realtime_usec();
        r = sd_event_add_defer(event, &m->deliver_defer, on_deliver_defer, m);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->deliver_defer, SD_EVENT_OFF);
        /* Before everything else: an event is delivered as soon as the
         * callback that emitted it returns. */
        if (r >= 0)
                r = sd_event_source_set_priority(m->deliver_defer, SD_EVENT_PRIORITY_IMPORTANT);
        if (r < 0) {
                sd_event_source_disable_unref(m->deliver_defer);
                sd_event_unref(m->event);
                smp_context_unref(m->smp);
                free(m);
                return r;
        }
        *ret = m;
        return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct config *, config_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, smp_strv_free);

/* ---- arrays ---- */

#define ARRAY_APPEND(arr, n, item)                                              \
        ({                                                                      \
                int _r = 0;                                                     \
                __typeof__(arr) _g = realloc((arr), ((n) + 1) * sizeof(*(arr))); \
                if (!_g)                                                        \
                        _r = -ENOMEM;                                           \
                else {                                                          \
                        (arr) = _g;                                             \
                        (arr)[(n)++] = (item);                                  \
                }                                                               \
                _r;                                                             \
        })

#define ARRAY_REMOVE(arr, n, item)                                              \
        do {                                                                    \
                for (size_t _i = 0; _i < (n); _i++)                             \
                        if ((arr)[_i] == (item)) {                              \
                                memmove(&(arr)[_i], &(arr)[_i + 1], ((n) - _i - 1) * sizeof(*(arr))); \
                                (n)--;                                          \
                                break;                                          \
                        }                                                       \
        } while (0)

int manager_attach_device(struct manager *m, struct device *d) {
        size_t at;
        int r;

        d->manager = m;
        r = device_conn_index_add(&m->devices_by_conn, d);
        if (r < 0)
                return r;
        r = ARRAY_APPEND(m->devices, m->n_devices, d);
        if (r < 0) {
                device_conn_index_remove(&m->devices_by_conn, d);
                return r;
        }
        /* The array is the index by id (manager_find_device()): kept in
         * id order.  Devices come in that order (loaded ORDER BY id, new
         * ids are larger), so this moves nothing but for a caller that
         * attaches out of order. */
        for (at = m->n_devices - 1; at > 0 && m->devices[at - 1]->id > d->id; at--)
                m->devices[at] = m->devices[at - 1];
        m->devices[at] = d;
        return 0;
}

int manager_attach_image(struct manager *m, struct image *img) {
        bool hash_oom = false;

        img->manager = m;
        /* Ids are lower-case hex, IMAGE_ID_LEN digits (manager_find_image()). */
        HASH_ADD(hh, m->images_by_id, id, IMAGE_ID_LEN, img);
        if (hash_oom)
                return -ENOMEM;
        if (ARRAY_APPEND(m->images, m->n_images, img) < 0) {
                HASH_DELETE(hh, m->images_by_id, img);
                return -ENOMEM;
        }
        return 0;
}

int manager_attach_job(struct manager *m, struct job *j) {
        bool hash_oom = false;

        j->manager = m;
        HASH_ADD(hh, m->jobs_by_id, id, sizeof(j->id), j);
        if (hash_oom)
                return -ENOMEM;
        if (ARRAY_APPEND(m->jobs, m->n_jobs, j) < 0) {
                HASH_DELETE(hh, m->jobs_by_id, j);
                return -ENOMEM;
        }
        m->jobs_by_state[j->state]++;
        j->device = manager_find_device(m, j->device_id);
        if (j->device && !job_is_finished(j))
                device_link_job(j->device, j);
        return 0;
}

void manager_detach_device(struct manager *m, struct device *d) {
        device_conn_index_remove(&m->devices_by_conn, d);
        ARRAY_REMOVE(m->devices, m->n_devices, d);
}

void manager_detach_image(struct manager *m, struct image *img) {
        HASH_DELETE(hh, m->images_by_id, img);
        ARRAY_REMOVE(m->images, m->n_images, img);
}

void manager_detach_job(struct manager *m, struct job *j) {
        if (j->device && !job_is_finished(j))
                device_unlink_job(j->device, j);
        m->jobs_by_state[j->state]--;
        HASH_DELETE(hh, m->jobs_by_id, j);
        ARRAY_REMOVE(m->jobs, m->n_jobs, j);
}

void manager_clear_indexes(struct manager *m) {
        device_conn_index_clear(&m->devices_by_conn);
        HASH_CLEAR(hh, m->images_by_id);
        HASH_CLEAR(hh, m->jobs_by_id);
}

/* ---- observers ---- */

int manager_add_observer(struct manager *m, manager_observer_fn fn, void *userdata) {
        assert(!m->delivering);
        __typeof__(m->observers) g = realloc(m->observers, (m->n_observers + 1) * sizeof(*m->observers));
        if (!g)
                return -ENOMEM;
        m->observers = g;
        m->observers[m->n_observers].fn = fn;
        m->observers[m->n_observers].userdata = userdata;
        m->n_observers++;
        return 0;
}

void manager_remove_observer(struct manager *m, manager_observer_fn fn, void *userdata) {
        assert(!m->delivering);
        for (size_t i = 0; i < m->n_observers; i++)
                if (m->observers[i].fn == fn && m->observers[i].userdata == userdata) {
                        memmove(&m->observers[i], &m->observers[i + 1],
                                (m->n_observers - i - 1) * sizeof(*m->observers));
                        m->n_observers--;
                        return;
                }
}

struct manager_queued_event {
        struct manager_event ev;
        bool frees;                    /* a *_REMOVED event that frees its object once delivered */
};

static void event_free_object(const struct manager_event *ev) {
        switch (ev->type) {
        case MANAGER_EVENT_DEVICE_REMOVED:
                device_free(ev->device);
                break;
        case MANAGER_EVENT_IMAGE_REMOVED:
                image_free(ev->image);
                break;
        case MANAGER_EVENT_JOB_REMOVED:
                job_free(ev->job);
                break;
        case MANAGER_EVENT_ROLLOUT_REMOVED:
                rollout_free(ev->rollout);
                break;
        case MANAGER_EVENT_DISTRIBUTION_REMOVED:
                distribution_free(ev->distribution);
                break;
        default:
                break;
        }
}

static void deliver_one(struct manager *m, const struct manager_queued_event *q) {
        for (size_t i = 0; i < m->n_observers; i++)
                m->observers[i].fn(m, &q->ev, m->observers[i].userdata);
        if (q->frees)
                event_free_object(&q->ev);
}

/* Delivers what is queued now; what observers emit meanwhile goes in
 * the next round. */
static void deliver_queue(struct manager *m) {
        size_t n = m->n_events;

        assert(!m->delivering);
        m->delivering = true;
        for (size_t i = 0; i < n; i++) {
                /* A copy: an observer's emit may move the queue. */
                struct manager_queued_event q = m->events[i];
                deliver_one(m, &q);
        }
        memmove(m->events, m->events + n, (m->n_events - n) * sizeof(*m->events));
        m->n_events -= n;
        m->delivering = false;
        if (m->n_events > 0 && m->deliver_defer)
                (void) sd_event_source_set_enabled(m->deliver_defer, SD_EVENT_ONESHOT);
}

static int on_deliver_defer(sd_event_source *s, void *userdata) {
        deliver_queue(userdata);
        return 0;
}

static int queue_grow(struct manager *m) {
        size_t want = MAX(m->events_alloc * 2, (size_t) 64);
        struct manager_queued_event *g;

        if (m->n_events < m->events_alloc)
                return 0;
        g = realloc(m->events, want * sizeof(*g));
        if (!g)
                return -ENOMEM;
        m->events = g;
        m->events_alloc = want;
        return 0;
}

static void queue_event(struct manager *m, const struct manager_queued_event *q) {
        /* Without a loop, or without memory to queue it: now.  The
         * latter only out of memory, and then in order still. */
        if (!m->deliver_defer || queue_grow(m) < 0) {
                if (m->deliver_defer)
                        log_warning("Out of memory queueing an event; delivering at once");
                if (!m->delivering && m->n_events > 0)
                        deliver_queue(m);
                deliver_one(m, q);
                return;
        }
        m->events[m->n_events++] = *q;
        if (!m->delivering)
                (void) sd_event_source_set_enabled(m->deliver_defer, SD_EVENT_ONESHOT);
}

void manager_emit(struct manager *m, enum manager_event_type type, struct device *d, struct image *img,
                  struct job *j) {
        struct manager_queued_event q = {
                .ev = { .type = type, .device = d, .image = img, .job = j },
        };

        if (j && !d)
                q.ev.device = j->device;
        queue_event(m, &q);
}

void manager_emit_rollout(struct manager *m, enum manager_event_type type, struct rollout *r,
                          uint64_t member_device_id) {
        queue_event(m, &(struct manager_queued_event) {
                               .ev = { .type = type, .rollout = r, .member_device_id = member_device_id },
                       });
}

void manager_emit_distribution(struct manager *m, enum manager_event_type type, struct distribution *d) {
        struct manager_queued_event q = {
                .ev = { .type = type, .distribution = d },
        };

        queue_event(m, &q);
}

void manager_remove_device(struct manager *m, struct device *d) {
        manager_detach_device(m, d);
        queue_event(m, &(struct manager_queued_event) {
                .ev = { .type = MANAGER_EVENT_DEVICE_REMOVED, .device = d },
                .frees = true,
        });
}

void manager_remove_image(struct manager *m, struct image *img) {
        manager_detach_image(m, img);
        queue_event(m, &(struct manager_queued_event) {
                .ev = { .type = MANAGER_EVENT_IMAGE_REMOVED, .image = img },
                .frees = true,
        });
}

void manager_remove_job(struct manager *m, struct job *j) {
        manager_detach_job(m, j);
        queue_event(m, &(struct manager_queued_event) {
                .ev = { .type = MANAGER_EVENT_JOB_REMOVED, .device = j->device, .job = j },
                .frees = true,
        });
}

void manager_remove_rollout(struct manager *m, struct rollout *r) {
        rollout_executor_detach(m->rollouts, r);
        queue_event(m, &(struct manager_queued_event) {
                               .ev = { .type = MANAGER_EVENT_ROLLOUT_REMOVED, .rollout = r },
                               .frees = true,
                       });
}

void manager_remove_distribution(struct manager *m, struct distribution *d) {
        ARRAY_REMOVE(m->distributions, m->n_distributions, d);
        queue_event(m, &(struct manager_queued_event) {
                               .ev = { .type = MANAGER_EVENT_DISTRIBUTION_REMOVED, .distribution = d },
                               .frees = true,
                       });
}

/* Frees what the queue would have freed; nobody is told any more. */
static void queue_drop(struct manager *m) {
        for (size_t i = 0; i < m->n_events; i++)
                if (m->events[i].frees)
                        event_free_object(&m->events[i].ev);
        m->n_events = 0;
        free(m->events);
        m->events = NULL;
        m->events_alloc = 0;
}

/* ---- history and flushing ---- */

void manager_history(struct manager *m, const char *type, const struct device *d, const char *image_id,
                     const struct job *j, const char *fmt, ...) {
        char msg[512];
        va_list ap;

        if (!m->db)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        db_history_add(m->db, now_realtime_usec(), type, d ? d->id : j ? j->device_id : 0,
                       image_id ? image_id : j ? j->image_id : NULL, j ? j->id : 0, msg);
}

static int flush(struct manager *m, bool all) {
        int r;

        if (!m->db)
                return 0;
        r = all ? db_flush_all(m->db, m) : db_flush(m->db, m);
        m->stats.flushes++;
        if (r < 0) {
                m->stats.flush_errors++;
                log_warning_errno(r, "Writing to the database failed, will retry: %m");
        }
        return r;
}

int manager_flush_now(struct manager *m) {
        return flush(m, false);
}

static int on_flush_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct manager *m = userdata;
        (void) manager_flush_now(m);
        (void) sd_event_source_set_time(s, usec + m->config->flush_interval_usec);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

static bool checkpoint_may_run(struct manager *m, uint64_t now) {
#if HAVE_REST
        /* The checkpoint runs on the loop: every request that arrives
         * meanwhile waits for it. */
        if (rest_busy(m->rest, now)) {
                if (m->checkpoint_postponed_since_usec == 0)
                        m->checkpoint_postponed_since_usec = now;
                if (now - m->checkpoint_postponed_since_usec < CHECKPOINT_POSTPONE_MAX_USEC) {
                        m->stats.checkpoints_postponed++;
                        return false;
                }
        }
#endif
        m->checkpoint_postponed_since_usec = 0;
        return true;
}

static int on_absent_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct manager *m = userdata;
        devices_check_absent(m);
        /* An idle moment: let SQLite move the WAL into the database so
         * the WAL file stays small. */
        if (m->db && checkpoint_may_run(m, now_monotonic_usec())) {
                (void) db_checkpoint(m->db);
                m->stats.checkpoints++;
        }
        (void) sd_event_source_set_time(s, usec + ABSENT_CHECK_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

/* Watchdog: only pinged after checking that the parts we depend on
 * answer (the loop runs, the database reads, the REST API can take a
 * client), so a wedged SQLite file or a deaf REST API gets us restarted
 * instead of silently stuck. */
static bool rest_serviceable(struct manager *m) {
#if HAVE_REST
        const char *reason = NULL;
        unsigned failures = rest_watchdog_check(m->rest, &reason);

        /* Once may be a moment (accept() hit EMFILE and no connection has
         * closed yet); twice in a row is half the watchdog interval. */
        if (failures == 1)
                log_warning("REST API cannot accept clients: %s", reason);
        else if (failures > 1) {
                log_error("REST API cannot accept clients for %u checks: %s; not pinging the watchdog", failures,
                          reason);
                return false;
        }
#endif
        return true;
}

/* How often the watchdog's database check reads the whole file
 * (db_check()); the ticks between only ask SQLite for a read
 * (db_ping()).  The whole-file check stops the loop for as long as it
 * reads: 29 ms for an 8 MB database on a PC, several times that on a Pi
 * or once the file has left the page cache, every 30 s when it ran at
 * each tick.  At the first tick after start, then once a day. */
#define DB_WHOLE_CHECK_INTERVAL_USEC (24ull * 3600ull * 1000000ull)

static int on_watchdog_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct manager *m = userdata;
        uint64_t interval = 0;
        _cleanup_free_ char *msg = NULL;
        bool rest_ok;
        int r = 0;

        (void) sd_watchdog_enabled(false, &interval);
        rest_ok = rest_serviceable(m);
        if (m->db) {
                bool whole = m->db_checked_usec == 0 || usec - m->db_checked_usec >= DB_WHOLE_CHECK_INTERVAL_USEC;
                r = whole ? db_check(m->db, &msg) : db_ping(m->db);
                if (whole && (r >= 0 || r == -EUCLEAN))
                        m->db_checked_usec = MAX(usec, 1u);
        }
        if (r >= 0 || r == -EUCLEAN) {
                /* A corrupt page is reported, not fixed by restarting. */
                if (r == -EUCLEAN)
                        log_error("Database check failed: %s", msg ? msg : "?");
                if (rest_ok)
                        (void) sd_notify(false, "WATCHDOG=1");
        } else
                log_warning_errno(r, "Database does not answer, not pinging the watchdog: %m");
        /* Half the interval, as sd_event_set_watchdog() does: a ping late
         * by a loaded loop still arrives in time. */
        (void) sd_event_source_set_time(s, usec + MAX(interval / 2, 10000ull));
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

static int on_schedule_defer(sd_event_source *s, void *userdata) {
        struct manager *m = userdata;
        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        /* Here, not where a job finishes: nothing walks the job array now. */
        jobs_prune(m);
        jobs_schedule(m);
        probes_schedule(m);
        return 0;
}

/* A fleet's probes (a discovery round, the start's re-probes) leave the
 * heap holed: thousands of sessions, frames and JSON freed between the
 * device records that stay.  glibc returns only the top of the heap by
 * itself; malloc_trim() gives back every whole free page inside it too
 * (about 0.2 MiB of 7 with 10,000 devices).  It walks the free lists, so
 * not after every single re-probe. */
#define HEAP_TRIM_INTERVAL_USEC (10 * 1000000ull)

void manager_trim_heap(struct manager *m) {
        uint64_t now = now_monotonic_usec();

        if (!m->heap_trim_due || (m->heap_trimmed_usec > 0 && now - m->heap_trimmed_usec < HEAP_TRIM_INTERVAL_USEC))
                return;
        m->heap_trim_due = false;
        m->heap_trimmed_usec = now;
        (void) malloc_trim(0);
}

void manager_schedule_jobs(struct manager *m) {
        if (m->schedule_defer && !m->stopping)
                (void) sd_event_source_set_enabled(m->schedule_defer, SD_EVENT_ONESHOT);
}

static int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        for (char *p = copy + 1; *p; p++)
                if (*p == '/') {
                        *p = 0;
                        if (mkdir(copy, mode) < 0 && errno != EEXIST)
                                return -errno;
                        *p = '/';
                }
        if (mkdir(copy, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* Takes an exclusive flock() on path (created if needed) and writes our
 * PID into it, so the refusal of a second daemon can name the first.
 * The kernel releases a flock however the process ends, so a kill -9
 * leaves no stale lock (the file itself stays).  A file of its own, not
 * the database: SQLite's fcntl() locks are on that, and a process loses
 * its fcntl() locks on a file when it closes any descriptor of it. */
static int lock_file(const char *path, const char *what, const char *dir, int *ret_fd) {
        _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        char pid[24] = "";

        if (fd < 0)
                return log_error_errno(-errno, "Cannot open the lock file %s: %m", path);
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                int r = -errno;
                if (r != -EWOULDBLOCK)
                        return log_error_errno(r, "Cannot lock %s: %m", path);
                ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
                pid[n > 0 ? n : 0] = '\0';
                pid[strcspn(pid, "\n")] = '\0';
                return log_error_errno(-EBUSY,
                                       "Another smpgwd%s%s%s is running on the %s %s (it holds %s); "
                                       "refusing to start a second one on the same files",
                                       *pid ? " (PID " : "", pid, *pid ? ")" : "", what, dir, path);
        }
        char buf[24];
        int len = snprintf(buf, sizeof(buf), "%d\n", (int) getpid());
        ssize_t written = ftruncate(fd, 0) < 0 ? -1 : pwrite(fd, buf, (size_t) len, 0);
        if (written != len)
                log_warning_errno(written < 0 ? -errno : -EIO, "Cannot write our PID into %s, ignoring: %m", path);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Both, always: the state directory holds the image store (a second
 * daemon deletes the first's images as orphans of its own database), and
 * the database may be moved out of it (db=, --db) and shared that way. */
static int manager_lock(struct manager *m) {
        const struct config *c = m->config;
        _cleanup_free_ char *state_lock = NULL, *db_lock = NULL;
        int r;

        if (asprintf(&state_lock, "%s/smpgwd.lock", c->state_dir) < 0 ||
            asprintf(&db_lock, "%s.lock", c->db_path) < 0)
                return -ENOMEM;
        r = lock_file(state_lock, "state directory", c->state_dir, &m->state_lock_fd);
        if (r < 0)
                return r;
        return lock_file(db_lock, "database", c->db_path, &m->db_lock_fd);
}

static void add_configured_devices(struct manager *m) {
        for (size_t i = 0; i < m->config->n_devices; i++) {
                _cleanup_free_ char *why = NULL;
                struct device *d = NULL;
                int r = manager_add_device(m, m->config->devices[i], "config", &d, &why);
                /* The entry by number: the sentence names what is wrong in
                 * it, and the string itself may not be printable. */
                if (r == -EINVAL || r == -ENOENT)
                        log_warning("Configured device %zu of [devices] add not added: %s", i + 1,
                                    why ? why : strerror(-r));
                else if (r < 0 && r != -EEXIST)
                        log_warning_errno(r, "Configured device '%s' not added: %m", m->config->devices[i]);
        }
}

/* libsmpgw's messages (plugins log through it) into ours. */
static void on_lib_log(int level, const char *source, const char *message, void *userdata) {
        log_full(level, "%s: %s", source, message);
}

/* Lists the plugins there are, without loading any: a plugin is loaded
 * when a scheme is first used (a device added from the configuration,
 * REST or D-Bus, a discovery source, the database's devices below), so
 * that a fleet on one transport maps no other plugin nor the libraries
 * behind it (libcoap, OpenSSL's TLS, BlueZ's).  Loudly when there is
 * none at all. */
static void list_transports(struct manager *m) {
        _cleanup_(smp_strv_freep) char **names = NULL;
        const char *path = smp_context_get_plugin_path(m->smp);

        int n = smp_context_list_transports(m->smp, &names);
        if (n < 0) {
                log_error_errno(n, "Cannot list the transport plugins in %s: %m", path);
                return;
        }
        if (n == 0) {
                log_error("No transport plugin (smpgw-transport-*.so) in %s: no device can be reached. "
                          "Install the plugins or point plugin_dir (--plugin-dir) at them.",
                          path);
                return;
        }
        _cleanup_free_ char *list = NULL;
        size_t len = 0;
        for (int i = 0; i < n; i++) {
                char *l = realloc(list, len + strlen(names[i]) + 3);
                if (!l)
                        return;
                list = l;
                len += (size_t) sprintf(list + len, "%s%s", i ? ", " : "", names[i]);
        }
        log_info("Transports (from %s): %s, each loaded when first used", path, list);
}

/* The schemes of the devices in the database are in use: their plugins
 * are loaded at start, so that one missing or broken is reported now,
 * not at the device's first probe or job. */
static void load_inventory_transports(struct manager *m) {
        const char *tried[SMP_CONTEXT_TRANSPORTS_MAX + 1];
        size_t n_tried = 0;

        for (size_t i = 0; i < m->n_devices && n_tried < ELEMENTSOF(tried); i++) {
                const char *scheme = m->devices[i]->transport;
                bool seen = streq(scheme, DEVICE_TRANSPORT_MESH); /* the Distributor's link, no plugin */
                for (size_t k = 0; k < n_tried && !seen; k++)
                        seen = streq(tried[k], scheme);
                if (seen)
                        continue;
                tried[n_tried++] = scheme;
                _cleanup_free_ char *why = NULL;
                int r = smp_context_find_transport(m->smp, scheme, NULL, &why);
                if (r < 0)
                        log_error("Transport '%s' of devices in the database cannot be used: %s", scheme,
                                  why ? why : strerror(-r));
        }
}

int manager_start(struct manager *m) {
        struct config *c = m->config;
        uint64_t now;
        int r;

        if (c->plugin_dir) {
                r = smp_context_set_plugin_path(m->smp, c->plugin_dir);
                if (r < 0)
                        return log_error_errno(r, "plugin_dir '%s': not absolute directories separated by ':': %m",
                                               c->plugin_dir);
        }
        smp_context_set_log(m->smp, smpgwd_log_max_level, on_lib_log, m);
        list_transports(m);

        r = mkdir_p(c->state_dir, 0750);
        if (r < 0)
                return log_error_errno(r, "Cannot create the state directory %s: %m", c->state_dir);
        if (!c->db_path && asprintf(&c->db_path, "%s/smpgw.db", c->state_dir) < 0)
                return -ENOMEM;
        if (asprintf(&m->images_dir, "%s/images", c->state_dir) < 0)
                return -ENOMEM;
        r = manager_lock(m);
        if (r < 0)
                return r;

        (void) sd_notify(false, "STATUS=Opening the database");
        r = db_open(c->db_path, &m->db);
        if (r < 0)
                return r;
        r = db_load(m->db, m);
        if (r < 0)
                return log_error_errno(r, "Cannot load the database %s: %m", c->db_path);
        r = db_distributions_load(m->db, m);
        if (r < 0)
                return log_error_errno(r, "Cannot load the mesh distributions from %s: %m", c->db_path);
        r = image_store_load_keys(m);
        if (r < 0)
                return log_error_errno(r, "Cannot load the image signing keys: %m");
        r = image_store_init(m);
        if (r < 0)
                return log_error_errno(r, "Cannot open the image store %s: %m", m->images_dir);
        jobs_prune(m);
        load_inventory_transports(m);
        log_info("Database %s: %zu devices, %zu images, %zu jobs", c->db_path, m->n_devices, m->n_images,
                 m->n_jobs);

        r = sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return r;
        r = sd_event_add_time(m->event, &m->flush_timer, CLOCK_MONOTONIC, now + c->flush_interval_usec, 0,
                              on_flush_timer, m);
        if (r < 0)
                return r;
        r = sd_event_add_time(m->event, &m->absent_timer, CLOCK_MONOTONIC, now + ABSENT_CHECK_USEC, 0,
                              on_absent_timer, m);
        if (r < 0)
                return r;
        r = sd_event_add_defer(m->event, &m->schedule_defer, on_schedule_defer, m);
        if (r < 0)
                return r;
        /* After the flush so pending writes go out before new work. */
        (void) sd_event_source_set_priority(m->schedule_defer, SD_EVENT_PRIORITY_NORMAL + 10);
        uint64_t wd = 0;
        if (sd_watchdog_enabled(false, &wd) > 0) {
                r = sd_event_add_time(m->event, &m->watchdog_timer, CLOCK_MONOTONIC, now + wd / 2, 0,
                                      on_watchdog_timer, m);
                if (r < 0)
                        return r;
        }

#if HAVE_REST
        if (c->rest_enabled) {
                r = rest_start(m, &m->rest);
                if (r < 0)
                        return r;
        }
#endif
        if (c->bus != CONFIG_BUS_NONE) {
                r = bus_api_start(m, &m->bus);
                if (r < 0)
                        return r;
        }

        add_configured_devices(m);
        if (c->discovery_enabled) {
                r = discovery_start(m, &m->discovery);
                if (r < 0)
                        return r;
        }
        /* After the jobs are loaded (members follow their jobs) and the
         * front ends observe (they hear of the rollouts' first steps). */
        r = rollout_executor_new(m, &m->rollouts);
        if (r < 0)
                return log_error_errno(r, "Cannot load the rollouts: %m");
        r = hawkbit_start(m, &m->hawkbit);
        if (r < 0)
                return r;
        /* Jobs that were queued or running when we stopped go on now. */
        manager_schedule_jobs(m);
        distributions_start_all(m);
        /* Loading the database's rows freed as much as it kept. */
        m->heap_trim_due = true;
        return 0;
}

int manager_run(struct manager *m) {
        int state, code = 0, r;

        while ((state = sd_event_get_state(m->event)) != SD_EVENT_FINISHED) {
                if (state < 0)
                        return state;
                /* sd_event_run(), with the dispatch timed: one callback,
                 * during which nothing else on the loop is served. */
                r = sd_event_prepare(m->event);
                if (r == 0)
                        r = sd_event_wait(m->event, UINT64_MAX);
                if (r > 0) {
                        uint64_t start = now_monotonic_usec();

                        r = sd_event_dispatch(m->event);
                        latency_add(&m->stats.loop_dispatch, now_monotonic_usec() - start);
                }
                if (r < 0)
                        return r;
        }
        r = sd_event_get_exit_code(m->event, &code);
        return r < 0 ? r : code;
}

void manager_stop(struct manager *m) {
        if (m->stopping)
                return;
        m->stopping = true;
        /* First: it must not start anything on what stops below. */
        m->hawkbit = hawkbit_free(m->hawkbit);
        m->discovery = discovery_free(m->discovery);
        for (size_t i = 0; i < m->n_devices; i++)
                device_probe_cancel(m->devices[i]);
        rollout_executor_stop(m->rollouts);
        jobs_stop_all(m);
        distributions_stop_all(m);
        /* The last_seen values written lazily too (device_row_due()). */
        (void) flush(m, true);
}

int manager_check_config(const struct config *c) {
        struct mcuboot_key **keys = NULL;
        size_t n_keys = 0;
        int r;

        /* What a start or a reload reads besides the file itself; each
         * failure is logged where it is found. */
        r = image_store_read_keys(c, &keys, &n_keys);
        if (r < 0)
                return r;
        image_keys_free(keys, n_keys);
#if HAVE_REST
        if (c->rest_enabled) {
                _cleanup_(rest_tokens_freep) struct rest_tokens *tokens = NULL;
                r = rest_tokens_read(c->rest_tokens_file, &tokens);
                if (r < 0)
                        return r;
        }
#endif
        return 0;
}

int manager_reload(struct manager *m) {
        _cleanup_(config_freep) struct config *fresh = NULL;
        int r;

        r = config_load(m->config->config_path, m->config->config_path != NULL, &fresh);
        if (r < 0)
                return log_error_errno(r, "Reload failed, keeping the running configuration: %m");
        /* A file emptied or replaced by mistake must not open the API:
         * switching authentication off is a restart, a deliberate act. */
        if (m->config->rest_tokens_file && !fresh->rest_tokens_file)
                return log_error_errno(-EPERM,
                                       "Reload refused: %s sets no [rest] tokens_file, which would switch "
                                       "authentication of the REST API off (restart smpgwd to do that); "
                                       "keeping the running configuration",
                                       fresh->config_path ? fresh->config_path : SMPGWD_CONFIG_PATH_DEFAULT);
        /* Every file the new configuration names is read and checked
         * before any of it is put in place: a key or tokens file that
         * cannot be used refuses the whole reload, so the running
         * configuration never names files whose contents are not the
         * ones in use. */
        struct mcuboot_key **keys = NULL;
        size_t n_keys = 0;
        r = image_store_read_keys(fresh, &keys, &n_keys);
        if (r < 0)
                return log_error_errno(r, "Reload refused: an [images] keys file cannot be used (see above); keeping "
                                          "the running configuration, signing keys and tokens");
#if HAVE_REST
        _cleanup_(rest_tokens_freep) struct rest_tokens *tokens = NULL;
        if (m->rest) {
                r = rest_tokens_read(fresh->rest_tokens_file, &tokens);
                if (r < 0) {
                        image_keys_free(keys, n_keys);
                        return log_error_errno(r, "Reload refused: the [rest] tokens_file cannot be used (see above); "
                                                  "keeping the running configuration, signing keys and tokens");
                }
        }
#endif
        /* What can change at run time.  Paths, the bus and the listen
         * address need a restart (they are where our state and clients
         * are). */
        struct config *c = m->config;
#define TAKE_FIELD(f) do { __typeof__(c->f) _t = c->f; c->f = fresh->f; fresh->f = _t; } while (0)
        TAKE_FIELD(image_keys);
        TAKE_FIELD(n_image_keys);
        TAKE_FIELD(image_max_size);
        TAKE_FIELD(max_images);
        TAKE_FIELD(devices);
        TAKE_FIELD(n_devices);
        TAKE_FIELD(max_devices);
        TAKE_FIELD(absent_after_usec);
        TAKE_FIELD(reprobe_usec);
        TAKE_FIELD(max_probes);
        TAKE_FIELD(probe_timeout_usec);
        TAKE_FIELD(jobs_max_running);
        TAKE_FIELD(jobs_max_running_ble);
        TAKE_FIELD(jobs_max_running_serial);
        TAKE_FIELD(jobs_max_running_udp);
        TAKE_FIELD(jobs_max_running_coap);
        TAKE_FIELD(job_attempts);
        TAKE_FIELD(job_retry_delay_usec);
        TAKE_FIELD(job_retry_delay_max_usec);
        TAKE_FIELD(job_mode);
        TAKE_FIELD(job_swap_timeout_usec);
        TAKE_FIELD(job_erase_timeout_usec);
        TAKE_FIELD(job_keep);
        TAKE_FIELD(jobs_max_running_ble_adapter);
        TAKE_FIELD(job_swap_estimate_usec);
        TAKE_FIELD(rollout_keep_finished);
        TAKE_FIELD(rollout_keep_finished_age_usec);
        TAKE_FIELD(rest_tokens_file);
        TAKE_FIELD(discovery_enabled);
        TAKE_FIELD(discover_udp);
        TAKE_FIELD(n_discover_udp);
        TAKE_FIELD(discover_coap);
        TAKE_FIELD(n_discover_coap);
        TAKE_FIELD(discover_coap_multicast);
        TAKE_FIELD(discover_ble);
        TAKE_FIELD(ble_adapters);
        TAKE_FIELD(n_ble_adapters);
        TAKE_FIELD(discovery_interval_usec);
#undef TAKE_FIELD
        /* A job decides from it whether it keeps its slot or the session
         * through a reboot, and its state follows from that decision: a
         * job rebooting with a kept slot must not find the other way
         * half through.  A comparison switch (tools/bench/fanout): it
         * changes at a restart. */
        if (fresh->job_hold_slot_during_reboot != c->job_hold_slot_during_reboot)
                log_notice("[jobs] hold_slot_during_reboot changes at the next restart of smpgwd only; keeping %s",
                           c->job_hold_slot_during_reboot ? "true" : "false");
        image_store_install_keys(m, TAKE_PTR(keys), n_keys);
#if HAVE_REST
        if (m->rest)
                rest_tokens_install(m->rest, TAKE_PTR(tokens));
#endif
        /* A lowered link bound caps what an adapter learned; links held
         * above it stay until their jobs end, new ones wait below it. */
        for (size_t i = 0; i < m->radio.n_adapters; i++)
                m->radio.adapters[i].limit = MIN(m->radio.adapters[i].limit, c->jobs_max_running_ble_adapter);
        /* Lowered bounds of what is kept apply now, not at the next job
         * or rollout to finish. */
        jobs_prune(m);
        (void) rollouts_prune(m, now_realtime_usec());
        r = db_distributions_load(m->db, m);
        if (r < 0)
                return log_error_errno(r, "Cannot load the mesh distributions from %s: %m", c->db_path);
        add_configured_devices(m);
        m->discovery = discovery_free(m->discovery);
        if (c->discovery_enabled) {
                r = discovery_start(m, &m->discovery);
                if (r < 0)
                        log_warning_errno(r, "Discovery not restarted: %m");
        }
        manager_schedule_jobs(m);
        log_info("Configuration reloaded");
        return 0;
}

struct manager *manager_free(struct manager *m) {
        if (!m)
                return NULL;
        manager_stop(m);
        m->bus = bus_api_free(m->bus);
#if HAVE_REST
        m->rest = rest_free(m->rest);
#endif
        sd_event_source_disable_unref(m->flush_timer);
        sd_event_source_disable_unref(m->absent_timer);
        sd_event_source_disable_unref(m->schedule_defer);
        sd_event_source_disable_unref(m->watchdog_timer);
        /* The front ends are gone: nobody to tell. */
        m->deliver_defer = sd_event_source_disable_unref(m->deliver_defer);
        queue_drop(m);
        m->rollouts = rollout_executor_free(m->rollouts);
        /* The objects go by their arrays; the index tables with them. */
        manager_clear_indexes(m);
        for (size_t i = 0; i < m->n_distributions; i++)
                distribution_free(m->distributions[i]);
        free(m->distributions);
        for (size_t i = 0; i < m->n_jobs; i++)
                job_free(m->jobs[i]);
        free(m->jobs);
        job_radio_done(&m->radio);
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
        m->db = db_close(m->db);
        free(m->images_dir);
        /* Last: nobody may open our files before we are done with them. */
        closep(&m->db_lock_fd);
        closep(&m->state_lock_fd);
        config_free(m->config);
        /* After everything that holds a session or a discovery. */
        smp_context_unref(m->smp);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}
