/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Simulated devices in the test's own process, behind a transport of a
 * libsmpgw context: smpsim's device model (tools/smpsim: the SMP server
 * as Zephyr answers, MCUboot's two slots and its boot decision, the link
 * model, the faults) without its sockets, for unit tests of whatever
 * drives sessions (lib's procedures, smpgwd's engine).
 *
 *   struct sim_fleet_params p;
 *   sim_fleet_params_default(&p);
 *   p.count = 3;
 *   sim_fleet_new(event, &p, &fleet);
 *   sim_fleet_add_to_context(fleet, ctx);
 *   smp_session_open(ctx, event, sim_fleet_conn(fleet, 1), &session);
 *
 * Device i is "sim:C0:DE:00:00:HH:LL" (HH:LL = i; the scheme is
 * params.scheme).  The transport behaves like udp: by default a link is
 * a datagram path that nothing can refuse and requests to a device that
 * is rebooting, hung or absent simply get no answer; with
 * link_faults.connected it behaves like ble instead (a reset closes the
 * device's links, opening one while it is down fails).
 *
 * Everything happens on the fleet's sd-event loop, later, never inside
 * the call that caused it: send() hands the frame to the device model,
 * which takes it at the time the link model says; answers are queued on
 * the link and delivered to receive() from the loop, one packet per
 * dispatch; closed() too.  A link may be closed (and its session freed)
 * from inside any of its callbacks.
 *
 * Timing is the model's, on the real clock of the loop: smpsim's
 * defaults (reset 250 ms after the answer, boot 100 ms, swap 500 ms) make
 * a whole update take about a second; shorten them in params.device for
 * tests that do many.
 *
 * Lifetimes: the transport descriptor lives in the fleet, and a context
 * borrows it (smp_context_add_transport()), so free every context the
 * fleet was added to (and what holds one: sessions, parsed connection
 * strings, bare links) before the fleet; sim_fleet_free() aborts the
 * test when a link is still open.  Answers on their way to a link
 * closed meanwhile are dropped.  Errors are negative errno; nothing here
 * logs unless params.verbosity > 0 (the model's messages on stderr).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "sim-device.h"
#include "smpgw/smp-context.h"
#include "smpgw/smp-transport.h"

/* Devices one fleet holds at most (the address has two octets for it). */
#define SIM_FLEET_DEVICES_MAX 4096u
/* Answers waiting on one link for the test to run its loop; more are
 * dropped and counted as lost (a test that never runs its loop). */
#define SIM_FLEET_LINK_QUEUE_MAX 256u

struct sim_fleet;

/* Faults of the transport itself, per device (the device's own faults
 * are smpsim's, sim_fleet_fault()). */
struct sim_fleet_link_faults {
        /* Links live and die with the device, as over BLE: a reset
         * closes them with closed(-ECONNRESET), and a link opened while
         * the device is down reports closed(-EHOSTDOWN) right after
         * open().  Off: a datagram path, as over UDP. */
        bool connected;
        /* The next `refuse` opens fail with refuse_error (negative errno;
         * 0: -ECONNREFUSED): from open() itself when refuse_at_open,
         * else through closed() right after open() returned a link (a
         * BLE connect that fails). */
        unsigned refuse;
        int refuse_error;
        bool refuse_at_open;
        /* >= 0: once this many more bytes went from the gateway to the
         * device, every link to it closes with closed(-ECONNRESET), the
         * packet that crossed the limit is lost, and the knob goes back
         * to -1 (a link that breaks mid-transfer). */
        int64_t drop_after_bytes;
};

struct sim_fleet_params {
        unsigned count;                   /* devices, 1..SIM_FLEET_DEVICES_MAX */
        const char *scheme;               /* the transport's name, [a-z0-9]+ (default "sim") */
        /* What every device starts with (smpsim's defaults and command
         * line options, tools/smpsim/sim-device.h and sim-link.h); change
         * one device later through sim_fleet_device(). */
        struct sim_device_params device;
        struct sim_link_params link;
        struct sim_fleet_link_faults link_faults;
        /* The MCUboot image every device runs (copied; must carry a
         * SHA256 TLV that matches).  NULL: smpsim's own, version 1.0.0. */
        const uint8_t *image;
        size_t image_len;
        /* What get_info() reports (the session sizes frames by it): mtu,
         * fragments, overhead, buffer_overhead; stream must be false.
         * send() refuses frames larger than mtu with -EMSGSIZE, unless
         * fragments and fragments_need_device say it is BLE-like: then
         * the frame goes in pieces of mtu bytes, which a device with
         * params.device.no_reassembly takes as packets of their own (as
         * tools/smpsim/sim-ble.c does); and it says -ENOTCONN once
         * closed() was reported. */
        struct smp_link_info info;
        uint64_t seed;                    /* for loss, jitter and the random faults */
        int verbosity;                    /* the model's log on stderr: 0 none .. 2 each packet */
};

/* smpsim's defaults (doc/smpsim.md), one device, a udp-like link
 * (mtu 1472, no fragments), no faults. */
void sim_fleet_params_default(struct sim_fleet_params *ret);

/* Creates the devices on event (borrowed, referenced).  -EINVAL: bad
 * params or an image that is not a valid MCUboot image. */
int sim_fleet_new(sd_event *event, const struct sim_fleet_params *params, struct sim_fleet **ret);
/* Frees the devices and what they had scheduled on the loop.  Every link
 * must be closed (see Lifetimes above). */
struct sim_fleet *sim_fleet_free(struct sim_fleet *f);

/* Makes the fleet's transport known to ctx (smp_context_add_transport():
 * -EEXIST when ctx has a transport of that scheme already).  Links of a
 * context must be opened on the fleet's event loop (-EINVAL otherwise). */
int sim_fleet_add_to_context(struct sim_fleet *f, struct smp_context *ctx);
const struct smp_transport *sim_fleet_get_transport(struct sim_fleet *f);

unsigned sim_fleet_count(const struct sim_fleet *f);
/* Device index's connection string ("sim:C0:DE:00:00:00:01"), valid as
 * long as the fleet; NULL past the last device. */
const char *sim_fleet_conn(const struct sim_fleet *f, unsigned index);
/* The model's device, to read and change what the API below does not
 * cover: params, link, faults, flash, upload, stats, boot_count,
 * rebooting (tools/smpsim/sim-device.h).  NULL past the last device. */
struct sim_device *sim_fleet_device(struct sim_fleet *f, unsigned index);

/* ---- the device's faults (smpsim's) ---- */

/* Adds a fault in smpsim's --fault language (tools/smpsim/sim-fault.h):
 * revert, reject, drop-at=BYTES[,MS], silent-at=BYTES,
 * reboot-at=BYTES[,keep], drop=P, silent=P, slow=MS, dup=P, corrupt=P.
 * -EINVAL with a sentence in *ret_error (static; may be NULL). */
int sim_fleet_fault(struct sim_fleet *f, unsigned index, const char *spec, const char **ret_error);
void sim_fleet_clear_faults(struct sim_fleet *f, unsigned index);
/* The device hangs from now on: it takes requests and answers none,
 * until sim_fleet_reboot(). */
void sim_fleet_hang(struct sim_fleet *f, unsigned index);
/* The device resets now (losing its upload state and queued requests,
 * keeping its flash), is away for away_usec (plus the swap time when
 * MCUboot has a swap to do) and then answers again. */
void sim_fleet_reboot(struct sim_fleet *f, unsigned index, uint64_t away_usec);

/* ---- the transport's faults ---- */

struct sim_fleet_link_faults *sim_fleet_link_faults(struct sim_fleet *f, unsigned index);

/* ---- what happened ---- */

/* Links open to the device now. */
unsigned sim_fleet_links(const struct sim_fleet *f, unsigned index);
/* Links to the device opened (refused ones included) since the start. */
unsigned sim_fleet_links_opened(const struct sim_fleet *f, unsigned index);

/* The image in a slot (0: the one running, 1: the upload slot) as mcumgr
 * reports it: version string as Zephyr writes it ("1.0.0"), hash (the
 * SHA256 TLV), flags (SIM_SLOT_F_*).  -ENOENT: the slot holds no image. */
struct sim_fleet_slot {
        char version[32];
        uint8_t hash[32];
        unsigned flags;
};
int sim_fleet_slot(struct sim_fleet *f, unsigned index, int slot, struct sim_fleet_slot *ret);
