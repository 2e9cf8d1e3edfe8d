/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Devices' image slot lists, shared (device-slots.c).  A fleet runs a
 * handful of firmware builds, so thousands of devices report a handful
 * of distinct lists: each device points at one shared, reference counted
 * copy instead of carrying its own 392 bytes (four slots, mostly empty).
 * A device's list is replaced, never changed in place.
 *
 * The table is the manager's (manager->slots_shared, a uthash head); an
 * entry knows its table, so a device lets go of its list without the
 * manager at hand.
 */
#pragma once

#include "model-index.h"
#include "smpgw/smp-update.h"

struct device_slots_entry {
        struct smp_update_snapshot snapshot; /* what devices point at */
        unsigned refs;
        struct device_slots_entry **table;
        /* The list as device pages show it (rest-device.c), NULL until the
         * first page with it: every device of the same firmware shows the
         * same text, and writing it (64 hex digits a hash) was a tenth of
         * a page's time.  Freed with the entry; the list never changes. */
        char *page_text;
        size_t page_text_len;
        UT_hash_handle hh;
};

/* The list of a device that reported none (or was never asked): shared
 * by all of them, never freed. */
extern const struct smp_update_snapshot device_slots_none;

/* The shared copy of snap (a new reference), from *table or added to it.
 * Only what the slots say is kept: the bytes of an unused slot, or past
 * a hash's length, are not part of it.  NULL: out of memory. */
const struct smp_update_snapshot *device_slots_share(struct device_slots_entry **table,
                                                     const struct smp_update_snapshot *snap);
/* The shared entry behind s, NULL for device_slots_none. */
struct device_slots_entry *device_slots_entry_of(const struct smp_update_snapshot *s);
/* Lets go of a reference device_slots_share() gave (device_slots_none and
 * NULL are fine). */
void device_slots_release(const struct smp_update_snapshot *s);
