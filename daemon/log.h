/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwd's logging: to the journal with structured fields (DEVICE_ID=,
 * DEVICE_CONN=, JOB_ID=, IMAGE_ID=, ROLLOUT_ID=, ERRNO=, the caller's
 * CODE_FILE=/CODE_LINE=/CODE_FUNC=, and a MESSAGE_ID= for state changes)
 * when stderr is connected to it ($JOURNAL_STREAM), else one line per
 * message on stderr.  Either way the message begins with what it is about
 * ("device 2 udp:192.0.2.7:1337: ", "job 5 (device 2): "), so a line read
 * alone, or a journal shown without its fields, still says it.
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

/* MESSAGE_IDs of the state changes (generated once with
 * `systemd-id128 new`; doc/smpgwd.md lists them, never change them):
 * `journalctl MESSAGE_ID=... DEVICE_ID=2` follows one device. */
#define SMPGWD_MESSAGE_DEVICE_STATE "334c24f67cab42638b888443a4e9c690"
#define SMPGWD_MESSAGE_JOB_STATE "b00bb5ee6fd64f6e84a7fcd3b7589d2f"

void log_setup(int max_level);

/* Use the macros: they pass the caller's file, line and function. */
int log_internal(int prio, int error, const char *file, int line, const char *func, const char *message_id,
                 const struct device *d, const struct job *j, const char *image_id, const char *fmt, ...)
        __attribute__((format(printf, 10, 11)));

#define log_full_errno(prio, error, d, j, image_id, ...)                                                    \
        log_internal((prio), (error), __FILE__, __LINE__, __func__, NULL, (d), (j), (image_id), __VA_ARGS__)

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

/* A device's or a job's state changed (new → online, queued → running,
 * running → succeeded, ...): the same, with the state change's MESSAGE_ID. */
#define log_device_state(prio, d, ...)                                                                        \
        log_internal((prio), 0, __FILE__, __LINE__, __func__, SMPGWD_MESSAGE_DEVICE_STATE, (d), NULL, NULL,   \
                     __VA_ARGS__)
#define log_job_state(prio, j, ...)                                                                           \
        log_internal((prio), 0, __FILE__, __LINE__, __func__, SMPGWD_MESSAGE_JOB_STATE, NULL, (j), NULL,      \
                     __VA_ARGS__)
