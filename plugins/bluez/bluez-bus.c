/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * BlueZ's D-Bus API as the ble transport reads it: org.bluez errors as
 * negative errno, Device1/Adapter1/GattCharacteristic1 properties and
 * GetManagedObjects answers, the discovery filter, and logging through
 * the host.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "bluez.h"

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
        /* EUSERS says "the adapter has no free link" (bluez-refusal.c)
         * and nothing else. */
        return r > 0 && r != EUSERS ? -r : -EIO;
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
