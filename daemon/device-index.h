/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The manager's index of its devices by connection string
 * (device-index.c): an open addressing table of device pointers, linear
 * probing, at most three quarters full.  Eight bytes a slot, nothing in
 * the device: a uthash handle was 56 bytes in every device, plus its
 * buckets.  (By id, the manager's array is the index: it is kept in id
 * order, manager_find_device() searches it.)
 *
 * A device's conn is its key and must not change while it is in.
 */
#pragma once

#include <stddef.h>

struct device;

struct device_conn_index {
        struct device **slots;
        size_t size; /* a power of two, or 0 */
        size_t n;
};

/* 0, or -ENOMEM (the index is unchanged).  d's conn must not be in yet. */
int device_conn_index_add(struct device_conn_index *x, struct device *d);
/* d, which must be in. */
void device_conn_index_remove(struct device_conn_index *x, const struct device *d);
struct device *device_conn_index_find(const struct device_conn_index *x, const char *conn);
void device_conn_index_clear(struct device_conn_index *x);
