/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Running a test's sd-event loop: until a condition holds (with a
 * deadline, so a test that waits for something that never comes fails
 * instead of hanging), or for a while whatever happens.  Times are
 * CLOCK_MONOTONIC, as the loop's timers.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <systemd/sd-event.h>

#include "test-util.h"

#define TEST_USEC_PER_MSEC 1000u
#define TEST_USEC_PER_SEC 1000000u

static inline uint64_t test_now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * TEST_USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000u;
}

/* Runs e until cond(userdata) is true or timeout_usec passed; returns
 * cond's last answer.  The loop wakes at least every 100 ms to ask. */
static inline bool test_run_until_fn(sd_event *e, bool (*cond)(void *userdata), void *userdata,
                                     uint64_t timeout_usec) {
        uint64_t end = test_now_usec() + timeout_usec;
        while (!cond(userdata)) {
                uint64_t now = test_now_usec();
                if (now >= end)
                        return false;
                ASSERT_OK(sd_event_run(e, MIN(end - now, (uint64_t) 100000u)));
        }
        return true;
}

static inline bool test_flag_is_set(void *userdata) {
        return *(const bool *) userdata;
}

/* Runs e until *done or timeout_usec passed; returns *done. */
static inline bool test_run_until(sd_event *e, const bool *done, uint64_t timeout_usec) {
        return test_run_until_fn(e, test_flag_is_set, (void *) done, timeout_usec);
}

/* Runs e for usec, whatever happens. */
static inline void test_run_for(sd_event *e, uint64_t usec) {
        uint64_t end = test_now_usec() + usec;
        for (uint64_t now; (now = test_now_usec()) < end;)
                ASSERT_OK(sd_event_run(e, end - now));
}
