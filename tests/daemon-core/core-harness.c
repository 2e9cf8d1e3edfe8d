/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "core-harness.h"
#include "rollout.h"
#include "distribution.h"
#include "smpgw/smp-context.h"
#include "test-image-writer.h"
#include "test-util.h"

/* The daemon's log settings (main.c's, which tests do not link):
 * warnings and errors only, so a failing test's output stays readable. */
int smpgwd_log_max_level = LOG_WARNING;
bool smpgwd_log_to_journal = false;

uint64_t core_now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static struct config *core_config_new(const char *dir) {
        _cleanup_free_ char *empty = NULL, *plugins = NULL;
        struct config *cfg = NULL;

        /* Every default of an empty file, then what a test daemon needs. */
        ASSERT_TRUE(asprintf(&empty, "%s/empty.conf", dir) > 0);
        ASSERT_TRUE(asprintf(&plugins, "%s/no-plugins", dir) > 0);
        close(open(empty, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
        (void) mkdir(plugins, 0700);
        ASSERT_OK(config_load(empty, true, &cfg));
        ASSERT_OK(config_set_string(&cfg->state_dir, dir));
        /* No plugin is found there: the in-process devices are the only
         * transport. */
        ASSERT_OK(config_set_string(&cfg->plugin_dir, plugins));
        cfg->bus = CONFIG_BUS_NONE;
        cfg->rest_enabled = false;
        cfg->discovery_enabled = false;
        /* Retries within a test's patience (the file's minimum is 1 s). */
        cfg->job_retry_delay_usec = 100 * 1000;
        cfg->job_retry_delay_max_usec = 300 * 1000;
        return cfg;
}

static const char *const fleet_schemes[_CORE_FLEET_MAX] = {
        [CORE_UDP] = "udp",
        [CORE_SERIAL] = "serial",
};

struct core *core_new(void) {
        struct core *c = calloc(1, sizeof(*c));
        char tmpl[] = "/tmp/smpgwd-core-XXXXXX";
        struct sim_fleet_params p;

        ASSERT_TRUE(c);
        ASSERT_TRUE(mkdtemp(tmpl));
        c->dir = strdup(tmpl);
        ASSERT_OK(sd_event_new(&c->event));
        c->config = core_config_new(c->dir);
        for (size_t i = 0; i < _CORE_FLEET_MAX; i++) {
                sim_fleet_params_default(&p);
                p.count = CORE_DEVICES;
                p.scheme = fleet_schemes[i];
                ASSERT_OK(sim_fleet_new(c->event, &p, &c->fleets[i]));
        }
        return c;
}

struct sim_device *core_sim(struct core *c, enum core_fleet fleet, unsigned n) {
        struct sim_device *d = sim_fleet_device(c->fleets[fleet], n);
        ASSERT_TRUE(d);
        return d;
}

struct sim_fleet_link_faults *core_link_faults(struct core *c, enum core_fleet fleet, unsigned n) {
        return sim_fleet_link_faults(c->fleets[fleet], n);
}

const char *core_conn(struct core *c, enum core_fleet fleet, unsigned n) {
        const char *conn = sim_fleet_conn(c->fleets[fleet], n);
        ASSERT_TRUE(conn);
        return conn;
}

/* ---- the observer ---- */

static unsigned running_in(struct manager *m, const char *transport) {
        unsigned n = 0;
        for (size_t i = 0; i < m->n_devices; i++)
                n += m->devices[i]->job && !m->devices[i]->job->slot_given_back &&
                     (!transport || streq(m->devices[i]->transport, transport));
        return n;
}

static void sample(struct core *c) {
        if (!c->m)
                return;
        c->max_running = MAX(c->max_running, running_in(c->m, NULL));
        c->max_running_udp = MAX(c->max_running_udp, running_in(c->m, "udp"));
        c->max_running_serial = MAX(c->max_running_serial, running_in(c->m, "serial"));
}

static void record(struct core_event *e, const struct manager_event *ev) {
        switch (ev->type) {
        case MANAGER_EVENT_DEVICE_ADDED:
        case MANAGER_EVENT_DEVICE_CHANGED:
        case MANAGER_EVENT_DEVICE_REMOVED:
                e->id = ev->device->id;
                snprintf(e->what, sizeof(e->what), "%s", ev->device->conn);
                break;
        case MANAGER_EVENT_IMAGE_ADDED:
        case MANAGER_EVENT_IMAGE_REMOVED:
        case MANAGER_EVENT_IMAGE_CHANGED:
                snprintf(e->what, sizeof(e->what), "%s", ev->image->id);
                break;
        case MANAGER_EVENT_DISTRIBUTION_STATE:
        case MANAGER_EVENT_DISTRIBUTION_PROGRESS:
        case MANAGER_EVENT_DISTRIBUTION_REMOVED:
                e->id = ev->distribution->id;
                snprintf(e->what, sizeof(e->what), "%s", distribution_state_to_string(ev->distribution->state));
                break;
        case MANAGER_EVENT_ROLLOUT_ADDED:
        case MANAGER_EVENT_ROLLOUT_STATE:
        case MANAGER_EVENT_ROLLOUT_PROGRESS:
        case MANAGER_EVENT_ROLLOUT_MEMBER:
        case MANAGER_EVENT_ROLLOUT_REMOVED:
                e->id = ev->rollout->id;
                snprintf(e->what, sizeof(e->what), "%s", rollout_state_to_string(ev->rollout->state));
                break;
        default:
                e->id = ev->job->id;
                e->job_state = ev->job->state;
                e->attempts = ev->job->attempts;
                e->next_attempt_usec = ev->job->next_attempt_usec;
                e->updated_usec = ev->job->updated_usec;
                snprintf(e->what, sizeof(e->what), "%s", job_state_to_string(ev->job->state));
                break;
        }
}

static void on_event(struct manager *m, const struct manager_event *ev, void *userdata) {
        struct core *c = userdata;
        struct core_event *g = realloc(c->events, (c->n_events + 1) * sizeof(*c->events));

        ASSERT_TRUE(g);
        c->events = g;
        if (!m->delivering)
                c->events_outside_delivery++;
        /* Every field read here: a freed object would show under ASan. */
        c->events[c->n_events] = (struct core_event) { .type = ev->type, .time_usec = core_now_usec() };
        record(&c->events[c->n_events++], ev);
        sample(c);
}

size_t core_count_events(struct core *c, enum manager_event_type type, uint64_t id) {
        size_t n = 0;
        for (size_t i = 0; i < c->n_events; i++)
                n += c->events[i].type == type && (id == 0 || c->events[i].id == id);
        return n;
}

/* ---- the manager ---- */

void core_start(struct core *c) {
        ASSERT_TRUE(!c->m);
        ASSERT_OK(manager_new(c->event, c->config, &c->m));
        c->config = core_config_new(c->dir);
        for (size_t i = 0; i < _CORE_FLEET_MAX; i++)
                ASSERT_OK(sim_fleet_add_to_context(c->fleets[i], c->m->smp));
        ASSERT_OK(manager_add_observer(c->m, on_event, c));
        ASSERT_OK(manager_start(c->m));
}

void core_stop(struct core *c) {
        ASSERT_TRUE(c->m);
        manager_stop(c->m);
        manager_remove_observer(c->m, on_event, c);
        c->m = manager_free(c->m);
}

void core_restart(struct core *c) {
        core_stop(c);
        core_start(c);
}

void core_free(struct core *c) {
        _cleanup_free_ char *cmd = NULL;

        if (c->m)
                core_stop(c);
        /* After the manager: its context held the fleets' transports. */
        for (size_t i = 0; i < _CORE_FLEET_MAX; i++)
                c->fleets[i] = sim_fleet_free(c->fleets[i]);
        config_free(c->config);
        sd_event_unref(c->event);
        ASSERT_TRUE(asprintf(&cmd, "rm -rf '%s'", c->dir) > 0);
        ASSERT_EQ(system(cmd), 0);
        free(c->dir);
        free(c->events);
        free(c);
}

/* ---- running ---- */

bool core_run_until(struct core *c, core_pred_fn pred, void *userdata, uint64_t timeout_usec) {
        uint64_t deadline = core_now_usec() + timeout_usec;

        while (!pred(c, userdata)) {
                if (core_now_usec() >= deadline)
                        return false;
                ASSERT_OK(sd_event_run(c->event, 10 * 1000));
                sample(c);
        }
        return true;
}

static bool never(struct core *c, void *userdata) {
        return false;
}

void core_run_for(struct core *c, uint64_t usec) {
        (void) core_run_until(c, never, NULL, usec);
}

/* ---- the model ---- */

static bool probed(struct core *c, void *userdata) {
        struct device *d = manager_find_device(c->m, *(uint64_t *) userdata);
        return d && d->last_probe_usec != 0 && !d->probe && !d->probe_queued;
}

struct device *core_add_device(struct core *c, enum core_fleet fleet, unsigned n) {
        struct engine_error e;
        struct device *d;
        bool created;

        ASSERT_OK(engine_device_add(c->m, core_conn(c, fleet, n), "rest", &d, &created, &e));
        ASSERT_TRUE(created);
        uint64_t id = d->id;
        ASSERT_TRUE(core_run_until(c, probed, &id, 5 * 1000000));
        return manager_find_device(c->m, id);
}

struct image *core_add_image(struct core *c, size_t size, uint8_t seed) {
        const struct tiw_params p = { .major = 2, .minor = seed, .body_size = size, .body_seed = seed };
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_close_ int fd = -1;
        struct engine_error e;
        struct image *img;
        size_t len;
        bool created;

        tiw_build(&p, &data, &len, NULL);
        fd = memfd_create("core-image", MFD_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, data, len), (ssize_t) len);
        ASSERT_OK(engine_image_add(c->m, fd, "core.bin", &img, &created, &e));
        return img;
}

struct job **core_push_with(struct core *c, struct image *img, struct device **devices, size_t n,
                            const struct engine_push *options) {
        char (*ids)[24] = calloc(n, sizeof(*ids));
        const char **specs = calloc(n, sizeof(*specs));
        struct engine_push push = *options;
        struct engine_error e;
        struct job **jobs = NULL;

        ASSERT_TRUE(ids && specs);
        push.image = img->id;
        push.devices = specs;
        push.n_devices = n;
        for (size_t i = 0; i < n; i++) {
                snprintf(ids[i], sizeof(ids[i]), "%" PRIu64, devices[i]->id);
                specs[i] = ids[i];
        }
        if (engine_push(c->m, &push, &jobs, &e) < 0) {
                fprintf(stderr, "push refused: %s\n", e.message);
                abort();
        }
        free(ids);
        free(specs);
        return jobs;
}

struct job **core_push(struct core *c, struct image *img, struct device **devices, size_t n, const char *mode,
                       unsigned attempts) {
        const struct engine_push push = {
                .mode = mode ?: "upload-only",
                .has_attempts = attempts > 0,
                .attempts = attempts,
        };
        return core_push_with(c, img, devices, n, &push);
}

static bool finished(struct core *c, void *userdata) {
        struct job *j = manager_find_job(c->m, *(uint64_t *) userdata);
        return j && job_is_finished(j);
}

struct job *core_wait_finished(struct core *c, uint64_t job_id, uint64_t timeout_usec) {
        if (!core_run_until(c, finished, &job_id, timeout_usec)) {
                struct job *j = manager_find_job(c->m, job_id);
                fprintf(stderr, "job %" PRIu64 " not finished: %s\n", job_id,
                        j ? job_state_to_string(j->state) : "gone");
                abort();
        }
        return manager_find_job(c->m, job_id);
}
