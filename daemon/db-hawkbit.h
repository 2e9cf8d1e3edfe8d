/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hawkBit client's rows (db/NNNN-hawkbit.sql): actions, queued
 * feedback, downloads.  Each call is its own write, at once: these rows
 * are what must survive a restart (feedback the server has not taken, a
 * job an action started).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct db;

struct db_hawkbit_action {
        uint64_t device_id, action_id;
        const char *state, *sha256, *url, *image_id, *update_type, *last_feedback;
        uint64_t size, job_id;
        bool window_open, scheduled_sent;
};

int db_hawkbit_action_save(struct db *db, const struct db_hawkbit_action *a);
int db_hawkbit_action_delete(struct db *db, uint64_t device_id);
int db_hawkbit_actions_load(struct db *db, int (*fn)(const struct db_hawkbit_action *a, void *userdata),
                            void *userdata);

int db_hawkbit_feedback_insert(struct db *db, uint64_t device_id, const char *controller_id, const char *path,
                               const char *body, int64_t *ret_id);
int db_hawkbit_feedback_delete(struct db *db, int64_t id);
int db_hawkbit_feedback_load(struct db *db,
                             int (*fn)(int64_t id, uint64_t device_id, const char *controller_id, const char *path,
                                       const char *body, void *userdata),
                             void *userdata);

int db_hawkbit_download_save(struct db *db, const char *sha256, const char *url, uint64_t size, const char *image_id);
int db_hawkbit_download_delete(struct db *db, const char *sha256);
int db_hawkbit_downloads_load(struct db *db,
                              int (*fn)(const char *sha256, const char *url, uint64_t size, const char *image_id,
                                        void *userdata),
                              void *userdata);
