/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Discovery rounds (discovery.c): udp ranges, coap ranges and
 * multicast, BLE scans, every config.discovery_interval and on demand.
 * What they find goes to device_seen() (device.h).
 */
#pragma once

struct manager;
struct discovery;

int discovery_start(struct manager *m, struct discovery **ret);
struct discovery *discovery_free(struct discovery *disc);
/* Starts a discovery round now on every configured transport (D-Bus
 * Scan(), REST); -EALREADY when one is running, -ENOTCONN when
 * discovery is off. */
int manager_scan(struct manager *m);
