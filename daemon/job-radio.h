/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the job layer learns about the radio, kept in the manager:
 *
 *  - each BLE adapter's link limit (job-slots.c): [jobs]
 *    max_running_ble_adapter at first; when the controller refuses a
 *    connection for lack of resources (the bluez plugin's -EUSERS) the
 *    adapter's limit becomes the links it held then (at least 1), and it
 *    is raised by one again after JOB_ADAPTER_RAISE_SUCCESSES connects
 *    without a refusal or JOB_ADAPTER_RAISE_AFTER_USEC since the last
 *    change, never above the configured value;
 *
 *  - each board's swap time (job-swap.c): every verify that found the
 *    device back records (board, image size, reset → decided answer); the
 *    estimate for a board and an image size is the 80th percentile of the
 *    board's last JOB_SWAP_SAMPLES samples, each scaled by size (or [jobs]
 *    swap_estimate when there is none), and the reboot timeout is
 *    max(3 × estimate, 30 s) capped by [jobs] swap_timeout.  Samples are
 *    read back from the job history (jobs.board, jobs.swap_usec) at start.
 *
 *  - whether BLE devices that reset are seen advertising again
 *    (job-advert.c): while a verify would otherwise poll a rebooting BLE
 *    device, the ble transport's discovery watches for advertisements
 *    (report=each), and a device seen is verified at once instead.
 *
 * The rollout planner (rollout-plan.h) takes both as its inputs:
 *
 *   member.swap_s = job_swap_estimate_usec(m, board, image_size, &learned) / 1e6
 *                   (board from job_device_board(); 0 when !learned: the
 *                   plan's swap_default_s, [jobs] swap_estimate, applies)
 *   input.adapters = job_adapter_limits() (name, limit) of the adapters
 *                   learned lower; input.max_running_ble_adapter =
 *                   [jobs] max_running_ble_adapter
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct manager;
struct device;
struct job;
struct smp_discovery;

#define JOB_ADAPTERS_MAX 16u
#define JOB_ADAPTER_NAME_SIZE 32u
#define JOB_ADAPTER_RAISE_SUCCESSES 20u
#define JOB_ADAPTER_RAISE_AFTER_USEC (10u * 60u * 1000000ull)

#define JOB_SWAP_SAMPLES 20u
#define JOB_SWAP_BOARDS_MAX 256u
#define JOB_SWAP_TIMEOUT_MIN_USEC (30u * 1000000ull)

struct job_adapter_limit {
        char name[JOB_ADAPTER_NAME_SIZE];
        unsigned limit;        /* learned, 1..[jobs] max_running_ble_adapter */
        unsigned successes;    /* connects since the last change */
        uint64_t changed_usec; /* CLOCK_MONOTONIC */
};

struct job_swap_sample {
        uint64_t image_size;
        uint64_t swap_usec;
};

struct job_swap_board {
        char name[64];
        struct job_swap_sample samples[JOB_SWAP_SAMPLES]; /* a ring */
        unsigned n, next;
};

struct job_radio {
        struct job_adapter_limit adapters[JOB_ADAPTERS_MAX];
        size_t n_adapters;
        struct job_swap_board *boards; /* owned */
        size_t n_boards;
        /* job-advert.c: the ble discovery watching for advertisements
         * (owned; NULL: not running), and when it last failed to run
         * (CLOCK_MONOTONIC, 0: never). */
        struct smp_discovery *advert_watch;
        uint64_t advert_failed_usec;
};

void job_radio_done(struct job_radio *r);

/* ---- job-slots.c ---- */

/* The adapter's link limit now ("" or NULL: no adapter: UINT_MAX). */
unsigned job_adapter_limit(struct manager *m, const char *adapter);
/* The controller refused a link while the adapter held links_held
 * others: the limit becomes that (at least 1). */
void job_adapter_refused(struct manager *m, const char *adapter, unsigned links_held);
/* A link to a device of the adapter came up: counts towards raising. */
void job_adapter_connected(struct manager *m, const char *adapter);
/* The adapters whose limit was learned (the table, *ret_n of them; each
 * entry's limit as it is now). */
const struct job_adapter_limit *job_adapter_limits(struct manager *m, size_t *ret_n);

/* ---- job-swap.c ---- */

/* The board swap times are learned for: the OS info's hardware platform
 * (uname -i, the 7th field of "a"), else the transport. */
void job_device_board(const struct device *d, char *buf, size_t size);
void job_swap_record(struct manager *m, const char *board, uint64_t image_size, uint64_t swap_usec);
/* The expected reset → answer time (µs) for an image of image_size on
 * board; *ret_learned says whether samples stood behind it (may be NULL). */
uint64_t job_swap_estimate_usec(struct manager *m, const char *board, uint64_t image_size, bool *ret_learned);
/* max(3 × estimate, 30 s), capped by [jobs] swap_timeout. */
uint64_t job_swap_timeout_usec(struct manager *m, uint64_t estimate_usec);

/* ---- job-advert.c ---- */

/* Whether j's device shows that it is back by advertising (BLE): a
 * connect to one that does not advertise holds its adapter's one LE
 * connect in progress until the connect times out. */
bool job_link_advertises(const struct job *j);
/* Whether an advertisement of j's device will be seen: the watch runs
 * (it is started here when it does not, and did not fail lately). */
bool job_advert_watching(struct manager *m);
/* Runs the watch while a job needs it (job_advert_needed()), stops it
 * when none does. */
void job_advert_update(struct manager *m);
void job_advert_stop(struct manager *m);
