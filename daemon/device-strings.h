/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Device strings that a fleet repeats, shared (device-strings.c): a
 * fleet's boot loaders are one or two names ("MCUboot"), so each device
 * points at one reference counted copy instead of carrying its own
 * allocation (32 bytes of heap each, 0.3 MiB for 10,000 devices).  Only
 * for strings few distinct values of which are expected: an entry costs
 * a hash handle, more than a string of its own.
 *
 * The table is the manager's (manager->strings_shared, a uthash head);
 * an entry knows its table, so a device lets go of its string without
 * the manager at hand.
 */
#pragma once

#include <stddef.h>

#include "model-index.h"

struct device_string_entry {
        unsigned refs;
        struct device_string_entry **table;
        UT_hash_handle hh;
        char text[]; /* what devices point at, NUL-terminated */
};

/* The shared copy of the len bytes at s (a new reference), from *table
 * or added to it.  NULL: out of memory. */
const char *device_string_share(struct device_string_entry **table, const char *s, size_t len);
/* Lets go of a reference device_string_share() gave (NULL is fine). */
void device_string_release(const char *s);
