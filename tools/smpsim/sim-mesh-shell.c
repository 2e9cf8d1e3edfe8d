/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The simulated Distributor's shell commands: `mesh models dfd ...` and
 * `mesh models dfu slot ...`, their arguments as Zephyr's shell checks
 * them (SHELL_CMD_ARG() counts, shell_strtoul(), hex2bin()) and their
 * output as subsys/bluetooth/mesh/shell/dfd.c and dfu.c print it, in the
 * v3.4 and v3.5+ variants.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim-device.h"
#include "sim-mesh-private.h"
#include "sim-shell.h"
#include "smpgw/mesh-dfu.h"
#include "util.h"


/* shell_strtoul(): base 0, no sign, the whole word; *err set on failure
 * and left alone otherwise (the shell checks once after several). */
static unsigned long shell_strtoul(const char *s, int *err) {
        char *end;

        if (*s == '-') {
                *err = -EINVAL;
                return 0;
        }
        errno = 0;
        unsigned long v = strtoul(s, &end, 0);
        if (errno == ERANGE) {
                *err = -ERANGE;
                return 0;
        }
        if (errno || end == s || *end) {
                *err = -EINVAL;
                return 0;
        }
        return v;
}

/* Zephyr's hex2bin(): an odd length takes the first digit alone; 0 when
 * the buffer is too small or a character is no hex digit. */
static size_t hex2bin(const char *hex, uint8_t *buf, size_t buflen) {
        size_t hexlen = strlen(hex);
        if (buflen < hexlen / 2 + hexlen % 2)
                return 0;
        size_t out = 0;
        for (size_t i = 0; i < hexlen;) {
                uint8_t v = 0;
                size_t take = (i == 0 && hexlen % 2) ? 1 : 2;
                for (size_t k = 0; k < take; k++, i++) {
                        char c = hex[i];
                        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 :
                                (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
                        if (d < 0)
                                return 0;
                        v = (uint8_t) (v << 4 | d);
                }
                buf[out++] = v;
        }
        return out;
}

static void warn_parse(struct sim_shell_out *out) {
        sim_shell_printf(out, "Unable to parse input string argument\n");
}

static bool zephyr34(const struct sim_mesh *m) {
        return m->cfg.zephyr == SIM_MESH_ZEPHYR_3_4;
}

/* print_dfd_status() */
static void print_dfd_status(struct sim_mesh *m, struct sim_shell_out *out, unsigned status) {
        sim_shell_printf(out, "{ \"status\": %u, \"phase\": %u", status, m->phase);
        if (m->phase != SMP_MESH_DFD_PHASE_IDLE && m->has_xfer) {
                if (zephyr34(m))
                        sim_shell_printf(out, ", \"group\": 0x%04x", m->in.group);
                else
                        sim_shell_printf(out, ", \"group\": %u", m->in.group);
                sim_shell_printf(out,
                                 ", \"app_idx\": %u, \"ttl\": %u, \"timeout_base\": %u, \"xfer_mode\": %u, "
                                 "\"apply\": %u, \"slot_idx\": %u",
                                 m->in.app_idx, m->in.ttl, m->in.timeout_base, m->in.mode, m->in.apply,
                                 m->in.slot_idx);
        }
        sim_shell_printf(out, " }\n");
}

static void print_receivers_status(struct sim_mesh *m, struct sim_shell_out *out, unsigned status) {
        sim_shell_printf(out, "{\"status\": %u, \"target_cnt\": %zu}\n", status, m->n_rx);
}

static void print_fw_status(struct sim_mesh *m, struct sim_shell_out *out, unsigned status) {
        sim_shell_printf(out, "{ \"status\": %u, \"slot_cnt\": %zu, \"idx\": %u }\n", status, m->n_slots, 0xffffu);
}

/* ------------------------------------------------------------------ */
/* mesh models dfd ...                                                 */

static int dfd_receivers_add(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out) {
        if (mesh_cli_busy(m)) {
                print_receivers_status(m, out, SMP_MESH_DFD_ERR_BUSY_WITH_DISTRIBUTION);
                return -EBUSY;
        }
        char *outer, *inner;
        for (char *tok = strtok_r(argv[1], ";", &outer); tok; tok = strtok_r(NULL, ";", &outer)) {
                char *addr_str = strtok_r(tok, ",", &inner);
                char *img_str = strtok_r(NULL, ",", &inner);
                int err = 0;

                if (!addr_str || !img_str)
                        return -EINVAL;
                uint16_t addr = (uint16_t) shell_strtoul(addr_str, &err);
                uint8_t img = (uint8_t) shell_strtoul(img_str, &err);
                if (err) {
                        warn_parse(out);
                        return err;
                }
                /* bt_mesh_dfd_srv_receiver_add() */
                if (!smp_mesh_addr_is_unicast(addr))
                        continue;
                struct mesh_receiver *r = NULL;
                for (size_t i = 0; i < m->n_rx; i++)
                        if (m->rx[i].addr == addr)
                                r = &m->rx[i];
                if (r) {
                        r->img_idx = img;
                        continue;
                }
                if (m->n_rx == m->cfg.targets_max) {
                        print_receivers_status(m, out, SMP_MESH_DFD_ERR_INSUFFICIENT_RESOURCES);
                        return -ENOSPC;
                }
                m->rx[m->n_rx++] = (struct mesh_receiver) { .addr = addr, .img_idx = img };
        }
        print_receivers_status(m, out, SMP_MESH_DFD_SUCCESS);
        return 0;
}

static int dfd_receivers_delete_all(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out) {
        if (mesh_cli_busy(m)) {
                print_receivers_status(m, out, SMP_MESH_DFD_ERR_BUSY_WITH_DISTRIBUTION);
                return -EBUSY;
        }
        m->n_rx = 0;
        print_receivers_status(m, out, SMP_MESH_DFD_SUCCESS);
        return 0;
}

static int dfd_receivers_get(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out) {
        int err = 0;
        uint16_t first = (uint16_t) shell_strtoul(argv[1], &err);
        uint16_t cnt = (uint16_t) shell_strtoul(argv[2], &err);

        if (err) {
                warn_parse(out);
                return err;
        }
        if (cnt == 0 || m->n_rx <= first)
                return -EINVAL;
        cnt = (uint16_t) MIN((size_t) cnt, m->n_rx - first);
        unsigned progress = mesh_progress_percent(m) / 2;

        sim_shell_printf(out, "{\n\t\"target_cnt\": %zu,\n\t\"targets\": {\n", m->n_rx);
        for (unsigned i = 0; i < cnt; i++) {
                const struct mesh_receiver *r = &m->rx[first + i];
                char addr[8];
                snprintf(addr, sizeof(addr), zephyr34(m) ? "0x%04x" : "%u", r->addr);
                sim_shell_printf(out,
                                 "\t\t\"%u\": { \"blob_addr\": %s, \"phase\": %u, \"status\": %u, "
                                 "\"blob_status\": %u, \"progress\": %u, \"img_idx\": %u }%s\n",
                                 first + i, addr, r->phase, r->status, r->blob_status, progress, r->img_idx,
                                 i == cnt - 1u ? "" : ",");
        }
        sim_shell_printf(out, "\t}\n}\n");
        return 0;
}

static int dfd_capabilities_get(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out) {
        uint64_t used = 0;
        for (size_t i = 0; i < m->n_slots; i++)
                used += m->slots[i].size;
        uint32_t space = m->cfg.slot_max_size;   /* CONFIG_BT_MESH_DFD_SRV_SLOT_SPACE's default */
        used = MIN(used, (uint64_t) space);
        sim_shell_printf(out,
                         "{ \"targets_max\": %u, \"slot_cnt\": %u, \"slot_max_size\": %u, \"slot_space\": %u, "
                         "\"remaining_space\": %u, \"oob_supported\": false }\n",
                         m->cfg.targets_max, m->cfg.slot_cnt, m->cfg.slot_max_size, space,
                         (unsigned) (space - used));
        return 0;
}

static int dfd_get(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out) {
        print_dfd_status(m, out, SMP_MESH_DFD_SUCCESS);
        return 0;
}

/* A new distribution: bt_mesh_dfd_srv_start() past its checks, then
 * bt_mesh_dfu_cli_send(). */
static int dfd_start(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out) {
        int err = 0;
        uint16_t app_idx = (uint16_t) shell_strtoul(argv[1], &err);
        uint16_t slot_idx = (uint16_t) shell_strtoul(argv[2], &err);
        uint16_t group = argc > 3 ? (uint16_t) shell_strtoul(argv[3], &err) : 0;
        bool apply = argc > 4 ? streq(argv[4], "true") : true;
        uint8_t ttl = argc > 5 ? (uint8_t) shell_strtoul(argv[5], &err) : SMP_MESH_TTL_DEFAULT;
        uint16_t timeout_base = argc > 6 ? (uint16_t) shell_strtoul(argv[6], &err) : 0;
        uint8_t mode = argc > 7 ? (uint8_t) shell_strtoul(argv[7], &err) : SMP_MESH_XFER_MODE_PUSH;
        uint64_t now = mesh_now_us(m);
        unsigned status;

        if (err) {
                warn_parse(out);
                return err;
        }
        if (m->n_rx == 0)
                status = SMP_MESH_DFD_ERR_RECEIVERS_LIST_EMPTY;
        else if (app_idx != 0)                  /* the one application key bound */
                status = SMP_MESH_DFD_ERR_INVALID_APPKEY_INDEX;
        else if (slot_idx >= m->n_slots)
                status = SMP_MESH_DFD_ERR_FW_NOT_FOUND;
        else {
                bool same = m->in.app_idx == app_idx && m->in.timeout_base == timeout_base && m->in.group == group &&
                            m->in.ttl == ttl && m->in.mode == mode && m->in.apply == apply &&
                            m->in.slot_idx == slot_idx;
                status = UINT_MAX;
                if (same) {
                        if (mesh_dfd_busy(m) || m->phase == SMP_MESH_DFD_PHASE_COMPLETED) {
                                dev_log(m->d, 1, "mesh: already completed or in progress");
                                status = SMP_MESH_DFD_SUCCESS;
                        } else if (m->phase == SMP_MESH_DFD_PHASE_TRANSFER_SUSPENDED) {
                                /* bt_mesh_dfu_cli_resume() and
                                 * bt_mesh_blob_cli_resume(): the timed
                                 * out targets are in again */
                                for (size_t i = 0; i < m->n_rx; i++) {
                                        struct mesh_receiver *r = &m->rx[i];
                                        if (!r->timedout)
                                                continue;
                                        r->timedout = false;
                                        r->status = SMP_MESH_DFU_SUCCESS;
                                        r->phase = SMP_MESH_DFU_PHASE_UNKNOWN;
                                        r->blob_status = 0;
                                }
                                m->cli_failed = false;
                                m->cli_completed = false;
                                m->resuming = true;
                                m->phase = SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE;
                                mesh_begin_start(m, now);
                                status = SMP_MESH_DFD_SUCCESS;
                        }
                } else if (mesh_dfd_busy(m) || m->phase == SMP_MESH_DFD_PHASE_TRANSFER_SUSPENDED)
                        status = SMP_MESH_DFD_ERR_BUSY_WITH_DISTRIBUTION;
                if (status == UINT_MAX) {
                        if (m->phase == SMP_MESH_DFD_PHASE_CANCELING_UPDATE)
                                status = SMP_MESH_DFD_ERR_BUSY_WITH_DISTRIBUTION;
                        else
                                status = mesh_start_new(m, app_idx, slot_idx, group, apply, ttl, timeout_base, mode, now);
                }
        }
        mesh_arm_timer(m, now);
        print_dfd_status(m, out, status);
        return status ? -EINVAL : 0;
}

static int dfd_suspend(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out) {
        unsigned status = SMP_MESH_DFD_SUCCESS;

        if (m->phase == SMP_MESH_DFD_PHASE_TRANSFER_SUSPENDED)
                status = SMP_MESH_DFD_SUCCESS;
        else if (m->phase != SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE)
                status = SMP_MESH_DFD_ERR_WRONG_PHASE;
        else if (m->stage != STAGE_TRANSFER)
                status = SMP_MESH_DFD_ERR_SUSPEND_FAILED;   /* the BLOB client is not sending */
        else {
                m->cli = CLI_SUSPENDED;
                m->stage = STAGE_NONE;
                m->phase = SMP_MESH_DFD_PHASE_TRANSFER_SUSPENDED;
                mesh_arm_timer(m, mesh_now_us(m));
        }
        print_dfd_status(m, out, status);
        return status ? -EINVAL : 0;
}

static int dfd_cancel(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out) {
        uint64_t now = mesh_now_us(m);

        if (m->phase == SMP_MESH_DFD_PHASE_COMPLETED || m->phase == SMP_MESH_DFD_PHASE_FAILED)
                m->phase = SMP_MESH_DFD_PHASE_IDLE;
        else if (m->phase != SMP_MESH_DFD_PHASE_IDLE && m->phase != SMP_MESH_DFD_PHASE_CANCELING_UPDATE) {
                uint8_t prev = m->phase;
                m->phase = SMP_MESH_DFD_PHASE_CANCELING_UPDATE;
                if (m->cli == CLI_IDLE) {
                        /* bt_mesh_dfu_cli_cancel() says -EALREADY */
                        print_dfd_status(m, out, SMP_MESH_DFD_ERR_INTERNAL);
                        return -EINVAL;
                }
                mesh_begin_cancel(m, now);
                if (prev == SMP_MESH_DFD_PHASE_APPLYING_UPDATE)
                        m->phase = SMP_MESH_DFD_PHASE_IDLE;
                mesh_arm_timer(m, now);
        }
        print_dfd_status(m, out, SMP_MESH_DFD_SUCCESS);
        return 0;
}

static int dfd_apply(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out) {
        unsigned status = SMP_MESH_DFD_SUCCESS;

        switch (m->phase) {
        case SMP_MESH_DFD_PHASE_IDLE:
        case SMP_MESH_DFD_PHASE_CANCELING_UPDATE:
        case SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE:
        case SMP_MESH_DFD_PHASE_TRANSFER_SUSPENDED:
        case SMP_MESH_DFD_PHASE_FAILED:
                status = SMP_MESH_DFD_ERR_WRONG_PHASE;
                break;
        case SMP_MESH_DFD_PHASE_APPLYING_UPDATE:
        case SMP_MESH_DFD_PHASE_COMPLETED:
                break;
        default:
                if (m->cli != CLI_VERIFIED)
                        status = SMP_MESH_DFD_ERR_INTERNAL;
                else {
                        m->phase = SMP_MESH_DFD_PHASE_APPLYING_UPDATE;
                        mesh_begin_apply(m, mesh_now_us(m));
                        mesh_arm_timer(m, mesh_now_us(m));
                }
        }
        print_dfd_status(m, out, status);
        return status ? -EINVAL : 0;
}

static int dfd_fw_delete_all(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out) {
        unsigned status = SMP_MESH_DFD_SUCCESS;

        if (m->phase != SMP_MESH_DFD_PHASE_IDLE)
                status = SMP_MESH_DFD_ERR_BUSY_WITH_DISTRIBUTION;
        else
                m->n_slots = 0;
        print_fw_status(m, out, status);
        return status ? -EINVAL : 0;
}

/* ------------------------------------------------------------------ */
/* mesh models dfu slot ...                                            */

static int slot_add_34(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out) {
        int err = 0;
        unsigned long size = shell_strtoul(argv[1], &err);
        struct mesh_slot s = { 0 };

        if (err) {
                warn_parse(out);
                return err;
        }
        s.size = (uint32_t) size;
        if (argc > 2)
                s.fwid_len = hex2bin(argv[2], s.fwid, sizeof(s.fwid));
        if (argc > 3)
                s.md_len = hex2bin(argv[3], s.md, sizeof(s.md));
        sim_shell_printf(out, "Adding slot (size: %u)\n", (unsigned) size);
        /* bt_mesh_dfu_slot_add(): a free slot, and no other with this
         * firmware ID */
        bool dup = false;
        for (size_t i = 0; i < m->n_slots; i++)
                dup |= m->slots[i].fwid_len == s.fwid_len && memcmp(m->slots[i].fwid, s.fwid, s.fwid_len) == 0;
        if (m->n_slots + m->reserved_slots >= m->cfg.slot_cnt || dup) {
                sim_shell_printf(out, "Failed.\n");
                return 0;
        }
        m->slots[m->n_slots++] = s;
        sim_shell_printf(out, "Slot added. ID: %zu\n", m->n_slots - 1);
        return 0;
}

static int slot_add_later(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out) {
        int err = 0;
        unsigned long size = shell_strtoul(argv[1], &err);
        struct mesh_slot s = { 0 };

        if (err) {
                warn_parse(out);
                return err;
        }
        sim_shell_printf(out, "Adding slot (size: %u)\n", (unsigned) size);
        /* bt_mesh_dfu_slot_reserve() */
        if (m->n_slots + m->reserved_slots >= m->cfg.slot_cnt) {
                sim_shell_printf(out, "Failed to reserve slot.\n");
                return 0;
        }
        /* bt_mesh_dfu_slot_fwid_set(): its -EEXIST for a firmware ID
         * already registered is ignored, and the commit then fails */
        uint8_t fwid[SIM_MESH_FWID_MAX];
        size_t fwid_len = hex2bin(argv[2], fwid, sizeof(fwid));
        bool dup = false;
        for (size_t i = 0; i < m->n_slots; i++)
                dup |= m->slots[i].fwid_len == fwid_len && memcmp(m->slots[i].fwid, fwid, fwid_len) == 0;
        if (!dup) {
                memcpy(s.fwid, fwid, fwid_len);
                s.fwid_len = fwid_len;
        }
        if (argc > 3)
                s.md_len = hex2bin(argv[3], s.md, sizeof(s.md));
        s.size = (uint32_t) size;
        /* bt_mesh_dfu_slot_commit() */
        if (s.fwid_len == 0 || s.size == 0) {
                sim_shell_printf(out, "Failed to commit slot: %d\n", -EINVAL);
                return -EINVAL;
        }
        m->slots[m->n_slots++] = s;
        sim_shell_printf(out, "Slot added. Index: %zu\n", m->n_slots - 1);
        return 0;
}

static int slot_add(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out) {
        return zephyr34(m) ? slot_add_34(m, argc, argv, out) : slot_add_later(m, argc, argv, out);
}

static int slot_del(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out) {
        int err = 0;
        uint8_t idx = (uint8_t) shell_strtoul(argv[1], &err);

        if (err) {
                warn_parse(out);
                return err;
        }
        if (idx >= m->n_slots) {
                sim_shell_printf(out, "No slot at %u\n", idx);
                return 0;
        }
        memmove(&m->slots[idx], &m->slots[idx + 1], (m->n_slots - idx - 1) * sizeof(m->slots[0]));
        m->n_slots--;
        sim_shell_printf(out, "Slot %u deleted.\n", idx);
        return 0;
}

static int slot_del_all(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out) {
        m->n_slots = 0;
        sim_shell_printf(out, "All slots deleted.\n");
        return 0;
}

static int slot_get(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out) {
        int err = 0;
        uint8_t idx = (uint8_t) shell_strtoul(argv[1], &err);
        char fwid[2 * SIM_MESH_FWID_MAX + 1], md[2 * SIM_MESH_METADATA_MAX + 1];

        if (err) {
                warn_parse(out);
                return err;
        }
        if (idx >= m->n_slots) {
                sim_shell_printf(out, "No slot at %u\n", idx);
                return 0;
        }
        const struct mesh_slot *s = &m->slots[idx];
        hex_encode(s->fwid, s->fwid_len, fwid);
        hex_encode(s->md, s->md_len, md);
        sim_shell_printf(out, "Slot %u:\n\tSize:     %" PRIu32 " bytes\n\tFWID:     %s\n\tMetadata: %s\n", idx,
                         s->size, fwid, md);
        if (zephyr34(m))
                sim_shell_printf(out, "\tURI:      \n");
        return 0;
}

/* ------------------------------------------------------------------ */
/* The command tree                                                    */

typedef int (*mesh_cmd_fn)(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out);

struct mesh_cmd {
        const char *name;
        mesh_cmd_fn fn;
        int mandatory, optional;   /* SHELL_CMD_ARG(): mandatory counts the command itself */
        int mandatory_34, optional_34;   /* where v3.4 differs (0: the same) */
};

static const struct mesh_cmd dfd_cmds[] = {
        { "receivers-add", dfd_receivers_add, 2, 0, 0, 0 },
        { "receivers-delete-all", dfd_receivers_delete_all, 1, 0, 0, 0 },
        { "receivers-get", dfd_receivers_get, 3, 0, 0, 0 },
        { "capabilities-get", dfd_capabilities_get, 1, 0, 0, 0 },
        { "get", dfd_get, 1, 0, 0, 0 },
        { "start", dfd_start, 3, 5, 0, 0 },
        { "suspend", dfd_suspend, 1, 0, 0, 0 },
        { "cancel", dfd_cancel, 1, 0, 0, 0 },
        { "apply", dfd_apply, 1, 0, 0, 0 },
        { "fw-delete-all", dfd_fw_delete_all, 1, 0, 0, 0 },
        {}
};

static const struct mesh_cmd slot_cmds[] = {
        /* "<Size> <FwID> [<Metadata>]"; v3.4: "<size> [<fwid> [<metadata> [<uri>]]]" */
        { "add", slot_add, 3, 1, 2, 3 },
        { "del", slot_del, 2, 0, 0, 0 },
        { "del-all", slot_del_all, 1, 0, 0, 0 },
        { "get", slot_get, 2, 0, 0, 0 },
        {}
};

static int run_table(struct sim_mesh *m, const struct mesh_cmd *table, const char *path, int argc, char **argv,
                     struct sim_shell_out *out) {
        if (argc < 1) {
                sim_shell_printf(out, "%s: wrong parameter count\n", path);
                return -EINVAL;
        }
        for (const struct mesh_cmd *c = table; c->name; c++) {
                if (!streq(c->name, argv[0]))
                        continue;
                int mandatory = zephyr34(m) && c->mandatory_34 ? c->mandatory_34 : c->mandatory;
                int optional = zephyr34(m) && c->mandatory_34 ? c->optional_34 : c->optional;
                if (argc < mandatory || argc > mandatory + optional) {
                        sim_shell_printf(out, "%s: wrong parameter count\n", c->name);
                        return -EINVAL;
                }
                return c->fn(m, argc, argv, out);
        }
        /* bt_mesh_shell_mdl_cmds_help() on an unknown word */
        sim_shell_printf(out, "%s unknown parameter: %s\n", path, argv[0]);
        return -EINVAL;
}

/* A burst of deferred log lines, due for this command (mesh-set
 * log-burst): the dummy backend is also a log backend, and the lines the
 * log thread wrote while the command ran fill the output buffer, which
 * drops what does not fit (shell_dummy.c write()): the command's own
 * output is cut to its first SIM_MESH_LOG_BURST_ROOM bytes. */
static void log_burst(struct sim_mesh *m, const char *word, struct sim_shell_out *out) {
        uint64_t ms = mesh_now_us(m) / 1000u;

        if (m->log_bursts == 0 || (m->log_burst_word[0] && !(word && streq(word, m->log_burst_word))))
                return;
        m->log_bursts--;
        if (out->cap < SIM_MESH_LOG_BURST_ROOM + 1u)
                return;
        /* whole lines, the last one cut where ROOM bytes are left */
        for (unsigned i = 0; out->len + 1u + SIM_MESH_LOG_BURST_ROOM < out->cap; i++) {
                char text[96], line[128];
                unsigned addr = 0x0100u + i % 8u;
                switch (i % 4u) {
                case 0:
                        snprintf(text, sizeof(text), "<wrn> bt_mesh_blob_cli: Target 0x%04x timed out", addr);
                        break;
                case 1:
                        snprintf(text, sizeof(text), "<inf> dfu_dist: Distribution phase changed to %u", i % 10u);
                        break;
                case 2:
                        snprintf(text, sizeof(text), "<wrn> bt_mesh_dfd_srv: Already completed or in progress");
                        break;
                default:
                        snprintf(text, sizeof(text), "<dbg> bt_mesh_dfu_cli: Target 0x%04x: phase %u", addr, i % 10u);
                        break;
                }
                int n = snprintf(line, sizeof(line),
                                 "[%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64 ",000] %s\n",
                                 ms / 3600000u % 100u, ms / 60000u % 60u, ms / 1000u % 60u, ms % 1000u, text);
                size_t left = out->cap - 1u - SIM_MESH_LOG_BURST_ROOM - out->len;
                if ((size_t) n + 1u > left) /* its "\n" prints as "\r\n" */
                        n = (int) MIN(left, (size_t) n - 1u);
                sim_shell_printf(out, "%.*s", n, line);
        }
        dev_log(m->d, 1, "mesh: a log burst fills the shell output buffer (%zu of %zu bytes)", out->len, out->cap);
}

int sim_mesh_shell(struct sim_mesh *m, int argc, char **argv, struct sim_shell_out *out) {
        mesh_advance(m, mesh_now_us(m));
        bool dfd = argc >= 4 && streq(argv[1], "models") && streq(argv[2], "dfd");
        bool slot = argc >= 5 && streq(argv[1], "models") && streq(argv[2], "dfu") && streq(argv[3], "slot");
        log_burst(m, dfd ? argv[3] : slot ? argv[4] : NULL, out);
        if (dfd)
                return run_table(m, dfd_cmds, "dfd", argc - 3, argv + 3, out);
        if (slot)
                return run_table(m, slot_cmds, "slot", argc - 4, argv + 4, out);
        /* anything else of the mesh shell is not modelled */
        sim_shell_printf(out, "%s: unknown parameter: %s\n", argv[0], argc > 1 ? argv[1] : "");
        return -EINVAL;
}
