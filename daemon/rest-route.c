/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The request target: routing a path to a resource and its {id}, and
 * scanning the raw target for what must be refused before routing.  Pure
 * functions of the bytes (see rest-route.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rest-route.h"
#include "util.h"

static bool strip_suffix(const char *s, const char *suffix, size_t *ret_len) {
        size_t n = strlen(s), k = strlen(suffix);

        if (n <= k || !streq(s + n - k, suffix))
                return false;
        *ret_len = n - k;
        return true;
}

/* Splits an (unescaped) path into a resource and its {id}. */
enum rest_resource rest_route_path(const char *url, rest_device_known_fn device_known, void *userdata, char **ret_id) {
        _cleanup_free_ char *path = strdup(url);
        const char *rest;
        size_t n;

        *ret_id = NULL;
        if (!path)
                return REST_RESOURCE_NONE;
        n = strlen(path);
        if (n > 1 && path[n - 1] == '/')
                path[n - 1] = '\0';

        if (streq(path, "/metrics"))
                return REST_RESOURCE_METRICS;
        if (strncmp(path, REST_API_PREFIX "/", strlen(REST_API_PREFIX "/")) != 0)
                return REST_RESOURCE_NONE;
        rest = path + strlen(REST_API_PREFIX "/");

        if (streq(rest, "health"))
                return REST_RESOURCE_HEALTH;
        if (streq(rest, "events"))
                return REST_RESOURCE_EVENTS;
        if (streq(rest, "devices"))
                return REST_RESOURCE_DEVICES;
        if (streq(rest, "images"))
                return REST_RESOURCE_IMAGES;
        if (streq(rest, "jobs"))
                return REST_RESOURCE_JOBS;
        if (streq(rest, "rollouts"))
                return REST_RESOURCE_ROLLOUTS;
        if (streq(rest, "rollouts/plan"))
                return REST_RESOURCE_ROLLOUTS_PLAN;

        if (streq(rest, "distributions"))
                return REST_RESOURCE_DISTRIBUTIONS;
        if (strncmp(rest, "distributions/", 14) == 0 && rest[14]) {
                static const struct {
                        const char *suffix;
                        enum rest_resource res;
                } actions[] = {
                        { "/cancel", REST_RESOURCE_DISTRIBUTION_CANCEL },
                        { "/suspend", REST_RESOURCE_DISTRIBUTION_SUSPEND },
                        { "/resume", REST_RESOURCE_DISTRIBUTION_RESUME },
                        { "/apply", REST_RESOURCE_DISTRIBUTION_APPLY },
                };
                const char *tail = rest + 14;
                enum rest_resource res = REST_RESOURCE_DISTRIBUTION;
                size_t len = strlen(tail);

                for (size_t i = 0; i < ELEMENTSOF(actions); i++)
                        if (strip_suffix(tail, actions[i].suffix, &len)) {
                                res = actions[i].res;
                                break;
                        }
                if (memchr(tail, '/', len))
                        return REST_RESOURCE_NONE;
                *ret_id = strndup(tail, len);
                return *ret_id ? res : REST_RESOURCE_NONE;
        }

        if (strncmp(rest, "devices/", 8) == 0 && rest[8]) {
                const char *tail = rest + 8;
                enum rest_resource res = REST_RESOURCE_DEVICE;
                size_t len = strlen(tail);

                /* Connection strings may hold '/' (serial:/dev/ttyACM0), so
                 * a known device's whole conn wins over a sub-resource. */
                if (!device_known || !device_known(tail, userdata)) {
                        if (strip_suffix(tail, "/probe", &len))
                                res = REST_RESOURCE_DEVICE_PROBE;
                        else if (strip_suffix(tail, "/history", &len))
                                res = REST_RESOURCE_DEVICE_HISTORY;
                        else if (strip_suffix(tail, "/labels", &len))
                                res = REST_RESOURCE_DEVICE_LABELS;
                }
                *ret_id = strndup(tail, len);
                return *ret_id ? res : REST_RESOURCE_NONE;
        }
        if (strncmp(rest, "images/", 7) == 0 && rest[7] && !strchr(rest + 7, '/')) {
                *ret_id = strdup(rest + 7);
                return *ret_id ? REST_RESOURCE_IMAGE : REST_RESOURCE_NONE;
        }
        if (strncmp(rest, "jobs/", 5) == 0 && rest[5]) {
                const char *tail = rest + 5;
                enum rest_resource res = REST_RESOURCE_JOB;
                size_t len = strlen(tail);

                if (strip_suffix(tail, "/cancel", &len))
                        res = REST_RESOURCE_JOB_CANCEL;
                else if (strip_suffix(tail, "/activate", &len))
                        res = REST_RESOURCE_JOB_ACTIVATE;
                if (memchr(tail, '/', len))
                        return REST_RESOURCE_NONE;
                *ret_id = strndup(tail, len);
                return *ret_id ? res : REST_RESOURCE_NONE;
        }
        if (strncmp(rest, "rollouts/", 9) == 0 && rest[9]) {
                static const struct {
                        const char *suffix;
                        enum rest_resource res;
                } subs[] = {
                        { "/members", REST_RESOURCE_ROLLOUT_MEMBERS },   { "/pause", REST_RESOURCE_ROLLOUT_PAUSE },
                        { "/resume", REST_RESOURCE_ROLLOUT_RESUME },     { "/cancel", REST_RESOURCE_ROLLOUT_CANCEL },
                        { "/activate", REST_RESOURCE_ROLLOUT_ACTIVATE }, { "/plan", REST_RESOURCE_ROLLOUT_PLAN },
                };
                const char *tail = rest + 9;
                enum rest_resource res = REST_RESOURCE_ROLLOUT;
                size_t len = strlen(tail);

                for (size_t i = 0; i < ELEMENTSOF(subs); i++)
                        if (strip_suffix(tail, subs[i].suffix, &len)) {
                                res = subs[i].res;
                                break;
                        }
                if (memchr(tail, '/', len))
                        return REST_RESOURCE_NONE;
                *ret_id = strndup(tail, len);
                return *ret_id ? res : REST_RESOURCE_NONE;
        }
        return REST_RESOURCE_NONE;
}

/* A byte that has no business in a request target: C0 controls and DEL. */
static bool is_control(unsigned char c) {
        return c < 0x20 || c == 0x7f;
}

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Whether s[0, n) holds a control character, raw or %-escaped. */
static bool has_control(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (is_control((unsigned char) s[i]))
                        return true;
                if (s[i] == '%' && i + 2 < n) {
                        int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);

                        if (hi >= 0 && lo >= 0 && is_control((unsigned char) (hi * 16 + lo)))
                                return true;
                }
        }
        return false;
}

int rest_target_scan(const char *target, struct rest_target *ret) {
        const char *end = target + strlen(target), *query = strchr(target, '?');

        *ret = (struct rest_target) {};
        ret->bad_path = has_control(target, (size_t) ((query ? query : end) - target));
        if (!query)
                return 0;
        ret->n_params = 1;
        for (const char *p = query + 1; p < end; p++)
                ret->n_params += *p == '&';
        for (const char *p = query + 1; p < end && !ret->bad_query;) {
                const char *amp = memchr(p, '&', (size_t) (end - p));
                size_t n = (size_t) ((amp ? amp : end) - p);

                if (has_control(p, n)) {
                        const char *eq = memchr(p, '=', n);
                        size_t name_len = eq ? (size_t) (eq - p) : n;

                        ret->bad_query = strndup(p, MIN(name_len, (size_t) 64));
                        if (!ret->bad_query)
                                return -ENOMEM;
                        /* It is quoted in a reply: no control bytes there. */
                        for (char *q = ret->bad_query; *q; q++)
                                if (is_control((unsigned char) *q) || (unsigned char) *q >= 0x80)
                                        *q = '?';
                }
                p += n + 1;
        }
        return 0;
}
