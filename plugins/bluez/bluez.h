/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The ble transport's parts, shared between its files:
 *
 *   bluez-plugin.c     the descriptor, the connection string syntax, the
 *                      instance (the transport's state in one context)
 *   bluez-bus.c        BlueZ's D-Bus API as we read it: errors to errno,
 *                      properties and managed objects, the discovery filter
 *   bluez-shared.c     the bus connection the links of one loop share, its
 *                      signals and the objects they leave (no
 *                      GetManagedObjects per link)
 *   bluez-adapter.c    connection slots: one Connect in flight per adapter,
 *                      at most max_connections links
 *   bluez-link.c       a link's life: lookup, discovery of an unknown
 *                      device, Connect and its retries, signals, close
 *   bluez-datapath.c   acquire or StartNotify, writing (socket or
 *                      WriteValue), notifications, the send queue
 *   bluez-refusal.c    a Connect that keeps failing: the adapter out of
 *                      links (-EUSERS) or an abort (-ECONNABORTED)
 *   bluez-linger.c     Disconnect on close, with the bus kept until it is
 *                      answered
 *   bluez-discovery.c  the scan (discover_start)
 *
 * See README.md and doc/transport-ble.md for the behaviour.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include <smpgw/smp-frame.h>
#include <smpgw/smp-transport.h>

#include "plugin-util.h"

#define BLUEZ "org.bluez"
#define BLUEZ_ERROR "org.bluez.Error."
#define ADAPTER_IFACE "org.bluez.Adapter1"
#define DEVICE_IFACE "org.bluez.Device1"
#define CHRC_IFACE "org.bluez.GattCharacteristic1"
#define OM_IFACE "org.freedesktop.DBus.ObjectManager"
#define PROPS_IFACE "org.freedesktop.DBus.Properties"

#define SMP_SERVICE_UUID "8d53dc1d-1db7-4cd3-868b-8a527460aa84"
#define SMP_CHRC_UUID "da2e7828-fbce-4e01-ae9e-261174997c48"

#define ATT_MTU_MIN 23u
#define ATT_MTU_MAX 517u
#define ATT_HDR 3u
/* The largest attribute value (Core spec, Vol 3 Part F 3.2.9), and what
 * bluetoothd reads of one datagram on an AcquireWrite socket
 * (gatt-client.c sock_read(): a 512-byte buffer, the rest of a longer
 * one dropped unseen, bluez#1466): a piece is never longer, whatever
 * the ATT MTU (517 gives MTU - 3 = 514). */
#define ATT_VALUE_MAX 512u
#define CONNECT_TIMEOUT_USEC_DEFAULT (10u * 1000000ull)
#define RESOLVE_TIMEOUT_USEC_DEFAULT (10u * 1000000ull)
#define CONNECT_RETRIES 3u
/* Wait this long for Connected=false after an aborted Connect before
 * retrying anyway (the device may never have shown Connected=true). */
#define RETRY_DELAY_USEC (100u * 1000ull)
#define RETRY_WAIT_MAX_USEC (2u * 1000000ull)
/* How long a device found connected at open() may take to show a
 * Disconnect of an earlier client before we use it as it is. */
#define SETTLE_USEC (150u * 1000ull)
#define MAX_CONNECTIONS_DEFAULT 4u
#define MAX_CONNECTIONS_MAX 64u
/* Bytes queued by send() before it answers -EAGAIN. */
#define TXQ_MAX (64u * 1024u)
/* WriteValue(type=command) calls outstanding at a time. */
#define WRITEVALUE_INFLIGHT_MAX 8u
#define DISCOVERY_SECONDS_DEFAULT 10u
#define DISCOVERY_SECONDS_MAX 3600u
#define DISCOVERY_RSSI_FLOOR (-100)
#define DISCOVERY_SEEN_MAX 4096u
/* How long a closed link's bus waits for BlueZ to answer its Disconnect. */
#define LINGER_USEC (3u * 1000000ull)

struct adapter_slot;
struct ble_linger;
struct ble_bus;

/* The transport's state in one context: what used to be plugin-wide. */
struct smp_transport_instance {
        const struct smp_host *host;
        /* Links per adapter; the last max-connections= given sets it. */
        unsigned max_connections;
        struct adapter_slot *adapters;
        /* Closed links whose Disconnect is not answered yet. */
        struct ble_linger *lingers;
        /* The shared bus connections new links may use, one per loop. */
        struct ble_bus *buses;
};

/* ---- bluez-bus.c ---- */

_printf_(3, 4) void ble_debug(const struct smp_transport_instance *i, const void *who, const char *fmt, ...);
/* The errno of a method reply (0 when it is no error), logged. */
int reply_errno(const struct smp_transport_instance *i, const void *who, const char *what, sd_bus_message *m);

struct dev_props {
        const char *address, *address_type, *name, *adapter;
        bool has_connected, connected, has_resolved, resolved, has_rssi, smp_uuid, has_uuids;
        int16_t rssi;
        const char *uuid;        /* characteristic UUID */
        bool has_mtu;
        uint16_t mtu;
        const uint8_t *value;
        size_t value_len;
        bool has_value;
};

/* Reads a{sv} at the current position into p (known keys only). */
int read_props(sd_bus_message *m, struct dev_props *p);
/* Iterates a{sa{sv}} at the current position; for each interface calls fn. */
typedef int (*iface_fn)(void *ctx, const char *path, const char *iface, const struct dev_props *p);
int read_ifaces(sd_bus_message *m, const char *path, iface_fn fn, void *ctx);
int read_managed_objects(sd_bus_message *m, iface_fn fn, void *ctx);
bool path_is_below(const char *path, const char *prefix);
/* SetDiscoveryFilter(LE, the SMP service[, RSSI floor]) on adapter. */
int call_set_filter(sd_bus *bus, const char *adapter, bool rssi, sd_bus_slot **slot, sd_bus_message_handler_t cb,
                    void *userdata);

/* ---- bluez-link.c, bluez-datapath.c: links ---- */

enum link_state {
        ST_LOOKUP,      /* GetManagedObjects */
        ST_DISCOVER,    /* the device is unknown: discovering */
        ST_WAIT_SLOT,   /* queued for the adapter */
        ST_CONNECT,     /* Connect in flight */
        ST_RETRY,       /* waiting to retry Connect */
        ST_REFUSED,     /* Connect refused for good: counting the adapter's links */
        ST_RESOLVE,     /* waiting for ServicesResolved + characteristic */
        ST_ACQUIRE,     /* AcquireWrite/AcquireNotify/StartNotify */
        ST_READY,
        ST_FAILED,
};

struct tx_frame {
        struct tx_frame *next;
        size_t len, off;
        uint8_t data[];
};

struct smp_link {
        struct smp_transport_instance *instance;
        unsigned n_ref;
        bool closed_by_user;
        enum link_state state;
        sd_event *event;
        struct ble_bus *sbus; /* shared; the link holds a reference */
        sd_bus *bus;          /* sbus's connection, borrowed */
        struct smp_link *bus_next;
        const struct smp_link_callbacks *cb;
        void *userdata;

        char address[18];
        char adapter_name[16];    /* "" = any */
        bool mode_notify;
        uint64_t connect_timeout_usec, resolve_timeout_usec;

        char adapter_path[64];
        char device_path[128];
        char chrc_path[192];
        bool connected, resolved, connect_called;
        unsigned retries;
        unsigned aborts;         /* Connects aborted in a row */
        bool discovering;

        struct adapter_slot *slot;
        bool holds_slot, holds_connect;
        struct smp_link *wait_next;

        sd_bus_slot *call, *disc_call;
        sd_event_source *timer;

        unsigned mtu;            /* ATT MTU */
        int write_fd, notify_fd;
        sd_event_source *write_src, *notify_src;
        bool notify_dbus, write_dbus, acquire_pending_write, acquire_pending_notify;
        unsigned writevalue_inflight;
        sd_bus_slot *writevalue[WRITEVALUE_INFLIGHT_MAX];

        struct tx_frame *txq, *txq_tail;
        size_t txq_bytes;
        bool want_writable;

        struct smp_link_stats stats;
};

struct smp_link *link_ref(struct smp_link *l);
struct smp_link *link_unref(struct smp_link *l);
void link_unrefp(struct smp_link **l);
/* The link failed: tell the user once (never from within open()). */
void link_fail(struct smp_link *l, int err);
int link_set_timer(struct smp_link *l, uint64_t usec, sd_event_time_handler_t handler);
/* Takes (or queues for) a connection slot on the device's adapter. */
void link_connect(struct smp_link *l);
/* Calls Device1.Connect; the caller holds the adapter's slot. */
void link_call_connect(struct smp_link *l);
void link_check_resolved(struct smp_link *l);
int on_retry(sd_event_source *s, uint64_t usec, void *userdata);
/* The device, its state and characteristic from sbus's objects, then on:
 * discovery, a settle, or Connect.  on_lookup() does it from a timer. */
void link_lookup(struct smp_link *l);
int on_lookup(sd_event_source *s, uint64_t usec, void *userdata);
/* BlueZ's signals, as the shared connection hands them on. */
void link_on_interfaces_added(struct smp_link *l, sd_bus_message *m);
void link_on_interfaces_removed(struct smp_link *l, sd_bus_message *m);
void link_on_properties_changed(struct smp_link *l, sd_bus_message *m);
void link_on_name_owner_changed(struct smp_link *l, sd_bus_message *m);

int ble_open(struct smp_transport_instance *instance, sd_event *event, const struct smp_conn *conn,
             const struct smp_link_callbacks *cb, void *userdata, struct smp_link **ret);
void ble_close(struct smp_link *l);
const char *ble_get_adapter(struct smp_link *l);

/* bluez-refusal.c: the retries are used up and the last Connect failed
 * with le-connection-abort-by-local; fails the link with -EUSERS when
 * every attempt did and the adapter holds other links (a controller out
 * of link resources), else with -ECONNABORTED. */
void link_refused(struct smp_link *l);

/* bluez-datapath.c */
void txq_clear(struct smp_link *l);
void link_deliver(struct smp_link *l, const uint8_t *data, size_t len);
/* Writes queued pieces until the queue is empty or the link pushes back. */
void link_flush(struct smp_link *l);
void link_start_acquire(struct smp_link *l);
/* Drops a half-set-up data path and tries Connect again. */
void link_restart(struct smp_link *l);
int ble_send(struct smp_link *l, const uint8_t *frame, size_t len);
void ble_get_info(struct smp_link *l, struct smp_link_info *ret);
void ble_get_stats(struct smp_link *l, struct smp_link_stats *ret);

/* bluez-plugin.c: the link's settings from its connection string. */
void ble_link_apply_conn(struct smp_link *l, const struct smp_conn *conn);

/* ---- bluez-adapter.c ---- */

struct adapter_slot {
        struct smp_transport_instance *instance;
        char path[64];
        struct smp_link *connecting;   /* the link whose Connect is in flight */
        unsigned links;                /* links holding a connection slot */
        struct smp_link *waiting;      /* FIFO of links waiting for a slot */
        struct adapter_slot *next;
};

struct adapter_slot *adapter_get(struct smp_transport_instance *i, const char *path);
void adapters_free(struct smp_transport_instance *i);
void adapter_wait_remove(struct smp_link *l);
void link_release_connect(struct smp_link *l);
void link_release_slot(struct smp_link *l);
/* Gives waiting links their turn while the adapter has room. */
void link_process_slot(struct adapter_slot *a);

/* ---- bluez-shared.c ---- */

enum cache_state {
        CACHE_EMPTY,   /* not asked for (or bluetoothd changed) */
        CACHE_LOADING, /* GetManagedObjects in flight */
        CACHE_READY,   /* kept by the signals since */
};

struct ble_object;

struct ble_bus {
        struct smp_transport_instance *instance;
        struct ble_bus *next; /* in instance->buses while listed */
        bool listed;
        unsigned n_ref; /* its links and lingers */
        sd_event *event;
        sd_bus *bus;
        sd_bus_slot *match_added, *match_removed, *match_props, *match_owner, *load_call;
        enum cache_state cache;
        struct ble_object *objects; /* Device1s and SMP characteristics */
        struct smp_link *links;     /* the links on it, for the signals */
};

/* The open connection of this loop (a new one if there is none). */
int ble_bus_get(struct smp_transport_instance *i, sd_event *event, struct ble_bus **ret);
/* The instance goes: every link and linger let go of its bus already. */
void ble_buses_forget(struct smp_transport_instance *i);
struct ble_bus *ble_bus_ref(struct ble_bus *b);
struct ble_bus *ble_bus_unref(struct ble_bus *b);
void ble_bus_unrefp(struct ble_bus **b);
void ble_bus_add_link(struct ble_bus *b, struct smp_link *l);
void ble_bus_remove_link(struct smp_link *l);
/* link_lookup() once the objects are known: soon, or at the answer of
 * the GetManagedObjects this may send. */
int ble_bus_start_lookup(struct ble_bus *b, struct smp_link *l);
/* Calls fn for each cached device, then each SMP characteristic. */
void ble_bus_lookup(struct ble_bus *b, iface_fn fn, void *ctx);

/* ---- bluez-linger.c ---- */

/* A Disconnect of device_path from a link on this loop is pending. */
bool linger_pending(struct smp_transport_instance *i, sd_event *event, const char *device_path);
/* Sends Disconnect and takes over the link's bus. */
void linger_start(struct smp_link *l);
void lingers_free(struct smp_transport_instance *i);

/* ---- bluez-discovery.c ---- */

int ble_discover_start(struct smp_transport_instance *instance, sd_event *event, const char *args,
                       smp_discovered_fn found, void *userdata, struct smp_transport_discovery **ret);
void ble_discover_stop(struct smp_transport_discovery *d);
