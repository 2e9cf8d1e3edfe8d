/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Phased jobs (job-scheduler.c): a job holds a radio slot only while a
 * phase talks to the device, so another device uploads while the first
 * one swaps and reboots; stage_only jobs wait in `staged` for
 * engine_job_activate(); the reboot gate holds a rollout's job staged
 * until engine_reboot_gate_changed(); slots go by priority; swap times
 * are learned per board, and the devices waiting on one verify when it
 * is learned; adapters' link limits are learned from
 * refusals.  Proved from the job events the manager delivered, not from
 * timing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core-harness.h"
#include "test-util.h"

#define SECONDS(n) ((uint64_t) (n) *1000000u)

static struct device **add_devices(struct core *c, enum core_fleet fleet, size_t n, struct device **out) {
        for (unsigned i = 0; i < n; i++) {
                out[i] = core_add_device(c, fleet, i + 1);
                core_sim(c, fleet, i + 1)->link.latency_ms = 1;
        }
        return out;
}

/* The index of the first event of a job entering state, from index
 * from on; SIZE_MAX when there is none. */
static size_t find_state(struct core *c, uint64_t job, enum job_state state, size_t from) {
        for (size_t i = from; i < c->n_events; i++) {
                const struct core_event *e = &c->events[i];
                if (e->type == MANAGER_EVENT_JOB_STATE && e->id == job && e->job_state == state)
                        return i;
        }
        return SIZE_MAX;
}

/* One slot, two devices, test-and-confirm with a long swap: the second
 * device's upload starts while the first one reboots (its job
 * `rebooting`, holding no slot), and both end updated.  With
 * hold_slot_during_reboot the second waits until the first finished:
 * the old way, and what the switch is for. */
static void run_two_with_one_slot(bool hold) {
        struct core *c = core_new();
        c->config->jobs_max_running = 1;
        c->config->job_hold_slot_during_reboot = hold;
        core_start(c);
        struct device *devs[2];
        add_devices(c, CORE_UDP, 2, devs);
        core_sim(c, CORE_UDP, 1)->params.swap_ms = 1500;
        core_sim(c, CORE_UDP, 2)->params.swap_ms = 1500;
        struct image *img = core_add_image(c, 16 * 1024, 21);

        struct job **jobs = core_push(c, img, devs, 2, "test-and-confirm", 1);
        uint64_t first = jobs[0]->id, second = jobs[1]->id;
        free(jobs);
        ASSERT_EQ(core_wait_finished(c, first, SECONDS(20))->outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_EQ(core_wait_finished(c, second, SECONDS(20))->outcome, SMP_UPDATE_OUTCOME_UPDATED);
        core_run_for(c, 100 * 1000); /* the last events delivered */

        if (getenv("CORE_DUMP_EVENTS"))
                for (size_t i = 0; i < c->n_events; i++)
                        if (c->events[i].type == MANAGER_EVENT_JOB_STATE)
                                fprintf(stderr, "event %zu job %" PRIu64 " %s\n", i, c->events[i].id,
                                        job_state_to_string(c->events[i].job_state));
        size_t rebooting = find_state(c, first, JOB_REBOOTING, 0);
        size_t first_done = find_state(c, first, JOB_SUCCEEDED, 0);
        size_t second_runs = find_state(c, second, JOB_RUNNING, 0);
        ASSERT_TRUE(rebooting != SIZE_MAX && first_done != SIZE_MAX && second_runs != SIZE_MAX);
        if (!hold) {
                /* The second starts once the first's reset is on its
                 * way, which may be before or after its answer came
                 * (test_slot_given_back_at_reset); the first's stage and
                 * activate ran before. */
                ASSERT_TRUE(find_state(c, first, JOB_RUNNING, 0) < second_runs);
                ASSERT_TRUE(second_runs < first_done);
                /* the first job came back for its verify: queued, then
                 * running again, while the second was on its way */
                size_t verify = find_state(c, first, JOB_RUNNING, rebooting);
                ASSERT_TRUE(verify != SIZE_MAX && verify < first_done);
        } else
                ASSERT_TRUE(first_done < second_runs);
        /* never two slots at once */
        ASSERT_EQ(c->max_running, 1u);
        ASSERT_EQ(core_sim(c, CORE_UDP, 1)->stats.resets, 1u);
        ASSERT_EQ(c->events_outside_delivery, 0);
        core_free(c);
}

static void test_slot_free_during_reboot(void) {
        run_two_with_one_slot(false);
}

static void test_hold_slot_during_reboot(void) {
        run_two_with_one_slot(true);
}

static bool job_state_is(struct core *c, void *userdata) {
        const uint64_t *want = userdata; /* id, state */
        struct job *j = manager_find_job(c->m, want[0]);
        return j && j->state == (enum job_state) want[1];
}

static bool job_at_step(struct core *c, void *userdata) {
        const uint64_t *want = userdata; /* id, step */
        struct job *j = manager_find_job(c->m, want[0]);
        return j && j->has_step && j->step == (enum smp_update_step) want[1];
}

/* A job gives its slot back when its activate sends the reset, not at
 * the reset's answer (which a device that resets may never send): with
 * one slot and the first device's answers slowed from its mark on, the
 * second job starts before the first hears its reset's answer (is
 * `rebooting`).  Before, the second waited for that answer.  Both end
 * updated, and never two jobs talk to their devices at once. */
static void test_slot_given_back_at_reset(void) {
        struct core *c = core_new();
        c->config->jobs_max_running = 1;
        core_start(c);
        struct device *devs[2];
        add_devices(c, CORE_UDP, 2, devs);
        core_sim(c, CORE_UDP, 1)->params.swap_ms = 300;
        core_sim(c, CORE_UDP, 2)->params.swap_ms = 300;
        struct image *img = core_add_image(c, 8 * 1024, 22);

        struct job **jobs = core_push(c, img, devs, 2, "test-and-confirm", 1);
        uint64_t first = jobs[0]->id, second = jobs[1]->id;
        free(jobs);
        uint64_t at_mark[2] = { first, SMP_UPDATE_STEP_MARK };
        ASSERT_TRUE(core_run_until(c, job_at_step, at_mark, SECONDS(10)));
        ASSERT_EQ(sim_fleet_fault(c->fleets[CORE_UDP], 1, "slow=600", NULL), 0);
        uint64_t heard[2] = { first, JOB_REBOOTING };
        ASSERT_TRUE(core_run_until(c, job_state_is, heard, SECONDS(10)));
        sim_fleet_clear_faults(c->fleets[CORE_UDP], 1); /* its verify is answered at once */
        ASSERT_EQ(core_wait_finished(c, first, SECONDS(20))->outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_EQ(core_wait_finished(c, second, SECONDS(20))->outcome, SMP_UPDATE_OUTCOME_UPDATED);
        core_run_for(c, 100 * 1000);

        size_t rebooting = find_state(c, first, JOB_REBOOTING, 0);
        size_t second_runs = find_state(c, second, JOB_RUNNING, 0);
        ASSERT_TRUE(rebooting != SIZE_MAX && second_runs != SIZE_MAX);
        ASSERT_TRUE(second_runs < rebooting);
        ASSERT_EQ(c->max_running, 1u);
        ASSERT_EQ(core_sim(c, CORE_UDP, 1)->stats.resets, 1u);
        ASSERT_EQ(c->events_outside_delivery, 0);
        core_free(c);
}

static bool job_in_state(struct core *c, void *userdata) {
        const uint64_t *want = userdata; /* id, state */
        struct job *j = manager_find_job(c->m, want[0]);
        return j && j->state == (enum job_state) want[1];
}

/* A stage_only job uploads and waits in `staged` without resetting the
 * device, across a restart, until it is activated; activate refuses a
 * job that is not staged. */
static void test_stage_only_waits_for_activate(void) {
        struct core *c = core_new();
        core_start(c);
        struct device *d = core_add_device(c, CORE_UDP, 1);
        core_sim(c, CORE_UDP, 1)->link.latency_ms = 1;
        struct image *img = core_add_image(c, 8192, 22);
        const struct engine_push push = { .mode = "test-and-confirm", .stage_only = true };

        struct job **jobs = core_push_with(c, img, &d, 1, &push);
        uint64_t id = jobs[0]->id;
        free(jobs);
        uint64_t want[2] = { id, JOB_STAGED };
        ASSERT_TRUE(core_run_until(c, job_in_state, want, SECONDS(10)));
        core_run_for(c, 500 * 1000);
        struct job *j = manager_find_job(c->m, id);
        ASSERT_EQ(j->state, JOB_STAGED);
        ASSERT_EQ(j->bytes_sent, j->bytes_total);
        ASSERT_EQ(core_sim(c, CORE_UDP, 1)->stats.resets, 0u);
        ASSERT_TRUE(!d->job); /* no slot held */

        core_restart(c);
        j = manager_find_job(c->m, id);
        ASSERT_EQ(j->state, JOB_STAGED);
        core_run_for(c, 300 * 1000);
        ASSERT_EQ(manager_find_job(c->m, id)->state, JOB_STAGED);
        ASSERT_EQ(core_sim(c, CORE_UDP, 1)->stats.resets, 0u);

        struct engine_error e;
        ASSERT_OK(engine_job_activate(c->m, j, &e));
        ASSERT_EQ(engine_job_activate(c->m, j, &e), -EINVAL);
        ASSERT_TRUE(strstr(e.message, "not staged"));
        j = core_wait_finished(c, id, SECONDS(10));
        ASSERT_EQ(j->state, JOB_SUCCEEDED);
        ASSERT_EQ(j->outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_EQ(core_sim(c, CORE_UDP, 1)->stats.resets, 1u);
        ASSERT_EQ(engine_job_activate(c->m, j, &e), -EINVAL);
        core_free(c);
}

struct gate {
        bool open;
        unsigned asked;
};

static bool gate_fn(struct manager *m, const struct job *j, void *userdata) {
        struct gate *g = userdata;
        g->asked++;
        ASSERT_EQ(j->rollout_id, 5u);
        return g->open;
}

/* A rollout's job asks the reboot gate before its reset: held, it
 * waits staged (the upload done, no reset) until the gate changes;
 * a plain job never asks. */
static void test_reboot_gate(void) {
        struct core *c = core_new();
        core_start(c);
        struct device *devs[2];
        add_devices(c, CORE_UDP, 2, devs);
        struct image *img = core_add_image(c, 8192, 23);
        struct gate g = {};
        engine_set_reboot_gate(c->m, gate_fn, &g);

        const struct engine_push rollout = { .mode = "test-and-confirm", .rollout_id = 5 };
        struct job **jobs = core_push_with(c, img, &devs[0], 1, &rollout);
        uint64_t held = jobs[0]->id;
        free(jobs);
        jobs = core_push(c, img, &devs[1], 1, "test-and-confirm", 1);
        uint64_t plain = jobs[0]->id;
        free(jobs);

        ASSERT_EQ(core_wait_finished(c, plain, SECONDS(10))->outcome, SMP_UPDATE_OUTCOME_UPDATED);
        uint64_t want[2] = { held, JOB_STAGED };
        ASSERT_TRUE(core_run_until(c, job_in_state, want, SECONDS(10)));
        core_run_for(c, 300 * 1000);
        ASSERT_EQ(manager_find_job(c->m, held)->state, JOB_STAGED);
        ASSERT_EQ(core_sim(c, CORE_UDP, 1)->stats.resets, 0u);
        ASSERT_TRUE(g.asked >= 1);

        g.open = true;
        engine_reboot_gate_changed(c->m);
        struct job *j = core_wait_finished(c, held, SECONDS(10));
        ASSERT_EQ(j->outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_EQ(core_sim(c, CORE_UDP, 1)->stats.resets, 1u);
        engine_set_reboot_gate(c->m, NULL, NULL);
        core_free(c);
}

/* With one slot, queued jobs start by priority (lower first), FIFO
 * among equals. */
static void test_priority_order(void) {
        struct core *c = core_new();
        c->config->jobs_max_running = 1;
        core_start(c);
        struct device *devs[4];
        add_devices(c, CORE_UDP, 4, devs);
        struct image *img = core_add_image(c, 4096, 24);
        /* the first push takes the slot; the rest queue behind it */
        const int64_t prio[4] = { 0, 9, 1, 1 };
        uint64_t ids[4];
        for (size_t i = 0; i < 4; i++) {
                const struct engine_push push = { .mode = "upload-only", .priority = prio[i] };
                struct job **jobs = core_push_with(c, img, &devs[i], 1, &push);
                ids[i] = jobs[0]->id;
                free(jobs);
        }
        for (size_t i = 0; i < 4; i++)
                ASSERT_EQ(core_wait_finished(c, ids[i], SECONDS(10))->state, JOB_SUCCEEDED);
        core_run_for(c, 100 * 1000);
        size_t at[4];
        for (size_t i = 0; i < 4; i++)
                at[i] = find_state(c, ids[i], JOB_RUNNING, 0);
        ASSERT_TRUE(at[0] < at[2] && at[2] < at[3] && at[3] < at[1]);
        core_free(c);
}

/* A verify that found the device back records its swap time for the
 * board (here the transport: the simulated OS info names none), and a
 * restart reads it back from the job history. */
static void test_swap_time_learned(void) {
        struct core *c = core_new();
        core_start(c);
        struct device *d = core_add_device(c, CORE_UDP, 1);
        core_sim(c, CORE_UDP, 1)->link.latency_ms = 1;
        core_sim(c, CORE_UDP, 1)->params.swap_ms = 1200;
        struct image *img = core_add_image(c, 8192, 25);
        char board[JOB_BOARD_SIZE];
        bool learned;

        job_device_board(d, board, sizeof(board));
        (void) job_swap_estimate_usec(c->m, board, 8192, &learned);
        ASSERT_TRUE(!learned);
        ASSERT_EQ(job_swap_estimate_usec(c->m, board, 8192, NULL), c->m->config->job_swap_estimate_usec);

        struct job **jobs = core_push(c, img, &d, 1, "test-and-confirm", 1);
        uint64_t id = jobs[0]->id;
        free(jobs);
        struct job *j = core_wait_finished(c, id, SECONDS(20));
        ASSERT_EQ(j->outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_TRUE(j->swap_usec >= 1200 * 1000);
        uint64_t size = j->bytes_total;
        uint64_t est = job_swap_estimate_usec(c->m, board, size, &learned);
        ASSERT_TRUE(learned);
        ASSERT_EQ(est, j->swap_usec);
        /* scaled by size */
        ASSERT_EQ(job_swap_estimate_usec(c->m, board, 2 * size, NULL), 2 * est);
        /* the timeout: at least 30 s, at most [jobs] swap_timeout */
        ASSERT_EQ(job_swap_timeout_usec(c->m, est), 30 * 1000000ull);
        ASSERT_EQ(job_swap_timeout_usec(c->m, 100 * 1000000ull), c->m->config->job_swap_timeout_usec);

        core_restart(c);
        ASSERT_EQ(job_swap_estimate_usec(c->m, board, size, &learned), est);
        ASSERT_TRUE(learned);
        core_free(c);
}

/* A board's first swap time, measured by a poll that waited for a slot:
 * the device came back somewhere between the poll's due time and its
 * answer, and the answer's time is what the others wait for (a wait too
 * short makes each of them miss a poll, a slot's worth).  One slot:
 * the first device (swap 1.2 s) polls 1 s after its reset, but the
 * second device's upload holds the slot for ~2.4 s. */
static void test_swap_sample_from_late_poll(void) {
        struct core *c = core_new();
        c->config->jobs_max_running = 1;
        core_start(c);
        struct device *devs[2];
        add_devices(c, CORE_UDP, 2, devs);
        core_sim(c, CORE_UDP, 1)->params.swap_ms = 1200;
        core_sim(c, CORE_UDP, 2)->link.bandwidth = 10000;
        struct image *img = core_add_image(c, 24 * 1024, 26);
        char board[JOB_BOARD_SIZE];
        bool learned;

        struct job **jobs = core_push(c, img, devs, 2, "test-and-confirm", 1);
        uint64_t first = jobs[0]->id, second = jobs[1]->id;
        free(jobs);
        struct job *j = core_wait_finished(c, first, SECONDS(20));
        ASSERT_EQ(j->outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_TRUE(j->swap_usec >= 1200 * 1000);
        job_device_board(devs[0], board, sizeof(board));
        ASSERT_TRUE(job_swap_estimate_usec(c->m, board, j->bytes_total, &learned) >= 1200 * 1000);
        ASSERT_TRUE(learned);
        ASSERT_EQ(core_wait_finished(c, second, SECONDS(20))->outcome, SMP_UPDATE_OUTCOME_UPDATED);
        core_free(c);
}

/* Events of a job entering state, from index from on. */
static unsigned count_state(struct core *c, uint64_t job, enum job_state state, size_t from) {
        unsigned n = 0;
        for (size_t i = from; i < c->n_events; i++)
                if (c->events[i].type == MANAGER_EVENT_JOB_STATE && c->events[i].id == job &&
                    c->events[i].job_state == state)
                        n++;
        return n;
}

/* A board nobody has measured: its scout (the oldest job) polls its
 * device every second; another job whose device reset after the scout's
 * does not poll at [jobs] swap_estimate intervals meanwhile (each poll
 * of a device not back costs a slot) but waits for the scout's
 * measurement, and its one verify finds the device back. */
static void test_others_wait_for_the_scout(void) {
        struct core *c = core_new();
        c->config->jobs_max_running = 2;
        c->config->job_swap_estimate_usec = SECONDS(1);
        core_start(c);
        struct device *devs[2];
        add_devices(c, CORE_UDP, 2, devs);
        core_sim(c, CORE_UDP, 1)->params.swap_ms = 3000;
        core_sim(c, CORE_UDP, 2)->params.swap_ms = 3000;
        core_sim(c, CORE_UDP, 2)->link.bandwidth = 200000; /* resets after the scout's device */
        struct image *img = core_add_image(c, 24 * 1024, 27);

        struct job **jobs = core_push(c, img, devs, 2, "test-and-confirm", 1);
        uint64_t scout = jobs[0]->id, other = jobs[1]->id;
        free(jobs);
        ASSERT_EQ(core_wait_finished(c, scout, SECONDS(20))->outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_EQ(core_wait_finished(c, other, SECONDS(20))->outcome, SMP_UPDATE_OUTCOME_UPDATED);
        core_run_for(c, 100 * 1000);

        if (getenv("CORE_DUMP_EVENTS"))
                for (size_t i = 0; i < c->n_events; i++)
                        if (c->events[i].type == MANAGER_EVENT_JOB_STATE)
                                fprintf(stderr, "event %zu job %" PRIu64 " %s\n", i, c->events[i].id,
                                        job_state_to_string(c->events[i].job_state));
        size_t scout_reboots = find_state(c, scout, JOB_REBOOTING, 0);
        size_t other_reboots = find_state(c, other, JOB_REBOOTING, 0);
        ASSERT_TRUE(scout_reboots != SIZE_MAX && other_reboots != SIZE_MAX);
        ASSERT_TRUE(scout_reboots < other_reboots);
        /* each verify waits for a slot: rebooting -> queued -> running */
        ASSERT_TRUE(count_state(c, scout, JOB_QUEUED, scout_reboots) >= 2); /* it polled */
        ASSERT_EQ(count_state(c, other, JOB_QUEUED, other_reboots), 1);     /* one verify */
        core_free(c);
}

/* A lone push to a board measured already: no upload waits for a slot,
 * so its first verify comes before the estimate (an upper bound: the
 * scout's poll found the device back up to a poll interval late) and
 * finds the device back then. */
static void test_idle_slots_verify_early(void) {
        struct core *c = core_new();
        core_start(c);
        struct device *devs[2];
        add_devices(c, CORE_UDP, 2, devs);
        core_sim(c, CORE_UDP, 1)->params.swap_ms = 1200;
        core_sim(c, CORE_UDP, 2)->params.swap_ms = 1200;
        struct image *img = core_add_image(c, 8192, 28);
        char board[JOB_BOARD_SIZE];
        bool learned;

        struct job **jobs = core_push(c, img, &devs[0], 1, "test-and-confirm", 1);
        uint64_t id = jobs[0]->id;
        free(jobs);
        struct job *j = core_wait_finished(c, id, SECONDS(20));
        ASSERT_EQ(j->outcome, SMP_UPDATE_OUTCOME_UPDATED);
        job_device_board(devs[1], board, sizeof(board));
        uint64_t estimate = job_swap_estimate_usec(c->m, board, j->bytes_total, &learned);
        ASSERT_TRUE(learned);
        ASSERT_TRUE(estimate >= 1500 * 1000); /* polled every second: found back at the second poll */

        jobs = core_push(c, img, &devs[1], 1, "test-and-confirm", 1);
        id = jobs[0]->id;
        free(jobs);
        j = core_wait_finished(c, id, SECONDS(20));
        ASSERT_EQ(j->outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_TRUE(j->swap_usec >= 1200 * 1000);
        ASSERT_TRUE(j->swap_usec <= estimate / 100 * 95);
        core_free(c);
}

/* Three devices of one board reset together, nothing measured yet: the
 * scout polls every second, the others at [jobs] swap_estimate (10 s).
 * When the scout measures the board, a device whose learned wait has
 * already passed verifies now; it used to keep its 10 s poll, and a
 * rollout's wave waited for it. */
static bool all_finished(struct core *c, void *userdata) {
        const uint64_t *ids = userdata;
        for (size_t i = 0; i < 3; i++) {
                struct job *j = manager_find_job(c->m, ids[i]);
                if (!j || !job_is_finished(j))
                        return false;
        }
        return true;
}

static void test_swap_learned_wakes_the_others(void) {
        struct core *c = core_new();
        c->config->jobs_max_running = 3;
        core_start(c);
        struct device *devs[3];
        add_devices(c, CORE_UDP, 3, devs);
        for (unsigned i = 1; i <= 3; i++)
                core_sim(c, CORE_UDP, i)->params.swap_ms = 200;
        ASSERT_EQ(c->m->config->job_swap_estimate_usec, SECONDS(10));
        struct image *img = core_add_image(c, 8192, 27);

        uint64_t start = core_now_usec();
        struct job **jobs = core_push(c, img, devs, 3, "test-and-confirm", 1);
        uint64_t ids[3] = { jobs[0]->id, jobs[1]->id, jobs[2]->id };
        free(jobs);
        ASSERT_TRUE(core_run_until(c, all_finished, ids, SECONDS(20)));
        uint64_t took = core_now_usec() - start;
        for (size_t i = 0; i < 3; i++)
                ASSERT_EQ(manager_find_job(c->m, ids[i])->outcome, SMP_UPDATE_OUTCOME_UPDATED);
        if (took >= SECONDS(5))
                fprintf(stderr, "three updates took %.1f s\n", took / 1e6);
        ASSERT_TRUE(took < SECONDS(5));
        core_free(c);
}

/* An adapter's limit: the configured one at first; a refusal with 3
 * links held makes it 3 (at least 1); enough connects raise it by one
 * again, never above the configuration. */
static void test_adapter_limit_learned(void) {
        struct core *c = core_new();
        c->config->jobs_max_running_ble_adapter = 5;
        core_start(c);
        ASSERT_EQ(job_adapter_limit(c->m, "hci0"), 5u);
        job_adapter_refused(c->m, "hci0", 3);
        ASSERT_EQ(job_adapter_limit(c->m, "hci0"), 3u);
        ASSERT_EQ(job_adapter_limit(c->m, "hci1"), 5u);
        size_t n;
        const struct job_adapter_limit *table = job_adapter_limits(c->m, &n);
        ASSERT_EQ(n, 1u);
        ASSERT_STREQ(table[0].name, "hci0");
        ASSERT_EQ(table[0].limit, 3u);
        job_adapter_refused(c->m, "hci0", 0);
        ASSERT_EQ(job_adapter_limit(c->m, "hci0"), 1u);
        for (unsigned i = 0; i < JOB_ADAPTER_RAISE_SUCCESSES; i++)
                job_adapter_connected(c->m, "hci0");
        ASSERT_EQ(job_adapter_limit(c->m, "hci0"), 2u);
        for (unsigned k = 0; k < 10; k++)
                for (unsigned i = 0; i < JOB_ADAPTER_RAISE_SUCCESSES; i++) {
                        job_adapter_connected(c->m, "hci0");
                        (void) job_adapter_limit(c->m, "hci0");
                }
        ASSERT_EQ(job_adapter_limit(c->m, "hci0"), 5u);
        core_free(c);
}

TEST_MAIN(TEST(test_slot_free_during_reboot), TEST(test_hold_slot_during_reboot), TEST(test_slot_given_back_at_reset),
          TEST(test_stage_only_waits_for_activate), TEST(test_reboot_gate), TEST(test_priority_order),
          TEST(test_swap_time_learned), TEST(test_swap_sample_from_late_poll), TEST(test_others_wait_for_the_scout),
          TEST(test_idle_slots_verify_early), TEST(test_swap_learned_wakes_the_others),
          TEST(test_adapter_limit_learned))
