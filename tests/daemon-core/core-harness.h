/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon core without its front ends: a manager on a loop of the
 * test's own, with a real database and image store in a temporary state
 * directory, no REST, no D-Bus, no discovery, and simulated devices in
 * process (tests/lib/sim-transport.h: smpsim's device model) as its only
 * transports.  Two fleets, registered as "udp" and "serial" so that the
 * configuration's per-transport limits apply to them; the real plugins
 * never load (plugin_dir points at an empty directory).  The fleets
 * outlive managers: a test can stop a daemon and start the next on the
 * same database and the same devices.  Tests call the engine as a front
 * end would and watch the manager's events as an observer.
 *
 *   struct core *c = core_new();
 *   c->config->jobs_max_running = 2;      (any configuration, before start)
 *   core_start(c);
 *   ... engine_push(c->m, ...); core_run_until(c, pred, data, timeout) ...
 *   core_restart(c);                      (stop, start on the same files)
 *   core_free(c);
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "conf.h"
#include "engine.h"
#include "manager.h"
#include "sim-transport.h"

/* Devices per fleet; tests use 1..CORE_DEVICES - 1. */
#define CORE_DEVICES 16u

/* One event as the harness's observer saw it, with what it read of the
 * object at delivery. */
struct core_event {
        enum manager_event_type type;
        uint64_t id;                   /* the device's or job's id; 0 for images */
        char what[80];                 /* a device's conn, a job's state, an image's id */
        enum job_state job_state;
        unsigned attempts;
        uint64_t next_attempt_usec, updated_usec;
        uint64_t time_usec;            /* CLOCK_MONOTONIC at delivery */
};

enum core_fleet {
        CORE_UDP,
        CORE_SERIAL,
        _CORE_FLEET_MAX,
};

struct core {
        sd_event *event;
        struct sim_fleet *fleets[_CORE_FLEET_MAX];
        char *dir;                     /* the state directory, kept by core_restart() */
        struct config *config;         /* for the next core_start(): the manager takes it */
        struct manager *m;             /* NULL while stopped */

        struct core_event *events;
        size_t n_events;
        /* Observer calls from anywhere but the manager's delivery of its
         * queue (a callback of a transport, of the engine's caller):
         * must stay 0. */
        unsigned events_outside_delivery;
        /* The most jobs holding a slot at once, all and per transport,
         * sampled at every event and loop iteration (a job whose reset
         * is on its way gave its slot back already). */
        unsigned max_running, max_running_udp, max_running_serial;
};

struct core *core_new(void);
/* Starts a manager with c->config (which it takes); a fresh default
 * configuration is ready for the next start. */
void core_start(struct core *c);
/* What SIGTERM does, then frees the manager (the files stay). */
void core_stop(struct core *c);
void core_restart(struct core *c);
void core_free(struct core *c);

/* Runs the loop until pred() holds (true) or timeout passes (false). */
typedef bool (*core_pred_fn)(struct core *c, void *userdata);
bool core_run_until(struct core *c, core_pred_fn pred, void *userdata, uint64_t timeout_usec);
/* Runs the loop for this long. */
void core_run_for(struct core *c, uint64_t usec);

/* Adds device n of a fleet and waits for its probe to end. */
struct device *core_add_device(struct core *c, enum core_fleet fleet, unsigned n);
/* The fleet's model of device n, and its transport's faults. */
struct sim_device *core_sim(struct core *c, enum core_fleet fleet, unsigned n);
struct sim_fleet_link_faults *core_link_faults(struct core *c, enum core_fleet fleet, unsigned n);
const char *core_conn(struct core *c, enum core_fleet fleet, unsigned n);
/* Stores an unsigned MCUboot image of size body bytes. */
struct image *core_add_image(struct core *c, size_t size, uint8_t seed);
/* Pushes img to the devices (upload-only unless mode says otherwise);
 * aborts when the engine refuses.  The array is the caller's (free()). */
struct job **core_push(struct core *c, struct image *img, struct device **devices, size_t n, const char *mode,
                       unsigned attempts);
/* The same with the push's options (mode, stage_only, rollout_id,
 * priority, ...); image and devices are filled in. */
struct job **core_push_with(struct core *c, struct image *img, struct device **devices, size_t n,
                            const struct engine_push *options);
/* Waits for a job to finish (by id: a restart makes new objects). */
struct job *core_wait_finished(struct core *c, uint64_t job_id, uint64_t timeout_usec);
/* Events of one type (and one object id, 0: any) seen so far. */
size_t core_count_events(struct core *c, enum manager_event_type type, uint64_t id);
uint64_t core_now_usec(void);
