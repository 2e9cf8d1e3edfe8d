/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * /api/v1/rollouts: create, list, show, members, pause, resume, cancel,
 * activate, plan (doc/rollouts.md).  Thin: the body is the engine's
 * spec as it is, the answers the rollout's JSON form.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "engine-rollout.h"
#include "engine.h"
#include "rest-internal.h"
#include "rollout.h"

static int find_rollout(struct rest_request *req, struct rollout **ret) {
        struct engine_error e;

        if (engine_rollout_find(req->rest->manager, req->path_id, ret, &e) < 0) {
                int k = rest_reply_engine_error(req, &e);
                return k < 0 ? k : -ENOENT;
        }
        return 0;
}

static json_t *rollout_form(struct manager *m, const void *object) {
        return rollout_to_json(object);
}

static json_t *member_form(struct manager *m, const void *object) {
        return rollout_member_to_json(object);
}

int rest_rollouts_create(struct rest_request *req) {
        struct engine_error e;
        struct rollout *r;
        int k;

        k = engine_rollout_create(req->rest->manager, req->json, &r, &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);
        return rest_reply_json(req, 201, rollout_to_json(r));
}

int rest_rollouts_list(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        struct engine_rollout_query q = { .state = rest_query(req, "state") };
        _cleanup_free_ struct rollout **page = NULL;
        struct engine_error e;
        uint64_t total;
        size_t n;
        int k;

        k = rest_query_page(req, &q.limit, &q.offset);
        if (k < 0)
                return k;
        k = engine_rollout_query(m, &q, &page, &n, &total, &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);
        return rest_reply_page(req, "rollouts", rest_json_array(m, (void *const *) page, n, rollout_form), total,
                               q.limit, q.offset);
}

int rest_rollout_get(struct rest_request *req) {
        struct rollout *r;
        int k;

        k = find_rollout(req, &r);
        if (k < 0)
                return k;
        return rest_reply_json(req, 200, rollout_to_json(r));
}

int rest_rollout_members(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        struct engine_rollout_member_query q = {
                .state = rest_query(req, "state"),
                .wave = rest_query(req, "wave"),
        };
        _cleanup_free_ struct rollout_member **page = NULL;
        struct engine_error e;
        struct rollout *r;
        uint64_t total;
        size_t n;
        int k;

        k = find_rollout(req, &r);
        if (k < 0)
                return k;
        k = rest_query_page(req, &q.limit, &q.offset);
        if (k < 0)
                return k;
        k = engine_rollout_members_query(m, r, &q, &page, &n, &total, &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);
        return rest_reply_page(req, "members", rest_json_array(m, (void *const *) page, n, member_form), total, q.limit,
                               q.offset);
}

static int control(struct rest_request *req, int (*fn)(struct manager *m, struct rollout *r, struct engine_error *e)) {
        struct engine_error e;
        struct rollout *r;
        int k;

        k = find_rollout(req, &r);
        if (k < 0)
                return k;
        k = fn(req->rest->manager, r, &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);
        return rest_reply_json(req, 200, rollout_to_json(r));
}

int rest_rollout_pause(struct rest_request *req) {
        return control(req, engine_rollout_pause);
}

int rest_rollout_resume(struct rest_request *req) {
        return control(req, engine_rollout_resume);
}

int rest_rollout_cancel(struct rest_request *req) {
        return control(req, engine_rollout_cancel);
}

int rest_rollout_activate(struct rest_request *req) {
        return control(req, engine_rollout_activate);
}

int rest_rollout_replan(struct rest_request *req) {
        struct engine_error e;
        struct rollout *r;
        json_t *plan = NULL;
        int k;

        k = find_rollout(req, &r);
        if (k < 0)
                return k;
        k = engine_rollout_plan(req->rest->manager, NULL, r, &plan, &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);
        return rest_reply_json(req, 200, plan);
}

int rest_rollouts_plan(struct rest_request *req) {
        struct engine_error e;
        json_t *plan = NULL;
        int k;

        k = engine_rollout_plan(req->rest->manager, req->json, NULL, &plan, &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);
        return rest_reply_json(req, 200, plan);
}
