/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The "ble" transport: SMP over BLE GATT through BlueZ's D-Bus API
 * (org.bluez, BlueZ >= 5.62), the transport of Zephyr's smp_bt.c: service
 * 8d53dc1d-..., one characteristic da2e7828-... (write without response +
 * notify).
 *
 *   ble:AA:BB:CC:DD:EE:FF[,adapter=hciN][,mode=acquire|notify]
 *       [,connect-timeout=MS][,resolve-timeout=MS][,max-connections=N]
 *
 * adapter: default any adapter that already knows the device, else hci0.
 * mode: acquire (default) uses AcquireWrite/AcquireNotify sockets and
 * falls back per direction to WriteValue(type=command)/StartNotify when
 * BlueZ refuses; notify uses the D-Bus path only.  max-connections sets
 * the limit of links per adapter for the whole instance (default 4).
 *
 * The links on one sd-event loop share one system bus connection
 * (bluez-shared.c; sd_bus_open_system(), which honours
 * $DBUS_SYSTEM_BUS_ADDRESS), each discovery has its own; every call is
 * asynchronous.  Debug lines
 * go to the host's log.  The parts are listed in bluez.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "bluez.h"

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
        ble_buses_forget(i);
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
        .get_adapter = ble_get_adapter,
};
