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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "distribution.h"
#include "db.h"
#include "device-strings.h"
#include "log.h"
#include "manager.h"
#include "smpgw/smp-context.h"
#include "utf8.h"
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

static void strv_free_n(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

/* The connection string after "<transport>:", which is the address of
 * most devices ("udp:192.0.2.1:1337", "ble:C0:DE:00:00:00:01"): then
 * the address points there instead of being a copy, 32 bytes of heap a
 * device (0.3 MiB for 10,000).  NULL when the string does not start
 * with the transport. */
static char *conn_tail(const struct device *d) {
        size_t n = strlen(d->transport);
        if (!d->conn || n == 0 || strncmp(d->conn, d->transport, n) != 0 || d->conn[n] != ':')
                return NULL;
        return d->conn + n + 1;
}

static void address_free(struct device *d) {
        if (d->address != conn_tail(d))
                free(d->address);
        d->address = NULL;
}

int device_set_address(struct device *d, const char *address, bool *changed) {
        if ((!d->address && !address) || (d->address && address && streq(d->address, address)))
                return 0;
        char *tail = conn_tail(d), *value = NULL;
        if (address && tail && streq(tail, address))
                value = tail;
        else if (address) {
                value = strdup(address);
                if (!value)
                        return -ENOMEM;
        }
        address_free(d);
        d->address = value;
        if (changed)
                *changed = true;
        return 0;
}

struct device *device_free(struct device *d) {
        if (!d)
                return NULL;
        device_probe_cancel(d);
        address_free(d); /* before conn, which it may point into */
        free(d->conn);
        free(d->address_type);
        free(d->adapter);
        free(d->name);
        free(d->os_info);
        device_string_release(d->bootloader);
        free(d->last_error);
        strv_free_n(d->labels, d->n_labels);
        device_slots_release(d->slots);
        free(d->role);
        free(d->mesh);
        free(d);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct device *, device_free);

struct device *manager_find_device(struct manager *m, uint64_t id) {
        /* m->devices is in id order (manager_attach_device()). */
        size_t lo = 0, hi = m->n_devices;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                uint64_t at = m->devices[mid]->id;
                if (at == id)
                        return m->devices[mid];
                if (at < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

static struct device *find_device_by_exact_conn(struct manager *m, const char *conn) {
        return device_conn_index_find(&m->devices_by_conn, conn);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_conn *, smp_conn_unref);

struct device *manager_find_device_by_conn(struct manager *m, const char *conn) {
        struct device *d = find_device_by_exact_conn(m, conn);
        if (d || !m->smp)
                return d;
        if (mesh_conn_is_mesh(conn)) {
                uint64_t dist;
                uint16_t addr;
                char canon[64];
                if (mesh_conn_parse(conn, &dist, &addr, NULL) < 0 ||
                    mesh_conn_format(dist, addr, canon, sizeof(canon)) < 0)
                        return NULL;
                return find_device_by_exact_conn(m, canon);
        }
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

int device_set_slots(struct device *d, const struct smp_update_snapshot *snap) {
        const struct smp_update_snapshot *shared = device_slots_share(&d->manager->slots_shared, snap);

        if (!shared)
                return -ENOMEM;
        device_slots_release(d->slots);
        d->slots = shared;
        return 0;
}

void device_set_os_info(struct device *d, char *os_info) {
        free(d->os_info);
        d->os_info = os_info;
        os_info_locate(os_info, &d->os_spans);
}

int device_set_bootloader(struct device *d, const char *s, size_t len) {
        const char *shared = NULL;

        if (s) {
                shared = device_string_share(&d->manager->strings_shared, s, strnlen(s, len));
                if (!shared)
                        return -ENOMEM;
        }
        device_string_release(d->bootloader);
        d->bootloader = shared;
        return 0;
}

void device_mark_seen(struct device *d) {
        d->last_seen_usec = now_realtime_usec();
        d->seen_dirty = true;
}

bool device_row_due(const struct device *d, bool all) {
        if (d->dirty)
                return true;
        if (!d->seen_dirty)
                return false;
        /* Modulo 2^32 s: a realtime clock stepped back below the stored
         * value comes out huge, so the row is written rather than left
         * ahead until the clock catches up. */
        uint32_t behind = (uint32_t) (d->last_seen_usec / UINT64_C(1000000)) - d->stored_last_seen_sec;
        /* Up to a quarter early by a share fixed by its id, as for
         * re-probes: a fleet found within a few seconds (a fast UDP
         * round) would otherwise come due in the same one or two flushes. */
        uint64_t early = device_spread_usec(d->id, DEVICE_SEEN_WRITE_INTERVAL_USEC) / UINT64_C(1000000);
        return all || behind >= DEVICE_SEEN_WRITE_INTERVAL_SEC - early;
}

void device_row_written(struct device *d) {
        d->dirty = d->seen_dirty = false;
        d->stored_last_seen_sec = (uint32_t) (d->last_seen_usec / UINT64_C(1000000));
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
                size_t len = utf8_decode(p + i, n - i, &c);
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

int device_label_check(const char *label) {
        size_t n;

        if (!label || !((label[0] >= 'a' && label[0] <= 'z') || (label[0] >= '0' && label[0] <= '9')))
                return -EINVAL;
        for (n = 1; label[n]; n++) {
                char c = label[n];
                if (n >= DEVICE_LABEL_MAX)
                        return -EINVAL;
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
                        return -EINVAL;
        }
        return 0;
}

bool device_has_label(const struct device *d, const char *label) {
        for (size_t i = 0; i < d->n_labels; i++)
                if (streq(d->labels[i], label))
                        return true;
        return false;
}

static int label_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int device_set_labels(struct device *d, const char *const *labels, size_t n, size_t *ret_index) {
        _cleanup_free_ char **sorted = NULL;
        char **copy = NULL;
        size_t k = 0;
        int r;

        for (size_t i = 0; i < n; i++)
                if (device_label_check(labels[i]) < 0) {
                        if (ret_index)
                                *ret_index = i;
                        return -EINVAL;
                }
        sorted = calloc(n + 1, sizeof(char *));
        if (!sorted)
                return -ENOMEM;
        memcpy(sorted, labels, n * sizeof(char *));
        qsort(sorted, n, sizeof(char *), label_cmp);
        for (size_t i = 0; i < n; i++)
                if (k == 0 || !streq(sorted[k - 1], sorted[i]))
                        sorted[k++] = sorted[i];
        if (k > DEVICE_LABELS_MAX)
                return -E2BIG;

        if (k == d->n_labels) {
                bool same = true;
                for (size_t i = 0; i < k && same; i++)
                        same = streq(sorted[i], d->labels[i]);
                if (same)
                        return 0;
        }

        copy = calloc(k + 1, sizeof(char *));
        if (!copy)
                return -ENOMEM;
        for (size_t i = 0; i < k; i++)
                if (!(copy[i] = strdup(sorted[i]))) {
                        strv_free_n(copy, i);
                        return -ENOMEM;
                }
        /* The labels are a user's word: written now, not at the next
         * flush, and only taken when the write succeeded. */
        r = d->manager->db ? db_device_labels_set(d->manager->db, d->id, (const char *const *) copy, k) : 0;
        if (r < 0) {
                strv_free_n(copy, k);
                return r;
        }
        strv_free_n(d->labels, d->n_labels);
        d->labels = copy;
        d->n_labels = k;
        log_device(LOG_INFO, d, "Labels set (%zu)", k);
        manager_history(d->manager, "device-labels", d, NULL, NULL, "%zu label%s", k, k == 1 ? "" : "s");
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

static int device_new_from(struct manager *m, const char *conn, const char *scheme, const char *address,
                           const char *source, struct device **ret) {
        if (m->n_devices >= m->config->max_devices)
                return -E2BIG;

        _cleanup_(device_freep) struct device *d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->manager = m;
        d->slots = &device_slots_none;
        d->conn = strdup(conn);
        if (!d->conn)
                return -ENOMEM;
        snprintf(d->transport, sizeof(d->transport), "%s", scheme);
        snprintf(d->source, sizeof(d->source), "%s", source);
        /* The address is the connection string without options. */
        int r = device_set_address(d, address, NULL);
        if (r < 0)
                return r;
        d->first_seen_usec = d->last_seen_usec = now_realtime_usec();
        d->state = DEVICE_NEW;
        *ret = TAKE_PTR(d);
        return 0;
}

static int device_new(struct manager *m, const struct smp_conn *c, const char *source, struct device **ret) {
        return device_new_from(m, smp_conn_get_string(c), smp_conn_get_scheme(c), smp_conn_get_address(c), source, ret);
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
        if (d->mesh) {
                r = db_mesh_target_save(m->db, d);
                if (r < 0) {
                        manager_detach_device(m, d);
                        (void) db_device_delete(m->db, d->id);
                        return r;
                }
        }
        log_device(LOG_INFO, d, "New device (%s)", d->source);
        manager_history(m, "device-added", d, NULL, NULL, "added by %s", d->source);
        manager_emit(m, MANAGER_EVENT_DEVICE_ADDED, d, NULL, NULL);
        (void) device_probe(d);
        return 0;
}

/* A mesh target: the daemon's own grammar, no plugin (mesh-conn.c);
 * its Distributor must be known. */
static int mesh_target_add(struct manager *m, const char *conn, const char *source, struct device **ret,
                           char **ret_reason) {
        uint64_t dist;
        uint16_t addr;
        char canon[64], address[64];
        struct device *d;
        int r;

        r = mesh_conn_parse(conn, &dist, &addr, ret_reason);
        if (r < 0)
                return r;
        if (!manager_find_device(m, dist)) {
                if (ret_reason && asprintf(ret_reason, "no device %" PRIu64 " to be the Distributor", dist) < 0)
                        *ret_reason = NULL;
                return -EINVAL;
        }
        r = mesh_conn_format(dist, addr, canon, sizeof(canon));
        if (r < 0)
                return r;
        d = find_device_by_exact_conn(m, canon);
        if (d) {
                if (ret)
                        *ret = d;
                return -EEXIST;
        }
        snprintf(address, sizeof(address), "%s", canon + strlen(MESH_CONN_PREFIX));
        r = device_new_from(m, canon, DEVICE_TRANSPORT_MESH, address, source, &d);
        if (r < 0)
                return r;
        d->mesh = calloc(1, sizeof(*d->mesh));
        if (!d->mesh) {
                device_free(d);
                return -ENOMEM;
        }
        d->mesh->distributor_id = dist;
        d->mesh->addr = addr;
        d->mesh->updated_usec = now_realtime_usec();
        r = device_register(m, d);
        if (r < 0) {
                device_free(d);
                return r;
        }
        if (ret)
                *ret = d;
        return 0;
}

int manager_add_device(struct manager *m, const char *conn, const char *source, struct device **ret,
                       char **ret_reason) {
        _cleanup_(smp_conn_unrefp) struct smp_conn *c = NULL;
        struct device *d;
        int r;

        if (mesh_conn_is_mesh(conn))
                return mesh_target_add(m, conn, source, ret, ret_reason);
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
                        (void) device_set_address(d, found->address, &changed);
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
            device_reprobe_due(d, m->config, now))
                (void) device_probe(d);
        if (changed) {
                d->dirty = true;
                manager_emit(m, MANAGER_EVENT_DEVICE_CHANGED, d, NULL, NULL);
        }
}

uint64_t device_spread_usec(uint64_t id, uint64_t period_usec) {
        /* splitmix64's finalizer: consecutive ids land far apart. */
        uint64_t x = id + 0x9e3779b97f4a7c15ull;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        x ^= x >> 31;
        uint64_t window = period_usec / DEVICE_SPREAD_DIVISOR;
        return window ? x % window : 0;
}

/* Whether more than period (less the device's spread) has passed since t. */
static bool older_than(const struct device *d, uint64_t now, uint64_t t, uint64_t period_usec) {
        return now - t > period_usec - device_spread_usec(d->id, period_usec);
}

bool device_reprobe_due(const struct device *d, const struct config *c, uint64_t now) {
        return older_than(d, now, d->last_probe_usec, c->reprobe_usec);
}

enum device_check device_check_due(const struct device *d, const struct config *c, uint64_t now) {
        uint64_t limit = c->absent_after_usec;

        /* A mesh target has no link: its Distributor reports on it. */
        if (device_busy_with_job(d) || d->probe || d->probe_queued || d->mesh)
                return DEVICE_CHECK_NONE;
        if (d->state == DEVICE_ABSENT)
                /* Discovery brings BLE and ranged devices back by itself;
                 * a device added by its address is only back if we ask, so
                 * ask at the reprobe pace. */
                return device_reprobe_due(d, c, now) ? DEVICE_CHECK_PROBE : DEVICE_CHECK_NONE;
        if (!older_than(d, now, d->last_seen_usec, limit))
                /* Present devices are looked at again now and then (a
                 * device updated by someone else, a reboot). */
                return d->state == DEVICE_ONLINE && device_reprobe_due(d, c, now) ? DEVICE_CHECK_PROBE
                                                                                  : DEVICE_CHECK_NONE;
        /* Not seen for (nearly) too long.  IP devices are only "seen" when
         * they answer, so ask once more before giving up on them; a failed
         * probe after absent_after marks them absent. */
        if (now - d->last_probe_usec > limit / 2)
                return DEVICE_CHECK_PROBE;
        return now - d->last_seen_usec > limit ? DEVICE_CHECK_ABSENT : DEVICE_CHECK_NONE;
}

bool device_busy_with_job(const struct device *d) {
        return d->job || (d->unfinished_job && d->unfinished_job->state == JOB_REBOOTING);
}

void devices_check_absent(struct manager *m) {
        uint64_t now = now_realtime_usec();

        for (size_t i = 0; i < m->n_devices; i++) {
                struct device *d = m->devices[i];
                switch (device_check_due(d, m->config, now)) {
                case DEVICE_CHECK_PROBE:
                        (void) device_probe(d);
                        break;
                case DEVICE_CHECK_ABSENT:
                        device_set_state(d, DEVICE_ABSENT);
                        manager_emit(m, MANAGER_EVENT_DEVICE_CHANGED, d, NULL, NULL);
                        break;
                case DEVICE_CHECK_NONE:
                        break;
                }
        }
}

int manager_forget_device(struct manager *m, struct device *d) {
        int r;

        if (d->job || d->unfinished_job || distribution_uses_device(m, d))
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
