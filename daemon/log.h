/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwd's logging: to the journal with structured fields (DEVICE_ID=,
 * DEVICE_CONN=, JOB_ID=, IMAGE_ID=, ROLLOUT_ID=) when stderr is connected
 * to it ($JOURNAL_STREAM), else one line per message on stderr.
 * The log_*_errno() forms return the (negative) error they were given,
 * so `return log_error_errno(r, "...: %m")` logs and fails in one line.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <syslog.h>

struct device;
struct job;

/* Both set once by daemon/main.c before the loop starts. */
extern int smpgwd_log_max_level;
extern bool smpgwd_log_to_journal;

void log_setup(int max_level);

int log_full_errno(int prio, int error, const struct device *d, const struct job *j, const char *image_id,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#define log_full(prio, ...) log_full_errno((prio), 0, NULL, NULL, NULL, __VA_ARGS__)
#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)
#define log_error_errno(r, ...) log_full_errno(LOG_ERR, (r), NULL, NULL, NULL, __VA_ARGS__)
#define log_warning_errno(r, ...) log_full_errno(LOG_WARNING, (r), NULL, NULL, NULL, __VA_ARGS__)
#define log_debug_errno(r, ...) log_full_errno(LOG_DEBUG, (r), NULL, NULL, NULL, __VA_ARGS__)

#define log_device(prio, d, ...) log_full_errno((prio), 0, (d), NULL, NULL, __VA_ARGS__)
#define log_device_errno(prio, r, d, ...) log_full_errno((prio), (r), (d), NULL, NULL, __VA_ARGS__)
#define log_job(prio, j, ...) log_full_errno((prio), 0, NULL, (j), NULL, __VA_ARGS__)
#define log_job_errno(prio, r, j, ...) log_full_errno((prio), (r), NULL, (j), NULL, __VA_ARGS__)
#define log_image(prio, id, ...) log_full_errno((prio), 0, NULL, NULL, (id), __VA_ARGS__)
