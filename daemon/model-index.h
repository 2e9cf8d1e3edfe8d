/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The manager's indexes of images and jobs by id, and the shared slot
 * lists (device-slots.h), are uthash tables (Debian's uthash-dev, one
 * header): the handles live in the objects, the tables hang off the
 * manager.  Only manager.c adds to and removes from them.  Devices, many
 * and small, have leaner indexes (device-index.h).
 *
 * uthash exits the process when it cannot allocate, unless told
 * otherwise: here a failed add leaves the element out and sets the
 * variable hash_oom, which every function that adds declares
 * (`bool hash_oom = false;`) and checks.
 */
#pragma once

#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(obj) (hash_oom = true)
#include <uthash.h>
