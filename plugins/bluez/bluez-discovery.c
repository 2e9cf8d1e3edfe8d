/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The ble transport's discovery: LE discovery filtered on the SMP service
 * on every adapter (or the one given), for `seconds`; each device that
 * advertises it (RSSI seen in this scan) is reported once, then
 * found(NULL).  Arguments: seconds=N (1..3600, default 10), adapter=hciN,
 * report=each.
 *
 * report=each reports a device again at every advertisement of it that
 * BlueZ shows, and runs until stopped unless seconds= is given: smpgwd
 * watches this way for a device that rebooted to advertise again.  What
 * bluetoothd shows (src/adapter.c btd_adapter_device_found(), src/device.c
 * device_set_rssi_with_delta()): each advertising report sets Device1.RSSI,
 * and PropertiesChanged(RSSI) goes out for a new value when the device
 * had none, or, while a discovering client's filter has RSSI or Pathloss,
 * at every report (with neither, only for a change of 8 dBm or more).
 * RSSI is invalidated only when the adapter's last discovery stops: not
 * when the device connects, so a device seen before it was connected to
 * keeps its old RSSI while it reboots.  Our filter always sets an RSSI
 * floor, so every report shows; the RSSI the objects hold when the watch
 * starts may be stale and is not reported.  A PropertiesChanged names no
 * address: it is the object path's (BlueZ's documented
 * .../hciN/dev_XX_XX_XX_XX_XX_XX), and it carries no UUIDs: BlueZ merges
 * the filters of all its clients, so report=each may report devices that
 * are not SMP ones (the caller matches the addresses it waits for).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bluez.h"

struct smp_transport_discovery {
        struct smp_transport_instance *instance;
        unsigned n_ref;
        bool stopped;
        bool started; /* StartDiscovery sent: reports count from now on */
        bool each;    /* report=each */
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
        /* report=each: only what is seen after the start (the cached
         * objects' RSSI may be an advertisement of long ago). */
        if (d->each && !d->started)
                return 0;
        /* BlueZ merges the filters of all clients: check ours again.
         * Without RSSI the device was not seen in this scan (a cached
         * one); it counts once it advertises (PropertiesChanged RSSI). */
        if (!p->smp_uuid || !p->has_rssi || p->rssi < DISCOVERY_RSSI_FLOOR)
                return 0;
        if (!d->each) {
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
        }

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
        d->started = true;
        if (d->duration_usec == 0)
                return 0; /* report=each without seconds=: until stopped */
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
        if (d->stopped || !d->started || sd_bus_message_read_basic(m, 'o', &path) < 0)
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

/* report=each: a PropertiesChanged of path's Device1 that sets RSSI is
 * an advertisement BlueZ saw (an invalidated RSSI is not). */
static void discovery_report_advertised(struct smp_transport_discovery *d, const char *path, sd_bus_message *m) {
        struct dev_props p = {};
        char adapter[16], address[18];
        const char *dev = strstr(path, "/dev_"), *hci = strstr(path, "/hci");

        if (read_props(m, &p) < 0 || !p.has_rssi || p.rssi < DISCOVERY_RSSI_FLOOR || !dev || !hci || hci > dev ||
            strlen(dev + 5) != 17 || (size_t) (dev - hci - 1) >= sizeof(adapter))
                return;
        memcpy(adapter, hci + 1, dev - hci - 1);
        adapter[dev - hci - 1] = 0;
        if (!adapter_wanted(d, adapter))
                return;
        for (size_t i = 0; i < 17; i++)
                address[i] = dev[5 + i] == '_' ? ':' : dev[5 + i];
        address[17] = 0;

        char conn[32];
        snprintf(conn, sizeof(conn), "ble:%s", address);
        struct smp_discovered found = {
                .conn = conn,
                .address = address,
                .adapter = adapter,
                .has_rssi = true,
                .rssi = p.rssi,
        };
        d->found(&found, d->userdata);
}

static int on_discovery_props(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(discovery_unrefp) struct smp_transport_discovery *d = userdata;
        const char *path = sd_bus_message_get_path(m), *iface;
        struct dev_props p = {};
        d->n_ref++;
        if (d->stopped || !d->started || !path || sd_bus_message_read_basic(m, 's', &iface) < 0 ||
            !streq(iface, DEVICE_IFACE))
                return 0;
        if (d->each) {
                discovery_report_advertised(d, path, m);
                return 0;
        }
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

        bool seconds_given = false;
        r = 0;
        for (const char *opt = args && *args ? args : NULL, *comma; opt; opt = comma ? comma + 1 : NULL) {
                comma = strchr(opt, ',');
                size_t len = comma ? (size_t) (comma - opt) : strlen(opt);
                const char *v;
                size_t vlen;
                uint64_t n;
                if (opt_is(opt, len, "seconds", &v, &vlen) &&
                    smp_parse_uint_n(v, vlen, 1, DISCOVERY_SECONDS_MAX, &n) >= 0) {
                        d->duration_usec = n * 1000000ull;
                        seconds_given = true;
                } else if (opt_is(opt, len, "adapter", &v, &vlen) && adapter_valid(v, vlen)) {
                        memcpy(d->adapter_name, v, vlen);
                        d->adapter_name[vlen] = 0;
                } else if (opt_is(opt, len, "report", &v, &vlen) && vlen == 4 && strncmp(v, "each", 4) == 0) {
                        d->each = true;
                        if (!seconds_given)
                                d->duration_usec = 0;
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
