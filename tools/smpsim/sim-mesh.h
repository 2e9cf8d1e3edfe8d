/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A simulated device that is also a Bluetooth Mesh Distributor, as nRF
 * Connect SDK's distributor sample is: it answers SMP shell management
 * (sim-shell.c) with the `mesh models dfu slot ...` and `mesh models dfd
 * ...` commands of Zephyr's mesh shell, and distributes the image held in
 * its MCUboot slot 1 to targets that exist only behind it.
 *
 * What is modelled, and from where:
 *   - the Firmware Distribution Server's rules (Zephyr
 *     subsys/bluetooth/mesh/dfd_srv.c): receivers list, start with the
 *     same parameters as a no-op, resume, suspend, cancel, apply, busy
 *     states, status codes;
 *   - the Firmware Update Client's procedure and its quirks (dfu_cli.c):
 *     targets start in phase "unknown", a lost target keeps the phase it
 *     last reported, progress is one figure for everybody and reads 100 %
 *     in every state but transfer and idle, a distribution succeeds when
 *     one target succeeds, an "unprovision" target succeeds by not
 *     answering; targets that all stop answering mid-transfer make the
 *     BLOB client suspend the transfer on its own (blob_cli.c suspend()),
 *     which only a start with the same parameters resumes;
 *   - the slot list (dfu_slot.c): kept in settings, so it survives a
 *     reboot, while the distribution state is RAM and does not;
 *   - the shell's printed output in the formats of Zephyr v3.4 and of
 *     v3.5 and later (shell/dfd.c, shell/dfu.c).
 * Time: a distribution goes through fixed steps (SIM_MESH_*_MS below) and
 * a BLOB transfer at `rate` bytes per second, all divided by time_scale.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "smpgw/mcuboot-image.h"

struct sim_device;
struct sim_mesh;

/* Steps of a distribution, in simulated milliseconds. */
#define SIM_MESH_START_MS 2000u     /* Firmware Update Start and BLOB capabilities */
#define SIM_MESH_VERIFY_MS 1000u    /* targets verify the image (refresh) */
#define SIM_MESH_APPLY_MS 1000u     /* Firmware Update Apply to every target */
#define SIM_MESH_BOOT_MS 5000u      /* a target reboots into its new image */
#define SIM_MESH_CONFIRM_MS 1000u   /* Firmware Update Information Get after the reboot */
#define SIM_MESH_CANCEL_MS 1000u    /* Firmware Update Cancel to every target */

/* Bounds of the knobs. */
#define SIM_MESH_NODES_MAX 4096u    /* --mesh-targets */
#define SIM_MESH_RECEIVERS_MAX 1024u /* --mesh-targets-max (CONFIG_BT_MESH_DFD_SRV_TARGETS_MAX) */
#define SIM_MESH_SLOTS_MAX 8u       /* --mesh-slot-cnt (CONFIG_BT_MESH_DFU_SLOT_CNT) */
#define SIM_MESH_FWID_MAX 16u       /* CONFIG_BT_MESH_DFU_FWID_MAXLEN */
#define SIM_MESH_METADATA_MAX 32u   /* CONFIG_BT_MESH_DFU_METADATA_MAXLEN */

enum sim_mesh_zephyr {
        SIM_MESH_ZEPHYR_3_4,        /* hex addresses; "Slot added. ID: N", "Failed." */
        SIM_MESH_ZEPHYR_LATER,      /* decimals; "Slot added. Index: N", "Failed to reserve slot." */
};

struct sim_mesh_config {
        unsigned n_targets;         /* target nodes behind the Distributor */
        uint16_t addr_base;         /* their unicast addresses: base, base + 1, ... */
        struct mcuboot_version target_version;  /* the firmware they run at start */
        enum sim_mesh_zephyr zephyr;
        bool legacy_rc;             /* CONFIG_MCUMGR_GRP_SHELL_LEGACY_RC_RETURN_CODE */
        uint64_t rate;              /* BLOB transfer, bytes per simulated second */
        double time_scale;          /* simulated seconds per real second */
        uint32_t shell_buf;         /* CONFIG_SHELL_CMD_BUFF_SIZE */
        uint32_t shell_out;         /* CONFIG_SHELL_BACKEND_DUMMY_BUF_SIZE */
        uint32_t targets_max;       /* CONFIG_BT_MESH_DFD_SRV_TARGETS_MAX */
        uint32_t slot_cnt;          /* CONFIG_BT_MESH_DFU_SLOT_CNT */
        uint32_t slot_max_size;     /* CONFIG_BT_MESH_DFD_SRV_SLOT_MAX_SIZE (the slot size) */
        /* Targets check the firmware metadata as nRF Connect SDK's mesh DFU
         * target sample does (CONFIG_BT_MESH_DFU_METADATA=y): they refuse
         * a start (status metadata-check-failed) unless the metadata
         * decodes, has the application core and a version newer than
         * theirs, and a size that fits slot_max_size; the effect is
         * "unprovision" (the node leaves the network at the apply) unless
         * the metadata's hash is comp_hash, their own composition's. */
        bool metadata_check;
        uint32_t comp_hash;
        /* Simulated ms the Update Cancel to the targets takes (phase
         * "canceling update"): SIM_MESH_CANCEL_MS when every target
         * answers; a target that does not answer holds it for the BLOB
         * client's timeout, 10 s x (timeout_base + 2) + 100 ms x ttl. */
        uint32_t cancel_ms;
        /* CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE, 0: unlimited (the NCS
         * sample's 2475 holds its 1000 bytes of output): shell_mgmt.c
         * answers MGMT_ERR_EMSGSIZE, without output, when the output does
         * not fit with the SMP header and the response map around it. */
        uint32_t netbuf;
        /* The transfer modes every target's BLOB server reports
         * (SIM_MESH_XFER_MODES_*): the BLOB client keeps the requested
         * mode only when the targets take both (dfu_cli.c blob_caps()),
         * so a push to pull-only targets runs, and prints, as pull. */
        uint8_t target_modes;
};

#define SIM_MESH_XFER_MODES_PUSH 1u
#define SIM_MESH_XFER_MODES_PULL 2u
#define SIM_MESH_XFER_MODES_ALL 3u
/* A burst of deferred log lines in the shell's output buffer (mesh-set
 * log-burst): the lines a burst writes stop this far from the buffer's
 * end, so the command's own output is cut to at most this. */
#define SIM_MESH_LOG_BURST_ROOM 16u

/* The defaults: 4 targets from 0x0100 running 1.0.0+0, Zephyr "later",
 * 300 B/s, time scale 1, shell buffer 256, output buffer 1000 (the NCS
 * sample's), 8 receivers, 1 slot. */
void sim_mesh_config_init(struct sim_mesh_config *cfg);

/* Makes d a Distributor; the image it runs now is the Distributor
 * firmware (swapped for another, the shell is gone). */
int sim_mesh_new(struct sim_device *d, const struct sim_mesh_config *cfg, struct sim_mesh **ret);
struct sim_mesh *sim_mesh_free(struct sim_mesh *m);

const struct sim_mesh_config *sim_mesh_get_config(const struct sim_mesh *m);
/* Whether the device still runs the Distributor firmware. */
bool sim_mesh_active(const struct sim_mesh *m);

struct sim_shell_out;
/* Runs one command line split into words (argv[0] is "mesh") and returns
 * the shell's return value; what it prints goes to out. */
int sim_mesh_shell(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out);

/* The device went down (reset): the RAM state goes, slots and nodes stay. */
void sim_mesh_device_down(struct sim_mesh *m);

/* Faults of one target, "target=ADDR:SPEC" with SPEC lost-at=PCT,
 * verify-fail, apply-fail, old-firmware or unprovisioned; "[dev=N:]" in
 * front selects the device on the command line.  0 or -EINVAL with a
 * static sentence. */
int sim_mesh_fault_parse(const char *spec, long *ret_dev, const char **ret_error);
int sim_mesh_fault_apply(struct sim_mesh *m, const char *spec, const char **ret_error);
void sim_mesh_clear_faults(struct sim_mesh *m);

/* "[dev=N:][target=ADDR:]VERSION": the firmware one or every target runs. */
int sim_mesh_version_parse(const char *spec, long *ret_dev, const char **ret_error);
int sim_mesh_version_apply(struct sim_mesh *m, const char *spec, const char **ret_error);

/* Run-time settings: rate=B, time-scale=F, zephyr=3.4|later, legacy-rc=0|1,
 * metadata-check=0|1, comp-hash=U32 (every target), cancel-ms=MS,
 * netbuf=BYTES (0: unlimited), target-modes=push|pull|all,
 * log-burst=N[:WORD] (the next N shell commands, or the next N whose
 * last word is WORD, e.g. "get" or "start", find the output buffer full
 * of log lines but SIM_MESH_LOG_BURST_ROOM bytes; 0 stops),
 * reserved-slots=N (slots an unfinished upload over the mesh holds: del-all
 * leaves them, a reboot frees them). */
int sim_mesh_set(struct sim_mesh *m, const char *key, const char *value, const char **ret_error);

/* The Distributor and its targets as JSON for the control socket. */
json_t *sim_mesh_state(const struct sim_mesh *m);

/* Control socket commands mesh-state, mesh-fault, mesh-clear-faults,
 * mesh-version, mesh-set (doc/smpsim.md). */
struct sim;
json_t *sim_mesh_command(struct sim *sim, int argc, char **argv);
