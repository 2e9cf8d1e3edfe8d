/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A simulated MCUboot device flash: a primary slot (the running image) and
 * a secondary slot (where uploads go), each with the trailer fields MCUboot
 * keeps at the slot end (magic, image_ok, copy_done), and MCUboot's
 * swap-mode boot decision over them (MCUboot docs/design.md, "Swap
 * types"; Zephyr img_mgmt_state.c for how mcumgr reports them).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reference-counted slot contents, so that 1,000 devices running the same
 * image hold one copy of it. */
struct sim_blob {
        unsigned refs;
        size_t len;
        uint8_t data[];
};

struct sim_blob *sim_blob_new(size_t len);       /* filled with 0xff (erased flash) */
struct sim_blob *sim_blob_ref(struct sim_blob *b);
/* Reads a whole file of at most max_size bytes. */
int sim_blob_load_file(const char *path, size_t max_size, struct sim_blob **ret);
struct sim_blob *sim_blob_unref(struct sim_blob *b);

struct sim_slot {
        struct sim_blob *blob;   /* NULL: erased */
        /* MCUboot image trailer */
        bool magic;
        bool image_ok;
        bool copy_done;
};

enum sim_swap_type {
        SIM_SWAP_NONE,
        SIM_SWAP_TEST,    /* secondary marked for one test boot */
        SIM_SWAP_PERM,    /* secondary marked for a permanent swap */
        SIM_SWAP_REVERT,  /* running a test image that was not confirmed */
};

/* What mcumgr reads from a slot (Zephyr img_mgmt_read_info): a header with
 * the right magic and exactly one SHA256 TLV. */
struct sim_image_info {
        uint8_t major, minor;
        uint16_t revision;
        uint32_t build;
        uint32_t flags;          /* MCUboot header flags */
        uint8_t hash[32];        /* the SHA256 TLV */
};

struct sim_flash {
        struct sim_slot slot[2];
        size_t slot_size;
};

/* How the last boot went, for logs and the control socket. */
enum sim_boot_result {
        SIM_BOOT_NORMAL,
        SIM_BOOT_SWAPPED_TEST,
        SIM_BOOT_SWAPPED_PERM,
        SIM_BOOT_REVERTED,
        SIM_BOOT_REJECTED,       /* secondary failed validation and was erased */
};

const char *sim_boot_result_to_string(enum sim_boot_result r);
const char *sim_swap_type_to_string(enum sim_swap_type t);

void sim_flash_init(struct sim_flash *f, size_t slot_size, struct sim_blob *primary);
void sim_flash_done(struct sim_flash *f);

/* Slot contents readable as an image?  0 with *ret filled, or a negative
 * errno when the slot is erased or not a readable image. */
int sim_flash_read_info(const struct sim_flash *f, int slot, struct sim_image_info *ret);

/* MCUboot's boot_swap_type() for the current trailers. */
enum sim_swap_type sim_flash_swap_type(const struct sim_flash *f);

/* Which slot boots next and how (Zephyr img_mgmt_get_next_boot_slot for
 * swap modes): type is NORMAL(=SIM_SWAP_NONE or PERM), TEST or REVERT. */
int sim_flash_next_boot_slot(const struct sim_flash *f, enum sim_swap_type *ret_type);

/* Zephyr's image state flags for a slot (img_mgmt_state_read). */
#define SIM_SLOT_F_PENDING   0x01
#define SIM_SLOT_F_CONFIRMED 0x02
#define SIM_SLOT_F_ACTIVE    0x04
#define SIM_SLOT_F_PERMANENT 0x08
unsigned sim_flash_slot_flags(const struct sim_flash *f, int slot);

/* Zephyr img_mgmt_slot_in_use(): the slot may not be erased or uploaded to. */
bool sim_flash_slot_in_use(const struct sim_flash *f, int slot);

/* Finds the slot whose image has this SHA256 TLV; -ENOENT if none. */
int sim_flash_find_hash(const struct sim_flash *f, const uint8_t hash[32]);

/* Zephyr img_mgmt_set_next_boot_slot(): returns 0 or a positive image
 * group error code (IMG_MGMT_ERR_*). */
int sim_flash_set_next_boot(struct sim_flash *f, int slot, bool confirm);

/* Erases a slot: contents and trailer. */
void sim_flash_erase(struct sim_flash *f, int slot);

/* MCUboot at boot: perform the swap the trailers ask for, validating the
 * image to be booted; reject forces validation to fail (fault "reject"). */
enum sim_boot_result sim_flash_boot(struct sim_flash *f, bool reject);

/* Zephyr img_mgmt_read_info() over a slot's bytes (sim-image.c). */
int sim_image_read_info(const uint8_t *data, size_t len, struct sim_image_info *ret);

/* Does the image validate the way MCUboot checks it (hash TLV matches the
 * SHA-256 of header, body and protected TLVs)? */
bool sim_image_valid(const uint8_t *data, size_t len);

/* Version string as Zephyr's img_mgmt_ver_str(): "1.2.3", and ".4" when
 * the build number is not 0. */
void sim_image_version_string(const struct sim_image_info *info, char *buf, size_t size);

/* Persistence in DIR/dev-NNNN/: slot0.bin, slot1.bin, trailer. */
int sim_flash_save(const struct sim_flash *f, const char *dir);
int sim_flash_save_trailers(const struct sim_flash *f, const char *dir);
int sim_flash_save_slot_range(const struct sim_flash *f, const char *dir, int slot, size_t off, size_t len);
int sim_flash_load(struct sim_flash *f, const char *dir);

static inline void sim_blob_unrefp(struct sim_blob **b) {
        sim_blob_unref(*b);
}

/* Builds the image a device runs when none is given: version 1.0.0,
 * unsigned, with a valid SHA256 TLV (sim-image.c). */
int sim_image_build_default(struct sim_blob **ret);
