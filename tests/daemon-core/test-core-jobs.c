/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The job scheduler, without REST or D-Bus: retries and their backoff,
 * the final refusal, the global and per-transport limits on running
 * jobs, resume after a stop with the same database, and cancel.  The
 * devices are smpsim's model in process (tests/lib/sim-transport.h), so
 * the whole program runs in a few seconds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core-harness.h"
#include "test-util.h"

#define SECONDS(n) ((uint64_t) (n) * 1000000u)

/* A link that closes as soon as it is open fails each attempt at once;
 * the job waits retry_delay, doubled per failed attempt and capped at
 * retry_delay_max (100, 200, 300 ms here), and fails when its attempts
 * are used up.  Attempts count what ended. */
static void test_retry_backoff(void) {
        struct core *c = core_new();
        core_start(c);
        struct device *d = core_add_device(c, CORE_UDP, 1);
        struct image *img = core_add_image(c, 4096, 1);
        core_link_faults(c, CORE_UDP, 1)->refuse = 100;

        struct job **jobs = core_push(c, img, &d, 1, NULL, 4);
        uint64_t id = jobs[0]->id;
        free(jobs);
        struct job *j = core_wait_finished(c, id, SECONDS(10));
        ASSERT_EQ(j->state, JOB_FAILED);
        ASSERT_EQ(j->attempts, 4);
        ASSERT_TRUE(j->error && strstr(j->error, "read-state"));

        /* The waits, as the job announced them. */
        const uint64_t want[] = { 100000, 200000, 300000 };
        size_t waits = 0;
        for (size_t i = 0; i < c->n_events; i++) {
                const struct core_event *e = &c->events[i];
                if (e->type != MANAGER_EVENT_JOB_STATE || e->id != id || e->job_state != JOB_RETRY_WAIT)
                        continue;
                ASSERT_TRUE(waits < ELEMENTSOF(want));
                ASSERT_EQ(e->attempts, waits + 1);
                uint64_t delay = e->next_attempt_usec - e->updated_usec;
                ASSERT_TRUE(delay <= want[waits] && delay + 5000 >= want[waits]);
                waits++;
        }
        ASSERT_EQ(waits, 3);
        ASSERT_EQ(c->events_outside_delivery, 0);
        core_free(c);
}

/* A device that refuses the image will refuse it again: no retry. */
static void test_refusal_is_final(void) {
        struct core *c = core_new();
        core_start(c);
        struct device *d = core_add_device(c, CORE_UDP, 1);
        struct image *img = core_add_image(c, 4096, 2);
        core_sim(c, CORE_UDP, 1)->params.slot_size = 1024;   /* the image does not fit */

        struct job **jobs = core_push(c, img, &d, 1, NULL, 5);
        struct job *j = core_wait_finished(c, jobs[0]->id, SECONDS(5));
        free(jobs);
        ASSERT_EQ(j->state, JOB_FAILED);
        ASSERT_EQ(j->attempts, 1);
        ASSERT_TRUE(j->error && strstr(j->error, "refused"));
        core_free(c);
}

/* A link that cannot be opened is an attempt that could not start: it
 * counts, and waits retry_delay. */
static void test_open_refused(void) {
        struct core *c = core_new();
        core_start(c);
        struct device *d = core_add_device(c, CORE_UDP, 1);
        struct image *img = core_add_image(c, 4096, 3);
        core_link_faults(c, CORE_UDP, 1)->refuse = 100;
        core_link_faults(c, CORE_UDP, 1)->refuse_at_open = true;

        struct job **jobs = core_push(c, img, &d, 1, NULL, 2);
        struct job *j = core_wait_finished(c, jobs[0]->id, SECONDS(5));
        free(jobs);
        ASSERT_EQ(j->state, JOB_FAILED);
        ASSERT_EQ(j->attempts, 2);
        ASSERT_TRUE(j->error && strstr(j->error, "cannot start"));
        core_free(c);
}

/* Devices 1..n of a fleet, each answer a millisecond on its way. */
static struct device **add_devices(struct core *c, enum core_fleet fleet, size_t n, struct device **out) {
        for (unsigned i = 0; i < n; i++) {
                out[i] = core_add_device(c, fleet, i + 1);
                core_sim(c, fleet, i + 1)->link.latency_ms = 1;
        }
        return out;
}

static void wait_all(struct core *c, struct job **jobs, size_t n) {
        uint64_t ids[16];
        ASSERT_TRUE(n <= ELEMENTSOF(ids));
        for (size_t i = 0; i < n; i++)
                ids[i] = jobs[i]->id;
        for (size_t i = 0; i < n; i++)
                ASSERT_EQ(core_wait_finished(c, ids[i], SECONDS(20))->state, JOB_SUCCEEDED);
}

/* [jobs] max_running: at most that many at once, and that many when
 * there is work for them. */
static void test_global_limit(void) {
        struct core *c = core_new();
        c->config->jobs_max_running = 2;
        core_start(c);
        struct device *devs[5];
        add_devices(c, CORE_UDP, 5, devs);
        struct image *img = core_add_image(c, 8192, 4);

        c->max_running = 0;
        struct job **jobs = core_push(c, img, devs, 5, NULL, 1);
        wait_all(c, jobs, 5);
        free(jobs);
        ASSERT_EQ(c->max_running, 2);
        core_free(c);
}

/* max_running_<transport> holds within the global limit: one serial job
 * at a time while udp ones run beside it. */
static void test_transport_limit(void) {
        struct core *c = core_new();
        c->config->jobs_max_running = 4;
        c->config->jobs_max_running_serial = 1;
        core_start(c);
        struct device *devs[5];
        add_devices(c, CORE_SERIAL, 3, devs);
        add_devices(c, CORE_UDP, 2, devs + 3);
        struct image *img = core_add_image(c, 8192, 5);

        c->max_running = c->max_running_serial = c->max_running_udp = 0;
        struct job **jobs = core_push(c, img, devs, 5, NULL, 1);
        wait_all(c, jobs, 5);
        free(jobs);
        ASSERT_EQ(c->max_running_serial, 1);
        ASSERT_EQ(c->max_running_udp, 2);
        ASSERT_EQ(c->max_running, 3);
        core_free(c);
}

static bool uploaded_a_third(struct core *c, void *userdata) {
        struct job *j = manager_find_job(c->m, *(uint64_t *) userdata);
        return j && j->state == JOB_RUNNING && j->bytes_sent * 3 >= j->bytes_total;
}

/* A stop (SIGTERM) leaves a running job queued where it was; the next
 * daemon on the same database resumes it, the device goes on from the
 * offset it reached, and the interrupted attempt does not count. */
static void test_resume(void) {
        struct core *c = core_new();
        core_start(c);
        struct device *d = core_add_device(c, CORE_UDP, 1);
        struct image *img = core_add_image(c, 64 * 1024, 6);
        size_t size = img->file_size;
        core_sim(c, CORE_UDP, 1)->link.latency_ms = 1;

        struct job **jobs = core_push(c, img, &d, 1, NULL, 3);
        uint64_t id = jobs[0]->id;
        free(jobs);
        ASSERT_TRUE(core_run_until(c, uploaded_a_third, &id, SECONDS(10)));
        uint64_t before_stop = core_sim(c, CORE_UDP, 1)->stats.upload_bytes;
        ASSERT_TRUE(before_stop > 0 && before_stop < size);

        core_restart(c);
        struct job *j = manager_find_job(c->m, id);
        ASSERT_TRUE(j);
        ASSERT_EQ(j->attempts, 0);
        j = core_wait_finished(c, id, SECONDS(10));
        ASSERT_EQ(j->state, JOB_SUCCEEDED);
        ASSERT_EQ(j->outcome, SMP_UPDATE_OUTCOME_UPLOADED);
        ASSERT_EQ(j->attempts, 1);
        /* Resumed, not started over: the device took each byte once. */
        ASSERT_EQ(core_sim(c, CORE_UDP, 1)->stats.upload_bytes, size);
        core_free(c);
}

static bool running_with_progress(struct core *c, void *userdata) {
        struct job *j = manager_find_job(c->m, *(uint64_t *) userdata);
        return j && j->state == JOB_RUNNING && j->bytes_sent > 0;
}

/* Cancel ends a running job at once and frees its device and its slot:
 * the queued job behind it starts, and a new push to the device is
 * accepted.  A queued job cancelled never starts. */
static void test_cancel(void) {
        struct core *c = core_new();
        c->config->jobs_max_running = 1;
        core_start(c);
        struct device *devs[3];
        add_devices(c, CORE_UDP, 3, devs);
        struct image *img = core_add_image(c, 32 * 1024, 7);

        struct job **jobs = core_push(c, img, devs, 3, NULL, 1);
        uint64_t first = jobs[0]->id, second = jobs[1]->id, third = jobs[2]->id;
        free(jobs);
        ASSERT_TRUE(core_run_until(c, running_with_progress, &first, SECONDS(5)));
        struct engine_error e;
        ASSERT_OK(engine_job_cancel(c->m, manager_find_job(c->m, third), &e));
        ASSERT_OK(engine_job_cancel(c->m, manager_find_job(c->m, first), &e));
        ASSERT_EQ(engine_job_cancel(c->m, manager_find_job(c->m, first), &e), -EALREADY);
        ASSERT_TRUE(strstr(e.message, "finished already"));
        struct device *d = manager_find_device(c->m, devs[0]->id);
        ASSERT_TRUE(!d->job && !d->unfinished_job);

        ASSERT_EQ(core_wait_finished(c, second, SECONDS(10))->state, JOB_SUCCEEDED);
        ASSERT_EQ(manager_find_job(c->m, third)->state, JOB_CANCELLED);
        ASSERT_EQ(core_sim(c, CORE_UDP, 3)->stats.upload_bytes, 0);
        jobs = core_push(c, img, &d, 1, NULL, 1);
        free(jobs);
        ASSERT_EQ(c->events_outside_delivery, 0);
        core_free(c);
}

TEST_MAIN(TEST(test_retry_backoff), TEST(test_refusal_is_final), TEST(test_open_refused), TEST(test_global_limit),
          TEST(test_transport_limit), TEST(test_resume), TEST(test_cancel))
