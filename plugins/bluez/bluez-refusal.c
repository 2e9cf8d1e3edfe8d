/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A Connect that BlueZ aborted on every attempt: is the adapter out of
 * links?
 *
 * A controller that holds all the LE links it can answers LE Create
 * Connection with a resource error (Connection Limit Exceeded, Memory
 * Capacity Exceeded, Connection Rejected due to Limited Resources; the
 * kernel's Connect Failed mgmt event says "No Resources").  The kernel
 * fails bluetoothd's ATT socket with bt_to_errno() of that status, and
 * bluetoothd (5.66, and still today) answers every failed LE connection
 * socket in att_connect_cb() (src/device.c) with -ECONNABORTED, which
 * btd_error_le_conn_from_errno() (src/error.c) turns into Failed
 * "le-connection-abort-by-local": the D-Bus API cannot tell a full
 * controller from any other aborted attempt.  What tells them apart is
 * that a full controller refuses every attempt while it holds other
 * links.  So once the retries are used up (each one refused), we count
 * the devices BlueZ shows connected through the same adapter: with one
 * or more the link fails with -EUSERS, "the adapter has no free link",
 * else with -ECONNABORTED as before.  See doc/transport-ble.md.
 */
#include <errno.h>
#include <string.h>

#include "bluez.h"

struct adapter_count {
        const struct smp_link *link;
        unsigned others;     /* devices connected through the link's adapter, not the link's own */
};

static int count_connected(void *ctx, const char *path, const char *iface, const struct dev_props *p) {
        struct adapter_count *c = ctx;
        if (streq(iface, DEVICE_IFACE) && p->connected && p->adapter && streq(p->adapter, c->link->adapter_path) &&
            !streq(path, c->link->device_path))
                c->others++;
        return 0;
}

static int on_adapter_objects(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct smp_link *l = userdata;
        struct adapter_count count = { .link = l };

        l->call = sd_bus_slot_unref(l->call);
        if (reply_errno(l->instance, l, "GetManagedObjects", m) < 0 ||
            read_managed_objects(m, count_connected, &count) < 0 || count.others == 0) {
                ble_debug(l->instance, l, "%s: Connect aborted %u times, no other link on %s", l->address,
                          l->aborts, l->adapter_path);
                link_fail(l, -ECONNABORTED);
                return 0;
        }
        smp_host_log(l->instance->host, SMP_LOG_WARNING,
                     "the adapter has no free link: %s refused %s %u times (le-connection-abort-by-local) "
                     "while it held %u other link%s",
                     ble_get_adapter(l), l->address, l->aborts, count.others, count.others == 1 ? "" : "s");
        link_fail(l, -EUSERS);
        return 0;
}

void link_refused(struct smp_link *l) {
        if (l->aborts <= CONNECT_RETRIES) {
                /* Some attempt connected (and the link was lost before it
                 * was ready): not a controller refusing every time. */
                link_fail(l, -ECONNABORTED);
                return;
        }
        /* The adapter's Connect turn is kept until this is decided: if it
         * is full, letting the next link try first gains nothing. */
        l->state = ST_REFUSED;
        int r = sd_bus_call_method_async(l->bus, &l->call, BLUEZ, "/", OM_IFACE, "GetManagedObjects",
                                         on_adapter_objects, l, NULL);
        if (r < 0)
                link_fail(l, -ECONNABORTED);
}
