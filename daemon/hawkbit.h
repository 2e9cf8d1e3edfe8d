/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hawkBit northbound: smpgwd as an Eclipse hawkBit DDI gateway
 * client (doc/hawkbit.md).  One gateway token, one controllerId per
 * exposed device; polls, deployments, cancels and feedback go over
 * libcurl's multi interface on the manager's sd-event loop.  The module
 * talks to the rest of the daemon through the engine (engine.h) and the
 * manager's events only.
 *
 *   hawkbit.c           the module: targets (exposed devices), events, status
 *   hawkbit-target.c    which devices are exposed, and their controllerId
 *   hawkbit-http.c      libcurl multi on sd-event
 *   hawkbit-poll.c      the poll scheduler: spread, server sleep, backoff, configData
 *   hawkbit-deploy.c    deploymentBase, cancelAction, artifact downloads, jobs
 *   hawkbit-feedback.c  the feedback queue (SQLite), sent in order when the server answers
 *   db-hawkbit.c        their rows
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct manager;
struct hawkbit;

struct hawkbit_stats {
        uint64_t polls, poll_errors, auth_errors;
        uint64_t actions, actions_succeeded, actions_failed, cancels;
        uint64_t downloads, download_errors, download_bytes;
        uint64_t feedback_sent, feedback_errors, feedback_dropped;
        uint64_t config_data_sent;
};

/* What the front ends show of one device. */
struct hawkbit_device_status {
        bool managed;              /* exposed to the server */
        const char *controller_id; /* NULL when not managed */
        uint64_t action_id;        /* 0: none so far */
        const char *last_feedback; /* "closed/success", ...; NULL: none */
        unsigned feedback_queued;  /* feedback of this device not yet accepted */
};

/* Starts the client when [hawkbit] enabled: reads the gateway token,
 * loads queued feedback and actions, exposes devices.  *ret stays NULL
 * when it is off. */
int hawkbit_start(struct manager *m, struct hawkbit **ret);
struct hawkbit *hawkbit_free(struct hawkbit *hb);

/* NULL hb: the status of an unmanaged device. */
void hawkbit_device_status(struct hawkbit *hb, uint64_t device_id, struct hawkbit_device_status *ret);
const struct hawkbit_stats *hawkbit_stats(const struct hawkbit *hb);
unsigned hawkbit_targets_count(const struct hawkbit *hb);
unsigned hawkbit_feedback_queued(const struct hawkbit *hb);
