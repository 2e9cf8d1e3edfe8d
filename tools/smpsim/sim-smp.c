/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The SMP server of a simulated device.  Dispatch follows Zephyr's
 * smp.c (smp_process_request, smp_handle_single_req, smp_on_err); the
 * handlers follow os_mgmt.c, img_mgmt.c (upload, erase, slot info),
 * img_mgmt_state.c (state read/write), zephyr_img_mgmt.c
 * (img_mgmt_upload_inspect), stat_mgmt.c and shell_mgmt.c (sim-shell.c).  Bodies are encoded and
 * decoded with libsmpgw's typed codecs.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sha-digest.h"
#include "smpgw/mcuboot-image.h"
#include "smpgw/smp-cbor.h"
#include "smpgw/smp-error.h"
#include "smpgw/smp-frame.h"
#include "smpgw/smp-img.h"
#include "smpgw/smp-os.h"
#include "smpgw/smp-shell.h"
#include "smpgw/smp-stat.h"
#include "sim-shell.h"
#include "sim-smp.h"
#include "util.h"

struct smp_ctx {
        struct sim_device *d;
        const struct smp_header *req;
        struct smp_cbor_writer *w;
        struct sim_smp_reply *reply;
};

/* 0: answer written; > 0: an MGMT_ERR_* answered as a top-level "rc" by
 * the dispatcher (smp_on_err). */
typedef int (*smp_handler_fn)(struct smp_ctx *c, const uint8_t *body, size_t len);

void sim_smp_reply_done(struct sim_smp_reply *r) {
        free(r->data);
        r->data = NULL;
        r->len = r->cap = 0;
}

static bool legacy_device(const struct smp_ctx *c) {
        return c->d->params.smp_version < 2;
}

/* smp_add_cmd_err(): a group error, as {"err": {group, rc}} to an SMP v2
 * request, or as the legacy {"rc"} mapping to an SMP v1 one (firmware
 * older than v2 only ever had the legacy codes). */
static int cmd_err(struct smp_ctx *c, uint16_t group, uint16_t rc) {
        if (!legacy_device(c) && c->req->version == SMP_VERSION_2)
                (void) smp_status_encode_v2(c->w, group, rc);
        else
                (void) smp_status_encode_v1(c->w, smp_err_v1_legacy_rc(group, rc), NULL);
        return 0;
}

/* An empty success answer: {} (legacy firmware: {"rc": 0}). */
static int ok_empty(struct smp_ctx *c) {
        if (legacy_device(c))
                (void) smp_status_encode_v1(c->w, 0, NULL);
        else
                (void) smp_cbor_put_empty_map(c->w);
        return 0;
}

static uint64_t rate_us(uint64_t bytes, uint64_t rate) {
        return rate ? bytes * 1000000ULL / rate : 0;
}

/* ---------------------------------------------------------------- OS */

static int os_echo(struct smp_ctx *c, const uint8_t *body, size_t len) {
        struct smp_cbor_slice text;
        if (smp_os_echo_req_decode(body, len, &text, NULL) < 0)
                return SMP_MGMT_ERR_EINVAL;
        (void) smp_os_echo_rsp_encode(c->w, text);
        return 0;
}

static int os_taskstat(struct smp_ctx *c, const uint8_t *body, size_t len) {
        uint64_t uptime_ms = (sim_now_us(c->d->sim) - c->d->booted_at_us) / 1000;
        struct smp_os_task tasks[] = {
                { .name = SMP_CBOR_SLICE_LIT("idle"), .prio = 15, .tid = 0, .state = 0,
                  .stkuse = 72, .stksiz = 320, .cswcnt = uptime_ms / 10, .runtime = uptime_ms * 9 / 10 },
                { .name = SMP_CBOR_SLICE_LIT("main"), .prio = 0, .tid = 1, .state = 1,
                  .stkuse = 812, .stksiz = 2048, .cswcnt = c->d->stats.rx_packets, .runtime = uptime_ms / 20 },
                { .name = SMP_CBOR_SLICE_LIT("sysworkq"), .prio = -1, .tid = 2, .state = 1,
                  .stkuse = 1420, .stksiz = 4096, .cswcnt = c->d->stats.rx_packets * 2,
                  .runtime = uptime_ms / 20 },
        };
        const struct smp_os_taskstat_rsp rsp = { .tasks = tasks, .n_tasks = ELEMENTSOF(tasks) };
        (void) smp_os_taskstat_rsp_encode(c->w, &rsp);
        return 0;
}

/* Zephyr os_mgmt datetime: "yyyy-MM-ddTHH:mm:ss" (local RTC, no zone). */
static int os_datetime_get(struct smp_ctx *c, const uint8_t *body, size_t len) {
        time_t t = time(NULL) + (time_t) c->d->clock_offset_s;
        struct tm tm;
        char buf[64];
        gmtime_r(&t, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
        (void) smp_os_datetime_encode(c->w, smp_cbor_slice_str(buf));
        return 0;
}

static int os_datetime_set(struct smp_ctx *c, const uint8_t *body, size_t len) {
        struct smp_cbor_slice s;
        char buf[64];
        struct tm tm = { 0 };

        if (smp_os_datetime_req_decode(body, len, &s, NULL) < 0 || smp_cbor_slice_copy(s, buf, sizeof(buf)) < 0)
                return SMP_MGMT_ERR_EINVAL;
        const char *end = strptime(buf, "%Y-%m-%dT%H:%M:%S", &tm);
        /* fractions and a zone may follow; the RTC keeps seconds */
        if (!end || (*end && *end != '.' && *end != 'Z' && *end != '+' && *end != '-'))
                return cmd_err(c, SMP_GROUP_OS, SMP_OS_ERR_INVALID_FORMAT);
        c->d->clock_offset_s = (int64_t) timegm(&tm) - (int64_t) time(NULL);
        return ok_empty(c);
}

static int os_reset(struct smp_ctx *c, const uint8_t *body, size_t len) {
        struct smp_os_reset_req req = { 0 };
        /* Zephyr decodes an optional "force"; an empty body is fine */
        if (len > 0 && smp_os_reset_req_decode(body, len, &req, NULL) < 0)
                return SMP_MGMT_ERR_EINVAL;
        /* fault reset-busy: an application whose reset hook
         * (CONFIG_MCUMGR_GRP_OS_RESET_HOOK, MGMT_EVT_OP_OS_MGMT_RESET)
         * declines while it is busy, unless the request says force */
        if (c->d->faults.reset_busy && !req.force) {
                dev_log(c->d, 1, "fault: reset declined (busy), not forced");
                return SMP_MGMT_ERR_EBUSY;
        }
        c->reply->reset_after = true;
        return ok_empty(c);
}

static int os_params(struct smp_ctx *c, const uint8_t *body, size_t len) {
        /* without CONFIG_MCUMGR_GRP_OS_MCUMGR_PARAMS the handler is not
         * registered: smp_handle_single_payload() says MGMT_ERR_ENOTSUP */
        if (c->d->params.no_params)
                return SMP_MGMT_ERR_ENOTSUP;
        const struct smp_os_params_rsp rsp = {
                .buf_size = c->d->params.buf_size,
                .buf_count = c->d->params.buf_count,
        };
        (void) smp_os_params_rsp_encode(c->w, &rsp);
        return 0;
}

static int os_info(struct smp_ctx *c, const uint8_t *body, size_t len) {
        struct smp_cbor_slice format = { 0 };
        char out[512] = "";
        size_t o = 0;

        if (c->d->params.no_os_info)
                return SMP_MGMT_ERR_ENOTSUP;
        if (len > 0 && smp_os_info_req_decode(body, len, &format, NULL) < 0)
                return SMP_MGMT_ERR_EINVAL;
        if (!smp_cbor_slice_present(format) || format.len == 0)
                format = SMP_CBOR_SLICE_LIT("s");

        /* uname-like parts, in Zephyr's order for "a": r is BUILD_VERSION
         * (git describe), v KERNEL_VERSION_STRING, b __TIMESTAMP__ */
        const char *parts[] = {
                ['s'] = "Zephyr",
                ['n'] = c->d->name,
                ['r'] = "v3.7.0-smpsim",
                ['v'] = "3.7.0",
                ['b'] = "Thu Nov 26 00:00:00 2026",
                ['m'] = "arm",
                ['p'] = "cortex-m4",
                ['i'] = c->d->params.board[0] ? c->d->params.board : SIM_BOARD_DEFAULT,
                ['o'] = "Zephyr",
                ['z'] = NULL,
        };
        static const char all[] = "snrvbmpio";
        for (size_t i = 0; i < format.len; i++) {
                uint8_t ch = format.ptr[i];
                const char *letters = ch == 'a' ? all : NULL;
                char one[2] = { (char) ch, 0 };
                if (!letters) {
                        if (ch >= ELEMENTSOF(parts) || !parts[ch])
                                return cmd_err(c, SMP_GROUP_OS, SMP_OS_ERR_INVALID_FORMAT);
                        letters = one;
                }
                for (const char *l = letters; *l; l++) {
                        int n = snprintf(out + o, sizeof(out) - o, "%s%s", o ? " " : "", parts[(uint8_t) *l]);
                        if (n < 0 || (size_t) n >= sizeof(out) - o)
                                return SMP_MGMT_ERR_EMSGSIZE;
                        o += (size_t) n;
                }
        }
        (void) smp_os_info_rsp_encode(c->w, smp_cbor_slice_str(out));
        return 0;
}

static int os_bootloader_info(struct smp_ctx *c, const uint8_t *body, size_t len) {
        struct smp_cbor_slice query = { 0 };
        if (len > 0 && smp_os_bootloader_info_req_decode(body, len, &query, NULL) < 0)
                return SMP_MGMT_ERR_EINVAL;

        struct smp_os_bootloader_info_rsp rsp = { 0 };
        if (!smp_cbor_slice_present(query))
                rsp.bootloader = SMP_CBOR_SLICE_LIT("MCUboot");
        else if (smp_cbor_slice_eq(query, "mode")) {
                rsp.has_mode = true;
                rsp.mode = 1; /* swap using scratch: what this model does */
        } else
                return cmd_err(c, SMP_GROUP_OS, SMP_OS_ERR_QUERY_YIELDS_NO_ANSWER);
        (void) smp_os_bootloader_info_rsp_encode(c->w, &rsp);
        return 0;
}

/* ------------------------------------------------------------- image */

/* The flash of an updatable image; NULL for an image the device does
 * not have. */
static struct sim_flash *image_flash(struct sim_device *d, uint32_t image) {
        if (image == 0)
                return &d->flash;
        if (image == 1 && d->params.two_images)
                return &d->flash_image1;
        return NULL;
}

static int img_state_encode(struct smp_ctx *c) {
        struct smp_img_state_rsp rsp = {
                .has_split_status = !c->d->params.frugal_list,
                .split_status = 0,
                .frugal = c->d->params.frugal_list,
        };
        char versions[4][MCUBOOT_VERSION_STRING_MAX];
        struct sim_image_info info[4];
        const struct sim_flash *fl;

        /* img_mgmt_state_encode_slot(): "image" (slot >> 1) only when
         * CONFIG_MCUMGR_GRP_IMG_UPDATABLE_IMAGE_NUMBER > 1, "slot" the
         * image's own 0 or 1 */
        for (int i = 0; i < 4 && (fl = image_flash(c->d, (uint32_t) i / 2)); i++) {
                int slot = i % 2;
                /* unreadable slots are left out (img_mgmt_state_encode_slot) */
                if (sim_flash_read_info(fl, slot, &info[i]) < 0)
                        continue;
                sim_image_version_string(&info[i], versions[i], sizeof(versions[i]));
                unsigned flags = sim_flash_slot_flags(fl, slot);
                rsp.images[rsp.n_images++] = (struct smp_img_slot_state) {
                        .has_image = c->d->params.two_images,
                        .image = (uint32_t) i / 2,
                        .slot = (uint32_t) slot,
                        .version = smp_cbor_slice_str(versions[i]),
                        .hash = smp_cbor_slice_make(info[i].hash, 32),
                        .bootable = !(info[i].flags & MCUBOOT_FLAG_NON_BOOTABLE),
                        .pending = flags & SIM_SLOT_F_PENDING,
                        .confirmed = flags & SIM_SLOT_F_CONFIRMED,
                        .active = flags & SIM_SLOT_F_ACTIVE,
                        .permanent = flags & SIM_SLOT_F_PERMANENT,
                };
        }
        (void) smp_img_state_rsp_encode(c->w, &rsp);
        return 0;
}

static int img_state_read(struct smp_ctx *c, const uint8_t *body, size_t len) {
        return img_state_encode(c);
}

static void save_trailers(struct sim_device *d) {
        if (d->state_dir[0])
                (void) sim_flash_save_trailers(&d->flash, d->state_dir);
}

static int img_state_write(struct smp_ctx *c, const uint8_t *body, size_t len) {
        struct smp_img_state_write_req req;
        struct sim_flash *fl = &c->d->flash;
        int slot;

        if (smp_img_state_write_req_decode(body, len, &req, NULL) < 0)
                return SMP_MGMT_ERR_EINVAL;

        if (!smp_cbor_slice_present(req.hash) || req.hash.len == 0) {
                if (!req.confirm)
                        return cmd_err(c, SMP_GROUP_IMAGE, SMP_IMG_ERR_INVALID_HASH);
                slot = 0; /* the running image */
        } else if (req.hash.len != 32)
                return cmd_err(c, SMP_GROUP_IMAGE, SMP_IMG_ERR_INVALID_HASH);
        else {
                /* img_mgmt_find_by_hash() looks through every image's slots */
                slot = sim_flash_find_hash(fl, req.hash.ptr);
                if (slot < 0 && c->d->params.two_images) {
                        fl = &c->d->flash_image1;
                        slot = sim_flash_find_hash(fl, req.hash.ptr);
                }
                if (slot < 0)
                        return cmd_err(c, SMP_GROUP_IMAGE, SMP_IMG_ERR_HASH_NOT_FOUND);
        }

        int rc = sim_flash_set_next_boot(fl, slot, req.confirm);
        if (rc != 0)
                return cmd_err(c, SMP_GROUP_IMAGE, (uint16_t) rc);
        save_trailers(c->d);
        dev_log(c->d, 1, "image %s slot %d", req.confirm ? "confirm" : "test", slot);
        return img_state_encode(c);
}

static void upload_reset(struct sim_device *d) {
        memset(&d->upload, 0, sizeof(d->upload));
}

static int upload_good_rsp(struct smp_ctx *c, bool last, bool match) {
        const struct sim_device *d = c->d;
        if (legacy_device(c)) {
                /* firmware before SMP v2 put "rc": 0 in upload answers
                 * (Zephyr keeps it as CONFIG_MCUMGR_SMP_LEGACY_RC_BEHAVIOUR) */
                smp_cbor_put_map(c->w, 2 + (last && d->params.image_check));
                smp_cbor_put_text(c->w, "rc");
                smp_cbor_put_uint(c->w, 0);
                smp_cbor_put_text(c->w, "off");
                smp_cbor_put_uint(c->w, d->upload.off);
                if (last && d->params.image_check) {
                        smp_cbor_put_text(c->w, "match");
                        smp_cbor_put_bool(c->w, match);
                }
                smp_cbor_put_end(c->w);
                return 0;
        }
        const struct smp_img_upload_rsp rsp = {
                .off = d->upload.off,
                .has_match = last && d->params.image_check,
                .match = match,
        };
        (void) smp_img_upload_rsp_encode(c->w, &rsp);
        return 0;
}

static bool slot_matches_sha(const struct sim_blob *b, size_t len, const uint8_t *sha, size_t sha_len) {
        uint8_t digest[SHA256_DIGEST_SIZE];
        if (!b || sha_len != SHA256_DIGEST_SIZE || b->len < len)
                return false;
        sha256_of(b->data, len, digest);
        return memcmp(digest, sha, sizeof(digest)) == 0;
}

/* Offsets reached by a chunk trigger the offset faults. */
static bool crosses(int64_t at, uint64_t off, size_t n) {
        return at >= 0 && off + n > (uint64_t) at;
}

static int img_upload(struct smp_ctx *c, const uint8_t *body, size_t len) {
        struct sim_device *d = c->d;
        struct sim_upload *u = &d->upload;
        struct smp_img_upload_req req;
        int r;

        r = smp_img_upload_req_decode(body, len, &req, NULL);
        if (r == -ENOENT) /* "off" is the one required field */
                return cmd_err(c, SMP_GROUP_IMAGE, SMP_IMG_ERR_INVALID_OFFSET);
        if (r < 0)
                return SMP_MGMT_ERR_EINVAL;
        size_t data_len = smp_cbor_slice_present(req.data) ? req.data.len : 0;
        /* a first chunk names the image ("image", 0 when absent); later
         * chunks go where the upload in progress goes (g_img_mgmt_state) */
        uint32_t image = req.off == 0 ? (req.has_image ? req.image : 0) : u->image;
        struct sim_flash *fl = image_flash(d, image);
        if (!fl)
                return cmd_err(c, SMP_GROUP_IMAGE, SMP_IMG_ERR_INVALID_SLOT);
        /* the device's own files hold image 0 only */
        bool persist = d->state_dir[0] && image == 0;

        if (req.off == 0) {
                /* img_mgmt_upload_inspect(), first chunk */
                if (data_len < MCUBOOT_HEADER_SIZE)
                        return cmd_err(c, SMP_GROUP_IMAGE, SMP_IMG_ERR_INVALID_IMAGE_HEADER);
                if (!req.has_len)
                        return cmd_err(c, SMP_GROUP_IMAGE, SMP_IMG_ERR_INVALID_LENGTH);
                if (unaligned_read_le32(req.data.ptr) != MCUBOOT_IMAGE_MAGIC)
                        return cmd_err(c, SMP_GROUP_IMAGE, SMP_IMG_ERR_INVALID_IMAGE_HEADER_MAGIC);
                size_t sha_len = smp_cbor_slice_present(req.sha) ? req.sha.len : 0;
                if (sha_len > sizeof(u->sha))
                        return cmd_err(c, SMP_GROUP_IMAGE, SMP_IMG_ERR_INVALID_HASH);
                if (sha_len > 0 && u->active && u->image == image && u->sha_len == sha_len &&
                    memcmp(u->sha, req.sha.ptr, sha_len) == 0) {
                        dev_log(d, 1, "upload resumed at %zu", u->off);
                        return upload_good_rsp(c, false, false);
                }
                if (sim_flash_slot_in_use(fl, 1))
                        return cmd_err(c, SMP_GROUP_IMAGE, SMP_IMG_ERR_NO_FREE_SLOT);
                if (req.len > d->params.slot_size)
                        return cmd_err(c, SMP_GROUP_IMAGE, SMP_IMG_ERR_INVALID_IMAGE_TOO_LARGE);
                if (req.has_upgrade && req.upgrade) {
                        struct sim_image_info running;
                        if (sim_flash_read_info(fl, 0, &running) < 0)
                                return cmd_err(c, SMP_GROUP_IMAGE, SMP_IMG_ERR_VERSION_GET_FAILED);
                        const uint8_t *h = req.data.ptr;
                        uint64_t new_v = ((uint64_t) h[20] << 48) | ((uint64_t) h[21] << 40) |
                                         ((uint64_t) unaligned_read_le16(h + 22) << 24);
                        uint64_t cur_v = ((uint64_t) running.major << 48) | ((uint64_t) running.minor << 40) |
                                         ((uint64_t) running.revision << 24);
                        if (cur_v >= new_v)
                                return cmd_err(c, SMP_GROUP_IMAGE, SMP_IMG_ERR_CURRENT_VERSION_IS_NEWER);
                }

                upload_reset(d);
                u->size = (size_t) req.len;
                u->image = image;
                u->sha_len = sha_len;
                if (sha_len)
                        memcpy(u->sha, req.sha.ptr, sha_len);

                /* CONFIG_IMG_ENABLE_IMAGE_CHECK: the slot already holds
                 * exactly this file, nothing to upload */
                if (d->params.image_check && slot_matches_sha(fl->slot[1].blob, u->size, u->sha, u->sha_len) &&
                    fl->slot[1].blob->len == u->size) {
                        u->off = u->size;
                        upload_good_rsp(c, true, true);
                        upload_reset(d);
                        return 0;
                }

                struct sim_blob *b = sim_blob_new(u->size);
                if (!b)
                        return cmd_err(c, SMP_GROUP_IMAGE, SMP_IMG_ERR_NO_FREE_MEMORY);
                sim_flash_erase(fl, 1);
                fl->slot[1].blob = b;
                u->active = true;
                c->reply->work_us += rate_us(u->size, d->params.erase_rate);
                if (persist) {
                        (void) sim_flash_save_slot_range(fl, d->state_dir, 1, 0, 0);
                        save_trailers(d);
                }
                dev_log(d, 1, "upload started: %zu bytes", u->size);
        } else {
                /* continuation: a wrong offset is answered with ours */
                if (!u->active || req.off != u->off)
                        return upload_good_rsp(c, false, false);
                if (req.off + data_len > u->size) {
                        upload_reset(d);
                        return cmd_err(c, SMP_GROUP_IMAGE, SMP_IMG_ERR_INVALID_IMAGE_DATA_OVERRUN);
                }
        }

        /* faults tied to upload offsets */
        struct sim_faults *f = &d->faults;
        if (crosses(f->silent_at, u->off, data_len)) {
                c->reply->action = SIM_SMP_GO_SILENT;
                return 0;
        }
        if (!f->drop_fired && crosses(f->drop_at, u->off, data_len)) {
                f->drop_fired = true;
                c->reply->action = SIM_SMP_LINK_DOWN;
                return 0;
        }
        if (!f->reboot_fired && crosses(f->reboot_at, u->off, data_len)) {
                f->reboot_fired = true;
                if (f->reboot_keep) {
                        /* what reached flash before the reboot stays */
                        size_t keep = (size_t) f->reboot_at - u->off;
                        memcpy(fl->slot[1].blob->data + u->off, req.data.ptr, keep);
                        if (persist)
                                (void) sim_flash_save_slot_range(fl, d->state_dir, 1, u->off, keep);
                } else {
                        sim_flash_erase(fl, 1);
                        if (persist)
                                (void) sim_flash_save(fl, d->state_dir);
                }
                c->reply->action = SIM_SMP_REBOOT_NOW;
                return 0;
        }

        /* MCUboot's serial recovery drops the bytes past the flash write
         * alignment of a chunk that does not end the image, and asks for
         * them again with the offset it answers (boot_serial.c) */
        if (d->params.write_align > 1 && u->off + data_len < u->size)
                data_len -= data_len % d->params.write_align;
        /* the chunk is written and its answer lost on the way (fault
         * lose-answer-at): what the device did stands */
        bool lose_answer = !f->lose_answer_fired && f->lose_answer_at >= 0 && u->off < (uint64_t) f->lose_answer_at &&
                           u->off + data_len >= (uint64_t) f->lose_answer_at;
        if (lose_answer) {
                f->lose_answer_fired = true;
                dev_log(d, 1, "fault: the answer to the chunk reaching %" PRIi64 " is lost", f->lose_answer_at);
        }
        if (data_len > 0) {
                memcpy(fl->slot[1].blob->data + u->off, req.data.ptr, data_len);
                if (persist)
                        (void) sim_flash_save_slot_range(fl, d->state_dir, 1, u->off, data_len);
                u->off += data_len;
                d->stats.upload_bytes += data_len;
                c->reply->upload_reached = u->off;
                c->reply->work_us += rate_us(data_len, d->params.flash_rate);
        }

        if (u->off == u->size) {
                bool match = slot_matches_sha(fl->slot[1].blob, u->size, u->sha, u->sha_len);
                dev_log(d, 1, "upload complete: %zu bytes, sha %s", u->size, match ? "matches" : "does not match");
                upload_good_rsp(c, true, match);
                upload_reset(d);
                if (lose_answer)
                        c->reply->action = SIM_SMP_DROP;
                return 0;
        }
        if (lose_answer)
                c->reply->action = SIM_SMP_DROP;
        return upload_good_rsp(c, false, false);
}

static int img_erase(struct smp_ctx *c, const uint8_t *body, size_t len) {
        struct smp_img_erase_req req = { 0 };
        struct sim_device *d = c->d;

        if (len > 0 && smp_img_erase_req_decode(body, len, &req, NULL) < 0)
                return SMP_MGMT_ERR_EINVAL;
        uint32_t slot = req.has_slot ? req.slot : 1;
        if (slot > 1)
                return cmd_err(c, SMP_GROUP_IMAGE, SMP_IMG_ERR_INVALID_SLOT);
        if (sim_flash_slot_in_use(&d->flash, (int) slot))
                return cmd_err(c, SMP_GROUP_IMAGE, SMP_IMG_ERR_NO_FREE_SLOT);

        sim_flash_erase(&d->flash, (int) slot);
        upload_reset(d);
        c->reply->work_us += rate_us(d->params.slot_size, d->params.erase_rate);
        if (d->state_dir[0])
                (void) sim_flash_save(&d->flash, d->state_dir);
        dev_log(d, 1, "slot %u erased", slot);
        return ok_empty(c);
}

static int img_slot_info(struct smp_ctx *c, const uint8_t *body, size_t len) {
        struct smp_img_slot_info_rsp rsp = { .n_images = c->d->params.two_images ? 2 : 1 };
        for (uint32_t i = 0; i < rsp.n_images; i++)
                rsp.images[i] = (struct smp_img_slot_info_image) {
                        .image = i,
                        .n_slots = 2,
                        .slots = {
                                { .slot = 0, .size = c->d->params.slot_size },
                                /* uploads go to the slot that is not running */
                                { .slot = 1, .size = c->d->params.slot_size,
                                  .has_upload_image_id = true, .upload_image_id = i },
                        },
                };
        (void) smp_img_slot_info_rsp_encode(c->w, &rsp);
        return 0;
}

/* -------------------------------------------------------------- stat */

static const char *const stat_groups[] = { "smp", "flash", "boot" };

static int stat_list(struct smp_ctx *c, const uint8_t *body, size_t len) {
        struct smp_cbor_slice names[ELEMENTSOF(stat_groups)];
        for (size_t i = 0; i < ELEMENTSOF(stat_groups); i++)
                names[i] = smp_cbor_slice_str(stat_groups[i]);
        const struct smp_stat_list_rsp rsp = { .names = names, .n_names = ELEMENTSOF(names) };
        (void) smp_stat_list_rsp_encode(c->w, &rsp);
        return 0;
}

static int stat_read(struct smp_ctx *c, const uint8_t *body, size_t len) {
        const struct sim_stats *s = &c->d->stats;
        struct smp_cbor_slice name;

        if (smp_stat_read_req_decode(body, len, &name, NULL) < 0)
                return SMP_MGMT_ERR_EINVAL;

        struct smp_stat_field fields[8];
        size_t n = 0;
#define FIELD(k, v) fields[n++] = (struct smp_stat_field) { SMP_CBOR_SLICE_LIT(k), (v) }
        if (smp_cbor_slice_eq(name, "smp")) {
                FIELD("rx_packets", s->rx_packets);
                FIELD("tx_packets", s->tx_packets);
                FIELD("rx_bytes", s->rx_bytes);
                FIELD("tx_bytes", s->tx_bytes);
                FIELD("dropped", s->dropped_loss + s->dropped_mtu + s->dropped_netbuf + s->dropped_too_big);
        } else if (smp_cbor_slice_eq(name, "flash")) {
                FIELD("bytes_written", s->upload_bytes);
        } else if (smp_cbor_slice_eq(name, "boot")) {
                FIELD("count", c->d->boot_count);
                FIELD("resets", s->resets);
        } else
                return cmd_err(c, SMP_GROUP_STAT, SMP_STAT_ERR_INVALID_GROUP);
#undef FIELD
        const struct smp_stat_read_rsp rsp = { .name = name, .fields = fields, .n_fields = n };
        (void) smp_stat_read_rsp_encode(c->w, &rsp);
        return 0;
}

/* ------------------------------------------------------------- shell */

static int shell_exec(struct smp_ctx *c, const uint8_t *body, size_t len) {
        struct sim_shell_answer a;

        sim_shell_exec(c->d, body, len, &a);
        if (a.mgmt_rc > 0)
                return a.mgmt_rc;
        if (a.group_rc > 0)
                return cmd_err(c, SMP_GROUP_SHELL, (uint16_t) a.group_rc);
        const struct smp_shell_exec_rsp rsp = {
                .output = smp_cbor_slice_make(a.out ? a.out : "", a.out_len),
                .ret = a.ret,
                .legacy_rc = a.legacy_rc,
        };
        (void) smp_shell_exec_rsp_encode(c->w, &rsp);
        sim_shell_answer_done(&a);
        return 0;
}

/* ---------------------------------------------------------- dispatch */

static const struct {
        uint16_t group;
        uint8_t id;
        smp_handler_fn read, write;
} handlers[] = {
        { SMP_GROUP_OS, SMP_OS_CMD_ECHO, os_echo, os_echo },
        { SMP_GROUP_OS, SMP_OS_CMD_TASKSTAT, os_taskstat, NULL },
        { SMP_GROUP_OS, SMP_OS_CMD_DATETIME, os_datetime_get, os_datetime_set },
        { SMP_GROUP_OS, SMP_OS_CMD_RESET, NULL, os_reset },
        { SMP_GROUP_OS, SMP_OS_CMD_MCUMGR_PARAMS, os_params, NULL },
        { SMP_GROUP_OS, SMP_OS_CMD_INFO, os_info, NULL },
        { SMP_GROUP_OS, SMP_OS_CMD_BOOTLOADER_INFO, os_bootloader_info, NULL },
        { SMP_GROUP_IMAGE, SMP_IMG_CMD_STATE, img_state_read, img_state_write },
        { SMP_GROUP_IMAGE, SMP_IMG_CMD_UPLOAD, NULL, img_upload },
        { SMP_GROUP_IMAGE, SMP_IMG_CMD_ERASE, NULL, img_erase },
        { SMP_GROUP_IMAGE, SMP_IMG_CMD_SLOT_INFO, img_slot_info, NULL },
        { SMP_GROUP_STAT, SMP_STAT_CMD_READ, stat_read, NULL },
        { SMP_GROUP_STAT, SMP_STAT_CMD_LIST, stat_list, NULL },
        { SMP_GROUP_SHELL, SMP_SHELL_CMD_EXEC, NULL, shell_exec },
};

static int reply_append(struct sim_smp_reply *r, const struct smp_header *hdr, const uint8_t *body, size_t len) {
        if (r->n_frames >= SIM_SMP_MAX_FRAMES)
                return -ENOBUFS;
        size_t need = r->len + SMP_HEADER_SIZE + len;
        if (need > r->cap) {
                uint8_t *p = realloc(r->data, need);
                if (!p)
                        return -ENOMEM;
                r->data = p;
                r->cap = need;
        }
        int n = smp_frame_build(hdr, body, len, r->data + r->len, r->cap - r->len);
        if (n < 0)
                return n;
        r->len += (size_t) n;
        r->frame_end[r->n_frames++] = r->len;
        return 0;
}

/* smp_on_err(): the request's header with the response op, {"rc": rc}. */
static void reply_error(struct sim_device *d, struct sim_smp_reply *reply, struct smp_header *rsp_hdr, int rc) {
        uint8_t body[16];
        struct smp_cbor_writer w;
        smp_cbor_writer_init(&w, body, sizeof(body));
        w.indefinite = d->params.smp_version >= 2;
        (void) smp_status_encode_v1(&w, rc, NULL);
        int n = smp_cbor_writer_finish(&w);
        if (n >= 0)
                (void) reply_append(reply, rsp_hdr, body, (size_t) n);
}

void sim_smp_refuse(struct sim_device *d, const uint8_t *pkt, size_t len, int rc, struct sim_smp_reply *reply) {
        *reply = (struct sim_smp_reply) { .action = SIM_SMP_ANSWER };
        if (len < SMP_HEADER_SIZE)
                return;
        bool legacy = d->params.smp_version < 2;
        uint8_t version = (pkt[0] >> 3) & 0x03, op = pkt[0] & 0x07;
        struct smp_header rsp = {
                .op = op == SMP_OP_READ ? SMP_OP_READ_RSP : SMP_OP_WRITE_RSP,
                .version = legacy ? SMP_VERSION_1 : MIN(version, (uint8_t) SMP_VERSION_2),
                .group = unaligned_read_be16(pkt + 4),
                .seq = pkt[6],
                .id = pkt[7],
        };
        reply_error(d, reply, &rsp, rc);
}

void sim_smp_process(struct sim_device *d, const uint8_t *pkt, size_t len, struct sim_smp_reply *reply) {
        size_t off = 0;
        bool legacy = d->params.smp_version < 2;

        *reply = (struct sim_smp_reply) { .action = SIM_SMP_ANSWER };

        if (sim_rng_chance(&d->rng, d->faults.drop_p)) {
                reply->action = SIM_SMP_DROP;
                return;
        }
        if (sim_rng_chance(&d->rng, d->faults.silent_p)) {
                reply->action = SIM_SMP_GO_SILENT;
                return;
        }

        /* the answer must fit a netbuf like the request did */
        size_t body_cap = d->params.buf_size > SMP_HEADER_SIZE ? d->params.buf_size - SMP_HEADER_SIZE : 0;
        _cleanup_free_ uint8_t *body_buf = malloc(body_cap ? body_cap : 1);
        if (!body_buf)
                return;

        while (off + SMP_HEADER_SIZE <= len && reply->action == SIM_SMP_ANSWER) {
                const uint8_t *h = pkt + off;
                /* Read the header by hand: a reserved version must still get
                 * an answer (rc 13), and legacy firmware ignores those bits. */
                struct smp_header req = {
                        .op = h[0] & 0x07,
                        .version = (h[0] >> 3) & 0x03,
                        .flags = h[1],
                        .len = unaligned_read_be16(h + 2),
                        .group = unaligned_read_be16(h + 4),
                        .seq = h[6],
                        .id = h[7],
                };
                struct smp_header rsp = req;
                rsp.flags = 0;
                rsp.op = req.op == SMP_OP_READ ? SMP_OP_READ_RSP : SMP_OP_WRITE_RSP;
                rsp.version = legacy ? SMP_VERSION_1 : MIN(req.version, (uint8_t) SMP_VERSION_2);
                if (legacy)
                        req.version = SMP_VERSION_1;

                if ((size_t) req.len > len - off - SMP_HEADER_SIZE) {
                        reply_error(d, reply, &rsp, SMP_MGMT_ERR_ECORRUPT);
                        break;
                }
                const uint8_t *body = h + SMP_HEADER_SIZE;
                off += SMP_HEADER_SIZE + req.len;

                if (!legacy && req.version > SMP_VERSION_2) {
                        reply_error(d, reply, &rsp, SMP_MGMT_ERR_UNSUPPORTED_TOO_NEW);
                        break;
                }
                if (!smp_op_is_request(req.op)) {
                        reply_error(d, reply, &rsp, SMP_MGMT_ERR_EINVAL);
                        break;
                }

                smp_handler_fn fn = NULL;
                for (size_t i = 0; i < ELEMENTSOF(handlers); i++)
                        if (handlers[i].group == req.group && handlers[i].id == req.id)
                                fn = req.op == SMP_OP_READ ? handlers[i].read : handlers[i].write;
                if (!fn) {
                        reply_error(d, reply, &rsp, SMP_MGMT_ERR_ENOTSUP);
                        break;
                }

                struct smp_cbor_writer w;
                smp_cbor_writer_init(&w, body_buf, body_cap);
                /* zcbor writes maps and lists with indefinite lengths unless
                 * CONFIG_ZCBOR_CANONICAL; old firmware (tinycbor) did not */
                w.indefinite = !legacy;
                struct smp_ctx c = { .d = d, .req = &req, .w = &w, .reply = reply };
                int rc = fn(&c, body, req.len);
                if (reply->action != SIM_SMP_ANSWER)
                        break;
                if (rc == 0 && smp_cbor_writer_finish(&w) < 0)
                        rc = SMP_MGMT_ERR_EMSGSIZE; /* the answer does not fit a netbuf */
                if (rc != 0) {
                        reply_error(d, reply, &rsp, rc);
                        break;
                }
                if (reply_append(reply, &rsp, body_buf, (size_t) smp_cbor_writer_finish(&w)) < 0)
                        break;
                dev_log(d, 2, "group %u id %u op %u seq %u: answered", req.group, req.id, req.op, req.seq);
        }
}
