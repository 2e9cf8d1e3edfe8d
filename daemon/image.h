/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An image: a validated MCUboot image file in the image store, named by
 * its id, the hex of its SHA256 TLV (the hash devices report for their
 * slots).  image.c is the object (lookups, mapping), image-store.c the
 * store (validating, storing, removing files).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model-index.h"
#include "smpgw/mesh-dfu.h"
#include "smpgwd-limits.h"

struct config;
struct manager;
struct mcuboot_key;

struct image {
        struct manager *manager;
        char id[IMAGE_ID_LEN + 1];    /* hex image hash (SHA256 TLV) */
        char *name;                   /* given name (file name), may be NULL */
        char version[32];             /* "1.2.3+4" */
        uint64_t file_size;
        uint32_t image_size;          /* the header's img_size */
        char file_sha256[65];         /* hex SHA-256 of the whole file */
        bool signed_;                 /* a signature verified with a configured key */
        char *key;                    /* that key's label, may be NULL */
        uint64_t added_usec;
        /* The boards it is built for (image-boards.h), as the operator
         * declared them; none: any board. */
        char **boards;
        size_t n_boards;
        /* The Bluetooth Mesh composition of the firmware in it (hash of
         * its Composition Data Page 0, element count), as the operator
         * declared it; a distribution sends it to targets in the
         * firmware metadata (doc/mesh-dfu.md).  None until declared: a
         * hash of 0 is a hash like any other. */
        bool has_mesh_composition;
        struct smp_mesh_composition mesh_composition;
        char *path;                   /* <state dir>/images/<id>.img */

        /* runtime: a read-only mapping shared by the jobs pushing it */
        unsigned n_map;
        void *map;
        size_t map_len;
        UT_hash_handle hh;             /* the manager's index (model-index.h) */
};

/* NULL is fine; the image must not be attached any more. */
struct image *image_free(struct image *img);

/* By its whole id, in either case. */
struct image *manager_find_image(struct manager *m, const char *id);

/* Clients name an image by its id or a prefix of it (smpgwd-limits.h).
 * ref is hex, IMAGE_ID_PREFIX_MIN..IMAGE_ID_LEN digits. */
bool image_ref_is_valid(const char *ref);
/* The stored image ref names.  -EINVAL: ref is not of that shape;
 * -ENOENT: no stored image; -ENOTUNIQ: the prefix fits more than one. */
int manager_lookup_image(struct manager *m, const char *ref, struct image **ret);
/* The image hash a filter names (?image=): a whole hash as it is (lower
 * case), a prefix resolved among every hash the gateway knows: stored
 * images, the images of jobs, the slots of devices.  Errors as
 * manager_lookup_image(). */
int manager_resolve_image_hash(struct manager *m, const char *ref, char ret_hash[static IMAGE_ID_LEN + 1]);
/* Creates images_dir, removes stray temporary files, and drops (with a
 * warning and a history row) image records whose file is gone.  Called by
 * manager_start() after db_load(). */
int image_store_init(struct manager *m);
/* (Re)loads config.image_keys into m->keys; on error the old keys stay. */
int image_store_load_keys(struct manager *m);
/* The two halves of it, for a reload that must read every file of the
 * new configuration before it puts any of it in place: reads and parses
 * c->image_keys (each failure logged with the file), then hands them to
 * m, freeing the old ones. */
int image_store_read_keys(const struct config *c, struct mcuboot_key ***ret_keys, size_t *ret_n_keys);
void image_store_install_keys(struct manager *m, struct mcuboot_key **keys, size_t n_keys);
void image_keys_free(struct mcuboot_key **keys, size_t n_keys);
/* An unnamed temporary file in the image store directory (O_TMPFILE), to
 * stream an upload into without holding it in memory. */
int image_store_open_tmp(struct manager *m, int *ret_fd);
/* Reads an image from fd (at most config.image_max_size bytes; a store
 * temporary file is used in place, anything else is copied into one),
 * validates it (MCUboot header and TLVs, hash, signature against the
 * configured keys, required when keys are configured), stores it as
 * images/<id>.img (write, fsync, rename, fsync dir) and records it.
 * *ret_created is false when the same image was stored already.
 * Errors, with *ret_reason set to a sentence: -EFBIG too large,
 * -EBADMSG not a valid MCUboot image, -EKEYREJECTED no valid signature,
 * -E2BIG config.max_images reached; others are I/O errors. */
int image_store_add_fd(struct manager *m, int fd, const char *name, struct image **ret, bool *ret_created,
                       char **ret_reason);
/* Replaces the boards the image declares (image-boards.h), written to
 * the database before they are taken; an IMAGE_CHANGED event when they
 * changed.  1 changed, 0 the same list; -EINVAL with *ret_index the
 * first invalid name, -E2BIG more than IMAGE_BOARDS_MAX. */
int image_store_set_boards(struct manager *m, struct image *img, const char *const *boards, size_t n,
                           size_t *ret_index);
/* Declares (comp) or clears (NULL) the image's mesh composition, written
 * to the database before it is taken; an IMAGE_CHANGED event when it
 * changed.  Returns 1 when it changed, 0 when it was so already;
 * -EINVAL for an element count of 0. */
int image_store_set_mesh_composition(struct manager *m, struct image *img, const struct smp_mesh_composition *comp);
/* -EBUSY while a job that is not finished uses it. */
int image_store_remove(struct manager *m, struct image *img);
/* Maps the file read-only (shared by every user); unmap when done. */
int image_map(struct image *img, const uint8_t **ret_data, size_t *ret_len);
void image_unmap(struct image *img);
bool image_in_use(struct manager *m, const struct image *img);
