/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A fake org.bluez (BlueZ 5.66's D-Bus API: doc/adapter-api.txt,
 * doc/device-api.txt, doc/gatt-api.txt) whose remote devices are the
 * simulated devices, each with Zephyr's SMP service (smp_bt.c): one
 * characteristic, write-without-response + notify, requests reassembled
 * from the SMP header length, answers cut at ATT_MTU-3.
 *
 * Objects: /org/bluez/hciN (Adapter1), .../dev_C0_DE_00_00_HH_LL
 * (Device1, HHLL = the device index), .../service0010 (GattService1),
 * .../service0010/char0011 (GattCharacteristic1), .../char0011/desc0013
 * (GattDescriptor1, the CCC).  ObjectManager at "/".  Runs on smpsim's
 * sd-event loop; nothing blocks after start-up.
 */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "sim.h"

#define SIM_BLE_ADAPTERS_MAX 16u
/* --ble-max-links and "ble-set ADAPTER max-links=N" take 1..this. */
#define SIM_BLE_MAX_LINKS_MAX SIM_DEVICES_MAX

struct sim_ble_config {
        const char *bus;             /* "system", "session" or a D-Bus address */
        unsigned adapters;           /* hci0 .. hci(N-1) */
        uint16_t mtu;                /* ATT MTU after the exchange (23..517) */
        uint32_t connect_ms;         /* Connect() to Connected */
        uint32_t resolve_ms;         /* Connected to the GATT objects + ServicesResolved */
        uint32_t supervision_ms;     /* a device that resets: link loss noticed after this */
        uint32_t connect_timeout_ms; /* Connect() to a device that does not advertise fails after this */
        uint32_t temporary_ms;       /* unconnected devices vanish this long after last seen (main.conf TemporaryTimeout) */
        uint32_t conn_interval_ms;   /* 0: notifications leave at once; else paced per connection event */
        uint32_t notify_per_event;   /* notifications per connection event (with conn_interval_ms) */
        uint32_t max_links;          /* connected devices an adapter's controller holds; 0: unlimited */
        const char **faults;         /* "[dev=N:]SPEC", see sim_ble_fault_apply() */
        unsigned n_faults;
};

/* Connects to the bus, exports the objects, takes the name org.bluez. */
int sim_ble_open(struct sim *sim, const struct sim_ble_config *cfg);
void sim_ble_close(struct sim *sim);

/* An answer frame from the device timeline (route kind SIM_TRANSPORT_BLE). */
void sim_ble_send(struct sim_device *d, const struct sim_route *route, const uint8_t *pkt, size_t len);

/* An upload chunk that came over route was written and the upload
 * reached off: the fault disconnect-at drops the link here, so the
 * chunk's answer is lost with it. */
void sim_ble_upload_reached(struct sim_device *d, const struct sim_route *route, uint64_t off);

/* The device reset (stops advertising; the link is lost after the
 * supervision timeout) or booted (advertises and accepts connections). */
void sim_ble_device_down(struct sim_device *d);
void sim_ble_device_up(struct sim_device *d);

/* Parses "[dev=N:]SPEC" (ret_dev -1 = all).  SPEC:
 *   connect-fail[=N]          the next N Connect()s fail with
 *                             org.bluez.Error.Failed "le-connection-abort-by-local"
 *   resolve-late=MS           services are resolved MS later than --ble-resolve-ms
 *   resolved-early            ServicesResolved turns true before the GATT
 *                             objects are exported (bluez/bluez#1489)
 *   disconnect-at=BYTES       the link drops when the upload reaches BYTES (once)
 *   acquire-write=notpermitted|failed
 *   acquire-notify=notpermitted|failed   AcquireWrite/AcquireNotify refused */
int sim_ble_fault_parse(const char *spec, long *ret_dev, const char **ret_error);

/* Parses a link limit: 1..SIM_BLE_MAX_LINKS_MAX, or "unlimited" (0). */
int sim_ble_max_links_parse(const char *s, uint32_t *ret);

/* Control socket commands starting with "ble-" (see doc/smpsim.md);
 * NULL when sim has no BLE. */
json_t *sim_ble_command(struct sim *sim, int argc, char **argv);
