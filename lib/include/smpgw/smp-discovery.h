/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Discovery through a transport of a context: udp's range probe, coap's
 * multicast query, a BLE scan.  Devices are reported with
 * smp_discovered_fn (smp-transport.h); their connection strings are in
 * canonical form (smp-conn.h), so they compare equal to what
 * smp_context_parse_conn() makes of any way of writing the same device.
 */
#pragma once

#include <systemd/sd-event.h>

#include <smpgw/smp-context.h>
#include <smpgw/smp-transport.h>

#ifdef __cplusplus
extern "C" {
#endif

struct smp_discovery;

/* Starts a discovery with scheme's transport.  args is the transport's
 * (doc/transport-*.md).  -EOPNOTSUPP: the transport cannot discover;
 * -ENOENT/-EPROTO: no usable transport (smp_context_find_transport()
 * says why); -EINVAL: args not understood; others from the transport.
 * The discovery holds a reference on ctx. */
int smp_discovery_start(struct smp_context *ctx, sd_event *event, const char *scheme, const char *args,
                        smp_discovered_fn found, void *userdata, struct smp_discovery **ret);

/* Stops and frees; safe from within found().  NULL is fine. */
struct smp_discovery *smp_discovery_free(struct smp_discovery *d);

#ifdef __cplusplus
}
#endif
