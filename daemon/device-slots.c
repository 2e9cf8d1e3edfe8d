/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared image slot lists (device-slots.h).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "device-slots.h"
#include "util.h"

const struct smp_update_snapshot device_slots_none = {};

/* A copy with every byte that carries no meaning zero, so that two lists
 * that say the same are the same bytes (the table's key). */
static void normalize(const struct smp_update_snapshot *in, struct smp_update_snapshot *out) {
        memset(out, 0, sizeof(*out));
        out->n_slots = MIN(in->n_slots, (size_t) SMP_UPDATE_SLOTS_MAX);
        for (size_t i = 0; i < out->n_slots; i++) {
                const struct smp_update_slot *s = &in->slots[i];
                struct smp_update_slot *o = &out->slots[i];
                o->present = s->present;
                o->image = s->image;
                o->slot = s->slot;
                memcpy(o->version, s->version, strnlen(s->version, sizeof(o->version) - 1));
                memcpy(o->hash, s->hash, MIN(s->hash_len, sizeof(o->hash)));
                o->hash_len = s->hash_len;
                o->bootable = s->bootable;
                o->pending = s->pending;
                o->confirmed = s->confirmed;
                o->active = s->active;
                o->permanent = s->permanent;
        }
}

const struct smp_update_snapshot *device_slots_share(struct device_slots_entry **table,
                                                     const struct smp_update_snapshot *snap) {
        struct smp_update_snapshot key;
        struct device_slots_entry *e;
        bool hash_oom = false;

        normalize(snap, &key);
        if (key.n_slots == 0)
                return &device_slots_none;
        HASH_FIND(hh, *table, &key, sizeof(key), e);
        if (e) {
                e->refs++;
                return &e->snapshot;
        }
        e = calloc(1, sizeof(*e));
        if (!e)
                return NULL;
        e->snapshot = key;
        e->refs = 1;
        e->table = table;
        HASH_ADD(hh, *table, snapshot, sizeof(e->snapshot), e);
        if (hash_oom) {
                free(e);
                return NULL;
        }
        return &e->snapshot;
}

struct device_slots_entry *device_slots_entry_of(const struct smp_update_snapshot *s) {
        if (!s || s == &device_slots_none)
                return NULL;
        return (struct device_slots_entry *) ((char *) s - offsetof(struct device_slots_entry, snapshot));
}

void device_slots_release(const struct smp_update_snapshot *s) {
        struct device_slots_entry *e = device_slots_entry_of(s);

        if (!e)
                return;
        if (--e->refs > 0)
                return;
        HASH_DELETE(hh, *e->table, e);
        free(e->page_text);
        free(e);
}
