/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwd's model: the manager that owns the event loop, the database, the
 * image store, the device inventory and the push jobs; the objects the
 * REST and D-Bus front ends show.  Everything runs on one sd-event loop,
 * so nothing here is locked.
 *
 * Ownership: the manager owns every device, image and job (arrays of
 * pointers below); front ends hold no pointers across loop iterations
 * except through observers, which are told before an object is freed
 * (MANAGER_EVENT_*_REMOVED).
 *
 * Persistence: the database is the record, memory is the working copy.
 * Objects are loaded at start; a change marks the object dirty and the
 * flush timer (config.flush_interval) writes every dirty object in one
 * transaction, so a busy upload costs one small write every few seconds
 * and a kill -9 loses at most that much progress.  State transitions
 * that must not be lost (a job created, finished or cancelled, an image
 * added, a device added or forgotten) call manager_flush_now().
 */
#pragma once

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "smpgw/smp-update.h"
#include "smpgwd-limits.h"

struct config;
struct db;
struct rest;
struct dbus_api;
struct discovery;
struct probe;
struct smp_session;
struct smp_request;
struct smp_context;
struct mcuboot_key;

/* ---- devices ---- */

enum device_state {
        DEVICE_NEW,           /* known, never probed yet */
        DEVICE_ONLINE,        /* answered its last probe or job */
        DEVICE_UNREACHABLE,   /* seen, but the last probe failed */
        DEVICE_ABSENT,        /* not seen for config.absent_after */
        _DEVICE_STATE_MAX,
};

struct device {
        struct manager *manager;
        uint64_t id;                  /* database row id, > 0, never reused */
        char *conn;                   /* connection string, unique */
        char transport[16];           /* its scheme: "udp", "ble", ... */
        char *address;                /* transport address (may be NULL) */
        char *address_type;           /* BLE "public"/"random", else NULL */
        char *adapter;                /* BLE adapter, else NULL */
        char *name;                   /* may be NULL; device_name_check() holds */
        bool has_rssi;
        int16_t rssi;
        enum device_state state;
        char source[16];              /* "discovery", "rest", "dbus", "config" */
        uint64_t first_seen_usec;     /* CLOCK_REALTIME µs */
        uint64_t last_seen_usec;
        uint64_t last_probe_usec;     /* 0: never */
        bool has_params;              /* mcumgr parameters */
        uint32_t buf_size, buf_count;
        char *os_info;                /* OS info "a" string, may be NULL */
        char *bootloader;             /* bootloader name, may be NULL */
        uint8_t smp_version;          /* 0 unknown, 1 or 2 */
        char *last_error;             /* the last probe's error, may be NULL */
        struct smp_update_snapshot slots;

        /* runtime, not stored */
        struct probe *probe;          /* a probe in progress */
        bool probe_queued;            /* waiting for a free probe slot (config.max_probes) */
        struct job *job;              /* the job running on it, if any */
        bool dirty;
        bool slots_dirty;
};

/* ---- images ---- */

struct image {
        struct manager *manager;
        char id[65];                  /* hex image hash (SHA256 TLV) */
        char *name;                   /* given name (file name), may be NULL */
        char version[32];             /* "1.2.3+4" */
        uint64_t file_size;
        uint32_t image_size;          /* the header's img_size */
        char file_sha256[65];         /* hex SHA-256 of the whole file */
        bool signed_;                 /* a signature verified with a configured key */
        char *key;                    /* that key's label, may be NULL */
        uint64_t added_usec;
        char *path;                   /* <state dir>/images/<id>.img */

        /* runtime: a read-only mapping shared by the jobs pushing it */
        unsigned n_map;
        void *map;
        size_t map_len;
};

/* ---- jobs ---- */

enum job_state {
        JOB_QUEUED,                   /* waiting for a free slot (limits) */
        JOB_RUNNING,
        JOB_RETRY_WAIT,               /* failed an attempt; next_attempt_usec says when */
        JOB_SUCCEEDED,                /* outcome updated/up-to-date/testing/uploaded */
        JOB_FAILED,                   /* out of attempts, or an outcome that is final */
        JOB_CANCELLED,
        _JOB_STATE_MAX,
};

struct job {
        struct manager *manager;
        uint64_t id;                  /* database row id, > 0 */
        uint64_t device_id;
        char image_id[65];
        uint64_t rollout_id;          /* 0: not part of a rollout */
        enum smp_update_mode mode;
        enum job_state state;
        bool has_step;
        enum smp_update_step step;    /* the update step running or last run */
        bool has_outcome;
        enum smp_update_outcome outcome;
        unsigned attempts, max_attempts;
        uint64_t bytes_sent, bytes_total;  /* upload progress: device-acknowledged offset, file size */
        double rate;                  /* bytes/s of the current or last upload */
        char *error;                  /* the last attempt's error as a sentence, may be NULL */
        uint64_t created_usec, started_usec, finished_usec, next_attempt_usec, updated_usec;
        /* The device's slots as the job found them: read once, before
         * its first attempt, and written at once (job_slots_before).  The
         * outcome is judged against them, so an attempt resumed after a
         * crash that finds the image already running says "updated",
         * not "up-to-date".  n_slots 0: not read yet. */
        struct smp_update_snapshot before;
        bool before_dirty;

        /* runtime, not stored */
        struct smp_session *session;
        struct smp_request *before_read;  /* reading `before` */
        struct smp_update *update;
        struct image *image_mapped;   /* holds a mapping while running */
        sd_event_source *retry_timer;  /* retry-wait, or queued with a future next_attempt */
        sd_event_source *finish_defer; /* tears the session down outside its callbacks */
        uint64_t last_progress_emit_usec;
        uint64_t last_progress_bytes;  /* for stats.bytes_uploaded */
        bool dirty;
};

/* ---- events: what front ends (SSE, D-Bus signals, history) observe ---- */

enum manager_event_type {
        MANAGER_EVENT_DEVICE_ADDED,
        MANAGER_EVENT_DEVICE_CHANGED,  /* any field: state, seen, probe result, slots */
        MANAGER_EVENT_DEVICE_REMOVED,  /* forgotten; the object is freed after observers return */
        MANAGER_EVENT_IMAGE_ADDED,
        MANAGER_EVENT_IMAGE_REMOVED,   /* freed after observers return */
        MANAGER_EVENT_JOB_ADDED,
        MANAGER_EVENT_JOB_STATE,       /* state, step, attempts, outcome or error changed */
        MANAGER_EVENT_JOB_PROGRESS,    /* bytes_sent/rate changed; at most 4 per second per job */
        MANAGER_EVENT_JOB_REMOVED,     /* pruned ([jobs] keep) or its device forgotten; freed after */
        _MANAGER_EVENT_MAX,
};

struct manager_event {
        enum manager_event_type type;
        struct device *device;         /* set for DEVICE_* (and JOB_* : the job's device) */
        struct image *image;           /* set for IMAGE_* */
        struct job *job;               /* set for JOB_* */
};

typedef void (*manager_observer_fn)(struct manager *m, const struct manager_event *ev, void *userdata);

/* ---- the manager ---- */

struct manager_stats {
        uint64_t jobs_succeeded, jobs_failed, jobs_cancelled, job_attempts_failed;
        uint64_t bytes_uploaded;       /* acknowledged by devices, this process lifetime */
        uint64_t probes_ok, probes_failed;
        uint64_t flushes, flush_errors;
        uint64_t images_rejected;
        uint64_t rest_requests, rest_errors;   /* counted by rest.c */
};

struct manager {
        sd_event *event;
        struct config *config;         /* owned */
        struct smp_context *smp;       /* owned: transports, their state, lib's logging */
        struct db *db;                 /* owned */
        struct rest *rest;             /* owned, NULL when REST is off */
        struct dbus_api *dbus;         /* owned, NULL when D-Bus is off */
        struct discovery *discovery;   /* owned */
        char *images_dir;              /* <state dir>/images */
        struct mcuboot_key **keys;     /* configured image signing keys */
        size_t n_keys;

        struct device **devices;
        size_t n_devices;
        struct image **images;
        size_t n_images;
        struct job **jobs;             /* every job in the database, oldest first */
        size_t n_jobs;

        struct {
                manager_observer_fn fn;
                void *userdata;
        } *observers;
        size_t n_observers;

        sd_event_source *flush_timer;
        sd_event_source *schedule_defer; /* runs jobs_schedule() once per loop iteration */
        sd_event_source *absent_timer;
        sd_event_source *watchdog_timer;
        uint64_t started_usec;
        bool stopping;
        /* flock()ed for the process's lifetime: <state dir>/smpgwd.lock
         * and <db>.lock; -1 when not taken.  Two daemons on the same
         * files would overwrite each other's rows and delete each
         * other's images as orphans. */
        int state_lock_fd, db_lock_fd;
        struct manager_stats stats;
};

int manager_new(sd_event *event, struct config *config, struct manager **ret);
struct manager *manager_free(struct manager *m);
/* Opens the database, loads everything, starts discovery, jobs, REST and
 * D-Bus (as configured).  Logs its failures. */
int manager_start(struct manager *m);
/* SIGTERM: stops jobs where they are (checkpointing them as queued so
 * they resume at the next start), flushes, closes front ends. */
void manager_stop(struct manager *m);
/* SIGHUP: rereads what can change at run time (keys, limits, devices
 * from the configuration, discovery settings, tokens).  Refuses, logging
 * why and keeping everything as it runs, a configuration that does not
 * load or that would drop the REST API's tokens_file (-EPERM). */
int manager_reload(struct manager *m);

int manager_add_observer(struct manager *m, manager_observer_fn fn, void *userdata);
void manager_remove_observer(struct manager *m, manager_observer_fn fn, void *userdata);
void manager_emit(struct manager *m, enum manager_event_type type, struct device *d, struct image *img,
                  struct job *j);

/* Writes every dirty object now (one transaction). */
int manager_flush_now(struct manager *m);
/* Appends a history row (written with the next flush). */
void manager_history(struct manager *m, const char *type, const struct device *d, const char *image_id,
                     const struct job *j, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

uint64_t now_realtime_usec(void);

/* Appends an object loaded from the database or just created to the
 * manager's arrays, which take ownership.  -ENOMEM leaves it to the
 * caller. */
int manager_attach_device(struct manager *m, struct device *d);
int manager_attach_image(struct manager *m, struct image *img);
int manager_attach_job(struct manager *m, struct job *j);
/* Free one object (NULL is fine); they must not be attached any more. */
struct device *device_free(struct device *d);   /* inventory.c */
struct image *image_free(struct image *img);    /* image-store.c */
struct job *job_free(struct job *j);            /* jobs.c */

/* ---- devices (daemon/inventory.c) ---- */

struct device *manager_find_device(struct manager *m, uint64_t id);
/* By connection string, written any way that has the same canonical form
 * as the device's (doc/connection-strings.md). */
struct device *manager_find_device_by_conn(struct manager *m, const char *conn);
/* Adds a device by its connection string and probes it: the one door
 * every connection string (REST, D-Bus, configuration) goes through.  The
 * string is validated by libsmpgw and kept in canonical form, so two ways
 * of writing one device find the same device.  -EINVAL: not a valid
 * connection string; -ENOENT: no usable plugin for its scheme (both with
 * a sentence in *ret_reason, which may be NULL; free() it); -EEXIST: known
 * already (*ret is then the existing device); -E2BIG: config.max_devices. */
int manager_add_device(struct manager *m, const char *conn, const char *source, struct device **ret,
                       char **ret_reason);
/* Starts a probe (parameters, OS info, image state).  -EBUSY when a probe
 * or a job is running on it. */
int device_probe(struct device *d);
/* Deletes the device and its history.  -EBUSY while a job is queued or
 * running for it (cancel the job first). */
int manager_forget_device(struct manager *m, struct device *d);

/* A device's name is a label for people: at most DEVICE_NAME_MAX bytes of
 * UTF-8, no control characters (C0, DEL, C1, line separators, bidi
 * overrides: they would rewrite a table or a terminal line around it).
 * A user may set it; until then it defaults to the name the device
 * advertises over BLE or, failing that, its OS node name. */
/* 0 or -EINVAL. */
int device_name_check(const char *name);
/* Sets the name a user gives; NULL or "" removes it (the default applies
 * again from the next probe or BLE sighting).  Records, announces and
 * flushes a change.  1 changed, 0 the same, -EINVAL (device_name_check()),
 * -ENOMEM. */
int device_set_name(struct device *d, const char *name);
/* Takes candidate (a BLE name, an OS node name) as the name of a device
 * that has none, cut to DEVICE_NAME_MAX at a character boundary; ignores
 * "", Zephyr's "unknown" and strings that are no valid name.  Marks the
 * device dirty; announcing is the caller's.  true when it took it. */
bool device_default_name(struct device *d, const char *candidate);
const char *device_state_to_string(enum device_state s);
int device_state_from_string(const char *s);

/* Starts a discovery round now on every configured transport (D-Bus
 * Scan(), REST); -EALREADY when one is running. (discovery.c) */
int manager_scan(struct manager *m);

/* ---- images (daemon/image-store.c) ---- */

struct image *manager_find_image(struct manager *m, const char *id);

/* Clients name an image by its id or a prefix of it (smpgwd-limits.h).
 * ref is hex, IMAGE_ID_PREFIX_MIN..IMAGE_ID_LEN digits. */
bool image_ref_is_valid(const char *ref);
/* The stored image ref names.  -EINVAL: ref is not of that shape;
 * -ENOENT: no stored image; -ENOTUNIQ: the prefix fits more than one. */
int manager_lookup_image(struct manager *m, const char *ref, struct image **ret);
/* The image hash a filter names (?image=): a whole hash as it is (lower
 * case), a prefix resolved among every hash the gateway knows: stored
 * images, the images of jobs, the slots of devices.  Errors as
 * manager_lookup_image(). */
int manager_resolve_image_hash(struct manager *m, const char *ref, char ret_hash[static IMAGE_ID_LEN + 1]);
/* Creates images_dir, removes stray temporary files, and drops (with a
 * warning and a history row) image records whose file is gone.  Called by
 * manager_start() after db_load(). */
int image_store_init(struct manager *m);
/* (Re)loads config.image_keys into m->keys; on error the old keys stay. */
int image_store_load_keys(struct manager *m);
/* An unnamed temporary file in the image store directory (O_TMPFILE), to
 * stream an upload into without holding it in memory. */
int image_store_open_tmp(struct manager *m, int *ret_fd);
/* Reads an image from fd (at most config.image_max_size bytes; a store
 * temporary file is used in place, anything else is copied into one),
 * validates it (MCUboot header and TLVs, hash, signature against the
 * configured keys, required when keys are configured), stores it as
 * images/<id>.img (write, fsync, rename, fsync dir) and records it.
 * *ret_created is false when the same image was stored already.
 * Errors, with *ret_reason set to a sentence: -EFBIG too large,
 * -EBADMSG not a valid MCUboot image, -EKEYREJECTED no valid signature,
 * -E2BIG config.max_images reached; others are I/O errors. */
int image_store_add_fd(struct manager *m, int fd, const char *name, struct image **ret, bool *ret_created,
                       char **ret_reason);
/* -EBUSY while a job that is not finished uses it. */
int image_store_remove(struct manager *m, struct image *img);
/* Maps the file read-only (shared by every user); unmap when done. */
int image_map(struct image *img, const uint8_t **ret_data, size_t *ret_len);
void image_unmap(struct image *img);
bool image_in_use(struct manager *m, const struct image *img);

/* ---- jobs (daemon/jobs.c) ---- */

struct job_options {
        enum smp_update_mode mode;     /* default config.job_mode */
        unsigned max_attempts;         /* 0: config.job_attempts */
        uint64_t rollout_id;           /* 0: none */
        uint64_t not_before_usec;      /* 0: now; a scheduler can queue for later */
};

struct job *manager_find_job(struct manager *m, uint64_t id);
/* Queues a push of img to d.  -EBUSY when d already has an unfinished
 * job (*ret is then that job). */
int job_create(struct manager *m, struct image *img, struct device *d, const struct job_options *opts,
               struct job **ret);
/* -EALREADY when the job is finished already. */
int job_cancel(struct job *j);
/* Deletes a job (finished, or just created and taken back) from the
 * database and the model; on failure it stays as it is. */
int job_remove(struct job *j);
/* The unfinished job of a device (queued, running, retry-wait), if any. */
struct job *device_unfinished_job(struct manager *m, const struct device *d);
/* Jobs in state running, as REST's health and D-Bus JobsRunning show. */
unsigned jobs_count_running(struct manager *m);
bool job_is_finished(const struct job *j);
/* The share of the upload the device acknowledged, 0..1, and 1 once the
 * job succeeded (an up-to-date device needs no upload); and the rate,
 * 0 when not known.  As REST, SSE and D-Bus all show them. */
static inline double job_progress(const struct job *j) {
        if (j->state == JOB_SUCCEEDED)
                return 1.0;
        if (j->bytes_total == 0)
                return 0.0;
        return j->bytes_sent >= j->bytes_total ? 1.0 : (double) j->bytes_sent / (double) j->bytes_total;
}
static inline double job_rate(const struct job *j) {
        return isfinite(j->rate) && j->rate > 0 ? j->rate : 0.0;
}
const char *job_state_to_string(enum job_state s);
int job_state_from_string(const char *s);
/* Starts queued jobs while the limits allow (called by the manager). */
void jobs_schedule(struct manager *m);
unsigned jobs_running(struct manager *m, const char *transport);

/* ---- internal to the core (manager.c, inventory.c, probe.c, discovery.c, jobs.c) ---- */

struct smp_discovered;
void inventory_seen(struct manager *m, const struct smp_discovered *found);
void inventory_check_absent(struct manager *m);
void device_set_state(struct device *d, enum device_state s);
void device_mark_seen(struct device *d);
void probes_schedule(struct manager *m);
void device_probe_cancel(struct device *d);
int discovery_start(struct manager *m, struct discovery **ret);
struct discovery *discovery_free(struct discovery *disc);
void jobs_stop_all(struct manager *m);
void jobs_prune(struct manager *m);
void manager_schedule_jobs(struct manager *m);   /* jobs_schedule() at the next loop iteration */
void manager_detach_device(struct manager *m, struct device *d);
void manager_detach_image(struct manager *m, struct image *img);
void manager_detach_job(struct manager *m, struct job *j);
