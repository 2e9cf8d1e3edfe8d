/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The D-Bus API, org.smpgw (dbus/org.smpgw.xml): an ObjectManager at
 * /org/smpgw, org.smpgw.Manager1 there, and one object per device
 * (org.smpgw.Device1), image (org.smpgw.Image1) and job (org.smpgw.Job1).
 */
#pragma once

struct manager;
struct bus_api;

/* Connects to config.bus, exports the objects, requests the name
 * org.smpgw (synchronously, so READY=1 follows only once it is held). */
int bus_api_start(struct manager *m, struct bus_api **ret);
struct bus_api *bus_api_free(struct bus_api *api);
