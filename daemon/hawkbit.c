/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hawkBit module: its start and end, the targets (one per exposed
 * device, kept in step with the inventory through the manager's
 * events), the action rows, and what the front ends read.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "conf.h"
#include "db-hawkbit.h"
#include "hawkbit-internal.h"
#include "log.h"
#include "manager.h"
#include "util.h"

static const char *const action_state_names[_HAWKBIT_ACTION_STATE_MAX] = {
        [HAWKBIT_ACTION_DOWNLOADING] = "downloading",
        [HAWKBIT_ACTION_WAITING] = "waiting",
        [HAWKBIT_ACTION_RUNNING] = "running",
        [HAWKBIT_ACTION_FINISHED] = "finished",
};
static const char *const type_names[] = {
        [HAWKBIT_SKIP] = "skip",
        [HAWKBIT_ATTEMPT] = "attempt",
        [HAWKBIT_FORCED] = "forced",
};

const char *hawkbit_action_state_to_string(enum hawkbit_action_state s) {
        return (unsigned) s < ELEMENTSOF(action_state_names) ? action_state_names[s] : "unknown";
}

int hawkbit_action_state_from_string(const char *s) {
        for (unsigned i = 0; i < ELEMENTSOF(action_state_names); i++)
                if (streq(s, action_state_names[i]))
                        return (int) i;
        return -EINVAL;
}

const char *hawkbit_type_to_string(enum hawkbit_type t) {
        return (unsigned) t < ELEMENTSOF(type_names) ? type_names[t] : "unknown";
}

int hawkbit_type_from_string(const char *s) {
        for (unsigned i = 0; i < ELEMENTSOF(type_names); i++)
                if (streq(s, type_names[i]))
                        return (int) i;
        return -EINVAL;
}

uint64_t hawkbit_now(struct hawkbit *hb) {
        uint64_t now = 0;
        (void) sd_event_now(hb->manager->event, CLOCK_MONOTONIC, &now);
        return now;
}

uint64_t hawkbit_random(struct hawkbit *hb) {
        /* xorshift64: jitter, not secrets. */
        uint64_t x = hb->rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return hb->rng = x;
}

const char *hawkbit_auth_for(const struct hawkbit *hb, const char *url) {
        size_t n = strlen(hb->origin);
        /* The origin exactly, then the path: "http://a:1" must not match
         * "http://a:10/" nor "http://a:1.evil/". */
        if (strncmp(url, hb->origin, n) == 0 && (url[n] == '/' || url[n] == 0))
                return hb->auth_header;
        return NULL;
}

struct hawkbit_target *hawkbit_target_find(struct hawkbit *hb, uint64_t device_id) {
        struct hawkbit_target *t = NULL;
        if (hb)
                HASH_FIND(hh, hb->targets, &device_id, sizeof(device_id), t);
        return t;
}

void hawkbit_action_free(struct hawkbit_action *a) {
        if (!a)
                return;
        free(a->url);
        free(a->filename);
        free(a);
}

void hawkbit_action_save(struct hawkbit_target *t) {
        struct hawkbit_action *a = t->action;
        int r;

        if (!a)
                r = db_hawkbit_action_delete(t->hb->manager->db, t->device_id);
        else {
                struct db_hawkbit_action row = {
                        .device_id = t->device_id,
                        .action_id = a->id,
                        .state = hawkbit_action_state_to_string(a->state),
                        .sha256 = a->sha256,
                        .url = a->url ?: "",
                        .image_id = a->image_id,
                        .update_type = hawkbit_type_to_string(a->update),
                        .last_feedback = t->last_feedback,
                        .size = a->size,
                        .job_id = a->job_id,
                        .window_open = a->window_open,
                        .scheduled_sent = a->scheduled_sent,
                };
                r = db_hawkbit_action_save(t->hb->manager->db, &row);
        }
        if (r < 0)
                log_warning_errno(r, "hawkBit: %s: cannot store the action: %m", t->controller_id);
}

static void target_free(struct hawkbit_target *t) {
        if (!t)
                return;
        if (t->poll)
                hawkbit_http_cancel(t->hb->http, t->poll);
        if (t->config_put)
                hawkbit_http_cancel(t->hb->http, t->config_put);
        if (t->cancel_get)
                hawkbit_http_cancel(t->hb->http, t->cancel_get);
        if (t->base_get)
                hawkbit_http_cancel(t->hb->http, t->base_get);
        hawkbit_action_free(t->action);
        free(t->controller_id);
        free(t);
}

static void target_remove(struct hawkbit *hb, struct hawkbit_target *t) {
        HASH_DEL(hb->targets, t);
        hb->n_targets--;
        target_free(t);
}

static struct hawkbit_target *target_add(struct hawkbit *hb, struct device *d) {
        struct hawkbit_target *t, *other, *tmp;
        _cleanup_free_ char *cid = NULL;

        if (hawkbit_controller_id(hb->manager, d, &cid) < 0)
                return NULL;
        /* Two devices that map to one controllerId would be one target
         * to the server: the second is not exposed. */
        HASH_ITER (hh, hb->targets, other, tmp)
                if (streq(other->controller_id, cid)) {
                        log_warning("hawkBit: device %" PRIu64 " maps to controllerId %s like device %" PRIu64
                                    "; not exposed",
                                    d->id, cid, other->device_id);
                        return NULL;
                }
        t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->hb = hb;
        t->device_id = d->id;
        t->controller_id = TAKE_PTR(cid);
        bool hash_oom = false;
        HASH_ADD(hh, hb->targets, device_id, sizeof(t->device_id), t);
        if (hash_oom) {
                target_free(t);
                return NULL;
        }
        hb->n_targets++;
        return t;
}

static void on_event(struct manager *m, const struct manager_event *ev, void *userdata) {
        struct hawkbit *hb = userdata;
        struct hawkbit_target *t;

        switch (ev->type) {
        case MANAGER_EVENT_DEVICE_ADDED:
        case MANAGER_EVENT_DEVICE_CHANGED:
                t = hawkbit_target_find(hb, ev->device->id);
                if (!t && hawkbit_device_exposed(m, ev->device)) {
                        t = target_add(hb, ev->device);
                        if (t) {
                                hawkbit_poll_schedule_first(hb, t,
                                                            hawkbit_random(hb) % m->config->hawkbit_start_spread_usec);
                                hawkbit_poll_kick(hb);
                        }
                } else if (t && !hawkbit_device_exposed(m, ev->device) && !t->action)
                        target_remove(hb, t);
                break;
        case MANAGER_EVENT_DEVICE_REMOVED:
                t = hawkbit_target_find(hb, ev->device->id);
                if (t)
                        target_remove(hb, t);
                break;
        case MANAGER_EVENT_JOB_STATE:
                hawkbit_deploy_job_event(hb, ev->job);
                break;
        default:
                break;
        }
}

static int load_action(const struct db_hawkbit_action *row, void *userdata) {
        struct hawkbit *hb = userdata;
        struct hawkbit_target *t = hawkbit_target_find(hb, row->device_id);
        struct hawkbit_action *a;
        int s = hawkbit_action_state_from_string(row->state), u = hawkbit_type_from_string(row->update_type);

        if (!t || s < 0 || u < 0)
                return 0; /* a device no longer exposed keeps its row for later */
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->id = row->action_id;
        a->state = (enum hawkbit_action_state) s;
        a->update = (enum hawkbit_type) u;
        snprintf(a->sha256, sizeof(a->sha256), "%s", row->sha256);
        snprintf(a->image_id, sizeof(a->image_id), "%s", row->image_id);
        a->url = strdup(row->url);
        a->size = row->size;
        a->job_id = row->job_id;
        a->window_open = row->window_open;
        a->scheduled_sent = row->scheduled_sent;
        snprintf(t->last_feedback, sizeof(t->last_feedback), "%s", row->last_feedback);
        if (!a->url) {
                hawkbit_action_free(a);
                return -ENOMEM;
        }
        t->action = a;
        return 0;
}

/* <server>/<tenant>/controller/v1/ and the server's origin. */
static int make_urls(struct hawkbit *hb, const struct config *c) {
        size_t len = strlen(c->hawkbit_server);
        while (len > 0 && c->hawkbit_server[len - 1] == '/')
                len--;
        if (asprintf(&hb->base_url, "%.*s/%s/controller/v1/", (int) len, c->hawkbit_server, c->hawkbit_tenant) < 0)
                return -ENOMEM;
        const char *host = strstr(c->hawkbit_server, "://") + 3;
        size_t origin_len = (size_t) (host - c->hawkbit_server) + strcspn(host, "/?#");
        hb->origin = strndup(c->hawkbit_server, origin_len);
        return hb->origin ? 0 : -ENOMEM;
}

int hawkbit_start(struct manager *m, struct hawkbit **ret) {
        const struct config *c = m->config;
        struct hawkbit *hb;
        int r;

        *ret = NULL;
        if (!c->hawkbit_enabled)
                return 0;
        hb = calloc(1, sizeof(*hb));
        if (!hb)
                return -ENOMEM;
        hb->manager = m;
        if (getrandom(&hb->rng, sizeof(hb->rng), GRND_NONBLOCK) != sizeof(hb->rng) || hb->rng == 0)
                hb->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t) getpid();
        r = hawkbit_read_token(c->hawkbit_token_file, &hb->auth_header);
        if (r >= 0)
                r = make_urls(hb, c);
        if (r >= 0 && asprintf(&hb->dl_dir, "%s/hawkbit", c->state_dir) < 0)
                r = -ENOMEM;
        if (r >= 0 && mkdir(hb->dl_dir, 0700) < 0 && errno != EEXIST)
                r = log_error_errno(-errno, "hawkBit: cannot create %s: %m", hb->dl_dir);
        if (r >= 0)
                r = hawkbit_http_new(m->event, &hb->http);
        if (r < 0) {
                hawkbit_free(hb);
                return r;
        }

        /* The devices known now: first polls evenly over start_spread. */
        unsigned n = 0;
        for (size_t i = 0; i < m->n_devices; i++)
                if (hawkbit_device_exposed(m, m->devices[i]) && target_add(hb, m->devices[i]))
                        n++;
        struct hawkbit_target *t, *tmp;
        unsigned k = 0;
        HASH_ITER (hh, hb->targets, t, tmp)
                hawkbit_poll_schedule_first(hb, t, c->hawkbit_start_spread_usec * k++ / MAX(n, 1u));

        r = db_hawkbit_actions_load(m->db, load_action, hb);
        if (r >= 0)
                r = hawkbit_feedback_load(hb);
        if (r >= 0)
                r = manager_add_observer(m, on_event, hb);
        if (r >= 0)
                r = hawkbit_poll_start(hb);
        if (r < 0) {
                log_error_errno(r, "hawkBit: cannot start: %m");
                hawkbit_free(hb);
                return r;
        }
        hawkbit_deploy_resume(hb);
        hawkbit_feedback_kick(hb, false);
        log_info("hawkBit: %u devices exposed to %s (tenant %s)", hb->n_targets, hb->origin, c->hawkbit_tenant);
        *ret = hb;
        return 0;
}

struct hawkbit *hawkbit_free(struct hawkbit *hb) {
        struct hawkbit_target *t, *tmp;

        if (!hb)
                return NULL;
        manager_remove_observer(hb->manager, on_event, hb);
        hb->poll_timer = sd_event_source_disable_unref(hb->poll_timer);
        HASH_ITER (hh, hb->targets, t, tmp) {
                HASH_DEL(hb->targets, t);
                target_free(t);
        }
        hawkbit_downloads_free(hb);
        hawkbit_feedback_free_all(hb);
        hawkbit_http_free(hb->http);
        if (hb->auth_header) {
                explicit_bzero(hb->auth_header, strlen(hb->auth_header));
                free(hb->auth_header);
        }
        free(hb->base_url);
        free(hb->origin);
        free(hb->dl_dir);
        free(hb);
        return NULL;
}

void hawkbit_device_status(struct hawkbit *hb, uint64_t device_id, struct hawkbit_device_status *ret) {
        struct hawkbit_target *t = hawkbit_target_find(hb, device_id);

        *ret = (struct hawkbit_device_status) {};
        if (!t)
                return;
        ret->managed = true;
        ret->controller_id = t->controller_id;
        ret->action_id = t->action ? t->action->id : 0;
        ret->last_feedback = t->last_feedback[0] ? t->last_feedback : NULL;
        ret->feedback_queued = t->feedback_queued;
}

const struct hawkbit_stats *hawkbit_stats(const struct hawkbit *hb) {
        return &hb->stats;
}

unsigned hawkbit_targets_count(const struct hawkbit *hb) {
        return hb ? hb->n_targets : 0;
}

unsigned hawkbit_feedback_queued(const struct hawkbit *hb) {
        return hb ? (unsigned) hb->n_feedback : 0;
}
