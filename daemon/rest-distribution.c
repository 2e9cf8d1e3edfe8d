/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * /api/v1/distributions: mesh distributions (distribution.h), and their
 * JSON form as REST and the event stream show it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distribution.h"
#include "engine.h"
#include "rest-internal.h"
#include "smpgw/mesh-dfu.h"

static json_t *target_json(const struct distribution_target *t) {
        char addr[8];

        snprintf(addr, sizeof(addr), "0x%04x", t->addr);
        return json_pack("{s:I, s:s, s:s, s:I, s:o, s:o, s:I, s:o}",
                         "device", (json_int_t) t->device_id,
                         "addr", addr,
                         "state", distribution_target_state_to_string(t->state) ?: "failed",
                         "attempts", (json_int_t) t->attempts,
                         "phase", rest_json_string_or_null(smp_mesh_dfu_phase_to_string(t->phase)),
                         "status", rest_json_string_or_null(smp_mesh_dfu_status_to_string(t->status)),
                         "progress", (json_int_t) t->progress,
                         "reason", rest_json_string_or_null(t->reason));
}

json_t *rest_json_distribution(struct manager *m, const struct distribution *d) {
        json_t *targets = json_array();
        size_t updated = 0, failed = 0;

        (void) m;
        if (!targets)
                return NULL;
        for (size_t i = 0; i < d->n_targets; i++) {
                const struct distribution_target *t = &d->targets[i];
                json_t *o = target_json(t);
                if (!o) {
                        json_decref(targets);
                        return NULL;
                }
                json_array_append_new(targets, o);
                updated += t->state == DISTRIBUTION_TARGET_UPDATED;
                failed += t->state == DISTRIBUTION_TARGET_FAILED;
        }
        return json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o}",
                         "id", (json_int_t) d->id,
                         "distributor", (json_int_t) d->distributor_id,
                         "image", d->image_id,
                         "state", distribution_state_to_string(d->state) ?: "failed",
                         "step", distribution_step_to_string(d->step) ?: "done",
                         "apply", distribution_apply_to_string(d->policy.apply) ?: "now",
                         "max_attempts", (json_int_t) d->policy.max_attempts,
                         "rounds", (json_int_t) d->rounds,
                         "targets_total", (json_int_t) d->n_targets,
                         "targets_updated", (json_int_t) updated,
                         "targets_failed", (json_int_t) failed,
                         "rollout", d->policy.rollout_id ? json_integer((json_int_t) d->policy.rollout_id)
                                                         : json_null(),
                         "error", rest_json_string_or_null(d->error),
                         "created", rest_json_time(d->created_usec),
                         "finished", rest_json_time(d->finished_usec),
                         "updated", rest_json_time(d->updated_usec),
                         "targets", targets);
}
