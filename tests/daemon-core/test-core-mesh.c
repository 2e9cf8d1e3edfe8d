/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Mesh distributions in the daemon core: a manager on the test's loop, a
 * real database, and an in-process smpsim device that is a Bluetooth
 * Mesh Distributor (tools/smpsim/sim-mesh.h) reached over the "udp"
 * fleet, its time scaled so that a round takes tens of milliseconds.
 *
 *   - 1, 8 and 64 targets (64: eight rounds of targets_max 8, and one
 *     round of 64 whose receivers take several shell lines) end with
 *     every target on the new firmware, per the simulated nodes;
 *   - verify only, then apply;
 *   - two targets lost mid-transfer, re-driven in a later round;
 *   - a target that fails to apply every time: the distribution fails
 *     for it alone, with the reason, the others updated;
 *   - the Distributor reset mid-transfer (it forgets the round);
 *   - smpgwd stopped mid-distribution and started again on the files;
 *   - Zephyr 3.4's wording and a Distributor answering "rc";
 *   - answers cut off by the Distributor's log lines (every command of
 *     the way, polls in a row, and the bound); a resume to pull-only
 *     targets; no free slot after del-all; a metadata refusal not
 *     retried;
 *   - the inventory: mesh:<id>/<addr> without a plugin, canonical form,
 *     refusals;
 *   - rollouts: 8 mesh targets behind the Distributor and 2 direct UDP
 *     devices in one rollout end all updated, each wave's mesh members
 *     in one distribution, through a restart mid-distribution; a target
 *     that fails to apply is re-driven, then failed with its reason; a
 *     closed window makes the distribution verify-only until activate;
 *     pause/resume/cancel suspend/resume/cancel the distribution;
 *   - an image that declares boards: a distribution to targets whose
 *     direct device reports another board is refused, naming them,
 *     unless forced; the Distributor's own board does not matter.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core-harness.h"
#include "distribution.h"
#include "engine-rollout.h"
#include "rollout.h"
#include "sim-mesh.h"
#include "smpgw/mesh-dfu.h"
#include "test-util.h"

#define SECONDS(n) ((uint64_t) (n) *1000000u)
#define DIST_DEV 1u

struct mesh_setup {
        unsigned n_targets;
        unsigned targets_max;
        enum sim_mesh_zephyr zephyr;
        bool legacy_rc;
        double time_scale;
        bool metadata_check;
        uint32_t comp_hash;
};

static struct sim_mesh *make_distributor(struct core *c, const struct mesh_setup *s) {
        struct sim_device *sd = core_sim(c, CORE_UDP, DIST_DEV);
        struct sim_mesh_config cfg;

        sim_mesh_config_init(&cfg);
        cfg.n_targets = s->n_targets;
        cfg.targets_max = s->targets_max ? s->targets_max : 8;
        cfg.zephyr = s->zephyr;
        cfg.legacy_rc = s->legacy_rc;
        cfg.rate = 1000;
        cfg.time_scale = s->time_scale > 0 ? s->time_scale : 200;
        cfg.metadata_check = s->metadata_check;
        cfg.comp_hash = s->comp_hash;
        ASSERT_OK(sim_mesh_new(sd, &cfg, &sd->mesh));
        return sd->mesh;
}

static void drop_distributor(struct core *c) {
        struct sim_device *sd = core_sim(c, CORE_UDP, DIST_DEV);
        sd->mesh = sim_mesh_free(sd->mesh);
}

/* The Distributor in the inventory with its role, and its targets. */
static struct device *setup_inventory(struct core *c, unsigned n, struct device ***ret_targets) {
        struct device *dist = core_add_device(c, CORE_UDP, DIST_DEV);
        struct engine_error e;
        struct device **t = calloc(n, sizeof(*t));
        bool created;

        ASSERT_TRUE(t);
        ASSERT_OK(engine_device_set_role(c->m, dist, DEVICE_ROLE_MESH_DISTRIBUTOR, &e));
        for (unsigned i = 0; i < n; i++) {
                ASSERT_OK(engine_mesh_target_add(c->m, dist, (uint16_t) (0x0100 + i), "rest", &t[i], &created, &e));
                ASSERT_TRUE(created);
                ASSERT_TRUE(t[i]->mesh);
                ASSERT_STREQ(t[i]->transport, "mesh");
        }
        *ret_targets = t;
        return dist;
}

static struct distribution *start(struct core *c, struct device *dist, struct image *img, struct device **t, unsigned n,
                                  enum distribution_apply apply, unsigned attempts) {
        const struct distribution_policy p = {
                .apply = apply,
                .max_attempts = attempts,
                .poll_min_usec = 10000,
                .poll_max_usec = 40000,
        };
        struct distribution *d;
        struct engine_error e;

        ASSERT_OK(engine_distribution_start(c->m, dist, img, t, n, &p, &d, &e));
        return d;
}

static bool finished(struct core *c, void *userdata) {
        struct distribution *d = manager_find_distribution(c->m, *(uint64_t *) userdata);
        return d && distribution_is_finished(d);
}

static struct distribution *wait_finished(struct core *c, uint64_t id, unsigned seconds) {
        ASSERT_TRUE(core_run_until(c, finished, &id, SECONDS(seconds)));
        return manager_find_distribution(c->m, id);
}

/* The version a simulated node runs now. */
static char *node_version(struct sim_mesh *sm, uint16_t addr) {
        json_t *st = sim_mesh_state(sm), *nodes = json_object_get(st, "targets"), *n;
        size_t i;
        char *v = NULL;

        ASSERT_TRUE(json_is_array(nodes));
        json_array_foreach(nodes, i, n) if (json_integer_value(json_object_get(n, "addr")) == addr) v =
                strdup(json_string_value(json_object_get(n, "version")));
        json_decref(st);
        ASSERT_TRUE(v);
        return v;
}

static void assert_all_updated(struct core *c, struct sim_mesh *sm, struct distribution *d, struct image *img) {
        ASSERT_STREQ(distribution_state_to_string(d->state), "succeeded");
        for (size_t i = 0; i < d->n_targets; i++) {
                const struct distribution_target *t = &d->targets[i];
                ASSERT_EQ(t->state, DISTRIBUTION_TARGET_UPDATED);
                _cleanup_free_ char *v = node_version(sm, t->addr);
                ASSERT_STREQ(v, img->version);
                struct device *dev = manager_find_device(c->m, t->device_id);
                ASSERT_TRUE(dev && dev->mesh);
                ASSERT_STREQ(dev->mesh->version, img->version);
                ASSERT_EQ(strlen(dev->mesh->fwid), 16u);
        }
}

static void run_full(unsigned n, unsigned targets_max, enum sim_mesh_zephyr zephyr, bool legacy_rc,
                     unsigned want_rounds) {
        struct core *c = core_new();
        core_start(c);
        struct sim_mesh *sm = make_distributor(
                c, &(struct mesh_setup) {
                           .n_targets = n, .targets_max = targets_max, .zephyr = zephyr, .legacy_rc = legacy_rc });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, n, &t);
        struct image *img = core_add_image(c, 2048, 7);

        struct distribution *d = start(c, dist, img, t, n, DISTRIBUTION_APPLY_NOW, 1);
        d = wait_finished(c, d->id, 30);
        assert_all_updated(c, sm, d, img);
        ASSERT_EQ(d->rounds, want_rounds);
        ASSERT_TRUE(core_count_events(c, MANAGER_EVENT_DISTRIBUTION_STATE, d->id) >= 2);
        ASSERT_EQ(c->events_outside_delivery, 0u);

        /* Forgetting: the Distributor only once its targets are gone;
         * then its finished distribution stays as a record. */
        struct engine_error e;
        uint64_t dist_id = dist->id, did = d->id;
        ASSERT_EQ(engine_device_forget(c->m, dist, &e), -EBUSY);
        ASSERT_TRUE(strstr(e.message, "mesh targets"));
        for (unsigned i = 0; i < n; i++)
                ASSERT_OK(engine_device_forget(c->m, t[i], &e));
        ASSERT_OK(engine_device_forget(c->m, dist, &e));
        core_run_for(c, 10000);
        ASSERT_TRUE(!manager_find_device(c->m, dist_id));
        ASSERT_TRUE(manager_find_distribution(c->m, did));
        drop_distributor(c);
        core_free(c);
}

static void test_full_1(void) {
        run_full(1, 8, SIM_MESH_ZEPHYR_LATER, false, 1);
}

static void test_full_8(void) {
        run_full(8, 8, SIM_MESH_ZEPHYR_LATER, false, 1);
}

/* 64 targets, 8 per round: 8 rounds. */
static void test_full_64_rounds(void) {
        run_full(64, 8, SIM_MESH_ZEPHYR_LATER, false, 8);
}

/* 64 receivers in one round: several receivers-add lines of at most 255
 * characters. */
static void test_full_64_one_round(void) {
        run_full(64, 64, SIM_MESH_ZEPHYR_LATER, false, 1);
}

/* Zephyr 3.4: "Slot added. ID: N", hex addresses; and "rc" for "ret". */
static void test_zephyr_3_4_legacy_rc(void) {
        run_full(4, 8, SIM_MESH_ZEPHYR_3_4, true, 1);
}

static bool verified(struct core *c, void *userdata) {
        struct distribution *d = manager_find_distribution(c->m, *(uint64_t *) userdata);
        return d && d->state == DISTRIBUTION_VERIFIED;
}

static void test_verify_only_then_apply(void) {
        struct core *c = core_new();
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 3 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 3, &t);
        struct image *img = core_add_image(c, 2048, 8);
        struct engine_error e;

        struct distribution *d = start(c, dist, img, t, 3, DISTRIBUTION_APPLY_VERIFY_ONLY, 1);
        uint64_t id = d->id;
        ASSERT_TRUE(core_run_until(c, verified, &id, SECONDS(20)));
        /* Waiting: nobody applied, every node on the old firmware. */
        core_run_for(c, 300000);
        d = manager_find_distribution(c->m, id);
        ASSERT_EQ(d->state, DISTRIBUTION_VERIFIED);
        for (unsigned i = 0; i < 3; i++) {
                _cleanup_free_ char *v = node_version(sm, (uint16_t) (0x0100 + i));
                ASSERT_STREQ(v, "1.0.0+0");
                ASSERT_EQ(d->targets[i].phase, SMP_MESH_DFU_PHASE_VERIFY_OK);
        }
        ASSERT_OK(engine_distribution_apply(c->m, d, &e));
        d = wait_finished(c, id, 20);
        assert_all_updated(c, sm, d, img);
        drop_distributor(c);
        core_free(c);
}

static bool round_ended_with_pending(struct core *c, void *userdata) {
        struct distribution *d = manager_find_distribution(c->m, *(uint64_t *) userdata);
        for (size_t i = 0; d && i < d->n_targets; i++)
                if (d->targets[i].state == DISTRIBUTION_TARGET_PENDING && d->targets[i].attempts > 0)
                        return true;
        return d && distribution_is_finished(d);
}

/* Two of eight lost at 40 %: the round completes for six (the
 * Distributor calls that a success), the two are re-driven. */
static void test_two_lost_redriven(void) {
        struct core *c = core_new();
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 8, .time_scale = 50 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 8, &t);
        struct image *img = core_add_image(c, 2048, 9);
        const char *why;

        ASSERT_OK(sim_mesh_fault_apply(sm, "target=0x0102:lost-at=40", &why));
        ASSERT_OK(sim_mesh_fault_apply(sm, "target=0x0105:lost-at=40", &why));
        struct distribution *d = start(c, dist, img, t, 8, DISTRIBUTION_APPLY_NOW, 3);
        uint64_t id = d->id;
        ASSERT_TRUE(core_run_until(c, round_ended_with_pending, &id, SECONDS(20)));
        d = manager_find_distribution(c->m, id);
        ASSERT_TRUE(!distribution_is_finished(d));
        ASSERT_EQ(d->targets[2].state, DISTRIBUTION_TARGET_PENDING);
        ASSERT_EQ(d->targets[5].state, DISTRIBUTION_TARGET_PENDING);
        ASSERT_TRUE(d->targets[2].reason != NULL);
        ASSERT_EQ(d->targets[0].state, DISTRIBUTION_TARGET_UPDATED);
        /* They come back in range. */
        sim_mesh_clear_faults(sm);
        d = wait_finished(c, id, 20);
        assert_all_updated(c, sm, d, img);
        ASSERT_EQ(d->rounds, 2u);
        ASSERT_EQ(d->targets[2].attempts, 2u);
        ASSERT_EQ(d->targets[0].attempts, 1u);
        drop_distributor(c);
        core_free(c);
}

/* One target fails to apply, every time: after its attempts the
 * distribution fails for it alone; the Distributor's own "completed" is
 * not taken for a success. */
static void test_apply_fail(void) {
        struct core *c = core_new();
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 4 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 4, &t);
        struct image *img = core_add_image(c, 2048, 10);
        const char *why;

        ASSERT_OK(sim_mesh_fault_apply(sm, "target=0x0101:apply-fail", &why));
        struct distribution *d = start(c, dist, img, t, 4, DISTRIBUTION_APPLY_NOW, 2);
        d = wait_finished(c, d->id, 30);
        ASSERT_STREQ(distribution_state_to_string(d->state), "failed");
        ASSERT_EQ(d->rounds, 2u);
        ASSERT_EQ(d->targets[1].state, DISTRIBUTION_TARGET_FAILED);
        ASSERT_EQ(d->targets[1].attempts, 2u);
        ASSERT_TRUE(d->targets[1].reason && strstr(d->targets[1].reason, "apply"));
        for (unsigned i = 0; i < 4; i++) {
                if (i == 1)
                        continue;
                ASSERT_EQ(d->targets[i].state, DISTRIBUTION_TARGET_UPDATED);
                _cleanup_free_ char *v = node_version(sm, (uint16_t) (0x0100 + i));
                ASSERT_STREQ(v, img->version);
        }
        _cleanup_free_ char *v = node_version(sm, 0x0101);
        ASSERT_STREQ(v, "1.0.0+0");
        drop_distributor(c);
        core_free(c);
}

static bool transferring(struct core *c, void *userdata) {
        struct distribution *d = manager_find_distribution(c->m, *(uint64_t *) userdata);
        return d && d->step == DISTRIBUTION_STEP_TRANSFER && d->dfd_phase == SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE;
}

/* The Distributor resets mid-transfer: it comes back idle without
 * receivers, with its slot; the round goes again without spending an
 * attempt. */
static void test_distributor_reset(void) {
        struct core *c = core_new();
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 4, .time_scale = 20 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 4, &t);
        struct image *img = core_add_image(c, 2048, 11);

        struct distribution *d = start(c, dist, img, t, 4, DISTRIBUTION_APPLY_NOW, 1);
        uint64_t id = d->id;
        ASSERT_TRUE(core_run_until(c, transferring, &id, SECONDS(20)));
        sim_fleet_reboot(c->fleets[CORE_UDP], DIST_DEV, 200000);
        d = wait_finished(c, id, 30);
        assert_all_updated(c, sm, d, img);
        ASSERT_TRUE(d->rounds_lost >= 1);
        ASSERT_EQ(d->rounds, 1u);
        drop_distributor(c);
        core_free(c);
}

static bool distributor_suspended(struct core *c, void *userdata) {
        struct distribution *d = manager_find_distribution(c->m, *(uint64_t *) userdata);
        return d && d->dfd_phase == SMP_MESH_DFD_PHASE_TRANSFER_SUSPENDED;
}

/* Every target stops answering mid-transfer: the Distributor suspends
 * the transfer on its own.  That is no pause: smpgwd resumes it (a start
 * with the same parameters) after poll_max, which spends an attempt, and
 * the targets, back in range meanwhile, are updated in the same round. */
static void test_unasked_suspend_resumed(void) {
        struct core *c = core_new();
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 2, .time_scale = 20 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 2, &t);
        struct image *img = core_add_image(c, 2048, 12);
        const char *why;

        ASSERT_OK(sim_mesh_fault_apply(sm, "target=all:lost-at=30", &why));
        struct distribution *d = start(c, dist, img, t, 2, DISTRIBUTION_APPLY_NOW, 3);
        uint64_t id = d->id;
        ASSERT_TRUE(core_run_until(c, distributor_suspended, &id, SECONDS(20)));
        d = manager_find_distribution(c->m, id);
        ASSERT_EQ(d->state, DISTRIBUTION_RUNNING);
        sim_mesh_clear_faults(sm);
        d = wait_finished(c, id, 20);
        assert_all_updated(c, sm, d, img);
        ASSERT_EQ(d->rounds, 1u);
        ASSERT_EQ(d->targets[0].attempts, 2u);
        ASSERT_EQ(d->targets[1].attempts, 2u);
        drop_distributor(c);
        core_free(c);
}

/* The same, the targets gone for good: each resume and round spends an
 * attempt, and the distribution fails within them. */
static void test_unasked_suspend_gone(void) {
        struct core *c = core_new();
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 2, .time_scale = 20 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 2, &t);
        struct image *img = core_add_image(c, 2048, 13);
        const char *why;

        ASSERT_OK(sim_mesh_fault_apply(sm, "target=all:lost-at=30", &why));
        struct distribution *d = start(c, dist, img, t, 2, DISTRIBUTION_APPLY_NOW, 2);
        d = wait_finished(c, d->id, 30);
        ASSERT_EQ(d->state, DISTRIBUTION_FAILED);
        for (unsigned i = 0; i < 2; i++) {
                ASSERT_EQ(d->targets[i].state, DISTRIBUTION_TARGET_FAILED);
                ASSERT_EQ(d->targets[i].attempts, 2u);
                ASSERT_TRUE(d->targets[i].reason != NULL);
        }
        drop_distributor(c);
        core_free(c);
}

static bool suspended_state(struct core *c, void *userdata) {
        struct distribution *d = manager_find_distribution(c->m, *(uint64_t *) userdata);
        return d && d->state == DISTRIBUTION_SUSPENDED && d->dfd_phase == SMP_MESH_DFD_PHASE_TRANSFER_SUSPENDED;
}

/* A transfer the user suspended stays so, but not past the deadline:
 * then the round ends and the distribution fails, saying why. */
static void test_suspended_past_deadline(void) {
        struct core *c = core_new();
        core_start(c);
        make_distributor(c, &(struct mesh_setup) { .n_targets = 2, .time_scale = 2 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 2, &t);
        struct image *img = core_add_image(c, 2048, 14);
        struct engine_error e;
        struct distribution *d;
        const struct distribution_policy p = {
                .max_attempts = 3,
                .poll_min_usec = 10000,
                .poll_max_usec = 40000,
                .deadline_usec = now_realtime_usec() + SECONDS(3),
        };

        ASSERT_OK(engine_distribution_start(c->m, dist, img, t, 2, &p, &d, &e));
        uint64_t id = d->id;
        ASSERT_TRUE(core_run_until(c, transferring, &id, SECONDS(20)));
        ASSERT_OK(engine_distribution_suspend(c->m, manager_find_distribution(c->m, id), &e));
        ASSERT_TRUE(core_run_until(c, suspended_state, &id, SECONDS(5)));
        /* the Distributor reads 100 % while suspended: not taken */
        d = manager_find_distribution(c->m, id);
        for (unsigned i = 0; i < 2; i++)
                ASSERT_TRUE(d->targets[i].progress < 100);
        d = wait_finished(c, id, 10);
        ASSERT_EQ(d->state, DISTRIBUTION_FAILED);
        for (unsigned i = 0; i < 2; i++) {
                ASSERT_EQ(d->targets[i].state, DISTRIBUTION_TARGET_FAILED);
                ASSERT_TRUE(d->targets[i].reason && strstr(d->targets[i].reason, "deadline"));
        }
        drop_distributor(c);
        core_free(c);
}

static bool canceling(struct core *c, void *userdata) {
        json_t *st = sim_mesh_state(userdata);
        bool yes = json_integer_value(json_object_get(st, "phase")) == SMP_MESH_DFD_PHASE_CANCELING_UPDATE;
        (void) c;
        json_decref(st);
        return yes;
}

/* A cancel from an active transfer leaves the Distributor in "canceling
 * update" until its targets answered (up to the BLOB client's timeout);
 * a distribution started on it meanwhile (a user's retry, a rollout's
 * next wave) waits for it to go idle, then runs. */
static void test_start_while_canceling(void) {
        struct core *c = core_new();
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 2, .time_scale = 20 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 2, &t);
        struct image *img = core_add_image(c, 2048, 15);
        struct engine_error e;
        const char *why;

        /* 20 simulated s of canceling: 1 s here */
        ASSERT_OK(sim_mesh_set(sm, "cancel-ms", "20000", &why));
        struct distribution *d = start(c, dist, img, t, 2, DISTRIBUTION_APPLY_NOW, 1);
        uint64_t id = d->id;
        ASSERT_TRUE(core_run_until(c, transferring, &id, SECONDS(20)));
        ASSERT_OK(engine_distribution_cancel(c->m, manager_find_distribution(c->m, id), &e));
        d = wait_finished(c, id, 10);
        ASSERT_EQ(d->state, DISTRIBUTION_CANCELLED);
        ASSERT_TRUE(canceling(c, sm));

        d = start(c, dist, img, t, 2, DISTRIBUTION_APPLY_NOW, 1);
        id = d->id;
        d = wait_finished(c, id, 20);
        assert_all_updated(c, sm, d, img);
        ASSERT_TRUE(!canceling(c, sm));
        drop_distributor(c);
        core_free(c);
}

/* A Distributor whose SMP buffer (CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE,
 * 400 here) is smaller than a page of 8 receivers answers that page with
 * SMP rc 7 (EMSGSIZE) and no output: the page shrinks to what fits and
 * the distribution goes on. */
static void test_receivers_page_too_large(void) {
        struct core *c = core_new();
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 8 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 8, &t);
        struct image *img = core_add_image(c, 2048, 16);
        const char *why;

        ASSERT_OK(sim_mesh_set(sm, "netbuf", "400", &why));
        struct distribution *d = start(c, dist, img, t, 8, DISTRIBUTION_APPLY_NOW, 1);
        d = wait_finished(c, d->id, 30);
        assert_all_updated(c, sm, d, img);
        ASSERT_EQ(d->page_size, 2u);
        drop_distributor(c);
        core_free(c);
}

static unsigned log_bursts_left(struct sim_mesh *sm) {
        json_t *st = sim_mesh_state(sm);
        unsigned n = (unsigned) json_integer_value(json_object_get(st, "log_bursts"));
        json_decref(st);
        return n;
}

/* The Distributor's shell output buffer is also a log backend: a burst of
 * log lines fills it and cuts the answer off.  Three `dfd get` answers in
 * a row cut so are asked again, and the distribution goes on. */
static void test_log_burst_polls(void) {
        struct core *c = core_new();
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 2, .time_scale = 20 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 2, &t);
        struct image *img = core_add_image(c, 2048, 17);
        const char *why;

        struct distribution *d = start(c, dist, img, t, 2, DISTRIBUTION_APPLY_NOW, 1);
        uint64_t id = d->id;
        ASSERT_TRUE(core_run_until(c, transferring, &id, SECONDS(20)));
        ASSERT_OK(sim_mesh_set(sm, "log-burst", "3:get", &why));
        d = wait_finished(c, id, 20);
        ASSERT_EQ(log_bursts_left(sm), 0u);
        assert_all_updated(c, sm, d, img);
        ASSERT_EQ(d->rounds, 1u);
        drop_distributor(c);
        core_free(c);
}

/* ... but not for ever: past DISTRIBUTION_GARBLED_MAX in a row the
 * distribution fails, saying so. */
static void test_log_burst_bounded(void) {
        struct core *c = core_new();
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 2, .time_scale = 20 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 2, &t);
        struct image *img = core_add_image(c, 2048, 18);
        const char *why;

        struct distribution *d = start(c, dist, img, t, 2, DISTRIBUTION_APPLY_NOW, 1);
        uint64_t id = d->id;
        ASSERT_TRUE(core_run_until(c, transferring, &id, SECONDS(20)));
        ASSERT_OK(sim_mesh_set(sm, "log-burst", "100:get", &why));
        d = wait_finished(c, id, 20);
        ASSERT_EQ(d->state, DISTRIBUTION_FAILED);
        ASSERT_TRUE(d->error && strstr(d->error, "dfd get: unexpected answer") && strstr(d->error, "6 in a row"));
        ASSERT_EQ(log_bursts_left(sm), 100u - (DISTRIBUTION_GARBLED_MAX + 1u));
        drop_distributor(c);
        core_free(c);
}

/* One cut answer to each command of a distribution's way (capabilities,
 * slot, receivers, the round's start): each is checked or sent again,
 * and the distribution ends with every target updated in one round. */
static void test_log_burst_each_command(void) {
        static const char *const words[] = {
                "capabilities-get", "del-all", "add", "receivers-delete-all", "receivers-add", "start", "receivers-get",
        };

        for (size_t w = 0; w < ELEMENTSOF(words); w++) {
                struct core *c = core_new();
                core_start(c);
                struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 2 });
                _cleanup_free_ struct device **t = NULL;
                struct device *dist = setup_inventory(c, 2, &t);
                struct image *img = core_add_image(c, 2048, 19);
                char spec[64];
                const char *why;

                snprintf(spec, sizeof(spec), "1:%s", words[w]);
                ASSERT_OK(sim_mesh_set(sm, "log-burst", spec, &why));
                struct distribution *d = start(c, dist, img, t, 2, DISTRIBUTION_APPLY_NOW, 1);
                d = wait_finished(c, d->id, 30);
                if (d->state != DISTRIBUTION_SUCCEEDED)
                        fprintf(stderr, "cut answer to %s: %s\n", words[w], d->error ?: "");
                ASSERT_EQ(log_bursts_left(sm), 0u);
                assert_all_updated(c, sm, d, img);
                ASSERT_EQ(d->rounds, 1u);
                drop_distributor(c);
                core_free(c);
        }
}

/* Targets whose BLOB servers take pull only: the Distributor's BLOB
 * client runs the transfer in pull mode though the start said push
 * (dfu_cli.c blob_caps()), and resumes only a start that says pull.  A
 * user's suspend and resume then goes on: with the parameters `dfd get`
 * printed; with those of the refusal when it printed none; and through a
 * resume whose answer was cut. */
static void test_resume_pull_only(void) {
        for (unsigned variant = 0; variant < 3; variant++) {
                struct core *c = core_new();
                core_start(c);
                struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 2, .time_scale = 5 });
                _cleanup_free_ struct device **t = NULL;
                struct device *dist = setup_inventory(c, 2, &t);
                struct image *img = core_add_image(c, 2048, 20);
                struct engine_error e;
                const char *why;

                ASSERT_OK(sim_mesh_set(sm, "target-modes", "pull", &why));
                struct distribution *d = start(c, dist, img, t, 2, DISTRIBUTION_APPLY_NOW, 1);
                uint64_t id = d->id;
                ASSERT_EQ(d->policy.xfer_mode, SMP_MESH_XFER_MODE_PUSH);
                ASSERT_TRUE(core_run_until(c, transferring, &id, SECONDS(20)));
                ASSERT_OK(engine_distribution_suspend(c->m, manager_find_distribution(c->m, id), &e));
                ASSERT_TRUE(core_run_until(c, suspended_state, &id, SECONDS(5)));
                d = manager_find_distribution(c->m, id);
                if (variant == 1) {
                        ASSERT_TRUE(d->has_dfd_params);
                        ASSERT_EQ(d->dfd_params.xfer_mode, SMP_MESH_XFER_MODE_PULL);
                        d->has_dfd_params = false; /* answers cut before the parameters */
                }
                if (variant == 2)
                        ASSERT_OK(sim_mesh_set(sm, "log-burst", "1:start", &why));
                ASSERT_OK(engine_distribution_resume(c->m, d, &e));
                d = wait_finished(c, id, 20);
                if (d->state != DISTRIBUTION_SUCCEEDED)
                        fprintf(stderr, "variant %u: %s\n", variant, d->error ?: "");
                assert_all_updated(c, sm, d, img);
                ASSERT_EQ(d->rounds, 1u);
                ASSERT_EQ(log_bursts_left(sm), 0u);
                drop_distributor(c);
                core_free(c);
        }
}

/* `dfu slot del-all` deletes registered slots only: one an unfinished
 * upload over the mesh reserved stays until the Distributor restarts,
 * and the failure says so. */
static void test_no_free_slot_says_why(void) {
        struct core *c = core_new();
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 2 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 2, &t);
        struct image *img = core_add_image(c, 2048, 21);
        const char *why;

        ASSERT_OK(sim_mesh_set(sm, "reserved-slots", "1", &why));
        struct distribution *d = start(c, dist, img, t, 2, DISTRIBUTION_APPLY_NOW, 1);
        d = wait_finished(c, d->id, 30);
        ASSERT_EQ(d->state, DISTRIBUTION_FAILED);
        ASSERT_TRUE(d->error && strstr(d->error, "no free DFU slot") && strstr(d->error, "restarts"));
        drop_distributor(c);
        core_free(c);
}

/* smpgwd stops mid-transfer and starts again on the same files: the
 * distribution is read back, reconnects, finds the round running and
 * finishes it. */
static void test_restart_mid_distribution(void) {
        struct core *c = core_new();
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 8, .time_scale = 20 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 8, &t);
        struct image *img = core_add_image(c, 2048, 12);
        char version[32];

        snprintf(version, sizeof(version), "%s", img->version);
        struct distribution *d = start(c, dist, img, t, 8, DISTRIBUTION_APPLY_NOW, 1);
        uint64_t id = d->id;
        ASSERT_TRUE(core_run_until(c, transferring, &id, SECONDS(20)));
        core_restart(c);
        d = manager_find_distribution(c->m, id);
        ASSERT_TRUE(d);
        ASSERT_TRUE(!distribution_is_finished(d));
        ASSERT_EQ(d->step, DISTRIBUTION_STEP_TRANSFER);
        d = wait_finished(c, id, 30);
        ASSERT_STREQ(distribution_state_to_string(d->state), "succeeded");
        ASSERT_EQ(d->rounds, 1u);
        for (size_t i = 0; i < d->n_targets; i++) {
                _cleanup_free_ char *v = node_version(sm, d->targets[i].addr);
                ASSERT_STREQ(v, version);
        }
        /* And once more after it finished: the result is on disk. */
        core_restart(c);
        d = manager_find_distribution(c->m, id);
        ASSERT_TRUE(d && d->state == DISTRIBUTION_SUCCEEDED && d->n_targets == 8);
        struct device *dev = manager_find_device(c->m, d->targets[3].device_id);
        ASSERT_TRUE(dev && dev->mesh);
        ASSERT_STREQ(dev->mesh->version, version);
        drop_distributor(c);
        core_free(c);
}

/* [rollouts] keep_finished: finished distributions of no rollout past the
 * bound go, object (distribution-removed) and rows, the oldest first; at
 * start a smaller bound applies to what the database holds. */
static void test_keep_finished(void) {
        struct core *c = core_new();
        uint64_t ids[3];

        c->config->rollout_keep_finished = 2;
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 1 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 1, &t);
        for (unsigned i = 0; i < ELEMENTSOF(ids); i++) {
                struct image *img = core_add_image(c, 2048, 31 + i);
                struct distribution *d = start(c, dist, img, t, 1, DISTRIBUTION_APPLY_NOW, 1);
                ids[i] = d->id;
                d = wait_finished(c, ids[i], 30);
                ASSERT_STREQ(distribution_state_to_string(d->state), "succeeded");
        }
        core_run_for(c, 200000);
        ASSERT_TRUE(!manager_find_distribution(c->m, ids[0]));
        ASSERT_TRUE(manager_find_distribution(c->m, ids[1]));
        ASSERT_TRUE(manager_find_distribution(c->m, ids[2]));
        ASSERT_EQ(core_count_events(c, MANAGER_EVENT_DISTRIBUTION_REMOVED, ids[0]), 1u);
        ASSERT_EQ(core_count_events(c, MANAGER_EVENT_DISTRIBUTION_REMOVED, 0), 1u);

        c->config->rollout_keep_finished = 1;
        core_restart(c);
        ASSERT_TRUE(!manager_find_distribution(c->m, ids[0])); /* its rows went too */
        core_run_for(c, 200000);
        ASSERT_TRUE(!manager_find_distribution(c->m, ids[1]));
        ASSERT_TRUE(manager_find_distribution(c->m, ids[2]));
        (void) sm;
        drop_distributor(c);
        core_free(c);
}

static bool uploading(struct core *c, void *userdata) {
        struct distribution *d = manager_find_distribution(c->m, *(uint64_t *) userdata);
        return d && d->step == DISTRIBUTION_STEP_UPLOAD && d->upload;
}

/* Cancelled mid-upload: it stops there, every target cancelled, the
 * Distributor untouched (no slot registered, no receivers). */
static void test_cancel_mid_upload(void) {
        struct core *c = core_new();
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 2 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 2, &t);
        struct image *img = core_add_image(c, 200000, 13);
        struct engine_error e;

        struct distribution *d = start(c, dist, img, t, 2, DISTRIBUTION_APPLY_NOW, 1);
        uint64_t id = d->id;
        ASSERT_TRUE(core_run_until(c, uploading, &id, SECONDS(10)));
        ASSERT_OK(engine_distribution_cancel(c->m, d, &e));
        d = wait_finished(c, id, 10);
        ASSERT_EQ(d->state, DISTRIBUTION_CANCELLED);
        ASSERT_EQ(d->targets[0].state, DISTRIBUTION_TARGET_CANCELLED);
        ASSERT_EQ(engine_distribution_cancel(c->m, d, &e), -EALREADY);
        json_t *st = sim_mesh_state(sm);
        ASSERT_EQ(json_array_size(json_object_get(st, "slots")), 0u);
        json_decref(st);
        drop_distributor(c);
        core_free(c);
}

/* mesh:<id>/<addr> goes into the inventory without a plugin, in
 * canonical form; refusals name the reason. */
static void test_inventory(void) {
        struct core *c = core_new();
        core_start(c);
        struct device *plain = core_add_device(c, CORE_UDP, 2);
        struct device *dist = core_add_device(c, CORE_UDP, DIST_DEV), *tgt, *again;
        struct engine_error e;
        bool created;
        char conn[64];

        snprintf(conn, sizeof(conn), "mesh:%" PRIu64 "/256", dist->id);
        ASSERT_OK(engine_device_add(c->m, conn, "rest", &tgt, &created, &e));
        ASSERT_TRUE(created);
        snprintf(conn, sizeof(conn), "mesh:%" PRIu64 "/0x0100", dist->id);
        ASSERT_STREQ(tgt->conn, conn);
        ASSERT_TRUE(engine_device_lookup(c->m, "mesh:2/0x100") == (dist->id == 2 ? tgt : NULL));
        snprintf(conn, sizeof(conn), "mesh:%" PRIu64 "/0x100", dist->id);
        ASSERT_TRUE(engine_device_lookup(c->m, conn) == tgt);
        ASSERT_OK(engine_device_add(c->m, conn, "rest", &again, &created, &e));
        ASSERT_TRUE(!created);
        ASSERT_TRUE(again == tgt);
        ASSERT_EQ(engine_device_add(c->m, "mesh:999/0x0100", "rest", &again, &created, &e), -EINVAL);
        ASSERT_TRUE(strstr(e.message, "no device 999"));
        snprintf(conn, sizeof(conn), "mesh:%" PRIu64 "/0xc000", dist->id);
        ASSERT_EQ(engine_device_add(c->m, conn, "rest", &again, &created, &e), -EINVAL);
        ASSERT_EQ(engine_device_probe(c->m, tgt, &e), -EMEDIUMTYPE);
        ASSERT_TRUE(strstr(e.message, "is a mesh target: it has no link to probe"));

        /* A distribution needs the role, and targets behind it. */
        struct image *img = core_add_image(c, 1024, 3);
        ASSERT_EQ(engine_distribution_start(c->m, dist, img, &tgt, 1, NULL, NULL, &e), -EMEDIUMTYPE);
        ASSERT_OK(engine_device_set_role(c->m, dist, DEVICE_ROLE_MESH_DISTRIBUTOR, &e));
        ASSERT_EQ(engine_distribution_start(c->m, dist, img, &plain, 1, NULL, NULL, &e), -EMEDIUMTYPE);
        ASSERT_EQ(e.index, 0);
        /* The ranges within the policy's fields are the engine's, for
         * every front end. */
        ASSERT_EQ(engine_distribution_start(c->m, dist, img, &tgt, 1,
                                            &(struct distribution_policy) { .app_idx = 0x1000 }, NULL, &e),
                  -EINVAL);
        ASSERT_STREQ(e.field, "app_idx");
        ASSERT_EQ(engine_distribution_start(c->m, dist, img, &tgt, 1, &(struct distribution_policy) { .ttl = 0x80 },
                                            NULL, &e),
                  -EINVAL);
        ASSERT_STREQ(e.field, "ttl");
        ASSERT_EQ(engine_distribution_start(c->m, dist, img, &tgt, 1,
                                            &(struct distribution_policy) { .max_attempts = 101 }, NULL, &e),
                  -EINVAL);
        ASSERT_STREQ(e.field, "attempts");
        ASSERT_EQ(c->m->n_distributions, 0u);
        ASSERT_EQ(engine_device_set_role(c->m, tgt, DEVICE_ROLE_MESH_DISTRIBUTOR, &e), -EINVAL);
        /* The role is kept across a restart. */
        uint64_t dist_id = dist->id, tgt_id = tgt->id;
        core_restart(c);
        dist = manager_find_device(c->m, dist_id);
        tgt = manager_find_device(c->m, tgt_id);
        ASSERT_TRUE(dist->role && streq(dist->role, DEVICE_ROLE_MESH_DISTRIBUTOR));
        ASSERT_TRUE(tgt->mesh && tgt->mesh->addr == 0x0100 && tgt->mesh->distributor_id == dist_id);

        /* [devices] add takes mesh targets too (their Distributor known). */
        core_stop(c);
        c->config->devices = calloc(2, sizeof(char *));
        ASSERT_TRUE(c->config->devices);
        ASSERT_TRUE(asprintf(&c->config->devices[0], "mesh:%" PRIu64 "/512", dist_id) > 0);
        c->config->n_devices = 1;
        core_start(c);
        snprintf(conn, sizeof(conn), "mesh:%" PRIu64 "/0x0200", dist_id);
        struct device *cfg = manager_find_device_by_conn(c->m, conn);
        ASSERT_TRUE(cfg && cfg->mesh && streq(cfg->source, "config"));
        core_free(c);
}

/* An image that declares boards goes through a Distributor only to
 * targets of those boards, where the inventory knows a target's board
 * (its direct device's OS info): a start naming others is refused with
 * -ENOEXEC naming each, and starts nothing; a target whose board is
 * unknown is not refused, and the Distributor's own board does not
 * matter (it only relays).  Forced, the image goes anyway. */
static void test_distribution_target_boards(void) {
        static const char *const nrf[] = { "smpsim/nrf52840" };
        struct core *c = core_new();
        struct engine_error e;
        struct distribution *d;

        core_start(c);
        snprintf(core_sim(c, CORE_UDP, DIST_DEV)->params.board, sizeof(core_sim(c, CORE_UDP, DIST_DEV)->params.board),
                 "%s", "nrf5340dk");
        for (unsigned i = 2; i <= 3; i++)
                snprintf(core_sim(c, CORE_UDP, i)->params.board, sizeof(core_sim(c, CORE_UDP, i)->params.board), "%s",
                         "stm32f4_disco");
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 4 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 4, &t);
        /* t0, t1 on stm32f4_disco, t2 on the image's board, t3 unknown. */
        struct device *g[3] = { core_add_device(c, CORE_UDP, 2), core_add_device(c, CORE_UDP, 3),
                                core_add_device(c, CORE_UDP, 4) };
        for (unsigned i = 0; i < 3; i++)
                ASSERT_OK(engine_mesh_target_set_direct(c->m, t[i], g[i], &e));
        struct image *img = core_add_image(c, 2048, 41);
        ASSERT_OK(engine_image_set_boards(c->m, img, nrf, 1, &e));
        struct distribution_policy p = { .max_attempts = 1, .poll_min_usec = 10000, .poll_max_usec = 40000 };
        char says[64];

        ASSERT_EQ(engine_distribution_start(c->m, dist, img, t, 4, &p, &d, &e), -ENOEXEC);
        ASSERT_STREQ(e.field, "targets");
        ASSERT_EQ(e.index, -1);
        snprintf(says, sizeof(says), "mesh targets %" PRIu64 " ('stm32f4_disco'), %" PRIu64 " ('stm32f4_disco') ",
                 t[0]->id, t[1]->id);
        ASSERT_TRUE(strstr(e.message, says));
        ASSERT_TRUE(strstr(e.message, "smpsim/nrf52840"));
        ASSERT_EQ(engine_distribution_start(c->m, dist, img, &t[1], 1, &p, &d, &e), -ENOEXEC);
        ASSERT_EQ(e.index, 0);
        ASSERT_EQ(c->m->n_distributions, 0u);

        /* The others go, through a Distributor of another board. */
        ASSERT_OK(engine_distribution_start(c->m, dist, img, &t[2], 2, &p, &d, &e));
        d = wait_finished(c, d->id, 30);
        assert_all_updated(c, sm, d, img);
        p.force = true;
        ASSERT_OK(engine_distribution_start(c->m, dist, img, t, 2, &p, &d, &e));
        d = wait_finished(c, d->id, 30);
        assert_all_updated(c, sm, d, img);
        drop_distributor(c);
        core_free(c);
}

/* Whether a simulated node left the network. */
static bool node_unprovisioned(struct sim_mesh *sm, uint16_t addr) {
        json_t *st = sim_mesh_state(sm), *nodes = json_object_get(st, "targets"), *n;
        size_t i;
        int found = -1;

        json_array_foreach(nodes, i, n) if (json_integer_value(json_object_get(n, "addr")) == addr) found =
                json_is_true(json_object_get(n, "unprovisioned"));
        json_decref(st);
        ASSERT_TRUE(found >= 0);
        return found;
}

#define NODE_COMP_HASH 0x9e3779b9u

/* Targets that check the firmware metadata as NCS's target sample: an
 * image without a mesh composition sends none, they refuse the start
 * (status metadata-check-failed), and the reason says what to set. */
static void test_metadata_check_without_composition(void) {
        struct core *c = core_new();
        core_start(c);
        struct sim_mesh *sm = make_distributor(
                c, &(struct mesh_setup) { .n_targets = 2, .metadata_check = true, .comp_hash = NODE_COMP_HASH });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 2, &t);
        struct image *img = core_add_image(c, 2048, 51);

        ASSERT_TRUE(!img->has_mesh_composition);
        /* three attempts allowed: a refusal of the metadata spends one,
         * as another round would be refused the same */
        struct distribution *d = start(c, dist, img, t, 2, DISTRIBUTION_APPLY_NOW, 3);
        d = wait_finished(c, d->id, 30);
        ASSERT_STREQ(distribution_state_to_string(d->state), "failed");
        ASSERT_EQ(d->rounds, 1u);
        for (unsigned i = 0; i < 2; i++) {
                const struct distribution_target *dt = &d->targets[i];
                ASSERT_EQ(dt->state, DISTRIBUTION_TARGET_FAILED);
                ASSERT_EQ(dt->attempts, 1u);
                ASSERT_EQ(dt->status, SMP_MESH_DFU_ERR_METADATA);
                ASSERT_TRUE(dt->reason);
                ASSERT_TRUE(strstr(dt->reason, "metadata-check-failed"));
                ASSERT_TRUE(strstr(dt->reason, "\"mesh_composition\""));
                ASSERT_TRUE(strstr(dt->reason, "Image1.SetMeshComposition()"));
                ASSERT_TRUE(strstr(dt->reason, "doc/mesh-dfu.md"));
                _cleanup_free_ char *v = node_version(sm, dt->addr);
                ASSERT_STREQ(v, "1.0.0+0");
                ASSERT_TRUE(!node_unprovisioned(sm, dt->addr));
        }
        drop_distributor(c);
        core_free(c);
}

/* With the composition of the new firmware declared: the metadata goes
 * in the slot, the targets take it with the effect "none" and stay in
 * the network on the new firmware. */
static void test_metadata_check_with_composition(void) {
        struct core *c = core_new();
        core_start(c);
        struct sim_mesh *sm = make_distributor(
                c, &(struct mesh_setup) { .n_targets = 3, .metadata_check = true, .comp_hash = NODE_COMP_HASH });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 3, &t);
        struct image *img = core_add_image(c, 2048, 52);
        struct engine_error e;

        ASSERT_OK(engine_image_set_mesh_composition(
                c->m, img, &(struct smp_mesh_composition) { .hash = NODE_COMP_HASH, .elements = 2 }, &e));
        struct distribution *d = start(c, dist, img, t, 3, DISTRIBUTION_APPLY_NOW, 1);
        d = wait_finished(c, d->id, 30);
        assert_all_updated(c, sm, d, img);
        for (unsigned i = 0; i < 3; i++)
                ASSERT_TRUE(!node_unprovisioned(sm, d->targets[i].addr));

        /* The slot holds what a checking target decodes: the image's
         * version and size, the application core, the composition. */
        json_t *st = sim_mesh_state(sm);
        const char *hex =
                json_string_value(json_object_get(json_array_get(json_object_get(st, "slots"), 0), "metadata"));
        uint8_t raw[SMP_MESH_METADATA_MAXLEN];
        struct smp_mesh_metadata md;
        struct mcuboot_version v;
        ASSERT_TRUE(hex);
        int n = smp_mesh_unhex(hex, strlen(hex), raw, sizeof(raw));
        ASSERT_EQ(n, 18);
        ASSERT_OK(smp_mesh_metadata_decode(raw, (size_t) n, &md));
        ASSERT_OK(mcuboot_version_parse(img->version, &v));
        ASSERT_EQ(md.version.major, v.major);
        ASSERT_EQ(md.version.minor, v.minor);
        ASSERT_EQ(md.size, img->file_size);
        ASSERT_EQ(md.core_type, SMP_MESH_CORE_APP);
        ASSERT_TRUE(md.has_composition);
        ASSERT_EQ(md.comp_hash, NODE_COMP_HASH);
        ASSERT_EQ(md.elements, 2);
        json_decref(st);
        drop_distributor(c);
        core_free(c);
}

/* A composition that is not the targets' own (hash 0, as one guessed
 * would be): they take the metadata with the effect "unprovision" and
 * leave the network at the apply, which ends the distribution as a
 * target that unprovisions itself (the smpsim fault) does. */
static void test_metadata_check_wrong_hash(void) {
        enum distribution_state states[2];
        enum distribution_target_state target_states[2];
        uint8_t phases[2];

        for (unsigned run = 0; run < 2; run++) {
                struct core *c = core_new();
                core_start(c);
                struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 1,
                                                                                 .metadata_check = run == 0,
                                                                                 .comp_hash = NODE_COMP_HASH });
                _cleanup_free_ struct device **t = NULL;
                struct device *dist = setup_inventory(c, 1, &t);
                struct image *img = core_add_image(c, 2048, 53);
                struct engine_error e;
                const char *why;

                if (run == 0)
                        ASSERT_OK(engine_image_set_mesh_composition(
                                c->m, img, &(struct smp_mesh_composition) { .hash = 0, .elements = 1 }, &e));
                else
                        ASSERT_OK(sim_mesh_fault_apply(sm, "target=0x0100:unprovisioned", &why));
                struct distribution *d = start(c, dist, img, t, 1, DISTRIBUTION_APPLY_NOW, 1);
                d = wait_finished(c, d->id, 30);
                ASSERT_TRUE(node_unprovisioned(sm, 0x0100));
                ASSERT_TRUE(d->targets[0].status != SMP_MESH_DFU_ERR_METADATA);
                states[run] = d->state;
                target_states[run] = d->targets[0].state;
                phases[run] = d->targets[0].phase;
                drop_distributor(c);
                core_free(c);
        }
        ASSERT_EQ(states[0], states[1]);
        ASSERT_EQ(target_states[0], target_states[1]);
        ASSERT_EQ(phases[0], phases[1]);
}

/* The composition is the image's, kept with it across a restart: none
 * stays none, a hash of 0 stays a hash. */
static void test_image_mesh_composition_stored(void) {
        struct core *c = core_new();
        core_start(c);
        struct image *a = core_add_image(c, 2048, 54), *b = core_add_image(c, 2048, 55),
                     *z = core_add_image(c, 2048, 56);
        char ida[sizeof(a->id)], idb[sizeof(b->id)], idz[sizeof(z->id)];
        struct engine_error e;

        memcpy(ida, a->id, sizeof(ida));
        memcpy(idb, b->id, sizeof(idb));
        memcpy(idz, z->id, sizeof(idz));
        ASSERT_OK(engine_image_set_mesh_composition(
                c->m, a, &(struct smp_mesh_composition) { .hash = UINT32_MAX, .elements = UINT16_MAX }, &e));
        ASSERT_OK(engine_image_set_mesh_composition(c->m, z,
                                                    &(struct smp_mesh_composition) { .hash = 0, .elements = 1 }, &e));
        ASSERT_EQ(engine_image_set_mesh_composition(c->m, b,
                                                    &(struct smp_mesh_composition) { .hash = 1, .elements = 0 }, &e),
                  -EINVAL);
        ASSERT_STREQ(e.field, "mesh_composition");
        ASSERT_TRUE(!b->has_mesh_composition);
        core_run_for(c, 10000);
        ASSERT_EQ(core_count_events(c, MANAGER_EVENT_IMAGE_CHANGED, 0), 2u);
        /* The same again changes nothing, and says nothing. */
        ASSERT_OK(engine_image_set_mesh_composition(c->m, z,
                                                    &(struct smp_mesh_composition) { .hash = 0, .elements = 1 }, &e));
        core_run_for(c, 10000);
        ASSERT_EQ(core_count_events(c, MANAGER_EVENT_IMAGE_CHANGED, 0), 2u);
        core_restart(c);
        a = manager_find_image(c->m, ida);
        b = manager_find_image(c->m, idb);
        z = manager_find_image(c->m, idz);
        ASSERT_TRUE(a && b && z);
        ASSERT_TRUE(a->has_mesh_composition);
        ASSERT_EQ(a->mesh_composition.hash, UINT32_MAX);
        ASSERT_EQ(a->mesh_composition.elements, UINT16_MAX);
        ASSERT_TRUE(!b->has_mesh_composition);
        ASSERT_TRUE(z->has_mesh_composition);
        ASSERT_EQ(z->mesh_composition.hash, 0u);
        ASSERT_OK(engine_image_set_mesh_composition(c->m, a, NULL, &e));
        core_restart(c);
        ASSERT_TRUE(!manager_find_image(c->m, ida)->has_mesh_composition);
        core_free(c);
}

/* A probe finds a Distributor by asking dfd capabilities-get through
 * shell management; a plain device stays plain. */
static void test_role_detected(void) {
        struct core *c = core_new();
        core_start(c);
        make_distributor(c, &(struct mesh_setup) { .n_targets = 1 });
        struct device *dist = core_add_device(c, CORE_UDP, DIST_DEV), *plain = core_add_device(c, CORE_UDP, 2);
        uint64_t dist_id = dist->id, plain_id = plain->id;

        ASSERT_TRUE(dist->role && streq(dist->role, DEVICE_ROLE_MESH_DISTRIBUTOR));
        ASSERT_TRUE(!plain->role);
        ASSERT_EQ(dist->state, DEVICE_ONLINE);
        ASSERT_EQ(plain->state, DEVICE_ONLINE);
        core_restart(c);
        ASSERT_TRUE(manager_find_device(c->m, dist_id)->role);
        ASSERT_TRUE(!manager_find_device(c->m, plain_id)->role);
        drop_distributor(c);
        core_free(c);
}

/* ---- rollouts over mesh targets ---- */

/* Polls in tens of milliseconds, as the distributions above. */
static void fast_mesh_polls(struct core *c) {
        c->config->mesh_poll_min_usec = 10000;
        c->config->mesh_poll_max_usec = 40000;
}

static json_t *rollout_spec(struct image *img, struct device **devs, size_t n, json_t *policy) {
        json_t *ids = json_array(), *spec;

        for (size_t i = 0; i < n; i++) {
                char id[32];
                snprintf(id, sizeof(id), "%" PRIu64, devs[i]->id);
                json_array_append_new(ids, json_string(id));
        }
        spec = json_pack("{s:s, s:s, s:{s:o}, s:o}", "image", img->id, "mode", "test-and-confirm", "targets", "devices",
                         ids, "policy", policy);
        ASSERT_TRUE(spec);
        return spec;
}

static struct rollout *create_rollout(struct core *c, struct image *img, struct device **devs, size_t n,
                                      json_t *policy) {
        json_t *spec = rollout_spec(img, devs, n, policy);
        struct rollout *r = NULL;
        struct engine_error e;

        if (engine_rollout_create(c->m, spec, &r, &e) < 0) {
                fprintf(stderr, "rollout refused: %s\n", e.message);
                ASSERT_TRUE(false);
        }
        json_decref(spec);
        return r;
}

static bool rollout_finished(struct core *c, void *userdata) {
        struct rollout *r = NULL;
        struct engine_error e;
        char id[32];

        snprintf(id, sizeof(id), "%" PRIu64, *(uint64_t *) userdata);
        return engine_rollout_find(c->m, id, &r, &e) >= 0 && rollout_is_finished(r);
}

static struct rollout *find_rollout(struct core *c, uint64_t id) {
        struct rollout *r = NULL;
        struct engine_error e;
        char spec[32];

        snprintf(spec, sizeof(spec), "%" PRIu64, id);
        ASSERT_OK(engine_rollout_find(c->m, spec, &r, &e));
        return r;
}

struct member_in_distribution {
        uint64_t rollout_id, device_id;
};

/* The member's distribution transfers to it. */
static bool member_transferring(struct core *c, void *userdata) {
        const struct member_in_distribution *w = userdata;
        struct rollout *r = find_rollout(c, w->rollout_id);
        struct rollout_member *mem = rollout_find_member(r, w->device_id);
        struct distribution *d =
                mem && mem->distribution_id ? manager_find_distribution(c->m, mem->distribution_id) : NULL;
        return d && d->step == DISTRIBUTION_STEP_TRANSFER && d->dfd_phase == SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE;
}

/* 8 mesh targets behind one Distributor and 2 direct UDP devices: the
 * canary (one mesh target) gets a distribution of its own, the second
 * wave's 7 mesh targets one together while the UDP devices get jobs;
 * smpgwd restarts in the middle of that distribution, and the rollout
 * completes with all 10 on the new image, the mesh nodes on its
 * firmware. */
static void test_rollout_mesh_and_direct(void) {
        struct core *c = core_new();
        fast_mesh_polls(c);
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 8, .time_scale = 20 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 8, &t);
        struct device *devs[10];
        struct image *img = core_add_image(c, 2048, 21);
        char version[32];
        uint64_t ids[10];

        for (unsigned i = 0; i < 8; i++)
                devs[i] = t[i];
        devs[8] = core_add_device(c, CORE_UDP, 2);
        devs[9] = core_add_device(c, CORE_UDP, 3);
        for (unsigned i = 0; i < 10; i++)
                ids[i] = devs[i]->id;
        snprintf(version, sizeof(version), "%s", img->version);

        /* The plan: the mesh members go the Distributor path, one
         * distribution per wave, and say why; "direct" is refused. */
        struct engine_error e;
        json_t *plan = NULL;
        json_t *spec = rollout_spec(
                img, devs, 10,
                json_pack("{s:i, s:s, s:s}", "canary", 1, "wave_size", "100%", "mesh_path", "distributor"));
        ASSERT_OK(engine_rollout_plan(c->m, spec, NULL, &plan, &e));
        json_t *mesh = json_object_get(plan, "mesh");
        ASSERT_EQ(json_array_size(mesh), 2u);
        ASSERT_EQ(json_array_size(json_object_get(json_array_get(mesh, 0), "devices")), 1u);
        ASSERT_EQ(json_array_size(json_object_get(json_array_get(mesh, 1), "devices")), 7u);
        for (size_t i = 0; i < 2; i++) {
                json_t *o = json_array_get(mesh, i);
                ASSERT_STREQ(json_string_value(json_object_get(o, "path")), "distributor");
                ASSERT_TRUE(strstr(json_string_value(json_object_get(o, "reason")), "no direct link"));
                ASSERT_EQ((uint64_t) json_integer_value(json_object_get(o, "distributor")), dist->id);
                ASSERT_TRUE(json_real_value(json_object_get(o, "duration_s")) > 0);
        }
        ASSERT_EQ(json_array_size(json_object_get(json_array_get(json_object_get(plan, "waves"), 1), "devices")), 9u);
        ASSERT_TRUE(json_real_value(json_object_get(json_object_get(plan, "estimate"), "mesh_s")) > 0);
        json_decref(plan);
        json_decref(spec);
        spec = rollout_spec(img, devs, 10, json_pack("{s:s}", "mesh_path", "direct"));
        ASSERT_EQ(engine_rollout_plan(c->m, spec, NULL, &plan, &e), -EINVAL);
        ASSERT_STREQ(e.field, "mesh_path");
        ASSERT_TRUE(strstr(e.message, "no direct connection"));
        struct rollout *refused = NULL;
        ASSERT_EQ(engine_rollout_create(c->m, spec, &refused, &e), -EINVAL);
        json_decref(spec);
        /* Without mesh targets, "direct" is what rollouts do anyway. */
        spec = rollout_spec(img, &devs[8], 2, json_pack("{s:s}", "mesh_path", "direct"));
        ASSERT_OK(engine_rollout_plan(c->m, spec, NULL, &plan, &e));
        ASSERT_TRUE(!json_object_get(plan, "mesh"));
        json_decref(plan);
        json_decref(spec);

        struct rollout *r = create_rollout(c, img, devs, 10,
                                           json_pack("{s:i, s:s, s:s, s:i, s:i}", "canary", 1, "wave_size", "100%",
                                                     "failure_threshold", "50%", "attempts", 2, "max_rebooting", 8));
        uint64_t rid = r->id, dist_id = dist->id;
        ASSERT_EQ(r->n_waves, 2u);

        /* The second wave's distribution: restart while it transfers. */
        struct member_in_distribution w = { rid, ids[7] };
        ASSERT_TRUE(core_run_until(c, member_transferring, &w, SECONDS(20)));
        r = find_rollout(c, rid);
        uint64_t second = rollout_find_member(r, ids[7])->distribution_id;
        ASSERT_TRUE(second != 0);
        fast_mesh_polls(c);
        core_restart(c);
        r = find_rollout(c, rid);
        ASSERT_EQ(rollout_find_member(r, ids[7])->distribution_id, second);
        ASSERT_TRUE(!distribution_is_finished(manager_find_distribution(c->m, second)));

        ASSERT_TRUE(core_run_until(c, rollout_finished, &rid, SECONDS(30)));
        r = find_rollout(c, rid);
        ASSERT_STREQ(rollout_state_to_string(r->state), "completed");
        uint64_t first = 0;
        for (unsigned i = 0; i < 10; i++) {
                struct rollout_member *mem = rollout_find_member(r, ids[i]);
                ASSERT_TRUE(mem);
                ASSERT_STREQ(rollout_member_state_to_string(mem->state), "succeeded");
                json_t *o = rollout_member_to_json(mem);
                if (i < 8) {
                        /* One distribution per wave; the member says which, and its phase. */
                        ASSERT_TRUE(mem->distribution_id != 0);
                        ASSERT_EQ(mem->job_id, 0u);
                        if (mem->wave == 0)
                                first = mem->distribution_id;
                        else
                                ASSERT_EQ(mem->distribution_id, second);
                        ASSERT_EQ((uint64_t) json_integer_value(json_object_get(o, "distribution")),
                                  mem->distribution_id);
                        ASSERT_STREQ(json_string_value(json_object_get(o, "mesh_phase")), "apply-success");
                        _cleanup_free_ char *v = node_version(sm, (uint16_t) (0x0100 + i));
                        ASSERT_STREQ(v, version);
                        struct device *dev = manager_find_device(c->m, ids[i]);
                        ASSERT_STREQ(dev->mesh->version, version);
                } else {
                        ASSERT_EQ(mem->distribution_id, 0u);
                        ASSERT_TRUE(mem->job_id != 0);
                        ASSERT_TRUE(json_is_null(json_object_get(o, "distribution")));
                        struct job *j = manager_find_job(c->m, mem->job_id);
                        ASSERT_TRUE(j && j->state == JOB_SUCCEEDED);
                }
                json_decref(o);
        }
        ASSERT_TRUE(first != 0 && first != second);
        /* The rollout's JSON (Rollout1.Json, smpgwctl rollout show): the
         * mesh members with their distribution and phase, not the UDP ones. */
        json_t *ro = rollout_to_json(r), *mm = json_object_get(ro, "mesh_members");
        ASSERT_EQ(json_array_size(mm), 8u);
        ASSERT_STREQ(json_string_value(json_object_get(json_array_get(mm, 7), "mesh_phase")), "apply-success");
        ASSERT_TRUE(json_integer_value(json_object_get(json_array_get(mm, 7), "distribution")) > 0);
        json_decref(ro);
        struct distribution *d = manager_find_distribution(c->m, second);
        ASSERT_EQ(d->n_targets, 7u);
        ASSERT_EQ(d->policy.rollout_id, rid);
        ASSERT_EQ(d->state, DISTRIBUTION_SUCCEEDED);
        ASSERT_EQ(manager_find_distribution(c->m, first)->n_targets, 1u);
        (void) dist_id;
        drop_distributor(c);
        core_free(c);
}

/* A mesh target that fails to apply every time: its distribution sends
 * it again (the rollout's attempts: 2 rounds), then the member fails
 * with the target's reason; the others are updated and the rollout
 * completes (under its failure threshold). */
static void test_rollout_mesh_apply_fail(void) {
        struct core *c = core_new();
        fast_mesh_polls(c);
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 4 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 4, &t);
        struct image *img = core_add_image(c, 2048, 22);
        const char *why;

        (void) dist;
        ASSERT_OK(sim_mesh_fault_apply(sm, "target=0x0101:apply-fail", &why));
        struct rollout *r = create_rollout(c, img, t, 4,
                                           json_pack("{s:i, s:s, s:s, s:i}", "canary", 4, "wave_size", "100%",
                                                     "failure_threshold", "50%", "attempts", 2));
        uint64_t rid = r->id;
        ASSERT_TRUE(core_run_until(c, rollout_finished, &rid, SECONDS(30)));
        r = find_rollout(c, rid);
        ASSERT_STREQ(rollout_state_to_string(r->state), "completed");
        struct rollout_member *bad = rollout_find_member(r, t[1]->id);
        ASSERT_STREQ(rollout_member_state_to_string(bad->state), "failed");
        ASSERT_TRUE(strstr(bad->reason, "apply"));
        ASSERT_EQ(bad->attempts, 2u);
        struct distribution *d = manager_find_distribution(c->m, bad->distribution_id);
        ASSERT_TRUE(d);
        ASSERT_EQ(d->rounds, 2u);
        ASSERT_EQ(d->state, DISTRIBUTION_FAILED);
        for (unsigned i = 0; i < 4; i++) {
                struct rollout_member *mem = rollout_find_member(r, t[i]->id);
                ASSERT_EQ(mem->distribution_id, d->id);
                if (i == 1)
                        continue;
                ASSERT_STREQ(rollout_member_state_to_string(mem->state), "succeeded");
                ASSERT_EQ(mem->attempts, 1u);
        }
        _cleanup_free_ char *v = node_version(sm, 0x0101);
        ASSERT_STREQ(v, "1.0.0+0");
        drop_distributor(c);
        core_free(c);
}

/* A target whose update unprovisions it (effect "unprovision": its
 * composition changes) answers nothing after its reboot; the
 * Distributor counts that silence as its success, so at "completed" it
 * reads phase applying, status success.  It is updated in one round, its
 * device records the new version, its member succeeds, and the reason
 * says it must be provisioned again. */
static void run_rollout_mesh_unprovisioned(int soak_s) {
        struct core *c = core_new();
        fast_mesh_polls(c);
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 3 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 3, &t);
        struct image *img = core_add_image(c, 2048, 29);
        const char *why;

        (void) dist;
        ASSERT_OK(sim_mesh_fault_apply(sm, "target=0x0101:unprovisioned", &why));
        struct rollout *r = create_rollout(
                c, img, t, 3,
                json_pack("{s:i, s:s, s:i, s:i}", "canary", 3, "wave_size", "100%", "attempts", 2, "soak", soak_s));
        uint64_t rid = r->id;
        ASSERT_TRUE(core_run_until(c, rollout_finished, &rid, SECONDS(30)));
        r = find_rollout(c, rid);
        ASSERT_STREQ(rollout_state_to_string(r->state), "completed");
        struct rollout_member *mem = rollout_find_member(r, t[1]->id);
        ASSERT_STREQ(rollout_member_state_to_string(mem->state), "succeeded");
        ASSERT_TRUE(strstr(mem->reason, "unprovisioned"));
        ASSERT_EQ(mem->attempts, 1u);
        struct distribution *d = manager_find_distribution(c->m, mem->distribution_id);
        ASSERT_TRUE(d);
        ASSERT_EQ(d->state, DISTRIBUTION_SUCCEEDED);
        ASSERT_EQ(d->rounds, 1u);
        const struct distribution_target *dt = &d->targets[1];
        ASSERT_EQ(dt->state, DISTRIBUTION_TARGET_UPDATED);
        ASSERT_EQ(dt->phase, SMP_MESH_DFU_PHASE_APPLYING);
        ASSERT_TRUE(dt->reason && strstr(dt->reason, "unprovisioned"));
        ASSERT_TRUE(d->targets[0].reason == NULL);
        struct device *dev = manager_find_device(c->m, t[1]->id);
        ASSERT_STREQ(dev->mesh->version, img->version);
        json_t *st = sim_mesh_state(sm);
        json_t *node = json_array_get(json_object_get(st, "targets"), 1);
        ASSERT_TRUE(json_is_true(json_object_get(node, "unprovisioned")));
        json_decref(st);
        drop_distributor(c);
        core_free(c);
}

static void test_rollout_mesh_unprovisioned(void) {
        run_rollout_mesh_unprovisioned(0);
        /* with a soak, whose check of a mesh member is the version its
         * Distributor read: the reason stays */
        run_rollout_mesh_unprovisioned(1);
}

/* Blocks are going out to the member (the Distributor suspends only then). */
static bool member_receiving(struct core *c, void *userdata) {
        const struct member_in_distribution *w = userdata;
        struct rollout_member *mem = rollout_find_member(find_rollout(c, w->rollout_id), w->device_id);
        struct distribution *d =
                mem && mem->distribution_id ? manager_find_distribution(c->m, mem->distribution_id) : NULL;
        const struct distribution_target *t = NULL;
        for (size_t i = 0; d && i < d->n_targets; i++)
                if (d->targets[i].device_id == w->device_id)
                        t = &d->targets[i];
        return member_transferring(c, userdata) && t && t->progress > 0 && t->progress < 50;
}

struct dist_state_wait {
        uint64_t rollout_id, device_id;
        enum distribution_state state;
};

static bool member_distribution_in(struct core *c, void *userdata) {
        const struct dist_state_wait *w = userdata;
        struct rollout_member *mem = rollout_find_member(find_rollout(c, w->rollout_id), w->device_id);
        struct distribution *d =
                mem && mem->distribution_id ? manager_find_distribution(c->m, mem->distribution_id) : NULL;
        return d && d->state == w->state;
}

/* A window closed now: the distribution is verify-only, the members wait
 * staged on the old firmware; `activate` applies it. */
static void test_rollout_mesh_window_then_activate(void) {
        struct core *c = core_new();
        fast_mesh_polls(c);
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 3 });
        _cleanup_free_ struct device **t = NULL;
        setup_inventory(c, 3, &t);
        struct image *img = core_add_image(c, 2048, 23);
        struct engine_error e;
        time_t later = time(NULL) + 12 * 3600;
        struct tm tm;
        char from[8], to[8];

        ASSERT_TRUE(gmtime_r(&later, &tm));
        snprintf(from, sizeof(from), "%02d:00", tm.tm_hour);
        snprintf(to, sizeof(to), "%02d:30", tm.tm_hour);
        json_t *spec = rollout_spec(img, t, 3, json_pack("{s:i}", "canary", 3));
        json_object_set_new(spec, "schedule",
                            json_pack("{s:[{s:s, s:s}], s:s}", "windows", "from", from, "to", to, "timezone", "UTC"));
        struct rollout *r = NULL;
        ASSERT_OK(engine_rollout_create(c->m, spec, &r, &e));
        json_decref(spec);
        uint64_t rid = r->id;
        struct dist_state_wait w = { rid, t[0]->id, DISTRIBUTION_VERIFIED };
        ASSERT_TRUE(core_run_until(c, member_distribution_in, &w, SECONDS(20)));
        core_run_for(c, 200000);
        r = find_rollout(c, rid);
        struct rollout_member *mem = rollout_find_member(r, t[0]->id);
        struct distribution *d = manager_find_distribution(c->m, mem->distribution_id);
        ASSERT_EQ(d->policy.apply, DISTRIBUTION_APPLY_VERIFY_ONLY);
        ASSERT_EQ(d->state, DISTRIBUTION_VERIFIED);
        for (unsigned i = 0; i < 3; i++) {
                ASSERT_STREQ(rollout_member_state_to_string(rollout_find_member(r, t[i]->id)->state), "staged");
                _cleanup_free_ char *v = node_version(sm, (uint16_t) (0x0100 + i));
                ASSERT_STREQ(v, "1.0.0+0");
        }
        ASSERT_OK(engine_rollout_activate(c->m, r, &e));
        ASSERT_TRUE(core_run_until(c, rollout_finished, &rid, SECONDS(20)));
        r = find_rollout(c, rid);
        ASSERT_STREQ(rollout_state_to_string(r->state), "completed");
        for (unsigned i = 0; i < 3; i++) {
                ASSERT_STREQ(rollout_member_state_to_string(rollout_find_member(r, t[i]->id)->state), "succeeded");
                _cleanup_free_ char *v = node_version(sm, (uint16_t) (0x0100 + i));
                ASSERT_STREQ(v, img->version);
        }
        drop_distributor(c);
        core_free(c);
}

/* A distribution applies all its targets at once, so the reboot budgets
 * bound it whole: with max_rebooting 2 and one relay at a time, six
 * targets (two relays) go in distributions of two at the most, never with
 * both relays, one after the other, and all end updated.  (Before, the
 * six went in one distribution and rebooted together.) */
static void test_rollout_mesh_reboot_budget(void) {
        struct core *c = core_new();
        fast_mesh_polls(c);
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 6 });
        _cleanup_free_ struct device **t = NULL;
        setup_inventory(c, 6, &t);
        struct image *img = core_add_image(c, 2048, 29);
        struct engine_error e;
        static const char *const relay[] = { "relay" };

        ASSERT_OK(engine_device_set_labels(c->m, t[1], relay, 1, &e));
        ASSERT_OK(engine_device_set_labels(c->m, t[2], relay, 1, &e));
        struct rollout *r = create_rollout(
                c, img, t, 6, json_pack("{s:i, s:i, s:i}", "canary", 6, "max_rebooting", 2, "max_rebooting_relay", 1));
        uint64_t rid = r->id;
        ASSERT_TRUE(core_run_until(c, rollout_finished, &rid, SECONDS(60)));
        r = find_rollout(c, rid);
        ASSERT_STREQ(rollout_state_to_string(r->state), "completed");
        for (unsigned i = 0; i < 6; i++) {
                ASSERT_STREQ(rollout_member_state_to_string(rollout_find_member(r, t[i]->id)->state), "succeeded");
                _cleanup_free_ char *v = node_version(sm, (uint16_t) (0x0100 + i));
                ASSERT_STREQ(v, img->version);
        }
        unsigned n_dists = 0;
        for (size_t i = 0; i < c->m->n_distributions; i++) {
                const struct distribution *d = c->m->distributions[i];
                unsigned relays = 0;
                if (d->policy.rollout_id != rid)
                        continue;
                n_dists++;
                ASSERT_TRUE(d->n_targets <= 2);
                for (size_t k = 0; k < d->n_targets; k++)
                        relays += d->targets[k].device_id == t[1]->id || d->targets[k].device_id == t[2]->id;
                ASSERT_TRUE(relays <= 1);
        }
        ASSERT_TRUE(n_dists >= 3);
        drop_distributor(c);
        core_free(c);
}

/* Pause suspends the rollout's distribution, resume goes on; cancel of
 * the next rollout cancels its distribution and its members. */
static void test_rollout_mesh_pause_resume_cancel(void) {
        struct core *c = core_new();
        fast_mesh_polls(c);
        core_start(c);
        /* A transfer of seconds, so that the pause finds it running. */
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 3, .time_scale = 2 });
        _cleanup_free_ struct device **t = NULL;
        setup_inventory(c, 3, &t);
        struct image *img = core_add_image(c, 4096, 24);
        struct engine_error e;

        struct rollout *r = create_rollout(c, img, t, 3, json_pack("{s:i}", "canary", 3));
        uint64_t rid = r->id;
        struct member_in_distribution mw = { rid, t[0]->id };
        ASSERT_TRUE(core_run_until(c, member_receiving, &mw, SECONDS(20)));
        ASSERT_OK(engine_rollout_pause(c->m, find_rollout(c, rid), &e));
        struct dist_state_wait w = { rid, t[0]->id, DISTRIBUTION_SUSPENDED };
        ASSERT_TRUE(core_run_until(c, member_distribution_in, &w, SECONDS(10)));
        ASSERT_OK(engine_rollout_resume(c->m, find_rollout(c, rid), &e));
        ASSERT_TRUE(core_run_until(c, rollout_finished, &rid, SECONDS(20)));
        r = find_rollout(c, rid);
        ASSERT_STREQ(rollout_state_to_string(r->state), "completed");
        ASSERT_EQ(manager_find_distribution(c->m, rollout_find_member(r, t[0]->id)->distribution_id)->state,
                  DISTRIBUTION_SUCCEEDED);

        struct image *img2 = core_add_image(c, 4096, 25);
        r = create_rollout(c, img2, t, 3, json_pack("{s:i}", "canary", 3));
        rid = r->id;
        mw.rollout_id = rid;
        ASSERT_TRUE(core_run_until(c, member_transferring, &mw, SECONDS(20)));
        ASSERT_OK(engine_rollout_cancel(c->m, find_rollout(c, rid), &e));
        w = (struct dist_state_wait) { rid, t[0]->id, DISTRIBUTION_CANCELLED };
        ASSERT_TRUE(core_run_until(c, member_distribution_in, &w, SECONDS(10)));
        core_run_for(c, 100000);
        r = find_rollout(c, rid);
        ASSERT_STREQ(rollout_state_to_string(r->state), "cancelled");
        for (unsigned i = 0; i < 3; i++)
                ASSERT_STREQ(rollout_member_state_to_string(rollout_find_member(r, t[i]->id)->state), "cancelled");
        _cleanup_free_ char *v = node_version(sm, 0x0100);
        ASSERT_STREQ(v, img->version);
        drop_distributor(c);
        core_free(c);
}

/* ---- two paths: mesh targets that also have a direct device ---- */

static json_t *plan_of(struct core *c, struct image *img, struct device **devs, size_t n, json_t *policy) {
        json_t *spec = rollout_spec(img, devs, n, policy), *plan = NULL;
        struct engine_error e;

        if (engine_rollout_plan(c->m, spec, NULL, &plan, &e) < 0) {
                fprintf(stderr, "plan refused: %s\n", e.message);
                ASSERT_TRUE(false);
        }
        json_decref(spec);
        return plan;
}

static const char *mesh_entry_str(json_t *plan, size_t i, const char *key) {
        return json_string_value(json_object_get(json_array_get(json_object_get(plan, "mesh"), i), key));
}

static double mesh_estimate(json_t *plan, size_t i, const char *path) {
        json_t *o =
                json_object_get(json_object_get(json_array_get(json_object_get(plan, "mesh"), i), "estimates"), path);
        return json_real_value(json_object_get(o, "duration_s"));
}

/* Two mesh targets whose direct devices (UDP sims) the operator named,
 * a slow multicast ([mesh] rate 20 B/s): the plan estimates both paths
 * and picks direct, saying why; the rollout follows it: jobs to the
 * direct devices, no distribution, the mesh nodes untouched.  Forcing
 * "distributor" turns the plan round; "direct" is refused for a target
 * with no direct device.  The refusals of direct_device itself. */
static void test_rollout_mesh_direct_wins(void) {
        struct core *c = core_new();
        fast_mesh_polls(c);
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 3 });
        _cleanup_free_ struct device **t = NULL;
        struct device *dist = setup_inventory(c, 3, &t);
        struct device *g[2] = { core_add_device(c, CORE_UDP, 2), core_add_device(c, CORE_UDP, 3) };
        struct image *img = core_add_image(c, 2048, 31);
        struct engine_error e;

        ASSERT_EQ(engine_mesh_target_set_direct(c->m, g[0], g[1], &e), -EMEDIUMTYPE);
        ASSERT_EQ(engine_mesh_target_set_direct(c->m, t[0], t[1], &e), -EINVAL);
        ASSERT_STREQ(e.field, "direct_device");
        ASSERT_EQ(engine_mesh_target_set_direct(c->m, t[0], dist, &e), -EINVAL);
        ASSERT_OK(engine_mesh_target_set_direct(c->m, t[0], g[0], &e));
        ASSERT_OK(engine_mesh_target_set_direct(c->m, t[1], g[1], &e));
        ASSERT_EQ(engine_mesh_target_set_direct(c->m, t[2], g[0], &e), -EINVAL);
        ASSERT_TRUE(strstr(e.message, "already"));
        ASSERT_EQ(t[0]->mesh->direct_device_id, g[0]->id);
        ASSERT_EQ(t[2]->mesh->direct_device_id, 0u);

        c->m->config->mesh_rate = 20;
        /* The second job waits that long for its device before polling. */
        c->m->config->job_swap_estimate_usec = SECONDS(1);
        json_t *plan = plan_of(c, img, t, 2, json_pack("{s:i}", "canary", 2));
        ASSERT_EQ(json_array_size(json_object_get(plan, "mesh")), 1u);
        ASSERT_STREQ(mesh_entry_str(plan, 0, "path"), "direct");
        ASSERT_TRUE(strstr(mesh_entry_str(plan, 0, "reason"), "direct is faster"));
        ASSERT_TRUE(mesh_estimate(plan, 0, "direct") > 0);
        ASSERT_TRUE(mesh_estimate(plan, 0, "direct") < mesh_estimate(plan, 0, "distributor"));
        json_t *entry = json_array_get(json_object_get(plan, "mesh"), 0);
        ASSERT_EQ(json_array_size(json_object_get(entry, "direct")), 2u);
        ASSERT_EQ((uint64_t) json_integer_value(
                          json_object_get(json_array_get(json_object_get(entry, "direct"), 0), "direct_device")),
                  g[0]->id);
        ASSERT_TRUE(json_real_value(json_object_get(json_object_get(entry, "assumptions"), "mesh_rate")) == 20.0);
        /* The direct members are in the job simulation, nothing goes
         * through the Distributor. */
        ASSERT_TRUE(json_real_value(json_object_get(json_object_get(plan, "estimate"), "mesh_s")) == 0.0);
        json_decref(plan);

        plan = plan_of(c, img, t, 2, json_pack("{s:i, s:s}", "canary", 2, "mesh_path", "distributor"));
        ASSERT_STREQ(mesh_entry_str(plan, 0, "path"), "distributor");
        ASSERT_TRUE(strstr(mesh_entry_str(plan, 0, "reason"), "as mesh_path says"));
        json_decref(plan);
        /* The third target has no direct device: the Distributor must
         * go anyway, and one round for 3 takes as long as for 1, so
         * auto keeps them all there; "direct" is refused. */
        plan = plan_of(c, img, t, 3, json_pack("{s:i}", "canary", 3));
        ASSERT_STREQ(mesh_entry_str(plan, 0, "path"), "distributor");
        ASSERT_TRUE(strstr(mesh_entry_str(plan, 0, "reason"), "the Distributor is faster"));
        json_decref(plan);
        json_t *spec = rollout_spec(img, t, 3, json_pack("{s:s}", "mesh_path", "direct"));
        ASSERT_EQ(engine_rollout_plan(c->m, spec, NULL, &plan, &e), -EINVAL);
        ASSERT_STREQ(e.field, "mesh_path");
        ASSERT_TRUE(strstr(e.message, "no direct connection"));
        json_decref(spec);

        struct rollout *r = create_rollout(c, img, t, 2, json_pack("{s:i}", "canary", 2));
        uint64_t rid = r->id;
        ASSERT_TRUE(core_run_until(c, rollout_finished, &rid, SECONDS(30)));
        r = find_rollout(c, rid);
        ASSERT_STREQ(rollout_state_to_string(r->state), "completed");
        for (unsigned i = 0; i < 2; i++) {
                struct rollout_member *mem = rollout_find_member(r, t[i]->id);
                ASSERT_STREQ(rollout_member_state_to_string(mem->state), "succeeded");
                ASSERT_EQ(mem->path, ROLLOUT_MEMBER_PATH_DIRECT);
                ASSERT_EQ(mem->distribution_id, 0u);
                struct job *j = manager_find_job(c->m, mem->job_id);
                ASSERT_TRUE(j && j->state == JOB_SUCCEEDED);
                ASSERT_EQ(j->device_id, g[i]->id);
                ASSERT_EQ(j->rollout_id, rid);
                json_t *o = rollout_member_to_json(mem);
                ASSERT_STREQ(json_string_value(json_object_get(o, "path")), "direct");
                json_decref(o);
                /* The mesh node heard nothing of it through the mesh. */
                _cleanup_free_ char *v = node_version(sm, (uint16_t) (0x0100 + i));
                ASSERT_STREQ(v, "1.0.0+0");
        }
        json_t *ro = rollout_to_json(r), *mm = json_object_get(ro, "mesh_members");
        ASSERT_EQ(json_array_size(mm), 2u);
        ASSERT_STREQ(json_string_value(json_object_get(json_array_get(mm, 0), "path")), "direct");
        ASSERT_TRUE(json_integer_value(json_object_get(json_array_get(mm, 0), "job")) > 0);
        json_decref(ro);
        ASSERT_EQ(c->m->n_distributions, 0u);

        /* Forgetting a direct device clears the link. */
        uint64_t t0 = t[0]->id;
        ASSERT_OK(engine_device_forget(c->m, g[0], &e));
        ASSERT_EQ(manager_find_device(c->m, t0)->mesh->direct_device_id, 0u);
        drop_distributor(c);
        core_free(c);
}

/* Three mesh targets with direct devices, a fast multicast ([mesh] rate
 * 1 MB/s) and slow swaps ([jobs] swap_estimate 60 s): the plan picks the
 * Distributor, saying why, and the rollout goes through it (no job to
 * a direct device).  The finished distribution measured its multicast
 * rate, which the next plan takes instead of the configured one; the
 * rate and the direct devices survive a restart.  Forcing "direct" turns
 * the plan round. */
static void test_rollout_mesh_distributor_wins(void) {
        struct core *c = core_new();
        fast_mesh_polls(c);
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 3 });
        _cleanup_free_ struct device **t = NULL;
        setup_inventory(c, 3, &t);
        struct image *img = core_add_image(c, 2048, 32);
        struct engine_error e;
        uint64_t ids[3], gid[3];

        for (unsigned i = 0; i < 3; i++) {
                struct device *g = core_add_device(c, CORE_UDP, 2 + i);
                ASSERT_OK(engine_mesh_target_set_direct(c->m, t[i], g, &e));
                ids[i] = t[i]->id;
                gid[i] = g->id;
        }
        c->m->config->mesh_rate = 1000000;
        c->m->config->job_swap_estimate_usec = SECONDS(60);
        json_t *plan = plan_of(c, img, t, 3, json_pack("{s:i}", "canary", 3));
        ASSERT_STREQ(mesh_entry_str(plan, 0, "path"), "distributor");
        ASSERT_TRUE(strstr(mesh_entry_str(plan, 0, "reason"), "the Distributor is faster"));
        ASSERT_TRUE(mesh_estimate(plan, 0, "distributor") < mesh_estimate(plan, 0, "direct"));
        json_t *as = json_object_get(json_array_get(json_object_get(plan, "mesh"), 0), "assumptions");
        ASSERT_TRUE(json_real_value(json_object_get(as, "mesh_rate")) == 1000000.0);
        ASSERT_TRUE(json_is_false(json_object_get(as, "mesh_rate_measured")));
        json_decref(plan);
        plan = plan_of(c, img, t, 3, json_pack("{s:i, s:s}", "canary", 3, "mesh_path", "direct"));
        ASSERT_STREQ(mesh_entry_str(plan, 0, "path"), "direct");
        ASSERT_TRUE(strstr(mesh_entry_str(plan, 0, "reason"), "as mesh_path says"));
        json_decref(plan);

        struct rollout *r = create_rollout(c, img, t, 3, json_pack("{s:i}", "canary", 3));
        uint64_t rid = r->id;
        ASSERT_TRUE(core_run_until(c, rollout_finished, &rid, SECONDS(30)));
        r = find_rollout(c, rid);
        ASSERT_STREQ(rollout_state_to_string(r->state), "completed");
        uint64_t did = 0;
        for (unsigned i = 0; i < 3; i++) {
                struct rollout_member *mem = rollout_find_member(r, ids[i]);
                ASSERT_STREQ(rollout_member_state_to_string(mem->state), "succeeded");
                ASSERT_EQ(mem->path, ROLLOUT_MEMBER_PATH_DISTRIBUTOR);
                ASSERT_TRUE(mem->distribution_id != 0);
                ASSERT_EQ(mem->job_id, 0u);
                did = mem->distribution_id;
                _cleanup_free_ char *v = node_version(sm, (uint16_t) (0x0100 + i));
                ASSERT_STREQ(v, img->version);
        }
        ASSERT_EQ(c->m->n_jobs, 0u);
        struct distribution *d = manager_find_distribution(c->m, did);
        ASSERT_TRUE(d->mesh_rate > 0);
        double measured = d->mesh_rate;
        ASSERT_TRUE(distribution_measured_rate(c->m, d->distributor_id) == measured);

        fast_mesh_polls(c);
        core_restart(c);
        ASSERT_TRUE(manager_find_distribution(c->m, did)->mesh_rate == measured);
        for (unsigned i = 0; i < 3; i++) {
                t[i] = manager_find_device(c->m, ids[i]);
                ASSERT_EQ(t[i]->mesh->direct_device_id, gid[i]);
        }
        struct image *img2 = core_add_image(c, 2048, 33);
        plan = plan_of(c, img2, t, 3, json_pack("{s:i, s:s}", "canary", 3, "mesh_path", "distributor"));
        as = json_object_get(json_array_get(json_object_get(plan, "mesh"), 0), "assumptions");
        ASSERT_TRUE(json_real_value(json_object_get(as, "mesh_rate")) == measured);
        ASSERT_TRUE(json_is_true(json_object_get(as, "mesh_rate_measured")));
        json_decref(plan);
        drop_distributor(c);
        core_free(c);
}

/* A failure threshold pauses the rollout while its distribution is
 * under way: the distribution is suspended as by a user's pause, and
 * resume resumes it to the end. */
static void test_rollout_mesh_threshold_pause(void) {
        struct core *c = core_new();
        fast_mesh_polls(c);
        core_start(c);
        /* A transfer of seconds, so that the pause finds it running. */
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 3, .time_scale = 2 });
        _cleanup_free_ struct device **t = NULL;
        setup_inventory(c, 3, &t);
        struct device *devs[4] = { t[0], t[1], t[2], core_add_device(c, CORE_UDP, 2) };
        struct image *img = core_add_image(c, 4096, 34);
        struct engine_error e;

        core_sim(c, CORE_UDP, 2)->faults.revert = true;
        struct rollout *r = create_rollout(c, img, devs, 4, json_pack("{s:i, s:i}", "canary", 4, "revert_halt", 0));
        uint64_t rid = r->id;
        struct dist_state_wait w = { rid, t[0]->id, DISTRIBUTION_SUSPENDED };
        ASSERT_TRUE(core_run_until(c, member_distribution_in, &w, SECONDS(15)));
        r = find_rollout(c, rid);
        ASSERT_STREQ(rollout_state_to_string(r->state), "paused");
        ASSERT_TRUE(r->paused_reason && !streq(r->paused_reason, "user"));
        ASSERT_STREQ(rollout_member_state_to_string(rollout_find_member(r, devs[3]->id)->state), "failed");
        ASSERT_OK(engine_rollout_resume(c->m, r, &e));
        ASSERT_TRUE(core_run_until(c, rollout_finished, &rid, SECONDS(30)));
        r = find_rollout(c, rid);
        ASSERT_STREQ(rollout_state_to_string(r->state), "completed");
        struct distribution *d = manager_find_distribution(c->m, rollout_find_member(r, t[0]->id)->distribution_id);
        ASSERT_EQ(d->state, DISTRIBUTION_SUCCEEDED);
        /* Suspended on the way: its rate is not a measurement. */
        ASSERT_TRUE(d->mesh_rate == 0);
        _cleanup_free_ char *v = node_version(sm, 0x0102);
        ASSERT_STREQ(v, img->version);
        drop_distributor(c);
        core_free(c);
}

static bool member_has_distribution(struct core *c, void *userdata) {
        const struct member_in_distribution *w = userdata;
        struct rollout_member *mem = rollout_find_member(find_rollout(c, w->rollout_id), w->device_id);
        return mem && mem->distribution_id != 0;
}

/* A pause before the transfer sends blocks (the Distributor refuses a
 * suspend then: "suspend failed") is not lost: the suspend is asked
 * again until the Distributor did it. */
static void test_rollout_mesh_pause_before_transfer(void) {
        struct core *c = core_new();
        fast_mesh_polls(c);
        core_start(c);
        make_distributor(c, &(struct mesh_setup) { .n_targets = 2, .time_scale = 2 });
        _cleanup_free_ struct device **t = NULL;
        setup_inventory(c, 2, &t);
        struct image *img = core_add_image(c, 4096, 35);
        struct engine_error e;

        struct rollout *r = create_rollout(c, img, t, 2, json_pack("{s:i}", "canary", 2));
        uint64_t rid = r->id;
        struct member_in_distribution mw = { rid, t[0]->id };
        ASSERT_TRUE(core_run_until(c, member_has_distribution, &mw, SECONDS(10)));
        ASSERT_OK(engine_rollout_pause(c->m, find_rollout(c, rid), &e));
        struct dist_state_wait w = { rid, t[0]->id, DISTRIBUTION_SUSPENDED };
        ASSERT_TRUE(core_run_until(c, member_distribution_in, &w, SECONDS(10)));
        ASSERT_OK(engine_rollout_cancel(c->m, find_rollout(c, rid), &e));
        w.state = DISTRIBUTION_CANCELLED;
        ASSERT_TRUE(core_run_until(c, member_distribution_in, &w, SECONDS(10)));
        drop_distributor(c);
        core_free(c);
}

static bool member_distribution_collecting(struct core *c, void *userdata) {
        const struct member_in_distribution *w = userdata;
        struct rollout_member *mem = rollout_find_member(find_rollout(c, w->rollout_id), w->device_id);
        struct distribution *d =
                mem && mem->distribution_id ? manager_find_distribution(c->m, mem->distribution_id) : NULL;
        return d && d->step == DISTRIBUTION_STEP_COLLECT;
}

/* A pause while a round ends (past the transfer, where the Distributor
 * cannot suspend) holds the distribution: the target that failed to
 * apply is not sent again in a new round until the rollout resumes, and
 * then it is. */
static void test_rollout_mesh_pause_holds_redrive(void) {
        struct core *c = core_new();
        fast_mesh_polls(c);
        core_start(c);
        struct sim_mesh *sm = make_distributor(c, &(struct mesh_setup) { .n_targets = 3 });
        _cleanup_free_ struct device **t = NULL;
        setup_inventory(c, 3, &t);
        struct image *img = core_add_image(c, 2048, 36);
        struct engine_error e;
        const char *why;

        ASSERT_OK(sim_mesh_fault_apply(sm, "target=0x0101:apply-fail", &why));
        struct rollout *r = create_rollout(c, img, t, 3,
                                           json_pack("{s:i, s:s, s:s, s:i}", "canary", 3, "wave_size", "100%",
                                                     "failure_threshold", "50%", "attempts", 2));
        uint64_t rid = r->id;
        struct member_in_distribution mw = { rid, t[1]->id };
        ASSERT_TRUE(core_run_until(c, member_distribution_collecting, &mw, SECONDS(20)));
        struct distribution *d =
                manager_find_distribution(c->m, rollout_find_member(find_rollout(c, rid), t[1]->id)->distribution_id);
        uint64_t did = d->id;
        ASSERT_EQ(d->rounds, 1u);
        ASSERT_OK(engine_rollout_pause(c->m, find_rollout(c, rid), &e));
        core_run_for(c, SECONDS(1));
        d = manager_find_distribution(c->m, did);
        ASSERT_EQ(d->rounds, 1u);
        ASSERT_EQ(d->state, DISTRIBUTION_SUSPENDED);
        ASSERT_STREQ(rollout_state_to_string(find_rollout(c, rid)->state), "paused");

        ASSERT_OK(engine_rollout_resume(c->m, find_rollout(c, rid), &e));
        ASSERT_TRUE(core_run_until(c, rollout_finished, &rid, SECONDS(30)));
        r = find_rollout(c, rid);
        ASSERT_STREQ(rollout_state_to_string(r->state), "completed");
        d = manager_find_distribution(c->m, did);
        ASSERT_EQ(d->rounds, 2u);
        ASSERT_EQ(rollout_find_member(r, t[1]->id)->attempts, 2u);
        ASSERT_STREQ(rollout_member_state_to_string(rollout_find_member(r, t[0]->id)->state), "succeeded");
        drop_distributor(c);
        core_free(c);
}

static void test_estimate(void) {
        struct distribution_estimate_input in = {
                .image_size = 200 * 1024,
                .n_targets = 64,
                .targets_max = 8,
                .upload_rate = 20000,
                .mesh_rate = 1000,
        };
        double s, radio;

        ASSERT_OK(distribution_estimate(&in, &s));
        ASSERT_OK(distribution_estimate_radio(&in, &radio));
        /* 10.24 s upload + 8 rounds of (10 + 204.8) s */
        ASSERT_TRUE(s > 1728.0 && s < 1729.0);
        ASSERT_TRUE(radio > 10.23 && radio < 10.25);
        in.n_targets = 0;
        ASSERT_EQ(distribution_estimate(&in, &s), -EINVAL);

        struct distribution_direct_input dir = {
                .image_size = 200 * 1024,
                .n_targets = 64,
                .links = 7,
                .link_rate = 20000,
                .swap_seconds = 20,
        };
        ASSERT_OK(distribution_estimate_direct(&dir, &s, &radio));
        /* 10 waves of 10.24 s, plus the last swap; 64 uploads of radio */
        ASSERT_TRUE(s > 122.3 && s < 122.5);
        ASSERT_TRUE(radio > 655.3 && radio < 655.4);
        /* holding the link through the swap: 10 waves of 30.24 s */
        dir.swap_holds_link = true;
        ASSERT_OK(distribution_estimate_direct(&dir, &s, &radio));
        ASSERT_TRUE(s > 302.3 && s < 302.5);
}

TEST_MAIN(TEST(test_estimate), TEST(test_keep_finished), TEST(test_inventory), TEST(test_role_detected),
          TEST(test_metadata_check_without_composition), TEST(test_metadata_check_with_composition),
          TEST(test_metadata_check_wrong_hash), TEST(test_image_mesh_composition_stored), TEST(test_full_1),
          TEST(test_full_8), TEST(test_zephyr_3_4_legacy_rc), TEST(test_full_64_rounds), TEST(test_full_64_one_round),
          TEST(test_verify_only_then_apply), TEST(test_two_lost_redriven), TEST(test_apply_fail),
          TEST(test_distributor_reset), TEST(test_unasked_suspend_resumed), TEST(test_unasked_suspend_gone),
          TEST(test_suspended_past_deadline), TEST(test_start_while_canceling), TEST(test_receivers_page_too_large),
          TEST(test_log_burst_polls), TEST(test_log_burst_bounded), TEST(test_log_burst_each_command),
          TEST(test_resume_pull_only), TEST(test_no_free_slot_says_why), TEST(test_restart_mid_distribution),
          TEST(test_cancel_mid_upload), TEST(test_rollout_mesh_and_direct), TEST(test_rollout_mesh_apply_fail),
          TEST(test_rollout_mesh_unprovisioned), TEST(test_rollout_mesh_window_then_activate),
          TEST(test_rollout_mesh_pause_resume_cancel), TEST(test_rollout_mesh_reboot_budget),
          TEST(test_rollout_mesh_direct_wins), TEST(test_rollout_mesh_distributor_wins),
          TEST(test_rollout_mesh_threshold_pause), TEST(test_rollout_mesh_pause_before_transfer),
          TEST(test_rollout_mesh_pause_holds_redrive), TEST(test_distribution_target_boards))
