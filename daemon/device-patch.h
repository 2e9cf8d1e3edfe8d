/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "engine.h"

struct device;
struct manager;

/* The fields a user sets on a device, changed together by one request
 * (PATCH /api/v1/devices/{id}); a field not set stays as it is. */
struct engine_device_patch {
        bool set_name;
        const char *name; /* NULL or "": none */
        bool set_role;
        const char *role; /* NULL or "": none */
        bool set_direct;
        struct device *direct; /* a mesh target's direct device; NULL: none */
};

/* All or nothing: every field is checked against the device as it is, and
 * only when none is refused is each set (and recorded and announced).  The
 * refusals are those of engine_device_rename(), engine_device_set_role()
 * and engine_mesh_target_set_direct().  Past the checks only the storage
 * can fail (-ENOMEM, a database error), and then the fields set before the
 * failing one stay set. */
int engine_device_patch(struct manager *m, struct device *d, const struct engine_device_patch *p,
                        struct engine_error *e);
