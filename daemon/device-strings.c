/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared device strings (device-strings.h).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "device-strings.h"

const char *device_string_share(struct device_string_entry **table, const char *s, size_t len) {
        struct device_string_entry *e;
        bool hash_oom = false;

        HASH_FIND(hh, *table, s, len, e);
        if (e) {
                e->refs++;
                return e->text;
        }
        e = calloc(1, sizeof(*e) + len + 1);
        if (!e)
                return NULL;
        memcpy(e->text, s, len);
        e->refs = 1;
        e->table = table;
        HASH_ADD_KEYPTR(hh, *table, e->text, len, e);
        if (hash_oom) {
                free(e);
                return NULL;
        }
        return e->text;
}

void device_string_release(const char *s) {
        struct device_string_entry *e;

        if (!s)
                return;
        e = (struct device_string_entry *) (s - offsetof(struct device_string_entry, text));
        if (--e->refs > 0)
                return;
        HASH_DELETE(hh, *e->table, e);
        free(e);
}
