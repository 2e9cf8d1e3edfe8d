/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A ble link's life: the device from the shared connection's objects
 * (bluez-shared.c); if it is unknown,
 * discovery with an LE + SMP-UUID filter until it appears (bounded by
 * connect-timeout); if it is connected already, a short wait for an
 * earlier client's Disconnect to show; Device1.Connect, at most one in
 * flight per adapter (bluez-adapter.c), retried on
 * le-connection-abort-by-local and when the link drops before it was
 * ready; then ServicesResolved and the SMP characteristic, and the data
 * path (bluez-datapath.c).  BlueZ's signals, handed on by the shared
 * connection, move it along; close() leaves the Disconnect to a linger
 * (bluez-linger.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bluez.h"

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
        ble_bus_remove_link(l);
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

void link_lookup(struct smp_link *l) {
        int r;

        ble_bus_lookup(l->sbus, link_on_iface, l);
        if (!l->device_path[0]) {
                r = link_start_discovery(l);
                if (r < 0)
                        link_fail(l, r);
                return;
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
                return;
        }
        link_connect(l);
}

int on_lookup(sd_event_source *s, uint64_t usec, void *userdata) {
        _cleanup_(link_unrefp) struct smp_link *l = link_ref(userdata);
        l->timer = sd_event_source_disable_unref(l->timer);
        if (l->state != ST_LOOKUP)
                return 0;
        if (l->sbus->cache != CACHE_READY) {
                /* bluetoothd changed since: wait for its objects. */
                int r = ble_bus_start_lookup(l->sbus, l);
                if (r < 0)
                        link_fail(l, r);
                return 0;
        }
        link_lookup(l);
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
        l->aborts = r == -ECONNABORTED ? l->aborts + 1 : 0;
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
        if (r == -ECONNABORTED) {
                link_refused(l);
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

void link_on_interfaces_added(struct smp_link *l, sd_bus_message *m) {
        const char *path;
        bool had_device = l->device_path[0];

        if (l->state == ST_FAILED || l->state == ST_LOOKUP)
                return;
        if (sd_bus_message_read_basic(m, 'o', &path) < 0)
                return;
        if (read_ifaces(m, path, link_on_iface, l) < 0)
                return;
        if (!had_device && l->device_path[0] && l->state == ST_DISCOVER)
                link_connect(l);
        else
                link_check_resolved(l);
}

void link_on_interfaces_removed(struct smp_link *l, sd_bus_message *m) {
        const char *path;

        if (l->state == ST_FAILED || sd_bus_message_read_basic(m, 'o', &path) < 0)
                return;
        if (l->device_path[0] && streq(path, l->device_path)) {
                link_fail(l, l->state == ST_READY ? -ECONNRESET : -ENODEV);
                return;
        }
        if (l->chrc_path[0] && streq(path, l->chrc_path)) {
                l->chrc_path[0] = 0;
                if (l->state == ST_READY || l->state == ST_ACQUIRE)
                        link_fail(l, -ECONNRESET);
        }
}

void link_on_properties_changed(struct smp_link *l, sd_bus_message *m) {
        const char *path = sd_bus_message_get_path(m), *iface;
        struct dev_props p = {};

        if (l->state == ST_FAILED || !path)
                return;
        bool dev = l->device_path[0] && streq(path, l->device_path);
        bool chrc = l->chrc_path[0] && streq(path, l->chrc_path);
        if (!dev && !chrc)
                return;
        if (sd_bus_message_read_basic(m, 's', &iface) < 0 || read_props(m, &p) < 0)
                return;
        if (dev && streq(iface, DEVICE_IFACE)) {
                if (p.has_resolved)
                        l->resolved = p.resolved;
                if (p.has_connected) {
                        l->connected = p.connected;
                        if (p.connected && l->state == ST_CONNECT && l->holds_connect) {
                                /* The controller made the connection: the
                                 * adapter may create the next one while this
                                 * one resolves its services (bluetoothd
                                 * answers Connect() about then, but a reply
                                 * may trail the signal). */
                                link_release_connect(l);
                                if (l->state == ST_FAILED)
                                        return;
                        }
                        if (!p.connected) {
                                l->resolved = false;
                                if (l->state == ST_RETRY) {
                                        l->timer = sd_event_source_disable_unref(l->timer);
                                        link_connect(l);
                                        return;
                                }
                                if ((l->state == ST_RESOLVE || l->state == ST_ACQUIRE) &&
                                    l->retries < CONNECT_RETRIES) {
                                        /* Lost before it was usable (say, an earlier
                                         * client's Disconnect completing after our
                                         * Connect found it still connected): nothing
                                         * was sent yet, connect again. */
                                        link_restart(l);
                                        return;
                                }
                                if (l->state == ST_RESOLVE || l->state == ST_ACQUIRE || l->state == ST_READY) {
                                        link_fail(l, -ECONNRESET);
                                        return;
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
}

void link_on_name_owner_changed(struct smp_link *l, sd_bus_message *m) {
        const char *name, *old_owner, *new_owner;
        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !streq(name, BLUEZ))
                return;
        if (old_owner && *old_owner) {
                ble_debug(l->instance, l, "bluetoothd left the bus");
                link_fail(l, l->state == ST_READY ? -ECONNRESET : -EHOSTDOWN);
        }
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
        _cleanup_(ble_bus_unrefp) struct ble_bus *bus = NULL;
        r = ble_bus_get(instance, event, &bus);
        if (r >= 0) {
                ble_debug(instance, l, "open %s%s%s", l->address, l->adapter_name[0] ? " on " : "", l->adapter_name);
                ble_bus_add_link(bus, l);
                r = ble_bus_start_lookup(bus, l);
        }
        if (r < 0) {
                ble_debug(l->instance, l, "open '%s': %s", smp_conn_get_string(conn), strerror(-r));
                link_unref(l);
                return r;
        }
        *ret = l;
        return 0;
}

/* "hciN" once lookup or discovery chose the adapter. */
const char *ble_get_adapter(struct smp_link *l) {
        const char *slash = strrchr(l->adapter_path, '/');
        return slash && slash[1] ? slash + 1 : NULL;
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
