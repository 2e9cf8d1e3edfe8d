/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An LD_PRELOAD fault injector for storage tests of a whole process
 * (tests/daemon/test_storage_faults.py): write(), pwrite(), fsync(),
 * ftruncate(), fallocate() and friends on files under one directory fail
 * with an errno, at random points, while a control file exists.
 *
 *   SMPGW_FAULT_PATH   the directory: only fds whose /proc/self/fd link
 *                      starts with it are touched
 *   SMPGW_FAULT_CTL    faults only while this file exists (the test
 *                      turns them on and off without restarting)
 *   SMPGW_FAULT_ERRNO  ENOSPC (default), EIO, EROFS, EDQUOT or EPERM
 *   SMPGW_FAULT_RATE   one call in RATE fails, at random (default 4)
 *   SMPGW_FAULT_SEED   the random sequence (default 1)
 *   SMPGW_FAULT_CALLS  only these calls, comma separated ("fsync,fdatasync");
 *                      default every one below
 *
 * Each injected fault is reported on stderr ("fault-inject: pwrite64
 * /x/smpgw.db-wal: No space left on device"), so a test can tell that
 * faults really happened.  Memory-mapped writes are not seen here: the
 * database keeps no shared mapping (db.c, exclusive locking mode), and
 * image files are only ever mapped for reading.
 */
/* Both pwrite() and pwrite64() are wrapped: without this, glibc's headers
 * would rename the first into the second (meson builds with 64-bit
 * off_t). */
#undef _FILE_OFFSET_BITS
/* ...and _TIME_BITS=64 (meson's on 32-bit targets) requires it. */
#undef _TIME_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* The injector's own state: one process, one configuration, read once. */
static struct {
        bool loaded;
        const char *path, *ctl, *calls;
        size_t path_len;
        int error;
        uint32_t rate;
        uint64_t rng;
} fi;

static void fi_load(void) {
        const char *e;

        if (fi.loaded)
                return;
        fi.loaded = true;
        fi.path = getenv("SMPGW_FAULT_PATH");
        fi.ctl = getenv("SMPGW_FAULT_CTL");
        fi.calls = getenv("SMPGW_FAULT_CALLS");
        fi.path_len = fi.path ? strlen(fi.path) : 0;
        fi.error = ENOSPC;
        e = getenv("SMPGW_FAULT_ERRNO");
        if (e && strcmp(e, "EIO") == 0)
                fi.error = EIO;
        else if (e && strcmp(e, "EROFS") == 0)
                fi.error = EROFS;
        else if (e && strcmp(e, "EDQUOT") == 0)
                fi.error = EDQUOT;
        else if (e && strcmp(e, "EPERM") == 0)
                fi.error = EPERM;
        e = getenv("SMPGW_FAULT_RATE");
        fi.rate = e ? (uint32_t) strtoul(e, NULL, 10) : 4;
        if (fi.rate == 0)
                fi.rate = 1;
        e = getenv("SMPGW_FAULT_SEED");
        fi.rng = (e ? strtoull(e, NULL, 10) : 1) * 2654435761u + 1;
}

static uint32_t fi_random(void) {
        /* xorshift64 */
        fi.rng ^= fi.rng << 13;
        fi.rng ^= fi.rng >> 7;
        fi.rng ^= fi.rng << 17;
        return (uint32_t) (fi.rng >> 32);
}

static bool fi_call_chosen(const char *call) {
        size_t len = strlen(call);

        if (!fi.calls)
                return true;
        for (const char *p = fi.calls; *p; p += strcspn(p, ","), p += *p == ',') {
                size_t n = strcspn(p, ",");
                if (n == len && memcmp(p, call, len) == 0)
                        return true;
        }
        return false;
}

/* Whether this call on fd fails; when it does, errno is set. */
static bool fi_fail(const char *call, int fd) {
        char link[64], target[4096];
        int saved = errno;

        fi_load();
        if (!fi.path || !fi.ctl || fd < 0 || !fi_call_chosen(call) || access(fi.ctl, F_OK) < 0) {
                errno = saved;
                return false;
        }
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n < 0 || (size_t) n < fi.path_len || memcmp(target, fi.path, fi.path_len) != 0 ||
            fi_random() % fi.rate != 0) {
                errno = saved;
                return false;
        }
        target[n] = 0;
        char msg[4200];
        int len = snprintf(msg, sizeof(msg), "fault-inject: %s %s: %s\n", call, target, strerror(fi.error));
        if (len > 0) {
                static ssize_t (*real_write)(int, const void *, size_t);
                if (!real_write)
                        real_write = (ssize_t(*)(int, const void *, size_t)) dlsym(RTLD_NEXT, "write");
                (void) real_write(STDERR_FILENO, msg, (size_t) len < sizeof(msg) ? (size_t) len : sizeof(msg));
        }
        errno = fi.error;
        return true;
}

#define REAL(name, ret, ...)                                                     \
        static ret (*real_##name)(__VA_ARGS__);                                  \
        if (!real_##name)                                                        \
                real_##name = (ret(*)(__VA_ARGS__)) dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t count) {
        REAL(write, ssize_t, int, const void *, size_t);
        if (fi_fail("write", fd))
                return -1;
        return real_write(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
        REAL(pwrite, ssize_t, int, const void *, size_t, off_t);
        if (fi_fail("pwrite", fd))
                return -1;
        return real_pwrite(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset) {
        REAL(pwrite64, ssize_t, int, const void *, size_t, off64_t);
        if (fi_fail("pwrite64", fd))
                return -1;
        return real_pwrite64(fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
        REAL(writev, ssize_t, int, const struct iovec *, int);
        if (fi_fail("writev", fd))
                return -1;
        return real_writev(fd, iov, iovcnt);
}

int fsync(int fd) {
        REAL(fsync, int, int);
        if (fi_fail("fsync", fd))
                return -1;
        return real_fsync(fd);
}

int fdatasync(int fd) {
        REAL(fdatasync, int, int);
        if (fi_fail("fdatasync", fd))
                return -1;
        return real_fdatasync(fd);
}

int ftruncate(int fd, off_t length) {
        REAL(ftruncate, int, int, off_t);
        if (fi_fail("ftruncate", fd))
                return -1;
        return real_ftruncate(fd, length);
}

int ftruncate64(int fd, off64_t length) {
        REAL(ftruncate64, int, int, off64_t);
        if (fi_fail("ftruncate64", fd))
                return -1;
        return real_ftruncate64(fd, length);
}

int fallocate(int fd, int mode, off_t offset, off_t len) {
        REAL(fallocate, int, int, int, off_t, off_t);
        if (fi_fail("fallocate", fd))
                return -1;
        return real_fallocate(fd, mode, offset, len);
}

int fallocate64(int fd, int mode, off64_t offset, off64_t len) {
        REAL(fallocate64, int, int, int, off64_t, off64_t);
        if (fi_fail("fallocate64", fd))
                return -1;
        return real_fallocate64(fd, mode, offset, len);
}

int posix_fallocate(int fd, off_t offset, off_t len) {
        REAL(posix_fallocate, int, int, off_t, off_t);
        if (fi_fail("posix_fallocate", fd))
                return errno;
        return real_posix_fallocate(fd, offset, len);
}

int posix_fallocate64(int fd, off64_t offset, off64_t len) {
        REAL(posix_fallocate64, int, int, off64_t, off64_t);
        if (fi_fail("posix_fallocate64", fd))
                return errno;
        return real_posix_fallocate64(fd, offset, len);
}
