/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The few helpers the transport plugins share: scope-based cleanup and
 * small macros.  Plugins build against libsmpgw's public headers only, as
 * a plugin from outside this tree would; libsmpgw's private lib/util.h is
 * not theirs to include, so what they need is here, header-only (copy it
 * along with a plugin).
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Hands ownership on: returns the pointer and clears the variable. */
#define TAKE_PTR(p)                     \
        ({                              \
                __typeof__(p) _p_ = (p); \
                (p) = NULL;             \
                _p_;                    \
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

#define streq(a, b) (strcmp((a), (b)) == 0)

static inline uint16_t unaligned_read_be16(const void *p) {
        const uint8_t *b = p;
        return (uint16_t) ((b[0] << 8) | b[1]);
}
