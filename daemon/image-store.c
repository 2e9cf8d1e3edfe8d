/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The image store: validated MCUboot images as <state dir>/images/<id>.img,
 * where id is the hex of the image's SHA256 TLV (the hash devices report
 * for their slots), each with a row in the images table.
 *
 * An image enters the store only whole and checked: it is written into
 * an unnamed temporary file in the store directory, parsed and verified
 * there, fsync'ed, and only then given its name and its row.  A crash at
 * any point leaves either nothing or a file without a row, which
 * image_store_init() removes at the next start.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "db.h"
#include "image-boards.h"
#include "log.h"
#include "manager.h"
#include "sha-digest.h"
#include "smpgw/mcuboot-image.h"
#include "util.h"

/* Copy buffer for input that is not a store temporary file. */
#define IMAGE_COPY_BLOCK (64u * 1024u)

/* Named temporary files: ".<id>.tmp" while renaming into place,
 * ".upload-XXXXXX" where O_TMPFILE is not supported. */
#define IMAGE_TMP_PREFIX "."
#define IMAGE_SUFFIX ".img"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct mcuboot_image *, mcuboot_image_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

/* A read-only mapping of a whole file, unmapped by its cleanup. */
struct file_map {
        void *data;
        size_t len;
};

static void file_map_done(struct file_map *fm) {
        if (fm->data && fm->len > 0)
                munmap(fm->data, fm->len);
        *fm = (struct file_map) {};
}

static bool is_image_id(const char *s, size_t len) {
        if (len != 64)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

/* Sets *ret_reason (when asked for) to a sentence for the user,
 * replacing an earlier one, and returns error. */
_printf_(3, 4) static int reject(char **ret_reason, int error, const char *fmt, ...) {
        if (ret_reason) {
                va_list ap;
                char *s = NULL;
                va_start(ap, fmt);
                if (vasprintf(&s, fmt, ap) < 0)
                        s = NULL;
                va_end(ap);
                free(*ret_reason);
                *ret_reason = s;
        }
        return error;
}

/* A refusal that is the store's fault, not the image's: the disk is
 * full, read-only, failing.  The caller answers the client; the
 * administrator, who must act, reads it in the log. */
_printf_(4, 5) static int store_failed(char **ret_reason, int error, const char *image_id, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        log_full_errno(LOG_ERR, error, NULL, NULL, image_id, "Image not stored: %s", s ?: "out of memory");
        return reject(ret_reason, error, "%s", s ?: "out of memory");
}

static const char *basename_of(const char *path) {
        const char *slash = path ? strrchr(path, '/') : NULL;
        return slash ? slash + 1 : path ? path : "";
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct image *, image_free);







static int fsync_dir(const char *dir) {
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fsync(fd) < 0)
                return -errno;
        return 0;
}

/* Removes leftovers of an interrupted add: named temporary files, and
 * image files without a record (the crash came between the rename and
 * the insert). */
static int image_store_sweep(struct manager *m) {
        _cleanup_(closedirp) DIR *dir = opendir(m->images_dir);
        struct dirent *de;
        bool removed = false;

        if (!dir)
                return -errno;
        while ((errno = 0, de = readdir(dir))) {
                const char *n = de->d_name;
                size_t len = strlen(n);
                bool stray = false;

                if (streq(n, ".") || streq(n, ".."))
                        continue;
                if (strncmp(n, IMAGE_TMP_PREFIX, strlen(IMAGE_TMP_PREFIX)) == 0 &&
                    (strncmp(n, ".upload-", 8) == 0 || (len > 4 && streq(n + len - 4, ".tmp"))))
                        stray = true;
                else if (len > strlen(IMAGE_SUFFIX) && streq(n + len - strlen(IMAGE_SUFFIX), IMAGE_SUFFIX) &&
                         is_image_id(n, len - strlen(IMAGE_SUFFIX))) {
                        char id[65];
                        snprintf(id, sizeof(id), "%.*s", (int) (len - strlen(IMAGE_SUFFIX)), n);
                        stray = !manager_find_image(m, id);
                }
                if (!stray)
                        continue;
                if (unlinkat(dirfd(dir), n, 0) < 0) {
                        log_warning_errno(-errno, "Cannot remove stray file %s/%s, ignoring: %m", m->images_dir, n);
                        continue;
                }
                log_info("Removed stray file %s/%s (an interrupted image upload)", m->images_dir, n);
                removed = true;
        }
        if (errno != 0)
                return -errno;
        if (removed)
                (void) fsync_dir(m->images_dir);
        return 0;
}

static bool image_referenced(struct manager *m, const struct image *img) {
        for (size_t i = 0; i < m->n_jobs; i++)
                if (streq(m->jobs[i]->image_id, img->id))
                        return true;
        return false;
}

int image_store_init(struct manager *m) {
        int r;

        if (!m || !m->config)
                return -EINVAL;
        if (!m->images_dir && asprintf(&m->images_dir, "%s/images", m->config->state_dir) < 0) {
                m->images_dir = NULL;
                return -ENOMEM;
        }
        if (mkdir(m->images_dir, 0750) < 0 && errno != EEXIST)
                return -errno;

        for (size_t i = 0; i < m->n_images;) {
                struct image *img = m->images[i];
                struct stat st;

                if (!img->path && asprintf(&img->path, "%s/%s" IMAGE_SUFFIX, m->images_dir, img->id) < 0) {
                        img->path = NULL;
                        return -ENOMEM;
                }
                if (stat(img->path, &st) >= 0) {
                        if ((uint64_t) st.st_size != img->file_size)
                                log_image(LOG_WARNING, img->id,
                                          "Image file %s has %" PRIu64 " bytes, %" PRIu64 " were stored",
                                          img->path, (uint64_t) st.st_size, img->file_size);
                        i++;
                        continue;
                }
                if (errno != ENOENT)
                        return -errno;

                /* Jobs still name it: keep the record so they can say
                 * what they pushed; an unfinished one fails when it
                 * cannot map the file. */
                if (image_referenced(m, img)) {
                        log_image(LOG_WARNING, img->id, "Image file %s is missing; kept, jobs refer to it",
                                  img->path);
                        i++;
                        continue;
                }
                log_image(LOG_WARNING, img->id, "Image file %s is missing, dropping the image", img->path);
                r = db_image_delete(m->db, img->id);
                if (r < 0 && r != -ENOENT)
                        return r;
                manager_history(m, "image-missing", NULL, img->id, NULL, "image file %s was missing; record dropped",
                                img->path);
                manager_detach_image(m, img);
                image_free(img);
        }

        return image_store_sweep(m);
}

void image_keys_free(struct mcuboot_key **keys, size_t n_keys) {
        for (size_t i = 0; i < n_keys; i++)
                mcuboot_key_free(keys[i]);
        free(keys);
}

int image_store_read_keys(const struct config *c, struct mcuboot_key ***ret_keys, size_t *ret_n_keys) {
        struct mcuboot_key **keys = NULL;
        size_t n_keys = 0;
        int r = 0;

        if (!c || !ret_keys || !ret_n_keys)
                return -EINVAL;
        if (c->n_image_keys > 0) {
                keys = calloc(c->n_image_keys, sizeof(*keys));
                if (!keys)
                        return -ENOMEM;
        }
        for (; n_keys < c->n_image_keys; n_keys++) {
                const char *path = c->image_keys[n_keys];
                _cleanup_free_ char *data = NULL;
                size_t size = 0;
                /* Bounded, and never blocking on a FIFO: the same read as
                 * every file the configuration names. */
                r = config_read_file(path, CONFIG_KEY_FILE_MAX, &data, &size);
                if (r == -EFBIG) {
                        log_error_errno(r, "Cannot load image signing key %s: larger than %u bytes", path,
                                        CONFIG_KEY_FILE_MAX);
                        break;
                }
                if (r < 0) {
                        log_error_errno(r, "Cannot load image signing key %s: %s", path, config_read_error(r));
                        break;
                }
                r = mcuboot_key_load_mem(data, size, path, &keys[n_keys]);
                if (r == -ELIBACC) {
                        /* libsmpgw loads OpenSSL with the first key. */
                        log_error_errno(r,
                                        "Cannot load image signing key %s: signature checks need OpenSSL's "
                                        "libcrypto (Debian package libssl3), which cannot be loaded",
                                        path);
                        break;
                }
                if (r < 0) {
                        log_error_errno(r, "Cannot load image signing key %s: %m", path);
                        break;
                }
        }
        if (r < 0) {
                image_keys_free(keys, n_keys);
                return r;
        }
        *ret_keys = keys;
        *ret_n_keys = n_keys;
        return 0;
}

void image_store_install_keys(struct manager *m, struct mcuboot_key **keys, size_t n_keys) {
        image_keys_free(m->keys, m->n_keys);
        m->keys = keys;
        m->n_keys = n_keys;
        for (size_t i = 0; i < n_keys; i++)
                log_debug("Image signing key %s (%s)", mcuboot_key_label(keys[i]), mcuboot_key_type(keys[i]));
}

int image_store_load_keys(struct manager *m) {
        struct mcuboot_key **keys = NULL;
        size_t n_keys = 0;
        int r;

        if (!m || !m->config)
                return -EINVAL;
        r = image_store_read_keys(m->config, &keys, &n_keys);
        if (r < 0)
                return r;
        image_store_install_keys(m, keys, n_keys);
        return 0;
}

int image_store_open_tmp(struct manager *m, int *ret_fd) {
        _cleanup_free_ char *template = NULL;
        int fd;

        if (!m || !m->images_dir || !ret_fd)
                return -EINVAL;
        fd = open(m->images_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0640);
        if (fd >= 0) {
                *ret_fd = fd;
                return 0;
        }
        /* File systems (and kernels) without O_TMPFILE answer
         * EOPNOTSUPP, or EISDIR when the flag is not known at all. */
        if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
                return -errno;
        if (asprintf(&template, "%s/" IMAGE_TMP_PREFIX "upload-XXXXXX", m->images_dir) < 0) {
                template = NULL;
                return -ENOMEM;
        }
        fd = mkostemp(template, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        /* Unnamed at once, like O_TMPFILE: nothing to clean up if we die. */
        (void) unlink(template);
        (void) fchmod(fd, 0640);
        *ret_fd = fd;
        return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* Copies fd into a new store temporary file, refusing more than max
 * bytes.  A regular file is read whole with pread(): its offset may be
 * shared with the process that passed it (D-Bus fd passing dups the
 * description) and is left alone; anything else (a pipe) is read from
 * where it is. */
static int copy_into_tmp(struct manager *m, int fd, bool seekable, uint64_t max, int *ret_fd,
                         char **ret_reason) {
        _cleanup_close_ int tmp = -1;
        _cleanup_free_ uint8_t *buf = NULL;
        uint64_t total = 0;
        int r;

        r = image_store_open_tmp(m, &tmp);
        if (r < 0)
                return store_failed(ret_reason, r, NULL, "cannot create a file in the image store %s: %s",
                                    m->images_dir, strerror(-r));
        buf = malloc(IMAGE_COPY_BLOCK);
        if (!buf)
                return reject(ret_reason, -ENOMEM, "out of memory");
        for (;;) {
                ssize_t n = seekable ? pread(fd, buf, IMAGE_COPY_BLOCK, (off_t) total)
                                     : read(fd, buf, IMAGE_COPY_BLOCK);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        return reject(ret_reason, r, "cannot read the image: %s", strerror(-r));
                }
                if (n == 0)
                        break;
                total += (uint64_t) n;
                if (total > max)
                        return reject(ret_reason, -EFBIG, "image is larger than the limit of %" PRIu64 " bytes",
                                      max);
                r = write_all(tmp, buf, (size_t) n);
                if (r < 0)
                        return store_failed(ret_reason, r, NULL, "cannot write the image into the store %s: %s",
                                            m->images_dir, strerror(-r));
        }
        *ret_fd = TAKE_FD(tmp);
        return 0;
}

/* A file from image_store_open_tmp(): unnamed, on the store's file
 * system, readable.  It can be given its name without a copy. */
static bool is_store_tmp(struct manager *m, int fd, const struct stat *st) {
        struct stat dir_st;
        int fl = fcntl(fd, F_GETFL);

        if (!S_ISREG(st->st_mode) || st->st_nlink != 0 || fl < 0 || (fl & O_ACCMODE) != O_RDWR)
                return false;
        if (stat(m->images_dir, &dir_st) < 0)
                return false;
        return dir_st.st_dev == st->st_dev;
}

/* Checks the parsed image the way a device will, and the signature the
 * way the bootloader will; *ret_key_index is SIZE_MAX when unsigned. */
static int image_validate(struct manager *m, const struct mcuboot_image *mi, size_t *ret_key_index,
                          char **ret_reason) {
        _cleanup_free_ struct mcuboot_sig_result *results = NULL;
        size_t n_results = 0;
        int r;

        switch (mi->hash_status) {
        case MCUBOOT_HASH_MATCH:
                break;
        case MCUBOOT_HASH_MISMATCH:
                return reject(ret_reason, -EBADMSG, "image hash does not match its contents");
        case MCUBOOT_HASH_MISSING:
                return reject(ret_reason, -EBADMSG, "image has no hash TLV; devices name images by their SHA256 hash");
        case MCUBOOT_HASH_DUPLICATE:
                return reject(ret_reason, -EBADMSG, "image has more than one hash TLV of one type");
        case MCUBOOT_HASH_ENCRYPTED:
                return reject(ret_reason, -EBADMSG,
                              "image is encrypted: its hash covers the plain text and cannot be checked here");
        default:
                return reject(ret_reason, -EBADMSG, "image hash cannot be checked (%s)",
                              mcuboot_hash_status_to_string(mi->hash_status));
        }
        if (!mi->sha256_tlv)
                return reject(ret_reason, -EBADMSG,
                              "image has no SHA256 hash TLV (it is hashed with %s); devices name images by "
                              "their SHA256 hash",
                              mcuboot_tlv_type_to_string(mi->hash_type) ?: "another hash");

        *ret_key_index = SIZE_MAX;
        if (m->n_keys == 0)
                return 0;

        r = mcuboot_image_verify(mi, m->keys, m->n_keys, &results, &n_results);
        if (r < 0)
                return reject(ret_reason, r, "cannot verify the image signature: %s", strerror(-r));
        for (size_t i = 0; i < n_results; i++)
                if (results[i].status == MCUBOOT_SIG_VALID && results[i].key_index < m->n_keys) {
                        *ret_key_index = results[i].key_index;
                        return 0;
                }

        /* Name the keys tried, so whoever signed the image can tell
         * which one the gateway expects. */
        _cleanup_free_ char *tried = NULL;
        size_t len = 0;
        for (size_t i = 0; i < m->n_keys; i++)
                len += strlen(basename_of(mcuboot_key_label(m->keys[i]))) + 2;
        tried = calloc(1, len + 1);
        if (!tried)
                return reject(ret_reason, -ENOMEM, "out of memory");
        for (size_t i = 0; i < m->n_keys; i++) {
                if (i > 0)
                        strcat(tried, ", ");
                strcat(tried, basename_of(mcuboot_key_label(m->keys[i])));
        }
        if (n_results == 0)
                return reject(ret_reason, -EKEYREJECTED, "image is not signed; a signature is required (keys: %s)",
                              tried);
        const char *detail = results[0].detail[0] ? results[0].detail : NULL;
        return reject(ret_reason, -EKEYREJECTED, "no valid signature: tried %s (%s%s%s)", tried,
                      mcuboot_sig_status_to_string(results[0].status), detail ? ": " : "", detail ?: "");
}

/* Gives the validated temporary file its name images/<id>.img: by
 * linking the unnamed file when the kernel lets us, else by writing a
 * named copy; in both cases through ".<id>.tmp" and rename(), so the
 * final name only ever holds a complete file. */
static int image_store_commit_file(struct manager *m, int fd, const struct file_map *fm, const char *id) {
        _cleanup_close_ int dfd = -1;
        char proc[64], tmp_name[80], final_name[80];
        int r;

        snprintf(tmp_name, sizeof(tmp_name), IMAGE_TMP_PREFIX "%s.tmp", id);
        snprintf(final_name, sizeof(final_name), "%s" IMAGE_SUFFIX, id);
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);

        if (fsync(fd) < 0)
                return -errno;
        dfd = open(m->images_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        (void) unlinkat(dfd, tmp_name, 0);

        /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (before Linux 6.10);
         * the /proc magic link does not, but needs /proc.  Neither
         * works for a file that had a name once (the mkostemp
         * fallback): that one is copied. */
        if (linkat(fd, "", dfd, tmp_name, AT_EMPTY_PATH) < 0 &&
            linkat(AT_FDCWD, proc, dfd, tmp_name, AT_SYMLINK_FOLLOW) < 0) {
                _cleanup_close_ int out = openat(dfd, tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
                if (out < 0)
                        return -errno;
                r = write_all(out, fm->data, fm->len);
                if (r >= 0 && fsync(out) < 0)
                        r = -errno;
                if (r < 0) {
                        (void) unlinkat(dfd, tmp_name, 0);
                        return r;
                }
        }
        if (renameat(dfd, tmp_name, dfd, final_name) < 0) {
                r = -errno;
                (void) unlinkat(dfd, tmp_name, 0);
                return r;
        }
        if (fsync(dfd) < 0) {
                r = -errno;
                (void) unlinkat(dfd, final_name, 0);
                return r;
        }
        return 0;
}

int image_store_add_fd(struct manager *m, int fd, const char *name, struct image **ret, bool *ret_created,
                       char **ret_reason) {
        _cleanup_close_ int copy = -1;
        _cleanup_(file_map_done) struct file_map fm = {};
        _cleanup_(mcuboot_image_freep) struct mcuboot_image *mi = NULL;
        _cleanup_(image_freep) struct image *img = NULL;
        struct mcuboot_error perr = {};
        uint8_t digest[SHA256_DIGEST_SIZE];
        size_t key_index;
        struct stat st;
        int work_fd, r;

        /* reject() replaces it, so it must start out as nothing. */
        if (ret_reason)
                *ret_reason = NULL;
        if (!m || !m->config || !m->images_dir || fd < 0)
                return reject(ret_reason, -EINVAL, "invalid arguments");
        uint64_t max = m->config->image_max_size;

        if (fstat(fd, &st) < 0) {
                r = -errno;
                return reject(ret_reason, r, "cannot read the image: %s", strerror(-r));
        }
        if (is_store_tmp(m, fd, &st))
                work_fd = fd;
        else {
                /* A regular file too large is refused before copying it. */
                if (S_ISREG(st.st_mode) && (uint64_t) st.st_size > max)
                        goto too_big;
                r = copy_into_tmp(m, fd, S_ISREG(st.st_mode), max, &copy, ret_reason);
                if (r == -EFBIG)
                        goto too_big;
                if (r < 0)
                        return r;
                work_fd = copy;
                if (fstat(work_fd, &st) < 0) {
                        r = -errno;
                        return reject(ret_reason, r, "cannot read the image: %s", strerror(-r));
                }
        }
        if ((uint64_t) st.st_size > max)
                goto too_big;
        if (st.st_size == 0) {
                m->stats.images_rejected++;
                return reject(ret_reason, -EBADMSG, "not an MCUboot image: the file is empty");
        }

        fm.len = (size_t) st.st_size;
        fm.data = mmap(NULL, fm.len, PROT_READ, MAP_SHARED, work_fd, 0);
        if (fm.data == MAP_FAILED) {
                r = -errno;
                fm = (struct file_map) {};
                return reject(ret_reason, r, "cannot read the image: %s", strerror(-r));
        }

        r = mcuboot_image_parse(fm.data, fm.len, &mi, &perr);
        if (r == -EBADMSG) {
                m->stats.images_rejected++;
                return reject(ret_reason, r, "not a valid MCUboot image: %s", perr.message);
        }
        if (r < 0)
                return reject(ret_reason, r, "cannot parse the image: %s", strerror(-r));

        r = image_validate(m, mi, &key_index, ret_reason);
        if (r < 0) {
                if (r == -EBADMSG || r == -EKEYREJECTED)
                        m->stats.images_rejected++;
                return r;
        }

        char id[65];
        hex_encode(mi->sha256_tlv, 32, id);
        struct image *existing = manager_find_image(m, id);
        if (existing) {
                if (ret)
                        *ret = existing;
                if (ret_created)
                        *ret_created = false;
                return 0;
        }
        if (m->config->max_images > 0 && m->n_images >= m->config->max_images)
                return reject(ret_reason, -E2BIG, "the image store is full (%u images); remove one first",
                              m->config->max_images);

        sha256_of(fm.data, fm.len, digest);

        img = calloc(1, sizeof(*img));
        if (!img)
                return reject(ret_reason, -ENOMEM, "out of memory");
        memcpy(img->id, id, sizeof(img->id));
        hex_encode(digest, 32, img->file_sha256);
        if (mcuboot_version_format(&mi->version, img->version, sizeof(img->version)) < 0)
                snprintf(img->version, sizeof(img->version), "?");
        img->file_size = fm.len;
        img->image_size = mi->img_size;
        img->added_usec = now_realtime_usec();
        if (key_index != SIZE_MAX) {
                img->signed_ = true;
                img->key = strdup(basename_of(mcuboot_key_label(m->keys[key_index])));
                if (!img->key)
                        return reject(ret_reason, -ENOMEM, "out of memory");
        }
        if (name) {
                img->name = strdup(name);
                if (!img->name)
                        return reject(ret_reason, -ENOMEM, "out of memory");
        }
        if (asprintf(&img->path, "%s/%s" IMAGE_SUFFIX, m->images_dir, id) < 0) {
                img->path = NULL;
                return reject(ret_reason, -ENOMEM, "out of memory");
        }

        r = image_store_commit_file(m, work_fd, &fm, id);
        if (r < 0)
                return store_failed(ret_reason, r, id, "cannot store the image file %s: %s", img->path,
                                    strerror(-r));

        r = db_image_insert(m->db, img);
        if (r < 0) {
                (void) unlink(img->path);
                (void) fsync_dir(m->images_dir);
                return store_failed(ret_reason, r, id, "cannot record the image in the database: %s",
                                    strerror(-r));
        }
        r = manager_attach_image(m, img);
        if (r < 0) {
                (void) db_image_delete(m->db, img->id);
                (void) unlink(img->path);
                return reject(ret_reason, r, "out of memory");
        }
        struct image *added = TAKE_PTR(img);

        log_image(LOG_INFO, added->id, "Image '%s' added: version %s, %" PRIu64 " bytes, %s%s",
                  added->name ?: "", added->version, added->file_size,
                  added->signed_ ? "signed with " : "not signed", added->key ?: "");
        manager_emit(m, MANAGER_EVENT_IMAGE_ADDED, NULL, added, NULL);
        manager_history(m, "image-added", NULL, added->id, NULL, "image %s version %s added (%s)",
                        added->name ?: added->id, added->version, added->signed_ ? "signed" : "not signed");
        if (ret)
                *ret = added;
        if (ret_created)
                *ret_created = true;
        return 0;

too_big:
        m->stats.images_rejected++;
        return reject(ret_reason, -EFBIG, "image is larger than the limit of %" PRIu64 " bytes", max);
}

int image_store_remove(struct manager *m, struct image *img) {
        int r;

        if (!m || !img)
                return -EINVAL;
        /* A mapping held by anyone (a job finishing, a reader) would
         * point into a freed object. */
        if (image_in_use(m, img) || img->n_map > 0)
                return -EBUSY;

        /* The record first: should unlinking fail, the file is an orphan
         * that the next start removes, never a record without a file. */
        r = db_image_delete(m->db, img->id);
        if (r < 0 && r != -ENOENT)
                return log_full_errno(LOG_ERR, r, NULL, NULL, img->id,
                                      "Image not removed: cannot delete its record from the database: %m");
        if (img->path && unlink(img->path) < 0 && errno != ENOENT)
                log_image(LOG_WARNING, img->id, "Cannot remove %s, it goes at the next start: %s", img->path,
                          strerror(errno));
        else
                (void) fsync_dir(m->images_dir);

        log_image(LOG_INFO, img->id, "Image removed");
        manager_history(m, "image-removed", NULL, img->id, NULL, "image %s version %s removed",
                        img->name ?: img->id, img->version);
        manager_remove_image(m, img);
        return 0;
}

static bool boards_equal(const struct image *img, char **boards, size_t n) {
        if (n != img->n_boards)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!streq(boards[i], img->boards[i]))
                        return false;
        return true;
}

int image_store_set_boards(struct manager *m, struct image *img, const char *const *boards, size_t n,
                           size_t *ret_index) {
        char **copy = NULL;
        size_t k = 0;
        int r;

        if (!m || !img)
                return -EINVAL;
        r = image_boards_normalize(boards, n, &copy, &k, ret_index);
        if (r < 0)
                return r;
        if (boards_equal(img, copy, k)) {
                image_boards_free(copy, k);
                return 0;
        }
        /* The operator's word: written now, and taken only once written. */
        r = m->db ? db_image_boards_set(m->db, img->id, (const char *const *) copy, k) : 0;
        if (r < 0) {
                image_boards_free(copy, k);
                return r;
        }
        image_boards_free(img->boards, img->n_boards);
        img->boards = copy;
        img->n_boards = k;
        log_image(LOG_INFO, img->id, "Boards declared: %zu%s", k, k == 0 ? " (any board)" : "");
        manager_emit(m, MANAGER_EVENT_IMAGE_CHANGED, NULL, img, NULL);
        manager_history(m, "image-boards", NULL, img->id, NULL, "image %s built for %zu board%s%s",
                        img->name ?: img->id, k, k == 1 ? "" : "s", k == 0 ? " (any board)" : "");
        return 1;
}

int image_store_set_mesh_composition(struct manager *m, struct image *img, const struct smp_mesh_composition *comp) {
        int r;

        if (!m || !img || (comp && comp->elements == 0))
                return -EINVAL;
        if (!comp ? !img->has_mesh_composition
                  : img->has_mesh_composition && img->mesh_composition.hash == comp->hash &&
                            img->mesh_composition.elements == comp->elements)
                return 0;
        /* As the boards: written now, and taken only once written. */
        r = m->db ? db_image_mesh_composition_set(m->db, img->id, comp) : 0;
        if (r < 0)
                return r;
        img->has_mesh_composition = comp != NULL;
        img->mesh_composition = comp ? *comp : (struct smp_mesh_composition) { 0 };
        if (comp) {
                log_image(LOG_INFO, img->id, "Mesh composition declared: hash 0x%08" PRIx32 ", %u element%s",
                          comp->hash, comp->elements, comp->elements == 1 ? "" : "s");
                manager_history(m, "image-mesh-composition", NULL, img->id, NULL,
                                "image %s: mesh composition hash 0x%08" PRIx32 ", %u element%s", img->name ?: img->id,
                                comp->hash, comp->elements, comp->elements == 1 ? "" : "s");
        } else {
                log_image(LOG_INFO, img->id, "Mesh composition cleared");
                manager_history(m, "image-mesh-composition", NULL, img->id, NULL, "image %s: no mesh composition",
                                img->name ?: img->id);
        }
        manager_emit(m, MANAGER_EVENT_IMAGE_CHANGED, NULL, img, NULL);
        return 1;
}
