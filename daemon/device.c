/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Devices (device.h): adding them (by connection string or because
 * discovery found them), noticing them again, marking the ones gone
 * absent, naming them, forgetting them on request.  Devices are
 * identified by their connection string; the daemon never deletes one by
 * itself.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "db.h"
#include "log.h"
#include "manager.h"
#include "smpgw/smp-context.h"
#include "util.h"

static const char *const device_state_table[_DEVICE_STATE_MAX] = {
        [DEVICE_NEW] = "new",
        [DEVICE_ONLINE] = "online",
        [DEVICE_UNREACHABLE] = "unreachable",
        [DEVICE_ABSENT] = "absent",
};

const char *device_state_to_string(enum device_state s) {
        return s < _DEVICE_STATE_MAX ? device_state_table[s] : NULL;
}

int device_state_from_string(const char *s) {
        for (int i = 0; i < _DEVICE_STATE_MAX; i++)
                if (s && strcmp(s, device_state_table[i]) == 0)
                        return i;
        return -EINVAL;
}

struct device *device_free(struct device *d) {
        if (!d)
                return NULL;
        device_probe_cancel(d);
        free(d->conn);
        free(d->address);
        free(d->address_type);
        free(d->adapter);
        free(d->name);
        free(d->os_info);
        free(d->bootloader);
        free(d->last_error);
        free(d);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct device *, device_free);

struct device *manager_find_device(struct manager *m, uint64_t id) {
        struct device *d;

        HASH_FIND(hh_id, m->devices_by_id, &id, sizeof(id), d);
        return d;
}

static struct device *find_device_by_exact_conn(struct manager *m, const char *conn) {
        struct device *d;

        HASH_FIND(hh_conn, m->devices_by_conn, conn, strlen(conn), d);
        return d;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_conn *, smp_conn_unref);

struct device *manager_find_device_by_conn(struct manager *m, const char *conn) {
        struct device *d = find_device_by_exact_conn(m, conn);
        if (d || !m->smp)
                return d;
        /* Any other way of writing a known device's string: devices are
         * kept by the canonical form. */
        _cleanup_(smp_conn_unrefp) struct smp_conn *c = NULL;
        if (smp_context_parse_conn(m->smp, conn, &c, NULL) < 0 || streq(smp_conn_get_string(c), conn))
                return NULL;
        return find_device_by_exact_conn(m, smp_conn_get_string(c));
}

void device_link_job(struct device *d, struct job *j) {
        d->n_unfinished_jobs++;
        /* The newest: jobs are attached oldest first. */
        d->unfinished_job = j;
}

void device_unlink_job(struct device *d, struct job *j) {
        struct manager *m = d->manager;

        if (d->n_unfinished_jobs > 0)
                d->n_unfinished_jobs--;
        if (d->unfinished_job != j)
                return;
        d->unfinished_job = NULL;
        /* Only a database from before job_create() refused a second job
         * gets here with more to link: then look for the next. */
        for (size_t i = m->n_jobs; d->n_unfinished_jobs > 0 && i > 0; i--) {
                struct job *other = m->jobs[i - 1];
                if (other != j && other->device == d && !job_is_finished(other)) {
                        d->unfinished_job = other;
                        break;
                }
        }
}

void device_set_state(struct device *d, enum device_state s) {
        if (d->state == s)
                return;
        log_device_state(s == DEVICE_ONLINE ? LOG_INFO : LOG_NOTICE, d, "%s → %s",
                         device_state_to_string(d->state), device_state_to_string(s));
        manager_history(d->manager, "device-state", d, NULL, NULL, "%s → %s", device_state_to_string(d->state),
                        device_state_to_string(s));
        d->state = s;
        d->dirty = true;
}

void device_mark_seen(struct device *d) {
        d->last_seen_usec = now_realtime_usec();
        d->dirty = true;
}

static int set_str(char **field, const char *value, bool *changed) {
        if ((!*field && !value) || (*field && value && strcmp(*field, value) == 0))
                return 0;
        char *copy = NULL;
        if (value) {
                copy = strdup(value);
                if (!copy)
                        return -ENOMEM;
        }
        free(*field);
        *field = copy;
        *changed = true;
        return 0;
}

/* Decodes one UTF-8 character at s (n bytes left): its length, 0 when
 * it is not well-formed (overlong, a surrogate, past U+10FFFF, cut off). */
static size_t utf8_char(const unsigned char *s, size_t n, uint32_t *ret) {
        uint32_t c;
        size_t len;

        if (s[0] < 0x80) {
                *ret = s[0];
                return 1;
        }
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                len = 2, c = s[0] & 0x1f;
        else if (s[0] >= 0xe0 && s[0] <= 0xef)
                len = 3, c = s[0] & 0x0f;
        else if (s[0] >= 0xf0 && s[0] <= 0xf4)
                len = 4, c = s[0] & 0x07;
        else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                c = (c << 6) | (s[i] & 0x3f);
        }
        if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) || (c >= 0xd800 && c <= 0xdfff))
                return 0;
        *ret = c;
        return len;
}

static bool char_is_control(uint32_t c) {
        return c < 0x20 || (c >= 0x7f && c <= 0x9f) ||    /* C0, DEL, C1 */
               c == 0x2028 || c == 0x2029 ||                /* line and paragraph separators */
               (c >= 0x202a && c <= 0x202e) ||              /* bidi embeddings and overrides */
               (c >= 0x2066 && c <= 0x2069);                /* bidi isolates */
}

/* The length of the longest valid name at the start of s, at most max
 * bytes; *ret_bad when it stops at something no name may hold. */
static size_t name_span(const char *s, size_t max, bool *ret_bad) {
        const unsigned char *p = (const unsigned char *) s;
        size_t n = strlen(s), i = 0;

        *ret_bad = false;
        while (i < n) {
                uint32_t c;
                size_t len = utf8_char(p + i, n - i, &c);
                if (len == 0 || char_is_control(c)) {
                        *ret_bad = true;
                        break;
                }
                if (i + len > max)
                        break;
                i += len;
        }
        return i;
}

int device_name_check(const char *name) {
        bool bad;

        if (!name)
                return -EINVAL;
        return name_span(name, DEVICE_NAME_MAX, &bad) == strlen(name) ? 0 : -EINVAL;
}

int device_set_name(struct device *d, const char *name) {
        bool changed = false;
        int r;

        if (name && !*name)
                name = NULL;
        if (name && device_name_check(name) < 0)
                return -EINVAL;
        r = set_str(&d->name, name, &changed);
        if (r < 0)
                return r;
        if (!changed)
                return 0;
        if (name) {
                log_device(LOG_INFO, d, "Named '%s'", name);
                manager_history(d->manager, "device-name", d, NULL, NULL, "named '%s'", name);
        } else {
                log_device(LOG_INFO, d, "Name removed");
                manager_history(d->manager, "device-name", d, NULL, NULL, "name removed");
        }
        d->dirty = true;
        /* What a user said is not left to the next flush. */
        (void) manager_flush_now(d->manager);
        manager_emit(d->manager, MANAGER_EVENT_DEVICE_CHANGED, d, NULL, NULL);
        return 1;
}

bool device_default_name(struct device *d, const char *candidate) {
        _cleanup_free_ char *name = NULL;
        bool changed = false, bad;
        size_t n;

        if (d->name || !candidate || !*candidate || streq(candidate, "unknown"))
                return false;
        n = name_span(candidate, DEVICE_NAME_MAX, &bad);
        /* A name with junk in it is not cut to its clean part: it is not
         * the device's name then. */
        if (bad || n == 0)
                return false;
        name = strndup(candidate, n);
        if (!name || set_str(&d->name, name, &changed) < 0 || !changed)
                return false;
        log_device(LOG_DEBUG, d, "Named '%s' by default", name);
        d->dirty = true;
        return true;
}

/* libsmpgw's verdict on a connection string: -EINVAL (bad string) or
 * -ENOENT (no usable plugin), with the sentence. */
static int conn_parse(struct manager *m, const char *conn, struct smp_conn **ret, char **ret_reason) {
        int r = smp_context_parse_conn(m->smp, conn, ret, ret_reason);
        if (r == -EINVAL || r == -ENOMEM || r >= 0)
                return r;
        return -ENOENT; /* a plugin that is missing, or present and unusable */
}

static int device_new(struct manager *m, const struct smp_conn *c, const char *source, struct device **ret) {
        if (m->n_devices >= m->config->max_devices)
                return -E2BIG;

        _cleanup_(device_freep) struct device *d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->manager = m;
        d->conn = strdup(smp_conn_get_string(c));
        if (!d->conn)
                return -ENOMEM;
        snprintf(d->transport, sizeof(d->transport), "%s", smp_conn_get_scheme(c));
        snprintf(d->source, sizeof(d->source), "%s", source);
        /* The address is the connection string without options. */
        d->address = strdup(smp_conn_get_address(c));
        if (!d->address)
                return -ENOMEM;
        d->first_seen_usec = d->last_seen_usec = now_realtime_usec();
        d->state = DEVICE_NEW;
        *ret = TAKE_PTR(d);
        return 0;
}

/* Inserts, attaches, announces and probes a new device. */
static int device_register(struct manager *m, struct device *d) {
        int r = db_device_insert(m->db, d);
        if (r < 0) {
                log_warning_errno(r, "Cannot record device %s: %m", d->conn);
                return r;
        }
        r = manager_attach_device(m, d);
        if (r < 0) {
                (void) db_device_delete(m->db, d->id);
                return r;
        }
        log_device(LOG_INFO, d, "New device (%s)", d->source);
        manager_history(m, "device-added", d, NULL, NULL, "added by %s", d->source);
        manager_emit(m, MANAGER_EVENT_DEVICE_ADDED, d, NULL, NULL);
        (void) device_probe(d);
        return 0;
}

int manager_add_device(struct manager *m, const char *conn, const char *source, struct device **ret,
                       char **ret_reason) {
        _cleanup_(smp_conn_unrefp) struct smp_conn *c = NULL;
        struct device *d;
        int r;

        r = conn_parse(m, conn, &c, ret_reason);
        if (r < 0)
                return r;
        d = manager_find_device_by_conn(m, smp_conn_get_string(c));
        if (d) {
                if (ret)
                        *ret = d;
                return -EEXIST;
        }
        r = device_new(m, c, source, &d);
        if (r < 0)
                return r;
        r = device_register(m, d);
        if (r < 0) {
                device_free(d);
                return r;
        }
        if (ret)
                *ret = d;
        return 0;
}

void device_seen(struct manager *m, const struct smp_discovered *found) {
        struct device *d = manager_find_device_by_conn(m, found->conn);
        bool changed = false;
        int r;

        if (!d) {
                _cleanup_(smp_conn_unrefp) struct smp_conn *c = NULL;
                _cleanup_free_ char *why = NULL;
                r = conn_parse(m, found->conn, &c, &why);
                if (r >= 0)
                        r = device_new(m, c, "discovery", &d);
                if (r < 0) {
                        log_debug_errno(r, "Discovered device '%s' not added: %s", found->conn,
                                        why ? why : strerror(-r));
                        return;
                }
                (void) device_default_name(d, found->name);
                if (found->address)
                        (void) set_str(&d->address, found->address, &changed);
                (void) set_str(&d->address_type, found->address_type, &changed);
                (void) set_str(&d->adapter, found->adapter, &changed);
                d->has_rssi = found->has_rssi;
                d->rssi = found->rssi;
                if (device_register(m, d) < 0)
                        device_free(d);
                return;
        }

        device_mark_seen(d);
        /* A name a user gave (or the first one seen) stays. */
        if (device_default_name(d, found->name))
                changed = true;
        if (found->address_type)
                (void) set_str(&d->address_type, found->address_type, &changed);
        if (found->adapter)
                (void) set_str(&d->adapter, found->adapter, &changed);
        /* RSSI wobbles by a few dB all the time; only a real move is a
         * change worth telling observers about. */
        if (found->has_rssi && (!d->has_rssi || abs(found->rssi - d->rssi) >= 6))
                changed = true;
        if (found->has_rssi) {
                d->has_rssi = true;
                d->rssi = found->rssi;
        }
        uint64_t now = now_realtime_usec();
        if (d->state == DEVICE_ABSENT || d->state == DEVICE_UNREACHABLE || d->state == DEVICE_NEW ||
            now - d->last_probe_usec > m->config->reprobe_usec)
                (void) device_probe(d);
        if (changed) {
                d->dirty = true;
                manager_emit(m, MANAGER_EVENT_DEVICE_CHANGED, d, NULL, NULL);
        }
}

bool device_busy_with_job(const struct device *d) {
        return d->job || (d->unfinished_job && d->unfinished_job->state == JOB_REBOOTING);
}

void devices_check_absent(struct manager *m) {
        uint64_t now = now_realtime_usec(), limit = m->config->absent_after_usec;

        for (size_t i = 0; i < m->n_devices; i++) {
                struct device *d = m->devices[i];
                if (device_busy_with_job(d) || d->probe || d->probe_queued)
                        continue;
                if (d->state == DEVICE_ABSENT) {
                        /* Discovery brings BLE and ranged devices back by
                         * itself; a device added by its address is only
                         * back if we ask, so ask at the reprobe pace. */
                        if (now - d->last_probe_usec > m->config->reprobe_usec)
                                (void) device_probe(d);
                        continue;
                }
                if (now - d->last_seen_usec <= limit) {
                        /* Present devices are looked at again now and then
                         * (a device updated by someone else, a reboot). */
                        if (d->state == DEVICE_ONLINE && now - d->last_probe_usec > m->config->reprobe_usec)
                                (void) device_probe(d);
                        continue;
                }
                /* Not seen for too long.  IP devices are only "seen" when
                 * they answer, so ask once more before giving up on them;
                 * a failed probe after absent_after marks them absent. */
                if (now - d->last_probe_usec > limit / 2)
                        (void) device_probe(d);
                else {
                        device_set_state(d, DEVICE_ABSENT);
                        manager_emit(m, MANAGER_EVENT_DEVICE_CHANGED, d, NULL, NULL);
                }
        }
}

int manager_forget_device(struct manager *m, struct device *d) {
        int r;

        if (d->job || d->unfinished_job)
                return -EBUSY;
        device_probe_cancel(d);
        r = db_device_delete(m->db, d->id);
        if (r < 0)
                return r;
        log_device(LOG_INFO, d, "Forgotten");
        /* The database dropped its finished jobs with it (ON DELETE
         * CASCADE); drop them from memory too. */
        for (size_t i = m->n_jobs; i > 0; i--) {
                struct job *j = m->jobs[i - 1];
                if (j->device == d)
                        manager_remove_job(m, j);
        }
        manager_remove_device(m, d);
        return 0;
}
