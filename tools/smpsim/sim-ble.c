/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A fake org.bluez over sd-bus, backed by the simulated devices.  What it
 * does follows BlueZ 5.66: the documented API (doc/adapter-api.txt,
 * doc/device-api.txt, doc/gatt-api.txt) and, where the documentation
 * leaves a choice, what bluetoothd 5.66 answers (src/adapter.c,
 * src/device.c, src/gatt-client.c); see doc/smpsim.md.
 *
 * The device side is Zephyr's SMP Bluetooth transport (smp_bt.c with
 * CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY): write commands are collected
 * until the SMP header's length is complete, and answers are notified in
 * pieces of ATT_MTU-3 bytes, only while notifications are enabled.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "sim-ble.h"
#include "util.h"

#define BLUEZ_ERROR "org.bluez.Error."
#define ADAPTER_IFACE "org.bluez.Adapter1"
#define DEVICE_IFACE "org.bluez.Device1"
#define SERVICE_IFACE "org.bluez.GattService1"
#define CHRC_IFACE "org.bluez.GattCharacteristic1"
#define DESC_IFACE "org.bluez.GattDescriptor1"

#define SMP_SERVICE_UUID "8d53dc1d-1db7-4cd3-868b-8a527460aa84"
#define SMP_CHRC_UUID "da2e7828-fbce-4e01-ae9e-261174997c48"
#define CCC_UUID "00002902-0000-1000-8000-00805f9b34fb"
#define BASE_UUID_TAIL "-0000-1000-8000-00805f9b34fb"

#define SERVICE_SEG "/service0010"
#define CHRC_SEG "/char0011"
#define DESC_SEG "/desc0013"

#define ATT_MTU_MAX 517u
/* BlueZ reads at most this much from an AcquireWrite socket (sock_read). */
#define ACQUIRE_READ_MAX 512u
#define SCAN_TICK_US 100000ULL
/* A device advertising on is heard again after this (on_scan_tick()). */
#define REPORT_REPEAT_US 1000000ULL
#define DISCONNECT_US 20000ULL
#define PATH_LEN 96
#define DEV_PATH_LEN 64
#define ADDR_LEN 24
#define FILTER_UUIDS_MAX 32
#define DISCONNECT_MSGS_MAX 8
/* Notifications waiting for a connection event, per link. */
#define TXQ_MAX 4096u

enum path_kind {
        PATH_NONE,
        PATH_ADAPTER,
        PATH_DEVICE,
        PATH_SERVICE,
        PATH_CHRC,
        PATH_DESC,
};

enum link_state {
        LINK_IDLE,
        LINK_CONNECTING,
        LINK_CONNECTED,
};

enum timer_action {
        T_NONE,
        T_CONNECT,          /* the connection is established (or refused by a fault) */
        T_CONNECT_TIMEOUT,  /* the device never advertised: the attempt is aborted */
        T_RESOLVE,          /* GATT discovery done */
        T_EXPORT,           /* resolved-early: the objects come after ServicesResolved */
        T_LINK_LOSS,        /* supervision timeout after the device went away */
        T_DISCONNECT,       /* Disconnect() completes */
};

enum acquire_fault {
        ACQUIRE_OK,
        ACQUIRE_NOT_PERMITTED,
        ACQUIRE_FAILED,
        /* BlueZ < 5.84 after an AcquireNotify that failed half way:
         * AcquireNotify and StartNotify both NotPermitted "Notify acquired" */
        ACQUIRE_STUCK,
        /* a device that wants an authenticated link, and pairing that no
         * one answers: bluetoothd raises security and sends the CCC write
         * again, and AcquireNotify and StartNotify get no answer; an
         * AcquireNotify left so leaves the characteristic as STUCK (5.66,
         * fixed in 5.84 by 476ae809a) */
        ACQUIRE_SILENT,
};

struct ble_faults {
        unsigned connect_fail;
        uint32_t resolve_late_ms;
        bool resolved_early;
        /* Connect() answered at ServicesResolved: later than bluetoothd,
         * whose att_connect_cb() answers once the ATT channel is up. */
        bool reply_at_resolved;
        /* Its advertisements never reach the host: no scan reports it
         * (a Connect() still finds it while it advertises). */
        bool unseen;
        int64_t disconnect_at;
        enum acquire_fault acquire_write, acquire_notify;
};

struct ble_filter {
        char uuids[FILTER_UUIDS_MAX][37];
        unsigned n_uuids;
        bool has_rssi, has_pathloss;
        int16_t rssi;
        uint16_t pathloss;
        char transport[8];
        bool duplicate_data, discoverable;
        char *pattern;
};

enum client_kind {
        CLIENT_DISCOVERY,
        CLIENT_NOTIFY,
};

/* A D-Bus peer holding a discovery session / filter or a notify session;
 * forgotten when it leaves the bus. */
struct ble_client {
        struct ble_client *next;
        enum client_kind kind;
        void *owner;              /* struct ble_adapter or struct ble_peer */
        char *sender;
        sd_bus_track *track;
        bool discovering;
        bool has_filter;
        struct ble_filter filter;
};

struct sim_ble;
struct ble_peer;

/* The Device1 object of one simulated device on one adapter. */
struct ble_obj {
        struct ble_peer *peer;
        unsigned adapter;
        bool exported;
        bool temporary;
        bool rssi_valid;
        /* This advertising period was reported to the host (the
         * controller's duplicate filter; on_scan_tick()). */
        bool reported;
        uint64_t reported_us;
        bool remove_on_disconnect;
        bool trusted, blocked;
        char *alias;
        uint64_t last_seen_us;
};

struct ble_note {
        struct ble_note *next;
        size_t len;
        uint8_t data[];
};

/* One simulated device as a BLE peripheral: one connection at a time
 * (Zephyr's default CONFIG_BT_MAX_CONN=1), on any adapter. */
struct ble_peer {
        struct sim_ble *ble;
        struct sim_device *d;
        struct ble_obj *objs;     /* one per adapter */
        struct ble_faults faults;

        enum link_state state;
        unsigned adapter;
        uint32_t conn_id;
        uint16_t mtu;
        bool gatt_exported, services_resolved, disconnecting;
        sd_bus_message *connect_msg;
        sd_bus_message *disconnect_msgs[DISCONNECT_MSGS_MAX];
        unsigned n_disconnect_msgs;
        uint64_t connect_deadline_us;
        sd_event_source *timer;
        enum timer_action action;

        struct ble_client *notify_clients;
        int write_fd, notify_fd;
        sd_event_source *write_source, *notify_source;
        uint8_t value[ATT_MTU_MAX];
        size_t value_len;
        bool value_set;

        /* Zephyr smp_reassembly: the packet being collected */
        uint8_t *rx;
        size_t rx_len, rx_expected, rx_alloc;

        struct ble_note *txq_head, **txq_tail;
        unsigned txq_len;
        sd_event_source *tx_timer;

        struct {
                uint64_t writes, write_bytes, dropped_writes;
                uint64_t notifications, dropped_notifications;
                uint64_t connects, connect_failures, link_losses;
                /* Connect()s begun while the device did not advertise
                 * (rebooting): each holds the adapter's LE connect in
                 * progress until it times out or is cancelled. */
                uint64_t silent_connects;
        } stats;
};

struct ble_adapter {
        struct sim_ble *ble;
        unsigned index;
        char path[32];
        char address[18];
        char *alias;
        bool powered, discoverable, pairable, discovering;
        uint32_t discoverable_timeout, pairable_timeout;
        struct ble_client *clients;
        sd_event_source *scan_timer;
        sd_event_source *sweep_timer;
        /* The controller's link limit (0: unlimited) and the connections
         * it refused for want of a free link. */
        unsigned max_links;
        uint64_t refused;
};

struct sim_ble {
        struct sim *sim;
        struct sim_ble_config cfg;
        sd_bus *bus;
        struct ble_adapter *adapters;
        struct ble_peer *peers;
        unsigned n_peers;
        uint32_t next_conn_id;
};

static struct sim_ble *ble_of(struct sim *sim) {
        return sim->ble;
}

static struct ble_peer *peer_of(struct sim_device *d) {
        struct sim_ble *ble = ble_of(d->sim);
        if (!ble || d->index >= ble->n_peers)
                return NULL;
        return &ble->peers[d->index];
}

/* ---- names and paths ---- */

static void peer_address(const struct ble_peer *p, char buf[ADDR_LEN]) {
        unsigned i = p->d->index;
        snprintf(buf, ADDR_LEN, "C0:DE:00:00:%02X:%02X", (uint8_t) (i >> 8), (uint8_t) i);
}

static void device_path(const struct ble_peer *p, unsigned adapter, char buf[DEV_PATH_LEN]) {
        unsigned i = p->d->index;
        snprintf(buf, DEV_PATH_LEN, "/org/bluez/hci%u/dev_C0_DE_00_00_%02X_%02X", (uint8_t) adapter, (uint8_t) (i >> 8),
                 (uint8_t) i);
}

static void gatt_path(const struct ble_peer *p, enum path_kind kind, char buf[PATH_LEN]) {
        char dev[DEV_PATH_LEN];
        device_path(p, p->adapter, dev);
        snprintf(buf, PATH_LEN, "%s%s%s%s", dev, SERVICE_SEG, kind >= PATH_CHRC ? CHRC_SEG : "",
                 kind >= PATH_DESC ? DESC_SEG : "");
}

static int hex_byte(const char *s, unsigned *ret) {
        unsigned v = 0;
        for (int i = 0; i < 2; i++) {
                char c = s[i];
                if (c >= '0' && c <= '9')
                        v = v * 16 + (unsigned) (c - '0');
                else if (c >= 'A' && c <= 'F')
                        v = v * 16 + (unsigned) (c - 'A' + 10);
                else
                        return -EINVAL;
        }
        *ret = v;
        return 0;
}

/* Which object a path names; ret_peer is set from PATH_DEVICE on. */
static enum path_kind path_parse(struct sim_ble *ble, const char *path, unsigned *ret_adapter,
                                 struct ble_peer **ret_peer) {
        static const char prefix[] = "/org/bluez/hci";
        static const char dev_prefix[] = "/dev_C0_DE_00_00_";

        if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
                return PATH_NONE;
        const char *s = path + sizeof(prefix) - 1;
        if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
                return PATH_NONE;
        unsigned a = 0;
        while (*s >= '0' && *s <= '9' && a < 1000)
                a = a * 10 + (unsigned) (*s++ - '0');
        if (a >= ble->cfg.adapters)
                return PATH_NONE;
        *ret_adapter = a;
        if (*s == 0)
                return PATH_ADAPTER;

        unsigned hi, lo;
        if (strncmp(s, dev_prefix, sizeof(dev_prefix) - 1) != 0)
                return PATH_NONE;
        s += sizeof(dev_prefix) - 1;
        if (hex_byte(s, &hi) < 0 || s[2] != '_' || hex_byte(s + 3, &lo) < 0)
                return PATH_NONE;
        s += 5;
        unsigned index = hi << 8 | lo;
        if (index >= ble->n_peers)
                return PATH_NONE;
        *ret_peer = &ble->peers[index];
        if (*s == 0)
                return PATH_DEVICE;
        if (!streq(s, SERVICE_SEG) && strncmp(s, SERVICE_SEG "/", strlen(SERVICE_SEG) + 1) != 0)
                return PATH_NONE;
        s += strlen(SERVICE_SEG);
        if (*s == 0)
                return PATH_SERVICE;
        if (!streq(s, CHRC_SEG) && strncmp(s, CHRC_SEG "/", strlen(CHRC_SEG) + 1) != 0)
                return PATH_NONE;
        s += strlen(CHRC_SEG);
        if (*s == 0)
                return PATH_CHRC;
        return streq(s, DESC_SEG) ? PATH_DESC : PATH_NONE;
}

static bool peer_connected_on(const struct ble_peer *p, unsigned adapter) {
        return p->state == LINK_CONNECTED && p->adapter == adapter;
}

/* Zephyr stops advertising while connected (one connection) and while down. */
static bool peer_advertising(const struct ble_peer *p) {
        return p->state == LINK_IDLE && !p->d->rebooting;
}

/* Connected devices on an adapter: the links its controller holds. */
static unsigned adapter_links(const struct sim_ble *ble, unsigned adapter) {
        unsigned n = 0;
        for (unsigned i = 0; i < ble->n_peers; i++)
                if (peer_connected_on(&ble->peers[i], adapter))
                        n++;
        return n;
}

static int16_t peer_rssi(const struct ble_peer *p) {
        return (int16_t) (-40 - (int) (p->d->index % 50));
}

/* ---- signals ---- */

static void emit_changed(struct sim_ble *ble, const char *path, const char *iface, const char *prop) {
        int r = sd_bus_emit_properties_changed(ble->bus, path, iface, prop, NULL);
        if (r < 0)
                sim_log(ble->sim, 0, "ble: PropertiesChanged %s.%s on %s: %s", iface, prop, path, strerror(-r));
}

/* PropertiesChanged with the property only invalidated (it no longer
 * exists, like RSSI after discovery). */
static void emit_invalidated(struct sim_ble *ble, const char *path, const char *iface, const char *prop) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r = sd_bus_message_new_signal(ble->bus, &m, path, "org.freedesktop.DBus.Properties", "PropertiesChanged");
        if (r >= 0)
                r = sd_bus_message_append(m, "sa{sv}as", iface, 0, 1, prop);
        if (r >= 0)
                r = sd_bus_send(ble->bus, m, NULL);
        if (r < 0)
                sim_log(ble->sim, 0, "ble: invalidating %s on %s: %s", prop, path, strerror(-r));
}

static void emit_added(struct sim_ble *ble, const char *path, const char *iface) {
        int r = sd_bus_emit_interfaces_added(ble->bus, path, iface, NULL);
        if (r < 0)
                sim_log(ble->sim, 0, "ble: InterfacesAdded %s: %s", path, strerror(-r));
}

static void emit_removed(struct sim_ble *ble, const char *path, const char *iface) {
        int r = sd_bus_emit_interfaces_removed(ble->bus, path, iface, NULL);
        if (r < 0)
                sim_log(ble->sim, 0, "ble: InterfacesRemoved %s: %s", path, strerror(-r));
}

static void device_emit(struct ble_peer *p, unsigned adapter, const char *prop) {
        char path[PATH_LEN];
        if (!p->objs[adapter].exported)
                return;
        device_path(p, adapter, path);
        emit_changed(p->ble, path, DEVICE_IFACE, prop);
}

static void chrc_emit(struct ble_peer *p, const char *prop) {
        char path[PATH_LEN];
        if (!p->gatt_exported)
                return;
        gatt_path(p, PATH_CHRC, path);
        emit_changed(p->ble, path, CHRC_IFACE, prop);
}

/* ---- clients ---- */

static void filter_done(struct ble_filter *f) {
        free(f->pattern);
        *f = (struct ble_filter) {};
}

static void client_free(struct ble_client **head, struct ble_client *c) {
        for (struct ble_client **pp = head; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                        *pp = c->next;
                        break;
                }
        sd_bus_track_unref(c->track);
        filter_done(&c->filter);
        free(c->sender);
        free(c);
}

static struct ble_client *client_find(struct ble_client *head, const char *sender) {
        for (struct ble_client *c = head; c; c = c->next)
                if (streq(c->sender, sender))
                        return c;
        return NULL;
}

static int on_client_gone(sd_bus_track *t, void *userdata);

static int client_new(struct sim_ble *ble, struct ble_client **head, enum client_kind kind, void *owner,
                      sd_bus_message *m, struct ble_client **ret) {
        _cleanup_free_ struct ble_client *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->kind = kind;
        c->owner = owner;
        c->sender = strdup(sd_bus_message_get_sender(m) ?: "");
        if (!c->sender)
                return -ENOMEM;
        int r = sd_bus_track_new(ble->bus, &c->track, on_client_gone, c);
        if (r >= 0)
                r = sd_bus_track_add_sender(c->track, m);
        if (r < 0) {
                sd_bus_track_unref(c->track);
                free(c->sender);
                return r;
        }
        c->next = *head;
        *head = c;
        *ret = TAKE_PTR(c);
        return 0;
}

/* ---- GATT objects ---- */

static void gatt_export(struct ble_peer *p) {
        char path[PATH_LEN];
        if (p->gatt_exported)
                return;
        p->gatt_exported = true;
        gatt_path(p, PATH_SERVICE, path);
        emit_added(p->ble, path, SERVICE_IFACE);
        gatt_path(p, PATH_CHRC, path);
        emit_added(p->ble, path, CHRC_IFACE);
        gatt_path(p, PATH_DESC, path);
        emit_added(p->ble, path, DESC_IFACE);
}

static void gatt_unexport(struct ble_peer *p) {
        char path[PATH_LEN];
        if (!p->gatt_exported)
                return;
        gatt_path(p, PATH_DESC, path);
        emit_removed(p->ble, path, DESC_IFACE);
        gatt_path(p, PATH_CHRC, path);
        emit_removed(p->ble, path, CHRC_IFACE);
        gatt_path(p, PATH_SERVICE, path);
        emit_removed(p->ble, path, SERVICE_IFACE);
        p->gatt_exported = false;
}

static void obj_export(struct ble_obj *o) {
        char path[PATH_LEN];
        if (o->exported)
                return;
        o->exported = true;
        o->temporary = true;
        device_path(o->peer, o->adapter, path);
        emit_added(o->peer->ble, path, DEVICE_IFACE);
}

static void obj_unexport(struct ble_obj *o) {
        char path[PATH_LEN];
        if (!o->exported)
                return;
        device_path(o->peer, o->adapter, path);
        emit_removed(o->peer->ble, path, DEVICE_IFACE);
        o->exported = false;
        o->rssi_valid = false;
        o->remove_on_disconnect = false;
        o->trusted = o->blocked = false;
        free(o->alias);
        o->alias = NULL;
}

/* ---- the link ---- */

static void peer_arm(struct ble_peer *p, enum timer_action action, uint64_t at_us);

static void acquired_close(struct ble_peer *p, bool write_side, bool emit) {
        int *fd = write_side ? &p->write_fd : &p->notify_fd;
        sd_event_source **src = write_side ? &p->write_source : &p->notify_source;
        if (*fd < 0)
                return;
        *src = sd_event_source_disable_unref(*src);
        close(*fd);
        *fd = -1;
        if (!emit)
                return;
        chrc_emit(p, write_side ? "WriteAcquired" : "NotifyAcquired");
        if (!write_side && !p->notify_clients)
                chrc_emit(p, "Notifying");
}

static void txq_clear(struct ble_peer *p) {
        while (p->txq_head) {
                struct ble_note *n = p->txq_head;
                p->txq_head = n->next;
                free(n);
        }
        p->txq_tail = &p->txq_head;
        p->txq_len = 0;
        p->tx_timer = sd_event_source_disable_unref(p->tx_timer);
}

static void reply_error(sd_bus_message **m, const char *name, const char *text) {
        if (!*m)
                return;
        (void) sd_bus_reply_method_errorf(*m, name, "%s", text);
        *m = sd_bus_message_unref(*m);
}

static void connect_failed(struct ble_peer *p, const char *reason) {
        p->stats.connect_failures++;
        dev_log(p->d, 1, "ble: connect via hci%u failed: %s", p->adapter, reason);
        reply_error(&p->connect_msg, BLUEZ_ERROR "Failed", reason);
        p->state = LINK_IDLE;
        p->action = T_NONE;
        (void) sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
}

static bool adapter_full(const struct sim_ble *ble, unsigned adapter) {
        unsigned max = ble->adapters[adapter].max_links;
        return max > 0 && adapter_links(ble, adapter) >= max;
}

/* The controller has no room for another link: it answers LE Create
 * Connection with a resource error (Connection Limit Exceeded, Memory
 * Capacity Exceeded or Connection Rejected due to Limited Resources; the
 * kernel's Connect Failed mgmt event says "No Resources").  The kernel
 * fails bluetoothd's ATT socket with bt_to_errno() of it (EMLINK, ENOMEM,
 * ECONNREFUSED), and bluetoothd 5.66's att_connect_cb() (src/device.c)
 * answers every such socket error with -ECONNABORTED, so the client sees
 * what any aborted LE connection gives: Failed "le-connection-abort-by-local". */
static void refuse_no_free_link(struct ble_peer *p) {
        struct ble_adapter *a = &p->ble->adapters[p->adapter];
        a->refused++;
        dev_log(p->d, 1, "ble: hci%u has no free link (%u of %u in use): the controller refuses", a->index,
                adapter_links(p->ble, a->index), a->max_links);
        connect_failed(p, "le-connection-abort-by-local");
}

/* The connection ends (local Disconnect, link loss, adapter off):
 * ServicesResolved false, Connected false, the GATT objects go, acquired
 * sockets hang up. */
static void peer_link_down(struct ble_peer *p, const char *why) {
        if (p->state == LINK_CONNECTING) {
                connect_failed(p, "le-connection-abort-by-local");
                return;
        }
        if (p->state != LINK_CONNECTED)
                return;
        /* reply-at-resolved: lost before its services resolved. */
        reply_error(&p->connect_msg, BLUEZ_ERROR "Failed", "Software caused connection abort");

        unsigned a = p->adapter;
        dev_log(p->d, 1, "ble: disconnected from hci%u (%s)", a, why);
        acquired_close(p, true, false);
        acquired_close(p, false, false);
        while (p->notify_clients)
                client_free(&p->notify_clients, p->notify_clients);
        txq_clear(p);
        p->rx_len = p->rx_expected = 0;
        p->value_set = false;
        p->disconnecting = false;
        p->action = T_NONE;
        (void) sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);

        bool was_resolved = p->services_resolved;
        p->services_resolved = false;
        p->state = LINK_IDLE;
        if (was_resolved)
                device_emit(p, a, "ServicesResolved");
        device_emit(p, a, "Connected");
        gatt_unexport(p);

        for (unsigned i = 0; i < p->n_disconnect_msgs; i++) {
                (void) sd_bus_reply_method_return(p->disconnect_msgs[i], NULL);
                p->disconnect_msgs[i] = sd_bus_message_unref(p->disconnect_msgs[i]);
        }
        p->n_disconnect_msgs = 0;
        if (p->objs[a].remove_on_disconnect)
                obj_unexport(&p->objs[a]);
}

static void peer_connected(struct ble_peer *p, uint64_t now) {
        struct sim_ble *ble = p->ble;

        p->state = LINK_CONNECTED;
        p->conn_id = ++ble->next_conn_id;
        p->mtu = ble->cfg.mtu;
        p->rx_len = p->rx_expected = 0;
        p->stats.connects++;
        /* RSSI stays: bluetoothd invalidates it only when discovery
         * stops (adapter.c discovery_cleanup()), not on a connection. */
        dev_log(p->d, 1, "ble: connected via hci%u, ATT MTU %u", p->adapter, p->mtu);
        device_emit(p, p->adapter, "Connected");
        if (p->connect_msg && !p->faults.reply_at_resolved) {
                (void) sd_bus_reply_method_return(p->connect_msg, NULL);
                p->connect_msg = sd_bus_message_unref(p->connect_msg);
        }
        peer_arm(p, T_RESOLVE, now + (uint64_t) (ble->cfg.resolve_ms + p->faults.resolve_late_ms) * 1000);
}

static int on_peer_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct ble_peer *p = userdata;
        uint64_t now = sim_now_us(p->ble->sim);
        enum timer_action action = p->action;

        p->action = T_NONE;
        switch (action) {
        case T_NONE:
                break;
        case T_CONNECT:
                if (p->state != LINK_CONNECTING)
                        break;
                if (p->d->rebooting) {
                        peer_arm(p, T_CONNECT_TIMEOUT, p->connect_deadline_us);
                        break;
                }
                if (p->faults.connect_fail > 0) {
                        p->faults.connect_fail--;
                        connect_failed(p, "le-connection-abort-by-local");
                        break;
                }
                if (adapter_full(p->ble, p->adapter)) {
                        refuse_no_free_link(p);
                        break;
                }
                peer_connected(p, now);
                break;
        case T_CONNECT_TIMEOUT:
                if (p->state == LINK_CONNECTING)
                        connect_failed(p, "le-connection-abort-by-local");
                break;
        case T_RESOLVE:
                if (p->state != LINK_CONNECTED)
                        break;
                if (p->faults.resolved_early) {
                        p->services_resolved = true;
                        device_emit(p, p->adapter, "ServicesResolved");
                        if (p->connect_msg) {
                                (void) sd_bus_reply_method_return(p->connect_msg, NULL);
                                p->connect_msg = sd_bus_message_unref(p->connect_msg);
                        }
                        peer_arm(p, T_EXPORT, now + (uint64_t) p->ble->cfg.resolve_ms * 1000);
                        break;
                }
                gatt_export(p);
                p->services_resolved = true;
                device_emit(p, p->adapter, "ServicesResolved");
                if (p->connect_msg) {
                        (void) sd_bus_reply_method_return(p->connect_msg, NULL);
                        p->connect_msg = sd_bus_message_unref(p->connect_msg);
                }
                break;
        case T_EXPORT:
                if (p->state == LINK_CONNECTED)
                        gatt_export(p);
                break;
        case T_LINK_LOSS:
                p->stats.link_losses++;
                peer_link_down(p, "supervision timeout");
                break;
        case T_DISCONNECT:
                peer_link_down(p, "Disconnect()");
                break;
        }
        return 0;
}

static void peer_arm(struct ble_peer *p, enum timer_action action, uint64_t at_us) {
        int r;
        if (!p->timer) {
                r = sd_event_add_time(sim_event_loop(p->ble->sim), &p->timer, CLOCK_MONOTONIC, at_us, 1,
                                      on_peer_timer, p);
                if (r < 0) {
                        dev_log(p->d, 0, "ble: timer: %s", strerror(-r));
                        return;
                }
        } else
                (void) sd_event_source_set_time(p->timer, at_us);
        p->action = action;
        (void) sd_event_source_set_enabled(p->timer, SD_EVENT_ONESHOT);
}

/* ---- data path ---- */

static void notify_now(struct ble_peer *p, const uint8_t *data, size_t len) {
        if (p->notify_fd >= 0) {
                if (send(p->notify_fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
                        p->stats.dropped_notifications++;
                        dev_log(p->d, 2, "ble: notification lost on the acquired socket: %s", strerror(errno));
                        return;
                }
                p->stats.notifications++;
                return;
        }
        if (!p->notify_clients) {
                /* smp_bt: not subscribed, nothing is sent */
                p->stats.dropped_notifications++;
                return;
        }
        memcpy(p->value, data, len);
        p->value_len = len;
        p->value_set = true;
        p->stats.notifications++;
        chrc_emit(p, "Value");
}

static int on_tx_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct ble_peer *p = userdata;
        for (uint32_t i = 0; i < p->ble->cfg.notify_per_event && p->txq_head; i++) {
                struct ble_note *n = p->txq_head;
                p->txq_head = n->next;
                if (!p->txq_head)
                        p->txq_tail = &p->txq_head;
                p->txq_len--;
                notify_now(p, n->data, n->len);
                free(n);
        }
        if (p->txq_head)
                (void) sd_event_source_set_time_relative(p->tx_timer, (uint64_t) p->ble->cfg.conn_interval_ms * 1000);
        else
                (void) sd_event_source_set_enabled(p->tx_timer, SD_EVENT_OFF);
        if (p->txq_head)
                (void) sd_event_source_set_enabled(p->tx_timer, SD_EVENT_ONESHOT);
        return 0;
}

static void notify_queue(struct ble_peer *p, const uint8_t *data, size_t len) {
        if (p->ble->cfg.conn_interval_ms == 0) {
                notify_now(p, data, len);
                return;
        }
        if (p->txq_len >= TXQ_MAX) {
                p->stats.dropped_notifications++;
                return;
        }
        struct ble_note *n = malloc(sizeof(*n) + len);
        if (!n)
                return;
        n->next = NULL;
        n->len = len;
        memcpy(n->data, data, len);
        *p->txq_tail = n;
        p->txq_tail = &n->next;
        p->txq_len++;
        if (!p->tx_timer) {
                if (sd_event_add_time_relative(sim_event_loop(p->ble->sim), &p->tx_timer, CLOCK_MONOTONIC,
                                               (uint64_t) p->ble->cfg.conn_interval_ms * 1000, 1, on_tx_timer, p) < 0)
                        return;
        } else if (sd_event_source_get_enabled(p->tx_timer, NULL) == 0) {
                (void) sd_event_source_set_time_relative(p->tx_timer, (uint64_t) p->ble->cfg.conn_interval_ms * 1000);
                (void) sd_event_source_set_enabled(p->tx_timer, SD_EVENT_ONESHOT);
        }
}

/* The fault disconnect-at: the link drops once the upload got that far. */
static bool check_disconnect_at(struct ble_peer *p) {
        if (p->faults.disconnect_at < 0 || p->state != LINK_CONNECTED || !p->d->upload.active ||
            (int64_t) p->d->upload.off < p->faults.disconnect_at)
                return false;
        p->faults.disconnect_at = -1;
        p->stats.link_losses++;
        peer_link_down(p, "fault disconnect-at");
        return true;
}

/* Writes and answers see the offset only as far as the device got: a
 * small upload sent with a window of chunks is all written before the
 * device processed the chunk that crosses BYTES, and completed (no
 * longer active) before that chunk's answer leaves.  So the device
 * reports the offset each chunk reached, too. */
void sim_ble_upload_reached(struct sim_device *d, const struct sim_route *route, uint64_t off) {
        struct ble_peer *p = peer_of(d);
        if (!p || p->faults.disconnect_at < 0 || p->state != LINK_CONNECTED || route->cookie != p->conn_id ||
            (int64_t) off < p->faults.disconnect_at)
                return;
        p->faults.disconnect_at = -1;
        p->stats.link_losses++;
        peer_link_down(p, "fault disconnect-at");
}

void sim_ble_send(struct sim_device *d, const struct sim_route *route, const uint8_t *pkt, size_t len) {
        struct ble_peer *p = peer_of(d);
        if (!p || p->state != LINK_CONNECTED || route->cookie != p->conn_id) {
                if (p)
                        p->stats.dropped_notifications++;
                return; /* the connection the request came on is gone */
        }
        if (check_disconnect_at(p))
                return;
        size_t piece = (size_t) p->mtu - 3;
        for (size_t off = 0; off < len; off += piece)
                notify_queue(p, pkt + off, MIN(piece, len - off));
}

/* One ATT write of the SMP characteristic (command or request), as
 * smp_bt_chr_write with reassembly sees it. */
static void peer_write(struct ble_peer *p, const uint8_t *data, size_t len) {
        struct sim_device *d = p->d;
        uint64_t now = sim_now_us(p->ble->sim);

        p->stats.writes++;
        p->stats.write_bytes += len;
        if (check_disconnect_at(p))
                return;
        /* every write takes its time on the link */
        uint64_t at = sim_link_arrival(&d->link, &d->uplink, &d->rng, now, len);
        if (d->rebooting)
                return;

        if (d->params.no_reassembly) {
                /* Zephyr's smp_bt_chr_write() without
                 * CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY
                 * (subsys/mgmt/mcumgr/transport/src/smp_bt.c): the write
                 * is one netbuf handed to smp_rx_req() as it is; one
                 * larger than the netbuf is refused.  A piece of a split
                 * packet then fails smp_process_request_packet()'s
                 * "does the buffer hold the whole message" check (an
                 * MGMT_ERR_ECORRUPT answer), and the pieces after it are
                 * read as headers of their own. */
                if (len > d->params.buf_size) {
                        p->stats.dropped_writes++;
                        d->stats.dropped_too_big++;
                        dev_log(d, 2, "ble: write of %zu bytes larger than the netbuf, refused", len);
                        return;
                }
                struct sim_route route = { .kind = SIM_TRANSPORT_BLE, .cookie = p->conn_id };
                sim_device_receive_at(d, &route, data, len, at);
                return;
        }

        if (p->rx_len == 0) {
                if (len < 8) {
                        p->stats.dropped_writes++;
                        dev_log(d, 2, "ble: write of %zu bytes without an SMP header, dropped", len);
                        return;
                }
                size_t expected = 8 + (size_t) unaligned_read_be16(data + 2);
                if (expected > d->params.buf_size) {
                        p->stats.dropped_writes++;
                        d->stats.dropped_too_big++;
                        dev_log(d, 2, "ble: SMP packet of %zu bytes larger than the netbuf, dropped", expected);
                        return;
                }
                if (expected > p->rx_alloc) {
                        uint8_t *n = realloc(p->rx, expected);
                        if (!n)
                                return;
                        p->rx = n;
                        p->rx_alloc = expected;
                }
                p->rx_expected = expected;
        }
        if (p->rx_len + len > p->rx_expected) {
                p->stats.dropped_writes++;
                dev_log(d, 2, "ble: write past the SMP packet's length, reassembly dropped");
                p->rx_len = p->rx_expected = 0;
                return;
        }
        memcpy(p->rx + p->rx_len, data, len);
        p->rx_len += len;
        if (p->rx_len < p->rx_expected)
                return;

        struct sim_route route = { .kind = SIM_TRANSPORT_BLE, .cookie = p->conn_id };
        size_t n = p->rx_len;
        p->rx_len = p->rx_expected = 0;
        sim_device_receive_at(d, &route, p->rx, n, at);
}

static int on_write_socket(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct ble_peer *p = userdata;
        uint8_t *buf = p->ble->sim->rx_buf;

        for (int i = 0; i < 64 && p->write_fd >= 0; i++) {
                ssize_t n = recv(fd, buf, SIM_RX_BUF_SIZE, MSG_DONTWAIT | MSG_TRUNC);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        acquired_close(p, true, true);
                        return 0;
                }
                if (n == 0) {
                        acquired_close(p, true, true);
                        return 0;
                }
                size_t len = MIN((size_t) n, (size_t) ACQUIRE_READ_MAX);
                if (len > (size_t) p->mtu - 3) {
                        /* bt_gatt_client_write_without_response fails; nothing tells the writer */
                        p->stats.dropped_writes++;
                        dev_log(p->d, 2, "ble: acquired write of %zu bytes > MTU-3, dropped", len);
                        continue;
                }
                peer_write(p, buf, len);
        }
        if (p->write_fd >= 0 && (revents & (EPOLLHUP | EPOLLERR)))
                acquired_close(p, true, true);
        return 0;
}

static int on_notify_socket(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct ble_peer *p = userdata;
        uint8_t buf[16];

        if (revents & EPOLLIN) {
                ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
                        return 0;
        }
        acquired_close(p, false, true);
        return 0;
}

/* ---- options and filters ---- */

/* Normalizes a UUID string (16-, 32- or 128-bit) to BlueZ's lower-case
 * 128-bit form. */
static int uuid_normalize(const char *s, char out[37]) {
        size_t n = strlen(s);
        char tmp[64];
        if (n == 4 || n == 8) {
                for (size_t i = 0; i < n; i++)
                        if (!strchr("0123456789abcdefABCDEF", s[i]))
                                return -EINVAL;
                snprintf(tmp, sizeof(tmp), "%s%s%s", n == 4 ? "0000" : "", s, BASE_UUID_TAIL);
        } else if (n == 36) {
                for (size_t i = 0; i < n; i++) {
                        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                        if (dash ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]))
                                return -EINVAL;
                }
                memcpy(tmp, s, 37);
        } else
                return -EINVAL;
        for (size_t i = 0; i < 37; i++)
                out[i] = (char) (tmp[i] >= 'A' && tmp[i] <= 'F' ? tmp[i] - 'A' + 'a' : tmp[i]);
        return 0;
}

/* Reads a{sv}; for each key calls fn with the message positioned at the
 * variant.  fn returns 1 when it consumed the variant, 0 to skip it. */
typedef int (*option_fn)(sd_bus_message *m, const char *key, const char *sig, void *userdata);

static int read_options(sd_bus_message *m, option_fn fn, void *userdata) {
        int r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key, *sig;
                char type;
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                r = sd_bus_message_peek_type(m, &type, &sig);
                if (r < 0)
                        return r;
                r = fn(m, key, sig, userdata);
                if (r < 0)
                        return r;
                if (r == 0) {
                        r = sd_bus_message_skip(m, "v");
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

static int filter_option(sd_bus_message *m, const char *key, const char *sig, void *userdata) {
        struct ble_filter *f = userdata;
        int r;

        if (streq(key, "UUIDs")) {
                if (!streq(sig, "as"))
                        return -EINVAL;
                r = sd_bus_message_enter_container(m, 'v', "as");
                if (r >= 0)
                        r = sd_bus_message_enter_container(m, 'a', "s");
                if (r < 0)
                        return r;
                const char *u;
                while ((r = sd_bus_message_read(m, "s", &u)) > 0) {
                        if (f->n_uuids >= FILTER_UUIDS_MAX || uuid_normalize(u, f->uuids[f->n_uuids]) < 0)
                                return -EINVAL;
                        f->n_uuids++;
                }
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                return r < 0 ? r : 1;
        }
        if (streq(key, "RSSI")) {
                if (!streq(sig, "n"))
                        return -EINVAL;
                r = sd_bus_message_read(m, "v", "n", &f->rssi);
                if (r < 0 || f->rssi < -127 || f->rssi > 20)
                        return -EINVAL;
                f->has_rssi = true;
                return 1;
        }
        if (streq(key, "Pathloss")) {
                if (!streq(sig, "q"))
                        return -EINVAL;
                r = sd_bus_message_read(m, "v", "q", &f->pathloss);
                if (r < 0 || f->pathloss > 127)
                        return -EINVAL;
                f->has_pathloss = true;
                return 1;
        }
        if (streq(key, "Transport")) {
                const char *t;
                if (!streq(sig, "s"))
                        return -EINVAL;
                r = sd_bus_message_read(m, "v", "s", &t);
                if (r < 0 || (!streq(t, "auto") && !streq(t, "le") && !streq(t, "bredr")))
                        return -EINVAL;
                snprintf(f->transport, sizeof(f->transport), "%s", t);
                return 1;
        }
        if (streq(key, "DuplicateData") || streq(key, "Discoverable")) {
                int b;
                if (!streq(sig, "b"))
                        return -EINVAL;
                r = sd_bus_message_read(m, "v", "b", &b);
                if (r < 0)
                        return -EINVAL;
                if (streq(key, "DuplicateData"))
                        f->duplicate_data = b;
                else
                        f->discoverable = b;
                return 1;
        }
        if (streq(key, "Pattern")) {
                const char *pat;
                if (!streq(sig, "s"))
                        return -EINVAL;
                r = sd_bus_message_read(m, "v", "s", &pat);
                if (r < 0)
                        return -EINVAL;
                free(f->pattern);
                f->pattern = strdup(pat);
                return f->pattern ? 1 : -ENOMEM;
        }
        return -EINVAL; /* adapter.c: an unknown key makes the filter invalid */
}

static bool filter_matches(const struct ble_filter *f, const struct ble_peer *p) {
        if (streq(f->transport, "bredr"))
                return false;
        if (f->n_uuids > 0) {
                bool any = false;
                for (unsigned i = 0; i < f->n_uuids; i++)
                        any = any || streq(f->uuids[i], SMP_SERVICE_UUID);
                if (!any)
                        return false;
        }
        if (f->has_rssi && peer_rssi(p) <= f->rssi)
                return false;
        if (f->has_pathloss)
                return false; /* no TX power in the advertisement: the path loss is unknown */
        if (f->pattern && f->pattern[0]) {
                char addr[ADDR_LEN];
                peer_address(p, addr);
                if (strncmp(addr, f->pattern, strlen(f->pattern)) != 0 &&
                    strncmp(p->d->name, f->pattern, strlen(f->pattern)) != 0)
                        return false;
        }
        return true;
}

/* BlueZ merges every discovering client's filter with OR. */
static bool adapter_reports(const struct ble_adapter *a, const struct ble_peer *p) {
        for (const struct ble_client *c = a->clients; c; c = c->next) {
                if (!c->discovering)
                        continue;
                if (!c->has_filter || filter_matches(&c->filter, p))
                        return true;
        }
        return false;
}

/* Whether a discovering client's filter has RSSI or Pathloss: bluetoothd
 * then emits RSSI at every advertising report (adapter.c
 * discovery_filter_has_proximity(), device_set_rssi_with_delta(dev,
 * rssi, 0)); else only for a device that had none, or for a change of
 * RSSI_THRESHOLD (8 dBm) or more, which smpsim's fixed RSSI never makes. */
static bool adapter_proximity(const struct ble_adapter *a) {
        for (const struct ble_client *c = a->clients; c; c = c->next)
                if (c->discovering && c->has_filter && (c->filter.has_rssi || c->filter.has_pathloss))
                        return true;
        return false;
}

/* ---- discovery ---- */

/* Each tick is an advertisement of every advertising device.  The host
 * hears a device when it starts advertising (after a connection, a
 * reboot) and then at most every REPORT_REPEAT_US: a controller's
 * duplicate filter drops the repeats, until it forgets the device or the
 * kernel restarts the scan (it does so for a filtered discovery on a
 * controller whose filter is strict).  A device that had no RSSI gets
 * one (PropertiesChanged), and with a proximity filter every report
 * sends RSSI again, as bluetoothd does: this is how a device that
 * rebooted shows it is back. */
static int on_scan_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        struct ble_adapter *a = userdata;
        struct sim_ble *ble = a->ble;
        uint64_t now = sim_now_us(ble->sim);

        if (!a->discovering)
                return 0;
        for (unsigned i = 0; i < ble->n_peers; i++) {
                struct ble_peer *p = &ble->peers[i];
                struct ble_obj *o = &p->objs[a->index];
                if (!peer_advertising(p)) {
                        o->reported = false;
                        continue;
                }
                if (!adapter_reports(a, p) || p->faults.unseen)
                        continue;
                o->last_seen_us = now;
                if (o->reported && now < o->reported_us + REPORT_REPEAT_US)
                        continue;
                o->reported = true;
                o->reported_us = now;
                if (!o->exported) {
                        o->rssi_valid = true;
                        obj_export(o);
                } else if (!o->rssi_valid || adapter_proximity(a)) {
                        o->rssi_valid = true;
                        device_emit(p, a->index, "RSSI");
                }
        }
        (void) sd_event_source_set_time(a->scan_timer, now + SCAN_TICK_US);
        (void) sd_event_source_set_enabled(a->scan_timer, SD_EVENT_ONESHOT);
        return 0;
}

static int on_sweep(sd_event_source *s, uint64_t usec, void *userdata) {
        struct ble_adapter *a = userdata;
        struct sim_ble *ble = a->ble;
        uint64_t now = sim_now_us(ble->sim);
        uint64_t ttl = (uint64_t) ble->cfg.temporary_ms * 1000;

        if (a->discovering)
                return 0;
        for (unsigned i = 0; i < ble->n_peers; i++) {
                struct ble_peer *p = &ble->peers[i];
                struct ble_obj *o = &p->objs[a->index];
                if (o->exported && o->temporary && p->state == LINK_IDLE && o->last_seen_us + ttl <= now)
                        obj_unexport(o);
        }
        return 0;
}

static void adapter_update_discovery(struct ble_adapter *a) {
        struct sim_ble *ble = a->ble;
        bool want = false;
        for (struct ble_client *c = a->clients; c; c = c->next)
                want = want || c->discovering;
        if (want == a->discovering)
                return;
        a->discovering = want;
        uint64_t now = sim_now_us(ble->sim);
        if (want) {
                if (!a->scan_timer)
                        (void) sd_event_add_time(sim_event_loop(ble->sim), &a->scan_timer, CLOCK_MONOTONIC,
                                                 now + SCAN_TICK_US / 2, 1, on_scan_tick, a);
                else {
                        (void) sd_event_source_set_time(a->scan_timer, now + SCAN_TICK_US / 2);
                        (void) sd_event_source_set_enabled(a->scan_timer, SD_EVENT_ONESHOT);
                }
        } else {
                (void) sd_event_source_set_enabled(a->scan_timer, SD_EVENT_OFF);
                /* adapter.c: RSSI is invalidated when discovery stops */
                for (unsigned i = 0; i < ble->n_peers; i++) {
                        struct ble_obj *o = &ble->peers[i].objs[a->index];
                        o->reported = false; /* a new scan, a new duplicate filter */
                        if (o->exported && o->rssi_valid) {
                                char path[PATH_LEN];
                                o->rssi_valid = false;
                                device_path(o->peer, a->index, path);
                                emit_invalidated(ble, path, DEVICE_IFACE, "RSSI");
                        }
                }
                uint64_t at = now + (uint64_t) ble->cfg.temporary_ms * 1000;
                if (!a->sweep_timer)
                        (void) sd_event_add_time(sim_event_loop(ble->sim), &a->sweep_timer, CLOCK_MONOTONIC, at,
                                                 1000, on_sweep, a);
                else {
                        (void) sd_event_source_set_time(a->sweep_timer, at);
                        (void) sd_event_source_set_enabled(a->sweep_timer, SD_EVENT_ONESHOT);
                }
        }
        char path[32];
        snprintf(path, sizeof(path), "%s", a->path);
        emit_changed(ble, path, ADAPTER_IFACE, "Discovering");
}

static int on_client_gone(sd_bus_track *t, void *userdata) {
        struct ble_client *c = userdata;
        if (c->kind == CLIENT_DISCOVERY) {
                struct ble_adapter *a = c->owner;
                client_free(&a->clients, c);
                adapter_update_discovery(a);
        } else {
                struct ble_peer *p = c->owner;
                client_free(&p->notify_clients, c);
                if (!p->notify_clients && p->notify_fd < 0)
                        chrc_emit(p, "Notifying");
        }
        return 0;
}

static void adapter_set_powered(struct ble_adapter *a, bool on) {
        struct sim_ble *ble = a->ble;
        if (a->powered == on)
                return;
        sim_log(ble->sim, 1, "ble: hci%u powered %s", a->index, on ? "on" : "off");
        if (!on) {
                for (unsigned i = 0; i < ble->n_peers; i++) {
                        struct ble_peer *p = &ble->peers[i];
                        if (p->state != LINK_IDLE && p->adapter == a->index)
                                peer_link_down(p, "adapter powered off");
                }
                while (a->clients)
                        client_free(&a->clients, a->clients);
                adapter_update_discovery(a);
                for (unsigned i = 0; i < ble->n_peers; i++) {
                        struct ble_obj *o = &ble->peers[i].objs[a->index];
                        if (o->exported && o->temporary)
                                obj_unexport(o);
                }
                if (a->discoverable) {
                        a->discoverable = false;
                        emit_changed(ble, a->path, ADAPTER_IFACE, "Discoverable");
                }
        }
        a->powered = on;
        emit_changed(ble, a->path, ADAPTER_IFACE, "Powered");
}

/* ---- Adapter1 ---- */

static int adapter_find(sd_bus *bus, const char *path, const char *iface, void *userdata, void **ret_found,
                        sd_bus_error *error) {
        struct sim_ble *ble = userdata;
        struct ble_peer *p;
        unsigned a;
        if (path_parse(ble, path, &a, &p) != PATH_ADAPTER)
                return 0;
        *ret_found = &ble->adapters[a];
        return 1;
}

static int adapter_get(sd_bus *bus, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
                       void *userdata, sd_bus_error *error) {
        struct ble_adapter *a = userdata;
        if (streq(prop, "Address"))
                return sd_bus_message_append(reply, "s", a->address);
        if (streq(prop, "AddressType"))
                return sd_bus_message_append(reply, "s", "public");
        if (streq(prop, "Name"))
                return sd_bus_message_append(reply, "s", "smpsim");
        if (streq(prop, "Alias"))
                return sd_bus_message_append(reply, "s", a->alias ?: "smpsim");
        if (streq(prop, "Class"))
                return sd_bus_message_append(reply, "u", (uint32_t) 0);
        if (streq(prop, "Powered"))
                return sd_bus_message_append(reply, "b", a->powered);
        if (streq(prop, "Discoverable"))
                return sd_bus_message_append(reply, "b", a->discoverable);
        if (streq(prop, "DiscoverableTimeout"))
                return sd_bus_message_append(reply, "u", a->discoverable_timeout);
        if (streq(prop, "Pairable"))
                return sd_bus_message_append(reply, "b", a->pairable);
        if (streq(prop, "PairableTimeout"))
                return sd_bus_message_append(reply, "u", a->pairable_timeout);
        if (streq(prop, "Discovering"))
                return sd_bus_message_append(reply, "b", a->discovering);
        if (streq(prop, "UUIDs"))
                return sd_bus_message_append(reply, "as", 2, "00001800-0000-1000-8000-00805f9b34fb",
                                             "00001801-0000-1000-8000-00805f9b34fb");
        if (streq(prop, "Modalias"))
                return sd_bus_message_append(reply, "s", "usb:v1D6Bp0246d0542");
        if (streq(prop, "Roles"))
                return sd_bus_message_append(reply, "as", 2, "central", "peripheral");
        return -ENOENT;
}

static int adapter_set(sd_bus *bus, const char *path, const char *iface, const char *prop, sd_bus_message *value,
                       void *userdata, sd_bus_error *error) {
        struct ble_adapter *a = userdata;
        int r;

        if (streq(prop, "Alias")) {
                const char *s;
                r = sd_bus_message_read(value, "s", &s);
                if (r < 0)
                        return r;
                free(a->alias);
                a->alias = s[0] ? strdup(s) : NULL;
        } else if (streq(prop, "DiscoverableTimeout") || streq(prop, "PairableTimeout")) {
                uint32_t v;
                r = sd_bus_message_read(value, "u", &v);
                if (r < 0)
                        return r;
                *(streq(prop, "PairableTimeout") ? &a->pairable_timeout : &a->discoverable_timeout) = v;
        } else {
                int b;
                r = sd_bus_message_read(value, "b", &b);
                if (r < 0)
                        return r;
                if (streq(prop, "Powered")) {
                        adapter_set_powered(a, b);
                        return 0;
                }
                if (streq(prop, "Discoverable") && !a->powered)
                        return sd_bus_error_set(error, BLUEZ_ERROR "NotReady", "Resource Not Ready");
                *(streq(prop, "Pairable") ? &a->pairable : &a->discoverable) = b;
        }
        emit_changed(a->ble, path, iface, prop);
        return 0;
}

static int method_start_discovery(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct ble_adapter *a = userdata;
        struct ble_client *c;

        if (!a->powered)
                return sd_bus_error_set(error, BLUEZ_ERROR "NotReady", "Resource Not Ready");
        c = client_find(a->clients, sd_bus_message_get_sender(m) ?: "");
        if (c && c->discovering)
                return sd_bus_error_set(error, BLUEZ_ERROR "InProgress", "Operation already in progress");
        if (!c) {
                int r = client_new(a->ble, &a->clients, CLIENT_DISCOVERY, a, m, &c);
                if (r < 0)
                        return r;
        }
        c->discovering = true;
        adapter_update_discovery(a);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_stop_discovery(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct ble_adapter *a = userdata;

        if (!a->powered)
                return sd_bus_error_set(error, BLUEZ_ERROR "NotReady", "Resource Not Ready");
        struct ble_client *c = client_find(a->clients, sd_bus_message_get_sender(m) ?: "");
        if (!c || !c->discovering)
                return sd_bus_error_set(error, BLUEZ_ERROR "Failed", "No discovery started");
        client_free(&a->clients, c);
        adapter_update_discovery(a);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_set_discovery_filter(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct ble_adapter *a = userdata;
        struct ble_filter f = {};
        bool empty;
        int r;

        if (!a->powered)
                return sd_bus_error_set(error, BLUEZ_ERROR "NotReady", "Resource Not Ready");
        r = read_options(m, filter_option, &f);
        empty = f.n_uuids == 0 && !f.has_rssi && !f.has_pathloss && !f.transport[0] && !f.pattern &&
                !f.duplicate_data && !f.discoverable;
        if (r < 0 || (f.has_rssi && f.has_pathloss)) {
                filter_done(&f);
                return sd_bus_error_set(error, BLUEZ_ERROR "InvalidArguments", "Invalid arguments in method call");
        }
        struct ble_client *c = client_find(a->clients, sd_bus_message_get_sender(m) ?: "");
        if (!c && empty) {
                filter_done(&f);
                return sd_bus_reply_method_return(m, NULL);
        }
        if (!c) {
                r = client_new(a->ble, &a->clients, CLIENT_DISCOVERY, a, m, &c);
                if (r < 0) {
                        filter_done(&f);
                        return r;
                }
        }
        filter_done(&c->filter);
        c->filter = f;
        c->has_filter = !empty;
        if (empty && !c->discovering)
                client_free(&a->clients, c);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_get_discovery_filters(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return sd_bus_reply_method_return(m, "as", 7, "UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData",
                                          "Discoverable", "Pattern");
}

static void peer_request_disconnect(struct ble_peer *p, sd_bus_message *m);

static int method_remove_device(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct ble_adapter *a = userdata;
        const char *path;
        struct ble_peer *p = NULL;
        unsigned ai;

        if (sd_bus_message_read(m, "o", &path) < 0)
                return sd_bus_error_set(error, BLUEZ_ERROR "InvalidArguments", "Invalid arguments in method call");
        if (path_parse(a->ble, path, &ai, &p) != PATH_DEVICE || ai != a->index || !p->objs[ai].exported)
                return sd_bus_error_set(error, BLUEZ_ERROR "DoesNotExist", "Does Not Exist");
        if (!a->powered)
                return sd_bus_error_set(error, BLUEZ_ERROR "NotReady", "Resource Not Ready");
        struct ble_obj *o = &p->objs[ai];
        o->temporary = true;
        if (!peer_connected_on(p, ai)) {
                if (p->state == LINK_CONNECTING && p->adapter == ai)
                        connect_failed(p, "br-connection-canceled");
                obj_unexport(o);
                return sd_bus_reply_method_return(m, NULL);
        }
        o->remove_on_disconnect = true;
        peer_request_disconnect(p, m);
        return 1;
}

static const sd_bus_vtable adapter_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("StartDiscovery", "", "", method_start_discovery, 0),
        SD_BUS_METHOD_WITH_ARGS("SetDiscoveryFilter", SD_BUS_ARGS("a{sv}", properties), SD_BUS_NO_RESULT,
                                method_set_discovery_filter, 0),
        SD_BUS_METHOD("StopDiscovery", "", "", method_stop_discovery, 0),
        SD_BUS_METHOD_WITH_ARGS("RemoveDevice", SD_BUS_ARGS("o", device), SD_BUS_NO_RESULT, method_remove_device, 0),
        SD_BUS_METHOD_WITH_ARGS("GetDiscoveryFilters", SD_BUS_NO_ARGS, SD_BUS_RESULT("as", filters),
                                method_get_discovery_filters, 0),
        SD_BUS_PROPERTY("Address", "s", adapter_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("AddressType", "s", adapter_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Name", "s", adapter_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_WRITABLE_PROPERTY("Alias", "s", adapter_get, adapter_set, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Class", "u", adapter_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_WRITABLE_PROPERTY("Powered", "b", adapter_get, adapter_set, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_WRITABLE_PROPERTY("Discoverable", "b", adapter_get, adapter_set, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_WRITABLE_PROPERTY("Pairable", "b", adapter_get, adapter_set, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_WRITABLE_PROPERTY("PairableTimeout", "u", adapter_get, adapter_set, 0,
                                 SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_WRITABLE_PROPERTY("DiscoverableTimeout", "u", adapter_get, adapter_set, 0,
                                 SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Discovering", "b", adapter_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("UUIDs", "as", adapter_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Modalias", "s", adapter_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Roles", "as", adapter_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_VTABLE_END,
};

/* ---- Device1 ---- */

static int device_find(sd_bus *bus, const char *path, const char *iface, void *userdata, void **ret_found,
                       sd_bus_error *error) {
        struct sim_ble *ble = userdata;
        struct ble_peer *p;
        unsigned a;
        if (path_parse(ble, path, &a, &p) != PATH_DEVICE || !p->objs[a].exported)
                return 0;
        *ret_found = &p->objs[a];
        return 1;
}

/* RSSI exists only while the device is being seen by a discovery. */
static int device_rssi_find(sd_bus *bus, const char *path, const char *iface, void *userdata, void **ret_found,
                            sd_bus_error *error) {
        int r = device_find(bus, path, iface, userdata, ret_found, error);
        if (r <= 0)
                return r;
        return ((struct ble_obj *) *ret_found)->rssi_valid;
}

static int device_get(sd_bus *bus, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
                      void *userdata, sd_bus_error *error) {
        struct ble_obj *o = userdata;
        struct ble_peer *p = o->peer;
        char buf[PATH_LEN];

        if (streq(prop, "Address")) {
                peer_address(p, buf);
                return sd_bus_message_append(reply, "s", buf);
        }
        if (streq(prop, "AddressType"))
                return sd_bus_message_append(reply, "s", "random");
        if (streq(prop, "Name"))
                return sd_bus_message_append(reply, "s", p->d->name);
        if (streq(prop, "Alias"))
                return sd_bus_message_append(reply, "s", o->alias ?: p->d->name);
        if (streq(prop, "Paired") || streq(prop, "Bonded") || streq(prop, "LegacyPairing"))
                return sd_bus_message_append(reply, "b", false);
        if (streq(prop, "Trusted"))
                return sd_bus_message_append(reply, "b", o->trusted);
        if (streq(prop, "Blocked"))
                return sd_bus_message_append(reply, "b", o->blocked);
        if (streq(prop, "Connected"))
                return sd_bus_message_append(reply, "b", peer_connected_on(p, o->adapter));
        if (streq(prop, "ServicesResolved"))
                return sd_bus_message_append(reply, "b", peer_connected_on(p, o->adapter) && p->services_resolved);
        if (streq(prop, "UUIDs"))
                return sd_bus_message_append(reply, "as", 1, SMP_SERVICE_UUID);
        if (streq(prop, "Adapter"))
                return sd_bus_message_append(reply, "o", p->ble->adapters[o->adapter].path);
        if (streq(prop, "AdvertisingFlags"))
                return sd_bus_message_append(reply, "ay", 1, (uint8_t) 0x06); /* LE General Discoverable, BR/EDR not supported */
        if (streq(prop, "RSSI"))
                return sd_bus_message_append(reply, "n", peer_rssi(p));
        return -ENOENT;
}

static int device_set(sd_bus *bus, const char *path, const char *iface, const char *prop, sd_bus_message *value,
                      void *userdata, sd_bus_error *error) {
        struct ble_obj *o = userdata;
        int r;
        if (streq(prop, "Alias")) {
                const char *s;
                r = sd_bus_message_read(value, "s", &s);
                if (r < 0)
                        return r;
                free(o->alias);
                o->alias = s[0] ? strdup(s) : NULL; /* "" gives the name back */
        } else {
                int b;
                r = sd_bus_message_read(value, "b", &b);
                if (r < 0)
                        return r;
                *(streq(prop, "Trusted") ? &o->trusted : &o->blocked) = b;
                if (streq(prop, "Blocked") && b && peer_connected_on(o->peer, o->adapter))
                        peer_request_disconnect(o->peer, NULL);
        }
        emit_changed(o->peer->ble, path, iface, prop);
        return 0;
}

static int method_connect(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct ble_obj *o = userdata;
        struct ble_peer *p = o->peer;
        struct sim_ble *ble = p->ble;

        if (!ble->adapters[o->adapter].powered)
                return sd_bus_error_set(error, BLUEZ_ERROR "NotReady", "Resource Not Ready");
        if (p->state != LINK_IDLE && p->adapter == o->adapter) {
                if (p->state == LINK_CONNECTED)
                        return sd_bus_reply_method_return(m, NULL); /* device.c: LE already connected */
                /* device_connect_le(): an attempt is going on (-EALREADY) */
                return sd_bus_error_set(error, BLUEZ_ERROR "Failed", strerror(EALREADY));
        }
        if (p->state != LINK_IDLE) {
                /* connected to another adapter: it does not advertise, the
                 * kernel gives up on the connection */
                p->stats.connect_failures++;
                return sd_bus_error_set(error, BLUEZ_ERROR "Failed", "le-connection-abort-by-local");
        }
        uint64_t now = sim_now_us(ble->sim);
        o->temporary = false;
        p->state = LINK_CONNECTING;
        p->adapter = o->adapter;
        p->connect_msg = sd_bus_message_ref(m);
        p->connect_deadline_us = now + (uint64_t) ble->cfg.connect_timeout_ms * 1000;
        if (p->d->rebooting) {
                p->stats.silent_connects++;
                peer_arm(p, T_CONNECT_TIMEOUT, p->connect_deadline_us);
        } else
                peer_arm(p, T_CONNECT, now + (uint64_t) ble->cfg.connect_ms * 1000);
        return 1;
}

static void peer_request_disconnect(struct ble_peer *p, sd_bus_message *m) {
        if (m) {
                if (p->n_disconnect_msgs < DISCONNECT_MSGS_MAX)
                        p->disconnect_msgs[p->n_disconnect_msgs++] = sd_bus_message_ref(m);
                else
                        (void) sd_bus_reply_method_return(m, NULL);
        }
        if (p->disconnecting)
                return;
        p->disconnecting = true;
        peer_arm(p, T_DISCONNECT, sim_now_us(p->ble->sim) + DISCONNECT_US);
}

static int method_disconnect(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct ble_obj *o = userdata;
        struct ble_peer *p = o->peer;

        if (p->state == LINK_IDLE || p->adapter != o->adapter)
                return sd_bus_reply_method_return(m, NULL);
        if (p->state == LINK_CONNECTING) {
                /* device_request_disconnect(): the pending Connect is cancelled */
                reply_error(&p->connect_msg, BLUEZ_ERROR "Failed", "br-connection-canceled");
                p->state = LINK_IDLE;
                p->action = T_NONE;
                (void) sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
                return sd_bus_reply_method_return(m, NULL);
        }
        peer_request_disconnect(p, m);
        return 1;
}

static const sd_bus_vtable device_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Disconnect", "", "", method_disconnect, 0),
        SD_BUS_METHOD("Connect", "", "", method_connect, 0),
        SD_BUS_PROPERTY("Address", "s", device_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("AddressType", "s", device_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Name", "s", device_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_WRITABLE_PROPERTY("Alias", "s", device_get, device_set, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Paired", "b", device_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Bonded", "b", device_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_WRITABLE_PROPERTY("Trusted", "b", device_get, device_set, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_WRITABLE_PROPERTY("Blocked", "b", device_get, device_set, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LegacyPairing", "b", device_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Connected", "b", device_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("UUIDs", "as", device_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Adapter", "o", device_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ServicesResolved", "b", device_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("AdvertisingFlags", "ay", device_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable device_rssi_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("RSSI", "n", device_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

/* ---- GattService1, GattCharacteristic1, GattDescriptor1 ---- */

static int gatt_find(sd_bus *bus, const char *path, const char *iface, void *userdata, void **ret_found,
                     sd_bus_error *error) {
        struct sim_ble *ble = userdata;
        struct ble_peer *p;
        unsigned a;
        enum path_kind k = path_parse(ble, path, &a, &p);
        enum path_kind want = streq(iface, SERVICE_IFACE) ? PATH_SERVICE :
                              streq(iface, CHRC_IFACE)    ? PATH_CHRC :
                                                            PATH_DESC;
        if (k != want || !peer_connected_on(p, a) || !p->gatt_exported)
                return 0;
        *ret_found = p;
        return 1;
}

/* Value exists once something was read or notified (characteristic_value_exists). */
static int chrc_value_find(sd_bus *bus, const char *path, const char *iface, void *userdata, void **ret_found,
                           sd_bus_error *error) {
        int r = gatt_find(bus, path, iface, userdata, ret_found, error);
        if (r <= 0)
                return r;
        return ((struct ble_peer *) *ret_found)->value_set;
}

static int gatt_get(sd_bus *bus, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
                    void *userdata, sd_bus_error *error) {
        struct ble_peer *p = userdata;
        char buf[PATH_LEN];

        if (streq(prop, "UUID"))
                return sd_bus_message_append(reply, "s", streq(iface, SERVICE_IFACE) ? SMP_SERVICE_UUID :
                                                         streq(iface, CHRC_IFACE)    ? SMP_CHRC_UUID :
                                                                                       CCC_UUID);
        if (streq(prop, "Primary"))
                return sd_bus_message_append(reply, "b", true);
        if (streq(prop, "Device")) {
                device_path(p, p->adapter, buf);
                return sd_bus_message_append(reply, "o", buf);
        }
        if (streq(prop, "Includes"))
                return sd_bus_message_append(reply, "ao", 0);
        if (streq(prop, "Service")) {
                gatt_path(p, PATH_SERVICE, buf);
                return sd_bus_message_append(reply, "o", buf);
        }
        if (streq(prop, "Characteristic")) {
                gatt_path(p, PATH_CHRC, buf);
                return sd_bus_message_append(reply, "o", buf);
        }
        if (streq(prop, "Value")) {
                if (streq(iface, DESC_IFACE)) {
                        bool on = p->notify_clients || p->notify_fd >= 0;
                        return sd_bus_message_append(reply, "ay", 2, (uint8_t) on, (uint8_t) 0);
                }
                return sd_bus_message_append_array(reply, 'y', p->value, p->value_len);
        }
        if (streq(prop, "Notifying"))
                return sd_bus_message_append(reply, "b", p->notify_clients || p->notify_fd >= 0);
        if (streq(prop, "Flags"))
                return sd_bus_message_append(reply, "as", 2, "write-without-response", "notify");
        if (streq(prop, "WriteAcquired"))
                return sd_bus_message_append(reply, "b", p->write_fd >= 0);
        if (streq(prop, "NotifyAcquired"))
                return sd_bus_message_append(reply, "b", p->notify_fd >= 0);
        if (streq(prop, "MTU"))
                return sd_bus_message_append(reply, "q", p->mtu);
        return -ENOENT;
}

struct write_options {
        uint16_t offset;
        char type[16];
        bool bad;
};

/* gatt-client.c parse_options(): "offset" must be q and "type" s; other
 * keys are ignored. */
static int write_option(sd_bus_message *m, const char *key, const char *sig, void *userdata) {
        struct write_options *o = userdata;
        if (strcasecmp(key, "offset") == 0) {
                if (!streq(sig, "q")) {
                        o->bad = true;
                        return 0;
                }
                return sd_bus_message_read(m, "v", "q", &o->offset) < 0 ? -EINVAL : 1;
        }
        if (strcasecmp(key, "type") == 0) {
                const char *t;
                if (!streq(sig, "s")) {
                        o->bad = true;
                        return 0;
                }
                if (sd_bus_message_read(m, "v", "s", &t) < 0)
                        return -EINVAL;
                snprintf(o->type, sizeof(o->type), "%s", t);
                return 1;
        }
        return 0;
}

static int method_chrc_read(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct write_options o = {};
        if (read_options(m, write_option, &o) < 0 || o.bad)
                return sd_bus_error_set(error, BLUEZ_ERROR "InvalidArguments", "Invalid arguments in method call");
        /* smp_bt's characteristic has no read permission: ATT "Read Not Permitted" */
        return sd_bus_error_set(error, BLUEZ_ERROR "NotPermitted", "Read not permitted");
}

static int method_chrc_write(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct ble_peer *p = userdata;
        struct write_options o = {};
        const void *value;
        size_t len;

        if (p->write_fd >= 0)
                return sd_bus_error_set(error, BLUEZ_ERROR "NotPermitted", "Write acquired");
        if (sd_bus_message_read_array(m, 'y', &value, &len) < 0 || read_options(m, write_option, &o) < 0 || o.bad)
                return sd_bus_error_set(error, BLUEZ_ERROR "InvalidArguments", "Invalid arguments in method call");

        bool has_type = o.type[0] != 0;
        if (has_type && (strcasecmp(o.type, "reliable") == 0 || strcasecmp(o.type, "request") == 0)) {
                if (strcasecmp(o.type, "reliable") == 0 || len > (size_t) p->mtu - 3 || o.offset)
                        /* a (long) prepare write: the attribute has no prepare-write permission */
                        return sd_bus_error_set(error, BLUEZ_ERROR "NotPermitted", "Write not permitted");
                /* a write request: Zephyr's ATT server does not check the
                 * characteristic's properties, smp_bt_chr_write takes it */
                peer_write(p, value, len);
                return sd_bus_reply_method_return(m, NULL);
        }
        if ((has_type && strcasecmp(o.type, "command") != 0) || o.offset)
                return sd_bus_error_set(error, BLUEZ_ERROR "NotSupported", "Operation is not supported");
        if (len > (size_t) p->mtu - 3)
                return sd_bus_error_set(error, BLUEZ_ERROR "Failed", "Failed to initiate write");
        peer_write(p, value, len);
        return sd_bus_reply_method_return(m, NULL);
}

static int acquire(sd_bus_message *m, struct ble_peer *p, bool write_side, sd_bus_error *error) {
        struct write_options o = {};
        enum acquire_fault fault = write_side ? p->faults.acquire_write : p->faults.acquire_notify;
        int fds[2], r;

        if (read_options(m, write_option, &o) < 0)
                return sd_bus_error_set(error, BLUEZ_ERROR "InvalidArguments", "Invalid arguments in method call");
        if (fault == ACQUIRE_SILENT) {
                dev_log(p->d, 2, "ble: AcquireNotify left unanswered (acquire-notify=silent), then stuck");
                p->faults.acquire_notify = ACQUIRE_STUCK;
                return 1; /* no reply: sd-bus sends none for a handler that returns without one */
        }
        if ((write_side ? p->write_fd : p->notify_fd) >= 0 || fault == ACQUIRE_NOT_PERMITTED || fault == ACQUIRE_STUCK)
                return sd_bus_error_set(error, BLUEZ_ERROR "NotPermitted",
                                        write_side ? "Write acquired" : "Notify acquired");
        if (!write_side && p->notify_clients)
                return sd_bus_error_set(error, BLUEZ_ERROR "InProgress", "Operation already in progress");
        if (fault == ACQUIRE_FAILED)
                return sd_bus_error_set(error, BLUEZ_ERROR "Failed", write_side ? strerror(EIO) : "Failed to subscribe");

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
                return sd_bus_error_set(error, BLUEZ_ERROR "Failed", strerror(errno));
        /* create_sock(): fds[0] stays for AcquireWrite, fds[1] for AcquireNotify */
        int ours = write_side ? fds[0] : fds[1], theirs = write_side ? fds[1] : fds[0];
        sd_event_source **src = write_side ? &p->write_source : &p->notify_source;
        r = sd_event_add_io(sim_event_loop(p->ble->sim), src, ours, EPOLLIN,
                            write_side ? on_write_socket : on_notify_socket, p);
        if (r < 0) {
                close(fds[0]);
                close(fds[1]);
                return sd_bus_error_set(error, BLUEZ_ERROR "Failed", strerror(EIO));
        }
        r = sd_bus_reply_method_return(m, "hq", theirs, p->mtu); /* sd-bus sends a duplicate */
        close(theirs);
        if (r < 0) {
                *src = sd_event_source_disable_unref(*src);
                close(ours);
                return r;
        }
        *(write_side ? &p->write_fd : &p->notify_fd) = ours;
        dev_log(p->d, 2, "ble: %s acquired", write_side ? "write" : "notify");
        chrc_emit(p, write_side ? "WriteAcquired" : "NotifyAcquired");
        if (!write_side)
                chrc_emit(p, "Notifying");
        return 1;
}

static int method_acquire_write(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return acquire(m, userdata, true, error);
}

static int method_acquire_notify(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return acquire(m, userdata, false, error);
}

static int method_start_notify(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct ble_peer *p = userdata;
        struct ble_client *c;

        if (p->disconnecting)
                return sd_bus_error_set(error, BLUEZ_ERROR "NotConnected", "Not Connected");
        if (p->notify_fd >= 0 || p->faults.acquire_notify == ACQUIRE_STUCK)
                return sd_bus_error_set(error, BLUEZ_ERROR "NotPermitted", "Notify acquired");
        if (p->faults.acquire_notify == ACQUIRE_SILENT) {
                dev_log(p->d, 2, "ble: StartNotify left unanswered (acquire-notify=silent)");
                return 1;
        }
        if (client_find(p->notify_clients, sd_bus_message_get_sender(m) ?: ""))
                return sd_bus_reply_method_return(m, NULL);
        bool was = p->notify_clients != NULL;
        int r = client_new(p->ble, &p->notify_clients, CLIENT_NOTIFY, p, m, &c);
        if (r < 0)
                return r;
        if (!was)
                chrc_emit(p, "Notifying");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_stop_notify(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct ble_peer *p = userdata;

        if (p->notify_fd >= 0) {
                acquired_close(p, false, true);
                return sd_bus_reply_method_return(m, NULL);
        }
        struct ble_client *c = client_find(p->notify_clients, sd_bus_message_get_sender(m) ?: "");
        if (!c)
                return sd_bus_error_set(error, BLUEZ_ERROR "Failed", "No notify session started");
        client_free(&p->notify_clients, c);
        if (!p->notify_clients)
                chrc_emit(p, "Notifying");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_desc_read(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct ble_peer *p = userdata;
        struct write_options o = {};
        if (read_options(m, write_option, &o) < 0 || o.bad)
                return sd_bus_error_set(error, BLUEZ_ERROR "InvalidArguments", "Invalid arguments in method call");
        bool on = p->notify_clients || p->notify_fd >= 0;
        uint8_t v[2] = { on, 0 };
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_append_array(reply, 'y', v + MIN(o.offset, 2), 2 - MIN(o.offset, 2));
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        return r;
}

static int method_desc_write(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        /* gatt-client.c: the CCC is written through StartNotify/StopNotify only */
        return sd_bus_error_set(error, BLUEZ_ERROR "NotPermitted", "Write not permitted");
}

static const sd_bus_vtable service_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("UUID", "s", gatt_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Device", "o", gatt_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Primary", "b", gatt_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Includes", "ao", gatt_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable chrc_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("ReadValue", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("ay", value),
                                method_chrc_read, 0),
        SD_BUS_METHOD_WITH_ARGS("WriteValue", SD_BUS_ARGS("ay", value, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_chrc_write, 0),
        SD_BUS_METHOD_WITH_ARGS("AcquireWrite", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("h", fd, "q", mtu),
                                method_acquire_write, 0),
        SD_BUS_METHOD_WITH_ARGS("AcquireNotify", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("h", fd, "q", mtu),
                                method_acquire_notify, 0),
        SD_BUS_METHOD("StartNotify", "", "", method_start_notify, 0),
        SD_BUS_METHOD("StopNotify", "", "", method_stop_notify, 0),
        SD_BUS_PROPERTY("UUID", "s", gatt_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Service", "o", gatt_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Notifying", "b", gatt_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Flags", "as", gatt_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("WriteAcquired", "b", gatt_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NotifyAcquired", "b", gatt_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MTU", "q", gatt_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable chrc_value_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Value", "ay", gatt_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable desc_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("ReadValue", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("ay", value),
                                method_desc_read, 0),
        SD_BUS_METHOD_WITH_ARGS("WriteValue", SD_BUS_ARGS("ay", value, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_desc_write, 0),
        SD_BUS_PROPERTY("UUID", "s", gatt_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Characteristic", "o", gatt_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Value", "ay", gatt_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

/* Every object below /org/bluez, for Introspect and GetManagedObjects. */
static int enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret_nodes, sd_bus_error *error) {
        struct sim_ble *ble = userdata;
        size_t n = 0, cap = ble->cfg.adapters + 16;
        char **v = calloc(cap + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
#define ADD(s)                                                                  \
        do {                                                                    \
                if (n == cap) {                                                 \
                        char **nv = realloc(v, (cap * 2 + 1) * sizeof(char *)); \
                        if (!nv)                                                \
                                goto oom;                                       \
                        v = nv;                                                 \
                        cap *= 2;                                               \
                }                                                               \
                if (!(v[n] = strdup(s)))                                        \
                        goto oom;                                               \
                v[++n] = NULL;                                                  \
        } while (0)
        char path[PATH_LEN];
        for (unsigned a = 0; a < ble->cfg.adapters; a++)
                ADD(ble->adapters[a].path);
        for (unsigned i = 0; i < ble->n_peers; i++) {
                struct ble_peer *p = &ble->peers[i];
                for (unsigned a = 0; a < ble->cfg.adapters; a++) {
                        if (!p->objs[a].exported)
                                continue;
                        device_path(p, a, path);
                        ADD(path);
                }
                if (p->state == LINK_CONNECTED && p->gatt_exported) {
                        for (enum path_kind k = PATH_SERVICE; k <= PATH_DESC; k++) {
                                gatt_path(p, k, path);
                                ADD(path);
                        }
                }
        }
#undef ADD
        *ret_nodes = v;
        return 0;
oom:
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
        return -ENOMEM;
}

/* ---- faults and control ---- */

static int fault_apply(const char *spec, struct ble_faults *f, const char **ret_error) {
        const char *s = spec;
        if (strncmp(s, "dev=", 4) == 0) {
                s = strchr(s, ':');
                if (!s) {
                        *ret_error = "bad device prefix, expected dev=N:SPEC";
                        return -EINVAL;
                }
                s++;
        }
        const char *eq = strchr(s, '=');
        size_t name_len = eq ? (size_t) (eq - s) : strlen(s);
        const char *arg = eq ? eq + 1 : NULL;
        char *end;
#define IS(name) (name_len == strlen(name) && strncmp(s, name, name_len) == 0)
        if (IS("connect-fail")) {
                unsigned long n = 1;
                if (arg) {
                        errno = 0;
                        n = strtoul(arg, &end, 10);
                        if (errno || !*arg || *end || *arg == '-' || n > 1000000) {
                                *ret_error = "connect-fail[=N]: N is a count";
                                return -EINVAL;
                        }
                }
                f->connect_fail = (unsigned) n;
                return 0;
        }
        if (IS("resolved-early") && !arg) {
                f->resolved_early = true;
                return 0;
        }
        if (IS("reply-at-resolved") && !arg) {
                f->reply_at_resolved = true;
                return 0;
        }
        if (IS("unseen") && !arg) {
                f->unseen = true;
                return 0;
        }
        if ((IS("resolve-late") || IS("disconnect-at")) && arg) {
                errno = 0;
                unsigned long long v = strtoull(arg, &end, 10);
                if (errno || !*arg || *end || *arg == '-' || v > (IS("resolve-late") ? 3600000ULL : (uint64_t) INT64_MAX)) {
                        *ret_error = "expected a number";
                        return -EINVAL;
                }
                if (IS("resolve-late"))
                        f->resolve_late_ms = (uint32_t) v;
                else
                        f->disconnect_at = (int64_t) v;
                return 0;
        }
        if ((IS("acquire-write") || IS("acquire-notify")) && arg) {
                enum acquire_fault v;
                if (streq(arg, "notpermitted"))
                        v = ACQUIRE_NOT_PERMITTED;
                else if (streq(arg, "failed"))
                        v = ACQUIRE_FAILED;
                else if (streq(arg, "stuck") && IS("acquire-notify"))
                        v = ACQUIRE_STUCK;
                else if (streq(arg, "silent") && IS("acquire-notify"))
                        v = ACQUIRE_SILENT;
                else if (streq(arg, "ok"))
                        v = ACQUIRE_OK;
                else {
                        *ret_error =
                                "acquire-write=notpermitted|failed|ok, acquire-notify=notpermitted|failed|stuck|silent|ok";
                        return -EINVAL;
                }
                *(IS("acquire-write") ? &f->acquire_write : &f->acquire_notify) = v;
                return 0;
        }
#undef IS
        *ret_error =
                "unknown BLE fault (connect-fail[=N], resolve-late=MS, resolved-early, reply-at-resolved, unseen, disconnect-at=BYTES, "
                "acquire-write=notpermitted|failed, acquire-notify=notpermitted|failed|stuck|silent)";
        return -EINVAL;
}

static void faults_init(struct ble_faults *f) {
        *f = (struct ble_faults) { .disconnect_at = -1 };
}

int sim_ble_fault_parse(const char *spec, long *ret_dev, const char **ret_error) {
        struct ble_faults scratch;
        long dev = -1;
        faults_init(&scratch);
        if (strncmp(spec, "dev=", 4) == 0) {
                char *end;
                errno = 0;
                unsigned long v = strtoul(spec + 4, &end, 10);
                if (errno || end == spec + 4 || *end != ':' || v >= SIM_DEVICES_MAX) {
                        *ret_error = "bad device prefix, expected dev=N:SPEC";
                        return -EINVAL;
                }
                dev = (long) v;
        }
        int r = fault_apply(spec, &scratch, ret_error);
        if (r < 0)
                return r;
        *ret_dev = dev;
        return 0;
}

static json_t *error_reply(const char *msg) {
        return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

static const char *state_name(enum link_state s) {
        return s == LINK_CONNECTED ? "connected" : s == LINK_CONNECTING ? "connecting" : "idle";
}

static json_t *peer_state(struct ble_peer *p) {
        json_t *exported = json_array();
        for (unsigned a = 0; a < p->ble->cfg.adapters; a++)
                if (p->objs[a].exported)
                        json_array_append_new(exported, json_integer(a));
        return json_pack("{s:b, s:i, s:s, s:i, s:i, s:b, s:b, s:b, s:b, s:o,"
                         " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
                         " s:{s:i, s:i, s:b, s:I, s:b}}",
                         "ok", 1, "device", p->d->index, "state", state_name(p->state), "adapter",
                         p->state == LINK_IDLE ? -1 : (int) p->adapter, "mtu", (int) p->mtu, "services_resolved",
                         p->services_resolved, "notifying", p->notify_clients != NULL, "write_acquired",
                         p->write_fd >= 0, "notify_acquired", p->notify_fd >= 0, "exported_on", exported, "stats",
                         "writes", (json_int_t) p->stats.writes, "write_bytes", (json_int_t) p->stats.write_bytes,
                         "dropped_writes", (json_int_t) p->stats.dropped_writes, "notifications",
                         (json_int_t) p->stats.notifications, "dropped_notifications",
                         (json_int_t) p->stats.dropped_notifications, "connects", (json_int_t) p->stats.connects,
                         "connect_failures", (json_int_t) p->stats.connect_failures, "link_losses",
                         (json_int_t) p->stats.link_losses, "silent_connects", (json_int_t) p->stats.silent_connects,
                         "faults", "connect_fail", (int) p->faults.connect_fail, "resolve_late_ms",
                         (int) p->faults.resolve_late_ms, "resolved_early", p->faults.resolved_early, "disconnect_at",
                         (json_int_t) p->faults.disconnect_at, "unseen", p->faults.unseen);
}

/* Every adapter's controller: links held, the limit (null: none), refusals. */
static json_t *adapters_state(struct sim_ble *ble) {
        json_t *list = json_array();
        for (unsigned a = 0; list && a < ble->cfg.adapters; a++) {
                struct ble_adapter *ad = &ble->adapters[a];
                json_array_append_new(list, json_pack("{s:i, s:b, s:i, s:o, s:I}", "index", (int) a, "powered",
                                                      ad->powered, "links", (int) adapter_links(ble, a), "max_links",
                                                      ad->max_links ? json_integer(ad->max_links) : json_null(),
                                                      "refused", (json_int_t) ad->refused));
        }
        return list;
}

int sim_ble_max_links_parse(const char *s, uint32_t *ret) {
        if (streq(s, "unlimited")) {
                *ret = 0;
                return 0;
        }
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || !*s || *end || *s == '-' || v < 1 || v > SIM_BLE_MAX_LINKS_MAX)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

/* "ble-set ADAPTER|all KEY=VALUE...": all checked before any is applied. */
static json_t *adapters_set(struct sim_ble *ble, unsigned first, unsigned last, int argc, char **argv) {
        uint32_t max_links = 0;

        if (argc < 3)
                return error_reply("usage: ble-set ADAPTER|all max-links=N|unlimited");
        static const char key[] = "max-links=";
        for (int i = 2; i < argc; i++) {
                if (strncmp(argv[i], key, sizeof(key) - 1) != 0)
                        return error_reply("unknown key (max-links=N|unlimited)");
                if (sim_ble_max_links_parse(argv[i] + sizeof(key) - 1, &max_links) < 0)
                        return error_reply("max-links takes 1..10000 or unlimited");
        }
        for (unsigned a = first; a < last; a++) {
                /* Links beyond a lowered limit stay: a controller does not
                 * drop what it holds, it refuses new ones. */
                ble->adapters[a].max_links = max_links;
                if (max_links)
                        sim_log(ble->sim, 1, "ble: hci%u holds at most %u links", a, max_links);
                else
                        sim_log(ble->sim, 1, "ble: hci%u holds any number of links", a);
        }
        return json_pack("{s:b}", "ok", 1);
}

/* Picks devices: "all" or an index; returns the range [*first, *last). */
static int pick(struct sim_ble *ble, const char *arg, unsigned n, unsigned *first, unsigned *last) {
        if (streq(arg, "all")) {
                *first = 0;
                *last = n;
                return 0;
        }
        char *end;
        errno = 0;
        unsigned long v = strtoul(arg, &end, 10);
        if (errno || !*arg || *end || *arg == '-' || v >= n)
                return -EINVAL;
        *first = (unsigned) v;
        *last = (unsigned) v + 1;
        return 0;
}

json_t *sim_ble_command(struct sim *sim, int argc, char **argv) {
        struct sim_ble *ble = ble_of(sim);
        unsigned first, last;
        const char *err = NULL;

        if (!ble)
                return error_reply("BLE is off (start smpsim with --ble)");
        if (argc < 2)
                return error_reply("missing device (an index or 'all')");
        bool adapters = streq(argv[0], "ble-power") || streq(argv[0], "ble-set");
        if (pick(ble, argv[1], adapters ? ble->cfg.adapters : ble->n_peers, &first, &last) < 0)
                return error_reply(adapters ? "no such adapter" : "no such device");

        if (streq(argv[0], "ble-state")) {
                if (last - first != 1)
                        return error_reply("ble-state takes one device");
                json_t *st = peer_state(&ble->peers[first]);
                if (st)
                        json_object_set_new(st, "adapters", adapters_state(ble));
                return st;
        }
        if (streq(argv[0], "ble-fault")) {
                if (argc != 3)
                        return error_reply("usage: ble-fault DEV|all SPEC");
                for (unsigned i = first; i < last; i++)
                        if (fault_apply(argv[2], &ble->peers[i].faults, &err) < 0)
                                return error_reply(err);
                return json_pack("{s:b}", "ok", 1);
        }
        if (streq(argv[0], "ble-clear-faults")) {
                for (unsigned i = first; i < last; i++)
                        faults_init(&ble->peers[i].faults);
                return json_pack("{s:b}", "ok", 1);
        }
        if (streq(argv[0], "ble-disconnect")) {
                /* the link is lost now (as a supervision timeout would end it) */
                for (unsigned i = first; i < last; i++)
                        if (ble->peers[i].state != LINK_IDLE) {
                                ble->peers[i].stats.link_losses++;
                                peer_link_down(&ble->peers[i], "control socket");
                        }
                return json_pack("{s:b}", "ok", 1);
        }
        if (streq(argv[0], "ble-set"))
                return adapters_set(ble, first, last, argc, argv);
        if (adapters) {
                if (argc != 3 || (!streq(argv[2], "on") && !streq(argv[2], "off")))
                        return error_reply("usage: ble-power ADAPTER|all on|off");
                for (unsigned a = first; a < last; a++)
                        adapter_set_powered(&ble->adapters[a], streq(argv[2], "on"));
                return json_pack("{s:b}", "ok", 1);
        }
        return error_reply("unknown command (ble-state, ble-fault, ble-clear-faults, ble-disconnect, ble-power, "
                           "ble-set)");
}

/* ---- device up/down ---- */

void sim_ble_device_down(struct sim_device *d) {
        struct ble_peer *p = peer_of(d);
        if (!p || p->state != LINK_CONNECTED || p->action == T_LINK_LOSS)
                return;
        /* the device stops answering the link layer: the central notices
         * after the supervision timeout */
        p->disconnecting = false;
        peer_arm(p, T_LINK_LOSS, sim_now_us(p->ble->sim) + (uint64_t) p->ble->cfg.supervision_ms * 1000);
}

void sim_ble_device_up(struct sim_device *d) {
        struct ble_peer *p = peer_of(d);
        if (!p || p->state != LINK_CONNECTING)
                return;
        uint64_t at = sim_now_us(p->ble->sim) + (uint64_t) p->ble->cfg.connect_ms * 1000;
        if (at < p->connect_deadline_us)
                peer_arm(p, T_CONNECT, at);
}

/* ---- setup ---- */

static int bus_open(const char *spec, sd_bus **ret) {
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL;
        int r;

        if (streq(spec, "system"))
                r = sd_bus_open_system(&bus);
        else if (streq(spec, "session"))
                r = sd_bus_open_user(&bus);
        else {
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, spec);
                if (r >= 0)
                        r = sd_bus_set_bus_client(bus, 1);
                if (r >= 0)
                        r = sd_bus_negotiate_fds(bus, 1);
                if (r >= 0)
                        r = sd_bus_start(bus);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(bus);
        return 0;
}

int sim_ble_open(struct sim *sim, const struct sim_ble_config *cfg) {
        struct sim_ble *b = calloc(1, sizeof(*b));
        int r;

        if (!b)
                return -ENOMEM;
        sim->ble = b; /* from here on sim_ble_close() cleans up */
        b->sim = sim;
        b->cfg = *cfg;
        b->n_peers = sim->n_devices;
        b->adapters = calloc(cfg->adapters, sizeof(*b->adapters));
        b->peers = calloc(b->n_peers, sizeof(*b->peers));
        if (!b->adapters || !b->peers) {
                r = -ENOMEM;
                goto fail;
        }
        for (unsigned a = 0; a < cfg->adapters; a++) {
                struct ble_adapter *ad = &b->adapters[a];
                ad->ble = b;
                ad->index = a;
                ad->powered = true;
                ad->pairable = true;
                ad->discoverable_timeout = 180;
                ad->max_links = cfg->max_links;
                snprintf(ad->path, sizeof(ad->path), "/org/bluez/hci%u", (uint8_t) a);
                snprintf(ad->address, sizeof(ad->address), "00:AA:01:00:00:%02X", (uint8_t) a);
        }
        for (unsigned i = 0; i < b->n_peers; i++) {
                struct ble_peer *p = &b->peers[i];
                p->ble = b;
                p->d = &sim->devices[i];
                p->write_fd = p->notify_fd = -1;
                p->txq_tail = &p->txq_head;
                p->mtu = 23;
                faults_init(&p->faults);
                p->objs = calloc(cfg->adapters, sizeof(*p->objs));
                if (!p->objs) {
                        r = -ENOMEM;
                        goto fail;
                }
                for (unsigned a = 0; a < cfg->adapters; a++) {
                        p->objs[a].peer = p;
                        p->objs[a].adapter = a;
                }
                for (unsigned k = 0; k < cfg->n_faults; k++) {
                        long dev;
                        const char *err;
                        if (sim_ble_fault_parse(cfg->faults[k], &dev, &err) == 0 && (dev < 0 || dev == (long) i))
                                (void) fault_apply(cfg->faults[k], &p->faults, &err);
                }
        }

        r = bus_open(cfg->bus, &b->bus);
        if (r < 0)
                goto fail;
        r = sd_bus_attach_event(b->bus, sim_event_loop(sim), SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                goto fail;
        r = sd_bus_add_object_manager(b->bus, NULL, "/");
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(b->bus, NULL, "/org/bluez", ADAPTER_IFACE, adapter_vtable, adapter_find, b);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(b->bus, NULL, "/org/bluez", DEVICE_IFACE, device_vtable, device_find, b);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(b->bus, NULL, "/org/bluez", DEVICE_IFACE, device_rssi_vtable,
                                               device_rssi_find, b);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(b->bus, NULL, "/org/bluez", SERVICE_IFACE, service_vtable, gatt_find, b);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(b->bus, NULL, "/org/bluez", CHRC_IFACE, chrc_vtable, gatt_find, b);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(b->bus, NULL, "/org/bluez", CHRC_IFACE, chrc_value_vtable,
                                               chrc_value_find, b);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(b->bus, NULL, "/org/bluez", DESC_IFACE, desc_vtable, gatt_find, b);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(b->bus, NULL, "/org/bluez", enumerate, b);
        if (r < 0)
                goto fail;
        r = sd_bus_request_name(b->bus, "org.bluez", 0);
        if (r < 0) {
                fprintf(stderr, "smpsim: --ble: cannot own org.bluez: %s\n", strerror(-r));
                goto fail;
        }
        fprintf(stderr, "smpsim: %u device(s) on org.bluez (%s), %u adapter(s), ATT MTU %u\n", b->n_peers, cfg->bus,
                cfg->adapters, cfg->mtu);
        return 0;
fail:
        sim_ble_close(sim);
        return r;
}

void sim_ble_close(struct sim *sim) {
        struct sim_ble *ble = ble_of(sim);
        if (!ble)
                return;
        for (unsigned i = 0; ble->peers && i < ble->n_peers; i++) {
                struct ble_peer *p = &ble->peers[i];
                acquired_close(p, true, false);
                acquired_close(p, false, false);
                while (p->notify_clients)
                        client_free(&p->notify_clients, p->notify_clients);
                txq_clear(p);
                p->connect_msg = sd_bus_message_unref(p->connect_msg);
                for (unsigned k = 0; k < p->n_disconnect_msgs; k++)
                        sd_bus_message_unref(p->disconnect_msgs[k]);
                p->timer = sd_event_source_disable_unref(p->timer);
                if (p->objs)
                        for (unsigned a = 0; a < ble->cfg.adapters; a++)
                                free(p->objs[a].alias);
                free(p->objs);
                free(p->rx);
        }
        for (unsigned a = 0; ble->adapters && a < ble->cfg.adapters; a++) {
                struct ble_adapter *ad = &ble->adapters[a];
                while (ad->clients)
                        client_free(&ad->clients, ad->clients);
                ad->scan_timer = sd_event_source_disable_unref(ad->scan_timer);
                ad->sweep_timer = sd_event_source_disable_unref(ad->sweep_timer);
                free(ad->alias);
        }
        if (ble->bus)
                sd_bus_flush_close_unref(ble->bus);
        free(ble->peers);
        free(ble->adapters);
        free(ble);
        sim->ble = NULL;
}
