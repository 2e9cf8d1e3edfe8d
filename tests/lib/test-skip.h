/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Skipping a whole TAP test program when something it needs is missing
 * (no dbus-daemon, a transport this build left out): meson reports SKIP
 * with the reason, rather than a pass that tested nothing or a failure
 * that is not one.  Call it before the first "ok" line.
 */
#pragma once

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noreturn, format(printf, 1, 2))) static inline void test_skip_all(const char *fmt, ...) {
        va_list ap;
        printf("1..0 # SKIP ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        exit(EXIT_SUCCESS);
}
