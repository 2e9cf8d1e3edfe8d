/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The request target, as pure functions of its bytes (no MHD, no
 * manager), so a fuzzer can call them directly (tests/fuzz/fuzz-rest-
 * route.c): which resource a path names and its {id}, and what the raw
 * target (path and query string, before MHD unescapes it) holds.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define REST_API_PREFIX "/api/v1"

enum rest_resource {
        REST_RESOURCE_NONE,
        REST_RESOURCE_HEALTH,
        REST_RESOURCE_METRICS,
        REST_RESOURCE_EVENTS,
        REST_RESOURCE_DEVICES,
        REST_RESOURCE_DEVICE,
        REST_RESOURCE_DEVICE_PROBE,
        REST_RESOURCE_DEVICE_HISTORY,
        REST_RESOURCE_DEVICE_LABELS,
        REST_RESOURCE_IMAGES,
        REST_RESOURCE_IMAGE,
        REST_RESOURCE_JOBS,
        REST_RESOURCE_JOB,
        REST_RESOURCE_JOB_CANCEL,
        REST_RESOURCE_JOB_ACTIVATE,
        REST_RESOURCE_ROLLOUTS,
        REST_RESOURCE_ROLLOUTS_PLAN,
        REST_RESOURCE_ROLLOUT,
        REST_RESOURCE_ROLLOUT_MEMBERS,
        REST_RESOURCE_ROLLOUT_PAUSE,
        REST_RESOURCE_ROLLOUT_RESUME,
        REST_RESOURCE_ROLLOUT_CANCEL,
        REST_RESOURCE_ROLLOUT_ACTIVATE,
        REST_RESOURCE_ROLLOUT_PLAN,
        REST_RESOURCE_DISTRIBUTIONS,
        REST_RESOURCE_DISTRIBUTION,
        REST_RESOURCE_DISTRIBUTION_CANCEL,
        REST_RESOURCE_DISTRIBUTION_SUSPEND,
        REST_RESOURCE_DISTRIBUTION_RESUME,
        REST_RESOURCE_DISTRIBUTION_APPLY,
        _REST_RESOURCE_MAX,
};

/* Whether a device's whole connection string is tail: then
 * /devices/serial:/dev/x/probe is that device, not a probe of another. */
typedef bool (*rest_device_known_fn)(const char *tail, void *userdata);

/* Splits an (unescaped) path into a resource and its {id} (*ret_id,
 * malloc'd, NULL when the resource has none).  REST_RESOURCE_NONE: no
 * such resource (or out of memory). */
enum rest_resource rest_route_path(const char *path, rest_device_known_fn device_known, void *userdata, char **ret_id);

/* What the raw request target holds that matters before routing. */
struct rest_target {
        bool bad_path;     /* a control character in the path, raw or %-escaped */
        char *bad_query;   /* the first query parameter holding one: its name, at most
                            * 64 bytes, control and non-ASCII bytes as '?'; malloc'd */
        unsigned n_params; /* query parameters ('&'-separated pieces) */
};

/* Fills *ret (free ret->bad_query); -ENOMEM. */
int rest_target_scan(const char *target, struct rest_target *ret);
