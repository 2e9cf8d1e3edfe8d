/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Following jobs (ctl-watch.h): watch and push --wait.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "ctl-session.h"
#include "ctl-watch.h"
#include "util.h"

bool job_state_is_final(const char *state) {
        return streq(state, "succeeded") || streq(state, "failed") || streq(state, "cancelled");
}

static bool all_finished(const struct watch *w) {
        for (size_t i = 0; i < w->n_jobs; i++)
                if (!job_state_is_final(json_str(w->jobs[i].props, "State")))
                        return false;
        return true;
}

static int job_exit_code(const json_t *props) {
        const char *state = json_str(props, "State"), *outcome = json_str(props, "Outcome");
        if (streq(state, "succeeded"))
                return CTL_EXIT_OK;
        if (streq(outcome, "reverted"))
                return CTL_EXIT_REVERTED;
        if (streq(outcome, "stuck"))
                return CTL_EXIT_STUCK;
        return CTL_EXIT_JOB_FAILED;
}

#define BAR_MIN 10
#define BAR_MAX 50

/* Copies text into buf, cut to width columns (0: no limit). */
static void put_cut(char *buf, size_t size, const char *text, int width) {
        size_t n = strlen(text);
        if (width > 0 && n > (size_t) width)
                n = (size_t) width;
        if (n >= size)
                n = size - 1;
        memcpy(buf, text, n);
        buf[n] = '\0';
}

void watch_job_line(const struct watched_job *j, bool bar, int cols, char *buf, size_t size) {
        const json_t *p = j->props;
        const char *state = json_str(p, "State"), *step = json_str(p, "Step"), *outcome = json_str(p, "Outcome");
        const char *error = json_str(p, "Error");
        uint64_t device = json_u64(p, "DeviceId");
        int width = cols > 1 ? cols - 1 : 0;
        char left[2][128], right[128], text[1024];

        snprintf(left[0], sizeof(left[0]), "job %-5" PRIu64 " device %-5" PRIu64 " %-10s", j->id, device, state);
        snprintf(left[1], sizeof(left[1]), "job %" PRIu64 " device %" PRIu64 " %s", j->id, device, state);

        if (job_state_is_final(state)) {
                snprintf(text, sizeof(text), "%s %s%s%s", left[0], outcome[0] ? outcome : "-", error[0] ? ": " : "",
                         error);
                put_cut(buf, size, text, width);
                return;
        }
        if (!bar || !(streq(step, "upload") || json_u64(p, "BytesSent") > 0)) {
                snprintf(text, sizeof(text), "%s %s%s%s", left[0], step[0] ? step : "-",
                         error[0] ? "  last error: " : "", error);
                put_cut(buf, size, text, width);
                return;
        }

        char sent[32], total[32], rate[32], bar_text[BAR_MAX + 1];
        double progress = json_real_value(json_object_get(p, "Progress"));
        ctl_format_bytes((double) json_u64(p, "BytesSent"), sent, sizeof(sent));
        ctl_format_bytes((double) json_u64(p, "BytesTotal"), total, sizeof(total));
        ctl_format_bytes(json_real_value(json_object_get(p, "Rate")), rate, sizeof(rate));
        snprintf(right, sizeof(right), " %3.0f%% %s/%s %s/s", progress * 100.0, sent, total, rate);

        /* The bar takes what the terminal leaves: aligned columns if
         * they fit, else without the padding, else no bar at all. */
        for (int compact = 0; compact <= 1; compact++) {
                char with_step[sizeof(left[0]) + 272];
                snprintf(with_step, sizeof(with_step), compact ? "%s %s" : "%s %-12s", left[compact], step);
                int room = (width ? width : BAR_MAX + 200) - (int) strlen(with_step) - (int) strlen(right) - 3;
                if (room < BAR_MIN)
                        continue;
                int n = MIN(room, BAR_MAX), filled = (int) (progress * n + 0.5);
                for (int i = 0; i < n; i++)
                        bar_text[i] = i < filled ? '#' : '.';
                bar_text[n] = '\0';
                snprintf(buf, size, "%s [%s]%s", with_step, bar_text, right);
                return;
        }
        snprintf(text, sizeof(text), "%s %s%s", left[1], step, right);
        put_cut(buf, size, text, width);
}

/* The terminal's width: stdout's, else $COLUMNS, else 80. */
static int terminal_columns(void) {
        struct winsize ws;
        const char *env = getenv("COLUMNS");
        uint32_t n;

        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
                return ws.ws_col;
        if (env && parse_u32(env, 2, 10000, &n) >= 0)
                return (int) n;
        return 80;
}

static void watch_render(struct watch *w) {
        char line[512];

        if (w->client->ctx->json)
                return;
        if (w->tty) {
                int cols = terminal_columns();
                if (w->lines_drawn > 0)
                        printf("\033[%uA", w->lines_drawn);
                for (size_t i = 0; i < w->n_jobs; i++) {
                        watch_job_line(&w->jobs[i], true, cols, line, sizeof(line));
                        printf("\r\033[K%s\n", line);
                }
                w->lines_drawn = (unsigned) w->n_jobs;
        } else
                /* A log, not a picture: a line when a job's state, step
                 * or outcome changes, none for mere progress. */
                for (size_t i = 0; i < w->n_jobs; i++) {
                        struct watched_job *j = &w->jobs[i];
                        char key[sizeof(j->last_state)];
                        snprintf(key, sizeof(key), "%s/%s/%s", json_str(j->props, "State"), json_str(j->props, "Step"),
                                 json_str(j->props, "Outcome"));
                        if (streq(key, j->last_state))
                                continue;
                        memcpy(j->last_state, key, sizeof(key));
                        watch_job_line(j, false, 0, line, sizeof(line));
                        printf("%s\n", line);
                }
        fflush(stdout);
}

static void watch_check_done(struct watch *w) {
        if (!w->follow && all_finished(w)) {
                w->done = true;
                (void) sd_event_exit(w->event, 0);
        }
}

static struct watched_job *watch_find(struct watch *w, const char *path) {
        for (size_t i = 0; i < w->n_jobs; i++)
                if (streq(w->jobs[i].path, path))
                        return &w->jobs[i];
        return NULL;
}

/* props: taken. */
int watch_add(struct watch *w, const char *path, json_t *props) {
        struct watched_job *jobs = realloc(w->jobs, (w->n_jobs + 1) * sizeof(*jobs));
        if (!jobs) {
                json_decref(props);
                return -ENOMEM;
        }
        w->jobs = jobs;
        struct watched_job *j = &w->jobs[w->n_jobs++];
        *j = (struct watched_job) { .id = json_u64(props, "Id"), .props = props };
        snprintf(j->path, sizeof(j->path), "%s", path);
        return 0;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct watch *w = userdata;
        _cleanup_(json_decrefp) json_t *changed = NULL;
        struct watched_job *j = watch_find(w, sd_bus_message_get_path(m) ?: "");
        const char *interface;
        int r;

        if (!j)
                return 0;
        r = sd_bus_message_read(m, "s", &interface);
        if (r < 0 || !streq(interface, CTL_JOB_IFACE))
                return 0;
        r = bus_read_json(m, &changed);
        if (r < 0)
                return 0;
        /* Signals sent before our GetAll may arrive after it: a final
         * state is final, never undone by an older update. */
        if (job_state_is_final(json_str(j->props, "State")))
                return 0;
        (void) json_object_update(j->props, changed);
        watch_render(w);
        watch_check_done(w);
        return 0;
}

static int on_interfaces_added(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct watch *w = userdata;
        _cleanup_(json_decrefp) json_t *ifaces = NULL;
        const char *path;
        int r;

        if (!w->follow)
                return 0;
        r = sd_bus_message_read(m, "o", &path);
        if (r < 0 || watch_find(w, path))
                return 0;
        r = bus_read_json(m, &ifaces);
        if (r < 0)
                return 0;
        json_t *props = json_object_get(ifaces, CTL_JOB_IFACE);
        if (!props)
                return 0;
        if (watch_add(w, path, json_incref(props)) < 0)
                return 0;
        watch_render(w);
        return 0;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct watch *w = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !streq(name, CTL_BUS_NAME))
                return 0;
        if (new_owner[0])
                return 0;
        w->exit_code = ctl_fail(w->client->ctx, CTL_EXIT_TRANSPORT, NULL, "smpgwd left %s", w->client->bus_text);
        return sd_event_exit(w->event, 0);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct watch *w = userdata;
        w->signal = (int) si->ssi_signo;
        return sd_event_exit(w->event, 0);
}

void watch_done(struct watch *w) {
        for (size_t i = 0; i < w->n_jobs; i++)
                json_decref(w->jobs[i].props);
        free(w->jobs);
        w->jobs = NULL;
        w->n_jobs = 0;
        w->event = sd_event_unref(w->event);
}

/* Subscribes before anything is read, so no change between the read and
 * the subscription is lost. */
int watch_subscribe(struct watch *w) {
        struct client *c = w->client;
        int r;

        r = sd_event_new(&w->event);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(c->bus, w->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        r = sd_bus_match_signal(c->bus, NULL, CTL_BUS_NAME, NULL, "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                on_properties_changed, w);
        if (r < 0)
                return r;
        r = sd_bus_match_signal(c->bus, NULL, CTL_BUS_NAME, CTL_ROOT_PATH, "org.freedesktop.DBus.ObjectManager",
                                "InterfacesAdded", on_interfaces_added, w);
        if (r < 0)
                return r;
        r = sd_bus_add_match(c->bus, NULL,
                             "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                             "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" CTL_BUS_NAME "'",
                             on_name_owner_changed, w);
        if (r < 0)
                return r;
        /* losing the bus ends the loop with EXIT_FAILURE, told apart
         * from our own ends by w->done and w->signal */
        r = sd_bus_set_exit_on_disconnect(c->bus, true);
        if (r < 0)
                return r;
        r = sd_event_add_signal(w->event, NULL, SIGINT | SD_EVENT_SIGNAL_PROCMASK, on_signal, w);
        if (r < 0)
                return r;
        return sd_event_add_signal(w->event, NULL, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, on_signal, w);
}

/* Runs until every job is finished (or, with follow, until a signal);
 * returns the exit code: the first job's that did not succeed. */
int watch_run(struct watch *w) {
        struct ctl_context *ctx = w->client->ctx;
        int r, code = CTL_EXIT_OK;

        w->tty = !ctx->json && isatty(STDOUT_FILENO);
        watch_render(w);
        watch_check_done(w);
        if (!w->done) {
                r = sd_event_loop(w->event);
                if (r < 0)
                        return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "event loop: %s", strerror(-r));
                if (w->exit_code)
                        return w->exit_code;
                if (!w->done && !w->signal)
                        return ctl_fail(ctx, CTL_EXIT_TRANSPORT, NULL, "lost the connection to %s",
                                        w->client->bus_text);
        }
        if (w->signal && !w->follow) {
                ctl_log("interrupted; the jobs go on in smpgwd");
                code = 128 + w->signal;
        }
        if (code == CTL_EXIT_OK)
                for (size_t i = 0; i < w->n_jobs && code == CTL_EXIT_OK; i++)
                        if (job_state_is_final(json_str(w->jobs[i].props, "State")))
                                code = job_exit_code(w->jobs[i].props);
        if (ctx->json) {
                json_t *list = json_array();
                for (size_t i = 0; list && i < w->n_jobs; i++)
                        (void) json_array_append_new(list, rest_shape(CTL_JOB_IFACE, w->jobs[i].props));
                return ctl_json_print_result(ctx, json_pack("{s:o*}", "jobs", list), code);
        }
        return code;
}

int watch_add_job_path(struct watch *w, const char *path) {
        json_t *props = NULL;
        int r = get_all(w->client, path, CTL_JOB_IFACE, &props);
        if (r != CTL_EXIT_OK)
                return r;
        if (watch_add(w, path, props) < 0)
                return ctl_fail(w->client->ctx, CTL_EXIT_FAILURE, NULL, "out of memory");
        return CTL_EXIT_OK;
}


void watch_sort(struct watch *w) {
        /* by id: GetManagedObjects has no order */
        for (size_t i = 1; i < w->n_jobs; i++)
                for (size_t k = i; k > 0 && w->jobs[k - 1].id > w->jobs[k].id; k--) {
                        struct watched_job t = w->jobs[k];
                        w->jobs[k] = w->jobs[k - 1];
                        w->jobs[k - 1] = t;
                }
}
