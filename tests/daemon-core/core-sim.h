/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A minimal simulated device fleet behind an in-process transport, for
 * the daemon-core tests: no sockets, no processes, answers on the test's
 * own sd-event loop.  Enough of Zephyr's mcumgr and MCUboot for probes
 * and upload-only pushes: OS parameters, image state read, image upload
 * (resumed by the same SHA-256 at offset 0, as Zephyr resumes), and the
 * faults the scheduler must survive (a link that drops, a device that
 * refuses the image, a link that cannot be opened, slow answers).
 *
 * Connection strings: "udp:127.0.0.1:<n>" and "serial:127.0.0.1:<n>" for
 * device n (core_sim_device()): the transport is registered under both
 * names so the configuration's per-transport limits apply to it, and
 * the real plugins never load (the harness points plugin_dir elsewhere).
 *
 * The devices outlive managers: a test can stop a daemon and start
 * another on the same database and the same devices (resume).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smpgw/smp-transport.h"

#define CORE_SIM_DEVICES_MAX 64u

struct core_sim_device {
        unsigned index;
        /* behaviour, set by the test */
        uint64_t answer_delay_usec;    /* every answer this late */
        unsigned drop_link_at;         /* >0: the link closes instead of answering request n of a link */
        bool refuse_open;              /* open() fails: -ECONNREFUSED */
        bool refuse_upload;            /* uploads are answered with an mcumgr error */
        /* state */
        uint8_t active_hash[32];
        bool slot1_full;
        uint8_t slot1_hash[32];
        char slot1_version[32];
        uint8_t *upload;               /* the upload in progress, size bytes */
        size_t upload_size, upload_off;
        uint8_t upload_sha[32];
        size_t upload_sha_len;
        /* what happened */
        unsigned links_opened, links_open, requests;
        uint64_t upload_bytes;         /* image data accepted */
};

/* The transports to add to a context: "udp" and "serial". */
extern const struct smp_transport core_sim_udp, core_sim_serial;

/* Device n (1..CORE_SIM_DEVICES_MAX - 1), created on first use. */
struct core_sim_device *core_sim_device(unsigned n);
/* Forgets every device. */
void core_sim_reset(void);
/* True while the transport is inside a link callback of the session
 * (delivering an answer or a close): what an observer of the manager
 * must never see. */
bool core_sim_in_callback(void);
