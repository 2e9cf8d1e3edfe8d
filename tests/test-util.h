/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Minimal test helpers: each test program is a list of functions; a failed
 * check prints where and why and aborts the program, so meson reports it.
 */
#pragma once

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define ASSERT_TRUE(expr)                                                                 \
        do {                                                                              \
                if (!(expr)) {                                                            \
                        fprintf(stderr, "%s:%d: %s: assertion failed: %s\n", __FILE__,    \
                                __LINE__, __func__, #expr);                               \
                        abort();                                                          \
                }                                                                         \
        } while (0)

#define ASSERT_EQ(a, b)                                                                   \
        do {                                                                              \
                long long _a = (long long) (a), _b = (long long) (b);                     \
                if (_a != _b) {                                                           \
                        fprintf(stderr, "%s:%d: %s: %s == %s failed: %lld != %lld\n",     \
                                __FILE__, __LINE__, __func__, #a, #b, _a, _b);            \
                        abort();                                                          \
                }                                                                         \
        } while (0)

#define ASSERT_OK(expr)                                                                   \
        do {                                                                              \
                long long _r = (long long) (expr);                                        \
                if (_r < 0) {                                                             \
                        fprintf(stderr, "%s:%d: %s: %s failed: %s\n", __FILE__, __LINE__, \
                                __func__, #expr, strerror((int) -_r));                    \
                        abort();                                                          \
                }                                                                         \
        } while (0)

#define ASSERT_STREQ(a, b)                                                                \
        do {                                                                              \
                const char *_a = (a), *_b = (b);                                          \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                                  \
                        fprintf(stderr, "%s:%d: %s: \"%s\" != \"%s\"\n", __FILE__,        \
                                __LINE__, __func__, _a ? _a : "(null)",                   \
                                _b ? _b : "(null)");                                      \
                        abort();                                                          \
                }                                                                         \
        } while (0)

#define ASSERT_MEMEQ(a, b, n)                                                             \
        do {                                                                              \
                const uint8_t *_a = (const uint8_t *) (a), *_b = (const uint8_t *) (b);   \
                size_t _n = (n);                                                          \
                if (memcmp(_a, _b, _n) != 0) {                                            \
                        fprintf(stderr, "%s:%d: %s: %s and %s differ:\n", __FILE__,       \
                                __LINE__, __func__, #a, #b);                              \
                        for (size_t _i = 0; _i < _n; _i++)                                \
                                fprintf(stderr, "%s%02x", _i ? " " : "  got  ", _a[_i]);  \
                        fprintf(stderr, "\n");                                            \
                        for (size_t _i = 0; _i < _n; _i++)                                \
                                fprintf(stderr, "%s%02x", _i ? " " : "  want ", _b[_i]);  \
                        fprintf(stderr, "\n");                                            \
                        abort();                                                          \
                }                                                                         \
        } while (0)

typedef void (*test_func_t)(void);

struct test_case {
        const char *name;
        test_func_t func;
};

#define TEST(f) { #f, f }

/* TEST_ONLY=name[,name...] runs those cases alone (the others are
 * reported skipped): one case of a long file while working on it. */
static inline bool test_selected(const char *name) {
        const char *only = getenv("TEST_ONLY");
        size_t n = strlen(name);

        if (!only || !*only)
                return true;
        for (const char *p = only; p && *p;) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t) (comma - p) : strlen(p);
                if (len == n && strncmp(p, name, n) == 0)
                        return true;
                p = comma ? comma + 1 : NULL;
        }
        return false;
}

static inline int test_run_all(const struct test_case *cases, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (!test_selected(cases[i].name)) {
                        printf("ok %zu - %s # SKIP not in TEST_ONLY\n", i + 1, cases[i].name);
                        continue;
                }
                cases[i].func();
                printf("ok %zu - %s\n", i + 1, cases[i].name);
        }
        printf("1..%zu\n", n);
        return 0;
}

#define TEST_MAIN(...)                                                                    \
        int main(void) {                                                                  \
                static const struct test_case _cases[] = { __VA_ARGS__ };                 \
                return test_run_all(_cases, ELEMENTSOF(_cases));                          \
        }

/* Parses "0a 00 00 06 ..." (spaces optional) into buf; returns the count. */
static inline size_t test_hex(const char *hex, uint8_t *buf, size_t cap) {
        size_t n = 0;
        while (*hex) {
                if (*hex == ' ' || *hex == '\n') {
                        hex++;
                        continue;
                }
                unsigned v;
                if (sscanf(hex, "%2x", &v) != 1 || n >= cap)
                        abort();
                buf[n++] = (uint8_t) v;
                hex += 2;
        }
        return n;
}
