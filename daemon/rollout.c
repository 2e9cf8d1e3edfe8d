/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The rollout object: states, the spec a rollout is created from (one
 * JSON shape for every front end), its members from the inventory, its
 * JSON form.  Driving it is rollout-executor.c's; its rows db-rollout.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "engine-rollout.h"
#include "engine.h"
#include "log.h"
#include "manager.h"
#include "os-info.h"
#include "rollout.h"
#include "smpgw/mcuboot-image.h"
#include "smpgw/mesh-dfu.h"
#include "smpgw/smp-parse.h"
#include "util.h"

static const char *const state_names[_ROLLOUT_STATE_MAX] = {
        [ROLLOUT_SCHEDULED] = "scheduled", [ROLLOUT_RUNNING] = "running",     [ROLLOUT_PAUSED] = "paused",
        [ROLLOUT_COMPLETED] = "completed", [ROLLOUT_CANCELLED] = "cancelled", [ROLLOUT_ABORTED] = "aborted",
};

const char *rollout_state_to_string(enum rollout_state s) {
        return (unsigned) s < _ROLLOUT_STATE_MAX ? state_names[s] : NULL;
}

enum rollout_state rollout_state_from_string(const char *s) {
        for (unsigned i = 0; s && i < _ROLLOUT_STATE_MAX; i++)
                if (streq(s, state_names[i]))
                        return (enum rollout_state) i;
        return _ROLLOUT_STATE_INVALID;
}

bool rollout_is_finished(const struct rollout *r) {
        return r->state == ROLLOUT_COMPLETED || r->state == ROLLOUT_CANCELLED || r->state == ROLLOUT_ABORTED;
}

struct rollout *rollout_free(struct rollout *r) {
        if (!r)
                return NULL;
        sd_event_source_disable_unref(r->timer);
        free(r->name);
        json_decref(r->targets);
        json_decref(r->schedule_json);
        json_decref(r->policy_json);
        free(r->error);
        free(r->paused_reason);
        free(r->members);
        free(r);
        return NULL;
}

struct rollout_member *rollout_find_member(struct rollout *r, uint64_t device_id) {
        for (size_t i = 0; i < r->n_members; i++)
                if (r->members[i].device_id == device_id)
                        return &r->members[i];
        return NULL;
}

int rollout_add_member(struct rollout *r, const struct rollout_member *mem) {
        if (r->n_members >= ROLLOUT_MEMBERS_MAX)
                return -E2BIG;
        if (r->n_members == r->members_alloc) {
                size_t want = MAX(r->members_alloc * 2, (size_t) 16);
                struct rollout_member *p = realloc(r->members, want * sizeof(*p));
                if (!p)
                        return -ENOMEM;
                r->members = p;
                r->members_alloc = want;
        }
        r->members[r->n_members++] = *mem;
        return 0;
}

/* ---- errors ---- */

_printf_(4, 5) static int spec_fail(struct engine_error *e, int error, const char *field, const char *fmt, ...) {
        va_list ap;

        e->error = error;
        e->field = field;
        e->index = -1;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
        return error;
}

/* ---- RFC 3339 ---- */

static int digits(const char **p, unsigned n, int *ret) {
        int v = 0;

        for (unsigned i = 0; i < n; i++) {
                char c = (*p)[i];
                if (c < '0' || c > '9')
                        return -EINVAL;
                v = v * 10 + (c - '0');
        }
        *p += n;
        *ret = v;
        return 0;
}

int rollout_parse_time(const char *s, uint64_t *ret_usec) {
        int year, month, day, hour, minute, second, oh = 0, om = 0;
        int64_t secs, offset = 0;
        uint64_t frac = 0;
        const char *p = s;

        if (!s || digits(&p, 4, &year) < 0 || *p++ != '-' || digits(&p, 2, &month) < 0 || *p++ != '-' ||
            digits(&p, 2, &day) < 0 || (*p != 'T' && *p != 't' && *p != ' '))
                return -EINVAL;
        p++;
        if (digits(&p, 2, &hour) < 0 || *p++ != ':' || digits(&p, 2, &minute) < 0 || *p++ != ':' ||
            digits(&p, 2, &second) < 0)
                return -EINVAL;
        if (year < 1970 || month < 1 || month > 12 || day < 1 || day > tz_days_in_month(year, month) || hour > 23 ||
            minute > 59 || second > 60)
                return -EINVAL;
        if (*p == '.') {
                unsigned n = 0;
                p++;
                while (*p >= '0' && *p <= '9') {
                        if (n < 6) {
                                frac = frac * 10 + (uint64_t) (*p - '0');
                                n++;
                        }
                        p++;
                }
                if (n == 0)
                        return -EINVAL;
                while (n++ < 6)
                        frac *= 10;
        }
        if (*p == 'Z' || *p == 'z')
                p++;
        else if (*p == '+' || *p == '-') {
                int sign = *p++ == '-' ? -1 : 1;
                if (digits(&p, 2, &oh) < 0 || *p++ != ':' || digits(&p, 2, &om) < 0 || oh > 23 || om > 59)
                        return -EINVAL;
                offset = sign * (oh * 3600 + om * 60);
        } else
                return -EINVAL;
        if (*p)
                return -EINVAL;
        if (second == 60)
                second = 59;
        secs = tz_days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset;
        if (secs < 0 || secs > TZ_SECONDS_MAX)
                return -EINVAL;
        *ret_usec = (uint64_t) secs * 1000000u + frac;
        return 0;
}

/* ---- candidates ---- */

void rollout_candidate_done(struct rollout_candidate *c) {
        free((char *) c->active_hash);
        free((char *) c->board);
        free((char *) c->app);
        c->active_hash = c->board = c->app = NULL;
}

void rollout_candidates_free(struct rollout_candidate *c, size_t n) {
        for (size_t i = 0; c && i < n; i++)
                rollout_candidate_done(&c[i]);
        free(c);
}

/* The rate of the device's newest job that measured one. */
static double device_last_rate(struct manager *m, uint64_t device_id) {
        for (size_t i = m->n_jobs; i > 0; i--) {
                const struct job *j = m->jobs[i - 1];
                if (j->device_id == device_id && job_rate(j) > 0)
                        return job_rate(j);
        }
        return 0.0;
}

int rollout_candidate_of(struct manager *m, const struct device *d, struct rollout_candidate *ret) {
        const struct smp_update_slot *active = NULL;
        struct os_info_fields os;

        *ret = (struct rollout_candidate) {
                .id = d->id,
                .name = d->name,
                .transport = d->transport,
                .adapter = d->adapter,
                .labels = (const char *const *) d->labels,
                .n_labels = d->n_labels,
                .rate = device_last_rate(m, d->id),
                .last_seen_usec = d->last_seen_usec,
                .absent = d->state == DEVICE_ABSENT,
        };
        /* Unknown (no OS info command, not Zephyr's layout): NULL, which
         * no board or app term matches. */
        (void) os_info_parse(d->os_info, &os);
        if ((os.board[0] && !(ret->board = strdup(os.board))) || (os.app[0] && !(ret->app = strdup(os.app)))) {
                rollout_candidate_done(ret);
                return -ENOMEM;
        }
        for (size_t i = 0; i < d->slots->n_slots && i < SMP_UPDATE_SLOTS_MAX; i++)
                if (d->slots->slots[i].present && d->slots->slots[i].active && d->slots->slots[i].image == 0)
                        active = &d->slots->slots[i];
        if (active) {
                char *hash = malloc(2 * sizeof(active->hash) + 1);
                if (!hash) {
                        rollout_candidate_done(ret);
                        return -ENOMEM;
                }
                hex_encode(active->hash, MIN(active->hash_len, sizeof(active->hash)), hash);
                ret->active_hash = hash;
                ret->active_confirmed = active->confirmed;
                ret->has_version = mcuboot_version_parse(active->version, &ret->version) >= 0;
        }
        return 0;
}

struct rollout_image_facts rollout_image_facts_of(struct manager *m, const char *image_id, uint64_t image_size) {
        const struct image *img = manager_find_image(m, image_id);

        /* An image deleted since declares nothing: no board checked. */
        return (struct rollout_image_facts) {
                .hash = image_id,
                .size = image_size,
                .boards = img ? (const char *const *) img->boards : NULL,
                .n_boards = img ? img->n_boards : 0,
        };
}

int rollout_spec_layout(struct manager *m, const struct rollout_spec *s, uint64_t now_usec, struct rollout_layout *ret,
                        struct rollout_candidate **ret_candidates, size_t *ret_n_candidates) {
        size_t n = s->policy.has_filter ? m->n_devices : s->n_device_ids, k = 0;
        struct rollout_candidate *c = calloc(MAX(n, (size_t) 1), sizeof(*c));
        struct rollout_image_facts image = rollout_image_facts_of(m, s->image_id, s->image_size);
        int r = 0;

        if (!c)
                return -ENOMEM;
        for (size_t i = 0; i < n && r >= 0; i++) {
                const struct device *d =
                        s->policy.has_filter ? m->devices[i] : manager_find_device(m, s->device_ids[i]);
                if (!d)
                        continue;
                r = rollout_candidate_of(m, d, &c[k]);
                if (r >= 0)
                        k++;
        }
        if (r >= 0)
                r = rollout_layout_build(&s->policy, &image, c, k, now_usec, m->config->absent_after_usec, ret);
        if (r < 0) {
                rollout_candidates_free(c, k);
                return r;
        }
        *ret_candidates = c;
        *ret_n_candidates = k;
        return 0;
}

/* ---- the spec ---- */

void rollout_spec_done(struct rollout_spec *s) {
        free(s->name);
        free(s->device_ids);
        json_decref(s->targets);
        json_decref(s->schedule_json);
        json_decref(s->policy_json);
        *s = (struct rollout_spec) {};
}

static int check_keys(const json_t *obj, const char *what, const char *const *known, struct engine_error *e) {
        const char *key;
        json_t *v;

        json_object_foreach((json_t *) obj, key, v) {
                bool ok = false;
                for (size_t i = 0; known[i] && !ok; i++)
                        ok = streq(key, known[i]);
                if (!ok)
                        return spec_fail(e, -EINVAL, what, "Unknown field '%s' in '%s'.", key, what);
        }
        return 0;
}

static int parse_time_field(const json_t *obj, const char *key, uint64_t *ret, struct engine_error *e) {
        json_t *v = json_object_get(obj, key);

        *ret = 0;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_string(v) || rollout_parse_time(json_string_value(v), ret) < 0)
                return spec_fail(e, -EINVAL, key,
                                 "'%s' must be an RFC 3339 time such as \"2026-12-05T03:00:00Z\", or null.", key);
        return 0;
}

static int parse_schedule(const json_t *obj, struct rollout_schedule *s, json_t **ret_json, struct engine_error *e) {
        static const char *const known[] = { "start_at", "deadline", "windows", "timezone", "staging", NULL };
        _cleanup_free_ char *reason = NULL;
        json_t *v, *out;
        int r;

        *s = (struct rollout_schedule) {};
        if (obj && !json_is_null(obj)) {
                if (!json_is_object(obj))
                        return spec_fail(e, -EINVAL, "schedule", "'schedule' must be an object.");
                r = check_keys(obj, "schedule", known, e);
                if (r < 0)
                        return r;
                r = parse_time_field(obj, "start_at", &s->start_at_usec, e);
                if (r < 0)
                        return r;
                r = parse_time_field(obj, "deadline", &s->deadline_usec, e);
                if (r < 0)
                        return r;
                r = rollout_windows_from_json(json_object_get(obj, "windows"), &s->windows, &reason);
                if (r < 0)
                        return spec_fail(e, -EINVAL, "windows", "'windows': %s.", reason ?: "invalid");
                v = json_object_get(obj, "timezone");
                if (v && !json_is_null(v)) {
                        if (!json_is_string(v))
                                return spec_fail(e, -EINVAL, "timezone", "'timezone' must be an IANA zone name.");
                        r = tz_zone_load(json_string_value(v), &s->zone, &reason);
                        if (r < 0)
                                return spec_fail(e, -EINVAL, "timezone", "'timezone': bad time zone: %s.",
                                                 reason ?: "cannot be loaded");
                        s->has_zone = true;
                }
                v = json_object_get(obj, "staging");
                if (v && !json_is_boolean(v))
                        return spec_fail(e, -EINVAL, "staging", "'staging' must be true or false.");
                s->staging = json_is_true(v);
        }
        if (s->windows.n > 0 && !s->has_zone) {
                r = tz_zone_load("UTC", &s->zone, NULL);
                if (r < 0)
                        return spec_fail(e, -EINVAL, "timezone",
                                         "'timezone' is needed with windows (UTC cannot be loaded).");
                s->has_zone = true;
        }
        if (s->deadline_usec && s->start_at_usec && s->deadline_usec <= s->start_at_usec)
                return spec_fail(e, -EINVAL, "deadline", "'deadline' must be after 'start_at'.");

        out = json_pack("{s:o, s:o, s:o, s:o, s:b}", "start_at",
                        s->start_at_usec ? json_integer((json_int_t) s->start_at_usec) : json_null(), "deadline",
                        s->deadline_usec ? json_integer((json_int_t) s->deadline_usec) : json_null(), "windows",
                        rollout_windows_to_json(&s->windows), "timezone",
                        s->has_zone ? json_string(s->zone.name) : json_null(), "staging", s->staging);
        if (!out)
                return spec_fail(e, -ENOMEM, NULL, "Out of memory.");
        *ret_json = out;
        return 0;
}

int rollout_schedule_from_stored(const json_t *obj, struct rollout_schedule *s) {
        json_t *v;

        *s = (struct rollout_schedule) {};
        if (!json_is_object(obj))
                return -EINVAL;
        s->start_at_usec = (uint64_t) json_integer_value(json_object_get(obj, "start_at"));
        s->deadline_usec = (uint64_t) json_integer_value(json_object_get(obj, "deadline"));
        if (rollout_windows_from_json(json_object_get(obj, "windows"), &s->windows, NULL) < 0)
                return -EINVAL;
        v = json_object_get(obj, "timezone");
        if (json_is_string(v)) {
                if (tz_zone_load(json_string_value(v), &s->zone, NULL) < 0)
                        return -EINVAL;
                s->has_zone = true;
        }
        s->staging = json_is_true(json_object_get(obj, "staging"));
        return 0;
}

static int parse_targets(struct manager *m, const json_t *obj, struct rollout_spec *s, struct engine_error *e) {
        static const char *const known[] = { "devices", "filter", NULL };
        _cleanup_free_ char *reason = NULL;
        json_t *devices, *filter, *item;
        size_t i;
        int r;

        if (!json_is_object(obj))
                return spec_fail(e, -EINVAL, "targets",
                                 "'targets' is required: {\"devices\": [ids or connection strings]} or "
                                 "{\"filter\": {...}}.");
        r = check_keys(obj, "targets", known, e);
        if (r < 0)
                return r;
        devices = json_object_get(obj, "devices");
        filter = json_object_get(obj, "filter");
        if (!!devices == !!filter)
                return spec_fail(e, -EINVAL, "targets", "'targets' takes exactly one of 'devices' and 'filter'.");
        if (filter) {
                r = rollout_filter_from_json(filter, &s->policy.filter, &reason);
                if (r < 0)
                        return spec_fail(e, -EINVAL, "filter", "'filter': %s.", reason ?: "invalid");
                s->policy.has_filter = true;
                s->targets = json_pack("{s:o}", "filter", rollout_filter_to_json(&s->policy.filter));
                return s->targets ? 0 : spec_fail(e, -ENOMEM, NULL, "Out of memory.");
        }
        if (!json_is_array(devices) || json_array_size(devices) == 0)
                return spec_fail(e, -EINVAL, "devices", "'devices' must be a non-empty list of devices.");
        if (json_array_size(devices) > ROLLOUT_MEMBERS_MAX)
                return spec_fail(e, -EINVAL, "devices", "'devices' names more than %u devices.", ROLLOUT_MEMBERS_MAX);
        s->device_ids = calloc(json_array_size(devices), sizeof(uint64_t));
        json_t *ids = json_array();
        if (!s->device_ids || !ids) {
                json_decref(ids);
                return spec_fail(e, -ENOMEM, NULL, "Out of memory.");
        }
        json_array_foreach(devices, i, item) {
                char buf[32];
                const char *spec = json_is_string(item) ? json_string_value(item) : NULL;
                struct device *d;

                if (json_is_integer(item)) {
                        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(item));
                        spec = buf;
                }
                d = spec ? engine_device_lookup(m, spec) : NULL;
                if (!d) {
                        json_decref(ids);
                        e->error = -ENOENT;
                        e->field = "devices";
                        e->index = (ssize_t) i;
                        snprintf(e->message, sizeof(e->message), "'devices' item %zu: no such device%s%s%s.", i,
                                 spec ? " '" : "", spec ?: "", spec ? "'" : "");
                        return -ENOENT;
                }
                for (size_t k = 0; k < s->n_device_ids; k++)
                        if (s->device_ids[k] == d->id) {
                                json_decref(ids);
                                return spec_fail(e, -EINVAL, "devices", "'devices' names device %" PRIu64 " twice.",
                                                 d->id);
                        }
                s->device_ids[s->n_device_ids++] = d->id;
                json_array_append_new(ids, json_integer((json_int_t) d->id));
        }
        s->targets = json_pack("{s:o}", "devices", ids);
        return s->targets ? 0 : spec_fail(e, -ENOMEM, NULL, "Out of memory.");
}

/* mesh_path "direct" takes each mesh target over a link of its own: its
 * direct device.  A target without one is reached only by its
 * Distributor. */
static int refuse_direct_mesh(struct manager *m, const struct rollout_spec *s, struct engine_error *e) {
        size_t n = s->policy.has_filter ? m->n_devices : s->n_device_ids;

        for (size_t i = 0; i < n; i++) {
                const struct device *d =
                        s->policy.has_filter ? m->devices[i] : manager_find_device(m, s->device_ids[i]);
                struct rollout_candidate c;
                bool matches = true;

                if (!d || !d->mesh || rollout_mesh_direct_device(m, d))
                        continue;
                if (s->policy.has_filter) {
                        if (rollout_candidate_of(m, d, &c) < 0)
                                continue;
                        matches = rollout_filter_matches(&s->policy.filter, &c);
                        rollout_candidate_done(&c);
                }
                if (matches)
                        return spec_fail(e, -EINVAL, "mesh_path",
                                         "'mesh_path' \"direct\": device %" PRIu64 " is a mesh target with no "
                                         "direct connection (only its Distributor, device %" PRIu64
                                         ", reaches it; name its direct device, or use \"auto\" or "
                                         "\"distributor\").",
                                         d->id, d->mesh->distributor_id);
        }
        return 0;
}

int rollout_spec_parse(struct manager *m, const json_t *body, uint64_t now_usec, struct rollout_spec *ret,
                       struct engine_error *e) {
        static const char *const known[] = { "image", "name", "mode", "targets", "schedule", "policy", NULL };
        struct rollout_spec s = {};
        _cleanup_free_ char *reason = NULL;
        struct image *img;
        json_t *v;
        int r;

        *e = (struct engine_error) { .index = -1 };
        if (!json_is_object(body))
                return spec_fail(e, -EINVAL, NULL, "A rollout is described by a JSON object.");
        r = check_keys(body, "rollout", known, e);
        if (r < 0)
                return r;

        v = json_object_get(body, "image");
        if (!json_is_string(v))
                return spec_fail(e, -EINVAL, "image", "'image' is required: an image id or a unique prefix of it.");
        r = engine_image_find(m, "image", json_string_value(v), &img, e);
        if (r < 0)
                return r;
        memcpy(s.image_id, img->id, sizeof(s.image_id));
        s.image_size = img->file_size;

        v = json_object_get(body, "name");
        if (v && !json_is_null(v)) {
                if (!json_is_string(v) || device_name_check(json_string_value(v)) < 0)
                        return spec_fail(e, -EINVAL, "name",
                                         "'name' must be at most %d bytes of UTF-8 without control characters.",
                                         DEVICE_NAME_MAX);
                if (json_string_length(v) > 0 && !(s.name = strdup(json_string_value(v))))
                        return spec_fail(e, -ENOMEM, NULL, "Out of memory.");
        }

        s.mode = m->config->job_mode;
        v = json_object_get(body, "mode");
        if (v && !json_is_null(v)) {
                int mode = json_is_string(v) ? smp_update_mode_from_string(json_string_value(v)) : -EINVAL;
                if (mode < 0) {
                        rollout_spec_done(&s);
                        return spec_fail(e, -EINVAL, "mode",
                                         "'mode' must be one of test-and-confirm, confirm-only, test-only, "
                                         "upload-only.");
                }
                s.mode = (enum smp_update_mode) mode;
        }

        rollout_policy_init(&s.policy);
        v = json_object_get(body, "policy");
        if (v && !json_is_null(v)) {
                r = rollout_policy_from_json(v, &s.policy, &reason);
                if (r < 0) {
                        rollout_spec_done(&s);
                        return spec_fail(e, -EINVAL, "policy", "'policy': %s.", reason ?: "invalid");
                }
        }
        s.policy_json = rollout_policy_to_json(&s.policy);

        r = parse_targets(m, json_object_get(body, "targets"), &s, e);
        if (r >= 0)
                r = parse_schedule(json_object_get(body, "schedule"), &s.schedule, &s.schedule_json, e);
        if (r >= 0 && !s.policy_json)
                r = spec_fail(e, -ENOMEM, NULL, "Out of memory.");
        if (r >= 0 && s.schedule.deadline_usec && s.schedule.deadline_usec <= now_usec)
                r = spec_fail(e, -EINVAL, "deadline", "'deadline' is in the past.");
        if (r >= 0 && s.policy.mesh_path == ROLLOUT_MESH_PATH_DIRECT)
                r = refuse_direct_mesh(m, &s, e);
        if (r < 0) {
                rollout_spec_done(&s);
                return r;
        }
        s.policy.staging = s.schedule.staging;
        *ret = s;
        return 0;
}

/* ---- changes ---- */

void rollout_changed(struct rollout *r) {
        r->dirty = true;
        r->updated_usec = now_realtime_usec();
}

void rollout_member_changed(struct rollout *r, struct rollout_member *mem) {
        mem->dirty = true;
        mem->updated_usec = now_realtime_usec();
        r->updated_usec = mem->updated_usec;
        manager_emit_rollout(r->manager, MANAGER_EVENT_ROLLOUT_MEMBER, r, mem->device_id);
}

/* ---- JSON ---- */

void rollout_count_states(const struct rollout *r, uint32_t counts[static _ROLLOUT_MEMBER_STATE_MAX]) {
        memset(counts, 0, sizeof(uint32_t) * _ROLLOUT_MEMBER_STATE_MAX);
        for (size_t i = 0; i < r->n_members; i++)
                if ((unsigned) r->members[i].state < _ROLLOUT_MEMBER_STATE_MAX)
                        counts[r->members[i].state]++;
}

void rollout_bytes(const struct rollout *r, uint64_t *ret_sent, uint64_t *ret_total) {
        uint64_t sent = 0, total = 0;

        for (size_t i = 0; i < r->n_members; i++) {
                const struct rollout_member *mem = &r->members[i];
                if (mem->state == ROLLOUT_MEMBER_SKIPPED)
                        continue;
                total += r->image_size;
                if (mem->state == ROLLOUT_MEMBER_SUCCEEDED || mem->state == ROLLOUT_MEMBER_SOAKING ||
                    mem->state == ROLLOUT_MEMBER_STAGED || mem->state == ROLLOUT_MEMBER_ACTIVATING ||
                    mem->state == ROLLOUT_MEMBER_REBOOTING || mem->state == ROLLOUT_MEMBER_VERIFYING)
                        sent += r->image_size;
                else
                        sent += MIN(mem->bytes_sent, r->image_size);
        }
        *ret_sent = sent;
        *ret_total = total;
}

static json_t *json_time(uint64_t usec) {
        char buf[64];
        struct tm tm;
        time_t sec;

        if (usec == 0)
                return json_null();
        sec = (time_t) (usec / 1000000u);
        if (!gmtime_r(&sec, &tm) || strftime(buf, sizeof(buf) - 8, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
                return json_null();
        snprintf(buf + strlen(buf), 8, ".%03uZ", (unsigned) (usec / 1000u % 1000u));
        return json_string(buf);
}

/* A mesh target's path: "distributor", "direct", or null (none yet, or
 * no mesh target). */
static json_t *rollout_member_path_json(const struct rollout_member *mem) {
        switch (mem->path) {
        case ROLLOUT_MEMBER_PATH_DISTRIBUTOR:
                return json_string("distributor");
        case ROLLOUT_MEMBER_PATH_DIRECT:
                return json_string("direct");
        default:
                return json_null();
        }
}

json_t *rollout_member_to_json(const struct rollout_member *mem) {
        return json_pack(
                "{s:I, s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:I, s:o, s:I, s:o, s:o}", "device",
                (json_int_t) mem->device_id, "wave", mem->wave == UINT32_MAX ? json_null() : json_integer(mem->wave),
                "order", mem->order_key == UINT32_MAX ? json_null() : json_integer(mem->order_key), "state",
                rollout_member_state_to_string(mem->state) ?: "pending", "reason",
                mem->reason[0] ? json_string(mem->reason) : json_null(), "job",
                mem->job_id ? json_integer((json_int_t) mem->job_id) : json_null(), "distribution",
                mem->distribution_id ? json_integer((json_int_t) mem->distribution_id) : json_null(), "mesh_phase",
                mem->has_mesh_phase ? json_string(smp_mesh_dfu_phase_to_string(mem->mesh_phase) ?: "unknown")
                                    : json_null(),
                "attempts", (json_int_t) mem->attempts, "next_attempt", json_time(mem->next_attempt_usec), "bytes_sent",
                (json_int_t) mem->bytes_sent, "updated", json_time(mem->updated_usec), "path",
                rollout_member_path_json(mem));
}

/* The stored schedule, with times as RFC 3339 for clients. */
static json_t *schedule_for_clients(const struct rollout *r) {
        json_t *o = json_deep_copy(r->schedule_json);

        if (!o)
                return json_null();
        json_object_set_new(o, "start_at", json_time(r->schedule.start_at_usec));
        json_object_set_new(o, "deadline", json_time(r->schedule.deadline_usec));
        return o;
}

json_t *rollout_to_json(const struct rollout *r) {
        uint32_t counts[_ROLLOUT_MEMBER_STATE_MAX];
        uint64_t sent, total;
        json_t *c, *failures, *o, *mesh = NULL;

        rollout_count_states(r, counts);
        rollout_bytes(r, &sent, &total);
        c = json_object();
        failures = json_array();
        for (unsigned i = 0; c && i < _ROLLOUT_MEMBER_STATE_MAX; i++)
                json_object_set_new(c, rollout_member_state_to_string((enum rollout_member_state) i),
                                    json_integer(counts[i]));
        for (size_t i = 0; failures && i < r->n_members; i++) {
                const struct rollout_member *mem = &r->members[i];
                if (mem->state == ROLLOUT_MEMBER_FAILED)
                        json_array_append_new(failures,
                                              json_pack("{s:I, s:s, s:I}", "device", (json_int_t) mem->device_id,
                                                        "reason", mem->reason, "wave", (json_int_t) mem->wave));
        }
        o = json_pack("{s:I, s:o, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:O, s:o, s:O, s:I, s:I, s:o, s:o,"
                      " s:o, s:I, s:I, s:o, s:b, s:f, s:o}",
                      "id", (json_int_t) r->id, "name", r->name ? json_string(r->name) : json_null(), "image",
                      r->image_id, "mode", smp_update_mode_to_string(r->mode), "state",
                      rollout_state_to_string(r->state), "created", json_time(r->created_usec), "started",
                      json_time(r->started_usec), "finished", json_time(r->finished_usec), "updated",
                      json_time(r->updated_usec), "targets", r->targets, "schedule", schedule_for_clients(r), "policy",
                      r->policy_json, "current_wave", (json_int_t) r->current_wave, "waves", (json_int_t) r->n_waves,
                      "error", r->error ? json_string(r->error) : json_null(), "paused_reason",
                      r->paused_reason ? json_string(r->paused_reason) : json_null(), "counts", c ?: json_null(),
                      "bytes_sent", (json_int_t) sent, "bytes_total", (json_int_t) total, "failures",
                      failures ?: json_null(), "activate_now", r->activate_now, "rate", r->rate, "eta",
                      json_time(r->eta_usec));
        /* Mesh targets' progress: their distribution and phase (only
         * when the rollout has some, so other rollouts read as before). */
        for (size_t i = 0; o && i < r->n_members; i++) {
                const struct rollout_member *mem = &r->members[i];
                if (!mem->distribution_id && mem->path != ROLLOUT_MEMBER_PATH_DIRECT)
                        continue;
                if (!mesh)
                        mesh = json_array();
                json_array_append_new(
                        mesh,
                        json_pack("{s:I, s:o, s:o, s:s, s:o, s:o}", "device", (json_int_t) mem->device_id,
                                  "distribution",
                                  mem->distribution_id ? json_integer((json_int_t) mem->distribution_id) : json_null(),
                                  "mesh_phase",
                                  mem->has_mesh_phase
                                          ? json_string(smp_mesh_dfu_phase_to_string(mem->mesh_phase) ?: "unknown")
                                          : json_null(),
                                  "state", rollout_member_state_to_string(mem->state) ?: "pending", "path",
                                  rollout_member_path_json(mem), "job",
                                  mem->path == ROLLOUT_MEMBER_PATH_DIRECT && mem->job_id
                                          ? json_integer((json_int_t) mem->job_id)
                                          : json_null()));
        }
        if (o && mesh)
                json_object_set_new(o, "mesh_members", mesh);
        return o;
}
