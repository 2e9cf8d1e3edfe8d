/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Inside the simulated Distributor: its state, shared by the distribution
 * model (sim-mesh.c) and the shell commands that print it
 * (sim-mesh-shell.c).  Not for other files.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "sim-mesh.h"
#include "sim-mcuboot.h"

/* BLOB Transfer status reported for a target that failed (target_failed()
 * turns a successful BLOB status into BT_MESH_BLOB_ERR_INTERNAL). */
#define BLOB_ERR_INTERNAL 9

/* A target node: exists on its own, whatever the Distributor remembers. */
struct mesh_node {
        uint16_t addr;
        struct mcuboot_version version;   /* the firmware it runs */
        bool unprovisioned;               /* came back unprovisioned: answers nothing */
        bool rebooting;                   /* into a new image, after an apply */
        /* Lost mid-transfer (lost-at): out of range or powered off, it
         * answers nothing until the faults are cleared. */
        bool gone;
        uint64_t reboot_done_us;
        struct mcuboot_version next_version;
        /* faults */
        int lost_at;                      /* -1 off; percent of the transfer */
        bool verify_fail, apply_fail, old_firmware, unprovision;
        /* The effect its metadata check chose for the distribution going
         * on (config metadata_check): "unprovision", the composition
         * changes. */
        bool effect_unprovision;
};

/* An entry of the Distributor's receivers list (struct bt_mesh_dfu_target). */
struct mesh_receiver {
        uint16_t addr;
        uint8_t img_idx;
        uint8_t phase;                    /* as the target last reported it */
        uint8_t status;                   /* 0: still in the distribution */
        uint8_t blob_status;
        /* The BLOB client dropped it for not answering (target->timedout):
         * a resume brings it back. */
        bool timedout;
};

/* A registered slot (struct bt_mesh_dfu_slot, kept in settings). */
struct mesh_slot {
        uint32_t size;
        uint8_t fwid[SIM_MESH_FWID_MAX];
        size_t fwid_len;
        uint8_t md[SIM_MESH_METADATA_MAX];
        size_t md_len;
};

enum stage {
        STAGE_NONE,
        STAGE_START,
        STAGE_TRANSFER,
        STAGE_VERIFY,
        STAGE_APPLY,
        STAGE_CONFIRM,
        STAGE_CANCEL,
};

/* The Firmware Update Client's xfer.state. */
enum cli_state {
        CLI_IDLE,
        CLI_TRANSFER,
        CLI_REFRESH,
        CLI_VERIFIED,
        CLI_APPLY,
        CLI_CONFIRM,
        CLI_CANCEL,
        CLI_SUSPENDED,
};

struct sim_mesh {
        struct sim_device *d;
        struct sim_mesh_config cfg;
        bool has_dist_hash;
        uint8_t dist_hash[32];
        struct mesh_node *nodes;

        /* settings: survive a reboot */
        struct mesh_slot slots[SIM_MESH_SLOTS_MAX];
        size_t n_slots;

        /* RAM of the Distribution Server and its Update Client */
        uint8_t phase;
        struct mesh_receiver *rx;
        size_t n_rx;
        struct {
                uint16_t app_idx, timeout_base, group, slot_idx;
                uint8_t ttl, mode;
                bool apply;
        } in;
        bool has_xfer;                    /* srv->dfu.xfer.slot is set */
        struct mesh_slot xfer;            /* the slot being distributed */
        struct sim_blob *xfer_blob;       /* slot 1 when the distribution started */
        bool xfer_image_valid;
        struct mcuboot_version xfer_version;
        enum cli_state cli;
        bool cli_failed, cli_completed, resuming;
        enum stage stage;
        uint64_t stage_end_us;
        double sent;                      /* bytes of the BLOB transfer done */
        uint64_t sent_at_us;

        sd_event_source *timer;

        /* mesh-set log-burst: bursts still due, and the command word
         * they wait for ("": any) */
        unsigned log_bursts;
        char log_burst_word[24];
        /* mesh-set reserved-slots: slots a Firmware Distribution Upload
         * over the mesh reserved and never finished; del-all leaves them
         * (dfu_slot.c deletes committed slots only), a reboot frees them */
        unsigned reserved_slots;
};

/* sim-mesh.c */
uint64_t mesh_now_us(const struct sim_mesh *m);
bool mesh_dfd_busy(const struct sim_mesh *m);         /* is_busy() of dfd_srv.c */
bool mesh_cli_busy(const struct sim_mesh *m);         /* bt_mesh_dfu_cli_is_busy() */
unsigned mesh_progress_percent(const struct sim_mesh *m); /* bt_mesh_dfu_cli_progress() */
void mesh_begin_start(struct sim_mesh *m, uint64_t now);
void mesh_begin_apply(struct sim_mesh *m, uint64_t now);
void mesh_begin_cancel(struct sim_mesh *m, uint64_t now);
/* A new distribution of slot_idx to the receivers: the part of
 * bt_mesh_dfd_srv_start() past its checks, and bt_mesh_dfu_cli_send().
 * Returns the Distributor status. */
unsigned mesh_start_new(struct sim_mesh *m, uint16_t app_idx, uint16_t slot_idx, uint16_t group, bool apply,
                        uint8_t ttl, uint16_t timeout_base, uint8_t mode, uint64_t now);
/* Brings everything up to now (transfer, steps due, nodes rebooting) and
 * re-arms the timer. */
void mesh_advance(struct sim_mesh *m, uint64_t now);
void mesh_arm_timer(struct sim_mesh *m, uint64_t now);
