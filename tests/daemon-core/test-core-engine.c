/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine as every front end calls it: a push is all or none, a
 * device is found by its id or any spelling of its connection string,
 * and the manager's events are queued, delivered outside every callback,
 * with removed objects still readable when their event arrives.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core-harness.h"
#include "engine-rollout.h"
#include "rollout-executor.h"
#include "rollout.h"
#include "sim-device.h"
#include "test-util.h"

#define SECONDS(n) ((uint64_t) (n) * 1000000u)

static int push(struct core *c, const char *image, const char *const *specs, size_t n, const char *mode,
                int64_t attempts, struct engine_error *e) {
        _cleanup_free_ struct job **jobs = NULL;
        const struct engine_push req = {
                .image = image,
                .devices = specs,
                .n_devices = n,
                .devices_listed = true,
                .mode = mode,
                .has_attempts = attempts != 0,
                .attempts = attempts,
        };
        return engine_push(c->m, &req, &jobs, e);
}

static void assert_refused(int r, const struct engine_error *e, int error, const char *field, ssize_t index,
                           const char *says) {
        if (r != error || !streq_ptr(e->field, field) || e->index != index || !strstr(e->message, says)) {
                fprintf(stderr, "refusal %d (%s, %zd): '%s'; wanted %d (%s, %zd) saying '%s'\n", r,
                        e->field ?: "-", e->index, e->message, error, field ?: "-", index, says);
                abort();
        }
        ASSERT_EQ(e->error, error);
}

/* Everything is checked before the first job is created: a refused push
 * leaves no job, no event, no database row. */
static void test_push_all_or_none(void) {
        struct core *c = core_new();
        core_start(c);
        struct device *a = core_add_device(c, CORE_UDP, 1), *b = core_add_device(c, CORE_UDP, 2);
        struct device *busy = core_add_device(c, CORE_UDP, 3);
        struct image *img = core_add_image(c, 4096, 1);
        struct engine_error e;
        char ida[24], idb[24], idbusy[24];

        snprintf(ida, sizeof(ida), "%" PRIu64, a->id);
        snprintf(idb, sizeof(idb), "%" PRIu64, b->id);
        snprintf(idbusy, sizeof(idbusy), "%" PRIu64, busy->id);
        /* its job waits to retry, unfinished */
        core_link_faults(c, CORE_UDP, 3)->refuse = 100;
        core_link_faults(c, CORE_UDP, 3)->refuse_at_open = true;
        ASSERT_OK(push(c, img->id, (const char *[]) { idbusy }, 1, NULL, 3, &e));
        core_run_for(c, 50000);
        size_t jobs = c->m->n_jobs, added = core_count_events(c, MANAGER_EVENT_JOB_ADDED, 0);

        assert_refused(push(c, img->id, (const char *[]) { ida, idb, idbusy }, 3, NULL, 0, &e), &e, -EBUSY,
                       "devices", 2, "(devices[2]) has an unfinished job");
        assert_refused(push(c, img->id, (const char *[]) { ida, "udp:c0:de:00:00:00:01" }, 2, NULL, 0, &e), &e,
                       -EINVAL, "devices", 1, "twice (devices[0] and devices[1])");
        assert_refused(push(c, img->id, (const char *[]) { ida, core_conn(c, CORE_UDP, 9) }, 2, NULL, 0, &e), &e,
                       -ENOENT, "devices", 1, "No device 'udp:C0:DE:00:00:00:09' (devices[1])");
        assert_refused(push(c, img->id, (const char *[]) { ida }, 0, NULL, 0, &e), &e, -EINVAL, "devices", -1,
                       "1 to 1000");
        const char **many = calloc(PUSH_DEVICES_MAX + 1, sizeof(*many));
        ASSERT_TRUE(many);
        for (size_t i = 0; i <= PUSH_DEVICES_MAX; i++)
                many[i] = ida;
        assert_refused(push(c, img->id, many, PUSH_DEVICES_MAX + 1, NULL, 0, &e), &e, -EINVAL, "devices", -1,
                       "1 to 1000");
        free(many);
        assert_refused(push(c, img->id, (const char *[]) { ida }, 1, "fast", 0, &e), &e, -EINVAL, "mode", -1,
                       "'mode' must be");
        assert_refused(push(c, img->id, (const char *[]) { ida }, 1, NULL, 101, &e), &e, -EINVAL, "attempts", -1,
                       "from 1 to 100");
        assert_refused(push(c, img->id, (const char *[]) { ida }, 1, NULL, -1, &e), &e, -EINVAL, "attempts", -1,
                       "from 1 to 100");
        assert_refused(push(c, "abc", (const char *[]) { ida }, 1, NULL, 0, &e), &e, -EINVAL, "image", -1,
                       "'image' must be");
        assert_refused(push(c, "0000000000", (const char *[]) { ida }, 1, NULL, 0, &e), &e, -ENOENT, "image", -1,
                       "No image");

        core_run_for(c, 50000);
        ASSERT_EQ(c->m->n_jobs, jobs);
        ASSERT_EQ(core_count_events(c, MANAGER_EVENT_JOB_ADDED, 0), added);

        /* And a good one: a job per device, in order, each linked. */
        _cleanup_free_ struct job **made = NULL;
        const struct engine_push ok = {
                .image = img->id, .devices = (const char *[]) { idb, "udp:c0:de:00:00:00:01" }, .n_devices = 2,
                .mode = "upload-only",
        };
        ASSERT_OK(engine_push(c->m, &ok, &made, &e));
        ASSERT_TRUE(made[0]->device == b && made[1]->device == a);
        ASSERT_TRUE(b->unfinished_job == made[0] && a->unfinished_job == made[1]);
        ASSERT_EQ(c->m->n_jobs, jobs + 2);
        core_free(c);
}

/* One lookup for every door: decimal ids, any spelling of a
 * connection string; nothing else. */
static void test_device_lookup(void) {
        struct core *c = core_new();
        core_start(c);
        struct device *d = core_add_device(c, CORE_UDP, 7);
        char id[24];

        snprintf(id, sizeof(id), "%" PRIu64, d->id);
        ASSERT_TRUE(engine_device_lookup(c->m, id) == d);
        ASSERT_TRUE(engine_device_lookup(c->m, "udp:C0:DE:00:00:00:07") == d);
        ASSERT_TRUE(engine_device_lookup(c->m, "udp:c0:de:00:00:00:07") == d);
        ASSERT_TRUE(engine_device_lookup(c->m, "udp:C0:DE:00:00:00:08") == NULL);
        ASSERT_TRUE(engine_device_lookup(c->m, "serial:C0:DE:00:00:00:07") == NULL);
        ASSERT_TRUE(engine_device_lookup(c->m, "999") == NULL);
        ASSERT_TRUE(engine_device_lookup(c->m, "") == NULL);
        ASSERT_TRUE(engine_device_lookup(c->m, "-1") == NULL);

        /* Adding any spelling again is the same device. */
        struct engine_error e;
        struct device *again;
        bool created;
        ASSERT_OK(engine_device_add(c->m, "udp:c0:de:00:00:00:07", "rest", &again, &created, &e));
        ASSERT_TRUE(again == d && !created);
        ASSERT_EQ(engine_device_add(c->m, "udp:C0:DE:00:00:07", "rest", &again, &created, &e), -EINVAL);
        ASSERT_TRUE(streq_ptr(e.field, "conn") && e.reason[0]);
        ASSERT_EQ(engine_device_add(c->m, "nosuch:127.0.0.1:1", "rest", &again, &created, &e), -EPROTONOSUPPORT);
        core_free(c);
}

static bool has_event(struct core *c, void *userdata) {
        return core_count_events(c, *(enum manager_event_type *) userdata, 0) > 0;
}

/* Events are queued, not delivered from inside the call that emits
 * them, only by the manager's delivery; a device forgotten
 * with its finished jobs is still whole when its events arrive (ASan
 * would see a freed one). */
static void test_events_queued_and_readable(void) {
        struct core *c = core_new();
        core_start(c);
        struct engine_error e;
        struct device *d;
        bool created;

        ASSERT_OK(engine_device_add(c->m, core_conn(c, CORE_UDP, 5), "rest", &d, &created, &e));
        ASSERT_EQ(core_count_events(c, MANAGER_EVENT_DEVICE_ADDED, 0), 0);
        enum manager_event_type added = MANAGER_EVENT_DEVICE_ADDED;
        ASSERT_TRUE(core_run_until(c, has_event, &added, SECONDS(1)));
        uint64_t id = d->id;

        struct image *img = core_add_image(c, 4096, 9);
        struct job **jobs = core_push(c, img, &d, 1, NULL, 1);
        uint64_t job = jobs[0]->id;
        free(jobs);
        ASSERT_EQ(core_wait_finished(c, job, SECONDS(5))->state, JOB_SUCCEEDED);
        core_run_for(c, 20000);

        ASSERT_OK(engine_device_forget(c->m, manager_find_device(c->m, id), &e));
        ASSERT_TRUE(manager_find_device(c->m, id) == NULL);
        ASSERT_TRUE(manager_find_job(c->m, job) == NULL);
        ASSERT_EQ(core_count_events(c, MANAGER_EVENT_DEVICE_REMOVED, 0), 0);
        enum manager_event_type removed = MANAGER_EVENT_DEVICE_REMOVED;
        ASSERT_TRUE(core_run_until(c, has_event, &removed, SECONDS(1)));
        ASSERT_EQ(core_count_events(c, MANAGER_EVENT_JOB_REMOVED, job), 1);
        /* What the observer read of them at delivery. */
        for (size_t i = 0; i < c->n_events; i++) {
                if (c->events[i].type == MANAGER_EVENT_DEVICE_REMOVED)
                        ASSERT_STREQ(c->events[i].what, "udp:C0:DE:00:00:00:05");
                if (c->events[i].type == MANAGER_EVENT_JOB_REMOVED)
                        ASSERT_STREQ(c->events[i].what, "succeeded");
        }
        /* The job's removal comes before its device's. */
        size_t job_at = 0, device_at = 0;
        for (size_t i = 0; i < c->n_events; i++) {
                if (c->events[i].type == MANAGER_EVENT_JOB_REMOVED)
                        job_at = i;
                if (c->events[i].type == MANAGER_EVENT_DEVICE_REMOVED)
                        device_at = i;
        }
        ASSERT_TRUE(job_at < device_at);
        ASSERT_EQ(c->events_outside_delivery, 0);

        /* An image removed: readable at delivery too. */
        char image_id[IMAGE_ID_LEN + 1];
        memcpy(image_id, img->id, sizeof(image_id));
        ASSERT_OK(engine_image_delete(c->m, img, &e));
        enum manager_event_type image_removed = MANAGER_EVENT_IMAGE_REMOVED;
        ASSERT_TRUE(core_run_until(c, has_event, &image_removed, SECONDS(1)));
        ASSERT_STREQ(c->events[c->n_events - 1].what, image_id);
        core_free(c);
}

static struct rollout_member *member_of(struct rollout *r, const struct device *d) {
        struct rollout_member *mem = rollout_find_member(r, d->id);
        ASSERT_TRUE(mem);
        return mem;
}

static bool probed_after(struct core *c, void *userdata) {
        const struct device *d = userdata;
        return !d->probe && !d->probe_queued && d->last_probe_usec > 0 && d->os_info;
}

/* A board filter over devices whose firmware has no OS info command: they
 * are members skipped with unknown-board; once a probe tells the board,
 * a matching one joins (pending) and another becomes
 * filter-no-longer-matches. */
static void test_rollout_board_learned_later(void) {
        struct core *c = core_new();
        struct engine_error e;
        struct rollout *r = NULL;

        core_start(c);
        core_sim(c, CORE_UDP, 1)->params.no_os_info = true;
        core_sim(c, CORE_UDP, 2)->params.no_os_info = true;
        struct device *d0 = core_add_device(c, CORE_UDP, 0);
        struct device *d1 = core_add_device(c, CORE_UDP, 1);
        struct device *d2 = core_add_device(c, CORE_UDP, 2);
        ASSERT_TRUE(d0->os_info && !d1->os_info && !d2->os_info);
        struct image *img = core_add_image(c, 2048, 5);
        json_t *spec = json_pack("{s:s, s:{s:{s:s}}, s:{s:s}}", "image", img->id, "targets", "filter", "board",
                                 "SMPSIM/nrf52840", "schedule", "start_at", "2099-01-01T00:00:00Z");
        ASSERT_OK(engine_rollout_create(c->m, spec, &r, &e));
        json_decref(spec);
        ASSERT_EQ(member_of(r, d0)->state, ROLLOUT_MEMBER_PENDING);
        ASSERT_EQ(member_of(r, d1)->state, ROLLOUT_MEMBER_SKIPPED);
        ASSERT_STREQ(member_of(r, d1)->reason, "unknown-board");
        ASSERT_STREQ(member_of(r, d2)->reason, "unknown-board");

        /* New firmware on both: one on the board, one on another. */
        core_sim(c, CORE_UDP, 1)->params.no_os_info = false;
        core_sim(c, CORE_UDP, 2)->params.no_os_info = false;
        snprintf(core_sim(c, CORE_UDP, 2)->params.board, sizeof(core_sim(c, CORE_UDP, 2)->params.board), "%s",
                 "stm32f4_disco");
        ASSERT_OK(device_probe(d1));
        ASSERT_OK(device_probe(d2));
        ASSERT_TRUE(core_run_until(c, probed_after, d1, 5000000));
        ASSERT_TRUE(core_run_until(c, probed_after, d2, 5000000));
        core_run_for(c, 50000);
        ASSERT_EQ(member_of(r, d1)->state, ROLLOUT_MEMBER_PENDING);
        ASSERT_EQ(member_of(r, d2)->state, ROLLOUT_MEMBER_SKIPPED);
        ASSERT_STREQ(member_of(r, d2)->reason, "filter-no-longer-matches");
        core_free(c);
}

static bool member_job_at(struct core *c, void *userdata) {
        const uint64_t *want = userdata; /* rollout, device, step or UINT64_MAX, state */
        struct rollout *r = rollout_executor_find(c->m->rollouts, want[0]);
        struct rollout_member *mem = r ? rollout_find_member(r, want[1]) : NULL;
        struct job *j = mem && mem->job_id ? manager_find_job(c->m, mem->job_id) : NULL;
        if (!j)
                return false;
        if (want[2] != UINT64_MAX)
                return j->has_step && j->step == (enum smp_update_step) want[2];
        return j->state == (enum job_state) want[3];
}

/* A member's upload progress is written with its next change, not on
 * its own: from the upload's start until the job is staged (a window
 * closed), the rollout is written once, for `staged`.  Before, every
 * loop iteration after a progress event wrote it (the check's step too):
 * a rollout doubled a fan-out's database transactions. */
static void test_rollout_progress_rides_along(void) {
        struct core *c = core_new();
        struct engine_error e;
        struct rollout *r = NULL;
        char window_from[8], window_to[8];
        time_t now = time(NULL);
        struct tm tm;

        core_start(c);
        struct device *d = core_add_device(c, CORE_UDP, 1);
        core_sim(c, CORE_UDP, 1)->link.latency_ms = 20;
        core_sim(c, CORE_UDP, 1)->link.bandwidth = 64 * 1024;
        struct image *img = core_add_image(c, 48 * 1024, 9);
        /* A window twelve hours away: closed now, so the job stays staged. */
        gmtime_r(&now, &tm);
        snprintf(window_from, sizeof(window_from), "%02d:00", (tm.tm_hour + 12) % 24);
        snprintf(window_to, sizeof(window_to), "%02d:30", (tm.tm_hour + 12) % 24);
        json_t *spec = json_pack("{s:s, s:{s:[I]}, s:{s:[{s:s, s:s}], s:s}}", "image", img->id, "targets", "devices",
                                 (json_int_t) d->id, "schedule", "windows", "from", window_from, "to", window_to,
                                 "timezone", "UTC");
        ASSERT_TRUE(spec);
        ASSERT_OK(engine_rollout_create(c->m, spec, &r, &e));
        json_decref(spec);
        uint64_t rollout_id = r->id;

        uint64_t uploading[4] = { rollout_id, d->id, SMP_UPDATE_STEP_UPLOAD, 0 };
        ASSERT_TRUE(core_run_until(c, member_job_at, uploading, SECONDS(10)));
        core_run_for(c, 50 * 1000);
        uint64_t writes = c->m->stats.rollout_writes;
        uint64_t staged[4] = { rollout_id, d->id, UINT64_MAX, JOB_STAGED };
        ASSERT_TRUE(core_run_until(c, member_job_at, staged, SECONDS(10)));
        core_run_for(c, 200 * 1000);
        ASSERT_TRUE(core_count_events(c, MANAGER_EVENT_JOB_PROGRESS, 0) >= 3);
        ASSERT_EQ(member_of(r, d)->state, ROLLOUT_MEMBER_STAGED);
        ASSERT_EQ(member_of(r, d)->bytes_sent, img->file_size);
        ASSERT_EQ(c->m->stats.rollout_writes - writes, 1u);
        core_free(c);
}

/* Issue 12: an image that declares its boards.  A rollout of listed
 * devices skips one of another board (incompatible-board) and those that
 * do not tell theirs (unknown-board); once a probe tells the board, a
 * matching one joins and another becomes incompatible-board.  A push to a
 * device of another board is refused (-ENOEXEC) unless forced. */
static void test_rollout_image_boards(void) {
        static const char *const boards[] = { "smpsim/nrf52840", "esp32" };
        struct core *c = core_new();
        struct engine_error e;
        struct rollout *r = NULL;
        struct job **jobs = NULL;

        core_start(c);
        core_sim(c, CORE_UDP, 1)->params.no_os_info = true;
        core_sim(c, CORE_UDP, 2)->params.no_os_info = true;
        snprintf(core_sim(c, CORE_UDP, 3)->params.board, sizeof(core_sim(c, CORE_UDP, 3)->params.board), "%s",
                 "stm32f4_disco@2");
        struct device *d[4];
        for (unsigned i = 0; i < 4; i++)
                d[i] = core_add_device(c, CORE_UDP, i);
        ASSERT_TRUE(d[0]->os_info && !d[1]->os_info && !d[2]->os_info && d[3]->os_info);
        struct image *img = core_add_image(c, 2048, 6);
        ASSERT_OK(engine_image_set_boards(c->m, img, boards, ELEMENTSOF(boards), &e));
        ASSERT_EQ(img->n_boards, 2);

        /* A plain push: refused for the other board, forced it goes. */
        const char *spec3 = core_conn(c, CORE_UDP, 3);
        struct engine_push push = { .image = img->id, .devices = &spec3, .n_devices = 1, .mode = "upload-only" };
        ASSERT_EQ(engine_push(c->m, &push, &jobs, &e), -ENOEXEC);
        ASSERT_TRUE(strstr(e.message, "reports board 'stm32f4_disco@2'"));
        ASSERT_EQ(c->m->n_jobs, 0);
        push.force = true;
        ASSERT_OK(engine_push(c->m, &push, &jobs, &e));
        uint64_t forced = jobs[0]->id;
        free(jobs);
        ASSERT_EQ(core_wait_finished(c, forced, SECONDS(5))->state, JOB_SUCCEEDED);

        json_t *spec = json_pack("{s:s, s:{s:[I, I, I, I]}, s:{s:s}}", "image", img->id, "targets", "devices",
                                 (json_int_t) d[0]->id, (json_int_t) d[1]->id, (json_int_t) d[2]->id,
                                 (json_int_t) d[3]->id, "schedule", "start_at", "2099-01-01T00:00:00Z");
        ASSERT_OK(engine_rollout_create(c->m, spec, &r, &e));
        json_decref(spec);
        ASSERT_EQ(member_of(r, d[0])->state, ROLLOUT_MEMBER_PENDING);
        ASSERT_STREQ(member_of(r, d[1])->reason, "unknown-board");
        ASSERT_STREQ(member_of(r, d[2])->reason, "unknown-board");
        ASSERT_EQ(member_of(r, d[3])->state, ROLLOUT_MEMBER_SKIPPED);
        ASSERT_STREQ(member_of(r, d[3])->reason, "incompatible-board");

        core_sim(c, CORE_UDP, 1)->params.no_os_info = false;
        core_sim(c, CORE_UDP, 2)->params.no_os_info = false;
        snprintf(core_sim(c, CORE_UDP, 2)->params.board, sizeof(core_sim(c, CORE_UDP, 2)->params.board), "%s",
                 "stm32f4_disco");
        ASSERT_OK(device_probe(d[1]));
        ASSERT_OK(device_probe(d[2]));
        ASSERT_TRUE(core_run_until(c, probed_after, d[1], 5000000));
        ASSERT_TRUE(core_run_until(c, probed_after, d[2], 5000000));
        core_run_for(c, 50000);
        ASSERT_EQ(member_of(r, d[1])->state, ROLLOUT_MEMBER_PENDING);
        ASSERT_EQ(member_of(r, d[2])->state, ROLLOUT_MEMBER_SKIPPED);
        ASSERT_STREQ(member_of(r, d[2])->reason, "incompatible-board");
        core_free(c);
}

static bool job_uploading(struct core *c, void *userdata) {
        struct job *j = manager_find_job(c->m, *(uint64_t *) userdata);
        return j && j->state == JOB_RUNNING && j->has_step && j->step == SMP_UPDATE_STEP_UPLOAD && j->bytes_sent > 0;
}

static bool member_has_job(struct core *c, void *userdata) {
        const uint64_t *want = userdata; /* rollout, device */
        struct rollout *r = rollout_executor_find(c->m->rollouts, want[0]);
        struct rollout_member *mem = r ? rollout_find_member(r, want[1]) : NULL;
        return mem && mem->in_flight && mem->job_id && manager_find_job(c->m, mem->job_id);
}

static void set_board(struct core *c, unsigned n, const char *board) {
        snprintf(core_sim(c, CORE_UDP, n)->params.board, sizeof(core_sim(c, CORE_UDP, n)->params.board), "%s", board);
}

/* A change of an image's boards judges again what has not started: a
 * queued job for a device of another board ends failed
 * (incompatible-board) unless it was pushed with force; a rollout's
 * pending member, and one whose job waits for its first slot, is skipped
 * (incompatible-board); a member skipped for its board joins once the
 * image takes it again.  An upload under way goes on. */
static void test_image_boards_change_rechecks(void) {
        static const char *const nrf[] = { "smpsim/nrf52840" };
        static const char *const label[] = { "grp" };
        struct core *c = core_new();
        struct engine_error e;
        struct rollout *by_label = NULL, *listed = NULL;
        struct device *d[7];

        c->config->jobs_max_running = 1; /* the running upload holds the one slot */
        core_start(c);
        for (unsigned i = 1; i < 7; i++)
                if (i != 4)
                        set_board(c, i, "stm32f4_disco");
        for (unsigned i = 0; i < 7; i++)
                d[i] = core_add_device(c, CORE_UDP, i);
        core_sim(c, CORE_UDP, 3)->link.latency_ms = 5;
        core_sim(c, CORE_UDP, 3)->link.bandwidth = 24 * 1024;
        struct image *img = core_add_image(c, 32 * 1024, 11); /* any board */

        /* d3: an upload under way. */
        _cleanup_free_ struct job **running = core_push(c, img, &d[3], 1, "upload-only", 1);
        uint64_t running_id = running[0]->id;
        ASSERT_TRUE(core_run_until(c, job_uploading, &running_id, SECONDS(10)));
        /* d1, d2 (forced), d0: queued for later. */
        struct engine_push later = { .mode = "upload-only", .not_before_usec = now_realtime_usec() + SECONDS(3600) };
        _cleanup_free_ struct job **plain = core_push_with(c, img, &d[1], 1, &later);
        _cleanup_free_ struct job **nrf_job = core_push_with(c, img, &d[0], 1, &later);
        later.force = true;
        _cleanup_free_ struct job **forced = core_push_with(c, img, &d[2], 1, &later);
        uint64_t plain_id = plain[0]->id, nrf_id = nrf_job[0]->id, forced_id = forced[0]->id;

        /* A rollout by label, not started (d4 on the image's board-to-be,
         * d5 not), and one of d6 started: its job waits for the slot. */
        ASSERT_OK(engine_device_set_labels(c->m, d[4], label, 1, &e));
        ASSERT_OK(engine_device_set_labels(c->m, d[5], label, 1, &e));
        json_t *spec = json_pack("{s:s, s:{s:{s:[s]}}, s:{s:s}}", "image", img->id, "targets", "filter", "labels",
                                 "grp", "schedule", "start_at", "2099-01-01T00:00:00Z");
        ASSERT_OK(engine_rollout_create(c->m, spec, &by_label, &e));
        json_decref(spec);
        spec = json_pack("{s:s, s:{s:[I]}}", "image", img->id, "targets", "devices", (json_int_t) d[6]->id);
        ASSERT_OK(engine_rollout_create(c->m, spec, &listed, &e));
        json_decref(spec);
        ASSERT_EQ(member_of(by_label, d[4])->state, ROLLOUT_MEMBER_PENDING);
        ASSERT_EQ(member_of(by_label, d[5])->state, ROLLOUT_MEMBER_PENDING);
        uint64_t listed_member[2] = { listed->id, d[6]->id };
        ASSERT_TRUE(core_run_until(c, member_has_job, listed_member, SECONDS(5)));
        uint64_t listed_job_id = member_of(listed, d[6])->job_id;
        ASSERT_EQ(manager_find_job(c->m, listed_job_id)->state, JOB_QUEUED);
        ASSERT_TRUE(job_uploading(c, &running_id));

        /* Now built for the nRF board only. */
        ASSERT_OK(engine_image_set_boards(c->m, img, nrf, 1, &e));
        core_run_for(c, 100 * 1000);
        struct job *j = manager_find_job(c->m, plain_id);
        ASSERT_EQ(j->state, JOB_FAILED);
        ASSERT_TRUE(j->error && strncmp(j->error, "incompatible-board", strlen("incompatible-board")) == 0);
        ASSERT_TRUE(strstr(j->error, "reports board 'stm32f4_disco'"));
        ASSERT_EQ(manager_find_job(c->m, forced_id)->state, JOB_QUEUED);
        ASSERT_EQ(manager_find_job(c->m, nrf_id)->state, JOB_QUEUED);
        ASSERT_EQ(member_of(by_label, d[4])->state, ROLLOUT_MEMBER_PENDING);
        ASSERT_EQ(member_of(by_label, d[5])->state, ROLLOUT_MEMBER_SKIPPED);
        ASSERT_STREQ(member_of(by_label, d[5])->reason, "incompatible-board");
        ASSERT_EQ(member_of(listed, d[6])->state, ROLLOUT_MEMBER_SKIPPED);
        ASSERT_STREQ(member_of(listed, d[6])->reason, "incompatible-board");
        j = manager_find_job(c->m, listed_job_id);
        ASSERT_EQ(j->state, JOB_FAILED);
        ASSERT_TRUE(j->error && strncmp(j->error, "incompatible-board", strlen("incompatible-board")) == 0);

        /* The upload under way is not interrupted; once it is done, the
         * skipped member is not retried. */
        ASSERT_EQ(core_wait_finished(c, running_id, SECONDS(15))->state, JOB_SUCCEEDED);
        core_run_for(c, 300 * 1000);
        ASSERT_EQ(member_of(listed, d[6])->state, ROLLOUT_MEMBER_SKIPPED);
        ASSERT_EQ(member_of(listed, d[6])->job_id, listed_job_id);

        /* Any board again: the member skipped for its board joins the
         * rollout not finished.  (The listed one completed: its one
         * member was skipped.) */
        ASSERT_OK(engine_image_set_boards(c->m, img, NULL, 0, &e));
        ASSERT_EQ(member_of(by_label, d[5])->state, ROLLOUT_MEMBER_PENDING);
        ASSERT_EQ(by_label->state, ROLLOUT_SCHEDULED);
        ASSERT_TRUE(rollout_is_finished(listed));
        ASSERT_EQ(manager_find_job(c->m, forced_id)->state, JOB_QUEUED);
        core_free(c);
}

/* A forced job keeps its force across a restart: the image's boards
 * changing again afterwards leaves it queued, as before the restart.
 * (Before migration 12 the flag lived in memory only and the job ended
 * failed with incompatible-board.) */
static void test_forced_job_survives_restart(void) {
        static const char *const nrf[] = { "smpsim/nrf52840" };
        static const char *const esp[] = { "esp32" };
        struct core *c = core_new();
        struct engine_error e;

        core_start(c);
        set_board(c, 1, "stm32f4_disco");
        set_board(c, 2, "stm32f4_disco");
        struct device *d[3];
        for (unsigned i = 1; i < 3; i++)
                d[i] = core_add_device(c, CORE_UDP, i);
        struct image *img = core_add_image(c, 4096, 12);
        ASSERT_OK(engine_image_set_boards(c->m, img, nrf, 1, &e));
        char image_id[sizeof(img->id)];
        snprintf(image_id, sizeof(image_id), "%s", img->id);

        struct engine_push later = { .mode = "upload-only",
                                     .not_before_usec = now_realtime_usec() + SECONDS(3600),
                                     .force = true };
        _cleanup_free_ struct job **forced = core_push_with(c, img, &d[1], 1, &later);
        uint64_t forced_id = forced[0]->id;
        /* An unforced job of the same device board, queued while the image
         * took any board: the control that a boards change is judged. */
        ASSERT_OK(engine_image_set_boards(c->m, img, NULL, 0, &e));
        later.force = false;
        _cleanup_free_ struct job **plain = core_push_with(c, img, &d[2], 1, &later);
        uint64_t plain_id = plain[0]->id;
        ASSERT_TRUE(manager_find_job(c->m, forced_id)->forced);

        core_restart(c);
        struct job *j = manager_find_job(c->m, forced_id);
        ASSERT_TRUE(j && j->forced && j->state == JOB_QUEUED);
        ASSERT_TRUE(!manager_find_job(c->m, plain_id)->forced);

        img = manager_find_image(c->m, image_id);
        ASSERT_TRUE(img);
        ASSERT_OK(engine_image_set_boards(c->m, img, esp, 1, &e));
        core_run_for(c, 100 * 1000);
        ASSERT_EQ(manager_find_job(c->m, forced_id)->state, JOB_QUEUED);
        j = manager_find_job(c->m, plain_id);
        ASSERT_EQ(j->state, JOB_FAILED);
        ASSERT_TRUE(j->error && strncmp(j->error, "incompatible-board", strlen("incompatible-board")) == 0);
        core_free(c);
}

TEST_MAIN(TEST(test_push_all_or_none), TEST(test_device_lookup), TEST(test_events_queued_and_readable),
          TEST(test_rollout_board_learned_later), TEST(test_rollout_progress_rides_along),
          TEST(test_rollout_image_boards), TEST(test_image_boards_change_rechecks),
          TEST(test_forced_job_survives_restart))
