/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a Mesh DFU Initiator sends a Distributor: firmware IDs and
 * metadata (Zephyr subsys/bluetooth/mesh/dfu_metadata.c,
 * bt_mesh_dfu_metadata_encode/decode; nRF Connect SDK
 * doc/nrf/protocols/bt/bt_mesh/dfu_over_bt_mesh.rst for the MCUboot
 * firmware ID) and the shell command lines that carry them (Zephyr
 * subsys/bluetooth/mesh/shell/dfd.c and dfu.c for the argument syntax).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/mesh-dfu.h"
#include "smpgw/smp-parse.h"
#include "smpgw/smp-shell.h"
#include "util.h"

void smp_mesh_fwid_from_version(const struct mcuboot_version *v, uint8_t out[SMP_MESH_FWID_MCUBOOT_LEN]) {
        out[0] = v->major;
        out[1] = v->minor;
        unaligned_write_le16(out + 2, v->revision);
        unaligned_write_le32(out + 4, v->build);
}

int smp_mesh_fwid_to_version(const uint8_t *fwid, size_t len, struct mcuboot_version *ret) {
        if (!fwid || !ret || len != SMP_MESH_FWID_MCUBOOT_LEN)
                return -EINVAL;
        *ret = (struct mcuboot_version) {
                .major = fwid[0],
                .minor = fwid[1],
                .revision = unaligned_read_le16(fwid + 2),
                .build = unaligned_read_le32(fwid + 4),
        };
        return 0;
}

/* Version (8), size (3), core type (1). */
#define METADATA_FIXED_LEN 12u
/* Composition hash (4), elements (2). */
#define METADATA_COMP_LEN 6u

int smp_mesh_metadata_encode(const struct smp_mesh_metadata *md, uint8_t *out, size_t cap) {
        if (!md || (!out && cap > 0) || (!md->user_data && md->user_data_len > 0))
                return -EINVAL;
        /* Zephyr's decoder reads the composition exactly when the core type
         * has the application bit: anything else would shift the user data. */
        if (md->has_composition != !!(md->core_type & SMP_MESH_CORE_APP))
                return -EINVAL;
        if (md->size > SMP_MESH_METADATA_SIZE_MAX)
                return -EFBIG;
        size_t len = METADATA_FIXED_LEN + (md->has_composition ? METADATA_COMP_LEN : 0) + md->user_data_len;
        if (len > cap || len > INT32_MAX)
                return -ENOBUFS;

        smp_mesh_fwid_from_version(&md->version, out);
        out[8] = (uint8_t) md->size;
        out[9] = (uint8_t) (md->size >> 8);
        out[10] = (uint8_t) (md->size >> 16);
        out[11] = md->core_type;
        size_t off = METADATA_FIXED_LEN;
        if (md->has_composition) {
                unaligned_write_le32(out + off, md->comp_hash);
                unaligned_write_le16(out + off + 4, md->elements);
                off += METADATA_COMP_LEN;
        }
        if (md->user_data_len)
                memcpy(out + off, md->user_data, md->user_data_len);
        return (int) len;
}

int smp_mesh_metadata_decode(const uint8_t *in, size_t len, struct smp_mesh_metadata *ret) {
        struct smp_mesh_metadata md = { 0 };

        if ((!in && len > 0) || !ret)
                return -EINVAL;
        if (len < METADATA_FIXED_LEN)
                return -EBADMSG;
        (void) smp_mesh_fwid_to_version(in, SMP_MESH_FWID_MCUBOOT_LEN, &md.version);
        md.size = in[8] | ((uint32_t) in[9] << 8) | ((uint32_t) in[10] << 16);
        md.core_type = in[11];
        size_t off = METADATA_FIXED_LEN;
        if (md.core_type & SMP_MESH_CORE_APP) {
                if (len < METADATA_FIXED_LEN + METADATA_COMP_LEN)
                        return -EBADMSG;
                md.has_composition = true;
                md.comp_hash = unaligned_read_le32(in + off);
                md.elements = unaligned_read_le16(in + off + 4);
                off += METADATA_COMP_LEN;
        }
        md.user_data = len > off ? in + off : NULL;
        md.user_data_len = len - off;
        *ret = md;
        return 0;
}

int smp_mesh_metadata_from_image(const struct mcuboot_image *img, uint8_t core_type,
                                 const struct smp_mesh_composition *comp, struct smp_mesh_metadata *ret) {
        if (!img || !ret)
                return -EINVAL;
        if (img->size > SMP_MESH_METADATA_SIZE_MAX)
                return -EFBIG;
        *ret = (struct smp_mesh_metadata) {
                .version = img->version,
                .size = (uint32_t) img->size,
                .core_type = core_type,
                .has_composition = comp != NULL,
                .comp_hash = comp ? comp->hash : 0,
                .elements = comp ? comp->elements : 0,
        };
        return 0;
}

int smp_mesh_hex(const uint8_t *data, size_t len, char *buf, size_t size) {
        if ((!data && len > 0) || !buf || len > INT32_MAX / 2)
                return -EINVAL;
        if (size < 2 * len + 1)
                return -ENOBUFS;
        hex_encode(data, len, buf);
        return (int) (2 * len);
}

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int smp_mesh_unhex(const char *hex, size_t len, uint8_t *out, size_t cap) {
        if ((!hex && len > 0) || (!out && cap > 0) || len % 2 || len / 2 > INT32_MAX)
                return -EINVAL;
        for (size_t i = 0; i < len; i++)
                if (hex_value(hex[i]) < 0)
                        return -EINVAL;
        if (len / 2 > cap)
                return -ENOBUFS;
        for (size_t i = 0; i < len / 2; i++)
                out[i] = (uint8_t) (hex_value(hex[2 * i]) << 4 | hex_value(hex[2 * i + 1]));
        return (int) (len / 2);
}

/* snprintf() that says -ENOBUFS when it did not fit. */
static int format(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int format(char *buf, size_t size, const char *fmt, ...) {
        va_list ap;
        int n;

        if (!buf && size > 0)
                return -EINVAL;
        va_start(ap, fmt);
        n = vsnprintf(buf, size, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        if ((size_t) n >= size)
                return -ENOBUFS;
        return n;
}

int smp_mesh_slot_add_cmd(uint32_t size, const uint8_t *fwid, size_t fwid_len, const uint8_t *metadata,
                          size_t metadata_len, char *buf, size_t bufsize) {
        char fwid_hex[2 * SMP_MESH_FWID_MAXLEN + 1];
        char md_hex[2 * SMP_MESH_METADATA_MAXLEN + 1] = "";

        if (!fwid || fwid_len == 0 || fwid_len > SMP_MESH_FWID_MAXLEN || metadata_len > SMP_MESH_METADATA_MAXLEN ||
            (!metadata && metadata_len > 0))
                return -EINVAL;
        (void) smp_mesh_hex(fwid, fwid_len, fwid_hex, sizeof(fwid_hex));
        if (metadata_len)
                (void) smp_mesh_hex(metadata, metadata_len, md_hex, sizeof(md_hex));
        return format(buf, bufsize, "mesh models dfu slot add %" PRIu32 " %s%s%s", size, fwid_hex,
                      metadata_len ? " " : "", md_hex);
}

int smp_mesh_dfd_start_cmd(const struct smp_mesh_dfd_start_params *p, char *buf, size_t bufsize) {
        if (!p)
                return -EINVAL;
        if (p->group != 0 && p->group < 0xc000)
                return -EINVAL;
        if (p->xfer_mode != SMP_MESH_XFER_MODE_PUSH && p->xfer_mode != SMP_MESH_XFER_MODE_PULL)
                return -EINVAL;
        return format(buf, bufsize, "mesh models dfd start %u %u 0x%04x %s %u %u %u", p->app_idx, p->slot_idx,
                      p->group, p->apply ? "true" : "false", p->ttl, p->timeout_base, p->xfer_mode);
}

int smp_mesh_receivers_get_cmd(uint16_t first, uint16_t count, char *buf, size_t bufsize) {
        return format(buf, bufsize, "mesh models dfd receivers-get %u %u", first, count);
}

#define RECEIVERS_ADD "mesh models dfd receivers-add "
/* "0x%04x,%u" with an image index up to 255, and the ';' before it. */
#define RECEIVER_TEXT_MAX (1 + 6 + 1 + 3)

int smp_mesh_receivers_add_cmds(const struct smp_mesh_receiver *r, size_t n, size_t cmd_buf_size,
                                char ***ret_lines, size_t *ret_n) {
        char **lines = NULL;
        size_t n_lines = 0;
        char *line = NULL;
        size_t line_len = 0;
        int e = 0;

        if (!r || n == 0 || !ret_lines)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!smp_mesh_addr_is_unicast(r[i].addr))
                        return -EINVAL;
        if (cmd_buf_size == 0)
                cmd_buf_size = SMP_SHELL_CMD_BUFF_SIZE_DEFAULT;

        for (size_t i = 0; i < n; i++) {
                char entry[RECEIVER_TEXT_MAX + 1];
                int k = snprintf(entry, sizeof(entry), "%s0x%04x,%u", line ? ";" : "", r[i].addr, r[i].img_idx);

                if (line && !smp_shell_line_fits(line_len + (size_t) k, cmd_buf_size)) {
                        /* close this line, start the next with the entry */
                        lines[n_lines++] = TAKE_PTR(line);
                        lines[n_lines] = NULL;
                        k = snprintf(entry, sizeof(entry), "0x%04x,%u", r[i].addr, r[i].img_idx);
                }
                if (!line) {
                        if (!smp_shell_line_fits(strlen(RECEIVERS_ADD) + (size_t) k, cmd_buf_size)) {
                                e = -E2BIG;
                                goto fail;
                        }
                        char **grown = realloc(lines, (n_lines + 2) * sizeof(*lines));
                        if (!grown) {
                                e = -ENOMEM;
                                goto fail;
                        }
                        lines = grown;
                        lines[n_lines] = NULL;
                        line = malloc(cmd_buf_size + 1);
                        if (!line) {
                                e = -ENOMEM;
                                goto fail;
                        }
                        line_len = (size_t) snprintf(line, cmd_buf_size + 1, "%s", RECEIVERS_ADD);
                }
                memcpy(line + line_len, entry, (size_t) k + 1);
                line_len += (size_t) k;
        }
        lines[n_lines++] = TAKE_PTR(line);
        lines[n_lines] = NULL;
        *ret_lines = lines;
        if (ret_n)
                *ret_n = n_lines;
        return 0;

fail:
        free(line);
        if (lines)
                lines[n_lines] = NULL;
        smp_strv_free(lines);
        return e;
}
