/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A device: what the gateway knows of one MCUboot device, identified by
 * its connection string (kept in canonical form, so two spellings of one
 * device are one device).  device.c adds, refreshes, marks absent and
 * forgets devices; probe.c reads what they run.  The daemon never
 * forgets a device by itself.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "device-index.h"
#include "device-slots.h"
#include "model-index.h"
#include "os-info.h"
#include "smpgw/smp-update.h"
#include "smpgwd-limits.h"

struct config;

struct manager;
struct job;
struct probe;
struct smp_discovered;

/* What the gateway knows of a Bluetooth Mesh target (transport "mesh"):
 * only what its Distributor reported (distribution.h). */
struct device_mesh {
        uint64_t distributor_id; /* the device that is its route */
        uint16_t addr;           /* unicast address */
        char fwid[2 * 16 + 1];   /* firmware ID in hex, "" when unknown */
        char version[32];        /* the version it stands for, "" when unknown */
        bool has_phase;
        uint8_t phase, status; /* its last phase and status (mesh-dfu.h) */
        uint64_t updated_usec; /* when the Distributor last told */
        /* The device of the inventory that is the same node over a link
         * of its own (GATT, ...), named by the operator; 0: none, only
         * the Distributor reaches it (doc/mesh-dfu.md, "Two paths"). */
        uint64_t direct_device_id;
};

enum device_state {
        DEVICE_NEW,           /* known, never probed yet */
        DEVICE_ONLINE,        /* answered its last probe or job */
        DEVICE_UNREACHABLE,   /* seen, but the last probe failed */
        DEVICE_ABSENT,        /* not seen for config.absent_after */
        _DEVICE_STATE_MAX,
};

struct device {
        struct manager *manager;
        uint64_t id;                  /* database row id, > 0, never reused */
        char *conn;                   /* connection string, unique; with id, an index key: fixed once attached */
        char transport[16];           /* its scheme: "udp", "ble", ... */
        /* Transport address (may be NULL); points into conn when it is
         * conn after "<transport>:"; set by device_set_address(). */
        char *address;
        char *address_type;           /* BLE "public"/"random", else NULL */
        char *adapter;                /* BLE adapter, else NULL */
        char *name;                   /* may be NULL; device_name_check() holds */
        bool has_rssi;
        int16_t rssi;
        enum device_state state;
        char source[16];              /* "discovery", "rest", "dbus", "config" */
        uint64_t first_seen_usec;     /* CLOCK_REALTIME µs */
        uint64_t last_seen_usec;
        uint64_t last_probe_usec;     /* 0: never */
        bool has_params;              /* mcumgr parameters */
        /* Beside has_params, not after bootloader: a 10,000 device
         * fleet pays every byte of padding 10,000 times. */
        uint8_t smp_version; /* 0 unknown, 1 or 2 */
        /* Runtime, beside smp_version for the same reason: only last_seen
         * moved since the row was written, which the flush writes lazily
         * (device_row_due()). */
        bool seen_dirty;
        uint32_t buf_size, buf_count;
        /* last_seen as the row holds it, in seconds modulo 2^32 (whole
         * seconds suffice for DEVICE_SEEN_WRITE_INTERVAL_USEC, and in the
         * hole after buf_count the device costs no more bytes). */
        uint32_t stored_last_seen_sec;
        char *os_info;                 /* OS info "a" string, may be NULL; set by device_set_os_info() */
        struct os_info_spans os_spans; /* its board and application */
        /* Bootloader name, may be NULL: shared with the devices that
         * report the same (device-strings.h); set by device_set_bootloader(). */
        const char *bootloader;
        char *last_error;             /* the last probe's error, may be NULL */
        /* Its image slots as last read: never NULL, device_slots_none or
         * a list shared with the devices that report the same
         * (device-slots.h); replaced by device_set_slots(), never
         * written through. */
        const struct smp_update_snapshot *slots;
        /* Labels users attach (device_label rows), sorted, distinct, at
         * most DEVICE_LABELS_MAX; written at once when set. */
        char **labels;
        size_t n_labels;
        char *role;               /* NULL, or "mesh-distributor" (distribution.h) */
        struct device_mesh *mesh; /* transport "mesh" only, else NULL */

        /* runtime, not stored */
        size_t path_mtu;              /* largest packet the last upload found the path carries, 0: unknown */
        struct probe *probe;          /* a probe in progress */
        struct job *job;              /* the job whose attempt runs on it (holds a slot), if any */
        /* Its unfinished job (queued, running, retry-wait), if any: a
         * link the manager keeps (manager_attach_job(), job_set_state()).
         * A device has one at most, as job_create() refuses a second; a
         * database from before that rule may hold more, which
         * n_unfinished_jobs counts so the link moves on to the next. */
        struct job *unfinished_job;
        unsigned n_unfinished_jobs;
        bool probe_queued; /* waiting for a free probe slot (config.max_probes) */
        bool role_checked; /* a probe asked whether it is a Mesh Distributor */
        bool dirty;
        bool slots_dirty;
};

/* Mesh targets' connection strings (mesh-conn.c says why the daemon
 * reads them, not libsmpgw): "mesh:<distributor id>/<unicast address>",
 * the address in decimal or 0x hex; canonical "mesh:7/0x0100". */
#define MESH_CONN_PREFIX "mesh:"
#define DEVICE_TRANSPORT_MESH "mesh"
bool mesh_conn_is_mesh(const char *conn);
/* -EINVAL with a sentence (free() it) in *ret_reason (may be NULL). */
int mesh_conn_parse(const char *conn, uint64_t *ret_distributor, uint16_t *ret_addr, char **ret_reason);
int mesh_conn_format(uint64_t distributor_id, uint16_t addr, char *buf, size_t size);

/* NULL is fine; the device must not be attached any more. */
struct device *device_free(struct device *d);

struct device *manager_find_device(struct manager *m, uint64_t id);
/* By connection string, written any way that has the same canonical form
 * as the device's (doc/connection-strings.md). */
struct device *manager_find_device_by_conn(struct manager *m, const char *conn);
/* Adds a device by its connection string and probes it: the one door
 * every connection string (REST, D-Bus, configuration) goes through.  The
 * string is validated by libsmpgw and kept in canonical form, so two ways
 * of writing one device find the same device.  -EINVAL: not a valid
 * connection string; -ENOENT: no usable plugin for its scheme (both with
 * a sentence in *ret_reason, which may be NULL; free() it); -EEXIST: known
 * already (*ret is then the existing device); -E2BIG: config.max_devices. */
int manager_add_device(struct manager *m, const char *conn, const char *source, struct device **ret,
                       char **ret_reason);
/* Deletes the device and its history.  -EBUSY while a job is queued or
 * running for it (cancel the job first). */
int manager_forget_device(struct manager *m, struct device *d);
/* Keep d->unfinished_job: j (unfinished) joins d, or leaves it
 * (finished, removed). */
void device_link_job(struct device *d, struct job *j);
void device_unlink_job(struct device *d, struct job *j);

/* A device's name is a label for people: at most DEVICE_NAME_MAX bytes of
 * UTF-8, no control characters (C0, DEL, C1, line separators, bidi
 * overrides: they would rewrite a table or a terminal line around it).
 * A user may set it; until then it defaults to the name the device
 * advertises over BLE or, failing that, its OS node name.  0 or -EINVAL. */
int device_name_check(const char *name);
/* Sets the name a user gives; NULL or "" removes it (the default applies
 * again from the next probe or BLE sighting).  Records, announces and
 * flushes a change.  1 changed, 0 the same, -EINVAL (device_name_check()),
 * -ENOMEM. */
int device_set_name(struct device *d, const char *name);
/* Takes candidate (a BLE name, an OS node name) as the name of a device
 * that has none, cut to DEVICE_NAME_MAX at a character boundary; ignores
 * "", Zephyr's "unknown" and strings that are no valid name.  Marks the
 * device dirty; announcing is the caller's.  true when it took it. */
bool device_default_name(struct device *d, const char *candidate);
/* A label: [a-z0-9][a-z0-9._-]{0,31}.  0 or -EINVAL. */
int device_label_check(const char *label);
/* Whether d carries label. */
bool device_has_label(const struct device *d, const char *label);
/* Replaces d's labels (each checked, at most DEVICE_LABELS_MAX after
 * duplicates are dropped), writes them at once, records and announces a
 * change.  1 changed, 0 the same, -EINVAL (a label, *ret_index says
 * which), -E2BIG (too many), -ENOMEM, or the database's error (nothing
 * changed then). */
int device_set_labels(struct device *d, const char *const *labels, size_t n, size_t *ret_index);
/* Replaces d's slot list by (the shared copy of) snap; d->manager's
 * table holds it.  Marking it dirty or telling anyone is the caller's.
 * 0, or -ENOMEM (d keeps its list). */
int device_set_slots(struct device *d, const struct smp_update_snapshot *snap);
/* The bootloader name: the first len bytes of s, up to a NUL; NULL: none.
 * -ENOMEM leaves the one it had. */
int device_set_bootloader(struct device *d, const char *s, size_t len);
/* Replaces the device's OS info answer with os_info (taken, may be NULL)
 * and finds its board and application once. */
void device_set_os_info(struct device *d, char *os_info);
/* The address (NULL: none), conn and transport set before; *changed
 * (may be NULL) set when it changed. */
int device_set_address(struct device *d, const char *address, bool *changed);
const char *device_state_to_string(enum device_state s);
int device_state_from_string(const char *s);
void device_set_state(struct device *d, enum device_state s);
/* Seen again: moves last_seen, which alone does not make the row dirty
 * (device_row_due()). */
void device_mark_seen(struct device *d);

/* How stale the stored last_seen of a device that is only seen again may
 * get: its row is rewritten for that alone once the in-memory last_seen
 * is this far ahead of the stored one.  Without it every answer of every
 * device rewrites its row at the next flush, thousands of rows every
 * flush_interval in a large fleet (flush time on the loop, SD card
 * wear).  Measured from the stored value, so a fleet found in one
 * discovery comes due again at the pace the discovery found it, and up
 * to a quarter early by id (device_spread_usec()), so not in one flush
 * even when that discovery took a few seconds.  After a crash the stored last_seen may be this old; a
 * clean stop writes them all (manager_stop()). */
#define DEVICE_SEEN_WRITE_INTERVAL_SEC 300u
#define DEVICE_SEEN_WRITE_INTERVAL_USEC (DEVICE_SEEN_WRITE_INTERVAL_SEC * UINT64_C(1000000))
/* The device's row must be written by this flush: it is dirty, or its
 * last_seen is pending and due (or all: a clean stop writes every one). */
bool device_row_due(const struct device *d, bool all);
/* The row was written: what it holds now. */
void device_row_written(struct device *d);

/* Discovery found a device: adds it, or refreshes a known one. */
void device_seen(struct manager *m, const struct smp_discovered *found);
/* Marks the devices not seen for config.absent_after absent, and probes
 * the ones due (device_check_due()). */
void devices_check_absent(struct manager *m);

/* Re-probes are spread: a device is due up to a quarter of the period
 * early, by a share fixed by its id.  Devices added or probed together (a
 * discovery round, a burst of adds) would otherwise all be due again at
 * the same check, the whole fleet at once, every period. */
#define DEVICE_SPREAD_DIVISOR 4u
/* The device's share of period_usec: [0, period_usec / DEVICE_SPREAD_DIVISOR). */
uint64_t device_spread_usec(uint64_t id, uint64_t period_usec);
/* config.reprobe (less the spread) has passed since the last probe. */
bool device_reprobe_due(const struct device *d, const struct config *c, uint64_t now_usec);

enum device_check {
        DEVICE_CHECK_NONE,
        DEVICE_CHECK_PROBE,  /* probe it now */
        DEVICE_CHECK_ABSENT, /* mark it absent */
};
/* What devices_check_absent() does with d at now_usec (CLOCK_REALTIME). */
enum device_check device_check_due(const struct device *d, const struct config *c, uint64_t now_usec);

/* ---- probes (probe.c) ---- */

/* Queues a probe (parameters, OS info, image state).  -EBUSY when a
 * probe or a job is running on it; -EMEDIUMTYPE for a mesh target (no
 * link reaches it: its Distributor reports on it). */
int device_probe(struct device *d);
void device_probe_cancel(struct device *d);
/* Starts queued probes while config.max_probes allows. */
void probes_schedule(struct manager *m);

/* A job talks to it (holds its slot), or waits for it to come back from
 * the reset: probes and the absence check leave it alone. */
bool device_busy_with_job(const struct device *d);
