/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwd's model: the manager that owns the event loop, the database, the
 * image store, the device inventory and the push jobs; the objects the
 * REST and D-Bus front ends show.  Everything runs on one sd-event loop,
 * so nothing here is locked.
 *
 * Ownership: the manager owns every device, image and job (arrays of
 * pointers below, with indexes); front ends hold no pointers across loop
 * iterations except through observers, which are told before an object
 * is freed (MANAGER_EVENT_*_REMOVED, below).  Each object has its header (device.h,
 * image.h, job.h); what front ends may ask of the model is engine.h.
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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

/* The model's objects: manager.h is the one header the core's files
 * include for the whole model. */
#include "device.h"
#include "discovery.h"
#include "image.h"
#include "job.h"
#include "job-radio.h"
#include "latency.h"

struct config;
struct db;
struct rest;
struct bus_api;
struct hawkbit;
struct smp_context;
struct mcuboot_key;
struct rollout;
struct rollout_executor;
struct distribution;

/* ---- events: what front ends (SSE, D-Bus signals, history) observe ----
 *
 * Delivery: manager_emit() only queues.  One deferred event source,
 * ahead of every other source of the loop, delivers the queue in order
 * to every observer as soon as the callback that emitted returns.  So no
 * observer (a front end) ever runs inside a libsmpgw callback, an HTTP or
 * D-Bus handler, or halfway through a change of the model, and none has
 * to guard against being called back from inside itself.  An observer
 * reads the object as it is at delivery: what the event says changed,
 * and what later changes of the same callback did (their events follow).
 * Observers are neither added nor removed during a delivery.  A manager
 * without an event loop (a test of the layers below) delivers at once.
 *
 * Lifetime: manager_remove_device(), _image(), _job(), _rollout() and
 * _distribution() take an object
 * out of the model at once (no lookup, list or bus path finds it any
 * more) and queue its *_REMOVED event, the last event about it; the
 * object is freed once that event has been delivered.  Every pointer of
 * every event an observer is given is valid for the whole call.
 */

enum manager_event_type {
        MANAGER_EVENT_DEVICE_ADDED,
        MANAGER_EVENT_DEVICE_CHANGED, /* any field: state, seen, probe result, slots */
        MANAGER_EVENT_DEVICE_REMOVED, /* forgotten */
        MANAGER_EVENT_IMAGE_ADDED,
        MANAGER_EVENT_IMAGE_REMOVED,
        MANAGER_EVENT_JOB_ADDED,
        MANAGER_EVENT_JOB_STATE,    /* state, step, attempts, outcome or error changed */
        MANAGER_EVENT_JOB_PROGRESS, /* bytes_sent/rate changed; at most 4 per second per job */
        MANAGER_EVENT_JOB_REMOVED,  /* pruned ([jobs] keep), taken back, or its device forgotten */
        MANAGER_EVENT_ROLLOUT_ADDED,
        MANAGER_EVENT_ROLLOUT_STATE,         /* state, current wave, error or paused reason changed */
        MANAGER_EVENT_ROLLOUT_PROGRESS,      /* counts, bytes, rate; at most 1 per second per rollout */
        MANAGER_EVENT_ROLLOUT_MEMBER,        /* a member's state changed (member_device_id) */
        MANAGER_EVENT_DISTRIBUTION_STATE,    /* created, or its state or a target's outcome changed */
        MANAGER_EVENT_DISTRIBUTION_PROGRESS, /* a target's phase or progress (at most 4 per second), or a new step */
        MANAGER_EVENT_ROLLOUT_REMOVED,       /* a finished one pruned ([rollouts] keep_finished) */
        MANAGER_EVENT_DISTRIBUTION_REMOVED,  /* a finished one pruned with its rollout, or beyond the bound */
        MANAGER_EVENT_IMAGE_CHANGED,         /* the boards it declares */
        _MANAGER_EVENT_MAX,
};

struct manager_event {
        enum manager_event_type type;
        struct device *device;         /* set for DEVICE_* (and JOB_* : the job's device) */
        struct image *image;           /* set for IMAGE_* */
        struct job *job;               /* set for JOB_* */
        struct rollout *rollout;       /* set for ROLLOUT_* */
        uint64_t member_device_id;     /* ROLLOUT_MEMBER: which member */
        struct distribution *distribution; /* set for DISTRIBUTION_* */
};

typedef void (*manager_observer_fn)(struct manager *m, const struct manager_event *ev, void *userdata);

/* ---- the manager ---- */

struct manager_stats {
        uint64_t jobs_succeeded, jobs_failed, jobs_cancelled, job_attempts_failed;
        uint64_t bytes_uploaded;       /* acknowledged by devices, this process lifetime */
        uint64_t probes_ok, probes_failed;
        uint64_t flushes, flush_errors;
        uint64_t checkpoints, checkpoints_postponed; /* the absence timer's, and those it put off */
        uint64_t rollout_writes;                     /* a rollout's row and changed members written at once */
        uint64_t images_rejected;
        uint64_t rest_requests, rest_errors;   /* counted by rest.c */
        /* How long each callback of the loop ran (manager_run()): what a
         * request that became ready meanwhile waited for at most. */
        struct latency_histogram loop_dispatch;
        /* A REST request from its request line read to its reply handed
         * to the kernel (rest.c). */
        struct latency_histogram rest_request;
};

struct manager {
        sd_event *event;
        struct config *config;         /* owned */
        struct smp_context *smp;       /* owned: transports, their state, lib's logging */
        struct db *db;                 /* owned */
        struct rest *rest;             /* owned, NULL when REST is off */
        struct bus_api *bus;           /* owned, NULL when D-Bus is off */
        struct discovery *discovery;   /* owned */
        struct rollout_executor *rollouts; /* owned: the rollouts and their executor (engine-rollout.h) */
        struct hawkbit *hawkbit;           /* owned, NULL when [hawkbit] is off */
        char *images_dir;              /* <state dir>/images */
        struct mcuboot_key **keys;     /* configured image signing keys */
        size_t n_keys;

        struct device **devices;
        size_t n_devices;
        struct image **images;
        size_t n_images;
        struct job **jobs;             /* every job in the database, oldest first */
        size_t n_jobs;
        /* Indexes of the same objects (model-index.h), kept by
         * manager_attach_*() and manager_detach_*(). */
        struct device_conn_index devices_by_conn; /* by id: devices[] itself, in id order */
        /* The devices' slot lists, one of each (device-slots.h). */
        struct device_slots_entry *slots_shared;
        /* The devices' bootloader names, one of each (device-strings.h). */
        struct device_string_entry *strings_shared;
        struct image *images_by_id;
        struct job *jobs_by_id;
        unsigned jobs_by_state[_JOB_STATE_MAX];
        struct distribution **distributions; /* every distribution, oldest first (distribution.h) */
        size_t n_distributions;

        struct {
                manager_observer_fn fn;
                void *userdata;
        } *observers;
        size_t n_observers;
        /* Events emitted, not delivered yet (manager.c) */
        struct manager_queued_event *events;
        size_t n_events, events_alloc;
        sd_event_source *deliver_defer;
        bool delivering;

        sd_event_source *flush_timer;
        sd_event_source *schedule_defer; /* runs jobs_schedule() once per loop iteration */
        sd_event_source *absent_timer;
        uint64_t checkpoint_postponed_since_usec; /* CLOCK_MONOTONIC; 0: none put off */
        sd_event_source *watchdog_timer;
        uint64_t db_checked_usec; /* CLOCK_MONOTONIC of the last whole-file check; 0: none yet */
        uint64_t started_usec;
        bool stopping;
        /* The heap's free pages go back to the kernel (malloc_trim())
         * once a burst of work is over: manager_trim_heap(). */
        bool heap_trim_due;
        uint64_t heap_trimmed_usec; /* CLOCK_MONOTONIC, 0: never */
        /* flock()ed for the process's lifetime: <state dir>/smpgwd.lock
         * and <db>.lock; -1 when not taken.  Two daemons on the same
         * files would overwrite each other's rows and delete each
         * other's images as orphans. */
        int state_lock_fd, db_lock_fd;
        struct manager_stats stats;
        /* Adapters' link limits and boards' swap times (job-radio.h). */
        struct job_radio radio;
        /* The rollout layer's say before a rollout job resets its device
         * (engine_set_reboot_gate()); NULL: always yes. */
        bool (*reboot_gate)(struct manager *m, const struct job *j, void *userdata); /* engine_reboot_gate_fn */
        void *reboot_gate_userdata;
};

int manager_new(sd_event *event, struct config *config, struct manager **ret);
struct manager *manager_free(struct manager *m);
/* Opens the database, loads everything, starts discovery, jobs, REST and
 * D-Bus (as configured).  Logs its failures. */
int manager_start(struct manager *m);
/* SIGTERM: stops jobs where they are (checkpointing them as queued so
 * they resume at the next start), flushes, closes front ends. */
void manager_stop(struct manager *m);
/* Runs the loop until sd_event_exit(), timing every dispatch into
 * stats.loop_dispatch.  Returns the exit code or a negative errno. */
int manager_run(struct manager *m);
/* SIGHUP: rereads what can change at run time (keys, limits, devices
 * from the configuration, discovery settings, tokens).  Refuses, logging
 * why and keeping everything as it runs, a configuration that does not
 * load or that would drop the REST API's tokens_file (-EPERM). */
int manager_reload(struct manager *m);
/* --check-config: the files a configuration names (signing keys, REST
 * tokens) read and checked as a start or a reload would; each failure is
 * logged.  The rule only a reload has (not dropping tokens_file) is not
 * checked: it needs the running configuration. */
int manager_check_config(const struct config *c);

int manager_add_observer(struct manager *m, manager_observer_fn fn, void *userdata);
void manager_remove_observer(struct manager *m, manager_observer_fn fn, void *userdata);
/* Queues an event (see above); for JOB_* events d may be NULL (the job's
 * device is taken). */
void manager_emit(struct manager *m, enum manager_event_type type, struct device *d, struct image *img,
                  struct job *j);
/* Queues a rollout event (ROLLOUT_*); member_device_id for ROLLOUT_MEMBER. */
void manager_emit_rollout(struct manager *m, enum manager_event_type type, struct rollout *r,
                          uint64_t member_device_id);
void manager_emit_distribution(struct manager *m, enum manager_event_type type, struct distribution *d);
/* Take the object out of the model and free it after its *_REMOVED
 * event (see above).  A device's jobs must be removed first, and a job
 * must not be running. */
void manager_remove_device(struct manager *m, struct device *d);
void manager_remove_image(struct manager *m, struct image *img);
void manager_remove_job(struct manager *m, struct job *j);
/* Only finished ones (daemon/rollout-prune.h): nothing runs them any more. */
void manager_remove_rollout(struct manager *m, struct rollout *r);
void manager_remove_distribution(struct manager *m, struct distribution *d);

/* Writes every dirty object now (one transaction). */
int manager_flush_now(struct manager *m);
/* Appends a history row (written with the next flush). */
void manager_history(struct manager *m, const char *type, const struct device *d, const char *image_id,
                     const struct job *j, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

uint64_t now_realtime_usec(void);
uint64_t now_monotonic_usec(void);

/* Appends an object loaded from the database or just created to the
 * manager's arrays, which take ownership.  -ENOMEM leaves it to the
 * caller. */
int manager_attach_device(struct manager *m, struct device *d);
int manager_attach_image(struct manager *m, struct image *img);
int manager_attach_job(struct manager *m, struct job *j);
/* ---- internal to the core ---- */

/* Frees the index tables, not the objects (manager_free(), and tests
 * that free the objects themselves). */
void manager_clear_indexes(struct manager *m);

void manager_schedule_jobs(struct manager *m);   /* jobs_schedule() at the next loop iteration */
/* Gives the heap's free pages back when heap_trim_due is set, at most
 * every HEAP_TRIM_INTERVAL_USEC: called when the probes are all done. */
void manager_trim_heap(struct manager *m);
void manager_detach_device(struct manager *m, struct device *d);
void manager_detach_image(struct manager *m, struct image *img);
void manager_detach_job(struct manager *m, struct job *j);
