/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The poll scheduler.  Every exposed device polls its controller base
 * resource, GET <server>/<tenant>/controller/v1/<controllerId>, on its
 * own clock: the first polls are laid out evenly over [hawkbit]
 * start_spread, then each device sleeps what the server says
 * (config.polling.sleep, clamped to poll_min..poll_max) with ±5 %
 * jitter, so thousands of devices never poll in one burst and do not
 * fall into step.  A failed poll backs off: the sleep doubled per
 * failure in a row, up to poll_max, jittered too.  At most [hawkbit]
 * max_requests requests are in flight; devices that are due wait for a
 * slot in the order they became due.
 *
 * The first poll of a controllerId registers it (hawkBit's
 * auto-registration of targets polling with a gateway token).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conf.h"
#include "hawkbit-internal.h"
#include "log.h"
#include "manager.h"
#include "util.h"

bool hawkbit_request_slot_free(const struct hawkbit *hb) {
        return hawkbit_http_in_flight(hb->http) < hb->manager->config->hawkbit_max_requests;
}

static uint64_t jitter(struct hawkbit *hb, uint64_t usec) {
        /* ±5 % */
        uint64_t span = usec / 10;
        if (span == 0)
                return usec;
        return usec - span / 2 + hawkbit_random(hb) % span;
}

void hawkbit_poll_schedule_first(struct hawkbit *hb, struct hawkbit_target *t, uint64_t offset_usec) {
        t->next_poll_usec = hawkbit_now(hb) + offset_usec;
}

uint64_t hawkbit_href_id(const char *href, const char *name) {
        const char *p = strstr(href, name);
        uint64_t v = 0;

        if (!p || p[strlen(name)] != '/')
                return 0;
        p += strlen(name) + 1;
        if (*p < '0' || *p > '9')
                return 0;
        for (; *p >= '0' && *p <= '9'; p++) {
                if (v > (UINT64_MAX - 9) / 10)
                        return 0;
                v = v * 10 + (uint64_t) (*p - '0');
        }
        return v;
}

/* "HH:MM:SS" -> µs; -EINVAL when it is not. */
static int parse_sleep(const char *s, uint64_t *ret) {
        unsigned h, m, sec;
        int n = 0;

        if (sscanf(s, "%u:%u:%u%n", &h, &m, &sec, &n) != 3 || s[n] || m > 59 || sec > 59 || h > 9999)
                return -EINVAL;
        *ret = ((uint64_t) h * 3600 + m * 60 + sec) * 1000000ull;
        return 0;
}

static const char *link_href(json_t *root, const char *name) {
        json_t *href = json_object_get(json_object_get(json_object_get(root, "_links"), name), "href");
        const char *s = json_string_value(href);
        return s && *s && strlen(s) < HAWKBIT_URL_MAX ? s : NULL;
}

static void on_config_done(struct hawkbit_request *req, int error, long status, const char *body, size_t len,
                           void *userdata) {
        struct hawkbit_target *t = userdata;

        t->config_put = NULL;
        if (error < 0 || status < 200 || status >= 300)
                t->attributes_hash = 0; /* not taken: when asked again */
        if (error == 0 && status >= 200 && status < 300) {
                t->hb->stats.config_data_sent++;
                log_debug("hawkBit: %s: attributes sent", t->controller_id);
        } else
                log_debug("hawkBit: %s: configData PUT failed (%d, HTTP %ld)", t->controller_id, error, status);
        hawkbit_poll_kick(t->hb);
}

static void set_string(json_t *data, const char *key, const char *value) {
        if (value && *value)
                json_object_set_new(data, key, json_string(value));
}

static uint64_t fnv1a(const char *s) {
        uint64_t h = 0xcbf29ce484222325ull;
        for (; *s; s++)
                h = (h ^ (uint8_t) *s) * 0x100000001b3ull;
        return h ?: 1;
}

/* The attributes hawkBit shows for the target (all values strings):
 * when the server asks (href: its configData link), and again by
 * ourselves when they changed since they were sent (a probe found a new
 * version), so the server's view follows the device's. */
static void send_attributes(struct hawkbit_target *t, const char *href) {
        struct hawkbit *hb = t->hb;
        struct device *d = manager_find_device(hb->manager, t->device_id);
        _cleanup_free_ char *own_href = NULL;
        char buf[96];

        if (!d || t->config_put || !hb->manager->config->hawkbit_attributes)
                return;
        if (!href && t->attributes_hash == 0)
                return; /* never asked: nothing to follow up */
        json_t *root = json_object(), *data = json_object();
        if (!root || !data) {
                json_decref(root);
                json_decref(data);
                return;
        }
        json_object_set_new(root, "mode", json_string("merge"));
        set_string(data, "transport", d->transport);
        set_string(data, "address", d->address);
        set_string(data, "connection", d->conn);
        set_string(data, "name", d->name);
        set_string(data, "os_info", d->os_info);
        set_string(data, "bootloader", d->bootloader);
        set_string(data, "state", device_state_to_string(d->state));
        if (d->smp_version) {
                snprintf(buf, sizeof(buf), "%u", d->smp_version);
                set_string(data, "smp_version", buf);
        }
        if (d->has_params) {
                snprintf(buf, sizeof(buf), "%" PRIu32 " x %" PRIu32, d->buf_count, d->buf_size);
                set_string(data, "smp_buffers", buf);
        }
        if (d->has_rssi) {
                snprintf(buf, sizeof(buf), "%d", d->rssi);
                set_string(data, "rssi", buf);
        }
        for (size_t i = 0; i < d->slots->n_slots && i < SMP_UPDATE_SLOTS_MAX; i++) {
                const struct smp_update_slot *s = &d->slots->slots[i];
                char key[48], hex[65];
                if (!s->present)
                        continue;
                snprintf(key, sizeof(key), "image%" PRIu32 "_slot%" PRIu32 "_version", s->image, s->slot);
                set_string(data, key, s->version);
                if (s->hash_len == 32) {
                        hex_encode(s->hash, 32, hex);
                        snprintf(key, sizeof(key), "image%" PRIu32 "_slot%" PRIu32 "_hash", s->image, s->slot);
                        set_string(data, key, hex);
                }
        }
        set_string(data, "gateway", "smpgwd " PACKAGE_VERSION);
        json_object_set_new(root, "data", data);
        _cleanup_free_ char *body = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        if (!body)
                return;
        uint64_t hash = fnv1a(body);
        if (!href) {
                if (hash == t->attributes_hash)
                        return;
                if (asprintf(&own_href, "%s%s/configData", hb->base_url, t->controller_id) < 0)
                        return;
                href = own_href;
        }
        t->attributes_hash = hash;
        struct hawkbit_http_call call = {
                .method = "PUT",
                .url = href,
                .json = body,
                .auth_header = hawkbit_auth_for(hb, href),
                .sink_fd = -1,
                .timeout_usec = hb->manager->config->hawkbit_timeout_usec,
        };
        (void) hawkbit_http_start(hb->http, &call, on_config_done, t, &t->config_put);
}

static void poll_failed(struct hawkbit_target *t, int error, long status) {
        struct hawkbit *hb = t->hb;
        const struct config *c = hb->manager->config;
        uint64_t base = t->sleep_usec ?: c->hawkbit_poll_min_usec, delay = base;

        hb->stats.poll_errors++;
        if (status == 401 || status == 403)
                hb->stats.auth_errors++;
        t->errors++;
        for (unsigned i = 0; i < t->errors && delay < c->hawkbit_poll_max_usec; i++)
                delay *= 2;
        delay = MIN(delay, c->hawkbit_poll_max_usec);
        t->next_poll_usec = hawkbit_now(hb) + jitter(hb, delay);
        /* The first failure of a run is worth a line; the rest is in /metrics. */
        if (t->errors == 1) {
                if (status == 401 || status == 403)
                        log_warning("hawkBit: %s: the server refused the gateway token (HTTP %ld); check "
                                    "[hawkbit] gateway_token_file and the tenant's gateway token",
                                    t->controller_id, status);
                else if (error < 0)
                        log_info("hawkBit: %s: poll failed: %s; retrying with backoff", t->controller_id,
                                 strerror(-error));
                else
                        log_info("hawkBit: %s: poll answered HTTP %ld; retrying with backoff", t->controller_id,
                                 status);
        }
}

static void on_poll_done(struct hawkbit_request *req, int error, long status, const char *body, size_t len,
                         void *userdata) {
        struct hawkbit_target *t = userdata;
        struct hawkbit *hb = t->hb;
        const struct config *c = hb->manager->config;
        json_error_t jerr;
        json_t *root = NULL;
        uint64_t sleep;

        t->poll = NULL;
        hb->stats.polls++;
        if (error == 0 && status == 200)
                root = json_loadb(body, len, 0, &jerr);
        if (!json_is_object(root)) {
                /* A 200 that is no JSON object is the server's fault too. */
                poll_failed(t, error ?: (status == 200 ? -EBADMSG : 0), status);
                json_decref(root);
                hawkbit_poll_kick(hb);
                return;
        }
        if (!t->registered)
                log_debug("hawkBit: %s: registered", t->controller_id);
        t->registered = true;
        t->errors = 0;
        const char *s = json_string_value(
                json_object_get(json_object_get(json_object_get(root, "config"), "polling"), "sleep"));
        if (s && parse_sleep(s, &sleep) == 0)
                t->sleep_usec = MIN(MAX(sleep, c->hawkbit_poll_min_usec), c->hawkbit_poll_max_usec);
        else if (!t->sleep_usec)
                t->sleep_usec = c->hawkbit_poll_max_usec;
        t->next_poll_usec = hawkbit_now(hb) + jitter(hb, t->sleep_usec);

        const char *href;
        if ((href = link_href(root, "cancelAction")))
                hawkbit_cancel_seen(t, href);
        else if ((href = link_href(root, "deploymentBase")))
                hawkbit_deployment_seen(t, href);
        send_attributes(t, link_href(root, "configData"));
        json_decref(root);
        hawkbit_feedback_kick(hb, true);
        hawkbit_poll_kick(hb);
}

static void poll_one(struct hawkbit_target *t) {
        struct hawkbit *hb = t->hb;
        _cleanup_free_ char *url = NULL;
        int r;

        if (asprintf(&url, "%s%s", hb->base_url, t->controller_id) < 0)
                return;
        struct hawkbit_http_call call = {
                .method = "GET",
                .url = url,
                .auth_header = hb->auth_header,
                .sink_fd = -1,
                .timeout_usec = hb->manager->config->hawkbit_timeout_usec,
        };
        r = hawkbit_http_start(hb->http, &call, on_poll_done, t, &t->poll);
        if (r < 0) {
                log_warning_errno(r, "hawkBit: %s: cannot start a poll: %m", t->controller_id);
                poll_failed(t, r, 0);
        }
}

static int on_poll_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        hawkbit_poll_kick(userdata);
        return 0;
}

void hawkbit_poll_kick(struct hawkbit *hb) {
        uint64_t now = hawkbit_now(hb), next = UINT64_MAX;
        struct hawkbit_target *t, *tmp;

        if (!hb->poll_timer)
                return;
        /* Due targets, earliest first, while slots are free.  A linear
         * pass per wake-up: cheap next to an HTTP request, for the
         * [devices] max_count a gateway can hold. */
        for (;;) {
                struct hawkbit_target *due = NULL;
                next = UINT64_MAX;
                HASH_ITER (hh, hb->targets, t, tmp) {
                        if (t->poll)
                                continue;
                        if (t->next_poll_usec <= now) {
                                if (!due || t->next_poll_usec < due->next_poll_usec)
                                        due = t;
                        } else if (t->next_poll_usec < next)
                                next = t->next_poll_usec;
                }
                if (!due)
                        break;
                if (!hawkbit_request_slot_free(hb))
                        return; /* a finishing request kicks again */
                poll_one(due);
        }
        if (next == UINT64_MAX)
                (void) sd_event_source_set_enabled(hb->poll_timer, SD_EVENT_OFF);
        else {
                (void) sd_event_source_set_time(hb->poll_timer, next);
                (void) sd_event_source_set_enabled(hb->poll_timer, SD_EVENT_ONESHOT);
        }
}

int hawkbit_poll_start(struct hawkbit *hb) {
        int r = sd_event_add_time(hb->manager->event, &hb->poll_timer, CLOCK_MONOTONIC, 0, 10 * 1000, on_poll_timer,
                                  hb);
        if (r < 0)
                return r;
        hawkbit_poll_kick(hb);
        return 0;
}
