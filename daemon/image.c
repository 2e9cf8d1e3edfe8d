/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An image as an object (image.h): found by its id or a unique prefix of
 * it, mapped read-only for the jobs that push it.  Storing and removing
 * image files is the image store's (image-store.c).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image-boards.h"
#include "manager.h"
#include "util.h"

struct image *image_free(struct image *img) {
        if (!img)
                return NULL;
        if (img->map)
                munmap(img->map, img->map_len);
        free(img->name);
        free(img->key);
        image_boards_free(img->boards, img->n_boards);
        free(img->path);
        free(img);
        return NULL;
}

struct image *manager_find_image(struct manager *m, const char *id) {
        char key[IMAGE_ID_LEN + 1];
        struct image *img;

        if (!m || !id || strlen(id) != IMAGE_ID_LEN)
                return NULL;
        /* Ids are stored lower-case; people paste hashes in either case. */
        for (size_t i = 0; i <= IMAGE_ID_LEN; i++)
                key[i] = (char) tolower((unsigned char) id[i]);
        HASH_FIND(hh, m->images_by_id, key, IMAGE_ID_LEN, img);
        return img;
}

bool image_ref_is_valid(const char *ref) {
        size_t n = ref ? strlen(ref) : 0;

        return n >= IMAGE_ID_PREFIX_MIN && n <= IMAGE_ID_LEN && strspn(ref, "0123456789abcdefABCDEF") == n;
}

int manager_lookup_image(struct manager *m, const char *ref, struct image **ret) {
        struct image *found = NULL;
        size_t n;

        if (!image_ref_is_valid(ref))
                return -EINVAL;
        n = strlen(ref);
        /* A whole id is a prefix of one image only: ids are unique. */
        for (size_t i = 0; i < m->n_images; i++) {
                if (strncasecmp(m->images[i]->id, ref, n) != 0)
                        continue;
                if (found)
                        return -ENOTUNIQ;
                found = m->images[i];
        }
        if (!found)
                return -ENOENT;
        *ret = found;
        return 0;
}

/* Takes hash (lower-case hex) as the one ref names, unless ref names
 * another already. */
static int resolve_candidate(const char *hash, const char *ref, size_t n, char found[static IMAGE_ID_LEN + 1]) {
        if (strlen(hash) != IMAGE_ID_LEN || strncasecmp(hash, ref, n) != 0)
                return 0;
        if (found[0] && !streq(found, hash))
                return -ENOTUNIQ;
        memcpy(found, hash, IMAGE_ID_LEN + 1);
        return 0;
}

int manager_resolve_image_hash(struct manager *m, const char *ref, char ret_hash[static IMAGE_ID_LEN + 1]) {
        char found[IMAGE_ID_LEN + 1] = "", hex[IMAGE_ID_LEN + 1];
        size_t n;
        int r = 0;

        if (!image_ref_is_valid(ref))
                return -EINVAL;
        n = strlen(ref);
        if (n == IMAGE_ID_LEN) {
                /* A whole hash names itself, known or not. */
                for (size_t i = 0; i <= n; i++)
                        ret_hash[i] = (char) tolower((unsigned char) ref[i]);
                return 0;
        }
        for (size_t i = 0; r >= 0 && i < m->n_images; i++)
                r = resolve_candidate(m->images[i]->id, ref, n, found);
        for (size_t i = 0; r >= 0 && i < m->n_jobs; i++)
                r = resolve_candidate(m->jobs[i]->image_id, ref, n, found);
        for (size_t i = 0; r >= 0 && i < m->n_devices; i++) {
                const struct smp_update_snapshot *snap = m->devices[i]->slots;
                for (size_t k = 0; r >= 0 && k < snap->n_slots && k < SMP_UPDATE_SLOTS_MAX; k++) {
                        const struct smp_update_slot *s = &snap->slots[k];
                        if (!s->present || s->hash_len != IMAGE_ID_LEN / 2)
                                continue;
                        hex_encode(s->hash, s->hash_len, hex);
                        r = resolve_candidate(hex, ref, n, found);
                }
        }
        if (r < 0)
                return r;
        if (!found[0])
                return -ENOENT;
        memcpy(ret_hash, found, sizeof(found));
        return 0;
}

bool image_in_use(struct manager *m, const struct image *img) {
        if (!m || !img)
                return false;
        for (size_t i = 0; i < m->n_jobs; i++) {
                const struct job *j = m->jobs[i];
                if (streq(j->image_id, img->id) && !job_is_finished(j))
                        return true;
        }
        return false;
}

int image_map(struct image *img, const uint8_t **ret_data, size_t *ret_len) {
        if (!img || !img->path || !ret_data || !ret_len)
                return -EINVAL;
        if (img->n_map == 0) {
                _cleanup_close_ int fd = open(img->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                struct stat st;
                if (fd < 0)
                        return -errno;
                if (fstat(fd, &st) < 0)
                        return -errno;
                /* Changed behind our back: pushing it would send a file
                 * nobody validated. */
                if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size != img->file_size || st.st_size == 0)
                        return -EBADMSG;
                void *p = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_SHARED, fd, 0);
                if (p == MAP_FAILED)
                        return -errno;
                img->map = p;
                img->map_len = (size_t) st.st_size;
        }
        img->n_map++;
        *ret_data = img->map;
        *ret_len = img->map_len;
        return 0;
}

void image_unmap(struct image *img) {
        if (!img || img->n_map == 0)
                return;
        if (--img->n_map == 0) {
                munmap(img->map, img->map_len);
                img->map = NULL;
                img->map_len = 0;
        }
}
