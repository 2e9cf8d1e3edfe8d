/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The spellings of a rollout policy (rollout-policy.h): counts ("5",
 * "10%"), the policy object and the target filter in JSON, with a
 * sentence naming the key and the value for whatever is refused.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollout-policy.h"
#include "util.h"

static void reason_set(char **ret_reason, const char *fmt, ...) _printf_(2, 3);
static void reason_set(char **ret_reason, const char *fmt, ...) {
        va_list ap;

        if (!ret_reason)
                return;
        free(*ret_reason);
        va_start(ap, fmt);
        if (vasprintf(ret_reason, fmt, ap) < 0)
                *ret_reason = NULL;
        va_end(ap);
}

/* Printable ASCII of at most max bytes: safe to quote in a sentence. */
static bool text_ok(const char *s, size_t max) {
        size_t len = strlen(s);

        if (len > max)
                return false;
        for (size_t i = 0; i < len; i++)
                if (s[i] < 0x20 || s[i] > 0x7e)
                        return false;
        return true;
}

/* ---- counts ---- */

/* Decimal digits only, no sign or space, at most max: -EINVAL/-ERANGE. */
static int decimal_parse(const char *s, size_t len, uint32_t max, uint32_t *ret) {
        uint64_t v = 0;

        if (len == 0 || len > 10)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t) (s[i] - '0');
        }
        if (v > max)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

int rollout_count_parse(const char *text, const char *what, struct rollout_count *ret, char **ret_reason) {
        size_t len = strlen(text);
        bool percent = len > 0 && text[len - 1] == '%';
        uint32_t v;
        int r;

        if (ret_reason)
                *ret_reason = NULL;
        r = decimal_parse(text, percent ? len - 1 : len, percent ? 100 : ROLLOUT_COUNT_MAX, &v);
        if (r < 0 || v == 0) {
                if (text_ok(text, 32))
                        reason_set(ret_reason, "%s '%s' is not a count 1..%u or a percentage 1%%..100%%", what, text,
                                   ROLLOUT_COUNT_MAX);
                else
                        reason_set(ret_reason, "%s is not a count 1..%u or a percentage 1%%..100%%", what,
                                   ROLLOUT_COUNT_MAX);
                return -EINVAL;
        }
        *ret = (struct rollout_count) { .value = v, .percent = percent };
        return 0;
}

const char *rollout_count_format(const struct rollout_count *c, char *buf, size_t size) {
        snprintf(buf, size, "%u%s", c->value, c->percent ? "%" : "");
        return buf;
}

/* A count as a JSON string ("10%") or a whole number. */
static int json_count_parse(const json_t *v, const char *key, struct rollout_count *ret, char **ret_reason) {
        char buf[24];

        if (json_is_integer(v)) {
                json_int_t i = json_integer_value(v);
                if (i < 1 || i > ROLLOUT_COUNT_MAX) {
                        reason_set(ret_reason,
                                   "%s %" JSON_INTEGER_FORMAT " is not a count 1..%u or a percentage 1%%..100%%", key,
                                   i, ROLLOUT_COUNT_MAX);
                        return -EINVAL;
                }
                snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, i);
                return rollout_count_parse(buf, key, ret, ret_reason);
        }
        if (!json_is_string(v)) {
                reason_set(ret_reason, "%s is not a count (\"5\") or a percentage (\"10%%\")", key);
                return -EINVAL;
        }
        return rollout_count_parse(json_string_value(v), key, ret, ret_reason);
}

static json_t *json_count(const struct rollout_count *c) {
        char buf[24];
        return json_string(rollout_count_format(c, buf, sizeof(buf)));
}

/* ---- the policy object ---- */

/* A whole number in [min, max] at key. */
static int json_uint_parse(const json_t *v, const char *key, uint32_t min, uint32_t max, uint32_t *ret,
                           char **ret_reason) {
        json_int_t i;

        if (!json_is_integer(v)) {
                reason_set(ret_reason, "%s is not a whole number (%u..%u)", key, min, max);
                return -EINVAL;
        }
        i = json_integer_value(v);
        if (i < min || i > max) {
                reason_set(ret_reason, "%s %" JSON_INTEGER_FORMAT " is out of range (%u..%u)", key, i, min, max);
                return -EINVAL;
        }
        *ret = (uint32_t) i;
        return 0;
}

static int json_action_parse(const json_t *v, enum rollout_action *ret, char **ret_reason) {
        const char *s = json_string_value(v);
        int a = s ? rollout_action_from_string(s) : -EINVAL;

        if (a < 0) {
                if (s && text_ok(s, 32))
                        reason_set(ret_reason, "failure_action '%s' is not pause or abort", s);
                else
                        reason_set(ret_reason, "failure_action is not \"pause\" or \"abort\"");
                return -EINVAL;
        }
        *ret = (enum rollout_action) a;
        return 0;
}

/* The numeric keys of a policy: name, range, field. */
struct uint_key {
        const char *key;
        uint32_t min, max;
        size_t offset;
};

static const struct uint_key policy_uint_keys[] = {
        { "soak", 0, ROLLOUT_SOAK_MAX_S, offsetof(struct rollout_policy, soak_s) },
        { "revert_halt", 0, ROLLOUT_COUNT_MAX, offsetof(struct rollout_policy, revert_halt) },
        { "max_rebooting", 1, ROLLOUT_REBOOTING_MAX, offsetof(struct rollout_policy, max_rebooting) },
        { "max_rebooting_relay", 1, ROLLOUT_REBOOTING_MAX, offsetof(struct rollout_policy, max_rebooting_relay) },
        { "attempts", JOB_ATTEMPTS_MIN, ROLLOUT_ATTEMPTS_MAX, offsetof(struct rollout_policy, attempts) },
        { "retry_delay", 1, ROLLOUT_RETRY_DELAY_MAX_S, offsetof(struct rollout_policy, retry_delay_s) },
        { "retry_delay_max", 1, ROLLOUT_RETRY_DELAY_CAP_MAX_S, offsetof(struct rollout_policy, retry_delay_max_s) },
};

static struct rollout_count *policy_count_field(struct rollout_policy *p, const char *key) {
        if (streq(key, "canary"))
                return &p->canary;
        if (streq(key, "wave_size"))
                return &p->wave_size;
        if (streq(key, "failure_threshold"))
                return &p->failure_threshold;
        return NULL;
}

static int policy_key_parse(struct rollout_policy *p, const char *key, const json_t *v, char **ret_reason) {
        struct rollout_count *count = policy_count_field(p, key);

        if (count)
                return json_count_parse(v, key, count, ret_reason);
        if (streq(key, "failure_action"))
                return json_action_parse(v, &p->failure_action, ret_reason);
        if (streq(key, "mesh_path")) {
                const char *text = json_string_value(v);
                int mp = text ? rollout_mesh_path_from_string(text) : -EINVAL;
                if (mp < 0) {
                        reason_set(ret_reason, "mesh_path is not \"auto\", \"distributor\" or \"direct\"");
                        return -EINVAL;
                }
                p->mesh_path = (enum rollout_mesh_path) mp;
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(policy_uint_keys); i++) {
                const struct uint_key *k = &policy_uint_keys[i];
                if (streq(key, k->key))
                        return json_uint_parse(v, key, k->min, k->max, (uint32_t *) ((char *) p + k->offset),
                                               ret_reason);
        }
        if (text_ok(key, 32))
                reason_set(ret_reason, "unknown policy key '%s'", key);
        else
                reason_set(ret_reason, "an unknown policy key");
        return -EINVAL;
}

int rollout_policy_from_json(const json_t *obj, struct rollout_policy *p, char **ret_reason) {
        struct rollout_policy copy = *p;
        const char *key;
        json_t *v;

        if (ret_reason)
                *ret_reason = NULL;
        if (!obj || json_is_null(obj))
                return 0;
        if (!json_is_object(obj)) {
                reason_set(ret_reason, "the policy is not an object");
                return -EINVAL;
        }
        json_object_foreach((json_t *) obj, key, v) {
                int r = policy_key_parse(&copy, key, v, ret_reason);
                if (r < 0)
                        return r;
        }
        *p = copy;
        return 0;
}

json_t *rollout_policy_to_json(const struct rollout_policy *p) {
        json_t *obj = json_pack("{s:o, s:o, s:o, s:s}", "canary", json_count(&p->canary), "wave_size",
                                json_count(&p->wave_size), "failure_threshold", json_count(&p->failure_threshold),
                                "failure_action", rollout_action_to_string(p->failure_action));

        for (size_t i = 0; obj && i < ELEMENTSOF(policy_uint_keys); i++) {
                const struct uint_key *k = &policy_uint_keys[i];
                uint32_t v = *(const uint32_t *) ((const char *) p + k->offset);
                if (json_object_set_new(obj, k->key, json_integer(v)) < 0) {
                        json_decref(obj);
                        return NULL;
                }
        }
        /* Only when given: the policies of rollouts without mesh targets read as before. */
        if (obj && p->mesh_path != ROLLOUT_MESH_PATH_AUTO &&
            json_object_set_new(obj, "mesh_path", json_string(rollout_mesh_path_to_string(p->mesh_path))) < 0) {
                json_decref(obj);
                return NULL;
        }
        return obj;
}

/* ---- the filter ---- */

static bool label_ok(const char *s) {
        size_t len = strlen(s);

        if (len == 0 || len >= ROLLOUT_LABEL_SIZE)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
                if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
                        return false;
        }
        return true;
}

static bool transport_ok(const char *s) {
        size_t len = strlen(s);

        if (len == 0 || len >= ROLLOUT_TRANSPORT_SIZE)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

/* One string, or a list of them, into a fixed table (transports, labels). */
static int json_names_parse(const json_t *v, const char *key, bool allow_single, size_t max, size_t size,
                            bool (*ok)(const char *), char *table, size_t *ret_n, char **ret_reason) {
        size_t n = json_is_array(v) ? json_array_size(v) : 1;

        if (!json_is_array(v) && !(allow_single && json_is_string(v))) {
                reason_set(ret_reason, "%s is not a list of names", key);
                return -EINVAL;
        }
        if (n == 0 || n > max) {
                reason_set(ret_reason, "%s has %zu names, 1 to %zu are allowed", key, n, max);
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
                const char *s = json_string_value(json_is_array(v) ? json_array_get(v, i) : v);
                if (!s || !ok(s)) {
                        if (s && text_ok(s, 64))
                                reason_set(ret_reason, "%s '%s' is not a valid name", key, s);
                        else
                                reason_set(ret_reason, "%s item %zu is not a valid name", key, i + 1);
                        return -EINVAL;
                }
                memcpy(table + i * size, s, strlen(s) + 1);
        }
        *ret_n = n;
        return 0;
}

/* A printable string of at most size - 1 bytes into buf. */
static int json_text_parse(const json_t *v, const char *key, char *buf, size_t size, char **ret_reason) {
        const char *s = json_string_value(v);

        if (!s || strlen(s) == 0 || !text_ok(s, size - 1)) {
                reason_set(ret_reason, "%s is not printable text of 1..%zu characters", key, size - 1);
                return -EINVAL;
        }
        memcpy(buf, s, strlen(s) + 1);
        return 0;
}

static int json_version_parse(const json_t *v, struct mcuboot_version *ret, char **ret_reason) {
        const char *s = json_string_value(v);

        if (!s || mcuboot_version_parse(s, ret) < 0) {
                if (s && text_ok(s, 32))
                        reason_set(ret_reason, "version_below '%s' is not a version (1.2.3 or 1.2.3+4)", s);
                else
                        reason_set(ret_reason, "version_below is not a version (1.2.3 or 1.2.3+4)");
                return -EINVAL;
        }
        return 0;
}

static int filter_key_parse(struct rollout_filter *f, const char *key, const json_t *v, char **ret_reason) {
        if (streq(key, "transport"))
                return json_names_parse(v, key, true, ROLLOUT_FILTER_TRANSPORTS_MAX, ROLLOUT_TRANSPORT_SIZE,
                                        transport_ok, &f->transports[0][0], &f->n_transports, ret_reason);
        if (streq(key, "labels"))
                return json_names_parse(v, key, false, ROLLOUT_LABELS_MAX, ROLLOUT_LABEL_SIZE, label_ok,
                                        &f->labels[0][0], &f->n_labels, ret_reason);
        if (streq(key, "name"))
                return json_text_parse(v, key, f->name, sizeof(f->name), ret_reason);
        if (streq(key, "board"))
                return json_text_parse(v, key, f->board, sizeof(f->board), ret_reason);
        if (streq(key, "app"))
                return json_text_parse(v, key, f->app, sizeof(f->app), ret_reason);
        if (streq(key, "version_below")) {
                f->has_version_below = true;
                return json_version_parse(v, &f->version_below, ret_reason);
        }
        if (text_ok(key, 32))
                reason_set(ret_reason, "unknown filter key '%s' (transport, name, labels, board, app, version_below)",
                           key);
        else
                reason_set(ret_reason, "an unknown filter key (transport, name, labels, board, app, version_below)");
        return -EINVAL;
}

int rollout_filter_from_json(const json_t *obj, struct rollout_filter *ret, char **ret_reason) {
        struct rollout_filter f = {};
        const char *key;
        json_t *v;

        if (ret_reason)
                *ret_reason = NULL;
        if (!json_is_object(obj) || json_object_size(obj) == 0) {
                reason_set(ret_reason, "the filter is not an object with at least one of transport, name, labels, "
                                       "board, app, version_below");
                return -EINVAL;
        }
        json_object_foreach((json_t *) obj, key, v) {
                int r = filter_key_parse(&f, key, v, ret_reason);
                if (r < 0)
                        return r;
        }
        *ret = f;
        return 0;
}

static json_t *json_names(const char *table, size_t n, size_t size) {
        json_t *a = json_array();

        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_string(table + i * size)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

json_t *rollout_filter_to_json(const struct rollout_filter *f) {
        json_t *obj = json_object();
        char version[48];
        int r = obj ? 0 : -ENOMEM;

        if (r == 0 && f->n_transports > 0)
                r = json_object_set_new(obj, "transport",
                                        json_names(&f->transports[0][0], f->n_transports, ROLLOUT_TRANSPORT_SIZE));
        if (r == 0 && f->name[0])
                r = json_object_set_new(obj, "name", json_string(f->name));
        if (r == 0 && f->n_labels > 0)
                r = json_object_set_new(obj, "labels", json_names(&f->labels[0][0], f->n_labels, ROLLOUT_LABEL_SIZE));
        if (r == 0 && f->board[0])
                r = json_object_set_new(obj, "board", json_string(f->board));
        if (r == 0 && f->app[0])
                r = json_object_set_new(obj, "app", json_string(f->app));
        if (r == 0 && f->has_version_below) {
                r = mcuboot_version_format(&f->version_below, version, sizeof(version)) < 0 ? -ENOBUFS : 0;
                if (r == 0)
                        r = json_object_set_new(obj, "version_below", json_string(version));
        }
        if (r < 0) {
                json_decref(obj);
                return NULL;
        }
        return obj;
}
