/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A Bluetooth Mesh Distributor behind SMP shell management (see
 * sim-mesh.h for what is modelled).  Rules follow Zephyr's
 * subsys/bluetooth/mesh/dfd_srv.c (bt_mesh_dfd_srv_start/suspend/cancel/
 * apply/receiver_add, the dfu_ended/applied/confirmed callbacks),
 * dfu_cli.c (procedure steps, bt_mesh_dfu_cli_progress(),
 * bt_mesh_dfu_cli_is_busy(), target_failed()) and dfu_slot.c; printed
 * output follows shell/dfd.c and shell/dfu.c of v3.4 and v3.5+.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim-device.h"
#include "sim-mesh-private.h"
#include "sim-shell.h"
#include "sim.h"
#include "smpgw/mesh-dfu.h"
#include "smpgw/smp-parse.h"
#include "util.h"

static const char *const stage_names[] = {
        "none", "start", "transfer", "verify", "apply", "confirm", "cancel",
};

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

void sim_mesh_config_init(struct sim_mesh_config *cfg) {
        *cfg = (struct sim_mesh_config) {
                .n_targets = 4,
                .addr_base = 0x0100,
                .target_version = { .major = 1 },
                .zephyr = SIM_MESH_ZEPHYR_LATER,
                .rate = 300,
                .time_scale = 1.0,
                .shell_buf = 256,
                .shell_out = 1000,
                .targets_max = 8,
                .slot_cnt = 1,
                .cancel_ms = SIM_MESH_CANCEL_MS,
                .target_modes = SIM_MESH_XFER_MODES_ALL,
        };
}

const struct sim_mesh_config *sim_mesh_get_config(const struct sim_mesh *m) {
        return &m->cfg;
}

/* Simulated milliseconds as real microseconds. */
static uint64_t sim_us(const struct sim_mesh *m, uint64_t ms) {
        return (uint64_t) llround((double) ms * 1000.0 / m->cfg.time_scale);
}

static double bytes_per_us(const struct sim_mesh *m) {
        return (double) m->cfg.rate * m->cfg.time_scale / 1e6;
}

uint64_t mesh_now_us(const struct sim_mesh *m) {
        return sim_now_us(m->d->sim);
}

bool sim_mesh_active(const struct sim_mesh *m) {
        struct sim_image_info info;

        if (!m->has_dist_hash)
                return true;
        /* After a test or confirm of slot 1 and a reset, the Distributor
         * runs the targets' firmware: no Distributor, no shell. */
        return sim_flash_read_info(&m->d->flash, 0, &info) == 0 && memcmp(info.hash, m->dist_hash, 32) == 0;
}

static struct mesh_node *node_of(struct sim_mesh *m, uint16_t addr) {
        if (addr < m->cfg.addr_base || (unsigned) (addr - m->cfg.addr_base) >= m->cfg.n_targets)
                return NULL;
        return &m->nodes[addr - m->cfg.addr_base];
}

static void version_fwid(const struct mcuboot_version *v, uint8_t *out) {
        smp_mesh_fwid_from_version(v, out);
}

/* ------------------------------------------------------------------ */
/* Distribution state                                                  */

bool mesh_dfd_busy(const struct sim_mesh *m) {
        return m->phase == SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE || m->phase == SMP_MESH_DFD_PHASE_TRANSFER_SUCCESS ||
               m->phase == SMP_MESH_DFD_PHASE_APPLYING_UPDATE;
}

/* bt_mesh_dfu_cli_is_busy() */
bool mesh_cli_busy(const struct sim_mesh *m) {
        return (m->cli == CLI_TRANSFER || m->cli == CLI_REFRESH || m->cli == CLI_APPLY || m->cli == CLI_CONFIRM) &&
               !m->cli_failed;
}

static unsigned transfer_percent(const struct sim_mesh *m) {
        if (m->xfer.size == 0)
                return 100;
        /* the epsilon keeps a threshold reached in bytes from reading as
         * one percent short */
        return (unsigned) MIN(100.0, floor(m->sent * 100.0 / m->xfer.size + 1e-9));
}

/* bt_mesh_dfu_cli_progress() */
unsigned mesh_progress_percent(const struct sim_mesh *m) {
        if (m->cli == CLI_TRANSFER)
                return transfer_percent(m);
        if (m->cli == CLI_IDLE)
                return m->cli_completed ? 100 : 0;
        return 100;
}

static size_t active_receivers(const struct sim_mesh *m) {
        size_t n = 0;
        for (size_t i = 0; i < m->n_rx; i++)
                n += m->rx[i].status == SMP_MESH_DFU_SUCCESS;
        return n;
}

/* target_failed() */
static void receiver_failed(struct mesh_receiver *r, uint8_t status) {
        r->status = status;
        if (r->blob_status == 0)
                r->blob_status = BLOB_ERR_INTERNAL;
}

/* The node behind a receiver answers at all? */
static bool reachable(struct mesh_node *n) {
        return n && !n->unprovisioned && !n->rebooting && !n->gone;
}

/* suspend() of blob_cli.c reaching the Distribution Server's
 * dfu_suspended(): no target is left and some timed out. */
static void transfer_suspended(struct sim_mesh *m) {
        m->cli = CLI_SUSPENDED;
        m->stage = STAGE_NONE;
        m->phase = SMP_MESH_DFD_PHASE_TRANSFER_SUSPENDED;
        dev_log(m->d, 1, "mesh: every target timed out: transfer suspended");
}

/* dfu_failed() reaching the Distribution Server's dfu_ended(). */
static void distribution_failed(struct sim_mesh *m) {
        m->cli_failed = true;
        m->stage = STAGE_NONE;
        if (m->phase == SMP_MESH_DFD_PHASE_IDLE)
                return;
        if (m->phase == SMP_MESH_DFD_PHASE_CANCELING_UPDATE) {
                m->phase = SMP_MESH_DFD_PHASE_IDLE;
                return;
        }
        m->phase = SMP_MESH_DFD_PHASE_FAILED;
        dev_log(m->d, 1, "mesh: distribution failed");
}

static void stage_set(struct sim_mesh *m, enum stage s, uint64_t now, uint64_t ms) {
        m->stage = s;
        m->stage_end_us = now + sim_us(m, ms);
        dev_log(m->d, 2, "mesh: stage %s", stage_names[s]);
}

/* initiate(): Firmware Update Start to every target still in. */
void mesh_begin_start(struct sim_mesh *m, uint64_t now) {
        m->cli = CLI_TRANSFER;
        stage_set(m, STAGE_START, now, SIM_MESH_START_MS);
}

/* is_firmware_newer() of nRF Connect SDK's target sample, as it is: a
 * part greater than the running one's makes the firmware newer, and only
 * a smaller major makes it older (1.0.5 counts as newer than 1.1.0). */
static bool sample_version_newer(const struct mcuboot_version *new, const struct mcuboot_version *cur) {
        if (new->major != cur->major)
                return new->major > cur->major;
        return new->minor > cur->minor || new->revision > cur->revision || new->build > cur->build;
}

/* The target sample's dfu_meta_check() on a node: 0 with the effect, or
 * -EINVAL for metadata it refuses. */
static int metadata_check(const struct sim_mesh *m, const struct mesh_node *n, bool *ret_unprovision) {
        struct smp_mesh_metadata md;

        if (smp_mesh_metadata_decode(m->xfer.md, m->xfer.md_len, &md) < 0)
                return -EINVAL;
        if (!sample_version_newer(&md.version, &n->version))
                return -EINVAL;
        if (!(md.core_type & SMP_MESH_CORE_APP))
                return -EINVAL;
        if (md.size > m->cfg.slot_max_size)
                return -EINVAL;
        *ret_unprovision = md.comp_hash != m->cfg.comp_hash;
        return 0;
}

static void end_start(struct sim_mesh *m, uint64_t now) {
        for (size_t i = 0; i < m->n_rx; i++) {
                struct mesh_receiver *r = &m->rx[i];
                struct mesh_node *n = node_of(m, r->addr);
                if (r->status != SMP_MESH_DFU_SUCCESS)
                        continue;
                if (!reachable(n) || n->lost_at == 0) {
                        receiver_failed(r, SMP_MESH_DFU_ERR_INTERNAL);  /* no answer: phase stays */
                        continue;
                }
                if (r->img_idx != 0) {
                        /* one image per target: the index does not exist */
                        r->phase = SMP_MESH_DFU_PHASE_IDLE;
                        receiver_failed(r, SMP_MESH_DFU_ERR_FW_IDX);
                        continue;
                }
                n->effect_unprovision = false;
                if (m->cfg.metadata_check && metadata_check(m, n, &n->effect_unprovision) < 0) {
                        dev_log(m->d, 1, "mesh: target 0x%04x refuses the metadata", r->addr);
                        r->phase = SMP_MESH_DFU_PHASE_IDLE;
                        receiver_failed(r, SMP_MESH_DFU_ERR_METADATA);
                        continue;
                }
                r->phase = SMP_MESH_DFU_PHASE_TRANSFER_ACTIVE;
        }
        if (active_receivers(m) == 0) {
                distribution_failed(m);
                return;
        }
        /* blob_caps(): with no mode set, push if the targets take both;
         * the requested mode only if they take both; else theirs */
        uint8_t caps = m->cfg.target_modes;
        if (!(m->in.mode & SIM_MESH_XFER_MODES_ALL))
                m->in.mode = caps == SIM_MESH_XFER_MODES_ALL ? SMP_MESH_XFER_MODE_PUSH : caps;
        else if (caps != SIM_MESH_XFER_MODES_ALL)
                m->in.mode = caps;
        if (!m->resuming)
                m->sent = 0;
        m->resuming = false;
        m->sent_at_us = now;
        stage_set(m, STAGE_TRANSFER, now, 0);
}

/* The BLOB transfer up to now: targets lost on the way, the end. */
static void transfer_sync(struct sim_mesh *m, uint64_t now) {
        if (now > m->sent_at_us) {
                m->sent = MIN((double) m->xfer.size, m->sent + (double) (now - m->sent_at_us) * bytes_per_us(m));
                m->sent_at_us = now;
        }
        unsigned pct = transfer_percent(m);
        for (size_t i = 0; i < m->n_rx; i++) {
                struct mesh_receiver *r = &m->rx[i];
                struct mesh_node *n = node_of(m, r->addr);
                if (r->status == SMP_MESH_DFU_SUCCESS && n && n->lost_at > 0 && pct >= (unsigned) n->lost_at) {
                        /* drop_remaining_targets(): it timed out */
                        dev_log(m->d, 1, "mesh: target 0x%04x lost at %u %%", r->addr, pct);
                        receiver_failed(r, SMP_MESH_DFU_ERR_INTERNAL);
                        r->timedout = true;
                        n->gone = true;
                }
        }
        if (active_receivers(m) == 0) {
                bool timedout = false;
                for (size_t i = 0; i < m->n_rx; i++)
                        timedout |= m->rx[i].timedout;
                if (timedout)
                        transfer_suspended(m);
                else
                        distribution_failed(m);
                return;
        }
        if (m->sent >= m->xfer.size) {
                /* refresh(): the targets verify */
                m->cli = CLI_REFRESH;
                for (size_t i = 0; i < m->n_rx; i++)
                        if (m->rx[i].status == SMP_MESH_DFU_SUCCESS)
                                m->rx[i].phase = SMP_MESH_DFU_PHASE_VERIFY;
                stage_set(m, STAGE_VERIFY, now, SIM_MESH_VERIFY_MS);
        }
}

/* When the transfer next needs a look: the end, or a target's loss. */
static uint64_t transfer_next_us(const struct sim_mesh *m) {
        double rate = bytes_per_us(m);
        double next = (double) m->xfer.size;

        for (size_t i = 0; i < m->n_rx; i++) {
                const struct mesh_node *n = node_of((struct sim_mesh *) m, m->rx[i].addr);
                if (m->rx[i].status != SMP_MESH_DFU_SUCCESS || !n || n->lost_at <= 0)
                        continue;
                double at = ceil((double) n->lost_at * m->xfer.size / 100.0);
                if (at > m->sent && at < next)
                        next = at;
        }
        if (rate <= 0)
                return UINT64_MAX;
        return m->sent_at_us + (uint64_t) ceil(MAX(0.0, next - m->sent) / rate);
}

void mesh_begin_cancel(struct sim_mesh *m, uint64_t now) {
        m->cli = CLI_CANCEL;
        stage_set(m, STAGE_CANCEL, now, m->cfg.cancel_ms);
}

void mesh_begin_apply(struct sim_mesh *m, uint64_t now) {
        m->cli = CLI_APPLY;
        stage_set(m, STAGE_APPLY, now, SIM_MESH_APPLY_MS);
}

static void end_verify(struct sim_mesh *m, uint64_t now) {
        /* what the targets received is what slot 1 held all along */
        bool image_ok = m->xfer_image_valid && m->d->flash.slot[1].blob == m->xfer_blob;

        for (size_t i = 0; i < m->n_rx; i++) {
                struct mesh_receiver *r = &m->rx[i];
                struct mesh_node *n = node_of(m, r->addr);
                if (r->status != SMP_MESH_DFU_SUCCESS)
                        continue;
                if (!reachable(n))
                        receiver_failed(r, SMP_MESH_DFU_ERR_INTERNAL);
                else if (!image_ok || n->verify_fail) {
                        r->phase = SMP_MESH_DFU_PHASE_VERIFY_FAIL;
                        receiver_failed(r, SMP_MESH_DFU_ERR_WRONG_PHASE);
                } else
                        r->phase = SMP_MESH_DFU_PHASE_VERIFY_OK;
        }
        if (active_receivers(m) == 0) {
                distribution_failed(m);
                return;
        }
        /* refreshed() -> dfu_complete() -> dfu_ended(SUCCESS) */
        m->cli = CLI_VERIFIED;
        m->stage = STAGE_NONE;
        if (m->phase == SMP_MESH_DFD_PHASE_IDLE)
                return;
        if (m->phase == SMP_MESH_DFD_PHASE_CANCELING_UPDATE) {
                m->phase = SMP_MESH_DFD_PHASE_IDLE;
                return;
        }
        if (!m->in.apply) {
                m->phase = SMP_MESH_DFD_PHASE_TRANSFER_SUCCESS;
                return;
        }
        m->phase = SMP_MESH_DFD_PHASE_APPLYING_UPDATE;
        mesh_begin_apply(m, now);
}

static void end_apply(struct sim_mesh *m, uint64_t now) {
        for (size_t i = 0; i < m->n_rx; i++) {
                struct mesh_receiver *r = &m->rx[i];
                struct mesh_node *n = node_of(m, r->addr);
                if (r->status != SMP_MESH_DFU_SUCCESS)
                        continue;
                if (!reachable(n))
                        receiver_failed(r, SMP_MESH_DFU_ERR_INTERNAL);
                else if (n->apply_fail) {
                        r->phase = SMP_MESH_DFU_PHASE_APPLY_FAIL;
                        receiver_failed(r, SMP_MESH_DFU_ERR_INTERNAL);
                } else {
                        /* the node reboots into the image whatever happens
                         * to the Distributor from now on */
                        r->phase = SMP_MESH_DFU_PHASE_APPLYING;
                        n->rebooting = true;
                        n->reboot_done_us = now + sim_us(m, SIM_MESH_BOOT_MS);
                        n->next_version = m->xfer_version;
                }
        }
        if (active_receivers(m) == 0) {
                distribution_failed(m);
                return;
        }
        /* dfu_applied(): confirm, unless cancelled meanwhile */
        if (m->phase == SMP_MESH_DFD_PHASE_CANCELING_UPDATE) {
                m->phase = SMP_MESH_DFD_PHASE_FAILED;
                m->stage = STAGE_NONE;
                return;
        }
        if (m->phase != SMP_MESH_DFD_PHASE_APPLYING_UPDATE) {
                m->stage = STAGE_NONE;
                return;
        }
        m->cli = CLI_CONFIRM;
        stage_set(m, STAGE_CONFIRM, now, SIM_MESH_BOOT_MS + SIM_MESH_CONFIRM_MS);
}

static void end_confirm(struct sim_mesh *m, uint64_t now) {
        bool success = false;

        for (size_t i = 0; i < m->n_rx; i++) {
                struct mesh_receiver *r = &m->rx[i];
                struct mesh_node *n = node_of(m, r->addr);
                if (r->status != SMP_MESH_DFU_SUCCESS)
                        continue;
                if (n && (n->unprovision || n->effect_unprovision)) {
                        /* effect "unprovision": silence is the success */
                        success = true;
                        continue;
                }
                uint8_t fwid[SMP_MESH_FWID_MCUBOOT_LEN];
                if (reachable(n))
                        version_fwid(&n->version, fwid);
                if (reachable(n) && m->xfer.fwid_len == sizeof(fwid) && memcmp(fwid, m->xfer.fwid, sizeof(fwid)) == 0) {
                        r->phase = SMP_MESH_DFU_PHASE_APPLY_SUCCESS;
                        success = true;
                } else {
                        r->phase = SMP_MESH_DFU_PHASE_APPLY_FAIL;
                        receiver_failed(r, SMP_MESH_DFU_ERR_INTERNAL);
                }
        }
        m->stage = STAGE_NONE;
        if (!success) {
                distribution_failed(m);
                return;
        }
        m->cli = CLI_IDLE;
        m->cli_completed = true;
        m->cli_failed = false;
        /* dfu_confirmed() */
        if (m->phase == SMP_MESH_DFD_PHASE_APPLYING_UPDATE || m->phase == SMP_MESH_DFD_PHASE_CANCELING_UPDATE)
                m->phase = SMP_MESH_DFD_PHASE_COMPLETED;
        dev_log(m->d, 1, "mesh: distribution completed");
}

static void end_cancel(struct sim_mesh *m, uint64_t now) {
        for (size_t i = 0; i < m->n_rx; i++)
                if (m->rx[i].status == SMP_MESH_DFU_SUCCESS && reachable(node_of(m, m->rx[i].addr)))
                        m->rx[i].phase = SMP_MESH_DFU_PHASE_TRANSFER_CANCELED;
        /* cancelled() -> dfu_failed(): the client stays in its cancel state */
        distribution_failed(m);
}

static void nodes_advance(struct sim_mesh *m, uint64_t now) {
        for (size_t i = 0; i < m->cfg.n_targets; i++) {
                struct mesh_node *n = &m->nodes[i];
                if (!n->rebooting || now < n->reboot_done_us)
                        continue;
                n->rebooting = false;
                if (!n->old_firmware)
                        n->version = n->next_version;
                if (n->unprovision || n->effect_unprovision)
                        n->unprovisioned = true;
                dev_log(m->d, 1, "mesh: target 0x%04x rebooted into %u.%u.%u+%" PRIu32 "%s", n->addr,
                        n->version.major, n->version.minor, n->version.revision, n->version.build,
                        n->unprovisioned ? ", unprovisioned" : "");
        }
}

void mesh_advance(struct sim_mesh *m, uint64_t now) {
        for (int guard = 0; guard < 16; guard++) {
                nodes_advance(m, now);
                enum stage before = m->stage;
                if (m->stage == STAGE_TRANSFER)
                        transfer_sync(m, now);
                else if (m->stage != STAGE_NONE && now >= m->stage_end_us) {
                        switch (m->stage) {
                        case STAGE_START:
                                end_start(m, now);
                                break;
                        case STAGE_VERIFY:
                                end_verify(m, now);
                                break;
                        case STAGE_APPLY:
                                end_apply(m, now);
                                break;
                        case STAGE_CONFIRM:
                                end_confirm(m, now);
                                break;
                        case STAGE_CANCEL:
                                end_cancel(m, now);
                                break;
                        default:
                                break;
                        }
                }
                if (m->stage == before)
                        break;
        }
        mesh_arm_timer(m, now);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct sim_mesh *m = userdata;
        mesh_advance(m, mesh_now_us(m));
        return 0;
}

void mesh_arm_timer(struct sim_mesh *m, uint64_t now) {
        uint64_t next = UINT64_MAX;

        if (!m->timer)
                return;
        if (m->stage == STAGE_TRANSFER)
                next = transfer_next_us(m);
        else if (m->stage != STAGE_NONE)
                next = m->stage_end_us;
        for (size_t i = 0; i < m->cfg.n_targets; i++)
                if (m->nodes[i].rebooting)
                        next = MIN(next, m->nodes[i].reboot_done_us);
        if (next == UINT64_MAX) {
                (void) sd_event_source_set_enabled(m->timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(m->timer, MAX(next, now));
        (void) sd_event_source_set_enabled(m->timer, SD_EVENT_ONESHOT);
}

unsigned mesh_start_new(struct sim_mesh *m, uint16_t app_idx, uint16_t slot_idx, uint16_t group, bool apply,
                          uint8_t ttl, uint16_t timeout_base, uint8_t mode, uint64_t now) {
        if (mesh_cli_busy(m)) {
                m->phase = SMP_MESH_DFD_PHASE_IDLE;
                return SMP_MESH_DFD_ERR_INTERNAL;
        }
        for (size_t i = 0; i < m->n_rx; i++) {
                m->rx[i].status = SMP_MESH_DFU_SUCCESS;
                m->rx[i].phase = SMP_MESH_DFU_PHASE_UNKNOWN;
                m->rx[i].blob_status = 0;
                m->rx[i].timedout = false;
        }
        m->in.app_idx = app_idx;
        m->in.slot_idx = slot_idx;
        m->in.group = group;
        m->in.apply = apply;
        m->in.ttl = ttl;
        m->in.timeout_base = timeout_base;
        m->in.mode = mode;
        m->xfer = m->slots[slot_idx];
        m->has_xfer = true;
        m->sent = 0;

        /* what slot 1 holds now is what the BLOB stream will read */
        sim_blob_unref(m->xfer_blob);
        m->xfer_blob = m->d->flash.slot[1].blob ? sim_blob_ref(m->d->flash.slot[1].blob) : NULL;
        struct sim_image_info info;
        m->xfer_image_valid = false;
        if (m->xfer_blob) {
                size_t len = MIN((size_t) m->xfer.size, m->xfer_blob->len);
                if (sim_image_valid(m->xfer_blob->data, len) && sim_image_read_info(m->xfer_blob->data, len, &info) == 0) {
                        m->xfer_image_valid = true;
                        m->xfer_version = (struct mcuboot_version) {
                                .major = info.major, .minor = info.minor, .revision = info.revision, .build = info.build,
                        };
                }
        }
        m->cli_failed = false;
        m->cli_completed = false;
        m->resuming = false;
        m->phase = SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE;
        mesh_begin_start(m, now);
        dev_log(m->d, 1, "mesh: distribution of slot %u (%" PRIu32 " bytes, image %s) to %zu receivers started",
                slot_idx, m->xfer.size, m->xfer_image_valid ? "valid" : "invalid", m->n_rx);
        return SMP_MESH_DFD_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */

int sim_mesh_new(struct sim_device *d, const struct sim_mesh_config *cfg, struct sim_mesh **ret) {
        struct sim_image_info info;
        int r;

        if (cfg->n_targets > SIM_MESH_NODES_MAX || cfg->targets_max == 0 || cfg->targets_max > SIM_MESH_RECEIVERS_MAX ||
            cfg->slot_cnt == 0 || cfg->slot_cnt > SIM_MESH_SLOTS_MAX || !(cfg->time_scale > 0) ||
            cfg->shell_buf < 2 || cfg->shell_out < 2 ||
            (cfg->n_targets > 0 && (!smp_mesh_addr_is_unicast(cfg->addr_base) ||
                                    cfg->addr_base + cfg->n_targets - 1 > 0x7fff)))
                return -EINVAL;
        struct sim_mesh *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->d = d;
        m->cfg = *cfg;
        if (m->cfg.slot_max_size == 0)
                m->cfg.slot_max_size = d->params.slot_size;
        m->nodes = calloc(MAX(cfg->n_targets, 1u), sizeof(*m->nodes));
        m->rx = calloc(cfg->targets_max, sizeof(*m->rx));
        if (!m->nodes || !m->rx) {
                sim_mesh_free(m);
                return -ENOMEM;
        }
        for (unsigned i = 0; i < cfg->n_targets; i++)
                m->nodes[i] = (struct mesh_node) {
                        .addr = (uint16_t) (cfg->addr_base + i),
                        .version = cfg->target_version,
                        .lost_at = -1,
                };
        if (sim_flash_read_info(&d->flash, 0, &info) == 0) {
                memcpy(m->dist_hash, info.hash, 32);
                m->has_dist_hash = true;
        }
        r = sd_event_add_time(sim_event_loop(d->sim), &m->timer, CLOCK_MONOTONIC, UINT64_MAX, 1000, on_timer, m);
        if (r < 0) {
                sim_mesh_free(m);
                return r;
        }
        (void) sd_event_source_set_enabled(m->timer, SD_EVENT_OFF);
        *ret = m;
        return 0;
}

struct sim_mesh *sim_mesh_free(struct sim_mesh *m) {
        if (!m)
                return NULL;
        m->timer = sd_event_source_disable_unref(m->timer);
        sim_blob_unref(m->xfer_blob);
        free(m->nodes);
        free(m->rx);
        free(m);
        return NULL;
}

void sim_mesh_device_down(struct sim_mesh *m) {
        if (!m)
                return;
        uint64_t now = mesh_now_us(m);
        nodes_advance(m, now);
        if (m->phase != SMP_MESH_DFD_PHASE_IDLE || m->n_rx)
                dev_log(m->d, 1, "mesh: reset in phase %u: receivers and distribution state lost, %zu slot(s) kept",
                        m->phase, m->n_slots);
        /* RAM: the Distribution Server, its receivers, the Update Client */
        m->phase = SMP_MESH_DFD_PHASE_IDLE;
        m->n_rx = 0;
        m->reserved_slots = 0; /* an unfinished upload's slot is RAM */
        memset(&m->in, 0, sizeof(m->in));
        m->has_xfer = false;
        m->xfer_blob = sim_blob_unref(m->xfer_blob);
        m->cli = CLI_IDLE;
        m->cli_failed = m->cli_completed = m->resuming = false;
        m->stage = STAGE_NONE;
        m->sent = 0;
        mesh_arm_timer(m, now);
}

/* ------------------------------------------------------------------ */
/* Faults, versions, settings                                          */

/* "dev=N:" in front: the device, or -1. */
static const char *strip_dev(const char *spec, long *ret_dev, const char **ret_error) {
        *ret_dev = -1;
        if (strncmp(spec, "dev=", 4) != 0)
                return spec;
        const char *colon = strchr(spec, ':');
        uint64_t v;
        if (!colon || smp_parse_uint_n(spec + 4, (size_t) (colon - spec - 4), 0, SIM_DEVICES_MAX - 1, &v) < 0) {
                *ret_error = "bad device prefix, expected dev=N:";
                return NULL;
        }
        *ret_dev = (long) v;
        return colon + 1;
}

/* "target=ADDR:" or "target=all:" in front: *ret_addr, or -1 for all;
 * required says whether it must be there. */
static const char *strip_target(const char *spec, bool required, long *ret_addr, const char **ret_error) {
        *ret_addr = -1;
        if (strncmp(spec, "target=", 7) != 0) {
                if (required)
                        *ret_error = "expected target=ADDR:SPEC (ADDR a unicast address or \"all\")";
                return required ? NULL : spec;
        }
        const char *colon = strchr(spec, ':');
        if (!colon) {
                *ret_error = "expected target=ADDR:SPEC";
                return NULL;
        }
        char word[16];
        size_t n = (size_t) (colon - spec - 7);
        if (n == 0 || n >= sizeof(word)) {
                *ret_error = "bad target address";
                return NULL;
        }
        memcpy(word, spec + 7, n);
        word[n] = 0;
        if (streq(word, "all"))
                return colon + 1;
        char *end;
        errno = 0;
        unsigned long a = strtoul(word, &end, 0);
        if (errno || *end || !smp_mesh_addr_is_unicast(a)) {
                *ret_error = "bad target address (a unicast address 0x0001..0x7fff)";
                return NULL;
        }
        *ret_addr = (long) a;
        return colon + 1;
}

struct fault {
        int lost_at;
        bool verify_fail, apply_fail, old_firmware, unprovision;
};

static int parse_fault(const char *s, struct fault *f, const char **ret_error) {
        *f = (struct fault) { .lost_at = -1 };
        if (streq(s, "verify-fail"))
                f->verify_fail = true;
        else if (streq(s, "apply-fail"))
                f->apply_fail = true;
        else if (streq(s, "old-firmware"))
                f->old_firmware = true;
        else if (streq(s, "unprovisioned"))
                f->unprovision = true;
        else if (strncmp(s, "lost-at=", 8) == 0) {
                uint64_t v;
                if (smp_parse_uint(s + 8, 0, 100, &v) < 0) {
                        *ret_error = "lost-at takes a percentage 0..100";
                        return -EINVAL;
                }
                f->lost_at = (int) v;
        } else {
                *ret_error = "unknown mesh fault (lost-at=PCT, verify-fail, apply-fail, old-firmware, unprovisioned)";
                return -EINVAL;
        }
        return 0;
}

int sim_mesh_fault_parse(const char *spec, long *ret_dev, const char **ret_error) {
        struct fault f;
        long addr;
        const char *s = strip_dev(spec, ret_dev, ret_error);
        if (!s || !(s = strip_target(s, true, &addr, ret_error)))
                return -EINVAL;
        return parse_fault(s, &f, ret_error);
}

int sim_mesh_fault_apply(struct sim_mesh *m, const char *spec, const char **ret_error) {
        struct fault f;
        long dev, addr;
        const char *s = strip_dev(spec, &dev, ret_error);
        if (!s || !(s = strip_target(s, true, &addr, ret_error)) || parse_fault(s, &f, ret_error) < 0)
                return -EINVAL;
        if (addr >= 0 && !node_of(m, (uint16_t) addr)) {
                *ret_error = "no target with that address behind this Distributor";
                return -EINVAL;
        }
        for (size_t i = 0; i < m->cfg.n_targets; i++) {
                struct mesh_node *n = &m->nodes[i];
                if (addr >= 0 && n->addr != addr)
                        continue;
                if (f.lost_at >= 0)
                        n->lost_at = f.lost_at;
                n->verify_fail |= f.verify_fail;
                n->apply_fail |= f.apply_fail;
                n->old_firmware |= f.old_firmware;
                n->unprovision |= f.unprovision;
        }
        return 0;
}

void sim_mesh_clear_faults(struct sim_mesh *m) {
        for (size_t i = 0; i < m->cfg.n_targets; i++) {
                struct mesh_node *n = &m->nodes[i];
                n->lost_at = -1;
                n->gone = false; /* back in range */
                n->verify_fail = n->apply_fail = n->old_firmware = n->unprovision = false;
        }
}

/* "MAJ.MIN.REV[+BUILD]" */
static int parse_version(const char *s, struct mcuboot_version *ret) {
        unsigned long maj, min, rev, build = 0;
        int n = 0;

        if (sscanf(s, "%lu.%lu.%lu%n", &maj, &min, &rev, &n) != 3)
                return -EINVAL;
        if (s[n] == '+') {
                int k = 0;
                if (sscanf(s + n + 1, "%lu%n", &build, &k) != 1 || s[n + 1 + k])
                        return -EINVAL;
        } else if (s[n])
                return -EINVAL;
        if (maj > UINT8_MAX || min > UINT8_MAX || rev > UINT16_MAX || build > UINT32_MAX)
                return -EINVAL;
        *ret = (struct mcuboot_version) { (uint8_t) maj, (uint8_t) min, (uint16_t) rev, (uint32_t) build };
        return 0;
}

int sim_mesh_version_parse(const char *spec, long *ret_dev, const char **ret_error) {
        struct mcuboot_version v;
        long addr;
        const char *s = strip_dev(spec, ret_dev, ret_error);
        if (!s || !(s = strip_target(s, false, &addr, ret_error)))
                return -EINVAL;
        if (parse_version(s, &v) < 0) {
                *ret_error = "expected a version MAJ.MIN.REV[+BUILD]";
                return -EINVAL;
        }
        return 0;
}

int sim_mesh_version_apply(struct sim_mesh *m, const char *spec, const char **ret_error) {
        struct mcuboot_version v;
        long dev, addr;
        const char *s = strip_dev(spec, &dev, ret_error);
        if (!s || !(s = strip_target(s, false, &addr, ret_error)))
                return -EINVAL;
        if (parse_version(s, &v) < 0) {
                *ret_error = "expected a version MAJ.MIN.REV[+BUILD]";
                return -EINVAL;
        }
        if (addr >= 0 && !node_of(m, (uint16_t) addr)) {
                *ret_error = "no target with that address behind this Distributor";
                return -EINVAL;
        }
        for (size_t i = 0; i < m->cfg.n_targets; i++)
                if (addr < 0 || m->nodes[i].addr == addr)
                        m->nodes[i].version = v;
        return 0;
}

int sim_mesh_set(struct sim_mesh *m, const char *key, const char *value, const char **ret_error) {
        uint64_t now = mesh_now_us(m);

        /* bring the transfer up to now under the old rate */
        mesh_advance(m, now);
        if (streq(key, "rate")) {
                uint64_t v;
                if (sim_parse_rate(value, &v) < 0 || v == 0) {
                        *ret_error = "rate: expected bytes per second (k/M/G suffixes allowed), not 0";
                        return -EINVAL;
                }
                m->cfg.rate = v;
        } else if (streq(key, "time-scale")) {
                char *end;
                double f = strtod(value, &end);
                if (*value == 0 || *end || !(f > 0) || !isfinite(f)) {
                        *ret_error = "time-scale: expected a positive number";
                        return -EINVAL;
                }
                m->cfg.time_scale = f;
        } else if (streq(key, "zephyr")) {
                if (streq(value, "3.4"))
                        m->cfg.zephyr = SIM_MESH_ZEPHYR_3_4;
                else if (streq(value, "later"))
                        m->cfg.zephyr = SIM_MESH_ZEPHYR_LATER;
                else {
                        *ret_error = "zephyr: 3.4 or later";
                        return -EINVAL;
                }
        } else if (streq(key, "legacy-rc")) {
                if (!streq(value, "0") && !streq(value, "1")) {
                        *ret_error = "legacy-rc: 0 or 1";
                        return -EINVAL;
                }
                m->cfg.legacy_rc = value[0] == '1';
        } else if (streq(key, "metadata-check")) {
                if (!streq(value, "0") && !streq(value, "1")) {
                        *ret_error = "metadata-check: 0 or 1";
                        return -EINVAL;
                }
                m->cfg.metadata_check = value[0] == '1';
        } else if (streq(key, "comp-hash")) {
                uint64_t v;
                if (smp_parse_uint(value, 0, UINT32_MAX, &v) < 0) {
                        *ret_error = "comp-hash: a decimal number 0..4294967295";
                        return -EINVAL;
                }
                m->cfg.comp_hash = (uint32_t) v;
        } else if (streq(key, "cancel-ms")) {
                uint64_t v;
                if (smp_parse_uint(value, 0, UINT32_MAX, &v) < 0) {
                        *ret_error = "cancel-ms: expected simulated milliseconds";
                        return -EINVAL;
                }
                m->cfg.cancel_ms = (uint32_t) v;
        } else if (streq(key, "netbuf")) {
                uint64_t v;
                if (smp_parse_uint(value, 0, UINT32_MAX, &v) < 0) {
                        *ret_error = "netbuf: expected bytes (0: unlimited)";
                        return -EINVAL;
                }
                m->cfg.netbuf = (uint32_t) v;
        } else if (streq(key, "target-modes")) {
                if (streq(value, "push"))
                        m->cfg.target_modes = SIM_MESH_XFER_MODES_PUSH;
                else if (streq(value, "pull"))
                        m->cfg.target_modes = SIM_MESH_XFER_MODES_PULL;
                else if (streq(value, "all"))
                        m->cfg.target_modes = SIM_MESH_XFER_MODES_ALL;
                else {
                        *ret_error = "target-modes: push, pull or all";
                        return -EINVAL;
                }
        } else if (streq(key, "reserved-slots")) {
                uint64_t v;
                if (smp_parse_uint(value, 0, SIM_MESH_SLOTS_MAX, &v) < 0) {
                        *ret_error = "reserved-slots: 0 to 8";
                        return -EINVAL;
                }
                m->reserved_slots = (unsigned) v;
        } else if (streq(key, "log-burst")) {
                const char *colon = strchr(value, ':');
                size_t nlen = colon ? (size_t) (colon - value) : strlen(value);
                char num[16];
                uint64_t v;
                if (nlen == 0 || nlen >= sizeof(num) ||
                    (colon && (!colon[1] || strlen(colon + 1) >= sizeof(m->log_burst_word)))) {
                        *ret_error = "log-burst: N or N:WORD (WORD: a command's last word, such as get or start)";
                        return -EINVAL;
                }
                memcpy(num, value, nlen);
                num[nlen] = 0;
                if (smp_parse_uint(num, 0, 1000, &v) < 0) {
                        *ret_error = "log-burst: N from 0 to 1000";
                        return -EINVAL;
                }
                m->log_bursts = (unsigned) v;
                snprintf(m->log_burst_word, sizeof(m->log_burst_word), "%s", colon ? colon + 1 : "");
        } else {
                *ret_error = "unknown mesh setting (rate, time-scale, zephyr, legacy-rc, metadata-check, comp-hash, "
                             "cancel-ms, netbuf, target-modes, log-burst, reserved-slots)";
                return -EINVAL;
        }
        mesh_arm_timer(m, now);
        return 0;
}

json_t *sim_mesh_state(const struct sim_mesh *cm) {
        struct sim_mesh *m = (struct sim_mesh *) cm;
        char hex[2 * SIM_MESH_METADATA_MAX + 1];

        mesh_advance(m, mesh_now_us(m));
        json_t *receivers = json_array(), *slots = json_array(), *nodes = json_array();
        for (size_t i = 0; i < m->n_rx; i++) {
                const struct mesh_receiver *r = &m->rx[i];
                json_array_append_new(receivers,
                                      json_pack("{s:i, s:i, s:i, s:s?, s:i, s:i}", "addr", r->addr, "img_idx",
                                                r->img_idx, "phase", r->phase,
                                                "phase_name", smp_mesh_dfu_phase_to_string(r->phase), "status",
                                                r->status, "blob_status", r->blob_status));
        }
        for (size_t i = 0; i < m->n_slots; i++) {
                const struct mesh_slot *s = &m->slots[i];
                char fwid[2 * SIM_MESH_FWID_MAX + 1];
                hex_encode(s->fwid, s->fwid_len, fwid);
                hex_encode(s->md, s->md_len, hex);
                json_array_append_new(slots, json_pack("{s:I, s:s, s:s}", "size", (json_int_t) s->size, "fwid",
                                                       fwid, "metadata", hex));
        }
        for (size_t i = 0; i < m->cfg.n_targets; i++) {
                const struct mesh_node *n = &m->nodes[i];
                char version[48];
                uint8_t fwid[SMP_MESH_FWID_MCUBOOT_LEN];
                char fwid_hex[2 * sizeof(fwid) + 1];
                snprintf(version, sizeof(version), "%u.%u.%u+%" PRIu32, n->version.major, n->version.minor,
                         n->version.revision, n->version.build);
                version_fwid(&n->version, fwid);
                hex_encode(fwid, sizeof(fwid), fwid_hex);
                json_array_append_new(nodes,
                                      json_pack("{s:i, s:s, s:s, s:b, s:b, s:b, s:i, s:b, s:b, s:b, s:b}", "addr",
                                                n->addr, "version", version, "fwid", fwid_hex, "unprovisioned",
                                                n->unprovisioned, "rebooting", n->rebooting, "gone", n->gone, "lost_at",
                                                n->lost_at, "verify_fail", n->verify_fail, "apply_fail", n->apply_fail,
                                                "old_firmware", n->old_firmware, "unprovision", n->unprovision));
        }
        json_t *st =
                json_pack("{s:b, s:i, s:b, s:i, s:s?, s:s, s:i, s:f, s:o, s:o, s:o, s:s, s:I, s:f, s:b}", "ok", 1,
                          "device", m->d->index, "active", sim_mesh_active(m), "phase", m->phase, "phase_name",
                          smp_mesh_dfd_phase_to_string(m->phase), "stage", stage_names[m->stage], "progress",
                          mesh_progress_percent(m), "sent", m->sent, "receivers", receivers, "slots", slots, "targets",
                          nodes, "zephyr", m->cfg.zephyr == SIM_MESH_ZEPHYR_3_4 ? "3.4" : "later", "rate",
                          (json_int_t) m->cfg.rate, "time_scale", m->cfg.time_scale, "legacy_rc", m->cfg.legacy_rc);
        if (st) {
                json_object_set_new(st, "metadata_check", json_boolean(m->cfg.metadata_check));
                json_object_set_new(st, "comp_hash", json_integer(m->cfg.comp_hash));
                json_object_set_new(st, "target_modes", json_integer(m->cfg.target_modes));
                json_object_set_new(st, "log_bursts", json_integer(m->log_bursts));
        }
        return st;
}
