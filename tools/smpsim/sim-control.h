/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Control socket: a Unix stream socket taking one command per line and
 * answering one JSON object per line, so that tests can change links and
 * faults and read device state while smpsim runs.
 *
 *   list                         {"ok":true,"devices":N}
 *   state DEV                    slots, trailers, upload, boots, stats, faults, link
 *   set DEV|all KEY=VALUE...     bandwidth latency jitter loss mtu buf-size
 *                                buf-count swap-ms boot-ms flash-rate
 *                                erase-rate smp-version
 *   fault DEV|all SPEC           add a fault (same spelling as --fault)
 *   clear-faults DEV|all
 *   reset DEV|all                power-cycle: reboot now, un-hang
 *   ble-state DEV                BLE link: adapter, MTU, notify/acquire, counters
 *   ble-fault DEV|all SPEC       add a BLE fault (same spelling as --ble-fault)
 *   ble-clear-faults DEV|all
 *   ble-disconnect DEV|all       the BLE link is lost now
 *   ble-power ADAPTER|all on|off adapter Powered (as the Powered property)
 */
#pragma once

#include "sim.h"

int sim_control_open(struct sim *sim, const char *path);
void sim_control_close(struct sim *sim);

/* Applies KEY=VALUE to a device (shared with the command line). */
int sim_device_set(struct sim_device *d, const char *key, const char *value, const char **ret_error);
