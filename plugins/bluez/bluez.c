/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SMP over BLE GATT through BlueZ's D-Bus API (org.bluez, BlueZ >= 5.62),
 * the transport of Zephyr's smp_bt.c: service 8d53dc1d-..., one
 * characteristic da2e7828-... (write without response + notify).
 *
 *   ble:AA:BB:CC:DD:EE:FF[,adapter=hciN][,mode=acquire|notify]
 *       [,connect-timeout=MS][,resolve-timeout=MS][,max-connections=N]
 *
 * adapter: default any adapter that already knows the device, else hci0.
 * mode: acquire (default) uses AcquireWrite/AcquireNotify sockets (one
 * SOCK_SEQPACKET datagram = one ATT value) and falls back per direction to
 * WriteValue(type=command)/StartNotify when BlueZ refuses; notify uses
 * the D-Bus path only.  max-connections sets the plugin-wide limit of
 * links per adapter (default 4).
 *
 * Open: GetManagedObjects; if the device is unknown, discovery with an
 * LE + SMP-UUID filter until it appears (bounded by connect-timeout); if
 * it is connected already, a short wait for an earlier client's
 * Disconnect to show; Device1.Connect, at most one in flight per adapter,
 * retried up to 3 times on "le-connection-abort-by-local" (and when the
 * link drops before it was ready); then wait for ServicesResolved and the
 * SMP characteristic object (which may come later, bluez#1489); then
 * acquire or StartNotify.  Frames sent before that are queued; a failure
 * is reported through closed().  close() sends Disconnect and keeps the
 * bus until BlueZ answers it (see struct ble_linger).
 * See doc/transport-ble.md.
 *
 * Frames longer than ATT MTU - 3 are cut into MTU - 3 pieces; the device
 * reassembles by the SMP header length.  Notifications are delivered as
 * stream pieces (smp_link_info.stream), the session reassembles.
 *
 * Each link and discovery uses its own system bus connection
 * (sd_bus_open_system(), which honours $DBUS_SYSTEM_BUS_ADDRESS), attached
 * to the caller's sd-event loop; every call is asynchronous.  Discovery
 * sessions and notification sessions belong to that connection, so
 * BlueZ drops them when the link is closed.
 *
 * Debug lines go to the host's log (struct smp_host).  Everything that
 * was plugin-wide (adapter slots, lingering Disconnects, max-connections)
 * lives in the instance, one per libsmpgw context.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* The transport's state in one context: what used to be plugin-wide. */
struct smp_transport_instance {
        const struct smp_host *host;
        /* Links per adapter; the last max-connections= given sets it. */
        unsigned max_connections;
        struct adapter_slot *adapters;
        /* Closed links whose Disconnect is not answered yet. */
        struct ble_linger *lingers;
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
        sd_bus *bus;
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
        bool discovering;

        struct adapter_slot *slot;
        bool holds_slot, holds_connect;
        struct smp_link *wait_next;

        sd_bus_slot *match_added, *match_removed, *match_props, *match_owner, *call, *disc_call;
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

int ble_open(struct smp_transport_instance *instance, sd_event *event, const struct smp_conn *conn,
             const struct smp_link_callbacks *cb, void *userdata, struct smp_link **ret);
void ble_close(struct smp_link *l);

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

/* ------------------------------------------------------------------ */
void ble_debug(const struct smp_transport_instance *i, const void *who, const char *fmt, ...) {
        const struct smp_host *host = i->host;
        char msg[512];
        va_list ap;

        if (!host->log_enabled(host, SMP_LOG_DEBUG))
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        smp_host_log(host, SMP_LOG_DEBUG, "[%p] %s", who, msg);
}

/* org.bluez errors to negative errno. */
static int bluez_error_to_errno(const sd_bus_error *e) {
        static const struct {
                const char *name;
                int err;
        } map[] = {
                { BLUEZ_ERROR "NotReady", ENETDOWN },
                { BLUEZ_ERROR "InProgress", EINPROGRESS },
                { BLUEZ_ERROR "Failed", EIO },
                { BLUEZ_ERROR "NotPermitted", EPERM },
                { BLUEZ_ERROR "NotAuthorized", EACCES },
                { BLUEZ_ERROR "AlreadyConnected", EISCONN },
                { BLUEZ_ERROR "DoesNotExist", ENODEV },
                { BLUEZ_ERROR "NotConnected", ENOTCONN },
                { BLUEZ_ERROR "NotSupported", EOPNOTSUPP },
                { BLUEZ_ERROR "NotAvailable", ENODEV },
                { BLUEZ_ERROR "InvalidArguments", EINVAL },
                { BLUEZ_ERROR "InvalidLength", EMSGSIZE },
                { BLUEZ_ERROR "AlreadyExists", EEXIST },
                { BLUEZ_ERROR "AuthenticationFailed", EACCES },
                { "org.freedesktop.DBus.Error.NoReply", ETIMEDOUT },
                { "org.freedesktop.DBus.Error.Timeout", ETIMEDOUT },
                { "org.freedesktop.DBus.Error.ServiceUnknown", EHOSTDOWN },
                { "org.freedesktop.DBus.Error.UnknownObject", ENODEV },
        };

        if (!e || !e->name)
                return -EIO;
        if (streq(e->name, BLUEZ_ERROR "Failed") && e->message) {
                if (strstr(e->message, "le-connection-abort-by-local"))
                        return -ECONNABORTED;
                if (strstr(e->message, "canceled"))
                        return -ECANCELED;
                if (strstr(e->message, "already in progress"))
                        return -EALREADY;
        }
        for (size_t i = 0; i < ELEMENTSOF(map); i++)
                if (streq(e->name, map[i].name))
                        return -map[i].err;
        int r = sd_bus_error_get_errno(e);
        return r > 0 ? -r : -EIO;
}

int reply_errno(const struct smp_transport_instance *i, const void *who, const char *what, sd_bus_message *m) {
        const sd_bus_error *e = sd_bus_message_get_error(m);
        if (!e)
                return 0;
        int r = bluez_error_to_errno(e);
        ble_debug(i, who, "%s: %s: %s -> %s", what, e->name, e->message ? e->message : "", strerror(-r));
        return r;
}

int read_props(sd_bus_message *m, struct dev_props *p) {
        int r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key;
                r = sd_bus_message_read_basic(m, 's', &key);
                if (r < 0)
                        return r;
                const char *contents;
                char type;
                r = sd_bus_message_peek_type(m, &type, &contents);
                if (r < 0)
                        return r;
                if (streq(key, "Address") && streq(contents, "s"))
                        r = sd_bus_message_read(m, "v", "s", &p->address);
                else if (streq(key, "AddressType") && streq(contents, "s"))
                        r = sd_bus_message_read(m, "v", "s", &p->address_type);
                else if (streq(key, "Name") && streq(contents, "s"))
                        r = sd_bus_message_read(m, "v", "s", &p->name);
                else if (streq(key, "Adapter") && streq(contents, "o"))
                        r = sd_bus_message_read(m, "v", "o", &p->adapter);
                else if (streq(key, "UUID") && streq(contents, "s"))
                        r = sd_bus_message_read(m, "v", "s", &p->uuid);
                else if (streq(key, "Connected") && streq(contents, "b")) {
                        int b;
                        r = sd_bus_message_read(m, "v", "b", &b);
                        p->has_connected = true;
                        p->connected = b;
                } else if (streq(key, "ServicesResolved") && streq(contents, "b")) {
                        int b;
                        r = sd_bus_message_read(m, "v", "b", &b);
                        p->has_resolved = true;
                        p->resolved = b;
                } else if (streq(key, "RSSI") && streq(contents, "n")) {
                        r = sd_bus_message_read(m, "v", "n", &p->rssi);
                        p->has_rssi = true;
                } else if (streq(key, "MTU") && streq(contents, "q")) {
                        r = sd_bus_message_read(m, "v", "q", &p->mtu);
                        p->has_mtu = true;
                } else if (streq(key, "Value") && streq(contents, "ay")) {
                        const void *v = NULL;
                        size_t n = 0;
                        r = sd_bus_message_enter_container(m, 'v', "ay");
                        if (r >= 0)
                                r = sd_bus_message_read_array(m, 'y', &v, &n);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(m);
                        p->value = v;
                        p->value_len = n;
                        p->has_value = true;
                } else if (streq(key, "UUIDs") && streq(contents, "as")) {
                        r = sd_bus_message_enter_container(m, 'v', "as");
                        if (r >= 0)
                                r = sd_bus_message_enter_container(m, 'a', "s");
                        const char *u;
                        p->has_uuids = true;
                        while (r >= 0 && (r = sd_bus_message_read_basic(m, 's', &u)) > 0)
                                if (strcasecmp(u, SMP_SERVICE_UUID) == 0)
                                        p->smp_uuid = true;
                        if (r >= 0)
                                r = sd_bus_message_exit_container(m);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(m);
                } else
                        r = sd_bus_message_skip(m, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

int read_ifaces(sd_bus_message *m, const char *path, iface_fn fn, void *ctx) {
        int r = sd_bus_message_enter_container(m, 'a', "{sa{sv}}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sa{sv}")) > 0) {
                const char *iface;
                struct dev_props p = {};
                r = sd_bus_message_read_basic(m, 's', &iface);
                if (r < 0)
                        return r;
                if (streq(iface, ADAPTER_IFACE) || streq(iface, DEVICE_IFACE) || streq(iface, CHRC_IFACE)) {
                        r = read_props(m, &p);
                        if (r < 0)
                                return r;
                        r = fn(ctx, path, iface, &p);
                        if (r < 0)
                                return r;
                } else {
                        r = sd_bus_message_skip(m, "a{sv}");
                        if (r < 0)
                                return r;
                }
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

int read_managed_objects(sd_bus_message *m, iface_fn fn, void *ctx) {
        int r = sd_bus_message_enter_container(m, 'a', "{oa{sa{sv}}}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "oa{sa{sv}}")) > 0) {
                const char *path;
                r = sd_bus_message_read_basic(m, 'o', &path);
                if (r < 0)
                        return r;
                r = read_ifaces(m, path, fn, ctx);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

bool path_is_below(const char *path, const char *prefix) {
        size_t n = strlen(prefix);
        return n > 0 && strncmp(path, prefix, n) == 0 && path[n] == '/';
}


static int append_filter(sd_bus_message *m, bool rssi) {
        int r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0)
                r = sd_bus_message_append(m, "{sv}", "Transport", "s", "le");
        if (r >= 0)
                r = sd_bus_message_append(m, "{sv}", "UUIDs", "as", 1, SMP_SERVICE_UUID);
        if (r >= 0 && rssi)
                r = sd_bus_message_append(m, "{sv}", "RSSI", "n", (int16_t) DISCOVERY_RSSI_FLOOR);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

int call_set_filter(sd_bus *bus, const char *adapter, bool rssi, sd_bus_slot **slot,
                           sd_bus_message_handler_t cb, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r = sd_bus_message_new_method_call(bus, &m, BLUEZ, adapter, ADAPTER_IFACE, "SetDiscoveryFilter");
        if (r < 0)
                return r;
        r = append_filter(m, rssi);
        if (r < 0)
                return r;
        return sd_bus_call_async(bus, slot, m, cb, userdata, 0);
}

/* ------------------------------------------------------------------ */
struct adapter_slot *adapter_get(struct smp_transport_instance *i, const char *path) {
        for (struct adapter_slot *a = i->adapters; a; a = a->next)
                if (streq(a->path, path))
                        return a;
        struct adapter_slot *a = calloc(1, sizeof(*a));
        if (!a)
                return NULL;
        a->instance = i;
        snprintf(a->path, sizeof(a->path), "%s", path);
        a->next = i->adapters;
        i->adapters = a;
        return a;
}

/* Every link is closed by now: the slots hold nothing. */
void adapters_free(struct smp_transport_instance *i) {
        while (i->adapters) {
                struct adapter_slot *a = i->adapters;
                i->adapters = a->next;
                free(a);
        }
}


void adapter_wait_remove(struct smp_link *l) {
        if (!l->slot)
                return;
        for (struct smp_link **p = &l->slot->waiting; *p; p = &(*p)->wait_next)
                if (*p == l) {
                        *p = l->wait_next;
                        l->wait_next = NULL;
                        return;
                }
}

void link_release_connect(struct smp_link *l) {
        if (!l->holds_connect)
                return;
        l->holds_connect = false;
        if (l->slot->connecting == l)
                l->slot->connecting = NULL;
        link_process_slot(l->slot);
}

void link_release_slot(struct smp_link *l) {
        if (!l->slot)
                return;
        adapter_wait_remove(l);
        if (l->holds_connect) {
                l->holds_connect = false;
                if (l->slot->connecting == l)
                        l->slot->connecting = NULL;
        }
        if (l->holds_slot) {
                l->holds_slot = false;
                l->slot->links--;
        }
        struct adapter_slot *a = l->slot;
        l->slot = NULL;
        link_process_slot(a);
}

void link_process_slot(struct adapter_slot *a) {
        while (a->waiting && !a->connecting && a->links < a->instance->max_connections) {
                struct smp_link *l = a->waiting;
                a->waiting = l->wait_next;
                l->wait_next = NULL;
                if (!l->holds_slot) {
                        l->holds_slot = true;
                        a->links++;
                }
                link_call_connect(l);
        }
}

/* ------------------------------------------------------------------ */
static void link_free(struct smp_link *l);

struct smp_link *link_ref(struct smp_link *l) {
        l->n_ref++;
        return l;
}

struct smp_link *link_unref(struct smp_link *l) {
        if (l && --l->n_ref == 0)
                link_free(l);
        return NULL;
}

void link_unrefp(struct smp_link **l) {
        if (*l)
                link_unref(*l);
}


static void link_teardown(struct smp_link *l) {
        l->call = sd_bus_slot_unref(l->call);
        l->disc_call = sd_bus_slot_unref(l->disc_call);
        for (size_t i = 0; i < ELEMENTSOF(l->writevalue); i++)
                l->writevalue[i] = sd_bus_slot_unref(l->writevalue[i]);
        l->writevalue_inflight = 0;
        l->timer = sd_event_source_disable_unref(l->timer);
        l->write_src = sd_event_source_disable_unref(l->write_src);
        l->notify_src = sd_event_source_disable_unref(l->notify_src);
        if (l->write_fd >= 0)
                close(l->write_fd);
        if (l->notify_fd >= 0 && l->notify_fd != l->write_fd)
                close(l->notify_fd);
        l->write_fd = l->notify_fd = -1;
        txq_clear(l);
        link_release_slot(l);
}

static void link_stop_discovery(struct smp_link *l);

/* The link failed: tell the user once (never from within open()). */
void link_fail(struct smp_link *l, int err) {
        if (l->state == ST_FAILED)
                return;
        ble_debug(l->instance, l, "%s: link failed: %s", l->address, strerror(-err));
        if (l->state == ST_DISCOVER)
                link_stop_discovery(l);
        l->state = ST_FAILED;
        link_teardown(l);
        if (!l->closed_by_user && l->cb->closed) {
                _cleanup_(link_unrefp) _unused_ struct smp_link *ref = link_ref(l);
                l->cb->closed(err, l->userdata);
        }
}

static void link_free(struct smp_link *l) {
        link_teardown(l);
        l->match_added = sd_bus_slot_unref(l->match_added);
        l->match_removed = sd_bus_slot_unref(l->match_removed);
        l->match_props = sd_bus_slot_unref(l->match_props);
        l->match_owner = sd_bus_slot_unref(l->match_owner);
        if (l->bus) {
                /* Queued messages (Disconnect) go out before the bus closes. */
                (void) sd_bus_flush(l->bus);
                l->bus = sd_bus_close_unref(l->bus);
        }
        sd_event_unref(l->event);
        free(l);
}

int link_set_timer(struct smp_link *l, uint64_t usec, sd_event_time_handler_t handler) {
        l->timer = sd_event_source_disable_unref(l->timer);
        return sd_event_add_time_relative(l->event, &l->timer, CLOCK_MONOTONIC, usec, 0, handler, l);
}

/* ---- state machine ---- */

static int link_start_discovery(struct smp_link *l);

static int link_on_iface(void *ctx, const char *path, const char *iface, const struct dev_props *p) {
        struct smp_link *l = ctx;

        if (streq(iface, DEVICE_IFACE)) {
                if (l->device_path[0] || !p->address || strcasecmp(p->address, l->address) != 0 || !p->adapter)
                        return 0;
                if (l->adapter_name[0]) {
                        const char *slash = strrchr(p->adapter, '/');
                        if (!slash || !streq(slash + 1, l->adapter_name))
                                return 0;
                }
                snprintf(l->device_path, sizeof(l->device_path), "%s", path);
                snprintf(l->adapter_path, sizeof(l->adapter_path), "%s", p->adapter);
                l->connected = p->connected;
                l->resolved = p->resolved;
                ble_debug(l->instance, l, "device %s on %s%s%s", path, p->adapter, l->connected ? ", connected" : "",
                          l->resolved ? ", resolved" : "");
        } else if (streq(iface, CHRC_IFACE)) {
                if (!l->device_path[0] || l->chrc_path[0] || !path_is_below(path, l->device_path) ||
                    !p->uuid || strcasecmp(p->uuid, SMP_CHRC_UUID) != 0)
                        return 0;
                snprintf(l->chrc_path, sizeof(l->chrc_path), "%s", path);
                if (p->has_mtu && p->mtu >= ATT_MTU_MIN)
                        l->mtu = MIN((unsigned) p->mtu, ATT_MTU_MAX);
                ble_debug(l->instance, l, "characteristic %s (MTU %u)", path, l->mtu);
        }
        return 0;
}


static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct smp_link *l = userdata;
        ble_debug(l->instance, l, "timeout in state %d", (int) l->state);
        link_fail(l, -ETIMEDOUT);
        return 0;
}

static int on_managed_objects(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct smp_link *l = userdata;
        int r;

        l->call = sd_bus_slot_unref(l->call);
        r = reply_errno(l->instance, l, "GetManagedObjects", m);
        if (r < 0) {
                link_fail(l, r);
                return 0;
        }
        /* Twice: the characteristic may be listed before its device. */
        r = read_managed_objects(m, link_on_iface, l);
        if (r >= 0)
                r = sd_bus_message_rewind(m, true);
        if (r >= 0)
                r = read_managed_objects(m, link_on_iface, l);
        if (r < 0) {
                link_fail(l, r);
                return 0;
        }
        if (!l->device_path[0]) {
                r = link_start_discovery(l);
                if (r < 0)
                        link_fail(l, r);
                return 0;
        }
        if (l->connected) {
                /* Connected by someone else, or by a client that just
                 * left and whose Disconnect may still be under way (our
                 * Connect would succeed and the link drop right after):
                 * give a Disconnect a moment to show (Connected=false
                 * ends the wait early). */
                ble_debug(l->instance, l, "already connected, settling first");
                l->state = ST_RETRY;
                r = link_set_timer(l, SETTLE_USEC, on_retry);
                if (r < 0)
                        link_fail(l, r);
                return 0;
        }
        link_connect(l);
        return 0;
}

static int on_match_installed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct smp_link *l = userdata;
        int r = reply_errno(l->instance, l, "AddMatch", m);
        if (r < 0) {
                link_fail(l, r);
                return 0;
        }
        if (l->state != ST_LOOKUP || l->call)
                return 0;
        r = sd_bus_call_method_async(l->bus, &l->call, BLUEZ, "/", OM_IFACE, "GetManagedObjects",
                                     on_managed_objects, l, NULL);
        if (r < 0)
                link_fail(l, r);
        return 0;
}

/* ---- discovery for open() ---- */

static int on_start_discovery(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct smp_link *l = userdata;
        l->disc_call = sd_bus_slot_unref(l->disc_call);
        int r = reply_errno(l->instance, l, "StartDiscovery", m);
        if (r < 0 && r != -EINPROGRESS) {
                if (l->state == ST_DISCOVER)
                        link_fail(l, r);
                return 0;
        }
        l->discovering = true;
        if (l->state != ST_DISCOVER)
                link_stop_discovery(l);   /* found meanwhile */
        return 0;
}

static int on_set_filter(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct smp_link *l = userdata;
        l->disc_call = sd_bus_slot_unref(l->disc_call);
        int r = reply_errno(l->instance, l, "SetDiscoveryFilter", m);
        if (l->state != ST_DISCOVER)
                return 0;
        if (r < 0) {
                link_fail(l, r);
                return 0;
        }
        r = sd_bus_call_method_async(l->bus, &l->disc_call, BLUEZ, l->adapter_path, ADAPTER_IFACE, "StartDiscovery",
                                     on_start_discovery, l, NULL);
        if (r < 0)
                link_fail(l, r);
        return 0;
}


static int link_start_discovery(struct smp_link *l) {
        snprintf(l->adapter_path, sizeof(l->adapter_path), "/org/bluez/%s",
                 l->adapter_name[0] ? l->adapter_name : "hci0");
        ble_debug(l->instance, l, "%s unknown, discovering on %s", l->address, l->adapter_path);
        l->state = ST_DISCOVER;
        int r = link_set_timer(l, l->connect_timeout_usec, on_timeout);
        if (r < 0)
                return r;
        return call_set_filter(l->bus, l->adapter_path, false, &l->disc_call, on_set_filter, l);
}

static void link_stop_discovery(struct smp_link *l) {
        if (!l->discovering)
                return;
        l->discovering = false;
        (void) sd_bus_call_method_async(l->bus, NULL, BLUEZ, l->adapter_path, ADAPTER_IFACE, "StopDiscovery",
                                        NULL, NULL, NULL);
}

/* ---- connecting ---- */


static int on_connect(sd_bus_message *m, void *userdata, sd_bus_error *ret_error);

void link_call_connect(struct smp_link *l) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        l->state = ST_CONNECT;
        l->slot->connecting = l;
        l->holds_connect = true;
        l->connect_called = true;
        ble_debug(l->instance, l, "Connect %s (attempt %u)", l->device_path, l->retries + 1);
        r = sd_bus_message_new_method_call(l->bus, &m, BLUEZ, l->device_path, DEVICE_IFACE, "Connect");
        if (r >= 0)
                r = sd_bus_call_async(l->bus, &l->call, m, on_connect, l, l->connect_timeout_usec);
        if (r < 0)
                link_fail(l, r);
}


void link_connect(struct smp_link *l) {
        link_stop_discovery(l);
        l->timer = sd_event_source_disable_unref(l->timer);
        if (linger_pending(l->instance, l->event, l->device_path)) {
                /* An earlier link's Disconnect of this device is pending. */
                l->state = ST_RETRY;
                if (link_set_timer(l, RETRY_DELAY_USEC / 2, on_retry) < 0)
                        link_fail(l, -ENOMEM);
                return;
        }
        if (!l->slot) {
                l->slot = adapter_get(l->instance, l->adapter_path);
                if (!l->slot) {
                        link_fail(l, -ENOMEM);
                        return;
                }
        }
        if (!l->holds_slot || (l->slot->connecting && l->slot->connecting != l)) {
                if (l->holds_slot || l->slot->connecting || l->slot->links >= l->instance->max_connections) {
                        /* queue (FIFO) */
                        l->state = ST_WAIT_SLOT;
                        struct smp_link **p = &l->slot->waiting;
                        while (*p && *p != l)
                                p = &(*p)->wait_next;
                        if (!*p)
                                *p = l;
                        ble_debug(l->instance, l, "waiting for adapter %s (%u links)", l->slot->path, l->slot->links);
                        return;
                }
                l->holds_slot = true;
                l->slot->links++;
        }
        link_call_connect(l);
}

int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        struct smp_link *l = userdata;
        l->timer = sd_event_source_disable_unref(l->timer);
        if (l->state == ST_RETRY)
                link_connect(l);
        return 0;
}

static int on_connect(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct smp_link *l = userdata;
        int r;

        l->call = sd_bus_slot_unref(l->call);
        r = reply_errno(l->instance, l, "Connect", m);
        if (r == -EISCONN)
                r = 0;
        if (r == -ECONNABORTED && l->retries < CONNECT_RETRIES) {
                l->retries++;
                l->state = ST_RETRY;
                /* Give others on the adapter their turn; we queue again. */
                link_release_connect(l);
                if (l->state != ST_RETRY)
                        return 0;
                /* Retry after Connected turns false, or shortly if it already is. */
                r = link_set_timer(l, l->connected ? RETRY_WAIT_MAX_USEC : RETRY_DELAY_USEC, on_retry);
                if (r < 0)
                        link_fail(l, r);
                return 0;
        }
        if (r < 0) {
                link_fail(l, r);
                return 0;
        }
        l->connected = true;
        l->state = ST_RESOLVE;
        link_release_connect(l);
        if (l->state != ST_RESOLVE)
                return 0;
        r = link_set_timer(l, l->resolve_timeout_usec, on_timeout);
        if (r < 0) {
                link_fail(l, r);
                return 0;
        }
        link_check_resolved(l);
        return 0;
}


/* ---- signals ---- */

static int on_interfaces_added(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(link_unrefp) struct smp_link *l = link_ref(userdata);
        const char *path;
        bool had_device = l->device_path[0];

        if (l->state == ST_FAILED || l->state == ST_LOOKUP)
                return 0;
        if (sd_bus_message_read_basic(m, 'o', &path) < 0)
                return 0;
        if (read_ifaces(m, path, link_on_iface, l) < 0)
                return 0;
        if (!had_device && l->device_path[0] && l->state == ST_DISCOVER)
                link_connect(l);
        else
                link_check_resolved(l);
        return 0;
}

static int on_interfaces_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(link_unrefp) struct smp_link *l = link_ref(userdata);
        const char *path;

        if (l->state == ST_FAILED || sd_bus_message_read_basic(m, 'o', &path) < 0)
                return 0;
        if (l->device_path[0] && streq(path, l->device_path)) {
                link_fail(l, l->state == ST_READY ? -ECONNRESET : -ENODEV);
                return 0;
        }
        if (l->chrc_path[0] && streq(path, l->chrc_path)) {
                l->chrc_path[0] = 0;
                if (l->state == ST_READY || l->state == ST_ACQUIRE)
                        link_fail(l, -ECONNRESET);
        }
        return 0;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(link_unrefp) struct smp_link *l = link_ref(userdata);
        const char *path = sd_bus_message_get_path(m), *iface;
        struct dev_props p = {};

        if (l->state == ST_FAILED || !path)
                return 0;
        bool dev = l->device_path[0] && streq(path, l->device_path);
        bool chrc = l->chrc_path[0] && streq(path, l->chrc_path);
        if (!dev && !chrc)
                return 0;
        if (sd_bus_message_read_basic(m, 's', &iface) < 0 || read_props(m, &p) < 0)
                return 0;
        if (dev && streq(iface, DEVICE_IFACE)) {
                if (p.has_resolved)
                        l->resolved = p.resolved;
                if (p.has_connected) {
                        l->connected = p.connected;
                        if (!p.connected) {
                                l->resolved = false;
                                if (l->state == ST_RETRY) {
                                        l->timer = sd_event_source_disable_unref(l->timer);
                                        link_connect(l);
                                        return 0;
                                }
                                if ((l->state == ST_RESOLVE || l->state == ST_ACQUIRE) &&
                                    l->retries < CONNECT_RETRIES) {
                                        /* Lost before it was usable (say, an earlier
                                         * client's Disconnect completing after our
                                         * Connect found it still connected): nothing
                                         * was sent yet, connect again. */
                                        link_restart(l);
                                        return 0;
                                }
                                if (l->state == ST_RESOLVE || l->state == ST_ACQUIRE || l->state == ST_READY) {
                                        link_fail(l, -ECONNRESET);
                                        return 0;
                                }
                        }
                }
                link_check_resolved(l);
        } else if (chrc && streq(iface, CHRC_IFACE)) {
                if (p.has_mtu && p.mtu >= ATT_MTU_MIN && l->write_fd < 0)
                        l->mtu = MIN((unsigned) p.mtu, ATT_MTU_MAX);
                if (p.has_value && l->notify_dbus && l->state == ST_READY)
                        link_deliver(l, p.value, p.value_len);
        }
        return 0;
}


static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct smp_link *l = userdata;
        const char *name, *old_owner, *new_owner;
        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !streq(name, BLUEZ))
                return 0;
        if (old_owner && *old_owner) {
                ble_debug(l->instance, l, "bluetoothd left the bus");
                link_fail(l, l->state == ST_READY ? -ECONNRESET : -EHOSTDOWN);
        }
        return 0;
}

int ble_open(struct smp_transport_instance *instance, sd_event *event, const struct smp_conn *conn,
             const struct smp_link_callbacks *cb, void *userdata, struct smp_link **ret) {
        struct smp_link *l;
        int r = 0;

        if (!event || !conn || !cb || !ret)
                return -EINVAL;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->instance = instance;
        l->n_ref = 1;
        l->write_fd = l->notify_fd = -1;
        l->mtu = ATT_MTU_MIN;
        l->connect_timeout_usec = CONNECT_TIMEOUT_USEC_DEFAULT;
        l->resolve_timeout_usec = RESOLVE_TIMEOUT_USEC_DEFAULT;
        l->cb = cb;
        l->userdata = userdata;
        l->event = sd_event_ref(event);
        l->state = ST_LOOKUP;

        ble_link_apply_conn(l, conn);
        r = sd_bus_open_system(&l->bus);
        if (r >= 0)
                r = sd_bus_attach_event(l->bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_match_signal_async(l->bus, &l->match_added, BLUEZ, NULL, OM_IFACE, "InterfacesAdded",
                                              on_interfaces_added, NULL, l);
        if (r >= 0)
                r = sd_bus_match_signal_async(l->bus, &l->match_removed, BLUEZ, NULL, OM_IFACE,
                                              "InterfacesRemoved", on_interfaces_removed, NULL, l);
        if (r >= 0)
                r = sd_bus_add_match_async(l->bus, &l->match_props,
                                           "type='signal',sender='" BLUEZ "',interface='" PROPS_IFACE
                                           "',member='PropertiesChanged',path_namespace='/org/bluez'",
                                           on_properties_changed, on_match_installed, l);
        if (r >= 0)
                r = sd_bus_add_match_async(l->bus, &l->match_owner,
                                           "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                                           "member='NameOwnerChanged',arg0='" BLUEZ "'",
                                           on_name_owner_changed, NULL, l);
        if (r < 0) {
                ble_debug(l->instance, l, "open '%s': %s", smp_conn_get_string(conn), strerror(-r));
                link_unref(l);
                return r;
        }
        *ret = l;
        return 0;
}

void ble_close(struct smp_link *l) {
        if (!l)
                return;
        l->closed_by_user = true;
        link_stop_discovery(l);
        if (l->connect_called && l->device_path[0] && l->bus)
                linger_start(l);
        l->state = ST_FAILED;
        link_teardown(l);
        link_unref(l);
}

/* ------------------------------------------------------------------ */
void txq_clear(struct smp_link *l) {
        while (l->txq) {
                struct tx_frame *f = l->txq;
                l->txq = f->next;
                free(f);
        }
        l->txq_tail = NULL;
        l->txq_bytes = 0;
}


void link_check_resolved(struct smp_link *l) {
        if (l->state != ST_RESOLVE || !l->resolved || !l->chrc_path[0])
                return;
        l->timer = sd_event_source_disable_unref(l->timer);
        link_start_acquire(l);
}

void link_deliver(struct smp_link *l, const uint8_t *data, size_t len) {
        if (len == 0)
                return;
        l->stats.rx_packets++;
        l->stats.rx_bytes += len;
        if (l->cb->receive)
                l->cb->receive(data, len, l->userdata);
}

static int on_notify_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        _cleanup_(link_unrefp) struct smp_link *l = link_ref(userdata);
        uint8_t buf[ATT_MTU_MAX + 16];

        for (unsigned i = 0; i < 64 && l->state == ST_READY && !l->closed_by_user; i++) {
                ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        link_fail(l, -ECONNRESET);
                        return 0;
                }
                if (n == 0) {
                        link_fail(l, -ECONNRESET);
                        return 0;
                }
                link_deliver(l, buf, (size_t) n);
        }
        if ((revents & (EPOLLHUP | EPOLLERR)) && !(revents & EPOLLIN) && l->state == ST_READY)
                link_fail(l, -ECONNRESET);
        return 0;
}

static int on_write_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        _cleanup_(link_unrefp) struct smp_link *l = link_ref(userdata);
        if (revents & (EPOLLHUP | EPOLLERR)) {
                link_fail(l, -ECONNRESET);
                return 0;
        }
        (void) sd_event_source_set_io_events(s, EPOLLIN);
        link_flush(l);
        return 0;
}

static int on_write_value(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(link_unrefp) struct smp_link *l = link_ref(userdata);
        sd_bus_slot *slot = sd_bus_get_current_slot(l->bus);
        for (size_t i = 0; i < ELEMENTSOF(l->writevalue); i++)
                if (l->writevalue[i] && l->writevalue[i] == slot) {
                        l->writevalue[i] = sd_bus_slot_unref(l->writevalue[i]);
                        l->writevalue_inflight--;
                }
        int r = reply_errno(l->instance, l, "WriteValue", m);
        if (r < 0) {
                l->stats.lost++;
                if (r == -ENOTCONN || r == -ENODEV) {
                        link_fail(l, -ECONNRESET);
                        return 0;
                }
        }
        link_flush(l);
        return 0;
}

static int write_value(struct smp_link *l, const uint8_t *p, size_t n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r = sd_bus_message_new_method_call(l->bus, &m, BLUEZ, l->chrc_path, CHRC_IFACE, "WriteValue");
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', p, n);
        if (r >= 0)
                r = sd_bus_message_append(m, "a{sv}", 1, "type", "s", "command");
        size_t i = 0;
        while (i < ELEMENTSOF(l->writevalue) && l->writevalue[i])
                i++;
        if (r >= 0 && i == ELEMENTSOF(l->writevalue))
                r = -EBUSY;
        if (r >= 0)
                r = sd_bus_call_async(l->bus, &l->writevalue[i], m, on_write_value, l, 0);
        if (r >= 0)
                l->writevalue_inflight++;
        return r;
}

void link_flush(struct smp_link *l) {
        _cleanup_(link_unrefp) _unused_ struct smp_link *ref = link_ref(l);
        size_t piece_max = l->mtu - ATT_HDR;

        if (l->state != ST_READY)
                return;
        while (l->txq) {
                struct tx_frame *f = l->txq;
                size_t n = MIN(piece_max, f->len - f->off);
                if (l->write_fd >= 0) {
                        ssize_t k = send(l->write_fd, f->data + f->off, n, MSG_DONTWAIT | MSG_NOSIGNAL);
                        if (k < 0) {
                                if (errno == EAGAIN || errno == ENOBUFS) {
                                        (void) sd_event_source_set_io_events(l->write_src, EPOLLIN | EPOLLOUT);
                                        return;
                                }
                                if (errno == EINTR)
                                        continue;
                                link_fail(l, -ECONNRESET);
                                return;
                        }
                } else {
                        if (l->writevalue_inflight >= WRITEVALUE_INFLIGHT_MAX)
                                return;
                        int r = write_value(l, f->data + f->off, n);
                        if (r < 0) {
                                link_fail(l, r);
                                return;
                        }
                }
                l->stats.tx_packets++;
                l->stats.tx_bytes += n;
                f->off += n;
                if (f->off == f->len) {
                        l->txq = f->next;
                        if (!l->txq)
                                l->txq_tail = NULL;
                        l->txq_bytes -= f->len;
                        free(f);
                }
        }
        if (l->want_writable && l->txq_bytes < TXQ_MAX / 2) {
                l->want_writable = false;
                if (l->cb->writable)
                        l->cb->writable(l->userdata);
        }
}

static void link_set_ready(struct smp_link *l) {
        if (l->state != ST_ACQUIRE || l->acquire_pending_write || l->acquire_pending_notify)
                return;
        l->state = ST_READY;
        ble_debug(l->instance, l, "%s ready: write %s, notify %s, ATT MTU %u", l->address, l->write_fd >= 0 ? "socket" : "WriteValue",
                  l->notify_fd >= 0 ? "socket" : "StartNotify", l->mtu);
        link_flush(l);
}

static bool acquire_refused(int r) {
        return r == -EPERM || r == -EIO || r == -EOPNOTSUPP || r == -EINPROGRESS;
}

static int on_start_notify(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct smp_link *l = userdata;
        l->call = sd_bus_slot_unref(l->call);
        l->acquire_pending_notify = false;
        int r = reply_errno(l->instance, l, "StartNotify", m);
        if (r < 0) {
                link_fail(l, r);
                return 0;
        }
        l->notify_dbus = true;
        link_set_ready(l);
        return 0;
}

static void link_start_notify(struct smp_link *l) {
        int r = sd_bus_call_method_async(l->bus, &l->call, BLUEZ, l->chrc_path, CHRC_IFACE, "StartNotify",
                                         on_start_notify, l, NULL);
        if (r < 0)
                link_fail(l, r);
}

static int read_acquired(struct smp_link *l, sd_bus_message *m, int *ret_fd) {
        int fd;
        uint16_t mtu;
        int r = sd_bus_message_read(m, "hq", &fd, &mtu);
        if (r < 0)
                return r;
        /* The fd belongs to the message. */
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return -errno;
        if (mtu >= ATT_MTU_MIN)
                l->mtu = MIN((unsigned) mtu, ATT_MTU_MAX);
        *ret_fd = copy;
        return 0;
}

static int on_acquire_notify(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct smp_link *l = userdata;
        l->call = sd_bus_slot_unref(l->call);
        int r = reply_errno(l->instance, l, "AcquireNotify", m);
        if (r < 0) {
                if (acquire_refused(r)) {
                        ble_debug(l->instance, l, "AcquireNotify refused, using StartNotify");
                        link_start_notify(l);
                } else
                        link_fail(l, r);
                return 0;
        }
        r = read_acquired(l, m, &l->notify_fd);
        if (r >= 0)
                r = sd_event_add_io(l->event, &l->notify_src, l->notify_fd, EPOLLIN, on_notify_io, l);
        if (r < 0) {
                link_fail(l, r);
                return 0;
        }
        l->acquire_pending_notify = false;
        link_set_ready(l);
        return 0;
}

static void link_notify_path(struct smp_link *l) {
        if (l->mode_notify) {
                link_start_notify(l);
                return;
        }
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r = sd_bus_message_new_method_call(l->bus, &m, BLUEZ, l->chrc_path, CHRC_IFACE, "AcquireNotify");
        if (r >= 0)
                r = sd_bus_message_append(m, "a{sv}", 0);
        if (r >= 0)
                r = sd_bus_call_async(l->bus, &l->call, m, on_acquire_notify, l, 0);
        if (r < 0)
                link_fail(l, r);
}

static int on_acquire_write(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct smp_link *l = userdata;
        l->call = sd_bus_slot_unref(l->call);
        int r = reply_errno(l->instance, l, "AcquireWrite", m);
        if (r < 0) {
                if (!acquire_refused(r)) {
                        link_fail(l, r);
                        return 0;
                }
                ble_debug(l->instance, l, "AcquireWrite refused, using WriteValue(type=command)");
                l->write_dbus = true;
        } else {
                r = read_acquired(l, m, &l->write_fd);
                if (r >= 0)
                        r = sd_event_add_io(l->event, &l->write_src, l->write_fd, EPOLLIN, on_write_io, l);
                if (r < 0) {
                        link_fail(l, r);
                        return 0;
                }
        }
        l->acquire_pending_write = false;
        link_notify_path(l);
        return 0;
}

void link_start_acquire(struct smp_link *l) {
        l->state = ST_ACQUIRE;
        l->acquire_pending_write = true;
        l->acquire_pending_notify = true;
        if (l->mode_notify) {
                l->write_dbus = true;
                l->acquire_pending_write = false;
                link_notify_path(l);
                return;
        }
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r = sd_bus_message_new_method_call(l->bus, &m, BLUEZ, l->chrc_path, CHRC_IFACE, "AcquireWrite");
        if (r >= 0)
                r = sd_bus_message_append(m, "a{sv}", 0);
        if (r >= 0)
                r = sd_bus_call_async(l->bus, &l->call, m, on_acquire_write, l, 0);
        if (r < 0)
                link_fail(l, r);
}

void link_restart(struct smp_link *l) {
        l->retries++;
        ble_debug(l->instance, l, "link lost before it was ready, connecting again (retry %u)", l->retries);
        l->call = sd_bus_slot_unref(l->call);
        l->write_src = sd_event_source_disable_unref(l->write_src);
        l->notify_src = sd_event_source_disable_unref(l->notify_src);
        if (l->write_fd >= 0)
                close(l->write_fd);
        if (l->notify_fd >= 0)
                close(l->notify_fd);
        l->write_fd = l->notify_fd = -1;
        l->notify_dbus = l->write_dbus = false;
        l->acquire_pending_write = l->acquire_pending_notify = false;
        l->resolved = false;
        l->state = ST_RETRY;
        if (link_set_timer(l, RETRY_DELAY_USEC, on_retry) < 0)
                link_fail(l, -ENOMEM);
}

static int txq_push(struct smp_link *l, const uint8_t *data, size_t len) {
        struct tx_frame *f = malloc(sizeof(*f) + len);
        if (!f)
                return -ENOMEM;
        f->next = NULL;
        f->len = len;
        f->off = 0;
        memcpy(f->data, data, len);
        if (l->txq_tail)
                l->txq_tail->next = f;
        else
                l->txq = f;
        l->txq_tail = f;
        l->txq_bytes += len;
        return 0;
}

int ble_send(struct smp_link *l, const uint8_t *frame, size_t len) {
        int r;

        if (l->state == ST_FAILED)
                return -ENOTCONN;
        if (len == 0)
                return -EINVAL;
        if (l->txq && l->txq_bytes + len > TXQ_MAX) {
                l->want_writable = true;
                return -EAGAIN;
        }
        /* Several frames in one call: each is cut on its own, since the
         * device reassembles one frame from its first piece's header. */
        while (len > 0) {
                size_t n = len;
                if (len >= SMP_HEADER_SIZE && SMP_HEADER_SIZE + (size_t) unaligned_read_be16(frame + 2) <= len)
                        n = SMP_HEADER_SIZE + unaligned_read_be16(frame + 2);
                r = txq_push(l, frame, n);
                if (r < 0)
                        return r;
                frame += n;
                len -= n;
        }
        if (l->state == ST_READY)
                link_flush(l);
        return 0;
}

void ble_get_info(struct smp_link *l, struct smp_link_info *ret) {
        *ret = (struct smp_link_info) {
                .mtu = l->mtu - ATT_HDR,
                .fragments = true,
                .stream = true,
                /* L2CAP header + ATT opcode and handle */
                .overhead = 4 + ATT_HDR,
        };
}

void ble_get_stats(struct smp_link *l, struct smp_link_stats *ret) {
        *ret = l->stats;
}

/* ------------------------------------------------------------------ */
struct ble_linger {
        struct smp_transport_instance *instance;
        struct ble_linger *next;
        sd_bus *bus;
        sd_bus_slot *slot;
        sd_event_source *timer;
        sd_event *event;
        uint64_t until;          /* CLOCK_MONOTONIC */
        char device_path[128];
};

/* One whose loop no longer runs does not count past LINGER_USEC. */
bool linger_pending(struct smp_transport_instance *i, sd_event *event, const char *device_path) {
        uint64_t now;
        if (sd_event_now(event, CLOCK_MONOTONIC, &now) < 0)
                return false;
        for (struct ble_linger *g = i->lingers; g; g = g->next)
                if (g->event == event && g->until > now && streq(g->device_path, device_path))
                        return true;
        return false;
}

static void linger_free(struct ble_linger *g) {
        for (struct ble_linger **p = &g->instance->lingers; *p; p = &(*p)->next)
                if (*p == g) {
                        *p = g->next;
                        break;
                }
        g->slot = sd_bus_slot_unref(g->slot);
        g->timer = sd_event_source_disable_unref(g->timer);
        if (g->bus) {
                (void) sd_bus_flush(g->bus);
                g->bus = sd_bus_close_unref(g->bus);
        }
        free(g);
}

static int on_linger_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct ble_linger *g = userdata;
        (void) reply_errno(g->instance, g, "Disconnect", m);
        linger_free(g);
        return 0;
}

static int on_linger_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        linger_free(userdata);
        return 0;
}

void linger_start(struct smp_link *l) {
        struct ble_linger *g = calloc(1, sizeof(*g));
        int r;

        if (!g) {
                (void) sd_bus_call_method_async(l->bus, NULL, BLUEZ, l->device_path, DEVICE_IFACE, "Disconnect",
                                                NULL, NULL, NULL);
                return;
        }
        g->instance = l->instance;
        snprintf(g->device_path, sizeof(g->device_path), "%s", l->device_path);
        g->event = l->event;   /* the bus keeps a reference */
        if (sd_event_now(l->event, CLOCK_MONOTONIC, &g->until) >= 0)
                g->until += LINGER_USEC;
        r = sd_bus_call_method_async(l->bus, &g->slot, BLUEZ, l->device_path, DEVICE_IFACE, "Disconnect",
                                     on_linger_reply, g, NULL);
        if (r >= 0)
                r = sd_event_add_time_relative(l->event, &g->timer, CLOCK_MONOTONIC, LINGER_USEC, 0,
                                               on_linger_timeout, g);
        ble_debug(l->instance, l, "Disconnect %s: %s", l->device_path, r < 0 ? strerror(-r) : "sent");
        /* The link's signal matches go with the link; the bus stays. */
        l->match_added = sd_bus_slot_unref(l->match_added);
        l->match_removed = sd_bus_slot_unref(l->match_removed);
        l->match_props = sd_bus_slot_unref(l->match_props);
        l->match_owner = sd_bus_slot_unref(l->match_owner);
        g->bus = TAKE_PTR(l->bus);
        g->next = l->instance->lingers;
        l->instance->lingers = g;
        if (r < 0)
                linger_free(g);
}

/* The instance goes: Disconnects still unanswered are flushed out now. */
void lingers_free(struct smp_transport_instance *i) {
        while (i->lingers)
                linger_free(i->lingers);
}

/* ------------------------------------------------------------------ */
struct smp_transport_discovery {
        struct smp_transport_instance *instance;
        unsigned n_ref;
        bool stopped;
        sd_event *event;
        sd_bus *bus;
        smp_discovered_fn found;
        void *userdata;
        char adapter_name[16];
        uint64_t duration_usec;
        sd_bus_slot *match_added, *match_props, *call;
        sd_event_source *timer;
        char (*adapters)[64];
        size_t n_adapters;
        char **seen;
        size_t n_seen;
};

static void discovery_free(struct smp_transport_discovery *d) {
        d->match_added = sd_bus_slot_unref(d->match_added);
        d->match_props = sd_bus_slot_unref(d->match_props);
        d->call = sd_bus_slot_unref(d->call);
        d->timer = sd_event_source_disable_unref(d->timer);
        if (d->bus) {
                (void) sd_bus_flush(d->bus);
                d->bus = sd_bus_close_unref(d->bus);
        }
        for (size_t i = 0; i < d->n_seen; i++)
                free(d->seen[i]);
        free(d->seen);
        free(d->adapters);
        sd_event_unref(d->event);
        free(d);
}

static void discovery_unref(struct smp_transport_discovery *d) {
        if (d && --d->n_ref == 0)
                discovery_free(d);
}

static void discovery_unrefp(struct smp_transport_discovery **d) {
        discovery_unref(*d);
}

static void discovery_stop_all(struct smp_transport_discovery *d) {
        for (size_t i = 0; i < d->n_adapters; i++)
                (void) sd_bus_call_method_async(d->bus, NULL, BLUEZ, d->adapters[i], ADAPTER_IFACE, "StopDiscovery",
                                                NULL, NULL, NULL);
        d->n_adapters = 0;
}

/* Ends the discovery with found(NULL), once. */
static void discovery_end(struct smp_transport_discovery *d) {
        if (d->stopped)
                return;
        d->stopped = true;
        d->timer = sd_event_source_disable_unref(d->timer);
        discovery_stop_all(d);
        d->found(NULL, d->userdata);
}

static bool adapter_wanted(const struct smp_transport_discovery *d, const char *adapter_path) {
        if (!d->adapter_name[0])
                return true;
        const char *slash = strrchr(adapter_path, '/');
        return slash && streq(slash + 1, d->adapter_name);
}

static int discovery_on_iface(void *ctx, const char *path, const char *iface, const struct dev_props *p) {
        struct smp_transport_discovery *d = ctx;

        if (d->stopped)
                return 0;
        if (streq(iface, ADAPTER_IFACE)) {
                if (!adapter_wanted(d, path) || d->n_adapters >= 16)
                        return 0;
                void *n = realloc(d->adapters, (d->n_adapters + 1) * sizeof(*d->adapters));
                if (!n)
                        return -ENOMEM;
                d->adapters = n;
                snprintf(d->adapters[d->n_adapters++], 64, "%s", path);
                return 0;
        }
        if (!streq(iface, DEVICE_IFACE) || !p->address || !p->adapter || !adapter_wanted(d, p->adapter))
                return 0;
        /* BlueZ merges the filters of all clients: check ours again.
         * Without RSSI the device was not seen in this scan (a cached
         * one); it counts once it advertises (PropertiesChanged RSSI). */
        if (!p->smp_uuid || !p->has_rssi || p->rssi < DISCOVERY_RSSI_FLOOR)
                return 0;
        for (size_t i = 0; i < d->n_seen; i++)
                if (streq(d->seen[i], path))
                        return 0;
        if (d->n_seen >= DISCOVERY_SEEN_MAX)
                return 0;
        void *n = realloc(d->seen, (d->n_seen + 1) * sizeof(char *));
        if (!n)
                return -ENOMEM;
        d->seen = n;
        d->seen[d->n_seen] = strdup(path);
        if (!d->seen[d->n_seen])
                return -ENOMEM;
        d->n_seen++;

        char conn[32];
        snprintf(conn, sizeof(conn), "ble:%s", p->address);
        const char *slash = strrchr(p->adapter, '/');
        struct smp_discovered found = {
                .conn = conn,
                .name = p->name,
                .address = p->address,
                .address_type = p->address_type,
                .adapter = slash ? slash + 1 : p->adapter,
                .has_rssi = p->has_rssi,
                .rssi = p->rssi,
        };
        d->found(&found, d->userdata);
        return 0;
}

static int on_discovery_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        _cleanup_(discovery_unrefp) struct smp_transport_discovery *d = userdata;
        d->n_ref++;
        discovery_end(d);
        return 0;
}

static int on_discovery_started(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct smp_transport_discovery *d = userdata;
        int r = reply_errno(d->instance, d, "StartDiscovery", m);
        (void) r; /* one adapter off does not end the scan */
        return 0;
}

static int on_discovery_filter(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct smp_transport_discovery *d = userdata;
        const char *path = sd_bus_message_get_path(m);
        (void) reply_errno(d->instance, d, "SetDiscoveryFilter", m);
        (void) path;
        return 0;
}

static int on_discovery_objects(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(discovery_unrefp) struct smp_transport_discovery *d = userdata;
        d->n_ref++;
        d->call = sd_bus_slot_unref(d->call);
        int r = reply_errno(d->instance, d, "GetManagedObjects", m);
        if (r >= 0)
                r = read_managed_objects(m, discovery_on_iface, d);
        if (d->stopped)
                return 0;
        if (r < 0 || d->n_adapters == 0) {
                ble_debug(d->instance, d, "discovery: no adapter (%s)", r < 0 ? strerror(-r) : "none");
                discovery_end(d);
                return 0;
        }
        for (size_t i = 0; i < d->n_adapters; i++) {
                /* The filter goes first on the same connection, so BlueZ
                 * applies it before StartDiscovery. */
                r = call_set_filter(d->bus, d->adapters[i], true, NULL, on_discovery_filter, d);
                if (r >= 0)
                        r = sd_bus_call_method_async(d->bus, NULL, BLUEZ, d->adapters[i], ADAPTER_IFACE,
                                                     "StartDiscovery", on_discovery_started, d, NULL);
                if (r < 0)
                        ble_debug(d->instance, d, "discovery on %s: %s", d->adapters[i], strerror(-r));
        }
        r = sd_event_add_time_relative(d->event, &d->timer, CLOCK_MONOTONIC, d->duration_usec, 0,
                                       on_discovery_timer, d);
        if (r < 0)
                discovery_end(d);
        return 0;
}

static int on_discovery_match_installed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct smp_transport_discovery *d = userdata;
        if (d->call || d->stopped)
                return 0;
        int r = sd_bus_call_method_async(d->bus, &d->call, BLUEZ, "/", OM_IFACE, "GetManagedObjects",
                                         on_discovery_objects, d, NULL);
        if (r < 0) {
                d->n_ref++;
                discovery_end(d);
                discovery_unref(d);
        }
        return 0;
}

static int on_discovery_added(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(discovery_unrefp) struct smp_transport_discovery *d = userdata;
        const char *path;
        d->n_ref++;
        if (d->stopped || !d->timer || sd_bus_message_read_basic(m, 'o', &path) < 0)
                return 0;
        (void) read_ifaces(m, path, discovery_on_iface, d);
        return 0;
}

struct getall_ctx {
        struct smp_transport_discovery *d;
        char path[];
};

static int on_discovery_getall(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct getall_ctx *c = userdata;
        struct smp_transport_discovery *d = c->d;
        struct dev_props p = {};
        d->n_ref++;
        if (!d->stopped && !sd_bus_message_is_method_error(m, NULL) && read_props(m, &p) >= 0)
                (void) discovery_on_iface(d, c->path, DEVICE_IFACE, &p);
        discovery_unref(d);
        return 0;
}

static void getall_ctx_free(void *userdata) {
        struct getall_ctx *c = userdata;
        discovery_unref(c->d);
        free(c);
}

static int on_discovery_props(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(discovery_unrefp) struct smp_transport_discovery *d = userdata;
        const char *path = sd_bus_message_get_path(m), *iface;
        struct dev_props p = {};
        d->n_ref++;
        if (d->stopped || !d->timer || !path || sd_bus_message_read_basic(m, 's', &iface) < 0 ||
            !streq(iface, DEVICE_IFACE))
                return 0;
        for (size_t i = 0; i < d->n_seen; i++)
                if (streq(d->seen[i], path))
                        return 0;
        /* A device not reported yet whose UUIDs or RSSI changed: the
         * signal has only the changed properties, so fetch them all. */
        if (read_props(m, &p) < 0 || (!p.smp_uuid && !p.has_rssi))
                return 0;
        _cleanup_free_ struct getall_ctx *c = malloc(sizeof(*c) + strlen(path) + 1);
        if (!c)
                return 0;
        strcpy(c->path, path);
        sd_bus_slot *slot = NULL;
        if (sd_bus_call_method_async(d->bus, &slot, BLUEZ, path, PROPS_IFACE, "GetAll", on_discovery_getall, c, "s",
                                     DEVICE_IFACE) < 0)
                return 0;
        c->d = d;
        d->n_ref++;
        (void) sd_bus_slot_set_destroy_callback(slot, getall_ctx_free);
        (void) sd_bus_slot_set_floating(slot, 1);
        sd_bus_slot_unref(slot);
        c = NULL;
        return 0;
}

static bool opt_is(const char *opt, size_t len, const char *key, const char **ret_value, size_t *ret_len) {
        size_t k = strlen(key);
        if (len <= k + 1 || strncmp(opt, key, k) != 0 || opt[k] != '=')
                return false;
        *ret_value = opt + k + 1;
        *ret_len = len - k - 1;
        return true;
}

/* "hciN" */
static bool adapter_valid(const char *s, size_t len) {
        return len >= 4 && len <= 8 && strncmp(s, "hci", 3) == 0 && smp_parse_uint_n(s + 3, len - 3, 0, UINT64_MAX, NULL) >= 0;
}

int ble_discover_start(struct smp_transport_instance *instance, sd_event *event, const char *args,
                       smp_discovered_fn found, void *userdata, struct smp_transport_discovery **ret) {
        struct smp_transport_discovery *d;
        int r;

        if (!event || !found || !ret)
                return -EINVAL;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->instance = instance;
        d->n_ref = 1;
        d->event = sd_event_ref(event);
        d->found = found;
        d->userdata = userdata;
        d->duration_usec = DISCOVERY_SECONDS_DEFAULT * 1000000ull;

        r = 0;
        for (const char *opt = args && *args ? args : NULL, *comma; opt; opt = comma ? comma + 1 : NULL) {
                comma = strchr(opt, ',');
                size_t len = comma ? (size_t) (comma - opt) : strlen(opt);
                const char *v;
                size_t vlen;
                uint64_t n;
                if (opt_is(opt, len, "seconds", &v, &vlen) &&
                    smp_parse_uint_n(v, vlen, 1, DISCOVERY_SECONDS_MAX, &n) >= 0)
                        d->duration_usec = n * 1000000ull;
                else if (opt_is(opt, len, "adapter", &v, &vlen) && adapter_valid(v, vlen)) {
                        memcpy(d->adapter_name, v, vlen);
                        d->adapter_name[vlen] = 0;
                } else {
                        r = -EINVAL;
                        break;
                }
        }
        if (r >= 0)
                r = sd_bus_open_system(&d->bus);
        if (r >= 0)
                r = sd_bus_attach_event(d->bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_match_signal_async(d->bus, &d->match_added, BLUEZ, NULL, OM_IFACE, "InterfacesAdded",
                                              on_discovery_added, NULL, d);
        if (r >= 0)
                r = sd_bus_add_match_async(d->bus, &d->match_props,
                                           "type='signal',sender='" BLUEZ "',interface='" PROPS_IFACE
                                           "',member='PropertiesChanged',path_namespace='/org/bluez'",
                                           on_discovery_props, on_discovery_match_installed, d);
        if (r < 0) {
                discovery_free(d);
                return r;
        }
        *ret = d;
        return 0;
}

void ble_discover_stop(struct smp_transport_discovery *d) {
        if (!d)
                return;
        d->stopped = true;
        discovery_stop_all(d);
        d->timer = sd_event_source_disable_unref(d->timer);
        d->call = sd_bus_slot_unref(d->call);
        d->match_added = sd_bus_slot_unref(d->match_added);
        d->match_props = sd_bus_slot_unref(d->match_props);
        discovery_unref(d);
}

/* ------------------------------------------------------------------ */
static const char *const mode_words[] = { "acquire", "notify", NULL };

static const struct smp_conn_option ble_options[] = {
        { .name = "adapter", .type = SMP_CONN_OPTION_INDEXED, .prefix = "hci", .min = 0, .max = 99999 },
        { .name = "mode", .type = SMP_CONN_OPTION_WORD, .words = mode_words },
        { .name = "connect-timeout", .type = SMP_CONN_OPTION_UINT, .min = 1, .max = 600000 },
        { .name = "resolve-timeout", .type = SMP_CONN_OPTION_UINT, .min = 1, .max = 600000 },
        { .name = "max-connections", .type = SMP_CONN_OPTION_UINT, .min = 1, .max = MAX_CONNECTIONS_MAX },
};

static const struct smp_conn_syntax ble_syntax = {
        .address = SMP_CONN_ADDRESS_BDADDR,
        .options = ble_options,
        .n_options = ELEMENTSOF(ble_options),
};

void ble_link_apply_conn(struct smp_link *l, const struct smp_conn *conn) {
        const char *adapter = smp_conn_get_option(conn, "adapter");
        uint64_t v;

        snprintf(l->address, sizeof(l->address), "%s", smp_conn_get_bdaddr(conn));
        if (adapter)
                snprintf(l->adapter_name, sizeof(l->adapter_name), "%s", adapter);
        if (smp_conn_get_option_uint(conn, "mode", &v))
                l->mode_notify = v == 1;
        if (smp_conn_get_option_uint(conn, "connect-timeout", &v))
                l->connect_timeout_usec = v * 1000u;
        if (smp_conn_get_option_uint(conn, "resolve-timeout", &v))
                l->resolve_timeout_usec = v * 1000u;
        if (smp_conn_get_option_uint(conn, "max-connections", &v))
                l->instance->max_connections = (unsigned) v;
}

static int ble_instance_new(const struct smp_host *host, struct smp_transport_instance **ret) {
        struct smp_transport_instance *i = calloc(1, sizeof(*i));
        if (!i)
                return -ENOMEM;
        i->host = host;
        i->max_connections = MAX_CONNECTIONS_DEFAULT;
        *ret = i;
        return 0;
}

static void ble_instance_free(struct smp_transport_instance *i) {
        if (!i)
                return;
        lingers_free(i);
        adapters_free(i);
        free(i);
}

const struct smp_transport smpgw_transport_plugin = {
        .abi_version = SMP_TRANSPORT_ABI_VERSION,
        .struct_size = sizeof(struct smp_transport),
        .name = "ble",
        .description = "SMP GATT service over Bluetooth LE through BlueZ (D-Bus)",
        .conn_syntax = &ble_syntax,
        .instance_new = ble_instance_new,
        .instance_free = ble_instance_free,
        .open = ble_open,
        .close = ble_close,
        .send = ble_send,
        .get_info = ble_get_info,
        .get_stats = ble_get_stats,
        .discover_start = ble_discover_start,
        .discover_stop = ble_discover_stop,
};

