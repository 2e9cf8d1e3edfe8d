/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The simulator's view of images, on top of libsmpgw's MCUboot parser. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/mcuboot-image.h"
#include "sim-mcuboot.h"
#include "util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct mcuboot_image *, mcuboot_image_free);

/* Zephyr's img_mgmt_read_info() reads the header and the TLVs and wants
 * exactly one 32-byte SHA256 TLV; it does not check the hash itself. */
int sim_image_read_info(const uint8_t *data, size_t len, struct sim_image_info *ret) {
        _cleanup_(mcuboot_image_freep) struct mcuboot_image *img = NULL;
        int r;

        r = mcuboot_image_parse(data, len, &img, NULL);
        if (r < 0)
                return r;
        if (!img->sha256_tlv)
                return -ENOENT;
        *ret = (struct sim_image_info) {
                .major = img->version.major,
                .minor = img->version.minor,
                .revision = img->version.revision,
                .build = img->version.build,
                .flags = img->flags,
        };
        memcpy(ret->hash, img->sha256_tlv, 32);
        return 0;
}

/* MCUboot's boot_image_check() without keys: the hash TLV must match the
 * digest of header, body and protected TLVs. */
bool sim_image_valid(const uint8_t *data, size_t len) {
        _cleanup_(mcuboot_image_freep) struct mcuboot_image *img = NULL;

        if (mcuboot_image_parse(data, len, &img, NULL) < 0)
                return false;
        return img->hash_status == MCUBOOT_HASH_MATCH && img->sha256_tlv;
}

int sim_image_build_default(struct sim_blob **ret) {
        /* 8 KiB of a fixed pseudo-random body: every smpsim builds the
         * same image, so its hash is stable across runs. */
        enum { BODY = 8192 };
        _cleanup_free_ uint8_t *body = malloc(BODY);
        _cleanup_free_ uint8_t *data = NULL;
        size_t size;
        uint64_t x = 0x736d7073696d0001ULL; /* "smpsim" */
        int r;

        if (!body)
                return -ENOMEM;
        for (size_t i = 0; i < BODY; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                body[i] = (uint8_t) x;
        }
        const struct mcuboot_build_params params = {
                .version = { .major = 1, .minor = 0, .revision = 0, .build = 0 },
                .hdr_size = 0x200,
                .body = body,
                .body_size = BODY,
        };
        r = mcuboot_image_build(&params, &data, &size);
        if (r < 0)
                return r;
        struct sim_blob *b = sim_blob_new(size);
        if (!b)
                return -ENOMEM;
        memcpy(b->data, data, size);
        *ret = b;
        return 0;
}
