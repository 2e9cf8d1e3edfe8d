/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Image management group (1): bodies of state read/write, upload, erase
 * and slot info, in both directions, and the exact upload chunk size for
 * a frame budget.  Conventions (writers, ownership, errors, -EREMOTEIO for
 * reported failures): see smp-os.h.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <smpgw/smp-cbor.h>

#ifdef __cplusplus
extern "C" {
#endif

enum smp_img_cmd {
        SMP_IMG_CMD_STATE = 0,
        SMP_IMG_CMD_UPLOAD = 1,
        SMP_IMG_CMD_FILE = 2,
        SMP_IMG_CMD_CORELIST = 3,
        SMP_IMG_CMD_CORELOAD = 4,
        SMP_IMG_CMD_ERASE = 5,
        SMP_IMG_CMD_SLOT_INFO = 6,
};

/* Entries accepted in a state list or slot-info answer.  Zephyr lists two
 * slots per updatable image and supports a handful of images; a longer
 * list is refused (-E2BIG) rather than truncated. */
#define SMP_IMG_MAX_IMAGES 16
#define SMP_IMG_MAX_SLOTS 4
/* Longest "hash" accepted in a state list: SHA-256 TLVs are 32 bytes, the
 * bound leaves room for SHA-384/512 builds. */
#define SMP_IMG_HASH_MAX 64
/* Longest upload "sha" Zephyr accepts (longer -> IMG_INVALID_HASH). */
#define SMP_IMG_UPLOAD_SHA_MAX 32

/* One entry of {"images": [...]}.  Missing flags decode as false ("frugal"
 * Zephyr builds leave out false flags); a missing "image" as 0. */
struct smp_img_slot_state {
        bool has_image;
        uint32_t image;
        uint32_t slot;
        struct smp_cbor_slice version;  /* "maj.min.rev[.build]" */
        struct smp_cbor_slice hash;     /* 1..SMP_IMG_HASH_MAX bytes */
        bool bootable;
        bool pending;
        bool confirmed;
        bool active;
        bool permanent;
};

/* Answer of state read (id 0, op read {}) and state write. */
struct smp_img_state_rsp {
        struct smp_img_slot_state images[SMP_IMG_MAX_IMAGES];
        size_t n_images;
        bool has_split_status;
        int64_t split_status;
        /* Encoding only: leave out false flags and write "image" only when
         * has_image, like Zephyr's frugal list. */
        bool frugal;
};

int smp_img_state_rsp_encode(struct smp_cbor_writer *w, const struct smp_img_state_rsp *rsp);
int smp_img_state_rsp_decode(const uint8_t *body, size_t len, struct smp_img_state_rsp *ret,
                             struct smp_cbor_error *error);

/* State write (id 0, op write): {"hash"?: bstr, "confirm": bool}.
 * test = confirm false + hash; confirm running image = confirm true, no
 * hash.  The decoder does not judge the hash length: Zephyr answers a
 * wrong one with IMG_INVALID_HASH, which is the server's business. */
struct smp_img_state_write_req {
        struct smp_cbor_slice hash;  /* absent: ptr NULL */
        bool confirm;
};

int smp_img_state_write_req_encode(struct smp_cbor_writer *w, const struct smp_img_state_write_req *req);
int smp_img_state_write_req_decode(const uint8_t *body, size_t len, struct smp_img_state_write_req *ret,
                                   struct smp_cbor_error *error);

/* Upload (id 1, op write).  off and data go in every chunk; len (required
 * by Zephyr), image, sha and upgrade only in the chunk at offset 0. */
struct smp_img_upload_req {
        uint64_t off;
        struct smp_cbor_slice data;   /* absent (decode only): ptr NULL */
        bool has_len;
        uint64_t len;
        bool has_image;
        uint32_t image;
        struct smp_cbor_slice sha;    /* absent: ptr NULL; <= 32 bytes to encode */
        bool has_upgrade;
        bool upgrade;
};

/* Key order: off, data, len, image, sha, upgrade.  -EINVAL for a sha
 * longer than SMP_IMG_UPLOAD_SHA_MAX. */
int smp_img_upload_req_encode(struct smp_cbor_writer *w, const struct smp_img_upload_req *req);
/* Missing "off" is -ENOENT (Zephyr answers IMG_INVALID_OFFSET); nothing
 * else is required at this level: the server checks first-chunk rules. */
int smp_img_upload_req_decode(const uint8_t *body, size_t len, struct smp_img_upload_req *ret,
                              struct smp_cbor_error *error);

/* Answer {"off": next expected offset, "match"?: bool} (an "rc": 0 of
 * legacy builds is fine). */
struct smp_img_upload_rsp {
        uint64_t off;
        bool has_match;
        bool match;
};

int smp_img_upload_rsp_encode(struct smp_cbor_writer *w, const struct smp_img_upload_rsp *rsp);
int smp_img_upload_rsp_decode(const uint8_t *body, size_t len, struct smp_img_upload_rsp *ret,
                              struct smp_cbor_error *error);

/* Bytes of image data that fit one upload request: the largest n such that
 * 8 (SMP header) + the CBOR body of *req with n data bytes <= frame_budget.
 * req->data is ignored; every other field counts exactly as
 * smp_img_upload_req_encode() writes it (all heads, including the data
 * bstr head growing at 24/256/65536/2^32).  The budget is capped at the
 * largest frame (SMP_FRAME_MAX).  The caller clamps the result to what is
 * left of the image.  Returns 0 with *ret_data_len, -EMSGSIZE when not
 * even an empty data string fits, -EINVAL for a bad request. */
int smp_img_upload_max_data(const struct smp_img_upload_req *req, size_t frame_budget,
                            size_t *ret_data_len);

/* Erase (id 5, op write): {"slot"?: uint} -> {}.  Zephyr's default slot
 * is 1. */
struct smp_img_erase_req {
        bool has_slot;
        uint32_t slot;
};

int smp_img_erase_req_encode(struct smp_cbor_writer *w, const struct smp_img_erase_req *req);
int smp_img_erase_req_decode(const uint8_t *body, size_t len, struct smp_img_erase_req *ret,
                             struct smp_cbor_error *error);

/* Slot info (id 6, op read {}):
 * {"images": [{"image", "slots": [{"slot", "size", "upload_image_id"?}],
 *              "max_image_size"?}]}
 * A slot whose flash area Zephyr cannot open is {"slot", "rc"}: no size,
 * the (negative) error of flash_area_open() instead (img_mgmt_slot_info()). */
struct smp_img_slot_info {
        uint32_t slot;
        uint64_t size; /* 0 when has_rc */
        bool has_rc;
        int32_t rc;
        bool has_upload_image_id;
        uint32_t upload_image_id;
};

struct smp_img_slot_info_image {
        uint32_t image;
        struct smp_img_slot_info slots[SMP_IMG_MAX_SLOTS];
        size_t n_slots;
        bool has_max_image_size;
        uint64_t max_image_size;
};

struct smp_img_slot_info_rsp {
        struct smp_img_slot_info_image images[SMP_IMG_MAX_IMAGES];
        size_t n_images;
};

int smp_img_slot_info_rsp_encode(struct smp_cbor_writer *w, const struct smp_img_slot_info_rsp *rsp);
int smp_img_slot_info_rsp_decode(const uint8_t *body, size_t len, struct smp_img_slot_info_rsp *ret,
                                 struct smp_cbor_error *error);

#ifdef __cplusplus
}
#endif
