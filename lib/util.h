/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Small helpers shared by lib/, tools/ and tests/: scope-based cleanup in
 * the style of systemd's _cleanup_ and iwd's _auto_, byte order helpers.
 * Internal: not installed, not part of the libsmpgw ABI.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _pure_ __attribute__((pure))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Hand ownership on: returns the pointer and clears the variable so that
 * its cleanup handler does nothing. */
#define TAKE_PTR(p)                     \
        ({                              \
                __typeof__(p) _p_ = (p); \
                (p) = NULL;             \
                _p_;                    \
        })

#define TAKE_FD(fd)                     \
        ({                              \
                int _fd_ = (fd);        \
                (fd) = -1;              \
                _fd_;                   \
        })

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Defines fooP(type **p) calling func(*p) when *p is non-NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)          \
        static inline void func##p(type *p) {            \
                if (*p)                                  \
                        func(*p);                        \
        }

/* Lower-case hex of len bytes into out, which holds 2 * len + 1. */
static inline void hex_encode(const void *data, size_t len, char *out) {
        static const char digits[] = "0123456789abcdef";
        const uint8_t *b = data;
        for (size_t i = 0; i < len; i++) {
                out[2 * i] = digits[b[i] >> 4];
                out[2 * i + 1] = digits[b[i] & 0xf];
        }
        out[2 * len] = '\0';
}

static inline uint16_t unaligned_read_be16(const void *p) {
        const uint8_t *b = p;
        return (uint16_t) ((b[0] << 8) | b[1]);
}

static inline uint32_t unaligned_read_be32(const void *p) {
        const uint8_t *b = p;
        return ((uint32_t) b[0] << 24) | ((uint32_t) b[1] << 16) | ((uint32_t) b[2] << 8) | b[3];
}

static inline void unaligned_write_be16(void *p, uint16_t v) {
        uint8_t *b = p;
        b[0] = (uint8_t) (v >> 8);
        b[1] = (uint8_t) v;
}

static inline uint16_t unaligned_read_le16(const void *p) {
        const uint8_t *b = p;
        return (uint16_t) (b[0] | (b[1] << 8));
}

static inline uint32_t unaligned_read_le32(const void *p) {
        const uint8_t *b = p;
        return b[0] | ((uint32_t) b[1] << 8) | ((uint32_t) b[2] << 16) | ((uint32_t) b[3] << 24);
}

static inline void unaligned_write_le16(void *p, uint16_t v) {
        uint8_t *b = p;
        b[0] = (uint8_t) v;
        b[1] = (uint8_t) (v >> 8);
}

static inline void unaligned_write_le32(void *p, uint32_t v) {
        uint8_t *b = p;
        b[0] = (uint8_t) v;
        b[1] = (uint8_t) (v >> 8);
        b[2] = (uint8_t) (v >> 16);
        b[3] = (uint8_t) (v >> 24);
}

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
#define streq(a, b) (strcmp((a), (b)) == 0)

/* Whether the running program lives inside the build tree `build_root`
 * (SMPGW_BUILD_ROOT): then it is an uninstalled program (or test) of that
 * build, and the build's plugins and modules are the ones that match it.
 * An installed program never looks into a build tree, whatever is left
 * on disk. */
static inline bool running_from_build_tree(const char *build_root) {
        _cleanup_free_ char *exe = realpath("/proc/self/exe", NULL);
        _cleanup_free_ char *root = realpath(build_root, NULL);
        if (!exe || !root)
                return false;
        size_t n = strlen(root);
        return strncmp(exe, root, n) == 0 && exe[n] == '/';
}
