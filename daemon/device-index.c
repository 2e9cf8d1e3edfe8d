/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The devices by connection string (device-index.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "device-index.h"
#include "device.h"
#include "util.h"

#define INDEX_SIZE_MIN 64u

/* FNV-1a, finished so that the low bits (the slot) depend on every byte. */
static uint64_t conn_hash(const char *s) {
        uint64_t h = 0xcbf29ce484222325ull;

        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * 0x100000001b3ull;
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
        return h;
}

static void insert(struct device **slots, size_t size, struct device *d) {
        size_t mask = size - 1, i = conn_hash(d->conn) & mask;

        while (slots[i])
                i = (i + 1) & mask;
        slots[i] = d;
}

static int grow(struct device_conn_index *x) {
        size_t size = x->size ? x->size * 2 : INDEX_SIZE_MIN;
        struct device **slots;

        if (size > SIZE_MAX / sizeof(*slots))
                return -ENOMEM;
        slots = calloc(size, sizeof(*slots));
        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i < x->size; i++)
                if (x->slots[i])
                        insert(slots, size, x->slots[i]);
        free(x->slots);
        x->slots = slots;
        x->size = size;
        return 0;
}

int device_conn_index_add(struct device_conn_index *x, struct device *d) {
        if ((x->n + 1) * 4 > x->size * 3) {
                int r = grow(x);
                if (r < 0)
                        return r;
        }
        insert(x->slots, x->size, d);
        x->n++;
        return 0;
}

struct device *device_conn_index_find(const struct device_conn_index *x, const char *conn) {
        size_t mask, i;

        if (x->n == 0)
                return NULL;
        mask = x->size - 1;
        for (i = conn_hash(conn) & mask; x->slots[i]; i = (i + 1) & mask)
                if (streq(x->slots[i]->conn, conn))
                        return x->slots[i];
        return NULL;
}

void device_conn_index_remove(struct device_conn_index *x, const struct device *d) {
        size_t mask, hole, i;

        if (x->n == 0)
                return;
        mask = x->size - 1;
        for (hole = conn_hash(d->conn) & mask; x->slots[hole] && x->slots[hole] != d; hole = (hole + 1) & mask)
                ;
        if (!x->slots[hole])
                return;
        x->slots[hole] = NULL;
        x->n--;
        /* Backward shift: an entry after the hole whose home slot is not
         * between the hole and itself (cyclically) would no longer be
         * found past the hole, so it moves into it. */
        for (i = (hole + 1) & mask; x->slots[i]; i = (i + 1) & mask) {
                size_t home = conn_hash(x->slots[i]->conn) & mask;
                bool stays = hole <= i ? (hole < home && home <= i) : (hole < home || home <= i);
                if (stays)
                        continue;
                x->slots[hole] = x->slots[i];
                x->slots[i] = NULL;
                hole = i;
        }
}

void device_conn_index_clear(struct device_conn_index *x) {
        free(x->slots);
        *x = (struct device_conn_index) {};
}
