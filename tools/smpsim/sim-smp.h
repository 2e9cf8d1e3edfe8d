/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The SMP server of a simulated device: takes one received packet (one or
 * more SMP frames), runs each request against the device state the way
 * Zephyr's smp.c and the OS/image/stat group handlers do, and returns the
 * answers plus what the device does next.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "sim-device.h"

#define SIM_SMP_MAX_FRAMES 16

enum sim_smp_action {
        SIM_SMP_ANSWER,        /* send the answers */
        SIM_SMP_DROP,          /* lose the request (fault) */
        SIM_SMP_REBOOT_NOW,    /* reboot without answering (fault reboot-at) */
        SIM_SMP_GO_SILENT,     /* hang (fault silent-at/silent) */
        SIM_SMP_LINK_DOWN,     /* the link drops (fault drop-at) */
};

struct sim_smp_reply {
        uint8_t *data;           /* answers, concatenated */
        size_t len, cap;
        size_t frame_end[SIM_SMP_MAX_FRAMES];
        unsigned n_frames;
        uint64_t work_us;        /* time the device spends (flash erase/write) */
        bool reset_after;        /* OS reset: reboot once the answer is out */
        uint64_t upload_reached; /* an upload chunk was written: the offset it reached (0: none) */
        enum sim_smp_action action;
};

void sim_smp_reply_done(struct sim_smp_reply *r);

/* Processes every request in pkt.  Never fails: malformed input gets the
 * answer Zephyr gives (or none, where Zephyr sends none). */
void sim_smp_process(struct sim_device *d, const uint8_t *pkt, size_t len, struct sim_smp_reply *reply);
/* The answer to the first request in pkt that is not handled, as
 * smp_on_err() gives it: {"rc": rc} under the request's header.  No
 * answer when pkt has no whole header. */
void sim_smp_refuse(struct sim_device *d, const uint8_t *pkt, size_t len, int rc, struct sim_smp_reply *reply);
