/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * MCUboot swap-mode semantics over two in-memory slots, and what Zephyr's
 * img_mgmt reports about them.  The decision tables follow MCUboot
 * (boot_swap_type(), boot_set_next() in bootutil_public.c) and Zephyr
 * (img_mgmt_state.c: next boot slot, state flags, slot in use, set next
 * boot slot) for a single updatable image in swap mode.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim-mcuboot.h"
#include "util.h"

/* Zephyr image group error codes used here (img_mgmt.h). */
#define IMG_ERR_IMAGE_ALREADY_PENDING 28
#define IMG_ERR_TEST_TO_ACTIVE_DENIED 33

#define ACTIVE_SLOT 0

struct sim_blob *sim_blob_new(size_t len) {
        struct sim_blob *b = malloc(sizeof(*b) + len);
        if (!b)
                return NULL;
        b->refs = 1;
        b->len = len;
        memset(b->data, 0xff, len);
        return b;
}

struct sim_blob *sim_blob_ref(struct sim_blob *b) {
        if (b)
                b->refs++;
        return b;
}

struct sim_blob *sim_blob_unref(struct sim_blob *b) {
        if (b && --b->refs == 0)
                free(b);
        return NULL;
}

const char *sim_boot_result_to_string(enum sim_boot_result r) {
        switch (r) {
        case SIM_BOOT_NORMAL:
                return "normal";
        case SIM_BOOT_SWAPPED_TEST:
                return "swapped-test";
        case SIM_BOOT_SWAPPED_PERM:
                return "swapped-permanent";
        case SIM_BOOT_REVERTED:
                return "reverted";
        case SIM_BOOT_REJECTED:
                return "rejected";
        }
        return "unknown";
}

const char *sim_swap_type_to_string(enum sim_swap_type t) {
        switch (t) {
        case SIM_SWAP_NONE:
                return "none";
        case SIM_SWAP_TEST:
                return "test";
        case SIM_SWAP_PERM:
                return "perm";
        case SIM_SWAP_REVERT:
                return "revert";
        }
        return "unknown";
}

void sim_flash_init(struct sim_flash *f, size_t slot_size, struct sim_blob *primary) {
        *f = (struct sim_flash) { .slot_size = slot_size };
        f->slot[0].blob = sim_blob_ref(primary);
}

void sim_flash_done(struct sim_flash *f) {
        for (int i = 0; i < 2; i++)
                f->slot[i].blob = sim_blob_unref(f->slot[i].blob);
}

int sim_flash_read_info(const struct sim_flash *f, int slot, struct sim_image_info *ret) {
        if (slot < 0 || slot > 1)
                return -EINVAL;
        const struct sim_blob *b = f->slot[slot].blob;
        if (!b)
                return -ENOENT;
        return sim_image_read_info(b->data, b->len, ret);
}

enum sim_swap_type sim_flash_swap_type(const struct sim_flash *f) {
        const struct sim_slot *primary = &f->slot[0], *secondary = &f->slot[1];

        if (secondary->magic)
                return secondary->image_ok ? SIM_SWAP_PERM : SIM_SWAP_TEST;
        if (primary->magic && primary->copy_done && !primary->image_ok)
                return SIM_SWAP_REVERT;
        return SIM_SWAP_NONE;
}

int sim_flash_next_boot_slot(const struct sim_flash *f, enum sim_swap_type *ret_type) {
        enum sim_swap_type t = sim_flash_swap_type(f);
        *ret_type = t;
        return t == SIM_SWAP_NONE ? ACTIVE_SLOT : 1 - ACTIVE_SLOT;
}

unsigned sim_flash_slot_flags(const struct sim_flash *f, int slot) {
        enum sim_swap_type type;
        int nbs = sim_flash_next_boot_slot(f, &type);

        if (slot == ACTIVE_SLOT)
                return SIM_SLOT_F_ACTIVE | (type != SIM_SWAP_REVERT ? SIM_SLOT_F_CONFIRMED : 0);
        if (nbs == ACTIVE_SLOT)
                return 0;
        switch (type) {
        case SIM_SWAP_PERM:
                return SIM_SLOT_F_PENDING | SIM_SLOT_F_PERMANENT;
        case SIM_SWAP_REVERT:
                return SIM_SLOT_F_CONFIRMED;
        case SIM_SWAP_TEST:
                return SIM_SLOT_F_PENDING;
        case SIM_SWAP_NONE:
                break;
        }
        return 0;
}

bool sim_flash_slot_in_use(const struct sim_flash *f, int slot) {
        enum sim_swap_type type;
        int nbs = sim_flash_next_boot_slot(f, &type);

        if (slot == nbs && type == SIM_SWAP_REVERT)
                return true;
        if ((slot == nbs && type == SIM_SWAP_TEST) ||
            (nbs != ACTIVE_SLOT && (type == SIM_SWAP_NONE || type == SIM_SWAP_PERM)))
                return true;
        return slot == ACTIVE_SLOT;
}

int sim_flash_find_hash(const struct sim_flash *f, const uint8_t hash[32]) {
        for (int slot = 0; slot < 2; slot++) {
                struct sim_image_info info;
                if (sim_flash_read_info(f, slot, &info) == 0 && memcmp(info.hash, hash, 32) == 0)
                        return slot;
        }
        return -ENOENT;
}

int sim_flash_set_next_boot(struct sim_flash *f, int slot, bool confirm) {
        enum sim_swap_type type;
        int nbs = sim_flash_next_boot_slot(f, &type);
        bool normal = type == SIM_SWAP_NONE || type == SIM_SWAP_PERM;

        if (!confirm && slot == ACTIVE_SLOT)
                return IMG_ERR_TEST_TO_ACTIVE_DENIED;

        if (type == SIM_SWAP_TEST) {
                /* repeating the same test is a no-op; anything else is not */
                if (!confirm && slot == nbs)
                        return 0;
                return IMG_ERR_IMAGE_ALREADY_PENDING;
        }
        if (normal) {
                if (confirm && slot == nbs)
                        return 0;
                if ((slot == ACTIVE_SLOT && nbs != ACTIVE_SLOT) ||
                    (!confirm && slot != ACTIVE_SLOT && slot == nbs))
                        return IMG_ERR_IMAGE_ALREADY_PENDING;
        }
        if (type == SIM_SWAP_REVERT) {
                if (confirm && slot == nbs)
                        return 0;
                if (!confirm)
                        return IMG_ERR_IMAGE_ALREADY_PENDING;
        }

        /* MCUboot boot_set_next() */
        struct sim_slot *s = &f->slot[slot];
        if (slot == ACTIVE_SLOT) {
                if (confirm && s->magic && !s->image_ok)
                        s->image_ok = true;
        } else if (!s->magic) {
                s->magic = true;
                s->image_ok = confirm;
        }
        return 0;
}

void sim_flash_erase(struct sim_flash *f, int slot) {
        struct sim_slot *s = &f->slot[slot];
        s->blob = sim_blob_unref(s->blob);
        s->magic = s->image_ok = s->copy_done = false;
}

static void swap_slots(struct sim_flash *f) {
        struct sim_blob *tmp = f->slot[0].blob;
        f->slot[0].blob = f->slot[1].blob;
        f->slot[1].blob = tmp;
}

enum sim_boot_result sim_flash_boot(struct sim_flash *f, bool reject) {
        struct sim_slot *primary = &f->slot[0], *secondary = &f->slot[1];
        enum sim_swap_type type = sim_flash_swap_type(f);

        switch (type) {
        case SIM_SWAP_TEST:
        case SIM_SWAP_PERM: {
                const struct sim_blob *b = secondary->blob;
                if (reject || !b || !sim_image_valid(b->data, b->len)) {
                        /* MCUboot erases an image that fails validation and
                         * boots the one it has. */
                        sim_flash_erase(f, 1);
                        return SIM_BOOT_REJECTED;
                }
                swap_slots(f);
                primary->magic = true;
                primary->copy_done = true;
                primary->image_ok = type == SIM_SWAP_PERM;
                secondary->magic = secondary->image_ok = secondary->copy_done = false;
                return type == SIM_SWAP_PERM ? SIM_BOOT_SWAPPED_PERM : SIM_BOOT_SWAPPED_TEST;
        }
        case SIM_SWAP_REVERT:
                /* the image under test never confirmed itself: swap back
                 * and make the old one permanent again */
                swap_slots(f);
                primary->magic = true;
                primary->copy_done = true;
                primary->image_ok = true;
                secondary->magic = secondary->image_ok = secondary->copy_done = false;
                return SIM_BOOT_REVERTED;
        case SIM_SWAP_NONE:
                break;
        }
        return SIM_BOOT_NORMAL;
}

void sim_image_version_string(const struct sim_image_info *info, char *buf, size_t size) {
        if (info->build != 0)
                snprintf(buf, size, "%u.%u.%u.%u", info->major, info->minor, info->revision, info->build);
        else
                snprintf(buf, size, "%u.%u.%u", info->major, info->minor, info->revision);
}

/* ---- persistence ---- */

static int write_file_atomic(const char *dir, const char *name, const void *data, size_t len) {
        char path[4096], tmp[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);

        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        const uint8_t *p = data;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
        }
        if (rename(tmp, path) < 0)
                return -errno;
        return 0;
}

int sim_flash_save_trailers(const struct sim_flash *f, const char *dir) {
        char text[256];
        int n = snprintf(text, sizeof(text),
                         "slot0 magic=%d image_ok=%d copy_done=%d\n"
                         "slot1 magic=%d image_ok=%d copy_done=%d\n",
                         f->slot[0].magic, f->slot[0].image_ok, f->slot[0].copy_done,
                         f->slot[1].magic, f->slot[1].image_ok, f->slot[1].copy_done);
        return write_file_atomic(dir, "trailer", text, (size_t) n);
}

static int save_slot(const struct sim_flash *f, const char *dir, int slot) {
        char name[32];
        snprintf(name, sizeof(name), "slot%d.bin", slot);
        const struct sim_blob *b = f->slot[slot].blob;
        if (!b) {
                char path[4096];
                snprintf(path, sizeof(path), "%s/%s", dir, name);
                if (unlink(path) < 0 && errno != ENOENT)
                        return -errno;
                return 0;
        }
        return write_file_atomic(dir, name, b->data, b->len);
}

int sim_flash_save(const struct sim_flash *f, const char *dir) {
        int r;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        for (int slot = 0; slot < 2; slot++) {
                r = save_slot(f, dir, slot);
                if (r < 0)
                        return r;
        }
        return sim_flash_save_trailers(f, dir);
}

int sim_flash_save_slot_range(const struct sim_flash *f, const char *dir, int slot, size_t off, size_t len) {
        const struct sim_blob *b = f->slot[slot].blob;
        char path[4096];

        if (!b || off > b->len || len > b->len - off)
                return -EINVAL;
        snprintf(path, sizeof(path), "%s/slot%d.bin", dir, slot);
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        /* A new upload starts with a freshly erased slot of its own size. */
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if ((size_t) st.st_size != b->len) {
                if (ftruncate(fd, 0) < 0 || pwrite(fd, b->data, b->len, 0) != (ssize_t) b->len)
                        return -errno;
                return 0;
        }
        if (pwrite(fd, b->data + off, len, (off_t) off) != (ssize_t) len)
                return -errno;
        return 0;
}

int sim_blob_load_file(const char *path, size_t max_size, struct sim_blob **ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if ((uint64_t) st.st_size > max_size)
                return -EFBIG;
        struct sim_blob *b = sim_blob_new((size_t) st.st_size);
        if (!b)
                return -ENOMEM;
        /* a regular file of this size reads whole in one call */
        if (read(fd, b->data, b->len) != (ssize_t) b->len) {
                sim_blob_unref(b);
                return -EIO;
        }
        *ret = b;
        return 0;
}

static int load_slot(struct sim_flash *f, const char *dir, int slot) {
        char path[4096];
        struct sim_blob *b;

        snprintf(path, sizeof(path), "%s/slot%d.bin", dir, slot);
        int r = sim_blob_load_file(path, f->slot_size, &b);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        sim_blob_unref(f->slot[slot].blob);
        f->slot[slot].blob = b;
        return 1;
}

int sim_flash_load(struct sim_flash *f, const char *dir) {
        char path[4096];
        int r;

        snprintf(path, sizeof(path), "%s/trailer", dir);
        _cleanup_fclose_ FILE *t = fopen(path, "re");
        if (!t)
                return errno == ENOENT ? 0 : -errno;

        for (int slot = 0; slot < 2; slot++) {
                int s, magic, ok, done;
                if (fscanf(t, "slot%d magic=%d image_ok=%d copy_done=%d\n", &s, &magic, &ok, &done) != 4 || s != slot)
                        return -EBADMSG;
                sim_flash_erase(f, slot);
                f->slot[slot].magic = magic;
                f->slot[slot].image_ok = ok;
                f->slot[slot].copy_done = done;
                r = load_slot(f, dir, slot);
                if (r < 0)
                        return r;
        }
        return 1;
}
