/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Feedback to the server, POST .../deploymentBase/{id}/feedback and
 * .../cancelAction/{id}/feedback.  Each is written to SQLite before it
 * is sent and deleted once the server took it (2xx), so feedback
 * survives a restart and an unreachable server.  They go one at a time,
 * oldest first: a closing feedback never overtakes the progress before
 * it.  A network error or a 5xx (408, 429 too) keeps the queue and
 * retries after 1 s, doubling to 60 s, or as soon as a poll gets through;
 * any other 4xx (the action is gone, the body refused) drops that one
 * feedback with a warning -- retrying it could only block the rest.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conf.h"
#include "db-hawkbit.h"
#include "hawkbit-internal.h"
#include "log.h"
#include "manager.h"
#include "util.h"

static const char *const execution_names[] = {
        [HAWKBIT_EXEC_PROCEEDING] = "proceeding", [HAWKBIT_EXEC_SCHEDULED] = "scheduled",
        [HAWKBIT_EXEC_RESUMED] = "resumed",       [HAWKBIT_EXEC_CLOSED] = "closed",
        [HAWKBIT_EXEC_CANCELED] = "canceled",     [HAWKBIT_EXEC_REJECTED] = "rejected",
};
static const char *const finished_names[] = {
        [HAWKBIT_FINISHED_NONE] = "none",
        [HAWKBIT_FINISHED_SUCCESS] = "success",
        [HAWKBIT_FINISHED_FAILURE] = "failure",
};

static void feedback_entry_done(struct hawkbit_feedback *f) {
        free(f->controller_id);
        free(f->path);
        free(f->body);
}

static int queue_append(struct hawkbit *hb, int64_t id, uint64_t device_id, const char *controller_id, const char *path,
                        const char *body) {
        if (hb->n_feedback == hb->feedback_alloc) {
                size_t want = MAX(hb->feedback_alloc * 2, 16u);
                struct hawkbit_feedback *grown = realloc(hb->feedback, want * sizeof(*grown));
                if (!grown)
                        return -ENOMEM;
                hb->feedback = grown;
                hb->feedback_alloc = want;
        }
        struct hawkbit_feedback *f = &hb->feedback[hb->n_feedback];
        *f = (struct hawkbit_feedback) { .id = id, .device_id = device_id };
        f->controller_id = strdup(controller_id);
        f->path = strdup(path);
        f->body = strdup(body);
        if (!f->controller_id || !f->path || !f->body) {
                feedback_entry_done(f);
                return -ENOMEM;
        }
        hb->n_feedback++;
        struct hawkbit_target *t = hawkbit_target_find(hb, device_id);
        if (t)
                t->feedback_queued++;
        return 0;
}

static void queue_pop(struct hawkbit *hb) {
        struct hawkbit_target *t = hawkbit_target_find(hb, hb->feedback[0].device_id);
        if (t && t->feedback_queued > 0)
                t->feedback_queued--;
        feedback_entry_done(&hb->feedback[0]);
        memmove(hb->feedback, hb->feedback + 1, (hb->n_feedback - 1) * sizeof(*hb->feedback));
        hb->n_feedback--;
}

int hawkbit_feedback_queue(struct hawkbit_target *t, bool cancel, uint64_t id, enum hawkbit_execution exec,
                           enum hawkbit_finished finished, unsigned cnt, unsigned of, const char *const *details) {
        struct hawkbit *hb = t->hb;
        char idbuf[24], path[96];
        int64_t row = 0;
        int r;

        if (hb->n_feedback >= HAWKBIT_FEEDBACK_QUEUE_MAX) {
                hb->stats.feedback_dropped++;
                return log_warning_errno(-ENOBUFS, "hawkBit: %s: feedback queue full (%u), dropping %s",
                                         t->controller_id, HAWKBIT_FEEDBACK_QUEUE_MAX, execution_names[exec]);
        }
        snprintf(idbuf, sizeof(idbuf), "%" PRIu64, id);
        snprintf(path, sizeof(path), "%s/%" PRIu64 "/feedback", cancel ? "cancelAction" : "deploymentBase", id);
        json_t *root = json_object(), *status = json_object(), *result = json_object(), *list = json_array();
        if (!root || !status || !result || !list) {
                json_decref(root);
                json_decref(status);
                json_decref(result);
                json_decref(list);
                return -ENOMEM;
        }
        json_object_set_new(root, "id", json_string(idbuf));
        json_object_set_new(status, "execution", json_string(execution_names[exec]));
        json_object_set_new(result, "finished", json_string(finished_names[finished]));
        if (of > 0) {
                json_t *progress = json_object();
                json_object_set_new(progress, "cnt", json_integer(cnt));
                json_object_set_new(progress, "of", json_integer(of));
                json_object_set_new(result, "progress", progress);
        }
        json_object_set_new(status, "result", result);
        for (size_t i = 0; details && details[i]; i++) {
                char line[HAWKBIT_FEEDBACK_DETAILS_MAX];
                snprintf(line, sizeof(line), "%s", details[i]);
                json_array_append_new(list, json_string(line));
        }
        json_object_set_new(status, "details", list);
        json_object_set_new(root, "status", status);
        _cleanup_free_ char *body = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        if (!body)
                return -ENOMEM;

        r = db_hawkbit_feedback_insert(hb->manager->db, t->device_id, t->controller_id, path, body, &row);
        if (r < 0)
                /* Sent anyway, from memory: only a restart would lose it. */
                log_warning_errno(r, "hawkBit: %s: cannot store feedback: %m", t->controller_id);
        r = queue_append(hb, row, t->device_id, t->controller_id, path, body);
        if (r < 0)
                return r;
        snprintf(t->last_feedback, sizeof(t->last_feedback), "%s/%s", execution_names[exec], finished_names[finished]);
        log_debug("hawkBit: %s: feedback %s queued: %s", t->controller_id, path, body);
        hawkbit_feedback_kick(hb, false);
        return 0;
}

static int on_feedback_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct hawkbit *hb = userdata;
        hb->feedback_blocked = false;
        hawkbit_feedback_kick(hb, false);
        return 0;
}

static void on_sent(struct hawkbit_request *req, int error, long status, const char *body, size_t len, void *userdata) {
        struct hawkbit *hb = userdata;
        struct hawkbit_feedback *f = &hb->feedback[0];
        bool retry = error < 0 || status >= 500 || status == 408 || status == 429 || status == 401 || status == 403 ||
                     status == 0;

        hb->feedback_req = NULL;
        if (!retry) {
                if (status >= 200 && status < 300)
                        hb->stats.feedback_sent++;
                else {
                        hb->stats.feedback_dropped++;
                        log_warning("hawkBit: %s: the server refused feedback %s (HTTP %ld), dropping it",
                                    f->controller_id, f->path, status);
                }
                if (f->id > 0) {
                        int r = db_hawkbit_feedback_delete(hb->manager->db, f->id);
                        if (r < 0)
                                log_warning_errno(r, "hawkBit: cannot delete sent feedback: %m");
                }
                queue_pop(hb);
                hb->feedback_failures = 0;
                hawkbit_feedback_kick(hb, false);
        } else {
                uint64_t delay = HAWKBIT_RETRY_MIN_USEC;
                hb->stats.feedback_errors++;
                if (hb->feedback_failures++ == 0)
                        log_info("hawkBit: feedback not delivered (%s); %zu queued, retrying",
                                 error < 0 ? strerror(-error) : "HTTP error", hb->n_feedback);
                for (unsigned i = 1; i < hb->feedback_failures && delay < HAWKBIT_RETRY_MAX_USEC; i++)
                        delay *= 2;
                delay = MIN(delay, HAWKBIT_RETRY_MAX_USEC);
                hb->feedback_blocked = true;
                (void) sd_event_source_set_time(hb->feedback_timer, hawkbit_now(hb) + delay);
                (void) sd_event_source_set_enabled(hb->feedback_timer, SD_EVENT_ONESHOT);
        }
        hawkbit_poll_kick(hb);
}

void hawkbit_feedback_kick(struct hawkbit *hb, bool server_reachable) {
        _cleanup_free_ char *url = NULL;

        if (server_reachable && hb->feedback_blocked) {
                hb->feedback_blocked = false;
                (void) sd_event_source_set_enabled(hb->feedback_timer, SD_EVENT_OFF);
        }
        if (hb->feedback_req || hb->feedback_blocked || hb->n_feedback == 0)
                return;
        struct hawkbit_feedback *f = &hb->feedback[0];
        if (asprintf(&url, "%s%s/%s", hb->base_url, f->controller_id, f->path) < 0)
                return;
        struct hawkbit_http_call call = {
                .method = "POST",
                .url = url,
                .json = f->body,
                .auth_header = hb->auth_header,
                .sink_fd = -1,
                .timeout_usec = hb->manager->config->hawkbit_timeout_usec,
        };
        /* Feedback does not wait for a poll slot: it is what the server
         * waits for, and one at a time. */
        if (hawkbit_http_start(hb->http, &call, on_sent, hb, &hb->feedback_req) < 0) {
                hb->feedback_blocked = true;
                (void) sd_event_source_set_time(hb->feedback_timer, hawkbit_now(hb) + HAWKBIT_RETRY_MAX_USEC);
                (void) sd_event_source_set_enabled(hb->feedback_timer, SD_EVENT_ONESHOT);
        }
}

static int load_one(int64_t id, uint64_t device_id, const char *controller_id, const char *path, const char *body,
                    void *userdata) {
        return queue_append(userdata, id, device_id, controller_id, path, body);
}

int hawkbit_feedback_load(struct hawkbit *hb) {
        int r = sd_event_add_time(hb->manager->event, &hb->feedback_timer, CLOCK_MONOTONIC, UINT64_MAX, 0,
                                  on_feedback_timer, hb);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(hb->feedback_timer, SD_EVENT_OFF);
        r = db_hawkbit_feedback_load(hb->manager->db, load_one, hb);
        if (r < 0)
                return log_error_errno(r, "hawkBit: cannot load queued feedback: %m");
        if (hb->n_feedback > 0)
                log_info("hawkBit: %zu feedback messages queued from before", hb->n_feedback);
        return 0;
}

void hawkbit_feedback_free_all(struct hawkbit *hb) {
        if (hb->feedback_req) {
                hawkbit_http_cancel(hb->http, hb->feedback_req);
                hb->feedback_req = NULL;
        }
        hb->feedback_timer = sd_event_source_disable_unref(hb->feedback_timer);
        for (size_t i = 0; i < hb->n_feedback; i++)
                feedback_entry_done(&hb->feedback[i]);
        free(hb->feedback);
        hb->feedback = NULL;
        hb->n_feedback = hb->feedback_alloc = 0;
}
